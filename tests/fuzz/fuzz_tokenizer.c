/* Fuzz target for the tokenizers (engine/tokenizer.c). The first input byte
 * picks what runs, the rest is the text:
 *   bits 0-1  vocabulary: stories260K (SPM, 512 tokens), llama-spm, gpt-2,
 *             deepseek-coder (from LW_SHARED_DIR, loaded once)
 *   bit 2     parse_special      bit 3  add_special
 *   bit 4     decoder renders special tokens
 *   bit 7     the rest is a GGUF file: build a tokenizer from it instead
 * Every encode must give ids in range that decode to valid UTF-8.
 * With clang and -DLW_LIBFUZZER=ON it is a libFuzzer target; otherwise main()
 * replays the seed files/directories given on the command line plus, with
 * -m N, N deterministic mutations of each (and of a generated tokenizer
 * GGUF), so ctest exercises it under gcc and the sanitizers. */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "engine/load.h"
#include "engine/tokenizer.h"

#ifndef LW_SHARED_DIR
#define LW_SHARED_DIR "../shared"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct eng_tok *toks[4];
static bool loaded;
static unsigned long long n_ids; /* ids produced, for the summary */

static struct eng_tok *load(const char *path)
{
	struct eng_file *f = NULL;
	struct eng_tok *t = NULL;
	char err[256];
	if (eng_file_open(NULL, path, ENG_LOAD_READ, &f, err, sizeof(err)) != ENG_OK) {
		fprintf(stderr, "fuzz_tokenizer: %s\n", err);
		abort();
	}
	if (eng_tok_new_from_gguf(eng_file_gguf(f), &t, err, sizeof(err)) != ENG_OK) {
		fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path, err);
		abort();
	}
	if (eng_file_close(f, err, sizeof(err)) != ENG_OK)
		abort();
	return t;
}

static bool valid_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t k;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
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

static void run_text(const struct eng_tok *t, const char *text, size_t len, unsigned flags)
{
	size_t cap = eng_tok_encode_bound(t, len);
	int32_t *ids = malloc(cap * sizeof(*ids));
	int n;
	if (!ids)
		return;
	n = eng_tok_encode(t, text, len, flags & 8, flags & 4, ids, cap);
	if (n < 0 && n != ENG_ERR_NOMEM)
		abort();
	/* the counting mode agrees */
	if (n >= 0 && eng_tok_encode(t, text, len, flags & 8, flags & 4, NULL, 0) != n)
		abort();
	struct eng_tok_decoder dec;
	size_t ocap = eng_tok_decoder_out_max(t);
	char *out = malloc(ocap);
	if (!out) {
		free(ids);
		return;
	}
	eng_tok_decoder_init(&dec, t, (flags & 16) ? ENG_TOK_DEC_SPECIAL : ENG_TOK_DEC_STRIP_SPACE);
	if (n > 0)
		n_ids += (unsigned long long)n;
	for (int i = 0; i < n; i++) {
		if (ids[i] < 0 || (uint32_t)ids[i] >= eng_tok_n_vocab(t))
			abort();
		int r = eng_tok_decoder_push(&dec, ids[i], out, ocap);
		if (r < 0 || !valid_utf8((unsigned char *)out, (size_t)r))
			abort();
	}
	int r = eng_tok_decoder_flush(&dec, out, ocap);
	if (r < 0 || !valid_utf8((unsigned char *)out, (size_t)r))
		abort();
	free(out);
	free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!loaded) {
		toks[0] = load(LW_SHARED_DIR "/models/stories260K.gguf");
		toks[1] = load(LW_SHARED_DIR "/vocab/ggml-vocab-llama-spm.gguf");
		toks[2] = load(LW_SHARED_DIR "/vocab/ggml-vocab-gpt-2.gguf");
		toks[3] = load(LW_SHARED_DIR "/vocab/ggml-vocab-deepseek-coder.gguf");
		loaded = true;
	}
	if (size == 0)
		return 0;
	unsigned flags = data[0];
	/* exact-size copy so a sanitizer sees a read one byte past the end */
	char *copy = malloc(size - 1 ? size - 1 : 1);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	if (flags & 128) {
		struct eng_gguf *g = NULL;
		struct eng_tok *t = NULL;
		char err[256];
		if (eng_gguf_parse(copy, size - 1, &g, err, sizeof(err)) == ENG_OK) {
			if (eng_tok_new_from_gguf(g, &t, err, sizeof(err)) == ENG_OK) {
				static const char probe[] = "Hello <s> w\xc3\xb6rld \xe2\x96\x81 12345\n\t\xff";
				run_text(t, probe, sizeof(probe) - 1, flags);
				eng_tok_free(t);
			}
			eng_gguf_free(g);
		}
	} else {
		run_text(toks[flags & 3], copy, size - 1, flags);
	}
	free(copy);
	return 0;
}

