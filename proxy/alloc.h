/* The process's memory allocator: which one serves malloc, and what it
 * holds. loopwarden links Debian's jemalloc and has it give freed pages back
 * to the system at once (alloc.c says why, with the figures); builds with
 * sanitizers use the sanitizer's allocator instead. */
#ifndef LW_PROXY_ALLOC_H
#define LW_PROXY_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "jemalloc <version>" or "system" into <buf>. */
void px_alloc_name(char *buf, size_t len);

/* Bytes the program has allocated and bytes the allocator keeps resident
 * (its own metadata and cached pages included), as of now. False when the
 * allocator cannot tell (the system allocator). */
bool px_alloc_stats(uint64_t *allocated, uint64_t *resident);

/* jemalloc's dirty-page decay in ms (0: freed pages go back at once), or -1
 * without jemalloc. */
long px_alloc_decay_ms(void);

#endif
