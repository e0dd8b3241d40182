/* The serving scheduler: one thread that runs a model for many requests at
 * once with continuous batching. Each forward step takes one decode token
 * of every running sequence plus prefill chunks of new ones (at most
 * max_step_tokens in all), so every weight is read once per step for all
 * of them; new requests join between steps. A request is admitted only
 * when its whole KV footprint fits the pool (prompt + max_tokens, capped
 * at n_ctx); until then it waits in the queue, so a running sequence never
 * fails for want of memory.
 *
 * Threads. eng_sched_submit, eng_req_cancel and eng_req_free may be called
 * from any thread; eng_req_peek / eng_req_consume from one consumer thread
 * per request (the proxy's event loop). Events cross from the scheduler to
 * the consumer through a bounded single-producer single-consumer queue per
 * request, and the scheduler calls the request's notify callback at most
 * once per step in which it added events (the proxy calls event_active()
 * there; the engine knows nothing of libevent). A consumer that stops
 * reading fills its queue: that sequence is paused (left out of the steps)
 * until there is room again; the scheduler and every other sequence go on.
 *
 * Cancel contract. Each request owns an atomic_bool cancel flag (never a
 * process-wide one). eng_req_cancel sets it (release). The scheduler reads
 * it (acquire) before putting the sequence into a step and again in the
 * token-emit step, before it emits: a set flag finishes the sequence
 * exactly as an end-of-generation token would, with finish reason
 * ENG_FINISH_CANCELLED, and no token event is emitted after the flag was
 * seen. tokens_after_cancel in the final event counts the tokens the
 * engine generated after the flag was set: the token of a step during
 * which it was set (computed, not emitted), or a token emitted while it
 * was being set (the flag read again right after the push, counted
 * conservatively); it is at most 1.
 *
 * Lifetime. A request lives until both sides are done with it: the
 * consumer calls eng_req_free (normally after the final event; earlier
 * means cancel, and then no notify is ever called again), the scheduler
 * lets go after the final event. eng_sched_free cancels what is queued or
 * running, delivers every final event and joins the thread; requests it
 * leaves behind stay valid until eng_req_free. */
#ifndef LW_ENGINE_SCHED_H
#define LW_ENGINE_SCHED_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"
#include "engine/sampler.h"

struct eng_file;
struct eng_model;
struct eng_tok;

/* Caps (every one set at creation; named here). */
#define ENG_SCHED_MAX_SEQS 256          /* sequences in one step */
#define ENG_SCHED_DEFAULT_SEQS 8
#define ENG_SCHED_DEFAULT_STEP_TOKENS 256
#define ENG_SCHED_DEFAULT_QUEUE 256     /* requests waiting for admission */
#define ENG_SCHED_MAX_QUEUE 65536
#define ENG_SCHED_DEFAULT_EVENTS 64     /* a request's output queue */
#define ENG_SCHED_MAX_EVENTS 4096
#define ENG_SCHED_ERR_MAX 512           /* an error event's message (paths included) */

enum eng_finish {
	ENG_FINISH_NONE = 0,  /* a token event */
	ENG_FINISH_EOS,       /* the model produced an end-of-generation token */
	ENG_FINISH_LENGTH,    /* max_tokens reached, or the context is full */
	ENG_FINISH_CANCELLED, /* the cancel flag was set (or the scheduler shut down) */
	ENG_FINISH_ERROR,     /* the engine failed this request; see message */
	ENG_FINISH_COUNT
};

/* "eos", "length", "cancelled", "error" ("" for NONE). */
const char *eng_finish_name(enum eng_finish f);

struct eng_usage {
	int prompt_tokens;
	int completion_tokens;   /* tokens generated: emitted ones plus an end-of-generation token */
	int tokens_after_cancel; /* see the cancel contract; 0 unless cancelled */
};

/* One event of a request. Token events have finish NONE; the last event
 * of every request has a finish reason, usage, and no token (-1). <text>
 * is the decoded piece (complete UTF-8 only: bytes of a character split
 * across tokens come with the token that completes it; a final event may
 * carry a dangling one as U+FFFD). Valid until eng_req_consume. */
struct eng_event {
	int32_t token;
	enum eng_finish finish;
	const char *text;
	size_t text_len;
	struct eng_usage usage;   /* on the final event */
	const char *message;      /* ENG_FINISH_ERROR: what failed; else "" */
};

