/* AVX2 + FMA + F16C kernels (this file is compiled with -mavx2 -mfma -mf16c;
 * its functions run only after kernels.c has checked the CPU). */
#include "engine/kernels.h"
#include "engine/pack.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline float hsum(__m256 v)
{
	__m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
	lo = _mm_add_ps(lo, hi);
	lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
	lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
	return _mm_cvtss_f32(lo);
}

static inline int hsum_i32(__m256i v)
{
	__m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
	return _mm_cvtsi128_si32(s);
}

static float vdot(size_t n, const float *a, const float *b)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	float s = hsum(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static float dot_f32w(size_t n, const void *w, const void *x)
{
	return vdot(n, w, x);
}

static float dot_f16(size_t n, const void *w, const void *x)
{
	const uint16_t *a = w;
	const float *b = x;
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
		__m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8)));
		s0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(b + i + 8), s1);
	}
	float s = hsum(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		s += _cvtsh_ss(a[i]) * b[i];
	return s;
}

static inline __m256 bf16x8(const uint16_t *p)
{
	__m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
	return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static float dot_bf16(size_t n, const void *w, const void *x)
{
	const uint16_t *a = w;
	const float *b = x;
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(bf16x8(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(bf16x8(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
	}
	float s = hsum(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		s += eng_bf16_to_fp32(a[i]) * b[i];
	return s;
}

/* ---- float-activation prefill: RM rows x RN tokens register tiles --------
 * 12 accumulators + RM weight vectors fit the 16 registers; the activations
 * are FMA memory operands. F32 uses 4 x 3; F16/BF16 3 x 4, one conversion
 * per weight vector serving 4 tokens. */
static inline __m256 ldw_f32(const void *p, size_t i) { return _mm256_loadu_ps((const float *)p + i); }
static inline __m256 ldw_f16(const void *p, size_t i)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
}
static inline __m256 ldw_bf16(const void *p, size_t i) { return bf16x8((const uint16_t *)p + i); }

#define GEMM_F(NAME, LDW, DOT, RM, RN) \
static void NAME(size_t n, const void *w, size_t rb, int r0, int r1, const void *xp, int nt, \
		 float *y, size_t ldy) \
{ \
	const char *wc = w; \
	const float *x = xp; \
	for (int rs = r0; rs < r1; rs += 16) { \
		int re = rs + 16 < r1 ? rs + 16 : r1; \
		for (int t0 = 0; t0 < nt; t0 += RN) { \
			int r = rs; \
			if (t0 + RN <= nt && n % 8 == 0) { \
				for (; r + RM <= re; r += RM) { \
					__m256 a[RM][RN]; \
					const void *wr[RM]; \
					const float *xr[RN]; \
					_Pragma("GCC unroll 8") \
					for (int i = 0; i < RM; i++) { \
						wr[i] = wc + (size_t)(r + i) * rb; \
						_Pragma("GCC unroll 8") \
						for (int j = 0; j < RN; j++) \
							a[i][j] = _mm256_setzero_ps(); \
					} \
					_Pragma("GCC unroll 8") \
					for (int j = 0; j < RN; j++) \
						xr[j] = x + (size_t)(t0 + j) * n; \
					for (size_t k = 0; k < n; k += 8) { \
						__m256 wv[RM]; \
						_Pragma("GCC unroll 8") \
						for (int i = 0; i < RM; i++) \
							wv[i] = LDW(wr[i], k); \
						_Pragma("GCC unroll 8") \
						for (int j = 0; j < RN; j++) { \
							_Pragma("GCC unroll 8") \
							for (int i = 0; i < RM; i++) \
								a[i][j] = _mm256_fmadd_ps(wv[i], _mm256_loadu_ps(xr[j] + k), a[i][j]); \
						} \
					} \
					for (int i = 0; i < RM; i++) \
						for (int j = 0; j < RN; j++) \
							y[(size_t)(t0 + j) * ldy + r + i] = hsum(a[i][j]); \
				} \
			} \
			int te = t0 + RN < nt ? t0 + RN : nt; \
			for (; r < re; r++) \
				for (int t = t0; t < te; t++) \
					y[(size_t)t * ldy + r] = DOT(n, wc + (size_t)r * rb, x + (size_t)t * n); \
		} \
	} \
}

GEMM_F(gemm_f32, ldw_f32, dot_f32w, 4, 3)
GEMM_F(gemm_f16, ldw_f16, dot_f16, 3, 4)
GEMM_F(gemm_bf16, ldw_bf16, dot_bf16, 3, 4)

/* Signed int8 x int8 over 32 lanes, as 8 int32 partial sums. */
static inline __m256i mul_i8(__m256i w, __m256i x)
{
	__m256i ax = _mm256_sign_epi8(w, w), sy = _mm256_sign_epi8(x, w);
	return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

static float dot_q8_0(size_t n, const void *w, const void *x)
{
	const struct eng_blk_q8_0 *a = w;
	const struct eng_act_q8 *b = x;
	size_t nb = n / ENG_QK, i = 0;
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	for (; i + 2 <= nb; i += 2) {
		__m256i p0 = mul_i8(_mm256_loadu_si256((const __m256i *)a[i].qs),
				    _mm256_loadu_si256((const __m256i *)b[i].qs));
		__m256i p1 = mul_i8(_mm256_loadu_si256((const __m256i *)a[i + 1].qs),
				    _mm256_loadu_si256((const __m256i *)b[i + 1].qs));
		s0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[i].d) * b[i].d),
				     _mm256_cvtepi32_ps(p0), s0);
		s1 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[i + 1].d) * b[i + 1].d),
				     _mm256_cvtepi32_ps(p1), s1);
	}
	for (; i < nb; i++) {
		__m256i p0 = mul_i8(_mm256_loadu_si256((const __m256i *)a[i].qs),
				    _mm256_loadu_si256((const __m256i *)b[i].qs));
		s0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[i].d) * b[i].d),
				     _mm256_cvtepi32_ps(p0), s0);
	}
	return hsum(_mm256_add_ps(s0, s1));
}

static inline __m256i nibbles(const uint8_t *qs)
{
	__m128i t = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(0xF);
	return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(t, 4), m), _mm_and_si128(t, m));
}

/* Two blocks per step into two accumulators; the -8 offset leaves as 8 * the
 * activation block sum in lane 0, in integers, before the conversion. */
static float dot_q4_0(size_t n, const void *w, const void *x)
{
	const struct eng_blk_q4_0 *a = w;
	const struct eng_act_q8 *b = x;
	size_t nb = n / ENG_QK, i = 0;
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	const __m256i one = _mm256_set1_epi16(1);
	for (; i + 2 <= nb; i += 2) {
		__m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles(a[i].qs),
				_mm256_loadu_si256((const __m256i *)b[i].qs)), one);
		__m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles(a[i + 1].qs),
				_mm256_loadu_si256((const __m256i *)b[i + 1].qs)), one);
		p0 = _mm256_sub_epi32(p0, _mm256_setr_epi32(8 * b[i].s, 0, 0, 0, 0, 0, 0, 0));
		p1 = _mm256_sub_epi32(p1, _mm256_setr_epi32(8 * b[i + 1].s, 0, 0, 0, 0, 0, 0, 0));
		s0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[i].d) * b[i].d), _mm256_cvtepi32_ps(p0), s0);
		s1 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[i + 1].d) * b[i + 1].d),
				     _mm256_cvtepi32_ps(p1), s1);
	}
	for (; i < nb; i++) {
		__m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles(a[i].qs),
				_mm256_loadu_si256((const __m256i *)b[i].qs)), one);
		p0 = _mm256_sub_epi32(p0, _mm256_setr_epi32(8 * b[i].s, 0, 0, 0, 0, 0, 0, 0));
		s0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[i].d) * b[i].d), _mm256_cvtepi32_ps(p0), s0);
	}
	return hsum(_mm256_add_ps(s0, s1));
}

