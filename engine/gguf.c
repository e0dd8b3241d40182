/* GGUF v2/v3 reader over a borrowed memory span. Every read goes through the
 * cursor in struct rd, which checks the remaining length first; every size
 * computed from file values uses overflow-checked arithmetic. */
#include "engine/gguf.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Total string / nested-array elements indexed across one file: bounds the
 * index memory of a hostile file (each entry needs at least 8 file bytes). */
#define ENG_GGUF_MAX_INDEXED (1u << 24)
/* Nested arrays cost a parsed node each (~48 bytes for 12 file bytes) and no
 * known model uses many: a tighter cap keeps a hostile file's index small. */
#define ENG_GGUF_MAX_NESTED (1u << 16)

/* ---- status and type tables -------------------------------------------- */

const char *eng_strerror(int st)
{
	switch (st) {
	case ENG_OK: return "success";
	case ENG_ERR_IO: return "I/O error";
	case ENG_ERR_NOMEM: return "out of memory";
	case ENG_ERR_FORMAT: return "malformed GGUF file";
	case ENG_ERR_TRUNCATED: return "truncated GGUF file";
	case ENG_ERR_LIMIT: return "GGUF value over a reader limit";
	case ENG_ERR_UNSUPPORTED: return "unsupported GGUF version or type";
	case ENG_ERR_NOT_FOUND: return "not found";
	case ENG_ERR_TYPE: return "wrong value type";
	case ENG_ERR_RANGE: return "value out of range";
	case ENG_ERR_DUPLICATE: return "duplicate key or tensor name";
	case ENG_ERR_POOL_FULL: return "loader mapping pool exhausted";
	case ENG_ERR_ARG: return "invalid argument";
	case ENG_ERR_UNMAP: return "munmap failed (slot kept busy)";
	case ENG_ERR_CHANGED: return "the model file changed on disk while in use: reload it";
	default: return "unknown engine status";
	}
}

struct type_info {
	const char *name;
	uint32_t blk;
	uint32_t bytes;
};

static const struct type_info type_table[ENG_TYPE_COUNT] = {
	[ENG_TYPE_F32] = { "F32", 1, 4 },
	[ENG_TYPE_F16] = { "F16", 1, 2 },
	[ENG_TYPE_Q4_0] = { "Q4_0", 32, 18 },
	[ENG_TYPE_Q4_1] = { "Q4_1", 32, 20 },
	[ENG_TYPE_Q5_0] = { "Q5_0", 32, 22 },
	[ENG_TYPE_Q5_1] = { "Q5_1", 32, 24 },
	[ENG_TYPE_Q8_0] = { "Q8_0", 32, 34 },
	[ENG_TYPE_Q8_1] = { "Q8_1", 32, 36 },
	[ENG_TYPE_Q2_K] = { "Q2_K", 256, 84 },
	[ENG_TYPE_Q3_K] = { "Q3_K", 256, 110 },
	[ENG_TYPE_Q4_K] = { "Q4_K", 256, 144 },
	[ENG_TYPE_Q5_K] = { "Q5_K", 256, 176 },
	[ENG_TYPE_Q6_K] = { "Q6_K", 256, 210 },
	[ENG_TYPE_I8] = { "I8", 1, 1 },
	[ENG_TYPE_I16] = { "I16", 1, 2 },
	[ENG_TYPE_I32] = { "I32", 1, 4 },
	[ENG_TYPE_I64] = { "I64", 1, 8 },
	[ENG_TYPE_F64] = { "F64", 1, 8 },
	[ENG_TYPE_BF16] = { "BF16", 1, 2 },
};

const char *eng_type_name(uint32_t type)
{
	return type < ENG_TYPE_COUNT ? type_table[type].name : NULL;
}

uint32_t eng_type_block_size(uint32_t type)
{
	return type < ENG_TYPE_COUNT ? type_table[type].blk : 0;
}

uint32_t eng_type_block_bytes(uint32_t type)
{
	return type < ENG_TYPE_COUNT ? type_table[type].bytes : 0;
}

enum eng_status eng_type_row_bytes(uint32_t type, uint64_t n, uint64_t *out)
{
	uint32_t blk = eng_type_block_size(type);
	uint64_t r;

	if (blk == 0)
		return ENG_ERR_UNSUPPORTED;
	if (n % blk != 0)
		return ENG_ERR_FORMAT;
	if (__builtin_mul_overflow(n / blk, (uint64_t)type_table[type].bytes, &r))
		return ENG_ERR_RANGE;
	*out = r;
	return ENG_OK;
}

