/* Offline replay (see replay.h). */
#include "audit/replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/answer.h"
#include "proxy/wire/chunk.h"
#include "proxy/wire/request.h"

#define AUD_CHUNK_CAP (4u << 20) /* one chunk or body of a recording */

struct aud_replay {
	const struct gd_policy *policy;
	struct gd_history *hist;
	struct px_answer *answer; /* the proxy's own answer core */
	struct px_chunk *conv;
	struct aud_result res;
	uint64_t cur_chunk;
	unsigned long cur_line;
	const struct aud_observer *obs;
};

/* The core's per-event hook, passed on to the observer. */
static void observe_event(void *ctx, const struct gd_event *ev, enum gd_verdict v,
                          const struct gd_pipeline *p)
{
	struct aud_replay *r = ctx;

	if (r->obs && r->obs->event)
		r->obs->event(r->obs->ctx, ev, v, p);
}

void aud_replay_observe(struct aud_replay *r, const struct aud_observer *o)
{
	r->obs = o;
	px_answer_observe(r->answer, o && o->event ? observe_event : NULL, r);
}

const char *aud_strerror(enum aud_status st)
{
	switch (st) {
	case AUD_OK: return "ok";
	case AUD_TRIPPED: return "tripped";
	case AUD_EREQUEST: return "bad request body";
	case AUD_ECHUNK: return "bad chunk";
	case AUD_EUPSTREAM: return "upstream error in the recording";
	case AUD_ECONFIG: return "bad config override";
	case AUD_ENOMEM: return "out of memory";
	}
	return "unknown audit status";
}

struct aud_replay *aud_replay_new(const struct gd_policy *policy, const char *request,
                                  size_t request_len, enum aud_status *st,
                                  char *err, size_t errlen)
{
	struct aud_replay *r = calloc(1, sizeof(*r));

	*st = AUD_ENOMEM;
	if (!r)
		goto fail;
	r->policy = policy;
	if (request) {
		r->hist = px_request_history(policy, request, request_len, err, errlen);
		if (!r->hist) {
			*st = AUD_EREQUEST;
			goto fail;
		}
	}
	r->answer = px_answer_new(policy, r->hist, AUD_CHUNK_CAP);
	r->conv = px_chunk_new(AUD_CHUNK_CAP);
	if (!r->answer || !r->conv) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	*st = AUD_OK;
	return r;
fail:
	aud_replay_free(r);
	return NULL;
}

void aud_replay_free(struct aud_replay *r)
{
	if (!r)
		return;
	px_answer_free(r->answer);
	gd_history_free(r->hist);
	px_chunk_free(r->conv);
	free(r);
}

enum aud_status aud_replay_history(struct aud_replay *r)
{
	if (r->res.tripped)
		return AUD_TRIPPED;
	if (r->hist && gd_history_check(r->hist, &r->res.trip)) {
		r->res.tripped = true;
		r->res.history_trip = true;
		r->res.trip_chunk = 0;
		return AUD_TRIPPED;
	}
	return AUD_OK;
}

/* After a unit of the answer core: a trip ends the replay where the proxy
 * would cut the stream. */
static void note_unit(struct aud_replay *r)
{
	r->res.events = px_answer_events(r->answer);
	if (!r->res.tripped && px_answer_verdict(r->answer) == PX_VERDICT_TRIP) {
		const struct gd_trip *t = px_answer_trip(r->answer);

		r->res.tripped = true;
		if (t)
			r->res.trip = *t;
		r->res.trip_chunk = r->cur_chunk;
		r->res.trip_line = r->cur_line;
	}
}

static enum aud_status converted(struct aud_replay *r, enum px_chunk_status cs)
{
	switch (cs) {
	case PX_CHUNK_OK: return AUD_OK;
	case PX_CHUNK_ESTOPPED: return r->res.tripped ? AUD_TRIPPED : AUD_OK;
	case PX_CHUNK_EUPSTREAM: return AUD_EUPSTREAM;
	default: return AUD_ECHUNK;
	}
}

enum aud_status aud_replay_chunk(struct aud_replay *r, const char *data, size_t len,
                                 uint64_t chunk_no, unsigned long line,
                                 char *err, size_t errlen)
{
	if (r->res.tripped)
		return AUD_TRIPPED;
	r->cur_chunk = chunk_no;
	r->cur_line = line;
	r->res.chunks++;
	if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
		r->res.done = true;
		return AUD_OK;
	}
	enum px_chunk_status cs = px_answer_chunk(r->answer, r->conv, data, len, err, errlen);

	note_unit(r);
	if (r->obs && r->obs->chunk)
		r->obs->chunk(r->obs->ctx, px_answer_pipeline(r->answer));
	return converted(r, cs);
}

enum aud_status aud_replay_body(struct aud_replay *r, const char *data, size_t len,
                                char *err, size_t errlen)
{
	if (r->res.tripped)
		return AUD_TRIPPED;
	r->cur_chunk = 1;
	r->cur_line = 1;
	r->res.chunks = 1;
	enum px_chunk_status cs = px_answer_body(r->answer, r->conv, data, len, err, errlen);

	note_unit(r);
	if (r->obs && r->obs->chunk)
		r->obs->chunk(r->obs->ctx, px_answer_pipeline(r->answer));
	return converted(r, cs);
}

enum aud_status aud_replay_finish(struct aud_replay *r, struct aud_result *out)
{
	struct px_chunk_info info;
	enum aud_status st = AUD_OK;

	if (!r->res.tripped) {
		enum px_chunk_status cs = px_answer_chunk_end(r->answer, r->conv);

		note_unit(r);
		st = converted(r, cs);
		if (r->obs && r->obs->chunk)
			r->obs->chunk(r->obs->ctx, px_answer_pipeline(r->answer));
	}
	px_chunk_info(r->conv, &info);
	r->res.finished = info.finished;
	snprintf(r->res.finish_reason, sizeof(r->res.finish_reason), "%s", info.finish_reason);
	r->res.tool_calls = info.tool_calls;
	gd_pipeline_stats(px_answer_pipeline(r->answer), &r->res.stats);
	*out = r->res;
	return r->res.tripped ? AUD_TRIPPED : st;
}

enum aud_status aud_config_apply(const struct gd_config *base, struct gd_config *out,
                                 char *const *keys, char *const *values, uint32_t n,
                                 char *err, size_t errlen)
{
	char why[256];

	*out = *base;
	for (uint32_t i = 0; i < n; i++) {
		why[0] = '\0';
		if (gd_config_set(out, keys[i], values[i], why, sizeof(why)) != 0) {
			snprintf(err, errlen, "config override %s=%s: %s", keys[i], values[i], why);
			return AUD_ECONFIG;
		}
	}
	return AUD_OK;
}
