#!/usr/bin/env bash
# Azure: a VIP that is the frontend IP of a Standard internal load balancer. The load
# balancer sends the VIP's traffic to the node whose health probe answers; cloudvip holds
# the address on that node (Floating IP keeps it as the packets' destination) and answers
# the probe there, with its own responder (no nc/socat, no azure-lb). No Azure API call and
# no credentials. Run once, on any cluster node, as root.
#
# Before (Microsoft's SAP HA guides, "Create a load balancer"): a Standard internal load
# balancer, frontend IP = VIP (a free address of the subnet, static), the cluster's VMs in
# its backend pool, a health probe TCP port PROBE_PORT with interval 5 s and
# probeThreshold 2, and a load-balancing rule with HA ports and Floating IP enabled (idle
# timeout 30 min). Check a node with:
#   cloudvip diagnose --param ip=10.0.0.13 --param cloud=azure --param probe_port=62503
set -euo pipefail

VIP=${VIP:-10.0.0.13}              # the load balancer's frontend IP
PROBE_PORT=${PROBE_PORT:-62503}    # Microsoft's convention: 625<instance number>

# cloud=azure's only mode is the probe mode: start adds the VIP (/32) and starts the
# responder, stop ends the responder first (the probe fails before the address goes),
# monitor checks that this VIP's responder answers and the address is here. The load
# balancer moves the traffic about interval x threshold (5 s x 2) after the responder stops.
pcs resource create vip-lb ocf:rust:cloudvip \
    ip="$VIP" cloud=azure probe_port="$PROBE_PORT" \
    op monitor interval=10s timeout=20s \
    op start timeout=60s op stop timeout=60s \
    meta failure-timeout=60s
