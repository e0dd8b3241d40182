/* Co-resident mode (issue 13): the real loopwarden binary serving GGUF
 * models from its own engine (`--model`), on 127.0.0.1.
 *   main     contrib/models/stories260K.gguf, a batch of 3 sequences, a
 *            1 KiB client high-water mark;
 *   chatml   a tiny generated model whose GGUF carries a ChatML template;
 *   damaged  a copy of stories260K that the test truncates on disk.
 * References: llama.cpp's greedy outputs (../shared/models/
 * stories260K.refs.json) and `loopwarden generate` runs alone. Every wait is
 * bounded; nothing asserts on elapsed time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <yajl/yajl_tree.h>

#include "engine/chat_template.h"
#include "engine/load.h"
#include "engine/tokenizer.h"
#include "harness.h"
#include "tests/tools/genmodel.h"

#define MODEL LW_SOURCE_DIR "/contrib/models/stories260K.gguf"
#define REFS LW_SHARED_DIR "/models/stories260K.refs.json"
#define WAIT_MS 60000
#define N_REFS 4
#define BEAR "One day, a big bear"
#define LOOP_SENTENCE " It was not a ball."
#define CHATML_TEMPLATE                                                                            \
	"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "                \
	"message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"      \
	"{{ '<|im_start|>assistant\\n' }}{% endif %}"

static struct {
	char dir[256];
	char log[300], chatml_log[300], damaged_log[300], routes_log[300], routes_yaml[300];
	char chatml_model[300], damaged_model[300];
	pid_t pid, chatml_pid, damaged_pid, routes_pid, up_pid;
	int port, chatml_port, damaged_port, routes_port, up_port;
	char up_log[300];
	/* references */
	char *ref_prompt[N_REFS], *ref_text[N_REFS];
	char *bear_alone; /* the lone greedy continuation of BEAR */
} T;

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static pid_t start_lw(char **argv, const char *log, int *port)
{
	pid_t pid = hs_spawn(argv, log);
	*port = (int)hs_wait_number(log, "listening on http://127.0.0.1:", WAIT_MS);
	return *port > 0 ? pid : -1;
}

/* `loopwarden generate` of <prompt>, greedy: the continuation alone. */
static char *generate_alone(const char *model, const char *prompt, int n)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "'%s/loopwarden' generate -m '%s' -p '%s' -n %d --temp 0 -t 1",
	         LW_BINARY_DIR, model, prompt, n);
	FILE *p = popen(cmd, "r");
	if (!p)
		return NULL;
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	size_t k;
	while (out && (k = fread(out + len, 1, cap - len - 1, p)) > 0)
		len += k;
	if (pclose(p) != 0 || !out || len < strlen(prompt) + 1) {
		free(out);
		return NULL;
	}
	out[len - 1] = '\0'; /* generate ends with a newline */
	memmove(out, out + strlen(prompt), len - strlen(prompt));
	return out;
}

static int load_refs(void)
{
	char *text = hs_read_file(REFS, NULL);
	if (!text)
		return -1;
	yajl_val root = yajl_tree_parse(text, NULL, 0);
	free(text);
	const char *cases_path[] = {"cases", NULL};
	yajl_val cases = yajl_tree_get(root, cases_path, yajl_t_array);
	if (!cases || cases->u.array.len < N_REFS) {
		yajl_tree_free(root);
		return -1;
	}
	for (int i = 0; i < N_REFS; i++) {
		const char *pp[] = {"prompt", NULL}, *tp[] = {"text", NULL};
		yajl_val pv = yajl_tree_get(cases->u.array.values[i], pp, yajl_t_string);
		yajl_val tv = yajl_tree_get(cases->u.array.values[i], tp, yajl_t_string);
		if (!pv || !tv) {
			yajl_tree_free(root);
			return -1;
		}
		T.ref_prompt[i] = strdup(pv->u.string);
		T.ref_text[i] = strdup(tv->u.string);
	}
	yajl_tree_free(root);
	return 0;
}

