//! The OCF actions: start, stop, monitor, migrate, reload, validate-all. Each opens its
//! context once (`Vip`: parameters, cloud backend, local side). Exit codes: what a cloud
//! error means is decided here alone (`cloud_exit`: backends answer in `CloudError`), and
//! so is every outcome of an action (stop never fails on the cloud, monitor fails only on
//! evidence). An error whose code its cause already decides travels as an `Exit`: a bad
//! parameter (`params.rs`, `cloud::config`: ERR_CONFIGURED), a NIC this node lacks or a
//! privilege it has not (`local/`: ERR_ARGS, ERR_PERM), a client that cannot be built
//! (`cloud::registry`: ERR_INSTALLED), the command line (`main.rs`, `admin.rs`).

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;

use crate::cloud::{self, CloudError, Daemon, Nic, Seen};
use crate::deadline::Deadline;
use crate::local::{Local, Presence};
use crate::ocf::env::OcfEnv;
use crate::ocf::{metadata, Action, Exit, Status};
use crate::params::{LocalMode, Params};

pub fn run(action: Action, env: &OcfEnv) -> anyhow::Result<Status> {
    // meta-data and usage work with no parameters, no privileges and no network
    // (ocf-tester runs meta-data as nobody; pcs runs it to build its forms).
    match action {
        Action::MetaData => {
            print(&metadata::xml(&crate::params::all()))?;
            return Ok(Status::Success);
        }
        Action::Usage => {
            print(&usage())?;
            return Ok(Status::Success);
        }
        _ => {}
    }
    let deadline = Deadline::for_action(env.timeout());
    match action {
        Action::Start => start(env, &mut Vip::open(env, &deadline)?, &deadline),
        Action::Stop => stop(env, &deadline),
        Action::Monitor => monitor(env, &mut Vip::open(env, &deadline)?, &deadline),
        Action::ValidateAll => validate_all(env, &deadline),
        // migrate_to leaves the VIP serving here until Pacemaker's stop that follows;
        // migrate_from on the target claims it (the cloud detaches it from us).
        Action::MigrateTo => {
            Params::parse(env)?;
            let target = env.meta.get("migrate_target").map_or("?", String::as_str);
            log::info!("migrate_to {target}: the VIP stays here until {target} claims it");
            Ok(Status::Success)
        }
        Action::MigrateFrom => start(env, &mut Vip::open(env, &deadline)?, &deadline),
        Action::Reload => reload(env, &deadline),
        Action::ReloadAgent => reload_agent(env, &deadline),
        Action::MetaData | Action::Usage => Ok(Status::Success),
    }
}

fn print(s: &str) -> anyhow::Result<()> {
    std::io::stdout()
        .write_all(s.as_bytes())
        .context("cannot write to stdout")
}

pub fn usage() -> String {
    let mut s = String::from(
        "usage: cloudvip {start|stop|monitor|migrate_to|migrate_from|reload|reload-agent|meta-data|validate-all|usage}\n\n\
         An OCF resource agent: Pacemaker runs it with the action as the only argument and the\n\
         parameters in OCF_RESKEY_<name> variables (see `cloudvip meta-data`).\n\nExit codes:\n",
    );
    for st in Status::ALL {
        s.push_str(&format!(
            "  {} {:<22} {}\n",
            st.code(),
            st.name(),
            st.meaning()
        ));
    }
    s
}

/// What a cloud error means for Pacemaker in start, migrate_from and monitor (and for a
/// dry run of them). Stop never gets here: its cloud errors are logged, not returned.
pub(crate) fn cloud_exit(e: CloudError) -> Exit {
    let status = match e.kind() {
        // Soft: Pacemaker retries or moves the VIP. Never 7 for a transient error: "not
        // running" would trigger a needless failover (resource-agents #2020).
        CloudError::Transient(_) | CloudError::Conflict(_) => Status::ErrGeneric,
        CloudError::Denied(_) => Status::ErrPerm,
        // Our own NIC or instance is unknown to the cloud: this node's problem.
        CloudError::NotFound(_) => Status::ErrArgs,
        CloudError::Invalid(_) => Status::ErrConfigured,
        // A credentials file, a CA: another node may be set up right (banned here only).
        // (`kind()` is never Coded.)
        CloudError::Local(_) | CloudError::Coded { .. } => Status::ErrInstalled,
    };
    Exit::new(status, e.to_string())
}

