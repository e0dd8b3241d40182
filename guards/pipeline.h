/* The guard pipeline: one object per answer that owns every guard's state,
 * consumes normalized events and returns the first trip. Pure C: no I/O, no
 * clock (the caller passes time to the stall watchdog), no libevent types. */
#ifndef LW_GUARDS_PIPELINE_H
#define LW_GUARDS_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guards/config.h"
#include "guards/conv.h"
#include "guards/event.h"

enum gd_verdict {
	GD_PASS = 0, /* relay the event now */
	GD_HOLD,     /* keep it: a tool call is incomplete (release on a later PASS) */
	GD_TRIP,     /* a loop: cancel the source, drop what is held, end the answer */
	GD_VERDICT_COUNT
};

/* Which stream a trip's <cut> offset refers to. */
enum gd_stream {
	GD_STREAM_NONE = 0,
	GD_STREAM_TEXT,
	GD_STREAM_REASONING,
	GD_STREAM_TOOL_ARGS,
	GD_STREAM_TOOLS, /* <cut> counts complete tool calls to keep */
	GD_STREAM_COUNT
};

struct gd_trip {
	char guard[32];    /* e.g. "name_run", "repeat", "simhash", "stall" */
	char detail[256];  /* human-readable: what repeated, how often */
	uint64_t event_no; /* 1-based number of the event that tripped */
	enum gd_stream stream;
	uint64_t cut;      /* bytes of <stream> (or calls) before the looping part */
};

/* An immutable, compiled form of a config (PCRE2 patterns compiled once),
 * shared by every request; a reload builds a new one. Returns NULL and fills
 * <err> when a pattern or value is invalid. */
struct gd_policy *gd_policy_new(const struct gd_config *cfg, char *err, size_t errlen);
void gd_policy_free(struct gd_policy *policy);
const struct gd_config *gd_policy_config(const struct gd_policy *policy);

/* The conversation so far, from a request's messages (guards/conv.h; the
 * request reader proxy/wire/request.h parses a body into them): assistant
 * tool_calls with their identity, and the tool results that answered them.
 * The history copies what it keeps: <msgs> may go away afterwards. Returns
 * NULL and fills <err> when out of memory or when a call's arguments object
 * exceeds GD_CANON_MAX_INPUT. Caller owns the result. */
struct gd_history *gd_history_new(const struct gd_policy *policy,
                                  const struct gd_conv_msg *msgs, size_t n_msgs,
                                  char *err, size_t errlen);
void gd_history_free(struct gd_history *hist);

/* Before forwarding: true when the history alone already proves a loop
 * (e.g. an agent re-requesting the continuation of a looping answer); fills
 * <trip>. */
bool gd_history_check(const struct gd_history *hist, struct gd_trip *trip);

/* One answer. <hist> may be NULL (no cross-turn guards); it must outlive the
 * pipeline. */
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

/* Counters for metrics and the audit tool. */
struct gd_stats {
	uint64_t events;
	uint64_t tool_calls;
	uint64_t text_bytes;
	uint64_t reasoning_bytes;
};
void gd_pipeline_stats(const struct gd_pipeline *p, struct gd_stats *out);

const char *gd_verdict_name(enum gd_verdict v);

#endif
