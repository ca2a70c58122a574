//! Zonal operations: every mutation returns one, PENDING → RUNNING → DONE after the world's
//! durations; the change itself is applied (or fails, e.g. IP_IN_USE_BY_ANOTHER_RESOURCE)
//! only when the operation executes, as on real GCE (gce-api.md §2.7, §4).

use serde_json::{json, Map, Value};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

use super::net::Ipv4Net;
use super::state::{ephemeral_ip, new_fingerprint, AccessConfig, Alias, GceState, Links};
use super::world::GceWorld;
use crate::clock;
use crate::faults::Faults;

#[derive(Clone, Debug)]
pub enum Action {
    SetAliases {
        nic: usize,
        aliases: Vec<Alias>,
        /// The CIDR strings as the client sent them, echoed in IP_IN_USE messages.
        requested: Vec<String>,
    },
    AddAccessConfig {
        nic: usize,
        name: String,
        nat_ip: Option<Ipv4Addr>,
        network_tier: String,
    },
    DeleteAccessConfig {
        nic: usize,
        name: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpStatus {
    Pending,
    Running,
    Done,
}

impl OpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OpStatus::Pending => "PENDING",
            OpStatus::Running => "RUNNING",
            OpStatus::Done => "DONE",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Operation {
    pub id: u64,
    pub name: String,
    pub zone: String,
    pub op_type: &'static str,
    pub target: String,
    pub target_id: u64,
    pub user: String,
    pub client_operation_id: Option<String>,
    pub inserted: SystemTime,
    pub inserted_at: Instant,
    pub started: Option<SystemTime>,
    pub started_at: Option<Instant>,
    pub ended: Option<SystemTime>,
    pub status: OpStatus,
    /// (code, message) of a failed operation.
    pub error: Option<(String, String)>,
    pub action: Action,
    /// Held RUNNING while this fault rule exists.
    pub stuck_fault: Option<u64>,
    /// Forced failure from an `operation_error` fault.
    pub fail: Option<(String, String)>,
}

impl Operation {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        zone: &str,
        op_type: &'static str,
        target: &str,
        target_id: u64,
        user: &str,
        request_id: Option<String>,
        action: Action,
    ) -> Operation {
        let now = SystemTime::now();
        // Shape of real names: operation-<ms>-<13 hex>-<8 hex>-<8 hex> (gce-api.md §2.4).
        let h = clock::random_hex(15);
        let name = format!(
            "operation-{}-{}-{}-{}",
            clock::unix_millis(now),
            &h[..13],
            &h[13..21],
            &h[21..29]
        );
        Operation {
            id: clock::random_u64() % 9_000_000_000_000_000_000 + 1_000_000_000_000_000_000,
            name,
            zone: zone.to_string(),
            op_type,
            target: target.to_string(),
            target_id,
            user: user.to_string(),
            client_operation_id: request_id,
            inserted: now,
            inserted_at: Instant::now(),
            started: None,
            started_at: None,
            ended: None,
            status: OpStatus::Pending,
            error: None,
            action,
            stuck_fault: None,
            fail: None,
        }
    }

    pub fn json(&self, l: &Links) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), json!("compute#operation"));
        m.insert("id".into(), json!(self.id.to_string()));
        m.insert("name".into(), json!(self.name));
        m.insert("zone".into(), json!(l.zone(&self.zone)));
        m.insert("operationType".into(), json!(self.op_type));
        m.insert(
            "targetLink".into(),
            json!(l.instance(&self.zone, &self.target)),
        );
        m.insert("targetId".into(), json!(self.target_id.to_string()));
        m.insert("status".into(), json!(self.status.as_str()));
        m.insert("user".into(), json!(self.user));
        let progress = match self.status {
            OpStatus::Pending => 0,
            OpStatus::Running => 0,
            OpStatus::Done => 100,
        };
        m.insert("progress".into(), json!(progress));
        m.insert("insertTime".into(), json!(clock::rfc3339(self.inserted)));
        if let Some(t) = self.started {
            m.insert("startTime".into(), json!(clock::rfc3339(t)));
        }
        if let Some(t) = self.ended {
            m.insert("endTime".into(), json!(clock::rfc3339(t)));
        }
        if let Some((code, msg)) = &self.error {
            m.insert(
                "error".into(),
                json!({ "errors": [ { "code": code, "message": msg } ] }),
            );
            // Unverified for alias errors (gce-api.md §2.7); modelled on other failed ops.
            m.insert("httpErrorStatusCode".into(), json!(400));
            m.insert("httpErrorMessage".into(), json!("BAD REQUEST"));
        }
        if let Some(c) = &self.client_operation_id {
            m.insert("clientOperationId".into(), json!(c));
        }
        m.insert(
            "selfLink".into(),
            json!(l.operation(&self.zone, &self.name)),
        );
        Value::Object(m)
    }
}

