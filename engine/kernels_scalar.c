/* The portable kernels: plain C, always compiled, the fallback for every
 * entry another variant leaves out. */
#include <math.h>

#include "engine/kernels.h"

static float dot_f32w(size_t n, const void *w, const void *x)
{
	const float *a = w, *b = x;
	float s = 0;
	for (size_t i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static float dot_f16(size_t n, const void *w, const void *x)
{
	const uint16_t *a = w;
	const float *b = x;
	float s = 0;
	for (size_t i = 0; i < n; i++)
		s += eng_fp16_to_fp32(a[i]) * b[i];
	return s;
}

static float dot_bf16(size_t n, const void *w, const void *x)
{
	const uint16_t *a = w;
	const float *b = x;
	float s = 0;
	for (size_t i = 0; i < n; i++)
		s += eng_bf16_to_fp32(a[i]) * b[i];
	return s;
}

static float dot_q8_0(size_t n, const void *w, const void *x)
{
	const struct eng_blk_q8_0 *a = w;
	const struct eng_act_q8 *b = x;
	float s = 0;
	for (size_t i = 0; i < n / ENG_QK; i++) {
		int32_t acc = 0;
		for (int j = 0; j < ENG_QK; j++)
			acc += a[i].qs[j] * b[i].qs[j];
		s += eng_fp16_to_fp32(a[i].d) * b[i].d * (float)acc;
	}
	return s;
}

static float dot_q4_0(size_t n, const void *w, const void *x)
{
	const struct eng_blk_q4_0 *a = w;
	const struct eng_act_q8 *b = x;
	float s = 0;
	for (size_t i = 0; i < n / ENG_QK; i++) {
		int32_t acc = 0;
		for (int j = 0; j < ENG_QK / 2; j++)
			acc += (a[i].qs[j] & 0xF) * b[i].qs[j] +
			       (a[i].qs[j] >> 4) * b[i].qs[j + 16];
		acc -= 8 * b[i].s;
		s += eng_fp16_to_fp32(a[i].d) * b[i].d * (float)acc;
	}
	return s;
}

static float dot_q4_k(size_t n, const void *w, const void *x)
{
	const struct eng_blk_q4_k *a = w;
	const struct eng_act_q8k *b = x;
	float s = 0;
	for (size_t i = 0; i < n / ENG_QKK; i++) {
		const uint8_t *sc = a[i].scales;
		const uint8_t *q = a[i].qs;
		const int8_t *y = b[i].qs;
		int32_t sum_q = 0, sum_m = 0;
		for (int j = 0; j < 8; j++) {
			uint8_t ls, lm;
			if (j < 4) {
				ls = sc[j] & 63;
				lm = sc[j + 4] & 63;
			} else {
				ls = (uint8_t)((sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4));
				lm = (uint8_t)((sc[j + 4] >> 4) | ((sc[j] >> 6) << 4));
			}
			/* sub-block j: nibbles of qs[32*(j/2) ..], low for even j */
			const uint8_t *qq = q + 32 * (j / 2);
			int shift = (j & 1) * 4;
			int32_t acc = 0;
			for (int l = 0; l < 32; l++)
				acc += ((qq[l] >> shift) & 0xF) * y[j * 32 + l];
			sum_q += ls * acc;
			sum_m += lm * (b[i].bsums[2 * j] + b[i].bsums[2 * j + 1]);
		}
		s += b[i].d * (eng_fp16_to_fp32(a[i].d) * (float)sum_q -
			       eng_fp16_to_fp32(a[i].dmin) * (float)sum_m);
	}
	return s;
}

static float dot_q6_k(size_t n, const void *w, const void *x)
{
	const struct eng_blk_q6_k *a = w;
	const struct eng_act_q8k *b = x;
	float s = 0;
	for (size_t i = 0; i < n / ENG_QKK; i++) {
		const uint8_t *ql = a[i].ql, *qh = a[i].qh;
		const int8_t *y = b[i].qs;
		int32_t g[16] = {0};
		for (int h = 0; h < 2; h++) {
			for (int l = 0; l < 32; l++) {
				int base = h * 128;
				int q1 = (ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4);
				int q2 = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
				int q3 = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
				int q4 = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
				g[(base + l) / 16] += q1 * y[base + l];
				g[(base + l + 32) / 16] += q2 * y[base + l + 32];
				g[(base + l + 64) / 16] += q3 * y[base + l + 64];
				g[(base + l + 96) / 16] += q4 * y[base + l + 96];
			}
			ql += 64;
			qh += 32;
		}
		int32_t acc = 0;
		for (int k = 0; k < 16; k++)
			acc += a[i].scales[k] * (g[k] - 32 * b[i].bsums[k]);
		s += b[i].d * eng_fp16_to_fp32(a[i].d) * (float)acc;
	}
	return s;
}

static void quant_f32(const float *x, void *y, size_t n)
{
	float *o = y;
	for (size_t i = 0; i < n; i++)
		o[i] = x[i];
}

static void quant_q8(const float *x, void *y, size_t n)
{
	eng_quantize_act_q8(x, y, n);
}

static void quant_q8k(const float *x, void *y, size_t n)
{
	eng_quantize_act_q8k(x, y, n);
}

static float vdot(size_t n, const float *x, const float *w)
{
	float s = 0;
	for (size_t i = 0; i < n; i++)
		s += x[i] * w[i];
	return s;
}

static void axpy(size_t n, float a, const float *x, float *y)
{
	for (size_t i = 0; i < n; i++)
		y[i] += a * x[i];
}

static void attn(const float *q, const float *kt, size_t kt_ld, const float *v, size_t v_ld,
		 int n_pos, int hd, float scale, float *sc, float *out)
{
	for (int j = 0; j < n_pos; j++)
		sc[j] = 0;
	for (int d = 0; d < hd; d++) {
		const float *kr = kt + (size_t)d * kt_ld;
		for (int j = 0; j < n_pos; j++)
			sc[j] += q[d] * kr[j];
	}
	float mx = -INFINITY;
	for (int j = 0; j < n_pos; j++) {
		sc[j] *= scale;
		mx = sc[j] > mx ? sc[j] : mx;
	}
	double sum = 0;
	for (int j = 0; j < n_pos; j++) {
		sc[j] = expf(sc[j] - mx);
		sum += sc[j];
	}
	float inv = (float)(1.0 / sum);
	for (int d = 0; d < hd; d++)
		out[d] = 0;
	for (int j = 0; j < n_pos; j++) {
		float w = sc[j] * inv;
		const float *vr = v + (size_t)j * v_ld;
		for (int d = 0; d < hd; d++)
			out[d] += w * vr[d];
	}
}

static void attn_multi(int nq, const float *const *q, const int *n_pos, const float *kt,
		       size_t kt_ld, const float *v, size_t v_ld, int hd, float scale,
		       float *sc, size_t sc_ld, float *const *out)
{
	for (int i = 0; i < nq; i++)
		attn(q[i], kt, kt_ld, v, v_ld, n_pos[i], hd, scale, sc + (size_t)i * sc_ld, out[i]);
}

const struct eng_kernels eng_kernels_scalar_tab = {
	.name = "scalar",
	.dot = {
		[ENG_QT_F32] = dot_f32w,
		[ENG_QT_F16] = dot_f16,
		[ENG_QT_BF16] = dot_bf16,
		[ENG_QT_Q8_0] = dot_q8_0,
		[ENG_QT_Q4_0] = dot_q4_0,
		[ENG_QT_Q4_K] = dot_q4_k,
		[ENG_QT_Q6_K] = dot_q6_k,
	},
	.quant = {
		[ENG_ACT_F32] = quant_f32,
		[ENG_ACT_Q8] = quant_q8,
		[ENG_ACT_Q8K] = quant_q8k,
	},
	.dot_f32 = vdot,
	.axpy_f32 = axpy,
	.attn = attn,
	.attn_multi = attn_multi,
};
