//! The two emulated clouds as the cluster tests see them: a world file whose NIC/VNIC MACs
//! are the nodes' eth0 MACs and whose metadata sources are the nodes' addresses, the
//! `pcs resource create` line (production parameters only: no endpoint, no CA), the
//! assertion that the VIP and the public IP are on exactly the active node and nothing
//! else changed, and the cloud console's hand.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::harness::{Cluster, VIP};
use crate::util::sh;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    Gce,
    Oci,
}

/// How long the emulated cloud takes: nothing, or roughly what the real clouds take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latency {
    Zero,
    Realistic,
}

pub const PUBLIC: &str = "203.0.113.10";
const SPARE: &str = "203.0.113.11";
const OCI_USER: &str = "ocid1.user.oc1..aaaaaaaaconsoleuser";
const OCI_TENANCY: &str = "ocid1.tenancy.oc1..aaaaaaaasimtenancy";
const OTHER_OCI_IP: &str = "10.66.0.50";

fn vnic(i: usize) -> String {
    format!("ocid1.vnic.oc1.iad.aaaaaaaanode{i}")
}

impl Cloud {
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Gce => "GCE",
            Cloud::Oci => "OCI",
        }
    }

    /// Start a cluster of `n` nodes on this cloud.
    pub fn cluster(self, n: usize, latency: Latency) -> Cluster {
        self.start(n, latency, None)
    }

    /// A cluster whose node `denied` may read but not move the VIP: on GCE its service
    /// account's role lacks [`MOVE_PERMISSION`], on OCI its instance principal's policy
    /// grants only `read`.
    pub fn cluster_denying(self, n: usize, denied: usize) -> Cluster {
        self.start(n, Latency::Zero, Some(denied))
    }

    fn start(self, n: usize, latency: Latency, denied: Option<usize>) -> Cluster {
        let c = Cluster::start(n, |d| match self {
            Cloud::Gce => gce_world(d, n, latency, denied),
            Cloud::Oci => oci_world(d, n, latency, denied),
        });
        if self == Cloud::Oci && latency == Latency::Realistic {
            // Every control-plane call takes a while too, not only the public IP.
            for service in ["networking", "auth"] {
                c.fault(json!({"kind": "latency", "ms": 150, "cloud": "oci", "service": service}));
            }
        }
        c
    }

    /// `pcs resource create <id> ...` with the instance parameters an admin types, nothing
    /// more: no endpoint, no CA bundle, no credentials.
    pub fn create_args(self, id: &str) -> Vec<&str> {
        let mut args = vec![
            "pcs",
            "resource",
            "create",
            id,
            "ocf:rust:cloudvip",
            "ip=10.66.0.100",
        ];
        match self {
            Cloud::Gce => args.extend([
                "cloud=gce",
                "peer_label=cluster=ha1",
                "public_ip=vip-public",
            ]),
            Cloud::Oci => args.extend(["cloud=oci", "public_ip=203.0.113.10"]),
        }
        args
    }

    /// What an admin types, with quick monitors for the scenarios.
    pub fn create(self, c: &Cluster) {
        self.create_with(c, &[]);
    }

    /// [`create`](Self::create) with more pcs arguments (`--disabled`, `meta ...`).
    pub fn create_with(self, c: &Cluster, extra: &[&str]) {
        let mut args = self.create_args("VIP");
        args.extend([
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
        ]);
        args.extend(extra);
        c.cli(&args);
    }

    /// The resource as README "Outages longer than an operation" and pcs-examples/ create
    /// it: the agent's default operation timeouts (start 60 s: transient faults are retried
    /// for 54 s) and `failure-timeout=60s`, so that a start that failed during an outage
    /// is tried again a minute later without `pcs resource cleanup`.
    pub fn create_documented(self, c: &Cluster) {
        let mut args = self.create_args("VIP");
        args.extend(["meta", "failure-timeout=60s"]);
        c.cli(&args);
    }

    /// The emulator's view: the VIP and the public IP on node `active` only, and every
    /// other address where the world put it.
    pub fn check_state(self, c: &Cluster, active: usize) -> Result<(), String> {
        let st = c.admin("GET", "/admin/state", None);
        match self {
            Cloud::Gce => {
                for i in 1..=c.n {
                    let (aliases, nat) = gce_nic(&st, i)?;
                    let mut want_alias: Vec<String> = Vec::new();
                    if i == active {
                        want_alias.push(format!("{VIP}/32"));
                    }
                    if i == 1 {
                        // A range of node1's that no failover may touch.
                        want_alias.push("10.200.0.8/29".into());
                    }
                    want_alias.sort();
                    let want_nat: Vec<String> = if i == active {
                        vec![PUBLIC.into()]
                    } else {
                        vec![]
                    };
                    if aliases != want_alias || nat != want_nat {
                        return Err(format!(
                            "node{i}: alias ranges {aliases:?} (want {want_alias:?}), external \
                             IPs {nat:?} (want {want_nat:?}); active node{active}"
                        ));
                    }
                }
            }
            Cloud::Oci => {
                let st = &st["oci"];
                let ips = st["privateIps"].as_array().cloned().unwrap_or_default();
                let by_ip = |ip: &str| ips.iter().find(|p| p["ipAddress"] == ip).cloned();
                let vip = by_ip(VIP).ok_or("the VIP private IP does not exist")?;
                if vip["vnicId"] != vnic(active).as_str() {
                    return Err(format!(
                        "VIP private IP on {} (want {}, node{active})",
                        vip["vnicId"],
                        vnic(active)
                    ));
                }
                let other = by_ip(OTHER_OCI_IP).ok_or("the other private IP is gone")?;
                if other["vnicId"] != vnic(2).as_str() {
                    return Err(format!("{OTHER_OCI_IP} moved: {other}"));
                }
                // n primaries + the VIP + the other one; nothing created, nothing lost.
                if ips.len() != c.n + 2 {
                    return Err(format!(
                        "{} private IPs (want {}): {ips:?}",
                        ips.len(),
                        c.n + 2
                    ));
                }
                for i in 1..=c.n {
                    let p = by_ip(&format!("10.66.0.1{i}")).ok_or("a primary IP is gone")?;
                    if p["vnicId"] != vnic(i).as_str() {
                        return Err(format!("primary of node{i} moved: {p}"));
                    }
                }
                let pubs = st["publicIps"].as_array().cloned().unwrap_or_default();
                let by_pub = |ip: &str| pubs.iter().find(|p| p["ipAddress"] == ip).cloned();
                let public = by_pub(PUBLIC).ok_or("no public IP")?;
                if public["assignedEntityId"] != vip["id"] || public["lifecycleState"] != "ASSIGNED"
                {
                    return Err(format!(
                        "public IP {PUBLIC}: {public} (want ASSIGNED to {})",
                        vip["id"]
                    ));
                }
                let spare = by_pub(SPARE).ok_or("no spare public IP")?;
                if !spare["assignedEntityId"].is_null() && spare["assignedEntityId"] != "" {
                    return Err(format!("the spare public IP got assigned: {spare}"));
                }
            }
        }
        Ok(())
    }

    /// GCE: node `i`'s alias IP ranges (sorted) and external IPs, as the emulator has them.
    pub fn gce_nic(c: &Cluster, i: usize) -> Result<(Vec<String>, Vec<String>), String> {
        gce_nic(&c.admin("GET", "/admin/state", None), i)
    }

    /// Wait (bounded) for [`check_state`](Self::check_state) to hold, panicking with the
    /// last difference.
    pub fn wait_state(self, c: &Cluster, active: usize, within: Duration) {
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

    /// Someone in the cloud console takes the VIP away from node `active`.
    pub fn remove_vip_behind_back(self, c: &Cluster, active: usize) {
        match self {
            Cloud::Gce => {
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
            Cloud::Oci => {
                // The emulator's admin API has no route that changes private IPs, so the
                // console user deletes it through the API with their own key (Oracle's SDK).
                let st = c.admin("GET", "/admin/state", None);
                let id = st["oci"]["privateIps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["ipAddress"] == VIP)
                    .unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let d = c.state().display().to_string();
                let fp = std::fs::read_to_string(c.state().join("console_fp"))
                    .unwrap()
                    .trim()
                    .to_owned();
                let script = format!(
                    r#"
import oci
cfg = {{"user": "{OCI_USER}", "tenancy": "{OCI_TENANCY}", "fingerprint": "{fp}",
        "key_file": "{d}/console.pem", "region": "us-ashburn-1"}}
vn = oci.core.VirtualNetworkClient(cfg, service_endpoint="https://10.66.0.254")
vn.base_client.session.verify = "{d}/ca.pem"
print(vn.delete_private_ip("{id}").status)
"#
                );
                // requests lets REQUESTS_CA_BUNDLE override a session's `verify`.
                let ca = format!("{d}/ca.pem");
                let out = std::process::Command::new("ip")
                    .args(["netns", "exec", &c.cloud_ns, "python3", "-c", &script])
                    .env("REQUESTS_CA_BUNDLE", &ca)
                    .env("CURL_CA_BUNDLE", &ca)
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                assert_eq!(
                    text.trim(),
                    "204",
                    "DeletePrivateIp: {text}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    /// Fault rules that take the cloud's control plane down (the metadata service stays).
    pub fn api_outage(self, c: &Cluster, kind: Value) {
        let services: &[&str] = match self {
            Cloud::Gce => &["compute", "oauth"],
            Cloud::Oci => &["networking", "auth"],
        };
        let cloud = match self {
            Cloud::Gce => "gce",
            Cloud::Oci => "oci",
        };
        for s in services {
            let mut rule = kind.clone();
            rule["cloud"] = json!(cloud);
            rule["service"] = json!(s);
            c.fault(rule);
        }
    }
}

fn gce_nic(st: &Value, i: usize) -> Result<(Vec<String>, Vec<String>), String> {
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

/// The GCE permission that moving the VIP's alias IP range needs.
pub const MOVE_PERMISSION: &str = "compute.instances.updateNetworkInterface";
/// A custom role with everything cloudvip uses except [`MOVE_PERMISSION`].
const LIMITED_SA: &str = "limited@my-project.iam.gserviceaccount.com";

fn gce_world(d: &Path, n: usize, latency: Latency, denied: Option<usize>) -> String {
    let (pending, running) = match latency {
        Latency::Zero => (0, 0),
        Latency::Realistic => (300, 700),
    };
    let mut w = format!(
        r#"
[server]
tls_cert = "{d}/server.pem"
tls_key = "{d}/server.key"

[gce]
project = "my-project"
project_number = 123456789012
region = "us-central1"
zones = ["us-central1-a", "us-central1-b", "us-central1-c"]
api_listen = "10.66.0.254:443"
metadata_per_instance = false
metadata_listen = "169.254.169.254:80"

[gce.operations]
pending_ms = {pending}
running_ms = {running}

[[gce.networks]]
name = "default"
[[gce.networks.subnets]]
name = "default"
ip_cidr_range = "10.66.0.0/24"
secondary_ranges = [{{ range_name = "vips", ip_cidr_range = "10.200.0.0/24" }}]

[[gce.service_accounts]]
email = "cloudvip@my-project.iam.gserviceaccount.com"

[[gce.service_accounts]]
email = "{LIMITED_SA}"
permissions = ["compute.instances.get", "compute.instances.list", "compute.instances.aggregatedList", "compute.instances.addAccessConfig", "compute.instances.deleteAccessConfig", "compute.instances.use", "compute.addresses.*", "compute.zoneOperations.*", "compute.zones.*", "compute.regions.*", "compute.subnetworks.*"]

[[gce.addresses]]
name = "vip-public"
address = "{PUBLIC}"
"#,
        d = d.display()
    );
    let zones = ["us-central1-a", "us-central1-b", "us-central1-c"];
    for i in 1..=n {
        let alias = if i == 1 {
            r#"alias_ip_ranges = [{ ip_cidr_range = "10.200.0.8/29", subnetwork_range_name = "vips" }]"#
        } else {
            ""
        };
        let sa = if denied == Some(i) {
            LIMITED_SA
        } else {
            "cloudvip@my-project.iam.gserviceaccount.com"
        };
        w += &format!(
            r#"
[[gce.instances]]
name = "node{i}"
zone = "{zone}"
labels = {{ cluster = "ha1" }}
service_account = "{sa}"
metadata_source = "10.66.0.{i}"
[[gce.instances.nics]]
network_ip = "10.66.0.{i}"
mac = "{mac}"
{alias}
"#,
            zone = zones[(i - 1) % 3],
            mac = crate::netns::Lab::mac(i),
        );
    }
    w
}

/// The console user's API key (for the "behind Pacemaker's back" change); returns the
/// fingerprint and writes it to `console_fp`.
fn console_key(d: &Path) -> String {
    let dd = d.display();
    sh(&[
        "openssl",
        "genrsa",
        "-out",
        &format!("{dd}/console.pem"),
        "2048",
    ]);
    sh(&["chmod", "600", &format!("{dd}/console.pem")]);
    sh(&[
        "openssl",
        "rsa",
        "-in",
        &format!("{dd}/console.pem"),
        "-pubout",
        "-out",
        &format!("{dd}/console_public.pem"),
    ]);
    let out = sh(&[
        "sh",
        "-c",
        &format!(
            "openssl rsa -in {dd}/console.pem -pubout -outform DER 2>/dev/null | openssl md5 -c"
        ),
    ]);
    let fp = out.rsplit(' ').next().unwrap().trim().to_owned();
    std::fs::write(d.join("console_fp"), &fp).unwrap();
    fp
}

fn oci_world(d: &Path, n: usize, latency: Latency, denied: Option<usize>) -> String {
    let fp = console_key(d);
    let assign_ms = match latency {
        Latency::Zero => 0,
        Latency::Realistic => 1000,
    };
    let dd = d.display();
    let mut w = format!(
        r#"
[server]
tls_cert = "{dd}/server.pem"
tls_key = "{dd}/server.key"

[oci]
tenancy = "{OCI_TENANCY}"
compartment = "ocid1.compartment.oc1..aaaaaaaasimcompartment"
region = "us-ashburn-1"
api_listen = "10.66.0.254:443"
metadata_per_instance = false
metadata_listen = "169.254.169.254:80"
public_ip_assign_ms = {assign_ms}

[[oci.vcns]]
id = "ocid1.vcn.oc1.iad.aaaaaaaasimvcn"
cidr = "10.66.0.0/16"

[[oci.subnets]]
id = "ocid1.subnet.oc1.iad.aaaaaaaasimsubnet"
vcn = "ocid1.vcn.oc1.iad.aaaaaaaasimvcn"
cidr = "10.66.0.0/24"

[[oci.api_keys]]
user = "{OCI_USER}"
public_key_file = "{dd}/console_public.pem"
fingerprint = "{fp}"
"#
    );
    // OCI reserves a subnet's first two addresses, so the VNICs' primary IPs are not the
    // nodes' kernel addresses (10.66.0.i); the agent matches its VNIC by MAC anyway.
    for i in 1..=n {
        let access = if denied == Some(i) { "read" } else { "manage" };
        w += &format!(
            r#"
[[oci.instances]]
id = "ocid1.instance.oc1.iad.aaaaaaaanode{i}"
display_name = "node{i}"
metadata_source = "10.66.0.{i}"
access = "{access}"
[[oci.instances.vnics]]
id = "{vnic}"
mac = "{mac}"
subnet = "ocid1.subnet.oc1.iad.aaaaaaaasimsubnet"
private_ip = "10.66.0.1{i}"
"#,
            vnic = vnic(i),
            mac = crate::netns::Lab::mac(i),
        );
    }
    w += &format!(
        r#"
[[oci.private_ips]]
id = "ocid1.privateip.oc1.iad.aaaaaaaavip"
vnic = "{v1}"
ip_address = "{VIP}"

[[oci.private_ips]]
id = "ocid1.privateip.oc1.iad.aaaaaaaaother"
vnic = "{v2}"
ip_address = "{OTHER_OCI_IP}"

[[oci.public_ips]]
id = "ocid1.publicip.oc1.iad.aaaaaaaavipext"
ip_address = "{PUBLIC}"
lifetime = "RESERVED"
private_ip = "ocid1.privateip.oc1.iad.aaaaaaaavip"

[[oci.public_ips]]
id = "ocid1.publicip.oc1.iad.aaaaaaaaspare"
ip_address = "{SPARE}"
lifetime = "RESERVED"
"#,
        v1 = vnic(1),
        v2 = vnic(2)
    );
    w
}
