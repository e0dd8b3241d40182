/* GGUF writer: what it writes reads back identically (metadata of every type,
 * tensors of every type, alignment padding), memory and file output agree,
 * streamed tensors (fill callback) equal copied ones, bad input is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"

static const enum eng_type all_types[] = {
	ENG_TYPE_F32, ENG_TYPE_F16, ENG_TYPE_BF16, ENG_TYPE_Q4_0, ENG_TYPE_Q4_1, ENG_TYPE_Q5_0,
	ENG_TYPE_Q5_1, ENG_TYPE_Q8_0, ENG_TYPE_Q8_1, ENG_TYPE_Q2_K, ENG_TYPE_Q3_K, ENG_TYPE_Q4_K,
	ENG_TYPE_Q5_K, ENG_TYPE_Q6_K,
};
#define N_TYPES (sizeof(all_types) / sizeof(all_types[0]))

static int fill_pattern(void *ctx, uint64_t i, const char *name, void *buf, uint64_t n)
{
	uint8_t *b = buf;
	int *calls = ctx;

	(void)name;
	if (calls)
		(*calls)++;
	for (uint64_t k = 0; k < n; k++)
		b[k] = (uint8_t)(k ^ (i * 13));
	return 0;
}

static int fill_fail(void *ctx, uint64_t i, const char *name, void *buf, uint64_t n)
{
	(void)ctx;
	(void)i;
	(void)name;
	(void)buf;
	(void)n;
	return -1;
}

/* One tensor per type, 2 rows of 256 elements, then some metadata. With
 * <stream> the tensor bytes come from fill_pattern, otherwise they are copied. */
static struct eng_gguf_writer *build(uint32_t version, uint32_t alignment, bool stream)
{
	struct eng_gguf_writer *w = eng_gguf_writer_new(version, alignment);
	static const char *const strs[] = { "x", "yy", "", "\xe2\x96\x81the" };
	static const int16_t i16s[] = { -5, 5, 32767 };
	static const double f64s[] = { 1.5, -0.0, 1e300 };

	assert_non_null(w);
	assert_int_equal(eng_gguf_writer_set_str(w, "general.architecture", "qwen2"), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_u32(w, "qwen2.block_count", 2), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_f32(w, "qwen2.rope.freq_base", 1000000.0f), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, 4), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_arr(w, "t.i16s", ENG_GGUF_I16, i16s, 3), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_arr(w, "t.f64s", ENG_GGUF_F64, f64s, 3), ENG_OK);
	for (size_t i = 0; i < N_TYPES; i++) {
		char name[32];
		const uint64_t dims[2] = { 256, 2 };
		uint64_t rb, n;
		uint8_t *data = NULL;

		snprintf(name, sizeof(name), "blk.%zu.w", i);
		assert_int_equal(eng_type_row_bytes(all_types[i], 256, &rb), ENG_OK);
		n = 2 * rb;
		if (!stream) {
			data = malloc(n);
			assert_non_null(data);
			assert_int_equal(fill_pattern(NULL, i, name, data, n), 0);
		}
		assert_int_equal(eng_gguf_writer_add_tensor(w, name, all_types[i], 2, dims, data), ENG_OK);
		assert_int_equal(eng_gguf_writer_tensor_bytes(w, i), n);
		free(data);
	}
	assert_int_equal(eng_gguf_writer_n_tensors(w), N_TYPES);
	return w;
}

