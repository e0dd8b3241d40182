/* The exact-repeat watchdog: floods, repeated paragraphs and runaway tool
 * arguments trip (with the cut where the repeats began); tables, box lines,
 * code, CSV and base64 pass with the defaults. */
#include "test_guard_util.h"

#include "guards/repeat.h"

static struct gd_policy *pol;

static int setup(void **state)
{
	(void)state;
	pol = tg_policy(NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	gd_policy_free(pol);
	return 0;
}

/* Feeds <s> through a fresh pipeline as <type> in <chunk>-byte events;
 * returns the trip or NULL (the pipeline is kept in *<out> for the caller). */
static const struct gd_trip *run(enum gd_event_type type, const char *s, size_t chunk,
                                 struct gd_pipeline **out)
{
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
	assert_non_null(p);
	tg_text_chunks(p, type, s, chunk);
	*out = p;
	return gd_pipeline_trip(p);
}

static void expect_pass(const char *what, const char *s, size_t chunk)
{
	struct gd_pipeline *p;
	const struct gd_trip *t = run(GD_EV_TEXT, s, chunk, &p);
	if (t)
		fail_msg("%s tripped %s: %s", what, t->guard, t->detail);
	gd_pipeline_free(p);
}

static void test_newline_flood(void **state)
{
	(void)state;
	char *s = NULL;
	size_t len = 0;
	struct gd_pipeline *p;

	tg_appendf(&s, &len, "Here is the fix:\n");
	for (int i = 0; i < 1000; i++)
		tg_appendf(&s, &len, "\n");
	const struct gd_trip *t = run(GD_EV_TEXT, s, 3, &p);
	assert_non_null(t);
	assert_string_equal(t->guard, "repeat");
	assert_int_equal(t->stream, GD_STREAM_TEXT);
	/* "Here is the fix:\n" then newlines: the repeats begin at the first
	 * '\n' (offset 16); the cut keeps one copy of the unit. */
	assert_int_equal(t->cut, 17);
	/* Within the corpus bound: 400 bytes of flood. */
	struct gd_stats st;
	gd_pipeline_stats(p, &st);
	assert_true(st.text_bytes <= 17 + 400);
	gd_pipeline_free(p);
	free(s);
}

static void test_word_flood_and_paragraph(void **state)
{
	(void)state;
	char *s = NULL;
	size_t len = 0;
	struct gd_pipeline *p;

	tg_appendf(&s, &len, "It is");
	for (int i = 0; i < 300; i++)
		tg_appendf(&s, &len, " the");
	const struct gd_trip *t = run(GD_EV_TEXT, s, 4, &p);
	assert_non_null(t);
	assert_string_equal(t->guard, "repeat");
	assert_non_null(strstr(t->detail, "4-byte unit"));
	gd_pipeline_free(p);
	free(s);

	s = NULL;
	len = 0;
	const char *para = "The cache key includes the request timestamp, so two identical "
	                   "requests never share an entry; dropping the timestamp from the key "
	                   "fixes the hit rate without changing what is cached.\n\n";
	tg_appendf(&s, &len, "Summary:");
	for (int i = 0; i < 6; i++)
		tg_appendf(&s, &len, "%s", para);
	t = run(GD_EV_REASONING, s, 5, &p);
	assert_non_null(t);
	assert_int_equal(t->stream, GD_STREAM_REASONING);
	gd_pipeline_free(p);
	/* The exact watchdog alone reports where the repeats began. */
	struct gd_policy *exact = tg_policy((const char *const[]){ "guards.simhash.enabled=false", NULL });
	p = gd_pipeline_new(exact, NULL);
	tg_text_chunks(p, GD_EV_REASONING, s, 5);
	t = gd_pipeline_trip(p);
	assert_non_null(t);
	assert_string_equal(t->guard, "repeat");
	assert_int_equal(t->stream, GD_STREAM_REASONING);
	/* The cut keeps the first copy of the paragraph. */
	assert_int_equal(t->cut, strlen("Summary:") + strlen(para));
	struct gd_stats st;
	gd_pipeline_stats(p, &st);
	assert_true(st.reasoning_bytes <= strlen("Summary:") + 3 * strlen(para) + 8);
	gd_pipeline_free(p);
	gd_policy_free(exact);
	free(s);
}

static void test_paragraph_quoted_twice_passes(void **state)
{
	(void)state;
	char *s = NULL;
	size_t len = 0;
	const char *para = "> error: cannot borrow `self.buf` as mutable because it is also "
	                   "borrowed as immutable\n";
	tg_appendf(&s, &len, "The compiler says:\n\n%s\nThat is, the slice keeps a borrow. "
	           "Running it again gives the same message:\n\n%s\nso the fix is to copy "
	           "the length before the call.\n", para, para);
	expect_pass("a quote repeated once", s, 4);
	free(s);
}

static void test_function_30x_in_write_args(void **state)
{
	(void)state;
	char *args = NULL;
	size_t len = 0;
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);

	tg_appendf(&args, &len, "{\"path\":\"src/mathutil.py\",\"content\":\"import math\\n\\n");
	for (int i = 0; i < 30; i++)
		tg_appendf(&args, &len, "def clamp(value, lo, hi):\\n    \\\"\\\"\\\"Clamp value.\\\"\\\"\\\"\\n"
		           "    return max(lo, min(hi, value))\\n\\n");
	tg_appendf(&args, &len, "\"}");
	enum gd_verdict v = tg_call(p, 0, "call_1", "write_file", args, 6);
	assert_int_equal(v, GD_TRIP);
	const struct gd_trip *t = gd_pipeline_trip(p);
	assert_int_equal(t->stream, GD_STREAM_TOOL_ARGS);
	/* Caught long before the call's arguments were complete. */
	struct gd_stats st;
	gd_pipeline_stats(p, &st);
	assert_true(st.events < 1 + len / 6 / 3);
	gd_pipeline_free(p);
	free(args);
}

