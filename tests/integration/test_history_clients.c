/* Integration: the history check and the cut with real agents' requests
 * (issue 12 items 10-14), the real binary in front of the scripted upstream.
 *
 *   item 10  a new instruction after a loop is a new task (it reaches the
 *            engine); its twin, a request to go on with the loop, is refused;
 *   item 11  the text the proxy delivers before a cut, sent back as the cut
 *            answer to be continued, is recognised by the history check (one
 *            byte less is not: the rule is exact, not a margin);
 *   item 12  Qwen Code's retry (the same request, max_tokens doubled) is
 *            answered from the memory of cuts, without the upstream; not a
 *            different request or another caller's; on a second instance the
 *            retry reaches the engine and the recovery turn is still refused;
 *   item 13  the usage chunk on cut streams and history answers; --record
 *            keeps requests answered without the upstream;
 *   item 14  proxy.cut_finish_reason: stop.
 *
 * The client requests are tests/integration/data/history/ (gen_history.py,
 * modelled on tests/agents' recordings); when the recordings themselves are
 * present (tests/integration/data/clients/, tests/agents/run.sh) they are
 * driven too. Every wait is bounded; nothing asserts on elapsed time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "harness.h"

#define IT_DATA LW_SOURCE_DIR "/tests/integration/data"
#define FIX IT_DATA "/history"
#define CLIENTS IT_DATA "/clients"
#define WAIT_MS 20000

static struct {
	char dir[256];
	char up_log[300], a_log[300], b_log[300], s_log[300], rec[300];
	pid_t up_pid, a_pid, b_pid, s_pid;
	int up_port, a_port, b_port, s_port;
} T;

static int spawn_lw(const char *log, char *const extra[], pid_t *pid)
{
	char upstream[64];
	char *argv[32];
	int n = 0;

	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%d", T.up_port);
	argv[n++] = LW_BINARY_DIR "/loopwarden";
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--upstream";
	argv[n++] = upstream;
	argv[n++] = "--set";
	argv[n++] = "watchdog.first_token_timeout_ms=30000";
	argv[n++] = "--set";
	argv[n++] = "watchdog.idle_timeout_ms=15000";
	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	*pid = hs_spawn(argv, log);
	return (int)hs_wait_number(log, "listening on http://127.0.0.1:", WAIT_MS);
}

static int start_all(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	snprintf(T.dir, sizeof(T.dir), "/tmp/lw-history-test-XXXXXX");
	if (!mkdtemp(T.dir))
		return -1;
	snprintf(T.up_log, sizeof(T.up_log), "%s/upstream.log", T.dir);
	snprintf(T.a_log, sizeof(T.a_log), "%s/a.log", T.dir);
	snprintf(T.b_log, sizeof(T.b_log), "%s/b.log", T.dir);
	snprintf(T.s_log, sizeof(T.s_log), "%s/stop.log", T.dir);
	snprintf(T.rec, sizeof(T.rec), "%s/rec", T.dir);
	char *up_argv[] = {LW_BINARY_DIR "/lw-upstream", "--data", IT_DATA, "--listen", "0", NULL};
	T.up_pid = hs_spawn(up_argv, T.up_log);
	T.up_port = (int)hs_wait_number(T.up_log, "listening on 127.0.0.1:", WAIT_MS);
	if (T.up_port <= 0)
		return -1;
	/* A (records), and B: two instances behind one "balancer". S answers
	 * cuts with finish_reason "stop". */
	char *a_extra[] = {"--record", T.rec, NULL};
	char *s_extra[] = {"--set", "proxy.cut_finish_reason=stop", NULL};
	T.a_port = spawn_lw(T.a_log, a_extra, &T.a_pid);
	T.b_port = spawn_lw(T.b_log, NULL, &T.b_pid);
	T.s_port = spawn_lw(T.s_log, s_extra, &T.s_pid);
	return T.a_port > 0 && T.b_port > 0 && T.s_port > 0 ? 0 : -1;
}

static int stop_all(void **state)
{
	(void)state;
	int rc = 0;
	pid_t pids[] = {T.a_pid, T.b_pid, T.s_pid};
	const char *logs[] = {T.a_log, T.b_log, T.s_log, T.up_log};
	for (int i = 0; i < 3; i++)
		if (hs_stop(pids[i], 5000) != 0) {
			fprintf(stderr, "a loopwarden instance did not exit cleanly; log in %s\n", logs[i]);
			rc = -1;
		}
	(void)hs_stop(T.up_pid, 5000);
	for (int i = 0; i < 4; i++) {
		char *text = hs_read_file(logs[i], NULL);
		if (text && (strstr(text, "AddressSanitizer") || strstr(text, "runtime error:") ||
		             strstr(text, "LeakSanitizer"))) {
			fprintf(stderr, "sanitizer report in %s:\n%s\n", logs[i], text);
			rc = -1;
		}
		free(text);
	}
	if (rc == 0) {
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.dir);
		if (system(cmd) != 0)
			rc = -1;
	}
	return rc;
}

