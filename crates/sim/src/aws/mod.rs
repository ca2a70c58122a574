//! The AWS half of the emulator: the EC2 Query API (2016-11-15) and STS on one HTTPS
//! listener, every request's SigV4 signature verified; IMDSv2 per instance (and on a shared
//! listener told apart by source address); per-credential action policies; eventual
//! consistency per read family; built-in throttling optional. Facts and their sources:
//! `shared/research/aws-azure.md` part A; choices where the truth is unknown:
//! `DEVIATIONS.md` ("AWS").
//!
//! Layout: `world.rs` (the `[aws]` schema), `state.rs` (the network and its writes),
//! `history.rs` (lagged reads), `iam.rs` + `sigv4.rs` (who signed, may they),
//! `ec2.rs` / `sts.rs` / `imds.rs` (the three services), `render.rs` (EC2 XML),
//! `service.rs` (listeners, log classification, faults), `admin.rs` (`/admin/aws/...`).

pub mod admin;
pub mod ec2;
pub mod errors;
pub mod filter;
pub mod history;
pub mod iam;
pub mod ids;
pub mod imds;
pub mod query;
pub mod render;
pub mod service;
pub mod sigv4;
#[cfg(test)]
mod sigv4_suite;
pub mod state;
pub mod sts;
#[cfg(test)]
mod tests;
pub mod time;
pub mod world;
pub mod xml;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use service::{start, AwsCloud};
pub use world::AwsWorld;

use history::History;
use iam::{AuthRules, Iam};
use state::{Net, WriteRules};
use world::{Consistency, Throttle};

/// Per-instance IMDS settings (`ModifyInstanceMetadataOptions`' knobs, plus the emulated
/// distance of the instance's clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataOptions {
    pub tokens_required: bool,
    pub hop_limit: u8,
    pub hops: u8,
}

/// Settings adjustable at run time (`PUT /admin/aws/settings`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub consistency: Consistency,
    pub auth: AuthRules,
    pub write: WriteRules,
    pub imds_forwarded_status: u16,
    pub role_credentials_lifetime_secs: u64,
    pub role_credentials_refresh_secs: u64,
    pub throttle: Option<Throttle>,
}

impl Settings {
    pub fn max_lag(&self) -> Duration {
        let c = &self.consistency;
        Duration::from_millis(
            c.instances_ms
                .max(c.network_interfaces_ms)
                .max(c.addresses_ms)
                .max(c.route_tables_ms)
                .max(c.metadata_ms),
        )
    }
}

/// A token bucket (EC2 throttles per account, region and API).
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Every piece of mutable AWS state, behind one lock in [`Aws`].
pub struct AwsState {
    pub region: String,
    pub account: String,
    pub net: History,
    pub iam: Iam,
    pub settings: Settings,
    pub imds_tokens: imds::Tokens,
    pub metadata: BTreeMap<String, MetadataOptions>,
    /// Shared-listener source address → instance id.
    pub sources: HashMap<IpAddr, String>,
    /// Calls per `service:Action` (all outcomes), for tests and cost reports.
    pub calls: BTreeMap<String, u64>,
    buckets: HashMap<String, Bucket>,
    /// Secrets issued or shown since the last drain, for the shared recorder
    /// (`secrets.rs`, the suite's log scan): `service.rs` hands them over after each request.
    pub secrets: Vec<(&'static str, String)>,
}

impl AwsState {
    pub fn new(w: &AwsWorld) -> AwsState {
        let net = Net::from_world(w);
        let metadata = w
            .instances
            .iter()
            .map(|i| {
                (
                    i.id.clone(),
                    MetadataOptions {
                        tokens_required: i.http_tokens == "required",
                        hop_limit: i.hop_limit,
                        hops: i.metadata_hops,
                    },
                )
            })
            .collect();
        let sources = w
            .instances
            .iter()
            .filter_map(|i| i.metadata_source.map(|s| (s, i.id.clone())))
            .collect();
        AwsState {
            region: w.region.clone(),
            account: w.account_id.clone(),
            net: History::new(net),
            iam: Iam::from_world(w),
            settings: Settings {
                consistency: w.consistency,
                auth: AuthRules {
                    region: w.region.clone(),
                    max_skew_secs: w.max_clock_skew_secs as i64,
                    skew_error: w.skew_error.clone(),
                },
                write: WriteRules {
                    reassign_conflict_code: w.reassign_conflict_code.clone(),
                    reassociation_default_allowed: w.eip_reassociation_default == "allow",
                },
                imds_forwarded_status: w.imds_forwarded_status,
                role_credentials_lifetime_secs: w.role_credentials_lifetime_secs,
                role_credentials_refresh_secs: w.role_credentials_refresh_secs,
                throttle: w.throttle,
            },
            imds_tokens: imds::Tokens::default(),
            metadata,
            sources,
            calls: BTreeMap::new(),
            buckets: HashMap::new(),
            secrets: w
                .users
                .iter()
                .flat_map(|u| &u.access_keys)
                .map(|k| ("AWS secret access key", k.secret.clone()))
                .collect(),
        }
    }

