/* Integration tests: the real loopwarden binary in front of the scripted
 * upstream (lw-upstream), both on 127.0.0.1 with ports chosen by the kernel.
 * Every wait is bounded; nothing asserts on elapsed time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <event2/event.h>
#include <yajl/yajl_tree.h>

#include "harness.h"
#include "scripted.h"

#define IT_DATA LW_SOURCE_DIR "/tests/integration/data"
#define CORPUS LW_SOURCE_DIR "/tests/data"
#define WAIT_MS 20000
#define SLACK 10 /* upstream chunks written after the tripping one, at most */

static struct {
	char dir[256];
	char up_log[300], lw_log[300], rec_dir[300];
	pid_t up_pid, lw_pid, stall_pid;
	int up_port, lw_port, stall_port;
	int chat_port; /* where chat() sends; 0 = the main instance */
	char stall_log[300];
	struct event_base *base;
	struct up_server *local; /* the same scenarios, loaded here to compare bytes */
	bool corpus;
} T;

static bool has_json(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return false;
	struct dirent *e;
	bool found = false;
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".json"))
			found = true;
	closedir(d);
	return found;
}

static int start_all(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	snprintf(T.dir, sizeof(T.dir), "/tmp/lw-proxy-test-XXXXXX");
	if (!mkdtemp(T.dir))
		return -1;
	snprintf(T.up_log, sizeof(T.up_log), "%s/upstream.log", T.dir);
	snprintf(T.lw_log, sizeof(T.lw_log), "%s/loopwarden.log", T.dir);
	snprintf(T.rec_dir, sizeof(T.rec_dir), "%s/rec", T.dir);
	T.corpus = has_json(CORPUS);
	char *up_argv[] = {LW_BINARY_DIR "/lw-upstream", "--data", IT_DATA, "--listen", "0",
	                   T.corpus ? "--data" : NULL, CORPUS, NULL};
	T.up_pid = hs_spawn(up_argv, T.up_log);
	T.up_port = (int)hs_wait_number(T.up_log, "listening on 127.0.0.1:", WAIT_MS);
	if (T.up_port <= 0)
		return -1;
	char upstream[64];
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%d", T.up_port);
	char *lw_argv[] = {LW_BINARY_DIR "/loopwarden", "--listen", "127.0.0.1:0", "--upstream", upstream,
	                   "--set", "watchdog.first_token_timeout_ms=30000",
	                   "--set", "watchdog.idle_timeout_ms=15000",
	                   "--set", "proxy.max_body_bytes=1048576",
	                   "--set", "guards.budget.max_output_bytes=0",
	                   "--record", T.rec_dir, NULL};
	T.lw_pid = hs_spawn(lw_argv, T.lw_log);
	T.lw_port = (int)hs_wait_number(T.lw_log, "listening on http://127.0.0.1:", WAIT_MS);
	if (T.lw_port <= 0)
		return -1;
	/* A second instance with short watchdogs for the stall tests (the main
	 * one has generous ones, so a loaded machine never fakes a stall). */
	snprintf(T.stall_log, sizeof(T.stall_log), "%s/stall.log", T.dir);
	char *st_argv[] = {LW_BINARY_DIR "/loopwarden", "--listen", "127.0.0.1:0", "--upstream", upstream,
	                   "--set", "watchdog.first_token_timeout_ms=1500",
	                   "--set", "watchdog.idle_timeout_ms=700",
	                   "--set", "proxy.keepalive_ms=150", NULL};
	T.stall_pid = hs_spawn(st_argv, T.stall_log);
	T.stall_port = (int)hs_wait_number(T.stall_log, "listening on http://127.0.0.1:", WAIT_MS);
	if (T.stall_port <= 0)
		return -1;
	T.base = event_base_new();
	char err[256];
	T.local = up_server_new(T.base, 0, err, sizeof(err));
	if (!T.local || up_server_load(T.local, IT_DATA, err, sizeof(err)) < 0 ||
	    (T.corpus && up_server_load(T.local, CORPUS, err, sizeof(err)) < 0)) {
		fprintf(stderr, "scenarios: %s\n", err);
		return -1;
	}
	return 0;
}

static int stop_all(void **state)
{
	(void)state;
	int lw = hs_stop(T.lw_pid, 5000);
	int st = hs_stop(T.stall_pid, 5000);
	int up = hs_stop(T.up_pid, 5000);
	if (st != 0) {
		fprintf(stderr, "the stall instance exited with %d on SIGTERM; log in %s\n", st, T.stall_log);
		return -1;
	}
	up_server_free(T.local);
	event_base_free(T.base);
	if (lw != 0) {
		fprintf(stderr, "loopwarden exited with %d on SIGTERM; log in %s\n", lw, T.lw_log);
		return -1;
	}
	(void)up;
	/* A sanitizer report in a child's log is a failure even if it went on. */
	const char *logs[] = {T.lw_log, T.up_log, T.stall_log};
	for (int i = 0; i < 3; i++) {
		char *text = hs_read_file(logs[i], NULL);
		if (text && (strstr(text, "AddressSanitizer") || strstr(text, "runtime error:") ||
		             strstr(text, "LeakSanitizer"))) {
			fprintf(stderr, "sanitizer report in %s:\n%s\n", logs[i], text);
			free(text);
			return -1;
		}
		free(text);
	}
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.dir);
	if (system(cmd) != 0)
		return -1;
	return 0;
}

/* ---- helpers ---- */

static const char *str_of(yajl_val v)
{
	return v && YAJL_IS_STRING(v) ? v->u.string : "";
}

