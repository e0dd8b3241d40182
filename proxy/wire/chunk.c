/* Chunk JSON -> guard events (see chunk.h). yajl's callback parser runs with
 * an arena allocator over a small buffer owned by the converter, so
 * converting a chunk of ordinary size allocates nothing; the rare larger
 * allocation (an escaped string of tens of KiB) spills to the heap and is
 * freed with the parser. The strings a chunk keeps go to a scratch buffer
 * that grows on demand up to the cap and is released after a large chunk.
 * Values are collected first (a chunk's keys may come in any order) and
 * events are emitted once the whole chunk parsed. */
#include "proxy/wire/chunk.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "guards/utf8.h"

#define CHUNK_DEPTH_MAX 64
#define CHUNK_ARENA_BYTES (32 * 1024)   /* yajl's handle, stack and buffers for one chunk */
#define CHUNK_SCRATCH_MIN 4096          /* first size of the scratch buffer */
#define CHUNK_SCRATCH_KEEP (64 * 1024)  /* a scratch buffer grown past this is freed after its chunk */

/* ---- arena allocator for yajl ---------------------------------------- */

struct arena {
	char *base;
	size_t cap;
	size_t used;
	size_t last;       /* offset of the last block's header, for in-place growth */
	uint64_t spilled;  /* allocations that did not fit (fell back to malloc) */
};

#define ARENA_ALIGN 16
struct arena_hdr {
	size_t size;
	size_t magic; /* ARENA_MAGIC in arena blocks, SPILL_MAGIC for malloc'd ones */
};
#define ARENA_MAGIC ((size_t)0x61726e61u)
#define SPILL_MAGIC ((size_t)0x7370696cu)

