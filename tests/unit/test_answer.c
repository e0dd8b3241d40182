/* The answer core (proxy/answer.h), the I/O-free part the proxy and
 * loopwarden-audit share: verdicts per unit (relay, hold while a tool call is
 * incomplete, trip), held chunks framed on one line and capped, the cut
 * points of a non-streaming answer, the answer's identity from its first
 * chunk, and the unit figures the glue uses for its watchdog and metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guards/config.h"
#include "guards/policy.h"
#include "proxy/answer.h"
#include "proxy/wire/chunk.h"

static struct gd_policy *pol;

static int setup(void **state)
{
	(void)state;
	struct gd_config cfg;
	char err[256];
	gd_config_defaults(&cfg);
	pol = gd_policy_new(&cfg, err, sizeof(err));
	return pol ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	gd_policy_free(pol);
	return 0;
}

static struct gd_event ev_text(enum gd_event_type type, const char *s)
{
	struct gd_event ev = {.type = type, .data = s, .len = strlen(s),
	                      .prompt_tokens = -1, .completion_tokens = -1};
	return ev;
}

static struct gd_event ev_call(enum gd_event_type type, uint32_t index, const char *name,
                               const char *args)
{
	struct gd_event ev = {.type = type, .index = index, .id = "call_1", .id_len = 6,
	                      .name = name, .name_len = name ? strlen(name) : 0,
	                      .data = args, .len = args ? strlen(args) : 0,
	                      .prompt_tokens = -1, .completion_tokens = -1};
	return ev;
}

/* One unit of one event; returns its verdict. */
static enum px_verdict unit1(struct px_answer *a, struct gd_event ev)
{
	px_answer_unit_begin(a);
	(void)px_answer_feed(a, &ev);
	return px_answer_verdict(a);
}

static void test_text_relays_and_counts(void **state)
{
	(void)state;
	struct px_answer *a = px_answer_new(pol, NULL, 1024);
	assert_non_null(a);
	assert_int_equal(unit1(a, ev_text(GD_EV_TEXT, "Hello")), PX_VERDICT_RELAY);
	assert_int_equal(px_answer_unit(a)->events, 1);
	assert_int_equal(px_answer_unit(a)->tokens, 1);
	/* usage is bookkeeping, not progress */
	struct gd_event u = {.type = GD_EV_USAGE, .prompt_tokens = 3, .completion_tokens = 4};
	assert_int_equal(unit1(a, u), PX_VERDICT_RELAY);
	assert_int_equal(px_answer_unit(a)->events, 0);
	assert_int_equal(px_answer_events(a), 2);
	assert_int_equal(px_answer_tokens(a), 1);
	assert_null(px_answer_trip(a));
	px_answer_free(a);
	px_answer_free(NULL);
}

/* A tool call holds its chunks until its arguments are complete JSON; the
 * held chunks are framed on one line (an event sent over several data:
 * lines) and released in order; past the cap nothing is kept. */
static void test_tool_call_held_then_released(void **state)
{
	(void)state;
	struct px_answer *a = px_answer_new(pol, NULL, 64);
	assert_int_equal(unit1(a, ev_call(GD_EV_TOOL_BEGIN, 0, "read_file", NULL)), PX_VERDICT_HOLD);
	assert_int_equal(px_answer_hold(a, "{\"a\":\n1}", 8), 0);
	assert_int_equal(unit1(a, ev_call(GD_EV_TOOL_ARGS, 0, NULL, "{\"path\":")), PX_VERDICT_HOLD);
	assert_int_equal(px_answer_hold(a, "{\"b\":2}\r\n", 9), 0);
	/* 8 + 9 held; 48 more would pass 64 */
	char big[49];
	memset(big, 'x', 48);
	big[48] = '\0';
	assert_int_equal(px_answer_hold(a, big, 48), -1);
	size_t n;
	const char *held = px_answer_held(a, &n);
	assert_int_equal(n, strlen("data: {\"a\":1}\n\ndata: {\"b\":2}\n\n"));
	assert_memory_equal(held, "data: {\"a\":1}\n\ndata: {\"b\":2}\n\n", n);
	assert_int_equal(unit1(a, ev_call(GD_EV_TOOL_ARGS, 0, NULL, "\"x.c\"}")), PX_VERDICT_RELAY);
	assert_int_equal(unit1(a, ev_call(GD_EV_TOOL_END, 0, NULL, NULL)), PX_VERDICT_RELAY);
	px_answer_held_clear(a);
	(void)px_answer_held(a, &n);
	assert_int_equal(n, 0);
	struct px_cut cut;
	px_answer_cut(a, &cut);
	assert_int_equal(cut.tool_calls, 1);
	px_answer_free(a);
}

