#include "guards/stall.h"

#include <inttypes.h>

#include "guards/util.h"

void gd_stall_start(struct gd_stall *s, uint64_t now_ms)
{
	s->started = true;
	s->got_event = false;
	s->start_ms = now_ms;
	s->last_ms = now_ms;
}

void gd_stall_touch(struct gd_stall *s, uint64_t now_ms)
{
	if (!s->started)
		gd_stall_start(s, now_ms);
	s->got_event = true;
	s->last_ms = now_ms;
}

/* Absolute times at which each rule fires (UINT64_MAX: never). */
static uint64_t idle_at(const struct gd_stall *s, const struct gd_watchdog_config *wd)
{
	if (!s->got_event)
		return wd->first_token_timeout_ms ? s->start_ms + wd->first_token_timeout_ms
		                                  : UINT64_MAX;
	return wd->idle_timeout_ms ? s->last_ms + wd->idle_timeout_ms : UINT64_MAX;
}

static uint64_t wall_at(const struct gd_stall *s, uint32_t max_wall_ms)
{
	return max_wall_ms ? s->start_ms + max_wall_ms : UINT64_MAX;
}

enum gd_verdict gd_stall_tick(const struct gd_stall *s, const struct gd_watchdog_config *wd,
                              uint32_t max_wall_ms, uint64_t now_ms, struct gd_trip *trip)
{
	if (!s->started)
		return GD_PASS;
	if (now_ms >= idle_at(s, wd)) {
		if (!s->got_event)
			gd_trip_set(trip, "stall", GD_STREAM_NONE, 0,
			            "no first token within %" PRIu32 " ms", wd->first_token_timeout_ms);
		else
			gd_trip_set(trip, "stall", GD_STREAM_NONE, 0,
			            "no event for %" PRIu64 " ms (limit %" PRIu32 " ms)",
			            now_ms - s->last_ms, wd->idle_timeout_ms);
		return GD_TRIP;
	}
	if (now_ms >= wall_at(s, max_wall_ms)) {
		gd_trip_set(trip, "budget", GD_STREAM_NONE, 0,
		            "answer took longer than %" PRIu32 " ms", max_wall_ms);
		return GD_TRIP;
	}
	return GD_PASS;
}

uint64_t gd_stall_deadline(const struct gd_stall *s, const struct gd_watchdog_config *wd,
                           uint32_t max_wall_ms, uint64_t now_ms)
{
	uint64_t at, w;

	if (!s->started)
		return UINT64_MAX;
	at = idle_at(s, wd);
	w = wall_at(s, max_wall_ms);
	if (w < at)
		at = w;
	if (at == UINT64_MAX)
		return UINT64_MAX;
	return at > now_ms ? at - now_ms : 0;
}
