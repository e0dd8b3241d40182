/* AVX-512 (F, BW, VL, VNNI) kernels (compiled with the matching -m flags;
 * its functions run only after kernels.c has checked the CPU). Quantized
 * rows are dotted two 32-weight blocks per 512-bit register with vpdpbusd. */
#include "engine/kernels.h"
#include "engine/pack.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

static float vdot(size_t n, const float *a, const float *b)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
	}
	if (i + 16 <= n) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
		i += 16;
	}
	if (i < n) {
		__mmask16 k = (__mmask16)((1u << (n - i)) - 1);
		s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i), s1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static float dot_f32w(size_t n, const void *w, const void *x)
{
	return vdot(n, w, x);
}

static float dot_f16(size_t n, const void *w, const void *x)
{
	const uint16_t *a = w;
	const float *b = x;
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		__m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(a + i)));
		__m512 w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(a + i + 16)));
		s0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(b + i + 16), s1);
	}
	float s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
	for (; i < n; i++)
		s += _cvtsh_ss(a[i]) * b[i];
	return s;
}

static inline __m512 bf16x16(const uint16_t *p)
{
	__m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
	return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

static float dot_bf16(size_t n, const void *w, const void *x)
{
	const uint16_t *a = w;
	const float *b = x;
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		s0 = _mm512_fmadd_ps(bf16x16(a + i), _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(bf16x16(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
	}
	float s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
	for (; i < n; i++)
		s += eng_bf16_to_fp32(a[i]) * b[i];
	return s;
}


/* ---- float-activation prefill: 4 rows x 4 tokens register tiles ---------- */
static inline __m512 ldw_f32(const void *p, size_t i) { return _mm512_loadu_ps((const float *)p + i); }
static inline __m512 ldw_f16(const void *p, size_t i)
{
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i)));
}
static inline __m512 ldw_bf16(const void *p, size_t i) { return bf16x16((const uint16_t *)p + i); }

#define GEMM_F(NAME, LDW, DOT) \
static void NAME(size_t n, const void *w, size_t rb, int r0, int r1, const void *xp, int nt, \
		 float *y, size_t ldy) \
{ \
	const char *wc = w; \
	const float *x = xp; \
	for (int rb0 = r0; rb0 < r1; rb0 += 16) { \
		int re = rb0 + 16 < r1 ? rb0 + 16 : r1; \
		for (int t0 = 0; t0 < nt; t0 += 4) { \
			int r = rb0; \
			if (t0 + 4 <= nt && n % 16 == 0) { \
				for (; r + 4 <= re; r += 4) { \
					__m512 a[4][4]; \
					const void *wr[4]; \
					const float *xr[4]; \
					_Pragma("GCC unroll 4") \
					for (int i = 0; i < 4; i++) { \
						wr[i] = wc + (size_t)(r + i) * rb; \
						xr[i] = x + (size_t)(t0 + i) * n; \
						_Pragma("GCC unroll 4") \
						for (int j = 0; j < 4; j++) \
							a[i][j] = _mm512_setzero_ps(); \
					} \
					for (size_t k = 0; k < n; k += 16) { \
						__m512 wv[4], xv[4]; \
						_Pragma("GCC unroll 4") \
						for (int i = 0; i < 4; i++) { \
							wv[i] = LDW(wr[i], k); \
							xv[i] = _mm512_loadu_ps(xr[i] + k); \
						} \
						_Pragma("GCC unroll 4") \
						for (int i = 0; i < 4; i++) \
							_Pragma("GCC unroll 4") \
							for (int j = 0; j < 4; j++) \
								a[i][j] = _mm512_fmadd_ps(wv[i], xv[j], a[i][j]); \
					} \
					for (int i = 0; i < 4; i++) \
						for (int j = 0; j < 4; j++) \
							y[(size_t)(t0 + j) * ldy + r + i] = _mm512_reduce_add_ps(a[i][j]); \
				} \
			} \
			int te = t0 + 4 < nt ? t0 + 4 : nt; \
			for (; r < re; r++) \
				for (int t = t0; t < te; t++) \
					y[(size_t)t * ldy + r] = DOT(n, wc + (size_t)r * rb, x + (size_t)t * n); \
		} \
	} \
}

GEMM_F(gemm_f32, ldw_f32, dot_f32w)
GEMM_F(gemm_f16, ldw_f16, dot_f16)
GEMM_F(gemm_bf16, ldw_bf16, dot_bf16)

static inline __m512i pair256(const void *lo, const void *hi)
{
	return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)lo)),
				  _mm256_loadu_si256((const __m256i *)hi), 1);
}

