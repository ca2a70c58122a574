//! The `[oci]` part of the world file: what exists in the emulated tenancy when the
//! emulator starts. Plain serde structs; `networking.rs` and `mod.rs` build the live state
//! from them and validate cross-references. Every OCID is given by the world (so tests and
//! rehearsals can name things), except primary private IPs, which get one derived from the
//! VNIC's when absent.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// What a principal may do, in OCI policy verbs (`read` < `use` < `manage`). A request
/// beyond it gets `404 NotAuthorizedOrNotFound`, as OCI hides existence (§2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    None,
    Read,
    Use,
    #[default]
    Manage,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OciWorldConfig {
    pub tenancy: String,
    /// Compartment holding every resource of the world.
    pub compartment: String,
    /// Networking API (`iaas`) and auth service (`/v1/x509`) listener; HTTPS when the
    /// world's `[server]` TLS is configured. The paths of the two services do not overlap.
    #[serde(default = "crate::world::loopback_any")]
    pub api_listen: SocketAddr,
    /// One plain-HTTP IMDS listener per instance on 127.0.0.1 (any port).
    #[serde(default = "yes")]
    pub metadata_per_instance: bool,
    /// Optional shared IMDS listener (e.g. `169.254.169.254:80` inside a test network
    /// namespace); instances are told apart by source address (`metadata_source`).
    #[serde(default)]
    pub metadata_listen: Option<SocketAddr>,
    /// Canonical region identifier, e.g. `us-ashburn-1`.
    pub region: String,
    /// Upper-case region key (`IAD`); derived for well-known regions when absent.
    #[serde(default)]
    pub region_key: Option<String>,
    #[serde(default = "default_realm_key")]
    pub realm_key: String,
    /// Second-level domain of the realm: API hosts are `iaas.<region>.<realm_domain>`.
    #[serde(default = "default_realm_domain")]
    pub realm_domain: String,
    #[serde(default)]
    pub availability_domain: Option<String>,
    /// Lifetime of security tokens from `/v1/x509`. Real lifetimes are undocumented (§8).
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_secs: u64,
    /// Lifetime of instance leaf certificates (rotation is on demand, see admin).
    #[serde(default = "default_cert_lifetime")]
    pub identity_cert_lifetime_secs: u64,
    /// How long a public IP stays ASSIGNING/UNASSIGNING (§2.6; real duration unknown, §8).
    #[serde(default = "default_assign_ms")]
    pub public_ip_assign_ms: u64,
    /// Page size of list calls when the client sends no `limit`.
    #[serde(default = "default_page")]
    pub default_page_size: usize,
    /// UpdatePrivateIp's answer to a move leaves out `vnicId`, as the recorded 2018 answer
    /// did (oci-api.md §2.6); `false` answers the whole PrivateIp, as the SDKs' response
    /// type documents. Which one today's service sends is unknown.
    #[serde(default = "yes")]
    pub move_answer_omits_vnic_id: bool,
    #[serde(default)]
    pub vcns: Vec<VcnConfig>,
    #[serde(default)]
    pub subnets: Vec<SubnetConfig>,
    #[serde(default)]
    pub instances: Vec<InstanceConfig>,
    /// Secondary private IPs present at start.
    #[serde(default)]
    pub private_ips: Vec<PrivateIpConfig>,
    #[serde(default)]
    pub public_ips: Vec<PublicIpConfig>,
    /// IPv6 addresses (the `Ipv6` resource) present at start; their subnet needs an
    /// `ipv6_cidr_block`.
    #[serde(default)]
    pub ipv6s: Vec<Ipv6Config>,
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
}

