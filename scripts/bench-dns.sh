#!/usr/bin/env bash
# bench-dns.sh: what egressd's filtering resolver (issue 5) costs, next to asking the upstream
# directly and next to dnsmasq doing the same filtering job, measured in one run.
#
#   sudo scripts/bench-dns.sh                   # full: ~6-8 min on 2 vCPUs (+ up to 10 min waiting for a quiet machine)
#   sudo BENCH_QUICK=1 scripts/bench-dns.sh     # quick: ~1-2 min, no waiting (also: --quick)
#
# Paths (UDP, dnsperf as the client):
#   direct   dnsperf asks the upstream itself (unbound on 203.0.113.53, in the "server" netns,
#            a fixed local zone: nothing is recursed, nothing cached that matters)
#   egressd  `egressd attach --cgroup CG --policy P --dns-upstream 203.0.113.53`; dnsperf runs
#            in CG and sends to 203.0.113.53:53; the BPF hooks steer it to egressd's resolver
#            on loopback, which answers from its cache or forwards to the upstream
#   dnsmasq  dnsmasq 2.90 on 127.0.0.2:53 as a filtering forwarder: `server=/NAME/203.0.113.53`
#            for every allowed name (and `server=/u.test/...` for the wildcard), `address=/#/`
#            (NXDOMAIN at once) for the rest, cache-size 10000
# Tests, each on every path:
#   cached    the 100 allowed names h000..h099.cached.test (A, TTL 3600; one [[allow]] host
#             rule each), asked over and over; an unmeasured pass before each run puts them back
#             in the cache (the uncached runs' flood evicts them), so every answer is a hit
#   uncached  unique names <run>-<n>.u.test (u.test: a redirect zone at the upstream, any
#             name -> A 203.0.113.99, TTL 1; allowed by `[dns] allow = ["*.u.test"]` and
#             `server=/u.test/`): every name is asked once, so every query misses the cache
#             and is forwarded (checked: upstream queries per client query ≈ 1)
#   denied    unique names <run>-<hex>.t.exfil.example (a tunnelling burst): NXDOMAIN from
#             egressd / dnsmasq without asking anyone (checked: 0 upstream queries); direct =
#             the upstream's own NXDOMAIN, for reference. egressd also logs an event per
#             denied query (rate-limited to 1000/s after a burst of 2000)
# Measured: queries/s at full load (dnsperf -c 8 -q 100, DUR s per run; median over rounds,
# path order rotated per round), latency p50/p99/p99.9 at a fixed, unsaturated rate (dnsperf
# -Q LAT_QPS -v, per-query latency; all rounds pooled), CPU per query of the resolver, the
# upstream and the client (cgroup cpu.stat), upstream queries per client query (unbound's
# counters), egressd's fds and RSS after each run; ratios to direct and egressd/dnsmasq; the
# issue's target (egressd's cached rate ≥ dnsmasq's) marked met/missed. Prints a markdown
# report on stdout (progress on stderr) and keeps every raw figure in the results directory.
#
# Environment:
#   BUILD_DIR=build          where the egressd binary is (built with scripts/build.sh if missing)
#   BENCH_QUICK=1            the quick values, in brackets below (also: --quick)
#   BENCH_ROUNDS=5 [2]       rounds (each test over all paths, order rotated)
#   BENCH_DUR=5 [2]          seconds per full-load run
#   BENCH_LAT_S=3 [1]        seconds per latency run, at BENCH_LAT_QPS=1000 queries/s
#   BENCH_CLIENTS=8          dnsperf -c (sockets)
#   BENCH_OUTSTANDING=100    dnsperf -q (queries in flight)
#   BENCH_LOAD_MAX=0.7       full mode: wait until the 1-minute load is below this ...
#   BENCH_LOAD_WAIT=600 [0]  ... for at most this many seconds (polled every 10 s), then go on
#   BENCH_PATHS="direct egressd dnsmasq"   a subset (direct is always run)
#   BENCH_RESULTS=DIR        results (default /tmp/bench-dns-<date>)
#   BENCH_KEEP_WORK=0        1 = keep the work dir (configs, name lists, daemon logs)
#
# NETWORK SAFETY: all traffic stays inside two network namespaces this script creates and
# joins by a veth pair: "client" (dnsperf, egressd, dnsmasq; 198.51.100.2, a route to
# 203.0.113.0/24 only) and "server" (unbound on 203.0.113.53; 198.51.100.1). Neither has
# another interface; unbound answers only from local zones (`local-zone: "." static`: never
# recurses). Nothing is sent from the root namespace. Every load is bounded in count and time
# (dnsperf -l/-n, timeout). On exit, also on failure or Ctrl-C: daemons stopped by pid,
# `egressd detach`, cgroups, namespaces and pins removed.
set -euo pipefail

