//! The parameters every resource has (ip, cidr_netmask, nic, label, cloud, local_mode,
//! arp_*), and the whole table, `all()`: these plus the clouds' (`cloud::config`, each
//! backend's `config.rs`). Each parameter is defined once, its default with it; the table
//! drives parsing, the meta-data XML, the README table and the man page. `Params::parse`
//! checks syntax only
//! and never looks at the host or the network, so `validate-all` at depth 0 is quiet and
//! fast (pcs runs it on `pcs resource create`). Resolving the NIC needs the kernel and
//! happens later, in `agent.rs`.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::ocf::env::OcfEnv;
use crate::ocf::Exit;

use crate::cloud::config::{CloudConfig, Get};
use crate::ocf::metadata::{Content, ParamDef};
use crate::ocf::parse_bool;

// The parameters marked `reloadable` (meta-data `reloadable="1"`) are those whose change
// needs no stop and start: when only these change, Pacemaker 2.1 calls `reload-agent`
// instead of restarting the VIP. None of them says where the VIP is or how it looks on
// the node:
// - arp_count, arp_interval, arp_bg: how it is announced; reload-agent re-announces it
//   with the new settings;
// - peers, peer_label: where the next start looks for the holder to take it from;
// - access_config_name, restore_ephemeral_ip: what the next start names or leaves behind
//   when it moves public_ip;
// - proxy, ca_bundle: how the agent reaches the API; every action reads them afresh, and
//   restarting the VIP over a proxy that does not work would only take it down.
//
// Not reloadable: everything that places the VIP (ip, cidr_netmask, nic, label,
// local_mode, cloud, alias_range_name, public_ip, vnic_id) or names the account and the
// cloud that hold it (credentials, oci_profile, api_endpoint, auth_endpoint,
// metadata_url): a change there is a different VIP, which only stop and start can move.
const IP: ParamDef = ParamDef {
    order: 0,
    example: "10.0.0.250",
    required: true,
    unique: true,
    ..ParamDef::new(
        "ip",
        Content::String,
        None,
        "Virtual IP address (IPv4 or IPv6)",
        "The virtual IP address this resource moves, written without a prefix length, \
         e.g. 10.0.0.250 or fd00:66::250. It must be a unicast address that can be \
         assigned to a host: not loopback, multicast, unspecified or link-local. \
         On GCE it becomes a /32 alias IP range of this node's NIC (IPv4 only: GCE picks \
         IPv6 alias addresses itself); on OCI a secondary private IP of this node's VNIC, \
         for IPv6 an IPv6 address object.",
    )
};

const CIDR_NETMASK: ParamDef = ParamDef {
    order: 10,
    example: "24",
    ..ParamDef::new(
        "cidr_netmask",
        Content::String,
        None,
        "Prefix length of the address on the interface",
        "The prefix length the VIP gets on the local interface: 1-32 for IPv4 (a dotted \
     netmask such as 255.255.255.0 is also accepted) or 1-128 for IPv6. The default is a \
     host prefix (/32, /128), which is what cloud networks need (the subnet route already \
     exists through the NIC's primary address, and a host prefix keeps the VIP from \
     becoming the source address for the whole subnet). Set the subnet's prefix (e.g. 24) \
     to behave like IPaddr2 on a flat LAN.",
    )
};

const NIC: ParamDef = ParamDef {
    order: 20,
    example: "eth0",
    ..ParamDef::new(
        "nic",
        Content::String,
        None,
        "Network interface",
        "The interface that carries the VIP, e.g. eth0 or ens4. Default: the interface of \
     the most specific route towards the VIP in the main table, which for a VIP outside \
     every connected subnet is the interface of the default route for the VIP's family. \
     When several routes tie, set nic explicitly. On a cloud the interface's MAC address \
     identifies the cloud NIC/VNIC, so any NIC works, not just the first.",
    )
};

