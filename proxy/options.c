/* The proxy's key table: names, defaults and caps in one place; and the one
 * check of a whole configuration (px_options_check). */
#include "proxy/options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "proxy/upstream.h"

enum key_type { KEY_U64 = 0, KEY_BOOL, KEY_STRING, KEY_LISTEN, KEY_URL, KEY_HISTORY, KEY_FINISH };

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
	{"proxy.listen", KEY_LISTEN, 0, 0, 0, 0, "HOST:PORT to listen on (default 127.0.0.1:8080; localhost:8080 works)"},
	{"proxy.upstream", KEY_URL, 0, 0, 0, 0, "base URL of the OpenAI-compatible upstream"},
	{"proxy.upstream_key", KEY_STRING, OFF(upstream_key), 0, 0, PX_KEY_MAX,
	 "API key sent upstream as a Bearer token (empty: relay the client's Authorization)"},
	{"proxy.upstream_ca_file", KEY_STRING, OFF(upstream_ca_file), 0, 0, PX_PATH_MAX,
	 "PEM file of CAs trusted for an https upstream (empty: the system store)"},
	{"proxy.record_dir", KEY_STRING, OFF(record_dir), 0, 0, PX_PATH_MAX,
	 "write request.json + stream.sse per request under this folder"},
	{"proxy.history_action", KEY_HISTORY, 0, 0, 0, 0,
	 "when the history already proves a loop: message | trip | off"},
	/* "length" is the contract (a truncated answer); harnesses that
	 * compact the context or retry on "length" (Qwen Code) do better with
	 * "stop": docs/clients.md says which client wants which. */
	{"proxy.cut_finish_reason", KEY_FINISH, 0, 0, 0, 0,
	 "finish_reason of a cut answer: length | stop"},
	/* Qwen Code re-sends a cut request at once with max_tokens doubled;
	 * a minute covers such retries, 64 cuts a busy instance's last minute. */
	{"proxy.cut_memo_entries", KEY_U64, OFF(cut_memo_entries), 64, 0, 65536,
	 "recent cuts remembered: a request identical to one cut but for its token limits is "
	 "answered as the cut was, without the upstream (0: off)"},
	{"proxy.cut_memo_ttl_ms", KEY_U64, OFF(cut_memo_ttl_ms), 60000, 1, 86400000,
	 "how long a cut is remembered"},
	{"proxy.max_body_bytes", KEY_U64, OFF(max_body_bytes), 8 * MIB, 1 * KIB, 512 * MIB,
	 "largest request body accepted (413 above it)"},
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
	 "concurrent client connections; more get 503 + Retry-After at accept (lowered to fit the open-file limit)"},
	{"proxy.client_idle_timeout_ms", KEY_U64, OFF(client_idle_timeout_ms), 120000, 10, 86400000,
	 "close an idle keep-alive client connection after this long"},
	/* From a request's first byte: a client trickling its head (slowloris)
	 * cannot hold a connection; 10 s is far more than any real client
	 * needs for a head of at most max_header_bytes. */
	{"proxy.header_timeout_ms", KEY_U64, OFF(header_timeout_ms), 10000, 10, 3600000,
	 "a request head must arrive within this (from its first byte), else 408"},
	/* From the end of the head: the default max_body_bytes (8 MiB) arrives
	 * in 60 s at 1.2 Mbit/s; agents send their JSON in one go, usually in
	 * milliseconds. A client on a slower link raises it. */
	{"proxy.body_timeout_ms", KEY_U64, OFF(body_timeout_ms), 60000, 10, 3600000,
	 "a request body must arrive within this (from the end of its head), else 408"},
	/* Bodies are held from their head (Content-Length) until the answer
	 * ends. 512 MiB: 64 bodies of the default max_body_bytes, or some 2600
	 * agent requests of 200 KB (a 50k-token context) at once, more than one
	 * upstream serves; without a cap 8192 connections could ask for 64 GiB. */
	{"proxy.max_total_body_bytes", KEY_U64, OFF(max_total_body_bytes), 512 * MIB, 1 * KIB,
	 65536 * MIB, "request bodies held at once across all connections; more get 503 + Retry-After"},
	{"proxy.quiet", KEY_BOOL, OFF(quiet), 0, 0, 1, "no per-request log lines"},
	/* streaming runtime (chat.c) */
	/* Between two writes the client's socket took, like nginx's
	 * send_timeout: applied by http.c to any unsent output (a finished
	 * answer nobody reads) and by chat.c to a paused answer. */
	{"proxy.client_write_timeout_ms", KEY_U64, OFF(client_write_timeout_ms), 60000, 10, 86400000,
	 "output waits and the client takes no byte of it for this long: connection reset (a paused "
	 "answer's upstream closed too)"},
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

const char *px_cut_finish_name(enum px_cut_finish f)
{
	return f == PX_CUT_STOP ? "stop" : "length";
}

