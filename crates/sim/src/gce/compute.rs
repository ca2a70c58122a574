//! The Compute API v1 listener: `/compute/v1/projects/{p}/...` (instances get/list/
//! aggregatedList/updateNetworkInterface/addAccessConfig/deleteAccessConfig, addresses,
//! zoneOperations, zones/regions get) and the OAuth token endpoint `POST /token`.
//! Order of checks per call: route → bearer token (401) → scope (403) → IAM (403
//! `forbidden`) → requestId replay → resource (404) → request validation (400/412) →
//! operation. Semantics: gce-api.md §2–§3.

use serde_json::{json, Map, Value};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::errors::{self, error, invalid, not_found};
use super::filter::Filter;
use super::net::Ipv4Net;
use super::oauth;
use super::operations::{alias_in_subnet, Action, OpStatus, Operation};
use super::state::{self, new_fingerprint, Alias, GceState};
use super::world::{Busy, FingerprintRoll};
use super::GceCloud;
use crate::faults::{Fault, FaultKind};
use crate::http::{parse_form, Request, Response};
use crate::server::{Call, Service};

const SCOPE_CLOUD: &str = "https://www.googleapis.com/auth/cloud-platform";
const SCOPE_CLOUD_RO: &str = "https://www.googleapis.com/auth/cloud-platform.read-only";
const SCOPE_COMPUTE: &str = "https://www.googleapis.com/auth/compute";
const SCOPE_COMPUTE_RO: &str = "https://www.googleapis.com/auth/compute.readonly";

#[derive(Debug, Clone, PartialEq)]
enum Route {
    Token,
    /// The discovery document (`discovery.apis.getRest`), public like Google's.
    Discovery,
    InstanceGet(String, String),
    InstanceList(String),
    Aggregated,
    UpdateNic(String, String),
    AddAccessConfig(String, String),
    DeleteAccessConfig(String, String),
    AddressGet(String, String),
    AddressList(String),
    OperationGet(String, String),
    OperationWait(String, String),
    OperationList(String),
    ZoneGet(String),
    RegionGet(String),
    SubnetGet(String, String),
    /// Backend services, NEGs, forwarding rules (`backend.rs`).
    Ha(super::backend::HaRoute),
    NotFound,
}

impl Route {
    fn api(&self) -> Option<&'static str> {
        Some(match self {
            Route::Token => "oauth2.token",
            Route::Discovery => "discovery.apis.getRest",
            Route::InstanceGet(..) => "compute.instances.get",
            Route::InstanceList(..) => "compute.instances.list",
            Route::Aggregated => "compute.instances.aggregatedList",
            Route::UpdateNic(..) => "compute.instances.updateNetworkInterface",
            Route::AddAccessConfig(..) => "compute.instances.addAccessConfig",
            Route::DeleteAccessConfig(..) => "compute.instances.deleteAccessConfig",
            Route::AddressGet(..) => "compute.addresses.get",
            Route::AddressList(..) => "compute.addresses.list",
            Route::OperationGet(..) => "compute.zoneOperations.get",
            Route::OperationWait(..) => "compute.zoneOperations.wait",
            Route::OperationList(..) => "compute.zoneOperations.list",
            Route::ZoneGet(..) => "compute.zones.get",
            Route::RegionGet(..) => "compute.regions.get",
            Route::SubnetGet(..) => "compute.subnetworks.get",
            Route::Ha(r) => r.api(),
            Route::NotFound => return None,
        })
    }

    /// IAM permission the call needs (Google's documented mapping).
    fn permission(&self) -> &'static str {
        match self {
            Route::InstanceGet(..) => "compute.instances.get",
            Route::InstanceList(..) | Route::Aggregated => "compute.instances.list",
            Route::UpdateNic(..) => "compute.instances.updateNetworkInterface",
            Route::AddAccessConfig(..) => "compute.instances.addAccessConfig",
            Route::DeleteAccessConfig(..) => "compute.instances.deleteAccessConfig",
            Route::AddressGet(..) => "compute.addresses.get",
            Route::AddressList(..) => "compute.addresses.list",
            Route::OperationGet(..) | Route::OperationWait(..) => "compute.zoneOperations.get",
            Route::OperationList(..) => "compute.zoneOperations.list",
            Route::ZoneGet(..) => "compute.zones.get",
            Route::RegionGet(..) => "compute.regions.get",
            Route::SubnetGet(..) => "compute.subnetworks.get",
            Route::Ha(r) => r.permission(),
            Route::Token | Route::Discovery | Route::NotFound => "",
        }
    }

    fn mutation(&self) -> bool {
        matches!(
            self,
            Route::UpdateNic(..) | Route::AddAccessConfig(..) | Route::DeleteAccessConfig(..)
        ) || matches!(self, Route::Ha(r) if r.mutation())
    }

    fn instance(&self) -> Option<String> {
        match self {
            Route::InstanceGet(_, i)
            | Route::UpdateNic(_, i)
            | Route::AddAccessConfig(_, i)
            | Route::DeleteAccessConfig(_, i) => Some(i.clone()),
            _ => None,
        }
    }
}

/// Method, honouring `X-HTTP-Method-Override` (some Google clients tunnel PATCH in POST).
fn method(req: &Request) -> String {
    req.header("X-HTTP-Method-Override")
        .unwrap_or(&req.method)
        .to_ascii_uppercase()
}

