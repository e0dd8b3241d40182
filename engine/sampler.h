/* Token sampling from a logit vector: greedy, temperature, top-k, top-p,
 * min-p and a repetition penalty over the last tokens, with its own seeded
 * PRNG (xoshiro256**) so runs are reproducible. Buffers are sized at
 * creation; sampling allocates nothing. */
#ifndef LW_ENGINE_SAMPLER_H
#define LW_ENGINE_SAMPLER_H

#include <stdint.h>

#define ENG_SAMPLER_MAX_LAST_N 4096

struct eng_sampler_params {
	float temp;           /* <= 0: greedy (argmax) */
	int top_k;            /* <= 0: off */
	float top_p;          /* >= 1: off */
	float min_p;          /* <= 0: off */
	float repeat_penalty; /* 1: off; > 1 discourages recent tokens */
	int repeat_last_n;    /* tokens the penalty looks back (cap MAX_LAST_N) */
	uint64_t seed;
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

#endif
