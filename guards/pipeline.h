/* The guard pipeline: one object per answer that owns every guard's state,
 * consumes normalized events and returns the first trip. Pure C: no I/O, no
 * clock (the caller passes time to the stall watchdog), no libevent types.
 * The policy (policy.h) and the request history (history.h) it reads are
 * built by their own modules. */
#ifndef LW_GUARDS_PIPELINE_H
#define LW_GUARDS_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guards/event.h"
#include "guards/trip.h"

struct gd_policy;
struct gd_history;

/* One answer. <hist> may be NULL (no cross-turn guards); it must outlive the
 * pipeline. Allocates only the pipeline (about 10 KiB): each stream's
 * watchdogs are allocated at its first byte and grow with it up to the
 * configured caps, a bounded number of times (never per event). NULL when
 * out of memory. */
struct gd_pipeline *gd_pipeline_new(const struct gd_policy *policy,
                                    const struct gd_history *hist);
void gd_pipeline_free(struct gd_pipeline *p);

/* Feeds one event. After the first GD_TRIP every later call returns GD_TRIP.
 * While any tool call's arguments are incomplete every event (text included)
 * returns GD_HOLD: the caller keeps events in order and relays all it holds
 * at the next GD_PASS, or drops them on GD_TRIP. A call completes when its
 * arguments close as JSON, at its GD_EV_TOOL_END, or at GD_EV_FINISH; the
 * call guards then run on it. */
enum gd_verdict gd_pipeline_feed(struct gd_pipeline *p, const struct gd_event *ev);

/* True while some tool call's arguments are not yet complete JSON: the caller
 * holds what it would relay until this turns false. */
bool gd_pipeline_holding(const struct gd_pipeline *p);

/* The stall watchdog: <now_ms> is any monotonic clock; the caller calls
 * gd_pipeline_touch for every event the source delivers. Returns GD_TRIP (and
 * records the trip) when no first event came within first_token_timeout_ms of
 * the pipeline's start (gd_pipeline_start) or no event within idle_timeout_ms
 * of the last one. */
void gd_pipeline_start(struct gd_pipeline *p, uint64_t now_ms);
void gd_pipeline_touch(struct gd_pipeline *p, uint64_t now_ms);
enum gd_verdict gd_pipeline_tick(struct gd_pipeline *p, uint64_t now_ms);
/* Milliseconds until the stall watchdog would trip (for arming a timer). */
uint64_t gd_pipeline_next_deadline_ms(const struct gd_pipeline *p, uint64_t now_ms);

/* The trip, or NULL while none. */
const struct gd_trip *gd_pipeline_trip(const struct gd_pipeline *p);

/* The guards whose nearness gd_pipeline_near reports. */
enum gd_guard {
	GD_GUARD_NAME_RUN = 0,
	GD_GUARD_DEDUP,
	GD_GUARD_CROSS_TURN,
	GD_GUARD_FAILURE,
	GD_GUARD_REPEAT,
	GD_GUARD_COUNTER,    /* the repeat guard's counter rule */
	GD_GUARD_SIMHASH,
	GD_GUARD_PARAPHRASE,
	GD_GUARD_BUDGET,
	GD_GUARD_COUNT
};

/* Display name: the guard's trip name ("repeat (counter rule)" for the
 * counter rule). */
const char *gd_guard_name(enum gd_guard g);

/* How close each guard is to tripping, 0 (nothing like a loop) to 1 (at its
 * threshold: the guard that tripped reads 1): a stream watchdog's score
 * over what it needs (its best candidate in any stream, text, reasoning or
 * the arguments being written), a call guard's count for the last completed
 * call over its limit, the budgets' use. Read-only, no allocation, O(guard
 * state): for loopwarden-audit's plots, not needed on the proxy's hot path. */
void gd_pipeline_near(const struct gd_pipeline *p, float near[GD_GUARD_COUNT]);

/* The end of the text (GD_STREAM_TEXT) or reasoning stream as the guards
 * read it, up to the trip point when the trip is in that stream: copied into
 * <buf> (at most <cap> bytes, and only what the exact-repeat watchdog's
 * window still holds: guards.repeat.window_bytes; nothing when that guard is
 * off), starting on a character boundary. Returns the bytes copied. For the
 * proxy's memory of recent cuts (proxy/cutmemo.h). */
size_t gd_pipeline_tail(const struct gd_pipeline *p, enum gd_stream stream, char *buf,
                        size_t cap);

/* Counters for metrics and the audit tool. */
struct gd_stats {
	uint64_t events;
	uint64_t tool_calls;
	uint64_t text_bytes;
	uint64_t reasoning_bytes;
};
void gd_pipeline_stats(const struct gd_pipeline *p, struct gd_stats *out);

#endif
