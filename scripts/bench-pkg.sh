#!/usr/bin/env bash
# bench-pkg.sh: real package-manager workloads, unfenced and fenced by egressd (issue 13).
#
#   sudo scripts/bench-pkg.sh              # full: 20 rounds, 3-5 min on 2 vCPUs
#   sudo scripts/bench-pkg.sh --quick      # 3 rounds, ~1 min
#   sudo scripts/bench-pkg.sh --rounds N   # 1..50
#
# Workloads, each a fresh real client run against real servers in a test world:
#   pip   python3 -m pip install pkgbench-app (6 wheels, a PEP 503 index on https://pypi.test)
#   npm   npm install pb-0 (20 packages, a dependency tree; packuments + tarballs on
#         https://npm.test, static files behind nginx), fresh cache and node_modules
#   apt   apt-get update + apt-get install --download-only pb-apt-0 (5 .debs, a flat repository
#         on https://apt.test), private state, lists and archives, nothing installed
#   git   git clone https://git.test/repo.git (20 commits, 60 files; git http-backend via fcgiwrap)
#   curl  curl https://pypi.test/simple/ (one TLS request: the floor)
# Each round runs every workload once unfenced (a plain cgroup) and once fenced (a cgroup
# under `egressd attach`, policy allowing pypi.test, npm.test, apt.test, git.test), the order of the
# two alternating by round so drift cancels. Reported per workload: the median wall time of
# each, the ratio fenced/unfenced of the medians and the median of the per-round ratios;
# every run's time is kept in the results dir.
# Every run's outcome is checked (all packages installed, the clone's HEAD), and once, that
# the fence holds: a fenced curl to other.test (not in the policy) must fail.
#
# Environment: BUILD_DIR=build (egressd built with scripts/build.sh if missing), EGRESSD=path
# (an egressd binary to use instead), BENCH_RESULTS=DIR (default /tmp/bench-pkg-<date>).
#
# NETWORK SAFETY: all traffic stays inside two network namespaces this script creates, joined
# by a veth pair: "client" (the clients and egressd; 198.51.100.2, a route to 203.0.113.0/24
# only) and "origin" (nginx on 203.0.113.10, dnsmasq on 203.0.113.53). Nothing is sent from
# the root namespace. Every client run is bounded (timeout); rounds are bounded. On exit,
# also on failure: daemons stopped by pid, `egressd detach`, cgroups, namespaces, pins removed.
set -euo pipefail

QUICK=0
ROUNDS=
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1; shift ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-pkg: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n $ROUNDS ]] || ROUNDS=$((QUICK ? 3 : 20))
if ! [[ $ROUNDS =~ ^[0-9]+$ ]] || ((ROUNDS < 1 || ROUNDS > 50)); then echo "bench-pkg: --rounds 1..50" >&2; exit 2; fi

cd "$(dirname "$0")/.."
REPO=$(pwd)
BENCH_NAME=bench-pkg
# shellcheck source=scripts/bench/lib.sh
. "$REPO/scripts/bench/lib.sh"
[[ $EUID -eq 0 ]] || bench_die "run as root (netns, cgroups, bpf, apt-get)"

bench_apt_ensure nginx fcgiwrap git python3 python3-pip curl openssl dnsmasq-base bind9-dnsutils \
  iproute2 util-linux jq bpftool
command -v npm >/dev/null || bench_apt_ensure npm
for t in nginx fcgiwrap git curl openssl npm node dnsmasq dig dpkg-deb apt-get ip nsenter unshare timeout jq; do
  command -v "$t" >/dev/null || bench_die "$t missing"
done
PY=/usr/bin/python3
$PY -m pip --version >/dev/null 2>&1 || bench_die "$PY -m pip missing"

