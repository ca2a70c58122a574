//! GCE Fast IP Move (`mode=fim`): the VIP is the forwarding-rule IP of an internal
//! passthrough Network Load Balancer whose regional backend service has `haPolicy`
//! `{fastIPMove: GARP_RA}` and zonal `GCE_VM_IP` NEGs as backends. No health check: "the
//! caller is responsible for tracking endpoint health and electing a leader" (Compute API
//! v1, `BackendServiceHAPolicy`), which is Pacemaker's job. The new leader sends a
//! gratuitous ARP (IPv4) or a Router Advertisement (IPv6), and Google "immediately but
//! temporarily" routes the forwarding rule's IP to it; "After triggering fast failover, you
//! must also appropriately set the haPolicy.leader", so claim then patches the backend
//! service (`regionBackendServices.patch`, a JSON merge patch with the current
//! `fingerprint`: "An up-to-date fingerprint must be provided in order to update the
//! BackendService, otherwise the request will fail with error 412 conditionNotMet").
//!
//! In the agent's order of start: `claim` only checks (read-only: the backend service has
//! the policy, one of its NEGs in our zone holds this instance); the address is added; the
//! `__fim` daemon (`local/fim.rs`, started by the agent) sends the first announcement at
//! once and repeats it every 10 s until 10 minutes after the leader update; then
//! `complete` sets the leader. So the traffic moves with the first packet, as soon as the
//! address is there to receive it, and the failover is not bound by the Compute
//! operation's latency. stop ends the daemon at once; the leader stays until the next
//! start elsewhere sets another (no instance would be better).

use serde_json::{json, Value};

use super::compute::{field, Api};
use super::config::is_name;
use super::Gce;
use crate::cloud::inspect::{Check, Inspect, Verdict};
use crate::cloud::registry::{Mode, Setup};
use crate::cloud::{settle, Claimed, Cloud, CloudError, Daemon, Holding, Nic, Op, Planned, Seen};
use crate::deadline::Deadline;
use crate::http::{encode, Method};
use crate::ocf::metadata::{Content, ParamDef, Scope, Where};
use crate::ocf::Exit;

pub const MODE: Mode = Mode {
    name: "fim",
    doc: "Fast IP Move: a gratuitous ARP and the haPolicy leader of an internal passthrough load balancer's backend service",
};

pub const BACKEND_SERVICE: ParamDef = ParamDef {
    order: 235,
    example: "ilb-bs",
    scope: Scope::Only(&[Where {
        cloud: "gce",
        label: "GCE",
        modes: &["fim"],
    }]),
    ..ParamDef::new(
        "backend_service",
        Content::String,
        None,
        "the backend service whose haPolicy leader follows the VIP",
        "Required with mode=fim. The name of the regional backend service, in \
         this instance's region, of the internal passthrough Network Load Balancer whose \
         forwarding rule has ip: its haPolicy must have fastIPMove GARP_RA and its backends \
         must be zonal GCE_VM_IP network endpoint groups, one of them holding this \
         instance. start sends a gratuitous ARP (an IPv6 ip: a Router Advertisement), sets \
         haPolicy.leader to this instance, and repeats the announcement every 10 s for 10 \
         minutes; stop ends the repetitions at once.",
    )
};

/// `backend_service`'s syntax: a GCE resource name.
pub fn parse(get: &crate::cloud::config::Get) -> Result<Option<String>, Exit> {
    match get(BACKEND_SERVICE.name) {
        None => Ok(None),
        Some(v) if is_name(v) => Ok(Some(v.to_owned())),
        Some(v) => Err(Exit::invalid(
            BACKEND_SERVICE.name,
            v,
            "a GCE name: lowercase letters, digits and '-', starting with a letter, at most 63",
        )),
    }
}

/// The backend service as claim needs it.
struct Service {
    fingerprint: String,
    /// Our NEG's URL (the leader's `backendGroup`).
    neg: String,
    /// The leader's instance name now, if any.
    leader: Option<(String, String)>,
}

