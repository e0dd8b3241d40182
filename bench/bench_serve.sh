#!/usr/bin/env bash
# Serving throughput through loopwarden's co-resident HTTP path: aggregate
# generated tokens/s at 1, 2, 4 and 8 concurrent streaming requests to
# `loopwarden --model M` (POST /v1/chat/completions, stream, greedy), beside
# llama.cpp's `llama-server -np N` on the same GGUF and threads (POST
# /completion, stream, greedy, ignore_eos), with one client (the Python below)
# for both; prints the ratio loopwarden / llama-server.
#
#   bench/bench_serve.sh                                   # loopwarden alone
#   LLAMA_SERVER=/tmp/llama.cpp/build/bin/llama-server bench/bench_serve.sh
#   TYPES="Q8_0 Q4_0" THREADS="1 2" REPS=3 bench/bench_serve.sh
#
# Models: contrib/models/stories260K.gguf and generated ~124M-parameter llama
# models (tests/tools/gen_model --preset 100m, GPT-2 vocabulary) of each type
# in TYPES. A random model repeats itself under greedy decoding at once, so
# loopwarden runs with its text loop detectors off (guards.repeat, simhash,
# paraphrase): the answers go through the whole path (request reader,
# history check, chat template, scheduler, output parser, answer core, the
# remaining guards, chunk encoding) but are never cut. Each stream gets its
# own prompt (the same text on both servers) and TG tokens; the figure is
# the completion tokens of all streams over the wall time from the first
# request to the last end (prefill included), best of REPS. llama.cpp is
# never built or fetched here.
#
# Environment: BUILD (default build), MODELS (generated GGUFs, default
# /tmp/lw-bench-models; never inside the repo), TYPES (default "Q8_0 Q4_0";
# empty: stories260K only), THREADS ("1"), STREAMS ("1 2 4 8"), TG (tokens
# per stream, 128), REPS (best of, 3), STORIES=0 to skip stories260K, PORT
# (the servers', 18090), LLAMA_SERVER (path; that column is skipped without it).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MODELS=${MODELS:-/tmp/lw-bench-models}
TYPES=${TYPES-"Q8_0 Q4_0"}
THREADS=${THREADS:-1}
STREAMS=${STREAMS:-"1 2 4 8"}
TG=${TG:-128}
REPS=${REPS:-3}
STORIES=${STORIES:-1}
PORT=${PORT:-18090}
VOCAB=${VOCAB:-../shared/vocab/ggml-vocab-gpt-2.gguf}
LW="$BUILD/loopwarden"
GEN="$BUILD/tests/gen_model"
[ -x "$LW" ] || { echo "bench: $LW missing: build the loopwarden target" >&2; exit 2; }
command -v python3 >/dev/null || { echo "bench: python3 is needed for the client" >&2; exit 2; }
max_n=0
for n in $STREAMS; do [ "$n" -gt "$max_n" ] && max_n=$n; done
CTX=$((TG + 64)) # one sequence: a short prompt + TG

models=()
[ "$STORIES" = 1 ] && models+=(contrib/models/stories260K.gguf)
if [ -n "$TYPES" ]; then
	[ -x "$GEN" ] || { echo "bench: $GEN missing: build the gen_model target" >&2; exit 2; }
	mkdir -p "$MODELS"
	for type in $TYPES; do
		m="$MODELS/lw-124m-$type.gguf"
		[ -f "$m" ] || "$GEN" -o "$m" --preset 100m --type "$type" --vocab "$VOCAB" >/dev/null
		models+=("$m")
	done
fi

# client KIND PORT N: N concurrent streams, best aggregate tokens/s of REPS rounds.
client() {
	python3 - "$1" "$2" "$3" "$TG" "$REPS" <<'PY'
import json, sys, threading, time, http.client
kind, port, n, tg, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
for _ in range(1200):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/health")
        if c.getresponse().status == 200:
            break
    except Exception:
        pass
    time.sleep(0.1)
else:
    print("nan"); sys.exit(0)
def prompt(i):
    return "Story %d. The history of the city begins with a small settlement on the river" % i
def one(i, got):
    if kind == "lw":
        path, body = "/v1/chat/completions", {
            "stream": True, "temperature": 0, "max_tokens": tg,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": prompt(i)}]}
    else:
        path, body = "/completion", {
            "stream": True, "temperature": 0, "n_predict": tg, "ignore_eos": True,
            "cache_prompt": False, "prompt": prompt(i)}
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    n_tok = 0
    for line in r:
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        ev = json.loads(line[6:])
        if kind == "lw":
            u = ev.get("usage")
            if u:
                n_tok = u["completion_tokens"]
        elif ev.get("stop"):
            n_tok = ev.get("tokens_predicted", n_tok)
    got[i] = n_tok
best = 0.0
for _ in range(reps):
    got = [0] * n
    t0 = time.time()
    ts = [threading.Thread(target=one, args=(i, got)) for i in range(n)]
    for t in ts: t.start()
    for t in ts: t.join()
    best = max(best, sum(got) / (time.time() - t0))
print("%.1f" % best)
PY
}

stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

echo "# aggregate generated tokens/s, $TG tokens per stream, greedy, best of $REPS;"
echo "# loopwarden and llama-server take turns at each N"
printf "%-16s %7s %7s %10s %12s %7s\n" model threads streams loopwarden llama-server ratio
for model in "${models[@]}"; do
	name=$(basename "$model" .gguf)
	for th in $THREADS; do
		"$LW" --model "$model" --listen "127.0.0.1:$PORT" --quiet \
			--set engine.threads="$th" --set engine.max_seqs="$max_n" --set engine.n_ctx="$CTX" \
			--set guards.repeat.enabled=false --set guards.simhash.enabled=false \
			--set guards.paraphrase.enabled=false >/dev/null 2>&1 &
		lw_pid=$!
		for n in $STREAMS; do
			lw=$(client lw "$PORT" "$n")
			ll=-
			ratio=-
			if [ -n "${LLAMA_SERVER:-}" ]; then
				"$LLAMA_SERVER" -m "$model" -t "$th" -tb "$th" -np "$n" -c $((n * CTX)) \
					--host 127.0.0.1 --port $((PORT + 1)) >/dev/null 2>&1 &
				ll_pid=$!
				ll=$(client llama $((PORT + 1)) "$n")
				stop "$ll_pid"
				ratio=$(python3 -c "print('%.2f' % ($lw / $ll))" 2>/dev/null || echo -)
			fi
			printf "%-16s %7s %7s %10s %12s %7s\n" "$name" "$th" "$n" "$lw" "$ll" "$ratio"
		done
		stop "$lw_pid"
	done
done