fn route(req: &Request) -> (Route, Option<String>) {
    let segs = req.segments();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method(req);
    let m = m.as_str();
    if s == ["token"] {
        return (
            if m == "POST" {
                Route::Token
            } else {
                Route::NotFound
            },
            None,
        );
    }
    // googleapiclient 1.x asks www.googleapis.com first, then compute.googleapis.com's
    // `$discovery` URL (issue 10, fix 1b).
    let discovery = match s.as_slice() {
        ["discovery", "v1", "apis", "compute", "v1", "rest"] => true,
        ["$discovery", "rest"] => req.query("version") == Some("v1"),
        _ => false,
    };
    if discovery {
        return (
            if m == "GET" {
                Route::Discovery
            } else {
                Route::NotFound
            },
            None,
        );
    }
    let ["compute", "v1", "projects", project, rest @ ..] = s.as_slice() else {
        return (Route::NotFound, None);
    };
    let o = |x: &&str| x.to_string();
    let r = match (m, rest) {
        ("GET", ["zones", z, "instances"]) => Route::InstanceList(o(z)),
        ("GET", ["zones", z, "instances", i]) => Route::InstanceGet(o(z), o(i)),
        ("PATCH", ["zones", z, "instances", i, "updateNetworkInterface"]) => {
            Route::UpdateNic(o(z), o(i))
        }
        ("POST", ["zones", z, "instances", i, "addAccessConfig"]) => {
            Route::AddAccessConfig(o(z), o(i))
        }
        ("POST", ["zones", z, "instances", i, "deleteAccessConfig"]) => {
            Route::DeleteAccessConfig(o(z), o(i))
        }
        ("GET", ["aggregated", "instances"]) => Route::Aggregated,
        ("GET", ["regions", r, "addresses"]) => Route::AddressList(o(r)),
        ("GET", ["regions", r, "addresses", a]) => Route::AddressGet(o(r), o(a)),
        ("GET", ["zones", z, "operations"]) => Route::OperationList(o(z)),
        ("GET", ["zones", z, "operations", op]) => Route::OperationGet(o(z), o(op)),
        ("POST", ["zones", z, "operations", op, "wait"]) => Route::OperationWait(o(z), o(op)),
        ("GET", ["zones", z]) => Route::ZoneGet(o(z)),
        ("GET", ["regions", r]) => Route::RegionGet(o(r)),
        ("GET", ["regions", r, "subnetworks", s]) => Route::SubnetGet(o(r), o(s)),
        _ => super::backend::route(m, rest).map_or(Route::NotFound, Route::Ha),
    };
    (r, Some(project.to_string()))
}

/// Who is calling, from the bearer token.
struct Principal {
    email: String,
    scopes: Vec<String>,
}

pub struct ComputeService {
    pub cloud: Arc<GceCloud>,
}

impl Service for ComputeService {
    fn classify(&self, req: &Request) -> Call {
        let (r, _) = route(req);
        let service = match r {
            Route::Token => "oauth",
            Route::Discovery => "discovery",
            _ => "compute",
        };
        let mut c = Call::new("gce", service);
        c.api = r.api().map(str::to_string);
        c.instance = r.instance();
        // Unknown routes are no Compute call (the agent's call count must not grow by them).
        c.api_call = !matches!(r, Route::Token | Route::Discovery | Route::NotFound);
        c.mutation = r.mutation();
        c
    }

    fn handle(&self, req: &Request, _call: &Call, effects: &[Fault]) -> Response {
        let (r, project) = route(req);
        if r == Route::Token {
            return self.token(req);
        }
        if r == Route::Discovery {
            if let Some(doc) = &self.cloud.discovery {
                return Response::text(200, "application/json; charset=UTF-8", doc.clone());
            }
        }
        if r == Route::NotFound || r == Route::Discovery {
            return error(
                404,
                "notFound",
                &format!(
                    "The requested URL {} was not found on this server.",
                    req.path
                ),
            );
        }
        let principal = match self.authenticate(req) {
            Ok(p) => p,
            Err(resp) => return resp,
        };
        let read_ok = [SCOPE_CLOUD, SCOPE_CLOUD_RO, SCOPE_COMPUTE, SCOPE_COMPUTE_RO];
        let write_ok = [SCOPE_CLOUD, SCOPE_COMPUTE];
        let allowed: &[&str] = if r.mutation() { &write_ok } else { &read_ok };
        if !principal
            .scopes
            .iter()
            .any(|s| allowed.contains(&s.as_str()))
        {
            return errors::insufficient_scopes();
        }
        let w = &self.cloud.world;
        let project = project.unwrap_or_default();
        if project != w.project && project != w.project_number.to_string() {
            return not_found(&format!("projects/{project}"));
        }
        let perm = r.permission();
        if !self.cloud.permitted(&principal.email, perm) {
            return error(
                403,
                "forbidden",
                &format!(
                    "Required '{perm}' permission for '{}'",
                    resource_name(&w.project, &r)
                ),
            );
        }
        match r {
            Route::InstanceGet(z, i) => self.instance_get(&z, &i),
            Route::InstanceList(z) => self.instance_list(req, &z),
            Route::Aggregated => self.aggregated(req),
            Route::UpdateNic(z, i) => {
                self.mutate(req, &principal, effects, &z, &i, Kind::UpdateNic)
            }
            Route::AddAccessConfig(z, i) => {
                self.mutate(req, &principal, effects, &z, &i, Kind::AddAccessConfig)
            }
            Route::DeleteAccessConfig(z, i) => {
                self.mutate(req, &principal, effects, &z, &i, Kind::DeleteAccessConfig)
            }
            Route::AddressGet(reg, a) => self.address_get(&reg, &a),
            Route::AddressList(reg) => self.address_list(req, &reg),
            Route::OperationGet(z, op) => self.operation(&z, &op, false),
            Route::OperationWait(z, op) => self.operation(&z, &op, true),
            Route::OperationList(z) => self.operation_list(req, &z),
            Route::ZoneGet(z) => self.zone_get(&z),
            Route::RegionGet(reg) => self.region_get(&reg),
            Route::Ha(r) => super::backend::handle(&self.cloud, &principal.email, req, r),
            Route::SubnetGet(reg, s) => self.subnet_get(&reg, &s),
            Route::Token | Route::Discovery | Route::NotFound => not_found(&req.path),
        }
    }

