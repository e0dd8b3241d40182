/* AVX-512 (F, BW, VL, VNNI) kernels (compiled with the matching -m flags;
 * its functions run only after kernels.c has checked the CPU). */
#include "engine/kernels.h"

const struct eng_kernels eng_kernels_avx512_tab = {
	.name = "avx512",
};
