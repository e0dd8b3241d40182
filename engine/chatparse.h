/* The generated text of a co-resident answer -> the normalized guard events
 * (guards/event.h), the same shapes the upstream chunk converter
 * (proxy/wire/chunk.c) produces: text, reasoning (<think>…</think>) and tool
 * calls (GD_EV_TOOL_BEGIN with a generated id and the name, the arguments as
 * GD_EV_TOOL_ARGS fragments as they are generated, GD_EV_TOOL_END), then
 * GD_EV_FINISH. Incremental: the text comes piece by piece as tokens decode,
 * split anywhere (inside markers too). Markers are found with PCRE2 partial
 * matching, so only what could still be the start of a marker is held back;
 * text is relayed at once.
 *
 * Tool-call syntaxes, by template family (engine/chat_template.h):
 *   chatml   <tool_call>{"name": …, "arguments": {…}}</tool_call>, repeated
 *   llama3   {"name": …, "parameters": {…}} at the start of the answer or
 *            after <|python_tag|>; several separated by ";" or whitespace
 *   mistral  [TOOL_CALLS] [{"name": …, "arguments": {…}}, …] and the newer
 *            [TOOL_CALLS]name[ARGS]{…} (optionally name[CALL_ID]id[ARGS]{…})
 * "arguments"/"parameters" may also be a JSON string holding the object.
 * Tool-call syntax is parsed only when the request has tools.
 *
 * Malformed output never crashes and is never silently lost:
 *   - a call that goes wrong before its GD_EV_TOOL_BEGIN (not JSON, no name,
 *     a name the request's tools do not have, an unclosed call at the end)
 *     is relayed as GD_EV_TEXT exactly as the model wrote it, marker
 *     included, and counted in eng_chatparse_info (malformed, error);
 *   - a call that goes wrong after its GD_EV_TOOL_BEGIN (its arguments stop
 *     being JSON, the answer ends inside them) gets its GD_EV_TOOL_END and
 *     the feed (or end) returns ENG_CHATPARSE_EBROKEN with <err> naming the
 *     call and the problem: the caller must not deliver that call (the
 *     engine source fails the answer with an error event). The rest of the
 *     broken call is skipped; the parser stays usable.
 * Allocation happens in eng_chatparse_new only. */
#ifndef LW_ENGINE_CHATPARSE_H
#define LW_ENGINE_CHATPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/chat_template.h"
#include "guards/event.h"

/* ---- caps (one place) ------------------------------------------------------ */

#define ENG_CHATPARSE_HOLD 4096            /* bytes held while a marker or a call's
                                              start is undecided */
#define ENG_CHATPARSE_HEAD_MAX (64u << 10) /* bytes of a call held before its
                                              GD_EV_TOOL_BEGIN (name not yet known,
                                              arguments before the name, string
                                              arguments); longer: malformed */
#define ENG_CHATPARSE_NAME_MAX 256         /* bytes of a tool name */
#define ENG_CHATPARSE_WS_MAX 64            /* whitespace dropped at a boundary (after
                                              <think>, before and after </think>,
                                              between calls); a longer run is relayed */
#define ENG_CHATPARSE_DEPTH 64             /* JSON nesting inside a call */
#define ENG_CHATPARSE_ID_MAX 32            /* bytes of a generated call id */

enum eng_chatparse_status {
	ENG_CHATPARSE_OK = 0,
	ENG_CHATPARSE_EBROKEN = -1,  /* a begun tool call turned out malformed (see above) */
	ENG_CHATPARSE_ESTOPPED = -2, /* the callback returned nonzero: nothing more is parsed */
	ENG_CHATPARSE_EINVAL = -3,   /* bad argument */
};

const char *eng_chatparse_strerror(enum eng_chatparse_status st);

struct eng_chatparse_cfg {
	enum eng_chat_family family;       /* which tool-call syntax; PLAIN: none */
	const struct eng_chat_tool *tools; /* the request's tools: a call must name one;
	                                      none: tool-call syntax is not parsed.
	                                      Borrowed until the next reset or free. */
	uint32_t n_tools;
	bool reasoning;  /* <think>…</think> at the start of the answer is reasoning */
	bool think_open; /* the prompt opened <think> (eng_chat_prompt.think_open) */
	uint64_t id_seed; /* generated call ids derive from it and the call's index:
	                     "call_" + 16 hex digits (mistral: 9 alphanumerics, the
	                     form its template needs) */
};

/* Called per event in answer order; the event and its bytes are borrowed
 * for the call only. Return nonzero to stop. */
typedef int (*eng_chatparse_cb)(const struct gd_event *ev, void *ctx);

struct eng_chatparse;

/* NULL when out of memory. Ready after eng_chatparse_reset. */
struct eng_chatparse *eng_chatparse_new(void);
void eng_chatparse_free(struct eng_chatparse *p); /* NULL is a no-op */

/* Starts a new answer with <cfg> (copied; cfg->tools is borrowed). */
enum eng_chatparse_status eng_chatparse_reset(struct eng_chatparse *p,
                                              const struct eng_chatparse_cfg *cfg)
	__attribute__((warn_unused_result));

/* Parses the next <len> bytes of generated text (valid UTF-8 from the
 * tokenizer's streaming decoder, split anywhere) and emits what is decided.
 * <err> (may be NULL) explains ENG_CHATPARSE_EBROKEN. */
enum eng_chatparse_status eng_chatparse_feed(struct eng_chatparse *p, const char *text,
                                             size_t len, eng_chatparse_cb cb, void *ctx,
                                             char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The answer is over: emits what was held, resolves an unfinished call (see
 * above), emits GD_EV_TOOL_END for an open call, then GD_EV_FINISH with
 * <finish_reason> (NULL: "tool_calls" when calls were delivered, else
 * "stop"). */
enum eng_chatparse_status eng_chatparse_end(struct eng_chatparse *p, const char *finish_reason,
                                            eng_chatparse_cb cb, void *ctx, char *err,
                                            size_t errlen)
	__attribute__((warn_unused_result));

struct eng_chatparse_info {
	uint32_t tool_calls;   /* calls begun (GD_EV_TOOL_BEGIN) */
	uint32_t broken;       /* of them, ended malformed (ENG_CHATPARSE_EBROKEN) */
	uint32_t malformed;    /* malformed call syntax relayed as text, plus broken calls,
	                          plus calls delivered with a damaged wrapper */
	bool in_reasoning;     /* the answer is still inside <think> */
	char error[192];       /* the first problem, "" when none */
};
void eng_chatparse_info(const struct eng_chatparse *p, struct eng_chatparse_info *out);

#endif
