#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/model.h"
#include "engine/threadpool.h"

/* A weight matrix used in place: <rows> rows of <cols> values of <type>. */
struct wmat {
	enum eng_qtype type;
	const void *data;
	int rows, cols;
	size_t row_bytes;
	void *packed; /* the kernels' row-interleaved copy (owned), or NULL */
};

struct layer {
	float *attn_norm;          /* (n_embd) */
	struct wmat wq, wk, wv;    /* (n_head*hd, n_embd), (n_kv*hd, n_embd) ×2 */
	float *bq, *bk, *bv;       /* qwen2 biases, or NULL */
	float *q_norm, *k_norm;    /* qwen3 (hd), or NULL */
	struct wmat wo;            /* (n_embd, n_head*hd) */
	float *ffn_norm;           /* (n_embd) */
	struct wmat gate, up;      /* (n_ff, n_embd) */
	struct wmat down;          /* (n_embd, n_ff) */
};

struct eng_model {
	struct eng_hparams hp;
	const struct eng_kernels *k;
	struct eng_pool *pool;
	int n_ctx, n_batch;
	struct wmat tok_embd;      /* (n_vocab, n_embd) */
	float *out_norm;           /* (n_embd) */
	struct wmat output;        /* (n_vocab, n_embd) */
	struct layer *layers;
	/* KV cache: K (n_layer, n_kv*hd, n_ctx) — transposed — and
	 * V (n_layer, n_ctx, n_kv*hd), floats */
	float *kc, *vc;
	/* scratch, (n_batch, dim) each */
	float *x, *xb, *q, *kk, *vv, *att, *hb, *hb2, *tmp;
	void *xa;                  /* quantized activations (n_batch rows) */
	size_t xa_row_cap;         /* bytes per activation row in xa */
	float *scores;             /* (n_threads, ENG_ATTN_MAX_Q, n_ctx + 16) */
	float *rope;               /* (n_batch, n_rot/2, 2): cos, sin */
	float *logits;             /* (n_vocab) */
	float *xlast;              /* (n_embd) */
	size_t kv_bytes, scratch_bytes;
};

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
				int rows, int cols, int required, struct wmat *w,
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

