//! The load-balancer test world (issue 14): nodes A and B and client C on one segment, the
//! emulator's load balancer (`[lb]`, crates/sim/src/lb) in the cloud namespace owning the
//! frontend IP. The client reaches the frontend IP only through it; it probes each node's
//! responder and routes the frontend IP to the healthy one, packets keeping the frontend
//! IP as destination, so a node answers only while it also holds the VIP. `LbLab` is the
//! reusable harness (cluster tests build on it); the tests here drive it with responders
//! started through the agent's hidden subcommand.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudvip::deadline::Deadline;
use cloudvip::local::responder::{self, Listen, Probe, Spec};
use cloudvip_sim::admin::Cloud as _;
use cloudvip_sim::{Sim, SimHandle, World};
use serde_json::Value;

use crate::netns::Lab;
use crate::responder::in_ns;
use crate::util::{sh, BIN};

pub const VIP: &str = "10.66.1.100";
pub const PROBE_PORT: u16 = 62503;
/// The port of the stand-in service every node runs behind the VIP.
pub const SERVICE_PORT: u16 = 8080;

/// Three hosts (A, B, client C) and the cloud namespace with the load balancer in it.
pub struct LbLab {
    // The emulator first: it stops (and removes its routes) before the namespaces go.
    pub sim: SimHandle,
    pub lab: Lab,
    stop: Arc<AtomicBool>,
    servers: Vec<std::thread::JoinHandle<()>>,
}

/// The client in `ns` reaches `vip` only through the load balancer (10.66.0.254), and never
/// takes a shortcut an ICMP redirect would offer.
pub fn through_the_lb(ns: &str, vip: &str) {
    sh(&[
        "ip",
        "-n",
        ns,
        "route",
        "add",
        &format!("{vip}/32"),
        "via",
        "10.66.0.254",
    ]);
    for k in ["all", "eth0"] {
        let key = format!("net.ipv4.conf.{k}.accept_redirects=0");
        sh(&["ip", "netns", "exec", ns, "sysctl", "-q", "-w", &key]);
    }
}

/// The `[lb]` world part for nodes 1 and 2 (`probe` as `tcp` or `http:/path`).
pub fn lb_world(interval: Duration, threshold: u32, probe: &str) -> String {
    format!(
        r#"
[lb]
frontends = ["{VIP}"]
interval_ms = {}
threshold = {threshold}
probe = "{probe}"
probe_port = {PROBE_PORT}
apply_routes = true
backends = [{{ name = "a", address = "10.66.0.1" }}, {{ name = "b", address = "10.66.0.2" }}]
"#,
        interval.as_millis()
    )
}

impl LbLab {
    pub fn new(world: &str) -> LbLab {
        let mut lab = Lab::new(3);
        let cloud = lab.add_cloud();
        let w = World::from_toml(world).expect("world");
        let sim = in_ns(&cloud, move || Sim::start(w).expect("emulator"));
        through_the_lb(lab.ns(3), VIP);
        let stop = Arc::new(AtomicBool::new(false));
        let servers = (1..=2)
            .map(|i| service(lab.ns(i), ["node-a", "node-b"][i - 1], stop.clone()))
            .collect();
        LbLab {
            sim,
            lab,
            stop,
            servers,
        }
    }

    pub fn state(&self) -> Value {
        self.sim.lb().expect("lb").state()
    }

    pub fn reset(&self) {
        self.sim.lb().expect("lb").reset();
    }

    /// One request to the service behind the VIP from the client.
    pub fn ask(&self) -> Option<String> {
        in_ns(self.lab.ns(3), || ask(&format!("{VIP}:{SERVICE_PORT}")))
    }

