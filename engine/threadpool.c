#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "engine/threadpool.h"

/* Iterations a worker polls for new work before it sleeps on the condvar. */
#define SPIN_ITERS 20000

struct eng_pool {
	int n;
	pthread_t *th;
	eng_task_fn fn;
	void *ctx;
	atomic_uint gen;  /* bumped once per run */
	atomic_int done;  /* workers finished with the current run */
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

static void *worker(void *arg)
{
	struct worker_arg wa = *(struct worker_arg *)arg;
	struct eng_pool *p = wa.p;
	unsigned seen = 0;
	free(arg);
	for (;;) {
		int spins = 0;
		while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop) &&
		       spins < SPIN_ITERS) {
			cpu_relax();
			spins++;
		}
		if (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) {
			pthread_mutex_lock(&p->mu);
			atomic_fetch_add(&p->sleepers, 1);
			while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
				pthread_cond_wait(&p->cv, &p->mu);
			atomic_fetch_sub(&p->sleepers, 1);
			pthread_mutex_unlock(&p->mu);
		}
		if (atomic_load(&p->stop))
			break;
		seen = atomic_load(&p->gen);
		p->fn(p->ctx, wa.ith, p->n);
		atomic_fetch_add(&p->done, 1);
	}
	return NULL;
}

static void wake_all(struct eng_pool *p)
{
	if (atomic_load(&p->sleepers) > 0) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
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
	atomic_init(&p->gen, 0);
	atomic_init(&p->done, 0);
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

void eng_pool_run(struct eng_pool *p, eng_task_fn fn, void *ctx)
{
	if (p->n == 1) {
		fn(ctx, 0, 1);
		return;
	}
	p->fn = fn;
	p->ctx = ctx;
	atomic_store(&p->done, 0);
	atomic_fetch_add(&p->gen, 1); /* publishes fn/ctx (seq_cst) */
	wake_all(p);
	fn(ctx, 0, p->n);
	int spins = 0;
	while (atomic_load(&p->done) < p->n - 1) {
		if (++spins < SPIN_ITERS)
			cpu_relax();
		else
			sched_yield();
	}
}

void eng_pool_split(int n, int align, int ith, int nth, int *lo, int *hi)
{
	if (align < 1)
		align = 1;
	int units = (n + align - 1) / align;
	int per = units / nth, rem = units % nth;
	int a = ith * per + (ith < rem ? ith : rem);
	int b = a + per + (ith < rem ? 1 : 0);
	a *= align;
	b *= align;
	*lo = a < n ? a : n;
	*hi = b < n ? b : n;
}
