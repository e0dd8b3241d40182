/* Scenario files (see scenario.h). Two passes over the text: yajl's event
 * parser finds syntax errors (with their line), refuses nesting deeper than
 * PX_SCENARIO_MAX_DEPTH and finds where each element of "chunks" starts;
 * yajl's tree then gives the structure, and sub-trees are
 * re-serialized compactly (numbers and strings byte-exact). */
#include "proxy/wire/scenario.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

const char *px_scenario_strerror(enum px_scenario_status st)
{
	switch (st) {
	case PX_SCENARIO_OK: return "ok";
	case PX_SCENARIO_EIO: return "cannot read the scenario";
	case PX_SCENARIO_EJSON: return "scenario is not JSON";
	case PX_SCENARIO_ESHAPE: return "scenario has the wrong shape";
	case PX_SCENARIO_ENOMEM: return "out of memory";
	}
	return "unknown scenario status";
}

void px_text_position(const char *buf, size_t len, size_t offset,
                      unsigned long *line, unsigned long *col)
{
	unsigned long l = 1, c = 1;

	if (offset > len)
		offset = len;
	for (size_t i = 0; i < offset; i++) {
		if (buf[i] == '\n') {
			l++;
			c = 1;
		} else {
			c++;
		}
	}
	*line = l;
	*col = c;
}

/* ---- pass 1: syntax and chunk positions ------------------------------ */

struct scan {
	yajl_handle h;
	int depth;
	bool too_deep;        /* stopped at PX_SCENARIO_MAX_DEPTH */
	bool root_key_chunks; /* the current key of the root map is "chunks" */
	int chunks_depth;     /* depth of the chunks array, 0 when not inside */
	size_t *starts;
	uint32_t n, cap;
};

static int scan_elem(struct scan *s)
{
	if (s->chunks_depth && s->depth == s->chunks_depth) {
		if (s->n == s->cap) {
			uint32_t ncap = s->cap ? 2 * s->cap : 64;
			size_t *p = realloc(s->starts, ncap * sizeof(*p));

			if (!p)
				return 0;
			s->starts = p;
			s->cap = ncap;
		}
		s->starts[s->n++] = yajl_get_bytes_consumed(s->h);
	}
	return 1;
}

static int scan_scalar(void *ctx) { return scan_elem(ctx); }
static int scan_bool(void *ctx, int b) { (void)b; return scan_elem(ctx); }
static int scan_num(void *ctx, const char *n, size_t l) { (void)n; (void)l; return scan_elem(ctx); }
static int scan_str(void *ctx, const unsigned char *v, size_t l) { (void)v; (void)l; return scan_elem(ctx); }

static int scan_start(void *ctx, bool is_array)
{
	struct scan *s = ctx;

	if (!scan_elem(s))
		return 0;
	/* Refused here, before yajl_tree builds (and frees, recursively) it. */
	if (s->depth >= PX_SCENARIO_MAX_DEPTH) {
		s->too_deep = true;
		return 0;
	}
	s->depth++;
	if (is_array && s->depth == 2 && s->root_key_chunks)
		s->chunks_depth = 2;
	return 1;
}

static int scan_start_map(void *ctx) { return scan_start(ctx, false); }
static int scan_start_array(void *ctx) { return scan_start(ctx, true); }

static int scan_end(void *ctx)
{
	struct scan *s = ctx;

	if (s->chunks_depth == s->depth)
		s->chunks_depth = 0;
	s->depth--;
	return 1;
}

static int scan_key(void *ctx, const unsigned char *k, size_t l)
{
	struct scan *s = ctx;

	if (s->depth == 1)
		s->root_key_chunks = l == 6 && memcmp(k, "chunks", 6) == 0;
	return 1;
}

static const yajl_callbacks scan_cbs = {
	.yajl_null = scan_scalar,
	.yajl_boolean = scan_bool,
	.yajl_number = scan_num,
	.yajl_string = scan_str,
	.yajl_start_map = scan_start_map,
	.yajl_map_key = scan_key,
	.yajl_end_map = scan_end,
	.yajl_start_array = scan_start_array,
	.yajl_end_array = scan_end,
};

/* ---- pass 2: structure ----------------------------------------------- */

