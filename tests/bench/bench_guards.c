/* Guard cost: events/s and MB/s through the full pipeline (every guard on,
 * default config) on a long healthy answer: reasoning, content with prose,
 * code and tables, and tool calls whose arguments stream in fragments; and
 * the memory one answer holds (glibc's mallinfo2), for a few answer shapes.
 * The answer is generated once into memory before anything is timed, so the
 * figures are the guards' alone; each round feeds it to a fresh pipeline.
 * Prints one figure per line; not a test (no assertions on speed).
 * Only the public pipeline API is used, so this file also builds against an
 * older guards/ tree for side-by-side figures (docs/guards.md, "Cost").
 *
 * Usage: bench_guards [megabytes, default 8] [rounds, default 5]
 * Instruction counts (what to compare on a noisy machine):
 *   valgrind --tool=callgrind --toggle-collect=feed_all bench_guards 1 1 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guards/pipeline.h"
#include "guards/policy.h"

static const char *const words[] = {
	"the", "parser", "reads", "one", "header", "line", "at", "a", "time", "and",
	"keeps", "partial", "buffer", "until", "newline", "arrives", "from", "socket",
	"client", "server", "timeout", "retries", "cache", "entry", "expires", "after",
	"request", "response", "status", "code", "returns", "error", "when", "queue",
	"is", "full", "so", "caller", "backs", "off", "then", "tries", "again", "later",
	"config", "value", "default", "limit", "bytes", "per", "second", "thread",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))
static const char *const suffixes[] = { "", "s", "ed", "er", "ing", "ly", "ness", "able" };
#define N_SUFFIXES (sizeof(suffixes) / sizeof(suffixes[0]))

static uint32_t rng = 2463534242u;
static uint32_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

/* Appends a healthy token (1-8 bytes, like an upstream chunk) to <buf>. */
static size_t token(char *buf, int kind)
{
	uint32_t r = next();
	switch (kind) {
	case 0: /* prose, from a few hundred words (prose drawn from 52 words
	         * restates itself: the paraphrase watchdog trips on it) */
		return (size_t)sprintf(buf, "%s%s%s", r % 11 == 0 ? ".\n" : " ", words[r % N_WORDS],
		                       suffixes[(r >> 12) % N_SUFFIXES]);
	case 1: /* code */
		switch (r % 6) {
		case 0: return (size_t)sprintf(buf, "\n    ");
		case 1: return (size_t)sprintf(buf, "%s_%s", words[r % N_WORDS], words[(r >> 8) % N_WORDS]);
		case 2: return (size_t)sprintf(buf, "(");
		case 3: return (size_t)sprintf(buf, ");");
		case 4: return (size_t)sprintf(buf, " = %s", r % 3 ? words[(r >> 4) % N_WORDS] : "0");
		default: return (size_t)sprintf(buf, "\n}");
		}
	default: /* table */
		return (size_t)sprintf(buf, "| %s %u ", words[r % N_WORDS], (r >> 7) % 10000);
	}
}

/* A recorded answer: events whose data lie in one buffer. */
struct answer {
	struct gd_event *ev;
	size_t n, cap;
	char *data;
	size_t len, data_cap;
	size_t bytes, calls;
};

static void push(struct answer *a, const struct gd_event *ev, const char *data, size_t len)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 4096;
		a->ev = realloc(a->ev, a->cap * sizeof(*a->ev));
	}
	if (a->len + len + 1 > a->data_cap) {
		a->data_cap = a->data_cap ? 2 * a->data_cap + len : 1u << 20;
		a->data = realloc(a->data, a->data_cap);
	}
	if (!a->ev || !a->data) {
		fprintf(stderr, "bench_guards: out of memory\n");
		exit(1);
	}
	a->ev[a->n] = *ev;
	/* Offsets for now: pointers once the buffer stops moving. */
	a->ev[a->n].data = (const char *)(uintptr_t)a->len;
	a->ev[a->n].len = len;
	if (len)
		memcpy(a->data + a->len, data, len);
	a->len += len;
	a->n++;
	if (ev->type == GD_EV_TEXT || ev->type == GD_EV_REASONING || ev->type == GD_EV_TOOL_ARGS)
		a->bytes += len;
}

static void seal(struct answer *a)
{
	for (size_t i = 0; i < a->n; i++)
		a->ev[i].data = a->data + (uintptr_t)a->ev[i].data;
}

/* A call of <fragments> argument fragments of code. */
static void gen_call(struct answer *a, uint32_t index, int fragments)
{
	char tok[64], id[32];
	struct gd_event ev = { .prompt_tokens = -1, .completion_tokens = -1 };

	snprintf(id, sizeof(id), "call_%zu", a->calls++);
	ev.type = GD_EV_TOOL_BEGIN;
	ev.index = index;
	/* The id and the name are copied too: events point into the buffer. */
	push(a, &ev, NULL, 0);
	a->ev[a->n - 1].id = strdup(id);
	a->ev[a->n - 1].id_len = strlen(id);
	a->ev[a->n - 1].name = "write_file";
	a->ev[a->n - 1].name_len = 10;
	ev.type = GD_EV_TOOL_ARGS;
	push(a, &ev, tok, (size_t)sprintf(tok, "{\"path\":\"src/f%zu.c\",\"content\":\"", a->calls));
	for (int i = 0; i < fragments; i++) {
		size_t n = token(tok, 1);
		for (size_t k = 0; k < n; k++)
			if (tok[k] == '\n')
				tok[k] = ' ';
		push(a, &ev, tok, n);
	}
	push(a, &ev, "\"}", 2);
}

/* <tokens> tokens of reasoning (kind 0) or content (kind 0 prose, 1 code,
 * 2 table). */