void eng_model_free(struct eng_model *m)
{
	if (!m)
		return;
	eng_pool_free(m->pool);
	if (m->layers) {
		for (int i = 0; i < m->hp.n_layer; i++) {
			struct layer *l = &m->layers[i];
			free(l->wq.packed);
			free(l->wk.packed);
			free(l->wv.packed);
			free(l->wo.packed);
			free(l->gate.packed);
			free(l->up.packed);
			free(l->down.packed);
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
	free(m->output.packed);
	free(m->out_norm);
	free(m->kc);
	free(m->vc);
	free(m->x);
	free(m->xb);
	free(m->q);
	free(m->kk);
	free(m->vv);
	free(m->att);
	free(m->hb);
	free(m->hb2);
	free(m->tmp);
	free(m->xa);
	free(m->scores);
	free(m->rope);
	free(m->logits);
	free(m->xlast);
	free(m);
}

/* Gives the pages wholly inside [p, p+len) back to the kernel: for a
 * read-only file mapping they are simply re-read if ever touched again. */
static void release_pages(const void *p, size_t len)
{
	long ps = sysconf(_SC_PAGESIZE);
	if (ps <= 0)
		return;
	uintptr_t a = ((uintptr_t)p + (uintptr_t)ps - 1) & ~(uintptr_t)(ps - 1);
	uintptr_t b = ((uintptr_t)p + len) & ~(uintptr_t)(ps - 1);
	if (b > a)
		(void)madvise((void *)a, b - a, MADV_DONTNEED);
}

#define PACK_SLICE (ENG_PACK_ROWS * 64)

static enum eng_status pack_one(struct eng_model *m, struct wmat *w, int release,
				char *err, size_t err_len)
{
	eng_pack_fn pack = m->k->pack[w->type];
	if (!pack || !m->k->gemm_packed[w->type] || !m->k->pack_size[w->type])
		return ENG_OK;
	size_t sz = m->k->pack_size[w->type](w->rows, (size_t)w->cols);
	w->packed = aligned_alloc(64, (sz + 63) & ~(size_t)63);
	if (!w->packed) {
		seterr(err, err_len, "out of memory packing a %d x %d %s matrix", w->rows, w->cols,
		       eng_qtype_name(w->type));
		return ENG_ERR_NOMEM;
	}
	/* slices of PACK_SLICE rows, each source slice released once packed, so
	 * the peak holds at most one slice twice */
	size_t gbytes = m->k->pack_size[w->type](ENG_PACK_ROWS, (size_t)w->cols);
	for (int r = 0; r < w->rows; r += PACK_SLICE) {
		int nr = w->rows - r < PACK_SLICE ? w->rows - r : PACK_SLICE;
		const char *src = (const char *)w->data + (size_t)r * w->row_bytes;
		pack(src, nr, (size_t)w->cols, (char *)w->packed + (size_t)(r / ENG_PACK_ROWS) * gbytes);
		if (release)
			release_pages(src, w->row_bytes * (size_t)nr);
	}
	return ENG_OK;
}

/* Builds the kernels' packed copies; with <release> the file pages of the
 * packed matrices are dropped from memory (a tied token_embd's too: the
 * embedding lookup faults back in only the rows it reads). */
static enum eng_status pack_all(struct eng_model *m, int release, char *err, size_t err_len)
{
	enum eng_status st = ENG_OK;
	for (int i = 0; i < m->hp.n_layer && st == ENG_OK; i++) {
		struct layer *l = &m->layers[i];
		struct wmat *all[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->gate, &l->up, &l->down};
		for (size_t j = 0; j < sizeof(all) / sizeof(all[0]) && st == ENG_OK; j++)
			st = pack_one(m, all[j], release, err, err_len);
	}
	if (st == ENG_OK)
		st = pack_one(m, &m->output, release, err, err_len);
	return st;
}

static size_t max_act_row(int n)
{
	size_t a = eng_act_row_bytes(ENG_ACT_F32, (size_t)n);
	if (n % ENG_QK == 0 && eng_act_row_bytes(ENG_ACT_Q8, (size_t)n) > a)
		a = eng_act_row_bytes(ENG_ACT_Q8, (size_t)n);
	if (n % ENG_QKK == 0 && eng_act_row_bytes(ENG_ACT_Q8K, (size_t)n) > a)
		a = eng_act_row_bytes(ENG_ACT_Q8K, (size_t)n);
	return (a + 63) & ~(size_t)63;
}

static float *falloc(size_t n, size_t *total)
{
	*total += n * sizeof(float);
	return aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
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
	if (!g || o.n_ctx < 0 || o.n_ctx > ENG_MODEL_MAX_CTX || o.n_batch < 0 ||
	    o.n_batch > ENG_MODEL_MAX_BATCH || o.n_threads < 0 ||
	    o.n_threads > ENG_POOL_MAX_THREADS) {
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
	m->k = o.kernels ? o.kernels : eng_kernels_get();
	if (!m->k) {
		st = ENG_ERR_ARG;
		seterr(err, err_len, "LW_ENGINE_KERNELS names a kernel set this CPU lacks "
		       "(scalar, avx2, avx512)");
		goto fail;
	}
	m->n_ctx = o.n_ctx ? o.n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
	m->n_batch = o.n_batch ? o.n_batch : ENG_MODEL_DEFAULT_BATCH;
	if (m->n_batch > m->n_ctx)
		m->n_batch = m->n_ctx;

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
		struct layer *l = &m->layers[i];
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

	if ((st = pack_all(m, o.release_source, err, err_len)) != ENG_OK)
		goto fail;
	m->pool = eng_pool_new(o.n_threads ? o.n_threads : 1);
	if (!m->pool) {
		st = ENG_ERR_NOMEM;
		seterr(err, err_len, "cannot start %d threads", o.n_threads);
		goto fail;
	}
	size_t B = (size_t)m->n_batch, kvn = (size_t)hp->n_layer * (size_t)m->n_ctx * (size_t)kvd;
	size_t kvb = 0, sb = 0;
	m->kc = falloc(kvn, &kvb);
	m->vc = falloc(kvn, &kvb);
	int wide = E > qd ? E : qd;
	m->x = falloc(B * (size_t)E, &sb);
	m->xb = falloc(B * (size_t)wide, &sb);
	m->q = falloc(B * (size_t)qd, &sb);
	m->kk = falloc(B * (size_t)kvd, &sb);
	m->vv = falloc(B * (size_t)kvd, &sb);
	m->att = falloc(B * (size_t)qd, &sb);
	m->hb = falloc(B * (size_t)hp->n_ff, &sb);
	m->hb2 = falloc(B * (size_t)hp->n_ff, &sb);
	m->tmp = falloc(B * (size_t)wide, &sb);
	size_t ar = max_act_row(E);
	if (max_act_row(qd) > ar)
		ar = max_act_row(qd);
	if (max_act_row(hp->n_ff) > ar)
		ar = max_act_row(hp->n_ff);
	m->xa_row_cap = ar;
	m->xa = aligned_alloc(64, ar * B);
	sb += ar * B;
	m->scores = falloc((size_t)eng_pool_size(m->pool) * ENG_ATTN_MAX_Q * ((size_t)m->n_ctx + 16), &sb);
	m->rope = falloc(B * (size_t)hp->n_rot, &sb);
	m->logits = falloc((size_t)hp->n_vocab, &sb);
	m->xlast = falloc((size_t)E, &sb);
	m->kv_bytes = kvb;
	m->scratch_bytes = sb;
	if (!m->kc || !m->vc || !m->x || !m->xb || !m->q || !m->kk || !m->vv || !m->att ||
	    !m->hb || !m->hb2 || !m->tmp || !m->xa || !m->scores || !m->rope ||
	    !m->logits || !m->xlast) {
		st = ENG_ERR_NOMEM;
		seterr(err, err_len, "out of memory for a %d-position KV cache (%zu bytes) "
		       "and scratch buffers", m->n_ctx, kvb);
		goto fail;
	}
	*out = m;
	return ENG_OK;
fail:
	eng_model_free(m);
	return st;
}

const struct eng_hparams *eng_model_hparams(const struct eng_model *m) { return &m->hp; }
int eng_model_n_ctx(const struct eng_model *m) { return m->n_ctx; }
const struct eng_kernels *eng_model_kernels(const struct eng_model *m) { return m->k; }
size_t eng_model_kv_bytes(const struct eng_model *m) { return m->kv_bytes; }

/* ---- forward pass ------------------------------------------------------ */

/* Up to three matrices sharing one activation input, split by rows. */
struct mm_part {
	const struct wmat *w;
	float *y; /* (nt, w->rows) */
};

struct mm_job {
	struct eng_model *m;
	struct mm_part p[3];
	int np, nt, total;
	int chunk;         /* groups per chunk */
	const void *xa;
};

static int n_groups(const struct wmat *w)
{
	return (w->rows + ENG_PACK_ROWS - 1) / ENG_PACK_ROWS;
}

/* Multiply-adds below which a matmul, and flops below which an attention
 * step or an activation quantization, run on the calling thread alone: a
 * hand-off to a spinning worker costs about a microsecond, to a sleeping
 * one tens, and on a loaded machine a whole scheduler slice (stories260K's
 * largest matmul is 32K multiply-adds, the 124M model's smallest 590K). */
#define PAR_MIN_WORK (1L << 16)
/* Chunks per thread a split aims at: enough that a descheduled thread's
 * share is taken over by the others, few enough that claims stay cheap. */
#define CHUNKS_PER_THREAD 8

/* Chunk <c>: groups of 16 rows (the packed layout's unit) [c*chunk,
 * (c+1)*chunk) counted across the parts. */
static void mm_task(void *ctx, int c, int ith)
{
	struct mm_job *j = ctx;
	int lo = c * j->chunk, hi = lo + j->chunk, base = 0;
	(void)ith;
	if (hi > j->total)
		hi = j->total;
	for (int i = 0; i < j->np; i++) {
		const struct wmat *w = j->p[i].w;
		int ng = n_groups(w);
		int a = lo > base ? lo - base : 0;
		int b = hi - base < ng ? hi - base : ng;
		if (a < b) {
			if (w->packed) {
				j->m->k->gemm_packed[w->type]((size_t)w->cols, w->packed, w->rows, a, b,
							      j->xa, j->nt, j->p[i].y, (size_t)w->rows);
			} else {
				int r1 = b * ENG_PACK_ROWS < w->rows ? b * ENG_PACK_ROWS : w->rows;
				eng_matmul_rows(j->m->k, w->type, w->data, (size_t)w->cols,
						a * ENG_PACK_ROWS, r1, j->xa, j->nt, j->p[i].y,
						(size_t)w->rows);
			}
		}
		base += ng;
	}
}

struct quant_job {
	eng_quant_fn fn;
	const float *x;
	size_t ldx;
	char *xa;
	size_t row_bytes;
	int n, nt;
};

/* Chunk <t>: activation row t. */
static void quant_task(void *ctx, int t, int ith)
{
	struct quant_job *q = ctx;
	(void)ith;
	q->fn(q->x + (size_t)t * q->ldx, q->xa + (size_t)t * q->row_bytes, (size_t)q->n);
}

/* y_i = W_i x for the parts (all with <x>'s width as columns). Parts are
 * grouped by the activation format their weight type needs. */
static void matmul(struct eng_model *m, struct mm_part *parts, int np,
		   const float *x, size_t ldx, int nt)
{
	int done[3] = {0};
	int nth = eng_pool_size(m->pool);
	for (int i = 0; i < np; i++) {
		if (done[i])
			continue;
		enum eng_act a = eng_qtype_act(parts[i].w->type);
		struct mm_job j = {.m = m, .nt = nt};
		long rows = 0;
		for (int k = i; k < np; k++) {
			if (done[k] || eng_qtype_act(parts[k].w->type) != a)
				continue;
			done[k] = 1;
			j.p[j.np++] = parts[k];
			j.total += n_groups(parts[k].w);
			rows += parts[k].w->rows;
		}
		int n = parts[i].w->cols;
		struct quant_job q = {
			.fn = m->k->quant[a], .x = x, .ldx = ldx, .xa = m->xa,
			.row_bytes = eng_act_row_bytes(a, (size_t)n), .n = n, .nt = nt,
		};
		if (a == ENG_ACT_F32 && ldx == (size_t)n) {
			j.xa = x; /* already in the right form */
		} else {
			eng_pool_run(m->pool, quant_task, &q, nt, (long)nt * n >= PAR_MIN_WORK);
			j.xa = m->xa;
		}
		long work = rows * n * nt;
		int par = work >= PAR_MIN_WORK;
		j.chunk = par ? j.total / (nth * CHUNKS_PER_THREAD) : j.total;
		if (j.chunk < 1)
			j.chunk = 1;
		eng_pool_run(m->pool, mm_task, &j, (j.total + j.chunk - 1) / j.chunk, par);
	}
}

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps)
{
	double ss = 0;
	for (int i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	float scale = 1.0f / sqrtf((float)(ss / n) + eps);
	for (int i = 0; i < n; i++)
		o[i] = x[i] * scale * w[i];
}

/* cos/sin for positions pos..pos+nt-1, the way llama.cpp computes theta. */
static void rope_table(struct eng_model *m, int pos, int nt)
{
	int half = m->hp.n_rot / 2;
	float theta_scale = powf(m->hp.rope_base, -2.0f / (float)m->hp.n_rot);
	for (int t = 0; t < nt; t++) {
		float theta = (float)(pos + t);
		float *r = m->rope + (size_t)t * m->hp.n_rot;
		for (int i = 0; i < half; i++) {
			r[2 * i] = cosf(theta);
			r[2 * i + 1] = sinf(theta);
			theta *= theta_scale;
		}
	}
}

static void rope_apply(const struct eng_model *m, float *v, const float *r)
{
	int half = m->hp.n_rot / 2;
	if (m->hp.arch == ENG_ARCH_LLAMA) {
		for (int i = 0; i < half; i++) {
			float c = r[2 * i], s = r[2 * i + 1];
			float a = v[2 * i], b = v[2 * i + 1];
			v[2 * i] = a * c - b * s;
			v[2 * i + 1] = a * s + b * c;
		}
	} else {
		for (int i = 0; i < half; i++) {
			float c = r[2 * i], s = r[2 * i + 1];
			float a = v[i], b = v[i + half];
			v[i] = a * c - b * s;
			v[i + half] = a * s + b * c;
		}
	}
}

struct attn_job {
	struct eng_model *m;
	int layer, pos, nt;
};

/* Chunk <w>: (tile of up to ENG_ATTN_MAX_Q tokens, head) w. The pool hands
 * chunks out last first, so with a causal mask the costliest (latest)
 * tiles go first and the cheap early ones even out the end. */
static void attn_task(void *ctx, int w, int ith)
{
	struct attn_job *a = ctx;
	struct eng_model *m = a->m;
	const struct eng_hparams *hp = &m->hp;
	int hd = hp->head_dim, nh = hp->n_head, kvd = hp->n_head_kv * hd;
	int grp = nh / hp->n_head_kv, qd = nh * hd;
	size_t sc_ld = (size_t)m->n_ctx + 16;
	float *sc = m->scores + (size_t)ith * ENG_ATTN_MAX_Q * sc_ld;
	float scale = 1.0f / sqrtf((float)hd);
	size_t lofs = (size_t)a->layer * m->n_ctx * kvd;
	int t0 = (w / nh) * ENG_ATTN_MAX_Q, h = w % nh, kh = h / grp;
	int nq = a->nt - t0 < ENG_ATTN_MAX_Q ? a->nt - t0 : ENG_ATTN_MAX_Q;
	const float *qs[ENG_ATTN_MAX_Q];
	float *outs[ENG_ATTN_MAX_Q];
	int np[ENG_ATTN_MAX_Q];
	for (int i = 0; i < nq; i++) {
		qs[i] = m->q + (size_t)(t0 + i) * qd + (size_t)h * hd;
		outs[i] = m->att + (size_t)(t0 + i) * qd + (size_t)h * hd;
		np[i] = a->pos + t0 + i + 1;
	}
	m->k->attn_multi(nq, qs, np, m->kc + lofs + (size_t)kh * hd * m->n_ctx,
			 (size_t)m->n_ctx, m->vc + lofs + (size_t)kh * hd, (size_t)kvd,
			 hd, scale, sc, sc_ld, outs);
}

/* The per-token steps between the matmuls, run over chunks of tokens. */
enum tok_step {
	STEP_ATTN_NORM = 0, /* xb = rmsnorm(x) (attn_norm) */
	STEP_QKV,           /* biases, q/k norms, RoPE; K and V into the cache */
	STEP_FFN_NORM,      /* x += tmp; xb = rmsnorm(x) (ffn_norm) */
	STEP_SWIGLU,        /* hb = silu(hb) * hb2 */
	STEP_RESIDUAL,      /* x += tmp */
	STEP_COUNT
};

struct tok_job {
	struct eng_model *m;
	const struct layer *l;
	enum tok_step step;
	int li, pos, nt, per; /* <per> tokens a chunk */
};

static void add_rows(float *x, const float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] += y[i];
}

/* Chunk <c>: tokens [c*per, (c+1)*per) of step j->step. */
static void tok_task(void *ctx, int c, int ith)
{
	struct tok_job *j = ctx;
	struct eng_model *m = j->m;
	const struct layer *l = j->l;
	const struct eng_hparams *hp = &m->hp;
	int E = hp->n_embd, hd = hp->head_dim, qd = hp->n_head * hd;
	int kvd = hp->n_head_kv * hd, F = hp->n_ff;
	int t0 = c * j->per, t1 = t0 + j->per < j->nt ? t0 + j->per : j->nt;
	size_t lofs = (size_t)j->li * m->n_ctx * kvd;
	(void)ith;
	for (int t = t0; t < t1; t++) {
		float *x = m->x + (size_t)t * E, *xb = m->xb + (size_t)t * E;
		switch (j->step) {
		case STEP_ATTN_NORM:
			rmsnorm(xb, x, l->attn_norm, E, hp->rms_eps);
			break;
		case STEP_FFN_NORM:
			add_rows(x, m->tmp + (size_t)t * E, (size_t)E);
			rmsnorm(xb, x, l->ffn_norm, E, hp->rms_eps);
			break;
		case STEP_RESIDUAL:
			add_rows(x, m->tmp + (size_t)t * E, (size_t)E);
			break;
		case STEP_SWIGLU: {
			float *g = m->hb + (size_t)t * F, *u = m->hb2 + (size_t)t * F;
			for (int i = 0; i < F; i++)
				g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
			break;
		}
		case STEP_QKV: {
			float *q = m->q + (size_t)t * qd, *k = m->kk + (size_t)t * kvd;
			float *v = m->vv + (size_t)t * kvd;
			int p = j->pos + t;
			if (l->bq) {
				for (int i = 0; i < qd; i++)
					q[i] += l->bq[i];
				for (int i = 0; i < kvd; i++) {
					k[i] += l->bk[i];
					v[i] += l->bv[i];
				}
			}
			if (l->q_norm) {
				for (int h = 0; h < hp->n_head; h++)
					rmsnorm(q + h * hd, q + h * hd, l->q_norm, hd, hp->rms_eps);
				for (int h = 0; h < hp->n_head_kv; h++)
					rmsnorm(k + h * hd, k + h * hd, l->k_norm, hd, hp->rms_eps);
			}
			const float *r = m->rope + (size_t)t * hp->n_rot;
			for (int h = 0; h < hp->n_head; h++)
				rope_apply(m, q + h * hd, r);
			for (int h = 0; h < hp->n_head_kv; h++)
				rope_apply(m, k + h * hd, r);
			/* K is kept transposed per head, (kv_head, dim, position), so
			 * the scores of one query are a sweep over positions */
			for (int i = 0; i < kvd; i++)
				m->kc[lofs + (size_t)i * m->n_ctx + (size_t)p] = k[i];
			memcpy(m->vc + lofs + (size_t)p * kvd, v, (size_t)kvd * sizeof(float));
			break;
		}
		default:
			break;
		}
	}
}

/* Runs <step> over the <nt> tokens, split across threads when there are
 * enough values; chunks of at least 16 tokens, so threads writing the
 * transposed K cache rarely share a cache line. */
static void tok_run(struct eng_model *m, const struct layer *l, int li, int pos, int nt,
		    enum tok_step step, int width)
{
	int nth = eng_pool_size(m->pool);
	struct tok_job j = {.m = m, .l = l, .step = step, .li = li, .pos = pos, .nt = nt};
	int par = (long)nt * width >= PAR_MIN_WORK;
	j.per = par ? nt / (nth * 4) : nt;
	if (j.per < 16)
		j.per = 16;
	eng_pool_run(m->pool, tok_task, &j, (nt + j.per - 1) / j.per, par);
}

static void forward_chunk(struct eng_model *m, const int32_t *tok, int nt, int pos)
{
	const struct eng_hparams *hp = &m->hp;
	int E = hp->n_embd, hd = hp->head_dim, qd = hp->n_head * hd;
	int F = hp->n_ff;

	for (int t = 0; t < nt; t++)
		eng_dequantize_row(m->tok_embd.type,
				   (const char *)m->tok_embd.data + (size_t)tok[t] * m->tok_embd.row_bytes,
				   m->x + (size_t)t * E, (size_t)E);
	rope_table(m, pos, nt);
	for (int li = 0; li < hp->n_layer; li++) {
		const struct layer *l = &m->layers[li];
		tok_run(m, l, li, pos, nt, STEP_ATTN_NORM, E);
		struct mm_part qkv[3] = {{&l->wq, m->q}, {&l->wk, m->kk}, {&l->wv, m->vv}};
		matmul(m, qkv, 3, m->xb, (size_t)E, nt);
		tok_run(m, l, li, pos, nt, STEP_QKV, qd);
		struct attn_job aj = {.m = m, .layer = li, .pos = pos, .nt = nt};
		int tiles = (nt + ENG_ATTN_MAX_Q - 1) / ENG_ATTN_MAX_Q;
		long aw = 4L * nt * (pos + (nt + 1) / 2) * qd; /* QK^T and PV */
		eng_pool_run(m->pool, attn_task, &aj, tiles * hp->n_head, aw >= PAR_MIN_WORK);
		struct mm_part o = {&l->wo, m->tmp};
		matmul(m, &o, 1, m->att, (size_t)qd, nt);
		tok_run(m, l, li, pos, nt, STEP_FFN_NORM, E);
		struct mm_part gu[2] = {{&l->gate, m->hb}, {&l->up, m->hb2}};
		matmul(m, gu, 2, m->xb, (size_t)E, nt);
		tok_run(m, l, li, pos, nt, STEP_SWIGLU, 8 * F); /* expf: ~8 flops */
		struct mm_part d = {&l->down, m->tmp};
		matmul(m, &d, 1, m->hb, (size_t)F, nt);
		tok_run(m, l, li, pos, nt, STEP_RESIDUAL, E);
	}
}

enum eng_status eng_model_eval(struct eng_model *m, const int32_t *tokens, int n, int pos,
			       const float **logits, char *err, size_t err_len)
{
	const struct eng_hparams *hp = &m->hp;
	if (n < 1 || pos < 0 || pos > m->n_ctx - n) {
		seterr(err, err_len, "%d tokens at position %d do not fit a %d-token context",
		       n, pos, m->n_ctx);
		return ENG_ERR_RANGE;
	}
	for (int i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= hp->n_vocab) {
			seterr(err, err_len, "token id %d (at %d) is outside the %d-token vocabulary",
			       tokens[i], i, hp->n_vocab);
			return ENG_ERR_RANGE;
		}
	int done = 0, last = 0;
	while (done < n) {
		int c = n - done < m->n_batch ? n - done : m->n_batch;
		forward_chunk(m, tokens + done, c, pos + done);
		last = c - 1;
		done += c;
	}
	int E = hp->n_embd;
	rmsnorm(m->xlast, m->x + (size_t)last * E, m->out_norm, E, hp->rms_eps);
	struct mm_part o = {&m->output, m->logits};
	matmul(m, &o, 1, m->xlast, (size_t)E, 1);
	*logits = m->logits;
	return ENG_OK;
}
