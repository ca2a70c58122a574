//! OCI plugged into the shared server: the listeners (`api_listen` for iaas + auth, one
//! IMDS listener per instance and/or a shared one told apart by source address), the
//! [`Service`] classification used by the request log and fault rules, OCI-format fault
//! answers, and the `/admin/oci/...` routes.
//!
//! Fault selectors for OCI: `cloud = "oci"`, `service` ∈ {`networking`, `auth`,
//! `metadata`}, `api` = the SDK operation name (`UpdatePrivateIp`, `X509Federation`,
//! `imds.identity`, ...), `instance` = the instance's display name (for networking calls:
//! the instance whose security token signed the request).

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::admin::{self, err, ok};
use crate::faults::{Fault, FaultKind};
use crate::http;
use crate::server::{self, Call, Core, ListenerSpec, Service};
use crate::Started;

use super::{operation, service_for_path, Oci, OciWorldConfig, Route, Service as OciService};

/// The raw request-target, as the client signed it.
fn target(req: &http::Request) -> String {
    if req.raw_query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.raw_query)
    }
}

fn to_http(r: super::Response) -> http::Response {
    http::Response {
        status: r.status,
        headers: r.headers,
        body: r.body,
    }
}

/// iaas + auth.
struct ApiService {
    oci: Arc<Oci>,
}

impl Service for ApiService {
    fn classify(&self, req: &http::Request) -> Call {
        match service_for_path(&req.path) {
            OciService::Auth => {
                let mut c = Call::new("oci", "auth");
                c.api = Some("X509Federation".into());
                c
            }
            OciService::Networking => {
                let mut c = Call::new("oci", "networking");
                c.api_call = true;
                // Instance-principal calls name their instance, so a fault rule can target
                // one node's agent (`instance = "node2"`).
                c.instance = self
                    .oci
                    .lock()
                    .signing_instance(req.header("authorization"));
                if let Route::Op(op, _) = operation(&req.method, &req.path) {
                    c.api = Some(op.into());
                    c.mutation = matches!(
                        op,
                        "CreatePrivateIp"
                            | "UpdatePrivateIp"
                            | "DeletePrivateIp"
                            | "UpdatePublicIp"
                    );
                }
                c
            }
            _ => Call::new("oci", "unknown"),
        }
    }

    fn handle(&self, req: &http::Request, _call: &Call, _effects: &[Fault]) -> http::Response {
        let t = target(req);
        let r = super::Request {
            method: &req.method,
            target: &t,
            headers: &req.headers,
            body: &req.body,
            peer: req.peer.ip(),
            instance: None,
        };
        to_http(self.oci.handle_api(&r))
    }

    fn fault_response(&self, _call: &Call, fault: &Fault) -> http::Response {
        let (status, code) = match fault.spec.kind {
            FaultKind::RateLimit => (429, "TooManyRequests"),
            _ => {
                let s = fault.spec.status.unwrap_or(503);
                let code = match s {
                    429 => "TooManyRequests",
                    500 => "InternalServerError",
                    502 => "BadGateway",
                    503 => "ServiceUnavailable",
                    504 => "GatewayTimeout",
                    409 => "IncorrectState",
                    _ => "InternalServerError",
                };
                (s, code)
            }
        };
        let code = fault.spec.code.clone().unwrap_or_else(|| code.into());
        let message = fault
            .spec
            .message
            .clone()
            .unwrap_or_else(|| "Injected by cloudvip-sim".into());
        let mut b = [0u8; 16];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
        let id: String = b.iter().map(|x| format!("{x:02X}")).collect();
        http::Response::json(status, &json!({"code": code, "message": message}))
            .header("opc-request-id", id)
    }
}

/// IMDS: a dedicated listener (`instance` set) or a shared one (source address).
struct ImdsService {
    oci: Arc<Oci>,
    instance: Option<String>,
}

impl ImdsService {
    fn asking(&self, peer: SocketAddr) -> Option<String> {
        let st = self.oci.lock();
        let id = match &self.instance {
            Some(i) => Some(i.clone()),
            None => st
                .instances
                .values()
                .find(|i| i.config.metadata_source == Some(peer.ip()))
                .map(|i| i.config.id.clone()),
        }?;
        st.instances.get(&id).map(|i| i.config.display_name.clone())
    }
}

impl Service for ImdsService {
    fn classify(&self, req: &http::Request) -> Call {
        let mut c = Call::new("oci", "metadata");
        c.instance = self.asking(req.peer);
        let p = req.path.as_str();
        c.api = Some(
            if p.starts_with("/opc/v2/identity") {
                "imds.identity"
            } else if p.starts_with("/opc/v2/instance") {
                "imds.instance"
            } else if p.starts_with("/opc/v2/vnics") {
                "imds.vnics"
            } else {
                "imds.other"
            }
            .into(),
        );
        c
    }

    fn connection_call(&self, peer: SocketAddr) -> Option<Call> {
        let mut c = Call::new("oci", "metadata");
        c.instance = self.asking(peer);
        Some(c)
    }

    fn handle(&self, req: &http::Request, _call: &Call, _effects: &[Fault]) -> http::Response {
        let t = target(req);
        let r = super::Request {
            method: &req.method,
            target: &t,
            headers: &req.headers,
            body: &req.body,
            peer: req.peer.ip(),
            instance: self.instance.as_deref(),
        };
        to_http(self.oci.handle_imds(&r))
    }

    fn fault_response(&self, _call: &Call, fault: &Fault) -> http::Response {
        let status = match fault.spec.kind {
            FaultKind::RateLimit => 429,
            _ => fault.spec.status.unwrap_or(503),
        };
        http::Response::text(
            status,
            "text/plain",
            format!("{} {}\n", status, http::reason_phrase(status)),
        )
    }
}

