/* Canonical tool-call arguments: two calls are the same call iff the canonical
 * forms of their arguments are equal. Canonical = object keys sorted
 * (bytewise, recursively), no insignificant whitespace, number text kept
 * exactly as written, strings decoded and re-escaped one way (", \ and
 * control bytes escaped, everything else raw UTF-8). Also an incremental
 * scanner that tells, in O(n) over fragments, when a streamed JSON text is
 * complete. */
#ifndef LW_GUARDS_CANON_H
#define LW_GUARDS_CANON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guards/config.h"

enum gd_canon_status {
	GD_CANON_OK = 0,
	GD_CANON_EINVAL = -1,      /* not JSON */
	GD_CANON_EINCOMPLETE = -2, /* a truncated JSON text (open string, object or array) */
	GD_CANON_ETOOBIG = -3,     /* input over GD_CANON_MAX_INPUT or output over the caller's buffer */
	GD_CANON_ETOODEEP = -4,    /* nesting over GD_CANON_MAX_DEPTH */
	GD_CANON_ENOMEM = -5,
	GD_CANON_EARG = -6,        /* bad argument */
};

const char *gd_canon_strerror(enum gd_canon_status st);

/* Writes the canonical form of <json, len> into <out> (capacity <outcap>
 * bytes, NUL-terminated when it fits) and its length into <*outlen>. The
 * canonical form is never longer than <len> + 1 except for strings holding
 * raw control bytes, so <outcap> = 2 * <len> + 16 always suffices. On failure
 * <err> says why and where. Limitation: a string holding \u0000 is cut at the
 * NUL (yajl_tree keeps C strings). */
enum gd_canon_status gd_canon(const char *json, size_t len, char *out, size_t outcap,
                              size_t *outlen, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The incremental completeness scanner for one streamed JSON text. */
enum gd_scan_state {
	GD_SCAN_EMPTY = 0, /* only whitespace so far */
	GD_SCAN_OPEN,      /* inside an object or array */
	GD_SCAN_COMPLETE,  /* the top-level object/array closed (trailing whitespace is fine) */
	GD_SCAN_SCALAR,    /* the text is not an object/array: complete only when the source says so */
	GD_SCAN_BAD,       /* mismatched bracket, too deep, or bytes after the end */
	GD_SCAN_STATE_COUNT
};

struct gd_json_scan {
	enum gd_scan_state state;
	uint32_t depth;
	uint64_t kinds;  /* bit d set: level d is an array, clear: an object */
	bool in_string;
	bool escape;
	uint64_t offset; /* bytes consumed */
};

void gd_json_scan_init(struct gd_json_scan *s);
/* Consumes <data, len> and returns the new state. */
enum gd_scan_state gd_json_scan_feed(struct gd_json_scan *s, const char *data, size_t len);

/* The identity of a tool call: a 64-bit hash of <name> and the canonical
 * form of <args>. Arguments that are empty (or only whitespace) count as
 * "{}"; arguments that are not valid JSON, or whose canonical form does not
 * fit <scratch> (capacity <scratchcap>; <args_len> + 16 always fits valid
 * JSON), are identified by their raw bytes with surrounding whitespace
 * trimmed, and <*canonical> is set false. */
uint64_t gd_call_identity(const char *name, size_t name_len, const char *args,
                          size_t args_len, char *scratch, size_t scratchcap,
                          bool *canonical);

/* The identity of a call whose arguments were too long to keep (over
 * guards.limits.max_args_bytes): <raw_hash> is gd_hash_bytes(GD_FNV_OFFSET,
 * args) over the exact argument bytes. The pipeline and the history both use
 * it for such calls, so they still match each other. */
uint64_t gd_call_identity_raw(const char *name, size_t name_len, uint64_t raw_hash);

/* The identities of one tool call, from one parse of its arguments. */
struct gd_call_id {
	uint64_t exact;   /* name + canonical arguments: gd_call_identity */
	uint64_t stable;  /* the same with volatile members left out (an attempt
	                     counter, a timestamp, a request id: gd_key_is_volatile,
	                     or a date-time string value); == <exact> when none */
	uint64_t similar; /* name + the argument values only, case-folded, letters
	                     and digits only, volatile members left out: the same
	                     search spelled another way ("oldLogger", "old_logger") */
	bool canonical;   /* false: identified by the raw bytes (not JSON, too big) */
};

/* All three identities of call <name>(<args>) (arguments as text, as a
 * stream or a history's "arguments" string). <ct> names the volatile keys
 * (NULL: none). Arguments that are empty count as "{}"; arguments that are not
 * JSON get the raw-bytes identity of gd_call_identity in all three fields.
 * Allocates while parsing (once per call). */
void gd_call_id(const struct gd_cross_turn_config *ct, const char *name, size_t name_len,
                const char *args, size_t args_len, struct gd_call_id *out);

/* The same for arguments too long to keep (gd_call_identity_raw in all three
 * fields). */
void gd_call_id_raw(const char *name, size_t name_len, uint64_t raw_hash,
                    struct gd_call_id *out);

/* True when object key <key> only counts or stamps (guards.cross_turn.
 * volatile_keys): a word of 5+ letters anywhere in the key, letters and digits
 * only and case-folded ("maxAttempts", "x_request_id"), a shorter one as a
 * whole word of it ("ts", "created_ts"). */
bool gd_key_is_volatile(const struct gd_cross_turn_config *ct, const char *key);

#endif
