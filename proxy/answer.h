/* The I/O-free answer core (DESIGN.md, "three seams"): one answer's guard
 * events go through the guard pipeline and come out as a verdict per unit
 * (one chunk the client would get): relay it, hold it (a tool call is still
 * incomplete), or trip (the answer is cut). The core keeps the held chunks,
 * the cut points of a non-streaming answer and the answer's identity (id,
 * model, created). The proxy's libevent glue (proxy/chat.c) and
 * loopwarden-audit (audit/replay.c) both drive it, so the proxy and the
 * audit can never disagree about an answer. No libevent, no sockets, no
 * clock: the watchdog's times are passed in by the caller.
 *
 * A unit is what one chunk carries: px_answer_unit_begin, the chunk's events
 * (px_answer_feed), then px_answer_verdict. For an upstream's chunk JSON,
 * px_answer_chunk does all three through the chunk converter; the
 * co-resident engine feeds the events its output parser made. */
#ifndef LW_PROXY_ANSWER_H
#define LW_PROXY_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guards/history.h"
#include "guards/pipeline.h"
#include "guards/policy.h"
#include "proxy/wire/chunk.h"

/* Identity of the answer being written: every chunk of one answer carries
 * the same id, created and model. */
struct px_answer_id {
	char id[128];
	char model[128];
	int64_t created;
};

/* What of a non-streaming answer to keep after a trip. */
struct px_cut {
	size_t text_bytes;      /* of message.content */
	size_t reasoning_bytes; /* of message.reasoning_content / reasoning */
	size_t tool_calls;      /* leading complete calls kept */
};

enum px_verdict {
	PX_VERDICT_RELAY = 0, /* send the unit now, after the held ones */
	PX_VERDICT_HOLD,      /* keep it: a tool call is incomplete (px_answer_hold) */
	PX_VERDICT_TRIP,      /* a guard tripped: drop what is held, cut the answer */
	PX_VERDICT_COUNT
};

/* The current unit's figures. */
struct px_answer_unit {
	uint32_t events; /* events other than usage: progress for the watchdogs */
	uint32_t tokens; /* text, reasoning and argument fragments fed (a metric) */
	bool trip;       /* a guard tripped on this unit */
};

struct px_answer;

/* A core over a pipeline of <policy> with the request's history <hist>
 * (may be NULL); both are borrowed and must outlive the core. Held chunks
 * are capped at <max_held_bytes> of JSON. NULL when out of memory. */
struct px_answer *px_answer_new(const struct gd_policy *policy, const struct gd_history *hist,
                                size_t max_held_bytes);
void px_answer_free(struct px_answer *a); /* NULL is a no-op */

/* The pipeline, for the watchdog timer (gd_pipeline_start / touch / tick /
 * next_deadline_ms) and its stats. */
struct gd_pipeline *px_answer_pipeline(struct px_answer *a);

/* Called after every event the pipeline was fed, with the pipeline's
 * verdict on it (loopwarden-audit --html draws the guards' state from it).
 * Reads only. NULL <fn>: none. */
typedef void (*px_answer_observer)(void *ctx, const struct gd_event *ev, enum gd_verdict v,
                                   const struct gd_pipeline *p);
void px_answer_observe(struct px_answer *a, px_answer_observer fn, void *ctx);

/* Starts a unit: its figures go back to zero. */
void px_answer_unit_begin(struct px_answer *a);
/* Feeds one event of the current unit. Returns 1 once a guard has tripped
 * (the caller stops feeding), else 0. */
int px_answer_feed(struct px_answer *a, const struct gd_event *ev);
/* A unit of its own for one stream chunk's JSON (an upstream's), converted by
 * <conv> (proxy/wire/chunk.h; the caller owns and reuses it) and fed; the
 * answer's identity is learned from the first chunk that has one. Returns
 * px_chunk_feed's status (PX_CHUNK_ESTOPPED after a trip). */
enum px_chunk_status px_answer_chunk(struct px_answer *a, struct px_chunk *conv, const char *json,
                                     size_t len, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* The stream ended (its [DONE], or its end after a finish_reason): a unit
 * with the GD_EV_TOOL_END of every call <conv> still has open. */
enum px_chunk_status px_answer_chunk_end(struct px_answer *a, struct px_chunk *conv)
	__attribute__((warn_unused_result));
/* A whole non-streaming chat.completion body as one unit. */
enum px_chunk_status px_answer_body(struct px_answer *a, struct px_chunk *conv, const char *json,
                                    size_t len, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* What to do with the current unit: TRIP once a guard tripped (on this unit
 * or before), HOLD while the pipeline holds a tool call, else RELAY. */
enum px_verdict px_answer_verdict(const struct px_answer *a);
const struct px_answer_unit *px_answer_unit(const struct px_answer *a);
/* The trip (NULL while none): a guard's, or the watchdog's after a
 * gd_pipeline_tick that tripped. */
const struct gd_trip *px_answer_trip(const struct px_answer *a);
/* Every event fed so far (usage included, the tripping one included). */
uint64_t px_answer_events(const struct px_answer *a);
/* The tokens of the units that did not trip (struct px_answer_unit.tokens
 * summed): what the client got or would get. */
uint64_t px_answer_tokens(const struct px_answer *a);
/* The latest usage the source reported (GD_EV_USAGE), -1 for a count not
 * reported yet. */
void px_answer_usage(const struct px_answer *a, int64_t *prompt_tokens,
                     int64_t *completion_tokens);

/* The tripping unit's part the guards read (issue 12 item 11): the prefix of
 * the tripping text or reasoning event up to the byte that tripped
 * (gd_trip.event_used), and, when a text event tripped, the reasoning the
 * same unit carried before it. The client gets it before the final chunk, so
 * what it holds is what the guards tripped on: sent back to be continued,
 * the history check recognises it. Empty (NULL, 0) when none or out of
 * memory (the part is then not delivered; the cut still is). */
void px_answer_cut_part(const struct px_answer *a, const char **text, size_t *text_len,
                        const char **reasoning, size_t *reasoning_len);

/* Held units: "data: <json>\n\n" kept in order until a RELAY verdict
 * releases them (the caller writes px_answer_held, then clears it). Returns
 * 0, or -1 (nothing kept) when the held JSON would pass max_held_bytes. */
int px_answer_hold(struct px_answer *a, const char *json, size_t len)
	__attribute__((warn_unused_result));
const char *px_answer_held(const struct px_answer *a, size_t *len);
void px_answer_held_clear(struct px_answer *a);

/* Where to cut a non-streaming answer after a trip: the content and
 * reasoning the guards read, up to the byte that tripped (issue 12 item 11:
 * a continuation of the cut answer is then recognised by the history
 * check), and the tool calls completed before a call tripped. */
void px_answer_cut(const struct px_answer *a, struct px_cut *out);

/* The answer's identity; the caller sets it (the co-resident engine names
 * its own answers), px_answer_chunk fills what the upstream's chunks say. */
struct px_answer_id *px_answer_id(struct px_answer *a);

/* The one SSE framing of a JSON event: "data: ", <json> without its raw line
 * ends, "\n\n", written through <put>. An event sent over several data: lines
 * arrives joined by '\n', and an error body may be pretty-printed: raw line
 * ends in valid JSON can only be whitespace between tokens (inside strings
 * they are escaped), so dropping them keeps the event one line. */
void px_frame_json(const char *json, size_t len,
                   void (*put)(void *ctx, const char *bytes, size_t n), void *ctx);

#endif
