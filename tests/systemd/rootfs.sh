#!/usr/bin/env bash
# Prints the path of a Debian 12 rootfs for the systemd e2e, building it with
# debootstrap when the cache has none. The cache lives outside the repo
# (root-owned, ~200 MB) and is keyed by the package list, so changing the
# list builds a new one. Containers boot it with --volatile=overlay: it is
# never modified, and parallel runs share it. The cache key is this file's
# hash: changing the package list or the recipe builds a new rootfs (older
# ones stay until removed by hand).
#   EGRESSD_E2E_CACHE   cache directory (default /var/cache/egressd-e2e)
#   EGRESSD_E2E_MIRROR  Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail

# systemd as PID 1 and the tools the in-container checks use (curl,
# python3, dnsmasq, ip, and sudo: the README's commands as a user types
# them), plus the libraries the host-built egressd links.
packages=systemd,systemd-sysv,dbus,libpam-systemd,iproute2,curl,python3,dnsmasq-base,sudo
packages+=,libbpf1,libspdlog1.10,libfmt9,libtomlplusplus3,libelf1
suite=bookworm

cache=${EGRESSD_E2E_CACHE:-/var/cache/egressd-e2e}
mirror=${EGRESSD_E2E_MIRROR:-http://deb.debian.org/debian}
hash=$(sha256sum "$0" | cut -c1-12)
root=$cache/rootfs-$hash

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9  # one builder; the others wait and reuse its result
if [[ ! -x $root/usr/lib/systemd/systemd ]]; then
  tmp=$(mktemp -d "$cache/.build-XXXXXX")
  trap 'rm -rf --one-file-system "$tmp"' EXIT
  echo "rootfs.sh: debootstrap $suite into $root (about a minute)" >&2
  if ! debootstrap --variant=minbase --include="$packages" "$suite" "$tmp" "$mirror" >"$tmp.log" 2>&1; then
    tail -20 "$tmp.log" >&2
    rm -f "$tmp.log"
    echo "rootfs.sh: debootstrap failed (log above)" >&2
    exit 1
  fi
  rm -f "$tmp.log"
  rm -f "$tmp"/var/cache/apt/archives/*.deb
  echo egtest >"$tmp/etc/hostname"
  # No serial getty on the passive console: nothing to wait for at boot.
  ln -sf /dev/null "$tmp/etc/systemd/system/console-getty.service"
  mv "$tmp" "$root"
  trap - EXIT
fi
echo "$root"
