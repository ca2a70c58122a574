//! An emulated internal load balancer for the test world (issue 14): it owns the frontend
//! IPs (clients reach them through the namespace it runs in), probes every backend's probe
//! port at `interval_ms` as Azure's and Google's health checks do (a backend turns
//! unhealthy after `threshold` failed probes in a row and healthy again after `threshold`
//! successes in a row; it starts unhealthy), and routes the frontend IPs to the healthy
//! backend (`route.rs`: packets keep the frontend IP as destination, as with floating IP /
//! direct server return). In `gce_leader` mode it does not probe: it routes to the leader
//! of a GCE backend service with `haPolicy` and follows GARP/RA packets as Fast IP Move
//! does (`leader.rs`).
//!
//! Everything it sees is in `GET /admin/lb/state`: each backend's health and probe counts,
//! the current targets, every transition, a bounded probe log, and whether two backends
//! were ever healthy at once (`max_healthy_at_once`, `overlaps`), which a cluster must
//! never let happen. It lives in the emulator process, so `cloudvip-sim --config` runs it
//! for a rehearsal as well as for the tests; it stops with the emulator and removes the
//! routes it made.

pub mod leader;
pub mod probe;
pub mod route;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::admin::{self, Cloud};
use crate::http::{Request, Response};
use crate::server::Core;
use crate::Started;
use probe::Probe;

