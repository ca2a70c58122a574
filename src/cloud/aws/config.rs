//! The AWS backend's own parameters as a typed `Config`, checked before anything happens
//! (issue 13). Parsed from plain values (`get(name)`: trimmed, `None` when unset or empty)
//! so that it does not depend on how the agent's parameter table is built; the names are
//! the constants below. Three modes, one per Debian anchor whose users we serve:
//!
//! - `secondary_ip` (awsvip): the VIP is a secondary private IP of the ENI whose MAC is
//!   the nic's, moved with `AssignPrivateIpAddresses AllowReassignment=true`; an Elastic IP
//!   (`public_ip`) on the VIP follows it, and is associated when it does not.
//! - `eip` (awseip): only the Elastic IP moves, `ip` itself, to the primary private IP of
//!   that ENI; the node needs nothing of it (EC2's NAT delivers to the primary address:
//!   `local_mode=none`).
//! - `route` (aws-vpc-move-ip): an overlay IP outside the VPC, routed by a `/32` route in
//!   each of `route_tables` to that ENI (`ReplaceRoute`), optionally through a role of the
//!   account that owns the tables (`routing_table_role`, resource-agents PR #1454).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use super::query::Eip;
use crate::ocf::metadata::{Content, ParamDef, Scope, Where};

/// The shared `mode` parameter (its AWS values are `Mode::ALL`).
pub const MODE: &str = "mode";
pub const PUBLIC_IP: &str = "public_ip";
pub const ALLOCATION_ID: &str = "allocation_id";
pub const ROUTE_TABLES: &str = "route_tables";
pub const ROUTING_TABLE_ROLE: &str = "routing_table_role";
pub const EXTERNAL_ID: &str = "external_id";
pub const REGION: &str = "aws_region";
pub const CREDENTIALS: &str = "credentials";
pub const PROFILE: &str = "aws_profile";
pub const API_ENDPOINT: &str = "api_endpoint";
pub const STS_ENDPOINT: &str = "sts_endpoint";
pub const METADATA_URL: &str = "metadata_url";

/// Where AWS's own parameters apply: cloud=aws, in every mode or in some.
const EVERY_MODE: Scope = Scope::Only(&[Where::cloud("aws", "AWS")]);
const ROUTE: Scope = Scope::Only(&[Where {
    cloud: "aws",
    label: "AWS",
    modes: &["route"],
}]);
/// AWS's own parameters' documentation (meta-data, README, man page); `public_ip`,
/// `credentials`, `api_endpoint`, `metadata_url` and `mode` are the shared ones.
pub const PARAMS: &[ParamDef] = &[
    ParamDef {
        order: 125,
        scope: EVERY_MODE,
        example: "eipalloc-0c10d00000000000f1",
        ..ParamDef::new(
            ALLOCATION_ID,
            Content::String,
            None,
            "allocation id of the Elastic IP",
            "The Elastic IP's allocation id (eipalloc-…): public_ip's, or with mode=eip \
             ip's. Default: looked up from the address (DescribeAddresses).",
        )
    },
    ParamDef {
        order: 165,
        scope: EVERY_MODE,
        with: Some("credentials"),
        example: "ha",
        ..ParamDef::new(
            PROFILE,
            Content::String,
            Some("default"),
            "profile of the credentials file",
            "The [profile] of the AWS shared credentials file (aws_access_key_id, \
             aws_secret_access_key, optional aws_session_token).",
        )
    },
    ParamDef {
        order: 173,
        scope: ROUTE,
        example: "rtb-0c10d0000000000c1",
        ..ParamDef::new(
            ROUTE_TABLES,
            Content::String,
            None,
            "route tables of the overlay IP",
            "Required. The route tables (rtb-…, separated by commas) whose ip/32 route start \
             points at this node's ENI; the route must exist in each. stop leaves the routes.",
        )
    },
    ParamDef {
        order: 175,
        scope: ROUTE,
        example: "arn:aws:iam::444455556666:role/rtb-editor",
        ..ParamDef::new(
            ROUTING_TABLE_ROLE,
            Content::String,
            None,
            "role for the route tables",
            "An IAM role ARN assumed (STS AssumeRole) for the route tables' calls, e.g. when \
             another account owns them (as aws-vpc-move-ip's routing_table_role).",
        )
    },
    ParamDef {
        order: 176,
        scope: ROUTE,
        with: Some("routing_table_role"),
        example: "ha-cluster-1",
        ..ParamDef::new(
            EXTERNAL_ID,
            Content::String,
            None,
            "ExternalId of routing_table_role",
            "The ExternalId the role's trust policy asks for.",
        )
    },
    ParamDef {
        order: 177,
        scope: EVERY_MODE,
        example: "eu-west-1",
        ..ParamDef::new(
            REGION,
            Content::String,
            None,
            "region of the EC2 API",
            "Default: the instance identity document's region (IMDS).",
        )
    },
    ParamDef {
        order: 185,
        scope: ROUTE,
        with: Some("routing_table_role"),
        example: "https://sts.eu-west-1.amazonaws.com/",
        ..ParamDef::new(
            STS_ENDPOINT,
            Content::String,
            None,
            "STS endpoint",
            "The STS endpoint, default the regional https://sts.<region>.amazonaws.com/. \
             Must be https:// (plain http:// only for a loopback address).",
        )
    },
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    SecondaryIp,
    ElasticIp,
    Route,
}

