//! A private OCF root for the agent under test, so that no test ever writes under
//! /usr/lib/ocf (where a package's files live: `dpkg -V cloudvip` must stay clean).
//!
//! The root is a temporary directory `<root>/resource.d/rust/cloudvip` (a hard link to
//! the built binary, a copy across file systems). Tools that take the agent's path
//! (ocf-tester) get [`OcfRoot::agent`]. Tools that find `ocf:rust:cloudvip` by name
//! (crm_resource, pcs, Pacemaker) have /usr/lib/ocf/resource.d compiled in (Pacemaker 2.1
//! reads no variable for it), so they run through [`OcfRoot::command`]: in a private mount
//! namespace where /usr/lib/ocf/resource.d is a read-only overlay of our directory on top
//! of the real one. Nothing is written to the real directory, and other providers
//! (heartbeat, pacemaker) stay visible.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{require_root, Run, BIN};

/// Where the OCF tools look for agents (compiled into Pacemaker and resource-agents).
pub const SYSTEM_RESOURCE_D: &str = "/usr/lib/ocf/resource.d";

/// The shell snippet that stacks `$1` over the system's resource.d in the current (private)
/// mount namespace, for callers that already have one (the cluster harness's node init).
pub fn overlay_script(resource_d: &str) -> String {
    format!(
        "mount --make-rprivate / && mount -t overlay cloudvip-ocf -o \
         lowerdir={resource_d}:{SYSTEM_RESOURCE_D} {SYSTEM_RESOURCE_D}"
    )
}

pub struct OcfRoot {
    dir: PathBuf,
    agent: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl OcfRoot {
    /// A fresh root in a temporary directory, removed on drop.
    pub fn new() -> OcfRoot {
        let tmp = tempfile::Builder::new()
            .prefix("cloudvip-ocf-")
            .tempdir()
            .unwrap();
        let mut root = OcfRoot::at(tmp.path());
        root._tmp = Some(tmp);
        root
    }

    /// A root inside `dir` (owned by the caller, e.g. a cluster's state directory).
    pub fn at(dir: &Path) -> OcfRoot {
        require_root();
        let agent_dir = dir.join("resource.d/rust");
        std::fs::create_dir_all(&agent_dir).unwrap();
        // ocf-tester runs `meta-data` as nobody: every directory on the path must be
        // traversable (a temp dir is 0700).
        let mut d = Some(agent_dir.as_path());
        while let Some(p) = d {
            std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            if p == dir {
                break;
            }
            d = p.parent();
        }
        let agent = agent_dir.join("cloudvip");
        let _ = std::fs::remove_file(&agent);
        if std::fs::hard_link(BIN, &agent).is_err() {
            std::fs::copy(BIN, &agent).unwrap();
            std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        OcfRoot {
            dir: dir.to_owned(),
            agent,
            _tmp: None,
        }
    }

    /// The agent's path, for tools that take it (ocf-tester).
    pub fn agent(&self) -> &Path {
        &self.agent
    }

    /// This root's resource.d, for [`overlay_script`].
    pub fn resource_d(&self) -> PathBuf {
        self.dir.join("resource.d")
    }

    /// `program` run where /usr/lib/ocf/resource.d shows this root's agent (a private mount
    /// namespace); add its arguments with `.arg`/`.args`.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "{} && exec \"$@\"",
                overlay_script(&self.resource_d().to_string_lossy())
            ))
            .args(["sh", program]);
        cmd
    }

    /// `crm_resource --validate` of `ocf:rust:cloudvip` with `options` (NAME=VALUE each).
    pub fn crm_validate<S: AsRef<str> + std::fmt::Debug>(&self, options: &[S]) -> Run {
        let mut cmd = self.command("crm_resource");
        cmd.args([
            "--validate",
            "--class",
            "ocf",
            "--provider",
            "rust",
            "--agent",
            "cloudvip",
        ]);
        for o in options {
            cmd.args(["--option", o.as_ref()]);
        }
        Run::from(
            format!("crm_resource --validate {options:?}"),
            cmd.output()
                .expect("crm_resource missing: apt-get install pacemaker-cli-utils"),
        )
    }
}

/// ocf-tester and the other path-taking callers: `cmd.arg(&root)` passes the agent's path.
impl AsRef<OsStr> for OcfRoot {
    fn as_ref(&self) -> &OsStr {
        self.agent.as_os_str()
    }
}
