/* The pipeline: the holding rule (a looping call is never released: HOLD
 * then TRIP), calls keyed by (index, id) with Ollama's index-0 reuse and
 * interleaved indexes, no allocation per event, bounded memory on a very long
 * answer, the stall watchdog, and verdicts after a trip. */
#include "test_guard_util.h"

#include <malloc.h>

/* Every allocation made by code linked into this test (the guard library
 * included, not yajl's shared object) is counted: see tests/guards.cmake. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
static size_t n_allocs;
static long long live_bytes; /* usable bytes allocated by our code and not freed */
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
void *__wrap_malloc(size_t n)
{
	void *r = __real_malloc(n);
	n_allocs++;
	live_bytes += r ? (long long)malloc_usable_size(r) : 0;
	return r;
}
void *__wrap_calloc(size_t n, size_t m)
{
	void *r = __real_calloc(n, m);
	n_allocs++;
	live_bytes += r ? (long long)malloc_usable_size(r) : 0;
	return r;
}
void *__wrap_realloc(void *p, size_t n)
{
	long long was = p ? (long long)malloc_usable_size(p) : 0;
	void *r = __real_realloc(p, n);
	n_allocs++;
	if (r)
		live_bytes += (long long)malloc_usable_size(r) - was;
	return r;
}
void __wrap_free(void *p)
{
	if (p)
		live_bytes -= (long long)malloc_usable_size(p);
	__real_free(p);
}

static struct gd_policy *pol;

static int setup(void **state)
{
	(void)state;
	pol = tg_policy(NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	gd_policy_free(pol);
	return 0;
}

static void test_holding_releases_complete_call(void **state)
{
	(void)state;
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);

	assert_int_equal(tg_text(p, "Let me look."), GD_PASS);
	assert_false(gd_pipeline_holding(p));
	assert_int_equal(tg_begin(p, 0, "call_a", "read_file"), GD_HOLD);
	assert_true(gd_pipeline_holding(p));
	assert_int_equal(tg_args(p, 0, NULL, "{\"path\": \"src/{a}.c"), GD_HOLD);
	/* Braces inside a string do not complete the call. */
	assert_int_equal(tg_args(p, 0, NULL, "}\", \"x\": [1, {\"y\": \"]\"}"), GD_HOLD);
	assert_int_equal(tg_args(p, 0, NULL, "]}"), GD_PASS);
	assert_false(gd_pipeline_holding(p));
	/* Trailing whitespace after the call belongs to it. */
	assert_int_equal(tg_args(p, 0, NULL, "  "), GD_PASS);
	assert_int_equal(tg_end(p, 0, NULL), GD_PASS);
	assert_int_equal(tg_finish(p, "tool_calls"), GD_PASS);
	struct gd_stats st;
	gd_pipeline_stats(p, &st);
	assert_int_equal(st.tool_calls, 1);
	assert_null(gd_pipeline_trip(p));
	gd_pipeline_free(p);
}

static void test_looping_call_never_released(void **state)
{
	(void)state;
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
	const char *args = "{\"url\":\"https://github.com/libfoo/libfoo/releases/latest\"}";

	assert_int_equal(tg_call(p, 0, "a", "web_fetch", args, 8), GD_PASS);
	/* The second identical call: every fragment HOLD, the completing one TRIP. */
	assert_int_equal(tg_begin(p, 1, "b", "web_fetch"), GD_HOLD);
	size_t len = strlen(args);
	for (size_t off = 0; off < len; off += 8) {
		size_t n = len - off < 8 ? len - off : 8;
		enum gd_verdict v = tg_feed(p, GD_EV_TOOL_ARGS, 1, NULL, NULL, args + off, n);
		assert_int_equal(v, off + n == len ? GD_TRIP : GD_HOLD);
	}
	const struct gd_trip *t = gd_pipeline_trip(p);
	assert_non_null(t);
	assert_int_equal(t->stream, GD_STREAM_TOOLS);
	assert_int_equal(t->cut, 1); /* keep the first call only */
	assert_true(t->event_no > 0);
	/* After a trip everything is TRIP. */
	assert_int_equal(tg_text(p, "more"), GD_TRIP);
	assert_int_equal(tg_finish(p, "tool_calls"), GD_TRIP);
	assert_int_equal(gd_pipeline_tick(p, 1), GD_TRIP);
	gd_pipeline_free(p);
}

