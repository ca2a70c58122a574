//! Fault injection shared by every cloud: the rule list the admin API edits and the matcher
//! `server.rs` consults for each connection and request. Generic faults (latency, error
//! status, rate limit, reset, hang, down) are carried out by the server; cloud-specific
//! *effects* (fingerprint race, operation stuck/error) are handed to the cloud's handler.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;

use crate::server::Call;

/// Upper bound for `hang` and `latency`, so a forgotten fault cannot wedge a test for long.
pub const MAX_FAULT_DELAY: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Sleep `ms` before handling (cumulative over matching rules).
    Latency,
    /// Answer `status` (default 503) in the cloud's error format.
    Error,
    /// The cloud's rate-limit answer (GCE: 403 `rateLimitExceeded`).
    RateLimit,
    /// Someone else changed the target (GCE: the NIC fingerprint is re-rolled before the
    /// request is checked, so a fingerprinted mutation gets 412). Mutations only.
    FingerprintRace,
    /// The operation created by the request stays RUNNING until this rule is deleted.
    OperationStuck,
    /// The operation created by the request ends DONE with an error (`code`, `message`).
    OperationError,
    /// Close the connection with a TCP RST instead of answering.
    Reset,
    /// Read the request, then send nothing for `ms` (bounded) and close.
    Hang,
    /// The service is down for this instance: connections are reset as soon as accepted.
    Down,
    /// The real answer with its body cut in half (Content-Length matching the cut): a
    /// well-framed response whose JSON ends early. The request itself is carried out.
    Truncate,
    /// Answer `status` (200) with `message` as the body, verbatim (`application/json`),
    /// instead of handling the request: malformed or wrongly shaped JSON.
    Body,
    /// The client's clock is `secs` seconds off (positive: ahead): the times it signs
    /// (OCI `Date`, GCE JWT `iat`/`exp`) are judged as if it were, and `Date` answers show
    /// the difference it would see.
    ClockSkew,
}

impl FaultKind {
    /// Effects are applied by the cloud to state, and only to mutating calls.
    pub fn is_effect(self) -> bool {
        matches!(
            self,
            FaultKind::FingerprintRace | FaultKind::OperationStuck | FaultKind::OperationError
        )
    }
}

/// A rule as posted to `POST /admin/faults`. Every selector is optional; an absent selector
/// matches everything.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// `gce` or `oci`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// The cloud's service name, e.g. `compute`, `metadata`, `oauth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The API method id, e.g. `compute.instances.updateNetworkInterface`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// HTTP method, e.g. `PATCH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_contains: Option<String>,
    /// Instance name the request is about (metadata: the asking instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// How many matching requests it applies to; absent: until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `clock_skew`: seconds the client's clock is ahead (negative: behind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secs: Option<i64>,
}

