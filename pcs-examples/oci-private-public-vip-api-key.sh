#!/usr/bin/env bash
# OCI: a private VIP and a reserved public IP that follows it, signed with an API key
# (for tenancies without dynamic groups). Run once, on any cluster node, as root.
#
# Before, on every node: /etc/cloudvip/oci_config (mode 0600, the ~/.oci/config format)
#   [DEFAULT]
#   user=ocid1.user.oc1..<user>
#   fingerprint=<the API key's fingerprint>
#   tenancy=ocid1.tenancy.oc1..<tenancy>
#   region=us-ashburn-1
#   key_file=/etc/cloudvip/oci_api_key.pem
# and the policy of oci-policy.sh --api-key for the user's group. Reserve the public IP:
#   oci network public-ip create --compartment-id <C> --lifetime RESERVED
set -euo pipefail

VIP=${VIP:-10.0.1.115}
PUBLIC=${PUBLIC:-129.146.10.20}              # the reserved public IP (address or OCID)
CONFIG=${CONFIG:-/etc/cloudvip/oci_config}

# The reserved public IP belongs to the private IP object, which keeps its OCID when it
# moves: the public IP follows without a second call in most moves; start checks it and
# assigns it again if the assignment failed silently. cidr_netmask=32 (the default, written
# out): the subnet route already exists through the VNIC's primary address, and a host
# prefix keeps the VIP from becoming the source address for the whole subnet.
pcs resource create vip-oci-public ocf:rust:cloudvip \
    ip="$VIP" cidr_netmask=32 cloud=oci credentials="$CONFIG" oci_profile=DEFAULT \
    public_ip="$PUBLIC" \
    op monitor interval=10s timeout=20s \
    op start timeout=90s \
    meta failure-timeout=60s