/* Signed int8 x int8 via vpdpbusd: |w| (unsigned) times x with w's sign. */
static inline __m512i mul_i8(__m512i w, __m512i x)
{
	__mmask64 neg = _mm512_movepi8_mask(w);
	__m512i sx = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
	return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), sx);
}

static inline __m512 scale2(float d0, float d1)
{
	return _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(d0), _mm512_set1_ps(d1));
}

static float dot_q8_0(size_t n, const void *w, const void *x)
{
	const struct eng_blk_q8_0 *a = w;
	const struct eng_act_q8 *b = x;
	size_t nb = n / ENG_QK, i = 0;
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
	for (; i + 4 <= nb; i += 4) {
		__m512i p0 = mul_i8(pair256(a[i].qs, a[i + 1].qs), pair256(b[i].qs, b[i + 1].qs));
		__m512i p1 = mul_i8(pair256(a[i + 2].qs, a[i + 3].qs), pair256(b[i + 2].qs, b[i + 3].qs));
		s0 = _mm512_fmadd_ps(scale2(_cvtsh_ss(a[i].d) * b[i].d, _cvtsh_ss(a[i + 1].d) * b[i + 1].d),
				     _mm512_cvtepi32_ps(p0), s0);
		s1 = _mm512_fmadd_ps(scale2(_cvtsh_ss(a[i + 2].d) * b[i + 2].d, _cvtsh_ss(a[i + 3].d) * b[i + 3].d),
				     _mm512_cvtepi32_ps(p1), s1);
	}
	float s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
	for (; i < nb; i++) {
		__m256i wv = _mm256_loadu_si256((const __m256i *)a[i].qs);
		__m256i xv = _mm256_loadu_si256((const __m256i *)b[i].qs);
		__mmask32 neg = _mm256_movepi8_mask(wv);
		__m256i sx = _mm256_mask_sub_epi8(xv, neg, _mm256_setzero_si256(), xv);
		__m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(wv), sx);
		__m128i q = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
		q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4e));
		q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xb1));
		s += _cvtsh_ss(a[i].d) * b[i].d * (float)_mm_cvtsi128_si32(q);
	}
	return s;
}

/* Two Q4_0 blocks' nibbles in weight order: [lo0 hi0 | lo1 hi1]. */
static inline __m512i nibbles2(const uint8_t *q0, const uint8_t *q1)
{
	__m256i t = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)q1),
				     _mm_loadu_si128((const __m128i *)q0));
	__m256i m = _mm256_set1_epi8(0xF);
	__m256i lo = _mm256_and_si256(t, m), hi = _mm256_and_si256(_mm256_srli_epi16(t, 4), m);
	/* lo = [lo0 | lo1], hi = [hi0 | hi1] in 128-bit lanes */
	__m256i b0 = _mm256_permute2x128_si256(lo, hi, 0x20); /* lo0 hi0 */
	__m256i b1 = _mm256_permute2x128_si256(lo, hi, 0x31); /* lo1 hi1 */
	return _mm512_inserti64x4(_mm512_castsi256_si512(b0), b1, 1);
}

static float dot_q4_0(size_t n, const void *w, const void *x)
{
	const struct eng_blk_q4_0 *a = w;
	const struct eng_act_q8 *b = x;
	size_t nb = n / ENG_QK, i = 0;
	__m512 s0 = _mm512_setzero_ps();
	float corr = 0, s = 0;
	for (; i + 2 <= nb; i += 2) {
		__m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nibbles2(a[i].qs, a[i + 1].qs),
						pair256(b[i].qs, b[i + 1].qs));
		float d0 = _cvtsh_ss(a[i].d) * b[i].d, d1 = _cvtsh_ss(a[i + 1].d) * b[i + 1].d;
		s0 = _mm512_fmadd_ps(scale2(d0, d1), _mm512_cvtepi32_ps(p), s0);
		corr += d0 * (float)(8 * b[i].s) + d1 * (float)(8 * b[i + 1].s);
	}
	for (; i < nb; i++) {
		int32_t acc = 0;
		for (int j = 0; j < ENG_QK / 2; j++)
			acc += (a[i].qs[j] & 0xF) * b[i].qs[j] + (a[i].qs[j] >> 4) * b[i].qs[j + 16];
		s += _cvtsh_ss(a[i].d) * b[i].d * (float)(acc - 8 * b[i].s);
	}
	return _mm512_reduce_add_ps(s0) - corr + s;
}


