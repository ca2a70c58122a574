//! Test helpers: a tiny HTTP/1.1 client on std sockets (loopback only) and world builders.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use cloudvip_sim::{Sim, SimHandle, World};
use serde_json::Value;

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    (host.parse().expect("host:port"), path)
}

/// One request; `Err` on transport errors (reset, timeout).
pub fn try_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    timeout: Duration,
) -> std::io::Result<Resp> {
    let (addr, path) = split_url(url);
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method != "GET" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {text:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Resp {
        status,
        headers,
        body: body.to_string(),
    })
}

pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Resp {
    try_request(method, url, headers, body, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

pub const TOKEN: &str = "ya29.test-token";
pub const PROJECT: &str = "my-project";
pub const SA: &str = "cloudvip@my-project.iam.gserviceaccount.com";

/// The documented example world, with operation timing overridable.
pub fn example_world() -> World {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/world.toml"))
        .expect("example world");
    World::from_toml(&text).expect("example world parses")
}

pub fn start(mut f: impl FnMut(&mut World)) -> SimHandle {
    let mut w = example_world();
    f(&mut w);
    Sim::start(w).expect("sim starts")
}

pub struct Gce<'a> {
    pub sim: &'a SimHandle,
}

impl Gce<'_> {
    pub fn api(&self) -> String {
        self.sim.endpoints()["gce"]["api"]
            .as_str()
            .unwrap()
            .to_string()
    }
    pub fn compute(&self, rest: &str) -> String {
        format!("{}/compute/v1/projects/{PROJECT}/{rest}", self.api())
    }
    pub fn md(&self, instance: &str) -> String {
        format!(
            "http://{}",
            self.sim.endpoints()["gce"]["metadata_hosts"][instance]
                .as_str()
                .unwrap()
        )
    }
    pub fn admin(&self, rest: &str) -> String {
        format!("{}{rest}", self.sim.admin_url())
    }
    pub fn get(&self, rest: &str) -> Resp {
        request(
            "GET",
            &self.compute(rest),
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            None,
        )
    }
    pub fn call(&self, method: &str, rest: &str, body: Option<&str>) -> Resp {
        request(
            method,
            &self.compute(rest),
            &[
                ("Authorization", &format!("Bearer {TOKEN}")),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    }
    pub fn instance(&self, zone: &str, name: &str) -> Value {
        let r = self.get(&format!("zones/{zone}/instances/{name}"));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }
    pub fn nic0(&self, zone: &str, name: &str) -> Value {
        self.instance(zone, name)["networkInterfaces"][0].clone()
    }
    pub fn aliases(&self, zone: &str, name: &str) -> Vec<String> {
        self.nic0(zone, name)["aliasIpRanges"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["ipCidrRange"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
    /// zoneOperations.wait until DONE.
    pub fn wait(&self, op: &Value) -> Value {
        let zone = op["zone"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        let name = op["name"].as_str().unwrap();
        for _ in 0..50 {
            let r = self.call(
                "POST",
                &format!("zones/{zone}/operations/{name}/wait"),
                None,
            );
            assert_eq!(r.status, 200, "{}", r.body);
            let v = r.json();
            if v["status"] == "DONE" {
                return v;
            }
        }
        panic!("operation {name} never DONE");
    }
    pub fn patch_aliases(&self, zone: &str, name: &str, ranges: &[&str], query: &str) -> Resp {
        let fp = self.nic0(zone, name)["fingerprint"]
            .as_str()
            .unwrap()
            .to_string();
        let list: Vec<Value> = ranges
            .iter()
            .map(|r| serde_json::json!({"ipCidrRange": r}))
            .collect();
        let body = serde_json::json!({"fingerprint": fp, "aliasIpRanges": list}).to_string();
        self.call(
            "PATCH",
            &format!(
                "zones/{zone}/instances/{name}/updateNetworkInterface?networkInterface=nic0{query}"
            ),
            Some(&body),
        )
    }
    pub fn md_get(&self, instance: &str, path: &str) -> Resp {
        request(
            "GET",
            &format!("{}/computeMetadata/v1/{path}", self.md(instance)),
            &[("Metadata-Flavor", "Google")],
            None,
        )
    }
    pub fn fault(&self, spec: Value) -> u64 {
        let r = request(
            "POST",
            &self.admin("/admin/faults"),
            &[],
            Some(&spec.to_string()),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["id"].as_u64().unwrap()
    }
    pub fn log(&self) -> Vec<Value> {
        request("GET", &self.admin("/admin/log"), &[], None).json()["entries"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// The Python of the venv `scripts/setup-deps.sh` builds from
/// `crates/sim/tests/requirements-<name>.txt` (under CLOUDVIP_TEST_CACHE, default
/// /opt/cloudvip-test): PyPI clients never come from the system's pip.
pub fn venv_python(name: &str) -> std::path::PathBuf {
    std::env::var_os("CLOUDVIP_TEST_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("/opt/cloudvip-test"))
        .join(format!("venv-{name}/bin/python"))
}
