/* loopwarden's entry point: `loopwarden generate …` runs the engine's
 * generation command; anything else is the proxy's command line. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <sys/resource.h>

#include <event2/event.h>

#include "config/config.h"
#include "config/origin.h"
#include "engine/generate.h"
#include "guards/config.h"
#include "guards/pipeline.h"
#include "guards/policy.h"
#include "proxy/http.h"
#include "proxy/options.h"
#include "proxy/server.h"

#define LW_VERSION_STRING "0.1.0"

#ifndef LW_PROXY_DISABLED
struct settings {
	struct px_options *opts;
	struct gd_config *gcfg;
	struct cfg_origins *origins; /* where each key was set, for later faults */
};

/* Every setting, from the file or the command line, goes through here. */
static int set_one(struct settings *st, const char *key, const char *value, const char *file,
                   unsigned long line, char *err, size_t errlen)
{
	if (px_options_set(st->opts, st->gcfg, key, value, err, errlen) != 0)
		return -1;
	(void)cfg_origins_note(st->origins, key, value, file, line); /* full: only the position is lost */
	return 0;
}

static int setter(const char *key, const char *value, const char *file, unsigned long line,
                  void *ctx, char *err, size_t errlen)
{
	return set_one(ctx, key, value, file, line, err, errlen);
}

/* A setting from the command line option <opt>; a refusal is printed as
 * "loopwarden: <opt>: key '<key>': <why>", like a file's "<file>:<line>: …". */
