#!/usr/bin/env bash
# Engine throughput: prompt (prefill) and generation (decode) tokens/s of
# `loopwarden generate --bench` on generated ~124M-parameter models, per
# weight type and thread count, plus peak RSS. With LLAMA_BENCH=/path/to/
# llama-bench the same GGUFs run through llama.cpp too and the ratio is
# printed (llama.cpp is never built or fetched by this script).
#
#   bench/bench_engine.sh                 # F32 F16 Q8_0 Q4_0 Q4_K Q6_K at 1 and 2 threads
#   TYPES="Q8_0" THREADS="2" bench/bench_engine.sh
#   LLAMA_BENCH=/tmp/llama.cpp/build/bin/llama-bench bench/bench_engine.sh
#
# Environment: BUILD (build dir, default build), MODELS (where the generated
# GGUFs go, default /tmp/lw-bench-models; never inside the repo), TYPES,
# THREADS, PP (prompt tokens, default 512), TG (generated tokens, default 128),
# REPS (runs per figure, best is kept; default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MODELS=${MODELS:-/tmp/lw-bench-models}
TYPES=${TYPES:-"F32 F16 Q8_0 Q4_0 Q4_K Q6_K"}
THREADS=${THREADS:-"1 2"}
PP=${PP:-512}
TG=${TG:-128}
REPS=${REPS:-3}
VOCAB=${VOCAB:-../shared/vocab/ggml-vocab-gpt-2.gguf}
LW="$BUILD/loopwarden"
GEN="$BUILD/tests/gen_model"
for b in "$LW" "$GEN"; do
	[ -x "$b" ] || { echo "bench: $b missing: build the loopwarden and gen_model targets" >&2; exit 2; }
done
mkdir -p "$MODELS"

# A prompt of about $PP GPT-2 tokens (9 tokens per sentence).
prompt=$(python3 -c "import sys; n=int(sys.argv[1]); print(' '.join(['the quick brown fox jumps over the lazy dog']*max(1,n//9)))" "$PP")

# Runs a command and prints its peak RSS in KiB on stderr's last line.
peak_rss() {
	python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
sys.stdout.write(r.stdout)
print("peak_rss_kib %d" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(r.returncode)' "$@"
}

best() { python3 -c 'import sys; v=[float(x) for x in sys.argv[1:] if x]; print("%.1f" % max(v) if v else "nan")' "$@"; }

printf "%-5s %2s %10s %10s %10s %10s %8s %8s %9s\n" type th lw_pp lw_tg llama_pp llama_tg pp_ratio tg_ratio rss_mib
for type in $TYPES; do
	model="$MODELS/lw-124m-$type.gguf"
	if [ ! -f "$model" ]; then
		"$GEN" -o "$model" --preset 100m --type "$type" --vocab "$VOCAB" >/dev/null
	fi
	size_mib=$(( $(stat -c %s "$model") / 1048576 ))
	for th in $THREADS; do
		pps=() tgs=() rss=0
		for _ in $(seq "$REPS"); do
			out=$(peak_rss "$LW" generate -m "$model" -p "$prompt" -n 1 --temp 0 -t "$th" --bench)
			pps+=("$(sed -n 's/^bench: prompt .* = \([0-9.]*\) tok\/s/\1/p' <<<"$out")")
			out=$(peak_rss "$LW" generate -m "$model" -p "Hi" -n $((TG + 1)) --temp 0 -t "$th" --bench)
			tgs+=("$(sed -n 's/^bench: gen .* = \([0-9.]*\) tok\/s/\1/p' <<<"$out")")
			r=$(sed -n 's/^peak_rss_kib //p' <<<"$out")
			[ "$r" -gt "$rss" ] && rss=$r
		done
		pp=$(best "${pps[@]}") tg=$(best "${tgs[@]}")
		lpp=- ltg=- rpp=- rtg=-
		if [ -n "${LLAMA_BENCH:-}" ]; then
			# REPS separate one-repetition runs, best kept, as for ours
			# (llama-bench -r N only reports the mean)
			csv=$(for _ in $(seq "$REPS"); do
				"$LLAMA_BENCH" -m "$model" -p "$PP" -n "$TG" -t "$th" -r 1 -o csv 2>/dev/null || true
			done)
			read -r lpp ltg < <(python3 -c '
import csv, io, sys
pp = tg = float("nan")
lines = [l for l in sys.stdin.read().splitlines() if l.strip()]
hdr = next((l for l in lines if l.startswith("build_commit")), None)
rows = csv.DictReader(io.StringIO("\n".join([hdr] + [l for l in lines if l != hdr]))) if hdr else []
for row in rows:
    ts = float(row["avg_ts"])
    if row.get("n_prompt") not in (None, "0") and row.get("n_gen") == "0": pp = ts if pp != pp else max(pp, ts)
    if row.get("n_gen") not in (None, "0") and row.get("n_prompt") == "0": tg = ts if tg != tg else max(tg, ts)
print("%.1f %.1f" % (pp, tg))' <<<"$csv")
			rpp=$(python3 -c "print('%.2f' % ($pp/$lpp))" 2>/dev/null || echo -)
			rtg=$(python3 -c "print('%.2f' % ($tg/$ltg))" 2>/dev/null || echo -)
		fi
		printf "%-5s %2s %10s %10s %10s %10s %8s %8s %9s\n" "$type" "$th" "$pp" "$tg" "$lpp" "$ltg" "$rpp" "$rtg" "$((rss / 1024))/$size_mib"
	done
done
echo "(tokens/s, best of $REPS; pp = prompt of $PP tokens (loopwarden: $((PP / 9 * 9)), whole 9-token"
echo " sentences; llama-bench: $PP random tokens), tg = $TG tokens from an empty context;"
echo " rss_mib = peak RSS / file size, MiB, mmap load)"
