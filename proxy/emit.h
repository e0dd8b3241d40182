/* What loopwarden itself writes to clients in the OpenAI format: error
 * bodies and events, the final chunk of a cut answer, the short answer that
 * replaces a request whose history already loops, and a non-streaming answer
 * truncated before its looping part. Everything goes into an evbuffer. */
#ifndef LW_PROXY_EMIT_H
#define LW_PROXY_EMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guards/pipeline.h"
#include "proxy/answer.h" /* struct px_answer_id, struct px_cut */

struct evbuffer;

/* Appends <s> as a JSON string literal (quotes included). */
void px_json_string(struct evbuffer *out, const char *s, size_t len);

/* The OpenAI error type for an HTTP status (e.g. 400 invalid_request_error). */
const char *px_error_type(int status);

/* {"error":{"message":<msg>,"type":<type for status>,"code":<status>}} */
void px_emit_error(struct evbuffer *out, int status, const char *msg);
/* The same as an SSE event: data: {...}\n\n */
void px_emit_error_event(struct evbuffer *out, int status, const char *msg);

/* data: <json>\n\n around a chunk's original bytes. */
void px_emit_frame(struct evbuffer *out, const char *json, size_t len);
void px_emit_done(struct evbuffer *out);

/* The final chunk of a cut answer: empty delta, finish_reason "length", and a
 * top-level "loopwarden": {"guard","detail"}. As an SSE event. */
void px_emit_trip_chunk(struct evbuffer *out, const struct px_answer_id *a,
                        const struct gd_trip *trip);


/* A whole short answer saying which guard stopped the loop, for a request
 * whose history already loops: as SSE events (role+content, finish, [DONE])
 * or as one chat.completion body. <finish> is "stop" or "length". */
void px_emit_notice_stream(struct evbuffer *out, const struct px_answer_id *a,
                           const char *content, const char *finish,
                           const struct gd_trip *trip);
void px_emit_notice_body(struct evbuffer *out, const struct px_answer_id *a,
                         const char *content, const char *finish,
                         const struct gd_trip *trip);

/* Rewrites the chat.completion <body>: choice 0's content and reasoning cut
 * to the given lengths (on a UTF-8 boundary), only the first <tool_calls>
 * calls kept, finish_reason "length", and "loopwarden": {guard, detail} added.
 * Every other field is kept. Returns 0, or -1 when <body> is not an object. */
int px_emit_truncated_body(struct evbuffer *out, const char *body, size_t len,
                           const struct px_cut *cut, const struct gd_trip *trip);


/* ---- chunks of the co-resident engine's answers (JSON, unframed: the glue
 * frames what it relays) ---- */

/* The answer's first chunk: delta {"role":"assistant","content":null}.
 * <usage_null>: the request asked for include_usage, so every chunk but the
 * usage one says "usage":null. */
void px_emit_role_chunk(struct evbuffer *out, const struct px_answer_id *a, bool usage_null);
/* The chunk of one guard event: GD_EV_TEXT → content, GD_EV_REASONING →
 * reasoning_content, GD_EV_TOOL_BEGIN → a tool_calls entry with index, id,
 * type and name (arguments ""), GD_EV_TOOL_ARGS → its arguments fragment,
 * GD_EV_FINISH → an empty delta with the finish_reason. Returns 0, or -1
 * (nothing written) for an event that makes no chunk. */
int px_emit_event_chunk(struct evbuffer *out, const struct px_answer_id *a,
                        const struct gd_event *ev, bool usage_null);
/* The include_usage chunk: "choices":[] and the usage. */
void px_emit_usage_chunk(struct evbuffer *out, const struct px_answer_id *a,
                         int64_t prompt_tokens, int64_t completion_tokens);

/* One tool call of a whole answer: <args> is its arguments' JSON text. */
struct px_emit_call {
	const char *id, *name, *args;
	size_t args_len;
};
/* A whole chat.completion body: message content (null when empty and there
 * are calls), reasoning_content when non-empty, tool_calls, finish_reason
 * and usage. */
