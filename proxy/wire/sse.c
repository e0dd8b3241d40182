/* Incremental SSE framing (see sse.h). One pass over the bytes: a line buffer
 * collects the current line, a data buffer the current event's joined data.
 * Both grow on demand (doubling from SSE_BUF_MIN) up to <cap>, and one that
 * grew past SSE_BUF_KEEP for a large event is released once that event is
 * through: a stream costs what its events need, not <cap>, and a parser that
 * met one large event does not keep it for the rest of its life. */
#include "proxy/wire/sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSE_EVENT_NAME_MAX 64
#define SSE_ID_MAX 128
#define SSE_BUF_MIN 1024          /* first allocation of the line or data buffer */
#define SSE_BUF_KEEP (64 * 1024)  /* a buffer grown past this is freed after its event */

struct px_sse {
	enum px_sse_mode mode;
	size_t cap;
	char *line;          /* line_alloc (<= cap) bytes: the line being collected; NULL until needed */
	size_t line_len, line_alloc;
	char *data;          /* data_alloc (<= cap + 1) bytes: the event's data, NUL-terminated
	                        on dispatch; NULL until needed */
	size_t data_len, data_alloc;
	bool has_data;
	char event[SSE_EVENT_NAME_MAX];
	char id[SSE_ID_MAX];
	bool skip_lf;        /* the previous line ended in CR: a following LF belongs to it */
	bool failed;
	bool done;
	bool ev_started;
	uint64_t offset;     /* bytes consumed */
	uint64_t lineno;     /* 1-based number of the line being collected */
	uint64_t line_off;   /* offset of the first byte of the line being collected */
	uint64_t ev_off, ev_line;
	uint64_t number, comments;
};

const char *px_sse_strerror(enum px_sse_status st)
{
	switch (st) {
	case PX_SSE_OK: return "ok";
	case PX_SSE_ETOOBIG: return "SSE event larger than the buffer cap";
	case PX_SSE_ESTOPPED: return "stopped by the event callback";
	case PX_SSE_EINVAL: return "invalid argument";
	case PX_SSE_ENOMEM: return "out of memory";
	}
	return "unknown SSE status";
}

struct px_sse *px_sse_new(enum px_sse_mode mode, size_t cap)
{
	struct px_sse *sse = NULL;

	if (cap == 0 || cap > ((size_t)1 << 30) || (unsigned)mode >= PX_SSE_MODE_COUNT)
		return NULL;
	sse = calloc(1, sizeof(*sse));
	if (!sse)
		goto fail;
	sse->mode = mode;
	sse->cap = cap;
	px_sse_reset(sse);
	return sse;
fail:
	px_sse_free(sse);
	return NULL;
}

void px_sse_free(struct px_sse *sse)
{
	if (!sse)
		return;
	free(sse->line);
	free(sse->data);
	free(sse);
}

/* Makes *<buf> (<*alloc> bytes) hold at least <need> bytes, doubling up to
 * <limit> (need <= limit, checked by the caller against the cap). */
static bool reserve(char **buf, size_t *alloc, size_t need, size_t limit)
{
	size_t n;
	char *p;

	if (need <= *alloc)
		return true;
	n = *alloc ? *alloc : SSE_BUF_MIN;
	while (n < need)
		n = n > limit / 2 ? limit : 2 * n;
	if (n > limit)
		n = limit;
	p = realloc(*buf, n);
	if (!p)
		return false;
	*buf = p;
	*alloc = n;
	return true;
}

/* After a large event: give its memory back (the next events are small). */
static void release_large(char **buf, size_t *alloc)
{
	if (*alloc > SSE_BUF_KEEP) {
		free(*buf);
		*buf = NULL;
		*alloc = 0;
	}
}

static enum px_sse_status no_memory(struct px_sse *sse, char *err, size_t errlen)
{
	snprintf(err, errlen, "SSE line %llu (byte offset %llu): out of memory",
	         (unsigned long long)sse->lineno, (unsigned long long)sse->line_off);
	return PX_SSE_ENOMEM;
}

