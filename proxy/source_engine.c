/* The co-resident engine source (see source.h): the request's messages and
 * tools are rendered with the model's chat template, encoded and submitted
 * to the scheduler (engine/sched.h) with the request's sampling fields; the
 * scheduler's events cross to the event loop through the request's queue and
 * one event_active() per step; on the loop thread each text piece goes
 * through the stop strings (engine/stop.h) and the chat output parser
 * (engine/chatparse.h) into guard events, which are fed to the answer core
 * and encoded as OpenAI chunks (proxy/emit.h) one event per chunk. A trip,
 * a stop string, a client that leaves or stalls and shutdown all set the
 * request's own cancel flag (eng_req_cancel): the scheduler stops that
 * sequence at its next token and reports how many tokens it generated
 * after the flag was set (tokens_after_cancel, in the final chunk). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "engine/chat_template.h"
#include "engine/chatparse.h"
#include "engine/sampler.h"
#include "engine/sched.h"
#include "engine/stop.h"
#include "engine/tokenizer.h"
#include "proxy/answer.h"
#include "proxy/emit.h"
#include "proxy/metrics.h"
#include "proxy/model.h"
#include "proxy/record.h"
#include "proxy/server_int.h"
#include "proxy/source.h"
#include "proxy/wire/request.h"

#define PROMPT_CAP_MIN (1u << 20) /* a rendered prompt may take this much at least … */
#define PROMPT_CAP_PER_BODY 4     /* … or this many times the request body (tools' JSON grows) */
#define CALLS_INITIAL 4           /* a non-stream answer's call table, grown by doubling */

/* Sampling when the request says nothing (llama-server's defaults). */
#define DEF_TEMPERATURE 0.8f
#define DEF_TOP_K 40
#define DEF_TOP_P 0.95f
#define DEF_MIN_P 0.05f
#define DEF_REPEAT_LAST_N 64

/* A tool call of a non-stream answer: its arguments are <len> bytes at
 * <off> of the answer's <args> buffer (calls come one after the other). */
struct ecall {
	char id[ENG_CHATPARSE_ID_MAX + 1];
	char name[ENG_CHATPARSE_NAME_MAX + 1];
	size_t off, len;
};

struct px_source {
	struct px_server *s;
	const struct px_source_cbs *cbs;
	void *ctx;
	const struct px_model *pm;
	struct px_answer *answer;
	struct px_record *rec;
	bool stream, include_usage;
	struct eng_req *req;
	struct event *wake; /* activated from the scheduler thread (notify) */
	struct eng_stop stop;
	struct eng_chatparse *parse;
	struct eng_chat_tool *tools; /* copies: the parser borrows them */
	uint32_t n_tools;
	char *tool_mem;
	char *piece;                 /* the stop matcher's output */
	size_t piece_cap;
	struct evbuffer *chunk;      /* the chunk being encoded */
	/* a non-stream answer so far */
	struct evbuffer *content, *reasoning, *args;
	struct ecall *calls;
	size_t n_calls, calls_cap;
	uint64_t body_cap;
	char finish[32];             /* the parser's finish reason */
	/* state */
	bool begun;
	bool paused;                 /* the glue's client is slow */
	bool cancelled;              /* the glue cut the answer: drain to the final event */
	bool stopped;                /* a stop string matched: we cancelled the engine */
	bool self_cut;               /* non-stream: a guard tripped, we cancelled the engine */
	bool over;                   /* a unit said the answer is over */
	bool ended;                  /* the final event was consumed */
	bool failed;                 /* the answer fails: <fail_msg> */
	int fail_status;
	char fail_msg[ENG_SCHED_ERR_MAX + 64];
};

/* ---- request → prompt ---- */

static int role_of(const struct gd_conv_msg *m, enum eng_chat_role *out)
{
	switch (m->role) {
	case GD_ROLE_SYSTEM: *out = ENG_CHAT_SYSTEM; return 0;
	case GD_ROLE_DEVELOPER: *out = ENG_CHAT_DEVELOPER; return 0;
	case GD_ROLE_USER: *out = ENG_CHAT_USER; return 0;
	case GD_ROLE_ASSISTANT: *out = ENG_CHAT_ASSISTANT; return 0;
	case GD_ROLE_TOOL: *out = ENG_CHAT_TOOL; return 0;
	default: return -1;
	}
}

