//! The Networking (Core Services) API 20160918 state machine: VNICs, private IPs and public
//! IPs as plain data with the operations OCI offers on them, free of HTTP and auth (those
//! are in `mod.rs`). Semantics from research/oci-api.md §2: primary private IPs cannot be
//! moved or deleted, moves stay inside a subnet, a reserved public IP follows its private
//! IP, public IP (re)assignment is asynchronous, every object has an ETag.

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

use super::error::OciError;
use super::time::{compact, rfc3339_millis};
use super::world::{Cidr, Lifetime, OciWorldConfig};

/// OCI's per-VNIC limit: 1 primary + 63 secondary private IPv4 addresses (§2.6).
const MAX_PRIVATE_IPS_PER_VNIC: usize = 64;
/// Retry tokens remembered (OCI keeps them 24 h; we bound the count instead).
const MAX_RETRY_TOKENS: usize = 4096;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone)]
pub struct Subnet {
    pub id: String,
    pub vcn: String,
    pub cidr: Cidr,
    pub display_name: String,
    pub virtual_router_ip: Ipv4Addr,
    pub vlan_tag: u32,
    /// `ipv6CidrBlock`; None: an IPv4-only subnet.
    pub ipv6_cidr: Option<super::ipv6::Ipv6Prefix>,
}

#[derive(Debug, Clone)]
pub struct Vnic {
    pub id: String,
    pub instance: String,
    pub subnet: String,
    pub mac: String,
    pub hostname_label: Option<String>,
    pub display_name: String,
    pub is_primary: bool,
    pub nic_index: u32,
    pub skip_source_dest_check: bool,
    pub etag: String,
    pub time_created: SystemTime,
}

#[derive(Debug, Clone)]
pub struct PrivateIp {
    pub id: String,
    pub vnic: String,
    pub subnet: String,
    pub ip: Ipv4Addr,
    pub is_primary: bool,
    pub display_name: String,
    pub hostname_label: Option<String>,
    pub defined_tags: Value,
    pub freeform_tags: Value,
    pub etag: String,
    pub time_created: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicIpState {
    Available,
    Assigning,
    Assigned,
    Unassigning,
}

impl PublicIpState {
    pub fn as_str(self) -> &'static str {
        match self {
            PublicIpState::Available => "AVAILABLE",
            PublicIpState::Assigning => "ASSIGNING",
            PublicIpState::Assigned => "ASSIGNED",
            PublicIpState::Unassigning => "UNASSIGNING",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PublicIp {
    pub id: String,
    pub ip: Ipv4Addr,
    pub lifetime: Lifetime,
    pub assigned: Option<String>,
    pub state: PublicIpState,
    /// When an ASSIGNING/UNASSIGNING transition completes.
    pub ready_at: Option<Instant>,
    /// The pending assignment ends in AVAILABLE ("could fail silently", §2.6).
    pub fail_pending: bool,
    pub display_name: String,
    pub defined_tags: Value,
    pub freeform_tags: Value,
    pub etag: String,
    pub time_created: SystemTime,
}

/// The selection of a list call (`Network::list_scope`).
pub(super) struct ListScope<'q> {
    pub ip: Option<&'q str>,
    pub subnet: Option<&'q str>,
    pub vnic: Option<&'q str>,
}

impl ListScope<'_> {
    /// What a page token is bound to: the collection and the selection.
    pub fn filter(&self, collection: &str) -> String {
        format!(
            "{collection}|{}|{}|{}",
            self.ip.unwrap_or(""),
            self.subnet.unwrap_or(""),
            self.vnic.unwrap_or("")
        )
    }
}

/// A successful answer, before HTTP framing.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub etag: Option<String>,
    pub next_page: Option<String>,
}

impl Reply {
    pub(super) fn ok(body: Value, etag: &str) -> Reply {
        Reply {
            status: 200,
            body: Some(body),
            etag: Some(etag.to_owned()),
            next_page: None,
        }
    }
}

pub struct Network {
    pub compartment: String,
    /// The one AD every instance (and so every VNIC) is in; IMDS reports the same.
    pub availability_domain: String,
    realm_key: String,
    region_key_lower: String,
    pub subnets: BTreeMap<String, Subnet>,
    pub vnics: BTreeMap<String, Vnic>,
    /// In creation order (list order).
    pub private_ips: Vec<PrivateIp>,
    pub public_ips: Vec<PublicIp>,
    /// The `Ipv6` objects, in creation order (`ipv6.rs`).
    pub ipv6s: Vec<super::ipv6::Ipv6>,
    pub assign_duration: Duration,
    /// The next N public IP assignments fail into AVAILABLE (admin fault).
    pub fail_next_assignments: u32,
    pub default_page_size: usize,
    /// `OciWorldConfig::move_answer_omits_vnic_id`.
    pub move_answer_omits_vnic_id: bool,
    retry_tokens: HashMap<String, (String, Reply)>,
    retry_order: VecDeque<String>,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // SystemRandom only fails if the OS has no entropy source; a zero ETag is still valid.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b
}

/// A fresh 8-hex-digit ETag, the length OCI networking uses (§2.4).
pub fn new_etag() -> String {
    random_bytes::<4>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn base32_lower(bytes: &[u8]) -> String {
    const A: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let mut buf: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(A[((buf >> bits) & 31) as usize] as char);
        }
    }
    out
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatePrivateIpDetails {
    vnic_id: Option<String>,
    subnet_id: Option<String>,
    vlan_id: Option<String>,
    ip_address: Option<String>,
    display_name: Option<String>,
    hostname_label: Option<String>,
    defined_tags: Option<Value>,
    freeform_tags: Option<Value>,
}