/// The OCI cloud as the admin API sees it.
pub struct OciCloud {
    pub oci: Arc<Oci>,
    endpoints: Value,
}

impl OciCloud {
    fn instance_id(&self, name_or_id: &str) -> Option<String> {
        self.oci
            .lock()
            .instances
            .values()
            .find(|i| i.config.id == name_or_id || i.config.display_name == name_or_id)
            .map(|i| i.config.id.clone())
    }
}

impl admin::Cloud for OciCloud {
    fn name(&self) -> &'static str {
        "oci"
    }

    fn state(&self) -> Value {
        self.oci.snapshot()
    }

    fn endpoints(&self) -> Value {
        self.endpoints.clone()
    }

    /// `/admin/oci/...`:
    /// - `POST instances/<name|ocid>/rotate-identity`: new IMDS key and certificate;
    /// - `POST tokens/revoke`: every issued security token stops working;
    /// - `POST public-ips/fail-next` `{"count": n}`: the next n assignments end AVAILABLE;
    /// - `POST public-ips/<ocid or address>/unassign`: the console unassigns it at once;
    /// - `PUT settings` `{"public_ip_assign_ms": .., "token_lifetime_secs": ..}`.
    fn admin(&self, req: &http::Request, rest: &[String]) -> http::Response {
        let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        let body = || req.json().unwrap_or(Value::Null);
        match (req.method.as_str(), rest.as_slice()) {
            ("GET", ["state"]) => ok(self.oci.snapshot()),
            ("POST", ["instances", who, "rotate-identity"]) => match self.instance_id(who) {
                Some(id) => match self.oci.rotate_identity(&id) {
                    Ok(()) => ok(json!({"rotated": id})),
                    Err(e) => err(500, e),
                },
                None => err(404, format!("no OCI instance {who}")),
            },
            ("POST", ["tokens", "revoke"]) => ok(json!({"revoked": self.oci.revoke_tokens()})),
            ("POST", ["public-ips", "fail-next"]) => {
                let n = body().get("count").and_then(Value::as_u64).unwrap_or(1);
                self.oci
                    .fail_next_public_ip_assignments(u32::try_from(n).unwrap_or(u32::MAX));
                ok(json!({"failNext": n}))
            }
            ("POST", ["public-ips", id, "unassign"]) => {
                if self.oci.lock().net.console_unassign_public_ip(id) {
                    ok(json!({"unassigned": id}))
                } else {
                    err(404, format!("no public IP {id}"))
                }
            }
            ("PUT" | "POST", ["settings"]) => {
                let b = body();
                if let Some(ms) = b.get("public_ip_assign_ms").and_then(Value::as_u64) {
                    self.oci
                        .set_public_ip_assign_duration(Duration::from_millis(ms));
                }
                if let Some(s) = b.get("token_lifetime_secs").and_then(Value::as_u64) {
                    self.oci.set_token_lifetime(s);
                }
                ok(json!({}))
            }
            _ => err(
                404,
                format!("no route {} /admin/oci/{}", req.method, rest.join("/")),
            ),
        }
    }
}

/// Binds the OCI listeners and returns the cloud for the admin API.
pub fn start(
    core: Arc<Core>,
    world: &OciWorldConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(Arc<OciCloud>, Started), String> {
    let oci = Arc::new(Oci::new(world.clone()).map_err(|e| format!("[oci]: {e}"))?);
    let mut threads = Vec::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (api_addr, t) = server::spawn_listener(
        core.clone(),
        ListenerSpec {
            addr: world.api_listen,
            tls,
            service: Arc::new(ApiService { oci: oci.clone() }),
        },
    )
    .map_err(|e| format!("[oci] api listener {}: {e}", world.api_listen))?;
    threads.push(t);
    let api = format!("{scheme}://{api_addr}");
    let mut metadata = serde_json::Map::new();
    if world.metadata_per_instance {
        for i in &world.instances {
            let (addr, t) = server::spawn_listener(
                core.clone(),
                ListenerSpec {
                    addr: crate::world::loopback_any(),
                    tls: None,
                    service: Arc::new(ImdsService {
                        oci: oci.clone(),
                        instance: Some(i.id.clone()),
                    }),
                },
            )
            .map_err(|e| format!("[oci] metadata listener for {}: {e}", i.display_name))?;
            threads.push(t);
            metadata.insert(
                i.display_name.clone(),
                json!({"id": i.id, "base_url": format!("http://{addr}/opc/v2")}),
            );
        }
    }
    let mut shared = Value::Null;
    if let Some(addr) = world.metadata_listen {
        let (addr, t) = server::spawn_listener(
            core,
            ListenerSpec {
                addr,
                tls: None,
                service: Arc::new(ImdsService {
                    oci: oci.clone(),
                    instance: None,
                }),
            },
        )
        .map_err(|e| format!("[oci] shared metadata listener {addr}: {e}"))?;
        threads.push(t);
        shared = json!(format!("http://{addr}/opc/v2"));
    }
    let endpoints = json!({
        "api": api,
        "iaas": format!("{api}/20160918"),
        "auth": format!("{api}/v1/x509"),
        "metadata": metadata,
        "metadata_shared": shared,
        "region": world.region,
        "realm_domain": world.realm_domain,
        "tenancy": world.tenancy,
    });
    let cloud = Arc::new(OciCloud { oci, endpoints });
    Ok((cloud.clone(), Started { cloud, threads }))
}
