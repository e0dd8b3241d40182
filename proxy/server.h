/* The proxy server: routes HTTP requests (chat completions, models, health,
 * metrics) and owns everything shared by requests (guard policy, upstream
 * target, recorder settings). One event loop. */
#ifndef LW_PROXY_SERVER_H
#define LW_PROXY_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "guards/config.h"
#include "proxy/options.h"

struct event_base;
struct px_server;

/* Binds the listener and compiles the guard policy. Returns NULL with <err>. */
struct px_server *px_server_new(struct event_base *base, const struct px_options *opts,
                                const struct gd_config *gcfg, char *err, size_t errlen);
/* Graceful stop: no new connections; every answer in progress ends now
 * (an error event + [DONE], or a 503) with its upstream closed. The loop
 * should run a moment longer so those last bytes reach the clients. */
void px_server_shutdown(struct px_server *s);
/* Cancels every answer in progress (closing its upstream) and every
 * connection. NULL is a no-op. */
void px_server_free(struct px_server *s);
uint16_t px_server_port(const struct px_server *s);
/* New guard thresholds for the answers that start from now on; answers in
 * progress finish under the policy they started with. Returns 0, or -1 with
 * <err> (the old policy stays). */
int px_server_reload(struct px_server *s, const struct gd_config *gcfg, char *err, size_t errlen);

#endif
