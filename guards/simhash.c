#include "guards/simhash.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "guards/util.h"

#define DIGITS_TOKEN 0x9e3779b97f4a7c15ULL

/* Windows kept: one at every shingle (window number k starts at shingle k),
 * <history> strides back, at most GD_SIMHASH_MAX_PAST: a copy whose length
 * is not a multiple of the stride still finds its earlier copy, window for
 * window. */
static uint32_t past_max(const struct gd_simhash_config *cfg)
{
	uint64_t n = (uint64_t)cfg->history * cfg->stride;

	return n < GD_SIMHASH_MAX_PAST ? (uint32_t)n : GD_SIMHASH_MAX_PAST;
}

/* Buckets per band for a ring of <cap> windows: a quarter as many (a power
 * of two, 64 at least), so a chain holds about four windows. */
static uint32_t buckets_for(uint32_t cap)
{
	uint32_t n = 64;

	while (n * 4 < cap)
		n *= 2;
	return n;
}

/* Band <j> of fingerprint <fp>, as a bucket number. */
static inline uint32_t bucket(const struct gd_simhash *s, uint64_t fp, uint32_t j)
{
	uint64_t v = (fp >> s->band_lo[j]) & s->band_mask[j];

	return (uint32_t)(((v + j) * 0x9e3779b97f4a7c15ULL) >> 32) & (s->n_buckets - 1);
}

/* Files window number <k> (in the ring) in its bands' chains. */
static void link_window(struct gd_simhash *s, uint64_t k)
{
	uint32_t slot = (uint32_t)(k % s->past_cap);
	uint64_t fp = s->past_fp[slot];

	for (uint32_t j = 0; j < s->n_bands; j++) {
		uint32_t *head = &s->heads[(size_t)j * s->n_buckets + bucket(s, fp, j)];
		uint32_t back = 0;

		if (*head) {
			back = (uint32_t)k - (*head - 1);
			if (back >= s->past_cap)
				back = 0; /* the chain's next window is gone */
		}
		s->next[(size_t)slot * s->n_bands + j] = (uint16_t)back;
		*head = (uint32_t)k + 1;
	}
}

/* The windows that can no longer overlap a window checked later: those
 * <window> shingles or more before the newest. */
static uint64_t linkable(const struct gd_simhash *s)
{
	return s->n_win >= s->cfg->window ? s->n_win - s->cfg->window : 0;
}

/* Sets the ring of past windows to <cap> entries (and the chains' heads to
 * buckets_for(cap) a band), keeping the <n_past> held: while the ring
 * grows, window k is at slot k (growth happens only before it first wraps),
 * and the chains are rebuilt. -1 when out of memory (nothing changed). */
static int past_resize(struct gd_simhash *s, uint32_t cap)
{
	uint32_t nb = s->n_bands, buckets = buckets_for(cap);
	size_t fps = (size_t)cap * 8, heads = (size_t)nb * buckets * 4;
	unsigned char *mem = malloc(fps + heads + (size_t)cap * nb * 2);

	if (!mem)
		return -1;
	if (s->past_fp) {
		memcpy(mem, s->past_fp, (size_t)s->n_past * 8);
		free(s->past_fp);
	}
	s->past_fp = (uint64_t *)(void *)mem;
	s->heads = (uint32_t *)(void *)(mem + fps);
	s->next = (uint16_t *)(void *)(mem + fps + heads);
	s->past_cap = cap;
	s->n_buckets = buckets;
	memset(s->heads, 0, heads);
	for (uint64_t k = 0; k < linkable(s); k++)
		link_window(s, k);
	return 0;
}

int gd_simhash_init(struct gd_simhash *s, const struct gd_simhash_config *cfg)
{
	uint32_t w = cfg->window, h = past_max(cfg), first = GD_SIMHASH_PAST_MIN;
	uint32_t nb = cfg->max_distance + 1 < GD_SIMHASH_MAX_BANDS ? cfg->max_distance + 1 : 0;
	size_t bytes = (size_t)3 * w * 8 + GD_SIMHASH_SEEN_BITS / 8;
	unsigned char *mem;

	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->n_bands = nb;
	mem = malloc(bytes);
	if (!mem)
		return -1;
	s->sh = (uint64_t *)(void *)mem;
	s->sh_tok = s->sh + w;
	s->sh_off = s->sh_tok + w;
	s->seen = s->sh_off + w;
	/* The ring holds the window being linked: more than <window>. */
	while (first <= w)
		first *= 2;
	if (past_resize(s, h < first ? h : first)) {
		gd_simhash_fini(s);
		return -1;
	}
	for (uint32_t j = 0; j < nb; j++) {
		uint32_t lo = j * 64 / nb, hi = (j + 1) * 64 / nb;
		s->band_lo[j] = (uint8_t)lo;
		s->band_mask[j] = hi - lo >= 64 ? ~0ULL : (1ULL << (hi - lo)) - 1;
	}
	gd_simhash_reset(s);
	return 0;
}

