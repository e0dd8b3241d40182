/* The YAML config loader: reads one YAML file with libyaml and hands every
 * scalar to a setter as a flat dotted key ("guards.name_run.max_run" = "8").
 * It knows no key names: meaning and validation belong to the setter (for
 * guard keys, gd_config_set in guards/config.h). */
#ifndef LW_CONFIG_CONFIG_H
#define LW_CONFIG_CONFIG_H

#include <stddef.h>

#define CFG_KEY_MAX 256       /* a dotted key, bytes including NUL */
#define CFG_VALUE_MAX 4096    /* one scalar value, bytes including NUL */
#define CFG_DEPTH_MAX 16      /* nesting of mappings */
#define CFG_FILE_MAX (4u << 20) /* a config file larger than this is refused */
#define CFG_KEYS_MAX 65536    /* distinct keys (leaves and sections) in one file */

enum cfg_status {
	CFG_OK = 0,
	CFG_EIO = -1,     /* cannot open/read the file, or it is too large */
	CFG_ESYNTAX = -2, /* not YAML */
	CFG_ESHAPE = -3,  /* YAML, but not a mapping of mappings/scalars/scalar lists
	                     (e.g. a list of mappings, an alias, a non-scalar key) */
	CFG_EKEY = -4,    /* a key or value too long, nesting too deep, a bad --set */
	CFG_ESET = -5,    /* the setter refused a value */
	CFG_EINVAL = -6,  /* bad argument */
	CFG_EDUPLICATE = -7, /* a key appears twice in one file */
};

const char *cfg_strerror(enum cfg_status st);

/* Receives one setting. <line> is 1-based (0 for --set). Return 0 to accept;
 * nonzero to refuse, with the reason in <err>: the loader prefixes file, line
 * and key, so the reason names neither (say "'lots' is not a number", not
 * "key 'x': 'lots' is not a number"). */
typedef int (*cfg_setter)(const char *key, const char *value, const char *file,
                          unsigned long line, void *ctx, char *err, size_t errlen);

/* Reads <path>: nested mappings flatten into dotted keys (a key may itself
 * contain dots: `guards.name_run.max_run: 8` at the top level is the same
 * setting as the nested form); a scalar value is
 * passed as its text (quotes removed; `~`/`null`/empty are passed as "");
 * a sequence of scalars calls the setter once with "[]" (clear the list), then
 * once per element. Stops at the first error, with <err> naming file, line and
 * key. An empty file is an empty config. A key that appears twice is an error
 * (CFG_EDUPLICATE, "file:line: key 'x' appears twice (first at line N)"),
 * counting the dotted and the nested spelling of one key as the same key, and
 * a section (a key holding a mapping) as a key too. */
enum cfg_status cfg_load_file(const char *path, cfg_setter fn, void *ctx,
                              char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The same for YAML text in memory; <name> is used in messages. */
enum cfg_status cfg_load_buffer(const char *name, const char *buf, size_t len,
                                cfg_setter fn, void *ctx, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Splits a --set argument "key=value" (the first '=' splits; the value may be
 * empty, the key may not) into <key> and <value>, both NUL-terminated. */
enum cfg_status cfg_parse_kv(const char *arg, char *key, size_t keylen,
                             char *value, size_t valuelen, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
