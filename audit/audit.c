/* loopwarden-audit: replays recorded answers (scenario files, plain SSE files,
 * `loopwarden --record` directories) through the guards with a given config
 * and prints, per file, which guard trips at which chunk and why. Users tune
 * thresholds with it against their own recordings. Exit status: 0 all good,
 * 1 an --expect mismatch, 2 bad input or usage. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yajl/yajl_tree.h>

#include "audit/html.h"
#include "audit/replay.h"
#include "config/config.h"
#include "proxy/wire/scenario.h"
#include "proxy/wire/sse.h"

#define AUD_FILE_MAX (64u << 20)
#define AUD_EVENT_CAP (4u << 20)
#define AUD_PATH_MAX 4096

enum { EXIT_PASS = 0, EXIT_MISMATCH = 1, EXIT_BAD = 2 };

struct audit {
	struct gd_config cfg;
	struct gd_policy *policy;
	char *request;       /* --request body, or NULL */
	size_t request_len;
	const char *request_path; /* its file, for messages */
	bool expect;
	bool quiet;
	const char *html;    /* --html: the page, or the folder of pages */
	bool html_dir;       /* several recordings: one page each in the folder <html> */
	unsigned html_pages;
	int worst;
	unsigned files, trips, passes, errors, mismatches;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: loopwarden-audit [options] FILE|DIR...\n"
		"\n"
		"Replays recorded answers through loopwarden's guards and prints, per file,\n"
		"which guard trips at which chunk (and event) and why, or \"pass\" with counts.\n"
		"\n"
		"Inputs:\n"
		"  NAME.json     a scenario file (tests/data/README.md): request + chunks + expectation\n"
		"  FILE          a plain SSE file: lines of `data: {chunk}` (blank lines optional),\n"
		"                ending with `data: [DONE]`; add --request for the history guards\n"
		"  DIR           a `loopwarden --record` folder (request.json + stream.sse or\n"
		"                response.json), or a folder of such folders, scenarios and .sse files\n"
		"\n"
		"Options:\n"
		"  --config FILE.yaml   guard thresholds (the proxy's config file)\n"
		"  --set key=value      override one key, e.g. --set guards.name_run.max_run=12\n"
		"                       (repeatable; applied after --config)\n"
		"  --request REQ.json   the request body that produced plain SSE files\n"
		"  --expect             check each scenario's \"expect\"; exit 1 on a mismatch\n"
		"  --quiet              print only trips, mismatches and errors\n"
		"  --print-config       print the guard settings in effect (after --config and\n"
		"                       --set) as YAML, every key with its value\n"
		"  --html PATH          write one self-contained HTML page per recording: the answer\n"
		"                       as the client saw it, the loop's onset and the trip marked,\n"
		"                       the guard and its detail, and per guard a plot of how close\n"
		"                       it came. One recording: PATH is the page; several (or a\n"
		"                       folder, or PATH an existing folder): pages named after the\n"
		"                       inputs in the folder PATH (created)\n"
		"  --help               this text\n"
		"\n"
		"Exit status: 0 ok, 1 an --expect mismatch, 2 bad input (the message names file and line).\n");
}

static void worst(struct audit *a, int code)
{
	if (code > a->worst)
		a->worst = code;
}

