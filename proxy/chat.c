/* POST /v1/chat/completions: the libevent glue around one answer. The body
 * is read once (proxy/wire/request.h) and checked against its own history;
 * a source (proxy/source.h: the upstream or the co-resident engine) turns
 * the answer into guard events for the answer core (proxy/answer.h), and
 * this file does what the core decides: relay a chunk at once, hold a
 * tool-call chunk, or, on a trip or a stall, cancel the source and end the
 * answer with finish_reason "length" + a "loopwarden" object. It also owns
 * the timers (stall watchdog, keep-alives, the slow client's deadline) and
 * back-pressure towards the source. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "guards/pipeline.h"
#include "guards/utf8.h"
#include "proxy/answer.h"
#include "proxy/cutmemo.h"
#include "proxy/emit.h"
#include "proxy/metrics.h"
#include "proxy/record.h"
#include "proxy/server_int.h"
#include "proxy/source.h"
#include "proxy/wire/request.h"

enum chat_state {
	CH_WAITING = 0, /* the source started, the answer has not */
	CH_ANSWER,      /* the answer is coming */
	CH_CUTTING,     /* tripped; waiting for the source's final figures (engine) */
	CH_DONE,        /* the client's response has ended (or the client left) */
};

struct px_chat {
	struct px_server *s;
	struct px_chat *prev, *next;
	struct px_http_conn *conn; /* NULL once the response ended or the client left */
	uint64_t id;
	bool stream;
	enum chat_state state;
	bool started;     /* the client's response head went out */
	bool first_event; /* a unit carrying an event (any guard event) arrived */
	bool paused;      /* the source is paused for a slow client */
	struct px_policy_ref *policy; /* held until the answer ends */
	struct gd_history *hist;
	struct px_answer *answer;
	const struct px_source_ops *ops;
	struct px_source *src;
	struct evbuffer *out;   /* what goes to the client next */
	struct event *wd_timer;
	struct event *ka_timer;
	struct event *cw_timer; /* client write deadline while the source is paused */
	size_t cw_pending;      /* the client's backlog when cw_timer was armed */
	struct px_record *rec;
	uint64_t t_start_us;
	const struct px_http_req *req;    /* the body and Authorization (cut memory key) */
	bool include_usage;               /* stream_options.include_usage */
	bool dropped;                     /* chunks were held back when the answer was cut */
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

void px_log_req(const struct px_server *s, uint64_t id, const char *fmt, ...)
{
	if (s->opts.quiet)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "loopwarden: req %" PRIu64 ": %s\n", id, line);
}

#define log_req(ch, ...) px_log_req((ch)->s, (ch)->id, __VA_ARGS__)

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
	if (ch->ops)
		ch->ops->free(ch->src);
	if (ch->rec)
		px_record_close(ch->rec, NULL, NULL, "unfinished");
	px_metrics_observe(PX_H_DURATION, (double)(px_now_us() - ch->t_start_us) / 1e6);
	if (ch->wd_timer)
		event_free(ch->wd_timer);
	if (ch->ka_timer)
		event_free(ch->ka_timer);
	if (ch->cw_timer)
		event_free(ch->cw_timer);
	px_answer_free(ch->answer);
	gd_history_free(ch->hist);
	px_policy_release(ch->policy);
	if (ch->out)
		evbuffer_free(ch->out);
	free(ch);
}

static void record_end(struct px_chat *ch, const struct gd_trip *trip, const char *error)
{
	if (!ch->rec)
		return;
	px_record_close(ch->rec, trip ? trip->guard : NULL, trip ? trip->detail : NULL, error);
	ch->rec = NULL;
}

static void stop_timers(struct px_chat *ch)
{
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
	stop_timers(ch);
	if (ch->conn) {
		start_client_stream(ch);
		px_emit_done(ch->out);
		px_http_stream_finish(ch->conn, ch->out);
		ch->conn = NULL;
	}
	ch->state = CH_DONE;
}

