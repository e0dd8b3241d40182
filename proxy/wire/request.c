/* The request reader (see request.h). One pass of yajl's callback parser
 * over the body with a frame per open object or array: the frame says where
 * we are (the request, messages[i], its tool_calls[j], ...), so each value is
 * checked and kept, or skipped, as it arrives. Nothing recursive runs on the
 * input and no tree is built, so a body nested 300 000 deep costs one frame
 * check and a 400. Kept strings go to blocks that never move; the tables
 * (messages, calls, tools) grow by doubling, all counted against
 * PX_REQUEST_MAX_KEPT. */
#include "proxy/wire/request.h"

#include <errno.h>
#include <math.h> /* isfinite */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "guards/history.h"
#include "guards/utf8.h"

const char *px_request_strerror(enum px_request_status st)
{
	switch (st) {
	case PX_REQUEST_OK: return "ok";
	case PX_REQUEST_EJSON: return "request body is not valid JSON";
	case PX_REQUEST_ESHAPE: return "request has the wrong shape";
	case PX_REQUEST_ELIMIT: return "request exceeds a limit";
	case PX_REQUEST_ENOMEM: return "out of memory";
	case PX_REQUEST_EINVAL: return "invalid argument";
	}
	return "unknown request status";
}

/* ---- the result's memory ---------------------------------------------- */

#define BLOCK_MIN (64u << 10)

struct block {
	struct block *next;
	size_t used, cap;
	char data[];
};

struct px_request_mem {
	struct block *blocks;          /* strings; the newest first */
	struct gd_conv_msg *msgs;
	size_t *first_call;            /* per message: its first entry of <calls> */
	size_t n_msgs, cap_msgs, cap_first;
	struct gd_conv_call *calls;    /* every message's calls, in order */
	size_t n_calls, cap_calls;
	struct px_request_tool *tools;
	size_t n_tools, cap_tools;
};

static void mem_free(struct px_request_mem *m)
{
	if (!m)
		return;
	while (m->blocks) {
		struct block *b = m->blocks;
		m->blocks = b->next;
		free(b);
	}
	free(m->msgs);
	free(m->first_call);
	free(m->calls);
	free(m->tools);
	free(m);
}

void px_request_free(struct px_request *req)
{
	if (!req)
		return;
	mem_free(req->mem);
	free(req);
}

/* ---- parser state ------------------------------------------------------ */

enum loc {
	L_ROOT = 0, L_STREAM_OPTIONS, L_STOP, L_TOOLS, L_TOOL, L_TOOL_FN, L_MESSAGES, L_MSG,
	L_PARTS, L_PART, L_CALLS, L_CALL, L_CALL_FN,
	L_RAW,  /* inside a value kept as raw JSON text (arguments, parameters) */
	L_SKIP, /* inside a value nobody reads */
	L_COUNT
};

enum key {
	K_NONE = 0, K_OTHER, K_MODEL, K_STREAM, K_STREAM_OPTIONS, K_INCLUDE_USAGE, K_MESSAGES,
	K_TOOLS, K_TEMPERATURE, K_TOP_P, K_TOP_K, K_MIN_P, K_SEED, K_MAX_TOKENS,
	K_MAX_COMPLETION_TOKENS, K_STOP, K_FREQUENCY_PENALTY, K_PRESENCE_PENALTY,
	K_REPEAT_PENALTY, K_ROLE, K_CONTENT, K_REASONING_CONTENT, K_REASONING, K_TOOL_CALLS,
	K_TOOL_CALL_ID, K_NAME, K_ID, K_TYPE, K_FUNCTION, K_ARGUMENTS, K_TEXT, K_DESCRIPTION,
	K_PARAMETERS, K_COUNT
};

static const char *const key_names[K_COUNT] = {
	[K_NONE] = "", [K_OTHER] = "", [K_MODEL] = "model", [K_STREAM] = "stream",
	[K_STREAM_OPTIONS] = "stream_options", [K_INCLUDE_USAGE] = "include_usage",
	[K_MESSAGES] = "messages", [K_TOOLS] = "tools", [K_TEMPERATURE] = "temperature",
	[K_TOP_P] = "top_p", [K_TOP_K] = "top_k", [K_MIN_P] = "min_p", [K_SEED] = "seed",
	[K_MAX_TOKENS] = "max_tokens", [K_MAX_COMPLETION_TOKENS] = "max_completion_tokens",
	[K_STOP] = "stop", [K_FREQUENCY_PENALTY] = "frequency_penalty",
	[K_PRESENCE_PENALTY] = "presence_penalty", [K_REPEAT_PENALTY] = "repeat_penalty",
	[K_ROLE] = "role", [K_CONTENT] = "content", [K_REASONING_CONTENT] = "reasoning_content",
	[K_REASONING] = "reasoning", [K_TOOL_CALLS] = "tool_calls",
	[K_TOOL_CALL_ID] = "tool_call_id", [K_NAME] = "name", [K_ID] = "id", [K_TYPE] = "type",
	[K_FUNCTION] = "function", [K_ARGUMENTS] = "arguments", [K_TEXT] = "text",
	[K_DESCRIPTION] = "description", [K_PARAMETERS] = "parameters",
};

