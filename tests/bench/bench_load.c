/* bench_load: loopwarden under many concurrent streams, side by side with a
 * direct connection to the same scripted upstream (lw-upstream, a separate
 * process). Prints, for each target:
 *   - N concurrent streams (1000 and 2000 by default): how many clients got
 *     exactly the bytes a direct client gets (the de-chunked SSE body), the
 *     time until the last one ended, and loopwarden's peak RSS (VmHWM) and
 *     VmPeak (a fresh loopwarden per phase, so each peak is that phase's);
 *   - R rounds of M streams (20 x 500): loopwarden's RSS after each round,
 *     once it has no stream left, and the verdict "flat within 1.5x of
 *     round 2: yes/no".
 * Raises its own RLIMIT_NOFILE to the hard limit; the children inherit it.
 * A benchmark, not a test: figures are printed, never asserted, except in
 * --smoke mode (a few streams, byte-exactness only), which ctest runs and
 * which exits 1 when a client got other bytes than a direct one.
 *   bench_load [--concurrent N[,N…]] [--rounds R] [--round-streams M]
 *              [--delay-ms D] [--scenario NAME] [--loopwarden BIN]
 *              [--lw-env NAME=VALUE]… [--smoke] */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"

#define MAX_PHASES 8
#define MAX_ENV 8
#define MAX_ROUNDS 100
#define STALL_MS 60000 /* no byte from any stream for this long: give up the phase */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#define REQ "{\"model\":\"%s\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"bench\"}]}"

/* Like hs_spawn, with NAME=VALUE pairs added to the child's environment. */
static pid_t spawn_env(char *const argv[], const char *log, char *const env[], int n_env)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		for (int i = 0; i < n_env; i++)
			putenv(env[i]);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* A field of /proc/<pid>/status in KiB, or -1. */
static long proc_kib(pid_t pid, const char *field)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	char *s = hs_read_file(path, NULL);
	const char *p = s ? strstr(s, field) : NULL;
	long v = p ? strtol(p + strlen(field), NULL, 10) : -1;
	free(s);
	return v;
}

/* CPU seconds (user + system) <pid> has used so far, or -1. */
static double proc_cpu_s(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	char *s = hs_read_file(path, NULL);
	const char *p = s ? strrchr(s, ')') : NULL; /* the name may hold spaces */
	double v = -1;
	unsigned long ut, st;
	if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
		v = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	free(s);
	return v;
}

static long metric(int port, const char *name)
{
	struct hs_resp r;
	long v = -1;
	if (hs_http(port, "GET", "/metrics", NULL, NULL, 10000, &r) == 0 && r.body) {
		char needle[128];
		snprintf(needle, sizeof(needle), "\n%s ", name);
		const char *p = strstr(r.body, needle);
		if (p)
			v = strtol(p + strlen(needle), NULL, 10);
	}
	hs_resp_free(&r);
	return v;
}

static void control(int up_port, const char *q)
{
	struct hs_resp r;
	char path[256];
	snprintf(path, sizeof(path), "/_control?%s", q);
	if (hs_http(up_port, "GET", path, NULL, NULL, 10000, &r) != 0 || r.status != 200) {
		fprintf(stderr, "bench_load: upstream control failed\n");
		exit(1);
	}
	hs_resp_free(&r);
}

struct conn {
	int fd;
	char *buf;
	size_t len, cap;
	bool open;
};

struct phase_result {
	int streams;
	int exact;       /* clients whose body equals the reference byte for byte */
	int complete;    /* clients whose response ended properly */
	double secs;     /* first connect to last end */
	double setup;    /* opening every connection and sending its request */
	long peak_active; /* most active_streams loopwarden reported (-1: not sampled) */
	bool stalled;
};

/* Runs <n> concurrent streams against <port>: every connection is opened and
 * its request sent before any is read, then all are read to the end. The
 * de-chunked bodies are compared with *<ref> (set from the first complete
 * body when NULL). <metrics_port> > 0: sample loopwarden's active_streams. */