/* A text flood trips the repeat watchdog: TRIP from then on; the cut keeps
 * the text the guards read, up to the byte that tripped (issue 12 item 11),
 * and the tripping unit's part is that event's prefix; its tokens are not
 * counted as relayed. */
static void test_trip_and_cut(void **state)
{
	(void)state;
	struct px_answer *a = px_answer_new(pol, NULL, 1024);
	assert_int_equal(unit1(a, ev_text(GD_EV_TEXT, "Intro. ")), PX_VERDICT_RELAY);
	enum px_verdict v = PX_VERDICT_RELAY;
	int i;
	for (i = 0; i < 2000 && v != PX_VERDICT_TRIP; i++)
		v = unit1(a, ev_text(GD_EV_TEXT, "spam "));
	assert_int_equal(v, PX_VERDICT_TRIP);
	assert_true(px_answer_unit(a)->trip);
	const struct gd_trip *t = px_answer_trip(a);
	assert_non_null(t);
	print_message("tripped by %s after %d units: %s\n", t->guard, i, t->detail);
	/* later units stay TRIP, even ones that would relay */
	assert_int_equal(unit1(a, ev_text(GD_EV_TEXT, "other")), PX_VERDICT_TRIP);
	const char *part, *rpart;
	size_t pl, rl;
	px_answer_cut_part(a, &part, &pl, &rpart, &rl);
	assert_true(pl >= 1 && pl <= 5);
	assert_memory_equal(part, "spam ", pl);
	assert_int_equal(rl, 0);
	struct px_cut cut;
	px_answer_cut(a, &cut);
	assert_int_equal(cut.text_bytes, 7 + 5 * (size_t)(i - 1) + pl);
	assert_int_equal(px_answer_tokens(a), (uint64_t)i); /* the intro + the units before */
	px_answer_free(a);
}

/* An upstream's chunk JSON: converted, fed, and the answer's identity
 * learned from the first chunk that has one (kept afterwards). */
static void test_chunk_identity(void **state)
{
	(void)state;
	struct px_answer *a = px_answer_new(pol, NULL, 1024);
	struct px_chunk *conv = px_chunk_new(1 << 20);
	char err[256];
	const char *c1 = "{\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"created\":1700000001,"
	                 "\"model\":\"m1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},"
	                 "\"finish_reason\":null}]}";
	const char *c2 = "{\"id\":\"chatcmpl-8\",\"object\":\"chat.completion.chunk\",\"created\":5,"
	                 "\"model\":\"m2\",\"choices\":[{\"index\":0,\"delta\":{},"
	                 "\"finish_reason\":\"stop\"}]}";
	assert_int_equal(px_answer_chunk(a, conv, c1, strlen(c1), err, sizeof(err)), PX_CHUNK_OK);
	assert_int_equal(px_answer_verdict(a), PX_VERDICT_RELAY);
	assert_int_equal(px_answer_unit(a)->tokens, 1);
	assert_int_equal(px_answer_chunk(a, conv, c2, strlen(c2), err, sizeof(err)), PX_CHUNK_OK);
	assert_int_equal(px_answer_unit(a)->events, 1); /* the finish */
	assert_int_equal(px_answer_chunk_end(a, conv), PX_CHUNK_OK);
	const struct px_answer_id *id = px_answer_id(a);
	assert_string_equal(id->id, "chatcmpl-7");
	assert_string_equal(id->model, "m1");
	assert_int_equal(id->created, 1700000001);
	px_chunk_free(conv);
	px_answer_free(a);
}

static void put(void *ctx, const char *b, size_t n)
{
	char *out = ctx;
	strncat(out, b, n);
}

static void test_frame_json_one_line(void **state)
{
	(void)state;
	char out[128] = "";
	const char *pretty = "{\n  \"a\": 1,\r\n  \"b\": [2]\n}";
	px_frame_json(pretty, strlen(pretty), put, out);
	assert_string_equal(out, "data: {  \"a\": 1,  \"b\": [2]}\n\n");
	out[0] = '\0';
	px_frame_json("{}", 2, put, out);
	assert_string_equal(out, "data: {}\n\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_relays_and_counts),
		cmocka_unit_test(test_tool_call_held_then_released),
		cmocka_unit_test(test_trip_and_cut),
		cmocka_unit_test(test_chunk_identity),
		cmocka_unit_test(test_frame_json_one_line),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
