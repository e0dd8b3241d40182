/* Tokenizers of GGUF vocabularies (see tokenizer.h). The algorithms follow
 * llama.cpp's llama-vocab.cpp so that ids match it exactly:
 *  - SPM: spaces escaped to U+2581, a space prefix before every text fragment
 *    that starts the text or follows a special token, UTF-8 characters merged
 *    pairwise by best score (ties: leftmost), unknown pieces as <0xXX> bytes;
 *  - BPE: the text is split by the family's pre-tokenizer regexes, applied in
 *    sequence to every piece of the previous split (matches and the gaps
 *    between them both stay pieces), then each piece is merged by rank.
 *    GPT-2's byte-to-unicode mapping is undone once at load: vocabulary and
 *    merges are kept as raw bytes, so a piece's bytes are its symbols.
 * Lookups go through open-addressing hash tables over spans of the input, so
 * encoding allocates its scratch once per call and nothing per token. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "engine/tokenizer.h"

#include <ctype.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp token attributes (bit flags). */
enum {
	A_UNKNOWN = 1u << 0,
	A_UNUSED = 1u << 1,
	A_NORMAL = 1u << 2,
	A_CONTROL = 1u << 3,
	A_USER_DEFINED = 1u << 4,
	A_BYTE = 1u << 5,
	A_LSTRIP = 1u << 7,
	A_RSTRIP = 1u << 8,
	A_EOG = 1u << 12, /* ours: end of generation */
};

#define ARENA_MAX (1u << 30) /* bytes of copied texts, keys and pieces */
#define MAX_REGEX 6
#define NO_KEY UINT32_MAX

struct tok_entry {
	uint32_t text_off, text_len;   /* vocabulary text (NUL-terminated in arena) */
	uint32_t key_off, key_len;     /* SPM: = text; BPE: raw bytes (NO_KEY if unmappable) */
	uint32_t piece_off, piece_len; /* decoded bytes (special rendering) */
	float score;
	uint16_t attr;
	uint8_t type;
};

struct merge {
	uint32_t off;   /* left+right raw bytes in arena */
	uint32_t len;   /* total bytes */
	uint32_t split; /* bytes of left */
	int32_t rank;
};

/* Open-addressing table: slot = index+1 (0 empty) and the 32-bit hash. */
struct htab {
	uint32_t *idx;
	uint32_t *hash;
	uint32_t mask;
};

struct eng_tok {
	enum eng_tok_kind kind;
	uint32_t n_vocab;
	struct tok_entry *tokens;
	char *arena;
	size_t arena_len, arena_cap;
	bool arena_full; /* construction hit ARENA_MAX */
	struct htab tmap; /* key -> token */
	struct merge *merges;
	uint32_t n_merges;
	struct htab mmap; /* (left,right) -> merge */
	int32_t *specials; /* ids of CONTROL/USER_DEFINED/UNKNOWN, longest text first */
	uint32_t n_specials;
	int32_t bos, eos, unk, pad, eot, eom;
	bool add_bos, add_eos, add_space_prefix, ignore_merges;
	size_t max_piece;
	size_t max_text;
	pcre2_code *re[MAX_REGEX];
	int n_re;
	char pre[64];
};

/* ---- small helpers ---------------------------------------------------------- */

static void set_err(char *err, size_t err_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;
	if (!err || !err_len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

static uint32_t hash_bytes(const void *p, size_t n, uint32_t seed)
{
	/* FNV-1a 64 folded; spans are short (tokens), so this is cheap. */
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ull ^ seed;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 1099511628211ull;
	}
	h ^= h >> 29;
	return (uint32_t)(h ^ (h >> 32));
}

static enum eng_status htab_init(struct htab *t, uint32_t n)
{
	uint32_t cap = 16;
	while (cap < n * 2u && cap < (1u << 31))
		cap <<= 1;
	t->idx = calloc(cap, sizeof(*t->idx));
	t->hash = calloc(cap, sizeof(*t->hash));
	t->mask = cap - 1;
	return (t->idx && t->hash) ? ENG_OK : ENG_ERR_NOMEM;
}

static void htab_fini(struct htab *t)
{
	free(t->idx);
	free(t->hash);
}

/* Number of bytes of the UTF-8 sequence <c> leads, as llama.cpp counts. */
static size_t utf8_len(unsigned char c)
{
	static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
	return lookup[c >> 4];
}

static size_t utf8_put(uint32_t cp, char *out)
{
	unsigned char *o = (unsigned char *)out;
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xC0 | (cp >> 6));
		o[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xE0 | (cp >> 12));
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | (cp >> 18));
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Lenient decode like llama.cpp's unicode_cpt_from_utf8 (lead byte and
 * continuation bytes checked, overlong forms accepted). Returns the bytes
 * consumed, 0 for an invalid sequence. */
static size_t utf8_get(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0];
	if (!(c & 0x80)) {
		*cp = c;
		return 1;
	}
	if (!(c & 0x40))
		return 0;
	if (!(c & 0x20)) {
		if (n < 2 || (s[1] & 0xC0) != 0x80)
			return 0;
		*cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
		return 2;
	}
	if (!(c & 0x10)) {
		if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		*cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
		return 3;
	}
	if (!(c & 0x08)) {
		if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
		    (s[3] & 0xC0) != 0x80)
			return 0;
		*cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
		      ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
		return 4;
	}
	return 0;
}

/* Rewrites <in> as valid UTF-8 into <out> (room for 3*<n> bytes): every
 * invalid byte, surrogate or code point past U+10FFFF becomes U+FFFD, overlong
 * forms are re-encoded — what llama.cpp's decode/re-encode round trip does.
 * Returns the output length. */
static size_t utf8_sanitize(const char *in, size_t n, char *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, o = 0;
	while (i < n) {
		uint32_t cp = 0;
		size_t k = utf8_get(s + i, n - i, &cp);
		if (k == 0) {
			o += utf8_put(0xFFFD, out + o);
			i++;
			continue;
		}
		if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			cp = 0xFFFD;
		o += utf8_put(cp, out + o);
		i += k;
	}
	return o;
}

/* GPT-2 byte-to-unicode mapping. */
static void byte_map(uint32_t b2u[256])
{
	uint32_t n = 0;
	for (uint32_t b = 0; b < 256; b++) {
		if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174))
			b2u[b] = b;
		else
			b2u[b] = 256 + n++;
	}
}

/* ---- arena ---------------------------------------------------------------------- */

static enum eng_status arena_put(struct eng_tok *t, const void *p, size_t n, bool nul,
				 uint32_t *off)
{
	size_t need = t->arena_len + n + (nul ? 1 : 0);
	if (need > ARENA_MAX) {
		t->arena_full = true;
		return ENG_ERR_LIMIT;
	}
	if (need > t->arena_cap) {
		size_t cap = t->arena_cap ? t->arena_cap : 1u << 16;
		while (cap < need)
			cap *= 2;
		char *a = realloc(t->arena, cap);
		if (!a)
			return ENG_ERR_NOMEM;
		t->arena = a;
		t->arena_cap = cap;
	}
	*off = (uint32_t)t->arena_len;
	if (n)
		memcpy(t->arena + t->arena_len, p, n);
	t->arena_len += n;
	if (nul)
		t->arena[t->arena_len++] = '\0';
	return ENG_OK;
}

/* ---- token and merge tables ---------------------------------------------------- */

static int32_t tmap_find(const struct eng_tok *t, const char *p, size_t n)
{
	uint32_t h = hash_bytes(p, n, 0);
	for (uint32_t i = h & t->tmap.mask;; i = (i + 1) & t->tmap.mask) {
		uint32_t v = t->tmap.idx[i];
		if (!v)
			return -1;
		if (t->tmap.hash[i] != h)
			continue;
		const struct tok_entry *e = &t->tokens[v - 1];
		if (e->key_len == n && memcmp(t->arena + e->key_off, p, n) == 0)
			return (int32_t)(v - 1);
	}
}

/* Inserts token <id> by its key; false if an equal key is already there. */
static bool tmap_add(struct eng_tok *t, uint32_t id)
{
	const struct tok_entry *e = &t->tokens[id];
	const char *p = t->arena + e->key_off;
	uint32_t h = hash_bytes(p, e->key_len, 0);
	for (uint32_t i = h & t->tmap.mask;; i = (i + 1) & t->tmap.mask) {
		uint32_t v = t->tmap.idx[i];
		if (!v) {
			t->tmap.idx[i] = id + 1;
			t->tmap.hash[i] = h;
			return true;
		}
		const struct tok_entry *o = &t->tokens[v - 1];
		if (t->tmap.hash[i] == h && o->key_len == e->key_len &&
		    memcmp(t->arena + o->key_off, p, e->key_len) == 0)
			return false;
	}
}

