#!/usr/bin/env bash
# Two VIPs on the same NIC (say a read-write and a read-only address), each its own
# resource so they can live on different nodes; labels tell them apart in `ip addr`.
# Works the same on OCI with cloud=oci. Run once, as root.
set -euo pipefail

RW=${RW:-10.128.0.250}
RO=${RO:-10.128.0.251}
NIC=${NIC:-ens4}

pcs resource create vip-rw ocf:rust:cloudvip \
    ip="$RW" nic="$NIC" label=rw cloud=gce peer_label=cluster=db1 \
    op monitor interval=10s timeout=20s \
    meta failure-timeout=60s
pcs resource create vip-ro ocf:rust:cloudvip \
    ip="$RO" nic="$NIC" label=ro cloud=gce peer_label=cluster=db1 \
    op monitor interval=10s timeout=20s \
    meta failure-timeout=60s

# Prefer keeping them apart (read-only traffic off the primary), but allow sharing a node.
pcs constraint colocation add vip-ro with vip-rw -100
