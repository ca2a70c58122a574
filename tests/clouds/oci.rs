//! The OCI test world: tenancy and compartment `sim…` in us-ashburn-1, one VCN 10.0.0.0/16
//! with the subnet 10.0.1.0/24, node i = instance node{i} whose primary VNIC has the lab's
//! MAC of VM i and the private IP 10.0.1.1i. IMDS is shared on 169.254.169.254 (instances
//! told apart by source address), the Networking API and the federation endpoint listen
//! over HTTPS at 10.66.0.254:443. Also the API keys OCI's docs describe, made with openssl.

use std::path::Path;
use std::process::Command;

use cloudvip_sim::oci::world::{InstanceConfig, OciWorldConfig, PrivateIpConfig, PublicIpConfig};
use cloudvip_sim::World;
use serde_json::{json, Value};

use super::spec;
use crate::cloudlab::CloudLab;
use crate::netns::Lab;
use crate::util::{sh, Agent};

pub const TENANCY: &str = "ocid1.tenancy.oc1..aaaaaaaasimtenancy";
pub const USER: &str = "ocid1.user.oc1..aaaaaaaasimuser";
pub const SUBNET: &str = "ocid1.subnet.oc1.iad.aaaaaaaasimsubnet";
/// The VIP of the standard world and its private IP object, on node1's VNIC.
pub const VIP: &str = "10.0.1.100";
pub const VIP_ID: &str = "ocid1.privateip.oc1.iad.aaaaaaaavip";
/// Another secondary private IP, on node2's VNIC: it must survive everything.
pub const OTHER_ID: &str = "ocid1.privateip.oc1.iad.aaaaaaaaother";
pub const PUBLIC: &str = "203.0.113.10";
pub const PUBLIC_ID: &str = "ocid1.publicip.oc1.iad.aaaaaaaavipext";

pub fn vnic(i: usize) -> String {
    format!("ocid1.vnic.oc1.iad.aaaaaaaanode{i}")
}

/// The network and nothing on it (public IP assignment takes the emulator's default).
pub fn base(dir: &Path) -> World {
    World {
        server: super::server(dir),
        oci: Some(spec::<OciWorldConfig>(json!({
            "tenancy": TENANCY,
            "compartment": "ocid1.compartment.oc1..aaaaaaaasimcompartment",
            "region": "us-ashburn-1",
            "api_listen": "10.66.0.254:443",
            "metadata_per_instance": false,
            "metadata_listen": "169.254.169.254:80",
            "vcns": [{ "id": "ocid1.vcn.oc1.iad.aaaaaaaasimvcn", "cidr": "10.0.0.0/16" }],
            "subnets": [{
                "id": SUBNET,
                "vcn": "ocid1.vcn.oc1.iad.aaaaaaaasimvcn",
                "cidr": "10.0.1.0/24",
            }],
        }))),
        ..Default::default()
    }
}

/// `n` instances, each with its primary VNIC only, every instance principal allowed to
/// manage the network.
pub fn bare(dir: &Path, n: usize) -> World {
    let mut w = base(dir);
    for i in 1..=n {
        oci(&mut w)
            .instances
            .push(instance(i, &format!("10.0.1.1{i}")));
    }
    w
}

/// The world most OCI tests start from, three nodes: the VIP's private IP object on
/// node1's VNIC, another one on node2's, the reserved public IP not assigned yet (the
/// first start assigns it; then it follows the private IP); assignments take 300 ms.
pub fn standard(dir: &Path) -> World {
    let mut w = bare(dir, 3);
    let o = oci(&mut w);
    o.public_ip_assign_ms = 300;
    o.private_ips = vec![
        private_ip(VIP_ID, 1, VIP),
        private_ip(OTHER_ID, 2, "10.0.1.50"),
    ];
    o.public_ips = vec![public_ip(PUBLIC_ID, PUBLIC, None)];
    w
}

pub const SPARE: &str = "203.0.113.11";