static uint32_t merge_hash(const char *p, size_t n, size_t split)
{
	return hash_bytes(p, n, (uint32_t)split * 0x9E3779B9u + 1u);
}

/* Rank of merging the adjacent spans <p>[0..split) and <p>[split..n), or -1. */
static int32_t mmap_find(const struct eng_tok *t, const char *p, size_t n, size_t split)
{
	uint32_t h = merge_hash(p, n, split);
	for (uint32_t i = h & t->mmap.mask;; i = (i + 1) & t->mmap.mask) {
		uint32_t v = t->mmap.idx[i];
		if (!v)
			return -1;
		if (t->mmap.hash[i] != h)
			continue;
		const struct merge *m = &t->merges[v - 1];
		if (m->len == n && m->split == split && memcmp(t->arena + m->off, p, n) == 0)
			return m->rank;
	}
}

static void mmap_add(struct eng_tok *t, uint32_t mi)
{
	const struct merge *m = &t->merges[mi];
	const char *p = t->arena + m->off;
	uint32_t h = merge_hash(p, m->len, m->split);
	for (uint32_t i = h & t->mmap.mask;; i = (i + 1) & t->mmap.mask) {
		uint32_t v = t->mmap.idx[i];
		if (!v) {
			t->mmap.idx[i] = mi + 1;
			t->mmap.hash[i] = h;
			return;
		}
		const struct merge *o = &t->merges[v - 1];
		if (t->mmap.hash[i] == h && o->len == m->len && o->split == m->split &&
		    memcmp(t->arena + o->off, p, m->len) == 0)
			return; /* first (lowest) rank wins, like llama.cpp's emplace */
	}
}

/* Maps GPT-2 byte-mapped text back to raw bytes into <out> (room for <n>).
 * Returns the raw length, or -1 if a code point is not in the mapping. */
static long unmap_bytes(const uint8_t u2b_ok[512], const uint8_t u2b[512], const char *p,
			size_t n, char *out)
{
	size_t i = 0, o = 0;
	while (i < n) {
		uint32_t cp;
		size_t k = utf8_get((const unsigned char *)p + i, n - i, &cp);
		if (k == 0 || cp >= 512 || !u2b_ok[cp])
			return -1;
		out[o++] = (char)u2b[cp];
		i += k;
	}
	return (long)o;
}

/* ---- pre-tokenizer families ---------------------------------------------------- */

/* Whitespace as llama.cpp's unicode tables define it (\s and \S below). */
#define WS "\\t\\n\\x0B\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
#define S_ "[" WS "]"
#define NS_ "[^" WS "]"
#define CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|" S_ "+(?!" NS_ ")"
#define RE_LLAMA3                                                                          \
	CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^" WS                 \
		     "\\p{L}\\p{N}]+[\\r\\n]*|" S_ "*[\\r\\n]+|" S_ "+(?!" NS_ ")|" S_ "+"
#define RE_QWEN2                                                                           \
	CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^" WS                      \
		     "\\p{L}\\p{N}]+[\\r\\n]*|" S_ "*[\\r\\n]+|" S_ "+(?!" NS_ ")|" S_ "+"
#define RE_QWEN35                                                                          \
	CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^" WS               \
		     "\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|" S_ "*[\\r\\n]+|" S_ "+(?!" NS_ ")|" S_ "+"

/* GPT-4o / Tekken: the tokenizer.json regexes as they are (PCRE2 has the
 * Unicode classes and (?i:); llama.cpp rewrites them for std::regex). */
#define UPPERISH "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define LOWERISH "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
#define RE_GPT4O                                                                           \
	"[^\\r\\n\\p{L}\\p{N}]?" UPPERISH "*" LOWERISH "+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"      \
	"[^\\r\\n\\p{L}\\p{N}]?" UPPERISH "+" LOWERISH "*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"      \
	"\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*|" S_ "*[\\r\\n]+|" S_ "+(?!" NS_ ")|" S_ "+"
#define RE_TEKKEN                                                                          \
	"[^\\r\\n\\p{L}\\p{N}]?" UPPERISH "*" LOWERISH "+|"                                   \
	"[^\\r\\n\\p{L}\\p{N}]?" UPPERISH "+" LOWERISH "*|"                                   \
	"\\p{N}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*|" S_ "*[\\r\\n]+|" S_ "+(?!" NS_ ")|" S_ "+"

enum { F_IGNORE_MERGES = 1, F_ADD_BOS = 2, F_NO_BOS = 4 };

struct family {
	const char *names; /* '|'-separated tokenizer.ggml.pre values */
	const char *re[MAX_REGEX];
	unsigned flags;
};

static const struct family families[] = {
	{"default",
	 {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"},
	 0},
	{"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|"
	 "mpt|olmo|jais|trillion|granite-docling|exaone4|jina-v1-en|jina-v2-code|roberta-bpe",
	 {RE_GPT2},
	 0},
	{"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano",
	 {RE_LLAMA3},
	 F_IGNORE_MERGES | F_ADD_BOS},
	{"dbrx|smaug-bpe", {RE_LLAMA3}, 0},
	{"glm4|chatglm-bpe", {RE_LLAMA3}, F_NO_BOS},
	{"deepseek-coder",
	 {"[\\r\\n]", S_ "?\\p{L}+", S_ "?\\p{P}+", "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
	  "\\p{N}"},
	 0},
	{"deepseek-v3",
	 {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
	  "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
	  "?[\\p{P}\\p{S}]+[\\r\\n]*|" S_ "*[\\r\\n]+|" S_ "+(?!" NS_ ")|" S_ "+"},
	 0},
	{"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, 0},
	{"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b|mellum2",
	 {"\\p{N}", RE_GPT2},
	 0},
	{"qwen2|deepseek-r1-qwen|kormo|f2llmv2|megrez|stablelm2|hunyuan|solar-open|grok-2",
	 {RE_QWEN2},
	 0},
	{"qwen35", {RE_QWEN35}, 0},
	{"gpt-4o|llama4|kanana2|talkie|minimax-m2", {RE_GPT4O}, 0},
	{"tekken", {RE_TEKKEN}, F_IGNORE_MERGES | F_ADD_BOS},
};

static bool name_in(const char *names, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = names; *p;) {
		const char *bar = strchr(p, '|');
		size_t k = bar ? (size_t)(bar - p) : strlen(p);
		if (k == n && memcmp(p, name, n) == 0)
			return true;
		if (!bar)
			break;
		p = bar + 1;
	}
	return false;
}

static const struct family *family_find(const char *pre)
{
	if (!pre || !*pre)
		pre = "default";
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		if (name_in(families[i].names, pre))
			return &families[i];
	return NULL;
}

/* ---- end-of-generation and special texts ---------------------------------------- */

static const char *const eog_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
	"<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
	"<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
	"<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", "[e~[",
};

/* Texts llama.cpp forces to CONTROL (EOT, EOM and FIM tokens); the last
 * three (FIM pad/repo/sep families) also end generation. */
static const char *const control_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
	"<EOT>", "_<EOT>", "[EOT]", "<end_of_utterance>", "<|eom_id|>",
	"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "\xe2\x96\x81<PRE>",
	"<|code_prefix|>", "<|prefix|>", "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>",
	"\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", "<|fim_middle|>", "<fim-middle>",
	"<fim_middle>", "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>",
};
static const char *const fim_eog_texts[] = {
	"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>", "<|repo_name|>",
	"<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
};

/* gpt-oss markup llama.cpp always renders (USER_DEFINED). */
static const char *const harmony_texts[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};

static bool text_is(const struct eng_tok *t, uint32_t id, const char *s)
{
	const struct tok_entry *e = &t->tokens[id];
	size_t n = strlen(s);
	return e->text_len == n && memcmp(t->arena + e->text_off, s, n) == 0;
}

