"""Drives cloudvip-sim's OCI half with Oracle's official `oci` Python SDK, unmodified.

Called by crates/sim/tests/oci_sdk.rs with one argument, a JSON file of parameters. Only
the service endpoint (and, for instance principals, the IMDS base URL and federation
endpoint, through the SDK's documented overrides) point at the emulator. Prints one JSON
object of observations on stdout; the Rust test asserts on it and on the emulator state.
"""

import json
import os
import sys

import oci
from oci.core.models import (
    CreateIpv6Details,
    CreatePrivateIpDetails,
    GetPublicIpByIpAddressDetails,
    GetPublicIpByPrivateIpIdDetails,
    UpdateIpv6Details,
    UpdatePrivateIpDetails,
    UpdatePublicIpDetails,
)


def service_error(fn):
    try:
        fn()
    except oci.exceptions.ServiceError as e:
        return {"status": e.status, "code": e.code, "message": e.message}
    return None


def api_key(p):
    out = {}
    config = {
        "user": p["user"],
        "key_file": p["key_file"],
        "fingerprint": p["fingerprint"],
        "tenancy": p["tenancy"],
        "region": p["region"],
    }
    oci.config.validate_config(config)
    vn = oci.core.VirtualNetworkClient(config, service_endpoint=p["endpoint"])

    vnic = vn.get_vnic(p["vnic1"]).data
    out["vnic1"] = {"mac": vnic.mac_address, "private_ip": vnic.private_ip, "subnet": vnic.subnet_id}

    by_addr = vn.list_private_ips(ip_address=p["vip"], subnet_id=vnic.subnet_id).data
    out["by_address"] = [(x.id, x.vnic_id, x.is_primary) for x in by_addr]

    # Every page through the SDK's own paginator, one entry per page.
    all_on_vnic = oci.pagination.list_call_get_all_results(
        vn.list_private_ips, vnic_id=p["vnic1"], limit=1
    ).data
    out["by_vnic_before"] = sorted(x.ip_address for x in all_on_vnic)

    # Move the VIP with UpdatePrivateIp, guarded by its ETag.
    vip_id = by_addr[0].id
    got = vn.get_private_ip(vip_id)
    out["stale_etag"] = service_error(
        lambda: vn.update_private_ip(vip_id, UpdatePrivateIpDetails(vnic_id=p["vnic2"]), if_match="0badf00d")
    )
    moved = vn.update_private_ip(vip_id, UpdatePrivateIpDetails(vnic_id=p["vnic2"]), if_match=got.headers["etag"])
    out["move_status"] = moved.status
    out["etag_changed"] = moved.headers["etag"] != got.headers["etag"]
    out["vip_after_move"] = vn.get_private_ip(vip_id).data.vnic_id
    out["by_vnic2_after"] = sorted(
        x.ip_address
        for x in oci.pagination.list_call_get_all_results(vn.list_private_ips, vnic_id=p["vnic2"]).data
    )

    primary = [x for x in all_on_vnic if x.is_primary][0]
    out["move_primary"] = service_error(
        lambda: vn.update_private_ip(primary.id, UpdatePrivateIpDetails(vnic_id=p["vnic2"]))
    )

    # The reserved public IP followed the VIP.
    followed = vn.get_public_ip_by_private_ip_id(GetPublicIpByPrivateIpIdDetails(private_ip_id=vip_id)).data
    out["reserved_after_move"] = {"ip": followed.ip_address, "state": followed.lifecycle_state,
                                  "assigned": followed.assigned_entity_id}

    # Move the spare reserved public IP onto node2's primary private IP and wait for ASSIGNED.
    spare = vn.get_public_ip_by_ip_address(GetPublicIpByIpAddressDetails(ip_address=p["spare_public"])).data
    out["spare_before"] = spare.lifecycle_state
    node2_primary = [
        x for x in vn.list_private_ips(vnic_id=p["vnic2"]).data if x.is_primary
    ][0]
    upd = vn.update_public_ip(spare.id, UpdatePublicIpDetails(private_ip_id=node2_primary.id)).data
    out["spare_right_after_update"] = upd.lifecycle_state
    done = oci.wait_until(vn, vn.get_public_ip(spare.id), "lifecycle_state", "ASSIGNED",
                          max_wait_seconds=30, max_interval_seconds=1).data
    out["spare_final"] = {"state": done.lifecycle_state, "assigned": done.assigned_entity_id}

    # CreatePrivateIp (the SDK adds opc-retry-token) and DeletePrivateIp.
    created = vn.create_private_ip(CreatePrivateIpDetails(vnic_id=p["vnic1"], ip_address=p["extra_ip"])).data
    out["created"] = {"ip": created.ip_address, "vnic": created.vnic_id}
    out["delete_status"] = vn.delete_private_ip(created.id).status
    out["get_deleted"] = service_error(lambda: vn.get_private_ip(created.id))

    # The same request signed with a key the emulator does not know for that keyId.
    bad = oci.signer.Signer(p["tenancy"], p["user"], p["fingerprint"], p["wrong_key_file"])
    vn_bad = oci.core.VirtualNetworkClient(config, signer=bad, service_endpoint=p["endpoint"])
    out["wrong_key"] = service_error(lambda: vn_bad.get_vnic(p["vnic1"]))
    return out


