/* Loading a GGUF file from disk. Two strategies give byte-identical tensors:
 *  - mmap (default): MAP_PRIVATE, PROT_READ mapping of the whole file;
 *  - read: pread into one 64-byte-aligned heap buffer (for filesystems where
 *    mmap is wrong).
 * Each open file holds one slot of its loader's bounded pool until it is
 * closed; closing releases the mapping explicitly (munmap). A failed munmap
 * keeps the slot marked busy for good (a live mapping is never reused) and is
 * reported to the caller. A mapped file keeps its descriptor open and is
 * watched for being truncated or rewritten on disk (see the end of this
 * header). */
#ifndef LW_ENGINE_LOAD_H
#define LW_ENGINE_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

enum eng_load_strategy {
	ENG_LOAD_MMAP = 0,
	ENG_LOAD_READ,
	ENG_LOAD_COUNT
};

#define ENG_LOADER_DEFAULT_SLOTS 16
#define ENG_LOADER_MAX_SLOTS 256

/* "mmap" / "read"; NULL if out of range. */
const char *eng_load_strategy_name(enum eng_load_strategy s);
/* Parses "mmap" / "read" into *<out>; ENG_ERR_ARG otherwise. */
ENG_WUR enum eng_status eng_load_strategy_parse(const char *s, enum eng_load_strategy *out);

/* How the loader maps and unmaps; swappable so tests can make munmap fail.
 * NULL members mean the system call. */
struct eng_map_ops {
	void *(*map)(size_t len, int fd);         /* returns MAP_FAILED on error */
	int (*unmap)(void *addr, size_t len);     /* 0 or -1 with errno */
};

/* A pool of <n_slots> mapping slots (0 → ENG_LOADER_DEFAULT_SLOTS; more than
 * ENG_LOADER_MAX_SLOTS → NULL). <ops> may be NULL (system calls); when given
 * it is borrowed and must outlive the loader. Thread-safe: files may be
 * opened and closed from several threads. NULL on allocation failure. */
struct eng_loader *eng_loader_new(uint32_t n_slots, const struct eng_map_ops *ops);
/* Closes every file still open (their eng_gguf views become invalid) and
 * frees the loader. NULL is a no-op. */
void eng_loader_free(struct eng_loader *ld);
uint32_t eng_loader_n_slots(const struct eng_loader *ld);
uint32_t eng_loader_n_busy(const struct eng_loader *ld); /* open files + slots lost to failed munmap */

/* The process-wide default loader (ENG_LOADER_DEFAULT_SLOTS slots), created
 * on first use; never freed. Passing NULL as a loader below means this one. */
struct eng_loader *eng_loader_default(void);

struct eng_file; /* opaque: one open, parsed GGUF */

/* Opens <path> with <strategy> using one slot of <ld> (NULL = default
 * loader) and parses it. On success *<out> is the caller's (eng_file_close).
 * Errors: ENG_ERR_IO (open/stat/read/mmap, naming the path and errno),
 * ENG_ERR_POOL_FULL (the loader's slots, or more than 1024 files mapped in
 * the process), ENG_ERR_CHANGED (the file changed while being parsed), or
 * any eng_gguf_parse status; <err> names the path and what the parser
 * said. */
ENG_WUR enum eng_status eng_file_open(struct eng_loader *ld, const char *path,
				      enum eng_load_strategy strategy,
				      struct eng_file **out, char *err, size_t err_len);
/* Unloads <f>: frees the parsed view and releases its memory (munmap or
 * free), then its slot. If munmap fails the slot stays busy, ENG_ERR_UNMAP is
 * returned and <err> says why; <f> is freed in every case. NULL → ENG_OK. */
ENG_WUR enum eng_status eng_file_close(struct eng_file *f, char *err, size_t err_len);

/* The parsed view (tensor data pointers point into the loaded bytes). */
const struct eng_gguf *eng_file_gguf(const struct eng_file *f);
enum eng_load_strategy eng_file_strategy(const struct eng_file *f);
const char *eng_file_path(const struct eng_file *f);
/* The loaded bytes: the whole file, <size> bytes, 64-byte aligned or better. */
const void *eng_file_data(const struct eng_file *f);
uint64_t eng_file_size(const struct eng_file *f);

/* Shorthand for eng_gguf_tensor(eng_file_gguf(f), name). */
const struct eng_tensor *eng_file_tensor(const struct eng_file *f, const char *name);

/* ---- a model file that changes on disk ------------------------------------
 * Truncating a mapped file in place makes every read of a page past its new
 * end raise SIGBUS. The loader survives it: a SIGBUS handler installed with
 * the first mapping maps zero pages over the rest of a faulting mapping of
 * ours (the computation finishes on zeros) and marks the file damaged; other
 * faults go to the previous handler. The result computed on zeros must then
 * be thrown away: every caller that reads weights checks, and a damaged file
 * is closed and loaded again. A file replaced by rename is not damaged (the
 * mapping keeps the old inode). Files loaded with ENG_LOAD_READ are copies
 * and never damaged. docs/engine.md says why this design.
 *
 * For a server (the scheduler): call eng_file_check() when a request starts
 * (one fstat) and eng_file_damaged() after each step (one atomic load); when
 * either reports damage, fail the requests of that model with
 * eng_file_check()'s message and reload it. */

/* True once <f>'s mapping is known to be damaged (a read past its end, or a
 * change eng_file_check saw). Cheap, thread-safe and async-signal-safe;
 * false for NULL and for read copies. */
bool eng_file_damaged(const struct eng_file *f);
/* Compares the file mapped for <f> (fstat of the descriptor kept open) with
 * what was loaded: smaller (truncated), or another size or modification time
 * (rewritten in place: the pages may hold other bytes and no fault ever
 * comes), or a read past the end already faulted. Returns ENG_OK or
 * ENG_ERR_CHANGED with <err> = "model file PATH changed on disk (truncated
 * from A to B bytes) while in use: ... reload it"; once damaged, always
 * damaged. Thread-safe. */
ENG_WUR enum eng_status eng_file_check(const struct eng_file *f, char *err, size_t err_len);
/* Whether the SIGBUS handler is in place (false before the first mapping,
 * or when a sanitizer refused it: see docs/engine.md for ASan). */
bool eng_load_fault_guard_active(void);

#endif
