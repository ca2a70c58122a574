//! Google Compute Engine: the live state (`state.rs`), the Compute API v1 and the OAuth token
//! endpoint (`compute.rs`), operations (`operations.rs`), the metadata server
//! (`metadata.rs`), service-account keys and tokens (`oauth.rs`), list filters
//! (`filter.rs`). This file owns `GceCloud` (state + clock), `start`, and the
//! `/admin/gce/...` routes. Wire facts: `shared/research/gce-api.md`.

pub mod backend;
pub mod compute;
pub mod errors;
pub mod filter;
pub mod metadata;
pub mod net;
pub mod oauth;
pub mod operations;
pub mod state;
pub mod world;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::admin::{self, Cloud};
use crate::http::{Request, Response};
use crate::server::{spawn_listener, Core, ListenerSpec};
use crate::Started;
use state::{GceState, Links};

/// Bound endpoints of the GCE listeners.
#[derive(Clone, Debug)]
pub struct GceEndpoints {
    /// `http(s)://127.0.0.1:port`
    pub api: String,
    pub metadata: BTreeMap<String, SocketAddr>,
    pub metadata_shared: Option<SocketAddr>,
}

pub struct GceCloud {
    pub world: world::GceWorld,
    pub core: Arc<Core>,
    /// The Compute discovery document's bytes (`world.discovery_document`), as read at start.
    pub discovery: Option<Vec<u8>>,
    /// Backend services with haPolicy, their NEGs and forwarding rules.
    pub ha: backend::HaState,
    state: Mutex<GceState>,
    changed: Condvar,
    endpoints: OnceLock<GceEndpoints>,
}

impl GceCloud {
    pub fn new(core: Arc<Core>, w: &world::GceWorld) -> Result<GceCloud, String> {
        let discovery = match &w.discovery_document {
            None => None,
            Some(p) => Some(load_discovery(p)?),
        };
        Ok(GceCloud {
            world: w.clone(),
            core,
            discovery,
            ha: backend::HaState::new(w)?,
            state: Mutex::new(GceState::new(w)?),
            changed: Condvar::new(),
            endpoints: OnceLock::new(),
        })
    }

