/* POST /v1/chat/completions: one state machine per request. It forwards the
 * body unchanged, turns the upstream's answer into guard events, relays
 * healthy chunks byte-for-byte, holds tool-call chunks while the guards ask,
 * and on a trip or stall closes the upstream at once and ends the answer with
 * finish_reason "length" + a "loopwarden" object. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <yajl/yajl_parse.h>

#include "guards/pipeline.h"
#include "guards/utf8.h"
#include "proxy/cutmemo.h"
#include "proxy/emit.h"
#include "proxy/metrics.h"
#include "proxy/record.h"
#include "proxy/server_int.h"
#include "proxy/wire/chunk.h"
#include "proxy/wire/request.h"
#include "proxy/wire/sse.h"

#define ERROR_BODY_MAX (64 * 1024) /* an upstream's 4xx/5xx body kept for the client */
#define ERROR_JSON_DEPTH 64        /* nesting read in an error body before calling it text */
#define ERROR_TEXT_MAX 300         /* bytes of a non-JSON error body quoted in our message */

enum chat_state {
	CH_CONNECTING = 0, /* request sent, no response head yet */
	CH_STREAM,         /* 200 + stream: relaying events */
	CH_COLLECT,        /* non-stream answer or an error body */
	CH_DONE,           /* the client's response has ended (or the client left) */
};

struct px_chat {
	struct px_server *s;
	struct px_chat *prev, *next;
	struct px_http_conn *conn; /* NULL once the response ended or the client left */
	const struct px_http_req *req;
	uint64_t id;
	bool stream;
	enum chat_state state;
	int up_status;
	bool started;     /* the client's response head went out */
	bool first_event; /* an upstream chunk carrying a token (any guard event) arrived */
	bool paused;
	uint64_t n_events;
	struct px_policy_ref *policy; /* held until the answer ends */
	struct gd_history *hist;
	struct gd_pipeline *pipe;
	struct px_upstream *up;
	struct px_sse *sse;
	struct px_chunk *conv;
	struct evbuffer *held; /* framed chunks held back while a tool call is incomplete */
	struct evbuffer *out;  /* what goes to the client next */
	struct evbuffer *body; /* non-stream answer, or an error body */
	struct event *wd_timer;
	struct event *ka_timer;
	struct event *cw_timer; /* client write deadline while the upstream is paused */
	size_t cw_pending;      /* the client's backlog when cw_timer was armed */
	struct px_record *rec;
	struct px_answer_id aid;
	bool have_created;
	bool have_identity;
	uint64_t t_start_us;
	/* per chunk */
	bool chunk_trip;
	uint32_t chunk_tokens;
	uint32_t chunk_events;
	/* non-stream cut points: what was fed before a trip */
	size_t fed_text, fed_reasoning;
	uint32_t calls_done;
	/* issue 12 items 11-13 */
	bool include_usage;          /* stream_options.include_usage */
	int64_t up_prompt, up_completion; /* the upstream's latest usage (-1: none yet) */
	uint64_t tokens_out;         /* tokens of the chunks relayed */
	size_t chunk_reasoning;      /* reasoning bytes of the current chunk fed so far */
	char *cut_text, *cut_reasoning; /* the tripping chunk's part the guards read */
	size_t cut_text_len, cut_reasoning_len;
	struct px_request_span limits[2]; /* the body's token limits (cut memory key) */
	uint32_t n_limits;
};

uint64_t px_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t now_ms(void)
{
	return px_now_us() / 1000u;
}

__attribute__((format(printf, 2, 3)))
static void log_req(const struct px_chat *ch, const char *fmt, ...)
{
	if (ch->s->opts.quiet)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "loopwarden: req %" PRIu64 ": %s\n", ch->id, line);
}

/* An SSE parser and a chunk converter for a new answer: an idle pair
 * (reset) when there is one, else new ones. */
static void parsers_take(struct px_chat *ch)
{
	struct px_server *s = ch->s;
	if (s->n_idle > 0) {
		s->n_idle--;
		ch->sse = s->idle_sse[s->n_idle];
		ch->conv = s->idle_conv[s->n_idle];
		px_sse_reset(ch->sse);
		px_chunk_reset(ch->conv);
		return;
	}
	/* The converter reads stream chunks (the SSE parser already holds them
	 * to max_event_bytes) and whole non-stream answers (max_response_bytes):
	 * its buffers grow on demand, so the larger cap costs nothing until an
	 * answer needs it. */
	uint64_t conv_cap = s->opts.max_event_bytes > s->opts.max_response_bytes
	                        ? s->opts.max_event_bytes
	                        : s->opts.max_response_bytes;
	ch->sse = px_sse_new(PX_SSE_MODE_STREAM, (size_t)s->opts.max_event_bytes);
	ch->conv = px_chunk_new((size_t)conv_cap);
}

/* Keeps <ch>'s pair for a later answer, or frees it. */
static void parsers_give(struct px_chat *ch)
{
	struct px_server *s = ch->s;
	if (ch->sse && ch->conv && s->n_idle < PX_IDLE_PARSERS) {
		s->idle_sse[s->n_idle] = ch->sse;
		s->idle_conv[s->n_idle] = ch->conv;
		s->n_idle++;
	} else {
		px_sse_free(ch->sse);
		px_chunk_free(ch->conv);
	}
	ch->sse = NULL;
	ch->conv = NULL;
}

void px_chat_free_idle(struct px_server *s)
{
	while (s->n_idle > 0) {
		s->n_idle--;
		px_sse_free(s->idle_sse[s->n_idle]);
		px_chunk_free(s->idle_conv[s->n_idle]);
	}
}

