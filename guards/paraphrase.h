/* The paraphrase watchdog for the reasoning stream: a plan or a hypothesis
 * restated again and again in varied words ("We need to add retry logic…
 * Let's wrap fetch in a loop… We need fetchJson to retry…"), which neither
 * exact repetition nor SimHash sees soon (no sentence repeats verbatim in a
 * row, and shingles of three words rarely survive rewording).
 * The stream is cut into sentences (at . ! ? followed by a space, ; and blank
 * lines; code in ``` fences is skipped); a sentence's words are its runs of letters, digits, '_' and '\''
 * of 3+ characters, case-folded, a few function words left out. A sentence
 * of at least <min_words> words is restated when <overlap_percent> of them
 * occur in one earlier sentence (the last GD_PARAPHRASE_SENTENCES kept).
 * <min_restated> restated sentences among the last <window> counted ones
 * trip. List items and table rows (a line starting with "- ", "* ", "+ ",
 * "|" or "1." / "1)") are not counted: an enumeration shares its template.
 * A sentence holding a number never seen before in the stream ("12.9",
 * "run 4") is not restated: it reports something new (a benchmark log
 * restating one template with new measurements is not a loop).
 * Fixed-size state, no allocation. */
#ifndef LW_GUARDS_PARAPHRASE_H
#define LW_GUARDS_PARAPHRASE_H

#include <stdbool.h>
#include <stdint.h>

#include "guards/config.h"
#include "guards/limits.h"
#include "guards/trip.h"

struct gd_paraphrase_sentence {
	uint64_t sig;                         /* bit (hash & 63) of each word */
	uint32_t n;                           /* distinct words kept */
	uint32_t word[GD_PARAPHRASE_WORDS];   /* their hashes */
};

enum gd_paraphrase_line {
	GD_LINE_START = 0, /* only whitespace since the last line break */
	GD_LINE_DIGITS,    /* the line began with digits ("12." may follow) */
	GD_LINE_BULLET,    /* the line began with - * + (a space may follow) */
	GD_LINE_TEXT,      /* decided */
	GD_LINE_COUNT
};

struct gd_paraphrase {
	const struct gd_paraphrase_config *cfg;
	uint64_t pos;            /* bytes consumed */
	uint64_t sent_start;     /* offset where the current sentence began */
	uint32_t word_hash;      /* the word being read */
	uint32_t word_len;
	char word[8];            /* its first bytes, case-folded (function words) */
	bool in_word;
	bool digits_only;        /* the word read so far is digits */
	bool dot;                /* a '.', '!' or '?' waits for the next byte */
	bool list_item;          /* the current sentence is a list item or table row */
	bool in_fence;           /* inside a ``` code fence: not read */
	bool in_num;             /* reading a number (digits, and '.' between digits) */
	bool num_dot;            /* a '.' after the number's digits waits for a digit */
	bool fresh;              /* the current sentence holds a number never seen before */
	uint32_t num_hash;
	uint32_t ticks;          /* backticks in a row */
	enum gd_paraphrase_line line;
	struct gd_paraphrase_sentence cur;
	uint64_t n_sent;         /* sentences kept */
	struct gd_paraphrase_sentence past[GD_PARAPHRASE_SENTENCES]; /* ring */
	uint64_t n_counted;      /* sentences counted (restated or not) */
	uint32_t restated;       /* bit i: the i-th latest counted sentence was restated */
	uint64_t start_off[32];  /* ring: start offset of each counted sentence */
	uint64_t nums_seen[GD_PARAPHRASE_NUMBER_BITS / 64]; /* numbers seen (Bloom, two bits) */
};

void gd_paraphrase_init(struct gd_paraphrase *s, const struct gd_paraphrase_config *cfg);

/* Consumes <data, len>. On a loop returns GD_TRIP with <trip> filled (cut =
 * offset where the first restated sentence of the window began). */
/* How close to a trip: restated sentences among the last <window> counted
 * ones over min_restated (0 to 1). Read-only, for plots. */
float gd_paraphrase_near(const struct gd_paraphrase *s);

enum gd_verdict gd_paraphrase_feed(struct gd_paraphrase *s, const char *data, size_t len,
                                   enum gd_stream stream, struct gd_trip *trip);

#endif
