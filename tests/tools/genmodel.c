#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant.h"
#include "tests/tools/genmodel.h"

enum kind { K_MAT, K_NORM, K_BIAS };

struct plan {
	char name[64];
	enum eng_type type;
	int rows, cols; /* vectors: rows = 1 */
	enum kind kind;
	float scale;
};

struct gm_model {
	struct gm_spec s;
	struct eng_gguf_writer *w;
	struct plan *t;
	int n_t;
	uint64_t n_params;
	float *row; /* one row of floats (max cols) */
};

static void seterr(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t len, const char *fmt, ...)
{
	if (!err || !len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

int gm_preset(const char *name, struct gm_spec *s)
{
	memset(s, 0, sizeof(*s));
	s->arch = "llama";
	s->type = ENG_TYPE_F32;
	s->rope_base = 10000.0f;
	s->seed = 1;
	s->n_ctx = 512;
	if (!strcmp(name, "tiny")) {
		s->n_embd = 64; s->n_layer = 2; s->n_head = 4; s->n_head_kv = 2;
		s->head_dim = 16; s->n_ff = 128; s->n_vocab = 320;
	} else if (!strcmp(name, "tiny256")) {
		s->n_embd = 256; s->n_layer = 2; s->n_head = 4; s->n_head_kv = 2;
		s->head_dim = 64; s->n_ff = 512; s->n_vocab = 320;
	} else if (!strcmp(name, "100m")) {
		s->n_embd = 768; s->n_layer = 12; s->n_head = 12; s->n_head_kv = 12;
		s->head_dim = 64; s->n_ff = 2048; s->n_vocab = 50257; s->tied = 1;
		s->n_ctx = 2048;
	} else {
		return -1;
	}
	return 0;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static float urand(uint64_t *st) /* [-1, 1) */
{
	*st ^= *st << 13;
	*st ^= *st >> 7;
	*st ^= *st << 17;
	return (float)(*st >> 40) / 8388608.0f - 1.0f;
}

static int add_plan(struct gm_model *m, const char *name, enum eng_type type, int rows,
		    int cols, enum kind kind, float scale)
{
	struct plan *p = &m->t[m->n_t++];
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->type = type;
	p->rows = rows;
	p->cols = cols;
	p->kind = kind;
	p->scale = scale;
	m->n_params += (uint64_t)rows * (uint64_t)cols;
	uint64_t dims[2] = {(uint64_t)cols, (uint64_t)rows};
	return eng_gguf_writer_add_tensor(m->w, name, type, kind == K_MAT ? 2 : 1, dims, NULL);
}

static enum eng_status synth_vocab(struct gm_model *m)
{
	int n = m->s.n_vocab;
	char **tok = calloc((size_t)n, sizeof(char *));
	float *score = calloc((size_t)n, sizeof(float));
	int32_t *type = calloc((size_t)n, sizeof(int32_t));
	enum eng_status st = ENG_ERR_NOMEM;
	if (!tok || !score || !type)
		goto out;
	const char *sp = "\xe2\x96\x81"; /* U+2581, SentencePiece's space */
	int i = 0, c1 = 0;
	char buf[16];
	for (; i < n; i++) {
		if (i == 0) {
			snprintf(buf, sizeof(buf), "<unk>");
			type[i] = 2;
		} else if (i == 1 || i == 2) {
			snprintf(buf, sizeof(buf), i == 1 ? "<s>" : "</s>");
			type[i] = 3;
		} else if (i < 259) {
			snprintf(buf, sizeof(buf), "<0x%02X>", i - 3);
			type[i] = 6;
		} else {
			/* ▁, letters, ▁letter, letter pairs, ▁pairs … */
			int k = c1++;
			type[i] = 1;
			if (k == 0)
				snprintf(buf, sizeof(buf), "%s", sp);
			else if (k <= 26)
				snprintf(buf, sizeof(buf), "%c", 'a' + k - 1);
			else if (k <= 52)
				snprintf(buf, sizeof(buf), "%s%c", sp, 'a' + k - 27);
			else {
				int p = (k - 53) / 2, pre = (k - 53) % 2;
				snprintf(buf, sizeof(buf), "%s%c%c", pre ? sp : "",
					 'a' + (p / 26) % 26, 'a' + p % 26);
			}
			score[i] = -(float)k;
		}
		tok[i] = strdup(buf);
		if (!tok[i])
			goto out;
	}
	if ((st = eng_gguf_writer_set_str(m->w, "tokenizer.ggml.model", "llama")) ||
	    (st = eng_gguf_writer_set_arr_str(m->w, "tokenizer.ggml.tokens",
					      (const char *const *)tok, (uint64_t)n)) ||
	    (st = eng_gguf_writer_set_arr(m->w, "tokenizer.ggml.scores", ENG_GGUF_F32, score,
					  (uint64_t)n)) ||
	    (st = eng_gguf_writer_set_arr(m->w, "tokenizer.ggml.token_type", ENG_GGUF_I32, type,
					  (uint64_t)n)) ||
	    (st = eng_gguf_writer_set_u32(m->w, "tokenizer.ggml.bos_token_id", 1)) ||
	    (st = eng_gguf_writer_set_u32(m->w, "tokenizer.ggml.eos_token_id", 2)) ||
	    (st = eng_gguf_writer_set_u32(m->w, "tokenizer.ggml.unknown_token_id", 0)))
		goto out;
	st = ENG_OK;
out:
	if (tok)
		for (int j = 0; j < n; j++)
			free(tok[j]);
	free(tok);
	free(score);
	free(type);
	return st;
}

/* Copies every tokenizer.* key of <v>; returns the token count in *<n_tok>. */
static enum eng_status copy_vocab(struct gm_model *m, const struct eng_gguf *v, int *n_tok,
				  char *err, size_t err_len)
{
	enum eng_status st = ENG_OK;
	*n_tok = 0;
	for (uint64_t i = 0; i < eng_gguf_n_kv(v) && st == ENG_OK; i++) {
		const char *key = eng_gguf_kv_key(v, i);
		if (strncmp(key, "tokenizer.", 10) != 0)
			continue;
		enum eng_gguf_vtype t = eng_gguf_kv_type(v, i);
		uint64_t u;
		int64_t s;
		double d;
		bool b;
		struct eng_str str;
		struct eng_gguf_arr arr;
		switch (t) {
		case ENG_GGUF_U8: case ENG_GGUF_U16: case ENG_GGUF_U32: case ENG_GGUF_U64:
			if ((st = eng_gguf_kv_u64(v, i, &u)) == ENG_OK)
				st = t == ENG_GGUF_U64 ? eng_gguf_writer_set_u64(m->w, key, u)
						       : eng_gguf_writer_set_u32(m->w, key, (uint32_t)u);
			break;
		case ENG_GGUF_I8: case ENG_GGUF_I16: case ENG_GGUF_I32: case ENG_GGUF_I64:
			if ((st = eng_gguf_kv_i64(v, i, &s)) == ENG_OK)
				st = t == ENG_GGUF_I64 ? eng_gguf_writer_set_i64(m->w, key, s)
						       : eng_gguf_writer_set_i32(m->w, key, (int32_t)s);
			break;
		case ENG_GGUF_F32: case ENG_GGUF_F64:
			if ((st = eng_gguf_kv_f64(v, i, &d)) == ENG_OK)
				st = t == ENG_GGUF_F64 ? eng_gguf_writer_set_f64(m->w, key, d)
						       : eng_gguf_writer_set_f32(m->w, key, (float)d);
			break;
		case ENG_GGUF_BOOL:
			if ((st = eng_gguf_get_bool(v, key, &b)) == ENG_OK)
				st = eng_gguf_writer_set_bool(m->w, key, b);
			break;
		case ENG_GGUF_STRING:
			if ((st = eng_gguf_kv_str(v, i, &str)) == ENG_OK)
				st = eng_gguf_writer_set_strn(m->w, key, str.ptr, str.len);
			break;
		case ENG_GGUF_ARRAY:
			if ((st = eng_gguf_kv_arr(v, i, &arr)) != ENG_OK)
				break;
			if (!strcmp(key, "tokenizer.ggml.tokens"))
				*n_tok = (int)arr.n;
			if (arr.type == ENG_GGUF_STRING) {
				char **ss = calloc(arr.n ? arr.n : 1, sizeof(char *));
				st = ss ? ENG_OK : ENG_ERR_NOMEM;
				for (uint64_t j = 0; j < arr.n && st == ENG_OK; j++) {
					if ((st = eng_gguf_arr_str(&arr, j, &str)) != ENG_OK)
						break;
					ss[j] = strndup(str.ptr, str.len);
					if (!ss[j])
						st = ENG_ERR_NOMEM;
				}
				if (st == ENG_OK)
					st = eng_gguf_writer_set_arr_str(m->w, key, (const char *const *)ss, arr.n);
				for (uint64_t j = 0; ss && j < arr.n; j++)
					free(ss[j]);
				free(ss);
			} else if (arr.type != ENG_GGUF_ARRAY) {
				static const size_t esz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
				size_t sz = arr.n * esz[arr.type];
				void *cp = malloc(sz ? sz : 1);
				const void *raw = eng_gguf_arr_raw(&arr);
				if (!cp || !raw) {
					free(cp);
					st = ENG_ERR_NOMEM;
					break;
				}
				memcpy(cp, raw, sz);
				st = eng_gguf_writer_set_arr(m->w, key, arr.type, cp, arr.n);
				free(cp);
			}
			break;
		default:
			break;
		}
		if (st != ENG_OK)
			seterr(err, err_len, "copying %s: %s", key, eng_strerror(st));
	}
	return st;
}

void gm_free(struct gm_model *m)
{
	if (!m)
		return;
	eng_gguf_writer_free(m->w);
	free(m->t);
	free(m->row);
	free(m);
}

uint64_t gm_n_params(const struct gm_model *m) { return m->n_params; }

static enum eng_status set_arch_u32(struct gm_model *m, const char *suffix, uint32_t v)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", m->s.arch, suffix);
	return eng_gguf_writer_set_u32(m->w, key, v);
}

static enum eng_status set_arch_f32(struct gm_model *m, const char *suffix, float v)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", m->s.arch, suffix);
	return eng_gguf_writer_set_f32(m->w, key, v);
}

enum eng_status gm_new(const struct gm_spec *s, struct gm_model **out, char *err, size_t err_len)
{
	enum eng_status st = ENG_ERR_NOMEM;
	struct gm_model *m = calloc(1, sizeof(*m));
	struct eng_file *vf = NULL;
	*out = NULL;
	if (!m)
		goto fail;
	m->s = *s;
	int qwen2 = !strcmp(s->arch, "qwen2"), qwen3 = !strcmp(s->arch, "qwen3");
	if (!qwen2 && !qwen3 && strcmp(s->arch, "llama")) {
		st = ENG_ERR_UNSUPPORTED;
		seterr(err, err_len, "unknown architecture %s", s->arch);
		goto fail;
	}
	m->w = eng_gguf_writer_new(3, 32);
	m->t = calloc((size_t)s->n_layer * 16 + 8, sizeof(*m->t));
	int maxc = s->n_embd > s->n_ff ? s->n_embd : s->n_ff;
	if (s->n_head * s->head_dim > maxc)
		maxc = s->n_head * s->head_dim;
	m->row = malloc((size_t)maxc * sizeof(float));
	if (!m->w || !m->t || !m->row)
		goto fail;
	if ((st = eng_gguf_writer_set_str(m->w, "general.architecture", s->arch)) ||
	    (st = eng_gguf_writer_set_str(m->w, "general.name", "loopwarden generated test model")) ||
	    (st = set_arch_u32(m, "context_length", (uint32_t)s->n_ctx)) ||
	    (st = set_arch_u32(m, "embedding_length", (uint32_t)s->n_embd)) ||
	    (st = set_arch_u32(m, "block_count", (uint32_t)s->n_layer)) ||
	    (st = set_arch_u32(m, "feed_forward_length", (uint32_t)s->n_ff)) ||
	    (st = set_arch_u32(m, "attention.head_count", (uint32_t)s->n_head)) ||
	    (st = set_arch_u32(m, "attention.head_count_kv", (uint32_t)s->n_head_kv)) ||
	    (st = set_arch_u32(m, "rope.dimension_count", (uint32_t)s->head_dim)) ||
	    (st = set_arch_f32(m, "rope.freq_base", s->rope_base)) ||
	    (st = set_arch_f32(m, "attention.layer_norm_rms_epsilon", qwen2 || qwen3 ? 1e-6f : 1e-5f)))
		goto fail;
	if (s->head_dim * s->n_head != s->n_embd &&
	    ((st = set_arch_u32(m, "attention.key_length", (uint32_t)s->head_dim)) ||
	     (st = set_arch_u32(m, "attention.value_length", (uint32_t)s->head_dim))))
		goto fail;
	int n_vocab = s->n_vocab;
	if (s->vocab_path) {
		if ((st = eng_file_open(NULL, s->vocab_path, ENG_LOAD_MMAP, &vf, err, err_len)))
			goto fail;
		if ((st = copy_vocab(m, eng_file_gguf(vf), &n_vocab, err, err_len)))
			goto fail;
		if (n_vocab <= 0) {
			st = ENG_ERR_FORMAT;
			seterr(err, err_len, "%s has no tokenizer.ggml.tokens", s->vocab_path);
			goto fail;
		}
	} else if ((st = synth_vocab(m))) {
		seterr(err, err_len, "synthetic vocabulary: %s", eng_strerror(st));
		goto fail;
	}
	m->s.n_vocab = n_vocab;
	if (s->chat_template &&
	    (st = eng_gguf_writer_set_str(m->w, "tokenizer.chat_template", s->chat_template)))
		goto fail;
	int E = s->n_embd, qd = s->n_head * s->head_dim, kvd = s->n_head_kv * s->head_dim;
	float ws = s->weight_scale;
#define SC(n) (ws > 0 ? ws : 1.0f / sqrtf((float)(n)))
	char nm[64];
	if ((st = add_plan(m, "token_embd.weight", s->type, n_vocab, E, K_MAT, SC(E) * 4)) ||
	    (st = add_plan(m, "output_norm.weight", ENG_TYPE_F32, 1, E, K_NORM, 0)))
		goto fail;
	if (!s->tied && (st = add_plan(m, "output.weight", s->type, n_vocab, E, K_MAT, SC(E) * 4)))
		goto fail;
	for (int l = 0; l < s->n_layer; l++) {
#define P(suffix, type, rows, cols, kind, scale) \
	(snprintf(nm, sizeof(nm), "blk.%d.%s", l, suffix), \
	 add_plan(m, nm, type, rows, cols, kind, scale))
		if ((st = P("attn_norm.weight", ENG_TYPE_F32, 1, E, K_NORM, 0)) ||
		    (st = P("attn_q.weight", s->type, qd, E, K_MAT, SC(E))) ||
		    (st = P("attn_k.weight", s->type, kvd, E, K_MAT, SC(E))) ||
		    (st = P("attn_v.weight", s->type, kvd, E, K_MAT, SC(E))) ||
		    (st = P("attn_output.weight", s->type, E, qd, K_MAT, SC(qd))) ||
		    (st = P("ffn_norm.weight", ENG_TYPE_F32, 1, E, K_NORM, 0)) ||
		    (st = P("ffn_gate.weight", s->type, s->n_ff, E, K_MAT, SC(E))) ||
		    (st = P("ffn_up.weight", s->type, s->n_ff, E, K_MAT, SC(E))) ||
		    (st = P("ffn_down.weight", s->type, E, s->n_ff, K_MAT, SC(s->n_ff))))
			goto fail;
		if (qwen2 && ((st = P("attn_q.bias", ENG_TYPE_F32, 1, qd, K_BIAS, 0)) ||
			      (st = P("attn_k.bias", ENG_TYPE_F32, 1, kvd, K_BIAS, 0)) ||
			      (st = P("attn_v.bias", ENG_TYPE_F32, 1, kvd, K_BIAS, 0))))
			goto fail;
		if (qwen3 && ((st = P("attn_q_norm.weight", ENG_TYPE_F32, 1, s->head_dim, K_NORM, 0)) ||
			      (st = P("attn_k_norm.weight", ENG_TYPE_F32, 1, s->head_dim, K_NORM, 0))))
			goto fail;
#undef P
	}
#undef SC
	if (st != ENG_OK) {
		seterr(err, err_len, "adding tensors: %s", eng_strerror(st));
		goto fail;
	}
	if (vf) {
		char e2[64];
		if (eng_file_close(vf, e2, sizeof(e2)) != ENG_OK) {
			vf = NULL;
			st = ENG_ERR_UNMAP;
			goto fail;
		}
	}
	*out = m;
	return ENG_OK;
fail:
	if (st == ENG_ERR_NOMEM && err && !*err)
		seterr(err, err_len, "out of memory");
	if (st != ENG_OK && err && !*err)
		seterr(err, err_len, "%s", eng_strerror(st));
	if (vf) {
		char e2[64];
		if (eng_file_close(vf, e2, sizeof(e2)) != ENG_OK)
			st = ENG_ERR_UNMAP;
	}
	gm_free(m);
	return st;
}

static int fill(void *ctx, uint64_t i, const char *name, void *buf, uint64_t n_bytes)
{
	struct gm_model *m = ctx;
	(void)name;
	if (i >= (uint64_t)m->n_t)
		return -1;
	const struct plan *p = &m->t[i];
	uint64_t st = mix(m->s.seed ^ mix(i + 1));
	size_t rb = eng_qtype_row_bytes((enum eng_qtype)p->type, (size_t)p->cols);
	if (rb * (uint64_t)p->rows != n_bytes)
		return -1;
	for (int r = 0; r < p->rows; r++) {
		for (int c = 0; c < p->cols; c++) {
			float u = urand(&st);
			m->row[c] = p->kind == K_MAT ? u * p->scale * 1.7320508f
				  : p->kind == K_NORM ? 1.0f + 0.2f * u : 0.1f * u;
		}
		eng_quantize_row((enum eng_qtype)p->type, m->row, (char *)buf + (size_t)r * rb,
				 (size_t)p->cols);
	}
	return 0;
}

enum eng_status gm_write_file(struct gm_model *m, const char *path, char *err, size_t err_len)
{
	return eng_gguf_writer_write_file(m->w, path, fill, m, err, err_len);
}

enum eng_status gm_write_mem(struct gm_model *m, void **buf, size_t *len, char *err, size_t err_len)
{
	return eng_gguf_writer_write_mem(m->w, fill, m, buf, len, err, err_len);
}
