/* loopwarden's entry point: `loopwarden generate …` runs the engine's
 * generation command; anything else is the proxy's command line. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config/config.h"
#include "engine/generate.h"
#include "guards/config.h"
#include "guards/pipeline.h"
#include "guards/policy.h"
#include "proxy/options.h"
#include "proxy/server.h"

#define LW_VERSION_STRING "0.1.0"

#ifndef LW_PROXY_DISABLED
struct settings {
	struct px_options *opts;
	struct gd_config *gcfg;
};

static int setter(const char *key, const char *value, const char *file, unsigned long line,
                  void *ctx, char *err, size_t errlen)
{
	(void)file;
	(void)line;
	struct settings *st = ctx;
	return px_options_set(st->opts, st->gcfg, key, value, err, errlen);
}

static void print_proxy_key(const char *key, const char *value, const char *help, void *ctx)
{
	(void)ctx;
	printf("  %-30s %-14s %s\n", key, value[0] ? value : "\"\"", help);
}

static void print_guard_key(const char *key, const char *value, void *ctx)
{
	(void)ctx;
	printf("  %-40s %s\n", key, value);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: loopwarden --upstream URL [--listen ADDR:PORT] [--config FILE]\n"
	        "                  [--set key=value]... [--record DIR] [--quiet]\n"
	        "       loopwarden --check-config [--config FILE] [--set key=value]...\n"
	        "       loopwarden generate …      (the co-resident engine; see `loopwarden generate --help`)\n"
	        "\n"
	        "A guard-and-watchdog proxy for OpenAI-compatible chat completions: point your\n"
	        "agent's base URL at http://ADDR:PORT/v1 and loopwarden relays every answer\n"
	        "from the upstream, cutting degenerate loops short with finish_reason \"length\".\n"
	        "\n"
	        "  --listen ADDR:PORT   where to listen (default 127.0.0.1:8080; port 0 = any free port)\n"
	        "  --upstream URL       the engine, e.g. http://127.0.0.1:8081 (llama-server, vLLM, Ollama…)\n"
	        "  --config FILE        YAML settings (keys below, nested: guards: {repeat: {…}})\n"
	        "  --set key=value      override one key (repeatable), e.g. --set watchdog.idle_timeout_ms=3000\n"
	        "  --record DIR         save request.json + stream.sse per request for loopwarden-audit\n"
	        "  --quiet              no per-request log lines\n"
	        "  --check-config       validate the settings and exit\n"
	        "  --help, --version\n");
}

static void help(void)
{
	usage(stdout);
	printf("\nproxy keys (default, meaning):\n");
	px_options_print_keys(print_proxy_key, NULL);
	struct gd_config g;
	gd_config_defaults(&g);
	printf("\nguard and watchdog keys (defaults):\n");
	gd_config_each(&g, print_guard_key, NULL);
}

struct stopper {
	struct event_base *base;
	struct px_server *srv;
	bool stopping;
};

/* First signal: end the answers in progress and give their last bytes half
 * a second to leave; a second signal: leave now. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct stopper *st = arg;
	fprintf(stderr, "loopwarden: %s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
	if (st->stopping) {
		event_base_loopbreak(st->base);
		return;
	}
	st->stopping = true;
	px_server_shutdown(st->srv);
	struct timeval flush = {0, 500000};
	event_base_loopexit(st->base, &flush);
}

enum load_result { LOAD_OK = 0, LOAD_EXIT, LOAD_ERROR };

/* Settings from scratch: defaults, then the --config file, then every other
 * argument in order (so they override the file). Also used by SIGHUP. */
static enum load_result load_settings(int argc, char **argv, struct px_options *opts,
                                      struct gd_config *gcfg, bool *check_only)
{
	struct settings st = {opts, gcfg};
	char err[512];
	px_options_defaults(opts, gcfg);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "loopwarden: --config needs a FILE\n");
				return LOAD_ERROR;
			}
			if (cfg_load_file(argv[i + 1], setter, &st, err, sizeof(err)) != CFG_OK) {
				fprintf(stderr, "loopwarden: %s\n", err);
				return LOAD_ERROR;
			}
			i++;
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char *key = NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			help();
			return LOAD_EXIT;
		} else if (strcmp(a, "--version") == 0) {
			printf("loopwarden %s\n", LW_VERSION_STRING);
			return LOAD_EXIT;
		} else if (strcmp(a, "--quiet") == 0) {
			opts->quiet = true;
			continue;
		} else if (strcmp(a, "--check-config") == 0) {
			*check_only = true;
			continue;
		} else if (strcmp(a, "--config") == 0) {
			i++;
			continue;
		} else if (strcmp(a, "--listen") == 0) {
			key = "proxy.listen";
		} else if (strcmp(a, "--upstream") == 0) {
			key = "proxy.upstream";
		} else if (strcmp(a, "--record") == 0) {
			key = "proxy.record_dir";
		} else if (strcmp(a, "--set") == 0) {
			if (!v) {
				fprintf(stderr, "loopwarden: --set needs key=value\n");
				return LOAD_ERROR;
			}
			char k[CFG_KEY_MAX], val[CFG_VALUE_MAX];
			if (cfg_parse_kv(v, k, sizeof(k), val, sizeof(val), err, sizeof(err)) != CFG_OK ||
			    px_options_set(opts, gcfg, k, val, err, sizeof(err)) != 0) {
				fprintf(stderr, "loopwarden: --set %s: %s\n", v, err);
				return LOAD_ERROR;
			}
			i++;
			continue;
		} else {
			fprintf(stderr, "loopwarden: unknown argument '%s'\n\n", a);
			usage(stderr);
			return LOAD_ERROR;
		}
		if (!v) {
			fprintf(stderr, "loopwarden: %s needs a value\n", a);
			return LOAD_ERROR;
		}
		if (px_options_set(opts, gcfg, key, v, err, sizeof(err)) != 0) {
			fprintf(stderr, "loopwarden: %s %s: %s\n", a, v, err);
			return LOAD_ERROR;
		}
		i++;
	}
	return LOAD_OK;
}

