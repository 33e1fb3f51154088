#!/usr/bin/env bash
# bench-proxy.sh: what egressd's transparent SNI/Host proxy costs (issue 4), next to no
# proxy at all and next to haproxy doing the same job, measured in one run.
#
#   sudo scripts/bench-proxy.sh              # full: ~10-15 min on 2 vCPUs
#   sudo BENCH_QUICK=1 scripts/bench-proxy.sh   # quick: ~2-3 min (also: --quick)
#
# Paths, for TLS :443 and plain HTTP :80 each:
#   direct   the client talks to the origin itself
#   haproxy  haproxy 2.6 in tcp mode, transparent: an nft redirect of the client's connects,
#            ClientHello SNI (req.ssl_sni) / first request's Host (req.hdr(host)) against an
#            allowlist, upstream = the original destination (server 0.0.0.0:0 = SO_ORIGINAL_DST)
#   egressd  `egressd attach --cgroup CG --policy P`: the client runs in CG, egressd's
#            connect4 hook steers its connects to egressd's own loopback proxy
# Measured: new connections/s (c=1, c=64, every one a full TLS handshake: the origin has no
# session cache and no tickets), latency of a new connection p50/p99 (all paths sampled
# interleaved), download throughput (1 and 16 streams), proxy CPU per GB and per new
# connection, proxy RSS with many idle kept-alive connections; ratios to direct; the
# targets of issue 4 marked met/missed. Prints a markdown report on stdout (progress on
# stderr) and keeps every raw figure in the results directory.
#
# Environment:
#   BUILD_DIR=build          where the egressd binary is (built with scripts/build.sh if missing)
#   BENCH_QUICK=1            the quick values, in brackets below (also: --quick)
#   BENCH_REPS=6 [2]         repetitions (each test over all paths, order rotated)
#   BENCH_DUR=2 [1]          seconds per load run
#   BENCH_LAT_ROUNDS=150 [40] latency rounds per repetition (one sample per path per round)
#   BENCH_IDLE_N=max [2000]  idle connections (max = what a 20000-fd process can relay)
#   BENCH_IDLE_MAX_S=40 [15] cap on setting them up
#   BENCH_PATHS="direct haproxy egressd"   a subset to run (direct is always run)
#   BENCH_REQUIRE_EGRESSD=0  1 = fail if egressd's proxy does not come up (else: left out)
#   BENCH_RESULTS=DIR        results (default /tmp/bench-proxy-<date>)
#   BENCH_PERF=0             1 = also `perf record` egressd during one TLS c=64 run and one
#                            16-stream TLS download (results/perf-*.txt)
#   BENCH_KEEP_WORK=0        1 = keep the work dir (certs, configs, daemon logs)
#
# NETWORK SAFETY: all traffic stays inside two network namespaces this script creates and
# joins by a veth pair: "client" (clients, haproxy, egressd; 198.51.100.2, a route to
# 203.0.113.0/24 only) and "origin" (nginx on 203.0.113.10-12, dnsmasq on 203.0.113.53;
# 198.51.100.1). Neither has another interface; nothing is sent from the root namespace.
# Every load is bounded in count and time (timeout). On exit, also on failure or Ctrl-C:
# daemons stopped by pid, `egressd detach`, cgroups, namespaces and pins removed.
set -euo pipefail