static bool text_in(const struct eng_tok *t, uint32_t id, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (text_is(t, id, list[i]))
			return true;
	return false;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The byte a "<0xXX>" text stands for, or -1. */
static int byte_token_value(const char *s, size_t n)
{
	if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>')
		return -1;
	int hi = hexval(s[3]), lo = hexval(s[4]);
	return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

/* ---- construction ------------------------------------------------------------------ */

static int cmp_special(const void *a, const void *b, void *ctx)
{
	const struct eng_tok *t = ctx;
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	uint32_t lx = t->tokens[x].text_len, ly = t->tokens[y].text_len;
	if (lx != ly)
		return lx > ly ? -1 : 1;
	return (x > y) - (x < y);
}

/* Builds the decoded piece of every token (special rendering). */
static enum eng_status build_pieces(struct eng_tok *t, const uint8_t u2b_ok[512],
				    const uint8_t u2b[512])
{
	char *buf = malloc(ENG_TOK_MAX_TOKEN_LEN * 2 + 16);
	enum eng_status st = ENG_OK;
	if (!buf)
		return ENG_ERR_NOMEM;
	t->max_piece = 0;
	for (uint32_t id = 0; id < t->n_vocab; id++) {
		struct tok_entry *e = &t->tokens[id];
		const char *txt = t->arena + e->text_off;
		size_t n = 0;
		if (e->attr & (A_UNKNOWN | A_CONTROL | A_USER_DEFINED)) {
			memcpy(buf, txt, e->text_len);
			n = e->text_len;
		} else if (e->attr & A_NORMAL) {
			if (t->kind == ENG_TOK_SPM) {
				for (size_t i = 0; i < e->text_len;) {
					if (i + 3 <= e->text_len && memcmp(txt + i, "\xe2\x96\x81", 3) == 0) {
						buf[n++] = ' ';
						i += 3;
					} else {
						buf[n++] = txt[i++];
					}
				}
			} else {
				long r = unmap_bytes(u2b_ok, u2b, txt, e->text_len, buf);
				if (r >= 0) {
					n = (size_t)r;
				} else { /* not byte-mapped: keep it as text */
					memcpy(buf, txt, e->text_len);
					n = e->text_len;
				}
			}
		} else if (e->attr & A_BYTE) {
			int b = byte_token_value(txt, e->text_len);
			if (b >= 0) {
				buf[0] = (char)b;
				n = 1;
			} else {
				memcpy(buf, txt, e->text_len);
				n = e->text_len;
			}
		}
		st = arena_put(t, buf, n, false, &e->piece_off);
		if (st != ENG_OK)
			break;
		e->piece_len = (uint32_t)n;
		if (n > t->max_piece)
			t->max_piece = n;
	}
	free(buf);
	return st;
}

static enum eng_status compile_family(struct eng_tok *t, const struct family *f, char *err,
				      size_t err_len)
{
	for (int i = 0; i < MAX_REGEX && f->re[i]; i++) {
		int ec = 0;
		PCRE2_SIZE eo = 0;
		pcre2_code *c = pcre2_compile((PCRE2_SPTR)f->re[i], PCRE2_ZERO_TERMINATED,
					      PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
		if (!c) {
			PCRE2_UCHAR msg[160];
			pcre2_get_error_message(ec, msg, sizeof(msg));
			set_err(err, err_len, "tokenizer.ggml.pre '%s': regex %d at offset %zu: %s",
				t->pre, i, (size_t)eo, (const char *)msg);
			return ENG_ERR_FORMAT;
		}
		(void)pcre2_jit_compile(c, PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
		t->re[t->n_re++] = c;
	}
	return ENG_OK;
}

static int32_t pick_id(int32_t given, int32_t dflt, uint32_t n)
{
	int32_t id = given == ENG_TOK_DEFAULT ? dflt : given;
	if (id < 0 || (uint32_t)id >= n)
		return -1;
	return id;
}

enum eng_status eng_tok_new(const struct eng_tok_desc *d, struct eng_tok **out, char *err,
			    size_t err_len)
{
	enum eng_status st = ENG_OK;
	struct eng_tok *t = NULL;
	char *kbuf = NULL;
	uint32_t b2u[256];
	uint8_t u2b[512] = {0}, u2b_ok[512] = {0};

	if (out)
		*out = NULL;
	if (!d || !out || (d->n_tokens && !d->tokens)) {
		set_err(err, err_len, "tokenizer: invalid arguments");
		return ENG_ERR_ARG;
	}
	if (d->kind != ENG_TOK_SPM && d->kind != ENG_TOK_BPE) {
		set_err(err, err_len, "tokenizer.ggml.model: unsupported kind %d", (int)d->kind);
		return ENG_ERR_UNSUPPORTED;
	}
	if (d->n_tokens == 0 || d->n_tokens > ENG_TOK_MAX_VOCAB) {
		set_err(err, err_len, "tokenizer.ggml.tokens: %u tokens (want 1..%u)", d->n_tokens,
			ENG_TOK_MAX_VOCAB);
		return d->n_tokens ? ENG_ERR_LIMIT : ENG_ERR_FORMAT;
	}
	if (d->n_merges > ENG_TOK_MAX_MERGES) {
		set_err(err, err_len, "tokenizer.ggml.merges: %u merges (max %u)", d->n_merges,
			ENG_TOK_MAX_MERGES);
		return ENG_ERR_LIMIT;
	}
	byte_map(b2u);
	for (uint32_t b = 0; b < 256; b++) {
		u2b[b2u[b]] = (uint8_t)b;
		u2b_ok[b2u[b]] = 1;
	}

	t = calloc(1, sizeof(*t));
	kbuf = malloc(2 * ENG_TOK_MAX_TOKEN_LEN + 64);
	if (!t || !kbuf) {
		st = ENG_ERR_NOMEM;
		goto fail;
	}
	t->kind = d->kind;
	t->n_vocab = d->n_tokens;
	snprintf(t->pre, sizeof(t->pre), "%s", d->pre && *d->pre ? d->pre : "default");
	t->tokens = calloc(d->n_tokens, sizeof(*t->tokens));
	if (!t->tokens) {
		st = ENG_ERR_NOMEM;
		goto fail;
	}

	/* Family-level defaults (llama.cpp's load()). */
	const struct family *fam = NULL;
	unsigned fflags = 0;
	if (t->kind == ENG_TOK_BPE) {
		fam = family_find(d->pre);
		if (!fam) {
			set_err(err, err_len, "tokenizer.ggml.pre: unsupported pre-tokenizer '%s'", t->pre);
			st = ENG_ERR_UNSUPPORTED;
			goto fail;
		}
		fflags = fam->flags;
		if (d->n_merges && !d->merges) {
			st = ENG_ERR_ARG;
			goto fail;
		}
	}

	/* Tokens: texts, keys, types, scores. */
	for (uint32_t i = 0; i < d->n_tokens; i++) {
		struct tok_entry *e = &t->tokens[i];
		const char *s = d->tokens[i];
		size_t n = s ? (d->token_lens ? d->token_lens[i] : strlen(s)) : 0;
		char empty[32];
		if (n == 0) { /* llama.cpp renames empty tokens */
			n = (size_t)snprintf(empty, sizeof(empty), "[EMPTY_%u]", i);
			s = empty;
		}
		if (n > ENG_TOK_MAX_TOKEN_LEN) {
			set_err(err, err_len, "tokenizer.ggml.tokens[%u]: %zu bytes (max %u)", i, n,
				ENG_TOK_MAX_TOKEN_LEN);
			st = ENG_ERR_LIMIT;
			goto fail;
		}
		st = arena_put(t, s, n, true, &e->text_off);
		if (st != ENG_OK)
			goto fail;
		e->text_len = (uint32_t)n;
		e->score = d->scores ? d->scores[i] : 0.0f;
		int32_t ty = d->types ? d->types[i] : ENG_TOK_TYPE_NORMAL;
		if (ty < 0 || ty >= ENG_TOK_TYPE_COUNT)
			ty = ENG_TOK_TYPE_UNDEFINED;
		e->type = (uint8_t)ty;
		switch (ty) {
		case ENG_TOK_TYPE_NORMAL: e->attr = A_NORMAL; break;
		case ENG_TOK_TYPE_UNKNOWN: e->attr = A_UNKNOWN; break;
		case ENG_TOK_TYPE_CONTROL: e->attr = A_CONTROL; break;
		case ENG_TOK_TYPE_USER_DEFINED: e->attr = A_USER_DEFINED; break;
		case ENG_TOK_TYPE_UNUSED: e->attr = A_UNUSED; break;
		case ENG_TOK_TYPE_BYTE: e->attr = A_BYTE; break;
		default: e->attr = 0; break;
		}
		e->key_off = e->text_off;
		e->key_len = e->text_len;
	}
	/* Duplicate texts are an error (llama.cpp refuses them too). */
	st = htab_init(&t->tmap, d->n_tokens);
	if (st != ENG_OK)
		goto fail;
	if (t->kind == ENG_TOK_SPM) {
		for (uint32_t i = 0; i < d->n_tokens; i++) {
			if (!tmap_add(t, i)) {
				set_err(err, err_len, "tokenizer.ggml.tokens[%u]: duplicate token '%.64s'", i,
					t->arena + t->tokens[i].text_off);
				st = ENG_ERR_FORMAT;
				goto fail;
			}
		}
	} else {
		/* Keys are the raw bytes behind the GPT-2 mapping; a text that is
		 * not byte-mapped can never come out of the merges, so it gets no
		 * key. Duplicates of the text itself are caught by a text table. */
		struct htab seen;
		st = htab_init(&seen, d->n_tokens);
		if (st != ENG_OK)
			goto fail;
		for (uint32_t i = 0; i < d->n_tokens && st == ENG_OK; i++) {
			struct tok_entry *e = &t->tokens[i];
			const char *p = t->arena + e->text_off;
			uint32_t h = hash_bytes(p, e->text_len, 7);
			for (uint32_t k = h & seen.mask;; k = (k + 1) & seen.mask) {
				uint32_t v = seen.idx[k];
				if (!v) {
					seen.idx[k] = i + 1;
					seen.hash[k] = h;
					break;
				}
				const struct tok_entry *o = &t->tokens[v - 1];
				if (seen.hash[k] == h && o->text_len == e->text_len &&
				    memcmp(t->arena + o->text_off, p, e->text_len) == 0) {
					set_err(err, err_len,
						"tokenizer.ggml.tokens[%u]: duplicate token '%.64s'", i, p);
					st = ENG_ERR_FORMAT;
					break;
				}
			}
		}
		htab_fini(&seen);
		if (st != ENG_OK)
			goto fail;
		for (uint32_t i = 0; i < d->n_tokens; i++) {
			struct tok_entry *e = &t->tokens[i];
			long r = unmap_bytes(u2b_ok, u2b, t->arena + e->text_off, e->text_len, kbuf);
			if (r < 0) {
				e->key_off = NO_KEY;
				e->key_len = 0;
				continue;
			}
			st = arena_put(t, kbuf, (size_t)r, false, &e->key_off);
			if (st != ENG_OK)
				goto fail;
			e->key_len = (uint32_t)r;
			(void)tmap_add(t, i); /* raw keys of distinct texts are distinct */
		}
	}

	/* Merges (BPE): "left right", split at the first space after byte 0. */
	if (t->kind == ENG_TOK_BPE && d->n_merges) {
		t->merges = calloc(d->n_merges, sizeof(*t->merges));
		if (!t->merges) {
			st = ENG_ERR_NOMEM;
			goto fail;
		}
		st = htab_init(&t->mmap, d->n_merges);
		if (st != ENG_OK)
			goto fail;
		for (uint32_t i = 0; i < d->n_merges; i++) {
			const char *s = d->merges[i];
			size_t n = s ? (d->merge_lens ? d->merge_lens[i] : strlen(s)) : 0;
			const char *sp = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
			if (!sp)
				continue;
			if (n > 2 * ENG_TOK_MAX_TOKEN_LEN) {
				set_err(err, err_len, "tokenizer.ggml.merges[%u]: %zu bytes (max %u)", i, n,
					2 * ENG_TOK_MAX_TOKEN_LEN);
				st = ENG_ERR_LIMIT;
				goto fail;
			}
			size_t ln = (size_t)(sp - s);
			long a = unmap_bytes(u2b_ok, u2b, s, ln, kbuf);
			if (a <= 0)
				continue;
			long b = unmap_bytes(u2b_ok, u2b, sp + 1, n - ln - 1, kbuf + a);
			if (b <= 0)
				continue;
			struct merge *m = &t->merges[t->n_merges];
			st = arena_put(t, kbuf, (size_t)(a + b), false, &m->off);
			if (st != ENG_OK)
				goto fail;
			m->len = (uint32_t)(a + b);
			m->split = (uint32_t)a;
			m->rank = (int32_t)i;
			mmap_add(t, t->n_merges);
			t->n_merges++;
		}
	} else if (t->kind == ENG_TOK_BPE) {
		st = htab_init(&t->mmap, 1);
		if (st != ENG_OK)
			goto fail;
	}

	/* Special ids and flags. */
	if (t->kind == ENG_TOK_SPM) {
		t->bos = pick_id(d->bos, 1, t->n_vocab);
		t->eos = pick_id(d->eos, 2, t->n_vocab);
		t->unk = pick_id(d->unk, 0, t->n_vocab);
		t->add_bos = true;
		t->add_eos = false;
		t->add_space_prefix = true;
	} else {
		t->bos = pick_id(d->bos, (fflags & F_NO_BOS) ? -1 : 11, t->n_vocab);
		t->eos = pick_id(d->eos, 11, t->n_vocab);
		t->unk = pick_id(d->unk, -1, t->n_vocab);
		t->add_bos = (fflags & F_ADD_BOS) != 0;
		t->add_eos = false;
		t->add_space_prefix = false;
		t->ignore_merges = (fflags & F_IGNORE_MERGES) != 0;
	}
	t->pad = pick_id(d->pad, -1, t->n_vocab);
	t->eot = pick_id(d->eot, -1, t->n_vocab);
	t->eom = pick_id(d->eom, -1, t->n_vocab);
	if (d->add_bos >= 0)
		t->add_bos = d->add_bos != 0;
	if (d->add_eos >= 0)
		t->add_eos = d->add_eos != 0;
	if (d->add_space_prefix >= 0)
		t->add_space_prefix = d->add_space_prefix != 0;
	if (t->add_bos && t->bos < 0) {
		set_err(err, err_len, "tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set");
		st = ENG_ERR_FORMAT;
		goto fail;
	}
	if (t->add_eos && t->eos < 0) {
		set_err(err, err_len, "tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set");
		st = ENG_ERR_FORMAT;
		goto fail;
	}

	/* Control-looking texts, end of generation. */
	{
		int32_t end_id = -1, s_id = -1;
		bool has_return = false, has_call = false, has_flush = false, has_tool_resp = false;
		for (uint32_t i = 0; i < t->n_vocab; i++) {
			struct tok_entry *e = &t->tokens[i];
			unsigned char c0 = (unsigned char)t->arena[e->text_off];
			if (c0 != '<' && c0 != '[' && c0 != '_' && c0 != 0xE2)
				continue; /* every listed text starts with one of these */
			if (text_in(t, i, control_texts, COUNT(control_texts)))
				e->attr |= A_CONTROL;
			if (text_in(t, i, fim_eog_texts, COUNT(fim_eog_texts)))
				e->attr |= A_CONTROL | A_EOG;
			if (text_in(t, i, eog_texts, COUNT(eog_texts))) {
				e->attr |= A_CONTROL | A_EOG;
				if (text_is(t, i, "<|end|>"))
					end_id = (int32_t)i;
				else if (text_is(t, i, "</s>"))
					s_id = (int32_t)i;
				else if (text_is(t, i, "<|return|>"))
					has_return = true;
				else if (text_is(t, i, "<|call|>") || text_is(t, i, "<|calls|>"))
					has_call = true;
				else if (text_is(t, i, "<|flush|>"))
					has_flush = true;
				else if (text_is(t, i, "<|tool_response>"))
					has_tool_resp = true;
			}
			if (text_in(t, i, harmony_texts, COUNT(harmony_texts)))
				e->attr = A_USER_DEFINED; /* gpt-oss: always rendered */
		}
		if (t->eos >= 0)
			t->tokens[t->eos].attr |= A_EOG;
		if (t->eot >= 0)
			t->tokens[t->eot].attr |= A_EOG;
		if (t->eom >= 0)
			t->tokens[t->eom].attr |= A_EOG;
		if (end_id >= 0 && has_call && (has_return || has_flush))
			t->tokens[end_id].attr = A_USER_DEFINED; /* o200k_harmony / solar-open */
		if (s_id >= 0 && has_tool_resp)
			t->tokens[s_id].attr = A_NORMAL; /* gemma4 */
	}

	/* Special tokens cache, longest first. */
	for (uint32_t i = 0; i < t->n_vocab; i++)
		if (t->tokens[i].attr & (A_CONTROL | A_USER_DEFINED | A_UNKNOWN))
			t->n_specials++;
	if (t->n_specials) {
		t->specials = malloc(t->n_specials * sizeof(*t->specials));
		if (!t->specials) {
			st = ENG_ERR_NOMEM;
			goto fail;
		}
		uint32_t k = 0;
		for (uint32_t i = 0; i < t->n_vocab; i++)
			if (t->tokens[i].attr & (A_CONTROL | A_USER_DEFINED | A_UNKNOWN))
				t->specials[k++] = (int32_t)i;
		qsort_r(t->specials, t->n_specials, sizeof(*t->specials), cmp_special, t);
	}

	/* Phi-3: special tokens swallow the whitespace after them. */
	if (d->name) {
		char low[128];
		size_t n = strlen(d->name);
		if (n >= sizeof(low))
			n = sizeof(low) - 1;
		for (size_t i = 0; i < n; i++)
			low[i] = (char)tolower((unsigned char)d->name[i]);
		low[n] = '\0';
		if (strstr(low, "phi-3") || strstr(low, "phi3")) {
			for (uint32_t i = 0; i < t->n_specials; i++)
				t->tokens[t->specials[i]].attr |= A_RSTRIP;
			for (uint32_t i = 0; i < t->n_vocab; i++) {
				if (text_is(t, i, "</s>"))
					t->tokens[i].attr |= A_RSTRIP;
				if (text_is(t, i, "<unk>") || text_is(t, i, "<s>") ||
				    text_is(t, i, "<|endoftext|>"))
					t->tokens[i].attr &= (uint16_t)~A_RSTRIP;
			}
		}
	}

	st = build_pieces(t, u2b_ok, u2b);
	if (st != ENG_OK)
		goto fail;

	if (t->kind == ENG_TOK_BPE) {
		st = compile_family(t, fam, err, err_len);
		if (st != ENG_OK)
			goto fail;
	}

	free(kbuf);
	*out = t;
	return ENG_OK;
fail:
	if (st == ENG_ERR_NOMEM)
		set_err(err, err_len, "tokenizer: out of memory");
	else if (st == ENG_ERR_LIMIT && t && t->arena_full)
		set_err(err, err_len, "tokenizer: vocabulary texts over %u bytes in all", ARENA_MAX);
	free(kbuf);
	eng_tok_free(t);
	return st;
}

void eng_tok_free(struct eng_tok *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->n_re; i++)
		pcre2_code_free(t->re[i]);
	htab_fini(&t->tmap);
	htab_fini(&t->mmap);
	free(t->specials);
	free(t->merges);
	free(t->tokens);
	free(t->arena);
	free(t);
}

/* ---- from GGUF ----------------------------------------------------------------------- */

static enum eng_status gguf_str_arr(const struct eng_gguf *g, const char *key, bool required,
				    uint32_t max, const char ***ptrs, uint32_t **lens, uint32_t *n,
				    char *err, size_t err_len)
{
	struct eng_gguf_arr arr;
	enum eng_status st = eng_gguf_get_arr(g, key, &arr);
	*ptrs = NULL;
	*lens = NULL;
	*n = 0;
	if (st == ENG_ERR_NOT_FOUND && !required)
		return ENG_OK;
	if (st != ENG_OK) {
		set_err(err, err_len, "%s: %s", key, st == ENG_ERR_NOT_FOUND ? "missing" : eng_strerror(st));
		return st;
	}
	if (arr.type != ENG_GGUF_STRING) {
		set_err(err, err_len, "%s: array of %s, want strings", key, eng_gguf_vtype_name(arr.type));
		return ENG_ERR_TYPE;
	}
	if (arr.n > max) {
		set_err(err, err_len, "%s: %llu entries (max %u)", key, (unsigned long long)arr.n, max);
		return ENG_ERR_LIMIT;
	}
	*ptrs = malloc((arr.n ? arr.n : 1) * sizeof(**ptrs));
	*lens = malloc((arr.n ? arr.n : 1) * sizeof(**lens));
	if (!*ptrs || !*lens) {
		set_err(err, err_len, "%s: out of memory", key);
		return ENG_ERR_NOMEM;
	}
	for (uint64_t i = 0; i < arr.n; i++) {
		struct eng_str s;
		st = eng_gguf_arr_str(&arr, i, &s);
		if (st != ENG_OK) {
			set_err(err, err_len, "%s[%llu]: %s", key, (unsigned long long)i, eng_strerror(st));
			return st;
		}
		if (s.len > 2u * ENG_TOK_MAX_TOKEN_LEN) {
			set_err(err, err_len, "%s[%llu]: %zu bytes (max %u)", key, (unsigned long long)i,
				s.len, 2u * ENG_TOK_MAX_TOKEN_LEN);
			return ENG_ERR_LIMIT;
		}
		(*ptrs)[i] = s.ptr;
		(*lens)[i] = (uint32_t)s.len;
	}
	*n = (uint32_t)arr.n;
	return ENG_OK;
}

static int32_t gguf_id(const struct eng_gguf *g, const char *key)
{
	uint32_t v;
	if (eng_gguf_get_u32(g, key, &v) != ENG_OK)
		return ENG_TOK_DEFAULT; /* absent, or not a usable id: keep the default */
	return v > (uint32_t)INT32_MAX ? ENG_TOK_DEFAULT : (int32_t)v;
}

static int gguf_flag(const struct eng_gguf *g, const char *key)
{
	bool b;
	return eng_gguf_get_bool(g, key, &b) == ENG_OK ? (int)b : -1;
}

enum eng_status eng_tok_new_from_gguf(const struct eng_gguf *g, struct eng_tok **out, char *err,
				      size_t err_len)
{
	enum eng_status st;
	struct eng_tok_desc d;
	struct eng_str model, pre, name;
	const char **toks = NULL, **merges = NULL;
	uint32_t *tok_lens = NULL, *merge_lens = NULL, n_tok = 0, n_merge = 0;
	float *scores = NULL;
	int32_t *types = NULL;
	char prebuf[64], namebuf[128];

	if (out)
		*out = NULL;
	if (!g || !out) {
		set_err(err, err_len, "tokenizer: invalid arguments");
		return ENG_ERR_ARG;
	}
	memset(&d, 0, sizeof(d));
	st = eng_gguf_get_str(g, "tokenizer.ggml.model", &model);
	if (st != ENG_OK) {
		set_err(err, err_len, "tokenizer.ggml.model: %s",
			st == ENG_ERR_NOT_FOUND ? "missing" : eng_strerror(st));
		return st;
	}
	if (model.len == 5 && memcmp(model.ptr, "llama", 5) == 0) {
		d.kind = ENG_TOK_SPM;
	} else if (model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0) {
		d.kind = ENG_TOK_BPE;
	} else {
		set_err(err, err_len, "tokenizer.ggml.model: unsupported tokenizer '%.*s'",
			(int)(model.len > 64 ? 64 : model.len), model.ptr);
		return ENG_ERR_UNSUPPORTED;
	}
	if (eng_gguf_get_str(g, "tokenizer.ggml.pre", &pre) == ENG_OK) {
		if (pre.len >= sizeof(prebuf)) {
			set_err(err, err_len, "tokenizer.ggml.pre: unsupported pre-tokenizer '%.*s…'", 32, pre.ptr);
			return ENG_ERR_UNSUPPORTED;
		}
		memcpy(prebuf, pre.ptr, pre.len);
		prebuf[pre.len] = '\0';
		d.pre = prebuf;
	}
	if (eng_gguf_get_str(g, "general.name", &name) == ENG_OK) {
		size_t n = name.len < sizeof(namebuf) ? name.len : sizeof(namebuf) - 1;
		memcpy(namebuf, name.ptr, n);
		namebuf[n] = '\0';
		d.name = namebuf;
	}

	st = gguf_str_arr(g, "tokenizer.ggml.tokens", true, ENG_TOK_MAX_VOCAB, &toks, &tok_lens,
			  &n_tok, err, err_len);
	if (st != ENG_OK)
		goto out;
	if (n_tok == 0) {
		set_err(err, err_len, "tokenizer.ggml.tokens: empty vocabulary");
		st = ENG_ERR_FORMAT;
		goto out;
	}
	if (d.kind == ENG_TOK_BPE) {
		st = gguf_str_arr(g, "tokenizer.ggml.merges", true, ENG_TOK_MAX_MERGES, &merges,
				  &merge_lens, &n_merge, err, err_len);
		if (st != ENG_OK)
			goto out;
	}

	/* Scores (f32, or i32 like some converters write) and token types. */
	{
		struct eng_gguf_arr arr;
		st = eng_gguf_get_arr(g, "tokenizer.ggml.scores", &arr);
		if (st == ENG_OK) {
			if (arr.n < n_tok) {
				set_err(err, err_len, "tokenizer.ggml.scores: %llu entries for %u tokens",
					(unsigned long long)arr.n, n_tok);
				st = ENG_ERR_FORMAT;
				goto out;
			}
			scores = malloc(n_tok * sizeof(*scores));
			if (!scores) {
				st = ENG_ERR_NOMEM;
				goto out;
			}
			for (uint32_t i = 0; i < n_tok; i++) {
				st = eng_gguf_arr_f32(&arr, i, &scores[i]);
				if (st == ENG_ERR_TYPE) {
					int64_t v;
					st = eng_gguf_arr_i64(&arr, i, &v);
					scores[i] = (float)v;
				}
				if (st != ENG_OK) {
					set_err(err, err_len, "tokenizer.ggml.scores[%u]: %s", i, eng_strerror(st));
					goto out;
				}
			}
		} else if (st != ENG_ERR_NOT_FOUND) {
			set_err(err, err_len, "tokenizer.ggml.scores: %s", eng_strerror(st));
			goto out;
		}
		st = eng_gguf_get_arr(g, "tokenizer.ggml.token_type", &arr);
		if (st == ENG_OK) {
			if (arr.n < n_tok) {
				set_err(err, err_len, "tokenizer.ggml.token_type: %llu entries for %u tokens",
					(unsigned long long)arr.n, n_tok);
				st = ENG_ERR_FORMAT;
				goto out;
			}
			types = malloc(n_tok * sizeof(*types));
			if (!types) {
				st = ENG_ERR_NOMEM;
				goto out;
			}
			for (uint32_t i = 0; i < n_tok; i++) {
				st = eng_gguf_arr_i32(&arr, i, &types[i]);
				if (st == ENG_ERR_RANGE) {
					types[i] = ENG_TOK_TYPE_UNDEFINED;
					st = ENG_OK;
				}
				if (st != ENG_OK) {
					set_err(err, err_len, "tokenizer.ggml.token_type[%u]: %s", i,
						eng_strerror(st));
					goto out;
				}
			}
		} else if (st != ENG_ERR_NOT_FOUND) {
			set_err(err, err_len, "tokenizer.ggml.token_type: %s", eng_strerror(st));
			goto out;
		}
		st = ENG_OK;
	}

	d.n_tokens = n_tok;
	d.tokens = toks;
	d.token_lens = tok_lens;
	d.scores = scores;
	d.types = types;
	d.n_merges = n_merge;
	d.merges = merges;
	d.merge_lens = merge_lens;
	d.bos = gguf_id(g, "tokenizer.ggml.bos_token_id");
	d.eos = gguf_id(g, "tokenizer.ggml.eos_token_id");
	d.unk = gguf_id(g, "tokenizer.ggml.unknown_token_id");
	d.pad = gguf_id(g, "tokenizer.ggml.padding_token_id");
	d.eot = gguf_id(g, "tokenizer.ggml.eot_token_id");
	d.eom = gguf_id(g, "tokenizer.ggml.eom_token_id");
	d.add_bos = gguf_flag(g, "tokenizer.ggml.add_bos_token");
	d.add_eos = gguf_flag(g, "tokenizer.ggml.add_eos_token");
	d.add_space_prefix = gguf_flag(g, "tokenizer.ggml.add_space_prefix");
	/* A metadata id out of range keeps the family default, like llama.cpp. */
	if (d.bos >= 0 && (uint32_t)d.bos >= n_tok)
		d.bos = ENG_TOK_DEFAULT;
	if (d.eos >= 0 && (uint32_t)d.eos >= n_tok)
		d.eos = ENG_TOK_DEFAULT;
	if (d.unk >= 0 && (uint32_t)d.unk >= n_tok)
		d.unk = ENG_TOK_DEFAULT;
	if (d.pad >= 0 && (uint32_t)d.pad >= n_tok)
		d.pad = ENG_TOK_DEFAULT;
	st = eng_tok_new(&d, out, err, err_len);
out:
	if (st == ENG_ERR_NOMEM)
		set_err(err, err_len, "tokenizer: out of memory");
	free(toks);
	free(tok_lens);
	free(merges);
	free(merge_lens);
	free(scores);
	free(types);
	return st;
}

/* ---- queries ------------------------------------------------------------------------- */

enum eng_tok_kind eng_tok_kind(const struct eng_tok *t) { return t->kind; }
uint32_t eng_tok_n_vocab(const struct eng_tok *t) { return t->n_vocab; }
int32_t eng_tok_bos(const struct eng_tok *t) { return t->bos; }
int32_t eng_tok_eos(const struct eng_tok *t) { return t->eos; }
int32_t eng_tok_unk(const struct eng_tok *t) { return t->unk; }
bool eng_tok_adds_bos(const struct eng_tok *t) { return t->add_bos; }
bool eng_tok_adds_eos(const struct eng_tok *t) { return t->add_eos; }
size_t eng_tok_max_piece(const struct eng_tok *t) { return t->max_piece; }

bool eng_tok_is_eog(const struct eng_tok *t, int32_t id)
{
	return id >= 0 && (uint32_t)id < t->n_vocab && (t->tokens[id].attr & A_EOG);
}

enum eng_tok_type eng_tok_type(const struct eng_tok *t, int32_t id)
{
	if (id < 0 || (uint32_t)id >= t->n_vocab)
		return ENG_TOK_TYPE_UNDEFINED;
	return (enum eng_tok_type)t->tokens[id].type;
}

const char *eng_tok_text(const struct eng_tok *t, int32_t id, size_t *len)
{
	if (id < 0 || (uint32_t)id >= t->n_vocab)
		return NULL;
	if (len)
		*len = t->tokens[id].text_len;
	return t->arena + t->tokens[id].text_off;
}

int32_t eng_tok_find(const struct eng_tok *t, const char *text, size_t len)
{
	if (t->kind == ENG_TOK_SPM)
		return tmap_find(t, text, len);
	for (uint32_t i = 0; i < t->n_vocab; i++) /* rare (setup-time) lookups */
		if (t->tokens[i].text_len == len && memcmp(t->arena + t->tokens[i].text_off, text, len) == 0)
			return (int32_t)i;
	return -1;
}

/* ---- encoding ----------------------------------------------------------------------- */

struct sym {
	int32_t prev, next;
	uint32_t off, n;
};

struct bigram {
	float key; /* higher is better: SPM score, BPE -rank */
	int32_t left, right;
	uint32_t size;
};

struct frag {
	uint32_t off, len; /* into the input text */
	int32_t id;        /* -1: raw text */
};

struct enc {
	const struct eng_tok *t;
	int32_t *out;
	size_t cap, n;
	/* Scratch of one call: grown geometrically when a fragment or piece
	 * needs more, never per token. */
	char *buf; /* escaped (SPM) or sanitized (BPE) text, 3 bytes per input byte */
	struct sym *syms;
	size_t syms_cap;
	struct bigram *heap;
	size_t n_heap, heap_cap;
	uint32_t *seg_a, *seg_b; /* BPE pieces: (off,len) pairs */
	size_t seg_a_cap, seg_b_cap;
	pcre2_match_data *md;
	bool nomem;
};

/* Returns <p> grown (geometrically) to hold <need> ≥ 1 elements of <elem>
 * bytes, updating *<cap>; NULL when out of memory (<p> is still valid). */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return p;
	size_t c = *cap ? *cap : 256;
	while (c < need)
		c *= 2;
	void *q = realloc(p, c * elem);
	if (q)
		*cap = c;
	return q;
}

static void emit(struct enc *e, int32_t id)
{
	if (e->out && e->n < e->cap)
		e->out[e->n] = id;
	e->n++;
}

static bool better(const struct bigram *a, const struct bigram *b)
{
	return a->key > b->key || (a->key == b->key && a->left < b->left);
}

static void heap_push(struct enc *e, struct bigram b)
{
	struct bigram *h = grow(e->heap, &e->heap_cap, e->n_heap + 1, sizeof(*e->heap));
	if (!h) {
		e->nomem = true;
		return;
	}
	e->heap = h;
	size_t i = e->n_heap++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!better(&b, &e->heap[p]))
			break;
		e->heap[i] = e->heap[p];
		i = p;
	}
	e->heap[i] = b;
}