static bool gen_value(yajl_gen g, yajl_val v)
{
	switch (v->type) {
	case yajl_t_string:
		return yajl_gen_string(g, (const unsigned char *)v->u.string, strlen(v->u.string)) == yajl_gen_status_ok;
	case yajl_t_number:
		return yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r)) == yajl_gen_status_ok;
	case yajl_t_true:
		return yajl_gen_bool(g, 1) == yajl_gen_status_ok;
	case yajl_t_false:
		return yajl_gen_bool(g, 0) == yajl_gen_status_ok;
	case yajl_t_null:
		return yajl_gen_null(g) == yajl_gen_status_ok;
	case yajl_t_object:
		if (yajl_gen_map_open(g) != yajl_gen_status_ok)
			return false;
		for (size_t i = 0; i < v->u.object.len; i++) {
			const char *k = v->u.object.keys[i];

			if (yajl_gen_string(g, (const unsigned char *)k, strlen(k)) != yajl_gen_status_ok ||
			    !gen_value(g, v->u.object.values[i]))
				return false;
		}
		return yajl_gen_map_close(g) == yajl_gen_status_ok;
	case yajl_t_array:
		if (yajl_gen_array_open(g) != yajl_gen_status_ok)
			return false;
		for (size_t i = 0; i < v->u.array.len; i++)
			if (!gen_value(g, v->u.array.values[i]))
				return false;
		return yajl_gen_array_close(g) == yajl_gen_status_ok;
	default:
		return false;
	}
}

/* Compact JSON text of <v>; caller frees. */
static char *serialize(yajl_val v, size_t *len)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *out;
	size_t n;
	char *res = NULL;

	if (!g)
		return NULL;
	if (gen_value(g, v) && yajl_gen_get_buf(g, &out, &n) == yajl_gen_status_ok) {
		res = malloc(n + 1);
		if (res) {
			memcpy(res, out, n);
			res[n] = '\0';
			*len = n;
		}
	}
	yajl_gen_free(g);
	return res;
}

static yajl_val get(yajl_val obj, const char *key)
{
	const char *path[] = { key, NULL };

	return yajl_tree_get(obj, path, yajl_t_any);
}

static const char *str_of(yajl_val v)
{
	const char *s = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;

	return s ? s : "";
}

static char *dup_str(const char *s)
{
	size_t n = strlen(s);
	char *d = malloc(n + 1);

	if (d)
		memcpy(d, s, n + 1);
	return d;
}

void px_scenario_free(struct px_scenario *sc)
{
	if (!sc)
		return;
	free(sc->name);
	free(sc->description);
	free(sc->request);
	for (uint32_t i = 0; i < sc->n_config; i++) {
		free(sc->config_keys[i]);
		free(sc->config_values[i]);
	}
	for (uint32_t i = 0; sc->chunks && i < sc->n_chunks; i++)
		free(sc->chunks[i].data);
	free(sc->chunks);
	free(sc);
}

bool px_scenario_guard_ok(const struct px_scenario *sc, const char *guard)
{
	if (sc->n_guards == 0)
		return true;
	for (uint32_t i = 0; i < sc->n_guards; i++)
		if (strcmp(sc->guards[i], guard) == 0)
			return true;
	return false;
}

#define SHAPE(...) do { \
	snprintf(err, errlen, __VA_ARGS__); \
	st = PX_SCENARIO_ESHAPE; \
	goto out; \
} while (0)

static bool chunk_int(yajl_val v, int64_t *out)
{
	if (!v) {
		*out = -1;
		return true;
	}
	if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0)
		return false;
	*out = YAJL_GET_INTEGER(v);
	return true;
}

enum px_scenario_status px_scenario_parse(const char *name, const char *buf, size_t len,
                                          struct px_scenario **out, char *err, size_t errlen)
{
	enum px_scenario_status st = PX_SCENARIO_OK;
	struct scan scan;
	struct px_scenario *sc = NULL;
	yajl_val root = NULL, v, exp, chunks;
	char *text = NULL;
	char perr[256];
	unsigned long line, col;
	yajl_status ys;