static const char *const vtype_names[ENG_GGUF_VTYPE_COUNT] = {
	"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

const char *eng_gguf_vtype_name(uint32_t vtype)
{
	return vtype < ENG_GGUF_VTYPE_COUNT ? vtype_names[vtype] : "?";
}

/* Encoded size of a fixed-size scalar, 0 for string/array/unknown. */
static uint32_t vtype_size(uint32_t t)
{
	switch (t) {
	case ENG_GGUF_U8: case ENG_GGUF_I8: case ENG_GGUF_BOOL: return 1;
	case ENG_GGUF_U16: case ENG_GGUF_I16: return 2;
	case ENG_GGUF_U32: case ENG_GGUF_I32: case ENG_GGUF_F32: return 4;
	case ENG_GGUF_U64: case ENG_GGUF_I64: case ENG_GGUF_F64: return 8;
	default: return 0;
	}
}

/* ---- parsed structures ------------------------------------------------- */

struct val {
	uint32_t type;         /* value type */
	uint32_t elem;         /* arrays: element type */
	uint64_t n;            /* arrays: element count; strings: byte length */
	const uint8_t *p;      /* scalar bytes / string bytes / first fixed-size element */
	struct eng_str *strs;  /* arrays of strings: n views */
	struct val *subs;      /* arrays of arrays: n values */
};

struct kv {
	char *key;
	uint64_t key_off; /* byte offset of the pair, for messages */
	struct val v;
};

/* A name and the index it belongs to, for sorted lookup. */
struct name_ref {
	const char *s;
	uint32_t i;
};

struct off_ref {
	uint64_t off;
	uint32_t i;
};

struct eng_gguf {
	const uint8_t *base;
	uint64_t size;
	uint32_t version;
	uint32_t alignment;
	uint64_t data_offset;
	uint64_t n_kv;
	struct kv *kvs;
	struct name_ref *kv_sorted; /* n_kv: keys in strcmp order */
	uint64_t n_tensors;
	struct eng_tensor *tensors;
	struct name_ref *t_sorted;  /* n_tensors: names in strcmp order */
};

struct rd {
	const uint8_t *b;
	uint64_t size;
	uint64_t pos;
	uint64_t indexed; /* string / nested elements indexed so far */
	uint64_t nested;  /* nested array elements so far */
	char *err;
	size_t err_len;
};

static void seterr(struct rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(struct rd *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->err || r->err_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(r->err, r->err_len, fmt, ap);
	va_end(ap);
}

static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Is there room for <n> more bytes at the cursor? */
static bool room(const struct rd *r, uint64_t n)
{
	return n <= r->size - r->pos;
}

/* Reads an <n>-byte little-endian integer; <what> names it for the error. */
static enum eng_status rd_uint(struct rd *r, unsigned n, uint64_t *out, const char *what, const char *ctx)
{
	if (!room(r, n)) {
		seterr(r, "%s: %s at offset %" PRIu64 " runs past the end of the data (size %" PRIu64 ")",
		       ctx[0] ? ctx : "header", what, r->pos, r->size);
		return ENG_ERR_TRUNCATED;
	}
	*out = le(r->b + r->pos, n);
	r->pos += n;
	return ENG_OK;
}

/* Reads a GGUF string header and body: *<p>, *<len> borrow the bytes. */
static enum eng_status rd_str(struct rd *r, uint64_t cap, const uint8_t **p, uint64_t *len,
			      const char *what, const char *ctx)
{
	uint64_t at = r->pos, n;
	enum eng_status st = rd_uint(r, 8, &n, what, ctx);

	if (st)
		return st;
	if (n > cap) {
		seterr(r, "%s: %s length %" PRIu64 " at offset %" PRIu64 " is over the limit %" PRIu64,
		       ctx, what, n, at, cap);
		return ENG_ERR_LIMIT;
	}
	if (!room(r, n)) {
		seterr(r, "%s: %s of %" PRIu64 " bytes at offset %" PRIu64 " runs past the end of the data (size %" PRIu64 ")",
		       ctx, what, n, at, r->size);
		return ENG_ERR_TRUNCATED;
	}
	*p = r->b + r->pos;
	*len = n;
	r->pos += n;
	return ENG_OK;
}

static void val_free(struct val *v)
{
	if (v->subs) {
		for (uint64_t i = 0; i < v->n; i++)
			val_free(&v->subs[i]);
		free(v->subs);
	}
	free(v->strs);
	v->subs = NULL;
	v->strs = NULL;
}

static enum eng_status rd_val(struct rd *r, uint32_t type, struct val *v, unsigned depth, const char *ctx);

/* Array body after the value type: element type, count, elements. */
static enum eng_status rd_arr(struct rd *r, struct val *v, unsigned depth, const char *ctx)
{
	uint64_t at = r->pos, et, n, need, esz;
	enum eng_status st;

	if ((st = rd_uint(r, 4, &et, "array element type", ctx)))
		return st;
	if ((st = rd_uint(r, 8, &n, "array length", ctx)))
		return st;
	v->elem = (uint32_t)et;
	if (et >= ENG_GGUF_VTYPE_COUNT) {
		seterr(r, "%s: unknown array element type %" PRIu64 " at offset %" PRIu64, ctx, et, at);
		return ENG_ERR_FORMAT;
	}
	if (n > ENG_GGUF_MAX_ARRAY) {
		seterr(r, "%s: array of %" PRIu64 " elements at offset %" PRIu64 " is over the limit %u",
		       ctx, n, at, ENG_GGUF_MAX_ARRAY);
		return ENG_ERR_LIMIT;
	}
	v->n = n;
	/* Smallest encoding of one element: fixed size, 8 for a string, 12 for an array. */
	esz = vtype_size((uint32_t)et);
	if (esz == 0)
		esz = et == ENG_GGUF_STRING ? 8 : 12;
	if (__builtin_mul_overflow(n, esz, &need) || !room(r, need)) {
		seterr(r, "%s: array of %" PRIu64 " %s elements at offset %" PRIu64
		       " runs past the end of the data (size %" PRIu64 ")",
		       ctx, n, eng_gguf_vtype_name((uint32_t)et), at, r->size);
		return ENG_ERR_TRUNCATED;
	}
	if (et != ENG_GGUF_STRING && et != ENG_GGUF_ARRAY) {
		v->p = r->b + r->pos;
		r->pos += need;
		return ENG_OK;
	}
	if (n > ENG_GGUF_MAX_INDEXED - r->indexed) {
		seterr(r, "%s: array at offset %" PRIu64 " brings the file over %u string/array elements",
		       ctx, at, ENG_GGUF_MAX_INDEXED);
		return ENG_ERR_LIMIT;
	}
	r->indexed += n;
	if (n == 0)
		return ENG_OK;
	if (et == ENG_GGUF_STRING) {
		v->strs = calloc(n, sizeof(*v->strs));
		if (!v->strs) {
			seterr(r, "%s: out of memory for %" PRIu64 " strings", ctx, n);
			return ENG_ERR_NOMEM;
		}
		for (uint64_t i = 0; i < n; i++) {
			const uint8_t *p;
			uint64_t len;

			if ((st = rd_str(r, ENG_GGUF_MAX_STRING, &p, &len, "array string", ctx))) {
				return st;
			}
			v->strs[i].ptr = (const char *)p;
			v->strs[i].len = len;
		}
		return ENG_OK;
	}
	if (n > ENG_GGUF_MAX_NESTED - r->nested) {
		seterr(r, "%s: array at offset %" PRIu64 " brings the file over %u nested arrays",
		       ctx, at, ENG_GGUF_MAX_NESTED);
		return ENG_ERR_LIMIT;
	}
	r->nested += n;
	if (depth >= ENG_GGUF_MAX_NESTING) {
		seterr(r, "%s: arrays nested deeper than %u at offset %" PRIu64, ctx, ENG_GGUF_MAX_NESTING, at);
		return ENG_ERR_LIMIT;
	}
	v->subs = calloc(n, sizeof(*v->subs));
	if (!v->subs) {
		seterr(r, "%s: out of memory for %" PRIu64 " nested arrays", ctx, n);
		return ENG_ERR_NOMEM;
	}
	for (uint64_t i = 0; i < n; i++)
		if ((st = rd_val(r, ENG_GGUF_ARRAY, &v->subs[i], depth + 1, ctx)))
			return st;
	return ENG_OK;
}

static enum eng_status rd_val(struct rd *r, uint32_t type, struct val *v, unsigned depth, const char *ctx)
{
	uint32_t sz = vtype_size(type);

	v->type = type;
	if (sz) {
		if (!room(r, sz)) {
			seterr(r, "%s: %s value at offset %" PRIu64 " runs past the end of the data (size %" PRIu64 ")",
			       ctx, eng_gguf_vtype_name(type), r->pos, r->size);
			return ENG_ERR_TRUNCATED;
		}
		v->p = r->b + r->pos;
		r->pos += sz;
		return ENG_OK;
	}
	if (type == ENG_GGUF_STRING)
		return rd_str(r, ENG_GGUF_MAX_STRING, &v->p, &v->n, "string value", ctx);
	if (type == ENG_GGUF_ARRAY)
		return rd_arr(r, v, depth, ctx);
	seterr(r, "%s: unknown value type %u at offset %" PRIu64, ctx, type, r->pos - 4);
	return ENG_ERR_FORMAT;
}

/* ---- integer / float conversions -------------------------------------- */

/* A scalar integer of <type> at <p> as sign + magnitude. Returns false for
 * non-integer types. */
static bool int_of(uint32_t type, const uint8_t *p, bool *neg, uint64_t *mag)
{
	int64_t s;

	switch (type) {
	case ENG_GGUF_U8: case ENG_GGUF_U16: case ENG_GGUF_U32: case ENG_GGUF_U64:
		*neg = false;
		*mag = le(p, vtype_size(type));
		return true;
	case ENG_GGUF_I8: s = (int8_t)le(p, 1); break;
	case ENG_GGUF_I16: s = (int16_t)le(p, 2); break;
	case ENG_GGUF_I32: s = (int32_t)le(p, 4); break;
	case ENG_GGUF_I64: s = (int64_t)le(p, 8); break;
	default: return false;
	}
	*neg = s < 0;
	*mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
	return true;
}

static enum eng_status to_u64(uint32_t type, const uint8_t *p, uint64_t max, uint64_t *out)
{
	bool neg;
	uint64_t m;

	if (!int_of(type, p, &neg, &m))
		return ENG_ERR_TYPE;
	if (neg || m > max)
		return ENG_ERR_RANGE;
	*out = m;
	return ENG_OK;
}

static enum eng_status to_i64(uint32_t type, const uint8_t *p, int64_t min, int64_t max, int64_t *out)
{
	bool neg;
	uint64_t m;
	int64_t v;

	if (!int_of(type, p, &neg, &m))
		return ENG_ERR_TYPE;
	if (neg) {
		if (m > (uint64_t)INT64_MAX + 1)
			return ENG_ERR_RANGE;
		v = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
	} else {
		if (m > (uint64_t)INT64_MAX)
			return ENG_ERR_RANGE;
		v = (int64_t)m;
	}
	if (v < min || v > max)
		return ENG_ERR_RANGE;
	*out = v;
	return ENG_OK;
}

static enum eng_status to_f64(uint32_t type, const uint8_t *p, double *out)
{
	if (type == ENG_GGUF_F32) {
		uint32_t b = (uint32_t)le(p, 4);
		float f;

		memcpy(&f, &b, 4);
		*out = f;
		return ENG_OK;
	}
	if (type == ENG_GGUF_F64) {
		uint64_t b = le(p, 8);
		double d;

		memcpy(&d, &b, 8);
		*out = d;
		return ENG_OK;
	}
	return ENG_ERR_TYPE;
}

/* ---- parse ------------------------------------------------------------- */

static int cmp_name_ref(const void *a, const void *b)
{
	return strcmp(((const struct name_ref *)a)->s, ((const struct name_ref *)b)->s);
}

static int cmp_off_ref(const void *a, const void *b)
{
	uint64_t x = ((const struct off_ref *)a)->off, y = ((const struct off_ref *)b)->off;

	return x < y ? -1 : x > y;
}

/* A NUL-terminated copy of <len> bytes at <p>; NULL if they hold a NUL. */
static char *dup_name(const uint8_t *p, uint64_t len, bool *has_nul)
{
	char *s;

	*has_nul = memchr(p, 0, len) != NULL;
	if (*has_nul)
		return NULL;
	s = malloc(len + 1);
	if (s) {
		memcpy(s, p, len);
		s[len] = 0;
	}
	return s;
}

static enum eng_status parse_kvs(struct eng_gguf *g, struct rd *r)
{
	enum eng_status st;

	for (uint64_t i = 0; i < g->n_kv; i++) {
		struct kv *kv = &g->kvs[i];
		const uint8_t *kp;
		uint64_t klen, type;
		bool nul;
		char ctx[64];

		kv->key_off = r->pos;
		snprintf(ctx, sizeof(ctx), "metadata pair %" PRIu64, i);
		if ((st = rd_str(r, ENG_GGUF_MAX_KEY, &kp, &klen, "key", ctx)))
			return st;
		if (klen == 0) {
			seterr(r, "%s: empty key at offset %" PRIu64, ctx, kv->key_off);
			return ENG_ERR_FORMAT;
		}
		kv->key = dup_name(kp, klen, &nul);
		if (nul) {
			seterr(r, "%s: key at offset %" PRIu64 " contains a NUL byte", ctx, kv->key_off);
			return ENG_ERR_FORMAT;
		}
		if (!kv->key) {
			seterr(r, "%s: out of memory", ctx);
			return ENG_ERR_NOMEM;
		}
		/* From here on errors name the key itself. */
		char kctx[ENG_GGUF_MAX_KEY + 16];
		snprintf(kctx, sizeof(kctx), "key '%s'", kv->key);
		if ((st = rd_uint(r, 4, &type, "value type", kctx)))
			return st;
		if (type >= ENG_GGUF_VTYPE_COUNT) {
			seterr(r, "%s: unknown value type %" PRIu64 " at offset %" PRIu64, kctx, type, r->pos - 4);
			return ENG_ERR_FORMAT;
		}
		if ((st = rd_val(r, (uint32_t)type, &kv->v, 0, kctx)))
			return st;
	}
	return ENG_OK;
}

static enum eng_status check_alignment(struct eng_gguf *g, struct rd *r)
{
	int64_t k = eng_gguf_find_key(g, "general.alignment");
	uint64_t a;
	enum eng_status st;

	g->alignment = ENG_GGUF_DEFAULT_ALIGNMENT;
	if (k < 0)
		return ENG_OK;
	st = to_u64(g->kvs[k].v.type, g->kvs[k].v.p, UINT32_MAX, &a);
	if (st == ENG_ERR_TYPE) {
		seterr(r, "key 'general.alignment': expected an integer, found %s",
		       eng_gguf_vtype_name(g->kvs[k].v.type));
		return ENG_ERR_FORMAT;
	}
	if (st || a == 0 || (a & (a - 1)) != 0 || a > ENG_GGUF_MAX_ALIGNMENT) {
		seterr(r, "key 'general.alignment': must be a power of two from 1 to %u",
		       ENG_GGUF_MAX_ALIGNMENT);
		return ENG_ERR_FORMAT;
	}
	g->alignment = (uint32_t)a;
	return ENG_OK;
}

static enum eng_status parse_tensor_infos(struct eng_gguf *g, struct rd *r)
{
	enum eng_status st;

	for (uint64_t i = 0; i < g->n_tensors; i++) {
		struct eng_tensor *t = &g->tensors[i];
		uint64_t at = r->pos, nlen, v, nel = 1, rowb, rows, nb;
		const uint8_t *np;
		bool nul;
		char ctx[ENG_GGUF_MAX_NAME + 32];

		snprintf(ctx, sizeof(ctx), "tensor %" PRIu64, i);
		if ((st = rd_str(r, ENG_GGUF_MAX_NAME, &np, &nlen, "name", ctx)))
			return st;
		t->name = dup_name(np, nlen, &nul);
		if (nul) {
			seterr(r, "%s: name at offset %" PRIu64 " contains a NUL byte", ctx, at);
			return ENG_ERR_FORMAT;
		}
		if (!t->name) {
			seterr(r, "%s: out of memory", ctx);
			return ENG_ERR_NOMEM;
		}
		snprintf(ctx, sizeof(ctx), "tensor '%s'", t->name);
		if ((st = rd_uint(r, 4, &v, "n_dims", ctx)))
			return st;
		if (v == 0 || v > ENG_MAX_DIMS) {
			seterr(r, "%s: n_dims %" PRIu64 " at offset %" PRIu64 " is not in 1..%d",
			       ctx, v, r->pos - 4, ENG_MAX_DIMS);
			return ENG_ERR_FORMAT;
		}
		t->n_dims = (uint32_t)v;
		for (uint32_t d = 0; d < ENG_MAX_DIMS; d++)
			t->dims[d] = 1;
		for (uint32_t d = 0; d < t->n_dims; d++) {
			if ((st = rd_uint(r, 8, &v, "dimension", ctx)))
				return st;
			if (v == 0 || v > (uint64_t)INT64_MAX) {
				seterr(r, "%s: dimension %u is %" PRIu64 " at offset %" PRIu64,
				       ctx, d, v, r->pos - 8);
				return ENG_ERR_FORMAT;
			}
			t->dims[d] = v;
			if (__builtin_mul_overflow(nel, v, &nel) || nel > (uint64_t)INT64_MAX) {
				seterr(r, "%s: element count overflows at dimension %u (offset %" PRIu64 ")",
				       ctx, d, r->pos - 8);
				return ENG_ERR_FORMAT;
			}
		}
		t->n_elements = nel;
		if ((st = rd_uint(r, 4, &v, "type", ctx)))
			return st;
		if (v >= ENG_TYPE_COUNT || !eng_type_name((uint32_t)v)) {
			seterr(r, "%s: unsupported tensor type %" PRIu64 " at offset %" PRIu64,
			       ctx, v, r->pos - 4);
			return ENG_ERR_UNSUPPORTED;
		}
		t->type = (enum eng_type)v;
		st = eng_type_row_bytes((uint32_t)v, t->dims[0], &rowb);
		if (st == ENG_ERR_FORMAT) {
			seterr(r, "%s: row length %" PRIu64 " is not a multiple of the %s block size %u",
			       ctx, t->dims[0], eng_type_name(t->type), eng_type_block_size(t->type));
			return st;
		}
		rows = nel / t->dims[0];
		if (st || __builtin_mul_overflow(rowb, rows, &nb)) {
			seterr(r, "%s: byte size overflows", ctx);
			return ENG_ERR_FORMAT;
		}
		t->n_bytes = nb;
		if ((st = rd_uint(r, 8, &v, "data offset", ctx)))
			return st;
		if (v % g->alignment != 0) {
			seterr(r, "%s: data offset %" PRIu64 " (at offset %" PRIu64 ") is not a multiple of the alignment %u",
			       ctx, v, r->pos - 8, g->alignment);
			return ENG_ERR_FORMAT;
		}
		t->offset = v; /* relative for now; made absolute once the data section is known */
	}
	return ENG_OK;
}

static enum eng_status check_tensor_spans(struct eng_gguf *g, struct rd *r)
{
	uint64_t prev_end = 0;
	const struct eng_tensor *prev = NULL;
	struct off_ref *by_off;

	for (uint64_t i = 0; i < g->n_tensors; i++) {
		struct eng_tensor *t = &g->tensors[i];
		uint64_t start, end;

		if (__builtin_add_overflow(g->data_offset, t->offset, &start) ||
		    __builtin_add_overflow(start, t->n_bytes, &end) || end > g->size) {
			seterr(r, "tensor '%s': %" PRIu64 " bytes at data offset %" PRIu64
			       " (file offset %" PRIu64 ") reach past the end of the file (size %" PRIu64 ")",
			       t->name, t->n_bytes, t->offset, g->data_offset + t->offset, g->size);
			return ENG_ERR_TRUNCATED;
		}
		t->offset = start;
		t->data = g->base + start;
	}
	if (g->n_tensors < 2)
		return ENG_OK;
	by_off = malloc(g->n_tensors * sizeof(*by_off));
	if (!by_off) {
		seterr(r, "out of memory");
		return ENG_ERR_NOMEM;
	}
	for (uint64_t i = 0; i < g->n_tensors; i++)
		by_off[i] = (struct off_ref){ g->tensors[i].offset, (uint32_t)i };
	qsort(by_off, g->n_tensors, sizeof(*by_off), cmp_off_ref);
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct eng_tensor *t = &g->tensors[by_off[i].i];

		if (prev && t->offset < prev_end) {
			seterr(r, "tensor '%s' (file offset %" PRIu64 ") overlaps tensor '%s' (file offset %"
			       PRIu64 ", %" PRIu64 " bytes)", t->name, t->offset, prev->name, prev->offset,
			       prev->n_bytes);
			free(by_off);
			return ENG_ERR_FORMAT;
		}
		prev = t;
		prev_end = t->offset + t->n_bytes;
	}
	free(by_off);
	return ENG_OK;
}

static enum eng_status build_indexes(struct eng_gguf *g, struct rd *r)
{
	g->kv_sorted = malloc((g->n_kv ? g->n_kv : 1) * sizeof(*g->kv_sorted));
	g->t_sorted = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof(*g->t_sorted));
	if (!g->kv_sorted || !g->t_sorted) {
		seterr(r, "out of memory");
		return ENG_ERR_NOMEM;
	}
	for (uint64_t i = 0; i < g->n_kv; i++)
		g->kv_sorted[i] = (struct name_ref){ g->kvs[i].key, (uint32_t)i };
	qsort(g->kv_sorted, g->n_kv, sizeof(*g->kv_sorted), cmp_name_ref);
	for (uint64_t i = 1; i < g->n_kv; i++) {
		const struct kv *a = &g->kvs[g->kv_sorted[i - 1].i], *b = &g->kvs[g->kv_sorted[i].i];

		if (strcmp(a->key, b->key) == 0) {
			seterr(r, "key '%s': duplicate (offsets %" PRIu64 " and %" PRIu64 ")", a->key,
			       a->key_off < b->key_off ? a->key_off : b->key_off,
			       a->key_off < b->key_off ? b->key_off : a->key_off);
			return ENG_ERR_DUPLICATE;
		}
	}
	return ENG_OK;
}

