/* GGUF reader: real files from ../shared, every value type, v2 and v3, and
 * hostile files (truncated at every byte, flipped bytes, huge counts, bad
 * types, misaligned/overlapping/out-of-file tensors, duplicates). Every
 * hostile parse runs on an exact-size heap copy so ASan sees any over-read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"

#define SHARED(p) LW_SHARED_DIR "/" p

static void *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	void *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = malloc((size_t)n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static bool str_is(struct eng_str s, const char *want)
{
	return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

/* Parses a copy of <buf>[0..<len>) that is exactly <len> bytes long. */
static enum eng_status parse_copy(const void *buf, size_t len, char *err, size_t err_len)
{
	void *copy = malloc(len ? len : 1);
	struct eng_gguf *g = NULL;
	enum eng_status st;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	st = eng_gguf_parse(copy, len, &g, err, err_len);
	if (st == ENG_OK) {
		/* Walk everything the parser exposes: ASan checks it lies inside. */
		uint64_t sum = 0;

		for (uint64_t i = 0; i < eng_gguf_n_kv(g); i++) {
			struct eng_gguf_arr a;
			struct eng_str s;

			sum += strlen(eng_gguf_kv_key(g, i));
			if (eng_gguf_kv_str(g, i, &s) == ENG_OK && s.len)
				sum += (uint8_t)s.ptr[s.len - 1];
			if (eng_gguf_kv_arr(g, i, &a) == ENG_OK && a.n) {
				int64_t v;

				if (eng_gguf_arr_str(&a, a.n - 1, &s) == ENG_OK && s.len)
					sum += (uint8_t)s.ptr[s.len - 1];
				if (eng_gguf_arr_i64(&a, a.n - 1, &v) == ENG_OK)
					sum += (uint64_t)v;
			}
		}
		for (uint64_t i = 0; i < eng_gguf_n_tensors(g); i++) {
			const struct eng_tensor *t = eng_gguf_tensor_at(g, i);
			const uint8_t *d = t->data;

			assert_true(d >= (const uint8_t *)copy);
			assert_true(d + t->n_bytes <= (const uint8_t *)copy + len);
			sum += d[0] + d[t->n_bytes - 1];
			assert_ptr_equal(eng_gguf_tensor(g, t->name), t);
		}
		(void)sum;
		eng_gguf_free(g);
	} else {
		assert_null(g);
	}
	free(copy);
	return st;
}

/* ---- real files -------------------------------------------------------- */

static void test_stories260k(void **state)
{
	size_t len;
	void *buf = slurp(SHARED("models/stories260K.gguf"), &len);
	struct eng_gguf *g = NULL;
	char err[256];
	uint32_t u;
	int32_t i32;
	float f;
	struct eng_str s;
	struct eng_gguf_arr a;
	const struct eng_tensor *t;

	(void)state;
	assert_int_equal(eng_gguf_parse(buf, len, &g, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_gguf_version(g), 3);
	assert_int_equal(eng_gguf_alignment(g), 32);
	assert_int_equal(eng_gguf_data_offset(g) % 32, 0);
	assert_int_equal(eng_gguf_n_kv(g), 19);
	assert_int_equal(eng_gguf_n_tensors(g), 3 + 5 * 9);

	assert_int_equal(eng_gguf_get_str(g, "general.architecture", &s), ENG_OK);
	assert_true(str_is(s, "llama"));
	assert_int_equal(eng_gguf_get_u32(g, "llama.block_count", &u), ENG_OK);
	assert_int_equal(u, 5);
	assert_int_equal(eng_gguf_get_u32(g, "llama.embedding_length", &u), ENG_OK);
	assert_int_equal(u, 64);
	assert_int_equal(eng_gguf_get_u32(g, "llama.feed_forward_length", &u), ENG_OK);
	assert_int_equal(u, 172);
	assert_int_equal(eng_gguf_get_u32(g, "llama.attention.head_count", &u), ENG_OK);
	assert_int_equal(u, 8);
	assert_int_equal(eng_gguf_get_u32(g, "llama.attention.head_count_kv", &u), ENG_OK);
	assert_int_equal(u, 4);
	assert_int_equal(eng_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &u), ENG_OK);
	assert_int_equal(u, 1);
	assert_int_equal(eng_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f), ENG_OK);
	assert_float_equal(f, 1e-5f, 1e-9f);
	/* u32 0xffffffff does not fit an i32; the wrong type is refused. */
	assert_int_equal(eng_gguf_get_u32(g, "tokenizer.ggml.seperator_token_id", &u), ENG_OK);
	assert_int_equal(u, UINT32_MAX);
	assert_int_equal(eng_gguf_get_i32(g, "tokenizer.ggml.seperator_token_id", &i32), ENG_ERR_RANGE);
	assert_int_equal(eng_gguf_get_u32(g, "general.architecture", &u), ENG_ERR_TYPE);
	assert_int_equal(eng_gguf_get_u32(g, "no.such.key", &u), ENG_ERR_NOT_FOUND);

	assert_int_equal(eng_gguf_get_arr(g, "tokenizer.ggml.tokens", &a), ENG_OK);
	assert_int_equal(a.type, ENG_GGUF_STRING);
	assert_int_equal(a.n, 512);
	assert_int_equal(eng_gguf_arr_str(&a, 0, &s), ENG_OK);
	assert_true(str_is(s, "<unk>"));
	assert_int_equal(eng_gguf_arr_str(&a, 1, &s), ENG_OK);
	assert_true(str_is(s, "<s>"));
	assert_int_equal(eng_gguf_arr_str(&a, 3, &s), ENG_OK);
	assert_true(str_is(s, "<0x00>"));
	assert_int_equal(eng_gguf_arr_str(&a, 512, &s), ENG_ERR_RANGE);
	assert_int_equal(eng_gguf_arr_f32(&a, 0, &f), ENG_ERR_TYPE);
	assert_null(eng_gguf_arr_raw(&a));
	assert_int_equal(eng_gguf_get_arr(g, "tokenizer.ggml.token_type", &a), ENG_OK);
	assert_int_equal(a.type, ENG_GGUF_I32);
	assert_int_equal(eng_gguf_arr_i32(&a, 1, &i32), ENG_OK);
	assert_int_equal(i32, 3); /* control */
	assert_int_equal(eng_gguf_arr_i32(&a, 3, &i32), ENG_OK);
	assert_int_equal(i32, 6); /* byte */
	assert_int_equal(eng_gguf_get_arr(g, "tokenizer.ggml.scores", &a), ENG_OK);
	assert_int_equal(a.type, ENG_GGUF_F32);
	assert_int_equal(a.n, 512);
	assert_non_null(eng_gguf_arr_raw(&a));

	t = eng_gguf_tensor(g, "token_embd.weight");
	assert_non_null(t);
	assert_int_equal(t->type, ENG_TYPE_F32);
	assert_int_equal(t->n_dims, 2);
	assert_int_equal(t->dims[0], 64);
	assert_int_equal(t->dims[1], 512);
	assert_int_equal(t->dims[2], 1);
	assert_int_equal(t->n_elements, 64 * 512);
	assert_int_equal(t->n_bytes, 64 * 512 * 4);
	assert_ptr_equal(t->data, (const uint8_t *)buf + t->offset);
	assert_int_equal((t->offset - eng_gguf_data_offset(g)) % 32, 0);
	t = eng_gguf_tensor(g, "blk.4.ffn_down.weight");
	assert_non_null(t);
	assert_int_equal(t->dims[0], 172);
	assert_int_equal(t->dims[1], 64);
	t = eng_gguf_tensor(g, "blk.0.attn_k.weight");
	assert_non_null(t);
	assert_int_equal(t->dims[1], 32); /* 4 KV heads of 8 */
	t = eng_gguf_tensor(g, "output_norm.weight");
	assert_non_null(t);
	assert_int_equal(t->n_dims, 1);
	assert_null(eng_gguf_tensor(g, "blk.5.attn_q.weight"));
	assert_null(eng_gguf_tensor_at(g, 48));
	/* Every tensor can be found by its name; the table is in file order. */
	for (uint64_t i = 0; i < eng_gguf_n_tensors(g); i++) {
		t = eng_gguf_tensor_at(g, i);
		assert_ptr_equal(eng_gguf_tensor(g, t->name), t);
		assert_true(t->offset + t->n_bytes <= len);
	}
	eng_gguf_free(g);
	free(buf);
}

