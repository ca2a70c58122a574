//! Who signs OCI requests. Either an API key from a `~/.oci/config`-format file (keyId
//! `tenancy/user/fingerprint`), or instance principals done in process (oci-api.md §4):
//! the IMDS identity certificate and key, a fresh RSA-2048 session key, `POST /v1/x509`
//! signed with the certificate's key, and the returned token as keyId `ST$<token>`. The
//! token and its session key are cached in HA_RSCTMP (mode 0600) and refreshed five minutes
//! before expiry or once after a 401, so most actions make no federation call.

use std::path::Path;

use base64::Engine as _;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::EncodePublicKey as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::sign::sign_headers;
use super::{transient, Oci};
use crate::cloud::secret::{self, unix_now, RsaSign};
use crate::cloud::CloudError;
use crate::deadline::Deadline;
use crate::http::{Method, Request};

/// Refresh a session token this long before it expires (the Go SDK's margin).
const REFRESH_MARGIN_SECS: u64 = 300;

pub struct Credentials {
    pub key_id: String,
    pub key: ring::signature::RsaKeyPair,
}

#[derive(Serialize, Deserialize)]
struct CachedToken {
    instance: String,
    token: String,
    /// The session key, PKCS#1 DER in base64.
    key: String,
    exp: u64,
}

/// The credentials file is this node's own: whatever is wrong with it is OCF_ERR_INSTALLED
/// (5), so Pacemaker bans this node and tries another.
fn local(m: String) -> CloudError {
    CloudError::Local(m)
}

/// `key=value` lines under `[profile]`; `[DEFAULT]` fills what the profile lacks.
pub fn parse_config(
    text: &str,
    profile: &str,
) -> Option<std::collections::BTreeMap<String, String>> {
    let mut default = std::collections::BTreeMap::new();
    let mut chosen = std::collections::BTreeMap::new();
    let mut found = profile == "DEFAULT";
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            found |= section == profile;
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
        if section == "DEFAULT" {
            default.insert(k.clone(), v.clone());
        }
        if section == profile {
            chosen.insert(k, v);
        }
    }
    if !found {
        return None;
    }
    for (k, v) in default {
        chosen.entry(k).or_insert(v);
    }
    Some(chosen)
}

/// The tenancy OCID from the instance certificate's subject (`OU=opc-tenant:<ocid>`; the
/// Python SDK also accepts `opc-identity:`).
pub fn tenancy_of(cert_der: &[u8]) -> Option<String> {
    use x509_cert::der::asn1::{PrintableStringRef, Utf8StringRef};
    use x509_cert::der::Decode as _;
    let cert = x509_cert::Certificate::from_der(cert_der).ok()?;
    for rdn in cert.tbs_certificate.subject.0.iter() {
        for atv in rdn.0.iter() {
            let value = Utf8StringRef::try_from(&atv.value)
                .map(|s| s.as_str().to_owned())
                .or_else(|_| {
                    PrintableStringRef::try_from(&atv.value).map(|s| s.as_str().to_owned())
                });
            if let Ok(v) = value {
                if let Some(t) = v
                    .strip_prefix("opc-tenant:")
                    .or_else(|| v.strip_prefix("opc-identity:"))
                {
                    return Some(t.to_owned());
                }
            }
        }
    }
    None
}

/// A cached token of `instance` with more than the refresh margin left, unless it is the
/// one the service just refused.
fn read_token(path: &Path, instance: &str, rejected: Option<&str>) -> Option<Credentials> {
    let t: CachedToken = serde_json::from_slice(&secret::read_private(path)?).ok()?;
    let key_id = format!("ST${}", t.token);
    if t.instance != instance
        || t.exp <= unix_now() + REFRESH_MARGIN_SECS
        || rejected == Some(key_id.as_str())
    {
        return None;
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(&t.key)
        .ok()?;
    let key = ring::signature::RsaKeyPair::from_der(&der).ok()?;
    Some(Credentials { key_id, key })
}

pub fn pem_der(pem: &[u8]) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::from_pem_slice(pem)
        .ok()
        .map(|c| c.to_vec())
}

/// The `exp` claim of a JWT (no signature check: the token is the server's business).
pub fn jwt_exp(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["exp"].as_u64()
}

