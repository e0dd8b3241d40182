/* Fuzz target for the chunk converter (proxy/wire/chunk.h): the input as one
 * chunk, as a sequence of chunks (one per line, sharing per-answer state), and
 * as a non-stream body. Events must be well-formed and tool calls balanced. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/wire/chunk.h"

struct check {
	int open;   /* tool calls begun and not ended */
	int begun;
};

static int on_event(const struct gd_event *ev, void *ctx)
{
	struct check *c = ctx;

	if ((unsigned)ev->type >= GD_EV_COUNT || !ev->data || !ev->id || !ev->name)
		abort();
	if (ev->id_len >= PX_CHUNK_ID_MAX || ev->name_len >= PX_CHUNK_NAME_MAX)
		abort();
	/* Touch every byte so ASan sees an overread. */
	for (size_t i = 0; i < ev->len; i++)
		c->begun += ev->data[i] == '\x01';
	switch (ev->type) {
	case GD_EV_TOOL_BEGIN:
		c->open++;
		break;
	case GD_EV_TOOL_END:
		if (--c->open < 0)
			abort();
		break;
	default:
		break;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct px_chunk *c = px_chunk_new(4096);
	struct check chk = { 0, 0 };
	enum px_chunk_status st;
	char err[256] = "";
	size_t at = 0;

	if (!c)
		abort();
	st = px_chunk_feed(c, (const char *)data, size, on_event, &chk, err, sizeof(err));
	if (st != PX_CHUNK_OK && err[0] == '\0')
		abort(); /* every failure explains itself */
	px_chunk_reset(c);
	chk.open = 0;
	while (at < size) {
		const uint8_t *nl = memchr(data + at, '\n', size - at);
		size_t n = nl ? (size_t)(nl - (data + at)) : size - at;

		st = px_chunk_feed(c, (const char *)data + at, n, on_event, &chk, err, sizeof(err));
		at += n + (nl ? 1 : 0);
	}
	if (px_chunk_end(c, on_event, &chk) != PX_CHUNK_OK || chk.open != 0)
		abort();
	chk.open = 0;
	st = px_chunk_body(c, (const char *)data, size, on_event, &chk, err, sizeof(err));
	if (st == PX_CHUNK_OK && chk.open != 0)
		abort();
	px_chunk_free(c);
	return 0;
}

#include "wire_replay.h"
