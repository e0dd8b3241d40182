/* Routing and the small endpoints: GET /v1/models (relayed), GET /health,
 * GET /metrics (each also HEAD). Chat completions live in chat.c. */
#include "proxy/server.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "proxy/cutmemo.h"
#include "proxy/emit.h"
#include "proxy/metrics.h"
#include "proxy/server_int.h"

#define RELAY_BODY_MAX (4 * 1024 * 1024)
#define RELAY_TIMEOUT_MS 10000
#define HEALTH_TIMEOUT_MS 3000

/* A GET relayed to the upstream (models) or probed (health). */
struct px_relay {
	struct px_server *s;
	struct px_relay *prev, *next;
	struct px_http_conn *conn;
	struct px_upstream *up;
	struct evbuffer *body;
	struct event *timer;
	bool health;
	int status;
	char ctype[128];
};

static void relay_free(struct px_relay *r)
{
	struct px_server *s = r->s;
	if (r->prev)
		r->prev->next = r->next;
	else
		s->relays = r->next;
	if (r->next)
		r->next->prev = r->prev;
	if (r->conn)
		px_http_conn_watch(r->conn, NULL, NULL, NULL);
	px_upstream_free(r->up);
	if (r->timer)
		event_free(r->timer);
	if (r->body)
		evbuffer_free(r->body);
	free(r);
}

static void reply_json(struct px_http_conn *c, int status, struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	px_http_reply(c, status, "application/json", (const char *)evbuffer_pullup(b, -1), n, NULL);
}

/* An OpenAI-style error; <extra> as for px_http_reply (e.g. Allow). */
static void reply_error_ex(struct px_http_conn *c, int status, const char *msg, const char *extra)
{
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		px_http_reply(c, 500, "application/json", "{}", 2, NULL);
		return;
	}
	px_emit_error(b, status, msg);
	size_t n = evbuffer_get_length(b);
	px_http_reply(c, status, "application/json", (const char *)evbuffer_pullup(b, -1), n, extra);
	evbuffer_free(b);
	if (status >= 400 && status < 500)
		px_metrics_inc(PX_C_BAD_REQUESTS, 1);
}

static void reply_error(struct px_http_conn *c, int status, const char *msg)
{
	reply_error_ex(c, status, msg, NULL);
}

/* 405 naming the methods <path> takes (RFC 9110 15.5.6: with Allow). */
static void wrong_method(struct px_http_conn *c, const char *method, const char *path,
                         const char *allow)
{
	char msg[PX_HEAD_TARGET_MAX + 96], extra[64];
	snprintf(msg, sizeof(msg), "method %s is not allowed for %s: use %s", method, path, allow);
	snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
	reply_error_ex(c, 405, msg, extra);
}

/* Ends relay <r> with the upstream's answer (<ok>) or an error. */
static void relay_finish(struct px_relay *r, bool ok, const char *detail)
{
	px_upstream_free(r->up);
	r->up = NULL;
	if (r->conn) {
		struct px_http_conn *c = r->conn;
		px_http_conn_watch(c, NULL, NULL, NULL);
		r->conn = NULL;
		if (r->health) {
			struct evbuffer *b = evbuffer_new();
			if (b) {
				evbuffer_add_printf(b, "{\"status\":\"ok\",\"upstream\":{\"reachable\":%s",
				                    ok ? "true" : "false");
				if (ok)
					evbuffer_add_printf(b, ",\"status\":%d", r->status);
				else {
					evbuffer_add_printf(b, ",\"error\":");
					px_json_string(b, detail, strlen(detail));
				}
				evbuffer_add_printf(b, "},\"active_streams\":%" PRIu64 "}", r->s->active_streams);
				reply_json(c, 200, b);
				evbuffer_free(b);
			} else {
				px_http_reply(c, 500, "application/json", "{}", 2, NULL);
			}
		} else if (ok) {
			size_t n = evbuffer_get_length(r->body);
			px_http_reply(c, r->status, r->ctype[0] ? r->ctype : "application/json",
			              (const char *)evbuffer_pullup(r->body, -1), n, NULL);
		} else {
			px_metrics_upstream_error(PX_UPE_CONNECT);
			char msg[400];
			snprintf(msg, sizeof(msg), "upstream: %s", detail);
			reply_error(c, 502, msg);
		}
	}
	relay_free(r);
}

static void relay_head(void *arg, int status, const char *ctype)
{
	struct px_relay *r = arg;
	r->status = status;
	snprintf(r->ctype, sizeof(r->ctype), "%s", ctype);
}

