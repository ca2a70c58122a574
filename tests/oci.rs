//! The OCI backend against the emulator: three instances whose VNIC MACs are the VMs'
//! eth0 MACs, IMDS v2 on 169.254.169.254 (instance by source address), the Networking API
//! and the federation endpoint over HTTPS. Every request the agent makes is signed, and
//! the emulator verifies every signature. Tests assert the cloud state (who holds the
//! private IP object and the reserved public IP), not just exit codes.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use crate::cloudlab::CloudLab;
use crate::util::{sh, Agent, Run};

pub const VIP: &str = "10.0.1.100";
const VIP_ID: &str = "ocid1.privateip.oc1.iad.aaaaaaaavip";
const OTHER_ID: &str = "ocid1.privateip.oc1.iad.aaaaaaaaother";
const PUBLIC: &str = "203.0.113.10";
const SPARE: &str = "203.0.113.11";
const USER: &str = "ocid1.user.oc1..aaaaaaaasimuser";
const TENANCY: &str = "ocid1.tenancy.oc1..aaaaaaaasimtenancy";

pub fn vnic(i: usize) -> String {
    format!("ocid1.vnic.oc1.iad.aaaaaaaanode{i}")
}

/// An API key made the way OCI's docs say, its public half for the world file, and a
/// pass-phrase-protected PKCS#8 copy.
fn make_api_key(dir: &Path) -> String {
    let d = dir.display();
    sh(&["openssl", "genrsa", "-out", &format!("{d}/api.pem"), "2048"]);
    sh(&[
        "openssl",
        "rsa",
        "-in",
        &format!("{d}/api.pem"),
        "-pubout",
        "-out",
        &format!("{d}/api_public.pem"),
    ]);
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
    let der = Command::new("openssl")
        .args([
            "rsa",
            "-in",
            &format!("{d}/api.pem"),
            "-pubout",
            "-outform",
            "DER",
        ])
        .output()
        .unwrap()
        .stdout;
    let digest = ring_md5(&der);
    for f in ["api.pem", "api_enc.pem"] {
        sh(&["chmod", "600", &format!("{d}/{f}")]);
    }
    digest
}