/// UpdatePrivateIpDetails as the SDK models it (PY-models `update_private_ip_details.py`).
/// Unknown fields are refused (400 CannotParseRequest): the stricter of the two plausible
/// answers, since no source shows which one OCI gives (DEVIATIONS.md). `lifetime` and
/// `routeTableId` are real fields this emulator does not model: refused when sent.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdatePrivateIpDetails {
    vnic_id: Option<String>,
    display_name: Option<String>,
    hostname_label: Option<String>,
    defined_tags: Option<Value>,
    freeform_tags: Option<Value>,
    lifetime: Option<Value>,
    route_table_id: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdatePublicIpDetails {
    private_ip_id: Option<String>,
    display_name: Option<String>,
    defined_tags: Option<Value>,
    freeform_tags: Option<Value>,
}

pub(super) fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, OciError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(OciError::cannot_parse("Request body is missing."));
    }
    serde_json::from_slice(body)
        .map_err(|e| OciError::cannot_parse(format!("Unable to parse the request body: {e}")))
}

pub(super) fn check_display_name(n: &Option<String>) -> Result<(), OciError> {
    match n {
        Some(s) if s.is_empty() || s.chars().count() > 255 => Err(OciError::invalid(
            "displayName size must be between 1 and 255",
        )),
        _ => Ok(()),
    }
}

/// RFC 952/1123 host label as OCI requires: letter first, letters/digits/hyphens, ≤ 63.
fn check_hostname_label(l: &Option<String>) -> Result<(), OciError> {
    if let Some(s) = l {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && !s.ends_with('-')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(OciError::invalid(format!(
                "hostnameLabel {s} is not a valid hostname label"
            )));
        }
    }
    Ok(())
}

pub(super) fn check_if_match(if_match: Option<&str>, etag: &str) -> Result<(), OciError> {
    // Only an exact match passes; `*` is not documented for OCI networking (stricter).
    match if_match {
        Some(m) if m.trim() != etag => Err(OciError::etag_mismatch()),
        _ => Ok(()),
    }
}

/// Query parameters, percent-decoded.
pub fn parse_query(q: &str) -> Result<Vec<(String, String)>, OciError> {
    let mut out = Vec::new();
    for part in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((percent_decode(k)?, percent_decode(v)?));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, OciError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| OciError::invalid("Malformed percent-encoding in the query"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| OciError::invalid("Query is not UTF-8"))
}

