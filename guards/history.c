#include "guards/history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "guards/canon.h"
#include "guards/cross_turn.h"
#include "guards/history_int.h"
#include "guards/pipeline.h"
#include "guards/policy_int.h"
#include "guards/util.h"

static yajl_val get(yajl_val obj, const char *key)
{
	if (!YAJL_IS_OBJECT(obj))
		return NULL;
	for (size_t i = 0; i < obj->u.object.len; i++)
		if (strcmp(obj->u.object.keys[i], key) == 0)
			return obj->u.object.values[i];
	return NULL;
}

static const char *get_str(yajl_val obj, const char *key)
{
	yajl_val v = get(obj, key);
	return YAJL_IS_STRING(v) ? v->u.string : NULL;
}

/* Calls <fn> with each text piece of a message content: a string, or an
 * array of {type: "text", text} parts (other parts are skipped). */
static void each_text(yajl_val content, void (*fn)(const char *s, size_t n, void *ctx),
                      void *ctx)
{
	if (YAJL_IS_STRING(content)) {
		fn(content->u.string, strlen(content->u.string), ctx);
		return;
	}
	if (!YAJL_IS_ARRAY(content))
		return;
	for (size_t i = 0; i < content->u.array.len; i++) {
		yajl_val part = content->u.array.values[i];
		const char *text = get_str(part, "text");
		const char *type = get_str(part, "type");

		if (text && (!type || strcmp(type, "text") == 0))
			fn(text, strlen(text), ctx);
	}
}

struct textbuf {
	char *buf;
	size_t len, cap;
	uint64_t hash;
	uint64_t total;
};

/* Keeps the first <cap> bytes (for failure matching) and hashes all. */
static void head_add(const char *s, size_t n, void *ctx)
{
	struct textbuf *t = ctx;
	size_t room = t->cap - t->len;

	t->hash = gd_hash_bytes(t->hash, s, n);
	t->total += n;
	if (n > room)
		n = room;
	memcpy(t->buf + t->len, s, n);
	t->len += n;
}

/* Keeps the last <cap> bytes. */
static void tail_add(const char *s, size_t n, void *ctx)
{
	struct textbuf *t = ctx;

	if (n >= t->cap) {
		memcpy(t->buf, s + n - t->cap, t->cap);
		t->len = t->cap;
		return;
	}
	if (t->len + n > t->cap) {
		size_t drop = t->len + n - t->cap;
		memmove(t->buf, t->buf + drop, t->len - drop);
		t->len -= drop;
	}
	memcpy(t->buf + t->len, s, n);
	t->len += n;
}

static int keep_tail(yajl_val content, char **out, size_t *outlen)
{
	struct textbuf t = { NULL, 0, GD_HISTORY_MAX_CONTENT, 0, 0 };

	free(*out);
	*out = NULL;
	*outlen = 0;
	if (!content)
		return 0;
	t.buf = malloc(t.cap);
	if (!t.buf)
		return -1;
	each_text(content, tail_add, &t);
	*out = t.buf;
	*outlen = t.len;
	return 0;
}

static struct gd_hist_call *add_call(struct gd_history *h, size_t *cap)
{
	if (h->n_calls == GD_HISTORY_MAX_CALLS) {
		/* Keep the newest half: the guards read from the end. */
		size_t half = GD_HISTORY_MAX_CALLS / 2;
		memmove(h->calls, h->calls + half, (h->n_calls - half) * sizeof(*h->calls));
		h->n_calls -= half;
	}
	if (h->n_calls == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct gd_hist_call *n = realloc(h->calls, ncap * sizeof(*n));
		if (!n)
			return NULL;
		h->calls = n;
		*cap = ncap;
	}
	memset(&h->calls[h->n_calls], 0, sizeof(h->calls[0]));
	return &h->calls[h->n_calls++];
}

static int read_tool_calls(struct gd_history *h, yajl_val calls, size_t *cap,
                           size_t msg, char *err, size_t errlen)
{
	const struct gd_config *cfg = &h->policy->cfg;
	uint32_t turn = h->n_turns++;

	for (size_t i = 0; i < calls->u.array.len; i++) {
		yajl_val tc = calls->u.array.values[i];
		yajl_val fn = get(tc, "function");
		const char *name = get_str(fn, "name");
		const char *id = get_str(tc, "id");
		yajl_val args = get(fn, "arguments");
		struct gd_hist_call *c;
		struct gd_call_id id_of;

		if (!name) {
			snprintf(err, errlen, "messages[%zu].tool_calls[%zu]: no function.name", msg, i);
			return -1;
		}
		c = add_call(h, cap);
		if (!c) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		c->turn = turn;
		c->mutating = gd_cross_turn_is_mutating(&cfg->cross_turn, name, strlen(name));
		snprintf(c->name, sizeof(c->name), "%s", name);
		snprintf(c->id, sizeof(c->id), "%s", id ? id : "");
		if (YAJL_IS_STRING(args) && strlen(args->u.string) > cfg->limits.max_args_bytes) {
			/* As the pipeline identifies a call too long to keep. */
			gd_call_id_raw(name, strlen(name),
			               gd_hash_bytes(GD_FNV_OFFSET, args->u.string,
			                             strlen(args->u.string)), &id_of);
		} else if (YAJL_IS_STRING(args)) {
			gd_call_id(&cfg->cross_turn, name, strlen(name), args->u.string,
			           strlen(args->u.string), &id_of);
		} else if (YAJL_IS_OBJECT(args) || YAJL_IS_ARRAY(args)) {
			/* Arguments as an object (Ollama's native form). */
			gd_call_id_tree(&cfg->cross_turn, name, strlen(name), args, &id_of);
		} else {
			gd_call_id(&cfg->cross_turn, name, strlen(name), "", 0, &id_of);
		}
		c->hash = id_of.exact;
		c->stable = id_of.stable;
	}
	return 0;
}

