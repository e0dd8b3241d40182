/* HTTP/1.1 server connections on bufferevents. */
#include "proxy/http.h"

#include <ctype.h>
#include <errno.h>
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

enum conn_state { CS_HEAD = 0, CS_BODY, CS_HANDLING, CS_CLOSING };

struct px_http_conn {
	struct px_http_server *srv;
	struct bufferevent *bev;
	struct event *next_ev; /* parses pipelined input on the next loop turn */
	enum conn_state state;
	struct px_http_req req;
	char *body;
	size_t body_want;
	bool chunked_reply;
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
	struct px_http_conn *conns;
};

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

static void conn_free(struct px_http_conn *c)
{
	struct px_http_server *s = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	bufferevent_free(c->bev);
	event_free(c->next_ev);
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

/* The response is out: shut our side and discard what the client still
 * sends (a refused body), so that closing does not reset the connection
 * before the client has read the answer. Bounded by a short read timeout. */
static void linger_close(struct px_http_conn *c)
{
	if (c->lingering)
		return;
	c->lingering = true;
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	if (fd >= 0)
		shutdown(fd, SHUT_WR);
	struct timeval tv = {2, 0};
	bufferevent_set_timeouts(c->bev, &tv, NULL);
	bufferevent_enable(c->bev, EV_READ);
	evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
}

static void set_idle_timeout(struct px_http_conn *c, bool on)
{
	if (on) {
		struct timeval tv = {(time_t)(c->srv->lim.idle_timeout_ms / 1000),
		                     (suseconds_t)(c->srv->lim.idle_timeout_ms % 1000) * 1000};
		bufferevent_set_timeouts(c->bev, &tv, NULL);
	} else {
		bufferevent_set_timeouts(c->bev, NULL, NULL);
	}
}

/* A response is complete: keep the connection for the next request, or
 * close it once the output is flushed. */
static void request_done(struct px_http_conn *c)
{
	free(c->body);
	c->body = NULL;
	c->on_close = NULL;
	c->on_drain = NULL;
	c->chunked_reply = false;
	if (c->close_after || !c->req.keep_alive) {
		c->state = CS_CLOSING;
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
			/* freed from the write callback path would be nicer, but
			 * nothing is pending: defer to the next turn. */
			event_active(c->next_ev, EV_TIMEOUT, 0);
		}
		return;
	}
	memset(&c->req, 0, sizeof(c->req));
	c->state = CS_HEAD;
	set_idle_timeout(c, true);
	bufferevent_enable(c->bev, EV_READ);
	event_active(c->next_ev, EV_TIMEOUT, 0);
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
	if (len)
		evbuffer_add(bufferevent_get_output(c->bev), body, len);
	request_done(c);
}

static size_t send_now(struct px_http_conn *c, struct iovec *iov, int n);

void px_http_stream_start(struct px_http_conn *c, int status, const char *content_type)
{
	const char *framing = (c->close_after || !c->req.keep_alive)
	                          ? "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n"
	                          : "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n";
	c->chunked_reply = true;
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
	if (evbuffer_get_length(buf) > 0)
		write_buf(c, buf, "\r\n", 2);
}

void px_http_stream_finish(struct px_http_conn *c, struct evbuffer *buf)
{
	if (evbuffer_get_length(buf) == 0) {
		px_http_stream_end(c);
		return;
	}
	write_buf(c, buf, "\r\n0\r\n\r\n", 7);
	request_done(c);
}

void px_http_stream_end(struct px_http_conn *c)
{
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
	c->on_close = on_close;
	c->on_drain = on_drain;
	c->watch_ctx = ctx;
}

void px_http_conn_abort(struct px_http_conn *c)
{
	/* A reset, not a FIN behind the unsent bytes: nobody will read them,
	 * and an orphaned socket would keep up to its send buffer (MiBs) for
	 * a peer that does not read. */
	struct linger lg = {1, 0};
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	c->on_close = NULL;
	c->on_drain = NULL;
	conn_free(c);
}

/* Errors found while reading a request: answer and close. */
static void fail_request(struct px_http_conn *c, int status, const char *msg)
{
	char body[512];
	int n = snprintf(body, sizeof(body),
	                 "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\",\"code\":%d}}",
	                 msg, status);
	c->close_after = true;
	c->state = CS_HANDLING;
	px_http_reply(c, status, "application/json", body, (size_t)n, NULL);
}

static bool header_is(const char *line, size_t nlen, const char *name)
{
	return strlen(name) == nlen && strncasecmp(line, name, nlen) == 0;
}

/* Parses the head in <h> (NUL-terminated, CRLF or LF lines). Returns 0 or
 * an HTTP status to fail with, <msg> saying why. */
