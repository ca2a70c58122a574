//! The OCF resource-agent protocol, nothing cloud-specific: the actions Pacemaker calls,
//! the exit codes it reads, and the error type that carries an exit code plus exit reason
//! through `anyhow` chains. Logging, the environment and the meta-data live in submodules.

pub mod env;
pub mod log;
pub mod metadata;

use std::fmt;

/// OCF exit codes (resource-agents `ocf-returncodes`; OCF RA API 1.1).
/// How Pacemaker reacts (lib/pengine/unpack.c): 1 is soft (restart or move), 2, 4 and 5 are
/// hard (ban on this node), 6 is fatal (ban everywhere), 7 is "stopped" only for probes and
/// monitors: a stop returning 7 is still a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Success = 0,
    ErrGeneric = 1,
    ErrArgs = 2,
    ErrUnimplemented = 3,
    ErrPerm = 4,
    ErrInstalled = 5,
    ErrConfigured = 6,
    NotRunning = 7,
}

impl Status {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Success => "OCF_SUCCESS",
            Status::ErrGeneric => "OCF_ERR_GENERIC",
            Status::ErrArgs => "OCF_ERR_ARGS",
            Status::ErrUnimplemented => "OCF_ERR_UNIMPLEMENTED",
            Status::ErrPerm => "OCF_ERR_PERM",
            Status::ErrInstalled => "OCF_ERR_INSTALLED",
            Status::ErrConfigured => "OCF_ERR_CONFIGURED",
            Status::NotRunning => "OCF_NOT_RUNNING",
        }
    }

    /// One line per code for `usage` and the README.
    pub const ALL: [Status; 8] = [
        Status::Success,
        Status::ErrGeneric,
        Status::ErrArgs,
        Status::ErrUnimplemented,
        Status::ErrPerm,
        Status::ErrInstalled,
        Status::ErrConfigured,
        Status::NotRunning,
    ];

    pub fn meaning(self) -> &'static str {
        match self {
            Status::Success => "the action succeeded; for monitor: the VIP is served by this node",
            Status::ErrGeneric => {
                "soft error (link down, VIP on the wrong interface, a transient cloud failure \
                 after retries): Pacemaker recovers or moves the VIP"
            }
            Status::ErrArgs => {
                "a valid configuration that cannot work on this node (nic missing here, no route \
                 to pick an interface from): banned on this node only"
            }
            Status::ErrUnimplemented => "unknown action",
            Status::ErrPerm => {
                "missing privilege: changing addresses needs CAP_NET_ADMIN; a cloud permission missing"
            }
            Status::ErrInstalled => {
                "this node's own setup is at fault (a credentials file missing, malformed or \
                 writable by others, a wrong pass phrase, an unreadable ca_bundle, a server \
                 certificate not trusted here): banned on this node only"
            }
            Status::ErrConfigured => {
                "the configuration is wrong everywhere (a bad or missing parameter, a request \
                 the cloud refuses whoever sends it): banned cluster-wide"
            }
            Status::NotRunning => {
                "monitor only: the VIP is positively not on this node (never returned by stop)"
            }
        }
    }
}

/// An OCF outcome travelling as an error: the exit status plus the one-line exit reason that
/// Pacemaker shows in `crm_mon`/`pcs status`. Put it in an `anyhow` chain with
/// `Err(Exit::new(..))?` or `.map_err(..)`; `main` finds it with `downcast_ref`.
#[derive(Debug)]
pub struct Exit {
    pub status: Status,
    pub reason: String,
}

impl Exit {
    pub fn new(status: Status, reason: impl Into<String>) -> Self {
        Exit {
            status,
            reason: reason.into(),
        }
    }
    pub fn configured(reason: impl Into<String>) -> Self {
        Exit::new(Status::ErrConfigured, reason)
    }
    /// A parameter whose value is wrong, IPaddr2-style: name, value, what is allowed.
    pub fn invalid(name: &str, value: &str, allowed: impl std::fmt::Display) -> Self {
        Exit::configured(format!("invalid {name}={value:?}: {allowed}"))
    }
    pub fn args(reason: impl Into<String>) -> Self {
        Exit::new(Status::ErrArgs, reason)
    }
    pub fn generic(reason: impl Into<String>) -> Self {
        Exit::new(Status::ErrGeneric, reason)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Exit {}

/// The status an error chain ends in: the first `Exit` found, else OCF_ERR_GENERIC (as
/// resource-agents' `ocf.py` does for an uncaught exception).
pub fn status_of(err: &anyhow::Error) -> Status {
    err.chain()
        .find_map(|e| e.downcast_ref::<Exit>())
        .map_or(Status::ErrGeneric, |e| e.status)
}

/// One line for `ocf-exit-reason:`. Pacemaker keeps only up to the first newline, so the
/// whole `anyhow` context chain is folded into one line, outermost first.
pub fn reason_of(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// The actions Pacemaker (and ocf-tester) call, as argv[1].
#[derive(clap::Subcommand, Clone, Copy, Debug, PartialEq, Eq)]
#[command(rename_all = "kebab-case")]
pub enum Action {
    /// Claim the VIP in the cloud, add it here and announce it
    Start,
    /// Remove the VIP from this node (and release it in the cloud, best effort)
    Stop,
    /// Exit 0 if this node serves the VIP, 7 if it positively does not
    Monitor,
    /// Live move, source side: keep serving until the target claims the VIP
    #[command(name = "migrate_to")]
    MigrateTo,
    /// Live move, target side: claim the VIP (same as start)
    #[command(name = "migrate_from")]
    MigrateFrom,
    /// Re-apply the local address and re-announce a running VIP (OCF 1.0's reload)
    Reload,
    /// Make changed reloadable parameters effective without moving the VIP (OCF 1.1)
    ReloadAgent,
    /// Print the OCF meta-data XML
    MetaData,
    /// Check the parameters (OCF_CHECK_LEVEL>=10: also this node's interfaces)
    ValidateAll,
    /// Print usage and the exit codes
    Usage,
}

/// An OCF boolean parameter: ocf-shellfuncs' `ocf_is_true` words and their opposites.
pub fn parse_bool(name: &str, v: &str) -> Result<bool, Exit> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "on" | "ja" => Ok(true),
        "no" | "false" | "0" | "off" | "nein" => Ok(false),
        _ => Err(Exit::invalid(
            name,
            v,
            "expected true or false (yes/no, 1/0, on/off)",
        )),
    }
}
