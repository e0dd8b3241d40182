/* The KV pool: one store of key/value cells (every layer's keys and values
 * for one token position) with a token budget, shared by all sequences.
 * A sequence reserves its whole footprint up front as one contiguous span
 * of cells — prompt plus the most tokens it may generate — so a sequence
 * that was admitted never runs out of memory mid-decode; one that does not
 * fit waits (the scheduler's queue). Spans are best-fit in units of
 * ENG_KV_GRAIN cells. Why contiguous spans and not pages: the footprint is
 * known and reserved whole at admission, so paging would only remove
 * external fragmentation, at the price of page tables in every attention
 * kernel; a contiguous span lets the kernels sweep a sequence's keys as one
 * strided row per dimension. The storage belongs to the model's backend.
 * Not thread-safe: one owner (the scheduler) reserves and releases. */
#ifndef LW_ENGINE_KV_H
#define LW_ENGINE_KV_H

#include <stddef.h>

#include "engine/gguf.h"

#define ENG_KV_GRAIN 16
#define ENG_KV_MAX_CELLS (1 << 24)

struct eng_model;
struct eng_kv;

/* A sequence's place in a pool: positions 0..kv_len-1 live in cells
 * kv_off..kv_off+kv_len-1. kv_len 0: nothing reserved. */
struct eng_seq {
	int kv_off;
	int kv_len;
};

/* A pool of <n_cells> cells (rounded up to ENG_KV_GRAIN) for model <m>,
 * which must outlive it. */
ENG_WUR enum eng_status eng_kv_new(const struct eng_model *m, int n_cells, struct eng_kv **out,
				   char *err, size_t err_len);
void eng_kv_free(struct eng_kv *kv); /* NULL is a no-op */

int eng_kv_n_cells(const struct eng_kv *kv);
int eng_kv_cells_free(const struct eng_kv *kv);   /* in all free spans */
int eng_kv_largest_free(const struct eng_kv *kv); /* the largest one span could take */
size_t eng_kv_bytes(const struct eng_kv *kv);     /* the backend's storage */

/* Reserves <n> (>= 1) positions for *<seq>: ENG_ERR_POOL_FULL when no free
 * span is large enough (now: a later release may make one), ENG_ERR_RANGE
 * when <n> exceeds the whole pool (never). */
ENG_WUR enum eng_status eng_kv_reserve(struct eng_kv *kv, int n, struct eng_seq *seq);
/* Gives <seq>'s span back and zeroes *<seq>; a zero <seq> is a no-op. The
 * cells' contents are not cleared: a sequence only reads positions it has
 * written. */
void eng_kv_release(struct eng_kv *kv, struct eng_seq *seq);

#endif
