/* One sequence on its own model, KV pool and compute context: what the
 * engine tests that predate the scheduler do (eval tokens at a position,
 * read the last token's logits). cmocka must be included first. */
#ifndef LW_TESTS_ENG_TEST_UTIL_H
#define LW_TESTS_ENG_TEST_UTIL_H

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

#endif
