/* Unit tests of proxy/wire/http_head.h: where a head ends, the strict
 * request and response head parsers, field checks, chunk sizes (issue 11
 * defect 6). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proxy/wire/http_head.h"

/* The head length px_head_scan_feed finds in <s, n> fed whole, checked
 * against feeding it one byte at a time. */
static size_t head_end(const char *s, size_t n)
{
	struct px_head_scan a = {0}, b = {0};
	size_t whole = px_head_scan_feed(&a, s, n);
	size_t bytewise = 0;
	for (size_t i = 0; i < n && !bytewise; i++)
		bytewise = px_head_scan_feed(&b, s + i, 1);
	assert_int_equal(whole, bytewise);
	return whole;
}

static size_t head_end_str(const char *s)
{
	return head_end(s, strlen(s));
}

/* Issue 11 defect 6: the head end was searched for "\r\n\r\n" first, so a
 * bare-LF head whose body held "\r\n\r\n" took part of the body as head. */
static void defect_11_6_bare_lf_head_with_crlfcrlf_in_body(void **state)
{
	(void)state;
	const char *m = "POST / HTTP/1.1\nContent-Length: 8\n\nab\r\n\r\ncd";
	assert_int_equal(head_end_str(m), strlen("POST / HTTP/1.1\nContent-Length: 8\n\n"));
	/* every mix of line ends; the earliest empty line wins */
	assert_int_equal(head_end_str("GET / HTTP/1.1\r\n\r\nX"), 18);
	assert_int_equal(head_end_str("GET / HTTP/1.1\n\nX"), 16);
	assert_int_equal(head_end_str("GET / HTTP/1.1\r\n\nX"), 17);
	assert_int_equal(head_end_str("GET / HTTP/1.1\n\r\nX"), 17);
	assert_int_equal(head_end_str("GET / HTTP/1.1\r\nA: b\n\r\n\r\n"), 23);
	/* not complete: a CR alone does not end a line; a CR between LFs is not an empty line */
	assert_int_equal(head_end_str("GET / HTTP/1.1\r\r"), 0);
	assert_int_equal(head_end_str("GET / HTTP/1.1\n\rx\n"), 0);
	/* empty lines before the request-line do not end the head */
	assert_int_equal(head_end_str("\r\n\r\nGET / HTTP/1.1\r\n\r\n"), 22);
	/* incremental: positions count from the first byte ever fed */
	struct px_head_scan sc = {0};
	assert_int_equal(px_head_scan_feed(&sc, "GET / HTTP/1.1\r\n", 16), 0);
	assert_int_equal(px_head_scan_feed(&sc, "\r", 1), 0);
	assert_int_equal(px_head_scan_feed(&sc, "\nBODY", 5), 18);
}

static enum px_head_status parse(const char *h, struct px_http_head *out, char *err)
{
	return px_http_head_parse(h, strlen(h), out, err, 256);
}

static void expect_bad(const char *h, enum px_head_status want, const char *needle)
{
	struct px_http_head r;
	char err[256] = "";
	enum px_head_status st = px_http_head_parse(h, strlen(h), &r, err, sizeof(err));
	if (st != want || (needle && !strstr(err, needle)))
		fail_msg("head %s: status %d (%s), wanted %d with '%s'", h, st, err, want, needle ? needle : "");
}

