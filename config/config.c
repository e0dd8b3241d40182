/* The YAML loader (see config.h): libyaml's event parser walked by a small
 * recursive descent, depth-capped; the dotted key lives in one fixed buffer,
 * and every key path seen so far in a hash set (for duplicates). */
#include "config/config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

/* One key path seen in this file and the line of its first appearance. */
struct seen_key {
	char *path; /* NULL: empty bucket */
	unsigned long line;
};

struct loader {
	yaml_parser_t parser;
	struct seen_key *seen; /* open addressing, power-of-two size */
	size_t n_seen, cap_seen;
	const char *name;
	cfg_setter fn;
	void *ctx;
	char *err;
	size_t errlen;
	char key[CFG_KEY_MAX];
	size_t key_len;
};

const char *cfg_strerror(enum cfg_status st)
{
	switch (st) {
	case CFG_OK: return "ok";
	case CFG_EIO: return "cannot read the config file";
	case CFG_ESYNTAX: return "not valid YAML";
	case CFG_ESHAPE: return "unsupported YAML structure";
	case CFG_EKEY: return "bad key or value";
	case CFG_ESET: return "value refused";
	case CFG_EINVAL: return "invalid argument";
	case CFG_EDUPLICATE: return "duplicate key";
	}
	return "unknown config status";
}

static unsigned long line_of(const yaml_event_t *ev)
{
	return (unsigned long)ev->start_mark.line + 1;
}

static uint64_t hash_path(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void seen_free(struct loader *ld)
{
	for (size_t i = 0; i < ld->cap_seen; i++)
		free(ld->seen[i].path);
	free(ld->seen);
	ld->seen = NULL;
	ld->n_seen = ld->cap_seen = 0;
}

/* The bucket of <path> in <tab> (of <cap> buckets): where it is, or the
 * empty one where it would go. */
static struct seen_key *seen_slot(struct seen_key *tab, size_t cap, const char *path)
{
	size_t i = (size_t)hash_path(path) & (cap - 1);

	while (tab[i].path && strcmp(tab[i].path, path) != 0)
		i = (i + 1) & (cap - 1);
	return &tab[i];
}

/* Records the key path now in ld->key, first written at <line>. A path
 * seen before is CFG_EDUPLICATE naming both lines. */
static enum cfg_status seen_add(struct loader *ld, unsigned long line)
{
	struct seen_key *slot;

	if (ld->n_seen + 1 > ld->cap_seen / 2) {
		size_t cap = ld->cap_seen ? ld->cap_seen * 2 : 64;
		struct seen_key *tab;

		if (ld->n_seen >= CFG_KEYS_MAX) {
			snprintf(ld->err, ld->errlen, "%s:%lu: more than %d keys in one file", ld->name,
			         line, CFG_KEYS_MAX);
			return CFG_EKEY;
		}
		tab = calloc(cap, sizeof(*tab));
		if (!tab) {
			snprintf(ld->err, ld->errlen, "%s:%lu: out of memory", ld->name, line);
			return CFG_EIO;
		}
		for (size_t i = 0; i < ld->cap_seen; i++)
			if (ld->seen[i].path)
				*seen_slot(tab, cap, ld->seen[i].path) = ld->seen[i];
		free(ld->seen);
		ld->seen = tab;
		ld->cap_seen = cap;
	}
	slot = seen_slot(ld->seen, ld->cap_seen, ld->key);
	if (slot->path) {
		snprintf(ld->err, ld->errlen, "%s:%lu: key '%s' appears twice (first at line %lu)",
		         ld->name, line, ld->key, slot->line);
		return CFG_EDUPLICATE;
	}
	slot->path = strdup(ld->key);
	if (!slot->path) {
		snprintf(ld->err, ld->errlen, "%s:%lu: out of memory", ld->name, line);
		return CFG_EIO;
	}
	slot->line = line;
	ld->n_seen++;
	return CFG_OK;
}

/* Fetches the next event; a libyaml error becomes CFG_ESYNTAX naming the line. */
static enum cfg_status next(struct loader *ld, yaml_event_t *ev)
{
	if (yaml_parser_parse(&ld->parser, ev))
		return CFG_OK;
	snprintf(ld->err, ld->errlen, "%s:%lu: YAML syntax error: %s%s%s", ld->name,
	         (unsigned long)ld->parser.problem_mark.line + 1,
	         ld->parser.problem ? ld->parser.problem : "unknown problem",
	         ld->parser.context ? " " : "", ld->parser.context ? ld->parser.context : "");
	return CFG_ESYNTAX;
}

static const char *scalar_value(const yaml_event_t *ev)
{
	const char *v = (const char *)ev->data.scalar.value;

	if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
	     strcmp(v, "NULL") == 0))
		return "";
	return v;
}

