"""The world's DNS server and real origins (used by world.py).

DNS: dnsmasq on DNS4 in the world netns (UDP and TCP), answering only the
names below (everything under .test it does not know is NXDOMAIN; it has no
upstream, so other names are REFUSED) and logging every query to a file.
Every World runs it; processes started with World.agent() resolve through it
(their /etc/resolv.conf and /etc/hosts are bind-mounted in a private mount
namespace), and egressd gets it as --dns-upstream.

Origins (World(origins=True)): nginx in the world netns on the ORIGIN hosts,
instead of the openssl s_server and the python HTTP server there:

    ORIGIN4/ORIGIN6 : 80 (HTTP), 443 (TLS, h2 and http/1.1)
    ALT_TLS_HOSTS   : 8443 (TLS)

one certificate for every name (signed by the world's CA, World.ca); TLS
session tickets and the session cache are off, so every connection makes a
full handshake with a ClientHello that carries the SNI. Paths:

    /                 "hello from ADDR PORT\\n" (what servers.py's HTTP says)
    /whoami           "host=H sni=S addr=A port=P scheme=X\\n"
    /small.txt        SMALL_BODY
    /mid.bin          64 KiB of random bytes   (sha256 in World.files)
    /big.bin          32 MiB of random bytes   (sha256 in World.files)
    /allowed/...      "allowed METHOD URI\\n" (any method)
    /other/...        "other METHOD URI\\n" (any method)
    /simple/...       a PEP 503 index of one wheel (pkg_index.py): `pip
                      download egdemo --index-url https://allowed.test/simple/`
    /repo.git/...     git smart HTTP (git http-backend through fcgiwrap);
                      `git clone https://allowed.test/repo.git`, HEAD is
                      World.git_head, the tree has README and data.bin

Every request lands in World.origin_log() (one line each: server addr:port,
$host, SNI, method, URI, status, bytes, and the Upgrade and HTTP2-Settings
headers the origin received, "-" for none).
"""
import hashlib
import os
import subprocess
from pathlib import Path

from pkg_index import write_simple_index

DNS4 = "198.51.100.53"

# name -> addresses (A and AAAA records).
DNS_RECORDS = {
    "public.test": ["203.0.113.10", "2001:db8::10"],      # the existing TLS name
    "allowed.test": ["203.0.113.10", "2001:db8::10"],
    "v4only.test": ["203.0.113.10"],
    "v6only.test": ["2001:db8::10"],
    "other.test": ["203.0.113.7"],                         # served, not allowed by test policies
    "rebind.test": ["10.0.0.5"],                           # a public-looking name on a private address
    "rebind6.test": ["fd00::10"],
    "meta.test": ["169.254.169.254"],
    "a.wild.test": ["203.0.113.10"],
    "wild.test": ["203.0.113.10"],
    "api.anthropic.com": ["203.0.113.10", "2001:db8::10"],  # a name policies/claude-code.toml allows
    # The proxy's fallback (test_proxy_fallback.py): a dead first address,
    # then a live one (dnsmasq answers in this order).
    "refused.test": ["203.0.113.66", "203.0.113.10"],
    "unreach.test": ["203.0.113.88", "203.0.113.10"],
    "silent.test": ["203.0.113.77", "203.0.113.10"],
    "dead.test": ["203.0.113.66", "203.0.113.88"],
}
# Dead addresses (world.py): DEAD_CLOSED is a host of the world with no
# server (a SYN is answered with a reset); DEAD_UNREACH has an unreachable
# route in the agent netns (connect() fails with EHOSTUNREACH there);
# DEAD_SILENT reaches the world netns, where no host has it and nothing
# forwards it (SYNs vanish).
DEAD_CLOSED = "203.0.113.66"
DEAD_UNREACH = "203.0.113.88"
DEAD_SILENT = "203.0.113.77"
# name -> target (the target must be a name above).
CNAMES = {
    "alias.test": "allowed.test",
}
# The resolver tests' records (test_dns.py), not in the certificate:
# ech.test has an HTTPS record (type 65): priority 1, target ".", alpn h2,
# ipv4hint 203.0.113.10 and 10.0.0.5, an ech config (key 5), ipv6hint
# 2001:db8::10 and fd00::10; big.test a TXT record of BIG_TXT_STRINGS
# strings of 200 bytes (1.6 KB: more than a 1232-byte EDNS answer holds,
# so it takes TCP between egressd and dnsmasq, and from egressd to a client).
ECH_CONFIG_HEX = "0010fe0d000c0001000102030405060708090a"
HTTPS_RDATA_HEX = ("0001" "00"
                   "0001" "0003" "026832"
                   "0004" "0008" "cb00710a" "0a000005"
                   "0005" + f"{len(ECH_CONFIG_HEX) // 2:04x}" + ECH_CONFIG_HEX +
                   "0006" "0020" "20010db8000000000000000000000010" "fd000000000000000000000000000010")
