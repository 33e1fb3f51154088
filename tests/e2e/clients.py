#!/usr/bin/env python3
"""Clients for the proxy tests, run in the fenced cgroup (stdlib only).

Prints exactly one JSON line on stdout (bytes as latin-1 text, so any byte
survives), except where noted. Every socket has a timeout; every loop is
bounded.

  raw ADDR PORT [--send TEXT] [--send-hex HEX] [--timeout S] [--family 4|6|dual]
      connect(), send the bytes (TEXT takes Python escapes: \\r\\n), read to
      EOF or timeout. {"ok", "connected", "received", "eof", "peer", "errno"}
      "alert" is set when the reply is a TLS alert record: [level, code].
  hello ADDR PORT [--sni NAME] [--ech] [--timeout S]
      sends a crafted TLS 1.3 ClientHello (with SNI NAME unless omitted; with
      an encrypted_client_hello extension 0xfe0d if --ech), reads the reply:
      {"alert": [level, code] | null, "record_type": N | null, ...}
  tls ADDR PORT --sni NAME --cafile CA [--path P] [--split] [--family 4|6|dual]
      a real TLS client (ssl.MemoryBIO): handshake, then GET P over HTTP/1.1
      (Connection: close), read the response. --split writes the ClientHello
      one byte per send() with TCP_NODELAY. {"ok", "status", "sha256",
      "body" (first 200 bytes), "peer", "version", "error", "alert"}
  idle ADDR PORT [--seconds S]
      connect(), print {"connected": true, "peer": ...}, send nothing, wait
      for the peer to close (or S seconds); then {"closed_after": secs,
      "received": ..., "eof": bool}
  peer ADDR PORT [--dual]
      connect() only; {"peer": getpeername(), "sock": getsockname()}.
      --dual: an AF_INET6 socket with IPV6_V6ONLY off (for ::ffff:a.b.c.d).
  concurrent ADDR PORT --sni NAME --cafile CA --n N --path P --sha256 HEX [--timeout S]
      N TLS connections at once (asyncio): all connect and handshake, wait
      until all are up, then each fetches P and checks its sha256. Raises
      RLIMIT_NOFILE to the hard limit first. {"n", "ok", "connected_at_once",
      "errors": {text: count}, "seconds"}
  hold ADDR PORT --n N --expect-closed K [--wait S] [--seconds S]
      a connection flood: N connect()s one after another (N <= 4096), sending
      nothing; waits until K of them are closed by the peer (or --wait S),
      prints {"opened", "open", "closed", "errors", "pid"}, then holds the
      rest until stdin closes or says "stop" (at most --seconds S). "status"
      on stdin prints {"open", "closed"} again.
  urllib URL [--cafile CA] [--method M] [--data TEXT] [--timeout S]
      urllib.request: {"status", "sha256", "body" (first 200), "headers",
      "error"}; an HTTPError still reports status, headers and body.
"""
import argparse
import asyncio
import hashlib
import json
import os
import resource
import select
import socket
import ssl
import struct
import sys
import time


def emit(obj):
    print(json.dumps(obj), flush=True)


def text(b):
    return b.decode("latin-1")


def errname(e):
    import errno as errno_mod
    if isinstance(e, socket.timeout):
        return "ETIMEDOUT"
    return errno_mod.errorcode.get(getattr(e, "errno", None) or 0, None)


def make_socket(addr, family):
    if family == "dual" or (family is None and ":" in addr):
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        if family == "dual":
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        return s
    return socket.socket(socket.AF_INET6 if family == "6" else socket.AF_INET, socket.SOCK_STREAM)


def peer_of(s):
    try:
        p = s.getpeername()
        return [p[0], p[1]]
    except OSError:
        return None


