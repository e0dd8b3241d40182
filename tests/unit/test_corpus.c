/* The scenario corpus (every .json file in tests/data, see tests/data/README.md): every
 * loop must trip by its by_chunk with an expected guard, every healthy answer
 * must pass untouched with the default config. Replays through the chunk
 * converter, px_request_history/gd_history_check and gd_pipeline, as the proxy does. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "audit/replay.h"
#include "proxy/wire/scenario.h"
#include "proxy/wire/sse.h"

#define MAX_FILES 512

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Replays <sc>; returns 0 when it met its expectation, else fills <why>. */
static int replay(const struct px_scenario *sc, const struct gd_config *defaults,
                  struct aud_result *res, char *why, size_t whylen)
{
	struct gd_config cfg;
	struct gd_policy *policy = NULL;
	struct aud_replay *r = NULL;
	enum aud_status st;
	char err[512] = "";
	int rc = -1;

	if (aud_config_apply(defaults, &cfg, sc->config_keys, sc->config_values, sc->n_config, err,
	                     sizeof(err)) != AUD_OK) {
		snprintf(why, whylen, "%s", err);
		goto out;
	}
	policy = gd_policy_new(&cfg, err, sizeof(err));
	if (!policy) {
		snprintf(why, whylen, "policy: %s", err);
		goto out;
	}
	r = aud_replay_new(policy, sc->request, sc->request_len, &st, err, sizeof(err));
	if (!r) {
		snprintf(why, whylen, "request: %s", err);
		goto out;
	}
	st = aud_replay_history(r);
	for (uint32_t i = 0; st == AUD_OK && i < sc->n_chunks; i++) {
		st = aud_replay_chunk(r, sc->chunks[i].data, sc->chunks[i].len, i + 1,
		                      sc->chunks[i].line, err, sizeof(err));
		if (st < 0) {
			snprintf(why, whylen, "line %lu: chunk %u: %s", sc->chunks[i].line, i + 1, err);
			goto out;
		}
	}
	aud_replay_finish(r, res);
	if (!sc->expect_trip && res->tripped) {
		snprintf(why, whylen, "healthy, but %s tripped at chunk %llu: %s", res->trip.guard,
		         (unsigned long long)res->trip_chunk, res->trip.detail);
	} else if (sc->expect_trip && !res->tripped) {
		snprintf(why, whylen, "loop not caught (must trip by chunk %lld)", (long long)sc->by_chunk);
	} else if (sc->expect_trip && (int64_t)res->trip_chunk > sc->by_chunk) {
		snprintf(why, whylen, "%s tripped at chunk %llu, must trip by chunk %lld",
		         res->trip.guard, (unsigned long long)res->trip_chunk, (long long)sc->by_chunk);
	} else if (sc->expect_trip && !px_scenario_guard_ok(sc, res->trip.guard)) {
		snprintf(why, whylen, "tripped by %s, expected %s", res->trip.guard, sc->guards[0]);
	} else if (!res->tripped && !res->done) {
		snprintf(why, whylen, "the stream ends without [DONE]");
	} else {
		rc = 0;
	}
out:
	aud_replay_free(r);
	gd_policy_free(policy);
	return rc;
}