/* ---- quantized prefill: RM rows x RN tokens register tiles ---------------
 * Every weight block is loaded once per RN tokens and every activation block
 * once per RM rows; the file layout is used as is (nothing repacked). */

static inline __m256i ld256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* y[j*ldy + i] = W_i . x_j for RM rows of Q8_0 weights at <w> (<rb> apart)
 * and RN Q8 activation rows at <x> (<xb> apart), <nb> blocks each, with
 * the rows' scales already as floats in <wd> (block b of row i at
 * wd[b*16 + i], as gemm_q8_0 lays them out). Signed x signed goes through
 * |w| and x * sign(w) (vpmaddubsw wants one unsigned side; |w| <= 128 keeps
 * its pair sums below saturation). Per block the RM x RN scale products
 * are one 4-wide multiply per token, left on the stack for each pair's FMA
 * to broadcast: a load, where a multiply per pair would compete with
 * vpmaddubsw/vpmaddwd for the FP0/FP1 pipes. Products round as dw * dx,
 * as llama.cpp's do. */
static inline __attribute__((always_inline)) void
tile_q8_0(int RM, int RN, size_t nb, const char *w, size_t rb, const float *wd,
	  const char *x, size_t xb, float *y, size_t ldy)
{
	__m256 acc[4][4];
	const __m256i ones = _mm256_set1_epi16(1);
	_Pragma("GCC unroll 4")
	for (int i = 0; i < RM; i++)
		_Pragma("GCC unroll 4")
		for (int j = 0; j < RN; j++)
			acc[i][j] = _mm256_setzero_ps();
	for (size_t b = 0; b < nb; b++) {
		const struct eng_act_q8 *xa[4];
		_Pragma("GCC unroll 4")
		for (int j = 0; j < RN; j++)
			xa[j] = (const struct eng_act_q8 *)(x + (size_t)j * xb) + b;
		__m128 dw = _mm_loadu_ps(wd + b * 16);
		float ds[4][4] __attribute__((aligned(16)));
		_Pragma("GCC unroll 4")
		for (int j = 0; j < RN; j++)
			_mm_store_ps(ds[j], _mm_mul_ps(dw, _mm_broadcast_ss(&xa[j]->d)));
		_Pragma("GCC unroll 4")
		for (int i = 0; i < RM; i++) {
			const struct eng_blk_q8_0 *wb = (const struct eng_blk_q8_0 *)(w + (size_t)i * rb) + b;
			__m256i wq = ld256(wb->qs), aw = _mm256_abs_epi8(wq);
			_Pragma("GCC unroll 4")
			for (int j = 0; j < RN; j++) {
				__m256i sx = _mm256_sign_epi8(ld256(xa[j]->qs), wq);
				__m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones);
				acc[i][j] = _mm256_fmadd_ps(_mm256_broadcast_ss(&ds[j][i]),
							    _mm256_cvtepi32_ps(p), acc[i][j]);
			}
		}
	}
	_Pragma("GCC unroll 4")
	for (int i = 0; i < RM; i++)
		_Pragma("GCC unroll 4")
		for (int j = 0; j < RN; j++)
			y[(size_t)j * ldy + i] = hsum(acc[i][j]);
}

/* The same for Q4_0: unsigned nibbles x signed activations directly, the
 * -8 offset removed with the activation block sum (8 * s in lane 0). */
static inline __attribute__((always_inline)) void
tile_q4_0(int RM, int RN, size_t nb, const char *w, size_t rb, const char *x, size_t xb,
	  float *y, size_t ldy)
{
	__m256 acc[4][4];
	const __m256i ones = _mm256_set1_epi16(1);
	_Pragma("GCC unroll 4")
	for (int i = 0; i < RM; i++)
		_Pragma("GCC unroll 4")
		for (int j = 0; j < RN; j++)
			acc[i][j] = _mm256_setzero_ps();
	for (size_t b = 0; b < nb; b++) {
		const struct eng_act_q8 *xa[4];
		__m256i off[4];
		_Pragma("GCC unroll 4")
		for (int j = 0; j < RN; j++) {
			xa[j] = (const struct eng_act_q8 *)(x + (size_t)j * xb) + b;
			off[j] = _mm256_setr_epi32(8 * xa[j]->s, 0, 0, 0, 0, 0, 0, 0);
		}
		_Pragma("GCC unroll 4")
		for (int i = 0; i < RM; i++) {
			const struct eng_blk_q4_0 *wb = (const struct eng_blk_q4_0 *)(w + (size_t)i * rb) + b;
			__m256i q = nibbles(wb->qs);
			float dw = _cvtsh_ss(wb->d);
			_Pragma("GCC unroll 4")
			for (int j = 0; j < RN; j++) {
				__m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, ld256(xa[j]->qs)), ones);
				acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xa[j]->d),
							    _mm256_cvtepi32_ps(_mm256_sub_epi32(p, off[j])),
							    acc[i][j]);
			}
		}
	}
	_Pragma("GCC unroll 4")
	for (int i = 0; i < RM; i++)
		_Pragma("GCC unroll 4")
		for (int j = 0; j < RN; j++)
			y[(size_t)j * ldy + i] = hsum(acc[i][j]);
}

/* Q4_K: per 32-weight chunk the nibbles times the activations
 * (vpmaddubsw) times the sub-block scale (vpmaddwd, no separate pair sum);
 * the mins are removed per super-block with the activations' 16-value
 * sums, one vpmaddwd against the mins each duplicated for two sums. */
