/* The YAML loader: dotted keys, lists, quoting, nulls, duplicate keys, and
 * errors that name file, line and key; setting origins and fault messages
 * (config/origin.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "config/origin.h"

struct rec {
	char log[4096];
	size_t len;
	const char *refuse; /* key the setter refuses */
	bool quiet;         /* accept without logging */
};

static int setter(const char *key, const char *value, const char *file, unsigned long line,
                  void *ctx, char *err, size_t errlen)
{
	struct rec *r = ctx;
	int n;

	(void)file;
	if (r->quiet)
		return 0;
	if (r->refuse && strcmp(key, r->refuse) == 0) {
		snprintf(err, errlen, "'%s' is not a number", value);
		return -1;
	}
	n = snprintf(r->log + r->len, sizeof(r->log) - r->len, "%s=%s@%lu;", key, value, line);
	assert_true(n > 0 && (size_t)n < sizeof(r->log) - r->len);
	r->len += (size_t)n;
	return 0;
}

static enum cfg_status load(const char *yaml, struct rec *r, char *err, size_t errlen)
{
	return cfg_load_buffer("test.yaml", yaml, strlen(yaml), setter, r, err, errlen);
}

static void test_nested_keys_and_lists(void **state)
{
	const char *yaml =
		"# loopwarden\n"
		"guards:\n"
		"  name_run:\n"
		"    max_run: 8\n"
		"    enabled: true\n"
		"  failure:\n"
		"    patterns:\n"
		"      - 'no such file'\n"
		"      - \"unknown tool: .*\"\n"
		"    transient: []\n"
		"watchdog: {idle_timeout_ms: 3000}\n"
		"proxy.listen: 127.0.0.1:8080\n"
		"empty: ~\n"
		"quoted_null: 'null'\n";
	struct rec r;
	char err[256];

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(load(yaml, &r, err, sizeof(err)), CFG_OK);
	assert_string_equal(r.log,
		"guards.name_run.max_run=8@4;guards.name_run.enabled=true@5;"
		"guards.failure.patterns=[]@8;guards.failure.patterns=no such file@8;"
		"guards.failure.patterns=unknown tool: .*@9;guards.failure.transient=[]@10;"
		"watchdog.idle_timeout_ms=3000@11;proxy.listen=127.0.0.1:8080@12;empty=@13;"
		"quoted_null=null@14;");
}

static void test_empty_files(void **state)
{
	struct rec r;
	char err[256];

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(load("", &r, err, sizeof(err)), CFG_OK);
	assert_int_equal(load("# only a comment\n", &r, err, sizeof(err)), CFG_OK);
	assert_int_equal(load("---\n...\n", &r, err, sizeof(err)), CFG_OK);
	assert_int_equal(r.len, 0);
}

static void expect(const char *yaml, enum cfg_status want, const char *needle)
{
	struct rec r;
	char err[256] = "";

	memset(&r, 0, sizeof(r));
	r.refuse = "guards.repeat.min_repeats";
	assert_int_equal(load(yaml, &r, err, sizeof(err)), want);
	if (!strstr(err, needle))
		fail_msg("error '%s' lacks '%s'", err, needle);
}

static void test_errors_name_file_line_key(void **state)
{
	(void)state;
	expect("guards:\n  repeat:\n    min_repeats: lots\n", CFG_ESET,
	       "test.yaml:3: key 'guards.repeat.min_repeats': 'lots' is not a number");
	expect("guards:\n  name_run: [1, {a: 2}]\n", CFG_ESHAPE,
	       "test.yaml:2: key 'guards.name_run': a list may hold only scalars");
	expect("guards:\n  max_run: 8\n bad indent: 1\n", CFG_ESYNTAX, "test.yaml:3: YAML syntax error");
	expect("a: &x 1\nb: *x\n", CFG_ESHAPE, "test.yaml:2: key 'b': aliases are not supported");
	expect("- 1\n- 2\n", CFG_ESHAPE, "top level must be a mapping");
	expect("just a string\n", CFG_ESHAPE, "top level must be a mapping");
	expect("a: 1\n---\nb: 2\n", CFG_ESHAPE, "only one YAML document");
	expect("? [a, b]\n: 1\n", CFG_ESHAPE, "keys must be scalars");
	expect("a: \"unterminated\n", CFG_ESYNTAX, "test.yaml:");
}

