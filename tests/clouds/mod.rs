//! One test world per cloud, built on the emulator's own world types (`cloudvip_sim::World`):
//! `gce.rs` and `oci.rs` each give a bare world of n nodes (the lab's VM i is node i: its
//! eth0 MAC, its metadata source address) and the standard holdings most tests start from;
//! a test changes what it needs through the typed fields. Also here: the one client of the
//! emulator's admin API.

pub mod aws;
pub mod gce;
pub mod oci;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// A piece of a world from a JSON literal, so that the emulator's own serde defaults fill
/// what a test leaves out (a struct literal would have to repeat them).
pub fn spec<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("world part {v}: {e}"))
}

/// The object in the JSON array `list` (of the emulator's state) whose `key` is `value`.
pub fn find<'v>(list: &'v Value, key: &str, value: &str) -> Option<&'v Value> {
    list.as_array()?.iter().find(|x| x[key] == value)
}

/// `[server]` with the test CA's certificate in `dir` (made by `cloudvip_sim::tls::generate`).
pub fn server(dir: &Path) -> cloudvip_sim::world::ServerConfig {
    cloudvip_sim::world::ServerConfig {
        tls_cert: Some(dir.join("server.pem")),
        tls_key: Some(dir.join("server.key")),
        ..Default::default()
    }
}

/// The emulator's admin API at `url` (plain HTTP; from inside the cloud namespace when the
/// emulator listens there). Panics unless the answer is 2xx.
pub fn admin(url: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 2"),
        "admin {method} {path}: {head}\n{body}"
    );
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// The part of a `TestCloud` impl every lab writes alike: its cloud and VIP, and its own
/// `new` and `agent` as the trait's `start` and `agent`.
/// A cloud's lab type: the [`crate::cloudlab::CloudLab`] it derefs to and the cloud's API
/// endpoint as the agent is given it.
macro_rules! lab_struct {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name {
            pub c: crate::cloudlab::CloudLab,
            pub api: String,
        }

        impl std::ops::Deref for $name {
            type Target = crate::cloudlab::CloudLab;
            fn deref(&self) -> &crate::cloudlab::CloudLab {
                &self.c
            }
        }
    };
}
pub(crate) use lab_struct;

macro_rules! lab_basics {
    ($cloud:literal, $vip:expr) => {
        const CLOUD: &'static str = $cloud;
        const VIP: &'static str = $vip;
        fn start() -> Self {
            Self::new()
        }
        fn agent(&self, i: usize, action: &str, params: &[(&str, &str)]) -> crate::util::Agent {
            Self::agent(self, i, action, params)
        }
    };
}
pub(crate) use lab_basics;

/// What a scenario that runs on every cloud needs of its lab (`cloudtest!`): the lab, the
/// agent with the cloud's parameters, and the cloud's own view of where the VIP is.
pub trait TestCloud: std::ops::Deref<Target = crate::cloudlab::CloudLab> + Sized {
    /// The cloud parameter's value, e.g. "gce".
    const CLOUD: &'static str;
    /// The VIP, as the tests pass it in `ip`.
    const VIP: &'static str;
    fn cloud(&self) -> &'static str {
        Self::CLOUD
    }
    /// The standard lab of this cloud (VM 1 holds the VIP).
    fn start() -> Self;
    fn agent(&self, i: usize, action: &str, params: &[(&str, &str)]) -> crate::util::Agent;
    fn vip(&self) -> &'static str {
        Self::VIP
    }
    /// The parameters ocf-tester gets (`-o NAME=VALUE`) besides ip and nic.
    fn tester_params(&self) -> Vec<String>;
    /// Does the cloud route the VIP to VM `i`?
    fn vip_at(&self, i: usize) -> bool;
    /// Faults the cloud's services throw that a start rides out inside its deadline.
    fn transient_faults(&self) -> Vec<Value>;
    /// The parameters of a start under `transient_faults`.
    fn fault_params(&self) -> Vec<(&'static str, &'static str)>;
    /// Before each fault: what makes it matter (e.g. a token that must be fetched anew).
    fn before_fault(&self) {}
    /// After a start under a fault: everything besides the VIP that must have followed it.
    fn check_extras(&self, _fault: &Value) {}
}

/// A scenario run once per cloud: `cloudtest!(name, |lab| …)` gives `name::gce`,
/// `name::oci` and `name::aws`, each with that cloud's standard lab (the `rgtest!` / `tests_with_ring` idea).
macro_rules! cloudtest {
    ($name:ident, |$lab:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn scenario<C: $crate::clouds::TestCloud>($lab: C) $body
            #[test]
            fn gce() {
                scenario($crate::clouds::gce::GceLab::start());
            }
            #[test]
            fn oci() {
                scenario($crate::clouds::oci::OciLab::start());
            }
            #[test]
            fn aws() {
                scenario($crate::clouds::aws::AwsLab::start());
            }
        }
    };
}
pub(crate) use cloudtest;