/// MD5 (OCI's key fingerprint) through openssl: the agent never needs MD5 itself.
fn ring_md5(der: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(["md5", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(der).unwrap();
    let out = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    out.rsplit(' ').next().unwrap().trim().to_owned()
}

pub fn world(dir: &Path) -> String {
    let fp = make_api_key(dir);
    let d = dir.display();
    let mut w = format!(
        r#"
[server]
tls_cert = "{d}/server.pem"
tls_key = "{d}/server.key"

[oci]
tenancy = "{TENANCY}"
compartment = "ocid1.compartment.oc1..aaaaaaaasimcompartment"
region = "us-ashburn-1"
api_listen = "10.66.0.254:443"
metadata_per_instance = false
metadata_listen = "169.254.169.254:80"
public_ip_assign_ms = 300

[[oci.vcns]]
id = "ocid1.vcn.oc1.iad.aaaaaaaasimvcn"
cidr = "10.0.0.0/16"

[[oci.subnets]]
id = "ocid1.subnet.oc1.iad.aaaaaaaasimsubnet"
vcn = "ocid1.vcn.oc1.iad.aaaaaaaasimvcn"
cidr = "10.0.1.0/24"

[[oci.api_keys]]
user = "{USER}"
public_key_file = "{d}/api_public.pem"
fingerprint = "{fp}"
"#
    );
    for i in 1..=3 {
        let access = if i == 3 { "read" } else { "manage" };
        w.push_str(&format!(
            r#"
[[oci.instances]]
id = "ocid1.instance.oc1.iad.aaaaaaaanode{i}"
display_name = "node{i}"
metadata_source = "10.66.0.{i}"
access = "{access}"
[[oci.instances.vnics]]
id = "{vnic}"
mac = "02:66:00:00:00:0{i}"
subnet = "ocid1.subnet.oc1.iad.aaaaaaaasimsubnet"
private_ip = "10.0.1.1{i}"
"#,
            vnic = vnic(i)
        ));
    }
    w.push_str(&format!(
        r#"
[[oci.private_ips]]
id = "{VIP_ID}"
vnic = "{v1}"
ip_address = "{VIP}"

[[oci.private_ips]]
id = "{OTHER_ID}"
vnic = "{v2}"
ip_address = "10.0.1.50"

[[oci.public_ips]]
id = "ocid1.publicip.oc1.iad.aaaaaaaavipext"
ip_address = "{PUBLIC}"
lifetime = "RESERVED"
private_ip = "{VIP_ID}"

[[oci.public_ips]]
id = "ocid1.publicip.oc1.iad.aaaaaaaaspare"
ip_address = "{SPARE}"
lifetime = "RESERVED"
"#,
        v1 = vnic(1),
        v2 = vnic(2)
    ));
    w
}

pub struct OciLab {
    pub c: CloudLab,
    pub api: String,
}

impl OciLab {
    pub fn new() -> OciLab {
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

    fn state(&self) -> Value {
        self.c.admin("GET", "/admin/state", None)["oci"].clone()
    }

    /// (VNIC holding the private IP object `id`, its OCID unchanged)
    pub fn holder(&self, ip: &str) -> String {
        let st = self.state();
        let p = st["privateIps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["ipAddress"] == ip)
            .cloned();
        p.map(|p| p["vnicId"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    fn private_ip_id(&self, ip: &str) -> String {
        let st = self.state();
        st["privateIps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["ipAddress"] == ip)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn public(&self) -> (String, String) {
        let st = self.state();
        let p = st["publicIps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["ipAddress"] == PUBLIC)
            .unwrap()
            .clone();
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
        let fp = ring_md5(
            &Command::new("openssl")
                .args([
                    "rsa",
                    "-in",
                    &format!("{}/api.pem", d.display()),
                    "-pubout",
                    "-outform",
                    "DER",
                ])
                .output()
                .unwrap()
                .stdout,
        );
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

#[test]
fn failover_with_instance_principals_moves_private_and_public_ip() {
    let o = OciLab::new();
    let p = [("public_ip", PUBLIC)];
    o.agent(2, "monitor", &p).run().expect(7, None);
    o.agent(2, "start", &p).run().ok();
    // the same private IP object moved (its OCID kept), the public IP followed it
    assert_eq!(o.holder(VIP), vnic(2));
    assert_eq!(
        o.private_ip_id(VIP),
        VIP_ID,
        "moved with PUT, not deleted and re-created"
    );
    assert_eq!(o.public(), (VIP_ID.to_owned(), "ASSIGNED".to_owned()));
    assert_eq!(
        o.holder("10.0.1.50"),
        vnic(2),
        "node2's other secondary IP is untouched"
    );
    assert!(o.c.holds_locally(2, VIP), "{}", o.c.lab.addrs(2));
    o.agent(2, "monitor", &p).run().ok();
    o.agent(2, "monitor", &p)
        .env("OCF_CHECK_LEVEL", "10")
        .run()
        .ok();

    // double start: the cached session token, no federation
    o.c.clear_log();
    o.agent(2, "start", &p).run().ok();
    assert_eq!(o.auth_calls(), 0, "{:#?}", o.c.log());

    // stop: local address gone, the private IP stays (documented), public IP attached
    o.agent(2, "stop", &p).run().ok();
    o.agent(2, "stop", &p).run().ok();
    assert!(!o.c.holds_locally(2, VIP));
    assert_eq!(o.holder(VIP), vnic(2));
    assert_eq!(
        o.public().1,
        "ASSIGNED",
        "stop never leaves the reserved public IP detached"
    );

    o.agent(1, "start", &p).run().ok();
    assert_eq!(o.holder(VIP), vnic(1));
    assert_eq!(o.public(), (VIP_ID.to_owned(), "ASSIGNED".to_owned()));
    // the monitor on node2 (no local address) says not running; a deep monitor on node1 agrees
    o.agent(2, "monitor", &p).run().expect(7, None);
    o.agent(1, "monitor", &p)
        .env("OCF_CHECK_LEVEL", "10")
        .run()
        .ok();
}

#[test]
fn api_key_auth_including_an_encrypted_key() {
    let o = OciLab::new();
    // node3's instance principal may only read: its start is refused with a clear reason
    o.agent(3, "start", &[])
        .run()
        .expect(4, Some("permission denied by the cloud"));
    assert_eq!(o.holder(VIP), vnic(1));
    let cfg = o.credentials_file("api.pem", None);
    o.agent(
        3,
        "start",
        &[("credentials", &cfg), ("oci_profile", "cloudvip")],
    )
    .run()
    .ok();
    assert_eq!(o.holder(VIP), vnic(3));
    let enc = o.credentials_file("api_enc.pem", Some("s3cret"));
    o.agent(
        2,
        "start",
        &[("credentials", &enc), ("oci_profile", "cloudvip")],
    )
    .run()
    .ok();
    assert_eq!(o.holder(VIP), vnic(2));
    let wrong = o.credentials_file("api_enc.pem", Some("wrong"));
    o.agent(
        1,
        "start",
        &[("credentials", &wrong), ("oci_profile", "cloudvip")],
    )
    .run()
    .expect(5, Some("wrong pass_phrase"));
    assert_eq!(o.holder(VIP), vnic(2));
}

#[test]
fn creates_the_private_ip_when_nobody_has_it() {
    let o = OciLab::new();
    let ip = "10.0.1.77";
    o.agent(2, "start", &[("ip", ip)]).run().ok();
    assert_eq!(o.holder(ip), vnic(2));
    // the primary private IP of another VNIC can never be the VIP
    o.agent(2, "start", &[("ip", "10.0.1.11")])
        .run()
        .expect(6, Some("is the primary private IP"));
    assert_eq!(o.holder("10.0.1.11"), vnic(1));
}

/// A start that is going to fail fails before it touches the holder: a VNIC of another
/// instance, a primary private IP (of this instance or another), the instance's own
/// primary IP at start (which the cloud would happily call "already assigned").
#[test]
fn oci_validates_before_the_first_cloud_change() {
    let o = OciLab::new();
    o.agent(2, "start", &[]).run().ok();
    assert_eq!(o.holder(VIP), vnic(2));
    let depth10 = |a: Agent| a.env("OCF_CHECK_LEVEL", "10");
    o.c.clear_log();
    // node 1 with node 2's VNIC: this node only (2), nothing written
    let other = vnic(2);
    for action in ["validate-all", "start"] {
        depth10(o.agent(1, action, &[("vnic_id", &other)]))
            .run()
            .expect(2, Some("is not a VNIC of this instance"));
    }
    // its own VNIC, but not the interface nic names
    let own = vnic(1);
    o.agent(1, "start", &[("vnic_id", &own), ("nic", "lo")])
        .run()
        .expect(2, None);
    // node 2's own primary private IP: refused from IMDS at start and validate-all
    for action in ["validate-all", "start"] {
        depth10(o.agent(2, action, &[("ip", "10.0.1.12")]))
            .run()
            .expect(6, Some("is the primary private IP of this instance's VNIC"));
    }
    // another instance's primary: the cloud says so, before any write
    o.agent(2, "start", &[("ip", "10.0.1.11")])
        .run()
        .expect(6, Some("is the primary private IP"));
    let writes =
        o.c.log()
            .iter()
            .filter(|e| e["method"] != "GET" && e["service"] == "networking")
            .count();
    assert_eq!(writes, 0, "{:#?}", o.c.log());
    assert_eq!(o.holder(VIP), vnic(2));
    assert_eq!(o.holder("10.0.1.12"), vnic(2));
    assert!(!o.c.lab.addrs(2).contains("10.0.1.12"));
}

/// Stop makes no API call, so an API outage cannot hold a failover up: the local address
/// goes at once and the private IP stays for the next start elsewhere to move.
#[test]
fn stop_during_an_api_outage_returns_at_once() {
    let o = OciLab::new();
    o.agent(1, "start", &[]).run().ok();
    o.c.clear_log();
    o.agent(1, "stop", &[]).run().ok();
    assert!(
        o.c.log().is_empty(),
        "stop asked the cloud: {:#?}",
        o.c.log()
    );
    o.agent(1, "start", &[]).run().ok();
    o.c.fault(json!({"kind": "down", "cloud": "oci"}));
    let t = Instant::now();
    o.agent(1, "stop", &[]).run().ok();
    println!("oci stop with the API and IMDS down: {:?}", t.elapsed());
    assert!(!o.c.holds_locally(1, VIP));
    o.c.clear_faults();
    assert_eq!(o.holder(VIP), vnic(1));
}

#[test]
fn transient_faults_are_retried() {
    let faults = [
        json!({"kind": "error", "status": 503, "cloud": "oci", "service": "networking", "count": 2}),
        json!({"kind": "error", "status": 429, "cloud": "oci", "service": "networking", "count": 2}),
        json!({"kind": "reset", "cloud": "oci", "service": "networking", "count": 2}),
        json!({"kind": "hang", "ms": 11000, "cloud": "oci", "service": "networking", "count": 1}),
        json!({"kind": "latency", "ms": 300, "cloud": "oci", "service": "networking"}),
        json!({"kind": "error", "status": 500, "service": "metadata", "api": "imds.identity", "count": 2}),
        json!({"kind": "error", "status": 503, "cloud": "oci", "service": "auth", "count": 1}),
    ];
    let o = OciLab::new();
    let p = [("public_ip", PUBLIC)];
    let mut on = 2;
    for f in faults {
        // each start needs a new token, so that faults on IMDS and federation matter
        o.c.admin("POST", "/admin/oci/tokens/revoke", None);
        o.c.clear_faults();
        o.c.fault(f.clone());
        let r = o.agent(on, "start", &p).run();
        assert_eq!(r.code, 0, "fault {f}: {}", r.stderr);
        assert!(o.c.fault_fired(), "fault {f} never fired");
        assert_eq!(o.holder(VIP), vnic(on), "fault {f}");
        assert_eq!(
            o.public(),
            (VIP_ID.to_owned(), "ASSIGNED".to_owned()),
            "fault {f}"
        );
        o.c.clear_faults();
        o.agent(on, "stop", &p).run().ok();
        on = 3 - on;
    }
}

#[test]
fn token_revoked_mid_operation_and_failed_public_ip_assignment() {
    let o = OciLab::new();
    // a cached token that the service no longer accepts: one 401, one refresh, success
    o.agent(2, "start", &[]).run().ok();
    o.c.admin("POST", "/admin/oci/tokens/revoke", None);
    o.c.clear_log();
    o.agent(1, "start", &[]).run().ok();
    assert_eq!(o.holder(VIP), vnic(1));
    assert_eq!(
        o.auth_calls(),
        1,
        "exactly one new federation after the 401"
    );
    // The asynchronous assignment fails silently into AVAILABLE (oci-api.md §2.6): start
    // notices and assigns again. A new VIP with the spare public IP, so that start must
    // assign it.
    o.c.admin(
        "POST",
        "/admin/oci/public-ips/fail-next",
        Some(json!({"count": 1})),
    );
    o.c.clear_log();
    o.agent(
        1,
        "start",
        &[
            ("ip", "10.0.1.77"),
            ("public_ip", "ocid1.publicip.oc1.iad.aaaaaaaaspare"),
        ],
    )
    .run()
    .ok();
    let pid = o.private_ip_id("10.0.1.77");
    let st = o.state();
    let spare = st["publicIps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["ipAddress"] == SPARE)
        .unwrap()
        .clone();
    assert_eq!(
        (
            spare["assignedEntityId"].as_str(),
            spare["lifecycleState"].as_str()
        ),
        (Some(pid.as_str()), Some("ASSIGNED"))
    );
    let puts =
        o.c.log()
            .iter()
            .filter(|e| {
                e["method"] == "PUT" && e["path"].as_str().unwrap_or("").contains("/publicIps/")
            })
            .count();
    assert_eq!(puts, 2, "the failed assignment was retried once");
}

#[test]
fn ocf_tester_passes_with_oci() {
    let o = OciLab::new();
    let agent = crate::util::install_agent();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", o.c.lab.ns(2), "ocf-tester", "-n", "ocivip"]);
    for p in [
        format!("ip={VIP}"),
        "nic=eth0".into(),
        "cloud=oci".into(),
        format!("api_endpoint={}", o.api),
        format!("auth_endpoint={}", o.api),
        format!("ca_bundle={}", o.c.ca),
        format!("public_ip={PUBLIC}"),
    ] {
        cmd.args(["-o", &p]);
    }
    cmd.arg(&agent);
    let r = Run::from("ocf-tester oci".into(), cmd.output().unwrap());
    assert!(
        r.code == 0 && r.stdout.contains("passed all tests"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(o.holder(VIP), vnic(2));
}

/// Not an assertion: the numbers for the closing note.
#[test]
fn report_signed_calls_and_time_per_action() {
    let o = OciLab::new();
    let p = [("public_ip", PUBLIC)];
    println!("| action (public IP assignment 300 ms) | signed API | federation | IMDS | wall |");
    for (label, node, action, revoke) in [
        ("start, move + public IP, no cached token", 2, "start", true),
        ("start again, cached token", 2, "start", false),
        ("monitor depth 0", 2, "monitor", false),
        ("monitor depth 10, cached token", 2, "monitor10", false),
        ("stop", 2, "stop", false),
        ("start, move back, cached token", 1, "start", false),
    ] {
        if revoke {
            o.c.admin("POST", "/admin/oci/tokens/revoke", None);
            for f in std::fs::read_dir(o.c.dir.path()).unwrap().flatten() {
                if f.file_name()
                    .to_string_lossy()
                    .starts_with("cloudvip-oci-token")
                {
                    std::fs::remove_file(f.path()).unwrap();
                }
            }
        }
        o.c.clear_log();
        let t = Instant::now();
        let mut a = o.agent(
            node,
            if action == "monitor10" {
                "monitor"
            } else {
                action
            },
            &p,
        );
        if action == "monitor10" {
            a = a.env("OCF_CHECK_LEVEL", "10");
        }
        a.run().ok();
        let ms = t.elapsed().as_millis();
        let log = o.c.log();
        let count = |s: &str| log.iter().filter(|e| e["service"] == s).count();
        println!(
            "| {label:<40} | {:>3} | {:>3} | {:>3} | {ms:>5} ms |",
            count("networking"),
            count("auth"),
            count("metadata")
        );
    }
}