static void chat_free(struct px_chat *ch)
{
	struct px_server *s = ch->s;
	if (ch->prev)
		ch->prev->next = ch->next;
	else
		s->chats = ch->next;
	if (ch->next)
		ch->next->prev = ch->prev;
	s->active_streams--;
	if (ch->conn)
		px_http_conn_watch(ch->conn, NULL, NULL, NULL);
	px_upstream_free(ch->up);
	if (ch->rec)
		px_record_close(ch->rec, NULL, NULL, "unfinished");
	px_metrics_observe(PX_H_DURATION, (double)(px_now_us() - ch->t_start_us) / 1e6);
	if (ch->wd_timer)
		event_free(ch->wd_timer);
	if (ch->ka_timer)
		event_free(ch->ka_timer);
	if (ch->cw_timer)
		event_free(ch->cw_timer);
	gd_pipeline_free(ch->pipe);
	gd_history_free(ch->hist);
	px_policy_release(ch->policy);
	parsers_give(ch);
	if (ch->held)
		evbuffer_free(ch->held);
	if (ch->out)
		evbuffer_free(ch->out);
	if (ch->body)
		evbuffer_free(ch->body);
	free(ch->cut_text);
	free(ch->cut_reasoning);
	free(ch);
}

static void record_end(struct px_chat *ch, const struct gd_trip *trip, const char *error)
{
	if (!ch->rec)
		return;
	px_record_close(ch->rec, trip ? trip->guard : NULL, trip ? trip->detail : NULL, error);
	ch->rec = NULL;
}

static void cancel_upstream(struct px_chat *ch)
{
	px_upstream_free(ch->up);
	ch->up = NULL;
	if (ch->wd_timer)
		event_del(ch->wd_timer);
	if (ch->ka_timer)
		event_del(ch->ka_timer);
	if (ch->cw_timer)
		event_del(ch->cw_timer);
}

static void start_client_stream(struct px_chat *ch)
{
	if (ch->started || !ch->conn)
		return;
	px_http_stream_start(ch->conn, 200, "text/event-stream");
	ch->started = true;
}

static void flush_out(struct px_chat *ch)
{
	if (ch->conn && evbuffer_get_length(ch->out))
		px_http_stream_write_buf(ch->conn, ch->out);
	evbuffer_drain(ch->out, evbuffer_get_length(ch->out));
}

/* Ends the client's streamed response with what is in <out> and [DONE]. */
static void end_stream(struct px_chat *ch)
{
	cancel_upstream(ch);
	if (ch->conn) {
		start_client_stream(ch);
		px_emit_done(ch->out);
		px_http_stream_finish(ch->conn, ch->out);
		ch->conn = NULL;
	}
	ch->state = CH_DONE;
}

/* A whole (non-stream, or not-yet-started stream) response. */
static void reply(struct px_chat *ch, int status, struct evbuffer *body)
{
	cancel_upstream(ch);
	if (ch->conn) {
		size_t n = evbuffer_get_length(body);
		px_http_reply(ch->conn, status, "application/json",
		              (const char *)evbuffer_pullup(body, -1), n, NULL);
		ch->conn = NULL;
	}
	ch->state = CH_DONE;
}

/* A failure: an HTTP status before the stream started, an error event and
 * [DONE] after. <why> may quote upstream bytes (an error body, a chunk's
 * message): it is cut on a character boundary and invalid UTF-8 replaced
 * before it goes into JSON, the log or the recording. */
static void fail_answer(struct px_chat *ch, int status, const char *why)
{
	char msg[512];
	size_t k = gd_utf8_sanitize(why, strlen(why), msg, sizeof(msg) - 1, NULL);
	msg[k] = '\0';
	log_req(ch, "error: %s", msg);
	record_end(ch, NULL, msg);
	if (ch->stream && ch->started) {
		px_emit_error_event(ch->out, status, msg);
		end_stream(ch);
		return;
	}
	evbuffer_drain(ch->out, evbuffer_get_length(ch->out));
	px_emit_error(ch->out, status, msg);
	reply(ch, status, ch->out);
}

/* Remembers the cut for a twin request (proxy/cutmemo.h): the trip and the
 * ends of the text and reasoning as the guards read them, which is what the
 * client got. Not a stall (the engine was slow, not looping), nor a cut
 * after delivered tool calls (see below). */
static void memo_store(struct px_chat *ch, const struct gd_trip *trip)
{
	struct px_server *s = ch->s;
	struct px_cutmemo_key key;
	char *text = NULL, *reasoning = NULL;
	size_t tl = 0, rl = 0;

	if (!s->opts.cut_memo_entries || strcmp(trip->guard, "stall") == 0)
		return;
	/* Tool calls completed before the cut reached the client (and may have
	 * been run): a twin must get them too, and the memory keeps text only;
	 * such a cut is not remembered (the twin goes to the engine). */
	struct gd_stats st;
	gd_pipeline_stats(ch->pipe, &st);
	if (st.tool_calls > (trip->stream == GD_STREAM_TOOLS ? 1u : 0u))
		return;
	px_cutmemo_key(ch->req->body, ch->req->body_len, ch->limits, ch->n_limits,
	               ch->req->authorization, ch->policy->generation, &key);
	text = malloc(PX_CUTMEMO_TEXT_MAX);
	reasoning = malloc(PX_CUTMEMO_TEXT_MAX);
	if (text && reasoning) {
		tl = gd_pipeline_tail(ch->pipe, GD_STREAM_TEXT, text, PX_CUTMEMO_TEXT_MAX);
		rl = gd_pipeline_tail(ch->pipe, GD_STREAM_REASONING, reasoning, PX_CUTMEMO_TEXT_MAX);
		uint64_t ev0 = px_cutmemo_evictions(s->cutmemo);
		if (px_cutmemo_put(s->cutmemo, &key, now_ms(), trip, text, tl, reasoning, rl) == 0) {
			px_metrics_inc(PX_C_CUT_MEMO_STORES, 1);
			px_metrics_inc(PX_C_CUT_MEMO_EVICTIONS, px_cutmemo_evictions(s->cutmemo) - ev0);
		}
	}
	free(text);
	free(reasoning);
}

