/* Canonical tool-call arguments and the incremental completeness scanner. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "guards/canon.h"
#include "guards/config.h"

static void expect_canon(const char *in, const char *want)
{
	char out[1024], err[256];
	size_t len = 0;
	enum gd_canon_status st = gd_canon(in, strlen(in), out, sizeof(out), &len, err, sizeof(err));

	if (st != GD_CANON_OK)
		fail_msg("gd_canon(%s): %s: %s", in, gd_canon_strerror(st), err);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(out, want, len);
}

static enum gd_canon_status canon_err(const char *in, char *err, size_t errlen)
{
	char out[1024];
	size_t len;
	return gd_canon(in, strlen(in), out, sizeof(out), &len, err, errlen);
}

static void test_sorts_keys_recursively(void **state)
{
	(void)state;
	expect_canon("{\"b\":1,\"a\":2}", "{\"a\":2,\"b\":1}");
	expect_canon("{\"z\":{\"y\":[{\"d\":1,\"c\":2}],\"x\":null},\"a\":[3,2,1]}",
	             "{\"a\":[3,2,1],\"z\":{\"x\":null,\"y\":[{\"c\":2,\"d\":1}]}}");
	/* Bytewise order: uppercase before lowercase, prefix first. */
	expect_canon("{\"ab\":1,\"a\":2,\"B\":3}", "{\"B\":3,\"a\":2,\"ab\":1}");
}

static void test_drops_whitespace(void **state)
{
	(void)state;
	expect_canon(" {\n\t\"path\" :  \"a b.c\" ,\r\n \"n\": [ 1 , 2 ] } \n",
	             "{\"n\":[1,2],\"path\":\"a b.c\"}");
}

static void test_numbers_kept_exactly(void **state)
{
	(void)state;
	expect_canon("{\"a\":1.0,\"b\":1e2,\"c\":-0,\"d\":12345678901234567890123}",
	             "{\"a\":1.0,\"b\":1e2,\"c\":-0,\"d\":12345678901234567890123}");
	/* 1 and 1.0 are different texts: different calls. */
	char a[64], b[64];
	size_t la, lb;
	assert_int_equal(gd_canon("[1]", 3, a, sizeof(a), &la, NULL, 0), GD_CANON_OK);
	assert_int_equal(gd_canon("[1.0]", 5, b, sizeof(b), &lb, NULL, 0), GD_CANON_OK);
	assert_false(la == lb && memcmp(a, b, la) == 0);
}

static void test_strings_reescaped_one_way(void **state)
{
	(void)state;
	/* \u00e9 and a raw é are the same string; \/ is /. */
	expect_canon("{\"k\":\"caf\\u00e9\"}", "{\"k\":\"caf\xc3\xa9\"}");
	expect_canon("{\"k\":\"caf\xc3\xa9\"}", "{\"k\":\"caf\xc3\xa9\"}");
	expect_canon("[\"a\\/b\"]", "[\"a/b\"]");
	/* Escapes that must stay escapes come out one way. */
	expect_canon("[\"q\\\"\\\\\\n\\t\\u0001\"]", "[\"q\\\"\\\\\\n\\t\\u0001\"]");
	expect_canon("[\"\\u000a\"]", "[\"\\n\"]");
	/* A surrogate pair becomes raw UTF-8. */
	expect_canon("[\"\\ud83d\\ude00\"]", "[\"\xf0\x9f\x98\x80\"]");
	/* Escaped key sorts by its decoded bytes. */
	expect_canon("{\"\\u0062\":1,\"a\":2}", "{\"a\":2,\"b\":1}");
}

static void test_scalars_and_empty_containers(void **state)
{
	(void)state;
	expect_canon("{}", "{}");
	expect_canon("[ ]", "[]");
	expect_canon("{\"t\":true,\"f\":false,\"n\":null}", "{\"f\":false,\"n\":null,\"t\":true}");
	expect_canon("\"x\"", "\"x\"");
}

