/* Kernels against plain references: fp16/bf16 conversion, quantize →
 * dequantize error per weight type, every kernel variant's quantized dot
 * products against dequantize-then-F32 dots, activation quantizers against
 * the scalar one, and the row-blocked matmul against single dots. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/kernels.h"
#include "engine/quant.h"
#include "engine/threadpool.h"

static const enum eng_qtype types[] = {
	ENG_QT_F32, ENG_QT_F16, ENG_QT_BF16, ENG_QT_Q8_0, ENG_QT_Q4_0, ENG_QT_Q4_K, ENG_QT_Q6_K,
};
#define N_TYPES (sizeof(types) / sizeof(types[0]))

static uint64_t rng = 0x1234567887654321ull;
static float frand(void) /* uniform in [-1, 1) */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)(rng >> 40) / 8388608.0f - 1.0f;
}

static void test_fp16_roundtrip_every_value(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 65536; h++) {
		if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
			continue; /* NaN payloads need not survive */
		float f = eng_fp16_to_fp32((uint16_t)h);
		assert_int_equal(eng_fp32_to_fp16(f), h);
	}
	assert_true(eng_fp16_to_fp32(0x3c00) == 1.0f);
	assert_true(eng_fp16_to_fp32(0xc000) == -2.0f);
	assert_true(eng_fp16_to_fp32(0x0001) == 5.9604644775390625e-8f);
	/* rounding: 1 + 2^-11 is a tie → even (1.0); a bit more rounds up */
	assert_int_equal(eng_fp32_to_fp16(1.0f + 1.0f / 2048), 0x3c00);
	assert_int_equal(eng_fp32_to_fp16(1.0f + 1.5f / 2048), 0x3c01);
	assert_int_equal(eng_fp32_to_fp16(1e6f), 0x7c00);
	assert_true(isnan(eng_fp16_to_fp32(eng_fp32_to_fp16(NAN))));
}

static void test_bf16_roundtrip_and_rounding(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 65536; h++) {
		if ((h & 0x7f80) == 0x7f80 && (h & 0x7f))
			continue;
		assert_int_equal(eng_fp32_to_bf16(eng_bf16_to_fp32((uint16_t)h)), h);
	}
	assert_int_equal(eng_fp32_to_bf16(1.0f), 0x3f80);
	/* 1 + 2^-8 is a tie between 1 and 1 + 2^-7 → even (1.0) */
	assert_int_equal(eng_fp32_to_bf16(1.0f + 1.0f / 256), 0x3f80);
	assert_int_equal(eng_fp32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
}

static void test_type_table(void **state)
{
	(void)state;
	assert_int_equal(eng_qtype_row_bytes(ENG_QT_Q8_0, 64), 68);
	assert_int_equal(eng_qtype_row_bytes(ENG_QT_Q4_0, 64), 36);
	assert_int_equal(eng_qtype_row_bytes(ENG_QT_Q4_K, 512), 288);
	assert_int_equal(eng_qtype_row_bytes(ENG_QT_Q6_K, 256), 210);
	assert_int_equal(eng_qtype_row_bytes(ENG_QT_BF16, 3), 6);
	assert_int_equal(eng_qtype_row_bytes(ENG_QT_Q4_K, 100), 0);
	assert_false(eng_qtype_supported(13));
	assert_string_equal(eng_qtype_name(13), "Q5_K");
}

/* Worst absolute error of quantize → dequantize, relative to max |x|. */
static float roundtrip_err(enum eng_qtype t, const float *x, size_t n)
{
	void *q = malloc(eng_qtype_row_bytes(t, n));
	float *y = malloc(n * sizeof(float)), amax = 0, e = 0;
	eng_quantize_row(t, x, q, n);
	eng_dequantize_row(t, q, y, n);
	for (size_t i = 0; i < n; i++) {
		amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
		e = fabsf(x[i] - y[i]) > e ? fabsf(x[i] - y[i]) : e;
	}
	free(q);
	free(y);
	return e / amax;
}

