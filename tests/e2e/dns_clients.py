#!/usr/bin/env python3
"""DNS clients for the resolver tests, run in the fenced cgroup (stdlib only).

Prints exactly one JSON line on stdout. Every socket has a timeout and every
loop is bounded.

  query SERVER NAME [--type T] [--tcp] [--connect] [--dual] [--no-edns] [--timeout S]
      one query to SERVER port 53 (UDP unconnected sendto/recvfrom unless
      --connect or --tcp). {"rcode": "NOERROR", "answers": [[name, type,
      data], ...], "from": [addr, port] (recvfrom's source, or getpeername
      for --connect/--tcp), "tc": bool, "id_ok": bool, "error": null}.
      --dual: an AF_INET6 socket with IPV6_V6ONLY off (for ::ffff:a.b.c.d).
  burst SERVER ZONE [--n N] [--timeout S]
      N queries, one after the other on one unconnected UDP socket, for
      <random label>.ZONE (types A and TXT in turn): what a DNS tunnel
      sends. {"n", "names", "rcodes": {rcode: count}, "timeouts", "seconds"}
  raw SERVER --hex HEX --then NAME [--wait S] [--tcp]
      sends the bytes as one datagram on a connected socket and right after
      them a query for NAME (A); {"stray": [hex of every datagram before
      NAME's answer], "then": NAME's answer like query's}. --tcp: the bytes
      as one frame, then up to S for a reply or EOF ("reply", "eof"), then
      NAME on the same connection or, if closed, a new one.
  getaddrinfo NAME [--family 4|6]
      socket.getaddrinfo(NAME, 443): {"addresses": [...], "error": null |
      "gaierror: ..."}
"""
import argparse
import json
import os
import secrets
import socket
import struct
import sys
import time

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33,
         "HTTPS": 65, "ANY": 255, "AXFR": 252}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def emit(obj):
    print(json.dumps(obj), flush=True)


def errname(e):
    import errno as errno_mod
    if isinstance(e, socket.timeout):
        return "ETIMEDOUT"
    if getattr(e, "errno", None):
        return errno_mod.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        b = label.encode()
        out += bytes([len(b)]) + b
    return out + b"\x00"


def build_query(name, qtype, qid, edns=True):
    flags = 0x0100  # RD
    head = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1 if edns else 0)
    body = encode_name(name) + struct.pack(">HH", TYPES.get(qtype, 0) or int(qtype), 1)
    if edns:
        body += b"\x00" + struct.pack(">HHIH", 41, 1232, 0, 0)  # OPT, udp 1232
    return head + body


def read_name(msg, off, depth=0):
    labels = []
    for _ in range(128):
        if off >= len(msg) or depth > 16:
            raise ValueError("bad name")
        n = msg[off]
        if n == 0:
            return ".".join(labels), off + 1
        if n & 0xC0 == 0xC0:
            ptr = struct.unpack(">H", msg[off:off + 2])[0] & 0x3FFF
            rest, _ = read_name(msg, ptr, depth + 1)
            return ".".join(labels + ([rest] if rest else [])), off + 2
        labels.append(msg[off + 1:off + 1 + n].decode("latin-1"))
        off += 1 + n
    raise ValueError("name too long")


