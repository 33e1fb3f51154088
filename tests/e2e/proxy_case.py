"""Scaffolding for the proxy tests (test_proxy_*.py, test_world_origins.py):
a World with real origins and DNS (origins.py), policies with host rules,
and helpers to run clients and match the proxy's events."""
import hashlib
import json
import shutil

from e2e_case import DEFAULT_POLICY_ALL_EVENTS, FenceCase
from world import ORIGIN_TOOLS

# Host rules, numbered: events of an allowed request carry "rule": N (1-based
# position among the [[allow]] tables, like allow_cidr/deny_cidr rules).
PROXY_POLICY = DEFAULT_POLICY_ALL_EVENTS + """
[[allow]]
host = "allowed.test"

[[allow]]
host = "rebind.test"

[[allow]]
host = "v6only.test"

[[allow]]
host = "alias.test"

[[allow]]
host = "*.wild.test"

[[allow]]
host = "nodns.test"

[[allow]]
host = "rebind6.test"

[[allow]]
host = "meta.test"
"""
RULE = {"allowed.test": 1, "rebind.test": 2, "v6only.test": 3, "alias.test": 4, "a.wild.test": 5,
        "nodns.test": 6}

AUDIT_POLICY = PROXY_POLICY.replace('version = 1\n', 'version = 1\nmode = "audit"\n', 1)

# plain HTTP to allowed.test only for GET/HEAD under /allowed/; port 8443 for
# v4only.test (TLS).
LIMITS_POLICY = """\
version = 1
events = "all"

[[allow]]
host = "allowed.test"
methods = ["GET", "HEAD"]
paths = ["/allowed/"]

[[allow]]
host = "v4only.test"
ports = [8443]
"""


def require_tools(case, *tools):
    """Skips (fails under CI=true) when a tool the test needs is missing."""
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        msg = f"missing tools: {', '.join(missing)} (run scripts/install-deps.sh --test)"
        case.skipTest(msg)  # run.py fails it under CI=true


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for _ in range(1 << 20):
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def parse_http(data):
    """Splits bytes holding one or more HTTP/1.x responses (Content-Length
    or close-delimited bodies) into [(status, {header: value}, body)]."""
    if isinstance(data, str):
        data = data.encode("latin-1")
    out = []
    for _ in range(16):
        if not data.startswith(b"HTTP/"):
            break
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers["content-length"]) if "content-length" in headers else len(rest)
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out


class ProxyCase(FenceCase):
    """A FenceCase whose world has nginx origins, attached with PROXY_POLICY."""
    WORLD = {"origins": True}
    POLICY = PROXY_POLICY
    TOOLS = ORIGIN_TOOLS

    def setUp(self):
        require_tools(self, *self.TOOLS)
        super().setUp()

    # -- clients ------------------------------------------------------------

    def client(self, *args, timeout=30, cgroup=""):
        """clients.py ARGS in the cgroup; its JSON (with "rc")."""
        r = self.w.agent_run([self.w.python, str(self.w.tmp / "clients.py"), *map(str, args)], timeout=timeout,
                             cgroup=cgroup)
        lines = [l for l in r.stdout.split("\n") if l.startswith("{")]
        if not lines:
            raise AssertionError(f"clients.py {args} printed nothing (rc={r.returncode}): {r.stdout}{r.stderr}")
        out = json.loads(lines[-1])
        out["rc"] = r.returncode
        return out

    def curl(self, *args, timeout=30, max_time=10):
        """curl in the cgroup with the world's CA; .pid is curl's pid. stdout
        and stderr are latin-1 text with line ends kept (\\r\\n of -i)."""
        r = self.w.agent_run(["curl", "--silent", "--show-error", "--cacert", self.w.ca, "--max-time",
                              str(max_time), *args], timeout=timeout, text=False)
        r.stdout, r.stderr = r.stdout.decode("latin-1"), r.stderr.decode("latin-1")
        return r

    def openssl(self, *args, input="", timeout=30):
        return self.w.agent_run(["openssl", "s_client", "-CAfile", self.w.ca, "-verify_return_error", *args],
                                input=input, timeout=timeout)

    def node_fetch(self, url, method="GET"):
        require_tools(self, "node")
        script = ("fetch(process.argv[1], {method: process.argv[2]}).then(async r => {"
                  " const b = Buffer.from(await r.arrayBuffer());"
                  " const h = require('crypto').createHash('sha256').update(b).digest('hex');"
                  " console.log(JSON.stringify({status: r.status, sha256: h, body: b.toString('latin1', 0, 200),"
                  " reason: r.headers.get('x-egressd-reason')})); })"
                  ".catch(e => { console.log(JSON.stringify({error: String(e), cause: String(e.cause)}));"
                  " process.exit(3); });")
        r = self.w.agent_run(["env", f"NODE_EXTRA_CA_CERTS={self.w.ca}", "node", "-e", script, url, method],
                             timeout=30)
        lines = [l for l in r.stdout.split("\n") if l.startswith("{")]  # not splitlines: U+0085 in bodies
        self.assertTrue(lines, f"node printed nothing (rc={r.returncode}): {r.stdout}{r.stderr}")
        out = json.loads(lines[-1])
        out["rc"], out["pid"] = r.returncode, r.pid
        return out

    def git_clone(self, url, dest):
        return self.w.agent_run(["env", f"GIT_SSL_CAINFO={self.w.ca}", "GIT_TERMINAL_PROMPT=0",
                                 "GIT_CONFIG_NOSYSTEM=1", f"HOME={self.w.tmp}", "git", "clone", "-q", url,
                                 str(dest)], timeout=60)

    # -- events -------------------------------------------------------------

    def proxy_event(self, pid=None, timeout=10.0, **fields):
        """The first unclaimed proxy event from client process pid (its tgid)
        whose fields equal `fields` (world.Tail.hook_event)."""
        return self.tail.hook_event("proxy", pid, timeout, **fields)

    def assertOriginSaw(self, needle):
        self.assertIn(needle, self.w.origin_log(), "the origin did not see the request")

    def assertOriginNeverSaw(self, needle):
        self.assertNotIn(needle, self.w.origin_log(), "a refused request reached the origin")

    def proxy_port(self):
        """egressd's proxy listener on the agent's loopback, as `status --json`
        reports it (ss cannot tell: the resolver listens on TCP too)."""
        cg = self.w.cgroup_id()
        att = [a for a in self.w.status_json()["attachments"] if a["cgroup_id"] == cg]
        self.assertTrue(att and att[0]["proxy_port"], f"no proxy registered for cgroup {cg}: {att}")
        return "127.0.0.1", att[0]["proxy_port"]


def dig(world, *args):
    return world.agent_run(["dig", "+time=2", "+tries=1", f"@{world.dns}", *args], cgroup=None, timeout=20)

