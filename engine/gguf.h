/* GGUF v2/v3 reader: parses a little-endian GGUF file held in a caller-owned
 * memory span (an mmap or a read buffer) into a view of its metadata and tensor
 * table. Every count, length, offset and size is checked against the span; a
 * truncated, corrupt or hostile file yields a status and an error text naming
 * the key or tensor and the byte offset, never an out-of-bounds read.
 * Loading a file from disk (mmap / read strategies) is engine/load.h.
 *
 * Also home of the engine's status enum (eng_status, shared by every engine
 * module: add values at the end, never renumber) and the tensor type table. */
#ifndef LW_ENGINE_GGUF_H
#define LW_ENGINE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef ENG_WUR
#define ENG_WUR __attribute__((warn_unused_result))
#endif

/* ---- status ---------------------------------------------------------- */

enum eng_status {
	ENG_OK = 0,
	ENG_ERR_IO = -1,          /* open/read/stat/mmap failed */
	ENG_ERR_NOMEM = -2,       /* allocation failed */
	ENG_ERR_FORMAT = -3,      /* malformed file: bad magic, bad value type, misalignment, overlap… */
	ENG_ERR_TRUNCATED = -4,   /* a count, length or span reaches past the end of the data */
	ENG_ERR_LIMIT = -5,       /* a count or length over one of the ENG_GGUF_MAX_* caps */
	ENG_ERR_UNSUPPORTED = -6, /* unknown version or tensor type, unsupported architecture */
	ENG_ERR_NOT_FOUND = -7,   /* no such key / tensor */
	ENG_ERR_TYPE = -8,        /* the key exists with another value type */
	ENG_ERR_RANGE = -9,       /* the value does not fit the requested type; index out of range */
	ENG_ERR_DUPLICATE = -10,  /* a key or tensor name appears twice */
	ENG_ERR_POOL_FULL = -11,  /* every slot of the loader's mapping pool is busy */
	ENG_ERR_ARG = -12,        /* invalid argument from the caller */
	ENG_ERR_UNMAP = -13,      /* munmap failed: the slot stays busy, never reused */
	ENG_ERR_CHANGED = -14,    /* the mapped model file was truncated or rewritten on disk
	                             while in use: its weights are gone; reload it */
	ENG_STATUS_COUNT = 15     /* number of statuses (0 and the 14 negatives) */
};

/* A static English description of <st>; never NULL (unknown values included). */
const char *eng_strerror(int st);

/* ---- tensor types ------------------------------------------------------ */

/* ggml type ids as stored in GGUF tensor infos. */
enum eng_type {
	ENG_TYPE_F32 = 0,
	ENG_TYPE_F16 = 1,
	ENG_TYPE_Q4_0 = 2,
	ENG_TYPE_Q4_1 = 3,
	ENG_TYPE_Q5_0 = 6,
	ENG_TYPE_Q5_1 = 7,
	ENG_TYPE_Q8_0 = 8,
	ENG_TYPE_Q8_1 = 9,
	ENG_TYPE_Q2_K = 10,
	ENG_TYPE_Q3_K = 11,
	ENG_TYPE_Q4_K = 12,
	ENG_TYPE_Q5_K = 13,
	ENG_TYPE_Q6_K = 14,
	ENG_TYPE_I8 = 24,
	ENG_TYPE_I16 = 25,
	ENG_TYPE_I32 = 26,
	ENG_TYPE_I64 = 27,
	ENG_TYPE_F64 = 28,
	ENG_TYPE_BF16 = 30,
	ENG_TYPE_COUNT = 31 /* one past the largest id; not every id below is known */
};

/* "F32", "Q8_0", …; NULL for an id the reader does not know. */
const char *eng_type_name(uint32_t type);
/* Elements per block (1 for F32/F16/BF16/I*, 32 for Q4_0…Q8_1, 256 for K
 * quants); 0 for an unknown id. */
uint32_t eng_type_block_size(uint32_t type);
/* Bytes per block (4 for F32, 34 for Q8_0, 210 for Q6_K…); 0 if unknown. */
uint32_t eng_type_block_bytes(uint32_t type);
/* Bytes of one row of <n> elements in <type> into *<out>. Fails with
 * ENG_ERR_UNSUPPORTED for an unknown type, ENG_ERR_FORMAT when <n> is not a
 * multiple of the block size, ENG_ERR_RANGE on overflow. */
ENG_WUR enum eng_status eng_type_row_bytes(uint32_t type, uint64_t n, uint64_t *out);

/* ---- caps (the reader refuses anything larger) ------------------------- */

