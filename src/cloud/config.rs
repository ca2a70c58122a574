//! The cloud side of the parameters: the parameters every backend shares (credentials,
//! endpoints, proxy, CA, public_ip's syntax, `mode`) and each backend's own (its
//! `config.rs`, listed by its `Backend`), parsed after the common ones by `Params::parse`.
//! Syntax only, and every backend's whatever the cloud, because cloud=auto is resolved
//! later on the node; which parameters apply to the cloud (their `Scope`) is decided once
//! it is known. A backend then gets its own config and `Shared`, never `Params`.
//! Depends on nothing of the agent but `ocf` and the registry, so `params.rs` can use it
//! without a circle.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use super::registry::{Backend, BackendConfig};
use super::{gce, oci, BACKENDS};
use crate::ocf::metadata::{Content, ParamDef, Scope};
use crate::ocf::Exit;

pub use super::registry::CloudKind;

/// A parameter's value: trimmed, `None` when unset or empty (as in shell agents).
pub type Get<'a> = dyn Fn(&str) -> Option<&'a str> + 'a;

// Two VIPs cannot share one public address: each start would take it from the other.
const PUBLIC_IP: ParamDef = ParamDef {
    scope: Scope::Clouds,
    unique: true,
    order: 120,
    example: "vip-ext",
    ..ParamDef::new(
        "public_ip",
        Content::String,
        None,
        "Public address that follows the VIP",
        "GCE: a reserved static external address (its name in this region, or the address \
     itself) that start attaches as this NIC's access config, detaching it from the \
     instance that holds it; an ephemeral external IP on this NIC is replaced (GCE allows \
     one access config per NIC). OCI: a reserved public IP (the address or its OCID) that \
     start assigns to the VIP's private IP and waits for ASSIGNED; it normally follows \
     the private IP by itself when the VIP moves. stop leaves it attached in both clouds; \
     the next start elsewhere moves it, so it never dangles unassigned. AWS \
     (mode=secondary_ip): an Elastic IP (its address) associated with the VIP; it follows \
     the VIP when it moves, start associates it when it did not, stop disassociates it.",
    )
};

const CREDENTIALS: ParamDef = ParamDef {
    scope: Scope::Clouds,
    order: 150,
    example: "/etc/cloudvip/sa.json",
    ..ParamDef::new(
        "credentials",
        Content::String,
        None,
        "Credentials file instead of the instance's identity",
        "GCE: a service-account JSON key. OCI: an API-key config file in ~/.oci/config format \
     (user, fingerprint, key_file, tenancy, region; pass_phrase for an encrypted PKCS#8 \
     key), profile from oci_profile. AWS: a shared credentials file (aws_access_key_id, \
     aws_secret_access_key, optional aws_session_token), profile from aws_profile. The file (and the key it names) must not be \
     writable by others; mode 0600 owned by root is right. Default: the instance's own \
     identity (GCE: the service account's token from the metadata server; OCI: instance \
     principals; AWS: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment, else \
     the instance profile through IMDSv2). Tokens are cached in HA_RSCTMP (else /run/resource-agents) with mode \
     0600 until shortly before they expire, refreshed once for actions that run at \
     once, and never logged.",
    )
};

const API_ENDPOINT: ParamDef = ParamDef {
    scope: Scope::Clouds,
    order: 180,
    example: "https://compute.example/compute/v1",
    ..ParamDef::new(
        "api_endpoint",
        Content::String,
        None,
        "Cloud API base URL",
        "GCE: the Compute API base URL, default https://compute.googleapis.com/compute/v1/ \
     (e.g. a Private Service Connect endpoint). OCI: the Networking API host, default \
     https://iaas.<region>.<realm domain> from the instance metadata. AWS: the EC2 \
     endpoint, default https://ec2.<region>.amazonaws.com/ (e.g. a VPC endpoint). Must be https:// \
     (plain http:// only for a loopback address).",
    )
};

const METADATA_URL: ParamDef = ParamDef {
    scope: Scope::Clouds,
    order: 200,
    example: "http://169.254.169.254/opc/v2",
    ..ParamDef::new(
        "metadata_url",
        Content::String,
        None,
        "Instance metadata service base URL",
        "The metadata service, default http://169.254.169.254/computeMetadata/v1/ on GCE \
     (or GCE_METADATA_HOST), http://169.254.169.254/opc/v2/ on OCI and \
     http://169.254.169.254/ on AWS (IMDSv2). It is link-local plain HTTP in every cloud \
     and is never proxied.",
    )
};

const PROXY: ParamDef = ParamDef {
    scope: Scope::Clouds,
    order: 210,
    example: "http://proxy:3128",
    reloadable: true,
    ..ParamDef::new(
        "proxy",
        Content::String,
        None,
        "HTTP(S) proxy for the cloud API",
        "Proxy URL for the cloud API, e.g. http://proxy.example:3128. Pacemaker does not \
         pass the shell's http_proxy variables to agents, hence this parameter; without it \
         the agent honours HTTPS_PROXY/NO_PROXY from its environment. The metadata server is \
         never proxied.",
    )
};

