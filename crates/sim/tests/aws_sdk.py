"""Drives cloudvip-sim's AWS half with Amazon's own clients, unmodified: botocore/boto3 and
the AWS CLI v1 (crates/sim/tests/requirements-aws.txt, in the venv scripts/setup-deps.sh
builds).

Called by crates/sim/tests/aws_sdk.rs inside a node's network namespace, where the real
hostnames (ec2.eu-west-1.amazonaws.com, sts.eu-west-1.amazonaws.com) resolve to the
emulator through a private /etc/hosts and 169.254.169.254 is the emulator's IMDS. One
argument: a JSON file of parameters. Prints one JSON object of observations on stdout; the
Rust test asserts on it and on the emulator's state.
"""

import datetime
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import boto3
import botocore
import botocore.auth
import botocore.utils
from botocore.config import Config
from botocore.exceptions import ClientError


def error(fn):
    """The error a call fails with: code, HTTP status, request id (None if it succeeds)."""
    try:
        fn()
    except ClientError as e:
        md = e.response.get("ResponseMetadata", {})
        return {
            "code": e.response["Error"]["Code"],
            "status": md.get("HTTPStatusCode"),
            "request_id": md.get("RequestId"),
            "message": e.response["Error"].get("Message", ""),
        }
    return None


def wait_for(fn, pred, timeout=20.0):
    """Polls until `pred(fn())`: EC2 is eventually consistent, clients must wait."""
    end = time.time() + timeout
    while True:
        v = fn()
        if pred(v):
            return v, True
        if time.time() > end:
            return v, False
        time.sleep(0.2)


def enis_with(ec2, ip):
    r = ec2.describe_network_interfaces(
        Filters=[{"Name": "addresses.private-ip-address", "Values": [ip]}]
    )
    return sorted(n["NetworkInterfaceId"] for n in r["NetworkInterfaces"])


def route_target(ec2, rtb, dest):
    for t in ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"]:
        for r in t["Routes"]:
            if r.get("DestinationCidrBlock") == dest:
                return {"instance": r.get("InstanceId"), "eni": r.get("NetworkInterfaceId"),
                        "state": r.get("State"), "origin": r.get("Origin")}
    return None