void gd_simhash_reset(struct gd_simhash *s)
{
	/* The rings are read only where written (n_sh, n_past, the chains),
	 * so only the Bloom filter and the chain heads need clearing. */
	s->pos = 0;
	s->tok_hash = 0;
	s->tok_start = 0;
	s->in_tok = false;
	s->tok_digits = false;
	s->n_tok = 0;
	s->n_sh = 0;
	memset(s->planes, 0, sizeof(s->planes));
	s->last_fresh = 0;
	s->n_checks = 0;
	s->n_win = 0;
	s->n_counted = 0;
	s->hitmask = 0;
	s->n_past = 0;
	memset(s->seen, 0, GD_SIMHASH_SEEN_BITS / 8);
	memset(s->heads, 0, (size_t)s->n_bands * s->n_buckets * 4);
}

void gd_simhash_fini(struct gd_simhash *s)
{
	free(s->sh); /* with sh_tok, sh_off, seen, heads */
	s->sh = NULL;
	free(s->past_fp); /* with heads and next */
	s->past_fp = NULL;
	s->heads = NULL;
	s->next = NULL;
}

/* Token bytes: letters, digits, '_' and non-ASCII (1), digits (3). */
static const unsigned char word_class[256] = {
	['0' ... '9'] = 3, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1, ['_'] = 1, [0x80 ... 0xff] = 1,
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Distinct tokens in the window (numbers not counted), or 0 when one token
 * fills more than a quarter of it: the window's SimHash is then decided by
 * that token's shingles (a dump of `ffff` or `0000` words, and whatever
 * text follows it, would look like the dump). */
static uint32_t distinct_tokens(const struct gd_simhash *s)
{
	uint64_t tmp[GD_SIMHASH_MAX_WINDOW];
	uint32_t w = s->cfg->window, n = 1, same = 1, most = 1;
	bool digits = false;

	memcpy(tmp, s->sh_tok, sizeof(tmp[0]) * w);
	qsort(tmp, w, sizeof(tmp[0]), cmp_u64);
	for (uint32_t i = 1; i < w; i++) {
		same = tmp[i] == tmp[i - 1] ? same + 1 : 1;
		if (same > most)
			most = same;
		n += tmp[i] != tmp[i - 1];
	}
	if (4 * most > w)
		return 0;
	/* Numbers all count as one token: they are not diversity. */
	for (uint32_t i = 0; i < w; i++)
		digits |= tmp[i] == DIGITS_TOKEN;
	return digits ? n - 1 : n;
}

/* The window's fingerprint: bit b set when more than half of its shingles
 * have bit b set, i.e. when count b >= t = window / 2 + 1. The 64 counts
 * are compared with t at once, bit-sliced, from the top plane down. */
static uint64_t fingerprint(const struct gd_simhash *s)
{
	uint32_t t = s->cfg->window / 2 + 1;
	uint64_t gt = 0, eq = ~0ULL;

	for (int k = GD_SIMHASH_PLANES - 1; k >= 0; k--) {
		if ((t >> k) & 1) {
			eq &= s->planes[k];
		} else {
			gt |= eq & s->planes[k];
			eq &= ~s->planes[k];
		}
	}
	return gt | eq;
}

/* True when <a> and <b> differ in at most <d> bits. */
static inline bool within(uint64_t a, uint64_t b, uint32_t d)
{
	uint64_t x = a ^ b;

	if (d >= 8)
		return gd_popcount64(x) <= d;
	for (uint32_t i = 0; i < d && x; i++)
		x &= x - 1; /* clears the lowest set bit */
	return x == 0;
}

/* The earlier windows that match: <matched>, the first one's start and the
 * end of the latest one (in shingles). */
struct match {
	bool matched;
	uint64_t first, latest;
};

static inline void consider(const struct gd_simhash *s, uint64_t k, uint64_t fp,
                            struct match *m)
{
	const struct gd_simhash_config *cfg = s->cfg;

	if (!within(fp, s->past_fp[k % s->past_cap], cfg->max_distance))
		return;
	m->matched = true;
	if (k < m->first)
		m->first = k;
	if (k + cfg->window > m->latest)
		m->latest = k + cfg->window;
}

/* The kept windows that match <fp> and do not overlap the window checked
 * (overlapping windows share shingles): those linked so far. */
