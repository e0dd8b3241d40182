#include "guards/canon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "guards/limits.h"
#include "guards/util.h"

const char *gd_canon_strerror(enum gd_canon_status st)
{
	switch (st) {
	case GD_CANON_OK: return "ok";
	case GD_CANON_EINVAL: return "invalid JSON";
	case GD_CANON_EINCOMPLETE: return "incomplete JSON";
	case GD_CANON_ETOOBIG: return "JSON too large";
	case GD_CANON_ETOODEEP: return "JSON nested too deeply";
	case GD_CANON_ENOMEM: return "out of memory";
	case GD_CANON_EARG: return "bad argument";
	}
	return "unknown canon status";
}

void gd_json_scan_init(struct gd_json_scan *s)
{
	memset(s, 0, sizeof(*s));
	s->state = GD_SCAN_EMPTY;
}

static bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

enum gd_scan_state gd_json_scan_feed(struct gd_json_scan *s, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)data[i];

		switch (s->state) {
		case GD_SCAN_EMPTY:
			if (is_ws(c))
				break;
			if (c == '{' || c == '[') {
				s->state = GD_SCAN_OPEN;
				s->depth = 1;
				s->kinds = c == '[' ? 1 : 0;
			} else {
				s->state = GD_SCAN_SCALAR;
			}
			break;
		case GD_SCAN_OPEN:
			if (s->in_string) {
				if (s->escape)
					s->escape = false;
				else if (c == '\\')
					s->escape = true;
				else if (c == '"')
					s->in_string = false;
				break;
			}
			if (c == '"') {
				s->in_string = true;
			} else if (c == '{' || c == '[') {
				if (s->depth >= GD_CANON_MAX_DEPTH) {
					s->state = GD_SCAN_BAD;
					break;
				}
				if (c == '[')
					s->kinds |= 1ULL << s->depth;
				else
					s->kinds &= ~(1ULL << s->depth);
				s->depth++;
			} else if (c == '}' || c == ']') {
				bool arr = (s->kinds >> (s->depth - 1)) & 1;
				if (arr != (c == ']')) {
					s->state = GD_SCAN_BAD;
					break;
				}
				if (--s->depth == 0)
					s->state = GD_SCAN_COMPLETE;
			}
			break;
		case GD_SCAN_COMPLETE:
			if (!is_ws(c))
				s->state = GD_SCAN_BAD;
			break;
		case GD_SCAN_SCALAR:
		case GD_SCAN_BAD:
		case GD_SCAN_STATE_COUNT:
			break;
		}
	}
	s->offset += len;
	return s->state;
}

