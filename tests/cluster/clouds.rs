//! The clouds as the cluster tests see them, behind one trait (`ClusterCloud`, one
//! implementation per cloud in tests/clouds/): a world whose NIC/VNIC MACs are the nodes'
//! eth0 MACs and whose metadata sources are the nodes' addresses, the `pcs resource create`
//! line (production parameters only: no endpoint, no CA), the assertion that the VIP and the
//! public IP are on exactly the active node and nothing else changed, and the cloud
//! console's hand. The scenarios take a `Cloud` and never name one.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::harness::Cluster;

/// How long the emulated cloud takes: nothing, or roughly what the real clouds take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latency {
    Zero,
    Realistic,
}

/// What a cluster test asks of a cloud.
pub trait ClusterCloud: Sync {
    /// For messages: "GCE", "OCI".
    fn name(&self) -> &'static str;
    /// The world of `n` nodes; `denied`: the node that may read but not move the VIP.
    fn world(
        &self,
        dir: &Path,
        n: usize,
        latency: Latency,
        denied: Option<usize>,
    ) -> cloudvip_sim::World;
    /// Once the cluster runs: what else makes `latency` (fault rules).
    fn started(&self, _c: &Cluster, _latency: Latency) {}
    /// When the client does not reach the VIP itself but through the cloud (an Elastic
    /// IP's NAT): set up that path and `Cluster::client_addr`.
    fn client_path(&self, _c: &mut Cluster) {}
    /// The `pcs resource create` parameters of this cloud, after ip=.
    fn create_params(&self) -> &'static [&'static str];
    /// The resource's `ip=`: the VIP, unless the cloud moves another address (an Elastic
    /// IP: then the client reaches it through `client_path`).
    fn ip_arg(&self) -> &'static str {
        "ip=10.66.0.100"
    }
    /// The emulator's view: the VIP and the public IP on node `active` only, and every
    /// other address where the world put it.
    fn check_state(&self, c: &Cluster, active: usize) -> Result<(), String>;
    /// After node `holder` stopped and a start elsewhere failed: nothing half-moved (the
    /// public IP stays where stop left it).
    fn check_released(&self, c: &Cluster, holder: usize) -> Result<(), String>;
    /// Someone in the cloud console takes the VIP away from node `active`.
    fn remove_vip_behind_back(&self, c: &Cluster, active: usize);
    /// The control plane's services (the metadata service stays), with the fault rules'
    /// cloud name.
    fn control_plane(&self) -> (&'static str, &'static [&'static str]);
    /// Does `reason` (an exit reason in `pcs status`) name what the cloud denied?
    fn names_denial(&self, reason: &str) -> bool;
}

/// The scenarios' operations: quick monitors at both depths, start and stop within 40 s.
pub const QUICK_OPS: &[&str] = &[
    "op",
    "start",
    "timeout=40s",
    "stop",
    "timeout=40s",
    "monitor",
    "interval=2s",
    "timeout=20s",
    "monitor",
    "interval=3s",
    "timeout=20s",
    "OCF_CHECK_LEVEL=10",
];

/// A cloud for the scenarios: `clouds::gce::GCE`, `clouds::oci::OCI`.
pub type Cloud = &'static dyn ClusterCloud;

impl dyn ClusterCloud {
    /// Start a cluster of `n` nodes on this cloud.
    pub fn cluster(&self, n: usize, latency: Latency) -> Cluster {
        self.start(n, latency, None)
    }

    /// A cluster whose node `denied` may read but not move the VIP (on GCE its service
    /// account's role lacks the permission, on OCI its instance principal's policy grants
    /// only `read`).
    pub fn cluster_denying(&self, n: usize, denied: usize) -> Cluster {
        self.start(n, Latency::Zero, Some(denied))
    }

    fn start(&self, n: usize, latency: Latency, denied: Option<usize>) -> Cluster {
        let mut c = Cluster::start(n, |d| self.world(d, n, latency, denied));
        self.started(&c, latency);
        self.client_path(&mut c);
        c
    }

    /// `pcs resource create <id> ...` with the instance parameters an admin types, nothing
    /// more: no endpoint, no CA bundle, no credentials.
    pub fn create_args<'a>(&self, id: &'a str) -> Vec<&'a str> {
        let mut args = vec![
            "pcs",
            "resource",
            "create",
            id,
            "ocf:rust:cloudvip",
            self.ip_arg(),
        ];
        args.extend(self.create_params());
        args
    }

    /// What an admin types, with quick monitors for the scenarios.
    pub fn create(&self, c: &Cluster) {
        self.create_with(c, &[]);
    }

    /// [`create`](Self::create) with more pcs arguments (`--disabled`, `meta ...`).
    pub fn create_with(&self, c: &Cluster, extra: &[&str]) {
        let mut args = self.create_args("VIP");
        args.extend(QUICK_OPS);
        args.extend(extra);
        c.cli(&args);
    }

    /// The resource as README "Outages longer than an operation" and pcs-examples/ create
    /// it: the agent's default operation timeouts (start 60 s: transient faults are retried
    /// for 54 s) and `failure-timeout=60s`, so that a start that failed during an outage
    /// is tried again a minute later without `pcs resource cleanup`.
    pub fn create_documented(&self, c: &Cluster) {
        let mut args = self.create_args("VIP");
        args.extend(["meta", "failure-timeout=60s"]);
        c.cli(&args);
    }

    /// Wait (bounded) for [`check_state`](ClusterCloud::check_state) to hold, panicking
    /// with the last difference.
    pub fn wait_state(&self, c: &Cluster, active: usize, within: Duration) {
        let end = Instant::now() + within;
        loop {
            match self.check_state(c, active) {
                Ok(()) => return,
                Err(e) => assert!(
                    Instant::now() < end,
                    "{}: cloud state wrong after {within:?}: {e}",
                    self.name()
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Fault rules that take the cloud's control plane down (the metadata service stays).
    pub fn api_outage(&self, c: &Cluster, kind: Value) {
        let (cloud, services) = self.control_plane();
        for s in services {
            let mut rule = kind.clone();
            rule["cloud"] = json!(cloud);
            rule["service"] = json!(s);
            c.fault(rule);
        }
    }
}
