/* Within-answer dedup: the same call (name + canonical arguments) made
 * guards.dedup.max_repeats times in one answer trips (max_repeats_mutating
 * for a call with a mutating name: pressing a key twice can be meant), and so does the tail of
 * the answer's call sequence repeating a cycle of 2..max_cycle distinct calls
 * (A,B,A,B…) cycle_repeats times. Remembers the last GD_CALL_WINDOW calls. */
#ifndef LW_GUARDS_DEDUP_H
#define LW_GUARDS_DEDUP_H

#include <stdbool.h>
#include <stdint.h>

#include "guards/config.h"
#include "guards/limits.h"
#include "guards/pipeline.h"

struct gd_dedup {
	uint64_t n;                    /* calls seen */
	uint64_t seq[GD_CALL_WINDOW];  /* ring of call identities */
};

void gd_dedup_init(struct gd_dedup *s);
/* Adds the call <hash> named <name> (<mutating>: its name is) and checks. */
enum gd_verdict gd_dedup_check(struct gd_dedup *s, const struct gd_dedup_config *cfg,
                               uint64_t hash, bool mutating, const char *name,
                               struct gd_trip *trip);

#endif
