//! The live GCE state: instances with their NICs (aliases, access configs, fingerprints),
//! static addresses, operations, tokens, keys. Built from the world file; rendered as
//! Compute API JSON here (`instance_json`, `address_json`) so the metadata server, the API
//! and the admin view all read the same facts.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::SystemTime;

use super::net::Ipv4Net;
use super::oauth::{SaKey, Token};
use super::operations::Operation;
use super::world::GceWorld;
use crate::clock;

#[derive(Clone, Debug)]
pub struct Alias {
    pub range: Ipv4Net,
    pub range_name: Option<String>,
}

#[derive(Clone, Debug)]
pub struct AccessConfig {
    pub name: String,
    pub nat_ip: Ipv4Addr,
    pub network_tier: String,
}

#[derive(Clone, Debug)]
pub struct Nic {
    pub name: String,
    pub network: String,
    pub subnet: String,
    pub subnet_region: String,
    pub network_ip: Ipv4Addr,
    pub mac: String,
    pub aliases: Vec<Alias>,
    pub access_configs: Vec<AccessConfig>,
    pub fingerprint: String,
}

#[derive(Clone, Debug)]
pub struct Instance {
    pub name: String,
    pub zone: String,
    pub id: u64,
    pub created: SystemTime,
    pub machine_type: String,
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub service_account: Option<String>,
    pub scopes: Vec<String>,
    pub metadata_source: Option<IpAddr>,
    pub nics: Vec<Nic>,
    /// `fingerprint` of the instance itself; rolls on every change to it.
    pub fingerprint: String,
    /// `metadata.fingerprint`: a separate value (metadata never changes here).
    pub metadata_fingerprint: String,
}

#[derive(Clone, Debug)]
pub struct Address {
    pub name: String,
    pub id: u64,
    pub created: SystemTime,
    pub address: Ipv4Addr,
    pub address_type: String,
    pub network_tier: String,
    pub subnet: Option<String>,
    pub purpose: Option<String>,
    pub description: String,
}

/// Random 8-byte fingerprint, base64 like every GCE fingerprint (gce-api.md §2.2).
pub fn new_fingerprint() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(clock::random_bytes(8))
}

/// `labelFingerprint`: a digest of the labels, so it changes exactly when they do. With no
/// labels it is `42WmSpB8rSM=`, the value GCE shows for every unlabelled resource.
pub fn label_fingerprint(labels: &BTreeMap<String, String>) -> String {
    use base64::Engine;
    if labels.is_empty() {
        return "42WmSpB8rSM=".into();
    }
    let mut canon = String::new();
    for (k, v) in labels {
        canon.push_str(&format!("{}:{k}={}:{v};", k.len(), v.len()));
    }
    let d = ring::digest::digest(&ring::digest::SHA256, canon.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&d.as_ref()[..8])
}

/// Stable numeric id from a name (FNV-1a), 19 digits like GCE's.
pub fn id_from_name(kind: &str, name: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in kind.bytes().chain([b'/']).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    1_000_000_000_000_000_000 + h % 8_000_000_000_000_000_000
}

pub struct GceState {
    pub instances: Vec<Instance>,
    pub addresses: Vec<Address>,
    pub operations: Vec<Operation>,
    /// requestId → index into `operations` (gce-api.md §2.8).
    pub request_ids: HashMap<String, usize>,
    pub tokens: HashMap<String, Token>,
    pub keys: Vec<SaKey>,
    /// Metadata-server token per service account, reused until near expiry as GCE does.
    pub metadata_tokens: HashMap<String, String>,
    /// Bumped on every visible change; long-polls wait on it.
    pub version: u64,
}

