#!/usr/bin/env bash
# ctest driver: installs the official `openai` npm package into a temporary
# folder, starts lw-upstream and loopwarden on loopback, runs client_test.mjs.
# usage: run.sh BUILD_DIR SOURCE_DIR. Exit 77 (skipped) when node/npm are absent.
set -euo pipefail
build=$1 src=$2
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "SKIP: node and npm are not installed; the openai npm client test needs them"
	exit 77
fi
tmp=$(mktemp -d /tmp/lw-npm-test.XXXXXX)
up_pid= lw_pid=
cleanup() {
	[ -n "$lw_pid" ] && kill "$lw_pid" 2>/dev/null && wait "$lw_pid" 2>/dev/null
	[ -n "$up_pid" ] && kill "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
cp "$src/tests/npm/package.json" "$src/tests/npm/client_test.mjs" "$tmp/"
(cd "$tmp" && timeout 180 npm install --no-audit --no-fund --loglevel=error >npm.log 2>&1) || {
	echo "npm install of the openai package failed:"; cat "$tmp/npm.log"; exit 1; }
"$build/lw-upstream" --data "$src/tests/integration/data" --listen 0 --port-file "$tmp/up.port" >"$tmp/up.log" 2>&1 &
up_pid=$!
for _ in $(seq 100); do [ -s "$tmp/up.port" ] && break; sleep 0.1; done
up_port=$(cat "$tmp/up.port")
"$build/loopwarden" --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$up_port" >"$tmp/lw.log" 2>&1 &
lw_pid=$!
lw_port=
for _ in $(seq 100); do
	lw_port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$tmp/lw.log" | grep -o '[0-9]*$' || true)
	[ -n "$lw_port" ] && break
	sleep 0.1
done
[ -n "$lw_port" ] || { echo "loopwarden did not start:"; cat "$tmp/lw.log"; exit 1; }
echo "openai $(node -p "require('$tmp/node_modules/openai/package.json').version") via loopwarden on port $lw_port"
(cd "$tmp" && timeout 60 node client_test.mjs "http://127.0.0.1:$lw_port/v1")
