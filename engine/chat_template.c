/* Chat templates (see chat_template.h). Each family's layout follows its
 * reference Jinja template line by line; the comments name the template and
 * the branch. JSON that the templates pass through `tojson` (tools, call
 * arguments) is re-serialized the way transformers' tojson does
 * (json.dumps(ensure_ascii=False): ", " and ": " separators, or indent=4),
 * so the prompt is byte-identical to what the model was trained on. */
#include "engine/chat_template.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <yajl/yajl_parse.h>

#include "engine/tokenizer.h"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- families ------------------------------------------------------------ */

static const char *const family_names[ENG_CHAT_FAMILY_COUNT] = {
	"auto", "chatml", "llama3", "mistral", "plain",
};

const char *eng_chat_family_name(enum eng_chat_family f)
{
	return (unsigned)f < ENG_CHAT_FAMILY_COUNT ? family_names[f] : "?";
}

int eng_chat_family_from_name(const char *name)
{
	for (int i = 0; name && i < ENG_CHAT_FAMILY_COUNT; i++)
		if (strcmp(name, family_names[i]) == 0)
			return i;
	return -1;
}

static bool has(const char *s, size_t n, const char *needle)
{
	return s && memmem(s, n, needle, strlen(needle)) != NULL;
}

/* The first capture of <pattern> in <s, n>, or false. */
static bool capture(const char *pattern, const char *s, size_t n, size_t *off, size_t *len)
{
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
	pcre2_match_data *md = re ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
	bool ok = false;

	if (md && pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, md, NULL) >= 2) {
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);

		*off = ov[2];
		*len = ov[3] - ov[2];
		ok = true;
	}
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	return ok;
}

/* Qwen2.5-style templates hard-code a default system prompt as a string
 * literal: '<|im_start|>system\nYou are Qwen, …<|im_end|>\n'. Copies it with
 * the Jinja string escapes undone; "" when there is none or it is too long. */
static void default_system(struct eng_chat_template *t, const char *s, size_t n)
{
	size_t off, len, o = 0;

	t->system_len = 0;
	t->system[0] = '\0';
	if (!capture("<\\|im_start\\|>system\\\\n((?:[^'\"\\\\{}]|\\\\[^{}])+?)<\\|im_end\\|>",
	             s, n, &off, &len))
		return;
	for (size_t i = off; i < off + len; i++) {
		char c = s[i];

		if (c == '\\' && i + 1 < off + len) {
			c = s[++i];
			c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
		}
		if (o + 1 >= sizeof(t->system))
			return; /* too long to be a default prompt: leave it out */
		t->system[o++] = c;
	}
	t->system[o] = '\0';
	t->system_len = o;
}

enum eng_status eng_chat_template_init(struct eng_chat_template *t, const char *tmpl, size_t len,
                                       enum eng_chat_family want, char *err, size_t errlen)
{
	enum eng_chat_family f;

	if (!t || (unsigned)want >= ENG_CHAT_FAMILY_COUNT) {
		set_err(err, errlen, "unknown chat template family %d (auto, chatml, llama3, mistral, plain)",
		        (int)want);
		return ENG_ERR_ARG;
	}
	memset(t, 0, sizeof(*t));
	if (!tmpl)
		len = 0;
	if (len > ENG_CHAT_TEMPLATE_MAX)
		len = ENG_CHAT_TEMPLATE_MAX; /* the markers are near the start of any real template */
	if (len == 0)
		f = ENG_CHAT_PLAIN;
	else if (has(tmpl, len, "<|im_start|>"))
		f = ENG_CHAT_CHATML;
	else if (has(tmpl, len, "<|start_header_id|>"))
		f = ENG_CHAT_LLAMA3;
	else if (has(tmpl, len, "[INST]"))
		f = ENG_CHAT_MISTRAL;
	else {
		f = ENG_CHAT_CHATML;
		t->fallback = true;
	}
	t->family = want == ENG_CHAT_AUTO ? f : want;
	if (want != ENG_CHAT_AUTO)
		t->fallback = false;
	switch (t->family) {
	case ENG_CHAT_CHATML:
		if (has(tmpl, len, "<think>"))
			t->flags |= ENG_CHAT_QWEN3;
		else
			default_system(t, tmpl, len);
		if (capture("(<\\|im_start\\|>assistant\\\\n<think>\\\\n')", tmpl, len, &(size_t){ 0 },
		            &(size_t){ 0 }))
			t->flags |= ENG_CHAT_THINK_PROMPT;
		break;
	case ENG_CHAT_LLAMA3:
		/* 3.0 has no system preamble; 3.1, 3.2 and 3.3 do. Named without
		 * a template: assume the current layout. */
		if (len == 0 || has(tmpl, len, "Cutting Knowledge Date"))
			t->flags |= ENG_CHAT_LLAMA31;
		break;
	case ENG_CHAT_MISTRAL:
		if (has(tmpl, len, "[AVAILABLE_TOOLS][") || has(tmpl, len, "\"[INST]\" +") ||
		    has(tmpl, len, "'[INST]' +"))
			t->flags |= ENG_CHAT_TEKKEN;
		break;
	default:
		break;
	}
	return ENG_OK;
}