static struct eng_str es(struct gd_str g)
{
	struct eng_str e = {g.ptr, g.len};
	return e;
}

/* The tools of <preq>, copied (the parser borrows them for the answer).
 * Returns 0, or -1 with <err> naming the tool. */
static int copy_tools(struct px_source *e, const struct px_request *preq, char *err, size_t errlen)
{
	size_t bytes = 0;
	for (size_t i = 0; i < preq->n_tools; i++) {
		const struct px_request_tool *t = &preq->tools[i];
		if (!t->name.ptr || t->name.len == 0) {
			snprintf(err, errlen, "tools[%zu] has no function.name", i);
			return -1;
		}
		bytes += t->name.len + t->description.len + t->parameters.len + 3;
	}
	if (preq->n_tools == 0)
		return 0;
	e->tools = calloc(preq->n_tools, sizeof(*e->tools));
	e->tool_mem = malloc(bytes);
	if (!e->tools || !e->tool_mem) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	char *p = e->tool_mem;
	for (size_t i = 0; i < preq->n_tools; i++) {
		const struct px_request_tool *t = &preq->tools[i];
		const struct gd_str *src[3] = {&t->name, &t->description, &t->parameters};
		struct eng_str *dst[3] = {&e->tools[i].name, &e->tools[i].description,
		                          &e->tools[i].parameters};
		for (int k = 0; k < 3; k++) {
			if (!src[k]->ptr) {
				dst[k]->ptr = NULL;
				dst[k]->len = 0;
				continue;
			}
			memcpy(p, src[k]->ptr, src[k]->len);
			p[src[k]->len] = '\0';
			dst[k]->ptr = p;
			dst[k]->len = src[k]->len;
			p += src[k]->len + 1;
		}
	}
	e->n_tools = (uint32_t)preq->n_tools;
	return 0;
}

/* Renders and encodes the prompt. Returns the ids (caller frees) and their
 * count in *<n>, or NULL with <err> and *<status>. */
