//! The `Ipv6` resource of the Networking API: on OCI an IPv6 address is an object of its own
//! (`/20160918/ipv6`), not a `/privateIps` entry. Modelled as the OCI SDK's models and
//! operations describe it (Python SDK `oci.core.models.Ipv6`, `CreateIpv6Details`,
//! `UpdateIpv6Details`; `VirtualNetworkClient.create_ipv6` / `get_ipv6` / `list_ipv6s` /
//! `update_ipv6` / `delete_ipv6`): CreateIpv6 on a VNIC, with a chosen address inside the
//! subnet's IPv6 prefix or one OCI picks; UpdateIpv6 with `vnicId` moves it "to a different
//! VNIC in the same subnet"; ListIpv6s by subnet, by VNIC, or by address and subnet.
//! Only EPHEMERAL IPv6s assigned to a VNIC are modelled (DEVIATIONS.md).

use serde::Deserialize;
use serde_json::{json, Value};
use std::net::Ipv6Addr;
use std::time::SystemTime;

use super::error::OciError;
use super::networking::{check_display_name, check_if_match, new_etag, parse_body, Network, Reply};
use super::time::{compact, rfc3339_millis};

/// IPv6 addresses one VNIC may hold. OCI documents a per-VNIC limit for IPv6 addresses;
/// 32 is our reading of it (unverified, DEVIATIONS.md).
const MAX_IPV6_PER_VNIC: usize = 32;

/// An IPv6 prefix such as a subnet's `ipv6CidrBlock` (`2001:db8:0:1::/64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Prefix {
    pub addr: Ipv6Addr,
    pub len: u8,
}

impl Ipv6Prefix {
    pub fn parse(s: &str) -> Result<Ipv6Prefix, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s}: not an IPv6 prefix"))?;
        let addr: Ipv6Addr = a.parse().map_err(|_| format!("{s}: bad IPv6 address"))?;
        let len: u8 = l.parse().map_err(|_| format!("{s}: bad prefix length"))?;
        if !(1..=120).contains(&len) {
            return Err(format!("{s}: prefix length must be 1-120 for a subnet"));
        }
        let p = Ipv6Prefix { addr, len };
        if p.network() != addr {
            return Err(format!("{s}: host bits set"));
        }
        Ok(p)
    }

    fn mask(&self) -> u128 {
        u128::MAX << (128 - u32::from(self.len))
    }

    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) & self.mask())
    }

    pub fn contains(&self, a: Ipv6Addr) -> bool {
        u128::from(a) & self.mask() == u128::from(self.network())
    }

    /// The address at offset `n` inside the prefix.
    pub fn nth(&self, n: u128) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network()) | (n & !self.mask()))
    }
}

impl std::fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[derive(Debug, Clone)]
pub struct Ipv6 {
    pub id: String,
    pub vnic: String,
    pub subnet: String,
    pub ip: Ipv6Addr,
    pub display_name: String,
    pub defined_tags: Value,
    pub freeform_tags: Value,
    pub etag: String,
    pub time_created: SystemTime,
}

/// CreateIpv6Details (SDK model). Unknown fields: 400 CannotParseRequest, as for private IPs.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateIpv6Details {
    vnic_id: Option<String>,
    subnet_id: Option<String>,
    ip_address: Option<String>,
    display_name: Option<String>,
    defined_tags: Option<Value>,
    freeform_tags: Option<Value>,
    cidr_prefix_length: Option<Value>,
    lifetime: Option<String>,
    route_table_id: Option<Value>,
    ipv6_subnet_cidr: Option<Value>,
    hostname: Option<Value>,
}

/// UpdateIpv6Details (SDK model).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateIpv6Details {
    vnic_id: Option<String>,
    display_name: Option<String>,
    defined_tags: Option<Value>,
    freeform_tags: Option<Value>,
    lifetime: Option<String>,
    route_table_id: Option<Value>,
    hostname: Option<Value>,
}

