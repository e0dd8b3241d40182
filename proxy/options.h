/* The proxy's settings: every proxy.* key with its default and cap lives in
 * one table (options.c); guards.* and watchdog.* keys go to the guard config.
 * Filled from the command line, a YAML file and --set overrides. */
#ifndef LW_PROXY_OPTIONS_H
#define LW_PROXY_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/origin.h"
#include "guards/config.h"

#define PX_HOST_MAX 256
#define PX_PATH_MAX 1024
#define PX_KEY_MAX 512

enum px_history_action {
	PX_HISTORY_MESSAGE = 0, /* answer with a short assistant message, finish_reason "stop" */
	PX_HISTORY_TRIP,        /* answer like a trip: finish_reason "length" + loopwarden object */
	PX_HISTORY_OFF,         /* do not check the history before forwarding */
	PX_HISTORY_COUNT
};

/* proxy.cut_finish_reason: the finish_reason of a cut answer. */
enum px_cut_finish {
	PX_CUT_LENGTH = 0, /* "length": a truncated answer (the default, the contract) */
	PX_CUT_STOP,       /* "stop": for harnesses that compact or retry on "length" */
	PX_CUT_FINISH_COUNT
};

/* "length" or "stop". */
const char *px_cut_finish_name(enum px_cut_finish f);

/* An http:// or https:// base URL, split. <prefix> never ends in '/'. */
struct px_url {
	bool tls;
	char host[PX_HOST_MAX];
	uint16_t port;
	char prefix[PX_PATH_MAX];
};

struct px_options {
	char listen_host[PX_HOST_MAX];
	uint16_t listen_port; /* 0: any free port (printed at start) */
	struct px_url upstream;
	bool have_upstream;
	char upstream_key[PX_KEY_MAX]; /* empty: relay the client's Authorization */
	char upstream_ca_file[PX_PATH_MAX]; /* PEM CAs for an https upstream; empty: the system store */
	char record_dir[PX_PATH_MAX];  /* empty: no recording */
	enum px_history_action history_action;
	enum px_cut_finish cut_finish;    /* proxy.cut_finish_reason */
	uint64_t cut_memo_entries;        /* recent cuts remembered (proxy/cutmemo.h); 0: off */
	uint64_t cut_memo_ttl_ms;         /* for this long */

	/* caps and timers, see the table in options.c */
	uint64_t max_body_bytes;
	uint64_t max_header_bytes;
	uint64_t max_event_bytes;
	uint64_t max_response_bytes;
	uint64_t max_held_bytes;
	uint64_t client_highwater_bytes;
	uint64_t keepalive_ms;
	uint64_t connect_timeout_ms;
	uint64_t max_streams;
	uint64_t max_connections;
	uint64_t client_idle_timeout_ms;
	uint64_t header_timeout_ms;     /* a request head must arrive within this */
	uint64_t body_timeout_ms;       /* a request body must arrive within this */
	uint64_t max_total_body_bytes;  /* request bodies buffered across all connections */
	bool quiet; /* no per-request log lines */
	/* streaming runtime (chat.c) */
	uint64_t client_write_timeout_ms; /* a paused answer's client takes no byte this long: cancel */
};

void px_options_defaults(struct px_options *o, struct gd_config *gcfg);

/* Sets one key: proxy.* here, anything else through gd_config_set into
 * <gcfg>. Checks the value's own form and range only (see px_options_check
 * for the rest). Returns 0, or -1 with <err> saying why; <err> does not
 * repeat <key> (the caller names it, with its file and line). */
int px_options_set(struct px_options *o, struct gd_config *gcfg,
                   const char *key, const char *value, char *err, size_t errlen);

/* Parses "http://host[:port][/prefix]" or "https://…". Returns 0 or -1 + <err>. */
int px_url_parse(struct px_url *u, const char *text, char *err, size_t errlen);

/* Parses "HOST:PORT" (or "[v6]:PORT", or ":PORT" for 127.0.0.1). HOST may be
 * a name (localhost): px_options_check resolves it. */
int px_listen_parse(char *host, size_t hostlen, uint16_t *port, const char *text,
                    char *err, size_t errlen);

/* The one check of a whole configuration, run by start-up, --check-config
 * and SIGHUP alike, after every key is set: the guard config
 * (gd_config_check: cross-key constraints, PCRE2 patterns; skipped when
 * <gcfg> is NULL), the listen host (resolved: on success <o>->listen_host
 * holds the numeric address to bind), the upstream (set, resolved, its
 * TLS context built exactly as start-up builds it), the CA file (readable,
 * valid PEM, only with an https upstream) and the record folder (writable
 * or creatable). It does not bind the port: the running instance a
 * --check-config is often run beside holds it. Returns 0, or -1 with
 * <fault> blaming a key (cfg_fault_format names the line that set it). */
int px_options_check(struct px_options *o, const struct gd_config *gcfg, struct cfg_fault *fault)
	__attribute__((warn_unused_result));

/* Prints every proxy key with its default and range (for --help). */
void px_options_print_keys(void (*fn)(const char *key, const char *value,
                                      const char *help, void *ctx), void *ctx);

#endif