static size_t align_up(size_t n)
{
	return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

static void *arena_malloc(void *ctx, size_t sz)
{
	struct arena *a = ctx;
	size_t need = align_up(sizeof(struct arena_hdr)) + align_up(sz);
	struct arena_hdr *h;

	if (need <= a->cap - a->used) {
		h = (struct arena_hdr *)(a->base + a->used);
		h->size = sz;
		h->magic = ARENA_MAGIC;
		a->last = a->used;
		a->used += need;
		return (char *)h + align_up(sizeof(*h));
	}
	/* Never hand yajl a NULL (it does not check): spill to the heap. */
	a->spilled++;
	h = malloc(need);
	if (!h)
		abort();
	h->size = sz;
	h->magic = SPILL_MAGIC;
	return (char *)h + align_up(sizeof(*h));
}

static struct arena_hdr *hdr_of(void *p)
{
	return (struct arena_hdr *)((char *)p - align_up(sizeof(struct arena_hdr)));
}

static void arena_free(void *ctx, void *p)
{
	struct arena *a = ctx;
	struct arena_hdr *h;

	if (!p)
		return;
	h = hdr_of(p);
	if (h->magic == SPILL_MAGIC) {
		free(h);
		return;
	}
	if ((char *)h - a->base == (ptrdiff_t)a->last && a->used > a->last) {
		a->used = a->last; /* pop the last block */
	}
}

static void *arena_realloc(void *ctx, void *p, size_t sz)
{
	struct arena *a = ctx;
	struct arena_hdr *h;
	void *q;

	if (!p)
		return arena_malloc(ctx, sz);
	h = hdr_of(p);
	if (h->magic == SPILL_MAGIC) {
		/* Already on the heap: grow it there (yajl's buffers double). */
		struct arena_hdr *n = realloc(h, align_up(sizeof(*h)) + align_up(sz));

		if (!n)
			abort();
		n->size = sz;
		return (char *)n + align_up(sizeof(*n));
	}
	if (h->magic == ARENA_MAGIC && (char *)h - a->base == (ptrdiff_t)a->last) {
		size_t need = align_up(sizeof(*h)) + align_up(sz);

		if (need <= a->cap - a->last) {
			h->size = sz;
			a->used = a->last + need;
			return p;
		}
	}
	q = arena_malloc(ctx, sz);
	memcpy(q, p, h->size < sz ? h->size : sz);
	arena_free(ctx, p);
	return q;
}

/* ---- converter state ------------------------------------------------- */

struct span {
	uint32_t off, len;
	bool set;
};

struct tc_delta {
	int64_t index;
	bool has_index;
	struct span id, name, args;
};

struct choice_acc {
	int64_t index;
	struct span content, reasoning, reasoning_alt, finish;
	uint32_t n_tc;
	uint32_t tc_cap;       /* allocated entries of <tc> */
	struct tc_delta *tc;   /* PX_CHUNK_MAX_DELTAS, grown for bodies */
};

/* The most recent PX_CHUNK_MAX_OPEN calls, a ring: call number k (0-based
 * in the answer) lives in calls[k % PX_CHUNK_MAX_OPEN]. */
struct call {
	uint32_t index;
	uint32_t id_len, name_len;
	uint64_t args_bytes;
	bool open;
	char id[PX_CHUNK_ID_MAX];
	char name[PX_CHUNK_NAME_MAX];
};

enum loc {
	L_ROOT = 0, L_CHOICES, L_CHOICE, L_DELTA, L_TOOLCALLS, L_TOOLCALL,
	L_FUNCTION, L_USAGE, L_ERROR, L_SKIP, L_COUNT
};

enum key {
	K_NONE = 0, K_OTHER, K_CHOICES, K_USAGE, K_ERROR, K_ID, K_MODEL, K_INDEX,
	K_DELTA, K_MESSAGE, K_FINISH, K_CONTENT, K_REASONING_CONTENT, K_REASONING,
	K_TOOL_CALLS, K_FUNCTION, K_NAME, K_ARGUMENTS, K_PROMPT_TOKENS,
	K_COMPLETION_TOKENS, K_OBJECT, K_COUNT
};

struct frame {
	enum loc loc;
	enum key key;
	bool is_map;
	uint32_t n; /* elements seen in an array */
};

struct px_chunk {
	size_t cap;
	struct arena arena;
	char *scratch;           /* unescaped strings of the chunk being parsed; NULL until needed */
	size_t scratch_alloc;    /* bytes allocated at <scratch> */
	size_t scratch_cap;      /* the most it may grow to (from the cap) */
	size_t scratch_used;

	/* parse state */
	bool body_mode;
	struct frame frames[CHUNK_DEPTH_MAX];
	int depth;
	struct choice_acc acc[2];
	int cur;                 /* acc slot of the choice being parsed, -1 outside */
	bool have_chosen;
	bool usage_set;
	int64_t prompt_tokens, completion_tokens;
	bool is_error;
	struct span err_msg, id, model;
	enum px_chunk_status pst;
	char perr[200];

	/* answer state */
	struct call calls[PX_CHUNK_MAX_OPEN];
	uint64_t n_calls;        /* calls begun in this answer */
	struct px_chunk_info info;
};

const char *px_chunk_strerror(enum px_chunk_status st)
{
	switch (st) {
	case PX_CHUNK_OK: return "ok";
	case PX_CHUNK_EJSON: return "not JSON";
	case PX_CHUNK_ESHAPE: return "not a chat completion chunk";
	case PX_CHUNK_EUPSTREAM: return "upstream error";
	case PX_CHUNK_ETOOBIG: return "chunk too large";
	case PX_CHUNK_ESTOPPED: return "stopped by the event callback";
	case PX_CHUNK_EINVAL: return "invalid argument";
	case PX_CHUNK_ENOMEM: return "out of memory";
	}
	return "unknown chunk status";
}

struct px_chunk *px_chunk_new(size_t cap)
{
	struct px_chunk *c = NULL;

	/* spans are 32-bit offsets into scratch (at most 2 * cap + 1024) */
	if (cap == 0 || cap > ((size_t)1 << 30))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->cap = cap;
	c->arena.cap = CHUNK_ARENA_BYTES; /* yajl buffers; a larger need spills to malloc */
	c->arena.base = malloc(c->arena.cap);
	c->scratch_cap = 2 * cap + 1024;
	for (int i = 0; i < 2; i++) {
		c->acc[i].tc_cap = PX_CHUNK_MAX_DELTAS;
		c->acc[i].tc = calloc(PX_CHUNK_MAX_DELTAS, sizeof(struct tc_delta));
		if (!c->acc[i].tc)
			goto fail;
	}
	if (!c->arena.base)
		goto fail;
	px_chunk_reset(c);
	return c;
fail:
	px_chunk_free(c);
	return NULL;
}

void px_chunk_free(struct px_chunk *c)
{
	if (!c)
		return;
	free(c->arena.base);
	free(c->scratch);
	free(c->acc[0].tc);
	free(c->acc[1].tc);
	free(c);
}

/* After a large chunk or body: give its memory back. */
static void release_large(struct px_chunk *c)
{
	if (c->scratch_alloc > CHUNK_SCRATCH_KEEP) {
		free(c->scratch);
		c->scratch = NULL;
		c->scratch_alloc = 0;
	}
	for (int i = 0; i < 2; i++) {
		if (c->acc[i].tc_cap > PX_CHUNK_MAX_DELTAS) {
			/* a body's many calls: back to the stream size (shrinking cannot fail
			 * in practice; if it does, the larger table stays) */
			struct tc_delta *p = realloc(c->acc[i].tc, PX_CHUNK_MAX_DELTAS * sizeof(*p));

			if (p) {
				c->acc[i].tc = p;
				c->acc[i].tc_cap = PX_CHUNK_MAX_DELTAS;
			}
			c->acc[i].n_tc = 0;
		}
	}
}

void px_chunk_reset(struct px_chunk *c)
{
	if (!c)
		return;
	c->n_calls = 0;
	memset(&c->info, 0, sizeof(c->info));
	release_large(c);
}

void px_chunk_info(const struct px_chunk *c, struct px_chunk_info *out)
{
	if (!c) {
		memset(out, 0, sizeof(*out));
		return;
	}
	*out = c->info;
}

/* ---- yajl callbacks -------------------------------------------------- */

static int fail_shape(struct px_chunk *c, const char *what)
{
	if (c->pst == PX_CHUNK_OK) {
		c->pst = PX_CHUNK_ESHAPE;
		snprintf(c->perr, sizeof(c->perr), "%s", what);
	}
	return 0;
}

static int fail_big(struct px_chunk *c, const char *what)
{
	if (c->pst == PX_CHUNK_OK) {
		c->pst = PX_CHUNK_ETOOBIG;
		snprintf(c->perr, sizeof(c->perr), "%s", what);
	}
	return 0;
}

static struct frame *top(struct px_chunk *c)
{
	return c->depth > 0 ? &c->frames[c->depth - 1] : NULL;
}

static struct choice_acc *cur_choice(struct px_chunk *c)
{
	return c->cur >= 0 ? &c->acc[c->cur] : NULL;
}

static struct tc_delta *cur_tc(struct px_chunk *c)
{
	struct choice_acc *ch = cur_choice(c);

	if (!ch || ch->n_tc == 0)
		return NULL;
	return &ch->tc[ch->n_tc - 1];
}

/* Copies <s, len> into scratch, NUL-terminated, growing it (spans are
 * offsets, so growing moves nothing that was saved). */
static bool save(struct px_chunk *c, struct span *sp, const unsigned char *s, size_t len)
{
	size_t need = c->scratch_used + len + 1;

	if (len + 1 > c->scratch_cap - c->scratch_used) {
		fail_big(c, "chunk strings exceed the cap");
		return false;
	}
	if (need > c->scratch_alloc) {
		size_t n = c->scratch_alloc ? c->scratch_alloc : CHUNK_SCRATCH_MIN;
		char *p;

		while (n < need)
			n = n > c->scratch_cap / 2 ? c->scratch_cap : 2 * n;
		if (n > c->scratch_cap)
			n = c->scratch_cap;
		p = realloc(c->scratch, n);
		if (!p) {
			if (c->pst == PX_CHUNK_OK) {
				c->pst = PX_CHUNK_ENOMEM;
				snprintf(c->perr, sizeof(c->perr), "out of memory for chunk strings");
			}
			return false;
		}
		c->scratch = p;
		c->scratch_alloc = n;
	}
	memcpy(c->scratch + c->scratch_used, s, len);
	c->scratch[c->scratch_used + len] = '\0';
	sp->off = (uint32_t)c->scratch_used;
	sp->len = (uint32_t)len;
	sp->set = true;
	c->scratch_used += len + 1;
	return true;
}

static const char *at(const struct px_chunk *c, const struct span *sp)
{
	return c->scratch + sp->off;
}

/* <prefix> then the saved string <sp> into <dst> (<dstlen> bytes,
 * NUL-terminated), cut on a UTF-8 character boundary: what the converter
 * reports (ids, model, finish reason, an upstream's error message) ends up
 * in JSON loopwarden writes, which must stay valid UTF-8. The strings were
 * validated by yajl, so cutting is all they need. */
static void copy_text(char *dst, size_t dstlen, const char *prefix, const struct px_chunk *c,
                      const struct span *sp)
{
	size_t pl = strlen(prefix);
	const char *s = at(c, sp);
	size_t n = strnlen(s, sp->len);

	if (pl >= dstlen)
		pl = dstlen - 1;
	memcpy(dst, prefix, pl);
	n = gd_utf8_cut(s, n, dstlen - 1 - pl);
	memcpy(dst + pl, s, n);
	dst[pl + n] = '\0';
}

/* Before a value at the top level, a value that is not a map is refused. */
static int at_root_scalar(struct px_chunk *c)
{
	if (c->depth == 0)
		return fail_shape(c, "chunk is not a JSON object");
	if (!top(c)->is_map)
		top(c)->n++;
	return 1;
}

static int cb_null(void *ctx)
{
	struct px_chunk *c = ctx;
	struct frame *f;

	if (!at_root_scalar(c))
		return 0;
	f = top(c);
	if (f->loc == L_CHOICES || f->loc == L_TOOLCALLS)
		return fail_shape(c, f->loc == L_CHOICES ? "choices[] holds a non-object"
		                                         : "tool_calls[] holds a non-object");
	return 1;
}

static int cb_boolean(void *ctx, int b)
{
	(void)b;
	return cb_null(ctx);
}

static int cb_number(void *ctx, const char *s, size_t len)
{
	struct px_chunk *c = ctx;
	struct frame *f;
	char buf[32];
	char *end;
	long long v;

	if (!at_root_scalar(c))
		return 0;
	f = top(c);
	if (f->loc == L_CHOICES || f->loc == L_TOOLCALLS)
		return cb_null(ctx);
	if (!f->is_map)
		return 1;
	if (!((f->loc == L_CHOICE && f->key == K_INDEX) || (f->loc == L_TOOLCALL && f->key == K_INDEX) ||
	      (f->loc == L_USAGE && (f->key == K_PROMPT_TOKENS || f->key == K_COMPLETION_TOKENS))))
		return 1;
	if (len >= sizeof(buf))
		return fail_shape(c, "number too long");
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || *end != '\0' || v < 0 ||
	    v > (f->key == K_INDEX ? (long long)UINT32_MAX : (long long)INT64_MAX / 2))
		return fail_shape(c, f->key == K_INDEX ? "index is not a small non-negative integer"
		                                       : "usage token count is not a non-negative integer");
	if (f->loc == L_CHOICE) {
		cur_choice(c)->index = v;
	} else if (f->loc == L_TOOLCALL) {
		cur_tc(c)->index = v;
		cur_tc(c)->has_index = true;
	} else if (f->key == K_PROMPT_TOKENS) {
		c->prompt_tokens = v;
	} else {
		c->completion_tokens = v;
	}
	return 1;
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
	struct px_chunk *c = ctx;
	struct frame *f;
	struct choice_acc *ch;
	struct tc_delta *tc;

	if (!at_root_scalar(c))
		return 0;
	f = top(c);
	if (!f->is_map) {
		if (f->loc == L_CHOICES || f->loc == L_TOOLCALLS)
			return cb_null(ctx);
		return 1;
	}
	switch (f->loc) {
	case L_ROOT:
		if (f->key == K_ID)
			return save(c, &c->id, s, len);
		if (f->key == K_MODEL)
			return save(c, &c->model, s, len);
		if (f->key == K_ERROR) {
			c->is_error = true;
			return save(c, &c->err_msg, s, len);
		}
		/* vLLM's older error form: {"object": "error", "message": …}. */
		if (f->key == K_OBJECT && len == 5 && memcmp(s, "error", 5) == 0)
			c->is_error = true;
		if (f->key == K_MESSAGE && !c->err_msg.set)
			return save(c, &c->err_msg, s, len);
		if (f->key == K_CHOICES)
			return fail_shape(c, "choices is not an array");
		return 1;
	case L_ERROR:
		if (f->key == K_MESSAGE)
			return save(c, &c->err_msg, s, len);
		return 1;
	case L_CHOICE:
		ch = cur_choice(c);
		if (f->key == K_FINISH)
			return save(c, &ch->finish, s, len);
		if (f->key == K_INDEX)
			return fail_shape(c, "choice index is not a number");
		if (f->key == K_DELTA || f->key == K_MESSAGE)
			return fail_shape(c, "delta/message is not an object");
		return 1;
	case L_DELTA:
		ch = cur_choice(c);
		if (f->key == K_CONTENT)
			return save(c, &ch->content, s, len);
		if (f->key == K_REASONING_CONTENT)
			return save(c, &ch->reasoning, s, len);
		if (f->key == K_REASONING)
			return save(c, &ch->reasoning_alt, s, len);
		if (f->key == K_TOOL_CALLS)
			return fail_shape(c, "tool_calls is not an array");
		return 1;
	case L_TOOLCALL:
		tc = cur_tc(c);
		if (f->key == K_ID) {
			if (len >= PX_CHUNK_ID_MAX)
				return fail_big(c, "tool call id too long");
			return save(c, &tc->id, s, len);
		}
		if (f->key == K_INDEX)
			return fail_shape(c, "tool call index is not a number");
		if (f->key == K_FUNCTION)
			return fail_shape(c, "tool call function is not an object");
		return 1;
	case L_FUNCTION:
		tc = cur_tc(c);
		if (f->key == K_NAME) {
			if (len >= PX_CHUNK_NAME_MAX)
				return fail_big(c, "tool name too long");
			return save(c, &tc->name, s, len);
		}
		if (f->key == K_ARGUMENTS)
			return save(c, &tc->args, s, len);
		return 1;
	default:
		return 1;
	}
}

