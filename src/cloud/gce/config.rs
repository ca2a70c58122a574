//! GCE's own parameters, side by side: their docs (meta-data, README, man page), the typed
//! `Config` the backend gets and the syntax checks. They apply to cloud=gce (`HERE`) and
//! their syntax is checked whatever the cloud (cloud=auto is resolved later, on the node).

use crate::cloud::config::Get;
use crate::ocf::metadata::{Content, ParamDef, Scope, Where};
use crate::ocf::{parse_bool, Exit};

/// Where GCE's own parameters apply: cloud=gce, every mode.
pub const HERE: Scope = Scope::Only(&[Where::cloud("gce", "GCE")]);

const ALIAS_RANGE_NAME: ParamDef = ParamDef {
    order: 90,
    example: "vips",
    scope: HERE,
    ..ParamDef::new(
        "alias_range_name",
        Content::String,
        None,
        "secondary range of the VIP",
        "The name of the subnet's secondary IP range the VIP belongs to (the alias \
     is then added with subnetworkRangeName). Leave unset when the VIP is in the \
     subnet's primary range.",
    )
};

const PEERS: ParamDef = ParamDef {
    order: 100,
    example: "node-a, node-b",
    reloadable: true,
    scope: HERE,
    ..ParamDef::new(
        "peers",
        Content::String,
        None,
        "instance names of the other nodes",
        "Instance names (comma or space separated) where start looks for the \
         current holder of the VIP, in any zone of this node's region. Default: the instances \
         of the region that carry peer_label, or every instance of the region when \
         peer_label is unset too (one aggregatedList call per start; monitor never lists).",
    )
};

const PEER_LABEL: ParamDef = ParamDef {
    order: 110,
    example: "cluster=db1",
    reloadable: true,
    scope: HERE,
    ..ParamDef::new(
        "peer_label",
        Content::String,
        None,
        "label that marks the cluster's instances",
        "key=value, e.g. cluster=db1: the instances carrying this label are where \
         start looks for the current holder, so no host list is needed.",
    )
};

const ACCESS_CONFIG_NAME: ParamDef = ParamDef {
    order: 130,
    example: "external-nat",
    reloadable: true,
    scope: HERE,
    ..ParamDef::new(
        "access_config_name",
        Content::String,
        Some("External NAT"),
        "name of the access config start creates",
        "The name given to the access config that carries public_ip. Existing \
         access configs are always removed by their real name, whatever it is.",
    )
};

const RESTORE_EPHEMERAL_IP: ParamDef = ParamDef {
    order: 140,
    with: Some("public_ip"),
    example: "true",
    reloadable: true,
    scope: HERE,
    ..ParamDef::new(
        "restore_ephemeral_ip",
        Content::Boolean,
        Some("false"),
        "new ephemeral external IP for the node public_ip leaves",
        "GCE allows one access config per NIC, so the node that \
         takes public_ip loses its ephemeral external IP, and the node it leaves has none \
         afterwards: it keeps no direct internet access. When true, start gives the node it \
         took public_ip from a new ephemeral external IP (an access config named \
         access_config_name), after public_ip works here and never delaying it; a failure \
         there is a warning. GCE released the old ephemeral address with its access \
         config, so the new one may be another address. Off by default: an \
         external IP costs money and exposes the passive node; Cloud NAT gives nodes \
         without one their outbound access.",
    )
};

pub const PARAMS: &[ParamDef] = &[
    ALIAS_RANGE_NAME,
    PEERS,
    PEER_LABEL,
    ACCESS_CONFIG_NAME,
    RESTORE_EPHEMERAL_IP,
    super::fim::BACKEND_SERVICE,
];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub alias_range_name: Option<String>,
    pub peers: Vec<String>,
    pub peer_label: Option<(String, String)>,
    pub access_config_name: String,
    pub restore_ephemeral_ip: bool,
    /// mode=fim: the backend service whose haPolicy leader follows the VIP.
    pub backend_service: Option<String>,
}

/// GCE resource names: RFC 1035 labels of at most 63 characters.
pub fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !s.ends_with('-')
}

impl Config {
    pub fn parse(get: &Get) -> Result<Config, Exit> {
        let alias_range_name = match get(ALIAS_RANGE_NAME.name) {
            None => None,
            Some(v) if is_name(v) => Some(v.to_owned()),
            Some(v) => return Err(Exit::invalid(
                ALIAS_RANGE_NAME.name,
                v,
                "a GCE name: lowercase letters, digits and '-', starting with a letter, at most 63",
            )),
        };
        let mut peers = Vec::new();
        if let Some(v) = get(PEERS.name) {
            for p in v
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|p| !p.is_empty())
            {
                if !is_name(p) {
                    return Err(Exit::invalid(
                        PEERS.name,
                        v,
                        format!("{p:?} is not an instance name"),
                    ));
                }
                peers.push(p.to_owned());
            }
        }
        let peer_label = match get(PEER_LABEL.name) {
            None => None,
            Some(v) => match v.split_once('=') {
                Some((k, val))
                    if is_name(k.trim())
                        && val.trim().chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
                        }) =>
                {
                    Some((k.trim().to_owned(), val.trim().to_owned()))
                }
                _ => {
                    return Err(Exit::invalid(
                        PEER_LABEL.name,
                        v,
                        "expected key=value with a GCE label key and value, e.g. cluster=db1",
                    ))
                }
            },
        };
        let access_config_name = match get(ACCESS_CONFIG_NAME.name).or(ACCESS_CONFIG_NAME.default) {
            Some(v) if v.len() <= 63 => v.to_owned(),
            Some(v) => {
                return Err(Exit::invalid(
                    ACCESS_CONFIG_NAME.name,
                    v,
                    "at most 63 characters",
                ))
            }
            None => String::new(),
        };
        let restore_ephemeral_ip =
            match get(RESTORE_EPHEMERAL_IP.name).or(RESTORE_EPHEMERAL_IP.default) {
                None => false,
                Some(v) => parse_bool(RESTORE_EPHEMERAL_IP.name, v)?,
            };
        if restore_ephemeral_ip && get("public_ip").is_none() {
            return Err(Exit::configured(
                "restore_ephemeral_ip=true without public_ip: no external IP moves",
            ));
        }
        Ok(Config {
            alias_range_name,
            peers,
            peer_label,
            access_config_name,
            restore_ephemeral_ip,
            backend_service: super::fim::parse(get)?,
        })
    }
}
