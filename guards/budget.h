/* Budgets: max tool calls per answer and max output bytes per answer
 * (content + reasoning + tool arguments). 0 = unlimited. */
#ifndef LW_GUARDS_BUDGET_H
#define LW_GUARDS_BUDGET_H

#include <stdint.h>

#include "guards/config.h"
#include "guards/trip.h"

struct gd_budget {
	uint64_t calls;
	uint64_t bytes;
};

void gd_budget_init(struct gd_budget *b);
/* <n> more output bytes. */
enum gd_verdict gd_budget_bytes(struct gd_budget *b, const struct gd_budget_config *cfg,
                                uint64_t n, struct gd_trip *trip);
/* One more completed call. */
enum gd_verdict gd_budget_call(struct gd_budget *b, const struct gd_budget_config *cfg,
                               struct gd_trip *trip);

#endif
