//! In-process tests of the OCI handlers: a small world, requests signed here with `ring`
//! (independently of the verifier's code paths), answers checked as a client would.

use super::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::RsaPrivateKey;
use std::net::Ipv4Addr;

pub const TENANCY: &str = "ocid1.tenancy.oc1..aaaatenancy";
pub const USER: &str = "ocid1.user.oc1..aaaauser";
pub const READER: &str = "ocid1.user.oc1..aaaareader";
const HOST: &str = "iaas.us-ashburn-1.oraclecloud.com";

/// Signs like the SDKs do (§3.1), producing the headers to send.
pub struct TestSigner {
    key: RsaKeyPair,
    pub key_id: String,
}

impl TestSigner {
    pub fn new(key: &RsaPrivateKey, key_id: String) -> TestSigner {
        let der = key.to_pkcs8_der().unwrap();
        TestSigner {
            key: RsaKeyPair::from_pkcs8(der.as_bytes()).unwrap(),
            key_id,
        }
    }

    pub fn headers(
        &self,
        method: &str,
        target: &str,
        body: &[u8],
        date: &str,
        with_host: bool,
    ) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = vec![("date".into(), date.into())];
        let mut names = vec!["date", "(request-target)"];
        if with_host {
            h.push(("host".into(), HOST.into()));
            names.push("host");
        }
        if matches!(method, "POST" | "PUT") {
            h.push(("content-length".into(), body.len().to_string()));
            h.push(("content-type".into(), "application/json".into()));
            h.push((
                "x-content-sha256".into(),
                STANDARD.encode(ring::digest::digest(&ring::digest::SHA256, body)),
            ));
            names.extend(["content-length", "content-type", "x-content-sha256"]);
        }
        let mut lines = Vec::new();
        for n in &names {
            if *n == "(request-target)" {
                lines.push(format!(
                    "(request-target): {} {target}",
                    method.to_lowercase()
                ));
            } else {
                let v = &h.iter().find(|(k, _)| k == n).unwrap().1;
                lines.push(format!("{n}: {v}"));
            }
        }
        let mut sig = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                lines.join("\n").as_bytes(),
                &mut sig,
            )
            .unwrap();
        h.push((
            "authorization".into(),
            format!(
                "Signature algorithm=\"rsa-sha256\",headers=\"{}\",keyId=\"{}\",signature=\"{}\",version=\"1\"",
                names.join(" "),
                self.key_id,
                STANDARD.encode(sig)
            ),
        ));
        h
    }
}

pub struct Fixture {
    pub oci: Oci,
    pub user: TestSigner,
    pub reader: TestSigner,
}

pub fn world_toml(user_pem: &str, reader_pem: &str) -> String {
    format!(
        r#"
tenancy = "{TENANCY}"
compartment = "ocid1.compartment.oc1..aaaacomp"
region = "us-ashburn-1"
availability_domain = "Sim:US-ASHBURN-AD-1"
public_ip_assign_ms = 800
default_page_size = 2
token_lifetime_secs = 600

[[vcns]]
id = "ocid1.vcn.oc1.iad.vcn1"
cidr = "10.0.0.0/16"

[[subnets]]
id = "ocid1.subnet.oc1.iad.sub1"
vcn = "ocid1.vcn.oc1.iad.vcn1"
cidr = "10.0.1.0/24"

[[subnets]]
id = "ocid1.subnet.oc1.iad.sub2"
vcn = "ocid1.vcn.oc1.iad.vcn1"
cidr = "10.0.2.0/24"

[[instances]]
id = "ocid1.instance.oc1.iad.node1"
display_name = "node1"
metadata_source = "127.0.0.11"
[[instances.vnics]]
id = "ocid1.vnic.oc1.iad.node1"
mac = "02:00:17:00:00:01"
subnet = "ocid1.subnet.oc1.iad.sub1"
private_ip = "10.0.1.11"
hostname_label = "node1"

[[instances]]
id = "ocid1.instance.oc1.iad.node2"
display_name = "node2"
metadata_source = "127.0.0.12"
[[instances.vnics]]
id = "ocid1.vnic.oc1.iad.node2"
mac = "02:00:17:00:00:02"
subnet = "ocid1.subnet.oc1.iad.sub1"
private_ip = "10.0.1.12"

[[instances]]
id = "ocid1.instance.oc1.iad.node3"
display_name = "node3"
access = "read"
[[instances.vnics]]
id = "ocid1.vnic.oc1.iad.node3"
mac = "02:00:17:00:00:03"
subnet = "ocid1.subnet.oc1.iad.sub2"
private_ip = "10.0.2.13"

[[private_ips]]
id = "ocid1.privateip.oc1.iad.vip"
vnic = "ocid1.vnic.oc1.iad.node1"
ip_address = "10.0.1.100"
display_name = "vip"

[[public_ips]]
id = "ocid1.publicip.oc1.iad.reserved"
ip_address = "203.0.113.10"
lifetime = "RESERVED"
private_ip = "ocid1.privateip.oc1.iad.vip"

[[public_ips]]
id = "ocid1.publicip.oc1.iad.spare"
ip_address = "203.0.113.11"
lifetime = "RESERVED"

[[api_keys]]
user = "{USER}"
public_key_pem = """{user_pem}"""

[[api_keys]]
user = "{READER}"
public_key_pem = """{reader_pem}"""
access = "read"
"#
    )
}

