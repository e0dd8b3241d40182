#include "guards/repeat.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "guards/util.h"

int gd_repeat_init(struct gd_repeat *r, const struct gd_repeat_config *cfg)
{
	uint32_t size = 64;

	memset(r, 0, sizeof(*r));
	r->cfg = cfg;
	while (size < cfg->window_bytes)
		size <<= 1;
	r->ring = malloc(size);
	if (!r->ring)
		return -1;
	r->mask = size - 1;
	return 0;
}

void gd_repeat_fini(struct gd_repeat *r)
{
	free(r->ring);
	r->ring = NULL;
}

void gd_repeat_reset(struct gd_repeat *r)
{
	r->pos = 0;
	r->block = 0;
	r->n_cand = 0;
	memset(r->table, 0, sizeof(r->table));
}

/* A lower bound of need_span that costs nothing: a unit has at most one
 * character per byte. */
static uint64_t need_lower(const struct gd_repeat_config *cfg, uint32_t p)
{
	uint64_t a = (uint64_t)cfg->min_repeats * p;
	return a > cfg->min_span ? a : cfg->min_span;
}

/* Bytes a period-<p> tail ending at byte <n> must cover: min_repeats units
 * and min_span characters (counted at the unit's bytes per character). O(p):
 * computed only once a candidate reaches need_lower. */
static uint64_t need_span(const struct gd_repeat *r, uint32_t p, uint64_t n)
{
	const struct gd_repeat_config *cfg = r->cfg;
	uint64_t chars = 0, a, b;

	for (uint32_t i = 0; i < p; i++)
		chars += (r->ring[(n - i) & r->mask] & 0xc0) != 0x80;
	if (chars == 0)
		chars = 1;
	a = (uint64_t)cfg->min_repeats * p;
	b = ((uint64_t)cfg->min_span * p + chars - 1) / chars;
	return a > b ? a : b;
}

static void add_candidate(struct gd_repeat *r, uint32_t p, uint64_t n)
{
	uint64_t run = 0, limit, need;
	uint32_t victim = 0;

	for (uint32_t i = 0; i < r->n_cand; i++)
		if (r->cand[i].period == p)
			return;
	/* Extend the match backwards (bounded by the window and by what a trip
	 * needs), so a candidate found late still starts from the loop's onset. */
	limit = n + 1 >= p ? n + 1 - p : 0;
	if (limit > (uint64_t)r->mask - p)
		limit = (uint64_t)r->mask - p;
	need = need_lower(r->cfg, p);
	if (limit > need)
		limit = need;
	while (run < limit && r->ring[(n - run) & r->mask] == r->ring[(n - run - p) & r->mask])
		run++;
	if (r->n_cand < GD_REPEAT_CANDIDATES) {
		victim = r->n_cand++;
	} else {
		for (uint32_t i = 1; i < r->n_cand; i++)
			if (r->cand[i].run < r->cand[victim].run)
				victim = i;
		if (r->cand[victim].run > run)
			return;
	}
	r->cand[victim].period = p;
	r->cand[victim].run = run;
	r->cand[victim].need = need;
	r->cand[victim].exact = false;
}

static enum gd_verdict trip_on(struct gd_repeat *r, const struct gd_repeat_cand *c,
                               uint64_t n, enum gd_stream stream, struct gd_trip *trip)
{
	uint64_t span = c->run + c->period;
	uint64_t start = n + 1 - span;
	char unit[64];
	char buf[48];
	uint32_t shown = c->period < sizeof(buf) ? c->period : (uint32_t)sizeof(buf);

	for (uint32_t i = 0; i < shown; i++)
		buf[i] = (char)r->ring[(start + i) & r->mask];
	gd_snippet(unit, sizeof(unit), buf, c->period, shown);
	gd_trip_set(trip, "repeat", stream, start + c->period,
	            "a %" PRIu32 "-byte unit repeated %" PRIu64 " times (%" PRIu64
	            " bytes from offset %" PRIu64 "): \"%s\"",
	            c->period, span / c->period, span, start, unit);
	return GD_TRIP;
}

/* True when candidate <c> covers enough to trip at byte <n>. */
static bool reached(struct gd_repeat *r, struct gd_repeat_cand *c, uint64_t n)
{
	if (c->run + c->period < c->need)
		return false;
	if (!c->exact) {
		c->exact = true;
		c->need = need_span(r, c->period, n);
		return c->run + c->period >= c->need;
	}
	return true;
}

enum gd_verdict gd_repeat_feed(struct gd_repeat *r, const char *data, size_t len,
                               enum gd_stream stream, struct gd_trip *trip)
{
	const struct gd_repeat_config *cfg = r->cfg;
	const unsigned char *p = (const unsigned char *)data;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		uint64_t n = r->pos++;

		r->ring[n & r->mask] = c;
		r->block = (r->block << 8) | c;
		for (uint32_t k = 0; k < r->n_cand;) {
			struct gd_repeat_cand *cd = &r->cand[k];
			if (n >= cd->period && r->ring[(n - cd->period) & r->mask] == c) {
				cd->run++;
				if (reached(r, cd, n))
					return trip_on(r, cd, n, stream, trip);
				k++;
			} else {
				*cd = r->cand[--r->n_cand];
			}
		}
		if (n < 7)
			continue;
		uint32_t h = (uint32_t)((r->block * 0x9e3779b97f4a7c15ULL) >> (64 - GD_REPEAT_TABLE_BITS));
		uint32_t prev = r->table[h];
		r->table[h] = (uint32_t)(n + 1);
		if (!prev)
			continue;
		uint32_t d = (uint32_t)(n + 1) - prev;
		if (d == 0 || d > cfg->max_period || (uint64_t)d + 8 > (uint64_t)r->mask + 1 ||
		    n < (uint64_t)d + 7)
			continue;
		bool same = true;
		for (uint32_t b = 0; b < 8 && same; b++)
			same = r->ring[(n - b) & r->mask] == r->ring[(n - b - d) & r->mask];
		if (!same)
			continue;
		add_candidate(r, d, n);
		for (uint32_t k = 0; k < r->n_cand; k++)
			if (r->cand[k].period == d && reached(r, &r->cand[k], n))
				return trip_on(r, &r->cand[k], n, stream, trip);
	}
	return GD_PASS;
}
