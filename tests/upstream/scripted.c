/* The scripted upstream (see scripted.h). Test code: plain, bounded. */
#include "scripted.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#define MAX_SCENARIOS 256
#define MAX_CALLS 64
#define FILE_MAX (8u << 20)

struct scenario {
	char name[128];
	char *request;
	char **chunks;
	size_t n_chunks;
	char *body; /* the non-stream chat.completion */
	struct up_expect expect;
};

struct up_server {
	struct event_base *base;
	struct evhttp *http;
	uint16_t port;
	struct scenario sc[MAX_SCENARIOS];
	size_t n_sc;
	int def;
	struct up_program prog;
	struct up_record rec[UP_MAX_RECORDS];
	size_t n_rec;
	uint64_t active;
	struct resp *resps;
	up_write_hook hook;
	void *hook_ctx;
	SSL_CTX *ssl_ctx;
};

/* One response being written. */
struct resp {
	struct up_server *s;
	struct resp *prev, *next;
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	struct event *timer;
	const struct scenario *sc;
	struct up_program prog;
	size_t next_chunk;
	struct up_record *rec;
	struct up_record scratch;
	size_t index;
	uint64_t rng;
	char *pending; /* the second half of a split event, sent on the next tick */
	bool mid_sent; /* UP_RESET / UP_CLOSE with <mid>: the half event went out */
	uint64_t idle_n; /* UP_USAGE_ONLY / UP_EMPTY_DELTAS: chunks without content sent */
	bool gone;
};

static const char *mode_names[UP_MODE_COUNT] = {
	"replay", "stall", "reset", "close", "garbage", "noise", "status", "status_text", "no_done",
	"flood", "usage_only", "empty_deltas", "status_bad_text", "status_nested"};

const char *up_mode_name(enum up_mode m)
{
	return m < UP_MODE_COUNT ? mode_names[m] : "?";
}

int up_mode_parse(const char *name, enum up_mode *out)
{
	for (int i = 0; i < UP_MODE_COUNT; i++)
		if (strcmp(name, mode_names[i]) == 0) {
			*out = (enum up_mode)i;
			return 0;
		}
	return -1;
}

/* ---- JSON helpers ---- */

static void gen_tree(yajl_gen g, yajl_val v)
{
	if (!v) {
		yajl_gen_null(g);
		return;
	}
	switch (v->type) {
	case yajl_t_string:
		yajl_gen_string(g, (const unsigned char *)v->u.string, strlen(v->u.string));
		break;
	case yajl_t_number:
		yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
		break;
	case yajl_t_object:
		yajl_gen_map_open(g);
		for (size_t i = 0; i < v->u.object.len; i++) {
			yajl_gen_string(g, (const unsigned char *)v->u.object.keys[i],
			                strlen(v->u.object.keys[i]));
			gen_tree(g, v->u.object.values[i]);
		}
		yajl_gen_map_close(g);
		break;
	case yajl_t_array:
		yajl_gen_array_open(g);
		for (size_t i = 0; i < v->u.array.len; i++)
			gen_tree(g, v->u.array.values[i]);
		yajl_gen_array_close(g);
		break;
	case yajl_t_true:
		yajl_gen_bool(g, 1);
		break;
	case yajl_t_false:
		yajl_gen_bool(g, 0);
		break;
	default:
		yajl_gen_null(g);
	}
}

static char *tree_text(yajl_val v)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	if (!g)
		return NULL;
	gen_tree(g, v);
	const unsigned char *buf;
	size_t len;
	yajl_gen_get_buf(g, &buf, &len);
	char *s = malloc(len + 1);
	if (s) {
		memcpy(s, buf, len);
		s[len] = '\0';
	}
	yajl_gen_free(g);
	return s;
}

static yajl_val get(yajl_val v, const char *key)
{
	if (!v || !YAJL_IS_OBJECT(v))
		return NULL;
	for (size_t i = 0; i < v->u.object.len; i++)
		if (strcmp(v->u.object.keys[i], key) == 0)
			return v->u.object.values[i];
	return NULL;
}

struct dstr {
	char *p;
	size_t n, cap;
};

static void dstr_add(struct dstr *d, const char *s, size_t n)
{
	if (d->n + n + 1 > d->cap) {
		size_t cap = d->cap ? d->cap : 64;
		while (cap < d->n + n + 1)
			cap *= 2;
		char *p = realloc(d->p, cap);
		if (!p)
			abort(); /* test helper: out of memory is fatal */
		d->p = p;
		d->cap = cap;
	}
	memcpy(d->p + d->n, s, n);
	d->n += n;
	d->p[d->n] = '\0';
}

