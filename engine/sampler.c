#include <math.h>
#include <stdio.h>
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
	uint16_t *count; /* per-token occurrences in the window, for the penalties (n_vocab) */
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
	free(s->count);
	free(s);
}

struct eng_sampler *eng_sampler_new(const struct eng_sampler_params *p, int n_vocab)
{
	if (!p || n_vocab < 1 || p->repeat_last_n < 0 || isnan(p->temp) ||
	    isnan(p->top_p) || isnan(p->min_p) || !(p->repeat_penalty > 0) ||
	    !isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty))
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
	s->count = calloc((size_t)n_vocab, sizeof(*s->count));
	if (!s->last || !s->idx || !s->prob || !s->count) {
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

/* The repetition penalty (llama.cpp's: divide a positive logit, multiply a
 * negative one) and OpenAI's frequency and presence penalties, once per
 * distinct token of the window. */
static void apply_penalty(struct eng_sampler *s, float *logits)
{
	float pen = s->p.repeat_penalty, fp = s->p.frequency_penalty, pp = s->p.presence_penalty;
	if ((pen == 1.0f && fp == 0 && pp == 0) || s->n_last == 0)
		return;
	for (int i = 0; i < s->n_last; i++)
		s->count[s->last[i]]++; /* at most MAX_LAST_N: fits 16 bits */
	for (int i = 0; i < s->n_last; i++) {
		int t = s->last[i];
		if (!s->count[t])
			continue; /* done already */
		if (pen != 1.0f)
			logits[t] = logits[t] > 0 ? logits[t] / pen : logits[t] * pen;
		logits[t] -= (float)s->count[t] * fp + pp;
		s->count[t] = 0;
	}
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

/* ---- a request's sampling fields ---------------------------------------------------- */

/* <v> of field <name> must lie in the range written <lo_open><lo>, <hi><hi_open>. */
static bool in_range(double v, double lo, bool lo_open, double hi, bool hi_open, const char *name,
                     char *err, size_t errlen)
{
	if (!isfinite(v)) {
		snprintf(err, errlen, "'%s' must be a finite number", name);
		return false;
	}
	if ((lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi))
		return true;
	snprintf(err, errlen, "'%s' must be in %c%g, %g%c, got %g", name, lo_open ? '(' : '[', lo,
	         hi, hi_open ? ')' : ']', v);
	return false;
}

static bool int_range(int64_t v, int64_t lo, int64_t hi, const char *name, char *err,
                      size_t errlen)
{
	if (v >= lo && v <= hi)
		return true;
	snprintf(err, errlen, "'%s' must be in [%lld, %lld], got %lld", name, (long long)lo,
	         (long long)hi, (long long)v);
	return false;
}

enum eng_status eng_sampling_from_request(const struct eng_sampling_request *req,
                                          const struct eng_sampler_params *defaults,
                                          struct eng_gen_params *out, char *err, size_t errlen)
{
	char dummy[8];
	struct eng_sampler_params *sp;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (!req || !out || (req->n_stop && !req->stop)) {
		snprintf(err, errlen, "missing request");
		return ENG_ERR_ARG;
	}
	memset(out, 0, sizeof(*out));
	out->sampler = defaults ? *defaults : eng_sampler_defaults();
	sp = &out->sampler;
#define NUM(f, lo, lo_open, hi, hi_open, dst)                                         \
	if (req->f.set) {                                                              \
		if (!in_range(req->f.v, lo, lo_open, hi, hi_open, #f, err, errlen))    \
			return ENG_ERR_RANGE;                                          \
		dst = (float)req->f.v;                                                 \
	}
	NUM(temperature, 0, false, 2, false, sp->temp)
	NUM(top_p, 0, true, 1, false, sp->top_p)
	NUM(min_p, 0, false, 1, false, sp->min_p)
	NUM(frequency_penalty, -2, false, 2, false, sp->frequency_penalty)
	NUM(presence_penalty, -2, false, 2, false, sp->presence_penalty)
	NUM(repeat_penalty, 0, true, 10, false, sp->repeat_penalty)
#undef NUM
	if (req->top_k.set) {
		if (!int_range(req->top_k.v, 0, INT32_MAX, "top_k", err, errlen))
			return ENG_ERR_RANGE;
		sp->top_k = (int)req->top_k.v;
	}
	if (req->seed.set)
		sp->seed = (uint64_t)req->seed.v;
	if (req->max_tokens.set &&
	    !int_range(req->max_tokens.v, 1, ENG_SAMPLING_MAX_TOKENS, "max_tokens", err, errlen))
		return ENG_ERR_RANGE;
	if (req->max_completion_tokens.set &&
	    !int_range(req->max_completion_tokens.v, 1, ENG_SAMPLING_MAX_TOKENS,
	               "max_completion_tokens", err, errlen))
		return ENG_ERR_RANGE;
	out->max_tokens = req->max_completion_tokens.set ? req->max_completion_tokens.v
	                  : req->max_tokens.set          ? req->max_tokens.v
	                                                 : 0;
	if (req->n_stop > ENG_STOP_MAX) {
		snprintf(err, errlen, "'stop' may hold at most %d strings, got %u", ENG_STOP_MAX,
		         req->n_stop);
		return ENG_ERR_LIMIT;
	}
	for (uint32_t i = 0; i < req->n_stop; i++) {
		if (!req->stop[i].ptr || req->stop[i].len == 0) {
			snprintf(err, errlen, "'stop[%u]' must not be empty", i);
			return ENG_ERR_RANGE;
		}
		if (req->stop[i].len > ENG_STOP_LEN_MAX) {
			snprintf(err, errlen, "'stop[%u]' is %zu bytes long, at most %d", i,
			         req->stop[i].len, ENG_STOP_LEN_MAX);
			return ENG_ERR_LIMIT;
		}
		out->stop[i] = req->stop[i];
	}
	out->n_stop = req->n_stop;
	return ENG_OK;
}
