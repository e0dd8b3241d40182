/* Helpers for tests that run real processes on loopback: spawn and stop a
 * program with its output in a log file, wait (bounded) for a line in that
 * log, and a small blocking HTTP/1.1 client with a deadline. */
#ifndef LW_TESTS_HARNESS_H
#define LW_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Starts <argv> with stdout and stderr appended to <log>. Returns the pid or -1. */
pid_t hs_spawn(char *const argv[], const char *log);
/* SIGTERM, then SIGKILL after <grace_ms>. Returns the exit status (128+sig if killed). */
int hs_stop(pid_t pid, int grace_ms);
/* Waits up to <timeout_ms> for "<needle>NUMBER" in <log>; returns NUMBER or -1. */
long hs_wait_number(const char *log, const char *needle, int timeout_ms);
/* Reads a whole file (NUL-terminated, caller frees) or NULL. */
char *hs_read_file(const char *path, size_t *len);

struct hs_resp {
	int status;
	char *head;  /* status line + headers */
	char *body;  /* de-chunked */
	size_t body_len;
	bool complete; /* the response ended properly (length or last chunk) */
};
void hs_resp_free(struct hs_resp *r);

/* One request on a new connection ("Connection: close"). Returns 0, or -1 on
 * a connect error or when <timeout_ms> passed (what arrived is kept). */
int hs_http(int port, const char *method, const char *path, const char *body,
            const char *extra_headers, int timeout_ms, struct hs_resp *r);
/* Decodes a raw response (head + body, chunked or not) into <r>. */
int hs_parse_response(const char *raw, size_t len, struct hs_resp *r);
/* A connected socket to 127.0.0.1:<port>, or -1. */
int hs_connect(int port);
/* Builds a request; caller frees. */
char *hs_request_text(const char *method, const char *path, const char *body,
                      const char *extra_headers, size_t *len);

/* Starts nginx (/usr/sbin/nginx) in <dir> as an unbuffered relay
 * (proxy_buffering off, HTTP/1.1 upstream) in front of 127.0.0.1:<up_port>,
 * on a free loopback port; with <cert> and <key> (PEM paths, else NULL) it
 * listens with TLS. Returns the port once it accepts, or -1 when nginx is not
 * installed or did not start within 5 s. <*pid> is for hs_stop. */
int hs_start_nginx(const char *dir, int up_port, const char *cert, const char *key, pid_t *pid);

/* The data fields of an SSE body, in order (comments skipped). <comments>
 * (may be NULL) counts comment lines. Caller frees with hs_sse_free. */
char **hs_sse_data(const char *body, size_t *n, size_t *comments);
void hs_sse_free(char **d, size_t n);

#endif