static int start_all(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	snprintf(T.dir, sizeof(T.dir), "/tmp/lw-coresident-test-XXXXXX");
	if (!mkdtemp(T.dir) || load_refs() != 0)
		return -1;
	T.bear_alone = generate_alone(MODEL, BEAR, 500);
	if (!T.bear_alone)
		return -1;
	snprintf(T.log, sizeof(T.log), "%s/main.log", T.dir);
	snprintf(T.chatml_log, sizeof(T.chatml_log), "%s/chatml.log", T.dir);
	snprintf(T.damaged_log, sizeof(T.damaged_log), "%s/damaged.log", T.dir);
	char *argv[] = {LW_BINARY_DIR "/loopwarden", "--model", MODEL, "--listen", "127.0.0.1:0",
	                "--set", "engine.max_seqs=3", "--set", "engine.threads=1",
	                "--set", "proxy.client_highwater_bytes=1024", NULL};
	T.pid = start_lw(argv, T.log, &T.port);
	if (T.pid < 0)
		return -1;
	/* a tiny random model whose GGUF carries a ChatML template */
	snprintf(T.chatml_model, sizeof(T.chatml_model), "%s/chatml.gguf", T.dir);
	struct gm_spec spec;
	struct gm_model *gm = NULL;
	char err[256];
	if (gm_preset("tiny", &spec) != 0)
		return -1;
	spec.chat_template = CHATML_TEMPLATE;
	if (gm_new(&spec, &gm, err, sizeof(err)) != ENG_OK ||
	    gm_write_file(gm, T.chatml_model, err, sizeof(err)) != ENG_OK) {
		fprintf(stderr, "genmodel: %s\n", err);
		gm_free(gm);
		return -1;
	}
	gm_free(gm);
	char *cargv[] = {LW_BINARY_DIR "/loopwarden", "--model", T.chatml_model, "--listen", "127.0.0.1:0",
	                 "--set", "engine.threads=1", "--set", "engine.max_seqs=2", NULL};
	T.chatml_pid = start_lw(cargv, T.chatml_log, &T.chatml_port);
	if (T.chatml_pid < 0)
		return -1;
	/* a copy of stories260K the test truncates */
	snprintf(T.damaged_model, sizeof(T.damaged_model), "%s/damaged.gguf", T.dir);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", MODEL, T.damaged_model);
	if (system(cmd) != 0)
		return -1;
	char *dargv[] = {LW_BINARY_DIR "/loopwarden", "--model", T.damaged_model, "--listen", "127.0.0.1:0",
	                 "--set", "engine.threads=1", NULL};
	T.damaged_pid = start_lw(dargv, T.damaged_log, &T.damaged_port);
	if (T.damaged_pid < 0)
		return -1;
	/* two models by name (routes:), one of them with a dot in its name, and
	 * an upstream (the scripted one, which picks its answer by the model
	 * name: the route's name is a scenario's) */
	snprintf(T.up_log, sizeof(T.up_log), "%s/upstream.log", T.dir);
	char *uargv[] = {LW_BINARY_DIR "/lw-upstream", "--data", LW_SOURCE_DIR "/tests/integration/data",
	                 "--listen", "0", NULL};
	T.up_pid = hs_spawn(uargv, T.up_log);
	T.up_port = (int)hs_wait_number(T.up_log, "listening on 127.0.0.1:", WAIT_MS);
	if (T.up_port <= 0)
		return -1;
	snprintf(T.routes_log, sizeof(T.routes_log), "%s/routes.log", T.dir);
	snprintf(T.routes_yaml, sizeof(T.routes_yaml), "%s/routes.yaml", T.dir);
	FILE *y = fopen(T.routes_yaml, "w");
	if (!y)
		return -1;
	fprintf(y, "proxy:\n  client_write_timeout_ms: 500\n  client_highwater_bytes: 1024\n"
	        "engine:\n  threads: 1\n  max_seqs: 2\nroutes:\n  stories-0.26m:\n    model: %s\n"
	        "  tiny-chat:\n    model: %s\n  px-healthy-text:\n    upstream: http://127.0.0.1:%d/v1\n",
	        MODEL, T.chatml_model, T.up_port);
	fclose(y);
	char *rargv[] = {LW_BINARY_DIR "/loopwarden", "-c", T.routes_yaml, "--listen", "127.0.0.1:0", NULL};
	T.routes_pid = start_lw(rargv, T.routes_log, &T.routes_port);
	return T.routes_pid < 0 ? -1 : 0;
}

static bool log_has_sanitizer_report(const char *log)
{
	char *text = hs_read_file(log, NULL);
	bool bad = text && (strstr(text, "AddressSanitizer") || strstr(text, "runtime error:") ||
	                    strstr(text, "LeakSanitizer") || strstr(text, "ThreadSanitizer"));
	if (bad)
		fprintf(stderr, "sanitizer report in %s:\n%s\n", log, text);
	free(text);
	return bad;
}

static int stop_all(void **state)
{
	(void)state;
	int a = hs_stop(T.pid, 10000);
	int b = hs_stop(T.chatml_pid, 10000);
	int c = hs_stop(T.damaged_pid, 10000);
	int d = hs_stop(T.routes_pid, 10000);
	hs_stop(T.up_pid, 5000);
	int rc = 0;
	if (a != 0 || b != 0 || c != 0 || d != 0) {
		fprintf(stderr, "loopwarden exited with %d / %d / %d / %d on SIGTERM; logs in %s\n", a, b,
		        c, d, T.dir);
		rc = -1;
	}
	if (log_has_sanitizer_report(T.log) || log_has_sanitizer_report(T.chatml_log) ||
	    log_has_sanitizer_report(T.damaged_log) || log_has_sanitizer_report(T.routes_log))
		rc = -1;
	for (int i = 0; i < N_REFS; i++) {
		free(T.ref_prompt[i]);
		free(T.ref_text[i]);
	}
	free(T.bear_alone);
	if (rc == 0) {
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.dir);
		rc = system(cmd) == 0 ? 0 : -1;
	}
	return rc;
}

/* ---- helpers ---- */

static yajl_val get(yajl_val v, const char *a, const char *b, const char *c)
{
	const char *p[] = {a, b, c, NULL};
	return yajl_tree_get(v, p, yajl_t_any);
}

static const char *str_of(yajl_val v)
{
	return v && YAJL_IS_STRING(v) ? v->u.string : "";
}

/* Metric <name> (its first line: the engine's carry a model label). */
static long metric(int port, const char *name)
{
	struct hs_resp r;
	assert_int_equal(hs_http(port, "GET", "/metrics", NULL, NULL, WAIT_MS, &r), 0);
	char needle[160];
	snprintf(needle, sizeof(needle), "\n%s", name);
	const char *p = r.body;
	long v = -1;
	while ((p = strstr(p, needle)) != NULL) {
		p += strlen(needle);
		if (*p == ' ' || (*p == '{' && !strchr(name, '{'))) {
			const char *sp = strchr(p, ' ');
			v = sp ? strtol(sp + 1, NULL, 10) : -1;
			break;
		}
	}
	hs_resp_free(&r);
	return v;
}

/* Waits (bounded) until metric <name> reaches <want> or more. */
static long wait_metric(int port, const char *name, long want)
{
	long end = now_ms() + WAIT_MS, v;
	while ((v = metric(port, name)) < want && now_ms() < end)
		usleep(10000);
	return v;
}

/* A greedy chat body for <prompt>, with <extra> fields ("k":v, …,). */
static char *body_for(const char *prompt, bool stream, const char *extra)
{
	char esc[1024];
	size_t k = 0;
	for (const char *p = prompt; *p && k < sizeof(esc) - 3; p++) {
		if (*p == '"' || *p == '\\')
			esc[k++] = '\\';
		esc[k++] = *p;
	}
	esc[k] = '\0';
	char *b = malloc(strlen(esc) + strlen(extra) + 256);
	sprintf(b, "{\"model\":\"stories260K\",\"stream\":%s,\"temperature\":0,%s\"messages\":"
	           "[{\"role\":\"user\",\"content\":\"%s\"}]}", stream ? "true" : "false", extra, esc);
	return b;
}

