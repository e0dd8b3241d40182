/* The optimized model against the scalar reference (tests/ref) on generated
 * llama / qwen2 / qwen3 models in every weight type: logits within a
 * per-type tolerance at every step, greedy ids identical (64 steps for F32,
 * F16, BF16), for every kernel variant the CPU has, 1 and 2 threads,
 * batched prefill; plus the load → tokenize → forward → sample path with
 * real vocabularies and the errors for unsupported files. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/gguf_write.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "tests/ref/ref.h"
#include "tests/unit/eng_test_util.h"
#include "tests/tools/genmodel.h"

#define N_PROMPT 7
#define MAX_OPT 4

struct gen {
	void *buf;
	size_t len;
	struct eng_gguf *g;
};

static void gen_mem(const struct gm_spec *s, struct gen *out)
{
	char err[256] = "";
	struct gm_model *gm = NULL;
	if (gm_new(s, &gm, err, sizeof(err)) != ENG_OK)
		fail_msg("gm_new: %s", err);
	if (gm_write_mem(gm, &out->buf, &out->len, err, sizeof(err)) != ENG_OK)
		fail_msg("gm_write_mem: %s", err);
	gm_free(gm);
	if (eng_gguf_parse(out->buf, out->len, &out->g, err, sizeof(err)) != ENG_OK)
		fail_msg("parse: %s", err);
}

static void gen_free(struct gen *g)
{
	eng_gguf_free(g->g);
	free(g->buf);
}

static int argmax(const float *l, int n, float *margin)
{
	int b = 0, s = -1;
	for (int i = 1; i < n; i++)
		if (l[i] > l[b]) {
			s = b;
			b = i;
		} else if (s < 0 || l[i] > l[s]) {
			s = i;
		}
	*margin = l[b] - l[s];
	return b;
}

/* ||a - b|| / ||b|| */
static double rel_err(const float *a, const float *b, int n)
{
	double d = 0, r = 0;
	for (int i = 0; i < n; i++) {
		d += (double)(a[i] - b[i]) * (a[i] - b[i]);
		r += (double)b[i] * b[i];
	}
	return sqrt(d / (r > 0 ? r : 1));
}

static double tolerance(enum eng_type t)
{
	switch ((int)t) {
	case ENG_TYPE_F32: case ENG_TYPE_F16: case ENG_TYPE_BF16: return 2e-5;
	/* quantized types are dotted with 8-bit activations (as llama.cpp
	 * does): ~0.5% error per matmul, accumulated over the layers. The
	 * reference uses the same dequantized weights in float. Observed
	 * worst cases: Q8_0 1.9%, Q4_0 1.8%, Q4_K 2.9%, Q6_K 2.7%. */
	case ENG_TYPE_Q8_0: case ENG_TYPE_Q4_0: return 0.04;
	default: return 0.06; /* Q4_K, Q6_K: one activation scale per 256 */
	}
}