pub fn fixture() -> Fixture {
    let uk = pki::generate_rsa_2048().unwrap();
    let rk = pki::generate_rsa_2048().unwrap();
    let pem = |k: &RsaPrivateKey| k.to_public_key().to_public_key_pem(LineEnding::LF).unwrap();
    let oci = Oci::from_toml(&world_toml(&pem(&uk), &pem(&rk))).unwrap();
    let fp = |k: &RsaPrivateKey| pki::api_key_fingerprint(&k.to_public_key()).unwrap();
    Fixture {
        oci,
        user: TestSigner::new(&uk, format!("{TENANCY}/{USER}/{}", fp(&uk))),
        reader: TestSigner::new(&rk, format!("{TENANCY}/{READER}/{}", fp(&rk))),
    }
}

fn now_date() -> String {
    httpdate::fmt_http_date(SystemTime::now())
}

impl Fixture {
    pub fn call_as(
        &self,
        s: &TestSigner,
        method: &str,
        target: &str,
        body: &str,
    ) -> (Response, Value) {
        let headers = s.headers(method, target, body.as_bytes(), &now_date(), true);
        self.raw(method, target, &headers, body.as_bytes())
    }

    pub fn call(&self, method: &str, target: &str, body: &str) -> (Response, Value) {
        self.call_as(&self.user, method, target, body)
    }

    pub fn raw(
        &self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> (Response, Value) {
        let req = Request {
            method,
            target,
            headers,
            body,
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            instance: None,
        };
        let r = self.oci.handle(&req);
        let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r, v)
    }

    pub fn imds(&self, peer: &str, path: &str, bearer: bool) -> Response {
        let headers: Vec<(String, String)> = if bearer {
            vec![("Authorization".into(), "Bearer Oracle".into())]
        } else {
            vec![]
        };
        let req = Request {
            method: "GET",
            target: path,
            headers: &headers,
            body: b"",
            peer: peer.parse().unwrap(),
            instance: None,
        };
        self.oci.handle(&req)
    }
}

#[test]
fn get_vnic_and_errors() {
    let f = fixture();
    let (r, v) = f.call("GET", "/20160918/vnics/ocid1.vnic.oc1.iad.node1", "");
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(v["privateIp"], "10.0.1.11");
    assert_eq!(v["macAddress"], "02:00:17:00:00:01");
    assert_eq!(v["isPrimary"], true);
    assert_eq!(r.header("etag").map(str::len), Some(8));
    assert_eq!(r.header("opc-request-id").unwrap().split('/').count(), 3);
    let (r, v) = f.call("GET", "/20160918/vnics/ocid1.vnic.oc1.iad.nope", "");
    assert_eq!(
        (r.status, v["code"].as_str()),
        (404, Some("NotAuthorizedOrNotFound"))
    );
    let (r, v) = f.call("GET", "/20160918/nothing", "");
    assert_eq!((r.status, v["code"].as_str()), (404, Some("NotFound")));
}

#[test]
fn unsigned_badly_signed_and_skewed_requests_get_401() {
    let f = fixture();
    let t = "/20160918/vnics/ocid1.vnic.oc1.iad.node1";
    let (r, v) = f.raw("GET", t, &[("date".into(), now_date())], b"");
    assert_eq!(
        (r.status, v["code"].as_str()),
        (401, Some("NotAuthenticated"))
    );
    // Signed for another path.
    let h = f
        .user
        .headers("GET", "/20160918/vnics/other", b"", &now_date(), true);
    assert_eq!(f.raw("GET", t, &h, b"").0.status, 401);
    // Host not signed.
    let h = f.user.headers("GET", t, b"", &now_date(), false);
    assert_eq!(f.raw("GET", t, &h, b"").0.status, 401);
    // Six minutes off.
    let old = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(360));
    let h = f.user.headers("GET", t, b"", &old, true);
    let (r, v) = f.raw("GET", t, &h, b"");
    assert_eq!(r.status, 401, "{v}");
    // Unknown fingerprint.
    let other = pki::generate_rsa_2048().unwrap();
    let s = TestSigner::new(&other, f.user.key_id.clone());
    let h = s.headers("GET", t, b"", &now_date(), true);
    assert_eq!(f.raw("GET", t, &h, b"").0.status, 401);
    // Body changed after signing.
    let body = br#"{"displayName":"x"}"#;
    let target = "/20160918/privateIps/ocid1.privateip.oc1.iad.vip";
    let h = f.user.headers("PUT", target, body, &now_date(), true);
    assert_eq!(
        f.raw("PUT", target, &h, br#"{"displayName":"y"}"#).0.status,
        401
    );
    assert_eq!(f.raw("PUT", target, &h, body).0.status, 200);
}