static enum eng_status check_tensor_names(struct eng_gguf *g, struct rd *r)
{
	for (uint64_t i = 0; i < g->n_tensors; i++)
		g->t_sorted[i] = (struct name_ref){ g->tensors[i].name, (uint32_t)i };
	qsort(g->t_sorted, g->n_tensors, sizeof(*g->t_sorted), cmp_name_ref);
	for (uint64_t i = 1; i < g->n_tensors; i++) {
		const char *a = g->t_sorted[i - 1].s;

		if (strcmp(a, g->t_sorted[i].s) == 0) {
			seterr(r, "tensor '%s': duplicate name", a);
			return ENG_ERR_DUPLICATE;
		}
	}
	return ENG_OK;
}

enum eng_status eng_gguf_parse(const void *data, size_t size, struct eng_gguf **out, char *err, size_t err_len)
{
	struct rd r = { .b = data, .size = size, .err = err, .err_len = err_len };
	struct eng_gguf *g = NULL;
	enum eng_status st;
	uint64_t v, pad;

	if (err && err_len)
		err[0] = 0;
	if (!out)
		return ENG_ERR_ARG;
	*out = NULL;
	if (!data && size) {
		seterr(&r, "no data");
		return ENG_ERR_ARG;
	}
	if (size < 4) {
		seterr(&r, "header: %zu bytes, too short for the GGUF magic", size);
		return ENG_ERR_TRUNCATED;
	}
	if (memcmp(data, "GGUF", 4) != 0) {
		seterr(&r, "header: bad magic at offset 0 (not a GGUF file)");
		return ENG_ERR_FORMAT;
	}
	r.pos = 4;
	g = calloc(1, sizeof(*g));
	if (!g) {
		seterr(&r, "out of memory");
		return ENG_ERR_NOMEM;
	}
	g->base = data;
	g->size = size;
	if ((st = rd_uint(&r, 4, &v, "version", "")))
		goto fail;
	if (v != 2 && v != 3) {
		seterr(&r, "header: unsupported GGUF version %" PRIu64 " at offset 4 (2 and 3 are read%s)", v,
		       v > 0xffff ? "; a big-endian file?" : "");
		st = ENG_ERR_UNSUPPORTED;
		goto fail;
	}
	g->version = (uint32_t)v;
	if ((st = rd_uint(&r, 8, &g->n_tensors, "tensor count", "")))
		goto fail;
	if ((st = rd_uint(&r, 8, &g->n_kv, "metadata count", "")))
		goto fail;
	if (g->n_tensors > ENG_GGUF_MAX_TENSORS) {
		seterr(&r, "header: tensor count %" PRIu64 " at offset 8 is over the limit %u",
		       g->n_tensors, ENG_GGUF_MAX_TENSORS);
		st = ENG_ERR_LIMIT;
		goto fail;
	}
	if (g->n_kv > ENG_GGUF_MAX_KV) {
		seterr(&r, "header: metadata count %" PRIu64 " at offset 16 is over the limit %u",
		       g->n_kv, ENG_GGUF_MAX_KV);
		st = ENG_ERR_LIMIT;
		goto fail;
	}
	/* Every pair takes at least 13 bytes and every tensor info 32: refuse
	 * counts the file cannot hold before allocating for them. */
	if (g->n_kv * 13 + g->n_tensors * 32 > r.size - r.pos) {
		seterr(&r, "header: %" PRIu64 " metadata pairs and %" PRIu64
		       " tensors cannot fit in %" PRIu64 " bytes", g->n_kv, g->n_tensors, r.size);
		st = ENG_ERR_TRUNCATED;
		goto fail;
	}
	g->kvs = calloc(g->n_kv ? g->n_kv : 1, sizeof(*g->kvs));
	g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*g->tensors));
	if (!g->kvs || !g->tensors) {
		seterr(&r, "out of memory");
		st = ENG_ERR_NOMEM;
		goto fail;
	}
	if ((st = parse_kvs(g, &r)))
		goto fail;
	if ((st = build_indexes(g, &r)))
		goto fail;
	if ((st = check_alignment(g, &r)))
		goto fail;
	if ((st = parse_tensor_infos(g, &r)))
		goto fail;
	if ((st = check_tensor_names(g, &r)))
		goto fail;
	pad = (g->alignment - r.pos % g->alignment) % g->alignment;
	g->data_offset = r.pos + pad; /* may lie past the end when the file has no tensors */
	if ((st = check_tensor_spans(g, &r)))
		goto fail;
	*out = g;
	return ENG_OK;