const LABEL: ParamDef = ParamDef {
    order: 30,
    example: "vip",
    ..ParamDef::new(
        "label",
        Content::String,
        None,
        "IPv4 address label",
        "Optional label for an IPv4 VIP, shown by `ip addr` and ifconfig as <nic>:<label>, \
     e.g. label=vip gives eth0:vip. The whole label must fit in 15 characters. \
     IPv6 addresses have no labels, so it is rejected for an IPv6 VIP.",
    )
};

// Its texts name the registered backends: `cloud_param()` writes them.
const CLOUD: ParamDef = ParamDef {
    order: 40,
    example: "oci",
    ..ParamDef::new("cloud", Content::String, Some("auto"), "", "")
};

/// The `cloud` parameter, its texts from the registered backends.
fn cloud_param() -> &'static ParamDef {
    static DEF: std::sync::OnceLock<ParamDef> = std::sync::OnceLock::new();
    DEF.get_or_init(|| {
        let backends = crate::cloud::BACKENDS;
        let names: Vec<&str> = backends.iter().map(|b| b.name).collect();
        let what: String = backends
            .iter()
            .map(|b| format!("{}: {}. ", b.name, b.summary))
            .collect();
        let dmi: String = backends
            .iter()
            .map(|b| format!("{} -> {}, ", b.dmi_doc, b.name))
            .collect();
        ParamDef {
            shortdesc: String::leak(format!("Cloud backend: {}, none or auto", names.join(", "))),
            longdesc: String::leak(format!(
                "Where the VIP is moved besides the local interface. {what}none: no cloud at \
                 all, cloudvip behaves like IPaddr2 (address plus gratuitous ARP / unsolicited \
                 neighbour advertisement), for bare metal, VMs on a LAN and tests. auto: chosen \
                 from the firmware's DMI strings in /sys/class/dmi/id (no network round trip): \
                 {dmi}anything else -> none."
            )),
            ..CLOUD
        }
    })
}

const LOCAL_MODE: ParamDef = ParamDef {
    order: 50,
    example: "route",
    ..ParamDef::new(
        "local_mode",
        Content::String,
        Some("address"),
        "How the VIP appears on this node: address, route or none",
        "address: add the VIP as an address of nic (with cidr_netmask and label), like \
     IPaddr2. route: add a `local` route for the VIP in the kernel's local table, as the \
     GCE guest agent does for alias ranges, but with cloudvip's own routing protocol \
     number (167) so the guest agent never removes it; the host accepts traffic for the \
     VIP without the address showing on the interface. none: leave the OS alone (when \
     something else, e.g. the guest agent, configures it); monitor then checks only the \
     cloud. local_mode=none needs a cloud.",
    )
};

const ARP_COUNT: ParamDef = ParamDef {
    order: 60,
    example: "3",
    reloadable: true,
    ..ParamDef::new(
        "arp_count",
        Content::Integer,
        Some("5"),
        "Number of gratuitous ARPs / unsolicited neighbour advertisements",
        "How many announcements to send after the VIP is added, so that hosts and switches \
         on the segment update their neighbour caches at once: gratuitous ARP requests for \
         IPv4, unsolicited neighbour advertisements with the override flag for IPv6. 0 sends \
         none (clouds route by their own tables and ignore them). At most 100.",
    )
};

const ARP_INTERVAL: ParamDef = ParamDef {
    order: 70,
    example: "100",
    reloadable: true,
    ..ParamDef::new(
        "arp_interval",
        Content::Integer,
        Some("200"),
        "Milliseconds between announcements",
        "Interval between two announcements, in milliseconds (1-10000).",
    )
};

const ARP_BG: ParamDef = ParamDef {
    order: 80,
    example: "false",
    reloadable: true,
    ..ParamDef::new(
        "arp_bg",
        Content::Boolean,
        Some("true"),
        "Send repeated announcements in the background",
        "When true, start returns right after the first announcement and a background \
         process owned by the resource sends the remaining ones (stop and reload end it), \
         so the resources ordered after the VIP start sooner (IPaddr2 does the same). When \
         false, start sends them all first, never past the operation's deadline.",
    )
};

