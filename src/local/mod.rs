//! The VIP on this node: an interface address (`local_mode=address`), a `local` route
//! (`local_mode=route`) or nothing (`local_mode=none`). Resolves the interface, reports
//! where the VIP is, adds and removes it idempotently, and announces it. All kernel access
//! goes through `netlink.rs`; announcements through `announce.rs`.

pub mod announce;
pub mod announcer;
pub mod daemon;
pub mod fim;
pub mod netlink;
pub mod responder;

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::cloud::Claimed;
use crate::deadline::Deadline;
use crate::ocf::{Exit, Status};
use crate::params::{kernel_label, LocalMode, Params};
use netlink::{Link, Rtnl};

pub use announce::Announcement;

/// Where the VIP is on this host, as far as our `local_mode` is concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum Presence {
    /// Not configured anywhere on this host.
    Absent,
    /// Configured on these interfaces (names), in the form our mode manages.
    On(Vec<String>),
}

pub struct Local {
    rtnl: Rtnl,
    mode: LocalMode,
    ip: IpAddr,
    prefix: u8,
    label: Option<String>,
    arp_count: u32,
    arp_interval: Duration,
    arp_bg: bool,
    /// The state directory (`state::dir`): the announcer's pid file lives there.
    state: Option<PathBuf>,
}

impl Local {
    pub fn open(
        params: &Params,
        state: Option<PathBuf>,
        deadline: &Deadline,
    ) -> anyhow::Result<Self> {
        let rtnl = Rtnl::open(deadline)
            .map_err(io_exit)
            .context("cannot open a netlink socket")?;
        Ok(Local {
            rtnl,
            mode: params.local_mode,
            ip: params.ip,
            prefix: params.prefix,
            label: params.label.clone(),
            arp_count: params.arp_count,
            arp_interval: params.arp_interval,
            arp_bg: params.arp_bg,
            state,
        })
    }

    pub fn mode(&self) -> LocalMode {
        self.mode
    }

