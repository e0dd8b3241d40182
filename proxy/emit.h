/* What loopwarden itself writes to clients in the OpenAI format: error
 * bodies and events, the final chunk of a cut answer, the short answer that
 * replaces a request whose history already loops, and a non-streaming answer
 * truncated before its looping part. Everything goes into an evbuffer. */
#ifndef LW_PROXY_EMIT_H
#define LW_PROXY_EMIT_H

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
/* The same, the loopwarden object also saying "tokens_after_cancel" (the
 * co-resident engine's count of tokens generated after the cancel) unless
 * <tokens_after_cancel> < 0. */
void px_emit_trip_chunk_tac(struct evbuffer *out, const struct px_answer_id *a,
                            const struct gd_trip *trip, int tokens_after_cancel);

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
/* The same with "tokens_after_cancel" in the loopwarden object (< 0: left out). */
int px_emit_truncated_body_tac(struct evbuffer *out, const char *body, size_t len,
                               const struct px_cut *cut, const struct gd_trip *trip,
                               int tokens_after_cancel);

/* The note written as the assistant's message when the history check stops
 * a request: says which guard and why. */
void px_notice_text(char *buf, size_t buflen, const struct gd_trip *trip);

#endif