static inline __attribute__((always_inline)) void
tile_q4_k(int RM, int RN, size_t nb, const char *w, size_t rb, const char *x, size_t xb,
	  float *y, size_t ldy)
{
	__m256 acc[4][4];
	const __m256i m4 = _mm256_set1_epi8(0xF);
	const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
	_Pragma("GCC unroll 4")
	for (int i = 0; i < RM; i++)
		_Pragma("GCC unroll 4")
		for (int j = 0; j < RN; j++)
			acc[i][j] = _mm256_setzero_ps();
	for (size_t b = 0; b < nb; b++) {
		const struct eng_act_q8k *xa[4];
		_Pragma("GCC unroll 4")
		for (int j = 0; j < RN; j++)
			xa[j] = (const struct eng_act_q8k *)(x + (size_t)j * xb) + b;
		_Pragma("GCC unroll 4")
		for (int i = 0; i < RM; i++) {
			const struct eng_blk_q4_k *wb = (const struct eng_blk_q4_k *)(w + (size_t)i * rb) + b;
			uint32_t u[4];
			memcpy(u, wb->scales, 12);
			u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
			uint32_t aux = u[1] & 0x3f3f3f3f;
			u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
			u[2] = aux;
			u[0] &= 0x3f3f3f3f;
			const uint8_t *sc = (const uint8_t *)u;
			__m256i mins = _mm256_cvtepu8_epi16(
				_mm_shuffle_epi8(_mm_loadl_epi64((const __m128i *)(sc + 8)), dup));
			__m256i sumi[4];
			_Pragma("GCC unroll 4")
			for (int j = 0; j < RN; j++)
				sumi[j] = _mm256_setzero_si256();
			_Pragma("GCC unroll 4")
			for (int c = 0; c < 4; c++) {
				__m256i q = ld256(wb->qs + 32 * c);
				__m256i lo = _mm256_and_si256(q, m4);
				__m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
				__m256i slo = _mm256_set1_epi16(sc[2 * c]), shi = _mm256_set1_epi16(sc[2 * c + 1]);
				_Pragma("GCC unroll 4")
				for (int j = 0; j < RN; j++) {
					__m256i p0 = _mm256_madd_epi16(
						_mm256_maddubs_epi16(lo, ld256(xa[j]->qs + 64 * c)), slo);
					__m256i p1 = _mm256_madd_epi16(
						_mm256_maddubs_epi16(hi, ld256(xa[j]->qs + 64 * c + 32)), shi);
					sumi[j] = _mm256_add_epi32(sumi[j], _mm256_add_epi32(p0, p1));
				}
			}
			float d = _cvtsh_ss(wb->d), dmin = _cvtsh_ss(wb->dmin);
			_Pragma("GCC unroll 4")
			for (int j = 0; j < RN; j++) {
				__m256i sm = _mm256_madd_epi16(ld256(xa[j]->bsums), mins);
				acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(d * xa[j]->d),
							    _mm256_cvtepi32_ps(sumi[j]), acc[i][j]);
				acc[i][j] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * xa[j]->d),
							     _mm256_cvtepi32_ps(sm), acc[i][j]);
			}
		}
	}
	_Pragma("GCC unroll 4")
	for (int i = 0; i < RM; i++)
		_Pragma("GCC unroll 4")
		for (int j = 0; j < RN; j++)
			y[(size_t)j * ldy + i] = hsum(acc[i][j]);
}

/* Q6_K: the 6-bit values (0..63) times the activations times the 16-value
 * scales; the -32 offset is removed per super-block as 32 * the scales
 * against the activations' 16-value sums. */
static inline __attribute__((always_inline)) void
tile_q6_k(int RM, int RN, size_t nb, const char *w, size_t rb, const char *x, size_t xb,
	  float *y, size_t ldy)
{
	__m256 acc[4][4];
	const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3);
	_Pragma("GCC unroll 4")
	for (int i = 0; i < RM; i++)
		_Pragma("GCC unroll 4")
		for (int j = 0; j < RN; j++)
			acc[i][j] = _mm256_setzero_ps();
	for (size_t b = 0; b < nb; b++) {
		const struct eng_act_q8k *xa[4];
		_Pragma("GCC unroll 4")
		for (int j = 0; j < RN; j++)
			xa[j] = (const struct eng_act_q8k *)(x + (size_t)j * xb) + b;
		_Pragma("GCC unroll 4")
		for (int i = 0; i < RM; i++) {
			const struct eng_blk_q6_k *wb = (const struct eng_blk_q6_k *)(w + (size_t)i * rb) + b;
			__m256i sumi[4];
			_Pragma("GCC unroll 4")
			for (int j = 0; j < RN; j++)
				sumi[j] = _mm256_setzero_si256();
			_Pragma("GCC unroll 2")
			for (int h = 0; h < 2; h++) {
				const uint8_t *ql = wb->ql + 64 * h, *qh = wb->qh + 32 * h;
				const int8_t *sc = wb->scales + 8 * h;
				__m256i l1 = ld256(ql), l2 = ld256(ql + 32), hb = ld256(qh);
				__m256i q[4], s16[4];
				q[0] = _mm256_or_si256(_mm256_and_si256(l1, m4),
						       _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
				q[1] = _mm256_or_si256(_mm256_and_si256(l2, m4),
						       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
				q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
						       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
				q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l2, 4), m4),
						       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
				_Pragma("GCC unroll 4")
				for (int c = 0; c < 4; c++)
					s16[c] = _mm256_set_m128i(_mm_set1_epi16(sc[2 * c + 1]),
								  _mm_set1_epi16(sc[2 * c]));
				_Pragma("GCC unroll 4")
				for (int j = 0; j < RN; j++) {
					const int8_t *yq = xa[j]->qs + 128 * h;
					_Pragma("GCC unroll 4")
					for (int c = 0; c < 4; c++)
						sumi[j] = _mm256_add_epi32(sumi[j], _mm256_madd_epi16(
							_mm256_maddubs_epi16(q[c], ld256(yq + 32 * c)), s16[c]));
				}
			}
			__m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wb->scales));
			float d = _cvtsh_ss(wb->d);
			_Pragma("GCC unroll 4")
			for (int j = 0; j < RN; j++) {
				__m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(ld256(xa[j]->bsums), sc16), 5);
				acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(d * xa[j]->d),
							    _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi[j], corr)),
							    acc[i][j]);
			}
		}
	}
	_Pragma("GCC unroll 4")
	for (int i = 0; i < RM; i++)
		_Pragma("GCC unroll 4")
		for (int j = 0; j < RN; j++)
			y[(size_t)j * ldy + i] = hsum(acc[i][j]);
}

/* One row block [<r>, <re>) against the RN tokens at <xt>: RM rows at a
 * time, then single rows. */
#define ROWS_Q(TILE, RM, RN) \
	do { \
		int r_ = r; \
		for (; r_ + (RM) <= re; r_ += (RM)) \
			TILE(RM, RN, nb, wc + (size_t)r_ * rb, rb, xt, xb, yt + r_, ldy); \
		for (; r_ < re; r_++) \
			TILE(1, RN, nb, wc + (size_t)r_ * rb, rb, xt, xb, yt + r_, ldy); \
	} while (0)

/* Rows in blocks of 16 (their weights stay in L1 while every token passes),
 * tokens RN (<= 4) at a time, rows RM at a time; partial tiles at the edges. */
#define GEMM_Q(NAME, TILE, RM, RN, BLK, ACT) \
static void NAME(size_t n, const void *w, size_t rb, int r0, int r1, const void *x, int nt, \
		 float *y, size_t ldy) \
{ \
	const char *wc = w, *xc = x; \
	size_t nb = n / (BLK), xb = eng_act_row_bytes(ACT, n); \
	for (int r = r0; r < r1; r += 16) { \
		int re = r + 16 < r1 ? r + 16 : r1; \
		for (int t0 = 0; t0 < nt; t0 += RN) { \
			const char *xt = xc + (size_t)t0 * xb; \
			float *yt = y + (size_t)t0 * ldy; \
			switch (nt - t0 >= (RN) ? (RN) : nt - t0) { \
			case 1: ROWS_Q(TILE, RM, 1); break; \
			case 2: ROWS_Q(TILE, RM, 2); break; \
			case 3: ROWS_Q(TILE, RM, 3); break; \
			default: ROWS_Q(TILE, RM, 4); break; \
			} \
		} \
	} \
}

/* Blocks per row up to which gemm_q8_0 keeps a 16-row block's scales as
 * floats on its stack (16 x 512 floats: 32 KiB, rows of 16K weights);
 * longer rows are multiplied in column slices of this many blocks. */
#define Q8_WD_BLOCKS 512

/* Q8_0 prefill: rows in blocks of 16 (their weights stay in L1/L2 while
 * every token passes) whose scales are converted to floats once, tokens 2
 * at a time, rows 4 at a time (llamafile's AVX2 shape: 8 accumulators, 4
 * weight vectors); partial tiles at the edges. */
