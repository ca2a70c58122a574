#!/usr/bin/env bash
# GCE: a private VIP plus a reserved static external IP attached to the holder's NIC (an
# access config), for clients on the internet. Run once, on any cluster node, as root.
#
# Before: reserve the address in the cluster's region, e.g.
#   gcloud compute addresses create vip-public --region us-central1
# and grant the permissions of gce-iam.sh with --public (addresses, access configs).
set -euo pipefail

VIP=${VIP:-10.128.0.250}
PUBLIC=${PUBLIC:-vip-public}          # the reserved address, by name or by IP
PEERS=${PEERS:-"node-a node-b"}       # instance names of the cluster (any zone of the region)

# The external IP moves after the private VIP works, so the private outage does not
# include it. The instances' ephemeral external IPs are replaced by the reserved one.
pcs resource create vip-public ocf:rust:cloudvip \
    ip="$VIP" cloud=gce public_ip="$PUBLIC" peers="$PEERS" \
    op monitor interval=10s timeout=20s \
    op start timeout=90s op stop timeout=60s \
    meta failure-timeout=60s