static void test_quantize_dequantize_error(void **state)
{
	(void)state;
	const size_t n = 1024;
	float *x = malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++)
		x[i] = frand() * (1.0f + (float)(i % 7));
	/* bounds: half a quantization step of each format, with margin */
	assert_true(roundtrip_err(ENG_QT_F32, x, n) == 0);
	assert_true(roundtrip_err(ENG_QT_F16, x, n) < 1e-3f);
	assert_true(roundtrip_err(ENG_QT_BF16, x, n) < 8e-3f);
	assert_true(roundtrip_err(ENG_QT_Q8_0, x, n) < 1.0f / 127);
	assert_true(roundtrip_err(ENG_QT_Q4_0, x, n) < 1.0f / 8);
	assert_true(roundtrip_err(ENG_QT_Q4_K, x, n) < 1.0f / 6);
	assert_true(roundtrip_err(ENG_QT_Q6_K, x, n) < 1.0f / 25);
	/* a constant row and a zero row quantize without NaN */
	for (size_t j = 0; j < N_TYPES; j++) {
		float z[256] = {0}, c[256], y[256];
		unsigned char buf[1024];
		for (int i = 0; i < 256; i++)
			c[i] = 0.5f;
		eng_quantize_row(types[j], z, buf, 256);
		eng_dequantize_row(types[j], buf, y, 256);
		for (int i = 0; i < 256; i++)
			assert_true(y[i] == 0);
		eng_quantize_row(types[j], c, buf, 256);
		eng_dequantize_row(types[j], buf, y, 256);
		for (int i = 0; i < 256; i++)
			assert_true(fabsf(y[i] - 0.5f) < 0.05f);
	}
	free(x);
}

/* The activation vector a kernel really sees, dequantized. */
static void act_dequant(enum eng_act a, const void *xa, float *y, size_t n)
{
	if (a == ENG_ACT_F32) {
		memcpy(y, xa, n * sizeof(float));
	} else if (a == ENG_ACT_Q8) {
		const struct eng_act_q8 *b = xa;
		for (size_t i = 0; i < n; i++)
			y[i] = b[i / ENG_QK].d * b[i / ENG_QK].qs[i % ENG_QK];
	} else {
		const struct eng_act_q8k *b = xa;
		for (size_t i = 0; i < n; i++)
			y[i] = b[i / ENG_QKK].d * b[i / ENG_QKK].qs[i % ENG_QKK];
	}
}

static void check_dots(const struct eng_kernels *k, enum eng_qtype t, size_t n)
{
	enum eng_act a = eng_qtype_act(t);
	float *w = malloc(n * sizeof(float)), *x = malloc(n * sizeof(float));
	float *wd = malloc(n * sizeof(float)), *xd = malloc(n * sizeof(float));
	void *wq = malloc(eng_qtype_row_bytes(t, n));
	void *xa = malloc(eng_act_row_bytes(a, n)), *xa_ref = malloc(eng_act_row_bytes(a, n));
	for (int rep = 0; rep < 4; rep++) {
		for (size_t i = 0; i < n; i++) {
			w[i] = frand() * 0.1f;
			x[i] = frand() * (rep + 1.0f);
		}
		eng_quantize_row(t, w, wq, n);
		eng_dequantize_row(t, wq, wd, n);
		k->quant[a](x, xa, n);
		eng_kernels_variant(ENG_KERNELS_SCALAR)->quant[a](x, xa_ref, n);
		/* same activation blocks as the scalar quantizer */
		assert_memory_equal(xa, xa_ref, eng_act_row_bytes(a, n));
		act_dequant(a, xa, xd, n);
		double ref = 0, mag = 0, ref_f = 0;
		for (size_t i = 0; i < n; i++) {
			ref += (double)wd[i] * xd[i];
			ref_f += (double)wd[i] * x[i];
			mag += fabs((double)wd[i] * xd[i]);
		}
		float got = k->dot[t](n, wq, xa);
		/* the integer part is exact: only float rounding of block sums */
		if (fabs(got - ref) > 1e-5 * mag + 1e-6)
			fail_msg("%s %s n=%zu: dot %.7g, dequantized reference %.7g (|terms| %.4g)",
				 k->name, eng_qtype_name(t), n, (double)got, ref, mag);
		/* and activation quantization costs at most ~1% of the magnitude */
		if (fabs(got - ref_f) > 0.01 * mag + 1e-6)
			fail_msg("%s %s n=%zu: dot %.7g vs float activations %.7g",
				 k->name, eng_qtype_name(t), n, (double)got, ref_f);
	}
	free(w); free(x); free(wd); free(xd); free(wq); free(xa); free(xa_ref);
}

