/* Stop strings ("stop" in a chat-completions request): an incremental
 * matcher over the generated text. Fed the text piece by piece, it releases
 * at once every byte that cannot be the start of a stop string, holds back
 * the longest tail that is still a prefix of one, and on a match releases
 * the text before it and drops the rest (the stop string is not part of the
 * answer). The match is the stop string completed first (of two that end at
 * the same byte, the one that starts first), as generation would stop
 * there, whatever the pieces. Plain struct, no allocation. */
#ifndef LW_ENGINE_STOP_H
#define LW_ENGINE_STOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

#define ENG_STOP_MAX 4          /* stop strings of one request (OpenAI's limit) */
#define ENG_STOP_LEN_MAX 256    /* bytes of one stop string */

struct eng_stop {
	uint32_t n;
	uint32_t len[ENG_STOP_MAX];
	char str[ENG_STOP_MAX][ENG_STOP_LEN_MAX];
	char hold[ENG_STOP_LEN_MAX]; /* a tail that may begin a stop string */
	size_t hold_len;
	int matched;                 /* the stop string that matched, -1 while none */
};

/* Copies <stops> (<n> ≤ ENG_STOP_MAX, each 1..ENG_STOP_LEN_MAX bytes; n = 0:
 * nothing ever matches). ENG_ERR_LIMIT / ENG_ERR_ARG with <err> naming the
 * entry ("stop[1] is empty"). */
ENG_WUR enum eng_status eng_stop_init(struct eng_stop *s, const struct eng_str *stops, uint32_t n,
                                      char *err, size_t errlen);

/* Bytes <out> must hold for a feed of <len> bytes. */
#define ENG_STOP_OUT_MAX(len) ((len) + ENG_STOP_LEN_MAX)

/* Feeds <piece>; writes the released text to <out> and returns its length.
 * After a match (eng_stop_matched) everything is dropped. Returns
 * ENG_ERR_RANGE (nothing consumed) when <cap> < ENG_STOP_OUT_MAX(<len>). */
ENG_WUR int64_t eng_stop_feed(struct eng_stop *s, const char *piece, size_t len, char *out,
                              size_t cap);

/* The text is over without a match: writes the held tail to <out> (cap ≥
 * ENG_STOP_LEN_MAX) and returns its length. */
ENG_WUR int64_t eng_stop_flush(struct eng_stop *s, char *out, size_t cap);

/* The index of the stop string that matched, or -1. */
int eng_stop_matched(const struct eng_stop *s);

#endif
