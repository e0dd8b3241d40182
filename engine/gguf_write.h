/* GGUF writer: builds a GGUF v2/v3 file in memory or on disk from metadata
 * pairs and tensors, with the alignment padding the reader expects. Used by
 * the tests (valid files to read back, or to corrupt) and by the test-model
 * generator. It writes what it is given: duplicate keys or names are not
 * refused here (the reader is the judge), but sizes are always consistent. */
#ifndef LW_ENGINE_GGUF_WRITE_H
#define LW_ENGINE_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

struct eng_gguf_writer;

/* A writer for GGUF <version> (2 or 3) whose data section and tensor offsets
 * are aligned to <alignment> (0 → 32; must be a power of two). A non-default
 * alignment is written as the u32 key general.alignment, first. NULL on bad
 * arguments or allocation failure. */
struct eng_gguf_writer *eng_gguf_writer_new(uint32_t version, uint32_t alignment);
void eng_gguf_writer_free(struct eng_gguf_writer *w); /* NULL is a no-op */

/* Metadata, appended in call order. <key> and string values are copied.
 * ENG_ERR_NOMEM, or ENG_ERR_ARG for a NULL key. */
ENG_WUR enum eng_status eng_gguf_writer_set_u8(struct eng_gguf_writer *w, const char *key, uint8_t v);
ENG_WUR enum eng_status eng_gguf_writer_set_i8(struct eng_gguf_writer *w, const char *key, int8_t v);
ENG_WUR enum eng_status eng_gguf_writer_set_u16(struct eng_gguf_writer *w, const char *key, uint16_t v);
ENG_WUR enum eng_status eng_gguf_writer_set_i16(struct eng_gguf_writer *w, const char *key, int16_t v);
ENG_WUR enum eng_status eng_gguf_writer_set_u32(struct eng_gguf_writer *w, const char *key, uint32_t v);
ENG_WUR enum eng_status eng_gguf_writer_set_i32(struct eng_gguf_writer *w, const char *key, int32_t v);
ENG_WUR enum eng_status eng_gguf_writer_set_u64(struct eng_gguf_writer *w, const char *key, uint64_t v);
ENG_WUR enum eng_status eng_gguf_writer_set_i64(struct eng_gguf_writer *w, const char *key, int64_t v);
ENG_WUR enum eng_status eng_gguf_writer_set_f32(struct eng_gguf_writer *w, const char *key, float v);
ENG_WUR enum eng_status eng_gguf_writer_set_f64(struct eng_gguf_writer *w, const char *key, double v);
ENG_WUR enum eng_status eng_gguf_writer_set_bool(struct eng_gguf_writer *w, const char *key, bool v);
/* A NUL-terminated string value. */
ENG_WUR enum eng_status eng_gguf_writer_set_str(struct eng_gguf_writer *w, const char *key, const char *v);
/* A string value of <len> bytes (may contain NULs). */
ENG_WUR enum eng_status eng_gguf_writer_set_strn(struct eng_gguf_writer *w, const char *key, const char *v, size_t len);
/* An array of <n> fixed-size elements of <elem_type> (any scalar type but
 * string), read from <data> in host order (uint8_t for bool, float for f32,
 * int32_t for i32, …). ENG_ERR_ARG for string/array/unknown element types. */
ENG_WUR enum eng_status eng_gguf_writer_set_arr(struct eng_gguf_writer *w, const char *key,
						enum eng_gguf_vtype elem_type, const void *data, uint64_t n);
/* An array of <n> NUL-terminated strings. */
ENG_WUR enum eng_status eng_gguf_writer_set_arr_str(struct eng_gguf_writer *w, const char *key,
						    const char *const *strs, uint64_t n);
/* A value given as its raw encoded bytes (after the u32 value type), e.g. a
 * nested array or a deliberately broken value for tests. <raw> is copied. */
ENG_WUR enum eng_status eng_gguf_writer_set_raw(struct eng_gguf_writer *w, const char *key,
						uint32_t vtype, const void *raw, size_t len);

/* Adds tensor <name> of <type> with <n_dims> (1..4) dims <dims> (fastest
 * first). Its byte size is computed from the type (ENG_ERR_UNSUPPORTED for an
 * unknown type, ENG_ERR_FORMAT when dims[0] is not a multiple of the block
 * size, ENG_ERR_RANGE on overflow). <data>, if not NULL, must hold that many
 * bytes and is copied now; if NULL the bytes come from the <fill> callback at
 * write time (so a generator can stream a large model through one buffer). */
ENG_WUR enum eng_status eng_gguf_writer_add_tensor(struct eng_gguf_writer *w, const char *name,
						   enum eng_type type, uint32_t n_dims,
						   const uint64_t *dims, const void *data);

uint64_t eng_gguf_writer_n_tensors(const struct eng_gguf_writer *w);
/* Byte size of tensor <i> (0 if out of range). */
uint64_t eng_gguf_writer_tensor_bytes(const struct eng_gguf_writer *w, uint64_t i);

/* Called once per tensor added with data == NULL, in tensor order: fill
 * <buf>[0..<n_bytes>) with tensor <i>'s bytes. Nonzero aborts the write. */
typedef int (*eng_gguf_fill_fn)(void *ctx, uint64_t i, const char *name, void *buf, uint64_t n_bytes);

/* Total size the file will have. */
uint64_t eng_gguf_writer_size(const struct eng_gguf_writer *w);

/* Writes the file to <path> (created or truncated). <fill> may be NULL when
 * every tensor has data. <err> names the path and errno on failure. */
ENG_WUR enum eng_status eng_gguf_writer_write_file(const struct eng_gguf_writer *w, const char *path,
						   eng_gguf_fill_fn fill, void *fill_ctx,
						   char *err, size_t err_len);
/* Builds the file in memory: *<out> (caller frees with free()) of *<len>
 * bytes. */
ENG_WUR enum eng_status eng_gguf_writer_write_mem(const struct eng_gguf_writer *w,
						  eng_gguf_fill_fn fill, void *fill_ctx,
						  void **out, size_t *len, char *err, size_t err_len);

#endif
