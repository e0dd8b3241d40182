/* Stop-string matching (see stop.h). The work text is the held tail plus
 * the new piece, built in the caller's <out>; the occurrence of a stop
 * string in it that ends first is the match. Otherwise the longest tail of
 * it that is a proper prefix of a stop string is held, and everything before
 * it can never be part of a match: a match starting there would either lie
 * inside the work text (found) or run past its end (then that tail would be
 * longer). Held text never holds a complete stop string, so a match found
 * in the work text ends in the new piece: the first to end is the first the
 * generation completed. */
#include "engine/stop.h"

#include <stdio.h>
#include <string.h>

enum eng_status eng_stop_init(struct eng_stop *s, const struct eng_str *stops, uint32_t n,
                              char *err, size_t errlen)
{
	if (!s || (n && !stops)) {
		if (err && errlen)
			snprintf(err, errlen, "no stop strings given");
		return ENG_ERR_ARG;
	}
	memset(s, 0, sizeof(*s));
	s->matched = -1;
	if (n > ENG_STOP_MAX) {
		if (err && errlen)
			snprintf(err, errlen, "%u stop strings: at most %d", n, ENG_STOP_MAX);
		return ENG_ERR_LIMIT;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (!stops[i].ptr || stops[i].len == 0) {
			if (err && errlen)
				snprintf(err, errlen, "stop[%u] is empty", i);
			return ENG_ERR_ARG;
		}
		if (stops[i].len > ENG_STOP_LEN_MAX) {
			if (err && errlen)
				snprintf(err, errlen, "stop[%u] is %zu bytes long: at most %d", i,
				         stops[i].len, ENG_STOP_LEN_MAX);
			return ENG_ERR_LIMIT;
		}
		memcpy(s->str[i], stops[i].ptr, stops[i].len);
		s->len[i] = (uint32_t)stops[i].len;
	}
	s->n = n;
	return ENG_OK;
}

/* Length of the longest tail of <w, n> that is a proper prefix of a stop string. */
static size_t held_tail(const struct eng_stop *s, const char *w, size_t n)
{
	size_t best = 0;

	for (uint32_t k = 0; k < s->n; k++) {
		size_t l = s->len[k];
		size_t from = n >= l ? n - l + 1 : 0; /* a tail shorter than the string */

		for (size_t p = from; p < n && n - p > best; p++) {
			if (w[p] != s->str[k][0])
				continue;
			if (memcmp(w + p, s->str[k], n - p) == 0) {
				best = n - p;
				break; /* the first hit is the longest for this string */
			}
		}
	}
	return best;
}

int64_t eng_stop_feed(struct eng_stop *s, const char *piece, size_t len, char *out, size_t cap)
{
	size_t n, first = SIZE_MAX, end = SIZE_MAX, keep;

	if (!s || (!piece && len) || (!out && cap))
		return ENG_ERR_ARG;
	if (s->matched >= 0)
		return 0;
	if (cap < ENG_STOP_OUT_MAX(len))
		return ENG_ERR_RANGE;
	memcpy(out, s->hold, s->hold_len);
	if (len)
		memcpy(out + s->hold_len, piece, len);
	n = s->hold_len + len;
	s->hold_len = 0;
	/* The match is the stop string that is complete first (generation
	 * would have stopped there), the earliest-starting of those ending at
	 * the same byte; so the answer does not depend on how the text was
	 * split into pieces. */
	for (uint32_t k = 0; k < s->n; k++) {
		const char *at = n >= s->len[k] ? memmem(out, n, s->str[k], s->len[k]) : NULL;
		size_t a = at ? (size_t)(at - out) : 0, e = a + s->len[k];

		if (at && (e < end || (e == end && a < first))) {
			first = a;
			end = e;
			s->matched = (int)k;
		}
	}
	if (s->matched >= 0)
		return (int64_t)first;
	keep = held_tail(s, out, n);
	memcpy(s->hold, out + n - keep, keep);
	s->hold_len = keep;
	return (int64_t)(n - keep);
}

int64_t eng_stop_flush(struct eng_stop *s, char *out, size_t cap)
{
	size_t n;

	if (!s || (!out && cap))
		return ENG_ERR_ARG;
	if (cap < s->hold_len)
		return ENG_ERR_RANGE;
	n = s->hold_len;
	memcpy(out, s->hold, n);
	s->hold_len = 0;
	return (int64_t)n;
}

int eng_stop_matched(const struct eng_stop *s)
{
	return s ? s->matched : -1;
}
