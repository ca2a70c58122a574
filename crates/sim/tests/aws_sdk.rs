//! Conformance of the AWS emulator with Amazon's own clients, unmodified: botocore/boto3
//! and the AWS CLI v1 (crates/sim/tests/requirements-aws.txt, in the venv that
//! scripts/setup-deps.sh builds), driven by `tests/aws_sdk.py` inside a node namespace of
//! an `aws_lab` where the real hostnames resolve to the emulator (HTTPS with the test CA)
//! and 169.254.169.254 is its IMDS. Every EC2/STS call the agent and the Debian anchors
//! make, the error answers botocore must parse, throttling retried by botocore itself, and
//! instance-profile credentials through botocore's own `InstanceMetadataFetcher`. Needs
//! root and the venv; fails loudly without them.

mod aws_lab;

use std::path::Path;
use std::time::Duration;

use aws_lab::Lab;
use serde_json::{json, Value};

const NODE_A: &str = "i-0c10d000000000001";
const NODE_B: &str = "i-0c10d000000000002";
const ENI_A: &str = "eni-0c10d0000000000e1";
const ENI_B: &str = "eni-0c10d0000000000e2";
const VIP: &str = "10.0.1.100";
const RTB: &str = "rtb-0c10d0000000000c1";
const RTB_OTHER: &str = "rtb-0c10d0000000000c2";
const OVERLAY: &str = "192.168.100.10/32";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/aws_sdk.py");

