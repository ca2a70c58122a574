#!/usr/bin/env bash
# The secret scan (issue 9): grep every log a test run kept for the secrets the emulator
# issued or was shown (access and session tokens, private keys, JWT assertions, request
# signatures; cloudvip-sim's `CLOUDVIP_SIM_SECRETS` files, one `kind<TAB>value` a line).
#   scripts/secret-scan.sh SECRETS_DIR LOGS_DIR
# Exit 0: none found; 1: a secret is in a log (the files and the kinds are named, the
# secrets are not printed); 2: nothing to scan (no secrets or no logs: the scan would prove
# nothing). scripts/test.sh runs it after the suite; tests/secret_scan.rs tests it.
set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 SECRETS_DIR LOGS_DIR" >&2; exit 2; }
secrets=$1 logs=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
find "$secrets" -type f -name '*.secrets' -exec cat {} + 2>/dev/null | sort -u > "$work/all" || true
cut -f2- "$work/all" | awk 'length($0) >= 16' | sort -u > "$work/patterns"
n=$(wc -l < "$work/patterns")
files=$(find "$logs" -type f 2>/dev/null | wc -l)
if [ "$n" = 0 ] || [ "$files" = 0 ]; then
    echo "secret-scan: $n secrets in $secrets, $files log files in $logs: nothing to scan" >&2
    exit 2
fi
if grep -rlF -f "$work/patterns" "$logs" > "$work/hits"; then
    echo "secret-scan: FAILED: secrets issued by the emulator are in $(wc -l < "$work/hits") log file(s):" >&2
    while read -r f; do
        # Which kinds leaked, and a short prefix to find them by; never the whole secret.
        grep -oF -f "$work/patterns" "$f" | sort -u | while read -r s; do
            kind=$(grep -F -- "$s" "$work/all" | head -1 | cut -f1)
            echo "  $f: $kind ${s:0:6}... (${#s} chars)" >&2
        done
    done < "$work/hits"
    exit 1
fi
echo "secret-scan: $n secrets issued by the emulator, $files log files: none found in any"