struct vocab_case {
	const char *file;
	const char *model;
	uint64_t n_tokens;
	int64_t n_merges; /* -1: no merges array */
	const char *tok0;
	int add_bos;      /* -1: key absent */
};

static void test_vocab_files(void **state)
{
	static const struct vocab_case cases[] = {
		{ "vocab/ggml-vocab-llama-spm.gguf", "llama", 32000, -1, "<unk>", 1 },
		{ "vocab/ggml-vocab-phi-3.gguf", "llama", 32064, -1, "<unk>", 1 },
		{ "vocab/ggml-vocab-gpt-2.gguf", "gpt2", 50257, 50000, "!", -1 },
		{ "vocab/ggml-vocab-deepseek-coder.gguf", "gpt2", 32256, 31757, "!", 1 },
	};

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		char path[512];
		size_t len;
		void *buf;
		struct eng_gguf *g = NULL;
		struct eng_str s;
		struct eng_gguf_arr a;
		bool b;
		char err[256];

		snprintf(path, sizeof(path), "%s/%s", LW_SHARED_DIR, cases[c].file);
		buf = slurp(path, &len);
		assert_int_equal(eng_gguf_parse(buf, len, &g, err, sizeof(err)), ENG_OK);
		assert_int_equal(eng_gguf_n_tensors(g), 0);
		assert_int_equal(eng_gguf_get_str(g, "tokenizer.ggml.model", &s), ENG_OK);
		assert_true(str_is(s, cases[c].model));
		assert_int_equal(eng_gguf_get_arr(g, "tokenizer.ggml.tokens", &a), ENG_OK);
		assert_int_equal(a.n, cases[c].n_tokens);
		assert_int_equal(eng_gguf_arr_str(&a, 0, &s), ENG_OK);
		assert_true(str_is(s, cases[c].tok0));
		/* Walk every token: views must stay inside the file. */
		for (uint64_t i = 0; i < a.n; i++) {
			assert_int_equal(eng_gguf_arr_str(&a, i, &s), ENG_OK);
			assert_true((const uint8_t *)s.ptr >= (const uint8_t *)buf);
			assert_true((const uint8_t *)s.ptr + s.len <= (const uint8_t *)buf + len);
		}
		if (cases[c].n_merges >= 0) {
			assert_int_equal(eng_gguf_get_arr(g, "tokenizer.ggml.merges", &a), ENG_OK);
			assert_int_equal(a.n, (uint64_t)cases[c].n_merges);
			assert_int_equal(eng_gguf_arr_str(&a, 0, &s), ENG_OK);
			assert_non_null(memchr(s.ptr, ' ', s.len));
		} else {
			assert_int_equal(eng_gguf_get_arr(g, "tokenizer.ggml.merges", &a), ENG_ERR_NOT_FOUND);
		}
		if (cases[c].add_bos >= 0) {
			assert_int_equal(eng_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b), ENG_OK);
			assert_int_equal(b, cases[c].add_bos);
		} else {
			assert_int_equal(eng_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b), ENG_ERR_NOT_FOUND);
		}
		/* Iterating keys finds each one again by name. */
		for (uint64_t i = 0; i < eng_gguf_n_kv(g); i++)
			assert_int_equal(eng_gguf_find_key(g, eng_gguf_kv_key(g, i)), (int64_t)i);
		eng_gguf_free(g);
		free(buf);
	}
}