static struct phase_result run_streams(int port, int n, const char *model, char **ref,
                                       size_t *ref_len, int metrics_port)
{
	struct phase_result res = {n, 0, 0, 0, 0, -1, false};
	char body[256];
	snprintf(body, sizeof(body), REQ, model);
	size_t rlen;
	char *req = hs_request_text("POST", "/v1/chat/completions", body, NULL, &rlen);
	struct conn *c = calloc((size_t)n, sizeof(*c));
	int ep = epoll_create1(0);
	if (!req || !c || ep < 0) {
		fprintf(stderr, "bench_load: out of memory or epoll\n");
		exit(1);
	}
	uint64_t t0 = now_ms();
	int left = 0;
	for (int i = 0; i < n; i++) {
		c[i].fd = hs_connect(port);
		if (c[i].fd < 0 || send(c[i].fd, req, rlen, MSG_NOSIGNAL) != (ssize_t)rlen) {
			fprintf(stderr, "bench_load: connection %d: %s (raise the open-files limit?)\n", i,
			        strerror(errno));
			if (c[i].fd >= 0)
				close(c[i].fd);
			c[i].fd = -1;
			continue;
		}
		fcntl(c[i].fd, F_SETFL, fcntl(c[i].fd, F_GETFL) | O_NONBLOCK);
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
		epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
		c[i].open = true;
		c[i].cap = 16384;
		c[i].buf = malloc(c[i].cap);
		left++;
	}
	free(req);
	res.setup = (double)(now_ms() - t0) / 1000.0;
	struct epoll_event evs[256];
	char tmp[65536];
	uint64_t last_byte = now_ms(), last_sample = 0;
	while (left > 0) {
		if (metrics_port > 0 && now_ms() - last_sample >= 100) {
			long a = metric(metrics_port, "loopwarden_active_streams");
			if (a > res.peak_active)
				res.peak_active = a;
			last_sample = now_ms();
		}
		int k = epoll_wait(ep, evs, 256, 100);
		if (k < 0 && errno != EINTR)
			break;
		if (k <= 0) {
			if (now_ms() - last_byte > STALL_MS) {
				res.stalled = true;
				break;
			}
			continue;
		}
		last_byte = now_ms();
		for (int j = 0; j < k; j++) {
			struct conn *x = &c[evs[j].data.u32];
			for (;;) {
				ssize_t got = recv(x->fd, tmp, sizeof(tmp), 0);
				if (got > 0) {
					if (x->len + (size_t)got + 1 > x->cap) {
						while (x->len + (size_t)got + 1 > x->cap)
							x->cap *= 2;
						char *nb = realloc(x->buf, x->cap);
						if (!nb) {
							fprintf(stderr, "bench_load: out of memory\n");
							exit(1);
						}
						x->buf = nb;
					}
					memcpy(x->buf + x->len, tmp, (size_t)got);
					x->len += (size_t)got;
					continue;
				}
				if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
					break;
				if (got < 0 && errno == EINTR)
					continue;
				epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
				close(x->fd);
				x->fd = -1;
				x->open = false;
				left--;
				break;
			}
		}
	}
	res.secs = (double)(now_ms() - t0) / 1000.0;
	for (int i = 0; i < n; i++) {
		if (c[i].open)
			close(c[i].fd);
		if (!c[i].buf)
			continue;
		struct hs_resp r;
		if (hs_parse_response(c[i].buf, c[i].len, &r) == 0 && r.status == 200 && r.complete) {
			res.complete++;
			if (!*ref) {
				*ref = malloc(r.body_len + 1);
				memcpy(*ref, r.body, r.body_len + 1);
				*ref_len = r.body_len;
			}
			if (r.body_len == *ref_len && memcmp(r.body, *ref, *ref_len) == 0)
				res.exact++;
		}
		hs_resp_free(&r);
		free(c[i].buf);
	}
	free(c);
	close(ep);
	return res;
}

struct lw {
	pid_t pid;
	int port;
};

