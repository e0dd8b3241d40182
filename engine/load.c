/* GGUF loading strategies (mmap / read), the bounded pool of mapping slots,
 * and the watch that lets a process survive its mapped model file being
 * truncated or rewritten (see "A model file that changes on disk" below). */
#include "engine/load.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
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
	/* mmap only: */
	int fd;                 /* kept open to fstat the very file mapped (-1: none) */
	int watch;              /* index in watched[] (-1: none) */
	struct timespec mtime;  /* at load */
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

/* ---- A model file that changes on disk ------------------------------------
 *
 * A MAP_SHARED or MAP_PRIVATE file mapping reads the file's page cache: when
 * the file is truncated in place (`truncate`, `cp new old`, a download
 * restarted over it), every page past the new end is gone and the next read
 * of one raises SIGBUS, which kills the process. (Replacing the file by
 * rename is harmless: the mapping keeps the old inode alive.) A server must
 * not die of it, so:
 *
 *  - every mapping is registered in watched[] (a fixed table, lock-free for
 *    the handler); a process-wide SIGBUS handler, installed with the first
 *    mapping, looks the fault address up there. When it lies in one of our
 *    mappings it maps anonymous zero pages over the rest of that mapping
 *    (MAP_FIXED: the faulting instruction then reads zeros and the
 *    computation runs to its end), and marks the file damaged (an atomic
 *    flag). Any other SIGBUS goes to the previous handler (or the default
 *    action), so real bugs still crash and sanitizers still report them.
 *    mmap is not on POSIX's async-signal-safe list but is a plain system
 *    call on Linux;
 *  - eng_file_check() (one fstat of the file we mapped, kept open) also sees
 *    a truncation before any page is touched, and a rewrite in place (size
 *    or mtime changed: the pages may hold other bytes, no fault ever comes);
 *  - callers check between steps (eng_file_damaged: an atomic load) and fail
 *    the affected requests with eng_file_check's message; the model must be
 *    closed and loaded again.
 *
 * The read strategy copies the file and is immune (nothing to watch).
 */

#define WATCH_MAX 1024 /* mapped files watched at once in one process */

/* Under AddressSanitizer, ASan owns SIGBUS (handle_sigbus=1) and ignores a
 * program's sigaction(SIGBUS) unless allow_user_segv_handler=1: the default
 * of current toolchains (GCC 12, clang 14), set here so an older one does
 * not silently keep the handler out. Faults that are not ours still reach
 * ASan's handler through chain_sigbus. ASAN_OPTIONS overrides this. Every
 * program with the loader links this file once, so this is its only
 * definition. */
#if defined(__SANITIZE_ADDRESS__)
#define LW_LOAD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LW_LOAD_ASAN 1
#endif
#endif
#ifdef LW_LOAD_ASAN
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allow_user_segv_handler=1";
}
#endif

enum watch_damage {
	DAMAGE_NONE = 0,
	DAMAGE_FAULT,     /* a page past the file's end was read (SIGBUS) */
	DAMAGE_TRUNCATED, /* fstat: smaller than when mapped */
	DAMAGE_REWRITTEN, /* fstat: size or mtime changed, may hold other bytes */
};

struct watched_map {
	_Atomic uintptr_t start; /* 0: entry free */
	_Atomic uintptr_t end;   /* page-rounded end of the mapping */
	atomic_int damage;       /* enum watch_damage; the first cause stays */
	bool used;               /* taken (under watch_mu) */
};

static struct watched_map watched[WATCH_MAX];
static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction prev_sigbus;
static uintptr_t page_size;

/* Hands a SIGBUS that is not ours to whoever had it before. */
static void chain_sigbus(int sig, siginfo_t *si, void *uctx)
{
	if ((prev_sigbus.sa_flags & SA_SIGINFO) && prev_sigbus.sa_sigaction) {
		prev_sigbus.sa_sigaction(sig, si, uctx);
	} else if (prev_sigbus.sa_handler == SIG_DFL || prev_sigbus.sa_handler == SIG_IGN) {
		/* Back to the default action; returning re-runs the faulting
		 * instruction, which now kills the process as it would have. */
		struct sigaction dfl;

		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		sigemptyset(&dfl.sa_mask);
		sigaction(SIGBUS, &dfl, NULL);
	} else {
		prev_sigbus.sa_handler(sig);
	}
}

static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	int saved = errno;

	/* Only a fault the kernel raised has a meaningful address (kill()'s
	 * si_addr holds other fields). */
	for (size_t i = 0; si->si_code > 0 && i < WATCH_MAX; i++) {
		uintptr_t s = atomic_load_explicit(&watched[i].start, memory_order_acquire);
		uintptr_t e = atomic_load_explicit(&watched[i].end, memory_order_acquire);

		if (!s || a < s || a >= e)
			continue;
		uintptr_t pg = a & ~(page_size - 1);
		if (mmap((void *)pg, e - pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
		    MAP_FAILED)
			break;
		int none = DAMAGE_NONE;
		atomic_compare_exchange_strong(&watched[i].damage, &none, DAMAGE_FAULT);
		errno = saved;
		return;
	}
	errno = saved;
	chain_sigbus(sig, si, uctx);
}

static bool handler_is_ours(void)
{
	struct sigaction now;

	return sigaction(SIGBUS, NULL, &now) == 0 && (now.sa_flags & SA_SIGINFO) &&
	       now.sa_sigaction == on_sigbus;
}

