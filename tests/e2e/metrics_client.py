"""Reading egressd's Prometheus endpoint in e2e tests: fetch with curl, parse
the text format strictly (HELP/TYPE before samples, escaped label values)."""
import re
import subprocess

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ([0-9.eE+-]+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def _unescape(v):
    return re.sub(r'\\(.)', lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], v)


def parse(text):
    """{(name, frozenset(labels.items())): float}; raises ValueError on
    anything that is not well-formed exposition text."""
    types, out, family = {}, {}, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            family = line.split(" ", 3)[2]
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            if name != family or kind not in ("counter", "gauge"):
                raise ValueError(f"bad TYPE line: {line}")
            types[name] = kind
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"not a sample: {line!r}")
        name, labels_text, value = m.groups()
        if name != family or name not in types:
            raise ValueError(f"sample without its HELP/TYPE: {line}")
        labels, pos = {}, 0
        while labels_text and pos < len(labels_text):
            lm = _LABEL.match(labels_text, pos)
            if not lm:
                raise ValueError(f"bad labels: {line}")
            labels[lm.group(1)] = _unescape(lm.group(2))
            pos = lm.end()
        out[(name, frozenset(labels.items()))] = float(value)
    return out


def value(samples, name, **labels):
    """The sample of `name` whose labels include `labels` (0 if absent: a
    decision series appears once nonzero)."""
    want = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and want <= set(ls)]
    if len(found) > 1:
        raise AssertionError(f"{name}{labels} matches {len(found)} series")
    return found[0] if found else 0.0


def curl(args, netns=None, timeout=15):
    """curl -sS -i ARGS (in netns, if given: never inside the fenced cgroup);
    returns (status code, headers text, body)."""
    cmd = (["nsenter", f"--net=/run/netns/{netns}", "--"] if netns else []) + \
        ["curl", "--silent", "--show-error", "--max-time", "5", "--include", *args]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> {r.returncode}: {r.stderr}")
    head, _, body = r.stdout.replace("\r\n", "\n").partition("\n\n")
    status = int(head.split("\n", 1)[0].split()[1])
    return status, head, body
