//! The VIP on this node: an interface address (`local_mode=address`), a `local` route
//! (`local_mode=route`) or nothing (`local_mode=none`). Resolves the interface, reports
//! where the VIP is, adds and removes it idempotently, and announces it. All kernel access
//! goes through `netlink.rs`; announcements through `announce.rs`.

pub mod announce;
pub mod announcer;
pub mod netlink;

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
        let links = self
            .rtnl
            .links()
            .map_err(io_exit)
            .context("cannot list interfaces")?;
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

    /// Where the VIP is configured on this host in the form `mode` manages (addresses for
    /// `address`, cloudvip's local routes for `route`). Needs no interface: a probe on a
    /// node where nothing is configured answers without resolving anything.
    pub fn presence(&mut self) -> anyhow::Result<Presence> {
        let indexes: Vec<u32> = match self.mode {
            LocalMode::None => return Ok(Presence::Absent),
            LocalMode::Address => self
                .rtnl
                .addresses()
                .map_err(io_exit)
                .context("cannot list addresses")?
                .into_iter()
                .filter(|a| a.ip == self.ip)
                .map(|a| a.index)
                .collect(),
            LocalMode::Route => self
                .rtnl
                .local_routes()
                .map_err(io_exit)
                .context("cannot list local routes")?
                .into_iter()
                .filter(|r| r.ip == self.ip && r.protocol == netlink::RTPROT_CLOUDVIP)
                .map(|r| r.index)
                .collect(),
        };
        if indexes.is_empty() {
            return Ok(Presence::Absent);
        }
        let links = self
            .rtnl
            .links()
            .map_err(io_exit)
            .context("cannot list interfaces")?;
        let mut names: Vec<String> = indexes
            .iter()
            .map(|i| {
                links
                    .iter()
                    .find(|l| l.index == *i)
                    .map_or_else(|| format!("ifindex {i}"), |l| l.name.clone())
            })
            .collect();
        names.dedup();
        Ok(Presence::On(names))
    }

    /// Add the VIP on `nic`; `false` when it was already there.
    pub fn add(&mut self, nic: &Link) -> anyhow::Result<bool> {
        let ip = self.ip;
        let added = match self.mode {
            LocalMode::None => false,
            LocalMode::Address => {
                let label = match &self.label {
                    Some(l) => Some(kernel_label(&nic.name, l)?),
                    None => None,
                };
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
    /// whatever `nic` resolves to today). Returns the interfaces it was removed from.
    pub fn remove_everywhere(&mut self) -> anyhow::Result<Vec<String>> {
        let ip = self.ip;
        let links = self
            .rtnl
            .links()
            .map_err(io_exit)
            .context("cannot list interfaces")?;
        let name = |i: u32| {
            links
                .iter()
                .find(|l| l.index == i)
                .map_or_else(|| format!("ifindex {i}"), |l| l.name.clone())
        };
        let mut removed = Vec::new();
        match self.mode {
            LocalMode::None => {}
            LocalMode::Address => {
                let addrs = self
                    .rtnl
                    .addresses()
                    .map_err(io_exit)
                    .context("cannot list addresses")?;
                for a in addrs.into_iter().filter(|a| a.ip == ip) {
                    // Delete with the prefix the kernel has, which may differ from today's
                    // cidr_netmask if the parameter changed while the VIP was up.
                    if self
                        .rtnl
                        .del_address(a.index, ip, a.prefix)
                        .map_err(io_exit)
                        .with_context(|| {
                            format!("cannot remove {ip}/{} from {}", a.prefix, name(a.index))
                        })?
                    {
                        removed.push(name(a.index));
                    }
                }
            }
            LocalMode::Route => {
                let routes = self
                    .rtnl
                    .local_routes()
                    .map_err(io_exit)
                    .context("cannot list local routes")?;
                for r in routes
                    .into_iter()
                    .filter(|r| r.ip == ip && r.protocol == netlink::RTPROT_CLOUDVIP)
                {
                    if self
                        .rtnl
                        .del_local_route(r.index, ip)
                        .map_err(io_exit)
                        .with_context(|| {
                            format!(
                                "cannot remove the local route for {ip} on {}",
                                name(r.index)
                            )
                        })?
                    {
                        removed.push(name(r.index));
                    }
                }
            }
        }
        Ok(removed)
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
