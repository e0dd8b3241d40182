/* Request history: parsing tool calls and their results, the cross-turn
 * dedup and the permanent-failure breaker that read it, and
 * gd_history_check. */
#include "test_guard_util.h"

#include "guards/cross_turn.h"
#include "guards/history.h"
#include "proxy/wire/request.h"

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

/* A request body from rounds: each round is an assistant call <name>(<args>)
 * answered by <result> (JSON-escaped already). */
struct round {
	const char *name;
	const char *args;   /* JSON text of the arguments, escaped as a JSON string */
	const char *result;
};

static char *body(const struct round *r, int n, const char *tail)
{
	char *s = NULL;
	size_t len = 0;

	tg_appendf(&s, &len, "{\"model\":\"m\",\"stream\":true,\"messages\":["
	           "{\"role\":\"system\",\"content\":\"You are an agent.\"},"
	           "{\"role\":\"user\",\"content\":\"Fix the build.\"}");
	for (int i = 0; i < n; i++) {
		tg_appendf(&s, &len, ",{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
		           "{\"id\":\"call_%d\",\"type\":\"function\",\"function\":{\"name\":\"%s\","
		           "\"arguments\":\"%s\"}}]}", i, r[i].name, r[i].args);
		tg_appendf(&s, &len, ",{\"role\":\"tool\",\"tool_call_id\":\"call_%d\",\"content\":\"%s\"}",
		           i, r[i].result);
	}
	tg_appendf(&s, &len, "%s]}", tail ? tail : "");
	return s;
}

static struct gd_history *parse(const char *s)
{
	char err[256];
	struct gd_history *h = px_request_history(pol, s, strlen(s), err, sizeof(err));
	if (!h)
		fail_msg("px_request_history: %s", err);
	return h;
}

/* The verdict of a new answer making one call <name>(<args>) after <h>. */
static enum gd_verdict next_call(const struct gd_history *h, const char *name, const char *args,
                                 char *guard)
{
	struct gd_pipeline *p = gd_pipeline_new(pol, h);
	enum gd_verdict v = tg_call(p, 0, "call_new", name, args, 5);
	guard[0] = '\0';
	if (v == GD_TRIP)
		strcpy(guard, gd_pipeline_trip(p)->guard);
	gd_pipeline_free(p);
	return v;
}

#define CAT "{\\\"command\\\":\\\"cat config/deploy.yaml\\\"}"
#define CAT_SPACED "{ \\\"command\\\" : \\\"cat config/deploy.yaml\\\" }"

static void test_parse_calls_and_results(void **state)
{
	(void)state;
	struct round r[] = {
		{ "bash", CAT, "port: 8080" },
		{ "read_file", "{\\\"path\\\":\\\"a\\\"}", "hello" },
	};
	char *s = body(r, 2, NULL);
	struct gd_history *h = parse(s);
	assert_int_equal(gd_history_calls(h), 2);
	assert_int_equal(gd_history_turns(h), 2);
	gd_history_free(h);
	free(s);

	/* Content as an array of text parts; results without tool_call_id
	 * (Ollama) match the calls of the latest turn in order; arguments
	 * given as an object. */
	const char *o = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]},"
		"{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"ls\",\"arguments\":{\"path\":\".\"}}},"
		"{\"function\":{\"name\":\"pwd\",\"arguments\":{}}}]},"
		"{\"role\":\"tool\",\"content\":[{\"type\":\"text\",\"text\":\"a b\"}]},"
		"{\"role\":\"tool\",\"content\":\"/home\"}]}";
	h = parse(o);
	assert_int_equal(gd_history_calls(h), 2);
	assert_int_equal(gd_history_turns(h), 1);
	gd_history_free(h);
}

static void test_parse_errors(void **state)
{
	(void)state;
	char err[256];
	assert_null(px_request_history(pol, "{\"messages\":", 12, err, sizeof(err)));
	assert_non_null(strstr(err, "not valid JSON"));
	assert_null(px_request_history(pol, "{\"model\":\"x\"}", 13, err, sizeof(err)));
	assert_non_null(strstr(err, "messages"));
	assert_null(px_request_history(pol, "{\"messages\":[1]}", 16, err, sizeof(err)));
	assert_non_null(strstr(err, "messages[0]"));
	const char *noname = "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{}}]}]}";
	assert_null(px_request_history(pol, noname, strlen(noname), err, sizeof(err)));
	assert_non_null(strstr(err, "tool_calls[0]"));
}