impl Network {
    pub fn from_config(cfg: &OciWorldConfig, now: SystemTime) -> Result<Network, String> {
        let region_key = cfg
            .region_key
            .clone()
            .or_else(|| super::world::region_key_for(&cfg.region).map(str::to_owned))
            .unwrap_or_else(|| cfg.region.clone());
        let mut net = Network {
            compartment: cfg.compartment.clone(),
            availability_domain: cfg
                .availability_domain
                .clone()
                .unwrap_or_else(|| format!("Sim:{region_key}-AD-1")),
            realm_key: cfg.realm_key.clone(),
            region_key_lower: region_key.to_ascii_lowercase(),
            subnets: BTreeMap::new(),
            vnics: BTreeMap::new(),
            private_ips: Vec::new(),
            public_ips: Vec::new(),
            ipv6s: Vec::new(),
            assign_duration: Duration::from_millis(cfg.public_ip_assign_ms),
            fail_next_assignments: 0,
            default_page_size: cfg.default_page_size.clamp(1, MAX_LIMIT),
            move_answer_omits_vnic_id: cfg.move_answer_omits_vnic_id,
            retry_tokens: HashMap::new(),
            retry_order: VecDeque::new(),
        };
        let mut vcns = BTreeMap::new();
        for v in &cfg.vcns {
            let c = Cidr::parse(&v.cidr).map_err(|e| format!("vcn {}: {e}", v.id))?;
            if vcns.insert(v.id.clone(), c).is_some() {
                return Err(format!("vcn {} defined twice", v.id));
            }
        }
        for s in &cfg.subnets {
            let cidr = Cidr::parse(&s.cidr).map_err(|e| format!("subnet {}: {e}", s.id))?;
            let vcn = vcns
                .get(&s.vcn)
                .ok_or_else(|| format!("subnet {}: unknown vcn {}", s.id, s.vcn))?;
            if !vcn.contains_cidr(&cidr) {
                return Err(format!("subnet {}: {cidr} is outside vcn {vcn}", s.id));
            }
            let sub = Subnet {
                id: s.id.clone(),
                vcn: s.vcn.clone(),
                cidr,
                display_name: s.display_name.clone().unwrap_or_else(|| s.id.clone()),
                virtual_router_ip: s.virtual_router_ip.unwrap_or(cidr.first_host()),
                vlan_tag: s.vlan_tag.unwrap_or(0),
                ipv6_cidr: match &s.ipv6_cidr_block {
                    Some(b) => Some(
                        super::ipv6::Ipv6Prefix::parse(b)
                            .map_err(|e| format!("subnet {}: {e}", s.id))?,
                    ),
                    None => None,
                },
            };
            if net.subnets.insert(s.id.clone(), sub).is_some() {
                return Err(format!("subnet {} defined twice", s.id));
            }
        }
        for inst in &cfg.instances {
            if inst.vnics.is_empty() {
                return Err(format!("instance {} has no VNIC", inst.id));
            }
            for (i, v) in inst.vnics.iter().enumerate() {
                if net.vnics.contains_key(&v.id) {
                    return Err(format!("vnic {} defined twice", v.id));
                }
                let pid = v.private_ip_id.clone().unwrap_or_else(|| {
                    match v.id.strip_prefix("ocid1.vnic.") {
                        Some(rest) => format!("ocid1.privateip.{rest}"),
                        None => format!("{}.primaryip", v.id),
                    }
                });
                net.vnics.insert(
                    v.id.clone(),
                    Vnic {
                        id: v.id.clone(),
                        instance: inst.id.clone(),
                        subnet: v.subnet.clone(),
                        mac: v.mac.to_ascii_uppercase(),
                        hostname_label: v.hostname_label.clone(),
                        display_name: v
                            .display_name
                            .clone()
                            .unwrap_or_else(|| inst.display_name.clone()),
                        is_primary: i == 0,
                        nic_index: 0,
                        skip_source_dest_check: v.skip_source_dest_check,
                        etag: new_etag(),
                        time_created: now,
                    },
                );
                net.add_initial_private_ip(PrivateIp {
                    id: pid,
                    vnic: v.id.clone(),
                    subnet: v.subnet.clone(),
                    ip: v.private_ip,
                    is_primary: true,
                    display_name: v.private_ip.to_string(),
                    hostname_label: v.hostname_label.clone(),
                    defined_tags: json!({}),
                    freeform_tags: json!({}),
                    etag: new_etag(),
                    time_created: now,
                })?;
            }
        }
        for p in &cfg.private_ips {
            let vnic = net
                .vnics
                .get(&p.vnic)
                .ok_or_else(|| format!("private ip {}: unknown vnic {}", p.id, p.vnic))?;
            let subnet = vnic.subnet.clone();
            net.add_initial_private_ip(PrivateIp {
                id: p.id.clone(),
                vnic: p.vnic.clone(),
                subnet,
                ip: p.ip_address,
                is_primary: false,
                display_name: p
                    .display_name
                    .clone()
                    .unwrap_or_else(|| format!("privateip{}", compact(now))),
                hostname_label: p.hostname_label.clone(),
                defined_tags: json!({}),
                freeform_tags: json!({}),
                etag: new_etag(),
                time_created: now,
            })?;
        }
        for c in &cfg.ipv6s {
            net.add_initial_ipv6(c, now)?;
        }
        for p in &cfg.public_ips {
            if net
                .public_ips
                .iter()
                .any(|x| x.id == p.id || x.ip == p.ip_address)
            {
                return Err(format!("public ip {} defined twice", p.id));
            }
            if let Some(pid) = &p.private_ip {
                let Some(priv_ip) = net.private_ips.iter().find(|x| &x.id == pid) else {
                    return Err(format!("public ip {}: unknown private ip {pid}", p.id));
                };
                if p.lifetime == Lifetime::Ephemeral && !priv_ip.is_primary {
                    return Err(format!(
                        "public ip {}: an ephemeral public IP can only be on a primary private IP",
                        p.id
                    ));
                }
                if net
                    .public_ips
                    .iter()
                    .any(|x| x.assigned.as_deref() == Some(pid))
                {
                    return Err(format!("private ip {pid} has two public IPs"));
                }
            } else if p.lifetime == Lifetime::Ephemeral {
                return Err(format!("ephemeral public ip {} must be assigned", p.id));
            }
            net.public_ips.push(PublicIp {
                id: p.id.clone(),
                ip: p.ip_address,
                lifetime: p.lifetime,
                assigned: p.private_ip.clone(),
                state: if p.private_ip.is_some() {
                    PublicIpState::Assigned
                } else {
                    PublicIpState::Available
                },
                ready_at: None,
                fail_pending: false,
                display_name: p
                    .display_name
                    .clone()
                    .unwrap_or_else(|| p.ip_address.to_string()),
                defined_tags: json!({}),
                freeform_tags: json!({}),
                etag: new_etag(),
                time_created: now,
            });
        }
        Ok(net)
    }

    fn add_initial_private_ip(&mut self, p: PrivateIp) -> Result<(), String> {
        let subnet = self
            .subnets
            .get(&p.subnet)
            .ok_or_else(|| format!("private ip {}: unknown subnet {}", p.id, p.subnet))?;
        if !subnet.cidr.assignable(p.ip) {
            return Err(format!(
                "private ip {}: {} is not assignable in {}",
                p.id, p.ip, subnet.cidr
            ));
        }
        if self.private_ips.iter().any(|x| x.id == p.id) {
            return Err(format!("private ip {} defined twice", p.id));
        }
        if self
            .private_ips
            .iter()
            .any(|x| x.subnet == p.subnet && x.ip == p.ip)
        {
            return Err(format!("address {} used twice in {}", p.ip, p.subnet));
        }
        self.private_ips.push(p);
        Ok(())
    }

    pub(super) fn new_ocid(&self, kind: &str) -> String {
        format!(
            "ocid1.{kind}.{}.{}.{}",
            self.realm_key,
            self.region_key_lower,
            base32_lower(&random_bytes::<30>())
        )
    }

    /// Completes public IP transitions whose time has come (evaluated lazily on every call).
    pub fn settle(&mut self, now: Instant) {
        for p in &mut self.public_ips {
            let Some(at) = p.ready_at else { continue };
            if at > now {
                continue;
            }
            p.ready_at = None;
            match p.state {
                PublicIpState::Assigning if p.fail_pending => {
                    p.fail_pending = false;
                    p.assigned = None;
                    p.state = PublicIpState::Available;
                }
                PublicIpState::Assigning => p.state = PublicIpState::Assigned,
                PublicIpState::Unassigning => {
                    p.assigned = None;
                    p.state = PublicIpState::Available;
                }
                _ => {}
            }
            p.etag = new_etag();
        }
    }

