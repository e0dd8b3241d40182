/* Every guard threshold, as plain data with defaults. A config becomes usable
 * by turning it into a gd_policy (pipeline.h). Keys are named "guards.<guard>.<field>"
 * and "watchdog.<field>", the same names the YAML file and --set use. */
#ifndef LW_GUARDS_CONFIG_H
#define LW_GUARDS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/origin.h" /* struct cfg_fault: the shape of a check's verdict */
#include "guards/limits.h"

#define GD_MAX_PATTERNS 32
#define GD_PATTERN_MAX 256

/* One guards.name_run.per_tool entry: tools whose name holds <word> (matched
 * like cross_turn.mutating) trip at <max_run> calls in a row (0 = never). */
struct gd_name_run_tool {
	char word[GD_WORD_MAX];
	uint32_t max_run;
	char key[GD_WORD_MAX + 32]; /* "guards.name_run.per_tool.<word>", for gd_config_each */
};

struct gd_name_run_config {
	bool enabled;
	uint32_t max_run; /* trips when the same tool name comes this many times in a row */
	uint32_t n_per_tool;
	struct gd_name_run_tool per_tool[GD_PER_TOOL_MAX]; /* the first match wins */
};

struct gd_dedup_config {
	bool enabled;
	uint32_t max_repeats; /* trips when the same canonical call is made this many times */
	uint32_t max_repeats_mutating; /* the same for a call with a mutating name (bash, edit…) */
	uint32_t max_repeats_repeatable; /* the same for a repeatable action (key press, scroll…) */
	uint32_t max_cycle;   /* longest call cycle (A,B,A,B…) detected */
	uint32_t cycle_repeats; /* a cycle repeated this many times trips */
	/* Calls of one tool whose arguments are the same but for case, spacing
	 * and punctuation ("oldLogger", "old_logger", "OLD-LOGGER"): this many
	 * trip (0 = off; repeatable actions excepted). */
	uint32_t max_similar;
	/* A call whose name holds one of these words (matched like
	 * cross_turn.mutating) is an input action that may be meant twice in one
	 * answer (press Down twice): max_repeats_repeatable applies to it. */
	uint32_t n_repeatable;
	char repeatable[GD_REPEATABLE_MAX][GD_WORD_MAX];
};

struct gd_cross_turn_config {
	bool enabled;
	uint32_t max_rounds; /* identical call, identical result, this many rounds in a row */
	uint32_t lookback;   /* how many recent assistant turns to read */
	/* A call whose name holds one of these words (split at _ - . / : and
	 * lower-to-upper case changes, compared caselessly; words of 5+ bytes
	 * also inside a name) may change the world: it resets the cross-turn and
	 * failure counts of every other call (and within one answer
	 * guards.dedup.max_repeats_mutating applies to it). */
	uint32_t n_mutating;
	char mutating[GD_MUTATING_MAX][GD_WORD_MAX];
	/* Argument keys that only count or stamp (attempt, timestamp, request
	 * id…): left out of a call's stable identity, which the history guards
	 * compare (the results must be identical too). gd_key_is_volatile. */
	uint32_t n_volatile;
	char volatile_keys[GD_VOLATILE_MAX][GD_WORD_MAX];
};

struct gd_failure_config {
	bool enabled;
	uint32_t max_failures; /* a call whose result already failed permanently this many times */
	uint32_t n_patterns;
	char patterns[GD_MAX_PATTERNS][GD_PATTERN_MAX];           /* PCRE2, caseless */
	uint32_t n_transient;
	char transient[GD_MAX_PATTERNS][GD_PATTERN_MAX];          /* never counted */
};

/* The history check (gd_history_check) and the history the call guards
 * read start at the last user message that begins a task: a user message
 * that does not match one of these patterns (PCRE2, caseless, whole words,
 * matched against the message's first GD_CONTINUATION_SCAN bytes). A match
 * asks to go on with the answer before it — Qwen Code's "Output token
 * limit hit. Resume directly…", a bare "continue" — and continues the task
 * (issue 12 item 10). */