static void check_read_back(const void *buf, size_t len, uint32_t version, uint32_t alignment)
{
	struct eng_gguf *g = NULL;
	char err[256];
	struct eng_str s;
	struct eng_gguf_arr a;
	uint32_t u;
	float f;
	bool b;
	int32_t i32;
	double d;

	assert_int_equal(eng_gguf_parse(buf, len, &g, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_gguf_version(g), version);
	assert_int_equal(eng_gguf_alignment(g), alignment);
	assert_int_equal(eng_gguf_data_offset(g) % alignment, 0);
	assert_int_equal(eng_gguf_get_str(g, "general.architecture", &s), ENG_OK);
	assert_int_equal(s.len, 5);
	assert_memory_equal(s.ptr, "qwen2", 5);
	assert_int_equal(eng_gguf_get_u32(g, "qwen2.block_count", &u), ENG_OK);
	assert_int_equal(u, 2);
	assert_int_equal(eng_gguf_get_f32(g, "qwen2.rope.freq_base", &f), ENG_OK);
	assert_true(f == 1000000.0f);
	assert_int_equal(eng_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b), ENG_OK);
	assert_false(b);
	assert_int_equal(eng_gguf_get_arr(g, "tokenizer.ggml.tokens", &a), ENG_OK);
	assert_int_equal(a.n, 4);
	assert_int_equal(eng_gguf_arr_str(&a, 3, &s), ENG_OK);
	assert_int_equal(s.len, 6);
	assert_memory_equal(s.ptr, "\xe2\x96\x81the", 6);
	assert_int_equal(eng_gguf_get_arr(g, "t.i16s", &a), ENG_OK);
	assert_int_equal(eng_gguf_arr_i32(&a, 0, &i32), ENG_OK);
	assert_int_equal(i32, -5);
	assert_int_equal(eng_gguf_arr_i32(&a, 2, &i32), ENG_OK);
	assert_int_equal(i32, 32767);
	assert_int_equal(eng_gguf_get_arr(g, "t.f64s", &a), ENG_OK);
	assert_int_equal(eng_gguf_arr_f64(&a, 2, &d), ENG_OK);
	assert_true(d == 1e300);
	assert_int_equal(eng_gguf_n_tensors(g), N_TYPES);
	for (size_t i = 0; i < N_TYPES; i++) {
		const struct eng_tensor *t = eng_gguf_tensor_at(g, i);
		uint8_t *want;
		char name[32];

		snprintf(name, sizeof(name), "blk.%zu.w", i);
		assert_string_equal(t->name, name);
		assert_int_equal(t->type, all_types[i]);
		assert_int_equal(t->n_dims, 2);
		assert_int_equal(t->dims[0], 256);
		assert_int_equal(t->dims[1], 2);
		assert_int_equal(t->n_elements, 512);
		assert_int_equal((t->offset - eng_gguf_data_offset(g)) % alignment, 0);
		want = malloc(t->n_bytes);
		assert_non_null(want);
		assert_int_equal(fill_pattern(NULL, i, name, want, t->n_bytes), 0);
		assert_memory_equal(t->data, want, t->n_bytes);
		free(want);
	}
	eng_gguf_free(g);
}

static void test_round_trip(void **state)
{
	static const struct { uint32_t version, alignment; } cases[] = {
		{ 3, 0 }, { 2, 0 }, { 3, 64 }, { 3, 1 }, { 2, 4096 },
	};

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct eng_gguf_writer *w = build(cases[c].version, cases[c].alignment, false);
		void *buf;
		size_t len;
		char err[256];

		assert_int_equal(eng_gguf_writer_write_mem(w, NULL, NULL, &buf, &len, err, sizeof(err)), ENG_OK);
		assert_int_equal(len, eng_gguf_writer_size(w));
		check_read_back(buf, len, cases[c].version, cases[c].alignment ? cases[c].alignment : 32);
		free(buf);
		eng_gguf_writer_free(w);
	}
}

