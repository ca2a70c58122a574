//! Verification of OCI request signatures (draft-cavage-http-signatures-08, rsa-sha256).
//!
//! Rules from research/oci-api.md §3.1–§3.2: `Authorization: Signature …`, `version="1"`,
//! GET/DELETE must sign `date (request-target) host`, POST/PUT/PATCH also `content-length
//! content-type x-content-sha256`; the body digest and the length are checked against the
//! bytes received; a `date` (or `x-date`, which wins) more than 5 minutes off is refused.
//! Which key verifies (API key, session token, instance certificate) is decided by callers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY};
use std::time::{Duration, SystemTime};

use super::Request;

/// Allowed distance between the client's `date` and ours (DOC-api: "more than 5 minutes").
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// The parameters of one `Authorization: Signature …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub key_id: String,
    pub algorithm: Option<String>,
    /// Signed header names, lower-cased, in the order the client used.
    pub headers: Vec<String>,
    pub signature: Vec<u8>,
    pub version: Option<String>,
}

/// Parses `Signature k="v",k="v",…`. Values are quoted and never contain a quote in
/// OCI's use (keyIds are OCIDs, fingerprints or `ST$<jwt>`).
pub fn parse_authorization(value: &str) -> Result<SignatureHeader, String> {
    let rest = value
        .trim()
        .strip_prefix("Signature ")
        .ok_or("Authorization is not a Signature")?;
    let mut key_id = None;
    let mut algorithm = None;
    let mut headers = None;
    let mut signature = None;
    let mut version = None;
    let mut s = rest.trim_start();
    while !s.is_empty() {
        let eq = s.find('=').ok_or("malformed signature parameter")?;
        let name = s[..eq].trim().to_ascii_lowercase();
        let after = &s[eq + 1..];
        let after = after
            .strip_prefix('"')
            .ok_or("signature parameter value is not quoted")?;
        let end = after.find('"').ok_or("unterminated signature parameter")?;
        let val = after[..end].to_string();
        s = after[end + 1..].trim_start();
        if let Some(r) = s.strip_prefix(',') {
            s = r.trim_start();
        } else if !s.is_empty() {
            return Err("garbage between signature parameters".into());
        }
        let slot = match name.as_str() {
            "keyid" => &mut key_id,
            "algorithm" => &mut algorithm,
            "headers" => &mut headers,
            "signature" => &mut signature,
            "version" => &mut version,
            // Unknown parameters are ignored, as draft-cavage says.
            _ => continue,
        };
        if slot.is_some() {
            return Err(format!("signature parameter {name} given twice"));
        }
        *slot = Some(val);
    }
    let key_id = key_id.ok_or("signature has no keyId")?;
    let sig = signature.ok_or("signature has no signature")?;
    let signature = STANDARD
        .decode(sig.as_bytes())
        .map_err(|_| "signature is not base64")?;
    // draft-cavage: without `headers`, only `date` is signed; OCI then refuses (too few).
    let headers = headers
        .unwrap_or_else(|| "date".into())
        .split_ascii_whitespace()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    Ok(SignatureHeader {
        key_id,
        algorithm,
        headers,
        signature,
        version,
    })
}

/// What a given endpoint demands beyond the signature itself.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// `host` must be signed. True for the APIs; the federation endpoint accepts requests
    /// without it because the Go and Python SDKs leave it out (§4.3).
    pub require_host: bool,
}

/// base64(SHA-256(body)), the `x-content-sha256` value (§3.1).
pub fn body_digest(body: &[u8]) -> String {
    STANDARD.encode(ring::digest::digest(&ring::digest::SHA256, body))
}

/// The signing string for `sig.headers`, built from the request exactly as received.
pub fn signing_string(req: &Request<'_>, sig: &SignatureHeader) -> Result<String, String> {
    let mut lines = Vec::with_capacity(sig.headers.len());
    for name in &sig.headers {
        if name == "(request-target)" {
            // The raw request-target, never a re-encoded one (§3.1 [I]).
            lines.push(format!(
                "(request-target): {} {}",
                req.method.to_ascii_lowercase(),
                req.target
            ));
        } else {
            let v = req
                .header(name)
                .ok_or_else(|| format!("signed header {name} is missing from the request"))?;
            lines.push(format!("{name}: {}", v.trim()));
        }
    }
    Ok(lines.join("\n"))
}

