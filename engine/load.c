/* GGUF loading strategies (mmap / read) and the bounded pool of mapping slots. */
#include "engine/load.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOAD_ALIGN 64
#define LOAD_PATH_MAX 4096

enum slot_state {
	SLOT_FREE = 0,
	SLOT_BUSY,  /* held by an open eng_file */
	SLOT_LOST,  /* munmap failed: the mapping may be live, never reuse */
};

struct eng_loader {
	pthread_mutex_t mu;
	const struct eng_map_ops *ops;
	uint32_t n_slots;
	uint32_t n_busy;
	enum slot_state *state;
	struct eng_file **files; /* the open file holding each busy slot */
};

struct eng_file {
	struct eng_loader *ld;
	uint32_t slot;
	enum eng_load_strategy strategy;
	char *path;
	void *data;
	uint64_t size;
	struct eng_gguf *g;
};

static void fmt_err(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fmt_err(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (!err || err_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

static const char *const strategy_names[ENG_LOAD_COUNT] = { "mmap", "read" };

const char *eng_load_strategy_name(enum eng_load_strategy s)
{
	return (unsigned)s < ENG_LOAD_COUNT ? strategy_names[s] : NULL;
}

enum eng_status eng_load_strategy_parse(const char *s, enum eng_load_strategy *out)
{
	for (unsigned i = 0; s && i < ENG_LOAD_COUNT; i++) {
		if (strcmp(s, strategy_names[i]) == 0) {
			*out = (enum eng_load_strategy)i;
			return ENG_OK;
		}
	}
	return ENG_ERR_ARG;
}

/* ---- the pool ---------------------------------------------------------- */

struct eng_loader *eng_loader_new(uint32_t n_slots, const struct eng_map_ops *ops)
{
	struct eng_loader *ld;

	if (n_slots == 0)
		n_slots = ENG_LOADER_DEFAULT_SLOTS;
	if (n_slots > ENG_LOADER_MAX_SLOTS)
		return NULL;
	ld = calloc(1, sizeof(*ld));
	if (!ld)
		return NULL;
	ld->state = calloc(n_slots, sizeof(*ld->state));
	ld->files = calloc(n_slots, sizeof(*ld->files));
	if (!ld->state || !ld->files || pthread_mutex_init(&ld->mu, NULL) != 0) {
		free(ld->state);
		free(ld->files);
		free(ld);
		return NULL;
	}
	ld->n_slots = n_slots;
	ld->ops = ops;
	return ld;
}

void eng_loader_free(struct eng_loader *ld)
{
	if (!ld)
		return;
	for (uint32_t i = 0; i < ld->n_slots; i++) {
		if (ld->state[i] == SLOT_BUSY && ld->files[i]) {
			/* The pool is going away: an unmap failure has no one to tell. */
			enum eng_status st = eng_file_close(ld->files[i], NULL, 0);
			(void)st;
		}
	}
	pthread_mutex_destroy(&ld->mu);
	free(ld->state);
	free(ld->files);
	free(ld);
}

uint32_t eng_loader_n_slots(const struct eng_loader *ld)
{
	return ld->n_slots;
}

uint32_t eng_loader_n_busy(const struct eng_loader *ld)
{
	struct eng_loader *m = (struct eng_loader *)ld; /* locking is not a logical change */
	uint32_t n;

	pthread_mutex_lock(&m->mu);
	n = m->n_busy;
	pthread_mutex_unlock(&m->mu);
	return n;
}

static struct eng_loader *default_loader;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_init(void)
{
	default_loader = eng_loader_new(ENG_LOADER_DEFAULT_SLOTS, NULL);
}

struct eng_loader *eng_loader_default(void)
{
	pthread_once(&default_once, default_init);
	return default_loader;
}

/* Takes a free slot for <f>; false if none. */
static bool slot_take(struct eng_loader *ld, struct eng_file *f)
{
	bool ok = false;

	pthread_mutex_lock(&ld->mu);
	for (uint32_t i = 0; i < ld->n_slots; i++) {
		if (ld->state[i] == SLOT_FREE) {
			ld->state[i] = SLOT_BUSY;
			ld->files[i] = f;
			ld->n_busy++;
			f->slot = i;
			ok = true;
			break;
		}
	}
	pthread_mutex_unlock(&ld->mu);
	return ok;
}

/* Gives slot <i> back, or marks it lost for good when <lost>. */
static void slot_release(struct eng_loader *ld, uint32_t i, bool lost)
{
	pthread_mutex_lock(&ld->mu);
	ld->files[i] = NULL;
	if (lost) {
		ld->state[i] = SLOT_LOST;
	} else {
		ld->state[i] = SLOT_FREE;
		ld->n_busy--;
	}
	pthread_mutex_unlock(&ld->mu);
}

/* ---- mapping / reading ------------------------------------------------- */

static void *sys_map(size_t len, int fd)
{
	return mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
}

static int sys_unmap(void *addr, size_t len)
{
	return munmap(addr, len);
}

static enum eng_status do_map(struct eng_file *f, int fd, char *err, size_t err_len)
{
	const struct eng_map_ops *ops = f->ld->ops;
	void *(*map)(size_t, int) = ops && ops->map ? ops->map : sys_map;
	void *p = map((size_t)f->size, fd);

	if (p == MAP_FAILED) {
		fmt_err(err, err_len, "%s: mmap of %" PRIu64 " bytes failed: %s", f->path, f->size, strerror(errno));
		return ENG_ERR_IO;
	}
	f->data = p;
	return ENG_OK;
}

static enum eng_status do_read(struct eng_file *f, int fd, char *err, size_t err_len)
{
	uint8_t *buf = NULL;
	uint64_t got = 0;
	int rc = posix_memalign((void **)&buf, LOAD_ALIGN, (size_t)f->size);

	if (rc != 0) {
		fmt_err(err, err_len, "%s: cannot allocate %" PRIu64 " bytes: %s", f->path, f->size, strerror(rc));
		return ENG_ERR_NOMEM;
	}
	while (got < f->size) {
		size_t want = f->size - got > (1u << 30) ? (1u << 30) : (size_t)(f->size - got);
		ssize_t n = pread(fd, buf + got, want, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fmt_err(err, err_len, "%s: read at offset %" PRIu64 " failed: %s", f->path, got, strerror(errno));
			free(buf);
			return ENG_ERR_IO;
		}
		if (n == 0) {
			fmt_err(err, err_len, "%s: file shrank to %" PRIu64 " bytes while being read (expected %" PRIu64 ")",
				f->path, got, f->size);
			free(buf);
			return ENG_ERR_IO;
		}
		got += (uint64_t)n;
	}
	f->data = buf;
	return ENG_OK;
}

/* Releases <f>'s bytes; ENG_ERR_UNMAP if munmap failed. */
static enum eng_status release_data(struct eng_file *f, char *err, size_t err_len)
{
	enum eng_status st = ENG_OK;

	if (!f->data)
		return ENG_OK;
	if (f->strategy == ENG_LOAD_MMAP) {
		const struct eng_map_ops *ops = f->ld->ops;
		int (*unmap)(void *, size_t) = ops && ops->unmap ? ops->unmap : sys_unmap;

		if (unmap(f->data, (size_t)f->size) != 0) {
			fmt_err(err, err_len, "%s: munmap of %" PRIu64 " bytes failed: %s (slot %u kept busy)",
				f->path, f->size, strerror(errno), f->slot);
			st = ENG_ERR_UNMAP;
		}
	} else {
		free(f->data);
	}
	f->data = NULL;
	return st;
}

enum eng_status eng_file_open(struct eng_loader *ld, const char *path, enum eng_load_strategy strategy,
			      struct eng_file **out, char *err, size_t err_len)
{
	struct eng_file *f = NULL;
	struct stat sb;
	enum eng_status st;
	int fd = -1;
	bool have_slot = false;
	char perr[320];

	if (err && err_len)
		err[0] = 0;
	if (!out || !path || (unsigned)strategy >= ENG_LOAD_COUNT) {
		fmt_err(err, err_len, "eng_file_open: invalid argument");
		return ENG_ERR_ARG;
	}
	*out = NULL;
	if (strlen(path) >= LOAD_PATH_MAX) {
		fmt_err(err, err_len, "path longer than %d bytes", LOAD_PATH_MAX);
		return ENG_ERR_ARG;
	}
	if (!ld)
		ld = eng_loader_default();
	if (!ld) {
		fmt_err(err, err_len, "%s: out of memory for the default loader", path);
		return ENG_ERR_NOMEM;
	}
	f = calloc(1, sizeof(*f));
	if (!f || !(f->path = strdup(path))) {
		fmt_err(err, err_len, "%s: out of memory", path);
		st = ENG_ERR_NOMEM;
		goto fail;
	}
	f->ld = ld;
	f->strategy = strategy;
	if (!slot_take(ld, f)) {
		fmt_err(err, err_len, "%s: all %u mapping slots of the loader are busy", path, ld->n_slots);
		st = ENG_ERR_POOL_FULL;
		goto fail;
	}
	have_slot = true;
	/* O_NONBLOCK: opening a FIFO must not hang the caller; it is refused
	 * below as not a regular file (no effect on regular files). */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		fmt_err(err, err_len, "%s: cannot open: %s", path, strerror(errno));
		st = ENG_ERR_IO;
		goto fail;
	}
	if (fstat(fd, &sb) != 0) {
		fmt_err(err, err_len, "%s: cannot stat: %s", path, strerror(errno));
		st = ENG_ERR_IO;
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		fmt_err(err, err_len, "%s: not a regular file", path);
		st = ENG_ERR_IO;
		goto fail;
	}
	if (sb.st_size < 4) {
		fmt_err(err, err_len, "%s: %lld bytes, too short for a GGUF file", path, (long long)sb.st_size);
		st = ENG_ERR_TRUNCATED;
		goto fail;
	}
	if ((uint64_t)sb.st_size > SIZE_MAX) {
		fmt_err(err, err_len, "%s: too large for this address space", path);
		st = ENG_ERR_LIMIT;
		goto fail;
	}
	f->size = (uint64_t)sb.st_size;
	st = strategy == ENG_LOAD_MMAP ? do_map(f, fd, err, err_len) : do_read(f, fd, err, err_len);
	if (st)
		goto fail;
	close(fd);
	fd = -1;
	st = eng_gguf_parse(f->data, (size_t)f->size, &f->g, perr, sizeof(perr));
	if (st) {
		fmt_err(err, err_len, "%s: %s", path, perr);
		goto fail;
	}
	*out = f;
	return ENG_OK;
fail:
	if (fd >= 0)
		close(fd);
	if (f) {
		bool lost = release_data(f, NULL, 0) == ENG_ERR_UNMAP;

		if (have_slot)
			slot_release(ld, f->slot, lost);
		free(f->path);
		free(f);
	}
	return st;
}

enum eng_status eng_file_close(struct eng_file *f, char *err, size_t err_len)
{
	enum eng_status st;

	if (err && err_len)
		err[0] = 0;
	if (!f)
		return ENG_OK;
	eng_gguf_free(f->g);
	f->g = NULL;
	st = release_data(f, err, err_len);
	slot_release(f->ld, f->slot, st == ENG_ERR_UNMAP);
	free(f->path);
	free(f);
	return st;
}

const struct eng_gguf *eng_file_gguf(const struct eng_file *f) { return f->g; }
enum eng_load_strategy eng_file_strategy(const struct eng_file *f) { return f->strategy; }
const char *eng_file_path(const struct eng_file *f) { return f->path; }
const void *eng_file_data(const struct eng_file *f) { return f->data; }
uint64_t eng_file_size(const struct eng_file *f) { return f->size; }

const struct eng_tensor *eng_file_tensor(const struct eng_file *f, const char *name)
{
	return eng_gguf_tensor(f->g, name);
}
