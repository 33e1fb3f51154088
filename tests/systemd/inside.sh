#!/usr/bin/env bash
# The systemd e2e checks, run inside the container (systemd as PID 1, its own
# network namespace) as a service of its systemd, by run.sh. Every address
# used lives on the container's loopback: nothing leaves its namespace.
#
# Sessions are real systemd scopes (`systemd-run --scope --slice=...`);
# probe.py reports the uid, cgroup and errno of one connect.
set -uo pipefail

T=/opt/egressd-e2e
tmp=$(mktemp -d)
unit=egressd@claude.service
passed=0
failed=()
t0=$(date +%s%N)
ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }
ok() { echo "[$(ms) ms] ok   $*"; passed=$((passed + 1)); }
bad() { echo "[$(ms) ms] FAIL $*"; failed+=("$1"); }
# check NAME CMD...: CMD's status decides.
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
# expect NAME WANT GOT
expect() { if [[ $3 == "$2" ]]; then ok "$1"; else bad "$1" "(want '$2', got '$3')"; fi; }
expect_match() { if [[ $3 =~ $2 ]]; then ok "$1"; else bad "$1" "(want /$2/, got '$3')"; fi; }
prop() { systemctl show -p "$2" --value "$1"; }

# session SLICE [--uid=U] -- CMD...: CMD in a new scope of SLICE.
session() {
  local slice=$1; shift
  local opts=()
  while [[ $1 != -- ]]; do opts+=("$1"); shift; done
  shift
  systemd-run --quiet --scope --slice="$slice" "${opts[@]}" -- "$@"
}
# probe SLICE [--uid=U]: "uid=.. cgroup=.. result=.." of a connect to 10.0.0.5:80.
probe() { session "$@" -- python3 "$T/tests/probe.py" 10.0.0.5 80 2>&1; }
result() { sed -n 's/.* result=//p' <<<"$1"; }
# until_ok SECONDS CMD...: poll CMD (every 0.1 s) until it succeeds or time is up.
until_ok() {
  local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
  while (( $(date +%s%N) < deadline )); do "$@" && return 0; sleep 0.1; done
  return 1
}
port_open() { [[ $(python3 "$T/tests/probe.py" "$1" "$2") == *result=ok ]]; }
fenced_now() { [[ $(result "$(probe claude.slice)") == EPERM ]]; }

# ---- setup: install, addresses, servers, a user -----------------------------

# The install rules' output, onto the volatile root (/lib may be a symlink).
tar -C "$T/stage" -cf - . | tar -C / -xf - --keep-directory-symlink || { echo "FAIL: install"; exit 1; }
systemctl daemon-reload
for a in 10.0.0.5 10.0.0.53 203.0.113.10; do ip addr add "$a/32" dev lo; done
echo "nameserver 10.0.0.53" >/etc/resolv.conf
mkdir -p /srv/www && echo egressd-e2e-ok >/srv/www/index.html
systemd-run --quiet --unit=e2e-web-private python3 -m http.server --bind 10.0.0.5 --directory /srv/www 80
systemd-run --quiet --unit=e2e-web-public python3 -m http.server --bind 203.0.113.10 --directory /srv/www 80
systemd-run --quiet --unit=e2e-dns dnsmasq --keep-in-foreground --conf-file=/dev/null --pid-file= --user=root \
  --no-resolv --no-hosts --listen-address=10.0.0.53 --bind-interfaces --address=/ok.test/203.0.113.10 \
  --address=/no.test/203.0.113.10
useradd --system --no-create-home --shell /usr/sbin/nologin e2euser
uid=$(id -u e2euser)
mkdir -p /etc/egressd
cat >/etc/egressd/e2e.toml <<'EOF'
version = 1
events = "deny"
[dns]
upstream = ["10.0.0.53"]
[[allow]]
host = "ok.test"
EOF
until_ok 10 port_open 10.0.0.5 80 && until_ok 10 port_open 203.0.113.10 80 &&
  until_ok 10 getent hosts ok.test >/dev/null || { echo "FAIL: test servers did not come up"; exit 1; }
echo "[$(ms) ms] setup done"

# ---- the unit files ------------------------------------------------------------

out=$(systemd-analyze verify --man=no "$unit" claude.slice 2>&1)
check "systemd-analyze verify: no complaints${out:+: $out}" test -z "$out"
# The sandbox, as systemd rates it (lower is better; 2.4 when written).
score=$(systemd-analyze security --no-pager "$unit" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
check "systemd-analyze security $unit: exposure ${score:-?} <= 2.5" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.5) }'

