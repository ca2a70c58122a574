#!/usr/bin/env bash
# AWS: a private VIP (a secondary private IP, as awsvip) and an Elastic IP associated
# with it for clients on the internet (as awseip with private_ip_address): the Elastic IP
# follows the secondary IP when it moves. Run once, on any cluster node, as root. Prints
# the IAM policy the nodes' role needs first.
#
# Before: allocate the Elastic IP (aws ec2 allocate-address --domain vpc) and give the
# nodes' role the policy below.
set -euo pipefail

VIP=${VIP:-10.0.1.100}
PUBLIC=${PUBLIC:-203.0.113.10}                     # the Elastic IP
ALLOCATION=${ALLOCATION:-eipalloc-0c10d00000000000f1}  # its allocation id

cat <<'POLICY'
# IAM policy of the nodes' role:
{
  "Version": "2012-10-17",
  "Statement": [{
    "Sid": "CloudvipSecondaryIp",
    "Effect": "Allow",
    "Action": ["ec2:DescribeNetworkInterfaces", "ec2:AssignPrivateIpAddresses",
               "ec2:UnassignPrivateIpAddresses", "ec2:DescribeAddresses",
               "ec2:AssociateAddress", "ec2:DisassociateAddress"],
    "Resource": "*"
  }]
}
POLICY

# AssignPrivateIpAddresses carries the Elastic IP along; start checks it in IMDS
# (ipv4-associations) and associates it itself only when it did not follow. Stop
# disassociates it, then unassigns the VIP.
pcs resource create vip-aws-public ocf:rust:cloudvip \
    ip="$VIP" cloud=aws public_ip="$PUBLIC" allocation_id="$ALLOCATION" \
    op monitor interval=10s timeout=20s \
    op monitor interval=60s timeout=30s OCF_CHECK_LEVEL=10 \
    op start timeout=90s \
    meta failure-timeout=60s