impl GceState {
    pub fn new(w: &GceWorld) -> Result<GceState, String> {
        let now = SystemTime::now();
        let mut instances = Vec::new();
        for spec in &w.instances {
            let mut nics = Vec::new();
            for (n, ns) in spec.nics.iter().enumerate() {
                let net = w
                    .networks
                    .iter()
                    .find(|x| x.name == ns.network)
                    .ok_or("validated")?;
                let sub = match &ns.subnet {
                    Some(s) => net.subnets.iter().find(|x| &x.name == s),
                    None => net.subnets.first(),
                }
                .ok_or("validated")?;
                let o = ns.network_ip.octets();
                let mut aliases = Vec::new();
                for a in &ns.alias_ip_ranges {
                    let range: Ipv4Net = a
                        .ip_cidr_range
                        .parse()
                        .map_err(|e| format!("instance {} nic{n} alias: {e}", spec.name))?;
                    aliases.push(Alias {
                        range,
                        range_name: a.subnetwork_range_name.clone(),
                    });
                }
                let mut access_configs = Vec::new();
                for ac in &ns.access_configs {
                    let ip = match ac.nat_ip {
                        Some(ip) => ip,
                        None => ephemeral_ip(w, &instances, &nics, &access_configs)?,
                    };
                    access_configs.push(AccessConfig {
                        name: ac.name.clone(),
                        nat_ip: ip,
                        network_tier: ac.network_tier.clone(),
                    });
                }
                nics.push(Nic {
                    name: format!("nic{n}"),
                    network: ns.network.clone(),
                    subnet: sub.name.clone(),
                    subnet_region: sub.region.clone().unwrap_or_else(|| w.region.clone()),
                    network_ip: ns.network_ip,
                    mac: ns.mac.clone().unwrap_or_else(|| {
                        format!("42:01:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
                    }),
                    aliases,
                    access_configs,
                    fingerprint: new_fingerprint(),
                });
            }
            instances.push(Instance {
                name: spec.name.clone(),
                zone: spec.zone.clone(),
                id: spec
                    .id
                    .unwrap_or_else(|| id_from_name("instance", &spec.name)),
                created: now,
                machine_type: spec.machine_type.clone(),
                status: spec.status.clone(),
                labels: spec.labels.clone(),
                metadata: spec.metadata.clone(),
                tags: spec.tags.clone(),
                service_account: spec.service_account.clone(),
                scopes: spec.scopes.clone(),
                metadata_source: spec.metadata_source,
                nics,
                fingerprint: new_fingerprint(),
                metadata_fingerprint: new_fingerprint(),
            });
        }
        let addresses = w
            .addresses
            .iter()
            .map(|a| Address {
                name: a.name.clone(),
                id: id_from_name("address", &a.name),
                created: now,
                address: a.address,
                address_type: a.address_type.clone(),
                network_tier: a.network_tier.clone(),
                subnet: a.subnet.clone(),
                purpose: a.purpose.clone(),
                description: a.description.clone(),
            })
            .collect();
        let mut tokens = HashMap::new();
        for t in &w.access_tokens {
            let life = t.expires_in_secs.unwrap_or(w.token_lifetime_secs);
            tokens.insert(
                t.token.clone(),
                Token {
                    service_account: t.service_account.clone(),
                    scopes: t.scopes.clone(),
                    expires: now + std::time::Duration::from_secs(life),
                },
            );
        }
        Ok(GceState {
            instances,
            addresses,
            operations: Vec::new(),
            request_ids: HashMap::new(),
            tokens,
            keys: Vec::new(),
            metadata_tokens: HashMap::new(),
            version: 1,
        })
    }

    pub fn instance(&self, zone: &str, name: &str) -> Option<usize> {
        self.instances
            .iter()
            .position(|i| i.zone == zone && (i.name == name || i.id.to_string() == name))
    }

    pub fn instance_by_name(&self, name: &str) -> Option<usize> {
        self.instances.iter().position(|i| i.name == name)
    }

    /// Which instance (and NIC) holds an external IP in an access config.
    pub fn nat_user(&self, ip: Ipv4Addr) -> Option<(usize, usize)> {
        for (i, inst) in self.instances.iter().enumerate() {
            for (n, nic) in inst.nics.iter().enumerate() {
                if nic.access_configs.iter().any(|a| a.nat_ip == ip) {
                    return Some((i, n));
                }
            }
        }
        None
    }

    pub fn changed(&mut self) {
        self.version += 1;
    }
}

/// Next free ephemeral external IP from the pool (skipping static addresses and IPs in use).
pub fn ephemeral_ip(
    w: &GceWorld,
    instances: &[Instance],
    extra_nics: &[Nic],
    extra: &[AccessConfig],
) -> Result<Ipv4Addr, String> {
    let pool: Ipv4Net = w.ephemeral_pool.parse()?;
    let used = |ip: Ipv4Addr| {
        w.addresses.iter().any(|a| a.address == ip)
            || instances
                .iter()
                .flat_map(|i| i.nics.iter())
                .chain(extra_nics.iter())
                .flat_map(|n| n.access_configs.iter())
                .chain(extra.iter())
                .any(|a| a.nat_ip == ip)
    };
    (pool.first().saturating_add(1)..pool.last())
        .map(Ipv4Addr::from)
        .find(|ip| !used(*ip))
        .ok_or_else(|| "ephemeral_pool exhausted".to_string())
}

/// URL builders; every resource URL in responses starts with `self_link_base`.
pub struct Links<'a> {
    pub base: &'a str,
    pub project: &'a str,
}

