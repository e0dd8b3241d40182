#include <math.h>
#include <string.h>

#include "engine/quant.h"

int eng_qtype_supported(uint32_t t)
{
	switch (t) {
	case ENG_QT_F32: case ENG_QT_F16: case ENG_QT_BF16:
	case ENG_QT_Q8_0: case ENG_QT_Q4_0: case ENG_QT_Q4_K: case ENG_QT_Q6_K:
		return 1;
	default:
		return 0;
	}
}

const char *eng_qtype_name(uint32_t t)
{
	switch (t) {
	case ENG_QT_F32: return "F32";
	case ENG_QT_F16: return "F16";
	case ENG_QT_BF16: return "BF16";
	case ENG_QT_Q8_0: return "Q8_0";
	case ENG_QT_Q4_0: return "Q4_0";
	case ENG_QT_Q4_K: return "Q4_K";
	case ENG_QT_Q6_K: return "Q6_K";
	case 3: return "Q4_1";
	case 6: return "Q5_0";
	case 7: return "Q5_1";
	case 9: return "Q8_1";
	case 10: return "Q2_K";
	case 11: return "Q3_K";
	case 13: return "Q5_K";
	case 15: return "Q8_K";
	default: return "unknown";
	}
}

size_t eng_qtype_block(enum eng_qtype t)
{
	switch (t) {
	case ENG_QT_F32: case ENG_QT_F16: case ENG_QT_BF16: return 1;
	case ENG_QT_Q8_0: case ENG_QT_Q4_0: return ENG_QK;
	case ENG_QT_Q4_K: case ENG_QT_Q6_K: return ENG_QKK;
	default: return 0;
	}
}

size_t eng_qtype_block_bytes(enum eng_qtype t)
{
	switch (t) {
	case ENG_QT_F32: return 4;
	case ENG_QT_F16: case ENG_QT_BF16: return 2;
	case ENG_QT_Q8_0: return sizeof(struct eng_blk_q8_0);
	case ENG_QT_Q4_0: return sizeof(struct eng_blk_q4_0);
	case ENG_QT_Q4_K: return sizeof(struct eng_blk_q4_k);
	case ENG_QT_Q6_K: return sizeof(struct eng_blk_q6_k);
	default: return 0;
	}
}

size_t eng_qtype_row_bytes(enum eng_qtype t, size_t n)
{
	size_t b = eng_qtype_block(t);
	if (b == 0 || n % b != 0)
		return 0;
	return n / b * eng_qtype_block_bytes(t);
}

enum eng_act eng_qtype_act(enum eng_qtype t)
{
	switch (t) {
	case ENG_QT_Q8_0: case ENG_QT_Q4_0: return ENG_ACT_Q8;
	case ENG_QT_Q4_K: case ENG_QT_Q6_K: return ENG_ACT_Q8K;
	default: return ENG_ACT_F32;
	}
}

