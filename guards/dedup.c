#include "guards/dedup.h"

#include <inttypes.h>
#include <string.h>

#include "guards/util.h"

void gd_dedup_init(struct gd_dedup *s)
{
	memset(s, 0, sizeof(*s));
}

/* The i-th most recent call (0 = the newest). */
static uint64_t back(const struct gd_dedup *s, uint64_t i)
{
	return s->seq[(s->n - 1 - i) % GD_CALL_WINDOW];
}

bool gd_dedup_repeatable(const struct gd_dedup_config *cfg, const char *name, size_t len)
{
	return gd_name_has_word(&cfg->repeatable[0][0], cfg->n_repeatable, name, len);
}

uint32_t gd_dedup_limit(const struct gd_dedup_config *cfg, const char *name, size_t len,
                        bool mutating)
{
	if (gd_dedup_repeatable(cfg, name, len))
		return cfg->max_repeats_repeatable;
	return mutating ? cfg->max_repeats_mutating : cfg->max_repeats;
}

enum gd_verdict gd_dedup_check(struct gd_dedup *s, const struct gd_dedup_config *cfg,
                               const struct gd_call_id *id, uint32_t limit, bool repeatable,
                               const char *name, struct gd_trip *trip)
{
	uint64_t kept = s->n < GD_CALL_WINDOW ? s->n : GD_CALL_WINDOW;
	uint64_t sim = repeatable ? 0 : id->similar;
	uint32_t same = 1, similar = 1;

	for (uint64_t i = 0; i < kept; i++) {
		same += back(s, i) == id->exact;
		similar += sim && s->sim[(s->n - 1 - i) % GD_CALL_WINDOW] == sim;
	}
	s->seq[s->n % GD_CALL_WINDOW] = id->exact;
	s->sim[s->n % GD_CALL_WINDOW] = sim;
	s->n++;
	if (!cfg->enabled)
		return GD_PASS;
	s->near = (float)same / (float)limit;
	if (cfg->max_similar && sim && (float)similar / (float)cfg->max_similar > s->near)
		s->near = (float)similar / (float)cfg->max_similar;
	if (s->near > 1.0f)
		s->near = 1.0f;
	if (same >= limit) {
		gd_trip_set(trip, "dedup", GD_STREAM_TOOLS, s->n - 1,
		            "call %s made %" PRIu32 " times with the same arguments in one answer",
		            name, same);
		return GD_TRIP;
	}
	if (cfg->max_similar && sim && similar >= cfg->max_similar) {
		gd_trip_set(trip, "dedup", GD_STREAM_TOOLS, s->n - 1,
		            "call %s made %" PRIu32 " times in one answer with arguments that differ "
		            "only in case, spacing or punctuation", name, similar);
		return GD_TRIP;
	}
	kept = s->n < GD_CALL_WINDOW ? s->n : GD_CALL_WINDOW;
	for (uint32_t c = 2; c <= cfg->max_cycle; c++) {
		uint64_t need = (uint64_t)c * cfg->cycle_repeats;
		bool periodic = true, distinct = false;

		if (need > kept)
			break;
		for (uint64_t i = 0; i + c < need && periodic; i++)
			periodic = back(s, i) == back(s, i + c);
		for (uint32_t i = 1; i < c && !distinct; i++)
			distinct = back(s, i) != back(s, 0);
		if (periodic && distinct) {
			gd_trip_set(trip, "dedup", GD_STREAM_TOOLS, s->n - need + c,
			            "a cycle of %" PRIu32 " calls (ending with %s) repeated %" PRIu32
			            " times in one answer", c, name, cfg->cycle_repeats);
			return GD_TRIP;
		}
	}
	return GD_PASS;
}
