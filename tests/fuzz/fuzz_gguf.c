/* Fuzz target for the GGUF reader (engine/gguf.c). With clang and
 * -DLW_LIBFUZZER=ON it is a libFuzzer target; otherwise main() replays the
 * seed files and directories given on the command line, plus, with -m N, N
 * deterministic mutations of each seed (bit flips, byte overwrites,
 * truncations, u64 counts made huge), so ctest exercises it under gcc. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so a sanitizer sees a read one byte past the end. */
	uint8_t *copy = malloc(size ? size : 1);
	struct eng_gguf *g = NULL;
	char err[256];
	volatile uint64_t sink = 0;

	if (!copy)
		return 0;
	if (size)
		memcpy(copy, data, size);
	if (eng_gguf_parse(copy, size, &g, err, sizeof(err)) == ENG_OK) {
		for (uint64_t i = 0; i < eng_gguf_n_kv(g); i++) {
			struct eng_gguf_arr a, sub;
			struct eng_str s;
			int64_t v;
			double d;

			sink += eng_gguf_find_key(g, eng_gguf_kv_key(g, i)) == (int64_t)i;
			if (eng_gguf_kv_str(g, i, &s) == ENG_OK && s.len)
				sink += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
			if (eng_gguf_kv_i64(g, i, &v) == ENG_OK)
				sink += (uint64_t)v;
			if (eng_gguf_kv_f64(g, i, &d) == ENG_OK)
				sink += d == d;
			if (eng_gguf_kv_arr(g, i, &a) != ENG_OK)
				continue;
			for (uint64_t k = 0; k < a.n && k < 4096; k++) {
				if (eng_gguf_arr_str(&a, k, &s) == ENG_OK && s.len)
					sink += (uint8_t)s.ptr[s.len - 1];
				if (eng_gguf_arr_i64(&a, k, &v) == ENG_OK)
					sink += (uint64_t)v;
				if (eng_gguf_arr_f64(&a, k, &d) == ENG_OK)
					sink += d == d;
				if (eng_gguf_arr_arr(&a, k, &sub) == ENG_OK && sub.n &&
				    eng_gguf_arr_i64(&sub, sub.n - 1, &v) == ENG_OK)
					sink += (uint64_t)v;
			}
		}
		for (uint64_t i = 0; i < eng_gguf_n_tensors(g); i++) {
			const struct eng_tensor *t = eng_gguf_tensor_at(g, i);
			const uint8_t *p = t->data;

			if (eng_gguf_tensor(g, t->name) != t)
				abort();
			sink += p[0] + p[t->n_bytes - 1];
		}
		eng_gguf_free(g);
	}
	(void)sink;
	free(copy);
	return 0;
}

#ifndef LW_LIBFUZZER

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next(void)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(rng >> 33);
}

static void mutate_and_run(const uint8_t *seed, size_t len, long n)
{
	uint8_t *m = malloc(len ? len : 1);

	if (!m)
		return;
	for (long it = 0; it < n; it++) {
		size_t mlen = len;

		memcpy(m, seed, len);
		switch (next() % 4) {
		case 0: /* bit flips */
			for (uint32_t k = 1 + next() % 4; len && k; k--)
				m[next() % len] ^= (uint8_t)(1u << (next() % 8));
			break;
		case 1: /* random bytes */
			for (uint32_t k = 1 + next() % 8; len && k; k--)
				m[next() % len] = (uint8_t)next();
			break;
		case 2: /* truncation */
			mlen = len ? next() % len : 0;
			break;
		default: /* a u64 field made huge or off by a little */
			if (len >= 8) {
				size_t at = next() % (len - 7);
				uint64_t v = (next() & 1) ? (uint64_t)-1 - next() % 64 : (uint64_t)1 << (next() % 64);

				for (int b = 0; b < 8; b++)
					m[at + b] = (uint8_t)(v >> (8 * b));
			}
		}
		LLVMFuzzerTestOneInput(m, mlen);
	}
	free(m);
}

static int run_file(const char *path, long mutations)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!f) {
		perror(path);
		return -1;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return -1;
	}
	buf = malloc(n ? (size_t)n : 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	mutate_and_run(buf, (size_t)n, mutations);
	free(buf);
	return 0;
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
	printf("fuzz_gguf: %ld inputs, %ld mutations each\n", files, mutations);
	return files > 0 ? 0 : 1;
}

#endif
