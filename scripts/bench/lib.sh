# shellcheck shell=bash
# scripts/bench/lib.sh: the namespace, cgroup and package setup the bench-*.sh scripts
# share, sourced (not run) by every scripts/bench-*.sh.
#
# The caller sets BENCH_NAME (log prefix) before sourcing, and `set -euo pipefail`.
# NETWORK SAFETY: bench_netns_pair builds two namespaces joined only by a veth pair and
# checks that neither has another interface; nothing here touches the root netns's routes.

bench_log() { printf '[%s %s] %s\n' "${BENCH_NAME:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }
bench_die() { bench_log "FAILED: $*"; exit 1; }

# The cgroup2 mount point (from mountinfo: the field after "-" is the fs type).
bench_cgroot() {
  awk '{for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break } }' /proc/self/mountinfo
}

# bench_apt_ensure PKG...: installs what is missing (idempotent). Package scripts must not
# start daemons (nginx, fcgiwrap) in the root namespace: a policy-rc.d says no while it runs.
bench_apt_ensure() {
  local p missing=() made=0
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  bench_log "installing: ${missing[*]}"
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made=1
  fi
  apt-get update -qq
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null; then
    ((made)) && rm -f /usr/sbin/policy-rc.d
    bench_die "apt-get install ${missing[*]}"
  fi
  ((made)) && rm -f /usr/sbin/policy-rc.d
  return 0
}

# bench_stop_pid PID: TERM, up to 5 s, then KILL.
bench_stop_pid() {
  local pid=$1 n=50
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  while ((n-- > 0)) && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# bench_wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds or the time is up.
bench_wait_for() {
  local n=$(($1 * 10)); shift
  while ((n-- > 0)); do "$@" && return 0; sleep 0.1; done
  return 1
}

# bench_netns_pair NS_C NS_O CLIENT_IP GW_IP ROUTE ORIGIN_ADDR...: a client namespace and an
# "internet" namespace joined by a veth pair (IPv4 only, IPv6 off in both); the client's
# only route out of lo is ROUTE via GW_IP; the ORIGIN_ADDRs go on the origin's lo.
bench_netns_pair() {
  local nc=$1 no=$2 cip=$3 gw=$4 route=$5 a ns; shift 5
  ip netns add "$nc"
  ip netns add "$no"
  ip -n "$nc" link add vc0 type veth peer name vo0 netns "$no"
  for ns in "$nc" "$no"; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  done
  ip -n "$nc" addr add "$cip/24" dev vc0
  ip -n "$nc" link set vc0 up
  ip -n "$nc" route add "$route" via "$gw"
  ip -n "$no" addr add "$gw/24" dev vo0
  ip -n "$no" link set vo0 up
  for a in "$@"; do ip -n "$no" addr add "$a/32" dev lo; done
  [[ $(ip -n "$nc" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort | xargs) == "lo vc0" ]] ||
    bench_die "unexpected interfaces in $nc"
  [[ $(ip -n "$no" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort | xargs) == "lo vo0" ]] ||
    bench_die "unexpected interfaces in $no"
}

# bench_netns_files NS HOSTS_TEXT NAMESERVER: /etc/netns/NS/{hosts,resolv.conf}, which
# `ip netns exec` binds over /etc (and bench_in_mntns for processes started with nsenter).
bench_netns_files() {
  mkdir -p "/etc/netns/$1"
  printf '%s\n' "$2" >"/etc/netns/$1/hosts"
  echo "nameserver $3" >"/etc/netns/$1/resolv.conf"
  chmod 644 "/etc/netns/$1"/*
}

# bench_web_policy SCRIPT HOST...: the egressd policy of a web benchmark on stdout: loopback
# allowed (the bench's own servers), private and link-local denied, one [[allow]] per host.
bench_web_policy() {
  echo "# egressd policy of $1"
  shift
  echo "version = 1"
  echo "[network]"
  echo 'loopback = "allow"'
  echo 'private = "deny"'
  echo 'link_local = "deny"'
  for h in "$@"; do printf '\n[[allow]]\nhost = "%s"\n' "$h"; done
}

# bench_del_netns NS...: kills what is left in each namespace (started by the caller), then
# deletes it and its /etc/netns files.
bench_del_netns() {
  local ns pid
  for ns in "$@"; do
    [[ -e /run/netns/$ns ]] || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$ns"
    rm -rf "/etc/netns/$ns"
  done
}

# bench_rm_cgroups TOP: kills what is left in TOP's child cgroups, removes them and TOP.
bench_rm_cgroups() {
  local top=$1 cg pid
  [[ -d $top ]] || return 0
  for cg in "$top"/*/; do
    while read -r pid; do kill -KILL "$pid" 2>/dev/null; done <"$cg/cgroup.procs"
  done 2>/dev/null
  for cg in "$top"/*/; do bench_wait_for 5 rmdir "$cg" 2>/dev/null; done
  rmdir "$top" 2>/dev/null || bench_log "warning: could not remove $top"
}

# bench_in_cg CG CMD...: runs CMD as a member of cgroup CG.
bench_in_cg() { sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$@"; }
# bench_daemon_in_cg CG CMD...: the same, replacing the calling (sub)shell.
bench_daemon_in_cg() { exec sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$@"; }