/// RSA PKCS#1 v1.5 SHA-256 over `msg`, with a PKCS#1 `RSAPublicKey` DER. Keys down to
/// 1024 bits verify here (the SDK test vectors use one); key sizes are policed where keys
/// enter the world (API keys, session keys), not here.
pub fn verify_rsa_sha256(public_pkcs1_der: &[u8], msg: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(
        &RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
        public_pkcs1_der,
    )
    .verify(msg, signature)
    .is_ok()
}

/// Every check of §3.1 on one request, with the key that `sig.key_id` named.
pub fn verify_request(
    req: &Request<'_>,
    sig: &SignatureHeader,
    public_pkcs1_der: &[u8],
    policy: Policy,
    now: SystemTime,
) -> Result<(), String> {
    if sig.algorithm.as_deref().unwrap_or("rsa-sha256") != "rsa-sha256" {
        return Err("algorithm must be rsa-sha256".into());
    }
    if sig.version.as_deref().unwrap_or("1") != "1" {
        return Err("signature version must be 1".into());
    }
    let has = |h: &str| sig.headers.iter().any(|x| x == h);
    let mut required: Vec<&str> = vec!["(request-target)"];
    if policy.require_host {
        required.push("host");
    }
    let method = req.method.to_ascii_uppercase();
    let with_body = matches!(method.as_str(), "POST" | "PUT" | "PATCH");
    if with_body {
        required.extend(["content-length", "content-type", "x-content-sha256"]);
    }
    for h in required {
        if !has(h) {
            return Err(format!("header {h} must be signed for {method}"));
        }
    }
    // If both are present, Oracle uses x-date (§3.1).
    let date_header = if has("x-date") {
        "x-date"
    } else if has("date") {
        "date"
    } else {
        return Err("date or x-date must be signed".into());
    };
    let signing = signing_string(req, sig)?;
    if !verify_rsa_sha256(public_pkcs1_der, signing.as_bytes(), &sig.signature) {
        return Err("signature does not verify".into());
    }
    let date = req
        .header(date_header)
        .ok_or_else(|| format!("{date_header} header missing"))?;
    let when = parse_date(date.trim()).ok_or_else(|| format!("{date_header} unparseable"))?;
    let when = crate::clock::as_client_wrote(when);
    let skew = match now.duration_since(when) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > MAX_CLOCK_SKEW {
        return Err(format!(
            "{date_header} is {} s away from the server clock",
            skew.as_secs()
        ));
    }
    if has("x-content-sha256") {
        let got = req.header("x-content-sha256").unwrap_or("").trim();
        if got != body_digest(req.body) {
            return Err("x-content-sha256 does not match the body".into());
        }
    }
    if has("content-length") {
        let got = req.header("content-length").unwrap_or("").trim();
        if got.parse::<usize>().ok() != Some(req.body.len()) {
            return Err("content-length does not match the body".into());
        }
    }
    Ok(())
}

/// An HTTP date. IMF-fixdate is parsed without checking the weekday: the Go SDK's own test
/// vectors carry `Thu, 05 Jan 2014` (a Sunday), and a mismatched weekday says nothing
/// about clock skew. Other forms go through `httpdate`.
pub fn parse_date(s: &str) -> Option<SystemTime> {
    if let Ok(t) = httpdate::parse_http_date(s) {
        return Some(t);
    }
    let (_, rest) = s.split_once(", ")?;
    let f: Vec<&str> = rest.split(' ').collect();
    let [day, mon, year, hms, "GMT"] = f.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == mon)? as i64 + 1;
    let d: i64 = day.parse().ok()?;
    let y: i64 = year.parse().ok()?;
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [hh, mm, ss] = t.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&d) || *hh > 23 || *mm > 59 || *ss > 60 || y < 1970 {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let (yy, mm_) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm_ + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPublicKey};
    use std::net::{IpAddr, Ipv4Addr};

    /// The 1024-bit key of the Go SDK's `http_signer_test.go` (research §3.4).
    pub const GO_TEST_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIICXgIBAAKBgQDCFENGw33yGihy92pDjZQhl0C36rPJj+CvfSC8+q28hxA161QF
NUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6Z4UMR7EOcpfdUE9Hf3m/hs+F
UR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJwoYi+1hqp1fIekaxsyQIDAQAB
AoGBAJR8ZkCUvx5kzv+utdl7T5MnordT1TvoXXJGXK7ZZ+UuvMNUCdN2QPc4sBiA
QWvLw1cSKt5DsKZ8UETpYPy8pPYnnDEz2dDYiaew9+xEpubyeW2oH4Zx71wqBtOK
kqwrXa/pzdpiucRRjk6vE6YY7EBBs/g7uanVpGibOVAEsqH1AkEA7DkjVH28WDUg
f1nqvfn2Kj6CT7nIcE3jGJsZZ7zlZmBmHFDONMLUrXR/Zm3pR5m0tCmBqa5RK95u
412jt1dPIwJBANJT3v8pnkth48bQo/fKel6uEYyboRtA5/uHuHkZ6FQF7OUkGogc
mSJluOdc5t6hI1VsLn0QZEjQZMEOWr+wKSMCQQCC4kXJEsHAve77oP6HtG/IiEn7
kpyUXRNvFsDE0czpJJBvL/aRFUJxuRK91jhjC68sA7NsKMGg5OXb5I5Jj36xAkEA
gIT7aFOYBFwGgQAQkWNKLvySgKbAZRTeLBacpHMuQdl1DfdntvAyqpAZ0lY0RKmW
G6aFKaqQfOXKCyWoUiVknQJAXrlgySFci/2ueKlIE1QqIiLSZ8V8OlpFLRnb1pzI
7U1yQXnTAEFYM560yJlzUpOb1V4cScGd365tiSMvxLOvTA==
-----END RSA PRIVATE KEY-----
";

    const KEY_ID: &str = "ocid1.tenancy.oc1..aaaaaaaaba3pv6wkcr4jqae5f15p2b2m2yt2j6rx32uzr4h25vqstifsfdsq/ocid1.user.oc1..aaaaaaaat5nvwcna5j6aqzjcaty5eqbb6qt2jvpkanghtgdaqedqw3rynjq/20:3b:97:13:55:1c:5b:0d:d3:37:d8:50:4e:c5:3a:34";
    const DATE: &str = "Thu, 05 Jan 2014 21:31:40 GMT";
    const HOST: &str = "iaas.us-phoenix-1.oraclecloud.com";

    fn go_public_pkcs1() -> Vec<u8> {
        let k = rsa::RsaPrivateKey::from_pkcs1_pem(GO_TEST_KEY).unwrap();
        k.to_public_key()
            .to_pkcs1_der()
            .unwrap()
            .as_bytes()
            .to_vec()
    }

    fn at_vector_date() -> SystemTime {
        let t = parse_date(DATE).unwrap();
        assert_eq!(httpdate::fmt_http_date(t), "Sun, 05 Jan 2014 21:31:40 GMT");
        t
    }

    fn req<'a>(
        method: &'a str,
        target: &'a str,
        headers: &'a [(String, String)],
        body: &'a [u8],
    ) -> Request<'a> {
        Request {
            method,
            target,
            headers,
            body,
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            instance: None,
        }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const API: Policy = Policy { require_host: true };

    /// research §3.4, GET vector of `TestOCIRequestSigner_Sign`.
    #[test]
    fn go_sdk_get_vector_verifies() {
        let target = "/20160918/instances?availabilityDomain=Pjwf%3A%20PHX-AD-1&compartmentId=ocid1.compartment.oc1..aaaaaaaam3we6vgnherjq5q2idnccdflvjsnog7mlr6rtdb25gilchfeyjxa&displayName=TeamXInstances&volumeId=ocid1.volume.oc1.phx.abyhqljrgvttnlx73nmrwfaux7kcvzfs3s66izvxf2h4lgvyndsdsnoiwr5q";
        let auth = format!("Signature version=\"1\",headers=\"date (request-target) host\",keyId=\"{KEY_ID}\",algorithm=\"rsa-sha256\",signature=\"GBas7grhyrhSKHP6AVIj/h5/Vp8bd/peM79H9Wv8kjoaCivujVXlpbKLjMPeDUhxkFIWtTtLBj3sUzaFj34XE6YZAHc9r2DmE4pMwOAy/kiITcZxa1oHPOeRheC0jP2dqbTll8fmTZVwKZOKHYPtrLJIJQHJjNvxFWeHQjMaR7M=\"");
        let headers = h(&[("Date", DATE), ("Host", HOST), ("Authorization", &auth)]);
        let r = req("GET", target, &headers, b"");
        let sig = parse_authorization(&auth).unwrap();
        assert_eq!(sig.key_id, KEY_ID);
        assert_eq!(sig.headers, ["date", "(request-target)", "host"]);
        let pk = go_public_pkcs1();
        verify_request(&r, &sig, &pk, API, at_vector_date()).unwrap();
        // The same request re-encoded (%20 → +) must no longer verify: the raw target counts.
        let target2 = target.replace("%20", "+");
        let r2 = req("GET", &target2, &headers, b"");
        assert!(verify_request(&r2, &sig, &pk, API, at_vector_date()).is_err());
    }

    /// research §3.4, POST vector (316-byte body).
    #[test]
    fn go_sdk_post_vector_verifies() {
        let body = "{\n    \"compartmentId\": \"ocid1.compartment.oc1..aaaaaaaam3we6vgnherjq5q2idnccdflvjsnog7mlr6rtdb25gilchfeyjxa\",\n    \"instanceId\": \"ocid1.instance.oc1.phx.abuw4ljrlsfiqw6vzzxb43vyypt4pkodawglp3wqxjqofakrwvou52gb6s5a\",\n    \"volumeId\": \"ocid1.volume.oc1.phx.abyhqljrgvttnlx73nmrwfaux7kcvzfs3s66izvxf2h4lgvyndsdsnoiwr5q\"\n}";
        assert_eq!(body.len(), 316);
        assert_eq!(
            body_digest(body.as_bytes()),
            "V9Z20UJTvkvpJ50flBzKE32+6m2zJjweHpDMX/U4Uy0="
        );
        let auth = format!("Signature version=\"1\",headers=\"date (request-target) host content-length content-type x-content-sha256\",keyId=\"{KEY_ID}\",algorithm=\"rsa-sha256\",signature=\"Mje8vIDPlwIHmD/cTDwRxE7HaAvBg16JnVcsuqaNRim23fFPgQfLoOOxae6WqKb1uPjYEl0qIdazWaBy/Ml8DRhqlocMwoSXv0fbukP8J5N80LCmzT/FFBvIvTB91XuXI3hYfP9Zt1l7S6ieVadHUfqBedWH0itrtPJBgKmrWso=\"");
        let headers = h(&[
            ("date", DATE),
            ("host", HOST),
            ("content-length", "316"),
            ("content-type", "application/json"),
            (
                "x-content-sha256",
                "V9Z20UJTvkvpJ50flBzKE32+6m2zJjweHpDMX/U4Uy0=",
            ),
            ("authorization", &auth),
        ]);
        let sig = parse_authorization(&auth).unwrap();
        let pk = go_public_pkcs1();
        let r = req(
            "POST",
            "/20160918/volumeAttachments",
            &headers,
            body.as_bytes(),
        );
        verify_request(&r, &sig, &pk, API, at_vector_date()).unwrap();
        // A body changed after signing is caught by the digest check.
        let tampered = body.replace("volumeId", "volumeID");
        let r = req(
            "POST",
            "/20160918/volumeAttachments",
            &headers,
            tampered.as_bytes(),
        );
        let e = verify_request(&r, &sig, &pk, API, at_vector_date()).unwrap_err();
        assert!(e.contains("x-content-sha256"), "{e}");
    }

    /// research §3.5: the agent's own UpdatePrivateIp and ListPrivateIps vectors.
    #[test]
    fn agent_vectors_verify() {
        let pk = go_public_pkcs1();
        let body = br#"{"vnicId":"ocid1.vnic.oc1.phx.exampleuniqueIDB"}"#;
        assert_eq!(body.len(), 48);
        let auth = format!("Signature version=\"1\",headers=\"date (request-target) host content-length content-type x-content-sha256\",keyId=\"{KEY_ID}\",algorithm=\"rsa-sha256\",signature=\"guP+tGmrdNqmpp50Z/kfX+CveSVy4lRks9yiXplFeYShGW7X5T1n5NuPB5sOj9StTRTzT056CdPnKVah8lhEKgqqhxwslolmGIWEFwJAzv8gseFv9BT68ZfCwzkQiVISZxUbGdbIAy+a1kou8iVfWVZK1gJjcTi66CmtAprmBgo=\"");
        let headers = h(&[
            ("date", DATE),
            ("host", HOST),
            ("content-length", "48"),
            ("content-type", "application/json"),
            (
                "x-content-sha256",
                "eIlyelSBb5BIOPqSxVDNBaZXRu7FrR0loAiFohPxONQ=",
            ),
        ]);
        let sig = parse_authorization(&auth).unwrap();
        let r = req(
            "PUT",
            "/20160918/privateIps/ocid1.privateip.oc1.phx.exampleuniqueIDA",
            &headers,
            body,
        );
        verify_request(&r, &sig, &pk, API, at_vector_date()).unwrap();

        let auth = format!("Signature version=\"1\",headers=\"date (request-target) host\",keyId=\"{KEY_ID}\",algorithm=\"rsa-sha256\",signature=\"O/Gp0TmbOCphtfwZ1ilOP7ir07qbtCKa4cDmk68GtPAGVI7gYOliytkGOrnPSICTXdbfZwYMfRYd7YkL1ushHy+wxxoFvPJ2jlDC6LnluvrkyrIs2sjfU4dt9RCgf5DUargGQKVnuovJ+8Zn6GKg2WvTlvz9kBapAe0lH1j/RRA=\"");
        let headers = h(&[("date", DATE), ("host", HOST)]);
        let sig = parse_authorization(&auth).unwrap();
        let r = req(
            "GET",
            "/20160918/privateIps?ipAddress=10.0.0.4&subnetId=ocid1.subnet.oc1.phx.exampleuniqueID",
            &headers,
            b"",
        );
        verify_request(&r, &sig, &pk, API, at_vector_date()).unwrap();
    }

    #[test]
    fn refuses_skew_missing_headers_and_wrong_key() {
        let pk = go_public_pkcs1();
        let auth = format!("Signature version=\"1\",headers=\"date (request-target) host\",keyId=\"{KEY_ID}\",algorithm=\"rsa-sha256\",signature=\"O/Gp0TmbOCphtfwZ1ilOP7ir07qbtCKa4cDmk68GtPAGVI7gYOliytkGOrnPSICTXdbfZwYMfRYd7YkL1ushHy+wxxoFvPJ2jlDC6LnluvrkyrIs2sjfU4dt9RCgf5DUargGQKVnuovJ+8Zn6GKg2WvTlvz9kBapAe0lH1j/RRA=\"");
        let headers = h(&[("date", DATE), ("host", HOST)]);
        let sig = parse_authorization(&auth).unwrap();
        let target =
            "/20160918/privateIps?ipAddress=10.0.0.4&subnetId=ocid1.subnet.oc1.phx.exampleuniqueID";
        let r = req("GET", target, &headers, b"");
        // 5 min 1 s late: refused; 4 min 59 s: fine.
        let late = at_vector_date() + Duration::from_secs(301);
        assert!(verify_request(&r, &sig, &pk, API, late)
            .unwrap_err()
            .contains("away"));
        let ok = at_vector_date() - Duration::from_secs(299);
        verify_request(&r, &sig, &pk, API, ok).unwrap();
        // Host must be signed for the API.
        let mut no_host = sig.clone();
        no_host.headers.retain(|x| x != "host");
        assert!(verify_request(&r, &no_host, &pk, API, at_vector_date()).is_err());
        // A POST signed like a GET is refused before any crypto.
        let r = req("POST", target, &headers, b"");
        assert!(verify_request(&r, &sig, &pk, API, at_vector_date())
            .unwrap_err()
            .contains("content-length"));
        // Another key does not verify.
        let other = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        let other_pk = other.to_public_key().to_pkcs1_der().unwrap();
        let r = req("GET", target, &headers, b"");
        assert!(verify_request(&r, &sig, other_pk.as_bytes(), API, at_vector_date()).is_err());
    }

    #[test]
    fn parses_python_parameter_order_and_rejects_garbage() {
        let a = "Signature algorithm=\"rsa-sha256\",headers=\"date (request-target) host\",keyId=\"ST$eyJ.a.b\",signature=\"AAAA\",version=\"1\"";
        let s = parse_authorization(a).unwrap();
        assert_eq!(s.key_id, "ST$eyJ.a.b");
        assert_eq!(s.version.as_deref(), Some("1"));
        assert!(parse_authorization("Bearer x").is_err());
        assert!(parse_authorization("Signature keyId=abc").is_err());
        assert!(
            parse_authorization("Signature keyId=\"a\",keyId=\"b\",signature=\"AAAA\"").is_err()
        );
    }
}
