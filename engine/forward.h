/* One forward step of a llama-family model over a batch of token runs
 * ("segments") from several sequences: prefill chunks and single decode
 * tokens mixed. Every weight matrix is read once per step for all tokens of
 * the batch; attention runs per sequence over its own KV span; logits are
 * computed only for the segments that ask (the last token of each). The
 * graph is here, the arithmetic in the model's backend.
 *
 * A compute context holds the per-step scratch (activations, attention
 * scores, logits) and, on the CPU, the thread pool. It is owned by whoever
 * runs the steps — the scheduler, or `generate` — and used by one thread at
 * a time; the model and the KV pool it reads may be shared. Steps allocate
 * nothing. */
#ifndef LW_ENGINE_FORWARD_H
#define LW_ENGINE_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"
#include "engine/kv.h"

#define ENG_FORWARD_MAX_TOKENS 4096
#define ENG_FORWARD_DEFAULT_TOKENS 256

struct eng_model;

/* <n> tokens of one sequence at positions <pos>..<pos>+<n>-1. Positions
 * below <pos> must already be in <seq>'s cells (written by earlier steps
 * or by an earlier segment of the same batch); a smaller <pos> than before
 * rewinds. With <logits> set, the logits of the last token are computed. */
struct eng_batch_seg {
	const struct eng_seq *seq;
	int pos;
	int n;
	const int32_t *tokens;
	int logits;
};

struct eng_batch {
	const struct eng_batch_seg *seg;
	int n_seg;
};

struct eng_compute_opts {
	int n_threads;  /* 0 → 1 (the calling thread is one of them) */
	int max_tokens; /* most tokens per step, all segments; 0 → ENG_FORWARD_DEFAULT_TOKENS */
	int max_logits; /* most segments with logits per step; 0 → 1 (capped at max_tokens) */
	int max_ctx;    /* most positions of one sequence (attention scratch) */
};

struct eng_compute;

ENG_WUR enum eng_status eng_compute_new(const struct eng_model *m,
					const struct eng_compute_opts *o,
					struct eng_compute **out, char *err, size_t err_len);
void eng_compute_free(struct eng_compute *c); /* NULL is a no-op */
int eng_compute_max_tokens(const struct eng_compute *c);
int eng_compute_max_logits(const struct eng_compute *c);
int eng_compute_max_ctx(const struct eng_compute *c);

/* Runs batch <b> against pool <kv> (of the same model). ENG_ERR_RANGE (and
 * nothing computed) when a token id is outside the vocabulary, a segment
 * reaches past its sequence's span or max_ctx, or the batch exceeds
 * max_tokens / max_logits; <err> names the segment and the value. */
ENG_WUR enum eng_status eng_forward(struct eng_compute *c, struct eng_kv *kv,
				    const struct eng_batch *b, char *err, size_t err_len);
/* The n_vocab logits of the <i>-th segment (in batch order) of the last
 * step that asked for them; owned by <c>, valid until its next step. */
const float *eng_compute_logits(const struct eng_compute *c, int i);

/* One sequence alone: feeds <n> tokens at <pos>.. in steps of at most
 * max_tokens and sets *<logits> to the last token's (as eng_compute_logits). */
ENG_WUR enum eng_status eng_forward_seq(struct eng_compute *c, struct eng_kv *kv,
					const struct eng_seq *seq, const int32_t *tokens, int n,
					int pos, const float **logits, char *err, size_t err_len);

#endif