/* ---- every value type, v2 and v3 -------------------------------------- */

static void *build_all_types(uint32_t version, size_t *len)
{
	struct eng_gguf_writer *w = eng_gguf_writer_new(version, 0);
	static const char *const strs[] = { "alpha", "", "g\xc3\xa9nial" };
	static const int32_t i32s[] = { -1, 0, INT32_MAX };
	static const float f32s[] = { 0.5f, -2.25f };
	static const uint8_t bools[] = { 1, 0, 1 };
	static const uint64_t u64s[] = { UINT64_MAX, 7 };
	/* [[1,2],[3]] of u16, encoded raw: elem type array, count 2, then two arrays. */
	static const uint8_t nested[] = {
		9, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
		2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0,
		2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0,
	};
	void *buf;
	char err[256];

	assert_non_null(w);
	assert_int_equal(eng_gguf_writer_set_u8(w, "t.u8", 200), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_i8(w, "t.i8", -100), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_u16(w, "t.u16", 65000), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_i16(w, "t.i16", -32000), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_u32(w, "t.u32", 4000000000u), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_i32(w, "t.i32", -2000000000), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_f32(w, "t.f32", 3.5f), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_bool(w, "t.bool", true), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_str(w, "t.str", "hello"), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_strn(w, "t.strnul", "a\0b", 3), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_u64(w, "t.u64", UINT64_MAX), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_i64(w, "t.i64", INT64_MIN), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_f64(w, "t.f64", -1.0e100), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_arr_str(w, "t.astr", strs, 3), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_arr(w, "t.ai32", ENG_GGUF_I32, i32s, 3), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_arr(w, "t.af32", ENG_GGUF_F32, f32s, 2), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_arr(w, "t.abool", ENG_GGUF_BOOL, bools, 3), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_arr(w, "t.au64", ENG_GGUF_U64, u64s, 2), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_arr(w, "t.aempty", ENG_GGUF_U8, NULL, 0), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_raw(w, "t.nested", ENG_GGUF_ARRAY, nested, sizeof(nested)), ENG_OK);
	assert_int_equal(eng_gguf_writer_write_mem(w, NULL, NULL, &buf, len, err, sizeof(err)), ENG_OK);
	eng_gguf_writer_free(w);
	return buf;
}