/* Runs for every map key of every chunk: a switch on the length, then
 * fixed-size compares the compiler inlines (no strlen, no memcmp call). */
static enum key key_of(const unsigned char *s, size_t len)
{
#define IS(name) (memcmp(s, name, sizeof(name) - 1) == 0)
	switch (len) {
	case 2: if (IS("id")) return K_ID; break;
	case 4: if (IS("name")) return K_NAME; break;
	case 5:
		if (IS("index")) return K_INDEX;
		if (IS("delta")) return K_DELTA;
		if (IS("model")) return K_MODEL;
		if (IS("usage")) return K_USAGE;
		if (IS("error")) return K_ERROR;
		break;
	case 6: if (IS("object")) return K_OBJECT; break;
	case 7:
		if (IS("content")) return K_CONTENT;
		if (IS("choices")) return K_CHOICES;
		if (IS("message")) return K_MESSAGE;
		break;
	case 8: if (IS("function")) return K_FUNCTION; break;
	case 9:
		if (IS("arguments")) return K_ARGUMENTS;
		if (IS("reasoning")) return K_REASONING;
		break;
	case 10: if (IS("tool_calls")) return K_TOOL_CALLS; break;
	case 13:
		if (IS("finish_reason")) return K_FINISH;
		if (IS("prompt_tokens")) return K_PROMPT_TOKENS;
		break;
	case 17:
		if (IS("reasoning_content")) return K_REASONING_CONTENT;
		if (IS("completion_tokens")) return K_COMPLETION_TOKENS;
		break;
	default:
		break;
	}
#undef IS
	return K_OTHER;
}

