/* HTTP/1.1 server connections on bufferevents. */
#include "proxy/http.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "proxy/emit.h"
#include "proxy/metrics.h"

/* Empty lines allowed before a request-line (RFC 9112 2.2: a CRLF some
 * clients send after a POST body); more is not a client, and would keep a
 * connection alive without ever starting a head. */
#define HTTP_BLANK_MAX 64

enum conn_state { CS_HEAD = 0, CS_BODY, CS_HANDLING, CS_CLOSING };

struct px_http_conn {
	struct px_http_server *srv;
	struct bufferevent *bev;
	struct event *next_ev; /* parses pipelined input after the next poll for I/O */
	struct event *deadline_ev; /* the head's or the body's deadline; the lingering total */
	enum conn_state state;
	struct px_http_req req;
	struct px_head_scan scan; /* where the head being read ends */
	size_t blank;             /* empty-line bytes skipped before this head */
	char *body;
	size_t body_want;
	uint64_t body_held; /* this request's share of the server's body_bytes */
	bool http10;        /* the request was HTTP/1.0 */
	bool raw_stream;    /* a streamed reply without chunking (HTTP/1.0): ends at close */
	bool close_after;
	bool lingering; /* our side is shut: discard input until the client closes */
	px_http_conn_cb on_close, on_drain;
	void *watch_ctx;
	struct px_http_conn *prev, *next;
};

struct px_http_server {
	struct event_base *base;
	struct evconnlistener *lst;
	struct px_http_limits lim;
	px_http_handler handler;
	void *ctx;
	uint16_t port;
	uint64_t n_conns;
	uint64_t next_id;
	uint64_t body_bytes; /* request bodies held, see px_http_limits.max_total_body_bytes */
	struct px_http_conn *conns;
	/* accept() failing (EMFILE…): the listener is paused and retried from
	 * <accept_ev>; one log line when it starts failing, one from
	 * <quiet_ev> once it has not failed for a while, with the count. */
	struct event *accept_ev;
	struct event *quiet_ev;
	uint64_t accept_failures; /* in this episode; 0: none going on */
	uint64_t accept_backoff_ms;
	/* The whole answer to a client past max_connections, built once. */
	char refusal[640];
	size_t refusal_len;
};

uint64_t px_http_connections_for_fds(uint64_t fd_limit, unsigned fds_per_conn)
{
	if (fds_per_conn == 0)
		fds_per_conn = 1;
	if (fd_limit < PX_HTTP_FD_RESERVE + fds_per_conn)
		return 1;
	return (fd_limit - PX_HTTP_FD_RESERVE) / fds_per_conn;
}

const char *px_http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
	}
}

/* Gives this request's body bytes back to the server's total. */
static void body_release(struct px_http_conn *c)
{
	c->srv->body_bytes -= c->body_held;
	c->body_held = 0;
}

