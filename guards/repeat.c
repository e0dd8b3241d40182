#include "guards/repeat.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "guards/util.h"

/* Table entries: an 11-bit tag of the block's hash, an occupied flag, and the
 * block's position + 1 modulo 2^20. The tag spares verifying the bytes of
 * blocks that only share a slot; a position taken modulo 2^20 may name the
 * wrong earlier block, which the byte check then refuses or finds equal (a
 * genuine repeat at that distance either way). */
#define POS_BITS 20
#define POS_MASK ((1u << POS_BITS) - 1)
#define FLAG (1u << POS_BITS)
#define TAG_BITS 11

static uint32_t bits_for(const struct gd_repeat *r, uint32_t size)
{
	uint32_t bits = 4;

	while (bits < r->bits_max && (2u << (bits + 2)) <= size)
		bits++;
	return bits;
}

static inline uint32_t entry_of(const struct gd_repeat *r, uint64_t block, uint64_t n,
                                uint32_t *slot)
{
	uint64_t h = block * 0x9e3779b97f4a7c15ULL;

	/* The slot from the top table_bits bits, the tag from the next ones:
	 * (h << table_bits) >> (64 - TAG_BITS) is those, shifted in place. */
	*slot = (uint32_t)(h >> (64 - r->table_bits));
	return (uint32_t)((h << r->table_bits) >> (64 - TAG_BITS)) << (POS_BITS + 1) | FLAG |
	       ((uint32_t)(n + 1) & POS_MASK);
}

/* Sets the ring to <size> bytes in a new allocation (table, then the counter
 * mode's raw offsets, then the ring). The stream so far (pos <= the old
 * size) is copied and the table rebuilt from it, so the detector goes on
 * as if it had had this size from the start. Returns -1 when out of memory
 * (nothing changed). */
static int resize(struct gd_repeat *r, uint32_t size)
{
	uint32_t bits = bits_for(r, size);
	size_t table = (size_t)4 << bits, raw = r->norm ? (size_t)4 * size : 0;
	unsigned char *mem = malloc(table + raw + size);
	uint32_t *tbl, *raw_lo;
	unsigned char *ring;
	uint64_t keep = r->pos;

	if (!mem)
		return -1;
	tbl = (uint32_t *)(void *)mem;
	raw_lo = (uint32_t *)(void *)(mem + table);
	ring = mem + table + raw;
	memset(tbl, 0, table);
	if (r->ring) {
		/* pos <= the old size: byte i of the stream is at index i. */
		memcpy(ring, r->ring, (size_t)keep);
		if (r->norm)
			memcpy(raw_lo, r->norm->raw_lo, (size_t)keep * 4);
		free(r->table);
	}
	r->table = tbl;
	r->table_bits = bits;
	r->ring = ring;
	r->mask = size - 1;
	if (r->norm)
		r->norm->raw_lo = raw_lo;
	r->dmax = r->cfg->max_period < size - 8 ? r->cfg->max_period : size - 8;
	r->grow_at = size < r->size_max ? size : UINT64_MAX;
	/* The table as if built from the start at this size. */
	uint64_t block = 0;
	for (uint64_t i = 0; i < keep; i++) {
		uint32_t slot, e;
		block = (block << 8) | ring[i];
		if (i < 7)
			continue;
		e = entry_of(r, block, i, &slot);
		tbl[slot] = e;
	}
	return 0;
}

static int init_with(struct gd_repeat *r, const struct gd_repeat_config *cfg, uint32_t bits,
                     bool counter)
{
	uint32_t size = 64;

	memset(r, 0, sizeof(*r));
	r->cfg = cfg;
	while (size < cfg->window_bytes)
		size <<= 1;
	r->size_max = size;
	r->bits_max = bits;
	if (counter) {
		r->norm = calloc(1, sizeof(*r->norm));
		if (!r->norm)
			return -1;
	}
	if (resize(r, size < GD_REPEAT_RING_MIN ? size : GD_REPEAT_RING_MIN)) {
		gd_repeat_fini(r);
		return -1;
	}
	return 0;
}

int gd_repeat_init(struct gd_repeat *r, const struct gd_repeat_config *cfg)
{
	return init_with(r, cfg, GD_REPEAT_TABLE_BITS, false);
}

