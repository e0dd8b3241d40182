/* SSE framing: events split at any byte, every line ending, comments, caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/wire/sse.h"

struct rec {
	char log[4096];
	size_t len;
	int events;
	int done;
	int truncated;
	int stop_after; /* stop when this many events were seen; 0 = never */
};

static int on_event(const struct px_sse_event *ev, void *ctx)
{
	struct rec *r = ctx;
	int n;

	n = snprintf(r->log + r->len, sizeof(r->log) - r->len, "[%s|%s|%.*s]",
	             ev->event, ev->id, (int)ev->len, ev->data);
	assert_true(n > 0 && (size_t)n < sizeof(r->log) - r->len);
	r->len += (size_t)n;
	assert_int_equal(ev->data[ev->len], '\0');
	r->events++;
	r->done += ev->done;
	r->truncated += ev->truncated;
	return r->stop_after && r->events >= r->stop_after;
}

static void parse_split(const char *in, size_t cut, struct rec *r)
{
	struct px_sse *sse = px_sse_new(PX_SSE_MODE_STREAM, 256);
	char err[256];
	size_t n = strlen(in);

	assert_non_null(sse);
	memset(r, 0, sizeof(*r));
	assert_int_equal(px_sse_feed(sse, in, cut, on_event, r, err, sizeof(err)), PX_SSE_OK);
	assert_int_equal(px_sse_feed(sse, in + cut, n - cut, on_event, r, err, sizeof(err)), PX_SSE_OK);
	assert_int_equal(px_sse_finish(sse, on_event, r, err, sizeof(err)), PX_SSE_OK);
	assert_int_equal(px_sse_offset(sse), n);
	px_sse_free(sse);
}

static const char *const expect_two =
	"[||{\"a\":1}][message|7|line1\nline2][||[DONE]]";

static void check_every_split(const char *in, const char *expect)
{
	struct rec r;

	for (size_t cut = 0; cut <= strlen(in); cut++) {
		parse_split(in, cut, &r);
		assert_string_equal(r.log, expect);
		assert_int_equal(r.done, 1);
		assert_int_equal(r.truncated, 0);
	}
}

static void test_lf_split_anywhere(void **state)
{
	(void)state;
	check_every_split("data: {\"a\":1}\n\n: keep-alive\nevent: message\nid: 7\n"
	                  "data: line1\ndata:line2\n\ndata: [DONE]\n\n", expect_two);
}

static void test_crlf_split_anywhere(void **state)
{
	(void)state;
	check_every_split("data: {\"a\":1}\r\n\r\n: keep-alive\r\nevent: message\r\nid: 7\r\n"
	                  "data: line1\r\ndata:line2\r\n\r\ndata: [DONE]\r\n\r\n", expect_two);
}

static void test_cr_split_anywhere(void **state)
{
	(void)state;
	check_every_split("data: {\"a\":1}\r\r: keep-alive\revent: message\rid: 7\r"
	                  "data: line1\rdata:line2\r\rdata: [DONE]\r\r", expect_two);
}

static void test_byte_by_byte_and_comments(void **state)
{
	const char *in = ":ok\n\n: ping\n\ndata:\n\ndata: x\nretry: 10\nfoo: bar\n\nevent: e\n\n";
	struct px_sse *sse = px_sse_new(PX_SSE_MODE_STREAM, 64);
	struct rec r;
	char err[256];

	(void)state;
	memset(&r, 0, sizeof(r));
	for (size_t i = 0; in[i]; i++)
		assert_int_equal(px_sse_feed(sse, in + i, 1, on_event, &r, err, sizeof(err)), PX_SSE_OK);
	/* "data:" alone and a lone "event:" dispatch nothing. */
	assert_string_equal(r.log, "[||x]");
	assert_int_equal(px_sse_comments(sse), 2);
	assert_false(px_sse_done(sse));
	px_sse_free(sse);
}

static void test_bom_and_two_data_lines(void **state)
{
	const char *in = "\xEF\xBB\xBF" "data: a\n\ndata:\ndata:\n\n";
	struct px_sse *sse = px_sse_new(PX_SSE_MODE_STREAM, 64);
	struct rec r;
	char err[256];

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(px_sse_feed(sse, in, strlen(in), on_event, &r, err, sizeof(err)), PX_SSE_OK);
	/* The byte order mark is not part of the first field; two empty data
	 * lines make one "\n". */
	assert_string_equal(r.log, "[||a][||\n]");
	px_sse_free(sse);
}

