/* HTTP/1.x head framing and parsing, strict, without I/O. */
#include "proxy/wire/http_head.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *px_head_strerror(enum px_head_status st)
{
	switch (st) {
	case PX_HEAD_OK: return "ok";
	case PX_HEAD_EBAD: return "malformed request head";
	case PX_HEAD_ETARGET: return "request target too long";
	case PX_HEAD_ECHUNKED: return "chunked request bodies are not supported";
	case PX_HEAD_ECODING: return "unsupported transfer coding";
	default: return "unknown head status";
	}
}

int px_head_http_status(enum px_head_status st)
{
	switch (st) {
	case PX_HEAD_OK: return 200;
	case PX_HEAD_ETARGET: return 414;
	case PX_HEAD_ECHUNKED: return 411;
	case PX_HEAD_ECODING: return 501;
	default: return 400;
	}
}

/* ---- where the head ends ---- */

enum scan_state {
	SC_START = 0, /* nothing but CR/LF yet (empty lines before the request-line) */
	SC_LINE,      /* inside a line */
	SC_LF,        /* just after a line's LF */
	SC_LFCR,      /* after a line's LF and a CR */
};

size_t px_head_scan_feed(struct px_head_scan *sc, const char *data, size_t n)
{
	unsigned st = sc->state;
	for (size_t i = 0; i < n; i++) {
		char ch = data[i];
		switch (st) {
		case SC_START:
			if (ch != '\r' && ch != '\n')
				st = SC_LINE;
			break;
		case SC_LINE:
			if (ch == '\n')
				st = SC_LF;
			break;
		case SC_LF:
		case SC_LFCR:
			if (ch == '\n') {
				sc->state = SC_START;
				sc->pos += i + 1;
				return sc->pos;
			}
			st = ch == '\r' && st == SC_LF ? SC_LFCR : SC_LINE;
			break;
		}
	}
	sc->state = st;
	sc->pos += n;
	return 0;
}

/* ---- character classes (RFC 9110 5.6.2, 5.5) ---- */

static bool tchar(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return true;
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool px_http_token_ok(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!tchar((unsigned char)s[i]))
			return false;
	return true;
}

bool px_http_value_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7F)
			return false;
	}
	return true;
}

int px_http_digits(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int px_http_chunk_size(const char *line, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	for (; i < n; i++) {
		int d = hexval(line[i]);
		if (d < 0)
			break;
		if (v >> 60)
			return -1; /* a 17th significant digit: past 64 bits */
		v = (v << 4) | (unsigned)d;
	}
	if (i == 0)
		return -1; /* empty, a sign, whitespace first */
	if (i < n) {
		size_t j = i;
		while (j < n && (line[j] == ' ' || line[j] == '\t'))
			j++;
		/* "0x5" stops at 'x': neither the end nor an extension */
		if (j == n || line[j] != ';' || !px_http_value_ok(line + j, n - j))
			return -1;
	}
	*out = v;
	return 0;
}

/* ---- the request head ---- */

static bool name_is(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

/* Calls <fn> for each comma-separated element of the list <v, n>, trimmed
 * (empty elements skipped, RFC 9110 5.6.1). */
static void each_element(const char *v, size_t n,
                         void (*fn)(const char *e, size_t len, void *ctx), void *ctx)
{
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && v[j] != ',')
			j++;
		size_t a = i, b = j;
		while (a < b && (v[a] == ' ' || v[a] == '\t'))
			a++;
		while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
			b--;
		if (b > a)
			fn(v + a, b - a, ctx);
		i = j + 1;
	}
}

struct conn_opts {
	bool close, keep_alive;
};

static void conn_token(const char *e, size_t len, void *ctx)
{
	struct conn_opts *o = ctx;
	if (name_is(e, len, "close"))
		o->close = true;
	else if (name_is(e, len, "keep-alive"))
		o->keep_alive = true;
}

struct codings {
	size_t n;
	bool last_chunked, last_identity, all_identity;
};

static void coding(const char *e, size_t len, void *ctx)
{
	struct codings *c = ctx;
	/* a coding may carry parameters ("gzip;q=1" is not valid here, but be exact about the name) */
	size_t nl = 0;
	while (nl < len && e[nl] != ';' && e[nl] != ' ' && e[nl] != '\t')
		nl++;
	c->n++;
	c->last_chunked = name_is(e, nl, "chunked");
	c->last_identity = name_is(e, nl, "identity");
	c->all_identity = c->all_identity && c->last_identity;
}

#define FAIL(st, ...)                                    \
	do {                                             \
		snprintf(err, errlen, __VA_ARGS__);      \
		return (st);                             \
	} while (0)

/* The next line of <h, len> from <*at>: its bytes without the line end in
 * <*line, *ll>. A line ends in LF, optionally preceded by one CR; any other
 * CR is bare. Returns false at the end of the input. */
