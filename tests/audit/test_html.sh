#!/usr/bin/env bash
# loopwarden-audit --html renders: pages for a text loop, a call loop and a
# recording crafted to inject markup are written, hold nothing executable,
# and a headless Chromium screenshot of each has the window's size, is not
# blank and shows the trip marker and the highlighted loop (png_check).
# Skipped (77) without chromium or png_check (libpng).
# usage: test_html.sh <loopwarden-audit> <tests/data dir> <png_check>
set -u
AUDIT=$1 DATA=$2 PNGCHECK=$3
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ] || [ ! -x "$PNGCHECK" ]; then
	echo "chromium or png_check missing: skipped"
	exit 77
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lw_html.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

# A recording that tries to inject markup and script into the page, and
# holds invalid UTF-8 and control bytes: the loop is the injection itself.
{
	printf 'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Intro </pre><h1>pwned</h1>\\u0007 "},"finish_reason":null}]}\n\n'
	for i in $(seq 1 30); do
		printf 'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"<script>alert(1)</script> & <img src=x onerror=alert(2)> \\" %s. "},"finish_reason":null}]}\n\n' \
			"$(printf 'caf\xc3\xa9')"
	done
	printf 'data: [DONE]\n\n'
} > "$TMP/inject.sse"
# The page's title is the input's path: a name with markup and an invalid byte.
BADNAME="$TMP/<b>name"$'\xff'".sse"
cp "$TMP/inject.sse" "$BADNAME"

render() { # NAME INPUT...
	local name=$1
	shift
	if ! "$AUDIT" --html "$TMP/$name.html" "$@" >"$TMP/$name.out" 2>&1; then
		fail "$name: loopwarden-audit --html failed:"; cat "$TMP/$name.out"; return 1
	fi
	[ -s "$TMP/$name.html" ] || { fail "$name: no page"; return 1; }
	# Nothing executable or loadable may come from the recording: no tag
	# of its own (the page's tags are its own; every '<' of the data is
	# escaped), no event handler inside a tag.
	if grep -Eiq '<(script|img|iframe|object|embed|b>)|<h1>pwned|<[^>]* on[a-z]+=' "$TMP/$name.html"; then
		fail "$name: markup from the recording reached the page:"
		grep -Eio '.{0,40}(<script|<img|<iframe|<h1>pwned|<b>).{0,40}' "$TMP/$name.html" | head -3
	fi
	grep -q "Content-Security-Policy" "$TMP/$name.html" || fail "$name: no Content-Security-Policy"
	return 0
}

shot() { # NAME: screenshot + check
	local name=$1
	rm -rf "$TMP/profile"
	timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--hide-scrollbars --user-data-dir="$TMP/profile" --screenshot="$TMP/$name.png" \
		--window-size=1000,1400 "file://$TMP/$name.html" >"$TMP/$name.chromium.log" 2>&1
	if [ ! -s "$TMP/$name.png" ]; then
		fail "$name: chromium wrote no screenshot"; tail -5 "$TMP/$name.chromium.log"; return
	fi
	"$PNGCHECK" "$TMP/$name.png" 1000 1400 || fail "$name: the screenshot does not show the page"
}

if render text-loop "$DATA/009-paragraph-repeat.json"; then
	grep -q 'class="loop"' "$TMP/text-loop.html" || fail "text-loop: the loop is not marked"
	grep -q 'class="trip"' "$TMP/text-loop.html" || fail "text-loop: the trip is not marked"
	grep -q '<svg' "$TMP/text-loop.html" || fail "text-loop: no plot"
	shot text-loop
fi
if render inject "$TMP/inject.sse"; then
	grep -q '&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(2)&gt; &quot;' \
		"$TMP/inject.html" || fail "inject: the text is not shown escaped"
	grep -q '&lt;/pre&gt;&lt;h1&gt;pwned' "$TMP/inject.html" || fail "inject: </pre> not escaped"
	grep -q 'café' "$TMP/inject.html" || fail "inject: UTF-8 text lost"
	shot inject
fi
if render badname "$BADNAME"; then
	grep -q $'&lt;b&gt;name\xef\xbf\xbd.sse</h1>' "$TMP/badname.html" ||
		fail "badname: the title is not escaped (markup, invalid UTF-8 as U+FFFD)"
fi
# Several recordings: a folder of pages.
"$AUDIT" --quiet --html "$TMP/pages" "$DATA/002-same-call-in-answer.json" \
	"$DATA/024-ten-parallel-edits.json" >/dev/null 2>&1
[ -s "$TMP/pages/002-same-call-in-answer.json.html" ] || [ -n "$(ls "$TMP/pages" 2>/dev/null | grep 002)" ] ||
	fail "pages: no page for the call loop in the folder"
[ "$(ls "$TMP/pages" 2>/dev/null | wc -l)" = 2 ] || fail "pages: want 2 pages, got $(ls "$TMP/pages" | wc -l)"
grep -q 'not delivered' "$TMP/pages/"*002* || fail "pages: the tripping call is not shown"

[ $fails -eq 0 ] && echo "ok: pages render" || echo "$fails failures"
[ $fails -eq 0 ]
