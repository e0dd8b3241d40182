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
/* Row-interleaved ("packed") weights, built once at load by variants that
 * have them (AVX-512 VNNI: Q8_0, Q4_0, Q4_K, Q6_K; AVX2: Q8_0, Q4_0, Q4_K):
 * rows in groups of ENG_PACK_ROWS, each 32-weight block stored as 16 rows x
 * 4 consecutive weights per 64-byte vector (engine/pack.h), so one vpdpbusd
 * advances 16 rows at once (one vpmaddubsw 8 rows on AVX2) and the same
 * weights serve a whole tile of prompt tokens.
 * pack_size: bytes for <rows> rows of <n> weights (rows padded to 16).
 * pack: converts <rows> rows of the file layout at <src> into <dst>.
 * gemm_packed: y[t*ldy + r] = W_r . x_t for the rows of groups [g0, g1)
 * (rows >= <rows> are not written) and <nt> activation rows at <x>
 * (eng_act_row_bytes apart). */
#define ENG_PACK_ROWS 16
typedef size_t (*eng_pack_size_fn)(int rows, size_t n);
typedef void (*eng_pack_fn)(const void *src, int rows, size_t n, void *dst);
typedef void (*eng_gemm_packed_fn)(size_t n, const void *wp, int rows, int g0, int g1,
				   const void *x, int nt, float *y, size_t ldy);
/* Writes <n> floats of <x> as activations of one format into <y>. */
typedef void (*eng_quant_fn)(const float *x, void *y, size_t n);
/* Matmul for several tokens (prefill) in the file layout, with register
 * tiles: rows [<r0>, <r1>) of <w> (rows <rb> bytes apart) times <nt>
 * activation rows at <x> in eng_qtype_act(type) format (eng_act_row_bytes
 * apart) into y[t*ldy + r]. */
typedef void (*eng_gemm_fn)(size_t n, const void *w, size_t rb, int r0, int r1,
			    const void *x, int nt, float *y, size_t ldy);

struct eng_kernels {
	const char *name;
	eng_dot_fn dot[ENG_QT_COUNT];      /* indexed by enum eng_qtype */
	/* packed layout, per weight type; NULL where the variant has none */
	eng_pack_size_fn pack_size[ENG_QT_COUNT];
	eng_pack_fn pack[ENG_QT_COUNT];
	eng_gemm_packed_fn gemm_packed[ENG_QT_COUNT];
	eng_quant_fn quant[ENG_ACT_COUNT]; /* indexed by enum eng_act */
	eng_gemm_fn gemm[ENG_QT_COUNT];    /* per weight type; NULL: dot per pair */
	/* y[i] = sum_j x[j] * w[j] over <n>: float vectors (attention). */
	float (*dot_f32)(size_t n, const float *x, const float *w);
	/* y[i] += a * x[i] */
	void (*axpy_f32)(size_t n, float a, const float *x, float *y);
	/* One attention head over <n_pos> cached positions: out = softmax(
	 * scale * q.K^T) V, with K transposed — element (d, j) at
	 * kt[d*kt_ld + j] — and V row-major — (j, d) at v[j*v_ld + d]; <hd>
	 * values per head, <sc> scratch of n_pos floats. */
	void (*attn)(const float *q, const float *kt, size_t kt_ld, const float *v,
		     size_t v_ld, int n_pos, int hd, float scale, float *sc, float *out);
	/* The same for <nq> (1..ENG_ATTN_MAX_Q) queries of one head sharing the
	 * K/V loads: query i is q[i] over the first n_pos[i] positions
	 * (n_pos ascending), writes out[i]; <sc> holds nq rows of <sc_ld>. */
	void (*attn_multi)(int nq, const float *const *q, const int *n_pos, const float *kt,
			   size_t kt_ld, const float *v, size_t v_ld, int hd, float scale,
			   float *sc, size_t sc_ld, float *const *out);
};

#define ENG_ATTN_MAX_Q 4

enum eng_kernel_id {
	ENG_KERNELS_SCALAR = 0,
	ENG_KERNELS_AVX2 = 1,
	ENG_KERNELS_AVX512 = 2,
	ENG_KERNELS_COUNT
};

/* The variant <id>, or NULL when this CPU (or this build) lacks it. Entries
 * a variant does not implement come from the next variant down (avx512 →
 * avx2 → scalar). */
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
