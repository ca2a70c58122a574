//! GCE under what Pacemaker really does: many resources on one NIC started and stopped at
//! once, nodes writing each other's alias lists at the same moment, and actions killed at
//! any step followed by what Pacemaker runs next. Operations take about a second, as on GCE
//! (gce-api.md §4), and each test runs under both behaviours of a busy instance (a second
//! mutation queued, or refused with 400 resourceNotReady) and both readings of when a NIC
//! fingerprint changes. The agent runs with Pacemaker's environment: no HA_RSCTMP, so its
//! state is in /run/resource-agents. That directory is shared by the simulated nodes of a
//! test (they are network namespaces on one host), which is harmless because the agent
//! keys each NIC writer by the API endpoint, the project, the writing instance and the
//! target NIC, as distinct as the real nodes' own /run would be.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cloudlab::CloudLab;
use crate::clouds::gce;
use crate::util::{Agent, Run, BIN};

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

/// The knobs of one emulated GCE.
#[derive(Clone, Copy, Debug)]
struct Mode {
    busy: &'static str,
    roll: &'static str,
    running_ms: u64,
}

const QUEUE: Mode = Mode {
    busy: "queue",
    roll: "accept",
    running_ms: 950,
};
const REJECT: Mode = Mode {
    busy: "reject",
    roll: "accept",
    running_ms: 950,
};

fn world(dir: &std::path::Path, m: Mode) -> cloudvip_sim::World {
    let mut w = gce::bare(dir, 3);
    gce::gce(&mut w).operations = crate::clouds::spec(json!({
        "pending_ms": 50,
        "running_ms": m.running_ms,
        "busy": m.busy,
        "fingerprint_roll": m.roll,
    }));
    w
}

/// Ranges that belong to nobody's VIP: they must survive everything.
const UNRELATED: [(&str, &str, Option<&str>); 3] = [
    ("node-a", "10.200.0.8/29", Some("vips")),
    ("node-b", "10.128.0.51/32", None),
    ("node-c", "10.200.0.16/29", Some("vips")),
];

struct Race {
    c: CloudLab,
    api: String,
}

impl Race {
    fn new(m: Mode) -> Race {
        let c = CloudLab::start(|d| world(d, m));
        let api = c.endpoints["gce"]["compute"].as_str().unwrap().to_owned();
        Race { c, api }
    }

    /// The agent on node `i` (1 = node-a) as pacemaker-execd runs it: the resource's
    /// parameters, its instance name and timeout, and nothing else (no HA_RSCTMP).
    fn agent(&self, i: usize, action: &str, vip: &str, rsc: &str, timeout_ms: u64) -> Agent {
        Agent::new(action)
            .env("OCF_RESOURCE_INSTANCE", rsc)
            .env("OCF_RESKEY_CRM_meta_timeout", &timeout_ms.to_string())
            .params(&[
                ("ip", vip),
                ("cloud", "gce"),
                ("nic", "eth0"),
                ("api_endpoint", &self.api),
                ("ca_bundle", &self.c.ca),
                ("arp_count", "0"),
            ])
            .netns(self.c.lab.ns(i))
    }