/* A whole (non-stream, or not-yet-started stream) response. */
static void reply(struct px_chat *ch, int status, const char *body, size_t len)
{
	stop_timers(ch);
	if (ch->conn) {
		px_http_reply(ch->conn, status, "application/json", body, len, NULL);
		ch->conn = NULL;
	}
	ch->state = CH_DONE;
}

static void reply_out(struct px_chat *ch, int status)
{
	size_t n = evbuffer_get_length(ch->out);
	reply(ch, status, n ? (const char *)evbuffer_pullup(ch->out, -1) : "", n);
}

static void evbuffer_put(void *ctx, const char *bytes, size_t n)
{
	evbuffer_add(ctx, bytes, n);
}

/* "data: <json>\n\n" around JSON that came from a source (px_frame_json);
 * single-line JSON, the usual case, goes out byte for byte. */
static void frame_json(struct evbuffer *out, const char *json, size_t len)
{
	if (!memchr(json, '\n', len) && !memchr(json, '\r', len))
		px_emit_frame(out, json, len);
	else
		px_frame_json(json, len, evbuffer_put, out);
}

/* A failure: an HTTP status before the stream started, an error event and
 * [DONE] after. <why> may quote upstream bytes (an error body, a chunk's
 * message): it is cut on a character boundary and invalid UTF-8 replaced
 * before it goes into JSON, the log or the recording. <raw> (may be NULL):
 * the upstream's own OpenAI-style error JSON, sent instead of ours. */
static void fail_answer_raw(struct px_chat *ch, int status, const char *why, const char *raw,
                            size_t raw_len)
{
	char msg[512];
	size_t k = gd_utf8_sanitize(why, strlen(why), msg, sizeof(msg) - 1, NULL);
	msg[k] = '\0';
	log_req(ch, "error: %s", msg);
	record_end(ch, NULL, msg);
	if (ch->stream && ch->started) {
		if (raw)
			frame_json(ch->out, raw, raw_len);
		else
			px_emit_error_event(ch->out, status, msg);
		end_stream(ch);
		return;
	}
	evbuffer_drain(ch->out, evbuffer_get_length(ch->out));
	if (raw) {
		reply(ch, status, raw, raw_len);
		return;
	}
	px_emit_error(ch->out, status, msg);
	reply_out(ch, status);
}

static void fail_answer(struct px_chat *ch, int status, const char *why)
{
	fail_answer_raw(ch, status, why, NULL, 0);
}

/* Remembers the cut for a twin request (proxy/cutmemo.h): the trip and the
 * ends of the text and reasoning as the guards read them, which is what the
 * client got. Not a stall (the engine was slow, not looping), nor a cut
 * after delivered tool calls (see below). */
static void memo_store(struct px_chat *ch, const struct gd_trip *trip)
{
	struct px_server *s = ch->s;
	struct px_cutmemo_key key;
	const struct gd_pipeline *pipe = px_answer_pipeline(ch->answer);
	char *text = NULL, *reasoning = NULL;
	size_t tl = 0, rl = 0;

	if (!s->opts.cut_memo_entries || strcmp(trip->guard, "stall") == 0)
		return;
	/* Tool calls completed before the cut reached the client (and may have
	 * been run): a twin must get them too, and the memory keeps text only;
	 * such a cut is not remembered (the twin goes to the engine). */
	struct gd_stats st;
	gd_pipeline_stats(pipe, &st);
	if (st.tool_calls > (trip->stream == GD_STREAM_TOOLS ? 1u : 0u))
		return;
	px_cutmemo_key(ch->req->body, ch->req->body_len, ch->limits, ch->n_limits,
	               ch->req->authorization, ch->policy->generation, &key);
	text = malloc(PX_CUTMEMO_TEXT_MAX);
	reasoning = malloc(PX_CUTMEMO_TEXT_MAX);
	if (text && reasoning) {
		tl = gd_pipeline_tail(pipe, GD_STREAM_TEXT, text, PX_CUTMEMO_TEXT_MAX);
		rl = gd_pipeline_tail(pipe, GD_STREAM_REASONING, reasoning, PX_CUTMEMO_TEXT_MAX);
		uint64_t ev0 = px_cutmemo_evictions(s->cutmemo);
		if (px_cutmemo_put(s->cutmemo, &key, now_ms(), trip, text, tl, reasoning, rl) == 0) {
			px_metrics_inc(PX_C_CUT_MEMO_STORES, 1);
			px_metrics_inc(PX_C_CUT_MEMO_EVICTIONS, px_cutmemo_evictions(s->cutmemo) - ev0);
		}
	}
	free(text);
	free(reasoning);
}

