/* The scheduler (engine/sched.h) on a real model, stories260K: concurrent
 * requests, more than one step holds, give each its lone greedy output; a
 * consumer that stops reading pauses only its own sequence; cancel stops a
 * sequence at its next token with tokens_after_cancel <= 1 (between steps,
 * during a step, from another thread, while queued or paused); admission
 * waits instead of failing; submit errors name the field; shutdown and an
 * early eng_req_free deliver or drop everything cleanly.
 *
 * Waits are for a state ("until the final event arrives"), bounded by a
 * generous deadline only so that a deadlock fails the test instead of
 * hanging it; nothing asserts on speed. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "engine/load.h"
#include "engine/sched.h"
#include "engine/tokenizer.h"
#include "tests/unit/eng_test_util.h"

#define MODEL LW_SOURCE_DIR "/contrib/models/stories260K.gguf"
#define REFS LW_SHARED_DIR "/models/stories260K.refs.json"
#define N_CTX 512
#define MAX_GEN 400
#define DEADLINE_S 120

static struct eng_file *file;
static struct eng_tok *tok;
static struct eng_model *model;
static struct eng_one alone; /* the single-sequence path, for references */

/* ---- prompts and their lone greedy continuations --------------------------- */

#define N_PROMPTS 12
static const char *const prompt_text[N_PROMPTS] = {
	"Once upon a time",
	"Lily and Ben went to the park.",
	"The little dog was sad because",
	"Mom said: \"Time for bed!\" and",
	"One day, a big bear",
	"Tom had a red ball",
	"The sun was hot",
	"Sue and her cat",
	"A bird sat on a tree. It",
	"Once",
	"The boy ran to his mom and said",
	"There was a big box in the room",
};

struct ref {
	int32_t prompt[64];
	int n_prompt;
	int32_t ids[MAX_GEN];
	float margin[MAX_GEN];
	int n_sure; /* ids before the first near-tie (margin < 1e-3) */
};
static struct ref refs[N_PROMPTS];

static void make_ref(struct ref *r, const char *text)
{
	char err[256] = "";
	r->n_prompt = eng_tok_encode(tok, text, strlen(text), true, true, r->prompt, 64);
	assert_true(r->n_prompt > 0);
	const float *lg;
	assert_int_equal(eng_one_eval(&alone, r->prompt, r->n_prompt, 0, &lg, err, sizeof(err)),
			 ENG_OK);
	r->n_sure = -1;
	for (int g = 0; g < MAX_GEN; g++) {
		int32_t id = eb_argmax(lg, 512, &r->margin[g]);
		r->ids[g] = id;
		if (r->margin[g] < 1e-3f && r->n_sure < 0)
			r->n_sure = g;
		if (g + 1 < MAX_GEN)
			assert_int_equal(eng_one_eval(&alone, &id, 1, r->n_prompt + g, &lg, err,
						      sizeof(err)), ENG_OK);
	}
	if (r->n_sure < 0)
		r->n_sure = MAX_GEN;
}

static int setup(void **state)
{
	(void)state;
	char err[256] = "";
	if (eng_file_open(NULL, MODEL, ENG_LOAD_MMAP, &file, err, sizeof(err)) != ENG_OK ||
	    eng_tok_new_from_gguf(eng_file_gguf(file), &tok, err, sizeof(err)) != ENG_OK) {
		print_error("setup: %s\n", err);
		return -1;
	}
	struct eng_model_opts mo = {0};
	if (eng_model_new(eng_file_gguf(file), &mo, &model, err, sizeof(err)) != ENG_OK) {
		print_error("setup: %s\n", err);
		return -1;
	}
	eng_one_open(&alone, eng_file_gguf(file), NULL, N_CTX, 1, 0);
	for (int i = 0; i < N_PROMPTS; i++)
		make_ref(&refs[i], prompt_text[i]);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char err[256];
	eng_one_close(&alone);
	eng_model_free(model);
	eng_tok_free(tok);
	return eng_file_close(file, err, sizeof(err)) == ENG_OK ? 0 : -1;
}

/* ---- a consumer ------------------------------------------------------------ */

/* All sinks of a test share one wake-up; notify only counts. */
static pthread_mutex_t wake_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cv = PTHREAD_COND_INITIALIZER;
static unsigned long wakes;

struct sink {
	struct eng_req *r;
	int32_t ids[MAX_GEN + 8];
	int n;
	char text[16384];
	size_t tlen;
	struct eng_event final;
	char final_msg[ENG_SCHED_ERR_MAX];
	atomic_int done; /* set last (release) by whichever thread consumes */
	/* consume inside the notify callback (the scheduler thread), and
	 * cancel once <cancel_at> tokens have arrived (0: never) */
	int in_notify, cancel_at, cancelled_at;
	_Atomic(struct eng_req *) req; /* for the callback: set after submit */
	atomic_int notifies;
};