    /// The same, as a child process we may kill (`ip netns exec` execs the agent, so the
    /// child's PID is the agent's).
    fn spawn(&self, i: usize, action: &str, vip: &str, rsc: &str, timeout_ms: u64) -> Child {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.c.lab.ns(i), BIN, action]);
        for (k, _) in std::env::vars_os() {
            let n = k.to_string_lossy();
            if n.starts_with("OCF_") || n.starts_with("HA_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("OCF_RESOURCE_INSTANCE", rsc)
            .env("OCF_RESKEY_CRM_meta_timeout", timeout_ms.to_string())
            .env("OCF_RESKEY_ip", vip)
            .env("OCF_RESKEY_cloud", "gce")
            .env("OCF_RESKEY_nic", "eth0")
            .env("OCF_RESKEY_api_endpoint", &self.api)
            .env("OCF_RESKEY_ca_bundle", &self.c.ca)
            .env("OCF_RESKEY_arp_count", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd.spawn().expect("cannot spawn the agent")
    }

    fn state(&self) -> Value {
        self.c.admin("GET", "/admin/state", None)["gce"].clone()
    }

    /// Each instance's nic0 alias list, sorted.
    fn aliases(&self) -> Vec<(String, BTreeSet<String>)> {
        let st = self.state();
        NODES
            .iter()
            .map(|n| {
                let inst = st["instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|i| i["name"] == *n)
                    .unwrap();
                let set = inst["networkInterfaces"][0]["aliasIpRanges"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| a["ipCidrRange"].as_str().unwrap().to_owned())
                    .collect();
                (n.to_string(), set)
            })
            .collect()
    }

    fn aliases_of(&self, node: &str) -> BTreeSet<String> {
        self.aliases()
            .into_iter()
            .find(|(n, _)| n == node)
            .map(|(_, s)| s)
            .unwrap()
    }

    /// Set every NIC's list (behind the agent's back, no operation) to the unrelated
    /// ranges plus `extra`.
    fn reset(&self, extra: &[(&str, &str)]) {
        self.settle_ops();
        for (node, unrelated, range) in UNRELATED {
            let mut first = json!({ "ipCidrRange": unrelated });
            if let Some(r) = range {
                first["subnetworkRangeName"] = json!(r);
            }
            let mut list = vec![first];
            for (n, vip) in extra {
                if *n == node {
                    list.push(json!({"ipCidrRange": format!("{vip}/32")}));
                }
            }
            self.c.admin(
                "POST",
                &format!("/admin/gce/instances/{node}/nics/nic0"),
                Some(json!({ "aliasIpRanges": list })),
            );
        }
    }

    /// Wait until the emulator has no operation that is not DONE: whatever a killed
    /// action left queued has landed.
    fn settle_ops(&self) {
        let t = Instant::now();
        loop {
            let st = self.state();
            let busy = st["operations"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["status"] != "DONE");
            if !busy {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "operations still running after 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn patches(&self) -> usize {
        self.c
            .log()
            .iter()
            .filter(|e| e["api"] == "compute.instances.updateNetworkInterface")
            .count()
    }

    /// The request log's Compute API calls since the last `clear_log`.
    fn api_calls(&self) -> usize {
        self.c.api_calls()
    }

    /// Every unrelated range is where it was.
    fn assert_unrelated(&self, ctx: &str) {
        let all = self.aliases();
        for (node, r, _) in UNRELATED {
            let set = &all.iter().find(|(n, _)| n == node).unwrap().1;
            assert!(set.contains(r), "{ctx}: {node} lost {r}: {all:?}");
        }
    }
}

fn vips(n: usize) -> Vec<String> {
    (0..n).map(|k| format!("10.128.1.{}", 10 + k)).collect()
}

fn run_parallel(jobs: Vec<Agent>) -> (Vec<Run>, Duration) {
    let t = Instant::now();
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|a| std::thread::spawn(move || a.run()))
        .collect();
    let runs = handles.into_iter().map(|h| h.join().unwrap()).collect();
    (runs, t.elapsed())
}

/// 32 resources on node-b's one NIC start at once (16 of them move from node-a), then
/// stop at once: every exit 0, every VIP in the cloud and on eth0 afterwards (and gone
/// after the stops), the unrelated ranges untouched, and far fewer writes than VIPs.
fn parallel_starts_and_stops(m: Mode) {
    const N: usize = 32;
    const TIMEOUT: u64 = 20_000;
    let r = Race::new(m);
    let all = vips(N + 2);
    let (solo, rest) = all.split_at(2);
    // one start alone, for comparison: a move from node-a, and one nobody held
    r.reset(&[("node-a", &solo[0])]);
    r.c.clear_log();
    let t = Instant::now();
    r.agent(2, "start", &solo[0], "solo-move", TIMEOUT)
        .run()
        .ok();
    let one_move = t.elapsed();
    let one_move_api = r.api_calls();
    r.c.clear_log();
    let t = Instant::now();
    r.agent(2, "start", &solo[1], "solo-new", TIMEOUT)
        .run()
        .ok();
    let one_new = t.elapsed();
    let one_new_api = r.api_calls();
    for (v, n) in [(&solo[0], "solo-move"), (&solo[1], "solo-new")] {
        r.agent(2, "stop", v, n, TIMEOUT).run().ok();
    }

    let held: Vec<(&str, &str)> = rest[..N / 2]
        .iter()
        .map(|v| ("node-a", v.as_str()))
        .collect();
    r.reset(&held);
    r.c.clear_log();
    let jobs = rest
        .iter()
        .enumerate()
        .map(|(k, v)| r.agent(2, "start", v, &format!("vip{k}"), TIMEOUT))
        .collect();
    let (runs, took) = run_parallel(jobs);
    for run in &runs {
        run.ok();
    }
    let (starts_api, starts_patch) = (r.api_calls(), r.patches());
    let b = r.aliases_of("node-b");
    let local = r.c.lab.addrs(2);
    for v in rest {
        assert!(b.contains(&format!("{v}/32")), "{v} not on node-b: {b:?}");
        assert!(
            local.contains(&format!("inet {v}/32")),
            "{v} not on eth0: {local}"
        );
    }
    assert_eq!(b.len(), N + 1, "node-b: {b:?}");
    assert_eq!(
        r.aliases_of("node-a"),
        BTreeSet::from(["10.200.0.8/29".to_owned()])
    );
    r.assert_unrelated("after the parallel starts");
    assert!(
        starts_patch <= N / 2,
        "{starts_patch} alias writes for {N} starts: parallel actions on one NIC are not batched"
    );

    r.c.clear_log();
    let jobs = rest
        .iter()
        .enumerate()
        .map(|(k, v)| r.agent(2, "stop", v, &format!("vip{k}"), TIMEOUT))
        .collect();
    let (runs, stop_took) = run_parallel(jobs);
    for run in &runs {
        run.ok();
        assert!(
            !run.stderr.contains("could not release"),
            "a stop left its alias: {}",
            run.stderr
        );
    }
    let (stops_api, stops_patch) = (r.api_calls(), r.patches());
    assert_eq!(
        r.aliases_of("node-b"),
        BTreeSet::from(["10.128.0.51/32".to_owned()])
    );
    let local = r.c.lab.addrs(2);
    for v in rest {
        assert!(
            !local.contains(&format!("inet {v}/32")),
            "{v} still on eth0"
        );
    }
    r.assert_unrelated("after the parallel stops");
    assert!(stops_patch <= N / 2, "{stops_patch} writes for {N} stops");
    println!(
        "busy={} ops ~{} ms | one start: move {} ms ({one_move_api} API calls), new {} ms ({one_new_api}) \
         | {N} parallel starts (half moving from node-a): {} ms, {starts_api} API calls, {starts_patch} alias writes \
         | {N} parallel stops: {} ms, {stops_api} API calls, {stops_patch} alias writes",
        m.busy,
        m.running_ms + 50,
        one_move.as_millis(),
        one_new.as_millis(),
        took.as_millis(),
        stop_took.as_millis(),
    );
}

#[test]
fn parallel_starts_and_stops_on_one_nic_queued() {
    parallel_starts_and_stops(QUEUE);
}

#[test]
fn parallel_starts_and_stops_on_one_nic_refused_while_busy() {
    parallel_starts_and_stops(REJECT);
}

/// node-b and node-c take their VIPs from node-a while node-a adds a third, all at once,
/// round after round: no shared lock covers them. Each start verifies its change after its
/// operation is DONE and the instance is idle, and writes again if another node's write
/// undid it; the bound (see `writer::settle_list`) is that once a start has returned 0, no
/// write built before can still remove what it verified. So after every round, once the
/// emulator has no operation left, all three VIPs are where they were started and nothing
/// else is lost. Run under every busy behaviour and both fingerprint readings.
#[test]
fn cross_node_removals_while_a_third_adds() {
    const ROUNDS: usize = 3;
    let mut report = Vec::new();
    for m in [
        QUEUE,
        REJECT,
        Mode {
            roll: "apply",
            ..QUEUE
        },
        Mode {
            roll: "apply",
            ..REJECT
        },
    ] {
        let m = Mode {
            running_ms: 400,
            ..m
        };
        let r = Race::new(m);
        // A write reaches the API 300 ms after it was built: the other nodes' reads land
        // in between, so their writes are built from the same state as ours.
        r.c.fault(json!({"kind": "latency", "ms": 300, "api": "compute.instances.updateNetworkInterface"}));
        let [va, vb, vc] = ["10.128.2.1", "10.128.2.2", "10.128.2.3"];
        let mut rewrites = 0;
        for round in 0..ROUNDS {
            r.reset(&[("node-a", vb), ("node-a", vc)]);
            r.c.clear_log();
            // node-a's own start a little later each round, so it reads before, between
            // and after the two removals' operations
            let skew = Duration::from_millis(150 * round as u64);
            let (ra, rb, rc) = std::thread::scope(|s| {
                let a = s.spawn(|| {
                    std::thread::sleep(skew);
                    r.agent(1, "start", va, "vip-a", 20_000).run()
                });
                let b = s.spawn(|| r.agent(2, "start", vb, "vip-b", 20_000).run());
                let c = s.spawn(|| r.agent(3, "start", vc, "vip-c", 20_000).run());
                (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
            });
            for run in [&ra, &rb, &rc] {
                run.ok();
                rewrites += run.stderr.matches("writing again").count();
            }
            r.settle_ops();
            let ctx = format!("{m:?} round {round}");
            let all = r.aliases();
            for (node, vip) in [("node-a", va), ("node-b", vb), ("node-c", vc)] {
                for (n, set) in &all {
                    assert_eq!(
                        set.contains(&format!("{vip}/32")),
                        n == node,
                        "{ctx}: {vip} should be on {node} only: {all:?}"
                    );
                }
            }
            r.assert_unrelated(&ctx);
            // and every node serves its own
            for (i, vip) in [(1, va), (2, vb), (3, vc)] {
                assert!(r.c.holds_locally(i, vip), "{ctx}: {vip} not on node {i}");
            }
            let stops = [(1, va, "vip-a"), (2, vb, "vip-b"), (3, vc, "vip-c")]
                .into_iter()
                .map(|(i, vip, rsc)| r.agent(i, "stop", vip, rsc, 20_000))
                .collect();
            for run in run_parallel(stops).0 {
                run.ok();
            }
        }
        report.push(format!(
            "busy={} fingerprint_roll={}: {ROUNDS} rounds converged, {rewrites} rewrites after another node's write",
            m.busy, m.roll
        ));
    }
    for line in report {
        println!("{line}");
    }
}

/// A start that moves the VIP from node-a to node-b, SIGKILLed after each of its API
/// requests in turn (and before the first), followed by what Pacemaker runs next: stop on
/// node-b, then start again on node-b or on node-a (the old holder, whose metadata server
/// may still show the VIP while the killed start's removal is queued): alternately, and
/// both after each write and each wait. Every time the VIP ends on exactly the node
/// started last, served there, and nothing else is lost.
#[test]
fn sigkill_at_every_step_of_a_move() {
    let r = Race::new(Mode {
        running_ms: 250,
        ..QUEUE
    });
    // While the killed start runs, each Compute request waits before it is handled:
    // killing right after the k-th answer then lands before the (k+1)-th changes anything.
    let slow = json!({"kind": "latency", "ms": 80, "service": "compute"});
    let vip = "10.128.3.1";
    r.reset(&[("node-a", vip)]);
    r.c.fault(slow.clone());
    r.c.clear_log();
    r.agent(2, "start", vip, "vip", 20_000).run().ok();
    r.c.clear_faults();
    let steps: Vec<String> =
        r.c.log()
            .iter()
            .filter(|e| e["api_call"] == true)
            .map(|e| {
                format!(
                    "{} {}",
                    e["method"].as_str().unwrap_or(""),
                    e["api"].as_str().unwrap_or("")
                )
            })
            .collect();
    assert_eq!(
        steps
            .iter()
            .filter(|s| s.contains("updateNetworkInterface"))
            .count(),
        2,
        "a move is a removal and an add: {steps:#?}"
    );
    r.agent(2, "stop", vip, "vip", 20_000).run().ok();
    let mut points = 0;
    for k in 0..=steps.len() {
        let last = if k == 0 {
            "none"
        } else {
            steps[k - 1].as_str()
        };
        let critical = last.contains("updateNetworkInterface") || last.contains("wait");
        let follow: &[usize] = match (critical, k % 2) {
            (true, _) => &[1, 2],
            (false, 0) => &[2],
            (false, _) => &[1],
        };
        for &then_on in follow {
            // node-a failed or could not release it: the alias is still there
            r.reset(&[("node-a", vip)]);
            r.c.fault(slow.clone());
            r.c.clear_log();
            let mut child = r.spawn(2, "start", vip, "vip", 20_000);
            let t = Instant::now();
            while r.api_calls() < k {
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "the start never made {k} API calls"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = child.kill();
            let _ = child.wait();
            r.c.clear_faults();
            points += 1;
            let ctx = format!("killed after request {k} ({last}), then start on node {then_on}");
            // Pacemaker: the start failed (timed out), so stop it there, then start.
            r.agent(2, "stop", vip, "vip", 20_000).run().ok();
            let run = r.agent(then_on, "start", vip, "vip", 20_000).run();
            assert_eq!(run.code, 0, "{ctx}: {}", run.stderr);
            r.settle_ops();
            let all = r.aliases();
            let holder = NODES[then_on - 1];
            for (n, set) in &all {
                assert_eq!(
                    set.contains(&format!("{vip}/32")),
                    n == holder,
                    "{ctx}: {all:?}"
                );
            }
            r.assert_unrelated(&ctx);
            assert!(r.c.holds_locally(then_on, vip), "{ctx}: not served");
            let other = 3 - then_on;
            assert!(
                !r.c.holds_locally(other, vip),
                "{ctx}: still on node {other}"
            );
            r.agent(then_on, "stop", vip, "vip", 20_000).run().ok();
        }
    }
    println!(
        "a move is {} API requests: {}; {points} kill points, each followed by stop + start, all converged",
        steps.len(),
        steps.join(", ")
    );
}
