/* The upstream source (see source.h): the body is forwarded unchanged to an
 * OpenAI-compatible server, one connection per request (cancelling is
 * closing it); its answer goes through the SSE parser and the chunk
 * converter into the answer core, and a healthy chunk reaches the client as
 * its original bytes. A non-streaming answer is read whole (capped) and
 * handed over as one body; a 4xx/5xx answer becomes an error, relayed as is
 * when it is an OpenAI-style error object. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <yajl/yajl_parse.h>

#include "guards/utf8.h"
#include "proxy/answer.h"
#include "proxy/metrics.h"
#include "proxy/record.h"
#include "proxy/server_int.h"
#include "proxy/source.h"
#include "proxy/wire/chunk.h"
#include "proxy/wire/request.h"
#include "proxy/wire/sse.h"

#define ERROR_BODY_MAX (64 * 1024) /* an upstream's 4xx/5xx body kept for the client */
#define ERROR_JSON_DEPTH 64        /* nesting read in an error body before calling it text */
#define ERROR_TEXT_MAX 300         /* bytes of a non-JSON error body quoted in our message */

enum up_state {
	US_CONNECTING = 0, /* request sent, no response head yet */
	US_STREAM,         /* 200 + stream: converting events */
	US_COLLECT,        /* a non-stream answer or an error body */
	US_DONE,           /* ended or cancelled: no more callbacks */
};

struct px_source {
	struct px_server *s;
	const struct px_source_cbs *cbs;
	void *ctx;
	struct px_answer *answer;
	struct px_record *rec;
	uint64_t id;
	bool stream;
	enum up_state state;
	int status;
	uint64_t n_events; /* SSE events seen */
	/* How the running handler ends (source.h: one last callback). */
	enum { END_FLUSH = 0, END_END, END_ERROR } pending;
	int err_status;
	char err_msg[512];
	bool err_raw; /* the error's raw JSON is the first <err_raw_len> bytes of <body> */
	size_t err_raw_len;
	struct px_upstream *up;
	struct px_sse *sse;
	struct px_chunk *conv;
	struct evbuffer *body; /* a non-stream answer, or an error body */
};

/* An SSE parser and a chunk converter for a new answer: an idle pair
 * (reset) when the server keeps one, else new ones. */
static void parsers_take(struct px_source *u)
{
	struct px_server *s = u->s;
	if (s->n_idle > 0) {
		s->n_idle--;
		u->sse = s->idle_sse[s->n_idle];
		u->conv = s->idle_conv[s->n_idle];
		px_sse_reset(u->sse);
		px_chunk_reset(u->conv);
		return;
	}
	/* The converter reads stream chunks (the SSE parser already holds them
	 * to max_event_bytes) and whole non-stream answers (max_response_bytes):
	 * its buffers grow on demand, so the larger cap costs nothing until an
	 * answer needs it. */
	uint64_t conv_cap = s->opts.max_event_bytes > s->opts.max_response_bytes
	                        ? s->opts.max_event_bytes
	                        : s->opts.max_response_bytes;
	u->sse = px_sse_new(PX_SSE_MODE_STREAM, (size_t)s->opts.max_event_bytes);
	u->conv = px_chunk_new((size_t)conv_cap);
}

/* Keeps <u>'s pair for a later answer, or frees it. */
static void parsers_give(struct px_source *u)
{
	struct px_server *s = u->s;
	if (u->sse && u->conv && s->n_idle < PX_IDLE_PARSERS) {
		s->idle_sse[s->n_idle] = u->sse;
		s->idle_conv[s->n_idle] = u->conv;
		s->n_idle++;
	} else {
		px_sse_free(u->sse);
		px_chunk_free(u->conv);
	}
	u->sse = NULL;
	u->conv = NULL;
}

void px_chat_free_idle(struct px_server *s)
{
	while (s->n_idle > 0) {
		s->n_idle--;
		px_sse_free(s->idle_sse[s->n_idle]);
		px_chunk_free(s->idle_conv[s->n_idle]);
	}
}

/* Closes the upstream connection; safe inside its callbacks. */
static void close_upstream(struct px_source *u)
{
	px_upstream_free(u->up);
	u->up = NULL;
}

