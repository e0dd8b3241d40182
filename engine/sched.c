#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/forward.h"
#include "engine/kv.h"
#include "engine/load.h"
#include "engine/model.h"
#include "engine/sched.h"
#include "engine/tokenizer.h"

enum req_state {
	RS_QUEUED = 0, /* in the waiting list */
	RS_PREFILL,    /* admitted, prompt not all fed */
	RS_DECODE,     /* admitted, <next> to be fed */
	RS_DONE,       /* final event published */
	RS_COUNT
};

struct eng_req {
	/* fixed at submit */
	int32_t *prompt;
	int n_prompt, max_tokens;
	void (*notify)(void *arg);
	void *notify_arg;

	atomic_bool cancel;
	atomic_int refs;             /* the owner's and the scheduler's */
	pthread_mutex_t mu;          /* guards <sched>: kicks from other threads */
	struct eng_sched *sched;     /* NULL once the final event is out */
	pthread_mutex_t notify_mu;   /* held while notify runs; guards <detached> */
	int detached;

	/* the output queue: single producer (scheduler), single consumer */
	int cap;
	size_t text_cap;
	struct eng_event *ev;        /* (cap) */
	char *text;                  /* (cap, text_cap) */
	_Atomic unsigned head, tail; /* consumed / produced, counting up */
	atomic_bool paused;          /* the producer skipped it for want of room */
	struct eng_event final;
	char *final_text;            /* (text_cap) */
	char final_msg[ENG_SCHED_ERR_MAX];
	atomic_bool final_ready;
	int final_consumed;          /* consumer only */

	/* scheduler thread only (and submit, before it is queued) */
	enum req_state state;
	struct eng_seq seq;
	int n_fed;                   /* positions in the KV */
	int32_t next;                /* sampled, not yet fed */
	int n_gen, tokens_after_cancel, evented;
	struct eng_sampler *smp;
	struct eng_tok_decoder dec;
	struct eng_req *prev, *link; /* waiting list; <link> also the done list */
};

struct eng_sched {
	const struct eng_model *m;
	const struct eng_tok *tok;
	struct eng_sched_opts o;
	int n_vocab;
	struct eng_kv *kv;
	struct eng_compute *c;
	pthread_t th;
	int th_ok, mu_ok, cv_ok;

	pthread_mutex_t mu;          /* guards what follows, to <running> */
	pthread_cond_t cv;
	int stop;
	uint64_t kicks;
	struct eng_req *wait_head, *wait_tail;
	int n_waiting, n_running_pub, n_paused_pub, kv_free_pub; /* stats, copied */
	struct eng_sched_stats st;

	/* scheduler thread only */
	struct eng_req **running;    /* (max_seqs), in admission order */
	int n_running;
	struct eng_batch_seg *segs;  /* (max_seqs) */
	struct eng_req **seg_req;    /* (max_seqs) */
	float *work;                 /* (n_vocab): logits for the sampler */
	struct eng_req *done;        /* finished since the last notify round */
	char err[256];
};

