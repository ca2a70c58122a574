//! The probe mode (issue 14): the VIP is the frontend IP of a load balancer whose health
//! probe decides which node gets its traffic, the vendors' own Pacemaker VIP on Azure
//! ("On Azure, a load balancer is required to use a virtual IP address", Microsoft's SAP HA
//! guides), behind Google's internal passthrough Network Load Balancer (`gcp-ilb`), and
//! usable behind any load balancer that probes a TCP port (AWS NLB, OCI NLB). With floating
//! IP / direct server return the packets keep the frontend IP as destination, so the node
//! must also hold the VIP: start adds it and then runs the responder; stop ends the
//! responder first (the load balancer must see the probe fail before the VIP leaves), then
//! removes the address. No cloud API call and no credentials: the load balancer moves the
//! traffic, after probe interval x threshold (Microsoft's SAP guides: 5 s x 2).
//!
//! The responder is `local::responder` (our own code, no nc/socat), a daemon owned by this
//! VIP through its pid file. This module is the backend around it: its parameters
//! (`config.rs`), the checks before start, the monitor's evidence (this VIP's responder
//! answers a real probe), the dry run's plan and the status and diagnose rows.

pub mod config;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, Socket, Type};

use super::inspect::{Check, Inspect, Verdict};
use super::registry::{Mode, Setup};
use super::{Claimed, Cloud, CloudError, Daemon, Holding, Nic, Op, Planned, Seen};
use crate::deadline::Deadline;
use crate::http::Http;
use crate::local::responder::{self, Listen, Probe as ProbeKind, Spec};
use crate::ocf::Exit;
pub use config::Config;

/// The mode, for every backend's `modes` (cloud=azure's only one).
pub const MODE: Mode = Mode {
    name: "probe",
    doc: "the node that holds the VIP answers a load balancer's health probe; no cloud API call",
};

/// The probe backend of one VIP.
pub struct Probe {
    pub spec: Spec,
    ip: IpAddr,
    /// The state directory (`state::dir`): the responder's pid file lives there.
    state: Option<PathBuf>,
    /// The cloud it runs on (`cloud=`): what diagnose checks and reminds of.
    cloud: &'static str,
    /// Azure's diagnose asks IMDS (and only that needs a client).
    imds: Option<(Http, Option<String>)>,
}

impl Probe {
    /// The probe mode of `cloud` (the backend's `cloud=` name).
    pub fn new(s: &Setup, cloud: &'static str) -> Result<Probe, Exit> {
        let imds = match cloud {
            "azure" => Some((s.http()?, s.shared.metadata_url.clone())),
            _ => None,
        };
        Ok(Probe {
            spec: s.shared.probe.spec.clone(),
            ip: s.ip,
            state: s.state.map(Path::to_owned),
            cloud,
            imds,
        })
    }

    #[cfg(test)]
    fn bare(cfg: &Config, ip: IpAddr, state: Option<PathBuf>) -> Probe {
        Probe {
            spec: cfg.spec.clone(),
            ip,
            state,
            cloud: "gce",
            imds: None,
        }
    }

    /// The responder's owner in the state directory: the VIP (ip is unique among the
    /// cluster's resources, and `cloudvip status` run by hand finds the same file).
    pub fn owner(&self) -> String {
        self.ip.to_string()
    }

    fn state(&self) -> Result<&Path, CloudError> {
        self.state.as_deref().ok_or_else(|| {
            CloudError::Local(
                "no state directory (HA_RSCTMP or /run/resource-agents) for the probe \
                 responder's pid file"
                    .into(),
            )
        })
    }

    /// What the responder answers, for messages: "TCP probe on port 62503 (IPv4 and IPv6)".
    pub fn describe(&self) -> String {
        let what = match &self.spec.probe {
            ProbeKind::Tcp => "TCP probe".to_owned(),
            ProbeKind::Http { path } => format!("HTTP probe GET {path}"),
        };
        let families = match self.spec.listen {
            Listen::Ipv4 => "IPv4".to_owned(),
            Listen::Ipv6 => "IPv6".to_owned(),
            Listen::Both => "IPv4 and IPv6".to_owned(),
            Listen::Address(ip) => ip.to_string(),
        };
        format!("{what} on port {} ({families})", self.spec.port)
    }