void px_emit_completion(struct evbuffer *out, const struct px_answer_id *a, const char *content,
                        size_t content_len, const char *reasoning, size_t reasoning_len,
                        const struct px_emit_call *calls, size_t n_calls, const char *finish,
                        int64_t prompt_tokens, int64_t completion_tokens);

/* The note written as the assistant's message when the history check stops
 * a request: says which guard and why. */
void px_notice_text(char *buf, size_t buflen, const struct gd_trip *trip);

/* ---- answers loopwarden ends or writes itself (issue 12 items 11-14) ---- */

/* The usage of such an answer. */
struct px_usage {
	int64_t prompt_tokens;     /* -1: not known (written as 0) */
	int64_t completion_tokens; /* -1: not known (written as 0) */
	const char *note;          /* "loopwarden": {"usage": <note>} says where the figures
	                              come from (NULL: no note) */
};

/* The usage of a cut answer: what the upstream reported before the cut
 * (<up_prompt>, <up_completion>, -1 when it reported nothing) and the
 * <relayed> tokens the client got. Never real prompt tokens with 0
 * completion tokens (pi reads that as a context overflow and compacts):
 * the prompt tokens as reported and the larger of the two completion
 * counts, or zeros for both, each with a note. */
void px_usage_for_cut(struct px_usage *u, int64_t up_prompt, int64_t up_completion,
                      uint64_t relayed);

/* How a cut stream ends, after the chunks already relayed. */
struct px_cut_stream {
	const char *finish;     /* proxy.cut_finish_reason: "length" or "stop" */
	const char *text;       /* the part of the tripping chunk the guards read */
	size_t text_len;        /* (gd_trip.event_used): the client must hold it for */
	const char *reasoning;  /* the history check to recognise the cut when the */
	size_t reasoning_len;   /* answer comes back to be continued (item 11) */
	const struct px_usage *usage; /* NULL: the request did not ask for usage */
	int tokens_after_cancel; /* the co-resident engine's count of tokens generated after
	                            the cancel, in the loopwarden objects; < 0: not said */
};

/* The end of a cut stream: the tripping chunk's part (a chunk of its own,
 * when not empty), the final chunk (empty delta, <c>->finish, "loopwarden"),
 * the usage chunk (choices [], with stream_options.include_usage: item 13).
 * The caller writes [DONE] after it. */
void px_emit_cut_stream(struct evbuffer *out, const struct px_answer_id *a,
                        const struct gd_trip *trip, const struct px_cut_stream *c);

/* A whole answer loopwarden writes without the upstream (the history check's
 * note, a remembered cut): as SSE events — the role and <content> (and
 * <reasoning>; no such chunk when both are empty), the final chunk with <finish> and
 * "loopwarden", the usage chunk when <usage> is not NULL, [DONE] — or as one
 * chat.completion body (always with "usage"; zeros when <usage> is NULL). */
void px_emit_answer_stream(struct evbuffer *out, const struct px_answer_id *a,
                           const char *content, size_t content_len,
                           const char *reasoning, size_t reasoning_len, const char *finish,
                           const struct gd_trip *trip, const struct px_usage *usage);
void px_emit_answer_body(struct evbuffer *out, const struct px_answer_id *a,
                         const char *content, size_t content_len,
                         const char *reasoning, size_t reasoning_len, const char *finish,
                         const struct gd_trip *trip, const struct px_usage *usage);

/* px_emit_truncated_body with finish_reason <finish>, <usage> added when
 * the upstream's body has no "usage" (NULL: nothing added), and
 * "tokens_after_cancel" in the loopwarden object unless
 * <tokens_after_cancel> < 0. */
int px_emit_truncated_body_ex(struct evbuffer *out, const char *body, size_t len,
                              const struct px_cut *cut, const struct gd_trip *trip,
                              const char *finish, const struct px_usage *usage,
                              int tokens_after_cancel);

#endif
