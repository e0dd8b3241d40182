#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant.h"
#include "tests/ref/ref.h"

struct ref_layer {
	float *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *qn, *kn;
	float *ffn_norm, *gate, *up, *down;
};

struct ref_model {
	int neox, n_vocab, E, L, H, HKV, D, F, n_rot, n_ctx;
	float base, eps;
	float *embd, *onorm, *out;
	struct ref_layer *l;
	float *kc, *vc; /* (L, n_ctx, HKV*D) */
	float *x, *xn, *q, *k, *v, *att, *h1, *h2, *tmp, *sc;
};

static float *deq(const struct eng_gguf *g, const char *name, size_t n, int *ok)
{
	const struct eng_tensor *t = eng_gguf_tensor(g, name);
	if (!t || t->n_elements != n || !eng_qtype_supported(t->type)) {
		*ok = 0;
		return NULL;
	}
	float *f = malloc(n * sizeof(float));
	if (!f) {
		*ok = 0;
		return NULL;
	}
	size_t cols = (size_t)t->dims[0], rb = eng_qtype_row_bytes((enum eng_qtype)t->type, cols);
	for (size_t r = 0; r < n / cols; r++)
		eng_dequantize_row((enum eng_qtype)t->type, (const char *)t->data + r * rb,
				   f + r * cols, cols);
	return f;
}

static int geti(const struct eng_gguf *g, const char *arch, const char *k, int def)
{
	char key[128];
	uint32_t v;
	snprintf(key, sizeof(key), "%s.%s", arch, k);
	return eng_gguf_get_u32(g, key, &v) == ENG_OK ? (int)v : def;
}

static float getf(const struct eng_gguf *g, const char *arch, const char *k, float def)
{
	char key[128];
	float v;
	snprintf(key, sizeof(key), "%s.%s", arch, k);
	return eng_gguf_get_f32(g, key, &v) == ENG_OK ? v : def;
}

void ref_model_free(struct ref_model *m)
{
	if (!m)
		return;
	for (int i = 0; m->l && i < m->L; i++) {
		struct ref_layer *l = &m->l[i];
		float *all[] = {l->attn_norm, l->wq, l->wk, l->wv, l->wo, l->bq, l->bk, l->bv,
				l->qn, l->kn, l->ffn_norm, l->gate, l->up, l->down};
		for (size_t j = 0; j < sizeof(all) / sizeof(all[0]); j++)
			free(all[j]);
	}
	free(m->l);
	if (m->out != m->embd)
		free(m->out);
	free(m->embd);
	free(m->onorm);
	free(m->kc); free(m->vc); free(m->x); free(m->xn); free(m->q); free(m->k);
	free(m->v); free(m->att); free(m->h1); free(m->h2); free(m->tmp); free(m->sc);
	free(m);
}

