/* Fuzz target for what loopwarden reads from a client's request body before
 * any upstream answers: the request reader (px_request_read), the history
 * built from its messages (gd_history_new) and checked (gd_history_check),
 * canonical tool-call arguments (gd_canon), and one answer's pipeline fed
 * the request's own texts and calls against that history. Nothing may crash,
 * read out of bounds or leak; every refusal explains itself; whatever the
 * reader keeps is within its caps, NUL-terminated and valid UTF-8. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guards/canon.h"
#include "guards/history.h"
#include "guards/pipeline.h"
#include "guards/policy.h"
#include "guards/utf8.h"
#include "proxy/wire/request.h"

static struct gd_policy *fz_policy(void)
{
	static struct gd_policy *policy;
	char err[256];

	if (!policy) {
		struct gd_config cfg;

		gd_config_defaults(&cfg);
		policy = gd_policy_new(&cfg, err, sizeof(err));
		if (!policy)
			abort();
	}
	return policy;
}

static void fz_canon(const char *json, size_t len)
{
	size_t cap = 2 * len + 16, outlen = 0;
	char *out = malloc(cap);
	char err[256] = "";

	if (!out)
		abort();
	if (gd_canon(json, len, out, cap, &outlen, err, sizeof(err)) == GD_CANON_OK) {
		if (outlen >= cap)
			abort();
	} else if (err[0] == '\0') {
		abort();
	}
	free(out);
}

/* A kept string: NULL only with length 0, NUL after its bytes, UTF-8. */
static void check_str(const struct gd_str *s)
{
	if (!s->ptr) {
		if (s->len)
			abort();
		return;
	}
	if (s->ptr[s->len] != '\0' || !gd_utf8_valid(s->ptr, s->len))
		abort();
}

static void check_request(const struct px_request *q)
{
	if (q->n_msgs > PX_REQUEST_MAX_MESSAGES || q->n_tools > PX_REQUEST_MAX_TOOLS ||
	    q->sampling.n_stop > PX_REQUEST_MAX_STOP || (q->n_msgs && !q->msgs) ||
	    (q->n_tools && !q->tools))
		abort();
	check_str(&q->model);
	for (uint32_t i = 0; i < q->sampling.n_stop; i++)
		check_str(&q->sampling.stop[i]);
	for (size_t i = 0; i < q->n_tools; i++) {
		check_str(&q->tools[i].type);
		check_str(&q->tools[i].name);
		check_str(&q->tools[i].description);
		check_str(&q->tools[i].parameters);
		if (q->tools[i].parameters.ptr)
			fz_canon(q->tools[i].parameters.ptr, q->tools[i].parameters.len);
	}
	for (size_t i = 0; i < q->n_msgs; i++) {
		const struct gd_conv_msg *m = &q->msgs[i];

		if (!m->role_name.ptr || m->role >= GD_ROLE_COUNT || m->n_calls > PX_REQUEST_MAX_CALLS ||
		    (m->n_calls && !m->calls))
			abort();
		check_str(&m->role_name);
		check_str(&m->content);
		check_str(&m->reasoning);
		check_str(&m->tool_call_id);
		check_str(&m->name);
		for (size_t j = 0; j < m->n_calls; j++) {
			const struct gd_conv_call *c = &m->calls[j];

			if (!c->name.ptr)
				abort();
			check_str(&c->id);
			check_str(&c->type);
			check_str(&c->name);
			check_str(&c->args);
			if (c->args.ptr)
				fz_canon(c->args.ptr, c->args.len);
		}
	}
}

static void feed(struct gd_pipeline *p, const struct gd_event *ev)
{
	enum gd_verdict v = gd_pipeline_feed(p, ev);

	if (v == GD_TRIP && (!gd_pipeline_trip(p) || !gd_pipeline_trip(p)->guard[0]))
		abort(); /* a trip is recorded and names its guard */
}

/* One answer against <hist>: the request's message texts as text events and
 * its calls as tool calls (as if the model said it all again), then <data>
 * as the arguments of a read_file call in two fragments, then a finish. */
static void fz_answer(const struct gd_history *hist, const struct px_request *q,
                      const char *data, size_t len)
{
	struct gd_pipeline *p = gd_pipeline_new(fz_policy(), hist);
	struct gd_event ev;
	size_t half = len / 2;
	uint32_t index = 0;

	if (!p)
		abort();
	memset(&ev, 0, sizeof(ev));
	ev.prompt_tokens = ev.completion_tokens = -1;
	ev.id = "";
	ev.name = "";
	for (size_t i = 0; q && i < q->n_msgs && i < 64; i++) {
		const struct gd_conv_msg *m = &q->msgs[i];

		if (m->content.ptr) {
			ev.type = GD_EV_TEXT;
			ev.data = m->content.ptr;
			ev.len = m->content.len;
			feed(p, &ev);
		}
		for (size_t j = 0; j < m->n_calls && j < 16; j++) {
			const struct gd_conv_call *c = &m->calls[j];

			ev.type = GD_EV_TOOL_BEGIN;
			ev.index = index++;
			ev.id = c->id.ptr ? c->id.ptr : "";
			ev.id_len = c->id.len;
			ev.name = c->name.ptr;
			ev.name_len = c->name.len;
			ev.data = "";
			ev.len = 0;
			feed(p, &ev);
			ev.type = GD_EV_TOOL_ARGS;
			ev.data = c->args.ptr ? c->args.ptr : "";
			ev.len = c->args.len;
			feed(p, &ev);
			ev.type = GD_EV_TOOL_END;
			feed(p, &ev);
		}
	}
	ev.type = GD_EV_TOOL_BEGIN;
	ev.index = index;
	ev.id = "call_fz";
	ev.id_len = 7;
	ev.name = "read_file";
	ev.name_len = 9;
	ev.data = "";
	ev.len = 0;
	feed(p, &ev);
	ev.type = GD_EV_TOOL_ARGS;
	ev.id = "";
	ev.id_len = 0;
	ev.data = data;
	ev.len = half;
	feed(p, &ev);
	ev.data = data + half;
	ev.len = len - half;
	feed(p, &ev);
	ev.type = GD_EV_FINISH;
	ev.data = "tool_calls";
	ev.len = 10;
	feed(p, &ev);
	gd_pipeline_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exactly <size> bytes, no NUL after them: the reader must not need one. */
	char *body = malloc(size ? size : 1);
	char err[256] = "";
	struct px_request *q = NULL;
	struct gd_history *hist = NULL;
	struct gd_trip trip;

	if (!body)
		abort();
	memcpy(body, data, size);
	if (px_request_read(body, size, &q, err, sizeof(err)) == PX_REQUEST_OK) {
		if (!q)
			abort();
		check_request(q);
		hist = gd_history_new(fz_policy(), q->msgs, q->n_msgs, err, sizeof(err));
		if (hist) {
			memset(&trip, 0, sizeof(trip));
			if (gd_history_check(hist, &trip) && !trip.guard[0])
				abort(); /* a trip names its guard */
		} else if (err[0] == '\0') {
			abort();
		}
	} else if (q || err[0] == '\0' || !gd_utf8_valid(err, strlen(err))) {
		abort(); /* a refusal explains itself, in text we can put into JSON */
	}
	fz_canon(body, size);
	fz_answer(hist, q, body, size);
	gd_history_free(hist);
	px_request_free(q);
	free(body);
	return 0;
}

#include "wire_replay.h"
