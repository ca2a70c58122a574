//! The cloud side of a VIP move, behind one small trait. Backends answer in `CloudError`,
//! never in exit codes: `agent.rs` alone decides what an error means for Pacemaker.
//! `none` (IPaddr2-like, no cloud) lives here, GCE in `gce/`, OCI in `oci/`; `backend()`
//! picks one.

pub mod aws;
pub mod config;
pub mod gce;
pub mod oci;
pub mod secret;

use std::fmt;
use std::path::Path;

use crate::deadline::{Backoff, Deadline};
use crate::ocf::{Exit, Status};
use crate::params::{CloudKind, Params};

/// Proof that the cloud routes the VIP to this node. Only this module and its backends can
/// make one (the field is private to `cloud`), and announcing the VIP on the wire requires
/// it: a gratuitous ARP for an address the cloud sends elsewhere is a black hole.
pub struct Claimed(());

#[derive(Clone, Debug)]
pub enum CloudError {
    /// Timeouts, resets, 5xx, rate limits, metadata server hiccups: may succeed later.
    Transient(String),
    /// Someone else changed the resource under us (412 / ETag mismatch) and retries inside
    /// the deadline did not settle it.
    Conflict(String),
    /// Credentials rejected or a permission missing.
    Denied(String),
    /// A configured cloud object (NIC, subnet, address) does not exist.
    NotFound(String),
    /// The cloud rejected the request as malformed or the configuration as invalid
    /// (e.g. an unknown secondary range, a malformed endpoint URL): wrong everywhere.
    Invalid(String),
    /// This node's own setup is at fault and another node may do better: a credentials
    /// file missing, unreadable, malformed or writable by others, a wrong pass phrase, a
    /// token URI that does not exist, a server certificate this node does not trust.
    Local(String),
}

impl CloudError {
    /// Worth retrying within the deadline: the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, CloudError::Transient(_) | CloudError::Conflict(_))
    }

    /// The same error, naming the step of the action it happened in ("claim", "public IP")
    /// right after its kind, when its cause does not already say what was being done: a
    /// timeout or a 503 ("transient cloud error: claim: Compute API: GET …: no answer
    /// within 4.5 s"). A denial names the permission, a missing object names the object,
    /// and Pacemaker keeps only 128 characters of the reason: those stay as they are.
    pub fn at(self, step: &str) -> CloudError {
        match self {
            CloudError::Transient(x) => CloudError::Transient(format!("{step}: {x}")),
            CloudError::Conflict(x) => CloudError::Conflict(format!("{step}: {x}")),
            e => e,
        }
    }
}

/// How long one `cloudvip diagnose` step may wait: a metadata server answers in
/// milliseconds, so a few seconds without an answer is the finding, not a reason to wait
/// out the whole command's budget (20 s) and skip everything after it.
pub const DIAGNOSE_METADATA: std::time::Duration = std::time::Duration::from_secs(3);
/// Every other diagnose step (a token, one permission probe, one read).
pub const DIAGNOSE_STEP: std::time::Duration = std::time::Duration::from_secs(5);

/// When `r` refused our credentials and this node's clock is more than `limit_secs` off
/// the server's, that is the cause: a node-local problem (its time, NTP) that no retry
/// and no other credential fixes.
pub fn clock_refusal(r: &crate::http::Response, limit_secs: i64) -> Option<CloudError> {
    let off = r.clock_offset()?;
    (off.abs() > limit_secs).then(|| {
        CloudError::Local(format!(
            "HTTP {} because this node's clock is {} s {} the server's (fix its time)",
            r.status,
            off.abs(),
            if off > 0 { "behind" } else { "ahead of" }
        ))
    })
}

/// A failed HTTP exchange with `what` (e.g. "Compute API"): transport errors are
/// transient; a request that cannot be built is a configuration error; an untrusted
/// certificate is this node's trust store (or its proxy), and fails at once.
pub fn http_error(what: &str, e: crate::http::HttpError) -> CloudError {
    use crate::http::HttpError;
    match e {
        HttpError::Transport(m) => CloudError::Transient(format!("{what}: {m}")),
        HttpError::Invalid(m) => CloudError::Invalid(format!("{what}: {m}")),
        HttpError::Tls(m) => CloudError::Local(format!("{what}: {m} (check ca_bundle)")),
    }
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloudError::Transient(m) => write!(f, "transient cloud error: {m}"),
            CloudError::Conflict(m) => write!(f, "concurrent change in the cloud: {m}"),
            CloudError::Denied(m) => write!(f, "permission denied by the cloud: {m}"),
            CloudError::NotFound(m) => write!(f, "not found in the cloud: {m}"),
            CloudError::Invalid(m) => write!(f, "rejected by the cloud: {m}"),
            CloudError::Local(m) => write!(f, "this node's setup: {m}"),
        }
    }
}