[[ ${1:-} == --quick ]] && BENCH_QUICK=1
[[ ${1:-} == -h || ${1:-} == --help ]] && { sed -n '2,56p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }
[[ $EUID -eq 0 ]] || { echo "bench-dns: run as root (netns, cgroups, bpf, apt-get)" >&2; exit 1; }

cd "$(dirname "$0")/.."
REPO=$(pwd)
BENCH_NAME=bench-dns
# shellcheck source=scripts/bench/lib.sh
. "$REPO/scripts/bench/lib.sh"
HELP=$REPO/scripts/bench
PY=/usr/bin/python3

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
  ROUNDS=${BENCH_ROUNDS:-2}; DUR=${BENCH_DUR:-2}; LAT_S=${BENCH_LAT_S:-1}; LOAD_WAIT=${BENCH_LOAD_WAIT:-0}
else
  ROUNDS=${BENCH_ROUNDS:-5}; DUR=${BENCH_DUR:-5}; LAT_S=${BENCH_LAT_S:-3}; LOAD_WAIT=${BENCH_LOAD_WAIT:-600}
fi
LAT_QPS=${BENCH_LAT_QPS:-1000}
CLIENTS=${BENCH_CLIENTS:-8}
OUTSTANDING=${BENCH_OUTSTANDING:-100}
LOAD_MAX=${BENCH_LOAD_MAX:-0.7}
UNIQ_RATE_MAX=150000               # unique names per second of load a name list holds (more: the run ends early)
PATHS_WANTED=${BENCH_PATHS:-direct egressd dnsmasq}
BUILD=${BUILD_DIR:-build}
[[ $BUILD == /* ]] || BUILD=$REPO/$BUILD
RES=${BENCH_RESULTS:-/tmp/bench-dns-$(date +%Y%m%d-%H%M%S)}
for v in ROUNDS DUR LAT_S LAT_QPS CLIENTS OUTSTANDING LOAD_WAIT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "bench-dns: $v must be a whole number" >&2; exit 2; }
done
((ROUNDS >= 1 && ROUNDS <= 50 && DUR >= 1 && DUR <= 120 && LAT_S >= 1 && LAT_S <= 60 && LOAD_WAIT <= 3600)) ||
  { echo "bench-dns: rounds 1-50, dur 1-120 s, lat 1-60 s, load wait <= 3600 s" >&2; exit 2; }

# --- names and addresses ----------------------------------------------------------------
ID=$$
NS_C=egbd-client-$ID               # dnsperf, egressd, dnsmasq
NS_S=egbd-server-$ID               # unbound, the upstream ("the internet's resolver")
CLIENT_IP=198.51.100.2             # veth, client side (TEST-NET-2)
SERVER_GW=198.51.100.1             # veth, server side
UPSTREAM_IP=203.0.113.53           # unbound (TEST-NET-3)
DNSMASQ_IP=127.0.0.2               # the filtering dnsmasq, on the client netns's lo
CACHED_N=100                       # h000..h099.cached.test
CACHED_TTL=3600
UNCACHED_IP=203.0.113.99

CGROOT=$(bench_cgroot)
CG_TOP=$CGROOT/egbd-$ID
CG_PLAIN=$CG_TOP/client-plain      # dnsperf of direct and dnsmasq
CG_FENCE=$CG_TOP/client-fenced     # dnsperf of egressd (the fenced cgroup)
CG_EGRESSD=$CG_TOP/egressd         # egressd itself (never inside its own fence)
CG_DNSMASQ=$CG_TOP/dnsmasq
CG_UPSTREAM=$CG_TOP/upstream
export EGRESSD_BPFFS_DIR=/sys/fs/bpf/egbd-$ID   # private pins: other attachments on the host stay apart
export EGRESSD_RUN_DIR=/run/egbd-$ID
WORK=$(mktemp -d /tmp/egbd-work.XXXXXX)
EGRESSD=$BUILD/egressd

# --- cleanup (always) --------------------------------------------------------------------
declare -A DPID=()                 # daemon name -> pid
MOUNTED_BPFFS=0
EG_STARTED=0
fence_progs() { bpftool cgroup show "$CG_FENCE" 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]+$/' | wc -l; }
egressd_detach() {
  [[ -x $EGRESSD && -d $CG_FENCE ]] || return 0
  ((EG_STARTED)) || (($(fence_progs) > 0)) || return 0
  if timeout 20 "$EGRESSD" detach --cgroup "$CG_FENCE" >>"$WORK/logs/egressd-detach.log" 2>&1; then
    EG_STARTED=0
  else
    bench_log "warning: egressd detach --cgroup $CG_FENCE failed (see logs/egressd-detach.log)"
  fi
}
cleanup() {
  local rc=$? name
  set +e
  trap - EXIT INT TERM
  for name in "${!DPID[@]}"; do bench_stop_pid "${DPID[$name]}"; done
  egressd_detach
  bpftool cgroup show "$CG_FENCE" 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $1, $2}' |
    while read -r id type; do bpftool cgroup detach "$CG_FENCE" "$type" id "$id" 2>/dev/null; done
  [[ -d $EGRESSD_BPFFS_DIR ]] && rm -rf "$EGRESSD_BPFFS_DIR"
  [[ -d $EGRESSD_RUN_DIR ]] && rm -rf "$EGRESSD_RUN_DIR"
  # whatever is left in our namespaces or cgroups was started by this script
  bench_rm_cgroups "$CG_TOP"
  bench_del_netns "$NS_C" "$NS_S"
  # shellcheck disable=SC2010  # bpffs names are plain
  if ((MOUNTED_BPFFS)) && [[ -z $(ls -A /sys/fs/bpf 2>/dev/null | grep -vxE 'maps.debug|progs.debug') ]]; then
    umount /sys/fs/bpf
  fi
  if [[ -d $RES ]]; then mkdir -p "$RES/logs" && cp -r "$WORK/logs/." "$RES/logs/" 2>/dev/null; fi
  [[ ${BENCH_KEEP_WORK:-0} == 1 ]] && bench_log "work dir kept: $WORK" || rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- dependencies (idempotent) -------------------------------------------------------------
bench_apt_ensure dnsperf unbound dnsmasq-base bind9-dnsutils iproute2 util-linux procps python3 bpftool jq
for t in dnsperf unbound unbound-control dnsmasq dig ip nsenter bpftool timeout jq awk; do
  command -v "$t" >/dev/null || bench_die "$t missing"
done
[[ -x $PY ]] || bench_die "$PY missing"
[[ -n $CGROOT && -d $CGROOT ]] || bench_die "no cgroup2 mount in /proc/self/mountinfo"

want() { [[ " $PATHS_WANTED " == *" $1 "* ]]; }
if want egressd && [[ ! -x $EGRESSD ]]; then
  bench_log "building egressd ($BUILD)"
  BUILD_DIR=$BUILD scripts/build.sh >&2 || bench_die "scripts/build.sh"
fi
# a private copy: the build dir may be rebuilt while this runs
EGRESSD_SRC=$EGRESSD
EG_COMMIT=$(git -C "$REPO" log -1 --format='%h %s' 2>/dev/null | cut -c1-100 || true)
EG_DIRTY=$(git -C "$REPO" status --porcelain --untracked-files=no -- bpf userspace 2>/dev/null | wc -l)
EG_BUILT=""
if want egressd; then
  cp "$EGRESSD_SRC" "$WORK/egressd" && EGRESSD=$WORK/egressd
  EG_BUILT=$(date -r "$EGRESSD_SRC" '+%Y-%m-%d %H:%M')
fi

mkdir -p "$RES"/{lat,out} "$WORK"/{run,logs,names}
chmod 755 "$WORK"
chmod 1777 "$WORK/logs"
bench_log "results $RES, work $WORK, namespaces $NS_C/$NS_S, cgroups $CG_TOP"

# --- zone, policies, configs --------------------------------------------------------------------
CACHED_NAMES=$(awk -v n="$CACHED_N" 'BEGIN {for (i = 0; i < n; i++) printf "h%03d.cached.test ", i}')
awk -v n="$CACHED_N" 'BEGIN {for (i = 0; i < n; i++) printf "h%03d.cached.test A\n", i}' >"$WORK/names/cached.txt"
{
  echo "server:"
  echo "  interface: $UPSTREAM_IP"
  echo "  port: 53"
  echo "  num-threads: 1"
  echo "  do-ip6: no"
  echo "  do-tcp: yes"
  echo '  username: ""'
  echo '  chroot: ""'
  echo "  directory: \"$WORK\""
  echo '  pidfile: ""'
  echo "  use-syslog: no"
  echo '  logfile: ""'
  echo "  verbosity: 1"
  echo "  access-control: 0.0.0.0/0 allow"
  echo '  module-config: "iterator"'
  echo "  do-not-query-localhost: yes"
  echo '  local-zone: "." static'            # never recurse: whatever is not below is NXDOMAIN
  echo '  local-zone: "cached.test." static'
  i=0
  for h in $CACHED_NAMES; do
    echo "  local-data: \"$h. $CACHED_TTL IN A 203.0.113.$((100 + i % 100))\""
    i=$((i + 1))
  done
  echo '  local-zone: "u.test." redirect'      # every name below u.test: the apex's A
  echo "  local-data: \"u.test. 1 IN A $UNCACHED_IP\""
  echo "remote-control:"
  echo "  control-enable: yes"
  echo "  control-interface: \"$WORK/run/unbound.ctl\""
  echo "  control-use-cert: no"
} >"$WORK/unbound.conf"
unbound-checkconf "$WORK/unbound.conf" >"$WORK/logs/unbound-checkconf.log" 2>&1 || { cat "$WORK/logs/unbound-checkconf.log" >&2; bench_die "unbound.conf"; }
{
  echo "# dnsmasq as a filtering forwarder (scripts/bench-dns.sh): the same names as egressd's policy"
  echo "no-resolv"
  echo "no-hosts"
  echo "listen-address=$DNSMASQ_IP"
  echo "bind-interfaces"
  echo "cache-size=10000"
  echo "dns-forward-max=1000"
  for h in $CACHED_NAMES; do echo "server=/$h/$UPSTREAM_IP"; done
  echo "server=/u.test/$UPSTREAM_IP"
  echo "address=/#/"
} >"$WORK/dnsmasq.conf"
{
  echo "# egressd policy of scripts/bench-dns.sh"
  echo "version = 1"
  echo "[network]"
  echo 'loopback = "allow"'
  echo "[dns]"
  echo "upstream = [\"$UPSTREAM_IP\"]"
  echo 'allow = ["*.u.test"]'
  for h in $CACHED_NAMES; do printf '\n[[allow]]\nhost = "%s"\n' "$h"; done
} >"$WORK/egressd.toml"
chmod 644 "$WORK"/*.conf "$WORK/egressd.toml" "$WORK/names/cached.txt"

# --- namespaces ------------------------------------------------------------------------------
bench_netns_pair "$NS_C" "$NS_S" "$CLIENT_IP" "$SERVER_GW" 203.0.113.0/24 "$UPSTREAM_IP"
for ns in "$NS_C" "$NS_S"; do
  # UDP bursts of 100 in flight x 8 sockets: default buffers are plenty, but make it explicit
  ip netns exec "$ns" sysctl -qw net.core.rmem_default=1048576 net.core.wmem_default=1048576 2>/dev/null || true
done

# --- cgroups -----------------------------------------------------------------------------------
mkdir "$CG_TOP" "$CG_PLAIN" "$CG_FENCE" "$CG_EGRESSD" "$CG_DNSMASQ" "$CG_UPSTREAM"
if ! mountpoint -q /sys/fs/bpf; then mount -t bpf bpf /sys/fs/bpf && MOUNTED_BPFFS=1; fi

# bench_in_cg / bench_daemon_in_cg (lib.sh) run CMD with its pid in a cgroup from exec on
client_cg() { if [[ $1 == egressd ]]; then echo "$CG_FENCE"; else echo "$CG_PLAIN"; fi; }
# a client of path $1 in the client namespace and the path's cgroup
client() { local cg; cg=$(client_cg "$1"); shift; bench_in_cg "$cg" nsenter --net="/run/netns/$NS_C" -- "$@"; }
server_of() { if [[ $1 == dnsmasq ]]; then echo "$DNSMASQ_IP"; else echo "$UPSTREAM_IP"; fi; }
resolver_cg() { case $1 in egressd) echo "$CG_EGRESSD" ;; dnsmasq) echo "$CG_DNSMASQ" ;; *) echo "$CG_UPSTREAM" ;; esac; }
cg_cpu_us() { awk '$1 == "usage_usec" {print $2}' "$1/cpu.stat"; }
upstream_queries() { # unbound's total, over its unix control socket
  unbound-control -c "$WORK/unbound.conf" stats_noreset 2>/dev/null | sed -n 's/^total\.num\.queries=//p' | head -1
}

# --- daemons -------------------------------------------------------------------------------------
start_unbound() {
  ( bench_daemon_in_cg "$CG_UPSTREAM" nsenter --net="/run/netns/$NS_S" -- unbound -d -c "$WORK/unbound.conf" ) >"$WORK/logs/unbound.log" 2>&1 &
  DPID[unbound]=$!
}
start_dnsmasq() {
  ( bench_daemon_in_cg "$CG_DNSMASQ" nsenter --net="/run/netns/$NS_C" -- dnsmasq --keep-in-foreground \
    --conf-file="$WORK/dnsmasq.conf" --log-facility=- --pid-file="$WORK/run/dnsmasq.pid" \
    --user=nobody --group=nogroup ) >"$WORK/logs/dnsmasq.log" 2>&1 &
  DPID[dnsmasq]=$!
}
start_egressd() {
  # in the client namespace through nsenter (`ip netns exec` would remount /sys and hide the
  # bpffs and the cgroup mount), in its own cgroup (never the one it fences)
  ( bench_daemon_in_cg "$CG_EGRESSD" nsenter --net="/run/netns/$NS_C" -- \
    "$EGRESSD" attach --cgroup "$CG_FENCE" --policy "$WORK/egressd.toml" --dns-upstream "$UPSTREAM_IP" ) >>"$WORK/logs/egressd.log" 2>&1 &
  DPID[egressd]=$!
  EG_STARTED=1
}
alive() { [[ -n ${DPID[$1]:-} ]] && kill -0 "${DPID[$1]}" 2>/dev/null; }
egressd_log_has() { grep -q "$1" "$WORK/logs/egressd.log" 2>/dev/null; }
egressd_up() { egressd_log_has "resolver listening" || ! alive egressd; }

dig_q() { # path name [dig options...] -> dig's output (from the path's client cgroup)
  local p=$1 name=$2; shift 2
  client "$p" timeout 10 dig +time=2 +tries=1 "$@" @"$(server_of "$p")" "$name" A 2>&1 || true
}
dig_answer() { # path name -> the A records, or the status
  local out
  out=$(dig_q "$1" "$2" +noall +comments +answer)
  if grep -q 'status: NOERROR' <<<"$out"; then
    awk '!/^;/ && $4 == "A" {print $5}' <<<"$out" | sort | xargs
  elif grep -q 'status:' <<<"$out"; then
    sed -nE 's/.*status: ([A-Z]+),.*/\1/p' <<<"$out" | head -1
  else
    echo none
  fi
}

start_unbound
dns_up() { [[ $(client direct timeout 5 dig +time=1 +tries=1 +short @"$UPSTREAM_IP" h000.cached.test A 2>/dev/null) == 203.0.113.100 ]]; }
bench_wait_for 15 dns_up || { cat "$WORK/logs/unbound.log" >&2; bench_die "unbound does not answer h000.cached.test"; }
[[ -n $(upstream_queries) ]] || bench_die "unbound-control does not answer (stats)"
PATHS="direct"
if want dnsmasq; then
  start_dnsmasq
  dm_up() { [[ $(client dnsmasq timeout 5 dig +time=1 +tries=1 +short @"$DNSMASQ_IP" h000.cached.test A 2>/dev/null) == 203.0.113.100 ]]; }
  bench_wait_for 15 dm_up || { cat "$WORK/logs/dnsmasq.log" >&2; bench_die "dnsmasq does not answer h000.cached.test"; }
  PATHS+=" dnsmasq"
fi
EG_DNS_PORT=""
if want egressd; then
  "$EGRESSD" check "$WORK/egressd.toml" >"$WORK/logs/egressd-check.log" 2>&1 || { cat "$WORK/logs/egressd-check.log" >&2; bench_die "egressd check of the policy"; }
  start_egressd
  bench_wait_for 40 egressd_up
  alive egressd && egressd_log_has "resolver listening" || { tail -n 20 "$WORK/logs/egressd.log" >&2; bench_die "egressd's resolver did not come up"; }
  EG_DNS_PORT=$("$EGRESSD" status --json 2>/dev/null | jq -r --arg cg "$CG_FENCE" '.attachments[] | select(.cgroup == $cg) | .dns_port' 2>/dev/null || true)
  [[ -n $EG_DNS_PORT && $EG_DNS_PORT != 0 && $EG_DNS_PORT != null ]] || { "$EGRESSD" status >&2 || true; bench_die "egressd status shows no dns_port for $CG_FENCE"; }
  bench_log "egressd resolver on 127.0.0.1:$EG_DNS_PORT (pid ${DPID[egressd]})"
  PATHS="direct egressd${PATHS#direct}"
fi
bench_log "paths: $PATHS"

# --- functional check: every path must answer right, filter and (egressd) steer ------------------
check_paths() {
  local p a u d c0 c1 c2 c3 ede verdict out
  printf '%-8s %-15s %-15s %-9s %-9s %-12s %s\n' path h000.cached u.test exfil upstream-q steered ok >"$RES/check.txt"
  for p in $PATHS; do
    c0=$(upstream_queries)
    a=$(dig_answer "$p" h000.cached.test)
    c1=$(upstream_queries)
    a=$(dig_answer "$p" h000.cached.test)            # again: a cache hit on the filtering paths
    c2=$(upstream_queries)
    u=$(dig_answer "$p" "check-$p.u.test")
    d=$(dig_answer "$p" "check-$p.t.exfil.example")
    c3=$(upstream_queries)
    ede=-
    if [[ $p == egressd ]]; then
      # the answer came from egressd's resolver: NXDOMAIN with Extended DNS Error 15 (Blocked)
      out=$(dig_q egressd "ede-check.t.exfil.example" +noall +comments)
      grep -qiE 'EDE: 15|Blocked' <<<"$out" && ede=EDE15 || ede=no
    fi
    verdict=no
    if [[ $a == 203.0.113.100 && $u == "$UNCACHED_IP" && $d == NXDOMAIN ]]; then
      case $p in
        direct) [[ $((c3 - c0)) == 4 ]] && verdict=yes ;;
        # second h000 from the cache (0), the u.test name forwarded (1), exfil never (0)
        egressd) [[ $((c2 - c1)) == 0 && $((c3 - c2)) == 1 && $ede == EDE15 ]] && verdict=yes ;;
        dnsmasq) [[ $((c2 - c1)) == 0 && $((c3 - c2)) == 1 ]] && verdict=yes ;;
      esac
    fi
    printf '%-8s %-15s %-15s %-9s %-9s %-12s %s\n' "$p" "$a" "$u" "$d" "$((c1 - c0))/$((c2 - c1))/$((c3 - c2))" "$ede" "$verdict" >>"$RES/check.txt"
    [[ $verdict == yes ]] || { cat "$RES/check.txt" >&2; bench_die "functional check of the $p path"; }
  done
  cat "$RES/check.txt" >&2
}
check_paths

