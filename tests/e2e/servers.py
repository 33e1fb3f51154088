#!/usr/bin/env python3
"""Test servers for the e2e world (stdlib only).

Runs inside the world network namespace (``ip netns exec <id>-world``); it
never touches bpffs or cgroups.

  servers.py serve --tcp ADDR:PORT ... --http ADDR:PORT ... --udp ADDR:PORT ...
      TCP: on accept, send the banner "banner ADDR PORT\\n", then echo every
      byte received until the peer closes. HTTP: read a request, answer
      "HTTP/1.0 200 OK" with the body "hello from ADDR PORT\\n", close.
      UDP: echo each datagram back to its sender, unchanged. Prints "ready" (one line, flushed) once every socket
      is bound and listening; runs until killed. Any bind failure is fatal
      (exit 2, message on stderr) so a broken world fails loudly.

  servers.py sink --udp ADDR:PORT ...
      UDP receivers that count: each datagram is echoed back; one that
      starts with "egd-marker" also prints {"ep": EP, "bytes": N,
      "datagrams": N} (what arrived on EP before it). The tests send a marker
      from outside the fence after the sends they judge, so "nothing arrived"
      is read off the marker's line, not waited for. Prints "ready".

  servers.py wait --deadline SECONDS ADDR:PORT|unix:PATH ...
      Bounded readiness probe for servers this module does not own (openssl
      s_server, nginx, fcgiwrap): retries a TCP (or AF_UNIX stream) connect
      to each endpoint with a short timeout until it succeeds or the
      deadline passes. Exit 0 when all answered, 1 otherwise. Meant to run
      inside the same namespace as the server.

  servers.py wait-dns --deadline SECONDS SERVER NAME
      Bounded readiness probe for the DNS server: sends an A query for NAME
      over UDP until an answer with at least one record comes back.

ADDR:PORT uses brackets for IPv6: [2001:db8::10]:443.
"""
import argparse
import asyncio
import json
import socket
import sys
import time