static void test_every_variant_every_type_dot(void **state)
{
	(void)state;
	const size_t sizes[] = {256, 512, 768, 1280, 2816};
	int variants = 0;
	for (int v = 0; v < ENG_KERNELS_COUNT; v++) {
		const struct eng_kernels *k = eng_kernels_variant((enum eng_kernel_id)v);
		if (!k)
			continue;
		variants++;
		for (size_t j = 0; j < N_TYPES; j++)
			for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
				check_dots(k, types[j], sizes[s]);
		/* odd block counts exercise the tails of the paired-block loops */
		for (size_t j = 0; j < N_TYPES; j++)
			if (eng_qtype_block(types[j]) < ENG_QKK) {
				check_dots(k, types[j], 32 * 3);
				check_dots(k, types[j], 32 * 7);
			}
	}
	assert_true(variants >= 1);
}

static void test_float_helpers(void **state)
{
	(void)state;
	for (int v = 0; v < ENG_KERNELS_COUNT; v++) {
		const struct eng_kernels *k = eng_kernels_variant((enum eng_kernel_id)v);
		if (!k)
			continue;
		for (size_t n = 1; n < 70; n += 3) {
			float a[70], b[70], y[70], y2[70];
			double ref = 0;
			for (size_t i = 0; i < n; i++) {
				a[i] = frand();
				b[i] = frand();
				y[i] = y2[i] = frand();
				ref += (double)a[i] * b[i];
			}
			assert_true(fabs(k->dot_f32(n, a, b) - ref) < 1e-5);
			k->axpy_f32(n, 0.5f, a, y);
			for (size_t i = 0; i < n; i++)
				assert_true(fabsf(y[i] - (y2[i] + 0.5f * a[i])) < 1e-6f);
		}
	}
}

static void test_matmul_rows_matches_dots(void **state)
{
	(void)state;
	const size_t n = 512;
	const int rows = 37;
	/* 4, 5, 7 tokens: every partial token tile of the 3-token AVX2 tiles */
	for (int nt = 4; nt <= 7; nt += 1 + (nt == 5))
	for (int v = 0; v < ENG_KERNELS_COUNT; v++) {
		const struct eng_kernels *k = eng_kernels_variant((enum eng_kernel_id)v);
		if (!k)
			continue;
		for (size_t j = 0; j < N_TYPES; j++) {
			enum eng_qtype t = types[j];
			enum eng_act a = eng_qtype_act(t);
			size_t rb = eng_qtype_row_bytes(t, n), xb = eng_act_row_bytes(a, n);
			char *w = malloc(rb * rows), *xa = malloc(xb * nt);
			float row[512], y[7 * 40], ymv[40];
			for (int r = 0; r < rows; r++) {
				for (size_t i = 0; i < n; i++)
					row[i] = frand();
				eng_quantize_row(t, row, w + r * rb, n);
			}
			for (int tk = 0; tk < nt; tk++) {
				for (size_t i = 0; i < n; i++)
					row[i] = frand();
				k->quant[a](row, xa + tk * xb, n);
			}
			memset(y, 0, sizeof(y));
			eng_matmul_rows(k, t, w, n, 3, rows, xa, nt, y, 40);
			for (int tk = 0; tk < nt; tk++) {
				eng_matmul_rows(k, t, w, n, 0, rows, xa + tk * xb, 1, ymv, 40);
				for (int r = 0; r < rows; r++) {
					float want = r < 3 ? 0 : k->dot[t](n, w + r * rb, xa + tk * xb);
					assert_true(fabsf(y[tk * 40 + r] - want) <= 1e-4f * (1 + fabsf(want)));
					assert_true(fabsf(ymv[r] - k->dot[t](n, w + r * rb, xa + tk * xb)) == 0);
				}
			}
			free(w);
			free(xa);
		}
	}
}

