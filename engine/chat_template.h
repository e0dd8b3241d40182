/* Chat templates: render a request's messages and tools into the prompt text
 * a model was trained on, for the families loopwarden knows (ChatML/Qwen,
 * Llama 3.x, Mistral) and a plain one for base models. The family is found
 * from the GGUF's tokenizer.chat_template by recognisable markers (PCRE2), or
 * named. This is not a Jinja engine: each family's layout is written out in C
 * after the reference templates (see docs/engine.md "Chat templates").
 *
 * The rendered prompt marks where the template put special tokens, so the
 * prompt can be encoded with those tokens parsed and the messages' own text
 * never parsed for special tokens (eng_chat_encode). */
#ifndef LW_ENGINE_CHAT_TEMPLATE_H
#define LW_ENGINE_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

struct eng_tok;

/* ---- caps (one place) ----------------------------------------------------- */

#define ENG_CHAT_MAX_MESSAGES 65536     /* messages of one request */
#define ENG_CHAT_MAX_TOOLS 1024         /* tools of one request */
#define ENG_CHAT_MAX_CALLS 4096         /* tool calls of one message */
#define ENG_CHAT_MAX_PROMPT (64u << 20) /* upper bound for a prompt's cap */
#define ENG_CHAT_JSON_DEPTH 64          /* nesting of a tool's parameters / arguments */
#define ENG_CHAT_SYSTEM_MAX 1024        /* bytes of a template's default system prompt */
#define ENG_CHAT_DATE_MAX 32            /* bytes of the Llama 3.1 "Today Date" */
#define ENG_CHAT_TEMPLATE_MAX (1u << 20) /* bytes of tokenizer.chat_template read */

/* ---- families ----------------------------------------------------------------- */

enum eng_chat_family {
	ENG_CHAT_AUTO = 0, /* only as a request to eng_chat_template_init: detect */
	ENG_CHAT_CHATML,   /* <|im_start|>role\n…<|im_end|> (Qwen2.5, Qwen3, Hermes, SmolLM) */
	ENG_CHAT_LLAMA3,   /* <|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|> */
	ENG_CHAT_MISTRAL,  /* [INST] … [/INST], [AVAILABLE_TOOLS], [TOOL_CALLS], [TOOL_RESULTS] */
	ENG_CHAT_PLAIN,    /* the messages' text as is: base models (stories260K) */
	ENG_CHAT_FAMILY_COUNT
};

/* "auto", "chatml", "llama3", "mistral", "plain". */
const char *eng_chat_family_name(enum eng_chat_family f);
/* The family named <name> (the config's `auto|chatml|llama3|mistral|plain`);
 * -1 when unknown. */
int eng_chat_family_from_name(const char *name);

/* Variants within a family, detected from the template text. */
enum {
	ENG_CHAT_QWEN3 = 1u << 0,         /* chatml: Qwen3 layout (reasoning in history,
	                                   * arguments strings copied raw, no default system) */
	ENG_CHAT_THINK_PROMPT = 1u << 1,  /* chatml: the generation prompt opens <think>
	                                   * (Qwen3 "Thinking" templates) */
	ENG_CHAT_LLAMA31 = 1u << 2,       /* llama3: 3.1+ system preamble (dates, ipython) */
	ENG_CHAT_TEKKEN = 1u << 3,        /* mistral: no spaces after [INST] etc. (Nemo) */
};

/* What a model's template is: plain data, no allocation, copy freely. */
struct eng_chat_template {
	enum eng_chat_family family;
	unsigned flags;                      /* ENG_CHAT_QWEN3, … */
	bool fallback;                       /* a template was given but not recognised:
	                                      * ChatML is used (as llama.cpp does) */
	char system[ENG_CHAT_SYSTEM_MAX];    /* chatml: the template's default system
	                                      * prompt ("" when none) */
	size_t system_len;
};

/* Detects the family of <tmpl>[0..<len>) (a tokenizer.chat_template; NULL or
 * empty: the model has none, so ENG_CHAT_PLAIN) unless <want> names one; the
 * variant flags and default system prompt are read from <tmpl> either way.
 * Recognised markers: `<|im_start|>` (ChatML), `<|start_header_id|>`
 * (Llama 3), `[INST]` (Mistral). ENG_ERR_ARG for a bad <want>. */