impl FaultSpec {
    pub fn new(kind: FaultKind) -> Self {
        FaultSpec {
            kind,
            cloud: None,
            service: None,
            api: None,
            method: None,
            path_contains: None,
            instance: None,
            count: None,
            ms: None,
            status: None,
            code: None,
            message: None,
            secs: None,
        }
    }

    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.ms.unwrap_or(0)).min(MAX_FAULT_DELAY)
    }

    fn matches(&self, call: &Call, method: Option<&str>, path: Option<&str>) -> bool {
        let eq = |sel: &Option<String>, v: Option<&str>| match sel {
            None => true,
            Some(s) => v.is_some_and(|v| v.eq_ignore_ascii_case(s)),
        };
        eq(&self.cloud, Some(call.cloud))
            && eq(&self.service, Some(call.service))
            && eq(&self.api, call.api.as_deref())
            && eq(&self.method, method)
            && eq(&self.instance, call.instance.as_deref())
            && match &self.path_contains {
                None => true,
                Some(p) => path.is_some_and(|path| path.contains(p.as_str())),
            }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Fault {
    pub id: u64,
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// Requests this rule has applied to so far.
    pub hits: u64,
}

impl Fault {
    fn active(&self) -> bool {
        self.spec.count.is_none_or(|c| self.hits < c)
    }
}

/// What the server must do with one request.
#[derive(Debug, Default)]
pub struct Decision {
    pub latency: Duration,
    /// The summed `clock_skew` of the matching rules, in seconds.
    pub skew_secs: i64,
    /// The first matching reset/hang/error/rate-limit rule, if any.
    pub terminal: Option<Fault>,
    /// Effects for the cloud handler (mutations only).
    pub effects: Vec<Fault>,
    /// Ids of every rule applied, for the request log.
    pub applied: Vec<u64>,
}

/// The rule list. Exhausted rules stay listed (with their hits) until deleted, because an
/// `operation_stuck` rule keeps its operations RUNNING for as long as it exists.
#[derive(Default)]
pub struct Faults {
    inner: Mutex<(u64, Vec<Fault>)>,
}

impl Faults {
    pub fn add(&self, spec: FaultSpec) -> Fault {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        let f = Fault {
            id: g.0,
            spec,
            hits: 0,
        };
        g.1.push(f.clone());
        f
    }

    pub fn list(&self) -> Vec<Fault> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// Deletes one rule; false when unknown.
    pub fn remove(&self, id: u64) -> bool {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let before = g.1.len();
        g.1.retain(|f| f.id != id);
        g.1.len() != before
    }

    pub fn clear(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clear();
    }

    /// Whether rule `id` still exists (stuck operations are released when it is deleted).
    pub fn exists(&self, id: u64) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .iter()
            .any(|f| f.id == id)
    }

    /// Connection-level check: is the service down for this call (instance known from the
    /// listener or the peer address)? Counts as a hit.
    pub fn check_down(&self, call: &Call) -> Option<Fault> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for f in g.1.iter_mut() {
            if f.spec.kind == FaultKind::Down && f.active() && f.spec.matches(call, None, None) {
                f.hits += 1;
                return Some(f.clone());
            }
        }
        None
    }

    /// Request-level check; counts hits on every rule it applies.
    pub fn check(&self, call: &Call, method: &str, path: &str) -> Decision {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut d = Decision::default();
        for f in g.1.iter_mut() {
            if !f.active() || !f.spec.matches(call, Some(method), Some(path)) {
                continue;
            }
            match f.spec.kind {
                FaultKind::Down => {
                    // A connection that got through before the rule was added: treat as reset.
                    if d.terminal.is_none() {
                        f.hits += 1;
                        d.applied.push(f.id);
                        d.terminal = Some(f.clone());
                    }
                }
                FaultKind::Latency => {
                    f.hits += 1;
                    d.applied.push(f.id);
                    d.latency = (d.latency + f.spec.delay()).min(MAX_FAULT_DELAY);
                }
                FaultKind::ClockSkew => {
                    f.hits += 1;
                    d.applied.push(f.id);
                    d.skew_secs = d.skew_secs.saturating_add(f.spec.secs.unwrap_or(0));
                }
                k if k.is_effect() => {
                    if call.mutation {
                        f.hits += 1;
                        d.applied.push(f.id);
                        d.effects.push(f.clone());
                    }
                }
                _ => {
                    if d.terminal.is_none() {
                        f.hits += 1;
                        d.applied.push(f.id);
                        d.terminal = Some(f.clone());
                    }
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(api: &str, mutation: bool) -> Call {
        Call {
            cloud: "gce",
            service: "compute",
            api: Some(api.to_string()),
            instance: Some("node-a".into()),
            api_call: true,
            mutation,
        }
    }

    #[test]
    fn counts_and_selectors() {
        let faults = Faults::default();
        let mut s = FaultSpec::new(FaultKind::Error);
        s.api = Some("compute.instances.get".into());
        s.count = Some(1);
        faults.add(s);
        let mut e = FaultSpec::new(FaultKind::OperationError);
        e.instance = Some("node-a".into());
        faults.add(e);
        let d = faults.check(&call("compute.instances.get", false), "GET", "/x");
        assert!(d.terminal.is_some());
        assert!(d.effects.is_empty(), "effects only apply to mutations");
        let d = faults.check(&call("compute.instances.get", false), "GET", "/x");
        assert!(d.terminal.is_none(), "count exhausted");
        let d = faults.check(
            &call("compute.instances.updateNetworkInterface", true),
            "PATCH",
            "/x",
        );
        assert_eq!(d.effects.len(), 1);
        assert_eq!(faults.list().len(), 2, "exhausted rules stay listed");
    }
}