static void conn_free(struct px_http_conn *c)
{
	struct px_http_server *s = c->srv;
	body_release(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	bufferevent_free(c->bev);
	event_free(c->next_ev);
	event_free(c->deadline_ev);
	free(c->body);
	free(c);
}

/* The client is gone (or must go): tell the watcher, then free. */
static void conn_close(struct px_http_conn *c)
{
	px_http_conn_cb cb = c->state == CS_HANDLING ? c->on_close : NULL;
	void *ctx = c->watch_ctx;
	c->on_close = NULL;
	c->on_drain = NULL;
	if (cb)
		cb(c, ctx);
	conn_free(c);
}

/* Makes the close of <c> a reset that drops what it has not sent: nobody
 * will read it, and an orphaned socket would keep up to its send buffer
 * (MiBs) for a peer that does not read. */
static void reset_on_close(struct px_http_conn *c)
{
	struct linger lg = {1, 0};
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static struct timeval ms_tv(uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	return tv;
}

/* The head's or the body's deadline, or the lingering total: <ms> from now,
 * or off (0). Unlike the idle timeout it does not restart when a byte
 * arrives. */
static void set_deadline(struct px_http_conn *c, uint64_t ms)
{
	if (ms == 0) {
		evtimer_del(c->deadline_ev);
		return;
	}
	struct timeval tv = ms_tv(ms);
	evtimer_add(c->deadline_ev, &tv);
}

/* The bufferevent's two timers for <c>'s state (setting them restarts
 * them). Between two reads: the idle timeout while a request is awaited or
 * read, PX_HTTP_LINGER_IDLE_MS while lingering, none while an answer is
 * produced or flushed (other deadlines bound those). Between two writes
 * (libevent arms it only while output waits, and restarts it whenever the
 * socket takes bytes): write_timeout_ms, except while a watcher that paces
 * its own writes answers (see px_http_conn_watch) and while lingering (all
 * is sent by then). */
static void set_timeouts(struct px_http_conn *c)
{
	const struct px_http_limits *lim = &c->srv->lim;
	struct timeval rd, wr;
	const struct timeval *rp = NULL, *wp = NULL;
	if (c->lingering) {
		rd = ms_tv(PX_HTTP_LINGER_IDLE_MS);
		rp = &rd;
	} else if ((c->state == CS_HEAD || c->state == CS_BODY) && lim->idle_timeout_ms) {
		rd = ms_tv(lim->idle_timeout_ms);
		rp = &rd;
	}
	bool paced = c->state == CS_HANDLING && c->on_drain;
	if (lim->write_timeout_ms && !c->lingering && !paced) {
		wr = ms_tv(lim->write_timeout_ms);
		wp = &wr;
	}
	bufferevent_set_timeouts(c->bev, rp, wp);
}

/* The next request is parsed from a timer due at once: it runs after the
 * next poll for I/O, not within this turn (event_active would), so other
 * connections' ready events are served in between. */
static void schedule_next(struct px_http_conn *c)
{
	static const struct timeval now = {0, 0};
	event_add(c->next_ev, &now);
}

/* The response is out: shut our side and discard what the client still
 * sends (a refused body), so that closing does not reset the connection
 * before the client has read the answer. Bounded: PX_HTTP_LINGER_IDLE_MS
 * between two reads, and a total (see PX_HTTP_LINGER_MAX_MS) that a client
 * sending a byte now and then cannot push back. */
static void linger_close(struct px_http_conn *c)
{
	if (c->lingering)
		return;
	c->lingering = true;
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	if (fd >= 0)
		shutdown(fd, SHUT_WR);
	set_timeouts(c);
	uint64_t total = c->srv->lim.body_timeout_ms;
	set_deadline(c, total && total < PX_HTTP_LINGER_MAX_MS ? total : PX_HTTP_LINGER_MAX_MS);
	bufferevent_enable(c->bev, EV_READ);
	evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
}

/* A response is complete: keep the connection for the next request, or
 * close it once the output is flushed. Either way what is still unsent
 * must leave within the write deadline. The next request is read only once
 * this answer has left our buffers (write_cb): a client that pipelines
 * requests without reading their answers holds at most one answer here,
 * and one connection's pipelined requests are answered one per loop turn,
 * between everyone else's. */
static void request_done(struct px_http_conn *c)
{
	free(c->body);
	c->body = NULL;
	body_release(c);
	set_deadline(c, 0);
	memset(&c->scan, 0, sizeof(c->scan));
	c->blank = 0;
	c->on_close = NULL;
	c->on_drain = NULL;
	c->raw_stream = false;
	bool pending = evbuffer_get_length(bufferevent_get_output(c->bev)) != 0;
	if (c->close_after || !c->req.keep_alive) {
		c->state = CS_CLOSING;
		set_timeouts(c);
		if (!pending) /* write_cb will not run: linger from the next turn */
			schedule_next(c);
		return;
	}
	memset(&c->req, 0, sizeof(c->req));
	c->state = CS_HEAD;
	set_timeouts(c);
	if (pending) {
		bufferevent_disable(c->bev, EV_READ);
		return;
	}
	bufferevent_enable(c->bev, EV_READ);
	schedule_next(c);
}

static void write_head(struct px_http_conn *c, int status, const char *ctype,
                       const char *framing, const char *extra)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nServer: loopwarden\r\n%s%s%s%s%s\r\n",
	                    status, px_http_status_text(status),
	                    ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "",
	                    framing, extra ? extra : "");
}

void px_http_reply(struct px_http_conn *c, int status, const char *content_type,
                   const char *body, size_t len, const char *extra)
{
	char framing[96];
	snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n%s", len,
	         (c->close_after || !c->req.keep_alive) ? "Connection: close\r\n" : "");
	write_head(c, status, content_type, framing, extra);
	if (len && strcmp(c->req.method, "HEAD") != 0)
		evbuffer_add(bufferevent_get_output(c->bev), body, len);
	request_done(c);
}

