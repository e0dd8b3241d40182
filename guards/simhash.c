#include "guards/simhash.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "guards/util.h"

#define DIGITS_TOKEN 0x9e3779b97f4a7c15ULL

/* Buckets per band (a power of 2). */
#define BUCKETS 64

int gd_simhash_init(struct gd_simhash *s, const struct gd_simhash_config *cfg)
{
	uint32_t w = cfg->window, h = cfg->history;
	uint32_t nb = cfg->max_distance + 1 < GD_SIMHASH_MAX_BANDS ? cfg->max_distance + 1 : 0;
	size_t bytes = (size_t)3 * w * 8 + (size_t)h * sizeof(struct gd_simhash_past) +
	               GD_SIMHASH_SEEN_BITS / 8 + (size_t)nb * BUCKETS * 4 + (size_t)nb * h * 2;
	unsigned char *mem;

	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	mem = malloc(bytes);
	if (!mem)
		return -1;
	/* 8-byte arrays first, then 4-, then 2-byte ones: all aligned. */
	s->sh = (uint64_t *)(void *)mem;
	s->sh_tok = s->sh + w;
	s->sh_off = s->sh_tok + w;
	s->past = (struct gd_simhash_past *)(void *)(s->sh_off + w);
	s->seen = (uint64_t *)(void *)(s->past + h);
	s->heads = (uint32_t *)(void *)(s->seen + GD_SIMHASH_SEEN_BITS / 64);
	s->next = (uint16_t *)(void *)(s->heads + (size_t)nb * BUCKETS);
	s->n_bands = nb;
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
	s->n_counted = 0;
	s->hitmask = 0;
	s->n_past = 0;
	memset(s->seen, 0, GD_SIMHASH_SEEN_BITS / 8);
	memset(s->heads, 0, (size_t)s->n_bands * BUCKETS * 4);
}

void gd_simhash_fini(struct gd_simhash *s)
{
	free(s->sh); /* the whole allocation */
	s->sh = NULL;
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

/* Band <j> of fingerprint <fp>, as a bucket number. */
static inline uint32_t bucket(const struct gd_simhash *s, uint64_t fp, uint32_t j)
{
	uint64_t v = (fp >> s->band_lo[j]) & s->band_mask[j];

	return (uint32_t)(((v + j) * 0x9e3779b97f4a7c15ULL) >> (64 - 6)) & (BUCKETS - 1);
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

static inline void consider(const struct gd_simhash *s, const struct gd_simhash_past *pp,
                            uint64_t fp, uint64_t start, struct match *m)
{
	const struct gd_simhash_config *cfg = s->cfg;

	if (pp->start + cfg->window > start)
		return; /* overlapping windows share shingles */
	if (!within(fp, pp->fp, cfg->max_distance))
		return;
	m->matched = true;
	if (pp->start < m->first)
		m->first = pp->start;
	if (pp->start + cfg->window > m->latest)
		m->latest = pp->start + cfg->window;
}

static void find_matches(const struct gd_simhash *s, uint64_t fp, uint64_t start, struct match *m)
{
	const struct gd_simhash_config *cfg = s->cfg;
	uint64_t oldest = s->n_checks - s->n_past; /* the oldest check still kept */

	if (!s->n_bands) {
		for (uint32_t i = 0; i < s->n_past; i++)
			consider(s, &s->past[i], fp, start, m);
		return;
	}
	/* Within max_distance bits, two fingerprints agree on a band. A
	 * window found through several bands counts once (min and max). */
	for (uint32_t j = 0; j < s->n_bands; j++) {
		uint32_t head = s->heads[j * BUCKETS + bucket(s, fp, j)];
		uint64_t seq;

		if (!head)
			continue;
		seq = head - 1 + (s->n_checks & ~0xffffffffULL);
		if (seq >= s->n_checks)
			seq -= 1ULL << 32;
		while (seq >= oldest && seq < s->n_checks) {
			uint32_t slot = (uint32_t)(seq % cfg->history);
			uint16_t back = s->next[(size_t)slot * s->n_bands + j];

			consider(s, &s->past[slot], fp, start, m);
			if (!back || back > seq)
				break;
			seq -= back;
		}
	}
}

/* Files the current window (check number n_checks) in the past ring and in
 * its bands' chains. */
static void remember(struct gd_simhash *s, uint64_t fp, uint64_t start)
{
	const struct gd_simhash_config *cfg = s->cfg;
	uint32_t slot = (uint32_t)(s->n_checks % cfg->history);

	s->past[slot] = (struct gd_simhash_past){ fp, start };
	for (uint32_t j = 0; j < s->n_bands; j++) {
		uint32_t *head = &s->heads[j * BUCKETS + bucket(s, fp, j)];
		uint64_t back = 0;

		if (*head) {
			back = (uint32_t)s->n_checks - (*head - 1);
			if (back > cfg->history)
				back = 0; /* the chain's next window is gone */
		}
		s->next[(size_t)slot * s->n_bands + j] = (uint16_t)back;
		*head = (uint32_t)s->n_checks + 1;
	}
	if (s->n_past < cfg->history)
		s->n_past++;
}

static enum gd_verdict check_window(struct gd_simhash *s, enum gd_stream stream,
                                    struct gd_trip *trip)
{
	const struct gd_simhash_config *cfg = s->cfg;
	uint64_t fp = fingerprint(s), start = s->n_sh - cfg->window;
	uint32_t span = cfg->min_hits * 2;
	struct match m = { false, UINT64_MAX, 0 };
	bool hit = false;
	uint64_t spanmask = span >= 64 ? ~0ULL : (1ULL << span) - 1;

	find_matches(s, fp, start, &m);
	/* Neutral windows leave the hit record as it is:
	 * - every match lies in one earlier place: the second copy of a passage,
	 *   which exact repetition allows (a third copy matches two places);
	 * - a word never seen before came after the latest match. */
	bool neutral = m.matched && (m.latest - m.first <= cfg->window + 2 * (uint64_t)cfg->stride ||
	                             s->last_fresh > m.latest);
	/* Counting distinct tokens costs a sort: only for would-be hits. */
	if (!neutral)
		hit = m.matched && distinct_tokens(s) >= cfg->min_distinct;
	remember(s, fp, start);
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
	if (s->n_sh >= w && (s->n_sh - w) % cfg->stride == 0)
		return check_window(s, stream, trip);
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