static void gen_cstr(yajl_gen g, const char *s)
{
	yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

/* Folds the chunks into one chat.completion body, the way a server answers
 * the same request with stream=false. */
static char *aggregate(yajl_val chunks)
{
	struct dstr content = {0}, reasoning = {0};
	struct call {
		long index;
		char id[128];
		char name[256];
		struct dstr args;
	} calls[MAX_CALLS];
	size_t n_calls = 0;
	bool have_content = false, have_reasoning = false;
	yajl_val first = NULL, usage = NULL, finish = NULL;
	for (size_t i = 0; i < chunks->u.array.len; i++) {
		yajl_val c = chunks->u.array.values[i];
		if (!YAJL_IS_OBJECT(c))
			continue;
		if (!first)
			first = c;
		yajl_val u = get(c, "usage");
		if (u && YAJL_IS_OBJECT(u))
			usage = u;
		yajl_val choices = get(c, "choices");
		if (!choices || !YAJL_IS_ARRAY(choices) || choices->u.array.len == 0)
			continue;
		yajl_val ch = choices->u.array.values[0];
		yajl_val fr = get(ch, "finish_reason");
		if (fr && YAJL_IS_STRING(fr))
			finish = fr;
		yajl_val d = get(ch, "delta");
		yajl_val t = get(d, "content");
		if (t && YAJL_IS_STRING(t)) {
			dstr_add(&content, t->u.string, strlen(t->u.string));
			have_content = true;
		}
		t = get(d, "reasoning_content");
		if (!t)
			t = get(d, "reasoning");
		if (t && YAJL_IS_STRING(t)) {
			dstr_add(&reasoning, t->u.string, strlen(t->u.string));
			have_reasoning = true;
		}
		yajl_val tcs = get(d, "tool_calls");
		if (!tcs || !YAJL_IS_ARRAY(tcs))
			continue;
		for (size_t j = 0; j < tcs->u.array.len; j++) {
			yajl_val tc = tcs->u.array.values[j];
			yajl_val vi = get(tc, "index"), vid = get(tc, "id"), fn = get(tc, "function");
			long index = vi && YAJL_IS_INTEGER(vi) ? (long)YAJL_GET_INTEGER(vi) : 0;
			const char *id = vid && YAJL_IS_STRING(vid) ? vid->u.string : "";
			struct call *cl = NULL;
			for (size_t k = n_calls; k-- > 0;)
				if (calls[k].index == index) {
					cl = &calls[k];
					break;
				}
			if (!cl || (*id && strcmp(cl->id, id) != 0)) {
				if (n_calls == MAX_CALLS)
					continue;
				cl = &calls[n_calls++];
				memset(cl, 0, sizeof(*cl));
				cl->index = index;
				snprintf(cl->id, sizeof(cl->id), "%s", id);
			}
			yajl_val nm = get(fn, "name");
			if (nm && YAJL_IS_STRING(nm) && !cl->name[0])
				snprintf(cl->name, sizeof(cl->name), "%s", nm->u.string);
			yajl_val ar = get(fn, "arguments");
			if (ar && YAJL_IS_STRING(ar))
				dstr_add(&cl->args, ar->u.string, strlen(ar->u.string));
		}
	}
	yajl_gen g = yajl_gen_alloc(NULL);
	yajl_gen_map_open(g);
	yajl_val v = get(first, "id");
	gen_cstr(g, "id");
	gen_cstr(g, v && YAJL_IS_STRING(v) ? v->u.string : "chatcmpl-scripted");
	gen_cstr(g, "object");
	gen_cstr(g, "chat.completion");
	gen_cstr(g, "created");
	v = get(first, "created");
	if (v && YAJL_IS_NUMBER(v))
		gen_tree(g, v);
	else
		yajl_gen_integer(g, 1700000000);
	gen_cstr(g, "model");
	v = get(first, "model");
	gen_cstr(g, v && YAJL_IS_STRING(v) ? v->u.string : "scripted");
	gen_cstr(g, "choices");
	yajl_gen_array_open(g);
	yajl_gen_map_open(g);
	gen_cstr(g, "index");
	yajl_gen_integer(g, 0);
	gen_cstr(g, "message");
	yajl_gen_map_open(g);
	gen_cstr(g, "role");
	gen_cstr(g, "assistant");
	gen_cstr(g, "content");
	if (have_content)
		yajl_gen_string(g, (const unsigned char *)content.p, content.n);
	else
		yajl_gen_null(g);
	if (have_reasoning) {
		gen_cstr(g, "reasoning_content");
		yajl_gen_string(g, (const unsigned char *)reasoning.p, reasoning.n);
	}
	if (n_calls) {
		gen_cstr(g, "tool_calls");
		yajl_gen_array_open(g);
		for (size_t k = 0; k < n_calls; k++) {
			yajl_gen_map_open(g);
			gen_cstr(g, "id");
			gen_cstr(g, calls[k].id);
			gen_cstr(g, "type");
			gen_cstr(g, "function");
			gen_cstr(g, "function");
			yajl_gen_map_open(g);
			gen_cstr(g, "name");
			gen_cstr(g, calls[k].name);
			gen_cstr(g, "arguments");
			yajl_gen_string(g, (const unsigned char *)(calls[k].args.p ? calls[k].args.p : ""),
			                calls[k].args.n);
			yajl_gen_map_close(g);
			yajl_gen_map_close(g);
			free(calls[k].args.p);
		}
		yajl_gen_array_close(g);
	}
	yajl_gen_map_close(g);
	gen_cstr(g, "finish_reason");
	if (finish)
		gen_tree(g, finish);
	else
		gen_cstr(g, "stop");
	yajl_gen_map_close(g);
	yajl_gen_array_close(g);
	if (usage) {
		gen_cstr(g, "usage");
		gen_tree(g, usage);
	}
	yajl_gen_map_close(g);
	const unsigned char *buf;
	size_t len;
	yajl_gen_get_buf(g, &buf, &len);
	char *out = malloc(len + 1);
	if (out) {
		memcpy(out, buf, len);
		out[len] = '\0';
	}
	yajl_gen_free(g);
	free(content.p);
	free(reasoning.p);
	return out;
}

static int load_file(struct up_server *s, const char *path, char *err, size_t errlen)
{
	if (s->n_sc == MAX_SCENARIOS) {
		snprintf(err, errlen, "%s: too many scenarios", path);
		return -1;
	}
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char *text = malloc(FILE_MAX + 1);
	size_t n = text ? fread(text, 1, FILE_MAX + 1, f) : 0;
	fclose(f);
	if (!text || n > FILE_MAX) {
		free(text);
		snprintf(err, errlen, "%s: unreadable or larger than %u bytes", path, FILE_MAX);
		return -1;
	}
	text[n] = '\0';
	char perr[256];
	yajl_val root = yajl_tree_parse(text, perr, sizeof(perr));
	free(text);
	yajl_val chunks = get(root, "chunks");
	if (!root || !chunks || !YAJL_IS_ARRAY(chunks)) {
		snprintf(err, errlen, "%s: not a scenario (%s)", path, root ? "no \"chunks\" array" : perr);
		yajl_tree_free(root);
		return -1;
	}
	struct scenario *sc = &s->sc[s->n_sc];
	memset(sc, 0, sizeof(*sc));
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	snprintf(sc->name, sizeof(sc->name), "%s", base);
	char *dot = strstr(sc->name, ".json");
	if (dot)
		*dot = '\0';
	sc->request = tree_text(get(root, "request"));
	yajl_val kind = get(root, "kind"), ex = get(root, "expect"), cfg = get(root, "config");
	sc->expect.loop = kind && YAJL_IS_STRING(kind) && strcmp(kind->u.string, "loop") == 0;
	yajl_val et = get(ex, "trip"), eb = get(ex, "by_chunk");
	sc->expect.trip = et && YAJL_IS_TRUE(et);
	sc->expect.by_chunk = eb && YAJL_IS_INTEGER(eb) ? (long)YAJL_GET_INTEGER(eb) : -1;
	sc->expect.has_config = cfg && YAJL_IS_OBJECT(cfg) && cfg->u.object.len > 0;
	sc->chunks = calloc(chunks->u.array.len + 1, sizeof(char *));
	for (size_t i = 0; sc->chunks && i < chunks->u.array.len; i++) {
		yajl_val c = chunks->u.array.values[i];
		if (YAJL_IS_STRING(c))
			continue; /* "[DONE]": the replay adds its own */
		sc->chunks[sc->n_chunks++] = tree_text(c);
	}
	sc->body = aggregate(chunks);
	yajl_tree_free(root);
	s->n_sc++;
	return 1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int up_server_load(struct up_server *s, const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return load_file(s, path, err, errlen);
	DIR *d = opendir(path);
	if (!d) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char *names[MAX_SCENARIOS];
	size_t nn = 0;
	struct dirent *e;
	while ((e = readdir(d)) && nn < MAX_SCENARIOS) {
		size_t l = strlen(e->d_name);
		if (l > 5 && strcmp(e->d_name + l - 5, ".json") == 0)
			names[nn++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, nn, sizeof(char *), cmp_str);
	int count = 0;
	for (size_t i = 0; i < nn; i++) {
		char full[2048];
		snprintf(full, sizeof(full), "%s/%s", path, names[i]);
		if (count >= 0 && load_file(s, full, err, errlen) < 0)
			count = -1;
		else if (count >= 0)
			count++;
		free(names[i]);
	}
	return count;
}

size_t up_server_scenarios(const struct up_server *s)
{
	return s->n_sc;
}

const char *up_server_scenario_name(const struct up_server *s, size_t i)
{
	return i < s->n_sc ? s->sc[i].name : NULL;
}

static const struct scenario *find(const struct up_server *s, const char *name)
{
	for (size_t i = 0; i < s->n_sc; i++)
		if (strcmp(s->sc[i].name, name) == 0)
			return &s->sc[i];
	return NULL;
}

const char *const *up_server_chunks(const struct up_server *s, const char *name, size_t *n)
{
	const struct scenario *sc = find(s, name);
	if (!sc)
		return NULL;
	*n = sc->n_chunks;
	return (const char *const *)sc->chunks;
}

const char *up_server_request(const struct up_server *s, const char *name)
{
	const struct scenario *sc = find(s, name);
	return sc ? sc->request : NULL;
}

int up_server_expect(const struct up_server *s, const char *name, struct up_expect *out)
{
	const struct scenario *sc = find(s, name);
	if (!sc)
		return -1;
	*out = sc->expect;
	return 0;
}

const char *up_server_body(const struct up_server *s, const char *name)
{
	const struct scenario *sc = find(s, name);
	return sc ? sc->body : NULL;
}

int up_server_set_default(struct up_server *s, const char *name)
{
	for (size_t i = 0; i < s->n_sc; i++)
		if (strcmp(s->sc[i].name, name) == 0) {
			s->def = (int)i;
			return 0;
		}
	return -1;
}

void up_server_set_program(struct up_server *s, const struct up_program *p)
{
	s->prog = *p;
	if (!s->prog.status)
		s->prog.status = 500;
}

size_t up_server_records(const struct up_server *s)
{
	return s->n_rec;
}

const struct up_record *up_server_record(const struct up_server *s, size_t i)
{
	return i < s->n_rec && i < UP_MAX_RECORDS ? &s->rec[i] : NULL;
}

uint64_t up_server_active(const struct up_server *s)
{
	return s->active;
}

void up_server_reset_records(struct up_server *s)
{
	s->n_rec = 0;
}

void up_server_set_write_hook(struct up_server *s, up_write_hook fn, void *ctx)
{
	s->hook = fn;
	s->hook_ctx = ctx;
}

uint16_t up_server_port(const struct up_server *s)
{
	return s->port;
}

/* ---- responses ---- */

static void resp_free(struct resp *r)
{
	struct up_server *s = r->s;
	if (r->prev)
		r->prev->next = r->next;
	else
		s->resps = r->next;
	if (r->next)
		r->next->prev = r->prev;
	s->active--;
	if (r->evcon)
		evhttp_connection_set_closecb(r->evcon, NULL, NULL);
	event_free(r->timer);
	free(r->pending);
	free(r);
}

static void end_reply(struct resp *r)
{
	r->rec->completed = true;
	evhttp_send_reply_end(r->req);
	resp_free(r);
}

static void send_bytes(struct resp *r, const char *p, size_t n)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, p, n);
	evhttp_send_reply_chunk(r->req, b);
	evbuffer_free(b);
}

static void write_sse_ex(struct resp *r, const char *data, bool may_split)
{
	size_t n = strlen(data);
	char *ev = malloc(n + 32);
	int len;
	const char *comma = r->prog.multiline ? strchr(data, ',') : NULL;
	if (comma) /* the JSON over two data: lines, cut after its first comma */
		len = snprintf(ev, n + 32, r->prog.crlf ? "data: %.*s\r\ndata: %s\r\n\r\n" : "data: %.*s\ndata: %s\n\n",
		               (int)(comma + 1 - data), data, comma + 1);
	else
		len = snprintf(ev, n + 32, r->prog.crlf ? "data: %s\r\n\r\n" : "data: %s\n\n", data);
	if (may_split && r->prog.split && !r->pending && len > 1) {
		/* split at a byte that moves with every event, framing included */
		size_t at = 1 + (r->next_chunk * 7 + 3) % (size_t)(len - 1);
		send_bytes(r, ev, at);
		r->pending = strdup(ev + at);
	} else {
		send_bytes(r, ev, (size_t)len);
	}
	free(ev);
}

static void write_sse(struct resp *r, const char *data)
{
	write_sse_ex(r, data, false);
}

static void tick(evutil_socket_t fd, short what, void *arg);

static void schedule(struct resp *r)
{
	struct timeval tv = {(time_t)(r->prog.delay_ms / 1000), (suseconds_t)(r->prog.delay_ms % 1000) * 1000};
	if (r->pending) {
		tv.tv_sec = 0;
		tv.tv_usec = 1000;
	}
	event_add(r->timer, &tv);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct resp *r = arg;
	const struct scenario *sc = r->sc;
	if (r->pending) {
		send_bytes(r, r->pending, strlen(r->pending));
		free(r->pending);
		r->pending = NULL;
		schedule(r);
		return;
	}
	size_t limit = r->prog.mode == UP_FLOOD ? r->prog.after : sc->n_chunks;
	/* A slow reader: wait until the socket takes what is pending. */
	struct bufferevent *obev = r->evcon ? evhttp_connection_get_bufferevent(r->evcon) : NULL;
	if (obev && evbuffer_get_length(bufferevent_get_output(obev)) > UP_OUTPUT_MAX) {
		struct timeval tv = {0, 1000};
		event_add(r->timer, &tv);
		return;
	}
	if (r->prog.mode == UP_FLOOD && r->next_chunk < limit) {
		char line[1400];
		static const char hex[] = "0123456789abcdef";
		int n = snprintf(line, sizeof(line),
		                 "{\"id\":\"chatcmpl-flood\",\"object\":\"chat.completion.chunk\",\"created\":1,"
		                 "\"model\":\"flood\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"row %zu ",
		                 r->next_chunk);
		for (int i = 0; i < 1000; i++) {
			r->rng ^= r->rng << 13;
			r->rng ^= r->rng >> 7;
			r->rng ^= r->rng << 17;
			line[n++] = hex[r->rng & 15];
		}
		snprintf(line + n, sizeof(line) - (size_t)n, "\\n\"},\"finish_reason\":null}]}");
		write_sse(r, line);
		r->next_chunk++;
		r->rec->chunks_written++;
		schedule(r);
		return;
	}
	bool fails = r->prog.mode == UP_STALL || r->prog.mode == UP_RESET ||
	             r->prog.mode == UP_CLOSE || r->prog.mode == UP_GARBAGE ||
	             r->prog.mode == UP_USAGE_ONLY || r->prog.mode == UP_EMPTY_DELTAS;
	if (fails && r->prog.after < limit)
		limit = r->prog.after;
	if (r->next_chunk < limit) {
		write_sse_ex(r, sc->chunks[r->next_chunk++], true);
		r->rec->chunks_written++;
		if (r->s->hook)
			r->s->hook(r->index, r->next_chunk - 1, r->s->hook_ctx);
		schedule(r);
		return;
	}
	if ((r->prog.mode == UP_RESET || r->prog.mode == UP_CLOSE) && r->prog.mid) {
		if (!r->mid_sent) {
			/* the first half of the next event (or of a made-up one) */
			const char *next = r->next_chunk < sc->n_chunks
			                       ? sc->chunks[r->next_chunk]
			                       : "{\"id\":\"chatcmpl-mid\",\"choices\":[{\"index\":0,"
			                         "\"delta\":{\"content\":\"cut short\"}}]}";
			size_t n = strlen(next);
			char *ev = malloc(n + 16);
			int len = snprintf(ev, n + 16, "data: %s\n\n", next);
			send_bytes(r, ev, (size_t)len / 2);
			free(ev);
			r->mid_sent = true;
		}
		/* The half event must be on the wire before the reset discards
		 * what is queued. */
		if (obev && evbuffer_get_length(bufferevent_get_output(obev)) > 0) {
			struct timeval tv = {0, 1000};
			event_add(r->timer, &tv);
			return;
		}
	}
	switch (r->prog.mode) {
	case UP_USAGE_ONLY:
	case UP_EMPTY_DELTAS: {
		static const char *usage[] = {
			"{\"id\":\"chatcmpl-idle\",\"object\":\"chat.completion.chunk\",\"created\":1,"
			"\"model\":\"idle\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
			"\"completion_tokens\":3,\"total_tokens\":8}}",
			"{\"id\":\"chatcmpl-idle\",\"object\":\"chat.completion.chunk\",\"created\":1,"
			"\"model\":\"idle\",\"choices\":null,\"usage\":{\"prompt_tokens\":5,"
			"\"completion_tokens\":3,\"total_tokens\":8}}"};
		static const char *empty[] = {
			"{\"id\":\"chatcmpl-idle\",\"object\":\"chat.completion.chunk\",\"created\":1,"
			"\"model\":\"idle\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
			"\"content\":null},\"finish_reason\":null}]}",
			"{\"id\":\"chatcmpl-idle\",\"object\":\"chat.completion.chunk\",\"created\":1,"
			"\"model\":\"idle\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":null}]}",
			"{\"id\":\"chatcmpl-idle\",\"object\":\"chat.completion.chunk\",\"created\":1,"
			"\"model\":\"idle\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},"
			"\"finish_reason\":null}]}"};
		if (r->prog.mode == UP_USAGE_ONLY)
			write_sse(r, usage[r->idle_n % 2]);
		else
			write_sse(r, empty[r->idle_n % 3]);
		r->idle_n++;
		struct timeval tv = {(time_t)(r->prog.delay_ms / 1000),
		                     (suseconds_t)(r->prog.delay_ms % 1000) * 1000};
		if (r->prog.delay_ms == 0)
			tv.tv_usec = 1000;
		event_add(r->timer, &tv);
		return;
	}
	case UP_STALL:
		return; /* nothing more, ever: the proxy's watchdog must act */
	case UP_RESET: {
		struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
		evutil_socket_t s = bufferevent_getfd(bev);
		struct linger lg = {1, 0};
		setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		struct evhttp_connection *evcon = r->evcon;
		evhttp_connection_set_closecb(evcon, NULL, NULL);
		r->evcon = NULL;
		r->rec->completed = true;
		resp_free(r);
		evhttp_connection_free(evcon); /* frees the request too */
		return;
	}
	case UP_CLOSE: {
		struct evhttp_connection *evcon = r->evcon;
		evhttp_connection_set_closecb(evcon, NULL, NULL);
		r->evcon = NULL;
		r->rec->completed = true;
		resp_free(r);
		evhttp_connection_free(evcon);
		return;
	}
	case UP_GARBAGE:
		write_sse(r, "{this is not json at all");
		write_sse(r, "[DONE]");
		end_reply(r);
		return;
	case UP_NO_DONE:
		end_reply(r);
		return;
	default:
		write_sse(r, "[DONE]");
		end_reply(r);
	}
}