/* The end of a cut answer, once the source has stopped: the part of the
 * tripping unit the guards read (unless chunks were held back before it:
 * it would not continue the text), the final chunk naming the guard (and,
 * from the engine, how many tokens it generated after the cancel), the
 * usage chunk when asked for, [DONE]; or, without a stream, a short body. */
static void finish_trip(struct px_chat *ch, const struct px_source_end *fin)
{
	const struct gd_trip *trip = px_answer_trip(ch->answer);
	int tac = fin ? fin->tokens_after_cancel : -1;
	const char *finish = px_cut_finish_name(ch->s->opts.cut_finish);
	int64_t up_prompt, up_completion;
	px_answer_usage(ch->answer, &up_prompt, &up_completion);
	if (fin && fin->prompt_tokens >= 0)
		up_prompt = fin->prompt_tokens;
	if (fin && fin->completion_tokens >= 0)
		up_completion = fin->completion_tokens;
	struct px_usage usage;
	px_usage_for_cut(&usage, up_prompt, up_completion, px_answer_tokens(ch->answer));
	if (ch->stream) {
		const char *text, *reasoning;
		size_t tl, rl;
		px_answer_cut_part(ch->answer, &text, &tl, &reasoning, &rl);
		struct px_cut_stream c = {
			finish, ch->dropped ? NULL : text, ch->dropped ? 0 : tl,
			ch->dropped ? NULL : reasoning, ch->dropped ? 0 : rl,
			ch->include_usage ? &usage : NULL, tac,
		};
		start_client_stream(ch);
		px_emit_cut_stream(ch->out, px_answer_id(ch->answer), trip, &c);
		end_stream(ch);
		return;
	}
	evbuffer_drain(ch->out, evbuffer_get_length(ch->out));
	px_emit_answer_body(ch->out, px_answer_id(ch->answer), "", 0, NULL, 0, finish, trip, &usage);
	reply_out(ch, 200);
}

/* A guard (or the watchdog) tripped: the source stops first (the engine
 * stops generating now), then the answer ends. */
static void trip_answer(struct px_chat *ch)
{
	const struct gd_trip *trip = px_answer_trip(ch->answer);
	size_t held;
	px_metrics_trip(trip->guard);
	log_req(ch, "trip: guard %s: %s", trip->guard, trip->detail);
	record_end(ch, trip, NULL);
	memo_store(ch, trip);
	(void)px_answer_held(ch->answer, &held);
	ch->dropped = held > 0;
	px_answer_held_clear(ch->answer);
	stop_timers(ch);
	ch->paused = false;
	if (!ch->ops->cancel(ch->src)) {
		ch->state = CH_CUTTING; /* end() or body() brings the final figures */
		return;
	}
	finish_trip(ch, NULL);
}

/* ---- timers ---- */

static void arm_watchdog(struct px_chat *ch)
{
	uint64_t ms = gd_pipeline_next_deadline_ms(px_answer_pipeline(ch->answer), now_ms());
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
	if (ch->state != CH_WAITING && ch->state != CH_ANSWER)
		return;
	struct gd_pipeline *pipe = px_answer_pipeline(ch->answer);
	if (gd_pipeline_tick(pipe, now_ms()) == GD_TRIP && gd_pipeline_trip(pipe))
		trip_answer(ch);
	else
		arm_watchdog(ch);
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
	if ((ch->state != CH_WAITING && ch->state != CH_ANSWER) || ch->first_event || !ch->conn)
		return;
	start_client_stream(ch);
	evbuffer_add(ch->out, ": keep-alive\n\n", 14);
	flush_out(ch);
	arm_keepalive(ch);
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
 * never reads would otherwise hold its source (an engine slot) forever: it
 * is cancelled like a disconnect, and its connection closed. */
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
	        "%zu waiting: closing it and the %s", ch->s->opts.client_write_timeout_ms, pending,
	        ch->ops->name);
	record_end(ch, NULL, "client write timeout");
	px_http_conn_watch(c, NULL, NULL, NULL);
	ch->conn = NULL;
	chat_free(ch); /* stops the source now */
	px_http_conn_abort(c);
}

