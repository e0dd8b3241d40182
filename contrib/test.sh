#!/usr/bin/env bash
# The whole test suite, what CI runs (.ci/run): installs the dependencies,
# then runs each stage, timed, and prints a table of the stages at the end.
#   contrib/test.sh [STAGE...]     (default: every stage, in this order)
# Stages (build folder; what runs):
#   gcc       build/          GCC RelWithDebInfo: every test
#   asan      build-asan/     GCC Debug, ASan + UBSan: every test but those
#                             labelled no_sanitize
#   release   build-release/  GCC Release (-O3): every test but the real agent
#                             clients (label agents: they test the clients'
#                             behaviour, not the compiler's, and take minutes)
#   clang     build-clang/    clang RelWithDebInfo, the whole project: every test
#                             but the agents one
#   aarch64   build-aarch64/  Debian's aarch64 cross GCC (cmake/aarch64-linux-gnu.cmake)
#                             without the proxy server (-DLW_PROXY=OFF): the
#                             engine, guards, wire and config tests and fuzz seed
#                             replays, run under qemu-aarch64
#   fuzz      build-fuzz/     clang + libFuzzer: every registered fuzz target for
#                             LW_CI_FUZZ_SECONDS (default 30) s from its seeds;
#                             a crash fails the stage and prints the reproducer
# Every stage runs even when one before it failed; the exit status is 1 if
# any failed. LW_TEST_JOBS sets the parallelism (default: nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

all_stages=(gcc asan release clang aarch64 fuzz)
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=("${all_stages[@]}")
need_clang=0 need_aarch64=0
for s in "${stages[@]}"; do
	case "$s" in
	gcc | asan | release) ;;
	clang | fuzz) need_clang=1 ;;
	aarch64) need_aarch64=1 ;;
	*) echo "test.sh: unknown stage '$s' (stages: ${all_stages[*]})" >&2; exit 2 ;;
	esac
done
jobs=${LW_TEST_JOBS:-$(nproc)}

# Configures <dir> with the remaining cmake arguments, builds everything.
build() {
	local dir=$1
	shift
	cmake -S . -B "$dir" "$@" >/dev/null
	cmake --build "$dir" -j"$jobs"
}

stage_gcc() {
	CC=gcc build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
	ctest --test-dir build --output-on-failure -j"$jobs"
}

stage_asan() {
	CC=gcc build build-asan -DCMAKE_BUILD_TYPE=Debug -DLW_SANITIZE=ON
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE no_sanitize
}

stage_release() {
	CC=gcc build build-release -DCMAKE_BUILD_TYPE=Release
	ctest --test-dir build-release --output-on-failure -j"$jobs" -LE '^agents$'
}

stage_clang() {
	CC=clang build build-clang -DCMAKE_BUILD_TYPE=RelWithDebInfo
	ctest --test-dir build-clang --output-on-failure -j"$jobs" -LE '^agents$'
}

stage_aarch64() {
	case "$(uname -m)" in
	aarch64 | arm64)
		echo "this machine is aarch64: the native stages already built and tested for it"
		return 0 ;;
	esac
	build build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DLW_PROXY=OFF
	if ! command -v qemu-aarch64 >/dev/null && ! command -v qemu-aarch64-static >/dev/null; then
		echo "qemu-aarch64 not found: built for aarch64, tests not run (install qemu-user)" >&2
		return 1
	fi
	# The tests that are programs on their own (lw_unit_test, lw_fuzz_target;
	# labelled by subsystem); ctest runs each under qemu-aarch64
	# (CMAKE_CROSSCOMPILING_EMULATOR). Script tests that start other programs
	# are left out: qemu-user cannot follow an exec without binfmt_misc.
	ctest --test-dir build-aarch64 --output-on-failure -j"$jobs" -L '^(guards|wire|engine_.*)$'
}

stage_fuzz() {
	local dir
	dir=$(mktemp -d "${TMPDIR:-/tmp}/loopwarden-ci-fuzz.XXXXXX")
	echo "corpus and reproducers under $dir"
	LW_FUZZ_BUILD=build-fuzz LW_FUZZ_DIR=$dir bash contrib/fuzz.sh all "${LW_CI_FUZZ_SECONDS:-30}" 1
}

t0=$SECONDS
flags=()
[ "$need_clang" = 1 ] && flags+=(--clang)
[ "$need_aarch64" = 1 ] && flags+=(--aarch64)
echo "=== install (contrib/install-deps.sh ${flags[*]})"
bash contrib/install-deps.sh "${flags[@]}"
report=$(printf '%-10s %6ss  %s' install $((SECONDS - t0)) ok)
echo "=== toolchain: $(uname -m), $(nproc) CPUs, jobs $jobs"
for c in cmake gcc clang aarch64-linux-gnu-gcc qemu-aarch64; do
	command -v "$c" >/dev/null && echo "$("$c" --version | head -n 1)"
done
failed=()
for s in "${stages[@]}"; do
	echo "=== stage $s"
	t=$SECONDS
	# A subshell outside any || or if, so that set -e holds inside it: the
	# first failing command ends the stage, the script goes on.
	set +e
	(set -euo pipefail; "stage_$s")
	rc=$?
	set -e
	result=ok
	if [ "$rc" -ne 0 ]; then
		result="FAILED (exit $rc)"
		failed+=("$s")
	fi
	echo "=== stage $s: $result in $((SECONDS - t))s"
	report+=$'\n'$(printf '%-10s %6ss  %s' "$s" $((SECONDS - t)) "$result")
done
echo
echo "=== stage times"
echo "$report"
printf '%-10s %6ss\n' total $((SECONDS - t0))
if [ ${#failed[@]} -gt 0 ]; then
	echo "test.sh: FAILED stages: ${failed[*]}" >&2
	exit 1
fi
