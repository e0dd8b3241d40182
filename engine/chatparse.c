/* Generated text -> guard events (see chatparse.h).
 *
 * The input goes through a window of ENG_CHATPARSE_HOLD bytes; a state
 * handler consumes what it can decide from the front of the window and
 * leaves the rest (only a possible marker prefix, or the undecided start of
 * a Llama 3 call) for the next piece. Text states find markers with PCRE2
 * partial matching (PCRE2_PARTIAL_HARD: a partial match can only be at the
 * end of the window, so everything before it is decided). Call states read
 * one byte at a time through an incremental JSON scanner that validates the
 * call and says where its "name" and "arguments" values begin and end, so
 * the arguments can be relayed as they come. The same content split
 * anywhere gives the same events (concatenated): every decision depends on
 * the bytes, never on where a piece ended, except that a window full of
 * undecided bytes is decided as if the input ended there. */
#include "engine/chatparse.h"

#include <assert.h>
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ---- incremental JSON scanner ------------------------------------------------ */

enum js_state {
	J_VALUE = 0, J_OBJ_FIRST, J_OBJ_KEY, J_COLON, J_AFTER, J_ARR_FIRST,
	J_STR, J_STR_ESC, J_STR_U, J_NUM, J_LIT, J_DONE, J_ERR
};

enum js_num { N_MINUS = 0, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

/* RFC 8259 JSON, one byte at a time. Depth counts open containers: a value
 * begun at depth d that is a container makes it d + 1 until it closes. After
 * each byte the flags say what the byte did. */
struct jscan {
	uint8_t st, num, ulen;
	bool key;          /* the string being scanned is an object key */
	const char *lit;   /* the rest of true/false/null */
	int depth;
	char stack[ENG_CHATPARSE_DEPTH];
	/* what the last byte did */
	bool begin;        /* it began a value at depth <at> */
	int at;
	int end_incl;      /* it ended a value at this depth (-1: none) */
	int end_excl;      /* a number at this depth ended just before it (-1: none) */
	bool str_byte;     /* it is string content (escapes as written) */
	bool key_end;      /* it closed a key */
};

static bool js_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void js_init(struct jscan *j)
{
	memset(j, 0, sizeof(*j));
	j->st = J_VALUE;
	j->end_incl = j->end_excl = -1;
}

static bool js_fail(struct jscan *j)
{
	j->st = J_ERR;
	return false;
}

static void js_value_end(struct jscan *j, bool incl)
{
	if (incl)
		j->end_incl = j->depth;
	else
		j->end_excl = j->depth;
	j->st = j->depth == 0 ? J_DONE : J_AFTER;
}

static bool js_value_begin(struct jscan *j, unsigned char c)
{
	j->begin = true;
	j->at = j->depth;
	switch (c) {
	case '{':
	case '[':
		if (j->depth >= ENG_CHATPARSE_DEPTH)
			return js_fail(j);
		j->stack[j->depth++] = (char)c;
		j->st = c == '{' ? J_OBJ_FIRST : J_ARR_FIRST;
		return true;
	case '"':
		j->st = J_STR;
		j->key = false;
		return true;
	case 't': j->lit = "rue"; j->st = J_LIT; return true;
	case 'f': j->lit = "alse"; j->st = J_LIT; return true;
	case 'n': j->lit = "ull"; j->st = J_LIT; return true;
	case '-':
		j->num = N_MINUS;
		j->st = J_NUM;
		return true;
	default:
		if (c < '0' || c > '9')
			return js_fail(j);
		j->num = c == '0' ? N_ZERO : N_INT;
		j->st = J_NUM;
		return true;
	}
}

static bool js_after(struct jscan *j, unsigned char c)
{
	char top;

	if (js_ws(c))
		return true;
	if (j->st == J_DONE || j->depth == 0)
		return js_fail(j);
	top = j->stack[j->depth - 1];
	if (c == ',') {
		j->st = top == '{' ? J_OBJ_KEY : J_VALUE;
		return true;
	}
	if ((c == '}' && top == '{') || (c == ']' && top == '[')) {
		j->depth--;
		js_value_end(j, true);
		return true;
	}
	return js_fail(j);
}

static bool js_num(struct jscan *j, unsigned char c)
{
	bool digit = c >= '0' && c <= '9';

	switch (j->num) {
	case N_MINUS:
		if (!digit)
			return js_fail(j);
		j->num = c == '0' ? N_ZERO : N_INT;
		return true;
	case N_ZERO:
	case N_INT:
	case N_FRAC:
		if (digit && j->num != N_ZERO)
			return true;
		if (c == '.' && j->num != N_FRAC) {
			j->num = N_DOT;
			return true;
		}
		if (c == 'e' || c == 'E') {
			j->num = N_E;
			return true;
		}
		break;
	case N_DOT:
		if (!digit)
			return js_fail(j);
		j->num = N_FRAC;
		return true;
	case N_E:
		if (c == '+' || c == '-') {
			j->num = N_ESIGN;
			return true;
		}
		/* fall through */
	case N_ESIGN:
		if (!digit)
			return js_fail(j);
		j->num = N_EXP;
		return true;
	case N_EXP:
		if (digit)
			return true;
		break;
	}
	js_value_end(j, false);
	return js_after(j, c);
}

static bool js_byte(struct jscan *j, unsigned char c)
{
	j->begin = j->str_byte = j->key_end = false;
	j->end_incl = j->end_excl = -1;
	switch (j->st) {
	case J_VALUE:
		return js_ws(c) || js_value_begin(j, c);
	case J_ARR_FIRST:
		if (js_ws(c))
			return true;
		if (c == ']') {
			j->depth--;
			js_value_end(j, true);
			return true;
		}
		return js_value_begin(j, c);
	case J_OBJ_FIRST:
		if (c == '}') {
			j->depth--;
			js_value_end(j, true);
			return true;
		}
		/* fall through */
	case J_OBJ_KEY:
		if (js_ws(c))
			return true;
		if (c != '"')
			return js_fail(j);
		j->st = J_STR;
		j->key = true;
		return true;
	case J_COLON:
		if (js_ws(c))
			return true;
		if (c != ':')
			return js_fail(j);
		j->st = J_VALUE;
		return true;
	case J_AFTER:
		return js_after(j, c);
	case J_STR:
		if (c == '"') {
			if (j->key) {
				j->key_end = true;
				j->st = J_COLON;
			} else {
				js_value_end(j, true);
			}
			return true;
		}
		if (c < 0x20)
			return js_fail(j);
		j->str_byte = true;
		if (c == '\\')
			j->st = J_STR_ESC;
		return true;
	case J_STR_ESC:
		j->str_byte = true;
		if (c == 'u') {
			j->ulen = 0;
			j->st = J_STR_U;
			return true;
		}
		if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
		    c == 't') {
			j->st = J_STR;
			return true;
		}
		return js_fail(j);
	case J_STR_U:
		j->str_byte = true;
		if (!isxdigit(c))
			return js_fail(j);
		if (++j->ulen == 4)
			j->st = J_STR;
		return true;
	case J_LIT:
		if (c != (unsigned char)*j->lit)
			return js_fail(j);
		if (*++j->lit == '\0')
			js_value_end(j, true);
		return true;
	case J_NUM:
		return js_num(j, c);
	case J_DONE:
		return js_after(j, c);
	default:
		return false;
	}
}

