/* The within-answer call guards: name-run cap, dedup (incl. cycles up to 4
 * calls) and the budgets, each with its nearest legitimate look-alike. */
#include "test_guard_util.h"

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

/* Feeds calls <names[i]>(<args[i]>) with ids call_<i>; returns the 1-based
 * number of the call that tripped, 0 for none. */
static int calls(struct gd_pipeline *p, int n, const char *const *names,
                 const char *const *args)
{
	for (int i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof(id), "call_%d", i);
		enum gd_verdict v = tg_call(p, (uint32_t)i, id, names[i], args[i], 7);
		if (v == GD_TRIP)
			return i + 1;
		assert_int_equal(v, GD_PASS);
	}
	return 0;
}

static void test_name_run(void **state)
{
	(void)state;
	const char *names[40], *args[40];
	char buf[40][64];
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);

	for (int i = 0; i < 40; i++) {
		names[i] = "grep";
		snprintf(buf[i], sizeof(buf[i]), "{\"pattern\":\"oldLogger%d\",\"path\":\"src/\"}", i);
		args[i] = buf[i];
	}
	assert_int_equal(calls(p, 40, names, args), 16);
	const struct gd_trip *t = gd_pipeline_trip(p);
	assert_string_equal(t->guard, "name_run");
	assert_int_equal(t->stream, GD_STREAM_TOOLS);
	assert_int_equal(t->cut, 15); /* the 15 calls before it were released */
	gd_pipeline_free(p);

	/* Look-alike: ten parallel edits of ten files, then a test run. */
	p = gd_pipeline_new(pol, NULL);
	for (int i = 0; i < 10; i++) {
		names[i] = "edit";
		snprintf(buf[i], sizeof(buf[i]), "{\"path\":\"src/svc%02d.ts\",\"old\":\"a\",\"new\":\"b\"}", i);
		args[i] = buf[i];
	}
	names[10] = "bash";
	args[10] = "{\"command\":\"npm test\"}";
	assert_int_equal(calls(p, 11, names, args), 0);
	assert_int_equal(tg_finish(p, "tool_calls"), GD_PASS);
	gd_pipeline_free(p);
}

/* Issue 12 item 6: twenty reads of twenty different files in one answer is
 * an agent being thorough, not a name run; a search spelled again and again
 * is a loop (dedup.max_similar) long before the run cap. */
static void test_name_run_per_tool(void **state)
{
	(void)state;
	const char *names[80], *args[80];
	char buf[80][96];
	static const char *const readers[] = { "read", "read_file", "Read", "view", "read_many_files" };

	for (size_t k = 0; k < sizeof(readers) / sizeof(readers[0]); k++) {
		struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
		for (int i = 0; i < 80; i++) {
			names[i] = readers[k];
			snprintf(buf[i], sizeof(buf[i]), "{\"filePath\":\"src/module%02d/index.ts\"}", i);
			args[i] = buf[i];
		}
		if (calls(p, 63, names, args) != 0)
			fail_msg("%s: 63 distinct reads should pass", readers[k]);
		gd_pipeline_free(p);
		p = gd_pipeline_new(pol, NULL);
		if (calls(p, 80, names, args) != 64)
			fail_msg("%s: the 64th read in a row should trip", readers[k]);
		assert_string_equal(gd_pipeline_trip(p)->guard, "name_run");
		gd_pipeline_free(p);
	}
	/* Searches and listings keep max_run (16); "thread_dump" is not "read". */
	static const char *const others[] = { "grep", "list_dir", "thread_dump", "readdir" };
	for (size_t k = 0; k < sizeof(others) / sizeof(others[0]); k++) {
		struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
		for (int i = 0; i < 20; i++)
			names[i] = others[k];
		if (calls(p, 20, names, args) != 16)
			fail_msg("%s: the 16th call in a row should trip", others[k]);
		gd_pipeline_free(p);
	}
	/* Per tool from the config, 0 = no cap. */
	struct gd_policy *own = tg_policy((const char *const[]){
		"guards.name_run.per_tool.list=40", "guards.name_run.per_tool.read=0", NULL });
	struct gd_pipeline *p = gd_pipeline_new(own, NULL);
	for (int i = 0; i < 50; i++)
		names[i] = "list_dir";
	assert_int_equal(calls(p, 50, names, args), 40);
	gd_pipeline_free(p);
	p = gd_pipeline_new(own, NULL);
	for (int i = 0; i < 80; i++)
		names[i] = "read";
	assert_int_equal(calls(p, 80, names, args), 0);
	gd_pipeline_free(p);
	gd_policy_free(own);
}