static void compare(const char *arch, enum eng_type type, int steps)
{
	struct gm_spec s;
	int kq = type == ENG_TYPE_Q4_K || type == ENG_TYPE_Q6_K;
	assert_int_equal(gm_preset(kq ? "tiny256" : "tiny", &s), 0);
	s.arch = arch;
	s.type = type;
	s.tied = strcmp(arch, "llama") != 0;
	s.seed = 1000 + (uint64_t)type;
	struct gen g;
	gen_mem(&s, &g);
	char err[256] = "";
	struct ref_model *ref = ref_model_new(g.g, N_PROMPT + steps + 1, err, sizeof(err));
	if (!ref)
		fail_msg("ref: %s", err);
	int nv = ref_model_n_vocab(ref);

	/* optimized models: every variant at 1 thread, and the best at 2 */
	struct eng_one opt[MAX_OPT];
	const char *what[MAX_OPT];
	int n_opt = 0, n_ctx = N_PROMPT + steps + 1;
	for (int v = 0; v < ENG_KERNELS_COUNT; v++) {
		const struct eng_kernels *k = eng_kernels_variant((enum eng_kernel_id)v);
		if (!k)
			continue;
		eng_one_open(&opt[n_opt], g.g, k, n_ctx, 1, 0);
		what[n_opt++] = k->name;
	}
	eng_one_open(&opt[n_opt], g.g, NULL, n_ctx, 2, 4);
	what[n_opt++] = "2 threads, batch 4";

	float *rl = malloc((size_t)nv * sizeof(float));
	int32_t toks[N_PROMPT + 80];
	for (int i = 0; i < N_PROMPT; i++)
		toks[i] = (int32_t)((i * 37 + 11) % nv);
	for (int i = 0; i < N_PROMPT; i++)
		ref_model_eval(ref, toks[i], i, rl);
	const float *ol[MAX_OPT];
	for (int j = 0; j < n_opt; j++)
		assert_int_equal(eng_one_eval(&opt[j], toks, N_PROMPT, 0, &ol[j], err, sizeof(err)), ENG_OK);
	int exact = type == ENG_TYPE_F32 || type == ENG_TYPE_F16 || type == ENG_TYPE_BF16;
	double worst = 0;
	for (int step = 0; step < steps; step++) {
		float margin, om;
		int want = argmax(rl, nv, &margin);
		for (int j = 0; j < n_opt; j++) {
			double e = rel_err(ol[j], rl, nv);
			worst = e > worst ? e : worst;
			if (e > tolerance(type))
				fail_msg("%s %s (%s) step %d: logits off by %.3g (tolerance %.3g)", arch,
					 eng_qtype_name(type), what[j], step, e, tolerance(type));
			int got = argmax(ol[j], nv, &om);
			/* greedy ids must agree unless the reference itself is a near-tie */
			if (exact && margin > 1e-3f && got != want)
				fail_msg("%s %s (%s) step %d: greedy %d, reference %d (margin %g)", arch,
					 eng_qtype_name(type), what[j], step, got, want, (double)margin);
		}
		/* teacher forcing: everyone continues with the reference's token */
		int32_t t = want;
		ref_model_eval(ref, t, N_PROMPT + step, rl);
		for (int j = 0; j < n_opt; j++)
			assert_int_equal(eng_one_eval(&opt[j], &t, 1, N_PROMPT + step, &ol[j], err,
						      sizeof(err)), ENG_OK);
	}
	print_message("%-5s %-4s worst relative logit error %.2e over %d steps\n", arch,
		      eng_qtype_name(type), worst, steps);
	free(rl);
	for (int j = 0; j < n_opt; j++)
		eng_one_close(&opt[j]);
	ref_model_free(ref);
	gen_free(&g);
}

static const enum eng_type all_types[] = {
	ENG_TYPE_F32, ENG_TYPE_F16, ENG_TYPE_BF16, ENG_TYPE_Q8_0,
	ENG_TYPE_Q4_0, ENG_TYPE_Q4_K, ENG_TYPE_Q6_K,
};

static void run_arch(const char *arch)
{
	for (size_t i = 0; i < sizeof(all_types) / sizeof(all_types[0]); i++) {
		enum eng_type t = all_types[i];
		int exact = t == ENG_TYPE_F32 || t == ENG_TYPE_F16 || t == ENG_TYPE_BF16;
		compare(arch, t, exact ? 64 : 12);
	}
}

/* Batched against alone: where a step's matmul runs the packed kernels
 * (Q8_0, Q4_0, Q4_K, Q6_K on AVX-512; Q8_0, Q4_0, Q4_K on AVX2) or the
 * scalar ones, every token's sums are formed in the same order whatever
 * the batch, and the logits are bit-identical (observed: 0). The
 * file-layout register tiles (F32/F16/BF16, AVX2 Q6_K) sum a token of a
 * full tile in another order than the per-row dot a lone decode token
 * gets: float weights differ by rounding (observed <= 7e-7), and for a
 * quantized type a rounding difference can move an 8-bit activation by
 * one step (AVX2 Q6_K observed 0.9%). */
static double batch_tolerance(enum eng_type t)
{
	return t == ENG_TYPE_F32 || t == ENG_TYPE_F16 || t == ENG_TYPE_BF16 ? 1e-5 : 2e-2;
}

/* Several sequences in shared steps (prefill chunks and decode tokens
 * mixed, sequences joining late) against each sequence alone, for every
 * weight type and kernel variant: greedy ids identical (up to a near-tie
 * of the lone run, margin < 1e-3), logits within batch_tolerance (issue
 * 13: batched decode across sequences). */
