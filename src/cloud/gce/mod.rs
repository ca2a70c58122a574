//! Google Compute Engine: the VIP is an alias IP range of this instance's NIC, and an
//! optional static external IP is that NIC's access config. The flow is gce-api.md §7:
//! identity from the metadata server; our instance read from the API once nothing is in
//! flight on it (the metadata server's "already an alias" can predate a removal another
//! node queued); the configuration checked against the subnet before anything changes;
//! the alias removed from every other holder, then added here, each write through this
//! node's one writer per NIC (`writer.rs`), which batches parallel actions and verifies
//! the result after its operation is DONE; then the external address, whose detach from
//! its holder starts as soon as our alias add is accepted (another instance: GCE runs
//! the two side by side) and whose attach here follows once the VIP works. Everything
//! stays inside the action's deadline.

mod aliases;
pub mod auth;
mod compute;
pub mod config;
mod diagnose;
mod fim;
pub mod metadata;
mod plan;
mod writer;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::registry::{Backend, Dmi, Mode, Platform, Setup};
use super::{in_subnet, settle, Claimed, Cloud, CloudError, Nic, Op, Planned, Seen};
use crate::deadline::Deadline;
use crate::http::Http;
use crate::ocf::Exit;
use aliases::{holds, Want};
use compute::{aliases_of, field, nics, primary_ip, Api};
use metadata::Identity;
use plan::{Change, Checked};
use writer::Target;

/// For the fuzz targets: is this alias entry the single address `ip`?
pub use aliases::is_host as alias_is;

pub static BACKEND: Backend = Backend {
    name: "gce",
    label: "GCE",
    summary: "an alias IP range on the Compute Engine NIC",
    dmi_doc: "Google",
    // GCE sets product_name "Google Compute Engine" and sys_vendor "Google".
    detect: |d: &Dmi| {
        d.read("sys_vendor") == "Google" || d.read("product_name") == "Google Compute Engine"
    },
    platform: Platform::Gce,
    modes: &[
        Mode {
            name: "alias",
            doc: "an alias IP range of the NIC",
        },
        fim::MODE,
        super::probe::MODE,
    ],
    params: config::PARAMS,
    parse: |get| Ok(Box::new(config::Config::parse(get)?)),
    fits,
    cloud: |s| match s.mode {
        "fim" => Ok(Box::new(fim::Fim::new(s)?)),
        _ => Ok(Box::new(Gce::new(s)?)),
    },
    inspect: |s| match s.mode {
        "fim" => Ok(Box::new(fim::Fim::new(s)?)),
        _ => Ok(Box::new(Gce::new(s)?)),
    },
};

/// IPv6 aliases go in `aliasIpv6Ranges`, which takes only a netmask GCE fills with an
/// address it picks ("only a netmask (e.g. /96) may be supplied, with a CIDR format
/// resulting in an API error", Google's Terraform/Pulumi docs), so a chosen address
/// cannot move.
fn fits(ip: IpAddr, _set: &super::registry::IsSet) -> Result<(), Exit> {
    if ip.is_ipv6() {
        return Err(Exit::configured(
            "cloud=gce cannot move an IPv6 ip: GCE picks IPv6 alias addresses itself",
        ));
    }
    Ok(())
}

pub const DEFAULT_API: &str = "https://compute.googleapis.com/compute/v1/";

/// The first API exchange of a release (token and one read) must answer within this: an
/// API that does not is left to the next start elsewhere at once, with a warning. (How long
/// the whole release may take is stop's decision, `agent::STOP_RELEASE_BUDGET`: a healthy
/// release is one operation of ~1 s plus reads, or two batches of them when every VIP of
/// the node stops at once, gce-api.md §4.)
const RELEASE_PROBE: Duration = Duration::from_secs(2);

pub struct Gce {
    http: Http,
    ip: IpAddr,
    opts: config::Config,
    shared: crate::cloud::config::Shared,
    api_base: String,
    md_base: String,
    rsctmp: Option<String>,
    /// Filled from the metadata server before any API call.
    project: String,
    /// What diagnose's earlier checks found, for its later ones.
    found: diagnose::Found,
    /// What claim started of the public IP's move (see `detach_early`), for `complete`.
    early: Option<Early>,
}

/// The public IP's move as claim began it: the detaches submitted, and the changes on our
/// NIC planned from claim's reads (only when they attach the address).
#[derive(Default)]
struct Early {
    detaching: Vec<Detaching>,
    attach: Vec<Change>,
}

