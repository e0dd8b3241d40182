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
#include <pthread.h>
#include <time.h>

#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"
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

/* ---- stories260K: ids as llama.cpp tokenizes its prompts --------------------- */

static void test_stories_prompts(void **state)
{
	(void)state;
	struct eng_tok *tok = load_tok(LW_SHARED_DIR "/models/stories260K.gguf");
	size_t n, len;
	int32_t *ids = encode(tok, "Once upon a time", 16, true, false, &n);
	const int32_t want[] = {1, 403, 407, 261, 378};
	assert_int_equal(n, 5);
	assert_memory_equal(ids, want, sizeof(want));
	free(ids);

	char *json = slurp(LW_SHARED_DIR "/models/stories260K.refs.json", &len);
	assert_non_null(json);
	char errbuf[128];
	yajl_val root = yajl_tree_parse(json, errbuf, sizeof(errbuf));
	assert_non_null(root);
	const char *cases_path[] = {"cases", NULL};
	yajl_val cases = yajl_tree_get(root, cases_path, yajl_t_array);
	assert_non_null(cases);
	size_t checked = 0;
	for (size_t c = 0; c < YAJL_GET_ARRAY(cases)->len; c++) {
		yajl_val cs = YAJL_GET_ARRAY(cases)->values[c];
		const char *pp[] = {"prompt", NULL}, *ip[] = {"prompt_ids", NULL};
		yajl_val prompt = yajl_tree_get(cs, pp, yajl_t_string);
		yajl_val pids = yajl_tree_get(cs, ip, yajl_t_array);
		assert_non_null(prompt);
		assert_non_null(pids);
		const char *text = YAJL_GET_STRING(prompt);
		ids = encode(tok, text, strlen(text), true, false, &n);
		if (n != YAJL_GET_ARRAY(pids)->len)
			fail_msg("'%s': %zu ids, want %zu", text, n, YAJL_GET_ARRAY(pids)->len);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(ids[i], YAJL_GET_INTEGER(YAJL_GET_ARRAY(pids)->values[i]));
		free(ids);
		checked++;
	}
	assert_true(checked >= 4);
	yajl_tree_free(root);
	free(json);
	eng_tok_free(tok);
}

/* ---- BOS/EOS defaults ------------------------------------------------------------ */

static void test_bos_defaults(void **state)
{
	(void)state;
	size_t n;
	int32_t *ids;
	/* SPM with add_bos_token absent (stories260K): BOS added. */
	struct eng_tok *tok = load_tok(LW_SHARED_DIR "/models/stories260K.gguf");
	assert_true(eng_tok_adds_bos(tok));
	assert_int_equal(eng_tok_bos(tok), 1);
	assert_int_equal(eng_tok_eos(tok), 2);
	assert_true(eng_tok_is_eog(tok, 2));
	assert_false(eng_tok_is_eog(tok, 1));
	ids = encode(tok, "", 0, true, false, &n); /* '' with add_special: [BOS] */
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], 1);
	free(ids);
	ids = encode(tok, "", 0, false, false, &n);
	assert_int_equal(n, 0);
	free(ids);
	eng_tok_free(tok);

	/* byte-level BPE with add_bos_token absent (gpt-2): no BOS. */
	tok = load_tok(VOCAB_DIR "ggml-vocab-gpt-2.gguf");
	assert_false(eng_tok_adds_bos(tok));
	assert_false(eng_tok_adds_eos(tok));
	assert_true(eng_tok_is_eog(tok, 50256)); /* <|endoftext|> */
	ids = encode(tok, "Hello", 5, true, false, &n);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], 15496);
	free(ids);
	eng_tok_free(tok);

	/* add_bos_token true in the metadata (deepseek-coder, BPE): BOS added. */
	tok = load_tok(VOCAB_DIR "ggml-vocab-deepseek-coder.gguf");
	assert_true(eng_tok_adds_bos(tok));
	ids = encode(tok, "Hello", 5, true, false, &n);
	assert_true(n >= 2);
	assert_int_equal(ids[0], 32013);
	free(ids);
	eng_tok_free(tok);

	/* phi-3: eos <|endoftext|> 32000; <|end|> ends a turn too. */
	tok = load_tok(VOCAB_DIR "ggml-vocab-phi-3.gguf");
	assert_int_equal(eng_tok_eos(tok), 32000);
	assert_true(eng_tok_is_eog(tok, 32000));
	int32_t end = eng_tok_find(tok, "<|end|>", 7);
	assert_true(end > 0);
	assert_true(eng_tok_is_eog(tok, end));
	assert_false(eng_tok_is_eog(tok, 1));
	assert_false(eng_tok_is_eog(tok, -1));
	assert_false(eng_tok_is_eog(tok, 1 << 30));
	eng_tok_free(tok);
}

