/* Where each setting came from (file:line, or a command-line option), so a
 * check that can only run once every key is known (a cross-key constraint, a
 * PCRE2 pattern, a CA file, a host name) still names the line to fix; and the
 * one shape every such check reports its verdict in (struct cfg_fault). */
#ifndef LW_CONFIG_ORIGIN_H
#define LW_CONFIG_ORIGIN_H

#include <stddef.h>

#define CFG_ORIGINS_MAX 8192 /* settings remembered; more still apply, unplaced */
#define CFG_WHY_MAX 512      /* a fault's reason, bytes including NUL */

/* A check's verdict: which key to blame and why. Validators (gd_config_check,
 * px_options_check) fill it; cfg_fault_format turns it into one message. */
struct cfg_fault {
	const char *key;   /* the key to blame (a static key name), or NULL for none */
	const char *key2;  /* the other key of a cross-key constraint, or NULL; when
	                      set, <why> names both keys itself */
	const char *entry; /* the offending entry of a list key (its text), or NULL */
	char why[CFG_WHY_MAX]; /* the reason; never names <key> unless <key2> is set */
};

/* Clears <f> (no fault). */
void cfg_fault_clear(struct cfg_fault *f);
/* Sets <f> to blame <key> (static storage) with a printf-style reason.
 * Returns -1, so a validator can write `return cfg_fault_set(...)`. */
int cfg_fault_set(struct cfg_fault *f, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

struct cfg_origins;

struct cfg_origins *cfg_origins_new(void); /* NULL when out of memory */
void cfg_origins_free(struct cfg_origins *o); /* NULL is a no-op */

/* Records that <key> was set to <value> at <file>:<line>; <line> 0 means
 * <file> names a command-line option ("--set", "--listen"). <file> is
 * borrowed and must outlive <o> (a path from argv, a string literal). The
 * value "[]" (a list cleared) forgets the entries recorded for <key> before
 * it. Returns 0, or -1 when <o> is full (the setting still applies; only
 * its position is lost). */
int cfg_origins_note(struct cfg_origins *o, const char *key, const char *value,
                     const char *file, unsigned long line);

/* Writes <f> as one line: "<where>: key '<key>': <why>", where <where> is
 * the file:line (or option) that set <key> (for a list, the one that added
 * <entry>) and is left out for a key still at its default. A cross-key fault
 * is "<where>: <why>", <where> being whichever of its two keys was set last.
 * <o> may be NULL (no positions). */
void cfg_fault_format(const struct cfg_fault *f, const struct cfg_origins *o,
                      char *out, size_t outlen);

#endif