#define ENG_GGUF_MAX_KV (1u << 16)          /* metadata pairs */
#define ENG_GGUF_MAX_TENSORS (1u << 16)     /* tensor infos */
#define ENG_GGUF_MAX_KEY 256                /* bytes of a key */
#define ENG_GGUF_MAX_NAME 256               /* bytes of a tensor name */
#define ENG_GGUF_MAX_STRING (1u << 24)      /* bytes of one string value (16 MiB) */
#define ENG_GGUF_MAX_ARRAY (1u << 24)       /* elements of one array (16 Mi) */
#define ENG_GGUF_MAX_NESTING 4              /* array-of-array depth */
#define ENG_GGUF_MAX_ALIGNMENT (1u << 16)   /* general.alignment */
#define ENG_MAX_DIMS 4
#define ENG_GGUF_DEFAULT_ALIGNMENT 32

/* ---- metadata value types ---------------------------------------------- */

enum eng_gguf_vtype {
	ENG_GGUF_U8 = 0,
	ENG_GGUF_I8 = 1,
	ENG_GGUF_U16 = 2,
	ENG_GGUF_I16 = 3,
	ENG_GGUF_U32 = 4,
	ENG_GGUF_I32 = 5,
	ENG_GGUF_F32 = 6,
	ENG_GGUF_BOOL = 7,
	ENG_GGUF_STRING = 8,
	ENG_GGUF_ARRAY = 9,
	ENG_GGUF_U64 = 10,
	ENG_GGUF_I64 = 11,
	ENG_GGUF_F64 = 12,
	ENG_GGUF_VTYPE_COUNT
};

/* "u8", "string", "array", …; "?" for an unknown id. */
const char *eng_gguf_vtype_name(uint32_t vtype);

/* A string borrowed from the file: <len> bytes, NOT NUL-terminated (GGUF
 * strings carry no NUL and may contain one). Valid while the eng_gguf lives. */
struct eng_str {
	const char *ptr;
	size_t len;
};

/* An array value: its element type and count. <priv> belongs to the parser;
 * the struct is a small handle that may be copied freely and stays valid
 * while the eng_gguf lives. */
struct eng_gguf_arr {
	enum eng_gguf_vtype type; /* element type (ENG_GGUF_ARRAY for nested arrays) */
	uint64_t n;               /* element count */
	const void *priv;
};

/* A tensor of the file. <data> points into the span the file was parsed
 * from (n_bytes long, aligned to the file's alignment relative to the span
 * start; the loaders give 64-byte-aligned spans). */
struct eng_tensor {
	const char *name;          /* NUL-terminated copy owned by the eng_gguf */
	enum eng_type type;
	uint32_t n_dims;           /* 1..ENG_MAX_DIMS */
	uint64_t dims[ENG_MAX_DIMS]; /* fastest-varying first; unused dims are 1 */
	uint64_t n_elements;
	uint64_t n_bytes;
	uint64_t offset;           /* absolute byte offset in the file */
	const void *data;
};

/* ---- parsing ----------------------------------------------------------- */

struct eng_gguf; /* opaque: the parsed view */

/* Parses the GGUF held in <data>[0..<size>). The span is borrowed: it must
 * stay mapped and unchanged while the result lives. On success *<out> is the
 * caller's (eng_gguf_free). On failure *<out> is NULL and <err> (may be NULL,
 * <err_len> bytes) says what is wrong, naming key/tensor and byte offset. */
ENG_WUR enum eng_status eng_gguf_parse(const void *data, size_t size,
				       struct eng_gguf **out, char *err, size_t err_len);
void eng_gguf_free(struct eng_gguf *g); /* NULL is a no-op */

uint32_t eng_gguf_version(const struct eng_gguf *g);
uint32_t eng_gguf_alignment(const struct eng_gguf *g);
uint64_t eng_gguf_data_offset(const struct eng_gguf *g); /* start of the tensor data section */
uint64_t eng_gguf_size(const struct eng_gguf *g);        /* size of the parsed span */

/* ---- metadata ---------------------------------------------------------- */

uint64_t eng_gguf_n_kv(const struct eng_gguf *g);
/* Key <i> (0 ≤ i < n_kv, file order): NUL-terminated, owned by <g>. NULL if
 * <i> is out of range. */
const char *eng_gguf_kv_key(const struct eng_gguf *g, uint64_t i);
/* Value type of pair <i>; ENG_GGUF_VTYPE_COUNT if out of range. */
enum eng_gguf_vtype eng_gguf_kv_type(const struct eng_gguf *g, uint64_t i);
/* Index of <key>, or -1 if absent. */
int64_t eng_gguf_find_key(const struct eng_gguf *g, const char *key);