impl Oci {
    /// Who signs. `rejected` is the key id the service just refused (401): a cached
    /// token equal to it is not used again.
    pub(super) fn credentials(
        &self,
        deadline: &Deadline,
        rejected: Option<&str>,
    ) -> Result<Credentials, CloudError> {
        match &self.shared.credentials {
            Some(path) => self.api_key(Path::new(path)),
            None => self.instance_principal(deadline, rejected),
        }
    }
    fn api_key(&self, path: &Path) -> Result<Credentials, CloudError> {
        let bad = |m: String| local(format!("credentials {}: {m}", path.display()));
        let text = secret::read_credential_file(path).map_err(bad)?;
        let cfg = parse_config(&String::from_utf8_lossy(&text), &self.opts.oci_profile)
            .ok_or_else(|| bad(format!("no profile [{}]", self.opts.oci_profile)))?;
        let get = |k: &str| {
            cfg.get(k)
                .cloned()
                .ok_or_else(|| bad(format!("profile [{}] lacks {k}", self.opts.oci_profile)))
        };
        let (user, fingerprint, tenancy, key_file) = (
            get("user")?,
            get("fingerprint")?,
            get("tenancy")?,
            get("key_file")?,
        );
        let key_path = match key_file.strip_prefix("~/") {
            Some(rest) => {
                Path::new(&std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(rest)
            }
            None => Path::new(&key_file).to_owned(),
        };
        let pem = secret::read_credential_file(&key_path)
            .map_err(|e| bad(format!("key_file {}: {e}", key_path.display())))?;
        let pass = cfg.get("pass_phrase").or_else(|| cfg.get("passphrase"));
        let key = secret::load_rsa_key(&pem, pass.map(String::as_str))
            .map_err(|e| bad(format!("key_file {}: {e}", key_path.display())))?;
        Ok(Credentials {
            key_id: format!("{tenancy}/{user}/{fingerprint}"),
            key,
        })
    }

    /// The cached session token when it is good for a while yet, else a new one. Parallel
    /// actions (Pacemaker starts independent resources at once) refresh once: the first
    /// takes the lock and federates, the others wait for the lock and find its token.
    fn instance_principal(
        &self,
        deadline: &Deadline,
        rejected: Option<&str>,
    ) -> Result<Credentials, CloudError> {
        let instance = self.instance_id()?.to_owned();
        let cache = secret::cache_path(self.state.as_deref(), "cloudvip-oci-token", &instance);
        let cached = || {
            cache
                .as_deref()
                .and_then(|c| read_token(c, &instance, rejected))
        };
        if let Some(c) = cached() {
            log::debug!("using the cached instance-principal token");
            return Ok(c);
        }
        let _lock = secret::refresh_lock(cache.as_deref(), deadline)?;
        if let Some(c) = cached() {
            log::debug!("using the instance-principal token another action just fetched");
            return Ok(c);
        }
        self.federate(&instance, cache.as_deref(), deadline)
    }

    /// Instance principals' token exchange (oci-api.md §4.1), cached in `cache` for the
    /// actions that follow.
    fn federate(
        &self,
        instance: &str,
        cache: Option<&Path>,
        deadline: &Deadline,
    ) -> Result<Credentials, CloudError> {
        // The identity material, fresh each time: it is rotated automatically.
        let cert_pem = self.imds("identity/cert.pem", deadline)?.body;
        let key_pem = self.imds("identity/key.pem", deadline)?.body;
        let inter_pem = self.imds("identity/intermediate.pem", deadline)?.body;
        let bad = |m: &str| transient(format!("instance identity from the metadata service: {m}"));
        let cert = pem_der(&cert_pem).ok_or_else(|| bad("cert.pem is not a certificate"))?;
        let inter =
            pem_der(&inter_pem).ok_or_else(|| bad("intermediate.pem is not a certificate"))?;
        let leaf_key =
            secret::load_rsa_key(&key_pem, None).map_err(|e| bad(&format!("key.pem: {e}")))?;
        let tenancy =
            tenancy_of(&cert).ok_or_else(|| bad("no opc-tenant in the certificate subject"))?;

        if deadline.remaining() < crate::deadline::MIN_STEP * 2 {
            return Err(transient("no time left for a federation".into()));
        }
        let session = match self.session_key.get() {
            Some(k) => k.clone(),
            None => {
                let k = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                    .map_err(|e| transient(format!("cannot generate a session key: {e}")))?;
                self.session_key.get_or_init(|| k).clone()
            }
        };
        let session_der = session
            .to_pkcs1_der()
            .map_err(|e| transient(format!("session key: {e}")))?
            .as_bytes()
            .to_vec();
        let public = session
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| transient(format!("session key: {e}")))?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = json!({
            "certificate": b64.encode(&cert),
            "publicKey": b64.encode(public.as_bytes()),
            "intermediateCertificates": [b64.encode(&inter)],
            "fingerprintAlgorithm": "SHA256",
        })
        .to_string()
        .into_bytes();
        let fp: Vec<String> = ring::digest::digest(&ring::digest::SHA256, &cert)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key_id = format!("{tenancy}/fed-x509-sha256/{}", fp.join(":"));
        let url = format!("{}v1/x509", self.auth_base()?);
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        // The federation endpoint is signed without `host` (as the Go SDK does).
        let headers = sign_headers(
            &leaf_key as &dyn RsaSign,
            &key_id,
            Method::Post,
            &url,
            &date,
            &body,
            false,
        )
        .map_err(|e| transient(format!("signing the federation request: {e}")))?;
        let mut req = Request::new(Method::Post, &url);
        for (k, v) in headers {
            req = req.header(&k, v);
        }
        req.body = body;
        let r = self
            .http
            .api(&req, deadline, &|_| false)
            .map_err(|e| crate::cloud::http_error("federation endpoint", e))?;
        if !r.ok() {
            if r.status == 401 {
                if let Some(e) = crate::cloud::clock_refusal(&r, super::OCI_CLOCK_LIMIT_SECS) {
                    return Err(e);
                }
            }
            let what = format!(
                "federation endpoint refused the instance certificate: HTTP {} {}",
                r.status,
                super::networking::error_text(&r)
            );
            return Err(match r.status {
                // A certificate the service does not accept: policy or dynamic-group setup.
                400 | 401 | 403 => CloudError::Denied(what),
                429 | 500..=599 => transient(what),
                // No federation service at that URL (auth_endpoint, or the realm's default).
                _ => CloudError::Invalid(what),
            });
        }
        let token = super::model::parse::<super::model::Token>("federation", &r)?.token;
        // Without a readable expiry we could not know when to stop using it.
        let exp = jwt_exp(&token).ok_or_else(|| {
            transient("federation endpoint: the token is not a JWT with an exp claim".into())
        })?;
        if let Some(c) = cache {
            let entry = CachedToken {
                instance: instance.to_owned(),
                token: token.clone(),
                key: b64.encode(&session_der),
                exp,
            };
            if let Err(e) =
                secret::write_private(c, &serde_json::to_vec(&entry).unwrap_or_default())
            {
                log::warn!("cannot cache the session token in {}: {e}", c.display());
            }
        }
        log::debug!(
            "new instance-principal session token (expires in {} s)",
            exp.saturating_sub(unix_now())
        );
        let key = ring::signature::RsaKeyPair::from_der(&session_der)
            .map_err(|e| transient(format!("session key rejected: {e}")))?;
        Ok(Credentials {
            key_id: format!("ST${token}"),
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_profiles_inherit_default() {
        let text = "[DEFAULT]\nregion=us-ashburn-1\nuser = u0\n# comment\n[ha]\nuser=u1\nkey_file=/k.pem\n";
        let ha = parse_config(text, "ha").unwrap();
        assert_eq!(ha["user"], "u1");
        assert_eq!(ha["region"], "us-ashburn-1");
        assert_eq!(parse_config(text, "DEFAULT").unwrap()["user"], "u0");
        assert!(parse_config(text, "nope").is_none());
    }

    #[test]
    fn jwt_expiry() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let t = format!("{}.{}.sig", b64.encode("{}"), b64.encode(r#"{"exp":1234}"#));
        assert_eq!(jwt_exp(&t), Some(1234));
        assert_eq!(jwt_exp("garbage"), None);
    }
}