/// The parameters every backend shares (the cloud's own are in `cloud::config`).
pub const PARAMS: &[ParamDef] = &[
    IP,
    CIDR_NETMASK,
    NIC,
    LABEL,
    LOCAL_MODE,
    ARP_COUNT,
    ARP_INTERVAL,
    ARP_BG,
];

/// The whole parameter table, in the order the meta-data, the README and the man page show it.
pub fn all() -> Vec<&'static ParamDef> {
    let mut all: Vec<&ParamDef> = PARAMS
        .iter()
        .chain([cloud_param()])
        .chain(crate::cloud::config::params())
        .collect();
    all.sort_by_key(|p| p.order);
    all
}

/// Parameter names Pacemaker or resource-agents conventions may pass that are not ours.
const FOREIGN_PARAMS: &[&str] = &["crm_feature_set", "trace_ra", "trace_file"];

pub use crate::cloud::config::CloudKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalMode {
    Address,
    Route,
    None,
}

/// The parameters after syntax checks: everything `validate-all` at depth 0 can know.
#[derive(Debug)]
pub struct Params {
    pub ip: IpAddr,
    pub prefix: u8,
    pub nic: Option<String>,
    pub label: Option<String>,
    pub cloud: CloudKind,
    pub local_mode: LocalMode,
    pub arp_count: u32,
    pub arp_interval: Duration,
    pub arp_bg: bool,
    /// Every backend's parameters (`cloud::config`).
    pub cloud_config: CloudConfig,
}

impl Params {
    pub fn parse(env: &OcfEnv) -> Result<Params, Exit> {
        check_unreadable(env)?;
        check_unknown(env)?;
        Self::parse_known(env)
    }

    /// For stop, which must not fail on parameters it does not need: unknown parameters
    /// and parameters that are not UTF-8 are left out (with a warning) and the rest is
    /// parsed as usual. Stop then removes only what this agent added, so a parameter
    /// taken at its default cannot make it remove something else.
    pub fn parse_lenient(env: &OcfEnv) -> Result<Params, Exit> {
        for (name, v) in &env.unreadable {
            log::warn!("stop: ignoring parameter {name}={v:?}, which is not valid UTF-8");
        }
        let mut known = env.clone();
        known.params.retain(|name, _| {
            let ours = all().iter().any(|p| p.name == name);
            if !ours && !FOREIGN_PARAMS.contains(&name.as_str()) {
                log::warn!("stop: ignoring unknown parameter {name:?}");
            }
            ours
        });
        Self::parse_known(&known)
    }

    fn parse_known(env: &OcfEnv) -> Result<Params, Exit> {
        // An empty value means "not set", as in shell agents.
        let get = |name: &str| env.param(name).map(str::trim).filter(|v| !v.is_empty());

        let ip = match get("ip") {
            None => {
                return Err(Exit::configured(
                    "required parameter ip is not set (e.g. ip=10.0.0.250)",
                ))
            }
            Some(v) => parse_ip(v)?,
        };
        let prefix = match get("cidr_netmask") {
            None => host_prefix(ip),
            Some(v) => parse_prefix(ip, v)?,
        };
        let nic = get("nic").map(parse_nic).transpose()?;
        let label = get("label").map(|v| parse_label(ip, v)).transpose()?;
        if let (Some(n), Some(l)) = (&nic, &label) {
            kernel_label(n, l)?;
        }
        let v = get(CLOUD.name).or(CLOUD.default).unwrap_or_default();
        let Some(cloud) = CloudKind::from_name(v) else {
            let names: Vec<&str> = CloudKind::all().map(CloudKind::name).collect();
            return Err(Exit::invalid(
                CLOUD.name,
                v,
                format!("allowed values are {}", names.join(", ")),
            ));
        };
        let local_mode = match get(LOCAL_MODE.name)
            .or(LOCAL_MODE.default)
            .unwrap_or_default()
        {
            "address" => LocalMode::Address,
            "route" => LocalMode::Route,
            "none" => LocalMode::None,
            v => {
                return Err(Exit::invalid(
                    "local_mode",
                    v,
                    "allowed values are address, route, none",
                ))
            }
        };
        if local_mode == LocalMode::None && cloud == CloudKind::None {
            return Err(Exit::configured(
                "local_mode=none with cloud=none manages nothing: choose a cloud or another local_mode",
            ));
        }
        if cloud == CloudKind::None {
            no_cloud_route_v6(ip, local_mode)?;
        }
        if let Some(b) = cloud.backend() {
            (b.fits)(ip, &|name| get(name).is_some())?;
        }
        let arp_count = parse_int(&get, &ARP_COUNT, 0, 100)?;
        let arp_interval = parse_int(&get, &ARP_INTERVAL, 1, 10_000)?;
        let arp_bg = parse_bool(
            ARP_BG.name,
            get(ARP_BG.name).or(ARP_BG.default).unwrap_or_default(),
        )?;
        let cloud_config = CloudConfig::parse(&get, cloud)?;
        Ok(Params {
            cloud_config,
            ip,
            prefix,
            nic,
            label,
            cloud,
            local_mode,
            arp_count: arp_count as u32,
            arp_interval: Duration::from_millis(arp_interval),
            arp_bg,
        })
    }
}

