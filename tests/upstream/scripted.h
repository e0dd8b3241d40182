/* A scripted OpenAI-compatible upstream for tests and benchmarks (libevent
 * evhttp, deliberately not loopwarden's own HTTP code): replays scenario
 * files (tests/data/README.md: "request", "chunks" ending in "[DONE]",
 * "expect") as SSE or as one chat.completion body, optionally with a delay
 * per chunk, a stall, a reset, garbage or an HTTP error, and records for
 * every request how many chunks it wrote before its client hung up. Like a
 * real server it stops writing while more than UP_OUTPUT_MAX bytes wait for
 * a slow reader. */
#ifndef LW_TESTS_SCRIPTED_H
#define LW_TESTS_SCRIPTED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct up_server;

enum up_mode {
	UP_REPLAY = 0,   /* every chunk, then [DONE] */
	UP_STALL,        /* <after> chunks, then nothing (the connection stays open) */
	UP_RESET,        /* <after> chunks, then a TCP reset */
	UP_CLOSE,        /* <after> chunks, then a clean close without [DONE] or the chunked end */
	UP_GARBAGE,      /* <after> chunks, then "data: <not JSON>" events */
	UP_NOISE,        /* 200 text/event-stream, then bytes that are not SSE, then close */
	UP_STATUS,       /* HTTP <status> with an OpenAI-style error body */
	UP_STATUS_TEXT,  /* HTTP <status> with a plain-text body */
	UP_NO_DONE,      /* every chunk, no [DONE], then the response ends */
	UP_FLOOD,        /* <after> generated ~1 KiB content chunks of random text, then [DONE] */
	UP_USAGE_ONLY,   /* <after> chunks, then usage-only chunks (`choices: []` and `null` in
	                    turn) every <delay_ms> (at least 1 ms), until the client hangs up */
	UP_EMPTY_DELTAS, /* <after> chunks, then chunks with nothing in them (role-only delta,
	                    `delta: {}`, `content: ""` in turn) every <delay_ms>, until hang-up */
	UP_STATUS_BAD_TEXT, /* HTTP <status>, a text body with an invalid byte and multi-byte
	                       characters on both sides of byte 300 */
	UP_STATUS_NESTED,   /* HTTP <status>, a body of 32000 nested arrays `[[[…]]]` (64000 bytes) */
	UP_MODE_COUNT
};

struct up_program {
	enum up_mode mode;
	uint32_t after;    /* chunks before the mode's failure */
	uint32_t delay_ms; /* between chunks (0: as fast as the loop goes) */
	int status;        /* UP_STATUS*, default 500 */
	bool crlf;         /* frame events with CRLF line ends instead of LF */
	bool split;        /* send every event in two writes 1 ms apart, split at a varying byte */
	bool mid;          /* UP_RESET / UP_CLOSE: send the first half of the next event (in its
	                      own HTTP chunk), then reset or close inside it */
	bool multiline;    /* send each chunk's JSON as two `data:` lines (cut after its first
	                      comma), which SSE joins with a '\n' */
};

/* A request may carry its own program: a top-level "scripted" object in its
 * body, {"mode": NAME, "after": N, "delay_ms": N, "status": N, "mid": true}
 * (each optional; what it leaves out comes from the server's program). The
 * proxy under test forwards unknown fields unchanged, so one upstream can
 * serve a stalled flood and healthy replays at the same time. */

/* One request as the upstream saw it. */
struct up_record {
	char scenario[128];
	char authorization[256];
	bool stream;
	uint32_t chunks_total;   /* chunks in the scenario (without [DONE]) */
	uint32_t chunks_written; /* chunks handed to the socket before the end or a hang-up */
	bool hung_up;            /* the client closed before the response ended */
	bool completed;          /* the whole response was written */
	uint64_t body_len;
};

#define UP_MAX_RECORDS 4096
#define UP_OUTPUT_MAX (256 * 1024)

/* Binds 127.0.0.1:<port> (0 = any). NULL with <err>. */
struct up_server *up_server_new(struct event_base *base, uint16_t port, char *err, size_t errlen);
void up_server_free(struct up_server *s);
uint16_t up_server_port(const struct up_server *s);

/* Serves HTTPS from now on, with <cert> and <key> (PEM files). */
int up_server_enable_tls(struct up_server *s, const char *cert, const char *key,
                         char *err, size_t errlen);

/* Loads one scenario file, or every *.json in a folder. Returns the number
 * loaded, or -1 with <err>. */
int up_server_load(struct up_server *s, const char *path, char *err, size_t errlen);
/* Names of loaded scenarios (file name without .json). */
size_t up_server_scenarios(const struct up_server *s);
const char *up_server_scenario_name(const struct up_server *s, size_t i);
/* The raw chunk JSON texts of scenario <name> (without [DONE]); NULL if unknown. */
const char *const *up_server_chunks(const struct up_server *s, const char *name, size_t *n);
/* The scenario's request body as JSON text (with "stream" as in the file). */
const char *up_server_request(const struct up_server *s, const char *name);

/* What a scenario file says of itself. */
struct up_expect {
	bool loop;          /* kind == "loop" */
	bool trip;          /* expect.trip */
	long by_chunk;      /* expect.by_chunk (0: the history check trips), -1 when absent */
	bool has_config;    /* the file carries its own "config" overrides */
};
int up_server_expect(const struct up_server *s, const char *name, struct up_expect *out);
/* The non-stream chat.completion body the upstream answers for <name>. */
const char *up_server_body(const struct up_server *s, const char *name);

/* The scenario replayed when a request's "model" names none: <name>. */
int up_server_set_default(struct up_server *s, const char *name);
void up_server_set_program(struct up_server *s, const struct up_program *p);

/* Requests seen (records are kept for the first UP_MAX_RECORDS). */
size_t up_server_records(const struct up_server *s);
const struct up_record *up_server_record(const struct up_server *s, size_t i);
/* Responses still being written. */
uint64_t up_server_active(const struct up_server *s);
void up_server_reset_records(struct up_server *s);

/* Called right after chunk <chunk> (0-based) of request <req> (0-based,
 * counted since the last reset) was handed to the socket; for benchmarks. */
typedef void (*up_write_hook)(size_t req, size_t chunk, void *ctx);
void up_server_set_write_hook(struct up_server *s, up_write_hook fn, void *ctx);

const char *up_mode_name(enum up_mode m);
int up_mode_parse(const char *name, enum up_mode *out);

#endif
