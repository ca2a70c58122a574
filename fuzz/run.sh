#!/usr/bin/env bash
# Build the fuzz targets with libFuzzer on the stable toolchain (the coverage
# instrumentation cargo-fuzz would ask for, without a sanitizer: safe Rust needs none) and
# run each for a while:
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
# Every input under fuzz/seeds/<target>/ seeds the corpus, and every input under
# fuzz/regressions/<target>/ (crashes found before) is replayed first: a regression fails
# the run. The corpus grows in fuzz/target/corpus/<target>/ (not committed). Prints the
# time and the executions of each target. A crash is saved as
# fuzz/target/artifacts/<target>/crash-*; copy it to fuzz/regressions/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
shift || true
targets=("$@")
if [ ${#targets[@]} = 0 ]; then
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^cloudvip-fuzz$')
fi
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps the flags off build scripts, as cargo-fuzz does.
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --quiet --bins --target "$host"
# Keys and certificates as seeds are made here, not committed (throw-away).
gen=target/gen-seeds
if [ ! -e "$gen/done" ]; then
    mkdir -p "$gen/pem_key" "$gen/x509"
    openssl genrsa -traditional -out "$gen/pem_key/pkcs1.pem" 2048 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -in "$gen/pem_key/pkcs1.pem" -out "$gen/pem_key/pkcs8.pem"
    openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:s3cret -in "$gen/pem_key/pkcs1.pem" -out "$gen/pem_key/enc.pem"
    openssl req -x509 -new -key "$gen/pem_key/pkcs1.pem" -days 1 -out "$gen/x509/leaf.pem" \
        -subj "/CN=ocid1.instance.oc1.iad.aaaa/OU=opc-compartment:ocid1.compartment.oc1..bbbb/OU=opc-tenant:ocid1.tenancy.oc1..cccc"
    openssl x509 -in "$gen/x509/leaf.pem" -outform DER -out "$gen/x509/leaf.der"
    # The first byte chooses the pass phrase (odd: given).
    for f in "$gen"/pem_key/*.pem; do { printf '\001'; cat "$f"; } > "$f.in"; rm "$f"; done
    touch "$gen/done"
fi
printf '| target | seconds | executions | exec/s | corpus |\n|---|---|---|---|---|\n' > target/fuzz-summary.md
status=0
for t in "${targets[@]}"; do
    bin=target/$host/release/$t
    corpus=target/corpus/$t art=target/artifacts/$t/
    mkdir -p "$corpus" "$art" "seeds/$t" "regressions/$t"
    if [ -n "$(ls -A "regressions/$t")" ]; then
        "$bin" -runs=0 "regressions/$t"/* > "target/$t.regress.log" 2>&1 \
            || { echo "fuzz $t: a regression input crashes again (target/$t.regress.log)" >&2; status=1; }
    fi
    rc=0
    "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$art" \
        "$corpus" "seeds/$t" $([ -d "$gen/$t" ] && echo "$gen/$t") > "target/$t.log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "target/$t.log" | tail -1)
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "target/$t.log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -1)
    n=$(find "$corpus" -type f | wc -l)
    per=$(( ${execs:-0} / (${took:-$secs} > 0 ? ${took:-$secs} : 1) ))
    printf '| %s | %s | %s | %s | %s |\n' "$t" "${took:-?}" "${execs:-?}" "$per" "$n" >> target/fuzz-summary.md
    if [ "$rc" != 0 ]; then
        echo "fuzz $t: CRASH (exit $rc), see target/$t.log and $art" >&2
        tail -30 "target/$t.log" >&2
        status=1
    fi
done
cat target/fuzz-summary.md
exit "$status"