int gd_repeat_init_counter(struct gd_repeat *r, const struct gd_repeat_config *cfg)
{
	/* The normalized stream's window is small: a small table stays in
	 * cache. */
	return init_with(r, cfg, GD_COUNTER_TABLE_BITS, true);
}

void gd_repeat_fini(struct gd_repeat *r)
{
	free(r->table); /* the ring's allocation */
	r->table = NULL;
	r->ring = NULL;
	free(r->norm);
	r->norm = NULL;
}

void gd_repeat_reset(struct gd_repeat *r)
{
	r->pos = 0;
	r->block = 0;
	r->n_cand = 0;
	memset(r->table, 0, (size_t)4 << r->table_bits);
	r->grow_at = r->mask + 1 < r->size_max ? r->mask + 1 : UINT64_MAX;
	if (r->norm) {
		uint32_t *raw_lo = r->norm->raw_lo;
		memset(r->norm, 0, sizeof(*r->norm));
		r->norm->raw_lo = raw_lo;
	}
}

/* The stream has filled the ring: double it (out of memory: stay). */
static __attribute__((noinline)) void grow(struct gd_repeat *r)
{
	if (resize(r, (r->mask + 1) * 2))
		r->grow_at = UINT64_MAX;
}

/* Counter mode: what a unit needs, in normalized bytes, when it holds a word. */
static uint64_t need_counter(const struct gd_repeat_config *cfg, uint32_t p)
{
	uint64_t a = (uint64_t)cfg->counter_repeats * p;
	return a > cfg->counter_span ? a : cfg->counter_span;
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

/* Bytes of min_repeats copies of a period-<p> unit, the last one counted
 * once its first GD_REPEAT_LAST_COPY bytes repeat: after two back-to-back
 * copies of a long paragraph, the start of a third is the loop (a passage
 * quoted twice is followed by something else). */
static uint64_t copies(const struct gd_repeat_config *cfg, uint32_t p)
{
	uint32_t last = p < GD_REPEAT_LAST_COPY ? p : GD_REPEAT_LAST_COPY;

	return (uint64_t)(cfg->min_repeats - 1) * p + last;
}

/* What a tail needs without the class rules, in bytes at most. */
static uint64_t need_default(const struct gd_repeat *r, uint32_t p)
{
	const struct gd_repeat_config *cfg = r->cfg;
	uint64_t a = copies(cfg, p);

	if (r->norm)
		return need_counter(cfg, p);
	return a > cfg->min_span ? a : cfg->min_span;
}

/* A lower bound of need_span that costs nothing: a unit has at most one
 * character per byte, and a class rule never asks for less than this. */
static uint64_t need_lower(const struct gd_repeat *r, uint32_t p)
{
	const struct gd_repeat_config *cfg = r->cfg;
	uint64_t a = copies(cfg, p);
	uint64_t b = class_lower(cfg, p);

	if (r->norm)
		return need_counter(cfg, p);
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

/* True when the unit holds a word: a run of 3+ ASCII letters that is not a
 * hex number ("type", "GET"; not "ff", "0xff", "abc"). Read cyclically from
 * a non-letter so a rotation never splits a word; a unit of letters only
 * (a rotation of "thethe") counts when its letters are not all hex. */
static bool has_word(const struct gd_repeat *r, uint32_t p, uint64_t n)
{
	uint64_t start = 0;
	uint32_t run = 0;
	bool nonhex = false;

	while (start < p && is_letter(unit_at(r, p, n, start)))
		start++;
	for (uint64_t i = start; i < start + p; i++) {
		unsigned char c = unit_at(r, p, n, i);

		if (is_letter(c)) {
			run++;
			nonhex |= !((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
			if (run >= 3 && nonhex)
				return true;
		} else {
			run = 0;
			nonhex = false;
		}
	}
	return false;
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

	if (r->norm)
		return has_word(r, p, n) ? need_counter(cfg, p) : UINT64_MAX;
	for (uint32_t i = 0; i < p; i++)
		chars += (r->ring[(n - i) & r->mask] & 0xc0) != 0x80;
	if (chars == 0)
		chars = 1;
	a = copies(cfg, p);
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
	need = need_lower(r, p);
	if (limit > need_default(r, p))
		limit = need_default(r, p);
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

/* Counter mode: the raw stream offset of normalized byte <x> (still in the
 * ring). */
static uint64_t raw_offset(const struct gd_repeat *r, uint64_t x)
{
	const struct gd_repeat_norm *nm = r->norm;
	uint32_t lo = nm->raw_lo[x & r->mask];

	return nm->raw_pos - (uint32_t)((uint32_t)nm->raw_pos - lo);
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
	if (r->norm) {
		uint64_t from = raw_offset(r, start);
		/* The unit is shown normalized: say what '#' stands for only
		 * when it holds one (a byte-identical repeat has none). */
		gd_trip_set(trip, "repeat", stream, raw_offset(r, start + c->period),
		            "a %" PRIu32 "-character unit repeated %" PRIu64 " times, counters "
		            "and spacing aside (from offset %" PRIu64 "): \"%s\"%s",
		            c->period, span / c->period, from, unit,
		            strchr(unit, '#') ? " (# stands for a number)" : "");
		trip->at = r->norm->raw_pos; /* the raw byte being read */
		return GD_TRIP;
	}
	gd_trip_set(trip, "repeat", stream, start + c->period,
	            "a %" PRIu32 "-byte unit repeated %" PRIu64 " times (%" PRIu64
	            " bytes from offset %" PRIu64 "): \"%s\"",
	            c->period, span / c->period, span, start, unit);
	trip->at = n + 1;
	return GD_TRIP;
}

/* The committed number at normalized position <pos>, searched among the
 * records before index <below>; NULL when it is not (or no longer) kept. */
static const struct gd_repeat_num *number_at(const struct gd_repeat_norm *nm, uint64_t pos,
                                             uint64_t below)
{
	uint64_t lo = nm->n_nums > GD_COUNTER_NUMBERS ? nm->n_nums - GD_COUNTER_NUMBERS : 0;
	uint64_t hi = below;

	while (lo < hi) { /* records are in increasing position order */
		uint64_t mid = lo + (hi - lo) / 2;
		const struct gd_repeat_num *m = &nm->nums[mid % GD_COUNTER_NUMBERS];
		if (m->pos == pos)
			return m;
		if (m->pos < pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Counter mode: the copies of the unit may differ only in a counter. Each
 * number of a copy is compared with the one a period earlier: per place in
 * the unit the step must not change from copy to copy, and every place that
 * changes must change by the same step (one counter, possibly printed more
 * than once: "| 7 | Item 7 |"). A table of measurements, CSV rows or
 * "f(1) == 2, f(2) == 4" fail this; a row number, "Attempt 7" or a constant
 * "3.0" pass. False when a number needed is no longer kept. */
static bool counter_ok(const struct gd_repeat *r, const struct gd_repeat_cand *c, uint64_t n)
{
	const struct gd_repeat_norm *nm = r->norm;
	uint64_t p = c->period, start = n + 1 - (c->run + p);
	uint64_t oldest = nm->n_nums > GD_COUNTER_NUMBERS ? nm->n_nums - GD_COUNTER_NUMBERS : 0;
	struct counter_slot { uint64_t off; int64_t step; } slot[GD_COUNTER_SLOTS];
	uint32_t n_slots = 0;
	int64_t common = 0;

	for (uint64_t k = nm->n_nums; k-- > oldest;) {
		const struct gd_repeat_num *a = &nm->nums[k % GD_COUNTER_NUMBERS];
		const struct gd_repeat_num *b;
		uint64_t off;
		int64_t step;
		uint32_t j;

		if (a->pos > n)
			continue;
		if (a->pos < start + p)
			break;
		b = number_at(nm, a->pos - p, k);
		if (!b)
			return false;
		if ((a->big || b->big) && a->value != b->value)
			return false;
		step = (int64_t)(a->value - b->value);
		off = (n - a->pos) % p;
		for (j = 0; j < n_slots && slot[j].off != off; j++)
			;
		if (j == n_slots) {
			if (n_slots == GD_COUNTER_SLOTS)
				return false;
			slot[n_slots++] = (struct counter_slot){ off, step };
		} else if (slot[j].step != step) {
			return false;
		}
		if (step && common && step != common)
			return false;
		if (step)
			common = step;
	}
	return true;
}

/* True when candidate <c> covers enough to trip at byte <n>. */
static bool reached(struct gd_repeat *r, struct gd_repeat_cand *c, uint64_t n)
{
	if (c->run + c->period < c->need)
		return false;
	if (!c->exact) {
		c->exact = true;
		c->need = need_span(r, c->period, n);
		if (c->run + c->period < c->need)
			return false;
	}
	if (r->norm && !counter_ok(r, c, n)) {
		/* Not a counter (yet): look again one period later. */
		c->need = c->run + 2 * (uint64_t)c->period;
		return false;
	}
	return true;
}

/* A block seen before at distance <d> (tag matched): verify its bytes, make
 * <d> a candidate. Off the per-byte path. */
static __attribute__((noinline)) enum gd_verdict found(struct gd_repeat *r, uint32_t d, uint64_t n,
                                                       enum gd_stream stream, struct gd_trip *trip)
{
	uint64_t block = r->block, at = (n - d - 7) & r->mask;

	if (at + 8 <= (uint64_t)r->mask + 1) {
		/* The 8 bytes lie in order in the ring: one comparison. */
		uint64_t w = 0;
		for (int b = 0; b < 8; b++)
			w = (w << 8) | r->ring[at + b];
		if (w != block)
			return GD_PASS;
	} else {
		for (uint32_t b = 0; b < 8; b++, block >>= 8)
			if (r->ring[(n - d - b) & r->mask] != (unsigned char)block)
				return GD_PASS;
	}
	add_candidate(r, d, n);
	for (uint32_t k = 0; k < r->n_cand; k++)
		if (r->cand[k].period == d && reached(r, &r->cand[k], n))
			return trip_on(r, &r->cand[k], n, stream, trip);
	return GD_PASS;
}

/* One byte of the stream (in counter mode, of the normalized stream). */
static inline __attribute__((always_inline)) enum gd_verdict push_byte(struct gd_repeat *r, unsigned char c,
                                        enum gd_stream stream, struct gd_trip *trip)
{
	if (__builtin_expect(r->pos == r->grow_at, 0))
		grow(r);

	uint64_t n = r->pos++;

	r->ring[n & r->mask] = c;
	r->block = (r->block << 8) | c;
	for (uint32_t k = 0; k < r->n_cand;) {
		struct gd_repeat_cand *cd = &r->cand[k];
		if (r->ring[(n - cd->period) & r->mask] == c) {
			cd->run++;
			if (cd->run + cd->period >= cd->need && reached(r, cd, n))
				return trip_on(r, cd, n, stream, trip);
			k++;
		} else {
			*cd = r->cand[--r->n_cand];
		}
	}
	if (n < 7)
		return GD_PASS;
	uint32_t slot, e = entry_of(r, r->block, n, &slot);
	uint32_t prev = r->table[slot];
	r->table[slot] = e;
	if ((prev ^ e) >> POS_BITS)
		return GD_PASS; /* empty, or another block's tag */
	uint32_t d = (e - prev) & POS_MASK;
	if (d - 1 >= r->dmax || n < (uint64_t)d + 7)
		return GD_PASS;
	/* A period already followed (the run in progress): the loop above has
	 * judged this byte. */
	for (uint32_t k = 0; k < r->n_cand; k++)
		if (r->cand[k].period == d)
			return GD_PASS;
	return found(r, d, n, stream, trip);
}

/* Counter mode: ends the number being read, keeping its record. */
static void end_number(struct gd_repeat_norm *nm)
{
	if (!nm->in_number)
		return;
	nm->in_number = false;
	nm->nums[nm->n_nums % GD_COUNTER_NUMBERS] = (struct gd_repeat_num){
		nm->num_pos, nm->num_value, nm->num_digits > 18 };
	nm->n_nums++;
}

static inline __attribute__((always_inline)) enum gd_verdict emit(struct gd_repeat *r, unsigned char c,
                                        uint64_t raw, enum gd_stream stream, struct gd_trip *trip)
{
	/* Before push_byte: it may grow the ring (which copies raw_lo up to pos). */
	if (__builtin_expect(r->pos == r->grow_at, 0))
		grow(r);
	r->norm->raw_lo[r->pos & r->mask] = (uint32_t)raw;
	return push_byte(r, c, stream, trip);
}

/* Byte classes of the normalizer. */
enum { CL_OTHER = 0, CL_WORD, CL_DIGIT, CL_SPACE, CL_BACKSLASH };
static const unsigned char byte_class[256] = {
	['\t'] = CL_SPACE, ['\n'] = CL_SPACE, ['\r'] = CL_SPACE, [' '] = CL_SPACE,
	['\\'] = CL_BACKSLASH, ['_'] = CL_WORD,
	['0' ... '9'] = CL_DIGIT, ['A' ... 'Z'] = CL_WORD, ['a' ... 'z'] = CL_WORD,
	[0x80 ... 0xff] = CL_WORD,
};

/* Counter mode: the stream without whitespace (nor the JSON escapes \n \r
 * \t of a call's arguments), each number that is not part of a word ("7",
 * "3.0" is "#.#"; not "v2", "handle_7") replaced by '#' and its value kept. */
static enum gd_verdict feed_counter(struct gd_repeat *r, const unsigned char *p, size_t len,
                                    enum gd_stream stream, struct gd_trip *trip)
{
	struct gd_repeat_norm *nm = r->norm;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		unsigned cls = byte_class[c];
		uint64_t raw = nm->raw_pos++;

		if (__builtin_expect(nm->backslash, 0)) {
			nm->backslash = false;
			if (c == 'n' || c == 'r' || c == 't') {
				nm->after_word = false;
				continue;
			}
			if (emit(r, '\\', raw - 1, stream, trip) == GD_TRIP)
				return GD_TRIP;
			nm->after_word = false;
		}
		if (cls == CL_DIGIT) {
			if (nm->in_number) {
				if (++nm->num_digits <= 18)
					nm->num_value = nm->num_value * 10 + (c - '0');
				else
					nm->num_value = gd_hash_mix(nm->num_value ^ c);
				continue;
			}
			if (nm->after_word) {
				if (emit(r, c, raw, stream, trip) == GD_TRIP)
					return GD_TRIP;
				continue;
			}
			nm->in_number = true;
			nm->num_pos = r->pos;
			nm->num_value = (uint64_t)(c - '0');
			nm->num_digits = 1;
			nm->after_word = true;
			if (emit(r, '#', raw, stream, trip) == GD_TRIP)
				return GD_TRIP;
			continue;
		}
		if (nm->in_number)
			end_number(nm);
		if (cls == CL_SPACE) {
			nm->after_word = false;
			continue;
		}
		if (cls == CL_BACKSLASH) {
			nm->backslash = true;
			continue;
		}
		nm->after_word = cls == CL_WORD;
		if (emit(r, c, raw, stream, trip) == GD_TRIP)
			return GD_TRIP;
	}
	return GD_PASS;
}

enum gd_verdict gd_repeat_feed(struct gd_repeat *r, const char *data, size_t len,
                               enum gd_stream stream, struct gd_trip *trip)
{
	const unsigned char *p = (const unsigned char *)data;

	if (r->norm)
		return feed_counter(r, p, len, stream, trip);
	for (size_t i = 0; i < len; i++)
		if (push_byte(r, p[i], stream, trip) == GD_TRIP)
			return GD_TRIP;
	return GD_PASS;
}

float gd_repeat_near(const struct gd_repeat *r)
{
	float best = 0.0f;

	for (uint32_t k = 0; k < r->n_cand; k++) {
		const struct gd_repeat_cand *c = &r->cand[k];
		float v = c->need ? (float)(c->run + c->period) / (float)c->need : 0.0f;

		if (v > best)
			best = v;
	}
	return best > 1.0f ? 1.0f : best;
}

size_t gd_repeat_tail(const struct gd_repeat *r, uint64_t end, char *buf, size_t cap)
{
	uint64_t size = (uint64_t)r->mask + 1, from;
	size_t n;

	if (r->norm || !r->ring)
		return 0;
	if (end > r->pos)
		end = r->pos;
	/* The ring holds the last <size> bytes read, up to r->pos. */
	from = r->pos > size ? r->pos - size : 0;
	if (end - from > cap)
		from = end - cap;
	if (from >= end)
		return 0;
	n = (size_t)(end - from);
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)r->ring[(from + i) & r->mask];
	return n;
}
