"""Source routing: options that send a packet to a hop the connect/sendmsg
verdict never judged. IPv4 LSRR through IP_OPTIONS (setsockopt) or an
IP_RETOPTS control message (per packet), and the IPv6 routing header
(IPV6_RTHDR), the one extension header an unprivileged socket may set."""
import json
import unittest

from e2e_case import DEFAULT_POLICY, FenceCase
from udp_sink import Sink

# Runs in the agent netns, in the cgroup; prints one JSON line per attempt.
SNIPPET = r'''
import errno, json, socket, struct, sys

def attempt(name, fn):
    try:
        fn()
        print(json.dumps({"case": name, "errno": None}))
    except OSError as e:
        print(json.dumps({"case": name, "errno": errno.errorcode.get(e.errno)}))

# Loose source route via 10.0.0.5, padded to 8 bytes with End-of-Options.
LSRR = bytes([0x83, 7, 4, 10, 0, 0, 5, 0])

def ip_options():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, LSRR)

def ip_options_cleared():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, b"")

def retopts_cmsg():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    IP_RETOPTS = 7
    s.sendmsg([b"dns?"], [(socket.IPPROTO_IP, IP_RETOPTS, LSRR)], 0, ("203.0.113.10", 53))

def retopts_cmsg_sink():
    # Via 10.0.0.5 (the option) to 203.0.113.10:7123 (the sink).
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    IP_RETOPTS = 7
    s.sendmsg([b"routed"], [(socket.IPPROTO_IP, IP_RETOPTS, LSRR)], 0, ("203.0.113.10", 7123))

def plain_dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"dns?", ("203.0.113.10", 53))

# Segment routing header (type 4) with one segment, fd00::10.
SRH = bytes([0, 2, 4, 0, 0, 0, 0, 0]) + socket.inet_pton(socket.AF_INET6, "fd00::10")

def ipv6_rthdr():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RTHDR, SRH)

for name in sys.argv[1:]:
    attempt(name, globals()[name])
'''


class SourceRouteCase(FenceCase):
    def run_cases(self, *names):
        script = self.w.tmp / "sourceroute.py"
        script.write_text(SNIPPET)
        r = self.w.agent_run([self.w.python, str(script), *names])
        self.assertEqual(r.returncode, 0, r.stderr)
        return {d["case"]: d["errno"] for d in map(json.loads, r.stdout.splitlines())}

    def expect_source_route_event(self, hook, verdict="deny"):
        ev = self.tail.expect_event(lambda e: e.get("reason") == "source-route" and e.get("hook") == hook,
                                    what=f"source-route event from {hook}")
        self.assertEqual(ev["verdict"], verdict, ev)


class SourceRoute(SourceRouteCase):
    def test_ip_options_lsrr_refused(self):
        got = self.run_cases("ip_options", "ip_options_cleared")
        self.assertEqual(got, {"ip_options": "EPERM", "ip_options_cleared": None})
        self.expect_source_route_event("setsockopt")

    def test_ipv6_routing_header_refused(self):
        self.assertEqual(self.run_cases("ipv6_rthdr"), {"ipv6_rthdr": "EPERM"})
        self.expect_source_route_event("setsockopt")

    def test_per_packet_options_dropped(self):
        # The option rides in a control message, which no sockopt hook sees;
        # the egress backstop drops the packet and the send fails.
        got = self.run_cases("retopts_cmsg", "plain_dns")
        self.assertEqual(got, {"retopts_cmsg": "EPERM", "plain_dns": None})
        self.expect_source_route_event("skb_egress")


class AuditSourceRoute(SourceRouteCase):
    """mode = "audit" denies nothing: the options are set, the packets leave
    and arrive, and the events say what enforcing would have refused."""
    POLICY = DEFAULT_POLICY.replace("version = 1\n", 'version = 1\nmode = "audit"\n', 1)

    def test_ip_options_lsrr_recorded(self):
        self.assertEqual(self.run_cases("ip_options"), {"ip_options": None})
        self.expect_source_route_event("setsockopt", verdict="audit")

    def test_per_packet_options_arrive_and_are_recorded(self):
        # The world's end takes the loose source route (a kernel drops it by
        # default) on to 203.0.113.10, which it also holds: the sink counts
        # what arrived.
        veth = self.w.veth_world
        self.w._sysctl(self.w.world_ns, "net.ipv4.conf.all.accept_source_route=1",
                       f"net.ipv4.conf.{veth}.accept_source_route=1")
        sink = Sink(self.w, [("203.0.113.10", 7123)])
        self.assertEqual(self.run_cases("retopts_cmsg_sink"), {"retopts_cmsg_sink": None})
        self.expect_source_route_event("skb_egress", verdict="audit")
        got = sink.received("203.0.113.10", 7123)
        self.assertEqual((got["datagrams"], got["bytes"]), (1, len("routed")), got)


if __name__ == "__main__":
    unittest.main()