static void clear_event(struct px_sse *sse)
{
	sse->data_len = 0;
	sse->has_data = false;
	sse->event[0] = '\0';
	sse->id[0] = '\0';
	sse->ev_started = false;
}

void px_sse_reset(struct px_sse *sse)
{
	if (!sse)
		return;
	clear_event(sse);
	sse->line_len = 0;
	release_large(&sse->line, &sse->line_alloc);
	release_large(&sse->data, &sse->data_alloc);
	sse->skip_lf = false;
	sse->failed = false;
	sse->done = false;
	sse->offset = 0;
	sse->lineno = 1;
	sse->line_off = 0;
	sse->ev_off = 0;
	sse->ev_line = 0;
	sse->number = 0;
	sse->comments = 0;
}

static enum px_sse_status dispatch(struct px_sse *sse, bool truncated, px_sse_cb cb, void *ctx)
{
	struct px_sse_event ev;
	int rc;

	sse->data[sse->data_len] = '\0';
	memset(&ev, 0, sizeof(ev));
	ev.data = sse->data;
	ev.len = sse->data_len;
	ev.event = sse->event;
	ev.id = sse->id;
	ev.done = sse->data_len == 6 && memcmp(sse->data, "[DONE]", 6) == 0;
	ev.truncated = truncated;
	ev.number = ++sse->number;
	ev.offset = sse->ev_off;
	ev.line = sse->ev_line;
	if (ev.done)
		sse->done = true;
	rc = cb ? cb(&ev, ctx) : 0;
	clear_event(sse);
	release_large(&sse->data, &sse->data_alloc);
	return rc != 0 ? PX_SSE_ESTOPPED : PX_SSE_OK;
}

static void copy_field(char *dst, size_t dstlen, const char *src, size_t len)
{
	if (len >= dstlen)
		len = dstlen - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/* Interprets the complete line <line, len> (terminator removed). */
static enum px_sse_status process_line(struct px_sse *sse, const char *line, size_t len,
                                       bool truncated, px_sse_cb cb, void *ctx,
                                       char *err, size_t errlen)
{
	const char *colon, *value;
	size_t name_len, value_len;

	/* A UTF-8 byte order mark before the first line is not part of it. */
	if (sse->lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
		line += 3;
		len -= 3;
	}
	if (len == 0) {
		/* The standard drops an event whose data is empty ("data:" alone). */
		if (sse->mode == PX_SSE_MODE_STREAM && sse->has_data && sse->data_len > 0)
			return dispatch(sse, truncated, cb, ctx);
		if (sse->mode == PX_SSE_MODE_STREAM)
			clear_event(sse);
		return PX_SSE_OK;
	}
	if (line[0] == ':') {
		sse->comments++;
		return PX_SSE_OK;
	}
	colon = memchr(line, ':', len);
	name_len = colon ? (size_t)(colon - line) : len;
	value = colon ? colon + 1 : line + len;
	value_len = len - (size_t)(value - line);
	if (value_len > 0 && value[0] == ' ') {
		value++;
		value_len--;
	}
	if (!sse->ev_started) {
		sse->ev_started = true;
		sse->ev_off = sse->line_off;
		sse->ev_line = sse->lineno;
	}
	if (name_len == 4 && memcmp(line, "data", 4) == 0) {
		size_t need = value_len + (sse->has_data ? 1 : 0);

		if (sse->mode == PX_SSE_MODE_LINES) {
			sse->data_len = 0;
			sse->has_data = false;
			need = value_len;
		}
		if (need > sse->cap - sse->data_len) {
			snprintf(err, errlen, "SSE line %llu (byte offset %llu): event data exceeds %zu bytes",
			         (unsigned long long)sse->lineno, (unsigned long long)sse->line_off,
			         sse->cap);
			return PX_SSE_ETOOBIG;
		}
		if (!reserve(&sse->data, &sse->data_alloc, sse->data_len + need + 1, sse->cap + 1))
			return no_memory(sse, err, errlen);
		if (sse->has_data)
			sse->data[sse->data_len++] = '\n';
		if (value_len > 0)
			memcpy(sse->data + sse->data_len, value, value_len);
		sse->data_len += value_len;
		sse->has_data = true;
		if (sse->mode == PX_SSE_MODE_LINES) {
			if (sse->data_len == 0) {
				clear_event(sse);
				return PX_SSE_OK;
			}
			return dispatch(sse, truncated, cb, ctx);
		}
	} else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
		copy_field(sse->event, sizeof(sse->event), value, value_len);
	} else if (name_len == 2 && memcmp(line, "id", 2) == 0) {
		copy_field(sse->id, sizeof(sse->id), value, value_len);
	}
	/* "retry" and unknown fields are ignored, as the standard says. */
	return PX_SSE_OK;
}

