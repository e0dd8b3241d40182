/* Test-model generator core: llama / qwen2 / qwen3 GGUFs with seeded random
 * weights in any supported type (F32 weights quantized into the type's
 * blocks), with a tokenizer either copied from a vocabulary GGUF or a small
 * synthetic SentencePiece-style one. Used by tests/tools/gen_model.c and by
 * the tests in-process. */
#ifndef LW_TESTS_GENMODEL_H
#define LW_TESTS_GENMODEL_H

#include <stdint.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "engine/load.h"

struct gm_spec {
	const char *arch;       /* "llama", "qwen2", "qwen3" */
	enum eng_type type;     /* every matrix (token_embd included); norms stay F32 */
	int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx;
	int n_vocab;            /* synthetic vocabulary size (ignored with vocab_path) */
	int tied;               /* no output.weight */
	float rope_base;
	float weight_scale;     /* spread of random matrix weights (0 → 1/sqrt(n_in)) */
	uint64_t seed;
	const char *vocab_path; /* copy tokenizer.* from this GGUF, or NULL */
	const char *chat_template; /* tokenizer.chat_template to write, or NULL (a vocabulary
	                            * that has one keeps it) */
};

/* Fills <s> with preset <name>: "tiny" (64 wide, 2 layers, GQA),
 * "tiny256" (256 wide, for K-quants), "100m" (768 wide, 12 layers, ~124M
 * parameters with a 50k vocabulary). Arch llama, type F32, seed 1. Returns
 * nonzero for an unknown name. */
int gm_preset(const char *name, struct gm_spec *s);

struct gm_model; /* a planned file: metadata set, tensors filled on write */

ENG_WUR enum eng_status gm_new(const struct gm_spec *s, struct gm_model **out,
			       char *err, size_t err_len);
void gm_free(struct gm_model *m);
uint64_t gm_n_params(const struct gm_model *m);
/* Writes the GGUF to <path>, or into memory (*<buf> is the caller's, free()). */
ENG_WUR enum eng_status gm_write_file(struct gm_model *m, const char *path,
				      char *err, size_t err_len);
ENG_WUR enum eng_status gm_write_mem(struct gm_model *m, void **buf, size_t *len,
				     char *err, size_t err_len);

#endif