/* ---- packed (row-interleaved) Q8_0 / Q4_0 ------------------------------
 * Layouts in engine/pack.h: one 64-byte vector holds 4 weights of each of
 * 16 rows. vpdpbusd takes the unsigned weights and the signed activations (4 bytes
 * broadcast), so W.x = sum_blocks d_w d_x (P - off * sum(x)) with off 128
 * (Q8_0) or 8 (Q4_0), sum(x) kept in the activation block. */

static inline __m512i bcast4(const int8_t *p)
{
	int32_t v;
	memcpy(&v, p, 4);
	return _mm512_set1_epi32(v);
}

static inline void store16(float *y, __m512 v, int valid)
{
	if (valid >= 16)
		_mm512_storeu_ps(y, v);
	else
		_mm512_mask_storeu_ps(y, (__mmask16)((1u << valid) - 1), v);
}

/* One group of 16 rows times T tokens (T a compile-time constant after
 * inlining). <is_q4> selects the Q4_0 layout. */
static inline __attribute__((always_inline)) void
tile(const uint8_t *wg, size_t nb, const struct eng_act_q8 *x, size_t xs, int T,
     int is_q4, float *y, size_t ldy, int valid)
{
	__m512 acc[8];
	_Pragma("GCC unroll 8")
	for (int t = 0; t < T; t++)
		acc[t] = _mm512_setzero_ps();
	const __m512i m4 = _mm512_set1_epi8(0xF);
	const size_t bs = is_q4 ? ENG_PK_Q4_0_BLK : ENG_PK_Q8_0_BLK;
	for (size_t b = 0; b < nb; b++) {
		const uint8_t *blk = wg + b * bs;
		__m512i p[8];
		_Pragma("GCC unroll 8")
		for (int t = 0; t < T; t++)
			p[t] = _mm512_setzero_si512();
		if (is_q4) {
			_Pragma("GCC unroll 8")
			for (int c = 0; c < 4; c++) {
				__m512i v = _mm512_loadu_si512(blk + 64 * c);
				__m512i lo = _mm512_and_si512(v, m4);
				__m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
				_Pragma("GCC unroll 8")
				for (int t = 0; t < T; t++) {
					const int8_t *q = x[(size_t)t * xs + b].qs;
					p[t] = _mm512_dpbusd_epi32(p[t], lo, bcast4(q + 4 * c));
					p[t] = _mm512_dpbusd_epi32(p[t], hi, bcast4(q + 4 * (c + 4)));
				}
			}
		} else {
			_Pragma("GCC unroll 8")
			for (int c = 0; c < 8; c++) {
				__m512i v = _mm512_loadu_si512(blk + 64 * c);
				_Pragma("GCC unroll 8")
				for (int t = 0; t < T; t++)
					p[t] = _mm512_dpbusd_epi32(p[t], v,
								   bcast4(x[(size_t)t * xs + b].qs + 4 * c));
			}
		}
		__m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + bs - 32)));
		_Pragma("GCC unroll 8")
		for (int t = 0; t < T; t++) {
			const struct eng_act_q8 *xb = &x[(size_t)t * xs + b];
			__m512i q = _mm512_sub_epi32(p[t], _mm512_set1_epi32(xb->s * (is_q4 ? 8 : 128)));
			acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(q), dw),
						 _mm512_set1_ps(xb->d), acc[t]);
		}
	}
	_Pragma("GCC unroll 8")
	for (int t = 0; t < T; t++)
		store16(y + (size_t)t * ldy, acc[t], valid);
}

#define TILE_CASES(is_q4) \
	switch (T) { \
	case 8: tile(wg, nb, xt, nb, 8, is_q4, yt, ldy, valid); break; \
	case 7: tile(wg, nb, xt, nb, 7, is_q4, yt, ldy, valid); break; \
	case 6: tile(wg, nb, xt, nb, 6, is_q4, yt, ldy, valid); break; \
	case 5: tile(wg, nb, xt, nb, 5, is_q4, yt, ldy, valid); break; \
	case 4: tile(wg, nb, xt, nb, 4, is_q4, yt, ldy, valid); break; \
	case 3: tile(wg, nb, xt, nb, 3, is_q4, yt, ldy, valid); break; \
	case 2: tile(wg, nb, xt, nb, 2, is_q4, yt, ldy, valid); break; \
	default: tile(wg, nb, xt, nb, 1, is_q4, yt, ldy, valid); break; \
	}