fail:
	eng_gguf_free(g);
	return st;
}

void eng_gguf_free(struct eng_gguf *g)
{
	if (!g)
		return;
	if (g->kvs) {
		for (uint64_t i = 0; i < g->n_kv; i++) {
			free(g->kvs[i].key);
			val_free(&g->kvs[i].v);
		}
	}
	if (g->tensors)
		for (uint64_t i = 0; i < g->n_tensors; i++)
			free((char *)g->tensors[i].name);
	free(g->kvs);
	free(g->tensors);
	free(g->kv_sorted);
	free(g->t_sorted);
	free(g);
}

uint32_t eng_gguf_version(const struct eng_gguf *g) { return g->version; }
uint32_t eng_gguf_alignment(const struct eng_gguf *g) { return g->alignment; }
uint64_t eng_gguf_data_offset(const struct eng_gguf *g) { return g->data_offset; }
uint64_t eng_gguf_size(const struct eng_gguf *g) { return g->size; }

/* ---- metadata access --------------------------------------------------- */

uint64_t eng_gguf_n_kv(const struct eng_gguf *g) { return g->n_kv; }

const char *eng_gguf_kv_key(const struct eng_gguf *g, uint64_t i)
{
	return i < g->n_kv ? g->kvs[i].key : NULL;
}