/// A deleteAccessConfig of public_ip on the instance that had it, submitted by claim and
/// not yet waited for.
struct Detaching {
    zone: String,
    instance: String,
    nic: String,
    op: Value,
}

fn transient(msg: String) -> CloudError {
    CloudError::Transient(msg)
}

/// An instance's name and zone (the last part of its zone URL); errors name what is missing.
fn name_and_zone(inst: &Value) -> Result<(&str, &str), CloudError> {
    let name = field(inst, "name", "instance")?;
    let zone = field(inst, "zone", name)?
        .rsplit('/')
        .next()
        .filter(|z| !z.is_empty())
        .ok_or_else(|| transient(format!("{name}: zone URL without a zone")))?;
    Ok((name, zone))
}

/// Does this NIC (of an API answer) hold `ip`? A NIC whose list cannot be read does not.
fn nic_has(nic: &Value, ip: IpAddr) -> bool {
    aliases_of(nic, "").is_ok_and(|l| holds(&l, ip))
}

/// Is `ip` inside `cidr` (`10.128.0.0/20`)? `None` when `cidr` does not parse.
fn cidr_contains(cidr: &str, ip: IpAddr) -> Option<bool> {
    let (net, len) = cidr.split_once('/')?;
    Some(in_subnet(ip, net.parse().ok()?, len.parse().ok()?))
}

impl Gce {
    pub fn new(s: &Setup) -> Result<Self, Exit> {
        let o = s.shared;
        Ok(Gce {
            http: s.http()?,
            ip: s.ip,
            opts: s.config::<config::Config>()?.clone(),
            shared: o.clone(),
            api_base: o
                .api_endpoint
                .clone()
                .unwrap_or_else(|| DEFAULT_API.to_owned()),
            md_base: o.metadata_url.clone().unwrap_or_else(metadata::base_url),
            rsctmp: s.state.and_then(std::path::Path::to_str).map(str::to_owned),
            project: String::new(),
            found: diagnose::Found::default(),
            early: None,
        })
    }

    fn with_identity(&mut self, deadline: &Deadline) -> Result<Identity, CloudError> {
        let id = self.identity(deadline)?;
        self.project = id.project.clone();
        Ok(id)
    }

    /// This node's problem, not the configuration's: another node may do better.
    fn node_local(msg: String) -> CloudError {
        CloudError::Local(msg)
    }

    fn our_nic(&self, id: &Identity, nic: &Nic) -> Result<usize, CloudError> {
        let mac = nic
            .mac
            .ok_or_else(|| Self::node_local(format!("{} has no MAC address", nic.name)))?;
        id.nic_index(&mac).ok_or_else(|| {
            Self::node_local(format!(
                "no GCE network interface of {} has the MAC {} of {}",
                id.name,
                crate::cloud::format_mac(&mac),
                nic.name
            ))
        })
    }

