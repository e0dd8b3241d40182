/* lw-upstream: the scripted upstream as a program (demo, benchmark, npm test).
 *   lw-upstream --data FILE|DIR [--scenario NAME] [--listen PORT] [--mode M]
 *               [--after N] [--delay-ms N] [--status N] [--port-file F]
 *               [--tls-cert PEM --tls-key PEM]
 * Prints "lw-upstream: listening on 127.0.0.1:PORT" and serves until SIGINT/SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "scripted.h"

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
	struct up_program prog = {UP_REPLAY, 0, 0, 500, false, false, false, false};
	const char *data[16];
	int n_data = 0;
	const char *scenario = NULL, *port_file = NULL, *cert = NULL, *key = NULL;
	long port = 0;
	for (int i = 1; i < argc; i += 2) { /* every option takes a value */
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			fprintf(stderr, "lw-upstream: %s needs a value\n", a);
			return 2;
		}
		if (strcmp(a, "--data") == 0 && n_data == 16) {
			fprintf(stderr, "lw-upstream: at most 16 --data folders\n");
			return 2;
		} else if (strcmp(a, "--data") == 0)
			data[n_data++] = v;
		else if (strcmp(a, "--scenario") == 0)
			scenario = v;
		else if (strcmp(a, "--listen") == 0)
			port = strtol(strrchr(v, ':') ? strrchr(v, ':') + 1 : v, NULL, 10);
		else if (strcmp(a, "--mode") == 0) {
			if (up_mode_parse(v, &prog.mode)) {
				fprintf(stderr, "lw-upstream: unknown mode '%s'\n", v);
				return 2;
			}
		} else if (strcmp(a, "--after") == 0)
			prog.after = (uint32_t)strtoul(v, NULL, 10);
		else if (strcmp(a, "--delay-ms") == 0)
			prog.delay_ms = (uint32_t)strtoul(v, NULL, 10);
		else if (strcmp(a, "--status") == 0)
			prog.status = (int)strtol(v, NULL, 10);
		else if (strcmp(a, "--port-file") == 0)
			port_file = v;
		else if (strcmp(a, "--tls-cert") == 0)
			cert = v;
		else if (strcmp(a, "--tls-key") == 0)
			key = v;
		else {
			fprintf(stderr, "lw-upstream: unknown argument '%s'\n", a);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	char err[512];
	struct up_server *s = up_server_new(base, (uint16_t)port, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "lw-upstream: %s\n", err);
		return 1;
	}
	if (cert && key && up_server_enable_tls(s, cert, key, err, sizeof(err)) != 0) {
		fprintf(stderr, "lw-upstream: %s\n", err);
		return 1;
	}
	for (int i = 0; i < n_data; i++)
		if (up_server_load(s, data[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "lw-upstream: %s\n", err);
			return 1;
		}
	if (up_server_scenarios(s) == 0) {
		fprintf(stderr, "lw-upstream: no scenarios: give --data FILE|DIR\n");
		return 2;
	}
	if (scenario && up_server_set_default(s, scenario)) {
		fprintf(stderr, "lw-upstream: no scenario named '%s'\n", scenario);
		return 2;
	}
	up_server_set_program(s, &prog);
	struct event *si = evsignal_new(base, SIGINT, on_signal, base);
	struct event *st = evsignal_new(base, SIGTERM, on_signal, base);
	event_add(si, NULL);
	event_add(st, NULL);
	if (port_file) {
		FILE *f = fopen(port_file, "w");
		if (f) {
			fprintf(f, "%u\n", (unsigned)up_server_port(s));
			fclose(f);
		}
	}
	printf("lw-upstream: listening on 127.0.0.1:%u (%zu scenarios, mode %s)\n",
	       (unsigned)up_server_port(s), up_server_scenarios(s), up_mode_name(prog.mode));
	fflush(stdout);
	event_base_dispatch(base);
	event_free(si);
	event_free(st);
	up_server_free(s);
	event_base_free(base);
	return 0;
}