    fn fault_response(&self, call: &Call, fault: &Fault) -> Response {
        if call.service == "oauth" {
            return match fault.spec.kind {
                FaultKind::RateLimit => {
                    oauth::oauth_error(429, "rate_limit_exceeded", "Rate limit exceeded")
                }
                _ => oauth::oauth_error(
                    fault.spec.status.unwrap_or(503),
                    "temporarily_unavailable",
                    "The service is currently unavailable.",
                ),
            };
        }
        match fault.spec.kind {
            FaultKind::RateLimit => errors::rate_limited(self.cloud.world.project_number),
            _ => {
                let status = fault.spec.status.unwrap_or(503);
                match (&fault.spec.message, status) {
                    (Some(m), _) => error(
                        status,
                        fault.spec.code.as_deref().unwrap_or("backendError"),
                        m,
                    ),
                    (None, 401) => errors::unauthenticated(false),
                    (None, 412) => stale_fingerprint(),
                    (None, s) if s < 500 => error(
                        s,
                        fault.spec.code.as_deref().unwrap_or("invalid"),
                        "Injected fault.",
                    ),
                    (None, s) => errors::server_error(s),
                }
            }
        }
    }
}

fn resource_name(project: &str, r: &Route) -> String {
    match r {
        Route::InstanceGet(z, i)
        | Route::UpdateNic(z, i)
        | Route::AddAccessConfig(z, i)
        | Route::DeleteAccessConfig(z, i) => format!("projects/{project}/zones/{z}/instances/{i}"),
        Route::AddressGet(reg, a) => format!("projects/{project}/regions/{reg}/addresses/{a}"),
        Route::OperationGet(z, o) | Route::OperationWait(z, o) => {
            format!("projects/{project}/zones/{z}/operations/{o}")
        }
        _ => format!("projects/{project}"),
    }
}

/// Message unverified for NICs (gce-api.md §3.2, §8 item 1); clients should match on 412.
fn stale_fingerprint() -> Response {
    Response::json(
        412,
        &json!({"error": {
            "code": 412,
            "message": "Supplied fingerprint does not match current network interface fingerprint.",
            "errors": [{
                "message": "Supplied fingerprint does not match current network interface fingerprint.",
                "domain": "global", "reason": "conditionNotMet",
                "location": "If-Match", "locationType": "header"
            }]
        }}),
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    UpdateNic,
    AddAccessConfig,
    DeleteAccessConfig,
}

/// `aliasIpv6Ranges` (gce-api.md; Compute API NetworkInterface): GCE keeps IPv6 aliases apart
/// from `aliasIpRanges` and allocates them itself. Google's provider docs (Terraform and
/// Pulumi `alias_ipv6_range.ip_cidr_range`): "At the time of writing only a netmask (e.g.
/// /96) may be supplied, with a CIDR format resulting in an API error." So a chosen address
/// is refused as GCE refuses it; a netmask asks for an allocation this emulator does not
/// model (every NIC here is IPV4_ONLY), also refused (DEVIATIONS.md). Absent, null or an
/// empty list: nothing asked.
fn check_alias_ipv6_ranges(v: Option<&Value>) -> Result<(), Response> {
    let ranges = match v {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(invalid(
                "Invalid value for field 'resource.aliasIpv6Ranges'.",
            ))
        }
    };
    // The first entry decides: every entry is refused, one way or the other.
    let Some(r) = ranges.first() else {
        return Ok(());
    };
    let cidr = r.get("ipCidrRange").and_then(Value::as_str).unwrap_or("");
    let field = "resource.aliasIpv6Ranges[0].ipCidrRange";
    if !cidr.starts_with('/') {
        return Err(invalid(&format!(
            "Invalid value for field '{field}': '{cidr}'. Only a netmask (e.g. /96) may be supplied for an alias IPv6 range; the address is allocated by Compute Engine."
        )));
    }
    Err(invalid(&format!(
        "Invalid value for field '{field}': '{cidr}'. The network interface's stack type is IPV4_ONLY (allocation of alias IPv6 ranges is not modelled by this emulator)."
    )))
}

/// Fingerprints are bytes on the wire: gcloud (apitools) sends them in the URL-safe base64
/// alphabet, other clients in the standard one. Compare the decoded bytes.
fn same_fingerprint(sent: &str, current: &str) -> bool {
    use base64::Engine;
    let decode = |s: &str| {
        let s = s
            .trim()
            .trim_end_matches('=')
            .replace('-', "+")
            .replace('_', "/");
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(s)
            .ok()
    };
    matches!((decode(sent), decode(current)), (Some(a), Some(b)) if a == b)
}

fn valid_request_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    parts.len() == 5
        && parts
            .iter()
            .zip(lens)
            .all(|(p, l)| p.len() == l && p.bytes().all(|b| b.is_ascii_hexdigit()))
        && s.bytes().any(|b| b.is_ascii_hexdigit() && b != b'0')
}

/// Page slicing shared by the list methods; `pageToken` is an opaque offset.
fn page<T: Clone>(req: &Request, items: Vec<T>) -> Result<(Vec<T>, Option<String>), Response> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let max = match req.query("maxResults") {
        None => 500,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if n <= 500 => n.max(1),
            _ => {
                return Err(invalid(&format!(
                    "Invalid value for field 'maxResults': '{m}'. Must be less than or equal to 500"
                )))
            }
        },
    };
    let start = match req.query("pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => match b64
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.strip_prefix("offset:")
                    .and_then(|n| n.parse::<usize>().ok())
            }) {
            Some(n) => n,
            None => {
                return Err(invalid(&format!(
                    "Invalid value for field 'pageToken': '{t}'."
                )))
            }
        },
    };
    let end = (start + max).min(items.len());
    let slice = items
        .get(start.min(items.len())..end)
        .unwrap_or(&[])
        .to_vec();
    let next = (end < items.len()).then(|| b64.encode(format!("offset:{end}")));
    Ok((slice, next))
}