static struct lw start_loopwarden(const char *bin, const char *dir, int up_port, char *const env[],
                                  int n_env, int max_streams)
{
	static int seq;
	char log[300], upstream[64], ms[64], mc[64];
	snprintf(log, sizeof(log), "%s/loopwarden-%d.log", dir, ++seq);
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%d", up_port);
	snprintf(ms, sizeof(ms), "proxy.max_streams=%d", max_streams + 64);
	snprintf(mc, sizeof(mc), "proxy.max_connections=%d", 2 * max_streams + 64);
	char *argv[] = {(char *)bin, "--listen", "127.0.0.1:0", "--upstream", upstream, "--quiet",
	                "--set", ms, "--set", mc, NULL};
	struct lw l = {spawn_env(argv, log, env, n_env), -1};
	l.port = (int)hs_wait_number(log, "listening on http://127.0.0.1:", 20000);
	if (l.port <= 0) {
		fprintf(stderr, "bench_load: %s did not start (%s)\n", bin, log);
		exit(1);
	}
	return l;
}

/* Waits (bounded) until loopwarden has no stream and no client but us. */
static void wait_idle(int port)
{
	for (int i = 0; i < 500; i++) {
		if (metric(port, "loopwarden_active_streams") == 0 &&
		    metric(port, "loopwarden_client_connections") <= 1)
			return;
		usleep(20000);
	}
	fprintf(stderr, "bench_load: loopwarden still has streams or connections after 10 s\n");
}

static void raise_nofile(int need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		fprintf(stderr, "bench_load: cannot raise RLIMIT_NOFILE: %s\n", strerror(errno));
	getrlimit(RLIMIT_NOFILE, &rl);
	printf("# open files: limit %llu (this process, lw-upstream and loopwarden each need about %d)\n",
	       (unsigned long long)rl.rlim_cur, need);
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)need)
		printf("# warning: the open-files limit is below what the largest phase needs\n");
}

static double mib(long kib)
{
	return kib < 0 ? -1.0 : (double)kib / 1024.0;
}