static void check_backpressure(struct px_chat *ch)
{
	if (!ch->conn || ch->paused || ch->state != CH_ANSWER)
		return;
	if (px_http_conn_pending(ch->conn) > ch->s->opts.client_highwater_bytes) {
		ch->paused = true;
		ch->ops->pause(ch->src);
		/* The silence that follows is ours, not the source's: the stall
		 * watchdog sleeps until the client has drained, and the client's
		 * own deadline runs instead. */
		event_del(ch->wd_timer);
		arm_client_write(ch);
	}
}

/* ---- source callbacks (proxy/source.h) ---- */

static void src_begin(void *ctx)
{
	struct px_chat *ch = ctx;
	if (ch->state != CH_WAITING)
		return;
	ch->state = CH_ANSWER;
	if (ch->stream) {
		start_client_stream(ch);
		flush_out(ch);
	}
}

static int src_unit(void *ctx, const char *json, size_t len)
{
	struct px_chat *ch = ctx;
	if (ch->state != CH_ANSWER)
		return 1;
	const struct px_answer_unit *u = px_answer_unit(ch->answer);
	/* Only a unit that carries an event (text, reasoning, a tool call or
	 * its arguments, a finish) is progress, for the first-token watchdog and
	 * the idle one alike: a role-only chunk (llama.cpp sends one before
	 * prompt processing), an empty delta and a usage-only chunk
	 * (`choices: []` or `null`) carry nothing a client can use, and an
	 * upstream that sends nothing else forever must still be ended. */
	if (u->events > 0) {
		uint64_t now = px_now_us();
		if (!ch->first_event) {
			ch->first_event = true;
			px_metrics_observe(PX_H_TTFT, (double)(now - ch->t_start_us) / 1e6);
			if (ch->ka_timer)
				event_del(ch->ka_timer);
		}
		gd_pipeline_touch(px_answer_pipeline(ch->answer), now / 1000u);
	}
	enum px_verdict v = px_answer_verdict(ch->answer);
	if (v == PX_VERDICT_TRIP) {
		trip_answer(ch);
		return 1;
	}
	px_metrics_inc(PX_C_TOKENS_RELAYED, u->tokens);
	if (v == PX_VERDICT_HOLD) {
		if (json && px_answer_hold(ch->answer, json, len) != 0) {
			fail_answer(ch, 502, "a tool call exceeds proxy.max_held_bytes while held");
			return 1;
		}
		return 0;
	}
	/* Released calls, then this chunk; flush() writes <out> once for all
	 * the units of one read. */
	size_t hn;
	const char *held = px_answer_held(ch->answer, &hn);
	if (hn) {
		evbuffer_add(ch->out, held, hn);
		px_answer_held_clear(ch->answer);
	}
	if (json) {
		frame_json(ch->out, json, len);
		px_metrics_inc(PX_C_CHUNKS_RELAYED, 1);
	}
	return 0;
}

static void src_flush(void *ctx, bool progress)
{
	struct px_chat *ch = ctx;
	if (ch->state == CH_DONE) {
		chat_free(ch);
		return;
	}
	if (ch->state != CH_ANSWER && ch->state != CH_WAITING)
		return;
	if (progress)
		gd_pipeline_touch(px_answer_pipeline(ch->answer), now_ms());
	if (ch->started)
		flush_out(ch);
	arm_watchdog(ch);
	check_backpressure(ch);
}

