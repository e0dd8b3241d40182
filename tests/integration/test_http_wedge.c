/* Integration tests: no client can wedge the proxy or make it hold memory
 * for it (issue 11, second pass over its HTTP layer). Each test is a client
 * that misbehaves — never reads a finished answer, pipelines requests
 * without reading their answers, arrives past proxy.max_connections, keeps
 * sending after its answer, half-closes — against the real loopwarden
 * binary in front of a raw upstream run here (a thread per connection),
 * which answers with large streams and bodies that outgrow every socket
 * buffer on the way. Each asserts outcomes: the connection closed, the
 * metric counted, what the proxy took on bounded, others served. Every
 * wait is bounded; no assertion is about elapsed time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <yajl/yajl_tree.h>

#include "harness.h"

#define WAIT_MS 20000
#define MIB (1024 * 1024)
#define EVENT_TEXT 2000 /* bytes of content per streamed event */

/* ---- the raw upstream ---- */

static struct {
	int fd;
	int port;
	pthread_t thread;
	size_t stream_bytes;      /* content of a streamed answer, set before start */
	char *models;             /* the body of GET /v1/models */
	size_t models_len;
	atomic_int requests;      /* requests read */
	atomic_int models_served; /* GET /v1/models answered */
	atomic_int streams_done;  /* streamed answers sent whole, [DONE] included */
	atomic_int hold;          /* nonzero: a streamed answer waits after its first event */
} U = {.fd = -1};

static bool send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Reads one request (head + Content-Length body). Returns 0 and the
 * request line's path in <path> and whether the body asks for a stream,
 * or -1. */
static int up_read_request(int fd, char *path, size_t pathlen, bool *stream)
{
	char buf[1 << 16];
	size_t n = 0;
	const char *eoh = NULL;
	while (!eoh && n < sizeof(buf) - 1) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, WAIT_MS) != 1)
			return -1;
		ssize_t k = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
		if (k <= 0)
			return -1;
		n += (size_t)k;
		buf[n] = '\0';
		eoh = strstr(buf, "\r\n\r\n");
	}
	if (!eoh)
		return -1;
	size_t hl = (size_t)(eoh - buf) + 4;
	const char *sp = strchr(buf, ' ');
	const char *sp2 = sp ? strchr(sp + 1, ' ') : NULL;
	if (!sp2)
		return -1;
	snprintf(path, pathlen, "%.*s", (int)(sp2 - sp - 1), sp + 1);
	const char *cl = strcasestr(buf, "\r\nContent-Length:");
	size_t want = cl && cl < eoh ? strtoul(cl + 17, NULL, 10) : 0;
	size_t have = n - hl;
	*stream = memmem(buf + hl, have, "\"stream\":true", 13) != NULL;
	while (have < want) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, WAIT_MS) != 1)
			return -1;
		char more[1 << 16];
		ssize_t k = recv(fd, more, sizeof(more), 0);
		if (k <= 0)
			return -1;
		have += (size_t)k;
		if (memmem(more, (size_t)k, "\"stream\":true", 13))
			*stream = true;
	}
	return 0;
}

/* Text no guard takes for a loop: consonants, digits and spaces drawn from
 * a generator whose state runs on across events (nothing repeats). */
static void random_text(char *out, size_t n, uint64_t *state)
{
	static const char alphabet[] = "bcdfghjklmnpqrstvwxz0123456789      ";
	for (size_t i = 0; i < n; i++) {
		*state = *state * 6364136223846793005ull + 1442695040888963407ull;
		out[i] = alphabet[(*state >> 33) % (sizeof(alphabet) - 1)];
	}
}

/* A streamed chat answer of U.stream_bytes of content, then [DONE]. */
static void up_stream(int fd)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
	static const char pre[] = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
	                          "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"";
	static const char post[] = "\"},\"finish_reason\":null}]}\n\n";
	static const char tail[] = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
	                           "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
	                           "data: [DONE]\n\n";
	if (!send_all(fd, head, sizeof(head) - 1))
		return;
	char ev[sizeof(pre) + EVENT_TEXT + sizeof(post)];
	uint64_t state = (uint64_t)fd * 7919u + 1;
	for (size_t sent = 0; sent < U.stream_bytes; sent += EVENT_TEXT) {
		size_t n = 0;
		memcpy(ev, pre, sizeof(pre) - 1);
		n += sizeof(pre) - 1;
		random_text(ev + n, EVENT_TEXT, &state);
		n += EVENT_TEXT;
		memcpy(ev + n, post, sizeof(post) - 1);
		n += sizeof(post) - 1;
		if (!send_all(fd, ev, n))
			return;
		for (long end = now_ms() + WAIT_MS; sent == 0 && atomic_load(&U.hold) && now_ms() < end;)
			usleep(5000);
	}
	if (send_all(fd, tail, sizeof(tail) - 1))
		atomic_fetch_add(&U.streams_done, 1);
}