def read_all(s, timeout, limit=64 << 20):
    """Reads to EOF, timeout or limit. Returns (bytes, eof, errno)."""
    s.settimeout(timeout)
    got = bytearray()
    end = time.monotonic() + timeout
    for _ in range(1000000):
        if time.monotonic() > end:
            return bytes(got), False, "ETIMEDOUT"
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return bytes(got), False, "ETIMEDOUT"
        except OSError as e:
            return bytes(got), False, errname(e)
        if not chunk:
            return bytes(got), True, None
        got += chunk
        if len(got) >= limit:
            break
    return bytes(got), False, None


def alert_of(data):
    """[level, description] if data starts with a TLS alert record."""
    if len(data) >= 7 and data[0] == 21 and data[1] == 3:
        return [data[5], data[6]]
    return None


# -- raw --------------------------------------------------------------------

def do_raw(a):
    payload = b""
    if a.send is not None:
        payload += a.send.encode("latin-1").decode("unicode_escape").encode("latin-1")
    if a.send_hex:
        payload += bytes.fromhex(a.send_hex)
    s = make_socket(a.addr, a.family)
    with s:
        s.settimeout(a.timeout)
        try:
            s.connect((a.addr, a.port))
        except OSError as e:
            return {"ok": False, "connected": False, "errno": errname(e), "error": str(e), "pid": os.getpid()}
        peer = peer_of(s)
        try:
            if payload:
                s.sendall(payload)
        except OSError as e:
            return {"ok": False, "connected": True, "errno": errname(e), "error": str(e), "peer": peer,
                    "pid": os.getpid()}
        got, eof, err = read_all(s, a.timeout)
        return {"ok": True, "connected": True, "received": text(got), "eof": eof, "errno": err, "peer": peer,
                "alert": alert_of(got), "pid": os.getpid()}


# -- crafted ClientHello -----------------------------------------------------

def _ext(typ, body):
    return struct.pack(">HH", typ, len(body)) + body


def client_hello(sni=None, ech=False):
    exts = b""
    if sni:
        name = sni.encode()
        entry = b"\x00" + struct.pack(">H", len(name)) + name
        exts += _ext(0x0000, struct.pack(">H", len(entry)) + entry)
    exts += _ext(0x000a, struct.pack(">HHH", 4, 0x001d, 0x0017))               # supported_groups
    exts += _ext(0x000d, struct.pack(">HHHH", 6, 0x0403, 0x0804, 0x0401))     # signature_algorithms
    exts += _ext(0x002b, b"\x04\x03\x04\x03\x03")                              # supported_versions 1.3, 1.2
    exts += _ext(0x0033, struct.pack(">HHH", 36, 0x001d, 32) + os.urandom(32))  # key_share x25519
    if ech:
        # encrypted_client_hello (outer): type 0, kdf 1, aead 1, config id,
        # enc (32 bytes), payload.
        body = b"\x00" + struct.pack(">HH", 1, 1) + b"\x07" + struct.pack(">H", 32) + os.urandom(32)
        payload = os.urandom(128)
        body += struct.pack(">H", len(payload)) + payload
        exts += _ext(0xfe0d, body)
    suites = struct.pack(">HHHH", 6, 0x1301, 0x1302, 0xc02f)
    hello = (b"\x03\x03" + os.urandom(32) + b"\x20" + os.urandom(32) + suites + b"\x01\x00"
             + struct.pack(">H", len(exts)) + exts)
    hs = b"\x01" + struct.pack(">I", len(hello))[1:] + hello
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


def do_hello(a):
    s = make_socket(a.addr, None)
    with s:
        s.settimeout(a.timeout)
        try:
            s.connect((a.addr, a.port))
        except OSError as e:
            return {"ok": False, "connected": False, "errno": errname(e), "error": str(e), "pid": os.getpid()}
        s.sendall(client_hello(None if a.no_sni else a.sni, a.ech))
        s.settimeout(a.timeout)
        got = b""
        try:
            got = s.recv(65536)
        except OSError as e:
            return {"ok": True, "connected": True, "received": "", "errno": errname(e), "alert": None,
                    "record_type": None, "pid": os.getpid()}
        return {"ok": True, "connected": True, "received": text(got[:64]), "eof": not got, "alert": alert_of(got),
                "record_type": got[0] if got else None, "pid": os.getpid()}