static void test_stream_and_file_agree(void **state)
{
	struct eng_gguf_writer *wc = build(3, 0, false), *ws = build(3, 0, true);
	void *a, *b, *c;
	size_t la, lb, lc;
	char err[256], path[] = "/tmp/lw_test_gguf_write.XXXXXX";
	int calls = 0, fd;
	FILE *f;

	(void)state;
	assert_int_equal(eng_gguf_writer_write_mem(wc, NULL, NULL, &a, &la, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_gguf_writer_write_mem(ws, fill_pattern, &calls, &b, &lb, err, sizeof(err)), ENG_OK);
	assert_int_equal(calls, (int)N_TYPES);
	assert_int_equal(la, lb);
	assert_memory_equal(a, b, la);
	free(b);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	calls = 0;
	assert_int_equal(eng_gguf_writer_write_file(ws, path, fill_pattern, &calls, err, sizeof(err)), ENG_OK);
	assert_int_equal(calls, (int)N_TYPES);
	f = fopen(path, "rb");
	assert_non_null(f);
	c = malloc(la + 1);
	assert_non_null(c);
	lc = fread(c, 1, la + 1, f);
	fclose(f);
	unlink(path);
	assert_int_equal(lc, la);
	assert_memory_equal(a, c, la);

	/* Streamed tensors need the callback, and its failure aborts. */
	assert_int_equal(eng_gguf_writer_write_mem(ws, NULL, NULL, &b, &lb, err, sizeof(err)), ENG_ERR_ARG);
	assert_non_null(strstr(err, "blk.0.w"));
	assert_null(b);
	assert_int_equal(eng_gguf_writer_write_mem(ws, fill_fail, NULL, &b, &lb, err, sizeof(err)), ENG_ERR_ARG);
	assert_non_null(strstr(err, "fill callback failed"));
	assert_int_equal(eng_gguf_writer_write_file(ws, "/nonexistent/dir/x.gguf", fill_pattern, NULL, err,
						    sizeof(err)), ENG_ERR_IO);
	assert_non_null(strstr(err, "/nonexistent/dir/x.gguf"));
	free(a);
	free(c);
	eng_gguf_writer_free(wc);
	eng_gguf_writer_free(ws);
}

static void test_empty_file(void **state)
{
	struct eng_gguf_writer *w = eng_gguf_writer_new(3, 0);
	void *buf;
	size_t len;
	char err[256];
	struct eng_gguf *g;

	(void)state;
	assert_int_equal(eng_gguf_writer_write_mem(w, NULL, NULL, &buf, &len, err, sizeof(err)), ENG_OK);
	assert_int_equal(len, 32); /* 24-byte header padded to the alignment */
	assert_memory_equal(buf, "GGUF\3\0\0\0", 8);
	assert_int_equal(eng_gguf_parse(buf, len, &g, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_gguf_n_kv(g), 0);
	assert_int_equal(eng_gguf_n_tensors(g), 0);
	eng_gguf_free(g);
	free(buf);
	eng_gguf_writer_free(w);
}

static void test_refused(void **state)
{
	struct eng_gguf_writer *w = eng_gguf_writer_new(3, 0);
	const uint64_t ok[2] = { 32, 2 }, odd[1] = { 33 }, zero[2] = { 32, 0 }, huge[2] = { 1ull << 62, 8 };
	const char *const strs[] = { "a", NULL };

	(void)state;
	assert_null(eng_gguf_writer_new(1, 0));
	assert_null(eng_gguf_writer_new(4, 0));
	assert_null(eng_gguf_writer_new(3, 48));
	eng_gguf_writer_free(NULL);
	assert_int_equal(eng_gguf_writer_add_tensor(w, "a", (enum eng_type)4, 2, ok, NULL), ENG_ERR_UNSUPPORTED);
	assert_int_equal(eng_gguf_writer_add_tensor(w, "a", ENG_TYPE_Q8_0, 1, odd, NULL), ENG_ERR_FORMAT);
	assert_int_equal(eng_gguf_writer_add_tensor(w, "a", ENG_TYPE_F32, 2, zero, NULL), ENG_ERR_ARG);
	assert_int_equal(eng_gguf_writer_add_tensor(w, "a", ENG_TYPE_F32, 0, ok, NULL), ENG_ERR_ARG);
	assert_int_equal(eng_gguf_writer_add_tensor(w, "a", ENG_TYPE_F32, 5, ok, NULL), ENG_ERR_ARG);
	assert_int_equal(eng_gguf_writer_add_tensor(w, "a", ENG_TYPE_F32, 2, huge, NULL), ENG_ERR_RANGE);
	assert_int_equal(eng_gguf_writer_add_tensor(w, NULL, ENG_TYPE_F32, 2, ok, NULL), ENG_ERR_ARG);
	assert_int_equal(eng_gguf_writer_n_tensors(w), 0);
	assert_int_equal(eng_gguf_writer_set_arr(w, "k", ENG_GGUF_STRING, strs, 1), ENG_ERR_ARG);
	assert_int_equal(eng_gguf_writer_set_arr(w, "k", ENG_GGUF_ARRAY, strs, 1), ENG_ERR_ARG);
	assert_int_equal(eng_gguf_writer_set_arr_str(w, "k", strs, 2), ENG_ERR_ARG);
	assert_int_equal(eng_gguf_writer_set_u32(w, NULL, 1), ENG_ERR_ARG);
	assert_int_equal(eng_gguf_writer_set_str(w, "k", NULL), ENG_ERR_ARG);
	/* Nothing refused was half-written: the file still holds no pairs. */
	assert_int_equal(eng_gguf_writer_size(w), 32);
	eng_gguf_writer_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_stream_and_file_agree),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
