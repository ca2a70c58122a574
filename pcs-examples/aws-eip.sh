#!/usr/bin/env bash
# AWS: an Elastic IP alone (what awseip does): associated with the primary private IP of
# the active node's ENI. EC2 translates the Elastic IP to that address, so the node needs
# nothing of it: local_mode=none (monitor then asks IMDS only, still no EC2 call). Run once, on any cluster node, as root. Prints the IAM policy the nodes'
# role needs first.
#
# Before: aws ec2 allocate-address --domain vpc, and the policy below on the nodes' role.
set -euo pipefail

EIP=${EIP:-203.0.113.10}                           # the Elastic IP: the resource's ip
ALLOCATION=${ALLOCATION:-eipalloc-0c10d00000000000f1}

cat <<'POLICY'
# IAM policy of the nodes' role:
{
  "Version": "2012-10-17",
  "Statement": [{
    "Sid": "CloudvipElasticIp",
    "Effect": "Allow",
    "Action": ["ec2:DescribeAddresses", "ec2:AssociateAddress", "ec2:DisassociateAddress"],
    "Resource": "*"
  }]
}
POLICY

# start: one AssociateAddress (AllowReassociation) and a wait until IMDS maps the address
# here; stop disassociates it. Monitor depth 0 reads IMDS only.
pcs resource create eip-aws ocf:rust:cloudvip \
    ip="$EIP" cloud=aws mode=eip local_mode=none allocation_id="$ALLOCATION" \
    op monitor interval=10s timeout=20s \
    op monitor interval=60s timeout=30s OCF_CHECK_LEVEL=10 \
    meta failure-timeout=60s
