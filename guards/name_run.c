#include "guards/name_run.h"

#include <inttypes.h>

#include "guards/util.h"

void gd_name_run_init(struct gd_name_run *s)
{
	s->last = 0;
	s->run = 0;
}

enum gd_verdict gd_name_run_check(struct gd_name_run *s, const struct gd_name_run_config *cfg,
                                  uint64_t name_hash, const char *name,
                                  uint64_t calls_before, struct gd_trip *trip)
{
	if (s->run && s->last == name_hash)
		s->run++;
	else
		s->run = 1;
	s->last = name_hash;
	if (!cfg->enabled || s->run < cfg->max_run)
		return GD_PASS;
	gd_trip_set(trip, "name_run", GD_STREAM_TOOLS, calls_before,
	            "tool %s called %" PRIu32 " times in a row in one answer", name, s->run);
	return GD_TRIP;
}