impl Links<'_> {
    pub fn project(&self) -> String {
        format!("{}projects/{}", self.base, self.project)
    }
    pub fn zone(&self, zone: &str) -> String {
        format!("{}/zones/{zone}", self.project())
    }
    pub fn region(&self, region: &str) -> String {
        format!("{}/regions/{region}", self.project())
    }
    pub fn instance(&self, zone: &str, name: &str) -> String {
        format!("{}/instances/{name}", self.zone(zone))
    }
    pub fn network(&self, name: &str) -> String {
        format!("{}/global/networks/{name}", self.project())
    }
    pub fn subnet(&self, region: &str, name: &str) -> String {
        format!("{}/subnetworks/{name}", self.region(region))
    }
    pub fn address(&self, region: &str, name: &str) -> String {
        format!("{}/addresses/{name}", self.region(region))
    }
    pub fn operation(&self, zone: &str, name: &str) -> String {
        format!("{}/operations/{name}", self.zone(zone))
    }
}

pub fn nic_json(l: &Links, nic: &Nic) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), json!("compute#networkInterface"));
    m.insert("network".into(), json!(l.network(&nic.network)));
    m.insert(
        "subnetwork".into(),
        json!(l.subnet(&nic.subnet_region, &nic.subnet)),
    );
    m.insert("networkIP".into(), json!(nic.network_ip.to_string()));
    m.insert("name".into(), json!(nic.name));
    // Absent, not [], when empty (gce-api.md §2.2).
    if !nic.access_configs.is_empty() {
        let acs: Vec<Value> = nic
            .access_configs
            .iter()
            .map(|a| {
                json!({
                    "kind": "compute#accessConfig",
                    "type": "ONE_TO_ONE_NAT",
                    "name": a.name,
                    "natIP": a.nat_ip.to_string(),
                    "networkTier": a.network_tier,
                })
            })
            .collect();
        m.insert("accessConfigs".into(), Value::Array(acs));
    }
    if !nic.aliases.is_empty() {
        let al: Vec<Value> = nic
            .aliases
            .iter()
            .map(|a| {
                let mut o = Map::new();
                o.insert("ipCidrRange".into(), json!(a.range.to_string()));
                if let Some(r) = &a.range_name {
                    o.insert("subnetworkRangeName".into(), json!(r));
                }
                Value::Object(o)
            })
            .collect();
        m.insert("aliasIpRanges".into(), Value::Array(al));
    }
    m.insert("fingerprint".into(), json!(nic.fingerprint));
    m.insert("stackType".into(), json!("IPV4_ONLY"));
    Value::Object(m)
}

