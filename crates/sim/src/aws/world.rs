//! The `[aws]` part of the world file: one account, one region, its VPCs, subnets,
//! instances with their ENIs, Elastic IPs, route tables, IAM users (access keys) and roles.
//! Every id is given by the world so tests and rehearsals can name things; `state.rs`
//! builds the live state from it after [`AwsWorld::validate`].

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::gce::net::Ipv4Net;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AwsWorld {
    /// The one region served, e.g. `eu-west-1`.
    pub region: String,
    /// 12-digit account id owning everything unless a resource says otherwise.
    #[serde(default = "default_account")]
    pub account_id: String,
    /// EC2 and STS listener (HTTPS when the world's `[server]` TLS is set); requests are
    /// told apart by `Host` (`ec2.*` / `sts.*`), else by their `Version` parameter.
    #[serde(default = "crate::world::loopback_any")]
    pub api_listen: SocketAddr,
    /// One plain-HTTP IMDS listener per instance on 127.0.0.1 (any port).
    #[serde(default = "yes")]
    pub metadata_per_instance: bool,
    /// Optional shared IMDS listener (`169.254.169.254:80` inside a test namespace);
    /// instances are told apart by source address (`metadata_source`).
    #[serde(default)]
    pub metadata_listen: Option<SocketAddr>,
    /// Largest accepted difference between `X-Amz-Date` and the emulator's clock.
    #[serde(default = "default_skew")]
    pub max_clock_skew_secs: u64,
    /// EC2's answer to a skewed clock: `RequestExpired` (400) or `AuthFailure` (401); both
    /// are reported in public logs (DEVIATIONS.md).
    #[serde(default = "default_skew_error")]
    pub skew_error: String,
    /// Code for assigning a secondary IP another ENI holds without `AllowReassignment`
    /// (unverified; `InvalidIPAddress.InUse` or `InvalidParameterValue`).
    #[serde(default = "default_reassign_code")]
    pub reassign_conflict_code: String,
    /// What `AssociateAddress` does without `AllowReassociation` when the EIP is associated
    /// elsewhere: `allow` (today's documentation) or `deny` (`Resource.AlreadyAssociated`).
    #[serde(default = "default_reassociation")]
    pub eip_reassociation_default: String,
    /// Status of a token PUT carrying `X-Forwarded-For` (refused; code unverified).
    #[serde(default = "default_xff_status")]
    pub imds_forwarded_status: u16,
    /// Lifetime of instance-profile credentials served by IMDS.
    #[serde(default = "default_cred_lifetime")]
    pub role_credentials_lifetime_secs: u64,
    /// IMDS hands out new instance-profile credentials once the current ones have less
    /// than this left (AWS: "at least five minutes before the expiration").
    #[serde(default = "default_cred_refresh")]
    pub role_credentials_refresh_secs: u64,
    /// Reads that may show the state from before recent writes.
    #[serde(default)]
    pub consistency: Consistency,
    /// Private IPv4 addresses per ENI for instance types missing from the built-in table
    /// (`state::builtin_ip_limit`), or overriding it: `"t3.micro" = 2`.
    #[serde(default)]
    pub instance_types: BTreeMap<String, u32>,
    /// Optional token buckets per API class; absent = no built-in throttling.
    #[serde(default)]
    pub throttle: Option<Throttle>,
    #[serde(default)]
    pub vpcs: Vec<VpcConfig>,
    #[serde(default)]
    pub subnets: Vec<SubnetConfig>,
    #[serde(default)]
    pub instances: Vec<InstanceConfig>,
    #[serde(default)]
    pub elastic_ips: Vec<ElasticIpConfig>,
    #[serde(default)]
    pub route_tables: Vec<RouteTableConfig>,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub roles: Vec<RoleConfig>,
}