static void gemm_q8_0(size_t n, const void *w, size_t rb, int r0, int r1, const void *x,
		      int nt, float *y, size_t ldy)
{
	const char *wc = w, *xc = x;
	size_t nb_all = n / ENG_QK, xb = eng_act_row_bytes(ENG_ACT_Q8, n);
	float wd[Q8_WD_BLOCKS * 16 + 4] __attribute__((aligned(32)));
	float part[8];
	for (size_t c0 = 0; c0 < nb_all; c0 += Q8_WD_BLOCKS) {
		size_t nb = nb_all - c0 < Q8_WD_BLOCKS ? nb_all - c0 : Q8_WD_BLOCKS;
		const char *wcc = wc + c0 * sizeof(struct eng_blk_q8_0);
		const char *xcc = xc + c0 * sizeof(struct eng_act_q8);
		for (int r = r0; r < r1; r += 16) {
			int re = r + 16 < r1 ? r + 16 : r1;
			for (int i = r; i < re; i++) {
				const struct eng_blk_q8_0 *wb =
					(const struct eng_blk_q8_0 *)(wcc + (size_t)i * rb);
				for (size_t b = 0; b < nb; b++)
					wd[b * 16 + (size_t)(i - r)] = _cvtsh_ss(wb[b].d);
			}
			for (int i = re - r; i < 16; i++) /* lanes a short block reads */
				for (size_t b = 0; b < nb; b++)
					wd[b * 16 + (size_t)i] = 0;
			wd[nb * 16] = wd[nb * 16 + 1] = wd[nb * 16 + 2] = wd[nb * 16 + 3] = 0;
			for (int t0 = 0; t0 < nt; t0 += 2) {
				const char *xt = xcc + (size_t)t0 * xb;
				float *yt = y + (size_t)t0 * ldy;
				int rn = nt - t0 >= 2 ? 2 : 1;
				for (int i = r; i < re;) {
					const char *wi = wcc + (size_t)i * rb;
					const float *wdi = wd + (i - r);
					int rm = re - i >= 4 ? 4 : 1;
					/* the first column slice writes y, later ones add */
					float *yo = c0 == 0 ? yt + i : part;
					size_t ldo = c0 == 0 ? ldy : 4;
					if (rm == 4 && rn == 2)
						tile_q8_0(4, 2, nb, wi, rb, wdi, xt, xb, yo, ldo);
					else if (rm == 4)
						tile_q8_0(4, 1, nb, wi, rb, wdi, xt, xb, yo, ldo);
					else if (rn == 2)
						tile_q8_0(1, 2, nb, wi, rb, wdi, xt, xb, yo, ldo);
					else
						tile_q8_0(1, 1, nb, wi, rb, wdi, xt, xb, yo, ldo);
					if (c0 != 0)
						for (int jj = 0; jj < rn; jj++)
							for (int ii = 0; ii < rm; ii++)
								yt[(size_t)jj * ldy + (size_t)(i + ii)] +=
									part[jj * 4 + ii];
					i += rm;
				}
			}
		}
	}
}

GEMM_Q(gemm_q4_0, tile_q4_0, 2, 4, ENG_QK, ENG_ACT_Q8)
GEMM_Q(gemm_q4_k, tile_q4_k, 2, 4, ENG_QKK, ENG_ACT_Q8K)
GEMM_Q(gemm_q6_k, tile_q6_k, 1, 4, ENG_QKK, ENG_ACT_Q8K)

/* 32 floats → int8 with scale amax/127, rounding to nearest even. */
static inline float q8_block(const float *x, int8_t *qs, int *sum)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
	__m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
	__m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
				 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
	__m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
	m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
	m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
	float amax = _mm_cvtss_f32(m4);
	float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0;
	__m256 mul = _mm256_set1_ps(id);
	__m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, mul));
	__m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, mul));
	__m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, mul));
	__m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, mul));
	if (sum)
		*sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
	i0 = _mm256_packs_epi32(i0, i1);
	i2 = _mm256_packs_epi32(i2, i3);
	i0 = _mm256_packs_epi16(i0, i2);
	i0 = _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
	_mm256_storeu_si256((__m256i *)qs, i0);
	return d;
}

static void quant_q8(const float *x, void *y, size_t n)
{
	struct eng_act_q8 *b = y;
	for (size_t i = 0; i < n / ENG_QK; i++) {
		int s;
		b[i].d = q8_block(x + i * ENG_QK, b[i].qs, &s);
		b[i].s = s;
	}
}


static float dot_q4_k(size_t n, const void *w, const void *x)
{
	const struct eng_blk_q4_k *a = w;
	const struct eng_act_q8k *b = x;
	const __m256i m4 = _mm256_set1_epi8(0xF);
	__m256 acc = _mm256_setzero_ps();
	float accm = 0;
	for (size_t i = 0; i < n / ENG_QKK; i++) {
		uint32_t u[4];
		memcpy(u, a[i].scales, 12);
		u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
		uint32_t aux = u[1] & 0x3f3f3f3f;
		u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
		u[2] = aux;
		u[0] &= 0x3f3f3f3f;
		const uint8_t *sc = (const uint8_t *)u, *mn = sc + 8;
		int32_t summ = 0;
		for (int j = 0; j < 8; j++)
			summ += mn[j] * (b[i].bsums[2 * j] + b[i].bsums[2 * j + 1]);
		accm += b[i].d * _cvtsh_ss(a[i].dmin) * (float)summ;
		__m256i sumi = _mm256_setzero_si256();
		for (int j = 0; j < 4; j++) {
			__m256i q = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * j));
			__m256i lo = _mm256_and_si256(q, m4);
			__m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
			__m256i y0 = _mm256_loadu_si256((const __m256i *)(b[i].qs + 64 * j));
			__m256i y1 = _mm256_loadu_si256((const __m256i *)(b[i].qs + 64 * j + 32));
			__m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0),
						       _mm256_set1_epi16(sc[2 * j]));
			__m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1),
						       _mm256_set1_epi16(sc[2 * j + 1]));
			sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(b[i].d * _cvtsh_ss(a[i].d)),
				      _mm256_cvtepi32_ps(sumi), acc);
	}
	return hsum(acc) - accm;
}

static float dot_q6_k(size_t n, const void *w, const void *x)
{
	const struct eng_blk_q6_k *a = w;
	const struct eng_act_q8k *b = x;
	const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3);
	const __m256i k32 = _mm256_set1_epi8(32);
	__m256 acc = _mm256_setzero_ps();
	for (size_t i = 0; i < n / ENG_QKK; i++) {
		const uint8_t *ql = a[i].ql, *qh = a[i].qh;
		const int8_t *sc = a[i].scales, *y = b[i].qs;
		__m256i sumi = _mm256_setzero_si256();
		for (int h = 0; h < 2; h++) {
			__m256i l1 = _mm256_loadu_si256((const __m256i *)ql);
			__m256i l2 = _mm256_loadu_si256((const __m256i *)(ql + 32));
			__m256i hb = _mm256_loadu_si256((const __m256i *)qh);
			__m256i q[4];
			q[0] = _mm256_or_si256(_mm256_and_si256(l1, m4),
					       _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
			q[1] = _mm256_or_si256(_mm256_and_si256(l2, m4),
					       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
			q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
					       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
			q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l2, 4), m4),
					       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
			for (int c = 0; c < 4; c++) {
				__m256i yy = _mm256_loadu_si256((const __m256i *)(y + 32 * c));
				__m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q[c], yy),
							     _mm256_maddubs_epi16(k32, yy));
				__m256i s16 = _mm256_set_m128i(_mm_set1_epi16(sc[2 * c + 1]),
							       _mm_set1_epi16(sc[2 * c]));
				sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, s16));
			}
			ql += 64;
			qh += 32;
			sc += 8;
			y += 128;
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(b[i].d * _cvtsh_ss(a[i].d)),
				      _mm256_cvtepi32_ps(sumi), acc);
	}
	return hsum(acc);
}