/* ---- special tokens ------------------------------------------------------------------ */

static void test_special_tokens(void **state)
{
	(void)state;
	size_t n;
	int32_t *ids;
	struct eng_tok *tok = load_tok(VOCAB_DIR "ggml-vocab-gpt-2.gguf");
	const char *s = "a<|endoftext|>b";
	ids = encode(tok, s, strlen(s), false, true, &n);
	assert_int_equal(n, 3);
	assert_int_equal(ids[1], 50256);
	free(ids);
	/* Without parse_special the control text is plain text. */
	ids = encode(tok, s, strlen(s), false, false, &n);
	assert_true(n > 3);
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(ids[i], 50256);
	size_t tl;
	char *back = decode(tok, ids, n, 0, &tl);
	assert_string_equal(back, s);
	free(back);
	free(ids);
	/* Adjacent and repeated specials; text at both ends. */
	s = "<|endoftext|><|endoftext|> x<|endoftext|>";
	ids = encode(tok, s, strlen(s), false, true, &n);
	assert_int_equal(n, 4);
	assert_int_equal(ids[0], 50256);
	assert_int_equal(ids[1], 50256);
	assert_int_equal(ids[3], 50256);
	/* A special token renders only when asked. */
	char buf[64];
	assert_int_equal(eng_tok_piece(tok, 50256, false, buf, sizeof(buf)), 0);
	assert_int_equal(eng_tok_piece(tok, 50256, true, buf, sizeof(buf)), 13);
	assert_memory_equal(buf, "<|endoftext|>", 13);
	back = decode(tok, ids, n, ENG_TOK_DEC_SPECIAL, &tl);
	assert_string_equal(back, s);
	free(back);
	back = decode(tok, ids, n, 0, &tl);
	assert_string_equal(back, " x");
	free(back);
	free(ids);
	eng_tok_free(tok);

	/* SPM: a text fragment after a special token gets the space prefix. */
	tok = load_tok(VOCAB_DIR "ggml-vocab-llama-spm.gguf");
	size_t n1, n2;
	int32_t *a = encode(tok, "<s>Hello", 8, false, true, &n1);
	int32_t *b = encode(tok, "Hello", 5, false, false, &n2);
	assert_int_equal(a[0], 1);
	assert_int_equal(n1, n2 + 1);
	assert_memory_equal(a + 1, b, n2 * sizeof(*b));
	free(a);
	free(b);
	a = encode(tok, "<s>Hello", 8, false, false, &n1);
	for (size_t i = 0; i < n1; i++)
		assert_int_not_equal(a[i], 1);
	free(a);
	eng_tok_free(tok);

	/* phi-3 (general.name "Phi3"): special tokens swallow the whitespace
	 * after them, as llama.cpp's RSTRIP rule for that family says. */
	tok = load_tok(VOCAB_DIR "ggml-vocab-phi-3.gguf");
	int32_t user = eng_tok_find(tok, "<|user|>", 8), endt = eng_tok_find(tok, "<|end|>", 7),
		asst = eng_tok_find(tok, "<|assistant|>", 13);
	assert_true(user > 0 && endt > 0 && asst > 0);
	s = "<|user|>\nHello<|end|>\n<|assistant|>";
	a = encode(tok, s, strlen(s), false, true, &n1);
	b = encode(tok, "Hello", 5, false, false, &n2);
	assert_int_equal(n1, n2 + 3);
	assert_int_equal(a[0], user);
	assert_memory_equal(a + 1, b, n2 * sizeof(*b));
	assert_int_equal(a[n1 - 2], endt);
	assert_int_equal(a[n1 - 1], asst);
	free(a);
	free(b);
	eng_tok_free(tok);

	/* deepseek-coder: a multi-byte control text, longest match first. */
	tok = load_tok(VOCAB_DIR "ggml-vocab-deepseek-coder.gguf");
	s = "<\xef\xbd\x9c" "begin\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>def f():";
	ids = encode(tok, s, strlen(s), false, true, &n);
	assert_true(n >= 2);
	assert_int_equal(ids[0], 32013);
	free(ids);
	eng_tok_free(tok);
}

