/* proxy/options and proxy/emit: the key table, URL and listen parsing, and
 * what loopwarden writes itself (errors, the trip chunk, truncated answers). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <yajl/yajl_tree.h>

#include "guards/config.h"
#include "proxy/emit.h"
#include "proxy/options.h"

static char *drain(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

static const char *str_at(yajl_val v, const char **path)
{
	yajl_val x = yajl_tree_get(v, path, yajl_t_string);
	return x ? x->u.string : NULL;
}

static void test_url_parse(void **state)
{
	(void)state;
	struct px_url u;
	char err[256];
	assert_int_equal(px_url_parse(&u, "http://127.0.0.1:8081", err, sizeof(err)), 0);
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 8081);
	assert_string_equal(u.prefix, "");
	assert_false(u.tls);
	/* a trailing /v1 (how agents write base URLs) names the same API */
	assert_int_equal(px_url_parse(&u, "https://api.example.com/v1/", err, sizeof(err)), 0);
	assert_true(u.tls);
	assert_int_equal(u.port, 443);
	assert_string_equal(u.prefix, "");
	assert_int_equal(px_url_parse(&u, "http://[::1]:9000/proxy/v1", err, sizeof(err)), 0);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 9000);
	assert_string_equal(u.prefix, "/proxy");
	assert_int_equal(px_url_parse(&u, "ftp://x", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "http://"));
	assert_int_equal(px_url_parse(&u, "http://h:99999", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bad port"));
	assert_int_equal(px_url_parse(&u, "http://:80", err, sizeof(err)), -1);
}

static void test_listen_parse(void **state)
{
	(void)state;
	char host[64], err[256];
	uint16_t port;
	assert_int_equal(px_listen_parse(host, sizeof(host), &port, "0.0.0.0:8080", err, sizeof(err)), 0);
	assert_string_equal(host, "0.0.0.0");
	assert_int_equal(port, 8080);
	assert_int_equal(px_listen_parse(host, sizeof(host), &port, "[::1]:0", err, sizeof(err)), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 0);
	assert_int_equal(px_listen_parse(host, sizeof(host), &port, ":9", err, sizeof(err)), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(px_listen_parse(host, sizeof(host), &port, "8080", err, sizeof(err)), -1);
	assert_int_equal(px_listen_parse(host, sizeof(host), &port, "h:x", err, sizeof(err)), -1);
}

static void test_options_set(void **state)
{
	(void)state;
	struct px_options o;
	struct gd_config g;
	char err[256];
	px_options_defaults(&o, &g);
	assert_int_equal(o.max_body_bytes, 8u << 20);
	assert_int_equal(o.history_action, PX_HISTORY_MESSAGE);
	assert_int_equal(px_options_set(&o, &g, "proxy.keepalive_ms", "250", err, sizeof(err)), 0);
	assert_int_equal(o.keepalive_ms, 250);
	/* caps: out-of-range values are refused, naming the key and the range */
	assert_int_equal(px_options_set(&o, &g, "proxy.max_body_bytes", "10", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "proxy.max_body_bytes"));
	assert_non_null(strstr(err, "1024"));
	assert_int_equal(px_options_set(&o, &g, "proxy.keepalive_ms", "-5", err, sizeof(err)), -1);
	assert_int_equal(px_options_set(&o, &g, "proxy.keepalive_ms", "12abc", err, sizeof(err)), -1);
	assert_int_equal(px_options_set(&o, &g, "proxy.nope", "1", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "proxy.nope"));
	assert_int_equal(px_options_set(&o, &g, "proxy.history_action", "trip", err, sizeof(err)), 0);
	assert_int_equal(o.history_action, PX_HISTORY_TRIP);
	assert_int_equal(px_options_set(&o, &g, "proxy.history_action", "maybe", err, sizeof(err)), -1);
	assert_int_equal(px_options_set(&o, &g, "proxy.quiet", "yes", err, sizeof(err)), 0);
	assert_true(o.quiet);
	assert_int_equal(px_options_set(&o, &g, "proxy.upstream", "http://10.0.0.2:8000", err, sizeof(err)), 0);
	assert_true(o.have_upstream);
	assert_int_equal(o.upstream.port, 8000);
	assert_int_equal(px_options_set(&o, &g, "proxy.listen", "127.0.0.1:0", err, sizeof(err)), 0);
	assert_int_equal(o.listen_port, 0);
	/* other keys go to the guard config */
	assert_int_equal(px_options_set(&o, &g, "watchdog.idle_timeout_ms", "3000", err, sizeof(err)), 0);
	assert_int_equal(g.watchdog.idle_timeout_ms, 3000);
	assert_int_equal(px_options_set(&o, &g, "guards.nope.x", "1", err, sizeof(err)), -1);
}

static void test_emit_error(void **state)
{
	(void)state;
	struct evbuffer *b = evbuffer_new();
	px_emit_error(b, 400, "bad \"quote\"\n and \x01 control");
	char *s = drain(b);
	yajl_val v = yajl_tree_parse(s, NULL, 0);
	assert_non_null(v);
	const char *pm[] = {"error", "message", NULL}, *pt[] = {"error", "type", NULL};
	assert_string_equal(str_at(v, pm), "bad \"quote\"\n and \x01 control");
	assert_string_equal(str_at(v, pt), "invalid_request_error");
	yajl_tree_free(v);
	free(s);
	assert_string_equal(px_error_type(503), "unavailable_error");
	assert_string_equal(px_error_type(500), "server_error");
	assert_string_equal(px_error_type(401), "authentication_error");
	evbuffer_free(b);
}

static void test_emit_trip_chunk(void **state)
{
	(void)state;
	struct evbuffer *b = evbuffer_new();
	struct px_answer_id a = {"chatcmpl-1", "qwen3", 1700000000};
	struct gd_trip t;
	memset(&t, 0, sizeof(t));
	strcpy(t.guard, "repeat");
	strcpy(t.detail, "\" the\" repeated 64 times");
	px_emit_trip_chunk(b, &a, &t);
	char *s = drain(b);
	assert_true(strncmp(s, "data: ", 6) == 0);
	assert_string_equal(s + strlen(s) - 2, "\n\n");
	s[strlen(s) - 2] = '\0';
	yajl_val v = yajl_tree_parse(s + 6, NULL, 0);
	assert_non_null(v);
	const char *pid[] = {"id", NULL}, *pg[] = {"loopwarden", "guard", NULL},
		   *pd[] = {"loopwarden", "detail", NULL}, *pc[] = {"choices", NULL},
		   *pf[] = {"finish_reason", NULL}, *pcr[] = {"created", NULL};
	assert_string_equal(str_at(v, pid), "chatcmpl-1");
	assert_string_equal(str_at(v, pg), "repeat");
	assert_string_equal(str_at(v, pd), "\" the\" repeated 64 times");
	yajl_val created = yajl_tree_get(v, pcr, yajl_t_number);
	assert_int_equal(YAJL_GET_INTEGER(created), 1700000000);
	yajl_val ch = yajl_tree_get(v, pc, yajl_t_array);
	assert_string_equal(str_at(ch->u.array.values[0], pf), "length");
	yajl_tree_free(v);
	free(s);
	evbuffer_free(b);
}

static void test_emit_truncated_body(void **state)
{
	(void)state;
	const char *body =
		"{\"id\":\"c1\",\"object\":\"chat.completion\",\"created\":17,\"model\":\"m\","
		"\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"ok caf\xc3\xa9 the the the\","
		"\"reasoning_content\":\"think think\",\"tool_calls\":[{\"id\":\"a\",\"type\":\"function\","
		"\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}},{\"id\":\"b\",\"type\":\"function\","
		"\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}],"
		"\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1.50e1},\"x_unknown\":[true,null]}";
	struct gd_trip t;
	memset(&t, 0, sizeof(t));
	strcpy(t.guard, "dedup");
	strcpy(t.detail, "same call twice");
	/* cut inside the 2-byte é: it falls back to the character boundary */
	struct px_cut cut = {7, 5, 1};
	struct evbuffer *b = evbuffer_new();
	assert_int_equal(px_emit_truncated_body(b, body, strlen(body), &cut, &t), 0);
	char *s = drain(b);
	yajl_val v = yajl_tree_parse(s, NULL, 0);
	assert_non_null(v);
	const char *pc[] = {"choices", NULL}, *pmc[] = {"message", "content", NULL},
		   *pmr[] = {"message", "reasoning_content", NULL}, *pf[] = {"finish_reason", NULL},
		   *ptc[] = {"message", "tool_calls", NULL}, *pg[] = {"loopwarden", "guard", NULL};
	yajl_val c0 = yajl_tree_get(v, pc, yajl_t_array)->u.array.values[0];
	assert_string_equal(str_at(c0, pmc), "ok caf");
	assert_string_equal(str_at(c0, pmr), "think");
	assert_string_equal(str_at(c0, pf), "length");
	assert_int_equal(yajl_tree_get(c0, ptc, yajl_t_array)->u.array.len, 1);
	assert_string_equal(str_at(v, pg), "dedup");
	/* fields loopwarden does not interpret are kept, numbers as written */
	assert_non_null(strstr(s, "\"completion_tokens\":1.50e1"));
	assert_non_null(strstr(s, "\"x_unknown\":[true,null]"));
	yajl_tree_free(v);
	free(s);
	/* no complete call kept: the tool_calls key goes away */
	struct px_cut none = {100, 100, 0};
	assert_int_equal(px_emit_truncated_body(b, body, strlen(body), &none, &t), 0);
	s = drain(b);
	assert_null(strstr(s, "tool_calls\":["));
	free(s);
	assert_int_equal(px_emit_truncated_body(b, "[1]", 3, &none, &t), -1);
	evbuffer_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_parse),
		cmocka_unit_test(test_listen_parse),
		cmocka_unit_test(test_options_set),
		cmocka_unit_test(test_emit_error),
		cmocka_unit_test(test_emit_trip_chunk),
		cmocka_unit_test(test_emit_truncated_body),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