/* ---- helpers ---- */

static const char *str_of(yajl_val v)
{
	return v && YAJL_IS_STRING(v) ? v->u.string : "";
}

static yajl_val get(yajl_val v, const char *a, const char *b, const char *c)
{
	const char *p[] = {a, b, c, NULL};
	return v ? yajl_tree_get(v, p, yajl_t_any) : NULL;
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

/* Requests the upstream has seen. */
static long upstream_requests(void)
{
	struct hs_resp r;
	assert_int_equal(hs_http(T.up_port, "GET", "/_stats", NULL, NULL, WAIT_MS, &r), 0);
	yajl_val v = yajl_tree_parse(r.body, NULL, 0);
	hs_resp_free(&r);
	assert_non_null(v);
	long n = (long)YAJL_GET_INTEGER(get(v, "requests", NULL, NULL));
	yajl_tree_free(v);
	return n;
}

static char *fixture(const char *path)
{
	char *s = hs_read_file(path, NULL);
	if (!s)
		fail_msg("cannot read %s", path);
	return s;
}

/* <s> with every "<DELIVERED>" replaced by <text> as JSON string content. */
static char *with_delivered(const char *s, const char *text)
{
	static const char mark[] = "<DELIVERED>";
	size_t cap = strlen(s) + 1, len = 0;
	char *out = NULL;
	for (const char *p = text; *p; p++)
		cap += 6;
	out = malloc(cap * 2);
	assert_non_null(out);
	while (*s) {
		if (strncmp(s, mark, sizeof(mark) - 1) == 0) {
			for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
				if (*p == '"' || *p == '\\')
					len += (size_t)sprintf(out + len, "\\%c", *p);
				else if (*p < 0x20)
					len += (size_t)sprintf(out + len, "\\u%04x", *p);
				else
					out[len++] = (char)*p;
			}
			s += sizeof(mark) - 1;
		} else {
			out[len++] = *s++;
		}
	}
	out[len] = '\0';
	return out;
}

/* <s> with its first <from> replaced by <to>. */
static char *replaced(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	assert_non_null(p);
	size_t n = strlen(s) + strlen(to) + 1;
	char *out = malloc(n);
	assert_non_null(out);
	snprintf(out, n, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
	return out;
}

/* A streamed answer as the client saw it. */
struct answer {
	int status;
	char content[65536];  /* every content delta, in order */
	size_t content_len;
	char finish[32];      /* of the chunk with a finish_reason */
	char guard[64];
	char detail[300];
	bool usage_chunk;     /* a chunk with choices [] and a usage object */
	long prompt_tokens, completion_tokens;
	bool usage_note;      /* the usage chunk says where its figures come from */
	bool done;
	char body[200000];
};

static void post(int port, const char *body, const char *auth, struct answer *a)
{
	struct hs_resp r;
	char hdr[256];
	snprintf(hdr, sizeof(hdr), "Authorization: %s\r\n", auth ? auth : "Bearer sk-test");
	memset(a, 0, sizeof(*a));
	assert_int_equal(hs_http(port, "POST", "/v1/chat/completions", body, hdr, WAIT_MS, &r), 0);
	a->status = r.status;
	snprintf(a->body, sizeof(a->body), "%s", r.body ? r.body : "");
	if (r.status != 200 || !strstr(r.head, "text/event-stream")) {
		hs_resp_free(&r);
		return;
	}
	size_t n;
	char **d = hs_sse_data(r.body, &n, NULL);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(d[i], "[DONE]") == 0) {
			a->done = true;
			continue;
		}
		yajl_val v = yajl_tree_parse(d[i], NULL, 0);
		assert_non_null(v);
		yajl_val ch = get(v, "choices", NULL, NULL);
		if (ch && YAJL_IS_ARRAY(ch) && ch->u.array.len == 0) {
			yajl_val u = get(v, "usage", NULL, NULL);
			a->usage_chunk = u && YAJL_IS_OBJECT(u);
			a->prompt_tokens = (long)YAJL_GET_INTEGER(get(u, "prompt_tokens", NULL, NULL));
			a->completion_tokens = (long)YAJL_GET_INTEGER(get(u, "completion_tokens", NULL, NULL));
			a->usage_note = *str_of(get(v, "loopwarden", "usage", NULL)) != '\0';
		} else if (ch && YAJL_IS_ARRAY(ch) && ch->u.array.len > 0) {
			yajl_val c0 = ch->u.array.values[0];
			const char *c = str_of(get(c0, "delta", "content", NULL));
			size_t l = strlen(c);
			assert_true(a->content_len + l < sizeof(a->content));
			memcpy(a->content + a->content_len, c, l);
			a->content_len += l;
			a->content[a->content_len] = '\0';
			yajl_val f = get(c0, "finish_reason", NULL, NULL);
			if (f && YAJL_IS_STRING(f)) {
				snprintf(a->finish, sizeof(a->finish), "%s", str_of(f));
				snprintf(a->guard, sizeof(a->guard), "%s", str_of(get(v, "loopwarden", "guard", NULL)));
				snprintf(a->detail, sizeof(a->detail), "%s",
				         str_of(get(v, "loopwarden", "detail", NULL)));
			}
		}
		yajl_tree_free(v);
	}
	hs_sse_free(d, n);
	hs_resp_free(&r);
}

