/* Issue 12 item 11: a continuation of our own cut was missed. The client
 * received one byte less than the repeat guard needed (the chunk that
 * tripped was withheld), so when it sent the cut answer back to be
 * continued the history check saw no loop. The rule now holds by
 * construction: a trip reports how much of the tripping event the guards
 * read (gd_trip.event_used), the proxy delivers exactly that, and the history
 * check feeds the last assistant message to the same pipeline. This test
 * checks the contract on every text and reasoning loop of the corpus
 * (tests/data): what the guards read up to the trip, sent back as the last
 * assistant message, trips the history check — and one byte less does not
 * (the boundary is exact, not a margin). */
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
#include "guards/history.h"
#include "guards/pipeline.h"
#include "proxy/wire/chunk.h"
#include "proxy/wire/request.h"
#include "proxy/wire/scenario.h"

struct buf {
	char *p;
	size_t len;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	b->p = realloc(b->p, b->len + n + 1);
	assert_non_null(b->p);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Appends <s, n> as a JSON string (the corpus texts are valid UTF-8). */
static void buf_json(struct buf *b, const char *s, size_t n)
{
	buf_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			buf_add(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			buf_add(b, esc, 6);
		} else {
			buf_add(b, (const char *)&c, 1);
		}
	}
	buf_add(b, "\"", 1);
}

struct run {
	struct gd_pipeline *p;
	struct buf text, reasoning; /* what the guards read, up to the trip */
	bool tripped;
};

static int on_event(const struct gd_event *ev, void *ctx)
{
	struct run *r = ctx;

	if (gd_pipeline_feed(r->p, ev) == GD_TRIP) {
		const struct gd_trip *t = gd_pipeline_trip(r->p);

		r->tripped = true;
		if (ev->type == GD_EV_TEXT)
			buf_add(&r->text, ev->data, (size_t)t->event_used);
		else if (ev->type == GD_EV_REASONING)
			buf_add(&r->reasoning, ev->data, (size_t)t->event_used);
		return 1;
	}
	if (ev->type == GD_EV_TEXT)
		buf_add(&r->text, ev->data, ev->len);
	else if (ev->type == GD_EV_REASONING)
		buf_add(&r->reasoning, ev->data, ev->len);
	return 0;
}

/* The history check on [user, assistant{<text>, <reasoning>}]. */
static bool history_trips(const struct gd_policy *policy, const struct buf *text, size_t tlen,
                          const struct buf *reasoning, size_t rlen, struct gd_trip *trip)
{
	struct buf body = { NULL, 0 };
	char err[256];
	const char *head = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Go.\"},"
	                   "{\"role\":\"assistant\",\"content\":";

	buf_add(&body, head, strlen(head));
	buf_json(&body, text->p ? text->p : "", tlen);
	buf_add(&body, ",\"reasoning_content\":", 21);
	buf_json(&body, reasoning->p ? reasoning->p : "", rlen);
	buf_add(&body, "}]}", 3);
	struct gd_history *h = px_request_history(policy, body.p, body.len, err, sizeof(err));
	if (!h)
		fail_msg("px_request_history: %s", err);
	bool tripped = gd_history_check(h, trip);
	gd_history_free(h);
	free(body.p);
	return tripped;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_delivered_cut_is_recognised(void **state)
{
	DIR *d = opendir(LW_TEST_DATA);
	struct dirent *de;
	char *names[512];
	size_t n = 0;
	unsigned checked = 0, failures = 0;
	struct gd_config defaults;

	(void)state;
	gd_config_defaults(&defaults);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l > 5 && strcmp(de->d_name + l - 5, ".json") == 0 && n < 512)
			names[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	for (size_t i = 0; i < n; i++) {
		char path[1024], err[512];
		struct px_scenario *sc = NULL;
		struct gd_config cfg;
		struct gd_policy *policy = NULL;
		struct px_chunk *conv = px_chunk_new(4u << 20);
		struct run r;
		struct gd_trip trip, htrip;

		memset(&r, 0, sizeof(r));
		snprintf(path, sizeof(path), "%s/%s", LW_TEST_DATA, names[i]);
		assert_int_equal(px_scenario_load(path, &sc, err, sizeof(err)), PX_SCENARIO_OK);
		assert_int_equal(aud_config_apply(&defaults, &cfg, sc->config_keys, sc->config_values,
		                                  sc->n_config, err, sizeof(err)), AUD_OK);
		policy = gd_policy_new(&cfg, err, sizeof(err));
		assert_non_null(policy);
		assert_non_null(conv);
		r.p = gd_pipeline_new(policy, NULL);
		assert_non_null(r.p);
		for (uint32_t k = 0; k < sc->n_chunks && !r.tripped; k++) {
			enum px_chunk_status st = PX_CHUNK_OK;
			if (!sc->chunks[k].done)
				st = px_chunk_feed(conv, sc->chunks[k].data, sc->chunks[k].len, on_event, &r,
				                   err, sizeof(err));
			if (st != PX_CHUNK_OK && !r.tripped)
				break; /* the corpus test reports bad chunks */
		}
		if (!r.tripped)
			goto next;
		trip = *gd_pipeline_trip(r.p);
		if (trip.stream != GD_STREAM_TEXT && trip.stream != GD_STREAM_REASONING)
			goto next; /* a call guard: nothing of the call is delivered */
		checked++;
		if (!history_trips(policy, &r.text, r.text.len, &r.reasoning, r.reasoning.len, &htrip)) {
			print_error("FAIL %s: %s tripped in the stream (%s), but the text it read "
			            "(%zu bytes of content, %zu of reasoning) passes the history check\n",
			            names[i], trip.guard, trip.detail, r.text.len, r.reasoning.len);
			failures++;
		} else if (strcmp(htrip.guard, trip.guard) != 0) {
			print_error("FAIL %s: %s in the stream, %s in the history\n", names[i],
			            trip.guard, htrip.guard);
			failures++;
		}
		/* One byte less of the stream that tripped: the guard had not
		 * tripped yet, so neither does the history check. */
		size_t tl = r.text.len, rl = r.reasoning.len;
		if (trip.stream == GD_STREAM_TEXT)
			tl--;
		else
			rl--;
		if (history_trips(policy, &r.text, tl, &r.reasoning, rl, &htrip)) {
			print_error("FAIL %s: one byte short of the trip, the history check trips "
			            "(%s: %s)\n", names[i], htrip.guard, htrip.detail);
			failures++;
		}
next:
		free(r.text.p);
		free(r.reasoning.p);
		gd_pipeline_free(r.p);
		gd_policy_free(policy);
		px_chunk_free(conv);
		px_scenario_free(sc);
		free(names[i]);
	}
	printf("%u text and reasoning loops: the text the guards read up to the trip, sent back, "
	       "trips the history check\n", checked);
	assert_true(checked >= 10);
	assert_int_equal(failures, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delivered_cut_is_recognised),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
