#!/usr/bin/env bash
# The benchmark: cloudvip (release build) in every cloud and mode beside the agents it
# replaces, unmodified, against cloudvip-sim in throw-away network namespaces, at zero and
# at realistic latency. Prints the tables and writes bench/results/<date>-<host>.{md,json,csv}.
# Measures, asserts nothing about speed; fails loudly when a tool gets an action wrong.
# Needs root; installs what it needs first (scripts/setup-deps.sh: resource-agents, the
# anchors' venvs under /opt/cloudvip-test, strace, musl-tools), so it runs from a fresh clone.
#   bench/run.sh                      # everything, 3 runs per cell (25-30 min on 2 cores)
#   bench/run.sh --runs 9 --jobs gce,oci --profiles real
#   bench/run.sh --jobs oci --profiles real --scale "" --perf   # + perf of the slow rows
#   bench/run.sh --help               # every option
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: run as root" >&2; exit 1; }
case " $* " in *" -h "* | *" --help "*) exec python3 bench/bench.py --help ;; esac
scripts/setup-deps.sh
# cloudvip as the packages ship it (packaging/build.sh): the static musl build where the
# target is installed, else the glibc one (whose ld.so and libc mappings add ~1.8 MiB RSS).
MUSL=x86_64-unknown-linux-musl
target=()
rustup target list --installed 2>/dev/null | grep -qx "$MUSL" ||
    rustup target add "$MUSL" >/dev/null 2>&1 || true
if rustup target list --installed 2>/dev/null | grep -qx "$MUSL" && command -v musl-gcc >/dev/null
then
    target=(--target "$MUSL")
    export CLOUDVIP_BENCH_AGENT=target/$MUSL/release/cloudvip
else
    echo "bench/run.sh: no $MUSL target: measuring the glibc build" >&2
    export CLOUDVIP_BENCH_AGENT=target/release/cloudvip
fi
cargo build --release --quiet -p cloudvip "${target[@]}"
cargo build --release --quiet -p cloudvip-sim
case " $* " in *" --perf "*)   # the same release build, with symbols, for perf report
    CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
        cargo build --release --quiet -p cloudvip "${target[@]}" --target-dir target/bench-prof
    export CLOUDVIP_BENCH_PROF=${CLOUDVIP_BENCH_AGENT/#target/target/bench-prof} ;;
esac
mkdir -p target/bench
[ target/bench/reaper -nt bench/reaper.rs ] ||
    rustc -O --edition 2021 -o target/bench/reaper bench/reaper.rs
exec python3 bench/bench.py "$@"