/// The standard world with the public IP already assigned to the VIP, a spare reserved
/// public IP, node3's instance principal allowed to read only, and the user's API key
/// (`api.pem`, and `api_enc.pem` protected by the pass phrase s3cret).
pub fn world(dir: &Path) -> cloudvip_sim::World {
    let fp = api_key(dir, "api");
    let d = dir.display();
    sh(&[
        "openssl",
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        &format!("{d}/api.pem"),
        "-out",
        &format!("{d}/api_enc.pem"),
        "-passout",
        "pass:s3cret",
    ]);
    sh(&["chmod", "600", &format!("{d}/api_enc.pem")]);
    let mut w = standard(dir);
    node(&mut w, 3).access = cloudvip_sim::oci::world::Access::Read;
    let o = oci(&mut w);
    o.api_keys.push(api_key_config(dir, USER, "api", &fp));
    o.public_ips = vec![
        public_ip(PUBLIC_ID, PUBLIC, Some(VIP_ID)),
        public_ip("ocid1.publicip.oc1.iad.aaaaaaaaspare", SPARE, None),
    ];
    w
}

super::lab_struct! {
    OciLab
}

impl OciLab {
    pub fn new() -> OciLab {
        OciLab::with(world)
    }

    /// The lab on a world of the test's own (`world` with a change, most often).
    pub fn with(world: impl FnOnce(&Path) -> World) -> OciLab {
        let c = CloudLab::start(world);
        let api = c.endpoints["oci"]["api"]
            .as_str()
            .unwrap()
            .replace("http://", "https://");
        OciLab { c, api }
    }

    pub fn agent(&self, i: usize, action: &str, params: &[(&str, &str)]) -> Agent {
        self.c
            .agent(i, action)
            .params(&[
                ("ip", VIP),
                ("cloud", "oci"),
                ("api_endpoint", &self.api),
                ("auth_endpoint", &self.api),
            ])
            .params(params)
    }

    pub fn state(&self) -> Value {
        self.c.admin("GET", "/admin/state", None)["oci"].clone()
    }

