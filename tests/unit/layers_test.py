#!/usr/bin/env python3
"""The include graph of userspace/ runs one way: a directory includes only
its own headers and those of directories in lower layers. Peers (the proxy
and the resolver) do not include each other. The same order is drawn in
docs/architecture.md; a new directory must be placed here first."""

import pathlib
import re
import sys

# Lowest first; directories in one row are peers.
LAYERS = [
    ["common"],             # Result, the loop, addresses, DNS numbers
    ["policy", "systemd"],  # the policy model and compiler; unit cgroups
    ["events"],             # Event values, formats, the hub
    ["decide"],             # the userspace twin of bpf/decide.bpf.h, the recorder
    ["bpf"],                # loading, pins, maps (the steered-flow table)
    ["attachment"],         # an attachment's state on disk: cgroup, lock, pidfile, recorded policy, stale pins
    ["proxy", "dns"],       # the transparent proxy and the resolver: peers
    ["daemon"],             # the Daemon `attach` runs: wiring, ring, re-fencer, metrics
    ["cli"],                # the verbs
]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"', re.M)


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parents[2]) / "userspace"
    rank = {d: i for i, row in enumerate(LAYERS) for d in row}
    bad = []
    dirs = sorted(p.name for p in root.iterdir() if p.is_dir())
    for d in dirs:
        if d not in rank:
            bad.append(f"userspace/{d}/ is in no layer: add it to LAYERS in {pathlib.Path(__file__).name}")
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".h", ".cpp") or not path.is_file():
            continue
        here = path.relative_to(root).parts[0]
        for target in INCLUDE.findall(path.read_text()):
            if target == here or target not in rank or here not in rank:
                continue  # own headers; a directory outside userspace/ (bpf headers come without one)
            if rank[target] >= rank[here]:
                kind = "a peer" if rank[target] == rank[here] else "a higher layer"
                bad.append(f"{path.relative_to(root.parent)} includes {target}/, {kind}")
    for line in bad:
        print(line)
    if not bad:
        print(f"{len(dirs)} directories, includes run downward: " + " < ".join("|".join(r) for r in LAYERS))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
