/* HTTP/1.1 client on bufferevents (plain or OpenSSL). */
#include "proxy/upstream.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>

#include "proxy/wire/http_head.h"

#define CHUNK_LINE_MAX 1024
#define SCRATCH 16384

struct px_target {
	struct px_url url;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	SSL_CTX *ssl_ctx;
};

enum up_state { UP_CONNECTING = 0, UP_HEAD, UP_BODY, UP_DONE };
enum body_mode { BM_EOF = 0, BM_LENGTH, BM_CHUNKED };
enum chunk_state { CH_SIZE = 0, CH_DATA, CH_DATA_END, CH_TRAILER };

struct px_upstream {
	const struct px_target *t;
	struct bufferevent *bev;
	struct px_upstream_cbs cbs;
	void *ctx;
	enum up_state state;
	enum body_mode mode;
	enum chunk_state ch;
	uint64_t remaining; /* BM_LENGTH: body bytes left; CH_DATA: chunk bytes left */
	struct px_head_scan scan; /* UP_HEAD: where the response head ends */
	size_t max_head;
	bool paused;
	int in_cb;
	bool dead;
};

const char *px_up_strerror(enum px_up_error e)
{
	switch (e) {
	case PX_UP_OK: return "ok";
	case PX_UP_CONNECT: return "cannot connect to the upstream";
	case PX_UP_RESET: return "the upstream closed the connection before the response ended";
	case PX_UP_PROTOCOL: return "the upstream sent an invalid HTTP response";
	case PX_UP_TLS: return "TLS failure towards the upstream";
	default: return "unknown upstream error";
	}
}

