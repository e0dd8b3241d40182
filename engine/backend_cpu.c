/* The CPU backend: the kernels of engine/kernels.h (scalar, AVX2, AVX-512)
 * on a pool of persistent threads (engine/threadpool.h), KV cells in host
 * memory. Weights of the types a kernel set has a packed layout for are
 * repacked once at load; everything else is read in the file layout. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/backend_impl.h"
#include "engine/threadpool.h"

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

/* ---- weights ----------------------------------------------------------- */

struct cpu_be {
	const struct eng_kernels *k;
};

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

/* The kernels' packed copy of <w>, where the kernel set has a layout for
 * its type; packed in slices of PACK_SLICE rows, each source slice released
 * once packed (with <release>), so the peak holds at most one slice twice. */
static enum eng_status cpu_mat_prepare(void *ctx, struct eng_mat *w, int release,
				       char *err, size_t err_len)
{
	const struct eng_kernels *k = ((struct cpu_be *)ctx)->k;
	eng_pack_fn pack = k->pack[w->type];
	if (!pack || !k->gemm_packed[w->type] || !k->pack_size[w->type])
		return ENG_OK;
	size_t sz = k->pack_size[w->type](w->rows, (size_t)w->cols);
	w->be = aligned_alloc(64, (sz + 63) & ~(size_t)63);
	if (!w->be) {
		seterr(err, err_len, "out of memory packing a %d x %d %s matrix", w->rows, w->cols,
		       eng_qtype_name(w->type));
		return ENG_ERR_NOMEM;
	}
	size_t gbytes = k->pack_size[w->type](ENG_PACK_ROWS, (size_t)w->cols);
	for (int r = 0; r < w->rows; r += PACK_SLICE) {
		int nr = w->rows - r < PACK_SLICE ? w->rows - r : PACK_SLICE;
		const char *src = (const char *)w->data + (size_t)r * w->row_bytes;
		pack(src, nr, (size_t)w->cols, (char *)w->be + (size_t)(r / ENG_PACK_ROWS) * gbytes);
		if (release)
			release_pages(src, w->row_bytes * (size_t)nr);
	}
	return ENG_OK;
}

static void cpu_mat_free(void *ctx, struct eng_mat *w)
{
	(void)ctx;
	free(w->be);
	w->be = NULL;
}

/* ---- KV storage -------------------------------------------------------- */

/* K (n_layer, n_kv*hd, n_cells) — transposed, so one query's scores are a
 * sweep over a sequence's consecutive cells — and V (n_layer, n_cells,
 * n_kv*hd), floats. */
struct cpu_kv {
	float *k, *v;
	int n_cells;
};

static void cpu_kv_free(void *p)
{
	struct cpu_kv *kv = p;
	if (!kv)
		return;
	free(kv->k);
	free(kv->v);
	free(kv);
}

static enum eng_status cpu_kv_new(void *ctx, const struct eng_model *m, int n_cells, void **out,
				  size_t *bytes, char *err, size_t err_len)
{
	(void)ctx;
	const struct eng_hparams *hp = &m->hp;
	size_t n = (size_t)hp->n_layer * (size_t)n_cells * (size_t)hp->n_head_kv * (size_t)hp->head_dim;
	size_t b = (n * sizeof(float) + 63) & ~(size_t)63;
	struct cpu_kv *kv = calloc(1, sizeof(*kv));
	if (kv) {
		kv->n_cells = n_cells;
		kv->k = aligned_alloc(64, b);
		kv->v = aligned_alloc(64, b);
	}
	if (!kv || !kv->k || !kv->v) {
		cpu_kv_free(kv);
		seterr(err, err_len, "out of memory for a KV pool of %d cells (%zu bytes)", n_cells,
		       2 * b);
		return ENG_ERR_NOMEM;
	}
	*out = kv;
	*bytes = 2 * b;
	return ENG_OK;
}

/* ---- compute context --------------------------------------------------- */