    /// Wait (bounded) until `pred(state)`; the last state either way.
    pub fn wait_state(&self, within: Duration, pred: impl Fn(&Value) -> bool) -> (bool, Value) {
        let end = Instant::now() + within;
        loop {
            let s = self.state();
            if pred(&s) {
                return (true, s);
            }
            if Instant::now() > end {
                return (false, s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Node `i` takes the VIP and starts its responder (what the agent's start will do).
    pub fn activate(&self, i: usize, state: &Path, probe: &Probe) -> i32 {
        self.activate_vip(i, state, probe, &format!("{VIP}/32"))
    }

    /// `activate` for another VIP (`addr/len`, IPv6 too).
    pub fn activate_vip(&self, i: usize, state: &Path, probe: &Probe, vip: &str) -> i32 {
        let ns = self.lab.ns(i).to_owned();
        sh(&["ip", "-n", &ns, "addr", "add", vip, "dev", "eth0", "nodad"]);
        let (spec, st) = (spec(probe), state.to_owned());
        in_ns(&ns, move || {
            responder::start_responder_from(Path::new(BIN), &st, "vip", &spec, &dl())
                .expect("start_responder")
                .pid
        })
    }

    /// Node `i` ends its responder first, then gives up the VIP (the agent's stop order).
    pub fn deactivate(&self, i: usize, state: &Path) {
        self.deactivate_vip(i, state, &format!("{VIP}/32"))
    }

    pub fn deactivate_vip(&self, i: usize, state: &Path, vip: &str) {
        let (st, ns) = (state.to_owned(), self.lab.ns(i).to_owned());
        let ended = in_ns(&ns, move || {
            responder::stop_responder(&st, "vip", &dl()).expect("stop_responder")
        });
        assert!(ended, "node {i} had a responder to end");
        sh(&[
            "ip",
            "-n",
            self.lab.ns(i),
            "addr",
            "del",
            vip,
            "dev",
            "eth0",
        ]);
    }

    /// An IPv6 frontend: the load balancer's namespace gets fd00:66::fe, the client routes
    /// `vip6` through it and ignores redirects.
    pub fn ipv6_frontend(&self, vip6: &str) {
        let cloud = self.lab.ns(4).to_owned();
        sh(&[
            "ip",
            "-n",
            &cloud,
            "addr",
            "add",
            "fd00:66::fe/64",
            "dev",
            "eth0",
            "nodad",
        ]);
        let c = self.lab.ns(3).to_owned();
        let route = format!("{vip6}/128");
        sh(&[
            "ip",
            "-n",
            &c,
            "-6",
            "route",
            "add",
            &route,
            "via",
            "fd00:66::fe",
        ]);
        for k in ["all", "eth0"] {
            let key = format!("net.ipv6.conf.{k}.accept_redirects=0");
            sh(&["ip", "netns", "exec", &c, "sysctl", "-q", "-w", &key]);
        }
    }

    /// [`ask`](Self::ask) until someone answers, at most 5 s: the first connection may find
    /// the neighbour entries cold.
    pub fn ask_soon(&self) -> Option<String> {
        for _ in 0..50 {
            if let Some(a) = self.ask() {
                return Some(a);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// One request to `to` (`[addr]:port`) from the client.
    pub fn ask_at(&self, to: &str) -> Option<String> {
        let to = to.to_owned();
        in_ns(self.lab.ns(3), move || ask(&to))
    }

    /// The client asks the service behind the VIP, every `every`, for `for_`: the answers
    /// (`None`: no answer within 200 ms) with their times.
    pub fn client(
        &self,
        every: Duration,
        for_: Duration,
    ) -> std::thread::JoinHandle<Vec<(Instant, Option<String>)>> {
        let ns = self.lab.ns(3).to_owned();
        std::thread::spawn(move || {
            Lab::enter(&ns);
            let end = Instant::now() + for_;
            let mut seen = Vec::new();
            while Instant::now() < end {
                let t = Instant::now();
                seen.push((t, ask(&format!("{VIP}:{SERVICE_PORT}"))));
                std::thread::sleep(every.saturating_sub(t.elapsed()));
            }
            seen
        })
    }
}

impl Drop for LbLab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.servers.drain(..) {
            let _ = s.join();
        }
    }
}

fn dl() -> Deadline {
    Deadline::for_timeout(Some(Duration::from_secs(10)))
}

pub fn spec(probe: &Probe) -> Spec {
    Spec {
        port: PROBE_PORT,
        listen: Listen::Both,
        probe: probe.clone(),
    }
}

/// One request to the service; its answer, if any within 200 ms.
pub fn ask(to: &str) -> Option<String> {
    let to: SocketAddr = to.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&to, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The stand-in service on a node: says its name to whoever connects to port 8080, until
/// `stop` (bounded: at most 10 minutes, each connection answered at once).
fn service(ns: &str, name: &'static str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        Lab::enter(&ns);
        // Both families on one socket (net.ipv6.bindv6only is 0 in a fresh namespace).
        let l = TcpListener::bind(("::", SERVICE_PORT)).expect("service port");
        l.set_nonblocking(true).expect("nonblocking");
        let end = Instant::now() + Duration::from_secs(600);
        while !stop.load(Ordering::SeqCst) && Instant::now() < end {
            match l.accept() {
                Ok((mut s, _)) => {
                    let _ = s.write_all(format!("{name}\n").as_bytes());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })
}

/// The longest stretch without an answer between the last answer of `from` and the first
/// of `to`; None if the traffic never moved.
pub fn outage(seen: &[(Instant, Option<String>)], from: &str, to: &str) -> Option<Duration> {
    let first_to = seen.iter().position(|(_, a)| a.as_deref() == Some(to))?;
    let last_from = seen[..first_to]
        .iter()
        .rposition(|(_, a)| a.as_deref() == Some(from))?;
    Some(seen[first_to].0 - seen[last_from].0)
}

fn targets(s: &Value) -> Vec<String> {
    s["targets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Client traffic reaches the one healthy backend; two healthy responders at once show in
/// the load balancer's state; a failover (stop on A: responder first, then the VIP; start
/// on B: VIP, then responder) moves the traffic after about interval × threshold, with
/// never two healthy backends, and the outage the client saw is printed.
#[test]
fn client_traffic_follows_the_one_healthy_backend() {
    let (interval, threshold) = (Duration::from_millis(500), 2);
    let probe = Probe::Http {
        path: "/health".into(),
    };
    let lb = LbLab::new(&lb_world(interval, threshold, "http:/health"));
    let (sa, sb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bound = interval * (threshold + 3) + Duration::from_secs(3);

    // Nobody healthy: the frontend is a blackhole.
    assert_eq!(lb.ask(), None);
    lb.activate(1, sa.path(), &probe);
    let (ok, s) = lb.wait_state(bound, |s| targets(s) == ["a"]);
    assert!(ok, "the load balancer never routed to a: {s:#}");
    let c = lb.client(Duration::from_millis(50), Duration::from_millis(500));
    let seen = c.join().unwrap();
    assert!(
        seen.iter().all(|(_, a)| a.as_deref() == Some("node-a")),
        "the client reaches a, and only a: {seen:?}"
    );
    assert_eq!(s["max_healthy_at_once"], 1);

    // Two healthy responders at once: the harness sees it (a cluster must never do this).
    lb.activate(2, sb.path(), &probe);
    let (ok, s) = lb.wait_state(bound, |s| s["healthy_now"] == 2);
    assert!(ok, "b never turned healthy: {s:#}");
    assert_eq!(s["max_healthy_at_once"], 2);
    assert_eq!(s["overlaps"][0]["backends"], serde_json::json!(["a", "b"]));
    lb.deactivate(2, sb.path());
    let (ok, s) = lb.wait_state(bound, |s| targets(s) == ["a"]);
    assert!(ok, "b never turned unhealthy: {s:#}");
    lb.reset();

    // The failover, seen from the client.
    let c = lb.client(Duration::from_millis(20), bound + interval * 4);
    std::thread::sleep(interval);
    let t0 = Instant::now();
    lb.deactivate(1, sa.path());
    lb.activate(2, sb.path(), &probe);
    let (ok, s) = lb.wait_state(bound, |s| targets(s) == ["b"]);
    let moved = t0.elapsed();
    assert!(ok, "the traffic never moved to b: {s:#}");
    let seen = c.join().unwrap();
    let out = outage(&seen, "node-a", "node-b").unwrap_or_else(|| panic!("no move in {seen:?}"));
    println!(
        "emulated LB failover (interval {interval:?}, threshold {threshold}): client outage {out:?}, \
         load balancer re-routed {moved:?} after stop began"
    );
    assert!(
        seen.iter()
            .rev()
            .take(5)
            .all(|(_, a)| a.as_deref() == Some("node-b")),
        "the client ends on b: {:?}",
        &seen[seen.len().saturating_sub(5)..]
    );
    assert_eq!(s["max_healthy_at_once"], 1, "never two healthy: {s:#}");
    assert!(s["overlaps"].as_array().is_some_and(Vec::is_empty));
    let tr: Vec<(String, bool)> = s["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["backend"].as_str().unwrap().to_owned(),
                t["healthy"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(
        tr.contains(&("a".into(), false)) && tr.contains(&("b".into(), true)),
        "{tr:?}"
    );
    lb.deactivate(2, sb.path());
}

/// A TCP probe needs only the handshake; an HTTP probe on the wrong path (404) or a port
/// nobody answers keeps a backend unhealthy whatever else it serves.
#[test]
fn the_probe_decides_health() {
    let (interval, threshold) = (Duration::from_millis(200), 2);
    let lb = LbLab::new(&lb_world(interval, threshold, "http:/health"));
    let sa = tempfile::tempdir().unwrap();
    let bound = interval * (threshold + 3) + Duration::from_secs(3);
    // A responder that answers 200 on /ready only: the load balancer's /health gets 404.
    lb.activate(
        1,
        sa.path(),
        &Probe::Http {
            path: "/ready".into(),
        },
    );
    let (_, s) = lb.wait_state(bound, |s| {
        s["rounds"].as_u64() >= Some(u64::from(threshold) + 2)
    });
    assert_eq!(s["healthy_now"], 0, "{s:#}");
    let err = s["backends"][0]["last_error"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(err.contains("404"), "{err}");
    assert!(
        s["backends"][1]["last_error"].as_str().is_some(),
        "nobody on b"
    );
    lb.deactivate(1, sa.path());
    drop(lb);

    let lb = LbLab::new(&lb_world(interval, threshold, "tcp"));
    lb.activate(1, sa.path(), &Probe::Tcp);
    let (ok, s) = lb.wait_state(bound, |s| targets(s) == ["a"]);
    assert!(ok, "{s:#}");
    assert_eq!(lb.ask().as_deref(), Some("node-a"));
    lb.deactivate(1, sa.path());
}

/// cloudvip-sim's Fast IP Move world (backend service ilb-bs, leader node-a; the MACs are
/// this lab's) and the load balancer in gce_leader mode in front of it.
fn fim_world() -> String {
    let lb = format!(
        r#"
[lb]
mode = "gce_leader"
backend_service = "ilb-bs"
frontends = ["{VIP}"]
garp_interface = "eth0"
apply_routes = true
backends = [
  {{ name = "node-a", address = "10.66.0.1", mac = "{}" }},
  {{ name = "node-b", address = "10.66.0.2", mac = "{}" }},
]
"#,
        Lab::mac(1),
        Lab::mac(2)
    );
    format!(
        "{}{lb}",
        include_str!("../crates/sim/examples/world-fim.toml")
    )
}

fn ifindex(ns: &str) -> u32 {
    let out = sh(&["ip", "-n", ns, "-o", "link", "show", "eth0"]);
    out.split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .expect("ifindex")
}

fn mac_bytes(m: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (b, p) in out.iter_mut().zip(m.split(':')) {
        *b = u8::from_str_radix(p, 16).unwrap();
    }
    out
}

fn accepted_from(s: &Value, backend: &str) -> usize {
    s["garp_log"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|e| e["backend"] == backend && e["accepted"] == true)
                .count()
        })
        .unwrap_or(0)
}

/// Fast IP Move end to end: the frontend goes to the haPolicy leader; the new leader's
/// GARP (Google's packet format, from the agent's code) moves the traffic at once, before
/// any API call, and wins over the leader API; the repetitions come from the agent's
/// `__fim` daemon on its schedule and end by themselves; stopping them is immediate and
/// leaves 3 s of quiet before the next leader may announce.
#[test]
fn fast_ip_move_garp_moves_traffic_before_the_leader_update() {
    use cloudvip::local::fim::{self, Fim};
    let lb = LbLab::new(&fim_world());
    let gce = lb.sim.gce().expect("gce").clone();
    let bound = Duration::from_secs(5);
    sh(&[
        "ip",
        "-n",
        lb.lab.ns(1),
        "addr",
        "add",
        &format!("{VIP}/32"),
        "dev",
        "eth0",
    ]);
    let (ok, s) = lb.wait_state(bound, |s| targets(s) == ["node-a"]);
    assert!(ok, "the frontend goes to the leader: {s:#}");
    assert_eq!(lb.ask_soon().as_deref(), Some("node-a"));

    // Failover to b: a gives up the VIP, b takes it and announces.
    let c = lb.client(Duration::from_millis(20), Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(300));
    sh(&[
        "ip",
        "-n",
        lb.lab.ns(1),
        "addr",
        "del",
        &format!("{VIP}/32"),
        "dev",
        "eth0",
    ]);
    sh(&[
        "ip",
        "-n",
        lb.lab.ns(2),
        "addr",
        "add",
        &format!("{VIP}/32"),
        "dev",
        "eth0",
    ]);
    let f = Fim {
        ifindex: ifindex(lb.lab.ns(2)),
        mac: mac_bytes(&Lab::mac(2)),
        ip: VIP.parse().unwrap(),
        every: Duration::from_millis(300),
        hold: Duration::from_millis(1500),
    };
    let t0 = Instant::now();
    let first = std::time::SystemTime::now();
    in_ns(lb.lab.ns(2), {
        let f = f.clone();
        move || fim::send_now(&f).expect("GARP")
    });
    let (ok, s) = lb.wait_state(bound, |s| targets(s) == ["node-b"]);
    let moved = t0.elapsed();
    assert!(ok, "the GARP moved the frontend: {s:#}");
    assert_eq!(
        s["leader"], "node-a",
        "before any leader update: the GARP wins"
    );
    assert_eq!(accepted_from(&s, "node-b"), 1, "{s:#}");
    let seen = c.join().unwrap();
    let out = outage(&seen, "node-a", "node-b");
    println!(
        "Fast IP Move through the emulated LB: re-routed {moved:?} after the GARP, client gap {out:?} \
         (from a's last answer; a stopped answering when it gave up the VIP)"
    );
    assert!(seen
        .iter()
        .rev()
        .take(5)
        .all(|(_, a)| a.as_deref() == Some("node-b")));

    // The agent would now set haPolicy.leader (the console call stands in), then leave the
    // repetitions to its daemon.
    gce.ha.set_leader("ilb-bs", Some("node-b")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let st = state.path().to_owned();
    let r = in_ns(lb.lab.ns(2), {
        let (f, st) = (f.clone(), st.clone());
        move || {
            fim::start_fim_from(Path::new(BIN), &st, &f, first, std::time::SystemTime::now())
                .expect("start_fim")
        }
    });
    // 300 ms cadence until 1.5 s after the leader update: about five more GARPs, then the
    // daemon ends by itself.
    let (ok, s) = lb.wait_state(bound, |s| accepted_from(s, "node-b") >= 5);
    assert!(ok, "the daemon repeats the GARP: {s:#}");
    let end = Instant::now() + bound;
    while std::fs::metadata(format!("/proc/{}/cmdline", r.pid)).is_ok()
        && std::fs::read(format!("/proc/{}/cmdline", r.pid)).is_ok_and(|c| !c.is_empty())
        && Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = lb.state();
    assert!(
        accepted_from(&after, "node-b") <= 8,
        "it stops after its hold: {after:#}"
    );
    assert_eq!(after["targets"], serde_json::json!(["node-b"]));
    assert!(after["garp_races"].as_array().is_some_and(Vec::is_empty));

    // A long hold, ended by stop: no packet after it, and 3 s of quiet before it returns.
    let long = Fim {
        hold: Duration::from_secs(60),
        ..f.clone()
    };
    let r = in_ns(lb.lab.ns(2), {
        let st = st.clone();
        move || {
            let now = std::time::SystemTime::now();
            fim::start_fim_from(Path::new(BIN), &st, &long, now, now).expect("start_fim")
        }
    });
    let before = accepted_from(&lb.state(), "node-b");
    let (ok, _) = lb.wait_state(bound, |s| accepted_from(s, "node-b") > before);
    assert!(ok, "the second daemon announces");
    let ended = in_ns(lb.lab.ns(2), {
        let st = st.clone();
        move || fim::stop_fim(&st, VIP.parse().unwrap(), &dl())
    });
    assert!(ended, "stop ended the daemon");
    let s = lb.state();
    let last = s["garp_log"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["t_ms"].as_u64())
        .max()
        .unwrap();
    assert!(
        s["now_ms"].as_u64().unwrap() >= last + 2900,
        "stop returned within 3 s of the last GARP: last {last} now {}",
        s["now_ms"]
    );
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        lb.state()["garp_log"].as_array().unwrap().len(),
        s["garp_log"].as_array().unwrap().len(),
        "no GARP after stop"
    );
    assert!(std::fs::read(format!("/proc/{}/cmdline", r.pid)).map_or(true, |c| c.is_empty()));
}

/// An IPv6 frontend: probes over IPv6 to a responder listening on both families, traffic
/// routed to the healthy backend's IPv6 address and moving with the responder.
#[test]
fn an_ipv6_frontend_follows_the_healthy_backend() {
    let vip6 = "fd00:66:1::100";
    let world = format!(
        r#"
[lb]
frontends = ["{vip6}"]
interval_ms = 200
threshold = 2
probe = "tcp"
probe_port = {PROBE_PORT}
apply_routes = true
backends = [{{ name = "a", address6 = "fd00:66::1" }}, {{ name = "b", address6 = "fd00:66::2" }}]
"#
    );
    let lb = LbLab::new(&world);
    lb.ipv6_frontend(vip6);
    let (sa, sb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bound = Duration::from_secs(5);
    let to = format!("[{vip6}]:{SERVICE_PORT}");
    let answer = |want: &str| {
        (0..30).find_map(|_| {
            let a = lb.ask_at(&to).filter(|a| a == want);
            if a.is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            a
        })
    };
    lb.activate_vip(1, sa.path(), &Probe::Tcp, &format!("{vip6}/128"));
    let (ok, s) = lb.wait_state(bound, |s| targets(s) == ["a"]);
    assert!(ok, "{s:#}");
    assert_eq!(answer("node-a").as_deref(), Some("node-a"));
    lb.deactivate_vip(1, sa.path(), &format!("{vip6}/128"));
    lb.activate_vip(2, sb.path(), &Probe::Tcp, &format!("{vip6}/128"));
    let (ok, s) = lb.wait_state(bound, |s| targets(s) == ["b"]);
    assert!(ok, "{s:#}");
    assert_eq!(answer("node-b").as_deref(), Some("node-b"));
    assert_eq!(s["max_healthy_at_once"], 1);
    lb.deactivate_vip(2, sb.path(), &format!("{vip6}/128"));
}

/// Fast IP Move for an IPv6 frontend: the new leader's Router Advertisement (link-local
/// source, ff02::1, hop limit 255, the VIP as a /128 prefix) moves the traffic.
#[test]
fn fast_ip_move_ra_moves_an_ipv6_frontend() {
    use cloudvip::local::fim::{self, Fim};
    let vip6 = "fd00:66:1::100";
    let world = format!(
        r#"{}
[[gce.forwarding_rules]]
name = "ilb-fr6"
ip_address = "{vip6}"
backend_service = "ilb-bs"

[lb]
mode = "gce_leader"
backend_service = "ilb-bs"
frontends = ["{vip6}"]
garp_interface = "eth0"
apply_routes = true
backends = [
  {{ name = "node-a", address6 = "fd00:66::1", mac = "{}" }},
  {{ name = "node-b", address6 = "fd00:66::2", mac = "{}" }},
]
"#,
        include_str!("../crates/sim/examples/world-fim.toml"),
        Lab::mac(1),
        Lab::mac(2)
    );
    let lb = LbLab::new(&world);
    lb.ipv6_frontend(vip6);
    let bound = Duration::from_secs(5);
    // The RA leaves from the link-local address, which must be past duplicate detection.
    let end = Instant::now() + bound;
    while sh(&[
        "ip",
        "-n",
        lb.lab.ns(2),
        "-6",
        "addr",
        "show",
        "dev",
        "eth0",
        "scope",
        "link",
    ])
    .contains("tentative")
        && Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let to = format!("[{vip6}]:{SERVICE_PORT}");
    let answer = |want: &str| {
        (0..30).find_map(|_| {
            let a = lb.ask_at(&to).filter(|a| a == want);
            if a.is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            a
        })
    };
    let host = format!("{vip6}/128");
    sh(&[
        "ip",
        "-n",
        lb.lab.ns(1),
        "addr",
        "add",
        &host,
        "dev",
        "eth0",
        "nodad",
    ]);
    let (ok, s) = lb.wait_state(bound, |s| targets(s) == ["node-a"]);
    assert!(ok, "{s:#}");
    assert_eq!(answer("node-a").as_deref(), Some("node-a"));
    sh(&[
        "ip",
        "-n",
        lb.lab.ns(1),
        "addr",
        "del",
        &host,
        "dev",
        "eth0",
    ]);
    sh(&[
        "ip",
        "-n",
        lb.lab.ns(2),
        "addr",
        "add",
        &host,
        "dev",
        "eth0",
        "nodad",
    ]);
    let f = Fim {
        ifindex: ifindex(lb.lab.ns(2)),
        mac: mac_bytes(&Lab::mac(2)),
        ip: vip6.parse().unwrap(),
        every: fim::EVERY,
        hold: fim::HOLD,
    };
    in_ns(lb.lab.ns(2), move || fim::send_now(&f).expect("RA"));
    let (ok, s) = lb.wait_state(bound, |s| targets(s) == ["node-b"]);
    assert!(ok, "the RA moved the frontend: {s:#}");
    let ra = &s["garp_log"][0];
    assert_eq!(
        (ra["kind"].as_str(), ra["accepted"].as_bool()),
        (Some("ra"), Some(true)),
        "{s:#}"
    );
    assert_eq!(s["leader"], "node-a");
    assert_eq!(answer("node-b").as_deref(), Some("node-b"));
}

/// The agent itself in probe mode (`cloud=azure`), each node as Pacemaker runs it (no
/// HA_RSCTMP, a private /run/resource-agents): start adds the VIP and starts the
/// responder, and the load balancer routes the client's traffic there; monitor is 0, and 1
/// once this VIP's responder is gone, even with a stranger listening on the probe port;
/// stop ends the responder, then removes the VIP; the other node's start takes the
/// traffic; never two healthy backends.
#[test]
fn the_agent_in_probe_mode_drives_the_load_balancer() {
    use crate::util::Agent;
    let (interval, threshold) = (Duration::from_millis(300), 2);
    let lb = LbLab::new(&lb_world(interval, threshold, "http:/health"));
    let bound = interval * (threshold + 3) + Duration::from_secs(3);
    let params = [
        ("ip", VIP),
        ("nic", "eth0"),
        ("cloud", "azure"),
        ("probe_port", "62503"),
        ("probe_path", "/health"),
    ];
    let agent = |i: usize, action: &str| {
        Agent::new(action)
            .netns(lb.lab.ns(i))
            .env_remove("HA_RSCTMP")
            .params(&params)
            .run()
    };
    let pidfile =
        |i: usize| crate::util::node_dir(lb.lab.ns(i)).join(format!("cloudvip-respond-{VIP}.pid"));
    agent(1, "monitor").expect(7, None);
    agent(1, "start").expect(0, None);
    assert!(pidfile(1).exists(), "the responder's pid file");
    let (ok, s) = lb.wait_state(bound, |s| targets(s) == ["a"]);
    assert!(ok, "the load balancer never routed to a: {s:#}");
    assert_eq!(lb.ask_soon().as_deref(), Some("node-a"));
    agent(1, "monitor").expect(0, None);
    // A repeated start keeps the responder that answers.
    let before = std::fs::read_to_string(pidfile(1)).unwrap();
    agent(1, "start").expect(0, None);
    assert_eq!(std::fs::read_to_string(pidfile(1)).unwrap(), before);

    // The responder killed; a stranger listens on its port: not ours, monitor says 1.
    let pid: i32 = before.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: kill has no memory-safety preconditions; the pid is the responder's.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // Its socket goes when the kernel has torn the process down: bind until then (bounded).
    let stranger = in_ns(lb.lab.ns(1), || {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpListener::bind(("0.0.0.0", PROBE_PORT)) {
                Ok(l) => return l,
                Err(e) if Instant::now() > end => panic!("the stranger's port: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    agent(1, "monitor").expect(1, Some("probe"));
    drop(stranger);
    agent(1, "start").expect(0, None);
    agent(1, "monitor").expect(0, None);
    lb.reset();

    // The failover: stop on a (responder first, then the VIP), start on b.
    let c = lb.client(Duration::from_millis(20), bound + interval * 4);
    std::thread::sleep(interval);
    let t0 = Instant::now();
    agent(1, "stop").expect(0, None);
    assert!(!pidfile(1).exists(), "stop removed the responder's record");
    assert!(
        !sh(&["ip", "-n", lb.lab.ns(1), "addr", "show", "dev", "eth0"]).contains(VIP),
        "stop removed the VIP"
    );
    agent(1, "monitor").expect(7, None);
    agent(2, "start").expect(0, None);
    let (ok, s) = lb.wait_state(bound, |s| targets(s) == ["b"]);
    let moved = t0.elapsed();
    assert!(ok, "the traffic never moved to b: {s:#}");
    let seen = c.join().unwrap();
    let out = outage(&seen, "node-a", "node-b").unwrap_or_else(|| panic!("no move: {seen:?}"));
    println!(
        "the agent in probe mode (interval {interval:?}, threshold {threshold}): client outage \
         {out:?}, re-routed {moved:?} after stop began"
    );
    assert_eq!(s["max_healthy_at_once"], 1, "never two healthy: {s:#}");
    agent(2, "stop").expect(0, None);
    agent(2, "stop").expect(0, None);
}

/// `cloudvip status`, `diagnose` and `start --dry-run` in probe mode, by hand on the nodes:
/// status shows this node's responder; diagnose needs no credentials, checks the probe port
/// (this VIP's responder's, free, or a stranger's: FAIL) and reminds of the load
/// balancer's settings; on Azure without an IMDS the metadata check fails and says so; the
/// dry run plans the responder and changes nothing.
#[test]
fn probe_mode_status_diagnose_and_dry_run() {
    use crate::util::Agent;
    let lb = LbLab::new(&lb_world(Duration::from_millis(300), 2, "tcp"));
    let params = [
        ("ip", VIP),
        ("nic", "eth0"),
        ("cloud", "gce"),
        ("mode", "probe"),
        ("probe_port", "62503"),
    ];
    let by_hand = |i: usize, cmd: &str, cloud: &str| {
        let mut a = Agent::new(cmd)
            .netns(lb.lab.ns(i))
            .env_remove("OCF_RESOURCE_INSTANCE")
            .env_remove("HA_RSCTMP");
        if cmd == "start" {
            a = a.arg("--dry-run");
        }
        for (k, v) in params {
            let v = if k == "cloud" { cloud } else { v };
            if cloud == "azure" && k == "mode" {
                continue;
            }
            a = a.arg("-p").arg(format!("{k}={v}"));
        }
        a.run()
    };
    let line = |out: &str, name: &str| -> String {
        out.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no {name} step in:\n{out}"))
            .to_owned()
    };
    Agent::new("start")
        .netns(lb.lab.ns(1))
        .env_remove("HA_RSCTMP")
        .params(&params)
        .run()
        .expect(0, None);
    let st = by_hand(1, "status", "gce");
    assert!(
        st.stdout.contains("probe responder port 62503") && st.stdout.contains("this node (pid"),
        "{}{}",
        st.stdout,
        st.stderr
    );
    let d = by_hand(1, "diagnose", "gce");
    println!("{}\n{}", st.stdout, d.stdout);
    for name in ["metadata", "credentials", "permissions", "nic", "subnet"] {
        let l = line(&d.stdout, name);
        assert_eq!(l.split_whitespace().nth(2), Some("ok"), "{l}\n{}", d.stdout);
    }
    assert!(
        line(&d.stdout, "nic").contains("this VIP's responder's"),
        "{}",
        d.stdout
    );
    assert!(
        line(&d.stdout, "subnet").contains("health check on port 62503"),
        "{}",
        d.stdout
    );

    // Node 2: the dry run plans the responder and starts nothing.
    let dry = by_hand(2, "start", "gce");
    dry.expect(0, None);
    assert!(
        dry.stdout.contains("start the probe responder"),
        "{}",
        dry.stdout
    );
    let pidfile = crate::util::node_dir(lb.lab.ns(2)).join(format!("cloudvip-respond-{VIP}.pid"));
    assert!(!pidfile.exists(), "the dry run started a responder");
    // A stranger on the probe port: diagnose names it.
    let stranger = in_ns(lb.lab.ns(2), || {
        TcpListener::bind(("0.0.0.0", PROBE_PORT)).expect("the stranger's port")
    });
    let d = by_hand(2, "diagnose", "gce");
    let l = line(&d.stdout, "nic");
    assert_eq!(l.split_whitespace().nth(2), Some("FAIL"), "{}", d.stdout);
    assert!(l.contains("in use"), "{l}");
    drop(stranger);
    // Azure without an IMDS: the metadata check says so, the rest is skipped.
    let d = by_hand(2, "diagnose", "azure");
    let l = line(&d.stdout, "metadata");
    assert!(
        l.contains("FAIL") && l.contains("Instance Metadata Service"),
        "{}",
        d.stdout
    );
}