static void check_all_types(uint32_t version)
{
	size_t len;
	void *buf = build_all_types(version, &len);
	struct eng_gguf *g = NULL;
	char err[256];
	uint32_t u32;
	int32_t i32;
	uint64_t u64;
	int64_t i64;
	float f;
	double d;
	bool b;
	struct eng_str s;
	struct eng_gguf_arr a, sub;

	assert_int_equal(eng_gguf_parse(buf, len, &g, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_gguf_version(g), version);
	assert_int_equal(eng_gguf_n_kv(g), 20);
	assert_int_equal(eng_gguf_kv_type(g, 0), ENG_GGUF_U8);
	assert_int_equal(eng_gguf_kv_type(g, 12), ENG_GGUF_F64);
	assert_int_equal(eng_gguf_kv_type(g, 20), ENG_GGUF_VTYPE_COUNT);
	assert_null(eng_gguf_kv_key(g, 20));

	/* Integers widen and narrow within range, whatever the stored width. */
	assert_int_equal(eng_gguf_get_u32(g, "t.u8", &u32), ENG_OK);
	assert_int_equal(u32, 200);
	assert_int_equal(eng_gguf_get_i32(g, "t.i8", &i32), ENG_OK);
	assert_int_equal(i32, -100);
	assert_int_equal(eng_gguf_get_u32(g, "t.i8", &u32), ENG_ERR_RANGE);
	assert_int_equal(eng_gguf_get_u32(g, "t.u16", &u32), ENG_OK);
	assert_int_equal(u32, 65000);
	assert_int_equal(eng_gguf_get_i64(g, "t.i16", &i64), ENG_OK);
	assert_int_equal(i64, -32000);
	assert_int_equal(eng_gguf_get_u32(g, "t.u32", &u32), ENG_OK);
	assert_int_equal(u32, 4000000000u);
	assert_int_equal(eng_gguf_get_i32(g, "t.u32", &i32), ENG_ERR_RANGE);
	assert_int_equal(eng_gguf_get_i32(g, "t.i32", &i32), ENG_OK);
	assert_int_equal(i32, -2000000000);
	assert_int_equal(eng_gguf_get_u64(g, "t.u64", &u64), ENG_OK);
	assert_true(u64 == UINT64_MAX);
	assert_int_equal(eng_gguf_get_u32(g, "t.u64", &u32), ENG_ERR_RANGE);
	assert_int_equal(eng_gguf_get_i64(g, "t.u64", &i64), ENG_ERR_RANGE);
	assert_int_equal(eng_gguf_get_i64(g, "t.i64", &i64), ENG_OK);
	assert_true(i64 == INT64_MIN);
	assert_int_equal(eng_gguf_get_u64(g, "t.i64", &u64), ENG_ERR_RANGE);
	/* Floats: f32 and f64 only; bools are not integers. */
	assert_int_equal(eng_gguf_get_f32(g, "t.f32", &f), ENG_OK);
	assert_true(f == 3.5f);
	assert_int_equal(eng_gguf_get_f32(g, "t.f64", &f), ENG_OK);
	assert_int_equal(eng_gguf_get_f32(g, "t.u32", &f), ENG_ERR_TYPE);
	assert_int_equal(eng_gguf_kv_f64(g, 12, &d), ENG_OK);
	assert_true(d == -1.0e100);
	assert_int_equal(eng_gguf_get_bool(g, "t.bool", &b), ENG_OK);
	assert_true(b);
	assert_int_equal(eng_gguf_get_u32(g, "t.bool", &u32), ENG_ERR_TYPE);
	assert_int_equal(eng_gguf_get_bool(g, "t.u8", &b), ENG_ERR_TYPE);
	assert_int_equal(eng_gguf_get_str(g, "t.str", &s), ENG_OK);
	assert_true(str_is(s, "hello"));
	assert_int_equal(eng_gguf_get_str(g, "t.strnul", &s), ENG_OK);
	assert_int_equal(s.len, 3);
	assert_memory_equal(s.ptr, "a\0b", 3);
	assert_int_equal(eng_gguf_get_str(g, "t.u8", &s), ENG_ERR_TYPE);
	assert_int_equal(eng_gguf_get_arr(g, "t.str", &a), ENG_ERR_TYPE);

	assert_int_equal(eng_gguf_get_arr(g, "t.astr", &a), ENG_OK);
	assert_int_equal(a.type, ENG_GGUF_STRING);
	assert_int_equal(a.n, 3);
	assert_int_equal(eng_gguf_arr_str(&a, 1, &s), ENG_OK);
	assert_int_equal(s.len, 0);
	assert_int_equal(eng_gguf_arr_str(&a, 2, &s), ENG_OK);
	assert_true(str_is(s, "g\xc3\xa9nial"));
	assert_int_equal(eng_gguf_get_arr(g, "t.ai32", &a), ENG_OK);
	assert_int_equal(eng_gguf_arr_i32(&a, 0, &i32), ENG_OK);
	assert_int_equal(i32, -1);
	assert_int_equal(eng_gguf_arr_u32(&a, 0, &u32), ENG_ERR_RANGE);
	assert_int_equal(eng_gguf_arr_i64(&a, 2, &i64), ENG_OK);
	assert_int_equal(i64, INT32_MAX);
	assert_int_equal(eng_gguf_arr_i32(&a, 3, &i32), ENG_ERR_RANGE);
	assert_int_equal(eng_gguf_get_arr(g, "t.af32", &a), ENG_OK);
	assert_int_equal(eng_gguf_arr_f32(&a, 1, &f), ENG_OK);
	assert_true(f == -2.25f);
	assert_int_equal(eng_gguf_arr_i64(&a, 1, &i64), ENG_ERR_TYPE);
	assert_int_equal(eng_gguf_get_arr(g, "t.abool", &a), ENG_OK);
	assert_int_equal(eng_gguf_arr_bool(&a, 1, &b), ENG_OK);
	assert_false(b);
	assert_int_equal(eng_gguf_arr_bool(&a, 2, &b), ENG_OK);
	assert_true(b);
	assert_int_equal(eng_gguf_get_arr(g, "t.au64", &a), ENG_OK);
	assert_int_equal(eng_gguf_arr_u64(&a, 0, &u64), ENG_OK);
	assert_true(u64 == UINT64_MAX);
	assert_int_equal(eng_gguf_arr_i64(&a, 0, &i64), ENG_ERR_RANGE);
	assert_int_equal(eng_gguf_arr_f64(&a, 0, &d), ENG_ERR_TYPE);
	assert_int_equal(eng_gguf_get_arr(g, "t.aempty", &a), ENG_OK);
	assert_int_equal(a.n, 0);
	assert_int_equal(eng_gguf_arr_u32(&a, 0, &u32), ENG_ERR_RANGE);

	assert_int_equal(eng_gguf_get_arr(g, "t.nested", &a), ENG_OK);
	assert_int_equal(a.type, ENG_GGUF_ARRAY);
	assert_int_equal(a.n, 2);
	assert_int_equal(eng_gguf_arr_arr(&a, 0, &sub), ENG_OK);
	assert_int_equal(sub.type, ENG_GGUF_U16);
	assert_int_equal(sub.n, 2);
	assert_int_equal(eng_gguf_arr_u32(&sub, 1, &u32), ENG_OK);
	assert_int_equal(u32, 2);
	assert_int_equal(eng_gguf_arr_arr(&a, 1, &sub), ENG_OK);
	assert_int_equal(sub.n, 1);
	assert_int_equal(eng_gguf_arr_u32(&sub, 0, &u32), ENG_OK);
	assert_int_equal(u32, 3);
	assert_int_equal(eng_gguf_arr_arr(&a, 2, &sub), ENG_ERR_RANGE);
	assert_int_equal(eng_gguf_arr_u32(&a, 0, &u32), ENG_ERR_TYPE);
	eng_gguf_free(g);
	free(buf);
}

static void test_every_value_type_v3(void **state)
{
	(void)state;
	check_all_types(3);
}

static void test_every_value_type_v2(void **state)
{
	(void)state;
	check_all_types(2);
}

static void test_type_table(void **state)
{
	static const struct { uint32_t type; uint32_t blk, bytes; const char *name; } want[] = {
		{ ENG_TYPE_F32, 1, 4, "F32" }, { ENG_TYPE_F16, 1, 2, "F16" }, { ENG_TYPE_BF16, 1, 2, "BF16" },
		{ ENG_TYPE_Q4_0, 32, 18, "Q4_0" }, { ENG_TYPE_Q4_1, 32, 20, "Q4_1" },
		{ ENG_TYPE_Q5_0, 32, 22, "Q5_0" }, { ENG_TYPE_Q5_1, 32, 24, "Q5_1" },
		{ ENG_TYPE_Q8_0, 32, 34, "Q8_0" }, { ENG_TYPE_Q8_1, 32, 36, "Q8_1" },
		{ ENG_TYPE_Q2_K, 256, 84, "Q2_K" }, { ENG_TYPE_Q3_K, 256, 110, "Q3_K" },
		{ ENG_TYPE_Q4_K, 256, 144, "Q4_K" }, { ENG_TYPE_Q5_K, 256, 176, "Q5_K" },
		{ ENG_TYPE_Q6_K, 256, 210, "Q6_K" },
	};
	uint64_t rb;

	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_string_equal(eng_type_name(want[i].type), want[i].name);
		assert_int_equal(eng_type_block_size(want[i].type), want[i].blk);
		assert_int_equal(eng_type_block_bytes(want[i].type), want[i].bytes);
		assert_int_equal(eng_type_row_bytes(want[i].type, 512, &rb), ENG_OK);
		assert_int_equal(rb, 512 / want[i].blk * want[i].bytes);
		if (want[i].blk > 1)
			assert_int_equal(eng_type_row_bytes(want[i].type, want[i].blk + 1, &rb), ENG_ERR_FORMAT);
	}
	/* Removed / unknown ids. */
	assert_null(eng_type_name(4));
	assert_null(eng_type_name(ENG_TYPE_COUNT));
	assert_int_equal(eng_type_block_size(5), 0);
	assert_int_equal(eng_type_row_bytes(4, 32, &rb), ENG_ERR_UNSUPPORTED);
	assert_int_equal(eng_type_row_bytes(ENG_TYPE_F32, UINT64_MAX / 2, &rb), ENG_ERR_RANGE);
	assert_string_equal(eng_strerror(ENG_ERR_TRUNCATED), "truncated GGUF file");
	assert_non_null(eng_strerror(12345));
	assert_string_equal(eng_gguf_vtype_name(ENG_GGUF_STRING), "string");
}

