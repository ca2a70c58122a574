#!/usr/bin/env bash
# Watch a VIP fail over: two nodes and a client, each in its own network namespace on one
# bridge. The client pings the VIP every 20 ms while cloudvip stops it on node1 and starts
# it on node2, exactly as Pacemaker would; the demo prints what each side sees and the
# outage the client measured. Needs root; cleans up everything it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (it creates network namespaces)" >&2; exit 1; }
[ "${CLOUDVIP_SKIP_SETUP:-0}" = 1 ] || scripts/setup-deps.sh >/dev/null
cargo build --release --quiet -p cloudvip
BIN=$PWD/target/release/cloudvip

TAG=cvdemo$$
BR=$TAG-br N1=$TAG-node1 N2=$TAG-node2 C=$TAG-client
PING_PID=
cleanup() {
    [ -n "$PING_PID" ] && kill "$PING_PID" 2>/dev/null || true
    for ns in "$N1" "$N2" "$C" "$BR"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

ip netns add "$BR"
ip -n "$BR" link add br0 type bridge
ip -n "$BR" link set br0 type bridge stp_state 0 forward_delay 0
ip -n "$BR" link set br0 up
i=0
for ns in "$N1" "$N2" "$C"; do
    i=$((i + 1))
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$BR" link add "p$i" type veth peer name eth0 netns "$ns"
    ip -n "$ns" link set eth0 address "02:66:00:00:00:0$i"
    ip -n "$BR" link set "p$i" master br0 up
    ip -n "$ns" addr add "10.66.0.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
done

# What Pacemaker passes to the agent for `pcs resource create VIP ocf:rust:cloudvip
# ip=10.66.0.100 nic=eth0 cloud=none`.
export OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=VIP OCF_RESKEY_CRM_meta_timeout=20000
export OCF_RESKEY_ip=10.66.0.100 OCF_RESKEY_nic=eth0 OCF_RESKEY_cloud=none
agent() { local node=$1 action=$2 rc=0; printf '$ cloudvip %s   (on %s)\n' "$action" "$node";
          ip netns exec "$TAG-$node" "$BIN" "$action" || rc=$?; echo "  -> exit $rc"; }

say "three hosts on one segment: node1 10.66.0.1, node2 10.66.0.2, client 10.66.0.3"
say "probe: is the VIP running anywhere? (7 = not running)"
agent node1 monitor
agent node2 monitor

say "start the VIP on node1"
agent node1 start
run ip -n "$N1" -br addr show dev eth0
echo "client: $(ip netns exec "$C" ping -c 1 -W 1 10.66.0.100 | grep 'bytes from')"
echo "client's neighbour entry: $(ip -n "$C" neigh show 10.66.0.100)"

say "the client now pings the VIP every 20 ms; Pacemaker fails it over to node2"
ip netns exec "$C" ping -n -i 0.02 -c 150 -W 1 10.66.0.100 > "/tmp/$TAG.ping" 2>&1 &
PING_PID=$!
sleep 1
t0=$(date +%s%N)
agent node1 stop
agent node2 start
t1=$(date +%s%N)
echo "stop + start took $(( (t1 - t0) / 1000000 )) ms"
wait "$PING_PID" || true
PING_PID=
sent=$(grep -o '[0-9]* packets transmitted' "/tmp/$TAG.ping" | cut -d' ' -f1)
got=$(grep -o '[0-9]* received' "/tmp/$TAG.ping" | cut -d' ' -f1)
rm -f "/tmp/$TAG.ping"
echo "client: $sent echo requests, $got answered, $((sent - got)) lost: outage about $(( (sent - got) * 20 )) ms"
echo "client's neighbour entry now: $(ip -n "$C" neigh show 10.66.0.100)  (node2 is 02:66:00:00:00:02)"

say "monitor on both nodes"
agent node1 monitor
agent node2 monitor

say "stop on node2; monitor says not running"
agent node2 stop
agent node2 monitor
say "done: namespaces removed"
