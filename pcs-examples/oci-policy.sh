#!/usr/bin/env bash
# OCI: the dynamic group of the cluster's instances and the policy cloudvip needs
# (instance principals). `--api-key` writes the statement for a user group instead.
# Run once, with the oci CLI as a tenancy administrator.
# `cloudvip diagnose` on a node says whether the policy is in effect.
set -euo pipefail

TENANCY=${TENANCY:-ocid1.tenancy.oc1..example}
COMPARTMENT=${COMPARTMENT:-ocid1.compartment.oc1..example}   # the VCN's compartment
GROUP=${GROUP:-cloudvip-nodes}

# Moving a private IP between VNICs is `use`; creating it the first time (when no node
# has it yet) needs `manage private-ips`.
if [ "${1:-}" = --api-key ]; then
    SUBJECT="group $GROUP"
else
    SUBJECT="dynamic-group $GROUP"
    oci iam dynamic-group create --compartment-id "$TENANCY" --name "$GROUP" \
        --description "cloudvip cluster nodes" \
        --matching-rule "ALL {instance.compartment.id = '$COMPARTMENT'}"
fi
oci iam policy create --compartment-id "$COMPARTMENT" --name cloudvip \
    --description "cloudvip: move VIPs between the cluster's VNICs" \
    --statements "[\"Allow $SUBJECT to use virtual-network-family in compartment id $COMPARTMENT\", \"Allow $SUBJECT to manage private-ips in compartment id $COMPARTMENT\"]"
