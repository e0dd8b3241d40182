/* Helpers shared by the guard tests: a policy from key=value overrides and
 * one-line event feeders. Header-only, static. */
#ifndef LW_TEST_GUARD_UTIL_H
#define LW_TEST_GUARD_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "guards/history.h"
#include "guards/pipeline.h"
#include "guards/policy.h"

/* A policy from the defaults plus NULL-terminated "key=value" overrides. */
static inline struct gd_policy *tg_policy(const char *const *sets)
{
	struct gd_config cfg;
	char err[256], key[128];
	struct gd_policy *pol;

	gd_config_defaults(&cfg);
	for (size_t i = 0; sets && sets[i]; i++) {
		const char *eq = strchr(sets[i], '=');
		assert_non_null(eq);
		snprintf(key, sizeof(key), "%.*s", (int)(eq - sets[i]), sets[i]);
		if (gd_config_set(&cfg, key, eq + 1, err, sizeof(err)) != 0)
			fail_msg("gd_config_set %s: %s", sets[i], err);
	}
	pol = gd_policy_new(&cfg, err, sizeof(err));
	if (!pol)
		fail_msg("gd_policy_new: %s", err);
	return pol;
}

static inline enum gd_verdict tg_feed(struct gd_pipeline *p, enum gd_event_type type,
                                      uint32_t index, const char *id, const char *name,
                                      const char *data, size_t len)
{
	struct gd_event ev = {
		.type = type, .index = index,
		.id = id, .id_len = id ? strlen(id) : 0,
		.name = name, .name_len = name ? strlen(name) : 0,
		.data = data, .len = len,
		.prompt_tokens = -1, .completion_tokens = -1,
	};
	return gd_pipeline_feed(p, &ev);
}

static inline enum gd_verdict tg_text(struct gd_pipeline *p, const char *s)
{
	return tg_feed(p, GD_EV_TEXT, 0, NULL, NULL, s, strlen(s));
}

static inline enum gd_verdict tg_reasoning(struct gd_pipeline *p, const char *s)
{
	return tg_feed(p, GD_EV_REASONING, 0, NULL, NULL, s, strlen(s));
}

static inline enum gd_verdict tg_begin(struct gd_pipeline *p, uint32_t index, const char *id,
                                       const char *name)
{
	return tg_feed(p, GD_EV_TOOL_BEGIN, index, id, name, NULL, 0);
}

static inline enum gd_verdict tg_args(struct gd_pipeline *p, uint32_t index, const char *id,
                                      const char *s)
{
	return tg_feed(p, GD_EV_TOOL_ARGS, index, id, NULL, s, strlen(s));
}

static inline enum gd_verdict tg_end(struct gd_pipeline *p, uint32_t index, const char *id)
{
	return tg_feed(p, GD_EV_TOOL_END, index, id, NULL, NULL, 0);
}

static inline enum gd_verdict tg_finish(struct gd_pipeline *p, const char *reason)
{
	return tg_feed(p, GD_EV_FINISH, 0, NULL, NULL, reason, strlen(reason));
}

/* A whole call, arguments in fragments of <chunk> bytes (llama.cpp style:
 * id only on the first delta). Returns the verdict of the last event; every
 * earlier one must be GD_HOLD (or GD_TRIP, which ends the feeding). */
static inline enum gd_verdict tg_call(struct gd_pipeline *p, uint32_t index, const char *id,
                                      const char *name, const char *args, size_t chunk)
{
	enum gd_verdict v = tg_begin(p, index, id, name);
	size_t len = strlen(args);

	if (v == GD_TRIP)
		return v;
	assert_int_equal(v, GD_HOLD);
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		v = tg_feed(p, GD_EV_TOOL_ARGS, index, NULL, NULL, args + off, n);
		if (v == GD_TRIP || off + n == len)
			return v;
		assert_int_equal(v, GD_HOLD);
	}
	return v;
}

/* Feeds <s> as text in chunks of <chunk> bytes; returns the number of the
 * chunk that tripped (1-based) or 0. */
static inline size_t tg_text_chunks(struct gd_pipeline *p, enum gd_event_type type,
                                    const char *s, size_t chunk)
{
	size_t len = strlen(s), n = 0;

	for (size_t off = 0; off < len; off += chunk) {
		size_t k = len - off < chunk ? len - off : chunk;
		n++;
		if (tg_feed(p, type, 0, NULL, NULL, s + off, k) == GD_TRIP)
			return n;
	}
	return 0;
}

/* Appends printf output to a growing heap string. */
static inline void tg_appendf(char **buf, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static inline void tg_appendf(char **buf, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	*buf = realloc(*buf, *len + (size_t)n + 1);
	assert_non_null(*buf);
	va_start(ap, fmt);
	vsnprintf(*buf + *len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	*len += (size_t)n;
}

#endif
