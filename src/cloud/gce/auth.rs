//! Access tokens for the Compute API: the instance's service account through the metadata
//! server (used as is, the metadata server caches it), or a service-account JSON key
//! (RS256 JWT assertion, gce-api.md §6) whose tokens are cached in the state directory so
//! that a failover does not pay a token round trip, and refreshed once under a lock when
//! parallel actions find them stale together. Tokens live in `Secret`, whose Debug and
//! Display print `<redacted>`: nothing here is ever logged.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{transient, Gce};
use crate::cloud::secret::{self, unix_now as now, RsaSign, Secret};
use crate::cloud::CloudError;
use crate::deadline::Deadline;
use crate::http::{Method, Request};

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// How far this node's clock may be off before a refused JWT is blamed on it (Google
/// tolerates little: golang/oauth2 back-dates iat by 10 s for it).
const JWT_CLOCK_LIMIT_SECS: i64 = 60;
/// A cached token is used while it has more than this left (google-auth refreshes at 3m45s).
const REFRESH_MARGIN_SECS: u64 = 300;

#[derive(Deserialize)]
pub struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
pub struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: String,
    #[serde(default)]
    token_uri: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Cached {
    key: String,
    access_token: String,
    expires_at: u64,
}

fn denied(msg: String) -> CloudError {
    CloudError::Denied(msg)
}

impl Gce {
    /// A bearer token; `fresh` skips the cache (after a 401).
    pub(super) fn token(&self, deadline: &Deadline, fresh: bool) -> Result<Secret, CloudError> {
        match &self.shared.credentials {
            None => self.metadata_token(deadline),
            Some(path) => self.key_token(Path::new(path), deadline, fresh),
        }
    }

    /// The account of `credentials=`, for diagnose's messages; `None` when the key file
    /// cannot be read (diagnose's credentials step says why).
    pub(super) fn key_email(&self) -> Option<String> {
        let path = self.shared.credentials.as_deref()?;
        read_key(Path::new(path)).ok().map(|k| k.client_email)
    }

    fn metadata_token(&self, deadline: &Deadline) -> Result<Secret, CloudError> {
        let r = self.md_get("instance/service-accounts/default/token", deadline)?;
        let t: TokenResponse = serde_json::from_slice(&r.body)
            .map_err(|_| transient("metadata server: malformed token response".into()))?;
        Ok(Secret::new(t.access_token))
    }

    fn key_token(
        &self,
        path: &Path,
        deadline: &Deadline,
        fresh: bool,
    ) -> Result<Secret, CloudError> {
        let key = read_key(path)?;
        let cache_key = format!("{}/{}", key.client_email, key.private_key_id);
        let cache = self.cache_path(&cache_key);
        let cached = || cache.as_deref().and_then(|c| read_cache(c, &cache_key));
        // After a 401 the token we sent is most likely the cached one: only a different
        // token (another action's refresh) is worth trying.
        let before = cached();
        if !fresh {
            if let Some(t) = before.clone() {
                log::debug!("using the cached access token of {}", key.client_email);
                return Ok(t);
            }
        }
        // One refresh for all the actions that found the cache stale at once.
        let _lock = secret::refresh_lock(cache.as_deref(), deadline)?;
        if let Some(t) = cached() {
            if !fresh || before.as_ref().map(Secret::expose) != Some(t.expose()) {
                log::debug!("using the access token another action just fetched");
                return Ok(t);
            }
        }
        let token_uri = key
            .token_uri
            .clone()
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
        let iat = now().saturating_sub(10); // clock skew, as golang/oauth2 does
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": key.private_key_id});
        let claims = serde_json::json!({
            "iss": key.client_email, "scope": SCOPE, "aud": token_uri, "iat": iat, "exp": iat + 3600,
        });
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signing_input = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let signature = sign_rs256(&key.private_key, signing_input.as_bytes())
            .map_err(|e| CloudError::Local(format!("credentials {}: {e}", path.display())))?;
        let assertion = format!("{signing_input}.{}", b64.encode(signature));
        let req = Request::new(Method::Post, &token_uri).form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &assertion),
        ]);
        let r = self
            .http
            .api(&req, deadline, &|_| false)
            .map_err(|e| crate::cloud::http_error("token endpoint", e))?;
        if !r.ok() {
            // The OAuth error body ({"error","error_description"}) names no secret.
            let why = serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| {
                    v.get("error_description")
                        .and_then(|d| d.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            // A JWT is valid only near its iat: with this node's clock off, every key fails.
            if matches!(r.status, 400 | 401) {
                if let Some(e) = crate::cloud::clock_refusal(&r, JWT_CLOCK_LIMIT_SECS) {
                    return Err(e);
                }
            }
            return Err(match r.status {
                // The key is deleted or disabled, or the account lacks the right.
                400 | 401 | 403 => denied(format!(
                    "token endpoint refused {}: HTTP {} {why}",
                    key.client_email, r.status
                )),
                429 | 500..=599 => transient(format!("token endpoint: HTTP {} {why}", r.status)),
                // e.g. 404: the key file's token_uri is wrong; retrying will not help.
                s => CloudError::Local(format!(
                    "token endpoint {token_uri} (token_uri of {}): HTTP {s} {why}",
                    path.display()
                )),
            });
        }
        let t: TokenResponse = serde_json::from_slice(&r.body)
            .map_err(|_| transient("token endpoint: malformed token response".into()))?;
        if let Some(c) = &cache {
            let entry = Cached {
                key: cache_key,
                access_token: t.access_token.clone(),
                expires_at: now() + t.expires_in,
            };
            let body = serde_json::to_vec(&entry).unwrap_or_default();
            if let Err(e) = secret::write_private(c, &body) {
                log::warn!("cannot cache the access token in {}: {e}", c.display());
            }
        }
        Ok(Secret::new(t.access_token))
    }

    fn cache_path(&self, cache_key: &str) -> Option<PathBuf> {
        secret::cache_path(
            self.rsctmp.as_deref().map(Path::new),
            "cloudvip-gce-token",
            cache_key,
        )
    }
}

/// The key file is this node's own: whatever is wrong with it is OCF_ERR_INSTALLED (5),
/// so Pacemaker bans this node and tries another.
fn read_key(path: &Path) -> Result<KeyFile, CloudError> {
    let invalid = |m: String| CloudError::Local(format!("credentials {}: {m}", path.display()));
    let text = secret::read_credential_file(path).map_err(invalid)?;
    let key: KeyFile = serde_json::from_slice(&text)
        .map_err(|_| invalid("not a service-account JSON key".into()))?;
    if key.kind != "service_account" {
        return Err(invalid(format!(
            "type is {:?}, expected \"service_account\"",
            key.kind
        )));
    }
    Ok(key)
}

fn sign_rs256(pem: &str, msg: &[u8]) -> Result<Vec<u8>, String> {
    let key =
        secret::load_rsa_key(pem.as_bytes(), None).map_err(|e| format!("private_key: {e}"))?;
    RsaSign::sign(&key, msg)
}

fn read_cache(path: &Path, key: &str) -> Option<Secret> {
    let c: Cached = serde_json::from_slice(&secret::read_private(path)?).ok()?;
    (c.key == key && c.expires_at > now() + REFRESH_MARGIN_SECS)
        .then(|| Secret::new(c.access_token))
}