    /// Locks the state after letting operations progress to "now".
    pub fn lock(&self) -> MutexGuard<'_, GceState> {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if operations::advance(&mut g, &self.world, &self.core.faults) {
            self.changed.notify_all();
        }
        g
    }

    /// Wakes long-polls after a change made under the lock.
    pub fn notify(&self) {
        self.changed.notify_all();
    }

    /// Waits up to `d` (bounded) for any change, then re-advances operations.
    pub fn wait<'a>(
        &'a self,
        g: MutexGuard<'a, GceState>,
        d: Duration,
    ) -> MutexGuard<'a, GceState> {
        let d = d.min(Duration::from_millis(50));
        let (mut g, _) = self
            .changed
            .wait_timeout(g, d)
            .unwrap_or_else(|e| e.into_inner());
        if operations::advance(&mut g, &self.world, &self.core.faults) {
            self.changed.notify_all();
        }
        g
    }

    /// Blocks until `done(state)` or `timeout`, or the emulator stops.
    pub fn wait_until<'a>(
        &'a self,
        mut g: MutexGuard<'a, GceState>,
        timeout: Duration,
        mut done: impl FnMut(&GceState) -> bool,
    ) -> MutexGuard<'a, GceState> {
        let end = Instant::now() + timeout;
        while !done(&g) && !self.core.stopped() {
            let now = Instant::now();
            if now >= end {
                break;
            }
            g = self.wait(g, end - now);
        }
        g
    }

    pub fn links(&self) -> Links<'_> {
        Links {
            base: &self.world.self_link_base,
            project: &self.world.project,
        }
    }

    pub fn endpoints_info(&self) -> Option<&GceEndpoints> {
        self.endpoints.get()
    }

    /// The emulator's own token URL.
    pub fn own_token_uri(&self) -> String {
        format!(
            "{}/token",
            self.endpoints.get().map(|e| e.api.as_str()).unwrap_or("")
        )
    }

    /// The `token_uri` written into key files.
    pub fn token_uri(&self) -> String {
        self.world
            .token_uri
            .clone()
            .unwrap_or_else(|| self.own_token_uri())
    }

    /// Issues an access token for a service account (admin API, tests, metadata server).
    pub fn mint_token(&self, email: &str, scopes: Vec<String>, lifetime: Duration) -> String {
        let token = oauth::new_access_token();
        let mut g = self.lock();
        g.tokens.insert(
            token.clone(),
            oauth::Token {
                service_account: email.to_string(),
                scopes,
                expires: SystemTime::now() + lifetime,
            },
        );
        token
    }

    /// Generates a new key for a service account and returns Google's key-file JSON.
    pub fn new_key_file(&self, email: &str) -> Result<Value, String> {
        if !self.world.service_accounts.iter().any(|s| s.email == email) {
            return Err(format!("no service account {email}"));
        }
        // Key generation is slow-ish; done outside the state lock.
        let key = oauth::generate_key(email)?;
        let file = oauth::key_file(&self.world.project, &key, &self.token_uri());
        self.lock().keys.push(key);
        Ok(file)
    }

    /// Whether `email` holds IAM permission `perm` (gce-api.md §3.2, 403 `forbidden`).
    pub fn permitted(&self, email: &str, perm: &str) -> bool {
        let Some(sa) = self
            .world
            .service_accounts
            .iter()
            .find(|s| s.email == email)
        else {
            return false;
        };
        match &sa.permissions {
            None => true,
            Some(ps) => ps.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => perm.starts_with(prefix),
                None => p == perm,
            }),
        }
    }

    fn state_json(&self) -> Value {
        let l = self.links();
        let g = self.lock();
        let region = &self.world.region;
        let instances: Vec<Value> = g
            .instances
            .iter()
            .map(|i| {
                let mut v = state::instance_json(&l, region, i);
                v["metadataSource"] = json!(i.metadata_source.map(|a| a.to_string()));
                v
            })
            .collect();
        let addresses: Vec<Value> = g
            .addresses
            .iter()
            .map(|a| state::address_json(&l, region, &g, a))
            .collect();
        let ops: Vec<Value> = g.operations.iter().map(|o| o.json(&l)).collect();
        json!({
            "project": self.world.project,
            "projectNumber": self.world.project_number,
            "region": region,
            "zones": self.world.zones,
            "instances": instances,
            "addresses": addresses,
            "operations": ops,
            "version": g.version,
            "loadBalancing": self.ha.state_json(&l, region),
        })
    }

    /// `/admin/gce/...`.
    fn admin_route(&self, req: &Request, rest: &[String]) -> Response {
        let r: Vec<&str> = rest.iter().map(String::as_str).collect();
        let body = || req.json();
        match (req.method.as_str(), r.as_slice()) {
            ("GET", ["state"]) => admin::ok(self.state_json()),
            ("POST", ["tokens"]) => {
                let b = match body() {
                    Ok(b) => b,
                    Err(e) => return admin::err(400, e),
                };
                let Some(email) = b.get("service_account").and_then(Value::as_str) else {
                    return admin::err(400, "service_account is required");
                };
                if !self.world.service_accounts.iter().any(|s| s.email == email) {
                    return admin::err(404, format!("no service account {email}"));
                }
                let scopes = b
                    .get("scopes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_else(|| vec![world::CLOUD_PLATFORM.to_string()]);
                let life = b
                    .get("lifetime_secs")
                    .and_then(Value::as_u64)
                    .unwrap_or(self.world.token_lifetime_secs);
                let t = self.mint_token(email, scopes, Duration::from_secs(life));
                admin::ok(json!({"access_token": t, "expires_in": life, "token_type": "Bearer"}))
            }
            ("POST", ["tokens", "expire"]) => {
                // Every token issued so far expires now (tests of the 401 path).
                let mut g = self.lock();
                let past = SystemTime::now() - Duration::from_secs(1);
                for t in g.tokens.values_mut() {
                    t.expires = past;
                }
                g.metadata_tokens.clear();
                admin::ok(json!({"expired": g.tokens.len()}))
            }
            ("POST", ["service-accounts", email, "keys"]) => match self.new_key_file(email) {
                Ok(k) => admin::ok(k),
                Err(e) => admin::err(404, e),
            },
            ("POST", ["instances", name, "nics", nic]) => self.admin_set_nic(name, nic, req),
            ("POST", ["backend-services", bs, "leader"]) => {
                let b = body().unwrap_or_default();
                match self
                    .ha
                    .set_leader(bs, b.get("instance").and_then(Value::as_str))
                {
                    Ok(()) => admin::ok(json!({"leader": self.ha.leader_of(bs)})),
                    Err(e) => admin::err(400, e),
                }
            }
            ("POST", ["operations", "release"]) => {
                // Lets stuck operations finish without deleting their fault rules.
                let mut g = self.lock();
                let mut n = 0;
                for o in g.operations.iter_mut() {
                    if o.stuck_fault.take().is_some() {
                        n += 1;
                    }
                }
                drop(g);
                self.notify();
                admin::ok(json!({"released": n}))
            }
            _ => admin::err(404, format!("no route {} {}", req.method, req.path)),
        }
    }

    /// Changes a NIC behind the agent's back, as someone in the console would: aliases and/or
    /// access configs replaced immediately (no operation), fingerprint re-rolled.
    fn admin_set_nic(&self, name: &str, nic: &str, req: &Request) -> Response {
        let b = match req.json() {
            Ok(b) => b,
            Err(e) => return admin::err(400, e),
        };
        let mut g = self.lock();
        let Some(ii) = g.instance_by_name(name) else {
            return admin::err(404, format!("no instance {name}"));
        };
        let Some(ni) = g.instances[ii].nics.iter().position(|n| n.name == nic) else {
            return admin::err(404, format!("no nic {nic} on {name}"));
        };
        let mut aliases = None;
        if let Some(a) = b.get("aliasIpRanges") {
            let Some(arr) = a.as_array() else {
                return admin::err(400, "aliasIpRanges must be a list");
            };
            let mut v = Vec::new();
            for x in arr {
                let cidr = x.get("ipCidrRange").and_then(Value::as_str).unwrap_or("");
                let range = match cidr.parse() {
                    Ok(r) => r,
                    Err(e) => return admin::err(400, e),
                };
                v.push(state::Alias {
                    range,
                    range_name: x
                        .get("subnetworkRangeName")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                });
            }
            aliases = Some(v);
        }
        let mut acs = None;
        if let Some(a) = b.get("accessConfigs") {
            let Some(arr) = a.as_array() else {
                return admin::err(400, "accessConfigs must be a list");
            };
            let mut v = Vec::new();
            for x in arr {
                let ip = x.get("natIP").and_then(Value::as_str).unwrap_or("");
                let Ok(nat_ip) = ip.parse() else {
                    return admin::err(400, format!("bad natIP {ip:?}"));
                };
                v.push(state::AccessConfig {
                    name: x
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("External NAT")
                        .to_string(),
                    nat_ip,
                    network_tier: x
                        .get("networkTier")
                        .and_then(Value::as_str)
                        .unwrap_or("PREMIUM")
                        .to_string(),
                });
            }
            acs = Some(v);
        }
        let n = &mut g.instances[ii].nics[ni];
        if let Some(a) = aliases {
            n.aliases = a;
        }
        if let Some(a) = acs {
            n.access_configs = a;
        }
        n.fingerprint = state::new_fingerprint();
        g.instances[ii].fingerprint = state::new_fingerprint();
        let v = state::nic_json(&self.links(), &g.instances[ii].nics[ni]);
        g.changed();
        drop(g);
        self.notify();
        admin::ok(v)
    }
}