/// Eventual consistency, per read family: a read may show the state as it was this many
/// milliseconds ago (writes always act on the current state).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Consistency {
    /// DescribeInstances, DescribeInstanceAttribute.
    #[serde(default = "default_api_lag")]
    pub instances_ms: u64,
    /// DescribeNetworkInterfaces, DescribeNetworkInterfaceAttribute.
    #[serde(default = "default_api_lag")]
    pub network_interfaces_ms: u64,
    /// DescribeAddresses.
    #[serde(default = "default_api_lag")]
    pub addresses_ms: u64,
    /// DescribeRouteTables.
    #[serde(default = "default_api_lag")]
    pub route_tables_ms: u64,
    /// IMDS `local-ipv4s`, `public-ipv4s`, `ipv4-associations/` ("remapping is
    /// asynchronous", AssignPrivateIpAddresses documentation).
    #[serde(default = "default_imds_lag")]
    pub metadata_ms: u64,
}

impl Default for Consistency {
    fn default() -> Self {
        Consistency {
            instances_ms: default_api_lag(),
            network_interfaces_ms: default_api_lag(),
            addresses_ms: default_api_lag(),
            route_tables_ms: default_api_lag(),
            metadata_ms: default_imds_lag(),
        }
    }
}

/// Token buckets (capacity, refill per second), shared by the whole account as EC2's are
/// per account and region; each action has its own bucket.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Describe* actions.
    pub describe_capacity: u32,
    pub describe_refill_per_sec: f64,
    /// Mutating actions.
    pub mutate_capacity: u32,
    pub mutate_refill_per_sec: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VpcConfig {
    pub id: String,
    pub cidr: Ipv4Net,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetConfig {
    pub id: String,
    pub vpc: String,
    pub cidr: Ipv4Net,
    /// Defaults to `<region>a`.
    #[serde(default)]
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    pub id: String,
    /// The `Name` tag; also how the admin API, fault rules and the log name the instance.
    pub name: String,
    #[serde(default = "default_type")]
    pub instance_type: String,
    /// Overrides the instance type's private IPv4 limit per ENI.
    #[serde(default)]
    pub private_ips_per_eni: Option<u32>,
    /// Role of the instance profile (IMDS `iam/security-credentials/<role>`); none: no
    /// instance profile.
    #[serde(default)]
    pub iam_role: Option<String>,
    /// Source address the instance's IMDS requests come from on the shared listener.
    #[serde(default)]
    pub metadata_source: Option<IpAddr>,
    /// `required` (IMDSv2 only, the default here) or `optional` (v1 allowed).
    #[serde(default = "default_http_tokens")]
    pub http_tokens: String,
    /// `HttpPutResponseHopLimit` (1-64, AWS default 1).
    #[serde(default = "one")]
    pub hop_limit: u8,
    /// How many IP hops the instance's IMDS clients are away (1 = the instance itself,
    /// 2 = a container behind a bridge). Above `hop_limit` the token PUT is never answered.
    #[serde(default = "one")]
    pub metadata_hops: u8,
    #[serde(default = "default_ami")]
    pub image_id: String,
    /// The first ENI is the primary one (device index 0).
    pub enis: Vec<EniConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EniConfig {
    pub id: String,
    /// Lower-case, colon-separated, e.g. `02:66:00:00:00:01`.
    pub mac: String,
    pub subnet: String,
    pub private_ip: Ipv4Addr,
    #[serde(default)]
    pub secondary_ips: Vec<Ipv4Addr>,
    #[serde(default = "yes")]
    pub source_dest_check: bool,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticIpConfig {
    pub allocation_id: String,
    pub public_ip: Ipv4Addr,
    /// Associated at start with this ENI...
    #[serde(default)]
    pub eni: Option<String>,
    /// ...and this private IP of it (default: the ENI's primary).
    #[serde(default)]
    pub private_ip: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTableConfig {
    pub id: String,
    pub vpc: String,
    /// Owner; another account's table is invisible to this account's principals (reach it
    /// through a role of that account: `sts:AssumeRole`).
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub main: bool,
    /// Subnets explicitly associated.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// Besides the implicit `local` route for the VPC CIDR.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub destination: Ipv4Net,
    /// Exactly one target.
    #[serde(default)]
    pub eni: Option<String>,
    #[serde(default)]
    pub instance: Option<String>,
    /// `igw-…`, `vgw-…` (opaque ids, not modelled further).
    #[serde(default)]
    pub gateway: Option<String>,
}

/// An IAM user with long-term access keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    #[serde(default)]
    pub account_id: Option<String>,
    pub access_keys: Vec<AccessKeyConfig>,
    /// Identity policy (see [`Policy`]).
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    #[serde(default)]
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyConfig {
    pub id: String,
    pub secret: String,
}

/// An IAM role: instance profiles and `sts:AssumeRole` targets.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    pub name: String,
    #[serde(default)]
    pub account_id: Option<String>,
    /// Who may assume it: principal ARNs (`arn:aws:iam::111122223333:user/admin`,
    /// `…:role/node`, `…:root`), bare account ids, or `*`. Instance profiles need no entry.
    #[serde(default)]
    pub trust: Vec<String>,
    /// Required `ExternalId` when assuming the role.
    #[serde(default)]
    pub external_id: Option<String>,
    /// `MaxSessionDuration` (3600..=43200).
    #[serde(default = "default_max_session")]
    pub max_session_secs: u64,
    /// Identity policy (see [`Policy`]).
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    #[serde(default)]
    pub deny: Vec<String>,
}

/// An identity policy, action-level only: `allow` patterns (`ec2:Describe*`, `ec2:*`,
/// `*`; case-insensitive, `*`/`?` wildcards), then `deny` patterns override. Absent
/// `allow` means everything is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub allow: Option<Vec<String>>,
    pub deny: Vec<String>,
}

impl Policy {
    pub fn allows(&self, action: &str) -> bool {
        let m = |p: &String| {
            crate::aws::filter::wildcard(&p.to_ascii_lowercase(), &action.to_ascii_lowercase())
        };
        let allowed = self.allow.as_ref().is_none_or(|a| a.iter().any(m));
        allowed && !self.deny.iter().any(m)
    }
}

fn yes() -> bool {
    true
}
fn one() -> u8 {
    1
}
fn default_account() -> String {
    "111122223333".into()
}
fn default_skew() -> u64 {
    300
}
fn default_skew_error() -> String {
    "RequestExpired".into()
}
fn default_reassign_code() -> String {
    "InvalidIPAddress.InUse".into()
}
fn default_reassociation() -> String {
    "allow".into()
}
fn default_xff_status() -> u16 {
    403
}
fn default_cred_lifetime() -> u64 {
    21_600
}
fn default_cred_refresh() -> u64 {
    300
}
fn default_api_lag() -> u64 {
    500
}
fn default_imds_lag() -> u64 {
    1000
}
fn default_type() -> String {
    "t3.large".into()
}
fn default_http_tokens() -> String {
    "required".into()
}
fn default_ami() -> String {
    "ami-0c0ffee0c0ffee001".into()
}
fn default_max_session() -> u64 {
    3600
}

fn prefixed(id: &str, prefix: &str, what: &str) -> Result<(), String> {
    let ok = id
        .strip_prefix(prefix)
        .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(format!("{what} id {id:?} must look like {prefix}<hex>"))
    }
}

fn account(id: &str) -> Result<(), String> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("account id {id:?} must be 12 digits"))
    }
}

