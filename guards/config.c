/* Defaults, the key table behind gd_config_set / gd_config_each. Why each
 * default is what it is: docs/guards.md. */
#include "guards/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const default_permanent[] = {
	"no such file or directory",
	"\\bENOENT\\b",
	"\\bnot found\\b",
	"\\bdoes not exist\\b",
	"\\bunknown (?:tool|function|command)\\b",
	"\\b(?:tool|function)\\b.{0,80}\\bnot (?:available|defined|registered)\\b",
	"\\binvalid (?:arguments?|parameters?|params|input|json)\\b",
	"\\bschema validation\\b",
	"\\bvalidation (?:error|failed)\\b",
	"\\bmissing required (?:argument|parameter|property|field)\\b",
	"\\bpermission denied\\b",
	"\\bE(?:ACCES|PERM|ISDIR|NOTDIR)\\b",
	"\\bis a directory\\b",
	"\\bnot a directory\\b",
	"\\boperation not permitted\\b",
};

static const char *const default_transient[] = {
	"connection[ _-]?(?:refused|reset|aborted)(?:[ _-]?error)?", /* also ConnectionRefusedError */
	"\\bE(?:CONNREFUSED|CONNRESET|TIMEDOUT|AGAIN|HOSTUNREACH|NETUNREACH)\\b",
	"\\btimed ?out\\b", /* "timed out"; "timeout" alone below */
	/* "timeout" alone is a setting ("timeout: 30" in a file that is read
	 * again and again), not a failure: only a timeout that happened. */
	"\\btime-?out(?: ?error| ?exception| exceeded| expired| reached| waiting| while| after| of \\d\\w*)",
	"\\b(?:request|read|write|connect(?:ion)?|socket|operation|network|gateway|upstream|idle|lock) ?time-?out(?: ?error| ?exception)?\\b",
	"\\bdeadline exceeded\\b",
	/* A status code only next to a word that makes it one: "line 503",
	 * "src/main.c:429" and "logs/503.log" are not transient. */
	"\\b(?:HTTP(?:/[0-9.]+)?|status(?: code)?|error|code)\\W{0,3}(?:429|502|503|504)\\b",
	"\\bbad gateway\\b",
	"\\bgateway time-?out\\b",
	"temporar(?:il)?y (?:unavailable|failure|error)",
	"service[ _-]?unavailable(?:[ _-]?(?:error|exception))?",
	"\\btry again\\b",
	/* Whole words like every pattern: not "rate limiter", "separate limits". */
	"\\brate[ _-]?limit(?:[ _-]?(?:ed|ing|errors?|exceeded|reached|hit))?",
	"too[ _-]?many[ _-]?requests(?:[ _-]?(?:error|exception))?",
	"\\bnot (?:yet )?ready\\b",
};

/* User messages that continue the answer before them instead of starting a
 * new task (guards.history.continuations). */
static const char *const default_continuations[] = {
	/* Qwen Code's recovery turns after "length" or a dropped connection
	 * ("Output token limit hit. Resume directly — no apology…", "The
	 * connection dropped mid-response. Resume directly…"); Claude Code's
	 * use the same words. */
	"resume directly",
	/* The whole message one of the usual words (Gemini CLI sends "Please
	 * continue."). */
	"^\\s*(?:please\\s+)?(?:continue|go on|keep going|carry on|resume)\\W*$",
	/* Cline's reminder after an answer that ended without its completion tool. */
	"^\\s*\\[SYSTEM\\] This run is not complete",
};

/* Input actions (computer use, browsers, mobile): the same key press,
 * scroll or click twice in one answer is two actions, not a loop. */
static const char *const default_repeatable[] = {
	"computer", "browser", "press", "key", "keys", "keyboard", "hotkey", "type",
	"click", "tap", "swipe", "scroll", "mouse", "drag", "wait", "sleep", "back",
	"forward",
};

