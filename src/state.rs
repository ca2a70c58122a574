//! The agent's per-boot state directory and the file locks that parallel invocations share.
//! Pacemaker passes no `HA_RSCTMP`; resource-agents' ocf-directories then uses
//! `/run/resource-agents`, and so do we. Locks are `flock`s on files there: the kernel
//! drops them when the holder dies (a SIGKILLed action never leaves a stale lock), and
//! waiting for one asks the action's deadline like every other blocking step.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::deadline::Deadline;

/// `HA_RSCTMP` when set (and not empty), else ocf-directories' default.
pub const DEFAULT_DIR: &str = "/run/resource-agents";

/// The state directory for this invocation, created (0755, as ocf-directories does) when
/// missing. `None` when it cannot be made (no privileges, read-only /run): callers then
/// work without caches and locks, and say so.
pub fn dir(rsctmp: Option<&str>) -> Option<PathBuf> {
    let d = PathBuf::from(rsctmp.filter(|s| !s.is_empty()).unwrap_or(DEFAULT_DIR));
    if d.is_dir() {
        return Some(d);
    }
    match fs::DirBuilder::new().recursive(true).mode(0o755).create(&d) {
        Ok(()) => Some(d),
        Err(e) => {
            log::warn!("state directory {}: {e}; no caches or locks", d.display());
            None
        }
    }
}

/// An exclusive lock, held until dropped (or until the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// How often a waiter asks again: short against a GCE operation (~1 s), long against a
/// busy-loop on 2 cores.
const POLL: Duration = Duration::from_millis(10);

/// Take the exclusive lock on `path` (created 0600 if missing), waiting at most until
/// `deadline` (then `ErrorKind::TimedOut`).
pub fn lock(path: &Path, deadline: &Deadline) -> io::Result<Lock> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Lock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => {
                if deadline.sleep(POLL).is_err() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{} is held by another action", path.display()),
                    ));
                }
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_times_out_and_is_free_after_drop() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("nic.lock");
        let dl = Deadline::for_timeout(Some(Duration::from_secs(2)));
        let held = lock(&p, &dl).unwrap();
        let short = Deadline::with_clock(
            Duration::from_millis(50),
            std::sync::Arc::new(crate::deadline::SystemClock),
        );
        assert_eq!(
            lock(&p, &short).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        drop(held);
        lock(&p, &short).unwrap();
    }

    #[test]
    fn dir_prefers_rsctmp() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("x");
        assert_eq!(dir(sub.to_str()), Some(sub.clone()));
        assert!(sub.is_dir());
    }
}
