#!/usr/bin/env bash
# tests/systemd/run.sh BUILD_DIR: egressd under a real systemd.
#
# Boots a Debian 12 container (systemd-nspawn --boot, systemd as PID 1, its
# own network namespace), installs egressd into it with the real install
# rules (`DESTDIR=... cmake --install BUILD_DIR`, copied onto the container's
# volatile root), and runs inside.sh there as a systemd service. Nothing is
# sent outside the container's network namespace.
#
# Exit 77 (skipped) when not root, when there is no cgroup2, or with
# EGRESSD_SKIP_SYSTEMD_E2E=1; under CI=true only the opt-out skips, and any
# setup failure fails the test.
#   EGRESSD_E2E_KEEP=1  keep the container for up to an hour after the checks,
#                       to look around (prints how to enter it and how to end).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run.sh BUILD_DIR}
t0=$(date +%s%N)
ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }
log() { echo "[$(ms) ms] $*"; }
skip_or_fail() {
  if [[ ${CI:-} == true ]]; then echo "FAIL: $* (CI=true: not skipping)" >&2; exit 1; fi
  echo "SKIP: $*"; exit 77
}
die() { echo "FAIL: $*" >&2; exit 1; }

[[ ${EGRESSD_SKIP_SYSTEMD_E2E:-} == 1 ]] && { echo "SKIP: EGRESSD_SKIP_SYSTEMD_E2E=1"; exit 77; }
(( EUID == 0 )) || skip_or_fail "needs root (systemd-nspawn, cgroups, bpffs)"
# The cgroup2 mount and the v1 name=systemd mount (hybrid hosts) from mountinfo.
cg2=$(awk '{ for (i = 7; $i != "-"; ++i); if ($(i+1) == "cgroup2" && $4 == "/") { print $5; exit } }' /proc/self/mountinfo)
[[ -n $cg2 ]] || skip_or_fail "no cgroup2 mount in /proc/self/mountinfo"
cg1sd=$(awk '{ for (i = 7; $i != "-"; ++i); if ($(i+1) == "cgroup" && $(i+3) ~ /(^|,)name=systemd(,|$)/ && $4 == "/") { print $5; exit } }' /proc/self/mountinfo)
for tool in systemd-nspawn nsenter findmnt; do
  command -v $tool >/dev/null || die "$tool missing: run scripts/install-deps.sh --test"
done
build=$(cd "$build" && pwd)
[[ -f $build/CMakeCache.txt ]] || die "$build is not a CMake build directory"

rootfs=$("$here/rootfs.sh") || die "no container rootfs (tests/systemd/rootfs.sh failed)"
log "rootfs $rootfs"

# What a run leaves on the host, all named after it: the cgroup nspawn is
# started in (nspawn adds supervisor/payload below it and, on hybrid hosts, a
# v1 name=systemd mirror), /var/tmp/NAME (the staged install, the bpffs
# instance, the console log), nspawn's propagation directory.
# remove_run NAME: removes them once no process is left; prints what stays.
remove_run() {
  local name=$1 work=/var/tmp/$1
  mountpoint -q "$work/bpffs" && umount "$work/bpffs"  # drops every pin in it
  for dir in "$cg2/$name" ${cg1sd:+"$cg1sd/$name"}; do
    [[ -d $dir ]] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
    [[ -d $dir ]] && echo "cgroup $dir"
  done
  [[ -d /run/systemd/nspawn/propagate/$name ]] && rmdir "/run/systemd/nspawn/propagate/$name" 2>/dev/null
  if [[ -n $(findmnt -rn -o TARGET | grep -F "$work/") ]]; then
    echo "mounts under $work"
  elif [[ -d $work ]]; then
    rm -rf --one-file-system "$work"
  fi
  return 0
}
# A run that was killed (SIGKILL: no teardown) left its container running:
# kill what is left in its cgroup and remove the rest.
for dir in "$cg2"/egressd-e2e-*; do
  [[ -d $dir ]] || continue
  state=$(awk '{ print $3 }' "/proc/${dir##*-}/stat" 2>/dev/null || true)
  [[ -n $state && $state != Z ]] && continue  # that run is still going
  echo "removing the leftovers of an interrupted run: ${dir##*/}"
  echo 1 >"$dir/cgroup.kill"
  for _ in $(seq 50); do [[ -z $(find "$dir" -name cgroup.procs -exec cat {} +) ]] && break; sleep 0.1; done
  left=$(remove_run "${dir##*/}")
  [[ -z $left ]] || die "cannot remove the leftovers of an interrupted run: $left"