ENG_WUR enum eng_status eng_chat_template_init(struct eng_chat_template *t, const char *tmpl,
                                               size_t len, enum eng_chat_family want,
                                               char *err, size_t errlen);

/* The same from a model file: reads tokenizer.chat_template (absent: plain). */
ENG_WUR enum eng_status eng_chat_template_from_gguf(struct eng_chat_template *t,
                                                    const struct eng_gguf *g,
                                                    enum eng_chat_family want, char *err,
                                                    size_t errlen);

/* ---- input: plain data, every pointer borrowed for the call ------------------ */

enum eng_chat_role {
	ENG_CHAT_SYSTEM = 0,
	ENG_CHAT_DEVELOPER, /* rendered as system */
	ENG_CHAT_USER,
	ENG_CHAT_ASSISTANT,
	ENG_CHAT_TOOL,
	ENG_CHAT_ROLE_COUNT
};

/* One tool call of an assistant message. <arguments> is JSON text (the
 * OpenAI string's value, or an object's raw text); text that is not JSON is
 * rendered as a JSON string. Strings with <ptr> NULL are absent. */
struct eng_chat_call {
	struct eng_str id, name, arguments;
};

struct eng_chat_msg {
	enum eng_chat_role role;
	struct eng_str content;      /* absent = "" */
	struct eng_str reasoning;    /* reasoning_content (Qwen3 renders it) */
	struct eng_str tool_call_id; /* tool results */
	struct eng_str name;         /* tool results: the tool's name (unused by these templates) */
	const struct eng_chat_call *calls;
	uint32_t n_calls;
};

struct eng_chat_tool {
	struct eng_str name;
	struct eng_str description; /* absent: left out */
	struct eng_str parameters;  /* JSON object text; absent: left out */
};

struct eng_chat_input {
	const struct eng_chat_msg *msgs;
	uint32_t n_msgs;
	const struct eng_chat_tool *tools;
	uint32_t n_tools;
	bool add_generation_prompt; /* end with the assistant header (normally true) */
	bool no_thinking;           /* Qwen3: enable_thinking=false (empty think block) */
	const char *date;           /* Llama 3.1 "Today Date"; NULL: "26 Jul 2024" */
};

/* ---- output ------------------------------------------------------------------------ */

/* Where the template put a special token: <off, len> in the prompt text. */
struct eng_chat_span {
	uint32_t off, len;
};

/* The rendered prompt: text (NUL-terminated, not counted in <len>) and the
 * special-token spans in order. Grows up to the cap given at creation. */
struct eng_chat_prompt {
	char *text;
	size_t len;
	struct eng_chat_span *spans;
	uint32_t n_spans;
	bool think_open; /* the prompt ends inside <think>: the answer starts in reasoning */
	/* private */
	size_t cap, text_cap;
	uint32_t spans_cap;
	bool overflow;
};

/* <cap> bounds the text in bytes (≤ ENG_CHAT_MAX_PROMPT). NULL on bad <cap>
 * or out of memory. */
struct eng_chat_prompt *eng_chat_prompt_new(size_t cap);
void eng_chat_prompt_free(struct eng_chat_prompt *p); /* NULL is a no-op */

/* Renders <in> for <t> into <out> (reset first). BOS is left out: the
 * tokenizer adds it (eng_chat_encode). Errors, with <err> naming the input:
 * ENG_ERR_LIMIT (the prompt would pass <out>'s cap, or a count over the caps
 * above), ENG_ERR_ARG (bad input: a role out of range, a tool without a
 * name, tools for Llama 3 without a message to carry them). */
ENG_WUR enum eng_status eng_chat_render(const struct eng_chat_template *t,
                                        const struct eng_chat_input *in,
                                        struct eng_chat_prompt *out, char *err, size_t errlen);

/* Encodes a rendered prompt: BOS when the vocabulary adds one; each special
 * span as its token id (a span whose text is no token of <tok> stays text);
 * the text between as plain text, with special-token parsing off, so a
 * message can never smuggle a control token in. Fragments split exactly
 * where llama.cpp's special-token partition splits them. Returns the number
 * of ids written to <ids> (≤ <cap>), or with <ids> NULL and <cap> 0 the
 * number needed; negative eng_status on error (ENG_ERR_RANGE: <cap> too small). */
ENG_WUR int eng_chat_encode(const struct eng_tok *tok, const struct eng_chat_prompt *p,
                            int32_t *ids, size_t cap);

#endif