static struct bigram heap_pop(struct enc *e)
{
	struct bigram top = e->heap[0];
	struct bigram last = e->heap[--e->n_heap];
	size_t i = 0, n = e->n_heap;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && better(&e->heap[c + 1], &e->heap[c]))
			c++;
		if (!better(&e->heap[c], &last))
			break;
		e->heap[i] = e->heap[c];
		i = c;
	}
	if (n)
		e->heap[i] = last;
	return top;
}

/* -- SPM -- */

static void spm_try_add(struct enc *e, const char *txt, int32_t l, int32_t r)
{
	if (l < 0 || r < 0)
		return;
	const struct sym *a = &e->syms[l], *b = &e->syms[r];
	size_t n = a->n + b->n;
	int32_t id = tmap_find(e->t, txt + a->off, n);
	if (id < 0)
		return;
	struct bigram bg = {e->t->tokens[id].score, l, r, (uint32_t)n};
	heap_push(e, bg);
}

static void spm_byte(struct enc *e, unsigned char c)
{
	static const char hex[] = "0123456789ABCDEF";
	char b[6] = {'<', '0', 'x', hex[c >> 4], hex[c & 15], '>'};
	int32_t id = tmap_find(e->t, b, 6);
	if (id < 0)
		id = tmap_find(e->t, (const char *)&c, 1);
	if (id < 0)
		id = e->t->unk;
	if (id >= 0)
		emit(e, id);
}