def ipv6(p):
    """The Ipv6 resource through the SDK's own operations and models."""
    config = {
        "user": p["user"],
        "key_file": p["key_file"],
        "fingerprint": p["fingerprint"],
        "tenancy": p["tenancy"],
        "region": p["region"],
    }
    vn = oci.core.VirtualNetworkClient(config, service_endpoint=p["endpoint"])
    out = {}
    vnic = vn.get_vnic(p["vnic1"]).data
    out["vnic_ipv6"] = vnic.ipv6_addresses
    subnet = vn.get_subnet(vnic.subnet_id).data
    out["subnet_ipv6"] = subnet.ipv6_cidr_block

    # list_ipv6s by address + subnet, and by VNIC through the SDK's paginator.
    by_addr = vn.list_ipv6s(ip_address=p["vip6"], subnet_id=vnic.subnet_id).data
    out["by_address"] = [(x.id, x.vnic_id, x.ip_address, x.lifecycle_state) for x in by_addr]
    on_vnic = oci.pagination.list_call_get_all_results(vn.list_ipv6s, vnic_id=p["vnic1"], limit=1).data
    out["by_vnic1"] = sorted(x.ip_address for x in on_vnic)

    # get_ipv6, then update_ipv6 with vnic_id (the move), guarded by the ETag.
    vip_id = by_addr[0].id
    got = vn.get_ipv6(vip_id)
    out["get"] = {"ip": got.data.ip_address, "state": got.data.lifecycle_state,
                  "ip_state": got.data.ip_state, "lifetime": got.data.lifetime}
    out["stale_etag"] = service_error(
        lambda: vn.update_ipv6(vip_id, UpdateIpv6Details(vnic_id=p["vnic2"]), if_match="0badf00d")
    )
    moved = vn.update_ipv6(vip_id, UpdateIpv6Details(vnic_id=p["vnic2"]), if_match=got.headers["etag"])
    out["move_status"] = moved.status
    out["etag_changed"] = moved.headers["etag"] != got.headers["etag"]
    out["after_move"] = vn.get_ipv6(vip_id).data.vnic_id
    out["vnic2_ipv6"] = vn.get_vnic(p["vnic2"]).data.ipv6_addresses
    out["renamed"] = vn.update_ipv6(vip_id, UpdateIpv6Details(display_name="vip6")).data.display_name

    # create_ipv6 at a chosen address and at one OCI picks; conflicts and bad addresses.
    created = vn.create_ipv6(CreateIpv6Details(vnic_id=p["vnic1"], ip_address=p["extra6"])).data
    out["created"] = {"ip": created.ip_address, "vnic": created.vnic_id, "state": created.lifecycle_state}
    picked = vn.create_ipv6(CreateIpv6Details(vnic_id=p["vnic1"])).data
    out["picked"] = picked.ip_address
    out["taken"] = service_error(
        lambda: vn.create_ipv6(CreateIpv6Details(vnic_id=p["vnic2"], ip_address=p["extra6"]))
    )
    out["outside"] = service_error(
        lambda: vn.create_ipv6(CreateIpv6Details(vnic_id=p["vnic1"], ip_address="2001:db8::5"))
    )
    out["by_subnet"] = sorted(
        x.ip_address
        for x in oci.pagination.list_call_get_all_results(vn.list_ipv6s, subnet_id=vnic.subnet_id).data
    )

    # delete_ipv6.
    out["delete_status"] = vn.delete_ipv6(created.id).status
    out["get_deleted"] = service_error(lambda: vn.get_ipv6(created.id))
    out["delete_picked"] = vn.delete_ipv6(picked.id).status
    return out