static bool next_line(const char *h, size_t len, size_t *at, const char **line, size_t *ll)
{
	if (*at >= len)
		return false;
	const char *s = h + *at;
	const char *lf = memchr(s, '\n', len - *at);
	size_t n = lf ? (size_t)(lf - s) : len - *at;
	*at += lf ? n + 1 : n;
	if (n > 0 && s[n - 1] == '\r' && lf)
		n--;
	*line = s;
	*ll = n;
	return true;
}

enum px_head_status px_http_head_parse(const char *h, size_t len, struct px_http_head *out,
                                       char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (memchr(h, '\0', len))
		FAIL(PX_HEAD_EBAD, "NUL byte in the request head");
	size_t at = 0;
	const char *line;
	size_t ll;
	/* empty lines before the request-line are ignored (RFC 9112 2.2) */
	do {
		if (!next_line(h, len, &at, &line, &ll))
			FAIL(PX_HEAD_EBAD, "empty request");
	} while (ll == 0);
	if (memchr(line, '\r', ll))
		FAIL(PX_HEAD_EBAD, "bare CR in the request line");
	/* method SP request-target SP HTTP-version, single spaces */
	const char *sp1 = memchr(line, ' ', ll);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - line)) : NULL;
	if (!sp1 || !sp2)
		FAIL(PX_HEAD_EBAD, "malformed request line");
	size_t ml = (size_t)(sp1 - line), tl = (size_t)(sp2 - sp1 - 1);
	const char *ver = sp2 + 1;
	size_t vl = ll - (size_t)(ver - line);
	if (!px_http_token_ok(line, ml))
		FAIL(PX_HEAD_EBAD, "malformed request line: bad method");
	if (ml >= sizeof(out->method))
		FAIL(PX_HEAD_EBAD, "method too long");
	if (tl == 0)
		FAIL(PX_HEAD_EBAD, "malformed request line: empty target");
	for (size_t i = 0; i < tl; i++) {
		unsigned char c = (unsigned char)sp1[1 + i];
		if (c <= 0x20 || c == 0x7F)
			FAIL(PX_HEAD_EBAD, "malformed request line: control byte or space in the target");
	}
	if (tl >= sizeof(out->target))
		FAIL(PX_HEAD_ETARGET, "request target longer than %zu bytes", sizeof(out->target) - 1);
	if (vl == 8 && memcmp(ver, "HTTP/1.1", 8) == 0)
		out->minor = 1;
	else if (vl == 8 && memcmp(ver, "HTTP/1.0", 8) == 0)
		out->minor = 0;
	else
		FAIL(PX_HEAD_EBAD, "unsupported HTTP version (HTTP/1.1 or HTTP/1.0)");
	memcpy(out->method, line, ml);
	memcpy(out->target, sp1 + 1, tl);

	struct conn_opts conn = {false, false};
	struct codings te = {0, false, false, true};
	bool have_auth = false;
	bool ended = false;
	while (next_line(h, len, &at, &line, &ll)) {
		if (ll == 0) {
			ended = true;
			break;
		}
		if (memchr(line, '\r', ll))
			FAIL(PX_HEAD_EBAD, "bare CR in a header line");
		if (line[0] == ' ' || line[0] == '\t')
			FAIL(PX_HEAD_EBAD, "folded header line (obs-fold)");
		const char *colon = memchr(line, ':', ll);
		if (!colon)
			FAIL(PX_HEAD_EBAD, "malformed header line (no colon)");
		size_t nl = (size_t)(colon - line);
		if (!px_http_token_ok(line, nl))
			FAIL(PX_HEAD_EBAD, "malformed header name");
		const char *v = colon + 1;
		size_t vn = ll - nl - 1;
		while (vn && (*v == ' ' || *v == '\t'))
			v++, vn--;
		while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
			vn--;
		if (!px_http_value_ok(v, vn))
			FAIL(PX_HEAD_EBAD, "control character in the value of header '%.*s'",
			     (int)(nl > 64 ? 64 : nl), line);
		if (name_is(line, nl, "Content-Length")) {
			uint64_t n;
			if (px_http_digits(v, vn, &n) != 0)
				FAIL(PX_HEAD_EBAD, "bad Content-Length");
			if (out->have_length && n != out->content_length)
				FAIL(PX_HEAD_EBAD, "conflicting Content-Length headers");
			out->have_length = true;
			out->content_length = n;
		} else if (name_is(line, nl, "Transfer-Encoding")) {
			size_t before = te.n;
			each_element(v, vn, coding, &te);
			if (te.n == before)
				FAIL(PX_HEAD_EBAD, "empty Transfer-Encoding");
		} else if (name_is(line, nl, "Connection")) {
			each_element(v, vn, conn_token, &conn);
		} else if (name_is(line, nl, "Authorization")) {
			if (have_auth)
				FAIL(PX_HEAD_EBAD, "more than one Authorization header");
			if (vn >= sizeof(out->authorization))
				FAIL(PX_HEAD_EBAD, "Authorization header too long");
			have_auth = true;
			memcpy(out->authorization, v, vn);
			out->authorization[vn] = '\0';
		} else if (name_is(line, nl, "Expect")) {
			if (name_is(v, vn, "100-continue"))
				out->expect_continue = true;
		}
	}
	if (!ended)
		FAIL(PX_HEAD_EBAD, "request head without its empty line");
	if (at != len)
		FAIL(PX_HEAD_EBAD, "bytes after the request head's empty line");
	/* Transfer-Encoding: "identity" alone is the absence of a coding
	 * (RFC 2616 clients); anything else decides the framing itself, so it
	 * must be alone, in HTTP/1.1, and end in chunked (RFC 9112 6.1, 6.3). */
	if (te.n > 0 && !te.all_identity) {
		if (out->minor == 0)
			FAIL(PX_HEAD_EBAD, "Transfer-Encoding in an HTTP/1.0 request");
		if (out->have_length)
			FAIL(PX_HEAD_EBAD, "both Transfer-Encoding and Content-Length");
		if (!te.last_chunked)
			FAIL(PX_HEAD_ECODING, "unsupported Transfer-Encoding (the final coding must be chunked)");
		FAIL(PX_HEAD_ECHUNKED, "chunked request bodies are not supported: send Content-Length");
	}
	out->keep_alive = conn.close ? false : out->minor == 1 ? true : conn.keep_alive;
	return PX_HEAD_OK;
}

