/* Tokenizer tests: the llama.cpp vocabulary vectors in ../shared/vocab/ must
 * encode exactly as their .out files say; decode(encode(s)) gives s back; the
 * streaming decoder emits only complete UTF-8; special tokens, BOS defaults,
 * bad input; stories260K prompt ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "engine/gguf.h"
#include "engine/load.h"
#include "engine/tokenizer.h"

#define VOCAB_DIR LW_SHARED_DIR "/vocab/"
#define SEP "\n__ggml_vocab_test__\n"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf) {
			buf[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

static struct eng_tok *load_tok(const char *path)
{
	struct eng_file *f = NULL;
	struct eng_tok *tok = NULL;
	char err[256] = "";
	enum eng_status st = eng_file_open(NULL, path, ENG_LOAD_MMAP, &f, err, sizeof(err));
	if (st != ENG_OK)
		fail_msg("open %s: %s", path, err);
	st = eng_tok_new_from_gguf(eng_file_gguf(f), &tok, err, sizeof(err));
	if (st != ENG_OK)
		fail_msg("tokenizer %s: %s (%s)", path, err, eng_strerror(st));
	/* The tokenizer copies what it needs: the file may go. */
	assert_int_equal(eng_file_close(f, err, sizeof(err)), ENG_OK);
	return tok;
}

/* Encodes into a malloc'd array (caller frees); *<n> gets the count. */
static int32_t *encode(const struct eng_tok *tok, const char *s, size_t len, bool add_special,
		       bool parse_special, size_t *n)
{
	size_t cap = eng_tok_encode_bound(tok, len);
	int32_t *ids = malloc(cap * sizeof(*ids));
	assert_non_null(ids);
	int r = eng_tok_encode(tok, s, len, add_special, parse_special, ids, cap);
	if (r < 0)
		fail_msg("encode failed: %s", eng_strerror(r));
	*n = (size_t)r;
	return ids;
}

/* Decodes <ids> with the streaming decoder into a malloc'd string. Checks
 * that every push emits valid, complete UTF-8. */
static bool valid_utf8(const unsigned char *s, size_t n);

static char *decode(const struct eng_tok *tok, const int32_t *ids, size_t n, unsigned flags,
		    size_t *out_len)
{
	struct eng_tok_decoder dec;
	size_t cap = eng_tok_decoder_out_max(tok);
	char *chunk = malloc(cap);
	size_t total_cap = n * cap + 8, total = 0;
	char *text = malloc(total_cap);
	assert_non_null(chunk);
	assert_non_null(text);
	eng_tok_decoder_init(&dec, tok, flags);
	for (size_t i = 0; i < n; i++) {
		int r = eng_tok_decoder_push(&dec, ids[i], chunk, cap);
		assert_true(r >= 0);
		assert_true(valid_utf8((unsigned char *)chunk, (size_t)r));
		memcpy(text + total, chunk, (size_t)r);
		total += (size_t)r;
	}
	int r = eng_tok_decoder_flush(&dec, chunk, cap);
	assert_true(r >= 0);
	memcpy(text + total, chunk, (size_t)r);
	total += (size_t)r;
	text[total] = '\0';
	free(chunk);
	*out_len = total;
	return text;
}

static bool valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t k;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xC2 && c <= 0xDF) {
			k = 2;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			k = 3;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			k = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + k > n)
			return false;
		for (size_t j = 1; j < k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3F);
		}
		if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += k;
	}
	return true;
}

/* ---- vocabulary vectors ------------------------------------------------------- */

struct vec {
	char *inp, *outf;
	size_t n_cases;
	const char *text[128];
	size_t text_len[128];
	char *ids_line[128];
};