fn parse_filter(req: &Request) -> Result<Filter, Response> {
    let f = req.query("filter").unwrap_or("");
    Filter::parse(f).map_err(|_| {
        invalid(&format!(
            "Invalid value for field 'filter': '{f}'. Invalid list filter expression."
        ))
    })
}

fn order(req: &Request, items: &mut [Value]) -> Result<(), Response> {
    let Some(o) = req.query("orderBy").filter(|o| !o.is_empty()) else {
        return Ok(());
    };
    let (field, desc) = match o.trim().split_once(' ') {
        Some((f, d)) if d.trim() == "desc" => (f, true),
        Some(_) => {
            return Err(invalid(&format!(
                "Invalid value for field 'orderBy': '{o}'."
            )))
        }
        None => (o.trim(), false),
    };
    if field != "name" && field != "creationTimestamp" {
        return Err(invalid(&format!(
            "Invalid value for field 'orderBy': '{o}'. Sorting by field '{field}' is not supported."
        )));
    }
    items.sort_by(|a, b| {
        let k = |v: &Value| {
            v.get(field)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let c = k(a).cmp(&k(b));
        if desc {
            c.reverse()
        } else {
            c
        }
    });
    Ok(())
}

impl ComputeService {
    fn authenticate(&self, req: &Request) -> Result<Principal, Response> {
        let Some(auth) = req.header("Authorization") else {
            return Err(errors::unauthenticated(true));
        };
        let Some(token) = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .map(str::trim)
        else {
            return Err(errors::unauthenticated(false));
        };
        let now = SystemTime::now();
        let g = self.cloud.lock();
        if let Some(t) = g.tokens.get(token) {
            if t.expires <= now {
                return Err(errors::unauthenticated(false));
            }
            return Ok(Principal {
                email: t.service_account.clone(),
                scopes: t.scopes.clone(),
            });
        }
        // A self-signed JWT used directly as the bearer token: what google-auth does for
        // GAPIC clients (`always_use_jwt_access`); Google accepts these for its APIs.
        if token.matches('.').count() == 2 {
            if let Ok(c) = oauth::verify_jwt(&g.keys, token, now) {
                let mut scopes = c.scopes();
                let aud = c.raw.get("aud").and_then(Value::as_str).unwrap_or("");
                if scopes.is_empty() && aud.starts_with("https://compute.googleapis.com") {
                    scopes.push(SCOPE_CLOUD.into());
                }
                return Ok(Principal {
                    email: c.email,
                    scopes,
                });
            }
        }
        Err(errors::unauthenticated(false))
    }

    /// `POST /token` (gce-api.md §6.3).
    fn token(&self, req: &Request) -> Response {
        let form = parse_form(std::str::from_utf8(&req.body).unwrap_or(""));
        let get = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        match get("grant_type") {
            Some(oauth::JWT_BEARER) => {}
            Some(g) => {
                return oauth::oauth_error(
                    400,
                    "unsupported_grant_type",
                    &format!("Invalid grant_type: {g}"),
                )
            }
            None => {
                return oauth::oauth_error(
                    400,
                    "invalid_request",
                    "Missing required parameter: grant_type",
                )
            }
        }
        let Some(assertion) = get("assertion") else {
            return oauth::oauth_error(
                400,
                "invalid_request",
                "Missing required parameter: assertion",
            );
        };
        let now = SystemTime::now();
        let claims = {
            let g = self.cloud.lock();
            match oauth::verify_jwt(&g.keys, assertion, now) {
                Ok(c) => c,
                Err(e) => return oauth::oauth_error(400, "invalid_grant", &e),
            }
        };
        let aud = claims.raw.get("aud").and_then(Value::as_str).unwrap_or("");
        let ok_aud = [
            oauth::GOOGLE_TOKEN_URI.to_string(),
            self.cloud.own_token_uri(),
            self.cloud.token_uri(),
        ];
        if !ok_aud.iter().any(|a| a == aud) {
            return oauth::oauth_error(400, "invalid_grant", "Invalid JWT: Failed audience check.");
        }
        let scopes = claims.scopes();
        if scopes.is_empty() {
            return oauth::oauth_error(
                400,
                "invalid_scope",
                "Invalid OAuth scope or ID token audience provided.",
            );
        }
        let life = self.cloud.world.token_lifetime_secs;
        let token = self
            .cloud
            .mint_token(&claims.email, scopes, Duration::from_secs(life));
        // Google reports one second less than the lifetime (3599 for an hour).
        Response::json(
            200,
            &json!({"access_token": token, "expires_in": life.saturating_sub(1), "token_type": "Bearer"}),
        )
    }

    fn zone_ok(&self, z: &str) -> Result<(), Response> {
        if self.cloud.world.zones.iter().any(|x| x == z) {
            Ok(())
        } else {
            Err(not_found(&format!(
                "projects/{}/zones/{z}",
                self.cloud.world.project
            )))
        }
    }

    fn instance_get(&self, z: &str, i: &str) -> Response {
        if let Err(r) = self.zone_ok(z) {
            return r;
        }
        let g = self.cloud.lock();
        match g.instance(z, i) {
            Some(ii) => Response::json(
                200,
                &state::instance_json(
                    &self.cloud.links(),
                    &self.cloud.world.region,
                    &g.instances[ii],
                ),
            ),
            None => not_found(&format!(
                "projects/{}/zones/{z}/instances/{i}",
                self.cloud.world.project
            )),
        }
    }

    fn instance_list(&self, req: &Request, z: &str) -> Response {
        if let Err(r) = self.zone_ok(z) {
            return r;
        }
        let filter = match parse_filter(req) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let l = self.cloud.links();
        let mut items: Vec<Value> = {
            let g = self.cloud.lock();
            g.instances
                .iter()
                .filter(|i| i.zone == z)
                .map(|i| state::instance_json(&l, &self.cloud.world.region, i))
                .filter(|v| filter.matches(v))
                .collect()
        };
        if let Err(r) = order(req, &mut items) {
            return r;
        }
        let (items, next) = match page(req, items) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let mut m = Map::new();
        m.insert("kind".into(), json!("compute#instanceList"));
        m.insert(
            "id".into(),
            json!(format!(
                "projects/{}/zones/{z}/instances",
                self.cloud.world.project
            )),
        );
        if !items.is_empty() {
            m.insert("items".into(), Value::Array(items));
        }
        if let Some(n) = next {
            m.insert("nextPageToken".into(), json!(n));
        }
        m.insert("selfLink".into(), json!(format!("{}/instances", l.zone(z))));
        Response::json(200, &Value::Object(m))
    }

    fn aggregated(&self, req: &Request) -> Response {
        let filter = match parse_filter(req) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let l = self.cloud.links();
        let w = &self.cloud.world;
        let all: Vec<(String, Value)> = {
            let g = self.cloud.lock();
            let mut v = Vec::new();
            for z in &w.zones {
                for i in g.instances.iter().filter(|i| &i.zone == z) {
                    let j = state::instance_json(&l, &w.region, i);
                    if filter.matches(&j) {
                        v.push((z.clone(), j));
                    }
                }
            }
            v
        };
        let (items, next) = match page(req, all) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let mut scopes = Map::new();
        for z in &w.zones {
            let here: Vec<Value> = items
                .iter()
                .filter(|(zz, _)| zz == z)
                .map(|(_, v)| v.clone())
                .collect();
            let key = format!("zones/{z}");
            let v = if here.is_empty() {
                json!({"warning": {
                    "code": "NO_RESULTS_ON_PAGE",
                    "message": format!("There are no results for scope '{key}' on this page."),
                    "data": [{"key": "scope", "value": key}],
                }})
            } else {
                json!({ "instances": here })
            };
            scopes.insert(key, v);
        }
        let mut m = Map::new();
        m.insert("kind".into(), json!("compute#instanceAggregatedList"));
        m.insert(
            "id".into(),
            json!(format!("projects/{}/aggregated/instances", w.project)),
        );
        m.insert("items".into(), Value::Object(scopes));
        if let Some(n) = next {
            m.insert("nextPageToken".into(), json!(n));
        }
        m.insert(
            "selfLink".into(),
            json!(format!("{}/aggregated/instances", l.project())),
        );
        Response::json(200, &Value::Object(m))
    }

    fn region_ok(&self, reg: &str) -> Result<(), Response> {
        if reg == self.cloud.world.region {
            Ok(())
        } else {
            Err(not_found(&format!(
                "projects/{}/regions/{reg}",
                self.cloud.world.project
            )))
        }
    }

    fn address_get(&self, reg: &str, name: &str) -> Response {
        if let Err(r) = self.region_ok(reg) {
            return r;
        }
        let g = self.cloud.lock();
        match g
            .addresses
            .iter()
            .find(|a| a.name == name || a.id.to_string() == name)
        {
            Some(a) => Response::json(200, &state::address_json(&self.cloud.links(), reg, &g, a)),
            None => not_found(&format!(
                "projects/{}/regions/{reg}/addresses/{name}",
                self.cloud.world.project
            )),
        }
    }

    fn address_list(&self, req: &Request, reg: &str) -> Response {
        if let Err(r) = self.region_ok(reg) {
            return r;
        }
        let filter = match parse_filter(req) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let l = self.cloud.links();
        let mut items: Vec<Value> = {
            let g = self.cloud.lock();
            g.addresses
                .iter()
                .map(|a| state::address_json(&l, reg, &g, a))
                .filter(|v| filter.matches(v))
                .collect()
        };
        if let Err(r) = order(req, &mut items) {
            return r;
        }
        let (items, next) = match page(req, items) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let mut m = Map::new();
        m.insert("kind".into(), json!("compute#addressList"));
        m.insert(
            "id".into(),
            json!(format!(
                "projects/{}/regions/{reg}/addresses",
                self.cloud.world.project
            )),
        );
        if !items.is_empty() {
            m.insert("items".into(), Value::Array(items));
        }
        if let Some(n) = next {
            m.insert("nextPageToken".into(), json!(n));
        }
        m.insert(
            "selfLink".into(),
            json!(format!("{}/addresses", l.region(reg))),
        );
        Response::json(200, &Value::Object(m))
    }

    fn operation(&self, z: &str, name: &str, wait: bool) -> Response {
        if let Err(r) = self.zone_ok(z) {
            return r;
        }
        let find = |g: &GceState| {
            g.operations
                .iter()
                .position(|o| o.zone == z && (o.name == name || o.id.to_string() == name))
        };
        let mut g = self.cloud.lock();
        let Some(idx) = find(&g) else {
            return not_found(&format!(
                "projects/{}/zones/{z}/operations/{name}",
                self.cloud.world.project
            ));
        };
        if wait {
            // Returns when DONE or after the bounded wait, whichever first (gce-api.md §2.7).
            let max = Duration::from_millis(self.cloud.world.operations.wait_max_ms);
            g = self
                .cloud
                .wait_until(g, max, |g| g.operations[idx].status == OpStatus::Done);
        }
        Response::json(200, &g.operations[idx].json(&self.cloud.links()))
    }

    fn operation_list(&self, req: &Request, z: &str) -> Response {
        if let Err(r) = self.zone_ok(z) {
            return r;
        }
        let filter = match parse_filter(req) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let l = self.cloud.links();
        let g = self.cloud.lock();
        let items: Vec<Value> = g
            .operations
            .iter()
            .filter(|o| o.zone == z)
            .map(|o| o.json(&l))
            .filter(|v| filter.matches(v))
            .collect();
        let mut m = Map::new();
        m.insert("kind".into(), json!("compute#operationList"));
        m.insert(
            "id".into(),
            json!(format!(
                "projects/{}/zones/{z}/operations",
                self.cloud.world.project
            )),
        );
        if !items.is_empty() {
            m.insert("items".into(), Value::Array(items));
        }
        m.insert(
            "selfLink".into(),
            json!(format!("{}/operations", l.zone(z))),
        );
        Response::json(200, &Value::Object(m))
    }

    fn zone_get(&self, z: &str) -> Response {
        if let Err(r) = self.zone_ok(z) {
            return r;
        }
        let l = self.cloud.links();
        Response::json(
            200,
            &json!({
                "kind": "compute#zone",
                "id": state::id_from_name("zone", z).to_string(),
                "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
                "name": z,
                "description": z,
                "status": "UP",
                "region": l.region(&self.cloud.world.region),
                "selfLink": l.zone(z),
                "availableCpuPlatforms": ["Intel Broadwell"],
                "supportsPzs": false,
            }),
        )
    }

    fn region_get(&self, reg: &str) -> Response {
        if let Err(r) = self.region_ok(reg) {
            return r;
        }
        let l = self.cloud.links();
        let zones: Vec<String> = self.cloud.world.zones.iter().map(|z| l.zone(z)).collect();
        Response::json(
            200,
            &json!({
                "kind": "compute#region",
                "id": state::id_from_name("region", reg).to_string(),
                "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
                "name": reg,
                "description": reg,
                "status": "UP",
                "zones": zones,
                "selfLink": l.region(reg),
                "supportsPzs": false,
            }),
        )
    }

    /// subnetworks.get: the primary and secondary ranges a client checks an alias against.
    fn subnet_get(&self, reg: &str, name: &str) -> Response {
        if let Err(r) = self.region_ok(reg) {
            return r;
        }
        let w = &self.cloud.world;
        let found = w.networks.iter().find_map(|n| {
            n.subnets
                .iter()
                .find(|s| s.name == name && s.region.as_deref().unwrap_or(&w.region) == reg)
                .map(|s| (n, s))
        });
        let Some((net, sub)) = found else {
            return not_found(&format!(
                "projects/{}/regions/{reg}/subnetworks/{name}",
                w.project
            ));
        };
        let l = self.cloud.links();
        let secondary: Vec<Value> = sub
            .secondary_ranges
            .iter()
            .map(|r| json!({ "rangeName": r.range_name, "ipCidrRange": r.ip_cidr_range.to_string() }))
            .collect();
        let mut m = Map::new();
        m.insert("kind".into(), json!("compute#subnetwork"));
        m.insert(
            "id".into(),
            json!(state::id_from_name("subnetwork", name).to_string()),
        );
        m.insert("name".into(), json!(name));
        m.insert("network".into(), json!(l.network(&net.name)));
        m.insert("ipCidrRange".into(), json!(sub.ip_cidr_range.to_string()));
        // Absent, not [], when there are none (proto3 JSON omits empty lists).
        if !secondary.is_empty() {
            m.insert("secondaryIpRanges".into(), Value::Array(secondary));
        }
        m.insert("region".into(), json!(l.region(reg)));
        m.insert("selfLink".into(), json!(l.subnet(reg, name)));
        Response::json(200, &Value::Object(m))
    }

    /// The three mutations: validate synchronously, then queue an operation whose change is
    /// applied when it executes.
    fn mutate(
        &self,
        req: &Request,
        who: &Principal,
        effects: &[Fault],
        z: &str,
        i: &str,
        kind: Kind,
    ) -> Response {
        let w = &self.cloud.world;
        let l = self.cloud.links();
        let request_id = req.query("requestId").filter(|s| !s.is_empty());
        if let Some(rid) = request_id {
            if !valid_request_id(rid) {
                return invalid(&format!(
                    "Invalid value for field 'requestId': '{rid}'. The request ID must be a valid UUID with the exception that zero UUID is not supported (00000000-0000-0000-0000-000000000000)."
                ));
            }
        }
        let mut g = self.cloud.lock();
        // A replayed requestId returns the same operation and applies nothing again
        // (gce-api.md §2.8); checked before the fingerprint, which a retry may have stale.
        if let Some(rid) = request_id {
            if let Some(&idx) = g.request_ids.get(rid) {
                return Response::json(200, &g.operations[idx].json(&l));
            }
        }
        if let Err(r) = self.zone_ok(z) {
            return r;
        }
        let Some(ii) = g.instance(z, i) else {
            return not_found(&format!("projects/{}/zones/{z}/instances/{i}", w.project));
        };
        let Some(nic_name) = req.query("networkInterface") else {
            return error(
                400,
                "required",
                "Required field 'networkInterface' not specified",
            );
        };
        let Some(ni) = g.instances[ii].nics.iter().position(|n| n.name == nic_name) else {
            return invalid(&format!(
                "Invalid value for field 'networkInterfaceName': '{nic_name}'. Must be a valid network interface name (e.g. nic0, nic1)"
            ));
        };
        if effects
            .iter()
            .any(|f| f.spec.kind == FaultKind::FingerprintRace)
        {
            // Someone else changed the NIC a moment ago.
            g.instances[ii].nics[ni].fingerprint = new_fingerprint();
            g.changed();
        }
        let busy = g
            .operations
            .iter()
            .any(|o| o.status != OpStatus::Done && o.zone == z && o.target == g.instances[ii].name);
        if busy && w.operations.busy == Busy::Reject {
            return error(
                400,
                "resourceNotReady",
                &format!(
                    "The resource 'projects/{}/zones/{z}/instances/{}' is not ready",
                    w.project, g.instances[ii].name
                ),
            );
        }
        let action = match kind {
            Kind::UpdateNic => match self.validate_update(req, &g, ii, ni) {
                Ok(a) => a,
                Err(r) => return r,
            },
            Kind::AddAccessConfig => match self.validate_add_ac(req, who, &g, ii, ni) {
                Ok(a) => a,
                Err(r) => return r,
            },
            Kind::DeleteAccessConfig => {
                let Some(name) = req.query("accessConfig") else {
                    return error(
                        400,
                        "required",
                        "Required field 'accessConfig' not specified",
                    );
                };
                Action::DeleteAccessConfig {
                    nic: ni,
                    name: name.to_string(),
                }
            }
        };
        let op_type = match kind {
            Kind::UpdateNic => "updateNetworkInterface",
            Kind::AddAccessConfig => "addAccessConfig",
            Kind::DeleteAccessConfig => "deleteAccessConfig",
        };
        let inst = &g.instances[ii];
        let mut op = Operation::new(
            z,
            op_type,
            &inst.name,
            inst.id,
            &who.email,
            request_id.map(str::to_string),
            action,
        );
        for f in effects {
            match f.spec.kind {
                FaultKind::OperationStuck => op.stuck_fault = Some(f.id),
                FaultKind::OperationError => {
                    op.fail = Some((
                        f.spec
                            .code
                            .clone()
                            .unwrap_or_else(|| "INTERNAL_ERROR".into()),
                        f.spec
                            .message
                            .clone()
                            .unwrap_or_else(|| "Internal error. Please try again.".into()),
                    ))
                }
                _ => {}
            }
        }
        if kind == Kind::UpdateNic && w.operations.fingerprint_roll == FingerprintRoll::Accept {
            // The accepted PATCH owns the NIC now: a concurrent PATCH carrying the same
            // fingerprint gets 412 (the fingerprint rolls again when the change is applied).
            g.instances[ii].nics[ni].fingerprint = new_fingerprint();
        }
        let json = op.json(&l);
        g.operations.push(op);
        let idx = g.operations.len() - 1;
        if let Some(rid) = request_id {
            g.request_ids.insert(rid.to_string(), idx);
        }
        g.changed();
        drop(g);
        self.cloud.notify();
        Response::json(200, &json)
    }

    /// updateNetworkInterface body (gce-api.md §2.4): PATCH semantics, fingerprint required
    /// (400 missing, 412 stale), a present `aliasIpRanges` replaces the list, fields that
    /// cannot be patched rejected.
    fn validate_update(
        &self,
        req: &Request,
        g: &GceState,
        ii: usize,
        ni: usize,
    ) -> Result<Action, Response> {
        let body = req.json().map_err(|e| error(400, "parseError", &e))?;
        let Some(obj) = body.as_object() else {
            return Err(error(
                400,
                "parseError",
                "Invalid JSON payload received. Expected an object.",
            ));
        };
        let nic = &g.instances[ii].nics[ni];
        let w = &self.cloud.world;
        let last = |v: &Value| {
            v.as_str()
                .and_then(|s| s.trim_end_matches('/').rsplit('/').next())
                .map(str::to_string)
        };
        for (k, v) in obj {
            let same = match k.as_str() {
                "fingerprint" | "aliasIpRanges" | "kind" => true,
                // Checked below with its own messages.
                "aliasIpv6Ranges" => true,
                "name" => v.as_str() == Some(nic.name.as_str()),
                "network" => last(v).as_deref() == Some(nic.network.as_str()),
                "subnetwork" => last(v).as_deref() == Some(nic.subnet.as_str()),
                "networkIP" => v.as_str() == Some(nic.network_ip.to_string().as_str()),
                "stackType" => v.as_str() == Some("IPV4_ONLY"),
                _ => false,
            };
            if !same {
                let shown = match v {
                    Value::String(s) => s.clone(),
                    _ => String::new(),
                };
                // Changing network/subnetwork/networkIP is real GCE behaviour we do not model;
                // everything else really is rejected like this (kubernetes PR #59423).
                return Err(invalid(&format!(
                    "Invalid value for field 'resource.{k}': '{shown}'. Updating this field is not supported."
                )));
            }
        }
        match obj.get("fingerprint").and_then(Value::as_str) {
            None | Some("") => {
                // Status is documented (400); the text is our guess (gce-api.md §8 item 2).
                return Err(invalid(
                    "Invalid value for field 'resource.fingerprint': ''. A fingerprint must be provided to update the network interface.",
                ));
            }
            Some(f) if !same_fingerprint(f, &nic.fingerprint) => return Err(stale_fingerprint()),
            Some(_) => {}
        }
        check_alias_ipv6_ranges(obj.get("aliasIpv6Ranges"))?;
        let Some(ranges) = obj.get("aliasIpRanges") else {
            // Absent means unchanged: the operation is a no-op that still completes.
            return Ok(Action::SetAliases {
                nic: ni,
                aliases: nic.aliases.clone(),
                requested: Vec::new(),
            });
        };
        let ranges = match ranges {
            Value::Null => Vec::new(),
            Value::Array(a) => a.clone(),
            _ => return Err(invalid("Invalid value for field 'resource.aliasIpRanges'.")),
        };
        let mut aliases: Vec<Alias> = Vec::new();
        let mut requested = Vec::new();
        for (k, r) in ranges.iter().enumerate() {
            let cidr = r.get("ipCidrRange").and_then(Value::as_str).unwrap_or("");
            let field = format!("resource.aliasIpRanges[{k}].ipCidrRange");
            if cidr.starts_with('/') {
                // Netmask-only form asks GCE to allocate a range: not modelled (DEVIATIONS.md).
                return Err(invalid(&format!(
                    "Invalid value for field '{field}': '{cidr}'. Automatic allocation is not supported by this emulator."
                )));
            }
            if cidr.contains(':') {
                // IPv6 aliases live in their own field, aliasIpv6Ranges (Compute API
                // NetworkInterface; see check_alias_ipv6_ranges).
                return Err(invalid(&format!(
                    "Invalid value for field '{field}': '{cidr}'. IPv6 ranges are not allowed in aliasIpRanges; use aliasIpv6Ranges."
                )));
            }
            let range: Ipv4Net = cidr.parse().map_err(|_| {
                invalid(&format!(
                    "Invalid value for field '{field}': '{cidr}'. Invalid IPCidrRange."
                ))
            })?;
            let alias = Alias {
                range,
                range_name: r
                    .get("subnetworkRangeName")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            alias_in_subnet(w, &nic.network, &nic.subnet, &alias).map_err(|m| {
                invalid(&format!("Invalid value for field '{field}': '{cidr}'. {m}"))
            })?;
            if aliases.iter().any(|a| a.range.overlaps(&alias.range)) {
                return Err(invalid(&format!(
                    "Invalid value for field '{field}': '{cidr}'. Alias IP ranges of one network interface must not overlap."
                )));
            }
            aliases.push(alias);
            requested.push(cidr.to_string());
        }
        Ok(Action::SetAliases {
            nic: ni,
            aliases,
            requested,
        })
    }

    /// addAccessConfig body (gce-api.md §2.5).
    fn validate_add_ac(
        &self,
        req: &Request,
        who: &Principal,
        g: &GceState,
        ii: usize,
        ni: usize,
    ) -> Result<Action, Response> {
        let body = req.json().map_err(|e| error(400, "parseError", &e))?;
        let obj = body.as_object().cloned().unwrap_or_default();
        let w = &self.cloud.world;
        if let Some(t) = obj.get("type").and_then(Value::as_str) {
            if t != "ONE_TO_ONE_NAT" {
                return Err(invalid(&format!(
                    "Invalid value for field 'resource.type': '{t}'. Must be ONE_TO_ONE_NAT."
                )));
            }
        }
        if !g.instances[ii].nics[ni].access_configs.is_empty() {
            return Err(error(
                400,
                "badRequest",
                "At most one access config currently supported.",
            ));
        }
        if !self
            .cloud
            .permitted(&who.email, "compute.subnetworks.useExternalIp")
        {
            let nic = &g.instances[ii].nics[ni];
            return Err(error(
                403,
                "forbidden",
                &format!(
                    "Required 'compute.subnetworks.useExternalIp' permission for 'projects/{}/regions/{}/subnetworks/{}'",
                    w.project, nic.subnet_region, nic.subnet
                ),
            ));
        }
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("External NAT")
            .to_string();
        let mut tier = obj
            .get("networkTier")
            .and_then(Value::as_str)
            .map(str::to_string);
        let nat_ip = match obj
            .get("natIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => {
                let not_found = || {
                    invalid(&format!(
                        "Invalid value for field 'resource.natIP': '{s}'. The specified external IP address '{s}' was not found in region '{}'.",
                        w.region
                    ))
                };
                let ip: Ipv4Addr = s.parse().map_err(|_| not_found())?;
                let Some(a) = g
                    .addresses
                    .iter()
                    .find(|a| a.address == ip && a.address_type == "EXTERNAL")
                else {
                    return Err(not_found());
                };
                if !self.cloud.permitted(&who.email, "compute.addresses.use") {
                    return Err(error(
                        403,
                        "forbidden",
                        &format!(
                            "Required 'compute.addresses.use' permission for 'projects/{}/regions/{}/addresses/{}'",
                            w.project, w.region, a.name
                        ),
                    ));
                }
                match &tier {
                    Some(t) if *t != a.network_tier => {
                        return Err(invalid(&format!(
                            "Invalid value for field 'resource.networkTier': '{t}'. The network tier of the access config must match the tier of the address ({}).",
                            a.network_tier
                        )))
                    }
                    _ => tier = Some(a.network_tier.clone()),
                }
                Some(ip)
            }
        };
        Ok(Action::AddAccessConfig {
            nic: ni,
            name,
            nat_ip,
            network_tier: tier.unwrap_or_else(|| "PREMIUM".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;

    #[test]
    fn request_ids() {
        assert!(valid_request_id("6c9e1d2a-8a9e-4f43-9b1b-2f4f7b9f2c11"));
        assert!(!valid_request_id("00000000-0000-0000-0000-000000000000"));
        assert!(!valid_request_id("not-a-uuid"));
        assert!(!valid_request_id("6c9e1d2a8a9e4f439b1b2f4f7b9f2c11"));
    }

    #[test]
    fn fingerprint_alphabets() {
        assert!(same_fingerprint("a+b/cd8AAAA=", "a+b/cd8AAAA="));
        assert!(same_fingerprint("a-b_cd8AAAA=", "a+b/cd8AAAA="));
        assert!(same_fingerprint("a-b_cd8AAAA", "a+b/cd8AAAA="));
        assert!(!same_fingerprint("a-b_cd8AAAB=", "a+b/cd8AAAA="));
        assert!(!same_fingerprint("!!", "a+b/cd8AAAA="));
    }

    #[test]
    fn clock_is_used() {
        assert!(clock::rfc3339(SystemTime::now()).ends_with("+00:00"));
    }
}