/* ---- the response head ---- */

int px_http_response_parse(const char *h, size_t len, struct px_http_response *out,
                           char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (memchr(h, '\0', len))
		FAIL(-1, "NUL byte in the response head");
	size_t at = 0;
	const char *line;
	size_t ll;
	do {
		if (!next_line(h, len, &at, &line, &ll))
			FAIL(-1, "empty response");
	} while (ll == 0);
	/* HTTP/1.x SP 3DIGIT [SP reason-phrase] */
	if (memchr(line, '\r', ll))
		FAIL(-1, "bare CR in the status line");
	if (ll < 12 || memcmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
	    line[8] != ' ' || (ll > 12 && line[12] != ' '))
		FAIL(-1, "not an HTTP/1.x status line");
	uint64_t status;
	if (px_http_digits(line + 9, 3, &status) != 0 || status < 100 || status > 599)
		FAIL(-1, "bad status code");
	out->status = (int)status;
	struct codings te = {0, false, false, true};
	bool ended = false;
	while (next_line(h, len, &at, &line, &ll)) {
		if (ll == 0) {
			ended = true;
			break;
		}
		if (memchr(line, '\r', ll))
			FAIL(-1, "bare CR in a header line");
		if (line[0] == ' ' || line[0] == '\t')
			FAIL(-1, "folded header line (obs-fold)");
		const char *colon = memchr(line, ':', ll);
		if (!colon || !px_http_token_ok(line, (size_t)(colon - line)))
			FAIL(-1, "malformed header line");
		size_t nl = (size_t)(colon - line);
		const char *v = colon + 1;
		size_t vn = ll - nl - 1;
		while (vn && (*v == ' ' || *v == '\t'))
			v++, vn--;
		while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
			vn--;
		if (!px_http_value_ok(v, vn))
			FAIL(-1, "control character in the value of header '%.*s'", (int)(nl > 64 ? 64 : nl), line);
		if (name_is(line, nl, "Content-Length")) {
			uint64_t n;
			if (px_http_digits(v, vn, &n) != 0)
				FAIL(-1, "bad Content-Length");
			if (out->have_length && n != out->content_length)
				FAIL(-1, "conflicting Content-Length headers");
			out->have_length = true;
			out->content_length = n;
		} else if (name_is(line, nl, "Transfer-Encoding")) {
			each_element(v, vn, coding, &te);
		} else if (name_is(line, nl, "Content-Type")) {
			if (vn >= sizeof(out->content_type))
				FAIL(-1, "Content-Type longer than %zu bytes", sizeof(out->content_type) - 1);
			memcpy(out->content_type, v, vn);
			out->content_type[vn] = '\0';
		}
	}
	if (!ended)
		FAIL(-1, "response head without its empty line");
	if (at != len)
		FAIL(-1, "bytes after the response head's empty line");
	/* RFC 9112 6.3: chunked last decides the framing (Content-Length is
	 * then ignored); another final coding reads to the close */
	out->chunked = te.n > 0 && te.last_chunked;
	if (te.n > 0 && !te.all_identity)
		out->have_length = false;
	return 0;
}