static int zero_fill(void *ctx, uint64_t i, const char *name, void *buf, uint64_t n)
{
	(void)ctx;
	(void)i;
	(void)name;
	memset(buf, 0, n);
	return 0;
}

/* ---- hostile files ------------------------------------------------------ */

/* A small valid file: metadata of several types and three tensors, the last
 * one ending exactly at the end of the file (no trailing padding), so that
 * every truncation must fail. */
static void *build_small(size_t *len)
{
	struct eng_gguf_writer *w = eng_gguf_writer_new(3, 0);
	static const char *const toks[] = { "<unk>", "<s>", "</s>", "hello" };
	static const float scores[] = { 0, 0, 0, -1.5f };
	float emb[8 * 4], norm[8];
	uint8_t q8[34 * 2];
	const uint64_t d_emb[2] = { 8, 4 }, d_q8[2] = { 32, 2 }, d_norm[1] = { 8 };
	void *buf;
	char err[256];

	for (int i = 0; i < 32; i++)
		emb[i] = (float)i * 0.25f;
	for (int i = 0; i < 8; i++)
		norm[i] = 1.0f + (float)i;
	for (int i = 0; i < 68; i++)
		q8[i] = (uint8_t)(i * 7);
	assert_non_null(w);
	assert_int_equal(eng_gguf_writer_set_str(w, "general.architecture", "llama"), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_u32(w, "llama.block_count", 1), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 4), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_arr(w, "tokenizer.ggml.scores", ENG_GGUF_F32, scores, 4), ENG_OK);
	assert_int_equal(eng_gguf_writer_add_tensor(w, "blk.0.attn_q.weight", ENG_TYPE_Q8_0, 2, d_q8, q8), ENG_OK);
	assert_int_equal(eng_gguf_writer_add_tensor(w, "output_norm.weight", ENG_TYPE_F32, 1, d_norm, norm), ENG_OK);
	assert_int_equal(eng_gguf_writer_add_tensor(w, "token_embd.weight", ENG_TYPE_F32, 2, d_emb, emb), ENG_OK);
	assert_int_equal(eng_gguf_writer_write_mem(w, NULL, NULL, &buf, len, err, sizeof(err)), ENG_OK);
	eng_gguf_writer_free(w);
	return buf;
}

/* Byte offset of the tensor info of <name> (just past its name bytes). */
static size_t info_pos(const uint8_t *buf, size_t len, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 8; i + n <= len; i++)
		if (memcmp(buf + i, name, n) == 0 && buf[i - 8] == n && buf[i - 7] == 0)
			return i + n;
	fail_msg("tensor info '%s' not found", name);
	return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void test_small_valid(void **state)
{
	size_t len;
	uint8_t *buf = build_small(&len);
	char err[256];

	(void)state;
	assert_int_equal(parse_copy(buf, len, err, sizeof(err)), ENG_OK);
	free(buf);
}

static void test_truncated_at_every_byte(void **state)
{
	size_t len;
	uint8_t *buf = build_small(&len);
	char err[256];

	(void)state;
	for (size_t n = 0; n < len; n++) {
		enum eng_status st;

		err[0] = 0;
		st = parse_copy(buf, n, err, sizeof(err));
		if (st == ENG_OK)
			fail_msg("truncation to %zu of %zu bytes was accepted", n, len);
		assert_true(err[0] != 0);
	}
	/* The last tensor's message names it. */
	assert_int_equal(parse_copy(buf, len - 1, err, sizeof(err)), ENG_ERR_TRUNCATED);
	assert_non_null(strstr(err, "token_embd.weight"));
	free(buf);
}

static uint32_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*s >> 33);
}