static void test_text_held_while_call_open(void **state)
{
	(void)state;
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
	assert_int_equal(tg_begin(p, 0, "a", "grep"), GD_HOLD);
	assert_int_equal(tg_text(p, "and also"), GD_HOLD);
	assert_int_equal(tg_args(p, 0, NULL, "{\"pattern\":\"x\"}"), GD_PASS);
	assert_int_equal(tg_text(p, " more"), GD_PASS);
	gd_pipeline_free(p);
}

static void test_ollama_index0_reuse(void **state)
{
	(void)state;
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
	/* Ten calls, all index 0, told apart by id, each whole in one delta. */
	for (int i = 0; i < 10; i++) {
		char id[16], args[64];
		snprintf(id, sizeof(id), "call_%d", i);
		snprintf(args, sizeof(args), "{\"path\":\"src/svc%02d.ts\",\"old\":\"a\",\"new\":\"b\"}", i);
		assert_int_equal(tg_begin(p, 0, id, "edit"), GD_HOLD);
		assert_int_equal(tg_args(p, 0, id, args), GD_PASS);
	}
	struct gd_stats st;
	gd_pipeline_stats(p, &st);
	assert_int_equal(st.tool_calls, 10);
	gd_pipeline_free(p);

	/* Ollama index 0, ids differ, the same call: the 2nd is a repeat. */
	p = gd_pipeline_new(pol, NULL);
	assert_int_equal(tg_begin(p, 0, "x1", "web_fetch"), GD_HOLD);
	assert_int_equal(tg_args(p, 0, "x1", "{\"url\":\"u\"}"), GD_PASS);
	assert_int_equal(tg_begin(p, 0, "x2", "web_fetch"), GD_HOLD);
	assert_int_equal(tg_args(p, 0, "x2", "{\"url\":\"u\"}"), GD_TRIP);
	gd_pipeline_free(p);

	/* Two index-0 calls open at once, fragments addressed by id. */
	p = gd_pipeline_new(pol, NULL);
	assert_int_equal(tg_begin(p, 0, "a", "read_file"), GD_HOLD);
	assert_int_equal(tg_begin(p, 0, "b", "grep"), GD_HOLD);
	assert_int_equal(tg_args(p, 0, "a", "{\"path\":"), GD_HOLD);
	assert_int_equal(tg_args(p, 0, "b", "{\"pattern\":\"p\"}"), GD_HOLD);
	assert_int_equal(tg_args(p, 0, "a", "\"x\"}"), GD_PASS);
	gd_pipeline_stats(p, &st);
	assert_int_equal(st.tool_calls, 2);
	gd_pipeline_free(p);
}

