//! Internal passthrough load balancing with a self-managed HA policy, as far as Fast IP
//! Move needs it: zonal network endpoint groups of type `GCE_VM_IP`, regional backend
//! services with `haPolicy` (`fastIPMove` `DISABLED` | `GARP_RA`, `leader` {`backendGroup`,
//! `networkEndpoint` {`instance`}}), and the forwarding rule of the frontend IP. The shapes
//! and rules are the Compute API v1 reference's (discovery document `compute.v1.json`,
//! schemas `BackendService`, `BackendServiceHAPolicy`, `BackendServiceHAPolicyLeader`,
//! `BackendServiceHAPolicyLeaderNetworkEndpoint`): the leader is set with
//! `regionBackendServices.patch` (or `update`); "haPolicy.fastIPMove can be set only at
//! backend service creation time"; "The leader's backendGroup must already be specified as
//! a backend of this backend service"; the instance "must already be attached to the NEG"
//! and needs `compute.instances.use`; "An up-to-date fingerprint must be provided in order
//! to update the BackendService, otherwise the request will fail with error 412
//! conditionNotMet". Where the traffic goes (the leader, or a GARP/RA sender) is the
//! emulated load balancer's business (`lb/`), which asks [`HaState::leader_of`].
//! Public references for the same text: the Compute Engine v1 client reference of
//! `BackendServiceHAPolicy` (docs.cloud.google.com/dotnet/docs/reference/Google.Cloud.Compute.V1/
//! latest/Google.Cloud.Compute.V1.BackendServiceHAPolicy; docs.rs google-cloud-compute-v1
//! `model::BackendServiceHAPolicy`), and `regionBackendServices.patch` ("This method supports
//! PATCH semantics and uses the JSON merge patch format and processing rules").

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::errors::{error, invalid, not_found};
use super::state::{id_from_name, new_fingerprint, Links};
use super::world::GceWorld;
use super::GceCloud;
use crate::http::Request;
use crate::http::Response;

fn default_network() -> String {
    "default".into()
}
fn tcp() -> String {
    "TCP".into()
}
fn l3() -> String {
    "L3_DEFAULT".into()
}

/// `[[gce.network_endpoint_groups]]`: a zonal NEG of type GCE_VM_IP.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NegSpec {
    pub name: String,
    pub zone: String,
    #[serde(default = "default_network")]
    pub network: String,
    /// Instance names; each endpoint's ipAddress is the instance's nic0 address.
    #[serde(default)]
    pub endpoints: Vec<String>,
}

/// `[[gce.backend_services]]`: a regional backend service of the INTERNAL scheme.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendServiceSpec {
    pub name: String,
    #[serde(default = "default_network")]
    pub network: String,
    #[serde(default = "tcp")]
    pub protocol: String,
    /// NEG names.
    pub backends: Vec<String>,
    /// `GARP_RA` or `DISABLED`; absent: no haPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_ip_move: Option<String>,
    /// The leader's instance name at start (its NEG is the one that holds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

/// `[[gce.forwarding_rules]]`: the internal frontend of a backend service.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardingRuleSpec {
    pub name: String,
    pub ip_address: IpAddr,
    pub backend_service: String,
    #[serde(default = "l3")]
    pub ip_protocol: String,
    #[serde(default = "default_network")]
    pub network: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HaRoute {
    BsGet(String, String),
    BsList(String),
    BsPatch(String, String),
    BsUpdate(String, String),
    NegGet(String, String),
    NegList(String),
    NegEndpoints(String, String),
    FrGet(String, String),
    FrList(String),
    OpGet(String, String),
}