static void client_closed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	struct resp *r = arg;
	r->rec->hung_up = true;
	r->evcon = NULL;
	event_del(r->timer);
	/* evhttp detached the request from the dead connection: ending it frees it. */
	evhttp_send_reply_end(r->req);
	resp_free(r);
}

static void reply_text(struct evhttp_request *req, int status, const char *ctype, const char *body)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, body, strlen(body));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", b);
	evbuffer_free(b);
}

static void handle_chat(struct up_server *s, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *body = malloc(len + 1);
	evbuffer_copyout(in, body, len);
	body[len] = '\0';
	char perr[128];
	yajl_val root = yajl_tree_parse(body, perr, sizeof(perr));
	free(body);
	struct up_record *rec;
	struct resp *r = calloc(1, sizeof(*r));
	rec = s->n_rec < UP_MAX_RECORDS ? &s->rec[s->n_rec] : &r->scratch;
	r->index = s->n_rec;
	s->n_rec++;
	memset(rec, 0, sizeof(*rec));
	rec->body_len = len;
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	snprintf(rec->authorization, sizeof(rec->authorization), "%s", auth ? auth : "");
	if (!root || s->n_sc == 0) {
		yajl_tree_free(root);
		free(r);
		reply_text(req, 400, "application/json",
		           "{\"error\":{\"message\":\"scripted upstream: bad request or no scenario\","
		           "\"type\":\"invalid_request_error\",\"code\":400}}");
		return;
	}
	yajl_val model = get(root, "model");
	yajl_val st = get(root, "stream");
	const struct scenario *sc = model && YAJL_IS_STRING(model) ? find(s, model->u.string) : NULL;
	if (!sc)
		sc = &s->sc[s->def];
	rec->stream = st && YAJL_IS_TRUE(st);
	/* the request's own program, over the server's */
	struct up_program prog = s->prog;
	yajl_val own = get(root, "scripted");
	if (own && YAJL_IS_OBJECT(own)) {
		yajl_val v = get(own, "mode");
		if (v && YAJL_IS_STRING(v))
			(void)up_mode_parse(v->u.string, &prog.mode);
		if ((v = get(own, "after")) && YAJL_IS_INTEGER(v))
			prog.after = (uint32_t)YAJL_GET_INTEGER(v);
		if ((v = get(own, "delay_ms")) && YAJL_IS_INTEGER(v))
			prog.delay_ms = (uint32_t)YAJL_GET_INTEGER(v);
		if ((v = get(own, "status")) && YAJL_IS_INTEGER(v))
			prog.status = (int)YAJL_GET_INTEGER(v);
		if ((v = get(own, "mid")))
			prog.mid = YAJL_IS_TRUE(v);
	}
	yajl_tree_free(root);
	snprintf(rec->scenario, sizeof(rec->scenario), "%s", sc->name);
	rec->chunks_total = prog.mode == UP_FLOOD ? prog.after : (uint32_t)sc->n_chunks;
	char ebody[256];
	switch (prog.mode) {
	case UP_STATUS:
		snprintf(ebody, sizeof(ebody),
		         "{\"error\":{\"message\":\"scripted failure\",\"type\":\"server_error\",\"code\":%d}}",
		         prog.status);
		free(r);
		rec->completed = true;
		reply_text(req, prog.status, "application/json", ebody);
		return;
	case UP_STATUS_TEXT:
		free(r);
		rec->completed = true;
		reply_text(req, prog.status, "text/plain", "scripted failure: the engine is on fire\n");
		return;
	case UP_STATUS_BAD_TEXT: {
		/* an invalid byte early, then 'x' up to byte 299, then two-byte
		 * characters: byte 300 falls inside one */
		char text[400];
		size_t n = (size_t)snprintf(text, sizeof(text), "engine failure \xff here: ");
		while (n < 299)
			text[n++] = 'x';
		for (int i = 0; i < 20; i++) {
			text[n++] = '\xc3';
			text[n++] = '\xa9'; /* U+00E9 */
		}
		text[n] = '\0';
		free(r);
		rec->completed = true;
		reply_text(req, prog.status, "text/plain", text);
		return;
	}
	case UP_STATUS_NESTED: {
		enum { DEPTH = 32000 };
		char *text = malloc(2 * DEPTH + 1);
		if (!text)
			abort(); /* test helper: out of memory is fatal */
		memset(text, '[', DEPTH);
		memset(text + DEPTH, ']', DEPTH);
		text[2 * DEPTH] = '\0';
		free(r);
		rec->completed = true;
		reply_text(req, prog.status, "application/json", text);
		free(text);
		return;
	}
	default:
		break;
	}
	if (!rec->stream && prog.mode == UP_REPLAY) {
		free(r);
		rec->completed = true;
		rec->chunks_written = rec->chunks_total;
		reply_text(req, 200, "application/json", sc->body);
		return;
	}
	r->s = s;
	r->req = req;
	r->sc = sc;
	r->prog = prog;
	r->rec = rec;
	r->evcon = evhttp_request_get_connection(req);
	r->timer = evtimer_new(s->base, tick, r);
	r->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)r->index;
	r->next = s->resps;
	if (s->resps)
		s->resps->prev = r;
	s->resps = r;
	s->active++;
	evhttp_connection_set_closecb(r->evcon, client_closed, r);
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	evhttp_add_header(oh, "Content-Type", "text/event-stream");
	evhttp_add_header(oh, "Cache-Control", "no-cache");
	evhttp_send_reply_start(req, 200, "OK");
	if (prog.mode == UP_NOISE) {
		struct evbuffer *b = evbuffer_new();
		evbuffer_add_printf(b, "<html><body>502 Bad Gateway from some proxy</body></html>\n");
		evhttp_send_reply_chunk(req, b);
		evbuffer_free(b);
		end_reply(r);
		return;
	}
	schedule(r);
}

