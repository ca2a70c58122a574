//! The cloud side of a VIP move, behind one small trait. Backends answer in `CloudError`,
//! never in exit codes: `agent.rs` decides what an error means for Pacemaker. `none`
//! (IPaddr2-like, no cloud) lives here; every other backend is a folder of its own,
//! registered by one line in `backends!` below; `backend()` and `inspector()` pick one.

pub mod call;
pub mod config;
pub mod inspect;
pub mod registry;
pub mod secret;

use std::fmt;
use std::path::Path;

use crate::deadline::{Backoff, Deadline};
use crate::ocf::Exit;
use crate::params::Params;
pub use inspect::{Holding, Inspect, Step, Verdict, DIAGNOSE_METADATA, DIAGNOSE_STEP};
pub use registry::{Backend, CloudKind, Setup};

/// The one registration table: each line declares a backend's module (a folder of this
/// one, exporting `pub static BACKEND: Backend`) and lists it, in the order the `cloud`
/// parameter's documents and messages name them and `cloud=auto` tries them.
macro_rules! backends {
    ($($name:ident),* $(,)?) => {
        $(pub mod $name;)*
        /// Every registered backend.
        pub static BACKENDS: &[&Backend] = &[$(&$name::BACKEND),*];
    };
}

backends! {
    gce,
    oci,
    aws,
    azure,
}

/// The load-balancer probe mode, a mode of every backend (`mode=probe`; cloud=azure's only).
pub mod probe;

/// Proof that the cloud routes the VIP to this node. Only this module and its backends can
/// make one, and announcing the VIP on the wire requires it: a gratuitous ARP for an
/// address the cloud sends elsewhere is a black hole. It carries what the backend needs
/// after the claim (`Cloud::complete`): e.g. OCI's private IP OCID.
pub struct Claimed {
    handle: Option<String>,
}

impl Claimed {
    pub(in crate::cloud) fn new(handle: Option<String>) -> Claimed {
        Claimed { handle }
    }

    /// What the backend's claim left for `complete`.
    pub fn handle(&self) -> Option<&str> {
        self.handle.as_deref()
    }
}

/// Where the cloud sees the VIP, as far as the depth asked for lets a backend tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The cloud routes it to our NIC.
    Here,
    /// The cloud positively does not route it here: elsewhere or nowhere (who, when the
    /// backend read it).
    Elsewhere(Option<String>),
    /// This depth cannot tell without a cost it may not have (OCI's metadata lists no
    /// secondary IPs): the agent decides whether to trust the kernel or ask deeper.
    NotAsked,
}

/// A local process a backend needs while the VIP is here (a load balancer's probe
/// responder): the agent starts it after `claim` and ends it before `release`, as it does
/// the announcer; the backend only names it, it never starts one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Daemon {
    /// Answer the load balancer's health probe (`local/responder.rs`), as `owner`'s.
    Responder {
        owner: String,
        spec: crate::local::responder::Spec,
    },
    /// GCE Fast IP Move: announce `ip` now and every 10 s for 10 minutes (`local/fim.rs`).
    Fim { ip: std::net::IpAddr },
}

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
    /// The cloud's own refusal, with its error code (GCE's `reason`, OCI's `code`, EC2's
    /// `Code`), so that callers match the code, never the text. What it means is `error`,
    /// one of the variants above ([`CloudError::coded`] never nests).
    Coded {
        code: String,
        error: Box<CloudError>,
    },
}

impl CloudError {
    /// `error` as the cloud's refusal with `code`.
    pub fn coded(code: impl Into<String>, error: CloudError) -> CloudError {
        CloudError::Coded {
            code: code.into(),
            error: Box::new(error.into_kind()),
        }
    }

    /// What it means: one of the plain variants, never `Coded`.
    pub fn kind(&self) -> &CloudError {
        match self {
            CloudError::Coded { error, .. } => error.kind(),
            e => e,
        }
    }

    /// What it means, the code dropped: for matching on the kind by value.
    pub fn into_kind(self) -> CloudError {
        match self {
            CloudError::Coded { error, .. } => error.into_kind(),
            e => e,
        }
    }

    /// The cloud's error code, when the cloud refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            CloudError::Coded { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Worth retrying within the deadline: the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind(),
            CloudError::Transient(_) | CloudError::Conflict(_)
        )
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
            CloudError::Coded { code, error } => CloudError::Coded {
                code,
                error: Box::new(error.at(step)),
            },
            e => e,
        }
    }
}

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
            CloudError::Coded { error, .. } => error.fmt(f),
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

/// For a VIP that is already running here (reload-agent): the proof announcing needs,
/// when the agent's reading of the cloud (`agent::routed_here`: the cloud's word at the
/// depth it chose, or the kernel's where the cloud was not asked) says it routes the VIP
/// here; `None` when it positively routes it elsewhere or nowhere.
pub fn confirmed(routed_here: bool) -> Option<Claimed> {
    routed_here.then(|| Claimed::new(None))
}

/// The local interface the VIP belongs to: its MAC tells which cloud NIC/VNIC is ours.
pub struct Nic {
    pub name: String,
    pub mac: Option<[u8; 6]>,
}

/// What a dry run asks a backend to plan: the changes of `claim`, of `complete` (the
/// extras: a public IP) or of `release`.
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

