/* Aggregate generation throughput through the scheduler (engine/sched.h):
 * N concurrent streams (each its own request and consumer queue, all
 * decoding in shared steps), for each N of --streams. Prints one line per
 * N: tokens generated, wall time, aggregate tokens/s (all tokens over
 * submit → last final event), that per stream, and the scheduler's steps
 * and decode tokens per step (how full the batches were). Not a test: no
 * assertions on speed.
 *
 *   bench_sched -m MODEL.gguf [-t THREADS] [--streams "1 2 4 8"] [-n TOKENS]
 *               [-p PROMPT_TOKENS] [--reps R] [--step-tokens N]
 *
 * Prompts are distinct synthetic id sequences (no tokenizer needed), the
 * sampling greedy; a stream ends only at -n tokens (no tokenizer: no
 * end-of-generation id), so every N generates the same work per stream. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/backend.h"
#include "engine/load.h"
#include "engine/model.h"
#include "engine/sched.h"

#define MAX_STREAMS 64

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static unsigned long wakes;

static void on_notify(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	wakes++;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
}

/* The scheduler waits here after its first step (the first stream's
 * prefill) until every stream is submitted, so the others all join at the
 * second step instead of one by one while they are being submitted. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;

static int gate(void *arg, char *msg, size_t len)
{
	(void)arg;
	(void)msg;
	(void)len;
	pthread_mutex_lock(&gate_mu);
	while (!gate_open)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
	return 0;
}

static void set_gate(int open)
{
	pthread_mutex_lock(&gate_mu);
	gate_open = open;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

struct run {
	double wall, cpu; /* seconds: elapsed, and CPU time of the whole process */
	long tokens;
	uint64_t steps, decode_tokens; /* the scheduler's figures */
};

static int run_once(const struct eng_model *m, int threads, int n, int n_gen, int n_prompt,
		    int step_tokens, int n_vocab, struct run *out)
{
	char err[256] = "";
	struct eng_sched_opts so = {
		.n_threads = threads, .n_ctx = n_prompt + n_gen + 1, .max_seqs = n,
		.max_step_tokens = step_tokens, .health = gate,
	};
	struct eng_sched *s = NULL;
	if (eng_sched_new(m, &so, &s, err, sizeof(err)) != ENG_OK) {
		fprintf(stderr, "bench_sched: %s\n", err);
		return -1;
	}
	struct eng_req *r[MAX_STREAMS];
	int got[MAX_STREAMS] = {0}, done[MAX_STREAMS] = {0};
	int32_t *prompt = malloc((size_t)n_prompt * sizeof(int32_t));
	set_gate(0);
	double t0 = now_s(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < n_prompt; j++)
			prompt[j] = (int32_t)(1 + ((unsigned)(i * 7919 + j * 104729) % (unsigned)(n_vocab - 1)));
		struct eng_req_opts ro = {
			.prompt = prompt, .n_prompt = n_prompt, .sampling = eng_sampler_defaults(),
			.max_tokens = n_gen, .max_events = 256, .notify = on_notify,
		};
		if (eng_sched_submit(s, &ro, &r[i], err, sizeof(err)) != ENG_OK) {
			fprintf(stderr, "bench_sched: submit: %s\n", err);
			return -1;
		}
	}
	free(prompt);
	set_gate(1);
	for (int left = n; left > 0;) {
		pthread_mutex_lock(&mu);
		unsigned long seen = wakes;
		pthread_mutex_unlock(&mu);
		for (int i = 0; i < n; i++) {
			const struct eng_event *ev;
			while (!done[i] && (ev = eng_req_peek(r[i]))) {
				if (ev->finish == ENG_FINISH_NONE) {
					got[i]++;
				} else {
					done[i] = 1;
					left--;
					if (ev->finish != ENG_FINISH_LENGTH)
						fprintf(stderr, "bench_sched: stream %d ended %s %s\n", i,
							eng_finish_name(ev->finish), ev->message);
				}
				eng_req_consume(r[i]);
			}
		}
		if (left == 0)
			break;
		pthread_mutex_lock(&mu);
		while (wakes == seen)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
	}
	double t_end = now_s();
	out->cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
	out->tokens = 0;
	for (int i = 0; i < n; i++) {
		out->tokens += got[i];
		eng_req_free(r[i]);
	}
	out->wall = t_end - t0;
	struct eng_sched_stats st;
	eng_sched_stats(s, &st);
	out->steps = st.steps;
	out->decode_tokens = st.tokens_decode;
	eng_sched_free(s);
	return 0;
}