static void trip_answer(struct px_chat *ch, const struct gd_trip *trip)
{
	cancel_upstream(ch); /* first: the engine stops generating now */
	px_metrics_trip(trip->guard);
	log_req(ch, "trip: guard %s: %s", trip->guard, trip->detail);
	record_end(ch, trip, NULL);
	memo_store(ch, trip);
	/* The tripping chunk's part goes out only when nothing was held back
	 * before it: after dropped chunks it would not continue the text. */
	bool dropped = evbuffer_get_length(ch->held) > 0;
	evbuffer_drain(ch->held, evbuffer_get_length(ch->held));
	struct px_usage usage;
	px_usage_for_cut(&usage, ch->up_prompt, ch->up_completion, ch->tokens_out);
	const char *finish = px_cut_finish_name(ch->s->opts.cut_finish);
	if (ch->stream) {
		struct px_cut_stream c = {
			finish, dropped ? NULL : ch->cut_text, dropped ? 0 : ch->cut_text_len,
			dropped ? NULL : ch->cut_reasoning, dropped ? 0 : ch->cut_reasoning_len,
			ch->include_usage ? &usage : NULL,
		};
		start_client_stream(ch);
		px_emit_cut_stream(ch->out, &ch->aid, trip, &c);
		end_stream(ch);
		return;
	}
	evbuffer_drain(ch->out, evbuffer_get_length(ch->out));
	px_emit_answer_body(ch->out, &ch->aid, "", 0, NULL, 0, finish, trip, &usage);
	reply(ch, 200, ch->out);
}

/* ---- timers ---- */

static void arm_watchdog(struct px_chat *ch)
{
	uint64_t ms = gd_pipeline_next_deadline_ms(ch->pipe, now_ms());
	if (ms < 1)
		ms = 1;
	if (ms > 3600000)
		ms = 3600000;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	event_add(ch->wd_timer, &tv);
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct px_chat *ch = arg;
	if (ch->state == CH_DONE)
		return;
	if (gd_pipeline_tick(ch->pipe, now_ms()) == GD_TRIP && gd_pipeline_trip(ch->pipe)) {
		struct gd_trip trip = *gd_pipeline_trip(ch->pipe);
		trip_answer(ch, &trip);
	} else {
		arm_watchdog(ch);
	}
	if (ch->state == CH_DONE)
		chat_free(ch);
}

static void arm_keepalive(struct px_chat *ch)
{
	uint64_t ms = ch->s->opts.keepalive_ms;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	event_add(ch->ka_timer, &tv);
}

static void keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct px_chat *ch = arg;
	if (ch->state == CH_DONE || ch->first_event || !ch->conn)
		return;
	start_client_stream(ch);
	evbuffer_add(ch->out, ": keep-alive\n\n", 14);
	flush_out(ch);
	arm_keepalive(ch);
}

/* ---- guard events ---- */

/* A copy of <s, n> in *<out> (NULL when empty or out of memory: the part
 * is then not delivered, the cut still is). */
static void keep_part(char **out, size_t *outlen, const char *s, size_t n)
{
	free(*out);
	*out = n ? malloc(n) : NULL;
	*outlen = *out ? n : 0;
	if (*out)
		memcpy(*out, s, n);
}

/* The tripping chunk's part the guards read (issue 12 item 11): the prefix
 * of the tripping text or reasoning event up to the byte that tripped
 * (gd_trip.event_used), and reasoning the same chunk carried before a text
 * event (a chunk's events come reasoning first; its bytes are gone, the
 * pipeline's tail still has them). The client gets it before the final
 * chunk, so what it holds is what the guards tripped on: sent back to be
 * continued, the history check recognises it. */
static void cut_part(struct px_chat *ch, const struct gd_event *ev)
{
	const struct gd_trip *t = gd_pipeline_trip(ch->pipe);
	size_t used = t && t->event_used < ev->len ? (size_t)t->event_used : ev->len;

	if (ev->type == GD_EV_TEXT) {
		keep_part(&ch->cut_text, &ch->cut_text_len, ev->data, used);
		ch->fed_text += used;
		if (ch->chunk_reasoning) {
			char *r = malloc(ch->chunk_reasoning);
			size_t n = r ? gd_pipeline_tail(ch->pipe, GD_STREAM_REASONING, r,
			                                 ch->chunk_reasoning) : 0;
			keep_part(&ch->cut_reasoning, &ch->cut_reasoning_len, r, n);
			free(r);
		}
	} else if (ev->type == GD_EV_REASONING) {
		keep_part(&ch->cut_reasoning, &ch->cut_reasoning_len, ev->data, used);
		ch->fed_reasoning += used;
	}
}

static int on_gd_event(const struct gd_event *ev, void *arg)
{
	struct px_chat *ch = arg;
	/* Token counts are bookkeeping, not progress: an upstream sending only
	 * usage chunks is as silent as one sending nothing. */
	if (ev->type != GD_EV_USAGE)
		ch->chunk_events++;
	else {
		if (ev->prompt_tokens >= 0)
			ch->up_prompt = ev->prompt_tokens;
		if (ev->completion_tokens >= 0)
			ch->up_completion = ev->completion_tokens;
	}
	if (gd_pipeline_feed(ch->pipe, ev) == GD_TRIP) {
		ch->chunk_trip = true;
		cut_part(ch, ev);
		return 1;
	}
	switch (ev->type) {
	case GD_EV_TEXT:
		ch->fed_text += ev->len;
		ch->chunk_tokens++;
		break;
	case GD_EV_REASONING:
		ch->fed_reasoning += ev->len;
		ch->chunk_reasoning += ev->len;
		ch->chunk_tokens++;
		break;
	case GD_EV_TOOL_ARGS:
		ch->chunk_tokens++;
		break;
	case GD_EV_TOOL_END:
		ch->calls_done++;
		break;
	default:
		break;
	}
	return 0;
}

/* "created" of the answer, from its first chunk (same on every chunk). */
static void learn_identity(struct px_chat *ch, const char *json, size_t len)
{
	if (ch->have_identity)
		return;
	struct px_chunk_info info;
	px_chunk_info(ch->conv, &info);
	if (info.id[0]) {
		snprintf(ch->aid.id, sizeof(ch->aid.id), "%s", info.id);
		ch->have_identity = true; /* the same on every chunk of the answer */
	}
	if (info.model[0])
		snprintf(ch->aid.model, sizeof(ch->aid.model), "%s", info.model);
	if (ch->have_created)
		return;
	const char *p = memmem(json, len, "\"created\":", 10);
	if (p) {
		char *end;
		long long v = strtoll(p + 10, &end, 10);
		if (end != p + 10)
			ch->aid.created = v;
	}
	ch->have_created = true;
}

