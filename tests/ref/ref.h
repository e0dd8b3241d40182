/* The reference forward pass: plain scalar C, one token at a time, every
 * weight dequantized to F32 at load, double accumulators, textbook RoPE.
 * Slow and obviously right; tests hold the optimized engine against it. */
#ifndef LW_TESTS_REF_H
#define LW_TESTS_REF_H

#include <stdint.h>

#include "engine/gguf.h"

struct ref_model;

/* NULL on an unsupported or malformed file (<err> says why). */
struct ref_model *ref_model_new(const struct eng_gguf *g, int n_ctx, char *err, size_t err_len);
void ref_model_free(struct ref_model *m);
int ref_model_n_vocab(const struct ref_model *m);
/* Runs <token> at <pos> (0 ≤ pos < n_ctx, earlier positions already run)
 * and writes n_vocab logits to <logits>. */
void ref_model_eval(struct ref_model *m, int32_t token, int pos, float *logits);

#endif
