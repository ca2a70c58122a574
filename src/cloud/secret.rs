//! Secrets on disk and in memory: credential files read with care, private caches in the
//! state directory written atomically with mode 0600 (refreshed under a lock), and `Secret`, whose Debug prints
//! `<redacted>`, RSA private keys loaded from PEM and the one way they sign. Shared by the
//! cloud backends; nothing here ever logs a secret.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Read a credential file: a regular file that others cannot write (whoever can write it
/// can make us act as their identity); readable by others is only warned about.
pub fn read_credential_file(path: &Path) -> Result<Vec<u8>, String> {
    let meta = fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(format!(
            "mode {:o} lets others write it; chmod 600 it",
            mode & 0o777
        ));
    }
    if mode & 0o044 != 0 {
        log::warn!(
            "{} is readable by others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    fs::read(path).map_err(|e| e.to_string())
}

/// The cache file for `key` in the state directory (`state::dir`), named by a digest so
/// the name reveals nothing.
pub fn cache_path(state: Option<&Path>, prefix: &str, key: &str) -> Option<PathBuf> {
    let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let hex: String = d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    Some(state?.join(format!("{prefix}-{hex}.json")))
}

/// The lock that serialises refreshing the cache at `cache`: one refresh for all the
/// actions that find it stale at once, the others wait for it and read its result. No
/// cache (no state directory), no lock. Waiting is bounded by the deadline.
pub fn refresh_lock(
    cache: Option<&Path>,
    deadline: &crate::deadline::Deadline,
) -> Result<Option<crate::state::Lock>, crate::cloud::CloudError> {
    let Some(cache) = cache else { return Ok(None) };
    // A dot file beside the cache (`.cloudvip-oci-token-….lock`): not mistaken for a cache.
    let name = cache
        .file_stem()
        .map_or_else(Default::default, |s| s.to_string_lossy());
    crate::state::lock(&cache.with_file_name(format!(".{name}.lock")), deadline)
        .map(Some)
        .map_err(|e| {
            crate::cloud::CloudError::Transient(format!(
                "waiting for another action's token refresh: {e}"
            ))
        })
}

/// A cache file's content, only if we own it and nobody else can read it.
pub fn read_private(path: &Path) -> Option<Vec<u8>> {
    let meta = fs::metadata(path).ok()?;
    // SAFETY: geteuid has no preconditions.
    if meta.uid() != unsafe { libc::geteuid() } || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    fs::read(path).ok()
}

/// Atomic replace: a temp file created 0600 beside the cache, synced, then renamed.
pub fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let r = f
        .write_all(body)
        .and_then(|_| f.sync_all())
        .and_then(|_| fs::rename(&tmp, path));
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An RSA private key from PEM: PKCS#1, PKCS#8, or encrypted PKCS#8 with `pass`.
pub fn load_rsa_key(pem: &[u8], pass: Option<&str>) -> Result<ring::signature::RsaKeyPair, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "not a PEM file".to_owned())?;
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err("legacy OpenSSL-encrypted keys are not supported: convert with \
                    `openssl pkcs8 -topk8 -v2 aes-256-cbc` (encrypted PKCS#8) or store it unencrypted with mode 0600"
            .into());
    }
    if text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        let pass = pass.ok_or("the key is encrypted: set pass_phrase in the credentials file")?;
        let (_, der) = pkcs8::der::pem::decode_vec(pem).map_err(|e| format!("bad PEM: {e}"))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
            .map_err(|e| format!("bad encrypted key: {e}"))?;
        let doc = info
            .decrypt(pass)
            .map_err(|_| "cannot decrypt the key: wrong pass_phrase?".to_owned())?;
        return ring::signature::RsaKeyPair::from_pkcs8(doc.as_bytes())
            .map_err(|e| format!("key rejected: {e}"));
    }
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::PrivateKeyDer;
    match PrivateKeyDer::from_pem_slice(pem).map_err(|_| "no private key in the PEM".to_owned())? {
        PrivateKeyDer::Pkcs1(k) => ring::signature::RsaKeyPair::from_der(k.secret_pkcs1_der()),
        PrivateKeyDer::Pkcs8(k) => ring::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        _ => return Err("not an RSA key".into()),
    }
    .map_err(|e| format!("key rejected: {e}"))
}

/// Something that makes RSASSA-PKCS1-v1_5 SHA-256 signatures (ring in production).
pub trait RsaSign {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, String>;
}

impl RsaSign for ring::signature::RsaKeyPair {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        let mut sig = vec![0; self.public().modulus_len()];
        ring::signature::RsaKeyPair::sign(
            self,
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            msg,
            &mut sig,
        )
        .map_err(|_| "RSA signing failed".to_owned())?;
        Ok(sig)
    }
}
