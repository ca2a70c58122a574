#!/usr/bin/env bash
# Watch a VIP fail over on (emulated) Google Compute Engine. Two VMs and a client, each in
# its own network namespace on one segment, and cloudvip-sim in a fourth one playing GCE:
# the metadata server on 169.254.169.254 (it tells the VMs apart by source address) and
# the Compute API over HTTPS with a test CA. The client pings the VIP every 20 ms while
# cloudvip stops it on node-a and starts it on node-b, exactly as Pacemaker would; the
# demo shows the alias and the external IP moving in the cloud, the address moving on
# the VMs, and the outage the client saw. Needs root; cleans up everything it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (it creates network namespaces)" >&2; exit 1; }
[ "${CLOUDVIP_SKIP_SETUP:-0}" = 1 ] || scripts/setup-deps.sh >/dev/null
cargo build --release --quiet -p cloudvip -p cloudvip-sim
BIN=$PWD/target/release/cloudvip SIM=$PWD/target/release/cloudvip-sim

TAG=cvdemo$$
BR=$TAG-br N1=$TAG-node1 N2=$TAG-node2 C=$TAG-client CLOUD=$TAG-cloud
WORK=$(mktemp -d /tmp/cloudvip-demo.XXXXXX)
PING_PID= SIM_PID=
cleanup() {
    [ -n "$PING_PID" ] && kill "$PING_PID" 2>/dev/null || true
    [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
    for ns in "$N1" "$N2" "$C" "$CLOUD" "$BR"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# --- the segment: node-a .1, node-b .2, client .3, the cloud .254 ---------------------
ip netns add "$BR"
ip -n "$BR" link add br0 type bridge
ip -n "$BR" link set br0 type bridge stp_state 0 forward_delay 0
ip -n "$BR" link set br0 up
host() {  # host NS INDEX MAC
    ip netns add "$1"
    ip -n "$1" link set lo up
    ip -n "$BR" link add "p$2" type veth peer name eth0 netns "$1"
    ip -n "$1" link set eth0 address "$3"
    ip -n "$BR" link set "p$2" master br0 up
    ip -n "$1" addr add "10.66.0.$2/24" dev eth0
    ip -n "$1" link set eth0 up
}
host "$N1" 1 42:01:0a:42:00:01
host "$N2" 2 42:01:0a:42:00:02
host "$C" 3 02:66:00:00:00:03
host "$CLOUD" 254 02:66:00:00:00:fe
ip -n "$CLOUD" addr add 169.254.169.254/32 dev eth0
for ns in "$N1" "$N2"; do ip -n "$ns" route add 169.254.169.254/32 via 10.66.0.254; done

# --- the emulated cloud ---------------------------------------------------------------
"$SIM" gen-tls --out-dir "$WORK" 10.66.0.254 >/dev/null
cat > "$WORK/world.toml" <<TOML
[server]
tls_cert = "server.pem"
tls_key = "server.key"

[gce]
project = "demo-project"
project_number = 123456789012
region = "europe-west1"
zones = ["europe-west1-b", "europe-west1-c"]
api_listen = "10.66.0.254:443"
metadata_per_instance = false
metadata_listen = "169.254.169.254:80"

[gce.operations]
pending_ms = 100     # GCE takes about 1 s per operation; the demo is a bit quicker
running_ms = 400

[[gce.networks]]
name = "default"
[[gce.networks.subnets]]
name = "default"
ip_cidr_range = "10.66.0.0/24"

[[gce.service_accounts]]
email = "cloudvip@demo-project.iam.gserviceaccount.com"

[[gce.instances]]
name = "node-a"
zone = "europe-west1-b"
labels = { cluster = "demo" }
service_account = "cloudvip@demo-project.iam.gserviceaccount.com"
metadata_source = "10.66.0.1"
[[gce.instances.nics]]
network_ip = "10.66.0.1"
mac = "42:01:0a:42:00:01"

[[gce.instances]]
name = "node-b"
zone = "europe-west1-c"
labels = { cluster = "demo" }
service_account = "cloudvip@demo-project.iam.gserviceaccount.com"
metadata_source = "10.66.0.2"
[[gce.instances.nics]]
network_ip = "10.66.0.2"
mac = "42:01:0a:42:00:02"
access_configs = [{ name = "external-nat" }]

[[gce.addresses]]
name = "vip-public"
address = "203.0.113.50"
TOML
ip netns exec "$CLOUD" "$SIM" --config "$WORK/world.toml" --admin-listen 127.0.0.1:8080 \
    --max-seconds 600 > "$WORK/sim.out" 2> "$WORK/sim.err" &
SIM_PID=$!
for _ in $(seq 100); do [ -s "$WORK/sim.out" ] && break; sleep 0.05; done
[ -s "$WORK/sim.out" ] || { cat "$WORK/sim.err" >&2; exit 1; }

cloud_state() {
    ip netns exec "$CLOUD" python3 - <<'PY'
import json, urllib.request
s = json.load(urllib.request.urlopen("http://127.0.0.1:8080/admin/state"))["gce"]
inst = s["instances"]
inst = inst.values() if isinstance(inst, dict) else inst
for i in sorted(inst, key=lambda i: i["name"]):
    nic = i["networkInterfaces"][0]
    aliases = [a["ipCidrRange"] for a in nic.get("aliasIpRanges", [])] or ["-"]
    nat = [a.get("natIP", "-") for a in nic.get("accessConfigs", [])] or ["-"]
    print(f"   {i['name']}: alias IP ranges {', '.join(aliases):<18} external IP {', '.join(nat)}")
PY
}
api_calls() {
    ip netns exec "$CLOUD" python3 -c 'import json,urllib.request; e=json.load(urllib.request.urlopen("http://127.0.0.1:8080/admin/log"))["entries"]; print(sum(1 for x in e if x["api_call"]), "Compute API calls,", sum(1 for x in e if x["service"]=="metadata"), "metadata requests")'
    ip netns exec "$CLOUD" python3 -c 'import urllib.request; urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:8080/admin/log", method="DELETE"))'
}

# What Pacemaker passes for `pcs resource create VIP ocf:rust:cloudvip ip=10.66.0.100
# cloud=gce public_ip=vip-public peer_label=cluster=demo`, plus the emulator's endpoint
# and CA (a real cluster resolves compute.googleapis.com and trusts Google's CA instead).
export OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=VIP OCF_RESKEY_CRM_meta_timeout=20000
export OCF_RESKEY_ip=10.66.0.100 OCF_RESKEY_cloud=gce OCF_RESKEY_public_ip=vip-public
export OCF_RESKEY_peer_label=cluster=demo OCF_RESKEY_ca_bundle=$WORK/ca.pem
export OCF_RESKEY_api_endpoint=https://10.66.0.254/compute/v1/ HA_RSCTMP=$WORK
agent() { local ns=$1 node=$2 action=$3 rc=0 t0 t1; t0=$(date +%s%N)
          printf '$ cloudvip %s   (on %s)\n' "$action" "$node"
          ip netns exec "$ns" "$BIN" "$action" || rc=$?; t1=$(date +%s%N)
          echo "  -> exit $rc in $(( (t1 - t0) / 1000000 )) ms"; }

say "GCE (emulated): node-a 10.66.0.1 in europe-west1-b, node-b 10.66.0.2 in europe-west1-c, a client 10.66.0.3"
cloud_state
say "probe on both VMs (7 = not running)"
agent "$N1" node-a monitor
agent "$N2" node-b monitor
api_calls

say "start the VIP on node-a: alias IP range + static external IP, then the address on eth0"
agent "$N1" node-a start
cloud_state
ip -n "$N1" -br addr show dev eth0 | sed 's/^/   node-a: /'
api_calls
echo "   client: $(ip netns exec "$C" ping -c 1 -W 1 10.66.0.100 | grep 'bytes from')"

say "monitor on node-a asks only the kernel and the metadata server"
agent "$N1" node-a monitor
api_calls

say "failover: the client pings every 20 ms; Pacemaker stops the VIP on node-a and starts it on node-b"
ip netns exec "$C" ping -n -i 0.02 -c 200 -W 1 10.66.0.100 > "$WORK/ping" 2>&1 &
PING_PID=$!
sleep 0.5
agent "$N1" node-a stop
agent "$N2" node-b start
wait "$PING_PID" || true
PING_PID=
sent=$(grep -o '[0-9]* packets transmitted' "$WORK/ping" | cut -d' ' -f1)
got=$(grep -o '[0-9]* received' "$WORK/ping" | cut -d' ' -f1)
cloud_state
ip -n "$N2" -br addr show dev eth0 | sed 's/^/   node-b: /'
api_calls
echo "   client: $sent echo requests, $got answered: outage about $(( (sent - got) * 20 )) ms"

say "monitor: node-b serves it (0), node-a does not (7)"
agent "$N2" node-b monitor
agent "$N1" node-a monitor
say "done: emulator stopped, namespaces removed"