    /// (VNIC holding the private IP object `id`, its OCID unchanged)
    pub fn holder(&self, ip: &str) -> String {
        super::find(&self.state()["privateIps"], "ipAddress", ip)
            .map(|p| p["vnicId"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    pub fn private_ip_id(&self, ip: &str) -> String {
        let st = self.state();
        let p = super::find(&st["privateIps"], "ipAddress", ip).unwrap();
        p["id"].as_str().unwrap().to_owned()
    }

    /// The reserved public IP's (assigned entity, lifecycle state).
    pub fn public(&self) -> (String, String) {
        self.public_ip(PUBLIC)
    }

    /// The public IP `ip`'s (assigned entity, lifecycle state).
    pub fn public_ip(&self, ip: &str) -> (String, String) {
        let st = self.state();
        let p = super::find(&st["publicIps"], "ipAddress", ip).unwrap();
        (
            p["assignedEntityId"].as_str().unwrap_or("").to_owned(),
            p["lifecycleState"].as_str().unwrap().to_owned(),
        )
    }

    pub fn auth_calls(&self) -> usize {
        self.c
            .log()
            .iter()
            .filter(|e| e["service"] == "auth")
            .count()
    }

    pub fn credentials_file(&self, key: &str, pass: Option<&str>) -> String {
        let d = self.c.dir.path();
        let fp = fingerprint(&format!("{}/api.pem", d.display()));
        let mut cfg = format!(
            "[DEFAULT]\nregion=us-ashburn-1\ntenancy={TENANCY}\n\n[cloudvip]\nuser={USER}\nfingerprint={fp}\nkey_file={}/{key}\n",
            d.display()
        );
        if let Some(p) = pass {
            cfg.push_str(&format!("pass_phrase={p}\n"));
        }
        let path = d.join("oci_config");
        std::fs::write(&path, cfg).unwrap();
        sh(&["chmod", "600", path.to_str().unwrap()]);
        path.display().to_string()
    }
}

pub fn oci(w: &mut World) -> &mut OciWorldConfig {
    w.oci.as_mut().expect("an OCI world")
}

/// Node `i` with its primary VNIC in the subnet at `primary` (its private IP).
pub fn instance(i: usize, primary: &str) -> InstanceConfig {
    spec(json!({
        "id": format!("ocid1.instance.oc1.iad.aaaaaaaanode{i}"),
        "display_name": format!("node{i}"),
        "metadata_source": format!("10.66.0.{i}"),
        "access": "manage",
        "vnics": [{ "id": vnic(i), "mac": Lab::mac(i), "subnet": SUBNET, "private_ip": primary }],
    }))
}

/// Instance of node `i` (1-based, in the order the world lists them).
pub fn node(w: &mut World, i: usize) -> &mut InstanceConfig {
    &mut oci(w).instances[i - 1]
}

/// A secondary private IP object on node `i`'s VNIC.
pub fn private_ip(id: &str, i: usize, ip: &str) -> PrivateIpConfig {
    spec(json!({ "id": id, "vnic": vnic(i), "ip_address": ip }))
}

/// A reserved public IP, assigned to the private IP object `to` when given.
pub fn public_ip(id: &str, ip: &str, to: Option<&str>) -> PublicIpConfig {
    spec(json!({ "id": id, "ip_address": ip, "lifetime": "RESERVED", "private_ip": to }))
}

/// An API key made the way OCI's docs say: `{stem}.pem` (mode 0600) and its public half
/// `{stem}_public.pem` in `dir`. Returns the key's fingerprint.
pub fn api_key(dir: &Path, stem: &str) -> String {
    let key = dir.join(format!("{stem}.pem")).display().to_string();
    let public = dir.join(format!("{stem}_public.pem")).display().to_string();
    sh(&["openssl", "genrsa", "-out", &key, "2048"]);
    sh(&["chmod", "600", &key]);
    sh(&["openssl", "rsa", "-in", &key, "-pubout", "-out", &public]);
    fingerprint(&key)
}

/// OCI's key fingerprint (MD5 of the public key's DER, colon-separated) through openssl:
/// the agent never needs MD5 itself.
pub fn fingerprint(key: &str) -> String {
    use std::io::Write;
    let der = Command::new("openssl")
        .args(["rsa", "-in", key, "-pubout", "-outform", "DER"])
        .output()
        .unwrap()
        .stdout;
    let mut child = Command::new("openssl")
        .args(["md5", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&der).unwrap();
    let out = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    out.rsplit(' ').next().unwrap().trim().to_owned()
}

/// The world's record of `user`'s API key (its public half from `{stem}_public.pem`).
pub fn api_key_config(
    dir: &Path,
    user: &str,
    stem: &str,
    fp: &str,
) -> cloudvip_sim::oci::world::ApiKeyConfig {
    spec(json!({
        "user": user,
        "public_key_file": dir.join(format!("{stem}_public.pem")),
        "fingerprint": fp,
    }))
}

impl super::TestCloud for OciLab {
    super::lab_basics!("oci", VIP);
    fn tester_params(&self) -> Vec<String> {
        vec![
            "cloud=oci".into(),
            format!("api_endpoint={}", self.api),
            format!("auth_endpoint={}", self.api),
            format!("ca_bundle={}", self.c.ca),
            format!("public_ip={PUBLIC}"),
        ]
    }
    fn vip_at(&self, i: usize) -> bool {
        self.holder(VIP) == vnic(i)
    }
    fn transient_faults(&self) -> Vec<Value> {
        vec![
            json!({"kind": "error", "status": 503, "cloud": "oci", "service": "networking", "count": 2}),
            json!({"kind": "error", "status": 429, "cloud": "oci", "service": "networking", "count": 2}),
            json!({"kind": "reset", "cloud": "oci", "service": "networking", "count": 2}),
            json!({"kind": "hang", "ms": 11000, "cloud": "oci", "service": "networking", "count": 1}),
            json!({"kind": "latency", "ms": 300, "cloud": "oci", "service": "networking"}),
            json!({"kind": "error", "status": 500, "service": "metadata", "api": "imds.identity", "count": 2}),
            json!({"kind": "error", "status": 503, "cloud": "oci", "service": "auth", "count": 1}),
        ]
    }
    fn fault_params(&self) -> Vec<(&'static str, &'static str)> {
        vec![("public_ip", PUBLIC)]
    }
    /// Each start needs a new token, so that faults on IMDS and federation matter.
    fn before_fault(&self) {
        self.c.admin("POST", "/admin/oci/tokens/revoke", None);
    }
    /// The reserved public IP followed the private IP object.
    fn check_extras(&self, fault: &Value) {
        assert_eq!(
            self.public(),
            (VIP_ID.to_owned(), "ASSIGNED".to_owned()),
            "fault {fault}"
        );
    }
}

// ---- the cluster tests' OCI ------------------------------------------------------------

/// The console user, whose key makes the changes "behind Pacemaker's back".
const CONSOLE_USER: &str = "ocid1.user.oc1..aaaaaaaaconsoleuser";
/// Another secondary private IP of the cluster world, on node2's VNIC.
const CLUSTER_OTHER_IP: &str = "10.66.0.50";

/// OCI for `tests/cluster`: the lab's subnet 10.66.0.0/24 (OCI reserves a subnet's first
/// two addresses, so the VNICs' primary IPs 10.66.0.1i are not the nodes' kernel addresses;
/// the agent matches its VNIC by MAC anyway); the VIP's private IP object on node1's VNIC
/// with the reserved public IP assigned, another private IP on node2's, a spare public IP;
/// the console user's API key (`console.pem`, its fingerprint in `console_fp`).
pub struct Oci;
pub const OCI: crate::cluster::clouds::Cloud = &Oci;

impl crate::cluster::clouds::ClusterCloud for Oci {
    fn name(&self) -> &'static str {
        "OCI"
    }

    fn world(
        &self,
        dir: &Path,
        n: usize,
        latency: crate::cluster::clouds::Latency,
        denied: Option<usize>,
    ) -> World {
        use crate::cluster::clouds::Latency;
        let fp = api_key(dir, "console");
        std::fs::write(dir.join("console_fp"), &fp).unwrap();
        let vip = crate::cluster::harness::VIP;
        let mut w = base(dir);
        let o = oci(&mut w);
        o.public_ip_assign_ms = match latency {
            Latency::Zero => 0,
            Latency::Realistic => 1000,
        };
        o.vcns[0].cidr = "10.66.0.0/16".into();
        o.subnets[0].cidr = "10.66.0.0/24".into();
        o.api_keys
            .push(api_key_config(dir, CONSOLE_USER, "console", &fp));
        for i in 1..=n {
            let mut node = instance(i, &format!("10.66.0.1{i}"));
            if denied == Some(i) {
                node.access = cloudvip_sim::oci::world::Access::Read;
            }
            o.instances.push(node);
        }
        o.private_ips = vec![
            private_ip(VIP_ID, 1, vip),
            private_ip(OTHER_ID, 2, CLUSTER_OTHER_IP),
        ];
        o.public_ips = vec![
            public_ip(PUBLIC_ID, PUBLIC, Some(VIP_ID)),
            public_ip("ocid1.publicip.oc1.iad.aaaaaaaaspare", SPARE, None),
        ];
        w
    }

    /// Every control-plane call takes a while too, not only the public IP.
    fn started(
        &self,
        c: &crate::cluster::harness::Cluster,
        latency: crate::cluster::clouds::Latency,
    ) {
        if latency == crate::cluster::clouds::Latency::Realistic {
            for service in ["networking", "auth"] {
                c.fault(json!({"kind": "latency", "ms": 150, "cloud": "oci", "service": service}));
            }
        }
    }

    fn create_params(&self) -> &'static [&'static str] {
        &["cloud=oci", "public_ip=203.0.113.10"]
    }

    fn check_state(
        &self,
        c: &crate::cluster::harness::Cluster,
        active: usize,
    ) -> Result<(), String> {
        let vip_ip = crate::cluster::harness::VIP;
        let st = c.admin("GET", "/admin/state", None);
        let st = &st["oci"];
        let ips = st["privateIps"].as_array().cloned().unwrap_or_default();
        let by_ip = |ip: &str| ips.iter().find(|p| p["ipAddress"] == ip).cloned();
        let vip = by_ip(vip_ip).ok_or("the VIP private IP does not exist")?;
        if vip["vnicId"] != vnic(active).as_str() {
            return Err(format!(
                "VIP private IP on {} (want {}, node{active})",
                vip["vnicId"],
                vnic(active)
            ));
        }
        let other = by_ip(CLUSTER_OTHER_IP).ok_or("the other private IP is gone")?;
        if other["vnicId"] != vnic(2).as_str() {
            return Err(format!("{CLUSTER_OTHER_IP} moved: {other}"));
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
        if public["assignedEntityId"] != vip["id"] || public["lifecycleState"] != "ASSIGNED" {
            return Err(format!(
                "public IP {PUBLIC}: {public} (want ASSIGNED to {})",
                vip["id"]
            ));
        }
        let spare = by_pub(SPARE).ok_or("no spare public IP")?;
        if !spare["assignedEntityId"].is_null() && spare["assignedEntityId"] != "" {
            return Err(format!("the spare public IP got assigned: {spare}"));
        }
        Ok(())
    }

    /// Stop leaves the private IP object (and the public IP with it) on `holder`'s VNIC.
    fn check_released(
        &self,
        c: &crate::cluster::harness::Cluster,
        holder: usize,
    ) -> Result<(), String> {
        self.check_state(c, holder)
    }

    /// The emulator's admin API has no route that changes private IPs, so the console
    /// user deletes it through the API with their own key (Oracle's SDK).
    fn remove_vip_behind_back(&self, c: &crate::cluster::harness::Cluster, _active: usize) {
        let vip = crate::cluster::harness::VIP;
        let st = c.admin("GET", "/admin/state", None);
        let id = st["oci"]["privateIps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["ipAddress"] == vip)
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
cfg = {{"user": "{CONSOLE_USER}", "tenancy": "{TENANCY}", "fingerprint": "{fp}",
        "key_file": "{d}/console.pem", "region": "us-ashburn-1"}}
vn = oci.core.VirtualNetworkClient(cfg, service_endpoint="https://10.66.0.254")
vn.base_client.session.verify = "{d}/ca.pem"
print(vn.delete_private_ip("{id}").status)
"#
        );
        // requests lets REQUESTS_CA_BUNDLE override a session's `verify`.
        let ca = format!("{d}/ca.pem");
        // The OCI SDK of venv-oci (scripts/setup-deps.sh), never the system's python3.
        let python = crate::util::test_cache().join("venv-oci/bin/python");
        let out = Command::new("ip")
            .args(["netns", "exec", &c.cloud_ns])
            .arg(&python)
            .args(["-c", &script])
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

    fn control_plane(&self) -> (&'static str, &'static [&'static str]) {
        ("oci", &["networking", "auth"])
    }

    /// OCI names no permission: it answers 404 NotAuthorizedOrNotFound, "... does not
    /// exist or you are not authorized to access it".
    fn names_denial(&self, reason: &str) -> bool {
        // OCI names no permission (404 NotAuthorizedOrNotFound, "... does not exist or you
        // are not authorized to access it"): the agent names the operation and the verb.
        reason.starts_with("permission denied by the cloud")
            && reason.contains("UpdatePrivateIp refused (IAM `use virtual-network-family`)")
    }
}