static void test_cross_turn_trips(void **state)
{
	(void)state;
	char guard[32];
	struct round r[] = {
		{ "bash", CAT, "port: 8080" },
		{ "bash", CAT, "port: 8080" },
		{ "bash", CAT, "port: 8080" },
	};
	char *s = body(r, 3, NULL);
	struct gd_history *h = parse(s);
	/* Spacing and key order do not matter. */
	assert_int_equal(next_call(h, "bash", "{ \"command\" : \"cat config/deploy.yaml\" }", guard),
	                 GD_TRIP);
	assert_string_equal(guard, "cross_turn");
	/* Another call passes. */
	assert_int_equal(next_call(h, "bash", "{\"command\":\"ls\"}", guard), GD_PASS);
	gd_history_free(h);
	free(s);

	/* Two rounds only: the third call is still allowed. */
	s = body(r, 2, NULL);
	h = parse(s);
	assert_int_equal(next_call(h, "bash", "{\"command\":\"cat config/deploy.yaml\"}", guard),
	                 GD_PASS);
	gd_history_free(h);
	free(s);
}

static void test_cross_turn_legit_repeats_pass(void **state)
{
	(void)state;
	char guard[32];
	/* Re-running tests after each edit. */
	struct round edits[] = {
		{ "bash", "{\\\"command\\\":\\\"pytest -q\\\"}", "1 failed" },
		{ "edit", "{\\\"path\\\":\\\"app.py\\\",\\\"n\\\":1}", "Edited app.py" },
		{ "bash", "{\\\"command\\\":\\\"pytest -q\\\"}", "1 failed" },
		{ "edit", "{\\\"path\\\":\\\"app.py\\\",\\\"n\\\":2}", "Edited app.py" },
		{ "bash", "{\\\"command\\\":\\\"pytest -q\\\"}", "1 failed" },
		{ "edit", "{\\\"path\\\":\\\"app.py\\\",\\\"n\\\":3}", "Edited app.py" },
	};
	char *s = body(edits, 6, NULL);
	struct gd_history *h = parse(s);
	assert_int_equal(next_call(h, "bash", "{\"command\":\"pytest -q\"}", guard), GD_PASS);
	gd_history_free(h);
	free(s);

	/* Polling a server that is still starting: results differ, or fail
	 * transiently. */
	struct round poll[] = {
		{ "bash", "{\\\"command\\\":\\\"curl -s localhost:3000\\\"}",
		  "curl: (7) Failed to connect to localhost port 3000: Connection refused" },
		{ "bash", "{\\\"command\\\":\\\"curl -s localhost:3000\\\"}",
		  "curl: (7) Failed to connect to localhost port 3000: Connection refused" },
		{ "bash", "{\\\"command\\\":\\\"curl -s localhost:3000\\\"}",
		  "curl: (7) Failed to connect to localhost port 3000: Connection refused" },
		{ "bash", "{\\\"command\\\":\\\"curl -s localhost:3000\\\"}", "{\\\"compiled\\\":12}" },
		{ "bash", "{\\\"command\\\":\\\"curl -s localhost:3000\\\"}", "{\\\"compiled\\\":31}" },
	};
	s = body(poll, 5, NULL);
	h = parse(s);
	assert_int_equal(next_call(h, "bash", "{\"command\":\"curl -s localhost:3000\"}", guard), GD_PASS);
	gd_history_free(h);
	free(s);

	/* The same call earlier in this answer after a mutating one. */
	struct round reads[] = {
		{ "read_file", "{\\\"path\\\":\\\"a\\\"}", "x" },
		{ "read_file", "{\\\"path\\\":\\\"a\\\"}", "x" },
		{ "read_file", "{\\\"path\\\":\\\"a\\\"}", "x" },
	};
	s = body(reads, 3, NULL);
	h = parse(s);
	struct gd_pipeline *p = gd_pipeline_new(pol, h);
	assert_int_equal(tg_call(p, 0, "c1", "write_file", "{\"path\":\"a\",\"content\":\"y\"}", 9), GD_PASS);
	assert_int_equal(tg_call(p, 1, "c2", "read_file", "{\"path\":\"a\"}", 9), GD_PASS);
	gd_pipeline_free(p);
	gd_history_free(h);
	free(s);
}

