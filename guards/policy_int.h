/* The compiled policy's fields, for guard modules only. */
#ifndef LW_GUARDS_POLICY_INT_H
#define LW_GUARDS_POLICY_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "guards/config.h"

struct gd_policy {
	struct gd_config cfg;
	/* The counter rule's detector settings: cfg.repeat with the normalized
	 * stream's window (GD_COUNTER_WINDOW) and longest period (half of it). */
	struct gd_repeat_config counter;
	pcre2_code *permanent; /* all permanent-failure patterns as one alternation; NULL when none */
	pcre2_code *transient; /* all transient patterns; NULL when none */
	pcre2_code *continuation; /* guards.history.continuations; NULL when none */
};

#endif
