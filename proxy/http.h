/* A small HTTP/1.1 server on libevent bufferevents: keep-alive, bounded
 * request heads and bodies (each with a deadline, and all bodies together
 * under one cap), plain and streamed responses (chunked, or close-delimited
 * for HTTP/1.0), immediate notice when a client goes away or its output
 * drains, a write deadline for output a client does not take, and an accept
 * loop that backs off when file descriptors run out and answers 503 past
 * max_connections. Heads are parsed by proxy/wire/http_head.h. One event
 * loop; no threads.
 *
 * No state waits on a client without a bound: a head and a body each have a
 * deadline, an idle keep-alive connection the idle timeout, unsent output
 * the write deadline (time between two writes the client's socket took), a
 * lingering close a total; pipelined input is read a head's worth ahead at
 * most, and the next pipelined request is read only once the previous
 * answer has left our buffers (one request per connection per loop turn). */
#ifndef LW_PROXY_HTTP_H
#define LW_PROXY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct px_http_server;
struct px_http_conn;

#include "proxy/wire/http_head.h"

#define PX_HTTP_AUTH_MAX PX_HEAD_AUTH_MAX

/* File descriptors: each connection may hold its client socket, an upstream
 * socket and a recording file; PX_HTTP_FD_RESERVE more are kept for the
 * listener, the event loop, logs, configuration and model files. */
#define PX_HTTP_FD_RESERVE 64
/* Pause after accept() fails for want of descriptors or memory, doubling
 * from the first to the last while it keeps failing; the episode (one log
 * line when it starts, one with the count when it ends) is over after
 * PX_HTTP_ACCEPT_QUIET_MS without a failure. */
#define PX_HTTP_ACCEPT_BACKOFF_MIN_MS 50
#define PX_HTTP_ACCEPT_BACKOFF_MAX_MS 1000
#define PX_HTTP_ACCEPT_QUIET_MS 2000
/* After an answer that closes the connection we shut our side and read and
 * drop what the client still sends (a body we refused), so that the close
 * does not reset the connection before the client read the answer: at most
 * PX_HTTP_LINGER_IDLE_MS between two reads, and in all the body deadline
 * (what a body may take) but never more than PX_HTTP_LINGER_MAX_MS (nginx
 * bounds it the same way: lingering_timeout 5 s, lingering_time 30 s). A
 * client that kept sending a byte a second used to hold the connection. */
#define PX_HTTP_LINGER_IDLE_MS 2000
#define PX_HTTP_LINGER_MAX_MS 30000
/* Seconds a client refused at max_connections is told to wait (Retry-After). */
#define PX_HTTP_REFUSE_RETRY_S 1

/* One parsed request. <body> belongs to the connection and stays valid until
 * the response ends or the connection closes. */
struct px_http_req {
	char method[PX_HEAD_METHOD_MAX];
	char path[PX_HEAD_TARGET_MAX];
	char authorization[PX_HTTP_AUTH_MAX]; /* empty when absent */
	const char *body;
	size_t body_len;
	bool keep_alive;
	uint64_t id; /* unique per server, for logs */
};

/* Called once per complete request; the handler answers with px_http_reply
 * or px_http_stream_*, now or later from the same loop. */
typedef void (*px_http_handler)(struct px_http_conn *c, const struct px_http_req *req, void *ctx);

struct px_http_limits {
	size_t max_header_bytes;
	size_t max_body_bytes;       /* one body; more: 413 */
	uint64_t max_total_body_bytes; /* all bodies held at once; more: 503 + Retry-After */
	uint64_t max_connections;
	uint64_t idle_timeout_ms;    /* no byte from a client between requests */
	uint64_t header_timeout_ms;  /* a head, from its first byte; then 408 */
	uint64_t body_timeout_ms;    /* a body, from the end of its head; then 408 */
	/* Output waits and the client's socket takes no byte of it this long:
	 * the connection is reset (the client is not reading). Measured between
	 * two writes, so a slow reader that keeps reading is served. 0: none. */
	uint64_t write_timeout_ms;
};

/* The most connections <fd_limit> open files allow when each may need
 * <fds_per_conn> descriptors, PX_HTTP_FD_RESERVE kept aside (at least 1). */
uint64_t px_http_connections_for_fds(uint64_t fd_limit, unsigned fds_per_conn);

/* Binds <host>:<port> (0 = any free port). Returns NULL with <err> on failure. */
struct px_http_server *px_http_server_new(struct event_base *base, const char *host,
                                          uint16_t port, const struct px_http_limits *lim,
                                          px_http_handler handler, void *ctx,
                                          char *err, size_t errlen);
/* Closes the listener and every connection (their close callbacks run). */
void px_http_server_free(struct px_http_server *s);
uint16_t px_http_server_port(const struct px_http_server *s);
/* Stops accepting new connections; open ones finish. */
void px_http_server_stop_accepting(struct px_http_server *s);
uint64_t px_http_server_connections(const struct px_http_server *s);
/* Request-body bytes held now (counted from each head's Content-Length
 * until its response ends). */
uint64_t px_http_server_body_bytes(const struct px_http_server *s);

/* A whole response with Content-Length (no body is sent to a HEAD request).
 * <extra> is "Name: value\r\n"… or NULL. */
void px_http_reply(struct px_http_conn *c, int status, const char *content_type,
                   const char *body, size_t len, const char *extra);

/* A streamed response: start, write any number of pieces, end. Chunked for
 * HTTP/1.1 clients; an HTTP/1.0 client gets the bytes as they are and the
 * connection closes at the end (it cannot read chunked encoding). */
void px_http_stream_start(struct px_http_conn *c, int status, const char *content_type);
void px_http_stream_write(struct px_http_conn *c, const void *data, size_t len);
/* Moves all of <buf> into one chunk (no copy). */
void px_http_stream_write_buf(struct px_http_conn *c, struct evbuffer *buf);
void px_http_stream_end(struct px_http_conn *c);
/* Moves all of <buf> into a last chunk and ends the response: one write. */
void px_http_stream_finish(struct px_http_conn *c, struct evbuffer *buf);
/* Bytes written but not yet taken by the client's socket. */
size_t px_http_conn_pending(const struct px_http_conn *c);

/* While a request is being answered asynchronously: <on_close> runs when the
 * client goes away (the connection is freed right after it returns: forget
 * <c>); <on_drain> runs when everything written so far has been sent. Both
 * stop after the response ends. A watcher that sets <on_drain> paces its own
 * writes and takes over the write deadline until the response ends (chat.c
 * pauses its upstream past client_highwater_bytes and applies
 * proxy.client_write_timeout_ms itself, cancelling the upstream); without
 * one, and once the response has ended, the server applies write_timeout_ms. */
typedef void (*px_http_conn_cb)(struct px_http_conn *c, void *ctx);
void px_http_conn_watch(struct px_http_conn *c, px_http_conn_cb on_close,
                        px_http_conn_cb on_drain, void *ctx);

/* Closes <c> now with a reset, dropping what it has not sent: for a client that stopped
 * reading. Its watcher callbacks do not run (the caller is the watcher and
 * has let go of the answer); forget <c> afterwards. */
void px_http_conn_abort(struct px_http_conn *c);

const char *px_http_status_text(int status);

#endif
