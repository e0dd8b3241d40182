/* The packed (row-interleaved) weight layouts the SIMD variants' prefill
 * and decode kernels read: plain C, one definition per layout, shared by
 * every variant that reads it (see pack.h). */
#include "engine/pack.h"

#include <string.h>

#include "engine/quant.h"

size_t eng_pack_size_q8_0(int rows, size_t n)
{
	return (size_t)((rows + 15) / 16) * (n / ENG_QK) * ENG_PK_Q8_0_BLK;
}

void eng_pack_q8_0(const void *src, int rows, size_t n, void *dst)
{
	const struct eng_blk_q8_0 *s = src;
	size_t nb = n / ENG_QK;
	uint8_t *d = dst;
	for (int g = 0; g < (rows + 15) / 16; g++)
		for (size_t b = 0; b < nb; b++, d += ENG_PK_Q8_0_BLK) {
			uint16_t *sc = (uint16_t *)(d + 512);
			for (int r = 0; r < 16; r++) {
				int row = g * 16 + r;
				const struct eng_blk_q8_0 *blk = row < rows ? &s[(size_t)row * nb + b] : NULL;
				sc[r] = blk ? blk->d : 0;
				for (int k = 0; k < ENG_QK; k++)
					d[(k / 4) * 64 + r * 4 + k % 4] =
						(uint8_t)((blk ? blk->qs[k] : 0) + 128);
			}
		}
}

size_t eng_pack_size_q4_0(int rows, size_t n)
{
	return (size_t)((rows + 15) / 16) * (n / ENG_QK) * ENG_PK_Q4_0_BLK;
}

void eng_pack_q4_0(const void *src, int rows, size_t n, void *dst)
{
	const struct eng_blk_q4_0 *s = src;
	size_t nb = n / ENG_QK;
	uint8_t *d = dst;
	for (int g = 0; g < (rows + 15) / 16; g++)
		for (size_t b = 0; b < nb; b++, d += ENG_PK_Q4_0_BLK) {
			uint16_t *sc = (uint16_t *)(d + 256);
			for (int r = 0; r < 16; r++) {
				int row = g * 16 + r;
				const struct eng_blk_q4_0 *blk = row < rows ? &s[(size_t)row * nb + b] : NULL;
				sc[r] = blk ? blk->d : 0;
				uint8_t v[ENG_QK];
				for (int j = 0; j < 16; j++) {
					v[j] = blk ? blk->qs[j] & 0xF : 8;
					v[j + 16] = blk ? blk->qs[j] >> 4 : 8;
				}
				for (int c = 0; c < 4; c++)
					for (int j = 0; j < 4; j++)
						d[c * 64 + r * 4 + j] =
							(uint8_t)(v[4 * c + j] | (v[4 * (c + 4) + j] << 4));
			}
		}
}

size_t eng_pack_size_q4_k(int rows, size_t n)
{
	return (size_t)((rows + 15) / 16) * (n / ENG_QKK) * ENG_PK_Q4_K_BLK;
}

void eng_pack_q4_k(const void *src, int rows, size_t n, void *dst)
{
	const struct eng_blk_q4_k *s = src;
	size_t nb = n / ENG_QKK;
	uint8_t *d = dst;
	for (int g = 0; g < (rows + 15) / 16; g++)
		for (size_t b = 0; b < nb; b++, d += ENG_PK_Q4_K_BLK) {
			uint8_t *sc = d + 2048, *mn = d + 2176;
			uint16_t dd[16], dm[16];
			memset(d, 0, ENG_PK_Q4_K_BLK); /* rows past the matrix: all zero */
			for (int r = 0; r < 16; r++) {
				int row = g * 16 + r;
				dd[r] = dm[r] = 0;
				if (row >= rows)
					continue;
				const struct eng_blk_q4_k *blk = &s[(size_t)row * nb + b];
				const uint8_t *q = blk->scales;
				dd[r] = blk->d;
				dm[r] = blk->dmin;
				for (int j = 0; j < 8; j++) {
					if (j < 4) {
						sc[j * 16 + r] = q[j] & 63;
						mn[j * 16 + r] = q[j + 4] & 63;
					} else {
						sc[j * 16 + r] = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
						mn[j * 16 + r] = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
					}
					/* sub-block j: nibble (j & 1) of qs[32 * (j / 2) ..] */
					const uint8_t *v = blk->qs + 32 * (j / 2);
					int sh = 4 * (j & 1);
					for (int c = 0; c < 4; c++)
						for (int k = 0; k < 4; k++)
							d[(j * 4 + c) * 64 + r * 4 + k] =
								(uint8_t)(((v[4 * c + k] >> sh) & 0xF) |
									  (((v[16 + 4 * c + k] >> sh) & 0xF) << 4));
				}
			}
			memcpy(d + 2304, dd, sizeof(dd));
			memcpy(d + 2336, dm, sizeof(dm));
		}
}

size_t eng_pack_size_q6_k(int rows, size_t n)
{
	return (size_t)((rows + 15) / 16) * (n / ENG_QKK) * ENG_PK_Q6_K_BLK;
}

void eng_pack_q6_k(const void *src, int rows, size_t n, void *dst)
{
	const struct eng_blk_q6_k *s = src;
	size_t nb = n / ENG_QKK;
	uint8_t *d = dst;
	for (int g = 0; g < (rows + 15) / 16; g++)
		for (size_t b = 0; b < nb; b++, d += ENG_PK_Q6_K_BLK) {
			memset(d, 0, ENG_PK_Q6_K_BLK);
			int8_t *sc = (int8_t *)(d + 3072);
			uint16_t *dd = (uint16_t *)(d + 3328);
			for (int r = 0; r < 16; r++) {
				int row = g * 16 + r;
				const struct eng_blk_q6_k *blk = row < rows ? &s[(size_t)row * nb + b] : NULL;
				uint8_t L[ENG_QKK];
				memset(L, 32, sizeof(L));
				dd[r] = blk ? blk->d : 0;
				if (blk) {
					const uint8_t *ql = blk->ql, *qh = blk->qh;
					for (int h = 0; h < 2; h++, ql += 64, qh += 32)
						for (int l = 0; l < 32; l++) {
							int base = h * 128;
							L[base + l] = (uint8_t)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4));
							L[base + l + 32] = (uint8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
							L[base + l + 64] = (uint8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
							L[base + l + 96] = (uint8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
						}
				}
				for (int gi = 0; gi < 16; gi++)
					sc[gi * 16 + r] = blk ? blk->scales[gi] : 0;
				for (int m = 0; m < 8; m++) {
					uint8_t *bm = d + m * 384;
					for (int c = 0; c < 4; c++)
						for (int k = 0; k < 4; k++) {
							uint8_t a = L[32 * m + 4 * c + k], bb = L[32 * m + 16 + 4 * c + k];
							bm[c * 64 + r * 4 + k] = (uint8_t)((a & 0xF) | ((bb & 0xF) << 4));
							bm[256 + r * 4 + k] |= (uint8_t)((a >> 4) << (2 * c));
							bm[320 + r * 4 + k] |= (uint8_t)((bb >> 4) << (2 * c));
						}
				}
			}
		}
}