/* The task is cut (the engine asked once) and its usage chunk came. */
static void cut_task(int port, const char *task, const char *auth, struct answer *a)
{
	long before = upstream_requests();
	post(port, task, auth, a);
	assert_int_equal(a->status, 200);
	assert_true(a->done);
	if (strcmp(a->guard, "repeat") != 0)
		fail_msg("the looping answer was not cut by repeat: finish %s guard '%s'", a->finish,
		         a->guard);
	assert_int_equal(upstream_requests(), before + 1);
	assert_true(a->content_len > 100);
}

/* <body> is answered by the history check: nothing reaches the upstream. */
static void refused_by_history(int port, const char *body, const char *why, struct answer *a)
{
	long before = upstream_requests();
	post(port, body, NULL, a);
	assert_int_equal(a->status, 200);
	if (strcmp(a->finish, "stop") != 0 || !strstr(a->detail, "history"))
		fail_msg("%s: the history check should have answered; got finish %s, guard %s: %s", why,
		         a->finish, a->guard, a->detail);
	assert_int_equal(upstream_requests(), before);
}

/* <body> reaches the engine. */
static void reaches_engine(int port, const char *body, const char *why, struct answer *a)
{
	long before = upstream_requests();
	post(port, body, NULL, a);
	assert_int_equal(a->status, 200);
	if (upstream_requests() != before + 1)
		fail_msg("%s: did not reach the engine (finish %s, guard %s: %s)", why, a->finish, a->guard,
		         a->detail);
}

/* ---- tests ---- */

/* Item 11: what the proxy delivered before its cut, sent back by Qwen Code's
 * recovery turn, is recognised; one byte less is not. */
static void test_continuation_of_our_cut(void **state)
{
	(void)state;
	static struct answer cut, a;
	char *task = fixture(FIX "/qwen-task.json");
	char *resume = fixture(FIX "/qwen-resume.json");

	control("scenario=px-loop-paragraph&delay_ms=1");
	/* (another caller than the next test's, whose retry must find no
	 * remembered cut on this instance) */
	cut_task(T.b_port, task, "Bearer sk-first", &cut);
	char *body = with_delivered(resume, cut.content);
	refused_by_history(T.b_port, body, "the recovery turn after our cut", &a);
	assert_string_equal(a.guard, "repeat");
	free(body);

	/* One byte less than what we delivered: the guard had not tripped
	 * yet, so this continuation goes to the engine (which loops again). */
	cut.content[--cut.content_len] = '\0';
	body = with_delivered(resume, cut.content);
	reaches_engine(T.b_port, body, "one byte short of the cut", &a);
	free(body);

	/* The healthy twin: the recovery turn after a healthy partial answer. */
	body = with_delivered(resume, "Here is how the build works. CMake configures the "
	                              "project into build/, then make compiles it.");
	reaches_engine(T.b_port, body, "a recovery turn after healthy text", &a);
	free(body);
	free(task);
	free(resume);
}