static int32_t *prompt_ids(struct px_source *e, const struct px_request *preq, size_t body_len,
                           int *n, int *status, char *err, size_t errlen)
{
	struct eng_chat_msg *msgs = NULL;
	struct eng_chat_call *calls = NULL;
	struct eng_chat_prompt *p = NULL;
	int32_t *ids = NULL;
	size_t n_calls = 0;
	char why[256];

	*status = 400;
	for (size_t i = 0; i < preq->n_msgs; i++)
		n_calls += preq->msgs[i].n_calls;
	msgs = calloc(preq->n_msgs, sizeof(*msgs));
	calls = n_calls ? calloc(n_calls, sizeof(*calls)) : NULL;
	if (!msgs || (n_calls && !calls)) {
		*status = 500;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	size_t k = 0;
	for (size_t i = 0; i < preq->n_msgs; i++) {
		const struct gd_conv_msg *m = &preq->msgs[i];
		if (role_of(m, &msgs[i].role) != 0) {
			snprintf(err, errlen, "messages[%zu].role '%.*s' is not one of system, developer, "
			         "user, assistant, tool", i, (int)(m->role_name.len > 64 ? 64 : m->role_name.len),
			         m->role_name.ptr ? m->role_name.ptr : "");
			goto out;
		}
		msgs[i].content = es(m->content);
		msgs[i].reasoning = es(m->reasoning);
		msgs[i].tool_call_id = es(m->tool_call_id);
		msgs[i].name = es(m->name);
		msgs[i].calls = calls ? calls + k : NULL;
		msgs[i].n_calls = (uint32_t)m->n_calls;
		for (size_t j = 0; j < m->n_calls; j++, k++) {
			calls[k].id = es(m->calls[j].id);
			calls[k].name = es(m->calls[j].name);
			calls[k].arguments = es(m->calls[j].args);
		}
	}
	size_t cap = body_len * PROMPT_CAP_PER_BODY + PROMPT_CAP_MIN;
	if (cap > ENG_CHAT_MAX_PROMPT)
		cap = ENG_CHAT_MAX_PROMPT;
	p = eng_chat_prompt_new(cap);
	if (!p) {
		*status = 500;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	struct eng_chat_input in = {
		.msgs = msgs, .n_msgs = (uint32_t)preq->n_msgs, .tools = e->tools, .n_tools = e->n_tools,
		.add_generation_prompt = true,
	};
	enum eng_status st = eng_chat_render(&e->pm->tmpl, &in, p, why, sizeof(why));
	if (st != ENG_OK) {
		snprintf(err, errlen, "cannot render the %s chat template: %s",
		         eng_chat_family_name(e->pm->tmpl.family), why);
		goto out;
	}
	int count = eng_chat_encode(e->pm->tok, p, NULL, 0);
	if (count > 0)
		ids = malloc((size_t)count * sizeof(*ids));
	if (count > 0 && ids)
		count = eng_chat_encode(e->pm->tok, p, ids, (size_t)count);
	if (count <= 0 || !ids) {
		*status = count < 0 ? 400 : 500;
		snprintf(err, errlen, count == 0 ? "the prompt is empty" : count < 0
		         ? "cannot encode the prompt: %s" : "out of memory", eng_strerror(count));
		free(ids);
		ids = NULL;
		goto out;
	}
	*n = count;
	/* A prompt that opens <think> starts the answer in reasoning. */
	struct eng_chatparse_cfg pc = {
		.family = e->pm->tmpl.family,
		.tools = e->tools,
		.n_tools = e->n_tools,
		.reasoning = e->pm->tmpl.family != ENG_CHAT_PLAIN,
		.think_open = p->think_open,
		.id_seed = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)e << 16),
	};
	if (eng_chatparse_reset(e->parse, &pc) != ENG_CHATPARSE_OK) {
		*status = 500;
		snprintf(err, errlen, "cannot start the output parser");
		free(ids);
		ids = NULL;
	}
out:
	eng_chat_prompt_free(p);
	free(calls);
	free(msgs);
	return ids;
}

/* The request's sampling fields, checked (400 naming the field). */
static int sampling(const struct px_request *preq, uint64_t id, struct eng_gen_params *gen,
                    char *err, size_t errlen)
{
	const struct px_sampling *ps = &preq->sampling;
	struct eng_str stop[PX_REQUEST_MAX_STOP];
	struct eng_sampling_request r;
	memset(&r, 0, sizeof(r));
#define NUM(f) r.f.set = ps->f.set, r.f.v = ps->f.v
	NUM(temperature);
	NUM(top_p);
	NUM(min_p);
	NUM(frequency_penalty);
	NUM(presence_penalty);
	NUM(repeat_penalty);
	NUM(top_k);
	NUM(seed);
	NUM(max_tokens);
	NUM(max_completion_tokens);
#undef NUM
	for (uint32_t i = 0; i < ps->n_stop; i++)
		stop[i] = es(ps->stop[i]);
	r.stop = stop;
	r.n_stop = ps->n_stop;
	struct eng_sampler_params def = eng_sampler_defaults();
	def.temp = DEF_TEMPERATURE;
	def.top_k = DEF_TOP_K;
	def.top_p = DEF_TOP_P;
	def.min_p = DEF_MIN_P;
	def.repeat_last_n = DEF_REPEAT_LAST_N;
	def.seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ id;
	return eng_sampling_from_request(&r, &def, gen, err, errlen) == ENG_OK ? 0 : -1;
}

/* ---- events → units ---- */

static void record_chunk(struct px_source *e, const char *json, size_t len)
{
	if (!e->rec || !json)
		return;
	px_record_write(e->rec, "data: ", 6);
	px_record_write(e->rec, json, len);
	px_record_write(e->rec, "\n\n", 2);
}

