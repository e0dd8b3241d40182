#!/usr/bin/env bash
# Send recorded client requests (tests/integration/data/clients/**.json, or any
# request bodies) one by one to a fresh loopwarden in front of the scripted
# model, and print what loopwarden did with each: passed to the engine (and
# whether a guard cut the answer) or answered from the history without it.
# Each request is sent alone: what loopwarden does from the request itself,
# with no memory of earlier ones.
#
# usage: tests/agents/replay.sh [--build DIR] [--set key=value]... FILE|DIR...
# Output: one line per file: `engine` | `engine, cut by GUARD` |
# `history answer (GUARD)`, then the file. Needs node.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../../build sets=() files=()
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$2; shift 2 ;;
	--set) sets+=(--set "$2"); shift 2 ;;
	*) if [ -d "$1" ]; then
		while IFS= read -r f; do files+=("$f"); done < <(find "$1" -name '*.json' ! -name index.json | sort)
	   else files+=("$1"); fi
	   shift ;;
	esac
done
[ ${#files[@]} -gt 0 ] || { echo "usage: replay.sh [--build DIR] [--set key=value]... FILE|DIR..." >&2; exit 2; }
tmp=$(mktemp -d /tmp/lw-replay.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
node "$here/model.mjs" --log "$tmp/engine" --port-file "$tmp/model.port" --delay-ms 0 >"$tmp/model.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/model.port" ] && break; sleep 0.1; done
"$build/loopwarden" --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$(cat "$tmp/model.port")" --quiet "${sets[@]}" >"$tmp/lw.log" 2>&1 &
pids+=($!)
lp=
for _ in $(seq 100); do
	lp=$(grep -so 'listening on http://127.0.0.1:[0-9]*' "$tmp/lw.log" | grep -o '[0-9]*$')
	[ -n "$lp" ] && break
	sleep 0.1
done
[ -n "$lp" ] || { echo "loopwarden did not start:" >&2; cat "$tmp/lw.log" >&2; exit 1; }
for f in "${files[@]}"; do
	before=$(find "$tmp/engine" -name 'engine-*.json' 2>/dev/null | wc -l)
	out=$(curl -sN --max-time 60 -H 'Content-Type: application/json' --data-binary "@$f" "http://127.0.0.1:$lp/v1/chat/completions")
	after=$(find "$tmp/engine" -name 'engine-*.json' 2>/dev/null | wc -l) # written on arrival
	guard=$(printf '%s' "$out" | grep -o '"loopwarden":{"guard":"[a-z_]*"' | head -n 1 | sed 's/.*"guard":"//; s/"$//')
	if [ "$after" -gt "$before" ]; then
		[ -n "$guard" ] && what="engine, cut by $guard" || what="engine"
	elif [ -n "$guard" ]; then
		what="history answer ($guard)"
	else
		what="error: $(printf '%s' "$out" | head -c 200)"
	fi
	printf '%-32s %s\n' "$what" "$f"
done