enum px_sse_status px_sse_feed(struct px_sse *sse, const char *buf, size_t len,
                               px_sse_cb cb, void *ctx, char *err, size_t errlen)
{
	enum px_sse_status st = PX_SSE_OK;
	size_t i = 0;

	if (!sse || (!buf && len > 0))
		return PX_SSE_EINVAL;
	if (sse->failed) {
		snprintf(err, errlen, "SSE parser used after an error (reset it first)");
		return PX_SSE_EINVAL;
	}
	while (i < len) {
		size_t j = i;
		char c;

		if (sse->skip_lf) {
			sse->skip_lf = false;
			if (buf[i] == '\n') {
				i++;
				sse->offset++;
				sse->line_off = sse->offset;
				continue;
			}
		}
		while (j < len && buf[j] != '\n' && buf[j] != '\r')
			j++;
		if (j - i > sse->cap - sse->line_len) {
			snprintf(err, errlen, "SSE line %llu (byte offset %llu): line exceeds %zu bytes",
			         (unsigned long long)sse->lineno, (unsigned long long)sse->line_off,
			         sse->cap);
			st = PX_SSE_ETOOBIG;
			goto out;
		}
		if (j > i) {
			if (!reserve(&sse->line, &sse->line_alloc, sse->line_len + (j - i), sse->cap)) {
				st = no_memory(sse, err, errlen);
				goto out;
			}
			memcpy(sse->line + sse->line_len, buf + i, j - i);
		}
		sse->line_len += j - i;
		sse->offset += j - i;
		if (j == len)
			break;
		c = buf[j];
		sse->offset++;
		i = j + 1;
		st = process_line(sse, sse->line_len ? sse->line : "", sse->line_len, false, cb, ctx,
		                  err, errlen);
		sse->line_len = 0;
		release_large(&sse->line, &sse->line_alloc);
		sse->lineno++;
		sse->line_off = sse->offset;
		if (c == '\r')
			sse->skip_lf = true;
		if (st != PX_SSE_OK)
			goto out;
	}
out:
	if (st == PX_SSE_ETOOBIG || st == PX_SSE_ENOMEM)
		sse->failed = true;
	return st;
}

enum px_sse_status px_sse_finish(struct px_sse *sse, px_sse_cb cb, void *ctx,
                                 char *err, size_t errlen)
{
	enum px_sse_status st = PX_SSE_OK;

	if (!sse)
		return PX_SSE_EINVAL;
	if (sse->failed)
		return PX_SSE_EINVAL;
	if (sse->line_len > 0) {
		st = process_line(sse, sse->line, sse->line_len, true, cb, ctx, err, errlen);
		sse->line_len = 0;
		release_large(&sse->line, &sse->line_alloc);
		sse->lineno++;
		if (st != PX_SSE_OK)
			goto out;
	}
	if (sse->mode == PX_SSE_MODE_STREAM && sse->has_data && sse->data_len > 0)
		st = dispatch(sse, true, cb, ctx);
out:
	if (st == PX_SSE_ETOOBIG || st == PX_SSE_ENOMEM)
		sse->failed = true;
	return st;
}

bool px_sse_done(const struct px_sse *sse)
{
	return sse && sse->done;
}

uint64_t px_sse_offset(const struct px_sse *sse)
{
	return sse ? sse->offset : 0;
}

uint64_t px_sse_comments(const struct px_sse *sse)
{
	return sse ? sse->comments : 0;
}

uint64_t px_sse_line(const struct px_sse *sse)
{
	return sse ? sse->lineno : 0;
}
