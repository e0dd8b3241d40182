/* The per-answer pipeline: routes events to the watchdogs (content,
 * reasoning and each call's arguments are separate streams), holds tool calls
 * until their arguments are complete JSON, then runs the call guards on the
 * completed call. Memory follows what the answer uses: a stream's watchdogs
 * are allocated when its first byte arrives (the reasoning's with the
 * paraphrase watchdog, a call's when it is the first to take a watched slot),
 * their windows grow with the stream up to the configured sizes, and a
 * watched call's argument buffer grows with its arguments up to
 * max_args_bytes. A slot's buffers are kept for the answer's later calls, so
 * an answer allocates a bounded number of times (about log2 of each cap per
 * stream), never per event. Out of memory while growing, a stream keeps the
 * window it has; a stream whose watchdogs cannot be allocated is not
 * watched (like a fifth concurrently open call), a call whose arguments do
 * not fit is identified by its raw bytes. */
#include "guards/pipeline.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "guards/budget.h"
#include "guards/canon.h"
#include "guards/cross_turn.h"
#include "guards/dedup.h"
#include "guards/failure.h"
#include "guards/limits.h"
#include "guards/name_run.h"
#include "guards/paraphrase.h"
#include "guards/policy_int.h"
#include "guards/repeat.h"
#include "guards/simhash.h"
#include "guards/stall.h"
#include "guards/util.h"

/* Calls whose arguments are buffered and watched at once; a further open call
 * (more than this many incomplete at the same time) is identified by its raw
 * bytes and its arguments are not watched. */
#define GD_WATCHED_CALLS 4

/* A watched call's first argument buffer (it doubles up to max_args_bytes). */
#define ARGS_MIN 256

struct watch {
	struct gd_repeat rep;
	struct gd_repeat ctr; /* the counter rule: gd_repeat_init_counter */
	struct gd_simhash sim;
};

struct reasoning {
	struct watch w;
	struct gd_paraphrase paraphrase;
};

struct heavy {
	bool busy;
	char *args;          /* grows up to max_args_bytes */
	size_t args_cap;
	struct watch *w;     /* allocated by the first call that uses the slot */
	bool w_failed;       /* out of memory: the slot's calls are not watched */
};

struct call {
	bool open;
	uint32_t index;
	uint64_t seq;        /* order of opening */
	size_t id_len;
	char id[GD_ID_MAX];
	size_t name_len;
	char name[GD_NAME_MAX];
	uint64_t name_hash;
	struct gd_json_scan scan;
	uint64_t args_len;
	uint64_t raw_hash;   /* FNV over all argument bytes */
	bool overflow;       /* arguments not kept: longer than max_args_bytes (or no memory) */
	struct heavy *heavy; /* NULL: unwatched */
};

struct gd_pipeline {
	const struct gd_policy *policy;
	const struct gd_config *cfg;
	const struct gd_history *hist;
	bool tripped;
	struct gd_trip trip;
	struct gd_stats stats;
	struct watch *text;           /* at the first text byte */
	struct reasoning *reasoning;  /* at the first reasoning byte */
	bool text_failed, reasoning_failed; /* out of memory: not watched */
	uint32_t n_open;
	uint64_t seq;
	struct call calls[GD_MAX_OPEN_CALLS];
	struct heavy heavy[GD_WATCHED_CALLS];
	struct gd_name_run name_run;
	struct gd_dedup dedup;
	struct gd_budget budget;
	struct gd_stall stall;
	float near_cross_turn;  /* the last completed call: rounds over max_rounds */
	float near_failure;     /* and its permanent failures over max_failures */
	bool answer_mutated;
};

static void watch_fini(struct watch *w)
{
	gd_simhash_fini(&w->sim);
	gd_repeat_fini(&w->ctr);
	gd_repeat_fini(&w->rep);
}

/* Initializes <w> (its windows at their first sizes); -1 when out of memory
 * (nothing left allocated). */
static int watch_init(struct watch *w, const struct gd_policy *policy)
{
	memset(w, 0, sizeof(*w));
	if (gd_repeat_init(&w->rep, &policy->cfg.repeat) ||
	    gd_repeat_init_counter(&w->ctr, &policy->counter) ||
	    gd_simhash_init(&w->sim, &policy->cfg.simhash)) {
		watch_fini(w);
		return -1;
	}
	return 0;
}

