#include "guards/cross_turn.h"

#include <inttypes.h>

#include "guards/history_int.h"
#include "guards/util.h"

bool gd_cross_turn_is_mutating(const struct gd_cross_turn_config *cfg,
                               const char *name, size_t len)
{
	return gd_name_has_word(&cfg->mutating[0][0], cfg->n_mutating, name, len);
}

uint32_t gd_cross_turn_rounds(const struct gd_cross_turn_config *cfg,
                              const struct gd_history *hist, uint64_t stable)
{
	uint32_t first_turn = 0, rounds = 0, last_turn = UINT32_MAX;
	uint64_t result = 0;
	bool have_result = false;

	if (!hist)
		return 0;
	if (hist->n_turns > cfg->lookback)
		first_turn = hist->n_turns - cfg->lookback;
	for (size_t i = hist->n_calls; i-- > 0;) {
		const struct gd_hist_call *c = &hist->calls[i];

		if (c->turn < first_turn)
			break;
		if (c->stable != stable) {
			/* The results of <stable> are identical on both sides of it:
			 * a repeated mutating call changed nothing they show. */
			if (c->mutating && !c->inert && !c->repeated)
				break;
			continue;
		}
		if (!c->has_result || c->kind == GD_RESULT_TRANSIENT)
			break;
		if (have_result && c->result_hash != result)
			break;
		result = c->result_hash;
		have_result = true;
		if (c->turn != last_turn) {
			rounds++;
			last_turn = c->turn;
		}
	}
	return rounds;
}

enum gd_verdict gd_cross_turn_check(const struct gd_cross_turn_config *cfg,
                                    const struct gd_history *hist, const struct gd_call_id *id,
                                    bool answer_mutated, const char *name,
                                    uint64_t calls_before, uint32_t *rounds_out,
                                    struct gd_trip *trip)
{
	uint32_t rounds;

	if (rounds_out)
		*rounds_out = 0;
	if (!cfg->enabled || !hist || answer_mutated)
		return GD_PASS;
	rounds = gd_cross_turn_rounds(cfg, hist, id->stable);
	if (rounds_out)
		*rounds_out = rounds + 1;
	if (rounds + 1 < cfg->max_rounds)
		return GD_PASS;
	gd_trip_set(trip, "cross_turn", GD_STREAM_TOOLS, calls_before,
	            "call %s repeats the last %" PRIu32 " rounds with the same arguments and the "
	            "same result each time", name, rounds);
	return GD_TRIP;
}