	*out = NULL;
	memset(&scan, 0, sizeof(scan));
	scan.h = yajl_alloc(&scan_cbs, NULL, &scan);
	if (!scan.h) {
		st = PX_SCENARIO_ENOMEM;
		goto out;
	}
	ys = yajl_parse(scan.h, (const unsigned char *)buf, len);
	if (ys != yajl_status_ok && scan.too_deep) {
		px_text_position(buf, len, yajl_get_bytes_consumed(scan.h), &line, &col);
		snprintf(err, errlen, "%s:%lu:%lu: nested deeper than %d levels", name, line, col,
		         PX_SCENARIO_MAX_DEPTH);
		st = PX_SCENARIO_EJSON;
		goto out;
	}
	if (ys == yajl_status_ok)
		ys = yajl_complete_parse(scan.h);
	if (ys != yajl_status_ok) {
		unsigned char *msg = yajl_get_error(scan.h, 0, (const unsigned char *)buf, len);
		size_t n = msg ? strlen((char *)msg) : 0;

		while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
			msg[--n] = '\0';
		px_text_position(buf, len, yajl_get_bytes_consumed(scan.h), &line, &col);
		snprintf(err, errlen, "%s:%lu:%lu: not JSON: %s", name, line, col,
		         msg ? (char *)msg : "parse error");
		if (msg)
			yajl_free_error(scan.h, msg);
		st = PX_SCENARIO_EJSON;
		goto out;
	}
	text = malloc(len + 1);
	if (!text) {
		st = PX_SCENARIO_ENOMEM;
		goto out;
	}
	memcpy(text, buf, len);
	text[len] = '\0';
	root = yajl_tree_parse(text, perr, sizeof(perr));
	if (!root) {
		snprintf(err, errlen, "%s: not JSON: %s", name, perr);
		st = PX_SCENARIO_EJSON;
		goto out;
	}
	if (!YAJL_IS_OBJECT(root))
		SHAPE("%s:1: a scenario is a JSON object", name);
	sc = calloc(1, sizeof(*sc));
	if (!sc) {
		st = PX_SCENARIO_ENOMEM;
		goto out;
	}
	sc->onset_chunk = sc->by_chunk = -1;
	v = get(root, "name");
	sc->name = dup_str(YAJL_IS_STRING(v) ? str_of(v) : name);
	v = get(root, "description");
	sc->description = dup_str(str_of(v));
	if (!sc->name || !sc->description) {
		st = PX_SCENARIO_ENOMEM;
		goto out;
	}
	v = get(root, "kind");
	if (v && strcmp(str_of(v), "loop") != 0 && strcmp(str_of(v), "healthy") != 0)
		SHAPE("%s: \"kind\" must be \"loop\" or \"healthy\"", name);
	sc->is_loop = v && strcmp(str_of(v), "loop") == 0;