static struct watch *watch_new(const struct gd_policy *policy)
{
	struct watch *w = malloc(sizeof(*w));

	if (w && watch_init(w, policy)) {
		free(w);
		w = NULL;
	}
	return w;
}

static void watch_free(struct watch *w)
{
	if (!w)
		return;
	watch_fini(w);
	free(w);
}

static void watch_reset(struct watch *w)
{
	gd_repeat_reset(&w->rep);
	gd_repeat_reset(&w->ctr);
	gd_simhash_reset(&w->sim);
}

static enum gd_verdict watch_feed(struct gd_pipeline *p, struct watch *w, const char *data,
                                  size_t len, enum gd_stream stream)
{
	if (p->cfg->repeat.enabled &&
	    gd_repeat_feed(&w->rep, data, len, stream, &p->trip) == GD_TRIP)
		return GD_TRIP;
	if (p->policy->counter.enabled &&
	    gd_repeat_feed(&w->ctr, data, len, stream, &p->trip) == GD_TRIP)
		return GD_TRIP;
	if (p->cfg->simhash.enabled &&
	    gd_simhash_feed(&w->sim, data, len, stream, &p->trip) == GD_TRIP)
		return GD_TRIP;
	return GD_PASS;
}

struct gd_pipeline *gd_pipeline_new(const struct gd_policy *policy,
                                    const struct gd_history *hist)
{
	struct gd_pipeline *p;

	if (!policy)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->policy = policy;
	p->cfg = &policy->cfg;
	p->hist = hist;
	gd_name_run_init(&p->name_run);
	gd_dedup_init(&p->dedup);
	gd_budget_init(&p->budget);
	return p;
}

void gd_pipeline_free(struct gd_pipeline *p)
{
	if (!p)
		return;
	for (int i = GD_WATCHED_CALLS; i-- > 0;) {
		watch_free(p->heavy[i].w);
		free(p->heavy[i].args);
	}
	if (p->reasoning) {
		watch_fini(&p->reasoning->w);
		free(p->reasoning);
	}
	watch_free(p->text);
	free(p);
}

/* The reasoning stream's watchdogs, allocated at its first byte (NULL: out
 * of memory, not watched). */
static struct reasoning *reasoning_of(struct gd_pipeline *p)
{
	struct reasoning *r;

	if (p->reasoning || p->reasoning_failed)
		return p->reasoning;
	r = malloc(sizeof(*r));
	if (!r || watch_init(&r->w, p->policy)) {
		free(r);
		p->reasoning_failed = true;
		return NULL;
	}
	gd_paraphrase_init(&r->paraphrase, &p->cfg->paraphrase);
	p->reasoning = r;
	return r;
}

static struct watch *text_of(struct gd_pipeline *p)
{
	if (!p->text && !p->text_failed) {
		p->text = watch_new(p->policy);
		p->text_failed = !p->text;
	}
	return p->text;
}

static enum gd_verdict verdict(const struct gd_pipeline *p)
{
	if (p->tripped)
		return GD_TRIP;
	return p->n_open ? GD_HOLD : GD_PASS;
}

static enum gd_verdict trip_now(struct gd_pipeline *p)
{
	p->tripped = true;
	p->trip.event_no = p->stats.events;
	return GD_TRIP;
}

static bool same_id(const struct call *c, const char *id, size_t len)
{
	if (len > GD_ID_MAX)
		len = GD_ID_MAX;
	return c->id_len == len && memcmp(c->id, id, len) == 0;
}

/* The open call an event belongs to: (index, id) when the event has an id,
 * else the most recently opened call with that index. */
static struct call *find_call(struct gd_pipeline *p, uint32_t index, const char *id,
                              size_t id_len)
{
	struct call *best = NULL;

	for (int i = 0; i < GD_MAX_OPEN_CALLS; i++) {
		struct call *c = &p->calls[i];
		if (!c->open || c->index != index)
			continue;
		if (id_len) {
			if (same_id(c, id, id_len))
				return c;
			continue;
		}
		if (!best || c->seq > best->seq)
			best = c;
	}
	return best;
}

