/* The SimHash watchdog: near-repeats with changing counters trip; prose,
 * numbered lists, a switch with 40 cases and JSON arrays of similar objects
 * pass with the defaults. */
#include "test_guard_util.h"

#include "guards/simhash.h"

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

/* Returns the 1-based chunk that tripped, 0 for none; <guard> gets its name. */
static size_t feed(const char *s, size_t chunk, char *guard)
{
	struct gd_pipeline *p = gd_pipeline_new(pol, NULL);
	size_t n;

	assert_non_null(p);
	n = tg_text_chunks(p, GD_EV_TEXT, s, chunk);
	guard[0] = '\0';
	if (n)
		strcpy(guard, gd_pipeline_trip(p)->guard);
	gd_pipeline_free(p);
	return n;
}

static void test_attempt_n_trips(void **state)
{
	(void)state;
	char *s = NULL, guard[32];
	size_t len = 0, unit;

	tg_appendf(&s, &len, "Let me connect to the database.\n");
	for (int i = 1; i <= 40; i++)
		tg_appendf(&s, &len, "Attempt %d: connecting to postgres at 10.0.0.%d:5432 failed after "
		           "%d ms, so I will wait and retry the connection with the same settings.\n",
		           i, 10 + i % 3, 100 * i);
	unit = len / 41;
	size_t n = feed(s, 4, guard);
	assert_true(n > 0);
	assert_string_equal(guard, "simhash");
	/* Within 8 near-identical attempts after the first. */
	assert_true(n * 4 < 32 + 9 * unit);
	free(s);
}

static void test_prose_and_lists_pass(void **state)
{
	(void)state;
	char *s = NULL, guard[32];
	size_t len = 0;
	static const char *const steps[] = {
		"Install the dependencies with the package manager and pin the versions",
		"Create a configuration file next to the binary and set the listen address",
		"Generate a TLS certificate for the host name the clients will use",
		"Start the service under the supervisor so that it restarts after a crash",
		"Point the agent at the new endpoint and run one request by hand",
		"Watch the metrics page while the first real sessions come in",
		"Rotate the logs daily and keep two weeks of them for audits",
		"Write down the rollback procedure before the change window opens",
		"Add an alert on the error rate and on the latency percentile",
		"Schedule a review with the team after the first week in production",
	};
	for (int i = 0; i < 10; i++)
		tg_appendf(&s, &len, "%d. %s.\n", i + 1, steps[i]);
	tg_appendf(&s, &len, "\nEach step is independent of the next one, except that the "
	           "certificate must exist before the service starts.\n");
	size_t n = feed(s, 4, guard);
	if (n)
		fail_msg("numbered list tripped %s", guard);
	free(s);
}

static void test_switch_and_json_array_pass(void **state)
{
	(void)state;
	char *s = NULL, guard[32];
	size_t len = 0;
	static const char *const ops[] = { "NOP", "PUSH", "POP", "ADD", "SUB", "MUL", "DIV",
		"MOD", "NEG", "AND", "OR", "XOR", "NOT", "SHL", "SHR", "JMP", "JZ", "JNZ", "CALL",
		"RET", "LOAD", "STORE", "DUP", "SWAP", "OVER", "ROT", "EQ", "NE", "LT", "LE", "GT",
		"GE", "PRINT", "READ", "HALT", "YIELD", "ALLOC", "FREE", "TRAP", "DEBUG" };

	tg_appendf(&s, &len, "const char *opcode_name(enum opcode op)\n{\n\tswitch (op) {\n");
	for (int i = 0; i < 40; i++)
		tg_appendf(&s, &len, "\tcase OP_%s: return \"%s\";\n", ops[i], ops[i]);
	tg_appendf(&s, &len, "\t}\n\treturn \"?\";\n}\n");
	size_t n = feed(s, 3, guard);
	if (n)
		fail_msg("switch tripped %s", guard);
	free(s);

	s = NULL;
	len = 0;
	static const char *const names[] = { "Ada", "Grace", "Alan", "Edsger", "Barbara",
		"Donald", "Ken", "Dennis", "Frances", "John" };
	static const char *const roles[] = { "admin", "editor", "viewer", "owner", "auditor" };
	tg_appendf(&s, &len, "[\n");
	for (int i = 0; i < 50; i++)
		tg_appendf(&s, &len, "  {\"id\": %d, \"name\": \"%s %c.\", \"role\": \"%s\", "
		           "\"active\": %s, \"team\": \"t%d\"},\n", 1000 + i, names[i % 10],
		           'A' + (i * 7) % 26, roles[(i * 3) % 5], i % 4 ? "true" : "false", i % 6);
	tg_appendf(&s, &len, "]\n");
	n = feed(s, 4, guard);
	if (n)
		fail_msg("JSON array tripped %s", guard);
	free(s);
}