static void test_good_heads(void **state)
{
	(void)state;
	struct px_http_head r;
	char err[256];
	assert_int_equal(parse("POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n"
	                       "Authorization: \t Bearer sk-1 \t\r\nExpect: 100-Continue\r\nX-Empty:\r\n\r\n", &r, err),
	                 PX_HEAD_OK);
	assert_string_equal(r.method, "POST");
	assert_string_equal(r.target, "/v1/chat/completions?x=1");
	assert_int_equal(r.minor, 1);
	assert_true(r.keep_alive);
	assert_true(r.have_length);
	assert_int_equal(r.content_length, 12);
	assert_string_equal(r.authorization, "Bearer sk-1");
	assert_true(r.expect_continue);
	/* bare LF lines, leading empty lines, HTTP/1.0 defaults */
	assert_int_equal(parse("\r\n\nGET /health HTTP/1.0\nX: \x80\xff obs-text\n\n", &r, err), PX_HEAD_OK);
	assert_int_equal(r.minor, 0);
	assert_false(r.keep_alive);
	assert_false(r.have_length);
	assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r, err), PX_HEAD_OK);
	assert_true(r.keep_alive);
	assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", &r, err), PX_HEAD_OK);
	assert_false(r.keep_alive);
	assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: upgrade, closed\r\n\r\n", &r, err), PX_HEAD_OK);
	assert_true(r.keep_alive); /* "closed" is not "close" */
	/* identical repeated Content-Length; "identity" is no coding */
	assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n"
	                       "Transfer-Encoding: identity\r\n\r\n", &r, err), PX_HEAD_OK);
	assert_int_equal(r.content_length, 5);
	/* a target with bytes past ASCII (the 404 quotes it, see test_http_hardening) */
	assert_int_equal(parse("GET /\xff\xfe HTTP/1.1\r\n\r\n", &r, err), PX_HEAD_OK);
}

/* Issue 11 defect 6: a bare CR inside a header value was forwarded upstream
 * (Authorization), a NUL ended the parse early (the Content-Length after it
 * was lost and the body read as the next request). */
static void defect_11_6_control_bytes_in_head(void **state)
{
	(void)state;
	static const char nul[] = "GET / HTTP/1.1\r\nX-A: a\0b\r\nContent-Length: 5\r\n\r\n";
	struct px_http_head r;
	char err[256];
	assert_int_equal(px_http_head_parse(nul, sizeof(nul) - 1, &r, err, sizeof(err)), PX_HEAD_EBAD);
	assert_non_null(strstr(err, "NUL"));
	expect_bad("GET / HTTP/1.1\r\nAuthorization: Bearer a\rX-Injected: 1\r\n\r\n", PX_HEAD_EBAD, "bare CR");
	expect_bad("GET / HTTP/1.1\r\nAuthorization: Bearer a\r\r\n\r\n", PX_HEAD_EBAD, "bare CR");
	expect_bad("GET / HTTP/1.1\rX: y\r\n\r\n", PX_HEAD_EBAD, "bare CR");
	expect_bad("GET / HTTP/1.1\r\nX-A: a\x01\r\n\r\n", PX_HEAD_EBAD, "'X-A'");
	expect_bad("GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n", PX_HEAD_EBAD, "control character");
	expect_bad("GET / HTTP/1.1\r\nX-A: a\x1b[31m\r\n\r\n", PX_HEAD_EBAD, "control character");
	expect_bad("GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", PX_HEAD_EBAD, "obs-fold");
	expect_bad("GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n", PX_HEAD_EBAD, "obs-fold");
	expect_bad("GET / HTTP/1.1\r\nX A: a\r\n\r\n", PX_HEAD_EBAD, "header name");
	expect_bad("GET / HTTP/1.1\r\nX-A : a\r\n\r\n", PX_HEAD_EBAD, "header name");
	expect_bad("GET / HTTP/1.1\r\n: a\r\n\r\n", PX_HEAD_EBAD, "header name");
	expect_bad("GET / HTTP/1.1\r\nX(A): a\r\n\r\n", PX_HEAD_EBAD, "header name");
	expect_bad("GET / HTTP/1.1\r\nno colon\r\n\r\n", PX_HEAD_EBAD, "colon");
	expect_bad("GET / HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", PX_HEAD_EBAD, "Authorization");
	/* the request line */
	expect_bad("GET  / HTTP/1.1\r\n\r\n", PX_HEAD_EBAD, "target");
	expect_bad("GET /a\x01 HTTP/1.1\r\n\r\n", PX_HEAD_EBAD, "target");
	expect_bad("GE(T / HTTP/1.1\r\n\r\n", PX_HEAD_EBAD, "method");
	expect_bad("GET / HTTP/1.1 \r\n\r\n", PX_HEAD_EBAD, "version");
	expect_bad("GET / HTTP/2.0\r\n\r\n", PX_HEAD_EBAD, "version");
	expect_bad("GET /\r\n\r\n", PX_HEAD_EBAD, "request line");
	expect_bad("NONSENSE\r\n\r\n", PX_HEAD_EBAD, "request line");
	expect_bad("\r\n\r\n", PX_HEAD_EBAD, "empty");
	expect_bad("GET / HTTP/1.1\r\n", PX_HEAD_EBAD, "empty line");
	expect_bad("GET / HTTP/1.1\r\n\r\nX", PX_HEAD_EBAD, "after");
	char long_target[PX_HEAD_TARGET_MAX + 64];
	int n = snprintf(long_target, sizeof(long_target), "GET /");
	memset(long_target + n, 'a', PX_HEAD_TARGET_MAX);
	snprintf(long_target + n + PX_HEAD_TARGET_MAX, 32, " HTTP/1.1\r\n\r\n");
	expect_bad(long_target, PX_HEAD_ETARGET, "target");
	assert_int_equal(px_head_http_status(PX_HEAD_ETARGET), 414);
}