def parse_response(msg, qid):
    if len(msg) < 12:
        return {"error": f"short reply ({len(msg)} bytes)"}
    rid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", msg[:12])
    out = {"id_ok": rid == qid, "qr": bool(flags & 0x8000), "tc": bool(flags & 0x0200),
           "rcode": RCODES.get(flags & 0xF, str(flags & 0xF)), "answers": [], "authority": 0, "error": None}
    off = 12
    try:
        for _ in range(qd):
            _, off = read_name(msg, off)
            off += 4
        for i in range(an + ns + ar):
            name, off = read_name(msg, off)
            typ, cls, ttl, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
            off += 10
            rdata = msg[off:off + rdlen]
            off += rdlen
            if i >= an:
                if i < an + ns:
                    out["authority"] += 1
                continue
            if typ == 1:
                data = socket.inet_ntop(socket.AF_INET, rdata)
            elif typ == 28:
                data = socket.inet_ntop(socket.AF_INET6, rdata)
            elif typ == 5:
                data = read_name(msg, off - rdlen)[0]
            elif typ == 16:
                parts, j = [], 0
                while j < len(rdata):
                    parts.append(rdata[j + 1:j + 1 + rdata[j]].decode("latin-1"))
                    j += 1 + rdata[j]
                data = "".join(parts)
            else:
                data = rdata.hex()
            out["answers"].append([name, TYPE_NAMES.get(typ, str(typ)), data])
    except (ValueError, struct.error, IndexError) as e:
        out["error"] = f"unparsable reply: {e}"
    return out


def make_socket(addr, kind, dual=False):
    fam = socket.AF_INET6 if ":" in addr or dual else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual else 1)
    return s


def recv_exact(s, n):
    got = b""
    for _ in range(1024):
        if len(got) >= n:
            break
        chunk = s.recv(n - len(got))
        if not chunk:
            raise ConnectionError("EOF")
        got += chunk
    return got


def exchange(s, server, msg, tcp, connected, timeout):
    """Sends msg, returns (reply bytes, source address)."""
    s.settimeout(timeout)
    if tcp:
        s.sendall(struct.pack(">H", len(msg)) + msg)
        n = struct.unpack(">H", recv_exact(s, 2))[0]
        return recv_exact(s, n), s.getpeername()[:2]
    if connected:
        s.send(msg)
        return s.recv(65535), s.getpeername()[:2]
    s.sendto(msg, (server, 53))
    end = time.monotonic() + timeout
    for _ in range(64):  # skip stray datagrams, bounded
        s.settimeout(max(end - time.monotonic(), 0.01))
        data, src = s.recvfrom(65535)
        if len(data) >= 2 and data[:2] == msg[:2]:
            return data, src[:2]
    raise socket.timeout("no matching reply")


def one_query(s, server, name, qtype, tcp, connected, timeout, edns=True):
    qid = secrets.randbelow(65536)
    res = {"pid": os.getpid()}
    try:
        data, src = exchange(s, server, build_query(name, qtype, qid, edns), tcp, connected, timeout)
    except OSError as e:
        res.update(error=errname(e), detail=str(e), rcode=None, answers=[])
        return res
    res.update(parse_response(data, qid))
    res["from"] = [src[0], src[1]]
    return res


def do_query(a):
    kind = "tcp" if a.tcp else "udp"
    s = make_socket(a.server, kind, a.dual)
    with s:
        s.settimeout(a.timeout)
        if a.tcp or a.connect:
            try:
                s.connect((a.server, 53))
            except OSError as e:
                return {"error": errname(e), "detail": str(e), "rcode": None, "answers": [], "step": "connect",
                        "pid": os.getpid()}
        return one_query(s, a.server, a.name, a.type, a.tcp, a.connect, a.timeout, edns=not a.no_edns)


def random_label():
    # A base32-ish chunk, like encoded data in a tunnel.
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return "".join(alphabet[b % 32] for b in os.urandom(40))


def do_burst(a):
    s = make_socket(a.server, "udp")
    names, rcodes, timeouts, errors = [], {}, 0, {}
    t0 = time.monotonic()
    deadline = t0 + a.seconds
    with s:
        for i in range(a.n):
            if time.monotonic() > deadline:
                break
            name = f"{random_label()}.{i}.{a.zone}"
            names.append(name)
            r = one_query(s, a.server, name, "TXT" if i % 2 else "A", False, False, a.timeout)
            if r.get("error") == "ETIMEDOUT":
                timeouts += 1
            elif r.get("error"):
                errors[r["error"]] = errors.get(r["error"], 0) + 1
            else:
                rcodes[r["rcode"]] = rcodes.get(r["rcode"], 0) + 1
    return {"n": len(names), "names": names, "rcodes": rcodes, "timeouts": timeouts, "errors": errors,
            "seconds": round(time.monotonic() - t0, 3), "pid": os.getpid()}


