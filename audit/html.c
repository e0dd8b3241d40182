/* loopwarden-audit --html (see html.h). The collector follows the proxy's
 * rules for what reaches the client: a chunk is relayed at once unless a
 * tool call is incomplete after it (then it is held, and relayed with the
 * next chunk that leaves none open); at a trip what is held is dropped,
 * and of the tripping chunk only the part the guards read of a text or
 * reasoning event goes out (gd_trip.event_used, with the reasoning the same
 * chunk carried before it), and only when nothing was held. A non-streaming
 * body keeps its content and reasoning up to the trip and the calls
 * completed before a call tripped. Offline: allocates freely. */
#include "audit/html.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guards/utf8.h"

#define HTML_TEXT_MAX (16u << 20)     /* bytes of text (or reasoning, or one call's arguments) kept */
#define HTML_MAX_CALLS 4096           /* tool calls listed */
#define HTML_MAX_SAMPLES (4u << 20)   /* chunks sampled for the plots */
#define HTML_PLOT_W 600
#define HTML_PLOT_H 60

struct sbuf {
	char *p;
	size_t len, cap;
	bool cut; /* more came than HTML_TEXT_MAX */
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n > HTML_TEXT_MAX) {
		n = HTML_TEXT_MAX - b->len;
		b->cut = true;
	}
	if (!n)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->cut = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* One event of a chunk not yet relayed. */
struct piece {
	enum gd_event_type type;
	uint32_t index;
	char id[64];
	char name[128];
	char *data;
	size_t len;
};

struct plist {
	struct piece *p;
	size_t n, cap;
};

struct call {
	uint32_t index;
	char id[64];
	char name[128];
	struct sbuf args;
};

struct aud_html {
	char title[1024];
	struct aud_observer obs;
	bool body;               /* a non-streaming answer */
	struct plist chunk, held;
	struct sbuf text, reasoning;
	struct call *calls;
	size_t n_calls, cap_calls;
	bool trip_seen;
	bool tripped_here;       /* the current chunk tripped */
	struct gd_event trip_ev; /* the tripping event (no data) */
	char trip_call[128];     /* the call that tripped, not delivered */
	bool dropped;            /* held chunks were dropped at the trip */
	float *near;             /* GD_GUARD_COUNT per sample */
	size_t n_samples, cap_samples;
	bool near_cut;
};

static void copy_str(char *out, size_t cap, const char *s, size_t n)
{
	if (!s)
		n = 0;
	if (n >= cap)
		n = gd_utf8_cut(s, n, cap - 1);
	if (n)
		memcpy(out, s, n);
	out[n] = '\0';
}

static void plist_add(struct plist *l, const struct gd_event *ev, size_t len)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct piece *p = realloc(l->p, cap * sizeof(*p));
		if (!p)
			return;
		l->p = p;
		l->cap = cap;
	}
	struct piece *x = &l->p[l->n];
	memset(x, 0, sizeof(*x));
	x->type = ev->type;
	x->index = ev->index;
	copy_str(x->id, sizeof(x->id), ev->id, ev->id ? ev->id_len : 0);
	copy_str(x->name, sizeof(x->name), ev->name, ev->name ? ev->name_len : 0);
	if (len) {
		x->data = malloc(len);
		if (!x->data)
			return;
		memcpy(x->data, ev->data, len);
		x->len = len;
	}
	l->n++;
}

static void plist_clear(struct plist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->p[i].data);
	l->n = 0;
}

/* The call an event of (<index>, <id>) belongs to: by id, else the latest
 * with that index (as the pipeline keys calls). */
static struct call *find_call(struct aud_html *h, uint32_t index, const char *id)
{
	for (size_t i = h->n_calls; i-- > 0;) {
		struct call *c = &h->calls[i];
		if (c->index == index && (!id[0] || strcmp(c->id, id) == 0))
			return c;
	}
	return NULL;
}