static void *up_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char path[256];
	bool stream = false;
	if (up_read_request(fd, path, sizeof(path), &stream) == 0) {
		atomic_fetch_add(&U.requests, 1);
		char head[256];
		if (strstr(path, "/chat/completions") && stream) {
			up_stream(fd);
		} else if (strcmp(path, "/v1/models") == 0) {
			snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			                             "Content-Length: %zu\r\n\r\n", U.models_len);
			if (send_all(fd, head, strlen(head)) && send_all(fd, U.models, U.models_len))
				atomic_fetch_add(&U.models_served, 1);
		} else {
			const char *body = "{\"status\":\"ok\"}";
			snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			                             "Content-Length: %zu\r\n\r\n", strlen(body));
			send_all(fd, head, strlen(head));
			send_all(fd, body, strlen(body));
		}
	}
	close(fd);
	return NULL;
}

static void *up_accept(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(U.fd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			return NULL; /* the listener was shut down */
		}
		pthread_t t;
		if (pthread_create(&t, NULL, up_conn, (void *)(intptr_t)fd) == 0)
			pthread_detach(t);
		else
			close(fd);
	}
}

/* A /v1/models body of <len> bytes: a JSON list padded with a long id. */
static char *models_body(size_t len)
{
	static const char pre[] = "{\"object\":\"list\",\"data\":[{\"id\":\"";
	static const char post[] = "\",\"object\":\"model\"}]}";
	char *b = malloc(len);
	if (!b)
		return NULL;
	memcpy(b, pre, sizeof(pre) - 1);
	memset(b + sizeof(pre) - 1, 'm', len - (sizeof(pre) - 1) - (sizeof(post) - 1));
	memcpy(b + len - (sizeof(post) - 1), post, sizeof(post) - 1);
	return b;
}

/* The most the kernel may buffer for one loopback connection we do not
 * read (the proxy's send buffer grows at most to tcp_wmem's maximum):
 * answers larger than this must wait in the proxy, where the tests look. */
static size_t kernel_send_max(void)
{
	size_t v[3] = {0, 0, 4 * MIB};
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
	if (f) {
		if (fscanf(f, "%zu %zu %zu", &v[0], &v[1], &v[2]) != 3)
			v[2] = 4 * MIB;
		fclose(f);
	}
	return v[2];
}

