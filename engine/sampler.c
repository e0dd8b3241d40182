#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"

struct eng_sampler {
	struct eng_sampler_params p;
	int n_vocab;
	uint64_t rng[4];
	int *last;     /* ring of the last repeat_last_n accepted tokens */
	int n_last, last_pos;
	int *idx;      /* candidate token ids (n_vocab) */
	float *prob;   /* candidate probabilities (n_vocab) */
	unsigned char *seen; /* per-token flag for the penalty (n_vocab) */
};

struct eng_sampler_params eng_sampler_defaults(void)
{
	struct eng_sampler_params p = {
		.temp = 0, .top_k = 0, .top_p = 1.0f, .min_p = 0,
		.repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0,
	};
	return p;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next(uint64_t *s)
{
	uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

float eng_sampler_uniform(struct eng_sampler *s)
{
	return (float)(next(s->rng) >> 40) * (1.0f / 16777216.0f);
}

void eng_sampler_reset(struct eng_sampler *s, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&x);
	s->n_last = 0;
	s->last_pos = 0;
}

void eng_sampler_free(struct eng_sampler *s)
{
	if (!s)
		return;
	free(s->last);
	free(s->idx);
	free(s->prob);
	free(s->seen);
	free(s);
}

struct eng_sampler *eng_sampler_new(const struct eng_sampler_params *p, int n_vocab)
{
	if (!p || n_vocab < 1 || p->repeat_last_n < 0 || isnan(p->temp) ||
	    isnan(p->top_p) || isnan(p->min_p) || !(p->repeat_penalty > 0))
		return NULL;
	struct eng_sampler *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->p = *p;
	if (s->p.repeat_last_n > ENG_SAMPLER_MAX_LAST_N)
		s->p.repeat_last_n = ENG_SAMPLER_MAX_LAST_N;
	s->n_vocab = n_vocab;
	s->last = calloc((size_t)s->p.repeat_last_n + 1, sizeof(int));
	s->idx = calloc((size_t)n_vocab, sizeof(int));
	s->prob = calloc((size_t)n_vocab, sizeof(float));
	s->seen = calloc((size_t)n_vocab, 1);
	if (!s->last || !s->idx || !s->prob || !s->seen) {
		eng_sampler_free(s);
		return NULL;
	}
	eng_sampler_reset(s, p->seed);
	return s;
}

void eng_sampler_accept(struct eng_sampler *s, int token)
{
	int cap = s->p.repeat_last_n;
	if (cap == 0 || token < 0 || token >= s->n_vocab)
		return;
	s->last[s->last_pos] = token;
	s->last_pos = (s->last_pos + 1) % cap;
	if (s->n_last < cap)
		s->n_last++;
}

static void apply_penalty(struct eng_sampler *s, float *logits)
{
	float pen = s->p.repeat_penalty;
	if (pen == 1.0f || s->n_last == 0)
		return;
	for (int i = 0; i < s->n_last; i++) {
		int t = s->last[i];
		if (s->seen[t])
			continue;
		s->seen[t] = 1;
		logits[t] = logits[t] > 0 ? logits[t] / pen : logits[t] * pen;
	}
	for (int i = 0; i < s->n_last; i++)
		s->seen[s->last[i]] = 0;
}

/* Moves the <k> largest of idx[0..n) by logit to the front, sorted
 * descending (quickselect, then insertion sort of the front). */
static void top_sorted(int *idx, int n, int k, const float *logits)
{
	int lo = 0, hi = n - 1;
	while (lo < hi) {
		float pivot = logits[idx[(lo + hi) / 2]];
		int i = lo, j = hi;
		while (i <= j) {
			while (logits[idx[i]] > pivot) i++;
			while (logits[idx[j]] < pivot) j--;
			if (i <= j) {
				int t = idx[i]; idx[i] = idx[j]; idx[j] = t;
				i++; j--;
			}
		}
		if (k - 1 <= j)
			hi = j;
		else if (k - 1 >= i)
			lo = i;
		else
			break;
	}
	for (int i = 1; i < k; i++) {
		int v = idx[i], j = i - 1;
		while (j >= 0 && logits[idx[j]] < logits[v]) {
			idx[j + 1] = idx[j];
			j--;
		}
		idx[j + 1] = v;
	}
}

int eng_sampler_sample(struct eng_sampler *s, float *logits)
{
	int n = s->n_vocab;
	apply_penalty(s, logits);
	if (s->p.temp <= 0) {
		int best = 0;
		for (int i = 1; i < n; i++)
			if (logits[i] > logits[best])
				best = i;
		return best;
	}
	for (int i = 0; i < n; i++)
		s->idx[i] = i;
	int k = (s->p.top_k > 0 && s->p.top_k < n) ? s->p.top_k : n;
	/* A full sort of a large vocabulary costs; top-p and min-p only need
	 * the head, so sort at most 1024 unless top-k asks for more. */
	int m = k;
	if (m > 1024 && s->p.top_k <= 0)
		m = 1024;
	top_sorted(s->idx, n, m, logits);
	/* Probabilities (before temperature) over all k candidates. */
	float mx = logits[s->idx[0]];
	double sum = 0;
	for (int i = 0; i < k; i++) {
		float l = logits[s->idx[i]];
		s->prob[i] = expf(l - mx);
		sum += s->prob[i];
	}
	int keep = k;
	if (s->p.top_p < 1.0f) {
		/* Beyond the sorted head the order is unknown: keep all. */
		double cum = 0;
		for (int i = 0; i < m; i++) {
			cum += s->prob[i] / sum;
			if (cum >= s->p.top_p) {
				keep = i + 1;
				break;
			}
		}
	}
	if (s->p.min_p > 0) {
		float thr = s->p.min_p * s->prob[0];
		int lim = keep < m ? keep : m;
		int i = 1;
		while (i < lim && s->prob[i] >= thr)
			i++;
		if (i < keep)
			keep = i;
	}
	/* Temperature, then draw. */
	double tot = 0;
	for (int i = 0; i < keep; i++) {
		s->prob[i] = expf((logits[s->idx[i]] - mx) / s->p.temp);
		tot += s->prob[i];
	}
	double r = eng_sampler_uniform(s) * tot, acc = 0;
	for (int i = 0; i < keep; i++) {
		acc += s->prob[i];
		if (r < acc)
			return s->idx[i];
	}
	return s->idx[keep - 1];
}
