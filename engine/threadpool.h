/* A fixed pool of persistent worker threads for the CPU backend: the caller
 * runs a task on every thread at once (itself as thread 0) and gets control
 * back when all have finished. Idle workers spin briefly, then sleep. */
#ifndef LW_ENGINE_THREADPOOL_H
#define LW_ENGINE_THREADPOOL_H

#define ENG_POOL_MAX_THREADS 256

/* Called once on each thread with its index <ith> in [0, <nth>). */
typedef void (*eng_task_fn)(void *ctx, int ith, int nth);

struct eng_pool;

/* A pool of <n_threads> (1..ENG_POOL_MAX_THREADS, counting the caller).
 * NULL on a bad count or when threads cannot be created. */
struct eng_pool *eng_pool_new(int n_threads);
void eng_pool_free(struct eng_pool *p); /* NULL is a no-op; joins workers */
int eng_pool_size(const struct eng_pool *p);

/* Runs <fn>(<ctx>, ith, nth) on every thread and returns when all calls
 * have returned. Not reentrant: one caller thread at a time. */
void eng_pool_run(struct eng_pool *p, eng_task_fn fn, void *ctx);

/* Splits [0, <n>) into <nth> nearly equal ranges, aligned to <align>
 * elements; range <ith> is [*<lo>, *<hi>). */
void eng_pool_split(int n, int align, int ith, int nth, int *lo, int *hi);

#endif
