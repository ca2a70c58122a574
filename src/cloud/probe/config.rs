//! The probe mode's own parameters, side by side: their docs (meta-data, README, man page),
//! the typed `Config` (part of the shared parameters, since every backend has the mode) and
//! the syntax checks. They apply wherever the probe mode does (`HERE`: cloud=azure, and
//! `mode=probe` on the other clouds); their syntax is checked whatever the cloud, as every
//! backend's is (cloud=auto is resolved later, on the node).

use crate::cloud::config::Get;
use crate::local::responder::{self, Listen, Probe, Spec};
use crate::ocf::metadata::{Content, ParamDef, Scope, Where};
use crate::ocf::Exit;

/// Where the probe mode's parameters apply: cloud=azure (its only mode), and mode=probe
/// on the other clouds.
pub const HERE: Scope = Scope::Only(&[
    Where {
        cloud: "azure",
        label: "Azure",
        modes: &[],
    },
    Where {
        cloud: "gce",
        label: "GCE",
        modes: &["probe"],
    },
    Where {
        cloud: "oci",
        label: "OCI",
        modes: &["probe"],
    },
    Where {
        cloud: "aws",
        label: "AWS",
        modes: &["probe"],
    },
]);

pub const PROBE_PORT: ParamDef = ParamDef {
    order: 230,
    example: "62503",
    scope: HERE,
    // Two VIPs cannot answer on one port: the load balancer could not tell them apart.
    unique: true,
    ..ParamDef::new(
        "probe_port",
        Content::Integer,
        Some("61000"),
        "the load balancer's health-probe port",
        "The TCP port on which the node that \
         holds the VIP answers the load balancer's health probe; the load balancer sends \
         the frontend IP's traffic to the node that answers. It must be the port of the \
         load balancer's health probe (Azure) or health check (GCE). Microsoft's SAP guides \
         use 625<instance number>, e.g. 62503; azure-lb's default is 61000.",
    )
};

pub const PROBE_PATH: ParamDef = ParamDef {
    order: 231,
    example: "/health",
    scope: HERE,
    ..ParamDef::new(
        "probe_path",
        Content::String,
        None,
        "answer an HTTP probe on this path",
        "Unset: a TCP probe (the connection is accepted and closed, which is \
         all a TCP probe checks). Set (e.g. /health): an HTTP probe, `GET <path>` answered \
         200 and any other request 404, for a load balancer whose probe or health check \
         uses HTTP. The path is sent by the prober verbatim: visible ASCII, starting with /.",
    )
};

pub const PROBE_LISTEN: ParamDef = ParamDef {
    order: 232,
    example: "ipv4",
    scope: HERE,
    ..ParamDef::new(
        "probe_listen",
        Content::String,
        Some("both"),
        "the address families the responder listens on",
        "ipv4: IPv4 only (azure-lb's ipv4only); ipv6: IPv6 only; both: one \
         socket for IPv6 and IPv4 (azure-lb's ipv6enable), IPv4 alone on a node whose kernel \
         has IPv6 disabled. Azure's probes come from 168.63.129.16 and GCE's health checks \
         from 35.191.0.0/16 and 130.211.0.0/22 over IPv4 for an IPv4 frontend.",
    )
};

pub const PARAMS: &[ParamDef] = &[PROBE_PORT, PROBE_PATH, PROBE_LISTEN];

/// What the probe mode reads from its parameters: the responder to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub spec: Spec,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            spec: Spec {
                port: 61000,
                listen: Listen::Both,
                probe: Probe::Tcp,
            },
        }
    }
}

impl Config {
    pub fn parse(get: &Get) -> Result<Config, Exit> {
        let port = match get(PROBE_PORT.name).or(PROBE_PORT.default) {
            None => 61000,
            Some(v) => match v.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(Exit::invalid(PROBE_PORT.name, v, "a TCP port, 1-65535")),
            },
        };
        let probe = match get(PROBE_PATH.name) {
            None => Probe::Tcp,
            Some(v) => {
                responder::valid_path(v).map_err(|why| Exit::invalid(PROBE_PATH.name, v, why))?;
                Probe::Http { path: v.to_owned() }
            }
        };
        let listen = match get(PROBE_LISTEN.name).or(PROBE_LISTEN.default) {
            None | Some("both") => Listen::Both,
            Some("ipv4") => Listen::Ipv4,
            Some("ipv6") => Listen::Ipv6,
            Some(v) => {
                return Err(Exit::invalid(
                    PROBE_LISTEN.name,
                    v,
                    "allowed values are ipv4, ipv6, both",
                ))
            }
        };
        Ok(Config {
            spec: Spec {
                port,
                listen,
                probe,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, Exit> {
        let get = |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        Config::parse(&get)
    }

    #[test]
    fn defaults_are_azure_lbs() {
        assert_eq!(parse(&[]).unwrap(), Config::default());
        assert_eq!(parse(&[]).unwrap().spec.port, 61000);
    }

    #[test]
    fn each_parameter_changes_the_responder() {
        for p in PARAMS {
            let c = parse(&[(p.name, p.example)]).unwrap();
            assert_ne!(c, Config::default(), "{}", p.name);
        }
        let c = parse(&[("probe_port", "62503"), ("probe_path", "/health")]).unwrap();
        assert_eq!(c.spec.port, 62503);
        assert_eq!(
            c.spec.probe,
            Probe::Http {
                path: "/health".into()
            }
        );
        assert_eq!(
            parse(&[("probe_listen", "ipv6")]).unwrap().spec.listen,
            Listen::Ipv6
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_parameter_named() {
        for (k, v) in [
            ("probe_port", "0"),
            ("probe_port", "65536"),
            ("probe_port", "http"),
            ("probe_path", "health"),
            ("probe_path", "/a b"),
            ("probe_listen", "ipv5"),
            ("probe_listen", "ipv4only"),
        ] {
            let e = parse(&[(k, v)]).unwrap_err();
            assert!(e.reason.contains(k), "{k}={v}: {}", e.reason);
        }
    }
}