def instance_principal(p):
    out = {}
    os.environ["OCI_METADATA_BASE_URL"] = p["metadata_base_url"]
    signer = oci.auth.signers.InstancePrincipalsSecurityTokenSigner(federation_endpoint=p["federation_endpoint"])
    out["region"] = signer.region
    out["tenancy"] = signer.tenancy_id
    vn = oci.core.VirtualNetworkClient({}, signer=signer, service_endpoint=p["endpoint"])
    out["vnic"] = vn.get_vnic(p["vnic1"]).data.mac_address
    # Token revoked behind the SDK's back: the client gets a 401, refreshes and retries once.
    with open(p["revoke_flag"], "w") as f:
        f.write("revoke\n")
    import time
    deadline = time.time() + 20
    while os.path.exists(p["revoke_flag"]) and time.time() < deadline:
        time.sleep(0.05)
    out["revoked_seen"] = not os.path.exists(p["revoke_flag"])
    out["after_revoke"] = vn.list_private_ips(vnic_id=p["vnic1"]).status
    return out


def tls(p):
    """HTTPS with the emulator's CA. requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override
    a session's `verify`, so the CA is given both ways."""
    config = {
        "user": p["user"],
        "key_file": p["key_file"],
        "fingerprint": p["fingerprint"],
        "tenancy": p["tenancy"],
        "region": p["region"],
    }
    out = {}
    # Without the CA (system trust only), the client must refuse the emulator's certificate.
    os.environ.pop("REQUESTS_CA_BUNDLE", None)
    os.environ.pop("CURL_CA_BUNDLE", None)
    plain = oci.core.VirtualNetworkClient(config, service_endpoint=p["endpoint"],
                                          retry_strategy=oci.retry.NoneRetryStrategy())
    try:
        plain.get_vnic(p["vnic1"])
        out["untrusted"] = "accepted"
    except Exception as e:  # requests' SSLError, wrapped by the SDK
        out["untrusted"] = "refused" if "CERTIFICATE_VERIFY_FAILED" in repr(e) else repr(e)
    os.environ["REQUESTS_CA_BUNDLE"] = p["ca_bundle"]
    vn = oci.core.VirtualNetworkClient(config, service_endpoint=p["endpoint"])
    vn.base_client.session.verify = p["ca_bundle"]
    out["vnic"] = vn.get_vnic(p["vnic1"]).data.mac_address
    out["private_ips"] = len(oci.pagination.list_call_get_all_results(vn.list_private_ips, vnic_id=p["vnic1"]).data)
    return out


def main():
    with open(sys.argv[1]) as f:
        p = json.load(f)
    out = {"sdk_version": oci.__version__}
    if p["mode"] == "api_key":
        out.update(api_key(p))
    elif p["mode"] == "ipv6":
        out.update(ipv6(p))
    elif p["mode"] == "tls":
        out.update(tls(p))
    else:
        out.update(instance_principal(p))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