/* Content-Length and Transfer-Encoding games (request smuggling). */
static void defect_11_6_length_and_coding_games(void **state)
{
	(void)state;
	expect_bad("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", PX_HEAD_EBAD, "conflicting");
	expect_bad("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", PX_HEAD_EBAD, "Content-Length");
	expect_bad("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", PX_HEAD_EBAD, "Content-Length");
	expect_bad("POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", PX_HEAD_EBAD, "Content-Length");
	expect_bad("POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n", PX_HEAD_EBAD, "Content-Length");
	expect_bad("POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n", PX_HEAD_EBAD, "Content-Length");
	expect_bad("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", PX_HEAD_EBAD, "Content-Length");
	expect_bad("POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n", PX_HEAD_EBAD, "Content-Length");
	expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", PX_HEAD_ECHUNKED, "Content-Length");
	expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", PX_HEAD_ECHUNKED, NULL);
	expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: CHUNKED\r\n\r\n", PX_HEAD_ECHUNKED, NULL);
	expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", PX_HEAD_EBAD, "both");
	expect_bad("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", PX_HEAD_EBAD, "both");
	expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", PX_HEAD_ECODING, "final");
	expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", PX_HEAD_ECODING, NULL);
	expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", PX_HEAD_ECODING, NULL);
	expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", PX_HEAD_ECODING, NULL);
	expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n", PX_HEAD_EBAD, "empty");
	expect_bad("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", PX_HEAD_EBAD, "HTTP/1.0");
	assert_int_equal(px_head_http_status(PX_HEAD_ECHUNKED), 411);
	assert_int_equal(px_head_http_status(PX_HEAD_ECODING), 501);
	assert_int_equal(px_head_http_status(PX_HEAD_EBAD), 400);
}

/* Issue 11 defect 6: an upstream chunk size of "-5" was accepted (strtoull);
 * so were "0x5" and "+5". Hex digits only, extensions allowed. */
