//! The Compute Engine API v1 calls cloudvip makes (gce-api.md §2): instances get/list,
//! updateNetworkInterface, add/deleteAccessConfig, addresses, subnetworks, zone operations.
//! Responses stay `serde_json::Value`: a PATCH must send back the alias entries exactly as
//! read (subnetworkRangeName included), and fields we do not model must not be lost. Every
//! field we rely on is read fail-closed (`field`, `nic_of`, `Operation::parse`): a missing
//! or odd one is an error naming it, never a default. Every mutation carries a `requestId`,
//! so a retried request is applied once.

use std::cell::RefCell;
use std::time::Duration;

use serde_json::{json, Value};

use super::{transient, Gce};
use crate::cloud::call::{self, Dialect as _};
use crate::cloud::secret::Secret;
use crate::cloud::CloudError;
use crate::deadline::{Backoff, Deadline};
use crate::http::{encode, Method, Request, Response};

/// One `zoneOperations.wait` call may block this long (GCE returns at DONE or ~2 min);
/// `http::send` cuts it to what is left of the deadline.
const WAIT_CALL: Duration = Duration::from_secs(30);
/// Between two failed `zoneOperations.wait` calls.
const WAIT_RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), true);
/// Pages of a list we follow at most: a loop in `nextPageToken` must not spin.
const MAX_PAGES: usize = 20;

pub struct Api<'a> {
    gce: &'a Gce,
    token: RefCell<Option<Secret>>,
    refreshed: RefCell<bool>,
}

/// The Compute API's way of refusing: `{"error": {"message", "errors": [{"reason"}]}}`;
/// rate limits answer 403 and a busy instance 400.
struct Compute;

impl call::Dialect for Compute {
    fn service(&self) -> &'static str {
        "Compute API"
    }
    fn refusal(&self, r: &Response) -> (Option<String>, String) {
        let (reason, message) = error_of(r);
        let text = format!("{reason}: {message}");
        (Some(reason), text)
    }
    fn classify(&self, _: Method, _: &str, r: &Response, what: &str) -> Option<CloudError> {
        if rate_limited(r) {
            Some(transient(what.to_owned()))
        } else if busy(r) {
            Some(CloudError::Conflict(what.to_owned()))
        } else {
            None
        }
    }
}

/// The action's access token: read once per `Api`, renewed once when refused (it expired
/// between the cache check and the call, or was revoked).
struct Bearer<'b, 'a>(&'b Api<'a>);

impl call::Auth for Bearer<'_, '_> {
    fn authorize(&mut self, req: Request, deadline: &Deadline) -> Result<Request, CloudError> {
        let token = self.0.bearer(deadline)?;
        Ok(req.header("Authorization", format!("Bearer {}", token.expose())))
    }
    fn renew(&mut self, deadline: &Deadline) -> Result<bool, CloudError> {
        if *self.0.refreshed.borrow() {
            return Ok(false);
        }
        *self.0.refreshed.borrow_mut() = true;
        *self.0.token.borrow_mut() = Some(self.0.gce.token(deadline, true)?);
        Ok(true)
    }
}