void px_options_defaults(struct px_options *o, struct gd_config *gcfg)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->listen_host, sizeof(o->listen_host), "127.0.0.1");
	o->listen_port = 8080;
	o->history_action = PX_HISTORY_MESSAGE;
	o->cut_finish = PX_CUT_LENGTH;
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
		snprintf(err, errlen, "'%s' must start with http:// or https://", text);
		return -1;
	}
	const char *hend;
	const char *hstart = p;
	if (*p == '[') {
		hend = strchr(p, ']');
		if (!hend) {
			snprintf(err, errlen, "'%s': unterminated [IPv6] host", text);
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
		snprintf(err, errlen, "'%s': %s host", text, hl ? "too long a" : "no");
		return -1;
	}
	memcpy(u->host, hstart, hl);
	u->host[hl] = '\0';
	if (*p == ':') {
		char num[8];
		size_t nl = strcspn(p + 1, "/");
		uint64_t port;
		if (nl == 0 || nl >= sizeof(num)) {
			snprintf(err, errlen, "'%s': bad port", text);
			return -1;
		}
		memcpy(num, p + 1, nl);
		num[nl] = '\0';
		if (parse_u64(num, &port) || port == 0 || port > 65535) {
			snprintf(err, errlen, "'%s': bad port '%s' (1 to 65535)", text, num);
			return -1;
		}
		u->port = (uint16_t)port;
		p += 1 + nl;
	}
	if (*p && *p != '/') {
		snprintf(err, errlen, "'%s': unexpected '%c' after the host", text, *p);
		return -1;
	}
	size_t pl = strlen(p);
	while (pl > 0 && p[pl - 1] == '/')
		pl--;
	if (pl >= sizeof(u->prefix)) {
		snprintf(err, errlen, "'%s': path too long", text);
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
		snprintf(err, errlen, "'%s' is not HOST:PORT: write e.g. 127.0.0.1:8080, "
		         "localhost:8080, [::1]:8080 or :8080", text);
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
		snprintf(err, errlen, "'%s': host too long", text);
		return -1;
	}
	uint64_t p;
	if (parse_u64(colon + 1, &p) || p > 65535) {
		snprintf(err, errlen, "'%s': port '%s' is not a number from 0 to 65535 "
		         "(0: any free port)", text, colon + 1);
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
			snprintf(err, errlen, "unknown key");
			return -1;
		}
		return gd_config_set(gcfg, key, value, err, errlen);
	}
	const struct key_def *k = NULL;
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].name, key) == 0)
			k = &keys[i];
	if (!k) {
		snprintf(err, errlen, "unknown proxy key (loopwarden --help lists them)");
		return -1;
	}
	uint64_t v;
	switch (k->type) {
	case KEY_U64:
		if (parse_u64(value, &v) || v < k->min || v > k->max) {
			snprintf(err, errlen, "'%s' is not an integer in [%" PRIu64 ", %" PRIu64 "]",
			         value, k->min, k->max);
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
			snprintf(err, errlen, "'%s' is not true/false", value);
			return -1;
		}
		return 0;
	case KEY_STRING:
		if (strlen(value) >= k->max) {
			snprintf(err, errlen, "value longer than %" PRIu64 " bytes", k->max - 1);
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
			snprintf(err, errlen, "'%s' is not message, trip or off", value);
			return -1;
		}
		return 0;
	case KEY_FINISH:
		if (strcmp(value, "length") == 0)
			o->cut_finish = PX_CUT_LENGTH;
		else if (strcmp(value, "stop") == 0)
			o->cut_finish = PX_CUT_STOP;
		else {
			snprintf(err, errlen, "'%s' is not length or stop", value);
			return -1;
		}
		return 0;
	}
	snprintf(err, errlen, "internal error: no parser for this key");
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
		case KEY_FINISH:
			snprintf(buf, sizeof(buf), "length");
			break;
		default:
			buf[0] = '\0';
		}
		fn(k->name, buf, k->help, ctx);
	}
}

/* ---- the one check of a whole configuration ------------------------------ */

/* Resolves the listen host (a name such as localhost, or a numeric address)
 * and keeps the address bound: IPv4 first, as 127.0.0.1 is what most clients
 * try for localhost, else the first IPv6 one. */