/// Fields of the SDK models the emulator does not model: refused rather than ignored.
fn not_modelled(lifetime: &Option<String>, others: &[(&str, bool)]) -> Result<(), OciError> {
    if let Some(l) = lifetime {
        if l != "EPHEMERAL" {
            return Err(OciError::invalid(format!(
                "cloudvip-sim models only EPHEMERAL IPv6 addresses, not lifetime {l}"
            )));
        }
    }
    for (name, present) in others {
        if *present {
            return Err(OciError::invalid(format!(
                "cloudvip-sim does not model {name} on IPv6 addresses"
            )));
        }
    }
    Ok(())
}

impl Network {
    pub fn ipv6_json(&self, p: &Ipv6) -> Value {
        json!({
            "compartmentId": self.compartment,
            "definedTags": p.defined_tags,
            "displayName": p.display_name,
            "freeformTags": p.freeform_tags,
            "id": p.id,
            "ipAddress": p.ip.to_string(),
            "lifecycleState": "AVAILABLE",
            "subnetId": p.subnet,
            "timeCreated": rfc3339_millis(p.time_created),
            "vnicId": p.vnic,
            "ipState": "ASSIGNED",
            "lifetime": "EPHEMERAL",
        })
    }

    /// A VNIC's IPv6 addresses, for `Vnic.ipv6Addresses` and IMDS `/opc/v2/vnics/`.
    pub fn ipv6_addresses_of(&self, vnic: &str) -> Vec<String> {
        self.ipv6s
            .iter()
            .filter(|p| p.vnic == vnic)
            .map(|p| p.ip.to_string())
            .collect()
    }

    fn ipv6_index(&self, id: &str) -> Result<usize, OciError> {
        self.ipv6s
            .iter()
            .position(|p| p.id == id)
            .ok_or_else(|| OciError::not_found("IPv6", id))
    }

    fn ipv6_used(&self, subnet: &str, a: Ipv6Addr) -> bool {
        self.ipv6s.iter().any(|p| p.subnet == subnet && p.ip == a)
    }

    /// An `[[oci.ipv6s]]` entry of the world file.
    pub fn add_initial_ipv6(
        &mut self,
        c: &super::world::Ipv6Config,
        now: SystemTime,
    ) -> Result<(), String> {
        let vnic = self
            .vnics
            .get(&c.vnic)
            .ok_or_else(|| format!("ipv6 {}: unknown vnic {}", c.id, c.vnic))?;
        let subnet = vnic.subnet.clone();
        let prefix = self
            .subnets
            .get(&subnet)
            .and_then(|s| s.ipv6_cidr)
            .ok_or_else(|| format!("ipv6 {}: subnet {subnet} has no ipv6_cidr_block", c.id))?;
        if !prefix.contains(c.ip_address) {
            return Err(format!(
                "ipv6 {}: {} is outside {prefix}",
                c.id, c.ip_address
            ));
        }
        if self.ipv6_used(&subnet, c.ip_address) || self.ipv6s.iter().any(|p| p.id == c.id) {
            return Err(format!("ipv6 {}: address or id used twice", c.id));
        }
        self.ipv6s.push(Ipv6 {
            id: c.id.clone(),
            vnic: c.vnic.clone(),
            subnet,
            ip: c.ip_address,
            display_name: c
                .display_name
                .clone()
                .unwrap_or_else(|| format!("ipv6{}", compact(now))),
            defined_tags: json!({}),
            freeform_tags: json!({}),
            etag: new_etag(),
            time_created: now,
        });
        Ok(())
    }

    pub fn get_ipv6(&self, id: &str) -> Result<Reply, OciError> {
        let p = &self.ipv6s[self.ipv6_index(id)?];
        Ok(Reply::ok(self.ipv6_json(p), &p.etag))
    }