static const char *const default_mutating[] = {
	"edit", "multiedit", "write", "patch", "apply", "create", "delete", "remove",
	"move", "rename", "copy", "rm", "mv", "cp", "mkdir", "touch", "run", "exec",
	"execute", "bash", "shell", "sh", "terminal", "command", "cmd", "install",
	"commit", "push", "update", "replace", "insert", "save", "append", "modify",
	"set", "put", "post", "upload", "deploy", "build", "kill", "start",
	"restart", "stop", "click", "navigate", "fill", "submit", "python", "eval",
	"task", "agent", "sleep", "wait", "send", "computer", "browser", "press",
	"scroll", "key", "type", "mouse", "drag",
};

/* Tools that read one named thing per call (read, read_file, view): a run
 * of them reading distinct files is an agent being thorough, so they get a
 * longer run than searches and listings. Identical calls trip dedup at 2 and
 * near-identical ones at dedup.max_similar, so a run this long is distinct. */
static const struct { const char *word; uint32_t max_run; } default_per_tool[] = {
	{ "read", 64 },
	{ "view", 64 },
};

/* Argument keys that only count attempts or stamp a call: two calls that
 * differ only in them, answered identically, are the same call. */
static const char *const default_volatile[] = {
	"attempt", "retry", "retries", "try", "tries", "nonce", "timestamp", "ts",
	"request_id", "req_id", "trace_id", "span_id", "correlation_id",
	"idempotency_key", "cache_buster", "cachebust",
};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

_Static_assert(N_ELEMS(default_permanent) <= GD_MAX_PATTERNS, "too many default patterns");
_Static_assert(N_ELEMS(default_transient) <= GD_MAX_PATTERNS, "too many default patterns");
_Static_assert(N_ELEMS(default_continuations) <= GD_MAX_PATTERNS, "too many default patterns");
_Static_assert(N_ELEMS(default_mutating) <= GD_MUTATING_MAX, "too many default words");
_Static_assert(N_ELEMS(default_repeatable) <= GD_REPEATABLE_MAX, "too many default words");
_Static_assert(N_ELEMS(default_volatile) <= GD_VOLATILE_MAX, "too many default words");
_Static_assert(N_ELEMS(default_per_tool) <= GD_PER_TOOL_MAX, "too many default entries");

static void set_tool(struct gd_name_run_tool *t, const char *name, const char *word,
                     uint32_t max_run)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->word, sizeof(t->word), "%s", word);
	snprintf(t->key, sizeof(t->key), "%s.%s", name, word);
	t->max_run = max_run;
}

void gd_config_defaults(struct gd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));

	cfg->name_run.enabled = true;
	cfg->name_run.max_run = 16;
	for (size_t i = 0; i < N_ELEMS(default_per_tool); i++)
		set_tool(&cfg->name_run.per_tool[cfg->name_run.n_per_tool++],
		         "guards.name_run.per_tool", default_per_tool[i].word,
		         default_per_tool[i].max_run);

	cfg->dedup.enabled = true;
	cfg->dedup.max_repeats = 2;
	cfg->dedup.max_repeats_mutating = 2;
	cfg->dedup.max_repeats_repeatable = 3;
	cfg->dedup.max_cycle = 4;
	cfg->dedup.cycle_repeats = 2;
	cfg->dedup.max_similar = 4;
	for (size_t i = 0; i < N_ELEMS(default_repeatable); i++)
		snprintf(cfg->dedup.repeatable[cfg->dedup.n_repeatable++],
		         GD_WORD_MAX, "%s", default_repeatable[i]);

	cfg->cross_turn.enabled = true;
	cfg->cross_turn.max_rounds = 4;
	cfg->cross_turn.lookback = 32;
	for (size_t i = 0; i < N_ELEMS(default_mutating); i++)
		snprintf(cfg->cross_turn.mutating[cfg->cross_turn.n_mutating++],
		         GD_WORD_MAX, "%s", default_mutating[i]);
	for (size_t i = 0; i < N_ELEMS(default_volatile); i++)
		snprintf(cfg->cross_turn.volatile_keys[cfg->cross_turn.n_volatile++],
		         GD_WORD_MAX, "%s", default_volatile[i]);

	cfg->failure.enabled = true;
	cfg->failure.max_failures = 2;
	for (size_t i = 0; i < N_ELEMS(default_permanent); i++)
		snprintf(cfg->failure.patterns[cfg->failure.n_patterns++],
		         GD_PATTERN_MAX, "%s", default_permanent[i]);
	for (size_t i = 0; i < N_ELEMS(default_transient); i++)
		snprintf(cfg->failure.transient[cfg->failure.n_transient++],
		         GD_PATTERN_MAX, "%s", default_transient[i]);

	for (size_t i = 0; i < N_ELEMS(default_continuations); i++)
		snprintf(cfg->history.continuations[cfg->history.n_continuations++],
		         GD_PATTERN_MAX, "%s", default_continuations[i]);

	cfg->repeat.enabled = true;
	cfg->repeat.window_bytes = 8192;
	cfg->repeat.max_period = 4096;
	cfg->repeat.min_repeats = 3;
	cfg->repeat.min_span = 256;
	cfg->repeat.min_blank_lines = 16;
	cfg->repeat.min_word_repeats = 8;
	cfg->repeat.counter_repeats = 4;
	cfg->repeat.counter_span = 80;

	cfg->simhash.enabled = true;
	cfg->simhash.shingle = 3;
	cfg->simhash.window = 32;
	cfg->simhash.stride = 4;
	cfg->simhash.max_distance = 3;
	cfg->simhash.min_hits = 4;
	cfg->simhash.history = 512;
	cfg->simhash.min_distinct = 10;

	cfg->paraphrase.enabled = true;
	cfg->paraphrase.min_words = 3;
	cfg->paraphrase.overlap_percent = 50;
	cfg->paraphrase.min_restated = 4;
	cfg->paraphrase.window = 5;

	cfg->budget.max_tool_calls = 128;
	cfg->budget.max_output_bytes = 4u << 20;
	cfg->budget.max_wall_ms = 0;

	cfg->watchdog.first_token_timeout_ms = 180000;
	cfg->watchdog.idle_timeout_ms = 60000;

	cfg->limits.max_args_bytes = 32u << 10;
}

