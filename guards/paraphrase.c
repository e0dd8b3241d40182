#include "guards/paraphrase.h"

#include <inttypes.h>
#include <string.h>

#include "guards/util.h"

void gd_paraphrase_init(struct gd_paraphrase *s, const struct gd_paraphrase_config *cfg)
{
	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->line = GD_LINE_START;
	s->word_hash = (uint32_t)GD_FNV_OFFSET;
}

/* Words of 3+ letters that say nothing about the plan. */
static const char *const stop_words[] = {
	"the", "and", "that", "this", "then", "with", "for", "are", "was", "were", "but",
	"not", "can", "its", "it's", "let", "let's", "lets", "now", "also", "just", "you",
	"our", "has", "have", "had", "will", "from", "into", "there", "here", "what", "which",
};

static bool is_stop(const char *w, uint32_t len)
{
	if (len > 6)
		return false;
	for (size_t i = 0; i < sizeof(stop_words) / sizeof(stop_words[0]); i++)
		if (stop_words[i][0] == w[0] && strncmp(stop_words[i], w, len) == 0 &&
		    stop_words[i][len] == '\0')
			return true;
	return false;
}

static void end_word(struct gd_paraphrase *s)
{
	struct gd_paraphrase_sentence *c = &s->cur;
	uint32_t h = s->word_hash;

	s->in_word = false;
	if (s->word_len >= 3 && !s->digits_only && c->n < GD_PARAPHRASE_WORDS &&
	    !(s->word_len <= sizeof(s->word) && is_stop(s->word, s->word_len))) {
		bool dup = false;
		for (uint32_t i = 0; i < c->n && !dup; i++)
			dup = c->word[i] == h;
		if (!dup)
			c->word[c->n++] = h;
	}
	s->word_hash = (uint32_t)GD_FNV_OFFSET;
	s->word_len = 0;
}

/* The number being read is over: a number never seen before makes the
 * sentence fresh (two bits of a Bloom filter: a number mistaken for seen
 * only lets a sentence count as restated, as before this rule). */
static void end_number(struct gd_paraphrase *s)
{
	uint32_t m = s->num_hash * 0x9e3779b1u;
	uint32_t b1 = (m >> 7) % GD_PARAPHRASE_NUMBER_BITS;
	uint32_t b2 = (m >> 19 ^ s->num_hash) % GD_PARAPHRASE_NUMBER_BITS;

	s->in_num = false;
	s->num_dot = false;
	if (!((s->nums_seen[b1 / 64] >> (b1 % 64)) & (s->nums_seen[b2 / 64] >> (b2 % 64)) & 1)) {
		s->nums_seen[b1 / 64] |= 1ULL << (b1 % 64);
		s->nums_seen[b2 / 64] |= 1ULL << (b2 % 64);
		s->fresh = true;
	}
}

/* The sentence is over: count it. */
static enum gd_verdict end_sentence(struct gd_paraphrase *s, enum gd_stream stream,
                                    struct gd_trip *trip)
{
	const struct gd_paraphrase_config *cfg = s->cfg;
	struct gd_paraphrase_sentence *c = &s->cur;
	uint64_t kept = s->n_sent < GD_PARAPHRASE_SENTENCES ? s->n_sent : GD_PARAPHRASE_SENTENCES;
	uint32_t best = 0, hits;
	uint64_t start = s->sent_start;
	bool restated;

	if (s->in_word)
		end_word(s);
	if (s->in_num)
		end_number(s);
	s->sent_start = s->pos;
	bool fresh = s->fresh;
	s->fresh = false;
	if (c->n < cfg->min_words || s->list_item) {
		c->n = 0;
		s->list_item = false;
		return GD_PASS;
	}
	/* Sentences keep their words sorted: each comparison is one merge. */
	for (uint32_t i = 1; i < c->n; i++)
		for (uint32_t j = i; j > 0 && c->word[j - 1] > c->word[j]; j--) {
			uint32_t t = c->word[j];
			c->word[j] = c->word[j - 1];
			c->word[j - 1] = t;
		}
	uint64_t sig = 0;
	for (uint32_t i = 0; i < c->n; i++)
		sig |= 1ULL << (c->word[i] & 63);
	c->sig = sig;
	/* Stops at the first earlier sentence that holds enough of its words. */
	uint32_t need = (cfg->overlap_percent * c->n + 99) / 100;
	for (uint64_t k = 0; k < kept && best < need; k++) {
		const struct gd_paraphrase_sentence *p = &s->past[k];
		uint32_t shared = 0, i = 0, j = 0;

		if (!(sig & p->sig))
			continue; /* no word in common */
		/* Stops as soon as the words left cannot reach <need>. */
		while (i < c->n && j < p->n &&
		       shared + (c->n - i < p->n - j ? c->n - i : p->n - j) >= need) {
			if (c->word[i] == p->word[j]) {
				shared++;
				i++;
				j++;
			} else if (c->word[i] < p->word[j]) {
				i++;
			} else {
				j++;
			}
		}
		if (shared > best)
			best = shared;
	}
	/* A sentence that brings a new number reports something new. */
	restated = best >= need && !fresh;
	s->past[s->n_sent % GD_PARAPHRASE_SENTENCES] = *c;
	s->n_sent++;
	c->n = 0;
	s->start_off[s->n_counted % 32] = start;
	s->n_counted++;
	s->restated = (s->restated << 1) | restated;
	uint32_t mask = cfg->window >= 32 ? ~0u : (1u << cfg->window) - 1;
	hits = gd_popcount64(s->restated & mask);
	if (!restated || hits < cfg->min_restated)
		return GD_PASS;
	uint32_t oldest = 31 - (uint32_t)__builtin_clz(s->restated & mask);
	uint64_t off = s->start_off[(s->n_counted - 1 - oldest) % 32];
	gd_trip_set(trip, "paraphrase", stream, off,
	            "%" PRIu32 " of the last %" PRIu32 " sentences restate an earlier one in other "
	            "words (%" PRIu32 "%% of their words or more; from offset %" PRIu64 ")",
	            hits, cfg->window, cfg->overlap_percent, off);
	trip->at = s->pos; /* the byte that ended the sentence */
	return GD_TRIP;
}