fn yes() -> bool {
    true
}
fn default_realm_key() -> String {
    "oc1".into()
}
fn default_realm_domain() -> String {
    "oraclecloud.com".into()
}
fn default_token_lifetime() -> u64 {
    3600
}
fn default_cert_lifetime() -> u64 {
    86_400
}
fn default_assign_ms() -> u64 {
    2000
}
fn default_page() -> usize {
    100
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VcnConfig {
    pub id: String,
    pub cidr: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetConfig {
    pub id: String,
    pub vcn: String,
    pub cidr: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Default gateway; OCI uses the first host address of the subnet.
    #[serde(default)]
    pub virtual_router_ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub vlan_tag: Option<u32>,
    /// The subnet's IPv6 prefix (a /64 on OCI, `ipv6CidrBlock`); absent: IPv4 only.
    #[serde(default)]
    pub ipv6_cidr_block: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    pub id: String,
    pub display_name: String,
    #[serde(default)]
    pub hostname: Option<String>,
    /// Source address the instance's IMDS requests come from (a loopback address such as
    /// 127.0.0.11, or an address inside a test network namespace). Instances may instead
    /// be told apart by a dedicated IMDS listener; never by a header.
    #[serde(default)]
    pub metadata_source: Option<IpAddr>,
    #[serde(default)]
    pub fault_domain: Option<String>,
    #[serde(default)]
    pub shape: Option<String>,
    /// Permission of the instance principal (dynamic-group policy).
    #[serde(default)]
    pub access: Access,
    /// The first VNIC is the primary one.
    pub vnics: Vec<VnicConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VnicConfig {
    pub id: String,
    /// `00:00:17:00:CA:46` form; the API returns it upper-case as recorded.
    pub mac: String,
    pub subnet: String,
    /// The VNIC's primary private IP address.
    pub private_ip: Ipv4Addr,
    #[serde(default)]
    pub private_ip_id: Option<String>,
    #[serde(default)]
    pub hostname_label: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub skip_source_dest_check: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateIpConfig {
    pub id: String,
    pub vnic: String,
    pub ip_address: Ipv4Addr,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub hostname_label: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ipv6Config {
    pub id: String,
    pub vnic: String,
    pub ip_address: std::net::Ipv6Addr,
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Lifetime {
    Reserved,
    Ephemeral,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublicIpConfig {
    pub id: String,
    pub ip_address: Ipv4Addr,
    pub lifetime: Lifetime,
    /// OCID of the private IP it is assigned to (ASSIGNED at start), if any.
    #[serde(default)]
    pub private_ip: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    pub user: String,
    /// Public key PEM (SPKI or PKCS#1), inline or from a file.
    #[serde(default)]
    pub public_key_pem: Option<String>,
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    /// Checked against the key's real fingerprint when given.
    #[serde(default)]
    pub fingerprint: Option<String>,
    #[serde(default)]
    pub access: Access,
}

impl OciWorldConfig {
    /// Every cross-reference of the part and every inline key, checked as the emulator
    /// would load it. Key files are read at start (their relative paths are resolved
    /// against the world file's directory by `World::load` first).
    pub fn validate(&self) -> Result<(), String> {
        super::networking::Network::from_config(self, std::time::SystemTime::now())?;
        for k in &self.api_keys {
            match (&k.public_key_pem, &k.public_key_file) {
                (Some(pem), None) => {
                    super::api_key_entry(&self.tenancy, k, pem)?;
                }
                (None, Some(_)) => {}
                _ => {
                    return Err(format!(
                        "api key of {}: give exactly one of public_key_pem, public_key_file",
                        k.user
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Region key for well-known regions (OCI's three-letter code).
pub fn region_key_for(region: &str) -> Option<&'static str> {
    Some(match region {
        "us-ashburn-1" => "IAD",
        "us-phoenix-1" => "PHX",
        "us-sanjose-1" => "SJC",
        "us-chicago-1" => "ORD",
        "eu-frankfurt-1" => "FRA",
        "eu-amsterdam-1" => "AMS",
        "uk-london-1" => "LHR",
        "ap-tokyo-1" => "NRT",
        "ap-sydney-1" => "SYD",
        "ca-toronto-1" => "YYZ",
        _ => return None,
    })
}

/// What `/opc/v2/instance/region` returns: `phx` and `iad` for those two regions, the
/// full identifier otherwise (DOC-meta, §1.3).
pub fn imds_region(region: &str) -> &str {
    match region {
        "us-phoenix-1" => "phx",
        "us-ashburn-1" => "iad",
        other => other,
    }
}

/// An IPv4 CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s}: not a CIDR"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| format!("{s}: bad address"))?;
        let prefix: u8 = p.parse().map_err(|_| format!("{s}: bad prefix"))?;
        if prefix > 30 {
            return Err(format!("{s}: prefix too long for a subnet"));
        }
        let c = Cidr { addr, prefix };
        if c.network() != addr {
            return Err(format!("{s}: host bits set"));
        }
        Ok(c)
    }
    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }
    pub fn contains_cidr(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }
    /// Addresses a VNIC may hold: OCI reserves the first two and the last of each subnet
    /// (network, gateway, broadcast).
    pub fn assignable(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(self.network());
        let v = u32::from(ip);
        self.contains(ip) && v >= n + 2 && ip != self.broadcast()
    }
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) + 1)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_rules() {
        let c = Cidr::parse("10.0.1.0/24").unwrap();
        assert!(c.assignable("10.0.1.2".parse().unwrap()));
        assert!(!c.assignable("10.0.1.1".parse().unwrap()));
        assert!(!c.assignable("10.0.1.255".parse().unwrap()));
        assert!(!c.assignable("10.0.2.5".parse().unwrap()));
        assert!(Cidr::parse("10.0.1.1/24").is_err());
        assert_eq!(c.first_host().to_string(), "10.0.1.1");
        assert!(Cidr::parse("10.0.0.0/16").unwrap().contains_cidr(&c));
    }
}
