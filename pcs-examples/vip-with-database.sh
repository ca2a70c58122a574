#!/usr/bin/env bash
# The VIP where the database's primary runs, started only after it is promoted: clients
# always reach the writable instance. Works with any cloud (here GCE). Run once, as root.
#
# Before: a promotable database resource, e.g.
#   pcs resource create pgsql ocf:heartbeat:pgsql ... promotable
# whose clone is called pgsql-clone.
set -euo pipefail

VIP=${VIP:-10.128.0.250}
DB=${DB:-pgsql-clone}

pcs resource create vip-db ocf:rust:cloudvip \
    ip="$VIP" cloud=gce peer_label=cluster=db1 \
    op monitor interval=10s timeout=20s \
    meta failure-timeout=60s

# Where: only on the node whose database instance is promoted.
pcs constraint colocation add vip-db with Promoted "$DB" INFINITY
# When: after the promotion; on a failover the VIP stops first (symmetrical order).
pcs constraint order promote "$DB" then start vip-db
