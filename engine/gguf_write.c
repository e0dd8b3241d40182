/* GGUF writer: metadata is encoded as it is added (into a growing byte
 * buffer); tensor infos and data are laid out at write time. */
#include "engine/gguf_write.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Caps on what one writer holds (tests and the model generator stay far below). */
#define GW_MAX_META (1ull << 31)     /* encoded metadata bytes */
#define GW_MAX_TENSORS (1u << 16)

struct gw_tensor {
	char *name;
	uint32_t type;
	uint32_t n_dims;
	uint64_t dims[ENG_MAX_DIMS];
	uint64_t n_bytes;
	uint64_t offset; /* relative to the data section */
	void *data;      /* copy, or NULL: filled at write time */
};

struct eng_gguf_writer {
	uint32_t version;
	uint32_t alignment;
	uint64_t n_kv;
	uint8_t *meta; /* encoded pairs */
	size_t meta_len, meta_cap;
	struct gw_tensor *t;
	uint64_t n_t, cap_t;
	uint64_t data_size; /* bytes of the data section, padded */
};

static void fmt_err(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fmt_err(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (!err || err_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

struct eng_gguf_writer *eng_gguf_writer_new(uint32_t version, uint32_t alignment)
{
	struct eng_gguf_writer *w;

	if (alignment == 0)
		alignment = ENG_GGUF_DEFAULT_ALIGNMENT;
	if ((version != 2 && version != 3) || (alignment & (alignment - 1)) != 0)
		return NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->version = version;
	w->alignment = alignment;
	if (alignment != ENG_GGUF_DEFAULT_ALIGNMENT && eng_gguf_writer_set_u32(w, "general.alignment", alignment)) {
		eng_gguf_writer_free(w);
		return NULL;
	}
	return w;
}

void eng_gguf_writer_free(struct eng_gguf_writer *w)
{
	if (!w)
		return;
	for (uint64_t i = 0; i < w->n_t; i++) {
		free(w->t[i].name);
		free(w->t[i].data);
	}
	free(w->t);
	free(w->meta);
	free(w);
}

/* ---- metadata encoding ------------------------------------------------- */

static enum eng_status put(struct eng_gguf_writer *w, const void *p, size_t n)
{
	if (n > GW_MAX_META - w->meta_len)
		return ENG_ERR_LIMIT;
	if (w->meta_len + n > w->meta_cap) {
		size_t cap = w->meta_cap ? w->meta_cap : 256;
		uint8_t *m;

		while (cap < w->meta_len + n)
			cap *= 2;
		m = realloc(w->meta, cap);
		if (!m)
			return ENG_ERR_NOMEM;
		w->meta = m;
		w->meta_cap = cap;
	}
	if (n)
		memcpy(w->meta + w->meta_len, p, n);
	w->meta_len += n;
	return ENG_OK;
}

static enum eng_status put_le(struct eng_gguf_writer *w, uint64_t v, unsigned n)
{
	uint8_t b[8];

	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return put(w, b, n);
}

static enum eng_status put_str(struct eng_gguf_writer *w, const char *s, size_t len)
{
	enum eng_status st = put_le(w, len, 8);

	return st ? st : put(w, s, len);
}

/* Starts a pair: key and value type. On failure the buffer is rolled back by
 * the caller through <mark>. */
static enum eng_status put_head(struct eng_gguf_writer *w, const char *key, uint32_t vtype)
{
	enum eng_status st;

	if (!key)
		return ENG_ERR_ARG;
	if ((st = put_str(w, key, strlen(key))))
		return st;
	return put_le(w, vtype, 4);
}

static enum eng_status set_scalar(struct eng_gguf_writer *w, const char *key, uint32_t vtype, uint64_t bits, unsigned n)
{
	size_t mark = w->meta_len;
	enum eng_status st = put_head(w, key, vtype);

	if (!st)
		st = put_le(w, bits, n);
	if (st)
		w->meta_len = mark;
	else
		w->n_kv++;
	return st;
}

enum eng_status eng_gguf_writer_set_u8(struct eng_gguf_writer *w, const char *key, uint8_t v)
{
	return set_scalar(w, key, ENG_GGUF_U8, v, 1);
}

enum eng_status eng_gguf_writer_set_i8(struct eng_gguf_writer *w, const char *key, int8_t v)
{
	return set_scalar(w, key, ENG_GGUF_I8, (uint8_t)v, 1);
}

enum eng_status eng_gguf_writer_set_u16(struct eng_gguf_writer *w, const char *key, uint16_t v)
{
	return set_scalar(w, key, ENG_GGUF_U16, v, 2);
}

enum eng_status eng_gguf_writer_set_i16(struct eng_gguf_writer *w, const char *key, int16_t v)
{
	return set_scalar(w, key, ENG_GGUF_I16, (uint16_t)v, 2);
}

enum eng_status eng_gguf_writer_set_u32(struct eng_gguf_writer *w, const char *key, uint32_t v)
{
	return set_scalar(w, key, ENG_GGUF_U32, v, 4);
}

enum eng_status eng_gguf_writer_set_i32(struct eng_gguf_writer *w, const char *key, int32_t v)
{
	return set_scalar(w, key, ENG_GGUF_I32, (uint32_t)v, 4);
}

enum eng_status eng_gguf_writer_set_u64(struct eng_gguf_writer *w, const char *key, uint64_t v)
{
	return set_scalar(w, key, ENG_GGUF_U64, v, 8);
}

enum eng_status eng_gguf_writer_set_i64(struct eng_gguf_writer *w, const char *key, int64_t v)
{
	return set_scalar(w, key, ENG_GGUF_I64, (uint64_t)v, 8);
}

enum eng_status eng_gguf_writer_set_f32(struct eng_gguf_writer *w, const char *key, float v)
{
	uint32_t b;

	memcpy(&b, &v, 4);
	return set_scalar(w, key, ENG_GGUF_F32, b, 4);
}

enum eng_status eng_gguf_writer_set_f64(struct eng_gguf_writer *w, const char *key, double v)
{
	uint64_t b;

	memcpy(&b, &v, 8);
	return set_scalar(w, key, ENG_GGUF_F64, b, 8);
}

enum eng_status eng_gguf_writer_set_bool(struct eng_gguf_writer *w, const char *key, bool v)
{
	return set_scalar(w, key, ENG_GGUF_BOOL, v ? 1 : 0, 1);
}

enum eng_status eng_gguf_writer_set_strn(struct eng_gguf_writer *w, const char *key, const char *v, size_t len)
{
	size_t mark = w->meta_len;
	enum eng_status st;

	if (!v && len)
		return ENG_ERR_ARG;
	st = put_head(w, key, ENG_GGUF_STRING);
	if (!st)
		st = put_str(w, v, len);
	if (st)
		w->meta_len = mark;
	else
		w->n_kv++;
	return st;
}

enum eng_status eng_gguf_writer_set_str(struct eng_gguf_writer *w, const char *key, const char *v)
{
	return v ? eng_gguf_writer_set_strn(w, key, v, strlen(v)) : ENG_ERR_ARG;
}

static unsigned scalar_size(uint32_t t)
{
	switch (t) {
	case ENG_GGUF_U8: case ENG_GGUF_I8: case ENG_GGUF_BOOL: return 1;
	case ENG_GGUF_U16: case ENG_GGUF_I16: return 2;
	case ENG_GGUF_U32: case ENG_GGUF_I32: case ENG_GGUF_F32: return 4;
	case ENG_GGUF_U64: case ENG_GGUF_I64: case ENG_GGUF_F64: return 8;
	default: return 0;
	}
}

enum eng_status eng_gguf_writer_set_arr(struct eng_gguf_writer *w, const char *key, enum eng_gguf_vtype elem_type,
					const void *data, uint64_t n)
{
	unsigned sz = scalar_size(elem_type);
	size_t mark = w->meta_len;
	enum eng_status st;

	if (sz == 0 || (!data && n))
		return ENG_ERR_ARG;
	if (n > GW_MAX_META / sz)
		return ENG_ERR_LIMIT;
	st = put_head(w, key, ENG_GGUF_ARRAY);
	if (!st)
		st = put_le(w, (uint32_t)elem_type, 4);
	if (!st)
		st = put_le(w, n, 8);
	for (uint64_t i = 0; !st && i < n; i++) {
		const uint8_t *p = (const uint8_t *)data + i * sz;
		uint64_t bits = 0;

		/* Host values to little-endian bytes. */
		switch (sz) {
		case 1: bits = p[0]; break;
		case 2: { uint16_t x; memcpy(&x, p, 2); bits = x; break; }
		case 4: { uint32_t x; memcpy(&x, p, 4); bits = x; break; }
		default: { uint64_t x; memcpy(&x, p, 8); bits = x; break; }
		}
		st = put_le(w, bits, sz);
	}
	if (st)
		w->meta_len = mark;
	else
		w->n_kv++;
	return st;
}

enum eng_status eng_gguf_writer_set_arr_str(struct eng_gguf_writer *w, const char *key,
					    const char *const *strs, uint64_t n)
{
	size_t mark = w->meta_len;
	enum eng_status st;

	if (!strs && n)
		return ENG_ERR_ARG;
	st = put_head(w, key, ENG_GGUF_ARRAY);
	if (!st)
		st = put_le(w, ENG_GGUF_STRING, 4);
	if (!st)
		st = put_le(w, n, 8);
	for (uint64_t i = 0; !st && i < n; i++)
		st = strs[i] ? put_str(w, strs[i], strlen(strs[i])) : ENG_ERR_ARG;
	if (st)
		w->meta_len = mark;
	else
		w->n_kv++;
	return st;
}

enum eng_status eng_gguf_writer_set_raw(struct eng_gguf_writer *w, const char *key, uint32_t vtype,
					const void *raw, size_t len)
{
	size_t mark = w->meta_len;
	enum eng_status st;

	if (!raw && len)
		return ENG_ERR_ARG;
	st = put_head(w, key, vtype);
	if (!st)
		st = put(w, raw, len);
	if (st)
		w->meta_len = mark;
	else
		w->n_kv++;
	return st;
}

/* ---- tensors ----------------------------------------------------------- */

enum eng_status eng_gguf_writer_add_tensor(struct eng_gguf_writer *w, const char *name, enum eng_type type,
					   uint32_t n_dims, const uint64_t *dims, const void *data)
{
	struct gw_tensor t = { 0 };
	uint64_t nel = 1, rowb, nb, off;
	enum eng_status st;

	if (!name || !dims || n_dims == 0 || n_dims > ENG_MAX_DIMS)
		return ENG_ERR_ARG;
	if (w->n_t >= GW_MAX_TENSORS)
		return ENG_ERR_LIMIT;
	for (uint32_t d = 0; d < n_dims; d++) {
		if (dims[d] == 0)
			return ENG_ERR_ARG;
		if (__builtin_mul_overflow(nel, dims[d], &nel))
			return ENG_ERR_RANGE;
		t.dims[d] = dims[d];
	}
	for (uint32_t d = n_dims; d < ENG_MAX_DIMS; d++)
		t.dims[d] = 1;
	if ((st = eng_type_row_bytes((uint32_t)type, dims[0], &rowb)))
		return st;
	if (__builtin_mul_overflow(rowb, nel / dims[0], &nb) || nb > SIZE_MAX)
		return ENG_ERR_RANGE;
	off = w->data_size;
	if (__builtin_add_overflow(off, align_up(nb, w->alignment), &w->data_size)) {
		w->data_size = off;
		return ENG_ERR_RANGE;
	}
	t.type = (uint32_t)type;
	t.n_dims = n_dims;
	t.n_bytes = nb;
	t.offset = off;
	t.name = strdup(name);
	if (!t.name)
		goto nomem;
	if (data) {
		t.data = malloc(nb ? nb : 1);
		if (!t.data)
			goto nomem;
		memcpy(t.data, data, nb);
	}
	if (w->n_t == w->cap_t) {
		uint64_t cap = w->cap_t ? w->cap_t * 2 : 16;
		struct gw_tensor *nt = realloc(w->t, cap * sizeof(*nt));

		if (!nt)
			goto nomem;
		w->t = nt;
		w->cap_t = cap;
	}
	w->t[w->n_t++] = t;
	return ENG_OK;
nomem:
	free(t.name);
	free(t.data);
	w->data_size = off;
	return ENG_ERR_NOMEM;
}

uint64_t eng_gguf_writer_n_tensors(const struct eng_gguf_writer *w)
{
	return w->n_t;
}

uint64_t eng_gguf_writer_tensor_bytes(const struct eng_gguf_writer *w, uint64_t i)
{
	return i < w->n_t ? w->t[i].n_bytes : 0;
}

/* Bytes before the data section (header, metadata, tensor infos), unpadded. */
static uint64_t head_size(const struct eng_gguf_writer *w)
{
	uint64_t n = 4 + 4 + 8 + 8 + w->meta_len;

	for (uint64_t i = 0; i < w->n_t; i++)
		n += 8 + strlen(w->t[i].name) + 4 + 8ull * w->t[i].n_dims + 4 + 8;
	return n;
}

uint64_t eng_gguf_writer_size(const struct eng_gguf_writer *w)
{
	return align_up(head_size(w), w->alignment) + w->data_size;
}

/* ---- output ------------------------------------------------------------ */

/* A sink: either a memory buffer or a FILE. */
struct sink {
	uint8_t *mem;
	uint64_t pos;
	FILE *fp;
};

static int emit(struct sink *s, const void *p, uint64_t n)
{
	if (n == 0)
		return 0;
	if (s->mem) {
		memcpy(s->mem + s->pos, p, n);
		s->pos += n;
		return 0;
	}
	if (fwrite(p, 1, n, s->fp) != n)
		return -1;
	s->pos += n;
	return 0;
}

static int emit_le(struct sink *s, uint64_t v, unsigned n)
{
	uint8_t b[8];

	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return emit(s, b, n);
}

static int emit_zeros(struct sink *s, uint64_t n)
{
	static const uint8_t z[64];

	while (n) {
		uint64_t k = n < sizeof(z) ? n : sizeof(z);

		if (emit(s, z, k))
			return -1;
		n -= k;
	}
	return 0;
}

static enum eng_status emit_all(const struct eng_gguf_writer *w, struct sink *s, eng_gguf_fill_fn fill,
				void *fill_ctx, char *err, size_t err_len)
{
	uint64_t head = head_size(w), base;
	uint8_t *buf = NULL;
	uint64_t buf_cap = 0;
	enum eng_status st = ENG_OK;

	if (emit(s, "GGUF", 4) || emit_le(s, w->version, 4) || emit_le(s, w->n_t, 8) ||
	    emit_le(s, w->n_kv, 8) || emit(s, w->meta, w->meta_len))
		goto io;
	for (uint64_t i = 0; i < w->n_t; i++) {
		const struct gw_tensor *t = &w->t[i];
		size_t nl = strlen(t->name);

		if (emit_le(s, nl, 8) || emit(s, t->name, nl) || emit_le(s, t->n_dims, 4))
			goto io;
		for (uint32_t d = 0; d < t->n_dims; d++)
			if (emit_le(s, t->dims[d], 8))
				goto io;
		if (emit_le(s, t->type, 4) || emit_le(s, t->offset, 8))
			goto io;
	}
	base = align_up(head, w->alignment);
	if (emit_zeros(s, base - head))
		goto io;
	for (uint64_t i = 0; i < w->n_t; i++) {
		const struct gw_tensor *t = &w->t[i];
		const void *src = t->data;

		if (!src) {
			if (!fill) {
				fmt_err(err, err_len, "tensor '%s': no data and no fill callback", t->name);
				st = ENG_ERR_ARG;
				goto out;
			}
			if (s->mem) {
				if (fill(fill_ctx, i, t->name, s->mem + s->pos, t->n_bytes)) {
					fmt_err(err, err_len, "tensor '%s': fill callback failed", t->name);
					st = ENG_ERR_ARG;
					goto out;
				}
				s->pos += t->n_bytes;
				src = NULL;
			} else {
				if (t->n_bytes > buf_cap) {
					free(buf);
					buf = malloc(t->n_bytes);
					buf_cap = buf ? t->n_bytes : 0;
					if (!buf) {
						fmt_err(err, err_len, "tensor '%s': out of memory", t->name);
						st = ENG_ERR_NOMEM;
						goto out;
					}
				}
				if (fill(fill_ctx, i, t->name, buf, t->n_bytes)) {
					fmt_err(err, err_len, "tensor '%s': fill callback failed", t->name);
					st = ENG_ERR_ARG;
					goto out;
				}
				src = buf;
			}
		}
		if (src && emit(s, src, t->n_bytes))
			goto io;
		if (emit_zeros(s, align_up(t->n_bytes, w->alignment) - t->n_bytes))
			goto io;
	}
	goto out;
io:
	fmt_err(err, err_len, "write failed at offset %" PRIu64 ": %s", s->pos, strerror(errno));
	st = ENG_ERR_IO;
out:
	free(buf);
	return st;
}

enum eng_status eng_gguf_writer_write_mem(const struct eng_gguf_writer *w, eng_gguf_fill_fn fill, void *fill_ctx,
					  void **out, size_t *len, char *err, size_t err_len)
{
	uint64_t size = eng_gguf_writer_size(w);
	struct sink s = { 0 };
	enum eng_status st;

	if (err && err_len)
		err[0] = 0;
	if (!out || !len)
		return ENG_ERR_ARG;
	*out = NULL;
	*len = 0;
	if (size > SIZE_MAX)
		return ENG_ERR_LIMIT;
	s.mem = malloc(size);
	if (!s.mem) {
		fmt_err(err, err_len, "out of memory for %" PRIu64 " bytes", size);
		return ENG_ERR_NOMEM;
	}
	st = emit_all(w, &s, fill, fill_ctx, err, err_len);
	if (st) {
		free(s.mem);
		return st;
	}
	*out = s.mem;
	*len = (size_t)size;
	return ENG_OK;
}

enum eng_status eng_gguf_writer_write_file(const struct eng_gguf_writer *w, const char *path,
					   eng_gguf_fill_fn fill, void *fill_ctx, char *err, size_t err_len)
{
	struct sink s = { 0 };
	enum eng_status st;
	char e2[256];

	if (err && err_len)
		err[0] = 0;
	if (!path)
		return ENG_ERR_ARG;
	s.fp = fopen(path, "wb");
	if (!s.fp) {
		fmt_err(err, err_len, "%s: cannot create: %s", path, strerror(errno));
		return ENG_ERR_IO;
	}
	e2[0] = 0;
	st = emit_all(w, &s, fill, fill_ctx, e2, sizeof(e2));
	if (fclose(s.fp) != 0 && st == ENG_OK) {
		snprintf(e2, sizeof(e2), "close failed: %s", strerror(errno));
		st = ENG_ERR_IO;
	}
	if (st)
		fmt_err(err, err_len, "%s: %s", path, e2);
	return st;
}