    /// The interface for the VIP: `nic` if given (it must exist), else the interface of
    /// the most specific main-table route towards the VIP. Failures are OCF_ERR_ARGS:
    /// the configuration may be fine on the other nodes.
    pub fn resolve_nic(&mut self, nic: Option<&str>) -> anyhow::Result<Link> {
        let links = self.links()?;
        let names = || {
            links
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(name) = nic {
            return links
                .iter()
                .find(|l| l.name == name)
                .cloned()
                .ok_or_else(|| {
                    Exit::args(format!(
                        "nic={name} does not exist on this node (interfaces: {})",
                        names()
                    ))
                    .into()
                });
        }
        let mut routes = self
            .rtnl
            .main_routes_to(self.ip)
            .map_err(io_exit)
            .context("cannot read the routing table")?;
        // Most specific first, then lowest metric.
        routes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let Some(&(len, metric, oif)) = routes.first() else {
            return Err(Exit::args(format!(
                "no route towards {} in the main table to choose an interface from: set nic",
                self.ip
            ))
            .into());
        };
        let tied: Vec<Option<u32>> = routes
            .iter()
            .filter(|r| r.0 == len && r.1 == metric)
            .map(|r| r.2)
            .collect();
        let Some(index) = oif.filter(|i| tied.iter().all(|t| *t == Some(*i))) else {
            return Err(Exit::args(format!(
                "several routes towards {} tie (/{len}, metric {metric}) or the route is multipath: set nic",
                self.ip
            ))
            .into());
        };
        let link = links
            .iter()
            .find(|l| l.index == index)
            .cloned()
            .ok_or_else(|| {
                Exit::args(format!(
                    "the route towards {} uses an unknown interface {index}",
                    self.ip
                ))
            })?;
        log::debug!(
            "nic not set: using {} (route /{len} metric {metric})",
            link.name
        );
        Ok(link)
    }

    /// Every address equal to the VIP on this host, with who it belongs to.
    fn vip_addresses(&mut self) -> anyhow::Result<Vec<Found>> {
        let all = self
            .rtnl
            .addresses()
            .map_err(io_exit)
            .context("cannot list addresses")?;
        let links = self.links()?;
        // Addresses cloudvip added (any VIP's, ours included): tagged, or recorded.
        let state = self.state.clone();
        let added_by_us = |a: &netlink::Addr| {
            a.protocol == Some(netlink::RTPROT_CLOUDVIP)
                || state
                    .as_deref()
                    .and_then(|d| read_record(&record_path(d, a.ip)))
                    == Some(a.index)
        };
        let label = |index: u32| {
            let l = self.label.as_ref()?;
            let nic = links.iter().find(|l| l.index == index)?;
            kernel_label(&nic.name, l).ok()
        };
        let mut out = Vec::new();
        for a in all.iter().filter(|a| a.ip == self.ip) {
            let ours = added_by_us(a) || (a.label.is_some() && a.label == label(a.index));
            // Every node needs an address of its own on an interface it is reached by:
            // when the VIP is the only one of its family there that we did not add, it is
            // that address.
            let others = all.iter().any(|o| {
                o.index == a.index
                    && o.ip != a.ip
                    && o.ip.is_ipv4() == a.ip.is_ipv4()
                    && o.global
                    && !added_by_us(o)
            });
            out.push(Found {
                index: a.index,
                name: name_of(&links, a.index),
                prefix: a.prefix,
                owner: match (ours, others) {
                    (true, _) => Owner::Ours,
                    (false, true) => Owner::Stray,
                    (false, false) => Owner::Node,
                },
            });
        }
        Ok(out)
    }

    /// The interface of which the VIP is this node's own address, if it is one: start and
    /// validate-all refuse such a VIP, stop never removes it.
    pub fn node_address(&mut self) -> anyhow::Result<Option<String>> {
        let found = self.vip_addresses()?.into_iter();
        Ok(match self.mode {
            LocalMode::None => None,
            LocalMode::Address => found
                .filter(|f| f.owner == Owner::Node)
                .map(|f| f.name)
                .next(),
            // local_mode=route never adds addresses: any address equal to the VIP is not
            // ours (and the kernel's own local route for it would pass for the VIP's).
            LocalMode::Route => found.map(|f| f.name).next(),
        })
    }

    /// Where the VIP is configured on this host in the form `mode` manages (addresses for
    /// `address`, not the node's own; cloudvip's local routes for `route`). Needs no
    /// interface: a probe on a node where nothing is configured answers without resolving
    /// anything.
    pub fn presence(&mut self) -> anyhow::Result<Presence> {
        let mut names: Vec<String> = match self.mode {
            LocalMode::None => return Ok(Presence::Absent),
            LocalMode::Address => self
                .vip_addresses()?
                .into_iter()
                .filter(|f| f.owner != Owner::Node)
                .map(|f| f.name)
                .collect(),
            LocalMode::Route => {
                let routes = self.our_routes()?;
                let links = self.links()?;
                routes
                    .into_iter()
                    .map(|r| name_of(&links, r.index))
                    .collect()
            }
        };
        names.dedup();
        if names.is_empty() {
            return Ok(Presence::Absent);
        }
        Ok(Presence::On(names))
    }

    /// Changing addresses and routes needs CAP_NET_ADMIN: find out before the cloud is
    /// touched, not after the VIP was taken from its holder.
    pub fn check_privileges(&self) -> anyhow::Result<()> {
        if self.mode == LocalMode::None || has_net_admin() {
            return Ok(());
        }
        Err(Exit::new(
            Status::ErrPerm,
            "no CAP_NET_ADMIN: changing addresses and routes needs CAP_NET_ADMIN (run as root)",
        )
        .into())
    }

    /// Add the VIP on `nic`; `false` when it was already there. The record in the state
    /// directory is written first, so that a start killed right after the kernel added
    /// the address still leaves it recognisably ours.
    pub fn add(&mut self, nic: &Link) -> anyhow::Result<bool> {
        let ip = self.ip;
        let added = match self.mode {
            LocalMode::None => false,
            LocalMode::Address => {
                let label = match &self.label {
                    Some(l) => Some(kernel_label(&nic.name, l)?),
                    None => None,
                };
                if let Some(p) = self.record_path() {
                    if let Err(e) = write_record(&p, nic.index) {
                        log::warn!("cannot record {ip} in {}: {e}", p.display());
                    }
                }
                self.rtnl
                    .add_address(nic.index, ip, self.prefix, label.as_deref())
                    .map_err(io_exit)
                    .with_context(|| format!("cannot add {ip}/{} to {}", self.prefix, nic.name))?
            }
            LocalMode::Route => self
                .rtnl
                .add_local_route(nic.index, ip)
                .map_err(io_exit)
                .with_context(|| format!("cannot add a local route for {ip} on {}", nic.name))?,
        };
        Ok(added)
    }

    /// Remove the VIP from every interface of this host (stop means "not here at all",
    /// whatever `nic` resolves to today), except where it is the node's own address.
    /// Returns the interfaces it was removed from.
    pub fn remove_everywhere(&mut self) -> anyhow::Result<Vec<String>> {
        let ip = self.ip;
        let mut removed = Vec::new();
        match self.mode {
            LocalMode::None => {}
            LocalMode::Address => {
                for f in self.vip_addresses()? {
                    if f.owner == Owner::Node {
                        log::warn!(
                            "{ip} is {}'s own address, not one cloudvip added: leaving it",
                            f.name
                        );
                        continue;
                    }
                    // Delete with the prefix the kernel has, which may differ from today's
                    // cidr_netmask if the parameter changed while the VIP was up.
                    if self
                        .rtnl
                        .del_address(f.index, ip, f.prefix)
                        .map_err(io_exit)
                        .with_context(|| {
                            format!("cannot remove {ip}/{} from {}", f.prefix, f.name)
                        })?
                    {
                        removed.push(f.name);
                    }
                }
                if let Some(p) = self.record_path() {
                    let _ = std::fs::remove_file(p);
                }
            }
            LocalMode::Route => {
                let routes = self.our_routes()?;
                let links = self.links()?;
                for r in routes {
                    let name = name_of(&links, r.index);
                    if self
                        .rtnl
                        .del_local_route(r.index, ip)
                        .map_err(io_exit)
                        .with_context(|| {
                            format!("cannot remove the local route for {ip} on {name}")
                        })?
                    {
                        removed.push(name);
                    }
                }
            }
        }
        Ok(removed)
    }

    fn links(&mut self) -> anyhow::Result<Vec<Link>> {
        self.rtnl
            .links()
            .map_err(io_exit)
            .context("cannot list interfaces")
    }

    /// The VIP's local routes that carry our protocol (never the guest agent's or the
    /// kernel's).
    fn our_routes(&mut self) -> anyhow::Result<Vec<netlink::LocalRoute>> {
        let ip = self.ip;
        Ok(self
            .rtnl
            .local_routes()
            .map_err(io_exit)
            .context("cannot list local routes")?
            .into_iter()
            .filter(|r| r.ip == ip && r.protocol == netlink::RTPROT_CLOUDVIP)
            .collect())
    }

    fn record_path(&self) -> Option<PathBuf> {
        self.state.as_deref().map(|d| record_path(d, self.ip))
    }

    pub fn announce(&self, proof: &Claimed, nic: &Link, deadline: &Deadline) {
        let Some(mac) = nic.mac else {
            log::debug!("{} has no Ethernet address: no announcements", nic.name);
            return;
        };
        let pidfile = self.announcer_pidfile();
        announce::announce(
            proof,
            &Announcement {
                ifindex: nic.index,
                mac,
                ip: self.ip,
                count: self.arp_count,
                interval: self.arp_interval,
                background: self.arp_bg,
            },
            pidfile.as_deref(),
            deadline,
        );
    }

    /// End this VIP's background announcer, if one runs (stop, reload, a new start): once
    /// the VIP leaves, announcing it would pull traffic back to this node.
    pub fn end_announcer(&self) {
        if let Some(f) = self.announcer_pidfile() {
            if announcer::end(&f) {
                log::info!("ended the background announcements of {}", self.ip);
            }
        }
    }

    fn announcer_pidfile(&self) -> Option<PathBuf> {
        self.state
            .as_deref()
            .map(|d| announcer::pidfile(d, self.ip))
    }
}

/// Who an address equal to the VIP belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// Added by cloudvip: it carries our IFA_PROTO, our record or our label.
    Ours,
    /// Not marked as ours, beside an address of the node's own: a copy of the VIP (added
    /// by hand, or by a cloudvip that kept no record). It is the VIP's, to manage.
    Stray,
    /// Not ours, and the only address of its family on that interface that is not ours:
    /// the node's own address.
    Node,
}

