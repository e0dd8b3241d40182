/* A model served in-process (see model.h). */
#include "proxy/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

#define DEFAULT_THREADS_MAX 8 /* engine.threads 0: online CPUs, at most this */

void px_model_default_name(const char *path, char *out, size_t outlen)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t n = strlen(base);
	if (n > 5 && strcmp(base + n - 5, ".gguf") == 0)
		n -= 5;
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, base, n);
	out[n] = '\0';
}

/* The architecture key against what the engine runs (eng_arch_name): the
 * cheap part of eng_model_new's checks, so --check-config refuses a model
 * start-up would refuse without repacking its weights. */
static int check_arch(const struct eng_gguf *g, char *err, size_t errlen)
{
	struct eng_str a;
	if (eng_gguf_get_str(g, "general.architecture", &a) != ENG_OK) {
		snprintf(err, errlen, "no general.architecture key: not a model file");
		return -1;
	}
	for (int i = 0; i < ENG_ARCH_COUNT; i++) {
		const char *name = eng_arch_name((enum eng_arch)i);
		if (strlen(name) == a.len && memcmp(name, a.ptr, a.len) == 0)
			return 0;
	}
	char list[128] = "";
	for (int i = 0; i < ENG_ARCH_COUNT; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
		         eng_arch_name((enum eng_arch)i));
	snprintf(err, errlen, "architecture '%.*s' is not supported (%s are)", (int)(a.len > 64 ? 64 : a.len),
	         a.ptr, list);
	return -1;
}

int px_model_check(const struct px_options *o, const char *path, char *err, size_t errlen)
{
	struct eng_file *f = NULL;
	struct eng_tok *tok = NULL;
	struct eng_chat_template tmpl;
	char why[512];
	int rc = -1;

	if (eng_file_open(NULL, path, (enum eng_load_strategy)o->engine_load, &f, why,
	                  sizeof(why)) != ENG_OK) {
		snprintf(err, errlen, "%s", why);
		goto out;
	}
	const struct eng_gguf *g = eng_file_gguf(f);
	if (check_arch(g, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto out;
	}
	if (eng_tok_new_from_gguf(g, &tok, why, sizeof(why)) != ENG_OK) {
		snprintf(err, errlen, "%s: tokenizer: %s", path, why);
		goto out;
	}
	if (eng_chat_template_from_gguf(&tmpl, g, (enum eng_chat_family)o->engine_template, why,
	                                sizeof(why)) != ENG_OK) {
		snprintf(err, errlen, "%s: chat template: %s", path, why);
		goto out;
	}
	rc = 0;
out:
	eng_tok_free(tok);
	if (f && eng_file_close(f, why, sizeof(why)) != ENG_OK && rc == 0) {
		snprintf(err, errlen, "%s", why);
		rc = -1;
	}
	return rc;
}

struct px_model *px_model_load(const struct px_options *o, const char *path, const char *name,
                               char *err, size_t errlen)
{
	struct px_model *pm = calloc(1, sizeof(*pm));
	char why[512];
	enum eng_load_strategy load = (enum eng_load_strategy)o->engine_load;

	if (!pm) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(pm->path, sizeof(pm->path), "%s", path);
	if (name && name[0])
		snprintf(pm->name, sizeof(pm->name), "%s", name);
	else
		px_model_default_name(path, pm->name, sizeof(pm->name));
	if (eng_file_open(NULL, path, load, &pm->file, why, sizeof(why)) != ENG_OK) {
		snprintf(err, errlen, "%s", why);
		goto fail;
	}
	const struct eng_gguf *g = eng_file_gguf(pm->file);
	if (eng_tok_new_from_gguf(g, &pm->tok, why, sizeof(why)) != ENG_OK) {
		snprintf(err, errlen, "%s: tokenizer: %s", path, why);
		goto fail;
	}
	if (eng_chat_template_from_gguf(&pm->tmpl, g, (enum eng_chat_family)o->engine_template, why,
	                                sizeof(why)) != ENG_OK) {
		snprintf(err, errlen, "%s: chat template: %s", path, why);
		goto fail;
	}
	struct eng_model_opts mo = {.release_source = load == ENG_LOAD_MMAP};
	if (eng_model_new(g, &mo, &pm->m, why, sizeof(why)) != ENG_OK) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	pm->threads = (int)o->engine_threads;
	if (pm->threads == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		pm->threads = cpus < 1 ? 1 : cpus > DEFAULT_THREADS_MAX ? DEFAULT_THREADS_MAX : (int)cpus;
	}
	struct eng_sched_opts so = {
		.n_threads = pm->threads,
		.n_ctx = (int)o->engine_n_ctx,
		.kv_cells = (int)o->engine_kv_cells,
		.max_seqs = (int)o->engine_max_seqs,
		.max_step_tokens = (int)o->engine_max_step_tokens,
		.max_queue = (int)o->engine_max_queue,
		.tok = pm->tok,
		.file = pm->file,
	};
	if (eng_sched_new(pm->m, &so, &pm->sched, why, sizeof(why)) != ENG_OK) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	pm->n_ctx = eng_sched_n_ctx(pm->sched);
	return pm;
fail:
	px_model_free(pm);
	return NULL;
}

void px_model_free(struct px_model *pm)
{
	if (!pm)
		return;
	char why[512];
	eng_sched_free(pm->sched);
	eng_model_free(pm->m);
	eng_tok_free(pm->tok);
	if (pm->file && eng_file_close(pm->file, why, sizeof(why)) != ENG_OK)
		fprintf(stderr, "loopwarden: %s\n", why);
	free(pm);
}
