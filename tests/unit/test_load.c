/* Loaders: mmap and read give identical bytes, the slot pool is bounded and
 * refuses when full, a failed munmap keeps its slot busy, bad files fail
 * with an error naming the path, and a mapped model file truncated or
 * rewritten on disk is reported, never fatal (issue 11 defect 10). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/forward.h"
#include "engine/gguf_write.h"
#include "engine/kv.h"
#include "engine/load.h"
#include "engine/model.h"

#define STORIES LW_SHARED_DIR "/models/stories260K.gguf"

static char tmpdir[256];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/lw_test_load.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void tmp_path(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", tmpdir, name);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static int pattern_fill(void *ctx, uint64_t i, const char *name, void *buf, uint64_t n)
{
	uint8_t *b = buf;

	(void)ctx;
	(void)name;
	for (uint64_t k = 0; k < n; k++)
		b[k] = (uint8_t)(k * 31 + i * 7 + 1);
	return 0;
}

/* A generated model of every common weight type, written to <path>. */
static void write_model(const char *path)
{
	struct eng_gguf_writer *w = eng_gguf_writer_new(3, 0);
	static const enum eng_type types[] = { ENG_TYPE_F32, ENG_TYPE_F16, ENG_TYPE_BF16, ENG_TYPE_Q8_0,
					       ENG_TYPE_Q4_0, ENG_TYPE_Q4_K, ENG_TYPE_Q6_K };
	char err[256];

	assert_non_null(w);
	assert_int_equal(eng_gguf_writer_set_str(w, "general.architecture", "llama"), ENG_OK);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		char name[32];
		const uint64_t dims[2] = { 512, 3 + i };

		snprintf(name, sizeof(name), "t.%s", eng_type_name(types[i]));
		assert_int_equal(eng_gguf_writer_add_tensor(w, name, types[i], 2, dims, NULL), ENG_OK);
	}
	assert_int_equal(eng_gguf_writer_write_file(w, path, pattern_fill, NULL, err, sizeof(err)), ENG_OK);
	eng_gguf_writer_free(w);
}

static void check_same(const struct eng_file *a, const struct eng_file *b)
{
	const struct eng_gguf *ga = eng_file_gguf(a), *gb = eng_file_gguf(b);

	assert_int_equal(eng_file_size(a), eng_file_size(b));
	assert_memory_equal(eng_file_data(a), eng_file_data(b), eng_file_size(a));
	assert_int_equal(eng_gguf_n_kv(ga), eng_gguf_n_kv(gb));
	assert_int_equal(eng_gguf_n_tensors(ga), eng_gguf_n_tensors(gb));
	for (uint64_t i = 0; i < eng_gguf_n_tensors(ga); i++) {
		const struct eng_tensor *ta = eng_gguf_tensor_at(ga, i);
		const struct eng_tensor *tb = eng_file_tensor(b, ta->name);

		assert_non_null(tb);
		assert_int_equal(ta->type, tb->type);
		assert_int_equal(ta->n_bytes, tb->n_bytes);
		assert_memory_equal(ta->dims, tb->dims, sizeof(ta->dims));
		assert_memory_equal(ta->data, tb->data, ta->n_bytes);
		/* Tensor data is aligned in memory (both buffers are 64-aligned). */
		assert_int_equal((uintptr_t)ta->data % 32, 0);
		assert_int_equal((uintptr_t)tb->data % 32, 0);
	}
}