/* Takes whatever is ready; returns 1 once the final event is in. */
static int sink_drain(struct sink *s, struct eng_req *r)
{
	const struct eng_event *ev;
	while (!s->done && (ev = eng_req_peek(r))) {
		if (ev->finish == ENG_FINISH_NONE) {
			assert_true(s->n < MAX_GEN + 8);
			s->ids[s->n++] = ev->token;
		} else {
			s->final = *ev;
			snprintf(s->final_msg, sizeof(s->final_msg), "%s", ev->message);
		}
		int fin = ev->finish != ENG_FINISH_NONE;
		assert_true(s->tlen + ev->text_len < sizeof(s->text));
		memcpy(s->text + s->tlen, ev->text, ev->text_len);
		s->tlen += ev->text_len;
		s->text[s->tlen] = 0;
		eng_req_consume(r);
		if (fin)
			atomic_store(&s->done, 1);
	}
	return s->done;
}

static void sink_notify(void *arg)
{
	struct sink *s = arg;
	atomic_fetch_add(&s->notifies, 1);
	if (s->in_notify) {
		struct eng_req *r = atomic_load(&s->req);
		if (r) {
			sink_drain(s, r);
			if (s->cancel_at && !s->cancelled_at && s->n >= s->cancel_at) {
				s->cancelled_at = s->n;
				eng_req_cancel(r);
			}
		}
	}
	pthread_mutex_lock(&wake_mu);
	wakes++;
	pthread_cond_broadcast(&wake_cv);
	pthread_mutex_unlock(&wake_mu);
}

static unsigned long wake_count(void)
{
	pthread_mutex_lock(&wake_mu);
	unsigned long w = wakes;
	pthread_mutex_unlock(&wake_mu);
	return w;
}

/* Waits for the next notify after <seen>; fails the test at the deadline
 * (a deadlock), never asserts on time otherwise. */
static void wait_wake(unsigned long seen, const char *what)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += DEADLINE_S;
	pthread_mutex_lock(&wake_mu);
	while (wakes == seen) {
		if (pthread_cond_timedwait(&wake_cv, &wake_mu, &dl) != 0) {
			pthread_mutex_unlock(&wake_mu);
			fail_msg("no progress in %d s waiting for %s", DEADLINE_S, what);
		}
	}
	pthread_mutex_unlock(&wake_mu);
}

/* Drains the sinks in <read> (NULL: all) until each of them is done. */
static void drain_until_done(struct sink **sk, int n, const int *read)
{
	for (;;) {
		unsigned long seen = wake_count();
		int all = 1;
		for (int i = 0; i < n; i++) {
			if (read && !read[i])
				continue;
			if (!sk[i]->in_notify)
				sink_drain(sk[i], sk[i]->r);
			all &= sk[i]->done;
		}
		if (all)
			return;
		wait_wake(seen, "final events");
	}
}

