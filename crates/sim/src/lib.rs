//! cloudvip-sim: a local emulator of the cloud APIs cloudvip talks to (GCE metadata server,
//! Compute API v1 and OAuth token endpoint; OCI and AWS beside it), faithful enough that the clouds'
//! own clients work against it unmodified. Azure's IMDS for load-balancer mode. Library (`Sim::start`) and binary (`cloudvip-sim`).
//!
//! # How a cloud plugs in
//!
//! Shared plumbing, cloud-agnostic:
//! - `http.rs`: request/response types and the HTTP/1.1 wire format;
//! - `server.rs`: listeners (std `TcpListener`, optional rustls), the [`server::Service`]
//!   trait, fault injection and logging around every request;
//! - `faults.rs`: fault rules (`POST /admin/faults`); `reqlog.rs`: the request log;
//! - `admin.rs`: the admin API and the [`admin::Cloud`] trait; `world.rs`: the world file;
//! - `tls.rs`: server TLS config and the test-CA generator; `clock.rs`: timestamps, ids;
//! - `secrets.rs`: every token, key and signature seen on the wire (`GET /admin/secrets`).
//!
//! A cloud (see `gce/`) provides:
//! 1. a `world` schema, added as an optional field of [`world::World`] (`[gce]`, `[oci]`,
//!    `[aws]`, `[azure]`);
//! 2. a `start(core, &world_part, tls) -> Result<Started, String>` that binds its listeners
//!    with [`server::spawn_listener`], each with a [`server::Service`] implementation
//!    (`classify` for the log and fault selectors, `handle`, `fault_response` in the cloud's
//!    error format), and returns an `Arc<dyn admin::Cloud>` (state JSON, endpoints JSON,
//!    `/admin/<cloud>/...` routes) plus its thread handles;
//! 3. one call in [`Sim::start`] below, guarded by `if let Some(part) = &world.<cloud>`.
//!
//! Every loop polls [`server::Core::stop`]; dropping the [`SimHandle`] stops everything.

pub mod admin;
pub mod aws;
pub mod azure;
pub mod clock;
pub mod faults;
pub mod gce;
pub mod http;
pub mod lb;
pub mod oci;
pub mod reqlog;
pub mod secrets;
pub mod server;
pub mod tls;
pub mod world;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

pub use world::World;

/// What a cloud's `start` returns.
pub struct Started {
    pub cloud: Arc<dyn admin::Cloud>,
    pub threads: Vec<JoinHandle<()>>,
}

/// Entry point of the library.
pub struct Sim;