/* The handler will end the answer with an error (the first one stands).
 * With <raw>, the upstream's own error JSON is relayed as is. */
static void set_error(struct px_source *u, int status, const char *msg, const char *raw,
                      size_t raw_len)
{
	if (u->pending != END_FLUSH)
		return;
	close_upstream(u);
	u->state = US_DONE;
	u->pending = END_ERROR;
	u->err_status = status;
	snprintf(u->err_msg, sizeof(u->err_msg), "%s", msg);
	u->err_raw = false;
	u->err_raw_len = raw_len;
	if (raw && raw != (const char *)evbuffer_pullup(u->body, -1)) {
		evbuffer_drain(u->body, evbuffer_get_length(u->body));
		u->err_raw = evbuffer_add(u->body, raw, raw_len) == 0;
	} else if (raw) {
		u->err_raw = true; /* already there (an error body) */
	}
}

static void set_end(struct px_source *u)
{
	if (u->pending != END_FLUSH)
		return;
	close_upstream(u);
	u->state = US_DONE;
	u->pending = END_END;
}

/* The last callback of every handler (source.h): <u> may be gone after it. */
static void settle(struct px_source *u, bool progress)
{
	struct px_source_end fin = {NULL, -1, -1, -1};
	switch (u->pending) {
	case END_END:
		u->cbs->end(u->ctx, &fin);
		return;
	case END_ERROR: {
		const char *raw = u->err_raw ? (const char *)evbuffer_pullup(u->body, -1) : NULL;
		u->cbs->error(u->ctx, u->err_status, u->err_msg, raw, raw ? u->err_raw_len : 0);
		return;
	}
	default:
		u->cbs->flush(u->ctx, progress);
	}
}

/* ---- one SSE event ---- */

/* The answer completed ([DONE], or the connection's end after a finish
 * reason): calls still open are closed in a unit of their own, whose guards
 * may still trip (loopwarden-audit does the same at the end of a
 * recording); then the answer ends. */
static void complete(struct px_source *u)
{
	enum px_chunk_status st = px_answer_chunk_end(u->answer, u->conv);
	(void)st; /* only PX_CHUNK_ESTOPPED: a trip, which the verdict says */
	if (u->cbs->unit(u->ctx, NULL, 0) != 0) {
		u->state = US_DONE; /* the glue cut or failed the answer */
		return;
	}
	set_end(u);
}

static int on_sse(const struct px_sse_event *ev, void *arg)
{
	struct px_source *u = arg;
	if (u->state != US_STREAM)
		return 1;
	u->n_events++;
	if (ev->done) {
		complete(u);
		return 1;
	}
	char err[256];
	enum px_chunk_status st = px_answer_chunk(u->answer, u->conv, ev->data, ev->len, err,
	                                          sizeof(err));
	if (px_answer_verdict(u->answer) == PX_VERDICT_TRIP) {
		(void)u->cbs->unit(u->ctx, ev->data, ev->len); /* the glue cuts the answer */
		u->state = US_DONE;
		return 1;
	}
	if (ev->truncated && st != PX_CHUNK_OK && st != PX_CHUNK_EUPSTREAM && st != PX_CHUNK_ENOMEM) {
		/* The connection ended inside this event (px_sse_finish flushed
		 * what had come): not a bad chunk but an upstream that closed or
		 * reset before the answer finished, which the caller (up_end,
		 * up_error) reports as such. */
		return 1;
	}
	if (st == PX_CHUNK_ENOMEM) {
		set_error(u, 500, "loopwarden ran out of memory reading the upstream's answer", NULL, 0);
		return 1;
	}
	if (st == PX_CHUNK_EUPSTREAM) {
		/* The upstream reports a failure inside the stream: relayed as is. */
		px_metrics_upstream_error(PX_UPE_STREAM);
		set_error(u, 502, err, ev->data, ev->len);
		return 1;
	}
	if (st != PX_CHUNK_OK) {
		px_metrics_upstream_error(PX_UPE_PROTOCOL);
		char msg[400];
		snprintf(msg, sizeof(msg), "the upstream sent an invalid chunk (event %" PRIu64 "): %s",
		         ev->number, err);
		set_error(u, 502, msg, NULL, 0);
		return 1;
	}
	if (u->cbs->unit(u->ctx, ev->data, ev->len) != 0) {
		u->state = US_DONE;
		return 1;
	}
	return 0;
}