static void deliver(struct aud_html *h, const struct piece *x)
{
	struct call *c;

	switch (x->type) {
	case GD_EV_TEXT:
		sb_add(&h->text, x->data, x->len);
		break;
	case GD_EV_REASONING:
		sb_add(&h->reasoning, x->data, x->len);
		break;
	case GD_EV_TOOL_BEGIN:
		c = x->id[0] ? find_call(h, x->index, x->id) : NULL;
		if (c)
			break; /* the same call's first delta again */
		if (h->n_calls == HTML_MAX_CALLS)
			break;
		if (h->n_calls == h->cap_calls) {
			size_t cap = h->cap_calls ? h->cap_calls * 2 : 16;
			struct call *n = realloc(h->calls, cap * sizeof(*n));
			if (!n)
				break;
			h->calls = n;
			h->cap_calls = cap;
		}
		c = &h->calls[h->n_calls++];
		memset(c, 0, sizeof(*c));
		c->index = x->index;
		snprintf(c->id, sizeof(c->id), "%s", x->id);
		snprintf(c->name, sizeof(c->name), "%s", x->name);
		break;
	case GD_EV_TOOL_ARGS:
		c = find_call(h, x->index, x->id);
		if (c)
			sb_add(&c->args, x->data, x->len);
		break;
	default:
		break;
	}
}

static void deliver_all(struct aud_html *h, struct plist *l)
{
	for (size_t i = 0; i < l->n; i++)
		deliver(h, &l->p[i]);
	plist_clear(l);
}

/* The name of the call (<index>, <id>) among the pieces not yet delivered,
 * or the calls delivered. */
static void call_name(struct aud_html *h, const struct gd_event *ev, char *out, size_t cap)
{
	char id[64];
	const struct plist *lists[] = {&h->chunk, &h->held};

	copy_str(id, sizeof(id), ev->id, ev->id ? ev->id_len : 0);
	if (ev->type == GD_EV_TOOL_BEGIN) {
		copy_str(out, cap, ev->name, ev->name ? ev->name_len : 0);
		return;
	}
	for (int l = 0; l < 2; l++)
		for (size_t i = lists[l]->n; i-- > 0;) {
			const struct piece *x = &lists[l]->p[i];
			if (x->type == GD_EV_TOOL_BEGIN && x->index == ev->index &&
			    (!id[0] || strcmp(x->id, id) == 0)) {
				snprintf(out, cap, "%s", x->name);
				return;
			}
		}
	const struct call *c = find_call(h, ev->index, id);
	snprintf(out, cap, "%s", c ? c->name : "");
}

static void on_event(void *ctx, const struct gd_event *ev, enum gd_verdict v,
                     const struct gd_pipeline *p)
{
	struct aud_html *h = ctx;

	if (h->trip_seen)
		return;
	if (v == GD_TRIP) {
		const struct gd_trip *t = gd_pipeline_trip(p);
		h->trip_seen = h->tripped_here = true;
		h->trip_ev = *ev;
		h->trip_ev.data = NULL;
		if (ev->type == GD_EV_TEXT || ev->type == GD_EV_REASONING)
			plist_add(&h->chunk, ev, t && t->event_used < ev->len ? (size_t)t->event_used
			                                                        : ev->len);
		else if (ev->type != GD_EV_USAGE)
			call_name(h, ev, h->trip_call, sizeof(h->trip_call));
		return;
	}
	if (ev->type == GD_EV_TEXT || ev->type == GD_EV_REASONING || ev->type == GD_EV_TOOL_BEGIN ||
	    ev->type == GD_EV_TOOL_ARGS)
		plist_add(&h->chunk, ev, ev->len);
}

/* The tripping chunk of a stream: its text and reasoning part goes out
 * (nothing of its calls), unless held chunks were dropped before it. */
static void cut_stream(struct aud_html *h)
{
	h->dropped = h->held.n > 0;
	plist_clear(&h->held);
	if (!h->dropped && (h->trip_ev.type == GD_EV_TEXT || h->trip_ev.type == GD_EV_REASONING))
		for (size_t i = 0; i < h->chunk.n; i++)
			if (h->chunk.p[i].type == GD_EV_TEXT || h->chunk.p[i].type == GD_EV_REASONING)
				deliver(h, &h->chunk.p[i]);
	plist_clear(&h->chunk);
}

/* The tripping body: its text and reasoning up to the trip, the calls
 * completed before the tripping one. */
static void cut_body(struct aud_html *h)
{
	char id[64];

	copy_str(id, sizeof(id), h->trip_ev.id, h->trip_ev.id ? h->trip_ev.id_len : 0);
	for (size_t i = 0; i < h->chunk.n; i++) {
		const struct piece *x = &h->chunk.p[i];
		bool of_trip = h->trip_call[0] && x->index == h->trip_ev.index &&
		               (x->type == GD_EV_TOOL_BEGIN || x->type == GD_EV_TOOL_ARGS) &&
		               (!id[0] || strcmp(x->id, id) == 0);
		if (!of_trip)
			deliver(h, x);
	}
	plist_clear(&h->chunk);
}

