/* Unit tests of the proxy's HTTP layer below the binary: the accept loop
 * when file descriptors run out (proxy/http.c, issue 11 defect 2) and the
 * one JSON string writer every error body goes through (proxy/emit.c,
 * defect 7). The server runs in a child process with its own event loop
 * and a low RLIMIT_NOFILE; every wait is bounded. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <yajl/yajl_tree.h>

#include "guards/utf8.h"
#include "harness.h"
#include "proxy/emit.h"
#include "proxy/http.h"

#define WAIT_MS 20000

static void reply_ok(struct px_http_conn *c, const struct px_http_req *req, void *ctx)
{
	(void)req;
	(void)ctx;
	px_http_reply(c, 200, "text/plain", "ok", 2, NULL);
}

/* Runs a px_http_server on 127.0.0.1 with stderr in <log> and at most
 * <nofile> open files, in a child; returns its port (or -1) and *<pid>. */
static int serve_in_child(const char *log, rlim_t nofile, pid_t *pid)
{
	int p[2];
	*pid = -1;
	if (pipe(p) != 0)
		return -1;
	*pid = fork();
	if (*pid == 0) {
		close(p[0]);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			_exit(1);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		struct event_base *base = event_base_new();
		struct px_http_limits lim = {
			.max_header_bytes = 32768, .max_body_bytes = 1 << 20, .max_total_body_bytes = 1 << 22,
			.max_connections = 100000, /* unclamped: only the fd limit stops accept() */
			.idle_timeout_ms = 60000, .header_timeout_ms = 10000, .body_timeout_ms = 10000,
		};
		char err[256];
		struct px_http_server *s = px_http_server_new(base, "127.0.0.1", 0, &lim, reply_ok, NULL,
		                                              err, sizeof(err));
		if (!s)
			_exit(2);
		uint16_t port = px_http_server_port(s);
		struct rlimit rl = {nofile, nofile};
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			_exit(3);
		if (write(p[1], &port, sizeof(port)) != (ssize_t)sizeof(port))
			_exit(4);
		close(p[1]);
		event_base_dispatch(base);
		_exit(0);
	}
	close(p[1]);
	uint16_t port = 0;
	struct pollfd pf = {p[0], POLLIN, 0};
	int ok = poll(&pf, 1, WAIT_MS) == 1 && read(p[0], &port, sizeof(port)) == (ssize_t)sizeof(port);
	close(p[0]);
	return ok ? port : -1;
}

static pid_t child = -1;

/* The server child goes whatever the outcome (a failed assertion skips the
 * rest of the test). */
static int kill_child(void **state)
{
	(void)state;
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		child = -1;
	}
	return 0;
}

static size_t count_lines(const char *path)
{
	char *t = hs_read_file(path, NULL);
	size_t n = 0;
	for (const char *q = t; q && *q; q++)
		n += *q == '\n';
	free(t);
	return n;
}

/* More clients than file descriptors: accept() fails with EMFILE. It used
 * to be retried at once, forever (100% CPU, "accept(): Too many open files"
 * ~800k times a second); now the listener pauses and retries after a
 * backoff, logging once when it starts and once when it accepts again, and
 * the clients queued meanwhile are served once descriptors are free. */
static void defect_11_2_accept_emfile_pauses_and_logs_once(void **state)
{
	(void)state;
	enum { CLIENTS = 80 };
	char dir[] = "/tmp/lw-http-unit-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char log[64];
	snprintf(log, sizeof(log), "%s/server.log", dir);
	int port = serve_in_child(log, 32, &child);
	assert_true(port > 0);
	int fds[CLIENTS];
	for (int i = 0; i < CLIENTS; i++) {
		fds[i] = hs_connect(port);
		assert_true(fds[i] >= 0);
	}
	long paused = hs_wait_number(log, "not accepting connections for now (", WAIT_MS);
	/* let a spinning loop show itself, if there were one (not a timed assertion) */
	usleep(300000);
	size_t lines = count_lines(log);
	if (paused < 0 || lines != 1) {
		char *t = hs_read_file(log, NULL);
		fail_msg("%zu log lines after EMFILE (want 1, the pause):\n%.1500s", lines, t ? t : "");
	}
	char *text = hs_read_file(log, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "Too many open files"));
	free(text);
	for (int i = 0; i < CLIENTS; i++)
		close(fds[i]);
	/* a new client is served once the idle ones are gone */
	struct hs_resp r;
	assert_int_equal(hs_http(port, "GET", "/", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	hs_resp_free(&r);
	assert_true(hs_wait_number(log, "accepting connections again (", WAIT_MS) >= 1);
	assert_int_equal(count_lines(log), 2);
	kill_child(NULL);
	unlink(log);
	rmdir(dir);
}

static char *json_of(const char *s, size_t n)
{
	struct evbuffer *b = evbuffer_new();
	px_json_string(b, s, n);
	size_t len = evbuffer_get_length(b);
	char *out = malloc(len + 1);
	evbuffer_remove(b, out, len);
	out[len] = '\0';
	evbuffer_free(b);
	return out;
}

/* Everything loopwarden writes as a JSON string is valid UTF-8: each byte
 * that does not start a valid character becomes U+FFFD (the 404 body used
 * to echo a raw path); valid characters and escapes are unchanged. */
static void defect_11_7_json_strings_are_valid_utf8(void **state)
{
	(void)state;
	struct {
		const char *in;
		size_t n;
		const char *out;
	} cases[] = {
		{"plain", 5, "\"plain\""},
		{"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""},
		{"a\xff" "b", 3, "\"a\xef\xbf\xbd" "b\""},
		{"\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\""},             /* overlong '/' */
		{"\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* a surrogate */
		{"\xf4\x90\x80\x80", 4, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* past U+10FFFF */
		{"x\xe2\x82", 3, "\"x\xef\xbf\xbd\xef\xbf\xbd\""},           /* cut off at the end */
		{"q\"b\\n\n\r\t\x01\x1f\x7f", 11, "\"q\\\"b\\\\n\\n\\r\\t\\u0001\\u001f\x7f\""},
		{"\0z", 2, "\"\\u0000z\""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = json_of(cases[i].in, cases[i].n);
		if (strcmp(out, cases[i].out) != 0)
			fail_msg("case %zu: got %s want %s", i, out, cases[i].out);
		assert_true(gd_utf8_valid(out, strlen(out)));
		free(out);
	}
	/* an error body quoting arbitrary bytes parses as JSON */
	char msg[256];
	for (int i = 0; i < 255; i++)
		msg[i] = (char)(i + 1);
	msg[255] = '\0';
	struct evbuffer *b = evbuffer_new();
	px_emit_error(b, 404, msg);
	evbuffer_add(b, "", 1);
	const char *body = (const char *)evbuffer_pullup(b, -1);
	assert_true(gd_utf8_valid(body, strlen(body)));
	yajl_val v = yajl_tree_parse(body, NULL, 0);
	assert_non_null(v);
	yajl_tree_free(v);
	evbuffer_free(b);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defect_11_7_json_strings_are_valid_utf8),
		cmocka_unit_test_teardown(defect_11_2_accept_emfile_pauses_and_logs_once, kill_child),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