enum eng_gguf_vtype eng_gguf_kv_type(const struct eng_gguf *g, uint64_t i)
{
	return i < g->n_kv ? (enum eng_gguf_vtype)g->kvs[i].v.type : ENG_GGUF_VTYPE_COUNT;
}

int64_t eng_gguf_find_key(const struct eng_gguf *g, const char *key)
{
	uint64_t lo = 0, hi = g->n_kv;

	if (!key || !g->kv_sorted)
		return -1;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, g->kv_sorted[mid].s);

		if (c == 0)
			return g->kv_sorted[mid].i;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

static const struct val *find_val(const struct eng_gguf *g, const char *key)
{
	int64_t i = eng_gguf_find_key(g, key);

	return i < 0 ? NULL : &g->kvs[i].v;
}

static const struct val *kv_val(const struct eng_gguf *g, uint64_t i)
{
	return i < g->n_kv ? &g->kvs[i].v : NULL;
}

static enum eng_status v_u64(const struct val *v, uint64_t max, uint64_t *out)
{
	return v ? to_u64(v->type, v->p, max, out) : ENG_ERR_NOT_FOUND;
}

static enum eng_status v_i64(const struct val *v, int64_t min, int64_t max, int64_t *out)
{
	return v ? to_i64(v->type, v->p, min, max, out) : ENG_ERR_NOT_FOUND;
}