static void client_write_cb(evutil_socket_t fd, short what, void *arg);

/* Created on the first pause (most answers never pause). Without a timer
 * (out of memory) the answer keeps the old behaviour: it waits for the
 * client as long as the client stays connected. */
static void arm_client_write(struct px_chat *ch)
{
	uint64_t ms = ch->s->opts.client_write_timeout_ms;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	if (!ch->cw_timer)
		ch->cw_timer = evtimer_new(ch->s->base, client_write_cb, ch);
	if (!ch->cw_timer)
		return;
	ch->cw_pending = px_http_conn_pending(ch->conn);
	event_add(ch->cw_timer, &tv);
}

/* The client of a paused answer: gone unless it took a byte since the timer
 * was armed (proxy.client_write_timeout_ms between two reads, like nginx's
 * send_timeout; a slow reader that keeps reading is served). A client that
 * never reads would otherwise hold its upstream (an engine slot) forever:
 * it is cancelled like a disconnect, and its connection closed. */
static void client_write_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct px_chat *ch = arg;
	if (ch->state == CH_DONE || !ch->paused || !ch->conn)
		return;
	size_t pending = px_http_conn_pending(ch->conn);
	if (pending < ch->cw_pending) {
		arm_client_write(ch);
		return;
	}
	struct px_http_conn *c = ch->conn;
	px_metrics_inc(PX_C_CLIENT_STALLED, 1);
	log_req(ch, "the client took no bytes for %" PRIu64 " ms (proxy.client_write_timeout_ms) with "
	        "%zu waiting: closing it and the upstream", ch->s->opts.client_write_timeout_ms, pending);
	record_end(ch, NULL, "client write timeout");
	px_http_conn_watch(c, NULL, NULL, NULL);
	ch->conn = NULL;
	chat_free(ch); /* closes the upstream connection now */
	px_http_conn_abort(c);
}

static void check_backpressure(struct px_chat *ch)
{
	if (!ch->conn || !ch->up || ch->paused)
		return;
	if (px_http_conn_pending(ch->conn) > ch->s->opts.client_highwater_bytes) {
		ch->paused = true;
		px_upstream_pause(ch->up, true);
		/* The silence that follows is ours, not the upstream's: the stall
		 * watchdog sleeps until the client has drained, and the client's
		 * own deadline runs instead. */
		event_del(ch->wd_timer);
		arm_client_write(ch);
	}
}

/* "data: <json>\n\n" around JSON that came from the upstream and parsed.
 * An event sent as several `data:` lines arrives joined by '\n', and an
 * error body may be pretty-printed: raw line ends in valid JSON can only be
 * whitespace between tokens (inside strings they are escaped), so they are
 * dropped and the event stays one line for the client. Single-line JSON,
 * the usual case, goes out byte for byte. */
static void frame_json(struct evbuffer *out, const char *json, size_t len)
{
	if (!memchr(json, '\n', len) && !memchr(json, '\r', len)) {
		px_emit_frame(out, json, len);
		return;
	}
	evbuffer_add(out, "data: ", 6);
	for (size_t i = 0, run = 0; i <= len; i++) {
		if (i == len || json[i] == '\n' || json[i] == '\r') {
			evbuffer_add(out, json + run, i - run);
			run = i + 1;
		}
	}
	evbuffer_add(out, "\n\n", 2);
}

static int on_sse(const struct px_sse_event *ev, void *arg)
{
	struct px_chat *ch = arg;
	if (ch->state != CH_STREAM)
		return 1;
	uint64_t t0 = px_now_us();
	ch->n_events++;
	if (ev->done) {
		/* The answer is complete: what is still held goes out. */
		evbuffer_add_buffer(ch->out, ch->held);
		record_end(ch, NULL, NULL);
		end_stream(ch);
		return 1;
	}
	ch->chunk_trip = false;
	ch->chunk_tokens = 0;
	ch->chunk_events = 0;
	ch->chunk_reasoning = 0;
	char err[256];
	enum px_chunk_status st = px_chunk_feed(ch->conv, ev->data, ev->len, on_gd_event, ch,
	                                        err, sizeof(err));
	/* Only a chunk that carries an event (text, reasoning, a tool call or
	 * its arguments, a finish) is progress, for the first-token watchdog and
	 * the idle one alike: a role-only chunk (llama.cpp sends one before
	 * prompt processing), an empty delta and a usage-only chunk
	 * (`choices: []` or `null`) carry nothing a client can use, and an
	 * upstream that sends nothing else forever must still be ended. */
	if (ch->chunk_events > 0) {
		if (!ch->first_event) {
			ch->first_event = true;
			px_metrics_observe(PX_H_TTFT, (double)(t0 - ch->t_start_us) / 1e6);
			if (ch->ka_timer)
				event_del(ch->ka_timer);
		}
		gd_pipeline_touch(ch->pipe, t0 / 1000u);
	}
	if (ch->chunk_trip || gd_pipeline_trip(ch->pipe)) {
		struct gd_trip trip = *gd_pipeline_trip(ch->pipe);
		learn_identity(ch, ev->data, ev->len);
		trip_answer(ch, &trip);
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
		fail_answer(ch, 500, "loopwarden ran out of memory reading the upstream's answer");
		return 1;
	}
	if (st == PX_CHUNK_EUPSTREAM) {
		/* The upstream reports a failure inside the stream: relay it as is. */
		px_metrics_upstream_error(PX_UPE_STREAM);
		log_req(ch, "upstream error event: %s", err);
		record_end(ch, NULL, err);
		flush_out(ch);
		frame_json(ch->out, ev->data, ev->len);
		end_stream(ch);
		return 1;
	}
	if (st != PX_CHUNK_OK) {
		px_metrics_upstream_error(PX_UPE_PROTOCOL);
		char msg[400];
		snprintf(msg, sizeof(msg), "the upstream sent an invalid chunk (event %" PRIu64 "): %s",
		         ev->number, err);
		fail_answer(ch, 502, msg);
		return 1;
	}
	learn_identity(ch, ev->data, ev->len);
	px_metrics_inc(PX_C_TOKENS_RELAYED, ch->chunk_tokens);
	ch->tokens_out += ch->chunk_tokens;
	if (gd_pipeline_holding(ch->pipe)) {
		if (evbuffer_get_length(ch->held) + ev->len > ch->s->opts.max_held_bytes) {
			fail_answer(ch, 502, "a tool call exceeds proxy.max_held_bytes while held");
			return 1;
		}
		frame_json(ch->held, ev->data, ev->len);
	} else {
		/* Released calls, then this chunk; up_body writes <out> once
		 * for all the events of one read. */
		evbuffer_add_buffer(ch->out, ch->held);
		frame_json(ch->out, ev->data, ev->len);
		px_metrics_inc(PX_C_CHUNKS_RELAYED, 1);
	}
	return 0;
}

