#!/usr/bin/env bash
# OCI: a private VIP (a secondary private IP of the primary VNIC) with instance
# principals: no key on the nodes. Run once, on any cluster node, as root.
#
# Before: a dynamic group containing the cluster's instances and the policy of
# oci-policy.sh. Check a node with:
#   cloudvip diagnose --param ip=10.0.1.115 --param cloud=oci
set -euo pipefail

VIP=${VIP:-10.0.1.115}     # a free address of the VNICs' subnet

# Stop leaves the private IP on the VNIC (no API call); the next start elsewhere moves it
# with one PUT. The depth-10 monitor lists the private IP in the API (2-3 signed calls).
pcs resource create vip-oci ocf:rust:cloudvip \
    ip="$VIP" cloud=oci \
    op monitor interval=10s timeout=20s \
    op monitor interval=60s timeout=30s OCF_CHECK_LEVEL=10 \
    meta failure-timeout=60s
