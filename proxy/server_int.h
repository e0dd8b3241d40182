/* State shared by the proxy's request handlers (server.c, chat.c). */
#ifndef LW_PROXY_SERVER_INT_H
#define LW_PROXY_SERVER_INT_H

#include <stdint.h>

#include "guards/history.h"
#include "guards/pipeline.h"
#include "guards/policy.h"
#include "proxy/http.h"
#include "proxy/options.h"
#include "proxy/upstream.h"

struct px_chat;
struct px_server;
struct px_sse;
struct px_chunk;
struct px_source_ops;
struct px_model;
struct px_cutmemo;

/* Idle SSE parsers and chunk converters kept for the next answers. A pair
 * holds about 64 KiB between answers (its buffers grow with the events up to
 * proxy.max_event_bytes and give back what a large event needed): reusing
 * them spares every answer a few allocations and a 30 KiB clear. */
#define PX_IDLE_PARSERS 32

/* A compiled guard policy shared by the answers that started under it: a
 * reload installs a new one; the old one goes when its last answer ends. */
struct px_policy_ref {
	struct gd_policy *policy;
	uint64_t refs; /* answers using it, plus one while it is the server's */
	uint64_t generation; /* 1 for the first policy, +1 per reload (cut memory keys) */
};
struct px_policy_ref *px_policy_hold(struct px_server *s);
void px_policy_release(struct px_policy_ref *ref);

/* Where a chat completion is answered: a source (proxy/source.h) and what it
 * needs. */
struct px_route {
	char name[PX_MODEL_NAME_MAX];    /* the model clients ask for; "" for a lone --upstream */
	const struct px_source_ops *ops;
	const struct px_target *target;  /* upstream routes */
	const char *upstream_key;        /* upstream routes: "" relays the client's Authorization */
	const struct px_model *model;    /* co-resident routes (proxy/model.h) */
};

struct px_server {
	struct event_base *base;
	struct px_options opts;
	struct px_policy_ref *policy;
	struct px_target *target;
	/* Where chat completions go: one route (--upstream or --model), or the
	 * routes: of the config, picked by the request's model. */
	struct px_route routes[PX_ROUTES_MAX];
	uint32_t n_routes;
	struct px_model *models[PX_ROUTES_MAX];  /* loaded co-resident models (owned) */
	uint32_t n_models;
	struct px_target *targets[PX_ROUTES_MAX]; /* upstreams of routes: (owned) */
	uint32_t n_targets;
	int64_t started;        /* time(NULL) at start ("created" of /v1/models) */
	struct px_http_server *http;
	uint64_t active_streams;
	struct px_chat *chats; /* every answer in progress */
	struct px_sse *idle_sse[PX_IDLE_PARSERS];
	struct px_chunk *idle_conv[PX_IDLE_PARSERS];
	unsigned n_idle;
	struct px_relay *relays;
	bool record_warned;
	struct px_cutmemo *cutmemo; /* recent cuts (proxy/cutmemo.h) */
};

/* The route for a request asking for <model> (may be ""): the only one, or
 * the one of that name. NULL with <status> and <err> when none fits. */
const struct px_route *px_route_pick(const struct px_server *s, const char *model, int *status,
                                     char *err, size_t errlen);

/* POST /v1/chat/completions (chat.c). */
void px_chat_handle(struct px_server *s, struct px_http_conn *c, const struct px_http_req *req);
/* Answers whose upstream is paused for a slow client, and the bytes waiting
 * for clients (unsent output plus held tool-call chunks). */
void px_chat_backlog(const struct px_server *s, uint64_t *paused, uint64_t *bytes);
/* Cancels every answer in progress (shutdown). */
void px_chat_cancel_all(struct px_server *s);
/* Frees the idle parsers (px_server_free, after px_chat_cancel_all). */
void px_chat_free_idle(struct px_server *s);

uint64_t px_now_us(void);
/* One log line about request <id> on stderr (nothing with proxy.quiet). */
void px_log_req(const struct px_server *s, uint64_t id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
