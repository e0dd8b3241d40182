/* The paraphrase watchdog (issue 12 item 5): reasoning that restates one
 * plan in varied words trips within a few sentences; reasoning that comes
 * back to its plan with new facts, and enumerations, pass. */
#include "test_guard_util.h"

#include "guards/paraphrase.h"

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

/* Feeds <s> as reasoning in <chunk>-byte events; returns the bytes fed when
 * a guard tripped (its name in <guard>), 0 for a pass. */
static size_t reason(const char *s, size_t chunk, char *guard)
{
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
	size_t n = tg_text_chunks(p, GD_EV_REASONING, s, chunk);

	guard[0] = '\0';
	if (n)
		strcpy(guard, gd_pipeline_trip(p)->guard);
	gd_pipeline_free(p);
	return n * chunk;
}

static void test_restated_plan_trips(void **state)
{
	(void)state;
	static const char *const slots[][4] = {
		{ "We need to add retry logic to fetchJson.", "We need to make fetchJson retry on failure.",
		  "We need fetchJson to retry when the request fails.", "The task: fetchJson must retry failed requests." },
		{ "Let's wrap the fetch call in a loop.", "Let's put the fetch call inside a retry loop.",
		  "So we wrap fetch in a loop that retries.", "Let's loop around the fetch call." },
		{ "Use exponential backoff, three attempts.", "Three attempts with exponential backoff should do.",
		  "We can do up to three attempts, doubling the delay.", "Backoff exponentially, at most three attempts." },
		{ "Then we edit src/api/client.ts.", "So we need to edit src/api/client.ts.",
		  "Then apply the edit to src/api/client.ts.", "We'll produce the edit for src/api/client.ts." },
	};
	char *s = NULL, guard[32];
	size_t len = 0, first = 0;

	tg_appendf(&s, &len, "The user wants fetchJson to retry on network errors. ");
	for (int c = 0; c < 8; c++) {
		if (c == 1)
			first = len;
		for (int i = 0; i < 4; i++)
			tg_appendf(&s, &len, "%s ", slots[i][(c + i) % 4]);
	}
	size_t at = reason(s, 4, guard);
	assert_true(at > 0);
	assert_string_equal(guard, "paraphrase");
	/* Within the second statement of the plan or just after it. */
	assert_true(at < first + (first - 52) + 64);
	free(s);
}

/* Reasoning that revisits its plan, each time with new facts; enumerations
 * (list items share their template); a table in reasoning. */
static void test_progress_and_lists_pass(void **state)
{
	(void)state;
	char guard[32];
	const char *revisit =
		"We need to add retry logic to fetchJson. Let's look at how it fails today: fetch rejects "
		"with a TypeError on a network failure, and the function throws HttpError when res.ok is "
		"false. So retry on TypeError only; HttpError means the server answered. We need to decide "
		"the delays: 100 ms, then 200, then 400. Let's also respect init.signal: an aborted request "
		"must not be retried. Let's revisit the plan: wrap fetch in a loop of three attempts, sleep "
		"between them, rethrow the last error. Wait, the tests mock fetch and expect one call on "
		"failure; test/api.test.ts asserts toHaveBeenCalledTimes(1), so that test changes to three "
		"calls with fake timers. Let me restate the plan: loop three times around fetch, retry only "
		"TypeError, never AbortError, wait 100 ms doubling; then fix the expectation in the test "
		"and run the suite. Let's do the client edit first.";
	assert_int_equal(reason(revisit, 3, guard), 0);
	const char *list =
		"The plan:\n1. Read package.json for the scripts.\n2. Read tsconfig.json for the paths.\n"
		"3. Read src/index.ts for the entry point.\n4. Read src/server.ts for the routes.\n"
		"5. Read src/db.ts for the pool.\n- check users.ts for auth calls\n- check orders.ts for auth "
		"calls\n- check items.ts for auth calls\n- check carts.ts for auth calls\n"
		"| file | auth |\n| users.ts | yes |\n| orders.ts | yes |\n| items.ts | no |\n| carts.ts | no |\n"
		"Then I will compare them.";
	assert_int_equal(reason(list, 5, guard), 0);
	/* Short sentences do not count ("Let me check.", "Wait."). */
	char *s = NULL;
	size_t len = 0;
	for (int i = 0; i < 30; i++)
		tg_appendf(&s, &len, "Wait. Let me check. Hmm, okay. ");
	struct gd_policy *keep = pol;
	pol = tg_policy((const char *const[]){ "guards.repeat.enabled=false", "guards.simhash.enabled=false",
		NULL });
	assert_int_equal(reason(s, 5, guard), 0);
	gd_policy_free(pol);
	pol = keep;
	free(s);
}