/* ---- upstream callbacks ---- */

static void up_head(void *arg, int status, const char *ctype)
{
	(void)ctype;
	struct px_chat *ch = arg;
	ch->up_status = status;
	if (status != 200) {
		px_metrics_upstream_error(PX_UPE_STATUS);
		ch->state = CH_COLLECT;
		return;
	}
	if (ch->stream) {
		ch->state = CH_STREAM;
		start_client_stream(ch);
		flush_out(ch);
	} else {
		ch->state = CH_COLLECT;
	}
}

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

static void relay_error_body(struct px_chat *ch)
{
	size_t n = evbuffer_get_length(ch->body);
	const char *b = n ? (const char *)evbuffer_pullup(ch->body, -1) : "";
	char msg[512];
	/* A JSON body with a top-level "error" is already OpenAI-style: keep it
	 * (a body cut at ERROR_BODY_MAX is not whole JSON, hence text). */
	bool json_error = n && n < ERROR_BODY_MAX && is_json_error(b, n);
	int status = ch->up_status >= 400 ? ch->up_status : 502;
	snprintf(msg, sizeof(msg), "upstream returned HTTP %d", ch->up_status);
	log_req(ch, "%s", msg);
	record_end(ch, NULL, msg);
	if (!json_error) {
		/* Quoted: at most ERROR_TEXT_MAX bytes, whole characters,
		 * invalid bytes replaced. */
		char text[ERROR_TEXT_MAX + 1];
		size_t k = gd_utf8_sanitize(b, n, text, ERROR_TEXT_MAX, NULL);
		text[k] = '\0';
		snprintf(msg, sizeof(msg), "upstream returned HTTP %d: %s", ch->up_status, text);
	}
	if (ch->stream && ch->started) {
		if (json_error) {
			flush_out(ch);
			frame_json(ch->out, b, n);
		} else {
			px_emit_error_event(ch->out, status, msg);
		}
		end_stream(ch);
		return;
	}
	if (json_error) {
		reply(ch, status, ch->body);
		return;
	}
	evbuffer_drain(ch->out, evbuffer_get_length(ch->out));
	px_emit_error(ch->out, status, msg);
	reply(ch, status, ch->out);
}

/* The non-stream answer is complete: run the guards over it. */
static void finish_nonstream(struct px_chat *ch)
{
	size_t n = evbuffer_get_length(ch->body);
	evbuffer_add(ch->body, "", 1);
	const char *b = (const char *)evbuffer_pullup(ch->body, -1);
	char err[256];
	enum px_chunk_status st = px_chunk_body(ch->conv, b, n, on_gd_event, ch, err, sizeof(err));
	evbuffer_drain(ch->out, evbuffer_get_length(ch->out));
	if (ch->chunk_trip && gd_pipeline_trip(ch->pipe)) {
		struct gd_trip trip = *gd_pipeline_trip(ch->pipe);
		/* The content and reasoning the guards read, up to the byte
		 * that tripped (issue 12 item 11: a continuation of the cut
		 * answer is then recognised by the history check), and the
		 * calls completed before a call tripped. */
		struct px_cut cut = {ch->fed_text, ch->fed_reasoning, ch->calls_done};
		if (trip.stream == GD_STREAM_TOOLS && trip.cut < cut.tool_calls)
			cut.tool_calls = (size_t)trip.cut;
		px_metrics_trip(trip.guard);
		log_req(ch, "trip: guard %s: %s", trip.guard, trip.detail);
		record_end(ch, &trip, NULL);
		memo_store(ch, &trip);
		const char *finish = px_cut_finish_name(ch->s->opts.cut_finish);
		struct px_usage usage;
		px_usage_for_cut(&usage, -1, -1, 0);
		if (px_emit_truncated_body_ex(ch->out, b, n, &cut, &trip, finish, &usage) != 0)
			px_emit_answer_body(ch->out, &ch->aid, "", 0, NULL, 0, finish, &trip, &usage);
		reply(ch, 200, ch->out);
		return;
	}
	if (st == PX_CHUNK_ENOMEM) {
		fail_answer(ch, 500, "loopwarden ran out of memory reading the upstream's answer");
		return;
	}
	if (st == PX_CHUNK_EUPSTREAM) {
		px_metrics_upstream_error(PX_UPE_STREAM);
		record_end(ch, NULL, err);
		evbuffer_drain(ch->body, 1);
		evbuffer_add_buffer(ch->out, ch->body);
		reply(ch, 502, ch->out);
		return;
	}
	if (st != PX_CHUNK_OK) {
		px_metrics_upstream_error(PX_UPE_PROTOCOL);
		char msg[400];
		snprintf(msg, sizeof(msg), "the upstream sent an invalid answer: %s", err);
		fail_answer(ch, 502, msg);
		return;
	}
	record_end(ch, NULL, NULL);
	struct px_chunk_info info;
	px_chunk_info(ch->conv, &info);
	px_metrics_inc(PX_C_TOKENS_RELAYED, ch->chunk_tokens);
	/* Healthy: the upstream's bytes, unchanged. */
	evbuffer_add_reference(ch->out, b, n, NULL, NULL);
	reply(ch, 200, ch->out);
}