/* ---- markers (PCRE2, compiled once per process) ----------------------------------- */

enum { RE_THINK_START = 0, RE_THINK_END, RE_LLAMA_HEAD, RE_TOOL_CALL, RE_PYTHON_TAG,
       RE_TOOL_CALLS, RE_TOOL_CALL_END, RE_COUNT };

static const char *const re_src[RE_COUNT] = {
	[RE_THINK_START] = "\\A\\s*<think>",
	[RE_THINK_END] = "</think>",
	/* A Llama 3 call without a marker: llama.cpp's function regex, anchored
	 * at the start of the answer (or after a previous call). */
	[RE_LLAMA_HEAD] = ("\\A\\s*(?:<\\|python_tag\\|>\\s*)?\\{\\s*"
	                   "(?:\"type\"\\s*:\\s*\"function\"\\s*,\\s*)?\"name\"\\s*:\\s*\""),
	[RE_TOOL_CALL] = "<tool_call>",
	[RE_PYTHON_TAG] = "<\\|python_tag\\|>",
	[RE_TOOL_CALLS] = "\\[TOOL_CALLS\\]",
	[RE_TOOL_CALL_END] = "</tool_call>",
};

static pcre2_code *re_code[RE_COUNT];
static bool re_ok;
static pthread_once_t re_once = PTHREAD_ONCE_INIT;

static void re_compile(void)
{
	int ec;
	PCRE2_SIZE eo;

	re_ok = true;
	for (int i = 0; i < RE_COUNT; i++) {
		re_code[i] = pcre2_compile((PCRE2_SPTR)re_src[i], PCRE2_ZERO_TERMINATED, 0, &ec, &eo,
		                           NULL);
		if (!re_code[i])
			re_ok = false;
	}
}

enum { RX_NONE = 0, RX_PARTIAL, RX_FULL };

/* ---- the parser ------------------------------------------------------------------ */

enum state {
	S_START = 0,     /* answer start: "<think>" may open */
	S_REASON_LEAD,   /* after <think>: leading whitespace dropped */
	S_REASON,        /* reasoning until </think> */
	S_AFTER_THINK,   /* after </think>: leading whitespace dropped */
	S_CONTENT_START, /* where a Llama 3 call may begin without a marker */
	S_TEXT,          /* text, markers searched */
	S_CALL_PRE,      /* after a marker: the call's '{' (mistral: '[' or a name) */
	S_CALL_OBJ,      /* inside a call object */
	S_CALL_POST,     /* after a call object: its closing ("</tool_call>", ",", "]", ";") */
	S_MI_NAME,       /* mistral [TOOL_CALLS]name… */
	S_MI_CALLID,     /* mistral …[CALL_ID]id… */
	S_MI_ARGS,       /* mistral …[ARGS]{…} */
	S_SKIP,          /* the rest of a broken call */
};

enum key { K_OTHER = 0, K_NAME, K_ARGS };

struct eng_chatparse {
	struct eng_chatparse_cfg cfg;
	bool tools_on;
	int re_marker;            /* the family's call marker, -1 when tools are off */
	pcre2_match_data *md;
	enum state st;

	char win[ENG_CHATPARSE_HOLD];
	size_t win_off, win_len;

	/* whitespace held at a boundary */
	char ws[ENG_CHATPARSE_WS_MAX];
	size_t ws_len;
	enum gd_event_type ws_type;
	bool ws_over;             /* this run passed the cap: relayed as it comes */
	size_t lead;              /* leading whitespace dropped in this run */
	bool after_call;          /* text right after a call: whitespace-only text is held */