static void quant_q8k(const float *x, void *yv, size_t n)
{
	struct eng_act_q8k *y = yv;
	const __m256 sign = _mm256_set1_ps(-0.0f);
	for (size_t i = 0; i < n / ENG_QKK; i++, x += ENG_QKK) {
		__m256 m = _mm256_setzero_ps();
		for (int j = 0; j < ENG_QKK; j += 8)
			m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
		__m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
		m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
		m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
		float amax = _mm_cvtss_f32(m4), d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0;
		__m256 mul = _mm256_set1_ps(id);
		y[i].d = d;
		for (int g = 0; g < ENG_QKK / 16; g++) {
			__m256i a0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16 * g), mul));
			__m256i a1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16 * g + 8), mul));
			y[i].bsums[g] = (int16_t)hsum_i32(_mm256_add_epi32(a0, a1));
			__m256i p = _mm256_packs_epi32(a0, a1); /* 0-3 8-11 4-7 12-15 */
			p = _mm256_permute4x64_epi64(p, 0xD8);
			__m128i b8 = _mm_packs_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
			_mm_storeu_si128((__m128i *)(y[i].qs + 16 * g), b8);
		}
	}
}

static void axpy(size_t n, float a, const float *x, float *y)
{
	__m256 va = _mm256_set1_ps(a);
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i),
							_mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += a * x[i];
}

/* Lane masks for the last <r> (1..8) floats of a row: mask_tab + 8 - r. */
static const int32_t mask_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

static inline __m256i tail_mask(int r)
{
	return _mm256_loadu_si256((const __m256i *)(mask_tab + 8 - (r > 8 ? 8 : r)));
}

/* Sums for 16 rows of one token (rows 0-7 in <lo>, 8-15 in <hi>) to <y>:
 * the first <valid> of them. */
static inline __attribute__((always_inline)) void store_rows16(float *y, __m256 lo, __m256 hi, int valid)
{
	if (valid >= 16) {
		_mm256_storeu_ps(y, lo);
		_mm256_storeu_ps(y + 8, hi);
	} else {
		_mm256_maskstore_ps(y, tail_mask(valid), lo);
		if (valid > 8)
			_mm256_maskstore_ps(y + 8, tail_mask(valid - 8), hi);
	}
}

static inline float hmax(__m256 v)
{
	__m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	m = _mm_max_ps(m, _mm_movehl_ps(m, m));
	m = _mm_max_ss(m, _mm_movehdup_ps(m));
	return _mm_cvtss_f32(m);
}

/* e^x for x <= 0 (softmax arguments): range reduction to 2^n * e^r,
 * |r| <= ln2/2, degree-6 polynomial, 2^n built in the exponent field
 * (n >= -126 after the clamp); relative error ~2e-7. */
static inline __m256 exp256(__m256 x)
{
	x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
	__m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
				   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
	__m256 p = _mm256_set1_ps(1.0f / 720);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	__m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* sc[0..n) = e^(sc - max) in place (lanes past <n> of the last vector
 * become 0); returns 1 / their sum. sc has room for n rounded up to 8. */
static float softmax_row(float *sc, int n, int lim)
{
	__m256 vmax = _mm256_set1_ps(-INFINITY);
	int j = 0;
	for (; j + 8 <= lim; j += 8)
		vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(sc + j));
	float mx = hmax(vmax);
	for (; j < lim; j++)
		mx = sc[j] > mx ? sc[j] : mx;
	__m256 vsum = _mm256_setzero_ps(), m = _mm256_set1_ps(mx);
	for (j = 0; j < n; j += 8) {
		__m256 k = _mm256_castsi256_ps(tail_mask(lim - j > 0 ? lim - j : 0));
		__m256 e = _mm256_and_ps(k, exp256(_mm256_sub_ps(_mm256_loadu_ps(sc + j), m)));
		vsum = _mm256_add_ps(vsum, e);
		_mm256_storeu_ps(sc + j, e);
	}
	return 1.0f / hsum(vsum);
}

/* Scores of one query over positions [0, n): 32 at a time with four
 * independent FMA chains over the dims, then 8 at a time (masked tail).
 * Writes sc[0 .. n rounded up to 8). */
static void scores1(const float *q, const float *kt, size_t kt_ld, int n, int hd, float scale,
		    float *sc)
{
	const __m256 vs = _mm256_set1_ps(scale);
	int j = 0;
	for (; j + 32 <= n; j += 32) {
		__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
		for (int d = 0; d < hd; d++) {
			const float *kr = kt + (size_t)d * kt_ld + j;
			__m256 qd = _mm256_set1_ps(q[d]);
			s0 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kr), s0);
			s1 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kr + 8), s1);
			s2 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kr + 16), s2);
			s3 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kr + 24), s3);
		}
		_mm256_storeu_ps(sc + j, _mm256_mul_ps(s0, vs));
		_mm256_storeu_ps(sc + j + 8, _mm256_mul_ps(s1, vs));
		_mm256_storeu_ps(sc + j + 16, _mm256_mul_ps(s2, vs));
		_mm256_storeu_ps(sc + j + 24, _mm256_mul_ps(s3, vs));
	}
	for (; j < n; j += 8) {
		__m256i k = tail_mask(n - j);
		__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
		int d = 0;
		for (; d + 2 <= hd; d += 2) {
			s0 = _mm256_fmadd_ps(_mm256_set1_ps(q[d]),
					     _mm256_maskload_ps(kt + (size_t)d * kt_ld + j, k), s0);
			s1 = _mm256_fmadd_ps(_mm256_set1_ps(q[d + 1]),
					     _mm256_maskload_ps(kt + (size_t)(d + 1) * kt_ld + j, k), s1);
		}
		if (d < hd)
			s0 = _mm256_fmadd_ps(_mm256_set1_ps(q[d]),
					     _mm256_maskload_ps(kt + (size_t)d * kt_ld + j, k), s0);
		_mm256_storeu_ps(sc + j, _mm256_mul_ps(_mm256_add_ps(s0, s1), vs));
	}
}

