#!/usr/bin/env bash
# Installs the Debian packages loopwarden builds and tests with. Idempotent:
# asks apt (after an apt-get update) only for what is missing. Runs as root
# or through sudo.
#   contrib/install-deps.sh              build and test with GCC (the default)
#   contrib/install-deps.sh --clang      + clang with its sanitizer and libFuzzer
#                                        runtimes (contrib/fuzz.sh, test.sh clang/fuzz)
#   contrib/install-deps.sh --aarch64    + Debian's aarch64 cross compiler, qemu-user
#                                        and the arm64 libraries (test.sh aarch64)
#   contrib/install-deps.sh --all        all of the above (contrib/test.sh)
set -euo pipefail
clang=0 aarch64=0
for a in "$@"; do
	case "$a" in
	--clang) clang=1 ;;
	--aarch64) aarch64=1 ;;
	--all) clang=1 aarch64=1 ;;
	*) echo "usage: $0 [--clang] [--aarch64] [--all]" >&2; exit 2 ;;
	esac
done

pkgs=(build-essential cmake pkg-config git
      libevent-dev libyajl-dev libssl-dev libpcre2-dev libyaml-dev libcmocka-dev libjemalloc-dev
      nginx-light curl ca-certificates
      libpng-dev chromium) # chromium + libpng: test_html screenshots loopwarden-audit --html pages
# node/npm (for the openai-npm client test) may come from another repository:
# ask Debian for them only when the commands are missing.
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
# clang, and its runtimes: ASan/UBSan and libFuzzer (-fsanitize=fuzzer) are in
# libclang-rt-<version>-dev, which clang only recommends.
[ "$clang" = 1 ] && pkgs+=(clang libclang-rt-dev)

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

# aarch64: a cross build needs the target's -dev packages, installed side by
# side with the host's (multiarch). Only the libraries that the engine, the
# guards, the wire parsers and the config loader use: libevent-dev cannot be
# installed for two architectures at once, so the cross build leaves the
# proxy server out (-DLW_PROXY=OFF).
updated=0
if [ "$aarch64" = 1 ]; then
	host=$(dpkg --print-architecture)
	if [ "$host" = arm64 ]; then
		: # a native build is an aarch64 build: nothing to cross-compile
	elif [ "$host" != amd64 ]; then
		echo "install-deps.sh: --aarch64 is set up for amd64 hosts (this is $host); skipped" >&2
	else
		if ! dpkg --print-foreign-architectures | grep -qx arm64; then
			$SUDO dpkg --add-architecture arm64
			$SUDO apt-get update -qq
			updated=1
		fi
		pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross
		       libpcre2-dev:arm64 libyajl-dev:arm64 libyaml-dev:arm64 libcmocka-dev:arm64)
		command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null ||
			pkgs+=(qemu-user)
	fi
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps.sh: installing ${missing[*]}"
[ "$updated" = 1 ] || $SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