impl HaRoute {
    pub fn api(&self) -> &'static str {
        match self {
            HaRoute::BsGet(..) => "compute.regionBackendServices.get",
            HaRoute::BsList(..) => "compute.regionBackendServices.list",
            HaRoute::BsPatch(..) => "compute.regionBackendServices.patch",
            HaRoute::BsUpdate(..) => "compute.regionBackendServices.update",
            HaRoute::NegGet(..) => "compute.networkEndpointGroups.get",
            HaRoute::NegList(..) => "compute.networkEndpointGroups.list",
            HaRoute::NegEndpoints(..) => "compute.networkEndpointGroups.listNetworkEndpoints",
            HaRoute::FrGet(..) => "compute.forwardingRules.get",
            HaRoute::FrList(..) => "compute.forwardingRules.list",
            HaRoute::OpGet(..) => "compute.regionOperations.get",
        }
    }

    /// The IAM permission (Compute's documented names; patch and update share one).
    pub fn permission(&self) -> &'static str {
        match self {
            HaRoute::BsGet(..) => "compute.regionBackendServices.get",
            HaRoute::BsList(..) => "compute.regionBackendServices.list",
            HaRoute::BsPatch(..) | HaRoute::BsUpdate(..) => "compute.regionBackendServices.update",
            HaRoute::NegGet(..) => "compute.networkEndpointGroups.get",
            HaRoute::NegList(..) | HaRoute::NegEndpoints(..) => {
                "compute.networkEndpointGroups.list"
            }
            HaRoute::FrGet(..) => "compute.forwardingRules.get",
            HaRoute::FrList(..) => "compute.forwardingRules.list",
            HaRoute::OpGet(..) => "compute.regionOperations.get",
        }
    }

    pub fn mutation(&self) -> bool {
        matches!(self, HaRoute::BsPatch(..) | HaRoute::BsUpdate(..))
    }
}

/// The routes below `/compute/v1/projects/{p}/` this file serves.
pub fn route(method: &str, rest: &[&str]) -> Option<HaRoute> {
    let o = |x: &&str| x.to_string();
    Some(match (method, rest) {
        ("GET", ["regions", r, "backendServices"]) => HaRoute::BsList(o(r)),
        ("GET", ["regions", r, "backendServices", b]) => HaRoute::BsGet(o(r), o(b)),
        ("PATCH", ["regions", r, "backendServices", b]) => HaRoute::BsPatch(o(r), o(b)),
        ("PUT", ["regions", r, "backendServices", b]) => HaRoute::BsUpdate(o(r), o(b)),
        ("GET", ["zones", z, "networkEndpointGroups"]) => HaRoute::NegList(o(z)),
        ("GET", ["zones", z, "networkEndpointGroups", n]) => HaRoute::NegGet(o(z), o(n)),
        ("POST", ["zones", z, "networkEndpointGroups", n, "listNetworkEndpoints"]) => {
            HaRoute::NegEndpoints(o(z), o(n))
        }
        ("GET", ["regions", r, "forwardingRules"]) => HaRoute::FrList(o(r)),
        ("GET", ["regions", r, "forwardingRules", f]) => HaRoute::FrGet(o(r), o(f)),
        ("GET", ["regions", r, "operations", op])
        | ("POST", ["regions", r, "operations", op, "wait"]) => HaRoute::OpGet(o(r), o(op)),
        _ => return None,
    })
}

struct Bs {
    spec: BackendServiceSpec,
    /// (NEG name, instance name).
    leader: Option<(String, String)>,
    fingerprint: String,
}

struct Ha {
    negs: Vec<NegSpec>,
    services: Vec<Bs>,
    rules: Vec<ForwardingRuleSpec>,
    ops: Vec<Value>,
}

pub struct HaState {
    inner: Mutex<Ha>,
}