/* ---- streaming decoder -------------------------------------------------------------- */

static void test_stream_utf8(void **state)
{
	(void)state;
	struct eng_tok *tok = load_tok(VOCAB_DIR "ggml-vocab-gpt-2.gguf");
	/* Characters GPT-2 has no single token for are split into byte tokens. */
	const char *s = "caf\xc3\xa9 \xf0\x9f\x8c\x8d \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\xa6\x99!";
	size_t n, tl;
	int32_t *ids = encode(tok, s, strlen(s), false, false, &n);
	/* At least one token must carry an incomplete character, or this test
	 * proves nothing. */
	int held = 0;
	struct eng_tok_decoder dec;
	size_t cap = eng_tok_decoder_out_max(tok);
	char *chunk = malloc(cap);
	eng_tok_decoder_init(&dec, tok, 0);
	for (size_t i = 0; i < n; i++) {
		char piece[64];
		int pl = eng_tok_piece(tok, ids[i], false, piece, sizeof(piece));
		assert_true(pl > 0);
		int r = eng_tok_decoder_push(&dec, ids[i], chunk, cap);
		assert_true(r >= 0);
		assert_true(valid_utf8((unsigned char *)chunk, (size_t)r));
		if (!valid_utf8((unsigned char *)piece, (size_t)pl))
			held++;
	}
	assert_true(held > 0);
	free(chunk);
	char *back = decode(tok, ids, n, 0, &tl);
	assert_string_equal(back, s);
	free(back);
	free(ids);
	/* Too small an output buffer is refused, state untouched. */
	eng_tok_decoder_init(&dec, tok, 0);
	char small[4];
	assert_int_equal(eng_tok_decoder_push(&dec, 0, small, sizeof(small)), ENG_ERR_RANGE);
	eng_tok_free(tok);

	/* SPM byte tokens: <0xE4><0xB8> then <0x41> — the broken character
	 * becomes U+FFFD and 'A' survives; a dangling lead byte at the end
	 * becomes U+FFFD at flush. */
	tok = load_tok(VOCAB_DIR "ggml-vocab-llama-spm.gguf");
	int32_t e4 = eng_tok_find(tok, "<0xE4>", 6), b8 = eng_tok_find(tok, "<0xB8>", 6),
		x41 = eng_tok_find(tok, "<0x41>", 6), x96 = eng_tok_find(tok, "<0x96>", 6);
	assert_true(e4 >= 0 && b8 >= 0 && x41 >= 0 && x96 >= 0);
	int32_t seq[] = {e4, b8, x41, e4, b8, x96, e4};
	char *txt = decode(tok, seq, 7, 0, &tl);
	assert_string_equal(txt, "\xef\xbf\xbd" "A" "\xe4\xb8\x96" "\xef\xbf\xbd");
	free(txt);
	/* A lone continuation byte is invalid on its own. */
	int32_t lone[] = {b8, x41};
	txt = decode(tok, lone, 2, 0, &tl);
	assert_string_equal(txt, "\xef\xbf\xbd" "A");
	free(txt);
	/* STRIP_SPACE drops only the first piece's leading space. */
	size_t m;
	ids = encode(tok, " a b", 4, false, false, &m);
	txt = decode(tok, ids, m, ENG_TOK_DEC_STRIP_SPACE, &tl);
	assert_string_equal(txt, " a b");
	free(txt);
	txt = decode(tok, ids, m, 0, &tl);
	assert_string_equal(txt, "  a b");
	free(txt);
	free(ids);
	eng_tok_free(tok);
}

