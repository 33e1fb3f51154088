#!/usr/bin/env bash
# bench-dns-cost.sh: what one cached answer costs egressd's resolver and dnsmasq (issue 5), in
# figures that do not depend on how busy the machine is: instructions (callgrind), syscalls
# (perf's syscall tracepoints, or strace -c) per answer. bench-dns.sh measures rates; on a
# shared 2-vCPU box those move ±20 % from run to run, these do not.
#
#   sudo scripts/bench-dns-cost.sh [perf|strace|callgrind|profile]...   # default: perf callgrind
#
# Installs what is missing with apt-get (dnsperf, unbound, dnsmasq-base, linux-perf, strace,
# valgrind, ...); egressd is $BUILD_DIR/egressd (default build/), copied before use.
#
# Setup as bench-dns.sh's cached test, smaller: two netns joined by a veth, unbound on
# 203.0.113.53 (the upstream, local zones only) with h000..h099.cached.test; egressd attached
# to a fresh cgroup with one [[allow]] rule per name (+ `[dns] allow = ["*.u.test"]`), dnsperf
# in that cgroup asking 203.0.113.53 (steered to egressd); dnsmasq on 127.0.0.2 with
# server=/NAME/ per name and address=/#/. Per tool and path: the daemon is started (under
# valgrind for callgrind), the 100 names are asked once (cache filled), then COST_QUERIES
# cached queries (dnsperf -n) are measured:
#   perf       perf stat -p PID of the syscall tracepoints and task-clock (native speed)
#   strace     strace -c -f -p PID (slows every syscall down: batches grow)
#   profile    perf record -e cpu-clock -g (sampled, kernel stacks too): where the time goes,
#              for reading (profile.PATH.LOAD.txt), not a figure
#   callgrind  valgrind --tool=callgrind; counters zeroed after the warm-up and dumped after
#              the run (callgrind_control): instructions (Ir) per answer. The daemon runs ~50x
#              slower, so more queries wait per wakeup than natively.
# Each runs at two loads: COST_CLIENTS x COST_OUTSTANDING in flight (bench-dns's 8 x 100: many
# queries wait per wakeup), and 1,000 queries/s (bench-dns's latency runs: one at a time, a
# twentieth of the queries; idle wakeups count too).
#
# COST_TEST=uncached measures forwarded answers instead: every measured query asks a name never
# asked before (<run>-<n>.u.test: allowed by `[dns] allow`, answered by unbound's redirect zone),
# so each is a cache miss, forwarded, filtered and cached, as bench-dns.sh's uncached test.
#
# Environment: BUILD_DIR=build, COST_QUERIES=200000 (callgrind: COST_QUERIES_CG=50000),
# COST_PATHS="egressd dnsmasq", COST_LOADS="8x100 r1000", COST_TEST=cached|uncached,
# COST_RESULTS=DIR (default /tmp/bench-dns-cost-<date>).
#
# NETWORK SAFETY: everything runs in two network namespaces this script creates ("client":
# dnsperf, egressd, dnsmasq, 198.51.100.2, a route to 203.0.113.0/24 only; "server": unbound
# on 203.0.113.53). Nothing is sent from the root namespace; every run is bounded (dnsperf -n
# and -l, timeout). On exit: daemons stopped by pid, egressd detached, cgroups, namespaces and
# pins removed.
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0; }
[[ $EUID -eq 0 ]] || { echo "bench-dns-cost: run as root" >&2; exit 1; }
cd "$(dirname "$0")/.."
REPO=$(pwd)
BENCH_NAME=bench-dns-cost
# shellcheck source=scripts/bench/lib.sh
. "$REPO/scripts/bench/lib.sh"
TOOLS=("$@")
((${#TOOLS[@]})) || TOOLS=(perf callgrind)
for t in "${TOOLS[@]}"; do [[ $t =~ ^(perf|strace|callgrind|profile)$ ]] || { echo "bench-dns-cost: unknown tool $t" >&2; exit 2; }; done
N=${COST_QUERIES:-200000}
N_CG=${COST_QUERIES_CG:-50000}
CLIENTS=${COST_CLIENTS:-8}
OUTSTANDING=${COST_OUTSTANDING:-100}
PATHS=${COST_PATHS:-egressd dnsmasq}
LOADS=${COST_LOADS:-${CLIENTS}x${OUTSTANDING} r1000}   # CxQ: dnsperf -c C -q Q; rN: N queries/s (-Q N -c 1 -q 20)
TEST=${COST_TEST:-cached}
[[ $TEST =~ ^(cached|uncached)$ ]] || { echo "bench-dns-cost: COST_TEST: cached or uncached" >&2; exit 2; }
BUILD=${BUILD_DIR:-build}
[[ $BUILD == /* ]] || BUILD=$REPO/$BUILD
RES=${COST_RESULTS:-/tmp/bench-dns-cost-$(date +%Y%m%d-%H%M%S)}
for v in N N_CG CLIENTS OUTSTANDING; do [[ ${!v} =~ ^[0-9]+$ ]] || { echo "bench-dns-cost: $v must be a number" >&2; exit 2; }; done
for l in $LOADS; do [[ $l =~ ^([0-9]+x[0-9]+|r[0-9]+)$ ]] || { echo "bench-dns-cost: COST_LOADS: CxQ or rN, e.g. 8x100 r1000" >&2; exit 2; }; done

ID=$$
NS_C=egdc-client-$ID
NS_S=egdc-server-$ID
UPSTREAM_IP=203.0.113.53
DNSMASQ_IP=127.0.0.2
CGROOT=$(bench_cgroot)
CG_TOP=$CGROOT/egdc-$ID
CG_FENCE=$CG_TOP/fenced
CG_PLAIN=$CG_TOP/plain
CG_DAEMON=$CG_TOP/daemon           # egressd or dnsmasq: its CPU split into user and system time
export EGRESSD_BPFFS_DIR=/sys/fs/bpf/egdc-$ID
export EGRESSD_RUN_DIR=/run/egdc-$ID
WORK=$(mktemp -d /tmp/egdc-work.XXXXXX)
EGRESSD=$BUILD/egressd
DPID=""
UPID=""

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  bench_stop_pid "$DPID"
  [[ -d $CG_FENCE ]] && timeout 20 "$EGRESSD" detach --cgroup "$CG_FENCE" >/dev/null 2>&1
  bench_stop_pid "$UPID"
  bench_rm_cgroups "$CG_TOP"
  bench_del_netns "$NS_C" "$NS_S"
  rm -rf "$EGRESSD_BPFFS_DIR" "$EGRESSD_RUN_DIR"
  mkdir -p "$RES" && cp -r "$WORK/logs" "$RES/" 2>/dev/null
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_apt_ensure dnsperf unbound dnsmasq-base bind9-dnsutils iproute2 util-linux linux-perf strace valgrind
for t in dnsperf unbound dnsmasq dig ip nsenter perf strace valgrind callgrind_control; do
  command -v "$t" >/dev/null || bench_die "$t missing"
done
[[ -x $EGRESSD ]] || bench_die "$EGRESSD missing (scripts/build.sh)"
[[ -n $CGROOT ]] || bench_die "no cgroup2 mount"
cp "$EGRESSD" "$WORK/egressd" && EGRESSD=$WORK/egressd
mkdir -p "$RES" "$WORK"/{logs,run}
chmod 755 "$WORK"
chmod 1777 "$WORK/logs"

NAMES=$(awk 'BEGIN {for (i = 0; i < 100; i++) printf "h%03d.cached.test ", i}')
for h in $NAMES; do echo "$h A"; done >"$WORK/cached.txt"
{
  printf 'server:\n  interface: %s\n  port: 53\n  num-threads: 1\n  do-ip6: no\n' "$UPSTREAM_IP"
  printf '  username: ""\n  chroot: ""\n  directory: "%s"\n  pidfile: ""\n  use-syslog: no\n  logfile: ""\n' "$WORK"
  printf '  access-control: 0.0.0.0/0 allow\n  module-config: "iterator"\n  local-zone: "." static\n  local-zone: "cached.test." static\n'
  i=0
  for h in $NAMES; do echo "  local-data: \"$h. 3600 IN A 203.0.113.$((100 + i))\""; i=$((i + 1)); done
  printf '  local-zone: "u.test." redirect\n  local-data: "u.test. 1 IN A 203.0.113.99"\n'
} >"$WORK/unbound.conf"
{
  printf 'no-resolv\nno-hosts\nlisten-address=%s\nbind-interfaces\ncache-size=10000\ndns-forward-max=1000\n' "$DNSMASQ_IP"
  for h in $NAMES; do echo "server=/$h/$UPSTREAM_IP"; done
  printf 'server=/u.test/%s\naddress=/#/\n' "$UPSTREAM_IP"
} >"$WORK/dnsmasq.conf"
{
  printf 'version = 1\n[network]\nloopback = "allow"\n[dns]\nupstream = ["%s"]\nallow = ["*.u.test"]\n' "$UPSTREAM_IP"
  for h in $NAMES; do printf '\n[[allow]]\nhost = "%s"\n' "$h"; done
} >"$WORK/egressd.toml"
chmod 644 "$WORK"/*.conf "$WORK/egressd.toml" "$WORK/cached.txt"

bench_netns_pair "$NS_C" "$NS_S" 198.51.100.2 198.51.100.1 203.0.113.0/24 "$UPSTREAM_IP"
mkdir "$CG_TOP" "$CG_FENCE" "$CG_PLAIN" "$CG_DAEMON"

in_client() { nsenter --net="/run/netns/$NS_C" -- "$@"; }

nsenter --net="/run/netns/$NS_S" -- unbound -d -c "$WORK/unbound.conf" >"$WORK/logs/unbound.log" 2>&1 &
UPID=$!
up_ok() { [[ $(in_client timeout 3 dig +time=1 +tries=1 +short @"$UPSTREAM_IP" h000.cached.test A 2>/dev/null) == 203.0.113.100 ]]; }
bench_wait_for 15 up_ok || bench_die "unbound does not answer"

server_of() { if [[ $1 == dnsmasq ]]; then echo "$DNSMASQ_IP"; else echo "$UPSTREAM_IP"; fi; }
client_cg() { if [[ $1 == egressd ]]; then echo "$CG_FENCE"; else echo "$CG_PLAIN"; fi; }
RUN_SEQ=0
dnsperf_run() { # path queries load [names] -> dnsperf output on stdout
  local args names=${4:-$TEST} file=$WORK/cached.txt passes=$(($2 / 100))
  if [[ $names == uncached ]]; then  # $2 names never asked before, once each
    RUN_SEQ=$((RUN_SEQ + 1))
    file=$WORK/uncached-$RUN_SEQ.txt passes=1
    awk -v n="$2" -v r="$RUN_SEQ" 'BEGIN {for (i = 0; i < n; i++) printf "r%d-%d.u.test A\n", r, i}' >"$file"
    chmod 644 "$file"
  fi
  case $3 in
    r*) args=(-Q "${3#r}" -c 1 -q 20) ;;   # a fixed rate, as bench-dns.sh's latency runs
    *) args=(-c "${3%x*}" -q "${3#*x}") ;;
  esac
  bench_in_cg "$(client_cg "$1")" nsenter --net="/run/netns/$NS_C" -- timeout 600 \
    dnsperf -s "$(server_of "$1")" -d "$file" -n "$passes" "${args[@]}" -t 5 -l 300
}
# the daemon's pid: under valgrind the process is valgrind's own (it execs the tool)
start_daemon() { # path tool
  local p=$1 tool=$2 pre=()
  [[ $tool == callgrind ]] && pre=(valgrind --tool=callgrind --callgrind-out-file="$WORK/run/cg.$p.%p" --vgdb=yes)
  if [[ $p == egressd ]]; then
    bench_daemon_in_cg "$CG_DAEMON" nsenter --net="/run/netns/$NS_C" -- "${pre[@]}" "$EGRESSD" attach --cgroup "$CG_FENCE" \
      --policy "$WORK/egressd.toml" --dns-upstream "$UPSTREAM_IP" >>"$WORK/logs/egressd-$tool.log" 2>&1 &
  else
    # under valgrind it keeps root: callgrind_control (vgdb) cannot reach a process that changed user
    local user=(--user=nobody --group=nogroup)
    [[ $tool == callgrind ]] && user=(--user=root --group=root)
    bench_daemon_in_cg "$CG_DAEMON" nsenter --net="/run/netns/$NS_C" -- "${pre[@]}" dnsmasq --keep-in-foreground --conf-file="$WORK/dnsmasq.conf" \
      --log-facility=- --pid-file="$WORK/run/dnsmasq.pid" "${user[@]}" >>"$WORK/logs/dnsmasq-$tool.log" 2>&1 &
  fi
  DPID=$!
  dig_p() { bench_in_cg "$(client_cg "$p")" nsenter --net="/run/netns/$NS_C" -- timeout 5 dig +time=2 +tries=1 @"$(server_of "$p")" "$@" 2>/dev/null; }
  # egressd: until it is attached the cgroup's DNS goes to unbound itself; its NXDOMAIN for
  # a denied name carries EDE 15 (Blocked)
  steered() { [[ $p != egressd ]] || dig_p +noall +comments probe.exfil.example A | grep -q 'EDE: 15'; }
  ok() { kill -0 "$DPID" 2>/dev/null && steered && [[ $(dig_p +short h000.cached.test A) == 203.0.113.100 ]]; }
  bench_wait_for 120 ok || { tail -n 20 "$WORK/logs/$p-$tool.log" >&2; bench_die "$p does not answer"; }
  # sh, nsenter and valgrind exec: $DPID is the daemon
  dnsperf_run "$p" 100 1x10 cached >/dev/null 2>&1 || true   # every name cached
}
stop_daemon() { # path
  bench_stop_pid "$DPID"
  DPID=""
  if [[ $1 == egressd ]]; then timeout 20 "$EGRESSD" detach --cgroup "$CG_FENCE" >>"$WORK/logs/egressd-detach.log" 2>&1 || true; fi
}
cpu_split() { awk '$1 == "user_usec" {u = $2} $1 == "system_usec" {s = $2} END {print u, s}' "$CG_DAEMON/cpu.stat"; }
queries() { local n=${2:-$N}; if [[ $1 == r* ]]; then echo $((n / 20)); else echo "$n"; fi; }  # at a fixed rate: a twentieth
completed() { awk '/Queries completed:/ {print $3}' "$1"; }

REPORT=$RES/report.txt
: >"$REPORT"
row() { printf '%-9s %-8s %-10s %9s %s\n' "$@" | tee -a "$REPORT"; }
row tool path load answers "figures per answer"

SYSCALLS=(recvfrom sendto recvmsg sendmsg recvmmsg sendmmsg epoll_wait epoll_pwait poll ppoll select pselect6 read write)
measure_perf() { # path load
  local p=$1 out=$WORK/run/perf-$1-$2.txt dp=$RES/dnsperf-perf-$1-$2.txt ev="raw_syscalls:sys_enter,task-clock" s
  for s in "${SYSCALLS[@]}"; do [[ -d /sys/kernel/tracing/events/syscalls/sys_enter_$s ]] && ev+=",syscalls:sys_enter_$s"; done
  perf stat -x, -e "$ev" -p "$DPID" -o "$out" &
  local ppid=$! u0 s0 u1 s1
  sleep 0.5
  read -r u0 s0 < <(cpu_split)
  dnsperf_run "$p" "$(queries "$2")" "$2" >"$dp" 2>&1 || true
  read -r u1 s1 < <(cpu_split)
  kill -INT "$ppid"; wait "$ppid" 2>/dev/null || true
  local n; n=$(completed "$dp")
  row perf "$p" "$2" "$n" "$(awk -v n="$n" -v u=$((u1 - u0)) -v s=$((s1 - s0)) 'BEGIN {printf "user %.2f us, sys %.2f us, ", u / n, s / n}')$(awk -F, -v n="$n" '$3 != "" && $1 ~ /^[0-9.]+$/ {
      name = $3; sub(/.*sys_enter_?/, "", name); if (name == "") name = "syscalls";
      if ($3 == "task-clock") printf "cpu %.2f us, ", $1 * 1000 / n; else if ($1 > 0) printf "%s %.3f, ", name, $1 / n }' "$out")"
}
measure_strace() {
  local p=$1 out=$WORK/run/strace-$1-$2.txt dp=$RES/dnsperf-strace-$1-$2.txt
  strace -c -f -p "$DPID" -o "$out" 2>>"$WORK/logs/strace.log" &
  local spid=$!
  sleep 1
  dnsperf_run "$p" "$(queries "$2")" "$2" >"$dp" 2>&1 || true
  kill -INT "$spid"; wait "$spid" 2>/dev/null || true
  local n; n=$(completed "$dp")
  row strace "$p" "$2" "$n" "$(awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 {c = $4; name = $NF; if (name != "total") printf "%s %.3f, ", name, c / n} $NF == "total" {printf "total %.3f", $4 / n}' "$out")"
}
measure_profile() { # where the time goes (sampled: cpu-clock, with kernel stacks), for reading, not a figure
  local p=$1 dp=$RES/dnsperf-profile-$1-$2.txt data=$WORK/run/perf-$1-$2.data
  perf record -q -e cpu-clock -F 2000 -g -p "$DPID" -o "$data" >/dev/null 2>&1 &
  local ppid=$!
  sleep 0.5
  dnsperf_run "$p" "$(queries "$2")" "$2" >"$dp" 2>&1 || true
  kill -INT "$ppid"; wait "$ppid" 2>/dev/null || true
  perf report -i "$data" --stdio --no-children --sort sym -g none 2>/dev/null | awk '/^ +[0-9]/ && n++ < 50' >"$RES/profile.$p.$2.txt" || true
  perf report -i "$data" --stdio --children --sort sym -g none 2>/dev/null | awk '/^ +[0-9]/ && n++ < 80' >"$RES/profile-children.$p.$2.txt" || true
  row profile "$p" "$2" "$(completed "$dp")" "see $RES/profile.$p.$2.txt"
}
measure_callgrind() {
  local p=$1 dp=$RES/dnsperf-cg-$1-$2.txt f ir
  timeout 60 callgrind_control -z "$DPID" 2>&1 | grep -q OK || bench_die "callgrind_control -z $DPID"
  dnsperf_run "$p" "$(queries "$2" "$N_CG")" "$2" >"$dp" 2>&1 || true
  rm -f "$WORK"/run/cg."$p".*
  timeout 60 callgrind_control --dump "$DPID" >/dev/null 2>&1 || bench_die "callgrind_control --dump $DPID"
  f=$(find "$WORK/run" -name "cg.$p.*" -newer "$dp" | head -1)
  [[ -n $f ]] || { ls -la "$WORK/run" >&2; bench_die "no callgrind dump"; }
  cp "$f" "$RES/callgrind.$p.$2"
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
  local n; n=$(completed "$dp")
  row callgrind "$p" "$2" "$n" "$(awk -v i="$ir" -v n="$n" 'BEGIN {printf "%.0f instructions", i / n}')"
}

for tool in "${TOOLS[@]}"; do
  for p in $PATHS; do
    bench_log "$tool: $p"
    start_daemon "$p" "$tool"
    for load in $LOADS; do "measure_$tool" "$p" "$load"; done
    stop_daemon "$p"
  done
done
bench_log "results: $RES"
