#!/usr/bin/env bash
# The benchmark: cloudvip (release build) in every cloud and mode beside the agents it
# replaces, unmodified, against cloudvip-sim in throw-away network namespaces, at zero and
# at realistic latency. Prints the tables and writes bench/results/<date>-<host>.{md,json,csv}.
# Measures, asserts nothing about speed; fails loudly when a tool gets an action wrong.
# Needs root and what scripts/setup-deps.sh installs (resource-agents, the anchors' venvs
# under /opt/cloudvip-test, strace).
#   bench/run.sh                      # everything, 3 runs per cell (about 15 min on 2 cores)
#   bench/run.sh --runs 9 --jobs gce,oci --profiles real
#   bench/run.sh --jobs oci --profiles real --scale "" --perf   # + perf of the slow rows
#   bench/run.sh --help               # every option
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: run as root" >&2; exit 1; }
case " $* " in *" -h "* | *" --help "*) exec python3 bench/bench.py --help ;; esac
cargo build --release --quiet -p cloudvip -p cloudvip-sim
case " $* " in *" --perf "*)   # the same release build, with symbols, for perf report
    CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
        cargo build --release --quiet -p cloudvip --target-dir target/bench-prof ;;
esac
mkdir -p target/bench
[ target/bench/reaper -nt bench/reaper.rs ] ||
    rustc -O --edition 2021 -o target/bench/reaper bench/reaper.rs
exec python3 bench/bench.py "$@"