/// Reads the discovery document and checks that it describes Compute v1, so a wrong path
/// fails at start rather than as a client's puzzling error.
fn load_discovery(p: &std::path::Path) -> Result<Vec<u8>, String> {
    let what = || format!("gce.discovery_document {}", p.display());
    let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", what()))?;
    let doc: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: not JSON: {e}", what()))?;
    if doc.get("name").and_then(Value::as_str) != Some("compute")
        || doc.get("version").and_then(Value::as_str) != Some("v1")
    {
        return Err(format!("{}: not the compute v1 discovery document", what()));
    }
    Ok(bytes)
}

impl Cloud for GceCloud {
    fn name(&self) -> &'static str {
        "gce"
    }
    fn state(&self) -> Value {
        self.state_json()
    }
    fn endpoints(&self) -> Value {
        let Some(e) = self.endpoints.get() else {
            return Value::Null;
        };
        let md_url = |a: &SocketAddr| format!("http://{a}/computeMetadata/v1/");
        json!({
            "compute": format!("{}/compute/v1/", e.api),
            "api": e.api,
            "token_uri": self.own_token_uri(),
            "metadata": e.metadata.iter().map(|(k, a)| (k.clone(), json!(md_url(a)))).collect::<serde_json::Map<_, _>>(),
            "metadata_hosts": e.metadata.iter().map(|(k, a)| (k.clone(), json!(a.to_string()))).collect::<serde_json::Map<_, _>>(),
            "metadata_shared": e.metadata_shared.map(|a| md_url(&a)),
            "project": self.world.project,
        })
    }
    fn admin(&self, req: &Request, rest: &[String]) -> Response {
        self.admin_route(req, rest)
    }
}

