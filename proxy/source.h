/* Where an answer comes from (DESIGN.md, "a source table"): a small const
 * table of operations, one file per implementation, in the manner of Redis'
 * ConnectionType:
 *   source_upstream.c  an OpenAI-compatible server over HTTP(S): the HTTP
 *                      client, the SSE parser and the chunk converter; a
 *                      healthy chunk is relayed as its original bytes;
 *   source_engine.c    the co-resident engine (engine/sched.h): events from
 *                      the scheduler, chunks encoded by emit.
 * A source turns what it gets into guard events and feeds them to the
 * answer's core (proxy/answer.h); the chat glue (chat.c) asks the core for
 * the verdict of each unit and writes to the client. The glue owns the
 * source: it calls the operations, the source calls the callbacks.
 *
 * Callback contract. A source calls back only from its own event handlers
 * (an upstream read, an engine wake-up, a resume), never from inside an
 * operation except resume. In one handler it calls unit() any number of
 * times, stopping at the first nonzero return, and then exactly one of
 * flush(), body(), end() or error() as its last action: the glue may free
 * the source inside those four, so the source touches nothing of its own
 * after calling one. */
#ifndef LW_PROXY_SOURCE_H
#define LW_PROXY_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct px_answer;
struct px_http_req;
struct px_record;
struct px_request;
struct px_route;
struct px_server;
struct px_source;

/* What a source is started with; every pointer is borrowed for the call
 * unless said otherwise. */
struct px_source_args {
	struct px_server *s;
	const struct px_route *route;   /* which upstream or model (outlives the source) */
	const struct px_http_req *req;  /* the raw body (relayed upstream as is), Authorization */
	const struct px_request *preq;  /* the body as read once (proxy/wire/request.h) */
	struct px_answer *answer;       /* the core the source feeds (outlives the source) */
	struct px_record *rec;          /* NULL: not recording; else the source writes what it
	                                   received (outlives the source) */
	uint64_t id;                    /* the request's number (logs, answer ids) */
	bool stream;
	bool include_usage;             /* stream_options.include_usage */
};

/* What a source knows when an answer ends. */
struct px_source_end {
	const char *finish_reason; /* "stop", "length", "tool_calls"; NULL: not known */
	int tokens_after_cancel;   /* tokens the engine generated after a cancel; -1: not known */
	int64_t prompt_tokens, completion_tokens; /* -1: not known */
};

struct px_source_cbs {
	/* The answer starts (the upstream answered 200; the engine's first
	 * event): a streamed answer's response head can go out. */
	void (*begin)(void *ctx);
	/* One unit of a streamed answer, its events already fed to the core:
	 * <json, len> (NULL, 0: a unit with nothing of its own to send, such as
	 * the end of the open calls) is the chunk the client gets when the
	 * core's verdict is to relay it. Returns nonzero when the answer is over
	 * (a trip, a failure): the source feeds nothing more. */
	int (*unit)(void *ctx, const char *json, size_t len);
	/* The handler's units are done: write them (one write per upstream read
	 * or engine wake-up). <progress>: bytes came that are progress for the
	 * stall watchdog whatever their events (a non-streaming body, an error
	 * body). */
	void (*flush)(void *ctx, bool progress);
	/* A whole non-streaming chat.completion body, its events fed to the core
	 * (a trip included: the glue cuts the body at the core's cut). */
	void (*body)(void *ctx, const char *json, size_t len, const struct px_source_end *fin);
	/* A streamed answer ended (normally, or after a cancel the source
	 * acknowledged with its final figures). */
	void (*end)(void *ctx, const struct px_source_end *fin);
	/* The answer failed: <status> (an HTTP status before the stream started;
	 * the error event's code after) and <msg> (logged and recorded; sent to
	 * the client unless <raw> is given). <raw, raw_len>: an OpenAI-style
	 * error JSON from the upstream, relayed as is; NULL for none. */
	void (*error)(void *ctx, int status, const char *msg, const char *raw, size_t raw_len);
};

struct px_source_ops {
	const char *name; /* "upstream", "engine" */
	/* Starts an answer. NULL when nothing could start: *<status> (400 for a
	 * request the source refuses, 502/503 for a source that is not there)
	 * and <err> say why, no callback runs. */
	struct px_source *(*start)(const struct px_source_args *a, const struct px_source_cbs *cbs,
	                           void *ctx, int *status, char *err, size_t errlen);
	/* The client is slow: stop delivering units until resume. */
	void (*pause)(struct px_source *src);
	/* The client drained: deliver again. May run callbacks at once. */
	void (*resume)(struct px_source *src);
	/* Stop generating now (a trip, the watchdog). Returns true when the
	 * source is finished (no callback follows: the upstream closed its
	 * connection); false when end() or body() will still come, with the
	 * final figures (the engine reports tokens_after_cancel), after which
	 * the source delivers no more units. */
	bool (*cancel)(struct px_source *src);
	/* Stops everything now (cancelling what runs); no callback afterwards.
	 * NULL is a no-op. */
	void (*free)(struct px_source *src);
};

extern const struct px_source_ops px_source_upstream;
extern const struct px_source_ops px_source_engine;

#endif
