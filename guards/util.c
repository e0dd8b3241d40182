#include "guards/util.h"

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
	vsnprintf(trip->detail, sizeof(trip->detail), fmt, ap);
	va_end(ap);
	trip->stream = stream;
	trip->cut = cut;
}

void gd_snippet(char *out, size_t outlen, const char *s, size_t len, size_t max)
{
	size_t n = len < max ? len : max;
	size_t o = 0;

	if (outlen == 0)
		return;
	for (size_t i = 0; i < n && o + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];
		out[o++] = (c < 0x20 || c == 0x7f) ? '.' : (char)c;
	}
	if (n < len && o + 4 < outlen) {
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
