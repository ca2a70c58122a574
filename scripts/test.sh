#!/usr/bin/env bash
# The whole test suite: unit tests, the agent on real kernel networking in network
# namespaces, ocf-tester, crm_resource, the emulator and its conformance tests, and the
# .deb/.rpm (packaging/build.sh, packaging/install-test.sh).
# Needs root. Set CLOUDVIP_SKIP_SETUP=1 to skip the dependency check.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (network and mount namespaces, dpkg -i)" >&2; exit 1; }
[ "${CLOUDVIP_SKIP_SETUP:-0}" = 1 ] || scripts/setup-deps.sh
# The packages: built, linted and installed on this machine (dpkg -i) and into a scratch
# rpm root, then ocf-tester / crm_resource / pcs against the installed agent. The test
# binary then runs its own build from a private OCF root (tests/ocf_root.rs) and must
# leave the installed package's files alone: dpkg -V after it.
t0=$SECONDS
packaging/build.sh
packaging/install-test.sh
t_pkg=$((SECONDS - t0))
cargo build --workspace --all-targets --quiet
# The secret scan: the harnesses keep every log in CLOUDVIP_TEST_LOGS and every emulator
# lists the secrets it issued or was shown in CLOUDVIP_SIM_SECRETS; after the suite none of
# those secrets may be in any of those logs (scripts/secret-scan.sh).
scan=target/secret-scan
rm -rf "$scan"
mkdir -p "$scan/logs" "$scan/secrets"
export CLOUDVIP_TEST_LOGS=$PWD/$scan/logs CLOUDVIP_SIM_SECRETS=$PWD/$scan/secrets
rc=0
t0=$SECONDS
cargo nextest run --workspace --no-fail-fast --failure-output final "$@" || rc=$?
t_tests=$((SECONDS - t0))
if dpkg-query -W -f '${Status}' cloudvip 2>/dev/null | grep -q 'install ok installed'; then
    changed=$(dpkg -V cloudvip)
    [ -z "$changed" ] || { echo "test.sh: FAIL: the tests changed the installed package:" >&2
                           echo "$changed" >&2; rc=1; }
    echo "test.sh: dpkg -V cloudvip: ${changed:-clean}"
fi
scanned=0
scripts/secret-scan.sh "$scan/secrets" "$scan/logs" || scanned=$?
# Nothing to scan is a failure for the whole suite, not for a filtered run ("$@").
if [ "$scanned" = 1 ] || { [ "$scanned" = 2 ] && [ $# = 0 ]; }; then rc=1; fi
echo "test.sh: packages + install tests ${t_pkg}s, test binary ${t_tests}s (rc=$rc)"
exit $rc