const CA_BUNDLE: ParamDef = ParamDef {
    scope: Scope::Clouds,
    order: 220,
    example: "/etc/ssl/private-ca.pem",
    reloadable: true,
    ..ParamDef::new(
        "ca_bundle",
        Content::String,
        None,
        "CA certificates to trust for the cloud API",
        "PEM file of the CA certificates that sign the API endpoint's certificate (a \
         TLS-inspecting proxy, a private endpoint). Default: the system trust store. TLS is \
         always verified.",
    )
};

/// How the cloud backend moves the VIP; its text lists each cloud's modes.
const MODE: ParamDef = ParamDef {
    order: 45,
    example: "alias",
    scope: Scope::Clouds,
    ..ParamDef::new(
        "mode",
        Content::String,
        None,
        "How the cloud moves the VIP",
        "",
    )
};

/// The `mode` parameter, its text from the registered backends' modes.
fn mode_param() -> &'static ParamDef {
    static DEF: OnceLock<ParamDef> = OnceLock::new();
    DEF.get_or_init(|| {
        let clouds: Vec<String> = BACKENDS
            .iter()
            .map(|b| {
                let modes: Vec<String> = b
                    .modes
                    .iter()
                    .map(|m| format!("{} ({})", m.name, m.doc))
                    .collect();
                format!("{}: {}", b.name, modes.join(", "))
            })
            .collect();
        let text = format!(
            "How the cloud backend moves the VIP, one of the cloud's modes; default: its \
             first. {}. A mode of another cloud is refused.",
            clouds.join("; ")
        );
        ParamDef {
            longdesc: String::leak(text),
            ..MODE
        }
    })
}

/// The parameters of the clouds, shared and each backend's.
pub fn params() -> impl Iterator<Item = &'static ParamDef> {
    SHARED
        .iter()
        .chain([mode_param()])
        .chain(super::probe::config::PARAMS)
        .chain(BACKENDS.iter().flat_map(|b| b.params))
}

const SHARED: &[ParamDef] = &[
    PUBLIC_IP,
    CREDENTIALS,
    API_ENDPOINT,
    METADATA_URL,
    PROXY,
    CA_BUNDLE,
];

/// What every backend reads besides its own parameters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Shared {
    pub public_ip: Option<String>,
    pub credentials: Option<String>,
    pub api_endpoint: Option<String>,
    pub metadata_url: Option<String>,
    pub proxy: Option<String>,
    pub ca_bundle: Option<String>,
    /// The probe mode's responder (`mode=probe`, a mode of every backend).
    pub probe: super::probe::Config,
}

/// Every backend's parameters, syntax-checked, and which of the clouds' parameters are set.
pub struct CloudConfig {
    pub shared: Shared,
    /// `mode=` as set (checked against the cloud once it is known).
    pub mode: Option<String>,
    /// The clouds' parameters that are set, in table order.
    set: Vec<&'static ParamDef>,
    /// Each backend's own, by its `cloud=` name.
    backends: Vec<(&'static str, Box<dyn BackendConfig>)>,
}

// What the parameters mean, not which are set: a test compares it to see a parameter act.
impl std::fmt::Debug for CloudConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudConfig")
            .field("shared", &self.shared)
            .field("mode", &self.mode)
            .field("backends", &self.backends)
            .finish()
    }
}

impl CloudConfig {
    /// Every backend's syntax; for a named cloud also what applies to it (for `auto`,
    /// `cloud::backend` decides that on the node).
    pub fn parse(get: &Get, cloud: CloudKind) -> Result<CloudConfig, Exit> {
        let shared = Shared::parse(get)?;
        let mut backends = Vec::new();
        for b in BACKENDS {
            backends.push((b.name, (b.parse)(get)?));
        }
        let mode = get(MODE.name).map(str::to_owned);
        if let Some(m) = &mode {
            if !BACKENDS.iter().any(|b| b.modes.iter().any(|x| x.name == m)) {
                let mut all: Vec<&str> = Vec::new();
                for x in BACKENDS.iter().flat_map(|b| b.modes) {
                    if !all.contains(&x.name) {
                        all.push(x.name);
                    }
                }
                return Err(Exit::invalid(
                    MODE.name,
                    m,
                    format!("allowed values are {}", all.join(", ")),
                ));
            }
        }
        let set = params().filter(|p| get(p.name).is_some()).collect();
        let config = CloudConfig {
            shared,
            mode,
            set,
            backends,
        };
        match cloud {
            CloudKind::Backend(b) => {
                config.applies(Some(b))?;
            }
            CloudKind::None => {
                config.applies(None)?;
            }
            CloudKind::Auto => {}
        }
        Ok(config)
    }

    /// Is this parameter of the clouds set?
    pub fn is_set(&self, name: &str) -> bool {
        self.set.iter().any(|p| p.name == name)
    }

