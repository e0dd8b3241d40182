/* The name-run cap: the same tool name guards.name_run.max_run times in a row
 * within one answer trips — a search or a listing run again and again with
 * one more variant. Identical calls trip dedup at 2 and near-identical ones at
 * dedup.max_similar, so a run this guard sees is a run of distinct calls; tools
 * that read one named thing per call (guards.name_run.per_tool: read, view)
 * may run longer, since reading twenty different files is thoroughness. */
#ifndef LW_GUARDS_NAME_RUN_H
#define LW_GUARDS_NAME_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "guards/config.h"
#include "guards/trip.h"

struct gd_name_run {
	uint64_t last;   /* hash of the previous call's name */
	uint32_t run;    /* calls in a row with that name */
	uint32_t cap;    /* the run length that trips that name (0: never) */
};

void gd_name_run_init(struct gd_name_run *s);
/* The run length that trips tool <name, len>: the first per_tool entry whose
 * word it holds (matched like cross_turn.mutating), else max_run; 0 = never. */
uint32_t gd_name_run_cap(const struct gd_name_run_config *cfg, const char *name, size_t len);

/* A call named <name, name_len> (hash <name_hash>) completed, <calls_before>
 * calls completed before it. */
enum gd_verdict gd_name_run_check(struct gd_name_run *s, const struct gd_name_run_config *cfg,
                                  uint64_t name_hash, const char *name, size_t name_len,
                                  uint64_t calls_before, struct gd_trip *trip);

/* How close the current run is to its cap (0 to 1). Read-only, for plots. */
float gd_name_run_near(const struct gd_name_run *s);

#endif
