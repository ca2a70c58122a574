//! Signature Version 4 verification (AWS4-HMAC-SHA256), the server's half of botocore's
//! `SigV4Auth` (research/aws-azure.md §A3): the signature is recomputed from the bytes
//! received, by the `Authorization` header or by the `X-Amz-*` query parameters of a
//! presigned request. This module only parses and computes; who the key belongs to, the
//! clock, the scope's region and service, and the error documents are the caller's
//! (`auth.rs`). Checked against the AWS SigV4 test suite (`sigv4_suite.rs`).

use ring::{digest, hmac};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The parts of a request that are signed.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub method: &'a str,
    /// The path as it arrived (still percent-encoded).
    pub raw_path: &'a str,
    /// The query string as it arrived, without `?`.
    pub raw_query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Signed<'_> {
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }

    fn query_pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.raw_query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect()
    }

    fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
    }
}

/// What the client claims: key, scope, signed headers, signature and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub access_key: String,
    /// `YYYYMMDD` of the credential scope.
    pub scope_date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// `YYYYMMDDTHHMMSSZ` (from `X-Amz-Date`, the `Date` header, or the query).
    pub amz_date: String,
    pub security_token: Option<String>,
    /// Presigned: `X-Amz-Expires` seconds.
    pub expires: Option<u64>,
    pub presigned: bool,
}

/// Why a request's signature cannot even be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// No `Authorization` header and no `X-Amz-Algorithm` parameter.
    Missing,
    /// Present but not well formed (`IncompleteSignature`).
    Incomplete(String),
}

fn incomplete(m: impl Into<String>) -> Malformed {
    Malformed::Incomplete(m.into())
}

/// Reads the claim from the `Authorization` header or the query parameters.
pub fn claim(req: &Signed<'_>) -> Result<Claim, Malformed> {
    let header = req.header("authorization");
    let query_alg = req.query_param("X-Amz-Algorithm");
    match (header, query_alg) {
        (Some(_), Some(_)) => Err(incomplete(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified",
        )),
        (None, None) => Err(Malformed::Missing),
        (Some(h), None) => header_claim(req, h),
        (None, Some(alg)) => query_claim(req, &alg),
    }
}

fn split_credential(c: &str) -> Result<(String, String, String, String), Malformed> {
    let parts: Vec<&str> = c.split('/').collect();
    match parts.as_slice() {
        [key, date, region, service, "aws4_request"] if !key.is_empty() => Ok((
            key.to_string(),
            date.to_string(),
            region.to_string(),
            service.to_string(),
        )),
        _ => Err(incomplete(format!(
            "Credential should have five parts (access key/date/region/service/aws4_request), got '{c}'"
        ))),
    }
}

fn signed_header_list(s: &str) -> Result<Vec<String>, Malformed> {
    let list: Vec<String> = s.split(';').map(str::to_owned).collect();
    if list
        .iter()
        .any(|h| h.is_empty() || h.to_ascii_lowercase() != *h)
    {
        return Err(incomplete(format!("Invalid SignedHeaders '{s}'")));
    }
    let mut sorted = list.clone();
    sorted.sort();
    sorted.dedup();
    if sorted != list {
        return Err(incomplete("SignedHeaders must be sorted and unique"));
    }
    if !list.iter().any(|h| h == "host") {
        return Err(incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    Ok(list)
}

fn request_date(req: &Signed<'_>) -> Result<String, Malformed> {
    if let Some(d) = req.header("x-amz-date") {
        return Ok(d.trim().to_owned());
    }
    if let Some(d) = req.header("date") {
        let t = httpdate::parse_http_date(d.trim()).map_err(|_| {
            incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{d}'."
            ))
        })?;
        return Ok(super::time::amz(t));
    }
    Err(incomplete(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    ))
}