static void test_interleaved_indexes(void **state)
{
	(void)state;
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
	assert_int_equal(tg_begin(p, 0, "a", "read_file"), GD_HOLD);
	assert_int_equal(tg_begin(p, 1, "b", "read_file"), GD_HOLD);
	assert_int_equal(tg_args(p, 1, NULL, "{\"path\":\"b"), GD_HOLD);
	assert_int_equal(tg_args(p, 0, NULL, "{\"path\":\"a"), GD_HOLD);
	assert_int_equal(tg_args(p, 1, NULL, "\"}"), GD_HOLD); /* call 0 still open */
	assert_true(gd_pipeline_holding(p));
	assert_int_equal(tg_args(p, 0, NULL, "\"}"), GD_PASS);
	struct gd_stats st;
	gd_pipeline_stats(p, &st);
	assert_int_equal(st.tool_calls, 2);
	assert_null(gd_pipeline_trip(p)); /* a.c and b.c differ: no dedup */
	gd_pipeline_free(p);

	/* Interleaved identical calls: the second completed one trips. */
	p = gd_pipeline_new(pol, NULL);
	assert_int_equal(tg_begin(p, 0, "a", "read_file"), GD_HOLD);
	assert_int_equal(tg_begin(p, 1, "b", "read_file"), GD_HOLD);
	assert_int_equal(tg_args(p, 0, NULL, "{\"path\":"), GD_HOLD);
	assert_int_equal(tg_args(p, 1, NULL, "{\"path\":"), GD_HOLD);
	assert_int_equal(tg_args(p, 1, NULL, "\"z\"}"), GD_HOLD);
	assert_int_equal(tg_args(p, 0, NULL, "\"z\"}"), GD_TRIP);
	gd_pipeline_free(p);
}

static void test_incomplete_calls_finish(void **state)
{
	(void)state;
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
	/* A call with no arguments at all completes at TOOL_END, as {}. */
	assert_int_equal(tg_begin(p, 0, "a", "list_tools"), GD_HOLD);
	assert_int_equal(tg_end(p, 0, "a"), GD_PASS);
	/* Broken arguments complete at FINISH (identified by raw bytes). */
	assert_int_equal(tg_begin(p, 1, "b", "grep"), GD_HOLD);
	assert_int_equal(tg_args(p, 1, NULL, "{\"pattern\": \"x"), GD_HOLD);
	assert_int_equal(tg_finish(p, "length"), GD_PASS);
	assert_false(gd_pipeline_holding(p));
	/* The second list_tools() with "{}" args is the same call as the first. */
	gd_pipeline_free(p);
	p = gd_pipeline_new(pol, NULL);
	assert_int_equal(tg_begin(p, 0, "a", "list_tools"), GD_HOLD);
	assert_int_equal(tg_end(p, 0, "a"), GD_PASS);
	assert_int_equal(tg_call(p, 1, "b", "list_tools", "{}", 1), GD_TRIP);
	gd_pipeline_free(p);
}

/* Feeds <rounds> lines of six word pairs as text and as reasoning. Words are
 * pairs from the list (400 of them): six words drawn from 20 would be a
 * reasoning that restates itself (the paraphrase watchdog). */
static void feed_prose(struct gd_pipeline *p, int rounds, uint32_t *x, bool reasoning)
{
	static const char *const words[] = { "parser", "reads", "header", "buffer", "socket",
		"keeps", "partial", "line", "until", "newline", "arrives", "client", "server",
		"timeout", "retries", "cache", "entry", "expires", "after", "request" };
	char line[128];

	for (int i = 0; i < rounds; i++) {
		size_t n = 0;
		for (int w = 0; w < 6; w++) {
			*x = *x * 1103515245u + 12345u;
			n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s ", words[(*x >> 16) % 20],
			                      words[(*x >> 8) % 20]);
		}
		line[n - 1] = '\n';
		assert_int_not_equal(tg_text(p, line), GD_TRIP);
		if (reasoning)
			assert_int_not_equal(tg_reasoning(p, line), GD_TRIP);
	}
}

/* Feeds a write_file call of <lines> lines streamed one line a fragment. */
static void feed_write(struct gd_pipeline *p, uint32_t index, const char *id, int lines)
{
	char line[128];

	assert_int_equal(tg_begin(p, index, id, "write_file"), GD_HOLD);
	snprintf(line, sizeof(line), "{\"path\":\"notes-%s.md\",\"content\":\"", id);
	assert_int_equal(tg_args(p, index, NULL, line), GD_HOLD);
	for (int i = 0; i < lines; i++) {
		snprintf(line, sizeof(line), "line %d of notes about module m%d\\n", i, i * 7919 % 1000);
		assert_int_equal(tg_args(p, index, NULL, line), GD_HOLD);
	}
	assert_int_equal(tg_args(p, index, NULL, "\"}"), GD_PASS);
}