static size_t send_now(struct px_http_conn *c, struct iovec *iov, int n);

void px_http_stream_start(struct px_http_conn *c, int status, const char *content_type)
{
	const char *framing;
	if (c->http10) {
		/* HTTP/1.0 has no chunked encoding: the body ends when we close */
		c->raw_stream = true;
		c->close_after = true;
		framing = "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n";
	} else {
		framing = (c->close_after || !c->req.keep_alive)
		              ? "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n"
		              : "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n";
	}
	/* Sent at once like the chunks (see send_now), so the first chunk
	 * need not wait a loop turn behind a queued head. */
	char head[512];
	int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nServer: loopwarden\r\n%s%s%s%s\r\n",
	                 status, px_http_status_text(status), content_type ? "Content-Type: " : "",
	                 content_type ? content_type : "", content_type ? "\r\n" : "", framing);
	if (n < 0 || (size_t)n >= sizeof(head)) {
		write_head(c, status, content_type, framing, NULL);
		return;
	}
	struct iovec iov = {head, (size_t)n};
	size_t sent = send_now(c, &iov, 1);
	if (sent < (size_t)n)
		evbuffer_add(bufferevent_get_output(c->bev), head + sent, (size_t)n - sent);
}

/* "<hex len>\r\n" into <line> (24 bytes); returns its length. Per chunk,
 * so no printf. */
static size_t chunk_line(char *line, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[16];
	size_t n = 0;
	do {
		tmp[n++] = hex[len & 15];
		len >>= 4;
	} while (len);
	for (size_t i = 0; i < n; i++)
		line[i] = tmp[n - 1 - i];
	line[n] = '\r';
	line[n + 1] = '\n';
	return n + 2;
}

/* Sends <iov> (<n> entries) on the client's socket now when nothing is
 * queued before it, and returns how many bytes the socket took; the caller
 * queues the rest in the bufferevent. A queued write only arms EV_WRITE and
 * goes out after the next epoll_wait: one loop turn and two epoll_ctl later
 * (nginx, too, writes from its read handler). Returns 0 when output is
 * already queued (order), on EAGAIN (the bufferevent waits for the socket,
 * and a slow client's backlog builds up there as before) and on an error
 * (the bufferevent meets it on its own write and closes the connection). */