/* One unit: the core has been fed; <chunk> holds its JSON (or nothing). */
static int send_unit(struct px_source *e)
{
	size_t n = evbuffer_get_length(e->chunk);
	const char *json = n ? (const char *)evbuffer_pullup(e->chunk, -1) : NULL;
	record_chunk(e, json, n);
	int rc = e->cbs->unit(e->ctx, json, n);
	evbuffer_drain(e->chunk, n);
	if (rc != 0)
		e->over = true;
	return rc;
}

/* The answer fails (the first failure stands); the handler reports it. */
__attribute__((format(printf, 3, 4)))
static void fail(struct px_source *e, int status, const char *fmt, ...)
{
	if (e->failed)
		return;
	e->failed = true;
	e->fail_status = status;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->fail_msg, sizeof(e->fail_msg), fmt, ap);
	va_end(ap);
}

/* A non-stream answer keeps what the client will get. */
static int keep(struct px_source *e, const struct gd_event *ev)
{
	switch (ev->type) {
	case GD_EV_TEXT:
		evbuffer_add(e->content, ev->data, ev->len);
		break;
	case GD_EV_REASONING:
		evbuffer_add(e->reasoning, ev->data, ev->len);
		break;
	case GD_EV_TOOL_BEGIN: {
		if (e->n_calls == e->calls_cap) {
			size_t cap = e->calls_cap ? e->calls_cap * 2 : CALLS_INITIAL;
			struct ecall *c = realloc(e->calls, cap * sizeof(*c));
			if (!c)
				return -1;
			e->calls = c;
			e->calls_cap = cap;
		}
		struct ecall *c = &e->calls[e->n_calls++];
		snprintf(c->id, sizeof(c->id), "%.*s", (int)ev->id_len, ev->id ? ev->id : "");
		snprintf(c->name, sizeof(c->name), "%.*s", (int)ev->name_len, ev->name ? ev->name : "");
		c->off = evbuffer_get_length(e->args);
		c->len = 0;
		break;
	}
	case GD_EV_TOOL_ARGS:
		if (e->n_calls > 0) {
			evbuffer_add(e->args, ev->data, ev->len);
			e->calls[e->n_calls - 1].len += ev->len;
		}
		break;
	default:
		break;
	}
	uint64_t have = evbuffer_get_length(e->content) + evbuffer_get_length(e->reasoning) +
	                evbuffer_get_length(e->args);
	return have > e->body_cap ? -1 : 0;
}

/* One guard event of the output parser: fed to the core as a unit of its
 * own; streamed as its chunk, or kept for the non-stream body. */
static int on_event(const struct gd_event *ev, void *arg)
{
	struct px_source *e = arg;
	if (ev->type == GD_EV_FINISH)
		snprintf(e->finish, sizeof(e->finish), "%.*s", (int)ev->len, ev->data);
	px_answer_unit_begin(e->answer);
	(void)px_answer_feed(e->answer, ev);
	if (e->stream) {
		(void)px_emit_event_chunk(e->chunk, px_answer_id(e->answer), ev, e->include_usage);
		return send_unit(e);
	}
	if (keep(e, ev) != 0) {
		fail(e, 502, "the answer exceeds proxy.max_response_bytes");
		return 1;
	}
	if (px_answer_verdict(e->answer) == PX_VERDICT_TRIP && !e->self_cut) {
		/* The engine stops now; the body goes out, cut, at the final event. */
		e->self_cut = true;
		if (!e->ended) {
			px_metrics_inc(PX_C_ENGINE_CANCELS, 1);
			eng_req_cancel(e->req);
		}
		return 1;
	}
	return 0;
}

static void parse(struct px_source *e, const char *text, size_t len)
{
	char err[256];
	enum eng_chatparse_status st = eng_chatparse_feed(e->parse, text, len, on_event, e, err,
	                                                  sizeof(err));
	if (st == ENG_CHATPARSE_EBROKEN)
		fail(e, 500, "the model wrote a malformed tool call: %s", err);
}

/* The answer starts at the engine's first event: the client's head, and
 * the role chunk. */
static void begin(struct px_source *e)
{
	if (e->begun)
		return;
	e->begun = true;
	e->cbs->begin(e->ctx);
	if (e->stream) {
		px_answer_unit_begin(e->answer);
		px_emit_role_chunk(e->chunk, px_answer_id(e->answer), e->include_usage);
		(void)send_unit(e);
	}
}

