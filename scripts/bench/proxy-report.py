#!/usr/bin/env python3
"""Report of scripts/bench-proxy.sh: RESULTS_DIR -> markdown on stdout, summary.json.

Reads raw.csv (one row per load run), lat/<section>-<path>.txt (every latency sample),
idle.jsonl (idle-connection RSS) and meta.json (machine, versions, knobs).
  conn/s, MB/s   median over repetitions; ratio = path / direct
  latency        percentiles of all samples pooled; added = path - direct (same percentile)
  proxy CPU      sum over the runs of a kind: s per GB relayed (downloads), us per new
                 connection (all new-connection runs, c=1 and c=64 pooled; also each alone);
                 from the proxy's cgroup (cpu.stat usage_usec)
  idle RSS       (RSS with N idle connections - RSS of the fresh proxy) / N
"""
import csv
import json
import os
import statistics
import sys

SECTIONS = [("tls", "TLS :443"), ("http", "plain HTTP :80")]
LABEL = {
    "direct": "direct (no proxy)",
    "haproxy": "haproxy 2.6, tcp mode + SNI/Host allowlist",
    "egressd": "egressd (BPF steering + its proxy)",
}
ORDER = ["direct", "haproxy", "egressd"]

# (key, description, applies to sections, comparison, limit)
TARGETS = [
    ("cps1_ratio", "new TLS conn/s, c=1, ≥ 0.85× direct", ("tls",), ">=", 0.85),
    ("cps64_ratio", "new TLS conn/s, c=64, ≥ 0.85× direct", ("tls",), ">=", 0.85),
    ("bulk1_ratio", "1-stream download ≥ 0.85× direct", ("tls", "http"), ">=", 0.85),
    ("bulk16_ratio", "16-stream download ≥ 0.85× direct", ("tls", "http"), ">=", 0.85),
    ("lat_p50_added", "added latency p50 ≤ 0.2 ms", ("tls", "http"), "<=", 0.2),
    ("cpu_us_conn", "proxy CPU ≤ 250 µs per new TLS connection", ("tls",), "<=", 250),
    ("cpu_s_gb", "proxy CPU ≤ 0.5 s/GB", ("tls", "http"), "<=", 0.5),
    ("idle_kib_conn", "≤ 4 KiB RSS per idle connection", ("tls", "http"), "<=", 4.0),
]


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
            for k in ("n", "ok", "errors", "bytes", "origin_opens", "proxy_cpu_us", "origin_cpu_us", "client_cpu_us"):
                r[k] = int(float(r[k]))
            r["seconds"] = float(r["seconds"])
            rows.append(r)
    lat = {}
    latdir = os.path.join(res, "lat")
    for sec, _ in SECTIONS:
        for p in ORDER:
            fn = os.path.join(latdir, f"{sec}-{p}.txt")
            if os.path.exists(fn):
                with open(fn) as f:
                    lat[(sec, p)] = [float(line.split()[0]) for line in f if line.strip()]
    lat_err = {}
    for sec, _ in SECTIONS:
        fn = os.path.join(latdir, f"summary-{sec}.jsonl")
        if os.path.exists(fn):
            with open(fn) as f:
                for line in f:
                    try:
                        d = json.loads(line)
                    except ValueError:
                        continue
                    for p, n in d.get("err", {}).items():
                        lat_err[(sec, p)] = lat_err.get((sec, p), 0) + n
    idle = {}
    fn = os.path.join(res, "idle.jsonl")
    if os.path.exists(fn):
        with open(fn) as f:
            for line in f:
                d = json.loads(line)
                if d.get("result"):
                    idle[(d["section"], d["path"])] = d["result"]
    meta = {}
    fn = os.path.join(res, "meta.json")
    if os.path.exists(fn):
        with open(fn) as f:
            meta = json.load(f)
    return rows, lat, lat_err, idle, meta


