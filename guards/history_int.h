/* The parsed history's fields, for guard modules only. */
#ifndef LW_GUARDS_HISTORY_INT_H
#define LW_GUARDS_HISTORY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guards/failure.h"
#include "guards/limits.h"

struct gd_hist_call {
	uint64_t hash;        /* identity: name + canonical arguments (gd_call_id .exact) */
	uint64_t stable;      /* the same without volatile members (gd_call_id .stable) */
	uint64_t result_hash; /* hash of the tool result text (valid when has_result) */
	uint32_t turn;        /* 0-based assistant turn holding the call */
	bool has_result;
	bool mutating;        /* its name holds a guards.cross_turn.mutating word */
	bool inert;           /* mutating, but it changed nothing: it failed
	                         permanently, or an earlier twin got the identical
	                         result (gd_history_link) */
	bool repeated;        /* mutating, and some twin got the identical result */
	enum gd_result_kind kind;
	char name[GD_NAME_MAX];
	char id[GD_ID_MAX];
};

struct gd_history {
	const struct gd_policy *policy;
	struct gd_hist_call *calls; /* in history order */
	size_t n_calls;
	uint32_t n_turns;           /* assistant turns with tool calls */
	char *last_text;            /* tail of the last assistant message's content */
	size_t last_text_len;
	char *last_reasoning;       /* and of its reasoning_content */
	size_t last_reasoning_len;
	uint64_t last_output;       /* that message's whole length: content, reasoning and
	                               its calls' arguments (for the budget) */
	size_t task_start;          /* gd_history_task_start */
};

/* After the last call and result of <h> are read: marks the inert
 * mutating calls. Every reader of a history calls it once at the end. */
void gd_history_link(struct gd_history *h);

#endif
