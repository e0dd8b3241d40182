/* CPU compute kernels: dot products of one weight row (any supported type)
 * with activations in that type's format, activation quantizers, and the
 * row-blocked matmul driver. Scalar, AVX2 and AVX-512 variants sit behind
 * one table; the best one the CPU supports is chosen at run time unless
 * the environment variable LW_ENGINE_KERNELS names one (scalar|avx2|avx512). */
#ifndef LW_ENGINE_KERNELS_H
#define LW_ENGINE_KERNELS_H

#include <stddef.h>

#include "engine/quant.h"

/* Returns W_row . x for a row of <n> weights at <w> and <n> activations at
 * <x> in eng_qtype_act(type) format. */
typedef float (*eng_dot_fn)(size_t n, const void *w, const void *x);
/* Computes y[t*ldy + r] = W_r . x_t for <nr> rows starting at <w> (row
 * stride <wstride> bytes) and <nt> activation rows at <x> (stride <xstride>
 * bytes): a register-tiled block for prefill. */
typedef void (*eng_gemm_fn)(size_t n, const void *w, size_t wstride, int nr,
			    const void *x, size_t xstride, int nt,
			    float *y, size_t ldy);
/* Writes <n> floats of <x> as activations of one format into <y>. */
typedef void (*eng_quant_fn)(const float *x, void *y, size_t n);

struct eng_kernels {
	const char *name;
	eng_dot_fn dot[ENG_QT_COUNT];      /* indexed by enum eng_qtype */
	eng_gemm_fn gemm[ENG_QT_COUNT];    /* NULL: the driver loops dot */
	eng_quant_fn quant[ENG_ACT_COUNT]; /* indexed by enum eng_act */
	/* y[i] = sum_j x[j] * w[j] over <n>: float vectors (attention). */
	float (*dot_f32)(size_t n, const float *x, const float *w);
	/* y[i] += a * x[i] */
	void (*axpy_f32)(size_t n, float a, const float *x, float *y);
};

enum eng_kernel_id {
	ENG_KERNELS_SCALAR = 0,
	ENG_KERNELS_AVX2 = 1,
	ENG_KERNELS_AVX512 = 2,
	ENG_KERNELS_COUNT
};

/* The variant <id>, or NULL when this CPU (or this build) lacks it. Entries
 * a variant does not implement are filled with the scalar ones. */
const struct eng_kernels *eng_kernels_variant(enum eng_kernel_id id);
/* The best supported variant, or the one LW_ENGINE_KERNELS names (NULL if
 * that one is unknown or unsupported here). */
const struct eng_kernels *eng_kernels_get(void);

/* Rows [<r0>,<r1>) of a weight matrix of type <t> (<n> columns, rows of
 * eng_qtype_row_bytes bytes from <w>) times <nt> activation rows <xa>
 * (each eng_act_row_bytes bytes): y[t*ldy + r] for r in [r0,r1). */
void eng_matmul_rows(const struct eng_kernels *k, enum eng_qtype t,
		     const void *w, size_t n, int r0, int r1,
		     const void *xa, int nt, float *y, size_t ldy);

/* Variant tables, defined in kernels_<variant>.c (NULL entries allowed). */
extern const struct eng_kernels eng_kernels_scalar_tab;
extern const struct eng_kernels eng_kernels_avx2_tab;
extern const struct eng_kernels eng_kernels_avx512_tab;

#endif