# ---- enable --now: Type=notify returns after the fence is in force -----------

start_ms=$(ms)
check "systemctl enable --now egressd@claude" systemctl enable --now egressd@claude
# No polling here: READY=1 comes after the attach, so the fence is already up.
expect "a session is fenced as soon as start returns" EPERM "$(result "$(probe claude.slice)")"
echo "    (start took $(( $(ms) - start_ms )) ms, with the probe)"
expect "$unit is active" active "$(systemctl is-active "$unit")"
expect "$unit is enabled" enabled "$(systemctl is-enabled "$unit")"
expect "Type=notify" notify "$(prop "$unit" Type)"
expect "StatusText from READY" "enforcing on /sys/fs/cgroup/claude.slice" "$(prop "$unit" StatusText)"
expect_match "systemctl status shows the STATUS line" 'Status: "enforcing on /sys/fs/cgroup/claude.slice"' \
  "$(systemctl status --no-pager "$unit")"
expect "egressd runs outside the fence" /system.slice/system-egressd.slice/$unit "$(prop "$unit" ControlGroup)"
check "the slice's marker file" test -e /run/egressd/claude.slice.ready
mainpid=$(prop "$unit" MainPID)
st=$(egressd status)
expect_match "egressd status: claude.slice enforcing" '/sys/fs/cgroup/claude.slice \(cgroup id [0-9]+\)'$'\n''  fence: +enforcing' "$st"
expect_match "egressd status: the unit's default policy" "policy: +/[^ ]*/share/egressd/policies/default.toml" "$st"
expect_match "egressd status: daemon = MainPID" "daemon: +running, pid $mainpid," "$st"

# ---- sessions: fenced in claude.slice, root and user; not elsewhere ----------

r=$(probe claude.slice)
expect_match "root session in claude.slice: EPERM" '^uid=0 cgroup=/claude.slice/run-[^ ]+\.scope result=EPERM$' "$r"
r=$(probe claude.slice --uid=e2euser)
expect_match "user session in claude.slice: EPERM" "^uid=$uid cgroup=/claude.slice/run-[^ ]+\\.scope result=EPERM\$" "$r"
rc=0; session claude.slice --uid=e2euser -- curl -sS -m 5 -o /dev/null http://10.0.0.5/ 2>/dev/null || rc=$?
expect "user session: curl http://10.0.0.5/ exits 7 (connect refused by the fence)" 7 "$rc"
r=$(probe system.slice)
expect_match "root session in system.slice: connects" '^uid=0 cgroup=/system.slice/run-[^ ]+\.scope result=ok$' "$r"
r=$(probe system.slice --uid=e2euser)
expect_match "user session in system.slice: connects" "^uid=$uid cgroup=/system.slice/run-[^ ]+\\.scope result=ok\$" "$r"

# ---- egressd tail sees the block, with its reason ----------------------------

timeout 30 egressd tail --cgroup claude.slice >"$tmp/tail" 2>&1 &
tail_pid=$!
# tail connects on its own time: block until it has shown a line.
tail_saw() { probe claude.slice --uid=e2euser >/dev/null; grep -q "deny tcp 10.0.0.5:80 private" "$tmp/tail"; }
check "egressd tail: the block with reason 'private'" until_ok 10 tail_saw
expect_match "egressd tail: python3, the user's uid" "python3\\[[0-9]+\\] deny tcp 10.0.0.5:80 private via connect4 uid $uid" \
  "$(cat "$tmp/tail")"

# ---- reload: EnvironmentFile picks the policy ---------------------------------

echo "EGRESSD_POLICY=/etc/egressd/e2e.toml" >/etc/egressd/claude.env
check "systemctl reload $unit" systemctl reload "$unit"
expect_match "egressd status: /etc/egressd/e2e.toml in force" "policy: +/etc/egressd/e2e.toml \\(generation 2" "$(egressd status)"

# ---- the proxy and the resolver work under the unit's sandbox ---------------