static int cb_map_key(void *ctx, const unsigned char *s, size_t len)
{
	struct px_chunk *c = ctx;

	top(c)->key = key_of(s, len);
	return 1;
}

static int push(struct px_chunk *c, enum loc loc, bool is_map)
{
	struct frame *f;

	if (c->depth >= CHUNK_DEPTH_MAX)
		return fail_shape(c, "JSON nested too deeply");
	f = &c->frames[c->depth++];
	f->loc = loc;
	f->key = K_NONE;
	f->is_map = is_map;
	f->n = 0;
	return 1;
}

static int cb_start_map(void *ctx)
{
	struct px_chunk *c = ctx;
	struct frame *f = top(c);
	enum loc loc = L_SKIP;

	if (!f)
		return push(c, L_ROOT, true);
	if (!f->is_map) {
		f->n++;
		if (f->loc == L_CHOICES) {
			struct choice_acc *ch;

			c->cur = c->have_chosen ? 1 : 0;
			ch = &c->acc[c->cur];
			ch->index = 0;
			memset(&ch->content, 0, sizeof(ch->content));
			ch->reasoning = ch->reasoning_alt = ch->finish = ch->content;
			ch->n_tc = 0;
			loc = L_CHOICE;
		} else if (f->loc == L_TOOLCALLS) {
			struct choice_acc *ch = cur_choice(c);

			if (ch->n_tc >= (c->body_mode ? PX_CHUNK_MAX_BODY_CALLS : PX_CHUNK_MAX_DELTAS))
				return fail_big(c, c->body_mode ? "too many tool calls in one completion"
				                                : "too many tool-call deltas in one chunk");
			if (ch->n_tc == ch->tc_cap) {
				/* Bodies only (not the per-token path): grow once per request. */
				uint32_t ncap = 2 * ch->tc_cap;
				struct tc_delta *p = realloc(ch->tc, ncap * sizeof(*p));

				if (!p)
					return fail_big(c, "out of memory for tool calls");
				ch->tc = p;
				ch->tc_cap = ncap;
			}
			memset(&ch->tc[ch->n_tc], 0, sizeof(ch->tc[0]));
			ch->tc[ch->n_tc].index = f->n - 1;
			ch->n_tc++;
			loc = L_TOOLCALL;
		}
		return push(c, loc, true);
	}
	switch (f->loc) {
	case L_ROOT:
		if (f->key == K_USAGE)
			loc = L_USAGE;
		else if (f->key == K_ERROR) {
			loc = L_ERROR;
			c->is_error = true;
		} else if (f->key == K_CHOICES)
			return fail_shape(c, "choices is not an array");
		break;
	case L_CHOICE:
		if (f->key == K_DELTA || f->key == K_MESSAGE)
			loc = L_DELTA;
		break;
	case L_DELTA:
		if (f->key == K_TOOL_CALLS)
			return fail_shape(c, "tool_calls is not an array");
		break;
	case L_TOOLCALL:
		if (f->key == K_FUNCTION)
			loc = L_FUNCTION;
		break;
	case L_FUNCTION:
		if (f->key == K_ARGUMENTS)
			return fail_shape(c, "tool call arguments are not a string");
		break;
	default:
		break;
	}
	return push(c, loc, true);
}