static void test_corpus(void **state)
{
	DIR *d = opendir(LW_TEST_DATA);
	struct dirent *de;
	char *names[MAX_FILES];
	size_t n = 0;
	int64_t past[MAX_FILES];
	size_t n_past = 0;
	unsigned loops = 0, loops_ok = 0, healthy = 0, healthy_tripped = 0, failures = 0;
	struct gd_config defaults;

	(void)state;
	gd_config_defaults(&defaults);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);

		if (l > 5 && strcmp(de->d_name + l - 5, ".json") == 0 && n < MAX_FILES)
			names[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	for (size_t i = 0; i < n; i++) {
		char path[1024], err[512], why[768] = "";
		struct px_scenario *sc = NULL;
		struct aud_result res;

		snprintf(path, sizeof(path), "%s/%s", LW_TEST_DATA, names[i]);
		if (px_scenario_load(path, &sc, err, sizeof(err)) != PX_SCENARIO_OK) {
			print_error("FAIL %s: %s\n", names[i], err);
			failures++;
			continue;
		}
		if (!sc->has_expect || sc->expect_trip != sc->is_loop) {
			print_error("FAIL %s: kind and expect.trip disagree\n", names[i]);
			failures++;
			px_scenario_free(sc);
			continue;
		}
		memset(&res, 0, sizeof(res));
		if (sc->is_loop)
			loops++;
		else
			healthy++;
		if (replay(sc, &defaults, &res, why, sizeof(why)) != 0) {
			print_error("FAIL %s: %s\n", names[i], why);
			failures++;
		} else if (sc->is_loop) {
			loops_ok++;
		}
		if (!sc->is_loop && res.tripped)
			healthy_tripped++;
		if (sc->is_loop && res.tripped) {
			int64_t p = (int64_t)res.trip_chunk - (sc->onset_chunk > 0 ? sc->onset_chunk : 0);

			if (p < 0)
				p = 0;
			past[n_past++] = p;
			print_message("  %-36s %-10s chunk %4llu (onset %lld, by %lld): %s\n", names[i],
			              res.trip.guard, (unsigned long long)res.trip_chunk,
			              (long long)sc->onset_chunk, (long long)sc->by_chunk, res.trip.detail);
		} else if (!sc->is_loop) {
			print_message("  %-36s pass (%llu chunks)\n", names[i],
			              (unsigned long long)res.chunks);
		}
		px_scenario_free(sc);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	qsort(past, n_past, sizeof(past[0]), cmp_i64);
	print_message("corpus: %u/%u loops tripped, %u/%u healthy tripped; chunks past onset: "
	              "median %lld, max %lld\n", loops_ok, loops, healthy_tripped, healthy,
	              n_past ? (long long)past[n_past / 2] : 0LL,
	              n_past ? (long long)past[n_past - 1] : 0LL);
	assert_true(loops >= 15);
	assert_true(healthy >= 15);
	assert_int_equal(failures, 0);
}


/* ---- the same answers through SSE framing ---------------------------- */

struct sse_run {
	struct aud_replay *r;
	enum aud_status st;
};

static int on_sse(const struct px_sse_event *ev, void *ctx)
{
	struct sse_run *x = ctx;
	char err[512];

	x->st = aud_replay_chunk(x->r, ev->data, ev->len, ev->number, (unsigned long)ev->line,
	                         err, sizeof(err));
	if (x->st < 0)
		fail_msg("chunk %llu: %s", (unsigned long long)ev->number, err);
	return x->st != AUD_OK;
}

/* Replays <sc> as the upstream would send it: `data: …` events with CRLF
 * framing and keep-alive comments, read in slices of 1..97 bytes. */
static void replay_sse(const struct px_scenario *sc, const struct gd_policy *policy,
                       uint32_t seed, struct aud_result *res)
{
	size_t cap = 64, len = 0;
	char *text = malloc(cap), err[512];
	struct px_sse *sse = px_sse_new(PX_SSE_MODE_STREAM, 1u << 20);
	struct sse_run x;

	assert_non_null(text);
	assert_non_null(sse);
	for (uint32_t i = 0; i < sc->n_chunks; i++) {
		size_t need = len + sc->chunks[i].len + 32;

		if (need > cap) {
			cap = 2 * need;
			text = realloc(text, cap);
			assert_non_null(text);
		}
		if (i % 7 == 3)
			len += (size_t)sprintf(text + len, ": keep-alive\r\n\r\n");
		len += (size_t)sprintf(text + len, "data: %s\r\n\r\n", sc->chunks[i].data);
	}
	x.r = aud_replay_new(policy, sc->request, sc->request_len, &x.st, err, sizeof(err));
	assert_non_null(x.r);
	x.st = aud_replay_history(x.r);
	for (size_t at = 0; x.st == AUD_OK && at < len;) {
		size_t n;
		enum px_sse_status ss;

		seed = seed * 1103515245u + 12345u;
		n = 1 + (seed >> 16) % 97;
		if (n > len - at)
			n = len - at;
		ss = px_sse_feed(sse, text + at, n, on_sse, &x, err, sizeof(err));
		assert_true(ss == PX_SSE_OK || ss == PX_SSE_ESTOPPED);
		at += n;
	}
	aud_replay_finish(x.r, res);
	aud_replay_free(x.r);
	px_sse_free(sse);
	free(text);
}

static void test_corpus_through_sse(void **state)
{
	static const char *const files[] = {
		"002-same-call-in-answer.json", "007-newline-flood.json", "010-reasoning-circling.json",
		"012-function-30x-in-write.json", "018-ollama-parallel-same.json",
		"023-switch-40-cases.json", "024-ten-parallel-edits.json", "033-ascii-art-box.json",
		"041-vllm-interleaved-same.json", "045-vllm-interleaved-calls.json",
	};
	struct gd_config cfg;
	struct gd_policy *policy;
	char err[512];

	(void)state;
	gd_config_defaults(&cfg);
	policy = gd_policy_new(&cfg, err, sizeof(err));
	assert_non_null(policy);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[1024];
		struct px_scenario *sc = NULL;
		struct aud_result direct, framed;
		struct aud_replay *r;
		enum aud_status st;

		snprintf(path, sizeof(path), "%s/%s", LW_TEST_DATA, files[i]);
		assert_int_equal(px_scenario_load(path, &sc, err, sizeof(err)), PX_SCENARIO_OK);
		r = aud_replay_new(policy, sc->request, sc->request_len, &st, err, sizeof(err));
		assert_non_null(r);
		st = aud_replay_history(r);
		for (uint32_t k = 0; st == AUD_OK && k < sc->n_chunks; k++)
			st = aud_replay_chunk(r, sc->chunks[k].data, sc->chunks[k].len, k + 1, 0, err,
			                      sizeof(err));
		aud_replay_finish(r, &direct);
		aud_replay_free(r);
		for (uint32_t seed = 1; seed <= 3; seed++) {
			replay_sse(sc, policy, seed, &framed);
			if (framed.tripped != direct.tripped || framed.trip_chunk != direct.trip_chunk ||
			    framed.events != direct.events || strcmp(framed.trip.guard, direct.trip.guard) != 0)
				fail_msg("%s (seed %u): framed %s at chunk %llu, direct %s at chunk %llu", files[i],
				         seed, framed.tripped ? framed.trip.guard : "pass",
				         (unsigned long long)framed.trip_chunk,
				         direct.tripped ? direct.trip.guard : "pass",
				         (unsigned long long)direct.trip_chunk);
		}
		px_scenario_free(sc);
	}
	gd_policy_free(policy);
}

