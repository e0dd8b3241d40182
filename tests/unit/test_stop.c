/* Stop strings: text is released as soon as it cannot begin a stop string,
 * a possible prefix is held, a match releases what came before it and drops
 * the rest. Fed whole, split at every byte and one byte at a time, for
 * chosen and random texts, the released text must always be the text up to
 * the stop string completed first (or all of it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/stop.h"

#define S(lit) ((struct eng_str){ (lit), sizeof(lit) - 1 })

/* The answer a stop matcher must give: <text> up to the stop string that
 * is complete first (generation stops there); of two ending at the same
 * byte, the one starting first. Written independently, by scanning ends. */
static size_t reference(const struct eng_str *stops, uint32_t n, const char *text, size_t len,
                        int *which)
{
	*which = -1;
	for (size_t e = 1; e <= len; e++) {
		size_t best = SIZE_MAX;

		for (uint32_t k = 0; k < n; k++) {
			size_t l = stops[k].len;

			if (l <= e && e - l < best && memcmp(text + e - l, stops[k].ptr, l) == 0) {
				best = e - l;
				*which = (int)k;
			}
		}
		if (best != SIZE_MAX)
			return best;
	}
	return len;
}

/* Feeds <text> in pieces ending at <cuts>; returns the released text. */
static char *run(const struct eng_str *stops, uint32_t n, const char *text, size_t len,
                 const size_t *cuts, size_t ncuts, int *which)
{
	struct eng_stop s;
	char *got = malloc(len + 1), *out = malloc(ENG_STOP_OUT_MAX(len));
	size_t at = 0, glen = 0;
	int64_t r;

	assert_non_null(got);
	assert_non_null(out);
	assert_int_equal(eng_stop_init(&s, stops, n, NULL, 0), ENG_OK);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;

		r = eng_stop_feed(&s, text + at, to - at, out, ENG_STOP_OUT_MAX(to - at));
		assert_true(r >= 0);
		memcpy(got + glen, out, (size_t)r);
		glen += (size_t)r;
		at = to;
	}
	if (eng_stop_matched(&s) < 0) {
		r = eng_stop_flush(&s, out, ENG_STOP_LEN_MAX);
		assert_true(r >= 0);
		memcpy(got + glen, out, (size_t)r);
		glen += (size_t)r;
	}
	got[glen] = '\0';
	*which = eng_stop_matched(&s);
	free(out);
	return got;
}

static void check(const struct eng_str *stops, uint32_t n, const char *text)
{
	size_t len = strlen(text), *cuts = malloc((len + 1) * sizeof(size_t));
	int want_which, which;
	size_t want = reference(stops, n, text, len, &want_which);
	char *got;

	got = run(stops, n, text, len, NULL, 0, &which);
	assert_int_equal(strlen(got), want);
	assert_memory_equal(got, text, want);
	assert_int_equal(which, want_which);
	free(got);
	for (size_t k = 0; k <= len; k++) {
		got = run(stops, n, text, len, &k, 1, &which);
		assert_int_equal(strlen(got), want);
		assert_memory_equal(got, text, want);
		assert_int_equal(which, want_which);
		free(got);
	}
	for (size_t k = 0; k < len; k++)
		cuts[k] = k + 1;
	got = run(stops, n, text, len, cuts, len, &which);
	assert_int_equal(strlen(got), want);
	assert_int_equal(which, want_which);
	free(got);
	free(cuts);
}

