/* The memory of recent cuts (see cutmemo.h). A flat array searched from end
 * to end: <entries> is small (64 by default), a lookup happens only when a
 * live entry has the request's length, and the memory is touched only by
 * the event loop. */
#include "proxy/cutmemo.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

struct entry {
	bool used;
	struct px_cutmemo_key key;
	uint64_t stored_ms;
	uint64_t seq;      /* order of the last use (LRU: the smallest goes first) */
	struct px_cutmemo_answer answer;
	char *text;        /* owned copies behind answer.text / answer.reasoning */
	char *reasoning;
};

struct px_cutmemo {
	uint32_t cap;
	uint64_t ttl_ms;
	uint64_t seq;
	uint64_t evictions;
	struct entry *e;
};

struct px_cutmemo *px_cutmemo_new(uint32_t entries, uint64_t ttl_ms)
{
	struct px_cutmemo *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	if (entries > PX_CUTMEMO_MAX_ENTRIES)
		entries = PX_CUTMEMO_MAX_ENTRIES;
	m->cap = entries;
	m->ttl_ms = ttl_ms;
	if (entries && !(m->e = calloc(entries, sizeof(*m->e)))) {
		free(m);
		return NULL;
	}
	return m;
}

static void drop(struct entry *e)
{
	free(e->text);
	free(e->reasoning);
	memset(e, 0, sizeof(*e));
}

void px_cutmemo_clear(struct px_cutmemo *m)
{
	if (!m)
		return;
	for (uint32_t i = 0; i < m->cap; i++)
		drop(&m->e[i]);
}

void px_cutmemo_free(struct px_cutmemo *m)
{
	if (!m)
		return;
	px_cutmemo_clear(m);
	free(m->e);
	free(m);
}

uint64_t px_cutmemo_evictions(const struct px_cutmemo *m)
{
	return m ? m->evictions : 0;
}

size_t px_cutmemo_size(const struct px_cutmemo *m)
{
	size_t n = 0;

	for (uint32_t i = 0; m && i < m->cap; i++)
		n += m->e[i].used;
	return n;
}

uint64_t px_cutmemo_hashed_len(size_t len, const struct px_request_span *skip, size_t n_skip)
{
	uint64_t n = len;

	for (size_t i = 0; i < n_skip; i++)
		n -= skip[i].off + skip[i].len <= len ? skip[i].len : 0;
	return n;
}

void px_cutmemo_key(const char *body, size_t len, const struct px_request_span *skip,
                    size_t n_skip, const char *auth, uint64_t policy_id,
                    struct px_cutmemo_key *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int hl = 0;
	size_t at = 0;
	unsigned char sep[9] = { 0 };

	memset(out, 0, sizeof(*out));
	out->len = px_cutmemo_hashed_len(len, skip, n_skip);
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		/* No digest (out of memory): an all-zero key, which
		 * px_cutmemo_put and px_cutmemo_get refuse. */
		EVP_MD_CTX_free(ctx);
		return;
	}
	for (size_t i = 0; i < n_skip; i++) {
		if (skip[i].off < at || skip[i].off + skip[i].len > len)
			continue; /* not a span of this body (the caller's bug): hash it all */
		EVP_DigestUpdate(ctx, body + at, skip[i].off - at);
		/* Mark the place: "a":1,"b" and "a","b":1 must differ. */
		EVP_DigestUpdate(ctx, "\0limit\0", 7);
		at = skip[i].off + skip[i].len;
	}
	EVP_DigestUpdate(ctx, body + at, len - at);
	/* Then the Authorization and the policy, each framed by its length. */
	size_t alen = auth ? strlen(auth) : 0;
	for (int i = 0; i < 8; i++)
		sep[i] = (unsigned char)((uint64_t)alen >> (8 * i));
	EVP_DigestUpdate(ctx, sep, 8);
	if (alen)
		EVP_DigestUpdate(ctx, auth, alen);
	for (int i = 0; i < 8; i++)
		sep[i] = (unsigned char)(policy_id >> (8 * i));
	EVP_DigestUpdate(ctx, sep, 8);
	if (!EVP_DigestFinal_ex(ctx, out->hash, &hl) || hl != sizeof(out->hash))
		memset(out->hash, 0, sizeof(out->hash));
	EVP_MD_CTX_free(ctx);
}