fn header_claim(req: &Signed<'_>, h: &str) -> Result<Claim, Malformed> {
    let h = h.trim();
    let rest = h
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| {
            incomplete(format!(
                "Unsupported AWS 'algorithm': '{}'",
                h.split_whitespace().next().unwrap_or("")
            ))
        })?;
    let mut cred = None;
    let mut signed = None;
    let mut sig = None;
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').ok_or_else(|| {
            incomplete(format!(
                "'{part}' not a valid key=value pair (missing equal-sign) in Authorization header"
            ))
        })?;
        match k {
            "Credential" => cred = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => sig = Some(v),
            _ => {}
        }
    }
    let (Some(cred), Some(signed), Some(sig)) = (cred, signed, sig) else {
        return Err(incomplete(
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.",
        ));
    };
    let (access_key, scope_date, region, service) = split_credential(cred)?;
    Ok(Claim {
        access_key,
        scope_date,
        region,
        service,
        signed_headers: signed_header_list(signed)?,
        signature: sig.to_owned(),
        amz_date: request_date(req)?,
        security_token: req.header("x-amz-security-token").map(str::to_owned),
        expires: None,
        presigned: false,
    })
}

fn query_claim(req: &Signed<'_>, alg: &str) -> Result<Claim, Malformed> {
    if alg != ALGORITHM {
        return Err(incomplete(format!("Unsupported AWS 'algorithm': '{alg}'")));
    }
    let need = |n: &str| {
        req.query_param(n)
            .ok_or_else(|| incomplete(format!("AWS query-string parameters must include '{n}'.")))
    };
    let (access_key, scope_date, region, service) = split_credential(&need("X-Amz-Credential")?)?;
    let expires = match req.query_param("X-Amz-Expires") {
        None => None,
        Some(e) => Some(
            e.parse::<u64>()
                .ok()
                .filter(|e| (1..=604_800).contains(e))
                .ok_or_else(|| incomplete("X-Amz-Expires must be between 1 and 604800 seconds"))?,
        ),
    };
    Ok(Claim {
        access_key,
        scope_date,
        region,
        service,
        signed_headers: signed_header_list(&need("X-Amz-SignedHeaders")?)?,
        signature: need("X-Amz-Signature")?,
        amz_date: need("X-Amz-Date")?,
        security_token: req.query_param("X-Amz-Security-Token"),
        expires,
        presigned: true,
    })
}

/// RFC 3986 percent-decoding to bytes (no `+` rule: that is form encoding, not SigV4's).
fn decode(s: &str) -> Vec<u8> {
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

/// SigV4's URI encoding: everything but `A-Za-z0-9-_.~` (and `/` when `keep_slash`).
pub fn encode(b: &[u8], keep_slash: bool) -> String {
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

/// RFC 3986 §5.2.4 dot-segment removal plus collapsing of empty segments, as botocore's
/// `normalize_url_path` does for every service but S3.
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
    let first = if path.starts_with('/') { "/" } else { "" };
    let last = if path.ends_with('/') && !out.is_empty() {
        "/"
    } else {
        ""
    };
    format!("{first}{}{last}", out.join("/"))
}

fn trim_all(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, b).as_ref())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The canonical request for `claim` over `req`. A signed header that is absent is an
/// error (the client said it signed something it did not send).
pub fn canonical_request(req: &Signed<'_>, claim: &Claim) -> Result<String, Malformed> {
    let path = encode(normalize_path(req.raw_path).as_bytes(), true);
    let mut pairs: Vec<(String, String)> = req
        .query_pairs()
        .into_iter()
        .filter(|(k, _)| !(claim.presigned && k == b"X-Amz-Signature"))
        .map(|(k, v)| (encode(&k, false), encode(&v, false)))
        .collect();
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = String::new();
    for name in &claim.signed_headers {
        let values = req.header_values(name);
        if values.is_empty() {
            return Err(incomplete(format!(
                "Header '{name}' is listed in SignedHeaders but absent"
            )));
        }
        let joined: Vec<String> = values.iter().map(|v| trim_all(v)).collect();
        headers.push_str(&format!("{name}:{}\n", joined.join(",")));
    }
    let payload = if claim.presigned {
        UNSIGNED_PAYLOAD.to_owned()
    } else {
        match req.header("x-amz-content-sha256") {
            Some(v) if v == UNSIGNED_PAYLOAD => UNSIGNED_PAYLOAD.to_owned(),
            _ => sha256_hex(req.body),
        }
    };
    Ok(format!(
        "{}\n{path}\n{query}\n{headers}\n{}\n{payload}",
        req.method.to_ascii_uppercase(),
        claim.signed_headers.join(";")
    ))
}