static void test_tables_boxes_code_pass(void **state)
{
	(void)state;
	char *s = NULL;
	size_t len = 0;

	/* A markdown table of 40 rows. */
	tg_appendf(&s, &len, "| # | endpoint | method | p50 ms | p99 ms |\n|---|---|---|---|---|\n");
	for (int i = 0; i < 40; i++)
		tg_appendf(&s, &len, "| %d | /api/v1/items/%d | GET | %d | %d |\n", i, i * 7, 3 + i % 5,
		           40 + (i * 13) % 50);
	expect_pass("markdown table", s, 4);
	free(s);

	/* A 72-wide box of 3-byte box-drawing characters, and '=' rulers. */
	s = NULL;
	len = 0;
	for (int r = 0; r < 3; r++) {
		tg_appendf(&s, &len, "\xe2\x94\x8c");
		for (int i = 0; i < 72; i++)
			tg_appendf(&s, &len, "\xe2\x94\x80");
		tg_appendf(&s, &len, "\xe2\x94\x90\n\xe2\x94\x82 stage %d %62s\xe2\x94\x82\n", r, "");
		for (int i = 0; i < 120; i++)
			tg_appendf(&s, &len, "=");
		tg_appendf(&s, &len, "\n");
	}
	expect_pass("box drawing", s, 3);
	free(s);

	/* Code: nested blocks closing with runs of braces. */
	s = NULL;
	len = 0;
	static const char *const words[] = { "open", "read", "seek", "close", "flush", "poll",
		"bind", "listen", "accept", "send", "recv", "shutdown", "stat", "sync", "trim",
		"lock", "map", "unmap" };
	for (int f = 0; f < 12; f++) {
		tg_appendf(&s, &len, "static int on_%s(struct req *r)\n{\n", words[f]);
		for (int d = 1; d < 6; d++)
			tg_appendf(&s, &len, "%*sif (r->%s_%s != NULL) {\n", d * 4, "",
			           words[(f + d) % 18], words[(f * 3 + d) % 18]);
		tg_appendf(&s, &len, "%*sreturn do_%s(r);\n", 24, "", words[(f + 7) % 18]);
		for (int d = 5; d >= 1; d--)
			tg_appendf(&s, &len, "%*s}\n", d * 4, "");
		tg_appendf(&s, &len, "    return 0;\n}\n\n");
	}
	expect_pass("closing braces", s, 5);
	free(s);

	/* CSV data and a base64 blob. */
	s = NULL;
	len = 0;
	uint32_t x = 12345;
	tg_appendf(&s, &len, "month,region,units,revenue\n");
	for (int i = 0; i < 80; i++) {
		x = x * 1103515245u + 12345u;
		tg_appendf(&s, &len, "2024-%02d,%s,%u,%u.%02u\n", 1 + i % 12,
		           (x >> 8) % 2 ? "north" : "south", (x >> 4) % 900, (x >> 3) % 90000,
		           (x >> 5) % 100);
	}
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (int i = 0; i < 3000; i++) {
		x = x * 1103515245u + 12345u;
		tg_appendf(&s, &len, "%c%s", b64[(x >> 16) & 63], i % 76 == 75 ? "\n" : "");
	}
	tg_appendf(&s, &len, "==\n");
	expect_pass("csv and base64", s, 4);
	free(s);
}