static void test_flipped_bytes(void **state)
{
	size_t len;
	uint8_t *buf = build_small(&len);
	uint8_t *m = malloc(len);
	char err[256];
	static const uint8_t xors[] = { 0x01, 0x80, 0xff };
	uint64_t seed = 12345;

	(void)state;
	assert_non_null(m);
	/* Every byte, three flips each. */
	for (size_t i = 0; i < len; i++) {
		for (size_t k = 0; k < sizeof(xors); k++) {
			memcpy(m, buf, len);
			m[i] ^= xors[k];
			(void)parse_copy(m, len, err, sizeof(err));
		}
	}
	/* Random multi-byte damage, bounded. */
	for (int it = 0; it < 3000; it++) {
		int n = 1 + (int)(lcg(&seed) % 8);

		memcpy(m, buf, len);
		for (int j = 0; j < n; j++)
			m[lcg(&seed) % len] = (uint8_t)lcg(&seed);
		(void)parse_copy(m, len, err, sizeof(err));
	}
	free(m);
	free(buf);
}

/* Applies <mutate> to a copy of the small file and checks the status and
 * that the message contains <needle>. */
static void expect_fail(void (*mutate)(uint8_t *, size_t), enum eng_status want, const char *needle)
{
	size_t len;
	uint8_t *buf = build_small(&len);
	char err[256] = "";
	enum eng_status st;

	mutate(buf, len);
	st = parse_copy(buf, len, err, sizeof(err));
	if (st != want || !strstr(err, needle))
		fail_msg("got %d (%s) \"%s\"; wanted %d and \"%s\"", st, eng_strerror(st), err, want, needle);
	free(buf);
}

static void m_magic(uint8_t *b, size_t n) { (void)n; b[0] = 'X'; }
static void m_version1(uint8_t *b, size_t n) { (void)n; put32(b + 4, 1); }
static void m_version_be(uint8_t *b, size_t n) { (void)n; put32(b + 4, 0x03000000); }
static void m_n_tensors(uint8_t *b, size_t n) { (void)n; put64(b + 8, 1ull << 40); }
static void m_n_kv(uint8_t *b, size_t n) { (void)n; put64(b + 16, UINT64_MAX); }
static void m_n_kv_fit(uint8_t *b, size_t n) { (void)n; put64(b + 16, 1000); }
static void m_key_len(uint8_t *b, size_t n) { (void)n; put64(b + 24, 1ull << 62); }
static void m_key_len_trunc(uint8_t *b, size_t n) { (void)n; put64(b + 24, 200); }
/* First pair: key "general.architecture" (20 bytes) at 32, type at 52, value at 56. */
static void m_bad_vtype(uint8_t *b, size_t n) { (void)n; put32(b + 52, 13); }
static void m_str_len(uint8_t *b, size_t n) { (void)n; put64(b + 56, 1ull << 40); }
static void m_str_len_eof(uint8_t *b, size_t n) { (void)n; put64(b + 56, 100000); }

static size_t pair_pos(const uint8_t *b, size_t n, const char *key)
{
	size_t kl = strlen(key);

	for (size_t i = 8; i + kl <= n; i++)
		if (memcmp(b + i, key, kl) == 0)
			return i + kl; /* value type */
	fail_msg("key %s not found", key);
	return 0;
}

static void m_arr_count(uint8_t *b, size_t n) { put64(b + pair_pos(b, n, "tokenizer.ggml.tokens") + 8, 1ull << 30); }
static void m_arr_count_eof(uint8_t *b, size_t n) { put64(b + pair_pos(b, n, "tokenizer.ggml.scores") + 8, 5000); }
static void m_arr_elem(uint8_t *b, size_t n) { put32(b + pair_pos(b, n, "tokenizer.ggml.scores") + 4, 77); }
static void m_n_dims5(uint8_t *b, size_t n) { put32(b + info_pos(b, n, "output_norm.weight"), 5); }
static void m_n_dims0(uint8_t *b, size_t n) { put32(b + info_pos(b, n, "output_norm.weight"), 0); }
static void m_dim0(uint8_t *b, size_t n) { put64(b + info_pos(b, n, "output_norm.weight") + 4, 0); }
static void m_dims_overflow(uint8_t *b, size_t n)
{
	size_t p = info_pos(b, n, "token_embd.weight");

	put64(b + p + 4, 1ull << 40);
	put64(b + p + 12, 1ull << 40);
}
static void m_bytes_overflow(uint8_t *b, size_t n) { put64(b + info_pos(b, n, "output_norm.weight") + 4, 1ull << 62); }
static void m_row_block(uint8_t *b, size_t n) { put64(b + info_pos(b, n, "blk.0.attn_q.weight") + 4, 48); }
static void m_bad_ttype(uint8_t *b, size_t n) { put32(b + info_pos(b, n, "output_norm.weight") + 12, 4); }
static void m_huge_ttype(uint8_t *b, size_t n) { put32(b + info_pos(b, n, "output_norm.weight") + 12, 0xffffffffu); }
static void m_misaligned(uint8_t *b, size_t n) { put64(b + info_pos(b, n, "output_norm.weight") + 16, 8 + 96); }
static void m_overlap(uint8_t *b, size_t n) { put64(b + info_pos(b, n, "token_embd.weight") + 24, 0); }
static void m_past_eof(uint8_t *b, size_t n) { put64(b + info_pos(b, n, "output_norm.weight") + 16, 1u << 20); }
static void m_offset_wrap(uint8_t *b, size_t n) { put64(b + info_pos(b, n, "output_norm.weight") + 16, UINT64_MAX - 31); }
static void m_name_nul(uint8_t *b, size_t n) { b[info_pos(b, n, "output_norm.weight") - 3] = 0; }

static void test_hostile_headers(void **state)
{
	(void)state;
	expect_fail(m_magic, ENG_ERR_FORMAT, "magic");
	expect_fail(m_version1, ENG_ERR_UNSUPPORTED, "version 1");
	expect_fail(m_version_be, ENG_ERR_UNSUPPORTED, "big-endian");
	expect_fail(m_n_tensors, ENG_ERR_LIMIT, "tensor count");
	expect_fail(m_n_kv, ENG_ERR_LIMIT, "metadata count");
	expect_fail(m_n_kv_fit, ENG_ERR_TRUNCATED, "1000 metadata pairs");
}

