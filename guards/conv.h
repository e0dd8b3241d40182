/* A chat conversation as plain data: the messages of a chat-completions
 * request with their text and tool calls. The request reader
 * (proxy/wire/request.h) fills it from a body it parsed once; the history
 * (gd_history_new) and the co-resident engine's chat templates read it.
 * Types only: nothing here allocates, every pointer borrows from whoever
 * filled it. It lives in guards/ because the guards read it and must not
 * depend on proxy/ (proxy/wire already depends on guards/). */
#ifndef LW_GUARDS_CONV_H
#define LW_GUARDS_CONV_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes of a JSON string's value: valid UTF-8, possibly holding NULs (from
 * "\u0000"), followed by a NUL that <len> does not count. <ptr> is NULL when
 * the key was absent or JSON null. */
struct gd_str {
	const char *ptr;
	size_t len;
};

enum gd_role {
	GD_ROLE_OTHER = 0, /* a role loopwarden does not know (see <role_name>) */
	GD_ROLE_SYSTEM,
	GD_ROLE_DEVELOPER,
	GD_ROLE_USER,
	GD_ROLE_ASSISTANT,
	GD_ROLE_TOOL,
	GD_ROLE_COUNT
};

/* One entry of an assistant message's "tool_calls". */
struct gd_conv_call {
	struct gd_str id;
	struct gd_str type;  /* "function" */
	struct gd_str name;  /* function.name: always set */
	struct gd_str args;  /* function.arguments: the string's value, or the raw
	                        JSON text of an object or array (<args_json>) */
	bool args_json;      /* arguments were a JSON object/array (Ollama's form) */
};

struct gd_conv_msg {
	enum gd_role role;
	struct gd_str role_name;    /* "role" as written: always set */
	struct gd_str content;      /* the string, or its {type:"text"} parts concatenated */
	struct gd_str reasoning;    /* reasoning_content (else "reasoning") */
	struct gd_str tool_call_id;
	struct gd_str name;
	const struct gd_conv_call *calls; /* "tool_calls", in order */
	size_t n_calls;
};

#endif