static void attn(const float *q, const float *kt, size_t kt_ld, const float *v, size_t v_ld,
		 int n_pos, int hd, float scale, float *sc, float *out)
{
	scores1(q, kt, kt_ld, n_pos, hd, scale, sc);
	float inv = softmax_row(sc, n_pos, n_pos);
	/* 32 dims per pass, two positions per step: eight accumulators */
	for (int d0 = 0; d0 < hd; d0 += 32) {
		__m256i km[4];
		__m256 o[4], o2[4];
		for (int c = 0; c < 4; c++) {
			int left = hd - d0 - 8 * c;
			km[c] = tail_mask(left > 0 ? left : 0);
			o[c] = o2[c] = _mm256_setzero_ps();
		}
		int j = 0;
		for (; j + 2 <= n_pos; j += 2) {
			__m256 pj = _mm256_set1_ps(sc[j]), pk = _mm256_set1_ps(sc[j + 1]);
			const float *vr = v + (size_t)j * v_ld + d0, *vr2 = vr + v_ld;
			for (int c = 0; c < 4; c++) {
				o[c] = _mm256_fmadd_ps(pj, _mm256_maskload_ps(vr + 8 * c, km[c]), o[c]);
				o2[c] = _mm256_fmadd_ps(pk, _mm256_maskload_ps(vr2 + 8 * c, km[c]), o2[c]);
			}
		}
		if (j < n_pos) {
			__m256 pj = _mm256_set1_ps(sc[j]);
			const float *vr = v + (size_t)j * v_ld + d0;
			for (int c = 0; c < 4; c++)
				o[c] = _mm256_fmadd_ps(pj, _mm256_maskload_ps(vr + 8 * c, km[c]), o[c]);
		}
		for (int c = 0; c < 4; c++)
			_mm256_maskstore_ps(out + d0 + 8 * c, km[c],
					    _mm256_mul_ps(_mm256_add_ps(o[c], o2[c]), _mm256_set1_ps(inv)));
	}
}

/* Up to 4 queries of one head: every K vector and V row loaded once for all
 * of them. Positions past a query's own n_pos get probability 0. */
static void attn_multi(int nq, const float *const *q, const int *n_pos, const float *kt,
		       size_t kt_ld, const float *v, size_t v_ld, int hd, float scale,
		       float *sc, size_t sc_ld, float *const *out)
{
	if (nq < 2) {
		for (int i = 0; i < nq; i++)
			attn(q[i], kt, kt_ld, v, v_ld, n_pos[i], hd, scale, sc + (size_t)i * sc_ld, out[i]);
		return;
	}
	const float *qq[4];
	float *oo[4];
	int np[4];
	for (int i = 0; i < 4; i++) {
		int k = i < nq ? i : nq - 1; /* pad with copies of the last query */
		qq[i] = q[k];
		oo[i] = out[k];
		np[i] = n_pos[k];
	}
	int N = np[3]; /* the longest */
	const __m256 vs = _mm256_set1_ps(scale);
	for (int j = 0; j < N; j += 8) {
		__m256i k = tail_mask(N - j);
		__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
		for (int d = 0; d < hd; d++) {
			__m256 kv = _mm256_maskload_ps(kt + (size_t)d * kt_ld + j, k);
			s0 = _mm256_fmadd_ps(_mm256_set1_ps(qq[0][d]), kv, s0);
			s1 = _mm256_fmadd_ps(_mm256_set1_ps(qq[1][d]), kv, s1);
			s2 = _mm256_fmadd_ps(_mm256_set1_ps(qq[2][d]), kv, s2);
			s3 = _mm256_fmadd_ps(_mm256_set1_ps(qq[3][d]), kv, s3);
		}
		_mm256_storeu_ps(sc + j, _mm256_mul_ps(s0, vs));
		_mm256_storeu_ps(sc + sc_ld + j, _mm256_mul_ps(s1, vs));
		_mm256_storeu_ps(sc + 2 * sc_ld + j, _mm256_mul_ps(s2, vs));
		_mm256_storeu_ps(sc + 3 * sc_ld + j, _mm256_mul_ps(s3, vs));
	}
	float inv[4];
	for (int i = 0; i < 4; i++)
		inv[i] = softmax_row(sc + (size_t)i * sc_ld, N, np[i]);
	/* 16 dims per pass: 4 queries x 2 vectors of accumulators */
	for (int d0 = 0; d0 < hd; d0 += 16) {
		__m256i k0 = tail_mask(hd - d0), k1 = tail_mask(hd - d0 - 8 > 0 ? hd - d0 - 8 : 0);
		__m256 o[4][2];
		for (int i = 0; i < 4; i++)
			o[i][0] = o[i][1] = _mm256_setzero_ps();
		for (int j = 0; j < N; j++) {
			const float *vr = v + (size_t)j * v_ld + d0;
			__m256 v0 = _mm256_maskload_ps(vr, k0), v1 = _mm256_maskload_ps(vr + 8, k1);
			for (int i = 0; i < 4; i++) {
				__m256 p = _mm256_set1_ps(sc[(size_t)i * sc_ld + j]);
				o[i][0] = _mm256_fmadd_ps(p, v0, o[i][0]);
				o[i][1] = _mm256_fmadd_ps(p, v1, o[i][1]);
			}
		}
		for (int i = 3; i >= 0; i--) { /* padded copies write the same values */
			__m256 s = _mm256_set1_ps(inv[i]);
			_mm256_maskstore_ps(oo[i] + d0, k0, _mm256_mul_ps(o[i][0], s));
			_mm256_maskstore_ps(oo[i] + d0 + 8, k1, _mm256_mul_ps(o[i][1], s));
		}
	}
}

/* ---- packed Q4_0 ----------------------------------------------------------
 * Layout in engine/pack.h (shared with the AVX-512 variant). Here each
 * 64-byte vector is two
 * 32-byte halves of 8 rows: one vpmaddubsw with 4 broadcast activation
 * bytes advances 8 rows, the 8 products of a block add up in int16
 * (8 x 2 x 15 x 128 < 2^15), and one vpmaddwd leaves one int32 per row —
 * no horizontal sums. The -8 offset goes with 8 x the activation block sum. */

static inline __m256i bcast4_256(const int8_t *p)
{
	int32_t v;
	memcpy(&v, p, 4);
	return _mm256_set1_epi32(v);
}

/* One group of 16 rows at <wg> against RN tokens: y[j*ldy + r] for the
 * first <valid> rows. */
static inline __attribute__((always_inline)) void
tile_q4_0_packed(int RN, size_t nb, const uint8_t *wg, const char *x, size_t xb, float *y,
		 size_t ldy, int valid)
{
	const __m256i m4 = _mm256_set1_epi8(0xF), ones = _mm256_set1_epi16(1);
	__m256 acc[2][2];
	_Pragma("GCC unroll 2")
	for (int j = 0; j < RN; j++)
		acc[0][j] = acc[1][j] = _mm256_setzero_ps();
	for (size_t b = 0; b < nb; b++, wg += ENG_PK_Q4_0_BLK) {
		const struct eng_act_q8 *xa[2];
		__m256i s0[2], s1[2];
		_Pragma("GCC unroll 2")
		for (int j = 0; j < RN; j++) {
			xa[j] = (const struct eng_act_q8 *)(x + (size_t)j * xb) + b;
			s0[j] = s1[j] = _mm256_setzero_si256();
		}
		_Pragma("GCC unroll 4")
		for (int c = 0; c < 4; c++) {
			__m256i v0 = ld256(wg + 64 * c), v1 = ld256(wg + 64 * c + 32);
			__m256i lo0 = _mm256_and_si256(v0, m4), hi0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), m4);
			__m256i lo1 = _mm256_and_si256(v1, m4), hi1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), m4);
			_Pragma("GCC unroll 2")
			for (int j = 0; j < RN; j++) {
				__m256i xl = bcast4_256(xa[j]->qs + 4 * c), xh = bcast4_256(xa[j]->qs + 16 + 4 * c);
				s0[j] = _mm256_add_epi16(s0[j], _mm256_add_epi16(_mm256_maddubs_epi16(lo0, xl),
										_mm256_maddubs_epi16(hi0, xh)));
				s1[j] = _mm256_add_epi16(s1[j], _mm256_add_epi16(_mm256_maddubs_epi16(lo1, xl),
										_mm256_maddubs_epi16(hi1, xh)));
			}
		}
		__m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wg + 256)));
		__m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wg + 272)));
		_Pragma("GCC unroll 2")
		for (int j = 0; j < RN; j++) {
			__m256i off = _mm256_set1_epi32(8 * xa[j]->s);
			__m256 dx = _mm256_broadcast_ss(&xa[j]->d);
			__m256i p0 = _mm256_sub_epi32(_mm256_madd_epi16(s0[j], ones), off);
			__m256i p1 = _mm256_sub_epi32(_mm256_madd_epi16(s1[j], ones), off);
			acc[0][j] = _mm256_fmadd_ps(_mm256_mul_ps(d0, dx), _mm256_cvtepi32_ps(p0), acc[0][j]);
			acc[1][j] = _mm256_fmadd_ps(_mm256_mul_ps(d1, dx), _mm256_cvtepi32_ps(p1), acc[1][j]);
		}
	}
	_Pragma("GCC unroll 2")
	for (int j = 0; j < RN; j++)
		store_rows16(y + (size_t)j * ldy, acc[0][j], acc[1][j], valid);
}