/* A streamed answer, parsed. */
struct answer {
	int status;
	char *text;        /* content deltas joined */
	char finish[32];   /* the last finish_reason */
	yajl_val last;     /* the last chunk before [DONE] (caller frees via answer_free) */
	bool done;         /* ended with [DONE] */
	bool role_first;   /* the first chunk is the role chunk */
	bool one_identity; /* one id and one created on every chunk */
	yajl_val usage;    /* a usage chunk's usage, or NULL */
	yajl_val usage_chunk;
	size_t chunks;
	bool usage_null_elsewhere; /* every other chunk says "usage":null */
};

static void answer_free(struct answer *a)
{
	free(a->text);
	yajl_tree_free(a->last);
	yajl_tree_free(a->usage_chunk);
	memset(a, 0, sizeof(*a));
}

static void parse_stream(const struct hs_resp *r, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	a->status = r->status;
	size_t n;
	char **d = hs_sse_data(r->body, &n, NULL);
	size_t cap = r->body_len + 1, len = 0;
	a->text = calloc(1, cap);
	a->one_identity = true;
	a->usage_null_elsewhere = true;
	char id[128] = "";
	long long created = -1;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(d[i], "[DONE]") == 0) {
			a->done = i == n - 1;
			continue;
		}
		yajl_val v = yajl_tree_parse(d[i], NULL, 0);
		assert_non_null(v);
		a->chunks++;
		const char *cid = str_of(get(v, "id", NULL, NULL));
		yajl_val cr = get(v, "created", NULL, NULL);
		if (!id[0]) {
			snprintf(id, sizeof(id), "%s", cid);
			created = cr ? YAJL_GET_INTEGER(cr) : -1;
		} else if (strcmp(id, cid) != 0 || !cr || YAJL_GET_INTEGER(cr) != created) {
			a->one_identity = false;
		}
		yajl_val choices = get(v, "choices", NULL, NULL);
		yajl_val usage = get(v, "usage", NULL, NULL);
		if (choices && YAJL_IS_ARRAY(choices) && choices->u.array.len == 0 && usage &&
		    YAJL_IS_OBJECT(usage)) {
			yajl_tree_free(a->usage_chunk);
			a->usage_chunk = v;
			a->usage = usage;
			continue;
		}
		if (usage && !YAJL_IS_NULL(usage))
			a->usage_null_elsewhere = false;
		if (!usage)
			a->usage_null_elsewhere = false;
		yajl_val c0 = choices && YAJL_IS_ARRAY(choices) && choices->u.array.len
		                  ? choices->u.array.values[0] : NULL;
		if (c0) {
			const char *dp[] = {"delta", NULL};
			yajl_val delta = yajl_tree_get(c0, dp, yajl_t_object);
			if (i == 0) {
				const char *rp[] = {"role", NULL};
				a->role_first = delta && !strcmp(str_of(yajl_tree_get(delta, rp, yajl_t_any)),
				                                  "assistant");
			}
			const char *cp[] = {"content", NULL};
			yajl_val content = delta ? yajl_tree_get(delta, cp, yajl_t_any) : NULL;
			if (content && YAJL_IS_STRING(content)) {
				size_t k = strlen(content->u.string);
				assert_true(len + k < cap);
				memcpy(a->text + len, content->u.string, k);
				len += k;
			}
			const char *fp[] = {"finish_reason", NULL};
			yajl_val fr = yajl_tree_get(c0, fp, yajl_t_any);
			if (fr && YAJL_IS_STRING(fr))
				snprintf(a->finish, sizeof(a->finish), "%s", fr->u.string);
		}
		yajl_tree_free(a->last);
		a->last = v;
	}
	hs_sse_free(d, n);
}

static void chat_stream(int port, const char *body, struct answer *a)
{
	struct hs_resp r;
	assert_int_equal(hs_http(port, "POST", "/v1/chat/completions", body, NULL, WAIT_MS, &r), 0);
	assert_true(r.complete);
	if (r.status != 200)
		fail_msg("status %d: %s", r.status, r.body);
	parse_stream(&r, a);
	hs_resp_free(&r);
}

static yajl_val chat_json(int port, const char *body, int *status)
{
	struct hs_resp r;
	assert_int_equal(hs_http(port, "POST", "/v1/chat/completions", body, NULL, WAIT_MS, &r), 0);
	assert_true(r.complete);
	*status = r.status;
	yajl_val v = yajl_tree_parse(r.body, NULL, 0);
	if (!v)
		fail_msg("not JSON: %s", r.body);
	hs_resp_free(&r);
	return v;
}

/* The longest run of <unit> back to back in <text>. */
static int longest_run(const char *text, const char *unit)
{
	size_t ul = strlen(unit);
	int best = 0;
	for (const char *p = strstr(text, unit); p; p = strstr(p + 1, unit)) {
		int run = 1;
		for (const char *q = p + ul; strncmp(q, unit, ul) == 0; q += ul)
			run++;
		if (run > best)
			best = run;
	}
	return best;
}

/* ---- a real model's real loop ---- */

/* Greedy stories260K on "One day, a big bear" repeats " It was not a ball."
 * (so does llama.cpp). Served in-process, the repeat guard cuts it by its
 * 3rd-5th repetition: the text relayed is the lone greedy continuation up
 * to the cut, the stream ends with "length", the loopwarden object and
 * [DONE], and the engine generated at most one token after the cancel
 * (the final chunk and /metrics say how many). */