static enum eng_status v_str(const struct val *v, struct eng_str *out)
{
	if (!v)
		return ENG_ERR_NOT_FOUND;
	if (v->type != ENG_GGUF_STRING)
		return ENG_ERR_TYPE;
	out->ptr = (const char *)v->p;
	out->len = v->n;
	return ENG_OK;
}

static enum eng_status v_arr(const struct val *v, struct eng_gguf_arr *out)
{
	if (!v)
		return ENG_ERR_NOT_FOUND;
	if (v->type != ENG_GGUF_ARRAY)
		return ENG_ERR_TYPE;
	out->type = (enum eng_gguf_vtype)v->elem;
	out->n = v->n;
	out->priv = v;
	return ENG_OK;
}

enum eng_status eng_gguf_get_u32(const struct eng_gguf *g, const char *key, uint32_t *out)
{
	uint64_t v;
	enum eng_status st = v_u64(find_val(g, key), UINT32_MAX, &v);

	if (st == ENG_OK)
		*out = (uint32_t)v;
	return st;
}

enum eng_status eng_gguf_get_i32(const struct eng_gguf *g, const char *key, int32_t *out)
{
	int64_t v;
	enum eng_status st = v_i64(find_val(g, key), INT32_MIN, INT32_MAX, &v);

	if (st == ENG_OK)
		*out = (int32_t)v;
	return st;
}