/* Rows longer than the AVX2 Q8_0 prefill keeps scales for at once (512
 * blocks) are multiplied in column slices whose partial sums add up. */
static void test_matmul_long_rows(void **state)
{
	(void)state;
	const size_t n = 544 * 32;
	const int rows = 6, nt = 3;
	const enum eng_qtype t = ENG_QT_Q8_0;
	const enum eng_act a = ENG_ACT_Q8;
	size_t rb = eng_qtype_row_bytes(t, n), xb = eng_act_row_bytes(a, n);
	char *w = malloc(rb * rows), *xa = malloc(xb * nt);
	float *row = malloc(n * sizeof(float)), y[3 * 8];
	assert_non_null(w);
	assert_non_null(xa);
	assert_non_null(row);
	for (int r = 0; r < rows; r++) {
		for (size_t i = 0; i < n; i++)
			row[i] = frand();
		eng_quantize_row(t, row, w + r * rb, n);
	}
	for (int v = 0; v < ENG_KERNELS_COUNT; v++) {
		const struct eng_kernels *k = eng_kernels_variant((enum eng_kernel_id)v);
		if (!k)
			continue;
		for (int tk = 0; tk < nt; tk++) {
			for (size_t i = 0; i < n; i++)
				row[i] = frand();
			k->quant[a](row, xa + tk * xb, n);
		}
		eng_matmul_rows(k, t, w, n, 0, rows, xa, nt, y, 8);
		for (int tk = 0; tk < nt; tk++)
			for (int r = 0; r < rows; r++) {
				float want = k->dot[t](n, w + r * rb, xa + tk * xb);
				assert_true(fabsf(y[tk * 8 + r] - want) <= 1e-4f * (1 + fabsf(want)));
			}
	}
	free(row);
	free(xa);
	free(w);
}

/* Packed (row-interleaved) layouts give the same products as the file
 * layout's dot, for row counts that are not a multiple of 16 (nor of the
 * AVX2 kernels' 8-row halves: tails in the first and in the second half)
 * and token counts that leave partial tiles. */
static void test_packed_gemm_matches_dots(void **state)
{
	(void)state;
	const size_t n = 512; /* a multiple of every block size */
	const int row_counts[] = {37, 5, 13, 21};
	int checked = 0, checked_q4k = 0, checked_q8 = 0;
	for (int v = 0; v < ENG_KERNELS_COUNT; v++) {
		const struct eng_kernels *k = eng_kernels_variant((enum eng_kernel_id)v);
		if (!k)
			continue;
		for (size_t j = 0; j < N_TYPES; j++) {
			enum eng_qtype t = types[j];
			if (!k->pack[t])
				continue;
			for (size_t rc = 0; rc < sizeof(row_counts) / sizeof(row_counts[0]); rc++) {
				const int rows = row_counts[rc], groups = (rows + 15) / 16;
				enum eng_act a = eng_qtype_act(t);
				size_t rb = eng_qtype_row_bytes(t, n), xb = eng_act_row_bytes(a, n);
				const int nts[] = {1, 2, 3, 5, 7, 8, 11, 19};
				char *w = malloc(rb * rows), *xa = malloc(xb * 19);
				void *p = malloc(k->pack_size[t](rows, n));
				float row[512], y[19 * 40];
				for (int r = 0; r < rows; r++) {
					for (size_t i = 0; i < n; i++)
						row[i] = frand() * (1 + r % 3);
					eng_quantize_row(t, row, w + r * rb, n);
				}
				for (int tk = 0; tk < 19; tk++) {
					for (size_t i = 0; i < n; i++)
						row[i] = frand();
					k->quant[a](row, xa + tk * xb, n);
				}
				k->pack[t](w, rows, n, p);
				for (size_t c = 0; c < sizeof(nts) / sizeof(nts[0]); c++) {
					int nt = nts[c];
					for (int i = 0; i < 19 * 40; i++)
						y[i] = -12345.0f;
					/* groups 1.. only, then group 0: rows 0..15 untouched first */
					if (groups > 1) {
						k->gemm_packed[t](n, p, rows, 1, groups, xa, nt, y, 40);
						for (int tk = 0; tk < nt; tk++)
							for (int r = 0; r < 16; r++)
								assert_true(y[tk * 40 + r] == -12345.0f);
					}
					k->gemm_packed[t](n, p, rows, 0, 1, xa, nt, y, 40);
					for (int tk = 0; tk < nt; tk++) {
						for (int r = 0; r < rows; r++) {
							float want = eng_kernels_variant(ENG_KERNELS_SCALAR)->dot[t](
								n, w + r * rb, xa + tk * xb);
							float got = y[tk * 40 + r];
							if (fabsf(got - want) > 1e-4f * (1 + fabsf(want)))
								fail_msg("%s packed %s rows=%d nt=%d row %d tok %d: %g vs %g",
									 k->name, eng_qtype_name(t), rows, nt, r, tk,
									 (double)got, (double)want);
						}
						/* rows past the matrix are never written */
						for (int r = rows; r < 40; r++)
							assert_true(y[tk * 40 + r] == -12345.0f);
					}
					checked++;
					checked_q4k += t == ENG_QT_Q4_K;
					checked_q8 += t == ENG_QT_Q8_0;
				}
				free(w);
				free(xa);
				free(p);
			}
		}
	}
	if (eng_kernels_variant(ENG_KERNELS_AVX512))
		assert_true(checked >= 10);
	/* the AVX2 variant packs Q4_K and Q8_0 (and so does AVX-512): 4 row
	 * counts x 8 token counts each */
	if (eng_kernels_variant(ENG_KERNELS_AVX2)) {
		assert_true(checked_q4k >= 32);
		assert_true(checked_q8 >= 32);
	}
}