struct reloader {
	int argc;
	char **argv;
	struct px_server *srv;
};

/* SIGHUP: read the settings again and install the new guard thresholds for
 * the answers that start from now on (proxy.* keys need a restart). */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	struct reloader *r = arg;
	static struct px_options opts;
	static struct gd_config gcfg;
	bool check_only = false;
	char err[512];
	if (load_settings(r->argc, r->argv, &opts, &gcfg, &check_only) != LOAD_OK) {
		fprintf(stderr, "loopwarden: SIGHUP: settings not reloaded (see above)\n");
		return;
	}
	if (px_server_reload(r->srv, &gcfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "loopwarden: SIGHUP: settings not reloaded: %s\n", err);
		return;
	}
	fprintf(stderr, "loopwarden: SIGHUP: guard settings reloaded\n");
}

static int run_proxy(int argc, char **argv)
{
	static struct px_options opts;
	static struct gd_config gcfg;
	char err[512];
	bool check_only = false;
	switch (load_settings(argc, argv, &opts, &gcfg, &check_only)) {
	case LOAD_EXIT:
		return 0;
	case LOAD_ERROR:
		return 2;
	default:
		break;
	}
	if (check_only) {
		struct gd_policy *pol = gd_policy_new(&gcfg, err, sizeof(err));
		if (!pol) {
			fprintf(stderr, "loopwarden: %s\n", err);
			return 2;
		}
		gd_policy_free(pol);
		printf("loopwarden: configuration ok\n");
		return 0;
	}
	if (!opts.have_upstream) {
		fprintf(stderr, "loopwarden: no upstream: give --upstream URL (e.g. http://127.0.0.1:8081 "
		                "for llama-server), or run contrib/demo.sh\n\n");
		usage(stderr);
		return 2;
	}

	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	if (!base) {
		fprintf(stderr, "loopwarden: cannot create the event loop\n");
		return 1;
	}
	int rc = 1;
	struct event *sigint = NULL, *sigterm = NULL, *sighup = NULL;
	struct px_server *srv = px_server_new(base, &opts, &gcfg, err, sizeof(err));
	if (!srv) {
		fprintf(stderr, "loopwarden: %s\n", err);
		goto out;
	}
	static struct stopper stopper;
	stopper.base = base;
	stopper.srv = srv;
	static struct reloader reloader;
	reloader.argc = argc;
	reloader.argv = argv;
	reloader.srv = srv;
	sigint = evsignal_new(base, SIGINT, on_signal, &stopper);
	sigterm = evsignal_new(base, SIGTERM, on_signal, &stopper);
	sighup = evsignal_new(base, SIGHUP, on_hup, &reloader);
	if (!sigint || !sigterm || !sighup || event_add(sigint, NULL) || event_add(sigterm, NULL) ||
	    event_add(sighup, NULL)) {
		fprintf(stderr, "loopwarden: cannot install signal handlers\n");
		goto out;
	}
	fprintf(stderr, "loopwarden: listening on http://%s%s%s:%u, upstream %s://%s:%u%s\n",
	        strchr(opts.listen_host, ':') ? "[" : "", opts.listen_host,
	        strchr(opts.listen_host, ':') ? "]" : "", (unsigned)px_server_port(srv),
	        opts.upstream.tls ? "https" : "http", opts.upstream.host, (unsigned)opts.upstream.port,
	        opts.upstream.prefix);
	fflush(stderr);
	event_base_dispatch(base);
	rc = 0;
out:
	px_server_free(srv);
	if (sigint)
		event_free(sigint);
	if (sigterm)
		event_free(sigterm);
	if (sighup)
		event_free(sighup);
	event_base_free(base);
	return rc;
}

#endif /* LW_PROXY_DISABLED */

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "generate") == 0)
		return eng_generate_main(argc - 1, argv + 1);
#ifdef LW_PROXY_DISABLED
	fprintf(stderr, "loopwarden: the proxy is not built yet (the guard pipeline is missing)\n");
	return 2;
#else
	return run_proxy(argc, argv);
#endif
}
