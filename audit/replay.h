/* Offline replay of one recorded answer through the guards, as the proxy
 * would run it: the request's history check first, then every chunk
 * converted to events and fed to a pipeline until the first trip. Shared by
 * loopwarden-audit and the corpus test. */
#ifndef LW_AUDIT_REPLAY_H
#define LW_AUDIT_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guards/config.h"
#include "guards/history.h"
#include "guards/pipeline.h"
#include "guards/policy.h"

enum aud_status {
	AUD_OK = 0,
	AUD_TRIPPED = 1,     /* a guard tripped: the replay is over */
	AUD_EREQUEST = -1,   /* the request body is not a chat-completions request */
	AUD_ECHUNK = -2,     /* a chunk is not JSON / not a chunk */
	AUD_EUPSTREAM = -3,  /* the recording holds an upstream {"error": …} */
	AUD_ECONFIG = -4,    /* a config override was refused */
	AUD_ENOMEM = -5,
};

const char *aud_strerror(enum aud_status st);

struct aud_result {
	bool tripped;
	bool history_trip;     /* tripped by gd_history_check before any chunk */
	struct gd_trip trip;
	uint64_t trip_chunk;   /* 1-based chunk that tripped; 0 for the history */
	unsigned long trip_line; /* input line of that chunk (0 when unknown) */
	uint64_t chunks;       /* chunks fed (up to the trip) */
	uint64_t events;       /* events fed (up to the trip) */
	bool done;             /* "[DONE]" seen */
	bool finished;         /* a finish_reason seen */
	char finish_reason[32];
	uint64_t tool_calls;
	struct gd_stats stats;
};

struct aud_replay;

/* <policy> must outlive the replay. <request> (may be NULL: no history) is
 * the chat-completions body. Returns NULL with <err> filled on a bad request
 * body or no memory; *<st> says which. */
struct aud_replay *aud_replay_new(const struct gd_policy *policy, const char *request,
                                  size_t request_len, enum aud_status *st,
                                  char *err, size_t errlen);
void aud_replay_free(struct aud_replay *r);

/* Runs the history check; AUD_TRIPPED when the history alone is a loop.
 * Call once, before the first chunk. */
enum aud_status aud_replay_history(struct aud_replay *r);

/* Feeds one SSE data payload (a chunk JSON, or "[DONE]"), the <chunk_no>th of
 * the answer, found at input line <line>. AUD_TRIPPED when a guard tripped. */
enum aud_status aud_replay_chunk(struct aud_replay *r, const char *data, size_t len,
                                 uint64_t chunk_no, unsigned long line,
                                 char *err, size_t errlen);

/* A whole non-streaming chat.completion body. */
enum aud_status aud_replay_body(struct aud_replay *r, const char *data, size_t len,
                                char *err, size_t errlen);

/* End of the recording: closes open tool calls; fills <out>. */
enum aud_status aud_replay_finish(struct aud_replay *r, struct aud_result *out);

/* Watches a replay (loopwarden-audit --html): <event> after every event fed
 * to the pipeline, with the pipeline's verdict (GD_TRIP for the event that
 * tripped); <chunk> after every chunk (or body), once its events are fed.
 * Both read the pipeline, never change it. */
struct aud_observer {
	void (*event)(void *ctx, const struct gd_event *ev, enum gd_verdict v,
	              const struct gd_pipeline *p);
	void (*chunk)(void *ctx, const struct gd_pipeline *p);
	void *ctx;
};

/* <o> (borrowed; NULL: none) watches <r> from now on. */
void aud_replay_observe(struct aud_replay *r, const struct aud_observer *o);

/* Applies "key=value"-style overrides on top of <base> into <out>. */
enum aud_status aud_config_apply(const struct gd_config *base, struct gd_config *out,
                                 char *const *keys, char *const *values, uint32_t n,
                                 char *err, size_t errlen);

#endif