[[ ${1:-} == --quick ]] && BENCH_QUICK=1
[[ ${1:-} == -h || ${1:-} == --help ]] && { sed -n '2,44p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }
[[ $EUID -eq 0 ]] || { echo "bench-proxy: run as root (netns, cgroups, bpf, nft, apt-get)" >&2; exit 1; }

cd "$(dirname "$0")/.."
REPO=$(pwd)
BENCH_NAME=bench-proxy
# shellcheck source=scripts/bench/lib.sh
. "$REPO/scripts/bench/lib.sh"
HELP=$REPO/scripts/bench
PY=/usr/bin/python3

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
  REPS=${BENCH_REPS:-2}; DUR=${BENCH_DUR:-1}; LAT_ROUNDS=${BENCH_LAT_ROUNDS:-40}
  IDLE_N=${BENCH_IDLE_N:-2000}; IDLE_MAX_S=${BENCH_IDLE_MAX_S:-15}
else
  REPS=${BENCH_REPS:-6}; DUR=${BENCH_DUR:-2}; LAT_ROUNDS=${BENCH_LAT_ROUNDS:-150}
  IDLE_N=${BENCH_IDLE_N:-max}; IDLE_MAX_S=${BENCH_IDLE_MAX_S:-40}
fi
LAT_MAX_S=20                       # cap per latency pass
CPS_MAX_N=40000                    # cap on connections per h2load run
PATHS_WANTED=${BENCH_PATHS:-direct haproxy egressd}
BUILD=${BUILD_DIR:-build}
[[ $BUILD == /* ]] || BUILD=$REPO/$BUILD
RES=${BENCH_RESULTS:-/tmp/bench-proxy-$(date +%Y%m%d-%H%M%S)}

# --- names and addresses ----------------------------------------------------------------
ID=$$
NS_C=egbp-client-$ID               # clients, haproxy, egressd
NS_O=egbp-origin-$ID               # origin nginx, dnsmasq ("the internet")
CLIENT_IP=198.51.100.2             # veth, client side (TEST-NET-2)
ORIGIN_GW=198.51.100.1             # veth, origin side
ORIGIN_IP=203.0.113.10             # a.test b.test c.test lat-direct.test (TEST-NET-3)
declare -A LAT_IP=([direct]=203.0.113.10 [haproxy]=203.0.113.11 [egressd]=203.0.113.12)
DNS_IP=203.0.113.53
DNS_TTL=60
HAPROXY_TLS_PORT=15443
HAPROXY_HTTP_PORT=15080
LAT_DNAT_IP=127.0.0.2              # the latency client's static DNAT target (see README of the method)
ALLOW_HOSTS="a.test b.test lat-direct.test lat-haproxy.test lat-egressd.test"   # c.test: served, must be refused

CGROOT=$(bench_cgroot)
CG_TOP=$CGROOT/egbp-$ID
CG_PLAIN=$CG_TOP/client-plain      # clients of direct and haproxy
CG_FENCE=$CG_TOP/client-fenced     # clients of egressd (the fenced cgroup)
CG_EGRESSD=$CG_TOP/egressd         # egressd itself (never inside its own fence)
CG_HAPROXY=$CG_TOP/haproxy
CG_ORIGIN=$CG_TOP/origin
export EGRESSD_BPFFS_DIR=/sys/fs/bpf/egbp-$ID   # private pins: other attachments on the host stay apart
export EGRESSD_RUN_DIR=/run/egbp-$ID
WORK=$(mktemp -d /tmp/egbp-work.XXXXXX)
EGRESSD=$BUILD/egressd

# --- cleanup (always) --------------------------------------------------------------------
declare -A DPID=()                 # daemon name -> pid
MOUNTED_BPFFS=0
EG_STARTED=0                       # set by start_egressd, cleared by a detach that worked
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
  # programs left on the fenced cgroup by a failed detach
  bpftool cgroup show "$CG_FENCE" 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $1, $2}' |
    while read -r id type; do bpftool cgroup detach "$CG_FENCE" "$type" id "$id" 2>/dev/null; done
  [[ -d $EGRESSD_BPFFS_DIR ]] && rm -rf "$EGRESSD_BPFFS_DIR"
  [[ -d $EGRESSD_RUN_DIR ]] && rm -rf "$EGRESSD_RUN_DIR"
  # whatever is left in our namespaces or cgroups was started by this script
  bench_rm_cgroups "$CG_TOP"
  bench_del_netns "$NS_C" "$NS_O"
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
bench_apt_ensure haproxy nginx nghttp2-client wrk dnsmasq-base bind9-dnsutils nftables curl openssl \
  iproute2 util-linux procps python3 bpftool jq
for t in haproxy nginx h2load wrk dnsmasq dig nft curl openssl ip nsenter unshare bpftool ss timeout; do
  command -v "$t" >/dev/null || bench_die "$t missing"
done
[[ -x $PY ]] || bench_die "$PY missing"
[[ -n $CGROOT && -d $CGROOT ]] || bench_die "no cgroup2 mount in /proc/self/mountinfo"

want() { [[ " $PATHS_WANTED " == *" $1 "* ]]; }
if want egressd && [[ ! -x $EGRESSD ]]; then
  bench_log "building egressd ($BUILD)"
  BUILD_DIR=$BUILD scripts/build.sh >&2 || bench_die "scripts/build.sh"
fi

# a private copy: the build dir may be rebuilt while this runs (the idle test restarts egressd)
EGRESSD_SRC=$EGRESSD
EG_COMMIT=$(git -C "$REPO" log -1 --format='%h %s' 2>/dev/null | cut -c1-100 || true)
EG_DIRTY=$(git -C "$REPO" status --porcelain --untracked-files=no -- bpf userspace 2>/dev/null | wc -l)
if want egressd; then
  cp "$EGRESSD_SRC" "$WORK/egressd" && EGRESSD=$WORK/egressd
  EG_BUILT=$(date -r "$EGRESSD_SRC" '+%Y-%m-%d %H:%M')
fi

# --- limits --------------------------------------------------------------------------------
ulimit -Sn "$(ulimit -Hn)"
NOFILE=$(ulimit -Hn)
# a relaying proxy holds 2 fds per connection; leave ~400 for listeners, maps, logs
IDLE_FIT=$(((NOFILE - 400) / 2)); ((IDLE_FIT > 10000)) && IDLE_FIT=10000
[[ $IDLE_N == max ]] && IDLE_N=$IDLE_FIT
((IDLE_N > IDLE_FIT)) && IDLE_N=$IDLE_FIT
HAPROXY_MAXCONN=$((IDLE_N + 100))

mkdir -p "$RES"/{lat,out} "$WORK"/{pki,www,run,logs,tmp}
chmod 755 "$WORK" "$WORK/www"
chmod 1777 "$WORK/tmp" "$WORK/logs"
bench_log "results $RES, work $WORK, namespaces $NS_C/$NS_O, cgroups $CG_TOP"

# --- certificates, content, configs --------------------------------------------------------
(
  cd "$WORK/pki"
  san=$(for h in c.test $ALLOW_HOSTS; do printf 'DNS:%s,' "$h"; done)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -sha256 \
    -keyout origin.key -out origin.crt -subj "/CN=a.test" -addext "subjectAltName=${san%,}" 2>/dev/null
  chmod 644 origin.crt; chmod 600 origin.key
) || bench_die "openssl"
head -c 100 /dev/zero | tr '\0' x >"$WORK/www/small"
truncate -s 1G "$WORK/www/1g"
chmod 644 "$WORK/www/"*
printf '%s\n' $ALLOW_HOSTS >"$WORK/allow.lst"
chmod 644 "$WORK/allow.lst"
render() { # template -> output
  sed -e "s#@WORK@#$WORK#g" -e "s#@MAXCONN@#$HAPROXY_MAXCONN#g" \
    -e "s#@HAPROXY_TLS_PORT@#$HAPROXY_TLS_PORT#g" -e "s#@HAPROXY_HTTP_PORT@#$HAPROXY_HTTP_PORT#g" "$1" >"$2"
}
render "$HELP/proxy-origin-nginx.conf" "$WORK/origin-nginx.conf"
render "$HELP/proxy-haproxy.cfg" "$WORK/haproxy.cfg"
# shellcheck disable=SC2086 # ALLOW_HOSTS: a list of words
bench_web_policy scripts/bench-proxy.sh $ALLOW_HOSTS >"$WORK/egressd.toml"
HOSTS="127.0.0.1 localhost
$ORIGIN_IP a.test b.test c.test lat-direct.test
${LAT_IP[haproxy]} lat-haproxy.test
${LAT_IP[egressd]} lat-egressd.test"

# --- namespaces ------------------------------------------------------------------------------
# shellcheck disable=SC2086  # the address lists split on purpose
bench_netns_pair "$NS_C" "$NS_O" "$CLIENT_IP" "$ORIGIN_GW" 203.0.113.0/24 $ORIGIN_IP "${LAT_IP[haproxy]}" "${LAT_IP[egressd]}" $DNS_IP
ip netns exec "$NS_C" sysctl -qw net.ipv4.ip_local_port_range="20000 65000"
ip netns exec "$NS_O" sysctl -qw net.ipv4.ip_local_port_range="20000 65000"
bench_netns_files "$NS_C" "$HOSTS" "$DNS_IP"
bench_netns_files "$NS_O" "$HOSTS" "$DNS_IP"

# nft in the client namespace. haproxy path: uid 0's (the clients') connects to the origin
# are redirected by the 'dyn' chain (filled only while haproxy is measured); the latency
# client reaches haproxy on its own address (203.0.113.11) by a static DNAT to 127.0.0.2,
# so that its SYNs never meet the TIME_WAIT sockets the load runs leave on 127.0.0.1:port
# (different pre-NAT destination = different TCP timestamp offset: PAWS would drop them).
# haproxy runs as user haproxy, so its own upstream connects are never redirected. The nat
# table is there on every path, so conntrack costs the same everywhere.
ip netns exec "$NS_C" nft -f - <<EOF
table ip egbp {
  chain dyn {
  }
  chain out {
    type nat hook output priority -100; policy accept;
    meta skuid 0 ip daddr ${LAT_IP[haproxy]} tcp dport 443 counter dnat to $LAT_DNAT_IP:$HAPROXY_TLS_PORT
    meta skuid 0 ip daddr ${LAT_IP[haproxy]} tcp dport 80 counter dnat to $LAT_DNAT_IP:$HAPROXY_HTTP_PORT
    meta skuid 0 ip daddr $ORIGIN_IP jump dyn
  }
}
EOF
ip netns exec "$NS_C" sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_time_wait=10 2>/dev/null || true
set_path() { # direct|haproxy|egressd: what the clients' connects to the origin go through
  {
    echo "flush chain ip egbp dyn"
    if [[ $1 == haproxy ]]; then
      echo "add rule ip egbp dyn tcp dport 443 counter redirect to :$HAPROXY_TLS_PORT"
      echo "add rule ip egbp dyn tcp dport 80 counter redirect to :$HAPROXY_HTTP_PORT"
    fi
  } | ip netns exec "$NS_C" nft -f -
}
set_path direct

# --- cgroups -----------------------------------------------------------------------------------
mkdir "$CG_TOP" "$CG_PLAIN" "$CG_FENCE" "$CG_EGRESSD" "$CG_HAPROXY" "$CG_ORIGIN"
if ! mountpoint -q /sys/fs/bpf; then mount -t bpf bpf /sys/fs/bpf && MOUNTED_BPFFS=1; fi

# bench_in_cg / bench_daemon_in_cg (lib.sh) run CMD with its pid in a cgroup from exec on
# the same for a daemon: `( bench_daemon_in_cg CG CMD... ) &` leaves $! = the daemon's own pid
# a client of path $1, in the client namespace (with its hosts file) and the path's cgroup
client() {
  local cg=$CG_PLAIN
  [[ $1 == egressd ]] && cg=$CG_FENCE
  shift
  bench_in_cg "$cg" ip netns exec "$NS_C" "$@"
}
paths_of() { echo "${OK[$1]}"; }
scheme_of() { if [[ $1 == tls ]]; then echo https; else echo http; fi; }
client_cg() { if [[ $1 == egressd ]]; then echo "$CG_FENCE"; else echo "$CG_PLAIN"; fi; }
cg_cpu_us() { awk '$1 == "usage_usec" {print $2}' "$1/cpu.stat"; }
cg_rss_kib() { # sum of VmRSS over the cgroup's processes
  local pid total=0 v
  for pid in $(cat "$1/cgroup.procs"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || v=0
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
proxy_cg() { case $1 in haproxy) echo "$CG_HAPROXY" ;; egressd) echo "$CG_EGRESSD" ;; *) echo "" ;; esac; }
origin_opens() { ip netns exec "$NS_O" awk '/^Tcp:/ && $1 == "Tcp:" {n++; if (n == 2) print $7}' /proc/net/snmp; }

# --- daemons -------------------------------------------------------------------------------------
start_dnsmasq() {
  ( bench_daemon_in_cg "$CG_ORIGIN" ip netns exec "$NS_O" dnsmasq --keep-in-foreground --conf-file=/dev/null \
    --log-facility=- --pid-file="$WORK/run/dnsmasq.pid" --user=nobody --group=nogroup \
    --listen-address="$DNS_IP" --bind-interfaces --no-resolv --no-hosts \
    --addn-hosts="/etc/netns/$NS_O/hosts" --local-ttl="$DNS_TTL" --address=/#/ ) >"$WORK/logs/dnsmasq.log" 2>&1 &
  DPID[dnsmasq]=$!
}
start_origin() {
  ( bench_daemon_in_cg "$CG_ORIGIN" ip netns exec "$NS_O" nginx -c "$WORK/origin-nginx.conf" -g 'daemon off;' ) >"$WORK/logs/origin.log" 2>&1 &
  DPID[origin]=$!
}
start_haproxy() {
  ( bench_daemon_in_cg "$CG_HAPROXY" ip netns exec "$NS_C" haproxy -db -f "$WORK/haproxy.cfg" ) >"$WORK/logs/haproxy.log" 2>&1 &
  DPID[haproxy]=$!
}
EGRESSD_DNS_ARG=()
start_egressd() {
  # in the client namespace through nsenter (`ip netns exec` would remount /sys and hide the
  # bpffs and the cgroup mount), with a private mount namespace whose /etc/resolv.conf and
  # /etc/hosts are the client namespace's, in its own cgroup (never the one it fences)
  ( bench_daemon_in_cg "$CG_EGRESSD" nsenter --net="/run/netns/$NS_C" -- unshare --mount --propagation private -- \
    sh -c 'mount --bind "$0/resolv.conf" /etc/resolv.conf && mount --bind "$0/hosts" /etc/hosts && exec "$@"' \
    "/etc/netns/$NS_C" "$EGRESSD" attach --cgroup "$CG_FENCE" --policy "$WORK/egressd.toml" "${EGRESSD_DNS_ARG[@]}" ) >>"$WORK/logs/egressd.log" 2>&1 &
  DPID[egressd]=$!
  EG_STARTED=1
}
listens() { # ns port
  ip netns exec "$1" ss -ltnH "sport = :$2" 2>/dev/null | grep -q .
}
dns_answer() { # name [type] -> addresses or rcode
  local out
  out=$(ip netns exec "$NS_C" dig +time=2 +tries=1 +noall +comments +answer @"$DNS_IP" "$1" "${2:-A}" 2>/dev/null) || { echo none; return; }
  if grep -q 'status: NOERROR' <<<"$out"; then
    awk -v t="${2:-A}" '!/^;/ && $4 == t {print $5}' <<<"$out" | sort | xargs
  else
    sed -nE 's/.*status: ([A-Z]+),.*/\1/p' <<<"$out" | head -1
  fi
}
dns_ok() { [[ $(dns_answer a.test) == "$ORIGIN_IP" ]]; }
egressd_log_has() { grep -q "$1" "$WORK/logs/egressd.log" 2>/dev/null; }
egressd_listens() { # a TCP listener owned by egressd's pid in the client namespace
  ip netns exec "$NS_C" ss -ltnpH 2>/dev/null | grep -q "pid=${DPID[egressd]},"
}
egressd_alive() { kill -0 "${DPID[egressd]}" 2>/dev/null; }
egressd_enforcing() { egressd_log_has "enforcing on" || ! egressd_alive; }
egressd_proxy_up() { { egressd_log_has "proxy listening" && egressd_listens; } || ! egressd_alive; }
wait_egressd() { # 0 = enforcing with its proxy listening
  bench_wait_for 30 egressd_enforcing
  egressd_alive && egressd_log_has "enforcing on" || { bench_log "egressd did not report 'enforcing on'"; return 1; }
  bench_wait_for 20 egressd_proxy_up
  egressd_alive || { bench_log "egressd exited"; return 1; }
  egressd_log_has "proxy listening" && egressd_listens || { bench_log "egressd: no 'proxy listening' / no listener of its own in $NS_C"; return 1; }
}
stop_daemon() { bench_stop_pid "${DPID[$1]:-}"; unset "DPID[$1]"; }
restart_proxy() { # a fresh process (the idle test measures RSS growth from a clean start)
  stop_daemon "$1"
  if [[ $1 == egressd ]]; then
    egressd_detach
    mv "$WORK/logs/egressd.log" "$WORK/logs/egressd.log.$(date +%s%N)"   # wait_egressd reads the new one
    start_egressd; wait_egressd
  else
    start_haproxy
    bench_wait_for 20 listens "$NS_C" "$HAPROXY_TLS_PORT" && bench_wait_for 20 listens "$NS_C" "$HAPROXY_HTTP_PORT"
  fi
}

start_dnsmasq
bench_wait_for 10 dns_ok || bench_die "dnsmasq does not answer a.test"
start_origin
bench_wait_for 20 listens "$NS_O" 443 && bench_wait_for 20 listens "$NS_O" 80 || { cat "$WORK/logs/origin"* >&2; bench_die "origin nginx"; }
PATHS="direct"
if want haproxy; then
  start_haproxy
  if bench_wait_for 20 listens "$NS_C" "$HAPROXY_TLS_PORT" && bench_wait_for 20 listens "$NS_C" "$HAPROXY_HTTP_PORT"; then
    PATHS+=" haproxy"
  else
    tail -n 20 "$WORK/logs/haproxy.log" >&2; bench_die "haproxy did not start"
  fi
fi
if want egressd; then
  "$EGRESSD" check "$WORK/egressd.toml" >"$WORK/logs/egressd-check.log" 2>&1 || { cat "$WORK/logs/egressd-check.log" >&2; bench_die "egressd check of the policy"; }
  # --dns-upstream where this build has it (the usage text may not list it); else resolv.conf (bound above)
  grep -aq -- 'dns-upstream' "$EGRESSD" && EGRESSD_DNS_ARG=(--dns-upstream "$DNS_IP")
  start_egressd
  if wait_egressd; then
    PATHS+=" egressd"
  else
    tail -n 20 "$WORK/logs/egressd.log" >&2
    [[ ${BENCH_REQUIRE_EGRESSD:-0} == 1 ]] && bench_die "egressd's proxy did not come up"
    bench_log "egressd's proxy did not come up: the egressd path is LEFT OUT of this run"
    stop_daemon egressd; egressd_detach
  fi
fi
bench_log "paths: $PATHS"

# --- functional check: a path that fails is left out -------------------------------------------
nft_hits() { ip netns exec "$NS_C" nft list chain ip egbp dyn | awk '{for (i = 1; i < NF; i++) if ($i == "packets") s += $(i + 1)} END {print s + 0}'; }
curl_code() { # path url
  client "$1" timeout 15 curl -sk --max-time 10 -o /dev/null -w '%{http_code}/%{size_download}' "$2" 2>/dev/null || true
}
declare -A OK=([tls]="" [http]="")      # section -> paths that passed the check
check_paths() {
  local sec p scheme ok own blocked hits verdict
  printf '%-5s %-8s %-12s %-12s %-12s %-6s %s\n' section path a.test c.test own-address steer ok >"$RES/check.txt"
  for sec in tls http; do
    scheme=$(scheme_of "$sec")
    for p in $PATHS; do
      set_path "$p"
      ok=$(curl_code "$p" "$scheme://a.test/small")
      blocked=$(curl_code "$p" "$scheme://c.test/small")
      own=$(curl_code "$p" "$scheme://lat-$p.test/small")
      hits=$(nft_hits)
      verdict=no
      if [[ $ok == 200/100 && $own == 200/100 ]]; then
        case $p in
          direct) [[ $blocked == 200/100 && $hits == 0 ]] && verdict=yes ;;
          haproxy) [[ $blocked != 200/* && $hits -gt 0 ]] && verdict=yes ;;
          egressd) [[ $blocked != 200/* && $hits == 0 ]] && verdict=yes; hits=bpf ;;
        esac
      fi
      printf '%-5s %-8s %-12s %-12s %-12s %-6s %s\n' "$sec" "$p" "$ok" "${blocked:-none}" "$own" "$hits" "$verdict" >>"$RES/check.txt"
      [[ $verdict == yes ]] && OK[$sec]+="${OK[$sec]:+ }$p"
    done
  done
  set_path direct
  # full handshakes: the second connection offers the first one's session, the origin must refuse
  REUSE=$(client direct timeout 15 "$PY" "$HELP/proxy-client.py" reuse --ip "$ORIGIN_IP" --port 443 --host a.test 2>&1 || true)
  echo "tls resumption at the origin: $REUSE (must be 'full')" >>"$RES/check.txt"
  echo "dns $DNS_IP: a.test=$(dns_answer a.test) lat-egressd.test=$(dns_answer lat-egressd.test) c.test=$(dns_answer c.test) nx.test=$(dns_answer nx.test) a.test/AAAA=$(dns_answer a.test AAAA)" >>"$RES/check.txt"
  cat "$RES/check.txt" >&2
  [[ $REUSE == full* ]] || bench_die "the origin resumes TLS sessions: $REUSE"
  [[ " ${OK[tls]} " == *" direct "* && " ${OK[http]} " == *" direct "* ]] || bench_die "the direct path does not work"
}
check_paths
bench_log "working paths: tls: ${OK[tls]} | http: ${OK[http]}"
if [[ -n ${BENCH_PAUSE:-} ]]; then   # debugging: the world stays up this many seconds (bounded)
  bench_log "pausing ${BENCH_PAUSE}s: clients: sh -c 'echo \$\$ >$CG_FENCE/cgroup.procs && exec ip netns exec $NS_C CMD'; egressd pid ${DPID[egressd]:-none}"
  sleep "$((BENCH_PAUSE > 1800 ? 1800 : BENCH_PAUSE))"
fi

# --- measurements ------------------------------------------------------------------------------
RAW=$RES/raw.csv
echo "section,path,test,rep,n,ok,errors,seconds,bytes,origin_opens,proxy_cpu_us,origin_cpu_us,client_cpu_us" >"$RAW"
rotate() { local k=$1; shift; local a=("$@") i; for ((i = 0; i < $#; i++)); do printf '%s ' "${a[$(((i + k) % $#))]}"; done; }

declare -A CPS_N=()
h2load_run() { # sec path c n tag -> "ok errors seconds"
  local sec=$1 p=$2 c=$3 n=$4 tag=$5 t=1 out secs ok bad
  ((c > 1)) && t=2
  out=$(client "$p" timeout $((DUR * 10 + 30)) h2load --h1 -n "$n" -c "$c" -t "$t" -H 'Connection: close' \
    "$(scheme_of "$sec")://a.test/small" 2>&1) || true
  echo "$out" >"$RES/out/$tag.txt"
  secs=$(sed -nE 's/^finished in ([0-9.]+)(m?s),.*/\1 \2/p' <<<"$out" | awk '{print ($2 == "ms") ? $1 / 1000 : $1}')
  read -r ok bad < <(sed -nE 's/^requests: .* ([0-9]+) succeeded, ([0-9]+) failed, ([0-9]+) errored, ([0-9]+) timeout.*/\1 \2 \3 \4/p' <<<"$out" |
    awk '{print $1, $2 + $3 + $4} END {if (NR == 0) print "0 -1"}')
  echo "${ok:-0} ${bad:--1} ${secs:-0}"
}
calibrate() { # n per (section, path, c) so that a run takes ~DUR s
  local sec p c n ok bad secs rate
  for sec in tls http; do
    for p in $(paths_of "$sec"); do
      for c in 1 64; do
        if [[ $sec == tls ]]; then n=$((c == 1 ? 100 : 640)); else n=$((c == 1 ? 1000 : 6400)); fi
        read -r ok bad secs < <(h2load_run "$sec" "$p" "$c" "$n" "cal-$sec-$p-c$c")
        rate=$(awk -v o="$ok" -v s="$secs" 'BEGIN {print (s > 0) ? o / s : 0}')
        n=$(awk -v r="$rate" -v d="$DUR" -v c="$c" -v m="$CPS_MAX_N" 'BEGIN {n = int(r * d); lo = (c > 1) ? c * 4 : 50; if (n < lo) n = lo; if (n > m) n = m; print n}')
        CPS_N[$sec/$p/$c]=$n
        bench_log "calibrate $sec $p c=$c: ~$(printf '%.0f' "$rate")/s -> n=$n"
      done
    done
  done
}
measure_around() { # sec path test rep n -- command...; the command prints "ok errors seconds bytes"
  local sec=$1 p=$2 test=$3 rep=$4 n=$5 pcg pc0=0 pc1=0 oc0 oc1 cc0 cc1 oo0 oo1 ok bad secs bytes
  shift 6
  pcg=$(proxy_cg "$p")
  [[ -n $pcg ]] && pc0=$(cg_cpu_us "$pcg")
  oc0=$(cg_cpu_us "$CG_ORIGIN"); cc0=$(cg_cpu_us "$(client_cg "$p")"); oo0=$(origin_opens)
  read -r ok bad secs bytes < <("$@")
  [[ -n $pcg ]] && pc1=$(cg_cpu_us "$pcg")
  oc1=$(cg_cpu_us "$CG_ORIGIN"); cc1=$(cg_cpu_us "$(client_cg "$p")"); oo1=$(origin_opens)
  echo "$sec,$p,$test,$rep,$n,$ok,$bad,$secs,${bytes:-0},$((oo1 - oo0)),$((pc1 - pc0)),$((oc1 - oc0)),$((cc1 - cc0))" >>"$RAW"
  echo "$ok $bad $secs ${bytes:-0} $((pc1 - pc0))"
}
cps_cmd() { local ok bad secs; read -r ok bad secs < <(h2load_run "$@"); echo "$ok $bad $secs 0"; }
run_cps() { # sec path c rep
  local sec=$1 p=$2 c=$3 rep=$4 n=${CPS_N[$1/$2/$3]} r
  set_path "$p"
  r=$(measure_around "$sec" "$p" "cps$c" "$rep" "$n" -- cps_cmd "$sec" "$p" "$c" "$n" "cps-$sec-$p-c$c-r$rep")
  bench_log "r$rep $sec cps c=$c $p: $(awk '{printf "%.0f conn/s (%d ok, %d errors), proxy %.0f us/conn", ($3 > 0) ? $1 / $3 : 0, $1, $2, ($1 > 0) ? $5 / $1 : 0}' <<<"$r")"
}
wrk_cmd() { # sec path c tag -> "requests errors seconds bytes"
  local sec=$1 p=$2 c=$3 tag=$4 t=1 out
  ((c > 1)) && t=2
  out=$(client "$p" timeout $((DUR + 40)) wrk -t"$t" -c"$c" -d"${DUR}s" --timeout 30s -s "$HELP/proxy-wrk.lua" \
    "$(scheme_of "$sec")://a.test/1g" 2>&1) || true
  echo "$out" >"$RES/out/$tag.txt"
  grep '^BENCHRESULT' <<<"$out" | awk '{for (i = 2; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}
    printf "%d %d %.6f %d\n", v["requests"], v["connect"] + v["write"] + v["status"] + v["timeout"], v["us"] / 1e6, v["bytes"]}
    END {if (NR == 0) print "0 -1 0 0"}'
}
run_bulk() { # sec path c rep
  local sec=$1 p=$2 c=$3 rep=$4 r
  set_path "$p"
  r=$(measure_around "$sec" "$p" "bulk$c" "$rep" "$c" -- wrk_cmd "$sec" "$p" "$c" "bulk-$sec-$p-c$c-r$rep")
  bench_log "r$rep $sec bulk c=$c $p: $(awk '{printf "%.0f MB/s, proxy %.2f s/GB", ($3 > 0) ? $4 / $3 / 1e6 : 0, ($4 > 0) ? $5 / 1e6 / ($4 / 1e9) : 0}' <<<"$r")"
}
run_lat() { # sec rep: every path of the section, interleaved sample by sample
  local sec=$1 rep=$2 port=443 tls=--tls targets="" p fenced=""
  [[ $sec == http ]] && port=80 && tls=""
  for p in $(paths_of "$sec"); do
    targets+=" $p=${LAT_IP[$p]}"
    [[ $p == egressd ]] && fenced=egressd
  done
  set_path direct
  # the egressd samples: a child of the sampler joins the fenced cgroup through fd 9, opened
  # here (`ip netns exec` remounts /sys, so the sampler cannot open the path itself)
  client direct timeout $((LAT_MAX_S + 20)) "$PY" "$HELP/proxy-client.py" latency $tls --port $port \
    --rounds "$LAT_ROUNDS" --max-time "$LAT_MAX_S" --outdir "$RES/lat" --prefix "$sec-" --seed "$rep" \
    --targets "$targets" --fenced "$fenced" --fenced-procs-fd 9 9>>"$CG_FENCE/cgroup.procs" >>"$RES/lat/summary-$sec.jsonl" ||
    bench_log "latency pass $sec r$rep failed"
  bench_log "r$rep $sec latency: $(tail -n 1 "$RES/lat/summary-$sec.jsonl" 2>/dev/null)"
}
# Each path's idle connections go to its own origin address (lat-PATH.test): when the client
# closes them, the proxy is the active closer upstream and keeps ~IDLE_N TIME_WAIT sockets from
# 198.51.100.2 to that address:port. A proxy tested next against the same address:port would
# then pay for them in connect() (__inet_hash_connect walks the port range: tcp_tw_reuse=2
# reuses TIME_WAIT on loopback only), which measured the previous test, not this proxy.
run_idle() { # sec path: RSS of a freshly started proxy holding IDLE_N idle kept-alive connections
  local sec=$1 p=$2 port=443 tls=--tls pcg pids out pc0 pc1
  [[ $sec == http ]] && port=80 && tls=""
  restart_proxy "$p" || { bench_log "idle $sec $p: restart failed"; return 0; }
  sleep 1
  set_path "$p"
  pcg=$(proxy_cg "$p")
  pids=$(cat "$pcg/cgroup.procs" | xargs)
  pc0=$(cg_cpu_us "$pcg")
  local perfpid=""
  if [[ ${BENCH_PERF:-0} == 1 && $p == egressd ]] && command -v perf >/dev/null; then
    perf record -F 999 -g -o "$WORK/perf-idle-$sec.data" -p "${DPID[egressd]}" -- sleep $((IDLE_MAX_S + 5)) >/dev/null 2>&1 &
    perfpid=$!
  fi
  out=$(client "$p" timeout $((IDLE_MAX_S + 40)) "$PY" "$HELP/proxy-client.py" idle $tls --ip "${LAT_IP[$p]}" \
    --port $port --host "lat-$p.test" --path /small -n "$IDLE_N" --conc 64 --max-time "$IDLE_MAX_S" --settle 2 --pids "$pids" || true)
  pc1=$(cg_cpu_us "$pcg")
  if [[ -n $perfpid ]]; then
    kill -INT "$perfpid" 2>/dev/null; wait "$perfpid" 2>/dev/null || true
    perf_summary "$WORK/perf-idle-$sec.data" >"$RES/perf-idle-$sec.txt"
  fi
  # the proxy's CPU over the set-up, the 2 s idle and the close of them all
  [[ $out == \{* ]] && out=$(jq -c --argjson us $((pc1 - pc0)) '. + {proxy_cpu_us: $us}' <<<"$out")
  echo "{\"section\": \"$sec\", \"path\": \"$p\", \"result\": ${out:-null}}" >>"$RES/idle.jsonl"
  bench_log "idle $sec $p: ${out:-failed}"
  set_path direct
  sleep 1
}
perf_summary() { # perf.data -> flat profile by dso, then by symbol (callers of the top ones)
  perf report -i "$1" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' || true
  echo
  perf report -i "$1" --no-children --sort dso,sym --stdio -g none --percent-limit 0.5 2>/dev/null | grep '%' || true
  echo
  perf report -i "$1" --no-children --sort sym --stdio -G --percent-limit 3 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 150 || true
}
perf_egressd() { # optional: where egressd spends its CPU, during one TLS c=64 run and one 16-stream TLS download
  command -v perf >/dev/null || { bench_log "perf not installed: BENCH_PERF skipped"; return 0; }
  [[ " ${OK[tls]} " == *" egressd "* ]] || return 0
  local what
  for what in cps64 bulk16; do
    perf record -F 999 -g -o "$WORK/perf-$what.data" -p "${DPID[egressd]}" -- sleep $((DUR + 2)) >/dev/null 2>&1 &
    local pp=$!
    sleep 0.3
    if [[ $what == cps64 ]]; then run_cps tls egressd 64 perf; else run_bulk tls egressd 16 perf; fi
    wait "$pp" || true
    perf_summary "$WORK/perf-$what.data" >"$RES/perf-$what.txt"
    sed -i '/,perf,/d' "$RAW"
  done
}

cpu_snapshot() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
read -r BUSY0 STEAL0 TOT0 < <(cpu_snapshot)
OURS0=$(cg_cpu_us "$CG_TOP")       # clients, proxies, origin, DNS: everything of ours that matters
T0=$(date +%s)
LOAD0=$(cat /proc/loadavg)
bench_log "measure: reps=$REPS dur=${DUR}s latency rounds=$LAT_ROUNDS idle=$IDLE_N (fd limit $NOFILE)"
calibrate
for rep in $(seq 1 "$REPS"); do
  for test in cps1 cps64 lat bulk1 bulk16; do
    for sec in tls http; do
      if [[ $test == lat ]]; then run_lat "$sec" "$rep"; continue; fi
      # shellcheck disable=SC2046  # a list of words
      for p in $(rotate "$rep" $(paths_of "$sec")); do
        case $test in
          cps1) run_cps "$sec" "$p" 1 "$rep" ;;
          cps64) run_cps "$sec" "$p" 64 "$rep" ;;
          bulk1) run_bulk "$sec" "$p" 1 "$rep" ;;
          bulk16) run_bulk "$sec" "$p" 16 "$rep" ;;
        esac
      done
    done
  done