static void relay_body(void *arg, const char *data, size_t len)
{
	struct px_relay *r = arg;
	if (evbuffer_get_length(r->body) + len > RELAY_BODY_MAX) {
		relay_finish(r, false, "answer too large");
		return;
	}
	evbuffer_add(r->body, data, len);
}

static void relay_end(void *arg)
{
	relay_finish(arg, true, NULL);
}

static void relay_error(void *arg, enum px_up_error e, const char *detail)
{
	char msg[400];
	snprintf(msg, sizeof(msg), "%s: %s", px_up_strerror(e), detail);
	relay_finish(arg, false, msg);
}

static void relay_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	relay_finish(arg, false, "timed out");
}

static void relay_client_gone(struct px_http_conn *c, void *arg)
{
	(void)c;
	struct px_relay *r = arg;
	r->conn = NULL;
	relay_free(r);
}

static void relay_start(struct px_server *s, struct px_http_conn *c, const struct px_http_req *req,
                        const char *path, bool health)
{
	if (!s->target) {
		if (health) {
			const char *b = "{\"status\":\"ok\",\"upstream\":null}";
			px_http_reply(c, 200, "application/json", b, strlen(b), NULL);
		} else {
			reply_error(c, 503, "loopwarden has no upstream: start it with --upstream URL");
		}
		return;
	}
	struct px_relay *r = calloc(1, sizeof(*r));
	if (!r) {
		reply_error(c, 500, "out of memory");
		return;
	}
	r->s = s;
	r->conn = c;
	r->health = health;
	r->body = evbuffer_new();
	r->timer = evtimer_new(s->base, relay_timeout, r);
	r->next = s->relays;
	if (s->relays)
		s->relays->prev = r;
	s->relays = r;
	if (!r->body || !r->timer) {
		r->conn = NULL;
		relay_free(r);
		reply_error(c, 500, "out of memory");
		return;
	}
	px_http_conn_watch(c, relay_client_gone, NULL, r);
	static const struct px_upstream_cbs cbs = {relay_head, relay_body, relay_end, relay_error};
	char auth[PX_HTTP_AUTH_MAX + 16];
	if (s->opts.upstream_key[0])
		snprintf(auth, sizeof(auth), "Bearer %s", s->opts.upstream_key);
	else
		snprintf(auth, sizeof(auth), "%s", req->authorization);
	char err[256];
	uint64_t ms = health ? HEALTH_TIMEOUT_MS : RELAY_TIMEOUT_MS;
	r->up = px_upstream_start(s->base, s->target, "GET", path, auth, NULL, 0,
	                         (size_t)s->opts.max_header_bytes, ms, &cbs, r, err, sizeof(err));
	if (!r->up) {
		relay_finish(r, false, err);
		return;
	}
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	event_add(r->timer, &tv);
}

static void handle(struct px_http_conn *c, const struct px_http_req *req, void *ctx)
{
	struct px_server *s = ctx;
	px_metrics_inc(PX_C_REQUESTS, 1);
	char path[sizeof(req->path)];
	snprintf(path, sizeof(path), "%s", req->path);
	path[strcspn(path, "?")] = '\0';
	/* HEAD is GET without the body (px_http_reply leaves it out) */
	bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
	bool post = strcmp(req->method, "POST") == 0;
	bool chat = strcmp(path, "/v1/chat/completions") == 0 || strcmp(path, "/chat/completions") == 0;
	bool models = strcmp(path, "/v1/models") == 0 || strcmp(path, "/models") == 0;
	bool health = strcmp(path, "/health") == 0, metrics = strcmp(path, "/metrics") == 0;
	if (chat && !post) {
		wrong_method(c, req->method, path, "POST");
	} else if ((models || health || metrics) && !get) {
		wrong_method(c, req->method, path, "GET, HEAD");
	} else if (chat) {
		px_chat_handle(s, c, req);
	} else if (models) {
		relay_start(s, c, req, "/v1/models", false);
	} else if (health) {
		relay_start(s, c, req, "/health", true);
	} else if (metrics) {
		struct evbuffer *b = evbuffer_new();
		if (!b) {
			reply_error(c, 500, "out of memory");
			return;
		}
		px_metrics_render(b, s->active_streams, px_http_server_connections(s->http));
		uint64_t paused, backlog;
		px_chat_backlog(s, &paused, &backlog);
		evbuffer_add_printf(b, "# HELP loopwarden_paused_streams Answers whose upstream is paused for a slow client\n"
		                       "# TYPE loopwarden_paused_streams gauge\nloopwarden_paused_streams %" PRIu64 "\n"
		                       "# HELP loopwarden_client_backlog_bytes Bytes waiting for clients (unsent + held)\n"
		                       "# TYPE loopwarden_client_backlog_bytes gauge\nloopwarden_client_backlog_bytes %" PRIu64 "\n"
		                       "# HELP loopwarden_request_body_bytes Request-body bytes held (see proxy.max_total_body_bytes)\n"
		                       "# TYPE loopwarden_request_body_bytes gauge\nloopwarden_request_body_bytes %" PRIu64 "\n",
		                    paused, backlog, px_http_server_body_bytes(s->http));
		size_t n = evbuffer_get_length(b);
		px_http_reply(c, 200, "text/plain; version=0.0.4", (const char *)evbuffer_pullup(b, -1), n,
		              NULL);
		evbuffer_free(b);
	} else {
		char msg[1200];
		snprintf(msg, sizeof(msg), "no such endpoint: %s %s", req->method, path);
		reply_error(c, 404, msg);
	}
}