/* GET /_control?mode=M&after=N&delay_ms=N&status=N&scenario=NAME&crlf=1&split=1&mid=1&multiline=1: a new
 * program for the following requests; the records start over. */
static void handle_control(struct up_server *s, struct evhttp_request *req)
{
	struct evkeyvalq q;
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct up_program p = {UP_REPLAY, 0, 0, 500, false, false, false, false};
	if (query && evhttp_parse_query_str(query, &q) == 0) {
		const char *v;
		if ((v = evhttp_find_header(&q, "mode")) && up_mode_parse(v, &p.mode) != 0) {
			evhttp_clear_headers(&q);
			reply_text(req, 400, "application/json", "{\"ok\":false,\"error\":\"unknown mode\"}");
			return;
		}
		if ((v = evhttp_find_header(&q, "after")))
			p.after = (uint32_t)strtoul(v, NULL, 10);
		if ((v = evhttp_find_header(&q, "delay_ms")))
			p.delay_ms = (uint32_t)strtoul(v, NULL, 10);
		if ((v = evhttp_find_header(&q, "status")))
			p.status = (int)strtol(v, NULL, 10);
		if ((v = evhttp_find_header(&q, "crlf")))
			p.crlf = strcmp(v, "1") == 0;
		if ((v = evhttp_find_header(&q, "split")))
			p.split = strcmp(v, "1") == 0;
		if ((v = evhttp_find_header(&q, "mid")))
			p.mid = strcmp(v, "1") == 0;
		if ((v = evhttp_find_header(&q, "multiline")))
			p.multiline = strcmp(v, "1") == 0;
		if ((v = evhttp_find_header(&q, "scenario")) && up_server_set_default(s, v) != 0) {
			evhttp_clear_headers(&q);
			reply_text(req, 400, "application/json", "{\"ok\":false,\"error\":\"unknown scenario\"}");
			return;
		}
		evhttp_clear_headers(&q);
	}
	up_server_set_program(s, &p);
	up_server_reset_records(s);
	reply_text(req, 200, "application/json", "{\"ok\":true}");
}

