/* Guard cost: events/s and MB/s through the full pipeline (every guard on,
 * default config) on a long healthy answer: reasoning, content with prose,
 * code and tables, and tool calls whose arguments stream in fragments.
 * The generator's own cost is measured in a first pass and subtracted.
 * Prints one figure per line; not a test (no assertions on speed).
 * Usage: bench_guards [megabytes, default 8] */
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

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Streams a healthy answer of <target> bytes into <p> (NULL: generate only).
 * Returns -1 when a guard tripped. */
static int run(struct gd_pipeline *p, size_t target, size_t *bytes_out, size_t *events_out,
               size_t *calls_out)
{
	char tok[64];
	size_t bytes = 0, events = 0, calls = 0;

	while (bytes < target) {
		uint32_t phase = next() % 10;
		struct gd_event ev = { .prompt_tokens = -1, .completion_tokens = -1 };
		if (phase < 8) {
			/* 400 tokens of reasoning or content. */
			ev.type = phase < 3 ? GD_EV_REASONING : GD_EV_TEXT;
			int kind = phase < 3 ? 0 : (int)(phase % 3);
			for (int i = 0; i < 400; i++) {
				ev.data = tok;
				ev.len = token(tok, kind);
				if (p && gd_pipeline_feed(p, &ev) == GD_TRIP)
					return -1;
				bytes += ev.len;
				events++;
			}
		} else {
			/* A tool call with ~100 argument fragments. */
			char id[32];
			snprintf(id, sizeof(id), "call_%zu", calls++);
			ev.type = GD_EV_TOOL_BEGIN;
			ev.index = (uint32_t)calls;
			ev.id = id;
			ev.id_len = strlen(id);
			ev.name = "write_file";
			ev.name_len = 10;
			if (p && gd_pipeline_feed(p, &ev) == GD_TRIP)
				return -1;
			events++;
			ev.type = GD_EV_TOOL_ARGS;
			ev.id = NULL;
			ev.id_len = 0;
			ev.data = tok;
			ev.len = (size_t)sprintf(tok, "{\"path\":\"src/f%zu.c\",\"content\":\"", calls);
			for (int i = 0; i <= 100; i++) {
				if (i == 100) {
					ev.len = 2;
					memcpy(tok, "\"}", 2);
				} else if (i > 0) {
					ev.len = token(tok, 1);
					for (size_t k = 0; k < ev.len; k++)
						if (tok[k] == '\n')
							tok[k] = ' ';
				}
				if (p && gd_pipeline_feed(p, &ev) == GD_TRIP)
					return -1;
				bytes += ev.len;
				events++;
			}
		}
	}
	*bytes_out = bytes;
	*events_out = events;
	*calls_out = calls;
	return 0;
}

int main(int argc, char **argv)
{
	size_t target = (size_t)(argc > 1 ? atof(argv[1]) : 8.0) * (1u << 20);
	struct gd_config cfg;
	char err[256];
	struct gd_policy *pol;
	struct gd_pipeline *p;
	size_t bytes = 0, events = 0, calls = 0;
	double t0, t1;

	gd_config_defaults(&cfg);
	if (gd_config_set(&cfg, "guards.budget.max_output_bytes", "0", err, sizeof(err)) ||
	    gd_config_set(&cfg, "guards.budget.max_tool_calls", "0", err, sizeof(err)) ||
	    gd_config_set(&cfg, "guards.name_run.max_run", "100000", err, sizeof(err))) {
		fprintf(stderr, "bench_guards: %s\n", err);
		return 1;
	}
	pol = gd_policy_new(&cfg, err, sizeof(err));
	if (!pol || !(p = gd_pipeline_new(pol, NULL))) {
		fprintf(stderr, "bench_guards: %s\n", pol ? "out of memory" : err);
		return 1;
	}
	/* Pass 1 generates the answer without the guards (the generator's own
	 * cost); pass 2 feeds it: the figures are for the guards alone. */
	t0 = now();
	if (run(NULL, target, &bytes, &events, &calls) != 0)
		goto tripped;
	double gen = now() - t0;
	rng = 2463534242u;
	t0 = now();
	if (run(p, target, &bytes, &events, &calls) != 0)
		goto tripped;
	t1 = now() - gen;
	printf("bench_guards.bytes %zu\n", bytes);
	printf("bench_guards.events %zu\n", events);
	printf("bench_guards.tool_calls %zu\n", calls);
	printf("bench_guards.seconds %.3f\n", t1 - t0);
	printf("bench_guards.events_per_s %.0f\n", (double)events / (t1 - t0));
	printf("bench_guards.mb_per_s %.1f\n", (double)bytes / (1 << 20) / (t1 - t0));
	gd_pipeline_free(p);
	gd_policy_free(pol);
	return 0;
tripped:
	fprintf(stderr, "bench_guards: the healthy answer tripped %s (stream %d): %s\n",
	        gd_pipeline_trip(p)->guard, (int)gd_pipeline_trip(p)->stream,
	        gd_pipeline_trip(p)->detail);
	gd_pipeline_free(p);
	gd_policy_free(pol);
	return 1;
}
