/* One sequence on its own model, KV pool and compute context: what the
 * engine tests that predate the scheduler do (eval tokens at a position,
 * read the last token's logits). cmocka must be included first. */
#ifndef LW_TESTS_ENG_TEST_UTIL_H
#define LW_TESTS_ENG_TEST_UTIL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/forward.h"
#include "engine/kv.h"
#include "engine/model.h"

struct eng_one {
	struct eng_backend *be;
	struct eng_model *m;
	struct eng_kv *kv;
	struct eng_compute *c;
	struct eng_seq seq;
};

/* Kernels <k> (NULL: the default), a context of <n_ctx> positions, steps of
 * at most <max_tokens> (0: default), <threads> threads. */
static inline void eng_one_open(struct eng_one *o, const struct eng_gguf *g,
				const struct eng_kernels *k, int n_ctx, int threads, int max_tokens)
{
	char err[256] = "";
	memset(o, 0, sizeof(*o));
	if (eng_backend_cpu_new(k, &o->be, err, sizeof(err)) != ENG_OK)
		fail_msg("backend: %s", err);
	struct eng_model_opts mo = {.backend = o->be};
	if (eng_model_new(g, &mo, &o->m, err, sizeof(err)) != ENG_OK)
		fail_msg("model: %s", err);
	struct eng_compute_opts co = {.n_threads = threads, .max_tokens = max_tokens, .max_ctx = n_ctx};
	if (eng_kv_new(o->m, n_ctx, &o->kv, err, sizeof(err)) != ENG_OK ||
	    eng_kv_reserve(o->kv, n_ctx, &o->seq) != ENG_OK ||
	    eng_compute_new(o->m, &co, &o->c, err, sizeof(err)) != ENG_OK)
		fail_msg("kv/compute: %s", err);
}

static inline enum eng_status eng_one_eval(struct eng_one *o, const int32_t *t, int n, int pos,
					   const float **logits, char *err, size_t err_len)
{
	return eng_forward_seq(o->c, o->kv, &o->seq, t, n, pos, logits, err, err_len);
}

static inline void eng_one_close(struct eng_one *o)
{
	eng_compute_free(o->c);
	eng_kv_free(o->kv);
	eng_model_free(o->m);
	eng_backend_free(o->be);
	memset(o, 0, sizeof(*o));
}


/* ---- several sequences in one batch against each alone -------------------- */

#define EB_MAX_SEQ 8
#define EB_MAX_GEN 64

/* Sequence i: prompt <prompt[i]> (<n_prompt[i]> ids), joins at step
 * <start[i]>, fed in prefill chunks of at most <chunk> tokens per step,
 * then <n_gen> greedy tokens. */
struct eb_case {
	int n_seq, n_gen, chunk;
	const int32_t *prompt[EB_MAX_SEQ];
	int n_prompt[EB_MAX_SEQ];
	int start[EB_MAX_SEQ];
};

struct eb_result {
	int32_t ids[EB_MAX_SEQ][EB_MAX_GEN];
	float margin[EB_MAX_SEQ][EB_MAX_GEN]; /* best - second best logit */
	float *logits[EB_MAX_SEQ];            /* (n_gen, n_vocab) each, malloc'd */
};

static inline int eb_argmax(const float *l, int n, float *margin)
{
	int b = 0, s = -1;
	for (int i = 1; i < n; i++)
		if (l[i] > l[b]) {
			s = b;
			b = i;
		} else if (s < 0 || l[i] > l[s]) {
			s = i;
		}
	*margin = s >= 0 ? l[b] - l[s] : 1e30f;
	return b;
}

static inline void eb_result_free(struct eb_result *r, int n_seq)
{
	for (int i = 0; i < n_seq; i++)
		free(r->logits[i]);
}

/* Each sequence alone on model <o> (its own pool, one step per chunk). */
static inline void eb_alone(struct eng_one *o, const struct eb_case *c, struct eb_result *r)
{
	char err[256] = "";
	int nv = eng_model_hparams(o->m)->n_vocab;
	for (int i = 0; i < c->n_seq; i++) {
		const float *lg = NULL;
		r->logits[i] = malloc((size_t)c->n_gen * (size_t)nv * sizeof(float));
		assert_non_null(r->logits[i]);
		for (int p = 0; p < c->n_prompt[i]; p += c->chunk) {
			int k = c->n_prompt[i] - p < c->chunk ? c->n_prompt[i] - p : c->chunk;
			if (eng_one_eval(o, c->prompt[i] + p, k, p, &lg, err, sizeof(err)) != ENG_OK)
				fail_msg("alone: %s", err);
		}
		for (int g = 0; g < c->n_gen; g++) {
			memcpy(r->logits[i] + (size_t)g * nv, lg, (size_t)nv * sizeof(float));
			int32_t id = eb_argmax(lg, nv, &r->margin[i][g]);
			r->ids[i][g] = id;
			if (eng_one_eval(o, &id, 1, c->n_prompt[i] + g, &lg, err, sizeof(err)) != ENG_OK)
				fail_msg("alone: %s", err);
		}
	}
}