pub fn string_to_sign(claim: &Claim, canonical: &str) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}/{}/{}/aws4_request\n{}",
        claim.amz_date,
        claim.scope_date,
        claim.region,
        claim.service,
        sha256_hex(canonical.as_bytes())
    )
}

fn mac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
        .as_ref()
        .to_vec()
}

pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = mac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = mac(&k, region.as_bytes());
    let k = mac(&k, service.as_bytes());
    mac(&k, b"aws4_request")
}

pub fn signature(secret: &str, claim: &Claim, canonical: &str) -> String {
    let key = signing_key(secret, &claim.scope_date, &claim.region, &claim.service);
    hex(&mac(&key, string_to_sign(claim, canonical).as_bytes()))
}

/// Whether the claimed signature is the one `secret` makes (compared in constant time).
pub fn verify(req: &Signed<'_>, claim: &Claim, secret: &str) -> Result<bool, Malformed> {
    let canonical = canonical_request(req, claim)?;
    let want = signature(secret, claim, &canonical);
    let got = claim.signature.as_bytes();
    let want = want.as_bytes();
    if got.len() != want.len() {
        return Ok(false);
    }
    Ok(got.iter().zip(want).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0)
}

/// Credentials a client signs with.
pub struct Keys<'a> {
    pub access_key: &'a str,
    pub secret: &'a str,
    pub token: Option<&'a str>,
}