enum eng_status eng_chat_template_from_gguf(struct eng_chat_template *t, const struct eng_gguf *g,
                                            enum eng_chat_family want, char *err, size_t errlen)
{
	struct eng_str s = { NULL, 0 };

	if (!g || eng_gguf_get_str(g, "tokenizer.chat_template", &s) != ENG_OK)
		s.ptr = NULL, s.len = 0;
	return eng_chat_template_init(t, s.ptr, s.len, want, err, errlen);
}

/* ---- the prompt buffer ------------------------------------------------------- */

struct eng_chat_prompt *eng_chat_prompt_new(size_t cap)
{
	struct eng_chat_prompt *p;

	if (cap == 0 || cap > ENG_CHAT_MAX_PROMPT)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->cap = cap;
	p->text_cap = cap < 4096 ? cap + 1 : 4096;
	p->spans_cap = 64;
	p->text = malloc(p->text_cap);
	p->spans = malloc(p->spans_cap * sizeof(*p->spans));
	if (!p->text || !p->spans) {
		eng_chat_prompt_free(p);
		return NULL;
	}
	p->text[0] = '\0';
	return p;
}

void eng_chat_prompt_free(struct eng_chat_prompt *p)
{
	if (!p)
		return;
	free(p->text);
	free(p->spans);
	free(p);
}

static void reset(struct eng_chat_prompt *p)
{
	p->len = 0;
	p->n_spans = 0;
	p->think_open = false;
	p->overflow = false;
	p->text[0] = '\0';
}

/* Appends <s, n>; past the cap the prompt is marked overflowed and stays so. */
static void put(struct eng_chat_prompt *p, const char *s, size_t n)
{
	if (p->overflow || n == 0)
		return;
	if (n > p->cap - p->len) {
		p->overflow = true;
		return;
	}
	if (p->len + n + 1 > p->text_cap) {
		size_t nc = p->text_cap;
		char *q;

		while (nc < p->len + n + 1)
			nc = nc > p->cap / 2 ? p->cap + 1 : 2 * nc;
		q = realloc(p->text, nc);
		if (!q) {
			p->overflow = true;
			return;
		}
		p->text = q;
		p->text_cap = nc;
	}
	memcpy(p->text + p->len, s, n);
	p->len += n;
	p->text[p->len] = '\0';
}

static void puts0(struct eng_chat_prompt *p, const char *s)
{
	put(p, s, strlen(s));
}

static void put_str(struct eng_chat_prompt *p, struct eng_str s)
{
	if (s.ptr)
		put(p, s.ptr, s.len);
}

static void mark(struct eng_chat_prompt *p, size_t off, size_t len)
{
	if (p->overflow)
		return;
	if (p->n_spans == p->spans_cap) {
		struct eng_chat_span *q;

		/* Every span is at least 3 bytes of a capped text: bounded. */
		q = realloc(p->spans, 2 * p->spans_cap * sizeof(*q));
		if (!q) {
			p->overflow = true;
			return;
		}
		p->spans = q;
		p->spans_cap *= 2;
	}
	p->spans[p->n_spans++] = (struct eng_chat_span){ (uint32_t)off, (uint32_t)len };
}

/* The special-token texts each family's templates write. */
static const char *const specials_chatml[] = {
	"<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<tool_response>",
	"</tool_response>", "<think>", "</think>", NULL,
};
static const char *const specials_llama3[] = {
	"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>", NULL,
};
static const char *const specials_mistral[] = {
	"[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_CALLS]",
	"[TOOL_RESULTS]", "[/TOOL_RESULTS]", "</s>", NULL,
};

/* Template text (never message text): appended with every special-token
 * text in it marked, as llama.cpp's special-token parse would find it. */
static void tmpl(struct eng_chat_prompt *p, const char *const *specials, const char *s)
{
	size_t n = strlen(s), i = 0, start = p->len;

	put(p, s, n);
	while (i < n && !p->overflow) {
		size_t best = 0;

		if (s[i] == '<' || s[i] == '[')
			for (const char *const *sp = specials; *sp; sp++) {
				size_t l = strlen(*sp);

				if (l > best && l <= n - i && memcmp(s + i, *sp, l) == 0)
					best = l;
			}
		if (best) {
			mark(p, start + i, best);
			i += best;
		} else {
			i++;
		}
	}
}

/* ---- JSON the way transformers' tojson writes it ---------------------------------- */

struct jw {
	struct eng_chat_prompt *p;
	int indent;      /* 0: one line with ", " and ": "; else spaces per level */
	int depth;
	bool any[ENG_CHAT_JSON_DEPTH + 2]; /* the open container has an element */
	bool after_key;
	bool too_deep;
};

static void jw_newline(struct jw *w, int depth)
{
	static const char spaces[] = "                                ";

	put(w->p, "\n", 1);
	for (long n = (long)depth * w->indent; n > 0; n -= 32)
		put(w->p, spaces, n < 32 ? (size_t)n : 32);
}