/* ---- the scenario reader ---------------------------------------------- */

static void expect_parse(const char *text, enum px_scenario_status want, const char *needle)
{
	struct px_scenario *sc = NULL;
	char err[512] = "";

	assert_int_equal(px_scenario_parse("s.json", text, strlen(text), &sc, err, sizeof(err)), want);
	if (want == PX_SCENARIO_OK)
		assert_non_null(sc);
	else if (!strstr(err, needle))
		fail_msg("error '%s' lacks '%s'", err, needle);
	px_scenario_free(sc);
}

static void test_scenario_reader(void **state)
{
	const char *good =
		"{\"name\": \"n\", \"kind\": \"loop\",\n"
		" \"expect\": {\"trip\": true, \"guard\": [\"repeat\", \"simhash\"], \"onset_chunk\": 2, \"by_chunk\": 3},\n"
		" \"config\": {\"guards.budget.max_tool_calls\": 4, \"guards.repeat.enabled\": false, \"k\": \"v\"},\n"
		" \"request\": {\"model\": \"m\", \"messages\": [], \"temperature\": 0.20},\n"
		" \"chunks\": [\n"
		"   {\"choices\": [{\"index\": 0, \"delta\": {\"content\": \"a\\u00e9\"}}]},\n"
		"   \"{raw\",\n"
		"   \"[DONE]\"\n"
		" ]}\n";
	struct px_scenario *sc = NULL;
	char err[512];

	(void)state;
	assert_int_equal(px_scenario_parse("s.json", good, strlen(good), &sc, err, sizeof(err)),
	                 PX_SCENARIO_OK);
	assert_string_equal(sc->name, "n");
	assert_true(sc->is_loop && sc->has_expect && sc->expect_trip);
	assert_int_equal(sc->n_guards, 2);
	assert_true(px_scenario_guard_ok(sc, "simhash"));
	assert_false(px_scenario_guard_ok(sc, "dedup"));
	assert_int_equal(sc->onset_chunk, 2);
	assert_int_equal(sc->by_chunk, 3);
	assert_int_equal(sc->n_config, 3);
	assert_string_equal(sc->config_values[0], "4");
	assert_string_equal(sc->config_values[1], "false");
	/* Numbers keep their text; strings are re-escaped as JSON. */
	assert_string_equal(sc->request, "{\"model\":\"m\",\"messages\":[],\"temperature\":0.20}");
	assert_int_equal(sc->n_chunks, 3);
	assert_string_equal(sc->chunks[0].data,
	                    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\xc3\xa9\"}}]}");
	assert_int_equal(sc->chunks[0].line, 6);
	assert_string_equal(sc->chunks[1].data, "{raw");
	assert_false(sc->chunks[1].done);
	assert_true(sc->chunks[2].done);
	assert_int_equal(sc->chunks[2].line, 8);
	px_scenario_free(sc);

	expect_parse("{\"chunks\": []}", PX_SCENARIO_OK, "");
	expect_parse("{\n\"chunks\": [\n{\"a\": 1},,\n]}", PX_SCENARIO_EJSON, "s.json:3:");
	expect_parse("", PX_SCENARIO_EJSON, "s.json:1:");
	expect_parse("[]", PX_SCENARIO_ESHAPE, "a scenario is a JSON object");
	expect_parse("{\"name\": \"x\"}", PX_SCENARIO_ESHAPE, "\"chunks\"");
	expect_parse("{\"kind\": \"weird\", \"chunks\": []}", PX_SCENARIO_ESHAPE, "\"kind\"");
	expect_parse("{\"expect\": {\"trip\": true}, \"chunks\": []}", PX_SCENARIO_ESHAPE, "by_chunk");
	expect_parse("{\"expect\": {\"trip\": 1}, \"chunks\": []}", PX_SCENARIO_ESHAPE, "expect.trip");
	expect_parse("{\"chunks\": [1]}", PX_SCENARIO_ESHAPE, "chunk 1 is neither");
	expect_parse("{\"config\": {\"k\": [1]}, \"chunks\": []}", PX_SCENARIO_ESHAPE, "config.k");
	/* Issue 11 defect 1: nesting is refused by the event pass, before
	 * yajl_tree builds it (its free recursed once per level and crashed
	 * loopwarden-audit on a file nested 300 000 deep). */
	{
		size_t depth = 300000, n = 0;
		char *deep = malloc(2 * depth + 64);

		assert_non_null(deep);
		n += (size_t)sprintf(deep, "{\"chunks\": [], \"x\": ");
		memset(deep + n, '[', depth);
		memset(deep + n + depth, ']', depth);
		strcpy(deep + n + 2 * depth, "}");
		expect_parse(deep, PX_SCENARIO_EJSON, "nested deeper than 66 levels");
		/* At the cap: the file reads. */
		n = (size_t)sprintf(deep, "{\"chunks\": [], \"x\": ");
		memset(deep + n, '[', PX_SCENARIO_MAX_DEPTH - 1);
		memset(deep + n + PX_SCENARIO_MAX_DEPTH - 1, ']', PX_SCENARIO_MAX_DEPTH - 1);
		strcpy(deep + n + 2 * (PX_SCENARIO_MAX_DEPTH - 1), "}");
		expect_parse(deep, PX_SCENARIO_OK, "");
		free(deep);
	}
	assert_int_equal(px_scenario_load("/nonexistent/x.json", &sc, err, sizeof(err)), PX_SCENARIO_EIO);
	assert_non_null(strstr(err, "/nonexistent/x.json"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_corpus_through_sse),
		cmocka_unit_test(test_scenario_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
