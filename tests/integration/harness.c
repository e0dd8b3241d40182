/* Test harness: processes, logs and a blocking HTTP client. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

pid_t hs_spawn(char *const argv[], const char *log)
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
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int hs_stop(pid_t pid, int grace_ms)
{
	int st = 0;
	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	long end = now_ms() + grace_ms;
	while (now_ms() < end) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return 128 + SIGKILL;
}

char *hs_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	size_t k;
	while (buf && (k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += k;
		if (cap - n - 1 == 0) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf)
		buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

long hs_wait_number(const char *log, const char *needle, int timeout_ms)
{
	long end = now_ms() + timeout_ms;
	do {
		char *t = hs_read_file(log, NULL);
		char *p = t ? strstr(t, needle) : NULL;
		if (p) {
			long v = strtol(p + strlen(needle), NULL, 10);
			free(t);
			return v;
		}
		free(t);
		usleep(20000);
	} while (now_ms() < end);
	return -1;
}

void hs_resp_free(struct hs_resp *r)
{
	free(r->head);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

int hs_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
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

char *hs_request_text(const char *method, const char *path, const char *body,
                      const char *extra_headers, size_t *len)
{
	size_t bl = body ? strlen(body) : 0;
	size_t cap = bl + strlen(path) + (extra_headers ? strlen(extra_headers) : 0) + 256;
	char *req = malloc(cap);
	if (!req)
		return NULL;
	int n = snprintf(req, cap,
	                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
	                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
	                 method, path, extra_headers ? extra_headers : "", bl);
	if (bl)
		memcpy(req + n, body, bl);
	*len = (size_t)n + bl;
	return req;
}

int hs_parse_response(const char *raw, size_t len, struct hs_resp *r)
{
	memset(r, 0, sizeof(*r));
	const char *eoh = memmem(raw, len, "\r\n\r\n", 4);
	if (!eoh)
		return -1;
	size_t hl = (size_t)(eoh - raw) + 4;
	r->head = strndup(raw, hl);
	r->status = (int)strtol(raw + 9, NULL, 10);
	const char *b = raw + hl;
	size_t bl = len - hl;
	r->body = malloc(bl + 1);
	if (!r->body)
		return -1;
	if (strcasestr(r->head, "transfer-encoding: chunked")) {
		size_t o = 0, w = 0;
		for (;;) {
			const char *eol = memmem(b + o, bl - o, "\r\n", 2);
			if (!eol)
				break;
			size_t n = strtoul(b + o, NULL, 16);
			o = (size_t)(eol - b) + 2;
			if (n == 0) {
				r->complete = true;
				break;
			}
			if (o + n > bl)
				n = bl - o;
			memcpy(r->body + w, b + o, n);
			w += n;
			o += n + 2;
			if (o > bl)
				break;
		}
		r->body_len = w;
	} else {
		memcpy(r->body, b, bl);
		r->body_len = bl;
		const char *cl = strcasestr(r->head, "content-length:");
		r->complete = cl && strtoul(cl + 15, NULL, 10) == bl;
	}
	r->body[r->body_len] = '\0';
	return 0;
}

int hs_http(int port, const char *method, const char *path, const char *body,
            const char *extra_headers, int timeout_ms, struct hs_resp *r)
{
	memset(r, 0, sizeof(*r));
	int fd = hs_connect(port);
	if (fd < 0)
		return -1;
	size_t len;
	char *req = hs_request_text(method, path, body, extra_headers, &len);
	size_t off = 0;
	long end = now_ms() + timeout_ms;
	int rc = -1;
	size_t cap = 65536, n = 0;
	char *raw = malloc(cap);
	while (req && raw && off < len) {
		ssize_t k = send(fd, req + off, len - off, MSG_NOSIGNAL);
		if (k <= 0)
			goto out;
		off += (size_t)k;
	}
	for (;;) {
		long left = end - now_ms();
		if (left <= 0)
			break;
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, (int)left) <= 0)
			break;
		if (n + 4096 > cap) {
			char *nr = realloc(raw, cap * 2);
			if (!nr)
				break;
			raw = nr;
			cap *= 2;
		}
		ssize_t k = recv(fd, raw + n, cap - n, 0);
		if (k <= 0) {
			rc = 0;
			break;
		}
		n += (size_t)k;
	}
	if (hs_parse_response(raw, n, r) != 0)
		rc = -1;
out:
	free(req);
	free(raw);
	close(fd);
	return rc;
}

char **hs_sse_data(const char *body, size_t *n, size_t *comments)
{
	size_t cap = 64;
	char **d = malloc(cap * sizeof(char *));
	*n = 0;
	if (comments)
		*comments = 0;
	const char *p = body;
	while (d && *p) {
		const char *end = strstr(p, "\n\n");
		size_t el = end ? (size_t)(end - p) : strlen(p);
		if (el >= 6 && strncmp(p, "data: ", 6) == 0) {
			if (*n == cap) {
				char **nd = realloc(d, cap * 2 * sizeof(char *));
				if (!nd)
					break;
				d = nd;
				cap *= 2;
			}
			d[(*n)++] = strndup(p + 6, el - 6);
		} else if (el > 0 && p[0] == ':' && comments) {
			(*comments)++;
		}
		if (!end)
			break;
		p = end + 2;
	}
	return d;
}

void hs_sse_free(char **d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(d[i]);
	free(d);
}

/* A free loopback port: bind 0, read it, close it (the caller hands it on). */
static int free_port(void)
{
	struct sockaddr_in sa = {0};
	socklen_t sl = sizeof(sa);
	int port = -1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(0x7f000001);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

int hs_start_nginx(const char *dir, int up_port, const char *cert, const char *key, pid_t *pid)
{
	const char *nginx = "/usr/sbin/nginx";
	char conf[512], log[512], tls[1200] = "";
	int port = free_port();

	if (access(nginx, X_OK) != 0 || port < 0)
		return -1;
	if (cert && key)
		snprintf(tls, sizeof(tls), " ssl;\n  ssl_certificate %s;\n  ssl_certificate_key %s", cert, key);
	snprintf(conf, sizeof(conf), "%s/nginx-%d.conf", dir, port);
	snprintf(log, sizeof(log), "%s/nginx-%d.log", dir, port);
	FILE *f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f,
	        "worker_processes 1;\ndaemon off;\nmaster_process off;\npid %s/nginx-%d.pid;\n"
	        "error_log %s/nginx-%d-error.log;\nevents { worker_connections 4096; }\n"
	        "http {\n access_log off;\n client_body_temp_path %s/ngx-body;\n proxy_temp_path %s/ngx-proxy;\n"
	        " fastcgi_temp_path %s/ngx-fcgi;\n uwsgi_temp_path %s/ngx-uwsgi;\n scgi_temp_path %s/ngx-scgi;\n"
	        " upstream up { server 127.0.0.1:%d; }\n"
	        " server {\n  listen 127.0.0.1:%d%s;\n  location / {\n   proxy_pass http://up;\n"
	        "   proxy_buffering off;\n   proxy_http_version 1.1;\n  }\n }\n}\n",
	        dir, port, dir, port, dir, dir, dir, dir, dir, up_port, port, tls);
	fclose(f);
	char *argv[] = {(char *)nginx, "-p", (char *)dir, "-c", conf, NULL};
	*pid = hs_spawn(argv, log);
	if (*pid < 0)
		return -1;
	for (int i = 0; i < 250; i++) { /* bounded: 5 s */
		int fd = hs_connect(port);
		if (fd >= 0) {
			close(fd);
			return port;
		}
		usleep(20000);
	}
	hs_stop(*pid, 2000);
	return -1;
}
