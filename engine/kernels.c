#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

static struct eng_kernels filled[ENG_KERNELS_COUNT];
static int cpu_ok[ENG_KERNELS_COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Copies <src> into <dst>, taking what it lacks from <base> (a variant one
 * instruction-set level down, already filled). */
static void fill(struct eng_kernels *dst, const struct eng_kernels *src,
		 const struct eng_kernels *base)
{
	const struct eng_kernels *s = base;
	*dst = *src;
	for (int i = 0; i < ENG_QT_COUNT; i++)
		if (!dst->dot[i])
			dst->dot[i] = s->dot[i];
	for (int i = 0; i < ENG_QT_COUNT; i++)
		if (!dst->gemm[i])
			dst->gemm[i] = s->gemm[i];
	for (int i = 0; i < ENG_ACT_COUNT; i++)
		if (!dst->quant[i])
			dst->quant[i] = s->quant[i];
	if (!dst->dot_f32)
		dst->dot_f32 = s->dot_f32;
	if (!dst->axpy_f32)
		dst->axpy_f32 = s->axpy_f32;
	if (!dst->attn)
		dst->attn = s->attn;
	if (!dst->attn_multi)
		dst->attn_multi = s->attn_multi;
}

#if defined(__x86_64__)
/* CPUID.1:ECX.F16C[bit 29]; read directly because clang (14 at least) does
 * not accept "f16c" in __builtin_cpu_supports. The AVX2 check beside it
 * already covers the OS saving the YMM state. */
static int has_f16c(void)
{
	unsigned eax, ebx, ecx, edx;
	return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
}
#endif

static void init(void)
{
	fill(&filled[ENG_KERNELS_SCALAR], &eng_kernels_scalar_tab, &eng_kernels_scalar_tab);
	cpu_ok[ENG_KERNELS_SCALAR] = 1;
#if defined(__x86_64__) /* the SIMD variants; elsewhere only the scalar one runs */
	__builtin_cpu_init(); /* x86 only in GCC 12 */
	fill(&filled[ENG_KERNELS_AVX2], &eng_kernels_avx2_tab, &filled[ENG_KERNELS_SCALAR]);
	cpu_ok[ENG_KERNELS_AVX2] = __builtin_cpu_supports("avx2") &&
				   __builtin_cpu_supports("fma") && has_f16c();
	fill(&filled[ENG_KERNELS_AVX512], &eng_kernels_avx512_tab, &filled[ENG_KERNELS_AVX2]);
	cpu_ok[ENG_KERNELS_AVX512] = cpu_ok[ENG_KERNELS_AVX2] &&
				     __builtin_cpu_supports("avx512f") &&
				     __builtin_cpu_supports("avx512bw") &&
				     __builtin_cpu_supports("avx512vl") &&
				     __builtin_cpu_supports("avx512vnni");
#endif
}

const struct eng_kernels *eng_kernels_variant(enum eng_kernel_id id)
{
	pthread_once(&once, init);
	if ((int)id < 0 || id >= ENG_KERNELS_COUNT || !cpu_ok[id])
		return NULL;
	return &filled[id];
}

const struct eng_kernels *eng_kernels_get(void)
{
	pthread_once(&once, init);
	const char *want = getenv("LW_ENGINE_KERNELS");
	if (want && *want && strcmp(want, "auto") != 0) {
		for (int i = 0; i < ENG_KERNELS_COUNT; i++)
			if (cpu_ok[i] && strcmp(filled[i].name, want) == 0)
				return &filled[i];
		return NULL;
	}
	for (int i = ENG_KERNELS_COUNT - 1; i >= 0; i--)
		if (cpu_ok[i])
			return &filled[i];
	return &filled[ENG_KERNELS_SCALAR];
}

/* Rows in one tile: their weights stay in L1/L2 while every token passes. */
#define ROW_TILE 16

void eng_matmul_rows(const struct eng_kernels *k, enum eng_qtype t,
		     const void *w, size_t n, int r0, int r1,
		     const void *xa, int nt, float *y, size_t ldy)
{
	size_t rb = eng_qtype_row_bytes(t, n);
	size_t xb = eng_act_row_bytes(eng_qtype_act(t), n);
	const char *wc = w, *xc = xa;
	eng_dot_fn dot = k->dot[t];
	if (nt == 1) {
		for (int r = r0; r < r1; r++)
			y[r] = dot(n, wc + (size_t)r * rb, xc);
		return;
	}
	if (k->gemm[t]) {
		k->gemm[t](n, w, rb, r0, r1, xa, nt, y, ldy);
		return;
	}
	for (int rt = r0; rt < r1; rt += ROW_TILE) {
		int re = rt + ROW_TILE < r1 ? rt + ROW_TILE : r1;
		for (int tk = 0; tk < nt; tk++)
			for (int r = rt; r < re; r++)
				y[(size_t)tk * ldy + r] =
					dot(n, wc + (size_t)r * rb, xc + (size_t)tk * xb);
	}
}