/// A GCE error body's reason (`error.errors[0].reason`) and message.
fn error_of(r: &Response) -> (String, String) {
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let e = &v["error"];
    let reason = e["errors"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let message = e["message"].as_str().map(str::to_owned).unwrap_or_else(|| {
        let t = r.text();
        t.chars().take(200).collect()
    });
    (reason, message)
}

/// GCE rate limits answer 403, not 429 (gce-api.md §3.2), and so does a full per-resource
/// operation queue ("Too many pending operations on a resource."). Both pass with time.
fn rate_limited(r: &Response) -> bool {
    if r.status != 403 {
        return false;
    }
    let (reason, message) = error_of(r);
    matches!(
        reason.as_str(),
        "rateLimitExceeded" | "userRateLimitExceeded"
    ) || message.contains("CONCURRENT_OPERATIONS_QUOTA_EXCEEDED")
        || String::from_utf8_lossy(&r.body).contains("CONCURRENT_OPERATIONS_QUOTA_EXCEEDED")
}

/// 400 resourceNotReady: the instance has an operation in flight (when GCE refuses rather
/// than queues, see the emulator's `operations.busy`). Not retried blindly: the writer
/// waits for that operation and reads the instance again.
fn busy(r: &Response) -> bool {
    r.status == 400 && error_of(r).0 == "resourceNotReady"
}

/// What the HTTP layer may retry by itself for a read: rate limits and a busy resource
/// (reads are never refused for that, but a proxy may say so).
fn retry_read(r: &Response) -> bool {
    rate_limited(r) || busy(r)
}

/// A `requestId` (a UUID, as GCE wants): a retried mutation is applied once.
pub fn request_id() -> String {
    let mut b = call::random::<16>();
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h = call::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `zones/us-central1-a/instances/node-a` from any selfLink or partial URL.
pub fn instance_ref(url: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = url.trim_end_matches('/').split('/').collect();
    let n = parts.len();
    (n >= 4 && parts[n - 4] == "zones" && parts[n - 2] == "instances")
        .then(|| (parts[n - 3].to_owned(), parts[n - 1].to_owned()))
}

/// A field of an API answer that must be there: its absence is an error naming it.
pub fn field<'v>(v: &'v Value, key: &str, what: &str) -> Result<&'v str, CloudError> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| transient(format!("{what}: the API answer has no {key}")))
}

/// An instance's network interfaces (never absent on a real instance).
pub fn nics<'v>(inst: &'v Value, what: &str) -> Result<&'v [Value], CloudError> {
    inst.get("networkInterfaces")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| {
            transient(format!(
                "{what}: the API answer has no networkInterfaces list"
            ))
        })
}

/// The alias list of a NIC: absent means none (GCE omits empty lists, gce-api.md §2.2);
/// anything but a list is an error.
pub fn aliases_of(nic: &Value, what: &str) -> Result<Vec<Value>, CloudError> {
    match nic.get("aliasIpRanges") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => Ok(a.clone()),
        Some(other) => Err(transient(format!(
            "{what}: aliasIpRanges is not a list: {}",
            short(other)
        ))),
    }
}

/// Every NIC's fingerprint, in order: what changes whenever anything about a NIC does.
fn nic_fingerprints(inst: &Value, what: &str) -> Result<Vec<String>, CloudError> {
    nics(inst, what)?
        .iter()
        .map(|n| field(n, "fingerprint", what).map(str::to_owned))
        .collect()
}

/// A NIC's primary address (`networkIP`), when it has one.
pub fn primary_ip(nic: &Value) -> Option<std::net::IpAddr> {
    nic.get("networkIP")?.as_str()?.parse().ok()
}

fn short(v: &Value) -> String {
    v.to_string().chars().take(120).collect()
}

/// A zonal operation as far as we act on it (gce-api.md §2.7).
#[derive(Debug)]
pub struct Operation {
    pub name: String,
    pub done: bool,
    /// The first of `error.errors` of a DONE operation: (code, message).
    pub error: Option<(String, String)>,
}

impl Operation {
    /// Fail-closed: a DONE operation counts as a success only when it carries no `error`
    /// at all; an `error` whose `errors` is not a non-empty list of coded entries is a
    /// malformed answer, not a success.
    pub fn parse(v: &Value) -> Result<Operation, CloudError> {
        let name = field(v, "name", "operation")?.to_owned();
        let done = match field(v, "status", &format!("operation {name}"))? {
            "DONE" => true,
            "PENDING" | "RUNNING" => false,
            s => return Err(transient(format!("operation {name}: unknown status {s:?}"))),
        };
        let error = match v.get("error") {
            None | Some(Value::Null) => None,
            Some(e) => {
                let first = e
                    .get("errors")
                    .and_then(Value::as_array)
                    .and_then(|l| l.first())
                    .and_then(|x| Some((x.get("code")?.as_str()?, x)))
                    .ok_or_else(|| {
                        transient(format!(
                            "operation {name}: malformed error (not a list of coded errors): {}",
                            short(e)
                        ))
                    })?;
                let msg = first.1["message"].as_str().unwrap_or("").to_owned();
                Some((first.0.to_owned(), msg))
            }
        };
        if !done && error.is_some() {
            return Err(transient(format!(
                "operation {name}: an error before DONE: {}",
                short(v)
            )));
        }
        Ok(Operation { name, done, error })
    }
}

