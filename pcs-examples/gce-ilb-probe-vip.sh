#!/usr/bin/env bash
# GCE: a VIP that is the forwarding-rule IP of an internal passthrough Network Load
# Balancer with a health check (Google's recommended VIP for SAP HA clusters, the gcp-ilb
# design). The load balancer sends the VIP's traffic to the instance whose health check
# answers; cloudvip holds the address there and answers the check. No Compute API call and
# no credentials. Run once, on any cluster node, as root.
#
# Before: an unmanaged instance group per zone with the cluster's instances, a regional
# internal backend service with them as backends and a health check on PROBE_PORT (TCP,
# or HTTP on PROBE_PATH), a forwarding rule with VIP, and a firewall rule admitting
# 35.191.0.0/16 and 130.211.0.0/22 to PROBE_PORT. Stop the guest agent from adding the
# forwarding rule's IP as a local route on every backend (`ip_forwarding = false` in
# /etc/default/instance_configs.cfg, Google's SAP guides), or every node holds it.
# Check a node with:
#   cloudvip diagnose --param ip=10.128.0.50 --param cloud=gce --param mode=probe
set -euo pipefail

VIP=${VIP:-10.128.0.50}            # the forwarding rule's IP
PROBE_PORT=${PROBE_PORT:-60000}    # the health check's port (gcp-ilb's default)
PROBE_PATH=${PROBE_PATH:-/health}  # an HTTP health check's request path

pcs resource create vip-ilb ocf:rust:cloudvip \
    ip="$VIP" cloud=gce mode=probe probe_port="$PROBE_PORT" probe_path="$PROBE_PATH" \
    op monitor interval=10s timeout=20s \
    op start timeout=60s op stop timeout=60s \
    meta failure-timeout=60s
