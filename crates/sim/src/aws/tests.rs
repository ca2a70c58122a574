//! Unit tests of the AWS half in process: requests are built and signed here (with the
//! verifier's own primitives, which the AWS test suite checks in `sigv4.rs`) and handed to
//! the same handlers the listeners use. The conformance tests with clients we did not
//! write are `tests/aws_sdk.rs` (botocore, boto3, the AWS CLI) and `tests/anchors_aws.rs`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::service::handle_api;
use super::sigv4;
use super::{imds, time, Aws, AwsWorld};
use crate::http::{self, Request, Response};

const WORLD: &str = include_str!("../../examples/world-aws.toml");
const ADMIN: (&str, &str) = ("AKIACLOUDVIPSIM0001", "cloudvip-sim-secret-key-0001");
const AUDITOR: (&str, &str) = ("AKIACLOUDVIPSIM0002", "cloudvip-sim-secret-key-0002");
const ENI_A: &str = "eni-0c10d0000000000e1";
const ENI_B: &str = "eni-0c10d0000000000e2";
const NODE_A: &str = "i-0c10d000000000001";
const NODE_B: &str = "i-0c10d000000000002";
const VIP: &str = "10.0.1.100";
const EIP_VIP: &str = "eipalloc-0c10d00000000000f1";
const EIP_SPARE: &str = "eipalloc-0c10d00000000000f2";
const RTB: &str = "rtb-0c10d0000000000c1";
const RTB_OTHER: &str = "rtb-0c10d0000000000c2";

fn world() -> AwsWorld {
    crate::World::from_toml(WORLD).unwrap().aws.unwrap()
}

/// An emulator with no read lag, so each test asserts exactly what it sets up.
fn aws() -> Aws {
    let mut w = world();
    w.consistency = super::world::Consistency {
        instances_ms: 0,
        network_interfaces_ms: 0,
        addresses_ms: 0,
        route_tables_ms: 0,
        metadata_ms: 0,
    };
    Aws::new(&w).unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Creds<'a> {
    key: &'a str,
    secret: &'a str,
    token: Option<&'a str>,
}

fn creds(k: (&'static str, &'static str)) -> Creds<'static> {
    Creds {
        key: k.0,
        secret: k.1,
        token: None,
    }
}