#define B(k) (1ull << (k))
#define SAMPLING_KEYS (B(K_TEMPERATURE) | B(K_TOP_P) | B(K_TOP_K) | B(K_MIN_P) | B(K_SEED) | \
                       B(K_MAX_TOKENS) | B(K_MAX_COMPLETION_TOKENS) | B(K_STOP) |            \
                       B(K_FREQUENCY_PENALTY) | B(K_PRESENCE_PENALTY) | B(K_REPEAT_PENALTY))

/* The keys each object location reads; any other key is skipped. A known
 * key given twice is an error: its meaning would depend on which one a
 * reader takes (the guards one, the upstream another). */
static const uint64_t known_keys[L_COUNT] = {
	[L_ROOT] = B(K_MODEL) | B(K_STREAM) | B(K_STREAM_OPTIONS) | B(K_MESSAGES) | B(K_TOOLS) |
	           SAMPLING_KEYS,
	[L_STREAM_OPTIONS] = B(K_INCLUDE_USAGE),
	[L_TOOL] = B(K_TYPE) | B(K_FUNCTION),
	[L_TOOL_FN] = B(K_NAME) | B(K_DESCRIPTION) | B(K_PARAMETERS),
	[L_MSG] = B(K_ROLE) | B(K_CONTENT) | B(K_REASONING_CONTENT) | B(K_REASONING) |
	          B(K_TOOL_CALLS) | B(K_TOOL_CALL_ID) | B(K_NAME),
	[L_PART] = B(K_TYPE) | B(K_TEXT),
	[L_CALL] = B(K_ID) | B(K_TYPE) | B(K_FUNCTION),
	[L_CALL_FN] = B(K_NAME) | B(K_ARGUMENTS),
};

_Static_assert(K_COUNT <= 64, "key bits fit a uint64_t");

struct frame {
	enum loc loc;
	bool is_map;
	enum key key;       /* maps: the current key (K_OTHER: one we skip) */
	uint64_t seen;      /* maps: known keys seen so far */
	uint32_t n;         /* arrays: elements begun */
	enum key via_key;   /* how the parent holds this value: under a key, */
	uint32_t via_index; /* or at an index (via_key == K_NONE) */
	size_t raw_start;   /* L_RAW whose parent is not L_RAW: offset of its '{' or '[' */
};

enum vt { V_NULL = 0, V_BOOL, V_NUM, V_STR, V_MAP, V_ARR };

struct rd {
	yajl_handle h;
	const char *body;
	size_t len;
	struct px_request *req;
	struct px_request_mem *mem;
	size_t kept;
	enum px_request_status st;
	char msg[240];
	struct frame frames[PX_REQUEST_MAX_DEPTH];
	int depth;
	bool have_messages;
	bool reasoning_primary; /* the current message's reasoning came from reasoning_content */
	/* the current message's text parts, and the current part */
	struct gd_str *parts;
	size_t n_parts, cap_parts;
	struct gd_str part_type, part_text;
	/* the request object's keys: how many, and those it skips (for duplicates) */
	uint32_t n_top_keys;
	struct gd_str other_keys[PX_REQUEST_MAX_KEYS];
	uint32_t n_other_keys;
	bool completing; /* in yajl_complete_parse, whose byte count starts again at 0 */
	size_t key_end;  /* the request object's current key ends here (its limits' spans) */
};

static size_t at_byte(const struct rd *r)
{
	return r->completing ? r->len : yajl_get_bytes_consumed(r->h);
}

static struct frame *top(struct rd *r)
{
	return r->depth > 0 ? &r->frames[r->depth - 1] : NULL;
}

__attribute__((format(printf, 4, 5)))
static void app(char *out, size_t cap, size_t *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*o >= cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(out + *o, cap - *o, fmt, ap);
	va_end(ap);
	if (n > 0)
		*o = *o + (size_t)n < cap ? *o + (size_t)n : cap - 1;
}

/* The path of the innermost open value, e.g. "messages[3].tool_calls[0]";
 * with <with_key>, the path of the value being read in it (its current key
 * or element) is given instead. */
static void path_of(const struct rd *r, char *out, size_t cap, bool with_key)
{
	size_t o = 0;

	out[0] = '\0';
	for (int i = 1; i < r->depth; i++) {
		const struct frame *f = &r->frames[i];

		if (f->via_key != K_NONE)
			app(out, cap, &o, "%s%s", o ? "." : "", key_names[f->via_key]);
		else
			app(out, cap, &o, "[%u]", f->via_index);
	}
	if (with_key && r->depth > 0) {
		const struct frame *f = &r->frames[r->depth - 1];

		if (f->is_map)
			app(out, cap, &o, "%s%s", o ? "." : "", key_names[f->key]);
		else if (f->n > 0)
			app(out, cap, &o, "[%u]", f->n - 1);
	}
}

/* Records the first failure (the message gets " (at byte N)"); returns 0 so
 * that a yajl callback can return it to stop the parse. */
