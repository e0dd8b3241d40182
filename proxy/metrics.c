/* Prometheus text exposition of loopwarden's counters. */
#include "proxy/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxy/alloc.h"

#define N_BUCKETS 12

struct histo {
	const char *name, *help;
	double bounds[N_BUCKETS];
	uint64_t counts[N_BUCKETS + 1]; /* the last one is +Inf */
	double sum;
	uint64_t n;
};

static uint64_t counters[PX_C_COUNT];
static uint64_t up_errors[PX_UPE_COUNT];
static char guard_names[PX_METRICS_GUARDS][32];
static uint64_t guard_trips[PX_METRICS_GUARDS + 1]; /* the last one is "other" */
static struct histo histos[PX_H_COUNT] = {
	{"loopwarden_time_to_first_token_seconds", "Seconds from request to the first upstream event",
	 {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}, {0}, 0, 0},
	{"loopwarden_request_duration_seconds", "Seconds from request to the end of the answer",
	 {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}, {0}, 0, 0},
	{"loopwarden_chunk_processing_microseconds",
	 "Microseconds loopwarden spends per upstream chunk (SSE parse, guards, relay)",
	 {5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000}, {0}, 0, 0},
};

static const char *counter_names[PX_C_COUNT][2] = {
	{"loopwarden_requests_total", "HTTP requests received"},
	{"loopwarden_chat_streaming_total", "Streaming chat completions"},
	{"loopwarden_chat_nonstreaming_total", "Non-streaming chat completions"},
	{"loopwarden_bad_requests_total", "Requests refused by loopwarden with a 4xx"},
	{"loopwarden_tokens_relayed_total", "Content, reasoning and tool-argument deltas relayed"},
	{"loopwarden_chunks_relayed_total", "Upstream chunks relayed to clients"},
	{"loopwarden_client_disconnects_total", "Clients that left before their answer ended"},
	{"loopwarden_history_stops_total", "Requests answered at once because the history already loops"},
	{"loopwarden_client_write_timeouts_total",
	 "Clients closed for taking no bytes for proxy.client_write_timeout_ms while output waited for them "
	 "(an answer paused for them: upstream cancelled; or one already complete)"},
	{"loopwarden_connections_refused_total",
	 "Client connections answered 503 at accept because proxy.max_connections were open"},
	{"loopwarden_cut_memo_hits_total",
	 "Requests identical to one cut a moment ago (but for their token limits), answered as the cut was without the upstream"},
	{"loopwarden_cut_memo_stores_total", "Cuts remembered for such retries"},
	{"loopwarden_cut_memo_evictions_total",
	 "Remembered cuts forgotten before their time to make room (proxy.cut_memo_entries)"},
};

static const char *up_kind_names[PX_UPE_COUNT] = {"connect", "status", "reset", "protocol", "stream"};

void px_metrics_init(void)
{
	memset(counters, 0, sizeof(counters));
	memset(up_errors, 0, sizeof(up_errors));
	memset(guard_names, 0, sizeof(guard_names));
	memset(guard_trips, 0, sizeof(guard_trips));
	for (int i = 0; i < PX_H_COUNT; i++) {
		memset(histos[i].counts, 0, sizeof(histos[i].counts));
		histos[i].sum = 0;
		histos[i].n = 0;
	}
}

void px_metrics_inc(enum px_counter c, uint64_t n)
{
	counters[c] += n;
}

uint64_t px_metrics_get(enum px_counter c)
{
	return counters[c];
}

void px_metrics_upstream_error(enum px_up_kind k)
{
	up_errors[k]++;
}

void px_metrics_trip(const char *guard)
{
	for (int i = 0; i < PX_METRICS_GUARDS; i++) {
		if (guard_names[i][0] == '\0') {
			snprintf(guard_names[i], sizeof(guard_names[i]), "%s", guard);
			guard_trips[i]++;
			return;
		}
		if (strcmp(guard_names[i], guard) == 0) {
			guard_trips[i]++;
			return;
		}
	}
	guard_trips[PX_METRICS_GUARDS]++;
}