/// A botocore-shaped signed POST: form body, `content-type;host;x-amz-date[;x-amz-security-token]`.
fn signed(
    host: &str,
    body: &str,
    c: &Creds<'_>,
    region: &str,
    service: &str,
    at: SystemTime,
) -> Request {
    let mut headers = vec![
        (
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        ),
        ("Host".to_owned(), host.to_owned()),
    ];
    let view = sigv4::Signed {
        method: "POST",
        raw_path: "/",
        raw_query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    let keys = sigv4::Keys {
        access_key: c.key,
        secret: c.secret,
        token: c.token,
    };
    let added = sigv4::sign(&view, &keys, region, service, at);
    headers.extend(added);
    Request {
        method: "POST".into(),
        path: "/".into(),
        raw_query: String::new(),
        query: Vec::new(),
        headers,
        body: body.as_bytes().to_vec(),
        peer: addr("127.0.0.1:40000"),
        local: addr("127.0.0.1:443"),
        tls: true,
        close: false,
    }
}

fn ec2_body(action: &str, params: &[(&str, &str)]) -> String {
    let mut b = format!("Action={action}&Version=2016-11-15");
    for (k, v) in params {
        b.push_str(&format!("&{k}={}", http::percent_encode(v)));
    }
    b
}

fn ec2_as(aws: &Aws, c: &Creds<'_>, action: &str, params: &[(&str, &str)]) -> Response {
    let req = signed(
        "ec2.eu-west-1.amazonaws.com",
        &ec2_body(action, params),
        c,
        "eu-west-1",
        "ec2",
        SystemTime::now(),
    );
    handle_api(aws, &req)
}

fn ec2(aws: &Aws, action: &str, params: &[(&str, &str)]) -> Response {
    ec2_as(aws, &creds(ADMIN), action, params)
}

fn sts_as(aws: &Aws, c: &Creds<'_>, action: &str, params: &[(&str, &str)]) -> Response {
    let mut b = format!("Action={action}&Version=2011-06-15");
    for (k, v) in params {
        b.push_str(&format!("&{k}={}", http::percent_encode(v)));
    }
    let req = signed(
        "sts.eu-west-1.amazonaws.com",
        &b,
        c,
        "eu-west-1",
        "sts",
        SystemTime::now(),
    );
    handle_api(aws, &req)
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// The text of the first `<tag>` in a response.
fn tag(r: &Response, tag: &str) -> Option<String> {
    let b = body(r);
    let open = format!("<{tag}>");
    let i = b.find(&open)? + open.len();
    let j = b[i..].find(&format!("</{tag}>"))?;
    Some(b[i..i + j].to_owned())
}

fn code(r: &Response) -> (u16, String) {
    (r.status, tag(r, "Code").unwrap_or_default())
}

fn state(aws: &Aws) -> Value {
    super::admin::state(aws)
}

fn eni_ips(aws: &Aws, eni: &str) -> Vec<String> {
    let s = state(aws);
    let e = s["enis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == eni)
        .unwrap()
        .clone();
    let mut v = vec![e["primary_ip"].as_str().unwrap().to_owned()];
    v.extend(
        e["secondary_ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_owned()),
    );
    v
}

fn eip(aws: &Aws, alloc: &str) -> Value {
    state(aws)["elastic_ips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["allocation_id"] == alloc)
        .unwrap()["association"]
        .clone()
}

#[test]
fn example_world_loads_and_bad_worlds_fail() {
    let w = world();
    assert_eq!(w.instances.len(), 2);
    let bad = |edit: &dyn Fn(&mut AwsWorld), want: &str| {
        let mut w = world();
        edit(&mut w);
        let e = w.validate().unwrap_err();
        assert!(e.contains(want), "{e}");
    };
    bad(
        &|w| w.instances[0].enis[0].private_ip = "10.0.2.5".parse().unwrap(),
        "outside",
    );
    bad(
        &|w| w.instances[0].enis[0].private_ip = "10.0.1.2".parse().unwrap(),
        "reserved",
    );
    bad(
        &|w| w.instances[1].enis[0].mac = w.instances[0].enis[0].mac.clone(),
        "mac",
    );
    bad(
        &|w| w.instances[0].instance_type = "z9.mega".into(),
        "unknown instance type",
    );
    bad(
        &|w| {
            w.instances[0].enis[0]
                .secondary_ips
                .push("10.0.1.101".parse().unwrap())
        },
        "exceed",
    );
    bad(
        &|w| w.instances[1].enis[0].secondary_ips = vec![VIP.parse().unwrap()],
        "twice",
    );
    bad(
        &|w| w.instances[0].iam_role = Some("nope".into()),
        "no role",
    );
    bad(&|w| w.skew_error = "Nope".into(), "skew_error");
    assert!(crate::World::from_toml("[aws]\nregion = \"eu-west-1\"\ntypo = 1\n").is_err());
}

#[test]
fn success_and_error_documents_are_shaped_as_botocore_parses_them() {
    let a = aws();
    let r = ec2(&a, "DescribeVpcs", &[]);
    assert_eq!(r.status, 200, "{}", body(&r));
    let b = body(&r);
    assert!(b.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeVpcsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"), "{b}");
    assert!(tag(&r, "requestId").is_some_and(|id| id.len() == 36));
    assert_eq!(r.get_header("Content-Type"), Some("text/xml;charset=UTF-8"));
    let r = ec2(
        &a,
        "DescribeNetworkInterfaces",
        &[("NetworkInterfaceId.1", "eni-0000000000000dead")],
    );
    assert_eq!(code(&r), (400, "InvalidNetworkInterfaceID.NotFound".into()));
    let b = body(&r);
    assert!(
        b.contains("<Response>\n  <Errors>\n    <Error>\n      <Code>"),
        "{b}"
    );
    assert!(
        tag(&r, "RequestID").is_some(),
        "EC2 errors say RequestID: {b}"
    );
    assert_eq!(
        code(&ec2(
            &a,
            "DescribeNetworkInterfaces",
            &[("NetworkInterfaceId.1", "nic-1")]
        )),
        (400, "InvalidNetworkInterfaceID.Malformed".into())
    );
    assert_eq!(
        code(&ec2(&a, "RunInstances", &[])),
        (400, "InvalidAction".into())
    );
    assert_eq!(
        code(&ec2(&a, "DescribeVpcs", &[("Bogus", "1")])),
        (400, "UnknownParameter".into())
    );
    assert_eq!(
        code(&ec2(
            &a,
            "DescribeVpcs",
            &[
                ("Filter.1.Name", "no-such-filter"),
                ("Filter.1.Value.1", "x")
            ]
        )),
        (400, "InvalidParameterValue".into())
    );
    // STS errors are the query protocol's ErrorResponse.
    let r = sts_as(
        &a,
        &creds(ADMIN),
        "AssumeRole",
        &[
            ("RoleArn", "arn:aws:iam::111122223333:role/none"),
            ("RoleSessionName", "x1"),
        ],
    );
    assert_eq!(code(&r), (403, "AccessDenied".into()));
    let b = body(&r);
    assert!(
        b.contains("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"),
        "{b}"
    );
    assert!(
        b.contains("<Type>Sender</Type>") && tag(&r, "RequestId").is_some(),
        "{b}"
    );
}

#[test]
fn reassignment_moves_the_ip_and_its_elastic_ip() {
    let a = aws();
    assert_eq!(eip(&a, EIP_VIP)["eni"], ENI_A);
    // Without AllowReassignment the address held by node-a is refused.
    let r = ec2(
        &a,
        "AssignPrivateIpAddresses",
        &[("NetworkInterfaceId", ENI_B), ("PrivateIpAddress.1", VIP)],
    );
    assert_eq!(code(&r), (400, "InvalidIPAddress.InUse".into()));
    let r = ec2(
        &a,
        "AssignPrivateIpAddresses",
        &[
            ("NetworkInterfaceId", ENI_B),
            ("PrivateIpAddress.1", VIP),
            ("AllowReassignment", "true"),
        ],
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(tag(&r, "privateIpAddress").as_deref(), Some(VIP));
    assert_eq!(eni_ips(&a, ENI_A), vec!["10.0.1.11"]);
    assert_eq!(eni_ips(&a, ENI_B), vec!["10.0.1.12", VIP]);
    let assoc = eip(&a, EIP_VIP);
    assert_eq!(
        (assoc["eni"].as_str(), assoc["private_ip"].as_str()),
        (Some(ENI_B), Some(VIP))
    );
    // A primary address never moves, even with AllowReassignment.
    let r = ec2(
        &a,
        "AssignPrivateIpAddresses",
        &[
            ("NetworkInterfaceId", ENI_A),
            ("PrivateIpAddress.1", "10.0.1.12"),
            ("AllowReassignment", "true"),
        ],
    );
    assert_eq!(code(&r), (400, "InvalidIPAddress.InUse".into()));
    // Outside the subnet, reserved, or over t3.micro's two addresses per ENI.
    for (ip, want) in [
        ("10.0.2.9", "InvalidParameterValue"),
        ("10.0.1.3", "InvalidParameterValue"),
        ("10.0.1.50", "PrivateIpAddressLimitExceeded"),
    ] {
        let r = ec2(
            &a,
            "AssignPrivateIpAddresses",
            &[("NetworkInterfaceId", ENI_B), ("PrivateIpAddress.1", ip)],
        );
        assert_eq!(code(&r), (400, want.into()), "{ip}");
    }
    assert_eq!(
        eni_ips(&a, ENI_B),
        vec!["10.0.1.12", VIP],
        "nothing changed"
    );
    // Unassigning the VIP disassociates its Elastic IP.
    let r = ec2(
        &a,
        "UnassignPrivateIpAddresses",
        &[("NetworkInterfaceId", ENI_B), ("PrivateIpAddress.1", VIP)],
    );
    assert_eq!((r.status, tag(&r, "return")), (200, Some("true".into())));
    assert!(eip(&a, EIP_VIP).is_null());
    let r = ec2(
        &a,
        "UnassignPrivateIpAddresses",
        &[("NetworkInterfaceId", ENI_B), ("PrivateIpAddress.1", VIP)],
    );
    assert_eq!(code(&r), (400, "InvalidParameterValue".into()));
    // A count picks free addresses; prefixes and DryRun are not parameters of this action.
    let r = ec2(
        &a,
        "AssignPrivateIpAddresses",
        &[
            ("NetworkInterfaceId", ENI_B),
            ("SecondaryPrivateIpAddressCount", "1"),
        ],
    );
    assert_eq!(
        (r.status, tag(&r, "privateIpAddress")),
        (200, Some("10.0.1.4".into()))
    );
    let r = ec2(
        &a,
        "AssignPrivateIpAddresses",
        &[
            ("NetworkInterfaceId", ENI_A),
            ("PrivateIpAddress.1", "10.0.1.60"),
            ("DryRun", "true"),
        ],
    );
    assert_eq!(code(&r), (400, "UnknownParameter".into()));
}

#[test]
fn elastic_ips_associate_and_disassociate() {
    let a = aws();
    // By allocation id onto node-b's primary: the spare EIP.
    let r = ec2(
        &a,
        "AssociateAddress",
        &[("AllocationId", EIP_SPARE), ("NetworkInterfaceId", ENI_B)],
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    let first = tag(&r, "associationId").unwrap();
    assert!(first.starts_with("eipassoc-"));
    // Reassociation: automatic by default, refused with AllowReassociation=false.
    let r = ec2(
        &a,
        "AssociateAddress",
        &[
            ("AllocationId", EIP_SPARE),
            ("InstanceId", NODE_A),
            ("AllowReassociation", "false"),
        ],
    );
    assert_eq!(code(&r), (400, "Resource.AlreadyAssociated".into()));
    let r = ec2(
        &a,
        "AssociateAddress",
        &[("PublicIp", "203.0.113.11"), ("InstanceId", NODE_A)],
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    let second = tag(&r, "associationId").unwrap();
    assert_eq!(eip(&a, EIP_SPARE)["private_ip"], "10.0.1.11");
    // A private IP carries one EIP: moving the VIP's EIP onto node-a's primary displaces it.
    let r = ec2(
        &a,
        "AssociateAddress",
        &[("AllocationId", EIP_VIP), ("NetworkInterfaceId", ENI_A)],
    );
    assert_eq!(r.status, 200);
    assert!(eip(&a, EIP_SPARE).is_null());
    // Disassociate is idempotent for associations that existed; unknown ids are errors.
    for id in [&second, &second, &first] {
        let r = ec2(&a, "DisassociateAddress", &[("AssociationId", id)]);
        assert_eq!(r.status, 200, "{id}: {}", body(&r));
    }
    let r = ec2(
        &a,
        "DisassociateAddress",
        &[("AssociationId", "eipassoc-00000000000000000")],
    );
    assert_eq!(code(&r), (400, "InvalidAssociationID.NotFound".into()));
    // The deny default (older accounts) refuses reassociation unless asked.
    a.lock().settings.write.reassociation_default_allowed = false;
    let r = ec2(
        &a,
        "AssociateAddress",
        &[("AllocationId", EIP_VIP), ("NetworkInterfaceId", ENI_B)],
    );
    assert_eq!(code(&r), (400, "Resource.AlreadyAssociated".into()));
    let r = ec2(
        &a,
        "AssociateAddress",
        &[
            ("AllocationId", EIP_VIP),
            ("NetworkInterfaceId", ENI_B),
            ("AllowReassociation", "true"),
        ],
    );
    assert_eq!(r.status, 200);
    // DescribeAddresses by allocation id shows the association.
    let r = ec2(&a, "DescribeAddresses", &[("AllocationId.1", EIP_VIP)]);
    assert_eq!(tag(&r, "networkInterfaceId").as_deref(), Some(ENI_B));
    assert_eq!(tag(&r, "instanceId").as_deref(), Some(NODE_B));
    let r = ec2(
        &a,
        "DescribeAddresses",
        &[("AllocationId.1", "eipalloc-00000000000000000")],
    );
    assert_eq!(code(&r), (400, "InvalidAllocationID.NotFound".into()));
}

#[test]
fn routes_replace_create_and_ownership() {
    let a = aws();
    let r = ec2(
        &a,
        "ReplaceRoute",
        &[
            ("RouteTableId", RTB),
            ("DestinationCidrBlock", "192.168.100.10/32"),
            ("NetworkInterfaceId", ENI_B),
        ],
    );
    assert_eq!(
        (r.status, tag(&r, "return")),
        (200, Some("true".into())),
        "{}",
        body(&r)
    );
    let r = ec2(&a, "DescribeRouteTables", &[("RouteTableId.1", RTB)]);
    let b = body(&r);
    assert!(b.contains(&format!("<destinationCidrBlock>192.168.100.10/32</destinationCidrBlock>\n          <instanceId>{NODE_B}</instanceId>")), "{b}");
    // Replace needs an existing route; create refuses one.
    let r = ec2(
        &a,
        "ReplaceRoute",
        &[
            ("RouteTableId", RTB),
            ("DestinationCidrBlock", "192.168.100.11/32"),
            ("InstanceId", NODE_A),
        ],
    );
    assert_eq!(code(&r), (400, "InvalidParameterValue".into()));
    assert!(body(&r).contains("Use CreateRoute instead"));
    let r = ec2(
        &a,
        "CreateRoute",
        &[
            ("RouteTableId", RTB),
            ("DestinationCidrBlock", "192.168.100.10/32"),
            ("InstanceId", NODE_A),
        ],
    );
    assert_eq!(code(&r), (400, "RouteAlreadyExists".into()));
    let r = ec2(
        &a,
        "CreateRoute",
        &[
            ("RouteTableId", RTB),
            ("DestinationCidrBlock", "192.168.100.11/32"),
            ("InstanceId", NODE_A),
        ],
    );
    assert_eq!(r.status, 200);
    let r = ec2(
        &a,
        "CreateRoute",
        &[
            ("RouteTableId", RTB),
            ("DestinationCidrBlock", "192.168.100.1/24"),
            ("InstanceId", NODE_A),
        ],
    );
    assert_eq!(
        code(&r),
        (400, "InvalidParameterValue".into()),
        "host bits set"
    );
    // Filters over routes.
    let r = ec2(
        &a,
        "DescribeRouteTables",
        &[
            ("Filter.1.Name", "route.instance-id"),
            ("Filter.1.Value.1", NODE_A),
        ],
    );
    assert_eq!(tag(&r, "routeTableId").as_deref(), Some(RTB));
    // The other account's table is invisible to this account...
    let r = ec2(&a, "DescribeRouteTables", &[("RouteTableId.1", RTB_OTHER)]);
    assert_eq!(code(&r), (400, "InvalidRouteTableID.NotFound".into()));
    let r = ec2(
        &a,
        "ReplaceRoute",
        &[
            ("RouteTableId", RTB_OTHER),
            ("DestinationCidrBlock", "192.168.100.10/32"),
            ("NetworkInterfaceId", ENI_B),
        ],
    );
    assert_eq!(code(&r), (400, "InvalidRouteTableID.NotFound".into()));
    // ...and reachable through its role.
    let r = sts_as(
        &a,
        &creds(ADMIN),
        "AssumeRole",
        &[
            ("RoleArn", "arn:aws:iam::444455556666:role/rtb-editor"),
            ("RoleSessionName", "AWSCLI-RouteTableUpdate"),
        ],
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    let (k, s, t) = (
        tag(&r, "AccessKeyId").unwrap(),
        tag(&r, "SecretAccessKey").unwrap(),
        tag(&r, "SessionToken").unwrap(),
    );
    let role = Creds {
        key: &k,
        secret: &s,
        token: Some(&t),
    };
    let r = ec2_as(
        &a,
        &role,
        "ReplaceRoute",
        &[
            ("RouteTableId", RTB_OTHER),
            ("DestinationCidrBlock", "192.168.100.10/32"),
            ("NetworkInterfaceId", ENI_B),
        ],
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    // The role may only touch routes.
    let r = ec2_as(&a, &role, "DescribeInstances", &[]);
    assert_eq!(code(&r), (403, "UnauthorizedOperation".into()));
}

#[test]
fn policies_and_dry_run() {
    let a = aws();
    let aud = creds(AUDITOR);
    let r = ec2_as(&a, &aud, "DescribeInstances", &[("DryRun", "true")]);
    assert_eq!(code(&r), (412, "DryRunOperation".into()));
    let r = ec2_as(
        &a,
        &aud,
        "ReplaceRoute",
        &[
            ("RouteTableId", RTB),
            ("DestinationCidrBlock", "192.168.100.10/32"),
            ("NetworkInterfaceId", ENI_B),
            ("DryRun", "true"),
        ],
    );
    assert_eq!(code(&r), (403, "UnauthorizedOperation".into()));
    assert!(body(&r).contains("is not authorized to perform: ec2:ReplaceRoute"));
    let r = ec2(
        &a,
        "ReplaceRoute",
        &[
            ("RouteTableId", RTB),
            ("DestinationCidrBlock", "192.168.100.10/32"),
            ("NetworkInterfaceId", ENI_B),
            ("DryRun", "true"),
        ],
    );
    assert_eq!(code(&r), (412, "DryRunOperation".into()));
    let st = state(&a);
    let rt = st["route_tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == RTB)
        .unwrap()
        .clone();
    assert!(
        rt["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["target"]["eni"] == ENI_A),
        "DryRun changed nothing"
    );
    let r = ec2_as(
        &a,
        &aud,
        "AssignPrivateIpAddresses",
        &[("NetworkInterfaceId", ENI_B), ("PrivateIpAddress.1", VIP)],
    );
    assert_eq!(code(&r), (403, "UnauthorizedOperation".into()));
    // Source/dest check, both request forms, and its attribute.
    let r = ec2(
        &a,
        "ModifyInstanceAttribute",
        &[("InstanceId", NODE_B), ("SourceDestCheck.Value", "true")],
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    let r = ec2_as(
        &a,
        &aud,
        "DescribeInstanceAttribute",
        &[("InstanceId", NODE_B), ("Attribute", "sourceDestCheck")],
    );
    assert!(
        body(&r).contains("<sourceDestCheck>\n    <value>true</value>"),
        "{}",
        body(&r)
    );
    let r = ec2(
        &a,
        "ModifyInstanceAttribute",
        &[
            ("InstanceId", NODE_B),
            ("Attribute", "sourceDestCheck"),
            ("Value", "false"),
        ],
    );
    assert_eq!(r.status, 200);
    let r = ec2(
        &a,
        "DescribeNetworkInterfaceAttribute",
        &[
            ("NetworkInterfaceId", ENI_B),
            ("Attribute", "sourceDestCheck"),
        ],
    );
    assert!(body(&r).contains("<value>false</value>"), "{}", body(&r));
}

#[test]
fn filters_find_secondary_addresses_and_attachments() {
    let a = aws();
    let r = ec2(
        &a,
        "DescribeNetworkInterfaces",
        &[
            ("Filter.1.Name", "addresses.private-ip-address"),
            ("Filter.1.Value.1", VIP),
        ],
    );
    assert_eq!(
        tag(&r, "networkInterfaceId").as_deref(),
        Some(ENI_A),
        "{}",
        body(&r)
    );
    let b = body(&r);
    assert!(
        b.contains("<allocationId>eipalloc-0c10d00000000000f1</allocationId>"),
        "{b}"
    );
    let r = ec2(
        &a,
        "DescribeNetworkInterfaces",
        &[
            ("Filter.1.Name", "attachment.instance-id"),
            ("Filter.1.Value.1", NODE_B),
            ("Filter.2.Name", "mac-address"),
            ("Filter.2.Value.1", "02:66:00:00:00:0?"),
        ],
    );
    assert_eq!(tag(&r, "networkInterfaceId").as_deref(), Some(ENI_B));
    let r = ec2(
        &a,
        "DescribeNetworkInterfaces",
        &[
            ("Filter.1.Name", "attachment.instance-id"),
            ("Filter.1.Value.1", NODE_B),
            ("Filter.2.Name", "network-interface-id"),
            ("Filter.2.Value.1", ENI_A),
        ],
    );
    assert!(tag(&r, "networkInterfaceId").is_none(), "filters are ANDed");
    let r = ec2(
        &a,
        "DescribeInstances",
        &[
            (
                "Filter.1.Name",
                "network-interface.addresses.private-ip-address",
            ),
            ("Filter.1.Value.1", VIP),
        ],
    );
    assert_eq!(tag(&r, "instanceId").as_deref(), Some(NODE_A));
    assert!(body(&r).contains("<publicIp>203.0.113.10</publicIp>"));
    // Paging: MaxResults below 5 is refused, and cannot be combined with ids.
    assert_eq!(
        code(&ec2(&a, "DescribeInstances", &[("MaxResults", "1")])),
        (400, "InvalidParameterValue".into())
    );
    assert_eq!(
        code(&ec2(
            &a,
            "DescribeInstances",
            &[("MaxResults", "5"), ("InstanceId.1", NODE_A)]
        )),
        (400, "InvalidParameterCombination".into())
    );
    let r = ec2(
        &a,
        "DescribeSubnets",
        &[
            ("Filter.1.Name", "vpc-id"),
            ("Filter.1.Value.1", "vpc-0c10d0000000000a1"),
        ],
    );
    assert!(body(&r).matches("<subnetId>").count() == 2);
}

#[test]
fn reads_lag_behind_writes_by_family() {
    let mut w = world();
    w.consistency.network_interfaces_ms = 60_000;
    w.consistency.instances_ms = 0;
    let a = Aws::new(&w).unwrap();
    let r = ec2(
        &a,
        "AssignPrivateIpAddresses",
        &[
            ("NetworkInterfaceId", ENI_B),
            ("PrivateIpAddress.1", VIP),
            ("AllowReassignment", "true"),
        ],
    );
    assert_eq!(r.status, 200);
    // DescribeNetworkInterfaces still shows node-a holding it; DescribeInstances does not.
    let r = ec2(
        &a,
        "DescribeNetworkInterfaces",
        &[
            ("Filter.1.Name", "addresses.private-ip-address"),
            ("Filter.1.Value.1", VIP),
        ],
    );
    assert_eq!(tag(&r, "networkInterfaceId").as_deref(), Some(ENI_A));
    let r = ec2(
        &a,
        "DescribeInstances",
        &[
            (
                "Filter.1.Name",
                "network-interface.addresses.private-ip-address",
            ),
            ("Filter.1.Value.1", VIP),
        ],
    );
    assert_eq!(tag(&r, "instanceId").as_deref(), Some(NODE_B));
    // The state the emulator reports is the truth; a later moment sees it too.
    assert_eq!(eni_ips(&a, ENI_B), vec!["10.0.1.12", VIP]);
    let st = a.lock();
    let later = Instant::now() + Duration::from_secs(61);
    assert!(st.view(later, 60_000).enis[ENI_B]
        .private_ips
        .contains(&VIP.parse::<Ipv4Addr>().unwrap()));
    assert!(!st.view(Instant::now(), 60_000).enis[ENI_B]
        .private_ips
        .contains(&VIP.parse::<Ipv4Addr>().unwrap()));
    drop(st);
    // Writes act on the truth: unassigning from node-b works at once.
    let r = ec2(
        &a,
        "UnassignPrivateIpAddresses",
        &[("NetworkInterfaceId", ENI_B), ("PrivateIpAddress.1", VIP)],
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    a.lock().net.settle();
    let r = ec2(
        &a,
        "DescribeNetworkInterfaces",
        &[
            ("Filter.1.Name", "addresses.private-ip-address"),
            ("Filter.1.Value.1", VIP),
        ],
    );
    assert!(tag(&r, "networkInterfaceId").is_none());
}

#[test]
fn signature_checks_answer_like_ec2_and_sts() {
    let a = aws();
    let body_ = ec2_body("DescribeVpcs", &[]);
    let at = |secs: i64| time::from_unix(time::unix(SystemTime::now()) + secs);
    let send = |host: &str, c: &Creds<'_>, region: &str, service: &str, t: SystemTime| {
        handle_api(&a, &signed(host, &body_, c, region, service, t))
    };
    let e = "ec2.eu-west-1.amazonaws.com";
    assert_eq!(
        code(&send(e, &creds(ADMIN), "eu-west-1", "ec2", at(0))).0,
        200
    );
    let bad_secret = Creds {
        key: ADMIN.0,
        secret: "wrong-secret-wrong-secret",
        token: None,
    };
    assert_eq!(
        code(&send(e, &bad_secret, "eu-west-1", "ec2", at(0))),
        (403, "SignatureDoesNotMatch".into())
    );
    let unknown = Creds {
        key: "AKIAUNKNOWNKEY000000",
        secret: "x",
        token: None,
    };
    assert_eq!(
        code(&send(e, &unknown, "eu-west-1", "ec2", at(0))),
        (401, "AuthFailure".into())
    );
    for skew in [-400, 400] {
        assert_eq!(
            code(&send(e, &creds(ADMIN), "eu-west-1", "ec2", at(skew))),
            (400, "RequestExpired".into()),
            "{skew}"
        );
    }
    assert_eq!(
        code(&send(e, &creds(ADMIN), "eu-west-1", "ec2", at(-200))).0,
        200,
        "inside the window"
    );
    a.lock().settings.auth.skew_error = "AuthFailure".into();
    assert_eq!(
        code(&send(e, &creds(ADMIN), "eu-west-1", "ec2", at(-400))),
        (401, "AuthFailure".into())
    );
    let r = send(e, &creds(ADMIN), "us-east-1", "ec2", at(0));
    assert_eq!(code(&r), (403, "SignatureDoesNotMatch".into()));
    assert!(body(&r).contains("Credential should be scoped to a valid region, not 'us-east-1'"));
    let r = send(e, &creds(ADMIN), "eu-west-1", "sts", at(0));
    assert!(
        body(&r).contains("Credential should be scoped to correct service: 'ec2'"),
        "{}",
        body(&r)
    );
    // Unsigned.
    let mut req = signed(e, &body_, &creds(ADMIN), "eu-west-1", "ec2", at(0));
    req.headers.retain(|(k, _)| k != "Authorization");
    assert_eq!(
        code(&handle_api(&a, &req)),
        (400, "MissingParameter".into())
    );
    // The same faults on STS.
    let s = "sts.eu-west-1.amazonaws.com";
    let sts_body = "Action=GetCallerIdentity&Version=2011-06-15";
    let sts_send = |c: &Creds<'_>, t: SystemTime| {
        handle_api(&a, &signed(s, sts_body, c, "eu-west-1", "sts", t))
    };
    assert_eq!(
        code(&sts_send(&unknown, at(0))),
        (403, "InvalidClientTokenId".into())
    );
    assert_eq!(
        code(&sts_send(&bad_secret, at(0))),
        (403, "SignatureDoesNotMatch".into())
    );
    let r = sts_send(&creds(ADMIN), at(-600));
    assert_eq!(code(&r), (403, "SignatureDoesNotMatch".into()));
    assert!(body(&r).contains("Signature expired"), "{}", body(&r));
    let r = sts_send(&creds(ADMIN), at(0));
    assert_eq!(
        tag(&r, "Arn").as_deref(),
        Some("arn:aws:iam::111122223333:user/ha-admin")
    );
    // The global STS endpoint signs as us-east-1.
    let r = handle_api(
        &a,
        &signed(
            "sts.amazonaws.com",
            sts_body,
            &creds(ADMIN),
            "us-east-1",
            "sts",
            at(0),
        ),
    );
    assert_eq!(r.status, 200, "{}", body(&r));
}

#[test]
fn temporary_credentials_need_their_token_and_expire() {
    let a = aws();
    let r = sts_as(
        &a,
        &creds(ADMIN),
        "AssumeRole",
        &[
            ("RoleArn", "arn:aws:iam::444455556666:role/rtb-editor"),
            ("RoleSessionName", "s1"),
            ("DurationSeconds", "900"),
        ],
    );
    let (k, s, t) = (
        tag(&r, "AccessKeyId").unwrap(),
        tag(&r, "SecretAccessKey").unwrap(),
        tag(&r, "SessionToken").unwrap(),
    );
    assert!(k.starts_with("ASIA") && tag(&r, "PackedPolicySize").is_none());
    let ok = Creds {
        key: &k,
        secret: &s,
        token: Some(&t),
    };
    assert_eq!(ec2_as(&a, &ok, "DescribeRouteTables", &[]).status, 200);
    let no_token = Creds {
        key: &k,
        secret: &s,
        token: None,
    };
    assert_eq!(
        code(&ec2_as(&a, &no_token, "DescribeRouteTables", &[])),
        (401, "AuthFailure".into())
    );
    let wrong = Creds {
        key: &k,
        secret: &s,
        token: Some("IQoJb3JpZ2luX2VjEXAMPLE"),
    };
    assert_eq!(
        code(&ec2_as(&a, &wrong, "DescribeRouteTables", &[])),
        (401, "AuthFailure".into())
    );
    a.lock().iam.expire_sessions(time::unix(SystemTime::now()));
    assert_eq!(
        code(&ec2_as(&a, &ok, "DescribeRouteTables", &[])),
        (400, "RequestExpired".into())
    );
    assert_eq!(
        code(&sts_as(&a, &ok, "GetCallerIdentity", &[])),
        (403, "ExpiredToken".into())
    );
}

#[test]
fn assume_role_rules() {
    let a = aws();
    let arn = "arn:aws:iam::444455556666:role/rtb-editor";
    // The auditor is not trusted (and may not call sts:AssumeRole anyway).
    let r = sts_as(
        &a,
        &creds(AUDITOR),
        "AssumeRole",
        &[("RoleArn", arn), ("RoleSessionName", "s1")],
    );
    assert_eq!(code(&r), (403, "AccessDenied".into()));
    for (d, want) in [
        ("899", "ValidationError"),
        ("3601", "ValidationError"),
        ("43201", "ValidationError"),
    ] {
        let r = sts_as(
            &a,
            &creds(ADMIN),
            "AssumeRole",
            &[
                ("RoleArn", arn),
                ("RoleSessionName", "s1"),
                ("DurationSeconds", d),
            ],
        );
        assert_eq!(code(&r), (400, want.into()), "{d}");
    }
    let r = sts_as(
        &a,
        &creds(ADMIN),
        "AssumeRole",
        &[("RoleArn", arn), ("RoleSessionName", "bad name!")],
    );
    assert_eq!(code(&r), (400, "ValidationError".into()));
    // From instance-profile credentials (a role session): role chaining.
    let (k, s, t) = instance_creds(&a, NODE_A);
    let node = Creds {
        key: &k,
        secret: &s,
        token: Some(&t),
    };
    let r = sts_as(&a, &node, "GetCallerIdentity", &[]);
    assert_eq!(
        tag(&r, "Arn").unwrap(),
        format!("arn:aws:sts::111122223333:assumed-role/ha-node/{NODE_A}")
    );
    let r = sts_as(
        &a,
        &node,
        "AssumeRole",
        &[
            ("RoleArn", arn),
            ("RoleSessionName", "chain"),
            ("DurationSeconds", "3600"),
        ],
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(
        tag(&r, "Arn").unwrap(),
        "arn:aws:sts::444455556666:assumed-role/rtb-editor/chain"
    );
    // External id.
    a.lock()
        .iam
        .roles
        .get_mut("rtb-editor")
        .unwrap()
        .external_id = Some("ha-1".into());
    let r = sts_as(
        &a,
        &creds(ADMIN),
        "AssumeRole",
        &[("RoleArn", arn), ("RoleSessionName", "s1")],
    );
    assert_eq!(code(&r), (403, "AccessDenied".into()));
    let r = sts_as(
        &a,
        &creds(ADMIN),
        "AssumeRole",
        &[
            ("RoleArn", arn),
            ("RoleSessionName", "s1"),
            ("ExternalId", "ha-1"),
        ],
    );
    assert_eq!(r.status, 200);
    // EC2 calls signed with the instance profile are attributed to the instance.
    assert_eq!(a.lock().iam.instance_of_key(&k).as_deref(), Some(NODE_A));
}

fn imds_req(method: &str, path: &str, headers: &[(&str, &str)]) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        raw_query: String::new(),
        query: Vec::new(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: Vec::new(),
        peer: addr("10.66.0.1:50000"),
        local: addr("169.254.169.254:80"),
        tls: false,
        close: false,
    }
}

fn imds_call(a: &Aws, instance: &str, req: &Request) -> Option<Response> {
    match imds::handle(&mut a.lock(), Some(instance), req) {
        imds::Reply::Answer(r) => Some(r),
        imds::Reply::Silent => None,
    }
}

fn token(a: &Aws, instance: &str) -> String {
    let r = imds_call(
        a,
        instance,
        &imds_req(
            "PUT",
            "/latest/api/token",
            &[("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
        ),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.get_header("X-aws-ec2-metadata-token-ttl-seconds"),
        Some("21600")
    );
    body(&r)
}

fn imds_get(a: &Aws, instance: &str, tok: &str, path: &str) -> Response {
    imds_call(
        a,
        instance,
        &imds_req("GET", path, &[("x-aws-ec2-metadata-token", tok)]),
    )
    .unwrap()
}

fn instance_creds(a: &Aws, instance: &str) -> (String, String, String) {
    let t = token(a, instance);
    let r = imds_get(
        a,
        instance,
        &t,
        "/latest/meta-data/iam/security-credentials/ha-node",
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    (
        v["AccessKeyId"].as_str().unwrap().to_owned(),
        v["SecretAccessKey"].as_str().unwrap().to_owned(),
        v["Token"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn imds_v2_tokens() {
    let a = aws();
    let put = |h: &[(&str, &str)]| {
        imds_call(&a, NODE_A, &imds_req("PUT", "/latest/api/token", h)).map(|r| r.status)
    };
    assert_eq!(put(&[]), Some(400));
    for ttl in ["0", "21601", "abc", "-1"] {
        assert_eq!(
            put(&[("X-aws-ec2-metadata-token-ttl-seconds", ttl)]),
            Some(400),
            "{ttl}"
        );
    }
    assert_eq!(
        put(&[
            ("X-aws-ec2-metadata-token-ttl-seconds", "60"),
            ("X-Forwarded-For", "10.0.0.9")
        ]),
        Some(403)
    );
    let t = token(&a, NODE_A);
    assert_eq!(
        imds_call(
            &a,
            NODE_A,
            &imds_req("GET", "/latest/meta-data/instance-id", &[])
        )
        .unwrap()
        .status,
        401
    );
    assert_eq!(
        body(&imds_get(&a, NODE_A, &t, "/latest/meta-data/instance-id")),
        NODE_A
    );
    assert_eq!(
        imds_get(&a, NODE_B, &t, "/latest/meta-data/instance-id").status,
        401,
        "another instance's token"
    );
    assert_eq!(
        imds_get(&a, NODE_A, "AQAEAbogus", "/latest/meta-data/instance-id").status,
        401
    );
    assert_eq!(
        imds_get(&a, NODE_A, &t, "/latest/meta-data/nope").status,
        404
    );
    a.lock().imds_tokens.expire_all(Instant::now());
    assert_eq!(
        imds_get(&a, NODE_A, &t, "/latest/meta-data/instance-id").status,
        401,
        "expired"
    );
    // Optional tokens: a GET without one works, a bad one still does not.
    a.lock().metadata.get_mut(NODE_A).unwrap().tokens_required = false;
    assert_eq!(
        imds_call(
            &a,
            NODE_A,
            &imds_req("GET", "/latest/meta-data/instance-id", &[])
        )
        .unwrap()
        .status,
        200
    );
    assert_eq!(
        imds_get(&a, NODE_A, "AQAEAbogus", "/latest/meta-data/instance-id").status,
        401
    );
    // Hop limit: the caller is two hops away, the limit is one: no answer at all.
    a.lock().metadata.get_mut(NODE_A).unwrap().hops = 2;
    assert!(put(&[("X-aws-ec2-metadata-token-ttl-seconds", "60")]).is_none());
    a.lock().metadata.get_mut(NODE_A).unwrap().hop_limit = 2;
    assert_eq!(
        put(&[("X-aws-ec2-metadata-token-ttl-seconds", "60")]),
        Some(200)
    );
}

#[test]
fn imds_paths() {
    let a = aws();
    let t = token(&a, NODE_A);
    let get = |p: &str| body(&imds_get(&a, NODE_A, &t, &format!("/latest/{p}")));
    assert_eq!(get("meta-data/placement/region"), "eu-west-1");
    assert_eq!(get("meta-data/placement/availability-zone"), "eu-west-1a");
    assert_eq!(get("meta-data/mac"), "02:66:00:00:00:01");
    assert_eq!(
        get("meta-data/network/interfaces/macs/"),
        "02:66:00:00:00:01/"
    );
    let m = "meta-data/network/interfaces/macs/02:66:00:00:00:01";
    assert_eq!(
        get(&format!("{m}/local-ipv4s")),
        format!("10.0.1.11\n{VIP}")
    );
    assert_eq!(get(&format!("{m}/interface-id")), ENI_A);
    assert_eq!(get(&format!("{m}/subnet-id")), "subnet-0c10d0000000000b1");
    assert_eq!(get(&format!("{m}/vpc-id")), "vpc-0c10d0000000000a1");
    assert_eq!(get(&format!("{m}/vpc-ipv4-cidr-block")), "10.0.0.0/16");
    assert_eq!(get(&format!("{m}/vpc-ipv4-cidr-blocks")), "10.0.0.0/16");
    assert_eq!(get(&format!("{m}/subnet-ipv4-cidr-block")), "10.0.1.0/24");
    assert_eq!(get(&format!("{m}/device-number")), "0");
    assert_eq!(get(&format!("{m}/public-ipv4s")), "203.0.113.10");
    assert_eq!(get(&format!("{m}/ipv4-associations/203.0.113.10")), VIP);
    assert!(get(&format!("{m}/")).contains("ipv4-associations/\n"));
    assert!(get("meta-data/").contains("network/\n"));
    assert_eq!(get("meta-data/iam/security-credentials/"), "ha-node");
    let doc: Value = serde_json::from_str(&get("dynamic/instance-identity/document")).unwrap();
    assert_eq!(
        (
            doc["instanceId"].as_str(),
            doc["region"].as_str(),
            doc["accountId"].as_str()
        ),
        (Some(NODE_A), Some("eu-west-1"), Some("111122223333"))
    );
    let info: Value = serde_json::from_str(&get("meta-data/iam/info")).unwrap();
    assert_eq!(
        info["InstanceProfileArn"],
        "arn:aws:iam::111122223333:instance-profile/ha-node"
    );
}

#[test]
fn instance_profile_credentials_rotate() {
    let a = aws();
    let (k1, s1, t1) = instance_creds(&a, NODE_A);
    assert_eq!(
        instance_creds(&a, NODE_A).0,
        k1,
        "same credentials while fresh"
    );
    // Shorten the life so the current ones are inside the refresh window.
    {
        let mut st = a.lock();
        st.settings.role_credentials_refresh_secs = 30_000;
    }
    let (k2, _, _) = instance_creds(&a, NODE_A);
    assert_ne!(k2, k1, "rotated");
    // The old ones stay valid until they expire.
    let old = Creds {
        key: &k1,
        secret: &s1,
        token: Some(&t1),
    };
    assert_eq!(ec2_as(&a, &old, "DescribeInstances", &[]).status, 200);
    let st = state(&a);
    assert_eq!(st["instance_credentials"]["node-a"]["access_key_id"], k2);
}

#[test]
fn imds_sees_moves_after_the_metadata_lag() {
    let mut w = world();
    w.consistency.metadata_ms = 60_000;
    let a = Aws::new(&w).unwrap();
    let t = token(&a, NODE_B);
    let m = "/latest/meta-data/network/interfaces/macs/02:66:00:00:00:02/local-ipv4s";
    assert_eq!(body(&imds_get(&a, NODE_B, &t, m)), "10.0.1.12");
    let r = ec2(
        &a,
        "AssignPrivateIpAddresses",
        &[
            ("NetworkInterfaceId", ENI_B),
            ("PrivateIpAddress.1", VIP),
            ("AllowReassignment", "true"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(body(&imds_get(&a, NODE_B, &t, m)), "10.0.1.12", "not yet");
    a.lock().net.settle();
    assert_eq!(
        body(&imds_get(&a, NODE_B, &t, m)),
        format!("10.0.1.12\n{VIP}")
    );
}

#[test]
fn throttling_answers_request_limit_exceeded() {
    let mut w = world();
    w.throttle = Some(super::world::Throttle {
        describe_capacity: 2,
        describe_refill_per_sec: 0.0,
        mutate_capacity: 1,
        mutate_refill_per_sec: 0.0,
    });
    let a = Aws::new(&w).unwrap();
    assert_eq!(ec2(&a, "DescribeVpcs", &[]).status, 200);
    assert_eq!(ec2(&a, "DescribeVpcs", &[]).status, 200);
    assert_eq!(
        code(&ec2(&a, "DescribeVpcs", &[])),
        (503, "RequestLimitExceeded".into())
    );
    assert_eq!(
        ec2(&a, "DescribeSubnets", &[]).status,
        200,
        "per-action buckets"
    );
    let st = state(&a);
    assert_eq!(st["calls"]["ec2:DescribeVpcs"], 3);
}