BIG_TXT_STRINGS = 8
BIG_TXT = ["".join(chr(ord("a") + (i + j) % 26) for j in range(200)) for i in range(BIG_TXT_STRINGS)]
DNS_RAW_RECORDS = {"ech.test": (65, HTTPS_RDATA_HEX)}
# SRV records (apt asks `_http._tcp.<host>` first): name -> (target, port, priority, weight).
DNS_SRV_RECORDS = {"_http._tcp.allowed.test": ("allowed.test", 80, 0, 1),
                   "_http._tcp.other.test": ("other.test", 80, 0, 1)}
DNS_TXT_RECORDS = {"big.test": BIG_TXT}

# Answered by the certificate, not by DNS (tests use them with curl --resolve).
CERT_ONLY_NAMES = ["nodns.test", "moving.test"]  # moving.test: in the moving DNS server (moving_dnsmasq_cmd)
CERT_NAMES = sorted(set(DNS_RECORDS) | set(CNAMES) | set(CERT_ONLY_NAMES))

ORIGIN4 = ["203.0.113.10", "203.0.113.7"]
ORIGIN6 = ["2001:db8::10"]
ORIGIN_HOSTS = ORIGIN4 + ORIGIN6
ALT_TLS_PORT = 8443
ALT_TLS_HOSTS = ["203.0.113.10", "2001:db8::10"]

SMALL_BODY = "small file from the e2e origin\n"
BIG_SIZE = 32 * 1024 * 1024
MID_SIZE = 64 * 1024

GIT_HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


def _ep(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def dnsmasq_cmd(tmp):
    """dnsmasq in the foreground: only its own records, queries logged."""
    args = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--no-poll", "--bind-interfaces", f"--listen-address={DNS4}", "--port=53", "--pid-file=",
            "--user=root", "--group=root", "--local=/test/", "--local-ttl=30", "--cache-size=0",
            "--log-queries=extra", f"--log-facility={tmp / 'dnsmasq.log'}"]
    for name, addrs in DNS_RECORDS.items():
        for a in addrs:  # one record holds one address per family: a record each
            args.append(f"--host-record={name},{a}")
    for name, target in CNAMES.items():
        args.append(f"--cname={name},{target}")
    for name, (rrtype, hexdata) in DNS_RAW_RECORDS.items():
        args.append(f"--dns-rr={name},{rrtype},{hexdata}")
    for name, (target, port, prio, weight) in DNS_SRV_RECORDS.items():
        args.append(f"--srv-host={name},{target},{port},{prio},{weight}")
    for name, strings in DNS_TXT_RECORDS.items():
        args.append(f"--txt-record={name}," + ",".join(strings))  # no shell: no quotes
    return args


def moving_dnsmasq_cmd(tmp, listen, hosts_file, ttl):
    """A second dnsmasq whose names come from `hosts_file` (a hosts file,
    re-read on SIGHUP: an answer that moves) with TTL `ttl`; it answers
    those names itself (no AAAA: an empty answer) and forwards every other
    name to the world's DNS server."""
    args = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--no-poll", "--bind-interfaces", f"--listen-address={listen}", "--port=53", "--pid-file=",
            "--user=root", "--group=root", f"--server={DNS4}", f"--addn-hosts={hosts_file}",
            f"--local-ttl={ttl}", "--cache-size=0", "--log-queries=extra",
            f"--log-facility={tmp / 'dnsmasq-moving.log'}"]
    for line in Path(hosts_file).read_text().splitlines():
        for name in line.split()[1:]:
            args.append(f"--local=/{name}/")
    return args


def _random_file(path, size):
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left > 0:
            chunk = os.urandom(min(left, 1 << 20))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    os.chmod(path, 0o644)
    return h.hexdigest()