void px_metrics_observe(enum px_histo h, double value)
{
	struct histo *x = &histos[h];
	int b = 0;
	while (b < N_BUCKETS && value > x->bounds[b])
		b++;
	x->counts[b]++;
	x->sum += value;
	x->n++;
}

/* Guard names come from our own guard library, but escape anyway. */
static void label_value(struct evbuffer *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			evbuffer_add(out, "\\", 1);
		if (*s == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, s, 1);
	}
}

void px_metrics_render(struct evbuffer *out, uint64_t active_streams, uint64_t connections)
{
	for (int i = 0; i < PX_C_COUNT; i++)
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n",
		                    counter_names[i][0], counter_names[i][1], counter_names[i][0],
		                    counter_names[i][0], counters[i]);
	evbuffer_add_printf(out, "# HELP loopwarden_trips_total Answers cut by a guard\n"
	                         "# TYPE loopwarden_trips_total counter\n");
	for (int i = 0; i < PX_METRICS_GUARDS && guard_names[i][0]; i++) {
		evbuffer_add_printf(out, "loopwarden_trips_total{guard=\"");
		label_value(out, guard_names[i]);
		evbuffer_add_printf(out, "\"} %" PRIu64 "\n", guard_trips[i]);
	}
	if (guard_trips[PX_METRICS_GUARDS])
		evbuffer_add_printf(out, "loopwarden_trips_total{guard=\"other\"} %" PRIu64 "\n",
		                    guard_trips[PX_METRICS_GUARDS]);
	evbuffer_add_printf(out, "# HELP loopwarden_upstream_errors_total Upstream failures by kind\n"
	                         "# TYPE loopwarden_upstream_errors_total counter\n");
	for (int i = 0; i < PX_UPE_COUNT; i++)
		evbuffer_add_printf(out, "loopwarden_upstream_errors_total{kind=\"%s\"} %" PRIu64 "\n",
		                    up_kind_names[i], up_errors[i]);
	evbuffer_add_printf(out, "# HELP loopwarden_active_streams Chat completions in progress\n"
	                         "# TYPE loopwarden_active_streams gauge\nloopwarden_active_streams %" PRIu64 "\n",
	                    active_streams);
	evbuffer_add_printf(out, "# HELP loopwarden_client_connections Open client connections\n"
	                         "# TYPE loopwarden_client_connections gauge\nloopwarden_client_connections %" PRIu64 "\n",
	                    connections);
	char alloc[128];
	uint64_t allocated, resident;
	px_alloc_name(alloc, sizeof(alloc));
	evbuffer_add_printf(out, "# HELP loopwarden_allocator_info The memory allocator (dirty_decay_ms 0: freed pages go back at once)\n"
	                         "# TYPE loopwarden_allocator_info gauge\nloopwarden_allocator_info{allocator=\"");
	label_value(out, alloc);
	evbuffer_add_printf(out, "\",dirty_decay_ms=\"%ld\"} 1\n", px_alloc_decay_ms());
	if (px_alloc_stats(&allocated, &resident))
		evbuffer_add_printf(out, "# HELP loopwarden_heap_allocated_bytes Bytes allocated by loopwarden\n"
		                         "# TYPE loopwarden_heap_allocated_bytes gauge\nloopwarden_heap_allocated_bytes %" PRIu64 "\n"
		                         "# HELP loopwarden_heap_resident_bytes Bytes the allocator keeps resident\n"
		                         "# TYPE loopwarden_heap_resident_bytes gauge\nloopwarden_heap_resident_bytes %" PRIu64 "\n",
		                    allocated, resident);
	for (int h = 0; h < PX_H_COUNT; h++) {
		struct histo *x = &histos[h];
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", x->name, x->help, x->name);
		uint64_t cum = 0;
		for (int b = 0; b < N_BUCKETS; b++) {
			cum += x->counts[b];
			evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", x->name, x->bounds[b], cum);
		}
		cum += x->counts[N_BUCKETS];
		evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %g\n%s_count %" PRIu64 "\n",
		                    x->name, cum, x->name, x->sum, x->name, x->n);
	}
}
