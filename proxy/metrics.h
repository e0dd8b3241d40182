/* Process-wide counters and latency histograms, rendered as Prometheus text
 * for GET /metrics. Fixed-size: guard names beyond PX_METRICS_GUARDS share
 * the "other" label. Single-threaded (the event loop). */
#ifndef LW_PROXY_METRICS_H
#define LW_PROXY_METRICS_H

#include <stdint.h>

struct evbuffer;

enum px_counter {
	PX_C_REQUESTS = 0,     /* every HTTP request */
	PX_C_CHAT_STREAM,      /* chat completions, streaming */
	PX_C_CHAT_NONSTREAM,   /* chat completions, not streaming */
	PX_C_BAD_REQUESTS,     /* refused with 4xx by loopwarden */
	PX_C_TOKENS_RELAYED,   /* text/reasoning/tool-argument deltas relayed */
	PX_C_CHUNKS_RELAYED,   /* upstream chunks relayed */
	PX_C_CLIENT_GONE,      /* clients that left mid-answer */
	PX_C_HISTORY_STOPS,    /* requests answered by the history check */
	PX_C_CLIENT_STALLED,   /* clients closed for taking no bytes within proxy.client_write_timeout_ms */
	PX_C_CONN_REFUSED,     /* connections answered 503 at accept: proxy.max_connections open */
	PX_C_CUT_MEMO_HITS,    /* requests answered from the memory of recent cuts */
	PX_C_CUT_MEMO_STORES,  /* cuts remembered */
	PX_C_CUT_MEMO_EVICTIONS, /* live cuts forgotten to make room (proxy.cut_memo_entries) */
	PX_C_COUNT
};

enum px_up_kind {
	PX_UPE_CONNECT = 0,
	PX_UPE_STATUS,   /* HTTP 4xx/5xx */
	PX_UPE_RESET,    /* closed mid-answer */
	PX_UPE_PROTOCOL, /* not HTTP / not SSE / not JSON */
	PX_UPE_STREAM,   /* an {"error":…} event inside the stream */
	PX_UPE_COUNT
};

enum px_histo {
	PX_H_TTFT = 0,     /* seconds from request to first upstream event */
	PX_H_DURATION,     /* seconds from request to the answer's end */
	PX_H_CHUNK_US,     /* microseconds loopwarden spends per chunk (parse, guards, relay) */
	PX_H_COUNT
};

#define PX_METRICS_GUARDS 24

void px_metrics_init(void);
void px_metrics_inc(enum px_counter c, uint64_t n);
void px_metrics_upstream_error(enum px_up_kind k);
void px_metrics_trip(const char *guard);
void px_metrics_observe(enum px_histo h, double value);
/* Appends the exposition text; gauges passed in by the caller. */
void px_metrics_render(struct evbuffer *out, uint64_t active_streams, uint64_t connections);
uint64_t px_metrics_get(enum px_counter c);

#endif
