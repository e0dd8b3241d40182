/* Tokenizers of GGUF vocabularies: SentencePiece-style ("llama": bigram
 * merging by score, U+2581 for spaces, <0xXX> byte fallback) and byte-level
 * BPE ("gpt2": GPT-2 byte mapping, PCRE2 pre-tokenizer regexes of the common
 * families, merges by rank); special/control tokens; BOS/EOS/EOG from the
 * metadata with llama.cpp's defaults; a streaming decoder that only ever
 * emits complete, valid UTF-8.
 *
 * A tokenizer is immutable after construction: encode, piece and the decoder
 * may run on any number of threads at once. It copies what it needs, so it
 * may outlive the eng_gguf it was built from. Statuses are enum eng_status
 * (engine/gguf.h). */
#ifndef LW_ENGINE_TOKENIZER_H
#define LW_ENGINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

/* ---- caps ---------------------------------------------------------------- */

#define ENG_TOK_MAX_VOCAB (1u << 21)     /* tokens in a vocabulary */
#define ENG_TOK_MAX_MERGES (1u << 22)    /* BPE merge rules */
#define ENG_TOK_MAX_TOKEN_LEN 4096       /* bytes of one token's text */
#define ENG_TOK_MAX_TEXT (64u << 20)     /* bytes of text one encode call takes */

/* ---- kinds ----------------------------------------------------------------- */

enum eng_tok_kind {
	ENG_TOK_SPM = 0, /* tokenizer.ggml.model "llama" */
	ENG_TOK_BPE,     /* tokenizer.ggml.model "gpt2" */
	ENG_TOK_KIND_COUNT
};

/* tokenizer.ggml.token_type values (llama.cpp's LLAMA_TOKEN_TYPE_*). */
enum eng_tok_type {
	ENG_TOK_TYPE_UNDEFINED = 0,
	ENG_TOK_TYPE_NORMAL = 1,
	ENG_TOK_TYPE_UNKNOWN = 2,
	ENG_TOK_TYPE_CONTROL = 3,
	ENG_TOK_TYPE_USER_DEFINED = 4,
	ENG_TOK_TYPE_UNUSED = 5,
	ENG_TOK_TYPE_BYTE = 6,
	ENG_TOK_TYPE_COUNT
};

struct eng_tok; /* opaque */

/* ---- construction ------------------------------------------------------------ */

/* Builds the tokenizer described by <g>'s tokenizer.ggml.* metadata (model,
 * pre, tokens, scores, token_type, merges, bos/eos/unknown/padding ids,
 * add_bos_token, add_eos_token, add_space_prefix). On success *<out> is the
 * caller's (eng_tok_free). On failure *<out> is NULL and <err> (may be NULL)
 * names the key and what is wrong: ENG_ERR_NOT_FOUND (a required key is
 * missing), ENG_ERR_TYPE, ENG_ERR_UNSUPPORTED (unknown model or pre-tokenizer
 * family), ENG_ERR_LIMIT, ENG_ERR_FORMAT (duplicate token, bad merge),
 * ENG_ERR_NOMEM. */
ENG_WUR enum eng_status eng_tok_new_from_gguf(const struct eng_gguf *g, struct eng_tok **out,
					      char *err, size_t err_len);

/* Everything eng_tok_new_from_gguf reads, as plain arrays (for tests and
 * generated vocabularies). All pointers are borrowed for the call only. */
struct eng_tok_desc {
	enum eng_tok_kind kind;
	/* BPE pre-tokenizer family, as tokenizer.ggml.pre names it; NULL =
	 * "default". Supported: default; gpt-2 (and mpt, olmo, phi-2, …);
	 * llama3/llama-bpe (and falcon3, pixtral, …; dbrx, smaug-bpe);
	 * glm4/chatglm-bpe; deepseek-coder; deepseek-v3; falcon;
	 * starcoder/smollm (and refact, command-r, codeshell, exaone, …);
	 * qwen2 (and deepseek-r1-qwen, stablelm2, megrez, hunyuan, grok-2, …);
	 * qwen35; gpt-4o/llama4; tekken. Others: ENG_ERR_UNSUPPORTED. */
	const char *pre;
	uint32_t n_tokens;
	const char *const *tokens;  /* n_tokens texts … */
	const uint32_t *token_lens; /* … and their byte lengths (NULL: NUL-terminated) */
	const float *scores;        /* n_tokens, or NULL (all 0) */
	const int32_t *types;       /* n_tokens enum eng_tok_type, or NULL (all NORMAL) */
	uint32_t n_merges;
	const char *const *merges;  /* "left right" in rank order (BPE only) */
	const uint32_t *merge_lens; /* NULL: NUL-terminated */
	/* Special ids; -1 = absent, ENG_TOK_DEFAULT = the model family's default
	 * (SPM: bos 1, eos 2, unk 0; BPE: bos/eos 11 like llama.cpp, no unk).
	 * Set every one: 0 is a valid id, not "unset". */
	int32_t bos, eos, unk, pad;
	int32_t eot, eom;           /* end of turn / message; -1 = absent */
	/* -1 = absent (use the family's default), 0 = false, 1 = true. */
	int add_bos, add_eos, add_space_prefix;
	const char *name;           /* general.name or NULL (phi-3 strip rules) */
};
#define ENG_TOK_DEFAULT (-2)

/* Builds a tokenizer from <d>; same statuses as eng_tok_new_from_gguf. */
ENG_WUR enum eng_status eng_tok_new(const struct eng_tok_desc *d, struct eng_tok **out,
				    char *err, size_t err_len);