static void test_hostile_metadata(void **state)
{
	(void)state;
	expect_fail(m_key_len, ENG_ERR_LIMIT, "key length");
	expect_fail(m_key_len_trunc, ENG_ERR_FORMAT, "");
	expect_fail(m_bad_vtype, ENG_ERR_FORMAT, "key 'general.architecture': unknown value type 13");
	expect_fail(m_str_len, ENG_ERR_LIMIT, "key 'general.architecture'");
	expect_fail(m_str_len_eof, ENG_ERR_TRUNCATED, "key 'general.architecture'");
	expect_fail(m_arr_count, ENG_ERR_LIMIT, "key 'tokenizer.ggml.tokens'");
	expect_fail(m_arr_count_eof, ENG_ERR_TRUNCATED, "key 'tokenizer.ggml.scores'");
	expect_fail(m_arr_elem, ENG_ERR_FORMAT, "unknown array element type 77");
}

static void test_hostile_tensors(void **state)
{
	(void)state;
	expect_fail(m_n_dims5, ENG_ERR_FORMAT, "tensor 'output_norm.weight': n_dims 5");
	expect_fail(m_n_dims0, ENG_ERR_FORMAT, "n_dims 0");
	expect_fail(m_dim0, ENG_ERR_FORMAT, "tensor 'output_norm.weight': dimension 0 is 0");
	expect_fail(m_dims_overflow, ENG_ERR_FORMAT, "tensor 'token_embd.weight': element count overflows");
	expect_fail(m_bytes_overflow, ENG_ERR_FORMAT, "tensor 'output_norm.weight': byte size overflows");
	expect_fail(m_row_block, ENG_ERR_FORMAT, "not a multiple of the Q8_0 block size 32");
	expect_fail(m_bad_ttype, ENG_ERR_UNSUPPORTED, "tensor 'output_norm.weight': unsupported tensor type 4");
	expect_fail(m_huge_ttype, ENG_ERR_UNSUPPORTED, "unsupported tensor type 4294967295");
	expect_fail(m_misaligned, ENG_ERR_FORMAT, "not a multiple of the alignment 32");
	expect_fail(m_overlap, ENG_ERR_FORMAT, "overlaps");
	expect_fail(m_past_eof, ENG_ERR_TRUNCATED, "tensor 'output_norm.weight'");
	expect_fail(m_offset_wrap, ENG_ERR_TRUNCATED, "reach past the end");
	expect_fail(m_name_nul, ENG_ERR_FORMAT, "NUL");
}