/* GET /_stats: the records as JSON. */
static void handle_stats(struct up_server *s, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "{\"requests\":%zu,\"active\":%llu,\"records\":[", s->n_rec,
	                    (unsigned long long)s->active);
	size_t n = s->n_rec < UP_MAX_RECORDS ? s->n_rec : UP_MAX_RECORDS;
	for (size_t i = 0; i < n; i++) {
		const struct up_record *r = &s->rec[i];
		evbuffer_add_printf(b, "%s{\"scenario\":\"%s\",\"stream\":%s,\"chunks_total\":%u,"
		                       "\"chunks_written\":%u,\"hung_up\":%s,\"completed\":%s,"
		                       "\"body_len\":%llu,\"authorization\":\"%s\"}",
		                    i ? "," : "", r->scenario, r->stream ? "true" : "false", r->chunks_total,
		                    r->chunks_written, r->hung_up ? "true" : "false",
		                    r->completed ? "true" : "false", (unsigned long long)r->body_len,
		                    strchr(r->authorization, '"') ? "?" : r->authorization);
	}
	evbuffer_add_printf(b, "]}");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void handle(struct evhttp_request *req, void *arg)
{
	struct up_server *s = arg;
	const char *uri = evhttp_request_get_uri(req);
	if (strncmp(uri, "/_control", 9) == 0) {
		handle_control(s, req);
		return;
	}
	if (strncmp(uri, "/_stats", 7) == 0) {
		handle_stats(s, req);
		return;
	}
	if (strncmp(uri, "/v1/chat/completions", 20) == 0 &&
	    evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
		handle_chat(s, req);
	} else if (strncmp(uri, "/v1/models", 10) == 0) {
		reply_text(req, 200, "application/json",
		           "{\"object\":\"list\",\"data\":[{\"id\":\"scripted\",\"object\":\"model\","
		           "\"owned_by\":\"loopwarden-tests\"}]}");
	} else if (strncmp(uri, "/health", 7) == 0) {
		reply_text(req, 200, "application/json", "{\"status\":\"ok\"}");
	} else {
		reply_text(req, 404, "application/json",
		           "{\"error\":{\"message\":\"not found\",\"type\":\"not_found_error\",\"code\":404}}");
	}
}