static void test_event_over_cap_is_error(void **state)
{
	struct px_sse *sse = px_sse_new(PX_SSE_MODE_STREAM, 16);
	struct rec r;
	char err[256] = "";
	char big[64];

	(void)state;
	memset(&r, 0, sizeof(r));
	/* One line too long. */
	memset(big, 'a', sizeof(big));
	assert_int_equal(px_sse_feed(sse, "data: ok\n\n", 10, on_event, &r, err, sizeof(err)), PX_SSE_OK);
	assert_int_equal(px_sse_feed(sse, big, sizeof(big), on_event, &r, err, sizeof(err)),
	                 PX_SSE_ETOOBIG);
	assert_non_null(strstr(err, "line 3"));
	assert_non_null(strstr(err, "byte offset 10"));
	/* Unusable until reset. */
	assert_int_equal(px_sse_feed(sse, "x", 1, on_event, &r, err, sizeof(err)), PX_SSE_EINVAL);
	px_sse_reset(sse);
	/* Many short data lines whose join exceeds the cap. */
	assert_int_equal(px_sse_feed(sse, "data: 12345\ndata: 12345\ndata: 12345\n", 36, on_event, &r,
	                             err, sizeof(err)), PX_SSE_ETOOBIG);
	assert_non_null(strstr(err, "line 3"));
	assert_int_equal(r.events, 1);
	px_sse_free(sse);
}

static void test_finish_flushes_truncated(void **state)
{
	struct px_sse *sse = px_sse_new(PX_SSE_MODE_STREAM, 64);
	struct rec r;
	char err[256];

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(px_sse_feed(sse, "data: a\n\ndata: {\"b\"", 19, on_event, &r, err, sizeof(err)),
	                 PX_SSE_OK);
	assert_int_equal(r.events, 1);
	assert_int_equal(px_sse_finish(sse, on_event, &r, err, sizeof(err)), PX_SSE_OK);
	assert_string_equal(r.log, "[||a][||{\"b\"]");
	assert_int_equal(r.truncated, 1);
	px_sse_free(sse);
}

static void test_lines_mode(void **state)
{
	const char *in = "data: {\"x\":1}\ndata: {\"x\":2}\n\n: c\ndata:[DONE]";
	struct px_sse *sse = px_sse_new(PX_SSE_MODE_LINES, 64);
	struct rec r;
	char err[256];

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(px_sse_feed(sse, in, strlen(in), on_event, &r, err, sizeof(err)), PX_SSE_OK);
	assert_int_equal(r.events, 2);
	assert_int_equal(px_sse_finish(sse, on_event, &r, err, sizeof(err)), PX_SSE_OK);
	assert_string_equal(r.log, "[||{\"x\":1}][||{\"x\":2}][||[DONE]]");
	assert_true(px_sse_done(sse));
	px_sse_free(sse);
}

static void test_callback_stops(void **state)
{
	struct px_sse *sse = px_sse_new(PX_SSE_MODE_STREAM, 64);
	struct rec r;
	char err[256];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.stop_after = 1;
	assert_int_equal(px_sse_feed(sse, "data: a\n\ndata: b\n\n", 18, on_event, &r, err, sizeof(err)),
	                 PX_SSE_ESTOPPED);
	assert_int_equal(r.events, 1);
	px_sse_free(sse);
}

static int on_pos(const struct px_sse_event *ev, void *ctx)
{
	uint64_t *where = ctx;

	where[2 * (ev->number - 1)] = ev->line;
	where[2 * (ev->number - 1) + 1] = ev->offset;
	return 0;
}