static int cb_start_array(void *ctx)
{
	struct px_chunk *c = ctx;
	struct frame *f = top(c);
	enum loc loc = L_SKIP;

	if (!f)
		return fail_shape(c, "chunk is not a JSON object");
	if (!f->is_map) {
		f->n++;
		if (f->loc == L_CHOICES || f->loc == L_TOOLCALLS)
			return cb_null(ctx);
	} else if (f->loc == L_ROOT && f->key == K_CHOICES) {
		loc = L_CHOICES;
	} else if (f->loc == L_DELTA && f->key == K_TOOL_CALLS) {
		loc = L_TOOLCALLS;
	} else if (f->loc == L_CHOICE && (f->key == K_DELTA || f->key == K_MESSAGE)) {
		return fail_shape(c, "delta/message is not an object");
	} else if (f->loc == L_FUNCTION && f->key == K_ARGUMENTS) {
		return fail_shape(c, "tool call arguments are not a string");
	}
	return push(c, loc, false);
}

static int cb_end_map(void *ctx)
{
	struct px_chunk *c = ctx;
	struct frame *f = top(c);

	if (f->loc == L_CHOICE) {
		if (c->cur == 0 && !c->have_chosen && c->acc[0].index == 0)
			c->have_chosen = true;
		else
			c->info.skipped_choices++;
		c->cur = -1;
	}
	c->depth--;
	return 1;
}

