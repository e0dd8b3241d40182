/* Integration tests of the streaming runtime (issue 11 defects 4, 5, 7, 8):
 * the real loopwarden binary in front of the scripted upstream (lw-upstream)
 * on 127.0.0.1. Two instances: "main" with generous watchdogs and a short
 * client write deadline, "short" with short watchdogs and a 1 KiB event cap.
 * Every wait is bounded; nothing asserts on elapsed time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <event2/event.h>
#include <yajl/yajl_tree.h>

#include "harness.h"
#include "scripted.h"

#define IT_DATA LW_SOURCE_DIR "/tests/integration/data"
#define WAIT_MS 20000

static struct {
	char dir[256];
	char up_log[300], lw_log[300], short_log[300];
	pid_t up_pid, lw_pid, short_pid;
	int up_port, lw_port, short_port;
	struct event_base *base;
	struct up_server *local; /* the same scenarios, loaded here to compare bytes */
} T;

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int start_all(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	snprintf(T.dir, sizeof(T.dir), "/tmp/lw-runtime-test-XXXXXX");
	if (!mkdtemp(T.dir))
		return -1;
	snprintf(T.up_log, sizeof(T.up_log), "%s/upstream.log", T.dir);
	snprintf(T.lw_log, sizeof(T.lw_log), "%s/loopwarden.log", T.dir);
	snprintf(T.short_log, sizeof(T.short_log), "%s/short.log", T.dir);
	char *up_argv[] = {LW_BINARY_DIR "/lw-upstream", "--data", IT_DATA, "--listen", "0", NULL};
	T.up_pid = hs_spawn(up_argv, T.up_log);
	T.up_port = (int)hs_wait_number(T.up_log, "listening on 127.0.0.1:", WAIT_MS);
	if (T.up_port <= 0)
		return -1;
	char upstream[64];
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%d", T.up_port);
	/* main: a client must take a byte within 400 ms once 16 KiB wait for
	 * it. It runs on a 1 MiB stack: untrusted input must never need a
	 * stack as deep as it is nested (the default 8 MiB hides that). */
	struct rlimit stack_was, small_stack = {1u << 20, 1u << 20};
	getrlimit(RLIMIT_STACK, &stack_was);
	small_stack.rlim_max = stack_was.rlim_max;
	setrlimit(RLIMIT_STACK, &small_stack);
	char *lw_argv[] = {LW_BINARY_DIR "/loopwarden", "--listen", "127.0.0.1:0", "--upstream", upstream,
	                   "--set", "proxy.client_write_timeout_ms=400",
	                   "--set", "proxy.client_highwater_bytes=16384",
	                   "--set", "watchdog.first_token_timeout_ms=30000",
	                   "--set", "watchdog.idle_timeout_ms=15000",
	                   "--set", "guards.budget.max_output_bytes=0", NULL};
	T.lw_pid = hs_spawn(lw_argv, T.lw_log);
	setrlimit(RLIMIT_STACK, &stack_was);
	T.lw_port = (int)hs_wait_number(T.lw_log, "listening on http://127.0.0.1:", WAIT_MS);
	if (T.lw_port <= 0)
		return -1;
	/* short: watchdogs that act within a second, events of at most 1 KiB */
	char *st_argv[] = {LW_BINARY_DIR "/loopwarden", "--listen", "127.0.0.1:0", "--upstream", upstream,
	                   "--set", "watchdog.first_token_timeout_ms=1500",
	                   "--set", "watchdog.idle_timeout_ms=700",
	                   "--set", "proxy.keepalive_ms=150",
	                   "--set", "proxy.max_event_bytes=1024", NULL};
	T.short_pid = hs_spawn(st_argv, T.short_log);
	T.short_port = (int)hs_wait_number(T.short_log, "listening on http://127.0.0.1:", WAIT_MS);
	if (T.short_port <= 0)
		return -1;
	T.base = event_base_new();
	char err[256];
	T.local = up_server_new(T.base, 0, err, sizeof(err));
	if (!T.local || up_server_load(T.local, IT_DATA, err, sizeof(err)) < 0) {
		fprintf(stderr, "scenarios: %s\n", err);
		return -1;
	}
	return 0;
}