static void test_bear_loop_cut(void **state)
{
	(void)state;
	assert_true(longest_run(T.bear_alone, LOOP_SENTENCE) >= 10); /* the loop is real */
	long cancels = metric(T.port, "loopwarden_engine_requests_cancelled_total");
	long tac_before = metric(T.port, "loopwarden_engine_tokens_after_cancel_total");
	long trips = metric(T.port, "loopwarden_trips_total{guard=\"repeat\"}");
	if (trips < 0)
		trips = 0; /* no repeat trip yet: not listed */
	char *body = body_for(BEAR, true, "");
	struct answer a;
	chat_stream(T.port, body, &a);
	free(body);
	assert_true(a.done);
	assert_true(a.role_first);
	assert_true(a.one_identity);
	assert_string_equal(a.finish, "length");
	assert_string_equal(str_of(get(a.last, "loopwarden", "guard", NULL)), "repeat");
	yajl_val tac = get(a.last, "loopwarden", "tokens_after_cancel", NULL);
	assert_non_null(tac);
	assert_true(YAJL_IS_INTEGER(tac));
	long n_tac = (long)YAJL_GET_INTEGER(tac);
	assert_true(n_tac >= 0 && n_tac <= 1);
	int run = longest_run(a.text, LOOP_SENTENCE);
	print_message("bear: cut after %d repetitions (%zu chunks), tokens_after_cancel %ld\n", run,
	              a.chunks, n_tac);
	assert_true(run >= 3 && run <= 5);
	/* what was relayed is the lone run, up to the cut */
	assert_true(strlen(a.text) < strlen(T.bear_alone));
	assert_memory_equal(a.text, T.bear_alone, strlen(a.text));
	answer_free(&a);
	assert_true(wait_metric(T.port, "loopwarden_engine_requests_cancelled_total", cancels + 1) ==
	            cancels + 1);
	assert_int_equal(metric(T.port, "loopwarden_engine_tokens_after_cancel_total"), tac_before + n_tac);
	assert_int_equal(metric(T.port, "loopwarden_trips_total{guard=\"repeat\"}"), trips + 1);

	/* Non-stream: the body cut where the loop began, finish "length". */
	int status;
	body = body_for(BEAR, false, "");
	yajl_val v = chat_json(T.port, body, &status);
	free(body);
	assert_int_equal(status, 200);
	yajl_val c0 = get(v, "choices", NULL, NULL)->u.array.values[0];
	const char *mp[] = {"message", "content", NULL}, *fp[] = {"finish_reason", NULL};
	const char *content = str_of(yajl_tree_get(c0, mp, yajl_t_any));
	assert_string_equal(str_of(yajl_tree_get(c0, fp, yajl_t_any)), "length");
	assert_string_equal(str_of(get(v, "loopwarden", "guard", NULL)), "repeat");
	yajl_val ntac = get(v, "loopwarden", "tokens_after_cancel", NULL);
	assert_true(ntac && YAJL_GET_INTEGER(ntac) >= 0 && YAJL_GET_INTEGER(ntac) <= 1);
	assert_true(longest_run(content, LOOP_SENTENCE) <= 5);
	assert_memory_equal(content, T.bear_alone, strlen(content));
	yajl_tree_free(v);
}

/* ---- concurrency ---- */

struct job {
	int port;
	char *body;
	struct hs_resp r;
	int rc;
};

static void *run_job(void *arg)
{
	struct job *j = arg;
	j->rc = hs_http(j->port, "POST", "/v1/chat/completions", j->body, NULL, WAIT_MS, &j->r);
	return NULL;
}

#define N_OTHER 4
static const char *other_prompts[N_OTHER] = {
	"Tom had a red car", "The sun was hot", "Sue found a cat", "A bird sang",
};

/* N concurrent requests (N = 8 > the batch of 3) each give exactly their
 * single-request greedy output: llama.cpp's for the reference prompts,
 * the request served alone for the others. */