static void find_matches(const struct gd_simhash *s, uint64_t fp, struct match *m)
{
	uint64_t oldest = s->n_win - s->n_past; /* the oldest window still kept */

	if (!s->n_bands) {
		for (uint64_t k = oldest; k < linkable(s); k++)
			consider(s, k, fp, m);
		return;
	}
	/* Within max_distance bits, two fingerprints agree on a band. A
	 * window found through several bands counts once (min and max). */
	for (uint32_t j = 0; j < s->n_bands; j++) {
		uint32_t head = s->heads[(size_t)j * s->n_buckets + bucket(s, fp, j)];
		uint64_t k;

		if (!head)
			continue;
		k = head - 1 + (s->n_win & ~0xffffffffULL);
		if (k >= s->n_win)
			k -= 1ULL << 32;
		while (k >= oldest && k < s->n_win) {
			uint16_t back = s->next[(size_t)(k % s->past_cap) * s->n_bands + j];

			consider(s, k, fp, m);
			if (!back || back > k)
				break;
			k -= back;
		}
	}
}

/* Keeps window number n_win (fingerprint <fp>) and links the window that
 * can no longer overlap a later check. */
static void remember(struct gd_simhash *s, uint64_t fp)
{
	uint32_t max = past_max(s->cfg);

	/* Full before it wraps for the first time: double it, up to
	 * history x stride (out of memory: it stays, a shorter history). */
	if (s->n_past == s->past_cap && s->past_cap < max) {
		uint32_t cap = s->past_cap * 2 < max ? s->past_cap * 2 : max;
		(void)past_resize(s, cap);
	}
	s->past_fp[s->n_win % s->past_cap] = fp;
	if (s->n_past < s->past_cap)
		s->n_past++;
	s->n_win++;
	if (s->n_win > s->cfg->window)
		link_window(s, s->n_win - 1 - s->cfg->window);
}

static enum gd_verdict check_window(struct gd_simhash *s, uint64_t fp, uint64_t start,
                                    enum gd_stream stream, struct gd_trip *trip)
{
	const struct gd_simhash_config *cfg = s->cfg;
	uint32_t span = cfg->min_hits * 2;
	struct match m = { false, UINT64_MAX, 0 };
	bool hit = false;
	uint64_t spanmask = span >= 64 ? ~0ULL : (1ULL << span) - 1;

	/* Window <start> itself is kept first: the windows it can match are
	 * then exactly those linked. */
	remember(s, fp);
	find_matches(s, fp, &m);
	/* Neutral windows leave the hit record as it is:
	 * - every match lies in one earlier place: the second copy of a passage,
	 *   which exact repetition allows (a third copy matches two places);
	 * - a word never seen before came after the latest match. */
	bool neutral = m.matched && (m.latest - m.first <= cfg->window + 2 * (uint64_t)cfg->stride ||
	                             s->last_fresh > m.latest);
	/* Counting distinct tokens costs a sort: only for would-be hits. */
	if (!neutral)
		hit = m.matched && distinct_tokens(s) >= cfg->min_distinct;
	s->n_checks++;
	if (neutral)
		return GD_PASS;
	s->n_counted++;
	s->counted_off[s->n_counted % 64] = s->sh_off[start % cfg->window];
	s->hitmask = (s->hitmask << 1) | (hit ? 1 : 0);
	uint32_t hits = gd_popcount64(s->hitmask & spanmask);
	if (hit && hits >= cfg->min_hits) {
		uint32_t oldest = 63 - (uint32_t)__builtin_clzll(s->hitmask & spanmask);
		uint64_t off = s->counted_off[(s->n_counted - oldest) % 64];
		gd_trip_set(trip, "simhash", stream, off,
		            "%" PRIu32 " of the last %" PRIu32 " windows of %" PRIu32
		            " tokens are within %" PRIu32 " bits of earlier text (from offset %" PRIu64 ")",
		            hits, span, cfg->window, cfg->max_distance, off);
		return GD_TRIP;
	}
	return GD_PASS;
}

static enum gd_verdict push_token(struct gd_simhash *s, uint64_t tok, uint64_t off,
                                  enum gd_stream stream, struct gd_trip *trip)
{
	const struct gd_simhash_config *cfg = s->cfg;
	uint32_t k = cfg->shingle, w = cfg->window;
	uint64_t h = GD_FNV_OFFSET, idx;