static void test_invalid_reported(void **state)
{
	char err[256];
	(void)state;
	assert_int_equal(canon_err("{\"a\":1,}", err, sizeof(err)), GD_CANON_EINVAL);
	assert_true(strlen(err) > 0);
	assert_int_equal(canon_err("{a:1}", err, sizeof(err)), GD_CANON_EINVAL);
	assert_int_equal(canon_err("{\"a\":1}}", err, sizeof(err)), GD_CANON_EINVAL);
	assert_int_equal(canon_err("{\"a\":1} x", err, sizeof(err)), GD_CANON_EINVAL);
	assert_int_equal(canon_err("[\"\xff\"]", err, sizeof(err)), GD_CANON_EINVAL);
	assert_int_equal(canon_err("nul", err, sizeof(err)), GD_CANON_EINVAL);
}

static void test_truncated_reported(void **state)
{
	char err[256];
	(void)state;
	assert_int_equal(canon_err("{\"path\": \"src/ma", err, sizeof(err)), GD_CANON_EINCOMPLETE);
	assert_non_null(strstr(err, "offset 16"));
	assert_int_equal(canon_err("[[1,2]", err, sizeof(err)), GD_CANON_EINCOMPLETE);
	assert_int_equal(canon_err("   ", err, sizeof(err)), GD_CANON_EINCOMPLETE);
	/* Every prefix of a valid text is reported, never crashes. */
	const char *full = "{\"a\":[1,{\"b\":\"x\\\"y\"}],\"c\":\"\\u00e9\"}";
	for (size_t n = 0; n < strlen(full); n++) {
		char out[256];
		size_t len;
		assert_int_not_equal(gd_canon(full, n, out, sizeof(out), &len, err, sizeof(err)),
		                     GD_CANON_OK);
	}
}

static void test_limits(void **state)
{
	char err[256], out[16];
	size_t len;
	char deep[200];
	(void)state;
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	assert_int_equal(gd_canon(deep, sizeof(deep), out, sizeof(out), &len, err, sizeof(err)),
	                 GD_CANON_ETOODEEP);
	/* Output that does not fit the caller's buffer. */
	const char *big = "{\"key\":\"a long enough value\"}";
	assert_int_equal(gd_canon(big, strlen(big), out, sizeof(out), &len, err, sizeof(err)),
	                 GD_CANON_ETOOBIG);
	assert_int_equal(gd_canon(NULL, 0, out, sizeof(out), &len, err, sizeof(err)),
	                 GD_CANON_EINCOMPLETE);
	assert_int_equal(gd_canon("{}", 2, NULL, 0, &len, err, sizeof(err)), GD_CANON_EARG);
}

static void test_scan_incremental(void **state)
{
	const char *text = "{\"a\":\"}{][\\\"\",\"b\":[{\"c\":[]}]}";
	struct gd_json_scan s;
	(void)state;

	/* Byte by byte: complete only at the last byte, brackets in strings ignored. */
	gd_json_scan_init(&s);
	for (size_t i = 0; i < strlen(text); i++) {
		enum gd_scan_state st = gd_json_scan_feed(&s, text + i, 1);
		if (i + 1 < strlen(text))
			assert_int_equal(st, GD_SCAN_OPEN);
		else
			assert_int_equal(st, GD_SCAN_COMPLETE);
	}
	assert_int_equal(gd_json_scan_feed(&s, " \n", 2), GD_SCAN_COMPLETE);
	assert_int_equal(gd_json_scan_feed(&s, "x", 1), GD_SCAN_BAD);

	gd_json_scan_init(&s);
	assert_int_equal(gd_json_scan_feed(&s, "  ", 2), GD_SCAN_EMPTY);
	assert_int_equal(gd_json_scan_feed(&s, "{]", 2), GD_SCAN_BAD);
	gd_json_scan_init(&s);
	assert_int_equal(gd_json_scan_feed(&s, "42", 2), GD_SCAN_SCALAR);
}