/* Issue 12 item 2: the same failing call every turn, only an attempt
 * counter (or a timestamp, a request id) changing, answered identically:
 * one call. Look-alikes: the counter with results that change (progress),
 * and paging (the offset is not volatile). */
static void test_volatile_fields(void **state)
{
	(void)state;
	char guard[32];
	const char *res = "{\\\"error\\\":\\\"upstream returned an empty body\\\"}";
	struct round r[] = {
		{ "call_api", "{\\\"endpoint\\\":\\\"/v1/orders\\\",\\\"attempt\\\":1}", res },
		{ "call_api", "{\\\"endpoint\\\":\\\"/v1/orders\\\",\\\"attempt\\\":2}", res },
		{ "call_api", "{\\\"attempt\\\":3,\\\"endpoint\\\":\\\"/v1/orders\\\"}", res },
	};
	char *s = body(r, 3, NULL);
	struct gd_history *h = parse(s);
	assert_int_equal(next_call(h, "call_api", "{\"endpoint\":\"/v1/orders\",\"attempt\":4}", guard),
	                 GD_TRIP);
	assert_string_equal(guard, "cross_turn");
	assert_int_equal(next_call(h, "call_api", "{\"endpoint\":\"/v1/users\",\"attempt\":4}", guard),
	                 GD_PASS);
	gd_history_free(h);
	free(s);

	/* A request id and a timestamp, with a permanent failure: the third
	 * attempt trips the failure breaker. */
	struct round f[] = {
		{ "web_fetch", "{\\\"url\\\":\\\"https://x/a\\\",\\\"request_id\\\":\\\"5f0e\\\",\\\"sent_at\\\":\\\"2025-03-01T12:00:07Z\\\"}",
		  "404 Not Found" },
		{ "web_fetch", "{\\\"url\\\":\\\"https://x/a\\\",\\\"request_id\\\":\\\"91ab\\\",\\\"sent_at\\\":\\\"2025-03-01T12:00:19Z\\\"}",
		  "404 Not Found" },
	};
	s = body(f, 2, NULL);
	h = parse(s);
	assert_int_equal(next_call(h, "web_fetch", "{\"url\":\"https://x/a\",\"request_id\":\"c3d2\","
	                           "\"sent_at\":\"2025-03-01T12:00:31Z\"}", guard), GD_TRIP);
	assert_string_equal(guard, "failure");
	gd_history_free(h);
	free(s);
	/* ...but failures that differ only count for the exactly same call. */
	f[1].result = "404 Not Found (attempt 2)";
	s = body(f, 2, NULL);
	h = parse(s);
	assert_int_equal(next_call(h, "web_fetch", "{\"url\":\"https://x/a\",\"request_id\":\"c3d2\","
	                           "\"sent_at\":\"2025-03-01T12:00:31Z\"}", guard), GD_PASS);
	gd_history_free(h);
	free(s);

	/* The counter with results that change: a job making progress. */
	struct round prog[] = {
		{ "job_status", "{\\\"job\\\":\\\"build-7\\\",\\\"attempt\\\":1}", "running 10%" },
		{ "job_status", "{\\\"job\\\":\\\"build-7\\\",\\\"attempt\\\":2}", "running 40%" },
		{ "job_status", "{\\\"job\\\":\\\"build-7\\\",\\\"attempt\\\":3}", "running 70%" },
	};
	s = body(prog, 3, NULL);
	h = parse(s);
	assert_int_equal(next_call(h, "job_status", "{\"job\":\"build-7\",\"attempt\":4}", guard), GD_PASS);
	gd_history_free(h);
	free(s);

	/* Paging: the offset is a real argument, even when two pages are
	 * alike. */
	struct round page[] = {
		{ "read_file", "{\\\"path\\\":\\\"a.log\\\",\\\"offset\\\":0}", "(empty)" },
		{ "read_file", "{\\\"path\\\":\\\"a.log\\\",\\\"offset\\\":200}", "(empty)" },
		{ "read_file", "{\\\"path\\\":\\\"a.log\\\",\\\"offset\\\":400}", "(empty)" },
	};
	s = body(page, 3, NULL);
	h = parse(s);
	assert_int_equal(next_call(h, "read_file", "{\"path\":\"a.log\",\"offset\":600}", guard), GD_PASS);
	gd_history_free(h);
	free(s);
}