	/* the call being parsed */
	char *head;               /* its bytes before GD_EV_TOOL_BEGIN (marker included);
	                             after it, string arguments */
	size_t head_len;
	bool marker;              /* a marker began it (not a bare Llama 3 object) */
	bool begun, in_name, name_done, name_bad;
	bool args_seen, in_args, args_str, args_done;
	size_t args_off, args_end; /* arguments held in <head> */
	enum key key;
	char keybuf[16];
	size_t key_len;
	char name[ENG_CHATPARSE_NAME_MAX];
	size_t name_len;
	char id[ENG_CHATPARSE_ID_MAX];
	size_t id_len;
	bool mi_array;
	struct jscan js;
	uint32_t n_calls;          /* calls begun: the next call's index */
	uint32_t delivered;        /* calls ended whole */

	/* per feed */
	eng_chatparse_cb cb;
	void *ctx;
	bool stopped;
	bool broken_now;
	char broken_err[192];
	struct eng_chatparse_info info;
};

const char *eng_chatparse_strerror(enum eng_chatparse_status st)
{
	switch (st) {
	case ENG_CHATPARSE_OK: return "ok";
	case ENG_CHATPARSE_EBROKEN: return "a tool call the model began is malformed";
	case ENG_CHATPARSE_ESTOPPED: return "stopped by the event callback";
	case ENG_CHATPARSE_EINVAL: return "invalid argument";
	}
	return "unknown chat parser status";
}

struct eng_chatparse *eng_chatparse_new(void)
{
	struct eng_chatparse *p;

	pthread_once(&re_once, re_compile);
	if (!re_ok)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->head = malloc(ENG_CHATPARSE_HEAD_MAX);
	p->md = pcre2_match_data_create(4, NULL);
	if (!p->head || !p->md) {
		eng_chatparse_free(p);
		return NULL;
	}
	p->re_marker = -1;
	return p;
}

void eng_chatparse_free(struct eng_chatparse *p)
{
	if (!p)
		return;
	pcre2_match_data_free(p->md);
	free(p->head);
	free(p);
}

static void call_reset(struct eng_chatparse *p)
{
	p->head_len = 0;
	p->marker = false;
	p->begun = p->in_name = p->name_done = p->name_bad = false;
	p->args_seen = p->in_args = p->args_str = p->args_done = false;
	p->args_off = p->args_end = 0;
	p->key = K_OTHER;
	p->key_len = 0;
	p->name_len = 0;
	p->lead = 0;
}

enum eng_chatparse_status eng_chatparse_reset(struct eng_chatparse *p,
                                              const struct eng_chatparse_cfg *cfg)
{
	if (!p || !cfg || (unsigned)cfg->family >= ENG_CHAT_FAMILY_COUNT ||
	    (cfg->n_tools && !cfg->tools))
		return ENG_CHATPARSE_EINVAL;
	p->cfg = *cfg;
	p->tools_on = cfg->n_tools > 0;
	switch (cfg->family) {
	case ENG_CHAT_CHATML: p->re_marker = RE_TOOL_CALL; break;
	case ENG_CHAT_LLAMA3: p->re_marker = RE_PYTHON_TAG; break;
	case ENG_CHAT_MISTRAL: p->re_marker = RE_TOOL_CALLS; break;
	default: p->tools_on = false; break;
	}
	if (!p->tools_on)
		p->re_marker = -1;
	p->st = S_START;
	if (cfg->reasoning && cfg->think_open)
		p->st = S_REASON_LEAD;
	p->win_off = p->win_len = 0;
	p->ws_len = 0;
	p->ws_over = false;
	p->after_call = false;
	p->mi_array = false;
	p->n_calls = p->delivered = 0;
	p->stopped = false;
	p->broken_now = false;
	memset(&p->info, 0, sizeof(p->info));
	call_reset(p);
	return ENG_CHATPARSE_OK;
}

void eng_chatparse_info(const struct eng_chatparse *p, struct eng_chatparse_info *out)
{
	if (!p) {
		memset(out, 0, sizeof(*out));
		return;
	}
	*out = p->info;
	out->in_reasoning = p->st == S_REASON_LEAD || p->st == S_REASON;
}

static int rx(struct eng_chatparse *p, int which, const char *b, size_t n, size_t *m0, size_t *m1)
{
	int rc = pcre2_match(re_code[which], (PCRE2_SPTR)b, n, 0, PCRE2_PARTIAL_HARD, p->md, NULL);
	PCRE2_SIZE *ov;

	if (rc < 0 && rc != PCRE2_ERROR_PARTIAL)
		return RX_NONE;
	ov = pcre2_get_ovector_pointer(p->md);
	*m0 = ov[0];
	*m1 = ov[1];
	return rc == PCRE2_ERROR_PARTIAL ? RX_PARTIAL : RX_FULL;
}

/* <b, n> against the literal <lit> at its start. */
static int prefix(const char *b, size_t n, const char *lit)
{
	size_t l = strlen(lit);

	if (n >= l)
		return memcmp(b, lit, l) == 0 ? RX_FULL : RX_NONE;
	return memcmp(b, lit, n) == 0 ? RX_PARTIAL : RX_NONE;
}

static bool ws(char c)
{
	return js_ws((unsigned char)c);
}

/* ---- emitting ------------------------------------------------------------------------- */

