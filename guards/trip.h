/* What a guard decides: the verdict on one event and, on a loop, the trip
 * that names the guard and says what to keep. Shared by every guard module,
 * the pipeline and the history check. */
#ifndef LW_GUARDS_TRIP_H
#define LW_GUARDS_TRIP_H

#include <stdint.h>

enum gd_verdict {
	GD_PASS = 0, /* relay the event now */
	GD_HOLD,     /* keep it: a tool call is incomplete (release on a later PASS) */
	GD_TRIP,     /* a loop: cancel the source, drop what is held, end the answer */
	GD_VERDICT_COUNT
};

/* Which stream a trip's <cut> offset refers to. */
enum gd_stream {
	GD_STREAM_NONE = 0,
	GD_STREAM_TEXT,
	GD_STREAM_REASONING,
	GD_STREAM_TOOL_ARGS,
	GD_STREAM_TOOLS, /* <cut> counts complete tool calls to keep */
	GD_STREAM_COUNT
};

struct gd_trip {
	char guard[32];    /* e.g. "name_run", "repeat", "simhash", "stall" */
	char detail[256];  /* human-readable: what repeated, how often (valid UTF-8) */
	uint64_t event_no; /* 1-based number of the event that tripped */
	enum gd_stream stream;
	uint64_t cut;      /* bytes of <stream> (or calls) before the looping part: the onset */
	uint64_t at;       /* bytes of <stream> the guard had read when it tripped, the
	                      tripping byte included (text, reasoning, a call's arguments;
	                      0 for call guards and for guards without a stream) */
	uint64_t event_used; /* bytes of the tripping event the guards read before they
	                        tripped (its whole length for a guard that judges whole
	                        events). The proxy delivers this much of a text or reasoning
	                        event before the final chunk, so what the client holds is
	                        exactly what the guards tripped on and the history check,
	                        fed it back, trips too (issue 12 item 11). */
};

const char *gd_verdict_name(enum gd_verdict v);

#endif
