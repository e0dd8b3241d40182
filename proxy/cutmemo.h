/* A small memory of recent cuts (issue 12 item 12). Qwen Code answers a cut
 * ("length") by sending the same request again with max_tokens doubled:
 * the engine would loop again and be cut again. A request identical to one
 * cut a moment ago — the same body but for its token limits, the same
 * Authorization, under the same guard settings — is answered as the cut was
 * (the same guard and detail, the end of the text delivered before the cut)
 * without calling the engine.
 *
 * Bounded and time-limited: at most <entries> cuts (the least recently used
 * is forgotten first) and none older than <ttl_ms>. Keyed by a SHA-256 of
 * everything that decides the answer: the body's bytes with only the values
 * of "max_tokens" and "max_completion_tokens" left out (proxy/wire/request.h
 * finds them), the Authorization header, and the policy in effect. A
 * different request can never get another's answer (that needs a SHA-256
 * collision); the same request re-serialized differently (keys reordered) is
 * a miss and goes to the engine, which is only slower.
 *
 * One memory per proxy instance, used from the event loop only. Instances
 * behind one balancer do not share it: a retry that lands on another
 * instance is a miss there (sent to the engine, cut again: one more engine
 * request, never a wrong answer); the recovery turns that follow ("Output
 * token limit hit. Resume directly…") carry the cut text, which the history
 * check of any instance recognises (guards/history.h). */
#ifndef LW_PROXY_CUTMEMO_H
#define LW_PROXY_CUTMEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guards/trip.h"
#include "proxy/wire/request.h" /* struct px_request_span */

#define PX_CUTMEMO_MAX_ENTRIES 65536     /* upper bound of proxy.cut_memo_entries */
#define PX_CUTMEMO_TEXT_MAX (64u << 10)  /* bytes of text (and of reasoning) kept per cut */

/* What identifies a request for the memory. */
struct px_cutmemo_key {
	unsigned char hash[32]; /* SHA-256 */
	uint64_t len;           /* body bytes hashed: a cheap first test (px_cutmemo_may_hold) */
};

/* A remembered cut: how to answer its twin. */
struct px_cutmemo_answer {
	struct gd_trip trip;
	const char *text;      /* the end of the content delivered before the cut */
	size_t text_len;
	const char *reasoning; /* and of the reasoning */
	size_t reasoning_len;
};

struct px_cutmemo;

/* <entries> 0: a memory that never holds anything. NULL when out of memory. */
struct px_cutmemo *px_cutmemo_new(uint32_t entries, uint64_t ttl_ms);
void px_cutmemo_free(struct px_cutmemo *m); /* NULL is a no-op */
/* Forgets every cut (a new policy may judge them otherwise). */
void px_cutmemo_clear(struct px_cutmemo *m);
/* Cuts held now (expired ones included until they are looked at or
 * replaced), and live cuts forgotten so far to make room (LRU). */
size_t px_cutmemo_size(const struct px_cutmemo *m);
uint64_t px_cutmemo_evictions(const struct px_cutmemo *m);

/* The key of <body, len> without the byte ranges <skip> (n_skip of them, in
 * increasing order, not overlapping), with the client's <auth> (the
 * Authorization header, may be empty) and <policy_id> (anything that tells
 * guard settings apart: a reload's new policy gets a new id). */
void px_cutmemo_key(const char *body, size_t len, const struct px_request_span *skip,
                    size_t n_skip, const char *auth, uint64_t policy_id,
                    struct px_cutmemo_key *out);

/* Bytes that px_cutmemo_key hashes of a body of <len> bytes minus <skip>. */
uint64_t px_cutmemo_hashed_len(size_t len, const struct px_request_span *skip, size_t n_skip);

/* Cheap: false when no live entry was made from a body of <hashed_len>
 * bytes, so the caller need not hash this one. */
bool px_cutmemo_may_hold(const struct px_cutmemo *m, uint64_t hashed_len, uint64_t now_ms);

/* Remembers a cut: <trip> and the ends of what the client got of its text
 * and reasoning (at most PX_CUTMEMO_TEXT_MAX bytes of each are kept: the
 * last ones). Replaces an entry with the same key; evicts the least recently
 * used when full. Returns 0, or -1 when out of memory (nothing kept). */
int px_cutmemo_put(struct px_cutmemo *m, const struct px_cutmemo_key *key, uint64_t now_ms,
                   const struct gd_trip *trip, const char *text, size_t text_len,
                   const char *reasoning, size_t reasoning_len)
	__attribute__((warn_unused_result));

/* The cut remembered for <key>, or NULL (none, or older than ttl_ms: then
 * forgotten). A hit counts as a use (LRU). The answer stays valid until the
 * next put, clear or free. */
const struct px_cutmemo_answer *px_cutmemo_get(struct px_cutmemo *m,
                                               const struct px_cutmemo_key *key,
                                               uint64_t now_ms);

#endif
