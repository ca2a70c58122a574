//! Load-balancer mode in a real Pacemaker cluster (issue 14): the emulator's load balancer
//! (`[lb]`, crates/sim/src/lb) in the cloud namespace owns the VIP as frontend IP, the
//! client reaches the VIP only through it (a host route via 10.66.0.254, ICMP redirects
//! ignored), and the load balancer forwards the VIP's packets, destination unchanged, to
//! the node it picked: in probe mode the one whose responder answers its probe
//! `threshold` times in a row, in Fast IP Move mode the backend service's `haPolicy`
//! leader or the last node that sent a valid GARP. The agent is configured as an admin
//! would (`cloud=azure`, `cloud=gce mode=probe`, `cloud=gce mode=fim`). Every scenario
//! asserts Pacemaker's view, the load balancer's (where it routes, and that two healthy
//! responders at once never happened) and the client's, and prints the client-measured
//! outage of each failover with what the probe rule predicts.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::clouds::Latency;
use super::harness::{Cluster, VIP};
use crate::clouds::spec;
use crate::netns::Lab;

const LONG: Duration = Duration::from_secs(60);
/// The probe port of the scenarios (Microsoft's 625<instance number> for instance 03).
pub const PROBE_PORT: u16 = 62503;

/// How the load balancer picks the node.
#[derive(Clone, Copy, Debug)]
pub enum Lb {
    /// A health-probed load balancer (Azure's Standard ILB, Google's internal passthrough
    /// NLB with a health check): probe interval and threshold, TCP or HTTP.
    Probe {
        interval: Duration,
        threshold: u32,
        http: bool,
    },
    /// GCE Fast IP Move: `haPolicy.leader` and GARP/RA.
    Fim,
}

/// One way to run the VIP behind the load balancer: the cloud the agent is told, and how
/// the load balancer decides.
pub struct Setup {
    pub name: &'static str,
    /// `pcs resource create` parameters after ip=.
    pub params: &'static [&'static str],
    pub lb: Lb,
}

pub const AZURE: Setup = Setup {
    name: "Azure (probe)",
    params: &["cloud=azure", "probe_port=62503"],
    lb: Lb::Probe {
        interval: Duration::from_millis(1000),
        threshold: 2,
        http: false,
    },
};

/// Microsoft's own probe settings (5 s x 2), for the outage they give.
pub const AZURE_SAP: Setup = Setup {
    name: "Azure (probe, 5 s x 2)",
    lb: Lb::Probe {
        interval: Duration::from_millis(5000),
        threshold: 2,
        http: false,
    },
    ..AZURE
};

pub const GCE_PROBE: Setup = Setup {
    name: "GCE ILB (probe, HTTP)",
    params: &[
        "cloud=gce",
        "mode=probe",
        "probe_port=62503",
        "probe_path=/health",
    ],
    lb: Lb::Probe {
        interval: Duration::from_millis(1000),
        threshold: 2,
        http: true,
    },
};

pub const GCE_FIM: Setup = Setup {
    name: "GCE Fast IP Move",
    params: &["cloud=gce", "mode=fim", "backend_service=ilb-bs"],
    lb: Lb::Fim,
};

fn backends(n: usize, fim: bool) -> Vec<Value> {
    (1..=n)
        .map(|i| {
            let mut b = json!({"name": format!("node{i}"), "address": format!("10.66.0.{i}")});
            if fim {
                b["mac"] = json!(Lab::mac(i));
            }
            b
        })
        .collect()
}

/// The world of `n` nodes behind the load balancer.
fn world(setup: &Setup, dir: &Path, n: usize) -> cloudvip_sim::World {
    match setup.lb {
        Lb::Probe {
            interval,
            threshold,
            http,
        } => cloudvip_sim::World {
            server: crate::clouds::server(dir),
            lb: Some(spec(json!({
                "frontends": [VIP],
                "interval_ms": interval.as_millis() as u64,
                "threshold": threshold,
                "probe": if http { "http:/health" } else { "tcp" },
                "probe_port": PROBE_PORT,
                "apply_routes": true,
                "backends": backends(n, false),
            }))),
            ..Default::default()
        },
        Lb::Fim => {
            // The GCE cluster world, plus what Fast IP Move needs: one GCE_VM_IP NEG per
            // node, a backend service with haPolicy GARP_RA and no leader yet, the VIP as
            // its forwarding rule's address.
            let mut w = crate::clouds::gce::GCE.world(dir, n, Latency::Zero, None);
            let g = w.gce.as_mut().expect("a GCE world");
            let mut negs = Vec::new();
            for inst in &g.instances {
                let neg = format!("neg-{}", inst.name);
                g.network_endpoint_groups.push(spec(json!({
                    "name": neg, "zone": inst.zone, "endpoints": [inst.name],
                })));
                negs.push(neg);
            }
            g.backend_services.push(spec(json!({
                "name": "ilb-bs", "backends": negs, "fast_ip_move": "GARP_RA",
            })));
            g.forwarding_rules.push(spec(json!({
                "name": "ilb-fr", "ip_address": VIP, "backend_service": "ilb-bs",
            })));
            w.lb = Some(spec(json!({
                "mode": "gce_leader",
                "backend_service": "ilb-bs",
                "frontends": [VIP],
                "garp_interface": "eth0",
                "apply_routes": true,
                "backends": backends(n, true),
            })));
            w
        }
    }
}

