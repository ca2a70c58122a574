//! AWS Signature Version 4 (AWS4-HMAC-SHA256) for EC2 and STS requests, as botocore's
//! `SigV4Auth` computes it (research/aws-azure.md §A3): canonical request, string to sign,
//! the derived signing key and the `Authorization` header; `X-Amz-Security-Token` is added
//! before signing for temporary credentials, so it is signed. Nothing here logs, and
//! `Keys` prints no secret.
//!
//! Why a signer on ring and not the `aws-sigv4` crate (measured 2026-12-02, aws-sigv4
//! 1.6.4, a scratch binary signing one EC2 request with ureq linked, this project's release
//! profile): the crate needs Rust 1.94.1 (this project promises 1.89), pulls 28 crates the
//! project does not have (tokio, futures-util, tracing and its proc-macro, the
//! aws-smithy-* runtime, hmac, base64-simd, ...) plus second versions of sha2 and digest,
//! makes the stripped binary 166 KB larger (2,041,152 -> 2,207,616 bytes) and a clean
//! release build 30 s longer (83 s -> 113 s on this machine's two cores), and its API goes
//! through the smithy identity types that change with the SDK. The algorithm itself is fixed and small, ring (already here for
//! HMAC and SHA-256) does the cryptography, and the AWS test suite plus botocore-checked
//! EC2 vectors pin it (tests below). Everything volatile stays in this one module.

use std::time::SystemTime;

use ring::{digest, hmac};

use crate::cloud::secret::Secret;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Headers botocore never signs: hop-by-hop ones a proxy may change, and the user agent.
const UNSIGNED: &[&str] = &[
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
    "authorization",
];

/// Credentials a request is signed with. The access key id is an identifier (AWS shows
/// it in consoles and logs); the secret and the session token are not.
#[derive(Clone)]
pub struct Keys {
    pub access_key: String,
    pub secret: Secret,
    pub token: Option<Secret>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("access_key", &self.access_key)
            .field("secret", &self.secret)
            .field("token", &self.token)
            .finish()
    }
}

/// The parts of a request that are signed, as they go on the wire.
pub struct Unsigned<'a> {
    pub method: &'a str,
    /// The path as sent (already percent-encoded; SigV4 encodes it once more, as botocore
    /// does for every service but S3).
    pub path: &'a str,
    /// The query string as sent, without `?`.
    pub query: &'a str,
    /// Every header to sign, `Host` included.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn amz_date(at: SystemTime) -> String {
    let t = time::OffsetDateTime::from(at);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, b).as_ref())
}

