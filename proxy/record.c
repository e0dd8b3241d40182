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

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void px_record_close(struct px_record *r, const char *guard, const char *detail,
                     const char *error)
{
	if (!r)
		return;
	if (r->stream)
		fclose(r->stream);
	char file[1300];
	snprintf(file, sizeof(file), "%s/outcome.json", r->path);
	FILE *f = fopen(file, "wb");
	if (f) {
		fprintf(f, "{\"trip\":%s", guard ? "true" : "false");
		if (guard) {
			fprintf(f, ",\"guard\":");
			json_str(f, guard);
			fprintf(f, ",\"detail\":");
			json_str(f, detail ? detail : "");
		}
		if (error) {
			fprintf(f, ",\"error\":");
			json_str(f, error);
		}
		fprintf(f, "}\n");
		fclose(f);
	}
	free(r);
}
