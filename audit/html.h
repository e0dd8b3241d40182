/* loopwarden-audit --html: one self-contained page per recording. It shows
 * the answer as the client would have seen it through the proxy (chunks
 * relayed, tool-call chunks held while a call was incomplete, the cut: what
 * was held dropped, the tripping chunk's part the guards read delivered),
 * the loop's onset and the trip marked in the text, the guard and its
 * detail, and per guard how close it came: a small inline SVG plot of its
 * nearness (gd_pipeline_near) after every chunk.
 *
 * The recording is untrusted: every byte of it is HTML-escaped (invalid
 * UTF-8 and control characters replaced), the page carries a
 * Content-Security-Policy that allows no script, no fetch and no external
 * resource, and holds no script of its own. */
#ifndef LW_AUDIT_HTML_H
#define LW_AUDIT_HTML_H

#include <stdbool.h>
#include <stddef.h>

#include "audit/replay.h"

struct aud_html;

/* A collector for one recording named <title> (shown on the page). Register
 * it with aud_replay_observe(r, aud_html_observer(h)) before the replay
 * feeds anything. NULL when out of memory. */
struct aud_html *aud_html_new(const char *title);
void aud_html_free(struct aud_html *h); /* NULL is a no-op */
const struct aud_observer *aud_html_observer(struct aud_html *h);
/* The recording is a non-streaming body (the cut keeps its text up to the
 * trip and the calls completed before it), not a stream. */
void aud_html_set_body(struct aud_html *h, bool body);

/* Writes the page for the finished replay <res> to <path>. Returns 0, or -1
 * with <err> naming the path. */
int aud_html_write(struct aud_html *h, const struct aud_result *res, const char *path,
                   char *err, size_t errlen);

#endif