/* A segment of the current step: tokens [t0, t0+n) of the batch at
 * positions pos.. of a sequence whose position 0 is cell kv_off. */
struct cpu_seg {
	int kv_off, pos, n, t0;
};

/* Attention work unit: <nq> consecutive queries of one segment. */
struct cpu_tile {
	int seg, t0, nq;
};

struct cpu_compute {
	const struct eng_model *m;
	const struct eng_kernels *k;
	struct eng_pool *pool;
	int max_tokens, max_logits, max_ctx;
	float *buf[ENG_BUF_COUNT];
	int ld[ENG_BUF_COUNT];     /* floats per token row */
	void *xa;                  /* quantized activations (max_tokens rows) */
	float *scores;             /* (n_threads, ENG_ATTN_MAX_Q, sc_ld) */
	size_t sc_ld;
	float *rope;               /* (max_tokens, n_rot/2, 2): cos, sin */
	float *xout;               /* (max_logits, n_embd): normed rows for the output */
	float *logits;             /* (max_logits, n_vocab) */
	/* the step in progress */
	struct cpu_kv *kv;
	int nt;
	int *tok_pos, *tok_cell;   /* (max_tokens) */
	struct cpu_seg *seg;       /* (max_tokens) */
	int n_seg;
	struct cpu_tile *tile;     /* (max_tokens) */
	int n_tile;
	long attn_work;
	int *out_tok;              /* (max_logits): batch rows whose logits are wanted */
	int n_out;
};