enum key_type {
	K_BOOL, K_U32, K_U64, K_PATTERNS, K_TRANSIENT, K_MUTATING, K_REPEATABLE, K_VOLATILE,
	K_CONTINUATIONS,
	K_PER_TOOL, /* a map: "<key>.<word>" = max_run; "<key>" = "{}" clears it */
};

struct key {
	const char *name;
	enum key_type type;
	size_t off;
	uint64_t min, max;
};

#define F(field) offsetof(struct gd_config, field)

static const struct key keys[] = {
	{ "guards.name_run.enabled", K_BOOL, F(name_run.enabled), 0, 1 },
	{ "guards.name_run.max_run", K_U32, F(name_run.max_run), 2, 100000 },
	{ "guards.name_run.per_tool", K_PER_TOOL, 0, 0, 100000 },
	{ "guards.dedup.enabled", K_BOOL, F(dedup.enabled), 0, 1 },
	{ "guards.dedup.max_repeats", K_U32, F(dedup.max_repeats), 2, GD_CALL_WINDOW },
	{ "guards.dedup.max_repeats_mutating", K_U32, F(dedup.max_repeats_mutating), 2, GD_CALL_WINDOW },
	{ "guards.dedup.max_repeats_repeatable", K_U32, F(dedup.max_repeats_repeatable), 2, GD_CALL_WINDOW },
	{ "guards.dedup.max_cycle", K_U32, F(dedup.max_cycle), 1, GD_MAX_CYCLE },
	{ "guards.dedup.cycle_repeats", K_U32, F(dedup.cycle_repeats), 2, 64 },
	{ "guards.dedup.max_similar", K_U32, F(dedup.max_similar), 0, GD_CALL_WINDOW },
	{ "guards.dedup.repeatable", K_REPEATABLE, 0, 0, 0 },
	{ "guards.cross_turn.enabled", K_BOOL, F(cross_turn.enabled), 0, 1 },
	{ "guards.cross_turn.max_rounds", K_U32, F(cross_turn.max_rounds), 2, 1000 },
	{ "guards.cross_turn.lookback", K_U32, F(cross_turn.lookback), 1, 100000 },
	{ "guards.cross_turn.mutating", K_MUTATING, 0, 0, 0 },
	{ "guards.cross_turn.volatile_keys", K_VOLATILE, 0, 0, 0 },
	{ "guards.failure.enabled", K_BOOL, F(failure.enabled), 0, 1 },
	{ "guards.failure.max_failures", K_U32, F(failure.max_failures), 1, 1000 },
	{ "guards.failure.patterns", K_PATTERNS, 0, 0, 0 },
	{ "guards.failure.transient", K_TRANSIENT, 0, 0, 0 },
	{ "guards.history.continuations", K_CONTINUATIONS, 0, 0, 0 },
	{ "guards.repeat.enabled", K_BOOL, F(repeat.enabled), 0, 1 },
	{ "guards.repeat.window_bytes", K_U32, F(repeat.window_bytes), 64, GD_REPEAT_WINDOW_MAX },
	{ "guards.repeat.max_period", K_U32, F(repeat.max_period), 1, GD_REPEAT_WINDOW_MAX },
	{ "guards.repeat.min_repeats", K_U32, F(repeat.min_repeats), 2, 100000 },
	{ "guards.repeat.min_span", K_U32, F(repeat.min_span), 8, GD_REPEAT_WINDOW_MAX },
	{ "guards.repeat.min_blank_lines", K_U32, F(repeat.min_blank_lines), 0, GD_REPEAT_WINDOW_MAX },
	{ "guards.repeat.min_word_repeats", K_U32, F(repeat.min_word_repeats), 0, 100000 },
	{ "guards.repeat.counter_repeats", K_U32, F(repeat.counter_repeats), 0, 100000 },
	{ "guards.repeat.counter_span", K_U32, F(repeat.counter_span), 8, GD_COUNTER_WINDOW / 2 },
	{ "guards.simhash.enabled", K_BOOL, F(simhash.enabled), 0, 1 },
	{ "guards.simhash.shingle", K_U32, F(simhash.shingle), 1, GD_SIMHASH_MAX_SHINGLE },
	{ "guards.simhash.window", K_U32, F(simhash.window), 4, GD_SIMHASH_MAX_WINDOW },
	{ "guards.simhash.stride", K_U32, F(simhash.stride), 1, GD_SIMHASH_MAX_WINDOW },
	{ "guards.simhash.max_distance", K_U32, F(simhash.max_distance), 0, 32 },
	{ "guards.simhash.min_hits", K_U32, F(simhash.min_hits), 1, 32 },
	{ "guards.simhash.history", K_U32, F(simhash.history), 1, GD_SIMHASH_MAX_HISTORY },
	{ "guards.simhash.min_distinct", K_U32, F(simhash.min_distinct), 0, GD_SIMHASH_MAX_WINDOW },
	{ "guards.paraphrase.enabled", K_BOOL, F(paraphrase.enabled), 0, 1 },
	{ "guards.paraphrase.min_words", K_U32, F(paraphrase.min_words), 1, GD_PARAPHRASE_WORDS },
	{ "guards.paraphrase.overlap_percent", K_U32, F(paraphrase.overlap_percent), 1, 100 },
	{ "guards.paraphrase.min_restated", K_U32, F(paraphrase.min_restated), 1, 31 },
	{ "guards.paraphrase.window", K_U32, F(paraphrase.window), 1, 31 },
	{ "guards.budget.max_tool_calls", K_U32, F(budget.max_tool_calls), 0, UINT32_MAX },
	{ "guards.budget.max_output_bytes", K_U64, F(budget.max_output_bytes), 0, UINT64_MAX },
	{ "guards.budget.max_wall_ms", K_U32, F(budget.max_wall_ms), 0, UINT32_MAX },
	{ "guards.limits.max_args_bytes", K_U32, F(limits.max_args_bytes), 256, GD_ARGS_MAX },
	{ "watchdog.first_token_timeout_ms", K_U32, F(watchdog.first_token_timeout_ms), 0, UINT32_MAX },
	{ "watchdog.idle_timeout_ms", K_U32, F(watchdog.idle_timeout_ms), 0, UINT32_MAX },
};

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < N_ELEMS(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static int parse_u64(const char *v, uint64_t *out)
{
	char *end;
	unsigned long long x;

	if (!*v || *v == '-' || *v == '+' || *v == ' ')
		return -1;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end)
		return -1;
	*out = x;
	return 0;
}

