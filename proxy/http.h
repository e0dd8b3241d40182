/* A small HTTP/1.1 server on libevent bufferevents: keep-alive, bounded
 * request heads and bodies, plain and chunked (streaming) responses, and
 * immediate notice when a client goes away or its output drains. One event
 * loop; no threads. */
#ifndef LW_PROXY_HTTP_H
#define LW_PROXY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct px_http_server;
struct px_http_conn;

#define PX_HTTP_AUTH_MAX 1024

/* One parsed request. <body> belongs to the connection and stays valid until
 * the response ends or the connection closes. */
struct px_http_req {
	char method[16];
	char path[1024];
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
	size_t max_body_bytes;
	uint64_t max_connections;
	uint64_t idle_timeout_ms;
};

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

/* A whole response with Content-Length. <extra> is "Name: value\r\n"… or NULL. */
void px_http_reply(struct px_http_conn *c, int status, const char *content_type,
                   const char *body, size_t len, const char *extra);

/* A streamed (chunked) response: start, write any number of pieces, end. */
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
 * stop after the response ends. */
typedef void (*px_http_conn_cb)(struct px_http_conn *c, void *ctx);
void px_http_conn_watch(struct px_http_conn *c, px_http_conn_cb on_close,
                        px_http_conn_cb on_drain, void *ctx);

/* Closes <c> now with a reset, dropping what it has not sent: for a client that stopped
 * reading. Its watcher callbacks do not run (the caller is the watcher and
 * has let go of the answer); forget <c> afterwards. */
void px_http_conn_abort(struct px_http_conn *c);

const char *px_http_status_text(int status);

#endif
