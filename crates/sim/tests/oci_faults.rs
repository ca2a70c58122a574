//! The OCI half under the shared fault mechanism and admin API, over real loopback HTTP:
//! injected 5xx/429 in OCI's error format, intermittent IMDS identity failures, latency,
//! resets, hangs, a metadata service that is down, and the `/admin/oci/...` actions.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use cloudvip_sim::{Sim, SimHandle, World};
use serde_json::{json, Value};

const WORLD: &str = r#"
[oci]
tenancy = "ocid1.tenancy.oc1..aaaaaaaasimtenancy"
compartment = "ocid1.compartment.oc1..aaaaaaaasimcomp"
region = "eu-frankfurt-1"

[[oci.vcns]]
id = "ocid1.vcn.oc1.fra.vcn"
cidr = "10.0.0.0/16"

[[oci.subnets]]
id = "ocid1.subnet.oc1.fra.sub"
vcn = "ocid1.vcn.oc1.fra.vcn"
cidr = "10.0.1.0/24"

[[oci.instances]]
id = "ocid1.instance.oc1.fra.node1"
display_name = "node1"
[[oci.instances.vnics]]
id = "ocid1.vnic.oc1.fra.node1"
mac = "02:00:17:00:00:01"
subnet = "ocid1.subnet.oc1.fra.sub"
private_ip = "10.0.1.11"

[[oci.instances]]
id = "ocid1.instance.oc1.fra.node2"
display_name = "node2"
[[oci.instances.vnics]]
id = "ocid1.vnic.oc1.fra.node2"
mac = "02:00:17:00:00:02"
subnet = "ocid1.subnet.oc1.fra.sub"
private_ip = "10.0.1.12"
"#;

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

