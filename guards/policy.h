/* gd_policy: an immutable, compiled form of a guard config (PCRE2 patterns
 * compiled once), shared by every request; a reload builds a new one. */
#ifndef LW_GUARDS_POLICY_H
#define LW_GUARDS_POLICY_H

#include <stddef.h>

#include "guards/config.h"

struct gd_policy;

/* Returns NULL and fills <err> when a pattern or value is invalid. Caller
 * owns the result. */
struct gd_policy *gd_policy_new(const struct gd_config *cfg, char *err, size_t errlen);
void gd_policy_free(struct gd_policy *policy);
const struct gd_config *gd_policy_config(const struct gd_policy *policy);

#endif