impl Sim {
    /// Starts every cloud in `world` and the admin API; returns once all listeners are bound.
    pub fn start(world: World) -> Result<SimHandle, String> {
        world.validate()?;
        let core = Arc::new(server::Core::new());
        let tls = match (&world.server.tls_cert, &world.server.tls_key) {
            (Some(c), Some(k)) => Some(tls::server_config(c, k)?),
            _ => None,
        };
        let mut clouds: Vec<Arc<dyn admin::Cloud>> = Vec::new();
        let mut threads = Vec::new();
        let mut gce = None;
        let mut oci = None;
        let mut aws = None;
        let mut azure = None;
        let mut lb = None;
        let result = (|| {
            if let Some(part) = &world.gce {
                let (cloud, started) = gce::start(core.clone(), part, tls.clone())?;
                gce = Some(cloud);
                clouds.push(started.cloud);
                threads.extend(started.threads);
            }
            if let Some(part) = &world.oci {
                let (cloud, started) = oci::cloud::start(core.clone(), part, tls.clone())?;
                oci = Some(cloud);
                clouds.push(started.cloud);
                threads.extend(started.threads);
            }
            if let Some(part) = &world.aws {
                let (cloud, started) = aws::start(core.clone(), part, tls.clone())?;
                aws = Some(cloud);
                clouds.push(started.cloud);
                threads.extend(started.threads);
            }
            if let Some(part) = &world.azure {
                let (cloud, started) = azure::start(core.clone(), part)?;
                azure = Some(cloud);
                clouds.push(started.cloud);
                threads.extend(started.threads);
            }
            if let Some(part) = &world.lb {
                // gce_leader: the backend service's leader, asked of the GCE state.
                let leader = match (&gce, &part.backend_service) {
                    (Some(g), Some(bs)) if part.mode == lb::Mode::GceLeader => {
                        Some((g.clone(), bs.clone()))
                    }
                    (None, _) if part.mode == lb::Mode::GceLeader => {
                        return Err("[lb] mode gce_leader needs [gce]".into())
                    }
                    _ => None,
                };
                let (cloud, started) = lb::start(core.clone(), part, leader)?;
                lb = Some(cloud);
                clouds.push(started.cloud);
                threads.extend(started.threads);
            }
            let admin = Arc::new(admin::Admin {
                core: core.clone(),
                clouds: clouds.clone(),
                url: Default::default(),
            });
            let (addr, t) = server::spawn_listener(
                core.clone(),
                server::ListenerSpec {
                    addr: world.server.admin_listen,
                    tls: None,
                    service: admin.clone(),
                },
            )
            .map_err(|e| format!("admin listener {}: {e}", world.server.admin_listen))?;
            threads.push(t);
            let _ = admin.url.set(format!("http://{addr}"));
            Ok::<_, String>(admin)
        })();
        match result {
            Ok(admin) => Ok(SimHandle {
                core,
                admin,
                gce,
                oci,
                aws,
                azure,
                lb,
                threads,
            }),
            Err(e) => {
                core.stop.store(true, Ordering::SeqCst);
                for t in threads {
                    let _ = t.join();
                }
                Err(e)
            }
        }
    }
}

/// A running emulator; stops (and joins its listener threads) on drop.
pub struct SimHandle {
    core: Arc<server::Core>,
    admin: Arc<admin::Admin>,
    gce: Option<Arc<gce::GceCloud>>,
    oci: Option<Arc<oci::cloud::OciCloud>>,
    aws: Option<Arc<aws::AwsCloud>>,
    azure: Option<Arc<azure::AzureCloud>>,
    lb: Option<Arc<lb::LbCloud>>,
    threads: Vec<JoinHandle<()>>,
}

impl SimHandle {
    /// The endpoints JSON (the same object the binary prints as its ready line).
    pub fn endpoints(&self) -> serde_json::Value {
        self.admin.endpoints()
    }

    pub fn admin_url(&self) -> String {
        self.admin.url.get().cloned().unwrap_or_default()
    }

    /// Direct access to the GCE cloud (state, tokens, keys) for in-process tests.
    pub fn gce(&self) -> Option<&Arc<gce::GceCloud>> {
        self.gce.as_ref()
    }

    /// Direct access to the OCI cloud (state, admin actions) for in-process tests.
    pub fn oci(&self) -> Option<&Arc<oci::cloud::OciCloud>> {
        self.oci.as_ref()
    }

    /// Direct access to the AWS cloud (state, admin actions) for in-process tests.
    pub fn aws(&self) -> Option<&Arc<aws::AwsCloud>> {
        self.aws.as_ref()
    }

    /// Direct access to the Azure cloud (IMDS documents) for in-process tests.
    pub fn azure(&self) -> Option<&Arc<azure::AzureCloud>> {
        self.azure.as_ref()
    }

    /// Direct access to the emulated load balancer (health, targets, logs).
    pub fn lb(&self) -> Option<&Arc<lb::LbCloud>> {
        self.lb.as_ref()
    }

    pub fn core(&self) -> &Arc<server::Core> {
        &self.core
    }

    /// Requests served so far (all clouds, admin API excluded).
    pub fn requests(&self) -> u64 {
        self.core.log.total()
    }

    /// Stops all listeners and waits for their accept loops to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.core.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