static bool log_has_sanitizer_report(const char *log)
{
	char *text = hs_read_file(log, NULL);
	bool bad = text && (strstr(text, "AddressSanitizer") || strstr(text, "runtime error:") ||
	                    strstr(text, "LeakSanitizer"));
	if (bad)
		fprintf(stderr, "sanitizer report in %s:\n%s\n", log, text);
	free(text);
	return bad;
}

static int stop_all(void **state)
{
	(void)state;
	int lw = hs_stop(T.lw_pid, 5000);
	int st = hs_stop(T.short_pid, 5000);
	hs_stop(T.up_pid, 5000);
	up_server_free(T.local);
	event_base_free(T.base);
	if (lw != 0 || st != 0) {
		fprintf(stderr, "loopwarden exited with %d / %d on SIGTERM; logs in %s\n", lw, st, T.dir);
		return -1;
	}
	if (log_has_sanitizer_report(T.lw_log) || log_has_sanitizer_report(T.short_log) ||
	    log_has_sanitizer_report(T.up_log))
		return -1;
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- helpers ---- */

static const char *str_of(yajl_val v)
{
	return v && YAJL_IS_STRING(v) ? v->u.string : "";
}

static yajl_val path_get(yajl_val v, const char *a, const char *b, const char *c)
{
	const char *p[] = {a, b, c, NULL};
	return yajl_tree_get(v, p, yajl_t_any);
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

/* Record <i> of the upstream once it is over (hung up or completed), within
 * <timeout_ms>; false when it is not over by then. */
static bool upstream_record(size_t i, int timeout_ms, bool *hung_up, long *written, long *total)
{
	long end = now_ms() + timeout_ms;
	do {
		struct hs_resp r;
		assert_int_equal(hs_http(T.up_port, "GET", "/_stats", NULL, NULL, WAIT_MS, &r), 0);
		yajl_val s = yajl_tree_parse(r.body, NULL, 0);
		hs_resp_free(&r);
		assert_non_null(s);
		yajl_val recs = path_get(s, "records", NULL, NULL);
		if (recs && YAJL_IS_ARRAY(recs) && recs->u.array.len > i) {
			yajl_val rec = recs->u.array.values[i];
			bool hu = YAJL_IS_TRUE(path_get(rec, "hung_up", NULL, NULL));
			bool done = YAJL_IS_TRUE(path_get(rec, "completed", NULL, NULL));
			if (hu || done) {
				*hung_up = hu;
				*written = (long)YAJL_GET_INTEGER(path_get(rec, "chunks_written", NULL, NULL));
				*total = (long)YAJL_GET_INTEGER(path_get(rec, "chunks_total", NULL, NULL));
				yajl_tree_free(s);
				return true;
			}
		}
		yajl_tree_free(s);
		usleep(20000);
	} while (now_ms() < end);
	return false;
}

static long metric(int port, const char *name)
{
	struct hs_resp r;
	assert_int_equal(hs_http(port, "GET", "/metrics", NULL, NULL, WAIT_MS, &r), 0);
	char needle[160];
	snprintf(needle, sizeof(needle), "\n%s ", name);
	const char *p = strstr(r.body, needle);
	long v = p ? strtol(p + strlen(needle), NULL, 10) : -1;
	hs_resp_free(&r);
	return v;
}

static void chat(int port, const char *body, struct hs_resp *r)
{
	assert_int_equal(hs_http(port, "POST", "/v1/chat/completions", body, NULL, WAIT_MS, r), 0);
}

#define STREAM_BODY "{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
#define PLAIN_BODY "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

/* A healthy streamed answer through <port> arrives byte for byte. */
static void check_healthy_stream(int port, const char *name)
{
	size_t n_chunks;
	const char *const *chunks = up_server_chunks(T.local, name, &n_chunks);
	char body[256];
	snprintf(body, sizeof(body),
	         "{\"model\":\"%s\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", name);
	struct hs_resp r;
	chat(port, body, &r);
	assert_int_equal(r.status, 200);
	assert_true(r.complete);
	size_t n;
	char **d = hs_sse_data(r.body, &n, NULL);
	if (n != n_chunks + 1)
		fail_msg("%s: %zu events relayed, the upstream sent %zu + [DONE]", name, n, n_chunks);
	for (size_t i = 0; i < n_chunks; i++)
		assert_string_equal(d[i], chunks[i]);
	assert_string_equal(d[n_chunks], "[DONE]");
	hs_sse_free(d, n);
	hs_resp_free(&r);
}

/* The events of a streamed answer end with a stall trip and [DONE];
 * returns the trip's detail (caller frees). */
static char *expect_stall(const struct hs_resp *r, size_t min_before)
{
	assert_int_equal(r->status, 200);
	if (!r->complete)
		fail_msg("the answer did not end (an upstream that makes no progress was never cut)");
	size_t n;
	char **d = hs_sse_data(r->body, &n, NULL);
	assert_true(n >= min_before + 2);
	assert_string_equal(d[n - 1], "[DONE]");
	yajl_val v = yajl_tree_parse(d[n - 2], NULL, 0);
	assert_non_null(v);
	assert_string_equal(str_of(path_get(v, "loopwarden", "guard", NULL)), "stall");
	char *detail = strdup(str_of(path_get(v, "loopwarden", "detail", NULL)));
	yajl_tree_free(v);
	hs_sse_free(d, n);
	return detail;
}

/* ---- defect 4: a client that never reads ---- */

/* A client that stops reading while the upstream streams a lot: once its
 * backlog passes client_highwater_bytes the upstream is paused, and when
 * the client takes no byte within client_write_timeout_ms both connections
 * are closed and counted. Before the fix the upstream stayed paused (its
 * slot held) for as long as the client stayed connected. Other clients are
 * served throughout. */
static void test_client_write_timeout(void **state)
{
	(void)state;
	control("scenario=px-healthy-tools");
	long before = metric(T.lw_port, "loopwarden_client_write_timeouts_total");
	int fd = hs_connect(T.lw_port);
	assert_true(fd >= 0);
	size_t len;
	char *req = hs_request_text("POST", "/v1/chat/completions",
	                            "{\"model\":\"x\",\"stream\":true,\"scripted\":{\"mode\":\"flood\",\"after\":500000},"
	                            "\"messages\":[{\"role\":\"user\",\"content\":\"flood me\"}]}",
	                            NULL, &len);
	assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	free(req);
	/* The flood is the upstream's record 0: wait (bounded) until it began. */
	long end = now_ms() + WAIT_MS;
	for (;;) {
		struct hs_resp sr;
		assert_int_equal(hs_http(T.up_port, "GET", "/_stats", NULL, NULL, WAIT_MS, &sr), 0);
		bool seen = strstr(sr.body, "\"requests\":0,") == NULL;
		hs_resp_free(&sr);
		if (seen)
			break;
		assert_true(now_ms() < end);
		usleep(10000);
	}
	/* Others are served while that client sits there (records 1..5). */
	for (int i = 0; i < 5; i++)
		check_healthy_stream(T.lw_port, "px-healthy-tools");
	bool hung_up = false;
	long written = 0, total = 0;
	if (!upstream_record(0, 2 * WAIT_MS, &hung_up, &written, &total))
		fail_msg("the upstream of a client that never reads was never closed");
	assert_true(hung_up);
	assert_true(written < total);
	assert_int_equal(metric(T.lw_port, "loopwarden_client_write_timeouts_total"), before + 1);
	assert_int_equal(metric(T.lw_port, "loopwarden_active_streams"), 0);
	/* The client's connection was closed too: reading it ends (EOF or a
	 * reset) without a proper end of the response. */
	size_t got = 0;
	bool ended = false;
	char buf[65536];
	end = now_ms() + WAIT_MS;
	while (!ended && now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 1000) <= 0)
			continue;
		ssize_t k = recv(fd, buf, sizeof(buf), 0);
		if (k <= 0)
			ended = true;
		else
			got += (size_t)k;
	}
	close(fd);
	assert_true(ended);
	(void)got;
	/* and still serving */
	check_healthy_stream(T.lw_port, "px-healthy-text");
	char *log = hs_read_file(T.lw_log, NULL);
	assert_non_null(log);
	assert_non_null(strstr(log, "proxy.client_write_timeout_ms"));
	free(log);
}