impl Mode {
    pub const ALL: [(&'static str, Mode); 3] = [
        ("secondary_ip", Mode::SecondaryIp),
        ("eip", Mode::ElasticIp),
        ("route", Mode::Route),
    ];

    pub fn name(self) -> &'static str {
        Mode::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(n, _)| n)
    }

    pub fn from_name(v: &str) -> Option<Mode> {
        Mode::ALL.iter().find(|(n, _)| *n == v).map(|(_, m)| *m)
    }

    /// What `mode=<name>` means on AWS (the `mode` parameter's documentation).
    pub fn doc(self) -> &'static str {
        match self {
            Mode::SecondaryIp => {
                "ip is a secondary private IP of the ENI whose MAC is nic's, moved with \
                 AssignPrivateIpAddresses (AllowReassignment) as awsvip does; an Elastic IP on it \
                 (public_ip) follows it."
            }
            Mode::ElasticIp => {
                "ip is an Elastic IP, associated with the primary private IP of that ENI \
                 (AssociateAddress with AllowReassociation) as awseip does; the node needs \
                 nothing of it (EC2's NAT delivers it to the primary address): local_mode=none."
            }
            Mode::Route => {
                "ip is an overlay IP outside the VPC, routed by its /32 route in each of \
                 route_tables to that ENI (ReplaceRoute), as aws-vpc-move-ip does; the route must \
                 exist and the ENI's source/destination check must be off."
            }
        }
    }
}

/// The Elastic IP to move: its address (what IMDS shows, so monitor can check it for
/// free) and, when given, its allocation id (which must then be that address's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElasticIp {
    pub public_ip: Ipv4Addr,
    pub allocation_id: Option<String>,
}

