/* The stall watchdog's state machine: no first event within
 * first_token_timeout_ms of the start, no event within idle_timeout_ms of the
 * last one, or the answer longer than budget.max_wall_ms. Pure: the caller
 * passes a monotonic <now_ms>. A timeout of 0 is disabled. */
#ifndef LW_GUARDS_STALL_H
#define LW_GUARDS_STALL_H

#include <stdbool.h>
#include <stdint.h>

#include "guards/config.h"
#include "guards/trip.h"

struct gd_stall {
	bool started;
	bool got_event;
	uint64_t start_ms;
	uint64_t last_ms;
};

void gd_stall_start(struct gd_stall *s, uint64_t now_ms);
void gd_stall_touch(struct gd_stall *s, uint64_t now_ms);
enum gd_verdict gd_stall_tick(const struct gd_stall *s, const struct gd_watchdog_config *wd,
                              uint32_t max_wall_ms, uint64_t now_ms, struct gd_trip *trip);
/* Milliseconds until gd_stall_tick would trip; UINT64_MAX when never. */
uint64_t gd_stall_deadline(const struct gd_stall *s, const struct gd_watchdog_config *wd,
                           uint32_t max_wall_ms, uint64_t now_ms);

#endif