static void test_strategies_identical_stories(void **state)
{
	struct eng_loader *ld = eng_loader_new(4, NULL);
	struct eng_file *fm = NULL, *fr = NULL;
	char err[256];
	uint32_t u;

	(void)state;
	assert_non_null(ld);
	assert_int_equal(eng_file_open(ld, STORIES, ENG_LOAD_MMAP, &fm, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_file_open(ld, STORIES, ENG_LOAD_READ, &fr, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_file_strategy(fm), ENG_LOAD_MMAP);
	assert_int_equal(eng_file_strategy(fr), ENG_LOAD_READ);
	assert_string_equal(eng_file_path(fr), STORIES);
	assert_int_equal((uintptr_t)eng_file_data(fr) % 64, 0);
	assert_int_equal(eng_file_size(fm), 1185376);
	assert_int_equal(eng_loader_n_busy(ld), 2);
	check_same(fm, fr);
	assert_int_equal(eng_gguf_get_u32(eng_file_gguf(fr), "llama.block_count", &u), ENG_OK);
	assert_int_equal(u, 5);
	assert_int_equal(eng_file_close(fm, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_file_close(fr, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_loader_n_busy(ld), 0);
	eng_loader_free(ld);
}

static void test_strategies_identical_generated(void **state)
{
	char path[300];
	struct eng_file *fm = NULL, *fr = NULL;
	char err[256];
	const struct eng_tensor *t;

	(void)state;
	tmp_path(path, sizeof(path), "model.gguf");
	write_model(path);
	/* NULL loader: the process default pool. */
	assert_int_equal(eng_file_open(NULL, path, ENG_LOAD_MMAP, &fm, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_file_open(NULL, path, ENG_LOAD_READ, &fr, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_loader_n_slots(eng_loader_default()), ENG_LOADER_DEFAULT_SLOTS);
	check_same(fm, fr);
	t = eng_file_tensor(fm, "t.Q6_K");
	assert_non_null(t);
	assert_int_equal(t->type, ENG_TYPE_Q6_K);
	assert_int_equal(t->n_bytes, 2 * 210 * 9);
	assert_int_equal(((const uint8_t *)t->data)[1], (uint8_t)(31 + 6 * 7 + 1));
	t = eng_file_tensor(fr, "t.Q8_0");
	assert_int_equal(t->n_bytes, 16 * 34 * 6);
	assert_null(eng_file_tensor(fr, "t.nope"));
	assert_int_equal(eng_file_close(fm, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_file_close(fr, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_file_close(NULL, err, sizeof(err)), ENG_OK);
}

static void test_pool_exhaustion(void **state)
{
	struct eng_loader *ld = eng_loader_new(2, NULL);
	struct eng_file *f[3] = { NULL, NULL, NULL };
	char err[256];

	(void)state;
	assert_int_equal(eng_loader_n_slots(ld), 2);
	assert_int_equal(eng_file_open(ld, STORIES, ENG_LOAD_MMAP, &f[0], err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_file_open(ld, STORIES, ENG_LOAD_READ, &f[1], err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_file_open(ld, STORIES, ENG_LOAD_MMAP, &f[2], err, sizeof(err)), ENG_ERR_POOL_FULL);
	assert_null(f[2]);
	assert_non_null(strstr(err, "all 2 mapping slots"));
	assert_non_null(strstr(err, "stories260K.gguf"));
	/* Unloading gives the slot back. */
	assert_int_equal(eng_file_close(f[0], err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_loader_n_busy(ld), 1);
	assert_int_equal(eng_file_open(ld, STORIES, ENG_LOAD_MMAP, &f[2], err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_loader_n_busy(ld), 2);
	/* A failed open gives its slot back too. */
	assert_int_equal(eng_file_close(f[2], err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_file_open(ld, "/nonexistent/x.gguf", ENG_LOAD_MMAP, &f[2], err, sizeof(err)), ENG_ERR_IO);
	assert_int_equal(eng_loader_n_busy(ld), 1);
	/* Freeing the loader closes what is still open (ASan checks nothing leaks). */
	eng_loader_free(ld);
	assert_null(eng_loader_new(ENG_LOADER_MAX_SLOTS + 1, NULL));
	eng_loader_free(NULL);
}

/* A munmap that fails once, remembering the mapping so the test can release it. */
static int unmap_fail_left;
static void *leaked_addr;
static size_t leaked_len;
static int unmap_calls;

static int failing_unmap(void *addr, size_t len)
{
	unmap_calls++;
	if (unmap_fail_left > 0) {
		unmap_fail_left--;
		leaked_addr = addr;
		leaked_len = len;
		errno = EINVAL;
		return -1;
	}
	return munmap(addr, len);
}

static void test_failed_unmap_keeps_slot(void **state)
{
	static const struct eng_map_ops ops = { NULL, failing_unmap };
	struct eng_loader *ld = eng_loader_new(2, &ops);
	struct eng_file *a = NULL, *b = NULL, *c = NULL;
	char err[256];

	(void)state;
	unmap_fail_left = 1;
	unmap_calls = 0;
	assert_int_equal(eng_file_open(ld, STORIES, ENG_LOAD_MMAP, &a, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_file_open(ld, STORIES, ENG_LOAD_MMAP, &b, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_file_close(a, err, sizeof(err)), ENG_ERR_UNMAP);
	assert_non_null(strstr(err, "munmap"));
	assert_non_null(strstr(err, "kept busy"));
	/* The slot of the live mapping is not reused: the pool stays full. */
	assert_int_equal(eng_loader_n_busy(ld), 2);
	assert_int_equal(eng_file_open(ld, STORIES, ENG_LOAD_MMAP, &c, err, sizeof(err)), ENG_ERR_POOL_FULL);
	/* The other slot still cycles normally. */
	assert_int_equal(eng_file_close(b, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_loader_n_busy(ld), 1);
	assert_int_equal(eng_file_open(ld, STORIES, ENG_LOAD_READ, &c, err, sizeof(err)), ENG_OK);
	/* The read strategy never calls munmap. */
	assert_int_equal(eng_file_close(c, err, sizeof(err)), ENG_OK);
	assert_int_equal(unmap_calls, 2);
	eng_loader_free(ld);
	assert_int_equal(munmap(leaked_addr, leaked_len), 0);
}

struct churn {
	struct eng_loader *ld;
	int ok, full, other;
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	char err[256];

	for (int i = 0; i < 40; i++) {
		struct eng_file *f = NULL;
		enum eng_status st = eng_file_open(c->ld, STORIES, i % 2 ? ENG_LOAD_READ : ENG_LOAD_MMAP, &f, err,
						   sizeof(err));

		if (st == ENG_OK) {
			c->ok++;
			if (eng_gguf_n_tensors(eng_file_gguf(f)) != 48 || eng_file_close(f, err, sizeof(err)) != ENG_OK)
				c->other++;
		} else if (st == ENG_ERR_POOL_FULL) {
			c->full++;
		} else {
			c->other++;
		}
	}
	return NULL;
}

static void test_pool_threads(void **state)
{
	struct eng_loader *ld = eng_loader_new(2, NULL);
	struct churn c[4];
	pthread_t th[4];
	int ok = 0;

	(void)state;
	for (int i = 0; i < 4; i++) {
		c[i] = (struct churn){ .ld = ld };
		assert_int_equal(pthread_create(&th[i], NULL, churn_thread, &c[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(c[i].other, 0);
		assert_int_equal(c[i].ok + c[i].full, 40);
		ok += c[i].ok;
	}
	/* Every open either got a slot or was told the pool was full, and all
	 * slots came back. */
	assert_true(ok > 0);
	assert_int_equal(eng_loader_n_busy(ld), 0);
	eng_loader_free(ld);
}

static void test_bad_files(void **state)
{
	char path[300], err[512];
	struct eng_file *f = (struct eng_file *)1;
	static const enum eng_load_strategy strategies[] = { ENG_LOAD_MMAP, ENG_LOAD_READ };
	size_t len;
	uint8_t *buf;
	FILE *src;

	(void)state;
	for (size_t s = 0; s < 2; s++) {
		enum eng_load_strategy st = strategies[s];

		assert_int_equal(eng_file_open(NULL, "/nonexistent/m.gguf", st, &f, err, sizeof(err)), ENG_ERR_IO);
		assert_null(f);
		assert_non_null(strstr(err, "/nonexistent/m.gguf"));
		assert_non_null(strstr(err, "No such file"));
		assert_int_equal(eng_file_open(NULL, tmpdir, st, &f, err, sizeof(err)), ENG_ERR_IO);
		assert_non_null(strstr(err, "not a regular file"));
		/* A FIFO with no writer: refused at once, not a hang. */
		tmp_path(path, sizeof(path), "fifo.gguf");
		if (s == 0)
			assert_int_equal(mkfifo(path, 0600), 0);
		assert_int_equal(eng_file_open(NULL, path, st, &f, err, sizeof(err)), ENG_ERR_IO);
		assert_non_null(strstr(err, "not a regular file"));

		tmp_path(path, sizeof(path), "empty.gguf");
		write_bytes(path, "", 0);
		assert_int_equal(eng_file_open(NULL, path, st, &f, err, sizeof(err)), ENG_ERR_TRUNCATED);
		assert_non_null(strstr(err, "empty.gguf"));

		tmp_path(path, sizeof(path), "text.gguf");
		write_bytes(path, "hello world", 11);
		assert_int_equal(eng_file_open(NULL, path, st, &f, err, sizeof(err)), ENG_ERR_FORMAT);
		assert_non_null(strstr(err, "text.gguf: header: bad magic"));
	}
	/* A model cut short on disk: the last tensor reaches past EOF, refused by
	 * both strategies with the tensor named. */
	src = fopen(STORIES, "rb");
	assert_non_null(src);
	buf = malloc(1185376);
	assert_non_null(buf);
	len = fread(buf, 1, 1185376, src);
	fclose(src);
	assert_int_equal(len, 1185376);
	tmp_path(path, sizeof(path), "cut.gguf");
	write_bytes(path, buf, len - 100);
	free(buf);
	for (size_t s = 0; s < 2; s++) {
		assert_int_equal(eng_file_open(NULL, path, strategies[s], &f, err, sizeof(err)), ENG_ERR_TRUNCATED);
		assert_non_null(strstr(err, "cut.gguf: tensor '"));
		assert_non_null(strstr(err, "reach past the end of the file"));
	}
	assert_int_equal(eng_loader_n_busy(eng_loader_default()), 0);
	assert_int_equal(eng_file_open(NULL, STORIES, ENG_LOAD_COUNT, &f, err, sizeof(err)), ENG_ERR_ARG);
}

static void test_strategy_names(void **state)
{
	enum eng_load_strategy s;

	(void)state;
	assert_string_equal(eng_load_strategy_name(ENG_LOAD_MMAP), "mmap");
	assert_string_equal(eng_load_strategy_name(ENG_LOAD_READ), "read");
	assert_null(eng_load_strategy_name(ENG_LOAD_COUNT));
	assert_int_equal(eng_load_strategy_parse("read", &s), ENG_OK);
	assert_int_equal(s, ENG_LOAD_READ);
	assert_int_equal(eng_load_strategy_parse("mmap", &s), ENG_OK);
	assert_int_equal(s, ENG_LOAD_MMAP);
	assert_int_equal(eng_load_strategy_parse("MMAP", &s), ENG_ERR_ARG);
	assert_int_equal(eng_load_strategy_parse(NULL, &s), ENG_ERR_ARG);
}

/* ---- a model file that changes on disk (issue 11 defect 10) ------------- */

static void copy_file(const char *from, const char *to)
{
	size_t n;
	void *p = NULL;
	FILE *f = fopen(from, "rb");

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = (size_t)ftell(f);
	rewind(f);
	p = malloc(n);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, n, f), n);
	fclose(f);
	write_bytes(to, p, n);
	free(p);
}

/* A tensor whose bytes all lie past the first 8 KiB of the file. */
static const struct eng_tensor *far_tensor(const struct eng_file *f)
{
	const struct eng_tensor *t = eng_file_tensor(f, "token_embd.weight");

	assert_non_null(t);
	assert_true(t->offset >= 8192);
	return t;
}

/* Before the fix: SIGBUS killed the process at the first read of a page past
 * the new end. Now the read returns zeros, the file is marked damaged, and
 * the check names the file and what happened. */
static void test_defect_11_10_truncated_mapping_survives(void **state)
{
	char path[300], err[512];
	struct eng_file *f = NULL;
	const struct eng_tensor *t;
	volatile const uint8_t *p;
	uint8_t sum = 0;

	(void)state;
	tmp_path(path, sizeof(path), "trunc.gguf");
	copy_file(STORIES, path);
	assert_int_equal(eng_file_open(NULL, path, ENG_LOAD_MMAP, &f, err, sizeof(err)), ENG_OK);
	assert_true(eng_load_fault_guard_active());
	assert_false(eng_file_damaged(f));
	assert_int_equal(eng_file_check(f, err, sizeof(err)), ENG_OK);
	t = far_tensor(f);
	p = t->data;
	for (uint64_t i = 0; i < t->n_bytes; i += 512)
		sum |= p[i];
	assert_true(sum != 0); /* real weights before */

	assert_int_equal(truncate(path, 4096), 0);
	sum = 0;
	for (uint64_t i = 0; i < t->n_bytes; i += 512)
		sum |= p[i]; /* faults: the handler maps zeros */
	assert_int_equal(sum, 0);
	/* only the fault handler can have said so: no check ran since */
	assert_true(eng_file_damaged(f));
	assert_int_equal(eng_file_check(f, err, sizeof(err)), ENG_ERR_CHANGED);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "truncated from 1185376 to 4096 bytes"));
	assert_non_null(strstr(err, "reload it"));
	assert_string_equal(eng_strerror(ENG_ERR_CHANGED),
	                    "the model file changed on disk while in use: reload it");
	assert_int_equal(eng_file_close(f, err, sizeof(err)), ENG_OK);

	/* a fresh load of what is left is refused as usual, and nothing stays
	 * watched from the closed file */
	assert_int_not_equal(eng_file_open(NULL, path, ENG_LOAD_MMAP, &f, err, sizeof(err)), ENG_OK);
}

/* An evaluation running while the file is truncated finishes (on zeros);
 * the model reports the damage instead of the process dying. */
static void test_defect_11_10_eval_on_truncated_model(void **state)
{
	char path[300], err[512];
	struct eng_file *f = NULL;
	struct eng_model *m = NULL;
	struct eng_kv *kv = NULL;
	struct eng_compute *c = NULL;
	struct eng_seq seq;
	struct eng_model_opts mo = {.release_source = 1};
	struct eng_compute_opts co = {.n_threads = 2, .max_ctx = 32};
	const int32_t toks[4] = {1, 403, 407, 261};
	const float *logits;

	(void)state;
	tmp_path(path, sizeof(path), "eval.gguf");
	copy_file(STORIES, path);
	assert_int_equal(eng_file_open(NULL, path, ENG_LOAD_MMAP, &f, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_model_new(eng_file_gguf(f), &mo, &m, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_kv_new(m, 32, &kv, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_kv_reserve(kv, 32, &seq), ENG_OK);
	assert_int_equal(eng_compute_new(m, &co, &c, err, sizeof(err)), ENG_OK);
	assert_int_equal(eng_forward_seq(c, kv, &seq, toks, 2, 0, &logits, err, sizeof(err)), ENG_OK);
	assert_false(eng_file_damaged(f));

	assert_int_equal(truncate(path, 4096), 0);
	/* the embedding rows live past 4 KiB in the file: this reads them */
	enum eng_status st = eng_forward_seq(c, kv, &seq, toks + 2, 2, 2, &logits, err, sizeof(err));
	(void)st; /* computed on zeros: whatever it says, the damage check decides */
	assert_true(eng_file_damaged(f));
	assert_int_equal(eng_file_check(f, err, sizeof(err)), ENG_ERR_CHANGED);
	assert_non_null(strstr(err, "changed on disk"));
	eng_compute_free(c);
	eng_kv_free(kv);
	eng_model_free(m);
	assert_int_equal(eng_file_close(f, err, sizeof(err)), ENG_OK);
}

/* Rewritten in place at the same size: no fault ever comes, the pages may
 * hold other bytes; fstat sees the new modification time. Replaced by
 * rename: the mapping keeps the old inode and stays valid. */
static void test_defect_11_10_rewrite_and_rename(void **state)
{
	char path[300], other[300], err[512];
	struct eng_file *f = NULL;
	struct stat sb;
	const struct eng_tensor *t;
	uint8_t before[64];
	int fd;

	(void)state;
	tmp_path(path, sizeof(path), "rewrite.gguf");
	copy_file(STORIES, path);
	assert_int_equal(eng_file_open(NULL, path, ENG_LOAD_MMAP, &f, err, sizeof(err)), ENG_OK);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\xff", 1, 100000), 1);
	assert_int_equal(fstat(fd, &sb), 0);
	/* a whole second later: coarse file-system clocks would hide a rewrite
	 * made in the same tick as the load */
	struct timespec ts[2] = {sb.st_atim, sb.st_mtim};
	ts[1].tv_sec += 1;
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
	assert_int_equal(eng_file_check(f, err, sizeof(err)), ENG_ERR_CHANGED);
	assert_non_null(strstr(err, "rewritten in place"));
	assert_true(eng_file_damaged(f));
	assert_int_equal(eng_file_close(f, err, sizeof(err)), ENG_OK);

	copy_file(STORIES, path);
	assert_int_equal(eng_file_open(NULL, path, ENG_LOAD_MMAP, &f, err, sizeof(err)), ENG_OK);
	t = far_tensor(f);
	memcpy(before, t->data, sizeof(before));
	tmp_path(other, sizeof(other), "other.gguf");
	write_bytes(other, "GGUF", 4);
	assert_int_equal(rename(other, path), 0);
	assert_int_equal(eng_file_check(f, err, sizeof(err)), ENG_OK);
	assert_memory_equal(t->data, before, sizeof(before));
	assert_false(eng_file_damaged(f));
	assert_int_equal(eng_file_close(f, err, sizeof(err)), ENG_OK);

	/* read copies are immune */
	copy_file(STORIES, path);
	assert_int_equal(eng_file_open(NULL, path, ENG_LOAD_READ, &f, err, sizeof(err)), ENG_OK);
	assert_int_equal(truncate(path, 4096), 0);
	assert_int_equal(eng_file_check(f, err, sizeof(err)), ENG_OK);
	assert_false(eng_file_damaged(f));
	assert_int_equal(eng_file_close(f, err, sizeof(err)), ENG_OK);
}

/* The handler takes only faults inside our mappings: a SIGBUS anywhere else
 * goes to the handler before it (here the default action: the process dies
 * of SIGBUS as it did before). */
static void test_defect_11_10_other_sigbus_still_fatal(void **state)
{
	char path[300];
	int st;

	(void)state;
	tmp_path(path, sizeof(path), "keep.gguf");
	copy_file(STORIES, path);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char other[300], err[512];
		struct eng_file *f = NULL;
		volatile const char *p;
		int fd;

		/* cmocka's own SIGBUS handler would resume the test run in
		 * this child: start from the default action instead */
		signal(SIGBUS, SIG_DFL);
		if (eng_file_open(NULL, path, ENG_LOAD_MMAP, &f, err, sizeof(err)) != ENG_OK ||
		    !eng_load_fault_guard_active())
			_exit(3);
		tmp_path(other, sizeof(other), "plain.bin");
		fd = open(other, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || ftruncate(fd, 1 << 16) != 0)
			_exit(4);
		p = mmap(NULL, 1 << 16, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED || ftruncate(fd, 0) != 0)
			_exit(5);
		(void)p[1 << 15]; /* not ours: must not be swallowed */
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGBUS)
		fail_msg("the child should die of SIGBUS: %s %d", WIFSIGNALED(st) ? "signal" : "exit",
		         WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strategies_identical_stories),
		cmocka_unit_test(test_strategies_identical_generated),
		cmocka_unit_test(test_pool_exhaustion),
		cmocka_unit_test(test_failed_unmap_keeps_slot),
		cmocka_unit_test(test_pool_threads),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_strategy_names),
		cmocka_unit_test(test_defect_11_10_truncated_mapping_survives),
		cmocka_unit_test(test_defect_11_10_eval_on_truncated_model),
		cmocka_unit_test(test_defect_11_10_rewrite_and_rename),
		cmocka_unit_test(test_defect_11_10_other_sigbus_still_fatal),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