/* ---- defect 8: the watchdog's blind spots ---- */

/* Usage-only chunks (`choices: []` / `null`) are bookkeeping, not progress:
 * an upstream that sends nothing else is cut by the idle watchdog (and,
 * from the start, by the first-token one). Before the fix they reset the
 * idle timer and such a stream never ended. */
static void test_usage_only_is_not_progress(void **state)
{
	(void)state;
	control("scenario=px-healthy-text&mode=usage_only&after=3&delay_ms=50");
	struct hs_resp r;
	chat(T.short_port, STREAM_BODY, &r);
	char *detail = expect_stall(&r, 3);
	free(detail);
	hs_resp_free(&r);
	bool hung_up;
	long written, total;
	assert_true(upstream_record(0, WAIT_MS, &hung_up, &written, &total));
	assert_true(hung_up);
	assert_int_equal(written, 3);

	control("scenario=px-healthy-text&mode=usage_only&after=0&delay_ms=50");
	chat(T.short_port, STREAM_BODY, &r);
	detail = expect_stall(&r, 0);
	if (!strstr(detail, "first token"))
		fail_msg("usage-only chunks ended the wait for the first token: %s", detail);
	free(detail);
	hs_resp_free(&r);
	control("mode=replay");
}

/* Role-only chunks, `delta: {}` and `content: ""` carry nothing either. */
static void test_empty_deltas_are_not_progress(void **state)
{
	(void)state;
	control("scenario=px-healthy-text&mode=empty_deltas&after=3&delay_ms=50");
	struct hs_resp r;
	chat(T.short_port, STREAM_BODY, &r);
	char *detail = expect_stall(&r, 3);
	free(detail);
	hs_resp_free(&r);
	bool hung_up;
	long written, total;
	assert_true(upstream_record(0, WAIT_MS, &hung_up, &written, &total));
	assert_true(hung_up);
	control("mode=replay");
}

