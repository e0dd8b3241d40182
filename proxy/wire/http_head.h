/* HTTP/1.x message framing without I/O (RFC 9110, RFC 9112): finding where a
 * request head ends, parsing it strictly, and the field and chunk-size
 * checks the upstream client shares. proxy/http.c and proxy/upstream.c call
 * these; the fuzz target drives them directly. Nothing here allocates. */
#ifndef LW_PROXY_WIRE_HTTP_HEAD_H
#define LW_PROXY_WIRE_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PX_HEAD_METHOD_MAX 16   /* longest method + 1 */
#define PX_HEAD_TARGET_MAX 1024 /* longest request-target + 1 (longer: 414) */
#define PX_HEAD_AUTH_MAX 1024   /* longest Authorization value + 1 */

enum px_head_status {
	PX_HEAD_OK = 0,
	PX_HEAD_EBAD = -1,      /* malformed: 400 */
	PX_HEAD_ETARGET = -2,   /* request-target too long: 414 */
	PX_HEAD_ECHUNKED = -3,  /* a chunked request body (not supported): 411 */
	PX_HEAD_ECODING = -4,   /* a transfer coding we do not implement: 501 */
	PX_HEAD_STATUS_COUNT = 5
};
const char *px_head_strerror(enum px_head_status st);
/* The HTTP status to answer <st> with (400, 414, 411, 501; 200 for OK). */
int px_head_http_status(enum px_head_status st);

/* Where a head ends, fed incrementally. The head ends at the first empty
 * line, whatever mix of CRLF and bare LF the lines use ("\n\n", "\r\n\r\n",
 * "\n\r\n", "\r\n\n"): the earliest terminator, never a later "\r\n\r\n"
 * inside the body. Empty lines before the request-line belong to the head
 * (RFC 9112 2.2: ignored) and do not end it. Zero-initialise to start. */
struct px_head_scan {
	size_t pos;      /* bytes fed so far */
	unsigned state;
};
/* Feeds <n> more bytes of input (those following everything fed before).
 * Returns the head's length counted from the first byte ever fed, through
 * its terminating empty line, once that line has been seen in this call;
 * 0 when the head is not complete yet (then all <n> bytes were consumed). */
size_t px_head_scan_feed(struct px_head_scan *sc, const char *data, size_t n);

/* A parsed request head. */
struct px_http_head {
	char method[PX_HEAD_METHOD_MAX];
	char target[PX_HEAD_TARGET_MAX];
	unsigned minor;       /* HTTP/1.<minor>: 0 or 1 */
	bool keep_alive;      /* the version's default, then Connection */
	bool have_length;
	uint64_t content_length; /* 0 unless have_length */
	bool expect_continue;
	char authorization[PX_HEAD_AUTH_MAX]; /* "" when absent */
};

/* Parses the request head <h, len> (what px_head_scan_feed delimited: the
 * request-line, the field lines, the empty line; no NUL needed) into <out>.
 * Strict where leniency lets two parsers disagree on a message (request
 * smuggling, header injection): a NUL or a bare CR anywhere, a control byte
 * other than HTAB in a field value, a field name that is not a token or is
 * followed by whitespace, an obs-fold line, a Content-Length that is not
 * plain digits or that conflicts with another, Transfer-Encoding together
 * with Content-Length or in HTTP/1.0, a final coding other than chunked, a
 * second Authorization: all refused. Lines may end in CRLF or bare LF.
 * Returns PX_HEAD_OK, or a failure with <err> saying what and which field. */
enum px_head_status px_http_head_parse(const char *h, size_t len, struct px_http_head *out,
                                       char *err, size_t errlen);

/* A parsed response head (what the upstream client needs of it). */
struct px_http_response {
	int status;           /* 100-599 */
	bool have_length;
	uint64_t content_length;
	bool chunked;         /* the final transfer coding is chunked */
	char content_type[128]; /* "" when absent; refused when longer */
};

/* Parses the response head <h, len> (delimited by px_head_scan_feed) with
 * the same line and field rules as a request head: a NUL, a bare CR or a
 * control byte in a value is refused (nothing of it may reach a client's
 * headers), Content-Length is plain digits and never conflicting. Returns
 * 0, or -1 with <err>. */
int px_http_response_parse(const char *h, size_t len, struct px_http_response *out,
                           char *err, size_t errlen);

/* RFC 9110 5.6.2: <s, n> is a token (n >= 1, tchar only). */
bool px_http_token_ok(const char *s, size_t n);
/* RFC 9110 5.5: <s, n> may be a field value: no NUL, CR, LF or other
 * control byte except HTAB (obs-text 0x80-0xFF allowed). */
bool px_http_value_ok(const char *s, size_t n);
/* 1*DIGIT with no sign, space or overflow into *<out>. Returns 0 or -1. */
int px_http_digits(const char *s, size_t n, uint64_t *out);
/* A chunk-size line <line, n> without its CRLF (RFC 9112 7.1):
 * 1*HEXDIG [BWS ";" chunk-ext]: hex digits only (no sign, no "0x", not
 * empty, at most 16 significant digits), then nothing or whitespace and
 * extensions (which are ignored but may hold no control bytes). Returns 0
 * with the size in *<out>, or -1. */
int px_http_chunk_size(const char *line, size_t n, uint64_t *out);

#endif