/// Moves the VIP between instances as the cloud sees it: the contract Pacemaker's actions
/// use. Every method is idempotent, returns before `deadline`, and never touches the
/// local kernel.
pub trait Cloud {
    fn name(&self) -> &'static str;
    /// Where the cloud routes the VIP, as seen from `nic` of this instance. At `depth` 0
    /// this must cost no API quota (metadata only): monitor calls it every few seconds for
    /// years; a backend that cannot tell for free answers `NotAsked`.
    fn locate(&mut self, nic: &Nic, depth: u32, deadline: &Deadline) -> Result<Seen, CloudError>;
    /// Everything this backend can check before the first change, read-only and cheap
    /// (metadata, no API write): the NIC is this instance's, the VIP is no NIC's primary
    /// address, the configuration fits the network. start runs it before `claim`, so a
    /// start that would fail never takes the VIP from its holder first; validate-all runs
    /// it at depth 10.
    fn validate(&mut self, _nic: &Nic, _deadline: &Deadline) -> Result<(), CloudError> {
        Ok(())
    }
    /// Make `nic` of this instance the holder, detaching the VIP from any other first.
    /// A backend that moves no cloud state (a load balancer's probe) checks and answers.
    fn claim(&mut self, nic: &Nic, deadline: &Deadline) -> Result<Claimed, CloudError>;
    /// After the VIP works here: move what only completes the service (a public IP), so
    /// that the private VIP's outage does not include it.
    fn complete(
        &mut self,
        _nic: &Nic,
        _claimed: &Claimed,
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
    /// On a probe: fill what a start here would otherwise ask the cloud first (OCI: the
    /// VNIC's subnet). Best-effort and bounded by `deadline`; a failure changes nothing.
    fn prime(&mut self, _nic: &Nic, _deadline: &Deadline) {}
    /// The local process this backend needs while the VIP is here, if any.
    fn daemon(&self) -> Option<Daemon> {
        None
    }
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
    fn locate(
        &mut self,
        _nic: &Nic,
        _depth: u32,
        _deadline: &Deadline,
    ) -> Result<Seen, CloudError> {
        Ok(Seen::Here)
    }
    fn claim(&mut self, _nic: &Nic, _deadline: &Deadline) -> Result<Claimed, CloudError> {
        Ok(Claimed::new(None))
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

/// `cloud=auto`: the first backend whose `detect` knows the firmware's DMI strings (read
/// from sysfs: no network round trip, so validate-all and probes stay local); none else.
pub fn detect(dmi_dir: &Path) -> CloudKind {
    let dmi = registry::Dmi(dmi_dir);
    BACKENDS
        .iter()
        .find(|b| (b.detect)(&dmi))
        .map_or(CloudKind::None, |b| CloudKind::Backend(b))
}

pub fn resolve_kind(kind: CloudKind) -> CloudKind {
    match kind {
        CloudKind::Auto => detect(Path::new("/sys/class/dmi/id")),
        k => k,
    }
}

/// The registered backend of the configured (for `auto`, detected) cloud with its setup,
/// after what a named cloud has refused at parse time: what it cannot do with this VIP,
/// and the parameters that do not apply to it (`auto` resolves only here). `None` for
/// cloud=none.
fn resolved<'p>(
    params: &'p Params,
    state: Option<&'p Path>,
) -> Result<Option<(&'static Backend, Setup<'p>)>, Exit> {
    let config = &params.cloud_config;
    let Some(b) = resolve_kind(params.cloud).backend() else {
        crate::params::no_cloud_route_v6(params.ip, params.local_mode)?;
        config.applies(None)?;
        return Ok(None);
    };
    (b.fits)(params.ip, &|name| config.is_set(name))?;
    let mode = config.applies(Some(b))?;
    let setup = Setup {
        ip: params.ip,
        mode,
        shared: &config.shared,
        config: config.of(b)?,
        state,
    };
    Ok(Some((b, setup)))
}

/// The backend for the configured (and, for `auto`, detected) cloud. Builds clients only:
/// no network round trip happens here. `state` is the state directory (`state::dir`),
/// where the backends keep their token caches and locks.
pub fn backend(params: &Params, state: Option<&Path>) -> Result<Box<dyn Cloud>, Exit> {
    match resolved(params, state)? {
        Some((b, setup)) if setup.mode == probe::MODE.name => {
            Ok(Box::new(probe::Probe::new(&setup, b.name)?))
        }
        Some((b, setup)) => (b.cloud)(&setup),
        None => Ok(Box::new(NoCloud)),
    }
}

/// The admin side of the same backend (`cloudvip status`, `cloudvip diagnose`); `None` for
/// cloud=none, which has nothing in a cloud to show or check.
pub fn inspector(params: &Params, state: Option<&Path>) -> Result<Option<Box<dyn Inspect>>, Exit> {
    match resolved(params, state)? {
        Some((b, setup)) if setup.mode == probe::MODE.name => {
            Ok(Some(Box::new(probe::Probe::new(&setup, b.name)?)))
        }
        Some((b, setup)) => (b.inspect)(&setup).map(Some),
        None => Ok(None),
    }
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
        assert_eq!(detect(d.path()).name(), "gce");
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("chassis_asset_tag"), "OracleCloud.com\n").unwrap();
        assert_eq!(detect(d.path()).name(), "oci");
    }

    #[test]
    fn subnets() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(in_subnet(ip("10.128.0.100"), ip("10.128.0.0"), 20));
        assert!(!in_subnet(ip("10.129.0.100"), ip("10.128.0.0"), 20));
        assert!(in_subnet(ip("fd00::5"), ip("fd00::"), 64));
        assert!(!in_subnet(ip("fd00::5"), ip("10.0.0.0"), 8));
    }
}