/* Tokenizes <txt>[0..<m>) (already escaped) with SPM. */
static void spm_run(struct enc *e, const char *txt, size_t m)
{
	int32_t n = 0;
	size_t n_chars = 0;
	for (size_t offs = 0; offs < m; n_chars++)
		offs += utf8_len((unsigned char)txt[offs]);
	struct sym *sy = grow(e->syms, &e->syms_cap, n_chars, sizeof(*e->syms));
	if (!sy) {
		e->nomem = true;
		return;
	}
	e->syms = sy;
	for (size_t offs = 0; offs < m;) {
		size_t l = utf8_len((unsigned char)txt[offs]);
		if (l > m - offs)
			l = m - offs;
		struct sym *s = &e->syms[n];
		s->off = (uint32_t)offs;
		s->n = (uint32_t)l;
		offs += l;
		s->prev = n - 1;
		s->next = offs == m ? -1 : n + 1;
		n++;
	}
	if (n == 0)
		return;
	e->n_heap = 0;
	for (int32_t i = 1; i < n; i++)
		spm_try_add(e, txt, i - 1, i);
	while (e->n_heap) {
		struct bigram bg = heap_pop(e);
		struct sym *l = &e->syms[bg.left], *r = &e->syms[bg.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size)
			continue;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			e->syms[r->next].prev = bg.left;
		spm_try_add(e, txt, l->prev, bg.left);
		spm_try_add(e, txt, bg.left, l->next);
	}
	for (int32_t i = 0; i != -1; i = e->syms[i].next) {
		const struct sym *s = &e->syms[i];
		int32_t id = tmap_find(e->t, txt + s->off, s->n);
		if (id >= 0) {
			emit(e, id);
			continue;
		}
		for (uint32_t j = 0; j < s->n; j++)
			spm_byte(e, (unsigned char)txt[s->off + j]);
	}
}

