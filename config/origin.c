/* Setting origins and fault messages (see origin.h): an append-only list of
 * notes, searched from the newest, so the last setting of a key wins like it
 * does in the config itself. */
#include "config/origin.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct note {
	char *key;        /* NULL once forgotten (its list was cleared later) */
	uint64_t vhash;   /* FNV-1a of the value, to find the note of one list entry */
	const char *file;
	unsigned long line;
};

struct cfg_origins {
	struct note *notes;
	size_t n, cap;
};

void cfg_fault_clear(struct cfg_fault *f)
{
	memset(f, 0, sizeof(*f));
}

int cfg_fault_set(struct cfg_fault *f, const char *key, const char *fmt, ...)
{
	va_list ap;

	cfg_fault_clear(f);
	f->key = key;
	va_start(ap, fmt);
	vsnprintf(f->why, sizeof(f->why), fmt, ap);
	va_end(ap);
	return -1;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

struct cfg_origins *cfg_origins_new(void)
{
	return calloc(1, sizeof(struct cfg_origins));
}

void cfg_origins_free(struct cfg_origins *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->n; i++)
		free(o->notes[i].key);
	free(o->notes);
	free(o);
}

int cfg_origins_note(struct cfg_origins *o, const char *key, const char *value,
                     const char *file, unsigned long line)
{
	struct note *nt;

	if (!o || !key || !value)
		return -1;
	if (strcmp(value, "[]") == 0) {
		for (size_t i = 0; i < o->n; i++) {
			if (o->notes[i].key && strcmp(o->notes[i].key, key) == 0) {
				free(o->notes[i].key);
				o->notes[i].key = NULL;
			}
		}
	}
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;

		if (cap > CFG_ORIGINS_MAX)
			cap = CFG_ORIGINS_MAX;
		if (cap <= o->n)
			return -1;
		nt = realloc(o->notes, cap * sizeof(*nt));
		if (!nt)
			return -1;
		o->notes = nt;
		o->cap = cap;
	}
	nt = &o->notes[o->n];
	nt->key = strdup(key);
	if (!nt->key)
		return -1;
	nt->vhash = fnv1a(value);
	nt->file = file;
	nt->line = line;
	o->n++;
	return 0;
}

/* The newest note of <key> (that added <entry>, when given and found);
 * -1 when <key> was never set. */
static long find(const struct cfg_origins *o, const char *key, const char *entry)
{
	long any = -1;
	uint64_t h = entry ? fnv1a(entry) : 0;

	if (!o || !key)
		return -1;
	for (size_t i = o->n; i-- > 0;) {
		const struct note *nt = &o->notes[i];

		if (!nt->key || strcmp(nt->key, key) != 0)
			continue;
		if (!entry || nt->vhash == h)
			return (long)i;
		if (any < 0)
			any = (long)i;
	}
	return any;
}

static void where(const struct cfg_origins *o, long i, char *out, size_t outlen)
{
	const struct note *nt = &o->notes[i];

	if (nt->line)
		snprintf(out, outlen, "%s:%lu: ", nt->file, nt->line);
	else
		snprintf(out, outlen, "%s: ", nt->file);
}

void cfg_fault_format(const struct cfg_fault *f, const struct cfg_origins *o,
                      char *out, size_t outlen)
{
	char at[1200] = "";
	long i = find(o, f->key, f->entry);

	if (f->key2) {
		long j = find(o, f->key2, NULL);

		if (j > i)
			i = j;
	}
	if (i >= 0)
		where(o, i, at, sizeof(at));
	if (f->key2 || !f->key)
		snprintf(out, outlen, "%s%s", at, f->why);
	else
		snprintf(out, outlen, "%skey '%s': %s", at, f->key, f->why);
}
