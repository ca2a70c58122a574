//! Azure IMDS over real sockets on loopback: the header and api-version checks in the
//! documented order and bodies, the instance document's shape (compute, network with every
//! IP configuration, IMDS's MAC form), leaves with format=text, the load-balancer document,
//! the shared listener telling VMs apart by source address, and the DMI directory.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use cloudvip_sim::admin::Cloud as _;
use cloudvip_sim::{Sim, SimHandle, World};
use serde_json::Value;
use socket2::{Domain, Socket, Type};

const WORLD: &str = r#"
[azure]
subscription_id = "8d10da13-8125-4ba9-a717-bf7490507b3d"
resource_group = "rg-ha"
location = "westeurope"
imds_listen = "127.0.0.1:0"

[[azure.vms]]
name = "node-a"
zone = "1"
imds_source = "127.0.0.2"
tags = { role = "db" }
load_balancer = [{ frontend_ip = "10.66.1.100", frontend_port = 0, backend_port = 0, private_ip = "10.66.0.1", protocol = "all" }]
[[azure.vms.nics]]
mac = "00:0d:3a:f8:06:ec"
subnet = "10.66.0.0/24"
ipv4 = [{ private = "10.66.0.1", public = "198.51.100.7" }, { private = "10.66.0.11" }]
ipv6 = ["fd00:66::1"]

[[azure.vms]]
name = "node-b"
zone = "2"
imds_source = "127.0.0.3"
[[azure.vms.nics]]
mac = "00-0D-3A-00-00-02"
subnet = "10.66.0.0/24"
ipv4 = [{ private = "10.66.0.2" }]
"#;

fn start() -> SimHandle {
    Sim::start(World::from_toml(WORLD).unwrap()).unwrap()
}

fn addr_of(v: &Value) -> SocketAddr {
    v.as_str().unwrap().parse().unwrap()
}

/// GET `path` from `from` (a loopback source) to `to`; status and body.
fn get(from: Option<IpAddr>, to: SocketAddr, path: &str, headers: &[&str]) -> (u16, String) {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    if let Some(ip) = from {
        s.bind(&SocketAddr::new(ip, 0).into()).unwrap();
    }
    s.connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap();
    let mut s: std::net::TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

const MD: &str = "Metadata: true";

#[test]
fn the_instance_document_and_its_errors() {
    let sim = start();
    let ep = sim.endpoints();
    let a = addr_of(&ep["azure"]["imds_hosts"]["node-a"]);
    let path = "/metadata/instance?api-version=2021-02-01";

    let (st, body) = get(None, a, path, &[]);
    assert_eq!(st, 400);
    assert_eq!(
        json(&body)["error"],
        "Bad request. Required metadata header not specified"
    );
    let (st, _) = get(None, a, path, &["Metadata: yes"]);
    assert_eq!(st, 400, "only the value true counts");
    let (st, _) = get(None, a, path, &[MD, "X-Forwarded-For: 10.0.0.9"]);
    assert_eq!(st, 400, "a proxied request is refused");

    for bad in [
        "/metadata/instance",
        "/metadata/instance?api-version=2016-01-01",
    ] {
        let (st, body) = get(None, a, bad, &[MD]);
        assert_eq!(st, 400, "{bad}");
        let v = json(&body);
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("api-version is invalid"),
            "{v}"
        );
        assert_eq!(v["newest-versions"].as_array().unwrap().len(), 3);
    }

    let (st, body) = get(None, a, path, &[MD]);
    assert_eq!(st, 200, "{body}");
    let v = json(&body);
    let c = &v["compute"];
    assert_eq!(c["name"], "node-a");
    assert_eq!(c["location"], "westeurope");
    assert_eq!(c["zone"], "1");
    assert_eq!(c["resourceGroupName"], "rg-ha");
    assert_eq!(
        c["resourceId"],
        "/subscriptions/8d10da13-8125-4ba9-a717-bf7490507b3d/resourceGroups/rg-ha/providers/Microsoft.Compute/virtualMachines/node-a"
    );
    assert_eq!(c["tagsList"][0]["name"], "role");
    assert_eq!(c["vmId"].as_str().unwrap().len(), 36);
    let nic = &v["network"]["interface"][0];
    assert_eq!(nic["macAddress"], "000D3AF806EC");
    assert_eq!(nic["ipv4"]["ipAddress"][0]["privateIpAddress"], "10.66.0.1");
    assert_eq!(
        nic["ipv4"]["ipAddress"][0]["publicIpAddress"],
        "198.51.100.7"
    );
    assert_eq!(
        nic["ipv4"]["ipAddress"][1]["privateIpAddress"],
        "10.66.0.11"
    );
    assert_eq!(nic["ipv4"]["ipAddress"][1]["publicIpAddress"], "");
    assert_eq!(nic["ipv4"]["subnet"][0]["address"], "10.66.0.0");
    assert_eq!(nic["ipv4"]["subnet"][0]["prefix"], "24");
    assert_eq!(
        nic["ipv6"]["ipAddress"][0]["privateIpAddress"],
        "fd00:66::1"
    );

    // A node below the document; a leaf in text, and only in text.
    let leaf = "/metadata/instance/network/interface/0/ipv4/ipAddress/1/privateIpAddress?api-version=2021-02-01";
    let (st, body) = get(None, a, &format!("{leaf}&format=text"), &[MD]);
    assert_eq!((st, body.as_str()), (200, "10.66.0.11"));
    let (st, _) = get(None, a, leaf, &[MD]);
    assert_eq!(st, 400);
    let (st, body) = get(
        None,
        a,
        "/metadata/instance/compute?api-version=2021-02-01&format=json",
        &[MD],
    );
    assert_eq!(
        (st, json(&body)["name"].clone()),
        (200, Value::from("node-a"))
    );
    let (st, _) = get(
        None,
        a,
        "/metadata/instance/compute/nosuch?api-version=2021-02-01&format=text",
        &[MD],
    );
    assert_eq!(st, 404);

    let (st, body) = get(None, a, "/metadata/versions", &[MD]);
    assert_eq!(st, 200);
    assert!(json(&body)["apiVersions"]
        .as_array()
        .unwrap()
        .contains(&Value::from("2021-02-01")));

    let (st, body) = get(
        None,
        a,
        "/metadata/loadbalancer?api-version=2021-02-01",
        &[MD],
    );
    assert_eq!(st, 200, "{body}");
    let rule = &json(&body)["loadbalancer"]["inboundRules"][0];
    assert_eq!(rule["frontendIpAddress"], "10.66.1.100");
    assert_eq!(rule["privateIpAddress"], "10.66.0.1");
    let (st, _) = get(
        None,
        a,
        "/metadata/loadbalancer?api-version=2019-06-01",
        &[MD],
    );
    assert_eq!(st, 404, "no loadbalancer endpoint before 2020-10-01");
}