struct eng_sched_opts {
	int n_threads;        /* compute threads (the scheduler thread is one); 0 → 1 */
	int n_ctx;            /* most positions of one sequence; 0 → min(n_ctx_train, 4096) */
	int kv_cells;         /* KV budget in tokens for all sequences; 0 → room for
			       * max_seqs sequences of n_ctx (each span rounded up to
			       * ENG_KV_GRAIN); at least n_ctx */
	int max_seqs;         /* most sequences admitted at once (the decode batch);
			       * 0 → ENG_SCHED_DEFAULT_SEQS */
	int max_step_tokens;  /* most tokens in one step, decodes and prefill chunks
			       * together; 0 → ENG_SCHED_DEFAULT_STEP_TOKENS; raised to
			       * max_seqs + 1 so prefill always advances */
	int max_queue;        /* most requests waiting; 0 → ENG_SCHED_DEFAULT_QUEUE */
	/* For text pieces and end-of-generation ids; NULL: events carry ids
	 * only and only max_tokens / n_ctx end a sequence. Must outlive the
	 * scheduler. */
	const struct eng_tok *tok;
	/* The file the model's weights are mapped from (engine/load.h), or
	 * NULL. With it, submit refuses requests once eng_file_check reports
	 * the file changed on disk (ENG_ERR_CHANGED, its message), and after
	 * every forward step eng_file_damaged is read before anything of the
	 * step is emitted: on damage the step is thrown away and every
	 * admitted request fails with ENG_FINISH_ERROR and eng_file_check's
	 * message ("… changed on disk … reload it"). Must outlive the
	 * scheduler. */
	const struct eng_file *file;
	/* Any further check, called on the scheduler thread after every
	 * forward step (after the file's), before any of its tokens is sampled
	 * or emitted. Nonzero throws the step's results away and fails every
	 * admitted request with ENG_FINISH_ERROR and the message it wrote;
	 * queued ones wait on. NULL: none. */
	int (*health)(void *arg, char *msg, size_t msg_len);
	void *health_arg;
};

struct eng_sched_stats {
	int queued, running, paused; /* requests waiting, admitted, admitted but paused */
	int kv_cells, kv_free;
	uint64_t steps, tokens_prefill, tokens_decode, requests_done, cancelled;
	uint64_t tokens_after_cancel; /* summed over finished requests */
};

struct eng_sched;
struct eng_req;

/* Starts the scheduler thread for model <m> (which must outlive it): KV
 * pool, compute context and thread pool are made here, so nothing is
 * allocated per step. */
ENG_WUR enum eng_status eng_sched_new(const struct eng_model *m, const struct eng_sched_opts *o,
				      struct eng_sched **out, char *err, size_t err_len);
/* Cancels what is queued or running (final events with
 * ENG_FINISH_CANCELLED, notify called), stops the thread, frees the rest.
 * NULL is a no-op. Not from a notify callback. */
void eng_sched_free(struct eng_sched *s);
void eng_sched_stats(struct eng_sched *s, struct eng_sched_stats *st);
int eng_sched_n_ctx(const struct eng_sched *s);

struct eng_req_opts {
	const int32_t *prompt;               /* copied */
	int n_prompt;                        /* 1 .. n_ctx - 1 */
	struct eng_sampler_params sampling;  /* copied */
	int max_tokens;                      /* >= 1; generation also ends when the
					      * context (n_ctx) is full */
	int max_events;                      /* output queue; 0 → ENG_SCHED_DEFAULT_EVENTS */
	/* Called on the scheduler thread, at most once per step, after that
	 * step's events for this request are visible, and once more after the
	 * final event; never after eng_req_free. Must be quick and must not
	 * call eng_req_free or eng_sched_free. */
	void (*notify)(void *arg);
	void *notify_arg;
};

/* Queues a request; *<out> is the caller's until eng_req_free. Fails
 * (nothing queued, <err> names the field) with ENG_ERR_ARG for an empty
 * prompt, a token id outside the vocabulary, max_tokens < 1 or bad
 * sampling values; ENG_ERR_RANGE for a prompt of n_ctx tokens or more;
 * ENG_ERR_LIMIT when the queue is full or the scheduler is shutting down;
 * ENG_ERR_CHANGED when the model file changed on disk (opts.file). */
ENG_WUR enum eng_status eng_sched_submit(struct eng_sched *s, const struct eng_req_opts *o,
					 struct eng_req **out, char *err, size_t err_len);

/* Sets the request's cancel flag (release) and wakes the scheduler. Any
 * thread; idempotent; a finished request ignores it. */
void eng_req_cancel(struct eng_req *r);
/* The flag itself, for code that wants to read it. */
const atomic_bool *eng_req_cancel_flag(const struct eng_req *r);

/* The next event, or NULL when none is ready yet (wait for the notify).
 * The same event is returned until eng_req_consume. After the final event
 * has been consumed, NULL forever. Consumer thread only. */
const struct eng_event *eng_req_peek(struct eng_req *r);
/* Done with the event eng_req_peek returned: its slot may be reused (a
 * paused sequence resumes). */
void eng_req_consume(struct eng_req *r);

/* The caller is done with <r>. Before the final event this cancels it;
 * either way no notify is called once this returns. NULL is a no-op. */
void eng_req_free(struct eng_req *r);

#endif
