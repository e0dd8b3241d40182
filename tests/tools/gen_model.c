/* gen_model: writes a llama/qwen2/qwen3 GGUF with seeded random weights.
 *   gen_model -o OUT.gguf [--preset tiny|tiny256|100m] [--arch llama|qwen2|qwen3]
 *             [--type F32|F16|BF16|Q8_0|Q4_0|Q4_K|Q6_K] [--vocab VOCAB.gguf]
 *             [--seed N] [--tied|--untied] [--layers N] [--embd N] [--ff N]
 *             [--heads N] [--kv-heads N] [--head-dim N] [--ctx N]
 * Exit status 0 on success, 2 on bad arguments or a failed write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant.h"
#include "tests/tools/genmodel.h"

static int parse_type(const char *s, enum eng_type *t)
{
	static const enum eng_qtype all[] = {ENG_QT_F32, ENG_QT_F16, ENG_QT_BF16, ENG_QT_Q8_0,
					     ENG_QT_Q4_0, ENG_QT_Q4_K, ENG_QT_Q6_K};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!strcasecmp(s, eng_qtype_name(all[i]))) {
			*t = (enum eng_type)all[i];
			return 0;
		}
	return -1;
}

static int num(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (end == s || *end || v < 1 || v > (1 << 20))
		return -1;
	*out = (int)v;
	return 0;
}

int main(int argc, char **argv)
{
	struct gm_spec s;
	const char *out = NULL, *preset = "tiny";
	char err[512] = "";
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--preset") && i + 1 < argc)
			preset = argv[i + 1];
	if (gm_preset(preset, &s)) {
		fprintf(stderr, "gen_model: unknown preset %s\n", preset);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 0;
		if (!strcmp(a, "--tied")) {
			s.tied = 1;
			continue;
		}
		if (!strcmp(a, "--untied")) {
			s.tied = 0;
			continue;
		}
		if (!v) {
			fprintf(stderr, "gen_model: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "-o") || !strcmp(a, "--out"))
			out = v;
		else if (!strcmp(a, "--preset"))
			;
		else if (!strcmp(a, "--arch"))
			s.arch = v;
		else if (!strcmp(a, "--type"))
			bad = parse_type(v, &s.type);
		else if (!strcmp(a, "--vocab"))
			s.vocab_path = v;
		else if (!strcmp(a, "--seed"))
			s.seed = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--layers"))
			bad = num(v, &s.n_layer);
		else if (!strcmp(a, "--embd"))
			bad = num(v, &s.n_embd);
		else if (!strcmp(a, "--ff"))
			bad = num(v, &s.n_ff);
		else if (!strcmp(a, "--heads"))
			bad = num(v, &s.n_head);
		else if (!strcmp(a, "--kv-heads"))
			bad = num(v, &s.n_head_kv);
		else if (!strcmp(a, "--head-dim"))
			bad = num(v, &s.head_dim);
		else if (!strcmp(a, "--ctx"))
			bad = num(v, &s.n_ctx);
		else {
			fprintf(stderr, "gen_model: unknown option %s\n", a);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "gen_model: bad value for %s: %s\n", a, v);
			return 2;
		}
	}
	if (!out) {
		fprintf(stderr, "usage: gen_model -o OUT.gguf [--preset tiny|tiny256|100m] "
			"[--arch A] [--type T] [--vocab V.gguf] [--seed N] ...\n");
		return 2;
	}
	struct gm_model *m = NULL;
	if (gm_new(&s, &m, err, sizeof(err)) != ENG_OK) {
		fprintf(stderr, "gen_model: %s\n", err);
		return 2;
	}
	if (gm_write_file(m, out, err, sizeof(err)) != ENG_OK) {
		fprintf(stderr, "gen_model: %s\n", err);
		gm_free(m);
		return 2;
	}
	printf("gen_model: wrote %s: %s %s, %llu parameters\n", out, s.arch,
	       eng_qtype_name((uint32_t)s.type), (unsigned long long)gm_n_params(m));
	gm_free(m);
	return 0;
}