struct px_target *px_target_new(const struct px_url *url, const char *ca_file,
                                char *err, size_t errlen)
{
	struct px_target *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->url = *url;
	struct addrinfo hints = {0}, *res = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	char port[8];
	snprintf(port, sizeof(port), "%u", (unsigned)url->port);
	int rc = getaddrinfo(url->host, port, &hints, &res);
	if (rc != 0 || !res) {
		snprintf(err, errlen, "upstream host '%s': %s", url->host, gai_strerror(rc));
		free(t);
		return NULL;
	}
	memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
	t->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	if (url->tls) {
		t->ssl_ctx = SSL_CTX_new(TLS_client_method());
		if (!t->ssl_ctx) {
			snprintf(err, errlen, "upstream TLS: cannot create a context");
			free(t);
			return NULL;
		}
		SSL_CTX_set_verify(t->ssl_ctx, SSL_VERIFY_PEER, NULL);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
		/* a close without close_notify is an EOF; the HTTP framing says
		 * whether the answer was complete */
		SSL_CTX_set_options(t->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
		if (ca_file && *ca_file) {
			if (SSL_CTX_load_verify_locations(t->ssl_ctx, ca_file, NULL) != 1) {
				snprintf(err, errlen, "upstream TLS: cannot load CA file '%s'", ca_file);
				SSL_CTX_free(t->ssl_ctx);
				free(t);
				return NULL;
			}
		} else {
			SSL_CTX_set_default_verify_paths(t->ssl_ctx);
		}
	}
	return t;
}

void px_target_free(struct px_target *t)
{
	if (!t)
		return;
	if (t->ssl_ctx)
		SSL_CTX_free(t->ssl_ctx);
	free(t);
}

const struct px_url *px_target_url(const struct px_target *t)
{
	return &t->url;
}

static void close_bev(struct px_upstream *u)
{
	if (u->bev) {
		bufferevent_free(u->bev);
		u->bev = NULL;
	}
}

void px_upstream_free(struct px_upstream *u)
{
	if (!u)
		return;
	close_bev(u);
	u->state = UP_DONE;
	if (u->in_cb) {
		u->dead = true;
		return;
	}
	free(u);
}

/* Runs <u>'s error callback once; returns false when <u> is gone. */
static bool fail(struct px_upstream *u, enum px_up_error e, const char *detail)
{
	close_bev(u);
	u->state = UP_DONE;
	u->in_cb++;
	if (u->cbs.on_error)
		u->cbs.on_error(u->ctx, e, detail);
	u->in_cb--;
	if (u->dead) {
		free(u);
		return false;
	}
	return true;
}

static bool finish(struct px_upstream *u)
{
	close_bev(u);
	u->state = UP_DONE;
	u->in_cb++;
	if (u->cbs.on_end)
		u->cbs.on_end(u->ctx);
	u->in_cb--;
	if (u->dead) {
		free(u);
		return false;
	}
	return true;
}

/* Feeds what has not been scanned yet to the head scanner; returns the
 * head's length once its end is in <in>, else 0. */
static size_t scan_head(struct px_upstream *u, struct evbuffer *in)
{
	size_t len = evbuffer_get_length(in);
	while (u->scan.pos < len && u->scan.pos <= u->max_head) {
		struct evbuffer_ptr at;
		if (evbuffer_ptr_set(in, &at, u->scan.pos, EVBUFFER_PTR_SET) != 0)
			return 0;
		struct evbuffer_iovec v[8];
		int n = evbuffer_peek(in, -1, &at, v, 8);
		if (n <= 0)
			return 0;
		for (int i = 0; i < n && i < 8; i++) {
			size_t hl = px_head_scan_feed(&u->scan, v[i].iov_base, v[i].iov_len);
			if (hl)
				return hl;
		}
	}
	return 0;
}

/* Parses the response head (proxy/wire/http_head.h: the first empty line
 * ends it, whether lines end in CRLF or LF). Returns false when <u> is gone. */
static bool read_head(struct px_upstream *u, struct evbuffer *in, bool *more)
{
	*more = false;
	size_t hl = scan_head(u, in);
	if (hl == 0) {
		if (u->scan.pos > u->max_head)
			return fail(u, PX_UP_PROTOCOL, "response head too large");
		return true;
	}
	if (hl > u->max_head)
		return fail(u, PX_UP_PROTOCOL, "response head too large");
	memset(&u->scan, 0, sizeof(u->scan));
	const char *h = (const char *)evbuffer_pullup(in, (ev_ssize_t)hl);
	if (!h)
		return fail(u, PX_UP_PROTOCOL, "out of memory");
	struct px_http_response rh;
	char err[200];
	int rc = px_http_response_parse(h, hl, &rh, err, sizeof(err));
	evbuffer_drain(in, hl);
	if (rc != 0)
		return fail(u, PX_UP_PROTOCOL, err);
	int status = rh.status;
	bool chunked = rh.chunked, have_len = rh.have_length;
	uint64_t clen = rh.content_length;
	const char *ctype = rh.content_type;
	if (status >= 100 && status < 200) /* 100 Continue and friends: skip */
		return (*more = true);
	u->state = UP_BODY;
	if (chunked) {
		u->mode = BM_CHUNKED;
		u->ch = CH_SIZE;
	} else if (have_len) {
		u->mode = BM_LENGTH;
		u->remaining = clen;
	} else {
		u->mode = BM_EOF;
	}
	u->in_cb++;
	if (u->cbs.on_head)
		u->cbs.on_head(u->ctx, status, ctype);
	u->in_cb--;
	if (u->dead) {
		free(u);
		return false;
	}
	if (u->state != UP_BODY)
		return true;
	if (u->mode == BM_LENGTH && u->remaining == 0)
		return finish(u);
	*more = true;
	return true;
}

/* Body bytes decoded from what one read brought (chunk framing removed),
 * handed to on_body at once: a read that carries several events makes one
 * call, so the caller can answer them with one write. */
struct batch {
	size_t len;
	char data[SCRATCH];
};

/* Moves up to <n> body bytes of <in> into <b>, as many as fit. */
static void gather(struct px_upstream *u, struct evbuffer *in, size_t n, struct batch *b)
{
	size_t k = n < sizeof(b->data) - b->len ? n : sizeof(b->data) - b->len;
	evbuffer_remove(in, b->data + b->len, k);
	b->len += k;
	if (u->mode != BM_EOF)
		u->remaining -= k;
}

/* Hands what <b> holds to on_body. Returns false when <u> is gone. */
static bool hand_over(struct px_upstream *u, struct batch *b)
{
	size_t n = b->len;
	b->len = 0;
	if (n == 0 || u->state != UP_BODY)
		return true;
	u->in_cb++;
	u->cbs.on_body(u->ctx, b->data, n);
	u->in_cb--;
	if (u->dead) {
		free(u);
		return false;
	}
	return true;
}

/* A chunk-size or trailer line without a heap copy: its text (NUL-terminated,
 * CRLF removed) into <line>. Returns 1, 0 when the line is not complete yet,
 * -1 when it is longer than CHUNK_LINE_MAX. */
static int chunk_line(struct evbuffer *in, char *line, size_t *len)
{
	size_t eol_len = 0;
	struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	if (eol.pos < 0)
		return evbuffer_get_length(in) > CHUNK_LINE_MAX ? -1 : 0;
	if ((size_t)eol.pos > CHUNK_LINE_MAX)
		return -1;
	evbuffer_remove(in, line, (size_t)eol.pos);
	line[eol.pos] = '\0';
	evbuffer_drain(in, eol_len);
	*len = (size_t)eol.pos;
	return 1;
}

/* Parses what has been read. Returns false when <u> is gone (a callback
 * freed it). */
static bool process(struct px_upstream *u)
{
	struct batch b;
	b.len = 0;
	bool more = true;
	while (u->bev && !u->paused && more) {
		if (b.len == sizeof(b.data)) {
			if (!hand_over(u, &b))
				return false;
			continue;
		}
		struct evbuffer *in = bufferevent_get_input(u->bev);
		size_t avail = evbuffer_get_length(in);
		more = false;
		if (u->state == UP_HEAD) {
			if (!read_head(u, in, &more))
				return false;
			continue;
		}
		if (u->state != UP_BODY || avail == 0)
			break;
		const char *bad = NULL;
		switch (u->mode) {
		case BM_EOF:
			gather(u, in, avail, &b);
			more = true;
			break;
		case BM_LENGTH:
			gather(u, in, avail < u->remaining ? avail : (size_t)u->remaining, &b);
			if (u->remaining == 0) {
				if (!hand_over(u, &b))
					return false;
				return u->state == UP_BODY ? finish(u) : true;
			}
			more = true;
			break;
		case BM_CHUNKED:
			if (u->ch == CH_SIZE || u->ch == CH_TRAILER) {
				char line[CHUNK_LINE_MAX + 1];
				size_t ll;
				int got = chunk_line(in, line, &ll);
				if (got < 0) {
					bad = "chunk size line too long";
					break;
				}
				if (got == 0)
					break;
				if (u->ch == CH_TRAILER) {
					if (ll == 0) {
						if (!hand_over(u, &b))
							return false;
						return u->state == UP_BODY ? finish(u) : true;
					}
					more = true;
					break;
				}
				uint64_t n;
				if (px_http_chunk_size(line, ll, &n) != 0) {
					bad = "bad chunk size";
					break;
				}
				if (n == 0) {
					u->ch = CH_TRAILER;
				} else {
					u->ch = CH_DATA;
					u->remaining = n;
				}
				more = true;
			} else if (u->ch == CH_DATA) {
				gather(u, in, avail < u->remaining ? avail : (size_t)u->remaining, &b);
				if (u->remaining == 0)
					u->ch = CH_DATA_END;
				more = true;
			} else { /* CH_DATA_END: the CRLF after a chunk's data */
				if (avail < 2)
					break;
				char crlf[2];
				evbuffer_remove(in, crlf, 2);
				if (crlf[0] != '\r' || crlf[1] != '\n') {
					bad = "missing CRLF after a chunk";
					break;
				}
				u->ch = CH_SIZE;
				more = true;
			}
			break;
		}
		if (bad) {
			/* what came before the error is delivered first */
			if (!hand_over(u, &b))
				return false;
			return u->state == UP_BODY ? fail(u, PX_UP_PROTOCOL, bad) : true;
		}
	}
	return hand_over(u, &b);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	(void)process(arg);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct px_upstream *u = arg;
	if (what & BEV_EVENT_CONNECTED) {
		u->state = UP_HEAD;
		bufferevent_set_timeouts(bev, NULL, NULL);
		int one = 1;
		evutil_socket_t fd = bufferevent_getfd(bev);
		if (fd >= 0)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		return;
	}
	char detail[512];
	int e = EVUTIL_SOCKET_ERROR();
	unsigned long ssl_err = u->bev && u->t->ssl_ctx ? bufferevent_get_openssl_error(u->bev) : 0;
	if (ssl_err) {
		const char *reason = ERR_reason_error_string(ssl_err);
		snprintf(detail, sizeof(detail), "%s:%u: %s", u->t->url.host, (unsigned)u->t->url.port,
		         reason ? reason : "TLS error");
		if (u->state != UP_CONNECTING) {
			/* what arrived before the failure comes first */
			if (!process(u) || u->state == UP_DONE)
				return;
		}
		fail(u, PX_UP_TLS, detail);
		return;
	}
	if (u->state == UP_CONNECTING) {
		snprintf(detail, sizeof(detail), "%s:%u: %s", u->t->url.host, (unsigned)u->t->url.port,
		         (what & BEV_EVENT_TIMEOUT) ? "connect timed out"
		         : e ? evutil_socket_error_to_string(e) : "connection failed");
		fail(u, PX_UP_CONNECT, detail);
		return;
	}
	/* Data that came with the EOF or error is read first. */
	if (!process(u) || u->state == UP_DONE)
		return;
	if (what & BEV_EVENT_EOF) {
		if (u->state == UP_BODY && u->mode == BM_EOF && !u->paused) {
			finish(u);
			return;
		}
		if (u->paused)
			return; /* the rest is delivered on resume; EOF is noticed then */
		fail(u, PX_UP_RESET, "connection closed before the response ended");
		return;
	}
	snprintf(detail, sizeof(detail), "%s", e ? evutil_socket_error_to_string(e) : "connection error");
	fail(u, PX_UP_RESET, detail);
}

struct px_upstream *px_upstream_start(struct event_base *base, const struct px_target *t,
                                      const char *method, const char *path,
                                      const char *authorization,
                                      const char *body, size_t body_len,
                                      size_t max_head_bytes, uint64_t connect_timeout_ms,
                                      const struct px_upstream_cbs *cbs, void *ctx,
                                      char *err, size_t errlen)
{
	/* Nothing we send may split our request: these come from the client
	 * (its Authorization, checked by the head parser) or the settings. */
	size_t pl = strlen(path);
	bool path_ok = pl > 0 && path[0] == '/';
	for (size_t i = 0; i < pl && path_ok; i++)
		path_ok = (unsigned char)path[i] > 0x20 && path[i] != 0x7F;
	if (!px_http_token_ok(method, strlen(method)) || !path_ok ||
	    (authorization && !px_http_value_ok(authorization, strlen(authorization)))) {
		snprintf(err, errlen, "refusing to send a request line or Authorization value with "
		                      "control characters upstream");
		return NULL;
	}
	struct px_upstream *u = calloc(1, sizeof(*u));
	if (!u) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	u->t = t;
	u->cbs = *cbs;
	u->ctx = ctx;
	u->max_head = max_head_bytes;
	if (t->ssl_ctx) {
		SSL *ssl = SSL_new(t->ssl_ctx);
		if (!ssl) {
			snprintf(err, errlen, "upstream TLS: SSL_new failed");
			free(u);
			return NULL;
		}
		struct in6_addr a6;
		struct in_addr a4;
		bool ip = inet_pton(AF_INET, t->url.host, &a4) == 1 || inet_pton(AF_INET6, t->url.host, &a6) == 1;
		if (ip) {
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), t->url.host);
		} else {
			SSL_set_tlsext_host_name(ssl, t->url.host);
			SSL_set1_host(ssl, t->url.host);
		}
		u->bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
		                                        BEV_OPT_CLOSE_ON_FREE);
		if (!u->bev)
			SSL_free(ssl);
		else /* many servers close without close_notify: the HTTP framing tells the end */
			bufferevent_openssl_set_allow_dirty_shutdown(u->bev, 1);
	} else {
		u->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!u->bev) {
		snprintf(err, errlen, "cannot create an upstream connection");
		free(u);
		return NULL;
	}
	bufferevent_setcb(u->bev, read_cb, NULL, event_cb, u);
	struct timeval tv = {(time_t)(connect_timeout_ms / 1000),
	                     (suseconds_t)(connect_timeout_ms % 1000) * 1000};
	bufferevent_set_timeouts(u->bev, NULL, &tv);
	struct evbuffer *out = bufferevent_get_output(u->bev);
	bool default_port = t->url.port == (t->url.tls ? 443 : 80);
	evbuffer_add_printf(out, "%s %s%s HTTP/1.1\r\nHost: %s", method, t->url.prefix, path, t->url.host);
	if (!default_port)
		evbuffer_add_printf(out, ":%u", (unsigned)t->url.port);
	evbuffer_add_printf(out, "\r\nUser-Agent: loopwarden\r\nConnection: close\r\n");
	if (authorization && *authorization)
		evbuffer_add_printf(out, "Authorization: %s\r\n", authorization);
	if (body)
		evbuffer_add_printf(out, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
		                    body_len);
	evbuffer_add(out, "\r\n", 2);
	if (body && body_len)
		evbuffer_add(out, body, body_len);
	bufferevent_enable(u->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(u->bev, (struct sockaddr *)&t->addr, (int)t->addrlen) != 0) {
		/* Refused at once (or no route): report from the loop, like any other failure. */
		snprintf(err, errlen, "%s:%u: %s", t->url.host, (unsigned)t->url.port, strerror(errno));
		bufferevent_free(u->bev);
		free(u);
		return NULL;
	}
	return u;
}

void px_upstream_pause(struct px_upstream *u, bool paused)
{
	if (!u || !u->bev || u->paused == paused)
		return;
	u->paused = paused;
	if (paused) {
		bufferevent_disable(u->bev, EV_READ);
	} else {
		bufferevent_enable(u->bev, EV_READ);
		(void)process(u);
	}
}