static int cb_end_array(void *ctx)
{
	struct px_chunk *c = ctx;

	c->depth--;
	return 1;
}

static const yajl_callbacks callbacks = {
	.yajl_null = cb_null,
	.yajl_boolean = cb_boolean,
	.yajl_number = cb_number,
	.yajl_string = cb_string,
	.yajl_start_map = cb_start_map,
	.yajl_map_key = cb_map_key,
	.yajl_end_map = cb_end_map,
	.yajl_start_array = cb_start_array,
	.yajl_end_array = cb_end_array,
};

/* ---- parsing and emitting -------------------------------------------- */

static enum px_chunk_status parse(struct px_chunk *c, const char *json, size_t len,
                                  char *err, size_t errlen)
{
	yajl_alloc_funcs afs = { arena_malloc, arena_realloc, arena_free, &c->arena };
	yajl_handle h = NULL;
	yajl_status ys;
	enum px_chunk_status st = PX_CHUNK_OK;

	if (len > c->cap) {
		snprintf(err, errlen, "chunk of %zu bytes exceeds the cap of %zu", len, c->cap);
		return PX_CHUNK_ETOOBIG;
	}
	c->arena.used = 0;
	c->arena.last = 0;
	c->scratch_used = 0;
	c->depth = 0;
	c->cur = -1;
	c->have_chosen = false;
	c->usage_set = false;
	c->prompt_tokens = -1;
	c->completion_tokens = -1;
	c->is_error = false;
	memset(&c->err_msg, 0, sizeof(c->err_msg));
	memset(&c->id, 0, sizeof(c->id));
	memset(&c->model, 0, sizeof(c->model));
	c->pst = PX_CHUNK_OK;
	c->perr[0] = '\0';

	h = yajl_alloc(&callbacks, &afs, c);
	if (!h)
		return PX_CHUNK_EINVAL;
	ys = yajl_parse(h, (const unsigned char *)json, len);
	if (ys == yajl_status_ok)
		ys = yajl_complete_parse(h);
	if (c->pst != PX_CHUNK_OK) {
		st = c->pst;
		snprintf(err, errlen, "%s (near byte %zu)", c->perr, yajl_get_bytes_consumed(h));
	} else if (ys != yajl_status_ok) {
		unsigned char *msg = yajl_get_error(h, 0, (const unsigned char *)json, len);
		size_t n = msg ? strlen((char *)msg) : 0;

		while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
			msg[--n] = '\0';
		st = PX_CHUNK_EJSON;
		snprintf(err, errlen, "not JSON (near byte %zu): %s", yajl_get_bytes_consumed(h),
		         msg ? (char *)msg : "parse error");
		if (msg)
			yajl_free_error(h, msg);
	}
	yajl_free(h);
	if (st != PX_CHUNK_OK)
		return st;
	if (c->is_error) {
		if (c->err_msg.set)
			copy_text(err, errlen, "upstream error: ", c, &c->err_msg);
		else
			snprintf(err, errlen, "upstream error: (no message)");
		return PX_CHUNK_EUPSTREAM;
	}
	c->usage_set = c->prompt_tokens >= 0 || c->completion_tokens >= 0;
	if (c->id.set && c->info.id[0] == '\0')
		copy_text(c->info.id, sizeof(c->info.id), "", c, &c->id);
	if (c->model.set && c->info.model[0] == '\0')
		copy_text(c->info.model, sizeof(c->info.model), "", c, &c->model);
	return PX_CHUNK_OK;
}

