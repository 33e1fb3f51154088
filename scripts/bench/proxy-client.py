#!/usr/bin/env python3
"""Bounded clients for scripts/bench-proxy.sh (Python stdlib only).

  latency  Interleaved latency of NEW connections. Each round takes one sample per
           target, in a freshly shuffled order: TCP connect [+ TLS handshake] + one
           GET with "Connection: close" + the whole response. Targets are NAME=IP; the
           SNI/Host is lat-NAME.test. Targets listed in --fenced are sampled by a forked
           child that first moved itself into the fenced cgroup (so its sockets
           are created there, where egressd's hooks steer them) through --fenced-procs-fd,
           a descriptor the caller opened on that cgroup's cgroup.procs (`ip netns exec`
           remounts /sys, so the path itself may not be visible here); all others by this
           process, which stays in its own cgroup. Appends "total connect handshake" (ms)
           per good sample to OUTDIR/PREFIXNAME.txt. Bounded by --rounds and --max-time.
  idle     Opens up to N keep-alive connections (each one GET, so a proxy has dialled
           upstream and relayed), waits --settle s, sums VmRSS over --pids, closes all.
           Bounded by --max-time for the set-up. Prints one JSON line.
  reuse    Two TLS connections, the second offering the first's session: prints
           "full" if the server did a full handshake both times, "resumed" otherwise.

Certificates are not verified (h2load and wrk do not either), so every path does the
same client work.
"""
import argparse
import json
import os
import random
import selectors
import socket
import ssl
import sys
import time


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def get_request(host, path, close):
    head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench-proxy\r\nAccept: */*\r\n"
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode()


def content_length(head):
    status = int(head.split(b"\r\n", 1)[0].split()[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, length


def fetch(sock):
    """Reads one response (Content-Length framed). Returns the status."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("eof before the end of the head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    status, length = content_length(head)
    got = len(body)
    while got < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("eof in the body")
        got += len(chunk)
    return status


def sample(ip, port, host, ctx, request):
    """One new connection. Returns (total, connect, handshake-done) in ms."""
    sock = None
    try:
        t0 = time.perf_counter()
        sock = socket.create_connection((ip, port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t1 = time.perf_counter()
        if ctx is not None:
            sock = ctx.wrap_socket(sock, server_hostname=host)
        t2 = time.perf_counter()
        sock.sendall(request)
        status = fetch(sock)
        t3 = time.perf_counter()
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        return (t3 - t0) * 1e3, (t1 - t0) * 1e3, (t2 - t0) * 1e3
    finally:
        if sock is not None:
            sock.close()


class FencedSampler:
    """A child process that joins a cgroup, then takes samples when asked over a pipe."""

    def __init__(self, procs_fd, port, path, ctx):
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 0
            try:
                os.close(req_w)
                os.close(rep_r)
                os.write(procs_fd, str(os.getpid()).encode())
                os.close(procs_fd)
                requests = os.fdopen(req_r, "r")
                replies = os.fdopen(rep_w, "w")
                for line in requests:
                    ip, host = line.split()
                    try:
                        t = sample(ip, port, host, ctx, get_request(host, path, True))
                        replies.write("%.4f %.4f %.4f\n" % t)
                    except Exception as e:  # noqa: BLE001 - any failure is one bad sample
                        replies.write(f"err {type(e).__name__}\n")
                    replies.flush()
            except Exception as e:  # noqa: BLE001
                print(f"fenced sampler: {type(e).__name__}: {e}", file=sys.stderr)
                code = 1
            finally:
                os._exit(code)
        os.close(req_r)
        os.close(rep_w)
        os.close(procs_fd)
        self.requests = os.fdopen(req_w, "w")
        self.replies = os.fdopen(rep_r, "r")

    def sample(self, ip, host):
        self.requests.write(f"{ip} {host}\n")
        self.requests.flush()
        line = self.replies.readline()
        if not line:
            raise EOFError("fenced sampler exited")
        fields = line.split()
        if fields[0] == "err":
            raise RuntimeError(" ".join(fields[1:]))
        return tuple(float(x) for x in fields)

    def close(self):
        self.requests.close()
        os.waitpid(self.pid, 0)


def latency(a):
    ctx = tls_context() if a.tls else None
    targets = [t.split("=", 1) for t in a.targets.split()]
    fenced = set(a.fenced.split())
    child = FencedSampler(a.fenced_procs_fd, a.port, a.path, ctx) if fenced else None
    files = {name: open(os.path.join(a.outdir, f"{a.prefix}{name}.txt"), "a") for name, _ in targets}
    good = {name: 0 for name, _ in targets}
    bad = {name: 0 for name, _ in targets}
    errors = {}
    rng = random.Random(a.seed)
    end = time.monotonic() + a.max_time
    rounds = 0
    while rounds < a.rounds and time.monotonic() < end:
        order = list(targets)
        rng.shuffle(order)
        for name, ip in order:
            host = f"lat-{name}.test"
            try:
                if name in fenced:
                    t = child.sample(ip, host)
                else:
                    t = sample(ip, a.port, host, ctx, get_request(host, a.path, True))
                files[name].write("%.4f %.4f %.4f\n" % t)
                good[name] += 1
            except Exception as e:  # noqa: BLE001
                bad[name] += 1
                errors[name] = str(e)[:120]
            if a.gap_ms > 0:
                time.sleep(a.gap_ms / 1e3)
        rounds += 1
    for f in files.values():
        f.close()
    if child is not None:
        try:
            child.close()
        except OSError:
            pass
    print(json.dumps({"rounds": rounds, "ok": good, "err": bad, "last_error": errors}))


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def idle(a):
    """A selector-driven state machine per connection: connect, [handshake], GET, read
    the response; at most --conc connections in set-up at a time."""
    ctx = tls_context() if a.tls else None
    request = get_request(a.host, a.path, False)
    pids = [int(p) for p in a.pids.split()]
    rss_before = rss_kib(pids)
    sel = selectors.DefaultSelector()
    held = []
    failed = 0
    opened = 0
    pending = 0

    def drop(state):
        nonlocal failed, pending
        try:
            sel.unregister(state["sock"])
        except (KeyError, ValueError):
            pass
        state["sock"].close()
        failed += 1
        pending -= 1

    t0 = time.monotonic()
    end = t0 + a.max_time
    while (opened < a.n or pending) and time.monotonic() < end:
        while opened < a.n and pending < a.conc:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex((a.ip, a.port))
            sel.register(sock, selectors.EVENT_WRITE, {"sock": sock, "step": "connect", "buf": b""})
            opened += 1
            pending += 1
        for key, _ in sel.select(timeout=0.2):
            st = key.data
            sock = st["sock"]
            try:
                if st["step"] == "connect":
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        drop(st)
                        continue
                    if ctx is None:
                        st["step"] = "send"
                    else:
                        sel.unregister(sock)
                        sock = ctx.wrap_socket(sock, server_hostname=a.host, do_handshake_on_connect=False)
                        st["sock"] = sock
                        sel.register(sock, selectors.EVENT_WRITE, st)
                        st["step"] = "handshake"
                if st["step"] == "handshake":
                    try:
                        sock.do_handshake()
                        st["step"] = "send"
                    except ssl.SSLWantReadError:
                        sel.modify(sock, selectors.EVENT_READ, st)
                        continue
                    except ssl.SSLWantWriteError:
                        sel.modify(sock, selectors.EVENT_WRITE, st)
                        continue
                if st["step"] == "send":
                    sock.send(request)
                    st["step"] = "read"
                    sel.modify(sock, selectors.EVENT_READ, st)
                    continue
                if st["step"] == "read":
                    try:
                        chunk = sock.recv(65536)
                    except (ssl.SSLWantReadError, BlockingIOError):
                        continue
                    if not chunk:
                        drop(st)
                        continue
                    st["buf"] += chunk
                    if b"\r\n\r\n" in st["buf"]:
                        head, _, body = st["buf"].partition(b"\r\n\r\n")
                        status, length = content_length(head)
                        if len(body) >= length:
                            sel.unregister(sock)
                            pending -= 1
                            if status == 200:
                                held.append(sock)
                            else:
                                sock.close()
                                failed += 1
            except (OSError, ValueError):
                drop(st)
    capped = opened < a.n or pending > 0
    for key in list(sel.get_map().values()):
        key.data["sock"].close()
    setup_s = time.monotonic() - t0
    time.sleep(a.settle)
    # a connection is alive if nothing (EOF, RST, data) is pending on it
    probe = selectors.DefaultSelector()
    for sock in held:
        probe.register(sock, selectors.EVENT_READ)
    readable = len(probe.select(timeout=0)) if held else 0
    rss_idle = rss_kib(pids)
    for sock in held:
        sock.close()
    print(json.dumps({"target": a.n, "established": len(held), "alive": len(held) - readable,
                      "errors": failed, "capped": capped, "setup_s": round(setup_s, 2),
                      "rss_before_kib": rss_before, "rss_idle_kib": rss_idle}))


def reuse(a):
    ctx = tls_context()
    s1 = ctx.wrap_socket(socket.create_connection((a.ip, a.port), timeout=5), server_hostname=a.host)
    s1.sendall(get_request(a.host, a.path, True))
    fetch(s1)
    session = s1.session
    s1.close()
    s2 = ctx.wrap_socket(socket.create_connection((a.ip, a.port), timeout=5), server_hostname=a.host,
                         session=session)
    s2.sendall(get_request(a.host, a.path, True))
    fetch(s2)
    print("resumed" if s2.session_reused else "full", s2.version(), s2.cipher()[0])
    s2.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["latency", "idle", "reuse"])
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--path", default="/small")
    ap.add_argument("--ip", default="203.0.113.10")
    ap.add_argument("--host", default="a.test")
    ap.add_argument("--targets", default="")
    ap.add_argument("--fenced", default="", help="latency: targets sampled from inside the fenced cgroup")
    ap.add_argument("--fenced-procs-fd", type=int, default=-1,
                    help="latency: a descriptor open for writing on the fenced cgroup's cgroup.procs")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--gap-ms", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--outdir", default=".")
    ap.add_argument("--prefix", default="")
    ap.add_argument("-n", type=int, default=1000, help="idle: connections")
    ap.add_argument("--conc", type=int, default=64)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--pids", default="")
    ap.add_argument("--max-time", type=float, default=10.0)
    a = ap.parse_args()
    {"latency": latency, "idle": idle, "reuse": reuse}[a.mode](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