/// On a plain L2 segment an IPv6 VIP held as a local route is unreachable: the kernel
/// answers neighbour solicitations only for interface addresses (ARP has no such rule).
/// Clouds route to the NIC by their own tables, so there the route mode works.
pub fn no_cloud_route_v6(ip: IpAddr, mode: LocalMode) -> Result<(), Exit> {
    if ip.is_ipv6() && mode == LocalMode::Route {
        return Err(Exit::configured(
            "local_mode=route with an IPv6 VIP needs a cloud (a LAN cannot resolve a route-only \
             IPv6 address); use local_mode=address",
        ));
    }
    Ok(())
}

/// A parameter of ours that is not UTF-8 cannot be what the admin meant: say which one.
/// Foreign ones (trace_ra, ...) are not our business.
fn check_unreadable(env: &OcfEnv) -> Result<(), Exit> {
    match env
        .unreadable
        .iter()
        .find(|(name, _)| !FOREIGN_PARAMS.contains(&name.as_str()))
    {
        Some((name, v)) => Err(Exit::configured(format!(
            "parameter {name} is not valid UTF-8 (it reads {v:?})"
        ))),
        None => Ok(()),
    }
}

fn check_unknown(env: &OcfEnv) -> Result<(), Exit> {
    for name in env.params.keys() {
        if all().iter().any(|p| p.name == name) || FOREIGN_PARAMS.contains(&name.as_str()) {
            continue;
        }
        let mut msg = format!("unknown parameter {name:?}");
        if let Some(near) = all()
            .iter()
            .map(|p| (edit_distance(name, p.name), p.name))
            .filter(|(d, _)| *d <= 3)
            .min()
        {
            let _ = write!(msg, " (did you mean {}?)", near.1);
        } else {
            let known: Vec<&str> = all().iter().map(|p| p.name).collect();
            let _ = write!(msg, "; known parameters: {}", known.join(", "));
        }
        return Err(Exit::configured(msg));
    }
    Ok(())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

pub fn host_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn parse_ip(v: &str) -> Result<IpAddr, Exit> {
    if v.contains('/') {
        return Err(Exit::invalid(
            "ip",
            v,
            "write the address alone and the prefix length in cidr_netmask",
        ));
    }
    let ip: IpAddr = v
        .parse()
        .map_err(|_| Exit::invalid("ip", v, "not an IPv4 or IPv6 address"))?;
    let bad = match ip {
        IpAddr::V4(a) => {
            if a.is_unspecified() || a.octets()[0] == 0 {
                Some("the unspecified/\"this network\" range 0.0.0.0/8 cannot be a VIP")
            } else if a.is_loopback() {
                Some("a loopback address cannot be a VIP")
            } else if a.is_multicast() {
                Some("a multicast address cannot be a VIP")
            } else if a.is_broadcast() {
                Some("the broadcast address cannot be a VIP")
            } else if a.is_link_local() {
                Some("link-local 169.254.0.0/16 is reserved (it holds the cloud metadata servers)")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            if a.is_unspecified() {
                Some("the unspecified address cannot be a VIP")
            } else if a.is_loopback() {
                Some("a loopback address cannot be a VIP")
            } else if a.is_multicast() {
                Some("a multicast address cannot be a VIP")
            } else if a.is_unicast_link_local() {
                Some("a link-local fe80::/10 address cannot be a VIP (it is not routable)")
            } else if a.to_ipv4_mapped().is_some() {
                Some("an IPv4-mapped IPv6 address: write the IPv4 address instead")
            } else {
                None
            }
        }
    };
    match bad {
        Some(why) => Err(Exit::invalid("ip", v, why)),
        None => Ok(ip),
    }
}

fn parse_prefix(ip: IpAddr, v: &str) -> Result<u8, Exit> {
    let max = host_prefix(ip);
    let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    let prefix = if let Ok(n) = v.parse::<u8>() {
        n
    } else if let Ok(mask) = v.parse::<Ipv4Addr>() {
        if ip.is_ipv6() {
            return Err(Exit::invalid(
                "cidr_netmask",
                v,
                "an IPv6 VIP takes a prefix length 1-128, not an IPv4 netmask",
            ));
        }
        let m = u32::from(mask);
        if m.leading_ones() + m.trailing_zeros() != 32 {
            return Err(Exit::invalid(
                "cidr_netmask",
                v,
                "the netmask is not contiguous (e.g. 255.255.255.0)",
            ));
        }
        m.leading_ones() as u8
    } else {
        return Err(Exit::invalid(
            "cidr_netmask",
            v,
            format!("expected a prefix length 1-{max} for an {family} VIP"),
        ));
    };
    if prefix == 0 || prefix > max {
        return Err(Exit::invalid(
            "cidr_netmask",
            v,
            format!("the prefix length of an {family} VIP must be 1-{max}"),
        ));
    }
    if let IpAddr::V4(a) = ip {
        if prefix <= 30 {
            let host_bits = u32::from(a) & (u32::MAX >> prefix);
            if host_bits == 0 {
                return Err(Exit::configured(format!(
                    "invalid ip={a}: it is the network address of {a}/{prefix}"
                )));
            }
            if host_bits == u32::MAX >> prefix {
                return Err(Exit::configured(format!(
                    "invalid ip={a}: it is the broadcast address of {a}/{prefix}"
                )));
            }
        }
    }
    Ok(prefix)
}

/// Linux interface names: 1-15 bytes (IFNAMSIZ - 1), no '/', ':' or whitespace.
fn parse_nic(v: &str) -> Result<String, Exit> {
    if v.contains(':') {
        return Err(Exit::invalid(
            "nic",
            v,
            "an interface name has no ':'; put the alias part in label",
        ));
    }
    if v.len() > 15 || v == "." || v == ".." || v.chars().any(|c| c == '/' || c.is_whitespace()) {
        return Err(Exit::invalid(
            "nic",
            v,
            "not a valid interface name (1-15 characters, no '/', ':' or spaces)",
        ));
    }
    Ok(v.to_owned())
}

fn parse_label(ip: IpAddr, v: &str) -> Result<String, Exit> {
    if ip.is_ipv6() {
        return Err(Exit::invalid(
            "label",
            v,
            "labels exist for IPv4 addresses only",
        ));
    }
    if v.len() > 14 || v.chars().any(|c| !c.is_ascii_graphic() || c == ':') {
        return Err(Exit::invalid(
            "label",
            v,
            "1-14 printable characters without ':' or spaces (the kernel label is <nic>:<label>, at most 15)",
        ));
    }
    Ok(v.to_owned())
}

/// An integer parameter in `min..=max`; unset: its default.
fn parse_int(get: &Get, def: &ParamDef, min: u64, max: u64) -> Result<u64, Exit> {
    let v = get(def.name).or(def.default).unwrap_or_default();
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Exit::invalid(
            def.name,
            v,
            format!("expected an integer {min}-{max}"),
        )),
    }
}