# -- real TLS over MemoryBIO -------------------------------------------------

def _http_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = None
    if lines and lines[0].startswith(b"HTTP/"):
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            pass
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[text(k).strip().lower()] = text(v).strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out, rest = b"", body
        for _ in range(100000):
            size_line, _, rest = rest.partition(b"\r\n")
            try:
                n = int(size_line.split(b";")[0], 16)
            except ValueError:
                break
            if n == 0:
                break
            out += rest[:n]
            rest = rest[n + 2:]
        body = out
    return status, headers, body


def do_tls(a):
    ctx = ssl.create_default_context(cafile=a.cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=a.sni)
    s = make_socket(a.addr, a.family)
    res = {"ok": False, "pid": os.getpid(), "error": None, "alert": None}
    end = time.monotonic() + a.timeout
    with s:
        s.settimeout(a.timeout)
        try:
            s.connect((a.addr, a.port))
        except OSError as e:
            res.update(errno=errname(e), error=str(e), connected=False)
            return res
        res["connected"] = True
        res["peer"] = peer_of(s)
        if a.split:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def flush(split):
            data = out.read()
            if not data:
                return
            if split:
                for i in range(len(data)):
                    s.send(data[i:i + 1])
            else:
                s.sendall(data)

        first = True
        received = b""
        for _ in range(10000):  # handshake rounds, bounded
            try:
                obj.do_handshake()
                flush(False)
                break
            except ssl.SSLWantReadError:
                flush(a.split and first)
                first = False
                if time.monotonic() > end:
                    res["error"] = "handshake timeout"
                    return res
                try:
                    chunk = s.recv(65536)
                except OSError as e:
                    res.update(errno=errname(e), error=f"recv during handshake: {e}")
                    return res
                if not chunk:
                    res["error"] = "EOF during handshake"
                    res["alert"] = alert_of(received)
                    return res
                received += chunk
                inc.write(chunk)
            except ssl.SSLError as e:
                res["error"] = f"{type(e).__name__}: {e}"
                res["alert"] = alert_of(received)
                return res
        res["version"] = obj.version()
        req = f"GET {a.path} HTTP/1.1\r\nHost: {a.sni}\r\nConnection: close\r\n\r\n".encode()
        obj.write(req)
        flush(False)
        parts = []
        for _ in range(1000000):
            try:
                chunk = obj.read(65536)
                if not chunk:
                    break
                parts.append(chunk)
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            except ssl.SSLError as e:
                res["error"] = f"{type(e).__name__}: {e}"
                break
            if time.monotonic() > end:
                res["error"] = "read timeout"
                break
            try:
                chunk = s.recv(65536)
            except OSError as e:
                res["error"] = f"recv: {e}"
                break
            if not chunk:
                inc.write_eof()
                continue
            inc.write(chunk)
        status, headers, payload = _http_response(b"".join(parts))
        res.update(ok=status is not None and res["error"] is None, status=status, headers=headers,
                   sha256=hashlib.sha256(payload).hexdigest(), body=text(payload[:200]), length=len(payload))
        return res


# -- idle, peer ----------------------------------------------------------------

def do_idle(a):
    s = make_socket(a.addr, None)
    with s:
        s.settimeout(5)
        try:
            s.connect((a.addr, a.port))
        except OSError as e:
            emit({"connected": False, "errno": errname(e), "error": str(e), "pid": os.getpid()})
            return None
        t0 = time.monotonic()
        emit({"connected": True, "peer": peer_of(s), "pid": os.getpid()})
        got, eof, err = read_all(s, a.seconds)
        return {"closed_after": round(time.monotonic() - t0, 3), "received": text(got[:200]), "eof": eof,
                "errno": err, "alert": alert_of(got), "pid": os.getpid()}