#[test]
fn the_shared_listener_tells_vms_apart_by_source_address() {
    let sim = start();
    let shared: SocketAddr = sim.endpoints()["azure"]["imds_shared"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .trim_end_matches("/metadata/")
        .parse()
        .unwrap();
    let path = "/metadata/instance/compute/name?api-version=2021-12-13&format=text";
    for (src, name) in [("127.0.0.2", "node-a"), ("127.0.0.3", "node-b")] {
        let (st, body) = get(Some(src.parse().unwrap()), shared, path, &[MD]);
        assert_eq!((st, body.as_str()), (200, name), "from {src}");
    }
    let (st, body) = get(Some("127.0.0.9".parse().unwrap()), shared, path, &[MD]);
    assert_eq!(st, 404, "{body}");
    let (st, body) = get(
        Some("127.0.0.3".parse().unwrap()),
        shared,
        "/metadata/instance/network/interface/0/macAddress?api-version=2021-12-13&format=text",
        &[MD],
    );
    assert_eq!((st, body.as_str()), (200, "000D3A000002"));
}

#[test]
fn the_dmi_directory_holds_azures_asset_tag() {
    let d = tempfile::tempdir().unwrap();
    let mut w = World::from_toml(WORLD).unwrap();
    w.azure.as_mut().unwrap().dmi_dir = Some(d.path().join("dmi"));
    let sim = Sim::start(w).unwrap();
    let tag = std::fs::read_to_string(d.path().join("dmi/chassis_asset_tag")).unwrap();
    assert_eq!(tag, "7783-7084-3265-9085-8269-3286-77\n");
    let vendor = std::fs::read_to_string(d.path().join("dmi/sys_vendor")).unwrap();
    assert_eq!(vendor, "Microsoft Corporation\n");
    assert_eq!(
        sim.azure().unwrap().state()["dmi"]["product_name"],
        "Virtual Machine"
    );
}