static void test_event_position(void **state)
{
	struct px_sse *sse = px_sse_new(PX_SSE_MODE_STREAM, 64);
	uint64_t where[4] = { 0, 0, 0, 0 };
	char err[256];

	(void)state;
	assert_int_equal(px_sse_feed(sse, "data: a\r\n\r\n: c\r\ndata: b\r\n\r\n", 27,
	                             on_pos, where, err, sizeof(err)), PX_SSE_OK);
	assert_int_equal(where[0], 1);
	assert_int_equal(where[1], 0);
	assert_int_equal(where[2], 4);  /* "data: b" is line 4 */
	assert_int_equal(where[3], 16); /* at byte 16 */
	assert_int_equal(px_sse_line(sse), 6);
	px_sse_free(sse);
	assert_null(px_sse_new(PX_SSE_MODE_STREAM, 0));
	px_sse_free(NULL);
}

/* This process's address space in KiB (VmSize), or -1. */
static long vm_size_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmSize:", 7) == 0)
			v = strtol(line + 7, NULL, 10);
	fclose(f);
	return v;
}

struct sizes {
	size_t want[8];
	int n;
};

/* Event k's data is <want[k]> bytes of 'a' + k. */
static int on_sized(const struct px_sse_event *ev, void *ctx)
{
	struct sizes *z = ctx;

	assert_true(z->n < 8);
	assert_int_equal(ev->len, z->want[z->n]);
	for (size_t i = 0; i < ev->len; i++)
		if (ev->data[i] != 'a' + z->n)
			fail_msg("event %d byte %zu", z->n, i);
	assert_int_equal(ev->data[ev->len], '\0');
	z->n++;
	return 0;
}

/* Issue 11 defect 5: a parser costs what its events need, not its cap. 16
 * parsers with a 64 MiB cap used to reserve 2 GiB of address space (two
 * cap-sized buffers each, so `ulimit -v` made streams fail); now nothing
 * cap-sized is allocated until an event needs it. Large and small events in
 * turn, fed in odd-sized pieces, all arrive whole (the buffers grow, and
 * what grew past 64 KiB is released after its event). */
static void test_buffers_follow_events(void **state)
{
	struct px_sse *p[16];
	long before = vm_size_kib();
	struct sizes z = {{10, 300000, 7, 70000, 1, 2000000, 5, 0}, 0};
	char err[256];

	(void)state;
	for (int i = 0; i < 16; i++) {
		p[i] = px_sse_new(PX_SSE_MODE_STREAM, (size_t)64 << 20);
		assert_non_null(p[i]);
	}
	if (before > 0 && vm_size_kib() - before > 16 * 1024)
		fail_msg("16 parsers with a 64 MiB cap grew the address space by %ld KiB",
		         vm_size_kib() - before);
	/* the events: "data: " + bytes + "\n\n" */
	size_t total = 0;
	for (int k = 0; k < 7; k++)
		total += 6 + z.want[k] + 2;
	char *in = malloc(total);
	size_t o = 0;
	assert_non_null(in);
	for (int k = 0; k < 7; k++) {
		memcpy(in + o, "data: ", 6);
		memset(in + o + 6, 'a' + k, z.want[k]);
		memcpy(in + o + 6 + z.want[k], "\n\n", 2);
		o += 6 + z.want[k] + 2;
	}
	for (size_t at = 0, step = 1; at < total; at += step, step = step * 7 % 65521 + 1) {
		size_t n = step < total - at ? step : total - at;
		assert_int_equal(px_sse_feed(p[0], in + at, n, on_sized, &z, err, sizeof(err)), PX_SSE_OK);
	}
	assert_int_equal(z.n, 7);
	/* an event over the cap is still refused */
	struct px_sse *small = px_sse_new(PX_SSE_MODE_STREAM, 1000);
	assert_int_equal(px_sse_feed(small, in + 14, 6 + 300000, on_sized, &z, err, sizeof(err)),
	                 PX_SSE_ETOOBIG);
	px_sse_free(small);
	free(in);
	for (int i = 0; i < 16; i++)
		px_sse_free(p[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lf_split_anywhere),
		cmocka_unit_test(test_crlf_split_anywhere),
		cmocka_unit_test(test_cr_split_anywhere),
		cmocka_unit_test(test_byte_by_byte_and_comments),
		cmocka_unit_test(test_bom_and_two_data_lines),
		cmocka_unit_test(test_event_over_cap_is_error),
		cmocka_unit_test(test_finish_flushes_truncated),
		cmocka_unit_test(test_lines_mode),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_event_position),
		cmocka_unit_test(test_buffers_follow_events),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