static int up_start(void)
{
	U.stream_bytes = kernel_send_max() + 4 * MIB;
	U.models_len = 1 * MIB;
	U.models = models_body(U.models_len);
	U.fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {0};
	socklen_t sl = sizeof(sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int one = 1;
	setsockopt(U.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (!U.models || U.fd < 0 || bind(U.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(U.fd, 128) != 0 || getsockname(U.fd, (struct sockaddr *)&sa, &sl) != 0)
		return -1;
	fcntl(U.fd, F_SETFD, FD_CLOEXEC);
	U.port = ntohs(sa.sin_port);
	return pthread_create(&U.thread, NULL, up_accept, NULL) == 0 ? 0 : -1;
}

static void up_stop(void)
{
	shutdown(U.fd, SHUT_RDWR);
	close(U.fd);
	pthread_join(U.thread, NULL);
	free(U.models);
}

/* ---- loopwarden instances ---- */

static struct {
	char dir[256];
	char wedge_log[300], calm_log[300];
	pid_t wedge_pid, calm_pid;
	int wedge_port, calm_port;
} T;

static int start_proxy(const char *log, pid_t *pid, const char *const *sets)
{
	char upstream[64];
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%d", U.port);
	char *argv[40] = {LW_BINARY_DIR "/loopwarden", "--listen", "127.0.0.1:0", "--upstream", upstream};
	int n = 5;
	for (; sets && *sets && n < 37; sets++) {
		argv[n++] = "--set";
		argv[n++] = (char *)*sets;
	}
	argv[n] = NULL;
	*pid = hs_spawn(argv, log);
	return (int)hs_wait_number(log, "listening on http://127.0.0.1:", WAIT_MS);
}

static int start_all(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	snprintf(T.dir, sizeof(T.dir), "/tmp/lw-wedge-test-XXXXXX");
	if (!mkdtemp(T.dir) || up_start() != 0)
		return -1;
	snprintf(T.wedge_log, sizeof(T.wedge_log), "%s/wedge.log", T.dir);
	snprintf(T.calm_log, sizeof(T.calm_log), "%s/calm.log", T.dir);
	/* wedge: short client deadlines; answers never paused for a slow
	 * client (the highwater is the largest allowed), so that what is
	 * tested here is the HTTP layer's own write deadline, not chat.c's */
	const char *wedge_sets[] = {"proxy.client_write_timeout_ms=300", "proxy.body_timeout_ms=300",
	                            "proxy.max_body_bytes=4096", "proxy.client_highwater_bytes=268435456",
	                            "guards.budget.max_output_bytes=0", "watchdog.first_token_timeout_ms=30000",
	                            "watchdog.idle_timeout_ms=30000", "proxy.quiet=true", NULL};
	T.wedge_port = start_proxy(T.wedge_log, &T.wedge_pid, wedge_sets);
	/* calm: the default deadlines, the same never-paused answers */
	const char *calm_sets[] = {"proxy.client_highwater_bytes=268435456", "guards.budget.max_output_bytes=0",
	                           "watchdog.first_token_timeout_ms=30000", "watchdog.idle_timeout_ms=30000",
	                           "proxy.quiet=true", NULL};
	T.calm_port = start_proxy(T.calm_log, &T.calm_pid, calm_sets);
	return T.wedge_port > 0 && T.calm_port > 0 ? 0 : -1;
}

static bool log_is_clean(const char *log)
{
	char *text = hs_read_file(log, NULL);
	bool bad = text && (strstr(text, "AddressSanitizer") || strstr(text, "runtime error:") ||
	                    strstr(text, "LeakSanitizer"));
	if (bad)
		fprintf(stderr, "sanitizer report in %s:\n%s\n", log, text);
	free(text);
	return !bad;
}

static int stop_all(void **state)
{
	(void)state;
	int a = hs_stop(T.wedge_pid, 5000);
	int b = hs_stop(T.calm_pid, 5000);
	up_stop();
	if (!log_is_clean(T.wedge_log) || !log_is_clean(T.calm_log))
		return -1;
	if (a != 0 || b != 0) {
		fprintf(stderr, "loopwarden exited with %d / %d on SIGTERM; logs in %s\n", a, b, T.dir);
		return -1;
	}
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- helpers ---- */

/* A gauge or counter from GET /metrics on <port>, or -1. */
static long metric(int port, const char *name)
{
	struct hs_resp r;
	if (hs_http(port, "GET", "/metrics", NULL, NULL, WAIT_MS, &r) != 0 || r.status != 200) {
		hs_resp_free(&r);
		return -1;
	}
	char needle[160];
	snprintf(needle, sizeof(needle), "\n%s ", name);
	const char *p = strstr(r.body, needle);
	long v = p ? strtol(p + strlen(needle), NULL, 10) : -1;
	hs_resp_free(&r);
	return v;
}

/* Waits (bounded) until metric <name> on <port> reaches <want>; returns
 * the last value seen. */
static long wait_metric(int port, const char *name, long want)
{
	long v = -1;
	for (long end = now_ms() + WAIT_MS; now_ms() < end; usleep(20000)) {
		v = metric(port, name);
		if (v >= want)
			break;
	}
	return v;
}

/* Waits (bounded) until metric <name> on <port> is at most <want> (a
 * gauge: connections closed here are seen closed a moment later); returns
 * the last value seen. */
static long wait_metric_at_most(int port, const char *name, long want)
{
	long v = -1;
	for (long end = now_ms() + WAIT_MS; now_ms() < end; usleep(20000)) {
		v = metric(port, name);
		if (v >= 0 && v <= want)
			break;
	}
	return v;
}

/* Waits (bounded) until the atomic <a> reaches <want>. */
static bool wait_atomic(atomic_int *a, int want)
{
	for (long end = now_ms() + WAIT_MS; now_ms() < end; usleep(10000))
		if (atomic_load(a) >= want)
			return true;
	return atomic_load(a) >= want;
}

/* A client socket that reads little: a 4 KiB receive buffer (set before
 * connecting, so the window it offers stays small). */
static int connect_small(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	int rcv = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	struct sockaddr_in sa = {0};
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads <fd> until the peer closes (FIN or reset) or WAIT_MS pass. Returns
 * the bytes (NUL-terminated, caller frees; NULL when <keep> is false);
 * *<got> is the count, *<reset> whether it ended with an error. */
static char *read_to_end(int fd, bool keep, size_t *got, bool *reset, bool *closed)
{
	size_t cap = keep ? 1 << 20 : 0, n = 0;
	char *buf = keep ? malloc(cap) : NULL;
	char sink[1 << 16];
	*reset = false;
	*closed = false;
	for (long end = now_ms() + WAIT_MS; now_ms() < end;) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 200) != 1)
			continue;
		if (keep && n + sizeof(sink) + 1 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		ssize_t k = recv(fd, keep ? buf + n : sink, sizeof(sink), 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			*reset = k < 0;
			*closed = true;
			break;
		}
		n += (size_t)k;
	}
	if (keep)
		buf[n] = '\0';
	*got = n;
	return buf;
}

/* A streaming chat request on a keep-alive (or, with <close>, a closing)
 * connection. */
static void send_stream_request(int fd, bool closing)
{
	static const char body[] = "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"tell me\"}]}";
	char req[512];
	int n = snprintf(req, sizeof(req), "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n%s"
	                                   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
	                 closing ? "Connection: close\r\n" : "", sizeof(body) - 1, body);
	assert_true(send_all(fd, req, (size_t)n));
}

static void check_health(int port)
{
	struct hs_resp r;
	assert_int_equal(hs_http(port, "GET", "/health", NULL, NULL, WAIT_MS, &r), 0);
	assert_int_equal(r.status, 200);
	hs_resp_free(&r);
}

/* ---- unsent output: the write deadline ---- */

/* Two clients ask for a streamed answer larger than every socket buffer on
 * the way and never read: the upstream sends it whole, the answer ends with
 * most of it queued in loopwarden, one client keeping the connection alive
 * and one asking for it to close. Before the fix no timer ran on a finished
 * answer: each connection sat there for ever with its output (MiBs) held,
 * and enough of them locked everyone out at max_connections. Now each is
 * reset once the client has taken no byte for proxy.client_write_timeout_ms
 * (300 ms here), counted in loopwarden_client_write_timeouts_total, and
 * others are served meanwhile. */
static void finished_stream_unread_is_reset_by_write_deadline(void **state)
{
	(void)state;
	const char *timeouts = "loopwarden_client_write_timeouts_total";
	long before = metric(T.wedge_port, timeouts);
	assert_true(before >= 0);
	int done = atomic_load(&U.streams_done);
	int fds[2];
	for (int i = 0; i < 2; i++) {
		fds[i] = connect_small(T.wedge_port);
		assert_true(fds[i] >= 0);
		send_stream_request(fds[i], i == 1);
	}
	if (!wait_atomic(&U.streams_done, done + 2))
		fail_msg("the upstream could not send its answers whole (%d of 2)", atomic_load(&U.streams_done) - done);
	check_health(T.wedge_port);
	long now = wait_metric(T.wedge_port, timeouts, before + 2);
	if (now != before + 2)
		fail_msg("%s went from %ld to %ld: finished answers nobody reads are still held", timeouts, before, now);
	assert_int_equal(metric(T.wedge_port, "loopwarden_active_streams"), 0);
	for (int i = 0; i < 2; i++) {
		size_t got;
		bool reset, closed;
		read_to_end(fds[i], false, &got, &reset, &closed);
		close(fds[i]);
		assert_true(closed);
		assert_true(got < U.stream_bytes); /* cut, not delivered whole */
	}
	/* only the /metrics connection of this check is open */
	assert_int_equal(wait_metric_at_most(T.wedge_port, "loopwarden_client_connections", 1), 1);
	check_health(T.wedge_port);
}

/* ---- pipelining ---- */

/* A client pipelines N requests for a 1 MiB answer each (GET /v1/models)
 * and reads nothing. Before the fix every request was answered in turn and
 * its answer queued: N MiB held for a client that does not read, and no
 * deadline (the idle timer only ran while reading). Now the next request is
 * read only once the previous answer has left loopwarden's buffers: the
 * requests answered stay within what the sockets can take (here fewer than
 * half of them), the connection is reset by the write deadline and counted,
 * and others are served. */
static void pipelined_requests_wait_for_their_reader(void **state)
{
	(void)state;
	const char *timeouts = "loopwarden_client_write_timeouts_total";
	/* N answers are several times what the kernel can buffer */
	int n_req = 2 * (int)(kernel_send_max() / MIB + 4) + 8;
	long before = metric(T.wedge_port, timeouts);
	int served = atomic_load(&U.models_served);
	int fd = connect_small(T.wedge_port);
	assert_true(fd >= 0);
	static const char one[] = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
	size_t len = (size_t)n_req * (sizeof(one) - 1);
	char *batch = malloc(len);
	assert_non_null(batch);
	for (int i = 0; i < n_req; i++)
		memcpy(batch + (size_t)i * (sizeof(one) - 1), one, sizeof(one) - 1);
	assert_true(send_all(fd, batch, len));
	free(batch);
	long now = wait_metric(T.wedge_port, timeouts, before + 1);
	int answered = atomic_load(&U.models_served) - served;
	if (now != before + 1)
		fail_msg("%s went from %ld to %ld; %d of %d pipelined answers were produced for a client "
		         "that reads none", timeouts, before, now, answered, n_req);
	if (answered >= n_req / 2)
		fail_msg("%d of %d pipelined requests were answered for a client that reads none", answered, n_req);
	size_t got;
	bool reset, closed;
	read_to_end(fd, false, &got, &reset, &closed);
	close(fd);
	assert_true(closed);
	assert_true(got < (size_t)n_req * U.models_len);
	check_health(T.wedge_port);
	assert_int_equal(wait_metric_at_most(T.wedge_port, "loopwarden_client_connections", 1), 1);
}

/* A well-behaved client pipelining the same requests and reading them gets
 * every answer, whole and in order (the rule above only waits for it). */
static void pipelined_requests_all_answered_for_a_reader(void **state)
{
	(void)state;
	enum { N = 6 };
	int fd = hs_connect(T.wedge_port);
	assert_true(fd >= 0);
	static const char one[] = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char last[] = "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	char batch[N * sizeof(last)];
	size_t len = 0;
	for (int i = 0; i < N - 1; i++) {
		memcpy(batch + len, one, sizeof(one) - 1);
		len += sizeof(one) - 1;
	}
	memcpy(batch + len, last, sizeof(last) - 1);
	len += sizeof(last) - 1;
	assert_true(send_all(fd, batch, len));
	size_t got;
	bool reset, closed;
	char *all = read_to_end(fd, true, &got, &reset, &closed);
	close(fd);
	assert_true(closed);
	assert_false(reset);
	/* N answers back to back, each with its whole body */
	const char *p = all, *end = all + got;
	for (int i = 0; i < N; i++) {
		assert_true(end - p > 13 && strncmp(p, "HTTP/1.1 200 ", 13) == 0);
		const char *eoh = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		assert_non_null(eoh);
		const char *cl = strcasestr(p, "\r\nContent-Length: ");
		assert_true(cl && cl < eoh);
		assert_int_equal(strtoul(cl + 18, NULL, 10), U.models_len);
		p = eoh + 4;
		assert_true((size_t)(end - p) >= U.models_len);
		assert_memory_equal(p, U.models, U.models_len);
		p += U.models_len;
	}
	assert_true(p == end);
	free(all);
}

/* While an answer is produced, input pipelined behind its request is read
 * a head's worth ahead at most: a client pushing 64 MiB behind a held
 * answer gets only what the socket buffers take (this was already so; the
 * test keeps it so). Then the garbage is refused and the connection closed. */
static void pipelined_input_during_an_answer_is_not_read_ahead(void **state)
{
	(void)state;
	atomic_store(&U.hold, 1);
	int done = atomic_load(&U.streams_done);
	int fd = hs_connect(T.calm_port);
	assert_true(fd >= 0);
	send_stream_request(fd, false);
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	enum { PUSH = 64 * MIB };
	static char junk[1 << 16];
	memset(junk, 'j', sizeof(junk));
	size_t pushed = 0;
	while (pushed < PUSH) {
		ssize_t k = send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
		if (k > 0) {
			pushed += (size_t)k;
			continue;
		}
		if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			break;
		/* full: wait a while for room; none means loopwarden stopped reading */
		struct pollfd p = {fd, POLLOUT, 0};
		if (poll(&p, 1, 500) != 1)
			break;
	}
	atomic_store(&U.hold, 0);
	fcntl(fd, F_SETFL, fl);
	if (pushed >= PUSH)
		fail_msg("loopwarden read %zu bytes pipelined behind an answer in progress", pushed);
	assert_true(wait_atomic(&U.streams_done, done + 1));
	size_t got;
	bool reset, closed;
	read_to_end(fd, false, &got, &reset, &closed);
	close(fd);
	assert_true(closed);
	check_health(T.calm_port);
}

/* ---- max_connections ---- */

/* With proxy.max_connections=2 held by two idle clients, a third one used
 * to be closed at accept with nothing on the wire (clients report a
 * network error). Now it reads a whole 503 with Retry-After and an OpenAI
 * error naming the key, then the close; each refusal is counted in
 * loopwarden_connections_refused_total. */
static void past_max_connections_gets_503_and_is_counted(void **state)
{
	(void)state;
	char log[300];
	snprintf(log, sizeof(log), "%s/maxconn.log", T.dir);
	const char *sets[] = {"proxy.max_connections=2", NULL};
	pid_t pid;
	int port = start_proxy(log, &pid, sets);
	assert_true(port > 0);
	int a = hs_connect(port), b = hs_connect(port);
	assert_true(a >= 0 && b >= 0);
	int c = hs_connect(port);
	assert_true(c >= 0);
	/* a request sent at once, as clients do, must not turn the 503 into a reset */
	static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
	send_all(c, req, sizeof(req) - 1);
	size_t got;
	bool reset, closed;
	char *out = read_to_end(c, true, &got, &reset, &closed);
	close(c);
	assert_true(closed);
	struct hs_resp r;
	if (hs_parse_response(out, got, &r) != 0)
		fail_msg("a client past max_connections read %zu bytes: '%.80s'", got, out);
	assert_int_equal(r.status, 503);
	assert_true(r.complete);
	assert_non_null(strstr(r.head, "\r\nRetry-After: 1\r\n"));
	assert_non_null(strstr(r.head, "\r\nConnection: close\r\n"));
	yajl_val v = yajl_tree_parse(r.body, NULL, 0);
	assert_non_null(v);
	const char *tp[] = {"error", "type", NULL}, *mp[] = {"error", "message", NULL};
	yajl_val type = yajl_tree_get(v, tp, yajl_t_string), msg = yajl_tree_get(v, mp, yajl_t_string);
	assert_non_null(type);
	assert_non_null(msg);
	const char *ts = YAJL_IS_STRING(type) ? type->u.string : "";
	const char *ms = YAJL_IS_STRING(msg) ? msg->u.string : "";
	assert_string_equal(ts, "unavailable_error");
	assert_non_null(strstr(ms, "proxy.max_connections (2)"));
	yajl_tree_free(v);
	hs_resp_free(&r);
	free(out);
	/* one slot free again: /metrics counts the refusal (and any of our
	 * own tries that came before loopwarden saw the close) */
	close(a);
	long refused = -1;
	int extra = 0;
	for (long end = now_ms() + WAIT_MS; now_ms() < end && refused < 0; ) {
		struct hs_resp m;
		assert_int_equal(hs_http(port, "GET", "/metrics", NULL, NULL, WAIT_MS, &m), 0);
		if (m.status == 503) {
			extra++;
			usleep(20000);
		} else {
			assert_int_equal(m.status, 200);
			static const char name[] = "\nloopwarden_connections_refused_total ";
			const char *p = strstr(m.body, name);
			assert_non_null(p);
			refused = strtol(p + sizeof(name) - 1, NULL, 10);
		}
		hs_resp_free(&m);
	}
	assert_int_equal(refused, 1 + extra);
	close(b);
	assert_int_equal(hs_stop(pid, 5000), 0);
	assert_true(log_is_clean(log));
}

/* ---- closing ---- */

/* After an answer that closes the connection loopwarden lingers, reading
 * and dropping what the client still sends so that the close does not
 * reset the answer away. The read timer restarted on every byte: a client
 * sending a byte every 50 ms held the connection for ever. Now lingering
 * ends within the body deadline (300 ms here): the connection is closed
 * and the client's next bytes are refused. */
static void lingering_close_is_bounded(void **state)
{
	(void)state;
	int fd = hs_connect(T.wedge_port);
	assert_true(fd >= 0);
	/* a body over proxy.max_body_bytes (4096): 413 before it is read */
	static const char head[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
	                           "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"x\":\"";
	assert_true(send_all(fd, head, sizeof(head) - 1));
	/* the answer, then the FIN of our side's shutdown */
	size_t got;
	bool reset, closed;
	char *out = read_to_end(fd, true, &got, &reset, &closed);
	assert_true(closed);
	assert_true(strncmp(out, "HTTP/1.1 413 ", 13) == 0);
	free(out);
	/* keep sending the body, a byte every 50 ms, until refused */
	bool refused = false;
	for (long end = now_ms() + WAIT_MS; !refused && now_ms() < end; usleep(50000)) {
		ssize_t k = send(fd, "a", 1, MSG_NOSIGNAL);
		refused = k < 0 && (errno == EPIPE || errno == ECONNRESET);
	}
	close(fd);
	if (!refused)
		fail_msg("a client still sending after its answer held the connection");
	check_health(T.wedge_port);
}

/* A client that half-closes (shuts its sending side, as `nc -N` does) once
 * its streamed answer has ended in loopwarden but before it has read it:
 * loopwarden took the end of input for the client gone and dropped the
 * rest of the answer. Now it sends it all, then closes; for a connection
 * asking to close and for a keep-alive one. */
static void half_closed_client_gets_its_whole_answer(void **state)
{
	(void)state;
	for (int close_it = 0; close_it < 2; close_it++) {
		int done = atomic_load(&U.streams_done);
		int fd = connect_small(T.calm_port);
		assert_true(fd >= 0);
		send_stream_request(fd, close_it);
		assert_true(wait_atomic(&U.streams_done, done + 1));
		/* the answer has ended in loopwarden, most of it unsent */
		long active = -1;
		for (long end = now_ms() + WAIT_MS; now_ms() < end && active != 0; usleep(20000))
			active = metric(T.calm_port, "loopwarden_active_streams");
		assert_int_equal(active, 0);
		shutdown(fd, SHUT_WR);
		size_t got;
		bool reset, closed;
		char *all = read_to_end(fd, true, &got, &reset, &closed);
		close(fd);
		assert_true(closed);
		struct hs_resp r;
		assert_int_equal(hs_parse_response(all, got, &r), 0);
		if (!r.complete)
			fail_msg("a half-closed client got %zu bytes, not its whole answer (%s)", got,
			         close_it ? "Connection: close" : "keep-alive");
		assert_int_equal(r.status, 200);
		assert_true(r.body_len > U.stream_bytes);
		assert_true(strcmp(r.body + r.body_len - 14, "data: [DONE]\n\n") == 0);
		hs_resp_free(&r);
		free(all);
	}
}

/* Expect: 100-continue and then no body: the 100 goes out, and the body
 * deadline answers 408 and closes (this was already so; kept so). */
static void expect_continue_without_body_gets_408(void **state)
{
	(void)state;
	int fd = hs_connect(T.wedge_port);
	assert_true(fd >= 0);
	static const char head[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
	                           "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n";
	assert_true(send_all(fd, head, sizeof(head) - 1));
	size_t got;
	bool reset, closed;
	char *out = read_to_end(fd, true, &got, &reset, &closed);
	close(fd);
	assert_true(closed);
	assert_true(strncmp(out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 408 ", 38) == 0);
	assert_non_null(strstr(out, "proxy.body_timeout_ms"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(finished_stream_unread_is_reset_by_write_deadline),
		cmocka_unit_test(pipelined_requests_wait_for_their_reader),
		cmocka_unit_test(pipelined_requests_all_answered_for_a_reader),
		cmocka_unit_test(pipelined_input_during_an_answer_is_not_read_ahead),
		cmocka_unit_test(past_max_connections_gets_503_and_is_counted),
		cmocka_unit_test(lingering_close_is_bounded),
		cmocka_unit_test(half_closed_client_gets_its_whole_answer),
		cmocka_unit_test(expect_continue_without_body_gets_408),
	};
	return cmocka_run_group_tests(tests, start_all, stop_all);
}