static void test_depth_cap(void **state)
{
	char yaml[2048];
	size_t len = 0;

	(void)state;
	for (int i = 0; i < CFG_DEPTH_MAX + 2; i++)
		len += (size_t)snprintf(yaml + len, sizeof(yaml) - len, "%*sk%d:\n", 2 * i, "", i);
	snprintf(yaml + len, sizeof(yaml) - len, "%*sleaf: 1\n", 2 * (CFG_DEPTH_MAX + 2), "");
	expect(yaml, CFG_EKEY, "nested deeper");
	expect(yaml, CFG_EKEY, "test.yaml:17: key 'k0.k1.k2.k3.k4.k5.k6.k7.k8.k9.k10.k11.k12.k13.k14.k15': nested deeper");
}

/* Issue 11 defect 9: a key given twice was silently overridden by the
 * second. Now an error naming both lines, whatever spelling each used. */
static void test_defect_11_9_duplicate_keys(void **state)
{
	(void)state;
	/* the same key in one mapping */
	expect("guards:\n  repeat:\n    min_span: 8\n    min_span: 9\n", CFG_EDUPLICATE,
	       "test.yaml:4: key 'guards.repeat.min_span' appears twice (first at line 3)");
	/* a section twice */
	expect("guards:\n  repeat: {min_span: 8}\nwatchdog: {}\nguards:\n  simhash: {window: 8}\n",
	       CFG_EDUPLICATE, "test.yaml:4: key 'guards' appears twice (first at line 1)");
	/* the dotted and the nested spelling of one key */
	expect("guards.repeat.min_span: 8\nguards:\n  repeat:\n    min_span: 9\n", CFG_EDUPLICATE,
	       "test.yaml:4: key 'guards.repeat.min_span' appears twice (first at line 1)");
	/* a list key twice */
	expect("p:\n  - a\np: [b]\n", CFG_EDUPLICATE, "test.yaml:3: key 'p' appears twice (first at line 1)");
	/* the message names the key once */
	struct rec r;
	char err[256];
	memset(&r, 0, sizeof(r));
	assert_int_equal(load("a: 1\na: 2\n", &r, err, sizeof(err)), CFG_EDUPLICATE);
	assert_string_equal(err, "test.yaml:2: key 'a' appears twice (first at line 1)");
	/* distinct keys that share a prefix are fine */
	memset(&r, 0, sizeof(r));
	assert_int_equal(load("guards.repeat.min_span: 8\nguards:\n  simhash: {window: 8}\n"
	                      "guards.repeat.window_bytes: 64\n", &r, err, sizeof(err)), CFG_OK);
}

/* The cap on keys per file holds (each key is remembered for duplicates). */
static void test_key_cap(void **state)
{
	(void)state;
	size_t cap = (size_t)(CFG_KEYS_MAX + 1) * 12 + 1, len = 0;
	char *yaml = malloc(cap);
	struct rec r;
	char err[256];

	assert_non_null(yaml);
	for (int i = 0; i <= CFG_KEYS_MAX; i++)
		len += (size_t)snprintf(yaml + len, cap - len, "k%d: 1\n", i);
	memset(&r, 0, sizeof(r));
	r.quiet = true;
	assert_int_equal(cfg_load_buffer("big.yaml", yaml, len, setter, &r, err, sizeof(err)), CFG_EKEY);
	assert_non_null(strstr(err, "more than 65536 keys"));
	free(yaml);
}

