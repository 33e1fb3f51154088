# tests/systemd/refence_checks.sh: sourced by inside.sh, which then calls
# refence_checks (its helpers: check, expect, expect_match, session, probe,
# result, until_ok, $T, $uid, $tmp). The fence kept on a slice's path when
# systemd removes the cgroup (issue 12 items 1, 2 and 7's detach warning):
#   - a parent slice stopped and started while sessions start in its child:
#     no process ever runs in the child unfenced;
#   - a user's slice stopped by its own manager with the daemon up: made
#     again for the user, and the user's next session in it is fenced;
#   - detach with the slice still active says that new sessions run unfenced.

# The fence-moved lines of a unit's log: "<ms> <made by>" each.
refence_moves() {
  journalctl -q -o cat -u "$1" | sed -n \
    's/.*fence moved onto .*: \(egressd made it again\|it was made again by someone else\).*; \([0-9.]*\) ms after the change was seen.*/\2 \1/p'
}

# "n=.. min=.. median=.. max=.. (ms)" of the first column of stdin.
ms_summary() {
  sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "n=%d min=%.1f median=%.1f max=%.1f ms", NR, v[1], v[int((NR + 1) / 2)], v[NR]; else print "n=0" }'
}

parent_slice_checks() {
  local svc=e2e-team-a cycles=10 i r bg
  # A daemon of its own, unsandboxed (transient service): the slice is a
  # child of team.slice, so stopping team.slice removes its cgroup too.
  check "egressd attach --cgroup team-a.slice (inside team.slice)" \
    systemd-run --quiet --unit=$svc -p Type=notify egressd attach --cgroup team-a.slice --policy /etc/egressd/e2e.toml
  expect_match "a session in team-a.slice is fenced" "cgroup=/team.slice/team-a.slice/run-.* result=EPERM\$" \
    "$(probe team-a.slice --uid=e2euser)"
  local ok_fenced=0 ok_bg=0 bg_results=""
  for ((i = 1; i <= cycles; i++)); do
    # One session starts while the parent is being stopped (it is either
    # stopped with it or starts after), one right after, one once the
    # parent is started again.
    probe team-a.slice --uid=e2euser >"$tmp/bg.$i" 2>&1 &
    bg=$!
    systemctl stop team.slice
    r=$(probe team-a.slice --uid=e2euser)
    [[ $(result "$r") == EPERM ]] && ok_fenced=$((ok_fenced + 1)) || echo "    cycle $i, after stop: $r"
    systemctl start team.slice
    r=$(probe team-a.slice --uid=e2euser)
    [[ $(result "$r") == EPERM ]] && ok_fenced=$((ok_fenced + 1)) || echo "    cycle $i, after start: $r"
    wait "$bg"
    r=$(result "$(cat "$tmp/bg.$i")")
    bg_results+=" ${r:-stopped}"
    [[ $r == EPERM || -z $r ]] && ok_bg=$((ok_bg + 1))
  done
  expect "$cycles stop/start cycles of team.slice: every session started after the stop or the start gets EPERM" \
    $((2 * cycles)) "$ok_fenced"
  expect "... and every session started during the stop gets EPERM or is stopped with the slice (got:$bg_results)" \
    "$cycles" "$ok_bg"
  local log
  log=$(journalctl -q -o cat -u $svc)
  check "no process ran in team-a.slice before it was fenced (egressd's warning)" \
    test -z "$(grep "before it was fenced" <<<"$log")"
  grep "before it was fenced" <<<"$log" | sed 's/^/    /'
  local moves
  moves=$(refence_moves $svc)
  echo "    re-fence after team.slice went, made by egressd: $(grep -c 'egressd made' <<<"$moves") of" \
    "$(grep -c . <<<"$moves"); $(ms_summary <<<"$moves")"
  check "egressd made team-a.slice again itself every time (never systemd first)" \
    test -z "$(grep 'someone else' <<<"$moves")"
  expect "$svc is still active" active "$(systemctl is-active $svc)"

  # ---- detach with the slice active: the warning -----------------------------
  local out
  out=$(egressd detach --cgroup team-a.slice 2>&1)
  expect_match "detach with team-a.slice active warns that new sessions run unfenced" \
    "warning: /sys/fs/cgroup/team.slice/team-a.slice still exists and is no longer fenced: every new session started in team-a.slice runs unfenced\\. \`systemctl stop team-a.slice\`" \
    "$out"
  until_ok 5 test "$(systemctl is-active $svc)" != active
  systemctl stop team.slice $svc 2>/dev/null
  systemctl reset-failed $svc 2>/dev/null
}

user_slice_checks() {
  local svc=e2e-user-claude r ucg
  # The user's manager (linger: no login needed); root attaches to its slice.
  loginctl enable-linger e2euser
  if ! until_ok 15 test -S "/run/user/$uid/systemd/private"; then
    bad "the user manager of e2euser did not start"
    loginctl disable-linger e2euser
    return
  fi
  # as_user CMD...: CMD as e2euser, talking to its own manager.
  as_user() { runuser -u e2euser -- env XDG_RUNTIME_DIR=/run/user/$uid "$@"; }
  usession() { as_user systemd-run --quiet --user --scope --slice=claude.slice -- python3 "$T/tests/probe.py" 10.0.0.5 80 2>&1; }
  check "egressd attach --user e2euser --cgroup claude.slice" \
    systemd-run --quiet --unit=$svc -p Type=notify egressd attach --user e2euser --cgroup claude.slice \
    --policy /etc/egressd/e2e.toml
  ucg=/sys/fs/cgroup/user.slice/user-$uid.slice/user@$uid.service/claude.slice
  expect_match "a user session in the user's claude.slice is fenced" \
    "^uid=$uid cgroup=/user.slice/user-$uid.slice/user@$uid.service/claude.slice/run-.* result=EPERM\$" "$(usession)"
  local before after
  before=$(stat -c '%u:%g %a' "$ucg")
  check "systemctl --user stop claude.slice (the user's manager removes the cgroup)" as_user systemctl --user stop claude.slice
  # egressd makes it again at once: wait for it (a new inode) to be fenced.
  moved() { journalctl -q -o cat -u $svc | grep -q "fence moved onto $ucg"; }
  check "egressd moved the fence onto the re-made cgroup" until_ok 5 moved
  after=$(stat -c '%u:%g %a' "$ucg")
  expect "made again with the owner and mode the user had (was $before)" "$before" "$after"
  expect "cgroup.procs handed over too" "$uid" "$(stat -c %u "$ucg/cgroup.procs")"
  check "systemctl --user start claude.slice" as_user systemctl --user start claude.slice
  r=$(usession)
  expect_match "the user's next session in claude.slice starts and is fenced" \
    "^uid=$uid cgroup=/user.slice/user-$uid.slice/user@$uid.service/claude.slice/run-.* result=EPERM\$" "$r"
  egressd detach --user e2euser --cgroup claude.slice >/dev/null 2>&1
  until_ok 5 test "$(systemctl is-active $svc)" != active
  systemctl stop $svc 2>/dev/null
  systemctl reset-failed $svc 2>/dev/null
  loginctl disable-linger e2euser
}

refence_checks() {
  echo "[$(ms) ms] ---- re-fence: parent slice, user slice, detach warning (refence_checks.sh)"
  parent_slice_checks
  user_slice_checks
}