/* Issue: memory per answer (guards2 item 4). Allocations grow with what the
 * answer uses, never per event: a stream's windows double up to their caps
 * (a few allocations each), a watched slot's argument buffer likewise, and
 * once every window has reached its size a long answer allocates nothing
 * more. Before, gd_pipeline_new reserved everything at once (~450 KiB). */
static void test_allocations_bounded(void **state)
{
	(void)state;
	size_t before = n_allocs, after_first, after_second;
	uint32_t x = 3;
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);

	assert_non_null(p);
	/* gd_pipeline_new: one allocation. */
	assert_int_equal(n_allocs - before, 1);
	/* Text, reasoning and calls whose arguments outgrow the first buffer:
	 * every window reaches its cap (8 KiB exact, 2 KiB normalized). */
	feed_prose(p, 2000, &x, true);
	feed_write(p, 0, "w1", 500);
	after_first = n_allocs - before;
	/* Log-many per stream, 3 streams x 20: the watch, 6 sizes of the exact
	 * ring (256 B to 8 KiB), the counter state and 4 sizes of its ring,
	 * SimHash's state and 6 sizes of its ring of windows (64 to 2048);
	 * then the argument buffer's 8 sizes, the pipeline, the call's identity
	 * (canon). */
	print_message("  allocations: %zu\n", after_first);
	assert_true(after_first <= 3 * 20 + 16);
	/* As much again, and calls reusing the slot: nothing new but each
	 * completed call's identity (one parse of its arguments: the copy
	 * parsed and a key order per object and pass, 4 for these). */
	feed_prose(p, 2000, &x, true);
	feed_write(p, 1, "w2", 500);
	feed_write(p, 2, "w3", 20);
	after_second = n_allocs - before;
	assert_true(after_second - after_first <= 2 * 4);
	/* The calls were complete: nothing held. */
	assert_false(gd_pipeline_holding(p));
	gd_pipeline_free(p);
}

/* Issue: memory per answer (guards2 item 4): a short answer costs what it
 * uses. A new pipeline, a 2 KB text answer and an answer of two small calls
 * each allocate a small part of what the caps allow. */
static void test_memory_follows_the_answer(void **state)
{
	(void)state;
	long long b0 = live_bytes;
	uint32_t x = 5;
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);

	/* The pipeline alone: its call table and dedup ring, no window. */
	assert_true(live_bytes - b0 < 16 << 10);
	feed_prose(p, 25, &x, false); /* about 2 KB */
	/* 2 KB of text: windows of a few KiB (the caps: 8 KiB + 2 KiB rings,
	 * their tables, the counter rule's offsets, SimHash's state). */
	print_message("  a new pipeline, then 2 KB of text: %lld bytes\n", live_bytes - b0);
	assert_true(live_bytes - b0 < 64 << 10);
	gd_pipeline_free(p);
	assert_int_equal(live_bytes, b0);

	/* Two small calls and no text: no text or reasoning watchdogs, one
	 * watched slot reused, argument buffers of their size. */
	p = gd_pipeline_new(pol, NULL);
	assert_int_equal(tg_call(p, 0, "c1", "read_file", "{\"path\":\"src/main.c\"}", 5), GD_PASS);
	assert_int_equal(tg_call(p, 1, "c2", "grep", "{\"pattern\":\"main\"}", 5), GD_PASS);
	print_message("  two small calls: %lld bytes\n", live_bytes - b0);
	assert_true(live_bytes - b0 < 48 << 10);
	gd_pipeline_free(p);
	assert_int_equal(live_bytes, b0);
}

/* gd_pipeline_near: how close each guard is, read-only, no allocation; a
 * paragraph repeated climbs towards 1 for repeat and reads 1 at the trip.
 * gd_trip.event_used / at: where in the tripping event the guard tripped;
 * gd_pipeline_tail: the stream up to there. */