static struct call *open_call(struct gd_pipeline *p, uint32_t index, const char *id,
                              size_t id_len, const char *name, size_t name_len)
{
	struct call *c = NULL;

	for (int i = 0; i < GD_MAX_OPEN_CALLS && !c; i++)
		if (!p->calls[i].open)
			c = &p->calls[i];
	if (!c)
		return NULL;
	memset(c, 0, sizeof(*c));
	c->open = true;
	c->index = index;
	c->seq = p->seq++;
	c->id_len = id_len < GD_ID_MAX ? id_len : GD_ID_MAX;
	if (id_len)
		memcpy(c->id, id, c->id_len);
	c->name_len = name_len < GD_NAME_MAX - 1 ? name_len : GD_NAME_MAX - 1;
	if (name_len)
		memcpy(c->name, name, c->name_len);
	c->name_hash = gd_hash_mix(gd_hash_bytes(GD_FNV_OFFSET, name, name_len));
	c->raw_hash = GD_FNV_OFFSET;
	gd_json_scan_init(&c->scan);
	for (int i = 0; i < GD_WATCHED_CALLS; i++) {
		struct heavy *h = &p->heavy[i];
		if (h->busy)
			continue;
		/* The slot's watchdogs: allocated once, reset for each call. */
		if (h->w)
			watch_reset(h->w);
		else if (!h->w_failed && !(h->w = watch_new(p->policy)))
			h->w_failed = true;
		if (h->w) {
			c->heavy = h;
			h->busy = true;
		}
		break;
	}
	p->n_open++;
	return c;
}

static void close_call(struct gd_pipeline *p, struct call *c)
{
	if (c->heavy)
		c->heavy->busy = false;
	c->heavy = NULL;
	c->open = false;
	p->n_open--;
}

/* The call's arguments are complete: run the call guards. */
static enum gd_verdict finish_call(struct gd_pipeline *p, struct call *c)
{
	const struct gd_config *cfg = p->cfg;
	uint64_t before = p->budget.calls;
	struct gd_call_id id;
	const char *name = c->name_len ? c->name : "(unnamed)";
	bool mutating = gd_cross_turn_is_mutating(&cfg->cross_turn, c->name, c->name_len);
	enum gd_verdict v = GD_PASS;
	uint32_t rounds = 0, failures = 0;

	if (c->heavy && !c->overflow)
		gd_call_id(&cfg->cross_turn, c->name, c->name_len, c->heavy->args, c->args_len, &id);
	else
		gd_call_id_raw(c->name, c->name_len, c->raw_hash, &id);
	close_call(p, c);
	p->stats.tool_calls++;
	if (gd_budget_call(&p->budget, &cfg->budget, &p->trip) == GD_TRIP ||
	    gd_name_run_check(&p->name_run, &cfg->name_run, c->name_hash, name, c->name_len,
	                      before, &p->trip) == GD_TRIP ||
	    gd_dedup_check(&p->dedup, &cfg->dedup, &id,
	                   gd_dedup_limit(&cfg->dedup, c->name, c->name_len, mutating),
	                   gd_dedup_repeatable(&cfg->dedup, c->name, c->name_len), name,
	                   &p->trip) == GD_TRIP ||
	    gd_cross_turn_check(&cfg->cross_turn, p->hist, &id, p->answer_mutated, name,
	                        before, &rounds, &p->trip) == GD_TRIP ||
	    gd_failure_check(p->policy, p->hist, &id, p->answer_mutated, name,
	                     &failures, &p->trip) == GD_TRIP) {
		p->trip.stream = GD_STREAM_TOOLS;
		p->trip.cut = before;
		v = trip_now(p);
	}
	/* For gd_pipeline_near: a few stores per completed call. */
	p->near_cross_turn = (float)rounds / (float)cfg->cross_turn.max_rounds;
	p->near_failure = (float)failures / (float)cfg->failure.max_failures;
	if (mutating)
		p->answer_mutated = true;
	return v;
}