static void test_dedup_similar(void **state)
{
	(void)state;
	static const char *const spell[] = { "oldLogger", "old_logger", "OldLogger", "OLD-LOGGER",
		"old logger" };
	const char *names[5], *args[5];
	char buf[5][96];

	for (int i = 0; i < 5; i++) {
		names[i] = "grep";
		snprintf(buf[i], sizeof(buf[i]), "{\"pattern\":\"%s\",\"path\":\"%s\"}", spell[i],
		         i % 2 ? "./src" : "src/");
		args[i] = buf[i];
	}
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
	assert_int_equal(calls(p, 5, names, args), 4);
	assert_string_equal(gd_pipeline_trip(p)->guard, "dedup");
	gd_pipeline_free(p);
	/* Three spellings searched at once: thorough, not a loop. */
	p = gd_pipeline_new(pol, NULL);
	assert_int_equal(calls(p, 3, names, args), 0);
	gd_pipeline_free(p);
	/* Other paths, other values: different calls. */
	for (int i = 0; i < 5; i++) {
		snprintf(buf[i], sizeof(buf[i]), "{\"pattern\":\"%s\",\"path\":\"pkg%d/\"}", spell[i], i);
		args[i] = buf[i];
	}
	p = gd_pipeline_new(pol, NULL);
	assert_int_equal(calls(p, 5, names, args), 0);
	gd_pipeline_free(p);
	/* Typing "a", "A", "a!" is three key strokes (repeatable actions). */
	const char *tn[] = { "computer", "computer", "computer", "computer" };
	const char *ta[] = { "{\"action\":\"type\",\"text\":\"a\"}", "{\"action\":\"type\",\"text\":\"A\"}",
	                     "{\"action\":\"type\",\"text\":\"a!\"}", "{\"action\":\"type\",\"text\":\"A.\"}" };
	p = gd_pipeline_new(pol, NULL);
	assert_int_equal(calls(p, 4, tn, ta), 0);
	gd_pipeline_free(p);
	/* 0 turns the rule off. */
	struct gd_policy *off = tg_policy((const char *const[]){ "guards.dedup.max_similar=0", NULL });
	for (int i = 0; i < 5; i++) {
		snprintf(buf[i], sizeof(buf[i]), "{\"pattern\":\"%s\"}", spell[i]);
		args[i] = buf[i];
	}
	p = gd_pipeline_new(off, NULL);
	assert_int_equal(calls(p, 5, names, args), 0);
	gd_pipeline_free(p);
	gd_policy_free(off);
}

static void test_dedup_same_call(void **state)
{
	(void)state;
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
	/* Same call, keys reordered and spaced differently: the same call. */
	const char *names[] = { "read_file", "read_file" };
	const char *args[] = { "{\"path\":\"a.c\",\"limit\":80}", "{ \"limit\": 80, \"path\": \"a.c\" }" };
	assert_int_equal(calls(p, 2, names, args), 2);
	assert_string_equal(gd_pipeline_trip(p)->guard, "dedup");
	gd_pipeline_free(p);

	/* A mutating call too: all calls of one answer are written before any
	 * result is seen, so a second identical `bash` (or edit) is redundant. */
	p = gd_pipeline_new(pol, NULL);
	const char *n3[] = { "bash", "bash", "bash" };
	const char *a3[] = { "{\"command\":\"npm test\"}", "{\"command\":\"npm test\"}",
	                     "{\"command\":\"npm test\"}" };
	assert_int_equal(calls(p, 3, n3, a3), 2);
	assert_string_equal(gd_pipeline_trip(p)->guard, "dedup");
	gd_pipeline_free(p);
	p = gd_pipeline_new(pol, NULL);
	const char *ne[] = { "edit", "edit" };
	const char *ae[] = { "{\"path\":\"a.c\",\"old\":\"x\",\"new\":\"y\"}",
	                     "{\"path\":\"a.c\",\"old\":\"x\",\"new\":\"y\"}" };
	assert_int_equal(calls(p, 2, ne, ae), 2);
	gd_pipeline_free(p);
	/* Look-alike: input actions (guards.dedup.repeatable) may come twice —
	 * press Down twice to move two rows — not three times. */
	static const char *const keyers[] = { "computer", "browser_press_key", "press_key",
		"scroll_down", "mobile_swipe", "left_click", "sendKeys", "wait" };
	for (size_t k = 0; k < sizeof(keyers) / sizeof(keyers[0]); k++) {
		const char *nk[] = { keyers[k], keyers[k], keyers[k] };
		const char *ak[] = { "{\"action\":\"key\",\"text\":\"Down\"}",
		                     "{\"action\":\"key\",\"text\":\"Down\"}",
		                     "{\"action\":\"key\",\"text\":\"Down\"}" };
		p = gd_pipeline_new(pol, NULL);
		assert_int_equal(calls(p, 2, nk, ak), 0);
		gd_pipeline_free(p);
		p = gd_pipeline_new(pol, NULL);
		if (calls(p, 3, nk, ak) != 3)
			fail_msg("%s: the third identical call should trip", keyers[k]);
		gd_pipeline_free(p);
	}
	/* The old behaviour for every mutating call is one key away. */
	struct gd_policy *three = tg_policy((const char *const[]){
		"guards.dedup.max_repeats_mutating=3", NULL });
	p = gd_pipeline_new(three, NULL);
	assert_int_equal(calls(p, 3, n3, a3), 3);
	gd_pipeline_free(p);
	gd_policy_free(three);

	/* Look-alike: the same file read at increasing offsets. */
	p = gd_pipeline_new(pol, NULL);
	const char *n4[] = { "read_file", "read_file", "read_file", "read_file" };
	const char *a4[] = { "{\"path\":\"big.py\",\"offset\":0}", "{\"path\":\"big.py\",\"offset\":200}",
	                     "{\"path\":\"big.py\",\"offset\":400}", "{\"path\":\"big.py\",\"offset\":600}" };
	assert_int_equal(calls(p, 4, n4, a4), 0);
	gd_pipeline_free(p);
}