__attribute__((format(printf, 3, 4)))
static int fail(struct rd *r, enum px_request_status st, const char *fmt, ...)
{
	va_list ap;
	size_t o;

	if (r->st != PX_REQUEST_OK)
		return 0;
	r->st = st;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	o = strlen(r->msg);
	app(r->msg, sizeof(r->msg), &o, " (at byte %zu)", at_byte(r));
	return 0;
}

/* "<path> must be <what>" for the value being read. */
static int type_error(struct rd *r, const char *what)
{
	char path[160];

	path_of(r, path, sizeof(path), true);
	return fail(r, PX_REQUEST_ESHAPE, "%s must be %s", path, what);
}

static bool charge(struct rd *r, size_t n)
{
	if (n > PX_REQUEST_MAX_KEPT - r->kept) {
		fail(r, PX_REQUEST_ELIMIT, "request keeps more than %u bytes", PX_REQUEST_MAX_KEPT);
		return false;
	}
	r->kept += n;
	return true;
}

/* <n> bytes in a block (they never move). */
static char *mem_alloc(struct rd *r, size_t n)
{
	struct block *b = r->mem->blocks;

	if (!b || b->cap - b->used < n) {
		size_t cap = n > BLOCK_MIN ? n : BLOCK_MIN;

		if (!charge(r, cap))
			return NULL;
		b = malloc(sizeof(*b) + cap);
		if (!b) {
			fail(r, PX_REQUEST_ENOMEM, "out of memory");
			return NULL;
		}
		b->used = 0;
		b->cap = cap;
		b->next = r->mem->blocks;
		r->mem->blocks = b;
	}
	b->used += n;
	return b->data + b->used - n;
}

/* Grows table <*p> (of <*cap> entries of <size> bytes) to hold <need>. */
static bool grow(struct rd *r, void **p, size_t *cap, size_t need, size_t size)
{
	size_t ncap;
	void *np;

	if (need <= *cap)
		return true;
	ncap = *cap ? *cap * 2 : 16;
	while (ncap < need)
		ncap *= 2;
	if (!charge(r, (ncap - *cap) * size))
		return false;
	np = realloc(*p, ncap * size);
	if (!np) {
		fail(r, PX_REQUEST_ENOMEM, "out of memory");
		return false;
	}
	*p = np;
	*cap = ncap;
	return true;
}

static unsigned hex4(const char *s)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else
			v |= (unsigned)(c - 'A' + 10);
	}
	return v;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decodes the raw text of a JSON string (yajl checked its syntax) into <o>:
 * a surrogate pair becomes its character, a lone surrogate U+FFFD (yajl
 * itself writes '?' for a lone high one and CESU bytes for a lone low one,
 * which would not be UTF-8). Escapes only shrink: <o> needs <n> bytes. */
static size_t decode(const char *s, size_t n, char *o)
{
	size_t i = 0, w = 0;

	while (i < n) {
		unsigned cp;

		if (s[i] != '\\') {
			o[w++] = s[i++];
			continue;
		}
		switch (s[i + 1]) {
		case 'b': o[w++] = '\b'; i += 2; continue;
		case 'f': o[w++] = '\f'; i += 2; continue;
		case 'n': o[w++] = '\n'; i += 2; continue;
		case 'r': o[w++] = '\r'; i += 2; continue;
		case 't': o[w++] = '\t'; i += 2; continue;
		case 'u': break;
		default: o[w++] = s[i + 1]; i += 2; continue; /* " \ / */
		}
		cp = hex4(s + i + 2);
		i += 6;
		if (cp >= 0xd800 && cp <= 0xdbff && i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u') {
			unsigned lo = hex4(s + i + 2);

			if (lo >= 0xdc00 && lo <= 0xdfff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				i += 6;
			}
		}
		if (cp >= 0xd800 && cp <= 0xdfff)
			cp = GD_UTF8_REPLACEMENT;
		w += put_utf8(o + w, cp);
	}
	return w;
}

/* Keeps the string value (or key) just read: yajl's decoded <s, len> when
 * the raw text holds no escape, else our own decoding of the raw text. */
static bool keep(struct rd *r, const unsigned char *s, size_t len, struct gd_str *dst)
{
	size_t end = at_byte(r); /* just past the closing quote */
	const char *raw = NULL;
	size_t rawlen = len;
	char *p;

	if (end < 2 || end > r->len || r->body[end - 1] != '"') {
		fail(r, PX_REQUEST_EJSON, "internal: string not where yajl said");
		return false;
	}
	if (end >= len + 2 && r->body[end - 2 - len] == '"' &&
	    !memchr(r->body + end - 1 - len, '\\', len)) {
		raw = NULL; /* no escapes: yajl's bytes are the raw bytes */
	} else {
		/* Find the opening quote: the first '"' before the closing one
		 * that an even run of backslashes precedes (inside the string
		 * every '"' is escaped by an odd run). */
		size_t q = end - 1;

		for (;;) {
			size_t bs = 0;

			if (q == 0) {
				fail(r, PX_REQUEST_EJSON, "internal: string start not found");
				return false;
			}
			q--;
			if (r->body[q] != '"')
				continue;
			while (q - bs > 0 && r->body[q - bs - 1] == '\\')
				bs++;
			if (bs % 2 == 0)
				break;
		}
		raw = r->body + q + 1;
		rawlen = end - 1 - (q + 1);
	}
	p = mem_alloc(r, rawlen + 1);
	if (!p)
		return false;
	if (raw)
		dst->len = decode(raw, rawlen, p);
	else {
		memcpy(p, s, len);
		dst->len = len;
	}
	p[dst->len] = '\0';
	dst->ptr = p;
	return true;
}