    /// The monitor's evidence: this VIP's responder runs, holds the probe port and answers
    /// a real probe. Its own process on loopback: no cloud call at any depth. Not running
    /// is positive evidence (the load balancer sends the traffic elsewhere).
    pub fn answers(&self, deadline: &Deadline) -> Result<bool, CloudError> {
        let state = self.state()?;
        if responder::find_responder(state, &self.owner(), self.spec.port).is_none() {
            log::info!("the probe responder of {} is not running", self.ip);
            return Ok(false);
        }
        match responder::responder_answers(&self.spec, deadline) {
            Ok(took) => {
                log::debug!("probe responder answered in {took:?}");
                Ok(true)
            }
            Err(e) => {
                log::info!("the probe responder of {} does not answer: {e}", self.ip);
                Ok(false)
            }
        }
    }

    /// Before the first change: a state directory, IPv6 when the responder needs it, and
    /// the probe port free (or this VIP's responder's already).
    pub fn validate(&self) -> Result<(), CloudError> {
        let state = self.state()?;
        if self.spec.listen == Listen::Ipv6 && !ipv6_enabled() {
            return Err(CloudError::Local(
                "probe_listen=ipv6 but IPv6 is disabled on this node".into(),
            ));
        }
        if responder::find_responder(state, &self.owner(), self.spec.port).is_some() {
            return Ok(());
        }
        port_free(&self.spec).map_err(CloudError::Local)
    }

    /// Start (or keep) this VIP's responder; it answers a real probe when this returns.
    pub fn start_responder(&self, deadline: &Deadline) -> Result<i32, CloudError> {
        let state = self.state()?;
        let started = responder::start_responder(state, &self.owner(), &self.spec, deadline)
            .map_err(|e| CloudError::Local(e.to_string()))?;
        if started.kept {
            log::info!("probe responder pid {} already answers", started.pid);
        } else {
            log::info!(
                "probe responder pid {} answers the {}",
                started.pid,
                self.describe()
            );
        }
        Ok(started.pid)
    }

    /// End this VIP's responder, if it runs. Never fails for a missing one.
    pub fn stop_responder(&self, deadline: &Deadline) -> Result<bool, CloudError> {
        let state = self.state()?;
        let ended = responder::stop_responder(state, &self.owner(), deadline)
            .map_err(|e| CloudError::Local(format!("the probe responder's lock: {e}")))?;
        if ended {
            log::info!("ended the probe responder of {}", self.ip);
        }
        Ok(ended)
    }

    /// The claim of a mode that calls no API: the load balancer follows the responder.
    pub fn claim(&self) -> Claimed {
        Claimed::new(None)
    }

    pub fn plan(&self, op: Op) -> Vec<Planned> {
        match op {
            Op::Claim => vec![Planned::note(format!(
                "start the probe responder: {}; the load balancer sends {} here once its \
                 probe succeeds (interval x threshold)",
                self.describe(),
                self.ip
            ))],
            Op::Release => vec![Planned::note(format!(
                "end the probe responder on port {} before the address goes",
                self.spec.port
            ))],
            Op::Extras => Vec::new(),
        }
    }

    /// `cloudvip status`: this node's responder. Which node the load balancer picked only
    /// the load balancer knows; its probe finds the node whose responder answers.
    pub fn holders(&self, deadline: &Deadline) -> Vec<Holding> {
        let what = format!("probe responder port {}", self.spec.port);
        let Ok(state) = self.state() else {
            return vec![Holding::nobody(what, "no state directory")];
        };
        match responder::find_responder(state, &self.owner(), self.spec.port) {
            Some(r) => match responder::responder_answers(&self.spec, deadline) {
                Ok(took) => vec![Holding::held(
                    what,
                    format!(
                        "this node (pid {}, answered in {:.1} ms)",
                        r.pid,
                        took.as_secs_f64() * 1000.0
                    ),
                    true,
                )],
                Err(e) => vec![Holding::nobody(
                    what,
                    &format!("pid {} runs here but does not answer: {e}", r.pid),
                )],
            },
            None => vec![Holding::nobody(what, "not running on this node")],
        }
    }