impl std::error::Error for CloudError {}

/// The backends' one read-modify-write loop: run `attempt` (which re-reads the cloud state
/// each time) until it succeeds, retrying a conflict (412, ETag, an address not yet
/// released) or a transient failure (an operation that failed, a timeout) with a growing
/// pause while the deadline allows. `what` names the step in the log.
pub fn settle<T>(
    what: &str,
    deadline: &Deadline,
    mut attempt: impl FnMut() -> Result<T, CloudError>,
) -> Result<T, CloudError> {
    let mut backoff = SETTLE_BACKOFF;
    let mut round = 0u32;
    loop {
        round = round.saturating_add(1);
        match attempt() {
            Err(e) if e.is_transient() => {
                log::info!("{what}, round {round}: {e}; re-reading and retrying");
                if backoff.wait(deadline).is_err() {
                    return Err(e);
                }
            }
            done => return done,
        }
    }
}

/// Between read-modify-write rounds: a GCE operation or a racing writer needs about a
/// second; jittered, so that two writers that collided do not collide again.
const SETTLE_BACKOFF: Backoff = Backoff::new(
    std::time::Duration::from_millis(200),
    std::time::Duration::from_secs(2),
    true,
);

/// For a VIP that is already running here (reload-agent): the cloud's own word, at depth 0
/// (metadata, no API quota), that it routes the VIP to `nic`, as the proof announcing
/// needs. `None` when it positively routes it elsewhere or nowhere.
pub fn confirmed(
    cloud: &mut dyn Cloud,
    nic: &Nic,
    deadline: &Deadline,
) -> Result<Option<Claimed>, CloudError> {
    Ok(cloud.check(nic, 0, deadline)?.then_some(Claimed(())))
}

/// The local interface the VIP belongs to: its MAC tells which cloud NIC/VNIC is ours.
pub struct Nic {
    pub name: String,
    pub mac: Option<[u8; 6]>,
}

/// What a dry run asks a backend to plan: the changes of `claim`, of `claim_extras` or of
/// `release`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Claim,
    Extras,
    Release,
}

/// One change a dry run shows: the API call that would make it, when one would.
pub struct Planned {
    pub call: Option<String>,
    pub what: String,
}

impl Planned {
    pub fn call(call: impl Into<String>, what: impl Into<String>) -> Planned {
        Planned {
            call: Some(call.into()),
            what: what.into(),
        }
    }
    /// A decision that needs no call (e.g. "the public IP follows the private IP").
    pub fn note(what: impl Into<String>) -> Planned {
        Planned {
            call: None,
            what: what.into(),
        }
    }
}

/// Moves the VIP between instances as the cloud sees it. Every method is idempotent,
/// returns before `deadline`, and never touches the local kernel.
pub trait Cloud {
    fn name(&self) -> &'static str;
    /// Does the cloud route the VIP to `nic` of this instance? At `depth` 0 this must cost
    /// no API quota (metadata only): monitor calls it every few seconds for years.
    fn check(&mut self, nic: &Nic, depth: u32, deadline: &Deadline) -> Result<bool, CloudError>;
    /// Everything this backend can check before the first change, read-only and cheap
    /// (metadata, no API write): the NIC is this instance's, the VIP is no NIC's primary
    /// address, the configuration fits the network. start runs it before `claim`, so a
    /// start that would fail never takes the VIP from its holder first; validate-all runs
    /// it at depth 10.
    fn validate(&mut self, _nic: &Nic, _deadline: &Deadline) -> Result<(), CloudError> {
        Ok(())
    }
    /// Make `nic` of this instance the holder, detaching the VIP from any other first.
    fn claim(&mut self, nic: &Nic, deadline: &Deadline) -> Result<Claimed, CloudError>;
    /// After the VIP works here: move what only completes the service (a public IP), so
    /// that the private VIP's outage does not include it.
    fn claim_extras(
        &mut self,
        _nic: &Nic,
        _proof: &Claimed,
        _deadline: &Deadline,
    ) -> Result<(), CloudError> {
        Ok(())
    }
    /// Detach the VIP from this instance if attached; Ok when it was not.
    fn release(&mut self, deadline: &Deadline) -> Result<(), CloudError>;
    /// For `--dry-run`: the changes `op` would make now, decided from read-only calls the
    /// way the real action decides them (a check that would fail it first fails here too).
    /// Nothing is written; an empty list means nothing to change.
    fn plan(
        &mut self,
        _op: Op,
        _nic: &Nic,
        _deadline: &Deadline,
    ) -> Result<Vec<Planned>, CloudError> {
        Ok(Vec::new())
    }
    /// For `cloudvip status`: who holds the VIP (and its public IP) as the cloud sees it,
    /// the VIP's own row first. May cost a few read-only API calls; never called by
    /// Pacemaker.
    fn holders(
        &mut self,
        _nic: Option<&Nic>,
        _deadline: &Deadline,
    ) -> Result<Vec<Holding>, CloudError> {
        Ok(Vec::new())
    }
    /// For `cloudvip diagnose`: the checks, in order metadata, credentials, permissions,
    /// NIC, subnet. Read-only: a permission to change something is probed with a request
    /// the cloud refuses for its precondition (a stale fingerprint / etag) only after
    /// checking IAM, so nothing changes whatever the answer.
    fn diagnose(&mut self, _nic: Option<&Nic>, _deadline: &Deadline) -> Vec<Step> {
        vec![Step::pass(
            "cloud",
            "cloud=none: nothing to check in a cloud",
        )]
    }
}