/// Moves every operation along according to the clock. Returns true if anything changed.
/// Operations on one instance execute one after the other, in insertion order.
pub fn advance(st: &mut GceState, w: &GceWorld, faults: &Faults) -> bool {
    let now = Instant::now();
    let pending = Duration::from_millis(w.operations.pending_ms);
    let running = Duration::from_millis(w.operations.running_ms);
    let mut changed = false;
    for i in 0..st.operations.len() {
        let busy_before = st.operations[..i].iter().any(|o| {
            o.status != OpStatus::Done
                && o.target == st.operations[i].target
                && o.zone == st.operations[i].zone
        });
        let op = &mut st.operations[i];
        if op.status == OpStatus::Pending && !busy_before && now >= op.inserted_at + pending {
            op.status = OpStatus::Running;
            op.started = Some(SystemTime::now());
            op.started_at = Some(now);
            changed = true;
        }
        let op = &st.operations[i];
        if op.status != OpStatus::Running {
            continue;
        }
        if op.started_at.is_some_and(|s| now < s + running) {
            continue;
        }
        if op.stuck_fault.is_some_and(|id| faults.exists(id)) {
            continue;
        }
        let result = match op.fail.clone() {
            Some(f) => Err(f),
            None => execute(st, w, i),
        };
        let op = &mut st.operations[i];
        op.status = OpStatus::Done;
        op.ended = Some(SystemTime::now());
        op.error = result.err();
        changed = true;
    }
    if changed {
        st.changed();
    }
    changed
}

fn in_use(cidr: &str) -> (String, String) {
    (
        "IP_IN_USE_BY_ANOTHER_RESOURCE".into(),
        format!("IP '{cidr}' is already being used by another resource."),
    )
}

/// Applies an operation's change to the state; Err is the operation error (code, message).
fn execute(st: &mut GceState, w: &GceWorld, i: usize) -> Result<(), (String, String)> {
    let op = st.operations[i].clone();
    let Some(ii) = st.instance(&op.zone, &op.target) else {
        return Err((
            "RESOURCE_NOT_FOUND".into(),
            format!(
                "The resource 'projects/{}/zones/{}/instances/{}' was not found",
                w.project, op.zone, op.target
            ),
        ));
    };
    match op.action {
        Action::SetAliases {
            nic,
            aliases,
            requested,
        } => {
            let nic_ref = &st.instances[ii].nics[nic];
            let network = nic_ref.network.clone();
            // Only ranges this NIC does not already hold are checked: keeping an alias is not
            // a conflict with itself.
            for (k, a) in aliases.iter().enumerate() {
                if nic_ref.aliases.iter().any(|x| x.range == a.range) {
                    continue;
                }
                for (oi, other) in st.instances.iter().enumerate() {
                    for (on, onic) in other.nics.iter().enumerate() {
                        if onic.network != network {
                            continue;
                        }
                        let same_nic = oi == ii && on == nic;
                        let primary_hit = a.range.contains(onic.network_ip);
                        let alias_hit =
                            !same_nic && onic.aliases.iter().any(|x| x.range.overlaps(&a.range));
                        if primary_hit || alias_hit {
                            let shown = requested.get(k).cloned().unwrap_or(a.range.to_string());
                            return Err(in_use(&shown));
                        }
                    }
                }
            }
            let n = &mut st.instances[ii].nics[nic];
            n.aliases = aliases;
            n.fingerprint = new_fingerprint();
            // The instance's own fingerprint "changes after every request to modify or
            // update the instance" (Compute API reference, Instance.fingerprint).
            st.instances[ii].fingerprint = new_fingerprint();
        }
        Action::AddAccessConfig {
            nic,
            name,
            nat_ip,
            network_tier,
        } => {
            if !st.instances[ii].nics[nic].access_configs.is_empty() {
                return Err((
                    "BAD_REQUEST".into(),
                    "At most one access config currently supported.".into(),
                ));
            }
            let ip = match nat_ip {
                Some(ip) => {
                    if st.nat_user(ip).is_some() {
                        // Unverified form (gce-api.md §2.5); by analogy with internal IPs.
                        return Err(in_use(&ip.to_string()));
                    }
                    ip
                }
                None => ephemeral_ip(w, &st.instances, &[], &[])
                    .map_err(|e| ("IP_SPACE_EXHAUSTED".to_string(), e))?,
            };
            let n = &mut st.instances[ii].nics[nic];
            n.access_configs.push(AccessConfig {
                name,
                nat_ip: ip,
                network_tier,
            });
            n.fingerprint = new_fingerprint();
            st.instances[ii].fingerprint = new_fingerprint();
        }
        Action::DeleteAccessConfig { nic, name } => {
            let n = &mut st.instances[ii].nics[nic];
            let before = n.access_configs.len();
            // An unknown name is a silent no-op (gce-api.md §2.2, kubeip #59).
            n.access_configs.retain(|a| a.name != name);
            if n.access_configs.len() != before {
                n.fingerprint = new_fingerprint();
                st.instances[ii].fingerprint = new_fingerprint();
            }
        }
    }
    Ok(())
}

/// Is `range` (an alias) inside the NIC's subnet primary range or the named secondary range?
pub fn alias_in_subnet(w: &GceWorld, network: &str, subnet: &str, a: &Alias) -> Result<(), String> {
    let Some(sub) = w.subnet(network, subnet) else {
        return Err(format!("subnetwork {subnet} not found"));
    };
    let outer: Ipv4Net = match &a.range_name {
        None => sub.ip_cidr_range,
        Some(r) => match sub.secondary_ranges.iter().find(|s| &s.range_name == r) {
            Some(s) => s.ip_cidr_range,
            None => {
                return Err(format!(
                    "Secondary range '{r}' does not exist in subnetwork '{subnet}'."
                ))
            }
        },
    };
    if outer.contains_net(&a.range) {
        Ok(())
    } else {
        Err(format!(
            "IP range '{}' is not within the range of subnetwork '{subnet}'{}.",
            a.range,
            a.range_name
                .as_ref()
                .map(|r| format!(" secondary range '{r}'"))
                .unwrap_or_default()
        ))
    }
}