impl AwsWorld {
    pub fn zone_of(&self, s: &SubnetConfig) -> String {
        s.availability_zone
            .clone()
            .unwrap_or_else(|| format!("{}a", self.region))
    }

    pub fn validate(&self) -> Result<(), String> {
        let region_ok = !self.region.is_empty()
            && self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(format!("region {:?} is not a region name", self.region));
        }
        account(&self.account_id)?;
        if !matches!(self.skew_error.as_str(), "RequestExpired" | "AuthFailure") {
            return Err("skew_error must be RequestExpired or AuthFailure".into());
        }
        if !matches!(self.eip_reassociation_default.as_str(), "allow" | "deny") {
            return Err("eip_reassociation_default must be allow or deny".into());
        }
        if self.role_credentials_lifetime_secs < 900 {
            return Err("role_credentials_lifetime_secs must be at least 900".into());
        }
        let mut ids = HashSet::new();
        let mut unique = |id: &str| {
            if ids.insert(id.to_owned()) {
                Ok(())
            } else {
                Err(format!("id {id:?} is used twice"))
            }
        };
        for v in &self.vpcs {
            prefixed(&v.id, "vpc-", "VPC")?;
            unique(&v.id)?;
        }
        let mut subnet_cidrs: Vec<(&str, Ipv4Net)> = Vec::new();
        for s in &self.subnets {
            prefixed(&s.id, "subnet-", "subnet")?;
            unique(&s.id)?;
            let vpc = self
                .vpcs
                .iter()
                .find(|v| v.id == s.vpc)
                .ok_or_else(|| format!("subnet {}: no VPC {}", s.id, s.vpc))?;
            if !vpc.cidr.contains_net(&s.cidr) || s.cidr.len > 28 {
                return Err(format!(
                    "subnet {}: {} must be a /16../28 inside the VPC's {}",
                    s.id, s.cidr, vpc.cidr
                ));
            }
            if let Some((other, _)) = subnet_cidrs
                .iter()
                .find(|(v, c)| *v == s.vpc && c.overlaps(&s.cidr))
            {
                return Err(format!("subnet {} overlaps {other}", s.id));
            }
            subnet_cidrs.push((&s.vpc, s.cidr));
        }
        let mut macs = HashSet::new();
        let mut ips = HashSet::new();
        let mut sources = HashSet::new();
        let roles: HashSet<&str> = self.roles.iter().map(|r| r.name.as_str()).collect();
        for i in &self.instances {
            prefixed(&i.id, "i-", "instance")?;
            unique(&i.id)?;
            unique(&i.name)?;
            if i.enis.is_empty() {
                return Err(format!("instance {}: needs at least one ENI", i.name));
            }
            if !matches!(i.http_tokens.as_str(), "required" | "optional") {
                return Err(format!(
                    "instance {}: http_tokens must be required or optional",
                    i.name
                ));
            }
            if !(1..=64).contains(&i.hop_limit) || i.metadata_hops == 0 {
                return Err(format!(
                    "instance {}: hop_limit must be 1-64, metadata_hops at least 1",
                    i.name
                ));
            }
            if let Some(r) = &i.iam_role {
                if !roles.contains(r.as_str()) {
                    return Err(format!("instance {}: no role {r}", i.name));
                }
            }
            if let Some(src) = i.metadata_source {
                if !sources.insert(src) {
                    return Err(format!("metadata_source {src} is used twice"));
                }
            }
            let limit = crate::aws::state::ip_limit(self, i).ok_or_else(|| {
                format!(
                    "instance {}: unknown instance type {} (add it to [aws.instance_types])",
                    i.name, i.instance_type
                )
            })?;
            let mut zone = None;
            for e in &i.enis {
                prefixed(&e.id, "eni-", "ENI")?;
                unique(&e.id)?;
                let mac_ok = e.mac.len() == 17
                    && e.mac.split(':').count() == 6
                    && e.mac.split(':').all(|p| {
                        p.len() == 2
                            && p.bytes()
                                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    });
                if !mac_ok || !macs.insert(e.mac.clone()) {
                    return Err(format!(
                        "ENI {}: mac {:?} must be unique, lower-case aa:bb:cc:dd:ee:ff",
                        e.id, e.mac
                    ));
                }
                let s = self
                    .subnets
                    .iter()
                    .find(|s| s.id == e.subnet)
                    .ok_or_else(|| format!("ENI {}: no subnet {}", e.id, e.subnet))?;
                let z = self.zone_of(s);
                if zone.get_or_insert(z.clone()) != &z {
                    return Err(format!("instance {}: ENIs in two zones", i.name));
                }
                if 1 + e.secondary_ips.len() as u32 > limit {
                    return Err(format!(
                        "ENI {}: {} private IPs exceed {}'s limit of {limit}",
                        e.id,
                        1 + e.secondary_ips.len(),
                        i.instance_type
                    ));
                }
                for ip in std::iter::once(&e.private_ip).chain(&e.secondary_ips) {
                    crate::aws::state::check_usable(&s.cidr, *ip)
                        .map_err(|m| format!("ENI {}: {m}", e.id))?;
                    if !ips.insert(*ip) {
                        return Err(format!("private IP {ip} is held twice"));
                    }
                }
            }
        }
        let enis: Vec<&EniConfig> = self.instances.iter().flat_map(|i| &i.enis).collect();
        let mut publics = HashSet::new();
        let mut bound = HashSet::new();
        for a in &self.elastic_ips {
            prefixed(&a.allocation_id, "eipalloc-", "allocation")?;
            unique(&a.allocation_id)?;
            if !publics.insert(a.public_ip) {
                return Err(format!("public IP {} is listed twice", a.public_ip));
            }
            match (&a.eni, a.private_ip) {
                (None, Some(_)) => {
                    return Err(format!("{}: private_ip needs eni", a.allocation_id))
                }
                (Some(eni), p) => {
                    let e = enis
                        .iter()
                        .find(|e| &e.id == eni)
                        .ok_or_else(|| format!("{}: no ENI {eni}", a.allocation_id))?;
                    let p = p.unwrap_or(e.private_ip);
                    if p != e.private_ip && !e.secondary_ips.contains(&p) {
                        return Err(format!("{}: {p} is not on {eni}", a.allocation_id));
                    }
                    if !bound.insert(p) {
                        return Err(format!("{p} carries two Elastic IPs"));
                    }
                }
                (None, None) => {}
            }
        }
        for r in &self.route_tables {
            prefixed(&r.id, "rtb-", "route table")?;
            unique(&r.id)?;
            if let Some(a) = &r.account_id {
                account(a)?;
            }
            let vpc = self
                .vpcs
                .iter()
                .find(|v| v.id == r.vpc)
                .ok_or_else(|| format!("route table {}: no VPC {}", r.id, r.vpc))?;
            for s in &r.subnets {
                if !self.subnets.iter().any(|x| &x.id == s && x.vpc == r.vpc) {
                    return Err(format!("route table {}: no subnet {s} in {}", r.id, r.vpc));
                }
            }
            let mut dests = HashSet::from([vpc.cidr]);
            for rt in &r.routes {
                if !dests.insert(rt.destination) {
                    return Err(format!(
                        "route table {}: two routes for {}",
                        r.id, rt.destination
                    ));
                }
                let n = [&rt.eni, &rt.instance, &rt.gateway]
                    .iter()
                    .filter(|t| t.is_some())
                    .count();
                if n != 1 {
                    return Err(format!(
                        "route table {} {}: exactly one of eni, instance, gateway",
                        r.id, rt.destination
                    ));
                }
                if let Some(e) = &rt.eni {
                    if !enis.iter().any(|x| &x.id == e) {
                        return Err(format!("route table {}: no ENI {e}", r.id));
                    }
                }
                if let Some(i) = &rt.instance {
                    if !self.instances.iter().any(|x| &x.id == i) {
                        return Err(format!("route table {}: no instance {i}", r.id));
                    }
                }
            }
        }
        for v in &self.vpcs {
            let mains = self
                .route_tables
                .iter()
                .filter(|r| r.vpc == v.id && r.main)
                .count();
            if mains > 1 {
                return Err(format!("VPC {}: more than one main route table", v.id));
            }
        }
        let mut keys = HashSet::new();
        for u in &self.users {
            if let Some(a) = &u.account_id {
                account(a)?;
            }
            for k in &u.access_keys {
                let ok = k.id.len() >= 16
                    && k.id.starts_with("AKIA")
                    && k.id
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
                if !ok || !keys.insert(k.id.clone()) || k.secret.len() < 16 {
                    return Err(format!(
                        "user {}: access key ids must be unique AKIA[A-Z0-9]{{12,}}, secrets at least 16 characters",
                        u.name
                    ));
                }
            }
        }
        for r in &self.roles {
            if let Some(a) = &r.account_id {
                account(a)?;
            }
            if !(3600..=43_200).contains(&r.max_session_secs) {
                return Err(format!(
                    "role {}: max_session_secs must be 3600..=43200",
                    r.name
                ));
            }
        }
        Ok(())
    }
}
