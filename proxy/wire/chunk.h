/* OpenAI chat-completions JSON -> normalized guard events (guards/event.h):
 * one `chat.completion.chunk` at a time for streams (llama.cpp, vLLM, SGLang,
 * Ollama styles), or one whole `chat.completion` body for non-stream answers.
 * Only choice index 0 is guarded: other choices (n > 1) are skipped and
 * counted. Streams allocate nothing per chunk of ordinary size: a chunk is
 * parsed in a small arena and a scratch buffer kept between chunks. Memory
 * follows the chunks, not the cap: the scratch buffer grows on demand up to
 * about 2 x the cap, and what a large chunk or body needed (scratch past
 * 64 KiB, a table for more than PX_CHUNK_MAX_DELTAS calls, yajl buffers past
 * the arena) is released once it is converted. */
#ifndef LW_PROXY_WIRE_CHUNK_H
#define LW_PROXY_WIRE_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guards/event.h"

#define PX_CHUNK_MAX_OPEN 64   /* tool calls kept open at once: beginning another
                                  ends the oldest (streams send calls in order) */
#define PX_CHUNK_MAX_DELTAS 64 /* tool-call deltas in one stream chunk */
#define PX_CHUNK_MAX_BODY_CALLS 4096 /* tool calls in one non-stream body */
#define PX_CHUNK_ID_MAX 128    /* tool-call id bytes kept (longer ids are an error) */
#define PX_CHUNK_NAME_MAX 256  /* tool name bytes kept (longer names are an error) */

enum px_chunk_status {
	PX_CHUNK_OK = 0,
	PX_CHUNK_EJSON = -1,     /* not JSON (or truncated JSON) */
	PX_CHUNK_ESHAPE = -2,    /* JSON, but not a chunk/completion: wrong types, missing fields */
	PX_CHUNK_EUPSTREAM = -3, /* a top-level {"error": …}: the upstream failed; <err> holds its message */
	PX_CHUNK_ETOOBIG = -4,   /* the chunk exceeds the cap, or too many tool-call deltas in it */
	PX_CHUNK_ESTOPPED = -5,  /* the callback returned nonzero */
	PX_CHUNK_EINVAL = -6,    /* bad argument */
	PX_CHUNK_ENOMEM = -7,    /* a buffer could not grow */
};

const char *px_chunk_strerror(enum px_chunk_status st);

/* Per-answer state: which tool calls are open (keyed by index and id; the
 * PX_CHUNK_MAX_OPEN most recent), the finish reason, the answer's id/model.
 * An answer may hold any number of calls. Create one per answer, or reset. */
struct px_chunk;

/* <cap> (at most 1 GiB) bounds one chunk's (or body's) JSON text in bytes;
 * nothing of that size is reserved here (about 60 KiB are). NULL on failure. */
struct px_chunk *px_chunk_new(size_t cap);
void px_chunk_free(struct px_chunk *c);
void px_chunk_reset(struct px_chunk *c);

/* Called per event, in stream order; the event and its bytes are borrowed
 * (valid during the call only). Return nonzero to stop. */
typedef int (*px_chunk_cb)(const struct gd_event *ev, void *ctx);

/* Converts one chunk (the data of one SSE event, not "[DONE]") of a stream.
 * Within a chunk the events come in this order: reasoning, text, tool-call
 * events (a call's first delta -> GD_EV_TOOL_BEGIN, then GD_EV_TOOL_ARGS for
 * a non-empty arguments fragment; later deltas -> GD_EV_TOOL_ARGS), then, when
 * finish_reason is set, GD_EV_TOOL_END for every open call and GD_EV_FINISH,
 * then GD_EV_USAGE when `usage` is an object. A delta whose index is reused
 * with a new id (Ollama) begins a new call and ends the earlier call of that
 * index. `reasoning_content` and `reasoning` are both reasoning; `choices: []`
 * or `null`, and `usage: null`, are fine. On error nothing of the chunk has
 * been emitted unless the error is PX_CHUNK_ESTOPPED. */
enum px_chunk_status px_chunk_feed(struct px_chunk *c, const char *json, size_t len,
                                   px_chunk_cb cb, void *ctx, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The stream ended (after [DONE] or a broken connection): emits
 * GD_EV_TOOL_END for calls still open. Emits no GD_EV_FINISH. */
enum px_chunk_status px_chunk_end(struct px_chunk *c, px_chunk_cb cb, void *ctx)
	__attribute__((warn_unused_result));

/* Converts a whole non-streaming `chat.completion` body: reasoning_content,
 * content, then for every message.tool_calls[i] GD_EV_TOOL_BEGIN (index i),
 * GD_EV_TOOL_ARGS (the full arguments) and GD_EV_TOOL_END, then GD_EV_FINISH
 * and GD_EV_USAGE. Resets <c> first. */
enum px_chunk_status px_chunk_body(struct px_chunk *c, const char *json, size_t len,
                                   px_chunk_cb cb, void *ctx, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* What the converter learned about the answer so far. */
struct px_chunk_info {
	uint64_t chunks;          /* chunks converted */
	uint64_t skipped_choices; /* choices with index != 0 that were ignored */
	uint64_t tool_calls;      /* calls begun */
	bool finished;            /* a finish_reason was seen */
	char finish_reason[32];
	char id[128];             /* the answer's "id" ("" until seen) */
	char model[128];
};
void px_chunk_info(const struct px_chunk *c, struct px_chunk_info *out);

#endif
