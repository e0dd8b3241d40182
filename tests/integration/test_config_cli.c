/* loopwarden's command line and config file, end to end (issue 11 defect 9):
 * `--check-config` refuses exactly what start-up refuses, with the same one
 * message naming the file, the line and the key once; start-up accepts host
 * names in --listen; `-c` is --config; SIGHUP runs the same check and keeps
 * the running settings when it fails. Runs the real binary. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "harness.h"

#define LW LW_BINARY_DIR "/loopwarden"
#define WAIT_MS 10000

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/lw_cfgcli_XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0, len = strlen(needle);
	for (const char *p = strstr(hay, needle); p; p = strstr(p + len, needle))
		n++;
	return n;
}

/* Runs loopwarden with <args> (NULL-terminated, after argv[0]) and its
 * output in <log> (truncated first); returns its exit status, or fails the
 * test when it is still running after WAIT_MS (a start-up that should have
 * been refused and serves instead). */
static int run_lw(const char *log, const char *const *args)
{
	char *argv[32];
	size_t n = 0;
	int st;

	argv[n++] = LW;
	for (; *args && n < 31; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	unlink(log);
	pid_t pid = hs_spawn(argv, log);
	assert_true(pid > 0);
	for (long end = now_ms() + WAIT_MS; now_ms() < end;) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(10000);
	}
	hs_stop(pid, 1000);
	fail_msg("loopwarden was still running after %d ms (log %s)", WAIT_MS, log);
	return -1;
}

/* Waits (bounded) until <needle> appears <n> times in <log>. */
static bool wait_count(const char *log, const char *needle, size_t n)
{
	for (long end = now_ms() + WAIT_MS; now_ms() < end; usleep(20000)) {
		char *text = hs_read_file(log, NULL);
		size_t c = text ? count(text, needle) : 0;
		free(text);
		if (c >= n)
			return true;
	}
	return false;
}

/* <tmpl> with each @ replaced by <with>. */
static void subst(char *out, size_t outlen, const char *tmpl, const char *with)
{
	size_t n = 0;
	for (; *tmpl && n + 1 < outlen; tmpl++) {
		if (*tmpl == '@')
			n += (size_t)snprintf(out + n, outlen - n, "%s", with);
		else
			out[n++] = *tmpl;
		if (n >= outlen)
			n = outlen - 1;
	}
	out[n] = '\0';
}

struct bad_case {
	const char *yaml;    /* the config file's text; @ is the temp folder */
	const char *message; /* what the one error line says; @ is the file's path */
	const char *key;     /* named exactly once */
};

/* Each of these was accepted by --check-config before the fix and refused
 * by start-up (or, for duplicates, silently took the second value). */
static const struct bad_case bad_cases[] = {
	{"proxy:\n  upstream: https://127.0.0.1:1\n  upstream_ca_file: @/missing.pem\n",
	 "@:3: key 'proxy.upstream_ca_file': cannot read '", "proxy.upstream_ca_file"},
	{"proxy:\n  upstream: https://127.0.0.1:1\n  upstream_ca_file: @/not-pem.txt\n",
	 "@:3: key 'proxy.upstream_ca_file': '", "proxy.upstream_ca_file"},
	{"proxy:\n  listen: no-such-host.invalid:8080\n  upstream: http://127.0.0.1:1\n",
	 "@:2: key 'proxy.listen': cannot resolve host 'no-such-host.invalid'", "proxy.listen"},
	{"proxy:\n  listen: 8080\n  upstream: http://127.0.0.1:1\n",
	 "@:2: key 'proxy.listen': '8080' is not HOST:PORT: write e.g. 127.0.0.1:8080, localhost:8080",
	 "proxy.listen"},
	{"proxy:\n  upstream: http://no-such-host.invalid:1\n",
	 "@:2: key 'proxy.upstream': upstream host 'no-such-host.invalid'", "proxy.upstream"},
	{"proxy:\n  upstream: http://127.0.0.1:1\nguards:\n  failure:\n    patterns:\n      - ok\n"
	 "      - 'x(?<n>'\n",
	 "@:7: key 'guards.failure.patterns': pattern 'x(?<n>' does not compile: ",
	 "guards.failure.patterns"},
	{"proxy:\n  upstream: http://127.0.0.1:1\n  upstream: http://127.0.0.1:2\n",
	 "@:3: key 'proxy.upstream' appears twice (first at line 2)", "proxy.upstream"},
	{"proxy.upstream: http://127.0.0.1:1\nguards:\n  simhash:\n    window: 64\n    stride: 128\n",
	 "@:5: guards.simhash.stride (128) must be at most guards.simhash.window (64)",
	 "guards.simhash.stride"},
	{"proxy:\n  upstream: http://127.0.0.1:1\n  record_dir: @/no/such/folder\n",
	 "@:3: key 'proxy.record_dir': '", "proxy.record_dir"},
	{"proxy:\n  upstream: http://127.0.0.1:1\n  upstream_ca_file: @/ca-for-http.pem\n",
	 "@:3: proxy.upstream_ca_file is set but proxy.upstream is http://127.0.0.1:1, not https://",
	 "proxy.upstream_ca_file"},
	{"proxy:\n  listen: 127.0.0.1:0\n",
	 "key 'proxy.upstream': not set", "proxy.upstream"},
};