done
[[ ${BENCH_PERF:-0} == 1 ]] && perf_egressd
ip netns exec "$NS_C" nstat -asz 2>/dev/null >"$RES/nstat-client.txt" || true
ip netns exec "$NS_O" nstat -asz 2>/dev/null >"$RES/nstat-origin.txt" || true
if ((IDLE_N > 0)); then
  for sec in tls http; do
    for p in $(paths_of "$sec"); do [[ $p == direct ]] || run_idle "$sec" "$p"; done
  done
fi
read -r BUSY1 STEAL1 TOT1 < <(cpu_snapshot)
OURS1=$(cg_cpu_us "$CG_TOP")

# --- report -----------------------------------------------------------------------------------
jq -n \
  --arg date "$(date -Is)" --arg kernel "$(uname -r)" --arg cpu "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
  --arg nproc "$(nproc)" --arg mem "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" \
  --arg os "$(. /etc/os-release && echo "$PRETTY_NAME")" --arg load0 "$LOAD0" --arg load1 "$(cat /proc/loadavg)" \
  --arg busy "$(awk -v b=$((BUSY1 - BUSY0)) -v t=$((TOT1 - TOT0)) 'BEGIN {printf "%.0f", 100 * b / t}')" \
  --arg steal "$(awk -v s=$((STEAL1 - STEAL0)) -v t=$((TOT1 - TOT0)) 'BEGIN {printf "%.1f", 100 * s / t}')" \
  --arg others "$(awk -v b=$((BUSY1 - BUSY0)) -v t=$((TOT1 - TOT0)) -v o=$((OURS1 - OURS0)) -v hz="$(getconf CLK_TCK)" \
      'BEGIN {x = (b / hz - o / 1e6) / (t / hz); if (x < 0) x = 0; printf "%.0f", 100 * x}')" \
  --arg wall "$(($(date +%s) - T0))" --arg reps "$REPS" --arg dur "$DUR" --arg lat_rounds "$LAT_ROUNDS" \
  --arg idle_n "$IDLE_N" --arg nofile "$NOFILE" --arg quick "$QUICK" --arg paths "$PATHS" \
  --arg haproxy "$(haproxy -v | head -1 | awk '{print $3}')" --arg nginx "$(nginx -v 2>&1 | sed 's#.*/##')" \
  --arg h2load "$(h2load --version | head -1 | awk '{print $2}')" --arg wrk "$(wrk -v 2>&1 | head -1 | awk '{print $2}')" \
  --arg openssl "$(openssl version | awk '{print $2}')" --arg python "$($PY -V | awk '{print $2}')" \
  --arg egressd "$EGRESSD_SRC" --arg built "${EG_BUILT:-}" --arg commit "$EG_COMMIT" --arg dirty "$EG_DIRTY" \
  --arg tlsinfo "$(grep -h -m1 -A2 '^TLS Protocol' "$RES"/out/cps-tls-direct-c1-r1.txt 2>/dev/null | xargs)" \
  --arg reuse "$REUSE" --arg dns_arg "${EGRESSD_DNS_ARG[*]:-}" \
  '$ARGS.named' >"$RES/meta.json"
"$PY" "$HELP/proxy-report.py" "$RES" | tee "$RES/report.md"
bench_log "results: $RES"
