//! OCI's own parameters, side by side: their docs (meta-data, README, man page), the typed
//! `Config` the backend gets and the syntax checks. They apply to cloud=oci (`HERE`) and their
//! syntax is checked whatever the cloud (cloud=auto is resolved later, on the node).

use crate::cloud::config::{parse_endpoint, Get};
use crate::ocf::metadata::{Content, ParamDef, Scope, Where};
use crate::ocf::Exit;

/// Where OCI's own parameters apply: cloud=oci, every mode.
pub const HERE: Scope = Scope::Only(&[Where::cloud("oci", "OCI")]);

const OCI_PROFILE: ParamDef = ParamDef {
    order: 160,
    example: "cloudvip",
    scope: HERE,
    ..ParamDef::new(
        "oci_profile",
        Content::String,
        Some("DEFAULT"),
        "profile of the credentials file",
        "The [profile] of the credentials file to use; keys missing there are \
     taken from [DEFAULT].",
    )
};

const VNIC_ID: ParamDef = ParamDef {
    order: 170,
    example: "ocid1.vnic.oc1.iad.abcd",
    scope: HERE,
    ..ParamDef::new(
        "vnic_id",
        Content::String,
        None,
        "the VNIC that gets the VIP",
        "The OCID of the VNIC to assign the VIP to. Default: the VNIC whose MAC \
     address is the local nic's, as the instance metadata service lists them (never just \
     the first VNIC).",
    )
};

const AUTH_ENDPOINT: ParamDef = ParamDef {
    order: 190,
    example: "https://auth.example",
    scope: HERE,
    ..ParamDef::new(
        "auth_endpoint",
        Content::String,
        None,
        "federation endpoint for instance principals",
        "The identity federation host that turns the instance certificate into a \
     session token, default https://auth.<region>.<realm domain>.",
    )
};

pub const PARAMS: &[ParamDef] = &[OCI_PROFILE, VNIC_ID, AUTH_ENDPOINT];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub oci_profile: String,
    pub vnic_id: Option<String>,
    pub auth_endpoint: Option<String>,
}

/// `ocid1.<kind>.<realm>.<region>.<id>`, as OCI writes identifiers.
pub fn is_ocid(s: &str, kind: &str) -> bool {
    s.strip_prefix("ocid1.")
        .and_then(|r| r.strip_prefix(kind))
        .is_some_and(|r| {
            r.starts_with('.')
                && r.split('.').count() >= 4
                && r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
        })
}

impl Config {
    pub fn parse(get: &Get) -> Result<Config, Exit> {
        let oci_profile = match get(OCI_PROFILE.name).or(OCI_PROFILE.default) {
            Some(v) if !v.contains([']', '[', '\n']) => v.to_owned(),
            Some(v) => return Err(Exit::invalid(OCI_PROFILE.name, v, "a profile name")),
            None => String::new(),
        };
        let vnic_id = match get(VNIC_ID.name) {
            None => None,
            Some(v) if is_ocid(v, "vnic") => Some(v.to_owned()),
            Some(v) => return Err(Exit::invalid(VNIC_ID.name, v, "a VNIC OCID (ocid1.vnic.…)")),
        };
        let auth_endpoint = get(AUTH_ENDPOINT.name)
            .map(|v| parse_endpoint(AUTH_ENDPOINT.name, v))
            .transpose()?;
        Ok(Config {
            oci_profile,
            vnic_id,
            auth_endpoint,
        })
    }
}
