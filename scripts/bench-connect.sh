#!/usr/bin/env bash
# bench-connect.sh: what egressd adds to a connect() (issue #3).
#
#   sudo scripts/bench-connect.sh [--rounds R] [--iterations N] [--warmup W]
#                                 [--cidrs N] [--baseline-only] [--keep-tmp]
#
# Times socket+connect+accept+close on loopback from a process in a cgroup,
# three cases interleaved over R rounds (drift cancels):
#   none      no egressd on the cgroup
#   cidr10    egressd attached, a 10-CIDR policy
#   cidr100k  egressd attached, a ~100k-CIDR policy (switched to by `reload`)
# and, per case and family, three destinations:
#   loopback  127.0.0.1 / ::1: full decision (deny trie, allow trie, loopback)
#   allow-hit 203.0.113.77:5432 / [2001:db8:77::77]:5432, addresses put on the
#             bench netns's lo and listed in [[allow_cidr]]: an allow-trie hit
#   denied    10.1.2.3:80 / [2001:db8:dead::3]:80, in [[deny_cidr]]: EPERM,
#             including the ring-buffer event (fenced cases only)
# Also: the time a fresh `attach` of the 100k policy takes (start to READY=1),
# `reload` 10 -> 100k, and, with kernel.bpf_stats_enabled=1 for separate short
# passes, the in-kernel ns per call of egd_connect4/6 and egd_sock_create.
#
# NETWORK SAFETY: every connect happens inside a network namespace this script
# creates, whose only interface is lo; nothing is sent from the root netns.
# connect_bench itself refuses non-127.0.0.1/::1 targets unless it sees a
# netns with only lo. Everything is bounded (iterations, --max-seconds,
# timeouts) and cleaned up on exit (trap): egressd detached, cgroup removed,
# netns deleted, bpf_stats_enabled restored.
#
# Prints a markdown report to stdout (progress to stderr). Exit status is
# non-zero when something failed, not when a target is missed.
set -euo pipefail

ROUNDS=3
ITERATIONS=50000
WARMUP=5000
DENIED_ITERATIONS=5000
STATS_ITERATIONS=5000
MAX_SECONDS=60
NCIDRS=100000
BASELINE_ONLY=0
KEEP_TMP=0

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --iterations) ITERATIONS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --cidrs) NCIDRS=$2; shift 2 ;;
    --baseline-only) BASELINE_ONLY=1; shift ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h|--help) usage ;;
    *) echo "bench-connect: unknown argument $1" >&2; usage ;;
  esac
