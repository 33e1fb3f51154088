"""Each blocked category: a real connect()/sendto() from a process in the
fenced cgroup fails with EPERM, and `egressd tail --json` reports the reason."""
import os
import unittest

from e2e_case import (DEFAULT_POLICY, DENY_CIDR_POLICY, PUBLIC_HOST_RULE, STRICT_POLICY, FenceCase)


class PrivateAndLinkLocal(FenceCase):
    def test_private_ipv4_ranges(self):
        # Port 80 is open to public addresses, so the category must be what denies.
        for addr in ("10.0.0.5", "172.16.0.5", "192.168.1.5", "100.64.0.5"):
            with self.subTest(addr=addr):
                _, ev = self.assertProbeDenied("connect", "tcp", addr, 80, reason="private", hook="connect4",
                                               daddr=addr, dport=80, proto="tcp", family="inet", step="connect")
                self.assertNotIn("judged", ev, "judged is only for v6 forms judged as IPv4")

    def test_private_ula(self):
        self.assertProbeDenied("connect", "tcp", "fd00::10", 80, reason="private", hook="connect6",
                               daddr="fd00::10", dport=80, proto="tcp", family="inet6")

    # UDP (and TCP) port 53 to any address goes to egressd's resolver
    # (test_dns.py); the categories are shown on NTP's port: the category
    # decides before the port rule.
    # A UDP connect() sends nothing (glibc's address sorting connects to
    # probe the route), so it succeeds; the first datagram is refused
    # (test_udp_probe.py: every send call).
    def test_private_udp_connect(self):
        self.assertProbeDenied("connect", "udp", "10.0.0.5", 123, reason="private", hook="skb_egress", proto="udp",
                               daddr="10.0.0.5", dport=123, step="send")

    def test_private_udp_sendto(self):
        self.assertProbeDenied("sendto", "192.168.1.5", 123, reason="private", hook="sendmsg4", proto="udp",
                               daddr="192.168.1.5", dport=123, step="send")

    def test_metadata_endpoint_is_link_local(self):
        self.assertProbeDenied("connect", "tcp", "169.254.169.254", 80, reason="link-local", hook="connect4",
                               daddr="169.254.169.254", dport=80)

    def test_event_schema(self):
        r, ev = self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, reason="private")
        self.assertEventSchema(ev)
        self.assertEqual(ev["tgid"], r["pid"])
        self.assertEqual(ev["uid"], 0)
        self.assertEqual(ev["comm"], "python3")
        self.assertEqual(ev["cgroup_id"], os.stat(self.w.cgroup).st_ino)

    def test_event_names_unprivileged_uid(self):
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, reason="private", user="nobody", uid=65534)


class Ports(FenceCase):
    def test_ssh_to_public_is_port(self):
        self.assertProbeDenied("connect", "tcp", "203.0.113.10", 22, reason="port", hook="connect4",
                               daddr="203.0.113.10", dport=22, proto="tcp")

    def test_other_tcp_port_v6(self):
        self.assertProbeDenied("connect", "tcp", "2001:db8::10", 5432, reason="port", hook="connect6")

    def test_quic_udp_443_sendto_is_port(self):
        self.assertProbeDenied("sendto", "203.0.113.10", 443, reason="port", hook="sendmsg4", proto="udp",
                               daddr="203.0.113.10", dport=443, step="send")

    def test_ntp_connected_udp_is_port(self):
        self.assertProbeDenied("connect", "udp", "203.0.113.10", 123, reason="port", hook="skb_egress", proto="udp",
                               step="send")

    def test_udp_sendto_v6_is_port(self):
        self.assertProbeDenied("sendto", "2001:db8::10", 443, reason="port", hook="sendmsg6", proto="udp")


class OtherCategories(FenceCase):
    def test_multicast_sendto(self):
        # The category decides before the port (port 53 would go to the
        # resolver, whatever the address: test_dns.py).
        self.assertProbeDenied("sendto", "224.0.0.1", 123, reason="multicast", hook="sendmsg4", daddr="224.0.0.1")

    def test_multicast_v6_sendto(self):
        self.assertProbeDenied("sendto", "ff02::1", 123, reason="multicast", hook="sendmsg6")

    def test_broadcast_sendto(self):
        self.assertProbeDenied("sendto", "255.255.255.255", 123, reason="broadcast", hook="sendmsg4")

    def test_reserved(self):
        self.assertProbeDenied("connect", "tcp", "240.0.0.1", 80, reason="reserved", hook="connect4")


class DenyCidr(FenceCase):
    POLICY = DENY_CIDR_POLICY + PUBLIC_HOST_RULE  # the rule lets the neighbour through the proxy

    def test_deny_cidr_beats_web_port(self):
        self.assertProbeDenied("connect", "tcp", "203.0.113.7", 443, reason="deny-cidr", hook="connect4",
                               daddr="203.0.113.7", dport=443, rule=1)

    def test_deny_cidr_udp(self):
        # Port 53 would go to the resolver (test_dns.py); 123 shows the rule.
        self.assertProbeDenied("sendto", "203.0.113.7", 123, reason="deny-cidr", hook="sendmsg4", rule=1)

    def test_neighbour_still_allowed(self):
        self.assertProbeOk("connect", "tcp", "203.0.113.10", 80, "--http", "--host", "public.test",
                           expect="hello from 203.0.113.10 80")


class StrictLoopback(FenceCase):
    POLICY = STRICT_POLICY

    def test_loopback_v4_denied(self):
        self.assertProbeDenied("connect", "tcp", "127.0.0.1", 8080, reason="loopback", hook="connect4",
                               daddr="127.0.0.1", dport=8080)

    def test_loopback_v6_denied(self):
        self.assertProbeDenied("connect", "tcp", "::1", 8080, reason="loopback", hook="connect6")

    def test_loopback_udp_denied(self):
        self.assertProbeDenied("sendto", "127.0.0.1", 5353, reason="loopback", hook="sendmsg4")


class DefaultLoopback(FenceCase):
    POLICY = DEFAULT_POLICY
    TAIL = False

    def test_loopback_allowed_by_default(self):
        # The control for StrictLoopback: the agent-netns server is reachable.
        self.assertProbeOk("connect", "tcp", "127.0.0.1", 8080, expect="banner 127.0.0.1 8080")
        self.assertProbeOk("connect", "tcp", "::1", 8080, expect="banner ::1 8080")


if __name__ == "__main__":
    unittest.main()
