//! Running the agent: a builder that sets `OCF_RESKEY_*` and friends, runs the binary
//! (optionally inside a network namespace) and asserts on the exit code and exit reason,
//! printing everything useful when an assertion fails.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_cloudvip");
/// The state directory an agent uses without HA_RSCTMP (ocf-directories' default).
pub const RUN_DIR: &str = "/run/resource-agents";

#[derive(Clone)]
pub struct Agent {
    action: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    netns: Option<String>,
    run_dir: Option<PathBuf>,
}

pub struct Run {
    pub what: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Agent {
    pub fn new(action: &str) -> Self {
        Agent {
            action: action.into(),
            args: Vec::new(),
            env: vec![("OCF_RESOURCE_INSTANCE".into(), "VIP".into())],
            netns: None,
            run_dir: None,
        }
    }

    /// The action as raw bytes (argv may hold anything).
    pub fn action_os(mut self, action: &OsStr) -> Self {
        self.action = action.to_owned();
        self
    }

    /// An argument after the action, e.g. `--param`.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn param(self, k: &str, v: &str) -> Self {
        self.env(&format!("OCF_RESKEY_{k}"), v)
    }

    pub fn params(mut self, kv: &[(&str, &str)]) -> Self {
        for (k, v) in kv {
            self = self.param(k, v);
        }
        self
    }

    pub fn env(self, k: &str, v: &str) -> Self {
        self.env_os(OsStr::new(k), OsStr::new(v))
    }

    /// A variable with any bytes in its name or value.
    pub fn env_os(mut self, k: &OsStr, v: &OsStr) -> Self {
        self.env.retain(|(ek, _)| ek != k);
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Leave a variable out (e.g. HA_RSCTMP, which Pacemaker never passes).
    pub fn env_remove(mut self, k: &str) -> Self {
        self.env.retain(|(ek, _)| ek != OsStr::new(k));
        self
    }

    /// Run as on a node of its own: `dir` is mounted over /run/resource-agents in a private
    /// mount namespace, so agents of one test node share it (as on a real node) and never
    /// see another test's caches and locks. With `env_remove("HA_RSCTMP")` this is
    /// exactly what Pacemaker gives an agent.
    pub fn node_run_dir(mut self, dir: &Path) -> Self {
        self.run_dir = Some(dir.to_owned());
        self
    }

    /// Run inside network namespace `ns`, as a node of its own: its /run/resource-agents
    /// is private to the namespace (see `node_run_dir`), as on a real node.
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.to_owned());
        if self.run_dir.is_none() {
            self.run_dir = Some(node_dir(ns));
        }
        self
    }

    pub fn run(&self) -> Run {
        let out = self.command().output().expect("cannot run the agent");
        let run = Run::from(self.describe(), out);
        crate::secret_scan::keep_run(&run);
        run
    }

    /// The command `run` runs, for callers that spawn it themselves (the fault matrix
    /// times the agent process from its exec).
    pub fn command(&self) -> Command {
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(ns) = &self.netns {
            argv.extend(["ip", "netns", "exec", ns].map(OsString::from));
        }
        if let Some(dir) = &self.run_dir {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::create_dir_all(RUN_DIR).unwrap();
            argv.extend(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c"].map(OsString::from),
            );
            argv.push(format!("mount --bind \"$1\" {RUN_DIR} && shift && exec \"$@\"").into());
            argv.push("sh".into());
            argv.push(dir.into());
        }
        argv.push(BIN.into());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd.arg(&self.action).args(&self.args);
        // A clean slate: the test process's HA_*/OCF_* must not leak in.
        for (k, _) in std::env::vars_os() {
            let name = k.to_string_lossy();
            if name.starts_with("OCF_") || name.starts_with("HA_") {
                cmd.env_remove(&k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    pub fn describe(&self) -> String {
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect();
        let args: Vec<_> = self.args.iter().map(|a| a.to_string_lossy()).collect();
        format!(
            "{}{}cloudvip {} {} with {}",
            self.netns
                .as_ref()
                .map_or(String::new(), |n| format!("[netns {n}] ")),
            self.run_dir.as_ref().map_or(String::new(), |d| format!(
                "[{} on {RUN_DIR}] ",
                d.display()
            )),
            self.action.to_string_lossy(),
            args.join(" "),
            env.join(" ")
        )
    }
}

impl Run {
    pub fn from(what: String, out: Output) -> Self {
        Run {
            what,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn fail(&self, msg: &str) -> ! {
        panic!(
            "{msg}\n  run: {}\n  exit: {}\n  stdout: {}\n  stderr: {}",
            self.what, self.code, self.stdout, self.stderr
        )
    }

    /// The exit reason Pacemaker would record: the text after the last prefix.
    pub fn reason(&self) -> Option<&str> {
        self.stderr
            .lines()
            .rev()
            .find_map(|l| l.split_once("ocf-exit-reason:").map(|(_, r)| r))
    }

    /// Exit code `code`, and when `reason` is given an exit reason containing it.
    pub fn expect(&self, code: i32, reason: Option<&str>) -> &Self {
        if self.code != code {
            self.fail(&format!("expected exit {code}"));
        }
        match (reason, self.reason()) {
            (Some(want), Some(got)) if got.contains(want) => {}
            (Some(want), _) => self.fail(&format!("expected an exit reason containing {want:?}")),
            (None, _) => {}
        }
        if code != 0 && code != 7 && self.reason().is_none() {
            self.fail("a failure must carry an ocf-exit-reason line");
        }
        self
    }

    pub fn ok(&self) -> &Self {
        self.expect(0, None)
    }
}

/// The built agent in a private OCF root (tests/ocf_root.rs), never over /usr/lib/ocf's
/// files; keep the value alive while the agent is used (`cmd.arg(&root)` passes its path).
pub fn install_agent() -> crate::ocf_root::OcfRoot {
    crate::ocf_root::OcfRoot::new()
}

/// Where scripts/setup-deps.sh builds the PyPI clients' venvs (`venv-<name>`).
pub fn test_cache() -> PathBuf {
    PathBuf::from(
        std::env::var("CLOUDVIP_TEST_CACHE").unwrap_or_else(|_| "/opt/cloudvip-test".into()),
    )
}

/// The /run/resource-agents of the test node in namespace `ns` (removed with its `Lab`).
pub fn node_dir(ns: &str) -> PathBuf {
    std::env::temp_dir().join("cloudvip-nodes").join(ns)
}

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (network and mount namespaces); CI runs as root"
    );
}

/// Run a command, panicking with its output on failure.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a command and report only whether it succeeded.
pub fn sh_ok(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