static void on_chunk(void *ctx, const struct gd_pipeline *p)
{
	struct aud_html *h = ctx;

	if (h->tripped_here) {
		h->tripped_here = false;
		if (h->body)
			cut_body(h);
		else
			cut_stream(h);
	} else if (!h->trip_seen) {
		if (gd_pipeline_holding(p)) {
			for (size_t i = 0; i < h->chunk.n; i++) {
				/* move the piece (its data too) to the held list */
				struct piece x = h->chunk.p[i];
				struct gd_event ev = {.type = x.type, .index = x.index, .id = x.id,
				                      .id_len = strlen(x.id), .name = x.name,
				                      .name_len = strlen(x.name), .data = x.data, .len = x.len};
				plist_add(&h->held, &ev, x.len);
			}
			plist_clear(&h->chunk);
		} else {
			deliver_all(h, &h->held);
			deliver_all(h, &h->chunk);
		}
	} else {
		plist_clear(&h->chunk);
	}
	if (h->n_samples == HTML_MAX_SAMPLES) {
		h->near_cut = true;
		return;
	}
	if (h->n_samples == h->cap_samples) {
		size_t cap = h->cap_samples ? h->cap_samples * 2 : 256;
		float *n = realloc(h->near, cap * GD_GUARD_COUNT * sizeof(*n));
		if (!n)
			return;
		h->near = n;
		h->cap_samples = cap;
	}
	gd_pipeline_near(p, &h->near[h->n_samples * GD_GUARD_COUNT]);
	h->n_samples++;
}

struct aud_html *aud_html_new(const char *title)
{
	struct aud_html *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	snprintf(h->title, sizeof(h->title), "%s", title ? title : "");
	h->obs.event = on_event;
	h->obs.chunk = on_chunk;
	h->obs.ctx = h;
	return h;
}

void aud_html_set_body(struct aud_html *h, bool body)
{
	h->body = body;
}

const struct aud_observer *aud_html_observer(struct aud_html *h)
{
	return &h->obs;
}

void aud_html_free(struct aud_html *h)
{
	if (!h)
		return;
	plist_clear(&h->chunk);
	plist_clear(&h->held);
	free(h->chunk.p);
	free(h->held.p);
	free(h->text.p);
	free(h->reasoning.p);
	for (size_t i = 0; i < h->n_calls; i++)
		free(h->calls[i].args.p);
	free(h->calls);
	free(h->near);
	free(h);
}

/* ---- writing ---- */

/* <s, n> as HTML text: & < > " ' escaped, invalid UTF-8 and control
 * characters other than line feed and tab replaced by U+FFFD. Nothing of
 * the recording can open a tag or an attribute. */
static void esc(FILE *f, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < n;) {
		unsigned char c = u[i];
		if (c >= 0x80) {
			uint32_t cp;
			size_t k = gd_utf8_decode(u + i, n - i, &cp);
			if (k == 0) {
				fputs("\xEF\xBF\xBD", f);
				i++;
				continue;
			}
			fwrite(u + i, 1, k, f);
			i += k;
			continue;
		}
		switch (c) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		case '\n': case '\t': fputc(c, f); break;
		default:
			if (c < 0x20 || c == 0x7f)
				fputs("\xEF\xBF\xBD", f);
			else
				fputc(c, f);
		}
		i++;
	}
}

static void esc_str(FILE *f, const char *s)
{
	esc(f, s, strlen(s));
}

/* <pos> moved back to the start of its character. */
static size_t char_start(const char *s, size_t len, size_t pos)
{
	if (pos > len)
		pos = len;
	while (pos > 0 && pos < len && ((unsigned char)s[pos] & 0xc0) == 0x80)
		pos--;
	return pos;
}

/* One stream of the answer, the loop from its onset to the trip marked when
 * the trip is in it. */