fn interval() -> u64 {
    5000
}
fn threshold() -> u32 {
    2
}
fn log_max() -> usize {
    500
}
fn tcp() -> Probe {
    Probe::Tcp
}
fn garp_window() -> u64 {
    1200
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Azure's and Google's health-checked load balancers.
    #[default]
    Probe,
    /// A GCE backend service with `haPolicy`: the leader, or the last GARP/RA sender.
    GceLeader,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbWorld {
    /// The frontend IPs (the VIPs): IPv4 and/or IPv6.
    pub frontends: Vec<IpAddr>,
    #[serde(default)]
    pub mode: Mode,
    /// Time between probe rounds (Azure's SAP guides: 5000).
    #[serde(default = "interval")]
    pub interval_ms: u64,
    /// Consecutive results that change a backend's health (Azure's `probeThreshold`: 2).
    #[serde(default = "threshold")]
    pub threshold: u32,
    /// How long one probe may take; default the interval, at most 5 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// `tcp` or `http:/path`.
    #[serde(default = "tcp")]
    pub probe: Probe,
    #[serde(default)]
    pub probe_port: u16,
    /// gce_leader: the regional backend service (in `[gce]`) whose leader gets the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_service: Option<String>,
    /// gce_leader: the interface GARP/RA packets arrive on (default: every interface).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_interface: Option<String>,
    /// gce_leader: how long a GARP/RA re-route stays active ("approximately 20 minutes").
    #[serde(default = "garp_window")]
    pub garp_window_secs: u64,
    /// Change this namespace's routes (and turn on forwarding). Off: state only.
    #[serde(default)]
    pub apply_routes: bool,
    /// Entries kept in each log.
    #[serde(default = "log_max")]
    pub log_max: usize,
    pub backends: Vec<Backend>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// The GCE instance name in gce_leader mode.
    pub name: String,
    /// Where probes and IPv4 frontend traffic go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// Where IPv6 frontend traffic (and probes, without `address`) go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Addr>,
    /// gce_leader: the backend's MAC, to know who sent a GARP/RA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl Backend {
    fn probe_addr(&self, port: u16) -> Option<SocketAddr> {
        self.address
            .map(IpAddr::V4)
            .or(self.address6.map(IpAddr::V6))
            .map(|ip| SocketAddr::new(ip, port))
    }
    fn addresses(&self) -> Vec<IpAddr> {
        let mut v = Vec::new();
        v.extend(self.address.map(IpAddr::V4));
        v.extend(self.address6.map(IpAddr::V6));
        v
    }
}

impl LbWorld {
    pub fn validate(&self) -> Result<(), String> {
        if self.frontends.is_empty() {
            return Err("frontends: at least one".into());
        }
        if self.backends.is_empty() {
            return Err("backends: at least one".into());
        }
        if self.threshold == 0 || self.interval_ms == 0 {
            return Err("interval_ms and threshold must be positive".into());
        }
        for b in &self.backends {
            if b.address.is_none() && b.address6.is_none() {
                return Err(format!("backend {}: address or address6", b.name));
            }
        }
        match self.mode {
            Mode::Probe if self.probe_port == 0 => Err("probe_port is required".into()),
            Mode::GceLeader if self.backend_service.is_none() => {
                Err("gce_leader needs backend_service".into())
            }
            _ => Ok(()),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(self.interval_ms).clamp(1, 5000))
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct BackendState {
    pub name: String,
    pub healthy: bool,
    /// Consecutive successful / failed probes so far.
    pub ok_run: u32,
    pub fail_run: u32,
    pub probes: u64,
    pub failures: u64,
    pub last_ms: Option<f64>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Milliseconds since the emulator started.
    pub t_ms: u64,
    #[serde(flatten)]
    pub what: Value,
}

#[derive(Default)]
pub struct LbState {
    pub backends: Vec<BackendState>,
    /// The backends the frontends are routed to now.
    pub targets: Vec<String>,
    pub max_healthy_at_once: usize,
    /// Times when two or more backends were healthy: {since_ms, until_ms, backends}.
    pub overlaps: Vec<Value>,
    pub transitions: VecDeque<Event>,
    pub routes: VecDeque<Event>,
    pub probe_log: VecDeque<Event>,
    /// gce_leader: GARP/RA packets seen, accepted or not.
    pub garp_log: VecDeque<Event>,
    pub route_errors: Vec<String>,
    /// The last route change failed (e.g. the next hop not yet reachable): retried.
    pub routes_pending: bool,
    pub rounds: u64,
    /// gce_leader: the backend service's leader, the GARP/RA re-route in force, and every
    /// time two VMs announced within 3 s of each other.
    pub leader: Option<String>,
    pub garp_override: Option<leader::Override>,
    pub garp_races: Vec<Value>,
}

pub struct LbCloud {
    pub world: LbWorld,
    pub core: Arc<Core>,
    state: Mutex<LbState>,
    /// gce_leader: the GCE cloud and the backend service's name (set by `Sim::start`).
    pub gce: Option<(Arc<crate::gce::GceCloud>, String)>,
}

pub(crate) fn push(log: &mut VecDeque<Event>, max: usize, e: Event) {
    log.push_back(e);
    while log.len() > max {
        log.pop_front();
    }
}

impl LbCloud {
    pub fn lock(&self) -> MutexGuard<'_, LbState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now_ms(&self) -> u64 {
        self.core.started.elapsed().as_millis() as u64
    }

    pub(crate) fn event(&self, what: Value) -> Event {
        Event {
            t_ms: self.now_ms(),
            what,
        }
    }

    /// One probe round: every backend at once (a slow one delays nobody), then the health
    /// rule and the routes.
    fn probe_round(&self) {
        let w = &self.world;
        let timeout = w.timeout();
        let results: Vec<Result<Duration, String>> = std::thread::scope(|sc| {
            let handles: Vec<_> = w
                .backends
                .iter()
                .map(|b| {
                    sc.spawn(move || match b.probe_addr(w.probe_port) {
                        Some(to) => probe::run(to, &w.probe, timeout),
                        None => Err("no address".into()),
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("prober panicked".into())))
                .collect()
        });
        let mut g = self.lock();
        g.rounds += 1;
        for (i, r) in results.into_iter().enumerate() {
            let ev_probe = self.event(json!({
                "backend": w.backends[i].name,
                "ok": r.is_ok(),
                "ms": r.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0),
                "error": r.as_ref().err(),
            }));
            push(&mut g.probe_log, w.log_max, ev_probe);
            let b = &mut g.backends[i];
            b.probes += 1;
            let was = b.healthy;
            match r {
                Ok(d) => {
                    b.ok_run += 1;
                    b.fail_run = 0;
                    b.last_ms = Some(d.as_secs_f64() * 1000.0);
                    b.last_error = None;
                    if b.ok_run >= w.threshold {
                        b.healthy = true;
                    }
                }
                Err(e) => {
                    b.fail_run += 1;
                    b.ok_run = 0;
                    b.failures += 1;
                    b.last_error = Some(e);
                    if b.fail_run >= w.threshold {
                        b.healthy = false;
                    }
                }
            }
            if b.healthy != was {
                let healthy = b.healthy;
                let ev = self.event(json!({"backend": w.backends[i].name, "healthy": healthy}));
                push(&mut g.transitions, w.log_max, ev);
            }
        }
        let healthy: Vec<String> = g
            .backends
            .iter()
            .filter(|b| b.healthy)
            .map(|b| b.name.clone())
            .collect();
        self.track_overlap(&mut g, &healthy);
        self.route_to(&mut g, healthy);
    }

    fn track_overlap(&self, g: &mut LbState, healthy: &[String]) {
        g.max_healthy_at_once = g.max_healthy_at_once.max(healthy.len());
        let now = self.now_ms();
        let open = g
            .overlaps
            .last()
            .is_some_and(|o| o.get("until_ms").is_some_and(Value::is_null));
        match (healthy.len() >= 2, open) {
            (true, false) => g
                .overlaps
                .push(json!({"since_ms": now, "until_ms": null, "backends": healthy})),
            (false, true) => {
                if let Some(o) = g.overlaps.last_mut() {
                    o["until_ms"] = json!(now);
                }
            }
            _ => {}
        }
    }

    /// Point the frontends at `targets` (backend names) if that changed.
    pub fn route_to(&self, g: &mut LbState, targets: Vec<String>) {
        if g.targets == targets && g.rounds > 1 && !g.routes_pending {
            return;
        }
        let w = &self.world;
        if w.apply_routes {
            let via: Vec<IpAddr> = w
                .backends
                .iter()
                .filter(|b| targets.contains(&b.name))
                .flat_map(Backend::addresses)
                .collect();
            g.routes_pending = false;
            for fe in &w.frontends {
                if let Err(e) = route::set(*fe, &via) {
                    g.routes_pending = true;
                    if g.route_errors.last() != Some(&e) && g.route_errors.len() < w.log_max {
                        g.route_errors.push(e);
                    }
                }
            }
        }
        if g.targets != targets || g.routes.is_empty() {
            let ev = self.event(json!({"targets": targets}));
            push(&mut g.routes, w.log_max, ev);
        }
        g.targets = targets;
    }

    fn state_json(&self) -> Value {
        let g = self.lock();
        json!({
            "mode": self.world.mode,
            "frontends": self.world.frontends,
            "interval_ms": self.world.interval_ms,
            "threshold": self.world.threshold,
            "probe": self.world.probe,
            "probe_port": self.world.probe_port,
            "backends": g.backends,
            "targets": g.targets,
            "healthy_now": g.backends.iter().filter(|b| b.healthy).count(),
            "max_healthy_at_once": g.max_healthy_at_once,
            "overlaps": g.overlaps,
            "transitions": g.transitions,
            "routes": g.routes,
            "probe_log": g.probe_log,
            "garp_log": g.garp_log,
            "route_errors": g.route_errors,
            "rounds": g.rounds,
            "leader": g.leader,
            "garp_override": g.garp_override.as_ref().map(|o| json!({
                "backend": o.backend,
                "remaining_ms": o.until.saturating_duration_since(Instant::now()).as_millis() as u64,
            })),
            "garp_races": g.garp_races,
            "now_ms": self.now_ms(),
        })
    }

    /// Forget the logs and the overlap record (between phases of a test); keeps health.
    pub fn reset(&self) {
        let mut g = self.lock();
        let healthy = g.backends.iter().filter(|b| b.healthy).count();
        g.max_healthy_at_once = healthy;
        g.overlaps.clear();
        g.transitions.clear();
        g.probe_log.clear();
        g.garp_log.clear();
        g.route_errors.clear();
        g.garp_races.clear();
    }
}

impl Cloud for LbCloud {
    fn name(&self) -> &'static str {
        "lb"
    }
    fn state(&self) -> Value {
        self.state_json()
    }
    fn endpoints(&self) -> Value {
        json!({"frontends": self.world.frontends, "mode": self.world.mode})
    }
    fn admin(&self, req: &Request, rest: &[String]) -> Response {
        let r: Vec<&str> = rest.iter().map(String::as_str).collect();
        match (req.method.as_str(), r.as_slice()) {
            ("GET", ["state"]) => admin::ok(self.state_json()),
            ("POST", ["reset"]) => {
                self.reset();
                admin::ok(self.state_json())
            }
            _ => admin::err(404, format!("no route {} {}", req.method, req.path)),
        }
    }
}

/// Starts the load balancer's loop (and, in gce_leader mode, its GARP/RA listener on the
/// backend service `gce.1` of `gce.0`).
pub fn start(
    core: Arc<Core>,
    w: &LbWorld,
    gce: Option<(Arc<crate::gce::GceCloud>, String)>,
) -> Result<(Arc<LbCloud>, Started), String> {
    if w.apply_routes {
        route::enable_forwarding()?;
    }
    let cloud = Arc::new(LbCloud {
        world: w.clone(),
        core: core.clone(),
        state: Mutex::new(LbState {
            backends: w
                .backends
                .iter()
                .map(|b| BackendState {
                    name: b.name.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        gce,
    });
    let mut threads = Vec::new();
    if w.mode == Mode::GceLeader {
        let c = cloud.clone();
        let t = std::thread::Builder::new()
            .name("lb-garp".into())
            .spawn(move || leader::listen(c))
            .map_err(|e| e.to_string())?;
        threads.push(t);
    }
    let c = cloud.clone();
    let t = std::thread::Builder::new()
        .name("lb".into())
        .spawn(move || {
            let every = Duration::from_millis(c.world.interval_ms);
            while !c.core.stopped() {
                let t0 = Instant::now();
                match c.world.mode {
                    Mode::Probe => c.probe_round(),
                    Mode::GceLeader => c.leader_round(),
                }
                let pause = match c.world.mode {
                    Mode::Probe => every.saturating_sub(t0.elapsed()),
                    Mode::GceLeader => Duration::from_millis(20),
                };
                if !c.core.sleep(pause) {
                    break;
                }
            }
            if c.world.apply_routes {
                for fe in &c.world.frontends {
                    route::clear(*fe);
                }
            }
        })
        .map_err(|e| e.to_string())?;
    threads.push(t);
    Ok((cloud.clone(), Started { cloud, threads }))
}
