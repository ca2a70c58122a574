//! The AWS half over real sockets on loopback: fault rules answered in EC2's and STS's own
//! formats and aimed at one instance, resets, hangs, latency, a metadata server that is
//! down, the IMDS hop limit (no answer at all), the shared IMDS listener telling
//! instances apart by source address, the request log counting EC2, STS and IMDS apart,
//! and the `/admin/aws/...` routes. Requests are signed here with the emulator's own SigV4
//! primitives (checked against the AWS test suite in `src/aws/sigv4.rs`); the clients we
//! did not write are in `aws_sdk.rs`.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use cloudvip_sim::aws::sigv4::{self, Keys, Signed};
use cloudvip_sim::{Sim, SimHandle, World};
use serde_json::{json, Value};

const WORLD: &str = include_str!("../examples/world-aws.toml");
const ADMIN_KEY: (&str, &str) = ("AKIACLOUDVIPSIM0001", "cloudvip-sim-secret-key-0001");
const T: Duration = Duration::from_secs(10);

struct Reply {
    status: u16,
    body: String,
}

fn exchange(
    source: Option<IpAddr>,
    addr: &str,
    head: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Reply, String> {
    let to: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s: TcpStream = match source {
        None => TcpStream::connect(to).map_err(|e| e.to_string())?,
        Some(ip) => {
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .map_err(|e| e.to_string())?;
            sock.bind(&SocketAddr::new(ip, 0).into())
                .map_err(|e| e.to_string())?;
            sock.connect(&to.into()).map_err(|e| e.to_string())?;
            sock.into()
        }
    };
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (h, b) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no response: {text:?}"))?;
    let status = h
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    Ok(Reply {
        status,
        body: b.to_owned(),
    })
}

struct Lab {
    sim: SimHandle,
    api: String,
    admin: String,
}

fn start(edit: impl FnOnce(&mut cloudvip_sim::aws::AwsWorld)) -> Lab {
    let mut w = World::from_toml(WORLD).unwrap();
    edit(w.aws.as_mut().unwrap());
    let sim = Sim::start(w).unwrap();
    let ep = sim.endpoints();
    Lab {
        api: ep["aws"]["api"]
            .as_str()
            .unwrap()
            .trim_start_matches("http://")
            .to_owned(),
        admin: sim.admin_url().trim_start_matches("http://").to_owned(),
        sim,
    }
}

impl Lab {
    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let b = body.map(|b| b.to_string()).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.admin,
            b.len()
        );
        let r = exchange(None, &self.admin, &head, b.as_bytes(), T).unwrap();
        (
            r.status,
            serde_json::from_str(&r.body).unwrap_or(Value::Null),
        )
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.admin(method, path, body);
        assert_eq!(s, 200, "{method} {path}: {v}");
        v
    }

    fn md(&self, instance: &str) -> String {
        self.sim.endpoints()["aws"]["metadata"][instance]["host"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A signed EC2 or STS call (botocore's shape: form POST, every header signed).
    fn call(
        &self,
        service: &str,
        body: &str,
        key: (&str, &str, Option<&str>),
        timeout: Duration,
    ) -> Result<Reply, String> {
        let mut headers = vec![
            (
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
            (
                "Host".to_owned(),
                format!("{service}.eu-west-1.amazonaws.com"),
            ),
        ];
        let view = Signed {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let keys = Keys {
            access_key: key.0,
            secret: key.1,
            token: key.2,
        };
        let added = sigv4::sign(&view, &keys, "eu-west-1", service, SystemTime::now());
        headers.extend(added);
        let mut head = String::from("POST / HTTP/1.1\r\n");
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        exchange(None, &self.api, &head, body.as_bytes(), timeout)
    }

    fn ec2(&self, body: &str) -> Reply {
        self.call("ec2", body, (ADMIN_KEY.0, ADMIN_KEY.1, None), T)
            .unwrap()
    }

    fn log(&self) -> Vec<Value> {
        self.ok("GET", "/admin/log", None)["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn tag(r: &Reply, t: &str) -> Option<String> {
    let o = format!("<{t}>");
    let i = r.body.find(&o)? + o.len();
    let j = r.body[i..].find(&format!("</{t}>"))?;
    Some(r.body[i..i + j].to_owned())
}

fn imds(
    source: Option<IpAddr>,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Reply, String> {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Content-Length: 0\r\n\r\n");
    exchange(source, host, &head, b"", timeout)
}

fn token(host: &str) -> String {
    let r = imds(
        None,
        host,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "300")],
        T,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Instance-profile credentials from a node's IMDS: (key, secret, token).
fn role_creds(host: &str) -> (String, String, String) {
    let t = token(host);
    let r = imds(
        None,
        host,
        "GET",
        "/latest/meta-data/iam/security-credentials/ha-node",
        &[("X-aws-ec2-metadata-token", &t)],
        T,
    )
    .unwrap();
    let v: Value = serde_json::from_str(&r.body).unwrap();
    (
        v["AccessKeyId"].as_str().unwrap().to_owned(),
        v["SecretAccessKey"].as_str().unwrap().to_owned(),
        v["Token"].as_str().unwrap().to_owned(),
    )
}

const DESCRIBE: &str = "Action=DescribeVpcs&Version=2016-11-15";
const ASSIGN: &str = "Action=AssignPrivateIpAddresses&Version=2016-11-15&NetworkInterfaceId=eni-0c10d0000000000e2&PrivateIpAddress.1=10.0.1.100&AllowReassignment=true";
const WHOAMI: &str = "Action=GetCallerIdentity&Version=2011-06-15";

#[test]
fn injected_errors_use_ec2_and_sts_formats() {
    let lab = start(|_| {});
    lab.ok(
        "POST",
        "/admin/faults",
        Some(json!({"kind": "error", "status": 500, "cloud": "aws", "service": "ec2", "api": "AssignPrivateIpAddresses", "count": 1})),
    );
    let r = lab.ec2(DESCRIBE);
    assert_eq!(r.status, 200, "other actions unaffected");
    let r = lab.ec2(ASSIGN);
    assert_eq!(
        (r.status, tag(&r, "Code")),
        (500, Some("InternalError".into()))
    );
    assert!(tag(&r, "RequestID").is_some(), "{}", r.body);
    assert_eq!(
        lab.ec2(ASSIGN).status,
        200,
        "count exhausted; the retry applies"
    );
    lab.ok(
        "POST",
        "/admin/faults",
        Some(json!({"kind": "rate_limit", "cloud": "aws", "service": "sts", "count": 1})),
    );
    let r = lab
        .call("sts", WHOAMI, (ADMIN_KEY.0, ADMIN_KEY.1, None), T)
        .unwrap();
    assert_eq!(
        (r.status, tag(&r, "Code")),
        (400, Some("Throttling".into()))
    );
    assert!(r
        .body
        .contains("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"));
    lab.ok(
        "POST",
        "/admin/faults",
        Some(json!({"kind": "rate_limit", "cloud": "aws", "service": "ec2", "count": 1})),
    );
    let r = lab.ec2(DESCRIBE);
    assert_eq!(
        (r.status, tag(&r, "Code")),
        (503, Some("RequestLimitExceeded".into()))
    );
}

#[test]
fn faults_aimed_at_one_instance_latency_reset_hang_down() {
    let lab = start(|_| {});
    let (md_a, md_b) = (lab.md("node-a"), lab.md("node-b"));
    let (k, s, t) = role_creds(&md_a);
    // Node-a's credentials: its EC2 calls are attributed to it.
    lab.ok(
        "POST",
        "/admin/faults",
        Some(json!({"kind": "latency", "cloud": "aws", "service": "ec2", "instance": "node-a", "ms": 400})),
    );
    let t0 = Instant::now();
    let r = lab.call("ec2", DESCRIBE, (&k, &s, Some(&t)), T).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(t0.elapsed() >= Duration::from_millis(400));
    let t0 = Instant::now();
    assert_eq!(lab.ec2(DESCRIBE).status, 200);
    assert!(
        t0.elapsed() < Duration::from_millis(400),
        "the admin key is not node-a"
    );
    lab.ok("DELETE", "/admin/faults", None);
    lab.ok(
        "POST",
        "/admin/faults",
        Some(json!({"kind": "reset", "cloud": "aws", "service": "sts", "count": 1})),
    );
    assert!(lab
        .call("sts", WHOAMI, (ADMIN_KEY.0, ADMIN_KEY.1, None), T)
        .is_err());
    assert_eq!(
        lab.call("sts", WHOAMI, (ADMIN_KEY.0, ADMIN_KEY.1, None), T)
            .unwrap()
            .status,
        200
    );
    lab.ok(
        "POST",
        "/admin/faults",
        Some(json!({"kind": "hang", "cloud": "aws", "service": "ec2", "api": "AssignPrivateIpAddresses", "ms": 1500, "count": 1})),
    );
    let t0 = Instant::now();
    assert!(lab
        .call(
            "ec2",
            ASSIGN,
            (ADMIN_KEY.0, ADMIN_KEY.1, None),
            Duration::from_millis(500)
        )
        .is_err());
    assert!(t0.elapsed() < Duration::from_millis(1400));
    lab.ok(
        "POST",
        "/admin/faults",
        Some(json!({"kind": "down", "cloud": "aws", "service": "metadata", "instance": "node-b", "count": 1})),
    );
    assert!(imds(
        None,
        &md_b,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
        T
    )
    .is_err());
    assert!(token(&md_a).len() > 20, "node-a's metadata server is up");
    assert!(token(&md_b).len() > 20, "count exhausted");
    lab.ok(
        "POST",
        "/admin/faults",
        Some(json!({"kind": "rate_limit", "cloud": "aws", "service": "metadata", "api": "imds.credentials", "count": 1})),
    );
    let t2 = token(&md_a);
    let r = imds(
        None,
        &md_a,
        "GET",
        "/latest/meta-data/iam/security-credentials/ha-node",
        &[("X-aws-ec2-metadata-token", &t2)],
        T,
    )
    .unwrap();
    assert_eq!(r.status, 429);
}

#[test]
fn imds_hop_limit_means_no_answer() {
    let lab = start(|_| {});
    let md = lab.md("node-a");
    lab.ok(
        "PUT",
        "/admin/aws/instances/node-a/metadata-options",
        Some(json!({"metadata_hops": 2})),
    );
    let t0 = Instant::now();
    let r = imds(
        None,
        &md,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
        Duration::from_millis(1500),
    );
    assert!(r.is_err(), "no response, not an error status");
    assert!(
        t0.elapsed() >= Duration::from_millis(1400),
        "silence, not a closed connection"
    );
    let entry = lab
        .log()
        .into_iter()
        .find(|e| e["api"] == "imds.token")
        .unwrap();
    assert!(entry["status"].is_null(), "{entry}");
    let v = lab.ok(
        "PUT",
        "/admin/aws/instances/node-a/metadata-options",
        Some(json!({"hop_limit": 2})),
    );
    assert_eq!(v["hop_limit"], 2);
    assert!(!token(&md).is_empty());
    // DescribeInstances reports the hop limit.
    let r = lab.ec2("Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0c10d000000000001");
    assert_eq!(tag(&r, "httpPutResponseHopLimit").as_deref(), Some("2"));
}

#[test]
fn shared_imds_listener_tells_instances_apart_by_source_address() {
    let lab = start(|w| {
        w.metadata_per_instance = false;
        w.metadata_listen = Some("127.0.0.1:0".parse().unwrap());
        w.instances[0].metadata_source = Some("127.0.0.11".parse().unwrap());
        w.instances[1].metadata_source = Some("127.0.0.12".parse().unwrap());
    });
    let shared = lab.sim.endpoints()["aws"]["metadata_shared"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    let id = |src: &str| {
        let src: IpAddr = src.parse().unwrap();
        let t = imds(
            Some(src),
            &shared,
            "PUT",
            "/latest/api/token",
            &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
            T,
        )
        .unwrap();
        if t.status != 200 {
            return (t.status, String::new());
        }
        let r = imds(
            Some(src),
            &shared,
            "GET",
            "/latest/meta-data/instance-id",
            &[("X-aws-ec2-metadata-token", &t.body)],
            T,
        )
        .unwrap();
        (r.status, r.body)
    };
    assert_eq!(id("127.0.0.11"), (200, "i-0c10d000000000001".into()));
    assert_eq!(id("127.0.0.12"), (200, "i-0c10d000000000002".into()));
    assert_eq!(id("127.0.0.13").0, 404, "no instance at that address");
    // A token from node-a's address is not node-b's.
    let a: IpAddr = "127.0.0.11".parse().unwrap();
    let b: IpAddr = "127.0.0.12".parse().unwrap();
    let t = imds(
        Some(a),
        &shared,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
        T,
    )
    .unwrap();
    let r = imds(
        Some(b),
        &shared,
        "GET",
        "/latest/meta-data/instance-id",
        &[("X-aws-ec2-metadata-token", &t.body)],
        T,
    )
    .unwrap();
    assert_eq!(r.status, 401);
}

#[test]
fn request_log_counts_ec2_sts_and_imds_apart() {
    let lab = start(|_| {});
    let md = lab.md("node-b");
    lab.ok("DELETE", "/admin/log", None);
    let (k, s, t) = role_creds(&md);
    assert_eq!(
        lab.call("ec2", ASSIGN, (&k, &s, Some(&t)), T)
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        lab.call("sts", WHOAMI, (&k, &s, Some(&t)), T)
            .unwrap()
            .status,
        200
    );
    let log = lab.log();
    let rows: Vec<(String, String, bool, String)> = log
        .iter()
        .map(|e| {
            (
                e["service"].as_str().unwrap_or("").to_owned(),
                e["api"].as_str().unwrap_or("").to_owned(),
                e["api_call"].as_bool().unwrap_or(false),
                e["instance"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let want = |svc: &str, api: &str, call: bool| {
        (svc.to_owned(), api.to_owned(), call, "node-b".to_owned())
    };
    assert_eq!(
        rows,
        vec![
            want("metadata", "imds.token", false),
            want("metadata", "imds.credentials", false),
            want("ec2", "AssignPrivateIpAddresses", true),
            want("sts", "GetCallerIdentity", true),
        ]
    );
    let st = lab.ok("GET", "/admin/aws/state", None);
    assert_eq!(st["calls"]["imds:token"], 1);
    assert_eq!(st["calls"]["ec2:AssignPrivateIpAddresses"], 1);
    assert_eq!(st["calls"]["sts:GetCallerIdentity"], 1);
    assert_eq!(st["calls"]["imds:credentials"], 1);
    // /admin/state carries the AWS part beside the others; no secrets in it.
    let all = lab.ok("GET", "/admin/state", None);
    assert!(all["aws"]["enis"].is_array());
    assert!(!all.to_string().contains(&s) && !all.to_string().contains(&t));
    // The shared recorder (the suite's log scan) knows every AWS secret: the configured
    // secret keys, what IMDS issued, what signed requests carried.
    let secrets = lab.ok("GET", "/admin/secrets", None)["secrets"].to_string();
    for (what, v) in [
        ("configured secret key", ADMIN_KEY.1),
        ("role secret", s.as_str()),
        ("session token", t.as_str()),
    ] {
        assert!(secrets.contains(v), "{what} not recorded");
    }
    for kind in ["IMDS token", "SigV4 signature"] {
        assert!(secrets.contains(kind), "no {kind} recorded: {secrets}");
    }
}

#[test]
fn admin_console_changes_credentials_and_settings() {
    let lab = start(|w| {
        w.consistency.network_interfaces_ms = 60_000;
    });
    let eni_ips = |eni: &str| -> Vec<String> {
        let r = lab.ec2(&format!(
            "Action=DescribeNetworkInterfaces&Version=2016-11-15&NetworkInterfaceId.1={eni}"
        ));
        r.body
            .match_indices("<privateIpAddress>")
            .map(|(i, _)| {
                let rest = &r.body[i + 18..];
                rest[..rest.find('<').unwrap()].to_owned()
            })
            .collect()
    };
    // A console move is a write like any other: lagging readers see it late.
    lab.ok(
        "POST",
        "/admin/aws/enis/eni-0c10d0000000000e2/assign",
        Some(json!({"ips": ["10.0.1.100"]})),
    );
    assert!(!eni_ips("eni-0c10d0000000000e2").contains(&"10.0.1.100".to_owned()));
    let st = lab.ok("GET", "/admin/aws/state", None);
    assert!(st["lagging_writes"].as_u64().unwrap() >= 1);
    lab.ok("POST", "/admin/aws/settle", None);
    assert!(eni_ips("eni-0c10d0000000000e2").contains(&"10.0.1.100".to_owned()));
    lab.ok(
        "PUT",
        "/admin/aws/settings",
        Some(json!({"consistency": {"network_interfaces_ms": 0}})),
    );
    lab.ok(
        "POST",
        "/admin/aws/enis/eni-0c10d0000000000e2/unassign",
        Some(json!({"ips": ["10.0.1.100"]})),
    );
    assert!(!eni_ips("eni-0c10d0000000000e2").contains(&"10.0.1.100".to_owned()));
    let (s, v) = lab.admin(
        "POST",
        "/admin/aws/enis/eni-0c10d0000000000e1/assign",
        Some(json!({"ips": ["10.0.1.12"]})),
    );
    assert_eq!(s, 400, "a primary address never moves: {v}");
    // Routes and Elastic IPs from the console.
    lab.ok(
        "PUT",
        "/admin/aws/route-tables/rtb-0c10d0000000000c1/routes",
        Some(json!({"destination": "192.168.100.10/32", "instance": "i-0c10d000000000002"})),
    );
    lab.ok(
        "DELETE",
        "/admin/aws/route-tables/rtb-0c10d0000000000c1/routes",
        Some(json!({"destination": "0.0.0.0/0"})),
    );
    lab.ok(
        "POST",
        "/admin/aws/elastic-ips/eipalloc-0c10d00000000000f2/associate",
        Some(json!({"eni": "eni-0c10d0000000000e2"})),
    );
    lab.ok(
        "PUT",
        "/admin/aws/enis/eni-0c10d0000000000e2/source-dest-check",
        Some(json!({"value": true})),
    );
    let st = lab.ok("GET", "/admin/aws/state", None);
    let rt = &st["route_tables"][0];
    assert_eq!(rt["routes"].as_array().unwrap().len(), 2, "{rt}");
    assert_eq!(rt["routes"][1]["target"]["instance"], "i-0c10d000000000002");
    assert_eq!(
        st["elastic_ips"][1]["association"]["eni"],
        "eni-0c10d0000000000e2"
    );
    assert_eq!(st["enis"][1]["source_dest_check"], true);
    // Credentials for a role, usable at once, then expired for everyone.
    let c = lab.ok(
        "POST",
        "/admin/aws/credentials",
        Some(json!({"role": "ha-node"})),
    );
    let key = (
        c["AccessKeyId"].as_str().unwrap(),
        c["SecretAccessKey"].as_str().unwrap(),
        Some(c["SessionToken"].as_str().unwrap()),
    );
    assert_eq!(lab.call("ec2", DESCRIBE, key, T).unwrap().status, 200);
    assert!(
        lab.ok("POST", "/admin/aws/credentials/expire", None)["expired"]
            .as_u64()
            .unwrap()
            >= 1
    );
    let r = lab.call("ec2", DESCRIBE, key, T).unwrap();
    assert_eq!(
        (r.status, tag(&r, "Code")),
        (400, Some("RequestExpired".into()))
    );
    // IMDS tokens expire on demand; credentials rotate on demand.
    let md = lab.md("node-a");
    let t = token(&md);
    lab.ok("POST", "/admin/aws/imds-tokens/expire", None);
    let r = imds(
        None,
        &md,
        "GET",
        "/latest/meta-data/instance-id",
        &[("X-aws-ec2-metadata-token", &t)],
        T,
    )
    .unwrap();
    assert_eq!(r.status, 401);
    let before = role_creds(&md).0;
    let rot = lab.ok(
        "POST",
        "/admin/aws/instances/node-a/rotate-credentials",
        None,
    );
    assert_ne!(rot["access_key_id"].as_str().unwrap(), before);
    assert_eq!(role_creds(&md).0, rot["access_key_id"].as_str().unwrap());
    // Settings: the skew answer and EIP reassociation default are selectable.
    let s = lab.ok(
        "PUT",
        "/admin/aws/settings",
        Some(json!({"skew_error": "AuthFailure", "eip_reassociation_default": "deny"})),
    );
    assert_eq!(
        (
            s["skew_error"].as_str(),
            s["eip_reassociation_default"].as_str()
        ),
        (Some("AuthFailure"), Some("deny"))
    );
    assert_eq!(
        lab.admin(
            "PUT",
            "/admin/aws/settings",
            Some(json!({"skew_error": "nope"}))
        )
        .0,
        400
    );
    assert_eq!(lab.admin("POST", "/admin/aws/nothing-here", None).0, 404);
}