/* ---- bad input ------------------------------------------------------------------------ */

static void test_bad_input(void **state)
{
	(void)state;
	static const char *const vocabs[] = {
		VOCAB_DIR "ggml-vocab-llama-spm.gguf", VOCAB_DIR "ggml-vocab-gpt-2.gguf",
		VOCAB_DIR "ggml-vocab-deepseek-coder.gguf", VOCAB_DIR "ggml-vocab-phi-3.gguf"};
	const char bad[] = "ok \xff\xfe \xc3 \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf \x80 end\xf0";
	uint32_t rng = 12345;
	for (size_t v = 0; v < sizeof(vocabs) / sizeof(vocabs[0]); v++) {
		struct eng_tok *tok = load_tok(vocabs[v]);
		size_t n, tl;
		int32_t *ids = encode(tok, bad, sizeof(bad) - 1, true, true, &n);
		assert_true(n > 0);
		for (size_t i = 0; i < n; i++)
			assert_true(ids[i] >= 0 && (uint32_t)ids[i] < eng_tok_n_vocab(tok));
		char *txt = decode(tok, ids, n, 0, &tl); /* decode() checks UTF-8 validity */
		assert_true(valid_utf8((unsigned char *)txt, tl));
		free(txt);
		free(ids);
		/* random bytes, including NULs */
		for (int round = 0; round < 20; round++) {
			unsigned char buf[257];
			size_t len = (size_t)(round * 13 % 257);
			for (size_t i = 0; i < len; i++) {
				rng = rng * 1103515245u + 12345u;
				buf[i] = (unsigned char)(rng >> 16);
			}
			ids = encode(tok, (const char *)buf, len, false, true, &n);
			txt = decode(tok, ids, n, ENG_TOK_DEC_SPECIAL, &tl);
			free(txt);
			free(ids);
		}
		/* counting mode, too small a buffer, bad arguments */
		int32_t one[1];
		int need = eng_tok_encode(tok, "hello world", 11, false, false, NULL, 0);
		assert_true(need >= 2);
		assert_int_equal(eng_tok_encode(tok, "hello world", 11, false, false, one, 1), ENG_ERR_RANGE);
		assert_int_equal(eng_tok_encode(tok, NULL, 3, false, false, one, 1), ENG_ERR_ARG);
		assert_int_equal(eng_tok_encode(tok, "", 0, false, false, NULL, 0), 0);
		char pb[8];
		assert_int_equal(eng_tok_piece(tok, -1, true, pb, sizeof(pb)), ENG_ERR_RANGE);
		assert_int_equal(eng_tok_piece(tok, (int32_t)eng_tok_n_vocab(tok), true, pb, sizeof(pb)),
				 ENG_ERR_RANGE);
		struct eng_tok_decoder dec;
		char *out = malloc(eng_tok_decoder_out_max(tok));
		eng_tok_decoder_init(&dec, tok, 0);
		assert_int_equal(eng_tok_decoder_push(&dec, -5, out, eng_tok_decoder_out_max(tok)),
				 ENG_ERR_RANGE);
		free(out);
		eng_tok_free(tok);
	}
}

/* ---- small vocabularies built from arrays ------------------------------------------ */