/* gd_pipeline_near and gd_pipeline_tail, counting what they allocate. */
static size_t reader_allocs;
static void near_of(const struct gd_pipeline *p, float near[GD_GUARD_COUNT])
{
	size_t a = n_allocs;

	gd_pipeline_near(p, near);
	reader_allocs += n_allocs - a;
}

static size_t tail_of(const struct gd_pipeline *p, enum gd_stream stream, char *buf, size_t cap)
{
	size_t a = n_allocs, n = gd_pipeline_tail(p, stream, buf, cap);

	reader_allocs += n_allocs - a;
	return n;
}

static void test_near_and_trip_position(void **state)
{
	(void)state;
	static const char para[] = "The build uses CMake and the sources live in src/. To build "
	                           "it, run cmake and then make; the tests run with ctest. ";
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
	float near[GD_GUARD_COUNT], last = 0.0f;
	char text[4096], tail[4096];
	size_t len = 0;
	enum gd_verdict v = GD_PASS;

	for (int g = 0; g < GD_GUARD_COUNT; g++)
		assert_non_null(gd_guard_name((enum gd_guard)g));
	assert_string_equal(gd_guard_name(GD_GUARD_REPEAT), "repeat");
	reader_allocs = 0;
	near_of(p, near);
	for (int g = 0; g < GD_GUARD_COUNT; g++)
		assert_true(near[g] == 0.0f);
	/* Seven bytes a chunk: the trip falls inside a chunk. */
	for (int k = 0; k < 8 && v != GD_TRIP; k++)
		for (size_t off = 0; off < sizeof(para) - 1 && v != GD_TRIP; off += 7) {
			size_t n = sizeof(para) - 1 - off < 7 ? sizeof(para) - 1 - off : 7;
			v = tg_feed(p, GD_EV_TEXT, 0, NULL, NULL, para + off, n);
			near_of(p, near);
			assert_true(near[GD_GUARD_REPEAT] >= 0.0f && near[GD_GUARD_REPEAT] <= 1.0f);
			if (v != GD_TRIP) {
				memcpy(text + len, para + off, n);
				len += n;
				assert_true(near[GD_GUARD_REPEAT] < 1.0f);
			} else {
				const struct gd_trip *t = gd_pipeline_trip(p);
				assert_string_equal(t->guard, "repeat");
				assert_true(t->event_used >= 1 && t->event_used <= n);
				assert_int_equal(t->at, len + t->event_used);
				assert_true(t->cut < t->at);
				memcpy(text + len, para + off, (size_t)t->event_used);
				len += (size_t)t->event_used;
			}
			if (near[GD_GUARD_REPEAT] > last)
				last = near[GD_GUARD_REPEAT];
		}
	assert_int_equal(v, GD_TRIP);
	assert_true(near[GD_GUARD_REPEAT] == 1.0f);
	assert_true(near[GD_GUARD_SIMHASH] < 1.0f);
	/* The tail ends at the trip, not at the end of the tripping event. */
	size_t tl = tail_of(p, GD_STREAM_TEXT, tail, sizeof(tail));
	assert_int_equal(tl, len);
	assert_memory_equal(tail, text, len);
	assert_int_equal(tail_of(p, GD_STREAM_REASONING, tail, sizeof(tail)), 0);
	assert_int_equal(tail_of(p, GD_STREAM_TEXT, tail, 10), 10);
	assert_memory_equal(tail, text + len - 10, 10);
	assert_int_equal(reader_allocs, 0); /* near and tail allocate nothing */
	gd_pipeline_free(p);

	/* A call guard: dedup reads 1/2 after the first call, 1 at the trip. */
	p = gd_pipeline_new(pol, NULL);
	assert_int_equal(tg_call(p, 0, "c1", "grep", "{\"q\":\"x\"}", 4), GD_PASS);
	near_of(p, near);
	assert_true(near[GD_GUARD_DEDUP] > 0.4f && near[GD_GUARD_DEDUP] < 0.6f);
	assert_true(near[GD_GUARD_NAME_RUN] > 0.0f);
	assert_int_equal(tg_call(p, 1, "c2", "grep", "{\"q\":\"x\"}", 4), GD_TRIP);
	assert_int_equal(gd_pipeline_trip(p)->at, 0);
	near_of(p, near);
	assert_true(near[GD_GUARD_DEDUP] == 1.0f);
	gd_pipeline_free(p);
}