/* ---- an error body ---- */

/* Reading an upstream's error body: is it one JSON object with a top-level
 * "error" key (an OpenAI-style error, relayed as is)? yajl's callback
 * parser builds nothing and we stop past ERROR_JSON_DEPTH levels, so a body
 * of `[[[[…` is neither a deep recursion nor a tree of 64 K nodes: it is
 * text, quoted in our own error. yajl also checks the strings are UTF-8. */
struct err_scan {
	int depth;
	bool object;    /* the top-level value is an object */
	bool has_error; /* … with an "error" key */
};

static int es_scalar(void *ctx)
{
	(void)ctx;
	return 1;
}
static int es_bool(void *ctx, int v)
{
	(void)v;
	return es_scalar(ctx);
}
static int es_number(void *ctx, const char *v, size_t n)
{
	(void)v;
	(void)n;
	return es_scalar(ctx);
}
static int es_string(void *ctx, const unsigned char *v, size_t n)
{
	(void)v;
	(void)n;
	return es_scalar(ctx);
}
static int es_open(struct err_scan *e, bool object)
{
	if (e->depth == 0)
		e->object = object;
	return ++e->depth <= ERROR_JSON_DEPTH;
}
static int es_start_map(void *ctx)
{
	return es_open(ctx, true);
}
static int es_start_array(void *ctx)
{
	return es_open(ctx, false);
}
static int es_end(void *ctx)
{
	((struct err_scan *)ctx)->depth--;
	return 1;
}
static int es_key(void *ctx, const unsigned char *k, size_t n)
{
	struct err_scan *e = ctx;
	if (e->depth == 1 && n == 5 && memcmp(k, "error", 5) == 0)
		e->has_error = true;
	return 1;
}

static bool is_json_error(const char *b, size_t n)
{
	static const yajl_callbacks cbs = {
		.yajl_null = es_scalar, .yajl_boolean = es_bool, .yajl_number = es_number,
		.yajl_string = es_string, .yajl_start_map = es_start_map, .yajl_map_key = es_key,
		.yajl_end_map = es_end, .yajl_start_array = es_start_array, .yajl_end_array = es_end,
	};
	struct err_scan e = {0, false, false};
	yajl_handle h = yajl_alloc(&cbs, NULL, &e);
	if (!h)
		return false;
	bool ok = yajl_parse(h, (const unsigned char *)b, n) == yajl_status_ok &&
	          yajl_complete_parse(h) == yajl_status_ok;
	yajl_free(h);
	return ok && e.object && e.has_error;
}

/* The upstream answered 4xx/5xx: its body becomes the error. */
static void error_body(struct px_source *u)
{
	size_t n = evbuffer_get_length(u->body);
	const char *b = n ? (const char *)evbuffer_pullup(u->body, -1) : "";
	char msg[512];
	/* A JSON body with a top-level "error" is already OpenAI-style: keep it
	 * (a body cut at ERROR_BODY_MAX is not whole JSON, hence text). */
	bool json_error = n && n < ERROR_BODY_MAX && is_json_error(b, n);
	int status = u->status >= 400 ? u->status : 502;
	if (json_error) {
		snprintf(msg, sizeof(msg), "upstream returned HTTP %d", u->status);
		set_error(u, status, msg, b, n);
		return;
	}
	/* Quoted: at most ERROR_TEXT_MAX bytes, whole characters, invalid
	 * bytes replaced. */
	char text[ERROR_TEXT_MAX + 1];
	size_t k = gd_utf8_sanitize(b, n, text, ERROR_TEXT_MAX, NULL);
	text[k] = '\0';
	snprintf(msg, sizeof(msg), "upstream returned HTTP %d: %s", u->status, text);
	set_error(u, status, msg, NULL, 0);
}

/* The non-stream answer is complete: its events go to the core as one
 * unit, and the glue gets the body (healthy: relayed unchanged; tripped:
 * cut). */