static void emit(struct eng_chatparse *p, enum gd_event_type type, const char *data, size_t len)
{
	struct gd_event ev;
	bool call = type == GD_EV_TOOL_BEGIN || type == GD_EV_TOOL_ARGS || type == GD_EV_TOOL_END;

	if (p->stopped || (len == 0 && (type == GD_EV_TEXT || type == GD_EV_REASONING ||
	                                type == GD_EV_TOOL_ARGS)))
		return;
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.id = ev.name = "";
	ev.data = data ? data : "";
	ev.len = len;
	ev.prompt_tokens = ev.completion_tokens = -1;
	if (call) {
		ev.index = p->n_calls;
		ev.id = p->id;
		ev.id_len = p->id_len;
		ev.name = p->name;
		ev.name_len = p->name_len;
	}
	if (p->cb && p->cb(&ev, p->ctx) != 0)
		p->stopped = true;
}

static void ws_flush(struct eng_chatparse *p)
{
	emit(p, p->ws_type, p->ws, p->ws_len);
	p->ws_len = 0;
}

static void ws_drop(struct eng_chatparse *p)
{
	p->ws_len = 0;
	p->ws_over = false;
}

/* Relays text or reasoning. Trailing whitespace is held where a boundary
 * may follow (reasoning: "</think>"; text after a call: the next call), up
 * to ENG_CHATPARSE_WS_MAX bytes, after which the run is relayed. */
static void out_text(struct eng_chatparse *p, enum gd_event_type type, const char *s, size_t n)
{
	size_t body = n;

	if (n == 0)
		return;
	if (type == GD_EV_TEXT && !p->after_call) {
		emit(p, type, s, n);
		return;
	}
	while (body && ws(s[body - 1]))
		body--;
	if (body) {
		ws_flush(p);
		p->ws_over = false;
		if (type == GD_EV_TEXT) {
			p->after_call = false;
			emit(p, type, s, n);
			return;
		}
		emit(p, type, s, body);
	}
	s += body;
	n -= body;
	if (p->ws_over) {
		emit(p, type, s, n);
	} else if (p->ws_len + n <= sizeof(p->ws)) {
		memcpy(p->ws + p->ws_len, s, n);
		p->ws_len += n;
		p->ws_type = type;
	} else {
		ws_flush(p);
		emit(p, type, s, n);
		p->ws_over = true;
	}
}