static void gemm_q8_0_packed(size_t n, const void *wp, int rows, int g0, int g1,
			     const void *xa, int nt, float *y, size_t ldy)
{
	size_t nb = n / ENG_QK;
	for (int g = g0; g < g1; g++) {
		const uint8_t *wg = (const uint8_t *)wp + (size_t)g * nb * ENG_PK_Q8_0_BLK;
		int valid = rows - g * 16;
		for (int t0 = 0; t0 < nt; t0 += 8) {
			int T = nt - t0 < 8 ? nt - t0 : 8;
			const struct eng_act_q8 *xt = (const struct eng_act_q8 *)xa + (size_t)t0 * nb;
			float *yt = y + (size_t)t0 * ldy + (size_t)g * 16;
			TILE_CASES(0)
		}
	}
}

static void gemm_q4_0_packed(size_t n, const void *wp, int rows, int g0, int g1,
			     const void *xa, int nt, float *y, size_t ldy)
{
	size_t nb = n / ENG_QK;
	for (int g = g0; g < g1; g++) {
		const uint8_t *wg = (const uint8_t *)wp + (size_t)g * nb * ENG_PK_Q4_0_BLK;
		int valid = rows - g * 16;
		for (int t0 = 0; t0 < nt; t0 += 8) {
			int T = nt - t0 < 8 ? nt - t0 : 8;
			const struct eng_act_q8 *xt = (const struct eng_act_q8 *)xa + (size_t)t0 * nb;
			float *yt = y + (size_t)t0 * ldy + (size_t)g * 16;
			TILE_CASES(1)
		}
	}
}


/* Packed Q4_K (layout in engine/pack.h). */

static inline __attribute__((always_inline)) void
tile_q4k(const uint8_t *wg, size_t nb, const struct eng_act_q8k *x, int T, float *y, size_t ldy,
	 int valid)
{
	__m512 acc[4];
	const __m512i m4 = _mm512_set1_epi8(0xF);
	_Pragma("GCC unroll 4")
	for (int t = 0; t < T; t++)
		acc[t] = _mm512_setzero_ps();
	for (size_t b = 0; b < nb; b++) {
		const uint8_t *blk = wg + b * ENG_PK_Q4_K_BLK;
		__m512i ai[4], am[4];
		_Pragma("GCC unroll 4")
		for (int t = 0; t < T; t++) {
			ai[t] = _mm512_setzero_si512();
			am[t] = _mm512_setzero_si512();
		}
		for (int j = 0; j < 8; j++) {
			__m512i p[4];
			_Pragma("GCC unroll 4")
			for (int t = 0; t < T; t++)
				p[t] = _mm512_setzero_si512();
			_Pragma("GCC unroll 4")
			for (int c = 0; c < 4; c++) {
				__m512i v = _mm512_loadu_si512(blk + (j * 4 + c) * 64);
				__m512i lo = _mm512_and_si512(v, m4);
				__m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
				_Pragma("GCC unroll 4")
				for (int t = 0; t < T; t++) {
					const int8_t *q = x[(size_t)t * nb + b].qs + 32 * j;
					p[t] = _mm512_dpbusd_epi32(p[t], lo, bcast4(q + 4 * c));
					p[t] = _mm512_dpbusd_epi32(p[t], hi, bcast4(q + 4 * (c + 4)));
				}
			}
			__m512i scv = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2048 + 16 * j)));
			__m512i mnv = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2176 + 16 * j)));
			_Pragma("GCC unroll 4")
			for (int t = 0; t < T; t++) {
				const struct eng_act_q8k *xb = &x[(size_t)t * nb + b];
				ai[t] = _mm512_add_epi32(ai[t], _mm512_mullo_epi32(p[t], scv));
				am[t] = _mm512_add_epi32(am[t], _mm512_mullo_epi32(
					mnv, _mm512_set1_epi32(xb->bsums[2 * j] + xb->bsums[2 * j + 1])));
			}
		}
		__m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 2304)));
		__m512 dmv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 2336)));
		_Pragma("GCC unroll 4")
		for (int t = 0; t < T; t++) {
			__m512 f = _mm512_fmsub_ps(_mm512_cvtepi32_ps(ai[t]), dv,
						   _mm512_mul_ps(_mm512_cvtepi32_ps(am[t]), dmv));
			acc[t] = _mm512_fmadd_ps(f, _mm512_set1_ps(x[(size_t)t * nb + b].d), acc[t]);
		}
	}
	for (int t = 0; t < T; t++)
		store16(y + (size_t)t * ldy, acc[t], valid);
}