/* Attention of one head against a double-precision reference, single and
 * multi-query, for head sizes below, at and above 64 and position counts
 * that leave partial 16/64-wide chunks. */
static void test_attention_kernels(void **state)
{
	(void)state;
	enum { LD = 160, MAXP = 150 };
	static float kt[128 * LD], v[MAXP * 128], q[4][128], sc[4 * (LD + 16)], out[4][128];
	const int hds[] = {16, 64, 80, 128};
	const int nps[] = {1, 15, 16, 17, 63, 64, 65, 150};
	for (size_t i = 0; i < sizeof(kt) / sizeof(kt[0]); i++)
		kt[i] = frand();
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		v[i] = frand();
	for (int vi = 0; vi < ENG_KERNELS_COUNT; vi++) {
		const struct eng_kernels *k = eng_kernels_variant((enum eng_kernel_id)vi);
		if (!k)
			continue;
		for (size_t a = 0; a < 4; a++) {
			int hd = hds[a];
			for (int i = 0; i < 4; i++)
				for (int d = 0; d < hd; d++)
					q[i][d] = frand() * 2;
			for (size_t b = 0; b < 8; b++) {
				for (int nq = 1; nq <= 4; nq++) {
					int np[4];
					const float *qs[4] = {q[0], q[1], q[2], q[3]};
					float *os[4] = {out[0], out[1], out[2], out[3]};
					for (int i = 0; i < nq; i++)
						np[i] = nps[b] - (nq - 1 - i) > 0 ? nps[b] - (nq - 1 - i) : 1;
					if (nq == 1)
						k->attn(q[0], kt, LD, v, 128, np[0], hd, 0.3f, sc, out[0]);
					else
						k->attn_multi(nq, qs, np, kt, LD, v, 128, hd, 0.3f, sc, LD + 16, os);
					for (int i = 0; i < nq; i++) {
						double s[MAXP], mx = -1e30, sum = 0;
						for (int j = 0; j < np[i]; j++) {
							s[j] = 0;
							for (int d = 0; d < hd; d++)
								s[j] += (double)q[i][d] * kt[d * LD + j];
							s[j] *= 0.3;
							mx = s[j] > mx ? s[j] : mx;
						}
						for (int j = 0; j < np[i]; j++)
							sum += exp(s[j] - mx);
						for (int d = 0; d < hd; d++) {
							double o = 0;
							for (int j = 0; j < np[i]; j++)
								o += exp(s[j] - mx) / sum * v[j * 128 + d];
							if (fabs(o - out[i][d]) > 1e-5)
								fail_msg("%s attn hd=%d n_pos=%d nq=%d q%d d%d: %g vs %g",
									 k->name, hd, np[i], nq, i, d, (double)out[i][d], o);
						}
					}
				}
			}
		}
	}
}

