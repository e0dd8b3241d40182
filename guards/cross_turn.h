/* Cross-turn dedup: a new call identical (name + canonical arguments, volatile
 * members such as an attempt counter or a timestamp left out) to the call
 * made in the last max_rounds - 1 rounds of the history, with the same result
 * each time and nothing in between that could have changed it, trips.
 * "Could have changed it": another call whose name holds a mutating word
 * (edit, write, run, bash… guards.cross_turn.mutating) unless it is inert
 * (its twin elsewhere in the history got the identical result: it changed
 * nothing), a mutating call earlier in the same answer, a different result,
 * or a transient failure (the world is still changing: a server still
 * starting). */
#ifndef LW_GUARDS_CROSS_TURN_H
#define LW_GUARDS_CROSS_TURN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guards/canon.h"
#include "guards/config.h"
#include "guards/trip.h"

struct gd_history;

/* True when <name, len> holds one of cfg->mutating's words: as a whole word
 * (split at _ - . / : space and lower-to-upper case changes), or, for words
 * of 5 bytes or more, anywhere ("todowrite"). Caseless. */
bool gd_cross_turn_is_mutating(const struct gd_cross_turn_config *cfg,
                               const char *name, size_t len);

/* Rounds in a row, ending with the newest history call, in which the call of
 * stable identity <stable> was made with one identical result and no change
 * in between. */
uint32_t gd_cross_turn_rounds(const struct gd_cross_turn_config *cfg,
                              const struct gd_history *hist, uint64_t stable);

/* Checks a completed call. <answer_mutated>: a mutating call came earlier in
 * this answer. *<rounds> (may be NULL) gets the rounds this call would make,
 * itself included (0 when not counted). */
enum gd_verdict gd_cross_turn_check(const struct gd_cross_turn_config *cfg,
                                    const struct gd_history *hist, const struct gd_call_id *id,
                                    bool answer_mutated, const char *name,
                                    uint64_t calls_before, uint32_t *rounds,
                                    struct gd_trip *trip);

#endif