/* gemm over 16-row groups [g0, g1) of a packed Q8_0/Q4_0 matrix (blocks of
 * BLK bytes per group and 32 weights): TILE takes 2 tokens at a time, then
 * the last one. */
#define GEMM_PACKED_32(NAME, TILE, BLK) \
static void NAME(size_t n, const void *wp, int rows, int g0, int g1, const void *x, int nt, \
		 float *y, size_t ldy) \
{ \
	size_t nb = n / ENG_QK, xb = eng_act_row_bytes(ENG_ACT_Q8, n); \
	const uint8_t *w = wp; \
	for (int g = g0; g < g1; g++) { \
		const uint8_t *wg = w + (size_t)g * nb * (BLK); \
		int valid = rows - g * 16; \
		int t = 0; \
		for (; t + 2 <= nt; t += 2) \
			TILE(2, nb, wg, (const char *)x + (size_t)t * xb, xb, \
			     y + (size_t)t * ldy + g * 16, ldy, valid); \
		if (t < nt) \
			TILE(1, nb, wg, (const char *)x + (size_t)t * xb, xb, \
			     y + (size_t)t * ldy + g * 16, ldy, valid); \
	} \
}

GEMM_PACKED_32(gemm_q4_0_packed, tile_q4_0_packed, ENG_PK_Q4_0_BLK)

/* ---- packed Q8_0 ----------------------------------------------------------
 * Layout in engine/pack.h (shared with the AVX-512 variant): weights stored
 * as w + 128, read here as two 32-byte halves of 8 rows x 4 weights. The
 * unsigned form cannot go into vpmaddubsw as is (2 x 255 x 127 > 2^15), so
 * each weight vector becomes |w| once (xor 0x80, vpabsb) and serves the
 * whole tile, each token's broadcast activations take the signs of w
 * (vpsignb), and every product pair (at most 2 x 128 x 127 < 2^15) is
 * widened at once by a vpmaddwd: one int32 per row, no horizontal sums,
 * one convert and FMA per 8 rows x 32 weights. */

/* One group of 16 rows at <wg> against RN tokens: y[j*ldy + r] for the
 * first <valid> rows. */
static inline __attribute__((always_inline)) void
tile_q8_0_packed(int RN, size_t nb, const uint8_t *wg, const char *x, size_t xb, float *y,
		 size_t ldy, int valid)
{
	const __m256i bias = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
	__m256 acc[2][2];
	_Pragma("GCC unroll 2")
	for (int j = 0; j < RN; j++)
		acc[0][j] = acc[1][j] = _mm256_setzero_ps();
	for (size_t b = 0; b < nb; b++, wg += ENG_PK_Q8_0_BLK) {
		const struct eng_act_q8 *xa[2];
		__m256i s0[2], s1[2];
		_Pragma("GCC unroll 2")
		for (int j = 0; j < RN; j++) {
			xa[j] = (const struct eng_act_q8 *)(x + (size_t)j * xb) + b;
			s0[j] = s1[j] = _mm256_setzero_si256();
		}
		_Pragma("GCC unroll 8")
		for (int c = 0; c < 8; c++) {
			__m256i w0 = _mm256_xor_si256(ld256(wg + 64 * c), bias);
			__m256i w1 = _mm256_xor_si256(ld256(wg + 64 * c + 32), bias);
			__m256i a0 = _mm256_abs_epi8(w0), a1 = _mm256_abs_epi8(w1);
			_Pragma("GCC unroll 2")
			for (int j = 0; j < RN; j++) {
				__m256i xv = bcast4_256(xa[j]->qs + 4 * c);
				s0[j] = _mm256_add_epi32(s0[j], _mm256_madd_epi16(
					_mm256_maddubs_epi16(a0, _mm256_sign_epi8(xv, w0)), ones));
				s1[j] = _mm256_add_epi32(s1[j], _mm256_madd_epi16(
					_mm256_maddubs_epi16(a1, _mm256_sign_epi8(xv, w1)), ones));
			}
		}
		__m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wg + 512)));
		__m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wg + 528)));
		_Pragma("GCC unroll 2")
		for (int j = 0; j < RN; j++) {
			__m256 dx = _mm256_broadcast_ss(&xa[j]->d);
			acc[0][j] = _mm256_fmadd_ps(_mm256_mul_ps(d0, dx), _mm256_cvtepi32_ps(s0[j]), acc[0][j]);
			acc[1][j] = _mm256_fmadd_ps(_mm256_mul_ps(d1, dx), _mm256_cvtepi32_ps(s1[j]), acc[1][j]);
		}
	}
	_Pragma("GCC unroll 2")
	for (int j = 0; j < RN; j++)
		store_rows16(y + (size_t)j * ldy, acc[0][j], acc[1][j], valid);
}

GEMM_PACKED_32(gemm_q8_0_packed, tile_q8_0_packed, ENG_PK_Q8_0_BLK)

/* ---- packed Q4_K ----------------------------------------------------------
 * Layout in engine/pack.h (shared with the AVX-512 variant; 2368 bytes per
 * group and super-block against the file's 2304). As for Q4_0 each 64-byte
 * vector is two 32-byte halves of 8 rows: one vpmaddubsw with 4 broadcast
 * activation bytes advances 8 rows, a sub-block's 8 products add up in
 * int16 (8 x 2 x 15 x 128 < 2^15), and one vpmaddwd per sub-block applies
 * the 8 rows' scales (each row's scale in both halves of its 32-bit lane)
 * and leaves one int32 per row: no horizontal sums, and the scales cost
 * one multiply per 8 rows x 32 weights instead of one per row. The mins go
 * per super-block and token: one vpmaddwd per pair of sub-blocks, each
 * row's two mins against the pair's two 32-value activation sums. The c
 * loop of the tile is left rolled: unrolled, GCC spilled int16 sums to the
 * stack and the tile ran about 10 % slower. */

/* Half <h> (rows 8h..8h+7) of the 16-row group at <wg> against T (1..4)
 * tokens at <x> (nb blocks each): y[t*ldy + r] for the first <valid> of
 * those 8 rows. */
