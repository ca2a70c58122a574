//! The admin API (plain HTTP, JSON): whole state, fault rules, request log, endpoints, and
//! per-cloud routes under `/admin/<cloud>/...` delegated to that cloud's [`Cloud::admin`].
//! Documented in the crate README ("Admin API").

use std::sync::Arc;

use serde_json::{json, Value};

use crate::faults::{Fault, FaultSpec};
use crate::http::{Request, Response};
use crate::server::{Call, Core, Service};

/// A cloud as seen by the admin API. Implemented by `gce::GceCloud` (and the OCI cloud).
pub trait Cloud: Send + Sync + 'static {
    /// `gce`, `oci`: the key in `/admin/state`, the endpoints line and `/admin/<name>/`.
    fn name(&self) -> &'static str;
    /// The cloud's whole state as JSON.
    fn state(&self) -> Value;
    /// The cloud's endpoints (for the ready line and `GET /admin/endpoints`).
    fn endpoints(&self) -> Value;
    /// `/admin/<name>/<rest...>`.
    fn admin(&self, req: &Request, rest: &[String]) -> Response;
}

pub fn ok(v: Value) -> Response {
    Response::json(200, &v)
}

pub fn err(status: u16, msg: impl Into<String>) -> Response {
    Response::json(status, &json!({ "error": msg.into() }))
}

pub struct Admin {
    pub core: Arc<Core>,
    pub clouds: Vec<Arc<dyn Cloud>>,
    /// Filled in once the admin listener is bound.
    pub url: std::sync::OnceLock<String>,
}

impl Admin {
    /// The endpoints JSON line: `{"admin": url, "<cloud>": {...}, ...}`.
    pub fn endpoints(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert(
            "admin".into(),
            json!(self.url.get().cloned().unwrap_or_default()),
        );
        for c in &self.clouds {
            m.insert(c.name().into(), c.endpoints());
        }
        Value::Object(m)
    }

    fn route(&self, req: &Request) -> Response {
        let seg = req.segments();
        let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
        let m = req.method.as_str();
        match (m, seg.as_slice()) {
            ("GET", ["admin", "endpoints"]) => ok(self.endpoints()),
            ("GET", ["admin", "state"]) => {
                let mut s = serde_json::Map::new();
                for c in &self.clouds {
                    s.insert(c.name().into(), c.state());
                }
                ok(Value::Object(s))
            }
            ("GET", ["admin", "log"]) => {
                let since = req.query("since").and_then(|s| s.parse().ok()).unwrap_or(0);
                ok(json!({ "entries": self.core.log.since(since), "total": self.core.log.total() }))
            }
            ("DELETE", ["admin", "log"]) => {
                self.core.log.clear();
                ok(json!({}))
            }
            ("GET", ["admin", "secrets"]) => ok(json!({ "secrets": self.core.secrets.list() })),
            ("GET", ["admin", "faults"]) => ok(json!({ "faults": self.core.faults.list() })),
            ("POST", ["admin", "faults"]) => match serde_json::from_slice::<FaultSpec>(&req.body) {
                Ok(spec) => {
                    let f: Fault = self.core.faults.add(spec);
                    ok(serde_json::to_value(f).unwrap_or(Value::Null))
                }
                Err(e) => err(400, format!("bad fault rule: {e}")),
            },
            ("DELETE", ["admin", "faults"]) => {
                self.core.faults.clear();
                ok(json!({}))
            }
            ("DELETE", ["admin", "faults", id]) => match id.parse() {
                Ok(id) if self.core.faults.remove(id) => ok(json!({})),
                _ => err(404, format!("no fault rule {id}")),
            },
            (_, ["admin", name, rest @ ..]) => {
                match self.clouds.iter().find(|c| c.name() == *name) {
                    Some(c) => {
                        let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
                        c.admin(req, &rest)
                    }
                    None => err(404, format!("no route {m} {}", req.path)),
                }
            }
            _ => err(404, format!("no route {m} {}", req.path)),
        }
    }
}

impl Service for Admin {
    fn classify(&self, _req: &Request) -> Call {
        Call::new("admin", "admin")
    }
    fn handle(&self, req: &Request, _call: &Call, _effects: &[Fault]) -> Response {
        self.route(req)
    }
    fn fault_response(&self, _call: &Call, _fault: &Fault) -> Response {
        err(503, "fault")
    }
    fn logged(&self) -> bool {
        false
    }
}
