/* The proxy's key table: names, defaults and caps in one place. */
#include "proxy/options.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum key_type { KEY_U64 = 0, KEY_BOOL, KEY_STRING, KEY_LISTEN, KEY_URL, KEY_HISTORY };

struct key_def {
	const char *name;
	enum key_type type;
	size_t off;      /* offset into struct px_options */
	uint64_t def;    /* default for KEY_U64 / KEY_BOOL */
	uint64_t min, max;
	const char *help;
};

#define OFF(f) offsetof(struct px_options, f)
#define KIB 1024ull
#define MIB (1024ull * 1024ull)

static const struct key_def keys[] = {
	{"proxy.listen", KEY_LISTEN, 0, 0, 0, 0, "ADDR:PORT to listen on (default 127.0.0.1:8080)"},
	{"proxy.upstream", KEY_URL, 0, 0, 0, 0, "base URL of the OpenAI-compatible upstream"},
	{"proxy.upstream_key", KEY_STRING, OFF(upstream_key), 0, 0, PX_KEY_MAX,
	 "API key sent upstream as a Bearer token (empty: relay the client's Authorization)"},
	{"proxy.upstream_ca_file", KEY_STRING, OFF(upstream_ca_file), 0, 0, PX_PATH_MAX,
	 "PEM file of CAs trusted for an https upstream (empty: the system store)"},
	{"proxy.record_dir", KEY_STRING, OFF(record_dir), 0, 0, PX_PATH_MAX,
	 "write request.json + stream.sse per request under this folder"},
	{"proxy.history_action", KEY_HISTORY, 0, 0, 0, 0,
	 "when the history already proves a loop: message | trip | off"},
	{"proxy.max_body_bytes", KEY_U64, OFF(max_body_bytes), 8 * MIB, 1 * KIB, 512 * MIB,
	 "largest request body accepted"},
	{"proxy.max_header_bytes", KEY_U64, OFF(max_header_bytes), 32 * KIB, 1 * KIB, 1 * MIB,
	 "largest request or response head"},
	{"proxy.max_event_bytes", KEY_U64, OFF(max_event_bytes), 4 * MIB, 1 * KIB, 256 * MIB,
	 "largest SSE event read from the upstream"},
	{"proxy.max_response_bytes", KEY_U64, OFF(max_response_bytes), 64 * MIB, 1 * KIB, 1024 * MIB,
	 "largest non-streaming upstream answer"},
	{"proxy.max_held_bytes", KEY_U64, OFF(max_held_bytes), 16 * MIB, 1 * KIB, 1024 * MIB,
	 "most bytes of tool-call chunks held back while a call is incomplete"},
	{"proxy.client_highwater_bytes", KEY_U64, OFF(client_highwater_bytes), 256 * KIB, 1 * KIB, 256 * MIB,
	 "stop reading the upstream while this much waits for a slow client"},
	{"proxy.keepalive_ms", KEY_U64, OFF(keepalive_ms), 5000, 10, 3600000,
	 "SSE keep-alive comment interval while waiting for the first token"},
	{"proxy.connect_timeout_ms", KEY_U64, OFF(connect_timeout_ms), 10000, 10, 3600000,
	 "upstream connect timeout"},
	{"proxy.max_streams", KEY_U64, OFF(max_streams), 4096, 1, 1000000,
	 "concurrent upstream requests; more get 503"},
	{"proxy.max_connections", KEY_U64, OFF(max_connections), 8192, 1, 1000000,
	 "concurrent client connections; more are closed at accept"},
	{"proxy.client_idle_timeout_ms", KEY_U64, OFF(client_idle_timeout_ms), 120000, 10, 86400000,
	 "close an idle keep-alive client connection after this long"},
	{"proxy.quiet", KEY_BOOL, OFF(quiet), 0, 0, 1, "no per-request log lines"},
	/* streaming runtime (chat.c) */
	{"proxy.client_write_timeout_ms", KEY_U64, OFF(client_write_timeout_ms), 60000, 10, 86400000,
	 "a client whose answer is paused (backlog past client_highwater_bytes) and that takes no "
	 "byte for this long is treated as gone: upstream and client connections closed"},
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

void px_options_defaults(struct px_options *o, struct gd_config *gcfg)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->listen_host, sizeof(o->listen_host), "127.0.0.1");
	o->listen_port = 8080;
	o->history_action = PX_HISTORY_MESSAGE;
	for (size_t i = 0; i < N_KEYS; i++) {
		if (keys[i].type == KEY_U64)
			*(uint64_t *)((char *)o + keys[i].off) = keys[i].def;
		else if (keys[i].type == KEY_BOOL)
			*(bool *)((char *)o + keys[i].off) = keys[i].def != 0;
	}
	if (gcfg)
		gd_config_defaults(gcfg);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int px_url_parse(struct px_url *u, const char *text, char *err, size_t errlen)
{
	memset(u, 0, sizeof(*u));
	const char *p = text;
	if (strncmp(p, "http://", 7) == 0) {
		p += 7;
		u->port = 80;
	} else if (strncmp(p, "https://", 8) == 0) {
		p += 8;
		u->tls = true;
		u->port = 443;
	} else {
		snprintf(err, errlen, "upstream URL '%s': must start with http:// or https://", text);
		return -1;
	}
	const char *hend;
	const char *hstart = p;
	if (*p == '[') {
		hend = strchr(p, ']');
		if (!hend) {
			snprintf(err, errlen, "upstream URL '%s': unterminated [IPv6] host", text);
			return -1;
		}
		hstart = p + 1;
		p = hend + 1;
	} else {
		hend = p + strcspn(p, ":/");
		p = hend;
	}
	size_t hl = (size_t)(hend - hstart);
	if (hl == 0 || hl >= sizeof(u->host)) {
		snprintf(err, errlen, "upstream URL '%s': bad host", text);
		return -1;
	}
	memcpy(u->host, hstart, hl);
	u->host[hl] = '\0';
	if (*p == ':') {
		char num[8];
		size_t nl = strcspn(p + 1, "/");
		uint64_t port;
		if (nl == 0 || nl >= sizeof(num)) {
			snprintf(err, errlen, "upstream URL '%s': bad port", text);
			return -1;
		}
		memcpy(num, p + 1, nl);
		num[nl] = '\0';
		if (parse_u64(num, &port) || port == 0 || port > 65535) {
			snprintf(err, errlen, "upstream URL '%s': bad port '%s'", text, num);
			return -1;
		}
		u->port = (uint16_t)port;
		p += 1 + nl;
	}
	if (*p && *p != '/') {
		snprintf(err, errlen, "upstream URL '%s': unexpected '%c' after the host", text, *p);
		return -1;
	}
	size_t pl = strlen(p);
	while (pl > 0 && p[pl - 1] == '/')
		pl--;
	if (pl >= sizeof(u->prefix)) {
		snprintf(err, errlen, "upstream URL '%s': path too long", text);
		return -1;
	}
	memcpy(u->prefix, p, pl);
	u->prefix[pl] = '\0';
	/* "http://h:8081/v1" and "http://h:8081" name the same API: keep the
	 * prefix without /v1 so every endpoint is prefix + "/v1/…". */
	if (pl >= 3 && strcmp(u->prefix + pl - 3, "/v1") == 0)
		u->prefix[pl - 3] = '\0';
	return 0;
}