static void test_module_and_config(void **state)
{
	(void)state;
	struct gd_paraphrase_config cfg = { .enabled = true, .min_words = 3, .overlap_percent = 50,
	                                    .min_restated = 2, .window = 2 };
	struct gd_paraphrase w;
	struct gd_trip trip;
	const char *a = "The export drops the last row of the table.\n";
	const char *b = "So the last row of the export table goes missing.\n";

	gd_paraphrase_init(&w, &cfg);
	assert_int_equal(gd_paraphrase_feed(&w, a, strlen(a), GD_STREAM_REASONING, &trip), GD_PASS);
	assert_int_equal(gd_paraphrase_feed(&w, b, strlen(b), GD_STREAM_REASONING, &trip), GD_PASS);
	assert_int_equal(gd_paraphrase_feed(&w, a, strlen(a), GD_STREAM_REASONING, &trip), GD_TRIP);
	assert_string_equal(trip.guard, "paraphrase");
	assert_int_equal(trip.stream, GD_STREAM_REASONING);
	assert_int_equal(trip.cut, strlen(a)); /* from the first restated sentence */
	/* Off: the same sentences pass the pipeline; a window smaller than
	 * min_restated is refused. */
	struct gd_policy *off = tg_policy((const char *const[]){ "guards.paraphrase.enabled=false",
		"guards.repeat.enabled=false", "guards.simhash.enabled=false", NULL });
	struct gd_pipeline *p = gd_pipeline_new(off, NULL);
	for (int i = 0; i < 20; i++)
		assert_int_equal(tg_reasoning(p, i % 2 ? a : b), GD_PASS);
	gd_pipeline_free(p);
	gd_policy_free(off);
	struct gd_config c;
	char err[256];
	gd_config_defaults(&c);
	c.paraphrase.min_restated = 6;
	assert_null(gd_policy_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "guards.paraphrase"));
}

/* The watchdog's old known limit (guards2 item 2): prose that restates one
 * measurement template with new numbers is a log, not a loop: a sentence
 * holding a number never seen before is not restated. The same sentences
 * with numbers seen before are restatements and trip. */
static void test_new_numbers_are_not_restated(void **state)
{
	(void)state;
	static const char *const runs[][3] = {
		{ "1", "old", "412" }, { "2", "old", "398" }, { "3", "new", "251" }, { "4", "new", "247" },
		{ "5", "new", "263" }, { "6", "old", "405" }, { "7", "new", "244" }, { "8", "old", "431" },
	};
	struct gd_policy *only = tg_policy((const char *const[]){ "guards.repeat.enabled=false",
		"guards.simhash.enabled=false", NULL });
	struct gd_pipeline *p = gd_pipeline_new(only, NULL);
	char line[160];

	/* Decimals are one number: 12.3 and 12.9 differ. */
	for (int i = 0; i < 8; i++) {
		snprintf(line, sizeof(line), "Run %s on the %s build took %s ms at p99 with the cache warm "
		         "and 12.%d ms at p50. ", runs[i][0], runs[i][1], runs[i][2], i);
		assert_int_equal(tg_reasoning(p, line), GD_PASS);
	}
	gd_pipeline_free(p);
	/* Before: the fourth run tripped. The same template with the numbers
	 * of run 1 again and again restates it. */
	p = gd_pipeline_new(only, NULL);
	enum gd_verdict v = GD_PASS;
	int i;
	for (i = 0; i < 8 && v == GD_PASS; i++) {
		snprintf(line, sizeof(line), "Run 1 on the %s build took 412 ms at p99 with the cache warm "
		         "and 12.3 ms at p50. ", i % 2 ? "old" : "current");
		v = tg_reasoning(p, line);
	}
	assert_int_equal(v, GD_TRIP);
	assert_string_equal(gd_pipeline_trip(p)->guard, "paraphrase");
	assert_int_equal(i, 5); /* 4 restated of 5 */
	gd_pipeline_free(p);
	gd_policy_free(only);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_restated_plan_trips),
		cmocka_unit_test(test_new_numbers_are_not_restated),
		cmocka_unit_test(test_progress_and_lists_pass),
		cmocka_unit_test(test_module_and_config),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