static void test_long_period(void **state)
{
	(void)state;
	/* A 3000-byte unit (a pasted file section) repeated: caught in the
	 * third copy, with the exact watchdog alone. */
	static const char *const words[] = { "alpha", "beta", "gamma", "delta", "omega",
		"sigma", "kappa", "lambda", "theta", "zeta", "iota", "rho" };
	char *unit = NULL, *s = NULL;
	size_t ulen = 0, len = 0;
	uint32_t x = 11;
	while (ulen < 3000) {
		x = x * 1103515245u + 12345u;
		tg_appendf(&unit, &ulen, "%s%s", words[(x >> 16) % 12], (x >> 8) % 9 ? " " : ".\n");
	}
	for (int i = 0; i < 5; i++)
		tg_appendf(&s, &len, "%s", unit);
	struct gd_policy *exact = tg_policy((const char *const[]){ "guards.simhash.enabled=false", NULL });
	struct gd_pipeline *p = gd_pipeline_new(exact, NULL);
	size_t n = tg_text_chunks(p, GD_EV_TEXT, s, 7);
	assert_true(n > 0);
	const struct gd_trip *t = gd_pipeline_trip(p);
	assert_string_equal(t->guard, "repeat");
	assert_true(n * 7 > 2 * ulen && n * 7 <= 3 * ulen + 7);
	assert_int_equal(t->cut, ulen);
	gd_pipeline_free(p);
	gd_policy_free(exact);
	free(unit);
	free(s);
}

/* Runs <s> through the exact watchdog alone (SimHash off) in <chunk>-byte
 * events as <type>; returns the bytes fed when it tripped, 0 for a pass. */
static size_t exact_trip_at(enum gd_event_type type, const char *s, size_t chunk)
{
	struct gd_policy *exact = tg_policy((const char *const[]){ "guards.simhash.enabled=false", NULL });
	struct gd_pipeline *p = gd_pipeline_new(exact, NULL);
	size_t n = tg_text_chunks(p, type, s, chunk);
	const struct gd_trip *t = gd_pipeline_trip(p);
	size_t at = t ? n * chunk : 0;
	if (t)
		assert_string_equal(t->guard, "repeat");
	gd_pipeline_free(p);
	gd_policy_free(exact);
	return at;
}

/* <prefix> then <unit> <times> times then <suffix>, in a fresh string. */
static char *repeated(const char *prefix, const char *unit, int times, const char *suffix)
{
	char *s = NULL;
	size_t len = 0;
	tg_appendf(&s, &len, "%s", prefix);
	for (int i = 0; i < times; i++)
		tg_appendf(&s, &len, "%s", unit);
	tg_appendf(&s, &len, "%s", suffix);
	return s;
}