enum eng_status eng_gguf_get_u64(const struct eng_gguf *g, const char *key, uint64_t *out)
{
	return v_u64(find_val(g, key), UINT64_MAX, out);
}

enum eng_status eng_gguf_get_i64(const struct eng_gguf *g, const char *key, int64_t *out)
{
	return v_i64(find_val(g, key), INT64_MIN, INT64_MAX, out);
}

enum eng_status eng_gguf_get_f32(const struct eng_gguf *g, const char *key, float *out)
{
	const struct val *v = find_val(g, key);
	double d;
	enum eng_status st;

	if (!v)
		return ENG_ERR_NOT_FOUND;
	st = to_f64(v->type, v->p, &d);
	if (st == ENG_OK)
		*out = (float)d;
	return st;
}

enum eng_status eng_gguf_get_bool(const struct eng_gguf *g, const char *key, bool *out)
{
	const struct val *v = find_val(g, key);

	if (!v)
		return ENG_ERR_NOT_FOUND;
	if (v->type != ENG_GGUF_BOOL)
		return ENG_ERR_TYPE;
	*out = v->p[0] != 0;
	return ENG_OK;
}

enum eng_status eng_gguf_get_str(const struct eng_gguf *g, const char *key, struct eng_str *out)
{
	return v_str(find_val(g, key), out);
}

enum eng_status eng_gguf_get_arr(const struct eng_gguf *g, const char *key, struct eng_gguf_arr *out)
{
	return v_arr(find_val(g, key), out);
}

enum eng_status eng_gguf_kv_u64(const struct eng_gguf *g, uint64_t i, uint64_t *out)
{
	return v_u64(kv_val(g, i), UINT64_MAX, out);
}

enum eng_status eng_gguf_kv_i64(const struct eng_gguf *g, uint64_t i, int64_t *out)
{
	return v_i64(kv_val(g, i), INT64_MIN, INT64_MAX, out);
}

enum eng_status eng_gguf_kv_f64(const struct eng_gguf *g, uint64_t i, double *out)
{
	const struct val *v = kv_val(g, i);

	return v ? to_f64(v->type, v->p, out) : ENG_ERR_NOT_FOUND;
}

enum eng_status eng_gguf_kv_str(const struct eng_gguf *g, uint64_t i, struct eng_str *out)
{
	return v_str(kv_val(g, i), out);
}

