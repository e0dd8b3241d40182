/* Small helpers shared by the guard modules: 64-bit hashing and filling a
 * gd_trip. Internal to guards/. */
#ifndef LW_GUARDS_UTIL_H
#define LW_GUARDS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guards/limits.h"
#include "guards/trip.h"

#define GD_FNV_OFFSET 0xcbf29ce484222325ULL
#define GD_FNV_PRIME 0x100000001b3ULL

/* FNV-1a over <data, len>, continuing from <h> (start with GD_FNV_OFFSET). */
static inline uint64_t gd_hash_bytes(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= GD_FNV_PRIME;
	}
	return h;
}

/* A strong 64-bit finalizer (splitmix64): spreads FNV's weak low bits. */
static inline uint64_t gd_hash_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* Bits set in <x> (SWAR: no dependency on -mpopcnt or libgcc). */
static inline uint32_t gd_popcount64(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ULL);
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (uint32_t)((x * 0x0101010101010101ULL) >> 56);
}

/* True when tool name <name, len> holds one of the <n> words of <words>
 * (each GD_WORD_MAX bytes): split at _ - . / : space and lower-to-upper case
 * changes, compared caselessly; words of 5+ bytes also match inside a name. */
bool gd_name_has_word(const char *words, uint32_t n, const char *name, size_t len);

/* Fills <trip> (guard name, printf-style detail, stream and cut). */
void gd_trip_set(struct gd_trip *trip, const char *guard, enum gd_stream stream,
                 uint64_t cut, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Copies at most <max> bytes of <s, len> into <out> (size <outlen>) for a
 * trip detail, replacing control bytes with '.', adding "..." when cut. */
void gd_snippet(char *out, size_t outlen, const char *s, size_t len, size_t max);

#endif