static void test_env_forces_scalar(void **state)
{
	(void)state;
	setenv("LW_ENGINE_KERNELS", "scalar", 1);
	const struct eng_kernels *k = eng_kernels_get();
	assert_non_null(k);
	assert_string_equal(k->name, "scalar");
	setenv("LW_ENGINE_KERNELS", "no-such-isa", 1);
	assert_null(eng_kernels_get());
	unsetenv("LW_ENGINE_KERNELS");
	assert_non_null(eng_kernels_get());
}

struct pool_ctx {
	int n_threads;
	_Atomic int hits[1000];
	_Atomic int bad_ith;
};

static void pool_fn(void *ctx, int chunk, int ith)
{
	struct pool_ctx *c = ctx;
	if (ith < 0 || ith >= c->n_threads)
		atomic_fetch_add(&c->bad_ith, 1);
	atomic_fetch_add(&c->hits[chunk], 1);
}

/* Every chunk runs exactly once per run, on a valid thread index, whether
 * the run is split or kept on the caller, for chunk counts around the
 * thread count (0 and 1 included). Then back-to-back runs whose chunk
 * counts grow, each with its own context at the same stack address: a
 * worker that reads the next run's chunk count against the previous run's
 * ticket would run a chunk twice (a bug the first version had). */
static void test_threadpool_runs_every_chunk(void **state)
{
	(void)state;
	static const int counts[] = {0, 1, 2, 3, 7, 64, 1000};
	assert_null(eng_pool_new(0));
	for (int n = 1; n <= 4; n++) {
		struct eng_pool *p = eng_pool_new(n);
		assert_non_null(p);
		assert_int_equal(eng_pool_size(p), n);
		for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
			static struct pool_ctx c;
			memset(&c, 0, sizeof(c));
			c.n_threads = n;
			for (int r = 0; r < 200; r++)
				eng_pool_run(p, pool_fn, &c, counts[k], r % 3 != 2);
			for (int i = 0; i < counts[k]; i++)
				assert_int_equal(atomic_load(&c.hits[i]), 200);
			assert_int_equal(atomic_load(&c.bad_ith), 0);
		}
		for (int r = 0; r < 20000; r++) {
			struct pool_ctx c; /* same slot every iteration */
			int nc = r % 67;
			c.n_threads = n;
			atomic_init(&c.bad_ith, 0);
			for (int i = 0; i < nc; i++)
				atomic_init(&c.hits[i], 0);
			eng_pool_run(p, pool_fn, &c, nc, r % 5 != 4);
			for (int i = 0; i < nc; i++)
				if (atomic_load(&c.hits[i]) != 1)
					fail_msg("run %d: chunk %d of %d ran %d times", r, i, nc,
						 atomic_load(&c.hits[i]));
			assert_int_equal(atomic_load(&c.bad_ith), 0);
		}
		eng_pool_free(p);
	}
	eng_pool_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fp16_roundtrip_every_value),
		cmocka_unit_test(test_bf16_roundtrip_and_rounding),
		cmocka_unit_test(test_type_table),
		cmocka_unit_test(test_quantize_dequantize_error),
		cmocka_unit_test(test_every_variant_every_type_dot),
		cmocka_unit_test(test_float_helpers),
		cmocka_unit_test(test_matmul_rows_matches_dots),
		cmocka_unit_test(test_matmul_long_rows),
		cmocka_unit_test(test_packed_gemm_matches_dots),
		cmocka_unit_test(test_attention_kernels),
		cmocka_unit_test(test_env_forces_scalar),
		cmocka_unit_test(test_threadpool_runs_every_chunk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