static size_t send_now(struct px_http_conn *c, struct iovec *iov, int n)
{
	if (c->lingering || evbuffer_get_length(bufferevent_get_output(c->bev)) != 0)
		return 0;
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	if (fd < 0)
		return 0;
	struct msghdr msg = {0};
	msg.msg_iov = iov;
	msg.msg_iovlen = (size_t)n;
	ssize_t k;
	do
		k = sendmsg(fd, &msg, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	return k > 0 ? (size_t)k : 0;
}

/* Sends the chunk "<len>\r\n" <data…> <trailer> whose data is
 * <iov>[1..n-2] (entries 0 and n-1 are filled here; <trailer> is the
 * chunk's CRLF, and may go on with the last chunk "0\r\n\r\n"). Returns the
 * bytes of data sent: the caller queues the rest of its data, then the last
 * *<tail> bytes of <trailer>. When the whole chunk went out, *<tail> is 0
 * and the result is the data's length. The part of the size line that did
 * not go out is queued here, before the caller's data. */
static size_t send_chunk(struct px_http_conn *c, struct iovec *iov, int n, size_t data_len,
                         const char *trailer, size_t tl, size_t *tail)
{
	char line[24];
	size_t ll = chunk_line(line, data_len);
	iov[0].iov_base = line;
	iov[0].iov_len = ll;
	iov[n - 1].iov_base = (void *)trailer;
	iov[n - 1].iov_len = tl;
	size_t sent = send_now(c, iov, n);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	*tail = tl;
	if (sent < ll) {
		evbuffer_add(out, line + sent, ll - sent);
		return 0;
	}
	sent -= ll;
	if (sent <= data_len)
		return sent;
	*tail -= sent - data_len;
	return data_len;
}

void px_http_stream_write(struct px_http_conn *c, const void *data, size_t len)
{
	if (len == 0)
		return;
	if (c->raw_stream) {
		struct iovec one = {(void *)data, len};
		size_t sent = send_now(c, &one, 1);
		if (sent < len)
			evbuffer_add(bufferevent_get_output(c->bev), (const char *)data + sent, len - sent);
		return;
	}
	struct iovec iov[3];
	iov[1].iov_base = (void *)data;
	iov[1].iov_len = len;
	size_t tail;
	size_t sent = send_chunk(c, iov, 3, len, "\r\n", 2, &tail);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (sent < len)
		evbuffer_add(out, (const char *)data + sent, len - sent);
	if (tail)
		evbuffer_add(out, &"\r\n"[2 - tail], tail);
}

#define WRITE_IOV 64 /* pieces of one chunk written straight away; more are queued */
_Static_assert(sizeof(struct evbuffer_iovec) == sizeof(struct iovec), "evbuffer_iovec is an iovec");

/* All of <buf> as it is (a close-delimited HTTP/1.0 body). */
static void write_raw(struct px_http_conn *c, struct evbuffer *buf)
{
	size_t len = evbuffer_get_length(buf);
	struct iovec iov[WRITE_IOV];
	int nv = evbuffer_peek(buf, (ev_ssize_t)len, NULL, (struct evbuffer_iovec *)iov, WRITE_IOV);
	if (nv > 0 && nv <= WRITE_IOV)
		evbuffer_drain(buf, send_now(c, iov, nv));
	evbuffer_add_buffer(bufferevent_get_output(c->bev), buf);
}

/* All of <buf> as one chunk followed by <trailer> (see send_chunk). */
static void write_buf(struct px_http_conn *c, struct evbuffer *buf, const char *trailer, size_t tl)
{
	size_t len = evbuffer_get_length(buf);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct iovec iov[WRITE_IOV + 2];
	/* <len> whole: the result is the number of pieces needed, even past WRITE_IOV */
	int nv = evbuffer_peek(buf, (ev_ssize_t)len, NULL, &iov[1], WRITE_IOV);
	size_t sent = 0, tail = tl;
	if (nv > 0 && nv <= WRITE_IOV) {
		sent = send_chunk(c, iov, nv + 2, len, trailer, tl, &tail);
		evbuffer_drain(buf, sent);
	} else {
		char line[24];
		evbuffer_add(out, line, chunk_line(line, len));
	}
	evbuffer_add_buffer(out, buf);
	if (tail)
		evbuffer_add(out, trailer + (tl - tail), tail);
}

void px_http_stream_write_buf(struct px_http_conn *c, struct evbuffer *buf)
{
	if (evbuffer_get_length(buf) == 0)
		return;
	if (c->raw_stream)
		write_raw(c, buf);
	else
		write_buf(c, buf, "\r\n", 2);
}

void px_http_stream_finish(struct px_http_conn *c, struct evbuffer *buf)
{
	if (evbuffer_get_length(buf) == 0) {
		px_http_stream_end(c);
		return;
	}
	if (c->raw_stream)
		write_raw(c, buf);
	else
		write_buf(c, buf, "\r\n0\r\n\r\n", 7);
	request_done(c);
}

void px_http_stream_end(struct px_http_conn *c)
{
	if (c->raw_stream) { /* the close ends the body */
		request_done(c);
		return;
	}
	struct iovec iov = {(void *)"0\r\n\r\n", 5};
	size_t sent = send_now(c, &iov, 1);
	if (sent < 5)
		evbuffer_add(bufferevent_get_output(c->bev), &"0\r\n\r\n"[sent], 5 - sent);
	request_done(c);
}

size_t px_http_conn_pending(const struct px_http_conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

void px_http_conn_watch(struct px_http_conn *c, px_http_conn_cb on_close,
                        px_http_conn_cb on_drain, void *ctx)
{
	bool was_paced = c->on_drain != NULL;
	c->on_close = on_close;
	c->on_drain = on_drain;
	c->watch_ctx = ctx;
	if (was_paced != (on_drain != NULL)) /* who owns the write deadline changed */
		set_timeouts(c);
}

void px_http_conn_abort(struct px_http_conn *c)
{
	reset_on_close(c); /* not a FIN behind the unsent bytes */
	c->on_close = NULL;
	c->on_drain = NULL;
	conn_free(c);
}

/* Errors found while reading a request: answer (the OpenAI error body, see
 * px_emit_error) and close, since what follows on the connection can no
 * longer be framed. <extra> as for px_http_reply. */
static void fail_request(struct px_http_conn *c, int status, const char *msg, const char *extra)
{
	c->close_after = true;
	c->state = CS_HANDLING;
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		px_http_reply(c, status, "application/json", "{}", 2, extra);
		return;
	}
	px_emit_error(b, status, msg);
	size_t n = evbuffer_get_length(b);
	px_http_reply(c, status, "application/json", (const char *)evbuffer_pullup(b, -1), n, extra);
	evbuffer_free(b);
}

/* The head's or the body's deadline passed. */
static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct px_http_conn *c = arg;
	char msg[160];
	if (c->lingering) { /* the lingering total: the client had its answer */
		conn_close(c);
		return;
	}
	if (c->state == CS_HEAD) {
		snprintf(msg, sizeof(msg), "the request head did not arrive within proxy.header_timeout_ms (%" PRIu64 " ms)",
		         c->srv->lim.header_timeout_ms);
	} else if (c->state == CS_BODY) {
		snprintf(msg, sizeof(msg), "the request body did not arrive within proxy.body_timeout_ms (%" PRIu64 " ms)",
		         c->srv->lim.body_timeout_ms);
	} else {
		return;
	}
	fail_request(c, 408, msg, NULL);
}