/* Polls the scheduler's stats until <pred> holds (bounded, as above). */
static void wait_stats(struct eng_sched *s, int (*pred)(const struct eng_sched_stats *, void *),
		       void *arg, const char *what)
{
	struct eng_sched_stats st;
	for (int i = 0; i < DEADLINE_S * 1000; i++) {
		eng_sched_stats(s, &st);
		if (pred(&st, arg))
			return;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	fail_msg("scheduler never reached: %s", what);
}

static struct eng_sched *sched_open(const struct eng_sched_opts *o0)
{
	struct eng_sched_opts o = *o0;
	char err[256] = "";
	struct eng_sched *s = NULL;
	if (!o.tok)
		o.tok = tok;
	if (!o.n_ctx)
		o.n_ctx = N_CTX;
	if (eng_sched_new(model, &o, &s, err, sizeof(err)) != ENG_OK)
		fail_msg("eng_sched_new: %s", err);
	return s;
}

static struct eng_req *submit(struct eng_sched *s, struct sink *sk, const struct ref *rf,
			      int max_tokens, int max_events)
{
	char err[256] = "";
	struct eng_req_opts o = {
		.prompt = rf->prompt, .n_prompt = rf->n_prompt,
		.sampling = eng_sampler_defaults(), .max_tokens = max_tokens,
		.max_events = max_events, .notify = sink_notify, .notify_arg = sk,
	};
	struct eng_req *r = NULL;
	if (eng_sched_submit(s, &o, &r, err, sizeof(err)) != ENG_OK)
		fail_msg("submit: %s", err);
	sk->r = r;
	atomic_store(&sk->req, r);
	return r;
}

/* The text <ids> decode to, as a stream. */
static size_t decode(const int32_t *ids, int n, char *out, size_t cap)
{
	struct eng_tok_decoder dec;
	eng_tok_decoder_init(&dec, tok, 0);
	size_t mx = eng_tok_decoder_out_max(tok), len = 0;
	char *piece = malloc(mx);
	for (int i = 0; i < n; i++) {
		int w = eng_tok_decoder_push(&dec, ids[i], piece, mx);
		assert_true(w >= 0 && len + (size_t)w < cap);
		/* if (w > 0): cmocka's _fail is not declared noreturn, so GCC -O3
		 * sees a negative w reach memcpy after the assert (-Wstringop-overflow) */
		if (w > 0)
			memcpy(out + len, piece, (size_t)w);
		len += (size_t)w;
	}
	int w = eng_tok_decoder_flush(&dec, piece, mx);
	assert_true(w >= 0 && len + (size_t)w < cap);
	if (w > 0)
		memcpy(out + len, piece, (size_t)w);
	len += (size_t)w;
	out[len] = 0;
	free(piece);
	return len;
}

/* <sk> holds exactly <rf>'s lone greedy output for <max_tokens> tokens
 * (ids compared up to the lone run's first near-tie). */
static void expect_same_as_alone(const struct sink *sk, const struct ref *rf, int max_tokens,
				 const char *what)
{
	assert_true(sk->done);
	if (sk->final.finish != ENG_FINISH_LENGTH)
		fail_msg("%s: finish %s (%s)", what, eng_finish_name(sk->final.finish),
			 sk->final_msg);
	assert_int_equal(sk->n, max_tokens);
	assert_int_equal(sk->final.usage.completion_tokens, max_tokens);
	assert_int_equal(sk->final.usage.prompt_tokens, rf->n_prompt);
	assert_int_equal(sk->final.usage.tokens_after_cancel, 0);
	int sure = rf->n_sure < max_tokens ? rf->n_sure : max_tokens;
	for (int g = 0; g < sure; g++)
		if (sk->ids[g] != rf->ids[g])
			fail_msg("%s: token %d: %d, alone %d", what, g, sk->ids[g], rf->ids[g]);
	static char want[16384];
	decode(sk->ids, sk->n, want, sizeof(want));
	if (strcmp(want, sk->text) != 0)
		fail_msg("%s: event text '%s', the ids decode to '%s'", what, sk->text, want);
}

/* ---- tests ----------------------------------------------------------------- */

/* N concurrent requests, N (12) larger than the batch (4), prefill in
 * chunks of a 16-token step budget shared with decodes: each gives exactly
 * its lone greedy output, and the four reference prompts llama.cpp's ids. */
static void test_concurrent_requests_equal_single(void **state)
{
	(void)state;
	struct eng_sched_opts o = {.n_threads = 2, .max_seqs = 4, .max_step_tokens = 16};
	struct eng_sched *s = sched_open(&o);
	static struct sink sk[N_PROMPTS];
	struct sink *all[N_PROMPTS];
	int max_tok[N_PROMPTS];
	memset(sk, 0, sizeof(sk));
	for (int i = 0; i < N_PROMPTS; i++) {
		all[i] = &sk[i];
		max_tok[i] = 20 + (i * 7) % 45;
		submit(s, &sk[i], &refs[i], max_tok[i], i % 3 ? 0 : 3);
	}
	drain_until_done(all, N_PROMPTS, NULL);
	for (int i = 0; i < N_PROMPTS; i++)
		expect_same_as_alone(&sk[i], &refs[i], max_tok[i], prompt_text[i]);
	struct eng_sched_stats st;
	eng_sched_stats(s, &st);
	assert_int_equal((int)st.requests_done, N_PROMPTS);
	assert_true(st.steps > 0 && st.tokens_decode > 0);
	assert_int_equal(st.running, 0);
	assert_int_equal(st.kv_free, st.kv_cells);
	eng_sched_free(s);
	for (int i = 0; i < N_PROMPTS; i++)
		eng_req_free(sk[i].r);
}

/* The real loop: greedy "One day, a big bear" repeats a sentence (as
 * llama.cpp does); through the scheduler, beside other requests, the
 * continuation is the lone one token for token. */
static void test_stories_bear_repeats(void **state)
{
	(void)state;
	struct eng_sched_opts o = {.n_threads = 1, .max_seqs = 3};
	struct eng_sched *s = sched_open(&o);
	static struct sink sk[3];
	memset(sk, 0, sizeof(sk));
	struct sink *all[3] = {&sk[0], &sk[1], &sk[2]};
	submit(s, &sk[0], &refs[4], MAX_GEN, 0);
	submit(s, &sk[1], &refs[0], 100, 0);
	submit(s, &sk[2], &refs[7], 150, 0);
	drain_until_done(all, 3, NULL);
	expect_same_as_alone(&sk[0], &refs[4], MAX_GEN, "bear");
	expect_same_as_alone(&sk[1], &refs[0], 100, prompt_text[0]);
	expect_same_as_alone(&sk[2], &refs[7], 150, prompt_text[7]);
	/* the tail is one sentence over and over */
	const char *rep = " It was not a ball.";
	size_t rl = strlen(rep), n = 0;
	for (const char *p = strstr(sk[0].text, rep); p; p = strstr(p + rl, rep))
		n++;
	print_message("bear: '%s' %zu times in %d tokens\n", rep, n, sk[0].n);
	assert_true(n >= 10);
	eng_sched_free(s);
	for (int i = 0; i < 3; i++)
		eng_req_free(sk[i].r);
}

static int is_paused(const struct eng_sched_stats *st, void *arg)
{
	(void)arg;
	return st->paused >= 1 && st->running == 1 && st->queued == 0;
}

/* A consumer that stops reading (a 2-event queue never read) does not stop
 * the others: they finish with their full output while that sequence is
 * paused; once read again it finishes with its own full output too. */
static void test_slow_consumer_does_not_block_others(void **state)
{
	(void)state;
	struct eng_sched_opts o = {.n_threads = 2, .max_seqs = 4};
	struct eng_sched *s = sched_open(&o);
	static struct sink sk[4];
	memset(sk, 0, sizeof(sk));
	struct sink *all[4] = {&sk[0], &sk[1], &sk[2], &sk[3]};
	submit(s, &sk[0], &refs[1], 60, 2); /* the slow one */
	for (int i = 1; i < 4; i++)
		submit(s, &sk[i], &refs[i + 1], 60, 0);
	const int others[4] = {0, 1, 1, 1};
	drain_until_done(all, 4, others);
	for (int i = 1; i < 4; i++)
		expect_same_as_alone(&sk[i], &refs[i + 1], 60, prompt_text[i + 1]);
	wait_stats(s, is_paused, NULL, "the unread sequence paused, the others done");
	/* nothing was lost: its queue holds exactly its first two tokens */
	const struct eng_event *ev = eng_req_peek(sk[0].r);
	assert_non_null(ev);
	assert_int_equal(ev->finish, ENG_FINISH_NONE);
	assert_int_equal(ev->token, refs[1].ids[0]);
	drain_until_done(all, 1, NULL);
	expect_same_as_alone(&sk[0], &refs[1], 60, "slow consumer");
	eng_sched_free(s);
	for (int i = 0; i < 4; i++)
		eng_req_free(sk[i].r);
}

/* Cancel between steps (from the notify callback, after the 5th token):
 * nothing more is emitted, the final event says cancelled, and no token
 * was generated after the flag: tokens_after_cancel 0. */
static void test_cancel_between_steps(void **state)
{
	(void)state;
	struct eng_sched_opts o = {.n_threads = 1, .max_seqs = 2};
	struct eng_sched *s = sched_open(&o);
	static struct sink sk[2];
	memset(sk, 0, sizeof(sk));
	struct sink *all[2] = {&sk[0], &sk[1]};
	sk[0].in_notify = 1;
	sk[0].cancel_at = 5;
	submit(s, &sk[0], &refs[0], 200, 0);
	submit(s, &sk[1], &refs[2], 40, 0);
	drain_until_done(all, 2, NULL);
	assert_int_equal(sk[0].final.finish, ENG_FINISH_CANCELLED);
	assert_true(sk[0].cancelled_at >= 5);
	assert_int_equal(sk[0].n, sk[0].cancelled_at); /* no token after the flag */
	assert_int_equal(sk[0].final.usage.tokens_after_cancel, 0);
	assert_int_equal(sk[0].final.usage.completion_tokens, sk[0].n);
	for (int g = 0; g < sk[0].n; g++)
		assert_int_equal(sk[0].ids[g], refs[0].ids[g]);
	expect_same_as_alone(&sk[1], &refs[2], 40, "beside a cancelled one");
	eng_sched_free(s);
	eng_req_free(sk[0].r);
	eng_req_free(sk[1].r);
}

/* Cancel during a step: the health hook runs after the forward pass and
 * before the step's tokens are sampled and emitted, and sets the flag of a
 * decoding sequence there. The token of that step is computed but not
 * emitted (tokens_after_cancel 1); the other sequence goes on. */
struct mid_cancel {
	atomic_int calls;
	int at;
	struct sink *victim;
	int emitted_then;
};

static int cancel_in_step(void *arg, char *msg, size_t len)
{
	struct mid_cancel *mc = arg;
	(void)msg;
	(void)len;
	if (atomic_fetch_add(&mc->calls, 1) + 1 == mc->at) {
		struct eng_req *r;
		/* the submitting thread stores it right after submit returns */
		while (!(r = atomic_load(&mc->victim->req))) {
			struct timespec ts = {0, 100000};
			nanosleep(&ts, NULL);
		}
		mc->emitted_then = atomic_load(&mc->victim->notifies);
		eng_req_cancel(r);
	}
	return 0;
}

static void test_cancel_during_step(void **state)
{
	(void)state;
	static struct sink sk[2];
	memset(sk, 0, sizeof(sk));
	static struct mid_cancel mc;
	memset(&mc, 0, sizeof(mc));
	mc.at = 8;
	mc.victim = &sk[0];
	struct eng_sched_opts o = {.n_threads = 1, .max_seqs = 2, .health = cancel_in_step,
				   .health_arg = &mc};
	struct eng_sched *s = sched_open(&o);
	struct sink *all[2] = {&sk[0], &sk[1]};
	/* consumed in the callback, so the count of token events is exact */
	sk[0].in_notify = 1;
	submit(s, &sk[0], &refs[3], 200, 0);
	submit(s, &sk[1], &refs[5], 30, 0);
	drain_until_done(all, 2, NULL);
	assert_int_equal(sk[0].final.finish, ENG_FINISH_CANCELLED);
	assert_int_equal(sk[0].final.usage.tokens_after_cancel, 1);
	/* one token per notify before the flag; none after it */
	assert_int_equal(sk[0].n, mc.emitted_then);
	assert_int_equal(sk[0].final.usage.completion_tokens, sk[0].n);
	for (int g = 0; g < sk[0].n; g++)
		assert_int_equal(sk[0].ids[g], refs[3].ids[g]);
	expect_same_as_alone(&sk[1], &refs[5], 30, "beside one cancelled mid-step");
	struct eng_sched_stats st;
	eng_sched_stats(s, &st);
	assert_int_equal((int)st.cancelled, 1);
	assert_int_equal((int)st.tokens_after_cancel, 1);
	eng_sched_free(s);
	eng_req_free(sk[0].r);
	eng_req_free(sk[1].r);
}

/* Cancel from the consumer's own thread at arbitrary moments (after k
 * tokens received, while the scheduler runs): every sequence ends
 * cancelled with tokens_after_cancel <= 1, and after the cancel call at
 * most the events already queued (<= its queue of 4) plus one arrive. */
static void test_cancel_from_consumer_thread(void **state)
{
	(void)state;
	struct eng_sched_opts o = {.n_threads = 2, .max_seqs = 4};
	struct eng_sched *s = sched_open(&o);
	enum { N = 8 };
	static struct sink sk[N];
	memset(sk, 0, sizeof(sk));
	int at[N], after[N];
	for (int i = 0; i < N; i++) {
		at[i] = 1 + 3 * i;
		after[i] = -1;
		submit(s, &sk[i], &refs[i], 300, 4);
	}
	for (;;) {
		unsigned long seen = wake_count();
		int done = 1;
		for (int i = 0; i < N; i++) {
			sink_drain(&sk[i], sk[i].r);
			if (after[i] < 0 && sk[i].n >= at[i]) {
				after[i] = sk[i].n;
				eng_req_cancel(sk[i].r);
			}
			done &= sk[i].done;
		}
		if (done)
			break;
		wait_wake(seen, "cancelled requests");
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(sk[i].final.finish, ENG_FINISH_CANCELLED);
		assert_true(sk[i].final.usage.tokens_after_cancel <= 1);
		assert_true(sk[i].n - after[i] <= 4 + 1);
		assert_true(sk[i].n < 300);
		for (int g = 0; g < sk[i].n && g < refs[i].n_sure; g++)
			assert_int_equal(sk[i].ids[g], refs[i].ids[g]);
	}
	eng_sched_free(s);
	for (int i = 0; i < N; i++)
		eng_req_free(sk[i].r);
}

static int one_running_two_queued(const struct eng_sched_stats *st, void *arg)
{
	(void)arg;
	return st->running == 1 && st->queued == 2 && st->paused == 1;
}

static int one_running_one_queued(const struct eng_sched_stats *st, void *arg)
{
	(void)arg;
	return st->running == 1 && st->queued == 1;
}

/* Admission waits instead of failing: a KV pool of 64 cells holds one
 * footprint of 45 (a 5-token prompt + 40), so of three requests one runs
 * (paused: its 2-event queue is not read) and two wait. Cancelling a
 * waiting one gives it its final event with no tokens; reading the running
 * one lets the last one in; both give their full lone output. */
static void test_admission_waits_for_kv(void **state)
{
	(void)state;
	struct eng_sched_opts o = {.n_threads = 1, .max_seqs = 4, .n_ctx = 64, .kv_cells = 64};
	struct eng_sched *s = sched_open(&o);
	static struct sink sk[3];
	memset(sk, 0, sizeof(sk));
	struct sink *all[3] = {&sk[0], &sk[1], &sk[2]};
	assert_int_equal(refs[0].n_prompt, 5);
	submit(s, &sk[0], &refs[0], 40, 2);
	submit(s, &sk[1], &refs[0], 40, 2);
	submit(s, &sk[2], &refs[0], 40, 2);
	wait_stats(s, one_running_two_queued, NULL, "one running (paused), two queued");
	struct eng_sched_stats st;
	eng_sched_stats(s, &st);
	assert_int_equal(st.kv_cells, 64);
	assert_int_equal(st.kv_free, 16);
	eng_req_cancel(sk[2].r);
	wait_stats(s, one_running_one_queued, NULL, "the cancelled waiting request gone");
	const int third[3] = {0, 0, 1};
	drain_until_done(all, 3, third);
	assert_int_equal(sk[2].final.finish, ENG_FINISH_CANCELLED);
	assert_int_equal(sk[2].n, 0);
	assert_int_equal(sk[2].final.usage.completion_tokens, 0);
	assert_int_equal(sk[2].final.usage.tokens_after_cancel, 0);
	drain_until_done(all, 2, NULL);
	expect_same_as_alone(&sk[0], &refs[0], 40, "first");
	expect_same_as_alone(&sk[1], &refs[0], 40, "admitted after the first");
	eng_sched_free(s);
	for (int i = 0; i < 3; i++)
		eng_req_free(sk[i].r);
}

/* A paused sequence (queue full, nobody reading) that is cancelled ends at
 * once, with what it had queued and nothing more. */
static void test_cancel_paused(void **state)
{
	(void)state;
	struct eng_sched_opts o = {.n_threads = 1, .max_seqs = 2};
	struct eng_sched *s = sched_open(&o);
	static struct sink sk[1];
	memset(sk, 0, sizeof(sk));
	struct sink *all[1] = {&sk[0]};
	submit(s, &sk[0], &refs[6], 100, 3);
	wait_stats(s, is_paused, NULL, "the unread sequence paused");
	eng_req_cancel(sk[0].r);
	drain_until_done(all, 1, NULL);
	assert_int_equal(sk[0].final.finish, ENG_FINISH_CANCELLED);
	assert_int_equal(sk[0].n, 3);
	assert_int_equal(sk[0].final.usage.tokens_after_cancel, 0);
	for (int g = 0; g < 3; g++)
		assert_int_equal(sk[0].ids[g], refs[6].ids[g]);
	eng_sched_free(s);
	eng_req_free(sk[0].r);
}

static void test_submit_errors_name_the_field(void **state)
{
	(void)state;
	struct eng_sched_opts o = {.n_threads = 1, .max_seqs = 1, .n_ctx = 32, .kv_cells = 32,
				   .max_queue = 1};
	struct eng_sched *s = sched_open(&o);
	char err[256];
	struct eng_req *r = NULL;
	int32_t p[40] = {1, 2, 3};
	struct eng_req_opts ro = {.prompt = p, .n_prompt = 3, .sampling = eng_sampler_defaults(),
				  .max_tokens = 5};
	struct eng_req_opts b = ro;
	b.n_prompt = 0;
	assert_int_equal(eng_sched_submit(s, &b, &r, err, sizeof(err)), ENG_ERR_ARG);
	assert_non_null(strstr(err, "prompt"));
	assert_null(r);
	b = ro;
	p[1] = 512;
	assert_int_equal(eng_sched_submit(s, &b, &r, err, sizeof(err)), ENG_ERR_ARG);
	assert_non_null(strstr(err, "512"));
	p[1] = 2;
	b.n_prompt = 32;
	assert_int_equal(eng_sched_submit(s, &b, &r, err, sizeof(err)), ENG_ERR_RANGE);
	assert_non_null(strstr(err, "context of 32"));
	b = ro;
	b.max_tokens = 0;
	assert_int_equal(eng_sched_submit(s, &b, &r, err, sizeof(err)), ENG_ERR_ARG);
	assert_non_null(strstr(err, "max_tokens"));
	b = ro;
	b.sampling.temp = NAN;
	assert_int_equal(eng_sched_submit(s, &b, &r, err, sizeof(err)), ENG_ERR_ARG);
	assert_non_null(strstr(err, "sampling"));
	b = ro;
	b.max_events = ENG_SCHED_MAX_EVENTS + 1;
	assert_int_equal(eng_sched_submit(s, &b, &r, err, sizeof(err)), ENG_ERR_ARG);
	assert_non_null(strstr(err, "max_events"));
	/* a full queue: one running (its 1-event queue unread), one waiting */
	static struct sink sk[2];
	memset(sk, 0, sizeof(sk));
	b = ro;
	b.max_events = 1;
	b.max_tokens = 20; /* footprint 23 of 32 cells: one at a time */
	b.notify = sink_notify;
	b.notify_arg = &sk[0];
	assert_int_equal(eng_sched_submit(s, &b, &sk[0].r, err, sizeof(err)), ENG_OK);
	wait_stats(s, is_paused, NULL, "the first request paused");
	b.notify_arg = &sk[1];
	assert_int_equal(eng_sched_submit(s, &b, &sk[1].r, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_sched_submit(s, &b, &r, err, sizeof(err)), ENG_ERR_LIMIT);
	assert_non_null(strstr(err, "queue is full"));
	assert_null(r);
	/* shutdown with one paused and one queued: both get a final event */
	eng_sched_free(s);
	for (int i = 0; i < 2; i++) {
		struct sink *one[1] = {&sk[i]};
		drain_until_done(one, 1, NULL);
		assert_int_equal(sk[i].final.finish, ENG_FINISH_CANCELLED);
		eng_req_free(sk[i].r);
	}
	assert_int_equal(sk[0].n, 1);
	assert_int_equal(sk[1].n, 0);
	eng_sched_free(NULL);
	eng_req_free(NULL);
}

/* eng_req_free before the final event cancels the request, and no notify
 * is called once it has returned; the scheduler lets go of it alone. */
static int one_done(const struct eng_sched_stats *st, void *arg)
{
	(void)arg;
	return st->requests_done >= 1 && st->running == 0;
}

static void test_free_before_final(void **state)
{
	(void)state;
	struct eng_sched_opts o = {.n_threads = 1, .max_seqs = 2};
	struct eng_sched *s = sched_open(&o);
	static struct sink sk[1];
	memset(sk, 0, sizeof(sk));
	submit(s, &sk[0], &refs[8], 300, 0);
	while (sk[0].n < 3) {
		unsigned long seen = wake_count();
		sink_drain(&sk[0], sk[0].r);
		if (sk[0].n < 3)
			wait_wake(seen, "three tokens");
	}
	eng_req_free(sk[0].r);
	int after = atomic_load(&sk[0].notifies);
	wait_stats(s, one_done, NULL, "the freed request finished");
	assert_int_equal(atomic_load(&sk[0].notifies), after);
	struct eng_sched_stats st;
	eng_sched_stats(s, &st);
	assert_int_equal((int)st.cancelled, 1);
	eng_sched_free(s);
}

/* An end-of-generation token ends a sequence with finish "eos": a
 * tokenizer whose EOS is the token the model greedily writes 6th. The EOS
 * itself is no token event but counts as generated. */
static void test_eos_finishes(void **state)
{
	(void)state;
	const struct ref *rf = &refs[0];
	int k = 5;
	while (k < MAX_GEN - 1) {
		int seen = 0;
		for (int g = 0; g < k; g++)
			seen |= rf->ids[g] == rf->ids[k];
		if (!seen && rf->ids[k] > 2)
			break;
		k++;
	}
	int32_t eos = rf->ids[k];
	static char names[512][8];
	const char *texts[512];
	for (int i = 0; i < 512; i++) {
		snprintf(names[i], sizeof(names[i]), "t%d", i);
		texts[i] = names[i];
	}
	struct eng_tok_desc d = {
		.kind = ENG_TOK_SPM, .n_tokens = 512, .tokens = texts, .bos = 1, .eos = eos,
		.unk = 0, .pad = -1, .eot = -1, .eom = -1, .add_bos = 1, .add_eos = 0,
		.add_space_prefix = 0,
	};
	struct eng_tok *t2 = NULL;
	char err[256] = "";
	if (eng_tok_new(&d, &t2, err, sizeof(err)) != ENG_OK)
		fail_msg("tokenizer: %s", err);
	struct eng_sched_opts o = {.n_threads = 1, .max_seqs = 2, .tok = t2};
	struct eng_sched *s = sched_open(&o);
	static struct sink sk[1];
	memset(sk, 0, sizeof(sk));
	struct sink *all[1] = {&sk[0]};
	submit(s, &sk[0], rf, 100, 0);
	drain_until_done(all, 1, NULL);
	assert_int_equal(sk[0].final.finish, ENG_FINISH_EOS);
	assert_int_equal(sk[0].n, k);
	assert_int_equal(sk[0].final.usage.completion_tokens, k + 1);
	for (int g = 0; g < k; g++)
		assert_int_equal(sk[0].ids[g], rf->ids[g]);
	/* the pieces are this tokenizer's texts */
	assert_non_null(strstr(sk[0].text, names[rf->ids[0]]));
	eng_sched_free(s);
	eng_req_free(sk[0].r);
	eng_tok_free(t2);
}

/* A failing health check (e.g. the model file damaged during a step)
 * throws the step away and fails the running requests with its message;
 * a request submitted later is served. */
struct health_once {
	atomic_int calls;
};

static int fail_third(void *arg, char *msg, size_t len)
{
	struct health_once *h = arg;
	if (atomic_fetch_add(&h->calls, 1) == 2) {
		snprintf(msg, len, "model file damaged");
		return -1;
	}
	return 0;
}

static void test_health_failure_fails_running(void **state)
{
	(void)state;
	static struct health_once h;
	atomic_store(&h.calls, 0);
	struct eng_sched_opts o = {.n_threads = 1, .max_seqs = 2, .health = fail_third,
				   .health_arg = &h};
	struct eng_sched *s = sched_open(&o);
	static struct sink sk[3];
	memset(sk, 0, sizeof(sk));
	struct sink *all[3] = {&sk[0], &sk[1], &sk[2]};
	submit(s, &sk[0], &refs[0], 50, 0);
	submit(s, &sk[1], &refs[1], 50, 0);
	drain_until_done(all, 2, NULL);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sk[i].final.finish, ENG_FINISH_ERROR);
		assert_string_equal(sk[i].final_msg, "model file damaged");
		assert_true(sk[i].n < 50);
	}
	submit(s, &sk[2], &refs[2], 20, 0);
	drain_until_done(&all[2], 1, NULL);
	expect_same_as_alone(&sk[2], &refs[2], 20, "after a failed health check");
	eng_sched_free(s);
	for (int i = 0; i < 3; i++)
		eng_req_free(sk[i].r);
}