/// One HTTP/1.1 exchange on a fresh connection; `Err` on reset/timeout.
fn http(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> Result<Reply, String> {
    http_from(None, url, method, path, headers, body, timeout)
}

/// The same from a chosen loopback source address (a shared IMDS listener tells instances
/// apart by it).
fn http_from(
    source: Option<IpAddr>,
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> Result<Reply, String> {
    let host = url.trim_start_matches("http://").split('/').next().unwrap();
    let mut s = match source {
        None => TcpStream::connect(host).map_err(|e| e.to_string())?,
        Some(ip) => {
            let to: SocketAddr = host.parse().map_err(|e| format!("{e}"))?;
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .map_err(|e| e.to_string())?;
            sock.bind(&SocketAddr::new(ip, 0).into())
                .map_err(|e| e.to_string())?;
            sock.connect(&to.into()).map_err(|e| e.to_string())?;
            sock.into()
        }
    };
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no response: {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    Ok(Reply {
        status,
        headers: head.to_owned(),
        body: body.to_owned(),
    })
}

const T: Duration = Duration::from_secs(10);

fn start() -> (SimHandle, String, String, String, String) {
    let sim = Sim::start(World::from_toml(WORLD).unwrap()).unwrap();
    let ep = sim.endpoints();
    let api = ep["oci"]["api"].as_str().unwrap().to_owned();
    let md1 = ep["oci"]["metadata"]["node1"]["base_url"]
        .as_str()
        .unwrap()
        .trim_end_matches("/opc/v2")
        .to_owned();
    let md2 = ep["oci"]["metadata"]["node2"]["base_url"]
        .as_str()
        .unwrap()
        .trim_end_matches("/opc/v2")
        .to_owned();
    let admin = sim.admin_url();
    (sim, api, md1, md2, admin)
}

fn fault(admin: &str, rule: Value) {
    let r = http(
        admin,
        "POST",
        "/admin/faults",
        &[("Content-Type", "application/json")],
        &rule.to_string(),
        T,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

const BEARER: (&str, &str) = ("Authorization", "Bearer Oracle");

#[test]
fn injected_errors_use_oci_error_format_and_target_one_operation() {
    let (_sim, api, _, _, admin) = start();
    fault(
        &admin,
        json!({"kind": "error", "cloud": "oci", "api": "UpdatePrivateIp", "status": 500, "count": 1}),
    );
    fault(
        &admin,
        json!({"kind": "rate_limit", "cloud": "oci", "api": "GetVnic", "count": 1}),
    );
    let put = |b: &str| {
        http(
            &api,
            "PUT",
            "/20160918/privateIps/ocid1.privateip.oc1.fra.node1",
            &[],
            b,
            T,
        )
        .unwrap()
    };
    let r = put("{}");
    assert_eq!(r.status, 500);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["code"], "InternalServerError");
    assert!(r.headers.to_ascii_lowercase().contains("opc-request-id:"));
    // Count exhausted: the request reaches the handler, which wants a signature.
    let r = put("{}");
    assert_eq!(r.status, 401, "{}", r.body);
    let r = http(
        &api,
        "GET",
        "/20160918/vnics/ocid1.vnic.oc1.fra.node1",
        &[],
        "",
        T,
    )
    .unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap()["code"],
        "TooManyRequests"
    );
    let r = http(
        &api,
        "GET",
        "/20160918/vnics/ocid1.vnic.oc1.fra.node1",
        &[],
        "",
        T,
    )
    .unwrap();
    assert_eq!(r.status, 401);
    // The request log names the operations and the applied faults.
    let log: Value =
        serde_json::from_str(&http(&admin, "GET", "/admin/log", &[], "", T).unwrap().body).unwrap();
    let entries = log["entries"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["api"] == "UpdatePrivateIp"
        && e["status"] == 500
        && !e["faults"].as_array().unwrap().is_empty()));
    assert!(entries.iter().all(|e| e["cloud"] == "oci"));
}

#[test]
fn imds_identity_fails_intermittently_for_one_instance() {
    let (_sim, _api, md1, md2, admin) = start();
    fault(
        &admin,
        json!({"kind": "error", "cloud": "oci", "service": "metadata", "api": "imds.identity", "instance": "node1", "status": 500, "count": 2}),
    );
    let get = |md: &str, p: &str| http(md, "GET", p, &[BEARER], "", T).unwrap();
    assert_eq!(get(&md1, "/opc/v2/instance/region").body, "eu-frankfurt-1");
    assert_eq!(
        get(&md2, "/opc/v2/identity/cert.pem").status,
        200,
        "other instance unaffected"
    );
    assert_eq!(get(&md1, "/opc/v2/identity/cert.pem").status, 500);
    assert_eq!(get(&md1, "/opc/v2/identity/key.pem").status, 500);
    let r = get(&md1, "/opc/v2/identity/key.pem");
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
}

#[test]
fn latency_reset_hang_and_down() {
    let (_sim, api, md1, md2, admin) = start();
    fault(
        &admin,
        json!({"kind": "latency", "cloud": "oci", "service": "metadata", "instance": "node2", "ms": 400, "count": 1}),
    );
    let t0 = Instant::now();
    assert_eq!(
        http(&md2, "GET", "/opc/v2/vnics/", &[BEARER], "", T)
            .unwrap()
            .status,
        200
    );
    assert!(t0.elapsed() >= Duration::from_millis(400));
    fault(
        &admin,
        json!({"kind": "reset", "cloud": "oci", "service": "networking", "count": 1}),
    );
    assert!(
        http(&api, "GET", "/20160918/vnics/x", &[], "", T).is_err(),
        "reset"
    );
    assert_eq!(
        http(&api, "GET", "/20160918/vnics/x", &[], "", T)
            .unwrap()
            .status,
        401
    );
    fault(
        &admin,
        json!({"kind": "hang", "cloud": "oci", "service": "auth", "ms": 1500, "count": 1}),
    );
    let t0 = Instant::now();
    let r = http(
        &api,
        "POST",
        "/v1/x509",
        &[],
        "{}",
        Duration::from_millis(500),
    );
    assert!(r.is_err(), "no answer while hanging");
    assert!(t0.elapsed() < Duration::from_millis(1400));
    fault(
        &admin,
        json!({"kind": "down", "cloud": "oci", "service": "metadata", "instance": "node1", "count": 1}),
    );
    assert!(
        http(&md1, "GET", "/opc/v2/instance/", &[BEARER], "", T).is_err(),
        "down"
    );
    assert_eq!(
        http(&md1, "GET", "/opc/v2/instance/", &[BEARER], "", T)
            .unwrap()
            .status,
        200
    );
}

#[test]
fn admin_actions_rotate_revoke_and_settings() {
    let (sim, _api, md1, _md2, admin) = start();
    let cert = |md: &str| {
        http(md, "GET", "/opc/v2/identity/cert.pem", &[BEARER], "", T)
            .unwrap()
            .body
    };
    let before = cert(&md1);
    let r = http(
        &admin,
        "POST",
        "/admin/oci/instances/node1/rotate-identity",
        &[],
        "",
        T,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(cert(&md1), before);
    assert_eq!(
        http(
            &admin,
            "POST",
            "/admin/oci/instances/nope/rotate-identity",
            &[],
            "",
            T
        )
        .unwrap()
        .status,
        404
    );
    let r = http(&admin, "POST", "/admin/oci/tokens/revoke", &[], "", T).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap()["revoked"],
        0
    );
    let r = http(
        &admin,
        "PUT",
        "/admin/oci/settings",
        &[],
        r#"{"public_ip_assign_ms": 5}"#,
        T,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let r = http(
        &admin,
        "POST",
        "/admin/oci/public-ips/fail-next",
        &[],
        r#"{"count": 2}"#,
        T,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let st: Value = serde_json::from_str(
        &http(&admin, "GET", "/admin/state", &[], "", T)
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(st["oci"]["privateIps"].as_array().unwrap().len(), 2);
    assert!(st["oci"]["calls"]["Imds"].as_u64().unwrap() >= 2);
    assert!(sim.oci().is_some());
}

#[test]
fn shared_imds_listener_tells_instances_apart_by_source_address() {
    let world = WORLD
        .replace(
            "region = \"eu-frankfurt-1\"",
            "region = \"eu-frankfurt-1\"\nmetadata_per_instance = false\nmetadata_listen = \"127.0.0.1:0\"",
        )
        .replace(
            "display_name = \"node1\"",
            "display_name = \"node1\"\nmetadata_source = \"127.0.0.11\"",
        )
        .replace(
            "display_name = \"node2\"",
            "display_name = \"node2\"\nmetadata_source = \"127.0.0.12\"",
        );
    let sim = Sim::start(World::from_toml(&world).unwrap()).unwrap();
    let ep = sim.endpoints();
    assert_eq!(ep["oci"]["metadata"], json!({}));
    let md = ep["oci"]["metadata_shared"]
        .as_str()
        .unwrap()
        .trim_end_matches("/opc/v2")
        .to_owned();
    let id = |src: &str| {
        http_from(
            Some(src.parse().unwrap()),
            &md,
            "GET",
            "/opc/v2/instance/id",
            &[BEARER],
            "",
            T,
        )
        .unwrap()
    };
    assert_eq!(id("127.0.0.11").body, "ocid1.instance.oc1.fra.node1");
    assert_eq!(id("127.0.0.12").body, "ocid1.instance.oc1.fra.node2");
    assert_eq!(id("127.0.0.13").status, 404, "no instance at that address");
    // Fault selectors see the asking instance.
    fault(
        &sim.admin_url(),
        json!({"kind": "error", "cloud": "oci", "service": "metadata", "instance": "node2", "status": 503, "count": 1}),
    );
    assert_eq!(id("127.0.0.11").status, 200);
    assert_eq!(id("127.0.0.12").status, 503);
    assert_eq!(id("127.0.0.12").status, 200);
}