#[test]
fn x_date_wins_over_date() {
    let f = fixture();
    let t = "/20160918/vnics/ocid1.vnic.oc1.iad.node1";
    // Sign with the header named x-date (a proxy may rewrite Date); a stale Date is ignored.
    let mut h: Vec<(String, String)> = Vec::new();
    let date = now_date();
    let signing = format!("x-date: {date}\n(request-target): get {t}\nhost: {HOST}");
    let sig = {
        let mut out = vec![0; f.user.key.public().modulus_len()];
        f.user
            .key
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing.as_bytes(),
                &mut out,
            )
            .unwrap();
        STANDARD.encode(out)
    };
    h.push(("x-date".into(), date));
    h.push(("date".into(), "Mon, 01 Jan 2001 00:00:00 GMT".into()));
    h.push(("host".into(), HOST.into()));
    h.push((
        "authorization".into(),
        format!(
            "Signature headers=\"x-date (request-target) host\",keyId=\"{}\",algorithm=\"rsa-sha256\",signature=\"{sig}\"",
            f.user.key_id
        ),
    ));
    let (r, v) = f.raw("GET", t, &h, b"");
    assert_eq!(r.status, 200, "{v}");
}

#[test]
fn list_private_ips_by_address_and_by_vnic_with_pages() {
    let f = fixture();
    let (r, v) = f.call(
        "GET",
        "/20160918/privateIps?ipAddress=10.0.1.100&subnetId=ocid1.subnet.oc1.iad.sub1",
        "",
    );
    assert_eq!(r.status, 200);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["id"], "ocid1.privateip.oc1.iad.vip");
    // Even a complete page announces a next one, which is empty (§2.4).
    let next = r.header("opc-next-page").unwrap().to_owned();
    let enc = next.replace('=', "%3D");
    let (r, v) = f.call(
        "GET",
        &format!("/20160918/privateIps?ipAddress=10.0.1.100&subnetId=ocid1.subnet.oc1.iad.sub1&page={enc}"),
        "",
    );
    assert_eq!(r.status, 200);
    assert_eq!(v, json!([]));
    assert!(r.header("opc-next-page").is_none());
    // By VNIC, 1 per page: primary, vip, then empty.
    let mut seen = vec![];
    let mut page: Option<String> = None;
    for _ in 0..5 {
        let mut t = "/20160918/privateIps?vnicId=ocid1.vnic.oc1.iad.node1&limit=1".to_owned();
        if let Some(p) = &page {
            t.push_str(&format!("&page={}", p.replace('=', "%3D")));
        }
        let (r, v) = f.call("GET", &t, "");
        assert_eq!(r.status, 200, "{v}");
        seen.extend(
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x["ipAddress"].as_str().unwrap().to_owned()),
        );
        match r.header("opc-next-page") {
            Some(p) => page = Some(p.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["10.0.1.11", "10.0.1.100"]);
    for (t, code) in [
        ("/20160918/privateIps", "MissingParameter"),
        (
            "/20160918/privateIps?ipAddress=10.0.1.100",
            "MissingParameter",
        ),
        (
            "/20160918/privateIps?ipAddress=10.0.1.100&vnicId=ocid1.vnic.oc1.iad.node1",
            "InvalidParameter",
        ),
        (
            "/20160918/privateIps?vnicId=ocid1.vnic.oc1.iad.node1&limit=0",
            "InvalidParameter",
        ),
        (
            "/20160918/privateIps?vnicId=ocid1.vnic.oc1.iad.node1&page=garbage",
            "InvalidParameter",
        ),
        (
            "/20160918/privateIps?vnicId=ocid1.vnic.oc1.iad.gone",
            "NotAuthorizedOrNotFound",
        ),
    ] {
        let (_, v) = f.call("GET", t, "");
        assert_eq!(v["code"], code, "{t}: {v}");
    }
}

