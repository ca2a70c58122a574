#!/usr/bin/env bash
# AWS: the overlay IP of aws-route.sh in route tables of another account (a shared
# network account, a transit VPC), reached through an IAM role of that account (STS
# AssumeRole, as aws-vpc-move-ip's routing_table_role). Run once, on any cluster node,
# as root. Prints the three policies: the nodes' role, the tables' role, its trust.
#
# Before: in the tables' account create the role with the trust and permission policies
# below; the overlay route exists in each table and the ENIs' source/destination check is
# off (aws-route.sh). The credentials the role gives are cached 0600 in
# /run/resource-agents until shortly before they expire.
set -euo pipefail

OVERLAY=${OVERLAY:-192.168.10.10}
TABLES=${TABLES:-rtb-0c10d0000000000c2}
ROLE=${ROLE:-arn:aws:iam::444455556666:role/rtb-editor}
EXTERNAL_ID=${EXTERNAL_ID:-ha-cluster-1}
NODE_ROLE=${NODE_ROLE:-arn:aws:iam::111122223333:role/ha-node}

echo "# IAM policy of the nodes' role ($NODE_ROLE):"
cat <<POLICY
{
  "Version": "2012-10-17",
  "Statement": [{
    "Sid": "CloudvipRoute",
    "Effect": "Allow",
    "Action": ["ec2:DescribeNetworkInterfaces"],
    "Resource": "*"
  }, {
    "Sid": "CloudvipRouteTableRole",
    "Effect": "Allow",
    "Action": ["sts:AssumeRole"],
    "Resource": "$ROLE"
  }]
}
POLICY
echo "# Permission policy of $ROLE (in the tables' account):"
cat <<'POLICY'
{
  "Version": "2012-10-17",
  "Statement": [{
    "Effect": "Allow",
    "Action": ["ec2:DescribeRouteTables", "ec2:ReplaceRoute"],
    "Resource": "*"
  }]
}
POLICY
echo "# Trust policy of $ROLE:"
cat <<POLICY
{
  "Version": "2012-10-17",
  "Statement": [{
    "Effect": "Allow",
    "Principal": {"AWS": "$NODE_ROLE"},
    "Action": "sts:AssumeRole",
    "Condition": {"StringEquals": {"sts:ExternalId": "$EXTERNAL_ID"}}
  }]
}
POLICY

pcs resource create overlay-aws-xacct ocf:rust:cloudvip \
    ip="$OVERLAY" cloud=aws mode=route route_tables="$TABLES" \
    routing_table_role="$ROLE" external_id="$EXTERNAL_ID" \
    op monitor interval=10s timeout=20s \
    op monitor interval=30s timeout=30s OCF_CHECK_LEVEL=10 \
    meta failure-timeout=60s
