/* Fuzz target for the HTTP head parser (proxy/wire/http_head.h), the code
 * every client byte meets first. Properties: the head end found is the same
 * whether the input comes whole or in input-chosen slices, and it is the
 * earliest empty line; a head the request parser accepts holds no NUL, no
 * bare CR and no control byte in what it hands on (method, target,
 * Authorization), a Content-Length only with have_length; the response
 * parser's Content-Type is a clean field value; each line's chunk size, when
 * accepted, is the value of its leading hex digits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/wire/http_head.h"

#define CHECK(c)                \
	do {                    \
		if (!(c))       \
			abort(); \
	} while (0)

static size_t scan_sliced(const uint8_t *data, size_t size, const uint8_t *cuts, size_t ncuts)
{
	struct px_head_scan sc = {0};
	size_t at = 0;
	for (size_t i = 0; at < size; i++) {
		size_t n = ncuts ? (size_t)(1 + cuts[i % ncuts] % 13) : size - at;
		if (n > size - at)
			n = size - at;
		size_t hl = px_head_scan_feed(&sc, (const char *)data + at, n);
		if (hl)
			return hl;
		at += n;
	}
	return 0;
}

/* The earliest end of a head by a plain reading of the rule: after the
 * first byte that is not CR or LF, the first LF followed by LF or CR LF. */
static size_t reference_end(const uint8_t *d, size_t n)
{
	size_t i = 0;
	while (i < n && (d[i] == '\r' || d[i] == '\n'))
		i++;
	for (; i < n; i++) {
		if (d[i] != '\n')
			continue;
		if (i + 1 < n && d[i + 1] == '\n')
			return i + 2;
		if (i + 2 < n && d[i + 1] == '\r' && d[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static void check_request(const char *h, size_t len)
{
	struct px_http_head r;
	char err[256];
	enum px_head_status st = px_http_head_parse(h, len, &r, err, sizeof(err));
	CHECK(st <= 0 && st > -PX_HEAD_STATUS_COUNT);
	CHECK(strlen(err) < sizeof(err));
	if (st != PX_HEAD_OK)
		return;
	CHECK(memchr(h, '\0', len) == NULL);
	for (size_t i = 0; i < len; i++) /* every CR is part of a CRLF */
		CHECK(h[i] != '\r' || (i + 1 < len && h[i + 1] == '\n'));
	CHECK(px_http_token_ok(r.method, strlen(r.method)));
	size_t tl = strlen(r.target);
	CHECK(tl > 0 && tl < sizeof(r.target));
	for (size_t i = 0; i < tl; i++)
		CHECK((unsigned char)r.target[i] > 0x20 && r.target[i] != 0x7f);
	CHECK(px_http_value_ok(r.authorization, strlen(r.authorization)));
	CHECK(r.minor <= 1);
	CHECK(r.have_length || r.content_length == 0);
	/* the same input parses the same way */
	struct px_http_head again;
	CHECK(px_http_head_parse(h, len, &again, err, sizeof(err)) == PX_HEAD_OK);
	CHECK(memcmp(&r, &again, sizeof(r)) == 0);
}

static void check_response(const char *h, size_t len)
{
	struct px_http_response r;
	char err[256];
	if (px_http_response_parse(h, len, &r, err, sizeof(err)) != 0)
		return;
	CHECK(r.status >= 100 && r.status <= 599);
	CHECK(px_http_value_ok(r.content_type, strlen(r.content_type)));
}

static void check_chunk_lines(const char *d, size_t n)
{
	size_t at = 0;
	while (at < n) {
		const char *lf = memchr(d + at, '\n', n - at);
		size_t ll = lf ? (size_t)(lf - (d + at)) : n - at;
		uint64_t v;
		if (px_http_chunk_size(d + at, ll, &v) == 0) {
			uint64_t w = 0;
			size_t i = 0;
			for (; i < ll; i++) {
				char c = d[at + i];
				int x = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
				        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
				if (x < 0)
					break;
				w = (w << 4) | (unsigned)x;
			}
			CHECK(i > 0 && w == v);
			CHECK(i == ll || d[at + i] == ';' || d[at + i] == ' ' || d[at + i] == '\t');
		}
		at += ll + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t whole = scan_sliced(data, size, NULL, 0);
	size_t sliced = scan_sliced(data, size, data, size < 8 ? size : 8);
	CHECK(whole == sliced);
	CHECK(whole == reference_end(data, size));
	CHECK(whole <= size);
	const char *h = (const char *)data;
	if (whole) {
		check_request(h, whole);
		check_response(h, whole);
	}
	check_request(h, size); /* anything at all, not only a delimited head */
	check_response(h, size);
	check_chunk_lines(h, size);
	return 0;
}

#include "wire_replay.h"