static void batched_vs_alone(const char *arch, enum eng_type type)
{
	struct gm_spec s;
	int kq = type == ENG_TYPE_Q4_K || type == ENG_TYPE_Q6_K;
	assert_int_equal(gm_preset(kq ? "tiny256" : "tiny", &s), 0);
	s.arch = arch;
	s.type = type;
	s.tied = strcmp(arch, "llama") != 0;
	s.seed = 2000 + (uint64_t)type;
	struct gen g;
	gen_mem(&s, &g);
	static int32_t prompts[5][16];
	struct eb_case c = {.n_seq = 5, .n_gen = 24, .chunk = 4};
	const int lens[5] = {3, 11, 1, 7, 16}, starts[5] = {0, 0, 2, 3, 7};
	for (int i = 0; i < c.n_seq; i++) {
		for (int j = 0; j < lens[i]; j++)
			prompts[i][j] = (int32_t)((i * 131 + j * 37 + 5) % s.n_vocab);
		c.prompt[i] = prompts[i];
		c.n_prompt[i] = lens[i];
		c.start[i] = starts[i];
	}
	for (int v = 0; v <= ENG_KERNELS_COUNT; v++) {
		const struct eng_kernels *k = v < ENG_KERNELS_COUNT ? eng_kernels_variant((enum eng_kernel_id)v)
								    : NULL;
		if (v < ENG_KERNELS_COUNT && !k)
			continue;
		int threads = v < ENG_KERNELS_COUNT ? 1 : 2;
		struct eng_one one;
		eng_one_open(&one, g.g, k, 16 + c.n_gen, threads, 0);
		struct eb_result alone, bat;
		eb_alone(&one, &c, &alone);
		eb_batched(one.m, &c, threads, &bat);
		char what[96];
		snprintf(what, sizeof(what), "%s %s %s, %d thread(s)", arch, eng_qtype_name(type),
			 eng_backend_name(one.be), threads);
		int n;
		double worst = eb_compare(&c, &alone, &bat, eng_model_hparams(one.m)->n_vocab,
					  batch_tolerance(type), 1e-3f, what, &n);
		print_message("%s: %d ids identical, worst relative logit difference %.2e\n", what, n,
			      worst);
		assert_true(n >= c.n_seq * c.n_gen / 2);
		eb_result_free(&alone, c.n_seq);
		eb_result_free(&bat, c.n_seq);
		eng_one_close(&one);
	}
	gen_free(&g);
}

static void test_batched_equals_alone_every_type(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(all_types) / sizeof(all_types[0]); i++)
		batched_vs_alone(i % 2 ? "qwen2" : "llama", all_types[i]);
	batched_vs_alone("qwen3", ENG_TYPE_Q8_0);
}

static void test_llama_every_type(void **state) { (void)state; run_arch("llama"); }
static void test_qwen2_every_type(void **state) { (void)state; run_arch("qwen2"); }
static void test_qwen3_every_type(void **state) { (void)state; run_arch("qwen3"); }

/* load → tokenize → forward → sample → decode with a real vocabulary. */
static void real_vocab(const char *arch, const char *vocab)
{
	struct gm_spec s;
	char err[256] = "", path[512];
	assert_int_equal(gm_preset("tiny", &s), 0);
	s.arch = arch;
	s.type = ENG_TYPE_Q8_0;
	s.tied = 1;
	snprintf(path, sizeof(path), "%s/vocab/%s", LW_SHARED_DIR, vocab);
	s.vocab_path = path;
	struct gen g;
	gen_mem(&s, &g);
	struct eng_tok *tok = NULL;
	if (eng_tok_new_from_gguf(g.g, &tok, err, sizeof(err)) != ENG_OK)
		fail_msg("tokenizer: %s", err);
	struct eng_one one;
	eng_one_open(&one, g.g, NULL, 64, 2, 0);
	struct eng_model *m = one.m;
	assert_int_equal((uint32_t)eng_model_hparams(m)->n_vocab, eng_tok_n_vocab(tok));
	const char *text = "Hello world, once upon a time";
	int32_t ids[64];
	int n = eng_tok_encode(tok, text, strlen(text), true, false, ids, 64);
	assert_true(n > 3);
	const float *lg;
	assert_int_equal(eng_one_eval(&one, ids, n, 0, &lg, err, sizeof(err)), ENG_OK);
	/* a large tied output matrix is packed in slices: check it against the
	 * reference too */
	struct ref_model *ref = ref_model_new(g.g, n, err, sizeof(err));
	assert_non_null(ref);
	int nv = ref_model_n_vocab(ref);
	float *rl = malloc((size_t)nv * sizeof(float));
	for (int i = 0; i < n; i++)
		ref_model_eval(ref, ids[i], i, rl);
	double e = rel_err(lg, rl, nv);
	if (e > tolerance(ENG_TYPE_Q8_0))
		fail_msg("%s with %s: logits off by %.3g", arch, vocab, e);
	free(rl);
	ref_model_free(ref);
	struct eng_sampler_params sp = eng_sampler_defaults();
	sp.temp = 0.7f;
	sp.seed = 3;
	struct eng_sampler *smp = eng_sampler_new(&sp, eng_model_hparams(m)->n_vocab);
	float *w = malloc((size_t)eng_model_hparams(m)->n_vocab * sizeof(float));
	struct eng_tok_decoder dec;
	eng_tok_decoder_init(&dec, tok, 0);
	size_t cap = eng_tok_decoder_out_max(tok);
	char *out = malloc(cap);
	for (int i = 0; i < 8; i++) {
		memcpy(w, lg, (size_t)eng_model_hparams(m)->n_vocab * sizeof(float));
		int32_t id = eng_sampler_sample(smp, w);
		assert_true(id >= 0 && (uint32_t)id < eng_tok_n_vocab(tok));
		assert_true(eng_tok_decoder_push(&dec, id, out, cap) >= 0);
		assert_int_equal(eng_one_eval(&one, &id, 1, n + i, &lg, err, sizeof(err)), ENG_OK);
	}
	free(out);
	free(w);
	eng_sampler_free(smp);
	eng_one_close(&one);
	eng_tok_free(tok);
	gen_free(&g);
}