static bool valid_key(const struct px_cutmemo_key *k)
{
	for (size_t i = 0; i < sizeof(k->hash); i++)
		if (k->hash[i])
			return true;
	return false;
}

static bool expired(const struct px_cutmemo *m, const struct entry *e, uint64_t now_ms)
{
	return now_ms - e->stored_ms >= m->ttl_ms;
}

bool px_cutmemo_may_hold(const struct px_cutmemo *m, uint64_t hashed_len, uint64_t now_ms)
{
	for (uint32_t i = 0; m && i < m->cap; i++)
		if (m->e[i].used && m->e[i].key.len == hashed_len && !expired(m, &m->e[i], now_ms))
			return true;
	return false;
}

static struct entry *find(struct px_cutmemo *m, const struct px_cutmemo_key *key)
{
	for (uint32_t i = 0; i < m->cap; i++) {
		struct entry *e = &m->e[i];
		if (e->used && e->key.len == key->len &&
		    memcmp(e->key.hash, key->hash, sizeof(key->hash)) == 0)
			return e;
	}
	return NULL;
}

/* A copy of the last <cap> bytes of <s, n> (NULL, 0 when empty). Returns -1
 * when out of memory. */
static int keep_end(const char *s, size_t n, char **out, size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	if (!s || !n)
		return 0;
	if (n > PX_CUTMEMO_TEXT_MAX) {
		s += n - PX_CUTMEMO_TEXT_MAX;
		n = PX_CUTMEMO_TEXT_MAX;
		/* Start on a whole character. */
		for (int k = 0; k < 3 && n && ((unsigned char)*s & 0xc0) == 0x80; k++) {
			s++;
			n--;
		}
	}
	*out = malloc(n);
	if (!*out)
		return -1;
	memcpy(*out, s, n);
	*outlen = n;
	return 0;
}

int px_cutmemo_put(struct px_cutmemo *m, const struct px_cutmemo_key *key, uint64_t now_ms,
                   const struct gd_trip *trip, const char *text, size_t text_len,
                   const char *reasoning, size_t reasoning_len)
{
	struct entry *e, fresh;
	size_t tl, rl;

	if (!m || !m->cap || !valid_key(key))
		return 0; /* a memory of nothing: remembering is optional */
	memset(&fresh, 0, sizeof(fresh));
	if (keep_end(text, text_len, &fresh.text, &tl) ||
	    keep_end(reasoning, reasoning_len, &fresh.reasoning, &rl)) {
		drop(&fresh);
		return -1;
	}
	e = find(m, key);
	if (!e) {
		/* A free or expired slot, else the least recently used one. */
		struct entry *lru = NULL;
		for (uint32_t i = 0; i < m->cap && !e; i++) {
			struct entry *x = &m->e[i];
			if (!x->used || expired(m, x, now_ms))
				e = x;
			else if (!lru || x->seq < lru->seq)
				lru = x;
		}
		if (!e) {
			e = lru;
			m->evictions++;
		}
	}
	drop(e);
	*e = fresh;
	e->used = true;
	e->key = *key;
	e->stored_ms = now_ms;
	e->seq = ++m->seq;
	e->answer.trip = *trip;
	e->answer.text = e->text;
	e->answer.text_len = tl;
	e->answer.reasoning = e->reasoning;
	e->answer.reasoning_len = rl;
	return 0;
}

const struct px_cutmemo_answer *px_cutmemo_get(struct px_cutmemo *m,
                                               const struct px_cutmemo_key *key,
                                               uint64_t now_ms)
{
	struct entry *e;

	if (!m || !m->cap || !valid_key(key))
		return NULL;
	e = find(m, key);
	if (!e)
		return NULL;
	if (expired(m, e, now_ms)) {
		drop(e);
		return NULL;
	}
	e->seq = ++m->seq;
	return &e->answer;
}