static void test_call_identity(void **state)
{
	char scratch[256];
	bool c1, c2;
	(void)state;
	const char *x = "{\"path\":\"a\",\"limit\":10}";
	const char *y = " { \"limit\" : 10, \"path\" : \"a\" } ";
	uint64_t a = gd_call_identity("read", 4, x, strlen(x), scratch, sizeof(scratch), &c1);
	uint64_t b = gd_call_identity("read", 4, y, strlen(y), scratch, sizeof(scratch), &c2);
	assert_true(c1 && c2);
	assert_true(a == b);
	/* Different name, same arguments: a different call. */
	assert_true(gd_call_identity("grep", 4, x, strlen(x), scratch, sizeof(scratch), &c1) != a);
	/* Empty arguments are {}. */
	assert_true(gd_call_identity("ls", 2, "", 0, scratch, sizeof(scratch), &c1) ==
	            gd_call_identity("ls", 2, " {} ", 4, scratch, sizeof(scratch), &c2));
	/* Invalid JSON falls back to raw bytes. */
	uint64_t r1 = gd_call_identity("x", 1, "{oops", 5, scratch, sizeof(scratch), &c1);
	uint64_t r2 = gd_call_identity("x", 1, "{oops ", 6, scratch, sizeof(scratch), &c2);
	assert_false(c1);
	assert_true(r1 == r2);
}

static struct gd_call_id ids(const char *name, const char *args)
{
	static struct gd_config cfg;
	struct gd_call_id id;

	gd_config_defaults(&cfg);
	gd_call_id(&cfg.cross_turn, name, strlen(name), args, strlen(args), &id);
	return id;
}

/* gd_call_id: the exact identity is gd_call_identity's; the stable one leaves
 * out what only counts or stamps (issue 12 item 2: the same failing call
 * every turn with only an attempt counter changing was never cut); the
 * similar one ignores case, spacing and punctuation of the values. */
static void test_call_ids(void **state)
{
	char scratch[512];
	bool canonical;
	(void)state;
	const char *x = "{\"url\":\"https://api.example.com/v2/items\",\"attempt\":2}";
	struct gd_call_id a = ids("web_fetch", x);
	assert_true(a.canonical);
	assert_true(a.exact == gd_call_identity("web_fetch", 9, x, strlen(x), scratch,
	                                        sizeof(scratch), &canonical));
	struct gd_call_id b = ids("web_fetch", "{\"attempt\":3,\"url\":\"https://api.example.com/v2/items\"}");
	assert_true(a.exact != b.exact);
	assert_true(a.stable == b.stable);
	/* Without volatile members the stable identity is the exact one. */
	struct gd_call_id c = ids("web_fetch", "{\"url\":\"https://api.example.com/v2/items\"}");
	assert_true(c.stable == c.exact && c.stable == a.stable);
	/* Stamps under any volatile key, at any depth, and date-time values. */
	assert_true(ids("call_api", "{\"q\":\"x\",\"meta\":{\"requestId\":\"9f1c\",\"ts\":1732000000}}").stable ==
	            ids("call_api", "{\"q\":\"x\",\"meta\":{\"requestId\":\"77aa\",\"ts\":1732000999}}").stable);
	assert_true(ids("log", "{\"msg\":\"retrying\",\"at\":\"2025-03-01T12:00:07Z\"}").stable ==
	            ids("log", "{\"msg\":\"retrying\",\"at\":\"2025-03-01T12:00:19Z\"}").stable);
	/* Not volatile: an offset, a page, a plain date, an id. */
	assert_true(ids("read", "{\"path\":\"a\",\"offset\":0}").stable !=
	            ids("read", "{\"path\":\"a\",\"offset\":200}").stable);
	assert_true(ids("list", "{\"page\":2}").stable != ids("list", "{\"page\":3}").stable);
	assert_true(ids("report", "{\"day\":\"2025-03-01\"}").stable !=
	            ids("report", "{\"day\":\"2025-03-02\"}").stable);
	assert_true(ids("get_user", "{\"id\":\"u1\"}").stable != ids("get_user", "{\"id\":\"u2\"}").stable);
	/* Similar: one search spelled three ways; another path is another call. */
	struct gd_call_id g1 = ids("grep", "{\"pattern\":\"oldLogger\",\"path\":\"src/\"}");
	struct gd_call_id g2 = ids("grep", "{\"path\":\"./src\",\"pattern\":\"old_logger\"}");
	struct gd_call_id g3 = ids("grep", "{\"pattern\":\"OLD-LOGGER\",\"path\":\"src\"}");
	struct gd_call_id g4 = ids("grep", "{\"pattern\":\"oldLogger\",\"path\":\"lib/\"}");
	assert_true(g1.exact != g2.exact && g1.similar == g2.similar && g2.similar == g3.similar);
	assert_true(g4.similar != g1.similar);
	assert_true(ids("grep", "{\"pattern\":\"a1\"}").similar != ids("grep", "{\"pattern\":\"a2\"}").similar);
	/* Not JSON: the raw-bytes identity everywhere. */
	struct gd_call_id r = ids("x", " {oops ");
	assert_false(r.canonical);
	assert_true(r.exact == r.stable && r.exact == r.similar &&
	            r.exact == gd_call_identity("x", 1, "{oops", 5, scratch, sizeof(scratch), &canonical));
}

