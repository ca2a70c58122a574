//! Issue 11 as a Pacemaker admin meets the agent, through pcs in a real cluster: a
//! duplicate `ip` is refused by pcs (OCF 1.1 `unique-group`) and the live VIP is untouched;
//! `pcs resource update` of a reloadable parameter makes Pacemaker run reload-agent, not
//! stop and start, and a client never loses the VIP, while a parameter that places the VIP
//! restarts it; a permission the cloud denies is named in `pcs status`. Each for both
//! clouds. (The installed package's files: scripts/test.sh runs `dpkg -V cloudvip` after
//! the suite; the nodes see the agent under test through an overlay, tests/ocf_root.rs.)

use std::time::{Duration, Instant};

use super::clouds::{Cloud, Latency};
use super::harness::{Cluster, Prober, VIP};
use super::scenarios::{self, node};
use crate::reload::AddrMonitor;

const LONG: Duration = Duration::from_secs(60);

macro_rules! pcmk_tests {
    ($m:ident, $cloud:expr) => {
        mod $m {
            use super::*;

            #[test]
            fn duplicate_ip_refused_by_pcs_live_vip_untouched() {
                duplicate_refused($cloud);
            }

            #[test]
            fn reloadable_update_reloads_without_restart() {
                reload_without_restart($cloud);
            }

            #[test]
            fn denied_permission_named_in_pcs_status() {
                denied_permission_named($cloud);
            }
        }
    };
}

pcmk_tests!(gce, crate::clouds::gce::GCE);
pcmk_tests!(oci, crate::clouds::oci::OCI);
pcmk_tests!(aws, crate::clouds::aws::AWS_SECONDARY_IP);

/// [`scenarios::assert_active`], and the address is on node `i`'s eth0.
fn assert_active(cloud: Cloud, c: &Cluster, i: usize) {
    scenarios::assert_active(cloud, c, i);
    let addrs = c.on(i, &["ip", "-o", "addr", "show", "dev", "eth0"]);
    assert!(
        addrs.contains(&format!(" {VIP}/")),
        "{VIP} is not on node{i}'s eth0:\n{addrs}"
    );
}

/// Create the VIP as an admin does; where it landed, settled.
fn create(cloud: Cloud, c: &Cluster) -> usize {
    let a = scenarios::create(cloud, c);
    c.settle();
    a
}

fn pacemaker_log(c: &Cluster, i: usize) -> String {
    std::fs::read_to_string(c.node_dir(i).join("var/log/pacemaker/pacemaker.log"))
        .unwrap_or_default()
}

/// How many `op` operations of resource `rsc` have finished, cluster-wide: each node's
/// controller logs "Result of <op> operation for <rsc> on <node>" for what it ran.
fn results(c: &Cluster, rsc: &str, op: &str) -> usize {
    let line = format!("Result of {op} operation for {rsc} on ");
    (1..=c.n)
        .map(|i| pacemaker_log(c, i).matches(line.as_str()).count())
        .sum()
}

#[derive(Debug, PartialEq, Eq)]
struct Ops {
    start: usize,
    stop: usize,
    reload: usize,
}

fn ops(c: &Cluster) -> Ops {
    Ops {
        start: results(c, "VIP", "start"),
        stop: results(c, "VIP", "stop"),
        reload: results(c, "VIP", "reload-agent"),
    }
}

