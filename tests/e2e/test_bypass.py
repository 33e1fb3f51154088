"""Other ways out that the fence must also see: TCP Fast Open, an explicit
address on a connected UDP socket, threads, 0.0.0.0/:: as loopback, scoped
link-local, site-local, more IPv6 spellings."""
import unittest

from e2e_case import STRICT_POLICY, FenceCase


class Bypasses(FenceCase):
    def test_tcp_fast_open_to_private(self):
        # sendto(MSG_FASTOPEN) connects inside sendto: it goes through connect4.
        self.assertProbeDenied("tfo", "10.0.0.5", 80, reason="private", hook="connect4", step="send")

    def test_tcp_fast_open_to_public_ssh(self):
        self.assertProbeDenied("tfo", "203.0.113.10", 22, reason="port")

    def test_tcp_fast_open_v6(self):
        self.assertProbeDenied("tfo", "fd00::10", 80, reason="private", hook="connect6")

    def test_sendto_other_address_on_connected_udp(self):
        # connect() to a resolver (steered to egressd's), then sendto() a
        # private host on the same socket: the explicit address is judged
        # again (sendmsg4). Port 123 there: port 53 to any address would go
        # to the resolver too (test_dns.py).
        self.assertProbeDenied("udp-switch", "203.0.113.10", 53, "10.0.0.5", 123, reason="private",
                               hook="sendmsg4", daddr="10.0.0.5", step="send")

    def test_sendto_other_port_on_connected_udp(self):
        self.assertProbeDenied("udp-switch", "203.0.113.10", 53, "203.0.113.10", 443, reason="port",
                               step="send")

    def test_thread_is_fenced_and_named(self):
        r = self.w.probe("thread", "connect", "tcp", "10.0.0.5", 80)
        self.assertEqual(r["errno"], "EPERM", r)
        ev = self.tail.expect_event(lambda e: e["tgid"] == r["pid"], what="event from the thread")
        self.assertEqual(ev["reason"], "private", ev)
        self.assertEqual(ev["pid"], r["tid"], f"pid should be the thread id: {ev} {r}")
        self.assertNotEqual(ev["pid"], ev["tgid"], ev)

    def test_scoped_link_local_v6(self):
        self.assertProbeDenied("connect", "tcp", "fe80::1%" + self.w.veth_agent, 80, reason="link-local",
                               hook="connect6")

    def test_site_local_v6(self):
        self.assertProbeDenied("connect", "tcp", "fec0::5", 80, reason="private")

    def test_this_network_v4(self):
        self.assertProbeDenied("connect", "tcp", "0.1.2.3", 80, reason="reserved")

    def test_v4_mapped_multicast(self):
        self.assertProbeDenied("sendto", "::ffff:224.0.0.1", 123, reason="multicast")

    def test_v4_mapped_cgnat(self):
        self.assertProbeDenied("connect", "tcp", "::ffff:100.64.0.5", 80, reason="private", judged="100.64.0.5")

    def test_nat64_metadata(self):
        self.assertProbeDenied("connect", "tcp", "64:ff9b::a9fe:a9fe", 80, reason="link-local",
                               judged="169.254.169.254")


class StrictUnspecified(FenceCase):
    POLICY = STRICT_POLICY

    def test_connect_to_0_0_0_0_is_loopback(self):
        # Linux turns a connect() to 0.0.0.0 into one to 127.0.0.1: with
        # loopback denied this must not be a way to reach local services.
        self.assertProbeDenied("connect", "tcp", "0.0.0.0", 8080, reason="loopback")

    def test_connect_to_unspecified_v6_is_loopback(self):
        self.assertProbeDenied("connect", "tcp", "::", 8080, reason="loopback")

    def test_v4_mapped_loopback(self):
        self.assertProbeDenied("connect", "tcp", "::ffff:127.0.0.1", 8080, reason="loopback")


if __name__ == "__main__":
    unittest.main()