/* Skips the empty lines allowed before a request-line; false (the
 * connection failed) when there are too many. */
static bool skip_blank(struct px_http_conn *c, struct evbuffer *in)
{
	size_t len = evbuffer_get_length(in);
	size_t look = len < HTTP_BLANK_MAX + 1 ? len : HTTP_BLANK_MAX + 1;
	const unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)look);
	size_t k = 0;
	while (k < look && (p[k] == '\r' || p[k] == '\n'))
		k++;
	if (k == 0)
		return true;
	evbuffer_drain(in, k);
	c->blank += k;
	if (c->blank > HTTP_BLANK_MAX) {
		fail_request(c, 400, "too many empty lines before the request line", NULL);
		return false;
	}
	return true;
}

/* Feeds the input not yet scanned to the head scanner. Returns the head's
 * length once its end is in <in>, else 0. Each byte is scanned once, so a
 * head trickled byte by byte costs no more than one sent whole. */
static size_t scan_head(struct px_http_conn *c, struct evbuffer *in)
{
	size_t len = evbuffer_get_length(in);
	size_t limit = c->srv->lim.max_header_bytes + 4; /* enough to tell "too large" */
	while (c->scan.pos < len && c->scan.pos < limit) {
		struct evbuffer_ptr at;
		if (evbuffer_ptr_set(in, &at, c->scan.pos, EVBUFFER_PTR_SET) != 0)
			return 0;
		struct evbuffer_iovec v[8];
		int n = evbuffer_peek(in, -1, &at, v, 8);
		if (n <= 0)
			return 0;
		for (int i = 0; i < n && i < 8; i++) {
			size_t hl = px_head_scan_feed(&c->scan, v[i].iov_base, v[i].iov_len);
			if (hl)
				return hl;
		}
	}
	return 0;
}

/* A whole head is at the start of <in> (<hl> bytes): parse it, take it off
 * the input, and get ready for the body. False when the request failed. */
static bool take_head(struct px_http_conn *c, struct evbuffer *in, size_t hl)
{
	struct px_http_server *s = c->srv;
	struct px_http_head ph;
	char err[256];
	const char *h = (const char *)evbuffer_pullup(in, (ev_ssize_t)hl);
	enum px_head_status st = h ? px_http_head_parse(h, hl, &ph, err, sizeof(err)) : PX_HEAD_EBAD;
	if (!h)
		snprintf(err, sizeof(err), "out of memory");
	evbuffer_drain(in, hl);
	memset(&c->scan, 0, sizeof(c->scan));
	c->blank = 0;
	memset(&c->req, 0, sizeof(c->req));
	if (st != PX_HEAD_OK) {
		fail_request(c, px_head_http_status(st), err, NULL);
		return false;
	}
	snprintf(c->req.method, sizeof(c->req.method), "%s", ph.method);
	snprintf(c->req.path, sizeof(c->req.path), "%s", ph.target);
	snprintf(c->req.authorization, sizeof(c->req.authorization), "%s", ph.authorization);
	c->req.keep_alive = ph.keep_alive;
	c->http10 = ph.minor == 0;
	uint64_t clen = ph.content_length;
	if (clen > s->lim.max_body_bytes) {
		snprintf(err, sizeof(err), "request body of %" PRIu64 " bytes exceeds proxy.max_body_bytes (%zu)",
		         clen, s->lim.max_body_bytes);
		fail_request(c, 413, err, NULL);
		return false;
	}
	if (clen > s->lim.max_total_body_bytes - s->body_bytes) {
		/* before a byte of it is read: the client retries when memory is free */
		fail_request(c, 503, "loopwarden holds proxy.max_total_body_bytes of request bodies: retry later",
		             "Retry-After: 1\r\n");
		return false;
	}
	s->body_bytes += clen;
	c->body_held = clen;
	c->body_want = (size_t)clen;
	c->body = NULL;
	if (ph.expect_continue && clen > 0 && !c->http10)
		evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
	set_deadline(c, clen > 0 ? s->lim.body_timeout_ms : 0);
	c->state = CS_BODY;
	return true;
}

