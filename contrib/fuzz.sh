#!/usr/bin/env bash
# Runs loopwarden's libFuzzer targets (clang; every library they call is
# instrumented, with ASan + UBSan).
#
#   contrib/fuzz.sh [TARGET|all] [SECONDS] [JOBS]
#     TARGET   a registered target (fuzz_request, fuzz_sse…) or all (default)
#     SECONDS  fuzzing time per target (default 300)
#     JOBS     parallel fuzzing processes per target (libFuzzer -fork; default 1)
#   contrib/fuzz.sh --list    the registered targets
#
# The targets are whatever tests/*.cmake register with lw_fuzz_target(): the
# build writes them to <build>/fuzz-targets.txt and this script runs each,
# starting from its seed corpus tests/fuzz/corpus/<what>/.
#
# Environment:
#   LW_FUZZ_BUILD  build folder (default build-fuzz; configured here with CC=clang)
#   LW_FUZZ_DIR    where the grown corpus (<dir>/<target>/corpus) and crashes
#                  (<dir>/<target>/crashes) are kept between runs, outside the
#                  tree (default ${XDG_CACHE_HOME:-~/.cache}/loopwarden-fuzz)
#   LW_FUZZ_FLAGS  extra libFuzzer flags, e.g. "-max_len=65536"
#
# Exit status 1 when any target crashed, leaked, hung or ran out of memory:
# each reproducer's path is printed with how to make it a regression case.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-2}"; }
list_only=0
case "${1:-}" in
-h | --help) usage 0 ;;
--list) list_only=1; shift ;;
esac
want=${1:-all}
secs=${2:-300}
jobs=${3:-1}
[[ $secs =~ ^[0-9]+$ && $jobs =~ ^[1-9][0-9]*$ ]] || usage
build=${LW_FUZZ_BUILD:-build-fuzz}
work=${LW_FUZZ_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/loopwarden-fuzz}
mkdir -p "$work"
work=$(cd "$work" && pwd)
case "$work/" in
"$src"/*) echo "fuzz.sh: LW_FUZZ_DIR ($work) must be outside the source tree" >&2; exit 2 ;;
esac

cc=${CC:-clang}
if ! command -v "$cc" >/dev/null; then
	echo "fuzz.sh: $cc not found: libFuzzer needs clang (bash contrib/install-deps.sh installs it)" >&2
	exit 2
fi
CC=$cc cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLW_LIBFUZZER=ON >/dev/null
list=$build/fuzz-targets.txt
if [ ! -s "$list" ]; then
	echo "fuzz.sh: no fuzz targets registered ($list is empty)" >&2
	exit 2
fi
names=()
while IFS=$'\t' read -r name _; do names+=("$name"); done <"$list"
if [ "$list_only" = 1 ]; then
	printf '%s\n' "${names[@]}"
	exit 0
fi
if [ "$want" != all ] && ! printf '%s\n' "${names[@]}" | grep -qx "$want"; then
	echo "fuzz.sh: no fuzz target '$want'; registered: ${names[*]}" >&2
	exit 2
fi
targets=("${names[@]}")
[ "$want" = all ] || targets=("$want")
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null

failed=()
while IFS=$'\t' read -r name prog seeds; do
	[ "$want" = all ] || [ "$name" = "$want" ] || continue
	what=${name#fuzz_}
	dir=$work/$name
	mkdir -p "$dir/corpus" "$dir/crashes"
	flags=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
	       -artifact_prefix="$dir/crashes/")
	[ -f "tests/fuzz/$name.dict" ] && flags+=(-dict="$src/tests/fuzz/$name.dict")
	[ "$jobs" -gt 1 ] && flags+=(-fork="$jobs")
	# shellcheck disable=SC2206 # LW_FUZZ_FLAGS is a list of flags
	flags+=(${LW_FUZZ_FLAGS:-})
	stamp=$dir/.started
	: >"$stamp"
	log=$dir/last.log
	echo "== $name: ${secs}s, $jobs job(s); corpus $dir/corpus (seeds $seeds)"
	# New inputs go to the first folder (ours); the seeds are only read.
	rc=0
	dirs=("$dir/corpus")
	[ -d "$seeds" ] && dirs+=("$seeds")
	"$prog" "${flags[@]}" "${dirs[@]}" >"$log" 2>&1 || rc=$?
	# The last status line: coverage, features, corpus size, executions.
	grep -E '^#[0-9]+' "$log" | tail -n 1 || true
	grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" | tr '\n' ' ' || true
	echo
	if [ "$rc" -ne 0 ]; then
		failed+=("$name")
		echo "!! $name FAILED (exit $rc); the end of its log ($log):"
		tail -n 60 "$log"
		found=0
		while IFS= read -r f; do
			found=1
			echo "!! reproducer: $f"
			echo "   reproduce:  $prog $f"
			echo "   regression case: once fixed, cp '$f' tests/fuzz/corpus/$what/<what-it-was>"
			echo "   (ctest replays tests/fuzz/corpus/$what/ in ${name}_corpus, in every build)"
		done < <(find "$dir/crashes" -type f -newer "$stamp" | sort)
		[ "$found" = 1 ] || echo "!! no reproducer was written (see the log above)"
	fi
done <"$list"

if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz.sh: FAILED: ${failed[*]}" >&2
	exit 1
fi
echo "fuzz.sh: ${#targets[@]} target(s) ran ${secs}s each without a crash"