static bool str_eq(const struct gd_str *s, const char *lit)
{
	size_t n = strlen(lit);

	return s->ptr && s->len == n && memcmp(s->ptr, lit, n) == 0;
}

static enum key key_of(const unsigned char *s, size_t len, enum loc loc)
{
	for (int k = K_MODEL; k < K_COUNT; k++) {
		const char *name = key_names[k];

		if ((known_keys[loc] & B(k)) && strlen(name) == len && memcmp(name, s, len) == 0)
			return (enum key)k;
	}
	return K_OTHER;
}

static bool push(struct rd *r, enum loc loc, bool is_map)
{
	struct frame *parent = top(r), *f;

	if (r->depth >= PX_REQUEST_MAX_DEPTH) {
		fail(r, PX_REQUEST_ELIMIT, "request is nested deeper than %d levels",
		     PX_REQUEST_MAX_DEPTH);
		return false;
	}
	f = &r->frames[r->depth++];
	memset(f, 0, sizeof(*f));
	f->loc = loc;
	f->is_map = is_map;
	if (parent && parent->is_map) {
		f->via_key = parent->key;
	} else if (parent) {
		f->via_key = K_NONE;
		f->via_index = parent->n - 1;
	}
	if (loc == L_RAW && (!parent || parent->loc != L_RAW))
		f->raw_start = at_byte(r) - 1;
	return true;
}

static struct gd_conv_msg *cur_msg(struct rd *r)
{
	return &r->mem->msgs[r->mem->n_msgs - 1];
}

static struct gd_conv_call *cur_call(struct rd *r)
{
	return &r->mem->calls[r->mem->n_calls - 1];
}

static struct px_request_tool *cur_tool(struct rd *r)
{
	return &r->mem->tools[r->mem->n_tools - 1];
}

/* A string (or null) field: kept in <dst>. */
static int opt_str(struct rd *r, enum vt t, const unsigned char *s, size_t len,
                   struct gd_str *dst, bool null_ok)
{
	if (t == V_NULL && null_ok) {
		dst->ptr = NULL;
		dst->len = 0;
		return 1;
	}
	if (t != V_STR)
		return type_error(r, null_ok ? "a string or null" : "a string");
	return keep(r, s, len, dst) ? 1 : 0;
}

static int opt_bool(struct rd *r, enum vt t, const unsigned char *s, bool *dst)
{
	if (t == V_NULL)
		return 1;
	if (t != V_BOOL)
		return type_error(r, "a boolean");
	*dst = s != NULL;
	return 1;
}

static int opt_num(struct rd *r, enum vt t, const unsigned char *s, size_t len,
                   struct px_num *dst)
{
	char buf[64], *end;
	double v;

	if (t == V_NULL) {
		dst->set = false;
		return 1;
	}
	if (t != V_NUM)
		return type_error(r, "a number");
	if (len >= sizeof(buf))
		return type_error(r, "a number of at most 63 characters");
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	v = strtod(buf, &end);
	if (*end != '\0' || !isfinite(v))
		return type_error(r, "a finite number");
	dst->set = true;
	dst->v = v;
	return 1;
}

/* An integer field: written as an integer, or as a number with an integral
 * value ("2.0", "1e3"), within int64_t. */
static int opt_int(struct rd *r, enum vt t, const unsigned char *s, size_t len,
                   struct px_int *dst)
{
	char buf[64], *end;

	if (t == V_NULL) {
		dst->set = false;
		return 1;
	}
	if (t != V_NUM || len >= sizeof(buf))
		return type_error(r, "an integer");
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	if (!strpbrk(buf, ".eE")) {
		long long v = strtoll(buf, &end, 10);

		if (errno || *end != '\0')
			return type_error(r, "an integer within 64 bits");
		dst->v = v;
	} else {
		double v = strtod(buf, &end);

		if (*end != '\0' || !(v >= -9.2e18 && v <= 9.2e18) || (double)(int64_t)v != v)
			return type_error(r, "an integer");
		dst->v = (int64_t)v;
	}
	dst->set = true;
	return 1;
}

static int add_stop(struct rd *r, const unsigned char *s, size_t len)
{
	struct px_sampling *sp = &r->req->sampling;

	if (sp->n_stop == PX_REQUEST_MAX_STOP)
		return fail(r, PX_REQUEST_ELIMIT, "stop has more than %d entries", PX_REQUEST_MAX_STOP);
	return keep(r, s, len, &sp->stop[sp->n_stop++]) ? 1 : 0;
}