static void test_concurrent_exact(void **state)
{
	(void)state;
	char *alone[N_OTHER];
	for (int i = 0; i < N_OTHER; i++) {
		char *body = body_for(other_prompts[i], true, "\"max_tokens\":48,");
		struct answer a;
		chat_stream(T.port, body, &a);
		free(body);
		assert_string_equal(a.finish, "length");
		alone[i] = strdup(a.text);
		answer_free(&a);
	}
	struct job jobs[N_REFS + N_OTHER];
	pthread_t th[N_REFS + N_OTHER];
	for (int i = 0; i < N_REFS + N_OTHER; i++) {
		jobs[i].port = T.port;
		jobs[i].body = i < N_REFS ? body_for(T.ref_prompt[i], true, "\"max_tokens\":64,")
		                          : body_for(other_prompts[i - N_REFS], true, "\"max_tokens\":48,");
		assert_int_equal(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
	}
	for (int i = 0; i < N_REFS + N_OTHER; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(jobs[i].rc, 0);
		assert_true(jobs[i].r.complete);
		struct answer a;
		parse_stream(&jobs[i].r, &a);
		assert_true(a.done);
		assert_string_equal(a.finish, "length");
		const char *want = i < N_REFS ? T.ref_text[i] : alone[i - N_REFS];
		if (strcmp(a.text, want) != 0)
			fail_msg("request %d: got '%s', alone it is '%s'", i, a.text, want);
		answer_free(&a);
		hs_resp_free(&jobs[i].r);
		free(jobs[i].body);
	}
	for (int i = 0; i < N_OTHER; i++)
		free(alone[i]);
	assert_int_equal(wait_metric(T.port, "loopwarden_engine_kv_cells_free",
	                             metric(T.port, "loopwarden_engine_kv_cells")),
	                 metric(T.port, "loopwarden_engine_kv_cells"));
}

/* A client socket with a small receive window and a small segment size (set
 * before connecting): on loopback the server's send buffer is sized from
 * the peer's segment size (64 KiB segments give it megabytes), so with
 * 536-byte segments what the client does not read backs up into
 * loopwarden after some tens of KiB. */
static int connect_small(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int small = 2048, mss = 536;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof(mss)) != 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* A client that stops reading: once its backlog passes the high-water mark
 * loopwarden stops taking its events, its queue fills and the scheduler
 * pauses that sequence only; the others complete with their exact output
 * meanwhile. Its disconnect then cancels the sequence (the metric shows it)
 * and frees its KV cells. */
static void test_slow_client_and_disconnect(void **state)
{
	(void)state;
	long cancels = metric(T.port, "loopwarden_engine_requests_cancelled_total");
	long lw_cancels = metric(T.port, "loopwarden_engine_cancels_total");
	int fd = connect_small(T.port);
	assert_true(fd >= 0);
	/* a long answer with no loop in it (sampled with a fixed seed: a loop
	 * would end it before its backlog grows) */
	size_t len;
	char *req = hs_request_text("POST", "/v1/chat/completions",
	                            "{\"stream\":true,\"temperature\":1.0,\"seed\":7,\"max_tokens\":1900,"
	                            "\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}]}",
	                            NULL, &len);
	assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	free(req);
	if (wait_metric(T.port, "loopwarden_paused_streams", 1) < 1)
		fail_msg("loopwarden never stopped taking the unread answer's events");
	if (wait_metric(T.port, "loopwarden_engine_paused", 1) < 1)
		fail_msg("the unread answer's sequence was never paused");
	/* the others are served meanwhile, exactly */
	for (int i = 0; i < 2; i++) {
		char *body = body_for(T.ref_prompt[i], true, "\"max_tokens\":64,");
		struct answer a;
		chat_stream(T.port, body, &a);
		free(body);
		assert_string_equal(a.text, T.ref_text[i]);
		answer_free(&a);
	}
	assert_int_equal(metric(T.port, "loopwarden_engine_paused"), 1);
	/* the client leaves: its sequence is cancelled */
	close(fd);
	assert_int_equal(wait_metric(T.port, "loopwarden_engine_requests_cancelled_total", cancels + 1),
	                 cancels + 1);
	assert_true(metric(T.port, "loopwarden_engine_cancels_total") >= lw_cancels + 1);
	long end = now_ms() + WAIT_MS;
	while ((metric(T.port, "loopwarden_engine_running") != 0 ||
	        metric(T.port, "loopwarden_active_streams") != 0) && now_ms() < end)
		usleep(10000);
	assert_int_equal(metric(T.port, "loopwarden_engine_running"), 0);
	assert_int_equal(metric(T.port, "loopwarden_engine_paused"), 0);
	assert_int_equal(metric(T.port, "loopwarden_active_streams"), 0);
}

/* Sends a long sampled streaming request for <model> on <fd>. */
static void send_long(int fd, const char *model)
{
	char body[512];
	snprintf(body, sizeof(body), "{\"model\":\"%s\",\"stream\":true,\"temperature\":1.0,\"seed\":7,"
	         "\"max_tokens\":1900,\"stream_options\":{\"include_usage\":true},\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}]}",
	         model);
	size_t len;
	char *req = hs_request_text("POST", "/v1/chat/completions", body, NULL, &len);
	assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	free(req);
}

/* A slow client that reads again resumes its sequence: once paused (the
 * scheduler left it out of its steps), reading to the end gets the whole
 * answer — every token, "length", [DONE] — and nothing was cancelled. */
static void test_slow_client_resumes(void **state)
{
	(void)state;
	long cancels = metric(T.port, "loopwarden_engine_requests_cancelled_total");
	int fd = connect_small(T.port);
	assert_true(fd >= 0);
	send_long(fd, "stories260K");
	if (wait_metric(T.port, "loopwarden_paused_streams", 1) < 1 ||
	    wait_metric(T.port, "loopwarden_engine_paused", 1) < 1)
		fail_msg("the unread answer was never paused");
	/* now read it all */
	size_t cap = 1 << 20, got = 0;
	char *raw = malloc(cap);
	long end = now_ms() + WAIT_MS;
	while (now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 1000) <= 0)
			continue;
		if (got + 65536 > cap) {
			cap *= 2;
			raw = realloc(raw, cap);
		}
		ssize_t k = recv(fd, raw + got, 65536, 0);
		if (k <= 0)
			break;
		got += (size_t)k;
		if (got >= 7 && memcmp(raw + got - 7, "\r\n0\r\n\r\n", 7) == 0)
			break; /* the chunked body's end */
	}
	close(fd);
	struct hs_resp r;
	assert_int_equal(hs_parse_response(raw, got, &r), 0);
	free(raw);
	assert_true(r.complete);
	struct answer a;
	parse_stream(&r, &a);
	hs_resp_free(&r);
	assert_true(a.done);
	assert_string_equal(a.finish, "length");
	assert_non_null(a.usage);
	assert_int_equal(YAJL_GET_INTEGER(get(a.usage_chunk, "usage", "completion_tokens", NULL)), 1900);
	answer_free(&a);
	assert_int_equal(metric(T.port, "loopwarden_engine_requests_cancelled_total"), cancels);
}

/* A client that stops reading for proxy.client_write_timeout_ms (500 ms on
 * the routes instance) is treated as gone: its sequence is cancelled. */
static void test_write_timeout_cancels(void **state)
{
	(void)state;
	const char *m = "loopwarden_engine_requests_cancelled_total{model=\"stories-0.26m\"}";
	long cancels = metric(T.routes_port, m);
	long timeouts = metric(T.routes_port, "loopwarden_client_write_timeouts_total");
	int fd = connect_small(T.routes_port);
	assert_true(fd >= 0);
	send_long(fd, "stories-0.26m");
	assert_int_equal(wait_metric(T.routes_port, "loopwarden_client_write_timeouts_total", timeouts + 1),
	                 timeouts + 1);
	assert_int_equal(wait_metric(T.routes_port, m, cancels + 1), cancels + 1);
	close(fd);
	long end = now_ms() + WAIT_MS;
	while (metric(T.routes_port, "loopwarden_active_streams") != 0 && now_ms() < end)
		usleep(10000);
	assert_int_equal(metric(T.routes_port, "loopwarden_active_streams"), 0);
}