static void up_body(void *arg, const char *data, size_t len)
{
	struct px_chat *ch = arg;
	if (ch->up_status == 200)
		px_record_write(ch->rec, data, len);
	if (ch->state == CH_STREAM) {
		char err[256];
		uint64_t t0 = px_now_us(), n0 = ch->n_events;
		enum px_sse_status st = px_sse_feed(ch->sse, data, len, on_sse, ch, err, sizeof(err));
		if (st == PX_SSE_ETOOBIG && ch->state == CH_STREAM) {
			px_metrics_upstream_error(PX_UPE_PROTOCOL);
			char msg[400];
			snprintf(msg, sizeof(msg), "the upstream sent an event larger than proxy.max_event_bytes: %s", err);
			fail_answer(ch, 502, msg);
		} else if (st != PX_SSE_OK && st != PX_SSE_ESTOPPED && ch->state == CH_STREAM) {
			char msg[400];
			snprintf(msg, sizeof(msg), "loopwarden could not read the upstream's events: %s", err);
			fail_answer(ch, 500, msg);
		}
		uint64_t k = ch->n_events - n0;
		if (ch->state == CH_STREAM && k > 0) {
			/* One write for every event this read brought; the
			 * bookkeeping waits until the bytes are on their way. */
			flush_out(ch);
			arm_watchdog(ch);
			check_backpressure(ch);
			double us = (double)(px_now_us() - t0) / (double)k;
			for (uint64_t i = 0; i < k; i++)
				px_metrics_observe(PX_H_CHUNK_US, us);
		}
	} else if (ch->state == CH_COLLECT) {
		uint64_t cap = ch->up_status == 200 ? ch->s->opts.max_response_bytes : ERROR_BODY_MAX;
		size_t have = evbuffer_get_length(ch->body);
		if (have + len > cap) {
			if (ch->up_status == 200) {
				fail_answer(ch, 502, "the upstream's answer exceeds proxy.max_response_bytes");
			} else {
				evbuffer_add(ch->body, data, (size_t)(cap - have));
				relay_error_body(ch);
			}
		} else {
			evbuffer_add(ch->body, data, len);
			gd_pipeline_touch(ch->pipe, now_ms());
			arm_watchdog(ch);
		}
	}
	if (ch->state == CH_DONE)
		chat_free(ch);
}

static void up_end(void *arg)
{
	struct px_chat *ch = arg;
	px_upstream_free(ch->up);
	ch->up = NULL;
	if (ch->state == CH_STREAM) {
		char err[256];
		enum px_sse_status st = px_sse_finish(ch->sse, on_sse, ch, err, sizeof(err));
		(void)st;
		if (ch->state == CH_STREAM) {
			struct px_chunk_info info;
			px_chunk_info(ch->conv, &info);
			if (info.finished) {
				/* Some servers omit [DONE]: the answer did finish. */
				evbuffer_add_buffer(ch->out, ch->held);
				record_end(ch, NULL, NULL);
				end_stream(ch);
			} else {
				px_metrics_upstream_error(ch->n_events ? PX_UPE_RESET : PX_UPE_PROTOCOL);
				fail_answer(ch, 502, ch->n_events
				                         ? "the upstream ended the stream before the answer finished"
				                         : "the upstream sent no server-sent events (not an SSE stream)");
			}
		}
	} else if (ch->state == CH_COLLECT) {
		if (ch->up_status != 200)
			relay_error_body(ch);
		else
			finish_nonstream(ch);
	}
	if (ch->state == CH_DONE)
		chat_free(ch);
}

static void up_error(void *arg, enum px_up_error e, const char *detail)
{
	struct px_chat *ch = arg;
	px_upstream_free(ch->up);
	ch->up = NULL;
	char msg[512];
	if (ch->state == CH_CONNECTING) {
		px_metrics_upstream_error(e == PX_UP_CONNECT ? PX_UPE_CONNECT : PX_UPE_PROTOCOL);
		snprintf(msg, sizeof(msg), "%s: %s", px_up_strerror(e), detail);
		fail_answer(ch, 502, msg);
	} else if (ch->state == CH_STREAM || ch->state == CH_COLLECT) {
		if (ch->state == CH_STREAM) {
			char err[256];
			enum px_sse_status st = px_sse_finish(ch->sse, on_sse, ch, err, sizeof(err));
			(void)st;
		}
		if (ch->state != CH_DONE) {
			px_metrics_upstream_error(e == PX_UP_PROTOCOL ? PX_UPE_PROTOCOL : PX_UPE_RESET);
			snprintf(msg, sizeof(msg), "%s: %s", px_up_strerror(e), detail);
			fail_answer(ch, 502, msg);
		}
	}
	if (ch->state == CH_DONE)
		chat_free(ch);
}

/* ---- client callbacks ---- */

static void client_gone(struct px_http_conn *c, void *arg)
{
	(void)c;
	struct px_chat *ch = arg;
	ch->conn = NULL;
	px_metrics_inc(PX_C_CLIENT_GONE, 1);
	log_req(ch, "client disconnected");
	record_end(ch, NULL, "client disconnected");
	chat_free(ch); /* closes the upstream connection now */
}

static void client_drained(struct px_http_conn *c, void *arg)
{
	(void)c;
	struct px_chat *ch = arg;
	if (ch->cw_timer)
		event_del(ch->cw_timer);
	if (ch->paused && ch->up) {
		ch->paused = false;
		gd_pipeline_touch(ch->pipe, now_ms());
		arm_watchdog(ch);
		px_upstream_pause(ch->up, false);
		/* Resuming may deliver buffered events and end the answer. */
		if (ch->state == CH_DONE)
			chat_free(ch);
	}
}

