//! The metadata server (`/computeMetadata/v1/...`, gce-api.md §1, checklist §7.4): one
//! listener per instance, or a shared one that tells instances apart by source address.
//! The tree is rebuilt from the live Compute state on every request, so it always shows the
//! current aliases and access configs. Long-polls (`wait_for_change`) wait on state changes.

use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::oauth::{self, Token};
use super::state::{GceState, Instance};
use super::GceCloud;
use crate::faults::{Fault, FaultKind};
use crate::http::{percent_encode, Request, Response};
use crate::server::{Call, Service};

/// Upper bound of one `wait_for_change` long-poll (and its default without `timeout_sec`).
const MAX_WAIT: Duration = Duration::from_secs(600);
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// A node of the metadata tree.
#[derive(Clone, Debug)]
enum Md {
    /// Directory whose keys are field names (dashed; camelCase in JSON).
    Dir(Vec<(String, Md)>),
    /// Directory whose keys are data (attribute names, service-account emails): kept as is.
    Map(Vec<(String, Md)>),
    /// Numbered directory (`network-interfaces/0/`).
    Arr(Vec<Md>),
    Text(String),
    Num(u64),
    /// Newline-separated text, a JSON array (scopes, dns-servers).
    Lines(Vec<String>),
    /// A JSON value, also as text (`tags`).
    Json(Value),
    /// The service-account token: dynamic, never part of a recursive answer.
    Token,
}

impl Md {
    fn is_dir(&self) -> bool {
        matches!(self, Md::Dir(_) | Md::Map(_) | Md::Arr(_))
    }

    fn child(&self, key: &str) -> Option<&Md> {
        match self {
            Md::Dir(v) | Md::Map(v) => v.iter().find(|(k, _)| k == key).map(|(_, m)| m),
            Md::Arr(v) => key.parse::<usize>().ok().and_then(|i| v.get(i)),
            _ => None,
        }
    }

    fn listing(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, m: &Md| {
            out.push_str(k);
            if m.is_dir() {
                out.push('/');
            }
            out.push('\n');
        };
        match self {
            Md::Dir(v) | Md::Map(v) => v.iter().for_each(|(k, m)| line(k, m)),
            Md::Arr(v) => v
                .iter()
                .enumerate()
                .for_each(|(i, m)| line(&i.to_string(), m)),
            _ => {}
        }
        out
    }

    fn to_json(&self) -> Value {
        match self {
            Md::Dir(v) => Value::Object(
                v.iter()
                    .filter(|(_, m)| !matches!(m, Md::Token))
                    .map(|(k, m)| (camel(k), m.to_json()))
                    .collect::<Map<_, _>>(),
            ),
            Md::Map(v) => Value::Object(
                v.iter()
                    .map(|(k, m)| (k.clone(), m.to_json()))
                    .collect::<Map<_, _>>(),
            ),
            Md::Arr(v) => Value::Array(v.iter().map(Md::to_json).collect()),
            Md::Text(s) => json!(s),
            Md::Num(n) => json!(n),
            Md::Lines(l) => json!(l),
            Md::Json(v) => v.clone(),
            Md::Token => Value::Null,
        }
    }

    fn leaf_text(&self) -> String {
        match self {
            Md::Text(s) => s.clone(),
            Md::Num(n) => n.to_string(),
            Md::Lines(l) => l.iter().map(|s| format!("{s}\n")).collect(),
            Md::Json(v) => v.to_string(),
            _ => String::new(),
        }
    }

    /// `recursive=true&alt=text`: `path value` lines (gce-api.md §1.5).
    fn flatten(&self, prefix: &str, out: &mut String) {
        let join = |k: &str| {
            if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}/{k}")
            }
        };
        match self {
            Md::Dir(v) | Md::Map(v) => v.iter().for_each(|(k, m)| m.flatten(&join(k), out)),
            Md::Arr(v) => v
                .iter()
                .enumerate()
                .for_each(|(i, m)| m.flatten(&join(&i.to_string()), out)),
            Md::Token => {}
            Md::Lines(l) => l
                .iter()
                .for_each(|s| out.push_str(&format!("{prefix} {s}\n"))),
            leaf => out.push_str(&format!("{prefix} {}\n", leaf.leaf_text())),
        }
    }
}