def do_peer(a):
    s = make_socket(a.addr, "dual" if a.dual else None)
    with s:
        s.settimeout(5)
        try:
            s.connect((a.addr, a.port))
        except OSError as e:
            return {"ok": False, "errno": errname(e), "error": str(e), "pid": os.getpid()}
        sock = s.getsockname()
        return {"ok": True, "peer": peer_of(s), "sock": [sock[0], sock[1]], "pid": os.getpid()}


# -- hold --------------------------------------------------------------------------

def do_hold(a):
    n = min(a.n, 4096)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64 if hard == resource.RLIM_INFINITY else min(hard, n + 64)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    socks, errors = [], {}
    for _ in range(n):
        s = make_socket(a.addr, None)
        s.settimeout(5)
        try:
            s.connect((a.addr, a.port))
        except OSError as e:
            errors[errname(e) or str(e)] = errors.get(errname(e) or str(e), 0) + 1
            s.close()
            continue
        s.setblocking(False)
        socks.append(s)
    closed = set()

    def look(wait):
        """Marks the connections the peer closed (EOF or reset) within `wait` s."""
        live = {s.fileno(): s for s in socks if s.fileno() not in closed}
        if not live:
            return
        poller = select.poll()  # not select(): descriptors past 1024
        for fd in live:
            poller.register(fd, select.POLLIN)
        for fd, _ in poller.poll(int(wait * 1000)):
            s = live[fd]
            try:
                if s.recv(1) == b"":
                    closed.add(s.fileno())
            except (ConnectionResetError, ConnectionAbortedError):
                closed.add(s.fileno())
            except BlockingIOError:
                pass

    def report(**extra):
        return dict(extra, open=len(socks) - len(closed), closed=len(closed), pid=os.getpid())

    end = time.monotonic() + a.wait
    for _ in range(10000):  # bounded; each turn waits up to 0.1 s or sees a close
        if len(closed) >= a.expect_closed or time.monotonic() >= end:
            break
        look(min(0.1, max(0.0, end - time.monotonic())))
    look(0)
    emit(report(opened=len(socks), errors=errors))
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([sys.stdin], [], [], min(1.0, max(0.0, end - time.monotonic())))
        if not ready:
            continue
        line = sys.stdin.readline()
        if not line or line.strip() == "stop":
            break
        if line.strip() == "status":
            look(0)
            emit(report())
    for s in socks:
        s.close()
    return None


# -- concurrent ------------------------------------------------------------------