def split_endpoint(text):
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    if not host or not port:
        raise ValueError(f"bad endpoint {text!r}")
    return host, int(port)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class EchoUDP(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class CountingUDP(EchoUDP):
    def __init__(self, ep):
        self.ep = ep
        self.bytes = 0
        self.datagrams = 0

    def datagram_received(self, data, addr):
        if data.startswith(b"egd-marker"):
            print(json.dumps({"ep": self.ep, "bytes": self.bytes, "datagrams": self.datagrams}), flush=True)
        else:
            self.bytes += len(data)
            self.datagrams += 1
        self.transport.sendto(data, addr)


async def sink(udp):
    loop = asyncio.get_running_loop()
    for ep in udp:
        host, port = split_endpoint(ep)
        try:
            sock = make_udp_socket(host, port)
        except OSError as e:
            print(f"servers.py: udp {ep}: {e}", file=sys.stderr, flush=True)
            sys.exit(2)
        await loop.create_datagram_endpoint(lambda ep=ep: CountingUDP(ep), sock=sock)
    print("ready", flush=True)
    await asyncio.Event().wait()  # until killed


async def handle_tcp(reader, writer):
    try:
        host, port = writer.get_extra_info("sockname")[:2]
        writer.write(f"banner {host} {port}\n".encode())
        await writer.drain()
        while True:
            # Idle clients are dropped after 30 s so nothing lingers forever.
            data = await asyncio.wait_for(reader.read(65536), timeout=30)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (asyncio.TimeoutError, ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def handle_http(reader, writer):
    try:
        host, port = writer.get_extra_info("sockname")[:2]
        req = b""
        for _ in range(64):  # bounded: a request head is small
            chunk = await asyncio.wait_for(reader.read(4096), timeout=10)
            if not chunk:
                break
            req += chunk
            if b"\r\n\r\n" in req or b"\n\n" in req:
                break
        body = f"hello from {host} {port}\n".encode()
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
    except (asyncio.TimeoutError, ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


def bind_addr(host, port):
    if ":" not in host:
        return (host, port)
    host, _, scope = host.partition("%")  # fe80::1%eth0
    return (host, port, 0, socket.if_nametoindex(scope) if scope else 0)


def make_tcp_socket(host, port):
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family_of(host) == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(bind_addr(host, port))
    s.listen(1024)
    s.setblocking(False)
    return s


def make_udp_socket(host, port):
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family_of(host) == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(bind_addr(host, port))
    s.setblocking(False)
    return s


async def serve(tcp, http, udp):
    loop = asyncio.get_running_loop()
    servers = []
    for handler, eps in ((handle_tcp, tcp), (handle_http, http)):
        for ep in eps:
            host, port = split_endpoint(ep)
            try:
                sock = make_tcp_socket(host, port)
            except OSError as e:
                print(f"servers.py: tcp {ep}: {e}", file=sys.stderr, flush=True)
                sys.exit(2)
            servers.append(await asyncio.start_server(handler, sock=sock))
    for ep in udp:
        host, port = split_endpoint(ep)
        try:
            sock = make_udp_socket(host, port)
        except OSError as e:
            print(f"servers.py: udp {ep}: {e}", file=sys.stderr, flush=True)
            sys.exit(2)
        await loop.create_datagram_endpoint(EchoUDP, sock=sock)
    print("ready", flush=True)
    await asyncio.Event().wait()  # until killed


def _connect_once(ep):
    host, port = ep
    if host == "unix":
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            s.connect(port)
        return
    with socket.create_connection((host, port), timeout=0.5):
        pass


def wait(deadline, endpoints):
    end = time.monotonic() + deadline
    pending = [("unix", e[5:]) if e.startswith("unix:") else split_endpoint(e) for e in endpoints]
    for _ in range(10000):  # bounded; the deadline ends it long before
        still = []
        for ep in pending:
            try:
                _connect_once(ep)
            except OSError:
                still.append(ep)
        pending = still
        if not pending:
            return 0
        if time.monotonic() >= end:
            break
        time.sleep(0.05)  # retry pacing between probes, not synchronisation
    print(f"servers.py wait: not answering: {pending}", file=sys.stderr)
    return 1


def dns_query(name, qtype=1, qid=0x4567):
    """A minimal DNS query (RD set) for NAME."""
    import struct
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", qtype, 1)


def wait_dns(deadline, server, name):
    import struct
    end = time.monotonic() + deadline
    last = "no answer"
    for i in range(10000):  # bounded; the deadline ends it long before
        with socket.socket(family_of(server), socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            try:
                s.sendto(dns_query(name, qid=i & 0xffff), (server, 53))
                data, _ = s.recvfrom(4096)
                _id, flags, _qd, an = struct.unpack(">HHHH", data[:8])
                if _id == i & 0xffff and flags & 0x000f == 0 and an > 0:
                    return 0
                last = f"rcode {flags & 0xf}, {an} answers"
            except OSError as e:
                last = str(e)
        if time.monotonic() >= end:
            break
        time.sleep(0.05)  # retry pacing between probes, not synchronisation
    print(f"servers.py wait-dns: {server} gave no answer for {name}: {last}", file=sys.stderr)
    return 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--tcp", action="append", default=[])
    s.add_argument("--http", action="append", default=[])
    s.add_argument("--udp", action="append", default=[])
    k = sub.add_parser("sink")
    k.add_argument("--udp", action="append", default=[])
    w = sub.add_parser("wait")
    w.add_argument("--deadline", type=float, default=10.0)
    w.add_argument("endpoints", nargs="+")
    d = sub.add_parser("wait-dns")
    d.add_argument("--deadline", type=float, default=10.0)
    d.add_argument("server")
    d.add_argument("name")
    a = ap.parse_args()
    if a.cmd == "serve":
        asyncio.run(serve(a.tcp, a.http, a.udp))
        return 0
    if a.cmd == "sink":
        asyncio.run(sink(a.udp))
        return 0
    if a.cmd == "wait-dns":
        return wait_dns(a.deadline, a.server, a.name)
    return wait(a.deadline, a.endpoints)


if __name__ == "__main__":
    sys.exit(main())