static void note(struct eng_chatparse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(struct eng_chatparse *p, const char *fmt, ...)
{
	va_list ap;

	p->info.malformed++;
	if (p->info.error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(p->info.error, sizeof(p->info.error), fmt, ap);
	va_end(ap);
}

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void make_id(struct eng_chatparse *p)
{
	static const char b62[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	uint64_t h = mix(p->cfg.id_seed ^ mix(p->n_calls));

	if (p->cfg.family == ENG_CHAT_MISTRAL) {
		for (int i = 0; i < 9; i++, h /= 62)
			p->id[i] = b62[h % 62];
		p->id_len = 9;
	} else {
		p->id_len = (size_t)snprintf(p->id, sizeof(p->id), "call_%016llx",
		                             (unsigned long long)h);
	}
	p->id[p->id_len] = '\0';
}

static bool head_add(struct eng_chatparse *p, const char *s, size_t n)
{
	if (n > ENG_CHATPARSE_HEAD_MAX - p->head_len)
		return false;
	memcpy(p->head + p->head_len, s, n);
	p->head_len += n;
	return true;
}

/* ---- calls ------------------------------------------------------------------------------ */

static void call_start(struct eng_chatparse *p, const char *marker, size_t n, bool is_marker)
{
	call_reset(p);
	head_add(p, marker, n); /* n ≤ ENG_CHATPARSE_HOLD */
	p->marker = is_marker;
	p->mi_array = false;
}

static bool known_name(const struct eng_chatparse *p)
{
	for (uint32_t i = 0; i < p->cfg.n_tools; i++) {
		const struct eng_str *n = &p->cfg.tools[i].name;

		if (n->ptr && n->len == p->name_len && memcmp(n->ptr, p->name, p->name_len) == 0)
			return true;
	}
	return false;
}

/* Why the collected name cannot name a call, or NULL. */
static const char *name_problem(const struct eng_chatparse *p)
{
	if (p->name_bad)
		return "its name is not a plain string";
	if (p->name_len == 0)
		return "its name is empty";
	if (!known_name(p))
		return "it names a tool the request does not have";
	return NULL;
}

/* Something is wrong with the call being parsed (see chatparse.h). */
static void call_fail(struct eng_chatparse *p, const char *why)
{
	int nl = (int)(p->name_len < 64 ? p->name_len : 64);

	if (!p->begun) {
		/* Nothing of it was emitted: relay it as the model wrote it. A bare
		 * Llama 3 object that is no call is just text, not a problem. */
		if (p->marker && nl)
			note(p, "tool call %u ('%.*s'): %s; relayed as text", p->n_calls, nl, p->name,
			     why);
		else if (p->marker)
			note(p, "tool call %u: %s; relayed as text", p->n_calls, why);
		out_text(p, GD_EV_TEXT, p->head, p->head_len);
		call_reset(p);
		p->st = S_TEXT;
		return;
	}
	if (p->args_done) {
		note(p, "tool call %u ('%.*s'): %s after its arguments; the call stands",
		     p->n_calls, nl, p->name, why);
		emit(p, GD_EV_TOOL_END, NULL, 0);
		p->delivered++;
	} else {
		note(p, "tool call %u ('%.*s'): %s", p->n_calls, nl, p->name, why);
		emit(p, GD_EV_TOOL_END, NULL, 0);
		p->info.broken++;
		if (!p->broken_now)
			snprintf(p->broken_err, sizeof(p->broken_err), "tool call %u ('%.*s'): %s",
			         p->n_calls, nl, p->name, why);
		p->broken_now = true;
	}
	p->n_calls++;
	call_reset(p);
	p->st = S_SKIP;
}

/* JSON string content <s, n> (escapes as written, valid JSON) decoded in
 * place; returns the decoded length. */
static size_t unescape(char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned cp;

		if (s[i] != '\\') {
			s[o++] = s[i];
			continue;
		}
		switch (s[++i]) {
		case 'b': s[o++] = '\b'; continue;
		case 'f': s[o++] = '\f'; continue;
		case 'n': s[o++] = '\n'; continue;
		case 'r': s[o++] = '\r'; continue;
		case 't': s[o++] = '\t'; continue;
		case 'u': break;
		default: s[o++] = s[i]; continue;
		}
		cp = (unsigned)strtoul((char[5]){ s[i + 1], s[i + 2], s[i + 3], s[i + 4], 0 }, NULL, 16);
		i += 4;
		if (cp >= 0xd800 && cp < 0xdc00 && i + 6 < n && s[i + 1] == '\\' &&
		    s[i + 2] == 'u') {
			unsigned lo = (unsigned)strtoul(
				(char[5]){ s[i + 3], s[i + 4], s[i + 5], s[i + 6], 0 }, NULL, 16);

			if (lo >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				i += 6;
			}
		}
		if (cp >= 0xd800 && cp < 0xe000)
			cp = 0xfffd;
		if (cp < 0x80) {
			s[o++] = (char)cp;
		} else if (cp < 0x800) {
			s[o++] = (char)(0xc0 | (cp >> 6));
			s[o++] = (char)(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000) {
			s[o++] = (char)(0xe0 | (cp >> 12));
			s[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			s[o++] = (char)(0x80 | (cp & 0x3f));
		} else {
			s[o++] = (char)(0xf0 | (cp >> 18));
			s[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
			s[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			s[o++] = (char)(0x80 | (cp & 0x3f));
		}
	}
	return o;
}

/* String arguments held in head[args_off, args_end) (quotes included):
 * decoded in place; true when they hold one JSON object. */
static bool string_args(struct eng_chatparse *p, size_t *off, size_t *len)
{
	struct jscan j;
	size_t n;
	bool obj = false;

	*off = p->args_off + 1;
	n = unescape(p->head + *off, p->args_end - p->args_off - 2);
	*len = n;
	js_init(&j);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p->head[*off + i];

		if (!obj && !js_ws(c)) {
			if (c != '{')
				return false;
			obj = true;
		}
		if (!js_byte(&j, c))
			return false;
	}
	return j.st == J_DONE;
}

static void call_begin(struct eng_chatparse *p)
{
	ws_drop(p); /* whitespace between calls */
	make_id(p);
	p->begun = true;
	p->info.tool_calls++;
	emit(p, GD_EV_TOOL_BEGIN, NULL, 0);
}

static void call_end(struct eng_chatparse *p)
{
	if (!p->args_seen)
		emit(p, GD_EV_TOOL_ARGS, "{}", 2);
	emit(p, GD_EV_TOOL_END, NULL, 0);
	p->delivered++;
	p->n_calls++;
	call_reset(p);
}

/* ---- state handlers: consume from the front of <b, n>; 0 with the state
 * unchanged means "need more input" (never when <forced>) ----------------------- */

static size_t h_start(struct eng_chatparse *p, const char *b, size_t n, bool forced)
{
	size_t m0, m1;
	int r = p->cfg.reasoning ? rx(p, RE_THINK_START, b, n, &m0, &m1) : RX_NONE;

	if (r == RX_FULL) {
		p->st = S_REASON_LEAD;
		p->lead = 0;
		return m1;
	}
	if (r == RX_PARTIAL && !forced)
		return 0;
	p->st = S_CONTENT_START;
	return 0;
}

/* S_REASON_LEAD, S_AFTER_THINK: drop up to ENG_CHATPARSE_WS_MAX whitespace. */
static size_t h_lead(struct eng_chatparse *p, const char *b, size_t n)
{
	size_t i = 0;

	while (i < n && ws(b[i]) && p->lead < ENG_CHATPARSE_WS_MAX) {
		i++;
		p->lead++;
	}
	if (i < n)
		p->st = p->st == S_REASON_LEAD ? S_REASON : S_CONTENT_START;
	return i;
}

static size_t h_reason(struct eng_chatparse *p, const char *b, size_t n, bool forced)
{
	size_t m0, m1;
	int r = rx(p, RE_THINK_END, b, n, &m0, &m1);

	if (r == RX_FULL) {
		out_text(p, GD_EV_REASONING, b, m0);
		ws_drop(p);
		p->st = S_AFTER_THINK;
		p->lead = 0;
		return m1;
	}
	if (r == RX_PARTIAL && !forced) {
		out_text(p, GD_EV_REASONING, b, m0);
		return m0;
	}
	out_text(p, GD_EV_REASONING, b, n);
	return n;
}

static size_t h_content_start(struct eng_chatparse *p, const char *b, size_t n, bool forced)
{
	size_t m0, m1;
	int r = RX_NONE;

	if (p->tools_on && p->cfg.family == ENG_CHAT_LLAMA3)
		r = rx(p, RE_LLAMA_HEAD, b, n, &m0, &m1);
	if (r == RX_FULL) {
		size_t brace = (size_t)((const char *)memchr(b, '{', m1) - b);

		call_start(p, b, brace, false);
		js_init(&p->js);
		p->st = S_CALL_OBJ;
		return brace;
	}
	if (r == RX_PARTIAL && !forced)
		return 0;
	p->st = S_TEXT;
	return 0;
}

static size_t h_text(struct eng_chatparse *p, const char *b, size_t n, bool forced)
{
	size_t m0, m1;
	int r = p->re_marker >= 0 ? rx(p, p->re_marker, b, n, &m0, &m1) : RX_NONE;

	if (r == RX_FULL) {
		out_text(p, GD_EV_TEXT, b, m0);
		ws_drop(p); /* whitespace between calls */
		call_start(p, b + m0, m1 - m0, true);
		p->st = S_CALL_PRE;
		return m1;
	}
	if (r == RX_PARTIAL && !forced) {
		out_text(p, GD_EV_TEXT, b, m0);
		return m0;
	}
	out_text(p, GD_EV_TEXT, b, n);
	return n;
}

static size_t h_call_pre(struct eng_chatparse *p, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = b[i];

		if (c == '{') {
			js_init(&p->js);
			p->st = S_CALL_OBJ;
			return i;
		}
		if (p->cfg.family == ENG_CHAT_MISTRAL) {
			if (c == '[' && !p->mi_array && head_add(p, &c, 1)) {
				p->mi_array = true;
				continue;
			}
			if (c == ']' && p->mi_array) {
				/* "[]", or a trailing comma: the list is over */
				p->mi_array = false;
				call_reset(p);
				p->after_call = true;
				p->st = S_TEXT;
				return i + 1;
			}
			if (!p->mi_array && (isalpha((unsigned char)c) || c == '_')) {
				p->st = S_MI_NAME;
				return i;
			}
		}
		if (!ws(c) || !head_add(p, &c, 1)) {
			call_fail(p, "no JSON object after the marker");
			return i;
		}
	}
	return n;
}

/* A value at depth 1 of the call object began with byte <c>. False: the
 * call failed (already handled). */
static bool value_begin(struct eng_chatparse *p, char c, size_t i, size_t *run)
{
	if (p->key == K_NAME && !p->name_done && !p->in_name) {
		if (c != '"') {
			call_fail(p, "its name is not a string");
			return false;
		}
		p->in_name = true;
		p->name_len = 0;
	} else if (p->key == K_ARGS && !p->args_seen) {
		p->args_seen = true;
		if (c != '{' && c != '"') {
			call_fail(p, "its arguments are not a JSON object");
			return false;
		}
		p->in_args = true;
		p->args_str = c == '"';
		if (!p->begun) {
			p->args_off = p->head_len - 1;
		} else if (p->args_str) {
			p->head_len = 0;
			p->args_off = 0;
			head_add(p, &c, 1);
		} else {
			*run = i;
		}
	}
	return true;
}

/* A value at depth 1 ended (<incl>: with byte i). False: the call failed. */
static bool value_end(struct eng_chatparse *p, const char *b, size_t i, size_t *run)
{
	size_t off, len;

	if (p->in_name) {
		const char *why;

		p->in_name = false;
		p->name_done = true;
		p->name[p->name_len] = '\0';
		why = name_problem(p);
		if (why) {
			call_fail(p, why);
			return false;
		}
		if (p->args_done && p->args_str && !string_args(p, &off, &len)) {
			call_fail(p, "its string arguments do not hold a JSON object");
			return false;
		}
		call_begin(p);
		if (p->args_done)
			emit(p, GD_EV_TOOL_ARGS, p->args_str ? p->head + off : p->head + p->args_off,
			     p->args_str ? len : p->args_end - p->args_off);
		p->head_len = 0;
		return true;
	}
	if (!p->in_args)
		return true;
	p->in_args = false;
	p->args_done = true;
	p->args_end = p->head_len;
	if (!p->begun)
		return true;
	if (!p->args_str) {
		emit(p, GD_EV_TOOL_ARGS, b + *run, i + 1 - *run);
		*run = SIZE_MAX;
		return true;
	}
	if (!string_args(p, &off, &len)) {
		p->args_done = false;
		call_fail(p, "its string arguments do not hold a JSON object");
		return false;
	}
	emit(p, GD_EV_TOOL_ARGS, p->head + off, len);
	p->head_len = 0;
	return true;
}

static size_t h_call_obj(struct eng_chatparse *p, const char *b, size_t n)
{
	/* start of argument bytes relayed from <b>: arguments already under
	 * way continue at its first byte */
	size_t run = p->begun && p->in_args && !p->args_str ? 0 : SIZE_MAX;
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b[i];
		bool keep = !p->begun || (p->in_args && p->args_str);
		struct jscan *j = &p->js;

		if (keep && !head_add(p, b + i, 1)) {
			call_fail(p, p->begun ? "its string arguments are too long"
			                      : "too long before its name");
			return i;
		}
		if (!js_byte(j, c)) {
			if (keep)
				p->head_len--; /* the byte is not consumed: text may take it */
			if (run != SIZE_MAX)
				emit(p, GD_EV_TOOL_ARGS, b + run, i - run);
			call_fail(p, "it is not valid JSON");
			return i;
		}
		if (j->key_end && j->depth == 1) {
			p->key = K_OTHER;
			if (p->key_len == 4 && memcmp(p->keybuf, "name", 4) == 0)
				p->key = K_NAME;
			else if ((p->key_len == 9 && memcmp(p->keybuf, "arguments", 9) == 0) ||
			         (p->key_len == 10 && memcmp(p->keybuf, "parameters", 10) == 0))
				p->key = K_ARGS;
			p->key_len = 0;
		} else if (j->str_byte && j->key && j->depth == 1) {
			if (p->key_len < sizeof(p->keybuf))
				p->keybuf[p->key_len] = (char)c;
			p->key_len++;
		}
		if (j->begin && j->at == 1 && !value_begin(p, (char)c, i, &run))
			return i + 1;
		if (p->in_name && j->str_byte) {
			if (c == '\\' || p->name_len + 1 >= sizeof(p->name))
				p->name_bad = true;
			else
				p->name[p->name_len++] = (char)c;
		}
		if ((j->end_incl == 1 || j->end_excl == 1) && !value_end(p, b, i, &run))
			return i + 1;
		if (j->end_incl == 0) {
			if (!p->name_done) {
				call_fail(p, "it has no \"name\"");
				return i + 1;
			}
			call_end(p);
			p->st = S_CALL_POST;
			return i + 1;
		}
	}
	if (run != SIZE_MAX)
		emit(p, GD_EV_TOOL_ARGS, b + run, n - run);
	return n;
}

static size_t h_call_post(struct eng_chatparse *p, const char *b, size_t n, bool forced)
{
	size_t i = 0;
	int r;

	switch (p->cfg.family) {
	case ENG_CHAT_CHATML:
		while (i < n && ws(b[i]) && p->lead < ENG_CHATPARSE_WS_MAX) {
			i++;
			p->lead++;
		}
		if (i == n)
			return n;
		r = prefix(b + i, n - i, "</tool_call>");
		if (r == RX_PARTIAL && !forced)
			return i;
		if (r == RX_FULL)
			i += 12;
		else
			note(p, "tool call %u: no </tool_call> after it", p->n_calls - 1);
		break;
	case ENG_CHAT_MISTRAL:
		while (p->mi_array && i < n && ws(b[i]) && p->lead < ENG_CHATPARSE_WS_MAX) {
			i++;
			p->lead++;
		}
		if (p->mi_array && i == n)
			return n;
		if (p->mi_array && b[i] == ',') {
			call_reset(p);
			p->marker = true;
			p->st = S_CALL_PRE;
			return i + 1;
		}
		if (p->mi_array && b[i] == ']')
			i++;
		else if (p->mi_array)
			note(p, "tool calls: the [TOOL_CALLS] list is not closed");
		p->mi_array = false;
		break;
	default: /* llama3: calls separated by ";" or whitespace */
		while (i < n && (ws(b[i]) || b[i] == ';') && p->lead < ENG_CHATPARSE_WS_MAX) {
			i++;
			p->lead++;
		}
		if (i == n)
			return n;
		p->after_call = true;
		p->st = S_CONTENT_START;
		return i;
	}
	p->after_call = true;
	p->st = S_TEXT;
	return i;
}

static size_t h_mi_name(struct eng_chatparse *p, const char *b, size_t n, bool forced)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b[i];
		int ra, rc;

		if (p->st == S_MI_NAME && (isalnum(c) || c == '_' || c == '-' || c == '.')) {
			if (p->name_len + 1 >= sizeof(p->name) || !head_add(p, b + i, 1)) {
				call_fail(p, "its name is too long");
				return i;
			}
			p->name[p->name_len++] = (char)c;
			continue;
		}
		if (p->st == S_MI_CALLID && isalnum(c)) {
			if (!head_add(p, b + i, 1)) {
				call_fail(p, "its id is too long");
				return i;
			}
			continue;
		}
		ra = c == '[' ? prefix(b + i, n - i, "[ARGS]") : RX_NONE;
		rc = c == '[' && p->st == S_MI_NAME ? prefix(b + i, n - i, "[CALL_ID]") : RX_NONE;
		if (ra == RX_FULL) {
			const char *why;

			head_add(p, b + i, 6);
			p->name[p->name_len] = '\0';
			why = name_problem(p);
			if (why) {
				call_fail(p, why);
				return i + 6;
			}
			p->st = S_MI_ARGS;
			return i + 6;
		}
		if (rc == RX_FULL) {
			head_add(p, b + i, 9);
			p->st = S_MI_CALLID;
			return i + 9;
		}
		if ((ra == RX_PARTIAL || rc == RX_PARTIAL) && !forced)
			return i;
		call_fail(p, "no [ARGS] after its name");
		return i;
	}
	return n;
}

static size_t h_mi_args(struct eng_chatparse *p, const char *b, size_t n)
{
	size_t run = p->begun ? 0 : SIZE_MAX;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b[i];

		if (!p->begun) {
			if (ws((char)c)) {
				if (!head_add(p, b + i, 1)) {
					call_fail(p, "no JSON object after [ARGS]");
					return i;
				}
				continue;
			}
			if (c != '{') {
				call_fail(p, "its arguments are not a JSON object");
				return i;
			}
			js_init(&p->js);
			call_begin(p);
			p->args_seen = p->in_args = true;
			run = i;
		}
		if (!js_byte(&p->js, c)) {
			emit(p, GD_EV_TOOL_ARGS, b + run, i - run);
			call_fail(p, "its arguments are not valid JSON");
			return i;
		}
		if (p->js.end_incl == 0) {
			emit(p, GD_EV_TOOL_ARGS, b + run, i + 1 - run);
			p->args_done = true;
			call_end(p);
			p->after_call = true;
			p->st = S_TEXT;
			return i + 1;
		}
	}
	if (run != SIZE_MAX)
		emit(p, GD_EV_TOOL_ARGS, b + run, n - run);
	return n;
}