/* max_tokens beyond the context: the sequence ends "length" when its
 * reserved span (n_ctx) is full. */
static void test_length_at_context(void **state)
{
	(void)state;
	struct eng_sched_opts o = {.n_threads = 1, .max_seqs = 2, .n_ctx = 40};
	struct eng_sched *s = sched_open(&o);
	static struct sink sk[1];
	memset(sk, 0, sizeof(sk));
	struct sink *all[1] = {&sk[0]};
	submit(s, &sk[0], &refs[0], 1000, 0);
	drain_until_done(all, 1, NULL);
	assert_int_equal(sk[0].final.finish, ENG_FINISH_LENGTH);
	/* 5 prompt positions + 35 fed tokens fill 40; the 36th is sampled from
	 * the last position's logits */
	assert_int_equal(sk[0].n, 40 - refs[0].n_prompt + 1);
	for (int g = 0; g < sk[0].n; g++)
		assert_int_equal(sk[0].ids[g], refs[0].ids[g]);
	eng_sched_free(s);
	eng_req_free(sk[0].r);
}

/* The default KV pool holds max_seqs full-context sequences even when
 * n_ctx is not a multiple of the pool's 16-cell grain (it was max_seqs *
 * n_ctx cells: 3 x 40 = 120 < 3 spans of 48, so the third waited). The
 * scheduler is held after its first step (health hook) until all three
 * are queued, so the last two are admitted in one go; unread 1-event
 * queues keep them all in. */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int open;
};

