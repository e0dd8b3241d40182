/* The name-run cap: the same tool name guards.name_run.max_run times in a row
 * within one answer (whatever the arguments) trips. */
#ifndef LW_GUARDS_NAME_RUN_H
#define LW_GUARDS_NAME_RUN_H

#include <stdint.h>

#include "guards/config.h"
#include "guards/trip.h"

struct gd_name_run {
	uint64_t last;   /* hash of the previous call's name */
	uint32_t run;    /* calls in a row with that name */
};

void gd_name_run_init(struct gd_name_run *s);
/* A call named <name> (hash <name_hash>) completed, <calls_before> calls
 * completed before it. */
enum gd_verdict gd_name_run_check(struct gd_name_run *s, const struct gd_name_run_config *cfg,
                                  uint64_t name_hash, const char *name,
                                  uint64_t calls_before, struct gd_trip *trip);

#endif
