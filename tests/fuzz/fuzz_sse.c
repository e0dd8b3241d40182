/* Fuzz target for the SSE framing (proxy/wire/sse.h). Property: feeding the
 * input whole, or cut into slices at input-chosen points, gives the same
 * events and the same status, in both modes; an event never exceeds the cap. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/wire/sse.h"

#define CAP 256

struct digest {
	uint64_t h;
	uint64_t n;
};

static void mix(struct digest *d, const void *p, size_t len)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++)
		d->h = (d->h ^ b[i]) * 0x100000001b3ull;
	d->h = (d->h ^ 0xff) * 0x100000001b3ull;
}

static int on_event(const struct px_sse_event *ev, void *ctx)
{
	struct digest *d = ctx;

	if (ev->len > CAP || ev->data[ev->len] != '\0' || strlen(ev->event) > 63 || strlen(ev->id) > 127)
		abort();
	if (ev->done != (ev->len == 6 && memcmp(ev->data, "[DONE]", 6) == 0))
		abort();
	mix(d, ev->data, ev->len);
	mix(d, ev->event, strlen(ev->event));
	mix(d, ev->id, strlen(ev->id));
	mix(d, &ev->truncated, sizeof(ev->truncated));
	d->n++;
	return 0;
}

static enum px_sse_status run(enum px_sse_mode mode, const uint8_t *data, size_t size,
                              const uint8_t *cuts, size_t ncuts, struct digest *d)
{
	struct px_sse *sse = px_sse_new(mode, CAP);
	enum px_sse_status st = PX_SSE_OK;
	char err[256];
	size_t at = 0;

	if (!sse)
		abort();
	for (size_t i = 0; st == PX_SSE_OK && at < size; i++) {
		size_t n = ncuts ? (size_t)(1 + cuts[i % ncuts] % 17) : size - at;

		if (n > size - at)
			n = size - at;
		st = px_sse_feed(sse, (const char *)data + at, n, on_event, d, err, sizeof(err));
		at += n;
	}
	if (st == PX_SSE_OK)
		st = px_sse_finish(sse, on_event, d, err, sizeof(err));
	px_sse_free(sse);
	return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int mode = 0; mode < PX_SSE_MODE_COUNT; mode++) {
		struct digest whole = { 0xcbf29ce484222325ull, 0 }, split = whole;
		enum px_sse_status a = run(mode, data, size, NULL, 0, &whole);
		enum px_sse_status b = run(mode, data, size, data, size < 8 ? size : 8, &split);

		if (a != b || whole.h != split.h || whole.n != split.n)
			abort();
	}
	return 0;
}

#include "wire_replay.h"