impl ElasticIp {
    /// How DescribeAddresses asks for it.
    pub fn query(&self) -> Eip {
        match &self.allocation_id {
            Some(a) => Eip::Allocation(a.clone()),
            None => Eip::Public(self.public_ip),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The VIP (route mode: the overlay IP; eip mode: the Elastic IP, also `eip`).
    pub ip: Ipv4Addr,
    pub mode: Mode,
    pub eip: Option<ElasticIp>,
    pub route_tables: Vec<String>,
    /// AssumeRole for the route tables' calls.
    pub routing_table_role: Option<String>,
    pub external_id: Option<String>,
    /// Default: the instance identity document's.
    pub region: Option<String>,
    /// A shared credentials file; default: the environment's keys, else the instance
    /// profile.
    pub credentials: Option<PathBuf>,
    pub profile: String,
    pub api_endpoint: Option<String>,
    pub sts_endpoint: Option<String>,
    pub metadata_url: Option<String>,
}

fn bad(name: &str, value: &str, why: impl std::fmt::Display) -> String {
    format!("invalid {name}={value:?}: {why}")
}

/// `prefix-` and lower-case hex digits, as EC2 writes resource ids (8 of them in old
/// accounts, 17 today; up to 32 accepted).
pub fn is_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|h| {
            (8..=32).contains(&h.len())
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// `eu-west-1`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-3`.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 4
        && parts[0].len() == 2
        && parts
            .iter()
            .take(parts.len() - 1)
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `arn:<partition>:iam::<12 digits>:role/<path/name>` (IAM's role ARN).
fn is_role_arn(s: &str) -> bool {
    let p: Vec<&str> = s.splitn(6, ':').collect();
    p.len() == 6
        && p[0] == "arn"
        && p[1].starts_with("aws")
        && p[2] == "iam"
        && p[3].is_empty()
        && p[4].len() == 12
        && p[4].bytes().all(|b| b.is_ascii_digit())
        && p[5]
            .strip_prefix("role/")
            .is_some_and(|n| !n.is_empty() && n.len() <= 512 && n.bytes().all(role_char))
}

fn role_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b)
}

/// STS's ExternalId: 2-1224 characters of `[\w+=,.@:/-]`.
fn is_external_id(s: &str) -> bool {
    (2..=1224).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b))
}

/// An endpoint must be https://, plain http:// only to a loopback or link-local address
/// (the emulator, an IMDS): credentials never cross a network in clear text.
fn endpoint(name: &str, v: &str, plain_ok: &dyn Fn(&str) -> bool) -> Result<String, String> {
    let rest = if let Some(r) = v.strip_prefix("https://") {
        r
    } else if let Some(r) = v.strip_prefix("http://") {
        if !plain_ok(r) {
            return Err(bad(
                name,
                v,
                "must be https:// (http:// only to a loopback address)",
            ));
        }
        r
    } else {
        return Err(bad(name, v, "must be an https:// URL"));
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(name, v, "not a URL with a host"));
    }
    Ok(v.to_owned())
}

fn host_ip(rest: &str) -> Option<IpAddr> {
    let host = rest.split(['/', '?']).next()?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.split(']').next()?,
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host.parse().ok()
}

fn loopback(rest: &str) -> bool {
    host_ip(rest).is_some_and(|ip| ip.is_loopback())
}

/// IMDS is plain HTTP by design: its link-local address, or loopback (tests).
fn metadata_host(rest: &str) -> bool {
    host_ip(rest)
        .is_some_and(|ip| ip.is_loopback() || matches!(ip, IpAddr::V4(v4) if v4.is_link_local()))
}

/// AWS's own parameters, syntax-checked: what the agent checks whatever the cloud
/// (cloud=auto is resolved later, on the node), before the mode and `ip` are known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Own {
    pub allocation_id: Option<String>,
    pub route_tables: Vec<String>,
    pub routing_table_role: Option<String>,
    pub external_id: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub sts_endpoint: Option<String>,
}