static void test_bounded_memory_long_answer(void **state)
{
	(void)state;
	/* 32 MB of healthy text through one pipeline: the guards keep rolling
	 * windows, so nothing is allocated after gd_pipeline_new whatever the
	 * length, and the byte counters keep counting. */
	struct gd_policy *big = tg_policy((const char *const[]){ "guards.budget.max_output_bytes=0", NULL });
	size_t before = n_allocs;
	struct gd_pipeline *p = gd_pipeline_new(big, NULL);
	size_t at_1m = 0;
	char chunk[4096];
	uint32_t x = 1;
	size_t fed = 0;

	while (fed < (32u << 20)) {
		if (!at_1m && fed >= (1u << 20))
			at_1m = n_allocs - before;
		size_t n = 0;
		while (n < sizeof(chunk) - 16) {
			x = x * 1103515245u + 12345u;
			int w = snprintf(chunk + n, sizeof(chunk) - n, "%c%u ", 'a' + (x >> 27), x >> 12);
			n += (size_t)w;
		}
		assert_int_equal(tg_feed(p, GD_EV_TEXT, 0, NULL, NULL, chunk, n), GD_PASS);
		fed += n;
	}
	/* The windows reached their caps within the first MB: the next 31 MB
	 * allocated nothing. */
	assert_true(at_1m > 0 && at_1m < 32);
	assert_int_equal(n_allocs - before, at_1m);
	struct gd_stats st;
	gd_pipeline_stats(p, &st);
	assert_int_equal(st.text_bytes, fed);
	gd_pipeline_free(p);
	gd_policy_free(big);
}

static void test_stall_watchdog(void **state)
{
	(void)state;
	struct gd_policy *s = tg_policy((const char *const[]){ "watchdog.first_token_timeout_ms=5000",
		"watchdog.idle_timeout_ms=1000", "guards.budget.max_wall_ms=60000", NULL });
	struct gd_pipeline *p = gd_pipeline_new(s, NULL);

	gd_pipeline_start(p, 100);
	assert_int_equal(gd_pipeline_next_deadline_ms(p, 100), 5000);
	assert_int_equal(gd_pipeline_tick(p, 5099), GD_PASS);
	gd_pipeline_touch(p, 5099);
	assert_int_equal(gd_pipeline_next_deadline_ms(p, 5099), 1000);
	assert_int_equal(gd_pipeline_tick(p, 6098), GD_PASS);
	assert_int_equal(gd_pipeline_tick(p, 6099), GD_TRIP);
	assert_string_equal(gd_pipeline_trip(p)->guard, "stall");
	gd_pipeline_free(p);

	/* No first token at all. */
	p = gd_pipeline_new(s, NULL);
	gd_pipeline_start(p, 0);
	assert_int_equal(gd_pipeline_tick(p, 5000), GD_TRIP);
	assert_non_null(strstr(gd_pipeline_trip(p)->detail, "first token"));
	gd_pipeline_free(p);

	/* A steady stream never stalls, but the wall-time budget ends it. */
	p = gd_pipeline_new(s, NULL);
	gd_pipeline_start(p, 0);
	uint64_t t = 0;
	enum gd_verdict v = GD_PASS;
	while (v == GD_PASS && t < 100000) {
		t += 500;
		gd_pipeline_touch(p, t);
		v = gd_pipeline_tick(p, t);
	}
	assert_int_equal(v, GD_TRIP);
	assert_int_equal(t, 60000);
	assert_string_equal(gd_pipeline_trip(p)->guard, "budget");
	gd_pipeline_free(p);
	gd_policy_free(s);

	/* Timeouts of 0 never trip. */
	struct gd_policy *z = tg_policy((const char *const[]){ "watchdog.first_token_timeout_ms=0",
		"watchdog.idle_timeout_ms=0", NULL });
	p = gd_pipeline_new(z, NULL);
	gd_pipeline_start(p, 0);
	assert_int_equal(gd_pipeline_tick(p, UINT64_MAX / 2), GD_PASS);
	assert_int_equal(gd_pipeline_next_deadline_ms(p, 0), UINT64_MAX);
	gd_pipeline_free(p);
	gd_policy_free(z);
}