struct Found {
    index: u32,
    name: String,
    prefix: u8,
    owner: Owner,
}

fn name_of(links: &[Link], index: u32) -> String {
    links
        .iter()
        .find(|l| l.index == index)
        .map_or_else(|| format!("ifindex {index}"), |l| l.name.clone())
}

/// Where start records the address it adds for `ip`: the interface index, in
/// `cloudvip-addr-<ip>` of the state directory (tmpfs, gone with the addresses at reboot).
fn record_path(state: &std::path::Path, ip: IpAddr) -> PathBuf {
    state.join(format!("cloudvip-addr-{ip}"))
}

fn read_record(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn write_record(path: &std::path::Path, index: u32) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, format!("{index}\n")).and_then(|_| std::fs::rename(&tmp, path))
}

/// CAP_NET_ADMIN (bit 12) in the effective set, from /proc/self/status.
fn has_net_admin() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        // Unknown (no /proc): let the kernel decide, as before.
        .is_none_or(|caps| caps & (1 << 12) != 0)
}

/// Kernel errors that mean "you may not" become OCF_ERR_PERM; the rest stay generic.
fn io_exit(e: io::Error) -> anyhow::Error {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => Exit::new(
            Status::ErrPerm,
            format!("{e}: changing addresses and routes needs CAP_NET_ADMIN (run as root)"),
        )
        .into(),
        _ => anyhow::Error::new(e),
    }
}

/// The cloud's view of a local interface: its MAC tells which cloud NIC/VNIC is ours.
impl From<&Link> for crate::cloud::Nic {
    fn from(link: &Link) -> Self {
        crate::cloud::Nic {
            name: link.name.clone(),
            mac: link.mac,
        }
    }
}