#[test]
fn move_secondary_private_ip_with_etag_and_public_ip_follows() {
    let f = fixture();
    let vip = "/20160918/privateIps/ocid1.privateip.oc1.iad.vip";
    let (r, _) = f.call("GET", vip, "");
    let etag = r.header("etag").unwrap().to_owned();
    let body = r#"{"vnicId":"ocid1.vnic.oc1.iad.node2"}"#;
    // Stale if-match: 412.
    let mut h = f
        .user
        .headers("PUT", vip, body.as_bytes(), &now_date(), true);
    h.push(("if-match".into(), "deadbeef".into()));
    let (r, v) = f.raw("PUT", vip, &h, body.as_bytes());
    assert_eq!((r.status, v["code"].as_str()), (412, Some("NoEtagMatch")));
    let mut h = f
        .user
        .headers("PUT", vip, body.as_bytes(), &now_date(), true);
    h.push(("if-match".into(), etag.clone()));
    let (r, v) = f.raw("PUT", vip, &h, body.as_bytes());
    assert_eq!(r.status, 200, "{v}");
    assert_ne!(r.header("etag").unwrap(), etag);
    assert_eq!(v["id"], "ocid1.privateip.oc1.iad.vip");
    let (_, v) = f.call("GET", vip, "");
    assert_eq!(v["vnicId"], "ocid1.vnic.oc1.iad.node2");
    // The reserved public IP stays with the private IP.
    let (r, v) = f.call(
        "POST",
        "/20160918/publicIps/actions/getByPrivateIpId",
        r#"{"privateIpId":"ocid1.privateip.oc1.iad.vip"}"#,
    );
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(v["ipAddress"], "203.0.113.10");
    assert_eq!(v["lifecycleState"], "ASSIGNED");
    // Primary: refused with the recorded message; other subnet: refused.
    let (r, v) = f.call(
        "PUT",
        "/20160918/privateIps/ocid1.privateip.oc1.iad.node1",
        r#"{"vnicId":"ocid1.vnic.oc1.iad.node2"}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(v["message"], "Cannot reassign primary private IP addresses");
    let (r, v) = f.call("PUT", vip, r#"{"vnicId":"ocid1.vnic.oc1.iad.node3"}"#);
    assert_eq!(
        (r.status, v["code"].as_str()),
        (400, Some("InvalidParameter"))
    );
    // Read-only principal: hidden as not found.
    let (r, v) = f.call_as(
        &f.reader,
        "PUT",
        vip,
        r#"{"vnicId":"ocid1.vnic.oc1.iad.node1"}"#,
    );
    assert_eq!(
        (r.status, v["code"].as_str()),
        (404, Some("NotAuthorizedOrNotFound"))
    );
    let (r, _) = f.call_as(&f.reader, "GET", vip, "");
    assert_eq!(r.status, 200);
}

#[test]
fn create_with_retry_token_conflicts_and_delete() {
    let f = fixture();
    let body = r#"{"vnicId":"ocid1.vnic.oc1.iad.node2","ipAddress":"10.0.1.50"}"#;
    let t = "/20160918/privateIps";
    let mut h = f
        .user
        .headers("POST", t, body.as_bytes(), &now_date(), true);
    h.push(("opc-retry-token".into(), "tok-1".into()));
    let (r1, v1) = f.raw("POST", t, &h, body.as_bytes());
    assert_eq!(r1.status, 200, "{v1}");
    assert!(v1["displayName"]
        .as_str()
        .unwrap()
        .starts_with("privateip20"));
    let (r2, v2) = f.raw("POST", t, &h, body.as_bytes());
    assert_eq!(
        (r2.status, &v2["id"]),
        (200, &v1["id"]),
        "replayed, not created twice"
    );
    let (r, v) = f.call("POST", t, body);
    assert_eq!((r.status, v["code"].as_str()), (409, Some("Conflict")));
    let (r, _) = f.call(
        "POST",
        t,
        r#"{"vnicId":"ocid1.vnic.oc1.iad.node2","ipAddress":"10.0.2.50"}"#,
    );
    assert_eq!(r.status, 400);
    let (r, v) = f.call("POST", t, r#"{"ipAddress":"10.0.1.51"}"#);
    assert_eq!(
        (r.status, v["code"].as_str()),
        (400, Some("MissingParameter"))
    );
    let (r, v) = f.call("POST", t, r#"{"vnicId":"ocid1.vnic.oc1.iad.node2"}"#);
    assert_eq!(
        (r.status, v["ipAddress"].as_str()),
        (200, Some("10.0.1.2")),
        "lowest free"
    );
    let (r, _) = f.call_as(
        &f.reader,
        "POST",
        t,
        r#"{"vnicId":"ocid1.vnic.oc1.iad.node2"}"#,
    );
    assert_eq!(r.status, 404);
    // Delete: primary refused; the VIP's reserved public IP is left unassigned.
    let (r, _) = f.call(
        "DELETE",
        "/20160918/privateIps/ocid1.privateip.oc1.iad.node2",
        "",
    );
    assert_eq!(r.status, 400);
    let (r, _) = f.call(
        "DELETE",
        "/20160918/privateIps/ocid1.privateip.oc1.iad.vip",
        "",
    );
    assert_eq!((r.status, r.body.len()), (204, 0));
    let (_, v) = f.call(
        "GET",
        "/20160918/publicIps/ocid1.publicip.oc1.iad.reserved",
        "",
    );
    assert_eq!(v["lifecycleState"], "AVAILABLE");
    assert!(v.get("assignedEntityId").is_none());
}

#[test]
fn public_ip_moves_asynchronously() {
    let f = fixture();
    let pip = "/20160918/publicIps/ocid1.publicip.oc1.iad.spare";
    let (r, v) = f.call(
        "POST",
        "/20160918/publicIps/actions/getByIpAddress",
        r#"{"ipAddress":"203.0.113.11"}"#,
    );
    assert_eq!(
        (r.status, v["lifecycleState"].as_str()),
        (200, Some("AVAILABLE"))
    );
    let (r, v) = f.call(
        "PUT",
        pip,
        r#"{"privateIpId":"ocid1.privateip.oc1.iad.node2"}"#,
    );
    assert_eq!(
        (r.status, v["lifecycleState"].as_str()),
        (200, Some("ASSIGNING")),
        "{v}"
    );
    assert_eq!(v["assignedEntityId"], "ocid1.privateip.oc1.iad.node2");
    // A change during the transition: 409 IncorrectState.
    let (r, v) = f.call("PUT", pip, r#"{"privateIpId":""}"#);
    assert_eq!(
        (r.status, v["code"].as_str()),
        (409, Some("IncorrectState"))
    );
    // The target already has a public IP: 409.
    let (r, _) = f.call(
        "PUT",
        "/20160918/publicIps/ocid1.publicip.oc1.iad.reserved",
        r#"{"privateIpId":"ocid1.privateip.oc1.iad.node2"}"#,
    );
    assert_eq!(r.status, 409);
    std::thread::sleep(Duration::from_millis(850));
    let (_, v) = f.call("GET", pip, "");
    assert_eq!(v["lifecycleState"], "ASSIGNED");
    let (_, v) = f.call("GET", "/20160918/vnics/ocid1.vnic.oc1.iad.node2", "");
    assert_eq!(v["publicIp"], "203.0.113.11");
    // A silently failing assignment ends AVAILABLE (§2.6).
    f.oci.fail_next_public_ip_assignments(1);
    let (r, _) = f.call(
        "PUT",
        "/20160918/publicIps/ocid1.publicip.oc1.iad.reserved",
        r#"{"privateIpId":"ocid1.privateip.oc1.iad.node1"}"#,
    );
    assert_eq!(r.status, 200);
    std::thread::sleep(Duration::from_millis(850));
    let (_, v) = f.call(
        "GET",
        "/20160918/publicIps/ocid1.publicip.oc1.iad.reserved",
        "",
    );
    assert_eq!(v["lifecycleState"], "AVAILABLE");
    let (r, _) = f.call(
        "POST",
        "/20160918/publicIps/actions/getByPrivateIpId",
        r#"{"privateIpId":"ocid1.privateip.oc1.iad.vip"}"#,
    );
    assert_eq!(r.status, 404);
}

#[test]
fn imds_v2_only_with_bearer_and_per_source_address() {
    let f = fixture();
    assert_eq!(f.imds("127.0.0.11", "/opc/v2/instance/", false).status, 401);
    assert_eq!(f.imds("127.0.0.11", "/opc/v1/instance/", true).status, 404);
    assert_eq!(f.imds("127.0.0.99", "/opc/v2/instance/", true).status, 404);
    let r = f.imds("127.0.0.11", "/opc/v2/instance/", true);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["id"], "ocid1.instance.oc1.iad.node1");
    assert_eq!(v["region"], "iad");
    assert_eq!(v["canonicalRegionName"], "us-ashburn-1");
    assert_eq!(v["regionInfo"]["realmDomainComponent"], "oraclecloud.com");
    assert_eq!(
        f.imds("127.0.0.12", "/opc/v2/instance/region", true).body,
        b"iad"
    );
    assert_eq!(
        f.imds("127.0.0.12", "/opc/v2/instance/regionInfo/regionKey", true)
            .body,
        b"IAD"
    );
    let r = f.imds("127.0.0.12", "/opc/v2/vnics/", true);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v[0]["vnicId"], "ocid1.vnic.oc1.iad.node2");
    assert_eq!(v[0]["macAddr"], "02:00:17:00:00:02");
    assert_eq!(v[0]["subnetCidrBlock"], "10.0.1.0/24");
    assert_eq!(v[0]["virtualRouterIp"], "10.0.1.1");
    let mut h = vec![("Authorization".to_string(), "Bearer Oracle".to_string())];
    h.push(("X-Forwarded-For".into(), "1.2.3.4".into()));
    let req = Request {
        method: "GET",
        target: "/opc/v2/instance/",
        headers: &h,
        body: b"",
        peer: "127.0.0.11".parse().unwrap(),
        instance: None,
    };
    assert_eq!(f.oci.handle_imds(&req).status, 403);
}

/// What an instance does for instance principals (§4.1), done by hand.
fn federate(
    f: &Fixture,
    peer: &str,
    sha256_form: bool,
    with_host: bool,
) -> (Response, RsaPrivateKey) {
    let cert_pem = String::from_utf8(f.imds(peer, "/opc/v2/identity/cert.pem", true).body).unwrap();
    let key_pem = String::from_utf8(f.imds(peer, "/opc/v2/identity/key.pem", true).body).unwrap();
    let int_pem =
        String::from_utf8(f.imds(peer, "/opc/v2/identity/intermediate.pem", true).body).unwrap();
    let strip = |p: &str| {
        p.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    use rsa::pkcs1::DecodeRsaPrivateKey;
    let leaf_key = RsaPrivateKey::from_pkcs1_pem(&key_pem).unwrap();
    let cert_der = STANDARD.decode(strip(&cert_pem)).unwrap();
    let session = pki::generate_rsa_2048().unwrap();
    let spki = session.to_public_key().to_public_key_der().unwrap();
    let mut body = json!({
        "certificate": strip(&cert_pem),
        "publicKey": STANDARD.encode(spki.as_bytes()),
        "intermediateCertificates": [strip(&int_pem)],
    });
    let key_id = if sha256_form {
        body["fingerprintAlgorithm"] = json!("SHA256");
        format!(
            "{TENANCY}/fed-x509-sha256/{}",
            pki::fingerprint(&ring::digest::SHA256, &cert_der, false)
        )
    } else {
        format!(
            "{TENANCY}/fed-x509/{}",
            pki::fingerprint(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert_der, true)
        )
    };
    let body = body.to_string();
    let s = TestSigner::new(&leaf_key, key_id);
    let h = s.headers("POST", "/v1/x509", body.as_bytes(), &now_date(), with_host);
    let (r, _) = f.raw("POST", "/v1/x509", &h, body.as_bytes());
    (r, session)
}

#[test]
fn instance_principal_flow_both_key_id_forms_then_revocation_and_rotation() {
    let f = fixture();
    for (sha256, host) in [(true, false), (false, false), (true, true)] {
        let (r, session) = federate(&f, "127.0.0.11", sha256, host);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let jwt = v["token"].as_str().unwrap().to_owned();
        let s = TestSigner::new(&session, format!("ST${jwt}"));
        let t = "/20160918/vnics/ocid1.vnic.oc1.iad.node1";
        let h = s.headers("GET", t, b"", &now_date(), true);
        assert_eq!(f.raw("GET", t, &h, b"").0.status, 200);
        // The token with another key: 401.
        let wrong = TestSigner::new(&pki::generate_rsa_2048().unwrap(), format!("ST${jwt}"));
        let h = wrong.headers("GET", t, b"", &now_date(), true);
        assert_eq!(f.raw("GET", t, &h, b"").0.status, 401);
    }
    // Revocation mid-operation: the token stops working.
    let (r, session) = federate(&f, "127.0.0.12", true, false);
    let jwt = serde_json::from_slice::<Value>(&r.body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = TestSigner::new(&session, format!("ST${jwt}"));
    assert!(f.oci.revoke_tokens() >= 1);
    let t = "/20160918/vnics/ocid1.vnic.oc1.iad.node2";
    let h = s.headers("GET", t, b"", &now_date(), true);
    let (r, v) = f.raw("GET", t, &h, b"");
    assert_eq!(r.status, 401, "{v}");
    // Rotation: IMDS serves a new certificate; the old one still federates until expiry.
    let before = f.imds("127.0.0.12", "/opc/v2/identity/cert.pem", true).body;
    f.oci
        .rotate_identity("ocid1.instance.oc1.iad.node2")
        .unwrap();
    let after = f.imds("127.0.0.12", "/opc/v2/identity/cert.pem", true).body;
    assert_ne!(before, after);
    assert_eq!(federate(&f, "127.0.0.12", false, false).0.status, 200);
}

#[test]
fn federation_refuses_bad_requests() {
    let f = fixture();
    // Not signed at all.
    let (r, _) = f.raw("POST", "/v1/x509", &[], b"{}");
    assert_eq!(r.status, 401);
    // Signed with an API key instead of the certificate key.
    let body = br#"{"certificate":"AAAA","publicKey":"AAAA"}"#;
    let h = f.user.headers("POST", "/v1/x509", body, &now_date(), false);
    assert_eq!(f.raw("POST", "/v1/x509", &h, body).0.status, 401);
    // A certificate the instance did not get from us: tampered base64.
    let body = br#"{"certificate":"AAAA","publicKey":"AAAA","intermediateCertificates":[]}"#;
    let h = f.user.headers("POST", "/v1/x509", body, &now_date(), false);
    assert_eq!(f.raw("POST", "/v1/x509", &h, body).0.status, 401);
}

#[test]
fn security_token_expires_after_its_lifetime() {
    let f = fixture();
    f.oci.set_token_lifetime(3);
    let (r, session) = federate(&f, "127.0.0.11", true, false);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let jwt = v["token"].as_str().unwrap();
    let s = TestSigner::new(&session, format!("ST${jwt}"));
    let t = "/20160918/vnics/ocid1.vnic.oc1.iad.node1";
    let h = s.headers("GET", t, b"", &now_date(), true);
    assert_eq!(f.raw("GET", t, &h, b"").0.status, 200);
    std::thread::sleep(Duration::from_millis(3100));
    let h = s.headers("GET", t, b"", &now_date(), true);
    let (r, v) = f.raw("GET", t, &h, b"");
    assert_eq!(r.status, 401);
    assert!(v["message"].as_str().unwrap().contains("expired"), "{v}");
}

#[test]
fn read_only_instance_principal_can_read_but_not_move() {
    let f = fixture();
    // node3 (access = "read") reaches IMDS through its own listener in real use; here the
    // request names it directly.
    let get = |p: &str| {
        let h = vec![("Authorization".to_string(), "Bearer Oracle".to_string())];
        let req = Request {
            method: "GET",
            target: p,
            headers: &h,
            body: b"",
            peer: "127.0.0.1".parse().unwrap(),
            instance: Some("ocid1.instance.oc1.iad.node3"),
        };
        f.oci.handle_imds(&req).body
    };
    let cert_pem = String::from_utf8(get("/opc/v2/identity/cert.pem")).unwrap();
    let key_pem = String::from_utf8(get("/opc/v2/identity/key.pem")).unwrap();
    let int_pem = String::from_utf8(get("/opc/v2/identity/intermediate.pem")).unwrap();
    let strip = |p: &str| {
        p.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    use rsa::pkcs1::DecodeRsaPrivateKey;
    let leaf_key = RsaPrivateKey::from_pkcs1_pem(&key_pem).unwrap();
    let cert_der = STANDARD.decode(strip(&cert_pem)).unwrap();
    let session = pki::generate_rsa_2048().unwrap();
    let body = json!({
        "certificate": strip(&cert_pem),
        "publicKey": STANDARD.encode(session.to_public_key().to_public_key_der().unwrap().as_bytes()),
        "intermediateCertificates": [strip(&int_pem)],
    })
    .to_string();
    let key_id = format!(
        "{TENANCY}/fed-x509/{}",
        pki::fingerprint(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert_der, true)
    );
    let h = TestSigner::new(&leaf_key, key_id).headers(
        "POST",
        "/v1/x509",
        body.as_bytes(),
        &now_date(),
        false,
    );
    let (r, v) = f.raw("POST", "/v1/x509", &h, body.as_bytes());
    assert_eq!(r.status, 200, "{v}");
    let s = TestSigner::new(&session, format!("ST${}", v["token"].as_str().unwrap()));
    let vip = "/20160918/privateIps/ocid1.privateip.oc1.iad.vip";
    let h = s.headers("GET", vip, b"", &now_date(), true);
    assert_eq!(f.raw("GET", vip, &h, b"").0.status, 200);
    let body = br#"{"vnicId":"ocid1.vnic.oc1.iad.node2"}"#;
    let h = s.headers("PUT", vip, body, &now_date(), true);
    let (r, v) = f.raw("PUT", vip, &h, body);
    assert_eq!(
        (r.status, v["code"].as_str()),
        (404, Some("NotAuthorizedOrNotFound"))
    );
}

#[test]
fn vnic_carries_the_availability_domain_imds_reports() {
    // Issue 10, fix 3: real VNICs always carry their AD, and IMDS names the same one.
    let f = fixture();
    let (_, v) = f.call("GET", "/20160918/vnics/ocid1.vnic.oc1.iad.node1", "");
    assert_eq!(v["availabilityDomain"], "Sim:US-ASHBURN-AD-1");
    let r = f.imds("127.0.0.11", "/opc/v2/instance/", true);
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["availabilityDomain"], v["availabilityDomain"]);
    // A secondary IP in a regional subnet has a null AD (DOC-net), the primary its VNIC's.
    let (_, p) = f.call(
        "GET",
        "/20160918/privateIps/ocid1.privateip.oc1.iad.vip",
        "",
    );
    assert_eq!(p["availabilityDomain"], Value::Null);
    // Without a configured AD both still agree.
    let uk = pki::generate_rsa_2048().unwrap();
    let pem = uk
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let toml =
        world_toml(&pem, &pem).replace("availability_domain = \"Sim:US-ASHBURN-AD-1\"\n", "");
    let oci = Oci::from_toml(&toml).unwrap();
    let st = oci.state.lock().unwrap();
    let vnic = st.net.vnics.get("ocid1.vnic.oc1.iad.node1").unwrap();
    let ad = st.net.vnic_json(vnic)["availabilityDomain"].clone();
    assert_eq!(ad, "Sim:IAD-AD-1");
    assert_eq!(
        crate::oci::imds::instance_document(&st, "ocid1.instance.oc1.iad.node1").unwrap()
            ["availabilityDomain"],
        ad
    );
}

#[test]
fn update_private_ip_refuses_unknown_fields() {
    // Issue 10, fix 4: the stricter answer (DEVIATIONS.md), nothing changed.
    let f = fixture();
    let vip = "/20160918/privateIps/ocid1.privateip.oc1.iad.vip";
    let (r, _) = f.call("GET", vip, "");
    let etag = r.header("etag").unwrap().to_owned();
    let (r, v) = f.call(
        "PUT",
        vip,
        r#"{"vnicId":"ocid1.vnic.oc1.iad.node2","vnicID":"typo"}"#,
    );
    assert_eq!(
        (r.status, v["code"].as_str()),
        (400, Some("CannotParseRequest")),
        "{v}"
    );
    let (r, v) = f.call("GET", vip, "");
    assert_eq!(v["vnicId"], "ocid1.vnic.oc1.iad.node1");
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    // Known fields still work.
    let (r, v) = f.call("PUT", vip, r#"{"displayName":"renamed"}"#);
    assert_eq!(r.status, 200, "{v}");
}

#[test]
fn list_private_ips_by_address_alone_has_its_own_message() {
    let f = fixture();
    let (r, v) = f.call("GET", "/20160918/privateIps?ipAddress=10.0.1.100", "");
    assert_eq!(
        (r.status, v["code"].as_str()),
        (400, Some("MissingParameter"))
    );
    let m = v["message"].as_str().unwrap();
    assert!(m.contains("subnetId") && m.contains("ipAddress"), "{m}");
    let (_, none) = f.call("GET", "/20160918/privateIps", "");
    assert_ne!(none["message"], v["message"]);
    // Neither reuses CreatePrivateIp's text.
    let (_, c) = f.call("POST", "/20160918/privateIps", "{}");
    assert_ne!(c["message"], v["message"]);
    assert_ne!(c["message"], none["message"]);
}

#[test]
fn ipv6_resource_rules() {
    let uk = pki::generate_rsa_2048().unwrap();
    let pem = uk
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let fp = pki::api_key_fingerprint(&uk.to_public_key()).unwrap();
    // sub1 is IPv6-enabled; sub2 (node3) is IPv4 only.
    let toml = world_toml(&pem, &pem).replacen(
        "cidr = \"10.0.1.0/24\"\n",
        "cidr = \"10.0.1.0/24\"\nipv6_cidr_block = \"fd00:1::/64\"\n",
        1,
    );
    let f = Fixture {
        oci: Oci::from_toml(&toml).unwrap(),
        user: TestSigner::new(&uk, format!("{TENANCY}/{USER}/{fp}")),
        reader: TestSigner::new(&uk, format!("{TENANCY}/{READER}/{fp}")),
    };
    let create = |body: &str| f.call("POST", "/20160918/ipv6", body);
    let (r, v) = create(r#"{"vnicId":"ocid1.vnic.oc1.iad.node1","ipAddress":"fd00:1::5"}"#);
    assert_eq!(r.status, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ocid1.ipv6.oc1.iad."), "{id}");
    // IPv4-only subnet, unknown field, unmodelled field, prefix length: refused.
    for (body, code) in [
        (
            r#"{"vnicId":"ocid1.vnic.oc1.iad.node3"}"#,
            "InvalidParameter",
        ),
        (
            r#"{"vnicId":"ocid1.vnic.oc1.iad.node1","ipv6Address":"fd00:1::6"}"#,
            "CannotParseRequest",
        ),
        (
            r#"{"vnicId":"ocid1.vnic.oc1.iad.node1","lifetime":"RESERVED"}"#,
            "InvalidParameter",
        ),
        (
            r#"{"vnicId":"ocid1.vnic.oc1.iad.node1","ipAddress":"fd00:1::"}"#,
            "InvalidParameter",
        ),
        (
            r#"{"subnetId":"ocid1.subnet.oc1.iad.sub1"}"#,
            "InvalidParameter",
        ),
        ("{}", "MissingParameter"),
    ] {
        let (r, v) = create(body);
        assert_eq!(
            (r.status, v["code"].as_str()),
            (400, Some(code)),
            "{body}: {v}"
        );
    }
    // A move stays in the subnet; the answer to a move leaves vnicId out, the next GET has it.
    let path = format!("/20160918/ipv6/{id}");
    let (r, v) = f.call("PUT", &path, r#"{"vnicId":"ocid1.vnic.oc1.iad.node3"}"#);
    assert_eq!(
        (r.status, v["code"].as_str()),
        (400, Some("InvalidParameter")),
        "{v}"
    );
    let (r, v) = f.call("PUT", &path, r#"{"vnicId":"ocid1.vnic.oc1.iad.node2"}"#);
    assert_eq!(r.status, 200, "{v}");
    assert!(v.get("vnicId").is_none(), "{v}");
    let (_, v) = f.call("GET", &path, "");
    assert_eq!(v["vnicId"], "ocid1.vnic.oc1.iad.node2");
    // VNIC and IMDS show the address on its new holder.
    let (_, v) = f.call("GET", "/20160918/vnics/ocid1.vnic.oc1.iad.node2", "");
    assert_eq!(v["ipv6Addresses"], json!(["fd00:1::5"]));
    let (_, v) = f.call("GET", "/20160918/vnics/ocid1.vnic.oc1.iad.node3", "");
    assert!(v.get("ipv6Addresses").is_none(), "IPv4-only subnet: {v}");
    let r = f.imds("127.0.0.12", "/opc/v2/vnics/", true);
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc[0]["ipv6Addresses"], json!(["fd00:1::5"]));
    assert_eq!(doc[0]["ipv6SubnetCidrBlock"], "fd00:1::/64");
    // Lists: ipAddress alone is refused; ipAddress+subnetId finds it.
    let (r, v) = f.call("GET", "/20160918/ipv6?ipAddress=fd00:1::5", "");
    assert_eq!(
        (r.status, v["code"].as_str()),
        (400, Some("MissingParameter"))
    );
    let (_, v) = f.call(
        "GET",
        "/20160918/ipv6?ipAddress=fd00%3A1%3A%3A5&subnetId=ocid1.subnet.oc1.iad.sub1",
        "",
    );
    assert_eq!(v[0]["id"], id.as_str());
    // A read-only principal cannot delete (404, as OCI hides what it may not touch).
    let (r, _) = f.call_as(&f.reader, "DELETE", &path, "");
    assert_eq!(r.status, 404);
    let (r, _) = f.call("DELETE", &path, "");
    assert_eq!(r.status, 204);
}
