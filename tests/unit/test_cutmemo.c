/* proxy/cutmemo: the memory of recent cuts (issue 12 item 12). Keys cover
 * the whole request but its token limits; bounded (LRU) and time-limited. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/cutmemo.h"
#include "proxy/wire/request.h"

/* The key of a body as the proxy makes it: the reader finds the limits. */
static void key_of(const char *body, const char *auth, uint64_t policy, struct px_cutmemo_key *k)
{
	struct px_request *q = NULL;
	char err[256];

	assert_int_equal(px_request_read(body, strlen(body), &q, err, sizeof(err)), PX_REQUEST_OK);
	px_cutmemo_key(body, strlen(body), q->limits, q->n_limits, auth, policy, k);
	px_request_free(q);
}

#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"Explain the build.\"}]"

static void test_key_covers_all_but_the_limits(void **state)
{
	(void)state;
	struct px_cutmemo_key a, b;

	/* Qwen Code's retry: the same bytes, max_tokens doubled. */
	key_of("{\"model\":\"m\"," MSGS ",\"max_tokens\":32000,\"stream\":true}", "Bearer k", 1, &a);
	key_of("{\"model\":\"m\"," MSGS ",\"max_tokens\":64000,\"stream\":true}", "Bearer k", 1, &b);
	assert_memory_equal(a.hash, b.hash, sizeof(a.hash));
	assert_int_equal(a.len, b.len);
	key_of("{\"model\":\"m\"," MSGS ",\"max_completion_tokens\":9,\"stream\":true}", "Bearer k",
	       1, &b);
	key_of("{\"model\":\"m\"," MSGS ",\"max_completion_tokens\":4096,\"stream\":true}",
	       "Bearer k", 1, &a);
	assert_memory_equal(a.hash, b.hash, sizeof(a.hash));

	/* Anything else that decides the answer makes another key: the
	 * messages, the model, a field loopwarden does not read itself
	 * (tool_choice), the sampling, the caller, the guard settings. */
	const char *base = "{\"model\":\"m\"," MSGS ",\"max_tokens\":32000,\"stream\":true}";
	const char *others[] = {
		"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Explain the tests.\"}],"
		"\"max_tokens\":32000,\"stream\":true}",
		"{\"model\":\"n\"," MSGS ",\"max_tokens\":32000,\"stream\":true}",
		"{\"model\":\"m\"," MSGS ",\"max_tokens\":32000,\"stream\":true,\"tool_choice\":\"none\"}",
		"{\"model\":\"m\"," MSGS ",\"max_tokens\":32000,\"stream\":true,\"temperature\":0.2}",
		"{\"model\":\"m\"," MSGS ",\"max_tokens\":32000,\"stream\":false}",
		/* the limit moved to another key: not the same request */
		"{\"model\":\"m\"," MSGS ",\"stream\":true,\"max_tokens\":32000}",
	};
	key_of(base, "Bearer k", 1, &a);
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		key_of(others[i], "Bearer k", 1, &b);
		if (memcmp(a.hash, b.hash, sizeof(a.hash)) == 0)
			fail_msg("same key for %s", others[i]);
	}
	key_of(base, "Bearer other", 1, &b);
	assert_memory_not_equal(a.hash, b.hash, sizeof(a.hash));
	key_of(base, "Bearer k", 2, &b);
	assert_memory_not_equal(a.hash, b.hash, sizeof(a.hash));
}

static struct gd_trip trip_named(const char *detail)
{
	struct gd_trip t;

	memset(&t, 0, sizeof(t));
	snprintf(t.guard, sizeof(t.guard), "repeat");
	snprintf(t.detail, sizeof(t.detail), "%s", detail);
	return t;
}

static void test_bounded_and_time_limited(void **state)
{
	(void)state;
	struct px_cutmemo *m = px_cutmemo_new(2, 1000);
	struct px_cutmemo_key k1, k2, k3;
	struct gd_trip t = trip_named("one");
	const struct px_cutmemo_answer *a;

	assert_non_null(m);
	key_of("{\"model\":\"a\"," MSGS "}", "", 1, &k1);
	key_of("{\"model\":\"b\"," MSGS "}", "", 1, &k2);
	key_of("{\"model\":\"c\"," MSGS "}", "", 1, &k3);
	assert_null(px_cutmemo_get(m, &k1, 0));
	assert_int_equal(px_cutmemo_put(m, &k1, 0, &t, "loop loop ", 10, NULL, 0), 0);
	t = trip_named("two");
	assert_int_equal(px_cutmemo_put(m, &k2, 10, &t, NULL, 0, "think", 5), 0);
	a = px_cutmemo_get(m, &k1, 20); /* k1 used last: k2 is the LRU */
	assert_non_null(a);
	assert_string_equal(a->trip.detail, "one");
	assert_int_equal(a->text_len, 10);
	assert_memory_equal(a->text, "loop loop ", 10);
	assert_true(px_cutmemo_may_hold(m, k1.len, 20));
	t = trip_named("three");
	assert_int_equal(px_cutmemo_put(m, &k3, 30, &t, NULL, 0, NULL, 0), 0);
	assert_int_equal(px_cutmemo_size(m), 2);
	assert_int_equal(px_cutmemo_evictions(m), 1);
	assert_null(px_cutmemo_get(m, &k2, 40));
	assert_non_null(px_cutmemo_get(m, &k1, 40));
	a = px_cutmemo_get(m, &k3, 40);
	assert_non_null(a);
	assert_int_equal(a->reasoning_len, 0);
	/* ttl 1000 ms: k1 (stored at 0) is forgotten at 1000. */
	assert_non_null(px_cutmemo_get(m, &k1, 999));
	assert_null(px_cutmemo_get(m, &k1, 1000));
	assert_false(px_cutmemo_may_hold(m, k3.len + 1, 40));
	/* A long text keeps its end, from a character boundary: the last
	 * PX_CUTMEMO_TEXT_MAX bytes would start inside an é. */
	size_t n = PX_CUTMEMO_TEXT_MAX + 101;
	char *big = malloc(n);
	assert_non_null(big);
	for (size_t i = 0; i + 1 < n; i += 2)
		memcpy(big + i, "\xc3\xa9", 2); /* é */
	big[n - 1] = 'x';
	assert_int_equal(px_cutmemo_put(m, &k2, 2000, &t, big, n, NULL, 0), 0);
	a = px_cutmemo_get(m, &k2, 2001);
	assert_non_null(a);
	assert_int_equal(a->text_len, PX_CUTMEMO_TEXT_MAX - 1);
	assert_int_equal((unsigned char)a->text[0], 0xc3);
	assert_int_equal(a->text[a->text_len - 1], 'x');
	free(big);
	px_cutmemo_clear(m);
	assert_int_equal(px_cutmemo_size(m), 0);
	px_cutmemo_free(m);

	/* 0 entries: remembers nothing. */
	m = px_cutmemo_new(0, 1000);
	assert_non_null(m);
	assert_int_equal(px_cutmemo_put(m, &k1, 0, &t, NULL, 0, NULL, 0), 0);
	assert_null(px_cutmemo_get(m, &k1, 0));
	px_cutmemo_free(m);
	px_cutmemo_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_covers_all_but_the_limits),
		cmocka_unit_test(test_bounded_and_time_limited),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