/* A byte-level vocabulary: the 256 GPT-2-mapped single bytes, then <extra>. */
static struct eng_tok *byte_vocab(const char *pre, const char *const *extra, size_t n_extra,
				  const char *const *merges, size_t n_merges, enum eng_status *st_out)
{
	static char bytes[256][4];
	const char *toks[300];
	uint32_t n = 0, k = 0;
	for (uint32_t b = 0; b < 256; b++) {
		uint32_t cp = b;
		if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174))
			cp = 256 + k++;
		if (cp < 0x80) {
			bytes[b][0] = (char)cp;
			bytes[b][1] = 0;
		} else {
			bytes[b][0] = (char)(0xC0 | (cp >> 6));
			bytes[b][1] = (char)(0x80 | (cp & 0x3F));
			bytes[b][2] = 0;
		}
		toks[n++] = bytes[b];
	}
	for (size_t i = 0; i < n_extra; i++)
		toks[n++] = extra[i];
	struct eng_tok_desc d = {
		.kind = ENG_TOK_BPE, .pre = pre, .n_tokens = n, .tokens = toks,
		.n_merges = (uint32_t)n_merges, .merges = merges,
		.bos = ENG_TOK_DEFAULT, .eos = ENG_TOK_DEFAULT, .unk = -1, .pad = -1, .eot = -1, .eom = -1,
		.add_bos = -1, .add_eos = -1, .add_space_prefix = -1,
	};
	struct eng_tok *tok = NULL;
	char err[256] = "";
	*st_out = eng_tok_new(&d, &tok, err, sizeof(err));
	return tok;
}

static void test_bpe_families(void **state)
{
	(void)state;
	const char *extra[] = {"12", "123", "45", "1234", "12345", "hello"};
	const char *merges[] = {"1 2", "12 3", "123 4", "1234 5", "4 5"};
	enum eng_status st;
	size_t n;
	int32_t *ids;
	/* gpt-2: \p{N}+ keeps "12345" whole, merges make it one token. */
	struct eng_tok *tok = byte_vocab("gpt-2", extra, 6, merges, 5, &st);
	assert_int_equal(st, ENG_OK);
	assert_false(eng_tok_adds_bos(tok));
	ids = encode(tok, "12345", 5, false, false, &n);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], 256 + 4);
	free(ids);
	/* no merge rule for "hello": bytes */
	ids = encode(tok, "hello", 5, false, false, &n);
	assert_int_equal(n, 5);
	free(ids);
	eng_tok_free(tok);
	/* llama3: \p{N}{1,3} splits 123|45; ignore_merges takes "hello" whole;
	 * BOS added by default (id 11 here). */
	tok = byte_vocab("llama-bpe", extra, 6, merges, 5, &st);
	assert_int_equal(st, ENG_OK);
	assert_true(eng_tok_adds_bos(tok));
	ids = encode(tok, "12345", 5, false, false, &n);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 256 + 1);
	assert_int_equal(ids[1], 256 + 2);
	free(ids);
	ids = encode(tok, "hello", 5, true, false, &n);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 11);
	assert_int_equal(ids[1], 256 + 5);
	free(ids);
	eng_tok_free(tok);
	/* qwen2: every digit alone. */
	tok = byte_vocab("qwen2", extra, 6, merges, 5, &st);
	assert_int_equal(st, ENG_OK);
	ids = encode(tok, "12345", 5, false, false, &n);
	assert_int_equal(n, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(ids[i], '1' + i); /* byte_vocab: id b is byte b */
	free(ids);
	eng_tok_free(tok);
	/* tekken / gpt-4o split at a lower->upper case change: with ignore_merges
	 * (tekken) both words come out whole; gpt-2 keeps one piece of bytes. */
	const char *words[] = {"Hello", "World"};
	tok = byte_vocab("tekken", words, 2, NULL, 0, &st);
	assert_int_equal(st, ENG_OK);
	ids = encode(tok, "HelloWorld", 10, false, false, &n);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 256);
	assert_int_equal(ids[1], 257);
	free(ids);
	eng_tok_free(tok);
	/* A merge across the case boundary applies only where the pre-tokenizer
	 * keeps "oW" in one piece (gpt-2), not with gpt-4o's Hello|World. */
	const char *ow[] = {"oW"}, *ow_merge[] = {"o W"};
	tok = byte_vocab("gpt-4o", ow, 1, ow_merge, 1, &st);
	assert_int_equal(st, ENG_OK);
	assert_false(eng_tok_adds_bos(tok));
	ids = encode(tok, "HelloWorld", 10, false, false, &n);
	assert_int_equal(n, 10);
	free(ids);
	eng_tok_free(tok);
	tok = byte_vocab("gpt-2", ow, 1, ow_merge, 1, &st);
	ids = encode(tok, "HelloWorld", 10, false, false, &n);
	assert_int_equal(n, 9);
	assert_int_equal(ids[4], 256);
	free(ids);
	eng_tok_free(tok);
	/* unknown family: a clear refusal */
	tok = byte_vocab("no-such-family", extra, 6, merges, 5, &st);
	assert_null(tok);
	assert_int_equal(st, ENG_ERR_UNSUPPORTED);
}