/* Typed getters: ENG_ERR_NOT_FOUND if <key> is absent, ENG_ERR_TYPE if its
 * value has an incompatible type, ENG_ERR_RANGE if it does not fit; *<out> is
 * written only on ENG_OK.
 *  - get_u32 / get_i32 / get_u64 / get_i64 accept any integer type whose
 *    value is in range (and bool for none of them);
 *  - get_f32 accepts f32 and f64 (f64 rounded);
 *  - get_bool accepts bool only (a nonzero byte is true);
 *  - get_str gives a borrowed, non-NUL-terminated view. */
ENG_WUR enum eng_status eng_gguf_get_u32(const struct eng_gguf *g, const char *key, uint32_t *out);
ENG_WUR enum eng_status eng_gguf_get_i32(const struct eng_gguf *g, const char *key, int32_t *out);
ENG_WUR enum eng_status eng_gguf_get_u64(const struct eng_gguf *g, const char *key, uint64_t *out);
ENG_WUR enum eng_status eng_gguf_get_i64(const struct eng_gguf *g, const char *key, int64_t *out);
ENG_WUR enum eng_status eng_gguf_get_f32(const struct eng_gguf *g, const char *key, float *out);
ENG_WUR enum eng_status eng_gguf_get_bool(const struct eng_gguf *g, const char *key, bool *out);
ENG_WUR enum eng_status eng_gguf_get_str(const struct eng_gguf *g, const char *key, struct eng_str *out);
ENG_WUR enum eng_status eng_gguf_get_arr(const struct eng_gguf *g, const char *key, struct eng_gguf_arr *out);

/* The same getters on pair <i> instead of a key (for iteration). */
ENG_WUR enum eng_status eng_gguf_kv_u64(const struct eng_gguf *g, uint64_t i, uint64_t *out);
ENG_WUR enum eng_status eng_gguf_kv_i64(const struct eng_gguf *g, uint64_t i, int64_t *out);
ENG_WUR enum eng_status eng_gguf_kv_f64(const struct eng_gguf *g, uint64_t i, double *out);
ENG_WUR enum eng_status eng_gguf_kv_str(const struct eng_gguf *g, uint64_t i, struct eng_str *out);
ENG_WUR enum eng_status eng_gguf_kv_arr(const struct eng_gguf *g, uint64_t i, struct eng_gguf_arr *out);

/* Array element <i> of <arr>. ENG_ERR_RANGE if <i> ≥ arr->n or the value does
 * not fit, ENG_ERR_TYPE if the element type is incompatible (same rules as the
 * scalar getters: _i64/_u32/_i32 take any integer type, _f32 takes f32/f64,
 * _bool takes bool, _str strings, _arr nested arrays). O(1). */
ENG_WUR enum eng_status eng_gguf_arr_i64(const struct eng_gguf_arr *arr, uint64_t i, int64_t *out);
ENG_WUR enum eng_status eng_gguf_arr_u64(const struct eng_gguf_arr *arr, uint64_t i, uint64_t *out);
ENG_WUR enum eng_status eng_gguf_arr_i32(const struct eng_gguf_arr *arr, uint64_t i, int32_t *out);
ENG_WUR enum eng_status eng_gguf_arr_u32(const struct eng_gguf_arr *arr, uint64_t i, uint32_t *out);
ENG_WUR enum eng_status eng_gguf_arr_f32(const struct eng_gguf_arr *arr, uint64_t i, float *out);
ENG_WUR enum eng_status eng_gguf_arr_f64(const struct eng_gguf_arr *arr, uint64_t i, double *out);
ENG_WUR enum eng_status eng_gguf_arr_bool(const struct eng_gguf_arr *arr, uint64_t i, bool *out);
ENG_WUR enum eng_status eng_gguf_arr_str(const struct eng_gguf_arr *arr, uint64_t i, struct eng_str *out);
ENG_WUR enum eng_status eng_gguf_arr_arr(const struct eng_gguf_arr *arr, uint64_t i, struct eng_gguf_arr *out);
/* Raw little-endian element bytes of a fixed-size-element array (not string
 * or nested arrays; NULL otherwise). Possibly unaligned: read with memcpy. */
const void *eng_gguf_arr_raw(const struct eng_gguf_arr *arr);

/* ---- tensors ----------------------------------------------------------- */

uint64_t eng_gguf_n_tensors(const struct eng_gguf *g);
/* Tensor <i> in file order, NULL if out of range. Owned by <g>. */
const struct eng_tensor *eng_gguf_tensor_at(const struct eng_gguf *g, uint64_t i);
/* Tensor called <name>, NULL if absent. O(log n). */
const struct eng_tensor *eng_gguf_tensor(const struct eng_gguf *g, const char *name);

#endif
