/* Every fixed cap of the guard library, named in one place. Config values are
 * validated against these by gd_config_set, so a config can never ask a
 * pipeline for more memory than these allow. */
#ifndef LW_GUARDS_LIMITS_H
#define LW_GUARDS_LIMITS_H

#define GD_NAME_MAX 128           /* tool name bytes kept per call (longer: truncated for display, hashed whole) */
#define GD_ID_MAX 128             /* tool-call id bytes compared (longer ids are hashed) */
#define GD_MAX_OPEN_CALLS 16      /* tool calls whose arguments are incomplete at once */
#define GD_CALL_WINDOW 256        /* completed calls remembered per answer (dedup, cycles) */
#define GD_MAX_CYCLE 16           /* longest call cycle the dedup guard may search */
#define GD_CANON_MAX_DEPTH 64     /* JSON nesting accepted by the canonicalizer */
#define GD_CANON_MAX_INPUT (4u << 20) /* bytes of arguments ever canonicalized */
#define GD_ARGS_MAX (1u << 20)    /* upper bound for guards.limits.max_args_bytes */
#define GD_REPEAT_WINDOW_MAX (64u << 10) /* upper bound for guards.repeat.window_bytes */
#define GD_REPEAT_TABLE_BITS 11   /* 8-byte block hash slots per stream, at most 2^11 */
#define GD_REPEAT_RING_MIN 256    /* a stream's first window (it doubles up to window_bytes) */
#define GD_REPEAT_CANDIDATES 8    /* periods tracked at once per stream */
#define GD_REPEAT_LAST_COPY 64    /* bytes of the last of min_repeats copies that must repeat */
#define GD_COUNTER_WINDOW 2048    /* normalized bytes kept by the counter rule per stream */
#define GD_COUNTER_TABLE_BITS 9   /* its block table: 512 slots */
#define GD_COUNTER_NUMBERS 128    /* numbers remembered by the counter rule per stream */
#define GD_COUNTER_SLOTS 16       /* numbers per unit the counter rule compares */
#define GD_SIMHASH_MAX_WINDOW 256 /* tokens per SimHash window, upper bound */
#define GD_SIMHASH_MAX_SHINGLE 8  /* tokens per shingle, upper bound */
#define GD_SIMHASH_MAX_HISTORY 2048 /* earlier window hashes kept, upper bound */
#define GD_SIMHASH_PAST_MIN 64    /* a stream's first ring of earlier windows (it doubles up to history x stride) */
#define GD_SIMHASH_MAX_PAST 32768 /* earlier windows kept per stream, upper bound (one per token) */
#define GD_SIMHASH_SEEN_BITS 32768 /* Bloom filter of the words a stream has used */
#define GD_SIMHASH_MAX_BANDS 9    /* fingerprint bands indexed (max_distance + 1 below this) */
#define GD_SIMHASH_PLANES 9       /* bits of a per-bit count: up to GD_SIMHASH_MAX_WINDOW */
#define GD_PARAPHRASE_SENTENCES 16 /* earlier sentences the paraphrase watchdog compares with */
#define GD_PARAPHRASE_WORDS 24    /* distinct words kept per sentence */
#define GD_PARAPHRASE_NUMBER_BITS 4096 /* Bloom filter of the numbers a reasoning stream has used */
#define GD_HISTORY_MAX_CALLS 8192 /* tool calls read from one history */
#define GD_HISTORY_MAX_CONTENT (256u << 10) /* tail of the last assistant text kept */
#define GD_FAILURE_SCAN 4096      /* bytes of a tool result matched against failure patterns */
#define GD_CONTINUATION_SCAN 1024 /* bytes of a user message matched against guards.history.continuations */
#define GD_MUTATING_MAX 128       /* words in guards.cross_turn.mutating */
#define GD_WORD_MAX 32            /* bytes of one such word */
#define GD_REPEATABLE_MAX 64      /* words in guards.dedup.repeatable */
#define GD_VOLATILE_MAX 64        /* words in guards.cross_turn.volatile_keys */
#define GD_PER_TOOL_MAX 32        /* entries in guards.name_run.per_tool */

#endif
