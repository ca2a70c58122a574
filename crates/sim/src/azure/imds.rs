//! Azure's Instance Metadata Service (research/aws-azure.md §B1): `GET /metadata/instance`
//! with `api-version` and the `Metadata: true` header, JSON `{compute, network}` as
//! Azure/azure-rest-api-specs' imds.json and its examples describe it, any node below it
//! (`/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress`; a leaf
//! needs `format=text`), `/metadata/loadbalancer` and `/metadata/versions`.
//!
//! Order of checks, as the documented errors imply: `X-Forwarded-For` → 400, no
//! `Metadata: true` → 400 "Required metadata header not specified", not GET → 405, unknown
//! api-version → 400 with `newest-versions` (the body a real VM returned, quoted in
//! MicrosoftDocs/azure-compute-docs PR #289), path → 404.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::world::Vm;
use super::AzureCloud;
use crate::faults::{Fault, FaultKind};
use crate::http::{Request, Response};
use crate::server::{Call, Service};

/// The api-versions IMDS accepts (learn.microsoft.com "Azure Instance Metadata Service",
/// "Supported API versions"), oldest first.
pub const VERSIONS: &[&str] = &[
    "2017-03-01",
    "2017-04-02",
    "2017-08-01",
    "2017-10-01",
    "2017-12-01",
    "2018-02-01",
    "2018-04-02",
    "2018-10-01",
    "2019-02-01",
    "2019-03-11",
    "2019-04-30",
    "2019-06-01",
    "2019-06-04",
    "2019-08-01",
    "2019-08-15",
    "2019-11-01",
    "2020-06-01",
    "2020-07-15",
    "2020-09-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-08-01",
    "2021-10-01",
    "2021-11-01",
    "2021-11-15",
    "2021-12-13",
    "2022-02-01",
    "2022-03-01",
    "2022-05-01",
    "2022-07-01",
    "2022-08-01",
    "2022-09-01",
    "2022-11-01",
    "2023-07-01",
    "2023-11-15",
    "2024-03-15",
    "2024-07-17",
    "2025-04-07",
];

/// The loadbalancer endpoint came with 2020-10-01 (its first imds.json).
const LOADBALANCER_SINCE: &str = "2020-10-01";

/// IMDS's MAC form: upper-case hex, no separators (`000D3AF806EC`).
pub fn mac_imds(mac: &str) -> Option<String> {
    let hex: String = mac.chars().filter(|c| !matches!(c, ':' | '-')).collect();
    (hex.len() == 12 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_uppercase())
}