static void gemm_q4_k_packed(size_t n, const void *wp, int rows, int g0, int g1,
			     const void *xa, int nt, float *y, size_t ldy)
{
	size_t nb = n / ENG_QKK;
	for (int g = g0; g < g1; g++) {
		const uint8_t *wg = (const uint8_t *)wp + (size_t)g * nb * ENG_PK_Q4_K_BLK;
		int valid = rows - g * 16;
		for (int t0 = 0; t0 < nt; t0 += 4) {
			int T = nt - t0 < 4 ? nt - t0 : 4;
			const struct eng_act_q8k *xt = (const struct eng_act_q8k *)xa + (size_t)t0 * nb;
			float *yt = y + (size_t)t0 * ldy + (size_t)g * 16;
			switch (T) {
			case 4: tile_q4k(wg, nb, xt, 4, yt, ldy, valid); break;
			case 3: tile_q4k(wg, nb, xt, 3, yt, ldy, valid); break;
			case 2: tile_q4k(wg, nb, xt, 2, yt, ldy, valid); break;
			default: tile_q4k(wg, nb, xt, 1, yt, ldy, valid); break;
			}
		}
	}
}


/* Packed Q6_K (layout in engine/pack.h); the -32 comes off with bsums. */

/* ((h >> 2c) & 3) << 4, per byte, with 16-bit shifts (stray bits masked) */
static inline __m512i hi2(__m512i h, int c)
{
	const __m512i m = _mm512_set1_epi8(0x30);
	switch (c) {
	case 0: return _mm512_and_si512(_mm512_slli_epi16(h, 4), m);
	case 1: return _mm512_and_si512(_mm512_slli_epi16(h, 2), m);
	case 2: return _mm512_and_si512(h, m);
	default: return _mm512_and_si512(_mm512_srli_epi16(h, 2), m);
	}
}

static inline __attribute__((always_inline)) void
tile_q6k(const uint8_t *wg, size_t nb, const struct eng_act_q8k *x, int T, float *y, size_t ldy,
	 int valid)
{
	__m512 acc[4];
	const __m512i m4 = _mm512_set1_epi8(0xF);
	_Pragma("GCC unroll 4")
	for (int t = 0; t < T; t++)
		acc[t] = _mm512_setzero_ps();
	for (size_t b = 0; b < nb; b++) {
		const uint8_t *blk = wg + b * ENG_PK_Q6_K_BLK;
		__m512i ai[4];
		_Pragma("GCC unroll 4")
		for (int t = 0; t < T; t++)
			ai[t] = _mm512_setzero_si512();
		for (int m = 0; m < 8; m++) {
			const uint8_t *bm = blk + m * 384;
			__m512i h0 = _mm512_loadu_si512(bm + 256), h1 = _mm512_loadu_si512(bm + 320);
			__m512i pa[4], pb[4];
			_Pragma("GCC unroll 4")
			for (int t = 0; t < T; t++) {
				pa[t] = _mm512_setzero_si512();
				pb[t] = _mm512_setzero_si512();
			}
			_Pragma("GCC unroll 4")
			for (int c = 0; c < 4; c++) {
				__m512i v = _mm512_loadu_si512(bm + 64 * c);
				__m512i va = _mm512_or_si512(_mm512_and_si512(v, m4), hi2(h0, c));
				__m512i vb = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4),
							     hi2(h1, c));
				_Pragma("GCC unroll 4")
				for (int t = 0; t < T; t++) {
					const int8_t *q = x[(size_t)t * nb + b].qs + 32 * m;
					pa[t] = _mm512_dpbusd_epi32(pa[t], va, bcast4(q + 4 * c));
					pb[t] = _mm512_dpbusd_epi32(pb[t], vb, bcast4(q + 16 + 4 * c));
				}
			}
			__m512i s0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 3072 + 32 * m)));
			__m512i s1 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 3072 + 32 * m + 16)));
			_Pragma("GCC unroll 4")
			for (int t = 0; t < T; t++) {
				const struct eng_act_q8k *xb = &x[(size_t)t * nb + b];
				__m512i a = _mm512_sub_epi32(pa[t], _mm512_set1_epi32(32 * xb->bsums[2 * m]));
				__m512i c2 = _mm512_sub_epi32(pb[t], _mm512_set1_epi32(32 * xb->bsums[2 * m + 1]));
				ai[t] = _mm512_add_epi32(ai[t], _mm512_add_epi32(_mm512_mullo_epi32(a, s0),
										 _mm512_mullo_epi32(c2, s1)));
			}
		}
		__m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 3328)));
		_Pragma("GCC unroll 4")
		for (int t = 0; t < T; t++)
			acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(ai[t]), dv),
						 _mm512_set1_ps(x[(size_t)t * nb + b].d), acc[t]);
	}
	for (int t = 0; t < T; t++)
		store16(y + (size_t)t * ldy, acc[t], valid);
}