/* One decoded piece of the answer. */
static void piece(struct px_source *e, const char *text, size_t len)
{
	begin(e);
	if (e->over || e->failed || len == 0)
		return;
	int64_t n = eng_stop_feed(&e->stop, text, len, e->piece, e->piece_cap);
	if (n < 0) {
		fail(e, 500, "a text piece larger than the stop matcher's buffer");
		return;
	}
	if (n > 0)
		parse(e, e->piece, (size_t)n);
	if (eng_stop_matched(&e->stop) >= 0 && !e->stopped) {
		/* The stop string ends the answer like an end of generation. */
		e->stopped = true;
		px_metrics_inc(PX_C_ENGINE_CANCELS, 1);
		eng_req_cancel(e->req);
	}
}

static bool drained(const struct px_source *e)
{
	return e->cancelled || e->stopped || e->self_cut || e->failed || e->over;
}

/* The non-stream body, as it stands. */
static void body(struct px_source *e, const struct px_source_end *fin)
{
	struct px_emit_call *calls = NULL;
	const char *args = evbuffer_get_length(e->args) ? (const char *)evbuffer_pullup(e->args, -1) : "";
	if (e->n_calls) {
		calls = calloc(e->n_calls, sizeof(*calls));
		if (!calls) {
			e->cbs->error(e->ctx, 500, "out of memory", NULL, 0);
			return;
		}
	}
	for (size_t i = 0; i < e->n_calls; i++) {
		calls[i].id = e->calls[i].id;
		calls[i].name = e->calls[i].name;
		calls[i].args = args + e->calls[i].off;
		calls[i].args_len = e->calls[i].len;
	}
	size_t cl = evbuffer_get_length(e->content), rl = evbuffer_get_length(e->reasoning);
	const char *c = cl ? (const char *)evbuffer_pullup(e->content, -1) : "";
	const char *r = rl ? (const char *)evbuffer_pullup(e->reasoning, -1) : "";
	px_emit_completion(e->chunk, px_answer_id(e->answer), c, cl, r, rl, calls, e->n_calls,
	                   e->finish[0] ? e->finish : "length", fin->prompt_tokens,
	                   fin->completion_tokens);
	free(calls);
	evbuffer_add(e->chunk, "", 1); /* NUL-terminated (px_emit_truncated_body) */
	size_t n = evbuffer_get_length(e->chunk) - 1;
	const char *json = (const char *)evbuffer_pullup(e->chunk, -1);
	px_record_write(e->rec, json, n);
	e->cbs->body(e->ctx, json, n, fin);
}