impl<'a> Api<'a> {
    pub fn new(gce: &'a Gce) -> Self {
        Api {
            gce,
            token: RefCell::new(None),
            refreshed: RefCell::new(false),
        }
    }

    pub fn project(&self) -> &str {
        &self.gce.project
    }

    fn bearer(&self, deadline: &Deadline) -> Result<Secret, CloudError> {
        if let Some(t) = self.token.borrow().as_ref() {
            return Ok(t.clone());
        }
        let t = self.gce.token(deadline, false)?;
        *self.token.borrow_mut() = Some(t.clone());
        Ok(t)
    }

    /// One read: JSON in, JSON out, errors classified.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        deadline: &Deadline,
    ) -> Result<Value, CloudError> {
        self.call_with(
            method,
            path,
            body,
            deadline,
            crate::http::PER_CALL_CAP,
            &retry_read,
        )
    }

    fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        deadline: &Deadline,
        per_call: Duration,
        retry: &dyn Fn(&Response) -> bool,
    ) -> Result<Value, CloudError> {
        let url = format!("{}{path}", self.gce.api_base);
        let mut req = Request::new(method, &url).timeout(per_call);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = call::call(
            &self.gce.http,
            &mut Bearer(self),
            &Compute,
            req,
            path,
            retry,
            deadline,
        )?;
        call::json(&r, Compute.service())
    }

    pub fn get_instance(
        &self,
        zone: &str,
        name: &str,
        deadline: &Deadline,
    ) -> Result<Value, CloudError> {
        let p = self.project();
        self.call(
            Method::Get,
            &format!("projects/{p}/zones/{zone}/instances/{name}"),
            None,
            deadline,
        )
    }

    /// A subnetwork by its URL (a NIC's `subnetwork`, full or partial).
    pub fn subnetwork(&self, url: &str, deadline: &Deadline) -> Result<Value, CloudError> {
        let parts: Vec<&str> = url.trim_end_matches('/').split('/').collect();
        let n = parts.len();
        if n < 4 || parts[n - 2] != "subnetworks" || parts[n - 4] != "regions" {
            return Err(transient(format!("not a subnetwork URL: {url}")));
        }
        let p = self.project();
        self.call(
            Method::Get,
            &format!(
                "projects/{p}/regions/{}/subnetworks/{}",
                parts[n - 3],
                parts[n - 1]
            ),
            None,
            deadline,
        )
    }

    /// The instances in `region` that may hold the VIP: `peers` by name, else those with
    /// `peer_label`, else all. One aggregatedList call (plus pages).
    pub fn candidates(&self, region: &str, deadline: &Deadline) -> Result<Vec<Value>, CloudError> {
        let o = &self.gce.opts;
        let filter = if !o.peers.is_empty() {
            Some(format!("name eq \"({})\"", o.peers.join("|")))
        } else {
            o.peer_label
                .as_ref()
                .map(|(k, v)| format!("labels.{k} = \"{v}\""))
        };
        let mut path = format!(
            "projects/{}/aggregated/instances?maxResults=500",
            self.project()
        );
        if let Some(f) = &filter {
            path.push_str(&format!("&filter={}", encode(f)));
        }
        let mut out = Vec::new();
        self.pages(&path, "aggregatedList", deadline, |v| {
            match v.get("items") {
                None | Some(Value::Null) => {}
                Some(Value::Object(items)) => {
                    for (scope, list) in items {
                        let Some(zone) = scope.strip_prefix("zones/") else {
                            continue;
                        };
                        if zone.rsplit_once('-').map(|(r, _)| r) != Some(region) {
                            continue;
                        }
                        match list.get("instances") {
                            None | Some(Value::Null) => {}
                            Some(Value::Array(a)) => out.extend(a.iter().cloned()),
                            Some(x) => {
                                return Err(transient(format!(
                                    "aggregatedList: {scope}.instances is not a list: {}",
                                    short(x)
                                )))
                            }
                        }
                    }
                }
                Some(x) => {
                    return Err(transient(format!(
                        "aggregatedList: items is not an object: {}",
                        short(x)
                    )))
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// GET `path` and its further pages (`nextPageToken`), handing each page to `each`;
    /// at most `MAX_PAGES`, so a token that loops cannot spin.
    fn pages(
        &self,
        path: &str,
        what: &str,
        deadline: &Deadline,
        mut each: impl FnMut(&Value) -> Result<(), CloudError>,
    ) -> Result<(), CloudError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        call::pages(what, MAX_PAGES, |page| {
            let p = match page {
                Some(t) => format!("{path}{sep}pageToken={}", encode(t)),
                None => path.to_owned(),
            };
            let v = self.call(Method::Get, &p, None, deadline)?;
            each(&v)?;
            Ok(v.get("nextPageToken")
                .and_then(Value::as_str)
                .map(str::to_owned))
        })
    }

    /// The operations on the instance at `self_link` that are not DONE. Filtered on the
    /// server (`targetLink="..." AND status!="DONE"`, the AIP-160 form other GCE clients
    /// use, e.g. karpenter-provider-gcp's preemption check) and again here, so a server
    /// that ignores the filter cannot make us wait for another instance's operation.
    pub fn pending_on(
        &self,
        zone: &str,
        self_link: &str,
        deadline: &Deadline,
    ) -> Result<Vec<String>, CloudError> {
        let target = instance_ref(self_link)
            .ok_or_else(|| transient(format!("not an instance URL: {self_link}")))?;
        let filter = format!("targetLink=\"{self_link}\" AND status!=\"DONE\"");
        let path = format!(
            "projects/{}/zones/{zone}/operations?filter={}",
            self.project(),
            encode(&filter)
        );
        let mut out = Vec::new();
        self.pages(&path, "zoneOperations.list", deadline, |v| {
            let items = match v.get("items") {
                None | Some(Value::Null) => &[][..],
                Some(Value::Array(a)) => a.as_slice(),
                Some(x) => {
                    return Err(transient(format!(
                        "zoneOperations.list: items is not a list: {}",
                        short(x)
                    )))
                }
            };
            for item in items {
                let link = field(item, "targetLink", "zoneOperations.list")?;
                if instance_ref(link).as_ref() != Some(&target) {
                    continue;
                }
                let op = Operation::parse(item)?;
                if !op.done {
                    out.push(op.name);
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The instance as every change accepted so far has left it: read it, find nothing in
    /// flight on it, and read it again with the same NIC fingerprints. The second read is
    /// what makes the first one trustworthy: an operation accepted before the first read
    /// that finished before the check would otherwise go unseen (a queued removal that
    /// lands right after "already an alias" was read). The fingerprint changes with every
    /// applied update (gce-api.md §2.2), so equal fingerprints mean nothing landed between
    /// the reads. `first` is a read already made.
    pub fn settled(
        &self,
        zone: &str,
        name: &str,
        mut first: Option<Value>,
        deadline: &Deadline,
    ) -> Result<Value, CloudError> {
        let mut prev: Option<(Vec<String>, Value)> = None;
        loop {
            let inst = match first.take() {
                Some(i) => i,
                None => self.get_instance(zone, name, deadline)?,
            };
            let prints = nic_fingerprints(&inst, name)?;
            if let Some((p, _)) = &prev {
                if *p == prints {
                    return Ok(inst);
                }
            }
            let link = field(&inst, "selfLink", name)?.to_owned();
            if self.pending_on(zone, &link, deadline)?.is_empty() {
                prev = Some((prints, inst));
            } else {
                self.wait_idle(zone, &link, deadline)?;
                prev = None;
            }
        }
    }

    /// Wait until the instance has no operation in flight.
    pub fn wait_idle(
        &self,
        zone: &str,
        self_link: &str,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        loop {
            let pending = self.pending_on(zone, self_link, deadline)?;
            if pending.is_empty() {
                return Ok(());
            }
            log::debug!(
                "{} has {} operation(s) in flight; waiting",
                instance_ref(self_link).map_or(String::new(), |(_, n)| n),
                pending.len()
            );
            for name in pending {
                // Its outcome is someone else's business; only that it is over matters.
                match self.wait_named(zone, &name, deadline).map_err(CloudError::into_kind) {
                    Ok(_) | Err(CloudError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// PATCH a NIC's alias list (the whole list: PATCH replaces it; an explicit `[]` when
    /// none remain) and return the operation, not waited for. `Conflict` for a stale
    /// fingerprint (412) or a busy instance (400 resourceNotReady): read again.
    pub fn patch_aliases(
        &self,
        zone: &str,
        instance: &str,
        nic_name: &str,
        fingerprint: &str,
        aliases: &[Value],
        deadline: &Deadline,
    ) -> Result<Value, CloudError> {
        let body = json!({ "fingerprint": fingerprint, "aliasIpRanges": aliases });
        let path = format!(
            "projects/{}/zones/{zone}/instances/{instance}/updateNetworkInterface?networkInterface={}&requestId={}",
            self.project(),
            encode(nic_name),
            request_id()
        );
        // The same requestId on every retry: GCE applies it at most once (gce-api.md §2.8).
        self.call_with(
            Method::Patch,
            &path,
            Some(&body),
            deadline,
            crate::http::PER_CALL_CAP,
            &rate_limited,
        )
    }

    /// deleteAccessConfig, its operation returned, not waited for.
    pub fn delete_access_config(
        &self,
        zone: &str,
        instance: &str,
        nic_name: &str,
        config_name: &str,
        deadline: &Deadline,
    ) -> Result<Value, CloudError> {
        let path = format!(
            "projects/{}/zones/{zone}/instances/{instance}/deleteAccessConfig?accessConfig={}&networkInterface={}&requestId={}",
            self.project(),
            encode(config_name),
            encode(nic_name),
            request_id()
        );
        self.call(Method::Post, &path, None, deadline)
    }

    pub fn add_access_config(
        &self,
        zone: &str,
        instance: &str,
        nic_name: &str,
        config: &Value,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let path = format!(
            "projects/{}/zones/{zone}/instances/{instance}/addAccessConfig?networkInterface={}&requestId={}",
            self.project(),
            encode(nic_name),
            request_id()
        );
        let op = self.call(Method::Post, &path, Some(config), deadline)?;
        self.wait(zone, &op, deadline)
    }

    /// A regional static address, by name or by IP.
    pub fn address(
        &self,
        region: &str,
        name_or_ip: &str,
        deadline: &Deadline,
    ) -> Result<Value, CloudError> {
        let p = self.project();
        let not_found = |_| {
            // The configured address does not exist: the same on every node.
            CloudError::Invalid(format!(
                "public_ip={name_or_ip}: no static address of that name in region {region}"
            ))
        };
        if name_or_ip.parse::<std::net::Ipv4Addr>().is_err() {
            return self
                .call(
                    Method::Get,
                    &format!("projects/{p}/regions/{region}/addresses/{name_or_ip}"),
                    None,
                    deadline,
                )
                .map_err(|e| match e.into_kind() {
                    CloudError::NotFound(m) => not_found(m),
                    e => e,
                });
        }
        let filter = encode(&format!("address = \"{name_or_ip}\""));
        let v = self.call(
            Method::Get,
            &format!("projects/{p}/regions/{region}/addresses?filter={filter}"),
            None,
            deadline,
        )?;
        v.get("items")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| x["address"].as_str() == Some(name_or_ip)))
            .cloned()
            .ok_or_else(|| {
                CloudError::Invalid(format!(
                    "public_ip={name_or_ip}: no static address {name_or_ip} in region {region}"
                ))
            })
    }

    /// Wait until the operation is DONE; an error inside a DONE operation is an error
    /// (gce-api.md §2.7). IP_IN_USE_BY_ANOTHER_RESOURCE means "not released yet".
    pub fn wait(&self, zone: &str, op: &Value, deadline: &Deadline) -> Result<(), CloudError> {
        let first = Operation::parse(op)?;
        let op = if first.done {
            first
        } else {
            self.wait_named(zone, &first.name, deadline)?
        };
        match op.error {
            None => Ok(()),
            Some((code, msg)) => {
                let m = format!("operation {}: {code}: {msg}", op.name);
                Err(if code == "IP_IN_USE_BY_ANOTHER_RESOURCE" {
                    CloudError::Conflict(m)
                } else {
                    transient(m)
                })
            }
        }
    }

    /// `zoneOperations.wait` until DONE, each call cut to the time left: GCE may return
    /// before DONE (or after zero seconds), so loop; at the deadline, say which one hung.
    pub fn wait_named(
        &self,
        zone: &str,
        name: &str,
        deadline: &Deadline,
    ) -> Result<Operation, CloudError> {
        let path = format!(
            "projects/{}/zones/{zone}/operations/{}/wait",
            self.project(),
            encode(name)
        );
        let not_done = || transient(format!("operation {name} not DONE before the deadline"));
        // A wait that failed (no answer in its share of the time, a reset) says nothing
        // about the operation: wait again while there is time, then name the operation.
        let mut pause = WAIT_RETRY;
        loop {
            if deadline.remaining() < Duration::from_millis(50) {
                return Err(not_done());
            }
            match self
                .call_with(Method::Post, &path, None, deadline, WAIT_CALL, &retry_read)
                .map_err(CloudError::into_kind)
            {
                Ok(v) => {
                    let op = Operation::parse(&v)?;
                    if op.done {
                        return Ok(op);
                    }
                }
                // Less than a second left: another wait would only end the action later.
                Err(CloudError::Transient(_)) if deadline.remaining() < Duration::from_secs(1) => {
                    return Err(not_done());
                }
                Err(CloudError::Transient(m)) => {
                    log::info!("operation {name}: {m}; waiting again");
                    pause.wait(deadline).map_err(|_| not_done())?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_v4_uuids() {
        let a = request_id();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, request_id());
    }

    #[test]
    fn instance_refs() {
        assert_eq!(
            instance_ref("https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instances/node-a"),
            Some(("us-central1-a".into(), "node-a".into()))
        );
        assert_eq!(instance_ref("projects/p/regions/r/addresses/x"), None);
    }

    #[test]
    fn operations_parse_fail_closed() {
        let ok = Operation::parse(&json!({"name": "op-1", "status": "DONE"})).unwrap();
        assert!(ok.done && ok.error.is_none());
        let pending = Operation::parse(&json!({"name": "op-1", "status": "PENDING"})).unwrap();
        assert!(!pending.done);
        let failed = Operation::parse(&json!({"name": "op-1", "status": "DONE",
            "error": {"errors": [{"code": "IP_IN_USE_BY_ANOTHER_RESOURCE", "message": "in use"}]}}))
        .unwrap();
        assert_eq!(failed.error.unwrap().0, "IP_IN_USE_BY_ANOTHER_RESOURCE");
        for bad in [
            json!({"name": "op-1", "status": "DONE", "error": {"errors": "boom"}}),
            json!({"name": "op-1", "status": "DONE", "error": {"errors": []}}),
            json!({"name": "op-1", "status": "DONE", "error": {"errors": [{"message": "no code"}]}}),
            json!({"name": "op-1", "status": "DONE", "error": "x"}),
            json!({"name": "op-1", "status": "done"}),
            json!({"name": "op-1"}),
            json!({"status": "DONE"}),
            json!([]),
        ] {
            assert!(Operation::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn alias_lists_fail_closed() {
        assert!(aliases_of(&json!({}), "x").unwrap().is_empty());
        assert_eq!(
            aliases_of(
                &json!({"aliasIpRanges": [{"ipCidrRange": "10.0.0.1/32"}]}),
                "x"
            )
            .unwrap()
            .len(),
            1
        );
        assert!(aliases_of(&json!({"aliasIpRanges": {"a": 1}}), "x").is_err());
        assert!(nics(&json!({"name": "i"}), "x").is_err());
        assert!(field(&json!({"fingerprint": ""}), "fingerprint", "x").is_err());
    }
}