BUILD=${BUILD_DIR:-build}
[[ $BUILD == /* ]] || BUILD=$REPO/$BUILD
if [[ -z ${EGRESSD:-} ]]; then
  EGRESSD=$BUILD/egressd
  [[ -x $EGRESSD ]] || { bench_log "building egressd ($BUILD)"; BUILD_DIR=$BUILD scripts/build.sh >&2 || bench_die "scripts/build.sh"; }
fi
[[ -x $EGRESSD ]] || bench_die "$EGRESSD missing"

ID=$$
NS_C=egpk-client-$ID
NS_O=egpk-origin-$ID
CLIENT_IP=198.51.100.2
ORIGIN_GW=198.51.100.1
ORIGIN_IP=203.0.113.10
DNS_IP=203.0.113.53
ALLOW_HOSTS="pypi.test npm.test apt.test git.test"
CGROOT=$(bench_cgroot)
[[ -n $CGROOT && -d $CGROOT ]] || bench_die "no cgroup2 mount in /proc/self/mountinfo"
CG_TOP=$CGROOT/egpk-$ID
CG_PLAIN=$CG_TOP/unfenced
CG_FENCE=$CG_TOP/fenced
CG_EGRESSD=$CG_TOP/egressd
CG_ORIGIN=$CG_TOP/origin
export EGRESSD_BPFFS_DIR=/sys/fs/bpf/egpk-$ID   # private pins and run dir: other attachments stay apart
export EGRESSD_RUN_DIR=/run/egpk-$ID
WORK=$(mktemp -d /tmp/egpk-work.XXXXXX)
RES=${BENCH_RESULTS:-/tmp/bench-pkg-$(date +%Y%m%d-%H%M%S)}
RUN_TIMEOUT=120                    # per client run

declare -A DPID=()
EG_STARTED=0
cleanup() {
  local rc=$? name
  set +e
  trap - EXIT INT TERM
  for name in "${!DPID[@]}"; do bench_stop_pid "${DPID[$name]}"; done
  if ((EG_STARTED)) && [[ -d $CG_FENCE ]]; then
    timeout 20 "$EGRESSD" detach --cgroup "$CG_FENCE" >>"$WORK/logs/egressd-detach.log" 2>&1 ||
      bench_log "warning: egressd detach failed"
  fi
  [[ -d $EGRESSD_BPFFS_DIR ]] && rm -rf "$EGRESSD_BPFFS_DIR"
  [[ -d $EGRESSD_RUN_DIR ]] && rm -rf "$EGRESSD_RUN_DIR"
  bench_del_netns "$NS_C" "$NS_O"
  bench_rm_cgroups "$CG_TOP"
  if [[ -d $RES ]]; then mkdir -p "$RES/logs" && cp -r "$WORK/logs/." "$RES/logs/" 2>/dev/null; fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$RES" "$WORK"/{logs,run,nginx}
chmod 755 "$WORK"
bench_log "results $RES, work $WORK, namespaces $NS_C/$NS_O, cgroups $CG_TOP"

# --- the world: registries, certificate, policy ---------------------------------------------
WORLD=$($PY "$REPO/scripts/bench/pkg-world.py" "$WORK") || bench_die "pkg-world.py"
echo "$WORLD" >"$RES/world.json"
GIT_HEAD=$(jq -r .git.head <<<"$WORLD")
NPM_COUNT=$(jq -r .npm.count <<<"$WORLD")
PIP_COUNT=$(jq -r .pip.count <<<"$WORLD")
APT_COUNT=$(jq -r .apt.count <<<"$WORLD")
# A CA the clients are given (--cert, --cafile, GIT_SSL_CAINFO, --cacert) and a leaf it signs.
(
  cd "$WORK"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -sha256 \
    -keyout ca.key -out ca.pem -subj "/CN=bench-pkg CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout origin.key -out origin.csr \
    -subj "/CN=pypi.test" 2>/dev/null
  printf 'subjectAltName=DNS:pypi.test,DNS:npm.test,DNS:apt.test,DNS:git.test,DNS:other.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >leaf.ext
  openssl x509 -req -in origin.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 7 -sha256 \
    -extfile leaf.ext -out origin.crt 2>/dev/null
  chmod 644 ca.pem origin.crt
) || bench_die openssl
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 2;
user root root;
pid $WORK/nginx/nginx.pid;
error_log $WORK/logs/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log $WORK/logs/nginx-access.log;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    types { text/html html; application/json json; application/octet-stream whl tgz; }
    default_type application/octet-stream;
    sendfile on;
    ssl_certificate $WORK/origin.crt;
    ssl_certificate_key $WORK/origin.key;
    server {
        listen $ORIGIN_IP:443 ssl;
        server_name _;
        root $WORK/www/\$host;
        # pypi: /simple/<name>/ -> index.html; npm: /<name> -> <name>/index.json; files as they are
        location / { try_files \$uri \$uri/index.html \$uri/index.json =404; }
        location ~ ^(/repo\.git/.*)$ {
            client_max_body_size 0;
            fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param GIT_PROJECT_ROOT $WORK/git;
            fastcgi_param PATH_INFO \$1;
            fastcgi_param QUERY_STRING \$query_string;
            fastcgi_param REQUEST_METHOD \$request_method;
            fastcgi_param CONTENT_TYPE \$content_type;
            fastcgi_param CONTENT_LENGTH \$content_length;
            fastcgi_param REQUEST_URI \$request_uri;
            fastcgi_param SERVER_PROTOCOL \$server_protocol;
            fastcgi_param REMOTE_ADDR \$remote_addr;
            fastcgi_param SERVER_NAME \$host;
            fastcgi_param HTTP_GIT_PROTOCOL \$http_git_protocol;
            fastcgi_pass unix:$WORK/run/fcgiwrap.sock;
        }
    }
}
EOF
# shellcheck disable=SC2086 # ALLOW_HOSTS: a list of words
bench_web_policy scripts/bench-pkg.sh $ALLOW_HOSTS >"$WORK/egressd.toml"
"$EGRESSD" check "$WORK/egressd.toml" >"$WORK/logs/egressd-check.log" 2>&1 || bench_die "egressd check of the policy"

# --- namespaces, cgroups, daemons ---------------------------------------------------------
bench_netns_pair "$NS_C" "$NS_O" "$CLIENT_IP" "$ORIGIN_GW" 203.0.113.0/24 "$ORIGIN_IP" "$DNS_IP"
HOSTS="127.0.0.1 localhost"
for ns in "$NS_C" "$NS_O"; do bench_netns_files "$ns" "$HOSTS" "$DNS_IP"; done
echo "$ORIGIN_IP pypi.test npm.test apt.test git.test other.test" >"$WORK/dns-hosts"
chmod 644 "$WORK/dns-hosts"
mkdir "$CG_TOP" "$CG_PLAIN" "$CG_FENCE" "$CG_EGRESSD" "$CG_ORIGIN"
mountpoint -q /sys/fs/bpf || bench_die "/sys/fs/bpf is not mounted"

( bench_daemon_in_cg "$CG_ORIGIN" ip netns exec "$NS_O" dnsmasq --keep-in-foreground --conf-file=/dev/null \
  --log-facility=- --pid-file="$WORK/run/dnsmasq.pid" --user=nobody --group=nogroup \
  --listen-address="$DNS_IP" --bind-interfaces --no-resolv --no-hosts \
  --addn-hosts="$WORK/dns-hosts" --local-ttl=60 --address=/#/ ) >"$WORK/logs/dnsmasq.log" 2>&1 &
DPID[dnsmasq]=$!
( bench_daemon_in_cg "$CG_ORIGIN" ip netns exec "$NS_O" fcgiwrap -c 4 -s "unix:$WORK/run/fcgiwrap.sock" ) \
  >"$WORK/logs/fcgiwrap.log" 2>&1 &
DPID[fcgiwrap]=$!
( bench_daemon_in_cg "$CG_ORIGIN" ip netns exec "$NS_O" nginx -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" ) \
  >"$WORK/logs/nginx.log" 2>&1 &
DPID[nginx]=$!
dns_ok() { [[ $(ip netns exec "$NS_C" dig +time=1 +tries=1 +short @"$DNS_IP" npm.test A 2>/dev/null) == "$ORIGIN_IP" ]]; }
listens() { ip netns exec "$NS_O" ss -ltnH "sport = :443" 2>/dev/null | grep -q .; }
bench_wait_for 10 dns_ok || bench_die "dnsmasq does not answer npm.test"
bench_wait_for 20 listens || { cat "$WORK/logs/nginx"* >&2; bench_die "nginx"; }
bench_wait_for 10 test -S "$WORK/run/fcgiwrap.sock" || bench_die "fcgiwrap"

# egressd resolves through the world's dnsmasq: its own /etc/resolv.conf is the client netns's.
# shellcheck disable=SC2016  # expanded by the inner sh
( bench_daemon_in_cg "$CG_EGRESSD" nsenter --net="/run/netns/$NS_C" -- unshare --mount --propagation private -- \
  sh -c 'mount --bind "$0/resolv.conf" /etc/resolv.conf && mount --bind "$0/hosts" /etc/hosts && exec "$@"' \
  "/etc/netns/$NS_C" "$EGRESSD" attach --cgroup "$CG_FENCE" --policy "$WORK/egressd.toml" --dns-upstream "$DNS_IP" ) \
  >>"$WORK/logs/egressd.log" 2>&1 &
DPID[egressd]=$!
EG_STARTED=1
eg_ready() { grep -q "enforcing on" "$WORK/logs/egressd.log" && grep -q "proxy listening" "$WORK/logs/egressd.log" || ! kill -0 "${DPID[egressd]}" 2>/dev/null; }
bench_wait_for 30 eg_ready
if ! kill -0 "${DPID[egressd]}" 2>/dev/null || ! grep -q "enforcing on" "$WORK/logs/egressd.log"; then
  tail -n 20 "$WORK/logs/egressd.log" >&2; bench_die "egressd did not come up"
fi

# --- the workloads ----------------------------------------------------------------------------
# client MODE CMD...: CMD in the netns, in the cgroup of MODE (unfenced|fenced), bounded.
client() {
  local cg=$CG_PLAIN
  [[ $1 == fenced ]] && cg=$CG_FENCE
  shift
  bench_in_cg "$cg" ip netns exec "$NS_C" timeout "$RUN_TIMEOUT" "$@"
}
# Each workload gets a fresh directory (HOME, caches, the install target); prints nothing
# on success, the reason on failure.
wl_pip() { # mode dir
  client "$1" "${CLEAN_ENV[@]}" HOME="$2" PIP_CONFIG_FILE=/dev/null "$PY" -m pip install -q --no-cache-dir \
    --disable-pip-version-check --no-input --retries 0 --index-url https://pypi.test/simple/ --cert "$WORK/ca.pem" \
    --target "$2/site" pkgbench-app >"$2/out.log" 2>&1 || { echo "pip exited $?"; return; }
  local n
  n=$(find "$2/site" -maxdepth 1 -name '*.dist-info' | wc -l)
  [[ $n == "$PIP_COUNT" ]] || echo "pip installed $n of $PIP_COUNT"
}
wl_npm() {
  mkdir -p "$2/proj"
  echo '{"name": "bench", "version": "1.0.0", "private": true}' >"$2/proj/package.json"
  ( cd "$2/proj" && client "$1" "${CLEAN_ENV[@]}" HOME="$2" npm_config_userconfig=/dev/null npm install --no-audit --no-fund \
      --no-update-notifier --registry https://npm.test/ --cafile "$WORK/ca.pem" --cache "$2/cache" \
      --fetch-retries 0 pb-0 >"$2/out.log" 2>&1 ) || { echo "npm exited $?"; return; }
  local n
  n=$(find "$2/proj/node_modules" -mindepth 2 -maxdepth 2 -name package.json | wc -l)
  [[ $n == "$NPM_COUNT" ]] || echo "npm installed $n of $NPM_COUNT"
}
wl_apt() { # apt-get with every directory of its own under DIR: the host's apt is untouched
  local d=$2 n
  mkdir -p "$d"/state/lists/partial "$d"/cache/archives/partial "$d"/etc/apt.conf.d "$d"/etc/preferences.d \
    "$d"/etc/sources.list.d
  : >"$d/status"
  echo "deb [trusted=yes] https://apt.test/ ./" >"$d/etc/sources.list"
  local o=(-o "Dir::Etc=$d/etc" -o "Dir::Etc::sourcelist=$d/etc/sources.list" -o "Dir::Etc::sourceparts=$d/etc/sources.list.d"
    -o "Dir::Etc::main=$d/etc/apt.conf" -o "Dir::Etc::parts=$d/etc/apt.conf.d" -o "Dir::Etc::preferencesparts=$d/etc/preferences.d"
    -o "Dir::State=$d/state" -o "Dir::State::status=$d/status" -o "Dir::Cache=$d/cache" -o Debug::NoLocking=1
    -o APT::Sandbox::User=root -o Acquire::Retries=0 -o "Acquire::https::CaInfo=$WORK/ca.pem")
  { client "$1" "${CLEAN_ENV[@]}" apt-get -q "${o[@]}" update &&
    client "$1" "${CLEAN_ENV[@]}" apt-get -q -y "${o[@]}" install --download-only pb-apt-0; } >"$d/out.log" 2>&1 ||
    { echo "apt-get exited $?"; return; }
  n=$(find "$d/cache/archives" -maxdepth 1 -name '*.deb' | wc -l)
  [[ $n == "$APT_COUNT" ]] || echo "apt-get downloaded $n of $APT_COUNT"
}
wl_git() {
  client "$1" "${CLEAN_ENV[@]}" HOME="$2" GIT_CONFIG_NOSYSTEM=1 GIT_SSL_CAINFO="$WORK/ca.pem" \
    git clone -q https://git.test/repo.git "$2/repo" >"$2/out.log" 2>&1 || { echo "git exited $?"; return; }
  local h
  h=$(git -C "$2/repo" rev-parse HEAD 2>/dev/null || true)
  [[ $h == "$GIT_HEAD" ]] || echo "git HEAD $h, expected $GIT_HEAD"
}
wl_curl() {
  local code
  code=$(client "$1" "${CLEAN_ENV[@]}" curl -s --cacert "$WORK/ca.pem" -o "$2/index.html" -w '%{http_code}' https://pypi.test/simple/ 2>"$2/out.log") || true
  [[ $code == 200 ]] || echo "curl got ${code:-nothing}"
}
# The clients start from an empty environment (the caller's PIP_*, npm_config_*, proxies
# and CA settings must not change what is measured).
CLEAN_ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
WORKLOADS="pip npm apt git curl"

RAW=$RES/runs.csv
echo "workload,mode,round,seconds" >"$RAW"
run_one() { # workload mode round
  local dir=$WORK/run-$1-$2-$3 t0 t1 err
  mkdir -p "$dir"
  chmod 755 "$dir"
  t0=$EPOCHREALTIME
  err=$("wl_$1" "$2" "$dir")
  t1=$EPOCHREALTIME
  if [[ -n $err ]]; then
    tail -n 15 "$dir/out.log" >&2
    bench_die "$1 ($2, round $3): $err"
  fi
  local s
  s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  echo "$1,$2,$3,$s" >>"$RAW"
  bench_log "r$3 $1 $2: ${s} s"
  rm -rf "$dir"
}

# The fence holds: an unlisted name is refused when fenced, served when not.
fence_check() {
  local plain fenced
  plain=$(client unfenced curl -s --max-time 10 --cacert "$WORK/ca.pem" -o /dev/null -w '%{http_code}' https://other.test/ 2>/dev/null || true)
  fenced=$(client fenced curl -s --max-time 10 --cacert "$WORK/ca.pem" -o /dev/null -w '%{http_code}' https://other.test/ 2>/dev/null || true)
  echo "other.test (not in the policy): unfenced $plain, fenced ${fenced:-failed}" >"$RES/fence-check.txt"
  cat "$RES/fence-check.txt" >&2
  [[ $plain == 200 && $fenced != 200 ]] || bench_die "fence check: unfenced '$plain', fenced '$fenced'"
  refused() { grep -q 'dns other.test A dns-name-not-allowed' "$WORK/logs/egressd.log"; }
  bench_wait_for 5 refused || bench_die "fence check: no dns-name-not-allowed event for other.test in egressd's log"
}
fence_check
bench_log "warm-up: one run of each workload in each mode, not recorded"
# One warm-up run of each (page cache, pip/npm's first start), not recorded.
warm_up() { # workload mode
  local dir err
  dir=$(mktemp -d "$WORK/warm.XXXXXX")
  err=$("wl_$1" "$2" "$dir")
  [[ -z $err ]] && return 0
  tail -n 15 "$dir/out.log" >&2
  bench_die "warm-up $1 $2: $err"
}
for w in $WORKLOADS; do
  for m in unfenced fenced; do warm_up "$w" "$m"; done
done
T_START=$SECONDS
for r in $(seq "$ROUNDS"); do
  for w in $WORKLOADS; do
    if ((r % 2)); then run_one "$w" unfenced "$r"; run_one "$w" fenced "$r"
    else run_one "$w" fenced "$r"; run_one "$w" unfenced "$r"; fi
  done
done
ELAPSED=$((SECONDS - T_START))

# --- report ------------------------------------------------------------------------------
$PY - "$RAW" "$ROUNDS" "$ELAPSED" "$(nproc)" "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
  "$(git -C "$REPO" log -1 --format=%h 2>/dev/null || echo unknown)" <<'PYEOF'
import csv, statistics, sys
raw, rounds, elapsed, nproc, kernel, load, commit = sys.argv[1:8]
runs = list(csv.DictReader(open(raw)))
label = {"pip": "pip install (6 wheels, PEP 503 index)", "npm": "npm install (20 packages)",
         "apt": "apt-get update + install --download-only (5 .debs)",
         "git": "git clone (20 commits, 60 files)", "curl": "curl, one HTTPS GET"}
print(f"egressd at {commit}; {nproc} vCPU, kernel {kernel}; {rounds} rounds, {len(runs)} runs in {elapsed} s; "
      f"load average at the end {load}.\n")
print("| workload | unfenced median s | fenced median s | fenced/unfenced (medians) | median of per-round ratios "
      "| unfenced min–max s | fenced min–max s |")
print("|---|---:|---:|---:|---:|---|---|")
for w in ("pip", "npm", "apt", "git", "curl"):
    u = [float(r["seconds"]) for r in runs if r["workload"] == w and r["mode"] == "unfenced"]
    f = [float(r["seconds"]) for r in runs if r["workload"] == w and r["mode"] == "fenced"]
    if not u or not f:
        continue
    mu, mf = statistics.median(u), statistics.median(f)
    by = {}
    for r in runs:
        if r["workload"] == w:
            by.setdefault(r["round"], {})[r["mode"]] = float(r["seconds"])
    paired = statistics.median(v["fenced"] / v["unfenced"] for v in by.values() if len(v) == 2)
    print(f"| {label[w]} | {mu:.3f} | {mf:.3f} | {mf / mu:.2f} | {paired:.2f} "
          f"| {min(u):.3f}–{max(u):.3f} | {min(f):.3f}–{max(f):.3f} |")
PYEOF
bench_log "done; raw runs in $RAW"