    /// Notes a secret for the recorder (bounded: without a recorder nothing drains it).
    pub fn secret(&mut self, kind: &'static str, value: &str) {
        if self.secrets.len() < 10_000 {
            self.secrets.push((kind, value.to_owned()));
        }
    }

    pub fn count(&mut self, key: &str) {
        *self.calls.entry(key.to_owned()).or_default() += 1;
    }

    /// One token from the action's bucket, if throttling is configured.
    pub fn take_token(&mut self, action: &str, mutating: bool, now: Instant) -> bool {
        let Some(t) = self.settings.throttle else {
            return true;
        };
        let (cap, rate) = if mutating {
            (t.mutate_capacity, t.mutate_refill_per_sec)
        } else {
            (t.describe_capacity, t.describe_refill_per_sec)
        };
        let b = self.buckets.entry(action.to_owned()).or_insert(Bucket {
            tokens: f64::from(cap),
            at: now,
        });
        let dt = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + dt * rate.max(0.0)).min(f64::from(cap));
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Applies a write to a copy of the current state; on success the old state is kept
    /// for lagging readers and the copy becomes current. All or nothing.
    pub fn write<T>(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut Net) -> Result<T, errors::AwsError>,
    ) -> Result<T, errors::AwsError> {
        let mut next = self.net.current.clone();
        let out = f(&mut next)?;
        let lag = self.settings.max_lag();
        self.net.before_write(now, lag);
        self.net.current = next;
        Ok(out)
    }

    /// The view a reader of this lag sees now.
    pub fn view(&self, now: Instant, lag_ms: u64) -> &Net {
        self.net.view(now, Duration::from_millis(lag_ms))
    }

    /// The instance an IMDS request is from: the dedicated listener's, else by source.
    pub fn instance_for(&self, dedicated: Option<&str>, peer: IpAddr) -> Option<String> {
        match dedicated {
            Some(i) => Some(i.to_owned()),
            None => self.sources.get(&peer).cloned(),
        }
    }

    pub fn instance_name(&self, id: &str) -> Option<String> {
        self.net.current.instances.get(id).map(|i| i.name.clone())
    }

    /// An instance by id or `Name` tag.
    pub fn find_instance(&self, id_or_name: &str) -> Option<String> {
        self.net
            .current
            .instances
            .values()
            .find(|i| i.id == id_or_name || i.name == id_or_name)
            .map(|i| i.id.clone())
    }
}

/// The AWS cloud: state behind one lock.
pub struct Aws {
    state: Mutex<AwsState>,
}

impl Aws {
    pub fn new(w: &AwsWorld) -> Result<Aws, String> {
        w.validate()?;
        Ok(Aws {
            state: Mutex::new(AwsState::new(w)),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, AwsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
