/* gd_policy: a validated config with its PCRE2 patterns compiled once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guards/policy.h"
#include "guards/policy_int.h"

#define PCRE2_FLAGS (PCRE2_CASELESS | PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF)

/* Every pattern matches whole words: a match may neither begin nor end in
 * the middle of a word (a letter, digit or '_' on both sides of its edge).
 * "rate limit" then does not match "Add rate limiter middleware", nor "503"
 * "v5031". An edge that is not a word character ("Error:", "(7)") is free. */
#define WORD_EDGE "(?:(?<!\\w)|(?!\\w))"

/* Compiles <n> patterns of <list> (each checked alone first, so an error names
 * the entry) into one alternation of whole-word matches. */
static int compile_list(const char *key, const char (*list)[GD_PATTERN_MAX], uint32_t n,
                        pcre2_code **out, char *err, size_t errlen)
{
	size_t cap = (size_t)n * (GD_PATTERN_MAX + 8 + 2 * sizeof(WORD_EDGE)) + 1, len = 0;
	char *all = NULL;
	int rc = -1, ec;
	PCRE2_SIZE eo;
	pcre2_code *code;

	*out = NULL;
	if (n == 0)
		return 0;
	all = malloc(cap);
	if (!all) {
		snprintf(err, errlen, "%s: out of memory", key);
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		code = pcre2_compile((PCRE2_SPTR)list[i], PCRE2_ZERO_TERMINATED, PCRE2_FLAGS,
		                     &ec, &eo, NULL);
		if (!code) {
			PCRE2_UCHAR msg[160];
			pcre2_get_error_message(ec, msg, sizeof(msg));
			snprintf(err, errlen, "%s[%u] '%s': %s at offset %zu", key, i, list[i],
			         (const char *)msg, (size_t)eo);
			goto out;
		}
		pcre2_code_free(code);
		len += (size_t)snprintf(all + len, cap - len, "%s" WORD_EDGE "(?:%s)" WORD_EDGE,
		                        i ? "|" : "", list[i]);
	}
	*out = pcre2_compile((PCRE2_SPTR)all, len, PCRE2_FLAGS, &ec, &eo, NULL);
	if (!*out) {
		snprintf(err, errlen, "%s: the patterns do not combine", key);
		goto out;
	}
	(void)pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE); /* an interpreter fallback is fine */
	rc = 0;
out:
	free(all);
	return rc;
}

static int validate(const struct gd_config *c, char *err, size_t errlen)
{
	/* Configs built by hand skip gd_config_set's ranges: recheck what sizes memory. */
	if (c->repeat.window_bytes < 64 || c->repeat.window_bytes > GD_REPEAT_WINDOW_MAX ||
	    c->repeat.max_period < 1 || c->repeat.min_repeats < 2 ||
	    c->simhash.window < 4 || c->simhash.window > GD_SIMHASH_MAX_WINDOW ||
	    c->simhash.shingle < 1 || c->simhash.shingle > GD_SIMHASH_MAX_SHINGLE ||
	    c->simhash.stride < 1 || c->simhash.min_hits < 1 ||
	    c->simhash.history < 1 || c->simhash.history > GD_SIMHASH_MAX_HISTORY ||
	    c->dedup.max_cycle > GD_MAX_CYCLE || c->dedup.max_repeats < 2 || c->dedup.max_repeats_mutating < 2 ||
	    c->dedup.cycle_repeats < 2 || c->name_run.max_run < 2 ||
	    c->cross_turn.max_rounds < 2 || c->failure.max_failures < 1 ||
	    c->limits.max_args_bytes < 256 || c->limits.max_args_bytes > GD_ARGS_MAX ||
	    c->failure.n_patterns > GD_MAX_PATTERNS || c->failure.n_transient > GD_MAX_PATTERNS ||
	    c->cross_turn.n_mutating > GD_MUTATING_MAX || c->cross_turn.n_volatile > GD_VOLATILE_MAX ||
	    c->dedup.n_repeatable > GD_REPEATABLE_MAX || c->name_run.n_per_tool > GD_PER_TOOL_MAX) {
		snprintf(err, errlen, "a guard value is out of its range (see gd_config_set)");
		return -1;
	}
	if (c->repeat.counter_repeats == 1 || c->repeat.counter_span < 8 ||
	    c->repeat.counter_span > GD_COUNTER_WINDOW / 2) {
		snprintf(err, errlen, "guards.repeat.counter_repeats must be 0 (off) or at least 2, "
		         "guards.repeat.counter_span in [8, %u]", GD_COUNTER_WINDOW / 2);
		return -1;
	}
	if (c->repeat.max_period + 8 > c->repeat.window_bytes) {
		snprintf(err, errlen, "guards.repeat.max_period (%u) must be at most "
		         "guards.repeat.window_bytes - 8 (%u)", c->repeat.max_period,
		         c->repeat.window_bytes - 8);
		return -1;
	}
	if (c->repeat.min_span > c->repeat.window_bytes) {
		snprintf(err, errlen, "guards.repeat.min_span (%u) must be at most "
		         "guards.repeat.window_bytes (%u)", c->repeat.min_span,
		         c->repeat.window_bytes);
		return -1;
	}
	if (c->simhash.stride > c->simhash.window || c->simhash.shingle > c->simhash.window) {
		snprintf(err, errlen, "guards.simhash.stride and guards.simhash.shingle must be "
		         "at most guards.simhash.window (%u)", c->simhash.window);
		return -1;
	}
	if (c->paraphrase.window < 1 || c->paraphrase.window > 31 || c->paraphrase.min_restated < 1 ||
	    c->paraphrase.min_restated > c->paraphrase.window) {
		snprintf(err, errlen, "guards.paraphrase.min_restated must be in [1, "
		         "guards.paraphrase.window], the window at most 31");
		return -1;
	}
	if (c->simhash.min_hits * 2 > 64) {
		snprintf(err, errlen, "guards.simhash.min_hits must be at most 32");
		return -1;
	}
	return 0;
}

struct gd_policy *gd_policy_new(const struct gd_config *cfg, char *err, size_t errlen)
{
	struct gd_policy *p;

	if (err && errlen)
		err[0] = '\0';
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->cfg = *cfg;
	p->counter = cfg->repeat;
	p->counter.window_bytes = GD_COUNTER_WINDOW;
	p->counter.max_period = GD_COUNTER_WINDOW / 2;
	p->counter.enabled = cfg->repeat.enabled && cfg->repeat.counter_repeats > 0;
	if (validate(cfg, err, errlen) ||
	    compile_list("guards.failure.patterns", cfg->failure.patterns,
	                 cfg->failure.n_patterns, &p->permanent, err, errlen) ||
	    compile_list("guards.failure.transient", cfg->failure.transient,
	                 cfg->failure.n_transient, &p->transient, err, errlen)) {
		gd_policy_free(p);
		return NULL;
	}
	return p;
}

void gd_policy_free(struct gd_policy *policy)
{
	if (!policy)
		return;
	pcre2_code_free(policy->permanent);
	pcre2_code_free(policy->transient);
	free(policy);
}

const struct gd_config *gd_policy_config(const struct gd_policy *policy)
{
	return &policy->cfg;
}