static void seterr(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t len, const char *fmt, ...)
{
	if (!err || len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

const char *eng_finish_name(enum eng_finish f)
{
	switch (f) {
	case ENG_FINISH_NONE: return "";
	case ENG_FINISH_EOS: return "eos";
	case ENG_FINISH_LENGTH: return "length";
	case ENG_FINISH_CANCELLED: return "cancelled";
	case ENG_FINISH_ERROR: return "error";
	default: return "?";
	}
}

/* ---- requests ------------------------------------------------------------ */

static void req_destroy(struct eng_req *r)
{
	eng_sampler_free(r->smp);
	free(r->prompt);
	free(r->ev);
	free(r->text);
	free(r->final_text);
	pthread_mutex_destroy(&r->mu);
	pthread_mutex_destroy(&r->notify_mu);
	free(r);
}

static void req_unref(struct eng_req *r)
{
	if (atomic_fetch_sub(&r->refs, 1) == 1)
		req_destroy(r);
}

static void sched_kick(struct eng_sched *s)
{
	pthread_mutex_lock(&s->mu);
	s->kicks++;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Wakes the scheduler if it still has <r>. Lock order: r->mu, then s->mu;
 * the scheduler never holds s->mu while it takes r->mu. */
static void req_kick(struct eng_req *r)
{
	pthread_mutex_lock(&r->mu);
	if (r->sched)
		sched_kick(r->sched);
	pthread_mutex_unlock(&r->mu);
}

void eng_req_cancel(struct eng_req *r)
{
	if (!r)
		return;
	atomic_store_explicit(&r->cancel, true, memory_order_release);
	req_kick(r);
}

const atomic_bool *eng_req_cancel_flag(const struct eng_req *r)
{
	return &r->cancel;
}

const struct eng_event *eng_req_peek(struct eng_req *r)
{
	/* final_ready first: once it is seen, every event pushed before it is
	 * visible too, so the final event never overtakes one */
	bool fin = atomic_load_explicit(&r->final_ready, memory_order_acquire);
	unsigned h = atomic_load_explicit(&r->head, memory_order_relaxed);
	unsigned t = atomic_load_explicit(&r->tail, memory_order_acquire);
	if (h != t)
		return &r->ev[h % (unsigned)r->cap];
	if (fin && !r->final_consumed)
		return &r->final;
	return NULL;
}

void eng_req_consume(struct eng_req *r)
{
	unsigned h = atomic_load_explicit(&r->head, memory_order_relaxed);
	unsigned t = atomic_load_explicit(&r->tail, memory_order_acquire);
	if (h != t) {
		/* seq_cst store, then the paused flag: with the producer's
		 * seq_cst store of paused and load of head, one of the two sees
		 * the other, so a paused sequence is never left asleep */
		atomic_store(&r->head, h + 1);
		if (atomic_exchange(&r->paused, false))
			req_kick(r);
	} else if (atomic_load_explicit(&r->final_ready, memory_order_acquire)) {
		r->final_consumed = 1;
	}
}

void eng_req_free(struct eng_req *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->notify_mu);
	r->detached = 1;
	pthread_mutex_unlock(&r->notify_mu);
	eng_req_cancel(r);
	req_unref(r);
}

static int room(struct eng_req *r)
{
	unsigned h = atomic_load(&r->head), t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	return r->cap - (int)(t - h);
}

/* Room for one more event; if there is none, marks <r> paused so the
 * consumer's next eng_req_consume wakes the scheduler. */
static int has_room(struct eng_req *r)
{
	if (room(r) > 0)
		return 1;
	atomic_store(&r->paused, true);
	if (room(r) > 0) {
		atomic_store(&r->paused, false);
		return 1;
	}
	return 0;
}

/* The slot the next event goes to (room checked by the caller); its text
 * buffer holds r->text_cap bytes. */
static struct eng_event *next_slot(struct eng_req *r, char **text)
{
	unsigned i = atomic_load_explicit(&r->tail, memory_order_relaxed) % (unsigned)r->cap;
	*text = r->text + (size_t)i * r->text_cap;
	return &r->ev[i];
}

static void publish(struct eng_req *r)
{
	unsigned t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	r->evented = 1;
}

/* ---- scheduler side -------------------------------------------------------- */

/* Publishes <r>'s final event and lets go of its KV span; the notify and
 * the scheduler's reference are dropped in flush_notify. */
static void finish(struct eng_sched *s, struct eng_req *r, enum eng_finish why, const char *msg)
{
	if (r->state == RS_DONE)
		return;
	eng_kv_release(s->kv, &r->seq);
	int n = 0;
	if (s->tok)
		n = eng_tok_decoder_flush(&r->dec, r->final_text, r->text_cap);
	snprintf(r->final_msg, sizeof(r->final_msg), "%s", msg ? msg : "");
	r->final = (struct eng_event){
		.token = -1, .finish = why, .text = r->final_text, .text_len = n > 0 ? (size_t)n : 0,
		.usage = {.prompt_tokens = r->n_prompt, .completion_tokens = r->n_gen,
			  .tokens_after_cancel = r->tokens_after_cancel},
		.message = r->final_msg,
	};
	r->state = RS_DONE;
	eng_sampler_free(r->smp);
	r->smp = NULL;
	atomic_store_explicit(&r->final_ready, true, memory_order_release);
	pthread_mutex_lock(&r->mu);
	r->sched = NULL;
	pthread_mutex_unlock(&r->mu);
	r->link = s->done;
	s->done = r;
	pthread_mutex_lock(&s->mu);
	s->st.requests_done++;
	if (why == ENG_FINISH_CANCELLED)
		s->st.cancelled++;
	s->st.tokens_after_cancel += (uint64_t)r->tokens_after_cancel;
	pthread_mutex_unlock(&s->mu);
}

static void notify(struct eng_req *r)
{
	pthread_mutex_lock(&r->notify_mu);
	if (!r->detached && r->notify)
		r->notify(r->notify_arg);
	pthread_mutex_unlock(&r->notify_mu);
}

/* One notify per request that got events since the last round; finished
 * requests are then dropped by the scheduler. */
static void flush_notify(struct eng_sched *s)
{
	for (int i = 0; i < s->n_running; i++) {
		struct eng_req *r = s->running[i];
		if (r->evented) {
			r->evented = 0;
			notify(r);
		}
	}
	while (s->done) {
		struct eng_req *r = s->done;
		s->done = r->link;
		r->evented = 0;
		notify(r);
		req_unref(r);
	}
}

/* Drops finished requests from <running>, keeping the admission order. */
static void compact_running(struct eng_sched *s)
{
	int j = 0;
	for (int i = 0; i < s->n_running; i++)
		if (s->running[i]->state != RS_DONE)
			s->running[j++] = s->running[i];
	s->n_running = j;
}

static void wait_unlink(struct eng_sched *s, struct eng_req *r)
{
	if (r->prev)
		r->prev->link = r->link;
	else
		s->wait_head = r->link;
	if (r->link)
		r->link->prev = r->prev;
	else
		s->wait_tail = r->prev;
	r->prev = r->link = NULL;
	s->n_waiting--;
}

static int footprint(const struct eng_sched *s, const struct eng_req *r)
{
	long f = (long)r->n_prompt + r->max_tokens;
	return f < s->o.n_ctx ? (int)f : s->o.n_ctx;
}

/* Under s->mu: takes cancelled requests out of the waiting list (into
 * *<gone>, finished by the caller once the lock is dropped), then admits
 * from its head in order while a sequence slot and a KV span are free. A
 * head that does not fit blocks the ones behind it, so a large request is
 * never starved by smaller ones. */
static void admit_locked(struct eng_sched *s, struct eng_req **gone)
{
	for (struct eng_req *r = s->wait_head, *nx; r; r = nx) {
		nx = r->link;
		if (atomic_load_explicit(&r->cancel, memory_order_acquire) || s->stop) {
			wait_unlink(s, r);
			r->link = *gone;
			*gone = r;
		}
	}
	while (s->wait_head && s->n_running < s->o.max_seqs) {
		struct eng_req *r = s->wait_head;
		if (eng_kv_reserve(s->kv, footprint(s, r), &r->seq) != ENG_OK)
			break;
		wait_unlink(s, r);
		r->state = RS_PREFILL;
		s->running[s->n_running++] = r;
	}
}

/* The token-emit step for <r>, whose next-token logits are <logits>. */
static void emit(struct eng_sched *s, struct eng_req *r, const float *logits)
{
	memcpy(s->work, logits, (size_t)s->n_vocab * sizeof(float));
	int32_t id = eng_sampler_sample(r->smp, s->work);
	/* the flag is read before anything is emitted: set during this step,
	 * it discards the token just computed */
	if (atomic_load_explicit(&r->cancel, memory_order_acquire)) {
		r->tokens_after_cancel++;
		finish(s, r, ENG_FINISH_CANCELLED, NULL);
		return;
	}
	eng_sampler_accept(r->smp, id);
	r->n_gen++;
	if (s->tok && eng_tok_is_eog(s->tok, id)) {
		finish(s, r, ENG_FINISH_EOS, NULL);
		return;
	}
	char *text;
	struct eng_event *ev = next_slot(r, &text);
	int n = s->tok ? eng_tok_decoder_push(&r->dec, id, text, r->text_cap) : 0;
	*ev = (struct eng_event){.token = id, .finish = ENG_FINISH_NONE, .text = text,
				 .text_len = n > 0 ? (size_t)n : 0, .message = ""};
	publish(r);
	/* set while the token went out: it may have been after, count it */
	if (atomic_load_explicit(&r->cancel, memory_order_acquire))
		r->tokens_after_cancel++;
	r->next = id;
	r->state = RS_DECODE;
	if (r->n_gen >= r->max_tokens || r->n_fed >= r->seq.kv_len)
		finish(s, r, ENG_FINISH_LENGTH, NULL);
}

/* Builds the step: one decode token of every running sequence that has
 * room for its event, then prefill chunks in admission order within the
 * step's token budget. Cancelled sequences are finished here, before
 * anything is computed for them. Returns the number of segments. */
static int build_step(struct eng_sched *s, int *n_prefill, int *n_decode)
{
	int ns = 0, budget = s->o.max_step_tokens, paused = 0;
	*n_prefill = *n_decode = 0;
	for (int i = 0; i < s->n_running; i++) {
		struct eng_req *r = s->running[i];
		if (atomic_load_explicit(&r->cancel, memory_order_acquire)) {
			finish(s, r, ENG_FINISH_CANCELLED, NULL);
			continue;
		}
		if (r->state != RS_DECODE)
			continue;
		if (!has_room(r)) {
			paused++;
			continue;
		}
		s->segs[ns] = (struct eng_batch_seg){.seq = &r->seq, .pos = r->n_fed, .n = 1,
						     .tokens = &r->next, .logits = 1};
		s->seg_req[ns++] = r;
		budget--;
		(*n_decode)++;
	}
	for (int i = 0; i < s->n_running && budget > 0; i++) {
		struct eng_req *r = s->running[i];
		if (r->state != RS_PREFILL)
			continue;
		if (!has_room(r)) {
			paused++;
			continue;
		}
		int left = r->n_prompt - r->n_fed, k = left < budget ? left : budget;
		s->segs[ns] = (struct eng_batch_seg){.seq = &r->seq, .pos = r->n_fed, .n = k,
						     .tokens = r->prompt + r->n_fed,
						     .logits = k == left};
		s->seg_req[ns++] = r;
		budget -= k;
		*n_prefill += k;
	}
	pthread_mutex_lock(&s->mu);
	s->n_paused_pub = paused;
	pthread_mutex_unlock(&s->mu);
	return ns;
}

static void fail_all(struct eng_sched *s, const char *msg)
{
	for (int i = 0; i < s->n_running; i++)
		finish(s, s->running[i], ENG_FINISH_ERROR, msg);
}

static void *sched_main(void *arg)
{
	struct eng_sched *s = arg;
	for (;;) {
		struct eng_req *gone = NULL;
		int kicked_self = 0;
		pthread_mutex_lock(&s->mu);
		uint64_t seen = s->kicks;
		int stop = s->stop;
		admit_locked(s, &gone);
		s->n_running_pub = s->n_running;
		s->kv_free_pub = eng_kv_cells_free(s->kv);
		pthread_mutex_unlock(&s->mu);
		for (struct eng_req *r = gone, *nx; r; r = nx) {
			nx = r->link;
			r->link = NULL;
			finish(s, r, ENG_FINISH_CANCELLED, NULL);
		}
		if (stop) {
			for (int i = 0; i < s->n_running; i++)
				finish(s, s->running[i], ENG_FINISH_CANCELLED, NULL);
			compact_running(s);
			flush_notify(s);
			break;
		}
		int n_prefill, n_decode;
		int ns = build_step(s, &n_prefill, &n_decode);
		if (ns > 0) {
			struct eng_batch b = {s->segs, ns};
			enum eng_status st = eng_forward(s->c, s->kv, &b, s->err, sizeof(s->err));
			/* after the step, before anything of it is emitted: a model
			 * file damaged during the step gave garbage, thrown away */
			char msg[ENG_SCHED_ERR_MAX] = "";
			int bad = 0;
			if (st == ENG_OK && s->o.file && eng_file_damaged(s->o.file)) {
				if (eng_file_check(s->o.file, msg, sizeof(msg)) == ENG_OK)
					snprintf(msg, sizeof(msg), "the model file was damaged");
				bad = 1;
			} else if (st == ENG_OK && s->o.health) {
				bad = s->o.health(s->o.health_arg, msg, sizeof(msg)) != 0;
				if (bad && !msg[0])
					snprintf(msg, sizeof(msg), "the engine failed a health check");
			}
			if (bad) {
				fail_all(s, msg);
				ns = 0;
				kicked_self = 1;
			}
			int li = 0;
			for (int i = 0; i < ns; i++) {
				struct eng_req *r = s->seg_req[i];
				if (st != ENG_OK) {
					finish(s, r, ENG_FINISH_ERROR, s->err);
					continue;
				}
				r->n_fed += s->segs[i].n;
				if (s->segs[i].logits)
					emit(s, r, eng_compute_logits(s->c, li++));
			}
			pthread_mutex_lock(&s->mu);
			s->st.steps++;
			s->st.tokens_prefill += (uint64_t)n_prefill;
			s->st.tokens_decode += (uint64_t)n_decode;
			pthread_mutex_unlock(&s->mu);
		}
		compact_running(s);
		/* before the notifies: a consumer woken by its final event sees
		 * figures that already count it out */
		pthread_mutex_lock(&s->mu);
		s->n_running_pub = s->n_running;
		s->kv_free_pub = eng_kv_cells_free(s->kv);
		pthread_mutex_unlock(&s->mu);
		flush_notify(s);
		if (ns > 0 || kicked_self)
			continue;
		/* nothing to compute: sleep until a submit, cancel, consume or
		 * stop changes that (a kick since <seen> means one already did) */
		pthread_mutex_lock(&s->mu);
		while (s->kicks == seen && !s->stop)
			pthread_cond_wait(&s->cv, &s->mu);
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

/* ---- lifetime -------------------------------------------------------------- */

void eng_sched_free(struct eng_sched *s)
{
	if (!s)
		return;
	if (s->th_ok) {
		pthread_mutex_lock(&s->mu);
		s->stop = 1;
		s->kicks++;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->th, NULL);
	}
	eng_compute_free(s->c);
	eng_kv_free(s->kv);
	free(s->running);
	free(s->segs);
	free(s->seg_req);
	free(s->work);
	if (s->cv_ok)
		pthread_cond_destroy(&s->cv);
	if (s->mu_ok)
		pthread_mutex_destroy(&s->mu);
	free(s);
}

enum eng_status eng_sched_new(const struct eng_model *m, const struct eng_sched_opts *opts,
			      struct eng_sched **out, char *err, size_t err_len)
{
	struct eng_sched_opts o = {0};
	enum eng_status st = ENG_ERR_NOMEM;
	*out = NULL;
	if (opts)
		o = *opts;
	if (!m) {
		seterr(err, err_len, "no model");
		return ENG_ERR_ARG;
	}
	const struct eng_hparams *hp = eng_model_hparams(m);
	if (!o.n_threads)
		o.n_threads = 1;
	if (!o.n_ctx)
		o.n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
	if (!o.max_seqs)
		o.max_seqs = ENG_SCHED_DEFAULT_SEQS;
	if (!o.max_step_tokens)
		o.max_step_tokens = ENG_SCHED_DEFAULT_STEP_TOKENS;
	if (o.max_step_tokens <= o.max_seqs)
		o.max_step_tokens = o.max_seqs + 1;
	if (!o.max_queue)
		o.max_queue = ENG_SCHED_DEFAULT_QUEUE;
	if (o.n_ctx < 2 || o.n_ctx > ENG_MODEL_MAX_CTX || o.max_seqs < 1 ||
	    o.max_seqs > ENG_SCHED_MAX_SEQS || o.max_step_tokens > ENG_FORWARD_MAX_TOKENS ||
	    o.max_queue < 1 || o.max_queue > ENG_SCHED_MAX_QUEUE || o.kv_cells < 0 ||
	    o.kv_cells > ENG_KV_MAX_CELLS) {
		seterr(err, err_len, "bad scheduler options: context %d, %d sequences, %d tokens "
		       "a step, queue %d, %d KV cells", o.n_ctx, o.max_seqs, o.max_step_tokens,
		       o.max_queue, o.kv_cells);
		return ENG_ERR_ARG;
	}
	if (!o.kv_cells) {
		/* max_seqs full-context spans, each rounded up to the pool's grain */
		long span = (o.n_ctx + ENG_KV_GRAIN - 1) / ENG_KV_GRAIN * ENG_KV_GRAIN;
		long c = (long)o.max_seqs * span;
		o.kv_cells = c > ENG_KV_MAX_CELLS ? ENG_KV_MAX_CELLS : (int)c;
	}
	if (o.kv_cells < o.n_ctx)
		o.kv_cells = o.n_ctx; /* every admissible request fits an empty pool */
	if (o.tok && eng_tok_n_vocab(o.tok) > (uint32_t)hp->n_vocab) {
		seterr(err, err_len, "the vocabulary has %u tokens but the model only %d",
		       eng_tok_n_vocab(o.tok), hp->n_vocab);
		return ENG_ERR_ARG;
	}
	struct eng_sched *s = calloc(1, sizeof(*s));
	if (!s) {
		seterr(err, err_len, "out of memory");
		return ENG_ERR_NOMEM;
	}
	s->m = m;
	s->tok = o.tok;
	s->o = o;
	s->n_vocab = hp->n_vocab;
	struct eng_compute_opts co = {.n_threads = o.n_threads, .max_tokens = o.max_step_tokens,
				      .max_logits = o.max_seqs, .max_ctx = o.n_ctx};
	if ((st = eng_kv_new(m, o.kv_cells, &s->kv, err, err_len)) != ENG_OK ||
	    (st = eng_compute_new(m, &co, &s->c, err, err_len)) != ENG_OK)
		goto fail;
	st = ENG_ERR_NOMEM;
	s->running = calloc((size_t)o.max_seqs, sizeof(*s->running));
	s->segs = calloc((size_t)o.max_seqs, sizeof(*s->segs));
	s->seg_req = calloc((size_t)o.max_seqs, sizeof(*s->seg_req));
	s->work = malloc((size_t)hp->n_vocab * sizeof(float));
	if (!s->running || !s->segs || !s->seg_req || !s->work) {
		seterr(err, err_len, "out of memory");
		goto fail;
	}
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		goto fail_sys;
	s->mu_ok = 1;
	if (pthread_cond_init(&s->cv, NULL) != 0)
		goto fail_sys;
	s->cv_ok = 1;
	if (pthread_create(&s->th, NULL, sched_main, s) != 0)
		goto fail_sys;
	s->th_ok = 1;
	*out = s;
	return ENG_OK;
fail_sys:
	seterr(err, err_len, "cannot start the scheduler thread");
fail:
	eng_sched_free(s);
	return st;
}

int eng_sched_n_ctx(const struct eng_sched *s)
{
	return s->o.n_ctx;
}

void eng_sched_stats(struct eng_sched *s, struct eng_sched_stats *st)
{
	pthread_mutex_lock(&s->mu);
	*st = s->st;
	st->queued = s->n_waiting;
	st->running = s->n_running_pub;
	st->paused = s->n_paused_pub;
	st->kv_free = s->kv_free_pub;
	pthread_mutex_unlock(&s->mu);
	st->kv_cells = eng_kv_n_cells(s->kv);
}

enum eng_status eng_sched_submit(struct eng_sched *s, const struct eng_req_opts *o,
				 struct eng_req **out, char *err, size_t err_len)
{
	*out = NULL;
	if (!s || !o) {
		seterr(err, err_len, "no request");
		return ENG_ERR_ARG;
	}
	if (o->n_prompt < 1 || !o->prompt) {
		seterr(err, err_len, "prompt: empty");
		return ENG_ERR_ARG;
	}
	if (o->n_prompt >= s->o.n_ctx) {
		seterr(err, err_len, "prompt: %d tokens do not leave room for one more in a "
		       "context of %d", o->n_prompt, s->o.n_ctx);
		return ENG_ERR_RANGE;
	}
	for (int i = 0; i < o->n_prompt; i++)
		if (o->prompt[i] < 0 || o->prompt[i] >= s->n_vocab) {
			seterr(err, err_len, "prompt: token id %d (at %d) is outside the %d-token "
			       "vocabulary", o->prompt[i], i, s->n_vocab);
			return ENG_ERR_ARG;
		}
	if (o->max_tokens < 1) {
		seterr(err, err_len, "max_tokens: %d, must be at least 1", o->max_tokens);
		return ENG_ERR_ARG;
	}
	if (s->o.file) {
		enum eng_status fst = eng_file_check(s->o.file, err, err_len);
		if (fst != ENG_OK)
			return fst;
	}
	int cap = o->max_events ? o->max_events : ENG_SCHED_DEFAULT_EVENTS;
	if (cap < 1 || cap > ENG_SCHED_MAX_EVENTS) {
		seterr(err, err_len, "max_events: %d, must be 1..%d", o->max_events,
		       ENG_SCHED_MAX_EVENTS);
		return ENG_ERR_ARG;
	}
	struct eng_req *r = calloc(1, sizeof(*r));
	if (!r) {
		seterr(err, err_len, "out of memory");
		return ENG_ERR_NOMEM;
	}
	if (pthread_mutex_init(&r->mu, NULL) != 0) {
		free(r);
		seterr(err, err_len, "out of resources");
		return ENG_ERR_NOMEM;
	}
	if (pthread_mutex_init(&r->notify_mu, NULL) != 0) {
		pthread_mutex_destroy(&r->mu);
		free(r);
		seterr(err, err_len, "out of resources");
		return ENG_ERR_NOMEM;
	}
	atomic_init(&r->cancel, false);
	atomic_init(&r->refs, 2);
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	atomic_init(&r->paused, false);
	atomic_init(&r->final_ready, false);
	r->n_prompt = o->n_prompt;
	r->max_tokens = o->max_tokens;
	r->notify = o->notify;
	r->notify_arg = o->notify_arg;
	r->cap = cap;
	r->text_cap = s->tok ? eng_tok_decoder_out_max(s->tok) : 1;
	r->prompt = malloc((size_t)o->n_prompt * sizeof(int32_t));
	r->ev = calloc((size_t)cap, sizeof(*r->ev));
	r->text = malloc((size_t)cap * r->text_cap);
	r->final_text = malloc(r->text_cap);
	r->smp = eng_sampler_new(&o->sampling, s->n_vocab);
	if (!r->prompt || !r->ev || !r->text || !r->final_text || !r->smp) {
		enum eng_status st = r->prompt && r->ev && r->text && r->final_text
					     ? ENG_ERR_ARG : ENG_ERR_NOMEM;
		if (st == ENG_ERR_ARG)
			seterr(err, err_len, "sampling: parameters out of range");
		else
			seterr(err, err_len, "out of memory");
		req_destroy(r);
		return st;
	}
	memcpy(r->prompt, o->prompt, (size_t)o->n_prompt * sizeof(int32_t));
	for (int i = 0; i < o->n_prompt; i++)
		eng_sampler_accept(r->smp, o->prompt[i]);
	if (s->tok)
		eng_tok_decoder_init(&r->dec, s->tok, 0);
	r->state = RS_QUEUED;
	r->sched = s;

	pthread_mutex_lock(&s->mu);
	if (s->stop || s->n_waiting >= s->o.max_queue) {
		int stop = s->stop;
		pthread_mutex_unlock(&s->mu);
		if (stop)
			seterr(err, err_len, "the engine is shutting down");
		else
			seterr(err, err_len, "the queue is full (%d requests waiting)", s->o.max_queue);
		req_destroy(r);
		return ENG_ERR_LIMIT;
	}
	r->prev = s->wait_tail;
	if (s->wait_tail)
		s->wait_tail->link = r;
	else
		s->wait_head = r;
	s->wait_tail = r;
	s->n_waiting++;
	s->kicks++;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	*out = r;
	return ENG_OK;
}
