//! The GCE test world: project `my-project` in us-central1, the default network's subnet
//! 10.128.0.0/20 with a secondary range `vips`, the service account `cloudvip@` with every
//! permission, node i = instance node-{a,b,c,…} in zone us-central1-{a,b,c,…} whose nic0 has
//! the lab's MAC of VM i. The metadata server is shared on 169.254.169.254 (instances told
//! apart by source address, as GCE does) and the Compute API listens at 10.66.0.254.

use std::path::Path;

use serde_json::Value;

use cloudvip_sim::gce::world::{
    AccessConfigSpec, AddressSpec, AliasSpec, GceWorld, InstanceSpec, ServiceAccount,
};
use cloudvip_sim::World;
use serde_json::json;

use super::spec;
use crate::cloudlab::CloudLab;
use crate::netns::Lab;
use crate::util::Agent;

pub const SA: &str = "cloudvip@my-project.iam.gserviceaccount.com";
/// The VIP of the standard world: node-a holds it, with the static external address.
pub const VIP: &str = "10.128.0.100";
pub const PUBLIC: &str = "203.0.113.10";

/// Zones and nothing else: no instances, no addresses; operations take 20 ms pending and
/// 80 ms running.
pub fn base(dir: &Path, zones: usize) -> World {
    let zones: Vec<String> = (0..zones)
        .map(|z| format!("us-central1-{}", letter(z)))
        .collect();
    World {
        server: super::server(dir),
        gce: Some(spec::<GceWorld>(json!({
            "project": "my-project",
            "project_number": 123456789012u64,
            "region": "us-central1",
            "zones": zones,
            "api_listen": "10.66.0.254:0",
            "metadata_per_instance": false,
            "metadata_listen": "169.254.169.254:80",
            "operations": { "pending_ms": 20, "running_ms": 80 },
            "networks": [{ "name": "default", "subnets": [{
                "name": "default",
                "ip_cidr_range": "10.128.0.0/20",
                "secondary_ranges": [{ "range_name": "vips", "ip_cidr_range": "10.200.0.0/24" }],
            }]}],
            "service_accounts": [{ "email": SA }],
        }))),
        ..Default::default()
    }
}

/// `n` instances in as many zones, holding nothing but their primary addresses
/// (node i: 10.128.0.(9+i)).
pub fn bare(dir: &Path, n: usize) -> World {
    let mut w = base(dir, n);
    for i in 1..=n {
        gce(&mut w).instances.push(instance(i));
    }
    w
}

/// The world most GCE tests start from, three nodes: node-a holds the VIP (and the static
/// external IP `vip-ext`) beside a range of its own, node-b has an alias and an ephemeral
/// external IP of its own, node-c nothing.
pub fn standard(dir: &Path) -> World {
    let mut w = bare(dir, 3);
    let a = nic(&mut w, 1);
    a.alias_ip_ranges = vec![
        alias(&format!("{VIP}/32"), None),
        alias("10.200.0.8/29", Some("vips")),
    ];
    a.access_configs = vec![access_config("External NAT", Some(PUBLIC))];
    let b = nic(&mut w, 2);
    b.alias_ip_ranges = vec![alias("10.128.0.51/32", None)];
    b.access_configs = vec![access_config("external-nat", None)];
    gce(&mut w).addresses.push(address("vip-ext", PUBLIC));
    w
}

super::lab_struct! {
    /// The GCE lab the backend's tests share: the standard world with labels and a read-only
    /// account (see `world`), the Compute API's URL.
    GceLab
}

/// The standard world; every node carries the label cluster=ha1, and node-c runs as a
/// service account that may read but not change anything.
fn world(dir: &std::path::Path) -> cloudvip_sim::World {
    let mut w = standard(dir);
    gce(&mut w).service_accounts.push(account(
        "readonly@my-project.iam.gserviceaccount.com",
        Some(&[
            "compute.instances.get",
            "compute.instances.list",
            "compute.zoneOperations.get",
            "compute.zoneOperations.list",
            "compute.subnetworks.get",
            "compute.addresses.get",
            "compute.addresses.list",
        ]),
    ));
    for i in 1..=3 {
        node(&mut w, i)
            .labels
            .insert("cluster".into(), "ha1".into());
    }
    node(&mut w, 3).service_account = Some("readonly@my-project.iam.gserviceaccount.com".into());
    w
}

impl GceLab {
    pub fn new() -> GceLab {
        let c = CloudLab::start(world);
        let api = c.endpoints["gce"]["compute"].as_str().unwrap().to_owned();
        GceLab { c, api }
    }

    /// The agent on node `i` (1 = node-a) with the parameters every GCE test shares.
    pub fn agent(&self, i: usize, action: &str, params: &[(&str, &str)]) -> Agent {
        self.c
            .agent(i, action)
            .params(&[("ip", VIP), ("cloud", "gce"), ("api_endpoint", &self.api)])
            .params(params)
    }

