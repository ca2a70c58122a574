#!/usr/bin/env bash
# AWS: a private VIP, a secondary private IP of the ENI whose MAC is the nic's (what awsvip
# does), with the nodes' instance profile: no keys on the nodes. Run once, on any cluster
# node, as root. Prints the IAM policy the nodes' role needs first.
#
# Before: every node's instance profile role has the policy below; IMDSv2 reachable (hop
# limit 1 is enough on the host). Check a node with:
#   cloudvip diagnose --param ip=10.0.1.100 --param cloud=aws
set -euo pipefail

VIP=${VIP:-10.0.1.100}     # a free address of the ENIs' subnet (not one of its first 4 or last)

cat <<'POLICY'
# IAM policy of the nodes' role (aws iam put-role-policy --policy-document):
{
  "Version": "2012-10-17",
  "Statement": [{
    "Sid": "CloudvipSecondaryIp",
    "Effect": "Allow",
    "Action": ["ec2:DescribeNetworkInterfaces", "ec2:AssignPrivateIpAddresses",
               "ec2:UnassignPrivateIpAddresses"],
    "Resource": "*"
  }]
}
POLICY

# start moves the VIP with one AssignPrivateIpAddresses (AllowReassignment) and waits
# until IMDS shows it; stop unassigns it. Depth 0 costs no EC2 call (IMDS local-ipv4s);
# depth 10 adds DescribeNetworkInterfaces.
pcs resource create vip-aws ocf:rust:cloudvip \
    ip="$VIP" cloud=aws mode=secondary_ip \
    op monitor interval=10s timeout=20s \
    op monitor interval=60s timeout=30s OCF_CHECK_LEVEL=10 \
    meta failure-timeout=60s