/* The upstream resets (or closes) in the middle of an event: that is the
 * upstream closing before the answer finished, counted as a reset, not "an
 * invalid chunk … premature EOF" counted as a protocol error. */
static void check_cut_mid_event(const char *query)
{
	control(query);
	long resets = metric(T.lw_port, "loopwarden_upstream_errors_total{kind=\"reset\"}");
	long protocol = metric(T.lw_port, "loopwarden_upstream_errors_total{kind=\"protocol\"}");
	struct hs_resp r;
	chat(T.lw_port, STREAM_BODY, &r);
	assert_int_equal(r.status, 200);
	assert_true(r.complete);
	size_t n;
	char **d = hs_sse_data(r.body, &n, NULL);
	assert_true(n >= 2);
	assert_string_equal(d[n - 1], "[DONE]");
	yajl_val v = yajl_tree_parse(d[n - 2], NULL, 0);
	const char *msg = str_of(path_get(v, "error", "message", NULL));
	if (!strstr(msg, "closed the connection before the response ended") || strstr(msg, "invalid chunk"))
		fail_msg("%s: expected the upstream closing early, got %s", query, d[n - 2]);
	yajl_tree_free(v);
	assert_int_equal(n, 4 + 2); /* the 4 whole events, the error, [DONE] */
	hs_sse_free(d, n);
	hs_resp_free(&r);
	assert_int_equal(metric(T.lw_port, "loopwarden_upstream_errors_total{kind=\"reset\"}"), resets + 1);
	assert_int_equal(metric(T.lw_port, "loopwarden_upstream_errors_total{kind=\"protocol\"}"), protocol);
}

static void test_reset_mid_event(void **state)
{
	(void)state;
	check_cut_mid_event("scenario=px-healthy-text&mode=reset&after=4&mid=1");
	check_cut_mid_event("scenario=px-healthy-text&mode=close&after=4&mid=1");
	control("mode=replay");
}

/* ---- defect 7: what we write is valid UTF-8 ---- */

/* An upstream's 5xx text with an invalid byte and a two-byte character
 * across the 300-byte quote limit: our error message quotes whole
 * characters with the invalid byte replaced (U+FFFD), so the body is valid
 * JSON (yajl checks UTF-8). Before the fix the message was cut inside the
 * character and carried the raw 0xFF. */
/* (yajl_tree_parse refuses invalid UTF-8, so parsing is the check.) */
static void check_error_text(bool stream)
{
	struct hs_resp r;
	chat(T.lw_port, stream ? STREAM_BODY : PLAIN_BODY, &r);
	assert_int_equal(r.status, 503);
	char perr[256];
	yajl_val v = yajl_tree_parse(r.body, perr, sizeof(perr));
	if (!v)
		fail_msg("the error body is not valid JSON/UTF-8 (%s): %s", perr, r.body);
	const char *msg = str_of(path_get(v, "error", "message", NULL));
	const char *prefix = "upstream returned HTTP 503: ";
	assert_non_null(strstr(msg, "upstream returned HTTP 503: engine failure \xef\xbf\xbd here"));
	assert_true(strlen(msg) <= strlen(prefix) + 300); /* the quote's limit, in bytes */
	yajl_tree_free(v);
	hs_resp_free(&r);
}