int px_listen_parse(char *host, size_t hostlen, uint16_t *port, const char *text,
                    char *err, size_t errlen)
{
	const char *colon = strrchr(text, ':');
	if (!colon) {
		snprintf(err, errlen, "listen address '%s': expected ADDR:PORT", text);
		return -1;
	}
	const char *h = text;
	size_t hl = (size_t)(colon - text);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0) {
		h = "127.0.0.1";
		hl = strlen(h);
	}
	if (hl >= hostlen) {
		snprintf(err, errlen, "listen address '%s': host too long", text);
		return -1;
	}
	uint64_t p;
	if (parse_u64(colon + 1, &p) || p > 65535) {
		snprintf(err, errlen, "listen address '%s': bad port '%s'", text, colon + 1);
		return -1;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}

int px_options_set(struct px_options *o, struct gd_config *gcfg,
                   const char *key, const char *value, char *err, size_t errlen)
{
	if (strncmp(key, "proxy.", 6) != 0) {
		if (!gcfg) {
			snprintf(err, errlen, "key '%s': unknown", key);
			return -1;
		}
		return gd_config_set(gcfg, key, value, err, errlen);
	}
	const struct key_def *k = NULL;
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].name, key) == 0)
			k = &keys[i];
	if (!k) {
		snprintf(err, errlen, "key '%s': unknown proxy key (see --help)", key);
		return -1;
	}
	uint64_t v;
	switch (k->type) {
	case KEY_U64:
		if (parse_u64(value, &v) || v < k->min || v > k->max) {
			snprintf(err, errlen, "key '%s': '%s' is not an integer in [%" PRIu64 ", %" PRIu64 "]",
			         key, value, k->min, k->max);
			return -1;
		}
		*(uint64_t *)((char *)o + k->off) = v;
		return 0;
	case KEY_BOOL:
		if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcmp(value, "yes") == 0)
			*(bool *)((char *)o + k->off) = true;
		else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0 || strcmp(value, "no") == 0)
			*(bool *)((char *)o + k->off) = false;
		else {
			snprintf(err, errlen, "key '%s': '%s' is not true/false", key, value);
			return -1;
		}
		return 0;
	case KEY_STRING:
		if (strlen(value) >= k->max) {
			snprintf(err, errlen, "key '%s': value longer than %" PRIu64 " bytes", key, k->max - 1);
			return -1;
		}
		snprintf((char *)o + k->off, k->max, "%s", value);
		return 0;
	case KEY_LISTEN:
		return px_listen_parse(o->listen_host, sizeof(o->listen_host), &o->listen_port,
		                       value, err, errlen);
	case KEY_URL:
		if (px_url_parse(&o->upstream, value, err, errlen))
			return -1;
		o->have_upstream = true;
		return 0;
	case KEY_HISTORY:
		if (strcmp(value, "message") == 0)
			o->history_action = PX_HISTORY_MESSAGE;
		else if (strcmp(value, "trip") == 0)
			o->history_action = PX_HISTORY_TRIP;
		else if (strcmp(value, "off") == 0)
			o->history_action = PX_HISTORY_OFF;
		else {
			snprintf(err, errlen, "key '%s': '%s' is not message, trip or off", key, value);
			return -1;
		}
		return 0;
	}
	snprintf(err, errlen, "key '%s': internal error", key);
	return -1;
}

void px_options_print_keys(void (*fn)(const char *key, const char *value,
                                      const char *help, void *ctx), void *ctx)
{
	char buf[64];
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *k = &keys[i];
		switch (k->type) {
		case KEY_U64:
			snprintf(buf, sizeof(buf), "%" PRIu64, k->def);
			break;
		case KEY_BOOL:
			snprintf(buf, sizeof(buf), "%s", k->def ? "true" : "false");
			break;
		case KEY_LISTEN:
			snprintf(buf, sizeof(buf), "127.0.0.1:8080");
			break;
		case KEY_HISTORY:
			snprintf(buf, sizeof(buf), "message");
			break;
		default:
			buf[0] = '\0';
		}
		fn(k->name, buf, k->help, ctx);
	}
}