static void gemm_q6_k_packed(size_t n, const void *wp, int rows, int g0, int g1,
			     const void *xa, int nt, float *y, size_t ldy)
{
	size_t nb = n / ENG_QKK;
	for (int g = g0; g < g1; g++) {
		const uint8_t *wg = (const uint8_t *)wp + (size_t)g * nb * ENG_PK_Q6_K_BLK;
		int valid = rows - g * 16;
		for (int t0 = 0; t0 < nt; t0 += 4) {
			int T = nt - t0 < 4 ? nt - t0 : 4;
			const struct eng_act_q8k *xt = (const struct eng_act_q8k *)xa + (size_t)t0 * nb;
			float *yt = y + (size_t)t0 * ldy + (size_t)g * 16;
			switch (T) {
			case 4: tile_q6k(wg, nb, xt, 4, yt, ldy, valid); break;
			case 3: tile_q6k(wg, nb, xt, 3, yt, ldy, valid); break;
			case 2: tile_q6k(wg, nb, xt, 2, yt, ldy, valid); break;
			default: tile_q6k(wg, nb, xt, 1, yt, ldy, valid); break;
			}
		}
	}
}

static void quant_q8(const float *x, void *y, size_t n)
{
	struct eng_act_q8 *b = y;
	for (size_t i = 0; i < n / ENG_QK; i++, x += ENG_QK) {
		__m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
		float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
		float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0;
		__m512 mul = _mm512_set1_ps(id);
		__m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, mul));
		__m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, mul));
		b[i].d = d;
		b[i].s = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
		_mm_storeu_si128((__m128i *)b[i].qs, _mm512_cvtsepi32_epi8(i0));
		_mm_storeu_si128((__m128i *)(b[i].qs + 16), _mm512_cvtsepi32_epi8(i1));
	}
}

static void axpy(size_t n, float a, const float *x, float *y)
{
	__m512 va = _mm512_set1_ps(a);
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i),
							_mm512_loadu_ps(y + i)));
	if (i < n) {
		__mmask16 k = (__mmask16)((1u << (n - i)) - 1);
		_mm512_mask_storeu_ps(y + i, k, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(k, x + i),
								_mm512_maskz_loadu_ps(k, y + i)));
	}
}

/* e^x for x <= 0 (softmax arguments): range reduction to 2^n * e^r,
 * |r| <= ln2/2, degree-6 polynomial, vscalefps; relative error ~2e-7. */
static inline __m512 exp512(__m512 x)
{
	x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
	__m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
					_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
	__m512 p = _mm512_set1_ps(1.0f / 720);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(p, n);
}

