#include "guards/failure.h"

#include <inttypes.h>

#include "guards/history_int.h"
#include "guards/policy_int.h"
#include "guards/util.h"

const char *gd_result_kind_name(enum gd_result_kind kind)
{
	switch (kind) {
	case GD_RESULT_OK: return "ok";
	case GD_RESULT_PERMANENT: return "permanent failure";
	case GD_RESULT_TRANSIENT: return "transient failure";
	case GD_RESULT_KIND_COUNT: break;
	}
	return "unknown";
}

static bool matches(pcre2_code *code, const char *text, size_t len)
{
	pcre2_match_data *md;
	int rc;

	if (!code)
		return false;
	md = pcre2_match_data_create_from_pattern(code, NULL);
	if (!md)
		return false;
	rc = pcre2_match(code, (PCRE2_SPTR)text, len, 0, 0, md, NULL);
	pcre2_match_data_free(md);
	return rc >= 0;
}

enum gd_result_kind gd_failure_classify(const struct gd_policy *policy,
                                        const char *text, size_t len)
{
	if (len > GD_FAILURE_SCAN)
		len = GD_FAILURE_SCAN;
	if (matches(policy->transient, text, len))
		return GD_RESULT_TRANSIENT;
	if (matches(policy->permanent, text, len))
		return GD_RESULT_PERMANENT;
	return GD_RESULT_OK;
}

enum gd_verdict gd_failure_check(const struct gd_policy *policy,
                                 const struct gd_history *hist, const struct gd_call_id *id,
                                 bool answer_mutated, const char *name,
                                 uint32_t *failures_out, struct gd_trip *trip)
{
	const struct gd_failure_config *cfg = &policy->cfg.failure;
	uint32_t first_turn = 0, failures = 0;
	uint64_t loose_result = 0;
	bool have_loose = false;

	if (failures_out)
		*failures_out = 0;
	if (!cfg->enabled || !hist || answer_mutated)
		return GD_PASS;
	if (hist->n_turns > policy->cfg.cross_turn.lookback)
		first_turn = hist->n_turns - policy->cfg.cross_turn.lookback;
	for (size_t i = hist->n_calls; i-- > 0;) {
		const struct gd_hist_call *c = &hist->calls[i];

		if (c->turn < first_turn)
			break;
		if (c->stable != id->stable) {
			if (c->mutating && !c->inert)
				break;
			continue;
		}
		if (!c->has_result || c->kind != GD_RESULT_PERMANENT)
			continue;
		if (c->hash != id->exact) {
			/* The same call but for a volatile member (attempt 2, 3…):
			 * it counts when its failures are byte-identical. */
			if (have_loose && c->result_hash != loose_result)
				continue;
			loose_result = c->result_hash;
			have_loose = true;
		}
		failures++;
	}
	if (failures_out)
		*failures_out = failures;
	if (failures < cfg->max_failures)
		return GD_PASS;
	gd_trip_set(trip, "failure", GD_STREAM_TOOLS, 0,
	            "call %s already failed permanently %" PRIu32 " time%s with the same arguments "
	            "and nothing changed in between",
	            name, failures, failures == 1 ? "" : "s");
	return GD_TRIP;
}
