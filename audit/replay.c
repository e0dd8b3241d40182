/* Offline replay (see replay.h). */
#include "audit/replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/wire/chunk.h"
#include "proxy/wire/request.h"

#define AUD_CHUNK_CAP (4u << 20) /* one chunk or body of a recording */

struct aud_replay {
	const struct gd_policy *policy;
	struct gd_history *hist;
	struct gd_pipeline *pipe;
	struct px_chunk *conv;
	struct aud_result res;
	uint64_t cur_chunk;
	unsigned long cur_line;
	const struct aud_observer *obs;
};

void aud_replay_observe(struct aud_replay *r, const struct aud_observer *o)
{
	r->obs = o;
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
	r->pipe = gd_pipeline_new(policy, r->hist);
	r->conv = px_chunk_new(AUD_CHUNK_CAP);
	if (!r->pipe || !r->conv) {
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
	gd_pipeline_free(r->pipe);
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

static int on_event(const struct gd_event *ev, void *ctx)
{
	struct aud_replay *r = ctx;

	r->res.events++;
	enum gd_verdict v = gd_pipeline_feed(r->pipe, ev);
	if (r->obs && r->obs->event)
		r->obs->event(r->obs->ctx, ev, v, r->pipe);
	if (v == GD_TRIP) {
		const struct gd_trip *t = gd_pipeline_trip(r->pipe);

		r->res.tripped = true;
		if (t)
			r->res.trip = *t;
		r->res.trip_chunk = r->cur_chunk;
		r->res.trip_line = r->cur_line;
		return 1; /* stop: the proxy would cut the stream here */
	}
	return 0;
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
	enum aud_status st = converted(r, px_chunk_feed(r->conv, data, len, on_event, r, err, errlen));
	if (r->obs && r->obs->chunk)
		r->obs->chunk(r->obs->ctx, r->pipe);
	return st;
}

enum aud_status aud_replay_body(struct aud_replay *r, const char *data, size_t len,
                                char *err, size_t errlen)
{
	if (r->res.tripped)
		return AUD_TRIPPED;
	r->cur_chunk = 1;
	r->cur_line = 1;
	r->res.chunks = 1;
	enum aud_status st = converted(r, px_chunk_body(r->conv, data, len, on_event, r, err, errlen));
	if (r->obs && r->obs->chunk)
		r->obs->chunk(r->obs->ctx, r->pipe);
	return st;
}

enum aud_status aud_replay_finish(struct aud_replay *r, struct aud_result *out)
{
	struct px_chunk_info info;
	enum aud_status st = AUD_OK;

	if (!r->res.tripped) {
		st = converted(r, px_chunk_end(r->conv, on_event, r));
		if (r->obs && r->obs->chunk)
			r->obs->chunk(r->obs->ctx, r->pipe);
	}
	px_chunk_info(r->conv, &info);
	r->res.finished = info.finished;
	snprintf(r->res.finish_reason, sizeof(r->res.finish_reason), "%s", info.finish_reason);
	r->res.tool_calls = info.tool_calls;
	gd_pipeline_stats(r->pipe, &r->res.stats);
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
