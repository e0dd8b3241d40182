/* bench_proxy: what loopwarden adds on top of a direct connection to the
 * same scripted upstream, in one run, and the same for nginx
 * (proxy_buffering off) as a yardstick when it is installed.
 *   latency: per chunk, from the upstream handing a chunk to its socket to
 *            the client reading the end of that event (one stream at a
 *            time, 2 ms between chunks so every chunk travels alone);
 *   throughput: streams/s with C concurrent clients, chunks back to back.
 * The targets take turns (a stream each for latency, a share of the streams
 * each per round for throughput), so that all of them meet the same load on
 * a shared machine. Prints machine-readable lines; never a pass/fail. */
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
#define N_TARGETS 4 /* direct, loopwarden, nginx, the --compare binary */

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

/* Samples of one target. */
struct lat_acc {
	uint64_t *all;
	size_t n;
};

static struct lat_result lat_summary(struct lat_acc *a)
{
	qsort(a->all, a->n, sizeof(uint64_t), cmp_u64);
	struct lat_result res = {0, 0, 0, a->n};
	if (a->n) {
		res.median_us = (double)a->all[a->n / 2] / 1000.0;
		res.p90_us = (double)a->all[(a->n * 90) / 100] / 1000.0;
		res.p99_us = (double)a->all[(a->n * 99) / 100] / 1000.0;
	}
	return res;
}

/* <requests> rounds; each round runs one stream through every target in
 * <ports> (those > 0), in an order that rotates with the round, so that
 * every target meets the same machine load (the machine may be shared). */
static void latency(int up_port, const int *ports, int n_targets, int requests, size_t n_chunks,
                    struct lat_acc *acc)
{
	control(up_port, "scenario=px-healthy-text&delay_ms=2");
	memset(write_ns, 0, sizeof(write_ns));
	size_t index = 0; /* the upstream numbers requests from 0 after a control call */
	uint64_t lat[MAX_CHUNKS];
	for (int r = 0; r < requests; r++) {
		for (int k = 0; k < n_targets; k++) {
			int t = (r + k) % n_targets;
			if (ports[t] <= 0 || index >= MAX_REQS)
				continue;
			size_t ev = one_stream(ports[t], index++, lat, MAX_CHUNKS);
			/* the last event is [DONE], which has no write stamp */
			for (size_t i = 0; i < ev && i < n_chunks; i++)
				if (lat[i])
					acc[t].all[acc[t].n++] = lat[i];
		}
	}
}

/* <total> streams over <conc> concurrent connections; returns seconds. */
static double throughput(int port, int total, int conc, size_t n_chunks, int *bad)
{
	size_t len;
	char *req = hs_request_text("POST", "/v1/chat/completions", REQ, NULL, &len);
	int *fds = calloc((size_t)conc, sizeof(int));
	size_t *events = calloc((size_t)conc, sizeof(size_t));
	int *nl = calloc((size_t)conc, sizeof(int));
	struct pollfd *p = calloc((size_t)conc, sizeof(struct pollfd));
	int started = 0, done = 0;
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
	return secs;
}

static int start_loopwarden(const char *bin, const char *dir, const char *logname,
                            const char *upstream, pid_t *pid)
{
	char log[300];
	snprintf(log, sizeof(log), "%s/%s", dir, logname);
	char *argv[] = {(char *)bin, "--listen", "127.0.0.1:0", "--upstream", (char *)upstream,
	                "--quiet", NULL};
	*pid = hs_spawn(argv, log);
	int port = (int)hs_wait_number(log, "listening on http://127.0.0.1:", 10000);
	if (port <= 0)
		fprintf(stderr, "bench: %s did not start (%s)\n", bin, log);
	return port;
}