static int parse_head(struct px_http_conn *c, char *h, const char **msg)
{
	struct px_http_req *r = &c->req;
	char *line = h;
	char *eol = strchr(line, '\n');
	if (!eol)
		return (*msg = "malformed request line", 400);
	*eol = '\0';
	if (eol > line && eol[-1] == '\r')
		eol[-1] = '\0';
	char *sp1 = strchr(line, ' ');
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2)
		return (*msg = "malformed request line", 400);
	size_t ml = (size_t)(sp1 - line), pl = (size_t)(sp2 - sp1 - 1);
	if (ml == 0 || ml >= sizeof(r->method) || pl == 0 || pl >= sizeof(r->path))
		return (*msg = "request line too long", 400);
	memcpy(r->method, line, ml);
	memcpy(r->path, sp1 + 1, pl);
	bool http10;
	if (strcmp(sp2 + 1, "HTTP/1.1") == 0)
		http10 = false;
	else if (strcmp(sp2 + 1, "HTTP/1.0") == 0)
		http10 = true;
	else
		return (*msg = "unsupported HTTP version", 400);
	r->keep_alive = !http10;
	bool have_len = false, chunked = false, expect_continue = false;
	uint64_t clen = 0;
	for (line = eol + 1; *line; line = eol + 1) {
		eol = strchr(line, '\n');
		if (!eol)
			break;
		*eol = '\0';
		if (eol > line && eol[-1] == '\r')
			eol[-1] = '\0';
		if (*line == '\0')
			break;
		char *colon = strchr(line, ':');
		if (!colon)
			return (*msg = "malformed header line", 400);
		size_t nlen = (size_t)(colon - line);
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		size_t vl = strlen(v);
		while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			v[--vl] = '\0';
		if (header_is(line, nlen, "Content-Length")) {
			char *end;
			errno = 0;
			unsigned long long n = strtoull(v, &end, 10);
			if (errno || *end || !isdigit((unsigned char)*v))
				return (*msg = "bad Content-Length", 400);
			if (have_len && n != clen)
				return (*msg = "conflicting Content-Length headers", 400);
			have_len = true;
			clen = n;
		} else if (header_is(line, nlen, "Transfer-Encoding")) {
			if (strcasecmp(v, "identity") != 0)
				chunked = true;
		} else if (header_is(line, nlen, "Connection")) {
			if (strcasestr(v, "close"))
				r->keep_alive = false;
			else if (strcasestr(v, "keep-alive"))
				r->keep_alive = true;
		} else if (header_is(line, nlen, "Authorization")) {
			if (vl >= sizeof(r->authorization))
				return (*msg = "Authorization header too long", 400);
			memcpy(r->authorization, v, vl + 1);
		} else if (header_is(line, nlen, "Expect")) {
			if (strcasecmp(v, "100-continue") == 0)
				expect_continue = true;
		}
	}
	if (chunked)
		return (*msg = "chunked request bodies are not supported: send Content-Length", 411);
	if (clen > c->srv->lim.max_body_bytes)
		return (*msg = "request body exceeds proxy.max_body_bytes", 400);
	c->body_want = (size_t)clen;
	if (expect_continue && clen > 0)
		evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
	return 0;
}

static void dispatch(struct px_http_conn *c)
{
	c->req.body = c->body ? c->body : "";
	c->req.body_len = c->body_want;
	c->req.id = ++c->srv->next_id;
	c->state = CS_HANDLING;
	set_idle_timeout(c, false);
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
		size_t len = evbuffer_get_length(in);
		if (len == 0)
			return;
		struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		size_t hl;
		if (p.pos >= 0) {
			hl = (size_t)p.pos + 4;
		} else {
			p = evbuffer_search(in, "\n\n", 2, NULL);
			if (p.pos < 0) {
				if (len > c->srv->lim.max_header_bytes)
					fail_request(c, 431, "request head exceeds proxy.max_header_bytes");
				return;
			}
			hl = (size_t)p.pos + 2;
		}
		if (hl > c->srv->lim.max_header_bytes) {
			fail_request(c, 431, "request head exceeds proxy.max_header_bytes");
			return;
		}
		char *head = malloc(hl + 1);
		if (!head) {
			fail_request(c, 500, "out of memory");
			return;
		}
		evbuffer_remove(in, head, hl);
		head[hl] = '\0';
		memset(&c->req, 0, sizeof(c->req));
		const char *msg = NULL;
		int st = parse_head(c, head, &msg);
		free(head);
		if (st) {
			fail_request(c, st, msg);
			return;
		}
		c->body = NULL;
		if (c->body_want) {
			c->body = malloc(c->body_want + 1);
			if (!c->body) {
				fail_request(c, 500, "out of memory");
				return;
			}
		}
		c->state = CS_BODY;
	}
	if (c->state == CS_BODY) {
		if (evbuffer_get_length(in) < c->body_want)
			return;
		if (c->body_want) {
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

static void write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct px_http_conn *c = arg;
	if (c->state == CS_CLOSING) {
		linger_close(c);
		return;
	}
	if (c->state == CS_HANDLING && c->on_drain)
		c->on_drain(c, c->watch_ctx);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what; /* EOF, error or idle timeout: the connection is over */
	conn_close(arg);
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

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
	(void)l;
	(void)sa;
	(void)salen;
	struct px_http_server *s = arg;
	if (s->n_conns >= s->lim.max_connections) {
		evutil_closesocket(fd);
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
	if (!c->bev || !c->next_ev) {
		if (c->bev)
			bufferevent_free(c->bev);
		else
			evutil_closesocket(fd);
		if (c->next_ev)
			event_free(c->next_ev);
		free(c);
		return;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	set_idle_timeout(c, true);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
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
	s->lst = evconnlistener_new_bind(base, accept_cb, s,
	                                 LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 1024,
	                                 (struct sockaddr *)&ss, sslen);
	if (!s->lst) {
		snprintf(err, errlen, "listen on %s: %s", spec, strerror(errno));
		free(s);
		return NULL;
	}
	struct sockaddr_storage bound;
	socklen_t bl = sizeof(bound);
	if (getsockname(evconnlistener_get_fd(s->lst), (struct sockaddr *)&bound, &bl) == 0) {
		if (bound.ss_family == AF_INET)
			s->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
		else if (bound.ss_family == AF_INET6)
			s->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
	}
	return s;
}

void px_http_server_stop_accepting(struct px_http_server *s)
{
	if (s && s->lst) {
		evconnlistener_free(s->lst);
		s->lst = NULL;
	}
}

void px_http_server_free(struct px_http_server *s)
{
	if (!s)
		return;
	px_http_server_stop_accepting(s);
	while (s->conns)
		conn_close(s->conns);
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