/// One row of `cloudvip status`: an object of the cloud and who has it.
pub struct Holding {
    /// e.g. "alias 10.0.0.250/32", "public 203.0.113.10"
    pub what: String,
    /// e.g. "node-a nic0 (us-central1-a)"; "- (why)" when nobody holds it.
    pub holder: String,
    pub ours: bool,
    /// Some instance holds it (this one or another).
    pub held: bool,
}

impl Holding {
    pub fn held(what: String, holder: String, ours: bool) -> Holding {
        Holding {
            what,
            holder,
            ours,
            held: true,
        }
    }
    pub fn nobody(what: String, why: &str) -> Holding {
        Holding {
            what,
            holder: format!("- ({why})"),
            ours: false,
            held: false,
        }
    }
}

/// One check of `cloudvip diagnose`.
pub struct Step {
    pub name: &'static str,
    pub verdict: Verdict,
}

pub enum Verdict {
    Pass(String),
    /// What is wrong, and how to fix it (a command or a parameter when there is one).
    Fail {
        problem: String,
        fix: String,
    },
    /// Not checked because an earlier step failed.
    Skip(String),
}

impl Step {
    pub fn pass(name: &'static str, what: impl Into<String>) -> Step {
        Step {
            name,
            verdict: Verdict::Pass(what.into()),
        }
    }
    pub fn fail(name: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Step {
        Step {
            name,
            verdict: Verdict::Fail {
                problem: problem.into(),
                fix: fix.into(),
            },
        }
    }
    pub fn skip(name: &'static str) -> Step {
        Step {
            name,
            verdict: Verdict::Skip("skipped: an earlier check failed".into()),
        }
    }
    /// The checks of [`CHECKS`] from `from` on, skipped: an earlier one failed.
    pub fn skip_rest(out: &mut Vec<Step>, from: usize) {
        out.extend(CHECKS[from..].iter().map(|name| Step::skip(name)));
    }
}

/// The checks of `cloudvip diagnose`, in the order every backend runs them.
pub const CHECKS: [&str; 5] = ["metadata", "credentials", "permissions", "nic", "subnet"];

/// The permission a cloud's denial names: GCE writes `Required 'compute.x.y' permission`.
pub fn named_permission(msg: &str) -> Option<String> {
    let (_, rest) = msg.split_once("Required '")?;
    let (perm, _) = rest.split_once('\'')?;
    Some(perm.to_owned())
}

/// Is `ip` inside `net/prefix`?
pub fn in_subnet(ip: std::net::IpAddr, net: std::net::IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(n)) if prefix <= 32 => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(n)) if prefix <= 128 => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `cloud=none`: the network is a plain L2 segment; holding the address is holding the VIP.
pub struct NoCloud;

impl Cloud for NoCloud {
    fn name(&self) -> &'static str {
        "none"
    }
    fn check(&mut self, _nic: &Nic, _depth: u32, _deadline: &Deadline) -> Result<bool, CloudError> {
        Ok(true)
    }
    fn claim(&mut self, _nic: &Nic, _deadline: &Deadline) -> Result<Claimed, CloudError> {
        Ok(Claimed(()))
    }
    fn release(&mut self, _deadline: &Deadline) -> Result<(), CloudError> {
        Ok(())
    }
}

