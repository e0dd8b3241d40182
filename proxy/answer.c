/* The I/O-free answer core (see answer.h). */
#include "proxy/answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELD_INITIAL 4096 /* first allocation of the held store (most answers never hold) */

struct px_answer {
	struct gd_pipeline *pipe;
	struct px_answer_unit unit;
	uint64_t events, tokens;
	int64_t up_prompt, up_completion; /* the source's latest usage (-1: none yet) */
	/* non-stream cut points: what the guards read, up to the trip */
	size_t fed_text, fed_reasoning;
	uint32_t calls_done;
	size_t unit_reasoning;          /* reasoning bytes of the current unit fed so far */
	char *cut_text, *cut_reasoning; /* the tripping unit's part the guards read */
	size_t cut_text_len, cut_reasoning_len;
	/* held units, framed */
	char *held;
	size_t held_len, held_cap, held_json, max_held;
	struct px_answer_id aid;
	bool have_identity, have_created;
	px_answer_observer obs;
	void *obs_ctx;
};

struct px_answer *px_answer_new(const struct gd_policy *policy, const struct gd_history *hist,
                                size_t max_held_bytes)
{
	struct px_answer *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->pipe = gd_pipeline_new(policy, hist);
	if (!a->pipe) {
		free(a);
		return NULL;
	}
	a->max_held = max_held_bytes;
	a->up_prompt = a->up_completion = -1;
	return a;
}

void px_answer_free(struct px_answer *a)
{
	if (!a)
		return;
	gd_pipeline_free(a->pipe);
	free(a->held);
	free(a->cut_text);
	free(a->cut_reasoning);
	free(a);
}

struct gd_pipeline *px_answer_pipeline(struct px_answer *a)
{
	return a->pipe;
}

void px_answer_observe(struct px_answer *a, px_answer_observer fn, void *ctx)
{
	a->obs = fn;
	a->obs_ctx = ctx;
}

void px_answer_unit_begin(struct px_answer *a)
{
	memset(&a->unit, 0, sizeof(a->unit));
	a->unit_reasoning = 0;
}

/* A copy of <s, n> in *<out> (NULL when empty or out of memory). */
static void keep_part(char **out, size_t *outlen, const char *s, size_t n)
{
	free(*out);
	*out = n ? malloc(n) : NULL;
	*outlen = *out ? n : 0;
	if (*out)
		memcpy(*out, s, n);
}

/* The tripping event <ev>'s part (see px_answer_cut_part). A unit's events
 * come reasoning first: when its text trips, the reasoning before it is no
 * longer at hand, but the pipeline's tail still has it. */
static void cut_part(struct px_answer *a, const struct gd_event *ev)
{
	const struct gd_trip *t = gd_pipeline_trip(a->pipe);
	size_t used = t && t->event_used < ev->len ? (size_t)t->event_used : ev->len;

	if (ev->type == GD_EV_TEXT) {
		keep_part(&a->cut_text, &a->cut_text_len, ev->data, used);
		a->fed_text += used;
		if (a->unit_reasoning) {
			char *r = malloc(a->unit_reasoning);
			size_t n = r ? gd_pipeline_tail(a->pipe, GD_STREAM_REASONING, r,
			                                 a->unit_reasoning) : 0;
			keep_part(&a->cut_reasoning, &a->cut_reasoning_len, r, n);
			free(r);
		}
	} else if (ev->type == GD_EV_REASONING) {
		keep_part(&a->cut_reasoning, &a->cut_reasoning_len, ev->data, used);
		a->fed_reasoning += used;
	}
}

int px_answer_feed(struct px_answer *a, const struct gd_event *ev)
{
	a->events++;
	/* Token counts are bookkeeping, not progress: an upstream sending only
	 * usage chunks is as silent as one sending nothing. */
	if (ev->type != GD_EV_USAGE) {
		a->unit.events++;
	} else {
		if (ev->prompt_tokens >= 0)
			a->up_prompt = ev->prompt_tokens;
		if (ev->completion_tokens >= 0)
			a->up_completion = ev->completion_tokens;
	}
	bool tripped_before = gd_pipeline_trip(a->pipe) != NULL;
	enum gd_verdict v = gd_pipeline_feed(a->pipe, ev);
	if (a->obs)
		a->obs(a->obs_ctx, ev, v, a->pipe);
	if (v == GD_TRIP) {
		a->unit.trip = true;
		if (!tripped_before) {
			a->tokens -= a->unit.tokens; /* the tripping unit never reaches the client */
			cut_part(a, ev);
		}
		return 1;
	}
	switch (ev->type) {
	case GD_EV_TEXT:
		a->fed_text += ev->len;
		a->unit.tokens++;
		a->tokens++;
		break;
	case GD_EV_REASONING:
		a->fed_reasoning += ev->len;
		a->unit_reasoning += ev->len;
		a->unit.tokens++;
		a->tokens++;
		break;
	case GD_EV_TOOL_ARGS:
		a->unit.tokens++;
		a->tokens++;
		break;
	case GD_EV_TOOL_END:
		a->calls_done++;
		break;
	default:
		break;
	}
	return 0;
}

static int feed_cb(const struct gd_event *ev, void *ctx)
{
	return px_answer_feed(ctx, ev);
}