static int emit(px_chunk_cb cb, void *ctx, enum gd_event_type type, const struct call *call,
                const char *data, size_t len)
{
	struct gd_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.id = "";
	ev.name = "";
	ev.data = data ? data : "";
	ev.len = len;
	ev.prompt_tokens = -1;
	ev.completion_tokens = -1;
	if (call) {
		ev.index = call->index;
		ev.id = call->id;
		ev.id_len = call->id_len;
		ev.name = call->name;
		ev.name_len = call->name_len;
	}
	return cb ? cb(&ev, ctx) : 0;
}

#define EMIT(type, call, data, len) do { \
	if (emit(cb, ctx, (type), (call), (data), (len)) != 0) \
		return PX_CHUNK_ESTOPPED; \
} while (0)

/* Call numbers still in the ring: [first_kept(c), c->n_calls). */
static uint64_t first_kept(const struct px_chunk *c)
{
	return c->n_calls > PX_CHUNK_MAX_OPEN ? c->n_calls - PX_CHUNK_MAX_OPEN : 0;
}

static struct call *slot(struct px_chunk *c, uint64_t k)
{
	return &c->calls[k % PX_CHUNK_MAX_OPEN];
}

/* Begins call number c->n_calls in *<out>. Its ring slot's previous call,
 * PX_CHUNK_MAX_OPEN calls ago, is ended first if still open. */
static enum px_chunk_status begin_call(struct px_chunk *c, uint32_t index, const char *id,
                                       size_t id_len, const char *name, size_t name_len,
                                       px_chunk_cb cb, void *ctx, struct call **out)
{
	struct call *call = slot(c, c->n_calls);

	if (c->n_calls >= PX_CHUNK_MAX_OPEN && call->open) {
		call->open = false;
		EMIT(GD_EV_TOOL_END, call, NULL, 0);
	}
	c->n_calls++;
	memset(call, 0, offsetof(struct call, id));
	call->index = index;
	call->open = true;
	memcpy(call->id, id, id_len);
	call->id[id_len] = '\0';
	call->id_len = (uint32_t)id_len;
	memcpy(call->name, name, name_len);
	call->name[name_len] = '\0';
	call->name_len = (uint32_t)name_len;
	c->info.tool_calls++;
	*out = call;
	EMIT(GD_EV_TOOL_BEGIN, call, NULL, 0);
	return PX_CHUNK_OK;
}

/* The open call a stream delta continues, or NULL when it starts a new one. */
static struct call *find_call(struct px_chunk *c, const struct tc_delta *tc, uint32_t index)
{
	for (uint64_t k = c->n_calls; k-- > first_kept(c);) {
		struct call *call = slot(c, k);

		if (!call->open || call->index != index)
			continue;
		if (tc->id.set && tc->id.len > 0) {
			if (call->id_len == tc->id.len && memcmp(call->id, at(c, &tc->id), tc->id.len) == 0)
				return call;
			continue;
		}
		/* No id: the most recent call of this index, unless the delta names a
		 * tool again after that call already has its name and arguments
		 * (an id-less server batching calls on one index). */
		if (tc->name.set && tc->name.len > 0 && call->name_len > 0 && call->args_bytes > 0)
			return NULL;
		return call;
	}
	return NULL;
}

/* Ends every open call, oldest first. */
static enum px_chunk_status end_open(struct px_chunk *c, px_chunk_cb cb, void *ctx)
{
	for (uint64_t k = first_kept(c); k < c->n_calls; k++) {
		struct call *call = slot(c, k);

		if (call->open) {
			call->open = false;
			EMIT(GD_EV_TOOL_END, call, NULL, 0);
		}
	}
	return PX_CHUNK_OK;
}