static void test_dedup_cycles(void **state)
{
	(void)state;
	/* Cycles of 2, 3 and 4 repeatable calls (exempt from the plain count
	 * until the third copy) trip at the end of the second round. */
	for (int c = 2; c <= 4; c++) {
		struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
		const char *names[12], *args[12];
		char buf[12][64];
		for (int i = 0; i < 12; i++) {
			names[i] = "press_key";
			snprintf(buf[i], sizeof(buf[i]), "{\"step\":\"s%d\"}", i % c);
			args[i] = buf[i];
		}
		assert_int_equal(calls(p, 12, names, args), 2 * c);
		assert_string_equal(gd_pipeline_trip(p)->guard, "dedup");
		assert_non_null(strstr(gd_pipeline_trip(p)->detail, "cycle"));
		gd_pipeline_free(p);
	}
	/* A 5-cycle is past max_cycle: only the plain count (3rd copy) trips. */
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
	const char *names[15], *args[15];
	char buf[15][64];
	for (int i = 0; i < 15; i++) {
		names[i] = "press_key";
		snprintf(buf[i], sizeof(buf[i]), "{\"step\":\"s%d\"}", i % 5);
		args[i] = buf[i];
	}
	assert_int_equal(calls(p, 15, names, args), 11);
	gd_pipeline_free(p);
}

static void test_budgets(void **state)
{
	(void)state;
	struct gd_policy *b = tg_policy((const char *const[]){ "guards.budget.max_tool_calls=5",
		"guards.budget.max_output_bytes=1000", "guards.name_run.enabled=false", NULL });
	struct gd_pipeline *p = gd_pipeline_new(b, NULL);
	const char *names[8], *args[8];
	char buf[8][64];
	for (int i = 0; i < 8; i++) {
		names[i] = "list_dir";
		snprintf(buf[i], sizeof(buf[i]), "{\"path\":\"pkg%d\"}", i);
		args[i] = buf[i];
	}
	assert_int_equal(calls(p, 8, names, args), 6);
	assert_string_equal(gd_pipeline_trip(p)->guard, "budget");
	gd_pipeline_free(p);

	/* Output bytes: text and reasoning together. */
	p = gd_pipeline_new(b, NULL);
	char line[101];
	memset(line, 'x', 100);
	line[100] = '\0';
	for (int i = 0; i < 100; i++)
		line[i] = (char)('a' + (i * 31 + i / 26) % 26);
	int tripped_at = 0;
	for (int i = 0; i < 20 && !tripped_at; i++) {
		line[0] = (char)('A' + i);
		if ((i % 2 ? tg_text(p, line) : tg_reasoning(p, line)) == GD_TRIP)
			tripped_at = i + 1;
	}
	assert_int_equal(tripped_at, 11);
	assert_string_equal(gd_pipeline_trip(p)->guard, "budget");
	gd_pipeline_free(p);
	gd_policy_free(b);
}

static void test_disabled_guards_do_not_trip(void **state)
{
	(void)state;
	struct gd_policy *off = tg_policy((const char *const[]){ "guards.dedup.enabled=false",
		"guards.name_run.enabled=false", NULL });
	struct gd_pipeline *p = gd_pipeline_new(off, NULL);
	const char *names[20], *args[20];
	for (int i = 0; i < 20; i++) {
		names[i] = "read_file";
		args[i] = "{\"path\":\"a\"}";
	}
	assert_int_equal(calls(p, 20, names, args), 0);
	gd_pipeline_free(p);
	gd_policy_free(off);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_run),
		cmocka_unit_test(test_name_run_per_tool),
		cmocka_unit_test(test_dedup_similar),
		cmocka_unit_test(test_dedup_same_call),
		cmocka_unit_test(test_dedup_cycles),
		cmocka_unit_test(test_budgets),
		cmocka_unit_test(test_disabled_guards_do_not_trip),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