/// What an action works on, opened once: the parameters, the cloud backend (clients only,
/// no network round trip) and the local side (netlink).
struct Vip {
    params: Params,
    cloud: Box<dyn cloud::Cloud>,
    local: Local,
}

impl Vip {
    fn open(env: &OcfEnv, deadline: &Deadline) -> anyhow::Result<Vip> {
        Vip::of(Params::parse(env)?, env, deadline)
    }

    fn of(params: Params, env: &OcfEnv, deadline: &Deadline) -> anyhow::Result<Vip> {
        let state = env.state_dir();
        let cloud = cloud::backend(&params, state.as_deref())?;
        let local = Local::open(&params, state, deadline)?;
        Ok(Vip {
            params,
            cloud,
            local,
        })
    }

    fn parts(&mut self) -> (&Params, &mut Box<dyn cloud::Cloud>, &mut Local) {
        (&self.params, &mut self.cloud, &mut self.local)
    }
}

/// Start validates everything it can before the first cloud change, so that a start that
/// is going to fail never takes the VIP from its healthy holder first.
fn start(env: &OcfEnv, vip: &mut Vip, deadline: &Deadline) -> anyhow::Result<Status> {
    let (params, cloud, local) = vip.parts();
    let nic = local.resolve_nic(params.nic.as_deref())?;
    // Other software that removes or fights the VIP (nm-cloud-setup, ...): a WARNING.
    let vip = crate::os_agents::Vip::of(params, &nic.name);
    crate::os_agents::warn_at_start(std::path::Path::new("/"), &vip);
    before_start(params, local, &nic, cloud.as_mut(), deadline)?;
    let claimed = cloud
        .claim(&Nic::from(&nic), deadline)
        .map_err(|e| cloud_exit(e.at("claim")))?;
    let added = local.add(&nic)?;
    match (local.mode(), added) {
        (LocalMode::None, _) => log::info!("{} claimed in {}", params.ip, cloud.name()),
        (_, true) => log::info!("added {}/{} on {}", params.ip, params.prefix, nic.name),
        (_, false) => log::info!("{} was already on {}", params.ip, nic.name),
    }
    // A reload or a repeated start replaces the announcer, never adds a second one.
    local.end_announcer();
    local.announce(&claimed, &nic, deadline);
    if let Some(d) = cloud.daemon() {
        start_daemon(env, &d, &nic, deadline)?;
    }
    cloud
        .complete(&Nic::from(&nic), &claimed, deadline)
        .map_err(|e| cloud_exit(e.at("public IP")))?;
    Ok(Status::Success)
}

/// The backend's daemon, once the VIP works here (the proof says the cloud routes it
/// here): a probe responder that answers before that would draw traffic to a node that
/// cannot serve it; a Fast IP Move announcement before it would draw it to a node without
/// the address.
fn start_daemon(
    env: &OcfEnv,
    daemon: &Daemon,
    nic: &crate::local::netlink::Link,
    deadline: &Deadline,
) -> anyhow::Result<()> {
    let state = daemon_state(env)?;
    match daemon {
        Daemon::Responder { owner, spec } => {
            crate::local::responder::start_responder(&state, owner, spec, deadline)
                .map_err(|e| Exit::generic(format!("{e}")))?;
        }
        Daemon::Fim { ip } => {
            let mac = nic.mac.ok_or_else(|| {
                Exit::generic(format!(
                    "{} has no MAC address to announce {ip} from",
                    nic.name
                ))
            })?;
            crate::local::fim::start_leading(&state, nic.index, mac, *ip, deadline).map_err(
                |e| Exit::generic(format!("cannot announce {ip} for Fast IP Move: {e}")),
            )?;
        }
    }
    Ok(())
}