static size_t h_skip(struct eng_chatparse *p, const char *b, size_t n, bool forced)
{
	size_t m0, m1;
	int r;

	if (p->cfg.family != ENG_CHAT_CHATML)
		return n; /* the broken call runs to the end of the answer */
	r = rx(p, RE_TOOL_CALL_END, b, n, &m0, &m1);
	if (r == RX_FULL) {
		p->after_call = true;
		p->st = S_TEXT;
		return m1;
	}
	if (r == RX_PARTIAL && !forced)
		return m0;
	return n;
}

static size_t step(struct eng_chatparse *p, const char *b, size_t n, bool forced)
{
	switch (p->st) {
	case S_START: return h_start(p, b, n, forced);
	case S_REASON_LEAD:
	case S_AFTER_THINK: return h_lead(p, b, n);
	case S_REASON: return h_reason(p, b, n, forced);
	case S_CONTENT_START: return h_content_start(p, b, n, forced);
	case S_TEXT: return h_text(p, b, n, forced);
	case S_CALL_PRE: return h_call_pre(p, b, n);
	case S_CALL_OBJ: return h_call_obj(p, b, n);
	case S_CALL_POST: return h_call_post(p, b, n, forced);
	case S_MI_NAME:
	case S_MI_CALLID: return h_mi_name(p, b, n, forced);
	case S_MI_ARGS: return h_mi_args(p, b, n);
	case S_SKIP: return h_skip(p, b, n, forced);
	}
	return n;
}