struct ref_model *ref_model_new(const struct eng_gguf *g, int n_ctx, char *err, size_t err_len)
{
	struct eng_str s;
	char arch[16];
	int ok = 1;
	if (eng_gguf_get_str(g, "general.architecture", &s) != ENG_OK || s.len >= sizeof(arch)) {
		snprintf(err, err_len, "no architecture");
		return NULL;
	}
	memcpy(arch, s.ptr, s.len);
	arch[s.len] = 0;
	struct ref_model *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->neox = strcmp(arch, "llama") != 0;
	m->E = geti(g, arch, "embedding_length", 0);
	m->L = geti(g, arch, "block_count", 0);
	m->H = geti(g, arch, "attention.head_count", 1);
	m->HKV = geti(g, arch, "attention.head_count_kv", m->H);
	m->D = geti(g, arch, "attention.key_length", m->E / m->H);
	m->F = geti(g, arch, "feed_forward_length", 0);
	m->n_rot = geti(g, arch, "rope.dimension_count", m->D);
	m->base = getf(g, arch, "rope.freq_base", 10000.0f);
	m->eps = getf(g, arch, "attention.layer_norm_rms_epsilon", 1e-5f);
	m->n_ctx = n_ctx;
	const struct eng_tensor *te = eng_gguf_tensor(g, "token_embd.weight");
	if (!te) {
		snprintf(err, err_len, "no token_embd");
		ref_model_free(m);
		return NULL;
	}
	m->n_vocab = (int)te->dims[1];
	size_t E = (size_t)m->E, QD = (size_t)m->H * m->D, KVD = (size_t)m->HKV * m->D;
	size_t F = (size_t)m->F, V = (size_t)m->n_vocab;
	m->embd = deq(g, "token_embd.weight", V * E, &ok);
	m->onorm = deq(g, "output_norm.weight", E, &ok);
	m->out = eng_gguf_tensor(g, "output.weight") ? deq(g, "output.weight", V * E, &ok) : m->embd;
	m->l = calloc((size_t)m->L, sizeof(*m->l));
	char nm[64];
#define T(field, suffix, n) \
	(snprintf(nm, sizeof(nm), "blk.%d.%s", i, suffix), l->field = deq(g, nm, n, &ok))
	for (int i = 0; m->l && i < m->L; i++) {
		struct ref_layer *l = &m->l[i];
		T(attn_norm, "attn_norm.weight", E);
		T(wq, "attn_q.weight", QD * E);
		T(wk, "attn_k.weight", KVD * E);
		T(wv, "attn_v.weight", KVD * E);
		T(wo, "attn_output.weight", E * QD);
		T(ffn_norm, "ffn_norm.weight", E);
		T(gate, "ffn_gate.weight", F * E);
		T(up, "ffn_up.weight", F * E);
		T(down, "ffn_down.weight", E * F);
		if (!strcmp(arch, "qwen2")) {
			T(bq, "attn_q.bias", QD);
			T(bk, "attn_k.bias", KVD);
			T(bv, "attn_v.bias", KVD);
		}
		if (!strcmp(arch, "qwen3")) {
			T(qn, "attn_q_norm.weight", (size_t)m->D);
			T(kn, "attn_k_norm.weight", (size_t)m->D);
		}
	}
#undef T
	size_t kv = (size_t)m->L * (size_t)n_ctx * KVD;
	m->kc = calloc(kv, sizeof(float));
	m->vc = calloc(kv, sizeof(float));
	m->x = calloc(E, sizeof(float));
	m->xn = calloc(E > QD ? E : QD, sizeof(float));
	m->q = calloc(QD, sizeof(float));
	m->k = calloc(KVD, sizeof(float));
	m->v = calloc(KVD, sizeof(float));
	m->att = calloc(QD, sizeof(float));
	m->h1 = calloc(F, sizeof(float));
	m->h2 = calloc(F, sizeof(float));
	m->tmp = calloc(E, sizeof(float));
	m->sc = calloc((size_t)n_ctx, sizeof(float));
	if (!ok || !m->l || !m->kc || !m->vc || !m->sc || !m->tmp) {
		snprintf(err, err_len, "missing tensor, unsupported type or no memory");
		ref_model_free(m);
		return NULL;
	}
	return m;
}

int ref_model_n_vocab(const struct ref_model *m) { return m->n_vocab; }

/* y (rows) = W (rows x cols, row-major) x */
static void matvec(float *y, const float *w, const float *x, size_t rows, size_t cols)
{
	for (size_t r = 0; r < rows; r++) {
		double s = 0;
		for (size_t c = 0; c < cols; c++)
			s += (double)w[r * cols + c] * x[c];
		y[r] = (float)s;
	}
}