/* The final event: the answer ends (the last callback of the handler). */
static void final(struct px_source *e, const struct eng_event *ev)
{
	enum eng_finish finish = ev->finish;
	struct eng_usage usage = ev->usage;
	char msg[ENG_SCHED_ERR_MAX], text[16];
	size_t tl = ev->text_len < sizeof(text) ? ev->text_len : 0;
	snprintf(msg, sizeof(msg), "%s", ev->message ? ev->message : "");
	memcpy(text, ev->text, tl);
	eng_req_consume(e->req);
	e->ended = true;
	struct px_source_end fin = {NULL, usage.tokens_after_cancel, usage.prompt_tokens,
	                            usage.completion_tokens};
	if (e->cancelled) {
		/* cut by the glue (a trip, the watchdog): it only wants the figures */
		if (e->stream)
			e->cbs->end(e->ctx, &fin);
		else
			body(e, &fin);
		return;
	}
	if (finish == ENG_FINISH_ERROR) {
		e->cbs->error(e->ctx, 503, msg[0] ? msg : "the engine failed", NULL, 0);
		return;
	}
	if (finish == ENG_FINISH_CANCELLED && !e->stopped && !e->self_cut && !e->failed) {
		e->cbs->error(e->ctx, 503, "the engine is shutting down", NULL, 0);
		return;
	}
	if (!drained(e) && tl)
		piece(e, text, tl);
	if (!e->stopped && !e->self_cut && !e->over && !e->failed) {
		int64_t n = eng_stop_flush(&e->stop, e->piece, e->piece_cap);
		if (n > 0)
			parse(e, e->piece, (size_t)n);
	}
	if (!e->over && !e->failed && !e->self_cut) {
		char err[256];
		/* NULL: "tool_calls" when calls were delivered, else "stop" (a
		 * stop string that matched ends the answer like an end of
		 * generation, even when the engine reached max_tokens before it
		 * saw the cancel). */
		const char *reason = finish == ENG_FINISH_LENGTH && !e->stopped ? "length" : NULL;
		begin(e);
		if (eng_chatparse_end(e->parse, reason, on_event, e, err, sizeof(err)) ==
		    ENG_CHATPARSE_EBROKEN)
			fail(e, 500, "the model wrote a malformed tool call: %s", err);
	}
	fin.finish_reason = e->finish[0] ? e->finish : NULL;
	if (e->failed) {
		e->cbs->error(e->ctx, e->fail_status, e->fail_msg, NULL, 0);
		return;
	}
	if (!e->stream) {
		body(e, &fin);
		return;
	}
	if (e->over && !e->cancelled) { /* the glue failed the answer */
		e->cbs->flush(e->ctx, false);
		return;
	}
	if (!e->cancelled && e->include_usage) {
		struct gd_event u = {.type = GD_EV_USAGE, .prompt_tokens = usage.prompt_tokens,
		                     .completion_tokens = usage.completion_tokens};
		px_answer_unit_begin(e->answer);
		(void)px_answer_feed(e->answer, &u);
		px_emit_usage_chunk(e->chunk, px_answer_id(e->answer), usage.prompt_tokens,
		                    usage.completion_tokens);
		(void)send_unit(e);
	}
	if (e->over && !e->cancelled) {
		e->cbs->flush(e->ctx, false);
		return;
	}
	px_record_write(e->rec, "data: [DONE]\n\n", 14);
	e->cbs->end(e->ctx, &fin);
}

/* On the loop thread, after a notify (or a resume): every event that is
 * ready, then one settle callback. */
static void process(struct px_source *e)
{
	const struct eng_event *ev;
	if (e->paused)
		return;
	while ((ev = eng_req_peek(e->req)) != NULL) {
		if (ev->finish != ENG_FINISH_NONE) {
			final(e, ev); /* its last callback may free <e> */
			return;
		}
		if (!drained(e))
			piece(e, ev->text, ev->text_len);
		eng_req_consume(e->req);
		if (e->failed) {
			e->cbs->error(e->ctx, e->fail_status, e->fail_msg, NULL, 0);
			return;
		}
		if (e->over && !e->cancelled) /* the glue ended the answer */
			break;
		if (e->paused)
			break;
	}
	e->cbs->flush(e->ctx, !e->stream);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	process(arg);
}

/* The scheduler thread, after a step that gave this request events. */
static void notify(void *arg)
{
	struct px_source *e = arg;
	event_active(e->wake, EV_READ, 0);
}

/* ---- the operations ---- */

static void en_free(struct px_source *e)
{
	if (!e)
		return;
	if (e->req) {
		if (!e->ended && !e->cancelled && !e->stopped && !e->self_cut)
			px_metrics_inc(PX_C_ENGINE_CANCELS, 1); /* a client gone, too slow, shutdown */
		eng_req_free(e->req); /* cancels a running sequence; no notify afterwards */
	}
	if (e->wake)
		event_free(e->wake);
	eng_chatparse_free(e->parse);
	free(e->tools);
	free(e->tool_mem);
	free(e->piece);
	free(e->calls);
	if (e->chunk)
		evbuffer_free(e->chunk);
	if (e->content)
		evbuffer_free(e->content);
	if (e->reasoning)
		evbuffer_free(e->reasoning);
	if (e->args)
		evbuffer_free(e->args);
	free(e);
}

