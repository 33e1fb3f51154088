"""IPv6 spellings of an IPv4 address are judged as that IPv4 address."""
import unittest

from e2e_case import DEFAULT_POLICY, PUBLIC_HOST_RULE, FenceCase


class V6Forms(FenceCase):
    POLICY = DEFAULT_POLICY + PUBLIC_HOST_RULE  # web traffic passes the proxy by name
    FORMS = {
        "v4-mapped": "::ffff:10.0.0.5",
        "nat64": "64:ff9b::a00:5",
        "6to4": "2002:a00:5::1",
        "v4-compatible": "::10.0.0.5",
    }

    def test_forms_of_a_private_address(self):
        for name, addr in self.FORMS.items():
            with self.subTest(form=name, addr=addr):
                self.assertProbeDenied("connect", "tcp", addr, 80, reason="private", hook="connect6",
                                       family="inet6", judged="10.0.0.5", dport=80)

    def test_v4_mapped_on_v6only_socket(self):
        # An IPV6_V6ONLY socket never reaches a v4 host, but the hook still judges it.
        self.assertProbeDenied("connect", "tcp", "::ffff:10.0.0.5", 80, "--v6only", reason="private",
                               judged="10.0.0.5")

    def test_v4_mapped_udp_connect(self):
        # Port 123: port 53 would go to the resolver whatever the address (test_dns.py).
        # The connect succeeds (it sends nothing); its first datagram is
        # refused. The kernel hands a send on a socket connected to
        # ::ffff:a.b.c.d to the IPv4 path with the address, so sendmsg4
        # judges 10.0.0.5 before the egress drop would (test_udp_probe.py).
        r, ev = self.assertProbeDenied("connect", "udp", "::ffff:10.0.0.5", 123, reason="private", step="send")
        self.assertIn((ev["hook"], ev.get("judged") or ev["daddr"]),
                      [("sendmsg4", "10.0.0.5"), ("skb_egress", "10.0.0.5")], ev)

    def test_v4_mapped_udp_sendto(self):
        # A dual-stack UDP sendto to ::ffff:a.b.c.d goes through sendmsg4 (see
        # ebpf-facts section 3), so there the daddr may already be the v4 form.
        r, ev = self.assertProbeDenied("sendto", "::ffff:10.0.0.5", 123, reason="private")
        self.assertIn(ev["hook"], ("sendmsg4", "sendmsg6"), ev)

    def test_metadata_endpoint_v4_mapped(self):
        self.assertProbeDenied("connect", "tcp", "::ffff:169.254.169.254", 80, reason="link-local",
                               judged="169.254.169.254")

    def test_v4_mapped_public_is_allowed(self):
        # Control: the v4-mapped path is not a blanket deny.
        self.assertProbeOk("connect", "tcp", "::ffff:203.0.113.10", 80, "--http", "--host", "public.test",
                           expect="hello from 203.0.113.10 80")

    def test_v4_mapped_public_port_denied(self):
        self.assertProbeDenied("connect", "tcp", "::ffff:203.0.113.10", 22, reason="port", judged="203.0.113.10")


class TranslatedForms(FenceCase):
    """NAT64, 6to4 and v4-compatible addresses leave as IPv6 packets that a
    translator or relay turns into IPv4: they must pass as both. The IPv4
    allowances (loopback, allow_cidr) do not open the IPv6 side, and IPv6
    deny rules still apply."""
    POLICY = """version = 1
[[deny_cidr]]
cidr = "2002::/16"
"""

    def test_embedded_loopback_is_not_a_loopback_pass(self):
        # 127.0.0.1 is allowed on any port, but [64:ff9b::7f00:1]:22 is an
        # IPv6 packet to a NAT64 gateway, port 22: denied by the port rule.
        self.assertProbeDenied("connect", "tcp", "64:ff9b::7f00:1", 22, reason="port", judged="127.0.0.1")

    def test_ipv6_deny_rule_covers_6to4(self):
        # 2002:cb00:710a:: embeds 203.0.113.10 (public, 443 allowed as IPv4),
        # but the policy denies 2002::/16 as IPv6.
        self.assertProbeDenied("connect", "tcp", "2002:cb00:710a::1", 443, reason="deny-cidr",
                               judged="203.0.113.10")


if __name__ == "__main__":
    unittest.main()