static void rmsnorm(float *o, const float *x, const float *w, size_t n, float eps)
{
	double ss = 0;
	for (size_t i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	double inv = 1.0 / sqrt(ss / (double)n + eps);
	for (size_t i = 0; i < n; i++)
		o[i] = (float)(x[i] * inv * w[i]);
}

/* Rotates pairs of one head: (2i, 2i+1) for llama, (i, i+n_rot/2) for NEOX. */
static void rope(const struct ref_model *m, float *v, int pos)
{
	int half = m->n_rot / 2;
	for (int i = 0; i < half; i++) {
		double theta = pos * pow(m->base, -2.0 * i / m->n_rot);
		double c = cos(theta), s = sin(theta);
		int a = m->neox ? i : 2 * i, b = m->neox ? i + half : 2 * i + 1;
		double x0 = v[a], x1 = v[b];
		v[a] = (float)(x0 * c - x1 * s);
		v[b] = (float)(x0 * s + x1 * c);
	}
}

void ref_model_eval(struct ref_model *m, int32_t token, int pos, float *logits)
{
	size_t E = (size_t)m->E, D = (size_t)m->D, QD = (size_t)m->H * D;
	size_t KVD = (size_t)m->HKV * D, F = (size_t)m->F;
	memcpy(m->x, m->embd + (size_t)token * E, E * sizeof(float));
	for (int li = 0; li < m->L; li++) {
		struct ref_layer *l = &m->l[li];
		rmsnorm(m->xn, m->x, l->attn_norm, E, m->eps);
		matvec(m->q, l->wq, m->xn, QD, E);
		matvec(m->k, l->wk, m->xn, KVD, E);
		matvec(m->v, l->wv, m->xn, KVD, E);
		if (l->bq) {
			for (size_t i = 0; i < QD; i++)
				m->q[i] += l->bq[i];
			for (size_t i = 0; i < KVD; i++) {
				m->k[i] += l->bk[i];
				m->v[i] += l->bv[i];
			}
		}
		for (int h = 0; h < m->H; h++) {
			if (l->qn)
				rmsnorm(m->q + h * D, m->q + h * D, l->qn, D, m->eps);
			rope(m, m->q + h * D, pos);
		}
		for (int h = 0; h < m->HKV; h++) {
			if (l->kn)
				rmsnorm(m->k + h * D, m->k + h * D, l->kn, D, m->eps);
			rope(m, m->k + h * D, pos);
		}
		float *kc = m->kc + (size_t)li * m->n_ctx * KVD, *vc = m->vc + (size_t)li * m->n_ctx * KVD;
		memcpy(kc + (size_t)pos * KVD, m->k, KVD * sizeof(float));
		memcpy(vc + (size_t)pos * KVD, m->v, KVD * sizeof(float));
		for (int h = 0; h < m->H; h++) {
			int kh = h / (m->H / m->HKV);
			double mx = -1e300, sum = 0;
			for (int j = 0; j <= pos; j++) {
				double s = 0;
				for (size_t d = 0; d < D; d++)
					s += (double)m->q[h * D + d] * kc[(size_t)j * KVD + kh * D + d];
				m->sc[j] = (float)(s / sqrt((double)D));
				mx = m->sc[j] > mx ? m->sc[j] : mx;
			}
			for (int j = 0; j <= pos; j++)
				sum += exp(m->sc[j] - mx);
			for (size_t d = 0; d < D; d++) {
				double o = 0;
				for (int j = 0; j <= pos; j++)
					o += exp(m->sc[j] - mx) / sum * vc[(size_t)j * KVD + kh * D + d];
				m->att[h * D + d] = (float)o;
			}
		}
		matvec(m->tmp, l->wo, m->att, E, QD);
		for (size_t i = 0; i < E; i++)
			m->x[i] += m->tmp[i];
		rmsnorm(m->xn, m->x, l->ffn_norm, E, m->eps);
		matvec(m->h1, l->gate, m->xn, F, E);
		matvec(m->h2, l->up, m->xn, F, E);
		for (size_t i = 0; i < F; i++)
			m->h1[i] = (float)(m->h1[i] / (1.0 + exp(-(double)m->h1[i])) * m->h2[i]);
		matvec(m->tmp, l->down, m->h1, E, F);
		for (size_t i = 0; i < E; i++)
			m->x[i] += m->tmp[i];
	}
	rmsnorm(m->xn, m->x, m->onorm, E, m->eps);
	matvec(logits, m->out, m->xn, (size_t)m->n_vocab, E);
}
