/* The scenario file format (tests/data/README.md): one recorded answer with
 * the request that produced it and the verdict the guards must reach. Read by
 * the corpus test and loopwarden-audit; offline only (allocates freely). */
#ifndef LW_PROXY_WIRE_SCENARIO_H
#define LW_PROXY_WIRE_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PX_SCENARIO_MAX_GUARDS 8
#define PX_SCENARIO_MAX_CONFIG 32
#define PX_SCENARIO_FILE_MAX (16u << 20)
/* A request or a chunk may nest 64 levels (the request reader's and chunk
 * converter's caps), two levels down in the file. */
#define PX_SCENARIO_MAX_DEPTH 66

enum px_scenario_status {
	PX_SCENARIO_OK = 0,
	PX_SCENARIO_EIO = -1,    /* cannot read the file, or it is too large */
	PX_SCENARIO_EJSON = -2,  /* not JSON, or nested too deep: <err> names the line and column */
	PX_SCENARIO_ESHAPE = -3, /* JSON, but a required key is missing or has the wrong type */
	PX_SCENARIO_ENOMEM = -4,
};

const char *px_scenario_strerror(enum px_scenario_status st);

struct px_scenario_chunk {
	char *data;       /* the chunk as SSE data: compact JSON, or a string element verbatim */
	size_t len;
	bool done;        /* the string "[DONE]" */
	unsigned long line; /* 1-based line of the file where the element starts */
};

struct px_scenario {
	char *name;
	char *description;
	bool is_loop;              /* "kind": "loop" (else "healthy") */
	bool has_expect;
	bool expect_trip;
	uint32_t n_guards;         /* accepted guard names ("guard": a string or a list) */
	char guards[PX_SCENARIO_MAX_GUARDS][32];
	int64_t onset_chunk;       /* 1-based; 0 = before any chunk (history); -1 = not given */
	int64_t by_chunk;          /* 1-based; 0 = the history check must trip; -1 = not given */
	uint32_t n_config;         /* "config": {"key": "value"} overrides for this scenario */
	char *config_keys[PX_SCENARIO_MAX_CONFIG];
	char *config_values[PX_SCENARIO_MAX_CONFIG];
	char *request;             /* the request body, compact JSON; NULL when absent */
	size_t request_len;
	uint32_t n_chunks;
	struct px_scenario_chunk *chunks;
};

/* Reads the scenario at <path>. Caller owns *<out> (px_scenario_free). */
enum px_scenario_status px_scenario_load(const char *path, struct px_scenario **out,
                                         char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The same for a buffer; <name> is used in messages. */
enum px_scenario_status px_scenario_parse(const char *name, const char *buf, size_t len,
                                          struct px_scenario **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

void px_scenario_free(struct px_scenario *sc);

/* True when <guard> is one of the scenario's accepted guard names (or the
 * scenario names none). */
bool px_scenario_guard_ok(const struct px_scenario *sc, const char *guard);

/* Where byte <offset> of <buf> lies: 1-based line and column. */
void px_text_position(const char *buf, size_t len, size_t offset,
                      unsigned long *line, unsigned long *col);

#endif