/* Item 12: the retry with max_tokens doubled is answered as the cut was. */
static void test_retry_answered_from_memory(void **state)
{
	(void)state;
	static struct answer cut, a, b;
	char *task = fixture(FIX "/qwen-task.json");
	char *retry = fixture(FIX "/qwen-retry-max-tokens-doubled.json");
	char *resume = fixture(FIX "/qwen-resume.json");

	control("scenario=px-loop-paragraph&delay_ms=1");
	cut_task(T.a_port, task, NULL, &cut);
	long before = upstream_requests();
	post(T.a_port, retry, NULL, &a);
	assert_int_equal(upstream_requests(), before); /* no engine request */
	assert_string_equal(a.finish, "length");
	assert_string_equal(a.guard, cut.guard);
	assert_string_equal(a.detail, cut.detail);
	assert_string_equal(a.content, cut.content); /* the cut text, again */
	assert_true(a.usage_chunk && a.usage_note);
	assert_int_equal(a.prompt_tokens, 0);
	/* ...and the recovery turn that follows is refused by the history. */
	char *body = with_delivered(resume, a.content);
	refused_by_history(T.a_port, body, "the recovery turn after a remembered cut", &b);

	/* Another caller's identical request is not the same request. */
	post(T.a_port, retry, "Bearer sk-other", &b);
	assert_int_equal(upstream_requests(), before + 1);
	assert_string_equal(b.guard, "repeat"); /* the engine loops again: cut again */

	/* Several instances: the retry lands on B, which never saw the cut: it
	 * asks the engine (correct, one more request); the recovery turn is
	 * recognised by B's history check all the same. */
	post(T.b_port, retry, NULL, &b);
	assert_int_equal(upstream_requests(), before + 2);
	assert_string_equal(b.guard, "repeat");
	refused_by_history(T.b_port, body, "the recovery turn on another instance", &b);
	free(body);

	/* A request that differs in one message is another request. */
	char *other = replaced(task, "Explain how to build", "Explain how to test");
	post(T.a_port, other, NULL, &b);
	assert_int_equal(upstream_requests(), before + 3);
	free(other);

	/* The recording (item 13): the answers given without the upstream. */
	bool seen_memo = false, seen_history = false;
	DIR *d = opendir(T.rec);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		char path[700];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/outcome.json", T.rec, e->d_name);
		char *o = hs_read_file(path, NULL);
		if (!o)
			continue;
		if (strstr(o, "\"answered_by\":\"cut_memo\"")) {
			seen_memo = true;
			snprintf(path, sizeof(path), "%s/%s/stream.sse", T.rec, e->d_name);
			char *sse = hs_read_file(path, NULL);
			assert_non_null(sse);
			assert_non_null(strstr(sse, "data: [DONE]"));
			free(sse);
		}
		seen_history |= strstr(o, "\"answered_by\":\"history\"") != NULL;
		free(o);
	}
	closedir(d);
	assert_true(seen_memo);
	assert_true(seen_history);
	free(task);
	free(retry);
	free(resume);
}

/* Item 10: a new instruction after a loop starts a new task. */
static void test_new_instruction_after_loop(void **state)
{
	(void)state;
	static struct answer a;
	char *s;

	control("scenario=px-healthy-text");
	s = fixture(FIX "/qwen-new-instruction-after-loop.json");
	reaches_engine(T.a_port, s, "Qwen Code: a new instruction after its merged cut answers", &a);
	assert_string_equal(a.finish, "stop"); /* the healthy answer, relayed */
	assert_string_equal(a.guard, "");
	free(s);
	s = fixture(FIX "/opencode-reread-new-instruction.json");
	reaches_engine(T.a_port, s, "opencode: a new instruction after four identical reads", &a);
	free(s);
	/* The twins: the same histories, then a request to go on. */
	s = fixture(FIX "/qwen-resume-after-loop.json");
	refused_by_history(T.a_port, s, "Qwen Code: a recovery turn after its merged cut answers", &a);
	assert_string_equal(a.guard, "repeat");
	assert_true(a.usage_chunk); /* item 13: history answers carry usage too */
	free(s);
	s = fixture(FIX "/opencode-reread-continue.json");
	refused_by_history(T.a_port, s, "opencode: \"continue\" after four identical reads", &a);
	assert_string_equal(a.guard, "cross_turn");
	free(s);
}

/* Items 13, 14: the usage chunk of a cut stream, the cut body's usage, and
 * proxy.cut_finish_reason: stop. */
