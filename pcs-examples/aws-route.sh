#!/usr/bin/env bash
# AWS: an overlay IP outside the VPC's CIDR routed to the active node by a /32 route in
# each route table (what aws-vpc-move-ip does, e.g. for SAP on AWS): clients in every
# subnet and peered VPC whose tables are listed reach it. Run once, on any cluster node,
# as root. Prints the IAM policy the nodes' role needs first.
#
# Before: on every node's ENI, turn the source/destination check off
#   aws ec2 modify-instance-attribute --instance-id <id> --no-source-dest-check
# and create the route once in each table (cloudvip replaces it, never creates it):
#   aws ec2 create-route --route-table-id <rtb> --destination-cidr-block 192.168.10.10/32 \
#       --network-interface-id <eni of the first node>
set -euo pipefail

OVERLAY=${OVERLAY:-192.168.10.10}                 # outside every CIDR of the VPC
TABLES=${TABLES:-rtb-0c10d0000000000c1,rtb-0c10d0000000000c2}

cat <<'POLICY'
# IAM policy of the nodes' role:
{
  "Version": "2012-10-17",
  "Statement": [{
    "Sid": "CloudvipRoute",
    "Effect": "Allow",
    "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeRouteTables", "ec2:ReplaceRoute"],
    "Resource": "*"
  }]
}
POLICY

# start: one ReplaceRoute per table not already ours, then the tables read until they
# show this ENI; stop leaves the routes (the next start elsewhere replaces them). Monitor
# depth 0 is the kernel only (route tables are not in IMDS): add the depth-10 monitor, one
# DescribeRouteTables, to catch a route changed behind Pacemaker's back.
pcs resource create overlay-aws ocf:rust:cloudvip \
    ip="$OVERLAY" cloud=aws mode=route route_tables="$TABLES" \
    op monitor interval=10s timeout=20s \
    op monitor interval=30s timeout=30s OCF_CHECK_LEVEL=10 \
    meta failure-timeout=60s
