/* Integration tests for the request reader in the real binary (issue 11
 * defect 1, and the duplicate-key part of defect 6): a body nested 300 000
 * deep used to segfault loopwarden, killing every stream in flight; now it
 * gets a 400 while a stream on another connection runs on to [DONE], and the
 * process lives on. A second "messages" key is refused before any upstream
 * sees the request. loopwarden and lw-upstream run on loopback with ports
 * chosen by the kernel; every wait is bounded, nothing asserts on time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <yajl/yajl_tree.h>

#include "harness.h"

#define IT_DATA LW_SOURCE_DIR "/tests/integration/data"
#define WAIT_MS 20000
#define FLOOD_CHUNKS 8000 /* about 9 MB: twice what the socket buffers (4 MiB) and the high-water mark hold */

static struct {
	char dir[256];
	char up_log[300], lw_log[300];
	pid_t up_pid, lw_pid;
	int up_port, lw_port;
} T;

static int start_all(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	snprintf(T.dir, sizeof(T.dir), "/tmp/lw-reqlim-test-XXXXXX");
	if (!mkdtemp(T.dir))
		return -1;
	snprintf(T.up_log, sizeof(T.up_log), "%s/upstream.log", T.dir);
	snprintf(T.lw_log, sizeof(T.lw_log), "%s/loopwarden.log", T.dir);
	char *up_argv[] = {LW_BINARY_DIR "/lw-upstream", "--data", IT_DATA, "--listen", "0", NULL};
	T.up_pid = hs_spawn(up_argv, T.up_log);
	T.up_port = (int)hs_wait_number(T.up_log, "listening on 127.0.0.1:", WAIT_MS);
	if (T.up_port <= 0)
		return -1;
	char upstream[64];
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%d", T.up_port);
	/* Default caps (8 MiB bodies): the deep body is well within them. */
	char *lw_argv[] = {LW_BINARY_DIR "/loopwarden", "--listen", "127.0.0.1:0", "--upstream", upstream,
	                   "--set", "watchdog.first_token_timeout_ms=60000",
	                   "--set", "watchdog.idle_timeout_ms=60000",
	                   "--set", "guards.budget.max_output_bytes=0", NULL};
	T.lw_pid = hs_spawn(lw_argv, T.lw_log);
	T.lw_port = (int)hs_wait_number(T.lw_log, "listening on http://127.0.0.1:", WAIT_MS);
	if (T.lw_port <= 0)
		return -1;
	return 0;
}

