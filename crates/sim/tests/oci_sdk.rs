//! Conformance of the OCI emulator with Oracle's official `oci` Python SDK, unmodified:
//! API-key signing (VNIC, private-IP list/move with ETags, public-IP move to ASSIGNED,
//! create/delete, a wrongly signed request) and instance principals (IMDS identity →
//! `/v1/x509` → `ST$` token, refresh after a revocation), and the `Ipv6` resource
//! (create_ipv6, get_ipv6, list_ipv6s, update_ipv6 with vnic_id, delete_ipv6). Needs `python3` with the packages
//! of `requirements-oci.txt`; fails loudly when they are missing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use cloudvip_sim::{Sim, SimHandle, World};
use common::venv_python;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{json, Value};

const TENANCY: &str = "ocid1.tenancy.oc1..aaaaaaaasimtenancy";
const USER: &str = "ocid1.user.oc1..aaaaaaaasimuser";
const VNIC1: &str = "ocid1.vnic.oc1.iad.abuwcljnode1";
const VNIC2: &str = "ocid1.vnic.oc1.iad.abuwcljnode2";
const VIP_ID: &str = "ocid1.privateip.oc1.iad.abuwcljvip";
const VIP6_ID: &str = "ocid1.ipv6.oc1.iad.abuwcljvip6";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oci_sdk.py");
const REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/requirements-oci.txt");

/// A tempdir with the user's API key pair, a stranger's key, and a started emulator.
struct Setup {
    dir: tempfile::TempDir,
    sim: SimHandle,
    fingerprint: String,
}

fn md5_fingerprint(k: &rsa::RsaPublicKey) -> String {
    cloudvip_sim::oci::pki::api_key_fingerprint(k).unwrap()
}

fn world(pub_key: &Path) -> String {
    format!(
        r#"
[oci]
tenancy = "{TENANCY}"
compartment = "ocid1.compartment.oc1..aaaaaaaasimcomp"
region = "us-ashburn-1"
public_ip_assign_ms = 1500
token_lifetime_secs = 900

[[oci.vcns]]
id = "ocid1.vcn.oc1.iad.simvcn"
cidr = "10.0.0.0/16"

[[oci.subnets]]
id = "ocid1.subnet.oc1.iad.simsubnet"
vcn = "ocid1.vcn.oc1.iad.simvcn"
cidr = "10.0.1.0/24"
ipv6_cidr_block = "fd00:66:0:1::/64"

[[oci.instances]]
id = "ocid1.instance.oc1.iad.node1"
display_name = "node1"
[[oci.instances.vnics]]
id = "{VNIC1}"
mac = "02:00:17:00:00:01"
subnet = "ocid1.subnet.oc1.iad.simsubnet"
private_ip = "10.0.1.11"

[[oci.instances]]
id = "ocid1.instance.oc1.iad.node2"
display_name = "node2"
[[oci.instances.vnics]]
id = "{VNIC2}"
mac = "02:00:17:00:00:02"
subnet = "ocid1.subnet.oc1.iad.simsubnet"
private_ip = "10.0.1.12"

[[oci.private_ips]]
id = "{VIP_ID}"
vnic = "{VNIC1}"
ip_address = "10.0.1.100"

[[oci.ipv6s]]
id = "{VIP6_ID}"
vnic = "{VNIC1}"
ip_address = "fd00:66:0:1::100"

[[oci.public_ips]]
id = "ocid1.publicip.oc1.iad.reserved"
ip_address = "203.0.113.10"
lifetime = "RESERVED"
private_ip = "{VIP_ID}"

[[oci.public_ips]]
id = "ocid1.publicip.oc1.iad.spare"
ip_address = "203.0.113.11"
lifetime = "RESERVED"

[[oci.api_keys]]
user = "{USER}"
public_key_file = "{}"
"#,
        pub_key.display()
    )
}

fn setup() -> Setup {
    setup_with(false)
}