/// A MAC address as both clouds' metadata services write it (lower-case, colon-separated;
/// compare case-insensitively, OCI writes upper-case).
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `cloud=auto`: the firmware's DMI strings, read from sysfs: no network round trip, so
/// validate-all and probes stay local. GCE sets product_name "Google Compute Engine" and
/// sys_vendor "Google"; OCI sets chassis_asset_tag "OracleCloud.com".
pub fn detect(dmi_dir: &Path) -> CloudKind {
    let read = |f: &str| {
        std::fs::read_to_string(dmi_dir.join(f))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    if read("sys_vendor") == "Google" || read("product_name") == "Google Compute Engine" {
        CloudKind::Gce
    } else if read("chassis_asset_tag") == "OracleCloud.com" {
        CloudKind::Oci
    } else {
        CloudKind::None
    }
}

pub fn resolve_kind(kind: CloudKind) -> CloudKind {
    match kind {
        CloudKind::Auto => detect(Path::new("/sys/class/dmi/id")),
        k => k,
    }
}

/// The backend for the configured (and, for `auto`, detected) cloud. Builds clients only:
/// no network round trip happens here. `state` is the state directory (`state::dir`),
/// where the backends keep their token caches and locks.
pub fn backend(params: &Params, state: Option<&Path>) -> Result<Box<dyn Cloud>, Exit> {
    let state_str = state.and_then(Path::to_str).map(str::to_owned);
    let state = state.map(Path::to_owned);
    let kind = resolve_kind(params.cloud);
    // `auto` resolves only here: what params.rs refuses for a named cloud, refuse here too.
    crate::params::cloud_ipv6(
        kind,
        params.ip,
        params.cloud_config.shared.public_ip.is_some(),
    )?;
    // One HTTP client per action, built only for a cloud that calls an API.
    let shared = &params.cloud_config.shared;
    let http = || {
        crate::http::Http::new(&crate::http::HttpConfig {
            proxy: shared.proxy.clone(),
            ca_bundle: shared.ca_bundle.clone(),
        })
        .map_err(setup_exit)
    };
    match kind {
        CloudKind::None | CloudKind::Auto => {
            crate::params::no_cloud_route_v6(params.ip, params.local_mode)?;
            Ok(Box::new(NoCloud))
        }
        CloudKind::Gce => Ok(Box::new(gce::Gce::new(params, http()?, state_str))),
        CloudKind::Oci => Ok(Box::new(oci::Oci::new(params, http()?, state))),
    }
}

/// A client that cannot be built: the status it says (a bad proxy is the configuration's
/// fault), else this node's installation (e.g. an unreadable ca_bundle).
fn setup_exit(e: anyhow::Error) -> Exit {
    let status = e
        .chain()
        .find_map(|c| c.downcast_ref::<Exit>())
        .map_or(Status::ErrInstalled, |x| x.status);
    Exit::new(status, format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The real read-modify-write loop, against a fake clock: whatever each round
        /// costs (bounded by what is left, as the http layer bounds it), settle returns
        /// by the deadline.
        #[test]
        fn settle_never_runs_past_the_deadline(
            budget_ms in 1u64..120_000,
            costs in proptest::collection::vec(0u64..15_000, 1..64),
        ) {
            use crate::deadline::testing::FakeClock;
            use std::time::Duration;
            let clock = FakeClock::new();
            let d = Deadline::with_clock(Duration::from_millis(budget_ms), clock.clone());
            let mut i = 0;
            let r: Result<(), CloudError> = settle("test", &d, || {
                let cost = Duration::from_millis(costs[i % costs.len()]);
                i += 1;
                clock.advance(cost.min(d.remaining()));
                Err(CloudError::Transient("503".into()))
            });
            proptest::prop_assert!(r.is_err());
            proptest::prop_assert!(clock.elapsed() <= Duration::from_millis(budget_ms));
        }
    }

    #[test]
    fn detects_from_dmi_strings() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(detect(d.path()), CloudKind::None);
        std::fs::write(d.path().join("product_name"), "Google Compute Engine\n").unwrap();
        assert_eq!(detect(d.path()), CloudKind::Gce);
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("chassis_asset_tag"), "OracleCloud.com\n").unwrap();
        assert_eq!(detect(d.path()), CloudKind::Oci);
    }

    #[test]
    fn permission_names_and_subnets() {
        assert_eq!(
            named_permission(
                "Required 'compute.instances.updateNetworkInterface' permission for 'x'"
            )
            .as_deref(),
            Some("compute.instances.updateNetworkInterface")
        );
        assert_eq!(named_permission("forbidden"), None);
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(in_subnet(ip("10.128.0.100"), ip("10.128.0.0"), 20));
        assert!(!in_subnet(ip("10.129.0.100"), ip("10.128.0.0"), 20));
        assert!(in_subnet(ip("fd00::5"), ip("fd00::"), 64));
        assert!(!in_subnet(ip("fd00::5"), ip("10.0.0.0"), 8));
    }
}
