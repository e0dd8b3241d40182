/* The backend table: what a compute backend implements, one file per
 * implementation (engine/backend_cpu.c; a Vulkan one would be
 * backend_vk.c), in the manner of ggml's ggml_backend_i. Only the model
 * loader, the KV pool and the graph (engine/forward.c) call it.
 *
 * A step is begin → the graph's ops in order → end. Ops name activation
 * buffers (enum eng_buf) that live in the backend's compute context, so a
 * device backend may record the ops into one submission and only make the
 * logits visible at end. The graph guarantees <b> stays valid until end. */
#ifndef LW_ENGINE_BACKEND_IMPL_H
#define LW_ENGINE_BACKEND_IMPL_H

#include "engine/backend.h"
#include "engine/forward.h"
#include "engine/model_int.h"

/* Activation buffers of a step, one row per token of the batch. */
enum eng_buf {
	ENG_BUF_X = 0, /* residual stream (n_embd) */
	ENG_BUF_XB,    /* normed input of a matmul (n_embd) */
	ENG_BUF_Q,     /* queries (n_head*hd) */
	ENG_BUF_K,     /* keys of the batch's tokens (n_kv*hd) */
	ENG_BUF_V,     /* values (n_kv*hd) */
	ENG_BUF_ATT,   /* attention output (n_head*hd) */
	ENG_BUF_HB,    /* FFN gate, then silu(gate)*up (n_ff) */
	ENG_BUF_HB2,   /* FFN up (n_ff) */
	ENG_BUF_TMP,   /* a matmul's output before the residual add (n_embd) */
	ENG_BUF_COUNT,
	ENG_BUF_NONE = -1
};

/* One matrix of a matmul and where its rows go. */
struct eng_mm {
	const struct eng_mat *w;
	enum eng_buf dst;
};

struct eng_backend_i {
	void (*free)(void *ctx);
	/* Weights: called once per matrix by eng_model_new; may set w->be.
	 * With <release> the file pages behind w->data may be dropped once
	 * the backend has its copy (an mmapped, read-only file). */
	enum eng_status (*mat_prepare)(void *ctx, struct eng_mat *w, int release,
				       char *err, size_t err_len);
	void (*mat_free)(void *ctx, struct eng_mat *w);
	/* KV storage for <n_cells> cells of every layer. */
	enum eng_status (*kv_new)(void *ctx, const struct eng_model *m, int n_cells,
				  void **kv, size_t *bytes, char *err, size_t err_len);
	void (*kv_free)(void *kv);
	/* Scratch for steps within <o>'s limits (already validated). */
	enum eng_status (*compute_new)(void *ctx, const struct eng_model *m,
				       const struct eng_compute_opts *o, void **c,
				       char *err, size_t err_len);
	void (*compute_free)(void *c);

	/* A step over batch <b> (validated) with storage <kv>: X = the tokens'
	 * embeddings; positions, KV cells and RoPE per token. */
	void (*begin)(void *c, void *kv, const struct eng_batch *b);
	/* dst = rmsnorm(src) * w; with <add> != NONE, first src += add. */
	void (*rmsnorm)(void *c, enum eng_buf dst, enum eng_buf src, enum eng_buf add,
			const float *w);
	/* dst_i = W_i src for the parts (all with src's width as columns). */
	void (*matmul)(void *c, const struct eng_mm *parts, int np, enum eng_buf src);
	/* Q, K, V of layer <li>: biases, per-head norms, RoPE; K and V stored
	 * into each token's cell. */
	void (*qkv)(void *c, const struct eng_layer *l, int li);
	/* ATT = causal attention of Q over each token's sequence's cells. */
	void (*attention)(void *c, int li);
	/* HB = silu(HB) * HB2 */
	void (*swiglu)(void *c);
	/* dst += src */
	void (*add)(void *c, enum eng_buf dst, enum eng_buf src);
	/* logits of the segments that ask: rmsnorm(X row) * norm, times w. */
	void (*output)(void *c, const float *norm, const struct eng_mat *w);
	/* Completes the step (a device backend waits and reads back here). */
	enum eng_status (*end)(void *c, char *err, size_t err_len);
	/* The <i>-th logits row of the last step. */
	const float *(*logits)(void *c, int i);
};

struct eng_backend {
	const struct eng_backend_i *iface;
	void *ctx;
	char name[32];
};

/* The KV pool's backend storage (engine/kv.c). */
void *eng_kv_storage(struct eng_kv *kv);

#endif
