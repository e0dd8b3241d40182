/* Fuzz target for what loopwarden reads from a client's request body before
 * any upstream answers: the conversation history (gd_history_parse,
 * gd_history_check), canonical tool-call arguments (gd_canon), and one
 * answer's pipeline fed the input as a tool call's arguments against that
 * history. Nothing may crash, read out of bounds or leak; every refusal
 * explains itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guards/canon.h"
#include "guards/history.h"
#include "guards/pipeline.h"
#include "guards/policy.h"

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

static void feed(struct gd_pipeline *p, const struct gd_event *ev)
{
	enum gd_verdict v = gd_pipeline_feed(p, ev);

	if (v == GD_TRIP && (!gd_pipeline_trip(p) || !gd_pipeline_trip(p)->guard[0]))
		abort(); /* a trip is recorded and names its guard */
}

/* One answer: the input as the arguments of a read_file call, in two
 * fragments, then a finish. */
static void fz_answer(const struct gd_history *hist, const char *data, size_t len)
{
	struct gd_pipeline *p = gd_pipeline_new(fz_policy(), hist);
	struct gd_event ev;
	size_t half = len / 2;

	if (!p)
		abort();
	memset(&ev, 0, sizeof(ev));
	ev.prompt_tokens = ev.completion_tokens = -1;
	ev.type = GD_EV_TOOL_BEGIN;
	ev.id = "call_fz";
	ev.id_len = 7;
	ev.name = "read_file";
	ev.name_len = 9;
	ev.data = "";
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
	char *body = malloc(size + 1); /* the proxy hands the parser a NUL-terminated body */
	char err[256] = "";
	struct gd_history *hist;
	struct gd_trip trip;

	if (!body)
		abort();
	memcpy(body, data, size);
	body[size] = '\0';
	hist = gd_history_parse(fz_policy(), body, size, err, sizeof(err));
	if (hist) {
		memset(&trip, 0, sizeof(trip));
		if (gd_history_check(hist, &trip) && !trip.guard[0])
			abort(); /* a trip names its guard */
	} else if (err[0] == '\0') {
		abort();
	}
	fz_canon(body, size);
	fz_answer(hist, body, size);
	gd_history_free(hist);
	free(body);
	return 0;
}

#include "wire_replay.h"
