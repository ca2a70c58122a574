//! The instance metadata service, v2 only (research/oci-api.md §1): `/opc/v2/instance/`,
//! `/opc/v2/vnics/` and the identity material under `/opc/v2/identity/`. Every v2 request
//! needs `Authorization: Bearer Oracle`; v1 and OpenStack paths answer 404 as on an
//! instance with IMDSv1 disabled; forwarded requests are refused (§1.2).

use serde_json::{json, Value};

use super::{OciState, Request, Response};

/// The instance's `/opc/v2/instance/` document (DOC-meta example shape, §1.3).
pub fn instance_document(st: &OciState, instance: &str) -> Option<Value> {
    let inst = st.instances.get(instance)?;
    let c = &st.config;
    // The same AD GetVnic reports for the instance's VNICs.
    let ad = st.net.availability_domain.clone();
    let ad_name = ad
        .split_once(':')
        .map(|(_, a)| a)
        .unwrap_or(&ad)
        .to_ascii_lowercase();
    Some(json!({
        "availabilityDomain": ad,
        "faultDomain": inst.config.fault_domain.clone().unwrap_or_else(|| "FAULT-DOMAIN-1".into()),
        "compartmentId": c.compartment,
        "displayName": inst.config.display_name,
        "hostname": inst.config.hostname.clone().unwrap_or_else(|| inst.config.display_name.clone()),
        "id": inst.config.id,
        "image": format!("ocid1.image.{}.{}.cloudvipsim", c.realm_key, st.region_key.to_ascii_lowercase()),
        "metadata": {},
        "region": super::world::imds_region(&c.region),
        "canonicalRegionName": c.region,
        "ociAdName": ad_name,
        "regionInfo": {
            "realmKey": c.realm_key,
            "realmDomainComponent": c.realm_domain,
            "regionKey": st.region_key,
            "regionIdentifier": c.region,
        },
        "shape": inst.config.shape.clone().unwrap_or_else(|| "VM.Standard.E4.Flex".into()),
        "state": "Running",
        "timeCreated": super::time::unix_secs(st.started) * 1000,
        "tenantId": c.tenancy,
        "agentConfig": {"monitoringDisabled": true, "managementDisabled": true, "allPluginsDisabled": true},
        "freeformTags": {},
        "definedTags": {},
    }))
}

/// `/opc/v2/vnics/`: the instance's VNICs, primary first (§1.4).
pub fn vnics_document(st: &OciState, instance: &str) -> Value {
    let mut vnics: Vec<_> = st
        .net
        .vnics
        .values()
        .filter(|v| v.instance == instance)
        .collect();
    vnics.sort_by_key(|v| !v.is_primary);
    Value::Array(
        vnics
            .iter()
            .filter_map(|v| {
                let sub = st.net.subnets.get(&v.subnet)?;
                let primary = st
                    .net
                    .private_ips
                    .iter()
                    .find(|p| p.vnic == v.id && p.is_primary)?;
                let mut doc = json!({
                    "vnicId": v.id,
                    "privateIp": primary.ip.to_string(),
                    "vlanTag": sub.vlan_tag,
                    "macAddr": v.mac,
                    "virtualRouterIp": sub.virtual_router_ip.to_string(),
                    "subnetCidrBlock": sub.cidr.to_string(),
                    "nicIndex": v.nic_index,
                });
                // Keys newer instances add on IPv6-enabled subnets (oci-api.md §1.4).
                if let (Some(p), Value::Object(m)) = (sub.ipv6_cidr, &mut doc) {
                    m.insert(
                        "ipv6Addresses".into(),
                        json!(st.net.ipv6_addresses_of(&v.id)),
                    );
                    m.insert("ipv6SubnetCidrBlock".into(), json!(p.to_string()));
                    m.insert("ipv6VirtualRouterIp".into(), json!(p.nth(1).to_string()));
                }
                Some(doc)
            })
            .collect(),
    )
}

fn text(status: u16, body: impl Into<String>) -> Response {
    Response {
        status,
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: body.into().into_bytes(),
    }
}

/// A JSON value as IMDS serves it: objects and arrays as JSON, leaves as plain text.
fn leaf_or_json(v: &Value) -> Response {
    match v {
        Value::String(s) => text(200, s.clone()),
        Value::Object(_) | Value::Array(_) => Response {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec_pretty(v).unwrap_or_default(),
        },
        other => text(200, other.to_string()),
    }
}

/// Walks `a/b/c` into a JSON document (`/opc/v2/instance/regionInfo/realmKey`).
fn walk<'a>(mut v: &'a Value, path: &str) -> Option<&'a Value> {
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        v = match v {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

pub fn handle(st: &mut OciState, req: &Request<'_>) -> Response {
    let path = req.target.split('?').next().unwrap_or("");
    for h in ["forwarded", "x-forwarded-for", "x-forwarded-host"] {
        if req.header(h).is_some() {
            // "Requests that are forwarded … are rejected" (§1.2); the status is
            // undocumented, 403 is our choice.
            return text(403, "Forbidden: forwarded requests are not accepted");
        }
    }
    let Some(rest) = path.strip_prefix("/opc/v2/") else {
        // v1 disabled: /opc/v1 and /openstack answer 404 (§1.2).
        return text(404, "Not Found");
    };
    if req.method != "GET" {
        return text(405, "Method Not Allowed");
    }
    if req.header("authorization").map(str::trim) != Some("Bearer Oracle") {
        // Undocumented status (§8); 401 as the research suggests.
        return text(
            401,
            "Unauthorized: Authorization: Bearer Oracle header is required",
        );
    }
    let Some(instance) = st.instance_for(req) else {
        return text(
            404,
            "Not Found: no instance is bound to this metadata source",
        );
    };
    let (top, sub) = rest.split_once('/').unwrap_or((rest, ""));
    match top {
        "instance" => {
            let Some(doc) = instance_document(st, &instance) else {
                return text(404, "Not Found");
            };
            match walk(&doc, sub) {
                Some(v) => leaf_or_json(v),
                None => text(404, "Not Found"),
            }
        }
        "vnics" => {
            let doc = vnics_document(st, &instance);
            match walk(&doc, sub) {
                Some(v) => leaf_or_json(v),
                None => text(404, "Not Found"),
            }
        }
        "identity" => identity(st, &instance, sub.trim_end_matches('/')),
        _ => text(404, "Not Found"),
    }
}

fn identity(st: &mut OciState, instance: &str, what: &str) -> Response {
    let leaf = match st.leaf_for(instance) {
        Ok(l) => l,
        Err(e) => return text(500, format!("Internal Server Error: {e}")),
    };
    let intermediate = match st.ca.as_ref() {
        Some(ca) => ca.intermediate.cert_pem.clone(),
        None => return text(500, "Internal Server Error: no identity CA"),
    };
    match what {
        "cert.pem" => text(200, leaf.cert_pem),
        "key.pem" => text(200, leaf.key_pem),
        "intermediate.pem" => text(200, intermediate),
        // A user-captured listing (§1.1, single third-party source).
        "" => leaf_or_json(&json!({
            "cert.pem": leaf.cert_pem,
            "key.pem": leaf.key_pem,
            "intermediate.pem": intermediate,
            "fingerprint": super::pki::fingerprint(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &leaf.der, true),
            "tenancyId": st.config.tenancy,
        })),
        _ => text(404, "Not Found"),
    }
}