/// Starts the GCE listeners (API, metadata per instance, optional shared metadata) and the
/// operation ticker.
pub fn start(
    core: Arc<Core>,
    w: &world::GceWorld,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(Arc<GceCloud>, Started), String> {
    let cloud = Arc::new(GceCloud::new(core.clone(), w)?);
    let mut threads = Vec::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (api_addr, t) = spawn_listener(
        core.clone(),
        ListenerSpec {
            addr: w.api_listen,
            tls,
            service: Arc::new(compute::ComputeService {
                cloud: cloud.clone(),
            }),
        },
    )
    .map_err(|e| format!("gce api listener {}: {e}", w.api_listen))?;
    threads.push(t);
    let mut md = BTreeMap::new();
    if w.metadata_per_instance {
        for i in &w.instances {
            let (addr, t) = spawn_listener(
                core.clone(),
                ListenerSpec {
                    addr: crate::world::loopback_any(),
                    tls: None,
                    service: Arc::new(metadata::MetadataService {
                        cloud: cloud.clone(),
                        instance: Some(i.name.clone()),
                    }),
                },
            )
            .map_err(|e| format!("metadata listener for {}: {e}", i.name))?;
            threads.push(t);
            md.insert(i.name.clone(), addr);
        }
    }
    let mut shared = None;
    if let Some(addr) = w.metadata_listen {
        let (a, t) = spawn_listener(
            core.clone(),
            ListenerSpec {
                addr,
                tls: None,
                service: Arc::new(metadata::MetadataService {
                    cloud: cloud.clone(),
                    instance: None,
                }),
            },
        )
        .map_err(|e| format!("shared metadata listener {addr}: {e}"))?;
        threads.push(t);
        shared = Some(a);
    }
    let _ = cloud.endpoints.set(GceEndpoints {
        api: format!("{scheme}://{api_addr}"),
        metadata: md,
        metadata_shared: shared,
    });
    // The ticker applies operations on time even when nobody polls them, so the metadata
    // server reflects a change as soon as its operation is DONE.
    let ticker = cloud.clone();
    let t = std::thread::Builder::new()
        .name("gce-ticker".into())
        .spawn(move || {
            while !ticker.core.stopped() {
                drop(ticker.lock());
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .map_err(|e| e.to_string())?;
    threads.push(t);
    let started = Started {
        cloud: cloud.clone(),
        threads,
    };
    Ok((cloud, started))
}