static void test_blank_lines(void **state)
{
	(void)state;
	char *s;

	/* 16 line breaks in a row trip (guards.repeat.min_blank_lines), at the
	 * 16th; 15 (14 blank lines: space left on a worksheet) pass. */
	s = repeated("Question 1: what does fork() return?", "\n", 16, "Question 2: and exec()?\n");
	size_t at = exact_trip_at(GD_EV_TEXT, s, 1);
	assert_int_equal(at, strlen("Question 1: what does fork() return?") + 16);
	free(s);
	s = repeated("Question 1: what does fork() return?", "\n", 15, "Question 2: and exec()?\n");
	assert_int_equal(exact_trip_at(GD_EV_TEXT, s, 1), 0);
	expect_pass("15 line breaks", s, 2);
	free(s);

	/* Blank lines holding indentation or CRLF count their line breaks. */
	s = repeated("x = 1\n", "    \r\n", 16, "y = 2\n");
	assert_true(exact_trip_at(GD_EV_TEXT, s, 3) > 0);
	free(s);
	s = repeated("x = 1\n", "    \r\n", 15, "y = 2\n");
	assert_int_equal(exact_trip_at(GD_EV_TEXT, s, 3), 0);
	free(s);

	/* Inside a call's arguments a line break is the JSON escape \n. */
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
	s = repeated("{\"path\":\"notes.md\",\"content\":\"# Notes", "\\n", 40, "end\"}");
	assert_int_equal(tg_call(p, 0, "call_1", "write_file", s, 4), GD_TRIP);
	assert_int_equal(gd_pipeline_trip(p)->stream, GD_STREAM_TOOL_ARGS);
	gd_pipeline_free(p);
	free(s);
	p = gd_pipeline_new(pol, NULL);
	s = repeated("{\"path\":\"notes.md\",\"content\":\"# Notes", "\\n", 15, "end\"}");
	assert_int_equal(tg_call(p, 0, "call_1", "write_file", s, 4), GD_PASS);
	gd_pipeline_free(p);
	free(s);
	/* An escaped backslash before n is not a line break: a C string of
	 * "\\n" escapes written into a file keeps the span rule. */
	p = gd_pipeline_new(pol, NULL);
	s = repeated("{\"path\":\"t.c\",\"content\":\"puts(\\\"", "\\\\n", 40, "\\\");\"}");
	assert_int_equal(tg_call(p, 0, "call_1", "write_file", s, 4), GD_PASS);
	gd_pipeline_free(p);
	free(s);

	/* Runs of spaces (alignment, ASCII art) hold no line break: the span
	 * rule applies (200 spaces pass). */
	s = repeated("name", " ", 200, "value\n");
	assert_int_equal(exact_trip_at(GD_EV_TEXT, s, 4), 0);
	free(s);

	/* 0 turns the rule off: the span rule alone (256) applies. */
	struct gd_policy *off = tg_policy((const char *const[]){ "guards.simhash.enabled=false",
		"guards.repeat.min_blank_lines=0", NULL });
	s = repeated("Done.", "\n", 200, "");
	p = gd_pipeline_new(off, NULL);
	tg_text_chunks(p, GD_EV_TEXT, s, 2);
	assert_null(gd_pipeline_trip(p));
	gd_pipeline_free(p);
	gd_policy_free(off);
	free(s);
}