/// Signs a request as botocore does, for tests and tools that talk to the emulator: the
/// headers to add (`X-Amz-Date`, `X-Amz-Security-Token` when there is a token,
/// `Authorization`). Every header in `headers` is signed; it must hold `Host`.
pub fn sign(
    req: &Signed<'_>,
    keys: &Keys<'_>,
    region: &str,
    service: &str,
    at: std::time::SystemTime,
) -> Vec<(String, String)> {
    let amz = super::time::amz(at);
    let mut added = vec![("X-Amz-Date".to_owned(), amz.clone())];
    if let Some(t) = keys.token {
        added.push(("X-Amz-Security-Token".to_owned(), t.to_owned()));
    }
    let mut all: Vec<(String, String)> = req.headers.to_vec();
    all.extend(added.iter().cloned());
    let mut names: Vec<String> = all.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
    names.sort();
    names.dedup();
    let mut claim = Claim {
        access_key: keys.access_key.to_owned(),
        scope_date: amz[..8].to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: names,
        signature: String::new(),
        amz_date: amz,
        security_token: keys.token.map(str::to_owned),
        expires: None,
        presigned: false,
    };
    let view = Signed {
        headers: &all,
        ..*req
    };
    // Every header named is present, so the canonical request cannot fail.
    let creq = canonical_request(&view, &claim).unwrap_or_default();
    claim.signature = signature(keys.secret, &claim, &creq);
    added.push((
        "Authorization".to_owned(),
        format!(
            "{ALGORITHM} Credential={}/{}/{region}/{service}/aws4_request, SignedHeaders={}, Signature={}",
            claim.access_key,
            claim.scope_date,
            claim.signed_headers.join(";"),
            claim.signature
        ),
    ));
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// A test-suite `.req` file: request line, headers (with obsolete line
    /// folding), blank line, body.
    fn parse_raw(raw: &str) -> (String, String, String, Vec<(String, String)>, Vec<u8>) {
        let (head, body) = match raw.split_once("\n\n") {
            Some((h, b)) => (h, b.as_bytes().to_vec()),
            None => (raw, Vec::new()),
        };
        let mut lines = head.lines();
        let first = lines.next().unwrap();
        let method = first.split(' ').next().unwrap().to_owned();
        let target = first
            .strip_prefix(&format!("{method} "))
            .unwrap()
            .strip_suffix(" HTTP/1.1")
            .unwrap();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for l in lines {
            if l.starts_with(' ') || l.starts_with('\t') {
                let last = headers.last_mut().unwrap();
                last.1 = format!("{} {}", last.1, l.trim());
            } else {
                // As http.rs does: names and values trimmed.
                let (k, v) = l.split_once(':').unwrap();
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        (method, path.to_owned(), query.to_owned(), headers, body)
    }

    #[test]
    fn aws_sigv4_test_suite() {
        let mut checked = 0;
        for case in super::super::sigv4_suite::CASES {
            let (method, path, query, mut headers, body) = parse_raw(case.req);
            // The signer adds the session token header before signing (botocore
            // `_modify_request_before_signing`); the suite's `.req` predates that step.
            if let Some(t) = case
                .creq
                .lines()
                .find_map(|l| l.strip_prefix("x-amz-security-token:"))
            {
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("x-amz-security-token"))
                {
                    headers.push(("X-Amz-Security-Token".to_owned(), t.to_owned()));
                }
            }
            headers.push(("Authorization".to_owned(), case.authz.to_owned()));
            let req = Signed {
                method: &method,
                raw_path: &path,
                raw_query: &query,
                headers: &headers,
                body: &body,
            };
            let c = claim(&req).unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
            assert_eq!(c.access_key, AKID, "{}", case.name);
            assert_eq!(
                (c.scope_date.as_str(), c.region.as_str(), c.service.as_str()),
                ("20150830", "us-east-1", "service")
            );
            let creq = canonical_request(&req, &c).unwrap();
            assert_eq!(creq, case.creq, "{}: canonical request", case.name);
            assert_eq!(
                string_to_sign(&c, &creq),
                case.sts,
                "{}: string to sign",
                case.name
            );
            assert!(
                verify(&req, &c, SECRET).unwrap(),
                "{}: signature",
                case.name
            );
            assert!(!verify(&req, &c, "wrong-secret").unwrap());
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} suite cases");
    }

    #[test]
    fn own_signer_verifies() {
        let headers = vec![("Host".to_owned(), "ec2.eu-west-1.amazonaws.com".to_owned())];
        let req = Signed {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &headers,
            body: b"Action=DescribeVpcs&Version=2016-11-15",
        };
        let keys = Keys {
            access_key: AKID,
            secret: SECRET,
            token: Some("tok-tok-tok-tok-tok"),
        };
        let mut all = headers.clone();
        all.extend(sign(
            &req,
            &keys,
            "eu-west-1",
            "ec2",
            std::time::SystemTime::now(),
        ));
        let req = Signed {
            headers: &all,
            ..req
        };
        let c = claim(&req).unwrap();
        assert_eq!(
            c.signed_headers,
            vec!["host", "x-amz-date", "x-amz-security-token"]
        );
        assert!(verify(&req, &c, SECRET).unwrap());
    }

    #[test]
    fn signing_key_of_the_suite() {
        assert_eq!(
            hex(&signing_key(SECRET, "20150830", "us-east-1", "service")),
            "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75"
        );
    }

    /// research/aws-azure.md §A3.3, cross-checked there against botocore 1.43.11.
    #[test]
    fn worked_ec2_vectors() {
        let body = b"Action=AssignPrivateIpAddresses&Version=2016-11-15&NetworkInterfaceId=eni-0123456789abcdef0&PrivateIpAddress.1=10.0.1.100&AllowReassignment=true";
        let headers = vec![
            (
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
            ("Host".to_owned(), "ec2.eu-west-1.amazonaws.com".to_owned()),
            ("X-Amz-Date".to_owned(), "20261122T063000Z".to_owned()),
            (
                "X-Amz-Security-Token".to_owned(),
                "FQoGZXIvYXdzEXAMPLETOKEN/+=".to_owned(),
            ),
            ("Authorization".to_owned(), "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/eu-west-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=c987c8edff204e98d8b354336089a888e27b542fc1793960867128c3eb3a35b5".to_owned()),
        ];
        let req = Signed {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &headers,
            body,
        };
        let c = claim(&req).unwrap();
        assert_eq!(
            c.security_token.as_deref(),
            Some("FQoGZXIvYXdzEXAMPLETOKEN/+=")
        );
        let creq = canonical_request(&req, &c).unwrap();
        assert!(creq.ends_with("88351c77c038df46e631b4dc0af4fc111b2aeb6447c616db4fe502bb8a53cfcf"));
        assert_eq!(sha256_hex(string_to_sign(&c, &creq).as_bytes()).len(), 64);
        assert!(string_to_sign(&c, &creq)
            .ends_with("726d84c746b372f6627f6c1017808fa89a3df9a0a4a866ff2e9770f3b7b87bc8"));
        assert!(verify(&req, &c, SECRET).unwrap());
        // The body is signed: one changed byte and the signature no longer matches.
        let mut tampered = body.to_vec();
        let last = tampered.len() - 1;
        tampered[last] = b'E';
        let req2 = Signed {
            body: &tampered,
            ..req
        };
        assert!(!verify(&req2, &c, SECRET).unwrap());

        let body = b"Action=DescribeNetworkInterfaces&Version=2016-11-15&Filter.1.Name=addresses.private-ip-address&Filter.1.Value.1=10.0.1.100";
        let headers = vec![
            (
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
            ("Host".to_owned(), "ec2.eu-west-1.amazonaws.com".to_owned()),
            ("X-Amz-Date".to_owned(), "20261122T063000Z".to_owned()),
            ("Authorization".to_owned(), "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/eu-west-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=c51df43d29a8f0eea1c868f657619de7454afa93590f2faed3747bee2b0b1194".to_owned()),
        ];
        let req = Signed {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &headers,
            body,
        };
        let c = claim(&req).unwrap();
        let creq = canonical_request(&req, &c).unwrap();
        assert_eq!(
            sha256_hex(creq.as_bytes()),
            "71fa3b334d9a1cb13c17ec76b0ab8f91f6875b396a132fecc595adc20532e83a"
        );
        assert!(verify(&req, &c, SECRET).unwrap());
    }

    #[test]
    fn malformed_claims() {
        let mk = |auth: &str| {
            vec![
                ("Host".to_owned(), "h".to_owned()),
                ("X-Amz-Date".to_owned(), "20150830T123600Z".to_owned()),
                ("Authorization".to_owned(), auth.to_owned()),
            ]
        };
        let check = |auth: &str| {
            let h = mk(auth);
            let req = Signed {
                method: "GET",
                raw_path: "/",
                raw_query: "",
                headers: &h,
                body: b"",
            };
            claim(&req)
        };
        assert!(matches!(
            check("AWS4-HMAC-SHA1 Credential=a/b/c/d/aws4_request"),
            Err(Malformed::Incomplete(_))
        ));
        assert!(matches!(
            check("AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, Signature=x"),
            Err(Malformed::Incomplete(_))
        ));
        assert!(matches!(
            check("AWS4-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host, Signature=x"),
            Err(Malformed::Incomplete(_))
        ));
        assert!(matches!(check("AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=x-amz-date, Signature=x"), Err(Malformed::Incomplete(_))));
        assert!(check("AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host;x-amz-date, Signature=x").is_ok());
        let none: Vec<(String, String)> = vec![("Host".into(), "h".into())];
        let req = Signed {
            method: "GET",
            raw_path: "/",
            raw_query: "",
            headers: &none,
            body: b"",
        };
        assert_eq!(claim(&req), Err(Malformed::Missing));
        // Non-UTF-8 and stray percent signs in the query do not panic.
        let q = Signed {
            raw_query: "a=%ff%&%zz=1&=&&b",
            ..req
        };
        assert_eq!(claim(&q), Err(Malformed::Missing));
    }

    #[test]
    fn presigned_query() {
        // Sign a presigned GET ourselves, then verify it.
        let headers = vec![("Host".to_owned(), "ec2.eu-west-1.amazonaws.com".to_owned())];
        let base = "Action=DescribeVpcs&Version=2016-11-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261122%2Feu-west-1%2Fec2%2Faws4_request&X-Amz-Date=20261122T063000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host";
        let req = Signed {
            method: "GET",
            raw_path: "/",
            raw_query: base,
            headers: &headers,
            body: b"",
        };
        let mut c = Claim {
            access_key: AKID.into(),
            scope_date: "20261122".into(),
            region: "eu-west-1".into(),
            service: "ec2".into(),
            signed_headers: vec!["host".into()],
            signature: String::new(),
            amz_date: "20261122T063000Z".into(),
            security_token: None,
            expires: Some(300),
            presigned: true,
        };
        let creq = canonical_request(&req, &c).unwrap();
        assert!(creq.ends_with("\nhost\nUNSIGNED-PAYLOAD"));
        c.signature = signature(SECRET, &c, &creq);
        let q = format!("{base}&X-Amz-Signature={}", c.signature);
        let req = Signed {
            raw_query: &q,
            ..req
        };
        let c2 = claim(&req).unwrap();
        assert!(c2.presigned && c2.expires == Some(300));
        assert!(verify(&req, &c2, SECRET).unwrap());
    }
}