static void attn(const float *q, const float *kt, size_t kt_ld, const float *v, size_t v_ld,
		 int n_pos, int hd, float scale, float *sc, float *out)
{
	int j = 0;
	__m512 vmax = _mm512_set1_ps(-INFINITY), vs = _mm512_set1_ps(scale);
	/* 64 positions per pass: four independent FMA chains over the dims */
	for (; j + 64 <= n_pos; j += 64) {
		__m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
		for (int d = 0; d < hd; d++) {
			const float *kr = kt + (size_t)d * kt_ld + j;
			__m512 qd = _mm512_set1_ps(q[d]);
			s0 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(kr), s0);
			s1 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(kr + 16), s1);
			s2 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(kr + 32), s2);
			s3 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(kr + 48), s3);
		}
		s0 = _mm512_mul_ps(s0, vs);
		s1 = _mm512_mul_ps(s1, vs);
		s2 = _mm512_mul_ps(s2, vs);
		s3 = _mm512_mul_ps(s3, vs);
		vmax = _mm512_max_ps(vmax, _mm512_max_ps(_mm512_max_ps(s0, s1), _mm512_max_ps(s2, s3)));
		_mm512_storeu_ps(sc + j, s0);
		_mm512_storeu_ps(sc + j + 16, s1);
		_mm512_storeu_ps(sc + j + 32, s2);
		_mm512_storeu_ps(sc + j + 48, s3);
	}
	for (; j < n_pos; j += 16) {
		__mmask16 k = n_pos - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n_pos - j)) - 1);
		__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
		int d = 0;
		for (; d + 2 <= hd; d += 2) {
			s0 = _mm512_fmadd_ps(_mm512_set1_ps(q[d]),
					     _mm512_maskz_loadu_ps(k, kt + (size_t)d * kt_ld + j), s0);
			s1 = _mm512_fmadd_ps(_mm512_set1_ps(q[d + 1]),
					     _mm512_maskz_loadu_ps(k, kt + (size_t)(d + 1) * kt_ld + j), s1);
		}
		if (d < hd)
			s0 = _mm512_fmadd_ps(_mm512_set1_ps(q[d]),
					     _mm512_maskz_loadu_ps(k, kt + (size_t)d * kt_ld + j), s0);
		__m512 s = _mm512_mul_ps(_mm512_add_ps(s0, s1), vs);
		vmax = _mm512_mask_max_ps(vmax, k, vmax, s);
		_mm512_mask_storeu_ps(sc + j, k, s);
	}
	float mx = _mm512_reduce_max_ps(vmax);
	__m512 vsum = _mm512_setzero_ps(), m = _mm512_set1_ps(mx);
	for (j = 0; j < n_pos; j += 16) {
		__mmask16 k = n_pos - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n_pos - j)) - 1);
		__m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, sc + j), m));
		vsum = _mm512_add_ps(vsum, _mm512_maskz_mov_ps(k, e));
		_mm512_mask_storeu_ps(sc + j, k, e);
	}
	float inv = 1.0f / _mm512_reduce_add_ps(vsum);
	for (int d0 = 0; d0 < hd; d0 += 64) {
		int w = hd - d0 < 64 ? hd - d0 : 64;
		__mmask16 km[4];
		__m512 o[4];
		for (int c = 0; c < 4; c++) {
			int left = w - 16 * c;
			km[c] = left >= 16 ? 0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
			o[c] = _mm512_setzero_ps();
		}
		/* two positions per step: eight independent accumulators */
		__m512 o2[4];
		for (int c = 0; c < 4; c++)
			o2[c] = _mm512_setzero_ps();
		for (j = 0; j + 2 <= n_pos; j += 2) {
			__m512 pj = _mm512_set1_ps(sc[j]), pk = _mm512_set1_ps(sc[j + 1]);
			const float *vr = v + (size_t)j * v_ld + d0, *vr2 = vr + v_ld;
			for (int c = 0; c < 4; c++) {
				o[c] = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(km[c], vr + 16 * c), o[c]);
				o2[c] = _mm512_fmadd_ps(pk, _mm512_maskz_loadu_ps(km[c], vr2 + 16 * c), o2[c]);
			}
		}
		if (j < n_pos) {
			__m512 pj = _mm512_set1_ps(sc[j]);
			const float *vr = v + (size_t)j * v_ld + d0;
			for (int c = 0; c < 4; c++)
				o[c] = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(km[c], vr + 16 * c), o[c]);
		}
		for (int c = 0; c < 4; c++)
			o[c] = _mm512_add_ps(o[c], o2[c]);
		for (int c = 0; c < 4; c++)
			_mm512_mask_storeu_ps(out + d0 + 16 * c, km[c],
					      _mm512_mul_ps(o[c], _mm512_set1_ps(inv)));
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
	const __m512 vs = _mm512_set1_ps(scale);
	for (int j = 0; j < N; j += 16) {
		__mmask16 k = N - j >= 16 ? 0xFFFF : (__mmask16)((1u << (N - j)) - 1);
		__m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
		for (int d = 0; d < hd; d++) {
			__m512 kv = _mm512_maskz_loadu_ps(k, kt + (size_t)d * kt_ld + j);
			s0 = _mm512_fmadd_ps(_mm512_set1_ps(qq[0][d]), kv, s0);
			s1 = _mm512_fmadd_ps(_mm512_set1_ps(qq[1][d]), kv, s1);
			s2 = _mm512_fmadd_ps(_mm512_set1_ps(qq[2][d]), kv, s2);
			s3 = _mm512_fmadd_ps(_mm512_set1_ps(qq[3][d]), kv, s3);
		}
		_mm512_storeu_ps(sc + j, _mm512_mul_ps(s0, vs));
		_mm512_storeu_ps(sc + sc_ld + j, _mm512_mul_ps(s1, vs));
		_mm512_storeu_ps(sc + 2 * sc_ld + j, _mm512_mul_ps(s2, vs));
		_mm512_storeu_ps(sc + 3 * sc_ld + j, _mm512_mul_ps(s3, vs));
	}
	float inv[4];
	for (int i = 0; i < 4; i++) {
		float *r = sc + (size_t)i * sc_ld, mx = -INFINITY;
		for (int j = 0; j < np[i]; j++)
			mx = r[j] > mx ? r[j] : mx;
		__m512 vsum = _mm512_setzero_ps(), m = _mm512_set1_ps(mx);
		for (int j = 0; j < N; j += 16) {
			int lim = np[i] - j;
			__mmask16 k = lim >= 16 ? 0xFFFF : lim <= 0 ? 0 : (__mmask16)((1u << lim) - 1);
			__m512 e = _mm512_maskz_mov_ps(k, exp512(_mm512_sub_ps(_mm512_loadu_ps(r + j), m)));
			vsum = _mm512_add_ps(vsum, e);
			_mm512_storeu_ps(r + j, e);
		}
		inv[i] = 1.0f / _mm512_reduce_add_ps(vsum);
	}
	for (int d0 = 0; d0 < hd; d0 += 64) {
		int w = hd - d0 < 64 ? hd - d0 : 64;
		__mmask16 km[4];
		__m512 o[4][4];
		for (int c = 0; c < 4; c++) {
			int left = w - 16 * c;
			km[c] = left >= 16 ? 0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
			for (int i = 0; i < 4; i++)
				o[i][c] = _mm512_setzero_ps();
		}
		for (int j = 0; j < N; j++) {
			const float *vr = v + (size_t)j * v_ld + d0;
			__m512 p0 = _mm512_set1_ps(sc[j]), p1 = _mm512_set1_ps(sc[sc_ld + j]);
			__m512 p2 = _mm512_set1_ps(sc[2 * sc_ld + j]), p3 = _mm512_set1_ps(sc[3 * sc_ld + j]);
			_Pragma("GCC unroll 4")
			for (int c = 0; c < 4; c++) {
				__m512 vv = _mm512_maskz_loadu_ps(km[c], vr + 16 * c);
				o[0][c] = _mm512_fmadd_ps(p0, vv, o[0][c]);
				o[1][c] = _mm512_fmadd_ps(p1, vv, o[1][c]);
				o[2][c] = _mm512_fmadd_ps(p2, vv, o[2][c]);
				o[3][c] = _mm512_fmadd_ps(p3, vv, o[3][c]);
			}
		}
		for (int i = 3; i >= 0; i--) /* padded copies write the same values */
			for (int c = 0; c < 4; c++)
				_mm512_mask_storeu_ps(oo[i] + d0 + 16 * c, km[c],
						      _mm512_mul_ps(o[i][c], _mm512_set1_ps(inv[i])));
	}
}