static void test_word_units(void **state)
{
	(void)state;
	char *s;
	struct gd_pipeline *p;

	/* A word repeated 8 times back-to-back trips at the 8th copy
	 * (guards.repeat.min_word_repeats), cut after the first copy. */
	s = repeated("It waits and then calls", " the", 40, "");
	p = gd_pipeline_new(pol, NULL);
	size_t n = tg_text_chunks(p, GD_EV_TEXT, s, 4);
	const struct gd_trip *t = gd_pipeline_trip(p);
	assert_non_null(t);
	assert_string_equal(t->guard, "repeat");
	assert_int_equal(n, 6 + 8); /* "It waits and then calls" is 23 bytes: 6 events */
	assert_int_equal(t->cut, strlen("It waits and then calls") + 4);
	gd_pipeline_free(p);
	free(s);
	/* A phrase with commas, 8 times. */
	s = repeated("Wait, ", "no, not that, ", 8, "");
	assert_true(exact_trip_at(GD_EV_REASONING, s, 3) > 0);
	free(s);

	/* Look-alikes: 7 copies (a word-count test's input) pass. */
	s = repeated("assert count_words(\"the", " the", 6, "\") == 7\n");
	assert_int_equal(exact_trip_at(GD_EV_TEXT, s, 3), 0);
	expect_pass("a word 7 times", s, 3);
	free(s);
	s = repeated("Wait, ", "no, not that, ", 7, "the other one.");
	assert_int_equal(exact_trip_at(GD_EV_REASONING, s, 3), 0);
	free(s);
	/* Not plain words, so the span rule applies: a hex dump of erased
	 * flash, one-letter pieces of a chess board, two-letter refrains. */
	s = repeated("00000040: ", "ffff ", 8, " ................\n");
	assert_int_equal(exact_trip_at(GD_EV_TEXT, s, 3), 0);
	free(s);
	s = repeated("0040: ", "ff ", 16, " |................|\n");
	assert_int_equal(exact_trip_at(GD_EV_TEXT, s, 3), 0);
	free(s);
	s = repeated("7 ", "p ", 8, "7\n");
	assert_int_equal(exact_trip_at(GD_EV_TEXT, s, 1), 0);
	free(s);
	s = repeated("", "na ", 16, "Batman!\n");
	assert_int_equal(exact_trip_at(GD_EV_TEXT, s, 2), 0);
	expect_pass("na na na ... Batman", s, 2);
	free(s);
	/* With digits or markup a unit is not plain words either. */
	s = repeated("| a |", " --- |", 20, "\n");
	assert_int_equal(exact_trip_at(GD_EV_TEXT, s, 3), 0);
	free(s);
}

/* The counter rule (issue 12 item 1): the copies differ only in a counter
 * and spacing. Exact repetition never saw these, and SimHash ignores windows
 * this poor in words. */
static void test_counter_rule(void **state)
{
	(void)state;
	char *s = NULL;
	size_t len = 0, head;
	struct gd_policy *only = tg_policy((const char *const[]){ "guards.simhash.enabled=false", NULL });
	struct gd_pipeline *p;
	const struct gd_trip *t;

	/* One table row, only its number changing: 4 copies (and 80+ characters). */
	tg_appendf(&s, &len, "| # | Method | Path |\n|---|---|---|\n");
	head = len;
	for (int i = 1; i <= 30; i++)
		tg_appendf(&s, &len, "| %d | GET | /api/v1/users/{id} | get_user |\n", i);
	p = gd_pipeline_new(only, NULL);
	tg_text_chunks(p, GD_EV_TEXT, s, 2);
	t = gd_pipeline_trip(p);
	assert_non_null(t);
	assert_string_equal(t->guard, "repeat");
	assert_non_null(strstr(t->detail, "counter"));
	/* The cut keeps (a rotation of) the first copy, in raw offsets. */
	assert_true(t->cut > head && t->cut <= head + strlen("| 1 | GET | /api/v1/users/{id} | get_user |\n"));
	assert_true(t->event_no * 2 < head + 5 * 44);
	gd_pipeline_free(p);
	free(s);

	/* One JSON line, varying indentation and spaces, the same number. */
	s = NULL;
	len = 0;
	tg_appendf(&s, &len, "{\n  \"layers\": [\n");
	for (int i = 0; i < 40; i++)
		tg_appendf(&s, &len, "%*s\"type\":%s3.0,\n", 4 + i % 3, "", i % 4 ? " " : "  ");
	p = gd_pipeline_new(only, NULL);
	assert_true(tg_text_chunks(p, GD_EV_TEXT, s, 3) > 0);
	assert_string_equal(gd_pipeline_trip(p)->guard, "repeat");
	gd_pipeline_free(p);
	free(s);

	/* Inside a call's arguments, "\n" escapes are whitespace too. */
	p = gd_pipeline_new(only, NULL);
	assert_int_equal(tg_begin(p, 0, "w", "write_file"), GD_HOLD);
	assert_int_equal(tg_args(p, 0, NULL, "{\"path\":\"a.py\",\"content\":\""), GD_HOLD);
	enum gd_verdict v = GD_HOLD;
	for (int i = 0; i < 40 && v == GD_HOLD; i++) {
		char line[96];
		snprintf(line, sizeof(line), "@app.get(\\\"/ops/%d\\\")\\ndef handle_op():\\n    return run(%d)\\n\\n",
		         i, i);
		v = tg_args(p, 0, NULL, line);
	}
	assert_int_equal(v, GD_TRIP);
	gd_pipeline_free(p);

	/* Look-alikes: numbers that really vary, two counters with their own
	 * steps, identifiers that carry the number, rows with other words. */
	for (int k = 0; k < 4; k++) {
		s = NULL;
		len = 0;
		uint32_t x = 9;
		for (int i = 1; i <= 30; i++) {
			x = x * 1103515245u + 12345u;
			if (k == 0)
				tg_appendf(&s, &len, "| %d | 12.%d ms | 4%d3 req/s |\n", i * i % 97,
				           (int)(x >> 20) % 90, (int)(x >> 8) % 10);
			else if (k == 1)
				tg_appendf(&s, &len, "assert double(%d) == %d\n", i, 2 * i);
			else if (k == 2)
				tg_appendf(&s, &len, "def handle_%d(req):\n    return dispatch(req)\n\n", i);
			else
				tg_appendf(&s, &len, "| %d | user%d@example.com | active |\n", i, i);
		}
		p = gd_pipeline_new(only, NULL);
		size_t n = tg_text_chunks(p, GD_EV_TEXT, s, 3);
		if (n)
			fail_msg("look-alike %d tripped: %s", k, gd_pipeline_trip(p)->detail);
		gd_pipeline_free(p);
		free(s);
	}
	/* counter_repeats = 0 turns the rule off. */
	struct gd_policy *off = tg_policy((const char *const[]){ "guards.simhash.enabled=false",
		"guards.repeat.counter_repeats=0", NULL });
	s = NULL;
	len = 0;
	for (int i = 1; i <= 12; i++)
		tg_appendf(&s, &len, "| %d | GET | /api/v1/users/{id} | get_user |\n", i);
	p = gd_pipeline_new(off, NULL);
	assert_int_equal(tg_text_chunks(p, GD_EV_TEXT, s, 2), 0);
	gd_pipeline_free(p);
	gd_policy_free(off);
	free(s);
	gd_policy_free(only);
}

