/* Compute backends: where the model's arithmetic runs. A backend instance
 * prepares the weights for its compute (eng_model_new hands it every matrix
 * once) and then runs the forward steps of engine/forward.h. The CPU backend
 * (engine/backend_cpu.c) is the one there is; a Vulkan one can sit beside it
 * behind the same table (engine/backend_impl.h). An instance is immutable
 * after creation: any number of models and compute contexts may share it. */
#ifndef LW_ENGINE_BACKEND_H
#define LW_ENGINE_BACKEND_H

#include <stddef.h>

#include "engine/gguf.h"
#include "engine/kernels.h"

struct eng_backend;

/* The CPU backend with kernel set <k> (NULL: eng_kernels_get(), i.e. the
 * best this CPU has, or LW_ENGINE_KERNELS). ENG_ERR_ARG when
 * LW_ENGINE_KERNELS names a set this CPU lacks. */
ENG_WUR enum eng_status eng_backend_cpu_new(const struct eng_kernels *k,
					    struct eng_backend **out, char *err, size_t err_len);
void eng_backend_free(struct eng_backend *b); /* NULL is a no-op */
/* "cpu-avx512", "cpu-avx2", "cpu-scalar", … */
const char *eng_backend_name(const struct eng_backend *b);

#endif
