#!/usr/bin/env bash
# Installs the Debian packages loopwarden builds and tests with. Idempotent.
set -euo pipefail
pkgs=(build-essential cmake pkg-config git
      libevent-dev libyajl-dev libssl-dev libpcre2-dev libyaml-dev libcmocka-dev libjemalloc-dev
      nginx-light curl ca-certificates
      libpng-dev chromium) # chromium + libpng: test_html screenshots loopwarden-audit --html pages
# node/npm (for the openai-npm client test) may come from another repository:
# ask Debian for them only when the commands are missing.
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