static void test_error_body_utf8(void **state)
{
	(void)state;
	control("mode=status_bad_text&status=503");
	check_error_text(false);
	check_error_text(true);
	control("mode=replay");
}

/* An error body of 32000 nested arrays (64000 bytes, under the 64 KiB the
 * proxy reads) is not an OpenAI error object: it is quoted as text, and the
 * proxy lives on. Before the fix it was parsed into a tree of 32000 levels,
 * freed recursively: more stack than the main instance's 1 MiB. */
static void test_error_body_nested(void **state)
{
	(void)state;
	control("mode=status_nested&status=500");
	struct hs_resp r;
	chat(T.lw_port, PLAIN_BODY, &r);
	assert_int_equal(r.status, 500);
	yajl_val v = yajl_tree_parse(r.body, NULL, 0);
	assert_non_null(v);
	assert_non_null(strstr(str_of(path_get(v, "error", "message", NULL)),
	                       "upstream returned HTTP 500: [[[["));
	yajl_tree_free(v);
	hs_resp_free(&r);
	control("mode=replay");
	assert_int_equal(hs_http(T.lw_port, "GET", "/health", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	hs_resp_free(&r);
	check_healthy_stream(T.lw_port, "px-healthy-text");
}

/* ---- defect 5: memory follows what a stream uses ---- */

/* A non-stream answer larger than proxy.max_event_bytes (the cap of one SSE
 * event) but within max_response_bytes is converted whole: the converter
 * grows to what the answer needs. (It used to be created with the event cap
 * and refused such an answer as invalid.) The answer loops: the guards ran
 * over all of it and cut it. */
static void test_nonstream_beyond_event_cap(void **state)
{
	(void)state;
	assert_true(strlen(up_server_body(T.local, "px-loop-words")) > 1024); /* short's event cap */
	control("scenario=px-loop-words");
	struct hs_resp r;
	chat(T.short_port, PLAIN_BODY, &r);
	assert_int_equal(r.status, 200);
	yajl_val v = yajl_tree_parse(r.body, NULL, 0);
	assert_non_null(v);
	assert_string_equal(str_of(path_get(v, "object", NULL, NULL)), "chat.completion");
	assert_string_equal(str_of(path_get(v, "loopwarden", "guard", NULL)), "repeat");
	yajl_tree_free(v);
	hs_resp_free(&r);
	control("mode=replay");
}

/* loopwarden with its address space limited (`ulimit -v`): <n> concurrent
 * streams each cost what they use. Before the fix every stream reserved
 * about 6 x proxy.max_event_bytes (25 MiB at the default 4 MiB), so 64
 * streams needed 1.6 GB of address space and failed under a 1 GiB limit. */
static void test_streams_under_address_limit(void **state)
{
	(void)state;
#if defined(__SANITIZE_ADDRESS__)
	skip(); /* ASan's shadow memory needs terabytes of address space */
#else
	enum { N = 64 };
	char log[320], upstream[64];
	snprintf(log, sizeof(log), "%s/limited.log", T.dir);
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%d", T.up_port);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = {1u << 30, 1u << 30};
		setrlimit(RLIMIT_AS, &rl);
		int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (lfd >= 0) {
			dup2(lfd, 1);
			dup2(lfd, 2);
			close(lfd);
		}
		execl(LW_BINARY_DIR "/loopwarden", "loopwarden", "--listen", "127.0.0.1:0", "--upstream",
		      upstream, "--quiet", (char *)NULL);
		_exit(127);
	}
	int port = (int)hs_wait_number(log, "listening on http://127.0.0.1:", WAIT_MS);
	assert_true(port > 0);
	control("scenario=px-healthy-tools&delay_ms=20");
	size_t n_chunks;
	const char *const *chunks = up_server_chunks(T.local, "px-healthy-tools", &n_chunks);
	int fds[N];
	size_t len;
	char *req = hs_request_text("POST", "/v1/chat/completions", STREAM_BODY, NULL, &len);
	for (int i = 0; i < N; i++) {
		fds[i] = hs_connect(port);
		assert_true(fds[i] >= 0);
		assert_int_equal(send(fds[i], req, len, MSG_NOSIGNAL), (ssize_t)len);
	}
	free(req);
	int ok = 0;
	for (int i = 0; i < N; i++) {
		size_t cap = 65536, got = 0;
		char *raw = malloc(cap);
		long end = now_ms() + WAIT_MS;
		while (now_ms() < end) {
			struct pollfd p = {fds[i], POLLIN, 0};
			if (poll(&p, 1, 1000) <= 0)
				continue;
			if (got + 4096 > cap)
				raw = realloc(raw, cap *= 2);
			ssize_t k = recv(fds[i], raw + got, cap - got, 0);
			if (k <= 0)
				break;
			got += (size_t)k;
		}
		close(fds[i]);
		struct hs_resp r;
		if (hs_parse_response(raw, got, &r) == 0 && r.status == 200 && r.complete) {
			size_t n;
			char **d = hs_sse_data(r.body, &n, NULL);
			bool same = n == n_chunks + 1 && strcmp(d[n_chunks], "[DONE]") == 0;
			for (size_t c = 0; same && c < n_chunks; c++)
				same = strcmp(d[c], chunks[c]) == 0;
			ok += same;
			hs_sse_free(d, n);
		}
		hs_resp_free(&r);
		free(raw);
	}
	control("mode=replay");
	assert_int_equal(hs_stop(pid, 5000), 0);
	if (ok != N) {
		char *text = hs_read_file(log, NULL);
		fail_msg("%d of %d streams were answered in full under a 1 GiB address-space limit; log:\n%s",
		         ok, N, text ? text : "");
	}
#endif
}

/* RSS came back after traffic only with an allocator that returns freed
 * pages (figures in proxy/alloc.c and docs/proxy.md): loopwarden runs on
 * jemalloc with dirty_decay_ms 0, and says so in /metrics along with what
 * the heap holds. (Sanitizer builds keep the sanitizer's allocator.) */
static void test_allocator(void **state)
{
	(void)state;
	struct hs_resp r;
	assert_int_equal(hs_http(T.lw_port, "GET", "/metrics", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	const char *info = strstr(r.body, "\nloopwarden_allocator_info{allocator=\"");
	assert_non_null(info);
#if defined(__SANITIZE_ADDRESS__)
	assert_non_null(strstr(info, "allocator=\"system\""));
#else
	if (!strstr(info, "allocator=\"jemalloc ") || !strstr(info, "dirty_decay_ms=\"0\"} 1"))
		fail_msg("loopwarden does not run on jemalloc with dirty_decay_ms 0: %.200s", info + 1);
	assert_non_null(strstr(r.body, "\nloopwarden_heap_resident_bytes "));
	assert_true(metric(T.lw_port, "loopwarden_heap_allocated_bytes") > 0);
#endif
	hs_resp_free(&r);
}

/* An upstream may send an event's JSON over several `data:` lines (SSE
 * joins them with '\n'): the client gets each chunk as one `data:` line, the
 * same JSON without that line end. Before, the joined text was relayed with
 * its '\n', so the client saw a `data:` line cut in the middle of the JSON
 * and a line without `data:` that it drops. */
static void test_multiline_events(void **state)
{
	(void)state;
	control("scenario=px-healthy-tools&multiline=1");
	check_healthy_stream(T.lw_port, "px-healthy-tools");
	control("scenario=px-healthy-text&multiline=1&crlf=1&split=1");
	check_healthy_stream(T.lw_port, "px-healthy-text");
	control("mode=replay");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_write_timeout),
		cmocka_unit_test(test_usage_only_is_not_progress),
		cmocka_unit_test(test_empty_deltas_are_not_progress),
		cmocka_unit_test(test_reset_mid_event),
		cmocka_unit_test(test_error_body_utf8),
		cmocka_unit_test(test_error_body_nested),
		cmocka_unit_test(test_nonstream_beyond_event_cap),
		cmocka_unit_test(test_streams_under_address_limit),
		cmocka_unit_test(test_allocator),
		cmocka_unit_test(test_multiline_events),
	};
	return cmocka_run_group_tests(tests, start_all, stop_all);
}