static bool letter(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

enum gd_verdict gd_paraphrase_feed(struct gd_paraphrase *s, const char *data, size_t len,
                                   enum gd_stream stream, struct gd_trip *trip)
{
	const unsigned char *p = (const unsigned char *)data;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		bool digit = c >= '0' && c <= '9';
		bool space = c == ' ' || c == '\t' || c == '\r' || c == '\n';
		enum gd_paraphrase_line line = s->line;

		s->pos++;
		/* ``` fences code: not sentences. */
		if (c == '`') {
			if (++s->ticks == 3) {
				s->in_fence = !s->in_fence;
				s->in_word = false;
				s->in_num = false;
				s->fresh = false;
				s->word_len = 0;
				s->word_hash = (uint32_t)GD_FNV_OFFSET;
				s->cur.n = 0;
				s->sent_start = s->pos;
			}
			continue;
		}
		s->ticks = 0;
		if (s->in_fence) {
			s->line = c == '\n' ? GD_LINE_START : s->line;
			continue;
		}
		/* How the line begins: "- ", "* ", "+ ", "|", "12." or "3)" make
		 * it a list item (its marker's '.' ends no sentence). */
		if (line == GD_LINE_START && !space) {
			s->line = digit ? GD_LINE_DIGITS : (c == '-' || c == '*' || c == '+') ?
			          GD_LINE_BULLET : GD_LINE_TEXT;
			s->list_item |= c == '|';
		} else if (line == GD_LINE_DIGITS && !digit) {
			s->line = GD_LINE_TEXT;
			if (c == '.' || c == ')') {
				s->list_item = true;
				s->in_word = false;
				s->word_hash = (uint32_t)GD_FNV_OFFSET;
				s->word_len = 0;
				continue;
			}
		} else if (line == GD_LINE_BULLET) {
			s->line = GD_LINE_TEXT;
			s->list_item |= c == ' ';
		}
		/* Numbers: digits not inside a word, '.' between digits. */
		if (s->in_num) {
			if (digit) {
				if (s->num_dot)
					s->num_hash = (s->num_hash ^ '.') * (uint32_t)GD_FNV_PRIME;
				s->num_dot = false;
				s->num_hash = (s->num_hash ^ c) * (uint32_t)GD_FNV_PRIME;
			} else if (c == '.' && !s->num_dot) {
				s->num_dot = true;
			} else {
				end_number(s);
			}
		} else if (digit && !s->in_word) {
			s->in_num = true;
			s->num_hash = ((uint32_t)GD_FNV_OFFSET ^ c) * (uint32_t)GD_FNV_PRIME;
		}
		if (s->dot) {
			s->dot = false;
			if (space && end_sentence(s, stream, trip) == GD_TRIP)
				return GD_TRIP;
		}
		if (letter(c) || digit || c == '_' || (c == '\'' && s->in_word)) {
			if (!s->in_word) {
				s->in_word = true;
				s->digits_only = true;
			}
			if (!digit)
				s->digits_only = false;
			if (c >= 'A' && c <= 'Z')
				c = (unsigned char)(c - 'A' + 'a');
			if (s->word_len < sizeof(s->word))
				s->word[s->word_len] = (char)c;
			s->word_hash = (s->word_hash ^ c) * (uint32_t)GD_FNV_PRIME;
			s->word_len++;
			continue;
		}
		if (s->in_word)
			end_word(s);
		if (c == '.' || c == '!' || c == '?') {
			s->dot = true;
		} else if (c == ';' || (c == '\n' && line == GD_LINE_START)) {
			/* ';' or a blank line; a single line break is a space
			 * (wrapped prose, list items that run on). */
			if (end_sentence(s, stream, trip) == GD_TRIP)
				return GD_TRIP;
		}
		if (c == '\n')
			s->line = GD_LINE_START;
	}
	return GD_PASS;
}

float gd_paraphrase_near(const struct gd_paraphrase *s)
{
	const struct gd_paraphrase_config *cfg = s->cfg;
	uint32_t mask = cfg->window >= 32 ? ~0u : (1u << cfg->window) - 1;
	float v = (float)gd_popcount64(s->restated & mask) / (float)cfg->min_restated;

	return v > 1.0f ? 1.0f : v;
}