/* A value under key <f->key> of an object we read. */
static int map_value(struct rd *r, struct frame *f, enum vt t, const unsigned char *s, size_t len)
{
	struct px_request *q = r->req;
	struct px_sampling *sp = &q->sampling;
	bool container = t == V_MAP || t == V_ARR;

	if (f->key == K_OTHER)
		return container ? push(r, L_SKIP, t == V_MAP) : 1;
	switch (f->loc) {
	case L_ROOT:
		switch (f->key) {
		case K_MODEL: return opt_str(r, t, s, len, &q->model, false);
		case K_STREAM: return opt_bool(r, t, s, &q->stream);
		case K_STREAM_OPTIONS:
			if (t == V_MAP)
				return push(r, L_STREAM_OPTIONS, true);
			return t == V_NULL ? 1 : type_error(r, "an object or null");
		case K_MESSAGES:
			if (t != V_ARR)
				return type_error(r, "an array");
			r->have_messages = true;
			return push(r, L_MESSAGES, false);
		case K_TOOLS:
			if (t == V_ARR)
				return push(r, L_TOOLS, false);
			return t == V_NULL ? 1 : type_error(r, "an array or null");
		case K_TEMPERATURE: return opt_num(r, t, s, len, &sp->temperature);
		case K_TOP_P: return opt_num(r, t, s, len, &sp->top_p);
		case K_MIN_P: return opt_num(r, t, s, len, &sp->min_p);
		case K_FREQUENCY_PENALTY: return opt_num(r, t, s, len, &sp->frequency_penalty);
		case K_PRESENCE_PENALTY: return opt_num(r, t, s, len, &sp->presence_penalty);
		case K_REPEAT_PENALTY: return opt_num(r, t, s, len, &sp->repeat_penalty);
		case K_TOP_K: return opt_int(r, t, s, len, &sp->top_k);
		case K_SEED: return opt_int(r, t, s, len, &sp->seed);
		case K_MAX_TOKENS:
		case K_MAX_COMPLETION_TOKENS:
			if (q->n_limits < 2 && !container) {
				size_t end = at_byte(r);
				q->limits[q->n_limits++] = (struct px_request_span){
					r->key_end, end > r->key_end ? end - r->key_end : 0 };
			}
			return opt_int(r, t, s, len, f->key == K_MAX_TOKENS ? &sp->max_tokens
			                                                     : &sp->max_completion_tokens);
		case K_STOP:
			if (t == V_NULL)
				return 1;
			sp->stop_set = true;
			if (t == V_STR)
				return add_stop(r, s, len);
			if (t == V_ARR)
				return push(r, L_STOP, false);
			return type_error(r, "a string, an array of strings or null");
		default:
			break;
		}
		break;
	case L_STREAM_OPTIONS:
		return opt_bool(r, t, s, &q->include_usage);
	case L_TOOL:
		if (f->key == K_TYPE)
			return opt_str(r, t, s, len, &cur_tool(r)->type, true);
		if (t == V_MAP)
			return push(r, L_TOOL_FN, true);
		return t == V_NULL ? 1 : type_error(r, "an object");
	case L_TOOL_FN:
		if (f->key == K_NAME)
			return opt_str(r, t, s, len, &cur_tool(r)->name, false);
		if (f->key == K_DESCRIPTION)
			return opt_str(r, t, s, len, &cur_tool(r)->description, true);
		if (t == V_MAP)
			return push(r, L_RAW, true);
		return t == V_NULL ? 1 : type_error(r, "an object or null");
	case L_MSG:
		switch (f->key) {
		case K_ROLE: return opt_str(r, t, s, len, &cur_msg(r)->role_name, false);
		case K_CONTENT:
			if (t == V_ARR) {
				r->n_parts = 0;
				return push(r, L_PARTS, false);
			}
			if (t != V_STR && t != V_NULL)
				return type_error(r, "a string, an array of content parts or null");
			return opt_str(r, t, s, len, &cur_msg(r)->content, true);
		case K_REASONING_CONTENT:
			r->reasoning_primary = t != V_NULL;
			return opt_str(r, t, s, len, &cur_msg(r)->reasoning, true);
		case K_REASONING:
			if (r->reasoning_primary) /* reasoning_content wins */
				return t == V_STR || t == V_NULL ? 1 : type_error(r, "a string or null");
			return opt_str(r, t, s, len, &cur_msg(r)->reasoning, true);
		case K_TOOL_CALLS:
			if (t == V_ARR)
				return push(r, L_CALLS, false);
			return t == V_NULL ? 1 : type_error(r, "an array or null");
		case K_TOOL_CALL_ID: return opt_str(r, t, s, len, &cur_msg(r)->tool_call_id, true);
		case K_NAME: return opt_str(r, t, s, len, &cur_msg(r)->name, true);
		default:
			break;
		}
		break;
	case L_PART:
		return opt_str(r, t, s, len, f->key == K_TYPE ? &r->part_type : &r->part_text, true);
	case L_CALL:
		if (f->key == K_ID)
			return opt_str(r, t, s, len, &cur_call(r)->id, true);
		if (f->key == K_TYPE)
			return opt_str(r, t, s, len, &cur_call(r)->type, true);
		if (t == V_MAP)
			return push(r, L_CALL_FN, true);
		return type_error(r, "an object");
	case L_CALL_FN:
		if (f->key == K_NAME)
			return opt_str(r, t, s, len, &cur_call(r)->name, false);
		if (container)
			return push(r, L_RAW, t == V_MAP);
		if (t == V_STR || t == V_NULL)
			return opt_str(r, t, s, len, &cur_call(r)->args, true);
		return type_error(r, "a string (or a JSON object)");
	default:
		break;
	}
	return container ? push(r, L_SKIP, t == V_MAP) : 1;
}