static bool set_arg(struct settings *st, const char *opt, const char *key, const char *value)
{
	char err[512] = "";

	if (set_one(st, key, value, opt, 0, err, sizeof(err)) == 0)
		return true;
	fprintf(stderr, "loopwarden: %s: key '%s': %s\n", opt, key, err[0] ? err : "value refused");
	return false;
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
	        "usage: loopwarden --upstream URL [--listen HOST:PORT] [-c|--config FILE]\n"
	        "                  [--set key=value]... [--record DIR] [--quiet]\n"
	        "       loopwarden --check-config [same options as to start]\n"
	        "       loopwarden generate …      (the co-resident engine; see `loopwarden generate --help`)\n"
	        "\n"
	        "A guard-and-watchdog proxy for OpenAI-compatible chat completions: point your\n"
	        "agent's base URL at http://ADDR:PORT/v1 and loopwarden relays every answer\n"
	        "from the upstream, cutting degenerate loops short with finish_reason \"length\".\n"
	        "\n"
	        "  --listen HOST:PORT   where to listen (default 127.0.0.1:8080; localhost:8080, [::1]:8080;\n"
	        "                       port 0 = any free port)\n"
	        "  --upstream URL       the engine, e.g. http://127.0.0.1:8081 (llama-server, vLLM, Ollama…)\n"
	        "  -c, --config FILE    YAML settings (keys below, nested: guards: {repeat: {…}})\n"
	        "  --set key=value      override one key (repeatable), e.g. --set watchdog.idle_timeout_ms=3000\n"
	        "  --record DIR         save request.json + stream.sse per request for loopwarden-audit\n"
	        "  --quiet              no per-request log lines\n"
	        "  --check-config       check the settings exactly as start-up does (all but binding\n"
	        "                       the port) and exit: 0 if they would start, 2 if not\n"
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

static bool is_config_opt(const char *a)
{
	return strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0;
}

/* Settings from scratch: defaults, then the --config file, then every other
 * argument in order (so they override the file). Prints what is wrong. */
static enum load_result load_settings(int argc, char **argv, struct settings *st,
                                      bool *check_only)
{
	struct px_options *opts = st->opts;
	char err[1024];
	px_options_defaults(opts, st->gcfg);
	for (int i = 1; i < argc; i++) {
		if (is_config_opt(argv[i])) {
			if (i + 1 >= argc) {
				fprintf(stderr, "loopwarden: %s needs a FILE\n", argv[i]);
				return LOAD_ERROR;
			}
			if (cfg_load_file(argv[i + 1], setter, st, err, sizeof(err)) != CFG_OK) {
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
		} else if (is_config_opt(a)) {
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
			if (cfg_parse_kv(v, k, sizeof(k), val, sizeof(val), err, sizeof(err)) != CFG_OK) {
				fprintf(stderr, "loopwarden: %s\n", err);
				return LOAD_ERROR;
			}
			if (!set_arg(st, "--set", k, val))
				return LOAD_ERROR;
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
		if (!set_arg(st, a, key, v))
			return LOAD_ERROR;
		i++;
	}
	return LOAD_OK;
}

/* What start-up, --check-config and SIGHUP all run: the settings from
 * scratch, then their one check (px_options_check). Prints the first
 * problem, naming the file and line (or option) that set the key. */
static enum load_result load_and_check(int argc, char **argv, struct px_options *opts,
                                       struct gd_config *gcfg, bool *check_only)
{
	struct settings st = {opts, gcfg, cfg_origins_new()};
	struct cfg_fault fault;
	char msg[2048];
	enum load_result r;

	if (!st.origins) {
		fprintf(stderr, "loopwarden: out of memory\n");
		return LOAD_ERROR;
	}
	r = load_settings(argc, argv, &st, check_only);
	if (r == LOAD_OK && px_options_check(opts, gcfg, &fault) != 0) {
		cfg_fault_format(&fault, st.origins, msg, sizeof(msg));
		fprintf(stderr, "loopwarden: %s\n", msg);
		r = LOAD_ERROR;
	}
	cfg_origins_free(st.origins);
	return r;
}

struct reloader {
	int argc;
	char **argv;
	struct px_server *srv;
	const struct px_options *running; /* the proxy.* settings in force */
};

/* SIGHUP: read and check the settings again exactly as start-up does and
 * install the new guard thresholds for the answers that start from now on;
 * on any error the running settings stay (proxy.* keys need a restart). */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	struct reloader *r = arg;
	static struct px_options opts;
	static struct gd_config gcfg;
	bool check_only = false;
	char err[512];
	if (load_and_check(r->argc, r->argv, &opts, &gcfg, &check_only) != LOAD_OK) {
		fprintf(stderr, "loopwarden: SIGHUP: settings not reloaded, the running ones stay "
		                "(see above)\n");
		return;
	}
	if (px_server_reload(r->srv, &gcfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "loopwarden: SIGHUP: settings not reloaded, the running ones stay: %s\n",
		        err);
		return;
	}
	fprintf(stderr, "loopwarden: SIGHUP: guard settings reloaded\n");
	if (memcmp(&opts, r->running, sizeof(opts)) != 0)
		fprintf(stderr, "loopwarden: SIGHUP: proxy.* settings changed too: they take effect "
		                "at the next start\n");
}

/* A server needs many descriptors; the usual soft limit (1024) is meant for
 * shells. Raises it to the hard limit, then lowers proxy.max_connections to
 * what the limit allows (each connection may hold a client socket, an
 * upstream socket and a recording file), saying so: past it accept() would
 * fail (issue 11 defect 2). */
static void fit_fd_limit(struct px_options *o)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur != rl.rlim_max) {
		struct rlimit want = {rl.rlim_max, rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &want) != 0 && rl.rlim_max == RLIM_INFINITY)
			want.rlim_cur = 1048576; /* an unlimited hard limit is capped by fs.nr_open */
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl = want;
	}
	uint64_t limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	unsigned per = o->record_dir[0] ? 3 : 2;
	uint64_t most = px_http_connections_for_fds(limit, per);
	if (o->max_connections > most) {
		fprintf(stderr, "loopwarden: proxy.max_connections lowered from %" PRIu64 " to %" PRIu64
		                ": the open-file limit is %" PRIu64 " and each connection may need %u "
		                "(client, upstream%s) with %d kept in reserve; raise the limit (ulimit -n, "
		                "systemd LimitNOFILE=) to allow more\n",
		        o->max_connections, most, limit, per, per == 3 ? ", recording" : "",
		        PX_HTTP_FD_RESERVE);
		o->max_connections = most;
	}
}

static int run_proxy(int argc, char **argv)
{
	static struct px_options opts;
	static struct gd_config gcfg;
	char err[512];
	bool check_only = false;
	switch (load_and_check(argc, argv, &opts, &gcfg, &check_only)) {
	case LOAD_EXIT:
		return 0;
	case LOAD_ERROR:
		return 2;
	default:
		break;
	}
	if (check_only) {
		bool v6 = strchr(opts.listen_host, ':') != NULL;
		printf("loopwarden: configuration ok (listen %s%s%s:%u, upstream %s://%s:%u%s)\n",
		       v6 ? "[" : "", opts.listen_host, v6 ? "]" : "", (unsigned)opts.listen_port,
		       opts.upstream.tls ? "https" : "http", opts.upstream.host,
		       (unsigned)opts.upstream.port, opts.upstream.prefix);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	fit_fd_limit(&opts);
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
	reloader.running = &opts;
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