def figures(rows, lat, idle):
    out = {}
    for sec, _ in SECTIONS:
        for p in ORDER:
            mine = [r for r in rows if r["section"] == sec and r["path"] == p]
            if not mine:
                continue
            f = {"reps": {}}
            for test in ("cps1", "cps64"):
                runs = [r for r in mine if r["test"] == test and r["seconds"] > 0]
                rates = [r["ok"] / r["seconds"] for r in runs]
                f[test] = statistics.median(rates) if rates else None
                f["reps"][test] = rates
                f[test + "_errors"] = sum(max(r["errors"], 0) for r in runs)
                ok = sum(r["ok"] for r in runs)
                f[test + "_accepts_per_conn"] = (sum(r["origin_opens"] for r in runs) / ok) if ok else None
            for test in ("bulk1", "bulk16"):
                runs = [r for r in mine if r["test"] == test and r["seconds"] > 0]
                mbs = [r["bytes"] / r["seconds"] / 1e6 for r in runs]
                f[test] = statistics.median(mbs) if mbs else None
                f["reps"][test] = mbs
                f[test + "_errors"] = sum(max(r["errors"], 0) for r in runs)
            cps = [r for r in mine if r["test"].startswith("cps")]
            bulk = [r for r in mine if r["test"].startswith("bulk")]
            conns = sum(r["ok"] for r in cps)
            gb = sum(r["bytes"] for r in bulk) / 1e9
            if p != "direct":
                f["cpu_us_conn"] = sum(r["proxy_cpu_us"] for r in cps) / conns if conns else None
                for test in ("cps1", "cps64"):
                    runs = [r for r in cps if r["test"] == test]
                    n = sum(r["ok"] for r in runs)
                    f[test + "_cpu_us_conn"] = sum(r["proxy_cpu_us"] for r in runs) / n if n else None
                f["cpu_s_gb"] = sum(r["proxy_cpu_us"] for r in bulk) / 1e6 / gb if gb else None
            f["origin_us_conn"] = sum(r["origin_cpu_us"] for r in cps) / conns if conns else None
            f["client_us_conn"] = sum(r["client_cpu_us"] for r in cps) / conns if conns else None
            f["origin_s_gb"] = sum(r["origin_cpu_us"] for r in bulk) / 1e6 / gb if gb else None
            f["client_s_gb"] = sum(r["client_cpu_us"] for r in bulk) / 1e6 / gb if gb else None
            samples = lat.get((sec, p), [])
            f["lat_n"] = len(samples)
            f["lat_p50"] = pct(samples, 0.5)
            f["lat_p99"] = pct(samples, 0.99)
            i = idle.get((sec, p))
            if i and i.get("established"):
                f["idle"] = i
                f["idle_kib_conn"] = (i["rss_idle_kib"] - i["rss_before_kib"]) / i["established"]
            out[(sec, p)] = f
    for sec, _ in SECTIONS:
        d = out.get((sec, "direct"))
        if not d:
            continue
        for p in ORDER[1:]:
            f = out.get((sec, p))
            if not f:
                continue
            for test in ("cps1", "cps64", "bulk1", "bulk16"):
                f[test + "_ratio"] = f[test] / d[test] if f.get(test) and d.get(test) else None
            for q in ("p50", "p99"):
                a, b = f.get("lat_" + q), d.get("lat_" + q)
                f[f"lat_{q}_added"] = a - b if a is not None and b is not None else None
    return out


def verdict(v, op, limit):
    if v is None:
        return None
    return v >= limit if op == ">=" else v <= limit


def cell_target(f, key, op, limit):
    if f is None or f.get(key) is None:
        return "n/a"
    v = f[key]
    if key.endswith("_ratio"):
        s = f"{v:.3f}×"
    elif key == "lat_p50_added":
        s = f"{v:+.2f} ms"
    elif key == "cpu_us_conn":
        s = f"{v:,.0f} µs"
    elif key == "cpu_s_gb":
        s = f"{v:.2f} s/GB"
    else:
        s = f"{v:.1f} KiB"
    return f"{s} {'**met**' if verdict(v, op, limit) else '**missed**'}"