/// End the backend's daemon before the VIP leaves: a load balancer must see the probe
/// fail first, and a former leader must stop announcing at once. Best effort, as
/// everything stop does besides the address.
fn end_daemon(env: &OcfEnv, daemon: &Daemon, deadline: &Deadline) {
    let Ok(state) = daemon_state(env) else {
        return;
    };
    match daemon {
        Daemon::Responder { owner, .. } => {
            if let Err(e) = crate::local::responder::stop_responder(&state, owner, deadline) {
                log::warn!("stop: could not end the probe responder of {owner}: {e}");
            }
        }
        Daemon::Fim { ip } => {
            crate::local::fim::stop_fim(&state, *ip, deadline);
        }
    }
}

/// Where a daemon's pid file lives: the state directory.
fn daemon_state(env: &OcfEnv) -> Result<std::path::PathBuf, Exit> {
    env.state_dir().ok_or_else(|| {
        Exit::new(
            Status::ErrInstalled,
            "no state directory for a daemon's pid file",
        )
    })
}

/// Everything start checks before its first change, in its order: the parameters on this
/// node's interfaces, the link, where the address already is, the privileges, and the
/// cloud's read-only validation. A dry run of start runs the same checks.
pub(crate) fn before_start(
    params: &Params,
    local: &mut Local,
    nic: &crate::local::netlink::Link,
    cloud: &mut dyn cloud::Cloud,
    deadline: &Deadline,
) -> anyhow::Result<()> {
    check_here(params, local, nic)?;
    if local.mode() != LocalMode::None {
        if !nic.up {
            return Err(Exit::generic(format!(
                "{} is down or has no carrier: the VIP would not be reachable here",
                nic.name
            ))
            .into());
        }
        if let Presence::On(ifs) = local.presence()? {
            if !ifs.contains(&nic.name) {
                return Err(Exit::generic(format!(
                    "{} is already configured on {} of this node, not on {}: remove it there first",
                    params.ip,
                    ifs.join(", "),
                    nic.name
                ))
                .into());
            }
        }
        local.check_privileges()?;
    }
    cloud
        .validate(&Nic::from(nic), deadline)
        .map_err(|e| cloud_exit(e.at("validate")))?;
    Ok(())
}

/// How long stop tries to release the VIP in the cloud. Releasing is a courtesy: the next
/// start elsewhere takes the VIP anyway, and Pacemaker holds that start until this stop
/// returns, so a slow or unreachable API must not hold the failover up.
pub(crate) const STOP_RELEASE_BUDGET: Duration = Duration::from_secs(5);

/// Stop must not fail for reasons that do not leave the VIP here: a failed stop gets the
/// node fenced. Invalid parameters cannot have started anything; a cloud that does not
/// answer will have the VIP taken away by the next start elsewhere. Only a local address
/// that cannot be removed is a real failure.
fn stop(env: &OcfEnv, deadline: &Deadline) -> anyhow::Result<Status> {
    let params = match Params::parse_lenient(env) {
        Ok(p) => p,
        Err(e) => {
            log::warn!(
                "stop with invalid parameters ({e}): nothing can be running; reporting stopped"
            );
            return Ok(Status::Success);
        }
    };
    let state = env.state_dir();
    let mut local = Local::open(&params, state.clone(), deadline)?;
    let backend = cloud::backend(&params, state.as_deref());
    // First silence the announcer and the backend's daemon: once the address is gone, its
    // announcements would pull the traffic of the VIP's new holder back here.
    local.end_announcer();
    if let Some(d) = backend.as_ref().ok().and_then(|c| c.daemon()) {
        end_daemon(env, &d, deadline);
    }
    let removed = local.remove_everywhere()?;
    if removed.is_empty() {
        log::info!("{} was not configured on this node", params.ip);
    } else {
        log::info!("removed {} from {}", params.ip, removed.join(", "));
    }
    match backend {
        Ok(mut cloud) => {
            if let Err(e) = cloud.release(&deadline.within(STOP_RELEASE_BUDGET)) {
                log::warn!(
                    "stop: could not release {} in {} ({e}); reporting success, the next start elsewhere moves it",
                    params.ip,
                    cloud.name()
                );
            }
        }
        Err(e) => log::warn!("stop: no cloud backend ({e}); only the local address was removed"),
    }
    Ok(Status::Success)
}