static int check_listen(struct px_options *o, struct cfg_fault *f)
{
	struct addrinfo hints, *res = NULL, *pick = NULL;
	char num[INET6_ADDRSTRLEN];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(o->listen_host, NULL, &hints, &res);
	if (rc != 0 || !res) {
		if (res)
			freeaddrinfo(res);
		return cfg_fault_set(f, "proxy.listen", "cannot resolve host '%s': %s (write a numeric "
		                     "address such as 127.0.0.1 or [::1], or a name the resolver knows "
		                     "such as localhost)", o->listen_host,
		                     rc ? gai_strerror(rc) : "no address");
	}
	for (struct addrinfo *a = res; a && !pick; a = a->ai_next)
		if (a->ai_family == AF_INET)
			pick = a;
	for (struct addrinfo *a = res; a && !pick; a = a->ai_next)
		if (a->ai_family == AF_INET6)
			pick = a;
	rc = -1;
	if (pick && pick->ai_family == AF_INET)
		rc = inet_ntop(AF_INET, &((struct sockaddr_in *)pick->ai_addr)->sin_addr, num,
		               sizeof(num)) ? 0 : -1;
	else if (pick)
		rc = inet_ntop(AF_INET6, &((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr, num,
		               sizeof(num)) ? 0 : -1;
	freeaddrinfo(res);
	if (rc != 0)
		return cfg_fault_set(f, "proxy.listen", "host '%s' has no IPv4 or IPv6 address",
		                     o->listen_host);
	snprintf(o->listen_host, sizeof(o->listen_host), "%s", num);
	return 0;
}

/* The CA file must be readable and hold at least one PEM certificate: the
 * same reading OpenSSL does (X509_load_cert_crl_file), with the reason kept. */
static int check_ca_file(const char *path, struct cfg_fault *f)
{
	const char *key = "proxy.upstream_ca_file";
	STACK_OF(X509_INFO) *infos = NULL;
	int n_certs = 0, rc = 0;
	FILE *fp = fopen(path, "r");

	if (!fp)
		return cfg_fault_set(f, key, "cannot read '%s': %s", path, strerror(errno));
	ERR_clear_error();
	infos = PEM_X509_INFO_read(fp, NULL, NULL, NULL);
	fclose(fp);
	if (!infos) {
		const char *why = ERR_reason_error_string(ERR_peek_last_error());

		rc = cfg_fault_set(f, key, "'%s' is not a valid PEM file: %s", path,
		                   why ? why : "unreadable");
		goto out;
	}
	for (int i = 0; i < sk_X509_INFO_num(infos); i++)
		if (sk_X509_INFO_value(infos, i)->x509)
			n_certs++;
	if (n_certs == 0)
		rc = cfg_fault_set(f, key, "'%s' holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
		                   path);
out:
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	ERR_clear_error();
	return rc;
}

/* The recorder creates one folder per request inside <dir>, and <dir>
 * itself when it is missing (one level): either must be possible. */
static int check_record_dir(const char *dir, struct cfg_fault *f)
{
	const char *key = "proxy.record_dir";
	char parent[PX_PATH_MAX];
	struct stat sb;
	char *slash;

	if (stat(dir, &sb) == 0) {
		if (!S_ISDIR(sb.st_mode))
			return cfg_fault_set(f, key, "'%s' is not a directory", dir);
		if (access(dir, W_OK | X_OK) != 0)
			return cfg_fault_set(f, key, "cannot write into '%s': %s", dir, strerror(errno));
		return 0;
	}
	if (errno != ENOENT)
		return cfg_fault_set(f, key, "'%s': %s", dir, strerror(errno));
	snprintf(parent, sizeof(parent), "%s", dir);
	while ((slash = strrchr(parent, '/')) && slash[1] == '\0' && slash != parent)
		*slash = '\0'; /* "runs/" is "runs" */
	slash = strrchr(parent, '/');
	if (!slash)
		snprintf(parent, sizeof(parent), ".");
	else
		slash[slash == parent ? 1 : 0] = '\0';
	if (access(parent, W_OK | X_OK) != 0)
		return cfg_fault_set(f, key, "'%s' does not exist and cannot be created in '%s': %s",
		                     dir, parent, strerror(errno));
	return 0;
}

int px_options_check(struct px_options *o, const struct gd_config *gcfg, struct cfg_fault *f)
{
	char err[512];
	struct px_target *t;

	cfg_fault_clear(f);
	if (gcfg && gd_config_check(gcfg, f) != 0)
		return -1;
	if (check_listen(o, f))
		return -1;
	if (!o->have_upstream)
		return cfg_fault_set(f, "proxy.upstream", "not set: give --upstream URL (e.g. "
		                     "http://127.0.0.1:8081 for llama-server), or run contrib/demo.sh");
	if (o->upstream_ca_file[0]) {
		if (!o->upstream.tls) {
			cfg_fault_set(f, "proxy.upstream_ca_file", "proxy.upstream_ca_file is set but "
			              "proxy.upstream is http://%s:%u, not https://: use https:// or "
			              "drop the CA file", o->upstream.host,
			              (unsigned)o->upstream.port);
			f->key2 = "proxy.upstream";
			return -1;
		}
		if (check_ca_file(o->upstream_ca_file, f))
			return -1;
	}
	/* The very constructor start-up uses: resolves the host, builds the
	 * TLS context with the CA file. */
	t = px_target_new(&o->upstream, o->upstream_ca_file, err, sizeof(err));
	if (!t)
		return cfg_fault_set(f, o->upstream_ca_file[0] && strstr(err, "CA file")
		                     ? "proxy.upstream_ca_file" : "proxy.upstream", "%s", err);
	px_target_free(t);
	if (o->record_dir[0] && check_record_dir(o->record_dir, f))
		return -1;
	if (o->max_total_body_bytes < o->max_body_bytes) {
		cfg_fault_set(f, "proxy.max_total_body_bytes", "proxy.max_total_body_bytes (%" PRIu64
		              ") is less than proxy.max_body_bytes (%" PRIu64 "): a body of the "
		              "largest size could never be accepted", o->max_total_body_bytes,
		              o->max_body_bytes);
		f->key2 = "proxy.max_body_bytes";
		return -1;
	}
	return 0;
}