void eng_tok_free(struct eng_tok *tok); /* NULL is a no-op */

/* ---- queries ------------------------------------------------------------------ */

enum eng_tok_kind eng_tok_kind(const struct eng_tok *tok);
uint32_t eng_tok_n_vocab(const struct eng_tok *tok);
int32_t eng_tok_bos(const struct eng_tok *tok); /* -1 if none */
int32_t eng_tok_eos(const struct eng_tok *tok); /* -1 if none */
int32_t eng_tok_unk(const struct eng_tok *tok); /* -1 if none */
bool eng_tok_adds_bos(const struct eng_tok *tok); /* what encode(add_special) does */
bool eng_tok_adds_eos(const struct eng_tok *tok);
/* End of generation: EOS, EOT, EOM and the end-of-turn tokens llama.cpp
 * recognises by text (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>,
 * <|endoftext|>, …). False for ids out of range. */
bool eng_tok_is_eog(const struct eng_tok *tok, int32_t id);
/* Type of <id> (ENG_TOK_TYPE_UNDEFINED when out of range). */
enum eng_tok_type eng_tok_type(const struct eng_tok *tok, int32_t id);
/* The vocabulary text of <id> (as stored: ▁ and GPT-2 byte-mapped forms
 * untouched), NUL-terminated, owned by <tok>; <len> (may be NULL) gets its
 * byte length. NULL when out of range. */
const char *eng_tok_text(const struct eng_tok *tok, int32_t id, size_t *len);
/* The id whose vocabulary text is exactly <text>[0..<len>), or -1. */
int32_t eng_tok_find(const struct eng_tok *tok, const char *text, size_t len);

/* ---- encoding ------------------------------------------------------------------ */

/* Tokenizes <text>[0..<len>) (any bytes: invalid UTF-8 never crashes; BPE
 * reads an invalid byte as U+FFFD like llama.cpp). <add_special> adds BOS (and
 * EOS) as the vocabulary asks (eng_tok_adds_bos/eos). <parse_special> splits
 * the text on CONTROL/USER_DEFINED token texts first (longest first) and maps
 * them to their ids; USER_DEFINED tokens are split out even without it, as
 * llama.cpp does.
 * Returns the number of ids written to <out> (≤ <cap>). With <out> NULL and
 * <cap> 0 it only counts and returns the number of ids the text needs. Errors
 * (negative): ENG_ERR_RANGE when <cap> is too small (nothing useful in
 * <out>; eng_tok_encode_bound gives a cap that is always enough),
 * ENG_ERR_LIMIT when <len> > ENG_TOK_MAX_TEXT, ENG_ERR_ARG, ENG_ERR_NOMEM.
 * Scratch memory grows geometrically within a call; nothing is allocated per
 * token. */
ENG_WUR int eng_tok_encode(const struct eng_tok *tok, const char *text, size_t len,
			   bool add_special, bool parse_special, int32_t *out, size_t cap);
/* An upper bound of what eng_tok_encode can return for <len> bytes. */
size_t eng_tok_encode_bound(const struct eng_tok *tok, size_t len);

/* ---- decoding ------------------------------------------------------------------ */

/* The bytes <id> stands for (▁ → space, <0xXX> → that byte, GPT-2 mapping
 * reversed); CONTROL and UNKNOWN tokens give nothing unless <special>.
 * Writes at most <cap> bytes to <buf> (no NUL) and returns the piece length;
 * when that is > <cap> nothing is written and the caller retries with a
 * larger buffer. Returns ENG_ERR_RANGE for an id out of range. The piece may
 * be partial UTF-8: use the decoder for text. */
ENG_WUR int eng_tok_piece(const struct eng_tok *tok, int32_t id, bool special, char *buf,
			  size_t cap);
/* Longest piece of any token, in bytes. */
size_t eng_tok_max_piece(const struct eng_tok *tok);

/* Streaming decoder: feed ids one by one, get complete UTF-8 out. Bytes of a
 * character split across tokens are held until it completes; an invalid
 * sequence becomes U+FFFD; a character still incomplete at flush becomes
 * U+FFFD. Plain struct: init it, no free. */
enum {
	ENG_TOK_DEC_SPECIAL = 1u << 0,     /* render CONTROL/UNKNOWN token texts */
	ENG_TOK_DEC_STRIP_SPACE = 1u << 1, /* drop the leading space of the first
					    * piece when the vocabulary adds a
					    * space prefix (SPM prompt echo) */
};
struct eng_tok_decoder {
	const struct eng_tok *tok;
	unsigned flags;
	bool started;         /* a piece with bytes has been seen */
	uint8_t n_pend;       /* bytes held of an incomplete character */
	uint8_t pend[4];
};
void eng_tok_decoder_init(struct eng_tok_decoder *dec, const struct eng_tok *tok, unsigned flags);
/* Bytes <out> must hold for any single push or flush. */
size_t eng_tok_decoder_out_max(const struct eng_tok *tok);
/* Decodes <id> and writes the newly completed UTF-8 to <out>; returns the
 * byte count (0 when everything is held). ENG_ERR_RANGE if <cap> <
 * eng_tok_decoder_out_max() (state unchanged) or <id> is out of range. */
ENG_WUR int eng_tok_decoder_push(struct eng_tok_decoder *dec, int32_t id, char *out, size_t cap);
/* Ends the stream: a held incomplete character becomes U+FFFD (3 bytes).
 * Returns bytes written (0 or 3); the decoder is ready for a new stream. */
ENG_WUR int eng_tok_decoder_flush(struct eng_tok_decoder *dec, char *out, size_t cap);

#endif