static void control(const char *query)
{
	struct hs_resp r;
	char path[512];
	snprintf(path, sizeof(path), "/_control?%s", query);
	assert_int_equal(hs_http(T.up_port, "GET", path, NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	hs_resp_free(&r);
}

static yajl_val stats(void)
{
	struct hs_resp r;
	assert_int_equal(hs_http(T.up_port, "GET", "/_stats", NULL, NULL, WAIT_MS, &r), 0);
	yajl_val v = yajl_tree_parse(r.body, NULL, 0);
	hs_resp_free(&r);
	assert_non_null(v);
	return v;
}

static yajl_val path_get(yajl_val v, const char *a, const char *b, const char *c)
{
	const char *p[] = {a, b, c, NULL};
	return yajl_tree_get(v, p, yajl_t_any);
}

/* Record <i> of the upstream, waiting (bounded) until it is over. */
static void upstream_record(size_t i, bool *hung_up, long *written, long *total)
{
	for (int tries = 0; tries < 500; tries++) {
		yajl_val s = stats();
		yajl_val recs = path_get(s, "records", NULL, NULL);
		if (recs && YAJL_IS_ARRAY(recs) && recs->u.array.len > i) {
			yajl_val r = recs->u.array.values[i];
			bool hu = YAJL_IS_TRUE(path_get(r, "hung_up", NULL, NULL));
			bool done = YAJL_IS_TRUE(path_get(r, "completed", NULL, NULL));
			if (hu || done) {
				*hung_up = hu;
				*written = (long)YAJL_GET_INTEGER(path_get(r, "chunks_written", NULL, NULL));
				*total = (long)YAJL_GET_INTEGER(path_get(r, "chunks_total", NULL, NULL));
				yajl_tree_free(s);
				return;
			}
		}
		yajl_tree_free(s);
		usleep(10000);
	}
	fail_msg("the upstream never saw request %zu end", i);
}

static size_t upstream_requests(void)
{
	yajl_val s = stats();
	size_t n = (size_t)YAJL_GET_INTEGER(path_get(s, "requests", NULL, NULL));
	yajl_tree_free(s);
	return n;
}

static char *with_stream(const char *req, bool stream)
{
	/* The scenario requests are compact JSON written by yajl. */
	const char *from = stream ? "\"stream\":false" : "\"stream\":true";
	const char *to = stream ? "\"stream\":true" : "\"stream\":false";
	const char *p = strstr(req, from);
	if (!p)
		return strdup(req);
	size_t n = strlen(req) + 8;
	char *s = malloc(n);
	snprintf(s, n, "%.*s%s%s", (int)(p - req), req, to, p + strlen(from));
	return s;
}

static void chat(const char *body, struct hs_resp *r)
{
	assert_int_equal(hs_http(T.chat_port ? T.chat_port : T.lw_port, "POST", "/v1/chat/completions", body,
	                         "Authorization: Bearer sk-test\r\n", WAIT_MS, r), 0);
}

/* The final chunk of a cut answer: finish_reason "length" + loopwarden. */
static void assert_cut_chunk(const char *json, const char *finish, char *guard, size_t glen)
{
	yajl_val v = yajl_tree_parse(json, NULL, 0);
	assert_non_null(v);
	yajl_val fr = path_get(v, "choices", NULL, NULL);
	assert_true(fr && YAJL_IS_ARRAY(fr) && fr->u.array.len == 1);
	const char *f[] = {"finish_reason", NULL};
	yajl_val fv = yajl_tree_get(fr->u.array.values[0], f, yajl_t_string);
	assert_non_null(fv);
	assert_string_equal(str_of(fv), finish);
	yajl_val g = path_get(v, "loopwarden", "guard", NULL);
	yajl_val d = path_get(v, "loopwarden", "detail", NULL);
	assert_true(g && YAJL_IS_STRING(g) && *str_of(g));
	assert_true(d && YAJL_IS_STRING(d));
	snprintf(guard, glen, "%s", str_of(g));
	yajl_tree_free(v);
}

static void assert_trip_chunk(const char *json, char *guard, size_t glen)
{
	assert_cut_chunk(json, "length", guard, glen);
}

/* ---- tests ---- */

/* A healthy answer arrives byte-for-byte: the same chunks, then [DONE].
 * <extra> adds upstream framing options (crlf=1, split=1). */
static void check_healthy_stream_ex(const char *name, const char *extra)
{
	char q[256];
	snprintf(q, sizeof(q), "scenario=%s%s", name, extra);
	control(q);
	size_t n_chunks;
	const char *const *chunks = up_server_chunks(T.local, name, &n_chunks);
	char *req = with_stream(up_server_request(T.local, name), true);
	struct hs_resp r;
	chat(req, &r);
	assert_int_equal(r.status, 200);
	assert_true(r.complete);
	assert_non_null(strcasestr(r.head, "content-type: text/event-stream"));
	size_t n;
	char **d = hs_sse_data(r.body, &n, NULL);
	if (n != n_chunks + 1)
		fail_msg("%s: %zu events relayed, the upstream sent %zu + [DONE]", name, n, n_chunks);
	for (size_t i = 0; i < n_chunks; i++)
		if (strcmp(d[i], chunks[i]) != 0)
			fail_msg("%s: chunk %zu differs:\n  sent %s\n  got  %s", name, i + 1, chunks[i], d[i]);
	assert_string_equal(d[n_chunks], "[DONE]");
	hs_sse_free(d, n);
	hs_resp_free(&r);
	free(req);
}

static void check_healthy_stream(const char *name)
{
	check_healthy_stream_ex(name, "");
}

static void check_healthy_nonstream(const char *name)
{
	char q[256];
	snprintf(q, sizeof(q), "scenario=%s", name);
	control(q);
	char *req = with_stream(up_server_request(T.local, name), false);
	struct hs_resp r;
	chat(req, &r);
	assert_int_equal(r.status, 200);
	assert_true(r.complete);
	if (strcmp(r.body, up_server_body(T.local, name)) != 0)
		fail_msg("%s: the non-stream answer differs:\n  sent %s\n  got  %s", name,
		         up_server_body(T.local, name), r.body);
	hs_resp_free(&r);
	free(req);
}

static void test_healthy_stream(void **state)
{
	(void)state;
	check_healthy_stream("px-healthy-text");
	check_healthy_stream("px-healthy-tools");
	/* CRLF framing, and every event split across two TCP writes at a
	 * byte that moves (inside "data:", the JSON, the blank line) */
	check_healthy_stream_ex("px-healthy-text", "&crlf=1");
	check_healthy_stream_ex("px-healthy-tools", "&split=1");
	check_healthy_stream_ex("px-healthy-text", "&crlf=1&split=1");
}

static void test_healthy_nonstream(void **state)
{
	(void)state;
	check_healthy_nonstream("px-healthy-text");
	check_healthy_nonstream("px-healthy-tools");
}

/* Every tool call the client received is complete: its arguments parse as
 * JSON (a call that tripped a guard was held, so none arrives cut). */
static void assert_calls_complete(const char *name, char **d, size_t n)
{
	enum { MAXC = 256 };
	char *args[MAXC];
	long idx[MAXC];
	char ids[MAXC][64];
	size_t nc = 0;
	for (size_t i = 0; i < n; i++) {
		yajl_val v = yajl_tree_parse(d[i], NULL, 0);
		yajl_val ch = path_get(v, "choices", NULL, NULL);
		if (ch && YAJL_IS_ARRAY(ch) && ch->u.array.len > 0) {
			const char *ptc[] = {"delta", "tool_calls", NULL};
			yajl_val tcs = yajl_tree_get(ch->u.array.values[0], ptc, yajl_t_array);
			for (size_t j = 0; tcs && j < tcs->u.array.len; j++) {
				yajl_val tc = tcs->u.array.values[j];
				const char *pi[] = {"index", NULL}, *pid[] = {"id", NULL},
					   *pa[] = {"function", "arguments", NULL};
				yajl_val vi = yajl_tree_get(tc, pi, yajl_t_number);
				long index = vi ? (long)YAJL_GET_INTEGER(vi) : 0;
				const char *id = str_of(yajl_tree_get(tc, pid, yajl_t_string));
				size_t k = nc;
				for (size_t m = nc; m-- > 0;)
					if (idx[m] == index) {
						k = m;
						break;
					}
				if (k == nc || (*id && strcmp(ids[k], id) != 0)) {
					assert_true(nc < MAXC);
					k = nc++;
					idx[k] = index;
					snprintf(ids[k], sizeof(ids[k]), "%s", id);
					args[k] = strdup("");
				}
				const char *a = str_of(yajl_tree_get(tc, pa, yajl_t_string));
				size_t l = strlen(args[k]) + strlen(a) + 1;
				char *na = malloc(l);
				snprintf(na, l, "%s%s", args[k], a);
				free(args[k]);
				args[k] = na;
			}
		}
		yajl_tree_free(v);
	}
	for (size_t k = 0; k < nc; k++) {
		yajl_val a = yajl_tree_parse(args[k], NULL, 0);
		if (!a)
			fail_msg("%s: tool call %zu reached the client incomplete: '%s'", name, k, args[k]);
		yajl_tree_free(a);
		free(args[k]);
	}
}

/* A looping stream ends with the trip chunk (or the history check's note)
 * and [DONE], and no tool call reached the client incomplete. Returns true
 * when the history check answered. */
static bool loop_stream_cut(const char *name, long by_chunk)
{
	char q[256];
	snprintf(q, sizeof(q), "scenario=%s&delay_ms=2", name);
	control(q);
	char *req = with_stream(up_server_request(T.local, name), true);
	struct hs_resp r;
	chat(req, &r);
	assert_int_equal(r.status, 200);
	assert_true(r.complete);
	size_t n;
	char **d = hs_sse_data(r.body, &n, NULL);
	assert_true(n >= 2);
	assert_string_equal(d[n - 1], "[DONE]");
	char guard[64];
	/* With stream_options.include_usage the usage chunk (choices []) comes
	 * between the final chunk and [DONE] (issue 12 item 13). */
	size_t fin = n - 2;
	if (strstr(d[fin], "\"choices\":[]")) {
		assert_non_null(strstr(d[fin], "\"usage\":{"));
		assert_true(fin > 0);
		fin--;
	}
	/* The history check may answer before the upstream is asked (always
	 * for by_chunk 0; earlier than the scenario demands is fine too): a note
	 * with finish_reason "stop" and the loopwarden object. */
	bool history = strstr(d[fin], "\"finish_reason\":\"stop\"") != NULL;
	if (by_chunk == 0 && !history)
		fail_msg("%s: the history check should have answered: %s", name, d[fin]);
	assert_cut_chunk(d[fin], history ? "stop" : "length", guard, sizeof(guard));
	assert_calls_complete(name, d, fin);
	hs_sse_free(d, n);
	hs_resp_free(&r);
	free(req);
	return history;
}

/* loop_stream_cut, and the upstream stopped writing within a few chunks of
 * the trip (or was never asked). */
static void check_loop_stream(const char *name, long by_chunk)
{
	if (loop_stream_cut(name, by_chunk)) {
		assert_int_equal(upstream_requests(), 0); /* the upstream was never asked */
		return;
	}
	bool hung_up;
	long written, total;
	upstream_record(0, &hung_up, &written, &total);
	/* Within a few chunks of the trip (chunks come 2 ms apart: 10 chunks is
	 * 20 ms of slack for a loaded machine); when the answer is that short,
	 * the upstream may have finished it before it saw the close. */
	if (total > by_chunk + SLACK && (!hung_up || written >= total))
		fail_msg("%s: the upstream wrote all %ld chunks: nothing was cancelled", name, total);
	if (by_chunk > 0 && written > by_chunk + SLACK)
		fail_msg("%s: the upstream wrote %ld chunks; the guards must trip by chunk %ld", name,
		         written, by_chunk);
}

static void test_loop_stream(void **state)
{
	(void)state;
	check_loop_stream("px-loop-words", 60);
	check_loop_stream("px-loop-calls", 40);
}

/* Every corpus scenario (tests/data) through the proxy: loops are cut,
 * healthy answers arrive unchanged. */
static void test_corpus(void **state)
{
	(void)state;
	if (!T.corpus)
		skip();
	size_t loops = 0, healthy = 0, skipped = 0;
	for (size_t i = 0; i < up_server_scenarios(T.local); i++) {
		const char *name = up_server_scenario_name(T.local, i);
		struct up_expect ex;
		if (strncmp(name, "px-", 3) == 0 || up_server_expect(T.local, name, &ex) != 0)
			continue;
		if (ex.has_config) {
			skipped++; /* needs its own guard settings */
			continue;
		}
		if (ex.loop && ex.trip) {
			check_loop_stream(name, ex.by_chunk);
			loops++;
		} else if (!ex.trip) {
			check_healthy_stream(name);
			healthy++;
		}
	}
	printf("corpus through the proxy: %zu loops cut, %zu healthy relayed unchanged, "
	       "%zu skipped (own config)\n", loops, healthy, skipped);
}

/* Non-stream loop: the answer is truncated before the loop, finish_reason length. */
static void test_loop_nonstream(void **state)
{
	(void)state;
	control("scenario=px-loop-words");
	char *req = with_stream(up_server_request(T.local, "px-loop-words"), false);
	struct hs_resp r;
	chat(req, &r);
	assert_int_equal(r.status, 200);
	yajl_val v = yajl_tree_parse(r.body, NULL, 0);
	assert_non_null(v);
	yajl_val choices = path_get(v, "choices", NULL, NULL);
	assert_true(choices && YAJL_IS_ARRAY(choices) && choices->u.array.len == 1);
	yajl_val c0 = choices->u.array.values[0];
	const char *pf[] = {"finish_reason", NULL}, *pc[] = {"message", "content", NULL};
	assert_string_equal(str_of(yajl_tree_get(c0, pf, yajl_t_string)), "length");
	yajl_val content = yajl_tree_get(c0, pc, yajl_t_string);
	assert_non_null(content);
	yajl_val g = path_get(v, "loopwarden", "guard", NULL);
	assert_true(g && YAJL_IS_STRING(g));
	/* The full answer, for comparison. */
	yajl_val full = yajl_tree_parse(up_server_body(T.local, "px-loop-words"), NULL, 0);
	const char *pch[] = {"choices", NULL};
	yajl_val fchoices = yajl_tree_get(full, pch, yajl_t_array);
	assert_non_null(fchoices);
	const char *fc = str_of(yajl_tree_get(fchoices->u.array.values[0], pc, yajl_t_string));
	assert_non_null(fc);
	const char *tc = str_of(content);
	assert_true(strlen(tc) < strlen(fc) / 2);
	assert_memory_equal(tc, fc, strlen(tc)); /* a prefix of the real answer */
	assert_true(strlen(tc) >= strlen("I will now explain"));
	yajl_tree_free(full);
	yajl_tree_free(v);
	hs_resp_free(&r);
	free(req);
}

static void test_stall_first_token(void **state)
{
	(void)state;
	T.chat_port = T.stall_port;
	control("scenario=px-healthy-text&mode=stall&after=0");
	struct hs_resp r;
	chat("{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
	assert_int_equal(r.status, 200);
	assert_true(r.complete);
	size_t n, comments;
	char **d = hs_sse_data(r.body, &n, &comments);
	assert_int_equal(n, 2);
	char guard[64];
	assert_trip_chunk(d[0], guard, sizeof(guard));
	assert_string_equal(guard, "stall");
	assert_string_equal(d[1], "[DONE]");
	assert_true(comments >= 1); /* keep-alives while waiting */
	hs_sse_free(d, n);
	hs_resp_free(&r);
	bool hung_up;
	long written, total;
	upstream_record(0, &hung_up, &written, &total);
	assert_true(hung_up);
	assert_int_equal(written, 0);

	/* A role-only first chunk is not a token: the first-token watchdog
	 * (not the shorter idle one) still applies, keep-alives go on. */
	control("scenario=px-healthy-text&mode=stall&after=1");
	chat("{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
	assert_int_equal(r.status, 200);
	d = hs_sse_data(r.body, &n, &comments);
	assert_int_equal(n, 3);
	assert_trip_chunk(d[1], guard, sizeof(guard));
	assert_string_equal(guard, "stall");
	if (!strstr(d[1], "first token"))
		fail_msg("the idle watchdog cut the wait for the first token: %s", d[1]);
	assert_true(comments >= 1);
	hs_sse_free(d, n);
	hs_resp_free(&r);
	T.chat_port = 0;
}

static void test_stall_idle(void **state)
{
	(void)state;
	T.chat_port = T.stall_port;
	control("scenario=px-healthy-text&mode=stall&after=5");
	struct hs_resp r;
	chat("{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
	assert_int_equal(r.status, 200);
	assert_true(r.complete);
	size_t n;
	char **d = hs_sse_data(r.body, &n, NULL);
	assert_int_equal(n, 7); /* 5 relayed, the stall chunk, [DONE] */
	char guard[64];
	assert_trip_chunk(d[5], guard, sizeof(guard));
	assert_string_equal(guard, "stall");
	hs_sse_free(d, n);
	hs_resp_free(&r);
	bool hung_up;
	long written, total;
	upstream_record(0, &hung_up, &written, &total);
	assert_true(hung_up);
	assert_int_equal(written, 5);
	T.chat_port = 0;
}

/* After the stream started, a failure is an error event and a proper end. */
static void check_stream_error(const char *query, const char *needle)
{
	control(query);
	struct hs_resp r;
	chat("{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
	assert_int_equal(r.status, 200);
	assert_true(r.complete);
	size_t n;
	char **d = hs_sse_data(r.body, &n, NULL);
	assert_true(n >= 2);
	assert_string_equal(d[n - 1], "[DONE]");
	yajl_val v = yajl_tree_parse(d[n - 2], NULL, 0);
	yajl_val msg = path_get(v, "error", "message", NULL);
	if (!msg || !YAJL_IS_STRING(msg) || !strstr(str_of(msg), needle))
		fail_msg("%s: expected an error event mentioning '%s', got %s", query, needle, d[n - 2]);
	yajl_tree_free(v);
	hs_sse_free(d, n);
	hs_resp_free(&r);
}

static void test_upstream_failures_mid_stream(void **state)
{
	(void)state;
	check_stream_error("scenario=px-healthy-text&mode=reset&after=4", "upstream");
	check_stream_error("scenario=px-healthy-text&mode=close&after=4", "before");
	check_stream_error("scenario=px-healthy-text&mode=garbage&after=3", "invalid chunk");
	check_stream_error("scenario=px-healthy-text&mode=noise", "not an SSE stream");
}

/* Before the stream started, an HTTP status with an OpenAI-style body. */
static void test_upstream_status(void **state)
{
	(void)state;
	struct hs_resp r;
	control("mode=status&status=500");
	chat("{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
	assert_int_equal(r.status, 500);
	yajl_val v = yajl_tree_parse(r.body, NULL, 0);
	assert_non_null(path_get(v, "error", "message", NULL));
	yajl_tree_free(v);
	hs_resp_free(&r);

	control("mode=status_text&status=503");
	chat("{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
	assert_int_equal(r.status, 503);
	v = yajl_tree_parse(r.body, NULL, 0);
	yajl_val m = path_get(v, "error", "message", NULL);
	assert_true(m && strstr(str_of(m), "on fire"));
	assert_string_equal(str_of(path_get(v, "error", "type", NULL)), "unavailable_error");
	yajl_tree_free(v);
	hs_resp_free(&r);
	control("mode=replay");
}

/* Non-streaming: a stall ends like a trip (200, finish_reason "length",
 * guard "stall"); a reset is a 502. */
static void test_nonstream_failures(void **state)
{
	(void)state;
	const char *body = "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
	struct hs_resp r;
	control("scenario=px-healthy-text&mode=stall&after=0");
	T.chat_port = T.stall_port;
	chat(body, &r);
	T.chat_port = 0;
	assert_int_equal(r.status, 200);
	yajl_val v = yajl_tree_parse(r.body, NULL, 0);
	assert_non_null(v);
	assert_string_equal(str_of(path_get(v, "loopwarden", "guard", NULL)), "stall");
	yajl_val ch = path_get(v, "choices", NULL, NULL);
	const char *pf[] = {"finish_reason", NULL};
	assert_true(ch && YAJL_IS_ARRAY(ch) && ch->u.array.len == 1);
	assert_string_equal(str_of(yajl_tree_get(ch->u.array.values[0], pf, yajl_t_string)), "length");
	yajl_tree_free(v);
	hs_resp_free(&r);
	bool hung_up;
	long written, total;
	upstream_record(0, &hung_up, &written, &total);
	assert_true(hung_up);

	control("scenario=px-healthy-text&mode=reset&after=3");
	chat(body, &r);
	assert_int_equal(r.status, 502);
	v = yajl_tree_parse(r.body, NULL, 0);
	assert_string_equal(str_of(path_get(v, "error", "type", NULL)), "server_error");
	yajl_tree_free(v);
	hs_resp_free(&r);
	control("mode=replay");
}

static void check_bad_request(const char *body, const char *needle)
{
	struct hs_resp r;
	chat(body, &r);
	assert_int_equal(r.status, 400);
	yajl_val v = yajl_tree_parse(r.body, NULL, 0);
	assert_non_null(v);
	assert_string_equal(str_of(path_get(v, "error", "type", NULL)), "invalid_request_error");
	yajl_val m = path_get(v, "error", "message", NULL);
	if (!m || !strstr(str_of(m), needle))
		fail_msg("expected '%s' in %s", needle, r.body);
	yajl_tree_free(v);
	hs_resp_free(&r);
}

static void test_bad_requests(void **state)
{
	(void)state;
	control("mode=replay");
	check_bad_request("{\"model\": \"x\", \"messages\": [", "not valid JSON");
	check_bad_request("[1,2]", "JSON object");
	check_bad_request("{\"model\":\"x\"}", "messages");
	check_bad_request("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":\"yes\"}", "stream");
	size_t big = (1u << 20) + 100;
	char *b = malloc(big + 1);
	memset(b, 'a', big);
	b[big] = '\0';
	struct hs_resp r; /* one body over proxy.max_body_bytes: 413 */
	chat(b, &r);
	assert_int_equal(r.status, 413);
	assert_non_null(strstr(r.body, "max_body_bytes"));
	hs_resp_free(&r);
	free(b);
	assert_int_equal(upstream_requests(), 0); /* none reached the upstream */
}

/* The client goes away mid-stream: the upstream connection closes. */
static void test_client_disconnect(void **state)
{
	(void)state;
	control("scenario=px-healthy-text&delay_ms=40");
	int fd = hs_connect(T.lw_port);
	assert_true(fd >= 0);
	size_t len;
	char *req = hs_request_text("POST", "/v1/chat/completions",
	                            "{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
	                            NULL, &len);
	assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	free(req);
	char buf[4096];
	size_t got = 0;
	/* Read until the first event arrived (bounded), then hang up. */
	while (got < sizeof(buf) - 1) {
		struct pollfd p = {fd, POLLIN, 0};
		assert_true(poll(&p, 1, WAIT_MS) == 1);
		ssize_t k = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		assert_true(k > 0);
		got += (size_t)k;
		buf[got] = '\0';
		if (strstr(buf, "data: "))
			break;
	}
	close(fd);
	bool hung_up;
	long written, total;
	upstream_record(0, &hung_up, &written, &total);
	assert_true(hung_up);
	assert_true(written < total);
}

static long metric(const char *name)
{
	struct hs_resp r;
	assert_int_equal(hs_http(T.lw_port, "GET", "/metrics", NULL, NULL, WAIT_MS, &r), 0);
	char needle[128];
	snprintf(needle, sizeof(needle), "\n%s ", name);
	const char *p = strstr(r.body, needle);
	long v = p ? strtol(p + strlen(needle), NULL, 10) : -1;
	hs_resp_free(&r);
	return v;
}

static long rss_kib(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	char *s = hs_read_file(path, NULL);
	const char *p = s ? strstr(s, "VmRSS:") : NULL;
	long v = p ? strtol(p + 6, NULL, 10) : -1;
	free(s);
	return v;
}

/* A client that stops reading pauses the upstream: loopwarden's backlog
 * stays near proxy.client_highwater_bytes, its memory does not grow, and the
 * upstream is held back too. */
static void test_slow_client(void **state)
{
	(void)state;
	enum { CHUNKS = 60000 }; /* about 60 MB if it were all sent */
	char q[64];
	snprintf(q, sizeof(q), "mode=flood&after=%d", CHUNKS);
	control(q);
	long rss0 = rss_kib(T.lw_pid);
	int fd = hs_connect(T.lw_port);
	assert_true(fd >= 0);
	int small = 64 * 1024;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	size_t len;
	char *req = hs_request_text("POST", "/v1/chat/completions",
	                            "{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
	                            NULL, &len);
	assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	free(req);
	/* Wait (bounded) until loopwarden paused the upstream and the upstream
	 * can write no more. */
	long last = -1, written = 0;
	int same = 0;
	bool paused = false;
	for (int i = 0; i < 400 && !(paused && same >= 4); i++) {
		usleep(50000);
		yajl_val s = stats();
		yajl_val recs = path_get(s, "records", NULL, NULL);
		if (recs && recs->u.array.len == 1)
			written = (long)YAJL_GET_INTEGER(path_get(recs->u.array.values[0], "chunks_written", NULL, NULL));
		yajl_tree_free(s);
		same = written == last && written > 0 ? same + 1 : 0;
		last = written;
		paused = paused || metric("loopwarden_paused_streams") == 1;
	}
	assert_true(paused);
	assert_true(same >= 4);
	assert_true(written < CHUNKS / 2); /* held back, not run to the end */
	assert_int_equal(metric("loopwarden_paused_streams"), 1);
	long backlog = metric("loopwarden_client_backlog_bytes");
	assert_true(backlog > 0);
	assert_true(backlog < 256 * 1024 + 64 * 1024); /* the high-water mark plus one read */
	printf("slow client: the upstream wrote %ld of %d chunks, loopwarden backlog %ld bytes, "
	       "RSS %ld -> %ld KiB\n", written, CHUNKS, backlog, rss0, rss_kib(T.lw_pid));
#if !defined(__SANITIZE_ADDRESS__)
	/* (under ASan, freed memory sits in quarantine and RSS says little) */
	long rss1 = rss_kib(T.lw_pid);
	if (rss0 > 0 && rss1 > 0 && rss1 - rss0 > 16 * 1024)
		fail_msg("loopwarden grew from %ld to %ld KiB behind a slow client", rss0, rss1);
#else
	(void)rss0;
#endif
	close(fd);
	bool hung_up;
	long total;
	upstream_record(0, &hung_up, &written, &total);
	assert_true(hung_up);
	control("mode=replay");
}

/* Sends <raw> on a new connection, reads until the peer closes (bounded). */
static char *raw_exchange(const char *raw, size_t len, size_t *got_len)
{
	int fd = hs_connect(T.lw_port);
	assert_true(fd >= 0);
	assert_int_equal(send(fd, raw, len, MSG_NOSIGNAL), (ssize_t)len);
	size_t cap = 65536, got = 0;
	char *buf = malloc(cap);
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, WAIT_MS) != 1)
			break;
		if (got + 1 >= cap)
			break;
		ssize_t k = recv(fd, buf + got, cap - 1 - got, 0);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(fd);
	buf[got] = '\0';
	*got_len = got;
	return buf;
}

static size_t count(const char *s, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* The HTTP layer: keep-alive, pipelining, HTTP/1.0, Expect: 100-continue,
 * malformed and oversized heads. */
static void test_http_edges(void **state)
{
	(void)state;
	size_t n;
	/* two pipelined requests on one keep-alive connection, the second closes it */
	const char *two = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
	                  "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	char *out = raw_exchange(two, strlen(two), &n);
	assert_int_equal(count(out, "HTTP/1.1 200 OK"), 2);
	assert_non_null(strstr(out, "\"reachable\":true"));
	assert_non_null(strstr(out, "\"scripted\""));
	free(out);
	/* HTTP/1.0 without keep-alive: one answer, then close */
	const char *h10 = "GET /health HTTP/1.0\r\n\r\n";
	out = raw_exchange(h10, strlen(h10), &n);
	assert_int_equal(count(out, "HTTP/1.1 200 OK"), 1);
	assert_non_null(strstr(out, "Connection: close"));
	free(out);
	/* Expect: 100-continue gets its interim answer */
	const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
	char req[512];
	int rl = snprintf(req, sizeof(req),
	                  "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	                  "Expect: 100-continue\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
	control("scenario=px-healthy-text");
	out = raw_exchange(req, (size_t)rl, &n);
	assert_true(strncmp(out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", 40) == 0);
	free(out);
	/* malformed request line, unsupported version, chunked request body */
	const char *bad[] = {"NONSENSE\r\n\r\n", "GET / HTTP/2.0\r\n\r\n",
	                     "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"};
	const char *status[] = {"HTTP/1.1 400", "HTTP/1.1 400", "HTTP/1.1 411"};
	for (int i = 0; i < 3; i++) {
		out = raw_exchange(bad[i], strlen(bad[i]), &n);
		if (strncmp(out, status[i], strlen(status[i])) != 0)
			fail_msg("'%s' answered '%.40s', expected %s", bad[i], out, status[i]);
		assert_non_null(strstr(out, "\"error\""));
		free(out);
	}
	/* a head larger than proxy.max_header_bytes (32 KiB) */
	size_t big = 40 * 1024;
	char *head = malloc(big + 64);
	int hl = snprintf(head, 64, "GET /health HTTP/1.1\r\nX-Big: ");
	memset(head + hl, 'a', big);
	memcpy(head + hl + big, "\r\n\r\n", 5);
	out = raw_exchange(head, (size_t)hl + big + 4, &n);
	assert_true(strncmp(out, "HTTP/1.1 431", 12) == 0);
	free(out);
	free(head);
}

/* 100 streams at once, all complete and correct. */
static void test_concurrent_streams(void **state)
{
	(void)state;
	enum { N = 100 };
	control("scenario=px-healthy-tools&delay_ms=1");
	size_t n_chunks;
	const char *const *chunks = up_server_chunks(T.local, "px-healthy-tools", &n_chunks);
	int fds[N];
	char *raw[N];
	size_t rl[N], rc[N];
	bool open_[N];
	size_t len;
	char *req = hs_request_text("POST", "/v1/chat/completions",
	                            "{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
	                            NULL, &len);
	for (int i = 0; i < N; i++) {
		fds[i] = hs_connect(T.lw_port);
		assert_true(fds[i] >= 0);
		assert_int_equal(send(fds[i], req, len, MSG_NOSIGNAL), (ssize_t)len);
		rc[i] = 16384;
		raw[i] = malloc(rc[i]);
		rl[i] = 0;
		open_[i] = true;
	}
	free(req);
	int left = N;
	struct pollfd p[N];
	for (int rounds = 0; left > 0 && rounds < 100000; rounds++) {
		int np = 0;
		int map[N];
		for (int i = 0; i < N; i++)
			if (open_[i]) {
				p[np].fd = fds[i];
				p[np].events = POLLIN;
				p[np].revents = 0;
				map[np++] = i;
			}
		int k = poll(p, (nfds_t)np, WAIT_MS);
		assert_true(k > 0);
		for (int j = 0; j < np; j++) {
			if (!p[j].revents)
				continue;
			int i = map[j];
			if (rl[i] + 4096 > rc[i]) {
				rc[i] *= 2;
				raw[i] = realloc(raw[i], rc[i]);
			}
			ssize_t got = recv(fds[i], raw[i] + rl[i], rc[i] - rl[i], 0);
			if (got <= 0) {
				open_[i] = false;
				close(fds[i]);
				left--;
			} else {
				rl[i] += (size_t)got;
			}
		}
	}
	assert_int_equal(left, 0);
	for (int i = 0; i < N; i++) {
		struct hs_resp r;
		assert_int_equal(hs_parse_response(raw[i], rl[i], &r), 0);
		assert_int_equal(r.status, 200);
		assert_true(r.complete);
		size_t n;
		char **d = hs_sse_data(r.body, &n, NULL);
		assert_int_equal(n, n_chunks + 1);
		for (size_t c = 0; c < n_chunks; c++)
			assert_string_equal(d[c], chunks[c]);
		assert_string_equal(d[n_chunks], "[DONE]");
		hs_sse_free(d, n);
		hs_resp_free(&r);
		free(raw[i]);
	}
	assert_int_equal(upstream_requests(), N);
}

static void test_auth_models_health_metrics(void **state)
{
	(void)state;
	control("scenario=px-healthy-text");
	struct hs_resp r;
	chat("{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
	assert_int_equal(r.status, 200);
	hs_resp_free(&r);
	yajl_val s = stats();
	yajl_val recs = path_get(s, "records", NULL, NULL);
	assert_true(recs && recs->u.array.len == 1);
	assert_string_equal(str_of(path_get(recs->u.array.values[0], "authorization", NULL, NULL)),
	                    "Bearer sk-test");
	yajl_tree_free(s);

	assert_int_equal(hs_http(T.lw_port, "GET", "/v1/models", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"scripted\""));
	hs_resp_free(&r);

	assert_int_equal(hs_http(T.lw_port, "GET", "/health", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"reachable\":true"));
	hs_resp_free(&r);

	assert_int_equal(hs_http(T.lw_port, "GET", "/metrics", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "loopwarden_requests_total "));
	assert_non_null(strstr(r.body, "loopwarden_trips_total{guard=\"repeat\"}"));
	assert_non_null(strstr(r.body, "loopwarden_upstream_errors_total{kind=\"reset\"}"));
	assert_non_null(strstr(r.body, "loopwarden_active_streams 0"));
	assert_non_null(strstr(r.body, "loopwarden_time_to_first_token_seconds_bucket"));
	hs_resp_free(&r);

	assert_int_equal(hs_http(T.lw_port, "GET", "/nope", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 404);
	hs_resp_free(&r);
}

/* --record DIR: request.json + stream.sse per request. */
static void test_record(void **state)
{
	(void)state;
	control("scenario=px-healthy-tools");
	struct hs_resp r;
	const char *body = "{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"record me\"}]}";
	chat(body, &r);
	assert_int_equal(r.status, 200);
	hs_resp_free(&r);
	DIR *d = opendir(T.rec_dir);
	assert_non_null(d);
	struct dirent *e;
	bool found = false;
	while ((e = readdir(d)) && !found) {
		if (e->d_name[0] == '.')
			continue;
		char p[1024];
		snprintf(p, sizeof(p), "%s/%s/request.json", T.rec_dir, e->d_name);
		char *req = hs_read_file(p, NULL);
		if (req && strcmp(req, body) == 0) {
			snprintf(p, sizeof(p), "%s/%s/stream.sse", T.rec_dir, e->d_name);
			char *sse = hs_read_file(p, NULL);
			assert_non_null(sse);
			assert_non_null(strstr(sse, "data: [DONE]"));
			assert_non_null(strstr(sse, "call_1"));
			free(sse);
			found = true;
		}
		free(req);
	}
	closedir(d);
	assert_true(found);

	/* loopwarden-audit reads the recordings and finds the same trip. */
	const char *audit = LW_BINARY_DIR "/loopwarden-audit";
	if (access(audit, X_OK) != 0)
		return;
	control("scenario=px-loop-words");
	const char *lbody = "{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"record a loop\"}]}";
	chat(lbody, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"loopwarden\""));
	hs_resp_free(&r);
	d = opendir(T.rec_dir);
	assert_non_null(d);
	found = false;
	while ((e = readdir(d)) && !found) {
		if (e->d_name[0] == '.')
			continue;
		char p[1024], out[1100], cmd[2400];
		snprintf(p, sizeof(p), "%s/%s/request.json", T.rec_dir, e->d_name);
		char *req = hs_read_file(p, NULL);
		if (req && strcmp(req, lbody) == 0) {
			snprintf(out, sizeof(out), "%s/audit.txt", T.dir);
			snprintf(cmd, sizeof(cmd), "%s %s/%s > %s 2>&1", audit, T.rec_dir, e->d_name, out);
			int rc = system(cmd);
			(void)rc; /* the report, not the status, is checked */
			char *text = hs_read_file(out, NULL);
			assert_non_null(text);
			if (!strstr(text, "TRIP repeat"))
				fail_msg("loopwarden-audit on the recording: %s", text);
			free(text);
			snprintf(p, sizeof(p), "%s/%s/outcome.json", T.rec_dir, e->d_name);
			text = hs_read_file(p, NULL);
			assert_non_null(text);
			assert_non_null(strstr(text, "\"trip\":true,\"guard\":\"repeat\""));
			free(text);
			found = true;
		}
		free(req);
	}
	closedir(d);
	assert_true(found);
}

/* A second instance pointed at a closed port answers 502, and --help/--version work. */
static void test_refused_and_cli(void **state)
{
	(void)state;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {0};
	socklen_t sl = sizeof(sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	close(fd); /* nothing listens there now */
	char upstream[64], log[400];
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	snprintf(log, sizeof(log), "%s/refused.log", T.dir);
	char *argv[] = {LW_BINARY_DIR "/loopwarden", "--listen", "127.0.0.1:0", "--upstream", upstream, NULL};
	pid_t pid = hs_spawn(argv, log);
	long port = hs_wait_number(log, "listening on http://127.0.0.1:", WAIT_MS);
	assert_true(port > 0);
	struct hs_resp r;
	assert_int_equal(hs_http((int)port, "POST", "/v1/chat/completions",
	                         "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL,
	                         WAIT_MS, &r), 0);
	assert_int_equal(r.status, 502);
	assert_non_null(strstr(r.body, "cannot connect"));
	hs_resp_free(&r);
	assert_int_equal(hs_http((int)port, "GET", "/health", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"reachable\":false"));
	hs_resp_free(&r);
	assert_int_equal(hs_stop(pid, 5000), 0);

	char cmd[600];
	snprintf(cmd, sizeof(cmd), "%s/loopwarden --help > %s/help.txt", LW_BINARY_DIR, T.dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s/help.txt", T.dir);
	char *help = hs_read_file(cmd, NULL);
	assert_non_null(strstr(help, "--upstream"));
	assert_non_null(strstr(help, "watchdog.idle_timeout_ms"));
	free(help);
	snprintf(cmd, sizeof(cmd), "%s/loopwarden --set nope.key=1 --upstream http://127.0.0.1:1 2>/dev/null",
	         LW_BINARY_DIR);
	assert_int_not_equal(system(cmd), 0);
}

static int run_status(const char *cmd)
{
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A self-signed certificate for 127.0.0.1 and localhost in T.dir
 * (<prefix>cert.pem, <prefix>key.pem; 400-byte paths). Returns openssl's
 * exit status (not 0 when the command-line tool is missing). */
static int make_cert(const char *prefix, char *cert, char *key)
{
	char cmd[1200];
	snprintf(cert, 400, "%s/%scert.pem", T.dir, prefix);
	snprintf(key, 400, "%s/%skey.pem", T.dir, prefix);
	snprintf(cmd, sizeof(cmd),
	         "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 2 -subj /CN=localhost "
	         "-addext subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1", key, cert);
	return run_status(cmd);
}

/* An https upstream: the certificate is checked against
 * proxy.upstream_ca_file (names the IP address), answers are relayed; an
 * untrusted certificate is a clear 502. (Non-streaming answers and models:
 * the scripted evhttp server does not finish timer-driven chunked replies
 * over TLS, which is a limit of the test server, not of the proxy.) */
static void test_https_upstream(void **state)
{
	(void)state;
	char cert[400], key[400], log[400], ulog[400];
	if (make_cert("", cert, key) != 0)
		skip(); /* no openssl command-line tool */
	snprintf(ulog, sizeof(ulog), "%s/tls-upstream.log", T.dir);
	char *uargv[] = {LW_BINARY_DIR "/lw-upstream", "--data", IT_DATA, "--listen", "0",
	                 "--tls-cert", cert, "--tls-key", key, "--scenario", "px-healthy-tools", NULL};
	pid_t upid = hs_spawn(uargv, ulog);
	long uport = hs_wait_number(ulog, "listening on 127.0.0.1:", WAIT_MS);
	assert_true(uport > 0);
	char upstream[64], ca[480];
	snprintf(upstream, sizeof(upstream), "https://127.0.0.1:%ld", uport);
	snprintf(ca, sizeof(ca), "proxy.upstream_ca_file=%s", cert);
	for (int trusted = 1; trusted >= 0; trusted--) {
		snprintf(log, sizeof(log), "%s/tls-%d.log", T.dir, trusted);
		char *argv[] = {LW_BINARY_DIR "/loopwarden", "--listen", "127.0.0.1:0", "--upstream", upstream,
		                trusted ? "--set" : NULL, ca, NULL};
		pid_t pid = hs_spawn(argv, log);
		long port = hs_wait_number(log, "listening on http://127.0.0.1:", WAIT_MS);
		assert_true(port > 0);
		struct hs_resp r;
		assert_int_equal(hs_http((int)port, "POST", "/v1/chat/completions",
		                         "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL,
		                         WAIT_MS, &r), 0);
		if (trusted) {
			assert_int_equal(r.status, 200);
			assert_string_equal(r.body, up_server_body(T.local, "px-healthy-tools"));
		} else {
			assert_int_equal(r.status, 502);
			assert_non_null(strstr(r.body, "certificate verify failed"));
		}
		hs_resp_free(&r);
		if (trusted) {
			assert_int_equal(hs_http((int)port, "GET", "/v1/models", NULL, NULL, WAIT_MS, &r), 0);
			assert_int_equal(r.status, 200);
			assert_non_null(strstr(r.body, "\"scripted\""));
			hs_resp_free(&r);
		}
		assert_int_equal(hs_stop(pid, 5000), 0);
	}
	hs_stop(upid, 5000);
}

/* A streamed answer from an https upstream (nginx terminating TLS in front
 * of the scripted upstream): a healthy stream arrives chunk for chunk, a
 * looping one ends with the trip chunk and [DONE]. */
static void test_https_stream(void **state)
{
	(void)state;
	char cert[400], key[400], log[400];
	if (make_cert("tls-stream-", cert, key) != 0)
		skip(); /* no openssl command-line tool */
	pid_t npid = 0;
	int nport = hs_start_nginx(T.dir, T.up_port, cert, key, &npid);
	if (nport < 0)
		skip(); /* no nginx */
	char upstream[64], ca[480];
	snprintf(upstream, sizeof(upstream), "https://127.0.0.1:%d", nport);
	snprintf(ca, sizeof(ca), "proxy.upstream_ca_file=%s", cert);
	snprintf(log, sizeof(log), "%s/tls-stream.log", T.dir);
	char *argv[] = {LW_BINARY_DIR "/loopwarden", "--listen", "127.0.0.1:0", "--upstream", upstream,
	                "--set", ca, NULL};
	pid_t pid = hs_spawn(argv, log);
	long port = hs_wait_number(log, "listening on http://127.0.0.1:", WAIT_MS);
	assert_true(port > 0);
	T.chat_port = (int)port;
	check_healthy_stream_ex("px-healthy-tools", "&delay_ms=2");
	check_healthy_stream("px-healthy-text");
	assert_false(loop_stream_cut("px-loop-words", 60)); /* nginx, not the upstream, sees the hang-up */
	T.chat_port = 0;
	assert_int_equal(hs_stop(pid, 5000), 0);
	hs_stop(npid, 5000);
}

/* SIGHUP re-reads the config file: new guard settings for new answers. */
static void test_sighup_reload(void **state)
{
	(void)state;
	char yaml[400], log[400], upstream[64];
	snprintf(yaml, sizeof(yaml), "%s/reload.yaml", T.dir);
	snprintf(log, sizeof(log), "%s/reload.log", T.dir);
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%d", T.up_port);
	FILE *f = fopen(yaml, "w");
	fprintf(f, "guards:\n  repeat:\n    enabled: false\n  simhash:\n    enabled: false\n");
	fclose(f);
	char *argv[] = {LW_BINARY_DIR "/loopwarden", "--config", yaml, "--listen", "127.0.0.1:0",
	                "--upstream", upstream, NULL};
	pid_t pid = hs_spawn(argv, log);
	long port = hs_wait_number(log, "listening on http://127.0.0.1:", WAIT_MS);
	assert_true(port > 0);
	control("scenario=px-loop-words");
	char *req = with_stream(up_server_request(T.local, "px-loop-words"), true);
	struct hs_resp r;
	/* text watchdogs off: the flood goes through to the upstream's own end */
	assert_int_equal(hs_http((int)port, "POST", "/v1/chat/completions", req, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	assert_null(strstr(r.body, "\"loopwarden\""));
	size_t n, n_chunks;
	up_server_chunks(T.local, "px-loop-words", &n_chunks);
	char **d = hs_sse_data(r.body, &n, NULL);
	assert_int_equal(n, n_chunks + 1);
	hs_sse_free(d, n);
	hs_resp_free(&r);
	/* turn them back on and reload */
	f = fopen(yaml, "w");
	fprintf(f, "guards:\n  repeat:\n    enabled: true\n");
	fclose(f);
	kill(pid, SIGHUP);
	assert_true(hs_wait_number(log, "SIGHUP: guard settings reloaded", WAIT_MS) >= 0);
	assert_int_equal(hs_http((int)port, "POST", "/v1/chat/completions", req, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"loopwarden\":{\"guard\":\"repeat\""));
	hs_resp_free(&r);
	/* a config that does not load keeps the running settings */
	f = fopen(yaml, "w");
	fprintf(f, "guards:\n  repeat:\n    min_repeats: lots\n");
	fclose(f);
	kill(pid, SIGHUP);
	assert_true(hs_wait_number(log, "SIGHUP: settings not reloaded", WAIT_MS) >= 0);
	assert_int_equal(hs_http((int)port, "POST", "/v1/chat/completions", req, NULL, WAIT_MS, &r), 0);
	assert_non_null(strstr(r.body, "\"loopwarden\":{\"guard\":\"repeat\""));
	hs_resp_free(&r);
	free(req);
	assert_int_equal(hs_stop(pid, 5000), 0);
}

/* SIGTERM while an answer streams: the client still gets a proper end. */
static void test_shutdown_mid_stream(void **state)
{
	(void)state;
	char upstream[64], log[400];
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%d", T.up_port);
	snprintf(log, sizeof(log), "%s/shutdown.log", T.dir);
	char *argv[] = {LW_BINARY_DIR "/loopwarden", "--listen", "127.0.0.1:0", "--upstream", upstream, NULL};
	pid_t pid = hs_spawn(argv, log);
	long port = hs_wait_number(log, "listening on http://127.0.0.1:", WAIT_MS);
	assert_true(port > 0);
	control("scenario=px-healthy-text&mode=stall&after=2");
	int fd = hs_connect((int)port);
	assert_true(fd >= 0);
	size_t len;
	char *req = hs_request_text("POST", "/v1/chat/completions",
	                            "{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
	                            NULL, &len);
	assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	free(req);
	char raw[65536];
	size_t got = 0;
	bool signalled = false;
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		assert_true(poll(&p, 1, WAIT_MS) == 1);
		ssize_t k = recv(fd, raw + got, sizeof(raw) - 1 - got, 0);
		if (k <= 0)
			break;
		got += (size_t)k;
		raw[got] = '\0';
		const char *second = strstr(raw, "data: ");
		if (!signalled && second && strstr(second + 6, "data: ")) {
			kill(pid, SIGTERM);
			signalled = true;
		}
	}
	close(fd);
	assert_true(signalled);
	struct hs_resp r;
	assert_int_equal(hs_parse_response(raw, got, &r), 0);
	assert_true(r.complete);
	size_t n;
	char **d = hs_sse_data(r.body, &n, NULL);
	assert_int_equal(n, 4); /* two chunks, the error event, [DONE] */
	assert_non_null(strstr(d[2], "shutting down"));
	assert_string_equal(d[3], "[DONE]");
	hs_sse_free(d, n);
	hs_resp_free(&r);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	bool hung_up;
	long written, total;
	upstream_record(0, &hung_up, &written, &total);
	assert_true(hung_up);
	control("mode=replay");
}


/* --config FILE (YAML) and --check-config; proxy.history_action=trip. */
static void test_config_file(void **state)
{
	(void)state;
	char yaml[400], bad[400], errlog[400], cmd[1600];
	snprintf(yaml, sizeof(yaml), "%s/lw.yaml", T.dir);
	snprintf(bad, sizeof(bad), "%s/bad.yaml", T.dir);
	snprintf(errlog, sizeof(errlog), "%s/bad.log", T.dir);
	FILE *f = fopen(yaml, "w");
	fprintf(f, "# loopwarden settings\nproxy:\n  history_action: trip\n  keepalive_ms: 100\n"
	           "guards:\n  repeat:\n    min_repeats: 4\nwatchdog:\n  idle_timeout_ms: 5000\n");
	fclose(f);
	f = fopen(bad, "w");
	fprintf(f, "proxy:\n  history_action: trip\n  keepalive_ms: 1\n");
	fclose(f);
	/* --check-config checks what start-up checks: an upstream is required */
	snprintf(cmd, sizeof(cmd), "%s/loopwarden --check-config --config %s --upstream http://127.0.0.1:1 "
	                           ">/dev/null 2>&1", LW_BINARY_DIR, yaml);
	assert_int_equal(run_status(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s/loopwarden --check-config --config %s >%s 2>&1", LW_BINARY_DIR, bad, errlog);
	assert_int_equal(run_status(cmd), 2);
	char *msg = hs_read_file(errlog, NULL);
	assert_non_null(msg);
	if (!strstr(msg, "bad.yaml") || !strstr(msg, "3") || !strstr(msg, "proxy.keepalive_ms"))
		fail_msg("the error should name the file, line 3 and the key: %s", msg);
	free(msg);
	/* --set applies after the file (and has the same caps) */
	snprintf(cmd, sizeof(cmd), "%s/loopwarden --check-config --config %s --set proxy.keepalive_ms=1 "
	                           ">/dev/null 2>&1", LW_BINARY_DIR, yaml);
	assert_int_equal(run_status(cmd), 2);

	if (!T.corpus || !up_server_request(T.local, "015-continuation-of-loop"))
		return;
	/* An instance with history_action: trip answers a looping history like a trip. */
	char upstream[64], log[400];
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%d", T.up_port);
	snprintf(log, sizeof(log), "%s/config.log", T.dir);
	char *argv[] = {LW_BINARY_DIR "/loopwarden", "--config", yaml, "--listen", "127.0.0.1:0",
	                "--upstream", upstream, NULL};
	pid_t pid = hs_spawn(argv, log);
	long port = hs_wait_number(log, "listening on http://127.0.0.1:", WAIT_MS);
	assert_true(port > 0);
	control("scenario=015-continuation-of-loop");
	char *req = with_stream(up_server_request(T.local, "015-continuation-of-loop"), true);
	struct hs_resp r;
	assert_int_equal(hs_http((int)port, "POST", "/v1/chat/completions", req, NULL, WAIT_MS, &r), 0);
	free(req);
	assert_int_equal(r.status, 200);
	size_t n;
	char **d = hs_sse_data(r.body, &n, NULL);
	assert_int_equal(n, 2);
	char guard[64];
	assert_trip_chunk(d[0], guard, sizeof(guard));
	assert_string_equal(d[1], "[DONE]");
	hs_sse_free(d, n);
	hs_resp_free(&r);
	assert_int_equal(upstream_requests(), 0);
	assert_int_equal(hs_stop(pid, 5000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_healthy_stream),
		cmocka_unit_test(test_healthy_nonstream),
		cmocka_unit_test(test_loop_stream),
		cmocka_unit_test(test_loop_nonstream),
		cmocka_unit_test(test_stall_first_token),
		cmocka_unit_test(test_stall_idle),
		cmocka_unit_test(test_upstream_failures_mid_stream),
		cmocka_unit_test(test_upstream_status),
		cmocka_unit_test(test_nonstream_failures),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_http_edges),
		cmocka_unit_test(test_client_disconnect),
		cmocka_unit_test(test_concurrent_streams),
		cmocka_unit_test(test_slow_client),
		cmocka_unit_test(test_auth_models_health_metrics),
		cmocka_unit_test(test_record),
		cmocka_unit_test(test_refused_and_cli),
		cmocka_unit_test(test_config_file),
		cmocka_unit_test(test_shutdown_mid_stream),
		cmocka_unit_test(test_sighup_reload),
		cmocka_unit_test(test_https_upstream),
		cmocka_unit_test(test_https_stream),
		cmocka_unit_test(test_corpus),
	};
	return cmocka_run_group_tests(tests, start_all, stop_all);
}