static void write_stream(FILE *f, const char *label, const struct sbuf *b, const struct gd_trip *t,
                         bool marked)
{
	fprintf(f, "<h3>%s</h3>\n<pre class=\"text\">", label);
	if (!marked) {
		esc(f, b->p, b->len);
	} else {
		size_t at = t->at ? char_start(b->p, b->len, t->at) : b->len;
		size_t onset = char_start(b->p, b->len, t->cut < at ? t->cut : at);
		esc(f, b->p, onset);
		fputs("<mark class=\"loop\">", f);
		esc(f, b->p + onset, at - onset);
		fputs("</mark><span class=\"trip\">&#9986; trip</span>", f);
		esc(f, b->p + at, b->len - at);
	}
	if (b->cut)
		fputs("\n<i>(cut here: the page keeps 16 MiB)</i>", f);
	fputs("</pre>\n", f);
}

static void write_plot(FILE *f, const struct aud_html *h, int g, uint64_t trip_chunk)
{
	size_t n = h->n_samples;
	size_t points = n < HTML_PLOT_W ? n : HTML_PLOT_W;
	const double top = 6, span = HTML_PLOT_H - 12;

	fprintf(f, "<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">",
	        HTML_PLOT_W, HTML_PLOT_H, HTML_PLOT_W, HTML_PLOT_H);
	/* the threshold: 1 = the guard trips */
	fprintf(f, "<line x1=\"0\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#b00000\" "
	        "stroke-dasharray=\"4 3\" stroke-width=\"1\"/>", top, HTML_PLOT_W, top);
	if (trip_chunk && n > 1) {
		double x = (double)(trip_chunk - 1) * (HTML_PLOT_W - 1) / (double)(n - 1);
		fprintf(f, "<line x1=\"%.1f\" y1=\"0\" x2=\"%.1f\" y2=\"%d\" stroke=\"#d50000\" "
		        "stroke-width=\"2\"/>", x, x, HTML_PLOT_H);
	}
	fputs("<polyline fill=\"none\" stroke=\"#1565c0\" stroke-width=\"1.5\" points=\"", f);
	for (size_t k = 0; k < points; k++) {
		/* the largest value of each bucket of chunks */
		size_t from = k * n / points, to = (k + 1) * n / points;
		float v = 0.0f;
		for (size_t i = from; i < to; i++)
			if (h->near[i * GD_GUARD_COUNT + g] > v)
				v = h->near[i * GD_GUARD_COUNT + g];
		double x = points > 1 ? (double)k * (HTML_PLOT_W - 1) / (double)(points - 1) : 0;
		fprintf(f, "%.1f,%.1f ", x, top + span * (1.0 - v));
	}
	fputs("\"/></svg>", f);
}