/* Issue 12 item 3: read → edit (fails: "oldString not found") → the same
 * failing tests, three rounds: the edit and the test run changed nothing
 * and must not reset the count of the read. Look-alikes: the edit succeeds
 * and the output changes; the tests fail identically after different edits. */
static void test_mutating_call_that_changes_nothing(void **state)
{
	(void)state;
	char guard[32];
	const char *rd = "{\\\"filePath\\\":\\\"src/auth.ts\\\"}";
	const char *ed = "{\\\"filePath\\\":\\\"src/auth.ts\\\",\\\"oldString\\\":\\\"if (token)\\\","
	                 "\\\"newString\\\":\\\"if (token && !expired(token))\\\"}";
	const char *ts = "{\\\"command\\\":\\\"npm test\\\"}";
	const char *src = "export function check(token) {\\n  if (token) return true;\\n}";
	const char *nf = "Error: oldString not found in content";
	const char *out = "FAIL src/auth.test.ts\\n  expired token is rejected\\nTests: 1 failed, 12 passed";
	struct round r[9];
	for (int i = 0; i < 3; i++) {
		r[3 * i] = (struct round){ "read", rd, src };
		r[3 * i + 1] = (struct round){ "edit", ed, nf };
		r[3 * i + 2] = (struct round){ "bash", ts, out };
	}
	char *s = body(r, 9, NULL);
	struct gd_history *h = parse(s);
	assert_int_equal(next_call(h, "read", "{\"filePath\":\"src/auth.ts\"}", guard), GD_TRIP);
	assert_string_equal(guard, "cross_turn");
	assert_int_equal(next_call(h, "edit", "{\"filePath\":\"src/auth.ts\",\"oldString\":\"if (token)\","
	                           "\"newString\":\"if (token && !expired(token))\"}", guard), GD_TRIP);
	assert_int_equal(next_call(h, "bash", "{\"command\":\"npm test\"}", guard), GD_TRIP);
	gd_history_free(h);
	free(s);

	/* The edit succeeds and the output changes: work going on. */
	r[1].result = "Edit applied successfully.";
	r[2].result = "FAIL src/auth.test.ts\\n  refresh keeps the session\\nTests: 1 failed, 12 passed";
	r[3].result = "export function check(token) {\\n  if (token && !expired(token)) return true;\\n}";
	r[4] = (struct round){ "edit", "{\\\"filePath\\\":\\\"src/auth.ts\\\",\\\"oldString\\\":\\\"return true\\\","
	                       "\\\"newString\\\":\\\"return refresh(token)\\\"}", "Edit applied successfully." };
	r[5].result = "PASS src/auth.test.ts\\nTests: 13 passed";
	s = body(r, 6, NULL);
	h = parse(s);
	assert_int_equal(next_call(h, "read", "{\"filePath\":\"src/auth.ts\"}", guard), GD_PASS);
	gd_history_free(h);
	free(s);

	/* Identical test failures after three different successful edits. */
	struct round d[8];
	static const char *const edits[] = {
		"{\\\"filePath\\\":\\\"a.ts\\\",\\\"oldString\\\":\\\"x\\\",\\\"newString\\\":\\\"y\\\"}",
		"{\\\"filePath\\\":\\\"a.ts\\\",\\\"oldString\\\":\\\"y\\\",\\\"newString\\\":\\\"z\\\"}",
		"{\\\"filePath\\\":\\\"b.ts\\\",\\\"oldString\\\":\\\"p\\\",\\\"newString\\\":\\\"q\\\"}",
		"{\\\"filePath\\\":\\\"c.ts\\\",\\\"oldString\\\":\\\"m\\\",\\\"newString\\\":\\\"n\\\"}",
	};
	for (int i = 0; i < 4; i++) {
		d[2 * i] = (struct round){ "bash", ts, out };
		d[2 * i + 1] = (struct round){ "edit", edits[i], "Edit applied successfully." };
	}
	s = body(d, 8, NULL);
	h = parse(s);
	assert_int_equal(next_call(h, "bash", "{\"command\":\"npm test\"}", guard), GD_PASS);
	gd_history_free(h);
	free(s);
}

