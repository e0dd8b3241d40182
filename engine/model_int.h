/* The model's weights as the graph (engine/forward.c) and the backends
 * (engine/backend_*.c) see them. Nothing else may include this: other
 * modules go through engine/model.h. Everything here is read-only once
 * eng_model_new has returned, so any number of threads may read it. */
#ifndef LW_ENGINE_MODEL_INT_H
#define LW_ENGINE_MODEL_INT_H

#include <stddef.h>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/quant.h"

/* A weight matrix used in place from the file: <rows> rows of <cols>
 * values of <type>, rows <row_bytes> apart. */
struct eng_mat {
	enum eng_qtype type;
	const void *data;
	int rows, cols;
	size_t row_bytes;
	void *be; /* the backend's copy (CPU: row-interleaved packing), or NULL;
		   * made by iface->mat_prepare, freed by iface->mat_free */
};

struct eng_layer {
	float *attn_norm;            /* (n_embd) */
	struct eng_mat wq, wk, wv;   /* (n_head*hd, n_embd), (n_kv*hd, n_embd) x2 */
	float *bq, *bk, *bv;         /* qwen2 biases (n_head*hd), (n_kv*hd) x2, or NULL */
	float *q_norm, *k_norm;      /* qwen3 (hd), or NULL */
	struct eng_mat wo;           /* (n_embd, n_head*hd) */
	float *ffn_norm;             /* (n_embd) */
	struct eng_mat gate, up;     /* (n_ff, n_embd) */
	struct eng_mat down;         /* (n_embd, n_ff) */
};

struct eng_model {
	struct eng_hparams hp;
	const struct eng_backend *be; /* prepared the weights; runs the compute */
	struct eng_backend *own_be;   /* be, when the model made it itself */
	struct eng_mat tok_embd;      /* (n_vocab, n_embd); never given to the backend */
	float *out_norm;              /* (n_embd) */
	struct eng_mat output;        /* (n_vocab, n_embd); tok_embd's data when tied */
	struct eng_layer *layers;     /* (n_layer) */
};

#endif
