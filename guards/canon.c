#include "guards/canon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "guards/config.h"
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
	bool hashing; /* put() hashes into <h> instead of storing (no size limit) */
	uint64_t h;
	const struct gd_cross_turn_config *vol; /* non-NULL: leave volatile members out */
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->hashing) {
		o->h = gd_hash_bytes(o->h, s, n);
		return;
	}
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

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* A string that is a date with a time of day ("2025-03-01T12:00:07Z",
 * "2025-03-01 12:00"): a stamp, whatever the key it is under. */
static bool is_datetime(const char *s)
{
	static const char shape[] = "dddd-dd-dd?dd:dd";
	size_t len = strlen(s);

	if (len < sizeof(shape) - 1 || len > 40)
		return false;
	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		unsigned char c = (unsigned char)s[i];
		if (shape[i] == 'd' ? !is_digit(c) : shape[i] == '?' ? (c != 'T' && c != ' ')
		                                                      : c != shape[i])
			return false;
	}
	return true;
}

/* <s> lowercased, letters and digits only, into <out> (size <cap>). */
static size_t fold(const char *s, size_t len, char *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 'A' && c <= 'Z')
			out[n++] = (char)(c - 'A' + 'a');
		else if ((c >= 'a' && c <= 'z') || is_digit(c))
			out[n++] = (char)c;
	}
	out[n] = '\0';
	return n;
}

bool gd_key_is_volatile(const struct gd_cross_turn_config *ct, const char *key)
{
	char k[GD_WORD_MAX * 2], w[GD_WORD_MAX], part[GD_WORD_MAX * 2];
	size_t klen = strlen(key), start = 0;

	if (!ct || !ct->n_volatile)
		return false;
	fold(key, klen, k, sizeof(k));
	for (uint32_t i = 0; i < ct->n_volatile; i++) {
		size_t wl = fold(ct->volatile_keys[i], strlen(ct->volatile_keys[i]), w, sizeof(w));
		if (wl >= 5 && strstr(k, w))
			return true;
	}
	/* Shorter words ("ts", "try") only as a whole word of the key, split
	 * at non-alphanumerics and lower-to-upper case changes. */
	for (size_t i = 0; i <= klen; i++) {
		unsigned char c = i < klen ? (unsigned char)key[i] : 0;
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c);
		bool camel = i > 0 && i < klen && key[i - 1] >= 'a' && key[i - 1] <= 'z' &&
		             c >= 'A' && c <= 'Z';

		if (alnum && !camel)
			continue;
		if (i > start) {
			size_t pl = fold(key + start, i - start, part, sizeof(part));
			for (uint32_t j = 0; j < ct->n_volatile && pl; j++) {
				fold(ct->volatile_keys[j], strlen(ct->volatile_keys[j]), w, sizeof(w));
				if (strcmp(part, w) == 0)
					return true;
			}
		}
		start = camel ? i : i + 1;
	}
	return false;
}

static bool volatile_member(const struct out *o, const char *key, yajl_val v)
{
	return o->vol && (gd_key_is_volatile(o->vol, key) ||
	                  (YAJL_IS_STRING(v) && is_datetime(v->u.string)));
}

/* <v>'s object members in canonical order (bytewise by key, duplicates in
 * their order). Caller frees the result; NULL for an empty object or no memory
 * (<*nomem> tells which). */
static struct keyref *sorted_members(yajl_val v, bool *nomem)
{
	size_t n = v->u.object.len;
	struct keyref *refs;

	*nomem = false;
	if (!n)
		return NULL;
	refs = malloc(n * sizeof(*refs));
	if (!refs) {
		*nomem = true;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		refs[i].key = v->u.object.keys[i];
		refs[i].val = v->u.object.values[i];
		refs[i].pos = i;
	}
	qsort(refs, n, sizeof(*refs), keyref_cmp);
	return refs;
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
		bool nomem, first = true;
		struct keyref *refs = sorted_members(v, &nomem);