static enum px_chunk_status emit_stream(struct px_chunk *c, px_chunk_cb cb, void *ctx)
{
	struct choice_acc *ch = &c->acc[0];
	enum px_chunk_status st;
	struct gd_event ev;

	c->info.chunks++;
	if (c->have_chosen) {
		const struct span *rs = ch->reasoning.set ? &ch->reasoning : &ch->reasoning_alt;

		if (rs->set && rs->len > 0)
			EMIT(GD_EV_REASONING, NULL, at(c, rs), rs->len);
		if (ch->content.set && ch->content.len > 0)
			EMIT(GD_EV_TEXT, NULL, at(c, &ch->content), ch->content.len);
		for (uint32_t i = 0; i < ch->n_tc; i++) {
			const struct tc_delta *tc = &ch->tc[i];
			uint32_t index = (uint32_t)tc->index;
			struct call *call = c->body_mode ? NULL : find_call(c, tc, index);

			if (!call) {
				/* Ollama: index reused with a new id ends the earlier call. */
				for (uint64_t k = first_kept(c); !c->body_mode && k < c->n_calls; k++) {
					struct call *old = slot(c, k);

					if (old->open && old->index == index) {
						old->open = false;
						EMIT(GD_EV_TOOL_END, old, NULL, 0);
					}
				}
				st = begin_call(c, index, tc->id.set ? at(c, &tc->id) : "", tc->id.len,
				                tc->name.set ? at(c, &tc->name) : "", tc->name.len, cb, ctx,
				                &call);
				if (st != PX_CHUNK_OK)
					return st;
			}
			if (tc->args.set && tc->args.len > 0) {
				call->args_bytes += tc->args.len;
				EMIT(GD_EV_TOOL_ARGS, call, at(c, &tc->args), tc->args.len);
			}
			if (c->body_mode) {
				call->open = false;
				EMIT(GD_EV_TOOL_END, call, NULL, 0);
			}
		}
		if (ch->finish.set) {
			st = end_open(c, cb, ctx);
			if (st != PX_CHUNK_OK)
				return st;
			c->info.finished = true;
			copy_text(c->info.finish_reason, sizeof(c->info.finish_reason), "", c, &ch->finish);
			EMIT(GD_EV_FINISH, NULL, at(c, &ch->finish), ch->finish.len);
		}
	}
	if (c->usage_set) {
		memset(&ev, 0, sizeof(ev));
		ev.type = GD_EV_USAGE;
		ev.id = ev.name = ev.data = "";
		ev.prompt_tokens = c->prompt_tokens;
		ev.completion_tokens = c->completion_tokens;
		if (cb && cb(&ev, ctx) != 0)
			return PX_CHUNK_ESTOPPED;
	}
	return PX_CHUNK_OK;
}

enum px_chunk_status px_chunk_feed(struct px_chunk *c, const char *json, size_t len,
                                   px_chunk_cb cb, void *ctx, char *err, size_t errlen)
{
	enum px_chunk_status st;

	if (!c || (!json && len > 0))
		return PX_CHUNK_EINVAL;
	c->body_mode = false;
	st = parse(c, json, len, err, errlen);
	if (st == PX_CHUNK_OK)
		st = emit_stream(c, cb, ctx);
	release_large(c);
	return st;
}

enum px_chunk_status px_chunk_end(struct px_chunk *c, px_chunk_cb cb, void *ctx)
{
	if (!c)
		return PX_CHUNK_EINVAL;
	return end_open(c, cb, ctx);
}

enum px_chunk_status px_chunk_body(struct px_chunk *c, const char *json, size_t len,
                                   px_chunk_cb cb, void *ctx, char *err, size_t errlen)
{
	enum px_chunk_status st;

	if (!c || (!json && len > 0))
		return PX_CHUNK_EINVAL;
	px_chunk_reset(c);
	c->body_mode = true;
	st = parse(c, json, len, err, errlen);
	if (st == PX_CHUNK_OK && !c->have_chosen) {
		snprintf(err, errlen, "completion has no choice with index 0");
		st = PX_CHUNK_ESHAPE;
	}
	if (st == PX_CHUNK_OK) {
		/* In a body the calls are numbered by position whatever their index says. */
		for (uint32_t i = 0; i < c->acc[0].n_tc; i++)
			c->acc[0].tc[i].index = i;
		st = emit_stream(c, cb, ctx);
	}
	release_large(c);
	return st;
}