# --- measurements --------------------------------------------------------------------------------
RAW=$RES/raw.csv
echo "round,test,path,kind,sent,completed,lost,seconds,qps,avg_lat_s,expected,unexpected,rcodes,resolver_cpu_us,upstream_cpu_us,client_cpu_us,upstream_queries,eg_denied_logged,eg_fds,eg_rss_kib,alive" >"$RAW"
rotate() { local k=$1; shift; local a=("$@") i; for ((i = 0; i < $#; i++)); do printf '%s ' "${a[$(((i + k) % $#))]}"; done; }
expected_rcode() { if [[ $1 == denied ]]; then echo NXDOMAIN; else echo NOERROR; fi; }
names_file() { # test tag n -> a name list for one run (unique names for uncached/denied)
  local test=$1 tag=$2 n=$3 f=$WORK/names/$2.txt
  case $test in
    cached) f=$WORK/names/cached.txt ;;
    uncached) awk -v p="$tag" -v n="$n" 'BEGIN {for (i = 0; i < n; i++) printf "%s-%07d.u.test A\n", p, i}' >"$f" ;;
    denied) awk -v p="$tag" -v n="$n" 'BEGIN {for (i = 0; i < n; i++) printf "%s-%08x.t.exfil.example A\n", p, (i * 2654435761) % 4294967296}' >"$f" ;;
  esac
  echo "$f"
}
eg_fds() { alive egressd && find "/proc/${DPID[egressd]}/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l || echo 0; }
eg_rss() { alive egressd && awk '/^VmRSS:/ {print $2}' "/proc/${DPID[egressd]}/status" 2>/dev/null || echo 0; }
eg_denied_logged() { grep -c 'dns-name-not-allowed' "$WORK/logs/egressd.log" 2>/dev/null || true; }
DEAD=""                            # paths whose daemon died during the run
parse_dnsperf() { # file expected-rcode -> "sent completed lost seconds qps avg expected unexpected rcodes"
  awk -v want="$2" '
    /Queries sent:/ {sent = $3}
    /Queries completed:/ {done = $3}
    /Queries lost:/ {lost = $3}
    /Run time \(s\):/ {secs = $4}
    /Queries per second:/ {qps = $4}
    /Average Latency \(s\):/ {avg = $4}
    /Response codes:/ {
      sub(/.*Response codes: */, ""); n = split($0, parts, /, /)
      for (i = 1; i <= n; i++) { split(parts[i], w, " "); rc = rc (rc ? ";" : "") w[1] "=" w[2]; if (w[1] == want) nwant += w[2]; else nother += w[2] }
    }
    END {printf "%d %d %d %.6f %.1f %.6f %d %d %s\n", sent, done, lost, secs, qps, avg, nwant, nother, (rc ? rc : "-")}' "$1"
}
measure() { # round test path kind(load|lat) -> a row of raw.csv (+ latency samples for kind lat)
  local rnd=$1 test=$2 p=$3 kind=$4 tag n f out args=() r0 r1 u0 u1 c0 c1 q0 q1 e0 e1 rcg ccg parsed ok=1
  tag=r$rnd-$test-$kind-$p         # also the prefix of the run's unique names: never asked before
  if [[ $kind == load ]]; then
    n=$((UNIQ_RATE_MAX * DUR))
    args=(-l "$DUR" -c "$CLIENTS" -q "$OUTSTANDING")
  else
    n=$((LAT_QPS * LAT_S + 100))
    args=(-l "$LAT_S" -Q "$LAT_QPS" -c 1 -q 20 -v)
  fi
  f=$(names_file "$test" "$tag" "$n")
  [[ $test == cached ]] || args+=(-n 1)
  out=$RES/out/$tag.txt
  rcg=$(resolver_cg "$p"); ccg=$(client_cg "$p")
  if [[ $test == cached ]]; then
    # unmeasured: the uncached runs' flood of unique names may have evicted the cached names
    # (egressd: 16 MiB LRU, dnsmasq: 10000 entries); one pass puts them back
    client "$p" timeout 20 dnsperf -s "$(server_of "$p")" -d "$f" -n 1 -c 1 -q 10 -t 2 >/dev/null 2>&1 || true
  fi
  local sampler="" fdmax=$WORK/run/fdmax
  if [[ $p == egressd ]] && alive egressd; then
    # egressd's open fds, sampled every 0.2 s during the run (bounded): the upstream sockets in flight
    echo 0 >"$fdmax"
    ( m=0; for ((i = 0; i < (DUR + LAT_S + 30) * 5; i++)); do
        n=$(find "/proc/${DPID[egressd]}/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
        ((n > m)) && m=$n && echo "$m" >"$fdmax"
        sleep 0.2
      done ) &
    sampler=$!
  fi
  r0=$(cg_cpu_us "$rcg"); u0=$(cg_cpu_us "$CG_UPSTREAM"); c0=$(cg_cpu_us "$ccg"); q0=$(upstream_queries); e0=$(eg_denied_logged)
  client "$p" timeout $((DUR + LAT_S + 30)) dnsperf -s "$(server_of "$p")" -d "$f" -t 2 "${args[@]}" >"$out" 2>&1 || ok=0
  r1=$(cg_cpu_us "$rcg"); u1=$(cg_cpu_us "$CG_UPSTREAM"); c1=$(cg_cpu_us "$ccg"); q1=$(upstream_queries); e1=$(eg_denied_logged)
  if [[ -n $sampler ]]; then kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true; fi
  [[ $test == cached ]] || rm -f "$f"
  ((ok)) || bench_log "dnsperf failed: r$rnd $test $kind $p (see out/$tag.txt)"
  parsed=$(parse_dnsperf "$out" "$(expected_rcode "$test")")
  local is_alive=1 fds=0 rss=0
  if [[ $p != direct ]]; then
    alive "$p" || { is_alive=0; [[ " $DEAD " == *" $p "* ]] || DEAD+=" $p"; bench_log "FAILED: $p died during r$rnd $test $kind"; }
  fi
  if [[ $p == egressd ]]; then fds=$(eg_fds); [[ -n $sampler ]] && fds=$(( $(cat "$fdmax") > fds ? $(cat "$fdmax") : fds )); rss=$(eg_rss); fi
  # shellcheck disable=SC2086  # words
  set -- $parsed
  echo "$rnd,$test,$p,$kind,$1,$2,$3,$4,$5,$6,$7,$8,$9,$((r1 - r0)),$((u1 - u0)),$((c1 - c0)),$(( ${q1:-0} - ${q0:-0} )),$(( ${e1:-0} - ${e0:-0} )),$fds,$rss,$is_alive" >>"$RAW"
  if [[ $kind == lat ]]; then
    # "> NOERROR name A 0.000123": latency in µs, per test and path, all rounds pooled
    awk -v want="$(expected_rcode "$test")" '$1 == ">" {printf "%d %s\n", $NF * 1e6 + 0.5, ($2 == want) ? "ok" : $2}' "$out" >>"$RES/lat/$test-$p.txt"
    grep -c 'Timeout' "$out" >>"$RES/lat/timeouts-$test-$p.txt" || true
  fi
  if [[ $kind == load ]]; then
    bench_log "r$rnd $test $p: $(awk -v q="$5" -v n="$2" -v c=$((r1 - r0)) -v l="$3" 'BEGIN {printf "%.0f q/s, %d lost, resolver %.1f µs/query", q, l, (n > 0) ? c / n : 0}') (${9})"
  else
    bench_log "r$rnd latency $test $p: $2 answers, avg $(awk -v a="$6" 'BEGIN {printf "%.0f", a * 1e6}') µs (${9})"
  fi
}
live_paths() { local p out=""; for p in $PATHS; do [[ " $DEAD " == *" $p "* ]] || out+=" $p"; done; echo "$out"; }

# warm-up: every path's cache holds the cached names, first-run costs are paid
for p in $PATHS; do
  client "$p" timeout 30 dnsperf -s "$(server_of "$p")" -d "$WORK/names/cached.txt" -n 3 -c 1 -q 10 -t 2 >"$RES/out/warmup-$p.txt" 2>&1 || true
  client "$p" timeout 30 dnsperf -s "$(server_of "$p")" -d "$WORK/names/cached.txt" -l 1 -c "$CLIENTS" -q "$OUTSTANDING" -t 2 >>"$RES/out/warmup-$p.txt" 2>&1 || true
done

# a quiet machine for the full run: wait (bounded) for the 1-minute load to drop
LOAD_PRE=$(cat /proc/loadavg)
WAITED=0
QUIET=n/a
if ((LOAD_WAIT > 0)); then
  QUIET=no
  while :; do
    if awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$LOAD_MAX" 'BEGIN {exit !(l < m)}'; then QUIET=yes; break; fi
    ((WAITED >= LOAD_WAIT)) && break
    ((WAITED % 60 == 0)) && bench_log "waiting for the 1-min load < $LOAD_MAX (now $(cut -d' ' -f1-3 /proc/loadavg); ${WAITED}s of ${LOAD_WAIT}s)"
    sleep 10
    WAITED=$((WAITED + 10))
  done
  bench_log "load $(cut -d' ' -f1-3 /proc/loadavg) after ${WAITED}s: quiet=$QUIET"
fi

cpu_snapshot() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
read -r BUSY0 STEAL0 TOT0 < <(cpu_snapshot)
OURS0=$(cg_cpu_us "$CG_TOP")
T0=$(date +%s)
LOAD0=$(cat /proc/loadavg)
bench_log "measure: rounds=$ROUNDS dur=${DUR}s clients=$CLIENTS outstanding=$OUTSTANDING latency ${LAT_S}s at ${LAT_QPS}/s"
for rnd in $(seq 1 "$ROUNDS"); do
  for test in cached uncached denied; do
    # shellcheck disable=SC2046  # a list of words
    for p in $(rotate "$rnd" $(live_paths)); do measure "$rnd" "$test" "$p" load; done
  done
  for test in cached uncached denied; do
    # shellcheck disable=SC2046
    for p in $(rotate "$rnd" $(live_paths)); do measure "$rnd" "$test" "$p" lat; done
  done
done
read -r BUSY1 STEAL1 TOT1 < <(cpu_snapshot)
OURS1=$(cg_cpu_us "$CG_TOP")
LOAD1=$(cat /proc/loadavg)

# after the load: every live path still answers right
POST=""
for p in $(live_paths); do
  POST+="$p: $(dig_answer "$p" h001.cached.test) $(dig_answer "$p" "post-$p.u.test") $(dig_answer "$p" "post-$p.t.exfil.example"); "
done
bench_log "after the load: $POST"
EG_HWM=0
alive egressd && EG_HWM=$(awk '/^VmHWM:/ {print $2}' "/proc/${DPID[egressd]}/status" 2>/dev/null || echo 0)
EG_SUPPRESSED=$(grep -o '[0-9]* events not recorded so far' "$WORK/logs/egressd.log" 2>/dev/null | tail -1 | awk '{print $1}' || true)
EG_WARN=$(grep -E '^egressd: (warning|error|critical)' "$WORK/logs/egressd.log" 2>/dev/null | grep -vc 'events not recorded so far' || true)

# --- report -----------------------------------------------------------------------------------
jq -n \
  --arg date "$(date -Is)" --arg kernel "$(uname -r)" --arg cpu "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
  --arg nproc "$(nproc)" --arg mem "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" \
  --arg os "$(. /etc/os-release && echo "$PRETTY_NAME")" --arg load_pre "$LOAD_PRE" --arg load0 "$LOAD0" --arg load1 "$LOAD1" \
  --arg waited "$WAITED" --arg quiet "$QUIET" --arg load_max "$LOAD_MAX" \
  --arg busy "$(awk -v b=$((BUSY1 - BUSY0)) -v t=$((TOT1 - TOT0)) 'BEGIN {printf "%.0f", (t > 0) ? 100 * b / t : 0}')" \
  --arg steal "$(awk -v s=$((STEAL1 - STEAL0)) -v t=$((TOT1 - TOT0)) 'BEGIN {printf "%.1f", (t > 0) ? 100 * s / t : 0}')" \
  --arg others "$(awk -v b=$((BUSY1 - BUSY0)) -v t=$((TOT1 - TOT0)) -v o=$((OURS1 - OURS0)) -v hz="$(getconf CLK_TCK)" \
      'BEGIN {x = (t > 0) ? (b / hz - o / 1e6) / (t / hz) : 0; if (x < 0) x = 0; printf "%.0f", 100 * x}')" \
  --arg wall "$(($(date +%s) - T0))" --arg rounds "$ROUNDS" --arg dur "$DUR" --arg lat_s "$LAT_S" --arg lat_qps "$LAT_QPS" \
  --arg clients "$CLIENTS" --arg outstanding "$OUTSTANDING" --arg quick "$QUICK" --arg paths "$PATHS" --arg dead "${DEAD# }" \
  --arg dnsperf "$(dnsperf -h 2>&1 | sed -n 's/^Version //p' | head -1)" \
  --arg unbound "$(unbound -V 2>/dev/null | sed -n 's/^Version //p' | head -1)" \
  --arg dnsmasq "$(dnsmasq --version | head -1 | awk '{print $3}')" \
  --arg dig "$(dig -v 2>&1 | awk '{print $2}')" \
  --arg egressd "$EGRESSD_SRC" --arg built "$EG_BUILT" --arg commit "$EG_COMMIT" --arg dirty "$EG_DIRTY" \
  --arg eg_dns_port "$EG_DNS_PORT" --arg eg_hwm_kib "$EG_HWM" --arg eg_suppressed "${EG_SUPPRESSED:-0}" \
  --arg eg_warnings "${EG_WARN:-0}" --arg post "$POST" --arg cached_n "$CACHED_N" \
  '$ARGS.named' >"$RES/meta.json"
"$PY" "$HELP/dns-report.py" "$RES" | tee "$RES/report.md"
bench_log "results: $RES"
[[ -z $DEAD ]] || bench_die "daemon(s) died during the run: $DEAD"
