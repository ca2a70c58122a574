#!/usr/bin/env bash
# The whole test suite: unit tests, the agent on real kernel networking in network
# namespaces, ocf-tester, crm_resource, the emulator and its conformance tests, and the
# .deb/.rpm (packaging/build.sh, packaging/install-test.sh).
# Needs root. Set CLOUDVIP_SKIP_SETUP=1 to skip the dependency check.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (network namespaces, /usr/lib/ocf)" >&2; exit 1; }
[ "${CLOUDVIP_SKIP_SETUP:-0}" = 1 ] || scripts/setup-deps.sh
# The packages: built, linted and installed on this machine (dpkg -i) and into a scratch
# rpm root, then ocf-tester / crm_resource / pcs against the installed agent. Before the
# test binary, which re-installs its own build of the agent for the OCF tool tests.
packaging/build.sh
packaging/install-test.sh
cargo build --workspace --all-targets --quiet
exec cargo nextest run --workspace --no-fail-fast --failure-output final "$@"
