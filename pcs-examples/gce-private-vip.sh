#!/usr/bin/env bash
# GCE: a private VIP (an alias IP range of the primary NIC) that follows the Pacemaker
# resource between the cluster's instances. Run once, on any cluster node, as root.
#
# Before: the instances carry the label cluster=db1 (so start finds the current holder
# with one filtered list call), and their service account has the permissions of
# gce-iam.sh. Check a node with:
#   cloudvip diagnose --param ip=10.128.0.250 --param cloud=gce
set -euo pipefail

VIP=${VIP:-10.128.0.250}          # a free address of the NICs' subnet (primary range)
LABEL=${LABEL:-cluster=db1}       # label shared by the cluster's instances

# cidr_netmask is left at /32: the subnet route already exists through the NIC's primary
# address. nic is left unset: the interface of the route towards the VIP (eth0/ens4).
# The second monitor (depth 10, every 60 s) also asks the Compute API (instances.get);
# the 10 s one reads only the kernel and the metadata server (no API quota).
pcs resource create vip-private ocf:rust:cloudvip \
    ip="$VIP" cloud=gce peer_label="$LABEL" \
    op monitor interval=10s timeout=20s \
    op monitor interval=60s timeout=30s OCF_CHECK_LEVEL=10 \
    op start timeout=60s op stop timeout=60s \
    meta failure-timeout=60s
