/* Token sampling from a logit vector: greedy, temperature, top-k, top-p,
 * min-p, a repetition penalty and OpenAI's frequency / presence penalties
 * over the last tokens, with its own seeded PRNG (xoshiro256**) so runs are
 * reproducible. Buffers are sized at creation; sampling allocates nothing.
 * eng_sampling_from_request checks a request's sampling fields. */
#ifndef LW_ENGINE_SAMPLER_H
#define LW_ENGINE_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"
#include "engine/stop.h"

#define ENG_SAMPLER_MAX_LAST_N 4096

struct eng_sampler_params {
	float temp;           /* <= 0: greedy (argmax) */
	int top_k;            /* <= 0: off */
	float top_p;          /* >= 1: off */
	float min_p;          /* <= 0: off */
	float repeat_penalty; /* 1: off; > 1 discourages recent tokens */
	int repeat_last_n;    /* tokens the penalties look back (cap MAX_LAST_N) */
	uint64_t seed;
	float frequency_penalty; /* 0: off; logit -= count in the window × this */
	float presence_penalty;  /* 0: off; logit -= this once for a token in the window */
};

/* Greedy, no penalty, seed 0. */
struct eng_sampler_params eng_sampler_defaults(void);

struct eng_sampler;

/* A sampler for a vocabulary of <n_vocab> tokens; NULL on bad params or
 * allocation failure. <p> is copied. */
struct eng_sampler *eng_sampler_new(const struct eng_sampler_params *p, int n_vocab);
void eng_sampler_free(struct eng_sampler *s); /* NULL is a no-op */

/* Picks a token from <logits> (<n_vocab> floats; modified in place by the
 * penalty). Does not record it: call eng_sampler_accept with the token the
 * caller keeps (prompt tokens too, for the penalty). */
int eng_sampler_sample(struct eng_sampler *s, float *logits);
void eng_sampler_accept(struct eng_sampler *s, int token);
/* Forgets the history and reseeds the PRNG with <seed>. */
void eng_sampler_reset(struct eng_sampler *s, uint64_t seed);

/* A uniform float in [0, 1) from the sampler's PRNG (exposed for tests). */
float eng_sampler_uniform(struct eng_sampler *s);

/* ---- a request's sampling fields --------------------------------------------- */

/* A field as the client gave it: <set> false when absent or null. */
struct eng_opt_num {
	bool set;
	double v;
};
struct eng_opt_int {
	bool set;
	int64_t v;
};

/* The sampling fields of a chat-completions request, as read (types already
 * checked by the request reader; this checks the values). */
struct eng_sampling_request {
	struct eng_opt_num temperature, top_p, min_p;
	struct eng_opt_num frequency_penalty, presence_penalty, repeat_penalty;
	struct eng_opt_int top_k, seed, max_tokens, max_completion_tokens;
	const struct eng_str *stop; /* "stop": a string counts as a list of one */
	uint32_t n_stop;
};

#define ENG_SAMPLING_MAX_TOKENS INT32_MAX /* largest max_tokens accepted */

/* What a request asks of the engine. */
struct eng_gen_params {
	struct eng_sampler_params sampler;
	int64_t max_tokens;                  /* 0: not limited by the request */
	uint32_t n_stop;
	struct eng_str stop[ENG_STOP_MAX];   /* borrowed from the request */
};

/* Checks <req> and fills <out>: fields the request leaves out come from
 * <defaults> (NULL: eng_sampler_defaults()). A value out of range is
 * ENG_ERR_RANGE (ENG_ERR_LIMIT for too many or too long stop strings) with
 * <err> naming the field and the allowed range, ready for a 400:
 *   temperature [0, 2]; top_p (0, 1]; min_p [0, 1]; top_k [0, 2^31-1];
 *   frequency_penalty and presence_penalty [-2, 2]; repeat_penalty (0, 10];
 *   max_tokens and max_completion_tokens [1, 2^31-1] (the latter wins
 *   when both are given); stop: at most ENG_STOP_MAX strings of 1 to
 *   ENG_STOP_LEN_MAX bytes; seed: any integer.
 * e.g. "'top_p' must be in (0, 1], got 1.5". */
ENG_WUR enum eng_status eng_sampling_from_request(const struct eng_sampling_request *req,
                                                  const struct eng_sampler_params *defaults,
                                                  struct eng_gen_params *out, char *err,
                                                  size_t errlen);

#endif