static bool all_space(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/* Makes room for <need> bytes of arguments in slot <h>'s buffer (doubling,
 * up to max_args_bytes); false when they do not fit or memory is short. */
static bool keep_args(struct gd_pipeline *p, struct heavy *h, uint64_t need)
{
	size_t cap = h->args_cap ? h->args_cap : ARGS_MIN, max = p->cfg->limits.max_args_bytes;
	char *args;

	if (need <= h->args_cap)
		return true;
	if (need > max)
		return false;
	while (cap < need)
		cap *= 2;
	if (cap > max)
		cap = max;
	args = realloc(h->args, cap);
	if (!args)
		return false;
	h->args = args;
	h->args_cap = cap;
	return true;
}

static enum gd_verdict call_args(struct gd_pipeline *p, const struct gd_event *ev)
{
	struct call *c = find_call(p, ev->index, ev->id, ev->id ? ev->id_len : 0);
	enum gd_scan_state st;

	if (!c) {
		if (all_space(ev->data, ev->len))
			return GD_PASS; /* whitespace after a completed call */
		c = open_call(p, ev->index, ev->id, ev->id ? ev->id_len : 0, NULL, 0);
		if (!c)
			goto too_many;
	}
	c->raw_hash = gd_hash_bytes(c->raw_hash, ev->data, ev->len);
	if (c->heavy) {
		if (!c->overflow && keep_args(p, c->heavy, c->args_len + ev->len))
			memcpy(c->heavy->args + c->args_len, ev->data, ev->len);
		else
			c->overflow = true;
		if (watch_feed(p, c->heavy->w, ev->data, ev->len, GD_STREAM_TOOL_ARGS) == GD_TRIP)
			return trip_now(p);
	}
	c->args_len += ev->len;
	st = gd_json_scan_feed(&c->scan, ev->data, ev->len);
	if (st == GD_SCAN_COMPLETE)
		return finish_call(p, c);
	return GD_PASS;
too_many:
	gd_trip_set(&p->trip, "budget", GD_STREAM_TOOLS, p->budget.calls,
	            "more than %d tool calls open at once", GD_MAX_OPEN_CALLS);
	return trip_now(p);
}

/* The bytes of text or reasoning event <ev> the guards read before they
 * tripped: up to the tripping byte for a watchdog (trip.at counts from the
 * stream's start, <start> bytes came before <ev>), up to the first byte over
 * max_output_bytes for the budget. */
static uint64_t used_of(const struct gd_pipeline *p, const struct gd_event *ev, uint64_t start)
{
	const struct gd_trip *t = &p->trip;
	enum gd_stream s = ev->type == GD_EV_TEXT ? GD_STREAM_TEXT : GD_STREAM_REASONING;

	if (t->stream == s && t->at > start && t->at - start <= ev->len)
		return t->at - start;
	if (t->stream == GD_STREAM_NONE && strcmp(t->guard, "budget") == 0 &&
	    p->cfg->budget.max_output_bytes && p->budget.bytes - ev->len <= p->cfg->budget.max_output_bytes)
		return p->cfg->budget.max_output_bytes - (p->budget.bytes - ev->len) + 1;
	return ev->len;
}

static enum gd_verdict feed(struct gd_pipeline *p, const struct gd_event *ev)
{
	struct call *c;
	size_t id_len;

	id_len = ev->id ? ev->id_len : 0;
	switch (ev->type) {
	case GD_EV_TEXT:
	case GD_EV_REASONING: {
		bool text = ev->type == GD_EV_TEXT;
		uint64_t start = text ? p->stats.text_bytes : p->stats.reasoning_bytes;
		struct reasoning *r = NULL;
		struct watch *w;
		if (!ev->len)
			break;
		if (text) {
			p->stats.text_bytes += ev->len;
			w = text_of(p);
		} else {
			p->stats.reasoning_bytes += ev->len;
			r = reasoning_of(p);
			w = r ? &r->w : NULL;
		}
		if (gd_budget_bytes(&p->budget, &p->cfg->budget, ev->len, &p->trip) == GD_TRIP ||
		    (w && watch_feed(p, w, ev->data, ev->len,
		                     text ? GD_STREAM_TEXT : GD_STREAM_REASONING) == GD_TRIP) ||
		    (r && p->cfg->paraphrase.enabled &&
		     gd_paraphrase_feed(&r->paraphrase, ev->data, ev->len, GD_STREAM_REASONING,
		                        &p->trip) == GD_TRIP)) {
			p->trip.event_used = used_of(p, ev, start);
			return trip_now(p);
		}
		break;
	}
	case GD_EV_TOOL_BEGIN:
		c = find_call(p, ev->index, ev->id, id_len);
		if (c && (id_len || (!c->name_len && !c->args_len))) {
			/* The same call again (a repeated first delta): adopt a name. */
			if (!c->name_len && ev->name_len) {
				c->name_len = ev->name_len < GD_NAME_MAX - 1 ? ev->name_len : GD_NAME_MAX - 1;
				memcpy(c->name, ev->name, c->name_len);
				c->name_hash = gd_hash_mix(gd_hash_bytes(GD_FNV_OFFSET, ev->name,
				                                         ev->name_len));
			}
			break;
		}
		if (!open_call(p, ev->index, ev->id, id_len, ev->name, ev->name ? ev->name_len : 0)) {
			gd_trip_set(&p->trip, "budget", GD_STREAM_TOOLS, p->budget.calls,
			            "more than %d tool calls open at once", GD_MAX_OPEN_CALLS);
			return trip_now(p);
		}
		break;
	case GD_EV_TOOL_ARGS:
		if (!ev->len)
			break;
		if (gd_budget_bytes(&p->budget, &p->cfg->budget, ev->len, &p->trip) == GD_TRIP)
			return trip_now(p);
		if (call_args(p, ev) == GD_TRIP)
			return GD_TRIP;
		break;
	case GD_EV_TOOL_END:
		c = find_call(p, ev->index, ev->id, id_len);
		if (c && finish_call(p, c) == GD_TRIP)
			return GD_TRIP;
		break;
	case GD_EV_FINISH:
		/* The answer is over: every call still open is as complete as it
		 * will get, in the order they were opened. */
		while (p->n_open) {
			struct call *first = NULL;
			for (int i = 0; i < GD_MAX_OPEN_CALLS; i++)
				if (p->calls[i].open && (!first || p->calls[i].seq < first->seq))
					first = &p->calls[i];
			if (finish_call(p, first) == GD_TRIP)
				return GD_TRIP;
		}
		break;
	case GD_EV_USAGE:
	case GD_EV_COUNT:
		break;
	}
	return verdict(p);
}

enum gd_verdict gd_pipeline_feed(struct gd_pipeline *p, const struct gd_event *ev)
{
	enum gd_verdict v;

	p->stats.events++;
	if (p->tripped)
		return GD_TRIP;
	v = feed(p, ev);
	/* Call guards judge whole events (the one that completed the call). */
	if (v == GD_TRIP && ev->type != GD_EV_TEXT && ev->type != GD_EV_REASONING)
		p->trip.event_used = ev->len;
	return v;
}

bool gd_pipeline_holding(const struct gd_pipeline *p)
{
	return p->n_open > 0;
}

void gd_pipeline_start(struct gd_pipeline *p, uint64_t now_ms)
{
	gd_stall_start(&p->stall, now_ms);
}

void gd_pipeline_touch(struct gd_pipeline *p, uint64_t now_ms)
{
	gd_stall_touch(&p->stall, now_ms);
}

enum gd_verdict gd_pipeline_tick(struct gd_pipeline *p, uint64_t now_ms)
{
	if (p->tripped)
		return GD_TRIP;
	if (gd_stall_tick(&p->stall, &p->cfg->watchdog, p->cfg->budget.max_wall_ms, now_ms,
	                  &p->trip) == GD_TRIP)
		return trip_now(p);
	return GD_PASS;
}

uint64_t gd_pipeline_next_deadline_ms(const struct gd_pipeline *p, uint64_t now_ms)
{
	return gd_stall_deadline(&p->stall, &p->cfg->watchdog, p->cfg->budget.max_wall_ms,
	                         now_ms);
}

const struct gd_trip *gd_pipeline_trip(const struct gd_pipeline *p)
{
	return p->tripped ? &p->trip : NULL;
}

void gd_pipeline_stats(const struct gd_pipeline *p, struct gd_stats *out)
{
	*out = p->stats;
}

const char *gd_guard_name(enum gd_guard g)
{
	static const char *const names[GD_GUARD_COUNT] = {
		[GD_GUARD_NAME_RUN] = "name_run", [GD_GUARD_DEDUP] = "dedup",
		[GD_GUARD_CROSS_TURN] = "cross_turn", [GD_GUARD_FAILURE] = "failure",
		[GD_GUARD_REPEAT] = "repeat", [GD_GUARD_COUNTER] = "repeat (counter rule)",
		[GD_GUARD_SIMHASH] = "simhash", [GD_GUARD_PARAPHRASE] = "paraphrase",
		[GD_GUARD_BUDGET] = "budget",
	};

	return (unsigned)g < GD_GUARD_COUNT ? names[g] : "unknown";
}

static void near_max(float *slot, float v)
{
	if (v > *slot)
		*slot = v > 1.0f ? 1.0f : v;
}

static void near_watch(const struct gd_pipeline *p, const struct watch *w, float *near)
{
	if (p->cfg->repeat.enabled)
		near_max(&near[GD_GUARD_REPEAT], gd_repeat_near(&w->rep));
	if (p->policy->counter.enabled)
		near_max(&near[GD_GUARD_COUNTER], gd_repeat_near(&w->ctr));
	if (p->cfg->simhash.enabled)
		near_max(&near[GD_GUARD_SIMHASH], gd_simhash_near(&w->sim));
}

void gd_pipeline_near(const struct gd_pipeline *p, float near[GD_GUARD_COUNT])
{
	const struct gd_config *cfg = p->cfg;

	for (int g = 0; g < GD_GUARD_COUNT; g++)
		near[g] = 0.0f;
	if (p->text)
		near_watch(p, p->text, near);
	if (p->reasoning) {
		near_watch(p, &p->reasoning->w, near);
		if (cfg->paraphrase.enabled)
			near_max(&near[GD_GUARD_PARAPHRASE],
			         gd_paraphrase_near(&p->reasoning->paraphrase));
	}
	for (int i = 0; i < GD_WATCHED_CALLS; i++)
		if (p->heavy[i].busy)
			near_watch(p, p->heavy[i].w, near);
	if (cfg->name_run.enabled)
		near_max(&near[GD_GUARD_NAME_RUN], gd_name_run_near(&p->name_run));
	if (cfg->dedup.enabled)
		near_max(&near[GD_GUARD_DEDUP], p->dedup.near);
	near_max(&near[GD_GUARD_CROSS_TURN], p->near_cross_turn);
	near_max(&near[GD_GUARD_FAILURE], p->near_failure);
	if (cfg->budget.max_output_bytes)
		near_max(&near[GD_GUARD_BUDGET],
		         (float)p->budget.bytes / (float)cfg->budget.max_output_bytes);
	if (cfg->budget.max_tool_calls)
		near_max(&near[GD_GUARD_BUDGET],
		         (float)p->budget.calls / (float)cfg->budget.max_tool_calls);
	if (p->tripped) {
		/* The guard that tripped reached its threshold. */
		for (int g = 0; g < GD_GUARD_COUNT; g++)
			if (strcmp(p->trip.guard, gd_guard_name((enum gd_guard)g)) == 0)
				near[g] = 1.0f;
	}
}

size_t gd_pipeline_tail(const struct gd_pipeline *p, enum gd_stream stream, char *buf,
                        size_t cap)
{
	const struct watch *w;
	uint64_t end;
	size_t n, skip = 0;

	if (stream == GD_STREAM_TEXT && p->text)
		w = p->text;
	else if (stream == GD_STREAM_REASONING && p->reasoning)
		w = &p->reasoning->w;
	else
		return 0;
	end = stream == GD_STREAM_TEXT ? p->stats.text_bytes : p->stats.reasoning_bytes;
	if (p->tripped && p->trip.stream == stream && p->trip.at && p->trip.at < end)
		end = p->trip.at;
	n = gd_repeat_tail(&w->rep, end, buf, cap);
	/* Start on a whole character. */
	while (skip < n && skip < 3 && ((unsigned char)buf[skip] & 0xc0) == 0x80)
		skip++;
	if (skip)
		memmove(buf, buf + skip, n - skip);
	return n - skip;
}
