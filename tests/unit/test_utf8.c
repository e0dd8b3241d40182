/* guards/utf8: strict decoding, cutting on character boundaries,
 * sanitizing; and the trip-detail helpers built on it (issue 12, item 9: a
 * detail cut mid-character made the final chunk invalid UTF-8). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "guards/utf8.h"
#include "guards/util.h"

static void test_decode_strict(void **state)
{
	(void)state;
	uint32_t cp;
	assert_int_equal(gd_utf8_decode((const unsigned char *)"A", 1, &cp), 1);
	assert_int_equal(cp, 'A');
	assert_int_equal(gd_utf8_decode((const unsigned char *)"\xF0\x9F\x98\x80", 4, &cp), 4);
	assert_int_equal(cp, 0x1F600);
	/* overlong, surrogate, past U+10FFFF, lone continuation, truncated */
	assert_int_equal(gd_utf8_decode((const unsigned char *)"\xC0\xAF", 2, &cp), 0);
	assert_int_equal(gd_utf8_decode((const unsigned char *)"\xE0\x80\xAF", 3, &cp), 0);
	assert_int_equal(gd_utf8_decode((const unsigned char *)"\xED\xA0\x80", 3, &cp), 0);
	assert_int_equal(gd_utf8_decode((const unsigned char *)"\xF4\x90\x80\x80", 4, &cp), 0);
	assert_int_equal(gd_utf8_decode((const unsigned char *)"\x80", 1, &cp), 0);
	assert_int_equal(gd_utf8_decode((const unsigned char *)"\xE4\xB8", 2, &cp), 0);
	assert_true(gd_utf8_valid("h\xC3\xA9llo \xE4\xB8\xAD", 10));
	assert_false(gd_utf8_valid("abc\xFF", 4));
}

static void test_cut_boundaries(void **state)
{
	(void)state;
	const char *s = "\xF0\x9F\x98\x80\xF0\x9F\x98\x80"; /* two 4-byte emoji */
	for (size_t max = 0; max <= 8; max++) {
		size_t k = gd_utf8_cut(s, 8, max);
		assert_true(k == 0 || k == 4 || k == 8);
		assert_true(k <= max && max - k < 4);
		assert_true(gd_utf8_valid(s, k));
	}
	/* an invalid byte is a character of its own */
	assert_int_equal(gd_utf8_cut("a\xFF" "b", 3, 2), 2);
	/* a character cut off by the end of the data is left out */
	assert_int_equal(gd_utf8_cut("a\xE4\xB8", 3, 3), 1);
	assert_int_equal(gd_utf8_cut("a\xF0\x9F\x98", 4, 4), 1);
}

static void test_sanitize(void **state)
{
	(void)state;
	char out[32];
	size_t used;
	size_t n = gd_utf8_sanitize("a\xFF" "b\xE4\xB8", 5, out, sizeof(out), &used);
	assert_int_equal(used, 5);
	/* a, U+FFFD, b, U+FFFD, U+FFFD (the truncated sequence byte by byte) */
	assert_int_equal(n, 1 + 3 + 1 + 3 + 3);
	assert_true(gd_utf8_valid(out, n));
	/* no room for a whole character: stop before it */
	n = gd_utf8_sanitize("\xF0\x9F\x98\x80", 4, out, 3, &used);
	assert_int_equal(n, 0);
	assert_int_equal(used, 0);
}

static void test_snippet_whole_characters(void **state)
{
	(void)state;
	char text[400];
	size_t len = 0;
	while (len + 4 <= sizeof(text)) { /* 4-byte characters */
		memcpy(text + len, "\xF0\x9F\x94\x81", 4);
		len += 4;
	}
	for (size_t max = 1; max < 80; max++) {
		char out[64];
		gd_snippet(out, sizeof(out), text, len, max);
		assert_true(gd_utf8_valid(out, strlen(out)));
	}
	char out[64];
	gd_snippet(out, sizeof(out), "\xE4\xB8\xAD\xE6\x96\x87\x01\xFF", 8, 100);
	assert_string_equal(out, "\xE4\xB8\xAD\xE6\x96\x87.\xEF\xBF\xBD");
}

static void test_trip_detail_cut(void **state)
{
	(void)state;
	char unit[1024];
	size_t len = 0;
	while (len + 3 <= 600) {
		memcpy(unit + len, "\xE4\xB8\xAD", 3); /* CJK */
		len += 3;
	}
	unit[len] = '\0';
	for (int shift = 0; shift < 4; shift++) {
		struct gd_trip trip;
		memset(&trip, 0, sizeof(trip));
		gd_trip_set(&trip, "repeat", GD_STREAM_TEXT, 0, "%.*s%s", shift, "xyz", unit);
		assert_true(strlen(trip.detail) < sizeof(trip.detail));
		assert_true(gd_utf8_valid(trip.detail, strlen(trip.detail)));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_strict),
		cmocka_unit_test(test_cut_boundaries),
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_snippet_whole_characters),
		cmocka_unit_test(test_trip_detail_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