    // ---- rendering -------------------------------------------------------------------

    fn primary_ip_of(&self, vnic: &str) -> Option<&PrivateIp> {
        self.private_ips
            .iter()
            .find(|p| p.vnic == vnic && p.is_primary)
    }

    pub fn vnic_json(&self, v: &Vnic) -> Value {
        let primary = self.primary_ip_of(&v.id);
        let public = primary.and_then(|p| {
            self.public_ips.iter().find(|x| {
                x.assigned.as_deref() == Some(p.id.as_str()) && x.state == PublicIpState::Assigned
            })
        });
        let mut m = object(json!({
            "availabilityDomain": self.availability_domain,
            "compartmentId": self.compartment,
            "definedTags": {},
            "displayName": v.display_name,
            "freeformTags": {},
            "id": v.id,
            "isPrimary": v.is_primary,
            "lifecycleState": "AVAILABLE",
            "macAddress": v.mac,
            "nsgIds": [],
            "privateIp": primary.map(|p| p.ip.to_string()),
            "skipSourceDestCheck": v.skip_source_dest_check,
            "subnetId": v.subnet,
            "timeCreated": rfc3339_millis(v.time_created),
        }));
        if let Some(h) = &v.hostname_label {
            m.insert("hostnameLabel".into(), json!(h));
        }
        if let Some(p) = public {
            m.insert("publicIp".into(), json!(p.ip.to_string()));
        }
        if self
            .subnets
            .get(&v.subnet)
            .is_some_and(|s| s.ipv6_cidr.is_some())
        {
            m.insert("ipv6Addresses".into(), json!(self.ipv6_addresses_of(&v.id)));
        }
        Value::Object(m)
    }

    pub fn private_ip_json(&self, p: &PrivateIp) -> Value {
        // "A secondary private IP assigned to a VNIC in a regional subnet has a null
        // availability domain attribute" (oci-api.md §2.6, DOC-net); every subnet here is
        // regional. A primary IP carries its VNIC's AD.
        let ad = p.is_primary.then_some(self.availability_domain.as_str());
        let mut m = object(json!({
            "availabilityDomain": ad,
            "compartmentId": self.compartment,
            "definedTags": p.defined_tags,
            "displayName": p.display_name,
            "freeformTags": p.freeform_tags,
            "id": p.id,
            "ipAddress": p.ip.to_string(),
            "isPrimary": p.is_primary,
            "subnetId": p.subnet,
            "timeCreated": rfc3339_millis(p.time_created),
            "vnicId": p.vnic,
            "ipState": "ASSIGNED",
            "lifetime": "EPHEMERAL",
        }));
        if let Some(h) = &p.hostname_label {
            m.insert("hostnameLabel".into(), json!(h));
        }
        Value::Object(m)
    }

    pub fn public_ip_json(&self, p: &PublicIp) -> Value {
        let mut m = object(json!({
            "compartmentId": self.compartment,
            "definedTags": p.defined_tags,
            "displayName": p.display_name,
            "freeformTags": p.freeform_tags,
            "id": p.id,
            "ipAddress": p.ip.to_string(),
            "lifecycleState": p.state.as_str(),
            "lifetime": match p.lifetime { Lifetime::Reserved => "RESERVED", Lifetime::Ephemeral => "EPHEMERAL" },
            "scope": match p.lifetime { Lifetime::Reserved => "REGION", Lifetime::Ephemeral => "AVAILABILITY_DOMAIN" },
            "timeCreated": rfc3339_millis(p.time_created),
        }));
        if p.lifetime == Lifetime::Ephemeral {
            m.insert("availabilityDomain".into(), json!(self.availability_domain));
        }
        if let Some(a) = &p.assigned {
            m.insert("assignedEntityId".into(), json!(a));
            m.insert("assignedEntityType".into(), json!("PRIVATE_IP"));
            // Deprecated alias still sent by the service (PY-models `privateIpId`).
            m.insert("privateIpId".into(), json!(a));
        }
        Value::Object(m)
    }

    pub fn subnet_json(&self, s: &Subnet) -> Value {
        let mut v = json!({
            "availabilityDomain": null,
            "cidrBlock": s.cidr.to_string(),
            "compartmentId": self.compartment,
            "definedTags": {},
            "displayName": s.display_name,
            "freeformTags": {},
            "id": s.id,
            "lifecycleState": "AVAILABLE",
            "prohibitPublicIpOnVnic": false,
            "vcnId": s.vcn,
            "virtualRouterIp": s.virtual_router_ip.to_string(),
            "virtualRouterMac": "00:00:17:00:00:01",
        });
        if let (Some(p), Value::Object(m)) = (s.ipv6_cidr, &mut v) {
            m.insert("ipv6CidrBlock".into(), json!(p.to_string()));
            m.insert("ipv6CidrBlocks".into(), json!([p.to_string()]));
            // The SDK documents an IPv6 virtual router address; ours is the prefix's ::1.
            m.insert("ipv6VirtualRouterIp".into(), json!(p.nth(1).to_string()));
        }
        v
    }

    // ---- operations ------------------------------------------------------------------

    pub fn get_vnic(&self, id: &str) -> Result<Reply, OciError> {
        let v = self
            .vnics
            .get(id)
            .ok_or_else(|| OciError::not_found("VNIC", id))?;
        Ok(Reply::ok(self.vnic_json(v), &v.etag))
    }