def do_concurrent(a):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(hard, a.n * 2 + 256)) if hard != resource.RLIM_INFINITY else a.n * 2 + 256
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    ctx = ssl.create_default_context(cafile=a.cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    errors = {}
    state = {"up": 0, "max_up": 0, "ok": 0}

    async def one(all_up):
        w = None
        try:
            r, w = await asyncio.open_connection(a.addr, a.port, ssl=ctx, server_hostname=a.sni)
            state["up"] += 1
            state["max_up"] = max(state["max_up"], state["up"])
            if state["up"] == a.n:
                all_up.set()
            await all_up.wait()
            w.write(f"GET {a.path} HTTP/1.1\r\nHost: {a.sni}\r\nConnection: close\r\n\r\n".encode())
            await w.drain()
            data = await r.read()
            status, _headers, body = _http_response(data)
            if status != 200:
                raise RuntimeError(f"status {status}")
            if hashlib.sha256(body).hexdigest() != a.sha256:
                raise RuntimeError(f"sha256 mismatch ({len(body)} bytes)")
            state["ok"] += 1
        except Exception as e:  # counted, reported
            key = f"{type(e).__name__}: {e}"[:160]
            errors[key] = errors.get(key, 0) + 1
            all_up.set()  # a failure: do not wait for the rest to come up
        finally:
            if w is not None:
                w.close()

    async def main():
        all_up = asyncio.Event()
        tasks = [asyncio.ensure_future(one(all_up)) for _ in range(a.n)]
        done, pending = await asyncio.wait(tasks, timeout=a.timeout)
        for t in pending:
            t.cancel()
        if pending:
            errors["timeout"] = errors.get("timeout", 0) + len(pending)

    t0 = time.monotonic()
    asyncio.run(main())
    return {"n": a.n, "ok": state["ok"], "connected_at_once": state["max_up"], "errors": errors,
            "seconds": round(time.monotonic() - t0, 2), "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            "pid": os.getpid()}


# -- urllib ------------------------------------------------------------------------

def do_urllib(a):
    import urllib.error
    import urllib.request
    ctx = ssl.create_default_context(cafile=a.cafile) if a.cafile else None
    req = urllib.request.Request(a.url, method=a.method, data=a.data.encode() if a.data is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=a.timeout, context=ctx) as r:
            body = r.read()
            status, headers = r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        body = e.read()
        status, headers = e.code, {k.lower(): v for k, v in e.headers.items()}
    except Exception as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}", "status": None, "pid": os.getpid()}
    return {"ok": True, "status": status, "headers": headers, "sha256": hashlib.sha256(body).hexdigest(),
            "body": text(body[:200]), "length": len(body), "pid": os.getpid()}


def parser():
    ap = argparse.ArgumentParser(prog="clients.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("raw")
    r.add_argument("addr")
    r.add_argument("port", type=int)
    r.add_argument("--send")
    r.add_argument("--send-hex")
    r.add_argument("--timeout", type=float, default=5.0)
    r.add_argument("--family", choices=["4", "6", "dual"])
    h = sub.add_parser("hello")
    h.add_argument("addr")
    h.add_argument("port", type=int)
    h.add_argument("--sni")
    h.add_argument("--no-sni", action="store_true")
    h.add_argument("--ech", action="store_true")
    h.add_argument("--timeout", type=float, default=5.0)
    t = sub.add_parser("tls")
    t.add_argument("addr")
    t.add_argument("port", type=int)
    t.add_argument("--sni", required=True)
    t.add_argument("--cafile", required=True)
    t.add_argument("--path", default="/small.txt")
    t.add_argument("--split", action="store_true")
    t.add_argument("--family", choices=["4", "6", "dual"])
    t.add_argument("--timeout", type=float, default=10.0)
    i = sub.add_parser("idle")
    i.add_argument("addr")
    i.add_argument("port", type=int)
    i.add_argument("--seconds", type=float, default=30.0)
    p = sub.add_parser("peer")
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("--dual", action="store_true")
    c = sub.add_parser("concurrent")
    c.add_argument("addr")
    c.add_argument("port", type=int)
    c.add_argument("--sni", required=True)
    c.add_argument("--cafile", required=True)
    c.add_argument("--n", type=int, default=100)
    c.add_argument("--path", default="/mid.bin")
    c.add_argument("--sha256", required=True)
    c.add_argument("--timeout", type=float, default=90.0)
    ho = sub.add_parser("hold")
    ho.add_argument("addr")
    ho.add_argument("port", type=int)
    ho.add_argument("--n", type=int, required=True)
    ho.add_argument("--expect-closed", type=int, default=0)
    ho.add_argument("--wait", type=float, default=10.0)
    ho.add_argument("--seconds", type=float, default=60.0)
    u = sub.add_parser("urllib")
    u.add_argument("url")
    u.add_argument("--cafile")
    u.add_argument("--method")
    u.add_argument("--data")
    u.add_argument("--timeout", type=float, default=10.0)
    return ap


def main():
    a = parser().parse_args()
    fn = {"raw": do_raw, "hello": do_hello, "tls": do_tls, "idle": do_idle, "peer": do_peer,
          "concurrent": do_concurrent, "urllib": do_urllib, "hold": do_hold}[a.cmd]
    out = fn(a)
    if out is not None:
        emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