def do_raw(a):
    """UDP: the bad datagram, then at once the good query on the same
    connected socket; every datagram before the good answer is a reply to
    the bad one ("stray"). The resolver reads its socket in order, so no
    waiting for a reply that must not come. TCP: the bad frame, then read
    until EOF, a reply or --wait; the good query goes on a new connection
    if the resolver closed this one."""
    kind = "tcp" if a.tcp else "udp"
    payload = bytes.fromhex(a.hex)
    s = make_socket(a.server, kind)
    res = {"pid": os.getpid(), "reply": None, "stray": []}
    try:
        s.settimeout(5)
        s.connect((a.server, 53))
        if not a.tcp:
            s.send(payload)
            qid = secrets.randbelow(65536)
            s.send(build_query(a.then, "A", qid))
            end = time.monotonic() + 5
            for _ in range(64):
                s.settimeout(max(end - time.monotonic(), 0.01))
                try:
                    data = s.recv(65535)
                except OSError as e:
                    res["then"] = {"error": errname(e), "rcode": None, "answers": []}
                    break
                if len(data) >= 2 and struct.unpack(">H", data[:2])[0] == qid and data != payload:
                    res["then"] = parse_response(data, qid)
                    break
                res["stray"].append(data.hex())
            return res
        s.sendall(struct.pack(">H", len(payload)) + payload)
        s.settimeout(a.wait)
        try:
            got = s.recv(65535)
            res["reply"] = got.hex() if got else None
            res["eof"] = not got
        except OSError as e:
            res["reply_error"] = errname(e)
        if res.get("eof") or res.get("reply_error") not in (None, "ETIMEDOUT"):
            s.close()
            s = make_socket(a.server, kind)
            s.settimeout(5)
            s.connect((a.server, 53))
        res["then"] = one_query(s, a.server, a.then, "A", True, True, 5)
        return res
    finally:
        s.close()


def do_getaddrinfo(a):
    fam = {"4": socket.AF_INET, "6": socket.AF_INET6}.get(a.family, socket.AF_UNSPEC)
    try:
        infos = socket.getaddrinfo(a.name, 443, fam, socket.SOCK_STREAM)
    except socket.gaierror as e:
        return {"addresses": [], "error": f"gaierror: {e}", "eai": e.errno, "pid": os.getpid()}
    return {"addresses": sorted({i[4][0] for i in infos}), "error": None, "pid": os.getpid()}


def parser():
    ap = argparse.ArgumentParser(prog="dns_clients.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("query")
    q.add_argument("server")
    q.add_argument("name")
    q.add_argument("--type", default="A")
    q.add_argument("--tcp", action="store_true")
    q.add_argument("--connect", action="store_true")
    q.add_argument("--dual", action="store_true")
    q.add_argument("--no-edns", action="store_true")
    q.add_argument("--timeout", type=float, default=3.0)
    b = sub.add_parser("burst")
    b.add_argument("server")
    b.add_argument("zone")
    b.add_argument("--n", type=int, default=500)
    b.add_argument("--timeout", type=float, default=2.0)
    b.add_argument("--seconds", type=float, default=60.0)
    r = sub.add_parser("raw")
    r.add_argument("server")
    r.add_argument("--hex", required=True)
    r.add_argument("--then", required=True)
    r.add_argument("--wait", type=float, default=1.0)
    r.add_argument("--tcp", action="store_true")
    g = sub.add_parser("getaddrinfo")
    g.add_argument("name")
    g.add_argument("--family", choices=["4", "6"])
    return ap


def main():
    a = parser().parse_args()
    fn = {"query": do_query, "burst": do_burst, "raw": do_raw, "getaddrinfo": do_getaddrinfo}[a.cmd]
    emit(fn(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