static void test_too_many_open_calls(void **state)
{
	(void)state;
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
	enum gd_verdict v = GD_HOLD;
	int i;
	for (i = 0; i < 100 && v == GD_HOLD; i++) {
		char id[16];
		snprintf(id, sizeof(id), "c%d", i);
		v = tg_begin(p, (uint32_t)i, id, "grep");
	}
	assert_int_equal(v, GD_TRIP);
	assert_int_equal(i, 17);
	assert_string_equal(gd_pipeline_trip(p)->guard, "budget");
	gd_pipeline_free(p);
	assert_string_equal(gd_verdict_name(GD_HOLD), "hold");
	gd_pipeline_free(NULL);
}

/* Random event sequences (fixed seed): never a crash or a sanitizer report,
 * a trip is sticky, nothing is held after FINISH. */
static void test_random_events(void **state)
{
	(void)state;
	static const char alphabet[] = "{}[]\":,\\ abc01\n\tx\xc3\xa9";
	static const char *const ids[] = { NULL, "", "a", "b", "call_1" };
	static const char *const names[] = { NULL, "grep", "read_file", "edit", "" };
	uint32_t x = 99;
	char data[64];

	for (int run = 0; run < 200; run++) {
		struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
		bool tripped = false;
		for (int i = 0; i < 200; i++) {
			x = x * 1103515245u + 12345u;
			enum gd_event_type type = (enum gd_event_type)((x >> 8) % GD_EV_COUNT);
			size_t len = (x >> 12) % 40;
			for (size_t k = 0; k < len; k++) {
				x = x * 1103515245u + 12345u;
				data[k] = alphabet[(x >> 16) % (sizeof(alphabet) - 1)];
			}
			x = x * 1103515245u + 12345u;
			const char *id = ids[(x >> 16) % 5];
			const char *name = names[(x >> 20) % 5];
			enum gd_verdict v = tg_feed(p, type, (x >> 24) % 3, id, name, data, len);
			assert_true(v < GD_VERDICT_COUNT);
			if (tripped)
				assert_int_equal(v, GD_TRIP);
			tripped = v == GD_TRIP;
			if (type == GD_EV_FINISH && !tripped)
				assert_false(gd_pipeline_holding(p));
			assert_true((gd_pipeline_trip(p) != NULL) == tripped);
		}
		gd_pipeline_free(p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_holding_releases_complete_call),
		cmocka_unit_test(test_looping_call_never_released),
		cmocka_unit_test(test_text_held_while_call_open),
		cmocka_unit_test(test_ollama_index0_reuse),
		cmocka_unit_test(test_interleaved_indexes),
		cmocka_unit_test(test_incomplete_calls_finish),
		cmocka_unit_test(test_allocations_bounded),
		cmocka_unit_test(test_memory_follows_the_answer),
		cmocka_unit_test(test_bounded_memory_long_answer),
		cmocka_unit_test(test_stall_watchdog),
		cmocka_unit_test(test_too_many_open_calls),
		cmocka_unit_test(test_random_events),
		cmocka_unit_test(test_near_and_trip_position),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