/* ---- the request ---- */

static void simple_error(struct px_http_conn *c, int status, const char *msg)
{
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		px_http_reply(c, 500, "application/json", "{}", 2, NULL);
		return;
	}
	px_emit_error(b, status, msg);
	size_t n = evbuffer_get_length(b);
	px_http_reply(c, status, "application/json", (const char *)evbuffer_pullup(b, -1), n, NULL);
	evbuffer_free(b);
	if (status >= 400 && status < 500)
		px_metrics_inc(PX_C_BAD_REQUESTS, 1);
}

/* What a request answered without the upstream looks like. */
struct own_answer {
	bool stream;
	bool include_usage;
	const char *model;
	const char *content, *reasoning;
	size_t content_len, reasoning_len;
	const char *finish;
	const char *by;         /* "history" or "cut_memo": the log, the recording */
	const char *usage_note;
};

/* Answers <req> with <a> (no upstream): the stream or body, its usage (zeros,
 * marked so), and its recording (issue 12 item 13). */
static void own_answer(struct px_server *s, struct px_http_conn *c, const struct px_http_req *req,
                       const struct own_answer *a, const struct gd_trip *trip)
{
	struct px_answer_id aid = {{0}, {0}, (int64_t)time(NULL)};
	struct px_usage usage = {0, 0, a->usage_note};
	char err[256];

	snprintf(aid.id, sizeof(aid.id), "chatcmpl-loopwarden-%" PRIu64, req->id);
	snprintf(aid.model, sizeof(aid.model), "%s", a->model);
	px_metrics_trip(trip->guard);
	if (!s->opts.quiet)
		fprintf(stderr, "loopwarden: req %" PRIu64 ": %s: guard %s: %s\n", req->id,
		        strcmp(a->by, "history") == 0 ? "history check" : "a cut remembered",
		        trip->guard, trip->detail);
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		simple_error(c, 500, "out of memory");
		return;
	}
	if (a->stream)
		px_emit_answer_stream(b, &aid, a->content, a->content_len, a->reasoning,
		                      a->reasoning_len, a->finish, trip,
		                      a->include_usage ? &usage : NULL);
	else
		px_emit_answer_body(b, &aid, a->content, a->content_len, a->reasoning,
		                    a->reasoning_len, a->finish, trip, &usage);
	size_t n = evbuffer_get_length(b);
	const char *bytes = (const char *)evbuffer_pullup(b, -1);
	if (s->opts.record_dir[0] &&
	    px_record_answered(s->opts.record_dir, req->id, a->stream, req->body, req->body_len,
	                       bytes, n, trip->guard, trip->detail, a->by, err, sizeof(err)) != 0 &&
	    !s->record_warned) {
		fprintf(stderr, "loopwarden: recording disabled for this request: %s\n", err);
		s->record_warned = true;
	}
	if (a->stream) {
		px_http_stream_start(c, 200, "text/event-stream");
		px_http_stream_finish(c, b);
	} else {
		px_http_reply(c, 200, "application/json", bytes, n, NULL);
	}
	evbuffer_free(b);
}

/* The history already proves a loop: answer without calling the upstream. */
static void history_answer(struct px_server *s, struct px_http_conn *c,
                           const struct px_http_req *req, bool stream, bool include_usage,
                           const char *model, const struct gd_trip *trip)
{
	char text[512];
	bool as_trip = s->opts.history_action == PX_HISTORY_TRIP;
	px_notice_text(text, sizeof(text), trip);
	px_metrics_inc(PX_C_HISTORY_STOPS, 1);
	struct own_answer a = {
		stream, include_usage, model, as_trip ? "" : text, NULL,
		as_trip ? 0 : strlen(text), 0,
		as_trip ? px_cut_finish_name(s->opts.cut_finish) : "stop", "history",
		"not sent to the model (the history check answered): zeros",
	};
	own_answer(s, c, req, &a, trip);
}

/* A request identical to one cut a moment ago (issue 12 item 12): answered
 * as the cut was — the same guard and detail, the end of the text the client
 * got — without the upstream. */
static void memo_answer(struct px_server *s, struct px_http_conn *c,
                        const struct px_http_req *req, bool stream, bool include_usage,
                        const char *model, const struct px_cutmemo_answer *m)
{
	struct gd_trip trip = m->trip;
	px_metrics_inc(PX_C_CUT_MEMO_HITS, 1);
	struct own_answer a = {
		stream, include_usage, model, m->text, m->reasoning, m->text_len, m->reasoning_len,
		px_cut_finish_name(s->opts.cut_finish), "cut_memo",
		"not sent to the model (the same request was cut a moment ago): zeros",
	};
	own_answer(s, c, req, &a, &trip);
}

