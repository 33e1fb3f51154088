#!/usr/bin/env python3
"""Report of scripts/bench-dns.sh: RESULTS_DIR -> markdown on stdout, summary.json.

Reads raw.csv (one row per dnsperf run), lat/<test>-<path>.txt (every latency sample of
the fixed-rate runs: "<µs> ok|<rcode>"), lat/timeouts-<test>-<path>.txt and meta.json.
  queries/s      full-load runs: median over rounds of dnsperf's rate (completed / run time);
                 ratio = path / direct (medians), and egressd / dnsmasq
  per round      egressd / dnsmasq of the same round (paired), for the target
  latency        fixed-rate runs: percentiles of all samples pooled; added = path - direct
  CPU µs/query   full-load runs: sum of the cgroup's cpu.stat usage_usec / answers, for the
                 resolver (egressd, dnsmasq; unbound for direct), the upstream and the client;
                 1-core capacity = 1e6 / resolver µs per query (what one core could answer)
  upstream q/q   unbound's total.num.queries over the run / answers the client got
"""
import csv
import json
import os
import statistics
import sys

TESTS = [
    ("cached", "cached (100 allowed names, TTL 3600, asked over and over)"),
    ("uncached", "uncached (every name new, below the allowed *.u.test; TTL 1)"),
    ("denied", "denied (every name new, below t.exfil.example: a tunnelling burst)"),
]
LABEL = {
    "direct": "direct to the upstream (unbound)",
    "egressd": "egressd (BPF steering + its resolver)",
    "dnsmasq": "dnsmasq 2.90, filtering forwarder",
}
ORDER = ["direct", "egressd", "dnsmasq"]
INTS = ("round", "sent", "completed", "lost", "expected", "unexpected", "resolver_cpu_us", "upstream_cpu_us",
        "client_cpu_us", "upstream_queries", "eg_denied_logged", "eg_fds", "eg_rss_kib", "alive")


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def fmt(v, spec=",.0f", none="n/a"):
    return none if v is None else format(v, spec)


def load(res):
    rows = []
    with open(os.path.join(res, "raw.csv")) as f:
        for r in csv.DictReader(f):
            for k in INTS:
                r[k] = int(float(r[k] or 0))
            for k in ("seconds", "qps", "avg_lat_s"):
                r[k] = float(r[k] or 0)
            rows.append(r)
    lat, lat_bad, timeouts = {}, {}, {}
    for test, _ in TESTS:
        for p in ORDER:
            fn = os.path.join(res, "lat", f"{test}-{p}.txt")
            if os.path.exists(fn):
                ok, bad = [], 0
                with open(fn) as f:
                    for line in f:
                        w = line.split()
                        if len(w) != 2:
                            continue
                        if w[1] == "ok":
                            ok.append(int(w[0]))
                        else:
                            bad += 1
                lat[(test, p)] = ok
                lat_bad[(test, p)] = bad
            fn = os.path.join(res, "lat", f"timeouts-{test}-{p}.txt")
            if os.path.exists(fn):
                with open(fn) as f:
                    timeouts[(test, p)] = sum(int(x) for x in f.read().split() if x.isdigit())
    meta = {}
    fn = os.path.join(res, "meta.json")
    if os.path.exists(fn):
        with open(fn) as f:
            meta = json.load(f)
    return rows, lat, lat_bad, timeouts, meta


