#include "guards/history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guards/budget.h"
#include "guards/canon.h"
#include "guards/cross_turn.h"
#include "guards/history_int.h"
#include "guards/pipeline.h"
#include "guards/policy_int.h"
#include "guards/utf8.h"
#include "guards/util.h"

/* The history is built from messages the request reader parsed
 * (guards/conv.h): no JSON is read here. A message's content is one text
 * (a string, or its text parts joined), so hashing it whole equals hashing
 * its parts in turn (FNV continues across pieces). */

struct textbuf {
	char *buf;
	size_t len, cap;
	uint64_t hash;
	uint64_t total;
};

/* Keeps the first <cap> bytes (for failure matching) and hashes all. */
static void head_add(struct textbuf *t, const char *s, size_t n)
{
	size_t room = t->cap - t->len;

	t->hash = gd_hash_bytes(t->hash, s, n);
	t->total += n;
	if (n > room)
		n = room;
	memcpy(t->buf + t->len, s, n);
	t->len += n;
}

/* Keeps the last <cap> bytes. */
static void tail_add(struct textbuf *t, const char *s, size_t n)
{
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

/* <*out> becomes the tail of <text> (NULL when the message had none). */
static int keep_tail(const struct gd_str *text, char **out, size_t *outlen)
{
	struct textbuf t = { NULL, 0, GD_HISTORY_MAX_CONTENT, 0, 0 };

	free(*out);
	*out = NULL;
	*outlen = 0;
	if (!text->ptr)
		return 0;
	t.buf = malloc(t.cap);
	if (!t.buf)
		return -1;
	tail_add(&t, text->ptr, text->len);
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

/* Copies <s> into <out> (size <cap>), cut to fit and NUL-terminated. */
static void copy_str(char *out, size_t cap, const struct gd_str *s)
{
	size_t n = s->ptr ? s->len : 0;

	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(out, s->ptr, n);
	out[n] = '\0';
}

static int read_tool_calls(struct gd_history *h, const struct gd_conv_msg *m, size_t *cap,
                           size_t msg, char *err, size_t errlen)
{
	const struct gd_config *cfg = &h->policy->cfg;
	uint32_t turn = h->n_turns++;

	for (size_t i = 0; i < m->n_calls; i++) {
		const struct gd_conv_call *tc = &m->calls[i];
		const char *name = tc->name.ptr, *args = tc->args.ptr ? tc->args.ptr : "";
		size_t name_len = tc->name.len, alen = tc->args.ptr ? tc->args.len : 0;
		struct gd_hist_call *c;
		struct gd_call_id id_of;

		if (!name) {
			snprintf(err, errlen, "messages[%zu].tool_calls[%zu]: no function.name", msg, i);
			return -1;
		}
		if (tc->args_json && alen > GD_CANON_MAX_INPUT) {
			snprintf(err, errlen, "messages[%zu].tool_calls[%zu]: arguments too large", msg, i);
			return -1;
		}
		c = add_call(h, cap);
		if (!c) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		c->turn = turn;
		c->mutating = gd_cross_turn_is_mutating(&cfg->cross_turn, name, name_len);
		copy_str(c->name, sizeof(c->name), &tc->name);
		copy_str(c->id, sizeof(c->id), &tc->id);
		if (!tc->args_json && alen > cfg->limits.max_args_bytes) {
			/* As the pipeline identifies a call too long to keep. */
			gd_call_id_raw(name, name_len, gd_hash_bytes(GD_FNV_OFFSET, args, alen), &id_of);
		} else {
			/* A string's value, or an object's raw text (Ollama's native
			 * form): both canonicalized alike, so the two forms of one
			 * call have one identity. */
			gd_call_id(&cfg->cross_turn, name, name_len, args, alen, &id_of);
		}
		c->hash = id_of.exact;
		c->stable = id_of.stable;
	}
	return 0;
}

static void read_result(struct gd_history *h, const struct gd_conv_msg *m)
{
	const struct gd_str *id = &m->tool_call_id;
	struct gd_hist_call *c = NULL;
	char head[GD_FAILURE_SCAN];
	struct textbuf t = { head, 0, sizeof(head), GD_FNV_OFFSET, 0 };

	for (size_t i = h->n_calls; id->ptr && id->len && i-- > 0 && !c;) {
		struct gd_hist_call *k = &h->calls[i];
		if (!k->has_result && strlen(k->id) == id->len && memcmp(k->id, id->ptr, id->len) == 0)
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
	if (m->content.ptr)
		head_add(&t, m->content.ptr, m->content.len);
	c->has_result = true;
	c->result_hash = gd_hash_mix(t.hash);
	c->kind = gd_failure_classify(h->policy, head, t.len);
}

bool gd_history_is_continuation(const struct gd_policy *policy, const char *text, size_t len)
{
	pcre2_match_data *md;
	int rc;

	if (!policy->continuation || !text)
		return false;
	if (len > GD_CONTINUATION_SCAN)
		len = GD_CONTINUATION_SCAN;
	md = pcre2_match_data_create_from_pattern(policy->continuation, NULL);
	if (!md)
		return false;
	rc = pcre2_match(policy->continuation, (PCRE2_SPTR)text, len, 0, 0, md, NULL);
	pcre2_match_data_free(md);
	return rc >= 0;
}

/* Issue 12 item 10: a loop and its cut in the history, then a final answer,
 * then a new, different instruction — still refused, because the history
 * check read the whole conversation. A new user message starts a new task:
 * only what comes after it may prove a loop. A user message that asks to go
 * on with the cut answer (Qwen Code's "Output token limit hit. Resume
 * directly…") continues the task; aider's continuation is an assistant
 * message (prefill) and continues it too. */
static size_t task_start(const struct gd_policy *policy, const struct gd_conv_msg *msgs,
                         size_t n)
{
	for (size_t i = n; i-- > 0;)
		if (msgs[i].role == GD_ROLE_USER &&
		    !gd_history_is_continuation(policy, msgs[i].content.ptr, msgs[i].content.len))
			return i + 1;
	return 0;
}

struct gd_history *gd_history_new(const struct gd_policy *policy,
                                  const struct gd_conv_msg *msgs, size_t n_msgs,
                                  char *err, size_t errlen)
{
	struct gd_history *h = NULL;
	size_t cap = 0;
	bool ok = false;

	if (err && errlen)
		err[0] = '\0';
	if (!policy || (!msgs && n_msgs)) {
		snprintf(err, errlen, "bad argument");
		goto out;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	h->policy = policy;
	h->task_start = task_start(policy, msgs, n_msgs);
	for (size_t i = h->task_start; i < n_msgs; i++) {
		const struct gd_conv_msg *m = &msgs[i];

		if (m->role == GD_ROLE_ASSISTANT) {
			if (keep_tail(&m->content, &h->last_text, &h->last_text_len) ||
			    keep_tail(&m->reasoning, &h->last_reasoning, &h->last_reasoning_len)) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			h->last_output = (m->content.ptr ? m->content.len : 0) +
			                 (m->reasoning.ptr ? m->reasoning.len : 0);
			for (size_t k = 0; k < m->n_calls; k++)
				h->last_output += m->calls[k].args.ptr ? m->calls[k].args.len : 0;
			if (m->n_calls && read_tool_calls(h, m, &cap, i, err, errlen))
				goto out;
		} else if (m->role == GD_ROLE_TOOL) {
			read_result(h, m);
		}
	}
	gd_history_link(h);
	ok = true;
out:
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

size_t gd_history_task_start(const struct gd_history *hist)
{
	return hist ? hist->task_start : 0;
}

/* "history: the last assistant message: " before <trip>'s detail. */
static void prefix_detail(struct gd_trip *trip)
{
	static const char prefix[] = "history: the last assistant message: ";
	size_t pl = sizeof(prefix) - 1, dl = strlen(trip->detail);

	if (pl + dl >= sizeof(trip->detail))
		dl = gd_utf8_cut(trip->detail, dl, sizeof(trip->detail) - 1 - pl);
	memmove(trip->detail + pl, trip->detail, dl);
	memcpy(trip->detail, prefix, pl);
	trip->detail[pl + dl] = '\0';
	trip->event_no = 0;
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
	/* The last assistant message already holds more than one answer may
	 * (the history keeps only the tails of its texts). */
	if (cfg->budget.max_output_bytes) {
		struct gd_budget b;

		gd_budget_init(&b);
		if (gd_budget_bytes(&b, &cfg->budget, hist->last_output, trip) == GD_TRIP) {
			prefix_detail(trip);
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
		prefix_detail(trip);
	}
	gd_pipeline_free(p);
	return tripped;
}