static int read_all(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n;
	int rc = -1;

	*out = NULL;
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	buf = malloc(AUD_FILE_MAX + 1);
	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	n = fread(buf, 1, AUD_FILE_MAX + 1, f);
	if (ferror(f) || n > AUD_FILE_MAX) {
		snprintf(err, errlen, "%s: %s", path, ferror(f) ? "read error" : "file too large");
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	fclose(f);
	return rc;
}

static void bad(struct audit *a, const char *msg)
{
	fprintf(stderr, "%s\n", msg);
	a->errors++;
	worst(a, EXIT_BAD);
}

static void print_result(struct audit *a, const char *path, const struct aud_result *res)
{
	if (res->tripped) {
		a->trips++;
		if (res->history_trip)
			printf("%s: TRIP %s in the request history (before any chunk): %s\n", path,
			       res->trip.guard, res->trip.detail);
		else if (res->trip_line)
			printf("%s: TRIP %s at chunk %llu (event %llu, line %lu): %s\n", path, res->trip.guard,
			       (unsigned long long)res->trip_chunk, (unsigned long long)res->trip.event_no,
			       res->trip_line, res->trip.detail);
		else
			printf("%s: TRIP %s at chunk %llu (event %llu): %s\n", path, res->trip.guard,
			       (unsigned long long)res->trip_chunk, (unsigned long long)res->trip.event_no,
			       res->trip.detail);
		return;
	}
	a->passes++;
	if (a->quiet)
		return;
	printf("%s: pass (%llu chunks, %llu events, %llu tool calls, %llu text bytes, "
	       "%llu reasoning bytes, finish_reason %s)\n", path,
	       (unsigned long long)res->chunks, (unsigned long long)res->events,
	       (unsigned long long)res->tool_calls,
	       (unsigned long long)res->stats.text_bytes,
	       (unsigned long long)res->stats.reasoning_bytes,
	       res->finished ? res->finish_reason : "(none)");
}

static void check_expect(struct audit *a, const char *path, const struct px_scenario *sc,
                         const struct aud_result *res)
{
	char why[512] = "";

	if (!sc->has_expect) {
		printf("%s: expect: (the scenario states none)\n", path);
		return;
	}
	if (!sc->expect_trip && res->tripped) {
		snprintf(why, sizeof(why), "healthy, but %s tripped at chunk %llu", res->trip.guard,
		         (unsigned long long)res->trip_chunk);
	} else if (sc->expect_trip && !res->tripped) {
		snprintf(why, sizeof(why), "a loop that must trip by chunk %lld, but nothing tripped",
		         (long long)sc->by_chunk);
	} else if (sc->expect_trip && (int64_t)res->trip_chunk > sc->by_chunk) {
		snprintf(why, sizeof(why), "must trip by chunk %lld, tripped at chunk %llu",
		         (long long)sc->by_chunk, (unsigned long long)res->trip_chunk);
	} else if (sc->expect_trip && !px_scenario_guard_ok(sc, res->trip.guard)) {
		snprintf(why, sizeof(why), "expected guard %s%s, got %s", sc->guards[0],
		         sc->n_guards > 1 ? " (or another listed)" : "", res->trip.guard);
	}
	if (why[0]) {
		a->mismatches++;
		worst(a, EXIT_MISMATCH);
		printf("%s: expect: MISMATCH: %s\n", path, why);
	} else if (!a->quiet) {
		if (sc->expect_trip && sc->onset_chunk >= 0)
			printf("%s: expect: ok (%lld chunks past the onset)\n", path,
			       (long long)res->trip_chunk - (long long)sc->onset_chunk);
		else
			printf("%s: expect: ok\n", path);
	}
}

/* A collector for <path>'s page, or NULL without --html. */
static struct aud_html *html_begin(struct audit *a, const char *path, struct aud_replay *r)
{
	struct aud_html *h;

	if (!a->html || !r)
		return NULL;
	h = aud_html_new(path);
	if (h)
		aud_replay_observe(r, aud_html_observer(h));
	return h;
}

/* Writes <path>'s page (see --html) and frees <h>. */
static void html_end(struct audit *a, struct aud_html *h, const char *path,
                     const struct aud_result *res)
{
	char file[AUD_PATH_MAX], err[AUD_PATH_MAX + 64];

	if (!h)
		return;
	if (a->html_dir) {
		size_t o = (size_t)snprintf(file, sizeof(file), "%s/", a->html);
		for (const char *p = path; *p && o + 6 < sizeof(file); p++) {
			char c = *p;
			bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			          (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
			if (o == strlen(a->html) + 1 && (c == '.' || c == '/'))
				continue; /* no leading dots or slashes */
			file[o++] = ok ? c : '_';
		}
		snprintf(file + o, sizeof(file) - o, ".html");
	} else if (a->html_pages > 0) {
		fprintf(stderr, "loopwarden-audit: --html %s: one page per recording, and there are "
		        "several: give a folder\n", a->html);
		a->errors++;
		worst(a, EXIT_BAD);
		aud_html_free(h);
		return;
	} else {
		snprintf(file, sizeof(file), "%s", a->html);
	}
	if (aud_html_write(h, res, file, err, sizeof(err)) != 0) {
		fprintf(stderr, "loopwarden-audit: %s\n", err);
		a->errors++;
		worst(a, EXIT_BAD);
	} else {
		a->html_pages++;
	}
	aud_html_free(h);
}

static void audit_scenario(struct audit *a, const char *path, const char *buf, size_t len)
{
	struct px_scenario *sc = NULL;
	struct gd_policy *own = NULL;
	const struct gd_policy *policy = a->policy;
	struct aud_replay *r = NULL;
	struct aud_html *html = NULL;
	struct aud_result res;
	enum aud_status st;
	char err[512];

	if (px_scenario_parse(path, buf, len, &sc, err, sizeof(err)) != PX_SCENARIO_OK) {
		bad(a, err);
		goto out;
	}
	if (sc->n_config > 0) {
		struct gd_config cfg;

		if (aud_config_apply(&a->cfg, &cfg, sc->config_keys, sc->config_values, sc->n_config,
		                     err, sizeof(err)) != AUD_OK) {
			fprintf(stderr, "%s: %s\n", path, err);
			a->errors++;
			worst(a, EXIT_BAD);
			goto out;
		}
		own = gd_policy_new(&cfg, err, sizeof(err));
		if (!own) {
			fprintf(stderr, "%s: config: %s\n", path, err);
			a->errors++;
			worst(a, EXIT_BAD);
			goto out;
		}
		policy = own;
	}
	r = aud_replay_new(policy, sc->request, sc->request_len, &st, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "%s: \"request\": %s\n", path, err);
		a->errors++;
		worst(a, EXIT_BAD);
		goto out;
	}
	html = html_begin(a, path, r);
	st = aud_replay_history(r);
	for (uint32_t i = 0; st == AUD_OK && i < sc->n_chunks; i++) {
		const struct px_scenario_chunk *c = &sc->chunks[i];

		st = aud_replay_chunk(r, c->data, c->len, i + 1, c->line, err, sizeof(err));
		if (st == AUD_ECHUNK) {
			fprintf(stderr, "%s:%lu: chunk %u: %s\n", path, c->line, i + 1, err);
			a->errors++;
			worst(a, EXIT_BAD);
			goto out;
		}
		if (st == AUD_EUPSTREAM) {
			fprintf(stderr, "%s:%lu: chunk %u: the recording holds an %s\n", path, c->line,
			        i + 1, err);
			break;
		}
	}
	aud_replay_finish(r, &res);
	if (!res.tripped && !res.done)
		fprintf(stderr, "%s: warning: the stream ends without [DONE]\n", path);
	print_result(a, path, &res);
	if (a->expect)
		check_expect(a, path, sc, &res);
	html_end(a, html, path, &res);
	html = NULL;
out:
	aud_html_free(html);
	aud_replay_free(r);
	gd_policy_free(own);
	px_scenario_free(sc);
}

struct sse_ctx {
	struct audit *a;
	struct aud_replay *r;
	const char *path;
	enum aud_status st;
	char err[512];
	unsigned long bad_line;
	bool truncated;
};

static int on_sse(const struct px_sse_event *ev, void *arg)
{
	struct sse_ctx *x = arg;

	x->st = aud_replay_chunk(x->r, ev->data, ev->len, ev->number, (unsigned long)ev->line,
	                         x->err, sizeof(x->err));
	if (x->st == AUD_ECHUNK || x->st == AUD_EUPSTREAM) {
		x->bad_line = (unsigned long)ev->line;
		x->truncated = ev->truncated;
	}
	return x->st != AUD_OK;
}

/* Replays <buf> (SSE text) with <request> as the history. */
static void audit_sse(struct audit *a, const char *path, const char *buf, size_t len,
                      const char *request, size_t request_len, const char *request_path)
{
	/* A file of `data:` lines without blank lines is a list of events;
	 * anything with blank-line framing is parsed as the standard says. */
	bool framed = strstr(buf, "\n\n") || strstr(buf, "\r\n\r\n") || strstr(buf, "\r\r");
	struct px_sse *sse = px_sse_new(framed ? PX_SSE_MODE_STREAM : PX_SSE_MODE_LINES, AUD_EVENT_CAP);
	struct sse_ctx x;
	struct aud_result res;
	struct aud_html *html = NULL;
	enum px_sse_status ss;
	char err[512];

	memset(&x, 0, sizeof(x));
	x.a = a;
	x.path = path;
	if (!sse) {
		fprintf(stderr, "%s: out of memory\n", path);
		a->errors++;
		worst(a, EXIT_BAD);
		goto out;
	}
	x.r = aud_replay_new(a->policy, request, request_len, &x.st, err, sizeof(err));
	if (!x.r) {
		fprintf(stderr, "%s: %s\n", request_path ? request_path : path, err);
		a->errors++;
		worst(a, EXIT_BAD);
		goto out;
	}
	html = html_begin(a, path, x.r);
	x.st = aud_replay_history(x.r);
	if (x.st == AUD_OK) {
		ss = px_sse_feed(sse, buf, len, on_sse, &x, err, sizeof(err));
		if (ss == PX_SSE_OK)
			ss = px_sse_finish(sse, on_sse, &x, err, sizeof(err));
		if (ss == PX_SSE_ETOOBIG || ss == PX_SSE_ENOMEM) {
			fprintf(stderr, "%s: %s\n", path, err);
			a->errors++;
			worst(a, EXIT_BAD);
			goto out;
		}
	}
	if (x.st == AUD_ECHUNK) {
		if (x.truncated)
			fprintf(stderr, "%s:%lu: truncated stream: the last event is cut short: %s\n", path,
			        x.bad_line, x.err);
		else
			fprintf(stderr, "%s:%lu: %s\n", path, x.bad_line, x.err);
		a->errors++;
		worst(a, EXIT_BAD);
		goto out;
	}
	if (x.st == AUD_EUPSTREAM)
		fprintf(stderr, "%s:%lu: the recording holds an %s\n", path, x.bad_line, x.err);
	aud_replay_finish(x.r, &res);
	if (!res.tripped && !res.done)
		fprintf(stderr, "%s: warning: the stream ends without [DONE]\n", path);
	if (!res.tripped && res.chunks == 0)
		fprintf(stderr, "%s: warning: no `data:` events found\n", path);
	print_result(a, path, &res);
	html_end(a, html, path, &res);
	html = NULL;
out:
	aud_html_free(html);
	aud_replay_free(x.r);
	px_sse_free(sse);
}

static bool is_file(const char *path)
{
	struct stat stt;

	return stat(path, &stt) == 0 && S_ISREG(stt.st_mode);
}

static bool is_record_dir(const char *dir)
{
	char p[AUD_PATH_MAX];

	snprintf(p, sizeof(p), "%s/request.json", dir);
	if (!is_file(p))
		return false;
	snprintf(p, sizeof(p), "%s/stream.sse", dir);
	if (is_file(p))
		return true;
	snprintf(p, sizeof(p), "%s/response.json", dir);
	return is_file(p);
}

static void audit_record(struct audit *a, const char *dir)
{
	char req_path[AUD_PATH_MAX], p[AUD_PATH_MAX], err[512];
	char *req = NULL, *body = NULL;
	size_t req_len = 0, body_len = 0;

	snprintf(req_path, sizeof(req_path), "%s/request.json", dir);
	if (read_all(req_path, &req, &req_len, err, sizeof(err)) != 0) {
		bad(a, err);
		goto out;
	}
	snprintf(p, sizeof(p), "%s/stream.sse", dir);
	if (is_file(p)) {
		if (read_all(p, &body, &body_len, err, sizeof(err)) != 0) {
			bad(a, err);
			goto out;
		}
		audit_sse(a, p, body, body_len, req, req_len, req_path);
	} else {
		struct aud_replay *r;
		struct aud_result res;
		enum aud_status st;

		snprintf(p, sizeof(p), "%s/response.json", dir);
		if (read_all(p, &body, &body_len, err, sizeof(err)) != 0) {
			bad(a, err);
			goto out;
		}
		r = aud_replay_new(a->policy, req, req_len, &st, err, sizeof(err));
		if (!r) {
			fprintf(stderr, "%s: %s\n", req_path, err);
			a->errors++;
			worst(a, EXIT_BAD);
			goto out;
		}
		struct aud_html *html = html_begin(a, p, r);
		if (html)
			aud_html_set_body(html, true);
		st = aud_replay_history(r);
		if (st == AUD_OK)
			st = aud_replay_body(r, body, body_len, err, sizeof(err));
		if (st == AUD_ECHUNK) {
			fprintf(stderr, "%s:1: %s\n", p, err);
			a->errors++;
			worst(a, EXIT_BAD);
		} else {
			if (st == AUD_EUPSTREAM)
				fprintf(stderr, "%s: the recording holds an %s\n", p, err);
			aud_replay_finish(r, &res);
			res.done = true; /* a body has no [DONE] */
			print_result(a, p, &res);
			html_end(a, html, p, &res);
			html = NULL;
		}
		aud_html_free(html);
		aud_replay_free(r);
	}
out:
	free(req);
	free(body);
}

static void audit_path(struct audit *a, const char *path, int depth);

static int by_name(const struct dirent **x, const struct dirent **y)
{
	return strcmp((*x)->d_name, (*y)->d_name);
}

static void audit_dir(struct audit *a, const char *dir, int depth)
{
	struct dirent **list = NULL;
	int n;

	if (is_record_dir(dir)) {
		a->files++;
		audit_record(a, dir);
		return;
	}
	n = scandir(dir, &list, NULL, by_name);
	if (n < 0) {
		fprintf(stderr, "%s: cannot list: %s\n", dir, strerror(errno));
		a->errors++;
		worst(a, EXIT_BAD);
		return;
	}
	for (int i = 0; i < n; i++) {
		const char *nm = list[i]->d_name;
		size_t l = strlen(nm);
		char p[AUD_PATH_MAX];
		struct stat stt;

		if (nm[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, nm);
		if (stat(p, &stt) != 0)
			continue;
		/* One level of folders (a --record folder of request folders). */
		if (S_ISDIR(stt.st_mode) && depth == 0)
			audit_path(a, p, depth + 1);
		else if (S_ISREG(stt.st_mode) && ((l > 5 && strcmp(nm + l - 5, ".json") == 0) ||
		                                   (l > 4 && strcmp(nm + l - 4, ".sse") == 0)))
			audit_path(a, p, depth + 1);
	}
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static void audit_path(struct audit *a, const char *path, int depth)
{
	struct stat stt;
	char *buf = NULL;
	size_t len = 0;
	char err[512];
	const char *p;

	if (stat(path, &stt) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		a->errors++;
		worst(a, EXIT_BAD);
		return;
	}
	if (S_ISDIR(stt.st_mode)) {
		audit_dir(a, path, depth);
		return;
	}
	a->files++;
	if (read_all(path, &buf, &len, err, sizeof(err)) != 0) {
		bad(a, err);
		return;
	}
	for (p = buf; *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'; p++)
		;
	/* A JSON document is a scenario; anything else is read as SSE. */
	if (*p == '{' || *p == '[' || (len > 5 && strcmp(path + strlen(path) - 5, ".json") == 0))
		audit_scenario(a, path, buf, len);
	else
		audit_sse(a, path, buf, len, a->request, a->request_len, a->request_path);
	free(buf);
}

#define YAML_MAX_KEYS 1024

struct yaml_keys {
	char *key[YAML_MAX_KEYS];
	char *value[YAML_MAX_KEYS];
	unsigned n;
};

static void collect(const char *key, const char *value, void *ctx)
{
	struct yaml_keys *k = ctx;

	if (k->n < YAML_MAX_KEYS) {
		k->key[k->n] = strdup(key);
		k->value[k->n] = strdup(value);
		if (k->key[k->n] && k->value[k->n])
			k->n++;
	}
}

/* <key> takes a list when it accepts "[]" (the clear value). */
static bool is_list_key(const struct gd_config *cfg, const char *key)
{
	struct gd_config *probe = malloc(sizeof(*probe));
	char why[256];
	bool list;

	if (!probe)
		return false;
	*probe = *cfg;
	list = gd_config_set(probe, key, "[]", why, sizeof(why)) == 0;
	free(probe);
	return list;
}

/* Length of the common leading dotted components of <a> and <b>. */
static size_t common_prefix(const char *a, const char *b)
{
	size_t i = 0, last = 0;

	while (a[i] && a[i] == b[i]) {
		if (a[i] == '.')
			last = i + 1;
		i++;
	}
	if ((a[i] == '\0' || a[i] == '.') && (b[i] == '\0' || b[i] == '.'))
		last = i + 1;
	return last;
}

static void print_quoted(const char *v)
{
	bool plain = *v != '\0' && strcmp(v, "null") != 0 && strcmp(v, "Null") != 0 &&
	             strcmp(v, "NULL") != 0;

	for (const char *c = v; plain && *c; c++)
		plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		        (*c >= '0' && *c <= '9') || *c == '_' || *c == '.';
	if (plain) {
		fputs(v, stdout);
		return;
	}
	putchar('\'');
	for (; *v; v++) {
		if (*v == '\'')
			putchar('\'');
		putchar(*v);
	}
	putchar('\'');
}

/* Prints <cfg> as nested YAML that cfg_load_file reads back to the same
 * config: dotted keys become mappings, list keys sequences. */
static void print_yaml(const struct gd_config *cfg)
{
	struct yaml_keys k;
	const char *prev = "";

	memset(&k, 0, sizeof(k));
	gd_config_each(cfg, collect, &k);
	printf("# loopwarden guard settings (loopwarden-audit --print-config)\n");
	for (unsigned i = 0; i < k.n; i++) {
		const char *key = k.key[i];
		bool same = i > 0 && strcmp(key, k.key[i - 1]) == 0;
		size_t from, depth = 0;
		const char *p;

		if (!same) {
			bool list = is_list_key(cfg, key);

			from = i > 0 ? common_prefix(prev, key) : 0;
			if (from > strlen(key))
				from = strlen(key);
			for (p = key; p < key + from; p++)
				depth += *p == '.';
			/* Open every component after the common prefix. */
			for (p = key + from;;) {
				const char *dot = strchr(p, '.');
				size_t len = dot ? (size_t)(dot - p) : strlen(p);

				printf("%*s%.*s:", (int)(2 * depth), "", (int)len, p);
				if (!dot)
					break;
				putchar('\n');
				depth++;
				p = dot + 1;
			}
			if (!list) {
				putchar(' ');
				print_quoted(k.value[i]);
				putchar('\n');
				prev = key;
				continue;
			}
			putchar('\n');
		}
		for (p = key, depth = 0; *p; p++)
			depth += *p == '.';
		printf("%*s- ", (int)(2 * depth + 2), "");
		print_quoted(k.value[i]);
		putchar('\n');
		prev = key;
	}
	for (unsigned i = 0; i < k.n; i++) {
		free(k.key[i]);
		free(k.value[i]);
	}
}

static int setter(const char *key, const char *value, const char *file, unsigned long line,
                  void *ctx, char *err, size_t errlen)
{
	(void)file;
	(void)line;
	/* The audit tool reads the proxy's own config file: its proxy.* keys
	 * (listen address, upstream, caps) do not concern the guards. */
	if (strncmp(key, "proxy.", 6) == 0)
		return 0;
	return gd_config_set(ctx, key, value, err, errlen);
}

/* --html PATH: a page, or a folder of pages when there are several
 * recordings (several inputs, or a folder of them) or PATH is a folder. */
static int html_setup(struct audit *a, int argc, char **argv, int n_inputs)
{
	struct stat st;
	const char *input = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "--set") == 0 ||
		    strcmp(argv[i], "--request") == 0 || strcmp(argv[i], "--html") == 0) {
			i++;
			continue;
		}
		if (strncmp(argv[i], "--", 2) != 0 && strcmp(argv[i], "-q") != 0)
			input = argv[i];
	}
	a->html_dir = n_inputs > 1 || (stat(a->html, &st) == 0 && S_ISDIR(st.st_mode)) ||
	              (input && stat(input, &st) == 0 && S_ISDIR(st.st_mode) &&
	               !is_record_dir(input));
	if (a->html_dir && mkdir(a->html, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "loopwarden-audit: --html %s: %s\n", a->html, strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct audit a;
	char err[512];
	int i, n_inputs = 0;
	bool print_config = false;

	memset(&a, 0, sizeof(a));
	gd_config_defaults(&a.cfg);
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			usage(stdout);
			return EXIT_PASS;
		} else if (strcmp(arg, "--config") == 0 || strcmp(arg, "--set") == 0 ||
		           strcmp(arg, "--request") == 0 || strcmp(arg, "--html") == 0) {
			if (arg[2] == 'h')
				a.html = i + 1 < argc ? argv[i + 1] : NULL;
			if (i + 1 >= argc) {
				fprintf(stderr, "loopwarden-audit: %s needs a value\n", arg);
				return EXIT_BAD;
			}
			i++;
		} else if (strcmp(arg, "--expect") == 0) {
			a.expect = true;
		} else if (strcmp(arg, "--print-config") == 0) {
			print_config = true;
		} else if (strcmp(arg, "--quiet") == 0 || strcmp(arg, "-q") == 0) {
			a.quiet = true;
		} else if (strncmp(arg, "--", 2) == 0) {
			fprintf(stderr, "loopwarden-audit: unknown option %s (see --help)\n", arg);
			return EXIT_BAD;
		} else {
			n_inputs++;
		}
	}
	if (n_inputs == 0 && !print_config) {
		usage(stderr);
		return EXIT_BAD;
	}
	/* Options apply in order: --config then --set, whatever their position
	 * among the inputs. */
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0) {
			if (cfg_load_file(argv[++i], setter, &a.cfg, err, sizeof(err)) != CFG_OK) {
				fprintf(stderr, "loopwarden-audit: %s\n", err);
				return EXIT_BAD;
			}
		} else if (strcmp(argv[i], "--set") == 0 || strcmp(argv[i], "--request") == 0 ||
		           strcmp(argv[i], "--html") == 0) {
			i++;
		}
	}
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--set") == 0) {
			char key[CFG_KEY_MAX], value[CFG_VALUE_MAX], why[256];

			if (cfg_parse_kv(argv[++i], key, sizeof(key), value, sizeof(value), err,
			                 sizeof(err)) != CFG_OK) {
				fprintf(stderr, "loopwarden-audit: %s\n", err);
				return EXIT_BAD;
			}
			why[0] = '\0';
			if (gd_config_set(&a.cfg, key, value, why, sizeof(why)) != 0) {
				fprintf(stderr, "loopwarden-audit: --set %s: %s\n", argv[i], why);
				return EXIT_BAD;
			}
		} else if (strcmp(argv[i], "--request") == 0) {
			free(a.request); /* the last --request wins */
			a.request = NULL;
			a.request_path = argv[i + 1];
			if (read_all(argv[++i], &a.request, &a.request_len, err, sizeof(err)) != 0) {
				fprintf(stderr, "loopwarden-audit: %s\n", err);
				return EXIT_BAD;
			}
		} else if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "--html") == 0) {
			i++;
		}
	}
	if (print_config) {
		print_yaml(&a.cfg);
		if (n_inputs == 0) {
			free(a.request);
			return EXIT_PASS;
		}
	}
	a.policy = gd_policy_new(&a.cfg, err, sizeof(err));
	if (!a.policy) {
		fprintf(stderr, "loopwarden-audit: config: %s\n", err);
		free(a.request);
		return EXIT_BAD;
	}
	if (a.html && html_setup(&a, argc, argv, n_inputs) != 0) {
		gd_policy_free(a.policy);
		free(a.request);
		return EXIT_BAD;
	}
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "--set") == 0 ||
		    strcmp(argv[i], "--request") == 0 || strcmp(argv[i], "--html") == 0) {
			i++;
			continue;
		}
		if (strncmp(argv[i], "--", 2) == 0 || strcmp(argv[i], "-q") == 0)
			continue;
		/* "dir/" and "dir" name the same folder: print paths without the slash. */
		{
			char p[AUD_PATH_MAX];
			size_t l;

			snprintf(p, sizeof(p), "%s", argv[i]);
			l = strlen(p);
			while (l > 1 && p[l - 1] == '/')
				p[--l] = '\0';
			audit_path(&a, p, 0);
		}
	}
	if (a.files > 1)
		printf("%u files: %u tripped, %u passed, %u errors%s\n", a.files, a.trips, a.passes,
		       a.errors, a.expect ? "" : "");
	if (a.expect && a.files > 1)
		printf("expectations: %u mismatches\n", a.mismatches);
	gd_policy_free(a.policy);
	free(a.request);
	return a.worst;
}