    /// Our NIC `idx` in an API answer about our instance.
    fn api_nic<'v>(
        &self,
        me: &'v Value,
        id: &Identity,
        idx: usize,
    ) -> Result<&'v Value, CloudError> {
        nics(me, &id.name)?.get(idx).ok_or_else(|| {
            Self::node_local(format!(
                "the Compute API shows no network interface {idx} on {}",
                id.name
            ))
        })
    }

    /// Where this node keeps the lock and intents of one NIC's writer: keyed by the API,
    /// the project, the writing instance and the target NIC, so that nothing but this
    /// node's own actions on that NIC ever share it.
    fn state_prefix(&self, id: &Identity, t: &Target) -> Option<PathBuf> {
        let dir = crate::state::dir(self.rsctmp.as_deref())?;
        let key = format!(
            "{}\n{}\n{}/{}\n{}/{}/{}",
            self.api_base, self.project, id.zone, id.name, t.zone, t.instance, t.nic
        );
        let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        let hex: String = d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
        Some(dir.join(format!("cloudvip-gce-nic-{hex}")))
    }

    fn write(
        &self,
        api: &Api,
        id: &Identity,
        t: &Target,
        want: Want,
        accepted: &mut dyn FnMut(),
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let state = self.state_prefix(id, t);
        writer::apply(api, state.as_deref(), t, want, accepted, deadline)
    }

    /// Our instance as every change accepted so far has left it (`Api::settled`). `first`
    /// is a read already made.
    fn settled_self(
        &self,
        api: &Api,
        id: &Identity,
        first: Option<Value>,
        deadline: &Deadline,
    ) -> Result<Value, CloudError> {
        let first = match first {
            Some(f) => f,
            None => self.get_self(api, id, deadline)?,
        };
        api.settled(&id.zone, &id.name, Some(first), deadline)
    }

    fn get_self(&self, api: &Api, id: &Identity, deadline: &Deadline) -> Result<Value, CloudError> {
        api.get_instance(&id.zone, &id.name, deadline)
            .map_err(|e| match e.into_kind() {
                CloudError::NotFound(m) => Self::node_local(format!(
                    "this instance ({} in {}, project {}) is unknown to the Compute API: {m}",
                    id.name, id.zone, id.project
                )),
                e => e,
            })
    }

    /// Everything that would make the start fail, checked before the VIP leaves its
    /// holder: `ip` must not be a primary address of this instance or a peer, and must lie
    /// in the subnet's primary range or in the secondary range `alias_range_name` names;
    /// a `public_ip` must exist (its address resource is returned, for the detach).
    fn validate(
        &self,
        api: &Api,
        id: &Identity,
        me: &Value,
        gnic: &Value,
        peers: &[Value],
        deadline: &Deadline,
    ) -> Result<Option<Value>, CloudError> {
        let address = match &self.shared.public_ip {
            Some(p) => Some(api.address(id.region(), p, deadline)?),
            None => None,
        };
        for inst in std::iter::once(me).chain(peers) {
            let name = field(inst, "name", "instance")?;
            for n in nics(inst, name)? {
                if primary_ip(n) == Some(self.ip) {
                    return Err(CloudError::Invalid(format!(
                        "ip={} is the primary address of {name} {}: choose an unused address",
                        self.ip,
                        n["name"].as_str().unwrap_or("?")
                    )));
                }
            }
        }
        let url = field(gnic, "subnetwork", "our network interface")?;
        let sub = match api.subnetwork(url, deadline).map_err(CloudError::into_kind) {
            Ok(s) => s,
            Err(CloudError::Denied(m)) => {
                log::warn!(
                    "cannot read the subnetwork ({m}); grant compute.subnetworks.get so that a \
                     wrong alias_range_name or ip fails before the VIP leaves its holder"
                );
                return Ok(address);
            }
            Err(e) => return Err(e),
        };
        self.check_range(&sub).map(|_| address)
    }

    /// Is `ip` in the range it must be in? Ok names that range, e.g. "the primary range of
    /// subnetwork default (10.128.0.0/20)".
    fn check_range(&self, sub: &Value) -> Result<String, CloudError> {
        let sname = field(sub, "name", "subnetwork")?;
        let (cidr, what) = match self.opts.alias_range_name.as_deref() {
            None => (
                field(sub, "ipCidrRange", sname)?.to_owned(),
                format!("the primary range of subnetwork {sname}"),
            ),
            Some(r) => {
                let ranges = match sub.get("secondaryIpRanges") {
                    None | Some(Value::Null) => &[][..],
                    Some(Value::Array(a)) => a.as_slice(),
                    Some(_) => {
                        return Err(transient(format!(
                            "subnetwork {sname}: secondaryIpRanges is not a list"
                        )))
                    }
                };
                let Some(range) = ranges
                    .iter()
                    .find(|x| x.get("rangeName").and_then(Value::as_str) == Some(r))
                else {
                    let names: Vec<&str> = ranges
                        .iter()
                        .filter_map(|x| x.get("rangeName").and_then(Value::as_str))
                        .collect();
                    return Err(CloudError::Invalid(format!(
                        "alias_range_name={r}: subnetwork {sname} has no such secondary range (it has: {})",
                        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                    )));
                };
                (
                    field(range, "ipCidrRange", r)?.to_owned(),
                    format!("secondary range {r} of subnetwork {sname}"),
                )
            }
        };
        match cidr_contains(&cidr, self.ip) {
            Some(true) => Ok(format!("{what} ({cidr})")),
            Some(false) => Err(CloudError::Invalid(format!(
                "ip={} is outside {what} ({cidr}); set alias_range_name to the range that holds it",
                self.ip
            ))),
            None => Err(transient(format!("{what}: unreadable range {cidr:?}"))),
        }
    }

    /// One round of a start: read, check, remove from the other holders, add here. With
    /// public_ip, its detach from the instance that has it starts once our add was
    /// accepted (once per action, into `early`): a start refused here detaches nothing.
    fn claim_once(
        &self,
        api: &Api,
        id: &Identity,
        idx: usize,
        checked: &mut Checked,
        early: &mut Option<Early>,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let (changes, peers, me) = self.alias_plan(api, id, idx, checked, deadline)?;
        for c in changes {
            let adding = matches!(c, Change::AddAlias { .. });
            let (t, want) = match &c {
                Change::RemoveAlias {
                    zone,
                    instance,
                    nic,
                } => (
                    Target {
                        zone,
                        instance,
                        nic,
                        own: false,
                    },
                    Want::absent(self.ip),
                ),
                Change::AddAlias { nic } => (
                    Target {
                        zone: &id.zone,
                        instance: &id.name,
                        nic,
                        own: true,
                    },
                    Want::present(self.ip, self.opts.alias_range_name.as_deref()),
                ),
                _ => continue,
            };
            let mut detach = || {
                if adding && early.is_none() {
                    *early = Some(self.detach_early(api, id, idx, (&peers, &me), checked, deadline));
                }
            };
            self.write(api, id, &t, want, &mut detach, deadline)?;
            // Another action of this node wrote our add for us: detach now.
            detach();
        }
        Ok(())
    }

    /// Attach the static external address to our NIC, detaching it from its holder; with
    /// restore_ephemeral_ip, then give each instance it left a new ephemeral IP (best
    /// effort: public_ip already works here).
    fn move_public_ip(
        &self,
        api: &Api,
        id: &Identity,
        idx: usize,
        want: &str,
        early: Option<Early>,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let mut left: Vec<Change> = Vec::new();
        let Early { detaching, attach } = early.unwrap_or_default();
        let mut detached = true;
        for d in detaching {
            // A detach that failed or hangs is the reads' below to find and do again.
            match api.wait(&d.zone, &d.op, deadline) {
                Ok(()) if self.opts.restore_ephemeral_ip => left.push(Change::Restore {
                    zone: d.zone,
                    instance: d.instance,
                    nic: d.nic,
                }),
                Ok(()) => {}
                Err(e) => {
                    detached = false;
                    log::info!("detaching {want} from {}: {e}", d.instance);
                }
            }
        }
        // Claim's plan for our NIC, when every detach is DONE: its reads predate only our
        // alias add (nothing else was in flight on our instance after it). Whatever fails
        // is read again below.
        let fast = detached && !attach.is_empty();
        let done = fast
            && self
                .carry_out(api, id, want, &attach, &mut left, deadline)
                .map_err(|e| log::info!("attaching {want}: {e}; reading again"))
                .is_ok();
        if !done {
            settle("public IP move", deadline, || {
                self.move_public_ip_once(api, id, idx, want, &mut left, deadline)
            })?;
        }
        for c in left {
            if let Change::Restore {
                zone,
                instance,
                nic,
            } = &c
            {
                if let Err(e) = self.restore_ephemeral(api, zone, instance, nic, deadline) {
                    log::warn!(
                        "restore_ephemeral_ip: {instance} {nic} got no new external IP ({e})"
                    );
                }
            }
        }
        Ok(())
    }

    /// One round: the changes as read now, carried out in order. The instances it detached
    /// the address from go to `left` as they are detached (a later round no longer sees
    /// them as users).
    fn move_public_ip_once(
        &self,
        api: &Api,
        id: &Identity,
        idx: usize,
        want: &str,
        left: &mut Vec<Change>,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let changes = self.public_changes(api, id, idx, want, deadline)?;
        self.carry_out(api, id, want, &changes, left, deadline)
    }

    /// The public IP changes, in order (see `move_public_ip_once`).
    fn carry_out(
        &self,
        api: &Api,
        id: &Identity,
        want: &str,
        changes: &[Change],
        left: &mut Vec<Change>,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        for c in changes {
            match c {
                Change::Detach {
                    zone,
                    instance,
                    nic,
                    config,
                } => {
                    log::info!("detaching {want} from {instance} ({zone}) {nic}");
                    let op = api.delete_access_config(zone, instance, nic, config, deadline)?;
                    api.wait(zone, &op, deadline)?;
                    if self.opts.restore_ephemeral_ip {
                        left.push(Change::Restore {
                            zone: zone.clone(),
                            instance: instance.clone(),
                            nic: nic.clone(),
                        });
                    }
                }
                Change::MakeRoom { nic, config, ip } => {
                    log::info!(
                        "removing access config {config:?} ({ip}) from {nic} to make room for {want}"
                    );
                    let op = api.delete_access_config(&id.zone, &id.name, nic, config, deadline)?;
                    api.wait(&id.zone, &op, deadline)?;
                }
                Change::Attach { nic, config } => {
                    log::info!("attaching {want} to {} {nic}", id.name);
                    api.add_access_config(&id.zone, &id.name, nic, config, deadline)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl Gce {
    /// Start detaching public_ip from the instances that have it, as the candidates read
    /// by this start show them, without waiting: claim calls this once the alias left its
    /// other holders and its add here was accepted. GCE runs one operation at a time per
    /// instance (the emulator's `operations.busy`), so the detach waits behind nothing
    /// there (that instance's alias removal is verified DONE) and runs while our alias is
    /// added on our instance; the attach here follows in `complete`. Best effort: what
    /// fails here, `complete` reads again and does in order.
    /// `read` is what claim read: the candidates and our instance.
    fn detach_early(
        &self,
        api: &Api,
        id: &Identity,
        idx: usize,
        read: (&[Value], &Value),
        checked: &Checked,
        deadline: &Deadline,
    ) -> Early {
        let (peers, me) = read;
        let (Some(want), Some(addr)) = (&self.shared.public_ip, &checked.address) else {
            return Early::default();
        };
        let Some(nat_ip) = addr["address"].as_str() else {
            return Early::default();
        };
        let mut out = Vec::new();
        for inst in peers {
            let Ok((name, zone)) = name_and_zone(inst) else {
                continue;
            };
            if name == id.name && zone == id.zone {
                continue;
            }
            for nic in nics(inst, name).unwrap_or_default() {
                for ac in access_configs(nic, name).unwrap_or_default() {
                    let (Some(n), Some(config)) = (nic["name"].as_str(), ac["name"].as_str())
                    else {
                        continue;
                    };
                    if ac["natIP"].as_str() != Some(nat_ip) {
                        continue;
                    }
                    log::info!("detaching {want} from {name} ({zone}) {n}");
                    match api.delete_access_config(zone, name, n, config, deadline) {
                        Ok(op) => out.push(Detaching {
                            zone: zone.to_owned(),
                            instance: name.to_owned(),
                            nic: n.to_owned(),
                            op,
                        }),
                        Err(e) => log::info!("detaching {want} from {name}: {e}; later"),
                    }
                }
            }
        }
        // Only a plan that attaches: one made from a read showing the address here already
        // may predate a detach queued on our instance, which the slow path waits out.
        let attach = match self.room_and_attach(id, idx, addr, nat_ip, me) {
            Ok(a) if !out.is_empty() && a.iter().any(|c| matches!(c, Change::Attach { .. })) => a,
            _ => Vec::new(),
        };
        Early {
            detaching: out,
            attach,
        }
    }
}

/// A NIC's access configs: absent means none; anything but a list is an error.
pub(super) fn access_configs<'v>(nic: &'v Value, what: &str) -> Result<&'v [Value], CloudError> {
    match nic.get("accessConfigs") {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a.as_slice()),
        Some(_) => Err(transient(format!("{what}: accessConfigs is not a list"))),
    }
}

impl Cloud for Gce {
    fn name(&self) -> &'static str {
        "gce"
    }

    /// Depth 0 asks the metadata server only (free, and what the guest agent acts on);
    /// depth 10 also the API. Every call honours `deadline`: a monitor whose metadata
    /// server does not answer gets a Transient error when the deadline it was given ends.
    fn locate(&mut self, nic: &Nic, depth: u32, deadline: &Deadline) -> Result<Seen, CloudError> {
        let here = |yes| if yes { Seen::Here } else { Seen::Elsewhere(None) };
        let id = self.with_identity(deadline)?;
        let idx = self.our_nic(&id, nic)?;
        let mut in_metadata = id.nics_with(self.ip).contains(&idx);
        // A public_ip written as an address can be checked for free too.
        if let Some(p) = self
            .shared
            .public_ip
            .as_deref()
            .filter(|p| p.parse::<std::net::Ipv4Addr>().is_ok())
        {
            if !id.nics[idx]
                .access_configs
                .iter()
                .any(|a| a.external_ip == p)
            {
                log::warn!("the external address {p} is not on {} nic{idx}", id.name);
                in_metadata = false;
            }
        }
        if depth < 10 {
            return Ok(here(in_metadata));
        }
        let api = Api::new(self);
        let me = self.get_self(&api, &id, deadline)?;
        let in_api = holds(
            &aliases_of(self.api_nic(&me, &id, idx)?, &id.name)?,
            self.ip,
        );
        if in_api != in_metadata {
            log::warn!("the metadata server and the Compute API disagree about {} (metadata: {in_metadata}, API: {in_api})", self.ip);
        }
        Ok(here(in_api))
    }

    fn claim(&mut self, nic: &Nic, deadline: &Deadline) -> Result<Claimed, CloudError> {
        let id = self.with_identity(deadline)?;
        let idx = self.our_nic(&id, nic)?;
        let api = Api::new(self);
        let mut checked = Checked::default();
        let mut early = None;
        let r = settle("alias move", deadline, || {
            self.claim_once(&api, &id, idx, &mut checked, &mut early, deadline)
        });
        self.early = early;
        r?;
        Ok(Claimed::new(None))
    }

    fn complete(
        &mut self,
        nic: &Nic,
        _claimed: &Claimed,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let Some(want) = self.shared.public_ip.clone() else {
            return Ok(());
        };
        let id = self.with_identity(deadline)?;
        let idx = self.our_nic(&id, nic)?;
        // Not the metadata server's word that the address is ours: a detach queued by a
        // killed start elsewhere would not show there yet (the API's settled read does).
        let early = self.early.take();
        self.move_public_ip(&Api::new(self), &id, idx, &want, early, deadline)
    }

    /// Best effort, within the budget stop gives it: the API is asked (never the metadata
    /// server alone, which does not show a change still queued), and an API that does not
    /// answer within `RELEASE_PROBE` ends the release at once.
    fn release(&mut self, budget: &Deadline) -> Result<(), CloudError> {
        let probe = budget.within(RELEASE_PROBE);
        let id = self.with_identity(&probe)?;
        let api = Api::new(self);
        for c in self.release_changes(&api, &id, &probe, budget)? {
            if let Change::ReleaseAlias { nic } = &c {
                let t = Target {
                    zone: &id.zone,
                    instance: &id.name,
                    nic,
                    own: true,
                };
                self.write(&api, &id, &t, Want::absent(self.ip), &mut || {}, budget)?;
            }
        }
        Ok(())
    }

    /// The same decisions as claim, complete and release, from the same reads, with
    /// nothing written.
    fn plan(&mut self, op: Op, nic: &Nic, deadline: &Deadline) -> Result<Vec<Planned>, CloudError> {
        let id = self.with_identity(deadline)?;
        let api = Api::new(self);
        let changes = match op {
            Op::Claim => {
                let idx = self.our_nic(&id, nic)?;
                self.alias_plan(&api, &id, idx, &mut Checked::default(), deadline)?
                    .0
            }
            Op::Extras => match self.shared.public_ip.clone() {
                None => Vec::new(),
                Some(want) => {
                    let idx = self.our_nic(&id, nic)?;
                    self.public_changes(&api, &id, idx, &want, deadline)?
                }
            },
            Op::Release => {
                self.release_changes(&api, &id, &deadline.within(RELEASE_PROBE), deadline)?
            }
        };
        Ok(changes.iter().map(|c| self.describe(&id, c)).collect())
    }

}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ranges() {
        let ip: IpAddr = "10.200.0.5".parse().unwrap();
        assert_eq!(cidr_contains("10.200.0.0/24", ip), Some(true));
        assert_eq!(cidr_contains("10.128.0.0/20", ip), Some(false));
        assert_eq!(cidr_contains("10.200.0.0", ip), None);
        assert_eq!(cidr_contains("x/24", ip), None);
    }

    #[test]
    fn instances_fail_closed() {
        assert!(name_and_zone(&json!({"name": "a"})).is_err());
        assert!(name_and_zone(&json!({"zone": "zones/z-a"})).is_err());
        assert_eq!(
            name_and_zone(&json!({"name": "a", "zone": "https://x/zones/us-central1-a"})).unwrap(),
            ("a", "us-central1-a")
        );
    }
}