def main():
    res = sys.argv[1]
    rows, lat, lat_err, idle, meta = load(res)
    figs = figures(rows, lat, idle)
    w = print
    w(f"Machine: {meta.get('nproc', '?')} vCPU {meta.get('cpu', '')}, {meta.get('mem', '')}, kernel "
      f"{meta.get('kernel', '?')}, {meta.get('os', '')}. Whole machine {meta.get('busy', '?')}% busy during the run "
      f"(all tenants, this benchmark included), of which about {meta.get('others', '?')}% of the machine was "
      f"other processes (busy CPU minus this benchmark's cgroups; the benchmark's own tools outside them, "
      f"ip/nft/bash, count as other); {meta.get('steal', '?')}% steal; loadavg at start "
      f"{meta.get('load0', '?').split(' ')[0]}. {meta.get('reps', '?')} repetitions × {meta.get('dur', '?')} s per "
      f"load run, {meta.get('lat_rounds', '?')} latency rounds per repetition, {int(meta.get('idle_n', 0)):,} idle "
      f"connections (fd hard limit {int(meta.get('nofile', 0)):,}); wall time {meta.get('wall', '?')} s.")
    w("")
    w(f"Tools: haproxy {meta.get('haproxy', '?')}, origin nginx {meta.get('nginx', '?')}, h2load {meta.get('h2load', '?')}, "
      f"wrk {meta.get('wrk', '?')}, OpenSSL {meta.get('openssl', '?')}, Python {meta.get('python', '?')}. "
      f"TLS as negotiated by h2load: {meta.get('tlsinfo') or '?'}; origin resumption check: {meta.get('reuse', '?')}. "
      f"egressd: `{meta.get('egressd', '?')}` (built {meta.get('built') or '?'}), source at {meta.get('commit', '?')}"
      f"{' (+ uncommitted changes under bpf/ userspace/)' if meta.get('dirty', '0') not in ('0', '') else ''}.")
    w("")
    for sec, title in SECTIONS:
        if not any((sec, p) in figs for p in ORDER):
            continue
        w(f"#### {title}")
        w("")
        w("| path | new conn/s c=1 | new conn/s c=64 | latency p50 ms (added) | p99 ms (added) | 1-stream MB/s "
          "| 16-stream MB/s | proxy CPU s/GB | proxy CPU µs/conn (c=1 / c=64) | proxy RSS MiB fresh → idle (KiB/conn) |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for p in ORDER:
            f = figs.get((sec, p))
            if not f:
                continue

            def rate(test):
                v = f.get(test)
                if v is None:
                    return "n/a"
                r = 1.0 if p == "direct" else f.get(test + "_ratio")
                return f"{v:,.0f} ({r:.2f}×)" if r is not None else f"{v:,.0f}"

            def latc(q):
                v = f.get("lat_" + q)
                if v is None:
                    return "n/a"
                a = f.get(f"lat_{q}_added")
                return f"{v:.2f}" + (f" ({a:+.2f})" if a is not None else "")

            cpu_cell = "n/a"
            if f.get("cpu_us_conn") is not None:
                cpu_cell = (f"{f['cpu_us_conn']:,.0f} ({fmt(f.get('cps1_cpu_us_conn'))} / "
                            f"{fmt(f.get('cps64_cpu_us_conn'))})")
            idle_cell = "—"
            if f.get("idle"):
                i = f["idle"]
                idle_cell = (f"{i['rss_before_kib'] / 1024:.1f} → {i['rss_idle_kib'] / 1024:.1f} @{i['established']:,}"
                             f" ({f['idle_kib_conn']:.1f})")
                if i.get("alive") is not None and i["alive"] < i["established"]:
                    idle_cell += f" [{i['established'] - i['alive']} closed]"
                if i.get("capped"):
                    idle_cell += f" [set-up capped at {i['setup_s']:.0f} s]"
            w(f"| {LABEL[p]} | {rate('cps1')} | {rate('cps64')} | {latc('p50')} | {latc('p99')} | {rate('bulk1')} "
              f"| {rate('bulk16')} | {fmt(f.get('cpu_s_gb'), '.2f')} | {cpu_cell} | {idle_cell} |")
        w("")
    # targets
    cols = [(p, sec) for p in ("egressd", "haproxy") for sec, _ in SECTIONS if (sec, p) in figs]
    if cols:
        w("#### Targets (ratios to direct in the same run)")
        w("")
        w("| target | " + " | ".join(f"{p} {sec.upper()}" for p, sec in cols) + " |")
        w("|---|" + "---|" * len(cols))
        for key, desc, secs, op, limit in TARGETS:
            cells = []
            for p, sec in cols:
                cells.append(cell_target(figs.get((sec, p)), key, op, limit) if sec in secs else "—")
            w(f"| {desc} | " + " | ".join(cells) + " |")
        w("")
        info = []
        for p, sec in cols:
            f = figs[(sec, p)]
            if sec == "http":
                info.append(f"{p} HTTP: new conn/s {fmt(f.get('cps1_ratio'), '.2f')}× (c=1), "
                            f"{fmt(f.get('cps64_ratio'), '.2f')}× (c=64), {fmt(f.get('cpu_us_conn'))} µs proxy CPU per connection")
        if info:
            w("No target for plain HTTP connection rates; for information: " + "; ".join(info) + ".")
            w("")
    # spread, errors, checks
    w("#### Spread over the repetitions (min–max), errors and checks")
    w("")
    w("| section | path | conn/s c=1 | conn/s c=64 | 1-stream MB/s | 16-stream MB/s | errors (cps/bulk) "
      "| origin accepts per conn | latency samples (errors) | origin CPU µs/conn | client CPU µs/conn | origin CPU s/GB | client CPU s/GB |")
    w("|---|---|---|---|---|---|---|---|---|---:|---:|---:|---:|")
    for sec, _ in SECTIONS:
        for p in ORDER:
            f = figs.get((sec, p))
            if not f:
                continue

            def spread(test):
                xs = f["reps"].get(test) or []
                return f"{min(xs):,.0f}–{max(xs):,.0f}" if xs else "n/a"

            errs = f"{f['cps1_errors'] + f['cps64_errors']}/{f['bulk1_errors'] + f['bulk16_errors']}"
            acc = "/".join(fmt(f.get(t + "_accepts_per_conn"), ".2f") for t in ("cps1", "cps64"))
            w(f"| {sec} | {p} | {spread('cps1')} | {spread('cps64')} | {spread('bulk1')} | {spread('bulk16')} | {errs} "
              f"| {acc} | {f['lat_n']} ({lat_err.get((sec, p), 0)}) | {fmt(f.get('origin_us_conn'))} "
              f"| {fmt(f.get('client_us_conn'))} | {fmt(f.get('origin_s_gb'), '.2f')} | {fmt(f.get('client_s_gb'), '.2f')} |")
    w("")
    rows_idle = [(sec, p, figs[(sec, p)]["idle"]) for sec, _ in SECTIONS for p in ORDER
                 if (sec, p) in figs and figs[(sec, p)].get("idle")]
    if rows_idle:
        w("| idle test | connections held / asked | set-up s | proxy CPU s (set-up + 2 s idle + close) | RSS KiB fresh → idle |")
        w("|---|---:|---:|---:|---|")
        for sec, p, i in rows_idle:
            cpu = i.get("proxy_cpu_us")
            w(f"| {sec} {p} | {i['established']:,} / {i['target']:,} | {i['setup_s']:.1f}{' (capped)' if i.get('capped') else ''} "
              f"| {fmt(cpu / 1e6 if cpu is not None else None, '.2f')} | {i['rss_before_kib']:,} → {i['rss_idle_kib']:,} |")
        w("")
    summary = {f"{sec}/{p}": {k: v for k, v in f.items() if k != "reps"} | {"reps": f["reps"]}
               for (sec, p), f in figs.items()}
    with open(os.path.join(res, "summary.json"), "w") as fo:
        json.dump({"meta": meta, "figures": summary}, fo, indent=1)


if __name__ == "__main__":
    main()