/// How long monitor asks the cloud. A monitor answers for a VIP the kernel shows here: when
/// the metadata server or the API does not answer (down, 5xx, 429, a hang), that is no
/// evidence against the VIP, and waiting out the operation's timeout only delays the
/// next monitor. Depth 10 gets a little more for its API calls (and a token refresh).
const MONITOR_CLOUD_BUDGET: Duration = Duration::from_secs(2);
const DEEP_MONITOR_CLOUD_BUDGET: Duration = Duration::from_secs(4);
/// What a probe may spend filling the backend's caches (`Cloud::prime`), and at most half
/// its timeout: a first federation generates an RSA key, and an outage must not hold the
/// probe for long.
const PROBE_PRIME_BUDGET: Duration = Duration::from_secs(5);

/// Monitor recovers only on evidence. 7: the kernel (or, with local_mode=none, the cloud)
/// positively says the VIP is not here; 1: the kernel has it in the wrong place or on a
/// dead link, or the cloud positively does not route it here (elsewhere or nowhere); 0
/// otherwise, with a WARNING when the cloud could not be asked: Pacemaker recovers on 1
/// just as on 7, and a metadata or API outage must not restart a VIP the cloud still
/// routes here.
fn monitor(env: &OcfEnv, vip: &mut Vip, deadline: &Deadline) -> anyhow::Result<Status> {
    let (params, cloud, local) = vip.parts();
    if is_probe(env) {
        if let Ok(nic) = local.resolve_nic(params.nic.as_deref()) {
            let budget = PROBE_PRIME_BUDGET.min(deadline.remaining() / 2);
            cloud.prime(&Nic::from(&nic), &deadline.within(budget));
        }
    }
    // Absent locally: not running, and no need to ask the cloud (a probe asks nothing more).
    let ifs = match local.presence()? {
        Presence::Absent if local.mode() != LocalMode::None => return Ok(Status::NotRunning),
        Presence::Absent => Vec::new(),
        Presence::On(ifs) => ifs,
    };
    let nic = local.resolve_nic(params.nic.as_deref())?;
    let kernel_has_it = local.mode() != LocalMode::None;
    if kernel_has_it {
        if !ifs.contains(&nic.name) {
            return Err(Exit::generic(format!(
                "{} is configured on {}, expected on {}",
                params.ip,
                ifs.join(", "),
                nic.name
            ))
            .into());
        }
        if !nic.up {
            return Err(Exit::generic(format!(
                "{} holds {} but is down or has no carrier",
                nic.name, params.ip
            ))
            .into());
        }
    }
    let budget = if env.check_level >= 10 {
        DEEP_MONITOR_CLOUD_BUDGET
    } else {
        MONITOR_CLOUD_BUDGET
    };
    let asked = routed_here(
        cloud.as_mut(),
        &Nic::from(&nic),
        env.check_level,
        kernel_has_it,
        &deadline.within(budget),
    );
    match asked {
        Ok(Seen::Here) => Ok(Status::Success),
        Ok(_) if !kernel_has_it => Ok(Status::NotRunning),
        Ok(seen) => Err(Exit::generic(format!(
            "{} is configured on this node but {} does not route it here{}",
            params.ip,
            cloud.name(),
            match seen {
                Seen::Elsewhere(Some(why)) => format!(" ({why})"),
                _ => String::new(),
            }
        ))
        .into()),
        Err(e) if kernel_has_it || !is_probe(env) => {
            log::warn!(
                "monitor: cannot ask {} about {} ({e}); {}, reporting it running",
                cloud.name(),
                params.ip,
                if kernel_has_it {
                    "the kernel has it"
                } else {
                    "nothing says it left"
                }
            );
            Ok(Status::Success)
        }
        // A probe with local_mode=none: only the cloud knows, and it did not answer.
        Err(e) => Err(cloud_exit(e.at("check")).into()),
    }
}

