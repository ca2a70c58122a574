//! Secrets on disk and in memory: credential files read with care, private caches in
//! HA_RSCTMP written atomically with mode 0600, and `Secret`, whose Debug prints
//! `<redacted>`. Shared by the cloud backends; nothing here ever logs a secret.

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

/// The cache file for `key` in HA_RSCTMP, named by a digest so the name reveals nothing.
pub fn cache_path(rsctmp: Option<&str>, prefix: &str, key: &str) -> Option<PathBuf> {
    let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let hex: String = d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    Some(Path::new(rsctmp?).join(format!("{prefix}-{hex}.json")))
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
