#!/usr/bin/env bash
# GCE Fast IP Move: a VIP that is the forwarding-rule IP of an internal passthrough Network
# Load Balancer whose backend service has haPolicy fastIPMove=GARP_RA (no health check:
# Pacemaker elects the leader). start sends a gratuitous ARP, which moves the traffic at
# once, then sets haPolicy.leader to this instance and repeats the ARP every 10 s for 10
# minutes; stop ends the repetitions at once. Run once, on any cluster node, as root.
#
# Before: one zonal GCE_VM_IP network endpoint group per zone holding the cluster's
# instances (gcloud compute network-endpoint-groups create ... --network-endpoint-type
# gce-vm-ip), a regional internal backend service created with the HA policy
# (--ha-policy-fast-ip-move=GARP_RA; it cannot be added later) and the NEGs as backends, a
# forwarding rule with VIP, and for the instances' service account
# compute.regionBackendServices.get/update, compute.networkEndpointGroups.list,
# compute.regionOperations.get and compute.instances.use. Check a node with:
#   cloudvip diagnose --param ip=10.128.0.60 --param cloud=gce --param mode=fim \
#       --param backend_service=ilb-bs
set -euo pipefail

VIP=${VIP:-10.128.0.60}            # the forwarding rule's IP
SERVICE=${SERVICE:-ilb-bs}         # the regional backend service with haPolicy

pcs resource create vip-fim ocf:rust:cloudvip \
    ip="$VIP" cloud=gce mode=fim backend_service="$SERVICE" \
    op monitor interval=10s timeout=20s \
    op monitor interval=60s timeout=30s OCF_CHECK_LEVEL=10 \
    op start timeout=60s op stop timeout=60s \
    meta failure-timeout=60s
