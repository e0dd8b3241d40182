#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend_impl.h"
#include "engine/model_int.h"

const char *eng_arch_name(enum eng_arch a)
{
	switch (a) {
	case ENG_ARCH_LLAMA: return "llama";
	case ENG_ARCH_QWEN2: return "qwen2";
	case ENG_ARCH_QWEN3: return "qwen3";
	default: return "?";
	}
}

static void seterr(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t len, const char *fmt, ...)
{
	if (!err || len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* ---- loading ----------------------------------------------------------- */

static enum eng_status get_int(const struct eng_gguf *g, const char *arch,
			       const char *suffix, int required, int *out,
			       char *err, size_t err_len)
{
	char key[128];
	uint32_t v;
	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	enum eng_status st = eng_gguf_get_u32(g, key, &v);
	if (st == ENG_ERR_NOT_FOUND && !required)
		return ENG_OK;
	if (st != ENG_OK) {
		seterr(err, err_len, "metadata key %s: %s", key, eng_strerror(st));
		return st == ENG_ERR_NOT_FOUND ? ENG_ERR_FORMAT : st;
	}
	if (v == 0 || v > (1u << 30)) {
		seterr(err, err_len, "metadata key %s: value %u out of range", key, v);
		return ENG_ERR_RANGE;
	}
	*out = (int)v;
	return ENG_OK;
}

static enum eng_status get_float(const struct eng_gguf *g, const char *arch,
				 const char *suffix, float *out, char *err, size_t err_len)
{
	char key[128];
	float v;
	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	enum eng_status st = eng_gguf_get_f32(g, key, &v);
	if (st == ENG_ERR_NOT_FOUND)
		return ENG_OK;
	if (st != ENG_OK) {
		seterr(err, err_len, "metadata key %s: %s", key, eng_strerror(st));
		return st;
	}
	if (!(v > 0) || isinf(v)) {
		seterr(err, err_len, "metadata key %s: value %g out of range", key, (double)v);
		return ENG_ERR_RANGE;
	}
	*out = v;
	return ENG_OK;
}

static enum eng_status find_tensor(const struct eng_gguf *g, const char *name,
				   int required, const struct eng_tensor **out,
				   char *err, size_t err_len)
{
	*out = eng_gguf_tensor(g, name);
	if (!*out && required) {
		seterr(err, err_len, "missing tensor %s", name);
		return ENG_ERR_FORMAT;
	}
	return ENG_OK;
}

/* A matrix tensor <name> of shape (cols, rows) in GGUF order. */
static enum eng_status load_mat(const struct eng_gguf *g, const char *name,
				int rows, int cols, int required, struct eng_mat *w,
				char *err, size_t err_len)
{
	const struct eng_tensor *t;
	enum eng_status st = find_tensor(g, name, required, &t, err, err_len);
	if (st != ENG_OK || !t)
		return st;
	if (!eng_qtype_supported(t->type)) {
		const char *tn = eng_type_name(t->type);
		seterr(err, err_len, "tensor %s: weight type %s (%u) is not supported "
		       "(F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K are)",
		       name, tn ? tn : "unknown", (unsigned)t->type);
		return ENG_ERR_UNSUPPORTED;
	}
	if (t->n_dims > 2 || t->dims[0] != (uint64_t)cols || t->dims[1] != (uint64_t)rows) {
		seterr(err, err_len, "tensor %s: shape [%llu, %llu] (%u dims), expected [%d, %d]",
		       name, (unsigned long long)t->dims[0],
		       (unsigned long long)t->dims[1], (unsigned)t->n_dims, cols, rows);
		return ENG_ERR_FORMAT;
	}
	w->type = (enum eng_qtype)t->type;
	w->data = t->data;
	w->rows = rows;
	w->cols = cols;
	w->row_bytes = eng_qtype_row_bytes(w->type, (size_t)cols);
	if (w->row_bytes == 0) {
		seterr(err, err_len, "tensor %s: %d columns are not a multiple of the %s block of %zu",
		       name, cols, eng_qtype_name(w->type), eng_qtype_block(w->type));
		return ENG_ERR_FORMAT;
	}
	if ((uint64_t)w->row_bytes * (uint64_t)rows != t->n_bytes) {
		seterr(err, err_len, "tensor %s: %llu bytes, expected %llu", name,
		       (unsigned long long)t->n_bytes,
		       (unsigned long long)w->row_bytes * (unsigned long long)rows);
		return ENG_ERR_FORMAT;
	}
	return ENG_OK;
}

/* A vector tensor <name> of <n> values, converted to an owned float copy. */
static enum eng_status load_vec(const struct eng_gguf *g, const char *name, int n,
				int required, float **out, char *err, size_t err_len)
{
	const struct eng_tensor *t;
	enum eng_status st = find_tensor(g, name, required, &t, err, err_len);
	if (st != ENG_OK || !t)
		return st;
	if (t->type != ENG_TYPE_F32 && t->type != ENG_TYPE_F16 && t->type != ENG_TYPE_BF16) {
		const char *tn = eng_type_name(t->type);
		seterr(err, err_len, "tensor %s: type %s is not supported for a vector "
		       "(F32, F16, BF16 are)", name, tn ? tn : "unknown");
		return ENG_ERR_UNSUPPORTED;
	}
	if (t->n_elements != (uint64_t)n || t->dims[0] != (uint64_t)n) {
		seterr(err, err_len, "tensor %s: %llu elements, expected %d", name,
		       (unsigned long long)t->n_elements, n);
		return ENG_ERR_FORMAT;
	}
	*out = malloc((size_t)n * sizeof(float));
	if (!*out) {
		seterr(err, err_len, "tensor %s: out of memory", name);
		return ENG_ERR_NOMEM;
	}
	eng_dequantize_row((enum eng_qtype)t->type, t->data, *out, (size_t)n);
	return ENG_OK;
}

static enum eng_status read_hparams(const struct eng_gguf *g, struct eng_hparams *hp,
				    char *err, size_t err_len)
{
	struct eng_str s;
	char arch[32];
	enum eng_status st = eng_gguf_get_str(g, "general.architecture", &s);
	if (st != ENG_OK) {
		seterr(err, err_len, "metadata key general.architecture: %s", eng_strerror(st));
		return st == ENG_ERR_NOT_FOUND ? ENG_ERR_FORMAT : st;
	}
	snprintf(arch, sizeof(arch), "%.*s", (int)(s.len < 31 ? s.len : 31), s.ptr);
	if (s.len == 5 && memcmp(s.ptr, "llama", 5) == 0)
		hp->arch = ENG_ARCH_LLAMA;
	else if (s.len == 5 && memcmp(s.ptr, "qwen2", 5) == 0)
		hp->arch = ENG_ARCH_QWEN2;
	else if (s.len == 5 && memcmp(s.ptr, "qwen3", 5) == 0)
		hp->arch = ENG_ARCH_QWEN3;
	else {
		seterr(err, err_len, "architecture '%.*s' is not supported (llama, qwen2, qwen3 are)",
		       (int)(s.len < 64 ? s.len : 64), s.ptr);
		return ENG_ERR_UNSUPPORTED;
	}
	hp->rope_base = 10000.0f;
	hp->rms_eps = 1e-5f;
	hp->n_ctx_train = 2048;
	if ((st = get_int(g, arch, "embedding_length", 1, &hp->n_embd, err, err_len)) ||
	    (st = get_int(g, arch, "block_count", 1, &hp->n_layer, err, err_len)) ||
	    (st = get_int(g, arch, "attention.head_count", 1, &hp->n_head, err, err_len)) ||
	    (st = get_int(g, arch, "feed_forward_length", 1, &hp->n_ff, err, err_len)) ||
	    (st = get_int(g, arch, "context_length", 0, &hp->n_ctx_train, err, err_len)) ||
	    (st = get_float(g, arch, "rope.freq_base", &hp->rope_base, err, err_len)) ||
	    (st = get_float(g, arch, "attention.layer_norm_rms_epsilon", &hp->rms_eps, err, err_len)))
		return st;
	hp->n_head_kv = hp->n_head;
	hp->head_dim = hp->n_embd / hp->n_head;
	if ((st = get_int(g, arch, "attention.head_count_kv", 0, &hp->n_head_kv, err, err_len)) ||
	    (st = get_int(g, arch, "attention.key_length", 0, &hp->head_dim, err, err_len)))
		return st;
	hp->n_rot = hp->head_dim;
	if ((st = get_int(g, arch, "rope.dimension_count", 0, &hp->n_rot, err, err_len)))
		return st;
	if (hp->n_head % hp->n_head_kv != 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2 ||
	    hp->head_dim < 1) {
		seterr(err, err_len, "inconsistent attention shape: %d heads, %d kv heads, "
		       "head size %d, rope dims %d", hp->n_head, hp->n_head_kv,
		       hp->head_dim, hp->n_rot);
		return ENG_ERR_FORMAT;
	}
	const struct eng_tensor *te = eng_gguf_tensor(g, "token_embd.weight");
	if (!te) {
		seterr(err, err_len, "missing tensor token_embd.weight");
		return ENG_ERR_FORMAT;
	}
	if (te->n_dims != 2 || te->dims[1] == 0 || te->dims[1] > (1u << 24)) {
		seterr(err, err_len, "tensor token_embd.weight: bad shape");
		return ENG_ERR_FORMAT;
	}
	hp->n_vocab = (int)te->dims[1];
	hp->tied_output = eng_gguf_tensor(g, "output.weight") == NULL;
	return ENG_OK;
}

static void free_mat(struct eng_model *m, struct eng_mat *w)
{
	if (w->be && m->be)
		m->be->iface->mat_free(m->be->ctx, w);
	w->be = NULL;
}

void eng_model_free(struct eng_model *m)
{
	if (!m)
		return;
	if (m->layers) {
		for (int i = 0; i < m->hp.n_layer; i++) {
			struct eng_layer *l = &m->layers[i];
			struct eng_mat *all[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->gate, &l->up, &l->down};
			for (size_t j = 0; j < sizeof(all) / sizeof(all[0]); j++)
				free_mat(m, all[j]);
			free(l->attn_norm);
			free(l->ffn_norm);
			free(l->bq);
			free(l->bk);
			free(l->bv);
			free(l->q_norm);
			free(l->k_norm);
		}
		free(m->layers);
	}
	free_mat(m, &m->output);
	free(m->out_norm);
	eng_backend_free(m->own_be);
	free(m);
}

/* Hands every matrix the forward pass multiplies by to the backend (the
 * embedding table is only looked up, row by row, in the file layout). */
static enum eng_status prepare_all(struct eng_model *m, int release, char *err, size_t err_len)
{
	enum eng_status st = ENG_OK;
	const struct eng_backend_i *bi = m->be->iface;
	for (int i = 0; i < m->hp.n_layer && st == ENG_OK; i++) {
		struct eng_layer *l = &m->layers[i];
		struct eng_mat *all[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->gate, &l->up, &l->down};
		for (size_t j = 0; j < sizeof(all) / sizeof(all[0]) && st == ENG_OK; j++)
			st = bi->mat_prepare(m->be->ctx, all[j], release, err, err_len);
	}
	if (st == ENG_OK)
		st = bi->mat_prepare(m->be->ctx, &m->output, release, err, err_len);
	return st;
}

enum eng_status eng_model_new(const struct eng_gguf *g, const struct eng_model_opts *opts,
			      struct eng_model **out, char *err, size_t err_len)
{
	struct eng_model_opts o = {0};
	enum eng_status st;
	struct eng_model *m = NULL;
	char name[96];

	*out = NULL;
	if (opts)
		o = *opts;
	if (!g) {
		seterr(err, err_len, "bad model options");
		return ENG_ERR_ARG;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		st = ENG_ERR_NOMEM;
		seterr(err, err_len, "out of memory");
		goto fail;
	}
	if ((st = read_hparams(g, &m->hp, err, err_len)) != ENG_OK)
		goto fail;
	struct eng_hparams *hp = &m->hp;
	if (o.backend) {
		m->be = o.backend;
	} else {
		if ((st = eng_backend_cpu_new(NULL, &m->own_be, err, err_len)) != ENG_OK)
			goto fail;
		m->be = m->own_be;
	}

	int E = hp->n_embd, hd = hp->head_dim, qd = hp->n_head * hd;
	int kvd = hp->n_head_kv * hd;
	if ((st = load_mat(g, "token_embd.weight", hp->n_vocab, E, 1, &m->tok_embd, err, err_len)) ||
	    (st = load_vec(g, "output_norm.weight", E, 1, &m->out_norm, err, err_len)))
		goto fail;
	if (hp->tied_output)
		m->output = m->tok_embd;
	else if ((st = load_mat(g, "output.weight", hp->n_vocab, E, 1, &m->output, err, err_len)))
		goto fail;
	m->layers = calloc((size_t)hp->n_layer, sizeof(*m->layers));
	if (!m->layers) {
		st = ENG_ERR_NOMEM;
		seterr(err, err_len, "out of memory");
		goto fail;
	}
	for (int i = 0; i < hp->n_layer; i++) {
		struct eng_layer *l = &m->layers[i];
		int qwen2 = hp->arch == ENG_ARCH_QWEN2, qwen3 = hp->arch == ENG_ARCH_QWEN3;
#define NM(s) (snprintf(name, sizeof(name), "blk.%d." s, i), name)
		if ((st = load_vec(g, NM("attn_norm.weight"), E, 1, &l->attn_norm, err, err_len)) ||
		    (st = load_mat(g, NM("attn_q.weight"), qd, E, 1, &l->wq, err, err_len)) ||
		    (st = load_mat(g, NM("attn_k.weight"), kvd, E, 1, &l->wk, err, err_len)) ||
		    (st = load_mat(g, NM("attn_v.weight"), kvd, E, 1, &l->wv, err, err_len)) ||
		    (st = load_mat(g, NM("attn_output.weight"), E, qd, 1, &l->wo, err, err_len)) ||
		    (st = load_vec(g, NM("attn_q.bias"), qd, qwen2, &l->bq, err, err_len)) ||
		    (st = load_vec(g, NM("attn_k.bias"), kvd, qwen2, &l->bk, err, err_len)) ||
		    (st = load_vec(g, NM("attn_v.bias"), kvd, qwen2, &l->bv, err, err_len)) ||
		    (st = load_vec(g, NM("attn_q_norm.weight"), hd, qwen3, &l->q_norm, err, err_len)) ||
		    (st = load_vec(g, NM("attn_k_norm.weight"), hd, qwen3, &l->k_norm, err, err_len)) ||
		    (st = load_vec(g, NM("ffn_norm.weight"), E, 1, &l->ffn_norm, err, err_len)) ||
		    (st = load_mat(g, NM("ffn_gate.weight"), hp->n_ff, E, 1, &l->gate, err, err_len)) ||
		    (st = load_mat(g, NM("ffn_up.weight"), hp->n_ff, E, 1, &l->up, err, err_len)) ||
		    (st = load_mat(g, NM("ffn_down.weight"), E, hp->n_ff, 1, &l->down, err, err_len)))
			goto fail;
#undef NM
	}
	if ((st = prepare_all(m, o.release_source, err, err_len)) != ENG_OK)
		goto fail;
	*out = m;
	return ENG_OK;
fail:
	eng_model_free(m);
	return st;
}

const struct eng_hparams *eng_model_hparams(const struct eng_model *m) { return &m->hp; }
const struct eng_backend *eng_model_backend(const struct eng_model *m) { return m->be; }

size_t eng_model_kv_cell_bytes(const struct eng_model *m)
{
	return 2 * sizeof(float) * (size_t)m->hp.n_layer * (size_t)m->hp.n_head_kv *
	       (size_t)m->hp.head_dim;
}