    pub fn get_subnet(&self, id: &str) -> Result<Reply, OciError> {
        let s = self
            .subnets
            .get(id)
            .ok_or_else(|| OciError::not_found("Subnet", id))?;
        // Subnets never change here; a stable ETag derived from the OCID is enough.
        let etag = super::pki::fingerprint(&ring::digest::SHA256, s.id.as_bytes(), false)
            .replace(':', "")[..8]
            .to_owned();
        Ok(Reply::ok(self.subnet_json(s), &etag))
    }

    fn private_ip_index(&self, id: &str) -> Result<usize, OciError> {
        self.private_ips
            .iter()
            .position(|p| p.id == id)
            .ok_or_else(|| OciError::not_found("Private IP", id))
    }

    pub fn get_private_ip(&self, id: &str) -> Result<Reply, OciError> {
        let p = &self.private_ips[self.private_ip_index(id)?];
        Ok(Reply::ok(self.private_ip_json(p), &p.etag))
    }

    /// ListPrivateIps (§2.2): by `ipAddress`+`subnetId`, by `subnetId`, or by `vnicId`;
    /// paginated. Like the recorded service, every non-empty page carries `opc-next-page`,
    /// so the last page a client sees is an empty one (§2.4).
    pub fn list_private_ips(&self, query: &[(String, String)]) -> Result<Reply, OciError> {
        if let Some((_, v)) = query.iter().find(|(k, _)| k == "vlanId") {
            return Err(OciError::not_found("VLAN", v));
        }
        let scope = self.list_scope(query, "ListPrivateIps", "subnetId, vnicId, vlanId")?;
        let ip: Option<Ipv4Addr> = match scope.ip {
            Some(s) => Some(s.parse().map_err(|_| {
                OciError::invalid(format!("ipAddress {s} is not a valid IPv4 address"))
            })?),
            None => None,
        };
        let items = self
            .private_ips
            .iter()
            .filter(|p| scope.subnet.is_none_or(|s| p.subnet == s))
            .filter(|p| scope.vnic.is_none_or(|v| p.vnic == v))
            .filter(|p| ip.is_none_or(|a| p.ip == a))
            .map(|p| self.private_ip_json(p))
            .collect();
        self.list_page(query, &scope.filter("privateIps"), items)
    }

