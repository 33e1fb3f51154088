#!/usr/bin/env bash
# Installs what egressd needs to build, run and test on Debian 12.
# Idempotent: installs only missing packages; apt-get update only then.
#   scripts/install-deps.sh          build + run dependencies
#   scripts/install-deps.sh --test   also the test world's tools
set -euo pipefail

build_pkgs=(cmake make g++ clang llvm pkg-config libbpf-dev bpftool libelf-dev zlib1g-dev
            linux-libc-dev libspdlog-dev libtomlplusplus-dev libgtest-dev)
run_pkgs=(iproute2 util-linux procps)
test_pkgs=(python3 curl openssl dnsutils libclang-rt-14-dev)

pkgs=("${build_pkgs[@]}" "${run_pkgs[@]}")
[[ "${1:-}" == "--test" ]] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