    /// The mode on `cloud` (`None`: cloud=none), after refusing a mode it does not have
    /// and every set parameter that does not apply to it there: an admin who sets one
    /// expects it to act.
    pub fn applies(&self, cloud: Option<&'static Backend>) -> Result<&'static str, Exit> {
        let mode = match (cloud, &self.mode) {
            (Some(b), Some(m)) => match b.modes.iter().find(|x| x.name == m) {
                Some(x) => x.name,
                None => {
                    let ours: Vec<&str> = b.modes.iter().map(|x| x.name).collect();
                    return Err(Exit::invalid(
                        MODE.name,
                        m,
                        format!(
                            "allowed values for cloud={} are {}",
                            b.name,
                            ours.join(", ")
                        ),
                    ));
                }
            },
            (Some(b), None) => b.default_mode(),
            (None, _) => "",
        };
        let mut set = self.set.clone();
        set.sort_by_key(|p| p.order);
        if let Some(p) = set
            .iter()
            .find(|p| !p.scope.applies(cloud.map(|b| b.name), mode))
        {
            return Err(Exit::configured(match p.scope.places() {
                Some(places) => format!("{}= applies to {places} only", p.name),
                None => format!(
                    "{}= applies to a cloud backend only, not cloud=none",
                    p.name
                ),
            }));
        }
        Ok(mode)
    }

    /// `b`'s own parameters, as its `parse` made them.
    pub(super) fn of(&self, b: &Backend) -> Result<&dyn BackendConfig, Exit> {
        self.backends
            .iter()
            .find(|(name, _)| *name == b.name)
            .map(|(_, c)| c.as_ref())
            .ok_or_else(|| Exit::generic(format!("internal error: no parameters of {}", b.name)))
    }
}

impl Shared {
    fn parse(get: &Get) -> Result<Shared, Exit> {
        let public_ip = match get(PUBLIC_IP.name) {
            None => None,
            Some(v)
                if v.parse::<Ipv4Addr>().is_ok()
                    || gce::config::is_name(v)
                    || oci::config::is_ocid(v, "publicip") =>
            {
                Some(v.to_owned())
            }
            Some(v) => {
                return Err(Exit::invalid(
                    PUBLIC_IP.name,
                    v,
                    "an IPv4 address, a GCE address name or an OCI public IP OCID",
                ))
            }
        };
        let path_param = |name: &str| -> Result<Option<String>, Exit> {
            match get(name) {
                None => Ok(None),
                Some(v) if v.starts_with('/') => Ok(Some(v.to_owned())),
                Some(v) => Err(Exit::invalid(name, v, "an absolute path")),
            }
        };
        let credentials = path_param(CREDENTIALS.name)?;
        let metadata_url = match get(METADATA_URL.name) {
            None => None,
            Some(v) if v.starts_with("http://") && v.len() > 7 => Some(if v.ends_with('/') {
                v.to_owned()
            } else {
                format!("{v}/")
            }),
            Some(v) => {
                return Err(Exit::invalid(
                    METADATA_URL.name,
                    v,
                    "an http:// URL (the metadata services speak plain HTTP)",
                ))
            }
        };
        let ca_bundle = path_param(CA_BUNDLE.name)?;
        let api_endpoint = match get(API_ENDPOINT.name) {
            None => None,
            Some(v) => Some(parse_endpoint(API_ENDPOINT.name, v)?),
        };
        let proxy = match get(PROXY.name) {
            None => None,
            Some(v) if (v.starts_with("http://") || v.starts_with("https://")) && v.len() > 8 => {
                Some(v.to_owned())
            }
            Some(v) => return Err(Exit::invalid(PROXY.name, v, "an http:// or https:// URL")),
        };
        Ok(Shared {
            public_ip,
            credentials,
            api_endpoint,
            metadata_url,
            proxy,
            ca_bundle,
            probe: super::probe::Config::parse(get)?,
        })
    }
}

/// An API base URL: https, or http to a loopback host (a local emulator or a tunnel).
/// Always ends with '/', so that relative paths append cleanly.
pub fn parse_endpoint(name: &str, v: &str) -> Result<String, Exit> {
    let rest = if let Some(r) = v.strip_prefix("https://") {
        r
    } else if let Some(r) = v.strip_prefix("http://") {
        let host = r.split(['/', '?']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(Exit::invalid(
                name,
                v,
                "must be https:// (plain http:// only to a loopback address)",
            ));
        }
        r
    } else {
        return Err(Exit::invalid(name, v, "expected an https:// URL"));
    };
    if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
        return Err(Exit::invalid(
            name,
            v,
            "expected an https:// URL with a host",
        ));
    }
    // What the HTTP client will parse; a port it cannot read would silently become 443.
    let authority = match v.parse::<ureq::http::Uri>() {
        Ok(u) => u
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default(),
        Err(e) => return Err(Exit::invalid(name, v, format!("not a URL ({e})"))),
    };
    let host_end = authority.rfind(']').unwrap_or(0);
    if let Some((_, port)) = authority[host_end..].rsplit_once(':') {
        if !port.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(Exit::invalid(name, v, "the port must be 1-65535"));
        }
    }
    let mut url = v.to_owned();
    if !url.ends_with('/') {
        url.push('/');
    }
    Ok(url)
}