static void read_result(struct gd_history *h, yajl_val msg)
{
	const char *id = get_str(msg, "tool_call_id");
	struct gd_hist_call *c = NULL;
	char head[GD_FAILURE_SCAN];
	struct textbuf t = { head, 0, sizeof(head), GD_FNV_OFFSET, 0 };

	for (size_t i = h->n_calls; id && *id && i-- > 0 && !c;) {
		struct gd_hist_call *k = &h->calls[i];
		if (!k->has_result && strcmp(k->id, id) == 0)
			c = k;
	}
	if (!c) {
		/* No id (Ollama) or an unknown one: the first unanswered call of
		 * the latest turn. */
		for (size_t i = 0; i < h->n_calls; i++) {
			struct gd_hist_call *k = &h->calls[i];
			if (k->turn + 1 == h->n_turns && !k->has_result) {
				c = k;
				break;
			}
		}
	}
	if (!c)
		return;
	each_text(get(msg, "content"), head_add, &t);
	c->has_result = true;
	c->result_hash = gd_hash_mix(t.hash);
	c->kind = gd_failure_classify(h->policy, head, t.len);
}

struct gd_history *gd_history_parse(const struct gd_policy *policy,
                                    const char *body, size_t len,
                                    char *err, size_t errlen)
{
	struct gd_history *h = NULL;
	char *copy = NULL;
	size_t cap = 0;
	yajl_val root = NULL, msgs;
	char yerr[256];
	bool ok = false;

	if (err && errlen)
		err[0] = '\0';
	if (!policy || (!body && len)) {
		snprintf(err, errlen, "bad argument");
		goto out;
	}
	if (len > GD_HISTORY_MAX_BODY) {
		snprintf(err, errlen, "request body of %zu bytes exceeds the cap of %u",
		         len, GD_HISTORY_MAX_BODY);
		goto out;
	}
	copy = malloc(len + 1);
	h = calloc(1, sizeof(*h));
	if (!copy || !h) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	h->policy = policy;
	if (len)
		memcpy(copy, body, len);
	copy[len] = '\0';
	if (strlen(copy) != len) {
		snprintf(err, errlen, "request body: NUL byte at offset %zu", strlen(copy));
		goto out;
	}
	/* yajl_tree frees recursively and so does our serializer: refuse a
	 * body nested deeper than the canonicalizer's cap before parsing it. */
	struct gd_json_scan scan;
	gd_json_scan_init(&scan);
	if (gd_json_scan_feed(&scan, copy, len) == GD_SCAN_BAD &&
	    scan.depth >= GD_CANON_MAX_DEPTH) {
		snprintf(err, errlen, "request body is nested deeper than %u", GD_CANON_MAX_DEPTH);
		goto out;
	}
	yerr[0] = '\0';
	root = yajl_tree_parse(copy, yerr, sizeof(yerr));
	if (!root) {
		for (char *p = yerr; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		snprintf(err, errlen, "request body is not JSON: %s", yerr);
		goto out;
	}
	msgs = get(root, "messages");
	if (!YAJL_IS_ARRAY(msgs)) {
		snprintf(err, errlen, "request body has no \"messages\" array");
		goto out;
	}
	for (size_t i = 0; i < msgs->u.array.len; i++) {
		yajl_val m = msgs->u.array.values[i];
		const char *role = get_str(m, "role");
		yajl_val calls;

		if (!YAJL_IS_OBJECT(m) || !role) {
			snprintf(err, errlen, "messages[%zu]: not an object with a \"role\"", i);
			goto out;
		}
		if (strcmp(role, "assistant") == 0) {
			yajl_val reasoning = get(m, "reasoning_content");
			if (!reasoning)
				reasoning = get(m, "reasoning");
			if (keep_tail(get(m, "content"), &h->last_text, &h->last_text_len) ||
			    keep_tail(reasoning, &h->last_reasoning, &h->last_reasoning_len)) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			calls = get(m, "tool_calls");
			if (YAJL_IS_ARRAY(calls) && calls->u.array.len &&
			    read_tool_calls(h, calls, &cap, i, err, errlen))
				goto out;
		} else if (strcmp(role, "tool") == 0) {
			read_result(h, m);
		}
	}
	gd_history_link(h);
	ok = true;
out:
	yajl_tree_free(root);
	free(copy);
	if (!ok) {
		gd_history_free(h);
		return NULL;
	}
	return h;
}

struct link_key {
	uint64_t stable, result;
	uint32_t i;
};

static int by_call_and_result(const void *a, const void *b)
{
	const struct link_key *x = a, *y = b;

	if (x->stable != y->stable)
		return x->stable < y->stable ? -1 : 1;
	if (x->result != y->result)
		return x->result < y->result ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* Mutating calls that changed nothing (issue 12 item 3: read → a failing
 * edit → the same failing tests, round after round, was never cut because
 * the edit and the test run reset the count):
 * - inert: it failed permanently ("oldString not found"), or an earlier
 *   twin (same stable identity) got the byte-identical result — a repeat
 *   that did nothing the first one had not done;
 * - repeated: some twin, earlier or later, got the identical result. Between
 *   two identical results of another call, even the first of such twins
 *   changed nothing that call sees (the cross-turn guard, which requires
 *   identical results, skips it; the failure breaker, which does not, only
 *   skips inert calls).
 * O(n log n), once per history; without memory nothing is marked (every
 * mutating call resets, as before). */
void gd_history_link(struct gd_history *h)
{
	struct link_key *keys;
	uint32_t n = 0;

	if (!h || !h->n_calls)
		return;
	keys = malloc(h->n_calls * sizeof(*keys));
	if (!keys)
		return;
	for (size_t i = 0; i < h->n_calls; i++) {
		struct gd_hist_call *c = &h->calls[i];
		if (!c->mutating || !c->has_result)
			continue;
		c->inert = c->kind == GD_RESULT_PERMANENT;
		keys[n++] = (struct link_key){ c->stable, c->result_hash, (uint32_t)i };
	}
	qsort(keys, n, sizeof(*keys), by_call_and_result);
	for (uint32_t a = 0, b; a < n; a = b) {
		for (b = a + 1; b < n && keys[b].stable == keys[a].stable &&
		                keys[b].result == keys[a].result; b++)
			h->calls[keys[b].i].inert = true; /* later than keys[a] */
		for (uint32_t k = a; b - a > 1 && k < b; k++)
			h->calls[keys[k].i].repeated = true;
	}
	free(keys);
}

void gd_history_free(struct gd_history *hist)
{
	if (!hist)
		return;
	free(hist->calls);
	free(hist->last_text);
	free(hist->last_reasoning);
	free(hist);
}

size_t gd_history_calls(const struct gd_history *hist)
{
	return hist ? hist->n_calls : 0;
}

uint32_t gd_history_turns(const struct gd_history *hist)
{
	return hist ? hist->n_turns : 0;
}

bool gd_history_check(const struct gd_history *hist, struct gd_trip *trip)
{
	const struct gd_config *cfg;
	struct gd_pipeline *p;
	bool tripped = false;

	if (!hist)
		return false;
	cfg = &hist->policy->cfg;
	memset(trip, 0, sizeof(*trip));
	/* The last K rounds already are one call with one result. */
	if (cfg->cross_turn.enabled && hist->n_calls) {
		const struct gd_hist_call *last = &hist->calls[hist->n_calls - 1];
		uint32_t rounds = gd_cross_turn_rounds(&cfg->cross_turn, hist, last->stable);
		if (rounds >= cfg->cross_turn.max_rounds) {
			gd_trip_set(trip, "cross_turn", GD_STREAM_NONE, 0,
			            "history: the last %u rounds are call %s with the same "
			            "arguments and the same result", rounds, last->name);
			return true;
		}
	}
	/* The last assistant text already loops (a continuation request). */
	if (!hist->last_text_len && !hist->last_reasoning_len)
		return false;
	p = gd_pipeline_new(hist->policy, NULL);
	if (!p)
		return false;
	struct gd_event ev = { .type = GD_EV_REASONING, .data = hist->last_reasoning,
	                       .len = hist->last_reasoning_len,
	                       .prompt_tokens = -1, .completion_tokens = -1 };
	if (ev.len && gd_pipeline_feed(p, &ev) == GD_TRIP)
		tripped = true;
	ev.type = GD_EV_TEXT;
	ev.data = hist->last_text;
	ev.len = hist->last_text_len;
	if (!tripped && ev.len && gd_pipeline_feed(p, &ev) == GD_TRIP)
		tripped = true;
	if (tripped) {
		*trip = *gd_pipeline_trip(p);
		static const char prefix[] = "history: the last assistant message: ";
		size_t pl = sizeof(prefix) - 1, dl = strlen(trip->detail);
		if (pl + dl >= sizeof(trip->detail))
			dl = sizeof(trip->detail) - 1 - pl;
		memmove(trip->detail + pl, trip->detail, dl);
		memcpy(trip->detail, prefix, pl);
		trip->detail[pl + dl] = '\0';
		trip->event_no = 0;
	}
	gd_pipeline_free(p);
	return tripped;
}
