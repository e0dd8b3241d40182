/* End-to-end correctness on a real model: stories260K (llama2.c tinyllamas,
 * F32) must reproduce llama.cpp's greedy continuations token for token, up
 * to the first near-tie (margin < 0.01) the reference file marks, with every
 * kernel variant this CPU has, 1 and 2 threads, batched or one-by-one
 * prompt evaluation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include <fcntl.h>
#include <unistd.h>

#include "engine/generate.h"
#include "engine/load.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "tests/unit/eng_test_util.h"

#define MODEL LW_SOURCE_DIR "/contrib/models/stories260K.gguf"
#define REFS LW_SHARED_DIR "/models/stories260K.refs.json"
#define MAX_IDS 256

struct ref_case {
	char prompt_text[256], text[1024];
	int n_prompt, n_gen;
	int32_t prompt[MAX_IDS], gen[MAX_IDS];
	double margin[MAX_IDS];
};

static struct ref_case cases[16];
static int n_cases;

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	if (b)
		b[n] = 0;
	fclose(f);
	return b;
}

static int read_arr(yajl_val c, const char *key, int32_t *ids, double *dv)
{
	const char *path[] = {key, NULL};
	yajl_val a = yajl_tree_get(c, path, yajl_t_array);
	assert_non_null(a);
	assert_true(a->u.array.len <= MAX_IDS);
	for (size_t i = 0; i < a->u.array.len; i++) {
		yajl_val v = a->u.array.values[i];
		assert_true(YAJL_IS_NUMBER(v));
		if (ids)
			ids[i] = (int32_t)YAJL_GET_INTEGER(v);
		if (dv)
			dv[i] = YAJL_GET_DOUBLE(v);
	}
	return (int)a->u.array.len;
}

static int setup(void **state)
{
	(void)state;
	char *txt = slurp(REFS), eb[256];
	assert_non_null(txt);
	yajl_val root = yajl_tree_parse(txt, eb, sizeof(eb));
	assert_non_null(root);
	const char *cp[] = {"cases", NULL};
	yajl_val arr = yajl_tree_get(root, cp, yajl_t_array);
	assert_non_null(arr);
	for (size_t i = 0; i < arr->u.array.len && n_cases < 16; i++) {
		struct ref_case *rc = &cases[n_cases++];
		yajl_val c = arr->u.array.values[i];
		const char *pp[] = {"prompt", NULL}, *tp[] = {"text", NULL};
		yajl_val pv = yajl_tree_get(c, pp, yajl_t_string), tv = yajl_tree_get(c, tp, yajl_t_string);
		assert_non_null(pv);
		assert_non_null(tv);
		snprintf(rc->prompt_text, sizeof(rc->prompt_text), "%s", YAJL_GET_STRING(pv));
		snprintf(rc->text, sizeof(rc->text), "%s", YAJL_GET_STRING(tv));
		rc->n_prompt = read_arr(c, "prompt_ids", rc->prompt, NULL);
		rc->n_gen = read_arr(c, "gen_ids", rc->gen, NULL);
		assert_int_equal(read_arr(c, "margins", NULL, rc->margin), rc->n_gen);
	}
	yajl_tree_free(root);
	free(txt);
	return n_cases > 0 ? 0 : -1;
}

/* Runs every reference case; returns how many ids matched in all. */
static int run_cases(const struct eng_kernels *k, int threads, int batched,
		     enum eng_load_strategy strat)
{
	char err[256] = "";
	struct eng_file *f = NULL;
	enum eng_status st = eng_file_open(NULL, MODEL, strat, &f, err, sizeof(err));
	if (st != ENG_OK)
		fail_msg("open: %s", err);
	struct eng_one one;
	eng_one_open(&one, eng_file_gguf(f), k, 256, threads, 0);
	struct eng_model *m = one.m;
	const struct eng_hparams *hp = eng_model_hparams(m);
	assert_int_equal(hp->n_vocab, 512);
	assert_int_equal(hp->n_layer, 5);
	assert_int_equal(hp->n_head_kv, 4);
	struct eng_sampler_params sp = eng_sampler_defaults();
	struct eng_sampler *s = eng_sampler_new(&sp, hp->n_vocab);
	assert_non_null(s);
	int matched = 0;
	for (int c = 0; c < n_cases; c++) {
		const struct ref_case *rc = &cases[c];
		const float *logits = NULL;
		if (batched) {
			st = eng_one_eval(&one, rc->prompt, rc->n_prompt, 0, &logits, err, sizeof(err));
			assert_int_equal(st, ENG_OK);
		} else {
			for (int i = 0; i < rc->n_prompt; i++) {
				st = eng_one_eval(&one, rc->prompt + i, 1, i, &logits, err, sizeof(err));
				assert_int_equal(st, ENG_OK);
			}
		}
		int pos = rc->n_prompt;
		float buf[512];
		for (int i = 0; i < rc->n_gen; i++) {
			memcpy(buf, logits, sizeof(buf));
			int32_t id = eng_sampler_sample(s, buf);
			if (rc->margin[i] < 0.01)
				break; /* a near-tie: either token is right, and the rest differs */
			if (id != rc->gen[i])
				fail_msg("%s, %d threads, %s: case %d token %d: got %d, want %d",
					 k->name, threads, batched ? "batched" : "one by one",
					 c, i, id, rc->gen[i]);
			matched++;
			st = eng_one_eval(&one, &id, 1, pos++, &logits, err, sizeof(err));
			assert_int_equal(st, ENG_OK);
		}
	}
	eng_sampler_free(s);
	eng_one_close(&one);
	assert_int_equal(eng_file_close(f, err, sizeof(err)), ENG_OK);
	return matched;
}