static int list_set(char *base, uint32_t *n, size_t cap, size_t width,
                    const char *value, char *err, size_t errlen)
{
	size_t len = strlen(value);

	if (strcmp(value, "[]") == 0) {
		*n = 0;
		return 0;
	}
	if (len == 0) {
		snprintf(err, errlen, "empty entry");
		return -1;
	}
	if (len >= width) {
		snprintf(err, errlen, "entry of %zu bytes is longer than %zu", len, width - 1);
		return -1;
	}
	if (*n >= cap) {
		snprintf(err, errlen, "more than %zu entries", cap);
		return -1;
	}
	memcpy(base + (size_t)*n * width, value, len + 1);
	(*n)++;
	return 0;
}

/* guards.name_run.per_tool.<word> = <value>, or the map cleared with "{}". */
static int per_tool_set(struct gd_name_run_config *nr, const struct key *k, const char *key,
                        const char *value, char *err, size_t errlen)
{
	size_t plen = strlen(k->name);
	const char *word = key + plen + 1;
	uint64_t x;

	if (key[plen] == '\0') {
		if (strcmp(value, "{}") != 0) {
			snprintf(err, errlen, "a map of tool words to run lengths (%s.read: 64), "
			         "or '{}' to clear it", k->name);
			return -1;
		}
		nr->n_per_tool = 0;
		return 0;
	}
	if (!*word || strlen(word) >= GD_WORD_MAX || strchr(word, '.')) {
		snprintf(err, errlen, "'%s' is not a tool word of 1 to %d bytes", word,
		         GD_WORD_MAX - 1);
		return -1;
	}
	if (parse_u64(value, &x) || x > k->max) {
		snprintf(err, errlen, "'%s' is not an integer in [0, %" PRIu64 "]", value, k->max);
		return -1;
	}
	for (uint32_t i = 0; i < nr->n_per_tool; i++) {
		if (strcasecmp(nr->per_tool[i].word, word) == 0) {
			nr->per_tool[i].max_run = (uint32_t)x;
			return 0;
		}
	}
	if (nr->n_per_tool >= GD_PER_TOOL_MAX) {
		snprintf(err, errlen, "more than %d tools", GD_PER_TOOL_MAX);
		return -1;
	}
	set_tool(&nr->per_tool[nr->n_per_tool++], k->name, word, (uint32_t)x);
	return 0;
}