struct out {
	char *buf;
	size_t cap;
	size_t len;
	bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->full || o->cap - o->len < n) {
		o->full = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static void put_string(struct out *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t run = 0;

	put(o, "\"", 1);
	for (size_t i = 0;; i++) {
		unsigned char c = p[i];
		char esc[6];
		size_t n = 0;

		if (c != 0 && c >= 0x20 && c != '"' && c != '\\') {
			run++;
			continue;
		}
		put(o, (const char *)p + i - run, run);
		run = 0;
		if (c == 0)
			break;
		esc[0] = '\\';
		switch (c) {
		case '"': esc[1] = '"'; n = 2; break;
		case '\\': esc[1] = '\\'; n = 2; break;
		case '\b': esc[1] = 'b'; n = 2; break;
		case '\f': esc[1] = 'f'; n = 2; break;
		case '\n': esc[1] = 'n'; n = 2; break;
		case '\r': esc[1] = 'r'; n = 2; break;
		case '\t': esc[1] = 't'; n = 2; break;
		default:
			esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
			esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
			n = 6;
			break;
		}
		put(o, esc, n);
	}
	put(o, "\"", 1);
}

struct keyref {
	const char *key;
	yajl_val val;
	size_t pos;
};

static int keyref_cmp(const void *a, const void *b)
{
	const struct keyref *x = a, *y = b;
	int c = strcmp(x->key, y->key); /* bytewise on unsigned char */

	if (c)
		return c;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static enum gd_canon_status put_value(struct out *o, yajl_val v)
{
	enum gd_canon_status st = GD_CANON_OK;

	switch (v->type) {
	case yajl_t_string:
		put_string(o, v->u.string);
		break;
	case yajl_t_number:
		put(o, v->u.number.r, strlen(v->u.number.r));
		break;
	case yajl_t_true:
		put(o, "true", 4);
		break;
	case yajl_t_false:
		put(o, "false", 5);
		break;
	case yajl_t_null:
		put(o, "null", 4);
		break;
	case yajl_t_array:
		put(o, "[", 1);
		for (size_t i = 0; i < v->u.array.len && st == GD_CANON_OK; i++) {
			if (i)
				put(o, ",", 1);
			st = put_value(o, v->u.array.values[i]);
		}
		put(o, "]", 1);
		break;
	case yajl_t_object: {
		size_t n = v->u.object.len;
		struct keyref *refs = NULL;

		if (n) {
			refs = malloc(n * sizeof(*refs));
			if (!refs)
				return GD_CANON_ENOMEM;
			for (size_t i = 0; i < n; i++) {
				refs[i].key = v->u.object.keys[i];
				refs[i].val = v->u.object.values[i];
				refs[i].pos = i;
			}
			qsort(refs, n, sizeof(*refs), keyref_cmp);
		}
		put(o, "{", 1);
		for (size_t i = 0; i < n && st == GD_CANON_OK; i++) {
			if (i)
				put(o, ",", 1);
			put_string(o, refs[i].key);
			put(o, ":", 1);
			st = put_value(o, refs[i].val);
		}
		put(o, "}", 1);
		free(refs);
		break;
	}
	case yajl_t_any:
		break;
	}
	return st;
}

enum gd_canon_status gd_canon(const char *json, size_t len, char *out, size_t outcap,
                              size_t *outlen, char *err, size_t errlen)
{
	enum gd_canon_status st = GD_CANON_OK;
	struct gd_json_scan scan;
	char *copy = NULL;
	yajl_val tree = NULL;
	char yerr[256];
	struct out o = { out, outcap, 0, false };

	if (err && errlen)
		err[0] = '\0';
	if ((!json && len) || !out || !outlen) {
		st = GD_CANON_EARG;
		goto out;
	}
	*outlen = 0;
	if (len > GD_CANON_MAX_INPUT) {
		st = GD_CANON_ETOOBIG;
		if (err)
			snprintf(err, errlen, "arguments of %zu bytes exceed the cap of %u",
			         len, GD_CANON_MAX_INPUT);
		goto out;
	}
	gd_json_scan_init(&scan);
	switch (gd_json_scan_feed(&scan, json, len)) {
	case GD_SCAN_EMPTY:
		st = GD_CANON_EINCOMPLETE;
		if (err)
			snprintf(err, errlen, "empty JSON text");
		goto out;
	case GD_SCAN_OPEN:
		st = GD_CANON_EINCOMPLETE;
		if (err)
			snprintf(err, errlen, "JSON truncated at offset %zu (%s, depth %u)",
			         len, scan.in_string ? "inside a string" : "open value",
			         (unsigned)scan.depth);
		goto out;
	case GD_SCAN_BAD:
		if (scan.depth >= GD_CANON_MAX_DEPTH) {
			st = GD_CANON_ETOODEEP;
			if (err)
				snprintf(err, errlen, "JSON nested deeper than %u", GD_CANON_MAX_DEPTH);
			goto out;
		}
		break; /* let yajl say what is wrong */
	default:
		break;
	}
	copy = malloc(len + 1);
	if (!copy) {
		st = GD_CANON_ENOMEM;
		goto out;
	}
	if (len)
		memcpy(copy, json, len);
	copy[len] = '\0';
	if (strlen(copy) != len) {
		st = GD_CANON_EINVAL;
		if (err)
			snprintf(err, errlen, "NUL byte at offset %zu", strlen(copy));
		goto out;
	}
	yerr[0] = '\0';
	tree = yajl_tree_parse(copy, yerr, sizeof(yerr));
	if (!tree) {
		st = GD_CANON_EINVAL;
		if (err) {
			for (char *p = yerr; *p; p++)
				if (*p == '\n' || *p == '\r')
					*p = ' ';
			snprintf(err, errlen, "%s", yerr[0] ? yerr : "invalid JSON");
		}
		goto out;
	}
	st = put_value(&o, tree);
	if (st != GD_CANON_OK)
		goto out;
	if (o.full) {
		st = GD_CANON_ETOOBIG;
		if (err)
			snprintf(err, errlen, "canonical form exceeds the %zu-byte buffer", outcap);
		goto out;
	}
	if (o.len < outcap)
		out[o.len] = '\0';
	*outlen = o.len;
out:
	yajl_tree_free(tree);
	free(copy);
	return st;
}

static uint64_t identity_of(const char *name, size_t name_len, const char *form, size_t len)
{
	uint64_t h = gd_hash_bytes(GD_FNV_OFFSET, name, name_len);

	h = gd_hash_bytes(h, "\0", 1);
	return gd_hash_mix(gd_hash_bytes(h, form, len));
}

uint64_t gd_call_identity(const char *name, size_t name_len, const char *args,
                          size_t args_len, char *scratch, size_t scratchcap,
                          bool *canonical)
{
	size_t b = 0, e = args_len, outlen = 0;

	while (b < e && is_ws((unsigned char)args[b]))
		b++;
	while (e > b && is_ws((unsigned char)args[e - 1]))
		e--;
	*canonical = true;
	if (b == e)
		return identity_of(name, name_len, "{}", 2);
	if (scratch && gd_canon(args + b, e - b, scratch, scratchcap, &outlen, NULL, 0) == GD_CANON_OK)
		return identity_of(name, name_len, scratch, outlen);
	*canonical = false;
	return identity_of(name, name_len, args + b, e - b);
}

uint64_t gd_call_identity_raw(const char *name, size_t name_len, uint64_t raw_hash)
{
	return gd_hash_mix(gd_hash_bytes(raw_hash, name, name_len));
}

uint64_t gd_call_identity_tree(const char *name, size_t name_len, const void *val,
                               char *scratch, size_t scratchcap, bool *canonical)
{
	struct out o = { scratch, scratchcap, 0, false };

	*canonical = false;
	if (!val || !scratch || put_value(&o, (yajl_val)val) != GD_CANON_OK || o.full)
		return identity_of(name, name_len, "", 0);
	*canonical = true;
	return identity_of(name, name_len, scratch, o.len);
}