static void test_alignment_key(void **state)
{
	struct eng_gguf_writer *w;
	const uint64_t dims[1] = { 8 };
	float x[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	void *buf;
	size_t len;
	char err[256];
	struct eng_gguf *g;

	(void)state;
	/* A valid non-default alignment is honoured. */
	w = eng_gguf_writer_new(3, 128);
	assert_non_null(w);
	assert_int_equal(eng_gguf_writer_add_tensor(w, "a", ENG_TYPE_F32, 1, dims, x), ENG_OK);
	assert_int_equal(eng_gguf_writer_add_tensor(w, "b", ENG_TYPE_F32, 1, dims, x), ENG_OK);
	assert_int_equal(eng_gguf_writer_write_mem(w, NULL, NULL, &buf, &len, err, sizeof(err)), ENG_OK);
	eng_gguf_writer_free(w);
	assert_int_equal(eng_gguf_parse(buf, len, &g, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_gguf_alignment(g), 128);
	assert_int_equal(eng_gguf_data_offset(g) % 128, 0);
	assert_int_equal(eng_gguf_tensor(g, "b")->offset - eng_gguf_tensor(g, "a")->offset, 128);
	assert_memory_equal(eng_gguf_tensor(g, "b")->data, x, sizeof(x));
	eng_gguf_free(g);
	free(buf);

	/* Not a power of two, zero, or not an integer: refused, naming the key. */
	static const uint32_t bad[] = { 48, 0, 1u << 20 };
	for (size_t i = 0; i < 3; i++) {
		w = eng_gguf_writer_new(3, 0);
		assert_int_equal(eng_gguf_writer_set_u32(w, "general.alignment", bad[i]), ENG_OK);
		assert_int_equal(eng_gguf_writer_write_mem(w, NULL, NULL, &buf, &len, err, sizeof(err)), ENG_OK);
		eng_gguf_writer_free(w);
		assert_int_equal(parse_copy(buf, len, err, sizeof(err)), ENG_ERR_FORMAT);
		assert_non_null(strstr(err, "general.alignment"));
		free(buf);
	}
	w = eng_gguf_writer_new(3, 0);
	assert_int_equal(eng_gguf_writer_set_str(w, "general.alignment", "32"), ENG_OK);
	assert_int_equal(eng_gguf_writer_write_mem(w, NULL, NULL, &buf, &len, err, sizeof(err)), ENG_OK);
	eng_gguf_writer_free(w);
	assert_int_equal(parse_copy(buf, len, err, sizeof(err)), ENG_ERR_FORMAT);
	assert_non_null(strstr(err, "expected an integer"));
	free(buf);
}

static void test_duplicates(void **state)
{
	struct eng_gguf_writer *w;
	const uint64_t dims[1] = { 32 };
	void *buf;
	size_t len;
	char err[256];

	(void)state;
	w = eng_gguf_writer_new(3, 0);
	assert_int_equal(eng_gguf_writer_set_u32(w, "a.b", 1), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_str(w, "llama.block_count", "x"), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_u32(w, "llama.block_count", 2), ENG_OK);
	assert_int_equal(eng_gguf_writer_write_mem(w, NULL, NULL, &buf, &len, err, sizeof(err)), ENG_OK);
	eng_gguf_writer_free(w);
	assert_int_equal(parse_copy(buf, len, err, sizeof(err)), ENG_ERR_DUPLICATE);
	assert_non_null(strstr(err, "key 'llama.block_count': duplicate"));
	free(buf);

	w = eng_gguf_writer_new(3, 0);
	assert_int_equal(eng_gguf_writer_add_tensor(w, "blk.0.ffn_up.weight", ENG_TYPE_F16, 1, dims, NULL), ENG_OK);
	assert_int_equal(eng_gguf_writer_add_tensor(w, "other", ENG_TYPE_F16, 1, dims, NULL), ENG_OK);
	assert_int_equal(eng_gguf_writer_add_tensor(w, "blk.0.ffn_up.weight", ENG_TYPE_F16, 1, dims, NULL), ENG_OK);
	assert_int_equal(eng_gguf_writer_write_mem(w, zero_fill, NULL, &buf, &len, err, sizeof(err)), ENG_OK);
	eng_gguf_writer_free(w);
	assert_int_equal(parse_copy(buf, len, err, sizeof(err)), ENG_ERR_DUPLICATE);
	assert_non_null(strstr(err, "tensor 'blk.0.ffn_up.weight': duplicate"));
	free(buf);
}

static void test_deep_nesting(void **state)
{
	/* array of array of … (6 levels) of u8: over ENG_GGUF_MAX_NESTING. */
	uint8_t raw[6 * 12 + 12 + 1];
	size_t p = 0;
	struct eng_gguf_writer *w = eng_gguf_writer_new(3, 0);
	void *buf;
	size_t len;
	char err[256];

	(void)state;
	for (int lvl = 0; lvl < 6; lvl++) {
		put32(raw + p, ENG_GGUF_ARRAY);
		put64(raw + p + 4, 1);
		p += 12;
	}
	put32(raw + p, ENG_GGUF_U8);
	put64(raw + p + 4, 1);
	p += 12;
	raw[p++] = 42;
	assert_int_equal(eng_gguf_writer_set_raw(w, "deep", ENG_GGUF_ARRAY, raw, p), ENG_OK);
	assert_int_equal(eng_gguf_writer_write_mem(w, NULL, NULL, &buf, &len, err, sizeof(err)), ENG_OK);
	eng_gguf_writer_free(w);
	assert_int_equal(parse_copy(buf, len, err, sizeof(err)), ENG_ERR_LIMIT);
	assert_non_null(strstr(err, "key 'deep'"));
	free(buf);
}

static void test_many_nested_arrays(void **state)
{
	/* 70000 empty u8 arrays inside one array: valid syntax, over the cap on
	 * nested arrays (each costs a parsed node). */
	const uint64_t n = 70000;
	size_t rlen = 12 + n * 12;
	uint8_t *raw = calloc(1, rlen);
	struct eng_gguf_writer *w = eng_gguf_writer_new(3, 0);
	void *buf;
	size_t len;
	char err[256];

	(void)state;
	assert_non_null(raw);
	put32(raw, ENG_GGUF_ARRAY);
	put64(raw + 4, n);
	for (uint64_t i = 0; i < n; i++)
		put32(raw + 12 + i * 12, ENG_GGUF_U8); /* count 0 */
	assert_int_equal(eng_gguf_writer_set_raw(w, "many", ENG_GGUF_ARRAY, raw, rlen), ENG_OK);
	assert_int_equal(eng_gguf_writer_write_mem(w, NULL, NULL, &buf, &len, err, sizeof(err)), ENG_OK);
	eng_gguf_writer_free(w);
	assert_int_equal(parse_copy(buf, len, err, sizeof(err)), ENG_ERR_LIMIT);
	assert_non_null(strstr(err, "key 'many'"));
	assert_non_null(strstr(err, "nested arrays"));
	free(buf);
	free(raw);
}

static void test_bad_args(void **state)
{
	struct eng_gguf *g = (struct eng_gguf *)1;
	char err[64];

	(void)state;
	assert_int_equal(eng_gguf_parse("GGU", 3, &g, err, sizeof(err)), ENG_ERR_TRUNCATED);
	assert_null(g);
	assert_int_equal(eng_gguf_parse(NULL, 0, &g, err, sizeof(err)), ENG_ERR_TRUNCATED);
	assert_int_equal(eng_gguf_parse("GGUF", 4, NULL, err, sizeof(err)), ENG_ERR_ARG);
	/* A tiny error buffer is filled, truncated and NUL-terminated. */
	assert_int_equal(eng_gguf_parse("GGUF\3\0\0\0", 8, &g, err, 8), ENG_ERR_TRUNCATED);
	assert_int_equal(strlen(err), 7);
	assert_int_equal(eng_gguf_parse("GGUF\3\0\0\0", 8, &g, NULL, 0), ENG_ERR_TRUNCATED);
	eng_gguf_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stories260k),
		cmocka_unit_test(test_vocab_files),
		cmocka_unit_test(test_every_value_type_v3),
		cmocka_unit_test(test_every_value_type_v2),
		cmocka_unit_test(test_type_table),
		cmocka_unit_test(test_small_valid),
		cmocka_unit_test(test_truncated_at_every_byte),
		cmocka_unit_test(test_flipped_bytes),
		cmocka_unit_test(test_hostile_headers),
		cmocka_unit_test(test_hostile_metadata),
		cmocka_unit_test(test_hostile_tensors),
		cmocka_unit_test(test_alignment_key),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_many_nested_arrays),
		cmocka_unit_test(test_bad_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