    /// `cloudvip diagnose`'s rows in probe mode: on Azure IMDS, no credentials or
    /// permissions needed, the probe port and families on this node ("nic"), and the
    /// load-balancer settings that matter ("subnet": the load balancer is the network).
    fn verdict(&self, check: Check, deadline: &Deadline) -> Verdict {
        match check {
            Check::Metadata => match &self.imds {
                Some((http, base)) => {
                    super::azure::diagnose_imds(http, base.as_deref(), self.ip, deadline)
                }
                None => Verdict::pass("probe mode reads no instance metadata"),
            },
            Check::Credentials => Verdict::pass("none needed: probe mode makes no cloud API call"),
            Check::Permissions => Verdict::pass("none needed: the load balancer moves the VIP"),
            Check::Nic => self.port_verdict(),
            Check::Subnet => Verdict::pass(lb_settings(self.cloud, &self.spec)),
        }
    }

    /// The probe port is free (or this VIP's responder's) and the families can listen.
    fn port_verdict(&self) -> Verdict {
        if self.spec.listen == Listen::Ipv6 && !ipv6_enabled() {
            return Verdict::fail(
                "probe_listen=ipv6 but IPv6 is disabled on this node",
                "set probe_listen=ipv4 (or both), or enable IPv6",
            );
        }
        let ours = self
            .state
            .as_deref()
            .and_then(|s| responder::find_responder(s, &self.owner(), self.spec.port));
        match (ours, port_free(&self.spec)) {
            (Some(r), _) => Verdict::pass(format!(
                "the {} is this VIP's responder's (pid {})",
                self.describe(),
                r.pid
            )),
            (None, Ok(())) => Verdict::pass(format!(
                "port {} is free for the responder ({})",
                self.spec.port,
                self.describe()
            )),
            (None, Err(e)) => Verdict::fail(
                e,
                format!(
                    "stop what listens there (`ss -ltnp 'sport = :{}'`), or set probe_port \
                     and the load balancer's probe to another port",
                    self.spec.port
                ),
            ),
        }
    }
}

impl Cloud for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    /// The evidence is this VIP's own responder: on loopback, at any depth.
    fn locate(&mut self, _nic: &Nic, _depth: u32, deadline: &Deadline) -> Result<Seen, CloudError> {
        Ok(match self.answers(deadline)? {
            true => Seen::Here,
            false => Seen::Elsewhere(Some(format!(
                "its probe responder on port {} does not answer",
                self.spec.port
            ))),
        })
    }

    fn validate(&mut self, _nic: &Nic, _deadline: &Deadline) -> Result<(), CloudError> {
        Probe::validate(self)
    }

    fn claim(&mut self, _nic: &Nic, _deadline: &Deadline) -> Result<Claimed, CloudError> {
        Ok(Probe::claim(self))
    }

    /// Nothing in a cloud: the agent ends the responder before the address goes.
    fn release(&mut self, _deadline: &Deadline) -> Result<(), CloudError> {
        Ok(())
    }

    fn plan(
        &mut self,
        op: Op,
        _nic: &Nic,
        _deadline: &Deadline,
    ) -> Result<Vec<Planned>, CloudError> {
        Ok(Probe::plan(self, op))
    }

    fn daemon(&self) -> Option<Daemon> {
        Some(Daemon::Responder {
            owner: self.owner(),
            spec: self.spec.clone(),
        })
    }
}

impl Inspect for Probe {
    fn holders(
        &mut self,
        _nic: Option<&Nic>,
        deadline: &Deadline,
    ) -> Result<Vec<Holding>, CloudError> {
        Ok(Probe::holders(self, deadline))
    }

    fn probe(&mut self, check: Check, _nic: Option<&Nic>, deadline: &Deadline) -> Verdict {
        self.verdict(check, deadline)
    }
}

