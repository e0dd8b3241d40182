/* Incremental Server-Sent Events framing: fed arbitrary byte slices of an
 * upstream's `text/event-stream` (an event may be split at any byte), calls
 * back once per complete event with its data. Memory follows the events: the
 * buffers grow on demand up to the cap set at creation (an event larger than
 * the cap is an error, never unbounded growth) and a buffer grown large for
 * one event is released once that event is through. */
#ifndef LW_PROXY_WIRE_SSE_H
#define LW_PROXY_WIRE_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum px_sse_status {
	PX_SSE_OK = 0,
	PX_SSE_ETOOBIG = -1,   /* a line or an event's data exceeded the cap */
	PX_SSE_ESTOPPED = -2,  /* the callback returned nonzero */
	PX_SSE_EINVAL = -3,    /* bad argument (NULL parser, cap 0) */
	PX_SSE_ENOMEM = -4,    /* a buffer could not grow (the parser is unusable until reset) */
};

const char *px_sse_strerror(enum px_sse_status st);

/* Framing modes. */
enum px_sse_mode {
	/* The SSE standard: lines end in CRLF, LF or CR; `:` lines are
	 * comments; `data:` (space after the colon optional) lines of one
	 * event are joined by '\n'; a blank line dispatches the event. */
	PX_SSE_MODE_STREAM = 0,
	/* A plain file of `data: …` lines (a recording, a pasted log): every
	 * `data:` line is an event by itself; blank lines and comments are
	 * skipped. */
	PX_SSE_MODE_LINES,
	PX_SSE_MODE_COUNT
};

/* One complete event, borrowed: valid only during the callback. */
struct px_sse_event {
	const char *data;     /* data lines joined by '\n', NUL-terminated */
	size_t len;
	const char *event;    /* the last `event:` field ("" when none; truncated to 63 bytes) */
	const char *id;       /* the last `id:` field ("" when none; truncated to 127 bytes) */
	bool done;            /* data is exactly "[DONE]" */
	bool truncated;       /* flushed by px_sse_finish without its blank line / newline */
	uint64_t number;      /* 1-based count of dispatched events */
	uint64_t offset;      /* byte offset in the stream of the event's first line */
	uint64_t line;        /* 1-based line number of the event's first line */
};

/* Return 0 to go on, nonzero to stop: px_sse_feed then returns PX_SSE_ESTOPPED. */
typedef int (*px_sse_cb)(const struct px_sse_event *ev, void *ctx);

/* <cap> bounds both one line and one event's joined data, in bytes. Nothing
 * is reserved for it: the line and data buffers start at 1 KiB when first
 * needed and double up to <cap>; one grown past 64 KiB is freed after its
 * event (and by px_sse_reset), so steady small events allocate nothing.
 * Returns NULL on allocation failure or <cap> == 0. */
struct px_sse *px_sse_new(enum px_sse_mode mode, size_t cap);
void px_sse_free(struct px_sse *sse);

/* Forget any partial event and counters (reuse for a new stream); buffers
 * grown past 64 KiB are released. */
void px_sse_reset(struct px_sse *sse);

/* Feeds <len> bytes of <buf>; calls <cb> for each event completed by them, in
 * order. On an error, <err> names the byte offset and line, and the parser is
 * unusable until px_sse_reset. Events with no `data:` field (a lone comment
 * block, a lone `event:`) or with empty data (`data:` alone) are not
 * dispatched, as the standard says. */
enum px_sse_status px_sse_feed(struct px_sse *sse, const char *buf, size_t len,
                               px_sse_cb cb, void *ctx, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* End of stream: dispatches a pending event that lacked its terminating blank
 * line (or, in lines mode, its newline) with <truncated> set. */
enum px_sse_status px_sse_finish(struct px_sse *sse, px_sse_cb cb, void *ctx,
                                 char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* True once an event whose data is "[DONE]" was dispatched. */
bool px_sse_done(const struct px_sse *sse);
/* Bytes fed so far, comment lines seen (keep-alives), current line number. */
uint64_t px_sse_offset(const struct px_sse *sse);
uint64_t px_sse_comments(const struct px_sse *sse);
uint64_t px_sse_line(const struct px_sse *sse);

#endif