static void cpu_compute_free(void *p)
{
	struct cpu_compute *c = p;
	if (!c)
		return;
	eng_pool_free(c->pool);
	for (int i = 0; i < ENG_BUF_COUNT; i++)
		free(c->buf[i]);
	free(c->xa);
	free(c->scores);
	free(c->rope);
	free(c->xout);
	free(c->logits);
	free(c->tok_pos);
	free(c->tok_cell);
	free(c->seg);
	free(c->tile);
	free(c->out_tok);
	free(c);
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

static void *aalloc(size_t bytes)
{
	return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

static enum eng_status cpu_compute_new(void *ctx, const struct eng_model *m,
				       const struct eng_compute_opts *o, void **out,
				       char *err, size_t err_len)
{
	const struct eng_hparams *hp = &m->hp;
	struct cpu_compute *c = calloc(1, sizeof(*c));
	if (!c)
		goto nomem;
	c->m = m;
	c->k = ((struct cpu_be *)ctx)->k;
	c->max_tokens = o->max_tokens;
	c->max_logits = o->max_logits;
	c->max_ctx = o->max_ctx;
	c->pool = eng_pool_new(o->n_threads);
	if (!c->pool) {
		seterr(err, err_len, "cannot start %d threads", o->n_threads);
		cpu_compute_free(c);
		return ENG_ERR_NOMEM;
	}
	int E = hp->n_embd, qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
	int F = hp->n_ff, wide = E > qd ? E : qd;
	const int ld[ENG_BUF_COUNT] = {
		[ENG_BUF_X] = E, [ENG_BUF_XB] = E, [ENG_BUF_Q] = qd, [ENG_BUF_K] = kvd,
		[ENG_BUF_V] = kvd, [ENG_BUF_ATT] = qd, [ENG_BUF_HB] = F, [ENG_BUF_HB2] = F,
		[ENG_BUF_TMP] = E,
	};
	size_t B = (size_t)c->max_tokens;
	for (int i = 0; i < ENG_BUF_COUNT; i++) {
		c->ld[i] = ld[i];
		/* XB and TMP also hold rows of the widest of n_embd and n_head*hd */
		int w = (i == ENG_BUF_XB || i == ENG_BUF_TMP) ? wide : ld[i];
		if (!(c->buf[i] = aalloc(B * (size_t)w * sizeof(float))))
			goto nomem;
	}
	size_t ar = max_act_row(E);
	if (max_act_row(qd) > ar)
		ar = max_act_row(qd);
	if (max_act_row(F) > ar)
		ar = max_act_row(F);
	c->sc_ld = (size_t)c->max_ctx + 16;
	size_t L = (size_t)c->max_logits;
	if (!(c->xa = aalloc(ar * B)) ||
	    !(c->scores = aalloc((size_t)eng_pool_size(c->pool) * ENG_ATTN_MAX_Q * c->sc_ld *
				 sizeof(float))) ||
	    !(c->rope = aalloc(B * (size_t)hp->n_rot * sizeof(float))) ||
	    !(c->xout = aalloc(L * (size_t)E * sizeof(float))) ||
	    !(c->logits = aalloc(L * (size_t)hp->n_vocab * sizeof(float))) ||
	    !(c->tok_pos = malloc(B * sizeof(int))) || !(c->tok_cell = malloc(B * sizeof(int))) ||
	    !(c->seg = malloc(B * sizeof(*c->seg))) || !(c->tile = malloc(B * sizeof(*c->tile))) ||
	    !(c->out_tok = malloc(L * sizeof(int))))
		goto nomem;
	*out = c;
	return ENG_OK;
nomem:
	cpu_compute_free(c);
	seterr(err, err_len, "out of memory for the scratch of %d-token steps", o->max_tokens);
	return ENG_ERR_NOMEM;
}

/* ---- ops ---------------------------------------------------------------- */

/* Multiply-adds below which a matmul, and flops below which an attention
 * step or an activation quantization, run on the calling thread alone: a
 * hand-off to a spinning worker costs about a microsecond, to a sleeping
 * one tens, and on a loaded machine a whole scheduler slice (stories260K's
 * largest matmul is 32K multiply-adds, the 124M model's smallest 590K). */
#define PAR_MIN_WORK (1L << 16)
/* Chunks per thread a split aims at: enough that a descheduled thread's
 * share is taken over by the others, few enough that claims stay cheap. */
#define CHUNKS_PER_THREAD 8

/* cos/sin for each token's own position, the way llama.cpp computes theta. */
static void rope_table(struct cpu_compute *c)
{
	int n_rot = c->m->hp.n_rot, half = n_rot / 2;
	float theta_scale = powf(c->m->hp.rope_base, -2.0f / (float)n_rot);
	for (int t = 0; t < c->nt; t++) {
		float theta = (float)c->tok_pos[t];
		float *r = c->rope + (size_t)t * n_rot;
		for (int i = 0; i < half; i++) {
			r[2 * i] = cosf(theta);
			r[2 * i + 1] = sinf(theta);
			theta *= theta_scale;
		}
	}
}

static void cpu_begin(void *p, void *kvs, const struct eng_batch *b)
{
	struct cpu_compute *c = p;
	const struct eng_model *m = c->m;
	const struct eng_hparams *hp = &m->hp;
	int E = hp->n_embd, nt = 0;
	long qd = (long)hp->n_head * hp->head_dim;
	c->kv = kvs;
	c->n_seg = b->n_seg;
	c->n_tile = 0;
	c->n_out = 0;
	c->attn_work = 0;
	for (int s = 0; s < b->n_seg; s++) {
		const struct eng_batch_seg *bs = &b->seg[s];
		struct cpu_seg *cs = &c->seg[s];
		cs->kv_off = bs->seq->kv_off;
		cs->pos = bs->pos;
		cs->n = bs->n;
		cs->t0 = nt;
		for (int i = 0; i < bs->n; i++, nt++) {
			c->tok_pos[nt] = bs->pos + i;
			c->tok_cell[nt] = bs->seq->kv_off + bs->pos + i;
			eng_dequantize_row(m->tok_embd.type,
					   (const char *)m->tok_embd.data +
						   (size_t)bs->tokens[i] * m->tok_embd.row_bytes,
					   c->buf[ENG_BUF_X] + (size_t)nt * E, (size_t)E);
		}
		for (int i = 0; i < bs->n; i += ENG_ATTN_MAX_Q) {
			struct cpu_tile *t = &c->tile[c->n_tile++];
			t->seg = s;
			t->t0 = cs->t0 + i;
			t->nq = bs->n - i < ENG_ATTN_MAX_Q ? bs->n - i : ENG_ATTN_MAX_Q;
		}
		/* QK^T and PV over the causal span of each query */
		c->attn_work += 4L * bs->n * (bs->pos + (bs->n + 1) / 2) * qd;
		if (bs->logits)
			c->out_tok[c->n_out++] = nt - 1;
	}
	c->nt = nt;
	rope_table(c);
}

/* Up to three matrices sharing one activation input, split by rows. */
struct mm_job {
	const struct eng_kernels *k;
	struct {
		const struct eng_mat *w;
		float *y; /* (nt, w->rows) */
	} p[3];
	int np, nt, total;
	int chunk;         /* groups per chunk */
	const void *xa;
};

static int n_groups(const struct eng_mat *w)
{
	return (w->rows + ENG_PACK_ROWS - 1) / ENG_PACK_ROWS;
}

/* Chunk <c>: groups of 16 rows (the packed layout's unit) [c*chunk,
 * (c+1)*chunk) counted across the parts. Every chunk multiplies its rows
 * by all <nt> tokens, so each weight is read once per step. */
static void mm_task(void *ctx, int c, int ith)
{
	struct mm_job *j = ctx;
	int lo = c * j->chunk, hi = lo + j->chunk, base = 0;
	(void)ith;
	if (hi > j->total)
		hi = j->total;
	for (int i = 0; i < j->np; i++) {
		const struct eng_mat *w = j->p[i].w;
		int ng = n_groups(w);
		int a = lo > base ? lo - base : 0;
		int b = hi - base < ng ? hi - base : ng;
		if (a < b) {
			if (w->be) {
				j->k->gemm_packed[w->type]((size_t)w->cols, w->be, w->rows, a, b, j->xa,
							   j->nt, j->p[i].y, (size_t)w->rows);
			} else {
				int r1 = b * ENG_PACK_ROWS < w->rows ? b * ENG_PACK_ROWS : w->rows;
				eng_matmul_rows(j->k, w->type, w->data, (size_t)w->cols,
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
	int n;
};

/* Chunk <t>: activation row t. */
static void quant_task(void *ctx, int t, int ith)
{
	struct quant_job *q = ctx;
	(void)ith;
	q->fn(q->x + (size_t)t * q->ldx, q->xa + (size_t)t * q->row_bytes, (size_t)q->n);
}

/* y_i = W_i x for <np> parts (all with <x>'s width as columns) over <nt>
 * rows of <x> (<ldx> apart). Parts are grouped by the activation format
 * their weight type needs; each group quantizes <x> once. */
static void matmul(struct cpu_compute *c, const struct eng_mat *const *w, float *const *y,
		   int np, const float *x, size_t ldx, int nt)
{
	int done[3] = {0};
	int nth = eng_pool_size(c->pool);
	for (int i = 0; i < np; i++) {
		if (done[i])
			continue;
		enum eng_act a = eng_qtype_act(w[i]->type);
		struct mm_job j = {.k = c->k, .nt = nt};
		long rows = 0;
		for (int k = i; k < np; k++) {
			if (done[k] || eng_qtype_act(w[k]->type) != a)
				continue;
			done[k] = 1;
			j.p[j.np].w = w[k];
			j.p[j.np++].y = y[k];
			j.total += n_groups(w[k]);
			rows += w[k]->rows;
		}
		int n = w[i]->cols;
		struct quant_job q = {
			.fn = c->k->quant[a], .x = x, .ldx = ldx, .xa = c->xa,
			.row_bytes = eng_act_row_bytes(a, (size_t)n), .n = n,
		};
		if (a == ENG_ACT_F32 && ldx == (size_t)n) {
			j.xa = x; /* already in the right form */
		} else {
			eng_pool_run(c->pool, quant_task, &q, nt, (long)nt * n >= PAR_MIN_WORK);
			j.xa = c->xa;
		}
		long work = rows * n * nt;
		int par = work >= PAR_MIN_WORK;
		j.chunk = par ? j.total / (nth * CHUNKS_PER_THREAD) : j.total;
		if (j.chunk < 1)
			j.chunk = 1;
		eng_pool_run(c->pool, mm_task, &j, (j.total + j.chunk - 1) / j.chunk, par);
	}
}

static void cpu_matmul(void *p, const struct eng_mm *parts, int np, enum eng_buf src)
{
	struct cpu_compute *c = p;
	const struct eng_mat *w[3];
	float *y[3];
	for (int i = 0; i < np && i < 3; i++) {
		w[i] = parts[i].w;
		y[i] = c->buf[parts[i].dst];
	}
	matmul(c, w, y, np < 3 ? np : 3, c->buf[src], (size_t)c->ld[src], c->nt);
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

static void rope_apply(enum eng_arch arch, int n_rot, float *v, const float *r)
{
	int half = n_rot / 2;
	if (arch == ENG_ARCH_LLAMA) {
		for (int i = 0; i < half; i++) {
			float co = r[2 * i], si = r[2 * i + 1];
			float a = v[2 * i], b = v[2 * i + 1];
			v[2 * i] = a * co - b * si;
			v[2 * i + 1] = a * si + b * co;
		}
	} else {
		for (int i = 0; i < half; i++) {
			float co = r[2 * i], si = r[2 * i + 1];
			float a = v[i], b = v[i + half];
			v[i] = a * co - b * si;
			v[i + half] = a * si + b * co;
		}
	}
}

/* The per-token steps between the matmuls, run over chunks of tokens. */
enum tok_step {
	STEP_NORM = 0, /* dst = rmsnorm(src (+= add)) * w */
	STEP_QKV,      /* biases, q/k norms, RoPE; K and V into the cells */
	STEP_SWIGLU,   /* HB = silu(HB) * HB2 */
	STEP_ADD,      /* dst += src */
	STEP_COUNT
};

struct tok_job {
	struct cpu_compute *c;
	enum tok_step step;
	enum eng_buf dst, src, add;
	const float *w;
	const struct eng_layer *l;
	int li, per; /* <per> tokens a chunk */
};

static void add_rows(float *x, const float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] += y[i];
}

static void qkv_token(struct cpu_compute *c, const struct eng_layer *l, int li, int t)
{
	const struct eng_hparams *hp = &c->m->hp;
	int hd = hp->head_dim, qd = hp->n_head * hd, kvd = hp->n_head_kv * hd;
	float *q = c->buf[ENG_BUF_Q] + (size_t)t * qd, *k = c->buf[ENG_BUF_K] + (size_t)t * kvd;
	float *v = c->buf[ENG_BUF_V] + (size_t)t * kvd;
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
	const float *r = c->rope + (size_t)t * hp->n_rot;
	for (int h = 0; h < hp->n_head; h++)
		rope_apply(hp->arch, hp->n_rot, q + h * hd, r);
	for (int h = 0; h < hp->n_head_kv; h++)
		rope_apply(hp->arch, hp->n_rot, k + h * hd, r);
	/* K is kept transposed, (layer, kv dim, cell), so the scores of one
	 * query are a sweep over its sequence's consecutive cells */
	size_t T = (size_t)c->kv->n_cells, cell = (size_t)c->tok_cell[t];
	size_t lofs = (size_t)li * T * kvd;
	for (int i = 0; i < kvd; i++)
		c->kv->k[lofs + (size_t)i * T + cell] = k[i];
	memcpy(c->kv->v + lofs + cell * kvd, v, (size_t)kvd * sizeof(float));
}

/* Chunk <ch>: tokens [ch*per, (ch+1)*per) of step j->step. */
static void tok_task(void *ctx, int ch, int ith)
{
	struct tok_job *j = ctx;
	struct cpu_compute *c = j->c;
	const struct eng_hparams *hp = &c->m->hp;
	int t0 = ch * j->per, t1 = t0 + j->per < c->nt ? t0 + j->per : c->nt;
	(void)ith;
	for (int t = t0; t < t1; t++) {
		switch (j->step) {
		case STEP_NORM: {
			int E = hp->n_embd;
			float *x = c->buf[j->src] + (size_t)t * c->ld[j->src];
			if (j->add != ENG_BUF_NONE)
				add_rows(x, c->buf[j->add] + (size_t)t * c->ld[j->add], (size_t)E);
			rmsnorm(c->buf[j->dst] + (size_t)t * c->ld[j->dst], x, j->w, E, hp->rms_eps);
			break;
		}
		case STEP_ADD:
			add_rows(c->buf[j->dst] + (size_t)t * c->ld[j->dst],
				 c->buf[j->src] + (size_t)t * c->ld[j->src], (size_t)c->ld[j->dst]);
			break;
		case STEP_SWIGLU: {
			int F = hp->n_ff;
			float *g = c->buf[ENG_BUF_HB] + (size_t)t * F;
			const float *u = c->buf[ENG_BUF_HB2] + (size_t)t * F;
			for (int i = 0; i < F; i++)
				g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
			break;
		}
		case STEP_QKV:
			qkv_token(c, j->l, j->li, t);
			break;
		default:
			break;
		}
	}
}

/* Runs a per-token step over the batch, split across threads when there
 * are enough values; chunks of at least 16 tokens, so threads writing the
 * transposed K cells rarely share a cache line. */
static void tok_run(struct cpu_compute *c, struct tok_job *j, int width)
{
	int nth = eng_pool_size(c->pool), nt = c->nt;
	int par = (long)nt * width >= PAR_MIN_WORK;
	j->c = c;
	j->per = par ? nt / (nth * 4) : nt;
	if (j->per < 16)
		j->per = 16;
	eng_pool_run(c->pool, tok_task, j, (nt + j->per - 1) / j->per, par);
}

static void cpu_rmsnorm(void *p, enum eng_buf dst, enum eng_buf src, enum eng_buf add,
			const float *w)
{
	struct cpu_compute *c = p;
	struct tok_job j = {.step = STEP_NORM, .dst = dst, .src = src, .add = add, .w = w};
	tok_run(c, &j, c->m->hp.n_embd);
}

static void cpu_qkv(void *p, const struct eng_layer *l, int li)
{
	struct cpu_compute *c = p;
	struct tok_job j = {.step = STEP_QKV, .l = l, .li = li};
	tok_run(c, &j, c->m->hp.n_head * c->m->hp.head_dim);
}

static void cpu_swiglu(void *p)
{
	struct cpu_compute *c = p;
	struct tok_job j = {.step = STEP_SWIGLU};
	tok_run(c, &j, 8 * c->m->hp.n_ff); /* expf: ~8 flops */
}

static void cpu_add(void *p, enum eng_buf dst, enum eng_buf src)
{
	struct cpu_compute *c = p;
	struct tok_job j = {.step = STEP_ADD, .dst = dst, .src = src};
	tok_run(c, &j, c->ld[dst]);
}

struct attn_job {
	struct cpu_compute *c;
	int li;
};

/* Chunk <w>: (tile, head) w. The pool hands chunks out last first, so the
 * costliest (latest) tiles of a prefill chunk go first and the cheap early
 * ones even out the end. */
static void attn_task(void *ctx, int w, int ith)
{
	struct attn_job *a = ctx;
	struct cpu_compute *c = a->c;
	const struct eng_hparams *hp = &c->m->hp;
	int hd = hp->head_dim, nh = hp->n_head, kvd = hp->n_head_kv * hd;
	int grp = nh / hp->n_head_kv, qd = nh * hd;
	float *sc = c->scores + (size_t)ith * ENG_ATTN_MAX_Q * c->sc_ld;
	float scale = 1.0f / sqrtf((float)hd);
	size_t T = (size_t)c->kv->n_cells, lofs = (size_t)a->li * T * kvd;
	const struct cpu_tile *tl = &c->tile[w / nh];
	const struct cpu_seg *s = &c->seg[tl->seg];
	int h = w % nh, kh = h / grp;
	const float *qs[ENG_ATTN_MAX_Q];
	float *outs[ENG_ATTN_MAX_Q];
	int np[ENG_ATTN_MAX_Q];
	for (int i = 0; i < tl->nq; i++) {
		int t = tl->t0 + i;
		qs[i] = c->buf[ENG_BUF_Q] + (size_t)t * qd + (size_t)h * hd;
		outs[i] = c->buf[ENG_BUF_ATT] + (size_t)t * qd + (size_t)h * hd;
		np[i] = c->tok_pos[t] + 1;
	}
	c->k->attn_multi(tl->nq, qs, np, c->kv->k + lofs + (size_t)kh * hd * T + (size_t)s->kv_off, T,
			 c->kv->v + lofs + (size_t)s->kv_off * kvd + (size_t)kh * hd, (size_t)kvd,
			 hd, scale, sc, c->sc_ld, outs);
}

static void cpu_attention(void *p, int li)
{
	struct cpu_compute *c = p;
	struct attn_job aj = {.c = c, .li = li};
	eng_pool_run(c->pool, attn_task, &aj, c->n_tile * c->m->hp.n_head,
		     c->attn_work >= PAR_MIN_WORK);
}

static void cpu_output(void *p, const float *norm, const struct eng_mat *w)
{
	struct cpu_compute *c = p;
	const struct eng_hparams *hp = &c->m->hp;
	int E = hp->n_embd;
	if (c->n_out == 0)
		return;
	for (int i = 0; i < c->n_out; i++)
		rmsnorm(c->xout + (size_t)i * E, c->buf[ENG_BUF_X] + (size_t)c->out_tok[i] * E, norm,
			E, hp->rms_eps);
	float *y = c->logits;
	matmul(c, &w, &y, 1, c->xout, (size_t)E, c->n_out);
}

static enum eng_status cpu_end(void *p, char *err, size_t err_len)
{
	(void)p;
	(void)err;
	(void)err_len;
	return ENG_OK;
}

static const float *cpu_logits(void *p, int i)
{
	struct cpu_compute *c = p;
	return c->logits + (size_t)i * c->m->hp.n_vocab;
}

static void cpu_free(void *ctx)
{
	free(ctx);
}

static const struct eng_backend_i cpu_iface = {
	.free = cpu_free,
	.mat_prepare = cpu_mat_prepare,
	.mat_free = cpu_mat_free,
	.kv_new = cpu_kv_new,
	.kv_free = cpu_kv_free,
	.compute_new = cpu_compute_new,
	.compute_free = cpu_compute_free,
	.begin = cpu_begin,
	.rmsnorm = cpu_rmsnorm,
	.matmul = cpu_matmul,
	.qkv = cpu_qkv,
	.attention = cpu_attention,
	.swiglu = cpu_swiglu,
	.add = cpu_add,
	.output = cpu_output,
	.end = cpu_end,
	.logits = cpu_logits,
};

enum eng_status eng_backend_cpu_new(const struct eng_kernels *k, struct eng_backend **out,
				    char *err, size_t err_len)
{
	*out = NULL;
	if (!k)
		k = eng_kernels_get();
	if (!k) {
		seterr(err, err_len, "LW_ENGINE_KERNELS names a kernel set this CPU lacks "
		       "(scalar, avx2, avx512)");
		return ENG_ERR_ARG;
	}
	struct eng_backend *b = calloc(1, sizeof(*b));
	struct cpu_be *cb = calloc(1, sizeof(*cb));
	if (!b || !cb) {
		free(b);
		free(cb);
		seterr(err, err_len, "out of memory");
		return ENG_ERR_NOMEM;
	}
	cb->k = k;
	b->iface = &cpu_iface;
	b->ctx = cb;
	snprintf(b->name, sizeof(b->name), "cpu-%s", k->name);
	*out = b;
	return ENG_OK;
}
