/* The SimHash watchdog for one stream: near repetition. Text is cut into word
 * tokens (runs of letters, digits, '_' and non-ASCII bytes; every all-digit
 * token counts as the same token so changing counters do not hide a loop),
 * tokens into shingles of <shingle>. The 64-bit SimHash of the last <window>
 * shingles is kept at every shingle, <history> x <stride> shingles back (so
 * a copy whose length is not a multiple of the stride meets its earlier
 * copy window for window); every <stride> tokens the current window is
 * compared with the kept windows that do not overlap it. A window within
 * <max_distance> bits of one of them is a hit; <min_hits> hits among the
 * last 2 * <min_hits> counted windows trip. Windows that are never hits:
 * - fewer than <min_distinct> distinct words, numbers not counted (tables,
 *   number lists, `} } }`, metrics lines: the exact-repeat watchdog covers
 *   those), or one token filling more than a quarter of the window;
 * Windows that do not count at all (neutral: the hit record does not move):
 * - every window it matches lies in one earlier place: the second copy of
 *   a passage, which exact repetition allows (a data URI used for the
 *   favicon and the logo); a third copy matches two places and is a hit;
 * - matching an earlier window when a word never seen before appeared
 *   between the two: the text is still bringing new identifiers (generated
 *   handlers handle_0, handle_7, … that differ in numbers and names).
 * Past windows are found through max_distance + 1 bands of their fingerprint
 * (two fingerprints within max_distance bits agree on at least one band):
 * a few chains walked per window instead of every past window (when
 * max_distance < GD_SIMHASH_MAX_BANDS; a linear scan otherwise).
 * State sized by the config, allocated by gd_simhash_init; the ring of past
 * windows starts at GD_SIMHASH_PAST_MIN and doubles up to <history> x <stride> as the
 * stream grows. */
#ifndef LW_GUARDS_SIMHASH_H
#define LW_GUARDS_SIMHASH_H

#include <stdbool.h>
#include <stdint.h>

#include "guards/config.h"
#include "guards/limits.h"
#include "guards/trip.h"

struct gd_simhash {
	const struct gd_simhash_config *cfg;
	uint64_t pos;            /* bytes consumed */
	uint64_t tok_hash;       /* the token being read */
	uint64_t tok_start;
	bool in_tok;
	bool tok_digits;
	uint32_t n_bands;        /* 0: past windows scanned linearly */
	uint64_t n_tok;
	uint64_t toks[GD_SIMHASH_MAX_SHINGLE];
	uint64_t n_sh;           /* shingles made */
	uint64_t planes[GD_SIMHASH_PLANES]; /* per fingerprint bit b, how many of the window's
	                            shingles have bit b set, bit-sliced: bit b of planes[k]
	                            is bit k of that count */
	uint8_t band_lo[GD_SIMHASH_MAX_BANDS];   /* band j: bits band_lo[j].. of a fingerprint */
	uint64_t band_mask[GD_SIMHASH_MAX_BANDS];
	uint64_t last_fresh;     /* 1 + shingle index of the latest word never seen before */
	uint64_t n_checks;       /* windows checked (one per stride) */
	uint64_t n_win;          /* windows kept (one per shingle) */
	uint64_t n_counted;      /* windows that were not neutral */
	uint64_t hitmask;        /* bit 0 = the latest counted window */
	uint32_t n_past;
	uint64_t counted_off[64]; /* ring: start offset of each counted window */
	/* One allocation, sized by the config: */
	uint64_t *sh;            /* ring of <window>: shingle hashes */
	uint64_t *sh_tok;        /* ring of <window>: the shingle's last token */
	uint64_t *sh_off;        /* ring of <window>: stream offset of that token */
	uint32_t past_cap;       /* windows the ring holds now: doubles up to history x stride */
	uint32_t n_buckets;      /* per band: a quarter of past_cap (64 at least) */
	uint64_t *past_fp;       /* ring of <past_cap>: window k's fingerprint at k % past_cap
	                            (window k starts at shingle k); one allocation with: */
	uint32_t *heads;         /* per band and bucket: 1 + the number of its latest
	                            linked window (0: none) */
	uint16_t *next;          /* per kept window and band: how many windows back the
	                            next window of its bucket is (0: none) */
	uint64_t *seen;          /* GD_SIMHASH_SEEN_BITS: words seen (two bits each, Bloom) */
};

/* Allocates the state for <cfg>. Returns 0, or -1 when out of memory. */
int gd_simhash_init(struct gd_simhash *s, const struct gd_simhash_config *cfg)
	__attribute__((warn_unused_result));
/* Forgets the stream (keeps the allocation). */
void gd_simhash_reset(struct gd_simhash *s);
void gd_simhash_fini(struct gd_simhash *s);

/* Consumes <data, len>. On a loop returns GD_TRIP with <trip> filled (cut =
 * stream offset where the first near-repeated window began). */
enum gd_verdict gd_simhash_feed(struct gd_simhash *s, const char *data, size_t len,
                                enum gd_stream stream, struct gd_trip *trip);

/* How close to a trip: hits among the last 2 * min_hits counted windows
 * over min_hits (0 to 1). Read-only, for plots. */
float gd_simhash_near(const struct gd_simhash *s);

/* 64-bit SimHash of a whole text, with the same tokens and shingles (for
 * tests and tools). */
uint64_t gd_simhash_text(const struct gd_simhash_config *cfg, const char *data, size_t len);

#endif
