/* The normalized event model: every source (an upstream's SSE stream, the
 * co-resident engine) turns an answer into these, and they are all the guards
 * ever see. Events borrow their bytes from the caller; nothing here owns memory. */
#ifndef LW_GUARDS_EVENT_H
#define LW_GUARDS_EVENT_H

#include <stddef.h>
#include <stdint.h>

enum gd_event_type {
	GD_EV_TEXT = 0,   /* content delta: <data, len> */
	GD_EV_REASONING,  /* reasoning_content delta: <data, len> */
	GD_EV_TOOL_BEGIN, /* a new tool call: <index>, <id> (may be empty), <name> */
	GD_EV_TOOL_ARGS,  /* an argument fragment of call (<index>, <id>): <data, len> */
	GD_EV_TOOL_END,   /* the source knows call (<index>, <id>) is complete */
	GD_EV_FINISH,     /* the answer's finish_reason: <data, len> */
	GD_EV_USAGE,      /* token counts: <prompt_tokens>, <completion_tokens> */
	GD_EV_COUNT
};

/* A tool call is keyed by (<index>, <id>): OpenAI-style streams send the id
 * only on a call's first delta and then the index alone; Ollama sends every
 * call of a parallel batch with index 0 and tells them apart by id. An event
 * with an empty id belongs to the most recent call with its index. */
struct gd_event {
	enum gd_event_type type;
	uint32_t index;
	const char *id;
	size_t id_len;
	const char *name;
	size_t name_len;
	const char *data;
	size_t len;
	int64_t prompt_tokens;     /* -1 when unknown */
	int64_t completion_tokens; /* -1 when unknown */
};

const char *gd_event_type_name(enum gd_event_type type);

#endif