static void src_end(void *ctx, const struct px_source_end *fin)
{
	struct px_chat *ch = ctx;
	if (ch->state == CH_CUTTING) {
		finish_trip(ch, fin);
	} else if (ch->state != CH_DONE) {
		/* The answer is complete: what is still held goes out. */
		size_t hn;
		const char *held = px_answer_held(ch->answer, &hn);
		evbuffer_add(ch->out, held, hn);
		px_answer_held_clear(ch->answer);
		record_end(ch, NULL, NULL);
		end_stream(ch);
	}
	chat_free(ch);
}

/* A whole non-stream answer: relayed as it is, or cut where the loop
 * began (content, reasoning, the calls completed before the trip). */
static void src_body(void *ctx, const char *json, size_t len, const struct px_source_end *fin)
{
	struct px_chat *ch = ctx;
	if (ch->state == CH_DONE) {
		chat_free(ch);
		return;
	}
	const struct gd_trip *trip = px_answer_trip(ch->answer);
	evbuffer_drain(ch->out, evbuffer_get_length(ch->out));
	if (trip) {
		if (ch->state != CH_CUTTING) { /* else trip_answer told already */
			px_metrics_trip(trip->guard);
			log_req(ch, "trip: guard %s: %s", trip->guard, trip->detail);
			record_end(ch, trip, NULL);
			memo_store(ch, trip);
		}
		/* The content and reasoning the guards read, up to the byte that
		 * tripped, and the calls completed before a call tripped. */
		struct px_cut cut;
		px_answer_cut(ch->answer, &cut);
		int tac = fin ? fin->tokens_after_cancel : -1;
		const char *finish = px_cut_finish_name(ch->s->opts.cut_finish);
		struct px_usage usage;
		px_usage_for_cut(&usage, -1, -1, 0);
		if (px_emit_truncated_body_ex(ch->out, json, len, &cut, trip, finish, &usage, tac) != 0)
			px_emit_answer_body(ch->out, px_answer_id(ch->answer), "", 0, NULL, 0, finish, trip,
			                    &usage);
		reply_out(ch, 200);
		chat_free(ch);
		return;
	}
	record_end(ch, NULL, NULL);
	px_metrics_inc(PX_C_TOKENS_RELAYED, px_answer_tokens(ch->answer));
	reply(ch, 200, json, len); /* healthy: the bytes as they are */
	chat_free(ch);
}

static void src_error(void *ctx, int status, const char *msg, const char *raw, size_t raw_len)
{
	struct px_chat *ch = ctx;
	if (ch->state == CH_CUTTING)
		finish_trip(ch, NULL);
	else if (ch->state != CH_DONE)
		fail_answer_raw(ch, status, msg, raw, raw_len);
	chat_free(ch);
}

static const struct px_source_cbs chat_cbs = {
	.begin = src_begin,
	.unit = src_unit,
	.flush = src_flush,
	.body = src_body,
	.end = src_end,
	.error = src_error,
};

/* ---- client callbacks ---- */

static void client_gone(struct px_http_conn *c, void *arg)
{
	(void)c;
	struct px_chat *ch = arg;
	ch->conn = NULL;
	px_metrics_inc(PX_C_CLIENT_GONE, 1);
	log_req(ch, "client disconnected");
	record_end(ch, NULL, "client disconnected");
	chat_free(ch); /* stops the source now */
}