static int parse_list(const char *s, int *v, int cap)
{
	int n = 0;
	while (*s && n < cap) {
		char *end;
		long x = strtol(s, &end, 10);
		if (end == s)
			return -1;
		if (x < 1 || x > MAX_STREAMS)
			return -1;
		v[n++] = (int)x;
		s = end;
		while (*s == ' ' || *s == ',')
			s++;
	}
	return n;
}

int main(int argc, char **argv)
{
	const char *path = NULL, *streams = "1 2 4 8";
	int threads = 1, n_gen = 128, n_prompt = 16, reps = 1, step_tokens = 0;
	for (int i = 1; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			fprintf(stderr, "bench_sched: %s needs a value\n", a);
			return 2;
		}
		if (!strcmp(a, "-m"))
			path = v;
		else if (!strcmp(a, "-t"))
			threads = atoi(v);
		else if (!strcmp(a, "--streams"))
			streams = v;
		else if (!strcmp(a, "-n"))
			n_gen = atoi(v);
		else if (!strcmp(a, "-p"))
			n_prompt = atoi(v);
		else if (!strcmp(a, "--reps"))
			reps = atoi(v);
		else if (!strcmp(a, "--step-tokens"))
			step_tokens = atoi(v);
		else {
			fprintf(stderr, "bench_sched: unknown option %s\n", a);
			return 2;
		}
	}
	int ns[16], nn = parse_list(streams, ns, 16);
	if (!path || nn < 1 || threads < 1 || n_gen < 2 || n_prompt < 1 || reps < 1) {
		fprintf(stderr, "usage: bench_sched -m MODEL.gguf [-t THREADS] [--streams \"1 2 4 8\"] "
				"[-n TOKENS] [-p PROMPT_TOKENS] [--reps R] [--step-tokens N]\n");
		return 2;
	}
	char err[512] = "";
	struct eng_file *f = NULL;
	struct eng_model *m = NULL;
	struct eng_model_opts mo = {.release_source = 1};
	if (eng_file_open(NULL, path, ENG_LOAD_MMAP, &f, err, sizeof(err)) != ENG_OK ||
	    eng_model_new(eng_file_gguf(f), &mo, &m, err, sizeof(err)) != ENG_OK) {
		fprintf(stderr, "bench_sched: %s: %s\n", path, err);
		return 2;
	}
	int n_vocab = eng_model_hparams(m)->n_vocab;
	printf("bench_sched: model %s, backend %s, threads %d, prompt %d, gen %d per stream, "
	       "best of %d\n", path, eng_backend_name(eng_model_backend(m)), threads, n_prompt, n_gen,
	       reps);
	printf("%7s %8s %8s %10s %11s %7s %10s %8s %10s\n", "streams", "tokens", "wall_s", "agg_tps",
	       "stream_tps", "steps", "dec/step", "cpu_s", "tok/cpu_s");
	for (int k = 0; k < nn; k++) {
		struct run best = {0};
		for (int rep = 0; rep < reps; rep++) {
			struct run rr;
			if (run_once(m, threads, ns[k], n_gen, n_prompt, step_tokens, n_vocab, &rr) != 0)
				return 1;
			if (rep == 0 || rr.tokens / rr.wall > best.tokens / best.wall)
				best = rr;
		}
		printf("%7d %8ld %8.3f %10.1f %11.1f %7llu %10.2f %8.3f %10.1f\n", ns[k], best.tokens,
		       best.wall, best.tokens / best.wall, best.tokens / best.wall / ns[k],
		       (unsigned long long)best.steps,
		       best.steps ? (double)best.decode_tokens / (double)best.steps : 0.0, best.cpu,
		       best.cpu > 0 ? best.tokens / best.cpu : 0.0);
		fflush(stdout);
	}
	printf("(agg_tps: every generated token over submit to the last final event, prefill "
	       "included; stream_tps = agg_tps / streams; dec/step: decode tokens per forward "
	       "step; cpu_s: CPU time of the process (every thread, spinning included), "
	       "tok/cpu_s: tokens per CPU second, the figure to read on a busy machine; best of "
	       "%d by agg_tps)\n", reps);
	eng_model_free(m);
	if (eng_file_close(f, err, sizeof(err)) != ENG_OK)
		fprintf(stderr, "bench_sched: %s\n", err);
	return 0;
}