static void test_volatile_keys(void **state)
{
	(void)state;
	struct gd_config cfg;
	gd_config_defaults(&cfg);
	static const char *const yes[] = { "attempt", "attempt_no", "maxAttempts", "retry",
		"retryCount", "retries", "try", "nonce", "timestamp", "createdTimestamp", "ts",
		"sent_ts", "request_id", "requestId", "X-Request-ID", "trace_id", "traceId",
		"idempotencyKey" };
	static const char *const no[] = { "path", "id", "offset", "page", "timeout", "tsconfig",
		"country", "entry", "now_playing_list", "status", "date", "time", "count" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!gd_key_is_volatile(&cfg.cross_turn, yes[i]))
			fail_msg("%s should be volatile", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (gd_key_is_volatile(&cfg.cross_turn, no[i]))
			fail_msg("%s should not be volatile", no[i]);
	cfg.cross_turn.n_volatile = 0;
	assert_false(gd_key_is_volatile(&cfg.cross_turn, "attempt"));
}

/* Random JSON-ish inputs (fixed seed): a status, never a crash; whatever
 * canonicalizes is a fixed point (canon(canon(x)) == canon(x)). */
static void test_random_inputs_idempotent(void **state)
{
	(void)state;
	static const char *const atoms[] = { "{", "}", "[", "]", ",", ":", "\"k\"", "\"b\"",
		"\"\\u00e9\"", "\"\\n\"", "1", "-2.5e3", "true", "null", " ", "\"a\"" };
	uint32_t x = 5;
	int ok = 0;

	for (int i = 0; i < 20000; i++) {
		char in[256], out[1024], again[1024];
		size_t n = 0, len, len2;
		x = x * 1103515245u + 12345u;
		int parts = 1 + (int)((x >> 16) % 24);
		for (int k = 0; k < parts; k++) {
			x = x * 1103515245u + 12345u;
			const char *a = atoms[(x >> 16) % 16];
			size_t al = strlen(a);
			if (n + al >= sizeof(in))
				break;
			memcpy(in + n, a, al);
			n += al;
		}
		if (gd_canon(in, n, out, sizeof(out), &len, NULL, 0) != GD_CANON_OK)
			continue;
		ok++;
		assert_int_equal(gd_canon(out, len, again, sizeof(again), &len2, NULL, 0), GD_CANON_OK);
		assert_int_equal(len, len2);
		assert_memory_equal(out, again, len);
	}
	assert_true(ok > 100); /* the generator does make valid JSON */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sorts_keys_recursively),
		cmocka_unit_test(test_drops_whitespace),
		cmocka_unit_test(test_numbers_kept_exactly),
		cmocka_unit_test(test_strings_reescaped_one_way),
		cmocka_unit_test(test_scalars_and_empty_containers),
		cmocka_unit_test(test_invalid_reported),
		cmocka_unit_test(test_truncated_reported),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_scan_incremental),
		cmocka_unit_test(test_call_identity),
		cmocka_unit_test(test_call_ids),
		cmocka_unit_test(test_volatile_keys),
		cmocka_unit_test(test_random_inputs_idempotent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
