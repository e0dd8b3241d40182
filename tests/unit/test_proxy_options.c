/* proxy/options and proxy/emit: the key table, URL and listen parsing, the
 * one check of a whole configuration (px_options_check), and what loopwarden
 * writes itself (errors, the trip chunk, truncated answers). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <yajl/yajl_tree.h>

#include "config/config.h"
#include "config/origin.h"
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
	/* a host name is kept as written: px_options_check resolves it */
	assert_int_equal(px_listen_parse(host, sizeof(host), &port, "localhost:8080", err, sizeof(err)), 0);
	assert_string_equal(host, "localhost");
	/* what to write instead is in the message */
	assert_int_equal(px_listen_parse(host, sizeof(host), &port, "8080", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "localhost:8080"));
	assert_non_null(strstr(err, "127.0.0.1:8080"));
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
	/* caps: out-of-range values are refused, naming the range; the caller
	 * names the key (with its file and line), so the reason does not */
	assert_int_equal(px_options_set(&o, &g, "proxy.max_body_bytes", "10", err, sizeof(err)), -1);
	assert_null(strstr(err, "proxy.max_body_bytes"));
	assert_non_null(strstr(err, "1024"));
	assert_int_equal(px_options_set(&o, &g, "proxy.keepalive_ms", "-5", err, sizeof(err)), -1);
	assert_int_equal(px_options_set(&o, &g, "proxy.keepalive_ms", "12abc", err, sizeof(err)), -1);
	assert_int_equal(px_options_set(&o, &g, "proxy.nope", "1", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown proxy key"));
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


/* ---- px_options_check (issue 11 defect 9) ------------------------------- */

static char tmpdir[64];

static int make_tmpdir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/lw_popts_XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* A self-signed certificate in PEM at <path>, made with OpenSSL here so the
 * test needs no openssl command-line tool. */
static void write_self_signed(const char *path)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	assert_non_null(key);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"lw-test", -1, -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(key);
}

static struct px_options co;
static struct gd_config cg;

/* Fresh settings with a resolvable upstream; then <key>=<value> pairs. */
static void settings(const char *key, const char *value, const char *key2, const char *value2)
{
	char err[512];
	px_options_defaults(&co, &cg);
	assert_int_equal(px_options_set(&co, &cg, "proxy.upstream", "http://127.0.0.1:1", err, sizeof(err)), 0);
	if (key && px_options_set(&co, &cg, key, value, err, sizeof(err)) != 0)
		fail_msg("%s=%s refused: %s", key, value, err);
	if (key2 && px_options_set(&co, &cg, key2, value2, err, sizeof(err)) != 0)
		fail_msg("%s=%s refused: %s", key2, value2, err);
}

/* The check fails, blaming <key> with a reason holding <needle>. */
static void expect_fault(const char *key, const char *needle)
{
	struct cfg_fault f;
	assert_int_equal(px_options_check(&co, &cg, &f), -1);
	if (!f.key || strcmp(f.key, key) != 0 || !strstr(f.why, needle))
		fail_msg("expected a fault on %s with '%s', got %s: %s", key, needle,
		         f.key ? f.key : "(none)", f.why);
}

static void test_defect_11_9_check_rejects_what_startup_rejects(void **state)
{
	(void)state;
	char path[256], pem[256], sub[256];
	struct cfg_fault f;

	/* Every settings below is accepted key by key (px_options_set) and,
	 * before the fix, by --check-config, yet start-up refused it. */
	settings(NULL, NULL, NULL, NULL);
	co.have_upstream = false;
	expect_fault("proxy.upstream", "not set");

	settings("proxy.listen", "no-such-host.invalid:8080", NULL, NULL);
	expect_fault("proxy.listen", "cannot resolve host 'no-such-host.invalid'");

	settings("proxy.upstream", "http://no-such-host.invalid:8081", NULL, NULL);
	expect_fault("proxy.upstream", "no-such-host.invalid");

	snprintf(path, sizeof(path), "%s/missing-ca.pem", tmpdir);
	settings("proxy.upstream", "https://127.0.0.1:1", "proxy.upstream_ca_file", path);
	expect_fault("proxy.upstream_ca_file", "No such file");

	snprintf(path, sizeof(path), "%s/notpem.txt", tmpdir);
	write_text(path, "just text, no certificate\n");
	settings("proxy.upstream", "https://127.0.0.1:1", "proxy.upstream_ca_file", path);
	expect_fault("proxy.upstream_ca_file", "holds no PEM certificate");

	snprintf(path, sizeof(path), "%s/badpem.pem", tmpdir);
	write_text(path, "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n");
	settings("proxy.upstream", "https://127.0.0.1:1", "proxy.upstream_ca_file", path);
	expect_fault("proxy.upstream_ca_file", "not a valid PEM file");

	/* a CA file with a plain-http upstream: a cross-key fault naming both */
	snprintf(pem, sizeof(pem), "%s/ca.pem", tmpdir);
	write_self_signed(pem);
	settings("proxy.upstream_ca_file", pem, NULL, NULL);
	assert_int_equal(px_options_check(&co, &cg, &f), -1);
	assert_non_null(f.key2);
	assert_non_null(strstr(f.why, "https://"));

	snprintf(path, sizeof(path), "%s/a-file", tmpdir);
	write_text(path, "x");
	settings("proxy.record_dir", path, NULL, NULL);
	expect_fault("proxy.record_dir", "not a directory");
	snprintf(sub, sizeof(sub), "%s/no/such/parent", tmpdir);
	settings("proxy.record_dir", sub, NULL, NULL);
	expect_fault("proxy.record_dir", "cannot be created");

	/* the guard policy: a PCRE2 pattern that does not compile names the
	 * entry, the pattern and the offset; a cross-key constraint both keys */
	settings("guards.failure.patterns", "ok", "guards.failure.patterns", "bad (group");
	assert_int_equal(px_options_check(&co, &cg, &f), -1);
	assert_string_equal(f.key, "guards.failure.patterns");
	assert_non_null(f.entry);
	assert_string_equal(f.entry, "bad (group");
	assert_non_null(strstr(f.why, "'bad (group'"));
	assert_non_null(strstr(f.why, "at offset 10"));
	settings("guards.repeat.window_bytes", "1024", NULL, NULL);
	assert_int_equal(px_options_check(&co, &cg, &f), -1);
	assert_string_equal(f.key2, "guards.repeat.window_bytes");

	/* and what does start: host names, a valid CA, a folder to create */
	settings("proxy.listen", "localhost:0", NULL, NULL);
	assert_int_equal(px_options_check(&co, &cg, &f), 0);
	assert_true(strcmp(co.listen_host, "127.0.0.1") == 0 || strcmp(co.listen_host, "::1") == 0);
	settings("proxy.upstream", "https://127.0.0.1:1", "proxy.upstream_ca_file", pem);
	snprintf(sub, sizeof(sub), "%s/records", tmpdir);
	assert_int_equal(px_options_set(&co, &cg, "proxy.record_dir", sub, NULL, 0), 0);
	if (px_options_check(&co, &cg, &f) != 0)
		fail_msg("unexpected fault on %s: %s", f.key, f.why);
}

/* Every refusal of every key, as the loader prints it, names the key once
 * (before the fix: "key 'x': key 'x': ..." and "key 'x': x: ..."). */
struct each_ctx {
	const char *keys[256];
	size_t n;
};

static void collect_proxy(const char *key, const char *value, const char *help, void *ctx)
{
	(void)value;
	(void)help;
	struct each_ctx *c = ctx;
	if (c->n < 256)
		c->keys[c->n++] = key;
}

static void collect_guard(const char *key, const char *value, void *ctx)
{
	(void)value;
	struct each_ctx *c = ctx;
	if (c->n > 0 && strcmp(c->keys[c->n - 1], key) == 0)
		return; /* a list key comes once per entry */
	if (c->n < 256)
		c->keys[c->n++] = key;
}

static int yaml_setter(const char *key, const char *value, const char *file, unsigned long line,
                       void *ctx, char *err, size_t errlen)
{
	(void)file;
	(void)line;
	(void)ctx;
	return px_options_set(&co, &cg, key, value, err, errlen);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0, len = strlen(needle);
	for (const char *p = strstr(hay, needle); p; p = strstr(p + len, needle))
		n++;
	return n;
}

static void test_defect_11_9_messages_name_the_key_once(void **state)
{
	(void)state;
	static const char *const bad[] = {"'not a value'", "-1", "99999999999999999999", "''",
	                                  "'(unclosed'", "'a:b:c'"};
	struct each_ctx c = {.n = 0};
	char yaml[600], err[1024];
	size_t refused = 0;

	px_options_print_keys(collect_proxy, &c);
	gd_config_defaults(&cg);
	gd_config_each(&cg, collect_guard, &c);
	assert_true(c.n > 40);
	for (size_t i = 0; i < c.n; i++) {
		for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
			settings(NULL, NULL, NULL, NULL);
			snprintf(yaml, sizeof(yaml), "%s: %s\n", c.keys[i], bad[j]);
			if (cfg_load_buffer("t.yaml", yaml, strlen(yaml), yaml_setter, NULL, err,
			                    sizeof(err)) == CFG_OK)
				continue;
			refused++;
			char head[300];
			snprintf(head, sizeof(head), "t.yaml:1: key '%s': ", c.keys[i]);
			if (strncmp(err, head, strlen(head)) != 0 || count(err, c.keys[i]) != 1)
				fail_msg("%s: '%s'", c.keys[i], err);
		}
	}
	assert_true(refused > c.n); /* most keys refuse several of these */
	/* unknown keys too */
	static const char *const unknown[] = {"proxy.nope", "guards.nope.x", "watchdog.nope"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(yaml, sizeof(yaml), "%s: 1\n", unknown[i]);
		assert_int_equal(cfg_load_buffer("t.yaml", yaml, strlen(yaml), yaml_setter, NULL, err,
		                                 sizeof(err)), CFG_ESET);
		if (count(err, unknown[i]) != 1 || !strstr(err, "unknown"))
			fail_msg("%s", err);
	}
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
		cmocka_unit_test_setup_teardown(test_defect_11_9_check_rejects_what_startup_rejects,
		                                make_tmpdir, remove_tmpdir),
		cmocka_unit_test(test_defect_11_9_messages_name_the_key_once),
		cmocka_unit_test(test_emit_error),
		cmocka_unit_test(test_emit_trip_chunk),
		cmocka_unit_test(test_emit_truncated_body),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