struct gd_history_config {
	uint32_t n_continuations;
	char continuations[GD_MAX_PATTERNS][GD_PATTERN_MAX];
};

struct gd_repeat_config {
	bool enabled;
	uint32_t window_bytes; /* rolling tail kept per stream */
	uint32_t max_period;   /* longest period searched, bytes */
	uint32_t min_repeats;  /* repeats needed for short periods */
	uint32_t min_span;     /* characters (UTF-8 code points) the repeated tail must cover */
	/* Class rules, each trips short of min_span (0 = off): */
	uint32_t min_blank_lines;  /* a unit of whitespace holding a line break: this many line breaks */
	uint32_t min_word_repeats; /* a unit of plain words ("the ", "very very "): this many repeats */
	/* The counter rule (0 = off): the stream without whitespace, numbers
	 * as '#'; a unit with a word whose copies differ only in a counter. */
	uint32_t counter_repeats;  /* copies needed */
	uint32_t counter_span;     /* normalized characters the copies must cover */
};

struct gd_simhash_config {
	bool enabled;
	uint32_t shingle;      /* tokens per shingle */
	uint32_t window;       /* tokens per SimHash window */
	uint32_t stride;       /* tokens between window starts */
	uint32_t max_distance; /* Hamming distance counted as a near-repeat */
	uint32_t min_hits;     /* near-repeat windows needed to trip */
	uint32_t history;      /* strides back: the windows of history x stride tokens are kept */
	uint32_t min_distinct; /* windows with fewer distinct words (numbers not counted) never hit */
};

struct gd_paraphrase_config {
	bool enabled;
	uint32_t min_words;       /* words (3+ letters, function words left out) a sentence needs to count */
	uint32_t overlap_percent; /* share of its words found in one earlier sentence: restated */
	uint32_t min_restated;    /* restated sentences among the last <window> counted ones trip */
	uint32_t window;
};

struct gd_budget_config {
	uint32_t max_tool_calls;    /* per answer, 0 = unlimited */
	uint64_t max_output_bytes;  /* per answer, 0 = unlimited */
	uint32_t max_wall_ms;       /* per answer from gd_pipeline_start, 0 = unlimited */
};

struct gd_limits_config {
	uint32_t max_args_bytes; /* arguments kept per open call for canonicalization;
	                            a longer call is identified by its raw bytes */
};

struct gd_watchdog_config {
	uint32_t first_token_timeout_ms;
	uint32_t idle_timeout_ms;
};

struct gd_config {
	struct gd_name_run_config name_run;
	struct gd_dedup_config dedup;
	struct gd_cross_turn_config cross_turn;
	struct gd_failure_config failure;
	struct gd_history_config history;
	struct gd_repeat_config repeat;
	struct gd_simhash_config simhash;
	struct gd_paraphrase_config paraphrase;
	struct gd_budget_config budget;
	struct gd_watchdog_config watchdog;
	struct gd_limits_config limits;
};

void gd_config_defaults(struct gd_config *cfg);

/* Sets one key from its text form ("guards.name_run.max_run", "8"). List keys
 * (guards.failure.patterns) take a value per call and append; the value
 * "[]" clears the list. Returns 0, or -1 with <err> saying why; <err> does
 * not repeat <key> (the caller names it with its file and line). */
int gd_config_set(struct gd_config *cfg, const char *key, const char *value,
                  char *err, size_t errlen);

/* Checks what gd_config_set cannot see one key at a time: every cross-key
 * constraint, the ranges again (for configs built by hand), and that every
 * PCRE2 pattern compiles, alone and combined. gd_policy_new runs exactly this
 * check. Returns 0, or -1 with <fault> blaming a key (a pattern error: the
 * entry too, its text and the offset in <fault>->why). Implemented in
 * policy.c (it needs PCRE2). */
int gd_config_check(const struct gd_config *cfg, struct cfg_fault *fault);

/* Calls <fn> for each key with its current value in text form (for --help,
 * docs and the example config). A list key is reported once per entry, or
 * once with "[]" when empty. */
void gd_config_each(const struct gd_config *cfg,
                    void (*fn)(const char *key, const char *value, void *ctx),
                    void *ctx);

#endif