/* A dump of one repeated word (xxd of erased flash) followed by varied
 * text: the windows that straddle the two are mostly `ffff` shingles, so
 * their SimHash matches the dump's. A window where one token fills more than
 * a quarter is never a hit (this answer tripped before that rule). */
static void test_dump_then_text_passes(void **state)
{
	(void)state;
	char *s = NULL, guard[32];
	size_t len = 0;

	tg_appendf(&s, &len, "Yes, the page is erased:\n\n```\n");
	for (int i = 0; i < 8; i++)
		tg_appendf(&s, &len, "%08x: ffff ffff ffff ffff ffff ffff ffff ffff  ................\n",
		           0x40 + 16 * i);
	tg_appendf(&s, &len, "```\n\nAnd the start position:\n\n```\n  a b c d e f g h\n"
	           "8 r n b q k b n r\n7 p p p p p p p p\n6 . . . . . . . .\n5 . . . . . . . .\n"
	           "4 . . . . . . . .\n3 . . . . . . . .\n2 P P P P P P P P\n1 R N B Q K B N R\n```\n");
	assert_int_equal(feed(s, 3, guard), 0);
	free(s);

	/* The same rule leaves a near-repeat loop of varied words alone. */
	s = NULL;
	len = 0;
	tg_appendf(&s, &len, "```\n");
	for (int i = 0; i < 8; i++)
		tg_appendf(&s, &len, "%08x: ffff ffff ffff ffff ffff ffff ffff ffff\n", 16 * i);
	tg_appendf(&s, &len, "```\n");
	for (int i = 1; i <= 30; i++)
		tg_appendf(&s, &len, "Attempt %d: I will change the import to app.lib.parser and run "
		           "it again, which should resolve the missing module error.\n", i);
	/* (The counter rule of the exact watchdog catches it too: off here.) */
	struct gd_policy *keep = pol;
	pol = tg_policy((const char *const[]){ "guards.repeat.counter_repeats=0", NULL });
	assert_true(feed(s, 3, guard) > 0);
	assert_string_equal(guard, "simhash");
	gd_policy_free(pol);
	pol = keep;
	free(s);
}

/* Random base64, as an inlined image. */
static void base64ish(char *out, size_t n, uint32_t seed)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		out[i] = b64[(seed >> 16) & 63];
	}
	out[n] = '\0';
}

/* Issue 12 item 7: a long passage written twice (the same data URI for
 * the favicon and the logo) is what exact repetition deliberately allows:
 * SimHash lets it through too. Written three times, it trips. */