/// A cluster of `n` nodes behind the load balancer, the client routed through it.
pub fn cluster(setup: &Setup, n: usize) -> Cluster {
    let c = Cluster::start(n, |d| world(setup, d, n));
    crate::lb::through_the_lb(c.lab.ns(c.client()), VIP);
    c
}

fn lb_state(c: &Cluster) -> Value {
    c.admin("GET", "/admin/lb/state", None)
}

fn targets(s: &Value) -> Vec<String> {
    s["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect()
}

fn node(i: usize) -> String {
    format!("node{i}")
}

/// The haPolicy leader GCE has now.
fn leader(c: &Cluster) -> Option<String> {
    let s = c.admin("GET", "/admin/state", None);
    s["gce"]["loadBalancing"]["backendServices"]
        .as_array()?
        .iter()
        .find(|b| b["name"] == "ilb-bs")?
        .pointer("/haPolicy/leader/networkEndpoint/instance")?
        .as_str()
        .map(|i| i.rsplit('/').next().unwrap_or(i).to_owned())
}

/// Pacemaker runs the VIP on node `i`, the load balancer routes it there (in Fast IP Move
/// mode GCE's leader is node `i` too), and the client reaches node `i` through it.
fn assert_active(setup: &Setup, c: &Cluster, i: usize) {
    c.wait_located(i, LONG);
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let s = lb_state(c);
        let lead = match setup.lb {
            Lb::Fim => leader(c),
            Lb::Probe { .. } => Some(node(i)),
        };
        if targets(&s) == [node(i)] && lead == Some(node(i)) {
            break;
        }
        assert!(
            Instant::now() < end,
            "{}: the load balancer routes to {:?} (GCE leader {lead:?}), not node{i}: {s:#}",
            setup.name,
            targets(&s)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let p = c.prober();
    assert!(
        p.wait_answer(i, Instant::now(), Duration::from_secs(30)),
        "{}: the client does not reach node{i} through the load balancer",
        setup.name
    );
}

/// Never two healthy responders at once, and (Fast IP Move) never two nodes announcing
/// within 3 s of each other.
fn assert_never_two(setup: &Setup, c: &Cluster) {
    let s = lb_state(c);
    match setup.lb {
        Lb::Probe { .. } => {
            assert!(
                s["max_healthy_at_once"].as_u64() <= Some(1),
                "{}: two healthy responders at once: {:#}",
                setup.name,
                s["overlaps"]
            );
            assert!(s["overlaps"].as_array().is_some_and(Vec::is_empty), "{s:#}");
        }
        Lb::Fim => assert!(
            s["garp_races"].as_array().is_some_and(Vec::is_empty),
            "{}: two nodes announced within 3 s: {:#}",
            setup.name,
            s["garp_races"]
        ),
    }
}

fn create(setup: &Setup, c: &Cluster) -> usize {
    let mut args = vec![
        "pcs",
        "resource",
        "create",
        "VIP",
        "ocf:rust:cloudvip",
        "ip=10.66.0.100",
    ];
    args.extend(setup.params);
    args.extend(super::clouds::QUICK_OPS);
    c.cli(&args);
    let a = c.wait_placed(LONG);
    assert_active(setup, c, a);
    a
}

/// A failover from `a` by `action`, watched by the client through the load balancer.
fn failover(
    setup: &Setup,
    c: &mut Cluster,
    a: usize,
    action: impl FnOnce(&mut Cluster),
) -> (usize, Duration) {
    super::scenarios::watched_failover(c, a, action, |c, b| {
        assert_active(setup, c, b);
        assert_never_two(setup, c);
    })
}

/// What the load balancer's rule predicts for the outage.
fn expected(setup: &Setup) -> String {
    match setup.lb {
        Lb::Probe {
            interval,
            threshold,
            ..
        } => format!(
            "probe interval x threshold = {:.1} s",
            (interval * threshold).as_secs_f64()
        ),
        Lb::Fim => "Pacemaker's stop + start; the GARP moves traffic at once".into(),
    }
}

/// Create, standby, unstandby, move, the responder killed behind Pacemaker's back
/// (probe mode), and a crash of the active node, on a 3-node cluster; the client-measured
/// outage of each failover printed beside what the load balancer's rule predicts.
pub fn create_standby_move_crash(setup: &Setup) {
    let mut c = cluster(setup, 3);
    let fences = c.fence_events();
    let mut a = create(setup, &c);
    assert_never_two(setup, &c);
    let mut rows: Vec<(&str, Duration)> = Vec::new();

    let (b, o) = failover(setup, &mut c, a, |c| {
        c.cli(&["pcs", "node", "standby", &node(a)]);
    });
    rows.push(("standby", o));
    c.cli(&["pcs", "node", "unstandby", &node(a)]);
    c.settle();
    assert_active(setup, &c, b);

    let to = if b == 1 { 2 } else { 1 };
    let (back, o) = failover(setup, &mut c, b, |c| {
        c.cli(&["crm_resource", "--move", "-r", "VIP", "-N", &node(to)]);
    });
    assert_eq!(back, to);
    rows.push(("move", o));
    c.cli(&["crm_resource", "--clear", "-r", "VIP"]);
    c.settle();
    a = back;
    assert!(
        c.failures().is_empty(),
        "failed actions: {:#?}",
        c.failures()
    );
    assert_eq!(c.fence_events(), fences, "a node was fenced");

    if let Lb::Probe { .. } = setup.lb {
        a = responder_killed_is_recovered(setup, &c, a);
    }

    let (b, o) = failover(setup, &mut c, a, |c| c.crash(a));
    rows.push(("crash", o));
    c.restart(a);
    c.wait_online(3, LONG);
    c.settle();
    assert_active(setup, &c, b);
    assert_never_two(setup, &c);

    println!(
        "\nclient-measured outage through the emulated load balancer, {} ({}):",
        setup.name,
        expected(setup)
    );
    println!("| setup | action | outage |");
    println!("|---|---|---|");
    for (action, o) in rows {
        println!("| {} | {action} | {:.2} s |", setup.name, o.as_secs_f64());
    }
}

/// The responder of node `a` killed behind Pacemaker's back: the load balancer stops
/// routing there, a monitor sees it (its own probe fails), Pacemaker recovers the VIP, and
/// the load balancer follows; never two healthy.
fn responder_killed_is_recovered(setup: &Setup, c: &Cluster, a: usize) -> usize {
    let pidfile = format!("/run/resource-agents/cloudvip-respond-{VIP}.pid");
    let text = c.on(a, &["cat", &pidfile]);
    let pid = text.split_whitespace().next().expect("a pid").to_owned();
    c.on(a, &["kill", "-9", &pid]);
    let end = Instant::now() + LONG;
    while !c.failures().iter().any(|f| f.contains("VIP_monitor")) {
        assert!(
            Instant::now() < end,
            "no monitor noticed the dead responder: {}",
            c.crm_mon()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let now = c.wait_placed(LONG);
    assert_active(setup, c, now);
    assert_never_two(setup, c);
    for f in c.failures() {
        assert!(f.contains("VIP_monitor"), "unexpected failed action: {f}");
    }
    c.cli(&["pcs", "resource", "cleanup", "VIP"]);
    c.settle();
    assert_active(setup, c, now);
    now
}

/// Azure: probe mode is cloud=azure's default and only mode (1 s x 2 probes, TCP).
#[test]
fn azure_probe_create_standby_move_crash() {
    create_standby_move_crash(&AZURE);
}

/// Azure with Microsoft's SAP settings (probe every 5 s, threshold 2).
#[test]
fn azure_probe_outage_at_microsofts_probe_settings() {
    create_standby_move_crash(&AZURE_SAP);
}

/// GCE's internal passthrough NLB with an HTTP health check: cloud=gce mode=probe.
#[test]
fn gce_ilb_probe_create_standby_move_crash() {
    create_standby_move_crash(&GCE_PROBE);
}

/// GCE Fast IP Move: cloud=gce mode=fim sets haPolicy.leader and sends GARPs.
#[test]
fn gce_fast_ip_move_create_standby_move_crash() {
    create_standby_move_crash(&GCE_FIM);
}