int main(int argc, char **argv)
{
	int conc[MAX_PHASES] = {1000, 2000}, n_conc = 2;
	int rounds = 20, round_streams = 500, delay_ms = 100;
	bool smoke = false;
	const char *scenario = "px-healthy-tools";
	const char *lw_bin = LW_BINARY_DIR "/loopwarden";
	char *env[MAX_ENV];
	int n_env = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--smoke") == 0) {
			smoke = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "bench_load: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--concurrent") == 0) {
			/* "0" or "none": only the rounds */
			n_conc = 0;
			for (char *s = (char *)v; *s && n_conc < MAX_PHASES;) {
				char *e;
				long k = strtol(s, &e, 10);
				if (e == s)
					break;
				if (k > 0)
					conc[n_conc++] = (int)k;
				s = *e == ',' ? e + 1 : e;
			}
		} else if (strcmp(a, "--rounds") == 0)
			rounds = atoi(v);
		else if (strcmp(a, "--round-streams") == 0)
			round_streams = atoi(v);
		else if (strcmp(a, "--delay-ms") == 0)
			delay_ms = atoi(v);
		else if (strcmp(a, "--scenario") == 0)
			scenario = v;
		else if (strcmp(a, "--loopwarden") == 0)
			lw_bin = v;
		else if (strcmp(a, "--lw-env") == 0 && n_env < MAX_ENV)
			env[n_env++] = (char *)v;
		else {
			fprintf(stderr, "bench_load: unknown argument '%s'\n", a);
			return 2;
		}
	}
	if (smoke) {
		conc[0] = 50;
		conc[1] = 100;
		n_conc = 2;
		rounds = 3;
		round_streams = 40;
		delay_ms = 5;
	}
	if (rounds > MAX_ROUNDS)
		rounds = MAX_ROUNDS;
	int most = round_streams;
	for (int i = 0; i < n_conc; i++)
		if (conc[i] > most)
			most = conc[i];
	signal(SIGPIPE, SIG_IGN);
	raise_nofile(2 * most + 64);
	char dir[] = "/tmp/lw-bench-load-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	char up_log[300];
	snprintf(up_log, sizeof(up_log), "%s/upstream.log", dir);
	char *up_argv[] = {LW_BINARY_DIR "/lw-upstream", "--data", LW_SOURCE_DIR "/tests/integration/data",
	                   "--listen", "0", NULL};
	pid_t up_pid = hs_spawn(up_argv, up_log);
	int up_port = (int)hs_wait_number(up_log, "listening on 127.0.0.1:", 20000);
	if (up_port <= 0) {
		fprintf(stderr, "bench_load: lw-upstream did not start (%s)\n", up_log);
		return 1;
	}
	char q[128];
	snprintf(q, sizeof(q), "scenario=%s&delay_ms=%d", scenario, delay_ms);
	control(up_port, q);
	printf("# bench_load: scenario %s, upstream %d ms between chunks, every stream opened "
	       "before any is read%s\n", scenario, delay_ms, smoke ? " (smoke)" : "");
	for (int i = 0; i < n_env; i++)
		printf("# loopwarden environment: %s\n", env[i]);
	char *ref = NULL;
	size_t ref_len = 0;
	int failures = 0;
	for (int p = 0; p < n_conc; p++) {
		int n = conc[p];
		control(up_port, q); /* records start over (the upstream keeps 4096) */
		struct phase_result d = run_streams(up_port, n, scenario, &ref, &ref_len, 0);
		struct lw l = start_loopwarden(lw_bin, dir, up_port, env, n_env, n);
		struct phase_result w = run_streams(l.port, n, scenario, &ref, &ref_len, l.port);
		wait_idle(l.port);
		long hwm = proc_kib(l.pid, "VmHWM:"), peak = proc_kib(l.pid, "VmPeak:");
		long rss = proc_kib(l.pid, "VmRSS:");
		double cpu = proc_cpu_s(l.pid);
		int st = hs_stop(l.pid, 10000);
		printf("concurrent=%d  direct: byte_exact=%d/%d time_s=%.2f (connect %.2f)%s  |  loopwarden: "
		       "byte_exact=%d/%d time_s=%.2f (connect %.2f) cpu_s=%.2f peak_active_streams=%ld "
		       "peak_rss_mib=%.1f vm_peak_mib=%.1f rss_after_mib=%.1f exit=%d%s\n",
		       n, d.exact, n, d.secs, d.setup, d.stalled ? " STALLED" : "", w.exact, n, w.secs,
		       w.setup, cpu, w.peak_active, mib(hwm), mib(peak), mib(rss), st,
		       w.stalled ? " STALLED" : "");
		fflush(stdout);
		if (d.exact != n || w.exact != n || st != 0)
			failures++;
	}
	if (rounds > 0) {
		control(up_port, q);
		struct lw l = start_loopwarden(lw_bin, dir, up_port, env, n_env, round_streams);
		long rss[MAX_ROUNDS];
		int exact = 0;
		printf("rounds=%d x %d streams: loopwarden rss_mib after each round (start %.1f):", rounds,
		       round_streams, mib(proc_kib(l.pid, "VmRSS:")));
		for (int r = 0; r < rounds; r++) {
			control(up_port, q);
			struct phase_result w = run_streams(l.port, round_streams, scenario, &ref, &ref_len, 0);
			exact += w.exact;
			wait_idle(l.port);
			rss[r] = proc_kib(l.pid, "VmRSS:");
			printf(" %.1f", mib(rss[r]));
			fflush(stdout);
		}
		long hwm = proc_kib(l.pid, "VmHWM:"), peak = proc_kib(l.pid, "VmPeak:");
		double cpu = proc_cpu_s(l.pid);
		int st = hs_stop(l.pid, 10000);
		printf("\nrounds: byte_exact=%d/%d cpu_s=%.2f peak_rss_mib=%.1f vm_peak_mib=%.1f exit=%d\n",
		       exact, rounds * round_streams, cpu, mib(hwm), mib(peak), st);
		if (rounds >= 2) {
			long most_rss = 0;
			for (int r = 1; r < rounds; r++)
				if (rss[r] > most_rss)
					most_rss = rss[r];
			printf("verdict: flat within 1.5x of round 2: %s (largest after round 2: %.1f MiB, "
			       "%.2fx round 2)\n", (double)most_rss <= 1.5 * (double)rss[1] ? "yes" : "no",
			       mib(most_rss), rss[1] > 0 ? (double)most_rss / (double)rss[1] : 0.0);
		}
		if (exact != rounds * round_streams || st != 0)
			failures++;
	}
	printf("reference answer: %zu bytes\n", ref_len);
	free(ref);
	hs_stop(up_pid, 5000);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		failures++;
	/* Only the byte-exactness and clean exits decide the status (--smoke
	 * under ctest); the figures are for reading. */
	return failures ? 1 : 0;
}