static void nonstream_done(struct px_source *u)
{
	size_t n = evbuffer_get_length(u->body);
	evbuffer_add(u->body, "", 1); /* NUL-terminated for px_emit_truncated_body */
	const char *b = (const char *)evbuffer_pullup(u->body, -1);
	char err[256];
	enum px_chunk_status st = px_answer_body(u->answer, u->conv, b, n, err, sizeof(err));
	if (px_answer_verdict(u->answer) == PX_VERDICT_TRIP || st == PX_CHUNK_OK) {
		close_upstream(u);
		u->state = US_DONE;
		struct px_source_end fin = {NULL, -1, -1, -1};
		u->cbs->body(u->ctx, b, n, &fin);
		return;
	}
	if (st == PX_CHUNK_ENOMEM) {
		set_error(u, 500, "loopwarden ran out of memory reading the upstream's answer", NULL, 0);
	} else if (st == PX_CHUNK_EUPSTREAM) {
		px_metrics_upstream_error(PX_UPE_STREAM);
		set_error(u, 502, err, b, n);
	} else {
		px_metrics_upstream_error(PX_UPE_PROTOCOL);
		char msg[400];
		snprintf(msg, sizeof(msg), "the upstream sent an invalid answer: %s", err);
		set_error(u, 502, msg, NULL, 0);
	}
	settle(u, false);
}

/* ---- upstream callbacks (proxy/upstream.h) ---- */

static void up_head(void *arg, int status, const char *ctype)
{
	(void)ctype;
	struct px_source *u = arg;
	u->status = status;
	if (status != 200) {
		px_metrics_upstream_error(PX_UPE_STATUS);
		u->state = US_COLLECT;
		return;
	}
	u->state = u->stream ? US_STREAM : US_COLLECT;
	u->cbs->begin(u->ctx);
}

static void up_body(void *arg, const char *data, size_t len)
{
	struct px_source *u = arg;
	u->pending = END_FLUSH;
	if (u->status == 200)
		px_record_write(u->rec, data, len);
	if (u->state == US_STREAM) {
		char err[256];
		uint64_t t0 = px_now_us(), n0 = u->n_events;
		enum px_sse_status st = px_sse_feed(u->sse, data, len, on_sse, u, err, sizeof(err));
		if (st == PX_SSE_ETOOBIG && u->state == US_STREAM) {
			px_metrics_upstream_error(PX_UPE_PROTOCOL);
			char msg[400];
			snprintf(msg, sizeof(msg), "the upstream sent an event larger than proxy.max_event_bytes: %s", err);
			set_error(u, 502, msg, NULL, 0);
		} else if (st != PX_SSE_OK && st != PX_SSE_ESTOPPED && u->state == US_STREAM) {
			char msg[400];
			snprintf(msg, sizeof(msg), "loopwarden could not read the upstream's events: %s", err);
			set_error(u, 500, msg, NULL, 0);
		}
		uint64_t k = u->n_events - n0;
		if (k > 0) {
			double us = (double)(px_now_us() - t0) / (double)k;
			for (uint64_t i = 0; i < k; i++)
				px_metrics_observe(PX_H_CHUNK_US, us);
		}
		settle(u, false);
		return;
	}
	if (u->state == US_COLLECT) {
		uint64_t cap = u->status == 200 ? u->s->opts.max_response_bytes : ERROR_BODY_MAX;
		size_t have = evbuffer_get_length(u->body);
		if (have + len > cap) {
			if (u->status == 200) {
				set_error(u, 502, "the upstream's answer exceeds proxy.max_response_bytes", NULL, 0);
			} else {
				evbuffer_add(u->body, data, (size_t)(cap - have));
				error_body(u);
			}
			settle(u, false);
			return;
		}
		evbuffer_add(u->body, data, len);
		settle(u, true);
	}
}