    /// What a list call (ListPrivateIps, ListIpv6s) selects by: `subnetId` or `vnicId`
    /// (both must exist), and `ipAddress` only together with `subnetId`, the one
    /// documented combination (§8 gap: the others are refused).
    pub(super) fn list_scope<'q>(
        &self,
        query: &'q [(String, String)],
        op: &str,
        scopes: &str,
    ) -> Result<ListScope<'q>, OciError> {
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let (ip, subnet, vnic) = (get("ipAddress"), get("subnetId"), get("vnicId"));
        if subnet.is_none() && vnic.is_none() && get("vlanId").is_none() {
            // Its own text (not CreatePrivateIp's): ipAddress alone identifies nothing,
            // because addresses are unique only within a subnet (§2.2).
            return Err(OciError::missing(if ip.is_some() {
                "ipAddress must be used together with subnetId: an address is unique only within its subnet.".to_owned()
            } else {
                format!("{op} needs one of the following query parameters: {scopes}.")
            }));
        }
        if ip.is_some() && (subnet.is_none() || vnic.is_some()) {
            return Err(OciError::invalid(
                "ipAddress can only be used together with subnetId",
            ));
        }
        if let Some(s) = subnet.filter(|s| !self.subnets.contains_key(*s)) {
            return Err(OciError::not_found("Subnet", s));
        }
        if let Some(v) = vnic.filter(|v| !self.vnics.contains_key(*v)) {
            return Err(OciError::not_found("VNIC", v));
        }
        Ok(ListScope { ip, subnet, vnic })
    }

    /// One page of `items` by the query's `limit` and `page` (a token bound to `filter`).
    pub(super) fn list_page(
        &self,
        query: &[(String, String)],
        filter: &str,
        items: Vec<Value>,
    ) -> Result<Reply, OciError> {
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let limit = match get("limit") {
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(OciError::invalid(format!(
                        "limit must be between 1 and {MAX_LIMIT}"
                    )))
                }
            },
            None => self.default_page_size,
        };
        let offset = match get("page") {
            Some(tok) => decode_page(tok, filter)?,
            None => 0,
        };
        let page: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
        let next_page = (!page.is_empty()).then(|| encode_page(offset + page.len(), filter));
        Ok(Reply {
            status: 200,
            body: Some(Value::Array(page)),
            etag: None,
            next_page,
        })
    }

    pub(super) fn remember_retry(&mut self, token: String, fingerprint: String, reply: Reply) {
        if self.retry_order.len() >= MAX_RETRY_TOKENS {
            if let Some(old) = self.retry_order.pop_front() {
                self.retry_tokens.remove(&old);
            }
        }
        self.retry_order.push_back(token.clone());
        self.retry_tokens.insert(token, (fingerprint, reply));
    }

    /// A previous answer for this `opc-retry-token`, or a conflict if the token was used
    /// for a different request.
    pub(super) fn replay(
        &self,
        token: Option<&str>,
        fingerprint: &str,
    ) -> Result<Option<Reply>, OciError> {
        let Some(t) = token else { return Ok(None) };
        if t.is_empty() || t.len() > 64 {
            return Err(OciError::invalid(
                "opc-retry-token must be between 1 and 64 characters",
            ));
        }
        match self.retry_tokens.get(t) {
            Some((fp, reply)) if fp == fingerprint => Ok(Some(reply.clone())),
            Some(_) => Err(OciError::new(
                409,
                "InvalidatedRetryToken",
                "The retry token was already used for a different request.",
            )),
            None => Ok(None),
        }
    }

    /// CreatePrivateIp on a VNIC (§2.3). An address held by another private IP of the subnet
    /// gets 409 Conflict: the real answer is undocumented (§8), so the agent must not
    /// depend on it.
    pub fn create_private_ip(
        &mut self,
        body: &[u8],
        retry_token: Option<&str>,
        now: SystemTime,
    ) -> Result<Reply, OciError> {
        let fingerprint = super::signature::body_digest(body);
        if let Some(r) = self.replay(retry_token, &fingerprint)? {
            return Ok(r);
        }
        let d: CreatePrivateIpDetails = parse_body(body)?;
        check_display_name(&d.display_name)?;
        check_hostname_label(&d.hostname_label)?;
        let Some(vnic_id) = d.vnic_id.as_deref() else {
            if d.subnet_id.is_none() && d.vlan_id.is_none() {
                return Err(OciError::missing(
                    "This request is missing one of the following arguments: subnetId, vnicId, vlanId.",
                ));
            }
            return Err(OciError::invalid(
                "cloudvip-sim supports CreatePrivateIp only with vnicId",
            ));
        };
        let vnic = self
            .vnics
            .get(vnic_id)
            .ok_or_else(|| OciError::related_not_found("VNIC", vnic_id))?;
        let subnet_id = vnic.subnet.clone();
        if let Some(s) = &d.subnet_id {
            if *s != subnet_id {
                return Err(OciError::invalid(
                    "The VNIC and private IP must be in the same subnet.",
                ));
            }
        }
        let subnet = self
            .subnets
            .get(&subnet_id)
            .ok_or_else(OciError::internal)?
            .clone();
        if self
            .private_ips
            .iter()
            .filter(|p| p.vnic == vnic_id)
            .count()
            >= MAX_PRIVATE_IPS_PER_VNIC
        {
            return Err(OciError::new(
                400,
                "LimitExceeded",
                "The VNIC already has the maximum number of private IPs.",
            ));
        }
        let used = |a: Ipv4Addr| {
            self.private_ips
                .iter()
                .any(|p| p.subnet == subnet_id && p.ip == a)
        };
        let ip = match &d.ip_address {
            Some(s) => {
                let a: Ipv4Addr = s.parse().map_err(|_| {
                    OciError::invalid(format!("ipAddress {s} is not a valid IPv4 address"))
                })?;
                if !subnet.cidr.assignable(a) {
                    return Err(OciError::invalid(format!(
                        "ipAddress {a} is not an available address in subnet CIDR {}",
                        subnet.cidr
                    )));
                }
                if used(a) {
                    return Err(OciError::conflict(format!(
                        "IP address {a} is already assigned in subnet {subnet_id}"
                    )));
                }
                a
            }
            None => {
                let lo = u32::from(subnet.cidr.network()) + 2;
                let hi = u32::from(subnet.cidr.broadcast());
                (lo..hi)
                    .map(Ipv4Addr::from)
                    .find(|a| !used(*a))
                    .ok_or_else(|| {
                        OciError::new(400, "LimitExceeded", "The subnet has no free address.")
                    })?
            }
        };
        if let Some(h) = &d.hostname_label {
            self.check_hostname_unique(&subnet_id, h, None)?;
        }
        let p = PrivateIp {
            id: self.new_ocid("privateip"),
            vnic: vnic_id.to_owned(),
            subnet: subnet_id,
            ip,
            is_primary: false,
            display_name: d
                .display_name
                .unwrap_or_else(|| format!("privateip{}", compact(now))),
            hostname_label: d.hostname_label,
            defined_tags: d.defined_tags.unwrap_or_else(|| json!({})),
            freeform_tags: d.freeform_tags.unwrap_or_else(|| json!({})),
            etag: new_etag(),
            time_created: now,
        };
        let reply = Reply::ok(self.private_ip_json(&p), &p.etag);
        self.private_ips.push(p);
        if let Some(t) = retry_token {
            self.remember_retry(t.to_owned(), fingerprint, reply.clone());
        }
        Ok(reply)
    }

    fn check_hostname_unique(
        &self,
        subnet: &str,
        label: &str,
        except: Option<&str>,
    ) -> Result<(), OciError> {
        let clash = self.private_ips.iter().any(|p| {
            p.subnet == subnet
                && Some(p.id.as_str()) != except
                && p.hostname_label
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(label))
        });
        if clash {
            return Err(OciError::invalid(format!(
                "hostnameLabel {label} is already in use in subnet {subnet}"
            )));
        }
        Ok(())
    }

    /// UpdatePrivateIp: rename and/or move a secondary private IP to another VNIC of the
    /// same subnet; its reserved public IP (if any) stays attached to it, so it follows.
    pub fn update_private_ip(
        &mut self,
        id: &str,
        body: &[u8],
        if_match: Option<&str>,
    ) -> Result<Reply, OciError> {
        let i = self.private_ip_index(id)?;
        check_if_match(if_match, &self.private_ips[i].etag)?;
        let d: UpdatePrivateIpDetails = parse_body(body)?;
        if d.lifetime.is_some() || d.route_table_id.is_some() {
            return Err(OciError::invalid(
                "cloudvip-sim does not model lifetime or routeTableId on private IPs",
            ));
        }
        check_display_name(&d.display_name)?;
        check_hostname_label(&d.hostname_label)?;
        let cur = self.private_ips[i].clone();
        let mut moved = false;
        if let Some(target) = d.vnic_id.as_deref() {
            if target != cur.vnic {
                if cur.is_primary {
                    // Recorded verbatim (§2.5).
                    return Err(OciError::invalid(
                        "Cannot reassign primary private IP addresses",
                    ));
                }
                let tv = self
                    .vnics
                    .get(target)
                    .ok_or_else(|| OciError::related_not_found("VNIC", target))?;
                if tv.subnet != cur.subnet {
                    return Err(OciError::invalid(
                        "The VNIC must be in the same subnet as the current VNIC.",
                    ));
                }
                if self.private_ips.iter().filter(|p| p.vnic == target).count()
                    >= MAX_PRIVATE_IPS_PER_VNIC
                {
                    return Err(OciError::new(
                        400,
                        "LimitExceeded",
                        "The VNIC already has the maximum number of private IPs.",
                    ));
                }
                moved = true;
            }
        }
        if let Some(h) = &d.hostname_label {
            self.check_hostname_unique(&cur.subnet, h, Some(id))?;
        }
        let p = &mut self.private_ips[i];
        let mut changed = moved;
        if moved {
            if let Some(t) = d.vnic_id {
                p.vnic = t;
            }
        }
        if let Some(n) = d.display_name {
            changed |= p.display_name != n;
            p.display_name = n;
        }
        if let Some(h) = d.hostname_label {
            changed |= p.hostname_label.as_deref() != Some(h.as_str());
            p.hostname_label = Some(h);
        }
        if let Some(t) = d.defined_tags {
            changed = true;
            p.defined_tags = t;
        }
        if let Some(t) = d.freeform_tags {
            changed = true;
            p.freeform_tags = t;
        }
        if changed {
            p.etag = new_etag();
        }
        let p = self.private_ips[i].clone();
        let mut body = self.private_ip_json(&p);
        if moved && self.move_answer_omits_vnic_id {
            // The recorded 2018 PUT answer to a move left out vnicId, while the next GET
            // had it (§2.6): clients must then re-read, so the emulator leaves it out too.
            if let Value::Object(m) = &mut body {
                m.remove("vnicId");
            }
        }
        Ok(Reply::ok(body, &p.etag))
    }

    pub fn delete_private_ip(
        &mut self,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<Reply, OciError> {
        let i = self.private_ip_index(id)?;
        check_if_match(if_match, &self.private_ips[i].etag)?;
        if self.private_ips[i].is_primary {
            return Err(OciError::invalid(
                "Cannot delete primary private IP addresses",
            ));
        }
        // A reserved public IP on it is left unassigned (DOC-net managingpublicIPs.md).
        for p in &mut self.public_ips {
            if p.assigned.as_deref() == Some(id) {
                p.assigned = None;
                p.state = PublicIpState::Available;
                p.ready_at = None;
                p.fail_pending = false;
                p.etag = new_etag();
            }
        }
        self.private_ips.remove(i);
        Ok(Reply {
            status: 204,
            body: None,
            etag: None,
            next_page: None,
        })
    }

    fn public_ip_index(&self, id: &str) -> Result<usize, OciError> {
        self.public_ips
            .iter()
            .position(|p| p.id == id)
            .ok_or_else(|| OciError::not_found("Public IP", id))
    }

    /// The console's hand: unassign a public IP (by OCID or address) at once, no transition.
    pub fn console_unassign_public_ip(&mut self, id: &str) -> bool {
        let Some(p) = self
            .public_ips
            .iter_mut()
            .find(|p| p.id == id || p.ip.to_string() == id)
        else {
            return false;
        };
        p.assigned = None;
        p.state = PublicIpState::Available;
        p.ready_at = None;
        p.fail_pending = false;
        p.etag = new_etag();
        true
    }

    pub fn get_public_ip(&self, id: &str) -> Result<Reply, OciError> {
        let p = &self.public_ips[self.public_ip_index(id)?];
        Ok(Reply::ok(self.public_ip_json(p), &p.etag))
    }

    pub fn get_public_ip_by_ip_address(&self, body: &[u8]) -> Result<Reply, OciError> {
        let v: Value = parse_body(body)?;
        let a = v
            .get("ipAddress")
            .and_then(Value::as_str)
            .ok_or_else(|| OciError::missing("ipAddress is required"))?;
        let ip: Ipv4Addr = a
            .parse()
            .map_err(|_| OciError::invalid(format!("ipAddress {a} is not a valid IPv4 address")))?;
        let p = self
            .public_ips
            .iter()
            .find(|p| p.ip == ip)
            .ok_or_else(OciError::not_authorized_generic)?;
        Ok(Reply::ok(self.public_ip_json(p), &p.etag))
    }

    /// "If no public IP is assigned, a 404 is returned" (§2.2); during a move the old
    /// private IP already has none (§2.6).
    pub fn get_public_ip_by_private_ip_id(&self, body: &[u8]) -> Result<Reply, OciError> {
        let v: Value = parse_body(body)?;
        let id = v
            .get("privateIpId")
            .and_then(Value::as_str)
            .ok_or_else(|| OciError::missing("privateIpId is required"))?;
        let p = self
            .public_ips
            .iter()
            .find(|p| {
                p.assigned.as_deref() == Some(id)
                    && matches!(p.state, PublicIpState::Assigned | PublicIpState::Assigning)
            })
            .ok_or_else(OciError::not_authorized_generic)?;
        Ok(Reply::ok(self.public_ip_json(p), &p.etag))
    }

    /// UpdatePublicIp: assign, move (`privateIpId` = target) or unassign (`""`) a reserved
    /// public IP. Asynchronous: ASSIGNING/UNASSIGNING for `assign_duration` (§2.6). A change
    /// requested while a transition is under way gets 409 IncorrectState (the real answer
    /// is undocumented; this is the stricter choice, and the SDKs retry that code).
    pub fn update_public_ip(
        &mut self,
        id: &str,
        body: &[u8],
        if_match: Option<&str>,
        now: Instant,
    ) -> Result<Reply, OciError> {
        let i = self.public_ip_index(id)?;
        check_if_match(if_match, &self.public_ips[i].etag)?;
        let d: UpdatePublicIpDetails = parse_body(body)?;
        check_display_name(&d.display_name)?;
        let cur = self.public_ips[i].clone();
        let mut changed = false;
        if let Some(target) = d.private_ip_id.as_deref() {
            let transitioning = matches!(
                cur.state,
                PublicIpState::Assigning | PublicIpState::Unassigning
            );
            let same = cur.assigned.as_deref() == Some(target)
                && matches!(
                    cur.state,
                    PublicIpState::Assigned | PublicIpState::Assigning
                );
            let already_free = target.is_empty() && cur.state == PublicIpState::Available;
            if !(same || already_free) {
                if cur.lifetime == Lifetime::Ephemeral {
                    return Err(OciError::invalid(
                        "An ephemeral public IP cannot be moved or unassigned; delete it instead",
                    ));
                }
                if transitioning {
                    return Err(OciError::new(
                        409,
                        "IncorrectState",
                        format!("Public IP {id} is {}", cur.state.as_str()),
                    ));
                }
                let p = if target.is_empty() {
                    let p = &mut self.public_ips[i];
                    p.state = PublicIpState::Unassigning;
                    p
                } else {
                    if !self.private_ips.iter().any(|p| p.id == target) {
                        return Err(OciError::related_not_found("Private IP", target));
                    }
                    let taken = self.public_ips.iter().any(|p| {
                        p.id != id
                            && p.assigned.as_deref() == Some(target)
                            && matches!(p.state, PublicIpState::Assigned | PublicIpState::Assigning)
                    });
                    if taken {
                        return Err(OciError::conflict(format!(
                            "Private IP {target} already has a public IP assigned"
                        )));
                    }
                    let fail = if self.fail_next_assignments > 0 {
                        self.fail_next_assignments -= 1;
                        true
                    } else {
                        false
                    };
                    let p = &mut self.public_ips[i];
                    // The unassignment from the old private IP is immediate; the
                    // assignment to the target is what takes time (§2.6).
                    p.assigned = Some(target.to_owned());
                    p.state = PublicIpState::Assigning;
                    p.fail_pending = fail;
                    p
                };
                p.ready_at = Some(now + self.assign_duration);
                changed = true;
            }
        }
        let p = &mut self.public_ips[i];
        if let Some(n) = d.display_name {
            changed |= p.display_name != n;
            p.display_name = n;
        }
        if let Some(t) = d.defined_tags {
            changed = true;
            p.defined_tags = t;
        }
        if let Some(t) = d.freeform_tags {
            changed = true;
            p.freeform_tags = t;
        }
        if changed {
            p.etag = new_etag();
        }
        // A zero duration completes at once, as if the client polled after it.
        self.settle(now);
        let p = &self.public_ips[i];
        Ok(Reply::ok(self.public_ip_json(p), &p.etag))
    }

    /// Test/admin view of who holds what.
    pub fn snapshot(&self) -> Value {
        json!({
            "privateIps": self.private_ips.iter().map(|p| json!({
                "id": p.id, "ipAddress": p.ip.to_string(), "vnicId": p.vnic,
                "subnetId": p.subnet, "isPrimary": p.is_primary, "etag": p.etag,
                "displayName": p.display_name,
            })).collect::<Vec<_>>(),
            "publicIps": self.public_ips.iter().map(|p| json!({
                "id": p.id, "ipAddress": p.ip.to_string(),
                "lifecycleState": p.state.as_str(), "assignedEntityId": p.assigned,
                "etag": p.etag,
            })).collect::<Vec<_>>(),
            "ipv6s": self.ipv6s.iter().map(|p| json!({
                "id": p.id, "ipAddress": p.ip.to_string(), "vnicId": p.vnic,
                "subnetId": p.subnet, "etag": p.etag, "displayName": p.display_name,
            })).collect::<Vec<_>>(),
        })
    }
}

fn encode_page(offset: usize, filter: &str) -> String {
    // Opaque to clients; padded base64url so that a client must URL-encode it (`=` →
    // `%3D`) when it sends it back, as with the real tokens (§2.4).
    URL_SAFE.encode(json!({"o": offset, "f": filter}).to_string())
}

fn decode_page(tok: &str, filter: &str) -> Result<usize, OciError> {
    let bad = || OciError::invalid("The page token is invalid");
    let raw = URL_SAFE.decode(tok.as_bytes()).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v.get("f").and_then(Value::as_str) != Some(filter) {
        return Err(OciError::invalid(
            "The page token does not belong to this list request",
        ));
    }
    v.get("o")
        .and_then(Value::as_u64)
        .map(|o| o as usize)
        .ok_or_else(bad)
}