def boto(p):
    out = {}
    session = boto3.Session(profile_name="default")
    ec2 = session.client("ec2")
    out["endpoint"] = ec2.meta.endpoint_url

    # Throttled first (the test injected two RequestLimitExceeded): botocore retries.
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [p["vpc"]]}])
    out["vpcs"] = [v["CidrBlock"] for v in vpcs["Vpcs"]]
    out["vpcs_retries"] = vpcs["ResponseMetadata"]["RetryAttempts"]
    out["subnets"] = sorted(s["CidrBlock"] for s in ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [p["vpc"]]}])["Subnets"])

    inst = ec2.describe_instances(InstanceIds=[p["node_a"]])["Reservations"][0]["Instances"][0]
    out["node_a"] = {
        "private_ip": inst["PrivateIpAddress"],
        "type": inst["InstanceType"],
        "state": inst["State"]["Name"],
        "ips": [a["PrivateIpAddress"] for n in inst["NetworkInterfaces"] for a in n["PrivateIpAddresses"]],
        "vip_public": [a.get("Association", {}).get("PublicIp") for n in inst["NetworkInterfaces"]
                       for a in n["PrivateIpAddresses"] if a["PrivateIpAddress"] == p["vip"]],
        "profile": inst.get("IamInstanceProfile", {}).get("Arn"),
        "launch_time_is_datetime": isinstance(inst["LaunchTime"], datetime.datetime),
    }
    pages = list(ec2.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 5}))
    out["paginated_instances"] = sorted(i["InstanceId"] for pg in pages for r in pg["Reservations"] for i in r["Instances"])
    by_vip = ec2.describe_instances(Filters=[{"Name": "network-interface.addresses.private-ip-address", "Values": [p["vip"]]}])
    out["instance_with_vip"] = [i["InstanceId"] for r in by_vip["Reservations"] for i in r["Instances"]]

    out["eni_with_vip"] = enis_with(ec2, p["vip"])
    out["eni_of_b"] = [n["NetworkInterfaceId"] for n in ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [p["node_b"]]}])["NetworkInterfaces"]]
    n = ec2.describe_network_interfaces(NetworkInterfaceIds=[p["eni_a"]])["NetworkInterfaces"][0]
    out["eni_a"] = {
        "mac": n["MacAddress"], "subnet": n["SubnetId"], "status": n["Status"],
        "source_dest_check": n["SourceDestCheck"],
        "attachment": n["Attachment"]["InstanceId"],
        "ips": [(a["PrivateIpAddress"], a["Primary"], a.get("Association", {}).get("AllocationId")) for a in n["PrivateIpAddresses"]],
    }
    out["by_eni_id_filter"] = [x["NetworkInterfaceId"] for x in ec2.describe_network_interfaces(
        Filters=[{"Name": "network-interface-id", "Values": [p["eni_b"]]}])["NetworkInterfaces"]]

    # Secondary IP: one call moves it, its Elastic IP follows.
    r = ec2.assign_private_ip_addresses(NetworkInterfaceId=p["eni_b"], PrivateIpAddresses=[p["vip"]],
                                        AllowReassignment=True)
    out["assigned"] = [a["PrivateIpAddress"] for a in r["AssignedPrivateIpAddresses"]]
    seen, ok = wait_for(lambda: enis_with(ec2, p["vip"]), lambda v: v == [p["eni_b"]])
    out["vip_moved_visible"] = ok
    addr = ec2.describe_addresses(AllocationIds=[p["eip_vip"]])["Addresses"][0]
    out["eip_followed"] = {"eni": addr.get("NetworkInterfaceId"), "private_ip": addr.get("PrivateIpAddress"),
                           "instance": addr.get("InstanceId")}
    out["assign_taken"] = error(lambda: ec2.assign_private_ip_addresses(
        NetworkInterfaceId=p["eni_a"], PrivateIpAddresses=[p["vip"]]))
    out["assign_over_limit"] = error(lambda: ec2.assign_private_ip_addresses(
        NetworkInterfaceId=p["eni_b"], PrivateIpAddresses=[p["extra_ip"]]))
    ec2.unassign_private_ip_addresses(NetworkInterfaceId=p["eni_b"], PrivateIpAddresses=[p["vip"]])
    addr, _ = wait_for(lambda: ec2.describe_addresses(PublicIps=[p["eip_vip_ip"]])["Addresses"][0],
                       lambda a: "AssociationId" not in a)
    out["eip_after_unassign"] = addr.get("AssociationId")
    out["unassign_again"] = error(lambda: ec2.unassign_private_ip_addresses(
        NetworkInterfaceId=p["eni_b"], PrivateIpAddresses=[p["vip"]]))

    # Elastic IPs.
    a1 = ec2.associate_address(AllocationId=p["eip_spare"], NetworkInterfaceId=p["eni_b"])["AssociationId"]
    out["reassoc_refused"] = error(lambda: ec2.associate_address(
        AllocationId=p["eip_spare"], InstanceId=p["node_a"], AllowReassociation=False))
    a2 = ec2.associate_address(PublicIp=p["eip_spare_ip"], InstanceId=p["node_a"])["AssociationId"]
    addr, _ = wait_for(
        lambda: ec2.describe_addresses(Filters=[{"Name": "allocation-id", "Values": [p["eip_spare"]]}])["Addresses"][0],
        lambda a: a.get("AssociationId") == a2)
    out["spare_on"] = {"instance": addr.get("InstanceId"), "private_ip": addr.get("PrivateIpAddress"),
                       "association": addr.get("AssociationId") == a2}
    ec2.disassociate_address(AssociationId=a2)
    out["disassociate_twice"] = error(lambda: ec2.disassociate_address(AssociationId=a2))
    out["disassociate_first"] = error(lambda: ec2.disassociate_address(AssociationId=a1))
    out["eip_unknown"] = error(lambda: ec2.describe_addresses(AllocationIds=["eipalloc-0000000000000dead"]))

    # Route tables.
    out["route_before"] = route_target(ec2, p["rtb"], p["overlay"])
    ec2.replace_route(RouteTableId=p["rtb"], DestinationCidrBlock=p["overlay"], NetworkInterfaceId=p["eni_b"])
    seen, ok = wait_for(lambda: route_target(ec2, p["rtb"], p["overlay"]),
                        lambda v: v and v["instance"] == p["node_b"])
    out["route_after"] = seen
    out["route_visible"] = ok
    ec2.replace_route(RouteTableId=p["rtb"], DestinationCidrBlock=p["overlay"], InstanceId=p["node_a"])
    out["create_existing"] = error(lambda: ec2.create_route(
        RouteTableId=p["rtb"], DestinationCidrBlock=p["overlay"], InstanceId=p["node_a"]))
    out["replace_missing"] = error(lambda: ec2.replace_route(
        RouteTableId=p["rtb"], DestinationCidrBlock="192.168.100.99/32", InstanceId=p["node_a"]))
    ec2.create_route(RouteTableId=p["rtb"], DestinationCidrBlock="192.168.100.99/32", NetworkInterfaceId=p["eni_a"])
    tables, _ = wait_for(lambda: [t["RouteTableId"] for t in ec2.describe_route_tables(
        Filters=[{"Name": "route.destination-cidr-block", "Values": ["192.168.100.99/32"]}])["RouteTables"]],
        lambda v: v != [])
    out["routes_by_filter"] = tables
    ec2.delete_route(RouteTableId=p["rtb"], DestinationCidrBlock="192.168.100.99/32")
    out["other_account_table"] = error(lambda: ec2.describe_route_tables(RouteTableIds=[p["rtb_other"]]))

    # Source/destination check (diagnose reads it).
    ec2.modify_instance_attribute(InstanceId=p["node_b"], SourceDestCheck={"Value": True})
    out["sdc_instance"], _ = wait_for(lambda: ec2.describe_instance_attribute(
        InstanceId=p["node_b"], Attribute="sourceDestCheck")["SourceDestCheck"]["Value"], lambda v: v)
    ec2.modify_network_interface_attribute(NetworkInterfaceId=p["eni_b"], SourceDestCheck={"Value": False})
    out["sdc_eni"], _ = wait_for(lambda: ec2.describe_network_interface_attribute(
        NetworkInterfaceId=p["eni_b"], Attribute="sourceDestCheck")["SourceDestCheck"]["Value"], lambda v: not v)

    # DryRun: EC2's own "would this be allowed?".
    out["dry_run_allowed"] = error(lambda: ec2.replace_route(
        RouteTableId=p["rtb"], DestinationCidrBlock=p["overlay"], NetworkInterfaceId=p["eni_b"], DryRun=True))
    auditor = boto3.Session(profile_name="auditor").client("ec2")
    out["dry_run_denied"] = error(lambda: auditor.replace_route(
        RouteTableId=p["rtb"], DestinationCidrBlock=p["overlay"], NetworkInterfaceId=p["eni_b"], DryRun=True))
    out["auditor_describe_dry_run"] = error(lambda: auditor.describe_instances(DryRun=True))
    time.sleep(0.6)  # past the read lag: a DryRun that changed something would show now
    out["route_unchanged"] = route_target(ec2, p["rtb"], p["overlay"])

    # Errors botocore must parse (RequestID casing, codes, statuses).
    out["not_found"] = error(lambda: ec2.describe_network_interfaces(NetworkInterfaceIds=["eni-0000000000000dead"]))
    wrong = boto3.Session(aws_access_key_id=p["admin_key"], aws_secret_access_key="not-the-secret-at-all",
                          region_name="eu-west-1").client("ec2")
    out["wrong_secret"] = error(lambda: wrong.describe_vpcs())
    stranger = boto3.Session(aws_access_key_id="AKIAUNKNOWNKEY000000", aws_secret_access_key="x" * 40,
                             region_name="eu-west-1").client("ec2")
    out["unknown_key"] = error(lambda: stranger.describe_vpcs())
    other_region = session.client("ec2", region_name="us-east-1", endpoint_url="https://ec2.eu-west-1.amazonaws.com")
    out["wrong_region"] = error(lambda: other_region.describe_vpcs())
    real_now = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: real_now() - datetime.timedelta(minutes=10)
    try:
        out["skewed_clock"] = error(lambda: ec2.describe_vpcs())
    finally:
        botocore.auth.get_current_datetime = real_now

    # STS: who am I, and a role of the account that owns the other route table.
    sts = session.client("sts")
    out["sts_endpoint"] = sts.meta.endpoint_url
    out["caller"] = sts.get_caller_identity()["Arn"]
    c = sts.assume_role(RoleArn=p["role_arn"], RoleSessionName="AWSCLI-RouteTableUpdate",
                        DurationSeconds=900)
    creds = c["Credentials"]
    out["assumed"] = {"arn": c["AssumedRoleUser"]["Arn"], "key_prefix": creds["AccessKeyId"][:4],
                      "expiration_is_datetime": isinstance(creds["Expiration"], datetime.datetime)}
    role = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"], region_name="eu-west-1")
    rec2 = role.client("ec2")
    rec2.replace_route(RouteTableId=p["rtb_other"], DestinationCidrBlock=p["overlay"], NetworkInterfaceId=p["eni_b"])
    seen, ok = wait_for(lambda: route_target(rec2, p["rtb_other"], p["overlay"]),
                        lambda v: v and v["eni"] == p["eni_b"])
    out["other_route_after"] = seen
    out["role_denied"] = error(lambda: rec2.describe_instances())
    out["role_caller"] = role.client("sts").get_caller_identity()["Arn"]
    out["assume_denied"] = error(lambda: boto3.Session(profile_name="auditor").client("sts").assume_role(
        RoleArn=p["role_arn"], RoleSessionName="nope"))
    return out