    /// ListIpv6s: by `ipAddress`+`subnetId`, by `subnetId` or by `vnicId` (the SDK's three
    /// filters); `ipState`/`lifetime` filter too. Paged like ListPrivateIps.
    pub fn list_ipv6s(&self, query: &[(String, String)]) -> Result<Reply, OciError> {
        let scope = self.list_scope(query, "ListIpv6s", "subnetId, vnicId")?;
        let ip: Option<Ipv6Addr> = match scope.ip {
            Some(s) => Some(s.parse().map_err(|_| {
                OciError::invalid(format!("ipAddress {s} is not a valid IPv6 address"))
            })?),
            None => None,
        };
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        // Every IPv6 here is ASSIGNED and EPHEMERAL.
        let state_ok = get("ipState").is_none_or(|s| s == "ASSIGNED")
            && get("lifetime").is_none_or(|l| l == "EPHEMERAL");
        let items = self
            .ipv6s
            .iter()
            .filter(|_| state_ok)
            .filter(|p| scope.subnet.is_none_or(|s| p.subnet == s))
            .filter(|p| scope.vnic.is_none_or(|v| p.vnic == v))
            .filter(|p| ip.is_none_or(|a| p.ip == a))
            .map(|p| self.ipv6_json(p))
            .collect();
        self.list_page(query, &scope.filter("ipv6"), items)
    }

    /// CreateIpv6 on a VNIC (`vnicId`), at `ipAddress` or an address picked from the
    /// subnet's prefix; `opc-retry-token` as for CreatePrivateIp.
    pub fn create_ipv6(
        &mut self,
        body: &[u8],
        retry_token: Option<&str>,
        now: SystemTime,
    ) -> Result<Reply, OciError> {
        let fingerprint = format!("ipv6:{}", super::signature::body_digest(body));
        if let Some(r) = self.replay(retry_token, &fingerprint)? {
            return Ok(r);
        }
        let d: CreateIpv6Details = parse_body(body)?;
        check_display_name(&d.display_name)?;
        not_modelled(
            &d.lifetime,
            &[
                ("cidrPrefixLength", d.cidr_prefix_length.is_some()),
                ("routeTableId", d.route_table_id.is_some()),
                ("ipv6SubnetCidr", d.ipv6_subnet_cidr.is_some()),
                ("hostname", d.hostname.is_some()),
            ],
        )?;
        let Some(vnic_id) = d.vnic_id.as_deref() else {
            if d.subnet_id.is_none() {
                return Err(OciError::missing(
                    "This request is missing one of the following arguments: subnetId, vnicId.",
                ));
            }
            // A subnetId-only IPv6 is a reserved, unassigned one: not modelled.
            return Err(OciError::invalid(
                "cloudvip-sim supports CreateIpv6 only with vnicId",
            ));
        };
        let vnic = self
            .vnics
            .get(vnic_id)
            .ok_or_else(|| OciError::related_not_found("VNIC", vnic_id))?;
        let subnet_id = vnic.subnet.clone();
        if d.subnet_id.as_deref().is_some_and(|s| s != subnet_id) {
            return Err(OciError::invalid(
                "The VNIC and IPv6 must be in the same subnet.",
            ));
        }
        let Some(prefix) = self.subnets.get(&subnet_id).and_then(|s| s.ipv6_cidr) else {
            return Err(OciError::invalid(format!(
                "Subnet {subnet_id} is not IPv6-enabled (it has no IPv6 prefix)"
            )));
        };
        if self.ipv6s.iter().filter(|p| p.vnic == vnic_id).count() >= MAX_IPV6_PER_VNIC {
            return Err(OciError::new(
                400,
                "LimitExceeded",
                "The VNIC already has the maximum number of IPv6 addresses.",
            ));
        }
        let ip = match &d.ip_address {
            Some(s) => {
                let a: Ipv6Addr = s.parse().map_err(|_| {
                    OciError::invalid(format!("ipAddress {s} is not a valid IPv6 address"))
                })?;
                if !prefix.contains(a) || a == prefix.network() {
                    return Err(OciError::invalid(format!(
                        "ipAddress {a} is not an available address in the subnet's IPv6 prefix {prefix}"
                    )));
                }
                if self.ipv6_used(&subnet_id, a) {
                    return Err(OciError::conflict(format!(
                        "IPv6 address {a} is already assigned in subnet {subnet_id}"
                    )));
                }
                a
            }
            // OCI picks one; ours are the lowest free ones from ::1000 up.
            None => (0x1000u128..0x1000 + 4096)
                .map(|n| prefix.nth(n))
                .find(|a| !self.ipv6_used(&subnet_id, *a))
                .ok_or_else(|| {
                    OciError::new(400, "LimitExceeded", "The subnet has no free IPv6 address.")
                })?,
        };
        let p = Ipv6 {
            id: self.new_ocid("ipv6"),
            vnic: vnic_id.to_owned(),
            subnet: subnet_id,
            ip,
            display_name: d
                .display_name
                .unwrap_or_else(|| format!("ipv6{}", compact(now))),
            defined_tags: d.defined_tags.unwrap_or_else(|| json!({})),
            freeform_tags: d.freeform_tags.unwrap_or_else(|| json!({})),
            etag: new_etag(),
            time_created: now,
        };
        let reply = Reply::ok(self.ipv6_json(&p), &p.etag);
        self.ipv6s.push(p);
        if let Some(t) = retry_token {
            self.remember_retry(t.to_owned(), fingerprint, reply.clone());
        }
        Ok(reply)
    }

