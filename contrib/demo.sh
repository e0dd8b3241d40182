#!/usr/bin/env bash
# loopwarden's main job, end to end on this machine:
#   installs the dependencies, builds, starts a scripted OpenAI-compatible
#   upstream on loopback (it replays recorded agent answers from tests/data),
#   puts loopwarden in front of it, sends one healthy and one looping request
#   with curl, shows what the client saw; then serves the bundled model
#   (contrib/models/stories260K.gguf) from loopwarden's own engine
#   (co-resident mode): a healthy prompt answered in full, a looping one cut
#   at its next token; and stops everything.
# In front of a real engine instead (llama-server on port 8081):
#   build/loopwarden --listen 127.0.0.1:8080 --upstream http://127.0.0.1:8081
# and point the agent's OpenAI base URL at http://127.0.0.1:8080/v1
set -euo pipefail
cd "$(dirname "$0")/.."
bdir=${LW_BUILD_DIR:-build} # the build folder (default build/)

echo "== installing dependencies (contrib/install-deps.sh)"
bash contrib/install-deps.sh
echo "== building ($bdir/)"
cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$bdir" -j"$(nproc)" --target loopwarden lw-upstream >/dev/null
model=contrib/models/stories260K.gguf

data=tests/data
healthy=037-parallel-reads
loop=008-word-flood
if [ ! -f "$data/$loop.json" ]; then # the corpus is not there: use the proxy's own scenarios
	data=tests/integration/data healthy=px-healthy-tools loop=px-loop-words
fi

tmp=$(mktemp -d /tmp/loopwarden-demo.XXXXXX)
up_pid= lw_pid= co_pid=
cleanup() {
	[ -n "$co_pid" ] && kill "$co_pid" 2>/dev/null && wait "$co_pid" 2>/dev/null || true
	[ -n "$lw_pid" ] && kill "$lw_pid" 2>/dev/null && wait "$lw_pid" 2>/dev/null || true
	[ -n "$up_pid" ] && kill "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

wait_for() { # FILE PATTERN: prints the port once PATTERN<port> appears (10 s at most)
	for _ in $(seq 100); do
		p=$(grep -o "$2[0-9]*" "$1" 2>/dev/null | grep -o '[0-9]*$' || true)
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.1
	done
	echo "did not start: $(cat "$1")" >&2
	return 1
}

"$bdir/lw-upstream" --data "$data" --listen 0 --delay-ms 5 >"$tmp/upstream.log" 2>&1 &
up_pid=$!
up_port=$(wait_for "$tmp/upstream.log" 'listening on 127.0.0.1:')
"$bdir/loopwarden" --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$up_port" >"$tmp/loopwarden.log" 2>&1 &
lw_pid=$!
lw_port=$(wait_for "$tmp/loopwarden.log" 'listening on http://127.0.0.1:')
echo "== scripted upstream on 127.0.0.1:$up_port (replays $data), loopwarden on 127.0.0.1:$lw_port"

ask() { # SCENARIO: one streaming chat completion through loopwarden
	curl -sN "http://127.0.0.1:$lw_port/v1/chat/completions" \
		-H 'Content-Type: application/json' -H 'Authorization: Bearer sk-demo' \
		-d "{\"model\":\"$1\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"demo\"}]}"
}

echo
echo "== 1. a healthy answer ($healthy): relayed unchanged"
ask "$healthy" >"$tmp/healthy.sse"
echo "client received $(grep -c '^data: ' "$tmp/healthy.sse") events; the last three:"
grep '^data: ' "$tmp/healthy.sse" | tail -n 3 | cut -c1-220

echo
echo "== 2. a looping answer ($loop): cut short"
ask "$loop" >"$tmp/loop.sse"
echo "client received $(grep -c '^data: ' "$tmp/loop.sse") events; the last three:"
grep '^data: ' "$tmp/loop.sse" | tail -n 3 | cut -c1-400
echo
echo "what the upstream saw (chunks written before loopwarden hung up, of the total):"
curl -s "http://127.0.0.1:$up_port/_stats" | grep -o '"scenario":"[^"]*","stream":[a-z]*,"chunks_total":[0-9]*,"chunks_written":[0-9]*,"hung_up":[a-z]*'
echo
echo "loopwarden's log:"
sed 's/^/  /' "$tmp/loopwarden.log"
grep -q '"finish_reason":"length"' "$tmp/loop.sse" && grep -q '"loopwarden":{' "$tmp/loop.sse" &&
	tail -n 2 "$tmp/loop.sse" | grep -q 'data: \[DONE\]' && echo "== the loop ended with finish_reason \"length\", the loopwarden object and [DONE]"
echo
echo "== 3. co-resident mode: loopwarden serves $model from its own engine"
"$bdir/loopwarden" --listen 127.0.0.1:0 --model "$model" >"$tmp/coresident.log" 2>&1 &
co_pid=$!
co_port=$(wait_for "$tmp/coresident.log" 'listening on http://127.0.0.1:')
echo "loopwarden --model $model on 127.0.0.1:$co_port; GET /v1/models:"
curl -s "http://127.0.0.1:$co_port/v1/models"
echo
complete() { # PROMPT MAX_TOKENS: one greedy streaming completion; prints the text and the end
	curl -sN "http://127.0.0.1:$co_port/v1/chat/completions" -H 'Content-Type: application/json' \
		-d "{\"stream\":true,\"temperature\":0,\"max_tokens\":$2,\"messages\":[{\"role\":\"user\",\"content\":\"$1\"}]}"
}
text_of() { # SSE file: the content deltas joined
	grep -o '"delta":{"content":"\([^"\\]\|\\.\)*"' "$1" | sed 's/^"delta":{"content":"//; s/"$//' |
		tr -d '\n' | sed 's/\\n/ /g; s/\\"/"/g'
}
echo
echo "-- a healthy prompt, \"Once upon a time\" (max_tokens 48):"
complete "Once upon a time" 48 >"$tmp/co-healthy.sse"
echo "   text: Once upon a time$(text_of "$tmp/co-healthy.sse")"
echo "   end:  $(grep -o '"finish_reason":"[a-z_]*"' "$tmp/co-healthy.sse" | tail -n 1), then $(tail -n 2 "$tmp/co-healthy.sse" | head -n 1)"
echo
echo "-- a prompt this model loops on, \"One day, a big bear\" (up to 2000 tokens):"
complete "One day, a big bear" 2000 >"$tmp/co-loop.sse"
echo "   text: One day, a big bear$(text_of "$tmp/co-loop.sse")"
echo "   the last two events:"
grep '^data: ' "$tmp/co-loop.sse" | tail -n 2 | cut -c1-420 | sed 's/^/   /'
echo
echo "   the engine's figures (/metrics):"
curl -s "http://127.0.0.1:$co_port/metrics" | grep -E '^loopwarden_(engine_(tokens_generated|requests_cancelled|tokens_after_cancel)_total|trips_total)' | sed 's/^/   /'
grep -q '"finish_reason":"length"' "$tmp/co-loop.sse" && grep -q '"tokens_after_cancel":[01]' "$tmp/co-loop.sse" &&
	echo "== the loop was cut by the repeat guard; the engine generated at most one token after the cancel"

echo
echo "In front of a real engine: build/loopwarden --listen 127.0.0.1:8080 --upstream http://127.0.0.1:8081"
echo "Or with loopwarden's own engine: build/loopwarden --listen 127.0.0.1:8080 --model MODEL.gguf"
echo "then set your agent's OpenAI base URL to http://127.0.0.1:8080/v1 (see build/loopwarden --help)."