/// SigV4's URI encoding: everything but `A-Za-z0-9-_.~` (and `/` when `keep_slash`).
fn uri_encode(b: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(b.len());
    for &c in b {
        if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) || (keep_slash && c == b'/') {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// Percent-decoding to bytes; a `%` not followed by two hex digits stays as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = (b[i + 1] as char).to_digit(16);
            let l = (b[i + 2] as char).to_digit(16);
            if let (Some(h), Some(l)) = (h, l) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// RFC 3986 dot-segment removal with empty segments collapsed (botocore's
/// `normalize_url_path`).
fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let last = if path.ends_with('/') && !out.is_empty() {
        "/"
    } else {
        ""
    };
    format!("/{}{last}", out.join("/"))
}

/// The lower-case names to sign, sorted, each once.
fn signed_names(headers: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(k, _)| k.trim().to_ascii_lowercase())
        .filter(|k| !UNSIGNED.contains(&k.as_str()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The canonical request over `names` (lower-case, sorted).
pub fn canonical_request(req: &Unsigned<'_>, names: &[String]) -> String {
    let path = uri_encode(normalize_path(req.path).as_bytes(), true);
    let mut pairs: Vec<(String, String)> = req
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut headers = String::new();
    for name in names {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    format!(
        "{}\n{path}\n{}\n{headers}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        query.join("&"),
        names.join(";"),
        sha256_hex(req.body)
    )
}

pub fn string_to_sign(amz: &str, scope: &str, canonical: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    )
}

fn mac(key: &[u8], msg: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
}

/// `kSigning` = HMAC chain over the date, region, service and `aws4_request`.
pub fn signing_key(secret: &Secret, date: &str, region: &str, service: &str) -> hmac::Key {
    let k = mac(
        format!("AWS4{}", secret.expose()).as_bytes(),
        date.as_bytes(),
    );
    let k = mac(k.as_ref(), region.as_bytes());
    let k = mac(k.as_ref(), service.as_bytes());
    let k = mac(k.as_ref(), b"aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k.as_ref())
}

/// The headers to add to `req` so that `region`/`service` accept it at time `at`:
/// `X-Amz-Date`, `X-Amz-Security-Token` (temporary credentials) and `Authorization`.
/// Every header of `req` is signed but the hop-by-hop ones and the user agent.
pub fn sign(
    req: &Unsigned<'_>,
    keys: &Keys,
    region: &str,
    service: &str,
    at: SystemTime,
) -> Vec<(String, String)> {
    let amz = amz_date(at);
    let mut added = vec![("X-Amz-Date".to_owned(), amz.clone())];
    if let Some(t) = &keys.token {
        added.push(("X-Amz-Security-Token".to_owned(), t.expose().to_owned()));
    }
    let all: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(k, _)| {
            !k.eq_ignore_ascii_case("x-amz-date") && !k.eq_ignore_ascii_case("x-amz-security-token")
        })
        .chain(added.iter())
        .cloned()
        .collect();
    let names = signed_names(&all);
    let view = Unsigned {
        headers: &all,
        ..*req
    };
    let date = &amz[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let sts = string_to_sign(&amz, &scope, &canonical_request(&view, &names));
    let key = signing_key(&keys.secret, date, region, service);
    let signature = hex(hmac::sign(&key, sts.as_bytes()).as_ref());
    added.push((
        "Authorization".to_owned(),
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
            keys.access_key,
            names.join(";")
        ),
    ));
    added
}

/// The `Host` header ureq sends for `url` (it takes a `Host` set on the request as it
/// is): the authority without userinfo, with the port only when it is not the scheme's
/// default. `None` for a URL without a host.
pub fn host_header(url: &str) -> Option<String> {
    let uri: ureq::http::Uri = url.parse().ok()?;
    let host = uri.host()?;
    let default = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    Some(match uri.port_u16() {
        Some(p) if p != default => format!("{host}:{p}"),
        _ => host.to_owned(),
    })
}

#[cfg(test)]
#[path = "../../../crates/sim/src/aws/sigv4_suite.rs"]
mod suite;

#[cfg(test)]
mod tests {
    use super::*;

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn keys(token: Option<&str>) -> Keys {
        Keys {
            access_key: AKID.into(),
            secret: Secret::new(SECRET.into()),
            token: token.map(|t| Secret::new(t.into())),
        }
    }

    fn at(unix: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(unix)
    }

    /// 2015-08-30T12:36:00Z, the suite's time.
    const SUITE_TIME: u64 = 1_440_938_160;

    /// A suite `.req`: request line, headers (obsolete line folding joined), body.
    fn parse_raw(raw: &str) -> (String, String, String, Vec<(String, String)>, Vec<u8>) {
        let (head, body) = match raw.split_once("\n\n") {
            Some((h, b)) => (h, b.as_bytes().to_vec()),
            None => (raw, Vec::new()),
        };
        let mut lines = head.lines();
        let first = lines.next().unwrap();
        let (method, rest) = first.split_once(' ').unwrap();
        let target = rest.strip_suffix(" HTTP/1.1").unwrap();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for l in lines {
            if l.starts_with(' ') || l.starts_with('\t') {
                let last = headers.last_mut().unwrap();
                last.1 = format!("{} {}", last.1, l.trim());
            } else {
                let (k, v) = l.split_once(':').unwrap();
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        (method.into(), path.into(), query.into(), headers, body)
    }

    /// The AWS SigV4 test suite (botocore's vendored copy, the emulator's fixture file):
    /// canonical request, string to sign and the whole `Authorization` header of each case.
    #[test]
    fn aws_sigv4_test_suite() {
        assert_eq!(amz_date(at(SUITE_TIME)), "20150830T123600Z");
        let mut checked = 0;
        for case in suite::CASES {
            let (method, path, query, mut headers, body) = parse_raw(case.req);
            // The token is the signer's to add, from the credentials (botocore
            // `_modify_request_before_signing`); the "header-after" case did not sign it.
            let token = case
                .creq
                .lines()
                .find_map(|l| l.strip_prefix("x-amz-security-token:"));
            headers.retain(|(k, _)| {
                !k.eq_ignore_ascii_case("x-amz-date")
                    && !k.eq_ignore_ascii_case("x-amz-security-token")
            });
            let req = Unsigned {
                method: &method,
                path: &path,
                query: &query,
                headers: &headers,
                body: &body,
            };
            let added = sign(&req, &keys(token), "us-east-1", "service", at(SUITE_TIME));
            let auth = &added.last().unwrap().1;
            assert_eq!(auth, case.authz, "{}: Authorization", case.name);
            let mut all = headers.clone();
            all.extend(added[..added.len() - 1].iter().cloned());
            let names = signed_names(&all);
            let view = Unsigned {
                headers: &all,
                ..req
            };
            let creq = canonical_request(&view, &names);
            assert_eq!(creq, case.creq, "{}: canonical request", case.name);
            assert_eq!(
                string_to_sign(
                    "20150830T123600Z",
                    "20150830/us-east-1/service/aws4_request",
                    &creq
                ),
                case.sts,
                "{}",
                case.name
            );
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} suite cases");
    }

    #[test]
    fn signing_key_of_the_suite() {
        let k = signing_key(
            &Secret::new(SECRET.into()),
            "20150830",
            "us-east-1",
            "service",
        );
        // The key is opaque in ring; its MAC of the suite's get-vanilla string to sign is
        // the suite's signature.
        let sts = "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63";
        assert_eq!(
            hex(hmac::sign(&k, sts.as_bytes()).as_ref()),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    /// research/aws-azure.md §A3.3, cross-checked there against botocore 1.43.11.
    #[test]
    fn worked_ec2_vectors() {
        let ct = (
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        );
        let host = ("Host".to_owned(), "ec2.eu-west-1.amazonaws.com".to_owned());
        let when = at(1_795_329_000); // 2026-11-22T06:30:00Z
        assert_eq!(amz_date(when), "20261122T063000Z");
        let headers = vec![ct.clone(), host.clone()];
        let body = b"Action=AssignPrivateIpAddresses&Version=2016-11-15&NetworkInterfaceId=eni-0123456789abcdef0&PrivateIpAddress.1=10.0.1.100&AllowReassignment=true";
        let req = Unsigned {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body,
        };
        let added = sign(
            &req,
            &keys(Some("FQoGZXIvYXdzEXAMPLETOKEN/+=")),
            "eu-west-1",
            "ec2",
            when,
        );
        assert_eq!(added[1].1, "FQoGZXIvYXdzEXAMPLETOKEN/+=");
        assert_eq!(added[2].1, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/eu-west-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=c987c8edff204e98d8b354336089a888e27b542fc1793960867128c3eb3a35b5");
        let body = b"Action=DescribeNetworkInterfaces&Version=2016-11-15&Filter.1.Name=addresses.private-ip-address&Filter.1.Value.1=10.0.1.100";
        let req = Unsigned { body, ..req };
        let added = sign(&req, &keys(None), "eu-west-1", "ec2", when);
        assert_eq!(added.len(), 2, "no token header without a token");
        assert!(added[1].1.ends_with("SignedHeaders=content-type;host;x-amz-date, Signature=c51df43d29a8f0eea1c868f657619de7454afa93590f2faed3747bee2b0b1194"));
    }

    #[test]
    fn the_user_agent_and_hop_by_hop_headers_are_not_signed() {
        let headers = vec![
            ("Host".to_owned(), "h".to_owned()),
            ("User-Agent".to_owned(), "x".to_owned()),
            ("Connection".to_owned(), "close".to_owned()),
        ];
        let req = Unsigned {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        let a = sign(&req, &keys(None), "r", "s", at(SUITE_TIME));
        assert!(
            a[1].1.contains("SignedHeaders=host;x-amz-date,"),
            "{}",
            a[1].1
        );
    }

    #[test]
    fn keys_never_print_secrets() {
        let k = keys(Some("the-token"));
        let shown = format!("{k:?}");
        assert!(shown.contains(AKID));
        assert!(
            !shown.contains(SECRET) && !shown.contains("the-token"),
            "{shown}"
        );
    }

    #[test]
    fn host_headers_as_ureq_sends_them() {
        assert_eq!(
            host_header("https://ec2.eu-west-1.amazonaws.com/").as_deref(),
            Some("ec2.eu-west-1.amazonaws.com")
        );
        assert_eq!(
            host_header("https://h:443/").as_deref(),
            Some("h"),
            "the default port is not sent"
        );
        assert_eq!(
            host_header("http://127.0.0.1:8080/").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(host_header("not a url"), None);
    }

    proptest::proptest! {
        /// Any bytes in the path, query or headers sign without panicking.
        #[test]
        fn any_input_signs(path in ".*", query in ".*", v in ".*", body in proptest::collection::vec(0u8.., 0..64)) {
            let headers = vec![("Host".to_owned(), "h".to_owned()), ("X-A".to_owned(), v)];
            let req = Unsigned { method: "POST", path: &path, query: &query, headers: &headers, body: &body };
            let a = sign(&req, &keys(None), "r", "s", SystemTime::now());
            proptest::prop_assert_eq!(a.len(), 2);
        }
    }
}
