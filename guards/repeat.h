/* The exact-repeat watchdog for one stream (content, reasoning, or one tool
 * call's arguments): trips when the tail of the stream is a period-p
 * substring repeated, p from 1 byte to guards.repeat.max_period, at least
 * min_repeats times and over at least min_span characters (UTF-8 code
 * points, so a line of 3-byte box-drawing characters counts its width).
 * Method: every 8-byte block is hashed into a table of its last position; a
 * block seen again at distance p <= max_period (verified on the bytes) makes
 * p a candidate, and each candidate keeps a run counter (bytes equal to the
 * byte p earlier) updated per byte. O(1) per byte amortized.
 * Memory grows with the stream: the window starts at GD_REPEAT_RING_MIN bytes
 * and doubles each time the stream fills it, up to window_bytes (a short
 * answer holds a few KiB, a long one window_bytes + a table of a quarter as
 * many slots); log2(window_bytes / GD_REPEAT_RING_MIN) allocations at most. */
#ifndef LW_GUARDS_REPEAT_H
#define LW_GUARDS_REPEAT_H

#include <stdint.h>

#include "guards/config.h"
#include "guards/limits.h"
#include "guards/trip.h"

struct gd_repeat_cand {
	uint32_t period;
	uint64_t run; /* consecutive bytes, ending at the last one, equal to the byte <period> earlier */
	uint64_t need; /* bytes the periodic tail (run + period) must cover to trip */
	bool exact;    /* <need> counts the unit's characters (else a lower bound) */
};

/* A number of the normalized stream (counter mode). */
struct gd_repeat_num {
	uint64_t pos;   /* normalized position of its '#' */
	uint64_t value; /* up to 18 digits; longer: a hash (<big>) */
	bool big;
};

/* Counter mode's state: the normalizer and the numbers it replaced. */
struct gd_repeat_norm {
	uint32_t *raw_lo;      /* per normalized byte of the ring: low 32 bits of its raw
	                          offset (in the ring's allocation) */
	uint64_t raw_pos;      /* raw bytes consumed */
	bool after_word;       /* the last byte kept was a letter, digit, '_' or non-ASCII */
	bool backslash;        /* a '\\' waits: "\\n" "\\r" "\\t" are whitespace */
	bool in_number;
	uint32_t num_digits;
	uint64_t num_value;
	uint64_t num_pos;
	uint64_t n_nums;
	struct gd_repeat_num nums[GD_COUNTER_NUMBERS]; /* ring, in position order */
};

struct gd_repeat {
	const struct gd_repeat_config *cfg;
	struct gd_repeat_norm *norm; /* counter mode; NULL: exact */
	unsigned char *ring; /* the last <mask>+1 bytes; one allocation with <table> (and
	                        norm->raw_lo) */
	uint32_t mask;
	uint32_t size_max;   /* the ring's size once grown: window_bytes rounded up */
	uint32_t bits_max;   /* the table's bits at that size */
	uint32_t dmax;       /* the longest distance a block can be verified at now */
	uint64_t grow_at;    /* <pos> at which the ring doubles (UINT64_MAX: grown) */
	uint64_t pos;        /* bytes consumed */
	uint64_t block;      /* the last 8 bytes */
	uint32_t n_cand;
	struct gd_repeat_cand cand[GD_REPEAT_CANDIDATES];
	uint32_t *table;     /* block hash -> tag, flag and (position + 1) mod 2^20 */
	uint32_t table_bits; /* 2^table_bits slots: a quarter of the ring's bytes */
};

/* Allocates the window. Returns 0, or -1 when out of memory. */
int gd_repeat_init(struct gd_repeat *r, const struct gd_repeat_config *cfg)
	__attribute__((warn_unused_result));

/* Counter mode (the counter rule): the same detector on the stream with
 * whitespace dropped and every number that is not part of a word replaced by
 * '#'. A unit holding a word (3+ letters, not hex) that repeats
 * counter_repeats times over counter_span characters trips when its copies
 * differ only in a counter (counter_ok in repeat.c): one table row with only
 * its number changing, `"type": 3.0,` with varying spaces, "Attempt 7: …".
 * <cfg> gives window_bytes and max_period of the normalized stream and the
 * counter_* thresholds; offsets in a trip are raw stream offsets. */
int gd_repeat_init_counter(struct gd_repeat *r, const struct gd_repeat_config *cfg)
	__attribute__((warn_unused_result));
void gd_repeat_fini(struct gd_repeat *r);
/* Forgets the stream (keeps the window allocated, at the size it grew to). */
void gd_repeat_reset(struct gd_repeat *r);

/* Consumes <data, len>. On a loop returns GD_TRIP with <trip> filled: <stream>
 * as given, cut = stream offset just after the first copy of the repeated unit. */
enum gd_verdict gd_repeat_feed(struct gd_repeat *r, const char *data, size_t len,
                               enum gd_stream stream, struct gd_trip *trip);

/* How close the stream is to a trip: the share of what its best candidate
 * period needs that the repeated tail already covers (0: no candidate, 1: at
 * the threshold). Read-only and O(GD_REPEAT_CANDIDATES): for plots
 * (loopwarden-audit --html), never on the hot path. */
float gd_repeat_near(const struct gd_repeat *r);

/* Exact mode: copies into <buf> the last bytes of the stream before offset
 * <end> (at most <cap>, and only what the window still holds); returns how
 * many. 0 in counter mode (its window holds the normalized stream). */
size_t gd_repeat_tail(const struct gd_repeat *r, uint64_t end, char *buf, size_t cap);

#endif
