#!/usr/bin/env python3
"""A network client for the e2e tests, run inside the fenced cgroup.

Prints exactly one JSON line on stdout:
  {"ok": bool, "errno": "EPERM" | null, "error": "text" | null,
   "received": "<bytes as text>", "pid": N, "step": "socket|connect|send|recv"}

"step" names the syscall that failed (null when ok). Every socket has a 2 s
timeout (--timeout), so nothing hangs.

Subcommands:
  connect tcp|udp ADDR PORT [--send TEXT] [--http] [--v6only]
      socket(); connect(); optionally send TEXT; read what comes back (TCP:
      the server's banner, and the echo of TEXT if sent; UDP: the echo).
      --http sends "GET / HTTP/1.0" and reads the answer to EOF; its Host
      is ADDR unless --host NAME (egressd's proxy judges web ports by Host).
      --noread stops after connect() (for servers that wait for the client).
      The family follows ADDR: anything with ':' is AF_INET6 (so
      ::ffff:10.0.0.5 is a dual-stack socket on the v4-mapped path).
  sendto ADDR PORT [--send TEXT] [--v6only]
      unconnected UDP: sendto(), then recvfrom() the echo (a timeout there
      leaves ok true with "received": "" and "timeout": true).
  socket FAMILY TYPE PROTO
      only socket(): FAMILY inet|inet6|packet, TYPE stream|dgram|raw,
      PROTO tcp|udp|icmp|icmpv6|raw|mptcp|udplite|sctp|all|0|<number>.
  loop tcp ADDR PORT [--max N] [--seconds S]
      connect() again and again (fresh socket each time, 0.5 s timeout)
      until a line arrives on stdin, N attempts or S seconds; prints
      {"attempts": N, "connected": N, "errnos": {"EPERM": N, ...}, ...}.
      First prints {"looping": true, "pid": N} once the first attempt is done.
      Used to look for a window without a fence while a policy is swapped.
  tfo ADDR PORT [--send TEXT]
      TCP Fast Open: sendto(MSG_FASTOPEN) on a fresh blocking socket, which
      connects inside sendto (an alarm bounds it to --timeout).
  udp-switch CONN_ADDR CONN_PORT TO_ADDR TO_PORT
      UDP connect() to CONN (allowed), then sendto() TO on that same socket:
      an explicit address on a connected socket must be judged again.
  presock tcp|udp ADDR PORT
      creates the socket first, prints {"waiting": true, "pid": N}, reads a
      line from stdin, and only then connects (a socket that predates the
      fence, connecting after it went up).
  thread SUBCOMMAND...
      runs SUBCOMMAND on a second thread; adds "tid" (its kernel thread id).
  fork [--wait-stdin] SUBCOMMAND...
      fork(); the child runs SUBCOMMAND and its JSON line is printed. With
      --wait-stdin the process first prints {"waiting": true, "pid": N} and
      reads one line from stdin before forking (so the fork happens at a
      moment the test chooses, e.g. after egressd attached).
"""
import argparse
import errno as errno_mod
import json
import os
import socket
import sys
import time

PROTOS = {
    "0": 0, "tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP,
    "icmp": socket.IPPROTO_ICMP, "icmpv6": socket.IPPROTO_ICMPV6,
    "raw": socket.IPPROTO_RAW, "mptcp": 262, "udplite": 136, "sctp": 132,
    "all": socket.htons(0x0003),  # ETH_P_ALL, for AF_PACKET
}
FAMILIES = {"inet": socket.AF_INET, "inet6": socket.AF_INET6, "packet": getattr(socket, "AF_PACKET", 17)}
TYPES = {"stream": socket.SOCK_STREAM, "dgram": socket.SOCK_DGRAM, "raw": socket.SOCK_RAW}


def result(ok, exc=None, step=None, received=b"", **extra):
    out = {"ok": ok, "errno": None, "error": None, "received": received.decode("utf-8", "replace"),
           "pid": os.getpid(), "step": step}
    if exc is not None:
        if isinstance(exc, socket.timeout):
            out["errno"] = "ETIMEDOUT"
        elif getattr(exc, "errno", None):
            out["errno"] = errno_mod.errorcode.get(exc.errno, str(exc.errno))
        out["error"] = str(exc) or type(exc).__name__
    out.update(extra)
    return out


