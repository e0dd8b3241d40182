/* gd_policy: a validated config with its PCRE2 patterns compiled once. */
#include <stdarg.h>
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

/* Blames <key> (and <key2>, for a cross-key constraint, when the reason
 * names both) in <f>; returns -1. */
static int fault(struct cfg_fault *f, const char *key, const char *key2, const char *entry,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fault(struct cfg_fault *f, const char *key, const char *key2, const char *entry,
                 const char *fmt, ...)
{
	va_list ap;

	memset(f, 0, sizeof(*f));
	f->key = key;
	f->key2 = key2;
	f->entry = entry;
	va_start(ap, fmt);
	vsnprintf(f->why, sizeof(f->why), fmt, ap);
	va_end(ap);
	return -1;
}

/* Compiles each of the <n> patterns of <list> alone (so an error names the
 * entry and the offset within it), then all of them as one alternation of
 * whole-word matches, into *<out> (NULL when <n> is 0). */
static int compile_list(const char *key, const char (*list)[GD_PATTERN_MAX], uint32_t n,
                        pcre2_code **out, struct cfg_fault *f)
{
	size_t cap = (size_t)n * (GD_PATTERN_MAX + 8 + 2 * sizeof(WORD_EDGE)) + 1, len = 0;
	size_t starts[GD_MAX_PATTERNS];
	char *all = NULL;
	int rc = -1, ec;
	PCRE2_SIZE eo;
	PCRE2_UCHAR msg[160];
	pcre2_code *code;

	*out = NULL;
	if (n == 0)
		return 0;
	all = malloc(cap);
	if (!all) {
		fault(f, key, NULL, NULL, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		code = pcre2_compile((PCRE2_SPTR)list[i], PCRE2_ZERO_TERMINATED, PCRE2_FLAGS,
		                     &ec, &eo, NULL);
		if (!code) {
			pcre2_get_error_message(ec, msg, sizeof(msg));
			fault(f, key, NULL, list[i], "pattern '%s' does not compile: %s at offset %zu",
			      list[i], (const char *)msg, (size_t)eo);
			goto out;
		}
		pcre2_code_free(code);
		len += (size_t)snprintf(all + len, cap - len, "%s" WORD_EDGE "(?:", i ? "|" : "");
		starts[i] = len;
		len += (size_t)snprintf(all + len, cap - len, "%s)" WORD_EDGE, list[i]);
	}
	*out = pcre2_compile((PCRE2_SPTR)all, len, PCRE2_FLAGS, &ec, &eo, NULL);
	if (!*out) {
		uint32_t i = 0;

		/* Name the entry the combined pattern fails in (e.g. a group
		 * name that another entry uses too). */
		while (i + 1 < n && starts[i + 1] <= (size_t)eo)
			i++;
		pcre2_get_error_message(ec, msg, sizeof(msg));
		fault(f, key, NULL, list[i], "pattern '%s' does not combine with the entries "
		      "before it into one alternation: %s at offset %zu", list[i],
		      (const char *)msg, (size_t)eo > starts[i] ? (size_t)eo - starts[i] : 0);
		goto out;
	}
	(void)pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE); /* an interpreter fallback is fine */
	rc = 0;
out:
	free(all);
	return rc;
}

/* The cross-key constraints, and the ranges again: configs built by hand
 * skip gd_config_set's, and these sizes decide memory. */
static int validate(const struct gd_config *c, struct cfg_fault *f)
{
	if (c->repeat.window_bytes < 64 || c->repeat.window_bytes > GD_REPEAT_WINDOW_MAX ||
	    c->repeat.max_period < 1 || c->repeat.min_repeats < 2 ||
	    c->simhash.window < 4 || c->simhash.window > GD_SIMHASH_MAX_WINDOW ||
	    c->simhash.shingle < 1 || c->simhash.shingle > GD_SIMHASH_MAX_SHINGLE ||
	    c->simhash.stride < 1 || c->simhash.min_hits < 1 || c->simhash.min_hits > 32 ||
	    c->simhash.history < 1 || c->simhash.history > GD_SIMHASH_MAX_HISTORY ||
	    c->dedup.max_cycle > GD_MAX_CYCLE || c->dedup.max_repeats < 2 || c->dedup.max_repeats_mutating < 2 ||
	    c->dedup.cycle_repeats < 2 || c->name_run.max_run < 2 ||
	    c->cross_turn.max_rounds < 2 || c->failure.max_failures < 1 ||
	    c->limits.max_args_bytes < 256 || c->limits.max_args_bytes > GD_ARGS_MAX ||
	    c->failure.n_patterns > GD_MAX_PATTERNS || c->failure.n_transient > GD_MAX_PATTERNS ||
	    c->cross_turn.n_mutating > GD_MUTATING_MAX || c->dedup.n_repeatable > GD_REPEATABLE_MAX ||
	    c->cross_turn.n_volatile > GD_VOLATILE_MAX || c->name_run.n_per_tool > GD_PER_TOOL_MAX ||
	    c->history.n_continuations > GD_MAX_PATTERNS)
		return fault(f, NULL, NULL, NULL, "a guard value is out of its range (see gd_config_set)");
	if (c->repeat.counter_repeats == 1)
		return fault(f, "guards.repeat.counter_repeats", NULL, NULL,
		             "guards.repeat.counter_repeats must be 0 (off) or at least 2");
	if (c->repeat.counter_span < 8 || c->repeat.counter_span > GD_COUNTER_WINDOW / 2)
		return fault(f, "guards.repeat.counter_span", NULL, NULL,
		             "guards.repeat.counter_span (%u) must be in [8, %u]",
		             c->repeat.counter_span, GD_COUNTER_WINDOW / 2);
	if (c->paraphrase.window < 1 || c->paraphrase.window > 31 || c->paraphrase.min_restated < 1 ||
	    c->paraphrase.min_restated > c->paraphrase.window)
		return fault(f, "guards.paraphrase.min_restated", "guards.paraphrase.window", NULL,
		             "guards.paraphrase.min_restated (%u) must be in [1, "
		             "guards.paraphrase.window (%u)], the window at most 31",
		             c->paraphrase.min_restated, c->paraphrase.window);
	if (c->repeat.max_period + 8 > c->repeat.window_bytes)
		return fault(f, "guards.repeat.max_period", "guards.repeat.window_bytes",
		             NULL, "guards.repeat.max_period (%u) must be at most "
		             "guards.repeat.window_bytes - 8 (%u)", c->repeat.max_period,
		             c->repeat.window_bytes - 8);
	if (c->repeat.min_span > c->repeat.window_bytes)
		return fault(f, "guards.repeat.min_span", "guards.repeat.window_bytes", NULL,
		             "guards.repeat.min_span (%u) must be at most "
		             "guards.repeat.window_bytes (%u)", c->repeat.min_span,
		             c->repeat.window_bytes);
	if (c->simhash.stride > c->simhash.window)
		return fault(f, "guards.simhash.stride", "guards.simhash.window", NULL,
		             "guards.simhash.stride (%u) must be at most guards.simhash.window (%u)",
		             c->simhash.stride, c->simhash.window);
	if (c->simhash.shingle > c->simhash.window)
		return fault(f, "guards.simhash.shingle", "guards.simhash.window", NULL,
		             "guards.simhash.shingle (%u) must be at most guards.simhash.window (%u)",
		             c->simhash.shingle, c->simhash.window);
	/* Only windows that do not overlap the current one are compared: a
	 * shorter history holds none and the guard could never trip. */
	if ((uint64_t)c->simhash.history * c->simhash.stride < c->simhash.window)
		return fault(f, "guards.simhash.history", "guards.simhash.window", NULL,
		             "guards.simhash.history (%u) x guards.simhash.stride (%u) must be at "
		             "least guards.simhash.window (%u), or every window kept overlaps the "
		             "current one and the guard never trips", c->simhash.history,
		             c->simhash.stride, c->simhash.window);
	/* A cycle is searched only within the calls remembered per answer. */
	if ((uint64_t)c->dedup.max_cycle * c->dedup.cycle_repeats > GD_CALL_WINDOW)
		return fault(f, "guards.dedup.max_cycle", "guards.dedup.cycle_repeats", NULL,
		             "guards.dedup.max_cycle (%u) x guards.dedup.cycle_repeats (%u) must be "
		             "at most %u (the calls remembered per answer), or the longer cycles are "
		             "never detected", c->dedup.max_cycle, c->dedup.cycle_repeats,
		             GD_CALL_WINDOW);
	return 0;
}

/* Everything gd_config_check checks; the compiled alternations are handed
 * to the caller in *<perm>, *<trans> and *<cont> (NULL for an empty list). */
static int check(const struct gd_config *c, struct cfg_fault *f, pcre2_code **perm,
                 pcre2_code **trans, pcre2_code **cont)
{
	*perm = *trans = *cont = NULL;
	if (validate(c, f) ||
	    compile_list("guards.failure.patterns", c->failure.patterns, c->failure.n_patterns,
	                 perm, f) ||
	    compile_list("guards.failure.transient", c->failure.transient,
	                 c->failure.n_transient, trans, f) ||
	    compile_list("guards.history.continuations", c->history.continuations,
	                 c->history.n_continuations, cont, f)) {
		pcre2_code_free(*perm);
		pcre2_code_free(*trans);
		*perm = *trans = NULL;
		return -1;
	}
	return 0;
}

int gd_config_check(const struct gd_config *cfg, struct cfg_fault *fault_out)
{
	pcre2_code *perm, *trans, *cont;

	memset(fault_out, 0, sizeof(*fault_out));
	if (check(cfg, fault_out, &perm, &trans, &cont))
		return -1;
	pcre2_code_free(perm);
	pcre2_code_free(trans);
	pcre2_code_free(cont);
	return 0;
}

struct gd_policy *gd_policy_new(const struct gd_config *cfg, char *err, size_t errlen)
{
	struct gd_policy *p;
	struct cfg_fault f;

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
	if (check(cfg, &f, &p->permanent, &p->transient, &p->continuation)) {
		/* No positions here: callers with a config file use
		 * gd_config_check and cfg_fault_format instead. */
		if (f.entry) {
			const char *base = strcmp(f.key, "guards.failure.patterns") == 0
			                   ? cfg->failure.patterns[0]
			                   : strcmp(f.key, "guards.failure.transient") == 0
			                   ? cfg->failure.transient[0] : cfg->history.continuations[0];

			snprintf(err, errlen, "%s[%zu]: %s", f.key,
			         (size_t)(f.entry - base) / GD_PATTERN_MAX, f.why);
		} else if (f.key && !f.key2)
			snprintf(err, errlen, "key '%s': %s", f.key, f.why);
		else
			snprintf(err, errlen, "%s", f.why);
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
	pcre2_code_free(policy->continuation);
	free(policy);
}

const struct gd_config *gd_policy_config(const struct gd_policy *policy)
{
	return &policy->cfg;
}
