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

# client KIND PORT N PID: N concurrent streams; prints "TPS TPCPU": the best
# aggregate tokens/s of REPS rounds (wall clock) and the best tokens per CPU
# second of the server process PID (utime + stime of all its threads).
# KIND "calibrate": picks, for each of N streams, a prompt whose greedy
# answer llama-server (on PORT) completes: its output parser fails on some
# text a random model writes (invalid UTF-8: "does not match the expected
# Content-only format", HTTP 500 mid-stream), and both servers must be
# asked the same prompts; writes them, one per line, to $PROMPTS.
client() {
	python3 - "$1" "$2" "$3" "$TG" "$REPS" "$4" "$PROMPTS" <<'PY'
import json, os, sys, threading, time, http.client
kind, port, n, tg, reps, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
prompts_file = sys.argv[7]
hz = os.sysconf("SC_CLK_TCK")
def cpu():
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / hz
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
    print("nan nan"); sys.exit(0)
def candidate(i, k):
    return "Story %d.%d. The history of the city begins with a small settlement on the river" % (i, k)
prompts = [candidate(i, 0) for i in range(n)]
if kind != "calibrate" and os.path.exists(prompts_file):
    with open(prompts_file) as f:
        prompts = (f.read().splitlines() + prompts)[:max(n, 1)]
def prompt(i):
    return prompts[i]
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
    if r.status != 200:
        got[i] = 0
        return
    for line in r:
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        try: # llama-server may cut a character between two events
            ev = json.loads(line[6:].decode("utf-8", "replace"))
        except ValueError:
            continue
        if kind == "lw":
            u = ev.get("usage")
            if u:
                n_tok = u["completion_tokens"]
        elif ev.get("stop"):
            n_tok = ev.get("tokens_predicted", n_tok)
        elif "error" in ev:
            n_tok = 0
            break
    got[i] = n_tok
if kind == "calibrate":
    for i in range(n):
        for k in range(50):
            prompts[i] = candidate(i, k)
            got = [0] * n
            one(i, got)
            if got[i] == tg:
                break
    with open(prompts_file, "w") as f:
        f.write("\n".join(prompts) + "\n")
    sys.exit(0)
best, best_cpu, ok = 0.0, 0.0, 0
for _ in range(reps * 3):
    got = [0] * n
    c0, t0 = cpu(), time.time()
    ts = [threading.Thread(target=one, args=(i, got)) for i in range(n)]
    for t in ts: t.start()
    for t in ts: t.join()
    wall, used = time.time() - t0, cpu() - c0
    if min(got) == 0: # a failed request: not a measurement
        continue
    best = max(best, sum(got) / wall)
    best_cpu = max(best_cpu, sum(got) / used if used > 0 else 0)
    ok += 1
    if ok == reps:
        break
print("%.1f %.1f" % (best, best_cpu) if ok else "nan nan")
PY
}

stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

echo "# aggregate generated tokens/s (wall) and tokens per CPU second of the server process,"
echo "# $TG tokens per stream, greedy, best of $REPS; loopwarden and llama-server take turns at each N"
printf "%-14s %3s %3s %9s %9s %7s %9s %9s %7s\n" model th n lw_tps ll_tps ratio lw_tpcpu ll_tpcpu ratio
ratio() { python3 -c "print('%.2f' % ($1 / $2))" 2>/dev/null || echo -; }
PROMPTS=$(mktemp /tmp/lw-bench-prompts.XXXXXX)
trap 'rm -f "$PROMPTS"' EXIT
for model in "${models[@]}"; do
	name=$(basename "$model" .gguf)
	rm -f "$PROMPTS"
	if [ -n "${LLAMA_SERVER:-}" ]; then
		"$LLAMA_SERVER" -m "$model" -t 1 -np 1 -c "$CTX" --host 127.0.0.1 --port $((PORT + 1)) \
			>/dev/null 2>&1 &
		ll_pid=$!
		client calibrate $((PORT + 1)) "$max_n" "$ll_pid"
		stop "$ll_pid"
	fi
	for th in $THREADS; do
		"$LW" --model "$model" --listen "127.0.0.1:$PORT" --quiet \
			--set engine.threads="$th" --set engine.max_seqs="$max_n" --set engine.n_ctx="$CTX" \
			--set guards.repeat.enabled=false --set guards.simhash.enabled=false \
			--set guards.paraphrase.enabled=false >/dev/null 2>&1 &
		lw_pid=$!
		for n in $STREAMS; do
			read -r lw lwc < <(client lw "$PORT" "$n" "$lw_pid")
			ll=- llc=- r=- rc=-
			if [ -n "${LLAMA_SERVER:-}" ]; then
				"$LLAMA_SERVER" -m "$model" -t "$th" -tb "$th" -np "$n" -c $((n * CTX)) \
					--host 127.0.0.1 --port $((PORT + 1)) >/dev/null 2>&1 &
				ll_pid=$!
				read -r ll llc < <(client llama $((PORT + 1)) "$n" "$ll_pid")
				stop "$ll_pid"
				r=$(ratio "$lw" "$ll")
				rc=$(ratio "$lwc" "$llc")
			fi
			printf "%-14s %3s %3s %9s %9s %7s %9s %9s %7s\n" "$name" "$th" "$n" "$lw" "$ll" "$r" "$lwc" "$llc" "$rc"
		done
		stop "$lw_pid"
	done
done