/// Does the cloud route the VIP here, as far as `depth` may cost? `Here`, or `Elsewhere`
/// with the backend's reason when it gave one; never `NotAsked`. Where the backend cannot
/// tell at this depth (`NotAsked`: OCI's metadata lists no secondary IPs), the kernel's
/// word (checked by the caller) stands when it has one (`kernel`); with local_mode=none
/// nothing else can answer, so the cloud is asked as at depth 10.
pub(crate) fn routed_here(
    cloud: &mut dyn cloud::Cloud,
    nic: &Nic,
    depth: u32,
    kernel: bool,
    deadline: &Deadline,
) -> Result<Seen, CloudError> {
    Ok(match cloud.locate(nic, depth, deadline)? {
        Seen::NotAsked if kernel => Seen::Here,
        Seen::NotAsked => match cloud.locate(nic, depth.max(10), deadline)? {
            Seen::NotAsked => Seen::Elsewhere(None),
            seen => seen,
        },
        seen => seen,
    })
}

/// A probe (interval 0) asks whether the VIP runs here at all; a recurring monitor
/// watches one that does.
fn is_probe(env: &OcfEnv) -> bool {
    env.meta
        .get("interval")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_none_or(|ms| ms == 0)
}

/// Depth 0: the parameters alone, no host or network access (pcs runs this at create
/// time, possibly on another node). Depth 10 and more: also this node's environment.
fn validate_all(env: &OcfEnv, deadline: &Deadline) -> anyhow::Result<Status> {
    let params = Params::parse(env)?;
    if env.check_level >= 10 {
        let Vip {
            params,
            mut cloud,
            mut local,
        } = Vip::of(params, env, deadline)?;
        let nic = local.resolve_nic(params.nic.as_deref())?;
        check_here(&params, &mut local, &nic)?;
        cloud
            .validate(&Nic::from(&nic), deadline)
            .map_err(|e| cloud_exit(e.at("validate")))?;
    }
    Ok(Status::Success)
}

/// What the parameters mean on this node's interfaces: the label must fit the resolved
/// nic's name (IFNAMSIZ), and the VIP must not be an address the node already has.
fn check_here(
    params: &Params,
    local: &mut Local,
    nic: &crate::local::netlink::Link,
) -> anyhow::Result<()> {
    if let Some(label) = &params.label {
        if local.mode() == LocalMode::Address {
            crate::params::kernel_label(&nic.name, label)?;
        }
    }
    if let Some(ifname) = local.node_address()? {
        return Err(Exit::configured(format!(
            "ip={} is {ifname}'s own address, not one cloudvip added (a VIP must be an \
             address no node has)",
            params.ip
        ))
        .into());
    }
    Ok(())
}

/// Reload (OCF 1.0, called by ocf-tester and by hand; Pacemaker calls it only for agents
/// older than OCF 1.1) re-applies the local side and re-announces, for a VIP that is
/// running here.
fn reload(env: &OcfEnv, deadline: &Deadline) -> anyhow::Result<Status> {
    let mut vip = Vip::open(env, deadline)?;
    match monitor(env, &mut vip, deadline)? {
        Status::Success => start(env, &mut vip, deadline),
        _ => Err(Exit::generic("reload: the VIP is not running on this node").into()),
    }
}