static void test_defect_11_9_check_config_rejects_what_startup_rejects(void **state)
{
	(void)state;
	char yaml[256], log[256], text[1024], want[1024], path[256];

	snprintf(path, sizeof(path), "%s/not-pem.txt", dir);
	write_file(path, "no certificate in here\n");
	snprintf(path, sizeof(path), "%s/ca-for-http.pem", dir);
	write_file(path, "unused: the upstream is plain http\n");
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		char *out;

		snprintf(yaml, sizeof(yaml), "%s/case%zu.yaml", dir, i);
		subst(text, sizeof(text), c->yaml, dir);
		write_file(yaml, text);
		subst(want, sizeof(want), c->message, yaml);
		snprintf(log, sizeof(log), "%s/case%zu.log", dir, i);

		/* --check-config: exit status 2, one line naming file:line and the key once */
		const char *check[] = {"--check-config", "-c", yaml, NULL};
		assert_int_equal(run_lw(log, check), 2);
		out = hs_read_file(log, NULL);
		assert_non_null(out);
		if (!strstr(out, want) || count(out, c->key) != 1 || count(out, "\n") != 1)
			fail_msg("case %zu: --check-config said '%s', expected '%s' naming %s once", i,
			         out, want, c->key);
		char *checked = out;

		/* start-up refuses it with the very same message */
		const char *start[] = {"--config", yaml, NULL};
		assert_int_equal(run_lw(log, start), 2);
		out = hs_read_file(log, NULL);
		assert_non_null(out);
		if (strcmp(out, checked) != 0)
			fail_msg("case %zu: start-up said '%s' but --check-config '%s'", i, out, checked);
		free(out);
		free(checked);
	}
}