/* Before a value in an array or a key in an object. */
static void jw_elem(struct jw *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	if (w->depth == 0)
		return;
	if (w->any[w->depth])
		put(w->p, w->indent ? "," : ", ", w->indent ? 1 : 2);
	if (w->indent)
		jw_newline(w, w->depth);
	w->any[w->depth] = true;
}

static void jw_open(struct jw *w, char c)
{
	jw_elem(w);
	if (w->depth >= ENG_CHAT_JSON_DEPTH) {
		w->too_deep = true;
		return;
	}
	put(w->p, &c, 1);
	w->any[++w->depth] = false;
}

static void jw_close(struct jw *w, char c)
{
	if (w->depth == 0)
		return;
	if (w->indent && w->any[w->depth])
		jw_newline(w, w->depth - 1);
	w->depth--;
	put(w->p, &c, 1);
}

/* A JSON string as json.dumps(ensure_ascii=False) writes it. */
static void json_quote(struct eng_chat_prompt *p, const char *s, size_t n)
{
	size_t run = 0;

	put(p, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		const char *e = NULL;

		switch (c) {
		case '"': e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		case '\n': e = "\\n"; break;
		case '\r': e = "\\r"; break;
		case '\t': e = "\\t"; break;
		case '\b': e = "\\b"; break;
		case '\f': e = "\\f"; break;
		default:
			if (c < 0x20) {
				snprintf(esc, sizeof(esc), "\\u%04x", c);
				e = esc;
			}
		}
		if (!e)
			continue;
		put(p, s + run, i - run);
		puts0(p, e);
		run = i + 1;
	}
	put(p, s + run, n - run);
	put(p, "\"", 1);
}

static void jw_key(struct jw *w, const char *s, size_t n)
{
	jw_elem(w);
	json_quote(w->p, s, n);
	put(w->p, ": ", 2);
	w->after_key = true;
}

static void jw_str(struct jw *w, const char *s, size_t n)
{
	jw_elem(w);
	json_quote(w->p, s, n);
}

/* A number as Python writes it after json.loads: integers as written
 * ("-0" is 0), floats as repr(float): the shortest digits that read back,
 * fixed notation for exponents -4..15 with at least one decimal, else
 * d.ddde±XX. */