int gd_config_set(struct gd_config *cfg, const char *key, const char *value,
                  char *err, size_t errlen)
{
	char *base = (char *)cfg;
	char scratch[8];
	uint64_t x;
	bool b;

	if (!err || !errlen) {
		err = scratch; /* the caller does not want the reason */
		errlen = sizeof(scratch);
	}
	err[0] = '\0';
	if (!cfg || !key || !value) {
		snprintf(err, errlen, "bad argument");
		return -1;
	}
	for (size_t i = 0; i < N_ELEMS(keys); i++) {
		const struct key *k = &keys[i];

		if (k->type == K_PER_TOOL) {
			size_t plen = strlen(k->name);
			if (strncmp(k->name, key, plen) != 0 || (key[plen] && key[plen] != '.'))
				continue;
			return per_tool_set(&cfg->name_run, k, key, value, err, errlen);
		}
		if (strcmp(k->name, key) != 0)
			continue;
		switch (k->type) {
		case K_BOOL:
			if (parse_bool(value, &b)) {
				snprintf(err, errlen, "'%s' is not a boolean (true/false)", value);
				return -1;
			}
			*(bool *)(base + k->off) = b;
			return 0;
		case K_U32:
		case K_U64:
			if (parse_u64(value, &x)) {
				snprintf(err, errlen, "'%s' is not a non-negative integer", value);
				return -1;
			}
			if (x < k->min || x > k->max) {
				snprintf(err, errlen, "%" PRIu64 " is out of range [%" PRIu64 ", %" PRIu64 "]",
				         x, k->min, k->max);
				return -1;
			}
			if (k->type == K_U32)
				*(uint32_t *)(base + k->off) = (uint32_t)x;
			else
				*(uint64_t *)(base + k->off) = x;
			return 0;
		case K_PATTERNS:
			return list_set(&cfg->failure.patterns[0][0], &cfg->failure.n_patterns,
			                GD_MAX_PATTERNS, GD_PATTERN_MAX, value, err, errlen);
		case K_TRANSIENT:
			return list_set(&cfg->failure.transient[0][0], &cfg->failure.n_transient,
			                GD_MAX_PATTERNS, GD_PATTERN_MAX, value, err, errlen);
		case K_MUTATING:
			return list_set(&cfg->cross_turn.mutating[0][0], &cfg->cross_turn.n_mutating,
			                GD_MUTATING_MAX, GD_WORD_MAX, value, err, errlen);
		case K_REPEATABLE:
			return list_set(&cfg->dedup.repeatable[0][0], &cfg->dedup.n_repeatable,
			                GD_REPEATABLE_MAX, GD_WORD_MAX, value, err, errlen);
		case K_PER_TOOL:
			break; /* above */
		case K_VOLATILE:
			return list_set(&cfg->cross_turn.volatile_keys[0][0], &cfg->cross_turn.n_volatile,
			                GD_VOLATILE_MAX, GD_WORD_MAX, value, err, errlen);
		case K_CONTINUATIONS:
			return list_set(&cfg->history.continuations[0][0], &cfg->history.n_continuations,
			                GD_MAX_PATTERNS, GD_PATTERN_MAX, value, err, errlen);
		}
	}
	snprintf(err, errlen, "unknown key (loopwarden --help lists them)");
	return -1;
}

