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

/* The shortest tail a class rule can trip on: min_blank_lines line breaks
 * take at least as many bytes, min_word_repeats units are that many periods. */
static uint64_t class_lower(const struct gd_repeat_config *cfg, uint32_t p)
{
	uint64_t low = cfg->min_span;

	if (cfg->min_blank_lines && cfg->min_blank_lines < low)
		low = cfg->min_blank_lines;
	if (cfg->min_word_repeats && (uint64_t)cfg->min_word_repeats * p < low)
		low = (uint64_t)cfg->min_word_repeats * p;
	return low;
}

/* What a tail needs without the class rules, in bytes at most. */
static uint64_t need_default(const struct gd_repeat_config *cfg, uint32_t p)
{
	uint64_t a = (uint64_t)cfg->min_repeats * p;
	return a > cfg->min_span ? a : cfg->min_span;
}

/* A lower bound of need_span that costs nothing: a unit has at most one
 * character per byte, and a class rule never asks for less than this. */
static uint64_t need_lower(const struct gd_repeat_config *cfg, uint32_t p)
{
	uint64_t a = (uint64_t)cfg->min_repeats * p;
	uint64_t b = class_lower(cfg, p);
	return a > b ? a : b;
}

/* Byte <i> of the period-<p> unit ending at byte <n>, read cyclically (the
 * tail is periodic, so any rotation of the unit is the same unit). */
static unsigned char unit_at(const struct gd_repeat *r, uint32_t p, uint64_t n, uint64_t i)
{
	return r->ring[(n + 1 - p + i % p) & r->mask];
}

/* Line breaks in the unit when it is blank: whitespace only (raw, or the
 * JSON escapes \n \r \t of a call's arguments), at least one line break.
 * 0 when it is not. */
static uint32_t blank_breaks(const struct gd_repeat *r, uint32_t p, uint64_t n)
{
	uint32_t breaks = 0;

	for (uint64_t i = 0; i < p; i++) {
		unsigned char c = unit_at(r, p, n, i);
		unsigned char prev = unit_at(r, p, n, i + p - 1);
		unsigned char next = unit_at(r, p, n, i + 1);

		if (c == '\n') {
			breaks++;
		} else if (c == ' ' || c == '\t' || c == '\r') {
			continue;
		} else if (c == '\\') {
			if (p < 2 || (next != 'n' && next != 'r' && next != 't'))
				return 0;
		} else if (c == 'n' || c == 'r' || c == 't') {
			if (p < 2 || prev != '\\')
				return 0;
			breaks += c == 'n';
		} else {
			return 0;
		}
	}
	return breaks;
}

static bool is_letter(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* True when the unit is plain words: ASCII letters, spaces, commas and
 * apostrophes, at least one space, and a word of 3+ letters that is not a
 * hex number (so "ff ff ", "ffff ", "p p " and "la la " are not words). */
static bool plain_words(const struct gd_repeat *r, uint32_t p, uint64_t n)
{
	bool space = false, word = false;
	uint32_t run = 0;
	bool nonhex = false;

	for (uint64_t i = 0; i < p; i++) {
		unsigned char c = unit_at(r, p, n, i);

		if (c == ' ')
			space = true;
		else if (!is_letter(c) && c != ',' && c != '\'')
			return false;
	}
	if (!space)
		return false;
	/* Letter runs, read cyclically from just after a space so that a
	 * rotation never splits a word. */
	uint64_t start = 0;
	while (unit_at(r, p, n, start) != ' ')
		start++;
	for (uint64_t i = start + 1; i <= start + p && !word; i++) {
		unsigned char c = unit_at(r, p, n, i);

		if (is_letter(c)) {
			run++;
			nonhex |= !((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
			word = run >= 3 && nonhex;
		} else {
			run = 0;
			nonhex = false;
		}
	}
	return word;
}

/* Bytes a period-<p> tail ending at byte <n> must cover: min_repeats units,
 * and min_span characters (counted at the unit's bytes per character) unless
 * a class rule asks for less: min_blank_lines line breaks for a blank unit,
 * min_word_repeats units for plain words. O(p): computed only once a
 * candidate reaches need_lower. */
static uint64_t need_span(const struct gd_repeat *r, uint32_t p, uint64_t n)
{
	const struct gd_repeat_config *cfg = r->cfg;
	uint64_t chars = 0, a, b;
	uint32_t breaks;

	for (uint32_t i = 0; i < p; i++)
		chars += (r->ring[(n - i) & r->mask] & 0xc0) != 0x80;
	if (chars == 0)
		chars = 1;
	a = (uint64_t)cfg->min_repeats * p;
	b = ((uint64_t)cfg->min_span * p + chars - 1) / chars;
	if (cfg->min_blank_lines && (breaks = blank_breaks(r, p, n)) != 0) {
		uint64_t blank = (cfg->min_blank_lines + breaks - 1) / breaks * (uint64_t)p;
		if (blank < b)
			b = blank;
	}
	if (cfg->min_word_repeats && (uint64_t)cfg->min_word_repeats * p < b &&
	    plain_words(r, p, n))
		b = (uint64_t)cfg->min_word_repeats * p;
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
	if (limit > need_default(r->cfg, p))
		limit = need_default(r->cfg, p);
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
