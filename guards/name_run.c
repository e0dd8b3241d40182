#include "guards/name_run.h"

#include <inttypes.h>
#include <string.h>

#include "guards/util.h"

void gd_name_run_init(struct gd_name_run *s)
{
	s->last = 0;
	s->run = 0;
	s->cap = 0;
}

uint32_t gd_name_run_cap(const struct gd_name_run_config *cfg, const char *name, size_t len)
{
	for (uint32_t i = 0; i < cfg->n_per_tool; i++)
		if (gd_name_has_word(cfg->per_tool[i].word, 1, name, len))
			return cfg->per_tool[i].max_run;
	return cfg->max_run;
}

enum gd_verdict gd_name_run_check(struct gd_name_run *s, const struct gd_name_run_config *cfg,
                                  uint64_t name_hash, const char *name, size_t name_len,
                                  uint64_t calls_before, struct gd_trip *trip)
{
	uint32_t cap;

	if (s->run && s->last == name_hash)
		s->run++;
	else
		s->run = 1;
	s->last = name_hash;
	if (!cfg->enabled)
		return GD_PASS;
	cap = gd_name_run_cap(cfg, name, name_len);
	s->cap = cap;
	if (cap == 0 || s->run < cap)
		return GD_PASS;
	gd_trip_set(trip, "name_run", GD_STREAM_TOOLS, calls_before,
	            "tool %s called %" PRIu32 " times in a row in one answer", name, s->run);
	return GD_TRIP;
}

float gd_name_run_near(const struct gd_name_run *s)
{
	float v = s->cap ? (float)s->run / (float)s->cap : 0.0f;

	return v > 1.0f ? 1.0f : v;
}