size_t eng_act_row_bytes(enum eng_act a, size_t n)
{
	switch (a) {
	case ENG_ACT_Q8: return n / ENG_QK * sizeof(struct eng_act_q8);
	case ENG_ACT_Q8K: return n / ENG_QKK * sizeof(struct eng_act_q8k);
	default: return n * sizeof(float);
	}
}

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float eng_fp16_to_fp32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
	if (exp == 0x1f)
		return u2f(sign | 0x7f800000u | (man << 13));
	if (exp == 0) {
		/* zero or subnormal: man * 2^-24 */
		float v = (float)man * 5.9604644775390625e-8f;
		return sign ? -v : v;
	}
	return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t eng_fp32_to_fp16(float f)
{
	uint32_t u = f2u(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
	uint32_t a = u & 0x7fffffffu;
	if (a >= 0x7f800000u) /* inf or nan */
		return sign | 0x7c00 | (a > 0x7f800000u ? 0x200 : 0);
	if (a >= 0x477ff000u) /* rounds to >= 65520: overflow */
		return sign | 0x7c00;
	if (a < 0x38800000u) { /* below 2^-14: subnormal half */
		/* value / 2^-24, rounded to nearest even */
		float v = u2f(a) * 16777216.0f;
		return sign | (uint16_t)nearbyintf(v);
	}
	uint32_t r = a + 0xfffu + ((a >> 13) & 1); /* round to nearest even */
	return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

float eng_bf16_to_fp32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t eng_fp32_to_bf16(float f)
{
	uint32_t u = f2u(f);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 64); /* quiet nan */
	return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

/* ---- Q4_K scale packing (as GGUF stores it) ---- */
static void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
	if (j < 4) {
		*d = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
		*m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

static void deq_q4_k(const struct eng_blk_q4_k *x, float *y, size_t nb)
{
	for (size_t i = 0; i < nb; i++) {
		float d = eng_fp16_to_fp32(x[i].d), mn = eng_fp16_to_fp32(x[i].dmin);
		const uint8_t *q = x[i].qs;
		int is = 0;
		for (int j = 0; j < ENG_QKK; j += 64) {
			uint8_t sc, m;
			get_scale_min_k4(is, x[i].scales, &sc, &m);
			float d1 = d * sc, m1 = mn * m;
			get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
			float d2 = d * sc, m2 = mn * m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * (float)(q[l] & 0xF) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * (float)(q[l] >> 4) - m2;
			q += 32;
			is += 2;
		}
	}
}

static void deq_q6_k(const struct eng_blk_q6_k *x, float *y, size_t nb)
{
	for (size_t i = 0; i < nb; i++) {
		float d = eng_fp16_to_fp32(x[i].d);
		const uint8_t *ql = x[i].ql, *qh = x[i].qh;
		const int8_t *sc = x[i].scales;
		for (int n = 0; n < ENG_QKK; n += 128) {
			for (int l = 0; l < 32; l++) {
				int is = l / 16;
				int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
				int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
				int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
				int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
				y[l] = d * sc[is] * (float)q1;
				y[l + 32] = d * sc[is + 2] * (float)q2;
				y[l + 64] = d * sc[is + 4] * (float)q3;
				y[l + 96] = d * sc[is + 6] * (float)q4;
			}
			y += 128;
			ql += 64;
			qh += 32;
			sc += 8;
		}
	}
}

void eng_dequantize_row(enum eng_qtype t, const void *src, float *dst, size_t n)
{
	switch (t) {
	case ENG_QT_F32:
		memcpy(dst, src, n * sizeof(float));
		break;
	case ENG_QT_F16: {
		const uint16_t *s = src;
		for (size_t i = 0; i < n; i++)
			dst[i] = eng_fp16_to_fp32(s[i]);
		break;
	}
	case ENG_QT_BF16: {
		const uint16_t *s = src;
		for (size_t i = 0; i < n; i++)
			dst[i] = eng_bf16_to_fp32(s[i]);
		break;
	}
	case ENG_QT_Q8_0: {
		const struct eng_blk_q8_0 *b = src;
		for (size_t i = 0; i < n / ENG_QK; i++) {
			float d = eng_fp16_to_fp32(b[i].d);
			for (int j = 0; j < ENG_QK; j++)
				dst[i * ENG_QK + j] = d * b[i].qs[j];
		}
		break;
	}
	case ENG_QT_Q4_0: {
		const struct eng_blk_q4_0 *b = src;
		for (size_t i = 0; i < n / ENG_QK; i++) {
			float d = eng_fp16_to_fp32(b[i].d);
			for (int j = 0; j < ENG_QK / 2; j++) {
				dst[i * ENG_QK + j] = d * (float)((b[i].qs[j] & 0xF) - 8);
				dst[i * ENG_QK + j + 16] = d * (float)((b[i].qs[j] >> 4) - 8);
			}
		}
		break;
	}
	case ENG_QT_Q4_K:
		deq_q4_k(src, dst, n / ENG_QKK);
		break;
	case ENG_QT_Q6_K:
		deq_q6_k(src, dst, n / ENG_QKK);
		break;
	default:
		break;
	}
}

static void quant_q4_k(const float *x, struct eng_blk_q4_k *y, size_t nb)
{
	for (size_t i = 0; i < nb; i++, x += ENG_QKK) {
		float scale[8], minv[8], maxs = 0, maxm = 0;
		for (int j = 0; j < 8; j++) {
			float lo = 0, hi = 0;
			for (int l = 0; l < 32; l++) {
				float v = x[j * 32 + l];
				lo = v < lo ? v : lo;
				hi = v > hi ? v : hi;
			}
			scale[j] = (hi - lo) / 15.0f;
			minv[j] = -lo;
			maxs = scale[j] > maxs ? scale[j] : maxs;
			maxm = minv[j] > maxm ? minv[j] : maxm;
		}
		y[i].d = eng_fp32_to_fp16(maxs / 63.0f);
		y[i].dmin = eng_fp32_to_fp16(maxm / 63.0f);
		float d = eng_fp16_to_fp32(y[i].d), dm = eng_fp16_to_fp32(y[i].dmin);
		uint8_t ls[8], lm[8], L[ENG_QKK];
		memset(y[i].scales, 0, sizeof(y[i].scales));
		for (int j = 0; j < 8; j++) {
			int a = d > 0 ? (int)nearbyintf(scale[j] / d) : 0;
			int b = dm > 0 ? (int)nearbyintf(minv[j] / dm) : 0;
			ls[j] = (uint8_t)(a < 0 ? 0 : a > 63 ? 63 : a);
			lm[j] = (uint8_t)(b < 0 ? 0 : b > 63 ? 63 : b);
			float dl = d * ls[j], ml = dm * lm[j];
			for (int l = 0; l < 32; l++) {
				int q = dl > 0 ? (int)nearbyintf((x[j * 32 + l] + ml) / dl) : 0;
				L[j * 32 + l] = (uint8_t)(q < 0 ? 0 : q > 15 ? 15 : q);
			}
		}
		for (int j = 0; j < 8; j++) {
			if (j < 4) {
				y[i].scales[j] = ls[j];
				y[i].scales[j + 4] = lm[j];
			} else {
				y[i].scales[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
				y[i].scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
				y[i].scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
			}
		}
		uint8_t *q = y[i].qs;
		for (int j = 0; j < ENG_QKK; j += 64) {
			for (int l = 0; l < 32; l++)
				q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
			q += 32;
		}
	}
}

static void quant_q6_k(const float *x, struct eng_blk_q6_k *y, size_t nb)
{
	for (size_t i = 0; i < nb; i++, x += ENG_QKK) {
		float scale[16], maxs = 0;
		for (int g = 0; g < 16; g++) {
			float amax = 0;
			for (int l = 0; l < 16; l++) {
				float v = fabsf(x[g * 16 + l]);
				amax = v > amax ? v : amax;
			}
			scale[g] = amax / 31.0f;
			maxs = scale[g] > maxs ? scale[g] : maxs;
		}
		y[i].d = eng_fp32_to_fp16(maxs / 127.0f);
		float d = eng_fp16_to_fp32(y[i].d);
		uint8_t L[ENG_QKK];
		for (int g = 0; g < 16; g++) {
			int s = d > 0 ? (int)nearbyintf(scale[g] / d) : 0;
			s = s > 127 ? 127 : s;
			y[i].scales[g] = (int8_t)s;
			float dl = d * s;
			for (int l = 0; l < 16; l++) {
				int q = dl > 0 ? (int)nearbyintf(x[g * 16 + l] / dl) : 0;
				q = q < -32 ? -32 : q > 31 ? 31 : q;
				L[g * 16 + l] = (uint8_t)(q + 32);
			}
		}
		uint8_t *ql = y[i].ql, *qh = y[i].qh;
		for (int j = 0; j < ENG_QKK; j += 128) {
			for (int l = 0; l < 32; l++) {
				uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
				uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
				ql[l] = (uint8_t)(q1 | (q3 << 4));
				ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
				qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
						  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
			}
			ql += 64;
			qh += 32;
		}
	}
}

void eng_quantize_row(enum eng_qtype t, const float *src, void *dst, size_t n)
{
	switch (t) {
	case ENG_QT_F32:
		memcpy(dst, src, n * sizeof(float));
		break;
	case ENG_QT_F16: {
		uint16_t *d = dst;
		for (size_t i = 0; i < n; i++)
			d[i] = eng_fp32_to_fp16(src[i]);
		break;
	}
	case ENG_QT_BF16: {
		uint16_t *d = dst;
		for (size_t i = 0; i < n; i++)
			d[i] = eng_fp32_to_bf16(src[i]);
		break;
	}
	case ENG_QT_Q8_0: {
		struct eng_blk_q8_0 *b = dst;
		for (size_t i = 0; i < n / ENG_QK; i++) {
			const float *x = src + i * ENG_QK;
			float amax = 0;
			for (int j = 0; j < ENG_QK; j++)
				amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
			float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0;
			b[i].d = eng_fp32_to_fp16(d);
			for (int j = 0; j < ENG_QK; j++)
				b[i].qs[j] = (int8_t)nearbyintf(x[j] * id);
		}
		break;
	}
	case ENG_QT_Q4_0: {
		struct eng_blk_q4_0 *b = dst;
		for (size_t i = 0; i < n / ENG_QK; i++) {
			const float *x = src + i * ENG_QK;
			float amax = 0, max = 0;
			for (int j = 0; j < ENG_QK; j++)
				if (fabsf(x[j]) > amax) {
					amax = fabsf(x[j]);
					max = x[j];
				}
			float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0;
			b[i].d = eng_fp32_to_fp16(d);
			for (int j = 0; j < ENG_QK / 2; j++) {
				int q0 = (int)(x[j] * id + 8.5f), q1 = (int)(x[j + 16] * id + 8.5f);
				q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
				q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
				b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
			}
		}
		break;
	}
	case ENG_QT_Q4_K:
		quant_q4_k(src, dst, n / ENG_QKK);
		break;
	case ENG_QT_Q6_K:
		quant_q6_k(src, dst, n / ENG_QKK);
		break;
	default:
		break;
	}
}

void eng_quantize_act_q8(const float *x, struct eng_act_q8 *y, size_t n)
{
	for (size_t i = 0; i < n / ENG_QK; i++, x += ENG_QK) {
		float amax = 0;
		for (int j = 0; j < ENG_QK; j++)
			amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
		float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0;
		int32_t s = 0;
		y[i].d = d;
		for (int j = 0; j < ENG_QK; j++) {
			y[i].qs[j] = (int8_t)nearbyintf(x[j] * id);
			s += y[i].qs[j];
		}
		y[i].s = s;
	}
}

void eng_quantize_act_q8k(const float *x, struct eng_act_q8k *y, size_t n)
{
	for (size_t i = 0; i < n / ENG_QKK; i++, x += ENG_QKK) {
		float amax = 0;
		for (int j = 0; j < ENG_QKK; j++)
			amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
		float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0;
		y[i].d = d;
		for (int g = 0; g < ENG_QKK / 16; g++) {
			int s = 0;
			for (int l = 0; l < 16; l++) {
				int q = (int)nearbyintf(x[g * 16 + l] * id);
				y[i].qs[g * 16 + l] = (int8_t)q;
				s += q;
			}
			y[i].bsums[g] = (int16_t)s;
		}
	}
}
