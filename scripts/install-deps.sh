#!/usr/bin/env bash
# Installs what egressd needs to build, run and test on Debian 12.
# Idempotent: installs only missing packages; apt-get update only then.
#   scripts/install-deps.sh          build + run dependencies
#   scripts/install-deps.sh --test   also the test world's tools
set -euo pipefail

# libsystemd-dev: sd-bus, to ask systemd where a unit's cgroup is.
build_pkgs=(cmake make g++ clang llvm pkg-config libbpf-dev bpftool libelf-dev zlib1g-dev
            linux-libc-dev libspdlog-dev libtomlplusplus-dev libgtest-dev libsystemd-dev)
run_pkgs=(iproute2 util-linux procps)
# The e2e world (tests/e2e/world.py): dnsmasq answers the world's names,
# nginx serves the origins (TLS and plain HTTP), fcgiwrap runs
# git http-backend behind it for `git clone` over https; the clients are curl,
# openssl s_client, python3, node (fetch), git, pip (python3-pip, against a
# PEP 503 index the world serves) and npm.
# The systemd e2e (tests/systemd): systemd-nspawn boots a debootstrap'd
# Debian rootfs with systemd as PID 1.
test_pkgs=(python3 python3-pip curl openssl dnsutils libclang-rt-14-dev dnsmasq-base nginx fcgiwrap git
           systemd-container debootstrap)

pkgs=("${build_pkgs[@]}" "${run_pkgs[@]}")
if [[ "${1:-}" == "--test" ]]; then
  pkgs+=("${test_pkgs[@]}")
  # Node 18+ (global fetch); a node from elsewhere (nodesource, nvm) will do.
  command -v node >/dev/null || pkgs+=(nodejs)
  # npm: part of nodesource's nodejs; Debian ships it apart.
  command -v npm >/dev/null || pkgs+=(npm)
fi

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