static void defect_11_6_chunk_size(void **state)
{
	(void)state;
	struct {
		const char *line;
		int rc;
		uint64_t v;
	} cases[] = {
		{"5", 0, 5},
		{"1a", 0, 26},
		{"1A", 0, 26},
		{"0", 0, 0},
		{"a;name=value", 0, 10},
		{"a ;name", 0, 10},
		{"a\t; x=\"y z\"", 0, 10},
		{"ffffffffffffffff", 0, UINT64_MAX},
		{"00000000000000000005", 0, 5},
		{"-5", -1, 0},
		{"+5", -1, 0},
		{"0x5", -1, 0},
		{"", -1, 0},
		{" 5", -1, 0},
		{"5 x", -1, 0},
		{"5x", -1, 0},
		{"5 ", -1, 0},
		{"10000000000000000", -1, 0},
		{"5;a\x01", -1, 0},
		{"g", -1, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 12345;
		int rc = px_http_chunk_size(cases[i].line, strlen(cases[i].line), &v);
		if (rc != cases[i].rc || (rc == 0 && v != cases[i].v))
			fail_msg("chunk size '%s': rc %d value %llu", cases[i].line, rc, (unsigned long long)v);
	}
	/* a NUL inside the line (the upstream sent one) */
	uint64_t v;
	assert_int_equal(px_http_chunk_size("5\0", 2, &v), -1);
}

static void test_digits_token_value(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(px_http_digits("18446744073709551615", 20, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(px_http_digits("18446744073709551616", 20, &v), -1);
	assert_int_equal(px_http_digits("", 0, &v), -1);
	assert_int_equal(px_http_digits("1 ", 2, &v), -1);
	assert_true(px_http_token_ok("Content-Length", 14));
	assert_true(px_http_token_ok("!#$%&'*+-.^_`|~09azAZ", 21));
	assert_false(px_http_token_ok("", 0));
	assert_false(px_http_token_ok("a b", 3));
	assert_false(px_http_token_ok("a\0b", 3));
	assert_false(px_http_token_ok("a:b", 3));
	assert_false(px_http_token_ok("\x80", 1));
	assert_true(px_http_value_ok("a\tb \x80\xff~", 7));
	assert_false(px_http_value_ok("a\rb", 3));
	assert_false(px_http_value_ok("a\nb", 3));
	assert_false(px_http_value_ok("a\0b", 3));
	assert_false(px_http_value_ok("\x7f", 1));
}

static void test_response_heads(void **state)
{
	(void)state;
	struct px_http_response r;
	char err[256];
	const char *ok = "HTTP/1.1 200 OK\r\nContent-Type:  text/event-stream \r\nTransfer-Encoding: gzip, chunked\r\n"
	                 "Content-Length: 10\r\n\r\n";
	assert_int_equal(px_http_response_parse(ok, strlen(ok), &r, err, sizeof(err)), 0);
	assert_int_equal(r.status, 200);
	assert_true(r.chunked);
	assert_false(r.have_length); /* a coding decides the framing */
	assert_string_equal(r.content_type, "text/event-stream");
	const char *lf = "HTTP/1.0 404\nContent-Length: 3\n\n";
	assert_int_equal(px_http_response_parse(lf, strlen(lf), &r, err, sizeof(err)), 0);
	assert_int_equal(r.status, 404);
	assert_true(r.have_length);
	assert_int_equal(r.content_length, 3);
	const char *bad[] = {
		"HTTP/1.1 200 OK\r\nContent-Type: a\rSet-Cookie: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: a\x01\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 099 OK\r\n\r\n",
		"HTTP/2 200 OK\r\n\r\n",
		"ICY 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (px_http_response_parse(bad[i], strlen(bad[i]), &r, err, sizeof(err)) == 0)
			fail_msg("accepted response head %zu: %s", i, bad[i]);
	static const char nul[] = "HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n";
	assert_int_equal(px_http_response_parse(nul, sizeof(nul) - 1, &r, err, sizeof(err)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defect_11_6_bare_lf_head_with_crlfcrlf_in_body),
		cmocka_unit_test(test_good_heads),
		cmocka_unit_test(defect_11_6_control_bytes_in_head),
		cmocka_unit_test(defect_11_6_length_and_coding_games),
		cmocka_unit_test(defect_11_6_chunk_size),
		cmocka_unit_test(test_digits_token_value),
		cmocka_unit_test(test_response_heads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