int main(int argc, char **argv)
{
	int streams = 2000, conc = 32, lat_requests = 40, rounds = 4;
	const char *lw = LW_BINARY_DIR "/loopwarden", *lw_b = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--streams") == 0)
			streams = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--concurrency") == 0)
			conc = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--latency-requests") == 0)
			lat_requests = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--rounds") == 0)
			rounds = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--loopwarden") == 0)
			lw = argv[i + 1];
		else if (strcmp(argv[i], "--compare") == 0)
			lw_b = argv[i + 1]; /* a second loopwarden binary, measured alongside */
	}
	if (lat_requests > MAX_REQS / N_TARGETS)
		lat_requests = MAX_REQS / N_TARGETS;
	if (rounds < 1)
		rounds = 1;
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

	char upstream[64];
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%d", up_port);
	pid_t lw_pid = -1, lwb_pid = -1;
	int lw_port = start_loopwarden(lw, dir, "loopwarden.log", upstream, &lw_pid);
	if (lw_port <= 0)
		return 1;
	int lwb_port = -1;
	if (lw_b && (lwb_port = start_loopwarden(lw_b, dir, "loopwarden-b.log", upstream, &lwb_pid)) <= 0)
		return 1;
	pid_t ng_pid = -1;
	int ng_port = hs_start_nginx(dir, up_port, NULL, NULL, &ng_pid);

	printf("# bench_proxy: %d latency streams x %zu chunks (2 ms apart); %d streams x %zu chunks, "
	       "%d concurrent, back to back; targets interleaved (latency per stream, streams/s in %d "
	       "rounds)\n", lat_requests, text_chunks, streams, tool_chunks, conc, rounds);
	const char *names[N_TARGETS] = {"direct", "loopwarden", "nginx", "compare"};
	int ports[N_TARGETS] = {up_port, lw_port, ng_port, lwb_port};
	struct lat_acc acc[N_TARGETS];
	for (int t = 0; t < N_TARGETS; t++) {
		acc[t].all = malloc(sizeof(uint64_t) * (size_t)lat_requests * MAX_CHUNKS);
		acc[t].n = 0;
	}
	latency(up_port, ports, N_TARGETS, lat_requests, text_chunks, acc);
	/* Streams/s: <rounds> rounds, each running a share of the streams
	 * through every target in a rotating order; a target's figure is its
	 * streams over its summed time. */
	control(up_port, "scenario=px-healthy-tools&delay_ms=0");
	double secs[N_TARGETS] = {0};
	int done[N_TARGETS] = {0}, bad[N_TARGETS] = {0};
	for (int r = 0; r < rounds; r++) {
		int share = streams / rounds + (r < streams % rounds);
		for (int k = 0; k < N_TARGETS; k++) {
			int t = (r + k) % N_TARGETS;
			if (ports[t] <= 0 || share == 0)
				continue;
			int b = 0;
			secs[t] += throughput(ports[t], share, conc, tool_chunks, &b);
			done[t] += share;
			bad[t] += b;
		}
	}
	struct lat_result lat[N_TARGETS] = {{0}};
	double tput[N_TARGETS] = {0};
	for (int t = 0; t < N_TARGETS; t++) {
		if (ports[t] <= 0) {
			if (t == 2)
				printf("nginx: not available (not installed or did not start)\n");
			free(acc[t].all);
			continue;
		}
		lat[t] = lat_summary(&acc[t]);
		tput[t] = secs[t] > 0 ? done[t] / secs[t] : 0;
		printf("%-10s latency_us median=%.1f p90=%.1f p99=%.1f samples=%zu  streams_per_s=%.0f bad=%d\n",
		       names[t], lat[t].median_us, lat[t].p90_us, lat[t].p99_us, lat[t].samples,
		       tput[t], bad[t]);
		free(acc[t].all);
	}
	for (int t = 1; t < N_TARGETS; t++)
		if (ports[t] > 0)
			printf("%-10s added_latency_us_median=%.1f added_latency_us_p99=%.1f "
			       "throughput_ratio_vs_direct=%.3f\n",
			       names[t], lat[t].median_us - lat[0].median_us, lat[t].p99_us - lat[0].p99_us,
			       tput[t] / tput[0]);
	hs_stop(lw_pid, 5000);
	if (lwb_pid > 0)
		hs_stop(lwb_pid, 5000);
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