static void vec_load(struct vec *v, const char *name)
{
	char p[512];
	size_t n;
	memset(v, 0, sizeof(*v));
	snprintf(p, sizeof(p), VOCAB_DIR "%s.inp", name);
	v->inp = slurp(p, &n);
	assert_non_null(v->inp);
	size_t pos = 0;
	for (;;) {
		char *hit = strstr(v->inp + pos, SEP);
		if (!hit)
			break;
		assert_true(v->n_cases < 128);
		v->text[v->n_cases] = v->inp + pos;
		v->text_len[v->n_cases] = (size_t)(hit - (v->inp + pos));
		v->n_cases++;
		pos = (size_t)(hit - v->inp) + strlen(SEP);
	}
	snprintf(p, sizeof(p), VOCAB_DIR "%s.out", name);
	v->outf = slurp(p, &n);
	assert_non_null(v->outf);
	size_t line = 0;
	for (char *s = v->outf; *s && line < 128;) {
		char *nl = strchr(s, '\n');
		if (nl)
			*nl = '\0';
		v->ids_line[line++] = s;
		if (!nl)
			break;
		s = nl + 1;
	}
	assert_int_equal(line, v->n_cases);
}

static void vec_free(struct vec *v)
{
	free(v->inp);
	free(v->outf);
}

static size_t parse_ids(const char *line, int32_t *ids, size_t cap)
{
	size_t n = 0;
	char *end;
	for (const char *s = line;;) {
		while (*s == ' ')
			s++;
		if (!*s)
			break;
		long v = strtol(s, &end, 10);
		assert_true(end != s);
		assert_true(n < cap);
		ids[n++] = (int32_t)v;
		s = end;
	}
	return n;
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
	fprintf(stderr, "  %s:", what);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, " %d", ids[i]);
	fprintf(stderr, "\n");
}

static void run_vocab(const char *name, bool spm)
{
	char path[512];
	struct vec v;
	int32_t want[1024];
	int bad = 0;
	snprintf(path, sizeof(path), VOCAB_DIR "%s", name);
	struct eng_tok *tok = load_tok(path);
	vec_load(&v, name);
	for (size_t c = 0; c < v.n_cases; c++) {
		size_t n_want = parse_ids(v.ids_line[c], want, 1024), n_got;
		int32_t *got = encode(tok, v.text[c], v.text_len[c], false, false, &n_got);
		if (n_got != n_want || memcmp(got, want, n_got * sizeof(*got)) != 0) {
			fprintf(stderr, "%s case %zu: '%.*s'\n", name, c, (int)v.text_len[c], v.text[c]);
			print_ids("want", want, n_want);
			print_ids("got ", got, n_got);
			bad++;
		}
		/* decode(encode(s)) == s (SPM: minus the space prefix it adds) */
		size_t n_text;
		char *back = decode(tok, got, n_got, spm ? ENG_TOK_DEC_STRIP_SPACE : 0, &n_text);
		if (n_text != v.text_len[c] || memcmp(back, v.text[c], n_text) != 0) {
			fprintf(stderr, "%s case %zu round trip: '%.*s' -> '%s'\n", name, c,
				(int)v.text_len[c], v.text[c], back);
			bad++;
		}
		free(back);
		free(got);
	}
	vec_free(&v);
	eng_tok_free(tok);
	assert_int_equal(bad, 0);
}

static void test_vocab_llama_spm(void **state)
{
	(void)state;
	run_vocab("ggml-vocab-llama-spm.gguf", true);
}

static void test_vocab_phi3(void **state)
{
	(void)state;
	run_vocab("ggml-vocab-phi-3.gguf", true);
}

static void test_vocab_gpt2(void **state)
{
	(void)state;
	run_vocab("ggml-vocab-gpt-2.gguf", false);
}

static void test_vocab_deepseek_coder(void **state)
{
	(void)state;
	run_vocab("ggml-vocab-deepseek-coder.gguf", false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vocab_llama_spm),
		cmocka_unit_test(test_vocab_phi3),
		cmocka_unit_test(test_vocab_gpt2),
		cmocka_unit_test(test_vocab_deepseek_coder),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