	s->toks[s->n_tok % k] = tok;
	s->n_tok++;
	if (s->n_tok < k)
		return GD_PASS;
	for (uint32_t i = 0; i < k; i++)
		h = gd_hash_mix(h ^ s->toks[(s->n_tok + i) % k]);
	idx = s->n_sh % w;
	/* Slide: the new shingle's bits enter, the oldest one's leave: 64
	 * counts incremented (by the bits of h) and decremented (by those of
	 * the oldest), bit-sliced: carries and borrows ripple through the
	 * planes, rarely past the first two. A count never goes below the
	 * shingles still in the window, nor above the window. */
	uint64_t old = s->n_sh >= w ? s->sh[idx] : 0;
	uint64_t carry = h, borrow = old;
	for (int pl = 0; pl < GD_SIMHASH_PLANES && carry; pl++) {
		uint64_t c = s->planes[pl] & carry;
		s->planes[pl] ^= carry;
		carry = c;
	}
	for (int pl = 0; pl < GD_SIMHASH_PLANES && borrow; pl++) {
		uint64_t b = ~s->planes[pl] & borrow;
		s->planes[pl] ^= borrow;
		borrow = b;
	}
	if (tok != DIGITS_TOKEN) {
		/* A word never seen before (two bits of a Bloom filter: a word
		 * mistaken for seen only makes a window count, never the reverse). */
		uint64_t m = gd_hash_mix(tok);
		uint32_t b1 = (uint32_t)m % GD_SIMHASH_SEEN_BITS;
		uint32_t b2 = (uint32_t)(m >> 32) % GD_SIMHASH_SEEN_BITS;
		if (!((s->seen[b1 / 64] >> (b1 % 64)) & (s->seen[b2 / 64] >> (b2 % 64)) & 1)) {
			s->seen[b1 / 64] |= 1ULL << (b1 % 64);
			s->seen[b2 / 64] |= 1ULL << (b2 % 64);
			s->last_fresh = s->n_sh + 1;
		}
	}
	s->sh[idx] = h;
	s->sh_tok[idx] = tok;
	s->sh_off[idx] = off;
	s->n_sh++;
	if (s->n_sh < w)
		return GD_PASS;
	/* Every window is kept; every <stride>-th one is checked. */
	uint64_t fp = fingerprint(s), start = s->n_sh - w;
	if (start % cfg->stride == 0)
		return check_window(s, fp, start, stream, trip);
	remember(s, fp);
	return GD_PASS;
}

enum gd_verdict gd_simhash_feed(struct gd_simhash *s, const char *data, size_t len,
                                enum gd_stream stream, struct gd_trip *trip)
{
	const unsigned char *p = (const unsigned char *)data;
	/* The token being read, in locals (push_token reads none of them). */
	uint64_t pos = s->pos, tok_hash = s->tok_hash, tok_start = s->tok_start;
	bool in_tok = s->in_tok, tok_digits = s->tok_digits;
	enum gd_verdict v = GD_PASS;

	for (size_t i = 0; i < len; i++, pos++) {
		unsigned char c = p[i];
		unsigned cls = word_class[c];

		if (cls) {
			if (!in_tok) {
				in_tok = true;
				tok_digits = true;
				tok_hash = GD_FNV_OFFSET;
				tok_start = pos;
			}
			tok_hash = (tok_hash ^ c) * GD_FNV_PRIME;
			tok_digits &= cls == 3;
			continue;
		}
		if (!in_tok)
			continue;
		in_tok = false;
		if (push_token(s, tok_digits ? DIGITS_TOKEN : tok_hash, tok_start, stream, trip) ==
		    GD_TRIP) {
			pos++;
			trip->at = pos; /* the byte that ended the token */
			v = GD_TRIP;
			break;
		}
	}
	s->pos = pos;
	s->tok_hash = tok_hash;
	s->tok_start = tok_start;
	s->in_tok = in_tok;
	s->tok_digits = tok_digits;
	return v;
}

uint64_t gd_simhash_text(const struct gd_simhash_config *cfg, const char *data, size_t len)
{
	struct gd_simhash_config one = *cfg;
	struct gd_simhash *s = calloc(1, sizeof(*s));
	struct gd_trip trip;
	int32_t counts[64] = { 0 };
	uint64_t fp = 0;

	one.window = GD_SIMHASH_MAX_WINDOW; /* never checks: only shingles wanted */
	one.enabled = false;
	if (!s || gd_simhash_init(s, &one)) {
		free(s);
		return 0;
	}
	/* Feed, then add every shingle made to one global count. */
	for (size_t i = 0; i <= len; i++) {
		uint64_t before = s->n_sh;
		(void)gd_simhash_feed(s, i < len ? data + i : " ", 1, GD_STREAM_NONE, &trip);
		if (s->n_sh != before) {
			uint64_t h = s->sh[(s->n_sh - 1) % one.window];
			for (int b = 0; b < 64; b++)
				counts[b] += ((h >> b) & 1) ? 1 : -1;
		}
	}
	for (int b = 0; b < 64; b++)
		if (counts[b] > 0)
			fp |= 1ULL << b;
	gd_simhash_fini(s);
	free(s);
	return fp;
}

float gd_simhash_near(const struct gd_simhash *s)
{
	uint32_t span = s->cfg->min_hits * 2;
	uint64_t spanmask = span >= 64 ? ~0ULL : (1ULL << span) - 1;
	float v = (float)gd_popcount64(s->hitmask & spanmask) / (float)s->cfg->min_hits;

	return v > 1.0f ? 1.0f : v;
}
