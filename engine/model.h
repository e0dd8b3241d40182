/* A llama-family transformer (architectures llama, qwen2, qwen3) on the
 * CPU: hyper-parameters from GGUF metadata, weights used in place from the
 * loaded file (any of F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K), a KV cache and
 * every scratch buffer sized at load, so evaluation allocates nothing. */
#ifndef LW_ENGINE_MODEL_H
#define LW_ENGINE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"
#include "engine/kernels.h"

enum eng_arch {
	ENG_ARCH_LLAMA = 0, /* adjacent-pair RoPE */
	ENG_ARCH_QWEN2 = 1, /* NEOX RoPE, Q/K/V biases */
	ENG_ARCH_QWEN3 = 2, /* NEOX RoPE, per-head RMSNorm of Q and K */
	ENG_ARCH_COUNT
};

const char *eng_arch_name(enum eng_arch a);

struct eng_hparams {
	enum eng_arch arch;
	int n_vocab;
	int n_embd;
	int n_layer;
	int n_head;
	int n_head_kv;
	int head_dim;    /* <arch>.attention.key_length, else n_embd / n_head */
	int n_ff;
	int n_ctx_train;
	int n_rot;       /* <arch>.rope.dimension_count, else head_dim */
	float rope_base;
	float rms_eps;
	int tied_output; /* no output.weight: token_embd is reused */
};

#define ENG_MODEL_MAX_CTX (1 << 20)
#define ENG_MODEL_MAX_BATCH 4096
#define ENG_MODEL_DEFAULT_BATCH 256

struct eng_model_opts {
	int n_ctx;      /* KV cache positions; 0 → min(n_ctx_train, 4096) */
	int n_batch;    /* most tokens per internal forward chunk; 0 → default */
	int n_threads;  /* 0 → 1 */
	const struct eng_kernels *kernels; /* NULL → eng_kernels_get() */
	/* The file is mmapped read-only: once a matrix has been repacked for
	 * the kernels, its file pages may be dropped (madvise), so resident
	 * memory stays near the file size. Never set it for read buffers. */
	int release_source;
};

struct eng_model;

/* Builds a model over the parsed file <g>, which must outlive it (the
 * weights are read in place). On failure *<out> is NULL and <err> names the
 * architecture, key or tensor at fault (e.g. an unsupported type). */
ENG_WUR enum eng_status eng_model_new(const struct eng_gguf *g,
				      const struct eng_model_opts *opts,
				      struct eng_model **out, char *err, size_t err_len);
void eng_model_free(struct eng_model *m); /* NULL is a no-op */

const struct eng_hparams *eng_model_hparams(const struct eng_model *m);
int eng_model_n_ctx(const struct eng_model *m);
const struct eng_kernels *eng_model_kernels(const struct eng_model *m);
/* Bytes held by the KV cache and by the other scratch buffers. */
size_t eng_model_kv_bytes(const struct eng_model *m);

/* Feeds <n> tokens at positions <pos> .. <pos>+<n>-1 (positions below <pos>
 * must already be in the cache; a smaller <pos> rewinds it) and sets
 * *<logits> to the last token's n_vocab logits, owned by the model and valid
 * until the next call. ENG_ERR_RANGE when the context would overflow or a
 * token id is out of the vocabulary. */
ENG_WUR enum eng_status eng_model_eval(struct eng_model *m, const int32_t *tokens,
				       int n, int pos, const float **logits,
				       char *err, size_t err_len);

#endif