static void spm_fragment(struct enc *e, const char *text, size_t len, bool prefix)
{
	size_t m = 0;
	if (prefix) {
		memcpy(e->buf, "\xe2\x96\x81", 3);
		m = 3;
	}
	for (size_t i = 0; i < len; i++) {
		if (text[i] == ' ') {
			memcpy(e->buf + m, "\xe2\x96\x81", 3);
			m += 3;
		} else {
			e->buf[m++] = text[i];
		}
	}
	spm_run(e, e->buf, m);
}

/* -- BPE -- */

static void bpe_try_add(struct enc *e, const char *w, int32_t l, int32_t r)
{
	if (l < 0 || r < 0)
		return;
	const struct sym *a = &e->syms[l], *b = &e->syms[r];
	int32_t rank = mmap_find(e->t, w + a->off, a->n + b->n, a->n);
	if (rank < 0)
		return;
	struct bigram bg = {-(float)rank, l, r, a->n + b->n};
	heap_push(e, bg);
}

static void bpe_word(struct enc *e, const char *w, size_t m)
{
	const struct eng_tok *t = e->t;
	if (m == 0)
		return;
	if (t->ignore_merges) {
		int32_t id = tmap_find(t, w, m);
		if (id >= 0) {
			emit(e, id);
			return;
		}
	}
	int32_t n = (int32_t)m;
	struct sym *sy = grow(e->syms, &e->syms_cap, m, sizeof(*e->syms));
	if (!sy) {
		e->nomem = true;
		return;
	}
	e->syms = sy;
	for (int32_t i = 0; i < n; i++) { /* one symbol per raw byte */
		e->syms[i].off = (uint32_t)i;
		e->syms[i].n = 1;
		e->syms[i].prev = i - 1;
		e->syms[i].next = i + 1 == n ? -1 : i + 1;
	}
	e->n_heap = 0;
	for (int32_t i = 1; i < n; i++)
		bpe_try_add(e, w, i - 1, i);
	while (e->n_heap) {
		struct bigram bg = heap_pop(e);
		struct sym *l = &e->syms[bg.left], *r = &e->syms[bg.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size)
			continue;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			e->syms[r->next].prev = bg.left;
		bpe_try_add(e, w, l->prev, bg.left);
		bpe_try_add(e, w, bg.left, l->next);
	}
	for (int32_t i = 0; i != -1; i = e->syms[i].next) {
		const struct sym *s = &e->syms[i];
		int32_t id = tmap_find(t, w + s->off, s->n);
		if (id >= 0) {
			emit(e, id);
			continue;
		}
		for (uint32_t j = 0; j < s->n; j++) {
			id = tmap_find(t, w + s->off + j, 1);
			if (id >= 0)
				emit(e, id);
		}
	}
}