static void test_passage_twice_passes(void **state)
{
	(void)state;
	char blob[4801], *s = NULL, guard[32];
	size_t len = 0;

	base64ish(blob, 4800, 11);
	tg_appendf(&s, &len, "<link rel=\"icon\" href=\"data:image/png;base64,%s\">\n"
	           "<header><img class=\"logo\" alt=\"Acme\" src=\"data:image/png;base64,%s\">"
	           "<h1>Acme</h1></header>\n", blob, blob);
	assert_int_equal(feed(s, 6, guard), 0);
	free(s);
	/* A shorter one (three copies within the windows SimHash keeps). */
	s = NULL;
	len = 0;
	blob[1200] = '\0';
	for (int i = 0; i < 2; i++)
		tg_appendf(&s, &len, "<img class=\"icon-%d\" src=\"data:image/png;base64,%s\">\n", i, blob);
	assert_int_equal(feed(s, 6, guard), 0);
	tg_appendf(&s, &len, "<img class=\"icon-2\" src=\"data:image/png;base64,%s\">\n", blob);
	assert_true(feed(s, 6, guard) > 0);
	assert_string_equal(guard, "simhash");
	free(s);
}

/* Issue 12 item 8: generated code that differs only in numbers and names;
 * every copy brings a new identifier. The same code with one name is a
 * loop. */
static void test_generated_code_passes(void **state)
{
	(void)state;
	char *s = NULL, guard[32];
	size_t len = 0;
	static const int codes[] = { 0, 7, 12, 13, 19, 21, 22, 30, 31, 37, 40, 44, 45, 51, 58, 60,
	                             61, 64, 70, 77, 80, 88, 93, 99 };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		tg_appendf(&s, &len, "@router.post(\"/ops/%d\")\nasync def handle_%d(req: Request):\n"
		           "    payload = decode(await req.body(), schema=SCHEMAS[%d], strict=True)\n"
		           "    log.debug(\"dispatching opcode\", extra={\"op\": %d})\n"
		           "    return dispatch(%d, payload, timeout=DEFAULT_TIMEOUT)\n\n",
		           codes[i], codes[i], codes[i], codes[i], codes[i]);
	assert_int_equal(feed(s, 5, guard), 0);
	free(s);
	s = NULL;
	len = 0;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		tg_appendf(&s, &len, "@router.post(\"/ops/%d\")\nasync def handle_op(req: Request):\n"
		           "    payload = decode(await req.body(), schema=SCHEMAS[%d], strict=True)\n"
		           "    log.debug(\"dispatching opcode\", extra={\"op\": %d})\n"
		           "    return dispatch(%d, payload, timeout=DEFAULT_TIMEOUT)\n\n",
		           codes[i], codes[i], codes[i], codes[i]);
	struct gd_policy *keep = pol;
	pol = tg_policy((const char *const[]){ "guards.repeat.counter_repeats=0", NULL });
	assert_true(feed(s, 5, guard) > 0);
	assert_string_equal(guard, "simhash");
	gd_policy_free(pol);
	pol = keep;
	free(s);
}

static void test_fingerprint_distance(void **state)
{
	(void)state;
	const struct gd_simhash_config *cfg = &gd_policy_config(pol)->simhash;
	const char *a = "Attempt 7: the build failed because the linker could not find libfoo "
	                "in the search path, so I will add the directory and try once more";
	const char *b = "Attempt 8: the build failed because the linker could not find libfoo "
	                "in the search path, so I will add the directory and try once more";
	const char *c = "The parser reads one header line at a time and keeps the partial line "
	                "in a buffer until the terminating newline arrives from the socket";
	uint64_t ha = gd_simhash_text(cfg, a, strlen(a));
	uint64_t hb = gd_simhash_text(cfg, b, strlen(b));
	uint64_t hc = gd_simhash_text(cfg, c, strlen(c));
	/* Counters fold: identical fingerprints; unrelated text: far. */
	assert_int_equal(__builtin_popcountll(ha ^ hb), 0);
	assert_true(__builtin_popcountll(ha ^ hc) > 16);
}

static void test_window_config_respected(void **state)
{
	(void)state;
	/* With the watchdog disabled the same Attempt loop passes (and the
	 * exact watchdog cannot see it: every line differs). */
	struct gd_policy *off = tg_policy((const char *const[]){ "guards.simhash.enabled=false", NULL });
	struct gd_pipeline *p = gd_pipeline_new(off, NULL);
	char *s = NULL;
	size_t len = 0;
	for (int i = 1; i <= 40; i++)
		tg_appendf(&s, &len, "Attempt %d: connecting failed after %d ms, retrying now.\n", i, 37 * i);
	assert_int_equal(tg_text_chunks(p, GD_EV_TEXT, s, 4), 0);
	gd_pipeline_free(p);
	gd_policy_free(off);
	free(s);
}