/// Compact JSON, as IMDS sends it.
fn json_body(status: u16, v: &Value) -> Response {
    Response::text(
        status,
        "application/json; charset=utf-8",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

fn error(status: u16, msg: &str) -> Response {
    json_body(status, &json!({ "error": msg }))
}

fn bad_version() -> Response {
    let newest: Vec<&str> = VERSIONS.iter().rev().take(3).copied().collect();
    json_body(
        400,
        &json!({
            "error": "Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds",
            "newest-versions": newest,
        }),
    )
}

/// `compute` and `network` of `vm`, the shape of imds.json's `Instance`.
pub fn instance_json(cloud: &AzureCloud, vm: &Vm) -> Value {
    let w = &cloud.world;
    let tags: Vec<Value> = vm
        .tags
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let tag_text: Vec<String> = vm.tags.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    let compute = json!({
        "azEnvironment": w.environment,
        "location": w.location,
        "name": vm.name,
        "osType": "Linux",
        "provider": "Microsoft.Compute",
        "resourceGroupName": w.resource_group,
        "resourceId": format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
            w.subscription_id, w.resource_group, vm.name
        ),
        "subscriptionId": w.subscription_id,
        "tags": tag_text.join(";"),
        "tagsList": tags,
        "vmId": super::vm_id(vm),
        "vmSize": vm.vm_size,
        "zone": vm.zone,
    });
    let interfaces: Vec<Value> = vm
        .nics
        .iter()
        .map(|n| {
            let v4: Vec<Value> = n
                .ipv4
                .iter()
                .map(|c| {
                    json!({
                        "privateIpAddress": c.private.to_string(),
                        "publicIpAddress": c.public.map(|p| p.to_string()).unwrap_or_default(),
                    })
                })
                .collect();
            let v6: Vec<Value> = n
                .ipv6
                .iter()
                .map(|a| json!({"privateIpAddress": a.to_string()}))
                .collect();
            json!({
                "ipv4": {
                    "ipAddress": v4,
                    "subnet": [{
                        "address": std::net::Ipv4Addr::from(n.subnet.first()).to_string(),
                        "prefix": n.subnet.len.to_string(),
                    }],
                },
                "ipv6": { "ipAddress": v6 },
                "macAddress": mac_imds(&n.mac).unwrap_or_default(),
            })
        })
        .collect();
    json!({ "compute": compute, "network": { "interface": interfaces } })
}

fn loadbalancer_json(vm: &Vm) -> Value {
    let rules: Vec<Value> = vm
        .load_balancer
        .iter()
        .map(|r| {
            json!({
                "frontendIpAddress": r.frontend_ip.to_string(),
                "protocol": r.protocol,
                "frontendPort": r.frontend_port,
                "backendPort": r.backend_port,
                "privateIpAddress": r.private_ip.to_string(),
            })
        })
        .collect();
    json!({ "loadbalancer": { "publicIpAddresses": [], "inboundRules": rules, "outboundRules": [] } })
}

pub struct ImdsService {
    pub cloud: Arc<AzureCloud>,
    /// The VM this listener serves; None: the shared listener (by source address).
    pub vm: Option<String>,
}

impl ImdsService {
    fn vm_for(&self, peer: SocketAddr) -> Option<&Vm> {
        let vms = &self.cloud.world.vms;
        match &self.vm {
            Some(name) => vms.iter().find(|v| &v.name == name),
            None => vms.iter().find(|v| v.imds_source == Some(peer.ip())),
        }
    }

    /// The node at `rest` (path segments below the root document), JSON or text.
    fn node(&self, root: &Value, rest: &[String], req: &Request) -> Response {
        let mut node = root;
        for seg in rest.iter().filter(|s| !s.is_empty()) {
            let next = match node {
                Value::Object(m) => m.get(seg),
                Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => return error(404, "Not found"),
            }
        }
        let leaf = !matches!(node, Value::Object(_) | Value::Array(_));
        match (req.query("format"), leaf) {
            (Some("text"), true) => {
                let text = match node {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Response::text(200, "text/plain; charset=utf-8", text)
            }
            // Documented for leaves only; stricter here: a directory in text is refused.
            (Some("text"), false) => error(400, "Bad request. format=text is for leaf nodes only"),
            (Some(f), _) if f != "json" => error(400, "Bad request. format must be json or text"),
            (_, true) => error(
                400,
                "Bad request. Query parameter format=text is required for leaf nodes",
            ),
            (_, false) => json_body(200, node),
        }
    }
}

impl Service for ImdsService {
    fn classify(&self, req: &Request) -> Call {
        let mut c = Call::new("azure", "imds");
        c.instance = self.vm_for(req.peer).map(|v| v.name.clone());
        let seg = req.segments();
        c.api = Some(
            match seg.get(1).map(String::as_str) {
                Some("versions") => "imds.versions",
                Some("loadbalancer") => "imds.loadbalancer",
                _ => "imds.instance",
            }
            .into(),
        );
        c
    }

    fn connection_call(&self, peer: SocketAddr) -> Option<Call> {
        let mut c = Call::new("azure", "imds");
        c.instance = self.vm_for(peer).map(|v| v.name.clone());
        Some(c)
    }

    fn handle(&self, req: &Request, _call: &Call, _effects: &[Fault]) -> Response {
        // The SSRF guards come first: "Any request that doesn't meet both of these
        // requirements is rejected" (a Metadata: true header and no X-Forwarded-For).
        if req.header("X-Forwarded-For").is_some() {
            return error(400, "Bad request. X-Forwarded-For header is not allowed");
        }
        if req.header("Metadata") != Some("true") {
            return error(400, "Bad request. Required metadata header not specified");
        }
        if req.method != "GET" {
            return error(405, "Method not allowed");
        }
        let seg = req.segments();
        let seg: Vec<String> = seg.into_iter().filter(|s| !s.is_empty()).collect();
        if seg.first().map(String::as_str) != Some("metadata") {
            return error(404, "Not found");
        }
        if seg.get(1).map(String::as_str) == Some("versions") && seg.len() == 2 {
            return json_body(200, &json!({ "apiVersions": VERSIONS }));
        }
        let Some(version) = req.query("api-version").filter(|v| VERSIONS.contains(v)) else {
            return bad_version();
        };
        let Some(vm) = self.vm_for(req.peer) else {
            return error(
                404,
                &format!("cloudvip-sim: no VM has imds_source {}", req.peer.ip()),
            );
        };
        match seg.get(1).map(String::as_str) {
            Some("instance") => self.node(&instance_json(&self.cloud, vm), &seg[2..], req),
            Some("loadbalancer") if version >= LOADBALANCER_SINCE => {
                self.node(&loadbalancer_json(vm), &seg[2..], req)
            }
            _ => error(404, "Not found"),
        }
    }

    fn fault_response(&self, _call: &Call, fault: &Fault) -> Response {
        match fault.spec.kind {
            // 5 requests per second per VM, then 429 (IMDS article, error table).
            FaultKind::RateLimit => error(429, "Too many requests"),
            _ => {
                let s = fault.spec.status.unwrap_or(500);
                error(s, crate::http::reason_phrase(s))
            }
        }
    }
}

/// The instance documents of every VM (the admin state).
pub fn all(cloud: &AzureCloud) -> Value {
    let mut m = Map::new();
    for vm in &cloud.world.vms {
        m.insert(vm.name.clone(), instance_json(cloud, vm));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_in_any_form_become_imds_form() {
        for m in ["00:0d:3a:f8:06:ec", "00-0D-3A-F8-06-EC", "000d3af806ec"] {
            assert_eq!(mac_imds(m).as_deref(), Some("000D3AF806EC"), "{m}");
        }
        for bad in ["00:0d:3a:f8:06", "00:0d:3a:f8:06:eg", ""] {
            assert_eq!(mac_imds(bad), None, "{bad}");
        }
    }

    #[test]
    fn versions_are_sorted_and_known() {
        let mut sorted = VERSIONS.to_vec();
        sorted.sort();
        assert_eq!(sorted, VERSIONS);
        assert!(VERSIONS.contains(&"2021-02-01") && VERSIONS.contains(&LOADBALANCER_SINCE));
    }
}