/* A client that leaves mid-stream cancels its sequence at once. */
static void test_disconnect_mid_stream(void **state)
{
	(void)state;
	long cancels = metric(T.port, "loopwarden_engine_requests_cancelled_total");
	int fd = hs_connect(T.port);
	assert_true(fd >= 0);
	size_t len;
	char *req = hs_request_text("POST", "/v1/chat/completions",
	                            "{\"stream\":true,\"temperature\":1.0,\"seed\":3,\"max_tokens\":1900,"
	                            "\"messages\":[{\"role\":\"user\",\"content\":\"The little dog\"}]}",
	                            NULL, &len);
	assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	free(req);
	/* read until a content chunk arrived, then leave */
	char buf[4096];
	size_t got = 0;
	long end = now_ms() + WAIT_MS;
	char seen[8192] = "";
	while (!strstr(seen, "\"content\":\"") && now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 1000) <= 0)
			continue;
		ssize_t k = recv(fd, buf, sizeof(buf) - 1, 0);
		if (k <= 0)
			break;
		buf[k] = '\0';
		if (got + (size_t)k < sizeof(seen) - 1) {
			memcpy(seen + got, buf, (size_t)k + 1);
			got += (size_t)k;
		}
	}
	assert_non_null(strstr(seen, "\"content\":\""));
	close(fd);
	assert_int_equal(wait_metric(T.port, "loopwarden_engine_requests_cancelled_total", cancels + 1),
	                 cancels + 1);
	end = now_ms() + WAIT_MS;
	while (metric(T.port, "loopwarden_engine_running") != 0 && now_ms() < end)
		usleep(10000);
	assert_int_equal(metric(T.port, "loopwarden_engine_running"), 0);
}

/* ---- the OpenAI surface ---- */

static void expect_400(const char *extra, const char *field)
{
	char *body = body_for("Hello", false, extra);
	int status;
	yajl_val v = chat_json(T.port, body, &status);
	free(body);
	const char *msg = str_of(get(v, "error", "message", NULL));
	if (status != 400 || !strstr(msg, field))
		fail_msg("%s: status %d, message '%s' (wanted 400 naming %s)", extra, status, msg, field);
	assert_string_equal(str_of(get(v, "error", "type", NULL)), "invalid_request_error");
	yajl_tree_free(v);
}

/* Nonsense sampling fields are a 400 naming the field; nothing reaches the
 * engine. */
static void test_sampling_errors(void **state)
{
	(void)state;
	long done = metric(T.port, "loopwarden_engine_requests_done_total");
	expect_400("\"temperature\":3,", "temperature");
	expect_400("\"top_p\":1.5,", "top_p");
	expect_400("\"top_k\":-1,", "top_k");
	expect_400("\"min_p\":2,", "min_p");
	expect_400("\"frequency_penalty\":9,", "frequency_penalty");
	expect_400("\"presence_penalty\":-9,", "presence_penalty");
	expect_400("\"repeat_penalty\":0,", "repeat_penalty");
	expect_400("\"max_tokens\":0,", "max_tokens");
	expect_400("\"max_completion_tokens\":-5,", "max_completion_tokens");
	expect_400("\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"],", "stop");
	expect_400("\"stop\":[\"\"],", "stop");
	expect_400("\"seed\":\"x\",", "seed");
	/* roles outside the template's list */
	int status;
	yajl_val v = chat_json(T.port, "{\"messages\":[{\"role\":\"robot\",\"content\":\"hi\"}]}", &status);
	assert_int_equal(status, 400);
	assert_non_null(strstr(str_of(get(v, "error", "message", NULL)), "messages[0].role 'robot'"));
	yajl_tree_free(v);
	assert_int_equal(metric(T.port, "loopwarden_engine_requests_done_total"), done);
}

/* A non-stream answer is one chat.completion with usage; a stream with
 * include_usage ends with the usage chunk (choices []) before [DONE], and
 * every other chunk says "usage":null; a stop string ends the answer with
 * "stop", the stop string left out. */
static void test_nonstream_usage_stop(void **state)
{
	(void)state;
	int status;
	char *body = body_for(T.ref_prompt[0], false, "\"max_tokens\":64,");
	yajl_val v = chat_json(T.port, body, &status);
	free(body);
	assert_int_equal(status, 200);
	assert_string_equal(str_of(get(v, "object", NULL, NULL)), "chat.completion");
	assert_string_equal(str_of(get(v, "model", NULL, NULL)), "stories260K");
	yajl_val c0 = get(v, "choices", NULL, NULL)->u.array.values[0];
	const char *mp[] = {"message", "content", NULL}, *fp[] = {"finish_reason", NULL};
	assert_string_equal(str_of(yajl_tree_get(c0, mp, yajl_t_any)), T.ref_text[0]);
	assert_string_equal(str_of(yajl_tree_get(c0, fp, yajl_t_any)), "length");
	assert_int_equal(YAJL_GET_INTEGER(get(v, "usage", "prompt_tokens", NULL)), 5); /* BOS + 4 */
	assert_int_equal(YAJL_GET_INTEGER(get(v, "usage", "completion_tokens", NULL)), 64);
	assert_int_equal(YAJL_GET_INTEGER(get(v, "usage", "total_tokens", NULL)), 69);
	yajl_tree_free(v);

	body = body_for(T.ref_prompt[0], true,
	                "\"max_tokens\":10,\"stream_options\":{\"include_usage\":true},");
	struct answer a;
	chat_stream(T.port, body, &a);
	free(body);
	assert_true(a.done);
	assert_non_null(a.usage);
	assert_int_equal(YAJL_GET_INTEGER(get(a.usage_chunk, "usage", "completion_tokens", NULL)), 10);
	assert_int_equal(YAJL_GET_INTEGER(get(a.usage_chunk, "usage", "prompt_tokens", NULL)), 5);
	assert_true(a.usage_null_elsewhere);
	assert_memory_equal(a.text, T.ref_text[0], strlen(a.text));
	answer_free(&a);

	/* "stop": the text up to the first " park", then finish "stop" */
	body = body_for(T.ref_prompt[0], true, "\"max_tokens\":64,\"stop\":[\" park\"],");
	chat_stream(T.port, body, &a);
	free(body);
	const char *at = strstr(T.ref_text[0], " park");
	assert_non_null(at);
	assert_int_equal(strlen(a.text), (size_t)(at - T.ref_text[0]));
	assert_memory_equal(a.text, T.ref_text[0], strlen(a.text));
	assert_string_equal(a.finish, "stop");
	answer_free(&a);
}