/* Splits <s>[0..<n>) (valid UTF-8) with the family's regexes in sequence and
 * runs BPE on each piece. */
static enum eng_status bpe_fragment(struct enc *e, const char *text, size_t len)
{
	const struct eng_tok *t = e->t;
	size_t n = utf8_sanitize(text, len, e->buf);
	const char *s = e->buf;
	size_t n_in = 1, n_out;
	if (n == 0)
		return ENG_OK;
	/* Pieces are disjoint and non-empty: at most one per byte. */
	uint32_t *sa = grow(e->seg_a, &e->seg_a_cap, 2 * n + 2, sizeof(*e->seg_a));
	if (!sa)
		return ENG_ERR_NOMEM;
	e->seg_a = sa;
	uint32_t *sb = grow(e->seg_b, &e->seg_b_cap, 2 * n + 2, sizeof(*e->seg_b));
	if (!sb)
		return ENG_ERR_NOMEM;
	e->seg_b = sb;
	uint32_t *in = e->seg_a, *outp = e->seg_b;
	in[0] = 0;
	in[1] = n;
	for (int r = 0; r < t->n_re; r++) {
		n_out = 0;
		for (size_t k = 0; k < n_in; k++) {
			uint32_t off = in[2 * k];
			size_t sl = in[2 * k + 1];
			size_t start = 0, pos = 0;
			while (pos <= sl) {
				int rc = pcre2_match(t->re[r], (PCRE2_SPTR)(s + off), sl, pos,
						     PCRE2_NO_UTF_CHECK, e->md, NULL);
				if (rc < 0 && rc != 0)
					break; /* no match (or a match limit: keep the rest whole) */
				PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
				size_t ms = ov[0], me = ov[1];
				if (me <= ms) { /* empty match: step one character */
					if (ms >= sl)
						break;
					pos = ms + utf8_len((unsigned char)s[off + ms]);
					continue;
				}
				if (ms > start) {
					outp[2 * n_out] = off + (uint32_t)start;
					outp[2 * n_out + 1] = (uint32_t)(ms - start);
					n_out++;
				}
				outp[2 * n_out] = off + (uint32_t)ms;
				outp[2 * n_out + 1] = (uint32_t)(me - ms);
				n_out++;
				start = pos = me;
			}
			if (start < sl) {
				outp[2 * n_out] = off + (uint32_t)start;
				outp[2 * n_out + 1] = (uint32_t)(sl - start);
				n_out++;
			}
		}
		uint32_t *tmp = in;
		in = outp;
		outp = tmp;
		n_in = n_out;
	}
	for (size_t k = 0; k < n_in; k++)
		bpe_word(e, s + in[2 * k], in[2 * k + 1]);
	return ENG_OK;
}

/* -- special tokens -- */

/* Splits the raw text on every special token, longest first, like
 * llama.cpp's tokenizer_st_partition: *<fr> (with *<nf> entries, capacity
 * *<fr_cap>) is rewritten into *<tmp> per token and swapped. False when out
 * of memory. */