		if (nomem)
			return GD_CANON_ENOMEM;
		put(o, "{", 1);
		for (size_t i = 0; i < n && st == GD_CANON_OK; i++) {
			if (volatile_member(o, refs[i].key, refs[i].val))
				continue;
			if (!first)
				put(o, ",", 1);
			first = false;
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
	struct out o = { .buf = out, .cap = outcap };

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

/* The values of <v>, case-folded, letters and digits only, one separator
 * after each scalar, objects in canonical key order, keys left out: what
 * stays of a call's arguments when case, spacing and punctuation do not count. */
static enum gd_canon_status similar_value(struct out *o, yajl_val v)
{
	char buf[256];
	const char *text = NULL;
	enum gd_canon_status st = GD_CANON_OK;

	switch (v->type) {
	case yajl_t_string:
		text = v->u.string;
		break;
	case yajl_t_number:
		text = v->u.number.r;
		break;
	case yajl_t_true:
		text = "true";
		break;
	case yajl_t_false:
		text = "false";
		break;
	case yajl_t_null:
		text = "null";
		break;
	case yajl_t_array:
		for (size_t i = 0; i < v->u.array.len && st == GD_CANON_OK; i++)
			st = similar_value(o, v->u.array.values[i]);
		return st;
	case yajl_t_object: {
		bool nomem;
		struct keyref *refs = sorted_members(v, &nomem);

		if (nomem)
			return GD_CANON_ENOMEM;
		for (size_t i = 0; i < v->u.object.len && st == GD_CANON_OK; i++)
			if (!volatile_member(o, refs[i].key, refs[i].val))
				st = similar_value(o, refs[i].val);
		free(refs);
		return st;
	}
	case yajl_t_any:
		return st;
	}
	for (const unsigned char *p = (const unsigned char *)text; *p;) {
		size_t n = 0;
		/* Non-ASCII bytes are kept: folding them needs more than ASCII. */
		for (; *p && n < sizeof(buf); p++) {
			unsigned char c = *p;
			if (c >= 'A' && c <= 'Z')
				buf[n++] = (char)(c - 'A' + 'a');
			else if ((c >= 'a' && c <= 'z') || is_digit(c) || c >= 0x80)
				buf[n++] = (char)c;
		}
		put(o, buf, n);
	}
	put(o, "\x1f", 1);
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

static uint64_t name_seed(const char *name, size_t name_len, const char *sep)
{
	return gd_hash_bytes(gd_hash_bytes(GD_FNV_OFFSET, name, name_len), sep, strlen(sep) + 1);
}

/* Fills <out> from the parsed arguments <tree>; false when out of memory. */
static bool ids_of_tree(const struct gd_cross_turn_config *ct, const char *name,
                        size_t name_len, yajl_val tree, struct gd_call_id *out)
{
	struct out o = { .hashing = true };

	/* name "\0" canonical form: the same bytes gd_call_identity hashes. */
	o.h = name_seed(name, name_len, "");
	if (put_value(&o, tree) != GD_CANON_OK)
		return false;
	out->exact = gd_hash_mix(o.h);
	o.h = name_seed(name, name_len, "");
	o.vol = ct;
	if (put_value(&o, tree) != GD_CANON_OK)
		return false;
	out->stable = gd_hash_mix(o.h);
	o.h = name_seed(name, name_len, "\x01");
	if (similar_value(&o, tree) != GD_CANON_OK)
		return false;
	out->similar = gd_hash_mix(o.h);
	out->canonical = true;
	return true;
}

void gd_call_id_raw(const char *name, size_t name_len, uint64_t raw_hash,
                    struct gd_call_id *out)
{
	out->exact = out->stable = out->similar = gd_call_identity_raw(name, name_len, raw_hash);
	out->canonical = false;
}

/* Identified by the raw bytes <args, len> (whitespace trimmed), as
 * gd_call_identity does for text that is not JSON. */
static void ids_of_bytes(const char *name, size_t name_len, const char *args, size_t len,
                         struct gd_call_id *out)
{
	out->exact = out->stable = out->similar = identity_of(name, name_len, args, len);
	out->canonical = false;
}

void gd_call_id(const struct gd_cross_turn_config *ct, const char *name, size_t name_len,
                const char *args, size_t args_len, struct gd_call_id *out)
{
	size_t b = 0, e = args_len;
	struct gd_json_scan scan;
	char *copy = NULL;
	yajl_val tree = NULL;

	while (b < e && is_ws((unsigned char)args[b]))
		b++;
	while (e > b && is_ws((unsigned char)args[e - 1]))
		e--;
	if (b == e) {
		ids_of_bytes(name, name_len, "{}", 2, out);
		out->canonical = true;
		return;
	}
	gd_json_scan_init(&scan);
	if (e - b <= GD_CANON_MAX_INPUT && gd_json_scan_feed(&scan, args + b, e - b) != GD_SCAN_OPEN &&
	    !(scan.state == GD_SCAN_BAD && scan.depth >= GD_CANON_MAX_DEPTH) &&
	    (copy = malloc(e - b + 1)) != NULL) {
		memcpy(copy, args + b, e - b);
		copy[e - b] = '\0';
		if (strlen(copy) == e - b)
			tree = yajl_tree_parse(copy, NULL, 0);
	}
	if (!tree || !ids_of_tree(ct, name, name_len, tree, out))
		ids_of_bytes(name, name_len, args + b, e - b, out);
	yajl_tree_free(tree);
	free(copy);
}
