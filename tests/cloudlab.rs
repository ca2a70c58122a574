//! A cloud test world on real kernel networking: three VMs (namespaces 1-3, eth0 MACs
//! 02:66:00:00:00:0i) on one segment, and cloudvip-sim in-process in a fourth "cloud"
//! namespace: its metadata services on 169.254.169.254 (told apart by source address, as
//! the clouds do) and its APIs over HTTPS at 10.66.0.254 with a test CA. The agent runs with
//! its production defaults but for the endpoint and CA parameters.

use std::path::Path;

use serde_json::Value;

use crate::netns::Lab;
use crate::util::Agent;

pub struct CloudLab {
    // Field order is drop order: the emulator stops before its namespace goes.
    _sim: cloudvip_sim::SimHandle,
    pub lab: Lab,
    pub dir: tempfile::TempDir,
    pub ca: String,
    pub endpoints: Value,
    admin: String,
}

impl CloudLab {
    /// `world` gets the directory holding `server.pem`/`server.key` (see `clouds::server`).
    pub fn start(world: impl FnOnce(&Path) -> cloudvip_sim::World) -> CloudLab {
        let mut lab = Lab::new(3);
        let cloud = lab.add_cloud();
        let dir = tempfile::tempdir().unwrap();
        cloudvip_sim::tls::generate(dir.path(), &["10.66.0.254".to_owned()]).unwrap();
        Lab::enter(&cloud);
        let sim = cloudvip_sim::Sim::start(world(dir.path())).unwrap();
        let endpoints = sim.endpoints();
        let admin = sim.admin_url();
        let ca = dir.path().join("ca.pem").display().to_string();
        CloudLab {
            _sim: sim,
            lab,
            dir,
            ca,
            endpoints,
            admin,
        }
    }

    /// The agent on VM `i` with what every cloud test shares.
    pub fn agent(&self, i: usize, action: &str) -> Agent {
        Agent::new(action)
            .params(&[("nic", "eth0"), ("ca_bundle", &self.ca), ("arp_count", "1")])
            .env("HA_RSCTMP", self.dir.path().to_str().unwrap())
            .env("OCF_RESKEY_CRM_meta_timeout", "20000")
            .netns(self.lab.ns(i))
    }

    /// The admin API (plain HTTP inside the cloud namespace, which this thread entered).
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        crate::clouds::admin(&self.admin, method, path, body)
    }

    /// The request log since the last `clear_log`.
    pub fn log(&self) -> Vec<Value> {
        self.admin("GET", "/admin/log", None)["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn clear_log(&self) {
        self.admin("DELETE", "/admin/log", None);
    }

    /// Control-plane calls (Compute, OCI Networking) since the last `clear_log`.
    pub fn api_calls(&self) -> usize {
        self.log().iter().filter(|e| e["api_call"] == true).count()
    }

    pub fn fault(&self, rule: Value) {
        self.admin("POST", "/admin/faults", Some(rule));
    }

    pub fn clear_faults(&self) {
        self.admin("DELETE", "/admin/faults", None);
    }

    /// Did the first fault rule fire? A selector that matches nothing proves nothing.
    pub fn fault_fired(&self) -> bool {
        self.admin("GET", "/admin/faults", None)["faults"][0]["hits"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    }

    pub fn holds_locally(&self, i: usize, ip: &str) -> bool {
        self.lab.addrs(i).contains(&format!("inet {ip}/32"))
    }
}