/* Moves <in, n> through the window; with <at_end> the input is over and
 * nothing may stay undecided. */
static void run(struct eng_chatparse *p, const char *in, size_t n, bool at_end)
{
	while (!p->stopped) {
		enum state before = p->st;
		bool forced;
		size_t used;

		if (n && p->win_len < sizeof(p->win)) {
			size_t take = sizeof(p->win) - p->win_len;

			if (p->win_off) {
				memmove(p->win, p->win + p->win_off, p->win_len);
				p->win_off = 0;
			}
			take = take < n ? take : n;
			memcpy(p->win + p->win_len, in, take);
			p->win_len += take;
			in += take;
			n -= take;
		}
		if (p->win_len == 0)
			break;
		forced = (at_end && n == 0) || p->win_len == sizeof(p->win);
		used = step(p, p->win + p->win_off, p->win_len, forced);
		if (used == 0 && p->st == before) {
			if (!forced) {
				if (n == 0)
					break; /* undecided: wait for the next piece */
				continue;
			}
			/* A handler that cannot decide a forced window is a bug; relay
			 * one byte rather than spin. */
			assert(!"chat parser made no progress");
			out_text(p, GD_EV_TEXT, p->win + p->win_off, 1);
			used = 1;
		}
		p->win_off += used;
		p->win_len -= used;
	}
}