/* Guards2 item 2: a passage longer than SimHash's old horizon (history 128
 * windows x 4 tokens) written again and again, not back to back (a sentence
 * of commentary between copies, alternating), was caught by nothing: the
 * third copy matched one earlier place only (neutral), and windows were
 * compared with earlier windows on the 4-token grid, which a copy whose
 * length in tokens is not a multiple of 4 never lands on. Now every window
 * is kept and the horizon is history x stride = 2048 tokens. Twice is a
 * quotation and passes. */
static void test_long_passage_again_and_again(void **state)
{
	(void)state;
	static const char *const between[] = {
		"Let me double-check the edge cases once more before finishing.\n\n",
		"Wait, I should make sure the backoff is right. Here is the final version again:\n\n",
	};
	struct gd_policy *only = tg_policy((const char *const[]){ "guards.repeat.enabled=false",
		"guards.paraphrase.enabled=false", NULL });
	struct gd_policy *old = tg_policy((const char *const[]){ "guards.repeat.enabled=false",
		"guards.paraphrase.enabled=false", "guards.simhash.history=128", NULL });
	char *passage = NULL, *s = NULL;
	size_t plen = 0, len = 0, words = 0;
	uint32_t x = 11;

	/* ~301 words of varied prose (a multiple of 4 plus 1). */
	while (words < 301) {
		static const char *const w[] = { "parser", "reads", "header", "buffer", "socket", "keeps",
			"partial", "line", "until", "newline", "arrives", "client", "server", "timeout",
			"retries", "cache", "entry", "expires", "after", "request", "queue", "backs" };
		x = x * 1103515245u + 12345u;
		tg_appendf(&passage, &plen, "%s%s%s", w[(x >> 16) % 22], w[(x >> 8) % 22],
		           words % 12 == 11 ? ".\n" : " ");
		words++;
	}
	tg_appendf(&s, &len, "Here is the final text:\n\n%s\n", passage);
	size_t twice = 0;
	for (int k = 0; k < 4; k++) {
		tg_appendf(&s, &len, "%s%s\n", between[k % 2], passage);
		if (k == 0)
			twice = len;
	}
	struct gd_pipeline *p = gd_pipeline_new(only, NULL);
	size_t n = tg_text_chunks(p, GD_EV_TEXT, s, 5);
	assert_true(n > 0);
	assert_string_equal(gd_pipeline_trip(p)->guard, "simhash");
	/* Not before the third copy. */
	assert_true(n * 5 > twice);
	gd_pipeline_free(p);
	/* Twice passes. */
	char *two = strndup(s, twice);
	assert_non_null(two);
	p = gd_pipeline_new(only, NULL);
	assert_int_equal(tg_text_chunks(p, GD_EV_TEXT, two, 5), 0);
	gd_pipeline_free(p);
	free(two);
	/* With the old horizon the same loop is missed. */
	p = gd_pipeline_new(old, NULL);
	assert_int_equal(tg_text_chunks(p, GD_EV_TEXT, s, 5), 0);
	gd_pipeline_free(p);
	gd_policy_free(old);
	gd_policy_free(only);
	free(passage);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_attempt_n_trips),
		cmocka_unit_test(test_long_passage_again_and_again),
		cmocka_unit_test(test_prose_and_lists_pass),
		cmocka_unit_test(test_switch_and_json_array_pass),
		cmocka_unit_test(test_dump_then_text_passes),
		cmocka_unit_test(test_passage_twice_passes),
		cmocka_unit_test(test_generated_code_passes),
		cmocka_unit_test(test_fingerprint_distance),
		cmocka_unit_test(test_window_config_respected),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