/// With `tls`, the API listener speaks HTTPS with a certificate for 127.0.0.1 from a test
/// CA written to `ca.pem` in the tempdir.
fn setup_with(tls: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let wrong = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        key.to_pkcs1_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("wrong.pem"),
        wrong.to_pkcs1_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    let pub_path = dir.path().join("key_public.pem");
    std::fs::write(
        &pub_path,
        key.to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    let mut text = world(&pub_path);
    if tls {
        let g = cloudvip_sim::tls::generate(dir.path(), &["127.0.0.1".to_string()]).unwrap();
        assert_eq!(g.ca_cert, dir.path().join("ca.pem"));
        text = format!(
            "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{text}",
            g.cert.display(),
            g.key.display()
        );
    }
    let w = World::from_toml(&text).unwrap();
    let sim = Sim::start(w).unwrap();
    Setup {
        fingerprint: md5_fingerprint(&key.to_public_key()),
        dir,
        sim,
    }
}

/// Fails loudly when python3 or the SDK is missing (no silent skip).
fn require_sdk() {
    let out = Command::new(venv_python("oci"))
        .args(["-c", "import oci; print(oci.__version__)"])
        .output()
        .unwrap_or_else(|e| {
            panic!("the venv-oci Python is required for the OCI SDK conformance tests: {e}")
        });
    assert!(
        out.status.success(),
        "the `oci` Python SDK is required: scripts/setup-deps.sh builds venv-oci from {REQUIREMENTS}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the driver with `params`; `on_flag` is called once if the driver creates
/// `params.revoke_flag` (then the flag is removed). Bounded to 180 s; killed by PID.
fn run_driver(dir: &Path, params: Value, mut on_flag: impl FnMut()) -> Value {
    let pfile = dir.join(format!("params-{}.json", params["mode"].as_str().unwrap()));
    std::fs::write(&pfile, params.to_string()).unwrap();
    let flag = params["revoke_flag"].as_str().map(PathBuf::from);
    let mut child = Command::new(venv_python("oci"))
        .arg(SCRIPT)
        .arg(&pfile)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if let Some(f) = &flag {
            if f.exists() {
                on_flag();
                std::fs::remove_file(f).unwrap();
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the SDK driver did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        status.success(),
        "SDK driver failed ({status}):\n{stderr}\n{stdout}"
    );
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("driver output is not JSON ({e}):\n{stdout}\n{stderr}"))
}

fn state(sim: &SimHandle) -> Value {
    sim.oci().unwrap().oci.snapshot()
}

#[test]
fn python_sdk_api_key_conformance() {
    require_sdk();
    let s = setup();
    let ep = s.sim.endpoints();
    let api = ep["oci"]["api"].as_str().unwrap().to_owned();
    let out = run_driver(
        s.dir.path(),
        json!({
            "mode": "api_key",
            "endpoint": api,
            "tenancy": TENANCY,
            "user": USER,
            "fingerprint": s.fingerprint,
            "key_file": s.dir.path().join("key.pem"),
            "wrong_key_file": s.dir.path().join("wrong.pem"),
            "region": "us-ashburn-1",
            "vnic1": VNIC1,
            "vnic2": VNIC2,
            "vip": "10.0.1.100",
            "spare_public": "203.0.113.11",
            "extra_ip": "10.0.1.77",
        }),
        || {},
    );
    eprintln!("{out:#}");
    assert_eq!(out["vnic1"]["mac"], "02:00:17:00:00:01");
    assert_eq!(out["vnic1"]["private_ip"], "10.0.1.11");
    assert_eq!(out["by_address"], json!([[VIP_ID, VNIC1, false]]));
    assert_eq!(out["by_vnic_before"], json!(["10.0.1.100", "10.0.1.11"]));
    assert_eq!(out["stale_etag"]["status"], 412);
    assert_eq!(out["stale_etag"]["code"], "NoEtagMatch");
    assert_eq!(out["move_status"], 200);
    assert_eq!(out["etag_changed"], true);
    assert_eq!(out["vip_after_move"], VNIC2);
    assert_eq!(out["by_vnic2_after"], json!(["10.0.1.100", "10.0.1.12"]));
    assert_eq!(out["move_primary"]["status"], 400);
    assert_eq!(
        out["move_primary"]["message"],
        "Cannot reassign primary private IP addresses"
    );
    assert_eq!(
        out["reserved_after_move"],
        json!({"ip": "203.0.113.10", "state": "ASSIGNED", "assigned": VIP_ID})
    );
    assert_eq!(out["spare_before"], "AVAILABLE");
    assert_eq!(out["spare_right_after_update"], "ASSIGNING");
    assert_eq!(out["spare_final"]["state"], "ASSIGNED");
    assert_eq!(out["created"], json!({"ip": "10.0.1.77", "vnic": VNIC1}));
    assert_eq!(out["delete_status"], 204);
    assert_eq!(out["get_deleted"]["status"], 404);
    assert_eq!(out["wrong_key"]["status"], 401);
    assert_eq!(out["wrong_key"]["code"], "NotAuthenticated");

    // The emulator's own view agrees with what the SDK saw.
    let st = state(&s.sim);
    let vip = st["privateIps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == VIP_ID)
        .unwrap();
    assert_eq!(vip["vnicId"], VNIC2);
    let spare = st["publicIps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["ipAddress"] == "203.0.113.11")
        .unwrap();
    assert_eq!(spare["lifecycleState"], "ASSIGNED");
    assert!(st["privateIps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["ipAddress"] != "10.0.1.77"));
    assert!(st["calls"]["UpdatePrivateIp"].as_u64().unwrap() >= 3);
}

#[test]
fn python_sdk_instance_principals() {
    require_sdk();
    let s = setup();
    let ep = s.sim.endpoints();
    let api = ep["oci"]["api"].as_str().unwrap().to_owned();
    let md = ep["oci"]["metadata"]["node1"]["base_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let oci = s.sim.oci().unwrap().oci.clone();
    let mut revoked = 0;
    let out = run_driver(
        s.dir.path(),
        json!({
            "mode": "instance_principal",
            "endpoint": api,
            "metadata_base_url": md,
            "federation_endpoint": format!("{api}/v1/x509"),
            "vnic1": VNIC1,
            "revoke_flag": s.dir.path().join("revoke.flag"),
        }),
        || revoked += oci.revoke_tokens(),
    );
    eprintln!("{out:#}");
    assert_eq!(out["region"], "us-ashburn-1");
    assert_eq!(out["tenancy"], TENANCY);
    assert_eq!(out["vnic"], "02:00:17:00:00:01");
    assert_eq!(out["revoked_seen"], true);
    assert!(revoked >= 1, "a token was live when revoked");
    // After the revocation the SDK got a 401, federated again and retried.
    assert_eq!(out["after_revoke"], 200);
    let st = state(&s.sim);
    assert!(st["calls"]["X509Federation"].as_u64().unwrap() >= 2, "{st}");
    // The request log names the instance behind the security token, and shows the 401
    // that made the SDK federate again.
    let log = s.sim.core().log.since(0);
    let vn: Vec<_> = log.iter().filter(|e| e.service == "networking").collect();
    assert!(
        vn.iter().all(|e| e.instance.as_deref() == Some("node1")),
        "{vn:?}"
    );
    assert!(vn.iter().any(|e| e.status == Some(401)), "{vn:?}");
    assert_eq!(vn.last().unwrap().status, Some(200));
    assert_eq!(st["liveTokens"], 1);
}

#[test]
fn python_sdk_over_https_with_the_emulator_ca() {
    require_sdk();
    let s = setup_with(true);
    let api = s.sim.endpoints()["oci"]["api"].as_str().unwrap().to_owned();
    assert!(api.starts_with("https://"), "{api}");
    let out = run_driver(
        s.dir.path(),
        json!({
            "mode": "tls",
            "endpoint": api,
            "ca_bundle": s.dir.path().join("ca.pem"),
            "tenancy": TENANCY,
            "user": USER,
            "fingerprint": s.fingerprint,
            "key_file": s.dir.path().join("key.pem"),
            "region": "us-ashburn-1",
            "vnic1": VNIC1,
        }),
        || {},
    );
    eprintln!("{out:#}");
    assert_eq!(out["vnic"], "02:00:17:00:00:01");
    assert_eq!(out["private_ips"], 2);
    assert_eq!(out["untrusted"], "refused");
}

#[test]
fn python_sdk_ipv6_resource() {
    require_sdk();
    let s = setup();
    let api = s.sim.endpoints()["oci"]["api"].as_str().unwrap().to_owned();
    let out = run_driver(
        s.dir.path(),
        json!({
            "mode": "ipv6",
            "endpoint": api,
            "tenancy": TENANCY,
            "user": USER,
            "fingerprint": s.fingerprint,
            "key_file": s.dir.path().join("key.pem"),
            "region": "us-ashburn-1",
            "vnic1": VNIC1,
            "vnic2": VNIC2,
            "vip6": "fd00:66:0:1::100",
            "extra6": "fd00:66:0:1::77",
        }),
        || {},
    );
    eprintln!("{out:#}");
    assert_eq!(out["vnic_ipv6"], json!(["fd00:66:0:1::100"]));
    assert_eq!(out["subnet_ipv6"], "fd00:66:0:1::/64");
    assert_eq!(
        out["by_address"],
        json!([[VIP6_ID, VNIC1, "fd00:66:0:1::100", "AVAILABLE"]])
    );
    assert_eq!(out["by_vnic1"], json!(["fd00:66:0:1::100"]));
    assert_eq!(
        out["get"],
        json!({"ip": "fd00:66:0:1::100", "state": "AVAILABLE", "ip_state": "ASSIGNED", "lifetime": "EPHEMERAL"})
    );
    assert_eq!(out["stale_etag"]["status"], 412);
    assert_eq!(out["move_status"], 200);
    assert_eq!(out["etag_changed"], true);
    assert_eq!(out["after_move"], VNIC2);
    assert_eq!(out["vnic2_ipv6"], json!(["fd00:66:0:1::100"]));
    assert_eq!(out["renamed"], "vip6");
    assert_eq!(
        out["created"],
        json!({"ip": "fd00:66:0:1::77", "vnic": VNIC1, "state": "AVAILABLE"})
    );
    let picked: std::net::Ipv6Addr = out["picked"].as_str().unwrap().parse().unwrap();
    assert_eq!(picked.segments()[..4], [0xfd00, 0x66, 0, 1]);
    assert_eq!(out["taken"]["status"], 409);
    assert_eq!(out["outside"]["status"], 400);
    assert_eq!(out["outside"]["code"], "InvalidParameter");
    assert_eq!(out["by_subnet"].as_array().unwrap().len(), 3);
    assert_eq!(out["delete_status"], 204);
    assert_eq!(out["get_deleted"]["status"], 404);
    assert_eq!(out["delete_picked"], 204);
    // The emulator's own view: only the moved VIP is left, on node2.
    let st = state(&s.sim);
    assert_eq!(
        st["ipv6s"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["id"].clone(), p["vnicId"].clone()))
            .collect::<Vec<_>>(),
        vec![(json!(VIP6_ID), json!(VNIC2))]
    );
}