enum eng_status eng_gguf_kv_arr(const struct eng_gguf *g, uint64_t i, struct eng_gguf_arr *out)
{
	return v_arr(kv_val(g, i), out);
}

/* ---- array elements ---------------------------------------------------- */

/* The bytes of element <i> of a fixed-size-element array in *<p>. The status
 * is the only success signal: *<p> is set exactly when it is ENG_OK, so each
 * caller returns early on failure and the compiler (and the reader) can see
 * that nothing is read from an unset pointer or value. */
static enum eng_status elem(const struct eng_gguf_arr *arr, uint64_t i, uint32_t *type,
			    const uint8_t **p)
{
	const struct val *v = arr ? arr->priv : NULL;
	uint32_t sz;

	if (!v || i >= v->n)
		return ENG_ERR_RANGE;
	sz = vtype_size(v->elem);
	if (sz == 0)
		return ENG_ERR_TYPE;
	*type = v->elem;
	*p = v->p + i * sz;
	return ENG_OK;
}

enum eng_status eng_gguf_arr_i64(const struct eng_gguf_arr *arr, uint64_t i, int64_t *out)
{
	const uint8_t *p;
	uint32_t type;
	enum eng_status st = elem(arr, i, &type, &p);

	if (st != ENG_OK)
		return st;
	return to_i64(type, p, INT64_MIN, INT64_MAX, out);
}

enum eng_status eng_gguf_arr_u64(const struct eng_gguf_arr *arr, uint64_t i, uint64_t *out)
{
	const uint8_t *p;
	uint32_t type;
	enum eng_status st = elem(arr, i, &type, &p);

	if (st != ENG_OK)
		return st;
	return to_u64(type, p, UINT64_MAX, out);
}

enum eng_status eng_gguf_arr_i32(const struct eng_gguf_arr *arr, uint64_t i, int32_t *out)
{
	const uint8_t *p;
	uint32_t type;
	int64_t v;
	enum eng_status st = elem(arr, i, &type, &p);

	if (st == ENG_OK)
		st = to_i64(type, p, INT32_MIN, INT32_MAX, &v);
	if (st == ENG_OK)
		*out = (int32_t)v;
	return st;
}

enum eng_status eng_gguf_arr_u32(const struct eng_gguf_arr *arr, uint64_t i, uint32_t *out)
{
	const uint8_t *p;
	uint32_t type;
	uint64_t v;
	enum eng_status st = elem(arr, i, &type, &p);

	if (st == ENG_OK)
		st = to_u64(type, p, UINT32_MAX, &v);
	if (st == ENG_OK)
		*out = (uint32_t)v;
	return st;
}

enum eng_status eng_gguf_arr_f64(const struct eng_gguf_arr *arr, uint64_t i, double *out)
{
	const uint8_t *p;
	uint32_t type;
	enum eng_status st = elem(arr, i, &type, &p);

	if (st != ENG_OK)
		return st;
	return to_f64(type, p, out);
}

enum eng_status eng_gguf_arr_f32(const struct eng_gguf_arr *arr, uint64_t i, float *out)
{
	double d;
	enum eng_status st = eng_gguf_arr_f64(arr, i, &d);

	if (st == ENG_OK)
		*out = (float)d;
	return st;
}

enum eng_status eng_gguf_arr_bool(const struct eng_gguf_arr *arr, uint64_t i, bool *out)
{
	const uint8_t *p;
	uint32_t type;
	enum eng_status st = elem(arr, i, &type, &p);

	if (st != ENG_OK)
		return st;
	if (type != ENG_GGUF_BOOL)
		return ENG_ERR_TYPE;
	*out = p[0] != 0;
	return ENG_OK;
}

enum eng_status eng_gguf_arr_str(const struct eng_gguf_arr *arr, uint64_t i, struct eng_str *out)
{
	const struct val *v = arr ? arr->priv : NULL;

	if (!v || i >= v->n)
		return ENG_ERR_RANGE;
	if (v->elem != ENG_GGUF_STRING)
		return ENG_ERR_TYPE;
	*out = v->strs[i];
	return ENG_OK;
}

enum eng_status eng_gguf_arr_arr(const struct eng_gguf_arr *arr, uint64_t i, struct eng_gguf_arr *out)
{
	const struct val *v = arr ? arr->priv : NULL;

	if (!v || i >= v->n)
		return ENG_ERR_RANGE;
	if (v->elem != ENG_GGUF_ARRAY)
		return ENG_ERR_TYPE;
	return v_arr(&v->subs[i], out);
}

const void *eng_gguf_arr_raw(const struct eng_gguf_arr *arr)
{
	const struct val *v = arr ? arr->priv : NULL;

	if (!v || vtype_size(v->elem) == 0)
		return NULL;
	return v->p;
}

/* ---- tensors ----------------------------------------------------------- */

uint64_t eng_gguf_n_tensors(const struct eng_gguf *g) { return g->n_tensors; }

const struct eng_tensor *eng_gguf_tensor_at(const struct eng_gguf *g, uint64_t i)
{
	return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const struct eng_tensor *eng_gguf_tensor(const struct eng_gguf *g, const char *name)
{
	uint64_t lo = 0, hi = g->n_tensors;

	if (!name)
		return NULL;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		const struct eng_tensor *t = &g->tensors[g->t_sorted[mid].i];
		int c = strcmp(name, g->t_sorted[mid].s);

		if (c == 0)
			return t;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}
