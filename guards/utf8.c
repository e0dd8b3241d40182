#include "guards/utf8.h"

size_t gd_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	*cp = GD_UTF8_REPLACEMENT;
	if (n == 0)
		return 0;
	unsigned char c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	size_t len;
	uint32_t v, min;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2, v = c & 0x1Fu, min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3, v = c & 0x0Fu, min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4, v = c & 0x07u, min = 0x10000;
	} else {
		return 0; /* a continuation byte, C0/C1 (overlong), F5-FF */
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3Fu);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return len;
}

bool gd_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp;
	for (size_t i = 0; i < n;) {
		size_t k = gd_utf8_decode(p + i, n - i, &cp);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

/* True when <s, n> (n >= 1) is the start of a valid sequence longer than
 * <n>: a character cut off by the end of the data. */
static bool partial_prefix(const unsigned char *s, size_t n)
{
	unsigned char buf[4] = {0};
	size_t len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 1;
	if (n >= len || len == 1)
		return false;
	for (size_t i = 0; i < len; i++)
		buf[i] = i < n ? s[i] : (s[0] == 0xE0 && i == 1) ? 0xA0 : (s[0] == 0xF0 && i == 1) ? 0x90 : 0x80;
	uint32_t cp;
	return gd_utf8_decode(buf, len, &cp) == len;
}

size_t gd_utf8_cut(const char *s, size_t n, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t end = n < max ? n : max;
	uint32_t cp;
	size_t i = 0;
	while (i < end) {
		size_t k = gd_utf8_decode(p + i, n - i, &cp);
		if (k == 0 && partial_prefix(p + i, n - i))
			break; /* cut off by the end of the data */
		if (k == 0)
			k = 1; /* an invalid byte stands alone */
		if (i + k > end)
			break;
		i += k;
	}
	return i;
}

size_t gd_utf8_sanitize(const char *in, size_t n, char *out, size_t cap, size_t *used)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0, o = 0;
	uint32_t cp;
	while (i < n) {
		size_t k = gd_utf8_decode(p + i, n - i, &cp);
		if (k > 0) {
			if (o + k > cap)
				break;
			for (size_t j = 0; j < k; j++)
				out[o + j] = (char)p[i + j];
			o += k;
			i += k;
			continue;
		}
		if (o + 3 > cap)
			break;
		out[o++] = (char)0xEF;
		out[o++] = (char)0xBF;
		out[o++] = (char)0xBD;
		i++;
	}
	if (used)
		*used = i;
	return o;
}
