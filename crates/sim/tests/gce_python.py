"""Drives cloudvip-sim's GCE half with Google's own Python clients, unmodified.

Run by tests/gce_conformance.rs, which starts the emulator and passes:
  SIM_API (http://127.0.0.1:PORT), SIM_KEY_FILE (service-account key written by the
  emulator), GCE_METADATA_HOST (node-a's metadata listener), SIM_PROJECT.
Prints one JSON object per step on stdout ({"step": ..., ...}); the Rust test asserts on
them and on the emulator's state. Any unexpected exception fails the run (exit 1).
"""

import json
import os
import sys
import uuid

import google.auth.transport.requests
from google.api_core import exceptions as gexc
from google.auth import compute_engine
from google.auth.compute_engine import _metadata
from google.cloud import compute_v1
from google.oauth2 import credentials as oauth2_credentials
from google.oauth2 import service_account

API = os.environ["SIM_API"]
PROJECT = os.environ["SIM_PROJECT"]
KEY_FILE = os.environ["SIM_KEY_FILE"]
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def out(step, **kw):
    print(json.dumps({"step": step, **kw}), flush=True)


def wait(ops, zone, op):
    """Waits with zoneOperations.wait until DONE; returns (status, [error codes]).

    Not ExtendedOperation.result(): google-cloud-compute polls through an internal
    ZoneOperationsClient built without the caller's client_options, so against any
    non-default endpoint it would call compute.googleapis.com (a client limitation,
    see instances/transports/base.py `_zone_operations_client`).
    """
    for _ in range(100):
        done = ops.wait(project=PROJECT, zone=zone, operation=op.name)
        if done.status == compute_v1.Operation.Status.DONE:
            errs = [e.code for e in done.error.errors] if done.error else []
            msgs = [e.message for e in done.error.errors] if done.error else []
            return done, errs, msgs
    raise RuntimeError("operation never finished")


def aliases(inst, nic=0):
    return [a.ip_cidr_range for a in inst.network_interfaces[nic].alias_ip_ranges]