static void jw_number(struct jw *w, const char *s, size_t n)
{
	char buf[64], digits[32];
	double x;
	int p, exp10, nd;
	bool neg;

	jw_elem(w);
	if (!memchr(s, '.', n) && !memchr(s, 'e', n) && !memchr(s, 'E', n)) {
		if (n == 2 && s[0] == '-' && s[1] == '0')
			put(w->p, "0", 1);
		else
			put(w->p, s, n);
		return;
	}
	if (n >= sizeof(buf)) {
		put(w->p, s, n); /* absurdly long: keep as written */
		return;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	x = strtod(buf, NULL);
	if (isinf(x)) {
		puts0(w->p, x < 0 ? "-Infinity" : "Infinity");
		return;
	}
	neg = signbit(x);
	x = fabs(x);
	for (p = 1; p <= 17; p++) {
		snprintf(buf, sizeof(buf), "%.*e", p - 1, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	/* buf is "d.ddde±XX": split into digits and exponent. */
	nd = 0;
	for (char *c = buf; *c && *c != 'e'; c++)
		if (isdigit((unsigned char)*c))
			digits[nd++] = *c;
	exp10 = atoi(strchr(buf, 'e') + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	if (neg)
		put(w->p, "-", 1);
	if (x == 0) {
		put(w->p, "0.0", 3);
	} else if (exp10 < -4 || exp10 >= 16) {
		put(w->p, digits, 1);
		if (nd > 1) {
			put(w->p, ".", 1);
			put(w->p, digits + 1, (size_t)nd - 1);
		}
		snprintf(buf, sizeof(buf), "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
		puts0(w->p, buf);
	} else if (exp10 < 0) {
		put(w->p, "0.", 2);
		for (int i = -1; i > exp10; i--)
			put(w->p, "0", 1);
		put(w->p, digits, (size_t)nd);
	} else {
		int ip = exp10 + 1; /* digits before the point */

		for (int i = 0; i < ip; i++)
			put(w->p, i < nd ? &digits[i] : "0", 1);
		put(w->p, ".", 1);
		if (nd > ip)
			put(w->p, digits + ip, (size_t)(nd - ip));
		else
			put(w->p, "0", 1);
	}
}

static int cb_null(void *ctx)
{
	struct jw *w = ctx;

	jw_elem(w);
	put(w->p, "null", 4);
	return 1;
}

static int cb_bool(void *ctx, int b)
{
	struct jw *w = ctx;

	jw_elem(w);
	puts0(w->p, b ? "true" : "false");
	return 1;
}

static int cb_number(void *ctx, const char *s, size_t n)
{
	jw_number(ctx, s, n);
	return 1;
}

static int cb_string(void *ctx, const unsigned char *s, size_t n)
{
	jw_str(ctx, (const char *)s, n);
	return 1;
}

static int cb_key(void *ctx, const unsigned char *s, size_t n)
{
	jw_key(ctx, (const char *)s, n);
	return 1;
}

static int cb_start_map(void *ctx)
{
	struct jw *w = ctx;

	jw_open(w, '{');
	return !w->too_deep;
}

static int cb_end_map(void *ctx)
{
	jw_close(ctx, '}');
	return 1;
}

static int cb_start_array(void *ctx)
{
	struct jw *w = ctx;

	jw_open(w, '[');
	return !w->too_deep;
}

static int cb_end_array(void *ctx)
{
	jw_close(ctx, ']');
	return 1;
}

static const yajl_callbacks reformat_cbs = {
	.yajl_null = cb_null,
	.yajl_boolean = cb_bool,
	.yajl_number = cb_number,
	.yajl_string = cb_string,
	.yajl_start_map = cb_start_map,
	.yajl_map_key = cb_key,
	.yajl_end_map = cb_end_map,
	.yajl_start_array = cb_start_array,
	.yajl_end_array = cb_end_array,
};

/* Writes the JSON text <s, n> as tojson would after json.loads. False (and
 * nothing written) when it is not one JSON value. */
static bool jw_json(struct jw *w, const char *s, size_t n)
{
	struct eng_chat_prompt *p = w->p;
	size_t len0 = p->len;
	uint32_t spans0 = p->n_spans;
	struct jw save = *w;
	yajl_handle h = yajl_alloc(&reformat_cbs, NULL, w);
	bool ok;

	if (!h)
		return false;
	ok = yajl_parse(h, (const unsigned char *)s, n) == yajl_status_ok &&
	     yajl_complete_parse(h) == yajl_status_ok && w->depth == save.depth && !w->too_deep;
	yajl_free(h);
	if (!ok && !p->overflow) {
		p->len = len0;
		p->n_spans = spans0;
		p->text[p->len] = '\0';
		*w = save;
	}
	return ok;
}

/* `x | tojson` of a call's arguments: the parsed JSON when they are JSON
 * (transformers and llama.cpp hand templates an object), else the string. */
static void args_json(struct eng_chat_prompt *p, struct eng_str a)
{
	struct jw w = { .p = p };

	if (!a.ptr || !jw_json(&w, a.ptr, a.len))
		json_quote(p, a.ptr ? a.ptr : "", a.ptr ? a.len : 0);
}

/* One entry of `tools | tojson` (<indent> 0 or 4): OpenAI's tool object. */
static void tool_json(struct eng_chat_prompt *p, const struct eng_chat_tool *t, int indent)
{
	struct jw w = { .p = p, .indent = indent };

	jw_open(&w, '{');
	jw_key(&w, "type", 4);
	jw_str(&w, "function", 8);
	jw_key(&w, "function", 8);
	jw_open(&w, '{');
	jw_key(&w, "name", 4);
	jw_str(&w, t->name.ptr, t->name.len);
	if (t->description.ptr) {
		jw_key(&w, "description", 11);
		jw_str(&w, t->description.ptr, t->description.len);
	}
	if (t->parameters.ptr) {
		jw_key(&w, "parameters", 10);
		if (!jw_json(&w, t->parameters.ptr, t->parameters.len))
			jw_str(&w, t->parameters.ptr, t->parameters.len);
	}
	jw_close(&w, '}');
	jw_close(&w, '}');
}

/* ---- string helpers (Jinja's trim, Python's strip(chars)) ------------------------ */

static bool ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static struct eng_str str_of(struct eng_str s)
{
	return s.ptr ? s : (struct eng_str){ "", 0 };
}

static struct eng_str trim(struct eng_str s)
{
	s = str_of(s);
	while (s.len && ws(s.ptr[0]))
		s.ptr++, s.len--;
	while (s.len && ws(s.ptr[s.len - 1]))
		s.len--;
	return s;
}

static struct eng_str lstrip_nl(struct eng_str s)
{
	while (s.len && s.ptr[0] == '\n')
		s.ptr++, s.len--;
	return s;
}

static struct eng_str rstrip_nl(struct eng_str s)
{
	while (s.len && s.ptr[s.len - 1] == '\n')
		s.len--;
	return s;
}

static const char *find(struct eng_str s, const char *needle)
{
	return s.len ? memmem(s.ptr, s.len, needle, strlen(needle)) : NULL;
}

static const char *find_last(struct eng_str s, const char *needle)
{
	size_t nl = strlen(needle), off = 0;
	const char *last = NULL;

	while (off + nl <= s.len) {
		const char *at = memmem(s.ptr + off, s.len - off, needle, nl);

		if (!at)
			break;
		last = at;
		off = (size_t)(at - s.ptr) + 1;
	}
	return last;
}

static bool is_system(const struct eng_chat_msg *m)
{
	return m->role == ENG_CHAT_SYSTEM || m->role == ENG_CHAT_DEVELOPER;
}

static const char *role_name(enum eng_chat_role r)
{
	switch (r) {
	case ENG_CHAT_SYSTEM:
	case ENG_CHAT_DEVELOPER: return "system";
	case ENG_CHAT_USER: return "user";
	case ENG_CHAT_ASSISTANT: return "assistant";
	case ENG_CHAT_TOOL: return "tool";
	default: return "user";
	}
}

/* ---- ChatML: Qwen2.5-Instruct and Qwen3 tokenizer_config.json ------------------- */

#define CM(s) tmpl(p, specials_chatml, (s))

static const char tools_intro[] =
	"# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
	"You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
static const char tools_outro[] =
	"\n</tools>\n\nFor each function call, return a json object with function name and "
	"arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
	"{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n";

static void chatml_call(struct eng_chat_prompt *p, const struct eng_chat_call *c, bool raw_args)
{
	CM("<tool_call>\n{\"name\": \"");
	put_str(p, c->name);
	put(p, "\", \"arguments\": ", 16);
	if (raw_args)
		put_str(p, c->arguments); /* Qwen3: `arguments is string` → as is */
	else
		args_json(p, c->arguments);
	CM("}\n</tool_call>");
}

/* Qwen3: the index of the last real user query (a user message that is not
 * just wrapped tool output); assistant turns after it keep their reasoning. */
static uint32_t last_query(const struct eng_chat_input *in)
{
	for (uint32_t i = in->n_msgs; i-- > 0;) {
		const struct eng_chat_msg *m = &in->msgs[i];
		struct eng_str c = str_of(m->content);
		static const char open[] = "<tool_response>", close[] = "</tool_response>";

		if (m->role != ENG_CHAT_USER)
			continue;
		if (c.len >= sizeof(open) - 1 && memcmp(c.ptr, open, sizeof(open) - 1) == 0 &&
		    c.len >= sizeof(close) - 1 &&
		    memcmp(c.ptr + c.len - (sizeof(close) - 1), close, sizeof(close) - 1) == 0)
			continue;
		return i;
	}
	return in->n_msgs ? in->n_msgs - 1 : 0;
}

static void render_chatml(const struct eng_chat_template *t, const struct eng_chat_input *in,
                          struct eng_chat_prompt *p)
{
	bool qwen3 = t->flags & ENG_CHAT_QWEN3;
	bool first_sys = in->n_msgs && is_system(&in->msgs[0]);
	struct eng_str def = { t->system, t->system_len };
	uint32_t lq = qwen3 ? last_query(in) : 0;

	if (in->n_tools) {
		CM("<|im_start|>system\n");
		if (t->system_len) {
			/* Qwen2.5: the system message or the default, then "\n\n# Tools". */
			put_str(p, first_sys ? in->msgs[0].content : def);
			put(p, "\n\n", 2);
		} else if (first_sys) {
			/* Qwen3: the system message and "\n\n" only when there is one. */
			put_str(p, in->msgs[0].content);
			put(p, "\n\n", 2);
		}
		CM(tools_intro);
		for (uint32_t i = 0; i < in->n_tools; i++) {
			put(p, "\n", 1);
			tool_json(p, &in->tools[i], 0);
		}
		CM(tools_outro);
	} else if (first_sys || t->system_len) {
		CM("<|im_start|>system\n");
		put_str(p, first_sys ? in->msgs[0].content : def);
		CM("<|im_end|>\n");
	}
	for (uint32_t i = 0; i < in->n_msgs; i++) {
		const struct eng_chat_msg *m = &in->msgs[i];
		struct eng_str content = str_of(m->content);

		if (m->role == ENG_CHAT_USER || (is_system(m) && i > 0) ||
		    (!qwen3 && m->role == ENG_CHAT_ASSISTANT && !m->n_calls)) {
			CM("<|im_start|>");
			puts0(p, role_name(m->role));
			put(p, "\n", 1);
			put_str(p, content);
			CM("<|im_end|>\n");
		} else if (m->role == ENG_CHAT_ASSISTANT && !qwen3) {
			CM("<|im_start|>assistant");
			if (content.len) {
				put(p, "\n", 1);
				put_str(p, content);
			}
			for (uint32_t k = 0; k < m->n_calls; k++) {
				put(p, "\n", 1);
				chatml_call(p, &m->calls[k], false);
			}
			CM("<|im_end|>\n");
		} else if (m->role == ENG_CHAT_ASSISTANT) {
			struct eng_str reasoning = { "", 0 };
			const char *end = find(content, "</think>");

			if (m->reasoning.ptr) {
				reasoning = m->reasoning;
			} else if (end) {
				/* content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') */
				struct eng_str before = { content.ptr, (size_t)(end - content.ptr) };
				const char *open;

				before = rstrip_nl(before);
				open = find_last(before, "<think>");
				if (open) {
					size_t skip = (size_t)(open - before.ptr) + 7;
					before.ptr += skip;
					before.len -= skip;
				}
				reasoning = lstrip_nl(before);
				/* content.split('</think>')[-1].lstrip('\n') */
				end = find_last(content, "</think>") + 8;
				content.len -= (size_t)(end - content.ptr);
				content.ptr = end;
				content = lstrip_nl(content);
			}
			if (i > lq && (i + 1 == in->n_msgs || reasoning.len)) {
				CM("<|im_start|>assistant\n<think>\n");
				put_str(p, lstrip_nl(rstrip_nl(reasoning)));
				CM("\n</think>\n\n");
				put_str(p, lstrip_nl(content));
			} else {
				CM("<|im_start|>assistant\n");
				put_str(p, content);
			}
			for (uint32_t k = 0; k < m->n_calls; k++) {
				if (k > 0 || content.len)
					put(p, "\n", 1);
				chatml_call(p, &m->calls[k], true);
			}
			CM("<|im_end|>\n");
		} else if (m->role == ENG_CHAT_TOOL) {
			if (i == 0 || in->msgs[i - 1].role != ENG_CHAT_TOOL)
				CM("<|im_start|>user");
			CM("\n<tool_response>\n");
			put_str(p, content);
			CM("\n</tool_response>");
			if (i + 1 == in->n_msgs || in->msgs[i + 1].role != ENG_CHAT_TOOL)
				CM("<|im_end|>\n");
		}
	}
	if (in->add_generation_prompt) {
		CM("<|im_start|>assistant\n");
		if (t->flags & ENG_CHAT_THINK_PROMPT) {
			CM("<think>\n");
			p->think_open = true;
		} else if (qwen3 && in->no_thinking) {
			CM("<think>\n\n</think>\n\n");
		}
	}
}

/* ---- Llama 3.x: Llama-3.1-8B-Instruct tokenizer_config.json ---------------------- */

#define L3(s) tmpl(p, specials_llama3, (s))

static void llama3_header(struct eng_chat_prompt *p, const char *role)
{
	L3("<|start_header_id|>");
	puts0(p, role);
	L3("<|end_header_id|>\n\n");
}

static enum eng_status render_llama3(const struct eng_chat_template *t,
                                     const struct eng_chat_input *in, struct eng_chat_prompt *p,
                                     char *err, size_t errlen)
{
	bool l31 = (t->flags & ENG_CHAT_LLAMA31) || in->n_tools;
	uint32_t i = 0;

	if (l31) {
		struct eng_str sys = { "", 0 };

		if (in->n_msgs && is_system(&in->msgs[0]))
			sys = trim(in->msgs[i++].content);
		llama3_header(p, "system");
		if (in->n_tools)
			puts0(p, "Environment: ipython\n");
		puts0(p, "Cutting Knowledge Date: December 2023\nToday Date: ");
		puts0(p, in->date ? in->date : "26 Jul 2024");
		put(p, "\n\n", 2);
		put_str(p, sys);
		L3("<|eot_id|>");
		if (in->n_tools) {
			/* tools_in_user_message (the default): the tools go in front
			 * of the first message after the system prompt. */
			if (i >= in->n_msgs) {
				set_err(err, errlen, "the Llama 3 template puts the tools in the first user "
				        "message, and the request has none");
				return ENG_ERR_ARG;
			}
			llama3_header(p, "user");
			puts0(p, "Given the following functions, please respond with a JSON for a "
			      "function call with its proper arguments that best answers the given "
			      "prompt.\n\nRespond in the format {\"name\": function name, \"parameters\": "
			      "dictionary of argument name and its value}.Do not use variables.\n\n");
			for (uint32_t k = 0; k < in->n_tools; k++) {
				tool_json(p, &in->tools[k], 4);
				put(p, "\n\n", 2);
			}
			put_str(p, trim(in->msgs[i++].content));
			L3("<|eot_id|>");
		}
	}
	for (; i < in->n_msgs; i++) {
		const struct eng_chat_msg *m = &in->msgs[i];

		if (m->role == ENG_CHAT_TOOL) {
			/* `content is iterable` holds for strings too: tojson quotes it. */
			llama3_header(p, "ipython");
			json_quote(p, str_of(m->content).ptr, str_of(m->content).len);
		} else if (m->n_calls) {
			/* The template takes one call; parallel calls are written the way
			 * Llama 3.1 writes them itself, separated by "; ". */
			llama3_header(p, "assistant");
			for (uint32_t k = 0; k < m->n_calls; k++) {
				if (k)
					put(p, "; ", 2);
				put(p, "{\"name\": \"", 10);
				put_str(p, m->calls[k].name);
				put(p, "\", \"parameters\": ", 17);
				args_json(p, m->calls[k].arguments);
				put(p, "}", 1);
			}
		} else {
			llama3_header(p, role_name(m->role));
			put_str(p, trim(m->content));
		}
		L3("<|eot_id|>");
	}
	if (in->add_generation_prompt)
		llama3_header(p, "assistant");
	return ENG_OK;
}

/* ---- Mistral: Mistral-7B-Instruct-v0.3 ("v3") and Mistral-Nemo ("v3-tekken") ---- */

#define MI(s) tmpl(p, specials_mistral, (s))

/* Mistral templates require call ids of 9 alphanumerics: other ids (OpenAI's
 * "call_…") are mapped to 9 base-62 characters of their FNV-1a hash, the
 * same for a call and its result. */
static void mistral_id(struct eng_chat_prompt *p, struct eng_str id)
{
	static const char b62[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	char out[9];
	bool ok = id.ptr && id.len == 9;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; ok && i < 9; i++)
		ok = isalnum((unsigned char)id.ptr[i]);
	if (ok) {
		put(p, id.ptr, 9);
		return;
	}
	id = str_of(id);
	for (size_t i = 0; i < id.len; i++)
		h = (h ^ (unsigned char)id.ptr[i]) * 0x100000001b3ull;
	for (int i = 0; i < 9; i++, h /= 62)
		out[i] = b62[h % 62];
	put(p, out, 9);
}

static void render_mistral(const struct eng_chat_template *t, const struct eng_chat_input *in,
                           struct eng_chat_prompt *p)
{
	bool tek = t->flags & ENG_CHAT_TEKKEN;
	uint32_t i0 = 0;
	int64_t last_user = -1;
	struct eng_str sys = { NULL, 0 };

	if (in->n_msgs && is_system(&in->msgs[0])) {
		sys = str_of(in->msgs[0].content);
		i0 = 1;
	}
	for (uint32_t i = i0; i < in->n_msgs; i++)
		if (in->msgs[i].role == ENG_CHAT_USER)
			last_user = i;
	for (uint32_t i = i0; i < in->n_msgs; i++) {
		const struct eng_chat_msg *m = &in->msgs[i];

		if (m->role == ENG_CHAT_USER || is_system(m)) {
			if (in->n_tools && (int64_t)i == last_user) {
				MI(tek ? "[AVAILABLE_TOOLS][" : "[AVAILABLE_TOOLS] [");
				for (uint32_t k = 0; k < in->n_tools; k++) {
					if (k)
						put(p, ", ", 2);
					tool_json(p, &in->tools[k], 0);
				}
				MI("][/AVAILABLE_TOOLS]");
			}
			MI(tek ? "[INST]" : "[INST] ");
			/* The system prompt goes in front of the last user message (the
			 * v0.3 template checks loop.last, dropping it once a tool result
			 * follows; mistral_common keeps it on the last user message). */
			if (sys.ptr && (int64_t)i == last_user) {
				put_str(p, sys);
				put(p, "\n\n", 2);
			}
			put_str(p, m->content);
			MI("[/INST]");
		} else if (m->role == ENG_CHAT_ASSISTANT && m->n_calls) {
			MI(tek ? "[TOOL_CALLS][" : "[TOOL_CALLS] [");
			for (uint32_t k = 0; k < m->n_calls; k++) {
				const struct eng_chat_call *c = &m->calls[k];

				if (k)
					put(p, ", ", 2);
				/* tool_call.function|tojson without its "}", then the id */
				put(p, "{\"name\": ", 9);
				json_quote(p, str_of(c->name).ptr, str_of(c->name).len);
				put(p, ", \"arguments\": ", 15);
				args_json(p, c->arguments);
				put(p, ", \"id\": \"", 9);
				mistral_id(p, c->id);
				put(p, "\"}", 2);
			}
			put(p, "]", 1);
			MI("</s>");
		} else if (m->role == ENG_CHAT_ASSISTANT) {
			if (tek) {
				put_str(p, m->content);
			} else {
				put(p, " ", 1);
				put_str(p, trim(m->content));
			}
			MI("</s>");
		} else if (m->role == ENG_CHAT_TOOL) {
			MI(tek ? "[TOOL_RESULTS]" : "[TOOL_RESULTS] ");
			put(p, "{\"content\": ", 12);
			put_str(p, m->content);
			put(p, ", \"call_id\": \"", 14);
			mistral_id(p, m->tool_call_id);
			put(p, "\"}", 2);
			MI("[/TOOL_RESULTS]");
		}
	}
}

/* ---- plain ---------------------------------------------------------------------------- */

/* Base models: the messages' text, one message per line; tools and calls are
 * left out (a base model cannot call). A single message is the raw prompt. */
static void render_plain(const struct eng_chat_input *in, struct eng_chat_prompt *p)
{
	bool any = false;

	for (uint32_t i = 0; i < in->n_msgs; i++) {
		if (!in->msgs[i].content.ptr)
			continue;
		if (any)
			put(p, "\n", 1);
		put_str(p, in->msgs[i].content);
		any = true;
	}
}

/* ---- entry points ------------------------------------------------------------------------ */

static enum eng_status check_input(const struct eng_chat_input *in, char *err, size_t errlen)
{
	if (in->n_msgs > ENG_CHAT_MAX_MESSAGES || in->n_tools > ENG_CHAT_MAX_TOOLS) {
		set_err(err, errlen, "%u messages and %u tools: at most %u and %u are rendered",
		        in->n_msgs, in->n_tools, ENG_CHAT_MAX_MESSAGES, ENG_CHAT_MAX_TOOLS);
		return ENG_ERR_LIMIT;
	}
	if ((in->n_msgs && !in->msgs) || (in->n_tools && !in->tools)) {
		set_err(err, errlen, "messages or tools missing");
		return ENG_ERR_ARG;
	}
	for (uint32_t i = 0; i < in->n_msgs; i++) {
		const struct eng_chat_msg *m = &in->msgs[i];

		if ((unsigned)m->role >= ENG_CHAT_ROLE_COUNT) {
			set_err(err, errlen, "messages[%u]: unknown role %d", i, (int)m->role);
			return ENG_ERR_ARG;
		}
		if (m->n_calls > ENG_CHAT_MAX_CALLS || (m->n_calls && !m->calls)) {
			set_err(err, errlen, "messages[%u]: %u tool calls (at most %u)", i, m->n_calls,
			        ENG_CHAT_MAX_CALLS);
			return ENG_ERR_LIMIT;
		}
		for (uint32_t k = 0; k < m->n_calls; k++)
			if (!m->calls[k].name.ptr || !m->calls[k].name.len) {
				set_err(err, errlen, "messages[%u].tool_calls[%u] has no function name", i, k);
				return ENG_ERR_ARG;
			}
	}
	for (uint32_t i = 0; i < in->n_tools; i++)
		if (!in->tools[i].name.ptr || !in->tools[i].name.len) {
			set_err(err, errlen, "tools[%u] has no function name", i);
			return ENG_ERR_ARG;
		}
	if (in->date && strlen(in->date) >= ENG_CHAT_DATE_MAX) {
		set_err(err, errlen, "date string longer than %d bytes", ENG_CHAT_DATE_MAX - 1);
		return ENG_ERR_LIMIT;
	}
	return ENG_OK;
}

enum eng_status eng_chat_render(const struct eng_chat_template *t, const struct eng_chat_input *in,
                                struct eng_chat_prompt *out, char *err, size_t errlen)
{
	enum eng_status st;

	if (!t || !in || !out) {
		set_err(err, errlen, "missing template, input or output");
		return ENG_ERR_ARG;
	}
	reset(out);
	st = check_input(in, err, errlen);
	if (st != ENG_OK)
		return st;
	switch (t->family) {
	case ENG_CHAT_CHATML:
		render_chatml(t, in, out);
		break;
	case ENG_CHAT_LLAMA3:
		st = render_llama3(t, in, out, err, errlen);
		break;
	case ENG_CHAT_MISTRAL:
		render_mistral(t, in, out);
		break;
	case ENG_CHAT_PLAIN:
		render_plain(in, out);
		break;
	default:
		set_err(err, errlen, "chat template family %d cannot render", (int)t->family);
		return ENG_ERR_ARG;
	}
	if (st != ENG_OK)
		return st;
	if (out->overflow) {
		set_err(err, errlen, "the rendered prompt is longer than the cap of %zu bytes "
		        "(%u messages, %u tools)", out->cap, in->n_msgs, in->n_tools);
		reset(out);
		return ENG_ERR_LIMIT;
	}
	return ENG_OK;
}

/* Encodes <text, n> as plain text after <done> ids already in <ids>. */
static int encode_text(const struct eng_tok *tok, const char *text, size_t n, int32_t *ids,
                       size_t cap, size_t done)
{
	int r;

	if (n == 0)
		return 0;
	if (!ids)
		return eng_tok_encode(tok, text, n, false, false, NULL, 0);
	r = eng_tok_encode(tok, text, n, false, false, ids + done, cap - done);
	return r;
}

int eng_chat_encode(const struct eng_tok *tok, const struct eng_chat_prompt *p, int32_t *ids,
                    size_t cap)
{
	size_t n = 0, from = 0;
	int r;

	if (!tok || !p || (!ids && cap))
		return ENG_ERR_ARG;
	if (eng_tok_adds_bos(tok) && eng_tok_bos(tok) >= 0) {
		if (ids && n >= cap)
			return ENG_ERR_RANGE;
		if (ids)
			ids[n] = eng_tok_bos(tok);
		n++;
	}
	for (uint32_t i = 0; i <= p->n_spans; i++) {
		size_t end = i < p->n_spans ? p->spans[i].off : p->len;
		int32_t id = -1;

		if (i < p->n_spans) {
			id = eng_tok_find(tok, p->text + p->spans[i].off, p->spans[i].len);
			if (id < 0)
				continue; /* not a token of this vocabulary: stays text */
		}
		r = encode_text(tok, p->text + from, end - from, ids, cap, n);
		if (r < 0)
			return r;
		n += (size_t)r;
		if (id >= 0) {
			if (ids && n >= cap)
				return ENG_ERR_RANGE;
			if (ids)
				ids[n] = id;
			n++;
			from = p->spans[i].off + p->spans[i].len;
		}
		if (n > (size_t)INT32_MAX)
			return ENG_ERR_LIMIT;
	}
	return (int)n;
}
