/* The HTTP/1.1 client towards the upstream engine: one connection per
 * request (Connection: close), so cancelling is closing the socket.
 * Delivers the response head, then body bytes (chunked encoding removed) as
 * they arrive; reading can be paused for back-pressure. */
#ifndef LW_PROXY_UPSTREAM_H
#define LW_PROXY_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/options.h"

struct event_base;
struct px_upstream;
struct px_target; /* a resolved upstream address (+ TLS context) */

enum px_up_error {
	PX_UP_OK = 0,
	PX_UP_CONNECT = -1,   /* refused, unreachable, connect timeout */
	PX_UP_RESET = -2,     /* closed or reset before the response ended */
	PX_UP_PROTOCOL = -3,  /* not HTTP, bad chunking, head too large */
	PX_UP_TLS = -4,
	PX_UP_ERROR_COUNT = 5
};
const char *px_up_strerror(enum px_up_error e);

struct px_upstream_cbs {
	void (*on_head)(void *ctx, int status, const char *content_type);
	void (*on_body)(void *ctx, const char *data, size_t len);
	void (*on_end)(void *ctx);
	void (*on_error)(void *ctx, enum px_up_error e, const char *detail);
};

/* Resolves <url>'s host once (at start-up); for https, trusts the CAs in
 * <ca_file> (PEM), or the system store when it is NULL or empty, and checks
 * the certificate names <url>'s host (DNS name or IP address). Returns NULL
 * with <err>. */
struct px_target *px_target_new(const struct px_url *url, const char *ca_file,
                                char *err, size_t errlen);
void px_target_free(struct px_target *t);
const struct px_url *px_target_url(const struct px_target *t);

/* Sends "<method> <prefix><path>" with <body> (may be NULL) and, when
 * <authorization> is non-empty, that Authorization header value. Exactly one
 * of on_end / on_error ends the exchange (the socket is closed by then),
 * unless px_upstream_free comes first. The caller always frees the result,
 * from a callback or later. Returns NULL with <err> when nothing could be
 * started. */
struct px_upstream *px_upstream_start(struct event_base *base, const struct px_target *t,
                                      const char *method, const char *path,
                                      const char *authorization,
                                      const char *body, size_t body_len,
                                      size_t max_head_bytes, uint64_t connect_timeout_ms,
                                      const struct px_upstream_cbs *cbs, void *ctx,
                                      char *err, size_t errlen);
/* Stops (true) or resumes (false) reading the response. */
void px_upstream_pause(struct px_upstream *u, bool paused);
/* Closes the connection at once; no callback runs afterwards. NULL is a no-op. */
void px_upstream_free(struct px_upstream *u);

#endif