impl Own {
    pub fn parse(get: &dyn Fn(&str) -> Option<String>) -> Result<Own, String> {
        let allocation_id = get(ALLOCATION_ID);
        if let Some(a) = &allocation_id {
            if !is_id(a, "eipalloc") {
                return Err(bad(
                    ALLOCATION_ID,
                    a,
                    "an Elastic IP allocation id, eipalloc-…",
                ));
            }
        }
        let route_tables: Vec<String> = get(ROUTE_TABLES)
            .map(|v| {
                v.split([',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(t) = route_tables.iter().find(|t| !is_id(t, "rtb")) {
            return Err(bad(
                ROUTE_TABLES,
                t,
                "route table ids, rtb-…, separated by commas",
            ));
        }
        let mut seen: Vec<&String> = Vec::new();
        for t in &route_tables {
            if seen.contains(&t) {
                return Err(bad(ROUTE_TABLES, t, "listed twice"));
            }
            seen.push(t);
        }
        let routing_table_role = get(ROUTING_TABLE_ROLE);
        if let Some(r) = &routing_table_role {
            if !is_role_arn(r) {
                return Err(bad(
                    ROUTING_TABLE_ROLE,
                    r,
                    "an IAM role ARN, arn:aws:iam::<account>:role/<name>",
                ));
            }
        }
        let external_id = get(EXTERNAL_ID);
        if let Some(x) = external_id.as_ref().filter(|x| !is_external_id(x)) {
            return Err(bad(
                EXTERNAL_ID,
                x,
                "2-1224 characters of letters, digits and +=,.@:/_-",
            ));
        }
        let region = get(REGION);
        if let Some(r) = &region {
            if !is_region(r) {
                return Err(bad(REGION, r, "an AWS region name such as eu-west-1"));
            }
        }
        let profile = get(PROFILE);
        if let Some(p) = &profile {
            if !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.@+".contains(&b))
            {
                return Err(bad(PROFILE, p, "a profile name of the credentials file"));
            }
        }
        let sts_endpoint = get(STS_ENDPOINT)
            .map(|v| endpoint(STS_ENDPOINT, &v, &loopback))
            .transpose()?;
        Ok(Own {
            allocation_id,
            route_tables,
            routing_table_role,
            external_id,
            region,
            profile,
            sts_endpoint,
        })
    }
}

/// The shared parameters AWS reads (`cloud::config::Shared`'s, as plain values).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SharedValues {
    pub public_ip: Option<String>,
    pub credentials: Option<String>,
    pub api_endpoint: Option<String>,
    pub metadata_url: Option<String>,
}

impl Config {
    /// The configuration for VIP `ip`, every value checked; the message names the
    /// parameter and what it accepts.
    pub fn parse(ip: IpAddr, get: &dyn Fn(&str) -> Option<String>) -> Result<Config, String> {
        let mode = match get(MODE) {
            None => Mode::SecondaryIp,
            Some(v) => Mode::from_name(&v)
                .ok_or_else(|| bad(MODE, &v, "one of secondary_ip, eip, route"))?,
        };
        let shared = SharedValues {
            public_ip: get(PUBLIC_IP),
            credentials: get(CREDENTIALS),
            api_endpoint: get(API_ENDPOINT),
            metadata_url: get(METADATA_URL),
        };
        Config::new(ip, mode, &Own::parse(get)?, &shared)
    }

    /// The configuration of `mode` for VIP `ip` from the checked parameters: what only
    /// makes sense together is checked here. (Which parameters apply to which mode is the
    /// agent's check, from their `scope`.)
    pub fn new(ip: IpAddr, mode: Mode, own: &Own, shared: &SharedValues) -> Result<Config, String> {
        let IpAddr::V4(ip) = ip else {
            return Err(format!(
                "ip={ip}: cloud=aws moves IPv4 addresses only (secondary private IPs, Elastic \
                 IPs and overlay routes are IPv4 here)"
            ));
        };
        let public_ip = shared
            .public_ip
            .as_ref()
            .map(|v| {
                v.parse::<Ipv4Addr>().map_err(|_| {
                    bad(
                        PUBLIC_IP,
                        v,
                        "the Elastic IP's IPv4 address (e.g. 203.0.113.10)",
                    )
                })
            })
            .transpose()?;
        // eip mode moves the Elastic IP alone: it is the resource's address, `ip`, and
        // nothing the node needs (EC2's one-to-one NAT delivers it to the primary address).
        let public_ip = match (mode, public_ip) {
            (Mode::ElasticIp, Some(p)) if p != ip => {
                return Err(bad(
                    PUBLIC_IP,
                    &p.to_string(),
                    format!("with {MODE}=eip the Elastic IP is ip={ip}; leave public_ip unset"),
                ))
            }
            (Mode::ElasticIp, _) => Some(ip),
            (Mode::Route, Some(p)) => {
                return Err(bad(
                    PUBLIC_IP,
                    &p.to_string(),
                    format!("not used with {MODE}=route (an overlay IP has no Elastic IP)"),
                ))
            }
            (_, p) => p,
        };
        let eip = public_ip.map(|public_ip| ElasticIp {
            public_ip,
            allocation_id: own.allocation_id.clone(),
        });
        if let (None, Some(a)) = (&eip, &own.allocation_id) {
            return Err(bad(
                ALLOCATION_ID,
                a,
                "needs public_ip (the address it allocates)",
            ));
        }
        if mode == Mode::Route && own.route_tables.is_empty() {
            return Err(format!(
                "{MODE}=route needs route_tables (the route tables whose {ip}/32 route follows the VIP)"
            ));
        }
        if let (Some(x), None) = (&own.external_id, &own.routing_table_role) {
            return Err(bad(
                EXTERNAL_ID,
                x,
                "needs routing_table_role (the role that asks for it)",
            ));
        }
        let credentials = shared.credentials.as_ref().map(PathBuf::from);
        if let Some(p) = &credentials {
            if !p.is_absolute() {
                return Err(bad(
                    CREDENTIALS,
                    &p.display().to_string(),
                    "an absolute path",
                ));
            }
        }
        let profile = match &own.profile {
            None => "default".to_owned(),
            Some(p) if credentials.is_none() => {
                return Err(bad(
                    PROFILE,
                    p,
                    "needs credentials (the file the profile is in)",
                ))
            }
            Some(p) => p.clone(),
        };
        let ep = |name: &str, v: &Option<String>, ok: &dyn Fn(&str) -> bool| {
            v.as_ref().map(|v| endpoint(name, v, ok)).transpose()
        };
        Ok(Config {
            ip,
            mode,
            eip,
            route_tables: own.route_tables.clone(),
            routing_table_role: own.routing_table_role.clone(),
            external_id: own.external_id.clone(),
            region: own.region.clone(),
            credentials,
            profile,
            api_endpoint: ep(API_ENDPOINT, &shared.api_endpoint, &loopback)?,
            sts_endpoint: own.sts_endpoint.clone(),
            metadata_url: ep(METADATA_URL, &shared.metadata_url, &metadata_host)?,
        })
    }

    /// The same from `name=value` pairs (a test, `cloudvip --param`); a later pair does
    /// not override an earlier one.
    pub fn from_pairs(ip: IpAddr, pairs: &[(&str, &str)]) -> Result<Config, String> {
        Config::parse(ip, &|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    /// The route's destination: the VIP as a host route.
    pub fn destination(&self) -> String {
        format!("{}/32", self.ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_pairs("10.0.1.100".parse().unwrap(), pairs)
    }

    #[test]
    fn every_aws_parameter_is_documented_once() {
        let shared = [PUBLIC_IP, CREDENTIALS, API_ENDPOINT, METADATA_URL, MODE];
        let all: Vec<&ParamDef> = crate::cloud::config::params().collect();
        for p in PARAMS {
            assert_eq!(all.iter().filter(|o| o.name == p.name).count(), 1, "{}", p.name);
            assert_eq!(all.iter().filter(|o| o.order == p.order).count(), 1, "{}", p.name);
            assert!(!shared.contains(&p.name), "{} is shared", p.name);
        }
        for name in shared {
            assert!(all.iter().any(|p| p.name == name), "{name} is shared");
        }
    }

    #[test]
    fn defaults_and_modes() {
        let c = parse(&[]).unwrap();
        assert_eq!(
            (c.mode, c.eip.clone(), c.profile.as_str()),
            (Mode::SecondaryIp, None, "default")
        );
        let eip =
            |pairs: &[(&str, &str)]| Config::from_pairs("203.0.113.11".parse().unwrap(), pairs);
        assert!(eip(&[(MODE, "eip"), (ALLOCATION_ID, "eipalloc-0C10")]).is_err());
        let c = eip(&[(MODE, "eip"), (ALLOCATION_ID, "eipalloc-0c10d0000000000f2")]).unwrap();
        assert_eq!(
            c.eip.unwrap().query(),
            Eip::Allocation("eipalloc-0c10d0000000000f2".into())
        );
        let c = eip(&[(MODE, "eip"), (PUBLIC_IP, "203.0.113.11")]).unwrap();
        assert_eq!(c.eip.unwrap().query(), Eip::Public(c.ip));
        let e = eip(&[(MODE, "eip"), (PUBLIC_IP, "203.0.113.12")]).unwrap_err();
        assert!(
            e.contains("public_ip") && e.contains("ip=203.0.113.11"),
            "{e}"
        );
        let c = parse(&[
            (MODE, "route"),
            (ROUTE_TABLES, "rtb-0c10d0000000000c1, rtb-0c10d0000000000c2"),
            (
                ROUTING_TABLE_ROLE,
                "arn:aws:iam::444455556666:role/rtb-editor",
            ),
            (EXTERNAL_ID, "ha-cluster-1"),
        ])
        .unwrap();
        assert_eq!(
            c.route_tables,
            ["rtb-0c10d0000000000c1", "rtb-0c10d0000000000c2"]
        );
        assert_eq!(c.destination(), "10.0.1.100/32");
    }

    #[test]
    fn refusals_name_the_parameter() {
        for (pairs, word) in [
            (&[(MODE, "vip")][..], "mode"),
            (
                &[(PUBLIC_IP, "eipalloc-0c10d0000000000f2")][..],
                "public_ip",
            ),
            (
                &[(ALLOCATION_ID, "eipalloc-0c10d0000000000f2")][..],
                "allocation_id",
            ),
            (&[(MODE, "route")][..], "route_tables"),
            (
                &[(MODE, "route"), (ROUTE_TABLES, "rtb-1")][..],
                "route_tables",
            ),
            (
                &[
                    (MODE, "route"),
                    (ROUTE_TABLES, "rtb-0c10d0000000000c1,rtb-0c10d0000000000c1"),
                ][..],
                "twice",
            ),
            (
                &[
                    (MODE, "route"),
                    (ROUTE_TABLES, "rtb-0c10d0000000000c1"),
                    (PUBLIC_IP, "203.0.113.11"),
                ][..],
                "public_ip",
            ),
            (
                &[
                    (MODE, "route"),
                    (ROUTE_TABLES, "rtb-0c10d0000000000c1"),
                    (ROUTING_TABLE_ROLE, "rtb-editor"),
                ][..],
                "routing_table_role",
            ),
            (&[(EXTERNAL_ID, "x1")][..], "external_id"),
            (&[(REGION, "Europe")][..], "aws_region"),
            (&[(PROFILE, "ha")][..], "aws_profile"),
            (&[(CREDENTIALS, "creds")][..], "credentials"),
            (
                &[(API_ENDPOINT, "http://ec2.eu-west-1.amazonaws.com/")][..],
                "api_endpoint",
            ),
            (&[(API_ENDPOINT, "ftp://x/")][..], "api_endpoint"),
            (&[(METADATA_URL, "http://10.0.0.1/")][..], "metadata_url"),
        ] {
            let e = parse(pairs).unwrap_err();
            assert!(e.contains(word), "{pairs:?}: {e}");
        }
        assert!(Config::parse("fd00::1".parse().unwrap(), &|_| None).is_err());
        assert!(parse(&[
            (API_ENDPOINT, "http://127.0.0.1:9/"),
            (METADATA_URL, "http://169.254.169.254/")
        ])
        .is_ok());
        assert!(parse(&[(REGION, "us-gov-west-1")]).is_ok());
        assert!(parse(&[(REGION, "cn-north-1")]).is_ok());
    }
}