static void test_bpe_merge_order(void **state)
{
	(void)state;
	/* "abc": rank 0 "b c" beats rank 1 "a b", so the result is a|bc. */
	const char *extra[] = {"ab", "bc", "abc"};
	const char *m1[] = {"b c", "a b", "ab c"};
	const char *m2[] = {"a b", "b c", "ab c"};
	enum eng_status st;
	size_t n;
	struct eng_tok *tok = byte_vocab("gpt-2", extra, 3, m1, 3, &st);
	int32_t *ids = encode(tok, "abc", 3, false, false, &n);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 'a');
	assert_int_equal(ids[1], 256 + 1);
	free(ids);
	eng_tok_free(tok);
	tok = byte_vocab("gpt-2", extra, 3, m2, 3, &st);
	ids = encode(tok, "abc", 3, false, false, &n);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], 256 + 2);
	free(ids);
	eng_tok_free(tok);
}

static void test_construction_errors(void **state)
{
	(void)state;
	char err[256];
	struct eng_tok *tok = (struct eng_tok *)1;
	const char *dup[] = {"<unk>", "a", "a"};
	struct eng_tok_desc d = {
		.kind = ENG_TOK_SPM, .n_tokens = 3, .tokens = dup,
		.bos = -1, .eos = -1, .unk = 0, .pad = -1, .eot = -1, .eom = -1,
		.add_bos = 0, .add_eos = -1, .add_space_prefix = -1,
	};
	assert_int_equal(eng_tok_new(&d, &tok, err, sizeof(err)), ENG_ERR_FORMAT);
	assert_null(tok);
	assert_non_null(strstr(err, "duplicate"));
	/* add_bos requested without a BOS id */
	const char *ok[] = {"<unk>", "a", "b"};
	d.tokens = ok;
	d.add_bos = 1;
	assert_int_equal(eng_tok_new(&d, &tok, err, sizeof(err)), ENG_ERR_FORMAT);
	assert_non_null(strstr(err, "bos"));
	d.n_tokens = 0;
	assert_int_equal(eng_tok_new(&d, &tok, err, sizeof(err)), ENG_ERR_FORMAT);

	/* From GGUF: unsupported model, missing tokens, wrong types. */
	struct {
		const char *model;
		bool tokens;
		enum eng_status want;
		const char *key;
	} cases[] = {
		{"bert", true, ENG_ERR_UNSUPPORTED, "tokenizer.ggml.model"},
		{"llama", false, ENG_ERR_NOT_FOUND, "tokenizer.ggml.tokens"},
		{"gpt2", true, ENG_ERR_NOT_FOUND, "tokenizer.ggml.merges"},
		{NULL, true, ENG_ERR_NOT_FOUND, "tokenizer.ggml.model"},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct eng_gguf_writer *w = eng_gguf_writer_new(3, 0);
		struct eng_gguf *g = NULL;
		void *mem = NULL;
		size_t len = 0;
		assert_non_null(w);
		if (cases[c].model)
			assert_int_equal(eng_gguf_writer_set_str(w, "tokenizer.ggml.model", cases[c].model), ENG_OK);
		if (cases[c].tokens)
			assert_int_equal(eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", ok, 3), ENG_OK);
		assert_int_equal(eng_gguf_writer_write_mem(w, NULL, NULL, &mem, &len, err, sizeof(err)), ENG_OK);
		assert_int_equal(eng_gguf_parse(mem, len, &g, err, sizeof(err)), ENG_OK);
		err[0] = '\0';
		assert_int_equal(eng_tok_new_from_gguf(g, &tok, err, sizeof(err)), cases[c].want);
		assert_null(tok);
		if (!strstr(err, cases[c].key))
			fail_msg("case %zu: error '%s' does not name %s", c, err, cases[c].key);
		eng_gguf_free(g);
		free(mem);
		eng_gguf_writer_free(w);
	}
	/* tokens of the wrong type */
	struct eng_gguf_writer *w = eng_gguf_writer_new(3, 0);
	struct eng_gguf *g = NULL;
	void *mem = NULL;
	size_t len = 0;
	int32_t nums[3] = {1, 2, 3};
	assert_int_equal(eng_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"), ENG_OK);
	assert_int_equal(eng_gguf_writer_set_arr(w, "tokenizer.ggml.tokens", ENG_GGUF_I32, nums, 3), ENG_OK);
	assert_int_equal(eng_gguf_writer_write_mem(w, NULL, NULL, &mem, &len, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_gguf_parse(mem, len, &g, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_tok_new_from_gguf(g, &tok, err, sizeof(err)), ENG_ERR_TYPE);
	assert_non_null(strstr(err, "tokenizer.ggml.tokens"));
	eng_gguf_free(g);
	free(mem);
	eng_gguf_writer_free(w);
}

/* ---- end-of-generation by text --------------------------------------------------------- */

static struct eng_tok *spm_vocab(const char *const *toks, uint32_t n)
{
	struct eng_tok_desc d = {
		.kind = ENG_TOK_SPM, .n_tokens = n, .tokens = toks,
		.bos = ENG_TOK_DEFAULT, .eos = ENG_TOK_DEFAULT, .unk = ENG_TOK_DEFAULT,
		.pad = -1, .eot = -1, .eom = -1, .add_bos = -1, .add_eos = -1, .add_space_prefix = -1,
	};
	struct eng_tok *tok = NULL;
	char err[256];
	if (eng_tok_new(&d, &tok, err, sizeof(err)) != ENG_OK)
		fail_msg("%s", err);
	return tok;
}

static void test_eog_texts(void **state)
{
	(void)state;
	/* Chat-turn ends are EOG and become CONTROL (not rendered, not split
	 * without parse_special) even when the vocabulary typed them NORMAL. */
	const char *v1[] = {"<unk>", "<s>", "</s>", "<|im_end|>", "<|eot_id|>", "<|channel|>", "x",
			    ("\xe2\x96\x81" "x"), "<|fim_pad|>"};
	struct eng_tok *tok = spm_vocab(v1, 9);
	assert_true(eng_tok_is_eog(tok, 2)); /* eos default 2 */
	assert_true(eng_tok_is_eog(tok, 3));
	assert_true(eng_tok_is_eog(tok, 4));
	assert_true(eng_tok_is_eog(tok, 8)); /* FIM pad ends generation too */
	assert_false(eng_tok_is_eog(tok, 5));
	assert_false(eng_tok_is_eog(tok, 6));
	char buf[32];
	assert_int_equal(eng_tok_piece(tok, 3, false, buf, sizeof(buf)), 0);
	assert_int_equal(eng_tok_piece(tok, 5, false, buf, sizeof(buf)), 11); /* gpt-oss markup renders */
	assert_int_equal(eng_tok_piece(tok, 7, false, buf, sizeof(buf)), 2);
	assert_memory_equal(buf, " x", 2);
	size_t n;
	int32_t *ids = encode(tok, "x<|im_end|>", 11, false, true, &n);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 7);
	assert_int_equal(ids[1], 3);
	free(ids);
	eng_tok_free(tok);
	/* o200k_harmony: with <|return|> and <|call|> present, <|end|> is not EOG. */
	const char *v2[] = {"<unk>", "<s>", "</s>", "<|end|>", "<|return|>", "<|call|>"};
	tok = spm_vocab(v2, 6);
	assert_false(eng_tok_is_eog(tok, 3));
	assert_true(eng_tok_is_eog(tok, 4));
	assert_true(eng_tok_is_eog(tok, 5));
	eng_tok_free(tok);
	const char *v3[] = {"<unk>", "<s>", "</s>", "<|end|>"};
	tok = spm_vocab(v3, 4);
	assert_true(eng_tok_is_eog(tok, 3));
	eng_tok_free(tok);
}

/* ---- one tokenizer, several threads ---------------------------------------------- */

struct thr_arg {
	const struct eng_tok *tok;
	const char *text;
	size_t len;
	const int32_t *want;
	size_t n_want;
	int mismatches;
};

static void *thr_main(void *p)
{
	struct thr_arg *a = p;
	size_t cap = eng_tok_encode_bound(a->tok, a->len);
	int32_t *ids = malloc(cap * sizeof(*ids));
	for (int round = 0; round < 20 && ids; round++) {
		int n = eng_tok_encode(a->tok, a->text, a->len, true, true, ids, cap);
		if (n < 0 || (size_t)n != a->n_want || memcmp(ids, a->want, a->n_want * sizeof(*ids)))
			a->mismatches++;
	}
	free(ids);
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	/* Encoding is read-only on the tokenizer: concurrent calls agree. */
	struct eng_tok *tok = load_tok(VOCAB_DIR "ggml-vocab-deepseek-coder.gguf");
	const char *text = "def fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)  # \xe6\x96\x90\xe6\xb3\xa2\n";
	size_t n;
	int32_t *want = encode(tok, text, strlen(text), true, true, &n);
	pthread_t th[4];
	struct thr_arg args[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thr_arg){tok, text, strlen(text), want, n, 0};
		assert_int_equal(pthread_create(&th[i], NULL, thr_main, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].mismatches, 0);
	}
	free(want);
	eng_tok_free(tok);
}

/* ---- speed (printed, never asserted) ------------------------------------------------- */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_speed_100k(void **state)
{
	(void)state;
	static const char *const vocabs[] = {
		"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf", "ggml-vocab-deepseek-coder.gguf"};
	/* ~100 KB of mixed text built from the vector inputs. */
	struct vec v;
	vec_load(&v, "ggml-vocab-gpt-2.gguf");
	size_t cap = 100 * 1024, len = 0;
	char *text = malloc(cap);
	assert_non_null(text);
	for (size_t c = 0; len < cap; c = (c + 1) % v.n_cases) {
		size_t k = v.text_len[c] + 1;
		if (len + k > cap)
			break;
		memcpy(text + len, v.text[c], v.text_len[c]);
		text[len + k - 1] = ' ';
		len += k;
	}
	for (size_t i = 0; i < sizeof(vocabs) / sizeof(vocabs[0]); i++) {
		char path[512];
		snprintf(path, sizeof(path), VOCAB_DIR "%s", vocabs[i]);
		double tl0 = now_ms();
		struct eng_tok *tok = load_tok(path);
		double tl1 = now_ms();
		size_t n;
		double t0 = now_ms();
		int32_t *ids = encode(tok, text, len, false, false, &n);
		double t1 = now_ms();
		size_t tl;
		char *back = decode(tok, ids, n, eng_tok_kind(tok) == ENG_TOK_SPM ? ENG_TOK_DEC_STRIP_SPACE : 0, &tl);
		double t2 = now_ms();
		assert_int_equal(tl, len);
		assert_memory_equal(back, text, len);
		fprintf(stderr, "bench tokenizer %s: load %.1f ms; encode %zu bytes -> %zu ids in %.2f ms; decode %.2f ms\n",
			vocabs[i], tl1 - tl0, len, n, t1 - t0, t2 - t1);
		free(back);
		free(ids);
		eng_tok_free(tok);
	}
	free(text);
	vec_free(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vocab_llama_spm),
		cmocka_unit_test(test_vocab_phi3),
		cmocka_unit_test(test_vocab_gpt2),
		cmocka_unit_test(test_vocab_deepseek_coder),
		cmocka_unit_test(test_stories_prompts),
		cmocka_unit_test(test_bos_defaults),
		cmocka_unit_test(test_special_tokens),
		cmocka_unit_test(test_stream_utf8),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_bpe_families),
		cmocka_unit_test(test_bpe_merge_order),
		cmocka_unit_test(test_construction_errors),
		cmocka_unit_test(test_eog_texts),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_speed_100k),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