/* Puts the handler in place, chaining to whatever held SIGBUS before. Run
 * at every mapping (under watch_mu), not once: a handler installed later by
 * someone else (a test framework, an application) would otherwise displace
 * ours for good; re-installing chains to theirs. */
static void ensure_handler(void)
{
	struct sigaction sa, old;

	if (!page_size) {
		long ps = sysconf(_SC_PAGESIZE);
		page_size = ps > 0 ? (uintptr_t)ps : 4096;
	}
	if (handler_is_ours())
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &old) == 0)
		prev_sigbus = old; /* not ours: checked above */
	/* A sanitizer may ignore the call (ASan with allow_user_segv_handler=0);
	 * eng_load_fault_guard_active() then says so. */
}

bool eng_load_fault_guard_active(void)
{
	return handler_is_ours();
}

/* Watches [<p>, <p>+<len>); returns the entry or -1 when the table is full. */
static int watch_add(const void *p, uint64_t len)
{
	int idx = -1;

	pthread_mutex_lock(&watch_mu);
	ensure_handler();
	for (int i = 0; i < WATCH_MAX && idx < 0; i++) {
		if (!watched[i].used) {
			uintptr_t s = (uintptr_t)p;
			uintptr_t e = (s + (uintptr_t)len + page_size - 1) & ~(page_size - 1);

			watched[i].used = true;
			atomic_store(&watched[i].damage, DAMAGE_NONE);
			atomic_store_explicit(&watched[i].end, e, memory_order_release);
			atomic_store_explicit(&watched[i].start, s, memory_order_release);
			idx = i;
		}
	}
	pthread_mutex_unlock(&watch_mu);
	return idx;
}

/* Stops watching entry <i> (before the mapping goes away). */
static void watch_remove(int i)
{
	if (i < 0)
		return;
	pthread_mutex_lock(&watch_mu);
	atomic_store_explicit(&watched[i].start, 0, memory_order_release);
	atomic_store_explicit(&watched[i].end, 0, memory_order_release);
	watched[i].used = false;
	pthread_mutex_unlock(&watch_mu);
}

bool eng_file_damaged(const struct eng_file *f)
{
	return f && f->watch >= 0 && atomic_load(&watched[f->watch].damage) != DAMAGE_NONE;
}

enum eng_status eng_file_check(const struct eng_file *f, char *err, size_t err_len)
{
	struct stat sb;
	int damage, now = DAMAGE_NONE;
	bool have_stat;

	if (err && err_len)
		err[0] = 0;
	if (!f || f->watch < 0)
		return ENG_OK; /* a read copy: immune */
	have_stat = fstat(f->fd, &sb) == 0;
	if (have_stat && (uint64_t)sb.st_size < f->size)
		now = DAMAGE_TRUNCATED;
	else if (have_stat && ((uint64_t)sb.st_size != f->size || sb.st_mtim.tv_sec != f->mtime.tv_sec ||
	                       sb.st_mtim.tv_nsec != f->mtime.tv_nsec))
		now = DAMAGE_REWRITTEN;
	if (now != DAMAGE_NONE) {
		int none = DAMAGE_NONE;
		atomic_compare_exchange_strong(&watched[f->watch].damage, &none, now);
	}
	damage = atomic_load(&watched[f->watch].damage);
	if (damage == DAMAGE_NONE)
		return ENG_OK;
	if (have_stat && (uint64_t)sb.st_size < f->size)
		fmt_err(err, err_len, "model file %s changed on disk (truncated from %" PRIu64 " to %lld "
		        "bytes) while in use: its weights are gone; reload it", f->path, f->size,
		        (long long)sb.st_size);
	else if (damage == DAMAGE_FAULT)
		fmt_err(err, err_len, "model file %s changed on disk (truncated: reading its weights "
		        "failed) while in use: reload it", f->path);
	else
		fmt_err(err, err_len, "model file %s changed on disk (rewritten in place: size or "
		        "modification time changed) while in use: reload it", f->path);
	return ENG_ERR_CHANGED;
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

		/* Unwatched first: once unmapped, the addresses may be reused.
		 * Not watched again when munmap fails: whether the range is
		 * still ours is unknown, and swallowing a fault in someone
		 * else's memory is worse than losing the watch of a lost slot. */
		watch_remove(f->watch);
		f->watch = -1;
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
	f->fd = -1;
	f->watch = -1;
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
	f->mtime = sb.st_mtim;
	st = strategy == ENG_LOAD_MMAP ? do_map(f, fd, err, err_len) : do_read(f, fd, err, err_len);
	if (st)
		goto fail;
	if (strategy == ENG_LOAD_MMAP) {
		f->watch = watch_add(f->data, f->size);
		if (f->watch < 0) {
			fmt_err(err, err_len, "%s: more than %d model files mapped in this process", path,
				WATCH_MAX);
			st = ENG_ERR_POOL_FULL;
			goto fail;
		}
		f->fd = fd; /* kept: eng_file_check fstats the very file mapped */
	} else {
		close(fd);
	}
	fd = -1;
	st = eng_gguf_parse(f->data, (size_t)f->size, &f->g, perr, sizeof(perr));
	if (st == ENG_OK && eng_file_check(f, perr, sizeof(perr)) != ENG_OK)
		st = ENG_ERR_CHANGED; /* changed while being parsed: zeros were read */
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
		bool lost;

		eng_gguf_free(f->g);
		lost = release_data(f, NULL, 0) == ENG_ERR_UNMAP;
		if (f->fd >= 0)
			close(f->fd);
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
	if (f->fd >= 0)
		close(f->fd);
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