    pub fn instance(&self, name: &str) -> Value {
        let state = self.admin("GET", "/admin/state", None);
        let all = state["gce"]["instances"].clone();
        let list: Vec<Value> = match all {
            Value::Array(a) => a,
            Value::Object(o) => o.into_iter().map(|(_, v)| v).collect(),
            _ => panic!("no instances in state: {state}"),
        };
        list.into_iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    pub fn aliases(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self.instance(name)["networkInterfaces"][0]["aliasIpRanges"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| a["ipCidrRange"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    }

    pub fn nat_ips(&self, name: &str) -> Vec<String> {
        self.instance(name)["networkInterfaces"][0]["accessConfigs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| a["natIP"].as_str().unwrap_or("-").to_owned())
            .collect()
    }
}

/// The name of node `i` (1-based): node-a, node-b, …
pub fn name(i: usize) -> String {
    format!("node-{}", letter(i - 1))
}

fn letter(z: usize) -> char {
    char::from(b'a' + z as u8)
}

/// Node `i`: in zone i, service account `cloudvip@`, nic0 with the lab's MAC of VM i.
pub fn instance(i: usize) -> InstanceSpec {
    spec(json!({
        "name": name(i),
        "zone": format!("us-central1-{}", letter(i - 1)),
        "service_account": SA,
        "metadata_source": format!("10.66.0.{i}"),
        "nics": [{ "network_ip": format!("10.128.0.{}", 9 + i), "mac": Lab::mac(i) }],
    }))
}

pub fn gce(w: &mut World) -> &mut GceWorld {
    w.gce.as_mut().expect("a GCE world")
}

/// Instance of node `i` (1-based, in the order the world lists them).
pub fn node(w: &mut World, i: usize) -> &mut InstanceSpec {
    &mut gce(w).instances[i - 1]
}

/// nic0 of node `i`.
pub fn nic(w: &mut World, i: usize) -> &mut cloudvip_sim::gce::world::NicSpec {
    &mut node(w, i).nics[0]
}

pub fn alias(cidr: &str, range: Option<&str>) -> AliasSpec {
    AliasSpec {
        ip_cidr_range: cidr.to_owned(),
        subnetwork_range_name: range.map(str::to_owned),
    }
}

/// An access config; `nat: None` is an ephemeral external IP.
pub fn access_config(name: &str, nat: Option<&str>) -> AccessConfigSpec {
    spec(json!({ "name": name, "nat_ip": nat }))
}

/// A static external address.
pub fn address(name: &str, ip: &str) -> AddressSpec {
    spec(json!({ "name": name, "address": ip }))
}

/// A service account with only `permissions` (`None`: every permission).
pub fn account(email: &str, permissions: Option<&[&str]>) -> ServiceAccount {
    ServiceAccount {
        email: email.to_owned(),
        permissions: permissions.map(|p| p.iter().map(|s| s.to_string()).collect()),
    }
}

impl super::TestCloud for GceLab {
    super::lab_basics!("gce", VIP);
    fn tester_params(&self) -> Vec<String> {
        vec![
            "cloud=gce".into(),
            format!("api_endpoint={}", self.api),
            format!("ca_bundle={}", self.ca),
            "public_ip=vip-ext".into(),
        ]
    }
    fn vip_at(&self, i: usize) -> bool {
        self.aliases(&name(i)).contains(&format!("{VIP}/32"))
    }
    fn transient_faults(&self) -> Vec<Value> {
        vec![
            json!({"kind": "error", "status": 503, "api": "compute.instances.updateNetworkInterface", "count": 2}),
            json!({"kind": "rate_limit", "service": "compute", "count": 3}),
            json!({"kind": "fingerprint_race", "count": 1}),
            json!({"kind": "operation_error", "code": "IP_IN_USE_BY_ANOTHER_RESOURCE", "message": "IP '10.128.0.100/32' is already being used by another resource.", "count": 1}),
            json!({"kind": "operation_error", "code": "INTERNAL_ERROR", "message": "Internal error.", "count": 1}),
            json!({"kind": "reset", "service": "compute", "count": 2}),
            json!({"kind": "hang", "ms": 12000, "service": "compute", "count": 1}),
            json!({"kind": "error", "status": 503, "service": "metadata", "count": 2}),
            json!({"kind": "latency", "ms": 300, "service": "compute"}),
        ]
    }
    fn fault_params(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }
}

// ---- the cluster tests' GCE ------------------------------------------------------------

/// The GCE permission that moving the VIP's alias IP range needs.
pub const MOVE_PERMISSION: &str = "compute.instances.updateNetworkInterface";
/// A custom role with everything cloudvip uses except [`MOVE_PERMISSION`].
const LIMITED_SA: &str = "limited@my-project.iam.gserviceaccount.com";

/// GCE for `tests/cluster`: nodes node1..n on the lab's own subnet 10.66.0.0/24 (their
/// kernel addresses), in zones a, b, c in turn, labelled cluster=ha1; node1 has a range of
/// its own that no failover may touch; the static external address `vip-public`; the
/// Compute API on 443 under Google's host names.
pub struct Gce;
pub const GCE: crate::cluster::clouds::Cloud = &Gce;

/// node `i`'s alias IP ranges (sorted) and external IPs, as the emulator has them.
pub fn cluster_nic(st: &Value, i: usize) -> Result<(Vec<String>, Vec<String>), String> {
    let list: Vec<Value> = match &st["gce"]["instances"] {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o.values().cloned().collect(),
        _ => return Err(format!("no instances: {st}")),
    };
    let inst = list
        .iter()
        .find(|x| x["name"] == format!("node{i}"))
        .ok_or(format!("no node{i}"))?;
    let nic = &inst["networkInterfaces"][0];
    let mut aliases: Vec<String> = nic["aliasIpRanges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["ipCidrRange"].as_str().unwrap_or("").to_owned())
        .collect();
    aliases.sort();
    let nat: Vec<String> = nic["accessConfigs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["natIP"].as_str().unwrap_or("-").to_owned())
        .collect();
    Ok((aliases, nat))
}

impl Gce {
    /// Every node's NIC: the VIP's alias on `vip` only, the external IP on `public` only,
    /// node1's own range untouched.
    fn nics_are(
        c: &crate::cluster::harness::Cluster,
        vip: Option<usize>,
        public: usize,
    ) -> Result<(), String> {
        let st = c.admin("GET", "/admin/state", None);
        for i in 1..=c.n {
            let (aliases, nat) = cluster_nic(&st, i)?;
            let mut want_alias: Vec<String> = Vec::new();
            if vip == Some(i) {
                want_alias.push(format!("{}/32", crate::cluster::harness::VIP));
            }
            if i == 1 {
                want_alias.push("10.200.0.8/29".into());
            }
            want_alias.sort();
            let want_nat: Vec<String> = if i == public {
                vec![PUBLIC.into()]
            } else {
                vec![]
            };
            if aliases != want_alias || nat != want_nat {
                return Err(format!(
                    "node{i}: alias ranges {aliases:?} (want {want_alias:?}), external \
                     IPs {nat:?} (want {want_nat:?}); VIP on {vip:?}, public IP on node{public}"
                ));
            }
        }
        Ok(())
    }
}

impl crate::cluster::clouds::ClusterCloud for Gce {
    fn name(&self) -> &'static str {
        "GCE"
    }

    fn world(
        &self,
        dir: &Path,
        n: usize,
        latency: crate::cluster::clouds::Latency,
        denied: Option<usize>,
    ) -> World {
        use crate::cluster::clouds::Latency;
        let mut w = base(dir, 3);
        let g = gce(&mut w);
        g.api_listen = "10.66.0.254:443".parse().unwrap();
        (g.operations.pending_ms, g.operations.running_ms) = match latency {
            Latency::Zero => (0, 0),
            Latency::Realistic => (300, 700),
        };
        g.networks[0].subnets[0].ip_cidr_range = spec(json!("10.66.0.0/24"));
        g.service_accounts.push(account(
            LIMITED_SA,
            Some(&[
                "compute.instances.get",
                "compute.instances.list",
                "compute.instances.aggregatedList",
                "compute.instances.addAccessConfig",
                "compute.instances.deleteAccessConfig",
                "compute.instances.use",
                "compute.addresses.*",
                "compute.zoneOperations.*",
                "compute.zones.*",
                "compute.regions.*",
                "compute.subnetworks.*",
            ]),
        ));
        g.addresses.push(address("vip-public", PUBLIC));
        for i in 1..=n {
            let mut node = instance(i);
            node.name = format!("node{i}");
            node.zone = format!("us-central1-{}", letter((i - 1) % 3));
            node.labels.insert("cluster".into(), "ha1".into());
            if denied == Some(i) {
                node.service_account = Some(LIMITED_SA.into());
            }
            node.nics[0].network_ip = format!("10.66.0.{i}").parse().unwrap();
            if i == 1 {
                node.nics[0].alias_ip_ranges = vec![alias("10.200.0.8/29", Some("vips"))];
            }
            g.instances.push(node);
        }
        w
    }

    fn create_params(&self) -> &'static [&'static str] {
        &[
            "cloud=gce",
            "peer_label=cluster=ha1",
            "public_ip=vip-public",
        ]
    }

    fn check_state(
        &self,
        c: &crate::cluster::harness::Cluster,
        active: usize,
    ) -> Result<(), String> {
        Gce::nics_are(c, Some(active), active)
    }

    /// Stop removed the alias (it is on no NIC); the external IP stays with `holder`.
    fn check_released(
        &self,
        c: &crate::cluster::harness::Cluster,
        holder: usize,
    ) -> Result<(), String> {
        Gce::nics_are(c, None, holder)
    }

    fn remove_vip_behind_back(&self, c: &crate::cluster::harness::Cluster, active: usize) {
        let aliases = if active == 1 {
            json!([{"ipCidrRange": "10.200.0.8/29", "subnetworkRangeName": "vips"}])
        } else {
            json!([])
        };
        c.admin(
            "POST",
            &format!("/admin/gce/instances/node{active}/nics/nic0"),
            Some(json!({ "aliasIpRanges": aliases })),
        );
    }

    fn control_plane(&self) -> (&'static str, &'static [&'static str]) {
        ("gce", &["compute", "oauth"])
    }

    fn names_denial(&self, reason: &str) -> bool {
        reason.contains(MOVE_PERMISSION)
    }
}