/* Element <f->n - 1> of an array we read. */
static int array_elem(struct rd *r, struct frame *f, enum vt t, const unsigned char *s, size_t len)
{
	struct px_request_mem *m = r->mem;

	switch (f->loc) {
	case L_STOP:
		return t == V_STR ? add_stop(r, s, len) : type_error(r, "a string");
	case L_TOOLS:
		if (t != V_MAP)
			return type_error(r, "an object");
		if (m->n_tools == PX_REQUEST_MAX_TOOLS)
			return fail(r, PX_REQUEST_ELIMIT, "tools has more than %d entries",
			            PX_REQUEST_MAX_TOOLS);
		if (!grow(r, (void **)&m->tools, &m->cap_tools, m->n_tools + 1, sizeof(*m->tools)))
			return 0;
		memset(&m->tools[m->n_tools++], 0, sizeof(*m->tools));
		return push(r, L_TOOL, true);
	case L_MESSAGES:
		if (t != V_MAP)
			return type_error(r, "an object");
		if (m->n_msgs == PX_REQUEST_MAX_MESSAGES)
			return fail(r, PX_REQUEST_ELIMIT, "messages has more than %d entries",
			            PX_REQUEST_MAX_MESSAGES);
		if (!grow(r, (void **)&m->msgs, &m->cap_msgs, m->n_msgs + 1, sizeof(*m->msgs)) ||
		    !grow(r, (void **)&m->first_call, &m->cap_first, m->n_msgs + 1,
		          sizeof(*m->first_call)))
			return 0;
		memset(&m->msgs[m->n_msgs], 0, sizeof(*m->msgs));
		m->first_call[m->n_msgs++] = m->n_calls;
		r->reasoning_primary = false;
		return push(r, L_MSG, true);
	case L_PARTS:
		if (t != V_MAP)
			return type_error(r, "an object");
		if (f->n > PX_REQUEST_MAX_PARTS)
			return fail(r, PX_REQUEST_ELIMIT, "a message's content has more than %d parts",
			            PX_REQUEST_MAX_PARTS);
		memset(&r->part_type, 0, sizeof(r->part_type));
		memset(&r->part_text, 0, sizeof(r->part_text));
		return push(r, L_PART, true);
	case L_CALLS:
		if (t != V_MAP)
			return type_error(r, "an object");
		if (f->n > PX_REQUEST_MAX_CALLS)
			return fail(r, PX_REQUEST_ELIMIT, "a message has more than %d tool_calls",
			            PX_REQUEST_MAX_CALLS);
		if (!grow(r, (void **)&m->calls, &m->cap_calls, m->n_calls + 1, sizeof(*m->calls)))
			return 0;
		memset(&m->calls[m->n_calls++], 0, sizeof(*m->calls));
		return push(r, L_CALL, true);
	default:
		break;
	}
	if (t == V_MAP || t == V_ARR)
		return push(r, f->loc == L_RAW ? L_RAW : L_SKIP, t == V_MAP);
	return 1;
}

static int value(struct rd *r, enum vt t, const unsigned char *s, size_t len)
{
	struct frame *f = top(r);

	if (!f) {
		if (t != V_MAP)
			return fail(r, PX_REQUEST_ESHAPE, "request body must be a JSON object");
		return push(r, L_ROOT, true);
	}
	if (!f->is_map) {
		f->n++;
		return array_elem(r, f, t, s, len);
	}
	if (f->loc == L_RAW || f->loc == L_SKIP)
		return t == V_MAP || t == V_ARR ? push(r, f->loc, t == V_MAP) : 1;
	return map_value(r, f, t, s, len);
}

/* ---- yajl callbacks ---------------------------------------------------- */

static int cb_null(void *ctx)
{
	return value(ctx, V_NULL, NULL, 0);
}

static int cb_boolean(void *ctx, int b)
{
	/* A non-NULL <s> says true (opt_bool). */
	return value(ctx, V_BOOL, b ? (const unsigned char *)"" : NULL, 0);
}

static int cb_number(void *ctx, const char *s, size_t len)
{
	return value(ctx, V_NUM, (const unsigned char *)s, len);
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
	return value(ctx, V_STR, s, len);
}

static int cb_start_map(void *ctx)
{
	return value(ctx, V_MAP, NULL, 0);
}

static int cb_start_array(void *ctx)
{
	return value(ctx, V_ARR, NULL, 0);
}