static void test_module_direct(void **state)
{
	(void)state;
	struct gd_repeat_config cfg = { .enabled = true, .window_bytes = 256, .max_period = 64,
	                                .min_repeats = 3, .min_span = 32 };
	struct gd_repeat r;
	struct gd_trip trip;

	assert_int_equal(gd_repeat_init(&r, &cfg), 0);
	/* Period 100 is over max_period: never found. */
	char unit[101];
	uint32_t x = 7;
	for (int i = 0; i < 100; i++) {
		x = x * 1103515245u + 12345u;
		unit[i] = (char)('a' + (x >> 16) % 26);
	}
	unit[100] = '\0';
	for (int i = 0; i < 5; i++)
		assert_int_equal(gd_repeat_feed(&r, unit, 100, GD_STREAM_TEXT, &trip), GD_PASS);
	/* After a reset, a period-10 unit repeated trips at 3 repeats + span 32. */
	gd_repeat_reset(&r);
	enum gd_verdict v = GD_PASS;
	int fed = 0;
	while (v == GD_PASS && fed < 100) {
		v = gd_repeat_feed(&r, "0123456789", 10, GD_STREAM_TEXT, &trip);
		fed++;
	}
	assert_int_equal(v, GD_TRIP);
	assert_int_equal(fed, 4); /* 32 bytes reached inside the 4th copy */
	assert_int_equal(trip.cut, 10);
	gd_repeat_fini(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_newline_flood),
		cmocka_unit_test(test_word_flood_and_paragraph),
		cmocka_unit_test(test_paragraph_quoted_twice_passes),
		cmocka_unit_test(test_function_30x_in_write_args),
		cmocka_unit_test(test_tables_boxes_code_pass),
		cmocka_unit_test(test_long_period),
		cmocka_unit_test(test_blank_lines),
		cmocka_unit_test(test_word_units),
		cmocka_unit_test(test_counter_rule),
		cmocka_unit_test(test_module_direct),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
