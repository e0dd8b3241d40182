#include "guards/budget.h"

#include <inttypes.h>

#include "guards/util.h"

void gd_budget_init(struct gd_budget *b)
{
	b->calls = 0;
	b->bytes = 0;
}

enum gd_verdict gd_budget_bytes(struct gd_budget *b, const struct gd_budget_config *cfg,
                                uint64_t n, struct gd_trip *trip)
{
	b->bytes += n;
	if (!cfg->max_output_bytes || b->bytes <= cfg->max_output_bytes)
		return GD_PASS;
	gd_trip_set(trip, "budget", GD_STREAM_NONE, 0,
	            "answer exceeds %" PRIu64 " output bytes", cfg->max_output_bytes);
	return GD_TRIP;
}

enum gd_verdict gd_budget_call(struct gd_budget *b, const struct gd_budget_config *cfg,
                               struct gd_trip *trip)
{
	b->calls++;
	if (!cfg->max_tool_calls || b->calls <= cfg->max_tool_calls)
		return GD_PASS;
	gd_trip_set(trip, "budget", GD_STREAM_TOOLS, b->calls - 1,
	            "answer exceeds %" PRIu32 " tool calls", cfg->max_tool_calls);
	return GD_TRIP;
}
