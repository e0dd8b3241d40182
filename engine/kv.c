#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend_impl.h"
#include "engine/kv.h"

struct eng_kv {
	const struct eng_model *m;
	void *store;            /* the backend's */
	size_t bytes;
	int n_cells, n_grains;
	unsigned char *used;    /* per grain of ENG_KV_GRAIN cells */
	int n_free;             /* free grains */
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

void eng_kv_free(struct eng_kv *kv)
{
	if (!kv)
		return;
	if (kv->store)
		kv->m->be->iface->kv_free(kv->store);
	free(kv->used);
	free(kv);
}

enum eng_status eng_kv_new(const struct eng_model *m, int n_cells, struct eng_kv **out,
			   char *err, size_t err_len)
{
	*out = NULL;
	if (!m || n_cells < 1 || n_cells > ENG_KV_MAX_CELLS) {
		seterr(err, err_len, "KV pool of %d cells: out of range (1..%d)", n_cells,
		       ENG_KV_MAX_CELLS);
		return ENG_ERR_ARG;
	}
	struct eng_kv *kv = calloc(1, sizeof(*kv));
	if (!kv) {
		seterr(err, err_len, "out of memory");
		return ENG_ERR_NOMEM;
	}
	kv->m = m;
	kv->n_grains = (n_cells + ENG_KV_GRAIN - 1) / ENG_KV_GRAIN;
	kv->n_cells = kv->n_grains * ENG_KV_GRAIN;
	kv->n_free = kv->n_grains;
	kv->used = calloc((size_t)kv->n_grains, 1);
	if (!kv->used) {
		eng_kv_free(kv);
		seterr(err, err_len, "out of memory");
		return ENG_ERR_NOMEM;
	}
	enum eng_status st = m->be->iface->kv_new(m->be->ctx, m, kv->n_cells, &kv->store,
						   &kv->bytes, err, err_len);
	if (st != ENG_OK) {
		eng_kv_free(kv);
		return st;
	}
	*out = kv;
	return ENG_OK;
}

int eng_kv_n_cells(const struct eng_kv *kv) { return kv->n_cells; }
int eng_kv_cells_free(const struct eng_kv *kv) { return kv->n_free * ENG_KV_GRAIN; }
size_t eng_kv_bytes(const struct eng_kv *kv) { return kv->bytes; }
void *eng_kv_storage(struct eng_kv *kv) { return kv->store; }

/* Returns the start grain of the smallest free run of at
 * least <need> grains (best fit, lowest start on ties), or -1; *<largest>
 * gets the longest free run. */
static int best_run(const struct eng_kv *kv, int need, int *largest)
{
	int best = -1, best_len = 0, big = 0;
	for (int g = 0; g < kv->n_grains;) {
		if (kv->used[g]) {
			g++;
			continue;
		}
		int s = g;
		while (g < kv->n_grains && !kv->used[g])
			g++;
		int len = g - s;
		if (len > big)
			big = len;
		if (len >= need && (best < 0 || len < best_len)) {
			best = s;
			best_len = len;
		}
	}
	if (largest)
		*largest = big;
	return best;
}

int eng_kv_largest_free(const struct eng_kv *kv)
{
	int big = 0;
	(void)best_run(kv, kv->n_grains + 1, &big);
	return big * ENG_KV_GRAIN;
}

enum eng_status eng_kv_reserve(struct eng_kv *kv, int n, struct eng_seq *seq)
{
	if (n < 1 || n > kv->n_cells)
		return ENG_ERR_RANGE;
	int need = (n + ENG_KV_GRAIN - 1) / ENG_KV_GRAIN;
	if (need > kv->n_free)
		return ENG_ERR_POOL_FULL;
	int g = best_run(kv, need, NULL);
	if (g < 0)
		return ENG_ERR_POOL_FULL;
	memset(kv->used + g, 1, (size_t)need);
	kv->n_free -= need;
	seq->kv_off = g * ENG_KV_GRAIN;
	seq->kv_len = n;
	return ENG_OK;
}

void eng_kv_release(struct eng_kv *kv, struct eng_seq *seq)
{
	if (seq->kv_len <= 0)
		return;
	int g = seq->kv_off / ENG_KV_GRAIN, need = (seq->kv_len + ENG_KV_GRAIN - 1) / ENG_KV_GRAIN;
	memset(kv->used + g, 0, (size_t)need);
	kv->n_free += need;
	seq->kv_off = 0;
	seq->kv_len = 0;
}