static void test_usage_and_finish_reason(void **state)
{
	(void)state;
	static struct answer a;
	char *task = fixture(FIX "/qwen-task.json");

	control("scenario=px-loop-paragraph&delay_ms=1");
	post(T.s_port, task, NULL, &a);
	assert_string_equal(a.guard, "repeat");
	assert_string_equal(a.finish, "stop");
	/* The upstream reported no usage before the cut: zeros, marked so. */
	assert_true(a.usage_chunk && a.usage_note);
	assert_int_equal(a.prompt_tokens, 0);
	assert_int_equal(a.completion_tokens, 0);

	/* Non-stream: the cut body has "usage" (the upstream's) and the
	 * content the guards read. */
	char *ns = replaced(task, "\"stream\":true", "\"stream\":false");
	post(T.b_port, ns, NULL, &a);
	assert_int_equal(a.status, 200);
	yajl_val v = yajl_tree_parse(a.body, NULL, 0);
	assert_non_null(v);
	assert_true(YAJL_IS_OBJECT(get(v, "usage", NULL, NULL)));
	assert_string_equal(str_of(get(v, "loopwarden", "guard", NULL)), "repeat");
	yajl_val ch = get(v, "choices", NULL, NULL);
	assert_true(ch && YAJL_IS_ARRAY(ch) && ch->u.array.len == 1);
	assert_string_equal(str_of(get(ch->u.array.values[0], "finish_reason", NULL, NULL)), "length");
	yajl_tree_free(v);
	free(ns);
	free(task);
}

/* The recorded clients (tests/agents), when present. */
static void test_recorded_clients(void **state)
{
	(void)state;
	static struct answer a, cut;
	char path[1024];
	int n = 0;
	snprintf(path, sizeof(path), "%s/index.json", CLIENTS);
	if (access(path, R_OK) != 0) {
		printf("no recorded clients in %s (tests/agents/run.sh records them): skipped\n", CLIENTS);
		skip();
	}
	/* Every new instruction after a loop reaches the engine. */
	control("scenario=px-healthy-text");
	const char *clients[] = {"opencode", "pi", "qwen", "cn"};
	for (size_t c = 0; c < sizeof(clients) / sizeof(clients[0]); c++) {
		char dir[300];
		snprintf(dir, sizeof(dir), "%s/%s", CLIENTS, clients[c]);
		DIR *d = opendir(dir);
		if (!d)
			continue;
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strstr(e->d_name, "new-instruction") || !strstr(e->d_name, ".json"))
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			char *s = fixture(path);
			reaches_engine(T.a_port, s, path, &a);
			free(s);
			n++;
		}
		closedir(d);
	}
	printf("%d recorded new instructions after a loop reached the engine\n", n);
	assert_true(n > 0);
	/* Qwen Code's text loop: the task is cut, its retry answered from
	 * memory, its recovery turn (carrying what we delivered) refused. */
	snprintf(path, sizeof(path), "%s/qwen/text-loop-1-task.json", CLIENTS);
	if (access(path, R_OK) != 0)
		return;
	char *task = fixture(path);
	snprintf(path, sizeof(path), "%s/qwen/text-loop-2-retry-max-tokens-doubled.json", CLIENTS);
	char *retry = fixture(path);
	snprintf(path, sizeof(path), "%s/qwen/text-loop-3-resume-1.json", CLIENTS);
	char *resume = fixture(path);
	control("scenario=px-loop-paragraph&delay_ms=1");
	cut_task(T.a_port, task, NULL, &cut);
	long before = upstream_requests();
	post(T.a_port, retry, NULL, &a);
	assert_int_equal(upstream_requests(), before);
	assert_string_equal(a.guard, cut.guard);
	/* The recorded resume with our delivery as its assistant message. */
	const char *key = "{\"role\":\"assistant\",\"content\":\"";
	char *p = strstr(resume, key);
	assert_non_null(p);
	p += strlen(key);
	char *q = p;
	while (*q && *q != '"')
		q += *q == '\\' ? 2 : 1;
	assert_int_equal(*q, '"');
	size_t head = (size_t)(p - resume);
	char *tmpl = malloc(strlen(resume) + 16);
	snprintf(tmpl, strlen(resume) + 16, "%.*s<DELIVERED>%s", (int)head, resume, q);
	char *body = with_delivered(tmpl, a.content);
	refused_by_history(T.a_port, body, "Qwen Code's recorded recovery turn", &a);
	free(body);
	free(tmpl);
	free(task);
	free(retry);
	free(resume);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_continuation_of_our_cut),
		cmocka_unit_test(test_retry_answered_from_memory),
		cmocka_unit_test(test_new_instruction_after_loop),
		cmocka_unit_test(test_usage_and_finish_reason),
		cmocka_unit_test(test_recorded_clients),
	};
	return cmocka_run_group_tests(tests, start_all, stop_all);
}
