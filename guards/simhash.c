#include "guards/simhash.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "guards/util.h"

#define DIGITS_TOKEN 0x9e3779b97f4a7c15ULL

/* Nibble -> four 16-bit lanes holding its bits. */
#define L(n) ((uint64_t)((n) & 1) | (uint64_t)(((n) >> 1) & 1) << 16 | \
              (uint64_t)(((n) >> 2) & 1) << 32 | (uint64_t)(((n) >> 3) & 1) << 48)
static const uint64_t spread[16] = {
	L(0), L(1), L(2), L(3), L(4), L(5), L(6), L(7),
	L(8), L(9), L(10), L(11), L(12), L(13), L(14), L(15),
};
#undef L

void gd_simhash_init(struct gd_simhash *s, const struct gd_simhash_config *cfg)
{
	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
}

static bool is_word(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

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

static enum gd_verdict check_window(struct gd_simhash *s, enum gd_stream stream,
                                    struct gd_trip *trip)
{
	const struct gd_simhash_config *cfg = s->cfg;
	uint64_t fp = 0, start = s->n_sh - cfg->window, latest = 0, first = UINT64_MAX;
	uint32_t best = 65, span = cfg->min_hits * 2;
	bool hit = false, matched = false;
	uint64_t spanmask = span >= 64 ? ~0ULL : (1ULL << span) - 1;

	for (int j = 0; j < 16; j++)
		for (int i = 0; i < 4; i++)
			if (2 * ((s->ones[j] >> (16 * i)) & 0xffff) > cfg->window)
				fp |= 1ULL << (4 * j + i);
	for (uint32_t i = 0; i < s->n_past; i++) {
		const struct gd_simhash_past *pp = &s->past[i];
		if (pp->start + cfg->window > start)
			continue; /* overlapping windows share shingles */
		uint32_t d = gd_popcount64(fp ^ pp->fp);
		if (d < best)
			best = d;
		if (d > cfg->max_distance)
			continue;
		matched = true;
		if (pp->start < first)
			first = pp->start;
		/* The end of the latest matching window (in shingles). */
		if (pp->start + cfg->window > latest)
			latest = pp->start + cfg->window;
	}
	/* Neutral windows leave the hit record as it is:
	 * - every match lies in one earlier place: the second copy of a passage,
	 *   which exact repetition allows (a third copy matches two places);
	 * - a word never seen before came after the latest match. */
	bool neutral = matched && (latest - first <= cfg->window + 2 * (uint64_t)cfg->stride ||
	                           s->last_fresh > latest);
	/* Counting distinct tokens costs a sort: only for would-be hits. */
	if (!neutral)
		hit = matched && distinct_tokens(s) >= cfg->min_distinct;
	s->past[s->n_checks % cfg->history] = (struct gd_simhash_past){ fp, start };
	if (s->n_past < cfg->history)
		s->n_past++;
	s->check_off[s->n_checks % 64] = s->sh_off[start % cfg->window];
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
	/* Slide: the new shingle's bits enter, the oldest one's leave (a lane
	 * never goes below the bits still in the window: no borrow). */
	uint64_t old = s->n_sh >= w ? s->sh[idx] : 0;
	for (int j = 0; j < 16; j++)
		s->ones[j] += spread[(h >> (4 * j)) & 15] - spread[(old >> (4 * j)) & 15];
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

	for (size_t i = 0; i < len; i++, s->pos++) {
		unsigned char c = p[i];

		if (is_word(c)) {
			if (!s->in_tok) {
				s->in_tok = true;
				s->tok_digits = true;
				s->tok_hash = GD_FNV_OFFSET;
				s->tok_start = s->pos;
			}
			s->tok_hash = (s->tok_hash ^ c) * GD_FNV_PRIME;
			if (c < '0' || c > '9')
				s->tok_digits = false;
			continue;
		}
		if (!s->in_tok)
			continue;
		s->in_tok = false;
		if (push_token(s, s->tok_digits ? DIGITS_TOKEN : s->tok_hash, s->tok_start,
		               stream, trip) == GD_TRIP) {
			s->pos++;
			trip->at = s->pos; /* the byte that ended the token */
			return GD_TRIP;
		}
	}
	return GD_PASS;
}

uint64_t gd_simhash_text(const struct gd_simhash_config *cfg, const char *data, size_t len)
{
	struct gd_simhash_config one = *cfg;
	struct gd_simhash *s = calloc(1, sizeof(*s));
	struct gd_trip trip;
	int32_t counts[64] = { 0 };
	uint64_t fp = 0;

	if (!s)
		return 0;
	one.window = GD_SIMHASH_MAX_WINDOW; /* never checks: only shingles wanted */
	one.enabled = false;
	gd_simhash_init(s, &one);
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