static enum eng_chatparse_status status(struct eng_chatparse *p, char *err, size_t errlen)
{
	if (p->stopped)
		return ENG_CHATPARSE_ESTOPPED;
	if (p->broken_now) {
		p->broken_now = false;
		if (err && errlen)
			snprintf(err, errlen, "%s", p->broken_err);
		return ENG_CHATPARSE_EBROKEN;
	}
	return ENG_CHATPARSE_OK;
}

enum eng_chatparse_status eng_chatparse_feed(struct eng_chatparse *p, const char *text, size_t len,
                                             eng_chatparse_cb cb, void *ctx, char *err,
                                             size_t errlen)
{
	if (!p || (!text && len))
		return ENG_CHATPARSE_EINVAL;
	if (p->stopped)
		return ENG_CHATPARSE_ESTOPPED;
	p->cb = cb;
	p->ctx = ctx;
	run(p, text, len, false);
	return status(p, err, errlen);
}

enum eng_chatparse_status eng_chatparse_end(struct eng_chatparse *p, const char *finish_reason,
                                            eng_chatparse_cb cb, void *ctx, char *err,
                                            size_t errlen)
{
	if (!p)
		return ENG_CHATPARSE_EINVAL;
	if (p->stopped)
		return ENG_CHATPARSE_ESTOPPED;
	p->cb = cb;
	p->ctx = ctx;
	run(p, NULL, 0, true);
	switch (p->st) {
	case S_CALL_PRE:
	case S_CALL_OBJ:
	case S_MI_NAME:
	case S_MI_CALLID:
	case S_MI_ARGS:
		if (p->begun && p->args_done) {
			note(p, "tool call %u: the answer ended before its closing", p->n_calls);
			call_end(p);
		} else {
			call_fail(p, "the answer ended inside it");
		}
		break;
	default:
		break;
	}
	ws_drop(p);
	p->st = S_TEXT;
	if (!finish_reason)
		finish_reason = p->delivered ? "tool_calls" : "stop";
	emit(p, GD_EV_FINISH, finish_reason, strlen(finish_reason));
	return status(p, err, errlen);
}
