/* The weights of a llama-family transformer (architectures llama, qwen2,
 * qwen3): hyper-parameters from GGUF metadata, weights used in place from
 * the loaded file (any of F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K) plus the
 * backend's prepared copies. Immutable after load. Running it is
 * engine/forward.h; sequences' KV cells are engine/kv.h. */
#ifndef LW_ENGINE_MODEL_H
#define LW_ENGINE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

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

struct eng_backend;

struct eng_model_opts {
	/* Prepares the weights and runs the compute; must outlive the model.
	 * NULL: a CPU backend with eng_kernels_get(), owned by the model. */
	const struct eng_backend *backend;
	/* The file is mmapped read-only: once a matrix has been repacked for
	 * the backend, its file pages may be dropped (madvise), so resident
	 * memory stays near the file size. Never set it for read buffers. */
	int release_source;
};

struct eng_model;

/* Builds a model over the parsed file <g>, which must outlive it (the
 * weights are read in place). On failure *<out> is NULL and <err> names the
 * architecture, key or tensor at fault (e.g. an unsupported type). The
 * model holds weights only: KV cells are in an eng_kv pool (engine/kv.h),
 * per-step scratch in an eng_compute (engine/forward.h). Read-only once
 * built: any number of threads may use it at once. */
ENG_WUR enum eng_status eng_model_new(const struct eng_gguf *g,
				      const struct eng_model_opts *opts,
				      struct eng_model **out, char *err, size_t err_len);
void eng_model_free(struct eng_model *m); /* NULL is a no-op */

const struct eng_hparams *eng_model_hparams(const struct eng_model *m);
const struct eng_backend *eng_model_backend(const struct eng_model *m);
/* Bytes of one KV cell: keys and values of one position, every layer. */
size_t eng_model_kv_cell_bytes(const struct eng_model *m);

#endif