static void up_end(void *arg)
{
	struct px_source *u = arg;
	u->pending = END_FLUSH;
	close_upstream(u);
	if (u->state == US_STREAM) {
		char err[256];
		enum px_sse_status st = px_sse_finish(u->sse, on_sse, u, err, sizeof(err));
		(void)st;
		if (u->state == US_STREAM) {
			struct px_chunk_info info;
			px_chunk_info(u->conv, &info);
			if (info.finished) {
				/* Some servers omit [DONE]: the answer did finish. */
				complete(u);
			} else {
				px_metrics_upstream_error(u->n_events ? PX_UPE_RESET : PX_UPE_PROTOCOL);
				set_error(u, 502, u->n_events
				                      ? "the upstream ended the stream before the answer finished"
				                      : "the upstream sent no server-sent events (not an SSE stream)",
				          NULL, 0);
			}
		}
	} else if (u->state == US_COLLECT) {
		if (u->status != 200)
			error_body(u);
		else {
			nonstream_done(u);
			return;
		}
	}
	settle(u, false);
}

static void up_error(void *arg, enum px_up_error e, const char *detail)
{
	struct px_source *u = arg;
	u->pending = END_FLUSH;
	close_upstream(u);
	char msg[512];
	if (u->state == US_CONNECTING) {
		px_metrics_upstream_error(e == PX_UP_CONNECT ? PX_UPE_CONNECT : PX_UPE_PROTOCOL);
		snprintf(msg, sizeof(msg), "%s: %s", px_up_strerror(e), detail);
		set_error(u, 502, msg, NULL, 0);
	} else if (u->state == US_STREAM || u->state == US_COLLECT) {
		if (u->state == US_STREAM) {
			char err[256];
			enum px_sse_status st = px_sse_finish(u->sse, on_sse, u, err, sizeof(err));
			(void)st;
		}
		if (u->state != US_DONE) {
			px_metrics_upstream_error(e == PX_UP_PROTOCOL ? PX_UPE_PROTOCOL : PX_UPE_RESET);
			snprintf(msg, sizeof(msg), "%s: %s", px_up_strerror(e), detail);
			set_error(u, 502, msg, NULL, 0);
		}
	}
	settle(u, false);
}

/* ---- the operations ---- */

static void up_free(struct px_source *u)
{
	if (!u)
		return;
	close_upstream(u);
	parsers_give(u);
	if (u->body)
		evbuffer_free(u->body);
	free(u);
}

static struct px_source *up_start(const struct px_source_args *a, const struct px_source_cbs *cbs,
                                  void *ctx, int *status, char *err, size_t errlen)
{
	struct px_server *s = a->s;
	const struct px_route *route = a->route;
	struct px_source *u = calloc(1, sizeof(*u));
	*status = 500;
	if (!u) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	u->s = s;
	u->cbs = cbs;
	u->ctx = ctx;
	u->answer = a->answer;
	u->rec = a->rec;
	u->id = a->id;
	u->stream = a->stream;
	u->state = US_CONNECTING;
	parsers_take(u);
	u->body = evbuffer_new();
	if (!u->sse || !u->conv || !u->body) {
		up_free(u);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	char auth[PX_HTTP_AUTH_MAX + 16];
	if (route->upstream_key[0])
		snprintf(auth, sizeof(auth), "Bearer %s", route->upstream_key);
	else
		snprintf(auth, sizeof(auth), "%s", a->req->authorization);
	static const struct px_upstream_cbs ucbs = {up_head, up_body, up_end, up_error};
	char why[256];
	u->up = px_upstream_start(s->base, route->target, "POST", "/v1/chat/completions", auth,
	                          a->req->body, a->req->body_len, (size_t)s->opts.max_header_bytes,
	                          s->opts.connect_timeout_ms, &ucbs, u, why, sizeof(why));
	if (!u->up) {
		px_metrics_upstream_error(PX_UPE_CONNECT);
		snprintf(err, errlen, "cannot connect to the upstream: %s", why);
		*status = 502;
		up_free(u);
		return NULL;
	}
	return u;
}

static void up_pause(struct px_source *u)
{
	if (u->up)
		px_upstream_pause(u->up, true);
}

static void up_resume(struct px_source *u)
{
	if (u->up)
		px_upstream_pause(u->up, false);
}

static bool up_cancel(struct px_source *u)
{
	close_upstream(u); /* the engine behind it stops when its client goes */
	u->state = US_DONE;
	return true;
}

const struct px_source_ops px_source_upstream = {
	.name = "upstream",
	.start = up_start,
	.pause = up_pause,
	.resume = up_resume,
	.cancel = up_cancel,
	.free = up_free,
};