/// `numeric-project-id` → `numericProjectId`.
fn camel(k: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in k.chars() {
        if c == '-' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn text(s: impl Into<String>) -> Md {
    Md::Text(s.into())
}

fn tree(cloud: &GceCloud, st: &GceState, inst: &Instance) -> Md {
    let w = &cloud.world;
    let num = w.project_number;
    let nics: Vec<Md> = inst
        .nics
        .iter()
        .map(|n| {
            let sub = w.subnet(&n.network, &n.subnet);
            let acs: Vec<Md> = n
                .access_configs
                .iter()
                .map(|a| {
                    Md::Dir(vec![
                        ("external-ip".into(), text(a.nat_ip.to_string())),
                        ("type".into(), text("ONE_TO_ONE_NAT")),
                    ])
                })
                .collect();
            Md::Dir(vec![
                ("access-configs".into(), Md::Arr(acs)),
                (
                    "dns-servers".into(),
                    Md::Lines(vec!["169.254.169.254".into()]),
                ),
                ("forwarded-ips".into(), Md::Arr(vec![])),
                (
                    "gateway".into(),
                    text(
                        sub.map(|s| s.ip_cidr_range.gateway().to_string())
                            .unwrap_or_default(),
                    ),
                ),
                ("ip".into(), text(n.network_ip.to_string())),
                (
                    "ip-aliases".into(),
                    // Always CIDR with prefix (gce-api.md §1.4).
                    Md::Arr(
                        n.aliases
                            .iter()
                            .map(|a| text(a.range.to_string()))
                            .collect(),
                    ),
                ),
                ("mac".into(), text(n.mac.clone())),
                ("mtu".into(), Md::Num(1460)),
                (
                    "network".into(),
                    text(format!("projects/{num}/networks/{}", n.network)),
                ),
                (
                    "subnetmask".into(),
                    text(
                        sub.map(|s| s.ip_cidr_range.netmask().to_string())
                            .unwrap_or_default(),
                    ),
                ),
                ("target-instance-ips".into(), Md::Arr(vec![])),
            ])
        })
        .collect();
    let mut sas = Vec::new();
    if let Some(email) = &inst.service_account {
        let sa = |alias: &str| {
            Md::Dir(vec![
                ("aliases".into(), Md::Lines(vec![alias.to_string()])),
                ("email".into(), text(email.clone())),
                ("scopes".into(), Md::Lines(inst.scopes.clone())),
                ("token".into(), Md::Token),
            ])
        };
        sas.push((email.clone(), sa("default")));
        sas.push(("default".into(), sa("default")));
    }
    let attrs = |m: &std::collections::BTreeMap<String, String>| {
        Md::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), text(v.clone())))
                .collect(),
        )
    };
    let _ = st;
    Md::Dir(vec![
        (
            "instance".into(),
            Md::Dir(vec![
                ("attributes".into(), attrs(&inst.metadata)),
                ("cpu-platform".into(), text("Intel Broadwell")),
                ("description".into(), text("")),
                (
                    "hostname".into(),
                    text(format!(
                        "{}.{}.c.{}.internal",
                        inst.name, inst.zone, w.project
                    )),
                ),
                ("id".into(), Md::Num(inst.id)),
                (
                    "machine-type".into(),
                    text(format!("projects/{num}/machineTypes/{}", inst.machine_type)),
                ),
                ("maintenance-event".into(), text("NONE")),
                ("name".into(), text(inst.name.clone())),
                ("network-interfaces".into(), Md::Arr(nics)),
                ("service-accounts".into(), Md::Map(sas)),
                ("tags".into(), Md::Json(json!(inst.tags))),
                (
                    "zone".into(),
                    text(format!("projects/{num}/zones/{}", inst.zone)),
                ),
            ]),
        ),
        (
            "project".into(),
            Md::Dir(vec![
                ("attributes".into(), attrs(&w.project_metadata)),
                ("numeric-project-id".into(), Md::Num(num)),
                ("project-id".into(), text(w.project.clone())),
            ]),
        ),
        (
            "universe".into(),
            Md::Dir(vec![("universe-domain".into(), text("googleapis.com"))]),
        ),
    ])
}

/// Headers every metadata response carries, errors included (gce-api.md §1.2).
fn md_headers(r: Response) -> Response {
    r.header("Metadata-Flavor", "Google")
        .header("Server", "Metadata Server for VM")
        .header("X-XSS-Protection", "0")
        .header("X-Frame-Options", "SAMEORIGIN")
}

fn html_error(status: u16, title: &str, detail: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error {status} ({title})!!1</title>\n  <p><b>{status}.</b> <ins>That\u{2019}s an error.</ins>\n  <p>{detail}  <ins>That\u{2019}s all we know.</ins>\n"
    );
    md_headers(Response::text(status, "text/html; charset=UTF-8", body))
}

fn etag_of(body: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, body);
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

pub struct MetadataService {
    pub cloud: Arc<GceCloud>,
    /// The instance this listener serves; None: the shared listener (by source address).
    pub instance: Option<String>,
}

