//! The auth service's `POST /v1/x509` (research/oci-api.md §4.3): an instance presents its
//! IMDS leaf certificate, intermediate and a fresh session public key, signed with the
//! leaf's key; it gets a JWT bound to that session key. Both keyId forms are accepted:
//! `<tenancy>/fed-x509-sha256/<sha256 lower>` (Go, Java) and `<tenancy>/fed-x509/<SHA1 UPPER>`
//! (Python), with or without `host` among the signed headers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use std::time::SystemTime;

use super::error::OciError;
use super::signature::{self, Policy};
use super::token::TokenPrincipal;
use super::{OciState, Request};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct X509FederationRequest {
    certificate: String,
    public_key: String,
    #[serde(default)]
    intermediate_certificates: Vec<String>,
    #[serde(default)]
    fingerprint_algorithm: Option<String>,
    #[serde(default)]
    purpose: Option<String>,
}

fn b64(s: &str, what: &str) -> Result<Vec<u8>, OciError> {
    // The SDKs strip the PEM armour and newlines (§4.3); tolerate stray whitespace.
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD
        .decode(clean)
        .map_err(|_| OciError::invalid(format!("{what} is not valid base64")))
}

pub fn handle(
    st: &mut OciState,
    req: &Request<'_>,
    now: SystemTime,
) -> Result<(u16, Vec<u8>), OciError> {
    if req.method != "POST" {
        return Err(OciError::method_not_allowed());
    }
    let auth = req
        .header("authorization")
        .ok_or_else(|| OciError::not_authenticated("no Authorization header"))?;
    let sig = signature::parse_authorization(auth).map_err(OciError::not_authenticated)?;
    let (tenancy, form, fp) = {
        let mut it = sig.key_id.splitn(3, '/');
        match (it.next(), it.next(), it.next()) {
            (Some(t), Some(f @ ("fed-x509" | "fed-x509-sha256")), Some(fp)) => (t, f, fp),
            _ => {
                return Err(OciError::not_authenticated(
                    "keyId is not <tenancy>/fed-x509[-sha256]/<fingerprint>",
                ))
            }
        }
    };
    let body: X509FederationRequest = serde_json::from_slice(req.body)
        .map_err(|e| OciError::cannot_parse(format!("Unable to parse the request body: {e}")))?;
    if let Some(p) = &body.purpose {
        if p != "DEFAULT" {
            return Err(OciError::invalid(format!("purpose {p} is not supported")));
        }
    }
    let leaf_der = b64(&body.certificate, "certificate")?;
    let intermediates = body
        .intermediate_certificates
        .iter()
        .map(|c| b64(c, "intermediateCertificates"))
        .collect::<Result<Vec<_>, _>>()?;
    let ca = st.ca.as_ref().ok_or_else(|| {
        OciError::not_authenticated("no instance certificate was ever issued in this world")
    })?;
    let info = ca
        .verify_leaf(&leaf_der, &intermediates, now)
        .map_err(OciError::not_authenticated)?;
    let expected_fp = match form {
        "fed-x509-sha256" => &info.sha256_lower,
        _ => &info.sha1_upper,
    };
    if fp != expected_fp {
        return Err(OciError::not_authenticated(
            "keyId fingerprint is not the certificate's",
        ));
    }
    if let Some(a) = &body.fingerprint_algorithm {
        let ok = matches!(
            (a.as_str(), form),
            ("SHA256", "fed-x509-sha256") | ("SHA1", "fed-x509")
        );
        if !ok {
            return Err(OciError::invalid(format!(
                "fingerprintAlgorithm {a} does not match keyId form {form}"
            )));
        }
    }
    signature::verify_request(
        req,
        &sig,
        &info.public_pkcs1,
        Policy {
            require_host: false,
        },
        now,
    )
    .map_err(OciError::not_authenticated)?;
    if info.tenancy.as_deref() != Some(tenancy) || tenancy != st.config.tenancy {
        return Err(OciError::not_authenticated(
            "tenancy in keyId does not match the certificate's opc-tenant",
        ));
    }
    let instance = info
        .instance
        .clone()
        .filter(|i| st.instances.contains_key(i))
        .ok_or_else(|| {
            OciError::not_authenticated("certificate names no instance of this world")
        })?;
    let session_der = b64(&body.public_key, "publicKey")?;
    let session = super::pki::parse_spki_der(&session_der).map_err(OciError::invalid)?;
    if super::pki::modulus_bits(&session) < 2048 {
        return Err(OciError::invalid(
            "publicKey must be an RSA key of at least 2048 bits",
        ));
    }
    let principal = TokenPrincipal {
        instance,
        compartment: info
            .compartment
            .clone()
            .unwrap_or_else(|| st.config.compartment.clone()),
        tenancy: tenancy.to_owned(),
    };
    let lifetime = st.config.token_lifetime_secs;
    let tokens = st.tokens()?;
    let jwt = tokens
        .issue(principal, &session, super::time::unix_secs(now), lifetime)
        .map_err(|_| OciError::internal())?;
    // The Go test server's framing (§4.3); clients parse JSON.
    let body = format!("{{\n  \"token\" : {}\n}}\n", json!(jwt));
    Ok((200, body.into_bytes()))
}