pub fn instance_json(l: &Links, region: &str, inst: &Instance) -> Value {
    let _ = region;
    let mut m = Map::new();
    m.insert("kind".into(), json!("compute#instance"));
    m.insert("id".into(), json!(inst.id.to_string()));
    m.insert(
        "creationTimestamp".into(),
        json!(clock::rfc3339(inst.created)),
    );
    m.insert("name".into(), json!(inst.name));
    let mut tags = Map::new();
    if !inst.tags.is_empty() {
        tags.insert("items".into(), json!(inst.tags));
    }
    tags.insert("fingerprint".into(), json!("42WmSpB8rSM="));
    m.insert("tags".into(), Value::Object(tags));
    m.insert(
        "machineType".into(),
        json!(format!(
            "{}/machineTypes/{}",
            l.zone(&inst.zone),
            inst.machine_type
        )),
    );
    m.insert("status".into(), json!(inst.status));
    m.insert("zone".into(), json!(l.zone(&inst.zone)));
    m.insert("canIpForward".into(), json!(false));
    m.insert(
        "networkInterfaces".into(),
        Value::Array(inst.nics.iter().map(|n| nic_json(l, n)).collect()),
    );
    let mut md = Map::new();
    md.insert("kind".into(), json!("compute#metadata"));
    md.insert("fingerprint".into(), json!(inst.metadata_fingerprint));
    if !inst.metadata.is_empty() {
        let items: Vec<Value> = inst
            .metadata
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        md.insert("items".into(), Value::Array(items));
    }
    m.insert("metadata".into(), Value::Object(md));
    if let Some(sa) = &inst.service_account {
        m.insert(
            "serviceAccounts".into(),
            json!([{ "email": sa, "scopes": inst.scopes }]),
        );
    }
    m.insert("selfLink".into(), json!(l.instance(&inst.zone, &inst.name)));
    m.insert(
        "scheduling".into(),
        json!({"onHostMaintenance": "MIGRATE", "automaticRestart": true, "preemptible": false, "provisioningModel": "STANDARD"}),
    );
    m.insert("cpuPlatform".into(), json!("Intel Broadwell"));
    if !inst.labels.is_empty() {
        m.insert("labels".into(), json!(inst.labels));
    }
    m.insert(
        "labelFingerprint".into(),
        json!(label_fingerprint(&inst.labels)),
    );
    m.insert("startRestricted".into(), json!(false));
    m.insert("deletionProtection".into(), json!(false));
    m.insert("fingerprint".into(), json!(inst.fingerprint));
    m.insert(
        "lastStartTimestamp".into(),
        json!(clock::rfc3339(inst.created)),
    );
    Value::Object(m)
}

/// Address JSON; `status`/`users` are derived from who uses the IP right now
/// (gce-api.md §2.6): an access config's natIP for EXTERNAL, a primary IP or a /32 alias
/// for INTERNAL.
pub fn address_json(l: &Links, region: &str, st: &GceState, a: &Address) -> Value {
    let mut users = Vec::new();
    for inst in &st.instances {
        let uses = inst.nics.iter().any(|n| {
            if a.address_type == "EXTERNAL" {
                n.access_configs.iter().any(|c| c.nat_ip == a.address)
            } else {
                n.network_ip == a.address
                    || n.aliases
                        .iter()
                        .any(|al| al.range == Ipv4Net::host(a.address))
            }
        });
        if uses {
            users.push(l.instance(&inst.zone, &inst.name));
        }
    }
    let mut m = Map::new();
    m.insert("kind".into(), json!("compute#address"));
    m.insert("id".into(), json!(a.id.to_string()));
    m.insert("creationTimestamp".into(), json!(clock::rfc3339(a.created)));
    m.insert("name".into(), json!(a.name));
    m.insert("description".into(), json!(a.description));
    m.insert("address".into(), json!(a.address.to_string()));
    m.insert(
        "status".into(),
        json!(if users.is_empty() {
            "RESERVED"
        } else {
            "IN_USE"
        }),
    );
    m.insert("region".into(), json!(l.region(region)));
    m.insert("selfLink".into(), json!(l.address(region, &a.name)));
    if !users.is_empty() {
        m.insert("users".into(), json!(users));
    }
    m.insert("networkTier".into(), json!(a.network_tier));
    m.insert("labelFingerprint".into(), json!("42WmSpB8rSM="));
    m.insert("addressType".into(), json!(a.address_type));
    if let Some(p) = &a.purpose {
        m.insert("purpose".into(), json!(p));
    } else if a.address_type == "INTERNAL" {
        m.insert("purpose".into(), json!("GCE_ENDPOINT"));
    }
    if let Some(s) = &a.subnet {
        m.insert("subnetwork".into(), json!(l.subnet(region, s)));
        m.insert("prefixLength".into(), json!(32));
    }
    Value::Object(m)
}