static void test_mutating_names(void **state)
{
	(void)state;
	const struct gd_cross_turn_config *c = &gd_policy_config(pol)->cross_turn;
	static const char *const yes[] = { "edit", "write_file", "str_replace_editor", "runTests",
		"bash", "todowrite", "MultiEdit", "apply_patch", "run_terminal_cmd", "delete-file",
		"computer", "browser_action", "press_key" };
	static const char *const no[] = { "read_file", "grep", "list_dir", "glob", "web_fetch",
		"search", "format_check", "get_status" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!gd_cross_turn_is_mutating(c, yes[i], strlen(yes[i])))
			fail_msg("%s should be mutating", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (gd_cross_turn_is_mutating(c, no[i], strlen(no[i])))
			fail_msg("%s should not be mutating", no[i]);
}

static void test_failure_breaker(void **state)
{
	(void)state;
	char guard[32];
	/* ENOENT twice: the third identical read trips (even with other
	 * read-only calls in between and slightly different messages). */
	struct round r[] = {
		{ "read_file", "{\\\"path\\\":\\\"src/helpers.ts\\\"}",
		  "Error: ENOENT: no such file or directory, open '/w/src/helpers.ts' (1)" },
		{ "grep", "{\\\"pattern\\\":\\\"helpers\\\"}", "src/index.ts:3: import './utils/helpers'" },
		{ "read_file", "{\\\"path\\\":\\\"src/helpers.ts\\\"}",
		  "Error: ENOENT: no such file or directory, open '/w/src/helpers.ts' (2)" },
	};
	char *s = body(r, 3, NULL);
	struct gd_history *h = parse(s);
	assert_int_equal(next_call(h, "read_file", "{\"path\":\"src/helpers.ts\"}", guard), GD_TRIP);
	assert_string_equal(guard, "failure");
	/* A different file is fine. */
	assert_int_equal(next_call(h, "read_file", "{\"path\":\"src/helper.ts\"}", guard), GD_PASS);
	gd_history_free(h);
	free(s);

	/* Transient failures never count, even when a permanent pattern also
	 * matches ("not found" next to a 503). */
	struct round t[] = {
		{ "web_fetch", "{\\\"url\\\":\\\"https://x\\\"}", "503 Service Unavailable: upstream not found, try again" },
		{ "web_fetch", "{\\\"url\\\":\\\"https://x\\\"}", "HTTP 429 Too Many Requests (page not found in cache)" },
		{ "web_fetch", "{\\\"url\\\":\\\"https://x\\\"}", "error: request timed out" },
	};
	s = body(t, 3, NULL);
	h = parse(s);
	assert_int_equal(next_call(h, "web_fetch", "{\"url\":\"https://x\"}", guard), GD_PASS);
	gd_history_free(h);
	free(s);

	/* Tests failing with "No such file or directory" after each edit:
	 * every edit may have fixed it, so the re-run is legitimate. */
	struct round e[] = {
		{ "bash", "{\\\"command\\\":\\\"pytest -q\\\"}",
		  "E   FileNotFoundError: [Errno 2] No such file or directory: 'fixtures/a.json'" },
		{ "edit", "{\\\"path\\\":\\\"tests/conftest.py\\\"}", "Edited" },
		{ "bash", "{\\\"command\\\":\\\"pytest -q\\\"}",
		  "E   FileNotFoundError: [Errno 2] No such file or directory: 'fixtures/b.json'" },
		{ "edit", "{\\\"path\\\":\\\"tests/conftest.py\\\"}", "Edited" },
	};
	s = body(e, 4, NULL);
	h = parse(s);
	assert_int_equal(next_call(h, "bash", "{\"command\":\"pytest -q\"}", guard), GD_PASS);
	gd_history_free(h);
	free(s);

	/* Unknown tool and permission denied are permanent. */
	struct round u[] = {
		{ "run_cmd", "{\\\"c\\\":1}", "Error: Unknown tool 'run_cmd'" },
		{ "run_cmd", "{\\\"c\\\":1}", "Error: unknown tool 'run_cmd'." },
	};
	s = body(u, 2, NULL);
	h = parse(s);
	assert_int_equal(next_call(h, "run_cmd", "{\"c\":1}", guard), GD_TRIP);
	assert_string_equal(guard, "failure");
	gd_history_free(h);
	free(s);
}

static void test_history_check(void **state)
{
	(void)state;
	struct gd_trip trip;
	struct round r[] = {
		{ "bash", CAT, "port: 8080" },
		{ "bash", CAT_SPACED, "port: 8080" },
		{ "bash", CAT, "port: 8080" },
		{ "bash", CAT, "port: 8080" },
	};
	char *s = body(r, 4, NULL);
	struct gd_history *h = parse(s);
	assert_true(gd_history_check(h, &trip));
	assert_string_equal(trip.guard, "cross_turn");
	gd_history_free(h);
	free(s);

	s = body(r, 3, NULL);
	h = parse(s);
	assert_false(gd_history_check(h, &trip));
	gd_history_free(h);
	free(s);

	/* An aider-style continuation: the last assistant text already loops. */
	char *tail = NULL;
	size_t len = 0;
	tg_appendf(&tail, &len, ",{\"role\":\"assistant\",\"content\":\"Here is the plan.\\n");
	for (int i = 0; i < 8; i++)
		tg_appendf(&tail, &len, "The migration adds the archived_at column to the orders table.\\n");
	tg_appendf(&tail, &len, "\"},{\"role\":\"user\",\"content\":\"continue\"}");
	s = body(NULL, 0, tail);
	h = parse(s);
	assert_true(gd_history_check(h, &trip));
	assert_string_equal(trip.guard, "repeat");
	assert_non_null(strstr(trip.detail, "history"));
	gd_history_free(h);
	free(s);
	free(tail);

	/* A long but healthy previous answer passes. */
	s = body(NULL, 0, ",{\"role\":\"assistant\",\"content\":\"The build failed because the "
	         "linker flags were in the wrong order; I moved -lm after the objects.\"}");
	h = parse(s);
	assert_false(gd_history_check(h, &trip));
	gd_history_free(h);
	free(s);
}

/* Issue 12 item 10: a loop and its cut in the history, then a final answer
 * and a new, different instruction. The instruction starts a new task: the
 * history check and the call guards read only what follows it. The twins:
 * the same history ending in a request to go on with the loop (Qwen Code's
 * recovery turn, a bare "continue") is still refused. */
#define QWEN_RESUME "Output token limit hit. Resume directly \u2014 no apology, no recap of " \
                    "what you were doing. Pick up mid-thought if that is where the cut " \
                    "happened. Break remaining work into smaller pieces."

static void test_new_task_starts_after_a_loop(void **state)
{
	(void)state;
	struct gd_trip trip;
	char guard[32];
	struct round r[] = {
		{ "bash", CAT, "port: 8080" },
		{ "bash", CAT, "port: 8080" },
		{ "bash", CAT, "port: 8080" },
		{ "bash", CAT, "port: 8080" },
	};
	const char *final = ",{\"role\":\"assistant\",\"content\":\"The port is 8080.\"}";
	char tail[1024];

	/* The loop, then a new instruction (text parts, as Qwen Code and
	 * opencode send it): a new task, nothing to refuse. */
	snprintf(tail, sizeof(tail), "%s,{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
	         "\"<system-reminder>date</system-reminder>\"},{\"type\":\"text\",\"text\":"
	         "\"Thanks. Now add a README section about the port.\"}]}", final);
	char *s = body(r, 4, tail);
	struct gd_history *h = parse(s);
	assert_int_equal(gd_history_task_start(h), 12);
	assert_int_equal(gd_history_calls(h), 0);
	assert_false(gd_history_check(h, &trip));
	/* ...and the same call in the new task is its first round. */
	assert_int_equal(next_call(h, "bash", "{\"command\":\"cat config/deploy.yaml\"}", guard),
	                 GD_PASS);
	gd_history_free(h);
	free(s);

	/* The twin: the same loop, then a recovery turn asking to go on. */
	snprintf(tail, sizeof(tail), "%s,{\"role\":\"user\",\"content\":\"" QWEN_RESUME "\"}", final);
	s = body(r, 4, tail);
	h = parse(s);
	assert_int_equal(gd_history_task_start(h), 2);
	assert_true(gd_history_check(h, &trip));
	assert_string_equal(trip.guard, "cross_turn");
	gd_history_free(h);
	free(s);

	/* A looping text (Qwen Code merges its five cut answers into one
	 * assistant message), then a new instruction: passes; then "continue"
	 * or the recovery turn: refused. */
	char *text = NULL, *t2 = NULL;
	size_t len = 0, l2 = 0;
	for (int i = 0; i < 6; i++)
		tg_appendf(&text, &len, "The build uses CMake and the sources live in src/. To build it, "
		           "run cmake and then make; the tests run with ctest. ");
	const char *users[] = { "Thanks. A new task now: say hello.", "continue", "Please continue.",
	                        QWEN_RESUME, "Continue, but write it in French this time." };
	const bool refused[] = { false, true, true, true, false };
	for (size_t u = 0; u < sizeof(users) / sizeof(users[0]); u++) {
		l2 = 0;
		free(t2);
		t2 = NULL;
		tg_appendf(&t2, &l2, ",{\"role\":\"assistant\",\"content\":\"%s\"},"
		           "{\"role\":\"user\",\"content\":\"%s\"}", text, users[u]);
		s = body(NULL, 0, t2);
		h = parse(s);
		if (gd_history_check(h, &trip) != refused[u])
			fail_msg("after a looping answer, user message '%s': %s", users[u],
			         refused[u] ? "not refused" : "refused");
		gd_history_free(h);
		free(s);
	}
	free(t2);
	free(text);

	/* The failure breaker: two failed reads, then the user says the file
	 * is there now; the read is the new task's first. */
	struct round f[] = {
		{ "read_file", "{\\\"path\\\":\\\"src/a.ts\\\"}", "Error: ENOENT: no such file or directory" },
		{ "read_file", "{\\\"path\\\":\\\"src/a.ts\\\"}", "Error: ENOENT: no such file or directory" },
	};
	s = body(f, 2, NULL);
	h = parse(s);
	assert_int_equal(next_call(h, "read_file", "{\"path\":\"src/a.ts\"}", guard), GD_TRIP);
	gd_history_free(h);
	free(s);
	s = body(f, 2, ",{\"role\":\"user\",\"content\":\"I created src/a.ts, read it again.\"}");
	h = parse(s);
	assert_int_equal(next_call(h, "read_file", "{\"path\":\"src/a.ts\"}", guard), GD_PASS);
	gd_history_free(h);
	free(s);
}

static void test_continuation_patterns(void **state)
{
	(void)state;
	const char *yes[] = { "continue", "  Continue.", "please continue!", "go on", "Keep going",
	                      QWEN_RESUME,
	                      "The connection dropped mid-response. Resume directly where you stopped.",
	                      "[SYSTEM] This run is not complete until you call one of these tools" };
	const char *no[] = { "Continue with the next file and fix the tests.", "continued fraction",
	                     "How do I resume a download directly from the CLI?x", "say hello",
	                     "resumed directly" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!gd_history_is_continuation(pol, yes[i], strlen(yes[i])))
			fail_msg("'%s' should continue the task", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (gd_history_is_continuation(pol, no[i], strlen(no[i])))
			fail_msg("'%s' should start a new task", no[i]);
	/* Configurable: cleared, nothing continues. */
	const char *sets[] = { "guards.history.continuations=[]", NULL };
	struct gd_policy *none = tg_policy(sets);
	assert_false(gd_history_is_continuation(none, "continue", 8));
	gd_policy_free(none);
}

static void test_identity_matches_across_forms(void **state)
{
	(void)state;
	char guard[32];
	/* Ollama's native history gives arguments as an object; the streamed
	 * call gives a string with other key order and spacing: one call. */
	char *s = NULL;
	size_t len = 0;
	tg_appendf(&s, &len, "{\"messages\":[");
	for (int i = 0; i < 3; i++)
		tg_appendf(&s, &len, "%s{\"role\":\"assistant\",\"tool_calls\":[{\"function\":"
		           "{\"name\":\"web_fetch\",\"arguments\":{\"url\":\"https://x/y\","
		           "\"opts\":{\"b\":1,\"a\":[true,null]}}}}]},"
		           "{\"role\":\"tool\",\"content\":\"<html>same</html>\"}", i ? "," : "");
	tg_appendf(&s, &len, "]}");
	struct gd_history *h = parse(s);
	assert_int_equal(next_call(h, "web_fetch",
	                           "{\"opts\": {\"a\": [true, null], \"b\": 1}, \"url\": \"https://x/y\"}",
	                           guard), GD_TRIP);
	assert_string_equal(guard, "cross_turn");
	gd_history_free(h);
	free(s);

	/* Arguments too long to keep are compared by their raw bytes, the same
	 * way in the history and in the stream. */
	struct gd_policy *small = tg_policy((const char *const[]){ "guards.limits.max_args_bytes=256",
		"guards.repeat.enabled=false", "guards.simhash.enabled=false", NULL });
	char args[600], esc[1200];
	size_t n = 0, e = 0;
	n += (size_t)snprintf(args, sizeof(args), "{\"path\":\"big.txt\",\"content\":\"");
	for (int i = 0; i < 50; i++)
		n += (size_t)snprintf(args + n, sizeof(args) - n, "line%02d ", i);
	n += (size_t)snprintf(args + n, sizeof(args) - n, "\"}");
	for (size_t i = 0; i < n; i++) {
		if (args[i] == '"')
			esc[e++] = '\\';
		esc[e++] = args[i];
	}
	esc[e] = '\0';
	s = NULL;
	len = 0;
	tg_appendf(&s, &len, "{\"messages\":[");
	for (int i = 0; i < 3; i++)
		tg_appendf(&s, &len, "%s{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c%d\","
		           "\"function\":{\"name\":\"write_file\",\"arguments\":\"%s\"}}]},"
		           "{\"role\":\"tool\",\"tool_call_id\":\"c%d\",\"content\":\"ok\"}",
		           i ? "," : "", i, esc, i);
	tg_appendf(&s, &len, "]}");
	char err[256];
	h = px_request_history(small, s, strlen(s), err, sizeof(err));
	assert_non_null(h);
	struct gd_pipeline *p = gd_pipeline_new(small, h);
	assert_int_equal(tg_call(p, 0, "n", "write_file", args, 16), GD_TRIP);
	assert_string_equal(gd_pipeline_trip(p)->guard, "cross_turn");
	gd_pipeline_free(p);
	gd_history_free(h);
	gd_policy_free(small);
	free(s);
}

static void test_deep_body_refused(void **state)
{
	(void)state;
	char *s = NULL, err[256];
	size_t len = 0;
	tg_appendf(&s, &len, "{\"messages\":[{\"role\":\"user\",\"x\":");
	for (int i = 0; i < 100000; i++)
		tg_appendf(&s, &len, "[");
	assert_null(px_request_history(pol, s, len, err, sizeof(err)));
	assert_non_null(strstr(err, "nested deeper"));
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_calls_and_results),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_cross_turn_trips),
		cmocka_unit_test(test_cross_turn_legit_repeats_pass),
		cmocka_unit_test(test_volatile_fields),
		cmocka_unit_test(test_mutating_call_that_changes_nothing),
		cmocka_unit_test(test_mutating_names),
		cmocka_unit_test(test_failure_breaker),
		cmocka_unit_test(test_history_check),
		cmocka_unit_test(test_new_task_starts_after_a_loop),
		cmocka_unit_test(test_continuation_patterns),
		cmocka_unit_test(test_identity_matches_across_forms),
		cmocka_unit_test(test_deep_body_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
