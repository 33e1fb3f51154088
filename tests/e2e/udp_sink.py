"""servers.py sink in the world netns, for tests that assert what arrived
(or did not) at a UDP endpoint: test_udp_probe.py, test_sourceroute.py."""
import json
import subprocess

import world
from world import _LineReader, endpoint


class Sink:
    """servers.py sink in the world netns: counts what arrives."""

    def __init__(self, w, targets):
        cmd = ["ip", "netns", "exec", w.world_ns, w.python, str(world.HERE / "servers.py"), "sink"]
        for host, port in targets:
            cmd += ["--udp", endpoint(host, port)]
        self.w = w
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=w.tmp)
        w._procs.append(self.p)  # killed with the world
        self.out = _LineReader(self.p.stdout, "sink")
        self._wait(lambda line: line.strip() == "ready", "sink ready")

    def _wait(self, pred, what, deadline=10.0):
        for _ in range(int(deadline / 0.2)):
            line = self.out.get(0.2)
            if line is None:
                raise AssertionError(f"sink exited: {self.p.stderr.read()}")
            if line and pred(line):
                return line
        raise AssertionError(f"no {what} within {deadline}s")

    def received(self, host, port):
        """What arrived at host:port so far: a marker sent after the judged
        sends, from the agent netns outside the fence, over the same veth."""
        r = self.w.probe("sendto", host, port, "--send", "egd-marker", cgroup=None)
        if r.get("received") != "egd-marker":
            raise AssertionError(f"marker to {host}:{port} not echoed: {r}")
        ep = endpoint(host, port)
        line = self._wait(lambda l: l.startswith("{") and json.loads(l).get("ep") == ep, f"marker line for {ep}")
        return json.loads(line)