const struct eng_kernels eng_kernels_avx512_tab = {
	.name = "avx512",
	.dot = {
		[ENG_QT_F32] = dot_f32w,
		[ENG_QT_F16] = dot_f16,
		[ENG_QT_BF16] = dot_bf16,
		[ENG_QT_Q8_0] = dot_q8_0,
		[ENG_QT_Q4_0] = dot_q4_0,
	},
	.quant = {
		[ENG_ACT_Q8] = quant_q8,
	},
	.gemm = {[ENG_QT_F32] = gemm_f32, [ENG_QT_F16] = gemm_f16, [ENG_QT_BF16] = gemm_bf16},
	.pack_size = {[ENG_QT_Q8_0] = eng_pack_size_q8_0, [ENG_QT_Q4_0] = eng_pack_size_q4_0,
		      [ENG_QT_Q4_K] = eng_pack_size_q4_k, [ENG_QT_Q6_K] = eng_pack_size_q6_k},
	.pack = {[ENG_QT_Q8_0] = eng_pack_q8_0, [ENG_QT_Q4_0] = eng_pack_q4_0, [ENG_QT_Q4_K] = eng_pack_q4_k,
		 [ENG_QT_Q6_K] = eng_pack_q6_k},
	.gemm_packed = {[ENG_QT_Q8_0] = gemm_q8_0_packed, [ENG_QT_Q4_0] = gemm_q4_0_packed,
			[ENG_QT_Q4_K] = gemm_q4_k_packed, [ENG_QT_Q6_K] = gemm_q6_k_packed},
	.dot_f32 = vdot,
	.axpy_f32 = axpy,
	.attn = attn,
	.attn_multi = attn_multi,
};

#else
/* Built without the AVX-512 flags (another architecture, or a compiler
 * without them): an empty variant. kernels.c never marks it usable, so
 * nothing here is ever called; the name only keeps the variant table whole. */
const struct eng_kernels eng_kernels_avx512_tab = {
	.name = "avx512",
};
#endif