def family_for(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def sockaddr(addr, port):
    if ":" not in addr:
        return (addr, port)
    host, _, scope = addr.partition("%")  # fe80::1%eth0
    return (host, port, 0, socket.if_nametoindex(scope) if scope else 0)


def read_some(s, want, timeout):
    """Reads until `want` is contained (or one chunk if want is empty), EOF,
    or the timeout. Bounded: at most 64 reads."""
    s.settimeout(timeout)
    got = b""
    for _ in range(64):
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        got += chunk
        if not want or want in got:
            break
    return got


def do_connect(a):
    fam = family_for(a.addr)
    stype = socket.SOCK_STREAM if a.proto == "tcp" else socket.SOCK_DGRAM
    try:
        s = socket.socket(fam, stype)
    except OSError as e:
        return result(False, e, "socket")
    with s:
        s.settimeout(a.timeout)
        if a.v6only:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s.connect(sockaddr(a.addr, a.port))
        except OSError as e:
            return result(False, e, "connect")
        if a.noread:
            return result(True)
        if a.http:
            a.send = f"GET / HTTP/1.0\r\nHost: {a.host or a.addr}\r\n\r\n"
        payload = (a.send or ("ping" if a.proto == "udp" else "")).encode()
        if payload:
            try:
                s.sendall(payload)
            except OSError as e:
                return result(False, e, "send")
        try:
            if a.http:
                got = read_some(s, b"\0never", a.timeout)  # to EOF
            elif a.proto == "tcp":
                # banner first, then the echo of the payload if one was sent
                got = read_some(s, payload or b"\n", a.timeout)
            else:
                got = s.recv(65536)
        except socket.timeout:
            return result(True, received=b"", timeout=True)
        except OSError as e:
            return result(False, e, "recv")
        return result(True, received=got)


def do_sendto(a):
    try:
        s = socket.socket(family_for(a.addr), socket.SOCK_DGRAM)
    except OSError as e:
        return result(False, e, "socket")
    with s:
        s.settimeout(a.timeout)
        if a.v6only:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s.sendto((a.send or "ping").encode(), sockaddr(a.addr, a.port))
        except OSError as e:
            return result(False, e, "send")
        try:
            data, _src = s.recvfrom(65536)
        except socket.timeout:
            return result(True, received=b"", timeout=True)
        except OSError as e:
            return result(False, e, "recv")
        return result(True, received=data)


def do_socket(a):
    fam = FAMILIES[a.family]
    typ = TYPES[a.type]
    proto = PROTOS[a.protocol] if a.protocol in PROTOS else int(a.protocol, 0)
    try:
        s = socket.socket(fam, typ, proto)
    except OSError as e:
        return result(False, e, "socket")
    s.close()
    return result(True)


def do_tfo(a):
    import signal

    def alarm(signum, frame):
        raise socket.timeout("tfo timed out")

    signal.signal(signal.SIGALRM, alarm)
    try:
        s = socket.socket(family_for(a.addr), socket.SOCK_STREAM)
    except OSError as e:
        return result(False, e, "socket")
    with s:
        signal.setitimer(signal.ITIMER_REAL, a.timeout)
        try:
            s.sendto((a.send or "tfo").encode(), socket.MSG_FASTOPEN, sockaddr(a.addr, a.port))
            signal.setitimer(signal.ITIMER_REAL, 0)
        except OSError as e:
            signal.setitimer(signal.ITIMER_REAL, 0)
            return result(False, e, "send")
        try:
            got = read_some(s, b"\n", a.timeout)
        except OSError as e:
            return result(False, e, "recv")
        return result(True, received=got)


def do_udp_switch(a):
    try:
        s = socket.socket(family_for(a.conn_addr), socket.SOCK_DGRAM)
    except OSError as e:
        return result(False, e, "socket")
    with s:
        s.settimeout(a.timeout)
        try:
            s.connect(sockaddr(a.conn_addr, a.conn_port))
        except OSError as e:
            return result(False, e, "connect")
        try:
            s.sendto(b"switch", sockaddr(a.to_addr, a.to_port))
        except OSError as e:
            return result(False, e, "send")
        try:
            data = s.recv(65536)
        except socket.timeout:
            return result(True, received=b"", timeout=True)
        except OSError as e:
            return result(False, e, "recv")
        return result(True, received=data)


def do_presock(a):
    stype = socket.SOCK_STREAM if a.proto == "tcp" else socket.SOCK_DGRAM
    try:
        s = socket.socket(family_for(a.addr), stype)
    except OSError as e:
        return result(False, e, "socket")
    with s:
        print(json.dumps({"waiting": True, "pid": os.getpid()}), flush=True)
        if not sys.stdin.readline():
            return result(False, step="stdin", error="stdin closed")
        s.settimeout(a.timeout)
        try:
            s.connect(sockaddr(a.addr, a.port))
        except OSError as e:
            return result(False, e, "connect")
        return result(True)


def do_thread(rest):
    import threading
    box = {}

    def body():
        box["tid"] = threading.get_native_id()
        try:
            box["out"] = run(rest)
        except BaseException as e:
            box["out"] = result(False, e, "thread")

    t = threading.Thread(target=body)
    t.start()
    t.join(60)
    out = box.get("out") or result(False, step="thread", error="thread did not finish")
    out["tid"] = box.get("tid")
    return out


def do_loop(a):
    import select
    fam = family_for(a.addr)
    counts = {"attempts": 0, "connected": 0, "errnos": {}}
    end = time.monotonic() + a.seconds
    stop_reason = "max"
    for i in range(a.max):
        try:
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(0.5)
            try:
                s.connect(sockaddr(a.addr, a.port))
                counts["connected"] += 1
            finally:
                s.close()
        except OSError as e:
            name = "ETIMEDOUT" if isinstance(e, socket.timeout) else errno_mod.errorcode.get(e.errno, str(e.errno))
            counts["errnos"][name] = counts["errnos"].get(name, 0) + 1
        counts["attempts"] += 1
        if i == 0:
            print(json.dumps({"looping": True, "pid": os.getpid()}), flush=True)
        if select.select([sys.stdin], [], [], 0)[0]:
            stop_reason = "stdin"
            break
        if time.monotonic() > end:
            stop_reason = "deadline"
            break
    counts["stopped"] = stop_reason
    counts["pid"] = os.getpid()
    return counts


def parser():
    ap = argparse.ArgumentParser(prog="probe.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("connect")
    c.add_argument("proto", choices=["tcp", "udp"])
    c.add_argument("addr")
    c.add_argument("port", type=int)
    c.add_argument("--send")
    c.add_argument("--v6only", action="store_true")
    c.add_argument("--http", action="store_true")
    c.add_argument("--host")
    c.add_argument("--noread", action="store_true")
    c.add_argument("--timeout", type=float, default=2.0)
    t = sub.add_parser("sendto")
    t.add_argument("addr")
    t.add_argument("port", type=int)
    t.add_argument("--send")
    t.add_argument("--v6only", action="store_true")
    t.add_argument("--timeout", type=float, default=2.0)
    k = sub.add_parser("socket")
    k.add_argument("family", choices=sorted(FAMILIES))
    k.add_argument("type", choices=sorted(TYPES))
    k.add_argument("protocol")
    lp = sub.add_parser("loop")
    lp.add_argument("proto", choices=["tcp"])
    lp.add_argument("addr")
    lp.add_argument("port", type=int)
    lp.add_argument("--max", type=int, default=200000)
    lp.add_argument("--seconds", type=float, default=30.0)
    tf = sub.add_parser("tfo")
    tf.add_argument("addr")
    tf.add_argument("port", type=int)
    tf.add_argument("--send")
    tf.add_argument("--timeout", type=float, default=2.0)
    us = sub.add_parser("udp-switch")
    us.add_argument("conn_addr")
    us.add_argument("conn_port", type=int)
    us.add_argument("to_addr")
    us.add_argument("to_port", type=int)
    us.add_argument("--timeout", type=float, default=2.0)
    ps = sub.add_parser("presock")
    ps.add_argument("proto", choices=["tcp", "udp"])
    ps.add_argument("addr")
    ps.add_argument("port", type=int)
    ps.add_argument("--timeout", type=float, default=2.0)
    th = sub.add_parser("thread")
    th.add_argument("rest", nargs=argparse.REMAINDER)
    f = sub.add_parser("fork")
    f.add_argument("--wait-stdin", action="store_true")
    f.add_argument("rest", nargs=argparse.REMAINDER)
    return ap


def run(argv):
    a = parser().parse_args(argv)
    if a.cmd == "connect":
        return do_connect(a)
    if a.cmd == "sendto":
        return do_sendto(a)
    if a.cmd == "socket":
        return do_socket(a)
    if a.cmd == "loop":
        return do_loop(a)
    if a.cmd == "presock":
        return do_presock(a)
    if a.cmd == "tfo":
        return do_tfo(a)
    if a.cmd == "udp-switch":
        return do_udp_switch(a)
    if a.cmd == "thread":
        return do_thread(a.rest[1:] if a.rest[:1] == ["--"] else a.rest)
    raise SystemExit("fork cannot nest")


def main():
    a = parser().parse_args()
    if a.cmd != "fork":
        print(json.dumps(run(sys.argv[1:])), flush=True)
        return 0
    rest = a.rest[1:] if a.rest[:1] == ["--"] else a.rest
    if a.wait_stdin:
        print(json.dumps({"waiting": True, "pid": os.getpid()}), flush=True)
        if not sys.stdin.readline():
            print(json.dumps(result(False, step="stdin", error="stdin closed")), flush=True)
            return 1
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = run(rest)
        except BaseException as e:  # the child must never return into the parent's code
            out = result(False, e, "child")
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    for _ in range(1024):  # bounded; the child's own timeouts end it
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.waitpid(pid, 0)
    out = json.loads(data) if data else result(False, step="child", error="no output from child")
    out["parent_pid"] = os.getpid()
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