def figures(rows, lat, lat_bad, timeouts):
    out = {}
    for test, _ in TESTS:
        for p in ORDER:
            load_rows = [r for r in rows if r["test"] == test and r["path"] == p and r["kind"] == "load"]
            lat_rows = [r for r in rows if r["test"] == test and r["path"] == p and r["kind"] == "lat"]
            if not load_rows and not lat_rows:
                continue
            f = {}
            rates = {r["round"]: r["qps"] for r in load_rows if r["seconds"] > 0}
            f["rounds"] = rates
            f["qps"] = statistics.median(rates.values()) if rates else None
            n = sum(r["completed"] for r in load_rows)
            f["answers"] = n
            f["lost"] = sum(r["lost"] for r in load_rows)
            f["unexpected"] = sum(r["unexpected"] for r in load_rows)
            f["rcodes"] = sorted({r["rcodes"] for r in load_rows})
            f["avg_lat_ms"] = statistics.median(r["avg_lat_s"] * 1e3 for r in load_rows) if load_rows else None
            f["resolver_us"] = sum(r["resolver_cpu_us"] for r in load_rows) / n if n else None
            f["upstream_us"] = sum(r["upstream_cpu_us"] for r in load_rows) / n if n else None
            f["client_us"] = sum(r["client_cpu_us"] for r in load_rows) / n if n else None
            f["upstream_per_q"] = sum(r["upstream_queries"] for r in load_rows) / n if n else None
            f["eg_denied_logged"] = sum(r["eg_denied_logged"] for r in load_rows + lat_rows)
            f["eg_fds_max"] = max((r["eg_fds"] for r in load_rows + lat_rows), default=0)
            f["eg_rss_max"] = max((r["eg_rss_kib"] for r in load_rows + lat_rows), default=0)
            f["died"] = any(r["alive"] == 0 for r in load_rows + lat_rows)
            s = lat.get((test, p), [])
            f["lat_n"] = len(s)
            f["lat_bad"] = lat_bad.get((test, p), 0)
            f["lat_timeouts"] = timeouts.get((test, p), 0)
            f["lat_lost"] = sum(r["lost"] for r in lat_rows)
            nl = sum(r["completed"] for r in lat_rows)
            f["lat_upstream_per_q"] = sum(r["upstream_queries"] for r in lat_rows) / nl if nl else None
            for q, name in ((0.5, "p50"), (0.99, "p99"), (0.999, "p999")):
                f["lat_" + name] = pct(s, q)
            f["lat_max"] = max(s) if s else None
            out[(test, p)] = f
    for test, _ in TESTS:
        d = out.get((test, "direct"))
        m = out.get((test, "dnsmasq"))
        for p in ORDER:
            f = out.get((test, p))
            if not f:
                continue
            f["vs_direct"] = f["qps"] / d["qps"] if d and d.get("qps") and f.get("qps") else None
            f["vs_dnsmasq"] = f["qps"] / m["qps"] if m and m.get("qps") and f.get("qps") else None
            for q in ("p50", "p99"):
                a = f.get("lat_" + q)
                b = d.get("lat_" + q) if d else None
                f[f"lat_{q}_added"] = a - b if a is not None and b is not None else None
        e = out.get((test, "egressd"))
        if e and m:
            paired = [e["rounds"][k] / m["rounds"][k] for k in e["rounds"] if k in m["rounds"] and m["rounds"][k] > 0]
            e["paired_vs_dnsmasq"] = paired
    return out


