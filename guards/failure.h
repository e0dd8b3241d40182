/* The permanent-failure breaker: a new call identical to one whose result
 * already failed permanently guards.failure.max_failures times (in the
 * request's history) trips. Results are classified with the policy's PCRE2
 * patterns; a transient match (timeout, 429, connection refused…) wins over a
 * permanent one, so transient failures never count. */
#ifndef LW_GUARDS_FAILURE_H
#define LW_GUARDS_FAILURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guards/canon.h"
#include "guards/trip.h"

struct gd_policy;
struct gd_history;

enum gd_result_kind {
	GD_RESULT_OK = 0,     /* no failure pattern matched */
	GD_RESULT_PERMANENT,  /* a permanent pattern matched, no transient one */
	GD_RESULT_TRANSIENT,  /* a transient pattern matched */
	GD_RESULT_KIND_COUNT
};

const char *gd_result_kind_name(enum gd_result_kind kind);

/* Classifies the first GD_FAILURE_SCAN bytes of a tool result <text, len>. */
enum gd_result_kind gd_failure_classify(const struct gd_policy *policy,
                                        const char *text, size_t len);

/* Checks a completed call (identities <id>, <name>) against <hist>: its
 * permanent failures are counted back to the latest other call with a
 * mutating name that is not inert (an edit may have fixed the cause:
 * re-running tests that fail with "No such file or directory" after each edit
 * is legitimate), and not at all when <answer_mutated> (a mutating call came
 * earlier in this answer). A call that differs only in volatile members
 * (gd_call_id .stable) counts when its failures are byte-identical.
 * Returns GD_TRIP with <trip> filled, or GD_PASS. *<failures> (may be
 * NULL) gets the permanent failures counted. */
enum gd_verdict gd_failure_check(const struct gd_policy *policy,
                                 const struct gd_history *hist, const struct gd_call_id *id,
                                 bool answer_mutated, const char *name,
                                 uint32_t *failures, struct gd_trip *trip);

#endif
