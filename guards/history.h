/* The conversation so far, read from a chat-completions request: assistant
 * tool_calls with their identities, the tool results answering them (matched
 * by tool_call_id, or in order when a tool message has none), and the last
 * assistant message's text. The cross-turn and failure guards read it; the
 * history check decides before the upstream is asked. */
#ifndef LW_GUARDS_HISTORY_H
#define LW_GUARDS_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guards/conv.h"
#include "guards/trip.h"

struct gd_policy;
struct gd_history;

/* The history of a request's messages (guards/conv.h; the request reader
 * proxy/wire/request.h parses a body into them). The history copies what it
 * keeps: <msgs> may go away afterwards. Returns NULL and fills <err> when out
 * of memory or when a call's arguments object exceeds GD_CANON_MAX_INPUT.
 * Caller owns the result. */
struct gd_history *gd_history_new(const struct gd_policy *policy,
                                  const struct gd_conv_msg *msgs, size_t n_msgs,
                                  char *err, size_t errlen);
void gd_history_free(struct gd_history *hist);

/* Before forwarding: true when the history alone already proves a loop
 * (e.g. an agent re-requesting the continuation of a looping answer); fills
 * <trip>. Only the current task counts (gd_history_task_start): a new user
 * instruction after a loop is a new task. The last assistant message is fed
 * to a fresh pipeline (reasoning, then text) and its lengths to the budget:
 * any text the pipeline would have cut at its end trips here too, so a
 * continuation of the text the proxy delivered before a cut (trip.event_used)
 * is recognised. */
bool gd_history_check(const struct gd_history *hist, struct gd_trip *trip);

/* True when a user message's text <text, len> asks to continue the answer
 * before it (guards.history.continuations) rather than starting a new task. */
bool gd_history_is_continuation(const struct gd_policy *policy, const char *text, size_t len);

/* Index (in the messages given to gd_history_new) of the first message of
 * the current task: just after the last user message that is not a
 * continuation, 0 when there is none. Messages before it are not read. */
size_t gd_history_task_start(const struct gd_history *hist);

/* Number of tool calls read, and of assistant turns that made calls. */
size_t gd_history_calls(const struct gd_history *hist);
uint32_t gd_history_turns(const struct gd_history *hist);

#endif