	exp = get(root, "expect");
	if (exp) {
		if (!YAJL_IS_OBJECT(exp))
			SHAPE("%s: \"expect\" must be an object", name);
		v = get(exp, "trip");
		if (!v || !(YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)))
			SHAPE("%s: \"expect.trip\" must be true or false", name);
		sc->has_expect = true;
		sc->expect_trip = YAJL_IS_TRUE(v);
		v = get(exp, "guard");
		if (v && YAJL_IS_STRING(v)) {
			snprintf(sc->guards[0], sizeof(sc->guards[0]), "%s", str_of(v));
			sc->n_guards = 1;
		} else if (v && YAJL_IS_ARRAY(v)) {
			for (size_t i = 0; i < v->u.array.len && i < PX_SCENARIO_MAX_GUARDS; i++) {
				yajl_val g = v->u.array.values[i];

				if (!YAJL_IS_STRING(g))
					SHAPE("%s: \"expect.guard\" must be a string or a list of strings", name);
				snprintf(sc->guards[sc->n_guards++], sizeof(sc->guards[0]), "%s", str_of(g));
			}
		} else if (v) {
			SHAPE("%s: \"expect.guard\" must be a string or a list of strings", name);
		}
		if (!chunk_int(get(exp, "onset_chunk"), &sc->onset_chunk) ||
		    !chunk_int(get(exp, "by_chunk"), &sc->by_chunk))
			SHAPE("%s: \"expect.onset_chunk\"/\"by_chunk\" must be non-negative integers", name);
		if (sc->expect_trip && sc->by_chunk < 0)
			SHAPE("%s: a loop's \"expect\" needs \"by_chunk\"", name);
	}

	v = get(root, "config");
	if (v) {
		if (!YAJL_IS_OBJECT(v) || v->u.object.len > PX_SCENARIO_MAX_CONFIG)
			SHAPE("%s: \"config\" must be an object of at most %d \"key\": \"value\" pairs",
			      name, PX_SCENARIO_MAX_CONFIG);
		for (size_t i = 0; i < v->u.object.len; i++) {
			yajl_val cv = v->u.object.values[i];
			char num[64];
			const char *val;

			if (YAJL_IS_STRING(cv))
				val = str_of(cv);
			else if (YAJL_IS_NUMBER(cv))
				val = cv->u.number.r;
			else if (YAJL_IS_TRUE(cv) || YAJL_IS_FALSE(cv))
				val = strcpy(num, YAJL_IS_TRUE(cv) ? "true" : "false");
			else
				SHAPE("%s: \"config.%s\" must be a string, number or boolean", name,
				      v->u.object.keys[i]);
			sc->config_keys[sc->n_config] = dup_str(v->u.object.keys[i]);
			sc->config_values[sc->n_config] = dup_str(val);
			sc->n_config++;
			if (!sc->config_keys[sc->n_config - 1] || !sc->config_values[sc->n_config - 1]) {
				st = PX_SCENARIO_ENOMEM;
				goto out;
			}
		}
	}

	v = get(root, "request");
	if (v) {
		if (!YAJL_IS_OBJECT(v))
			SHAPE("%s: \"request\" must be a chat-completions request object", name);
		sc->request = serialize(v, &sc->request_len);
		if (!sc->request) {
			st = PX_SCENARIO_ENOMEM;
			goto out;
		}
	}

	chunks = get(root, "chunks");
	if (!chunks || !YAJL_IS_ARRAY(chunks))
		SHAPE("%s: \"chunks\" (an array of chunk objects and \"[DONE]\") is missing", name);
	sc->n_chunks = (uint32_t)chunks->u.array.len;
	sc->chunks = calloc(sc->n_chunks ? sc->n_chunks : 1, sizeof(*sc->chunks));
	if (!sc->chunks) {
		st = PX_SCENARIO_ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < sc->n_chunks; i++) {
		yajl_val c = chunks->u.array.values[i];
		struct px_scenario_chunk *pc = &sc->chunks[i];

		if (i < scan.n)
			px_text_position(buf, len, scan.starts[i], &pc->line, &col);
		if (YAJL_IS_STRING(c)) {
			pc->data = dup_str(str_of(c));
			pc->len = pc->data ? strlen(pc->data) : 0;
			pc->done = pc->data && strcmp(pc->data, "[DONE]") == 0;
		} else if (YAJL_IS_OBJECT(c)) {
			pc->data = serialize(c, &pc->len);
		} else {
			SHAPE("%s:%lu: chunk %u is neither an object nor a string", name, pc->line, i + 1);
		}
		if (!pc->data) {
			st = PX_SCENARIO_ENOMEM;
			goto out;
		}
	}
	*out = sc;
	sc = NULL;
out:
	px_scenario_free(sc);
	yajl_tree_free(root);
	free(text);
	free(scan.starts);
	if (scan.h)
		yajl_free(scan.h);
	return st;
}

enum px_scenario_status px_scenario_load(const char *path, struct px_scenario **out,
                                         char *err, size_t errlen)
{
	enum px_scenario_status st;
	FILE *f = NULL;
	char *buf = NULL;
	size_t len;

	*out = NULL;
	f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		st = PX_SCENARIO_EIO;
		goto out;
	}
	buf = malloc(PX_SCENARIO_FILE_MAX + 1);
	if (!buf) {
		st = PX_SCENARIO_ENOMEM;
		goto out;
	}
	len = fread(buf, 1, PX_SCENARIO_FILE_MAX + 1, f);
	if (ferror(f) || len > PX_SCENARIO_FILE_MAX) {
		snprintf(err, errlen, "%s: %s", path, ferror(f) ? "read error" : "file too large");
		st = PX_SCENARIO_EIO;
		goto out;
	}
	st = px_scenario_parse(path, buf, len, out, err, errlen);
out:
	free(buf);
	if (f)
		fclose(f);
	return st;
}
