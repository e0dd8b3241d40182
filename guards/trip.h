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
	uint64_t cut;      /* bytes of <stream> (or calls) before the looping part */
};

const char *gd_verdict_name(enum gd_verdict v);

#endif
