#!/usr/bin/env bash
# Serving throughput: aggregate generation tokens/s through the engine's
# scheduler (tests/bench/bench_sched.c) at 1, 2, 4 and 8 concurrent streams,
# on stories260K and on generated ~124M-parameter models, per thread count.
#
#   bench/bench_sched.sh                       # stories260K + 124M Q8_0, 1 and 2 threads
#   TYPES="Q8_0 Q4_0" THREADS=2 bench/bench_sched.sh
#   LLAMA_SERVER=/tmp/llama.cpp/build/bin/llama-server bench/bench_sched.sh
#
# With LLAMA_SERVER set, the same GGUF also runs through `llama-server -np N`
# (same threads, N slots of the same context) with N concurrent /completion
# requests of the same prompt ids and length (temperature 0, ignore_eos), and
# the ratio loopwarden / llama-server of the aggregate figures is printed.
# llama.cpp is never built or fetched here. (That path has not yet been run
# against a real llama-server: check its figures by hand the first time.)
#
# Environment: BUILD (default build), MODELS (generated GGUFs, default
# /tmp/lw-bench-models; never inside the repo), TYPES (default Q8_0; empty:
# stories260K only), THREADS ("1 2"), STREAMS ("1 2 4 8"), TG (tokens per
# stream, 128), PP (prompt tokens per stream, 16), REPS (best of, 3),
# STORIES=0 to skip stories260K, PORT (llama-server's, 18089).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MODELS=${MODELS:-/tmp/lw-bench-models}
TYPES=${TYPES-Q8_0}
THREADS=${THREADS:-"1 2"}
STREAMS=${STREAMS:-"1 2 4 8"}
TG=${TG:-128}
PP=${PP:-16}
REPS=${REPS:-3}
STORIES=${STORIES:-1}
PORT=${PORT:-18089}
VOCAB=${VOCAB:-../shared/vocab/ggml-vocab-gpt-2.gguf}
BENCH="$BUILD/tests/bench_sched"
GEN="$BUILD/tests/gen_model"
for b in "$BENCH" "$GEN"; do
	[ -x "$b" ] || { echo "bench: $b missing: build the bench_sched and gen_model targets" >&2; exit 2; }
done

models=()
[ "$STORIES" = 1 ] && models+=(contrib/models/stories260K.gguf)
if [ -n "$TYPES" ]; then
	mkdir -p "$MODELS"
	for type in $TYPES; do
		m="$MODELS/lw-124m-$type.gguf"
		[ -f "$m" ] || "$GEN" -o "$m" --preset 100m --type "$type" --vocab "$VOCAB" >/dev/null
		models+=("$m")
	done
fi

# Aggregate tokens/s of llama-server with N slots: N concurrent requests,
# each PP prompt ids (the ones bench_sched uses) and TG generated tokens.
llama_server_tps() {
	local model=$1 th=$2 n=$3 log
	log=$(mktemp)
	"$LLAMA_SERVER" -m "$model" -t "$th" -np "$n" -c $((n * (PP + TG + 16))) \
		--host 127.0.0.1 --port "$PORT" >"$log" 2>&1 &
	local pid=$!
	python3 - "$PORT" "$n" "$PP" "$TG" "$REPS" <<'PY' || true
import json, sys, threading, time, urllib.request
port, n, pp, tg, reps = (int(x) for x in sys.argv[1:])
url = "http://127.0.0.1:%d" % port
for _ in range(600):
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as r:
            if r.status == 200:
                break
    except Exception:
        pass
    time.sleep(0.1)
else:
    print("nan"); sys.exit(0)
def prompt(i, nv=512):
    # the ids bench_sched.c uses for stream i (vocabulary-independent
    # enough: ids below 512 exist in every model here)
    return [1 + (i * 7919 + j * 104729) % (nv - 1) for j in range(pp)]
best = 0.0
for _ in range(reps):
    got = [0] * n
    def one(i):
        body = json.dumps({"prompt": prompt(i), "n_predict": tg, "temperature": 0,
                           "ignore_eos": True, "cache_prompt": False}).encode()
        req = urllib.request.Request(url + "/completion", body,
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            got[i] = json.load(r).get("tokens_predicted", 0)
    t0 = time.time()
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts: t.start()
    for t in ts: t.join()
    best = max(best, sum(got) / (time.time() - t0))
print("%.1f" % best)
PY
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -f "$log"
}

for model in "${models[@]}"; do
	for th in $THREADS; do
		out=$("$BENCH" -m "$model" -t "$th" --streams "$STREAMS" -n "$TG" -p "$PP" --reps "$REPS")
		echo "$out"
		if [ -n "${LLAMA_SERVER:-}" ]; then
			printf "%7s %10s %12s %8s\n" streams lw_agg_tps llama_agg_tps ratio
			for n in $STREAMS; do
				lw=$(awk -v n="$n" '$1 == n && NF == 9 {print $4}' <<<"$out")
				ll=$(llama_server_tps "$model" "$th" "$n")
				ratio=$(python3 -c "print('%.2f' % ($lw / $ll))" 2>/dev/null || echo -)
				printf "%7s %10s %12s %8s\n" "$n" "$lw" "$ll" "$ratio"
			done
		fi
		echo
	done
done