    /// UpdateIpv6: rename, retag, or (with `vnicId`) move to another VNIC in the same
    /// subnet. Like a moved private IP, the answer to a move leaves out `vnicId`.
    pub fn update_ipv6(
        &mut self,
        id: &str,
        body: &[u8],
        if_match: Option<&str>,
    ) -> Result<Reply, OciError> {
        let i = self.ipv6_index(id)?;
        check_if_match(if_match, &self.ipv6s[i].etag)?;
        let d: UpdateIpv6Details = parse_body(body)?;
        check_display_name(&d.display_name)?;
        not_modelled(
            &d.lifetime,
            &[
                ("routeTableId", d.route_table_id.is_some()),
                ("hostname", d.hostname.is_some()),
            ],
        )?;
        let cur = self.ipv6s[i].clone();
        let mut moved = false;
        if let Some(target) = d.vnic_id.as_deref() {
            if target != cur.vnic {
                let tv = self
                    .vnics
                    .get(target)
                    .ok_or_else(|| OciError::related_not_found("VNIC", target))?;
                if tv.subnet != cur.subnet {
                    return Err(OciError::invalid(
                        "The VNIC must be in the same subnet as the current VNIC.",
                    ));
                }
                if self.ipv6s.iter().filter(|p| p.vnic == target).count() >= MAX_IPV6_PER_VNIC {
                    return Err(OciError::new(
                        400,
                        "LimitExceeded",
                        "The VNIC already has the maximum number of IPv6 addresses.",
                    ));
                }
                moved = true;
            }
        }
        let p = &mut self.ipv6s[i];
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
        let p = self.ipv6s[i].clone();
        let mut body = self.ipv6_json(&p);
        if let (true, Value::Object(m)) = (moved, &mut body) {
            m.remove("vnicId");
        }
        Ok(Reply::ok(body, &p.etag))
    }

    pub fn delete_ipv6(&mut self, id: &str, if_match: Option<&str>) -> Result<Reply, OciError> {
        let i = self.ipv6_index(id)?;
        check_if_match(if_match, &self.ipv6s[i].etag)?;
        self.ipv6s.remove(i);
        Ok(Reply {
            status: 204,
            body: None,
            etag: None,
            next_page: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let p = Ipv6Prefix::parse("fd00:66::/64").unwrap();
        assert!(p.contains("fd00:66::5".parse().unwrap()));
        assert!(!p.contains("fd00:67::5".parse().unwrap()));
        assert_eq!(p.nth(0x1000), "fd00:66::1000".parse::<Ipv6Addr>().unwrap());
        assert!(Ipv6Prefix::parse("fd00:66::1/64").is_err());
        assert!(Ipv6Prefix::parse("fd00:66::/0").is_err());
        assert!(Ipv6Prefix::parse("10.0.0.0/8").is_err());
    }
}
