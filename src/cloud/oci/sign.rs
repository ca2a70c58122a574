//! OCI request signing (draft-cavage-http-signatures-08, rsa-sha256, oci-api.md §3): the
//! signing string from `date`, `(request-target)`, `host` and, for POST/PUT, the body
//! headers; the `Authorization: Signature ...` header. The private key never leaves the
//! `RsaSign` implementation (`cloud/secret.rs`), and nothing here logs.

use base64::Engine as _;

use crate::cloud::secret::RsaSign;
use crate::http::Method;

/// The host (with a non-default port) and the request target of a URL, exactly as ureq
/// puts them on the wire: the signature covers what the server receives.
pub fn host_and_target(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let host = authority.strip_suffix(default_port).unwrap_or(authority);
    Some((host.to_owned(), target.to_owned()))
}

pub fn body_sha256(body: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, body);
    base64::engine::general_purpose::STANDARD.encode(d.as_ref())
}

/// The headers to add to a request: date, and for POST/PUT content-type, content-length
/// and x-content-sha256, then authorization. `with_host` is false only for the federation
/// endpoint, which (like the Go SDK) does not sign `host`.
pub fn sign_headers(
    signer: &dyn RsaSign,
    key_id: &str,
    method: Method,
    url: &str,
    date: &str,
    body: &[u8],
    with_host: bool,
) -> Result<Vec<(String, String)>, String> {
    let (host, target) =
        host_and_target(url).ok_or_else(|| format!("cannot sign a request to {url}"))?;
    let mut names = vec!["date", "(request-target)"];
    let mut lines = vec![
        format!("date: {date}"),
        format!(
            "(request-target): {} {target}",
            method.as_str().to_ascii_lowercase()
        ),
    ];
    if with_host {
        names.push("host");
        lines.push(format!("host: {host}"));
    }
    let mut headers = vec![("date".to_owned(), date.to_owned())];
    // OCI requires the body headers on POST and PUT even for an empty body (§3.1).
    if matches!(method, Method::Post | Method::Put | Method::Patch) {
        let sha = body_sha256(body);
        for (k, v) in [
            ("content-length", body.len().to_string()),
            ("content-type", "application/json".to_owned()),
            ("x-content-sha256", sha),
        ] {
            names.push(k);
            lines.push(format!("{k}: {v}"));
            headers.push((k.to_owned(), v));
        }
    }
    let signature = signer.sign(lines.join("\n").as_bytes())?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(signature);
    headers.push((
        "authorization".to_owned(),
        format!(
            "Signature version=\"1\",headers=\"{}\",keyId=\"{key_id}\",algorithm=\"rsa-sha256\",signature=\"{b64}\"",
            names.join(" ")
        ),
    ));
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::DecodeRsaPrivateKey;

    /// The Go SDK's test key (oci-api.md §3.4): 1024 bits, too short for ring, so the
    /// vectors are signed with the rsa crate; the signing string and header assembly
    /// under test are the production ones.
    const KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
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
-----END RSA PRIVATE KEY-----";
    const KEY_ID: &str = "ocid1.tenancy.oc1..aaaaaaaaba3pv6wkcr4jqae5f15p2b2m2yt2j6rx32uzr4h25vqstifsfdsq/ocid1.user.oc1..aaaaaaaat5nvwcna5j6aqzjcaty5eqbb6qt2jvpkanghtgdaqedqw3rynjq/20:3b:97:13:55:1c:5b:0d:d3:37:d8:50:4e:c5:3a:34";
    const DATE: &str = "Thu, 05 Jan 2014 21:31:40 GMT";

    struct TestKey(rsa::RsaPrivateKey);

    impl RsaSign for TestKey {
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
            use rsa::sha2::{Digest, Sha256};
            let digest = Sha256::digest(msg);
            self.0
                .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest)
                .map_err(|e| e.to_string())
        }
    }

    fn key() -> TestKey {
        TestKey(rsa::RsaPrivateKey::from_pkcs1_pem(KEY).unwrap())
    }

    fn auth(headers: &[(String, String)]) -> &str {
        &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1
    }

    #[test]
    fn go_sdk_vector_get() {
        let url = "https://iaas.us-phoenix-1.oraclecloud.com/20160918/instances?availabilityDomain=Pjwf%3A%20PHX-AD-1&compartmentId=ocid1.compartment.oc1..aaaaaaaam3we6vgnherjq5q2idnccdflvjsnog7mlr6rtdb25gilchfeyjxa&displayName=TeamXInstances&volumeId=ocid1.volume.oc1.phx.abyhqljrgvttnlx73nmrwfaux7kcvzfs3s66izvxf2h4lgvyndsdsnoiwr5q";
        let h = sign_headers(&key(), KEY_ID, Method::Get, url, DATE, b"", true).unwrap();
        assert_eq!(
            auth(&h),
            format!("Signature version=\"1\",headers=\"date (request-target) host\",keyId=\"{KEY_ID}\",algorithm=\"rsa-sha256\",signature=\"GBas7grhyrhSKHP6AVIj/h5/Vp8bd/peM79H9Wv8kjoaCivujVXlpbKLjMPeDUhxkFIWtTtLBj3sUzaFj34XE6YZAHc9r2DmE4pMwOAy/kiITcZxa1oHPOeRheC0jP2dqbTll8fmTZVwKZOKHYPtrLJIJQHJjNvxFWeHQjMaR7M=\"")
        );
        assert_eq!(h.len(), 2, "GET carries no body headers: {h:?}");
    }

    #[test]
    fn go_sdk_vector_post() {
        let body = "{\n    \"compartmentId\": \"ocid1.compartment.oc1..aaaaaaaam3we6vgnherjq5q2idnccdflvjsnog7mlr6rtdb25gilchfeyjxa\",\n    \"instanceId\": \"ocid1.instance.oc1.phx.abuw4ljrlsfiqw6vzzxb43vyypt4pkodawglp3wqxjqofakrwvou52gb6s5a\",\n    \"volumeId\": \"ocid1.volume.oc1.phx.abyhqljrgvttnlx73nmrwfaux7kcvzfs3s66izvxf2h4lgvyndsdsnoiwr5q\"\n}";
        assert_eq!(body.len(), 316);
        let url = "https://iaas.us-phoenix-1.oraclecloud.com/20160918/volumeAttachments";
        let h = sign_headers(
            &key(),
            KEY_ID,
            Method::Post,
            url,
            DATE,
            body.as_bytes(),
            true,
        )
        .unwrap();
        assert!(h.contains(&(
            "x-content-sha256".into(),
            "V9Z20UJTvkvpJ50flBzKE32+6m2zJjweHpDMX/U4Uy0=".into()
        )));
        assert_eq!(
            auth(&h),
            format!("Signature version=\"1\",headers=\"date (request-target) host content-length content-type x-content-sha256\",keyId=\"{KEY_ID}\",algorithm=\"rsa-sha256\",signature=\"Mje8vIDPlwIHmD/cTDwRxE7HaAvBg16JnVcsuqaNRim23fFPgQfLoOOxae6WqKb1uPjYEl0qIdazWaBy/Ml8DRhqlocMwoSXv0fbukP8J5N80LCmzT/FFBvIvTB91XuXI3hYfP9Zt1l7S6ieVadHUfqBedWH0itrtPJBgKmrWso=\"")
        );
    }

    #[test]
    fn agent_vectors_put_and_list() {
        let url = "https://iaas.us-phoenix-1.oraclecloud.com/20160918/privateIps/ocid1.privateip.oc1.phx.exampleuniqueIDA";
        let body = br#"{"vnicId":"ocid1.vnic.oc1.phx.exampleuniqueIDB"}"#;
        let h = sign_headers(&key(), "k", Method::Put, url, DATE, body, true).unwrap();
        assert!(h.contains(&(
            "x-content-sha256".into(),
            "eIlyelSBb5BIOPqSxVDNBaZXRu7FrR0loAiFohPxONQ=".into()
        )));
        assert!(auth(&h).ends_with("signature=\"guP+tGmrdNqmpp50Z/kfX+CveSVy4lRks9yiXplFeYShGW7X5T1n5NuPB5sOj9StTRTzT056CdPnKVah8lhEKgqqhxwslolmGIWEFwJAzv8gseFv9BT68ZfCwzkQiVISZxUbGdbIAy+a1kou8iVfWVZK1gJjcTi66CmtAprmBgo=\""));
        let url = "https://iaas.us-phoenix-1.oraclecloud.com/20160918/privateIps?ipAddress=10.0.0.4&subnetId=ocid1.subnet.oc1.phx.exampleuniqueID";
        let h = sign_headers(&key(), "k", Method::Get, url, DATE, b"", true).unwrap();
        assert!(auth(&h).ends_with("signature=\"O/Gp0TmbOCphtfwZ1ilOP7ir07qbtCKa4cDmk68GtPAGVI7gYOliytkGOrnPSICTXdbfZwYMfRYd7YkL1ushHy+wxxoFvPJ2jlDC6LnluvrkyrIs2sjfU4dt9RCgf5DUargGQKVnuovJ+8Zn6GKg2WvTlvz9kBapAe0lH1j/RRA=\""));
    }

    #[test]
    fn empty_body_digest_and_hosts() {
        assert_eq!(
            body_sha256(b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(
            host_and_target("https://h:443/a?b").unwrap(),
            ("h".into(), "/a?b".into())
        );
        assert_eq!(
            host_and_target("http://127.0.0.1:8080/x").unwrap().0,
            "127.0.0.1:8080"
        );
        assert_eq!(host_and_target("https://h").unwrap().1, "/");
    }
}
