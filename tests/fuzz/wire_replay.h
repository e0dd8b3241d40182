/* main() for the wire fuzz targets when they are not built for libFuzzer:
 * replays every seed file given (files or folders), then <-m N> deterministic
 * mutations of each (bit flips, random bytes, truncation, inserted SSE/JSON/
 * YAML tokens), so ctest exercises the parsers without clang. Include once,
 * after defining LLVMFuzzerTestOneInput. */
#ifndef LW_TESTS_FUZZ_WIRE_REPLAY_H
#define LW_TESTS_FUZZ_WIRE_REPLAY_H

#ifndef LW_LIBFUZZER

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REPLAY_MAX_INPUT (1u << 20)

static uint64_t replay_rng = 0x2545f4914f6cdd1dull;

static uint32_t replay_next(void)
{
	replay_rng = replay_rng * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(replay_rng >> 33);
}

static const char *const replay_tokens[] = {
	"\n", "\r", "\r\n", "\n\n", ":", "data:", "data: ", "[DONE]", "event: x\n", "id: 1\n",
	"{", "}", "[", "]", "\"", "\\", "\\u0000", "\\ud800", ",", "null", "0", "-1", "1e999",
	"\"choices\":", "\"tool_calls\":[", "\"index\":", "\"id\":\"", "\"arguments\":\"",
	"\"usage\":{", "\"error\":", "\xff", "\xc3", "  ", "- ", "? ", "&a ", "*a", "!!str ", "---\n",
	"key: ", "'", "|\n", ">\n", "#",
};

static void replay_mutate_run(const uint8_t *seed, size_t len, long n)
{
	uint8_t *m = malloc(2 * len + 64);

	if (!m)
		return;
	for (long it = 0; it < n; it++) {
		size_t mlen = len;

		memcpy(m, seed, len);
		switch (replay_next() % 4) {
		case 0:
			for (uint32_t k = 1 + replay_next() % 4; len && k; k--)
				m[replay_next() % len] ^= (uint8_t)(1u << (replay_next() % 8));
			break;
		case 1:
			for (uint32_t k = 1 + replay_next() % 8; len && k; k--)
				m[replay_next() % len] = (uint8_t)replay_next();
			break;
		case 2:
			mlen = len ? replay_next() % len : 0;
			break;
		default: {
			const char *t = replay_tokens[replay_next() % (sizeof(replay_tokens) / sizeof(replay_tokens[0]))];
			size_t tl = strlen(t), at = len ? replay_next() % (len + 1) : 0;

			if (len + tl > 2 * len + 64)
				break;
			memmove(m + at + tl, m + at, len - at);
			memcpy(m + at, t, tl);
			mlen = len + tl;
		}
		}
		LLVMFuzzerTestOneInput(m, mlen);
	}
	free(m);
}

static int replay_file(const char *path, long mutations)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = malloc(REPLAY_MAX_INPUT);
	size_t n;
	int rc = -1;

	if (!f || !buf) {
		perror(path);
		goto out;
	}
	n = fread(buf, 1, REPLAY_MAX_INPUT, f);
	LLVMFuzzerTestOneInput(buf, n);
	replay_mutate_run(buf, n, mutations);
	rc = 0;
out:
	free(buf);
	if (f)
		fclose(f);
	return rc;
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
				if (replay_file(p, mutations) != 0) {
					closedir(d);
					return 1;
				}
				files++;
			}
			closedir(d);
		} else {
			if (replay_file(argv[i], mutations) != 0)
				return 1;
			files++;
		}
	}
	printf("%s: %ld inputs, %ld mutations each\n", argv[0], files, mutations);
	return files > 0 ? 0 : 1;
}

#endif
#endif
