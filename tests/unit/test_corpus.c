/* The scenario corpus (every .json file in tests/data, see tests/data/README.md): every
 * loop must trip by its by_chunk with an expected guard, every healthy answer
 * must pass untouched with the default config. Replays through the chunk
 * converter, gd_history_parse/check and gd_pipeline, as the proxy does. */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
