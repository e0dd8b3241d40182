/* `loopwarden generate`: load → tokenize → prefill → sample/decode loop,
 * streaming the text as it is produced. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/backend.h"
#include "engine/forward.h"
#include "engine/generate.h"
#include "engine/kv.h"
#include "engine/load.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

#define GEN_MAX_PREDICT 1000000
#define GEN_PIECE_CAP 256

struct gen_opts {
	const char *model, *prompt;
	int n_predict, threads, ctx, ids, bench;
	enum eng_load_strategy load;
	struct eng_sampler_params sp;
	int seed_given;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: loopwarden generate -m MODEL.gguf -p PROMPT [options]\n"
		"  -n N                tokens to generate (default 64)\n"
		"  --temp T            temperature; 0 = greedy (default 0.8)\n"
		"  --top-k K           (default 40; 0 = off)\n"
		"  --top-p P           (default 0.95; 1 = off)\n"
		"  --min-p P           (default 0.05; 0 = off)\n"
		"  --repeat-penalty R  (default 1 = off), over --repeat-last-n N (64)\n"
		"  --seed S            sampler seed (default: from the clock)\n"
		"  -t, --threads T     compute threads (default: online CPUs, at most 8)\n"
		"  -c, --ctx N         context size (default: prompt + N, within the model's)\n"
		"  --ids               also print the prompt and generated token ids\n"
		"  --bench             also print prompt and generation tokens/s\n"
		"  --load mmap|read    how the file is loaded (default mmap)\n"
		"environment: LW_ENGINE_KERNELS=scalar|avx2|avx512 forces a kernel set\n");
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int parse_float(const char *s, float lo, float hi, float *out)
{
	char *end;
	errno = 0;
	float v = strtof(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

static int parse_args(int argc, char **argv, struct gen_opts *o)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	o->n_predict = 64;
	o->threads = cpus < 1 ? 1 : cpus > 8 ? 8 : (int)cpus;
	o->load = ENG_LOAD_MMAP;
	o->sp = eng_sampler_defaults();
	o->sp.temp = 0.8f;
	o->sp.top_k = 40;
	o->sp.top_p = 0.95f;
	o->sp.min_p = 0.05f;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 0, takes = 1;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "--ids")) {
			o->ids = 1;
			takes = 0;
		} else if (!strcmp(a, "--bench")) {
			o->bench = 1;
			takes = 0;
		} else if (!v) {
			fprintf(stderr, "loopwarden generate: %s needs a value\n", a);
			return -1;
		} else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
			o->model = v;
		} else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
			o->prompt = v;
		} else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
			bad = parse_int(v, 0, GEN_MAX_PREDICT, &o->n_predict);
		} else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
			bad = parse_int(v, 1, 256, &o->threads);
		} else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
			bad = parse_int(v, 1, ENG_MODEL_MAX_CTX, &o->ctx);
		} else if (!strcmp(a, "--temp")) {
			bad = parse_float(v, 0, 100, &o->sp.temp);
		} else if (!strcmp(a, "--top-k")) {
			bad = parse_int(v, 0, 1 << 24, &o->sp.top_k);
		} else if (!strcmp(a, "--top-p")) {
			bad = parse_float(v, 0, 1, &o->sp.top_p);
		} else if (!strcmp(a, "--min-p")) {
			bad = parse_float(v, 0, 1, &o->sp.min_p);
		} else if (!strcmp(a, "--repeat-penalty")) {
			bad = parse_float(v, 0.01f, 100, &o->sp.repeat_penalty);
		} else if (!strcmp(a, "--repeat-last-n")) {
			bad = parse_int(v, 0, ENG_SAMPLER_MAX_LAST_N, &o->sp.repeat_last_n);
		} else if (!strcmp(a, "--seed")) {
			char *end;
			errno = 0;
			o->sp.seed = strtoull(v, &end, 10);
			bad = errno || end == v || *end;
			o->seed_given = 1;
		} else if (!strcmp(a, "--load")) {
			bad = eng_load_strategy_parse(v, &o->load) != ENG_OK;
		} else {
			fprintf(stderr, "loopwarden generate: unknown option %s\n", a);
			return -1;
		}
		if (bad) {
			fprintf(stderr, "loopwarden generate: bad value for %s: '%s'\n", a, v);
			return -1;
		}
		i += takes;
	}
	if (!o->model || !o->prompt) {
		fprintf(stderr, "loopwarden generate: -m MODEL and -p PROMPT are required\n");
		return -1;
	}
	if (!o->seed_given)
		o->sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void print_ids(const char *label, const int32_t *ids, int n)
{
	printf("%s:", label);
	for (int i = 0; i < n; i++)
		printf(" %d", ids[i]);
	printf("\n");
}

int eng_generate_main(int argc, char **argv)
{
	struct gen_opts o = {0};
	char err[512] = "";
	int rc = 2, n_prompt = 0, n_gen = 0;
	struct eng_file *f = NULL;
	struct eng_tok *tok = NULL;
	struct eng_model *m = NULL;
	struct eng_kv *kv = NULL;
	struct eng_compute *cmp = NULL;
	struct eng_seq seq = {0};
	struct eng_sampler *s = NULL;
	int32_t *ids = NULL;
	float *work = NULL;
	char *out = NULL;
	enum eng_status st;

	if (parse_args(argc, argv, &o) != 0) {
		usage(stderr);
		return 2;
	}
	double t0 = now_s();
	if ((st = eng_file_open(NULL, o.model, o.load, &f, err, sizeof(err))) != ENG_OK) {
		fprintf(stderr, "loopwarden generate: %s\n", err);
		goto out;
	}
	const struct eng_gguf *g = eng_file_gguf(f);
	if ((st = eng_tok_new_from_gguf(g, &tok, err, sizeof(err))) != ENG_OK) {
		fprintf(stderr, "loopwarden generate: %s: tokenizer: %s\n", o.model, err);
		goto out;
	}
	size_t plen = strlen(o.prompt), bound = eng_tok_encode_bound(tok, plen);
	ids = malloc((bound + (size_t)o.n_predict + 1) * sizeof(int32_t));
	if (!ids) {
		fprintf(stderr, "loopwarden generate: out of memory\n");
		goto out;
	}
	n_prompt = eng_tok_encode(tok, o.prompt, plen, true, true, ids, bound);
	if (n_prompt < 0) {
		fprintf(stderr, "loopwarden generate: cannot tokenize the prompt: %s\n",
			eng_strerror(n_prompt));
		goto out;
	}
	if (n_prompt == 0) {
		fprintf(stderr, "loopwarden generate: the prompt is empty and the vocabulary adds no BOS\n");
		goto out;
	}
	struct eng_model_opts mo = {.release_source = o.load == ENG_LOAD_MMAP};
	if ((st = eng_model_new(g, &mo, &m, err, sizeof(err))) != ENG_OK) {
		fprintf(stderr, "loopwarden generate: %s: %s\n", o.model, err);
		goto out;
	}
	const struct eng_hparams *hp = eng_model_hparams(m);
	int n_ctx = o.ctx ? o.ctx : n_prompt + o.n_predict;
	if (o.ctx == 0 && n_ctx > hp->n_ctx_train)
		fprintf(stderr, "loopwarden generate: warning: %d positions exceed the model's "
			"training context of %d\n", n_ctx, hp->n_ctx_train);
	if (n_prompt + o.n_predict > n_ctx) {
		fprintf(stderr, "loopwarden generate: prompt (%d tokens) + %d new tokens exceed the "
			"context of %d\n", n_prompt, o.n_predict, n_ctx);
		goto out;
	}
	struct eng_compute_opts co = {.n_threads = o.threads, .max_ctx = n_ctx};
	if ((st = eng_kv_new(m, n_ctx, &kv, err, sizeof(err))) != ENG_OK ||
	    (st = eng_kv_reserve(kv, n_ctx, &seq)) != ENG_OK ||
	    (st = eng_compute_new(m, &co, &cmp, err, sizeof(err))) != ENG_OK) {
		fprintf(stderr, "loopwarden generate: %s: %s\n", o.model,
			st == ENG_ERR_NOMEM || !*err ? eng_strerror(st) : err);
		goto out;
	}
	if ((uint32_t)hp->n_vocab < eng_tok_n_vocab(tok)) {
		fprintf(stderr, "loopwarden generate: %s: the vocabulary has %u tokens but the "
			"model only %d\n", o.model, eng_tok_n_vocab(tok), hp->n_vocab);
		goto out;
	}
	s = eng_sampler_new(&o.sp, hp->n_vocab);
	work = malloc((size_t)hp->n_vocab * sizeof(float));
	size_t out_cap = eng_tok_decoder_out_max(tok);
	out = malloc(out_cap + 1);
	if (!s || !work || !out) {
		fprintf(stderr, "loopwarden generate: out of memory\n");
		goto out;
	}
	double t_load = now_s() - t0;

	fputs(o.prompt, stdout);
	fflush(stdout);
	for (int i = 0; i < n_prompt; i++)
		eng_sampler_accept(s, ids[i]);
	struct eng_tok_decoder dec;
	eng_tok_decoder_init(&dec, tok, 0);
	const float *logits;
	double t1 = now_s();
	/* The file may be truncated or rewritten under us (engine/load.h): a
	 * result computed since is garbage, so each one is checked before use. */
	if ((st = eng_forward_seq(cmp, kv, &seq, ids, n_prompt, 0, &logits, err, sizeof(err))) != ENG_OK ||
	    (st = eng_file_check(f, err, sizeof(err))) != ENG_OK) {
		fprintf(stderr, "\nloopwarden generate: %s\n", err);
		goto out;
	}
	double t_prompt = now_s() - t1, t_gen = 0;
	int pos = n_prompt;
	for (n_gen = 0; n_gen < o.n_predict; n_gen++) {
		memcpy(work, logits, (size_t)hp->n_vocab * sizeof(float));
		int32_t id = eng_sampler_sample(s, work);
		eng_sampler_accept(s, id);
		ids[n_prompt + n_gen] = id;
		if (eng_tok_is_eog(tok, id)) {
			n_gen++;
			break;
		}
		int w = eng_tok_decoder_push(&dec, id, out, out_cap);
		if (w > 0) {
			fwrite(out, 1, (size_t)w, stdout);
			fflush(stdout);
		}
		if (n_gen + 1 == o.n_predict) {
			n_gen++;
			break;
		}
		double t2 = now_s();
		if ((st = eng_forward_seq(cmp, kv, &seq, &id, 1, pos++, &logits, err, sizeof(err))) != ENG_OK ||
		    (st = eng_file_check(f, err, sizeof(err))) != ENG_OK) {
			fprintf(stderr, "\nloopwarden generate: %s\n", err);
			goto out;
		}
		t_gen += now_s() - t2;
	}
	int w = eng_tok_decoder_flush(&dec, out, out_cap);
	if (w > 0)
		fwrite(out, 1, (size_t)w, stdout);
	printf("\n");
	if (o.ids) {
		print_ids("prompt ids", ids, n_prompt);
		print_ids("gen ids", ids + n_prompt, n_gen);
	}
	if (o.bench) {
		int n_dec = n_gen > 1 ? n_gen - 1 : 0;
		printf("bench: model %s, backend %s, threads %d, load %s (%.3f s)\n", o.model,
		       eng_backend_name(eng_model_backend(m)), o.threads, eng_load_strategy_name(o.load), t_load);
		printf("bench: prompt %d tokens in %.4f s = %.2f tok/s\n", n_prompt, t_prompt,
		       t_prompt > 0 ? n_prompt / t_prompt : 0.0);
		printf("bench: gen %d tokens in %.4f s = %.2f tok/s\n", n_dec, t_gen,
		       t_gen > 0 ? n_dec / t_gen : 0.0);
	}
	fflush(stdout);
	rc = 0;
out:
	free(out);
	free(work);
	eng_sampler_free(s);
	eng_compute_free(cmp);
	eng_kv_free(kv);
	eng_model_free(m);
	eng_tok_free(tok);
	free(ids);
	if (f && eng_file_close(f, err, sizeof(err)) != ENG_OK) {
		fprintf(stderr, "loopwarden generate: %s\n", err);
		rc = 2;
	}
	return rc;
}