/* All sequences in shared steps on model <m>: each step holds one decode
 * token of every sequence past its prompt and a prefill chunk of every
 * one still in it; <threads> compute threads. */
static inline void eb_batched(struct eng_model *m, const struct eb_case *c, int threads,
			      struct eb_result *r)
{
	char err[256] = "";
	int nv = eng_model_hparams(m)->n_vocab, ctx = 0;
	for (int i = 0; i < c->n_seq; i++)
		if (c->n_prompt[i] + c->n_gen > ctx)
			ctx = c->n_prompt[i] + c->n_gen;
	struct eng_kv *kv = NULL;
	struct eng_compute *cmp = NULL;
	struct eng_seq seq[EB_MAX_SEQ];
	struct eng_compute_opts co = {.n_threads = threads, .max_tokens = c->n_seq * c->chunk,
				      .max_logits = c->n_seq, .max_ctx = ctx};
	if (eng_kv_new(m, c->n_seq * ctx + 3 * ENG_KV_GRAIN, &kv, err, sizeof(err)) != ENG_OK ||
	    eng_compute_new(m, &co, &cmp, err, sizeof(err)) != ENG_OK)
		fail_msg("batched: %s", err);
	/* a gap before each span, so no sequence starts at cell 0 */
	struct eng_seq pad;
	assert_int_equal(eng_kv_reserve(kv, 1, &pad), ENG_OK);
	int fed[EB_MAX_SEQ] = {0}, gen[EB_MAX_SEQ] = {0};
	int32_t next[EB_MAX_SEQ];
	for (int i = 0; i < c->n_seq; i++) {
		assert_int_equal(eng_kv_reserve(kv, ctx, &seq[i]), ENG_OK);
		r->logits[i] = malloc((size_t)c->n_gen * (size_t)nv * sizeof(float));
		assert_non_null(r->logits[i]);
	}
	for (int step = 0;; step++) {
		struct eng_batch_seg segs[EB_MAX_SEQ];
		int who[EB_MAX_SEQ], ns = 0;
		for (int i = 0; i < c->n_seq; i++) {
			if (step < c->start[i] || gen[i] >= c->n_gen)
				continue;
			struct eng_batch_seg *s = &segs[ns];
			s->seq = &seq[i];
			s->pos = fed[i];
			if (fed[i] < c->n_prompt[i]) {
				int left = c->n_prompt[i] - fed[i];
				s->n = left < c->chunk ? left : c->chunk;
				s->tokens = c->prompt[i] + fed[i];
				s->logits = s->n == left;
			} else {
				s->n = 1;
				s->tokens = &next[i];
				s->logits = 1;
			}
			who[ns++] = i;
		}
		if (ns == 0)
			break;
		struct eng_batch b = {segs, ns};
		if (eng_forward(cmp, kv, &b, err, sizeof(err)) != ENG_OK)
			fail_msg("batched step %d: %s", step, err);
		int li = 0;
		for (int j = 0; j < ns; j++) {
			int i = who[j];
			fed[i] += segs[j].n;
			if (!segs[j].logits)
				continue;
			const float *lg = eng_compute_logits(cmp, li++);
			memcpy(r->logits[i] + (size_t)gen[i] * nv, lg, (size_t)nv * sizeof(float));
			next[i] = eb_argmax(lg, nv, &r->margin[i][gen[i]]);
			r->ids[i][gen[i]++] = next[i];
		}
	}
	eng_compute_free(cmp);
	eng_kv_free(kv);
}

/* ||a - b|| / ||b|| */
static inline double eb_rel_err(const float *a, const float *b, int n)
{
	double d = 0, rr = 0;
	for (int i = 0; i < n; i++) {
		d += (double)(a[i] - b[i]) * (a[i] - b[i]);
		rr += (double)b[i] * b[i];
	}
	return sqrt(d / (rr > 0 ? rr : 1));
}

/* Batched against alone: greedy ids identical up to the first step where
 * the alone run has a near-tie (margin < <tie>; after it the sequences may
 * rightly differ), logits within <tol> relative error up to there. Returns
 * the worst error seen; *<compared> gets the number of ids compared. */
static inline double eb_compare(const struct eb_case *c, const struct eb_result *alone,
				const struct eb_result *bat, int nv, double tol, float tie,
				const char *what, int *compared)
{
	double worst = 0;
	*compared = 0;
	for (int i = 0; i < c->n_seq; i++)
		for (int g = 0; g < c->n_gen; g++) {
			double e = eb_rel_err(bat->logits[i] + (size_t)g * nv,
					      alone->logits[i] + (size_t)g * nv, nv);
			worst = e > worst ? e : worst;
			if (e > tol)
				fail_msg("%s: sequence %d step %d: logits off by %.3g (tolerance %.3g)",
					 what, i, g, e, tol);
			if (alone->margin[i][g] < tie)
				break;
			if (bat->ids[i][g] != alone->ids[i][g])
				fail_msg("%s: sequence %d step %d: batched %d, alone %d", what, i, g,
					 bat->ids[i][g], alone->ids[i][g]);
			(*compared)++;
		}
	return worst;
}

#endif