static void gen_stream(struct answer *a, enum gd_event_type type, int kind, int tokens)
{
	char tok[64];
	struct gd_event ev = { .type = type, .prompt_tokens = -1, .completion_tokens = -1 };

	for (int i = 0; i < tokens; i++)
		push(a, &ev, tok, token(tok, kind));
}

/* The long healthy answer: phases of 400 tokens of reasoning or content,
 * and tool calls of ~100 fragments, until <target> bytes. */
static void gen_long(struct answer *a, size_t target)
{
	while (a->bytes < target) {
		uint32_t phase = next() % 10;
		if (phase < 3)
			gen_stream(a, GD_EV_REASONING, 0, 400);
		else if (phase < 8)
			gen_stream(a, GD_EV_TEXT, (int)(phase % 3), 400);
		else
			gen_call(a, (uint32_t)a->calls, 100);
	}
	seal(a);
}

static void answer_free(struct answer *a)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->ev[i].type == GD_EV_TOOL_BEGIN)
			free((char *)a->ev[i].id);
	free(a->ev);
	free(a->data);
	memset(a, 0, sizeof(*a));
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Feeds every event of <a> to <p>: the only code a callgrind run with
 * --toggle-collect=feed_all counts. Returns -1 when a guard tripped. */
__attribute__((noinline)) int feed_all(struct gd_pipeline *p, const struct answer *a);
__attribute__((noinline)) int feed_all(struct gd_pipeline *p, const struct answer *a)
{
	for (size_t i = 0; i < a->n; i++)
		if (gd_pipeline_feed(p, &a->ev[i]) == GD_TRIP)
			return -1;
	return 0;
}

/* Heap bytes in use (glibc: small chunks + mmapped ones). */
static long long heap_used(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
	struct mallinfo2 mi = mallinfo2();
	return (long long)(mi.uordblks + mi.hblkhd);
#else
	return -1;
#endif
}

static int tripped(struct gd_pipeline *p, const char *what)
{
	const struct gd_trip *t = gd_pipeline_trip(p);

	fprintf(stderr, "bench_guards: the healthy %s tripped %s (stream %d): %s\n", what,
	        t->guard, (int)t->stream, t->detail);
	return 1;
}

/* The memory one answer of shape <a> holds once fed (NULL: a new pipeline). */
static int memory(const char *name, const struct gd_policy *pol, const struct answer *a)
{
	long long before = heap_used();
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);

	if (!p)
		return 1;
	if (a && feed_all(p, a) != 0)
		return tripped(p, name);
	printf("bench_guards.memory.%s_bytes %lld\n", name, heap_used() - before);
	gd_pipeline_free(p);
	return 0;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

int main(int argc, char **argv)
{
	size_t target = (size_t)((argc > 1 ? atof(argv[1]) : 8.0) * (1u << 20));
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	struct gd_config cfg;
	char err[256];
	struct gd_policy *pol;
	struct answer big = { 0 }, text = { 0 }, turn = { 0 };
	double secs[64];
	int rc = 1;

	if (rounds < 1 || rounds > 64)
		rounds = 5;
	gd_config_defaults(&cfg);
	if (gd_config_set(&cfg, "guards.budget.max_output_bytes", "0", err, sizeof(err)) ||
	    gd_config_set(&cfg, "guards.budget.max_tool_calls", "0", err, sizeof(err)) ||
	    gd_config_set(&cfg, "guards.name_run.max_run", "100000", err, sizeof(err))) {
		fprintf(stderr, "bench_guards: %s\n", err);
		return 1;
	}
	pol = gd_policy_new(&cfg, err, sizeof(err));
	if (!pol) {
		fprintf(stderr, "bench_guards: %s\n", err);
		return 1;
	}
	gen_long(&big, target);
	/* Answer shapes for the memory figures: 2 KB of prose; an agent's turn
	 * (1 KB of reasoning, a sentence, two calls of ~300 bytes). */
	gen_stream(&text, GD_EV_TEXT, 0, 300);
	seal(&text);
	gen_stream(&turn, GD_EV_REASONING, 0, 150);
	gen_stream(&turn, GD_EV_TEXT, 0, 15);
	gen_call(&turn, 0, 40);
	gen_call(&turn, 1, 40);
	seal(&turn);
	if (memory("new", pol, NULL) || memory("text_2k", pol, &text) ||
	    memory("agent_turn", pol, &turn))
		goto out;
	printf("bench_guards.bytes %zu\n", big.bytes);
	printf("bench_guards.events %zu\n", big.n);
	printf("bench_guards.tool_calls %zu\n", big.calls);
	for (int r = 0; r < rounds; r++) {
		long long heap0 = heap_used();
		struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
		double t0;

		if (!p)
			goto out;
		t0 = now();
		if (feed_all(p, &big) != 0) {
			tripped(p, "answer");
			gd_pipeline_free(p);
			goto out;
		}
		secs[r] = now() - t0;
		if (r == 0) /* the memory the long answer holds at its end */
			printf("bench_guards.memory.long_bytes %lld\n", heap_used() - heap0);
		gd_pipeline_free(p);
		printf("bench_guards.round %d mb_per_s %.1f\n", r + 1,
		       (double)big.bytes / (1 << 20) / secs[r]);
	}
	qsort(secs, (size_t)rounds, sizeof(secs[0]), cmp_double);
	printf("bench_guards.seconds %.3f\n", secs[rounds / 2]);
	printf("bench_guards.events_per_s %.0f\n", (double)big.n / secs[rounds / 2]);
	printf("bench_guards.mb_per_s %.1f\n", (double)big.bytes / (1 << 20) / secs[rounds / 2]);
	rc = 0;
out:
	answer_free(&big);
	answer_free(&text);
	answer_free(&turn);
	gd_policy_free(pol);
	return rc;
}
