/* A GGUF model served in-process (co-resident mode): the file, its
 * tokenizer, the weights, the chat template and the scheduler thread
 * (engine/sched.h), loaded once at start-up and shared by every answer the
 * engine source (source_engine.c) starts on it. The engine knows nothing of
 * libevent; this module knows nothing of requests. */
#ifndef LW_PROXY_MODEL_H
#define LW_PROXY_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/chat_template.h"
#include "engine/load.h"
#include "engine/sched.h"
#include "proxy/options.h"

struct eng_tok;

struct px_model {
	char name[PX_MODEL_NAME_MAX]; /* what /v1/models lists and answers carry */
	char path[PX_PATH_MAX];
	struct eng_file *file;
	struct eng_tok *tok;
	struct eng_model *m;
	struct eng_sched *sched;
	struct eng_chat_template tmpl;
	int n_ctx;
	int threads;
};

/* The name a model file is served under when none is given: its file name
 * without the directory and a ".gguf" ending. */
void px_model_default_name(const char *path, char *out, size_t outlen);

/* What start-up would refuse about the model file <path> under <o>'s
 * engine.* settings, without building the weights: the file opens and
 * parses as GGUF, its architecture is one the engine runs, its tokenizer
 * builds and its chat template is known (or engine.template names one).
 * Returns 0, or -1 with <err>. */
int px_model_check(const struct px_options *o, const char *path, char *err, size_t errlen);

/* Loads <path> under <o>'s engine.* settings and starts its scheduler;
 * served as <name> ("" : the file's name). NULL with <err>. */
struct px_model *px_model_load(const struct px_options *o, const char *path, const char *name,
                               char *err, size_t errlen);
/* Stops the scheduler (answers still running end "cancelled"; the engine
 * source frees its requests before) and unloads. NULL is a no-op. */
void px_model_free(struct px_model *pm);

#endif
