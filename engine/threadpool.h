/* A fixed pool of persistent worker threads for the CPU backend: the caller
 * hands out a task as numbered chunks that the threads (itself included, as
 * thread 0) claim one at a time from a shared counter, so a thread that the
 * OS deschedules holds back at most the chunk it holds, and gets control
 * back when every chunk has run. Idle workers spin briefly, then sleep. */
#ifndef LW_ENGINE_THREADPOOL_H
#define LW_ENGINE_THREADPOOL_H

#define ENG_POOL_MAX_THREADS 256

/* Called once per chunk <chunk> in [0, n_chunks), on the thread with index
 * <ith> in [0, eng_pool_size()): per-thread scratch is indexed by <ith>. */
typedef void (*eng_chunk_fn)(void *ctx, int chunk, int ith);

struct eng_pool;

/* A pool of <n_threads> (1..ENG_POOL_MAX_THREADS, counting the caller).
 * NULL on a bad count or when threads cannot be created. */
struct eng_pool *eng_pool_new(int n_threads);
void eng_pool_free(struct eng_pool *p); /* NULL is a no-op; joins workers */
int eng_pool_size(const struct eng_pool *p);

/* Runs <fn>(<ctx>, c, ith) once for every c in [0, <n_chunks>) and returns
 * when all calls have returned. The caller claims chunks too; a worker that
 * wakes after the last chunk is claimed touches neither <fn> nor <ctx>, so
 * the caller only ever waits for chunks already being run. With
 * <n_chunks> <= 1 or <parallel> 0 every chunk runs on the caller and no
 * worker is woken (for work too small to be worth a hand-off). Not
 * reentrant: one caller thread at a time. */
void eng_pool_run(struct eng_pool *p, eng_chunk_fn fn, void *ctx, int n_chunks,
		  int parallel);

#endif