/// The full kernel label for an IPv4 address: `<nic>:<label>`.
pub fn kernel_label(nic: &str, label: &str) -> Result<String, Exit> {
    let full = format!("{nic}:{label}");
    if full.len() > 15 {
        return Err(Exit::configured(format!(
            "invalid label={label:?}: the kernel label {full:?} is longer than 15 characters"
        )));
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kv: &[(&str, &str)]) -> Result<Params, Exit> {
        let vars = kv
            .iter()
            .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string()));
        Params::parse(&OcfEnv::from_vars(vars))
    }

    #[test]
    fn defaults() {
        let p = parse(&[("ip", "10.0.0.250")]).unwrap();
        assert_eq!(p.prefix, 32);
        assert_eq!(p.cloud, CloudKind::Auto);
        assert_eq!(p.local_mode, LocalMode::Address);
        assert_eq!(
            (p.arp_count, p.arp_interval),
            (5, Duration::from_millis(200))
        );
        assert!(p.arp_bg);
        assert_eq!(parse(&[("ip", "fd00::5")]).unwrap().prefix, 128);
    }

    #[test]
    fn netmask_forms() {
        let p = parse(&[("ip", "10.0.0.5"), ("cidr_netmask", "255.255.255.0")]).unwrap();
        assert_eq!(p.prefix, 24);
        let p = parse(&[("ip", "fd00::5"), ("cidr_netmask", "64")]).unwrap();
        assert_eq!(p.prefix, 64);
    }

    #[test]
    fn every_table_entry_is_parsed() {
        // A parameter in PARAMS that parse() ignores would be accepted and silently do nothing.
        for def in all() {
            if def.name == "ip" {
                continue;
            }
            let value = def.example;
            assert!(
                !value.is_empty(),
                "no example value for parameter {}",
                def.name
            );
            // Each on a cloud it applies to; restore_ephemeral_ip needs a public_ip to act on.
            // A mode-scoped parameter in the first mode it applies to.
            let (cloud, mode) = match def.scope {
                crate::ocf::metadata::Scope::Only(ws) => (ws[0].cloud, ws[0].modes.first()),
                _ => ("gce", None),
            };
            let mut common = vec![("ip", "10.0.0.5"), ("cloud", cloud), ("public_ip", "x")];
            common.extend(mode.map(|m| ("mode", *m)));
            let base = parse(&common).unwrap();
            common.push((def.name, value));
            let set = parse(&common).unwrap_or_else(|e| panic!("{}={value}: {e}", def.name));
            assert_ne!(
                format!("{base:?}"),
                format!("{set:?}"),
                "{} had no effect",
                def.name
            );
        }
    }

    #[test]
    fn unknown_parameter_suggests_the_near_one() {
        let e = parse(&[("ip", "10.0.0.5"), ("cidr_netmaks", "24")]).unwrap_err();
        assert!(
            e.reason.contains("did you mean cidr_netmask?"),
            "{}",
            e.reason
        );
        assert!(parse(&[("ip", "10.0.0.5"), ("crm_feature_set", "3.16")]).is_ok());
    }

    #[test]
    fn endpoints() {
        let e = |v: &str| crate::cloud::config::parse_endpoint("api_endpoint", v);
        assert_eq!(
            e("https://c.example/compute/v1").unwrap(),
            "https://c.example/compute/v1/"
        );
        assert_eq!(
            e("http://127.0.0.1:8080/compute/v1/").unwrap(),
            "http://127.0.0.1:8080/compute/v1/"
        );
        assert!(e("http://[::1]:80/").is_ok());
        assert!(e("http://10.0.0.1/compute/v1/").is_err());
        assert!(e("ftp://x/").is_err());
        assert!(e("https:///x").is_err());
        assert!(e("https://10.0.0.1:99999/").is_err());
        assert!(e("https://10.0.0.1:0/").is_err());
        assert!(e("https://[::1/").is_err());
        assert!(e("https://c.example:8443/v1").is_ok());
    }

    #[test]
    fn kernel_label_length() {
        assert_eq!(kernel_label("eth0", "vip").unwrap(), "eth0:vip");
        assert!(kernel_label("enp0s31f6", "verylong").is_err());
    }
}
