/* --record DIR: per request a subdirectory <DIR>/<time>-<pid>-<id>/ holding
 * request.json (the client's body, unchanged) and stream.sse (the raw bytes
 * the upstream sent, for streams) or response.json (non-stream), plus
 * outcome.json ({"trip": bool, "guard", "detail"} or the error; "answered_by"
 * for a request loopwarden answered itself) — the layout loopwarden-audit
 * reads. Recording never fails a request: errors are logged
 * once and the request goes on unrecorded. */
#ifndef LW_PROXY_RECORD_H
#define LW_PROXY_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct px_record;

/* Returns NULL (after writing the reason to <err>) when the folder cannot be made. */
struct px_record *px_record_open(const char *dir, uint64_t req_id, bool stream,
                                 const char *body, size_t len, char *err, size_t errlen);
void px_record_write(struct px_record *r, const char *data, size_t len);
/* <guard>/<detail> NULL: no trip. <error> NULL: no error. Frees <r>. */
void px_record_close(struct px_record *r, const char *guard, const char *detail,
                     const char *error);

/* A request loopwarden answered itself, without the upstream (issue 12 item
 * 13): request.json, the answer it sent in stream.sse or response.json, and
 * outcome.json with the trip and "answered_by": <by> ("history": the
 * history check; "cut_memo": a remembered cut). Returns 0, or -1 with <err>
 * (as px_record_open; nothing else fails the request). */
int px_record_answered(const char *dir, uint64_t req_id, bool stream, const char *body,
                       size_t len, const char *answer, size_t answer_len, const char *guard,
                       const char *detail, const char *by, char *err, size_t errlen);

#endif