impl HaState {
    pub fn new(w: &GceWorld) -> Result<HaState, String> {
        let inst = |n: &str| w.instances.iter().find(|i| i.name == n);
        for neg in &w.network_endpoint_groups {
            if !w.zones.contains(&neg.zone) {
                return Err(format!(
                    "NEG {}: zone {} is not in the world",
                    neg.name, neg.zone
                ));
            }
            for e in &neg.endpoints {
                match inst(e) {
                    None => return Err(format!("NEG {}: no instance {e}", neg.name)),
                    Some(i) if i.zone != neg.zone => {
                        return Err(format!("NEG {}: instance {e} is in another zone", neg.name))
                    }
                    Some(_) => {}
                }
            }
        }
        let mut services = Vec::new();
        for bs in &w.backend_services {
            for b in &bs.backends {
                if !w.network_endpoint_groups.iter().any(|n| &n.name == b) {
                    return Err(format!("backend service {}: no NEG {b}", bs.name));
                }
            }
            if let Some(f) = &bs.fast_ip_move {
                if f != "GARP_RA" && f != "DISABLED" {
                    return Err(format!("backend service {}: fast_ip_move {f}", bs.name));
                }
            }
            let leader = match &bs.leader {
                None => None,
                Some(l) => {
                    let neg = w
                        .network_endpoint_groups
                        .iter()
                        .find(|n| bs.backends.contains(&n.name) && n.endpoints.contains(l))
                        .ok_or_else(|| {
                            format!(
                                "backend service {}: leader {l} is in none of its NEGs",
                                bs.name
                            )
                        })?;
                    Some((neg.name.clone(), l.clone()))
                }
            };
            services.push(Bs {
                spec: bs.clone(),
                leader,
                fingerprint: new_fingerprint(),
            });
        }
        for r in &w.forwarding_rules {
            if !w
                .backend_services
                .iter()
                .any(|b| b.name == r.backend_service)
            {
                return Err(format!(
                    "forwarding rule {}: no backend service {}",
                    r.name, r.backend_service
                ));
            }
        }
        Ok(HaState {
            inner: Mutex::new(Ha {
                negs: w.network_endpoint_groups.clone(),
                services,
                rules: w.forwarding_rules.clone(),
                ops: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Ha> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The leader's instance name of backend service `bs`, if it has one.
    pub fn leader_of(&self, bs: &str) -> Option<String> {
        let g = self.lock();
        g.services
            .iter()
            .find(|b| b.spec.name == bs)
            .and_then(|b| b.leader.as_ref().map(|(_, i)| i.clone()))
    }

    /// A console change of the leader (`POST /admin/gce/backend-services/{bs}/leader`,
    /// `{"instance": name}` or `{"instance": null}`): the same rules as the API, no
    /// fingerprint, no IAM.
    pub fn set_leader(&self, bs: &str, instance: Option<&str>) -> Result<(), String> {
        let mut g = self.lock();
        let negs = g.negs.clone();
        let b = g
            .services
            .iter_mut()
            .find(|b| b.spec.name == bs)
            .ok_or_else(|| format!("no backend service {bs}"))?;
        b.leader = match instance {
            None => None,
            Some(i) => {
                let neg = negs
                    .iter()
                    .find(|n| {
                        b.spec.backends.contains(&n.name) && n.endpoints.iter().any(|e| e == i)
                    })
                    .ok_or_else(|| format!("{i} is in none of {bs}'s NEGs"))?;
                Some((neg.name.clone(), i.to_owned()))
            }
        };
        b.fingerprint = new_fingerprint();
        Ok(())
    }

    /// The instances attached to `bs`'s NEGs (who may claim its frontends by GARP/RA).
    pub fn endpoints_of(&self, bs: &str) -> Vec<String> {
        let g = self.lock();
        let Some(b) = g.services.iter().find(|b| b.spec.name == bs) else {
            return Vec::new();
        };
        g.negs
            .iter()
            .filter(|n| b.spec.backends.contains(&n.name))
            .flat_map(|n| n.endpoints.clone())
            .collect()
    }

    /// Whether `bs` has `haPolicy.fastIPMove = GARP_RA`.
    pub fn fast_ip_move(&self, bs: &str) -> bool {
        let g = self.lock();
        g.services
            .iter()
            .any(|b| b.spec.name == bs && b.spec.fast_ip_move.as_deref() == Some("GARP_RA"))
    }

    /// The forwarding-rule IPs that point at `bs`.
    pub fn frontends_of(&self, bs: &str) -> Vec<IpAddr> {
        let g = self.lock();
        g.rules
            .iter()
            .filter(|r| r.backend_service == bs)
            .map(|r| r.ip_address)
            .collect()
    }

    pub fn state_json(&self, l: &Links, region: &str) -> Value {
        let g = self.lock();
        json!({
            "backendServices": g.services.iter().map(|b| bs_json(l, region, &g, b)).collect::<Vec<_>>(),
            "forwardingRules": g.rules.iter().map(|r| fr_json(l, region, r)).collect::<Vec<_>>(),
        })
    }
}

fn neg_url(l: &Links, neg: &NegSpec) -> String {
    format!("{}/networkEndpointGroups/{}", l.zone(&neg.zone), neg.name)
}

fn bs_url(l: &Links, region: &str, name: &str) -> String {
    format!("{}/backendServices/{name}", l.region(region))
}

fn bs_json(l: &Links, region: &str, g: &Ha, b: &Bs) -> Value {
    let backends: Vec<Value> = b
        .spec
        .backends
        .iter()
        .filter_map(|n| g.negs.iter().find(|x| &x.name == n))
        .map(|n| json!({"group": neg_url(l, n), "balancingMode": "CONNECTION"}))
        .collect();
    let mut v = json!({
        "kind": "compute#backendService",
        "id": id_from_name("backendService", &b.spec.name).to_string(),
        "creationTimestamp": "2026-01-01T00:00:00.000+00:00",
        "name": b.spec.name,
        "selfLink": bs_url(l, region, &b.spec.name),
        "region": l.region(region),
        "loadBalancingScheme": "INTERNAL",
        "protocol": b.spec.protocol,
        "network": l.network(&b.spec.network),
        "backends": backends,
        "connectionDraining": {"drainingTimeoutSec": 0},
        "fingerprint": b.fingerprint,
    });
    if let Some(f) = &b.spec.fast_ip_move {
        let mut ha = json!({"fastIPMove": f});
        if let Some((neg, inst)) = &b.leader {
            if let Some(n) = g.negs.iter().find(|x| &x.name == neg) {
                ha["leader"] = json!({
                    "backendGroup": neg_url(l, n),
                    "networkEndpoint": {"instance": inst},
                });
            }
        }
        v["haPolicy"] = ha;
    }
    v
}

fn fr_json(l: &Links, region: &str, r: &ForwardingRuleSpec) -> Value {
    json!({
        "kind": "compute#forwardingRule",
        "id": id_from_name("forwardingRule", &r.name).to_string(),
        "creationTimestamp": "2026-01-01T00:00:00.000+00:00",
        "name": r.name,
        "region": l.region(region),
        "IPAddress": r.ip_address.to_string(),
        "IPProtocol": r.ip_protocol,
        "allPorts": true,
        "loadBalancingScheme": "INTERNAL",
        "backendService": bs_url(l, region, &r.backend_service),
        "network": l.network(&r.network),
        "ipVersion": if r.ip_address.is_ipv4() { "IPV4" } else { "IPV6" },
        "networkTier": "PREMIUM",
        "selfLink": format!("{}/forwardingRules/{}", l.region(region), r.name),
        "fingerprint": "42WmSpB8rSM=",
    })
}

fn list(kind: &str, id: String, items: Vec<Value>) -> Response {
    Response::json(
        200,
        &json!({"kind": kind, "id": id.clone(), "items": items, "selfLink": id}),
    )
}

/// The instance's name from a name or an instance URL (the API takes both).
fn instance_name(v: &str) -> &str {
    v.rsplit('/').next().unwrap_or(v)
}

/// Serve `r` for the authenticated caller `email` (scope and IAM already checked).
pub fn handle(cloud: &GceCloud, email: &str, req: &Request, r: HaRoute) -> Response {
    let l = cloud.links();
    let w = &cloud.world;
    let region_ok = |reg: &str| reg == w.region;
    let ha = &cloud.ha;
    match r {
        HaRoute::BsList(reg)
        | HaRoute::FrList(reg)
        | HaRoute::BsGet(reg, _)
        | HaRoute::FrGet(reg, _)
        | HaRoute::BsPatch(reg, _)
        | HaRoute::BsUpdate(reg, _)
        | HaRoute::OpGet(reg, _)
            if !region_ok(&reg) =>
        {
            not_found(&format!("projects/{}/regions/{reg}", w.project))
        }
        HaRoute::BsList(reg) => {
            let g = ha.lock();
            let items = g
                .services
                .iter()
                .map(|b| bs_json(&l, &reg, &g, b))
                .collect();
            list(
                "compute#backendServiceList",
                format!("{}/backendServices", l.region(&reg)),
                items,
            )
        }
        HaRoute::BsGet(reg, name) => {
            let g = ha.lock();
            match g.services.iter().find(|b| b.spec.name == name) {
                Some(b) => Response::json(200, &bs_json(&l, &reg, &g, b)),
                None => not_found(&format!(
                    "projects/{}/regions/{reg}/backendServices/{name}",
                    w.project
                )),
            }
        }
        HaRoute::BsPatch(reg, name) => set(cloud, email, req, &reg, &name, true),
        HaRoute::BsUpdate(reg, name) => set(cloud, email, req, &reg, &name, false),
        HaRoute::NegList(zone) => {
            let g = ha.lock();
            let items = g
                .negs
                .iter()
                .filter(|n| n.zone == zone)
                .map(|n| neg_json(cloud, n))
                .collect();
            list(
                "compute#networkEndpointGroupList",
                format!("{}/networkEndpointGroups", l.zone(&zone)),
                items,
            )
        }
        HaRoute::NegGet(zone, name) => {
            let g = ha.lock();
            match g.negs.iter().find(|n| n.zone == zone && n.name == name) {
                Some(n) => Response::json(200, &neg_json(cloud, n)),
                None => not_found(&format!(
                    "projects/{}/zones/{zone}/networkEndpointGroups/{name}",
                    w.project
                )),
            }
        }
        HaRoute::NegEndpoints(zone, name) => {
            let g = ha.lock();
            let Some(n) = g.negs.iter().find(|n| n.zone == zone && n.name == name) else {
                return not_found(&format!(
                    "projects/{}/zones/{zone}/networkEndpointGroups/{name}",
                    w.project
                ));
            };
            let items: Vec<Value> = n
                .endpoints
                .iter()
                .map(|i| json!({"networkEndpoint": {"instance": i, "ipAddress": nic0(cloud, i).map(|a| a.to_string())}}))
                .collect();
            Response::json(
                200,
                &json!({"kind": "compute#networkEndpointGroupsListNetworkEndpoints", "items": items}),
            )
        }
        HaRoute::FrGet(reg, name) => {
            let g = ha.lock();
            match g.rules.iter().find(|r| r.name == name) {
                Some(r) => Response::json(200, &fr_json(&l, &reg, r)),
                None => not_found(&format!(
                    "projects/{}/regions/{reg}/forwardingRules/{name}",
                    w.project
                )),
            }
        }
        HaRoute::FrList(reg) => {
            let g = ha.lock();
            let items = g.rules.iter().map(|r| fr_json(&l, &reg, r)).collect();
            list(
                "compute#forwardingRuleList",
                format!("{}/forwardingRules", l.region(&reg)),
                items,
            )
        }
        HaRoute::OpGet(reg, op) => {
            let g = ha.lock();
            match g.ops.iter().find(|o| o["name"] == op.as_str()) {
                Some(o) => Response::json(200, o),
                None => not_found(&format!(
                    "projects/{}/regions/{reg}/operations/{op}",
                    w.project
                )),
            }
        }
    }
}

fn nic0(cloud: &GceCloud, instance: &str) -> Option<Ipv4Addr> {
    cloud
        .world
        .instances
        .iter()
        .find(|i| i.name == instance)
        .and_then(|i| i.nics.first())
        .map(|n| n.network_ip)
}

fn neg_json(cloud: &GceCloud, n: &NegSpec) -> Value {
    let l = cloud.links();
    json!({
        "kind": "compute#networkEndpointGroup",
        "id": id_from_name("networkEndpointGroup", &n.name).to_string(),
        "creationTimestamp": "2026-01-01T00:00:00.000+00:00",
        "name": n.name,
        "selfLink": neg_url(&l, n),
        "zone": l.zone(&n.zone),
        "networkEndpointType": "GCE_VM_IP",
        "network": l.network(&n.network),
        "size": n.endpoints.len(),
    })
}

/// `patch` (JSON merge patch) and `update` (full replacement): only `haPolicy.leader` may
/// change here; every other field must equal the current value.
fn set(
    cloud: &GceCloud,
    email: &str,
    req: &Request,
    reg: &str,
    name: &str,
    merge: bool,
) -> Response {
    let l = cloud.links();
    let body = match req.json() {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return invalid(
                "Invalid JSON payload received. The request body must be a BackendService.",
            )
        }
        Err(e) => return error(400, "parseError", &e),
    };
    let mut g = cloud.ha.lock();
    let Some(bi) = g.services.iter().position(|b| b.spec.name == name) else {
        return not_found(&format!(
            "projects/{}/regions/{reg}/backendServices/{name}",
            cloud.world.project
        ));
    };
    let current = bs_json(&l, reg, &g, &g.services[bi]);
    // "An up-to-date fingerprint must be provided ... otherwise ... 412 conditionNotMet".
    if body.get("fingerprint").and_then(Value::as_str) != Some(g.services[bi].fingerprint.as_str())
    {
        return error(
            412,
            "conditionNotMet",
            "Supplied fingerprint does not match current fingerprint.",
        );
    }
    let readonly = [
        "kind",
        "id",
        "creationTimestamp",
        "selfLink",
        "region",
        "fingerprint",
        "haPolicy",
    ];
    for (k, v) in &body {
        if !readonly.contains(&k.as_str()) && current.get(k) != Some(v) {
            return invalid(&format!("Invalid value for field 'resource.{k}': cloudvip-sim changes only haPolicy.leader."));
        }
    }
    let cur_ha = current.get("haPolicy").cloned().unwrap_or(Value::Null);
    let new_ha = match (merge, body.get("haPolicy")) {
        (true, None) => cur_ha.clone(),
        (true, Some(p)) => merge_patch(cur_ha.clone(), p),
        (false, p) => p.cloned().unwrap_or(Value::Null),
    };
    if cur_ha.is_null() && !new_ha.is_null() || !cur_ha.is_null() && new_ha.is_null() {
        return invalid("Invalid value for field 'resource.haPolicy': haPolicy can be added only at backend service creation time. Once set up, it cannot be deleted.");
    }
    if new_ha.get("fastIPMove") != cur_ha.get("fastIPMove") {
        return invalid("Invalid value for field 'resource.haPolicy.fastIPMove': haPolicy.fastIPMove can be set only at backend service creation time. Once set, it cannot be updated.");
    }
    let leader = match new_ha.get("leader").filter(|v| !v.is_null()) {
        None => None,
        Some(ld) => {
            let group = ld.get("backendGroup").and_then(Value::as_str).unwrap_or("");
            let Some(inst) = ld
                .pointer("/networkEndpoint/instance")
                .and_then(Value::as_str)
            else {
                return invalid("Invalid value for field 'resource.haPolicy.leader.networkEndpoint.instance': ''. The leader needs a network endpoint.");
            };
            let inst = instance_name(inst).to_owned();
            let spec = &g.services[bi].spec;
            let Some(neg) = g.negs.iter().find(|n| {
                spec.backends.contains(&n.name)
                    && group.ends_with(&format!(
                        "/zones/{}/networkEndpointGroups/{}",
                        n.zone, n.name
                    ))
            }) else {
                return invalid(&format!("Invalid value for field 'resource.haPolicy.leader.backendGroup': '{group}'. The leader's backendGroup must already be specified as a backend of this backend service."));
            };
            if !neg.endpoints.contains(&inst) {
                return invalid(&format!("Invalid value for field 'resource.haPolicy.leader.networkEndpoint.instance': '{inst}'. The instance must already be attached to the NEG specified in the haPolicy.leader.backendGroup."));
            }
            // "Authorization requires the following IAM permission on the specified
            // resource instance: compute.instances.use".
            if !cloud.permitted(email, "compute.instances.use") {
                return error(403, "forbidden", &format!("Required 'compute.instances.use' permission for 'projects/{}/zones/{}/instances/{inst}'", cloud.world.project, neg.zone));
            }
            Some((neg.name.clone(), inst))
        }
    };
    let b = &mut g.services[bi];
    b.leader = leader;
    b.fingerprint = new_fingerprint();
    let op_name = format!(
        "operation-{}-{}",
        crate::clock::unix_millis(std::time::SystemTime::now()),
        crate::clock::random_hex(8)
    );
    let now = crate::clock::rfc3339(std::time::SystemTime::now());
    let op = json!({
        "kind": "compute#operation",
        "id": crate::clock::random_u64().to_string(),
        "name": op_name,
        "operationType": if merge { "patch" } else { "update" },
        "targetLink": bs_url(&l, reg, name),
        "targetId": id_from_name("backendService", name).to_string(),
        "status": "DONE",
        "user": email,
        "progress": 100,
        "insertTime": now,
        "startTime": now,
        "endTime": now,
        "selfLink": format!("{}/operations/{op_name}", l.region(reg)),
        "region": l.region(reg),
    });
    g.ops.push(op.clone());
    if g.ops.len() > 1000 {
        g.ops.remove(0);
    }
    Response::json(200, &op)
}

/// RFC 7396 JSON merge patch.
fn merge_patch(mut target: Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    if !target.is_object() {
        target = Value::Object(Map::new());
    }
    if let Value::Object(t) = &mut target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                let cur = t.remove(k).unwrap_or(Value::Null);
                t.insert(k.clone(), merge_patch(cur, v));
            }
        }
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let t = json!({"fastIPMove": "GARP_RA", "leader": {"backendGroup": "x", "networkEndpoint": {"instance": "a"}}});
        let p = json!({"leader": {"networkEndpoint": {"instance": "b"}}});
        assert_eq!(
            merge_patch(t.clone(), &p),
            json!({"fastIPMove": "GARP_RA", "leader": {"backendGroup": "x", "networkEndpoint": {"instance": "b"}}})
        );
        assert_eq!(
            merge_patch(t, &json!({"leader": null})),
            json!({"fastIPMove": "GARP_RA"})
        );
    }

    #[test]
    fn routes() {
        assert_eq!(
            route("PATCH", &["regions", "r", "backendServices", "bs"]),
            Some(HaRoute::BsPatch("r".into(), "bs".into()))
        );
        assert_eq!(
            route("DELETE", &["regions", "r", "backendServices", "bs"]),
            None
        );
        assert_eq!(
            instance_name(
                "https://www.googleapis.com/compute/v1/projects/p/zones/z/instances/node-a"
            ),
            "node-a"
        );
    }
}
