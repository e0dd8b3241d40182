/* The llama-family graph over the backend's ops (engine/backend_impl.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/backend_impl.h"
#include "engine/forward.h"
#include "engine/threadpool.h"

struct eng_compute {
	const struct eng_model *m;
	const struct eng_backend *be;
	void *ctx; /* the backend's */
	struct eng_compute_opts o;
};

static void seterr(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t len, const char *fmt, ...)
{
	if (!err || len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

void eng_compute_free(struct eng_compute *c)
{
	if (!c)
		return;
	if (c->ctx)
		c->be->iface->compute_free(c->ctx);
	free(c);
}

enum eng_status eng_compute_new(const struct eng_model *m, const struct eng_compute_opts *opts,
				struct eng_compute **out, char *err, size_t err_len)
{
	struct eng_compute_opts o = {0};
	*out = NULL;
	if (opts)
		o = *opts;
	if (!o.n_threads)
		o.n_threads = 1;
	if (!o.max_tokens)
		o.max_tokens = ENG_FORWARD_DEFAULT_TOKENS;
	if (!o.max_logits)
		o.max_logits = 1;
	if (o.max_logits > o.max_tokens)
		o.max_logits = o.max_tokens;
	if (!m || o.n_threads < 1 || o.n_threads > ENG_POOL_MAX_THREADS || o.max_tokens < 1 ||
	    o.max_tokens > ENG_FORWARD_MAX_TOKENS || o.max_logits < 1 || o.max_ctx < 1 ||
	    o.max_ctx > ENG_MODEL_MAX_CTX) {
		seterr(err, err_len, "bad compute options: %d threads, %d tokens, %d logits, "
		       "context %d", o.n_threads, o.max_tokens, o.max_logits, o.max_ctx);
		return ENG_ERR_ARG;
	}
	struct eng_compute *c = calloc(1, sizeof(*c));
	if (!c) {
		seterr(err, err_len, "out of memory");
		return ENG_ERR_NOMEM;
	}
	c->m = m;
	c->be = m->be;
	c->o = o;
	enum eng_status st = c->be->iface->compute_new(c->be->ctx, m, &c->o, &c->ctx, err, err_len);
	if (st != ENG_OK) {
		eng_compute_free(c);
		return st;
	}
	*out = c;
	return ENG_OK;
}

int eng_compute_max_tokens(const struct eng_compute *c) { return c->o.max_tokens; }
int eng_compute_max_logits(const struct eng_compute *c) { return c->o.max_logits; }
int eng_compute_max_ctx(const struct eng_compute *c) { return c->o.max_ctx; }

static enum eng_status check(const struct eng_compute *c, const struct eng_kv *kv,
			     const struct eng_batch *b, char *err, size_t err_len)
{
	int nt = 0, nl = 0, nv = c->m->hp.n_vocab;
	if (b->n_seg < 1) {
		seterr(err, err_len, "empty batch");
		return ENG_ERR_RANGE;
	}
	for (int s = 0; s < b->n_seg; s++) {
		const struct eng_batch_seg *g = &b->seg[s];
		const struct eng_seq *q = g->seq;
		if (g->n < 1 || g->pos < 0 || !q || g->pos > q->kv_len - g->n ||
		    g->pos > c->o.max_ctx - g->n || q->kv_off < 0 ||
		    q->kv_off > eng_kv_n_cells(kv) - q->kv_len) {
			seterr(err, err_len, "segment %d: %d tokens at position %d do not fit a "
			       "%d-token context", s, g->n, g->pos,
			       q && q->kv_len < c->o.max_ctx ? q->kv_len : c->o.max_ctx);
			return ENG_ERR_RANGE;
		}
		for (int i = 0; i < g->n; i++)
			if (g->tokens[i] < 0 || g->tokens[i] >= nv) {
				seterr(err, err_len, "segment %d: token id %d (at %d) is outside the "
				       "%d-token vocabulary", s, g->tokens[i], i, nv);
				return ENG_ERR_RANGE;
			}
		nt += g->n;
		nl += g->logits != 0;
		if (nt > c->o.max_tokens || nl > c->o.max_logits) {
			seterr(err, err_len, "batch over the step's limits: %d tokens (most %d), %d "
			       "logits (most %d)", nt, c->o.max_tokens, nl, c->o.max_logits);
			return ENG_ERR_RANGE;
		}
	}
	return ENG_OK;
}

enum eng_status eng_forward(struct eng_compute *c, struct eng_kv *kv, const struct eng_batch *b,
			    char *err, size_t err_len)
{
	enum eng_status st = check(c, kv, b, err, err_len);
	if (st != ENG_OK)
		return st;
	const struct eng_backend_i *bi = c->be->iface;
	const struct eng_model *m = c->m;
	void *x = c->ctx;
	bi->begin(x, eng_kv_storage(kv), b);
	for (int li = 0; li < m->hp.n_layer; li++) {
		const struct eng_layer *l = &m->layers[li];
		bi->rmsnorm(x, ENG_BUF_XB, ENG_BUF_X, ENG_BUF_NONE, l->attn_norm);
		const struct eng_mm qkv[3] = {
			{&l->wq, ENG_BUF_Q}, {&l->wk, ENG_BUF_K}, {&l->wv, ENG_BUF_V},
		};
		bi->matmul(x, qkv, 3, ENG_BUF_XB);
		bi->qkv(x, l, li);
		bi->attention(x, li);
		const struct eng_mm o = {&l->wo, ENG_BUF_TMP};
		bi->matmul(x, &o, 1, ENG_BUF_ATT);
		bi->rmsnorm(x, ENG_BUF_XB, ENG_BUF_X, ENG_BUF_TMP, l->ffn_norm); /* x += attn */
		const struct eng_mm gu[2] = {{&l->gate, ENG_BUF_HB}, {&l->up, ENG_BUF_HB2}};
		bi->matmul(x, gu, 2, ENG_BUF_XB);
		bi->swiglu(x);
		const struct eng_mm d = {&l->down, ENG_BUF_TMP};
		bi->matmul(x, &d, 1, ENG_BUF_HB);
		bi->add(x, ENG_BUF_X, ENG_BUF_TMP);
	}
	bi->output(x, m->out_norm, &m->output);
	return bi->end(x, err, err_len);
}

const float *eng_compute_logits(const struct eng_compute *c, int i)
{
	return c->be->iface->logits(c->ctx, i);
}

enum eng_status eng_forward_seq(struct eng_compute *c, struct eng_kv *kv,
				const struct eng_seq *seq, const int32_t *tokens, int n, int pos,
				const float **logits, char *err, size_t err_len)
{
	if (n < 1) {
		seterr(err, err_len, "no tokens to feed");
		return ENG_ERR_RANGE;
	}
	for (int done = 0; done < n;) {
		int k = n - done < c->o.max_tokens ? n - done : c->o.max_tokens;
		struct eng_batch_seg s = {
			.seq = seq, .pos = pos + done, .n = k, .tokens = tokens + done,
			.logits = done + k == n,
		};
		struct eng_batch b = {&s, 1};
		enum eng_status st = eng_forward(c, kv, &b, err, err_len);
		if (st != ENG_OK)
			return st;
		done += k;
	}
	*logits = eng_compute_logits(c, 0);
	return ENG_OK;
}
