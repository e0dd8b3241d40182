/* Weight storage formats of GGUF tensors (F32, F16, BF16, Q8_0, Q4_0, Q4_K,
 * Q6_K): block layouts, scalar fp16/bf16 conversion, reference quantize and
 * dequantize rows, and the activation formats the kernels dot them with. */
#ifndef LW_ENGINE_QUANT_H
#define LW_ENGINE_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* Values are GGUF's type ids. */
enum eng_qtype {
	ENG_QT_F32 = 0,
	ENG_QT_F16 = 1,
	ENG_QT_Q4_0 = 2,
	ENG_QT_Q8_0 = 8,
	ENG_QT_Q4_K = 12,
	ENG_QT_Q6_K = 14,
	ENG_QT_BF16 = 30,
	ENG_QT_COUNT = 31 /* one past the largest id; not every id is a type */
};

#define ENG_QK 32   /* weights per Q8_0 / Q4_0 block */
#define ENG_QKK 256 /* weights per K-quant super-block */

struct eng_blk_q8_0 { uint16_t d; int8_t qs[ENG_QK]; };       /* 34 bytes */
struct eng_blk_q4_0 { uint16_t d; uint8_t qs[ENG_QK / 2]; };  /* 18 bytes */
struct eng_blk_q4_k {                                          /* 144 bytes */
	uint16_t d, dmin;
	uint8_t scales[12]; /* 8 six-bit scales and 8 six-bit mins, packed */
	uint8_t qs[ENG_QKK / 2];
};
struct eng_blk_q6_k {                                          /* 210 bytes */
	uint8_t ql[ENG_QKK / 2];
	uint8_t qh[ENG_QKK / 4];
	int8_t scales[ENG_QKK / 16];
	uint16_t d;
};

/* Activation blocks (our own, never stored in files): a row of floats
 * quantized once per matmul so quantized weights are dotted as integers.
 * <s> is the sum of <qs> (Q4_0 folds its -8 offset in with it). */
struct eng_act_q8 { float d; int32_t s; int8_t qs[ENG_QK]; };  /* 40 bytes */
struct eng_act_q8k {                                            /* 292 bytes */
	float d;
	int8_t qs[ENG_QKK];
	int16_t bsums[ENG_QKK / 16]; /* sums of each 16 qs */
};

/* The activation format each weight type is dotted with. */
enum eng_act {
	ENG_ACT_F32 = 0, /* plain floats (F32, F16, BF16 weights) */
	ENG_ACT_Q8 = 1,  /* struct eng_act_q8 (Q8_0, Q4_0) */
	ENG_ACT_Q8K = 2, /* struct eng_act_q8k (Q4_K, Q6_K) */
	ENG_ACT_COUNT
};

/* Returns nonzero when <t> is a type this engine computes with. */
int eng_qtype_supported(uint32_t t);
/* "F32", "Q4_K", ...; "unknown" for an id we do not handle. */
const char *eng_qtype_name(uint32_t t);
/* Weights per block (1 for float types) and bytes per block; 0 if unsupported. */
size_t eng_qtype_block(enum eng_qtype t);
size_t eng_qtype_block_bytes(enum eng_qtype t);
/* Bytes of one row of <n> weights; 0 if <n> is not a multiple of the block. */
size_t eng_qtype_row_bytes(enum eng_qtype t, size_t n);
enum eng_act eng_qtype_act(enum eng_qtype t);
/* Bytes of <n> activations in format <a> (<n> a multiple of its block). */
size_t eng_act_row_bytes(enum eng_act a, size_t n);

float eng_fp16_to_fp32(uint16_t h);
uint16_t eng_fp32_to_fp16(float f); /* round to nearest even */
float eng_bf16_to_fp32(uint16_t h);
uint16_t eng_fp32_to_bf16(float f); /* round to nearest even */

/* Reference conversions of one row of <n> values (n a multiple of the
 * block): slow, plain, used by tests, the generator and embedding lookup. */
void eng_dequantize_row(enum eng_qtype t, const void *src, float *dst, size_t n);
void eng_quantize_row(enum eng_qtype t, const float *src, void *dst, size_t n);
/* Scalar activation quantizers (the kernels have their own fast ones). */
void eng_quantize_act_q8(const float *x, struct eng_act_q8 *y, size_t n);
void eng_quantize_act_q8k(const float *x, struct eng_act_q8k *y, size_t n);

#endif