/// Poll `f` (bounded by [`LONG`]) until it gives something.
fn wait_for<T>(c: &Cluster, what: &str, f: impl Fn() -> Option<T>) -> T {
    let end = Instant::now() + LONG;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "{what}: not after {LONG:?}\n{}",
            c.crm_mon()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wait until `done(ops)` holds.
fn wait_ops(c: &Cluster, what: &str, done: impl Fn(&Ops) -> bool) -> Ops {
    wait_for(c, what, || Some(ops(c)).filter(|o| done(o)))
}

/// `ip monitor address` saw the VIP deleted.
fn removed(events: &str) -> bool {
    events
        .lines()
        .any(|l| l.starts_with("Deleted") && l.contains(&format!(" {VIP}/")))
}

/// (lost, all): of the client's probes since `since`, how many node `i` did not answer.
fn lost(samples: &[(Instant, Option<String>)], since: Instant, i: usize) -> (usize, usize) {
    let want = node(i);
    let during: Vec<_> = samples.iter().filter(|(t, _)| *t >= since).collect();
    let lost = during
        .iter()
        .filter(|(_, w)| w.as_deref() != Some(want.as_str()))
        .count();
    (lost, during.len())
}

/// A 2-node cluster with the VIP running on node `a`, the operations so far, and the
/// client probing it (it reaches node `a`).
fn running(cloud: Cloud) -> (Cluster, usize, Ops, Prober) {
    let c = cloud.cluster(2, Latency::Zero);
    let a = create(cloud, &c);
    let before = ops(&c);
    let p = c.prober();
    assert!(
        p.wait_answer(a, Instant::now(), Duration::from_secs(10)),
        "the client does not reach node{a}"
    );
    (c, a, before, p)
}

/// Run pcs `args` on node `a`, which must refuse them (`what`: the duplicate value);
/// its output.
fn refused(c: &Cluster, a: usize, args: &[&str], what: &str) -> String {
    let out = c.on_raw(a, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "pcs accepted a second resource with {what}:\n{text}"
    );
    text
}

/// 1. With the VIP running, `pcs resource create DUP ... ip=<the same ip> --disabled` is
///    refused (pcs reads OCF 1.1's `unique-group`), nothing reaches the CIB, and the VIP
///    stays on its node, in the cloud and reachable, without a single lost probe. Control:
///    the same command with another ip is accepted, so the refusal is about uniqueness.
fn duplicate_refused(cloud: Cloud) {
    let (c, a, before, p) = running(cloud);
    let t0 = Instant::now();

    let mut dup = cloud.create_args("DUP");
    dup.push("--disabled");
    let text = refused(&c, a, &dup, &format!("ip={VIP}"));
    assert!(
        text.contains(&format!("Value '{VIP}' of option 'ip' is not unique"))
            && text.contains("'VIP'"),
        "pcs refused DUP, but not for the duplicate ip:\n{text}"
    );
    let resources = c.cli(&["cibadmin", "-Q", "-o", "resources"]);
    assert!(
        !resources.contains("id=\"DUP\""),
        "DUP reached the CIB:\n{resources}"
    );
    c.settle();
    assert_active(cloud, &c, a);
    assert_eq!(ops(&c), before, "the VIP was stopped or started");
    let (lost, n) = lost(&p.finish(), t0, a);
    assert!(n > 0, "no probe during the attempt");
    assert_eq!(
        lost, 0,
        "the client lost the VIP during the attempt ({lost}/{n})"
    );

    // Another ip with the live VIP's public_ip: two VIPs cannot share one public address.
    let mut shared = cloud.create_args("SHARED");
    for arg in shared.iter_mut() {
        if *arg == format!("ip={VIP}") {
            *arg = "ip=10.66.0.101";
        }
    }
    shared.push("--disabled");
    let text = refused(&c, a, &shared, "the live VIP's public_ip");
    assert!(
        text.contains("of option 'public_ip' is not unique"),
        "pcs refused SHARED, but not for the shared public_ip:\n{text}"
    );

    // Control: another ip and no public_ip is a different VIP, and pcs takes it.
    let mut other: Vec<&str> = shared
        .into_iter()
        .filter(|a| !a.starts_with("public_ip="))
        .collect();
    other[3] = "OTHER";
    c.cli(&other);
    let resources = c.cli(&["cibadmin", "-Q", "-o", "resources"]);
    assert!(
        resources.contains("id=\"OTHER\""),
        "OTHER is not in the CIB:\n{resources}"
    );
    c.settle();
    assert_active(cloud, &c, a);
    assert_eq!(ops(&c), before, "creating OTHER stopped or started the VIP");
    assert!(
        c.failures().is_empty(),
        "failed actions: {:#?}",
        c.failures()
    );
}

/// 2. `pcs resource update VIP arp_count=3` (reloadable): Pacemaker runs reload-agent on
///    the holder, no stop, no start, no failure; the agent logs the new settings; a client
///    probing every 20 ms loses not one probe, and the address never leaves the node's
///    interface (`ip monitor address`). Control: `cidr_netmask=32` (it shapes the
///    VIP on the node, not reloadable) is a stop and a start, and the address goes and
///    comes back.
fn reload_without_restart(cloud: Cloud) {
    let (c, a, before, p) = running(cloud);
    let mon = AddrMonitor::start(c.lab.ns(a));
    let t0 = Instant::now();
    c.cli(&["pcs", "resource", "update", "VIP", "arp_count=3"]);
    // Either is the end of Pacemaker's answer; which one is asserted below.
    wait_ops(&c, "reload-agent (or a restart) after arp_count=3", |o| {
        o.reload > before.reload || o.start > before.start
    });
    c.settle();
    // Probe on a little past the reload, for anything that follows it.
    let past = Instant::now();
    assert!(
        p.wait_answer(a, past + Duration::from_millis(500), Duration::from_secs(5)),
        "the client does not reach node{a} after the reload"
    );
    let samples = p.finish();
    let events = mon.finish();
    assert!(
        !removed(&events),
        "the reload took {VIP} off node{a}'s eth0:\n{events}"
    );
    let after = ops(&c);
    assert_eq!(
        (after.start, after.stop, after.reload),
        (before.start, before.stop, before.reload + 1),
        "arp_count=3: not exactly one reload-agent and nothing else"
    );
    let log = pacemaker_log(&c, a);
    assert!(
        log.lines().any(|l| l.contains("cloudvip(VIP)")
            && l.contains("reload-agent: new parameters in effect")
            && l.contains("(3 x")),
        "node{a}'s log has no reload-agent line with arp_count=3"
    );
    assert!(
        c.failures().is_empty(),
        "failed actions: {:#?}",
        c.failures()
    );
    let (lost0, n0) = lost(&samples, t0, a);
    assert!(n0 >= 10, "only {n0} probes during the update");
    assert_eq!(
        lost0, 0,
        "the client lost the VIP during the reload ({lost0}/{n0})"
    );
    assert_active(cloud, &c, a);

    // Control: a parameter that shapes the VIP restarts it.
    let mon = AddrMonitor::start(c.lab.ns(a));
    let p = c.prober();
    let t1 = Instant::now();
    c.cli(&["pcs", "resource", "update", "VIP", "cidr_netmask=32"]);
    let restarted = wait_ops(&c, "stop and start after cidr_netmask=32", |o| {
        o.stop > after.stop && o.start > after.start
    });
    c.settle();
    let b = c.wait_placed(LONG);
    assert!(
        p.wait_answer(b, t1, Duration::from_secs(30)),
        "the client does not reach node{b} after the restart"
    );
    let (lost, n) = lost(&p.finish(), t1, b);
    let events = mon.finish();
    assert!(
        removed(&events),
        "the restart did not take {VIP} off node{a}'s eth0 (ip monitor saw it all?):\n{events}"
    );
    assert_eq!(
        ops(&c).reload,
        restarted.reload,
        "cidr_netmask=32 was reloaded"
    );
    assert_active(cloud, &c, b);
    assert!(
        c.failures().is_empty(),
        "failed actions: {:#?}",
        c.failures()
    );
    println!(
        "{}: arp_count=3 reloaded on node{a}, 0/{n0} probes lost; cidr_netmask=32 restarted \
         it (now on node{b}), {lost}/{n} probes lost",
        cloud.name(),
    );
}

/// 3. The node that must take the VIP may not move it (GCE: its service account's role
///    lacks compute.instances.updateNetworkInterface; OCI: its instance principal may only
///    read): a standby of the holder makes the start there fail, and `pcs status`, as an
///    admin reads it, shows the failed start with the cause (GCE: the permission's name) in
///    its exit reason. The stop that follows the failed start succeeds: nobody is fenced.
fn denied_permission_named(cloud: Cloud) {
    let c = cloud.cluster_denying(2, 2);
    cloud.create_with(&c, &["--disabled"]);
    c.cli(&["pcs", "constraint", "location", "VIP", "prefers", "node1"]);
    c.cli(&["pcs", "resource", "enable", "VIP"]);
    assert_active(cloud, &c, 1);
    c.settle();
    let fences = c.fence_events();

    c.cli(&["pcs", "node", "standby", "node1"]);
    let failure = wait_for(&c, "a failed start on node2", || {
        c.failures()
            .into_iter()
            .find(|f| f.contains("op_key=\"VIP_start_0\"") && f.contains("node=\"node2\""))
    });
    c.settle();
    let out = c.on_raw(1, &["pcs", "status"]);
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    // "* VIP start on node2 returned 'insufficient privileges' (<exit reason>) at <date> after <ms>"
    let head = "VIP start on node2 returned 'insufficient privileges' (";
    let line = status
        .lines()
        .find(|l| l.contains(head))
        .unwrap_or_else(|| {
            panic!("pcs status has no failed start (OCF_ERR_PERM) on node2:\n{status}")
        });
    let reason = line
        .split_once(head)
        .and_then(|(_, r)| r.rsplit_once(") at "))
        .map(|(r, _)| r)
        .unwrap_or_else(|| panic!("no exit reason in pcs status: {line}"));
    println!("{}: pcs status: {line}", cloud.name());
    assert!(
        reason.len() <= 128,
        "exit reason longer than Pacemaker keeps"
    );
    assert!(
        cloud.names_denial(reason),
        "{}: pcs status does not name what the cloud denied: {line}",
        cloud.name()
    );
    assert!(
        failure.contains("exitreason=\""),
        "crm_mon: no exit reason: {failure}"
    );
    assert!(
        !c.locate().contains(&node(2)),
        "Pacemaker runs the VIP on node2"
    );
    assert_eq!(c.fence_events(), fences, "a node was fenced");
    // Nothing half-moved: the stop after the failed start left node2 without the VIP, and
    // the cloud gave node2 nothing. Stop leaves the public IP where it is (README), so it
    // is still node1's: GCE's alias is on no NIC, OCI's private IP never left node1's VNIC.
    let addrs = c.on(2, &["ip", "-o", "addr", "show", "dev", "eth0"]);
    assert!(
        !addrs.contains(&format!(" {VIP}/")),
        "the failed start left {VIP} on node2:\n{addrs}"
    );
    if let Err(e) = cloud.check_released(&c, 1) {
        panic!("the failed start moved something: {e}");
    }
    // The VIP comes back once the holder may hold it again.
    c.cli(&["pcs", "node", "unstandby", "node1"]);
    assert_active(cloud, &c, 1);
}