/// The last segment of a resource URL (the API takes and returns both forms).
fn last(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// The GCE backend in mode=fim: the same instance, metadata and credentials as the alias
/// mode, another thing moved.
pub struct Fim {
    gce: Gce,
    bs: String,
}

impl Fim {
    pub fn new(s: &Setup) -> Result<Fim, Exit> {
        let gce = Gce::new(s)?;
        let Some(bs) = gce.opts.backend_service.clone() else {
            return Err(Exit::configured(
                "mode=fim needs backend_service= (the regional backend service with haPolicy)",
            ));
        };
        if gce.shared.public_ip.is_some() {
            return Err(Exit::configured(
                "public_ip= does not apply to mode=fim: the forwarding rule's IP is the VIP",
            ));
        }
        Ok(Fim { gce, bs })
    }
}

impl Cloud for Fim {
    fn name(&self) -> &'static str {
        "gce"
    }

    /// Depth 0: the metadata server does not know the leader and the API costs quota, so
    /// the kernel's word stands (`NotAsked`); deeper, GCE's leader.
    fn locate(&mut self, _nic: &Nic, depth: u32, deadline: &Deadline) -> Result<Seen, CloudError> {
        if depth < 10 {
            return Ok(Seen::NotAsked);
        }
        Ok(match self.gce.fim_leads(&self.bs, deadline)? {
            true => Seen::Here,
            false => Seen::Elsewhere(None),
        })
    }

    fn validate(&mut self, _nic: &Nic, deadline: &Deadline) -> Result<(), CloudError> {
        self.gce.fim_validate(&self.bs, deadline)
    }

    /// Checked by `validate` already; nothing moves before the address is here (the
    /// agent's daemon announces, then `complete` sets the leader).
    fn claim(&mut self, _nic: &Nic, _deadline: &Deadline) -> Result<Claimed, CloudError> {
        Ok(Claimed::new(None))
    }

    fn complete(&mut self, _nic: &Nic, _claimed: &Claimed, deadline: &Deadline) -> Result<(), CloudError> {
        self.gce.fim_lead(&self.bs, deadline)
    }

    /// The leader stays until another node's start sets itself: no instance would be
    /// better, and the agent has already stopped announcing.
    fn release(&mut self, _deadline: &Deadline) -> Result<(), CloudError> {
        Ok(())
    }

    fn plan(&mut self, op: Op, nic: &Nic, deadline: &Deadline) -> Result<Vec<Planned>, CloudError> {
        self.gce.fim_plan(op, nic, &self.bs, deadline)
    }

    fn daemon(&self) -> Option<Daemon> {
        Some(Daemon::Fim { ip: self.gce.ip })
    }
}

impl Inspect for Fim {
    fn holders(&mut self, _nic: Option<&Nic>, deadline: &Deadline) -> Result<Vec<Holding>, CloudError> {
        let id = self.gce.with_identity(deadline)?;
        let api = Api::new(&self.gce);
        let s = self.gce.fim_service(&api, &self.bs, id.region(), &id.zone, &id.name, deadline)?;
        let what = format!("haPolicy leader of {}", self.bs);
        Ok(vec![match &s.leader {
            Some((g, i)) => Holding::held(
                what,
                format!("{i} ({})", last(g)),
                Gce::is_us(&s.leader, &s.neg, &id.name),
            ),
            None => Holding::nobody(what, "no leader set"),
        }])
    }

    /// Metadata, credentials and the NIC as in the alias mode; permissions: the backend
    /// service can be read and fits; no subnet to check.
    fn probe(&mut self, check: Check, nic: Option<&Nic>, deadline: &Deadline) -> Verdict {
        match check {
            Check::Permissions => match self.gce.fim_validate(&self.bs, deadline) {
                Ok(()) => Verdict::pass(format!(
                    "backend service {} has fastIPMove GARP_RA and a NEG with this instance \
                     (setting the leader needs compute.regionBackendServices.update and \
                     compute.instances.use)",
                    self.bs
                )),
                Err(e) => Verdict::fail(
                    e.to_string(),
                    "grant compute.regionBackendServices.get/update, \
                     compute.networkEndpointGroups.list, compute.regionOperations.get and \
                     compute.instances.use; check backend_service",
                ),
            },
            Check::Subnet => Verdict::pass("mode=fim: the forwarding rule's IP needs no subnet check"),
            c => self.gce.probe(c, nic, deadline),
        }
    }
}