done
for v in ROUNDS ITERATIONS WARMUP NCIDRS; do
  [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || { echo "bench-connect: bad $v" >&2; exit 2; }
done
(( NCIDRS >= 20 )) || { echo "bench-connect: --cidrs must be >= 20" >&2; exit 2; }

cd "$(dirname "$0")/.."
REPO=$(pwd)
BENCH_NAME=bench-connect
# shellcheck source=scripts/bench/lib.sh
. "$REPO/scripts/bench/lib.sh"
[[ $EUID -eq 0 ]] || bench_die "run as root (sudo scripts/bench-connect.sh)"
BUILD=${BUILD_DIR:-build}
EGRESSD=$REPO/$BUILD/egressd
BENCH=${CONNECT_BENCH:-$REPO/$BUILD/tests/bench/connect_bench}
PY=$(command -v python3 || true)
[[ -n $PY ]] || bench_die "python3 is needed"
for tool in ip nsenter bpftool timeout sysctl jq; do
  command -v "$tool" >/dev/null || bench_die "$tool is needed"
done

if [[ ! -x $BENCH || ( $BASELINE_ONLY -eq 0 && ! -x $EGRESSD ) ]]; then
  bench_log "building ($BUILD)"
  scripts/build.sh >&2 || bench_die "scripts/build.sh"
fi
[[ -x $BENCH ]] || bench_die "$BENCH missing after the build"
if (( ! BASELINE_ONLY )); then
  [[ -x $EGRESSD ]] || bench_die "$EGRESSD missing after the build"
fi

CGROOT=$(bench_cgroot)
[[ -n $CGROOT && -d $CGROOT ]] || bench_die "no cgroup2 mount found in /proc/self/mountinfo"

NS=egdbench-$$
CG=$CGROOT/egdbench-$$
TMP=$(mktemp -d /tmp/egdbench.XXXXXX)
# Private pin and run directories: other egressd attachments on this host
# (tests running in parallel) neither show up in `status` nor collide.
export EGRESSD_BPFFS_DIR=/sys/fs/bpf/egdbench-$$
export EGRESSD_RUN_DIR=/run/egdbench-$$
RESULTS=$TMP/results.jsonl
OLD_STATS=$(sysctl -n kernel.bpf_stats_enabled)
DAEMON_PID=
NS_CREATED=0
CG_CREATED=0
ATTACHED=0

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if (( ATTACHED )) || [[ -d $EGRESSD_BPFFS_DIR ]]; then
    timeout 20 "$EGRESSD" detach --cgroup "$CG" >/dev/null 2>&1
  fi
  bench_stop_pid "$DAEMON_PID"
  wait 2>/dev/null
  # Pins left behind (a detach that failed) would keep the programs alive.
  [[ -d $EGRESSD_BPFFS_DIR ]] && rm -rf "$EGRESSD_BPFFS_DIR"
  [[ -d $EGRESSD_RUN_DIR ]] && rm -rf "$EGRESSD_RUN_DIR"
  if (( CG_CREATED )) && [[ -d $CG ]]; then
    # Our benchmark processes are children that have exited; anything still
    # in there was started by us.
    while read -r pid; do kill -KILL "$pid" 2>/dev/null; done <"$CG/cgroup.procs"
    for _ in $(seq 50); do rmdir "$CG" 2>/dev/null && break; sleep 0.1; done
    [[ -d $CG ]] && bench_log "warning: could not remove $CG"
  fi
  (( NS_CREATED )) && ip netns del "$NS" 2>/dev/null
  sysctl -qw kernel.bpf_stats_enabled="$OLD_STATS" 2>/dev/null
  if (( KEEP_TMP )); then bench_log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers (python) -------------------------------------------------------
cat >"$TMP/helper.py" <<'PYEOF'
import json, os, random, socket, subprocess, sys, time, ipaddress

def gen_policies(outdir, n):
    """10-CIDR policy and an n-CIDR policy that contains the same 10."""
    fixed_allow4 = ["203.0.113.77/32", "198.51.100.0/24", "198.51.100.128/25",
                    "93.184.216.0/24", "140.82.112.0/20", "151.101.0.0/16"]
    fixed_allow6 = ["2001:db8:77::/64", "2001:db8:1::/48"]
    fixed_deny = ["10.1.2.0/24", "2001:db8:dead::/48"]
    head = "# generated by scripts/bench-connect.sh\nversion = 1\n\n"

    def allow(c):
        return f'[[allow_cidr]]\ncidr = "{c}"\nports = [5432]\nproto = "tcp"\n\n'

    def deny(c):
        return f'[[deny_cidr]]\ncidr = "{c}"\n\n'

    small = head + "".join(allow(c) for c in fixed_allow4 + fixed_allow6) + "".join(deny(c) for c in fixed_deny)
    with open(os.path.join(outdir, "cidr10.toml"), "w") as f:
        f.write(small)

    rnd = random.Random(3)
    fixed_nets = [ipaddress.ip_network(c) for c in fixed_allow4 + fixed_allow6 + fixed_deny]
    # Random public IPv4 /24 blocks across the whole unicast space (a real
    # 100k list, e.g. cloud ranges, is spread out too), each used once, as the
    # /24 or one /32 in it, so no rule overlaps another.
    skip_octets = {0, 10, 100, 127, 169, 172, 192, 198}
    blocks = set()
    n_rand = n - 10
    n6 = max(2, n_rand // 20)           # 5% v6 /64s under 2001:db8::/32
    n4 = n_rand - n6
    n_deny4 = n4 // 20                  # 5% of each family denied
    n_deny6 = n6 // 5
    def fixed_overlap(net):
        return any(net.version == f.version and net.overlaps(f) for f in fixed_nets)
    v4 = []
    while len(v4) < n4:
        a = rnd.randint(1, 223)
        if a in skip_octets:
            continue
        b, c = rnd.randint(0, 255), rnd.randint(0, 255)
        if (a, b, c) in blocks:
            continue
        net = ipaddress.ip_network(f"{a}.{b}.{c}.0/24")
        if fixed_overlap(net):
            continue
        blocks.add((a, b, c))
        v4.append(f"{a}.{b}.{c}.0/24" if rnd.random() < 0.5 else f"{a}.{b}.{c}.{rnd.randint(1, 254)}/32")
    v6set = set()
    v6 = []
    while len(v6) < n6:
        h3, h4 = rnd.randint(0x1000, 0xffff), rnd.randint(0, 0xffff)
        if (h3, h4) in v6set or h3 == 0xdead:
            continue
        v6set.add((h3, h4))
        v6.append(f"2001:db8:{h3:x}:{h4:x}::/64")
    big = [head]
    big += [allow(c) for c in fixed_allow4 + v4[n_deny4:]]
    big += [allow(c) for c in fixed_allow6 + v6[n_deny6:]]
    big += [deny(c) for c in fixed_deny + v4[:n_deny4] + v6[:n_deny6]]
    with open(os.path.join(outdir, "cidr100k.toml"), "w") as f:
        f.write("".join(big))
    print(f"cidr10.toml: 10 CIDRs; cidr100k.toml: {n} CIDRs "
          f"({n4 - n_deny4 + 6} allow v4, {n6 - n_deny6 + 2} allow v6, {n_deny4 + 1} deny v4, {n_deny6 + 1} deny v6)",
          file=sys.stderr)

def notify_wait(path, timeout):
    """Bind a NOTIFY_SOCKET datagram socket, touch PATH.bound, wait for READY=1.
    Prints the wall-clock receive time (epoch seconds, float)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    open(path + ".bound", "w").close()
    deadline = time.time() + timeout
    while True:
        left = deadline - time.time()
        if left <= 0:
            print("timeout", flush=True)
            sys.exit(1)
        s.settimeout(left)
        try:
            msg = s.recv(4096).decode(errors="replace")
        except socket.timeout:
            continue
        if "READY=1" in msg.split("\n"):
            print(f"{time.time():.6f}", flush=True)
            return

def progstats(cgroup):
    """{prog name: [run_time_ns, run_cnt]} for the programs attached to CGROUP."""
    out = subprocess.run(["bpftool", "-j", "cgroup", "show", cgroup], check=True,
                         capture_output=True, text=True).stdout
    res = {}
    for p in json.loads(out or "[]"):
        info = json.loads(subprocess.run(["bpftool", "-j", "prog", "show", "id", str(p["id"])],
                                         check=True, capture_output=True, text=True).stdout)
        res[info.get("name", p.get("name"))] = [info.get("run_time_ns", 0), info.get("run_cnt", 0)]
    print(json.dumps(res))

def statsdelta(before, after, case, mode, results):
    b, a = json.loads(before), json.loads(after)
    with open(results, "a") as f:
        for name, (t, c) in a.items():
            t0, c0 = b.get(name, [0, 0])
            if c - c0 > 0:
                f.write(json.dumps({"kind": "hook", "case": case, "mode": mode, "prog": name,
                                    "run_time_ns": t - t0, "run_cnt": c - c0}) + "\n")

def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return None if n == 0 else (xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2)

def report(results, meta_json):
    meta = json.loads(meta_json)
    recs = [json.loads(l) for l in open(results) if l.strip()]
    runs = [r for r in recs if r.get("kind") == "run"]
    cases = ["none", "cidr10", "cidr100k"]
    label = {"none": "no egressd", "cidr10": "egressd, 10 CIDRs", "cidr100k": f"egressd, {meta['ncidrs']:,} CIDRs"}
    modes = [("loopback", "127.0.0.1 / ::1 (loopback)"), ("allow-hit", "allow-CIDR hit, port 5432"),
             ("denied", "deny-CIDR hit → EPERM")]
    def sel(case, fam, mode):
        return {r["round"]: r for r in runs if r["case"] == case and r["family"] == fam and r["mode_name"] == mode}
    out = []
    w = out.append
    w(f"Machine: {meta['nproc']} vCPU, kernel {meta['kernel']}, {meta['cpu']}. "
      f"{meta['rounds']} interleaved rounds × {meta['iterations']:,} connects per case "
      f"({meta['denied_iterations']:,} for the denied path), after {meta['warmup']:,} warm-up connects. "
      f"Times are per socket+connect+accept+close (client closed with RST); "
      f"“median” is the median over rounds of each round's median; “added” is the median over rounds "
      f"of the paired per-round difference to the baseline of the same round.")
    w("")
    w("| destination | family | case | median ns/connect | rounds' medians | p99 ns (median of rounds) | added ns vs none | ratio vs none |")
    w("|---|---|---|---:|---|---:|---:|---:|")
    summary = {}
    for mode, mlabel in modes:
        for fam in (4, 6):
            base = sel("none", fam, mode)
            for case in cases:
                rs = sel(case, fam, mode)
                if not rs:
                    continue
                meds = [rs[k]["median_ns"] for k in sorted(rs)]
                p99 = median([rs[k]["p99_ns"] for k in rs])
                m = median(meds)
                added = ratio = "–"
                if base and case != "none":
                    diffs = [rs[k]["median_ns"] - base[k]["median_ns"] for k in rs if k in base]
                    if diffs:
                        d = median(diffs)
                        added = f"{d:+,.0f}"
                        ratio = f"{m / median([b['median_ns'] for b in base.values()]):.3f}"
                        summary[(mode, fam, case)] = d
                summary[(mode, fam, case, "median")] = m
                w(f"| {mlabel} | v{fam} | {label[case]} | {m:,.0f} | {' / '.join(f'{x:,}' for x in meds)} "
                  f"| {p99:,.0f} | {added} | {ratio} |")
    out.append("")
    # 100k / 10 ratios
    rows = []
    for mode, mlabel in modes:
        for fam in (4, 6):
            a = summary.get((mode, fam, "cidr10", "median"))
            b = summary.get((mode, fam, "cidr100k", "median"))
            if a and b:
                rows.append(f"| {mlabel} | v{fam} | {a:,.0f} | {b:,.0f} | {b / a:.3f} | {b - a:+,.0f} |")
    if rows:
        w(f"| destination | family | 10 CIDRs ns | {meta['ncidrs']:,} CIDRs ns | 100k/10 ratio | difference ns |")
        w("|---|---|---:|---:|---:|---:|")
        out.extend(rows)
        w("")
    hooks = [r for r in recs if r.get("kind") == "hook"]
    if hooks:
        w("In-kernel time per program call (kernel.bpf_stats_enabled=1, separate passes of "
          f"{meta['stats_iterations']:,} connects; includes the ~100 ns the stats themselves cost):")
        w("")
        w(f"| program | destination | 10 CIDRs ns/call | {meta['ncidrs']:,} CIDRs ns/call | calls measured (both) |")
        w("|---|---|---:|---:|---:|")
        agg = {}
        for h in hooks:
            k = (h["prog"], h["mode"], h["case"])
            t, c = agg.get(k, (0, 0))
            agg[k] = (t + h["run_time_ns"], c + h["run_cnt"])
        keys = sorted({(p, m) for (p, m, _) in agg})
        order = {"egd_connect4": 0, "egd_connect6": 1, "egd_sock_create": 2}
        mode_order = {m: i for i, (m, _) in enumerate(modes)}
        keys.sort(key=lambda k: (order.get(k[0], 9), mode_order.get(k[1].split("/")[0], 9), k[1]))
        for prog, mode in keys:
            cells = []
            n = 0
            for case in ("cidr10", "cidr100k"):
                t, c = agg.get((prog, mode, case), (0, 0))
                cells.append(f"{t / c:,.0f}" if c else "–")
                n += c
            w(f"| {prog} | {mode} | {cells[0]} | {cells[1]} | {n:,} |")
        w("")
    att = [r for r in recs if r.get("kind") == "attach"]
    rel = [r for r in recs if r.get("kind") == "reload"]
    if att or rel:
        w("| operation | wall ms (median of rounds) | per round | egressd's own figures (median) |")
        w("|---|---:|---|---|")
        for pol in ("cidr10", "cidr100k"):
            a = [r for r in att if r["policy"] == pol]
            if a:
                own = []
                for key, name in (("load_ms", "BPF load+attach"), ("policy_ms", "policy write")):
                    v = [r[key] for r in a if r.get(key) is not None]
                    if v:
                        own.append(f"{name} {median(v):,.1f} ms")
                w(f"| fresh `attach`, {label[pol].split(', ')[1]} (start → READY=1) | {median([r['ms'] for r in a]):,.0f} "
                  f"| {' / '.join(format(r['ms'], ',.0f') for r in a)} | {'; '.join(own) or '–'} |")
        if rel:
            v = [r["write_ms"] for r in rel if r.get("write_ms") is not None]
            w(f"| `reload` 10 → {meta['ncidrs']:,} CIDRs (process start → exit) | {median([r['ms'] for r in rel]):,.0f} "
              f"| {' / '.join(format(r['ms'], ',.0f') for r in rel)} | "
              f"{'map write ' + format(median(v), ',.1f') + ' ms (printed by reload)' if v else '–'} |")
        w("")
    # Targets
    verdicts = []
    added = [v for k, v in summary.items() if len(k) == 3 and k[0] != "denied"]
    if added:
        worst = max(added)
        verdicts.append(f"- target < 1 µs added per connect: {'met' if worst < 1000 else 'NOT met'} "
                        f"(largest median added: {worst:+,.0f} ns)")
    flat = []
    for mode, _ in modes[:2]:
        for fam in (4, 6):
            a = summary.get((mode, fam, "cidr10", "median"))
            b = summary.get((mode, fam, "cidr100k", "median"))
            if a and b:
                flat.append(b - a)
    if flat:
        verdicts.append(f"- 10 → {meta['ncidrs']:,} CIDRs, change in median ns/connect: "
                        + ", ".join(f"{x:+,.0f}" for x in flat))
    out.extend(verdicts)
    print("\n".join(out))

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "gen":
        gen_policies(sys.argv[2], int(sys.argv[3]))
    elif cmd == "notify":
        notify_wait(sys.argv[2], float(sys.argv[3]))
    elif cmd == "progstats":
        progstats(sys.argv[2])
    elif cmd == "statsdelta":
        statsdelta(*sys.argv[2:7])
    elif cmd == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown helper command {cmd}")
PYEOF
helper() { "$PY" "$TMP/helper.py" "$@"; }

# ---- netns and cgroup ---------------------------------------------------------
bench_log "netns $NS, cgroup $CG, tmp $TMP"
ip netns add "$NS"
NS_CREATED=1
ip -n "$NS" link set lo up
# Extra addresses on the netns's lo only, so an allow-CIDR hit can be timed
# without any route out (the netns has no other interface).
ip -n "$NS" addr add 203.0.113.77/32 dev lo
ip -n "$NS" addr add 2001:db8:77::77/128 dev lo nodad
ifaces=$(ip -n "$NS" -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
[[ $ifaces == "lo " ]] || bench_die "netns $NS has interfaces other than lo: $ifaces"
mkdir "$CG"
CG_CREATED=1

# in_fence CMD...: runs CMD (bounded) as a process of the bench cgroup, in the
# bench netns. The child shell joins the cgroup, then execs nsenter (not
# `ip netns exec`, which remounts /sys), which execs CMD.
in_fence() {
  # shellcheck disable=SC2016  # expanded by the inner shell
  timeout $((MAX_SECONDS + 30)) bash -c '
    echo $BASHPID >"$1/cgroup.procs" || exit 98
    exec nsenter --net="/run/netns/$2" -- "${@:3}"' _ "$CG" "$NS" "$@"
}

# run_bench CASE ROUND FAMILY MODE_NAME [connect_bench args...]: one bench
# process, in the cgroup and the netns; appends its JSON line to RESULTS.
run_bench() {
  local case=$1 round=$2 fam=$3 mode=$4; shift 4
  local out
  out=$(in_fence "$BENCH" --family "$fam" --max-seconds "$MAX_SECONDS" "$@") \
    || bench_die "connect_bench ($case, v$fam, $mode) exited with $?"
  [[ $out == \{*\} ]] || bench_die "connect_bench ($case, v$fam, $mode) printed: $out"
  echo "$out" | jq -c --arg case "$case" --argjson round "$round" --arg mode "$mode" \
    '. + {kind: "run", case: $case, round: $round, mode_name: $mode}' >>"$RESULTS"
  bench_log "  $case v$fam $mode: median $(jq -r .median_ns <<<"$out") ns"
}

target_args() {  # MODE FAMILY -> connect_bench args
  case "$1/$2" in
    loopback/*) echo "--iterations $ITERATIONS --warmup $WARMUP" ;;
    allow-hit/4) echo "--iterations $ITERATIONS --warmup $WARMUP --fenced --target 203.0.113.77 --port 5432" ;;
    allow-hit/6) echo "--iterations $ITERATIONS --warmup $WARMUP --fenced --target 2001:db8:77::77 --port 5432" ;;
    denied/*) echo "--iterations $DENIED_ITERATIONS --warmup $((WARMUP / 10)) --fenced --mode denied" ;;
  esac
}

run_case() {  # CASE ROUND
  local mode fam
  for mode in loopback allow-hit denied; do
    [[ $1 == none && $mode == denied ]] && continue  # unfenced: no route (ENETUNREACH), nothing to compare
    for fam in 4 6; do
      # shellcheck disable=SC2046
      run_bench "$1" "$2" "$fam" "$mode" $(target_args "$mode" "$fam")
    done
  done
}

# Short passes with bpf_stats on (they cost ~100 ns per program run, so the
# timed passes above run with them off).
run_stats() {  # CASE
  local mode fam before after
  sysctl -qw kernel.bpf_stats_enabled=1
  for mode in loopback allow-hit denied; do
    for fam in 4 6; do
      before=$(helper progstats "$CG")
      # shellcheck disable=SC2046
      in_fence "$BENCH" --family "$fam" --max-seconds "$MAX_SECONDS" \
          $(target_args "$mode" "$fam" | sed "s/--iterations [0-9]*/--iterations $STATS_ITERATIONS/") >/dev/null \
        || bench_die "connect_bench stats pass ($1, v$fam, $mode)"
      after=$(helper progstats "$CG")
      helper statsdelta "$before" "$after" "$1" "$mode/v$fam" "$RESULTS"
    done
  done
  sysctl -qw kernel.bpf_stats_enabled=0
}

now() { echo "$EPOCHREALTIME"; }
ms_between() { "$PY" -c "import sys; print(round((float(sys.argv[2]) - float(sys.argv[1])) * 1000, 1))" "$1" "$2"; }

# attach_policy NAME FILE: starts `egressd attach` in the background, waits
# for READY=1 (bounded) and records how long that took.
attach_policy() {
  local name=$1 file=$2 sock=$TMP/notify.sock t0 t1 waiter ms load_ms policy_ms
  rm -f "$sock" "$sock.bound"
  helper notify "$sock" 60 >"$TMP/notify.out" &
  waiter=$!
  for _ in $(seq 100); do [[ -e $sock.bound ]] && break; sleep 0.05; done
  [[ -e $sock.bound ]] || bench_die "notify socket did not come up"
  t0=$(now)
  NOTIFY_SOCKET=$sock "$EGRESSD" attach --cgroup "$CG" --policy "$file" >>"$TMP/egressd.log" 2>&1 &
  DAEMON_PID=$!
  ATTACHED=1
  if ! wait "$waiter"; then
    tail -n 20 "$TMP/egressd.log" >&2
    bench_die "egressd attach ($name) did not report READY=1 within 60 s"
  fi
  t1=$(cat "$TMP/notify.out")
  kill -0 "$DAEMON_PID" 2>/dev/null || bench_die "egressd attach ($name) exited after READY"
  ms=$(ms_between "$t0" "$t1")
  # "…; load 61.2 ms, policy 130.5 ms)" from the daemon's start-up line.
  load_ms=$(grep -o 'load [0-9.]* ms, policy [0-9.]* ms' "$TMP/egressd.log" | tail -n1 | awk '{print $2}')
  policy_ms=$(grep -o 'load [0-9.]* ms, policy [0-9.]* ms' "$TMP/egressd.log" | tail -n1 | awk '{print $5}')
  jq -nc --arg p "$name" --argjson ms "$ms" --arg l "${load_ms:-}" --arg w "${policy_ms:-}" \
    '{kind: "attach", policy: $p, ms: $ms, load_ms: ($l | tonumber? // null), policy_ms: ($w | tonumber? // null)}' >>"$RESULTS"
  bench_log "  attach $name: READY after $ms ms (load ${load_ms:-?} ms, policy ${policy_ms:-?} ms)"
  # The fence must be complete before anything is timed.
  local fenced
  fenced=$("$EGRESSD" status --json | jq -r --arg cg "$CG" '.attachments[] | select(.cgroup == $cg) | .fenced')
  [[ $fenced == true ]] || bench_die "egressd status does not show $CG fenced (got '${fenced}')"
}

detach_policy() {
  timeout 20 "$EGRESSD" detach --cgroup "$CG" >>"$TMP/egressd.log" 2>&1 || bench_die "egressd detach failed"
  ATTACHED=0
  if [[ -n $DAEMON_PID ]]; then
    for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$DAEMON_PID" 2>/dev/null && bench_die "egressd daemon $DAEMON_PID still running 10 s after detach"
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=
  fi
  [[ -z $(bpftool -j cgroup show "$CG" | jq -r '.[]?.id') ]] || bench_die "programs still attached to $CG after detach"
}

reload_policy() {  # NAME FILE
  local t0 t1 out ms write_ms
  t0=$(now)
  out=$(timeout 120 "$EGRESSD" reload --cgroup "$CG" --policy "$2" 2>&1) || bench_die "egressd reload: $out"
  t1=$(now)
  ms=$(ms_between "$t0" "$t1")
  write_ms=$(grep -o '[0-9.]* ms writing maps' <<<"$out" | awk '{print $1}' || true)
  jq -nc --arg p "$1" --argjson ms "$ms" --arg w "${write_ms:-}" \
    '{kind: "reload", policy: $p, ms: $ms, write_ms: ($w | tonumber? // null)}' >>"$RESULTS"
  bench_log "  reload -> $1: $ms ms (egressd: ${write_ms:-?} ms map write)"
}

# ---- policies -------------------------------------------------------------------
if (( ! BASELINE_ONLY )); then
  helper gen "$TMP" "$NCIDRS"
  "$EGRESSD" check "$TMP/cidr10.toml" >/dev/null || bench_die "egressd check cidr10.toml"
  "$EGRESSD" check "$TMP/cidr100k.toml" >/dev/null || bench_die "egressd check cidr100k.toml"
fi

# ---- rounds ------------------------------------------------------------------------
sysctl -qw kernel.bpf_stats_enabled=0
for r in $(seq "$ROUNDS"); do
  bench_log "round $r/$ROUNDS"
  run_case none "$r"
  (( BASELINE_ONLY )) && continue
  attach_policy cidr10 "$TMP/cidr10.toml"
  run_case cidr10 "$r"
  run_stats cidr10
  reload_policy cidr100k "$TMP/cidr100k.toml"
  run_case cidr100k "$r"
  run_stats cidr100k
  detach_policy
  # A fresh attach of the big policy, timed on its own.
  attach_policy cidr100k "$TMP/cidr100k.toml"
  detach_policy
done

# ---- report ----------------------------------------------------------------------
meta=$(jq -nc --arg nproc "$(nproc)" --arg kernel "$(uname -r)" \
  --arg cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" \
  --argjson rounds "$ROUNDS" --argjson iterations "$ITERATIONS" --argjson warmup "$WARMUP" \
  --argjson denied "$DENIED_ITERATIONS" --argjson stats "$STATS_ITERATIONS" --argjson ncidrs "$NCIDRS" \
  '{nproc: $nproc, kernel: $kernel, cpu: $cpu, rounds: $rounds, iterations: $iterations, warmup: $warmup,
    denied_iterations: $denied, stats_iterations: $stats, ncidrs: $ncidrs}')
helper report "$RESULTS" "$meta"