/* Users write localhost:8080: it is resolved (IPv4 first) and served. */
static void test_defect_11_9_listen_accepts_host_names(void **state)
{
	(void)state;
	char log[256];
	snprintf(log, sizeof(log), "%s/localhost.log", dir);

	const char *check[] = {"--check-config", "--listen", "localhost:0", "--upstream",
	                       "http://127.0.0.1:1", NULL};
	assert_int_equal(run_lw(log, check), 0);

	char *argv[] = {LW, "--listen", "localhost:0", "--upstream", "http://127.0.0.1:1", NULL};
	unlink(log);
	pid_t pid = hs_spawn(argv, log);
	assert_true(pid > 0);
	long port = hs_wait_number(log, "listening on http://127.0.0.1:", WAIT_MS);
	if (port <= 0) {
		char *out = hs_read_file(log, NULL);
		hs_stop(pid, 1000);
		fail_msg("not listening on 127.0.0.1: %s", out ? out : "(no log)");
	}
	struct hs_resp r;
	assert_int_equal(hs_http((int)port, "GET", "/health", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	hs_resp_free(&r);
	assert_int_equal(hs_stop(pid, 5000), 0);
}

/* -c is --config; an accepted configuration says what it would serve. */
static void test_defect_11_9_short_config_option(void **state)
{
	(void)state;
	char yaml[256], log[256];
	snprintf(yaml, sizeof(yaml), "%s/good.yaml", dir);
	snprintf(log, sizeof(log), "%s/good.log", dir);
	write_file(yaml, "proxy:\n  listen: localhost:8089\n  upstream: http://127.0.0.1:8081/v1\n");
	const char *check[] = {"--check-config", "-c", yaml, NULL};
	assert_int_equal(run_lw(log, check), 0);
	char *out = hs_read_file(log, NULL);
	assert_non_null(out);
	assert_non_null(strstr(out, "configuration ok (listen 127.0.0.1:8089, upstream http://127.0.0.1:8081)"));
	free(out);
	const char *missing[] = {"--check-config", "-c", NULL};
	assert_int_equal(run_lw(log, missing), 2);
	out = hs_read_file(log, NULL);
	assert_non_null(strstr(out, "-c needs a FILE"));
	free(out);
}

/* SIGHUP runs the same load and check; on any fault the running settings
 * stay and the fault is named like --check-config names it. */
static void test_defect_11_9_sighup_same_check_keeps_settings(void **state)
{
	(void)state;
	char yaml[256], log[256], want[512];
	snprintf(yaml, sizeof(yaml), "%s/reload.yaml", dir);
	snprintf(log, sizeof(log), "%s/reload.log", dir);
	write_file(yaml, "proxy:\n  listen: 127.0.0.1:0\n  upstream: http://127.0.0.1:1\n");
	char *argv[] = {LW, "-c", yaml, NULL};
	unlink(log);
	pid_t pid = hs_spawn(argv, log);
	assert_true(pid > 0);
	long port = hs_wait_number(log, "listening on http://127.0.0.1:", WAIT_MS);
	assert_true(port > 0);

	/* a duplicate key (the loader) */
	write_file(yaml, "proxy:\n  listen: 127.0.0.1:0\n  upstream: http://127.0.0.1:1\n"
	                 "guards:\n  repeat: {enabled: false}\n  repeat: {enabled: true}\n");
	kill(pid, SIGHUP);
	assert_true(wait_count(log, "SIGHUP: settings not reloaded, the running ones stay", 1));
	snprintf(want, sizeof(want), "%s:6: key 'guards.repeat' appears twice (first at line 5)", yaml);
	char *out = hs_read_file(log, NULL);
	if (!strstr(out, want))
		fail_msg("log lacks '%s': %s", want, out);
	free(out);

	/* a record folder that cannot be created (the whole-config check) */
	write_file(yaml, "proxy:\n  listen: 127.0.0.1:0\n  upstream: http://127.0.0.1:1\n"
	                 "  record_dir: /nonexistent-lw-dir/records\n");
	kill(pid, SIGHUP);
	assert_true(wait_count(log, "SIGHUP: settings not reloaded, the running ones stay", 2));
	snprintf(want, sizeof(want), "%s:4: key 'proxy.record_dir': '/nonexistent-lw-dir/records' "
	         "does not exist and cannot be created", yaml);
	out = hs_read_file(log, NULL);
	if (!strstr(out, want))
		fail_msg("log lacks '%s': %s", want, out);
	free(out);

	/* still serving; a good file then reloads */
	struct hs_resp r;
	assert_int_equal(hs_http((int)port, "GET", "/health", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	hs_resp_free(&r);
	write_file(yaml, "proxy:\n  listen: 127.0.0.1:0\n  upstream: http://127.0.0.1:1\n"
	                 "guards:\n  repeat: {enabled: false}\n");
	kill(pid, SIGHUP);
	assert_true(wait_count(log, "SIGHUP: guard settings reloaded", 1));
	assert_int_equal(hs_stop(pid, 5000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defect_11_9_check_config_rejects_what_startup_rejects),
		cmocka_unit_test(test_defect_11_9_listen_accepts_host_names),
		cmocka_unit_test(test_defect_11_9_short_config_option),
		cmocka_unit_test(test_defect_11_9_sighup_same_check_keeps_settings),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
