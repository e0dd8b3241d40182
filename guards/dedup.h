/* Within-answer dedup: the same call (name + canonical arguments) made
 * guards.dedup.max_repeats times in one answer trips (max_repeats_repeatable
 * for an input action: pressing a key twice can be meant), and so does the tail of
 * the answer's call sequence repeating a cycle of 2..max_cycle distinct calls
 * (A,B,A,B…) cycle_repeats times, and max_similar calls that are the same but
 * for case, spacing and punctuation of their values (one search spelled
 * again and again). Remembers the last GD_CALL_WINDOW calls. */
#ifndef LW_GUARDS_DEDUP_H
#define LW_GUARDS_DEDUP_H

#include <stdbool.h>
#include <stdint.h>

#include "guards/canon.h"
#include "guards/config.h"
#include "guards/limits.h"
#include "guards/trip.h"

struct gd_dedup {
	uint64_t n;                    /* calls seen */
	uint64_t seq[GD_CALL_WINDOW];  /* ring of call identities */
	uint64_t sim[GD_CALL_WINDOW];  /* ring of their similar identities (0: not counted) */
	float near;                    /* the last call: copies (or spellings) over the limit */
};

void gd_dedup_init(struct gd_dedup *s);
/* Adds the call <id> named <name> and checks; <limit> is the number of
 * identical calls that trips (gd_dedup_limit); <repeatable>: an input action,
 * not counted by max_similar. */
enum gd_verdict gd_dedup_check(struct gd_dedup *s, const struct gd_dedup_config *cfg,
                               const struct gd_call_id *id, uint32_t limit, bool repeatable,
                               const char *name, struct gd_trip *trip);

/* True when tool <name, len> is a repeatable input action. */
bool gd_dedup_repeatable(const struct gd_dedup_config *cfg, const char *name, size_t len);

/* Identical calls of tool <name, len> that trip: max_repeats_repeatable for
 * a repeatable action, max_repeats_mutating for another <mutating> name,
 * else max_repeats. */
uint32_t gd_dedup_limit(const struct gd_dedup_config *cfg, const char *name, size_t len,
                        bool mutating);

#endif