static inline __attribute__((always_inline)) void
tile_q4_k_packed(int T, size_t nb, const uint8_t *wg, int h, const struct eng_act_q8k *x,
		 float *y, size_t ldy, int valid)
{
	const __m256i m4 = _mm256_set1_epi8(0xF);
	__m256 acc[4];
	_Pragma("GCC unroll 4")
	for (int t = 0; t < T; t++)
		acc[t] = _mm256_setzero_ps();
	for (size_t b = 0; b < nb; b++) {
		const uint8_t *blk = wg + b * ENG_PK_Q4_K_BLK, *wq = blk + 32 * h;
		__m256i ai[4];
		_Pragma("GCC unroll 4")
		for (int t = 0; t < T; t++)
			ai[t] = _mm256_setzero_si256();
		for (int j = 0; j < 8; j++) {
			__m256i p[4];
			_Pragma("GCC unroll 4")
			for (int t = 0; t < T; t++)
				p[t] = _mm256_setzero_si256();
			_Pragma("GCC unroll 1")
			for (int c = 0; c < 4; c++) {
				__m256i v = ld256(wq + (j * 4 + c) * 64);
				__m256i lo = _mm256_and_si256(v, m4);
				__m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
				_Pragma("GCC unroll 4")
				for (int t = 0; t < T; t++) {
					const int8_t *q = x[(size_t)t * nb + b].qs + 32 * j;
					p[t] = _mm256_add_epi16(p[t], _mm256_add_epi16(
						_mm256_maddubs_epi16(lo, bcast4_256(q + 4 * c)),
						_mm256_maddubs_epi16(hi, bcast4_256(q + 16 + 4 * c))));
				}
			}
			__m256i s = _mm256_cvtepu8_epi32(
				_mm_loadl_epi64((const __m128i *)(blk + 2048 + 16 * j + 8 * h)));
			s = _mm256_or_si256(s, _mm256_slli_epi32(s, 16));
			_Pragma("GCC unroll 4")
			for (int t = 0; t < T; t++)
				ai[t] = _mm256_add_epi32(ai[t], _mm256_madd_epi16(p[t], s));
		}
		/* mins: sub-blocks in pairs, each row's two mins as int16 in its
		 * 32-bit lane, so one vpmaddwd with the pair's two 32-value
		 * activation sums broadcast gives min x sum for both */
		__m256i mp[4], am[4];
		_Pragma("GCC unroll 4")
		for (int i = 0; i < 4; i++) {
			const uint8_t *mn = blk + 2176 + 32 * i + 8 * h;
			mp[i] = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)mn),
								      _mm_loadl_epi64((const __m128i *)(mn + 16))));
		}
		_Pragma("GCC unroll 4")
		for (int t = 0; t < T; t++) {
			const int16_t *bs = x[(size_t)t * nb + b].bsums;
			/* the 8 sub-block sums as int16: 32-bit lane i = sums 2i, 2i+1 */
			__m128i s8 = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)bs),
						    _mm_loadu_si128((const __m128i *)(bs + 8)));
			am[t] = _mm256_add_epi32(
				_mm256_add_epi32(_mm256_madd_epi16(mp[0], _mm256_broadcastd_epi32(s8)),
						 _mm256_madd_epi16(mp[1], _mm256_broadcastd_epi32(
							 _mm_shuffle_epi32(s8, 0x55)))),
				_mm256_add_epi32(_mm256_madd_epi16(mp[2], _mm256_broadcastd_epi32(
							 _mm_shuffle_epi32(s8, 0xAA))),
						 _mm256_madd_epi16(mp[3], _mm256_broadcastd_epi32(
							 _mm_shuffle_epi32(s8, 0xFF)))));
		}
		__m256 dv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 2304 + 16 * h)));
		__m256 dmv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 2336 + 16 * h)));
		_Pragma("GCC unroll 4")
		for (int t = 0; t < T; t++) {
			__m256 f = _mm256_fmsub_ps(_mm256_cvtepi32_ps(ai[t]), dv,
						   _mm256_mul_ps(_mm256_cvtepi32_ps(am[t]), dmv));
			acc[t] = _mm256_fmadd_ps(f, _mm256_broadcast_ss(&x[(size_t)t * nb + b].d), acc[t]);
		}
	}
	_Pragma("GCC unroll 4")
	for (int t = 0; t < T; t++) {
		if (valid >= 8)
			_mm256_storeu_ps(y + (size_t)t * ldy, acc[t]);
		else
			_mm256_maskstore_ps(y + (size_t)t * ldy, tail_mask(valid), acc[t]);
	}
}

static void gemm_q4_k_packed(size_t n, const void *wp, int rows, int g0, int g1,
			     const void *xa, int nt, float *y, size_t ldy)
{
	size_t nb = n / ENG_QKK;
	const struct eng_act_q8k *x = xa;
	for (int g = g0; g < g1; g++) {
		const uint8_t *wg = (const uint8_t *)wp + (size_t)g * nb * ENG_PK_Q4_K_BLK;
		for (int h = 0; h < 2; h++) {
			int valid = rows - g * 16 - 8 * h;
			if (valid <= 0)
				break;
			for (int t0 = 0; t0 < nt; t0 += 4) {
				int T = nt - t0 < 4 ? nt - t0 : 4;
				const struct eng_act_q8k *xt = x + (size_t)t0 * nb;
				float *yt = y + (size_t)t0 * ldy + (size_t)g * 16 + 8 * h;
				switch (T) {
				case 4: tile_q4_k_packed(4, nb, wg, h, xt, yt, ldy, valid); break;
				case 3: tile_q4_k_packed(3, nb, wg, h, xt, yt, ldy, valid); break;
				case 2: tile_q4_k_packed(2, nb, wg, h, xt, yt, ldy, valid); break;
				default: tile_q4_k_packed(1, nb, wg, h, xt, yt, ldy, valid); break;
				}
			}
		}
	}
}

const struct eng_kernels eng_kernels_avx2_tab = {
	.name = "avx2",
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
		[ENG_ACT_Q8] = quant_q8,
		[ENG_ACT_Q8K] = quant_q8k,
	},
	.gemm = {[ENG_QT_F32] = gemm_f32, [ENG_QT_F16] = gemm_f16, [ENG_QT_BF16] = gemm_bf16,
		 [ENG_QT_Q8_0] = gemm_q8_0, [ENG_QT_Q4_0] = gemm_q4_0, [ENG_QT_Q4_K] = gemm_q4_k,
		 [ENG_QT_Q6_K] = gemm_q6_k},
	.pack_size = {[ENG_QT_Q8_0] = eng_pack_size_q8_0, [ENG_QT_Q4_0] = eng_pack_size_q4_0,
		      [ENG_QT_Q4_K] = eng_pack_size_q4_k},
	.pack = {[ENG_QT_Q8_0] = eng_pack_q8_0, [ENG_QT_Q4_0] = eng_pack_q4_0,
		 [ENG_QT_Q4_K] = eng_pack_q4_k},
	.gemm_packed = {[ENG_QT_Q8_0] = gemm_q8_0_packed, [ENG_QT_Q4_0] = gemm_q4_0_packed,
			[ENG_QT_Q4_K] = gemm_q4_k_packed},
	.dot_f32 = vdot,
	.axpy_f32 = axpy,
	.attn = attn,
	.attn_multi = attn_multi,
};

#else
const struct eng_kernels eng_kernels_avx2_tab = {
	.name = "avx2",
};
#endif