static void test_real_vocabularies(void **state)
{
	(void)state;
	real_vocab("llama", "ggml-vocab-llama-spm.gguf");
	real_vocab("qwen2", "ggml-vocab-gpt-2.gguf");
}

/* A minimal file: llama keys, token_embd of <type>, output_norm unless
 * <no_norm>. */
static void bad_file(const char *arch, enum eng_type type, int no_norm, struct gen *out)
{
	struct eng_gguf_writer *w = eng_gguf_writer_new(3, 32);
	char key[64];
	assert_non_null(w);
	assert_int_equal(eng_gguf_writer_set_str(w, "general.architecture", arch), ENG_OK);
	const char *k[] = {"embedding_length", "block_count", "attention.head_count",
			   "feed_forward_length"};
	uint32_t v[] = {256, 1, 4, 512};
	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "%s.%s", arch, k[i]);
		assert_int_equal(eng_gguf_writer_set_u32(w, key, v[i]), ENG_OK);
	}
	uint64_t d2[2] = {256, 8}, d1[1] = {256};
	size_t nb = eng_qtype_row_bytes((enum eng_qtype)type, 256);
	if (nb == 0)
		nb = 176; /* Q5_K: 176 bytes per 256 */
	void *z = calloc(8, nb);
	float ones[256];
	for (int i = 0; i < 256; i++)
		ones[i] = 1;
	assert_int_equal(eng_gguf_writer_add_tensor(w, "token_embd.weight", type, 2, d2, z), ENG_OK);
	if (!no_norm)
		assert_int_equal(eng_gguf_writer_add_tensor(w, "output_norm.weight", ENG_TYPE_F32, 1,
							    d1, ones), ENG_OK);
	char err[256];
	assert_int_equal(eng_gguf_writer_write_mem(w, NULL, NULL, &out->buf, &out->len, err,
						   sizeof(err)), ENG_OK);
	assert_int_equal(eng_gguf_parse(out->buf, out->len, &out->g, err, sizeof(err)), ENG_OK);
	eng_gguf_writer_free(w);
	free(z);
}

static void test_unsupported_files_are_named(void **state)
{
	(void)state;
	char err[256] = "";
	struct eng_model *m = NULL;
	struct gen g;
	bad_file("phi3", ENG_TYPE_F32, 0, &g);
	assert_int_equal(eng_model_new(g.g, NULL, &m, err, sizeof(err)), ENG_ERR_UNSUPPORTED);
	assert_null(m);
	assert_non_null(strstr(err, "phi3"));
	gen_free(&g);
	bad_file("llama", ENG_TYPE_Q5_K, 0, &g);
	assert_int_equal(eng_model_new(g.g, NULL, &m, err, sizeof(err)), ENG_ERR_UNSUPPORTED);
	assert_non_null(strstr(err, "Q5_K"));
	assert_non_null(strstr(err, "token_embd.weight"));
	gen_free(&g);
	bad_file("llama", ENG_TYPE_F32, 1, &g);
	assert_int_equal(eng_model_new(g.g, NULL, &m, err, sizeof(err)), ENG_ERR_FORMAT);
	assert_non_null(strstr(err, "output_norm.weight"));
	gen_free(&g);
	/* all there but the layer: names the first missing layer tensor */
	bad_file("llama", ENG_TYPE_F32, 0, &g);
	assert_int_equal(eng_model_new(g.g, NULL, &m, err, sizeof(err)), ENG_ERR_FORMAT);
	assert_non_null(strstr(err, "blk.0.attn_norm.weight"));
	gen_free(&g);
	eng_model_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_llama_every_type),
		cmocka_unit_test(test_qwen2_every_type),
		cmocka_unit_test(test_qwen3_every_type),
		cmocka_unit_test(test_real_vocabularies),
		cmocka_unit_test(test_batched_equals_alone_every_type),
		cmocka_unit_test(test_unsupported_files_are_named),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