static void dispatch(struct px_http_conn *c)
{
	c->req.body = c->body ? c->body : "";
	c->req.body_len = c->body_want;
	c->req.id = ++c->srv->next_id;
	c->state = CS_HANDLING;
	set_deadline(c, 0);
	set_timeouts(c);
	c->srv->handler(c, &c->req, c->srv->ctx);
}

/* Parses as much buffered input as the state allows. */
static void process_input(struct px_http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	if (c->state == CS_CLOSING) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (c->state == CS_HANDLING) {
		/* Pipelined input waits; past a head's worth we stop reading
		 * (we then learn of a close only when a write fails). */
		if (evbuffer_get_length(in) > c->srv->lim.max_header_bytes)
			bufferevent_disable(c->bev, EV_READ);
		return;
	}
	if (c->state == CS_HEAD) {
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) != 0) {
			/* the last answer has not left yet: write_cb resumes */
			bufferevent_disable(c->bev, EV_READ);
			return;
		}
		if (c->scan.pos == 0 && !skip_blank(c, in))
			return;
		size_t len = evbuffer_get_length(in);
		if (len == 0)
			return;
		if (c->scan.pos == 0 && !evtimer_pending(c->deadline_ev, NULL))
			set_deadline(c, c->srv->lim.header_timeout_ms); /* from the head's first byte */
		size_t hl = scan_head(c, in);
		if (hl == 0 ? c->scan.pos > c->srv->lim.max_header_bytes : hl > c->srv->lim.max_header_bytes) {
			fail_request(c, 431, "request head exceeds proxy.max_header_bytes", NULL);
			return;
		}
		if (hl == 0 || !take_head(c, in, hl))
			return;
	}
	if (c->state == CS_BODY) {
		if (evbuffer_get_length(in) < c->body_want)
			return;
		if (c->body_want) {
			c->body = malloc(c->body_want + 1);
			if (!c->body) {
				fail_request(c, 500, "out of memory", NULL);
				return;
			}
			evbuffer_remove(in, c->body, c->body_want);
			c->body[c->body_want] = '\0';
		}
		dispatch(c);
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	process_input(arg);
}

/* Everything written so far has left our buffers. */
static void write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct px_http_conn *c = arg;
	switch (c->state) {
	case CS_CLOSING:
		linger_close(c);
		break;
	case CS_HANDLING:
		if (c->on_drain)
			c->on_drain(c, c->watch_ctx);
		break;
	case CS_HEAD: /* the last answer is out: read the next request */
		bufferevent_enable(c->bev, EV_READ);
		schedule_next(c);
		break;
	default:
		break;
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct px_http_conn *c = arg;
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING)) {
		/* Output waited write_timeout_ms and the client's socket took
		 * none of it: the client is not reading. Without this a finished
		 * answer nobody reads held its connection (and the answer) for
		 * ever, and enough of them locked everyone out at max_connections. */
		px_metrics_inc(PX_C_CLIENT_STALLED, 1);
		reset_on_close(c);
		conn_close(c);
		return;
	}
	if ((what & BEV_EVENT_EOF) && c->state != CS_HANDLING && !c->lingering &&
	    evbuffer_get_length(bufferevent_get_output(bev)) != 0) {
		/* The client shut its sending side after its last request (a
		 * half-close, as `nc -N` does) while its answer is still going
		 * out: finish sending it, within the write deadline, then close.
		 * libevent has stopped reading; a request begun is dropped. An
		 * EOF while an answer is produced is a client gone (below): the
		 * upstream is cancelled, as nginx does. */
		c->state = CS_CLOSING;
		c->close_after = true;
		set_deadline(c, 0);
		body_release(c);
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
		set_timeouts(c);
		return;
	}
	conn_close(c); /* EOF, error or idle timeout: the connection is over */
}

