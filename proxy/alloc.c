/* The allocator (see alloc.h).
 *
 * Why jemalloc, and why with dirty_decay_ms:0. Under glibc's malloc the
 * RSS of a proxy that serves rounds of streams grows and does not come back:
 * every answer allocates a few hundred KiB (the guard pipeline reserves most
 * of it, touching a part), the heap fragments, and later answers touch other
 * parts of the freed blocks, so RSS creeps towards everything ever reserved.
 * Measured with tests/bench/bench_load (20 rounds of 500 concurrent streams,
 * RSS once each round is over; RelWithDebInfo, 2-core VM, after the SSE
 * parser and chunk converter stopped reserving 6 x proxy.max_event_bytes):
 *
 *   candidate                                   round 1 -> 2 -> largest   peak RSS   CPU s
 *   glibc, default                              55 -> 130 -> 217 MiB      219 MiB    4.0-4.6
 *   glibc, MALLOC_ARENA_MAX=1                   55 -> 130 -> 217 MiB      219 MiB    -
 *   glibc, mmap/trim threshold 128 KiB          55 -> 114 -> 216 MiB      219 MiB    -
 *   glibc, mmap/trim threshold 16 KiB           43 ->  78 -> 216 MiB      217 MiB    4.3
 *   glibc + malloc_trim(0) when no stream left  11 ->  10 ->  13 MiB      107 MiB    5.4-5.7
 *   jemalloc 5.3, default (10 s decay)          63 ->  83 -> 138 MiB      155 MiB    4.8-4.9
 *   jemalloc, background_thread, 1 s decay      20 ->  70 -> 125 MiB      155 MiB    5.8
 *   jemalloc, dirty_decay_ms:0 (chosen)         10 ->  10 ->  10 MiB       86 MiB    5.3
 *
 * (CPU: loopwarden's user+system seconds for the 10000 streams, --delay-ms
 * 5, two runs each; the machine is shared, so +-10 %.) Only two keep RSS
 * flat: trimming when idle, which does nothing while streams overlap without
 * a pause (a busy server never has none left) and keeps the fragmented peak
 * (107 MiB), and jemalloc returning pages as they are freed, which keeps RSS
 * at what the live streams use under any load (86 MiB at 500 streams) for
 * about +15 % CPU per answer (page faults when freed pages are reused; the
 * per-chunk path allocates from jemalloc's thread cache and is unchanged).
 * jemalloc is a well-kept Debian library (libjemalloc2) and serves the
 * engine's threads well too. MALLOC_CONF in the environment still overrides
 * this default (jemalloc reads it after malloc_conf). */
#include "proxy/alloc.h"

#include <stdio.h>

#ifdef LW_JEMALLOC
#include <jemalloc/jemalloc.h>

/* Read by jemalloc at its first allocation (it must be a global of this
 * name in the executable). */
const char *malloc_conf = "dirty_decay_ms:0,muzzy_decay_ms:0";
#endif

void px_alloc_name(char *buf, size_t len)
{
#ifdef LW_JEMALLOC
	const char *v = NULL;
	size_t sz = sizeof(v);
	if (mallctl("version", &v, &sz, NULL, 0) == 0 && v) {
		snprintf(buf, len, "jemalloc %s", v);
		return;
	}
#endif
	snprintf(buf, len, "system");
}

bool px_alloc_stats(uint64_t *allocated, uint64_t *resident)
{
#ifdef LW_JEMALLOC
	uint64_t epoch = 1;
	size_t esz = sizeof(epoch), a = 0, r = 0, sz = sizeof(size_t);
	/* the statistics are a snapshot refreshed by advancing the epoch */
	if (mallctl("epoch", &epoch, &esz, &epoch, esz) == 0 &&
	    mallctl("stats.allocated", &a, &sz, NULL, 0) == 0 &&
	    mallctl("stats.resident", &r, &sz, NULL, 0) == 0) {
		*allocated = a;
		*resident = r;
		return true;
	}
#endif
	*allocated = 0;
	*resident = 0;
	return false;
}

long px_alloc_decay_ms(void)
{
#ifdef LW_JEMALLOC
	ssize_t ms = -1;
	size_t sz = sizeof(ms);
	if (mallctl("opt.dirty_decay_ms", &ms, &sz, NULL, 0) == 0)
		return (long)ms;
#endif
	return -1;
}