body() { session claude.slice --uid=e2euser -- curl -sS -m 10 "$@" 2>&1; }
expect "user session: curl http://ok.test/ (allowed host, via resolver and proxy)" egressd-e2e-ok "$(body http://ok.test/)"
rc=0; session claude.slice --uid=e2euser -- curl -sS -m 10 -o /dev/null http://no.test/ 2>/dev/null || rc=$?
expect "user session: curl http://no.test/ exits 6 (name not resolved)" 6 "$rc"
code=$(body -o /dev/null -w '%{http_code}' --resolve no.test:80:203.0.113.10 http://no.test/)
expect "user session: HTTP to a host no rule allows: 403 from the proxy" 403 "$code"
seen() { grep -q "$1" "$tmp/tail"; }
check "egressd tail: dns-name-not-allowed" until_ok 5 seen "no.test.*dns-name-not-allowed"
check "egressd tail: host-not-allowed" until_ok 5 seen "no.test.*host-not-allowed"

# ---- killing egressd keeps the fence; Restart=on-failure brings it back ------

check "systemctl kill -s KILL $unit" systemctl kill -s KILL "$unit"
expect "right after the kill: a session is still fenced" EPERM "$(result "$(probe claude.slice --uid=e2euser)")"
restarted() { [[ $(systemctl is-active "$unit") == active && $(prop "$unit" MainPID) != "$mainpid" ]]; }
check "Restart=on-failure: active again with a new MainPID" until_ok 15 restarted
expect "NRestarts=1" 1 "$(prop "$unit" NRestarts)"
expect "after the restart: a session is fenced" EPERM "$(result "$(probe claude.slice)")"
expect "after the restart: the proxy serves ok.test again" egressd-e2e-ok "$(body http://ok.test/)"
expect_match "egressd status: daemon = the new MainPID" "daemon: +running, pid $(prop "$unit" MainPID)," "$(egressd status)"

# ---- stopping egressd leaves the slice and the fence --------------------------

check "systemctl stop $unit" systemctl stop "$unit"
expect "claude.slice stays active" active "$(systemctl is-active claude.slice)"
expect "egressd stopped: a session is still fenced" EPERM "$(result "$(probe claude.slice --uid=e2euser)")"
rc=0; body --resolve ok.test:80:203.0.113.10 http://ok.test/ >/dev/null || rc=$?
expect "egressd stopped: web fails closed (no proxy: curl exits 7)" 7 "$rc"
check "the slice's marker is gone" test ! -e /run/egressd/claude.slice.ready
check "systemctl start $unit again" systemctl start "$unit"
expect "restarted daemon adopted the pins: a session is fenced" EPERM "$(result "$(probe claude.slice)")"

# ---- re-creating the slice's cgroup: the daemon re-attaches ------------------
# (egressd watches the slice; needs the re-attach work.)

check "systemctl stop claude.slice" systemctl stop claude.slice
expect "$unit stays active" active "$(systemctl is-active "$unit")"
check "systemctl start claude.slice" systemctl start claude.slice
check "after stop+start of claude.slice: a new session is fenced (within 5 s)" until_ok 5 fenced_now
check "systemctl restart claude.slice" systemctl restart claude.slice
check "after restart of claude.slice: a new session is fenced (within 5 s)" until_ok 5 fenced_now

# ---- a session pulls in the fence; no fence, no session ----------------------

systemctl stop claude.slice "$unit"
echo "EGRESSD_POLICY=/etc/egressd/missing.toml" >/etc/egressd/claude.env
rc=0; out=$(session claude.slice -- echo ran 2>&1) || rc=$?
check "egressd cannot start: a session in claude.slice is refused" test "$rc" -ne 0 -a "${out/ran/}" == "$out"
expect "... claude.slice did not start: its AssertPathExists= failed" inactive/no \
  "$(systemctl is-active claude.slice)/$(prop claude.slice AssertResult)"
systemctl stop "$unit"  # ends its restart attempts
systemctl reset-failed "$unit" claude.slice 2>/dev/null
echo "EGRESSD_POLICY=/etc/egressd/e2e.toml" >/etc/egressd/claude.env
r=$(probe claude.slice --uid=e2euser)
expect_match "a session in the stopped slice starts egressd first, and is fenced" "cgroup=/claude.slice/.* result=EPERM\$" "$r"
expect "$unit was pulled in" active "$(systemctl is-active "$unit")"

# ---- re-fence: parent slice, user slice, detach warning -----------------------
# (tests/systemd/refence_checks.sh; needs `bad`, `ok` and the helpers above.)

. "$T/tests/refence_checks.sh"
refence_checks

# ---- done ----------------------------------------------------------------------

kill "$tail_pid" 2>/dev/null
wait "$tail_pid" 2>/dev/null
rm -rf "$tmp"
echo "[$(ms) ms] $passed passed, ${#failed[@]} failed"
for f in "${failed[@]}"; do echo "  failed: $f"; done
((${#failed[@]} == 0))