#ifndef LW_LIBFUZZER

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint32_t next(void)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(rng >> 33);
}

static const char *const splices[] = {
	"<s>", "</s>", "<|endoftext|>", "<\xef\xbd\x9c" "begin\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>",
	"\xe2\x96\x81", "\xf0\x9f\xa6\x99", "\xc3", "\xe4\xb8", "   ", "\r\n", "'ll", "0x", "<0x41>",
};

static void mutate_and_run(const uint8_t *seed, size_t n, long mutations)
{
	uint8_t *buf = malloc(n + 64);
	if (!buf)
		return;
	LLVMFuzzerTestOneInput(seed, n);
	for (long m = 0; m < mutations; m++) {
		size_t len = n;
		memcpy(buf, seed, n);
		int edits = 1 + (int)(next() % 4);
		for (int k = 0; k < edits; k++) {
			uint32_t op = next() % 4;
			if (op == 0 && len) { /* flip a bit */
				buf[next() % len] ^= (uint8_t)(1u << (next() % 8));
			} else if (op == 1 && len) { /* overwrite a byte */
				buf[next() % len] = (uint8_t)next();
			} else if (op == 2 && len > 1) { /* truncate */
				len = 1 + next() % (len - 1);
			} else if (len + 40 <= n + 64) { /* splice a special text */
				const char *s = splices[next() % (sizeof(splices) / sizeof(splices[0]))];
				size_t sl = strlen(s), at = len ? 1 + next() % len : 0;
				if (at > len)
					at = len;
				memmove(buf + at + sl, buf + at, len - at);
				memcpy(buf + at, s, sl);
				len += sl;
			}
		}
		LLVMFuzzerTestOneInput(buf, len);
	}
	free(buf);
}

static int run_file(const char *path, long mutations)
{
	FILE *f = fopen(path, "rb");
	long n;
	uint8_t *buf;
	if (!f) {
		perror(path);
		return 1;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return 1;
	}
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return 1;
	}
	fclose(f);
	mutate_and_run(buf, (size_t)n, mutations);
	free(buf);
	return 0;
}

/* A small SPM tokenizer GGUF (flag byte 0x80 first), to fuzz construction. */
static void run_generated_gguf(long mutations)
{
	static const char *const tokens[] = {"<unk>", "<s>", "</s>", "<0x41>", "\xe2\x96\x81", "a", "b",
					     "ab", ("\xe2\x96\x81" "a"), "<|end|>"};
	static const float scores[] = {0, 0, 0, 0, -1, -2, -3, -1.5f, -0.5f, 0};
	static const int32_t types[] = {2, 3, 3, 6, 1, 1, 1, 1, 1, 4};
	struct eng_gguf_writer *w = eng_gguf_writer_new(3, 0);
	void *mem = NULL;
	size_t len = 0;
	char err[256];
	if (!w)
		abort();
	if (eng_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama") != ENG_OK ||
	    eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, 10) != ENG_OK ||
	    eng_gguf_writer_set_arr(w, "tokenizer.ggml.scores", ENG_GGUF_F32, scores, 10) != ENG_OK ||
	    eng_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", ENG_GGUF_I32, types, 10) != ENG_OK ||
	    eng_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1) != ENG_OK ||
	    eng_gguf_writer_write_mem(w, NULL, NULL, &mem, &len, err, sizeof(err)) != ENG_OK)
		abort();
	uint8_t *in = malloc(len + 1);
	if (!in)
		abort();
	in[0] = 0x80;
	memcpy(in + 1, mem, len);
	mutate_and_run(in, len + 1, mutations);
	free(in);
	free(mem);
	eng_gguf_writer_free(w);
}

int main(int argc, char **argv)
{
	long mutations = 0, files = 0;
	for (int i = 1; i < argc; i++) {
		struct stat sb;
		if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
			mutations = strtol(argv[++i], NULL, 10);
			continue;
		}
		if (stat(argv[i], &sb) != 0) {
			perror(argv[i]);
			return 1;
		}
		if (S_ISDIR(sb.st_mode)) {
			DIR *d = opendir(argv[i]);
			struct dirent *e;
			if (!d)
				return 1;
			while ((e = readdir(d))) {
				char p[4096];
				if (e->d_name[0] == '.')
					continue;
				snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
				if (run_file(p, mutations) != 0) {
					closedir(d);
					return 1;
				}
				files++;
			}
			closedir(d);
		} else {
			if (run_file(argv[i], mutations) != 0)
				return 1;
			files++;
		}
	}
	run_generated_gguf(mutations);
	files++;
	for (int i = 0; i < 4; i++)
		eng_tok_free(toks[i]);
	printf("fuzz_tokenizer: %ld inputs, %ld mutations each, %llu ids\n", files, mutations, n_ids);
	return 0;
}

#endif