/// OCF 1.1's reload-agent, with the new parameters, on the node that runs the VIP. Nothing
/// moves and nothing is removed: the parameters are checked as start checks them (a
/// ca_bundle that cannot be read fails here, not at the next failover), and the VIP is
/// announced again with the new settings, when the cloud (its metadata, no API quota)
/// confirms it routes the VIP here. The other reloadable parameters are read by the next
/// action that needs them.
fn reload_agent(env: &OcfEnv, deadline: &Deadline) -> anyhow::Result<Status> {
    let Vip {
        params,
        mut cloud,
        mut local,
    } = Vip::open(env, deadline)?;
    if local.mode() != LocalMode::None && local.presence()? == Presence::Absent {
        log::info!(
            "reload-agent: {} is not on this node; the new parameters apply at its next start",
            params.ip
        );
        return Ok(Status::Success);
    }
    let nic = local.resolve_nic(params.nic.as_deref())?;
    let budget = deadline.within(MONITOR_CLOUD_BUDGET);
    let kernel = local.mode() != LocalMode::None;
    match routed_here(cloud.as_mut(), &Nic::from(&nic), 0, kernel, &budget)
        .map(|seen| cloud::confirmed(seen == Seen::Here)) {
        Ok(Some(proof)) => {
            local.end_announcer();
            local.announce(&proof, &nic, deadline);
            log::info!(
                "reload-agent: new parameters in effect; {} announced again on {} ({} x {} ms)",
                params.ip,
                nic.name,
                params.arp_count,
                params.arp_interval.as_millis()
            );
        }
        Ok(None) => {
            // Announcing an address the cloud sends elsewhere would be a black hole; the
            // next monitor reports the VIP's state.
            local.end_announcer();
            log::warn!(
                "reload-agent: {} does not route {} here: not announced",
                cloud.name(),
                params.ip
            );
        }
        Err(e) => log::warn!(
            "reload-agent: cannot ask {} about {} ({e}); new parameters in effect, not announced again",
            cloud.name(),
            params.ip
        ),
    }
    Ok(Status::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloadable_parameters_exist_and_never_place_the_vip() {
        let reloadable: Vec<&str> = crate::params::all()
            .iter()
            .filter(|p| p.reloadable)
            .map(|p| p.name)
            .collect();
        for placing in [
            "ip",
            "cidr_netmask",
            "nic",
            "label",
            "local_mode",
            "cloud",
            "public_ip",
        ] {
            assert!(!reloadable.contains(&placing), "{placing}");
        }
    }

    /// Answers `NotAsked` below depth 10, `here` at 10 and more, and counts the questions.
    struct Shy {
        here: bool,
        asked: Vec<u32>,
    }

    impl cloud::Cloud for Shy {
        fn name(&self) -> &'static str {
            "shy"
        }
        fn locate(&mut self, _: &Nic, depth: u32, _: &Deadline) -> Result<Seen, CloudError> {
            self.asked.push(depth);
            Ok(match (depth >= 10, self.here) {
                (false, _) => Seen::NotAsked,
                (true, true) => Seen::Here,
                (true, false) => Seen::Elsewhere(None),
            })
        }
        fn claim(&mut self, _: &Nic, _: &Deadline) -> Result<cloud::Claimed, CloudError> {
            Err(CloudError::Invalid("not in this test".into()))
        }
        fn release(&mut self, _: &Deadline) -> Result<(), CloudError> {
            Ok(())
        }
    }

    #[test]
    fn depth_0_costs_nothing_when_the_kernel_can_answer() {
        let nic = Nic {
            name: "eth0".into(),
            mac: None,
        };
        let d = Deadline::for_timeout(None);
        let mut c = Shy {
            here: false,
            asked: Vec::new(),
        };
        // The kernel vouches: the cloud is asked at depth 0 only, and that stands.
        assert_eq!(routed_here(&mut c, &nic, 0, true, &d).unwrap(), Seen::Here);
        assert_eq!(c.asked, [0]);
        // local_mode=none: nothing else can answer, so the cloud is asked as at depth 10.
        c.asked.clear();
        assert_eq!(
            routed_here(&mut c, &nic, 0, false, &d).unwrap(),
            Seen::Elsewhere(None)
        );
        assert_eq!(c.asked, [0, 10]);
        c.here = true;
        assert_eq!(routed_here(&mut c, &nic, 10, true, &d).unwrap(), Seen::Here);
    }

    #[test]
    fn cloud_errors_never_mean_not_running() {
        let table = [
            (CloudError::Transient("503".into()), Status::ErrGeneric),
            (CloudError::Conflict("412".into()), Status::ErrGeneric),
            (CloudError::Denied("403".into()), Status::ErrPerm),
            (CloudError::NotFound("nic".into()), Status::ErrArgs),
            (CloudError::Invalid("range".into()), Status::ErrConfigured),
            (CloudError::Local("key file".into()), Status::ErrInstalled),
        ];
        for (e, want) in table {
            assert_eq!(cloud_exit(e).status, want);
        }
    }
}