static void test_release_and_hold(void **state)
{
	const struct eng_str stops[] = { S("\n\n"), S("END") };
	struct eng_stop s;
	char out[ENG_STOP_OUT_MAX(16)];

	(void)state;
	assert_int_equal(eng_stop_init(&s, stops, 2, NULL, 0), ENG_OK);
	/* Nothing here can begin a stop string: all out at once. */
	assert_int_equal(eng_stop_feed(&s, "Hello wor", 9, out, sizeof(out)), 9);
	assert_memory_equal(out, "Hello wor", 9);
	/* "\n" might begin "\n\n": held. */
	assert_int_equal(eng_stop_feed(&s, "ld\n", 3, out, sizeof(out)), 2);
	assert_memory_equal(out, "ld", 2);
	/* Not the stop: the held "\n" goes out with the rest ("E" held). */
	assert_int_equal(eng_stop_feed(&s, "xE", 2, out, sizeof(out)), 2);
	assert_memory_equal(out, "\nx", 2);
	assert_int_equal(eng_stop_matched(&s), -1);
	/* "END": the text before it out, the match reported, the rest dropped. */
	assert_int_equal(eng_stop_feed(&s, "ND and more", 11, out, sizeof(out)), 0);
	assert_int_equal(eng_stop_matched(&s), 1);
	assert_int_equal(eng_stop_feed(&s, "more", 4, out, sizeof(out)), 0);
	assert_int_equal(eng_stop_flush(&s, out, sizeof(out)), 0);
}

static void test_cases(void **state)
{
	const struct eng_str two[] = { S("abc"), S("bcd") };
	const struct eng_str aab[] = { S("aab") };
	const struct eng_str utf8[] = { S("\xc3\xa9"), S("</tool_call>") };
	const struct eng_str obs[] = { S("Observation:"), S("\nUser:"), S("<|im_end|>"), S("###") };

	(void)state;
	check(two, 2, "xabcd");
	check(two, 2, "xabd");
	{
		/* "b" is complete before "abc": generation stops at "ab". */
		const struct eng_str nested[] = { S("abc"), S("b") };

		check(nested, 2, "xabc");
	}
	check(two, 2, "xbcabc");
	check(aab, 1, "aaab");
	check(aab, 1, "aaaaaaaaa");
	check(utf8, 2, "caf\xc3\xa9 au lait");
	check(utf8, 2, "<tool_call>{}</tool_cal");
	check(obs, 4, "Thought: I need the weather.\nAction: get_weather\nObservation: 18C");
	check(obs, 4, "User: hi\nUse\nUser: again");
	check(obs, 4, "no stop here at all ## # #");
	check(NULL, 0, "anything at all");
}

static void test_random(void **state)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	char text[200], sbuf[ENG_STOP_MAX][8];

	(void)state;
	for (int round = 0; round < 300; round++) {
		struct eng_str stops[ENG_STOP_MAX];
		uint32_t n = 1 + (uint32_t)(round % ENG_STOP_MAX);
		size_t len = 20 + (size_t)(round % 150);

		for (uint32_t k = 0; k < n; k++) {
			size_t l = 1 + (size_t)((x >> 7) % 5);

			for (size_t i = 0; i < l; i++) {
				x = x * 6364136223846793005ull + 1442695040888963407ull;
				sbuf[k][i] = (char)('a' + (x >> 60) % 3);
			}
			stops[k] = (struct eng_str){ sbuf[k], l };
		}
		for (size_t i = 0; i < len; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			text[i] = (char)('a' + (x >> 61) % 4);
		}
		text[len] = '\0';
		check(stops, n, text);
	}
}

static void test_errors(void **state)
{
	struct eng_str five[5] = { S("a"), S("b"), S("c"), S("d"), S("e") };
	struct eng_str empty[2] = { S("a"), { "", 0 } };
	static char longs[ENG_STOP_LEN_MAX + 1];
	struct eng_str toolong = { longs, sizeof(longs) };
	struct eng_stop s;
	char err[128], out[8];

	(void)state;
	assert_int_equal(eng_stop_init(&s, five, 5, err, sizeof(err)), ENG_ERR_LIMIT);
	assert_string_equal(err, "5 stop strings: at most 4");
	assert_int_equal(eng_stop_init(&s, empty, 2, err, sizeof(err)), ENG_ERR_ARG);
	assert_string_equal(err, "stop[1] is empty");
	assert_int_equal(eng_stop_init(&s, &toolong, 1, err, sizeof(err)), ENG_ERR_LIMIT);
	assert_string_equal(err, "stop[0] is 257 bytes long: at most 256");
	assert_int_equal(eng_stop_init(&s, five, 1, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_stop_feed(&s, "xyz", 3, out, sizeof(out)), ENG_ERR_RANGE);
	assert_int_equal(eng_stop_matched(NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_release_and_hold),
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