impl MetadataService {
    fn instance_for(&self, peer: SocketAddr) -> Option<String> {
        if let Some(i) = &self.instance {
            return Some(i.clone());
        }
        self.cloud
            .world
            .instances
            .iter()
            .find(|i| i.metadata_source == Some(peer.ip()))
            .map(|i| i.name.clone())
    }

    /// Renders the node at `path` for the given query; None when the path does not exist.
    fn render(&self, st: &GceState, inst_name: &str, rel: &str, q: &Query) -> Rendered {
        let Some(ii) = st.instance_by_name(inst_name) else {
            return Rendered::Error(html_error(404, "Not Found", "The instance is gone."));
        };
        let root = tree(&self.cloud, st, &st.instances[ii]);
        let is_dir_path = rel.is_empty() || rel.ends_with('/');
        let mut node = &root;
        for seg in rel.split('/').filter(|s| !s.is_empty()) {
            match node.child(seg) {
                Some(n) => node = n,
                None => return Rendered::Error(not_found()),
            }
        }
        if node.is_dir() && !is_dir_path {
            return Rendered::Redirect;
        }
        if !node.is_dir() && is_dir_path {
            return Rendered::Error(not_found()); // trailing slash on a leaf
        }
        if matches!(node, Md::Token) {
            return Rendered::Token;
        }
        if node.is_dir() {
            if !q.recursive {
                if q.alt.is_some() || q.wait {
                    // gce-api.md §1.3: alt or wait_for_change on a directory needs recursive.
                    return Rendered::Error(html_error(
                        400,
                        "Bad Request",
                        "Your client has issued a malformed or illegal request. Non-recursive directory listings do not support alt or wait_for_change.",
                    ));
                }
                return Rendered::Body("application/text", node.listing().into_bytes());
            }
            if q.alt.as_deref() == Some("text") {
                let mut out = String::new();
                node.flatten("", &mut out);
                return Rendered::Body("application/text", out.into_bytes());
            }
            return Rendered::Body(
                "application/json",
                serde_json::to_vec(&node.to_json()).unwrap_or_default(),
            );
        }
        if q.alt.as_deref() == Some("json") {
            return Rendered::Body(
                "application/json",
                serde_json::to_vec(&node.to_json()).unwrap_or_default(),
            );
        }
        Rendered::Body("application/text", node.leaf_text().into_bytes())
    }

    fn token(&self, inst_name: &str, req: &Request) -> Response {
        let mut g = self.cloud.lock();
        let Some(ii) = g.instance_by_name(inst_name) else {
            return not_found();
        };
        let Some(email) = g.instances[ii].service_account.clone() else {
            return not_found();
        };
        let scopes: Vec<String> = match req.query("scopes") {
            Some(s) => s
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect(),
            None => g.instances[ii].scopes.clone(),
        };
        let now = SystemTime::now();
        let life = Duration::from_secs(self.cloud.world.token_lifetime_secs);
        // The real server caches the token; expires_in is what is left (gce-api.md §1.6).
        let cached = g.metadata_tokens.get(&email).cloned().filter(|t| {
            g.tokens.get(t).is_some_and(|tok| {
                oauth::expires_in(tok, now) > 300.min(life.as_secs() / 2) && tok.scopes == scopes
            })
        });
        let token = match cached {
            Some(t) => t,
            None => {
                let t = oauth::new_access_token();
                g.tokens.insert(
                    t.clone(),
                    Token {
                        service_account: email.clone(),
                        scopes,
                        expires: now + life,
                    },
                );
                g.metadata_tokens.insert(email, t.clone());
                t
            }
        };
        let left = g
            .tokens
            .get(&token)
            .map(|t| oauth::expires_in(t, now))
            .unwrap_or(0);
        // Exactly `application/json`, as GCE sends: google-auth before 2.23 compares the
        // type for equality and fails on `; charset=UTF-8` (issue 10, fix 1a).
        let body = json!({"access_token": token, "expires_in": left, "token_type": "Bearer"});
        md_headers(Response::text(
            200,
            "application/json",
            serde_json::to_vec(&body).unwrap_or_default(),
        ))
    }
}

fn not_found() -> Response {
    html_error(
        404,
        "Not Found",
        "The requested URL was not found on this server.",
    )
}

