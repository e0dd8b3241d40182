/* Packed (row-interleaved) weight layouts: groups of ENG_PACK_ROWS (16)
 * rows, each block of the file's type stored so that one SIMD load holds 4
 * consecutive weights of every row of the group. One definition per layout,
 * shared by every kernel variant that reads it (kernels_avx2.c,
 * kernels_avx512.c); each variant's table names the layouts its gemm reads.
 * Rows past the matrix are padded with zero weights and zero scales.
 *
 * Per group and per block of the file:
 *   Q8_0 (32 weights): 8 vectors of 64 bytes (vector c: rows 0..15 x
 *        weights 4c..4c+3, each stored as w + 128, unsigned), then 16 fp16
 *        scales: 544 bytes.
 *   Q4_0 (32 weights): 4 vectors of 64 bytes (vector c: 4 bytes per row whose
 *        low nibbles are weights 4c..4c+3 and high nibbles 16+4c..16+4c+3,
 *        as stored: 0..15), then 16 fp16 scales: 288 bytes.
 *   Q4_K (256 weights): the 8 sub-blocks' nibbles in the Q4_0 order (4
 *        vectors of 64 bytes each), then the 6-bit scales and mins unpacked
 *        to bytes (sub-block major, 16 rows each), then 16 fp16 d and 16
 *        fp16 dmin: 2368 bytes.
 *   Q6_K (256 weights): for each 32-weight block m (0..7) 4 nibble vectors
 *        in the Q4_0 order and 2 vectors of high bits (H0: bits 2c..2c+1 of
 *        byte r*4+k are the high bits of weight 4c+k, H1 the same for weight
 *        16+4c+k): 384 bytes; then 16 int8 scales per row, 16-weight group
 *        major (256 bytes); then 16 fp16 d: 3360 bytes. Values are 0..63.
 *
 * eng_pack_size_*: bytes for <rows> rows of <n> weights; eng_pack_*: writes
 * them from the file's blocks at <src> to <dst>. */
#ifndef LW_ENGINE_PACK_H
#define LW_ENGINE_PACK_H

#include <stddef.h>

#define ENG_PK_Q8_0_BLK 544
#define ENG_PK_Q4_0_BLK 288
#define ENG_PK_Q4_K_BLK 2368
#define ENG_PK_Q6_K_BLK 3360

size_t eng_pack_size_q8_0(int rows, size_t n);
void eng_pack_q8_0(const void *src, int rows, size_t n, void *dst);
size_t eng_pack_size_q4_0(int rows, size_t n);
void eng_pack_q4_0(const void *src, int rows, size_t n, void *dst);
size_t eng_pack_size_q4_k(int rows, size_t n);
void eng_pack_q4_k(const void *src, int rows, size_t n, void *dst);
size_t eng_pack_size_q6_k(int rows, size_t n);
void eng_pack_q6_k(const void *src, int rows, size_t n, void *dst);

#endif
