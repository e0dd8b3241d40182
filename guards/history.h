/* A chat-completions request's history (gd_history_new and
 * gd_history_check are declared in pipeline.h): assistant tool_calls with
 * their canonical identity, the tool results answering them (matched by
 * tool_call_id, or in order when a tool message has none), and the last
 * assistant message's text. */
#ifndef LW_GUARDS_HISTORY_H
#define LW_GUARDS_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "guards/pipeline.h"

/* Number of tool calls read, and of assistant turns that made calls. */
size_t gd_history_calls(const struct gd_history *hist);
uint32_t gd_history_turns(const struct gd_history *hist);

#endif
