#!/bin/sh
# Side-by-side cost of two builds of bench_guards: the same bench source
# (tests/bench/bench_guards.c uses only the public pipeline API) built
# against two guards/ trees, e.g. main's and a branch's:
#
#   git archive main | tar -x -C /tmp/base    # then copy this tree's
#   cp tests/bench/bench_guards.c /tmp/base/tests/bench/
#   cmake -S /tmp/base -B /tmp/base/build -DCMAKE_BUILD_TYPE=RelWithDebInfo
#   cmake --build /tmp/base/build --target bench_guards
#   tests/bench/bench_guards_ab.sh /tmp/base/build/tests/bench_guards build/tests/bench_guards
#
# Prints the memory one answer holds for each shape, MB/s of interleaved
# rounds (the machine may be busy: compare rounds taken side by side), and,
# when valgrind is installed, the instructions the guards execute for one
# MB (callgrind, counted only inside feed_all: the figure to compare).
# Usage: bench_guards_ab.sh BEFORE AFTER [megabytes, default 8] [rounds, default 5]
set -eu
before=$1
after=$2
mb=${3:-8}
rounds=${4:-5}

figure() { # <output> <key>
	printf '%s\n' "$1" | awk -v k="$2" '$1 == k { print $2 }'
}

b=$("$before" "$mb" 1)
a=$("$after" "$mb" 1)
printf '%-34s %14s %14s\n' "" before after
for k in new text_2k agent_turn long; do
	printf '%-34s %14s %14s\n' "memory.${k}_bytes" \
		"$(figure "$b" "bench_guards.memory.${k}_bytes")" \
		"$(figure "$a" "bench_guards.memory.${k}_bytes")"
done
i=1
while [ "$i" -le "$rounds" ]; do
	b=$("$before" "$mb" 1)
	a=$("$after" "$mb" 1)
	printf '%-34s %14s %14s\n' "round $i MB/s" \
		"$(figure "$b" bench_guards.mb_per_s)" "$(figure "$a" bench_guards.mb_per_s)"
	i=$((i + 1))
done
if command -v valgrind >/dev/null 2>&1; then
	for which in before after; do
		eval bin=\$$which
		out=$(mktemp)
		valgrind --tool=callgrind --toggle-collect=feed_all --callgrind-out-file="$out" \
			"$bin" 1 1 >/dev/null 2>"$out.log"
		eval "ir_$which=\$(awk '/refs:/ { gsub(\",\", \"\", \$NF); print \$NF }' \"\$out.log\")"
		rm -f "$out" "$out.log"
	done
	printf '%-34s %14s %14s\n' "instructions (1 MB, guards only)" "$ir_before" "$ir_after"
fi
