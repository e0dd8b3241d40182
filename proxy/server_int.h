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

struct px_server {
	struct event_base *base;
	struct px_options opts;
	struct px_policy_ref *policy;
	struct px_target *target;
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

#endif