static struct px_source *en_start(const struct px_source_args *a, const struct px_source_cbs *cbs,
                                  void *ctx, int *status, char *err, size_t errlen)
{
	const struct px_model *pm = a->route->model;
	struct px_source *e = calloc(1, sizeof(*e));
	int32_t *ids = NULL;
	int n_prompt = 0;
	char why[ENG_SCHED_ERR_MAX];

	*status = 500;
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->s = a->s;
	e->cbs = cbs;
	e->ctx = ctx;
	e->pm = pm;
	e->answer = a->answer;
	e->rec = a->rec;
	e->stream = a->stream;
	e->include_usage = a->stream && a->include_usage;
	e->body_cap = a->s->opts.max_response_bytes;
	e->piece_cap = ENG_STOP_OUT_MAX(eng_tok_decoder_out_max(pm->tok) + 16);
	e->piece = malloc(e->piece_cap);
	e->parse = eng_chatparse_new();
	e->chunk = evbuffer_new();
	e->content = evbuffer_new();
	e->reasoning = evbuffer_new();
	e->args = evbuffer_new();
	e->wake = event_new(a->s->base, -1, 0, wake_cb, e);
	if (!e->piece || !e->parse || !e->chunk || !e->content || !e->reasoning || !e->args ||
	    !e->wake) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* Answers carry the name the model is served under. */
	snprintf(px_answer_id(e->answer)->model, sizeof(px_answer_id(e->answer)->model), "%s",
	         pm->name);
	struct eng_gen_params gen;
	*status = 400;
	if (sampling(a->preq, a->id, &gen, err, errlen) != 0)
		goto fail;
	if (eng_stop_init(&e->stop, gen.stop, gen.n_stop, err, errlen) != ENG_OK)
		goto fail;
	if (copy_tools(e, a->preq, err, errlen) != 0)
		goto fail;
	ids = prompt_ids(e, a->preq, a->req->body_len, &n_prompt, status, err, errlen);
	if (!ids)
		goto fail;
	*status = 400;
	if (n_prompt >= pm->n_ctx) {
		snprintf(err, errlen, "the prompt is %d tokens but a sequence holds %d (engine.n_ctx)",
		         n_prompt, pm->n_ctx);
		goto fail;
	}
	int64_t room = pm->n_ctx - n_prompt;
	int64_t max_tokens = gen.max_tokens > 0 && gen.max_tokens < room ? gen.max_tokens : room;
	bool special = e->n_tools > 0 && pm->tmpl.family != ENG_CHAT_PLAIN;
	struct eng_req_opts ro = {
		.prompt = ids,
		.n_prompt = n_prompt,
		.sampling = gen.sampler,
		.max_tokens = (int)max_tokens,
		.decode_flags = special ? ENG_TOK_DEC_SPECIAL : 0,
		.notify = notify,
		.notify_arg = e,
	};
	enum eng_status st = eng_sched_submit(pm->sched, &ro, &e->req, why, sizeof(why));
	if (st != ENG_OK) {
		*status = st == ENG_ERR_ARG || st == ENG_ERR_RANGE ? 400 : st == ENG_ERR_NOMEM ? 500 : 503;
		snprintf(err, errlen, "%s", why);
		e->req = NULL;
		goto fail;
	}
	free(ids);
	return e;
fail:
	free(ids);
	en_free(e);
	return NULL;
}

static void en_pause(struct px_source *e)
{
	e->paused = true; /* the queue fills; the scheduler pauses this sequence only */
}

static void en_resume(struct px_source *e)
{
	e->paused = false;
	event_active(e->wake, EV_READ, 0); /* at the next loop turn, not from here */
}

static bool en_cancel(struct px_source *e)
{
	if (!e->cancelled && !e->ended)
		px_metrics_inc(PX_C_ENGINE_CANCELS, 1);
	e->cancelled = true;
	eng_req_cancel(e->req);
	/* The final event comes after the events already queued: drain them
	 * (discarded), whatever the client's pace. */
	e->paused = false;
	if (!e->ended)
		event_active(e->wake, EV_READ, 0);
	return false; /* end() or body() brings tokens_after_cancel */
}

const struct px_source_ops px_source_engine = {
	.name = "engine",
	.start = en_start,
	.pause = en_pause,
	.resume = en_resume,
	.cancel = en_cancel,
	.free = en_free,
};