static void next_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct px_http_conn *c = arg;
	if (c->state == CS_CLOSING) {
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			linger_close(c);
		return;
	}
	process_input(c);
}

/* A client past max_connections: one non-blocking send of a whole 503 that
 * fits any socket buffer, a FIN, and the close, never waiting for the
 * client (it used to get a close with nothing on the wire, which clients
 * report as a network error rather than retrying later). What the client
 * sent so far is read and dropped first: closing with unread input would
 * send a reset that may destroy the answer before the client reads it. */
static void refuse(struct px_http_server *s, evutil_socket_t fd)
{
	ssize_t k;
	do
		k = send(fd, s->refusal, s->refusal_len, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	shutdown(fd, SHUT_WR);
	char sink[4096];
	for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
		;
	evutil_closesocket(fd);
	px_metrics_inc(PX_C_CONN_REFUSED, 1);
}

/* The 503 that refuse() sends, with the OpenAI error body. */
static void build_refusal(struct px_http_server *s)
{
	char msg[160];
	snprintf(msg, sizeof(msg), "loopwarden has proxy.max_connections (%" PRIu64 ") client "
	         "connections open: retry later", s->lim.max_connections);
	struct evbuffer *b = evbuffer_new();
	if (b)
		px_emit_error(b, 503, msg);
	size_t n = b ? evbuffer_get_length(b) : 2;
	const char *body = b ? (const char *)evbuffer_pullup(b, -1) : NULL;
	if (!body) {
		body = "{}";
		n = 2;
	}
	static const char fmt[] = "HTTP/1.1 503 Service Unavailable\r\nServer: loopwarden\r\n"
	                          "Content-Type: application/json\r\nContent-Length: %zu\r\n"
	                          "Retry-After: %d\r\nConnection: close\r\n\r\n%.*s";
	int k = snprintf(s->refusal, sizeof(s->refusal), fmt, n, PX_HTTP_REFUSE_RETRY_S, (int)n, body);
	if (k < 0 || (size_t)k >= sizeof(s->refusal)) /* cannot happen: the message is short */
		k = snprintf(s->refusal, sizeof(s->refusal), fmt, (size_t)2, PX_HTTP_REFUSE_RETRY_S, 2, "{}");
	s->refusal_len = (size_t)k;
	if (b)
		evbuffer_free(b);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
	(void)l;
	(void)sa;
	(void)salen;
	struct px_http_server *s = arg;
	if (s->n_conns >= s->lim.max_connections) {
		refuse(s, fd);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct px_http_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	c->srv = s;
	c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->next_ev = event_new(s->base, -1, 0, next_cb, c);
	c->deadline_ev = evtimer_new(s->base, deadline_cb, c);
	if (!c->bev || !c->next_ev || !c->deadline_ev) {
		if (c->bev)
			bufferevent_free(c->bev);
		else
			evutil_closesocket(fd);
		if (c->next_ev)
			event_free(c->next_ev);
		if (c->deadline_ev)
			event_free(c->deadline_ev);
		free(c);
		return;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	set_timeouts(c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* accept() failed with something other than a retriable error: out of file
 * descriptors (EMFILE, ENFILE) or memory (ENOBUFS, ENOMEM) most likely.
 * libevent would call accept() again at once, forever, since the pending
 * connection stays readable: stop listening instead and look again after a
 * pause that doubles while it keeps failing. The kernel queues new clients
 * meanwhile (up to the backlog); they are served once descriptors are free. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct px_http_server *s = arg;
	int e = EVUTIL_SOCKET_ERROR();
	if (s->accept_failures++ == 0) {
		fprintf(stderr, "loopwarden: accept(): %s: not accepting connections for now (%" PRIu64
		                " open; proxy.max_connections %" PRIu64 "); retrying%s\n",
		        evutil_socket_error_to_string(e), s->n_conns, s->lim.max_connections,
		        e == EMFILE || e == ENFILE ? ": raise the open-file limit (ulimit -n) or lower "
		                                     "proxy.max_connections" : "");
	}
	evconnlistener_disable(l);
	uint64_t ms = s->accept_backoff_ms ? s->accept_backoff_ms : PX_HTTP_ACCEPT_BACKOFF_MIN_MS;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(s->accept_ev, &tv);
	s->accept_backoff_ms = ms * 2 < PX_HTTP_ACCEPT_BACKOFF_MAX_MS ? ms * 2 : PX_HTTP_ACCEPT_BACKOFF_MAX_MS;
	/* connections freed one by one let a few accepts through between
	 * failures: the episode ends only after a quiet period */
	struct timeval quiet = {PX_HTTP_ACCEPT_QUIET_MS / 1000, (PX_HTTP_ACCEPT_QUIET_MS % 1000) * 1000};
	evtimer_add(s->quiet_ev, &quiet);
}

/* No accept() failure for PX_HTTP_ACCEPT_QUIET_MS: the episode is over. */
static void accept_quiet_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct px_http_server *s = arg;
	fprintf(stderr, "loopwarden: accepting connections again (%" PRIu64 " accept() failures "
	                "while paused; %" PRIu64 " connections open)\n", s->accept_failures, s->n_conns);
	s->accept_failures = 0;
	s->accept_backoff_ms = PX_HTTP_ACCEPT_BACKOFF_MIN_MS;
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct px_http_server *s = arg;
	if (s->lst)
		evconnlistener_enable(s->lst);
}

struct px_http_server *px_http_server_new(struct event_base *base, const char *host,
                                          uint16_t port, const struct px_http_limits *lim,
                                          px_http_handler handler, void *ctx,
                                          char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int sslen;
	char spec[300];
	snprintf(spec, sizeof(spec), "%s:%u", host, (unsigned)port);
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sslen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sslen = sizeof(*sin6);
	} else {
		snprintf(err, errlen, "listen address '%s': not a numeric IPv4/IPv6 address", spec);
		return NULL;
	}
	struct px_http_server *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->base = base;
	s->lim = *lim;
	s->handler = handler;
	s->ctx = ctx;
	s->accept_backoff_ms = PX_HTTP_ACCEPT_BACKOFF_MIN_MS;
	build_refusal(s);
	s->accept_ev = evtimer_new(base, accept_retry_cb, s);
	s->quiet_ev = evtimer_new(base, accept_quiet_cb, s);
	if (!s->accept_ev || !s->quiet_ev) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	s->lst = evconnlistener_new_bind(base, accept_cb, s,
	                                 LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 1024,
	                                 (struct sockaddr *)&ss, sslen);
	if (!s->lst) {
		snprintf(err, errlen, "listen on %s: %s", spec, strerror(errno));
		goto fail;
	}
	evconnlistener_set_error_cb(s->lst, accept_error_cb);
	struct sockaddr_storage bound;
	socklen_t bl = sizeof(bound);
	if (getsockname(evconnlistener_get_fd(s->lst), (struct sockaddr *)&bound, &bl) == 0) {
		if (bound.ss_family == AF_INET)
			s->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
		else if (bound.ss_family == AF_INET6)
			s->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
	}
	return s;
fail:
	if (s->accept_ev)
		event_free(s->accept_ev);
	if (s->quiet_ev)
		event_free(s->quiet_ev);
	free(s);
	return NULL;
}

void px_http_server_stop_accepting(struct px_http_server *s)
{
	if (s && s->lst) {
		evconnlistener_free(s->lst);
		s->lst = NULL;
		evtimer_del(s->accept_ev);
		evtimer_del(s->quiet_ev);
	}
}

void px_http_server_free(struct px_http_server *s)
{
	if (!s)
		return;
	px_http_server_stop_accepting(s);
	while (s->conns)
		conn_close(s->conns);
	event_free(s->accept_ev);
	event_free(s->quiet_ev);
	free(s);
}

uint16_t px_http_server_port(const struct px_http_server *s)
{
	return s->port;
}

uint64_t px_http_server_connections(const struct px_http_server *s)
{
	return s->n_conns;
}

uint64_t px_http_server_body_bytes(const struct px_http_server *s)
{
	return s->body_bytes;
}