struct px_server *px_server_new(struct event_base *base, const struct px_options *opts,
                                const struct gd_config *gcfg, char *err, size_t errlen)
{
	struct px_server *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->base = base;
	s->opts = *opts;
	px_metrics_init();
	struct gd_policy *pol = gd_policy_new(gcfg, err, errlen);
	if (!pol)
		goto fail;
	s->policy = calloc(1, sizeof(*s->policy));
	if (!s->policy) {
		gd_policy_free(pol);
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	s->policy->policy = pol;
	s->policy->refs = 1;
	s->policy->generation = 1;
	s->cutmemo = px_cutmemo_new((uint32_t)opts->cut_memo_entries, opts->cut_memo_ttl_ms);
	if (!s->cutmemo) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (opts->have_upstream) {
		s->target = px_target_new(&opts->upstream, opts->upstream_ca_file, err, errlen);
		if (!s->target)
			goto fail;
	}
	struct px_http_limits lim = {
		.max_header_bytes = (size_t)opts->max_header_bytes,
		.max_body_bytes = (size_t)opts->max_body_bytes,
		.max_total_body_bytes = opts->max_total_body_bytes,
		.max_connections = opts->max_connections,
		.idle_timeout_ms = opts->client_idle_timeout_ms,
		.header_timeout_ms = opts->header_timeout_ms,
		.body_timeout_ms = opts->body_timeout_ms,
		.write_timeout_ms = opts->client_write_timeout_ms,
	};
	s->http = px_http_server_new(base, opts->listen_host, opts->listen_port, &lim, handle, s,
	                             err, errlen);
	if (!s->http)
		goto fail;
	return s;
fail:
	px_target_free(s->target);
	px_policy_release(s->policy);
	px_cutmemo_free(s->cutmemo);
	free(s);
	return NULL;
}

void px_server_shutdown(struct px_server *s)
{
	px_http_server_stop_accepting(s->http);
	px_chat_cancel_all(s);
	while (s->relays)
		relay_finish(s->relays, false, "loopwarden is shutting down");
}

void px_server_free(struct px_server *s)
{
	if (!s)
		return;
	px_http_server_stop_accepting(s->http);
	px_chat_cancel_all(s);
	px_chat_free_idle(s);
	while (s->relays)
		relay_free(s->relays);
	px_http_server_free(s->http);
	px_target_free(s->target);
	px_policy_release(s->policy);
	px_cutmemo_free(s->cutmemo);
	free(s);
}

struct px_policy_ref *px_policy_hold(struct px_server *s)
{
	s->policy->refs++;
	return s->policy;
}

void px_policy_release(struct px_policy_ref *ref)
{
	if (!ref || --ref->refs > 0)
		return;
	gd_policy_free(ref->policy);
	free(ref);
}

int px_server_reload(struct px_server *s, const struct gd_config *gcfg, char *err, size_t errlen)
{
	struct gd_policy *pol = gd_policy_new(gcfg, err, errlen);
	if (!pol)
		return -1;
	struct px_policy_ref *ref = calloc(1, sizeof(*ref));
	if (!ref) {
		gd_policy_free(pol);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ref->policy = pol;
	ref->refs = 1;
	ref->generation = s->policy->generation + 1;
	px_policy_release(s->policy); /* answers in progress keep the old one */
	s->policy = ref;
	/* The new settings may judge the remembered cuts otherwise. */
	px_cutmemo_clear(s->cutmemo);
	return 0;
}

uint16_t px_server_port(const struct px_server *s)
{
	return px_http_server_port(s->http);
}