static void each_list(const char *key, const char *base, uint32_t n, size_t width,
                      void (*fn)(const char *, const char *, void *), void *ctx)
{
	if (n == 0)
		fn(key, "[]", ctx);
	for (uint32_t i = 0; i < n; i++)
		fn(key, base + (size_t)i * width, ctx);
}

void gd_config_each(const struct gd_config *cfg,
                    void (*fn)(const char *key, const char *value, void *ctx),
                    void *ctx)
{
	const char *base = (const char *)cfg;
	char buf[32];

	for (size_t i = 0; i < N_ELEMS(keys); i++) {
		const struct key *k = &keys[i];

		switch (k->type) {
		case K_BOOL:
			fn(k->name, *(const bool *)(base + k->off) ? "true" : "false", ctx);
			break;
		case K_U32:
			snprintf(buf, sizeof(buf), "%" PRIu32, *(const uint32_t *)(base + k->off));
			fn(k->name, buf, ctx);
			break;
		case K_U64:
			snprintf(buf, sizeof(buf), "%" PRIu64, *(const uint64_t *)(base + k->off));
			fn(k->name, buf, ctx);
			break;
		case K_PATTERNS:
			each_list(k->name, &cfg->failure.patterns[0][0], cfg->failure.n_patterns,
			          GD_PATTERN_MAX, fn, ctx);
			break;
		case K_TRANSIENT:
			each_list(k->name, &cfg->failure.transient[0][0], cfg->failure.n_transient,
			          GD_PATTERN_MAX, fn, ctx);
			break;
		case K_MUTATING:
			each_list(k->name, &cfg->cross_turn.mutating[0][0], cfg->cross_turn.n_mutating,
			          GD_WORD_MAX, fn, ctx);
			break;
		case K_REPEATABLE:
			each_list(k->name, &cfg->dedup.repeatable[0][0], cfg->dedup.n_repeatable,
			          GD_WORD_MAX, fn, ctx);
			break;
		case K_PER_TOOL:
			if (cfg->name_run.n_per_tool == 0)
				fn(k->name, "{}", ctx);
			/* The key lives in the config: callers may keep the pointer. */
			for (uint32_t j = 0; j < cfg->name_run.n_per_tool; j++) {
				snprintf(buf, sizeof(buf), "%" PRIu32, cfg->name_run.per_tool[j].max_run);
				fn(cfg->name_run.per_tool[j].key, buf, ctx);
			}
			break;
		case K_VOLATILE:
			each_list(k->name, &cfg->cross_turn.volatile_keys[0][0], cfg->cross_turn.n_volatile,
			          GD_WORD_MAX, fn, ctx);
			break;
		case K_CONTINUATIONS:
			each_list(k->name, &cfg->history.continuations[0][0],
			          cfg->history.n_continuations, GD_PATTERN_MAX, fn, ctx);
			break;
		}
	}
}
