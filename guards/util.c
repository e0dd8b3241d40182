#include "guards/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
