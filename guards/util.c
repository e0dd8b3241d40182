#include "guards/util.h"

#include "guards/utf8.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void gd_trip_set(struct gd_trip *trip, const char *guard, enum gd_stream stream,
                 uint64_t cut, const char *fmt, ...)
{
	va_list ap;

	snprintf(trip->guard, sizeof(trip->guard), "%s", guard);
	va_start(ap, fmt);
	int n = vsnprintf(trip->detail, sizeof(trip->detail), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(trip->detail)) {
		/* Cut short: end on a whole character, the detail goes into JSON. */
		size_t have = sizeof(trip->detail) - 1;
		trip->detail[gd_utf8_cut(trip->detail, have, have)] = '\0';
	}
	trip->stream = stream;
	trip->cut = cut;
	trip->at = 0;
	trip->event_used = 0;
}

void gd_snippet(char *out, size_t outlen, const char *s, size_t len, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = gd_utf8_cut(s, len, max);
	size_t o = 0, i = 0;

	if (outlen == 0)
		return;
	/* Whole characters only: a detail goes into JSON, which must stay
	 * valid UTF-8 (an invalid byte becomes U+FFFD, a control byte '.'). */
	while (i < n) {
		uint32_t cp;
		size_t k = gd_utf8_decode(p + i, n - i, &cp);
		if (k == 1 && (cp < 0x20 || cp == 0x7f)) {
			if (o + 2 > outlen)
				break;
			out[o++] = '.';
			i++;
			continue;
		}
		size_t used;
		size_t w = gd_utf8_sanitize(s + i, k ? k : 1, out + o, outlen - 1 - o, &used);
		if (used == 0)
			break;
		o += w;
		i += used;
	}
	if (i < len && o + 4 <= outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static bool word_in(const char *words, uint32_t n, const char *w, size_t len)
{
	for (uint32_t i = 0; i < n; i++) {
		const char *word = words + (size_t)i * GD_WORD_MAX;
		if (strlen(word) == len && strncasecmp(word, w, len) == 0)
			return true;
	}
	return false;
}

bool gd_name_has_word(const char *words, uint32_t n, const char *name, size_t len)
{
	size_t start = 0;

	for (uint32_t i = 0; i < n; i++) {
		const char *word = words + (size_t)i * GD_WORD_MAX;
		size_t wl = strlen(word);
		if (wl < 5 || wl > len)
			continue;
		for (size_t j = 0; j + wl <= len; j++)
			if (strncasecmp(name + j, word, wl) == 0)
				return true;
	}
	for (size_t i = 0; i <= len; i++) {
		bool split = i == len || strchr("_-./: ", name[i]) != NULL;
		bool camel = i > 0 && i < len && islower((unsigned char)name[i - 1]) &&
		             isupper((unsigned char)name[i]);

		if (split || camel) {
			if (i > start && word_in(words, n, name + start, i - start))
				return true;
			start = split ? i + 1 : i;
		}
	}
	return false;
}