static int stop_all(void **state)
{
	(void)state;
	int lw = hs_stop(T.lw_pid, 5000);
	int up = hs_stop(T.up_pid, 5000);
	(void)up;
	if (lw != 0) {
		fprintf(stderr, "loopwarden exited with %d on SIGTERM; log in %s\n", lw, T.lw_log);
		return -1;
	}
	const char *logs[] = {T.lw_log, T.up_log};
	for (int i = 0; i < 2; i++) {
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
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- helpers ---- */

static void control(const char *query)
{
	struct hs_resp r;
	char path[512];
	snprintf(path, sizeof(path), "/_control?%s", query);
	assert_int_equal(hs_http(T.up_port, "GET", path, NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	hs_resp_free(&r);
}

static long upstream_requests(void)
{
	struct hs_resp r;
	assert_int_equal(hs_http(T.up_port, "GET", "/_stats", NULL, NULL, WAIT_MS, &r), 0);
	yajl_val v = yajl_tree_parse(r.body, NULL, 0);
	hs_resp_free(&r);
	assert_non_null(v);
	const char *p[] = {"requests", NULL};
	yajl_val n = yajl_tree_get(v, p, yajl_t_number);
	assert_non_null(n);
	long k = (long)YAJL_GET_INTEGER(n);
	yajl_tree_free(v);
	return k;
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

static bool alive(void)
{
	int st;
	return waitpid(T.lw_pid, &st, WNOHANG) == 0;
}

/* POSTs <body>; wants a 400 invalid_request_error whose message holds <needle>. */
static void expect_400(const char *body, const char *needle)
{
	struct hs_resp r;
	assert_int_equal(hs_http(T.lw_port, "POST", "/v1/chat/completions", body, NULL, WAIT_MS, &r), 0);
	if (r.status != 400)
		fail_msg("status %d, want 400; body %.300s", r.status, r.body ? r.body : "");
	yajl_val v = yajl_tree_parse(r.body, NULL, 0);
	assert_non_null(v);
	const char *pm[] = {"error", "message", NULL};
	const char *pt[] = {"error", "type", NULL};
	yajl_val m = yajl_tree_get(v, pm, yajl_t_string);
	yajl_val t = yajl_tree_get(v, pt, yajl_t_string);
	assert_non_null(m);
	assert_non_null(t);
	assert_string_equal(t->u.string, "invalid_request_error");
	if (!strstr(m->u.string, needle))
		fail_msg("message '%s' lacks '%s'", m->u.string, needle);
	yajl_tree_free(v);
	hs_resp_free(&r);
}

/* {"model":"x","messages":[…],"x":[{"k":[{"k":…  nested <depth> levels,
 * closed: about 600 KB for 300 000 levels. */
static char *deep_body(size_t depth)
{
	static const char head[] = "{\"model\":\"x\",\"stream\":true,"
	                           "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"x\":";
	size_t n = sizeof(head) - 1, cap = n + 8 * depth + 16;
	char *s = malloc(cap);
	assert_non_null(s);
	memcpy(s, head, n);
	for (size_t i = 0; i < depth; i++) {
		if (i % 2 == 0) {
			s[n++] = '[';
		} else {
			memcpy(s + n, "{\"k\":", 5);
			n += 5;
		}
	}
	s[n++] = '0';
	for (size_t i = depth; i-- > 0;)
		s[n++] = i % 2 == 0 ? ']' : '}';
	s[n++] = '}';
	s[n] = '\0';
	return s;
}

/* ---- tests ---- */

/* Defect 11.1: the 300 000-deep body gets a 400; a stream already in flight
 * on another connection completes with [DONE]; the process lives on. */
static void test_11_1_deep_body_while_streaming(void **state)
{
	(void)state;
	char q[64];
	snprintf(q, sizeof(q), "mode=flood&after=%d", FLOOD_CHUNKS);
	control(q);
	long before = upstream_requests();

	/* A stream whose client does not read yet: loopwarden pauses its
	 * upstream, so the answer is certainly in flight below. */
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
	bool paused = false;
	for (int i = 0; i < 400 && !paused; i++) {
		usleep(50000);
		paused = metric("loopwarden_paused_streams") == 1;
	}
	assert_true(paused);

	char *deep = deep_body(300000);
	expect_400(deep, "nested deeper than 64 levels (at byte ");
	free(deep);
	assert_true(alive());
	/* Only the stream reached the upstream. */
	assert_int_equal(upstream_requests(), before + 1);

	/* Now read the stream to its end. */
	size_t cap = 8u << 20, got = 0;
	char *raw = malloc(cap);
	assert_non_null(raw);
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, WAIT_MS) != 1)
			break;
		if (got + 1 >= cap) {
			cap *= 2;
			raw = realloc(raw, cap);
			assert_non_null(raw);
		}
		ssize_t k = recv(fd, raw + got, cap - 1 - got, 0);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(fd);
	raw[got] = '\0';
	struct hs_resp r;
	assert_int_equal(hs_parse_response(raw, got, &r), 0);
	free(raw);
	assert_int_equal(r.status, 200);
	assert_true(r.complete);
	size_t n;
	char **d = hs_sse_data(r.body, &n, NULL);
	assert_true(n >= 2);
	assert_string_equal(d[n - 1], "[DONE]");
	for (size_t i = 0; i + 1 < n; i++)
		if (strstr(d[i], "\"error\"") || strstr(d[i], "\"loopwarden\""))
			fail_msg("the stream was cut or failed at event %zu: %.200s", i, d[i]);
	/* Every flood chunk arrived (the last data events are its chunks). */
	if (!strstr(d[n - 2], "row ")) {
		fail_msg("unexpected last chunk: %.200s", d[n - 2]);
	}
	{
		char want[32];
		snprintf(want, sizeof(want), "row %d ", FLOOD_CHUNKS - 1);
		if (!strstr(d[n - 2], want))
			fail_msg("the stream ended early: %.120s", d[n - 2]);
	}
	hs_sse_free(d, n);
	hs_resp_free(&r);
	control("mode=replay");

	/* Alive and serving. */
	assert_true(alive());
	struct hs_resp h;
	assert_int_equal(hs_http(T.lw_port, "GET", "/health", NULL, NULL, WAIT_MS, &h), 0);
	assert_int_equal(h.status, 200);
	hs_resp_free(&h);
	struct hs_resp c;
	assert_int_equal(hs_http(T.lw_port, "POST", "/v1/chat/completions",
	                         "{\"model\":\"px-healthy-text\",\"stream\":false,"
	                         "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
	                         NULL, WAIT_MS, &c), 0);
	assert_int_equal(c.status, 200);
	hs_resp_free(&c);
}

/* Defect 11.6 (duplicate keys): a second "messages" would let the guards
 * read one conversation and the upstream another: refused, and nothing
 * reaches the upstream. So are the other reader refusals. */
static void test_11_6_duplicate_messages(void **state)
{
	(void)state;
	control("mode=replay");
	long before = upstream_requests();
	expect_400("{\"model\":\"px-healthy-text\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],"
	           "\"messages\":[{\"role\":\"user\",\"content\":\"b\"}]}",
	           "duplicate key 'messages' in the request");
	expect_400("{\"model\":\"px-healthy-text\",\"messages\":[{\"role\":\"user\",\"content\":\"a\","
	           "\"content\":\"b\"}]}",
	           "duplicate key 'content' in messages[0]");
	expect_400("{\"model\":\"px-healthy-text\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
	           "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"function\":{\"name\":\"f\","
	           "\"arguments\":12}}]}]}",
	           "messages[1].tool_calls[0].function.arguments must be a string");
	expect_400("{\"model\":\"px-healthy-text\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc0\xaf\"}]}",
	           "not valid UTF-8 (at byte ");
	expect_400("{\"model\":\"px-healthy-text\",\"messages\":[]}", "messages must not be empty");
	expect_400("{\"model\":\"px-healthy-text\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],"
	           "\"max_tokens\":\"many\"}",
	           "max_tokens must be an integer");
	assert_int_equal(upstream_requests(), before);
	assert_true(alive());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_11_1_deep_body_while_streaming),
		cmocka_unit_test(test_11_6_duplicate_messages),
	};
	return cmocka_run_group_tests(tests, start_all, stop_all);
}