/* /v1/models names the model; /health says it is served. */
static void test_models_health(void **state)
{
	(void)state;
	struct hs_resp r;
	assert_int_equal(hs_http(T.port, "GET", "/v1/models", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	yajl_val v = yajl_tree_parse(r.body, NULL, 0);
	hs_resp_free(&r);
	yajl_val data = get(v, "data", NULL, NULL);
	assert_true(data && YAJL_IS_ARRAY(data) && data->u.array.len == 1);
	const char *ip[] = {"id", NULL};
	assert_string_equal(str_of(yajl_tree_get(data->u.array.values[0], ip, yajl_t_any)), "stories260K");
	yajl_tree_free(v);
	assert_int_equal(hs_http(T.port, "GET", "/health", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"status\":\"ok\""));
	hs_resp_free(&r);
}

/* ---- a chat template end to end ---- */

/* A model whose GGUF carries a ChatML template: /v1/models says chatml, and
 * the prompt the engine evaluated is the ChatML rendering of the messages
 * (its token count, from usage, equals the rendering's encoded here). */
static void test_chatml_renders(void **state)
{
	(void)state;
	const char *msgs = "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
	                   "{\"role\":\"user\",\"content\":\"Say hi to Bob.\"}]";
	char body[512];
	snprintf(body, sizeof(body), "{\"temperature\":0,\"max_tokens\":4,\"messages\":%s}", msgs);
	int status;
	yajl_val v = chat_json(T.chatml_port, body, &status);
	if (status != 200)
		fail_msg("status %d", status);
	long prompt_tokens = (long)YAJL_GET_INTEGER(get(v, "usage", "prompt_tokens", NULL));
	yajl_tree_free(v);
	struct hs_resp r;
	assert_int_equal(hs_http(T.chatml_port, "GET", "/v1/models", NULL, NULL, WAIT_MS, &r), 0);
	assert_non_null(strstr(r.body, "\"template\":\"chatml\""));
	hs_resp_free(&r);
	/* the rendering, here */
	struct eng_file *f = NULL;
	struct eng_tok *tok = NULL;
	struct eng_chat_template t;
	char err[256];
	assert_int_equal(eng_file_open(NULL, T.chatml_model, ENG_LOAD_MMAP, &f, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_tok_new_from_gguf(eng_file_gguf(f), &tok, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_chat_template_from_gguf(&t, eng_file_gguf(f), ENG_CHAT_AUTO, err, sizeof(err)),
	                 ENG_OK);
	assert_int_equal(t.family, ENG_CHAT_CHATML);
	struct eng_chat_msg m[2] = {
		{.role = ENG_CHAT_SYSTEM, .content = {"Be brief.", 9}},
		{.role = ENG_CHAT_USER, .content = {"Say hi to Bob.", 14}},
	};
	struct eng_chat_input in = {.msgs = m, .n_msgs = 2, .add_generation_prompt = true};
	struct eng_chat_prompt *p = eng_chat_prompt_new(1 << 16);
	assert_non_null(p);
	assert_int_equal(eng_chat_render(&t, &in, p, err, sizeof(err)), ENG_OK);
	assert_non_null(strstr(p->text, "<|im_start|>system\nBe brief.<|im_end|>"));
	assert_non_null(strstr(p->text, "<|im_start|>assistant\n"));
	int n = eng_chat_encode(tok, p, NULL, 0);
	print_message("chatml prompt: %d tokens here, %ld evaluated by the server\n", n, prompt_tokens);
	assert_int_equal(n, prompt_tokens);
	eng_chat_prompt_free(p);
	eng_tok_free(tok);
	assert_int_equal(eng_file_close(f, err, sizeof(err)), ENG_OK);
}

/* ---- a model file damaged on disk ---- */

/* The model file is truncated while served: requests fail with the clear
 * error (it names the file and says it changed on disk), /health reports
 * it, and the process lives on. */
static void test_damaged_model(void **state)
{
	(void)state;
	char *body = body_for("Hello", false, "\"max_tokens\":4,");
	int status;
	yajl_val v = chat_json(T.damaged_port, body, &status);
	assert_int_equal(status, 200);
	yajl_tree_free(v);
	assert_int_equal(truncate(T.damaged_model, 4096), 0);
	v = chat_json(T.damaged_port, body, &status);
	const char *msg = str_of(get(v, "error", "message", NULL));
	if (status != 503 || !strstr(msg, "changed on disk") || !strstr(msg, "damaged.gguf"))
		fail_msg("status %d, '%s'", status, msg);
	yajl_tree_free(v);
	/* streamed too */
	free(body);
	body = body_for("Hello", true, "\"max_tokens\":4,");
	v = chat_json(T.damaged_port, body, &status);
	assert_int_equal(status, 503);
	yajl_tree_free(v);
	free(body);
	struct hs_resp r;
	assert_int_equal(hs_http(T.damaged_port, "GET", "/health", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 503);
	assert_non_null(strstr(r.body, "\"damaged\":true"));
	hs_resp_free(&r);
	assert_int_equal(hs_http(T.damaged_port, "GET", "/metrics", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	hs_resp_free(&r);
	assert_int_equal(kill(T.damaged_pid, 0), 0);
}

/* ---- several models by name ---- */

/* routes: in the config serve several models, each by its name (a dot in a
 * name is fine); the request's model picks one; an unknown model is a 404
 * naming the models served, none at all a 400; /v1/models lists them all;
 * the engine metrics are per model. */
static void test_routes(void **state)
{
	(void)state;
	struct hs_resp r;
	assert_int_equal(hs_http(T.routes_port, "GET", "/v1/models", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"id\":\"stories-0.26m\""));
	assert_non_null(strstr(r.body, "\"id\":\"tiny-chat\""));
	assert_non_null(strstr(r.body, "\"template\":\"chatml\""));
	assert_non_null(strstr(r.body, "\"template\":\"plain\""));
	assert_non_null(strstr(r.body, "\"id\":\"px-healthy-text\",\"object\":\"model\""));
	hs_resp_free(&r);
	/* the upstream route: relayed, [DONE] at the end */
	struct answer a;
	chat_stream(T.routes_port, "{\"model\":\"px-healthy-text\",\"stream\":true,\"messages\":"
	            "[{\"role\":\"user\",\"content\":\"hi\"}]}", &a);
	assert_true(a.done);
	assert_true(strlen(a.text) > 0);
	answer_free(&a);
	int status;
	const char *stories = "{\"model\":\"stories-0.26m\",\"temperature\":0,\"max_tokens\":64,"
	                      "\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}]}";
	yajl_val v = chat_json(T.routes_port, stories, &status);
	assert_int_equal(status, 200);
	assert_string_equal(str_of(get(v, "model", NULL, NULL)), "stories-0.26m");
	yajl_val c0 = get(v, "choices", NULL, NULL)->u.array.values[0];
	const char *mp[] = {"message", "content", NULL};
	assert_string_equal(str_of(yajl_tree_get(c0, mp, yajl_t_any)), T.ref_text[0]);
	yajl_tree_free(v);
	v = chat_json(T.routes_port, "{\"model\":\"tiny-chat\",\"max_tokens\":3,\"messages\":"
	              "[{\"role\":\"user\",\"content\":\"hi\"}]}", &status);
	assert_int_equal(status, 200);
	assert_string_equal(str_of(get(v, "model", NULL, NULL)), "tiny-chat");
	yajl_tree_free(v);
	v = chat_json(T.routes_port, "{\"model\":\"gpt-4\",\"messages\":[{\"role\":\"user\","
	              "\"content\":\"hi\"}]}", &status);
	assert_int_equal(status, 404);
	const char *msg = str_of(get(v, "error", "message", NULL));
	assert_non_null(strstr(msg, "model 'gpt-4' is not served here"));
	assert_non_null(strstr(msg, "stories-0.26m, tiny-chat, px-healthy-text"));
	yajl_tree_free(v);
	v = chat_json(T.routes_port, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
	              &status);
	assert_int_equal(status, 400);
	yajl_tree_free(v);
	assert_true(metric(T.routes_port, "loopwarden_engine_requests_done_total{model=\"stories-0.26m\"}") >= 1);
	assert_true(metric(T.routes_port, "loopwarden_engine_requests_done_total{model=\"tiny-chat\"}") >= 1);
}

/* ---- --check-config ---- */

static int run_check(const char *const *args, char *out, size_t outlen)
{
	char cmd[2048];
	size_t k = (size_t)snprintf(cmd, sizeof(cmd), "'%s/loopwarden' --check-config", LW_BINARY_DIR);
	for (int i = 0; args[i]; i++)
		k += (size_t)snprintf(cmd + k, sizeof(cmd) - k, " '%s'", args[i]);
	snprintf(cmd + k, sizeof(cmd) - k, " 2>&1");
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, outlen - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* --check-config accepts a model instead of an upstream and refuses what
 * start-up refuses: a missing file, a file that is not GGUF, an
 * unsupported architecture, both an upstream and a model, a bad template
 * name. */
static void test_check_config(void **state)
{
	(void)state;
	char out[2048], bad[400], vocab_only[400];
	const char *ok[] = {"--model", MODEL, NULL};
	assert_int_equal(run_check(ok, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "model"));
	const char *missing[] = {"--model", "/nonexistent/m.gguf", NULL};
	assert_int_equal(run_check(missing, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "key 'engine.model'"));
	assert_non_null(strstr(out, "/nonexistent/m.gguf"));
	snprintf(bad, sizeof(bad), "%s/notgguf.gguf", T.dir);
	FILE *f = fopen(bad, "w");
	fputs("hello, not a model\n", f);
	fclose(f);
	const char *notgguf[] = {"--model", bad, NULL};
	assert_int_equal(run_check(notgguf, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "key 'engine.model'"));
	/* a vocabulary-only GGUF (architecture gpt2: no engine for it) */
	snprintf(vocab_only, sizeof(vocab_only), "%s", LW_SHARED_DIR "/vocab/ggml-vocab-gpt-2.gguf");
	const char *arch[] = {"--model", vocab_only, NULL};
	assert_int_equal(run_check(arch, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "is not supported"));
	const char *both[] = {"--model", MODEL, "--upstream", "http://127.0.0.1:9", NULL};
	assert_int_equal(run_check(both, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "proxy.upstream and engine.model are both set"));
	const char *tmpl[] = {"--model", MODEL, "--set", "engine.template=jinja", NULL};
	assert_int_equal(run_check(tmpl, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "engine.template"));
	/* routes: each names a model file or an upstream, checked like one */
	const char *routes_ok[] = {"-c", T.routes_yaml, NULL};
	assert_int_equal(run_check(routes_ok, out, sizeof(out)), 0);
	char cfg[400];
	snprintf(cfg, sizeof(cfg), "%s/badroute.yaml", T.dir);
	f = fopen(cfg, "w");
	fprintf(f, "routes:\n  good:\n    model: %s\n  broken:\n    model: %s\n", MODEL, bad);
	fclose(f);
	const char *badroute[] = {"-c", cfg, NULL};
	assert_int_equal(run_check(badroute, out, sizeof(out)), 2);
	if (!strstr(out, "badroute.yaml:5: key 'routes.broken.model'"))
		fail_msg("%s", out);
	const char *mixed[] = {"-c", T.routes_yaml, "--model", MODEL, NULL};
	assert_int_equal(run_check(mixed, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "routes and engine.model are both set"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bear_loop_cut),
		cmocka_unit_test(test_concurrent_exact),
		cmocka_unit_test(test_slow_client_and_disconnect),
		cmocka_unit_test(test_disconnect_mid_stream),
		cmocka_unit_test(test_slow_client_resumes),
		cmocka_unit_test(test_sampling_errors),
		cmocka_unit_test(test_nonstream_usage_stop),
		cmocka_unit_test(test_models_health),
		cmocka_unit_test(test_chatml_renders),
		cmocka_unit_test(test_damaged_model),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_write_timeout_cancels),
		cmocka_unit_test(test_check_config),
	};
	return cmocka_run_group_tests(tests, start_all, stop_all);
}