static bool partition(const struct eng_tok *t, const char *text, struct frag **fr, size_t *nf,
		      size_t *fr_cap, struct frag **tmp, size_t *tmp_cap, bool parse_special)
{
	for (uint32_t si = 0; si < t->n_specials; si++) {
		int32_t id = t->specials[si];
		const struct tok_entry *te = &t->tokens[id];
		const char *st = t->arena + te->text_off;
		uint32_t sl = te->text_len;
		if (!parse_special && (te->attr & (A_CONTROL | A_UNKNOWN)))
			continue;
		size_t no = 0;
		bool any = false;
		for (size_t k = 0; k < *nf; k++) {
			struct frag f = (*fr)[k];
			if (f.id >= 0 || f.len < sl) {
				struct frag *g = grow(*tmp, tmp_cap, no + 1, sizeof(**tmp));
				if (!g)
					return false;
				*tmp = g;
				(*tmp)[no++] = f;
				continue;
			}
			uint32_t base = f.off, blen = f.len;
			for (;;) {
				/* up to three fragments come out of one match */
				struct frag *g = grow(*tmp, tmp_cap, no + 3, sizeof(**tmp));
				if (!g)
					return false;
				*tmp = g;
				const char *hit = memmem(text + base, blen, st, sl);
				if (!hit) {
					(*tmp)[no++] = (struct frag){base, blen, -1};
					break;
				}
				any = true;
				uint32_t m = (uint32_t)(hit - text);
				uint32_t ll = m - base;
				if (te->attr & A_LSTRIP)
					while (ll > 0 && isspace((unsigned char)text[base + ll - 1]))
						ll--;
				if (ll)
					(*tmp)[no++] = (struct frag){base, ll, -1};
				(*tmp)[no++] = (struct frag){m, sl, id};
				uint32_t roff = m + sl, rlen = base + blen - roff;
				if (te->attr & A_RSTRIP)
					while (rlen > 0 && isspace((unsigned char)text[roff])) {
						roff++;
						rlen--;
					}
				base = roff;
				blen = rlen;
				if (!blen)
					break;
			}
		}
		if (any) {
			struct frag *x = *fr;
			size_t xc = *fr_cap;
			*fr = *tmp;
			*fr_cap = *tmp_cap;
			*tmp = x;
			*tmp_cap = xc;
			*nf = no;
		}
	}
	return true;
}

size_t eng_tok_encode_bound(const struct eng_tok *t, size_t len)
{
	(void)t;
	return 6 * len + 8;
}

int eng_tok_encode(const struct eng_tok *t, const char *text, size_t len, bool add_special,
		   bool parse_special, int32_t *out, size_t cap)
{
	struct enc e;
	struct frag *fr = NULL, *tmp = NULL;
	size_t nf = 0, fr_cap = 0, tmp_cap = 0;
	int ret;

	if (!t || (!text && len) || (!out && cap))
		return ENG_ERR_ARG;
	if (len > ENG_TOK_MAX_TEXT)
		return ENG_ERR_LIMIT;
	memset(&e, 0, sizeof(e));
	e.t = t;
	e.out = out;
	e.cap = out ? cap : 0;

	/* Scratch: the escaped/sanitized text (3 bytes per input byte + the
	 * space prefix); fragments, symbols, heap and pieces grow on demand. */
	e.buf = malloc(3 * len + 4);
	if (t->kind == ENG_TOK_BPE)
		e.md = pcre2_match_data_create(32, NULL);
	fr = grow(NULL, &fr_cap, 1, sizeof(*fr));
	if (!e.buf || (t->kind == ENG_TOK_BPE && !e.md) || !fr) {
		ret = ENG_ERR_NOMEM;
		goto out;
	}

	if (len) {
		fr[0] = (struct frag){0, (uint32_t)len, -1};
		nf = 1;
		if (t->n_specials &&
		    !partition(t, text, &fr, &nf, &fr_cap, &tmp, &tmp_cap, parse_special)) {
			ret = ENG_ERR_NOMEM;
			goto out;
		}
	}

	if (add_special && t->add_bos)
		emit(&e, t->bos);
	bool prev_special = true; /* SPM: prefix a space at the start */
	for (size_t k = 0; k < nf; k++) {
		if (fr[k].id >= 0) {
			emit(&e, fr[k].id);
			prev_special = true;
			continue;
		}
		if (t->kind == ENG_TOK_SPM) {
			spm_fragment(&e, text + fr[k].off, fr[k].len, t->add_space_prefix && prev_special);
		} else {
			ret = bpe_fragment(&e, text + fr[k].off, fr[k].len);
			if (ret != ENG_OK)
				goto out;
		}
		prev_special = false;
	}
	if (add_special && t->add_eos)
		emit(&e, t->eos);

	if (e.nomem)
		ret = ENG_ERR_NOMEM;
	else if (e.n > (size_t)INT32_MAX)
		ret = ENG_ERR_LIMIT;
	else if (out && e.n > cap)
		ret = ENG_ERR_RANGE;
	else
		ret = (int)e.n;
out:
	if (e.md)
		pcre2_match_data_free(e.md);
	free(e.seg_a);
	free(e.seg_b);
	free(e.heap);
	free(e.syms);
	free(e.buf);
	free(tmp);
	free(fr);
	return ret;
}

/* ---- decoding ---------------------------------------------------------------------- */

int eng_tok_piece(const struct eng_tok *t, int32_t id, bool special, char *buf, size_t cap)
{
	if (!t || id < 0 || (uint32_t)id >= t->n_vocab)
		return ENG_ERR_RANGE;
	const struct tok_entry *e = &t->tokens[id];
	if (!special && (e->attr & (A_UNKNOWN | A_CONTROL)))
		return 0;
	if (e->piece_len <= cap && e->piece_len)
		memcpy(buf, t->arena + e->piece_off, e->piece_len);
	return (int)e->piece_len;
}

void eng_tok_decoder_init(struct eng_tok_decoder *d, const struct eng_tok *t, unsigned flags)
{
	memset(d, 0, sizeof(*d));
	d->tok = t;
	d->flags = flags;
}

size_t eng_tok_decoder_out_max(const struct eng_tok *t)
{
	return 3 * (t->max_piece + 4);
}

/* Bytes a UTF-8 sequence led by <c> has (0: not a valid lead). */
static int lead_len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return 2;
	if (c >= 0xE0 && c <= 0xEF)
		return 3;
	if (c >= 0xF0 && c <= 0xF4)
		return 4;
	return 0;
}

/* Whether <c> may follow <pend>[0..n) (n ≥ 1) in a valid sequence. */
static bool cont_ok(const uint8_t *pend, int n, unsigned char c)
{
	if (n == 1) {
		switch (pend[0]) {
		case 0xE0: return c >= 0xA0 && c <= 0xBF;
		case 0xED: return c >= 0x80 && c <= 0x9F;
		case 0xF0: return c >= 0x90 && c <= 0xBF;
		case 0xF4: return c >= 0x80 && c <= 0x8F;
		default: break;
		}
	}
	return c >= 0x80 && c <= 0xBF;
}

static size_t put_fffd(char *o)
{
	memcpy(o, "\xef\xbf\xbd", 3);
	return 3;
}

int eng_tok_decoder_push(struct eng_tok_decoder *d, int32_t id, char *out, size_t cap)
{
	const struct eng_tok *t = d->tok;
	if (!t || id < 0 || (uint32_t)id >= t->n_vocab || cap < eng_tok_decoder_out_max(t))
		return ENG_ERR_RANGE;
	const struct tok_entry *te = &t->tokens[id];
	if (!(d->flags & ENG_TOK_DEC_SPECIAL) && (te->attr & (A_UNKNOWN | A_CONTROL)))
		return 0;
	const unsigned char *p = (const unsigned char *)t->arena + te->piece_off;
	size_t n = te->piece_len, o = 0;
	if (n == 0)
		return 0;
	if (!d->started) {
		d->started = true;
		if ((d->flags & ENG_TOK_DEC_STRIP_SPACE) && t->add_space_prefix && p[0] == ' ') {
			p++;
			n--;
		}
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (d->n_pend) {
			if (cont_ok(d->pend, d->n_pend, c)) {
				d->pend[d->n_pend++] = c;
				if (d->n_pend == lead_len(d->pend[0])) {
					memcpy(out + o, d->pend, d->n_pend);
					o += d->n_pend;
					d->n_pend = 0;
				}
				continue;
			}
			o += put_fffd(out + o); /* the incomplete prefix; <c> starts anew */
			d->n_pend = 0;
		}
		int l = lead_len(c);
		if (l == 1)
			out[o++] = (char)c;
		else if (l == 0)
			o += put_fffd(out + o);
		else
			d->pend[d->n_pend++] = c;
	}
	return (int)o;
}

int eng_tok_decoder_flush(struct eng_tok_decoder *d, char *out, size_t cap)
{
	int n = 0;
	if (d->n_pend) {
		if (cap < 3)
			return ENG_ERR_RANGE;
		n = (int)put_fffd(out);
	}
	d->n_pend = 0;
	d->started = false;
	return n;
}