static void test_stories_greedy_matches_llama_cpp(void **state)
{
	(void)state;
	int want = 0;
	for (int c = 0; c < n_cases; c++)
		for (int i = 0; i < cases[c].n_gen && cases[c].margin[i] >= 0.01; i++)
			want++;
	assert_true(want > 150);
	for (int v = 0; v < ENG_KERNELS_COUNT; v++) {
		const struct eng_kernels *k = eng_kernels_variant((enum eng_kernel_id)v);
		if (!k)
			continue;
		assert_int_equal(run_cases(k, 1, 1, ENG_LOAD_MMAP), want);
		assert_int_equal(run_cases(k, 2, 0, ENG_LOAD_READ), want);
	}
}

static void test_stories_bad_token_and_context(void **state)
{
	(void)state;
	char err[256] = "";
	struct eng_file *f = NULL;
	assert_int_equal(eng_file_open(NULL, MODEL, ENG_LOAD_MMAP, &f, err, sizeof(err)), ENG_OK);
	struct eng_one one;
	eng_one_open(&one, eng_file_gguf(f), NULL, 8, 1, 0);
	const float *lg;
	int32_t toks[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
	assert_int_equal(eng_one_eval(&one, toks, 9, 0, &lg, err, sizeof(err)), ENG_ERR_RANGE);
	assert_non_null(strstr(err, "context"));
	int32_t bad = 512;
	assert_int_equal(eng_one_eval(&one, &bad, 1, 0, &lg, err, sizeof(err)), ENG_ERR_RANGE);
	assert_non_null(strstr(err, "512"));
	assert_int_equal(eng_one_eval(&one, toks, 8, 0, &lg, err, sizeof(err)), ENG_OK);
	eng_one_close(&one);
	assert_int_equal(eng_file_close(f, err, sizeof(err)), ENG_OK);
}

/* What `loopwarden generate` does: the prompt text tokenizes to llama.cpp's
 * ids, and the greedy continuation decodes to llama.cpp's text (compared
 * for the tokens before the first near-tie). */
static void test_stories_text_round_trip(void **state)
{
	(void)state;
	char err[256] = "";
	struct eng_file *f = NULL;
	struct eng_tok *tok = NULL;
	assert_int_equal(eng_file_open(NULL, MODEL, ENG_LOAD_MMAP, &f, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_tok_new_from_gguf(eng_file_gguf(f), &tok, err, sizeof(err)), ENG_OK);
	struct eng_one one;
	eng_one_open(&one, eng_file_gguf(f), NULL, 128, 2, 0);
	size_t cap = eng_tok_decoder_out_max(tok);
	char *piece = malloc(cap);
	for (int c = 0; c < n_cases; c++) {
		const struct ref_case *rc = &cases[c];
		int32_t ids[MAX_IDS];
		int n = eng_tok_encode(tok, rc->prompt_text, strlen(rc->prompt_text), true, true,
				       ids, MAX_IDS);
		assert_int_equal(n, rc->n_prompt);
		assert_memory_equal(ids, rc->prompt, (size_t)n * sizeof(int32_t));
		const float *lg;
		assert_int_equal(eng_one_eval(&one, ids, n, 0, &lg, err, sizeof(err)), ENG_OK);
		struct eng_tok_decoder dec;
		eng_tok_decoder_init(&dec, tok, 0);
		char text[1024];
		size_t len = 0;
		for (int i = 0; i < rc->n_gen && rc->margin[i] >= 0.01; i++) {
			int best = 0;
			for (int v = 1; v < 512; v++)
				if (lg[v] > lg[best])
					best = v;
			int w = eng_tok_decoder_push(&dec, best, piece, cap);
			assert_true(w >= 0 && len + (size_t)w < sizeof(text));
			memcpy(text + len, piece, (size_t)w);
			len += (size_t)w;
			int32_t id = best;
			assert_int_equal(eng_one_eval(&one, &id, 1, n + i, &lg, err, sizeof(err)), ENG_OK);
		}
		assert_true(len > 20);
		if (strncmp(text, rc->text, len) != 0)
			fail_msg("case %d: decoded '%.*s', llama.cpp '%s'", c, (int)len, text, rc->text);
	}
	free(piece);
	eng_tok_free(tok);
	eng_one_close(&one);
	assert_int_equal(eng_file_close(f, err, sizeof(err)), ENG_OK);
}

/* Every reference prompt plus "One day, a big bear" decoded together in
 * shared steps (sequences joining at different steps, prefill chunks of 4
 * mixed with decode tokens) give each one's lone greedy ids and llama.cpp's
 * (up to the file's near-tie), with every kernel variant (issue 13). */
static void test_stories_batched_equals_alone(void **state)
{
	(void)state;
	char err[256] = "";
	struct eng_file *f = NULL;
	struct eng_tok *tok = NULL;
	assert_int_equal(eng_file_open(NULL, MODEL, ENG_LOAD_MMAP, &f, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_tok_new_from_gguf(eng_file_gguf(f), &tok, err, sizeof(err)), ENG_OK);
	static int32_t bear[64];
	const char *bt = "One day, a big bear";
	int nb = eng_tok_encode(tok, bt, strlen(bt), true, true, bear, 64);
	assert_true(nb > 3);
	struct eb_case c = {.n_seq = 0, .n_gen = 64, .chunk = 4};
	for (int i = 0; i < n_cases && i < EB_MAX_SEQ - 1; i++, c.n_seq++) {
		c.prompt[i] = cases[i].prompt;
		c.n_prompt[i] = cases[i].n_prompt;
		c.start[i] = 3 * i;
	}
	c.prompt[c.n_seq] = bear;
	c.n_prompt[c.n_seq] = nb;
	c.start[c.n_seq++] = 1;
	for (int v = 0; v <= ENG_KERNELS_COUNT; v++) {
		const struct eng_kernels *k = v < ENG_KERNELS_COUNT ? eng_kernels_variant((enum eng_kernel_id)v)
								    : NULL;
		if (v < ENG_KERNELS_COUNT && !k)
			continue;
		int threads = v < ENG_KERNELS_COUNT ? 1 : 2;
		struct eng_one one;
		eng_one_open(&one, eng_file_gguf(f), k, 128, threads, 0);
		struct eb_result alone, bat;
		eb_alone(&one, &c, &alone);
		eb_batched(one.m, &c, threads, &bat);
		char what[64];
		snprintf(what, sizeof(what), "%s, %d thread(s)", eng_backend_name(one.be), threads);
		int n;
		double worst = eb_compare(&c, &alone, &bat, 512, 1e-5, 1e-3f, what, &n);
		print_message("stories260K batched, %s: %d ids identical, worst relative logit "
			      "difference %.2e\n", what, n, worst);
		for (int i = 0; i < n_cases && i < c.n_seq; i++)
			for (int g = 0; g < c.n_gen && g < cases[i].n_gen && cases[i].margin[g] >= 0.01; g++)
				if (bat.ids[i][g] != cases[i].gen[g])
					fail_msg("%s: case %d token %d: batched %d, llama.cpp %d", what, i, g,
						 bat.ids[i][g], cases[i].gen[g]);
		assert_true(n > 250);
		eb_result_free(&alone, c.n_seq);
		eb_result_free(&bat, c.n_seq);
		eng_one_close(&one);
	}
	eng_tok_free(tok);
	assert_int_equal(eng_file_close(f, err, sizeof(err)), ENG_OK);
}

/* Runs `loopwarden generate <args>` in-process with stdout and stderr sent
 * to files; returns the exit status, the output in <out>. */
static int run_generate(char **argv, int argc, char *out, size_t cap)
{
	char path[] = "/tmp/lw_test_generate_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stdout);
	fflush(stderr);
	int so = dup(1), se = dup(2);
	dup2(fd, 1);
	dup2(fd, 2);
	int rc = eng_generate_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	ssize_t n = pread(fd, out, cap - 1, 0);
	out[n > 0 ? n : 0] = 0;
	close(fd);
	unlink(path);
	return rc;
}

static void test_generate_command(void **state)
{
	(void)state;
	static char out[1 << 16];
	char *ok[] = {"generate", "-m", MODEL, "-p", cases[0].prompt_text, "-n", "64", "--temp", "0",
		      "--ids", "--bench", "-t", "2", "--load", "read"};
	assert_int_equal(run_generate(ok, 15, out, sizeof(out)), 0);
	char want[2048] = "gen ids:";
	for (int i = 0; i < cases[0].n_gen && cases[0].margin[i] >= 0.01; i++)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), " %d", cases[0].gen[i]);
	if (!strstr(out, want))
		fail_msg("output lacks '%s':\n%s", want, out);
	assert_non_null(strstr(out, "prompt ids: 1 403 407 261 378\n"));
	assert_non_null(strstr(out, cases[0].prompt_text));
	assert_non_null(strstr(out, "bench: prompt 5 tokens"));
	assert_non_null(strstr(out, "tok/s"));

	char *missing[] = {"generate", "-m", "/nonexistent/model.gguf", "-p", "hi"};
	assert_int_equal(run_generate(missing, 5, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "/nonexistent/model.gguf"));
	char *notgguf[] = {"generate", "-m", LW_SOURCE_DIR "/CMakeLists.txt", "-p", "hi"};
	assert_int_equal(run_generate(notgguf, 5, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "CMakeLists.txt"));
	char *badopt[] = {"generate", "-m", MODEL, "-p", "hi", "--temp", "warm"};
	assert_int_equal(run_generate(badopt, 7, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "--temp"));
	char *noprompt[] = {"generate", "-m", MODEL};
	assert_int_equal(run_generate(noprompt, 3, out, sizeof(out)), 2);
	char *toolong[] = {"generate", "-m", MODEL, "-p", "hi", "-n", "100", "--ctx", "50"};
	assert_int_equal(run_generate(toolong, 9, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "context"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stories_greedy_matches_llama_cpp),
		cmocka_unit_test(test_stories_bad_token_and_context),
		cmocka_unit_test(test_stories_text_round_trip),
		cmocka_unit_test(test_stories_batched_equals_alone),
		cmocka_unit_test(test_generate_command),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
