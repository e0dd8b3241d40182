/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing past
 * U+10FFFF) for everything loopwarden writes into JSON or logs: cutting text
 * on character boundaries and replacing invalid bytes with U+FFFD. Shared by
 * the guards (trip details), the wire parsers and the proxy's output. */
#ifndef LW_GUARDS_UTF8_H
#define LW_GUARDS_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GD_UTF8_REPLACEMENT 0xFFFDu

/* Decodes one character at <s> (<n> bytes available). Returns its length
 * (1-4) and sets *<cp>, or 0 when the bytes there are not a complete, valid
 * sequence (*<cp> is then GD_UTF8_REPLACEMENT). */
size_t gd_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* True when all of <s, n> is valid UTF-8. */
bool gd_utf8_valid(const char *s, size_t n);

/* The largest k <= <max> (and <= <n>) such that <s>[0..k) does not end
 * inside a valid multi-byte character: where to cut <s> to at most <max>
 * bytes without splitting one. Invalid bytes count as one character each;
 * a sequence cut off by the end of the data (<n>) is left out. */
size_t gd_utf8_cut(const char *s, size_t n, size_t max);

/* Copies <in, n> into <out> (room for <cap> bytes, no NUL added) with every
 * invalid byte replaced by U+FFFD (3 bytes); stops before a character that
 * would not fit whole. Returns the bytes written; *<used> (may be NULL) is
 * set to the input bytes consumed. */
size_t gd_utf8_sanitize(const char *in, size_t n, char *out, size_t cap, size_t *used);

#endif