def write_content(tmp):
    """The files nginx serves; returns {url path: sha256 hex}."""
    www = tmp / "www"
    www.mkdir(mode=0o755, exist_ok=True)
    (www / "small.txt").write_text(SMALL_BODY)
    files = {"/small.txt": hashlib.sha256(SMALL_BODY.encode()).hexdigest(),
             "/mid.bin": _random_file(www / "mid.bin", MID_SIZE),
             "/big.bin": _random_file(www / "big.bin", BIG_SIZE)}
    write_simple_index(www)
    return files


def make_git_repo(tmp):
    """A bare repository at tmp/git/repo.git with one commit; returns its hash."""
    git = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.test", "-c", "init.defaultBranch=main",
           "-c", "commit.gpgsign=false"]
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=str(tmp), GIT_TERMINAL_PROMPT="0")
    work = tmp / "git-work"
    bare = tmp / "git" / "repo.git"
    (tmp / "git").mkdir(mode=0o755)

    def run(*a, cwd=None):
        subprocess.run([*git, *a], cwd=cwd, env=env, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)

    run("init", "-q", str(work))
    (work / "README").write_text("egressd e2e repository\n")
    with open(work / "data.bin", "wb") as f:
        f.write(os.urandom(256 * 1024))
    run("add", "README", "data.bin", cwd=work)
    run("commit", "-q", "-m", "e2e", cwd=work)
    run("clone", "-q", "--bare", str(work), str(bare))
    run("update-server-info", cwd=bare)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, env=env, check=True, text=True,
                          stdout=subprocess.PIPE, timeout=30).stdout.strip()
    return head


def fcgiwrap_cmd(tmp):
    return ["fcgiwrap", "-c", "4", "-s", f"unix:{tmp / 'fcgiwrap.sock'}"]


def nginx_conf(tmp):
    d = tmp / "nginx"
    for sub in ("", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (d / sub).mkdir(mode=0o755, exist_ok=True)
    listens = []
    for h in ORIGIN_HOSTS:
        listens.append(f"listen {_ep(h, 80)} backlog=4096;")
        listens.append(f"listen {_ep(h, 443)} ssl http2 backlog=4096;")
    for h in ALT_TLS_HOSTS:
        listens.append(f"listen {_ep(h, ALT_TLS_PORT)} ssl backlog=4096;")
    listen_text = "\n        ".join(listens)
    conf = f"""\
daemon off;
master_process on;
worker_processes 2;
worker_rlimit_nofile 16384;
user root root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    log_format e2e '$server_addr:$server_port host=$host sni=$ssl_server_name "$request" $status $body_bytes_sent '
                   'upgrade=$http_upgrade http2_settings=$http_http2_settings';
    access_log {d}/access.log e2e;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    types {{ text/plain txt; text/html html; application/octet-stream bin whl; }}
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 10000;
    keepalive_timeout 30s;
    ssl_certificate {tmp}/leaf.pem;
    ssl_certificate_key {tmp}/leaf.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets off;
    ssl_session_cache off;
    server {{
        {listen_text}
        server_name _;
        root {tmp}/www;
        location = / {{ default_type text/plain; return 200 "hello from $server_addr $server_port\\n"; }}
        location = /whoami {{
            default_type text/plain;
            return 200 "host=$host sni=$ssl_server_name addr=$server_addr port=$server_port scheme=$scheme\\n";
        }}
        location /allowed/ {{ default_type text/plain; return 200 "allowed $request_method $uri\\n"; }}
        location /other/ {{ default_type text/plain; return 200 "other $request_method $uri\\n"; }}
        location ~ ^(/repo\\.git/.*)$ {{
            client_max_body_size 0;
            fastcgi_param SCRIPT_FILENAME {GIT_HTTP_BACKEND};
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param GIT_PROJECT_ROOT {tmp}/git;
            fastcgi_param PATH_INFO $1;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param REQUEST_URI $request_uri;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param SERVER_NAME $host;
            fastcgi_param HTTP_GIT_PROTOCOL $http_git_protocol;
            fastcgi_pass unix:{tmp}/fcgiwrap.sock;
        }}
    }}
}}
"""
    (d / "nginx.conf").write_text(conf)
    return ["nginx", "-p", f"{d}/", "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")]


def origin_endpoints():
    eps = [_ep(h, p) for h in ORIGIN_HOSTS for p in (80, 443)]
    eps += [_ep(h, ALT_TLS_PORT) for h in ALT_TLS_HOSTS]
    return eps