static int hold_until_open(void *arg, char *msg, size_t len)
{
	struct gate *g = arg;
	(void)msg;
	(void)len;
	pthread_mutex_lock(&g->mu);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
	return 0;
}

static int settled_two_or_more(const struct eng_sched_stats *st, void *arg)
{
	(void)arg;
	return st->running >= 2 && st->running + st->queued == 3 && st->paused == st->running;
}

static void test_default_pool_holds_max_seqs(void **state)
{
	(void)state;
	static struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
	struct eng_sched_opts o = {.n_threads = 1, .max_seqs = 3, .n_ctx = 40,
				   .health = hold_until_open, .health_arg = &g};
	struct eng_sched *s = sched_open(&o);
	static struct sink sk[3];
	memset(sk, 0, sizeof(sk));
	for (int i = 0; i < 3; i++)
		submit(s, &sk[i], &refs[i], 1000, 1);
	pthread_mutex_lock(&g.mu);
	g.open = 1;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	wait_stats(s, settled_two_or_more, NULL, "the requests admitted and paused");
	struct eng_sched_stats st;
	eng_sched_stats(s, &st);
	assert_int_equal(st.queued, 0);
	assert_int_equal(st.running, 3);
	assert_int_equal(st.kv_cells, 3 * 48);
	eng_sched_free(s);
	for (int i = 0; i < 3; i++)
		eng_req_free(sk[i].r);
}

