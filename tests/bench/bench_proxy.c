/* bench_proxy: what loopwarden adds on top of a direct connection to the
 * same scripted upstream, in one run, and the same for nginx
 * (proxy_buffering off) as a yardstick when it is installed.
 *   latency: per chunk, from the upstream handing a chunk to its socket to
 *            the client reading the end of that event (one stream at a
 *            time, 2 ms between chunks so every chunk travels alone);
 *   throughput: streams/s with C concurrent clients, chunks back to back.
 * Prints machine-readable lines; never a pass/fail. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "harness.h"
#include "scripted.h"

#define MAX_CHUNKS 256
#define MAX_REQS 4096

static _Atomic uint64_t write_ns[MAX_REQS][MAX_CHUNKS];

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_write(size_t req, size_t chunk, void *ctx)
{
	(void)ctx;
	if (req < MAX_REQS && chunk < MAX_CHUNKS)
		atomic_store_explicit(&write_ns[req][chunk], now_ns(), memory_order_relaxed);
}

static void *loop_thread(void *arg)
{
	event_base_dispatch(arg);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static const char *REQ =
	"{\"model\":\"x\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"bench\"}]}";

static void control(int up_port, const char *q)
{
	struct hs_resp r;
	char path[256];
	snprintf(path, sizeof(path), "/_control?%s", q);
	if (hs_http(up_port, "GET", path, NULL, NULL, 10000, &r) != 0 || r.status != 200) {
		fprintf(stderr, "bench: upstream control failed\n");
		exit(1);
	}
	hs_resp_free(&r);
}

/* One stream; fills <lat> (ns per chunk) and returns how many chunks. */
static size_t one_stream(int port, size_t req_index, uint64_t *lat, size_t max)
{
	int fd = hs_connect(port);
	if (fd < 0)
		return 0;
	size_t len;
	char *req = hs_request_text("POST", "/v1/chat/completions", REQ, NULL, &len);
	if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
		free(req);
		close(fd);
		return 0;
	}
	free(req);
	char buf[65536];
	size_t events = 0;
	int prev_nl = 0; /* trailing '\n' count carried across reads */
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 10000) <= 0)
			break;
		ssize_t k = recv(fd, buf, sizeof(buf), 0);
		if (k <= 0)
			break;
		uint64_t t = now_ns();
		for (ssize_t i = 0; i < k; i++) {
			if (buf[i] == '\n') {
				if (++prev_nl == 2) {
					if (events < max) {
						uint64_t w = atomic_load_explicit(&write_ns[req_index][events],
						                                  memory_order_relaxed);
						lat[events] = w && t > w ? t - w : 0;
					}
					events++;
					prev_nl = 0;
				}
			} else {
				prev_nl = 0;
			}
		}
	}
	close(fd);
	return events;
}

struct lat_result {
	double median_us, p90_us, p99_us;
	size_t samples;
};

static struct lat_result latency(int up_port, int port, int requests, size_t n_chunks)
{
	control(up_port, "scenario=px-healthy-text&delay_ms=2");
	memset(write_ns, 0, sizeof(write_ns));
	uint64_t *all = malloc(sizeof(uint64_t) * (size_t)requests * MAX_CHUNKS);
	size_t n = 0;
	uint64_t lat[MAX_CHUNKS];
	for (int r = 0; r < requests; r++) {
		size_t ev = one_stream(port, (size_t)r, lat, MAX_CHUNKS);
		/* the last event is [DONE], which has no write stamp */
		for (size_t i = 0; i < ev && i < n_chunks; i++)
			if (lat[i])
				all[n++] = lat[i];
	}
	qsort(all, n, sizeof(uint64_t), cmp_u64);
	struct lat_result res = {0, 0, 0, n};
	if (n) {
		res.median_us = (double)all[n / 2] / 1000.0;
		res.p90_us = (double)all[(n * 90) / 100] / 1000.0;
		res.p99_us = (double)all[(n * 99) / 100] / 1000.0;
	}
	free(all);
	return res;
}

