/* What loopwarden itself writes to clients in the OpenAI format: error
 * bodies and events, the final chunk of a cut answer, the short answer that
 * replaces a request whose history already loops, and a non-streaming answer
 * truncated before its looping part. Everything goes into an evbuffer. */
#ifndef LW_PROXY_EMIT_H
#define LW_PROXY_EMIT_H

#include <stddef.h>
#include <stdint.h>

#include "guards/pipeline.h"

struct evbuffer;

/* Identity of the answer being written: every chunk of one answer carries
 * the same id, created and model. */
struct px_answer_id {
	char id[128];
	char model[128];
	int64_t created;
};

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

/* What of a non-streaming answer to keep after a trip. */
struct px_cut {
	size_t text_bytes;      /* of message.content */
	size_t reasoning_bytes; /* of message.reasoning_content / reasoning */
	size_t tool_calls;      /* leading complete calls kept */
};

/* Rewrites the chat.completion <body>: choice 0's content and reasoning cut
 * to the given lengths (on a UTF-8 boundary), only the first <tool_calls>
 * calls kept, finish_reason "length", and "loopwarden": {guard, detail} added.
 * Every other field is kept. Returns 0, or -1 when <body> is not an object. */
int px_emit_truncated_body(struct evbuffer *out, const char *body, size_t len,
                           const struct px_cut *cut, const struct gd_trip *trip);

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

/* px_emit_truncated_body with finish_reason <finish>, and <usage> added when
 * the upstream's body has no "usage" (NULL: nothing added). */
int px_emit_truncated_body_ex(struct evbuffer *out, const char *body, size_t len,
                              const struct px_cut *cut, const struct gd_trip *trip,
                              const char *finish, const struct px_usage *usage);

#endif
