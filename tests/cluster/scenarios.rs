//! The issue's scenarios, written once for both clouds. Each step asserts Pacemaker's view
//! (`crm_resource --locate`, crm_mon's failed actions, the fencing history), the
//! emulator's cloud state (VIP and public IP on exactly the active node, nothing else
//! changed) and the client's view (ping, the node's TCP service, its MAC for the VIP).

use std::time::{Duration, Instant};

use serde_json::json;

use super::clouds::{Cloud, Latency};
use super::harness::{outage, Cluster};

const LONG: Duration = Duration::from_secs(60);

/// Pacemaker, the cloud and the client all agree that node `i` holds the VIP.
pub(super) fn assert_active(cloud: Cloud, c: &Cluster, i: usize) {
    c.wait_located(i, LONG);
    cloud.wait_state(c, i, Duration::from_secs(30));
    c.wait_client_sees(i, Duration::from_secs(30));
}

pub(super) fn node(i: usize) -> String {
    format!("node{i}")
}

/// Wait until Pacemaker runs the VIP on one node other than `not`; which one.
fn wait_moved(c: &Cluster, not: usize) -> usize {
    let end = Instant::now() + LONG;
    loop {
        let l = c.locate();
        if l.len() == 1 && l[0] != node(not) {
            return l[0].trim_start_matches("node").parse().unwrap();
        }
        assert!(
            Instant::now() < end,
            "the VIP did not leave node{not}: {l:?}\n{}",
            c.crm_mon()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_clean(c: &Cluster, fences_before: usize) {
    let f = c.failures();
    assert!(f.is_empty(), "failed actions: {f:#?}");
    assert_eq!(c.fence_events(), fences_before, "a node was fenced");
}

/// Create the resource and return where it landed, all three views checked.
pub(super) fn create(cloud: Cloud, c: &Cluster) -> usize {
    cloud.create(c);
    let a = c.wait_placed(LONG);
    assert_active(cloud, c, a);
    a
}

/// A failover by `action` from the active node `a`, watched by the client: returns the
/// new node and the outage the client saw.
fn failover(
    cloud: Cloud,
    c: &mut Cluster,
    a: usize,
    action: impl FnOnce(&mut Cluster),
) -> (usize, Duration) {
    watched_failover(c, a, action, |c, b| assert_active(cloud, c, b))
}

/// `failover`, with what must hold once the new node `b` answers the client (`arrived`).
pub(super) fn watched_failover(
    c: &mut Cluster,
    a: usize,
    action: impl FnOnce(&mut Cluster),
    arrived: impl FnOnce(&Cluster, usize),
) -> (usize, Duration) {
    let p = c.prober();
    assert!(
        p.wait_answer(a, Instant::now(), Duration::from_secs(10)),
        "the client does not reach node{a} before the failover"
    );
    let t0 = Instant::now();
    action(c);
    let b = wait_moved(c, a);
    assert!(
        p.wait_answer(b, t0, LONG),
        "the client never reached node{b}"
    );
    let o = outage(&p.finish(), a, b);
    arrived(c, b);
    (b, o)
}

fn standby(a: usize) -> impl FnOnce(&mut Cluster) {
    move |c: &mut Cluster| {
        c.cli(&["pcs", "node", "standby", &node(a)]);
    }
}

fn unstandby(c: &Cluster, a: usize) {
    c.cli(&["pcs", "node", "unstandby", &node(a)]);
    c.settle();
}

/// `crm_resource --move` to the first node that is not `a`.
fn move_away(a: usize) -> impl FnOnce(&mut Cluster) {
    move |c: &mut Cluster| {
        let to = if a == 1 { 2 } else { 1 };
        c.cli(&["crm_resource", "--move", "-r", "VIP", "-N", &node(to)]);
    }
}

fn clear(c: &Cluster) {
    c.cli(&["crm_resource", "--clear", "-r", "VIP"]);
    c.settle();
}

fn crash(a: usize) -> impl FnOnce(&mut Cluster) {
    move |c: &mut Cluster| c.crash(a)
}

/// 1, 2, 3 and 7: create; standby moves it (and the public IP) and unstandby leaves it
/// where it is; `crm_resource --move` moves it back and `--clear` keeps it there. `rounds`
/// rounds, for the client-observed outage at emulator latency 0.
pub fn create_standby_move(cloud: Cloud, rounds: usize) {
    let mut c = cloud.cluster(2, Latency::Zero);
    let fences = c.fence_events();
    for i in 1..=c.n {
        c.assert_production_env(i);
    }
    let mut a = create(cloud, &c);
    assert_clean(&c, fences);
    let mut table = vec![("standby", vec![]), ("move", vec![])];
    for _ in 0..rounds {
        let (b, o) = failover(cloud, &mut c, a, standby(a));
        table[0].1.push(o);
        unstandby(&c, a);
        assert_active(cloud, &c, b);

        let (back, o) = failover(cloud, &mut c, b, move_away(b));
        assert_eq!(back, a);
        table[1].1.push(o);
        clear(&c);
        assert_active(cloud, &c, a);
        a = back;
    }
    assert_clean(&c, fences);
    print_table(cloud, Latency::Zero, 2, table);
}

/// 4: a hard crash of the active node of a 3-node cluster; the VIP recovers on another
/// node; the crashed node reboots, rejoins and the VIP stays where it is. `rounds` rounds,
/// for the client-observed outage at emulator latency 0.
pub fn crash_recovers(cloud: Cloud, rounds: usize) {
    let mut c = cloud.cluster(3, Latency::Zero);
    let mut a = create(cloud, &c);
    let mut outages = vec![];
    for _ in 0..rounds {
        let (b, o) = failover(cloud, &mut c, a, crash(a));
        outages.push(o);
        assert!(
            !c.crm_mon().contains(&format!(
                "<node name=\"node{a}\" id=\"{a}\" online=\"true\""
            )),
            "node{a} still online after the crash"
        );
        c.restart(a);
        c.wait_online(3, LONG);
        c.settle();
        assert_active(cloud, &c, b);
        a = b;
    }
    let f = c.failures();
    assert!(f.is_empty(), "failed actions: {f:#?}");
    print_table(cloud, Latency::Zero, 3, vec![("crash", outages)]);
}

fn print_table(cloud: Cloud, latency: Latency, nodes: usize, table: Vec<(&str, Vec<Duration>)>) {
    println!(
        "\nclient-observed outage, {} emulator latency {latency:?}:",
        cloud.name()
    );
    println!("| cloud | latency | nodes | action | runs | median | min | max |");
    println!("|---|---|---|---|---|---|---|---|");
    for (action, mut v) in table {
        v.sort();
        println!(
            "| {} | {latency:?} | {nodes} | {action} | {} | {:.2} s | {:.2} s | {:.2} s |",
            cloud.name(),
            v.len(),
            v[v.len() / 2].as_secs_f64(),
            v[0].as_secs_f64(),
            v[v.len() - 1].as_secs_f64()
        );
    }
}

/// 5: the VIP is taken away in the cloud behind Pacemaker's back; a monitor notices and
/// Pacemaker recovers it.
pub fn removed_behind_back(cloud: Cloud) {
    let c = cloud.cluster(2, Latency::Zero);
    let fences = c.fence_events();
    let a = create(cloud, &c);
    cloud.remove_vip_behind_back(&c, a);
    assert!(
        cloud.check_state(&c, a).is_err(),
        "the console change did nothing"
    );
    let end = Instant::now() + LONG;
    while !c.failures().iter().any(|f| f.contains("VIP_monitor")) {
        assert!(Instant::now() < end, "no monitor noticed: {}", c.crm_mon());
        std::thread::sleep(Duration::from_millis(200));
    }
    let now = c.wait_placed(LONG);
    assert_active(cloud, &c, now);
    // Only the monitor failed: no failed start or stop, no fencing.
    for f in c.failures() {
        assert!(f.contains("VIP_monitor"), "unexpected failed action: {f}");
    }
    assert_eq!(c.fence_events(), fences, "a node was fenced");
}

/// 6: the cloud API down (503, then hanging) during monitors: nothing happens; down
/// during a failover: stop still succeeds, start waits for the API, the cluster settles
/// on the new node once it is back. Never a failed stop, never fencing.
pub fn api_outage(cloud: Cloud) {
    let c = cloud.cluster(2, Latency::Zero);
    let fences = c.fence_events();
    let a = create(cloud, &c);

    let p = c.prober();
    for kind in [
        json!({"kind": "error", "status": 503}),
        json!({"kind": "hang", "ms": 4000}),
    ] {
        cloud.api_outage(&c, kind.clone());
        std::thread::sleep(Duration::from_secs(5));
        assert!(c.fault_hits() > 0, "no monitor met the outage {kind}");
        c.clear_faults();
    }
    // Let the monitors that met the outage finish.
    std::thread::sleep(Duration::from_secs(4));
    let samples = p.finish();
    assert_eq!(c.locate(), vec![node(a)], "{}", c.crm_mon());
    assert_active(cloud, &c, a);
    assert_clean(&c, fences);
    let others: Vec<_> = samples
        .iter()
        .filter_map(|(_, w)| w.clone())
        .filter(|w| *w != node(a))
        .collect();
    assert!(others.is_empty(), "another node answered: {others:?}");
    let answered = samples.iter().filter(|(_, w)| w.is_some()).count();
    assert!(
        answered * 10 >= samples.len() * 9,
        "the client lost the VIP during the outage: {answered}/{} answered",
        samples.len()
    );

    // Down during a failover.
    cloud.api_outage(&c, json!({"kind": "error", "status": 503}));
    let p = c.prober();
    let t0 = Instant::now();
    c.cli(&["pcs", "node", "standby", &node(a)]);
    std::thread::sleep(Duration::from_secs(5));
    assert!(c.fault_hits() > 0, "the failover did not meet the outage");
    let b = if a == 1 { 2 } else { 1 };
    assert!(
        cloud.check_state(&c, b).is_err(),
        "the cloud moved the VIP while its API was down"
    );
    c.clear_faults();
    let back = Instant::now();
    c.wait_located(b, LONG);
    cloud.wait_state(&c, b, Duration::from_secs(30));
    assert!(p.wait_answer(b, t0, LONG), "client never reached node{b}");
    let settled = back.elapsed();
    p.finish();
    assert_active(cloud, &c, b);
    assert_clean(&c, fences);
    println!(
        "{}: standby during a 5 s API outage: VIP on node{b} {settled:?} after the API came back",
        cloud.name()
    );
}

/// The client-observed outage of standby, move and crash, `rounds` times each, on a
/// 2-node cluster; prints a table row per action (median, min, max).
pub fn outage_windows(cloud: Cloud, latency: Latency, rounds: usize) {
    let mut c = cloud.cluster(2, latency);
    let mut a = create(cloud, &c);
    let mut table: Vec<(&str, Vec<Duration>)> =
        vec![("standby", vec![]), ("move", vec![]), ("crash", vec![])];
    for _ in 0..rounds {
        let (b, o) = failover(cloud, &mut c, a, standby(a));
        table[0].1.push(o);
        unstandby(&c, a);
        a = b;

        let (b, o) = failover(cloud, &mut c, a, move_away(a));
        table[1].1.push(o);
        clear(&c);
        a = b;

        let (b, o) = failover(cloud, &mut c, a, crash(a));
        table[2].1.push(o);
        c.restart(a);
        c.wait_online(2, LONG);
        c.settle();
        assert_active(cloud, &c, b);
        a = b;
    }
    let f = c.failures();
    assert!(f.is_empty(), "failed actions: {f:#?}");
    print_table(cloud, latency, 2, table);
}

/// Issue 9: an API outage longer than an operation heals by itself. The cloud's control
/// plane is down for 60 s (longer than the start timeout) from the moment the active node
/// goes to standby: the stop there succeeds, the start on the other node retries until its
/// deadline and fails, Pacemaker bans it there for `failure-timeout`, and then starts it
/// again, now with the API back. Nobody runs `pcs resource cleanup`. Prints when the
/// client reaches the VIP again after the API returned; asserts it does, within
/// failure-timeout + a start and a stop timeout, and that nothing was fenced. While an
/// agent runs, its environment is read: exactly Pacemaker's, no HA_RSCTMP.
pub fn outage_heals(cloud: Cloud) {
    const OUTAGE: Duration = Duration::from_secs(60);
    let c = cloud.cluster(2, Latency::Zero);
    let fences = c.fence_events();
    cloud.create_documented(&c);
    let a = c.wait_placed(LONG);
    assert_active(cloud, &c, a);
    let b = if a == 1 { 2 } else { 1 };
    let p = c.prober();
    assert!(
        p.wait_answer(a, Instant::now(), Duration::from_secs(10)),
        "the client does not reach node{a} before the outage"
    );

    cloud.api_outage(&c, json!({"kind": "error", "status": 503}));
    let t0 = Instant::now();
    c.cli(&["pcs", "node", "standby", &node(a)]);
    let env = c
        .agent_environ(&[a, b], t0 + OUTAGE - Duration::from_secs(2))
        .expect("no cloudvip agent seen running during the outage");
    assert!(
        !env.iter().any(|v| v.starts_with("HA_RSCTMP=")),
        "Pacemaker gave the agent HA_RSCTMP: {env:?}"
    );
    assert!(
        env.iter().any(|v| v == "OCF_RESOURCE_INSTANCE=VIP"),
        "{env:?}"
    );
    std::thread::sleep(OUTAGE.saturating_sub(t0.elapsed()));
    assert!(c.fault_hits() > 0, "the failover did not meet the outage");
    assert!(
        cloud.check_state(&c, b).is_err(),
        "the cloud moved the VIP while its API was down"
    );
    let during = c.failures();
    c.clear_faults();
    let back = Instant::now();
    // failure-timeout (60 s) + a start and a stop that may be running (60 s each).
    let bound = Duration::from_secs(180);
    assert!(
        p.wait_answer(b, back, bound),
        "{}: the VIP did not come back on node{b} within {bound:?} of the API's return \
         without pcs resource cleanup\n{}",
        cloud.name(),
        c.crm_mon()
    );
    let healed = back.elapsed();
    p.finish();
    c.wait_located(b, LONG);
    cloud.wait_state(&c, b, Duration::from_secs(30));
    assert_eq!(c.fence_events(), fences, "a node was fenced");
    println!(
        "\n{}: API down {} s from the standby of node{a}: the client reached the VIP on \
         node{b} {:.1} s after the API returned ({:.1} s after the standby), no cleanup; \
         failed actions during the outage: {}",
        cloud.name(),
        OUTAGE.as_secs(),
        healed.as_secs_f64(),
        (back - t0 + healed).as_secs_f64(),
        during.len()
    );
}
