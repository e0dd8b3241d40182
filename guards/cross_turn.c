#include "guards/cross_turn.h"

#include <ctype.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "guards/history_int.h"
#include "guards/util.h"

static bool word_in(const struct gd_cross_turn_config *cfg, const char *w, size_t n)
{
	for (uint32_t i = 0; i < cfg->n_mutating; i++)
		if (strlen(cfg->mutating[i]) == n && strncasecmp(cfg->mutating[i], w, n) == 0)
			return true;
	return false;
}

bool gd_cross_turn_is_mutating(const struct gd_cross_turn_config *cfg,
                               const char *name, size_t len)
{
	size_t start = 0;

	for (uint32_t i = 0; i < cfg->n_mutating; i++) {
		size_t wl = strlen(cfg->mutating[i]);
		if (wl < 5 || wl > len)
			continue;
		for (size_t j = 0; j + wl <= len; j++)
			if (strncasecmp(name + j, cfg->mutating[i], wl) == 0)
				return true;
	}
	for (size_t i = 0; i <= len; i++) {
		bool split = i == len || strchr("_-./: ", name[i]) != NULL;
		bool camel = i > 0 && i < len && islower((unsigned char)name[i - 1]) &&
		             isupper((unsigned char)name[i]);

		if (split || camel) {
			if (i > start && word_in(cfg, name + start, i - start))
				return true;
			start = split ? i + 1 : i;
		}
	}
	return false;
}

uint32_t gd_cross_turn_rounds(const struct gd_cross_turn_config *cfg,
                              const struct gd_history *hist, uint64_t hash)
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
		if (c->hash != hash) {
			if (c->mutating)
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
                                    const struct gd_history *hist, uint64_t hash,
                                    bool answer_mutated, const char *name,
                                    uint64_t calls_before, struct gd_trip *trip)
{
	uint32_t rounds;

	if (!cfg->enabled || !hist || answer_mutated)
		return GD_PASS;
	rounds = gd_cross_turn_rounds(cfg, hist, hash);
	if (rounds + 1 < cfg->max_rounds)
		return GD_PASS;
	gd_trip_set(trip, "cross_turn", GD_STREAM_TOOLS, calls_before,
	            "call %s repeats the last %" PRIu32 " rounds with the same arguments and the "
	            "same result each time", name, rounds);
	return GD_TRIP;
}