done

name=egressd-e2e-$$
work=/var/tmp/$name
bpffs=$work/bpffs
nspid=""
mkdir "$work" || die "$work exists"
teardown() {
  local rc=$? left=()
  trap - EXIT INT TERM
  if [[ -n $nspid ]] && kill -0 "$nspid" 2>/dev/null; then
    kill -TERM "$nspid" 2>/dev/null  # orderly poweroff of the container
    for _ in $(seq 150); do kill -0 "$nspid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$nspid" 2>/dev/null && { kill -KILL "$nspid"; left+=("nspawn needed SIGKILL"); }
    wait "$nspid" 2>/dev/null || true
  fi
  mapfile -t -O ${#left[@]} left < <(remove_run "$name")
  if ((${#left[@]})); then
    echo "FAIL: teardown left: ${left[*]}" >&2
    rc=1
  fi
  log "torn down (rc $rc)"
  exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

# The install rules under test, staged, then copied onto the container's
# root by inside.sh (the rootfs stays pristine: --volatile=overlay).
DESTDIR=$work/stage cmake --install "$build" >/dev/null || die "cmake --install $build failed"

mkdir "$cg2/$name" "$bpffs"
mount -t bpf bpf "$bpffs"
(
  # Started from its own cgroup, nspawn puts its supervisor/payload cgroups
  # there and not at the root of the host's hierarchy.
  echo $BASHPID >"$cg2/$name/cgroup.procs"
  # Pure cgroup2 inside (systemd's BPF features need it); bpf() allowed and
  # CAP_BPF/CAP_PERFMON kept; no host systemd or machined to register with.
  SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec systemd-nspawn --quiet --directory="$rootfs" --volatile=overlay \
    --boot --register=no --keep-unit --private-network --machine="$name" --console=passive \
    --capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN --system-call-filter='bpf perf_event_open' \
    --bind="$bpffs:/sys/fs/bpf" --bind-ro="$work/stage:/opt/egressd-e2e/stage" \
    --bind-ro="$here:/opt/egressd-e2e/tests" \
    </dev/null >"$work/console.log" 2>&1
) &
nspid=$!

# The container's PID 1 is nspawn's child, once it has exec'd systemd.
pid1=""
for _ in $(seq 300); do
  kill -0 "$nspid" 2>/dev/null || { cat "$work/console.log" >&2; die "systemd-nspawn exited early"; }
  for c in $(cat /proc/$nspid/task/*/children 2>/dev/null); do
    [[ $(readlink "/proc/$c/exe" 2>/dev/null) == */lib/systemd/systemd ]] && pid1=$c
  done
  [[ -n $pid1 ]] && break
  sleep 0.1
done
[[ -n $pid1 ]] || die "the container's systemd did not start within 30 s"
in_ct() { nsenter -t "$pid1" -m -u -i -n -p -C -- "$@"; }
state=""
for _ in $(seq 300); do
  state=$(in_ct systemctl is-system-running 2>/dev/null || true)
  [[ $state == running || $state == degraded ]] && break
  sleep 0.1
done
[[ $state == running || $state == degraded ]] || die "container did not boot within 30 s (state '$state')"
[[ $state == degraded ]] && in_ct systemctl --failed --no-legend
log "container $name booted (pid 1 = $pid1 on the host, $state)"

# An nsenter'd process keeps the host's capabilities and cgroup: run the
# checks as a service of the container's systemd instead.
rc=0
in_ct systemd-run --quiet --wait --pipe --unit=egressd-e2e --property=RuntimeMaxSec=300 \
  /opt/egressd-e2e/tests/inside.sh || rc=$?
log "checks done (rc $rc)"
if [[ ${EGRESSD_E2E_KEEP:-} == 1 ]]; then
  touch "$work/keep"
  echo "container kept: nsenter -t $pid1 -m -u -i -n -p -C bash; rm $work/keep tears it down"
  for _ in $(seq 3600); do [[ -e $work/keep ]] || break; sleep 1; done
fi
exit $rc
