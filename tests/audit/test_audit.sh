#!/usr/bin/env bash
# Runs the loopwarden-audit binary on scenarios, plain SSE files, a record
# folder and bad input; checks its output and exit status.
# usage: test_audit.sh <loopwarden-audit> <tests/data dir>
set -u
AUDIT=$1
DATA=$2
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lw_audit.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fails=0

# check NAME WANT_RC PATTERN -- CMD...: runs CMD, wants exit WANT_RC and
# PATTERN (grep -E) in stdout+stderr.
check() {
	local name=$1 want=$2 pat=$3
	shift 4
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" != "$want" ]; then
		echo "FAIL $name: exit $rc, want $want"; echo "$out" | head -20; fails=$((fails + 1)); return
	fi
	if ! grep -Eq -- "$pat" <<<"$out"; then
		echo "FAIL $name: output lacks /$pat/"; echo "$out" | head -20; fails=$((fails + 1)); return
	fi
	echo "ok   $name"
}

check help 0 'usage: loopwarden-audit' -- "$AUDIT" --help
check no-input 2 'usage' -- "$AUDIT"
check bad-option 2 'unknown option --frobnicate' -- "$AUDIT" --frobnicate x

# A loop scenario: which guard, which chunk, why.
check loop 0 'TRIP dedup at chunk [0-9]+ \(event [0-9]+, line [0-9]+\): call bash' -- \
	"$AUDIT" "$DATA/002-same-call-in-answer.json"
check loop-expect 0 'expect: ok \([0-9]+ chunks past the onset\)' -- \
	"$AUDIT" --expect "$DATA/002-same-call-in-answer.json"
check healthy 0 'pass \([0-9]+ chunks, [0-9]+ events, 10 tool calls' -- \
	"$AUDIT" --expect "$DATA/024-ten-parallel-edits.json"
check history 0 'TRIP [a-z_]+ in the request history' -- "$AUDIT" "$DATA/015-continuation-of-loop.json"
# Loosening a guard with --set turns the expectation into a mismatch: exit 1.
check mismatch 1 'expect: MISMATCH' -- \
	"$AUDIT" --expect --set guards.dedup.enabled=false --set guards.name_run.enabled=false \
	"$DATA/018-ollama-parallel-same.json"
check bad-set 2 'guards.nonsense' -- "$AUDIT" --set guards.nonsense.key=1 "$DATA/002-same-call-in-answer.json"

# Fixtures (written by make_fixtures.py from 002-same-call-in-answer.json):
# the same answer as a framed SSE file, as bare data: lines without [DONE],
# cut mid-chunk, as a --record folder (CRLF framing), plus bad files.
cp -r "$(dirname "$0")/data/." "$TMP/"
check sse 0 'answer.sse: TRIP dedup at chunk [0-9]+' -- "$AUDIT" "$TMP/answer.sse"
check sse-request 0 'TRIP dedup' -- "$AUDIT" --request "$TMP/request.json" "$TMP/answer.sse"
check sse-lines-no-done 0 'TRIP dedup' -- "$AUDIT" "$TMP/lines.sse"
check record-dir 0 'rec/20260101-1-1/stream.sse: TRIP dedup' -- "$AUDIT" "$TMP/rec"
check record-nonstream 0 'rec/20260101-1-2/response.json: TRIP dedup at chunk 1' -- "$AUDIT" "$TMP/rec"
check config-file 0 'pass \(' -- "$AUDIT" --config "$TMP/good.yaml" "$TMP/answer.sse"

# Bad input: exit 2, the message names the file and the line.
check not-json 2 'notjson.json:4:[0-9]+: not JSON' -- "$AUDIT" "$TMP/notjson.json"
check bad-chunk 2 'badchunk.json:3: chunk 1: not JSON' -- "$AUDIT" "$TMP/badchunk.json"
check truncated 2 'truncated.sse:11: truncated stream' -- "$AUDIT" "$TMP/truncated.sse"
check bad-config 2 'bad.yaml:3: key .guards.name_run.max_run.' -- \
	"$AUDIT" --config "$TMP/bad.yaml" "$TMP/answer.sse"
check missing 2 'nothere.json: No such file' -- "$AUDIT" "$TMP/nothere.json"
# Issue 11 defect 1: a request nested 300 000 deep crashed the audit as it
# crashed the proxy (yajl_tree_free recursing per level). Now: a message
# naming the file, exit 2, as a scenario, a --request file and a recording.
deep() { printf '%*s' 300000 '' | tr ' ' "$1"; }
{ printf '{"request":{"messages":[],"x":'; deep '['; deep ']'; printf '},"chunks":["[DONE]"]}'; } \
	> "$TMP/deep-scenario.json"
{ printf '{"messages":[{"role":"user","content":"hi"}],"x":'; deep '['; deep ']'; printf '}'; } \
	> "$TMP/deep-request.json"
check deep-scenario 2 'deep-scenario.json:1:[0-9]+: nested deeper than' -- "$AUDIT" "$TMP/deep-scenario.json"
check deep-request 2 'deep-request.json: request is nested deeper than 64 levels \(at byte [0-9]+\)' -- \
	"$AUDIT" --request "$TMP/deep-request.json" "$TMP/answer.sse"
mkdir -p "$TMP/deeprec/1"
cp "$TMP/deep-request.json" "$TMP/deeprec/1/request.json"
cp "$TMP/answer.sse" "$TMP/deeprec/1/stream.sse"
check deep-record 2 'deeprec/1/request.json: request is nested deeper than 64 levels' -- \
	"$AUDIT" "$TMP/deeprec"
# Defect 6: a request with "messages" twice is refused, not read one way.
printf '{"messages":[],"messages":[{"role":"user","content":"hi"}]}' > "$TMP/dup-request.json"
check duplicate-key 2 "dup-request.json: duplicate key 'messages' in the request" -- \
	"$AUDIT" --request "$TMP/dup-request.json" "$TMP/answer.sse"
# A missing [DONE] is a warning, not an error.
head -n 4 "$TMP/answer.sse" > "$TMP/short.sse"
check no-done-warning 0 'warning: the stream ends without \[DONE\]' -- "$AUDIT" "$TMP/short.sse"

# --print-config writes YAML that loads back to the same settings; the
# example config in config/ loads (its guard keys all exist).
check print-config 0 'max_run: 7' -- "$AUDIT" --set guards.name_run.max_run=7 --print-config
"$AUDIT" --set guards.name_run.max_run=7 --print-config > "$TMP/p1.yaml"
check print-config-roundtrip 0 '' -- bash -c \
	"'$AUDIT' --config '$TMP/p1.yaml' --print-config | cmp - '$TMP/p1.yaml'"
check example-config 0 'guards:' -- "$AUDIT" --config "$DATA/../../config/loopwarden.example.yaml" --print-config
# ...and states exactly the defaults (a default changed without the example
# file would make a copied example config change behaviour).
"$AUDIT" --print-config > "$TMP/defaults.yaml"
check example-config-is-defaults 0 '' -- bash -c \
	"'$AUDIT' --config '$DATA/../../config/loopwarden.example.yaml' --print-config | diff '$TMP/defaults.yaml' -"

# The whole corpus meets its expectations.
check corpus 0 'expectations: 0 mismatches' -- "$AUDIT" --expect --quiet "$DATA"

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"