static int cb_map_key(void *ctx, const unsigned char *s, size_t len)
{
	struct rd *r = ctx;
	struct frame *f = top(r);
	enum key k;

	if (f->loc == L_RAW || f->loc == L_SKIP) {
		f->key = K_OTHER;
		return 1;
	}
	k = key_of(s, len, f->loc);
	f->key = k;
	if (f->loc == L_ROOT) {
		struct gd_str name;

		if (r->n_top_keys == PX_REQUEST_MAX_KEYS)
			return fail(r, PX_REQUEST_ELIMIT, "the request has more than %d keys",
			            PX_REQUEST_MAX_KEYS);
		if (k == K_OTHER) {
			/* Keys we skip still must not come twice: the upstream
			 * would read one of them, who knows which. */
			if (!keep(r, s, len, &name))
				return 0;
			for (uint32_t i = 0; i < r->n_other_keys; i++) {
				if (r->other_keys[i].len == name.len &&
				    memcmp(r->other_keys[i].ptr, name.ptr, name.len) == 0) {
					char shown[64];
					size_t n = gd_utf8_cut(name.ptr, name.len, sizeof(shown) - 1);

					memcpy(shown, name.ptr, n);
					shown[n] = '\0';
					for (size_t j = 0; j < n; j++)
						if ((unsigned char)shown[j] < 0x20 || shown[j] == '\'')
							shown[j] = '?';
					return fail(r, PX_REQUEST_ESHAPE, "duplicate key '%s' in the request",
					            shown);
				}
			}
			r->other_keys[r->n_other_keys++] = name;
		}
		r->n_top_keys++;
		r->key_end = at_byte(r);
	}
	if (k != K_OTHER) {
		if (f->seen & B(k)) {
			char path[160];

			path_of(r, path, sizeof(path), false);
			return fail(r, PX_REQUEST_ESHAPE, "duplicate key '%s' in %s", key_names[k],
			            path[0] ? path : "the request");
		}
		f->seen |= B(k);
	}
	return 1;
}

static enum gd_role role_of(const struct gd_str *s)
{
	static const struct { const char *name; enum gd_role role; } roles[] = {
		{ "system", GD_ROLE_SYSTEM }, { "developer", GD_ROLE_DEVELOPER },
		{ "user", GD_ROLE_USER }, { "assistant", GD_ROLE_ASSISTANT }, { "tool", GD_ROLE_TOOL },
	};

	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (str_eq(s, roles[i].name))
			return roles[i].role;
	return GD_ROLE_OTHER;
}

/* The content parts read: their texts joined, in order. */
static int join_parts(struct rd *r)
{
	struct gd_str *c = &cur_msg(r)->content;
	size_t total = 0;
	char *p;

	if (r->n_parts == 1) {
		*c = r->parts[0];
		return 1;
	}
	for (size_t i = 0; i < r->n_parts; i++)
		total += r->parts[i].len;
	p = mem_alloc(r, total + 1);
	if (!p)
		return 0;
	c->ptr = p;
	c->len = total;
	for (size_t i = 0; i < r->n_parts; i++) {
		memcpy(p, r->parts[i].ptr, r->parts[i].len);
		p += r->parts[i].len;
	}
	*p = '\0';
	return 1;
}

static int cb_end(void *ctx)
{
	struct rd *r = ctx;
	struct frame *f = top(r);
	char path[160];
	int ok = 1;

	switch (f->loc) {
	case L_ROOT:
		if (!r->have_messages)
			ok = fail(r, PX_REQUEST_ESHAPE, "request body has no \"messages\" array");
		break;
	case L_MSG:
		if (!cur_msg(r)->role_name.ptr) {
			path_of(r, path, sizeof(path), false);
			ok = fail(r, PX_REQUEST_ESHAPE, "%s has no role", path);
			break;
		}
		cur_msg(r)->role = role_of(&cur_msg(r)->role_name);
		cur_msg(r)->n_calls = r->mem->n_calls - r->mem->first_call[r->mem->n_msgs - 1];
		break;
	case L_PARTS:
		ok = join_parts(r);
		break;
	case L_PART:
		/* A text part: "type" "text", or no type (as the history always read it). */
		if (r->part_text.ptr && (!r->part_type.ptr || str_eq(&r->part_type, "text"))) {
			if (!grow(r, (void **)&r->parts, &r->cap_parts, r->n_parts + 1, sizeof(*r->parts)))
				return 0;
			r->parts[r->n_parts++] = r->part_text;
		}
		break;
	case L_CALL:
		if (!(f->seen & B(K_FUNCTION))) {
			path_of(r, path, sizeof(path), false);
			ok = fail(r, PX_REQUEST_ESHAPE, "%s has no function", path);
		}
		break;
	case L_CALL_FN:
		if (!cur_call(r)->name.ptr) {
			path_of(r, path, sizeof(path), false);
			ok = fail(r, PX_REQUEST_ESHAPE, "%s has no name", path);
		}
		break;
	case L_TOOL_FN:
		if (!cur_tool(r)->name.ptr) {
			path_of(r, path, sizeof(path), false);
			ok = fail(r, PX_REQUEST_ESHAPE, "%s has no name", path);
		}
		break;
	case L_RAW:
		if (r->depth >= 2 && r->frames[r->depth - 2].loc != L_RAW) {
			/* The whole value, as written: arguments or parameters. */
			size_t from = f->raw_start, to = at_byte(r);
			bool args = r->frames[r->depth - 2].loc == L_CALL_FN;
			struct gd_str *dst = args ? &cur_call(r)->args : &cur_tool(r)->parameters;
			char *p = mem_alloc(r, to - from + 1);

			if (!p)
				return 0;
			memcpy(p, r->body + from, to - from);
			p[to - from] = '\0';
			dst->ptr = p;
			dst->len = to - from;
			if (args)
				cur_call(r)->args_json = true;
		}
		break;
	default:
		break;
	}
	r->depth--;
	return ok;
}

