/* AVX2 + FMA + F16C kernels (this file is compiled with -mavx2 -mfma -mf16c;
 * its functions run only after kernels.c has checked the CPU). */
#include "engine/kernels.h"

const struct eng_kernels eng_kernels_avx2_tab = {
	.name = "avx2",
};
