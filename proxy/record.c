/* Writes request/stream recordings for loopwarden-audit. */
#include "proxy/record.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <event2/buffer.h>

#include "proxy/emit.h"

struct px_record {
	char path[1200];
	FILE *stream;
};

static int write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t n = fwrite(data, 1, len, f);
	int rc = fclose(f);
	return (n == len && rc == 0) ? 0 : -1;
}

struct px_record *px_record_open(const char *dir, uint64_t req_id, bool stream,
                                 const char *body, size_t len, char *err, size_t errlen)
{
	struct px_record *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	char stamp[32];
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "record dir '%s': %s", dir, strerror(errno));
		goto fail;
	}
	int n = snprintf(r->path, sizeof(r->path), "%s/%s-%ld-%06" PRIu64, dir, stamp, (long)getpid(), req_id);
	if (n < 0 || (size_t)n >= sizeof(r->path) - 32) {
		snprintf(err, errlen, "record dir '%s': path too long", dir);
		goto fail;
	}
	if (mkdir(r->path, 0755) != 0) {
		snprintf(err, errlen, "record dir '%s': %s", r->path, strerror(errno));
		goto fail;
	}
	char file[1300];
	snprintf(file, sizeof(file), "%s/request.json", r->path);
	if (write_file(file, body, len) != 0) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		goto fail;
	}
	snprintf(file, sizeof(file), "%s/%s", r->path, stream ? "stream.sse" : "response.json");
	r->stream = fopen(file, "wb");
	if (!r->stream) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		goto fail;
	}
	return r;
fail:
	free(r);
	return NULL;
}

void px_record_write(struct px_record *r, const char *data, size_t len)
{
	if (r && r->stream)
		fwrite(data, 1, len, r->stream);
}

static void close_as(struct px_record *r, const char *guard, const char *detail,
                     const char *error, const char *by);

void px_record_close(struct px_record *r, const char *guard, const char *detail,
                     const char *error)
{
	close_as(r, guard, detail, error, NULL);
}

int px_record_answered(const char *dir, uint64_t req_id, bool stream, const char *body,
                       size_t len, const char *answer, size_t answer_len, const char *guard,
                       const char *detail, const char *by, char *err, size_t errlen)
{
	struct px_record *r = px_record_open(dir, req_id, stream, body, len, err, errlen);

	if (!r)
		return -1;
	px_record_write(r, answer, answer_len);
	close_as(r, guard, detail, NULL, by);
	return 0;
}

static void close_as(struct px_record *r, const char *guard, const char *detail,
                     const char *error, const char *by)
{
	if (!r)
		return;
	if (r->stream)
		fclose(r->stream);
	char file[1300];
	snprintf(file, sizeof(file), "%s/outcome.json", r->path);
	/* the strings go through px_json_string like all JSON we write: an
	 * upstream's error text may hold anything */
	struct evbuffer *b = evbuffer_new();
	if (b) {
		evbuffer_add_printf(b, "{\"trip\":%s", guard ? "true" : "false");
		if (guard) {
			evbuffer_add_printf(b, ",\"guard\":");
			px_json_string(b, guard, strlen(guard));
			evbuffer_add_printf(b, ",\"detail\":");
			px_json_string(b, detail ? detail : "", detail ? strlen(detail) : 0);
		}
		if (error) {
			evbuffer_add_printf(b, ",\"error\":");
			px_json_string(b, error, strlen(error));
		}
		if (by) {
			evbuffer_add_printf(b, ",\"answered_by\":");
			px_json_string(b, by, strlen(by));
		}
		evbuffer_add(b, "}\n", 2);
		size_t n = evbuffer_get_length(b);
		(void)write_file(file, (const char *)evbuffer_pullup(b, -1), n);
		evbuffer_free(b);
	}
	free(r);
}
