#!/usr/bin/env bash
# Benchmark: wall time and peak RSS of each OCF action, cloudvip (release build) beside
# resource-agents' IPaddr2 doing the same job, in a throw-away network namespace.
# Prints a table; asserts nothing. Needs root. Usage: bench/run.sh [runs-per-action]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: run as root" >&2; exit 1; }
cargo build --release --quiet -p cloudvip
NS=cvbench$$
cleanup() {
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add eth0 type veth peer name eth0p
ip -n "$NS" link set eth0p up
ip -n "$NS" addr add 10.66.0.1/24 dev eth0
ip -n "$NS" link set eth0 up
ip netns exec "$NS" python3 bench/bench.py "$PWD/target/release/cloudvip" "${1:-50}"