fn params(lab: &Lab, mode: &str) -> Value {
    let venv = aws_lab::venv();
    json!({
        "mode": mode,
        "aws": venv.join("bin/aws"),
        "vpc": "vpc-0c10d0000000000a1",
        "node_a": NODE_A,
        "node_b": NODE_B,
        "node_a_ip": "10.0.1.11",
        "eni_a": ENI_A,
        "eni_b": ENI_B,
        "vip": VIP,
        "extra_ip": "10.0.1.77",
        "eip_vip": "eipalloc-0c10d00000000000f1",
        "eip_vip_ip": "203.0.113.10",
        "eip_spare": "eipalloc-0c10d00000000000f2",
        "eip_spare_ip": "203.0.113.11",
        "rtb": RTB,
        "rtb_other": RTB_OTHER,
        "overlay": OVERLAY,
        "role_arn": "arn:aws:iam::444455556666:role/rtb-editor",
        "admin_key": "AKIACLOUDVIPSIM0001",
        "endpoint_url": "https://10.66.0.254",
        "instance": NODE_A,
        "_dir": lab.dir.path(),
    })
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `~/.aws/config` and `~/.aws/credentials` as a user writes them; `ca_in_config` puts the
/// test CA there (else the caller passes AWS_CA_BUNDLE).
fn aws_files(lab: &Lab, ca_in_config: bool) -> Vec<(&'static str, String)> {
    let d = lab.dir.path();
    let ca = if ca_in_config {
        format!("ca_bundle = {}\n", lab.ca.display())
    } else {
        String::new()
    };
    write_private(
        &d.join("config"),
        &format!(
            "[default]\nregion = eu-west-1\n{ca}\n[profile auditor]\nregion = eu-west-1\n{ca}"
        ),
    );
    write_private(
        &d.join("credentials"),
        "[default]\naws_access_key_id = AKIACLOUDVIPSIM0001\naws_secret_access_key = cloudvip-sim-secret-key-0001\n\n[auditor]\naws_access_key_id = AKIACLOUDVIPSIM0002\naws_secret_access_key = cloudvip-sim-secret-key-0002\n",
    );
    vec![
        ("AWS_CONFIG_FILE", d.join("config").display().to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            d.join("credentials").display().to_string(),
        ),
    ]
}

fn drive(lab: &Lab, node: usize, p: &Value, env: &[(&str, String)]) -> Value {
    let file = lab
        .dir
        .path()
        .join(format!("params-{}.json", p["mode"].as_str().unwrap()));
    std::fs::write(&file, p.to_string()).unwrap();
    let python = aws_lab::venv().join("bin/python");
    let o = lab.run(
        node,
        &[python.to_str().unwrap(), SCRIPT, file.to_str().unwrap()],
        env,
        Duration::from_secs(240),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "driver failed ({}):\n{}\n{stdout}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("driver output is not JSON ({e}):\n{stdout}"))
}

fn err(v: &Value) -> (u64, &str) {
    (
        v["status"].as_u64().unwrap_or(0),
        v["code"].as_str().unwrap_or("<none>"),
    )
}

fn eni<'a>(st: &'a Value, id: &str) -> &'a Value {
    st["enis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap()
}

fn route<'a>(st: &'a Value, table: &str, dest: &str) -> &'a Value {
    let t = st["route_tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == table)
        .unwrap();
    &t["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["destination"] == dest)
        .unwrap()["target"]
}

#[test]
fn boto3_every_call_over_https_by_hostname() {
    let lab = Lab::start(1, |_| {});
    let mut env = aws_files(&lab, false);
    env.push(("AWS_CA_BUNDLE", lab.ca.display().to_string()));
    // botocore's legacy retry policy must recognise the emulator's throttling answer.
    lab.admin(
        "POST",
        "/admin/faults",
        Some(json!({"kind": "rate_limit", "cloud": "aws", "service": "ec2", "api": "DescribeVpcs", "count": 2})),
    );
    let out = drive(&lab, 1, &params(&lab, "boto"), &env);
    eprintln!("{out:#}");
    assert_eq!(out["endpoint"], "https://ec2.eu-west-1.amazonaws.com");
    assert_eq!(out["sts_endpoint"], "https://sts.eu-west-1.amazonaws.com");
    assert_eq!(out["vpcs"], json!(["10.0.0.0/16"]));
    assert_eq!(out["vpcs_retries"], 2, "RequestLimitExceeded retried");
    assert_eq!(out["subnets"], json!(["10.0.1.0/24", "10.0.2.0/24"]));
    assert_eq!(
        out["node_a"],
        json!({"private_ip": "10.0.1.11", "type": "t3.micro", "state": "running",
               "ips": ["10.0.1.11", VIP], "vip_public": ["203.0.113.10"],
               "profile": "arn:aws:iam::111122223333:instance-profile/ha-node",
               "launch_time_is_datetime": true})
    );
    assert_eq!(out["paginated_instances"], json!([NODE_A, NODE_B]));
    assert_eq!(out["instance_with_vip"], json!([NODE_A]));
    assert_eq!(out["eni_with_vip"], json!([ENI_A]));
    assert_eq!(out["eni_of_b"], json!([ENI_B]));
    assert_eq!(out["by_eni_id_filter"], json!([ENI_B]));
    assert_eq!(
        out["eni_a"]["ips"],
        json!([
            ["10.0.1.11", true, null],
            [VIP, false, "eipalloc-0c10d00000000000f1"]
        ])
    );
    assert_eq!(out["eni_a"]["attachment"], NODE_A);
    assert_eq!(out["eni_a"]["source_dest_check"], false);
    // The move, and the Elastic IP following it.
    assert_eq!(out["assigned"], json!([VIP]));
    assert_eq!(out["vip_moved_visible"], true);
    assert_eq!(
        out["eip_followed"],
        json!({"eni": ENI_B, "private_ip": VIP, "instance": NODE_B})
    );
    assert_eq!(err(&out["assign_taken"]), (400, "InvalidIPAddress.InUse"));
    assert_eq!(
        err(&out["assign_over_limit"]),
        (400, "PrivateIpAddressLimitExceeded")
    );
    assert!(out["eip_after_unassign"].is_null());
    assert_eq!(err(&out["unassign_again"]), (400, "InvalidParameterValue"));
    // Elastic IPs.
    assert_eq!(
        err(&out["reassoc_refused"]),
        (400, "Resource.AlreadyAssociated")
    );
    assert_eq!(
        out["spare_on"],
        json!({"instance": NODE_A, "private_ip": "10.0.1.11", "association": true})
    );
    assert!(out["disassociate_twice"].is_null(), "idempotent");
    assert!(
        out["disassociate_first"].is_null(),
        "an association that existed"
    );
    assert_eq!(
        err(&out["eip_unknown"]),
        (400, "InvalidAllocationID.NotFound")
    );
    // Routes.
    assert_eq!(out["route_before"]["instance"], NODE_A);
    assert_eq!(out["route_after"]["instance"], NODE_B);
    assert_eq!(out["route_after"]["eni"], ENI_B);
    assert_eq!(out["route_visible"], true);
    assert_eq!(err(&out["create_existing"]), (400, "RouteAlreadyExists"));
    assert_eq!(err(&out["replace_missing"]), (400, "InvalidParameterValue"));
    assert_eq!(out["routes_by_filter"], json!([RTB]));
    assert_eq!(
        err(&out["other_account_table"]),
        (400, "InvalidRouteTableID.NotFound")
    );
    assert_eq!(out["sdc_instance"], true);
    assert_eq!(out["sdc_eni"], false);
    // DryRun and policies.
    assert_eq!(err(&out["dry_run_allowed"]), (412, "DryRunOperation"));
    assert_eq!(err(&out["dry_run_denied"]), (403, "UnauthorizedOperation"));
    assert_eq!(
        err(&out["auditor_describe_dry_run"]),
        (412, "DryRunOperation")
    );
    assert_eq!(out["route_unchanged"]["instance"], NODE_A);
    // Error documents: botocore found the code and the RequestID.
    assert_eq!(
        err(&out["not_found"]),
        (400, "InvalidNetworkInterfaceID.NotFound")
    );
    assert_eq!(
        out["not_found"]["request_id"].as_str().map(str::len),
        Some(36)
    );
    assert_eq!(err(&out["wrong_secret"]), (403, "SignatureDoesNotMatch"));
    assert_eq!(err(&out["unknown_key"]), (401, "AuthFailure"));
    assert_eq!(err(&out["wrong_region"]), (403, "SignatureDoesNotMatch"));
    assert!(out["wrong_region"]["message"]
        .as_str()
        .unwrap()
        .contains("not 'us-east-1'"));
    assert_eq!(err(&out["skewed_clock"]), (400, "RequestExpired"));
    // STS.
    assert_eq!(out["caller"], "arn:aws:iam::111122223333:user/ha-admin");
    assert_eq!(
        out["assumed"],
        json!({"arn": "arn:aws:sts::444455556666:assumed-role/rtb-editor/AWSCLI-RouteTableUpdate",
               "key_prefix": "ASIA", "expiration_is_datetime": true})
    );
    assert_eq!(out["other_route_after"]["eni"], ENI_B);
    assert_eq!(err(&out["role_denied"]), (403, "UnauthorizedOperation"));
    assert_eq!(
        out["role_caller"],
        "arn:aws:sts::444455556666:assumed-role/rtb-editor/AWSCLI-RouteTableUpdate"
    );
    assert_eq!(err(&out["assume_denied"]), (403, "AccessDenied"));

    // The emulator's own view agrees with what the client saw.
    let st = lab.state();
    assert_eq!(eni(&st, ENI_B)["secondary_ips"], json!([]));
    assert_eq!(eni(&st, ENI_A)["secondary_ips"], json!([]));
    assert_eq!(route(&st, RTB, OVERLAY)["instance"], NODE_A);
    assert_eq!(route(&st, RTB_OTHER, OVERLAY)["eni"], ENI_B);
    assert_eq!(eni(&st, ENI_B)["source_dest_check"], false);
    // The log: EC2 and STS counted apart, the throttled attempts and the DryRuns in it.
    let log = lab.log();
    let count = |svc: &str, api: &str| {
        log.iter()
            .filter(|e| e["service"] == svc && e["api"] == api)
            .count()
    };
    assert!(count("ec2", "DescribeVpcs") >= 3);
    let throttled: Vec<_> = log
        .iter()
        .filter(|e| e["api"] == "DescribeVpcs")
        .take(3)
        .map(|e| e["status"].clone())
        .collect();
    assert_eq!(throttled, vec![json!(503), json!(503), json!(200)]);
    assert!(count("sts", "AssumeRole") >= 2);
    assert!(count("sts", "GetCallerIdentity") >= 2);
    assert!(
        log.iter().all(|e| e["service"] != "metadata"),
        "static keys never touch IMDS"
    );
    assert!(
        st["calls"]["ec2:AssignPrivateIpAddresses"]
            .as_u64()
            .unwrap()
            >= 3
    );
}

#[test]
fn aws_cli_v1_the_anchors_commands() {
    let lab = Lab::start(1, |_| {});
    let env = aws_files(&lab, true);
    let out = drive(&lab, 1, &params(&lab, "cli"), &env);
    eprintln!("{out:#}");
    let rc = |k: &str| out[k]["rc"].as_i64().unwrap_or(-1);
    let text = |k: &str| out[k]["out"].as_str().unwrap_or("").to_owned();
    // awsvip: monitor greps the private IPs, start reassigns, stop unassigns.
    assert_eq!(rc("awsvip_monitor_a"), 0, "{}", out["awsvip_monitor_a"]);
    assert!(text("awsvip_monitor_a")
        .split_whitespace()
        .any(|w| w == VIP));
    assert_eq!(rc("awsvip_start_b"), 0, "{}", out["awsvip_start_b"]);
    assert!(
        text("awsvip_monitor_b")
            .split_whitespace()
            .any(|w| w == VIP),
        "{}",
        out["awsvip_monitor_b"]
    );
    assert_eq!(rc("awsvip_stop_b"), 0, "{}", out["awsvip_stop_b"]);
    assert_eq!(text("enis_filter"), ENI_A);
    // awseip.
    assert_eq!(rc("awseip_start"), 0, "{}", out["awseip_start"]);
    assert_eq!(out["awseip_monitor_has_ip"], true);
    assert!(out["awseip_association"]
        .as_str()
        .unwrap()
        .starts_with("eipassoc-"));
    assert_eq!(rc("awseip_stop"), 0, "{}", out["awseip_stop"]);
    assert_eq!(
        rc("awseip_associate_instance"),
        0,
        "{}",
        out["awseip_associate_instance"]
    );
    // aws-vpc-move-ip, with the assumed role parsed by the anchor's own awk fields.
    assert_eq!(text("vpc_monitor_before"), NODE_A);
    assert_eq!(rc("vpc_start"), 0, "{}", out["vpc_start"]);
    assert_eq!(text("vpc_monitor_after"), NODE_B);
    assert_eq!(out["assume_role_rc"], 0);
    assert_eq!(
        out["assume_role_fields"],
        json!(["ASSUMEDROLEUSER", "CREDENTIALS"])
    );
    assert_eq!(
        text("role_caller"),
        "arn:aws:sts::444455556666:assumed-role/rtb-editor/AWSCLI-RouteTableUpdate"
    );
    assert_eq!(rc("role_replace"), 0, "{}", out["role_replace"]);
    // Source/dest check, DryRun, and the --endpoint-url form.
    assert_eq!(rc("no_sdc"), 0, "{}", out["no_sdc"]);
    assert_eq!(text("sdc"), "False");
    assert_ne!(rc("dry_run"), 0);
    assert!(out["dry_run"]["err"]
        .as_str()
        .unwrap()
        .contains("DryRunOperation"));
    assert!(out["dry_run_denied"]["err"]
        .as_str()
        .unwrap()
        .contains("UnauthorizedOperation"));
    assert_eq!(
        text("endpoint_url"),
        "vpc-0c10d0000000000a1",
        "{}",
        out["endpoint_url"]
    );

    let st = lab.state();
    assert_eq!(eni(&st, ENI_B)["secondary_ips"], json!([]));
    assert_eq!(route(&st, RTB, OVERLAY)["instance"], NODE_B);
    assert_eq!(route(&st, RTB_OTHER, OVERLAY)["eni"], ENI_B);
    let spare = st["elastic_ips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["public_ip"] == "203.0.113.11")
        .unwrap();
    assert_eq!(spare["association"]["instance"], NODE_B);
}

#[test]
fn botocore_instance_metadata_credentials_per_node() {
    let lab = Lab::start(2, |_| {});
    for (node, id, name) in [(1, NODE_A, "node-a"), (2, NODE_B, "node-b")] {
        let mut p = params(&lab, "imds");
        p["instance"] = json!(id);
        // Nothing but the machine: no keys, no files; the CA as the trust store would give it.
        let env = vec![
            ("AWS_CA_BUNDLE", lab.ca.display().to_string()),
            (
                "AWS_CONFIG_FILE",
                lab.dir.path().join("none").display().to_string(),
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                lab.dir.path().join("none").display().to_string(),
            ),
        ];
        let out = drive(&lab, node, &p, &env);
        eprintln!("{out:#}");
        assert_eq!(out["role_name"], "ha-node");
        assert_eq!(out["has_token"], true);
        assert_eq!(out["key_prefix"], "ASIA");
        assert_eq!(out["region"], "eu-west-1");
        assert_eq!(out["method"], "iam-role");
        assert_eq!(out["endpoint"], "https://ec2.eu-west-1.amazonaws.com");
        assert_eq!(out["instance_found"], json!([id]));
        assert_eq!(
            out["caller"],
            format!("arn:aws:sts::111122223333:assumed-role/ha-node/{id}")
        );
        assert_eq!(err(&out["denied"]), (403, "UnauthorizedOperation"));
        assert_eq!(out["token_status"], 200);
        assert_eq!(out["forwarded_status"], 403);
        assert_eq!(out["bad_ttl_status"], 400);
        assert_eq!(out["no_token_status"], 401);
        assert_eq!(out["instance_id"], id, "told apart by source address");
        let ips = if node == 1 {
            format!("10.0.1.11\n{VIP}")
        } else {
            "10.0.1.12".to_owned()
        };
        assert_eq!(out["local_ipv4s"], ips);
        // The log names the instance for IMDS and for the API calls its credentials signed.
        let log = lab.log();
        assert!(log.iter().any(|e| e["service"] == "metadata"
            && e["api"] == "imds.credentials"
            && e["instance"] == name));
        assert!(log.iter().any(|e| e["service"] == "ec2"
            && e["api"] == "DescribeInstances"
            && e["instance"] == name));
        lab.admin("DELETE", "/admin/log", None);
    }
    let st = lab.state();
    assert!(st["instance_credentials"]["node-a"]["access_key_id"]
        .as_str()
        .unwrap()
        .starts_with("ASIA"));
    assert!(st["live_imds_tokens"].as_u64().unwrap() >= 2);
}
