/* Fuzz target for the whole request path, body in -> response out (issue 11:
 * "a fuzz target must drive the whole request path"): an in-process
 * loopwarden server (px_server: HTTP, request reader, history check, guard
 * pipeline, upstream client, SSE and chunk parsers, output) whose upstream is
 * the scripted upstream (tests/upstream) in the same event loop, both on
 * loopback. Each input is POSTed as a chat-completions body on a new
 * connection and the loop runs until the response has ended. Nothing may
 * crash, leak or hang (a response must end within HANG_MS of loop time);
 * the response is well-formed HTTP with a status we send; an error is an
 * OpenAI error object; a stream ends with [DONE]; everything is UTF-8. Seeds
 * name the scripted scenarios in "model" (tests/integration/data), so
 * mutations reach healthy streams, loops, tool calls and history trips. */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "guards/utf8.h"
#include "harness.h"
#include "proxy/options.h"
#include "proxy/server.h"
#include "scripted.h"

#define HANG_MS 20000 /* a response not ended by then is a hang: abort */
#define RESPONSE_MAX (64u << 20)

static struct {
	struct event_base *base;
	struct up_server *up;
	struct px_server *px;
	uint16_t port;
} F;

static void fz_init(void)
{
	struct px_options o;
	struct gd_config g;
	char err[256], url[64];

	if (F.base)
		return;
	signal(SIGPIPE, SIG_IGN);
	F.base = event_base_new();
	if (!F.base)
		abort();
	F.up = up_server_new(F.base, 0, err, sizeof(err));
	if (!F.up || up_server_load(F.up, LW_SOURCE_DIR "/tests/integration/data", err, sizeof(err)) < 0 ||
	    up_server_set_default(F.up, "px-healthy-text") != 0) {
		fprintf(stderr, "fuzz_chat: scripted upstream: %s\n", err);
		abort();
	}
	px_options_defaults(&o, &g);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)up_server_port(F.up));
	if (px_options_set(&o, &g, "proxy.upstream", url, err, sizeof(err)) != 0 ||
	    px_options_set(&o, &g, "proxy.listen", "127.0.0.1:0", err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_chat: options: %s\n", err);
		abort();
	}
	o.quiet = true;
	F.px = px_server_new(F.base, &o, &g, err, sizeof(err));
	if (!F.px) {
		fprintf(stderr, "fuzz_chat: px_server_new: %s\n", err);
		abort();
	}
	F.port = px_server_port(F.px);
}

#ifndef LW_LIBFUZZER
/* Replay mode exits through main(): free everything so LeakSanitizer sees
 * only what an iteration left behind. */
__attribute__((destructor))
static void fz_fini(void)
{
	if (!F.base)
		return;
	px_server_free(F.px);
	up_server_free(F.up);
	event_base_free(F.base);
}
#endif

struct client {
	struct evbuffer *in;
	bool done;
	bool hang;
};

static void on_read(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	struct evbuffer *src = bufferevent_get_input(bev);

	evbuffer_add_buffer(c->in, src);
	if (evbuffer_get_length(c->in) > RESPONSE_MAX)
		abort(); /* no answer of the scripted upstream is this large */
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		on_read(bev, arg);
		c->done = true;
		event_base_loopbreak(F.base);
	}
}

static void on_hang(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)fd;
	(void)what;
	c->hang = true;
	event_base_loopbreak(F.base);
}

static bool has_status(int st)
{
	static const int known[] = { 200, 400, 401, 404, 405, 411, 413, 431, 500, 501, 502, 503 };

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (st == known[i])
			return true;
	return false;
}

static void check_response(const char *raw, size_t len)
{
	struct hs_resp r;

	memset(&r, 0, sizeof(r));
	if (hs_parse_response(raw, len, &r) != 0 || !r.complete || !has_status(r.status)) {
		fprintf(stderr, "fuzz_chat: bad response (%zu bytes): %.300s\n", len, raw);
		abort();
	}
	if (!gd_utf8_valid(r.body, r.body_len)) {
		fprintf(stderr, "fuzz_chat: response body is not UTF-8: %.300s\n", r.body);
		abort();
	}
	if (r.status != 200 && !strstr(r.body, "\"error\"")) {
		fprintf(stderr, "fuzz_chat: %d without an error object: %.300s\n", r.status, r.body);
		abort();
	}
	if (getenv("LW_FUZZ_CHAT_VERBOSE")) /* what each input got, for seed writers */
		fprintf(stderr, "fuzz_chat: %d, %zu body bytes: %.160s\n", r.status, r.body_len,
		        r.status == 200 ? r.body + (r.body_len > 160 ? r.body_len - 160 : 0) : r.body);
	if (r.status == 200 && strstr(r.head, "text/event-stream")) {
		size_t n = 0;
		char **d = hs_sse_data(r.body, &n, NULL);

		if (n == 0 || strcmp(d[n - 1], "[DONE]") != 0) {
			fprintf(stderr, "fuzz_chat: a stream without [DONE]: %.300s\n", r.body);
			abort();
		}
		hs_sse_free(d, n);
	}
	hs_resp_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct client c = { NULL, false, false };
	struct bufferevent *bev;
	struct event *hang;
	struct timeval tv = { HANG_MS / 1000, 0 };
	char head[256];
	struct sockaddr_in sin;
	int n;

	fz_init();
	/* Its records are bounded; the fuzzer sends far more requests. */
	up_server_reset_records(F.up);
	c.in = evbuffer_new();
	bev = bufferevent_socket_new(F.base, -1, BEV_OPT_CLOSE_ON_FREE);
	hang = evtimer_new(F.base, on_hang, &c);
	if (!c.in || !bev || !hang)
		abort();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(F.port);
	sin.sin_addr.s_addr = htonl(0x7f000001);
	bufferevent_setcb(bev, on_read, NULL, on_event, &c);
	if (bufferevent_socket_connect(bev, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		abort();
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	n = snprintf(head, sizeof(head),
	             "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
	             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", size);
	bufferevent_write(bev, head, (size_t)n);
	bufferevent_write(bev, data, size);
	event_add(hang, &tv);
	while (!c.done && !c.hang)
		event_base_loop(F.base, EVLOOP_ONCE);
	if (c.hang) {
		fprintf(stderr, "fuzz_chat: no end of the response within %d ms\n", HANG_MS);
		abort();
	}
	{
		size_t len = evbuffer_get_length(c.in);
		char *raw = malloc(len + 1);

		if (!raw)
			abort();
		evbuffer_remove(c.in, raw, len);
		raw[len] = '\0';
		check_response(raw, len);
		free(raw);
	}
	event_free(hang);
	bufferevent_free(bev);
	evbuffer_free(c.in);
	/* Let the server finish its side (upstream close, frees) before the
	 * next input. */
	event_base_loop(F.base, EVLOOP_NONBLOCK);
	return 0;
}

#include "wire_replay.h"
