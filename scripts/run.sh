#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to an enforcing fence:
# installs the dependencies, builds, and runs `egressd attach` in the
# foreground on claude.slice (or $EGRESSD_CGROUP) with the shipped Claude
# Code policy (or $EGRESSD_POLICY). Ctrl-C stops the daemon; the fence stays
# (pinned) until `build/egressd detach --cgroup claude.slice`.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "run as root (sudo $0)" >&2; exit 1; }
scripts/install-deps.sh
scripts/build.sh -DEGRESSD_BUILD_TESTS=OFF
exec build/egressd attach --cgroup "${EGRESSD_CGROUP:-claude.slice}" --policy "${EGRESSD_POLICY:-policies/claude-code.toml}"