static enum cfg_status set(struct loader *ld, const yaml_event_t *ev, const char *value)
{
	char why[256];

	if (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.length >= CFG_VALUE_MAX) {
		snprintf(ld->err, ld->errlen, "%s:%lu: key '%s': value longer than %d bytes",
		         ld->name, line_of(ev), ld->key, CFG_VALUE_MAX - 1);
		return CFG_EKEY;
	}
	why[0] = '\0';
	if (ld->fn(ld->key, value, ld->name, line_of(ev), ld->ctx, why, sizeof(why)) != 0) {
		snprintf(ld->err, ld->errlen, "%s:%lu: key '%s': %s", ld->name, line_of(ev), ld->key,
		         why[0] ? why : "value refused");
		return CFG_ESET;
	}
	return CFG_OK;
}

static enum cfg_status shape(struct loader *ld, const yaml_event_t *ev, const char *what)
{
	snprintf(ld->err, ld->errlen, "%s:%lu: key '%s': %s", ld->name, line_of(ev),
	         ld->key_len ? ld->key : "(top level)", what);
	return CFG_ESHAPE;
}

static enum cfg_status sequence(struct loader *ld, const yaml_event_t *start)
{
	enum cfg_status st;
	yaml_event_t ev;

	st = set(ld, start, "[]");
	if (st != CFG_OK)
		return st;
	for (;;) {
		st = next(ld, &ev);
		if (st != CFG_OK)
			return st;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return CFG_OK;
		}
		if (ev.type == YAML_SCALAR_EVENT)
			st = set(ld, &ev, scalar_value(&ev));
		else
			st = shape(ld, &ev, "a list may hold only scalars");
		yaml_event_delete(&ev);
		if (st != CFG_OK)
			return st;
	}
}

/* Reads a mapping's body up to its end; <depth> counts enclosing mappings,
 * <line> is where the mapping starts. */
static enum cfg_status mapping(struct loader *ld, int depth, unsigned long line)
{
	enum cfg_status st = CFG_OK;
	yaml_event_t kev, vev;
	size_t saved = ld->key_len;

	if (depth > CFG_DEPTH_MAX) {
		snprintf(ld->err, ld->errlen, "%s:%lu: key '%s': nested deeper than %d levels",
		         ld->name, line, ld->key, CFG_DEPTH_MAX);
		return CFG_EKEY;
	}
	for (;;) {
		size_t klen;
		unsigned long kline;

		st = next(ld, &kev);
		if (st != CFG_OK)
			return st;
		if (kev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&kev);
			break;
		}
		if (kev.type != YAML_SCALAR_EVENT) {
			st = shape(ld, &kev, kev.type == YAML_ALIAS_EVENT ? "aliases are not supported"
			                                                   : "keys must be scalars");
			yaml_event_delete(&kev);
			return st;
		}
		klen = kev.data.scalar.length;
		if (klen == 0 || saved + (saved ? 1 : 0) + klen >= sizeof(ld->key)) {
			ld->key[saved] = '\0';
			st = klen == 0 ? shape(ld, &kev, "empty key") : shape(ld, &kev, "key path too long");
			if (klen > 0)
				st = CFG_EKEY;
			yaml_event_delete(&kev);
			return st;
		}
		ld->key_len = saved;
		if (saved)
			ld->key[ld->key_len++] = '.';
		memcpy(ld->key + ld->key_len, kev.data.scalar.value, klen);
		ld->key_len += klen;
		ld->key[ld->key_len] = '\0';
		kline = line_of(&kev);
		yaml_event_delete(&kev);
		st = seen_add(ld, kline);
		if (st != CFG_OK)
			return st;

		st = next(ld, &vev);
		if (st != CFG_OK)
			return st;
		switch (vev.type) {
		case YAML_SCALAR_EVENT:
			st = set(ld, &vev, scalar_value(&vev));
			break;
		case YAML_MAPPING_START_EVENT:
			st = mapping(ld, depth + 1, line_of(&vev));
			break;
		case YAML_SEQUENCE_START_EVENT:
			st = sequence(ld, &vev);
			break;
		case YAML_ALIAS_EVENT:
			st = shape(ld, &vev, "aliases are not supported");
			break;
		default:
			st = shape(ld, &vev, "unexpected YAML event");
			break;
		}
		yaml_event_delete(&vev);
		if (st != CFG_OK)
			return st;
	}
	ld->key_len = saved;
	ld->key[saved] = '\0';
	return CFG_OK;
}