void px_chat_handle(struct px_server *s, struct px_http_conn *c, const struct px_http_req *req)
{
	char err[256];
	if (!s->target) {
		simple_error(c, 503, "loopwarden has no upstream: start it with --upstream URL");
		return;
	}
	/* The one parse of the body (proxy/wire/request.h): every limit is
	 * checked while parsing, and the history is built from its result. */
	struct px_request *preq = NULL;
	enum px_request_status rst = px_request_read(req->body, req->body_len, &preq, err, sizeof(err));
	if (rst != PX_REQUEST_OK) {
		simple_error(c, rst == PX_REQUEST_ENOMEM ? 500 : 400, err);
		return;
	}
	if (preq->n_msgs == 0) {
		px_request_free(preq);
		simple_error(c, 400, "messages must not be empty");
		return;
	}
	bool stream = preq->stream;
	char model[128] = "";
	if (preq->model.ptr) {
		/* Cut on a character boundary: the model name goes into our JSON. */
		size_t n = gd_utf8_cut(preq->model.ptr, preq->model.len, sizeof(model) - 1);
		memcpy(model, preq->model.ptr, n);
		model[n] = '\0';
	}
	px_metrics_inc(stream ? PX_C_CHAT_STREAM : PX_C_CHAT_NONSTREAM, 1);
	if (s->active_streams >= s->opts.max_streams) {
		px_request_free(preq);
		simple_error(c, 503, "loopwarden is at proxy.max_streams: retry later");
		return;
	}
	struct px_policy_ref *policy = px_policy_hold(s);
	struct gd_history *hist = gd_history_new(policy->policy, preq->msgs, preq->n_msgs, err, sizeof(err));
	bool include_usage = preq->include_usage;
	struct px_request_span limits[2];
	uint32_t n_limits = preq->n_limits;
	memcpy(limits, preq->limits, sizeof(limits));
	px_request_free(preq); /* the history keeps its own copies */
	if (!hist) {
		px_policy_release(policy);
		char msg[400];
		snprintf(msg, sizeof(msg), "cannot read the conversation: %s", err);
		simple_error(c, 400, msg);
		return;
	}
	struct gd_trip htrip;
	memset(&htrip, 0, sizeof(htrip));
	if (s->opts.history_action != PX_HISTORY_OFF && gd_history_check(hist, &htrip)) {
		history_answer(s, c, req, stream, include_usage, model, &htrip);
		gd_history_free(hist);
		px_policy_release(policy);
		return;
	}
	/* The same request as one cut a moment ago? Hashed only when a cut
	 * from a body of its length is remembered. */
	uint64_t now = now_ms();
	if (px_cutmemo_may_hold(s->cutmemo, px_cutmemo_hashed_len(req->body_len, limits, n_limits),
	                        now)) {
		struct px_cutmemo_key key;
		px_cutmemo_key(req->body, req->body_len, limits, n_limits, req->authorization,
		               policy->generation, &key);
		const struct px_cutmemo_answer *m = px_cutmemo_get(s->cutmemo, &key, now);
		if (m) {
			memo_answer(s, c, req, stream, include_usage, model, m);
			gd_history_free(hist);
			px_policy_release(policy);
			return;
		}
	}

	struct px_chat *ch = calloc(1, sizeof(*ch));
	if (!ch) {
		gd_history_free(hist);
		px_policy_release(policy);
		simple_error(c, 500, "out of memory");
		return;
	}
	ch->s = s;
	ch->conn = c;
	ch->req = req;
	ch->id = req->id;
	ch->stream = stream;
	ch->hist = hist;
	ch->policy = policy;
	ch->t_start_us = px_now_us();
	snprintf(ch->aid.id, sizeof(ch->aid.id), "chatcmpl-loopwarden-%" PRIu64, ch->id);
	snprintf(ch->aid.model, sizeof(ch->aid.model), "%s", model);
	ch->aid.created = (int64_t)time(NULL);
	ch->include_usage = include_usage;
	ch->up_prompt = ch->up_completion = -1;
	ch->n_limits = n_limits;
	memcpy(ch->limits, limits, sizeof(limits));
	ch->next = s->chats;
	if (s->chats)
		s->chats->prev = ch;
	s->chats = ch;
	s->active_streams++;
	ch->pipe = gd_pipeline_new(policy->policy, hist);
	parsers_take(ch);
	ch->held = evbuffer_new();
	ch->out = evbuffer_new();
	ch->body = evbuffer_new();
	ch->wd_timer = evtimer_new(s->base, watchdog_cb, ch);
	ch->ka_timer = stream ? evtimer_new(s->base, keepalive_cb, ch) : NULL;
	if (!ch->pipe || !ch->sse || !ch->conv || !ch->held || !ch->out || !ch->body ||
	    !ch->wd_timer || (stream && !ch->ka_timer)) {
		ch->conn = NULL;
		chat_free(ch);
		simple_error(c, 500, "out of memory");
		return;
	}
	if (s->opts.record_dir[0]) {
		ch->rec = px_record_open(s->opts.record_dir, ch->id, stream, req->body, req->body_len,
		                         err, sizeof(err));
		if (!ch->rec && !s->record_warned) {
			fprintf(stderr, "loopwarden: recording disabled for this request: %s\n", err);
			s->record_warned = true;
		}
	}
	px_http_conn_watch(c, client_gone, client_drained, ch);
	char auth[PX_HTTP_AUTH_MAX + 16];
	if (s->opts.upstream_key[0])
		snprintf(auth, sizeof(auth), "Bearer %s", s->opts.upstream_key);
	else
		snprintf(auth, sizeof(auth), "%s", req->authorization);
	static const struct px_upstream_cbs cbs = {up_head, up_body, up_end, up_error};
	ch->up = px_upstream_start(s->base, s->target, "POST", "/v1/chat/completions", auth,
	                           req->body, req->body_len, (size_t)s->opts.max_header_bytes,
	                           s->opts.connect_timeout_ms, &cbs, ch, err, sizeof(err));
	if (!ch->up) {
		char msg[400];
		px_metrics_upstream_error(PX_UPE_CONNECT);
		snprintf(msg, sizeof(msg), "cannot connect to the upstream: %s", err);
		fail_answer(ch, 502, msg);
		chat_free(ch);
		return;
	}
	gd_pipeline_start(ch->pipe, now_ms());
	arm_watchdog(ch);
	if (ch->ka_timer)
		arm_keepalive(ch);
}

void px_chat_backlog(const struct px_server *s, uint64_t *paused, uint64_t *bytes)
{
	*paused = 0;
	*bytes = 0;
	for (const struct px_chat *ch = s->chats; ch; ch = ch->next) {
		if (ch->paused)
			(*paused)++;
		if (ch->conn)
			*bytes += px_http_conn_pending(ch->conn);
		*bytes += evbuffer_get_length(ch->held);
	}
}

void px_chat_cancel_all(struct px_server *s)
{
	while (s->chats) {
		struct px_chat *ch = s->chats;
		cancel_upstream(ch);
		if (ch->conn) {
			px_http_conn_watch(ch->conn, NULL, NULL, NULL);
			if (ch->stream && ch->started) {
				px_emit_error_event(ch->out, 503, "loopwarden is shutting down");
				end_stream(ch);
			} else {
				fail_answer(ch, 503, "loopwarden is shutting down");
			}
		}
		chat_free(ch);
	}
}