static const yajl_callbacks callbacks = {
	.yajl_null = cb_null,
	.yajl_boolean = cb_boolean,
	.yajl_number = cb_number,
	.yajl_string = cb_string,
	.yajl_start_map = cb_start_map,
	.yajl_map_key = cb_map_key,
	.yajl_end_map = cb_end,
	.yajl_start_array = cb_start_array,
	.yajl_end_array = cb_end,
};

/* ---- the entry points -------------------------------------------------- */

/* Offset of the first byte of <s, n> that is not strict UTF-8 (RFC 3629),
 * or <n>. JSON text is UTF-8 as a whole; yajl checks only the shape of
 * multi-byte sequences (it lets overlongs and surrogates through). */
static size_t utf8_bad_at(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t cp;
		size_t k;

		if ((unsigned char)s[i] < 0x80) {
			i++;
			continue;
		}
		k = gd_utf8_decode((const unsigned char *)s + i, n - i, &cp);
		if (k == 0)
			return i;
		i += k;
	}
	return n;
}

enum px_request_status px_request_read(const char *body, size_t len, struct px_request **out,
                                       char *err, size_t errlen)
{
	struct rd *r = NULL;
	struct px_request *req = NULL;
	enum px_request_status st = PX_REQUEST_OK;
	yajl_status ys;
	size_t bad;

	if (err && errlen)
		err[0] = '\0';
	if (!out || (!body && len)) {
		st = PX_REQUEST_EINVAL;
		snprintf(err, errlen, "bad argument");
		goto out;
	}
	*out = NULL;
	if (len > PX_REQUEST_MAX_BODY) {
		st = PX_REQUEST_ELIMIT;
		snprintf(err, errlen, "request body of %zu bytes exceeds the cap of %u", len,
		         PX_REQUEST_MAX_BODY);
		goto out;
	}
	bad = utf8_bad_at(body, len);
	if (bad < len) {
		st = PX_REQUEST_EJSON;
		snprintf(err, errlen, "request body is not valid UTF-8 (at byte %zu)", bad);
		goto out;
	}
	r = calloc(1, sizeof(*r));
	req = calloc(1, sizeof(*req));
	if (!r || !req || !(req->mem = calloc(1, sizeof(*req->mem)))) {
		st = PX_REQUEST_ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	r->body = body;
	r->len = len;
	r->req = req;
	r->mem = req->mem;
	r->h = yajl_alloc(&callbacks, NULL, r);
	if (!r->h) {
		st = PX_REQUEST_ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ys = yajl_parse(r->h, (const unsigned char *)body, len);
	if (ys == yajl_status_ok && r->st == PX_REQUEST_OK) {
		r->completing = true;
		ys = yajl_complete_parse(r->h);
	}
	if (r->st != PX_REQUEST_OK) {
		st = r->st;
		snprintf(err, errlen, "%s", r->msg);
	} else if (ys != yajl_status_ok) {
		unsigned char *m = yajl_get_error(r->h, 0, (const unsigned char *)body, len);
		size_t n = m ? strlen((char *)m) : 0;
		size_t pos = at_byte(r);

		while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' '))
			m[--n] = '\0';
		st = PX_REQUEST_EJSON;
		snprintf(err, errlen, "request body is not valid JSON (at byte %zu): %s", pos,
		         m ? (char *)m : "parse error");
		if (m)
			yajl_free_error(r->h, m);
	}
	if (st != PX_REQUEST_OK)
		goto out;
	for (size_t i = 0; i < r->mem->n_msgs; i++)
		r->mem->msgs[i].calls = r->mem->msgs[i].n_calls
		                        ? r->mem->calls + r->mem->first_call[i] : NULL;
	req->msgs = r->mem->msgs;
	req->n_msgs = r->mem->n_msgs;
	req->tools = r->mem->tools;
	req->n_tools = r->mem->n_tools;
	*out = req;
	req = NULL;
out:
	if (r) {
		if (r->h)
			yajl_free(r->h);
		free(r->parts);
		free(r);
	}
	px_request_free(req);
	return st;
}

struct gd_history *px_request_history(const struct gd_policy *policy, const char *body,
                                      size_t len, char *err, size_t errlen)
{
	struct px_request *req = NULL;
	struct gd_history *h;

	if (px_request_read(body, len, &req, err, errlen) != PX_REQUEST_OK)
		return NULL;
	h = gd_history_new(policy, req->msgs, req->n_msgs, err, errlen);
	px_request_free(req);
	return h;
}
