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
# The hosts the shipped Claude Code policy names ("*.x" as "wild.x"), served
# by the test DNS like no.test: only egressd's resolver tells them apart.
prefix=$(dirname "$(dirname "$(command -v egressd)")")
mapfile -t cc_hosts < <(sed -n 's/^host = "\(.*\)"$/\1/p' "$prefix/share/egressd/policies/claude-code.toml" |
  sed 's/^\*\./wild./')
((${#cc_hosts[@]} >= 3)) || { echo "FAIL: no hosts in $prefix/share/egressd/policies/claude-code.toml"; exit 1; }
printf '%s\n' "${cc_hosts[@]}" >/etc/e2e-claude-hosts
dns_names=()
for h in ok.test no.test "${cc_hosts[@]}"; do dns_names+=("--address=/$h/203.0.113.10"); done
systemd-run --quiet --unit=e2e-dns dnsmasq --keep-in-foreground --conf-file=/dev/null --pid-file= --user=root \
  --no-resolv --no-hosts --listen-address=10.0.0.53 --bind-interfaces "${dns_names[@]}"
useradd --system --no-create-home --shell /usr/sbin/nologin e2euser
uid=$(id -u e2euser)
# The README's commands are typed by a user with sudo rights, in a directory of theirs.
echo 'e2euser ALL=(ALL) NOPASSWD: ALL' >/etc/sudoers.d/e2euser && chmod 0440 /etc/sudoers.d/e2euser
grep -qsw "$(hostname)" /etc/hosts || echo "127.0.1.1 $(hostname)" >>/etc/hosts  # sudo looks itself up
install -d -o e2euser /srv/e2e-work
# A stand-in for Claude Code: who and where it runs, what it reaches.
cat >/usr/local/bin/claude <<END_CLAUDE
#!/bin/bash
echo "uid=\$(id -u) user=\$USER pwd=\$PWD"
echo "groups=\$(id -G)"
cg=\$(sed -n 's/^0:://p' /proc/self/cgroup)
echo "cgroup=\$cg"
if cat "/sys/fs/cgroup\$cg/cgroup.procs" "/sys/fs/cgroup\$cg/cgroup.events" >/dev/null; then
  echo "cgroup-files=readable"
else
  echo "cgroup-files=unreadable"
fi
while read -r h; do getent hosts "\$h" >/dev/null && echo "resolve \$h ok" || echo "resolve \$h failed"; done \
  </etc/e2e-claude-hosts
getent hosts no.test >/dev/null && echo "resolve no.test ok" || echo "resolve no.test failed"
echo "api=\$(curl -sS -m 10 http://api.anthropic.com/ 2>&1)"
echo "sudo=\$(sudo -n id -u 2>/dev/null || echo refused)"
python3 $T/tests/probe.py 10.0.0.5 80
END_CLAUDE
chmod 0755 /usr/local/bin/claude
# Whether the install made /etc/egressd (checked below, before anything else writes there).
install_confdir=$(ls /etc/egressd 2>&1)
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
expect "the install made /etc/egressd with the example env file" instance.env.example "$install_confdir"
expect_match "egressd@claude's policy: claude-code.toml (its drop-in)" \
  "EGRESSD_POLICY=$prefix/share/egressd/policies/claude-code.toml" "$(prop "$unit" Environment)"
expect_match "egressd@other's policy: default.toml" "EGRESSD_POLICY=$prefix/share/egressd/policies/default.toml" \
  "$(prop egressd@other.service Environment)"
# A copy of claude.slice under another name needs no edits (the README's team-a).
cp "$(prop claude.slice FragmentPath)" /etc/systemd/system/team-a.slice && systemctl daemon-reload
expect_match "copy to team-a.slice: Wants=egressd@team-a.service" '(^| )egressd@team-a\.service( |$)' \
  "$(prop team-a.slice Wants)"
expect_match "copy to team-a.slice: After= it" '(^| )egressd@team-a\.service( |$)' "$(prop team-a.slice After)"
expect "copy to team-a.slice: its Description" \
  "Agent sessions in team-a.slice (egress fenced by egressd@team-a.service)" "$(prop team-a.slice Description)"
r=$(probe team-a.slice --uid=e2euser)
expect_match "copy to team-a.slice: a session starts egressd@team-a first, and is fenced" \
  "cgroup=/team.slice/team-a.slice/.* result=EPERM\$" "$r"
expect "... the slice's assertion held: /run/egressd/team-a.slice.ready" active/yes \
  "$(systemctl is-active team-a.slice)/$(prop team-a.slice AssertResult)"
expect_match "... egressd@team-a's policy: default.toml" "policy: +$prefix/share/egressd/policies/default.toml" \
  "$(egressd status | grep -A3 '/team.slice/team-a.slice ')"
systemctl stop egressd@team-a && systemctl stop team.slice && egressd detach --stale >/dev/null
rm /etc/systemd/system/team-a.slice && systemctl daemon-reload

# ---- the README's systemd section, run as written -----------------------------
# Its ```sh blocks, line by line, typed by e2euser (sudo rights, not root) in
# a directory of theirs, on the freshly installed units. `claude` is the
# stand-in above. `egressd tail` runs in the background, as in another
# terminal. After each line, the checks for what that line promises; a line
# the test knows nothing of fails, and so does a known step the README lost.

readme=$prefix/share/doc/egressd/README.md
mapfile -t readme_lines < <(awk '/^## / { in_sec = ($0 == "## systemd") } in_sec && /^```/ { in_code = !in_code; next }
  in_sec && in_code && NF' "$readme")
as_user() { runuser -u e2euser -- bash -c "cd /srv/e2e-work && $1"; }
declare -A readme_seen=()
readme_tail_pid=""
readme_step() {  # readme_step LINE OUTPUT: what LINE promises
  local line=$1 out=$2 step
  case $line in
    "sudo systemctl daemon-reload"*) step=daemon-reload ;;
    "sudo systemctl enable --now egressd@claude"*)
      step=enable
      expect "README enable: egressd@claude active" active "$(systemctl is-active "$unit")"
      expect "README enable: egressd@claude enabled" enabled "$(systemctl is-enabled "$unit")"
      expect_match "README enable: the policy is claude-code.toml" \
        "policy: +$prefix/share/egressd/policies/claude-code.toml \\(generation 1" "$(egressd status)"
      # made by egressd under UMask=0077, as systemd would make it
      expect "README enable: /sys/fs/cgroup/claude.slice is 0755 root:root" "755 root:root" \
        "$(stat -c '%a %U:%G' /sys/fs/cgroup/claude.slice)" ;;
    "sudo egressd tail"*)
      step=tail
      # Without sudo: told why and what to do, not "no daemon is running".
      local rc=0
      out=$(runuser -u e2euser -- egressd tail 2>&1) || rc=$?
      expect "egressd tail as a user: exit status 1" 1 "$rc"
      expect_match "egressd tail as a user: permission denied, and how to get access" \
        "permission denied on /run/egressd/[0-9]+\\.sock.*sudo egressd tail" "$out"
      check "egressd tail as a user: not 'no egressd daemon is running'" \
        test "${out/no egressd daemon is running/}" == "$out"
      echo "    (egressd tail as a user said: ${out//$'\n'/ | })" ;;
    "sudo systemd-run --slice=claude.slice "*" claude"*)
      step=session
      echo "    (claude said: ${out//$'\n'/ | })"
      expect_match "README session: claude runs as e2euser, in its directory" \
        "^uid=$uid user=e2euser pwd=/srv/e2e-work\$" "$(grep '^uid=.* user=' <<<"$out")"
      expect "README session: only e2euser's own group (none of root's)" "groups=$(id -g e2euser)" \
        "$(grep '^groups=' <<<"$out")"
      expect "README session: sudo refused (NoNewPrivileges), though e2euser may sudo" sudo=refused \
        "$(grep '^sudo=' <<<"$out")"
      expect_match "README session: in a unit of claude.slice" '^cgroup=/claude.slice/run-[^ /]+\.service$' \
        "$(grep '^cgroup=' <<<"$out")"
      expect "README session: reads its own cgroup's files" cgroup-files=readable "$(grep '^cgroup-files=' <<<"$out")"
      local h
      for h in "${cc_hosts[@]}"; do
        expect "README session: $h resolves (claude-code.toml)" "resolve $h ok" "$(grep "^resolve $h " <<<"$out")"
      done
      expect "README session: no.test does not resolve" "resolve no.test failed" "$(grep '^resolve no.test ' <<<"$out")"
      expect "README session: http://api.anthropic.com/ through the proxy" api=egressd-e2e-ok "$(grep '^api=' <<<"$out")"
      expect_match "README session: 10.0.0.5:80 refused" "^uid=$uid cgroup=/claude.slice/.* result=EPERM\$" \
        "$(grep '^uid=.*result=' <<<"$out")"
      readme_tail_has() { grep -q "$1" "$tmp/readme-tail"; }
      check "README tail: python3's deny of 10.0.0.5, uid $uid" \
        until_ok 5 readme_tail_has "python3\\[[0-9]*\\] deny tcp 10.0.0.5:80 private via connect4 uid $uid"
      check "README tail: no.test dns-name-not-allowed" until_ok 5 readme_tail_has "no.test.*dns-name-not-allowed" ;;
    "sudo cp $prefix/share/egressd/policies/claude-code.toml /etc/egressd/claude.toml"*)
      step=cp
      check "README cp: /etc/egressd/claude.toml" cmp "$prefix/share/egressd/policies/claude-code.toml" \
        /etc/egressd/claude.toml ;;
    "echo EGRESSD_POLICY=/etc/egressd/claude.toml | sudo tee /etc/egressd/claude.env"*)
      step=env
      expect "README env: /etc/egressd/claude.env" EGRESSD_POLICY=/etc/egressd/claude.toml "$(cat /etc/egressd/claude.env)" ;;
    "sudo systemctl reload egressd@claude"*)
      step=reload
      expect_match "README reload: /etc/egressd/claude.toml in force" \
        "policy: +/etc/egressd/claude.toml \\(generation 2" "$(egressd status)" ;;
    "sudo systemctl stop egressd@claude"*)
      step=stop-egressd
      expect "README stop egressd: claude.slice stays active" active "$(systemctl is-active claude.slice)"
      expect "README stop egressd: a session is still fenced" EPERM "$(result "$(probe claude.slice --uid=e2euser)")" ;;
    "sudo systemctl stop claude.slice"*)
      step=stop-slice
      expect "README stop slice: inactive" inactive "$(systemctl is-active claude.slice)"
      check "README stop slice: its cgroup is gone, nobody made it again" test ! -e /sys/fs/cgroup/claude.slice ;;
    "sudo egressd detach --cgroup claude.slice"*)
      step=detach
      expect_match "README detach: removes the stale pins" "stale pins of removed cgroup id [0-9]+ removed" "$out"
      expect "README detach: no fence left" "" "$(egressd status 2>&1 | grep claude.slice)" ;;
    "sudo systemctl disable egressd@claude"*)
      step=disable
      expect "README disable: egressd@claude disabled" disabled "$(systemctl is-enabled "$unit")" ;;
    *) bad "README: a line this test does not know: $line"; return ;;
  esac
  [[ -z ${readme_seen[$step]:-} ]] || bad "README: step $step twice"
  readme_seen[$step]=1
}
for line in "${readme_lines[@]}"; do
  if [[ $line == *"egressd tail"* ]]; then
    timeout 120 runuser -u e2euser -- bash -c "cd /srv/e2e-work && $line" >"$tmp/readme-tail" 2>&1 &
    readme_tail_pid=$!
    check "README: $line (follows)" until_ok 10 grep -q "egressd tail: following" "$tmp/readme-tail"
    out=""
  else
    rc=0; out=$(as_user "$line" 2>&1) || rc=$?
    out=${out//$'\r'/}  # --pty: the session's terminal ends lines with \r\n
    if ((rc == 0)); then ok "README: $line"; else bad "README: $line" "(exit $rc: ${out//$'\n'/ | })"; fi
  fi
  readme_step "$line" "$out"
done
for step in daemon-reload enable tail session cp env reload stop-egressd stop-slice detach disable; do
  [[ -n ${readme_seen[$step]:-} ]] || bad "README: the step '$step' is gone from its systemd section"
done
[[ -n $readme_tail_pid ]] && { kill "$readme_tail_pid" 2>/dev/null; wait "$readme_tail_pid" 2>/dev/null; }


# Back to a fresh install for the checks below (the README left the slice
# stopped, unfenced and egressd@claude disabled).
systemctl stop "$unit" claude.slice
rm -f /etc/egressd/claude.env /etc/egressd/claude.toml
systemctl reset-failed "$unit" claude.slice 2>/dev/null

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
expect_match "egressd status: egressd@claude's default policy" "policy: +$prefix/share/egressd/policies/claude-code.toml" "$st"
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

# ---- detach with the slice active: what the user sees ------------------------
# The README says: detach stops egressd@claude and unfences, the active slice
# stays active and its new sessions run unfenced until it is stopped; the next
# start of the slice fences it again.

session claude.slice --uid=e2euser --unit=e2e-long -- sleep 60 >/dev/null 2>&1 &
long_pid=$!
check "a session runs in claude.slice" until_ok 5 systemctl is-active --quiet e2e-long.scope
rc=0; out=$(egressd detach --cgroup claude.slice 2>&1) || rc=$?
expect "detach with the slice active: exit status 0" 0 "$rc"
expect_match "detach: says the fence is removed" "/sys/fs/cgroup/claude.slice: fence removed" "$out"
echo "    (detach said: ${out//$'\n'/ | })"
expect "detach stopped $unit (cleanly: not restarted)" inactive "$(systemctl is-active "$unit")"
check "detach: the slice's marker is gone" test ! -e /run/egressd/claude.slice.ready
expect "detach: claude.slice stays active" active "$(systemctl is-active claude.slice)"
rc=0; st=$(egressd status 2>/dev/null) || rc=$?
expect "detach: egressd status exits 3 (a cgroup is UNFENCED)" 3 "$rc"
expect_match "detach: egressd status shows claude.slice UNFENCED, and why" \
  '/sys/fs/cgroup/claude.slice \(cgroup id [0-9]+\)'$'\n''  fence: +UNFENCED: detached at [^;]+; [1-9][0-9]* process(es)? in it; new sessions run unfenced' "$st"
expect "detach: a new session in the active slice runs unfenced, as documented" ok \
  "$(result "$(probe claude.slice --uid=e2euser)")"
expect "detach: the running session goes on" active "$(systemctl is-active e2e-long.scope)"
check "systemctl stop claude.slice (ends its sessions)" systemctl stop claude.slice
expect "... the running session ended with it" inactive "$(systemctl is-active e2e-long.scope)"
expect "... egressd status no longer shows the stopped slice detached" "" "$(egressd status 2>&1 | grep 'detached at')"
wait "$long_pid" 2>/dev/null
expect "after stop: the next session starts the slice, and egressd@claude first: fenced" EPERM \
  "$(result "$(probe claude.slice --uid=e2euser)")"
expect "$unit active again" active "$(systemctl is-active "$unit")"

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