def main():
    req = google.auth.transport.requests.Request()
    opts = {"api_endpoint": API}

    # 1. Service-account key -> the emulator's OAuth token endpoint (JWT-bearer grant).
    sa = service_account.Credentials.from_service_account_file(KEY_FILE, scopes=SCOPES)
    sa.refresh(req)
    out("sa_token", token_prefix=sa.token[:5], email=sa.service_account_email)

    # GAPIC clients turn service-account credentials into self-signed JWTs; this exercises
    # that path, the token above the JWT-bearer path.
    instances = compute_v1.InstancesClient(credentials=sa, client_options=opts)
    by_token = compute_v1.InstancesClient(
        credentials=oauth2_credentials.Credentials(sa.token), client_options=opts
    )
    ops = compute_v1.ZoneOperationsClient(credentials=sa, client_options=opts)
    addresses = compute_v1.AddressesClient(credentials=sa, client_options=opts)

    # 2. Describe.
    a = instances.get(project=PROJECT, zone="us-central1-a", instance="node-a")
    nic = a.network_interfaces[0]
    out("describe", name=a.name, aliases=aliases(a), fingerprint=nic.fingerprint,
        nat=[c.nat_i_p for c in nic.access_configs], mac_free=True)
    a2 = by_token.get(project=PROJECT, zone="us-central1-a", instance="node-a")
    out("describe_by_token", name=a2.name)

    # 3. Update aliases with the fingerprint, keeping the existing ones.
    keep = [compute_v1.AliasIpRange(ip_cidr_range=r.ip_cidr_range,
                                    subnetwork_range_name=r.subnetwork_range_name or None)
            for r in nic.alias_ip_ranges]
    new = keep + [compute_v1.AliasIpRange(ip_cidr_range="10.128.0.101/32")]
    rid = str(uuid.uuid4())
    op = instances.update_network_interface(
        request=compute_v1.UpdateNetworkInterfaceInstanceRequest(
            project=PROJECT, zone="us-central1-a", instance="node-a", network_interface="nic0",
            network_interface_resource=compute_v1.NetworkInterface(
                alias_ip_ranges=new, fingerprint=nic.fingerprint),
            request_id=rid))
    done, errs, _ = wait(ops, "us-central1-a", op)
    a = instances.get(project=PROJECT, zone="us-central1-a", instance="node-a")
    out("update", status=done.status.name, errors=errs, aliases=aliases(a),
        operation=op.name, client_operation_id=done.client_operation_id, request_id=rid)

    # 4. The old fingerprint is stale now: 412.
    try:
        instances.update_network_interface(
            project=PROJECT, zone="us-central1-a", instance="node-a", network_interface="nic0",
            network_interface_resource=compute_v1.NetworkInterface(
                alias_ip_ranges=keep, fingerprint=nic.fingerprint))
        out("stale", raised=None)
    except gexc.GoogleAPICallError as e:
        out("stale", raised=type(e).__name__, code=e.code)

    # 5. Adding node-a's alias to node-b fails when the operation executes.
    b = instances.get(project=PROJECT, zone="us-central1-b", instance="node-b")
    op = instances.update_network_interface(
        project=PROJECT, zone="us-central1-b", instance="node-b", network_interface="nic0",
        network_interface_resource=compute_v1.NetworkInterface(
            alias_ip_ranges=[compute_v1.AliasIpRange(ip_cidr_range="10.128.0.101/32")],
            fingerprint=b.network_interfaces[0].fingerprint))
    done, errs, msgs = wait(ops, "us-central1-b", op)
    out("in_use", status=done.status.name, errors=errs, messages=msgs,
        http_status=done.http_error_status_code)

    # 6. Move the static external IP from node-a to node-b.
    op = instances.delete_access_config(
        request=compute_v1.DeleteAccessConfigInstanceRequest(
            project=PROJECT, zone="us-central1-a", instance="node-a", network_interface="nic0",
            access_config="External NAT", request_id=str(uuid.uuid4())))
    wait(ops, "us-central1-a", op)
    b = instances.get(project=PROJECT, zone="us-central1-b", instance="node-b")
    for c in b.network_interfaces[0].access_configs:
        wait(ops, "us-central1-b", instances.delete_access_config(
            project=PROJECT, zone="us-central1-b", instance="node-b", network_interface="nic0",
            access_config=c.name))
    op = instances.add_access_config(
        request=compute_v1.AddAccessConfigInstanceRequest(
            project=PROJECT, zone="us-central1-b", instance="node-b", network_interface="nic0",
            access_config_resource=compute_v1.AccessConfig(
                name="External NAT", nat_i_p="203.0.113.10", type_="ONE_TO_ONE_NAT"),
            request_id=str(uuid.uuid4())))
    done, errs, _ = wait(ops, "us-central1-b", op)
    addr = addresses.get(project=PROJECT, region="us-central1", address="vip-ext")
    out("access_config", errors=errs, address_status=addr.status, users=list(addr.users))
    # Deleting a name that does not exist is a silent no-op.
    op = instances.delete_access_config(
        project=PROJECT, zone="us-central1-b", instance="node-b", network_interface="nic0",
        access_config="no-such-config")
    done, errs, _ = wait(ops, "us-central1-b", op)
    b = instances.get(project=PROJECT, zone="us-central1-b", instance="node-b")
    out("delete_unknown", status=done.status.name, errors=errs,
        nat=[c.nat_i_p for c in b.network_interfaces[0].access_configs])

    # 7. List with filters.
    listed = instances.list(request=compute_v1.ListInstancesRequest(
        project=PROJECT, zone="us-central1-b", filter='labels.cluster = "ha1"'))
    agg = instances.aggregated_list(request=compute_v1.AggregatedListInstancesRequest(
        project=PROJECT, filter='name = "node-b"'))
    agg_names = [i.name for _, scoped in agg for i in scoped.instances]
    out("list", zonal=[i.name for i in listed], aggregated=agg_names)

    # 8. google-auth's metadata-server path (GCE_METADATA_HOST).
    out("md_ping", on_gce=_metadata.ping(req))
    md = compute_engine.Credentials()
    md.refresh(req)
    project = _metadata.get_project_id(req)
    ip_aliases = _metadata.get(req, "instance/network-interfaces/0/ip-aliases/",
                               recursive=True)
    via_md = compute_v1.InstancesClient(credentials=md, client_options=opts)
    a = via_md.get(project=PROJECT, zone="us-central1-a", instance="node-a")
    out("metadata", email=md.service_account_email, project=project,
        ip_aliases=ip_aliases, token_prefix=md.token[:5], api_name=a.name)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report everything to the Rust side
        import traceback
        traceback.print_exc()
        out("crash", error=f"{type(e).__name__}: {e}")
        sys.exit(1)