def aws_cli(p, args, env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    r = subprocess.run([p["aws"]] + args, capture_output=True, text=True, env=env, timeout=60)
    return {"rc": r.returncode, "out": r.stdout.strip(), "err": r.stderr.strip()}


def cli(p):
    """The commands the Debian anchors run, with the CLI's own config as a user writes it."""
    out = {}
    q_ips = "Reservations[].Instances[].NetworkInterfaces[].PrivateIpAddresses[].PrivateIpAddress[]"
    out["awsvip_monitor_a"] = aws_cli(p, ["--profile", "default", "ec2", "describe-instances",
                                          "--instance-id", p["node_a"], "--query", q_ips, "--output", "text"])
    out["awsvip_start_b"] = aws_cli(p, ["--profile", "default", "ec2", "assign-private-ip-addresses",
                                        "--network-interface-id", p["eni_b"], "--private-ip-addresses", p["vip"],
                                        "--allow-reassignment"])
    time.sleep(1)  # the anchor sleeps api_delay (3 s) here; the emulator's lag is shorter
    out["awsvip_monitor_b"] = aws_cli(p, ["--profile", "default", "ec2", "describe-instances",
                                          "--instance-id", p["node_b"], "--query", q_ips, "--output", "text"])
    out["awsvip_stop_b"] = aws_cli(p, ["--profile", "default", "ec2", "unassign-private-ip-addresses",
                                       "--network-interface-id", p["eni_b"], "--private-ip-addresses", p["vip"]])
    out["enis_filter"] = aws_cli(p, ["ec2", "describe-network-interfaces", "--filters",
                                     f"Name=attachment.instance-id,Values={p['node_a']}",
                                     "--query", "NetworkInterfaces[].NetworkInterfaceId", "--output", "text"])
    # awseip
    out["awseip_start"] = aws_cli(p, ["--profile", "default", "ec2", "associate-address", "--network-interface-id",
                                      p["eni_a"], "--allocation-id", p["eip_spare"], "--private-ip-address",
                                      p["node_a_ip"]])
    time.sleep(1)
    out["awseip_monitor"] = aws_cli(p, ["--profile", "default", "ec2", "describe-instances",
                                        "--instance-id", p["node_a"]])
    out["awseip_monitor_has_ip"] = p["eip_spare_ip"] in out["awseip_monitor"]["out"]
    desc = aws_cli(p, ["--profile", "default", "--output", "json", "ec2", "describe-addresses",
                       "--allocation-id", p["eip_spare"]])
    assoc = ""
    for line in desc["out"].splitlines():
        if "AssociationId" in line:
            assoc = line.split('"')[3]
            break
    out["awseip_association"] = assoc
    out["awseip_stop"] = aws_cli(p, ["--profile", "default", "ec2", "disassociate-address", "--association-id", assoc])
    out["awseip_associate_instance"] = aws_cli(p, ["--profile", "default", "ec2", "associate-address",
                                                   "--instance-id", p["node_b"], "--allocation-id", p["eip_spare"]])
    # aws-vpc-move-ip
    q_route = f"RouteTables[*].Routes[?DestinationCidrBlock=='{p['overlay']}'].InstanceId"
    out["vpc_monitor_before"] = aws_cli(p, ["--profile", "default", "--region", "eu-west-1", "--output", "text", "ec2",
                                            "describe-route-tables", "--route-table-ids", p["rtb"], "--query", q_route])
    out["vpc_start"] = aws_cli(p, ["--profile", "default", "--region", "eu-west-1", "--output", "text", "ec2",
                                   "replace-route", "--route-table-id", p["rtb"], "--destination-cidr-block",
                                   p["overlay"], "--network-interface-id", p["eni_b"]])
    time.sleep(1)
    out["vpc_monitor_after"] = aws_cli(p, ["--profile", "default", "--region", "eu-west-1", "--output", "text", "ec2",
                                           "describe-route-tables", "--route-table-ids", p["rtb"], "--query", q_route])
    # routing_table_role, parsed exactly as the anchor does (awk over the text output).
    ar = aws_cli(p, ["sts", "assume-role", "--role-arn", p["role_arn"], "--role-session-name",
                     "AWSCLI-RouteTableUpdate", "--profile", "default", "--region", "eu-west-1", "--output=text"])
    words = ar["out"].split()
    out["assume_role_rc"] = ar["rc"]
    out["assume_role_fields"] = [words[0] if words else None, words[3] if len(words) > 3 else None]
    role_env = {"AWS_ACCESS_KEY_ID": words[4], "AWS_SECRET_ACCESS_KEY": words[6],
                "AWS_SESSION_TOKEN": words[7]} if len(words) > 7 and words[3] == "CREDENTIALS" else {}
    out["role_caller"] = aws_cli(p, ["sts", "get-caller-identity", "--query", "Arn", "--output", "text"], role_env)
    out["role_replace"] = aws_cli(p, ["--region", "eu-west-1", "--output", "text", "ec2", "replace-route",
                                      "--route-table-id", p["rtb_other"], "--destination-cidr-block", p["overlay"],
                                      "--network-interface-id", p["eni_b"]], role_env)
    # diagnose's check, and a DryRun probe.
    out["no_sdc"] = aws_cli(p, ["ec2", "modify-instance-attribute", "--instance-id", p["node_b"], "--no-source-dest-check"])
    out["sdc"] = aws_cli(p, ["ec2", "describe-instance-attribute", "--instance-id", p["node_b"], "--attribute",
                             "sourceDestCheck", "--query", "SourceDestCheck.Value", "--output", "text"])
    out["dry_run"] = aws_cli(p, ["ec2", "describe-instances", "--dry-run"])
    out["dry_run_denied"] = aws_cli(p, ["--profile", "auditor", "ec2", "assign-private-ip-addresses",
                                        "--network-interface-id", p["eni_b"], "--private-ip-addresses", p["vip"]])
    # Where a user must give the endpoint (no DNS name): --endpoint-url with the address.
    out["endpoint_url"] = aws_cli(p, ["ec2", "describe-vpcs", "--endpoint-url", p["endpoint_url"],
                                      "--query", "Vpcs[].VpcId", "--output", "text"])
    return out


def imds(p):
    """Instance-profile credentials and region through botocore's own IMDS code."""
    out = {}
    fetcher = botocore.utils.InstanceMetadataFetcher(timeout=2, num_attempts=2)
    c = fetcher.retrieve_iam_role_credentials()
    out["role_name"] = c.get("role_name")
    out["has_token"] = bool(c.get("token"))
    out["key_prefix"] = (c.get("access_key") or "")[:4]
    out["expiry"] = c.get("expiry_time")
    out["region"] = botocore.utils.InstanceMetadataRegionFetcher(timeout=2, num_attempts=2).retrieve_region()
    # The whole default chain: no env keys, no files -> the instance profile.
    session = boto3.Session()
    creds = session.get_credentials()
    out["method"] = creds.method
    ec2 = session.client("ec2", region_name=out["region"])
    out["endpoint"] = ec2.meta.endpoint_url
    r = ec2.describe_instances(InstanceIds=[p["instance"]])
    out["instance_found"] = [i["InstanceId"] for x in r["Reservations"] for i in x["Instances"]]
    out["caller"] = session.client("sts", region_name=out["region"]).get_caller_identity()["Arn"]
    out["denied"] = error(lambda: ec2.modify_instance_attribute(InstanceId=p["instance"],
                                                                SourceDestCheck={"Value": True}))
    # IMDS's own rules, seen by a plain HTTP client.
    def put(headers):
        req = urllib.request.Request("http://169.254.169.254/latest/api/token", method="PUT", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=3) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""
    status, token = put({"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    out["token_status"] = status
    out["forwarded_status"] = put({"X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "10.9.9.9"})[0]
    out["bad_ttl_status"] = put({"X-aws-ec2-metadata-token-ttl-seconds": "0"})[0]

    def get(path, tok):
        h = {"X-aws-ec2-metadata-token": tok} if tok else {}
        req = urllib.request.Request("http://169.254.169.254/latest/" + path, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=3) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""
    out["no_token_status"] = get("meta-data/instance-id", None)[0]
    out["instance_id"] = get("meta-data/instance-id", token)[1]
    mac = get("meta-data/mac", token)[1]
    out["local_ipv4s"] = get(f"meta-data/network/interfaces/macs/{mac}/local-ipv4s", token)[1]
    return out


def main():
    with open(sys.argv[1]) as f:
        p = json.load(f)
    out = {"boto": boto, "cli": cli, "imds": imds}[p["mode"]](p)
    out["botocore"] = botocore.__version__
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