int aud_html_write(struct aud_html *h, const struct aud_result *res, const char *path,
                   char *err, size_t errlen)
{
	FILE *f = fopen(path, "wb");
	const struct gd_trip *t = &res->trip;
	bool history = res->tripped && res->history_trip;

	if (!f) {
		snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
		return -1;
	}
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	      /* Nothing runs, nothing loads: the recording is untrusted. */
	      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	      "style-src 'unsafe-inline'; img-src 'none'; script-src 'none'; form-action 'none'\">\n"
	      "<meta name=\"referrer\" content=\"no-referrer\">\n<title>loopwarden-audit: ", f);
	esc_str(f, h->title);
	fputs("</title>\n<style>\n"
	      "body{font:14px/1.45 sans-serif;margin:16px 24px;color:#111;background:#fff}\n"
	      "h1{font-size:18px;word-break:break-all}h2{font-size:16px;margin-top:22px}"
	      "h3{font-size:14px;margin:12px 0 4px}\n"
	      "pre.text{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;"
	      "border:1px solid #ddd;padding:8px;font:13px/1.4 monospace;max-height:60em;overflow:auto}\n"
	      "mark.loop{background:#ffd54f;color:#000}\n"
	      "span.trip{background:#d50000;color:#fff;font-weight:bold;padding:0 4px;margin:0 2px}\n"
	      ".verdict{font-size:15px;padding:6px 10px;border-radius:3px}\n"
	      ".verdict.tripped{background:#ffebee;border:1px solid #d50000}\n"
	      ".verdict.passed{background:#e8f5e9;border:1px solid #2e7d32}\n"
	      "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;"
	      "vertical-align:middle;text-align:left}\n"
	      "li.cut{color:#b00000}code{font:13px monospace;word-break:break-all}\n"
	      "svg{background:#fafafa;border:1px solid #ddd;display:block}\n"
	      "</style></head><body>\n<h1>", f);
	esc_str(f, h->title);
	fputs("</h1>\n", f);
	if (res->tripped) {
		fputs("<p class=\"verdict tripped\">TRIP <strong>", f);
		esc_str(f, t->guard);
		if (history)
			fputs("</strong> in the request's history, before any chunk: the proxy answers "
			      "without the model. ", f);
		else
			fprintf(f, "</strong> at chunk %" PRIu64 " (event %" PRIu64 "): ", res->trip_chunk,
			        t->event_no);
		esc_str(f, t->detail);
		fputs("</p>\n", f);
	} else {
		fprintf(f, "<p class=\"verdict passed\">pass: %" PRIu64 " chunks, %" PRIu64 " events, "
		        "%" PRIu64 " tool calls, finish_reason ", res->chunks, res->events, res->tool_calls);
		esc_str(f, res->finished ? res->finish_reason : "(none)");
		fputs("</p>\n", f);
	}
	fputs("<h2>The answer as the client saw it</h2>\n", f);
	if (history) {
		fputs("<p>Nothing: the request was answered from its history.</p>\n", f);
	} else {
		bool tr = res->tripped && !history;
		if (h->reasoning.len || (tr && t->stream == GD_STREAM_REASONING))
			write_stream(f, "reasoning", &h->reasoning, t, tr && t->stream == GD_STREAM_REASONING);
		if (h->text.len || (tr && t->stream == GD_STREAM_TEXT) || !h->n_calls)
			write_stream(f, "content", &h->text, t, tr && t->stream == GD_STREAM_TEXT);
		if (h->n_calls || h->trip_call[0]) {
			fputs("<h3>tool calls</h3>\n<ol>\n", f);
			for (size_t i = 0; i < h->n_calls; i++) {
				fputs("<li><code>", f);
				esc_str(f, h->calls[i].name);
				fputs("</code> <code>", f);
				esc(f, h->calls[i].args.p, h->calls[i].args.len);
				fputs("</code></li>\n", f);
			}
			if (h->trip_call[0]) {
				fputs("<li class=\"cut\"><code>", f);
				esc_str(f, h->trip_call);
				fputs("</code>: not delivered (the call that tripped)</li>\n", f);
			}
			fputs("</ol>\n", f);
		}
		if (h->dropped)
			fputs("<p>Chunks held back while a tool call was incomplete were dropped at the "
			      "trip.</p>\n", f);
		if (tr)
			fputs("<p><mark class=\"loop\">highlighted</mark>: from the loop's onset to the trip; "
			      "<span class=\"trip\">&#9986; trip</span>: where the guard tripped.</p>\n", f);
	}
	fputs("<h2>How close each guard came</h2>\n", f);
	if (!h->n_samples) {
		fputs("<p>No chunk was read.</p>\n", f);
	} else {
		fprintf(f, "<p>Per chunk, each guard's score over what it needs to trip (the dashed "
		        "line; 1 = trips)%s.</p>\n<table>\n<tr><th>guard</th><th>closest</th>"
		        "<th>over %zu chunks</th></tr>\n",
		        res->tripped && !history ? "; the red line is the trip" : "", h->n_samples);
		for (int g = 0; g < GD_GUARD_COUNT; g++) {
			float best = 0.0f;
			size_t at = 0;
			for (size_t i = 0; i < h->n_samples; i++)
				if (h->near[i * GD_GUARD_COUNT + g] > best) {
					best = h->near[i * GD_GUARD_COUNT + g];
					at = i + 1;
				}
			fputs("<tr><td>", f);
			esc_str(f, gd_guard_name((enum gd_guard)g));
			if (best >= 0.005f)
				fprintf(f, "</td><td>%.0f%% at chunk %zu</td><td>", 100.0 * best, at);
			else if (best > 0.0f)
				fprintf(f, "</td><td>&lt;1%% at chunk %zu</td><td>", at);
			else
				fputs("</td><td>0%</td><td>", f);
			write_plot(f, h, g, res->tripped && !history ? res->trip_chunk : 0);
			fputs("</td></tr>\n", f);
		}
		fputs("</table>\n", f);
		if (h->near_cut)
			fputs("<p>(only the first chunks are plotted)</p>\n", f);
	}
	fputs("</body></html>\n", f);
	if (fclose(f) != 0) {
		snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}
