/* The one reader of a chat-completions request body (DESIGN.md "one request
 * reader"; issue 11 defect 1). The body is parsed once, with yajl's callback
 * parser, and every limit is enforced while parsing, before anything is
 * built: nesting depth, counts, bytes kept, duplicate keys. The result is
 * plain data: the messages (guards/conv.h) that the history check and the
 * engine's chat templates take, the tools, and the fields a source needs
 * (model, stream, sampling as given). Unknown keys are skipped, never stored;
 * the proxy still forwards the original bytes upstream. Pure C + yajl. */
#ifndef LW_PROXY_WIRE_REQUEST_H
#define LW_PROXY_WIRE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guards/conv.h"

/* The reader's caps, in one place. A request over any of them is refused
 * (400) with a message naming the cap. */
#define PX_REQUEST_MAX_DEPTH 64          /* nesting of objects and arrays */
#define PX_REQUEST_MAX_BODY (64u << 20)  /* bytes read at most (proxy.max_body_bytes is lower) */
#define PX_REQUEST_MAX_KEPT (64u << 20)  /* bytes kept: strings and tables of the result */
#define PX_REQUEST_MAX_MESSAGES 65536    /* entries of "messages" */
#define PX_REQUEST_MAX_CALLS 4096        /* "tool_calls" of one message */
#define PX_REQUEST_MAX_PARTS 4096        /* content parts of one message */
#define PX_REQUEST_MAX_TOOLS 1024        /* entries of "tools" */
#define PX_REQUEST_MAX_STOP 16           /* entries of "stop" */
#define PX_REQUEST_MAX_KEYS 256          /* keys of the request object itself */

enum px_request_status {
	PX_REQUEST_OK = 0,
	PX_REQUEST_EJSON = -1,   /* not JSON, or not valid UTF-8 */
	PX_REQUEST_ESHAPE = -2,  /* JSON, but a field is missing, has the wrong type or comes twice */
	PX_REQUEST_ELIMIT = -3,  /* over a cap above (nesting, counts, bytes) */
	PX_REQUEST_ENOMEM = -4,
	PX_REQUEST_EINVAL = -5,  /* bad argument */
};

const char *px_request_strerror(enum px_request_status st);

/* A sampling field as the client gave it (<set> false when absent or null).
 * Type errors are the reader's; whether a value makes sense (a negative
 * temperature) is for the source that uses it. */
struct px_num {
	bool set;
	double v;
};

struct px_int {
	bool set;
	int64_t v;
};

struct px_sampling {
	struct px_num temperature, top_p, min_p;
	struct px_num frequency_penalty, presence_penalty, repeat_penalty;
	struct px_int top_k, seed, max_tokens, max_completion_tokens;
	bool stop_set;                          /* "stop" given: a string counts as a list of one */
	uint32_t n_stop;
	struct gd_str stop[PX_REQUEST_MAX_STOP];
};

/* One entry of "tools". */
struct px_request_tool {
	struct gd_str type;        /* "function" */
	struct gd_str name;        /* function.name (NULL for a tool without "function") */
	struct gd_str description; /* function.description */
	struct gd_str parameters;  /* function.parameters: its raw JSON text (an object) */
};

/* A byte range of the body. */
struct px_request_span {
	size_t off, len;
};

struct px_request {
	struct gd_str model;
	bool stream;
	bool include_usage;        /* stream_options.include_usage */
	struct px_sampling sampling;
	const struct gd_conv_msg *msgs; /* "messages" (may be empty: the caller decides) */
	size_t n_msgs;
	const struct px_request_tool *tools;
	size_t n_tools;
	/* Where the body holds the values of the top-level "max_tokens" and
	 * "max_completion_tokens" (from just after the key to the end of the
	 * value: the ':' and any spaces included): what a caller comparing two
	 * requests but for their token limits leaves out (proxy/cutmemo.h). */
	struct px_request_span limits[2];
	uint32_t n_limits;
	struct px_request_mem *mem; /* internal: what the pointers above point into */
};

/* Reads <body, len> (need not end in NUL). On success *<out> is the request
 * (caller frees with px_request_free). On failure *<out> is NULL and <err>
 * says what and where: the field by its path and the byte offset, e.g.
 * "messages[3].tool_calls[0].function.arguments must be a string or an
 * object (at byte 1234)", "request is nested deeper than 64 levels (at byte
 * 77)", "duplicate key 'messages' in the request (at byte 90)". */
enum px_request_status px_request_read(const char *body, size_t len, struct px_request **out,
                                       char *err, size_t errlen)
	__attribute__((warn_unused_result));

void px_request_free(struct px_request *req);

/* The history of a request body in one call (px_request_read, then
 * gd_history_new over its messages): for loopwarden-audit, tests and fuzz
 * targets. NULL with <err> on a bad body. */
struct gd_policy;
struct gd_history *px_request_history(const struct gd_policy *policy, const char *body,
                                      size_t len, char *err, size_t errlen);

#endif
