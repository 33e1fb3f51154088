#!/usr/bin/env bash
# Front-end for the e2e tier (tests/e2e): runs test modules, classes or single
# tests against a built egressd, as root, each in its own network namespaces
# and cgroup (nothing is sent from the host's network namespace).
#
#   sudo scripts/testworld.sh                          # every tests/e2e/test_*.py
#   sudo scripts/testworld.sh test_blocked             # one module
#   sudo scripts/testworld.sh test_lifecycle.Reload.test_valid_reload_takes_effect
#   sudo scripts/testworld.sh --reap                   # tear down worlds left by killed runs
#
# EGRESSD_BIN picks the binary (default build/egressd). Exit 77 means the host
# cannot run the tier (not root, no BPF); with CI=true that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "run as root (sudo $0)" >&2; exit 1; }
export EGRESSD_BIN="${EGRESSD_BIN:-$PWD/build/egressd}"
export PYTHONDONTWRITEBYTECODE=1
if [[ "${1:-}" == "--reap" ]]; then
  exec python3 -c 'import sys; sys.path.insert(0, "tests/e2e"); import world; world.reap_stale()'
fi
exec python3 tests/e2e/run.py "$@"