static enum cfg_status document(struct loader *ld)
{
	enum cfg_status st;
	yaml_event_t ev;
	bool seen_doc = false;

	for (;;) {
		st = next(ld, &ev);
		if (st != CFG_OK)
			return st;
		switch (ev.type) {
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		case YAML_STREAM_END_EVENT:
			yaml_event_delete(&ev);
			return CFG_OK;
		case YAML_DOCUMENT_START_EVENT:
			if (seen_doc) {
				st = shape(ld, &ev, "only one YAML document is allowed");
				break;
			}
			seen_doc = true;
			break;
		case YAML_MAPPING_START_EVENT:
			st = mapping(ld, 1, line_of(&ev));
			break;
		case YAML_SCALAR_EVENT:
			/* A document that is only `~` or empty is an empty config. */
			if (scalar_value(&ev)[0] != '\0')
				st = shape(ld, &ev, "the top level must be a mapping of keys");
			break;
		default:
			st = shape(ld, &ev, "the top level must be a mapping of keys");
			break;
		}
		yaml_event_delete(&ev);
		if (st != CFG_OK)
			return st;
	}
}

enum cfg_status cfg_load_buffer(const char *name, const char *buf, size_t len,
                                cfg_setter fn, void *ctx, char *err, size_t errlen)
{
	struct loader ld;
	enum cfg_status st;

	if (!name || (!buf && len) || !fn || !err || errlen == 0)
		return CFG_EINVAL;
	memset(&ld, 0, sizeof(ld));
	err[0] = '\0';
	if (!yaml_parser_initialize(&ld.parser)) {
		snprintf(err, errlen, "%s: out of memory", name);
		return CFG_EIO;
	}
	yaml_parser_set_input_string(&ld.parser, (const unsigned char *)(buf ? buf : ""), len);
	ld.name = name;
	ld.fn = fn;
	ld.ctx = ctx;
	ld.err = err;
	ld.errlen = errlen;
	st = document(&ld);
	seen_free(&ld);
	yaml_parser_delete(&ld.parser);
	return st;
}

enum cfg_status cfg_load_file(const char *path, cfg_setter fn, void *ctx,
                              char *err, size_t errlen)
{
	enum cfg_status st = CFG_OK;
	FILE *f = NULL;
	char *buf = NULL;
	size_t len = 0;

	if (!path || !fn || !err || errlen == 0)
		return CFG_EINVAL;
	f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		st = CFG_EIO;
		goto out;
	}
	buf = malloc(CFG_FILE_MAX + 1);
	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", path);
		st = CFG_EIO;
		goto out;
	}
	len = fread(buf, 1, CFG_FILE_MAX + 1, f);
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
		st = CFG_EIO;
		goto out;
	}
	if (len > CFG_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %u bytes", path, CFG_FILE_MAX);
		st = CFG_EIO;
		goto out;
	}
	st = cfg_load_buffer(path, buf, len, fn, ctx, err, errlen);
out:
	free(buf);
	if (f)
		fclose(f);
	return st;
}

enum cfg_status cfg_parse_kv(const char *arg, char *key, size_t keylen,
                             char *value, size_t valuelen, char *err, size_t errlen)
{
	const char *eq;
	size_t klen, vlen;

	if (!arg || !key || !value || keylen == 0 || valuelen == 0 || !err || errlen == 0)
		return CFG_EINVAL;
	eq = strchr(arg, '=');
	if (!eq || eq == arg) {
		snprintf(err, errlen, "--set '%s': expected key=value", arg);
		return CFG_EKEY;
	}
	klen = (size_t)(eq - arg);
	vlen = strlen(eq + 1);
	if (klen >= keylen || vlen >= valuelen) {
		snprintf(err, errlen, "--set '%.*s': %s too long", (int)(klen < 64 ? klen : 64), arg,
		         klen >= keylen ? "key" : "value");
		return CFG_EKEY;
	}
	memcpy(key, arg, klen);
	key[klen] = '\0';
	memcpy(value, eq + 1, vlen + 1);
	return CFG_OK;
}