/// The load-balancer settings that make the probe mode work, for `diagnose` (the rest of
/// the story is the README's).
pub fn lb_settings(cloud: &str, spec: &Spec) -> String {
    let port = spec.port;
    match cloud {
        "azure" => format!(
            "check in Azure: a Standard internal load balancer whose frontend IP is ip, HA \
             ports, Floating IP enabled, health probe TCP port {port} every 5 s with \
             probeThreshold 2 (Microsoft's SAP HA guides)"
        ),
        "gce" => format!(
            "check in GCE: an internal passthrough Network Load Balancer whose forwarding rule \
             has ip, a health check on port {port}, firewall rules admitting 35.191.0.0/16 and \
             130.211.0.0/22 to that port"
        ),
        _ => format!(
            "check the load balancer: frontend IP = ip, the backends' traffic keeping it as \
             destination (floating IP / direct server return), health probe on port {port}"
        ),
    }
}

/// Whether the responder could bind the probe port now. A socket is bound without
/// listening, so no probe can complete a handshake with this check.
pub fn port_free(spec: &Spec) -> Result<(), String> {
    let (at, v6only) = match spec.listen {
        Listen::Ipv4 => (
            SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), spec.port),
            None,
        ),
        Listen::Ipv6 => (
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), spec.port),
            Some(true),
        ),
        Listen::Both if ipv6_enabled() => (
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), spec.port),
            Some(false),
        ),
        Listen::Both => (
            SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), spec.port),
            None,
        ),
        Listen::Address(ip) => (SocketAddr::new(ip, spec.port), ip.is_ipv6().then_some(true)),
    };
    let s = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| format!("cannot make a socket: {e}"))?;
    let bound = s
        .set_reuse_address(true)
        .and_then(|_| v6only.map_or(Ok(()), |v| s.set_only_v6(v)))
        .and_then(|_| match at.ip() {
            ip if ip.is_unspecified() => Ok(()),
            IpAddr::V4(_) => s.set_freebind_v4(true),
            IpAddr::V6(_) => s.set_freebind_v6(true),
        })
        .and_then(|_| s.bind(&at.into()));
    match bound {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(format!(
            "probe_port {} is in use by another process",
            spec.port
        )),
        Err(e) => Err(format!("cannot bind probe_port {}: {e}", spec.port)),
    }
}

fn ipv6_enabled() -> bool {
    Path::new("/proc/net/if_inet6").exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn a_listening_port_is_not_free_and_the_check_never_listens() {
        let l = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let spec = Spec {
            port,
            listen: Listen::Ipv4,
            probe: ProbeKind::Tcp,
        };
        let e = port_free(&spec).unwrap_err();
        assert!(e.contains("in use"), "{e}");
        drop(l);
        let spec = Spec {
            port: free_port(),
            ..spec
        };
        port_free(&spec).unwrap();
        // The check's socket is gone and never listened: nothing answers there.
        let to = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), spec.port);
        assert!(std::net::TcpStream::connect_timeout(&to, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn without_a_responder_the_monitor_sees_it_not_running() {
        let d = tempfile::tempdir().unwrap();
        let p = Probe::bare(
            &Config::default(),
            "10.66.1.100".parse().unwrap(),
            Some(d.path().to_owned()),
        );
        let dl = Deadline::for_timeout(Some(Duration::from_secs(5)));
        assert!(!p.answers(&dl).unwrap());
        let rows = p.holders(&dl);
        assert!(!rows[0].held && rows[0].holder.contains("not running"));
        assert!(!p.stop_responder(&dl).unwrap(), "nothing to end");
        let none = Probe::bare(&Config::default(), "10.66.1.100".parse().unwrap(), None);
        assert!(matches!(none.answers(&dl), Err(CloudError::Local(_))));
    }

    #[test]
    fn plans_say_what_runs_and_in_which_order() {
        let p = Probe::bare(&Config::default(), "10.0.0.5".parse().unwrap(), None);
        let claim = p.plan(Op::Claim);
        assert!(claim[0].call.is_none(), "no API call");
        assert!(
            claim[0].what.contains("TCP probe on port 61000"),
            "{}",
            claim[0].what
        );
        assert!(p.plan(Op::Release)[0].what.contains("before the address"));
        assert!(p.plan(Op::Extras).is_empty());
    }
}