enum Rendered {
    Body(&'static str, Vec<u8>),
    Redirect,
    Token,
    Error(Response),
}

struct Query {
    alt: Option<String>,
    recursive: bool,
    wait: bool,
    last_etag: Option<String>,
    timeout: Duration,
}

fn truthy(v: Option<&str>) -> bool {
    // `recursive=True` (Python's urlencode) works on the real server; `xyz` is false.
    v.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

impl Service for MetadataService {
    fn classify(&self, req: &Request) -> Call {
        let mut c = Call::new("gce", "metadata");
        c.instance = self.instance_for(req.peer);
        c.api = Some(if req.path.ends_with("/token") {
            "metadata.token".into()
        } else {
            "metadata.get".into()
        });
        c
    }

    fn connection_call(&self, peer: SocketAddr) -> Option<Call> {
        let mut c = Call::new("gce", "metadata");
        c.instance = self.instance_for(peer);
        Some(c)
    }

    fn handle(&self, req: &Request, _call: &Call, _effects: &[Fault]) -> Response {
        if req.path == "/" {
            // Clients detect GCE by this answer's Metadata-Flavor header (gce-api.md §1.2).
            return md_headers(Response::text(
                200,
                "application/text",
                "computeMetadata/\n",
            ));
        }
        // The SSRF guard answers before anything else.
        if req.header("X-Forwarded-For").is_some() {
            return html_error(403, "Forbidden", "Your client does not have permission to get URL from this server. Request had X-Forwarded-For header.");
        }
        if req.header("Metadata-Flavor") != Some("Google") {
            return html_error(
                403,
                "Forbidden",
                "Your client does not have permission to get URL from this server. Missing Metadata-Flavor:Google header.",
            );
        }
        if req.method != "GET" && req.method != "HEAD" {
            return html_error(
                405,
                "Method Not Allowed",
                "The request method is not supported.",
            );
        }
        let Some(inst) = self.instance_for(req.peer) else {
            return html_error(
                404,
                "Not Found",
                &format!("No instance has metadata_source {}.", req.peer.ip()),
            );
        };
        let base = "/computeMetadata/v1";
        if req.path == "/computeMetadata" || req.path == base {
            return redirect(req, &format!("{}/", req.path));
        }
        if req.path == "/computeMetadata/" {
            return md_headers(Response::text(200, "application/text", "v1/\n"));
        }
        let Some(rel) = req.path.strip_prefix("/computeMetadata/v1/") else {
            return not_found();
        };
        let rel: String = rel
            .split('/')
            .map(|s| crate::http::percent_decode(s, false))
            .collect::<Vec<_>>()
            .join("/");
        let q = Query {
            alt: req.query("alt").map(str::to_string),
            recursive: truthy(req.query("recursive")),
            wait: truthy(req.query("wait_for_change")),
            last_etag: req.query("last_etag").map(str::to_string),
            timeout: req
                .query("timeout_sec")
                .and_then(|t| t.parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_WAIT)
                .min(MAX_WAIT),
        };
        let mut g = self.cloud.lock();
        let first = self.render(&g, &inst, &rel, &q);
        let (ctype, mut body) = match first {
            Rendered::Body(c, b) => (c, b),
            Rendered::Redirect => {
                drop(g);
                return redirect(req, &format!("{}/", req.path));
            }
            Rendered::Token => {
                drop(g);
                return self.token(&inst, req);
            }
            Rendered::Error(r) => return r,
        };
        let mut etag = etag_of(&body);
        if q.wait {
            let changed_from = match &q.last_etag {
                // A different last_etag returns at once with the current value (§1.7).
                Some(e) if *e != etag => None,
                _ => Some(etag.clone()),
            };
            if let Some(old) = changed_from {
                let end = Instant::now() + q.timeout;
                let mut version = g.version;
                while Instant::now() < end && !self.cloud.core.stopped() {
                    g = self
                        .cloud
                        .wait(g, end.saturating_duration_since(Instant::now()));
                    if g.version == version {
                        continue;
                    }
                    version = g.version;
                    if let Rendered::Body(_, b) = self.render(&g, &inst, &rel, &q) {
                        let e = etag_of(&b);
                        if e != old {
                            body = b;
                            etag = e;
                            break;
                        }
                    } else {
                        break;
                    }
                }
            }
        }
        drop(g);
        md_headers(Response::text(200, ctype, body)).header("ETag", etag)
    }

    fn fault_response(&self, _call: &Call, fault: &Fault) -> Response {
        match fault.spec.kind {
            FaultKind::RateLimit => html_error(429, "Too Many Requests", "Rate limited."),
            _ => {
                let s = fault.spec.status.unwrap_or(503);
                html_error(s, crate::http::reason_phrase(s), "Injected fault.")
            }
        }
    }
}

fn redirect(req: &Request, to: &str) -> Response {
    let loc = if req.raw_query.is_empty() {
        to.to_string()
    } else {
        format!("{to}?{}", req.raw_query)
    };
    let _ = percent_encode;
    md_headers(Response::text(
        301,
        "text/html; charset=UTF-8",
        format!("<a href=\"{loc}\">moved</a>\n"),
    ))
    .header("Location", loc)
}