/* "id", "model" and "created" of the answer, from its first chunk (the same
 * on every chunk). */
static void learn_identity(struct px_answer *a, struct px_chunk *conv, const char *json,
                           size_t len)
{
	if (a->have_identity)
		return;
	struct px_chunk_info info;
	px_chunk_info(conv, &info);
	if (info.id[0]) {
		snprintf(a->aid.id, sizeof(a->aid.id), "%s", info.id);
		a->have_identity = true;
	}
	if (info.model[0])
		snprintf(a->aid.model, sizeof(a->aid.model), "%s", info.model);
	if (a->have_created)
		return;
	const char *p = memmem(json, len, "\"created\":", 10);
	if (p) {
		char *end;
		long long v = strtoll(p + 10, &end, 10);
		if (end != p + 10)
			a->aid.created = v;
	}
	a->have_created = true;
}

enum px_chunk_status px_answer_chunk(struct px_answer *a, struct px_chunk *conv, const char *json,
                                     size_t len, char *err, size_t errlen)
{
	px_answer_unit_begin(a);
	enum px_chunk_status st = px_chunk_feed(conv, json, len, feed_cb, a, err, errlen);
	if (st == PX_CHUNK_OK || a->unit.trip)
		learn_identity(a, conv, json, len);
	return st;
}

enum px_chunk_status px_answer_chunk_end(struct px_answer *a, struct px_chunk *conv)
{
	px_answer_unit_begin(a);
	return px_chunk_end(conv, feed_cb, a);
}

enum px_chunk_status px_answer_body(struct px_answer *a, struct px_chunk *conv, const char *json,
                                    size_t len, char *err, size_t errlen)
{
	px_answer_unit_begin(a);
	return px_chunk_body(conv, json, len, feed_cb, a, err, errlen);
}

enum px_verdict px_answer_verdict(const struct px_answer *a)
{
	if (a->unit.trip || gd_pipeline_trip(a->pipe))
		return PX_VERDICT_TRIP;
	return gd_pipeline_holding(a->pipe) ? PX_VERDICT_HOLD : PX_VERDICT_RELAY;
}

const struct px_answer_unit *px_answer_unit(const struct px_answer *a)
{
	return &a->unit;
}

const struct gd_trip *px_answer_trip(const struct px_answer *a)
{
	return gd_pipeline_trip(a->pipe);
}

uint64_t px_answer_events(const struct px_answer *a)
{
	return a->events;
}

uint64_t px_answer_tokens(const struct px_answer *a)
{
	return a->tokens;
}

void px_answer_usage(const struct px_answer *a, int64_t *prompt_tokens,
                     int64_t *completion_tokens)
{
	*prompt_tokens = a->up_prompt;
	*completion_tokens = a->up_completion;
}

void px_answer_cut_part(const struct px_answer *a, const char **text, size_t *text_len,
                        const char **reasoning, size_t *reasoning_len)
{
	*text = a->cut_text;
	*text_len = a->cut_text_len;
	*reasoning = a->cut_reasoning;
	*reasoning_len = a->cut_reasoning_len;
}

/* ---- held units ---- */

static void held_put(void *ctx, const char *bytes, size_t n)
{
	struct px_answer *a = ctx;
	memcpy(a->held + a->held_len, bytes, n);
	a->held_len += n;
}

int px_answer_hold(struct px_answer *a, const char *json, size_t len)
{
	if (a->held_json + len > a->max_held)
		return -1;
	size_t need = a->held_len + len + 8; /* "data: " + json + "\n\n" at most */
	if (need > a->held_cap) {
		size_t cap = a->held_cap ? a->held_cap : HELD_INITIAL;
		while (cap < need)
			cap *= 2;
		char *p = realloc(a->held, cap);
		if (!p)
			return -1;
		a->held = p;
		a->held_cap = cap;
	}
	px_frame_json(json, len, held_put, a);
	a->held_json += len;
	return 0;
}

const char *px_answer_held(const struct px_answer *a, size_t *len)
{
	*len = a->held_len;
	return a->held;
}

void px_answer_held_clear(struct px_answer *a)
{
	a->held_len = 0;
	a->held_json = 0;
}

void px_answer_cut(const struct px_answer *a, struct px_cut *out)
{
	out->text_bytes = a->fed_text;
	out->reasoning_bytes = a->fed_reasoning;
	out->tool_calls = a->calls_done;
	const struct gd_trip *trip = gd_pipeline_trip(a->pipe);
	if (trip && trip->stream == GD_STREAM_TOOLS && trip->cut < out->tool_calls)
		out->tool_calls = (size_t)trip->cut;
}

struct px_answer_id *px_answer_id(struct px_answer *a)
{
	return &a->aid;
}

void px_frame_json(const char *json, size_t len,
                   void (*put)(void *ctx, const char *bytes, size_t n), void *ctx)
{
	put(ctx, "data: ", 6);
	for (size_t i = 0, run = 0; i <= len; i++) {
		if (i == len || json[i] == '\n' || json[i] == '\r') {
			if (i > run)
				put(ctx, json + run, i - run);
			run = i + 1;
		}
	}
	put(ctx, "\n\n", 2);
}
