#!/usr/bin/env python3
"""probe.py HOST PORT: one TCP connect from this process.

Prints "uid=U cgroup=CG result=R", R being "ok" or the errno name (EPERM,
ECONNREFUSED, ...), so the caller can tell which slice the probe ran in and
how the connect ended."""
import errno
import os
import socket
import sys


def main() -> int:
    host, port = sys.argv[1], int(sys.argv[2])
    with open("/proc/self/cgroup") as f:
        cgroup = f.read().strip().split("::", 1)[-1]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        try:
            s.connect((host, port))
            result = "ok"
        except socket.timeout:
            result = "timeout"
        except OSError as e:
            result = errno.errorcode.get(e.errno, str(e.errno))
    print(f"uid={os.getuid()} cgroup={cgroup} result={result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