/* Faults found after loading name the line (or option) that set the key. */
static void test_defect_11_9_origins_place_faults(void **state)
{
	(void)state;
	struct cfg_origins *o = cfg_origins_new();
	struct cfg_fault f;
	char msg[600];

	assert_non_null(o);
	assert_int_equal(cfg_origins_note(o, "proxy.listen", "a:1", "lw.yaml", 3), 0);
	assert_int_equal(cfg_origins_note(o, "proxy.listen", "b:1", "--listen", 0), 0);
	assert_int_equal(cfg_origins_note(o, "guards.failure.patterns", "[]", "lw.yaml", 7), 0);
	assert_int_equal(cfg_origins_note(o, "guards.failure.patterns", "ok", "lw.yaml", 7), 0);
	assert_int_equal(cfg_origins_note(o, "guards.failure.patterns", "bad (", "lw.yaml", 8), 0);
	assert_int_equal(cfg_origins_note(o, "guards.repeat.window_bytes", "64", "lw.yaml", 12), 0);

	/* the last setting wins, as it does in the config */
	cfg_fault_set(&f, "proxy.listen", "cannot resolve host 'b'");
	cfg_fault_format(&f, o, msg, sizeof(msg));
	assert_string_equal(msg, "--listen: key 'proxy.listen': cannot resolve host 'b'");
	/* a list entry: the line of that entry */
	cfg_fault_set(&f, "guards.failure.patterns", "pattern 'bad (' does not compile");
	f.entry = "bad (";
	cfg_fault_format(&f, o, msg, sizeof(msg));
	assert_string_equal(msg, "lw.yaml:8: key 'guards.failure.patterns': pattern 'bad (' does not compile");
	/* a key at its default: no position */
	cfg_fault_set(&f, "proxy.upstream", "not set");
	cfg_fault_format(&f, o, msg, sizeof(msg));
	assert_string_equal(msg, "key 'proxy.upstream': not set");
	/* cross-key: the position of whichever key was set last, each key once */
	cfg_fault_set(&f, "guards.repeat.max_period",
	              "guards.repeat.max_period (4096) must be at most guards.repeat.window_bytes - 8 (56)");
	f.key2 = "guards.repeat.window_bytes";
	cfg_fault_format(&f, o, msg, sizeof(msg));
	assert_string_equal(msg, "lw.yaml:12: guards.repeat.max_period (4096) must be at most "
	                         "guards.repeat.window_bytes - 8 (56)");
	/* clearing a list forgets where its old entries came from */
	assert_int_equal(cfg_origins_note(o, "guards.failure.patterns", "[]", "--set", 0), 0);
	cfg_fault_set(&f, "guards.failure.patterns", "x");
	f.entry = "bad (";
	cfg_fault_format(&f, o, msg, sizeof(msg));
	assert_string_equal(msg, "--set: key 'guards.failure.patterns': x");
	/* NULL origins: no positions, still one message */
	cfg_fault_format(&f, NULL, msg, sizeof(msg));
	assert_string_equal(msg, "key 'guards.failure.patterns': x");
	cfg_origins_free(o);
	cfg_origins_free(NULL);
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/lw_test_config_XXXXXX";
	int fd = mkstemp(path);
	const char *yaml = "watchdog:\n  first_token_timeout_ms: 60000\n";
	struct rec r;
	char err[256];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
	close(fd);
	memset(&r, 0, sizeof(r));
	assert_int_equal(cfg_load_file(path, setter, &r, err, sizeof(err)), CFG_OK);
	assert_string_equal(r.log, "watchdog.first_token_timeout_ms=60000@2;");
	unlink(path);
	assert_int_equal(cfg_load_file(path, setter, &r, err, sizeof(err)), CFG_EIO);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "cannot open"));
}

static void test_parse_kv(void **state)
{
	char key[32], value[16], err[256];

	(void)state;
	assert_int_equal(cfg_parse_kv("watchdog.idle_timeout_ms=3000", key, sizeof(key), value,
	                              sizeof(value), err, sizeof(err)), CFG_OK);
	assert_string_equal(key, "watchdog.idle_timeout_ms");
	assert_string_equal(value, "3000");
	assert_int_equal(cfg_parse_kv("a=b=c", key, sizeof(key), value, sizeof(value), err,
	                              sizeof(err)), CFG_OK);
	assert_string_equal(key, "a");
	assert_string_equal(value, "b=c");
	assert_int_equal(cfg_parse_kv("a=", key, sizeof(key), value, sizeof(value), err,
	                              sizeof(err)), CFG_OK);
	assert_string_equal(value, "");
	assert_int_equal(cfg_parse_kv("novalue", key, sizeof(key), value, sizeof(value), err,
	                              sizeof(err)), CFG_EKEY);
	assert_non_null(strstr(err, "key=value"));
	assert_int_equal(cfg_parse_kv("=3", key, sizeof(key), value, sizeof(value), err,
	                              sizeof(err)), CFG_EKEY);
	assert_int_equal(cfg_parse_kv("k=12345678901234567890", key, sizeof(key), value,
	                              sizeof(value), err, sizeof(err)), CFG_EKEY);
	assert_non_null(strstr(err, "value too long"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nested_keys_and_lists),
		cmocka_unit_test(test_empty_files),
		cmocka_unit_test(test_errors_name_file_line_key),
		cmocka_unit_test(test_depth_cap),
		cmocka_unit_test(test_defect_11_9_duplicate_keys),
		cmocka_unit_test(test_key_cap),
		cmocka_unit_test(test_defect_11_9_origins_place_faults),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_parse_kv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
