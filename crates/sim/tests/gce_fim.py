"""Reads and sets a backend service's haPolicy.leader with google-api-python-client
(googleapiclient.discovery, built from the Compute discovery document the emulator serves),
unmodified. Run by tests/gce_fim.rs, which passes SIM_API (http://127.0.0.1:PORT),
SIM_TOKEN (an access token), SIM_PROJECT and SIM_REGION. Prints one JSON object per step.
"""

import json
import os

import google.oauth2.credentials
from googleapiclient import discovery
from googleapiclient.errors import HttpError

API = os.environ["SIM_API"]
PROJECT = os.environ["SIM_PROJECT"]
REGION = os.environ["SIM_REGION"]


def out(step, **kw):
    print(json.dumps({"step": step, **kw}), flush=True)


def status(call):
    try:
        call.execute()
        return 200, ""
    except HttpError as e:
        return e.resp.status, e._get_reason()


def main():
    creds = google.oauth2.credentials.Credentials(os.environ["SIM_TOKEN"])
    compute = discovery.build(
        "compute",
        "v1",
        credentials=creds,
        discoveryServiceUrl=API + "/discovery/v1/apis/compute/v1/rest",
        static_discovery=False,
        client_options={"api_endpoint": API + "/compute/v1/"},
        cache_discovery=False,
    )
    bss = compute.regionBackendServices()
    bs = bss.get(project=PROJECT, region=REGION, backendService="ilb-bs").execute()
    out("get", haPolicy=bs.get("haPolicy"), fingerprint=bs["fingerprint"], backends=bs["backends"],
        scheme=bs["loadBalancingScheme"], network=bs.get("network"))
    listed = bss.list(project=PROJECT, region=REGION).execute()
    out("list", names=[b["name"] for b in listed.get("items", [])])

    fr = compute.forwardingRules().get(project=PROJECT, region=REGION, forwardingRule="ilb-fr").execute()
    out("forwarding_rule", ip=fr["IPAddress"], backendService=fr["backendService"], scheme=fr["loadBalancingScheme"])

    negs = compute.networkEndpointGroups()
    b_group = next(b["group"] for b in bs["backends"] if b["group"].endswith("/neg-b"))
    zone_b = b_group.split("/zones/")[1].split("/")[0]
    neg = negs.get(project=PROJECT, zone=zone_b, networkEndpointGroup="neg-b").execute()
    eps = negs.listNetworkEndpoints(project=PROJECT, zone=zone_b, networkEndpointGroup="neg-b").execute()
    out("neg", type=neg["networkEndpointType"], endpoints=[e["networkEndpoint"] for e in eps.get("items", [])])

    # The documented call: patch the backend service's haPolicy.leader, fingerprint included.
    body = {
        "fingerprint": bs["fingerprint"],
        "haPolicy": {"leader": {"backendGroup": b_group, "networkEndpoint": {"instance": "node-b"}}},
    }
    op = bss.patch(project=PROJECT, region=REGION, backendService="ilb-bs", body=body).execute()
    done = compute.regionOperations().wait(project=PROJECT, region=REGION, operation=op["name"]).execute()
    after = bss.get(project=PROJECT, region=REGION, backendService="ilb-bs").execute()
    out("patch", op_status=done["status"], op_type=op["operationType"], leader=after["haPolicy"].get("leader"),
        fingerprint_changed=after["fingerprint"] != bs["fingerprint"])

    # The same fingerprint again: stale now.
    out("stale", status=status(bss.patch(project=PROJECT, region=REGION, backendService="ilb-bs", body=body))[0])
    fp = after["fingerprint"]
    not_attached = {"fingerprint": fp, "haPolicy": {"leader": {"backendGroup": b_group, "networkEndpoint": {"instance": "node-a"}}}}
    out("not_in_neg", status=status(bss.patch(project=PROJECT, region=REGION, backendService="ilb-bs", body=not_attached))[0])
    foreign = {"fingerprint": fp, "haPolicy": {"leader": {"backendGroup": b_group.replace("neg-b", "neg-x"), "networkEndpoint": {"instance": "node-b"}}}}
    out("not_a_backend", status=status(bss.patch(project=PROJECT, region=REGION, backendService="ilb-bs", body=foreign))[0])
    immutable = {"fingerprint": fp, "haPolicy": {"fastIPMove": "DISABLED"}}
    out("fast_ip_move_fixed", status=status(bss.patch(project=PROJECT, region=REGION, backendService="ilb-bs", body=immutable))[0])
    no_fp = {"haPolicy": body["haPolicy"]}
    out("no_fingerprint", status=status(bss.patch(project=PROJECT, region=REGION, backendService="ilb-bs", body=no_fp))[0])

    # update (PUT) with the whole resource, leader back to node-a by instance URL.
    cur = bss.get(project=PROJECT, region=REGION, backendService="ilb-bs").execute()
    a_group = next(b["group"] for b in cur["backends"] if b["group"].endswith("/neg-a"))
    zone_a = a_group.split("/zones/")[1].split("/")[0]
    cur["haPolicy"]["leader"] = {
        "backendGroup": a_group,
        "networkEndpoint": {"instance": "https://www.googleapis.com/compute/v1/projects/%s/zones/%s/instances/node-a" % (PROJECT, zone_a)},
    }
    op = bss.update(project=PROJECT, region=REGION, backendService="ilb-bs", body=cur).execute()
    after = bss.get(project=PROJECT, region=REGION, backendService="ilb-bs").execute()
    out("update", op_type=op["operationType"], leader=after["haPolicy"]["leader"]["networkEndpoint"]["instance"])


if __name__ == "__main__":
    main()