/* <total> streams over <conc> concurrent connections; returns streams/s. */
static double throughput(int up_port, int port, int total, int conc, size_t n_chunks, int *bad)
{
	control(up_port, "scenario=px-healthy-tools&delay_ms=0");
	size_t len;
	char *req = hs_request_text("POST", "/v1/chat/completions", REQ, NULL, &len);
	int *fds = calloc((size_t)conc, sizeof(int));
	size_t *events = calloc((size_t)conc, sizeof(size_t));
	int *nl = calloc((size_t)conc, sizeof(int));
	struct pollfd *p = calloc((size_t)conc, sizeof(struct pollfd));
	int started = 0, done = 0;
	*bad = 0;
	uint64_t t0 = now_ns();
	for (int i = 0; i < conc; i++)
		fds[i] = -1;
	char buf[65536];
	while (done < total) {
		for (int i = 0; i < conc; i++) {
			if (fds[i] < 0 && started < total) {
				fds[i] = hs_connect(port);
				if (fds[i] < 0 || send(fds[i], req, len, MSG_NOSIGNAL) != (ssize_t)len) {
					fprintf(stderr, "bench: connect/send failed: %s\n", strerror(errno));
					exit(1);
				}
				events[i] = 0;
				nl[i] = 0;
				started++;
			}
			p[i].fd = fds[i];
			p[i].events = POLLIN;
			p[i].revents = 0;
		}
		if (poll(p, (nfds_t)conc, 10000) <= 0) {
			fprintf(stderr, "bench: stalled\n");
			exit(1);
		}
		for (int i = 0; i < conc; i++) {
			if (fds[i] < 0 || !p[i].revents)
				continue;
			ssize_t k = recv(fds[i], buf, sizeof(buf), 0);
			if (k > 0) {
				for (ssize_t j = 0; j < k; j++) {
					if (buf[j] == '\n') {
						if (++nl[i] == 2) {
							events[i]++;
							nl[i] = 0;
						}
					} else {
						nl[i] = 0;
					}
				}
				continue;
			}
			if (events[i] != n_chunks + 1)
				(*bad)++;
			close(fds[i]);
			fds[i] = -1;
			done++;
		}
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	free(req);
	free(fds);
	free(events);
	free(nl);
	free(p);
	return total / secs;
}

static int start_nginx(const char *dir, int up_port, pid_t *pid)
{
	const char *nginx = "/usr/sbin/nginx";
	if (access(nginx, X_OK) != 0)
		return -1;
	char conf[512], log[512];
	snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
	snprintf(log, sizeof(log), "%s/nginx.log", dir);
	/* A port for nginx: bind 0, read it, close it, hand it over. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {0};
	socklen_t sl = sizeof(sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(0x7f000001);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return -1;
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	int port = ntohs(sa.sin_port);
	close(fd);
	FILE *f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f,
	        "worker_processes 1;\ndaemon off;\nmaster_process off;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
	        "events { worker_connections 4096; }\n"
	        "http {\n access_log off;\n client_body_temp_path %s/body;\n proxy_temp_path %s/proxy;\n"
	        " fastcgi_temp_path %s/fcgi;\n uwsgi_temp_path %s/uwsgi;\n scgi_temp_path %s/scgi;\n"
	        " upstream up { server 127.0.0.1:%d; }\n"
	        " server {\n  listen 127.0.0.1:%d;\n  location / {\n   proxy_pass http://up;\n"
	        "   proxy_buffering off;\n   proxy_http_version 1.1;\n  }\n }\n}\n",
	        dir, dir, dir, dir, dir, dir, dir, up_port, port);
	fclose(f);
	char *argv[] = {(char *)nginx, "-p", (char *)dir, "-c", conf, NULL};
	*pid = hs_spawn(argv, log);
	/* Wait (bounded) until it accepts. */
	for (int i = 0; i < 200; i++) {
		int c = hs_connect(port);
		if (c >= 0) {
			close(c);
			return port;
		}
		usleep(20000);
	}
	return -1;
}

int main(int argc, char **argv)
{
	int streams = 2000, conc = 32, lat_requests = 40;
	const char *lw = LW_BINARY_DIR "/loopwarden";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--streams") == 0)
			streams = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--concurrency") == 0)
			conc = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--latency-requests") == 0)
			lat_requests = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--loopwarden") == 0)
			lw = argv[i + 1];
	}
	if (lat_requests > MAX_REQS)
		lat_requests = MAX_REQS;
	signal(SIGPIPE, SIG_IGN);
	evthread_use_pthreads();
	char dir[] = "/tmp/lw-bench-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	struct event_base *base = event_base_new();
	char err[256];
	struct up_server *up = up_server_new(base, 0, err, sizeof(err));
	if (!up || up_server_load(up, LW_SOURCE_DIR "/tests/integration/data", err, sizeof(err)) < 0) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	up_server_set_write_hook(up, on_write, NULL);
	size_t text_chunks, tool_chunks;
	up_server_chunks(up, "px-healthy-text", &text_chunks);
	up_server_chunks(up, "px-healthy-tools", &tool_chunks);
	int up_port = up_server_port(up);
	pthread_t th;
	pthread_create(&th, NULL, loop_thread, base);

	char upstream[64], lw_log[300];
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%d", up_port);
	snprintf(lw_log, sizeof(lw_log), "%s/loopwarden.log", dir);
	char *lw_argv[] = {(char *)lw, "--listen", "127.0.0.1:0", "--upstream", upstream, "--quiet", NULL};
	pid_t lw_pid = hs_spawn(lw_argv, lw_log);
	int lw_port = (int)hs_wait_number(lw_log, "listening on http://127.0.0.1:", 10000);
	if (lw_port <= 0) {
		fprintf(stderr, "bench: loopwarden did not start (%s)\n", lw_log);
		return 1;
	}
	pid_t ng_pid = -1;
	int ng_port = start_nginx(dir, up_port, &ng_pid);

	printf("# bench_proxy: %d latency streams x %zu chunks (2 ms apart); %d streams x %zu chunks, "
	       "%d concurrent, back to back\n", lat_requests, text_chunks, streams, tool_chunks, conc);
	struct { const char *name; int port; } targets[3] = {
		{"direct", up_port}, {"loopwarden", lw_port}, {"nginx", ng_port}};
	struct lat_result lat[3] = {{0}};
	double tput[3] = {0};
	for (int t = 0; t < 3; t++) {
		if (targets[t].port <= 0) {
			printf("%s: not available (nginx not installed or did not start)\n", targets[t].name);
			continue;
		}
		lat[t] = latency(up_port, targets[t].port, lat_requests, text_chunks);
		int bad;
		tput[t] = throughput(up_port, targets[t].port, streams, conc, tool_chunks, &bad);
		printf("%-10s latency_us median=%.1f p90=%.1f p99=%.1f samples=%zu  streams_per_s=%.0f bad=%d\n",
		       targets[t].name, lat[t].median_us, lat[t].p90_us, lat[t].p99_us, lat[t].samples,
		       tput[t], bad);
	}
	printf("loopwarden added_latency_us_median=%.1f added_latency_us_p99=%.1f "
	       "throughput_ratio_vs_direct=%.3f\n",
	       lat[1].median_us - lat[0].median_us, lat[1].p99_us - lat[0].p99_us, tput[1] / tput[0]);
	if (ng_port > 0)
		printf("nginx      added_latency_us_median=%.1f added_latency_us_p99=%.1f "
		       "throughput_ratio_vs_direct=%.3f\n",
		       lat[2].median_us - lat[0].median_us, lat[2].p99_us - lat[0].p99_us, tput[2] / tput[0]);
	hs_stop(lw_pid, 5000);
	if (ng_pid > 0)
		hs_stop(ng_pid, 5000);
	event_base_loopbreak(base);
	pthread_join(th, NULL);
	up_server_free(up);
	event_base_free(base);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}