static void client_drained(struct px_http_conn *c, void *arg)
{
	(void)c;
	struct px_chat *ch = arg;
	if (ch->cw_timer)
		event_del(ch->cw_timer);
	if (ch->paused && ch->state == CH_ANSWER) {
		ch->paused = false;
		gd_pipeline_touch(px_answer_pipeline(ch->answer), now_ms());
		arm_watchdog(ch);
		/* Last: resuming may deliver units and end the answer (which
		 * frees <ch>). */
		ch->ops->resume(ch->src);
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
	if (s->n_routes == 0) {
		simple_error(c, 503, "loopwarden has no upstream and no model: start it with --upstream "
		             "URL or --model FILE.gguf");
		return;
	}
	/* The one parse of the body (proxy/wire/request.h): every limit is
	 * checked while parsing, and the history and the source take its
	 * result. */
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
	int rstatus = 500;
	const struct px_route *route = px_route_pick(s, model, &rstatus, err, sizeof(err));
	if (!route) {
		px_request_free(preq);
		simple_error(c, rstatus, err);
		return;
	}
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
	if (!hist) {
		px_request_free(preq);
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
		px_request_free(preq);
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
			px_request_free(preq);
			gd_history_free(hist);
			px_policy_release(policy);
			return;
		}
	}

	struct px_chat *ch = calloc(1, sizeof(*ch));
	if (!ch) {
		px_request_free(preq);
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
	ch->include_usage = include_usage;
	ch->n_limits = n_limits;
	memcpy(ch->limits, limits, sizeof(limits));
	ch->hist = hist;
	ch->policy = policy;
	ch->t_start_us = px_now_us();
	ch->next = s->chats;
	if (s->chats)
		s->chats->prev = ch;
	s->chats = ch;
	s->active_streams++;
	ch->answer = px_answer_new(policy->policy, hist, (size_t)s->opts.max_held_bytes);
	ch->out = evbuffer_new();
	ch->wd_timer = evtimer_new(s->base, watchdog_cb, ch);
	ch->ka_timer = stream ? evtimer_new(s->base, keepalive_cb, ch) : NULL;
	if (!ch->answer || !ch->out || !ch->wd_timer || (stream && !ch->ka_timer)) {
		px_request_free(preq);
		ch->conn = NULL;
		chat_free(ch);
		simple_error(c, 500, "out of memory");
		return;
	}
	struct px_answer_id *aid = px_answer_id(ch->answer);
	snprintf(aid->id, sizeof(aid->id), "chatcmpl-loopwarden-%" PRIu64, ch->id);
	snprintf(aid->model, sizeof(aid->model), "%s", model);
	aid->created = (int64_t)time(NULL);
	if (s->opts.record_dir[0]) {
		ch->rec = px_record_open(s->opts.record_dir, ch->id, stream, req->body, req->body_len,
		                         err, sizeof(err));
		if (!ch->rec && !s->record_warned) {
			fprintf(stderr, "loopwarden: recording disabled for this request: %s\n", err);
			s->record_warned = true;
		}
	}
	px_http_conn_watch(c, client_gone, client_drained, ch);
	struct px_source_args args = {
		.s = s, .route = route, .req = req, .preq = preq, .answer = ch->answer, .rec = ch->rec,
		.id = ch->id, .stream = stream, .include_usage = preq->include_usage,
	};
	int status = 500;
	ch->ops = route->ops;
	ch->src = route->ops->start(&args, &chat_cbs, ch, &status, err, sizeof(err));
	px_request_free(preq); /* the history and the source keep their own copies */
	if (!ch->src) {
		if (status >= 400 && status < 500)
			px_metrics_inc(PX_C_BAD_REQUESTS, 1);
		fail_answer(ch, status, err);
		chat_free(ch);
		return;
	}
	gd_pipeline_start(px_answer_pipeline(ch->answer), now_ms());
	arm_watchdog(ch);
	if (ch->ka_timer)
		arm_keepalive(ch);
}

void px_chat_backlog(const struct px_server *s, uint64_t *paused, uint64_t *bytes)
{
	*paused = 0;
	*bytes = 0;
	for (const struct px_chat *ch = s->chats; ch; ch = ch->next) {
		size_t held;
		if (ch->paused)
			(*paused)++;
		if (ch->conn)
			*bytes += px_http_conn_pending(ch->conn);
		(void)px_answer_held(ch->answer, &held);
		*bytes += held;
	}
}

void px_chat_cancel_all(struct px_server *s)
{
	while (s->chats) {
		struct px_chat *ch = s->chats;
		stop_timers(ch);
		if (ch->conn) {
			px_http_conn_watch(ch->conn, NULL, NULL, NULL);
			if (ch->stream && ch->started) {
				px_emit_error_event(ch->out, 503, "loopwarden is shutting down");
				end_stream(ch);
			} else {
				fail_answer(ch, 503, "loopwarden is shutting down");
			}
		}
		chat_free(ch); /* stops the source */
	}
}
