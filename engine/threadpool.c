#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "engine/threadpool.h"

/* Iterations a worker polls for new work before it sleeps on the condvar,
 * and the caller polls for running chunks before it yields its core. */
#define SPIN_ITERS 20000
#define WAIT_SPINS 2000

/* The run ticket packs the run's generation (high 32 bits) with the number
 * of chunks not yet claimed (low 32); a claim is one compare-and-swap that
 * takes chunk remaining-1 (so chunks go out last first). A claim succeeds
 * only while the ticket still names that run with chunks left, i.e. while
 * the run is unfinished and the caller cannot have moved on: a late worker
 * never runs a chunk with a finished run's (gone) context, nor with the
 * next run's context against this run's ticket. Counting down keeps the
 * run's chunk count out of the claim, which a worker could otherwise read
 * from the next run while the ticket still shows this one. */
#define TICKET(gen, left) (((uint64_t)(gen) << 32) | (uint32_t)(left))
#define TICKET_GEN(t) ((uint32_t)((t) >> 32))
#define TICKET_LEFT(t) ((int)(uint32_t)(t))

struct eng_pool {
	int n;
	pthread_t *th;
	/* the current run's, stored before its ticket; a worker may read them
	 * while the caller writes the next run's, hence atomic (relaxed) */
	_Atomic(eng_chunk_fn) fn;
	_Atomic(void *) ctx;
	_Atomic uint64_t ticket;
	atomic_int finished;  /* chunks of the current run that have returned */
	atomic_int sleepers;
	atomic_int stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int mu_ok, cv_ok;
};

struct worker_arg {
	struct eng_pool *p;
	int ith;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Claims and runs chunks of generation <gen> until none is left. <fn> and
 * <ctx> were read after the ticket of <gen> was seen; a claim succeeds
 * only while that run is unfinished, and the caller writes the next run's
 * only after it finished, so whenever a claim succeeds they are <gen>'s. */
static void run_chunks(struct eng_pool *p, uint32_t gen, eng_chunk_fn fn, void *ctx, int ith)
{
	uint64_t t = atomic_load(&p->ticket);
	for (;;) {
		if (TICKET_GEN(t) != gen || TICKET_LEFT(t) == 0)
			return;
		if (!atomic_compare_exchange_weak(&p->ticket, &t, t - 1))
			continue; /* t reloaded */
		fn(ctx, TICKET_LEFT(t) - 1, ith);
		atomic_fetch_add(&p->finished, 1);
		t = atomic_load(&p->ticket);
	}
}

static void *worker(void *arg)
{
	struct worker_arg wa = *(struct worker_arg *)arg;
	struct eng_pool *p = wa.p;
	uint32_t seen = 0;
	free(arg);
	for (;;) {
		int spins = 0;
		while (TICKET_GEN(atomic_load(&p->ticket)) == seen && !atomic_load(&p->stop) &&
		       spins < SPIN_ITERS) {
			cpu_relax();
			spins++;
		}
		if (TICKET_GEN(atomic_load(&p->ticket)) == seen && !atomic_load(&p->stop)) {
			pthread_mutex_lock(&p->mu);
			atomic_fetch_add(&p->sleepers, 1);
			while (TICKET_GEN(atomic_load(&p->ticket)) == seen && !atomic_load(&p->stop))
				pthread_cond_wait(&p->cv, &p->mu);
			atomic_fetch_sub(&p->sleepers, 1);
			pthread_mutex_unlock(&p->mu);
		}
		if (atomic_load(&p->stop))
			break;
		seen = TICKET_GEN(atomic_load(&p->ticket)); /* acquire: fn, ctx */
		run_chunks(p, seen, atomic_load_explicit(&p->fn, memory_order_relaxed),
			   atomic_load_explicit(&p->ctx, memory_order_relaxed), wa.ith);
	}
	return NULL;
}

void eng_pool_free(struct eng_pool *p)
{
	if (!p)
		return;
	if (p->th) {
		atomic_store(&p->stop, 1);
		if (p->mu_ok && p->cv_ok) {
			pthread_mutex_lock(&p->mu);
			pthread_cond_broadcast(&p->cv);
			pthread_mutex_unlock(&p->mu);
		}
		for (int i = 1; i < p->n; i++)
			if (p->th[i])
				pthread_join(p->th[i], NULL);
		free(p->th);
	}
	if (p->cv_ok)
		pthread_cond_destroy(&p->cv);
	if (p->mu_ok)
		pthread_mutex_destroy(&p->mu);
	free(p);
}

struct eng_pool *eng_pool_new(int n_threads)
{
	if (n_threads < 1 || n_threads > ENG_POOL_MAX_THREADS)
		return NULL;
	struct eng_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->n = n_threads;
	atomic_init(&p->fn, NULL);
	atomic_init(&p->ctx, NULL);
	atomic_init(&p->ticket, 0);
	atomic_init(&p->finished, 0);
	atomic_init(&p->sleepers, 0);
	atomic_init(&p->stop, 0);
	if (pthread_mutex_init(&p->mu, NULL) != 0)
		goto fail;
	p->mu_ok = 1;
	if (pthread_cond_init(&p->cv, NULL) != 0)
		goto fail;
	p->cv_ok = 1;
	p->th = calloc((size_t)n_threads, sizeof(*p->th));
	if (!p->th)
		goto fail;
	for (int i = 1; i < n_threads; i++) {
		struct worker_arg *wa = malloc(sizeof(*wa));
		if (!wa)
			goto fail;
		wa->p = p;
		wa->ith = i;
		if (pthread_create(&p->th[i], NULL, worker, wa) != 0) {
			free(wa);
			p->th[i] = 0;
			goto fail;
		}
	}
	return p;
fail:
	eng_pool_free(p);
	return NULL;
}

int eng_pool_size(const struct eng_pool *p)
{
	return p->n;
}

void eng_pool_run(struct eng_pool *p, eng_chunk_fn fn, void *ctx, int n_chunks,
		  int parallel)
{
	if (p->n == 1 || n_chunks <= 1 || !parallel) {
		for (int c = 0; c < n_chunks; c++)
			fn(ctx, c, 0);
		return;
	}
	uint32_t gen = TICKET_GEN(atomic_load(&p->ticket)) + 1;
	atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
	atomic_store_explicit(&p->ctx, ctx, memory_order_relaxed);
	atomic_store(&p->finished, 0);
	atomic_store(&p->ticket, TICKET(gen, n_chunks)); /* publishes fn/ctx (seq_cst) */
	if (atomic_load(&p->sleepers) > 0) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	run_chunks(p, gen, fn, ctx, 0);
	/* every chunk is claimed: wait only for those still running */
	int spins = 0;
	while (atomic_load(&p->finished) < n_chunks) {
		if (++spins < WAIT_SPINS)
			cpu_relax();
		else
			sched_yield();
	}
}