impl Gce {
    /// The backend service `bs` in our region, checked for Fast IP Move, with the NEG of
    /// our zone that holds this instance. Read-only; start runs it before anything changes.
    fn fim_service(
        &self,
        api: &Api,
        bs: &str,
        region: &str,
        zone: &str,
        me: &str,
        deadline: &Deadline,
    ) -> Result<Service, CloudError> {
        let p = api.project();
        let v = api
            .call(
                Method::Get,
                &format!("projects/{p}/regions/{region}/backendServices/{}", encode(bs)),
                None,
                deadline,
            )
            .map_err(|e| match e {
                CloudError::NotFound(m) => CloudError::Invalid(format!(
                    "backend_service={bs}: no backend service {bs} in region {region} ({m})"
                )),
                e => e,
            })?;
        let ha = v.get("haPolicy");
        if ha.and_then(|h| h.get("fastIPMove")).and_then(Value::as_str) != Some("GARP_RA") {
            return Err(CloudError::Invalid(format!(
                "backend_service={bs} has no haPolicy with fastIPMove GARP_RA (it can be set \
                 only when the backend service is created)"
            )));
        }
        let fingerprint = field(&v, "fingerprint", bs)?.to_owned();
        let leader = ha.and_then(|h| h.get("leader")).and_then(|l| {
            let group = l.get("backendGroup")?.as_str()?;
            let inst = l.pointer("/networkEndpoint/instance")?.as_str()?;
            Some((group.to_owned(), last(inst).to_owned()))
        });
        let groups: Vec<&str> = v
            .get("backends")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|b| b.get("group").and_then(Value::as_str))
            .filter(|g| g.contains(&format!("/zones/{zone}/networkEndpointGroups/")))
            .collect();
        for g in &groups {
            let eps = api.call(
                Method::Post,
                &format!(
                    "projects/{p}/zones/{zone}/networkEndpointGroups/{}/listNetworkEndpoints",
                    encode(last(g))
                ),
                Some(&json!({})),
                deadline,
            )?;
            let ours = eps
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| e.pointer("/networkEndpoint/instance").and_then(Value::as_str))
                .any(|i| last(i) == me);
            if ours {
                return Ok(Service {
                    fingerprint,
                    neg: (*g).to_owned(),
                    leader,
                });
            }
        }
        Err(CloudError::Invalid(format!(
            "backend_service={bs}: none of its network endpoint groups in {zone} ({}) holds \
             instance {me}",
            if groups.is_empty() {
                "it has none there".to_owned()
            } else {
                groups.iter().map(|g| last(g)).collect::<Vec<_>>().join(", ")
            }
        )))
    }

    /// Whether `leader` (group URL, instance) is this instance in `neg`.
    fn is_us(leader: &Option<(String, String)>, neg: &str, me: &str) -> bool {
        leader
            .as_ref()
            .is_some_and(|(g, i)| i == me && last(g) == last(neg))
    }

    /// Before the first change: the backend service fits and holds this instance.
    pub(super) fn fim_validate(&mut self, bs: &str, deadline: &Deadline) -> Result<(), CloudError> {
        let id = self.with_identity(deadline)?;
        let api = Api::new(self);
        self.fim_service(&api, bs, id.region(), &id.zone, &id.name, deadline)
            .map(|_| ())
    }

    /// `complete`: make this instance the leader (the announcements already moved the
    /// traffic), re-reading the fingerprint on a 412 and retrying inside the deadline.
    pub(super) fn fim_lead(&mut self, bs: &str, deadline: &Deadline) -> Result<(), CloudError> {
        let id = self.with_identity(deadline)?;
        let region = id.region().to_owned();
        let api = Api::new(self);
        settle("leader update", deadline, || {
            let s = self.fim_service(&api, bs, &region, &id.zone, &id.name, deadline)?;
            if Self::is_us(&s.leader, &s.neg, &id.name) {
                log::info!("{} already leads {bs}", id.name);
                return Ok(());
            }
            let p = api.project();
            let body = json!({
                "fingerprint": s.fingerprint,
                "haPolicy": {"leader": {
                    "backendGroup": s.neg,
                    "networkEndpoint": {"instance": id.name},
                }},
            });
            // A requestId: a retried PATCH (a lost answer) is applied once.
            let op = api.call(
                Method::Patch,
                &format!(
                    "projects/{p}/regions/{region}/backendServices/{}?requestId={}",
                    encode(bs),
                    super::compute::request_id()
                ),
                Some(&body),
                deadline,
            )?;
            self.wait_region(&api, &region, &op, deadline)?;
            log::info!(
                "{} is the haPolicy leader of {bs} (was {})",
                id.name,
                s.leader.as_ref().map_or("nobody", |(_, i)| i.as_str())
            );
            Ok(())
        })
    }

    /// A region operation until DONE (the leader update); an error inside it is an error.
    fn wait_region(
        &self,
        api: &Api,
        region: &str,
        op: &Value,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let mut op = op.clone();
        loop {
            let name = field(&op, "name", "operation")?.to_owned();
            match field(&op, "status", &name)? {
                "DONE" => {
                    return match op.pointer("/error/errors/0") {
                        None => Ok(()),
                        Some(e) => Err(CloudError::Transient(format!(
                            "operation {name}: {}: {}",
                            e["code"].as_str().unwrap_or("?"),
                            e["message"].as_str().unwrap_or("")
                        ))),
                    }
                }
                _ if deadline.remaining().is_zero() => {
                    return Err(CloudError::Transient(format!(
                        "operation {name} not DONE before the deadline"
                    )))
                }
                _ => {
                    op = api.call(
                        Method::Post,
                        &format!(
                            "projects/{}/regions/{region}/operations/{}/wait",
                            api.project(),
                            encode(&name)
                        ),
                        None,
                        deadline,
                    )?;
                }
            }
        }
    }

    /// Whether GCE's leader is this instance. A GARP re-route outlives a leader change by
    /// minutes, so another leader is evidence the traffic will leave.
    pub(super) fn fim_leads(&mut self, bs: &str, deadline: &Deadline) -> Result<bool, CloudError> {
        let id = self.with_identity(deadline)?;
        let api = Api::new(self);
        let s = self.fim_service(&api, bs, id.region(), &id.zone, &id.name, deadline)?;
        Ok(Self::is_us(&s.leader, &s.neg, &id.name))
    }

    /// The dry run: the packets (claim, then the agent's daemon) and the one write
    /// (`complete`) a start would make.
    pub(super) fn fim_plan(
        &mut self,
        op: Op,
        nic: &Nic,
        bs: &str,
        deadline: &Deadline,
    ) -> Result<Vec<Planned>, CloudError> {
        let id = self.with_identity(deadline)?;
        let api = Api::new(self);
        let s = self.fim_service(&api, bs, id.region(), &id.zone, &id.name, deadline)?;
        let kind = if self.ip.is_ipv4() {
            "gratuitous ARP"
        } else {
            "Router Advertisement"
        };
        let mut out = Vec::new();
        if op == Op::Release {
            out.push(Planned::note(format!(
                "stop announcing {}; the haPolicy leader stays until another node's start",
                self.ip
            )));
            return Ok(out);
        }
        if op == Op::Claim {
            out.push(Planned::note(format!(
                "send a {kind} for {} on {} once the address is there (GCE routes the \
                 forwarding rule's IP here at once), and repeat it every 10 s until 10 \
                 minutes after the leader update",
                self.ip, nic.name
            )));
            return Ok(out);
        }
        if !Self::is_us(&s.leader, &s.neg, &id.name) {
            out.push(Planned::call(
                format!(
                    "PATCH regions/{}/backendServices/{bs} haPolicy.leader={} in {}",
                    id.region(),
                    id.name,
                    last(&s.neg)
                ),
                format!(
                    "make {} the leader (now {})",
                    id.name,
                    s.leader.as_ref().map_or("nobody", |(_, i)| i.as_str())
                ),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaders_are_compared_by_neg_name_and_instance() {
        let neg = "https://www.googleapis.com/compute/v1/projects/p/zones/z/networkEndpointGroups/neg-a";
        let l = |g: &str, i: &str| Some((g.to_owned(), i.to_owned()));
        assert!(Gce::is_us(&l(neg, "node-a"), neg, "node-a"));
        assert!(Gce::is_us(
            &l("projects/p/zones/z/networkEndpointGroups/neg-a", "node-a"),
            neg,
            "node-a"
        ));
        assert!(!Gce::is_us(&l(neg, "node-b"), neg, "node-a"));
        assert!(!Gce::is_us(&None, neg, "node-a"));
    }

    #[test]
    fn backend_service_names_are_checked() {
        let get = |v: &'static str| move |n: &str| (n == "backend_service").then_some(v);
        assert_eq!(parse(&get("ilb-bs")).unwrap().as_deref(), Some("ilb-bs"));
        assert!(parse(&get("ILB")).is_err());
        assert_eq!(parse(&|_: &str| None).unwrap(), None);
    }
}