/* A model file truncated on disk while the scheduler serves from it
 * (issue 11 defect 10, engine/load.h): the step that read the vanished
 * pages is thrown away, the running request fails with the loader's
 * message instead of emitting tokens computed on zeros, and later
 * submissions are refused with the same message. */
static void test_model_file_truncated_while_serving(void **state)
{
	(void)state;
	char path[] = "/tmp/lw_test_sched_XXXXXX", err[512] = "";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *in = fopen(MODEL, "rb");
	assert_non_null(in);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(write(fd, buf, n), (ssize_t)n);
	fclose(in);
	close(fd);
	struct eng_file *f = NULL;
	struct eng_model *m = NULL;
	struct eng_model_opts mo = {0};
	assert_int_equal(eng_file_open(NULL, path, ENG_LOAD_MMAP, &f, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_model_new(eng_file_gguf(f), &mo, &m, err, sizeof(err)), ENG_OK);
	struct eng_sched_opts o = {.n_threads = 1, .max_seqs = 2, .n_ctx = N_CTX, .tok = tok,
				   .file = f};
	struct eng_sched *s = NULL;
	assert_int_equal(eng_sched_new(m, &o, &s, err, sizeof(err)), ENG_OK);
	static struct sink sk[2];
	memset(sk, 0, sizeof(sk));
	struct sink *all[1] = {&sk[0]};
	submit(s, &sk[0], &refs[0], 100, 2); /* pauses after 2 tokens */
	wait_stats(s, is_paused, NULL, "the request paused");
	assert_int_equal(truncate(path, 4096), 0);
	drain_until_done(all, 1, NULL); /* reading resumes it: the next step faults */
	assert_int_equal(sk[0].final.finish, ENG_FINISH_ERROR);
	assert_non_null(strstr(sk[0].final_msg, "changed on disk"));
	assert_int_equal(sk[0].n, 2);
	for (int g = 0; g < 2; g++)
		assert_int_equal(sk[0].ids[g], refs[0].ids[g]);
	struct eng_req_opts ro = {.prompt = refs[1].prompt, .n_prompt = refs[1].n_prompt,
				  .sampling = eng_sampler_defaults(), .max_tokens = 5};
	struct eng_req *r = NULL;
	assert_int_equal(eng_sched_submit(s, &ro, &r, err, sizeof(err)), ENG_ERR_CHANGED);
	assert_non_null(strstr(err, "changed on disk"));
	assert_null(r);
	eng_sched_free(s);
	eng_req_free(sk[0].r);
	eng_model_free(m);
	assert_int_equal(eng_file_close(f, err, sizeof(err)), ENG_OK);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_requests_equal_single),
		cmocka_unit_test(test_stories_bear_repeats),
		cmocka_unit_test(test_slow_consumer_does_not_block_others),
		cmocka_unit_test(test_cancel_between_steps),
		cmocka_unit_test(test_cancel_during_step),
		cmocka_unit_test(test_cancel_from_consumer_thread),
		cmocka_unit_test(test_admission_waits_for_kv),
		cmocka_unit_test(test_cancel_paused),
		cmocka_unit_test(test_submit_errors_name_the_field),
		cmocka_unit_test(test_free_before_final),
		cmocka_unit_test(test_eos_finishes),
		cmocka_unit_test(test_health_failure_fails_running),
		cmocka_unit_test(test_length_at_context),
		cmocka_unit_test(test_default_pool_holds_max_seqs),
		cmocka_unit_test(test_model_file_truncated_while_serving),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