def main():
    res = sys.argv[1]
    rows, lat, lat_bad, timeouts, meta = load(res)
    figs = figures(rows, lat, lat_bad, timeouts)
    w = print
    quiet = meta.get("quiet", "n/a")
    wait_txt = ("no wait (quick mode)" if quiet == "n/a" else
                f"waited {meta.get('waited', '?')} s for the 1-min load to drop below {meta.get('load_max', '?')}: "
                f"{'reached' if quiet == 'yes' else 'not reached, measured anyway'}")
    w(f"Machine: {meta.get('nproc', '?')} vCPU {meta.get('cpu', '')}, {meta.get('mem', '')}, kernel "
      f"{meta.get('kernel', '?')}, {meta.get('os', '')}. Load (1/5/15 min) before the wait "
      f"{' '.join(meta.get('load_pre', '?').split()[:3])}, at the start of the measurement "
      f"{' '.join(meta.get('load0', '?').split()[:3])}, at its end {' '.join(meta.get('load1', '?').split()[:3])} "
      f"({wait_txt}). Whole machine {meta.get('busy', '?')}% busy during the measurement (all tenants, this "
      f"benchmark included), of which about {meta.get('others', '?')}% of the machine was other processes; "
      f"{meta.get('steal', '?')}% steal. {meta.get('rounds', '?')} rounds × {meta.get('dur', '?')} s per full-load "
      f"run (dnsperf -c {meta.get('clients', '?')} -q {meta.get('outstanding', '?')}), latency runs "
      f"{meta.get('lat_s', '?')} s at {meta.get('lat_qps', '?')} queries/s each; wall time {meta.get('wall', '?')} s.")
    w("")
    w(f"Tools: dnsperf {meta.get('dnsperf', '?')}, upstream unbound {meta.get('unbound', '?')} (1 thread, local zones "
      f"only), dnsmasq {meta.get('dnsmasq', '?')}, dig {meta.get('dig', '?')}. egressd: `{meta.get('egressd', '?')}` "
      f"(built {meta.get('built') or '?'}), source at {meta.get('commit', '?')}"
      f"{' (+ uncommitted changes under bpf/ userspace/)' if meta.get('dirty', '0') not in ('0', '') else ''}; "
      f"its resolver on 127.0.0.1:{meta.get('eg_dns_port') or '?'}.")
    w("")
    w("#### Queries per second at full load (median of rounds; ratios of medians)")
    w("")
    w("| test | path | queries/s | rounds | vs direct | vs dnsmasq | avg latency under load ms "
      "| resolver CPU µs/query (1-core capacity q/s) | upstream CPU µs/query | client CPU µs/query | upstream queries per answer | lost / wrong rcode |")
    w("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for test, _ in TESTS:
        for p in ORDER:
            f = figs.get((test, p))
            if not f or f.get("qps") is None:
                continue
            rounds = " / ".join(f"{f['rounds'][k]:,.0f}" for k in sorted(f["rounds"]))
            vd = "—" if p == "direct" else fmt(f.get("vs_direct"), ".2f") + "×"
            vm = "—" if p == "dnsmasq" else fmt(f.get("vs_dnsmasq"), ".2f") + "×"
            res_cpu = fmt(f.get("resolver_us"), ".1f")
            if f.get("resolver_us"):
                res_cpu += f" ({1e6 / f['resolver_us']:,.0f})"
            up_cpu = "(same)" if p == "direct" else fmt(f.get("upstream_us"), ".1f")
            bad = f"{f['lost']:,} / {f['unexpected']:,}" + (" **died**" if f["died"] else "")
            w(f"| {test} | {LABEL[p]} | {f['qps']:,.0f} | {rounds} | {vd} | {vm} | {fmt(f.get('avg_lat_ms'), '.2f')} "
              f"| {res_cpu} | {up_cpu} | {fmt(f.get('client_us'), '.1f')} | {fmt(f.get('upstream_per_q'), '.3f')} | {bad} |")
    w("")
    w(f"#### Latency at {meta.get('lat_qps', '?')} queries/s (all rounds pooled; added = path − direct)")
    w("")
    w("| test | path | answers | p50 µs (added) | p99 µs (added) | p99.9 µs | max µs | upstream queries per answer "
      "| wrong rcode / timeouts |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for test, _ in TESTS:
        for p in ORDER:
            f = figs.get((test, p))
            if not f or not f["lat_n"]:
                continue

            def latc(q):
                v = f.get("lat_" + q)
                a = f.get(f"lat_{q}_added")
                return fmt(v) + (f" ({a:+,.0f})" if a is not None and p != "direct" else "")

            w(f"| {test} | {LABEL[p]} | {f['lat_n']:,} | {latc('p50')} | {latc('p99')} | {fmt(f.get('lat_p999'))} "
              f"| {fmt(f.get('lat_max'))} | {fmt(f.get('lat_upstream_per_q'), '.3f')} | {f['lat_bad']} / {f['lat_timeouts']} |")
    w("")
    e = figs.get(("cached", "egressd"))
    m = figs.get(("cached", "dnsmasq"))
    summary_target = None
    if e and m and e.get("qps") and m.get("qps"):
        ratio = e["qps"] / m["qps"]
        paired = e.get("paired_vs_dnsmasq") or []
        wins = sum(1 for x in paired if x >= 1.0)
        met = ratio >= 1.0
        summary_target = {"ratio": ratio, "paired": paired, "met": met}
        w("#### Target of issue 5: egressd's cached answers ≥ dnsmasq's rate")
        w("")
        w(f"egressd {e['qps']:,.0f} q/s vs dnsmasq {m['qps']:,.0f} q/s cached: **{ratio:.2f}× — "
          f"{'met' if met else 'missed'}**. Paired per round: "
          f"{', '.join(f'{x:.2f}×' for x in paired)} ({wins} of {len(paired)} rounds ≥ 1). Resolver CPU per cached "
          f"answer: egressd {fmt(e.get('resolver_us'), '.1f')} µs, dnsmasq {fmt(m.get('resolver_us'), '.1f')} µs; "
          f"client CPU per answer (includes the BPF sendmsg/recvmsg hooks on the egressd path): "
          f"{fmt(e.get('client_us'), '.1f')} vs {fmt(m.get('client_us'), '.1f')} µs.")
        w("")
    # checks
    notes = []
    for test, _ in TESTS:
        f = figs.get((test, "egressd"))
        if f:
            notes.append(f"{test}: {f['eg_denied_logged']:,} denial events logged, up to {f['eg_fds_max']} open fds (sampled every 0.2 s), "
                         f"RSS up to {f['eg_rss_max'] / 1024:.1f} MiB")
    if notes:
        w(f"egressd during the runs — {'; '.join(notes)}; peak RSS (VmHWM) {int(meta.get('eg_hwm_kib') or 0) / 1024:.1f} "
          f"MiB; denial events left out by its rate limit: {meta.get('eg_suppressed') or 0}; warning/error lines "
          f"in its log: {meta.get('eg_warnings') or 0}.")
    w(f"After the load, each path asked h001.cached.test, a new u.test name and an exfil name: {meta.get('post', '?')}")
    if meta.get("dead"):
        w(f"**Died during the run: {meta['dead']}** (see the daemon logs in logs/).")
    w("")
    summary = {f"{t}/{p}": f for (t, p), f in figs.items()}
    with open(os.path.join(res, "summary.json"), "w") as fo:
        json.dump({"meta": meta, "target": summary_target, "figures": summary}, fo, indent=1, default=str)


if __name__ == "__main__":
    main()