static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
	struct up_server *s = arg;
	SSL *ssl = SSL_new(s->ssl_ctx);
	return ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                            BEV_OPT_CLOSE_ON_FREE)
	           : NULL;
}

int up_server_enable_tls(struct up_server *s, const char *cert, const char *key,
                         char *err, size_t errlen)
{
	s->ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (!s->ssl_ctx || SSL_CTX_use_certificate_chain_file(s->ssl_ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(s->ssl_ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "TLS: cannot use %s / %s", cert, key);
		return -1;
	}
	evhttp_set_bevcb(s->http, tls_bev, s);
	return 0;
}

struct up_server *up_server_new(struct event_base *base, uint16_t port, char *err, size_t errlen)
{
	struct up_server *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->base = base;
	s->prog.status = 500;
	s->http = evhttp_new(base);
	/* Our own listening socket: evhttp's listens with a backlog of 128, and
	 * a benchmark opening 2000 connections at once would wait on SYN
	 * retries instead of measuring anything. */
	struct evhttp_bound_socket *bs = NULL;
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd >= 0) {
		int one = 1;
		struct sockaddr_in sa = {0};
		sa.sin_family = AF_INET;
		sa.sin_port = htons(port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 4096) == 0 &&
		    evutil_make_socket_nonblocking(lfd) == 0 && s->http)
			bs = evhttp_accept_socket_with_handle(s->http, lfd);
		if (!bs)
			close(lfd);
	}
	if (!bs) {
		snprintf(err, errlen, "cannot listen on 127.0.0.1:%u", (unsigned)port);
		if (s->http)
			evhttp_free(s->http);
		free(s);
		return NULL;
	}
	evhttp_set_max_body_size(s->http, 64u << 20);
	evhttp_set_gencb(s->http, handle, s);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl);
	s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return s;
}

void up_server_free(struct up_server *s)
{
	if (!s)
		return;
	while (s->resps) {
		struct resp *r = s->resps;
		event_del(r->timer);
		resp_free(r);
	}
	evhttp_free(s->http); /* closes connections and frees their requests */
	if (s->ssl_ctx)
		SSL_CTX_free(s->ssl_ctx);
	for (size_t i = 0; i < s->n_sc; i++) {
		for (size_t j = 0; j < s->sc[i].n_chunks; j++)
			free(s->sc[i].chunks[j]);
		free(s->sc[i].chunks);
		free(s->sc[i].request);
		free(s->sc[i].body);
	}
	free(s);
}
