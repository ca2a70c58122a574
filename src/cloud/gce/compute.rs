//! The Compute Engine API v1 calls cloudvip makes (gce-api.md §2): instances get/list,
//! updateNetworkInterface, add/deleteAccessConfig, addresses, zone operations. Responses
//! stay `serde_json::Value`: a PATCH must send back the alias entries exactly as read
//! (subnetworkRangeName included), and fields we do not model must not be lost.
//! Every mutation carries a `requestId`, so a retried request is applied once.

use std::cell::RefCell;
use std::time::Duration;

use serde_json::{json, Value};

use super::{transient, Gce};
use crate::cloud::secret::Secret;
use crate::cloud::CloudError;
use crate::deadline::Deadline;
use crate::http::{encode, Method, Request, Response};

/// One `zoneOperations.wait` call may block this long (GCE returns at DONE or ~2 min).
const WAIT_CALL: Duration = Duration::from_secs(30);

pub struct Api<'a> {
    gce: &'a Gce,
    token: RefCell<Option<Secret>>,
    refreshed: RefCell<bool>,
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

/// GCE rate limits answer 403, not 429 (gce-api.md §3.2); a busy resource answers
/// 400 resourceNotReady. Both pass with time.
fn retry_also(r: &Response) -> bool {
    if r.status != 403 && r.status != 400 {
        return false;
    }
    let (reason, message) = error_of(r);
    matches!(
        reason.as_str(),
        "rateLimitExceeded" | "userRateLimitExceeded" | "resourceNotReady"
    ) || message.contains("CONCURRENT_OPERATIONS_QUOTA_EXCEEDED")
}

pub fn request_id() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
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

impl<'a> Api<'a> {
    pub fn new(gce: &'a Gce) -> Self {
        Api {
            gce,
            token: RefCell::new(None),
            refreshed: RefCell::new(false),
        }
    }

    fn bearer(&self, deadline: &Deadline) -> Result<Secret, CloudError> {
        if let Some(t) = self.token.borrow().as_ref() {
            return Ok(t.clone());
        }
        let t = self.gce.token(deadline, false)?;
        *self.token.borrow_mut() = Some(t.clone());
        Ok(t)
    }

    /// One API call: JSON in, JSON out, errors classified.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        deadline: &Deadline,
    ) -> Result<Value, CloudError> {
        self.call_timed(method, path, body, deadline, crate::http::PER_CALL_CAP)
    }

    fn call_timed(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        deadline: &Deadline,
        per_call: Duration,
    ) -> Result<Value, CloudError> {
        let url = format!("{}{path}", self.gce.api_base);
        loop {
            let token = self.bearer(deadline)?;
            let mut req = Request::new(method, &url)
                .header("Authorization", format!("Bearer {}", token.expose()))
                .timeout(per_call);
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = self
                .gce
                .http
                .api(&req, deadline, &retry_also)
                .map_err(|e| crate::cloud::http_error("Compute API", e))?;
            if r.ok() {
                return r
                    .json()
                    .map_err(|e| transient(format!("Compute API: {e:#}")));
            }
            let (reason, message) = error_of(&r);
            let what = format!(
                "{} {}: HTTP {} {reason}: {message}",
                method.as_str(),
                crate::http::redact(path),
                r.status
            );
            return Err(match r.status {
                // A token that expired between the cache check and the call, or was
                // revoked: one fresh token, then give up.
                401 if !*self.refreshed.borrow() => {
                    *self.refreshed.borrow_mut() = true;
                    *self.token.borrow_mut() = Some(self.gce.token(deadline, true)?);
                    continue;
                }
                401 => CloudError::Denied(what),
                403 if retry_also(&r) => transient(what),
                403 => CloudError::Denied(what),
                404 => CloudError::NotFound(what),
                409 | 412 => CloudError::Conflict(what),
                400 if retry_also(&r) => transient(what),
                400 => CloudError::Invalid(what),
                _ => transient(what),
            });
        }
    }

    pub fn get_instance(
        &self,
        zone: &str,
        name: &str,
        deadline: &Deadline,
    ) -> Result<Value, CloudError> {
        let p = &self.gce.project;
        self.call(
            Method::Get,
            &format!("projects/{p}/zones/{zone}/instances/{name}"),
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
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut path = format!(
                "projects/{}/aggregated/instances?maxResults=500",
                self.gce.project
            );
            if let Some(f) = &filter {
                path.push_str(&format!("&filter={}", encode(f)));
            }
            if let Some(t) = &page {
                path.push_str(&format!("&pageToken={}", encode(t)));
            }
            let v = self.call(Method::Get, &path, None, deadline)?;
            if let Some(items) = v["items"].as_object() {
                for (scope, list) in items {
                    let zone = scope.strip_prefix("zones/").unwrap_or(scope);
                    if zone.rsplit_once('-').map(|(r, _)| r) != Some(region) {
                        continue;
                    }
                    out.extend(list["instances"].as_array().into_iter().flatten().cloned());
                }
            }
            match v["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => page = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// PATCH a NIC's alias list (the whole list: PATCH replaces it) and wait for the
    /// operation. `Conflict` when the fingerprint is stale or the IP is in use elsewhere.
    pub fn set_aliases(
        &self,
        zone: &str,
        instance: &str,
        nic: &Value,
        aliases: Vec<Value>,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let nic_name = nic["name"].as_str().unwrap_or("nic0");
        let fingerprint = nic["fingerprint"].as_str().unwrap_or_default();
        let body = json!({ "fingerprint": fingerprint, "aliasIpRanges": aliases });
        let path = format!(
            "projects/{}/zones/{zone}/instances/{instance}/updateNetworkInterface?networkInterface={}&requestId={}",
            self.gce.project,
            encode(nic_name),
            request_id()
        );
        let op = self.call(Method::Patch, &path, Some(&body), deadline)?;
        self.wait(zone, op, deadline)
    }

    pub fn delete_access_config(
        &self,
        zone: &str,
        instance: &str,
        nic_name: &str,
        config_name: &str,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let path = format!(
            "projects/{}/zones/{zone}/instances/{instance}/deleteAccessConfig?accessConfig={}&networkInterface={}&requestId={}",
            self.gce.project,
            encode(config_name),
            encode(nic_name),
            request_id()
        );
        let op = self.call(Method::Post, &path, None, deadline)?;
        self.wait(zone, op, deadline)
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
            self.gce.project,
            encode(nic_name),
            request_id()
        );
        let op = self.call(Method::Post, &path, Some(config), deadline)?;
        self.wait(zone, op, deadline)
    }

    /// A regional static address, by name or by IP.
    pub fn address(
        &self,
        region: &str,
        name_or_ip: &str,
        deadline: &Deadline,
    ) -> Result<Value, CloudError> {
        let p = &self.gce.project;
        if name_or_ip.parse::<std::net::Ipv4Addr>().is_err() {
            return self.call(
                Method::Get,
                &format!("projects/{p}/regions/{region}/addresses/{name_or_ip}"),
                None,
                deadline,
            );
        }
        let filter = encode(&format!("address = \"{name_or_ip}\""));
        let v = self.call(
            Method::Get,
            &format!("projects/{p}/regions/{region}/addresses?filter={filter}"),
            None,
            deadline,
        )?;
        v["items"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["address"].as_str() == Some(name_or_ip)))
            .cloned()
            .ok_or_else(|| {
                CloudError::NotFound(format!("no static address {name_or_ip} in region {region}"))
            })
    }

    /// Wait until the operation is DONE; an error inside a DONE operation is an error
    /// (gce-api.md §2.7). IP_IN_USE_BY_ANOTHER_RESOURCE means "not released yet".
    fn wait(&self, zone: &str, mut op: Value, deadline: &Deadline) -> Result<(), CloudError> {
        let name = op["name"].as_str().unwrap_or_default().to_owned();
        loop {
            if op["status"].as_str() == Some("DONE") {
                let Some(err) = op["error"]["errors"].as_array().and_then(|e| e.first()) else {
                    return Ok(());
                };
                let code = err["code"].as_str().unwrap_or_default();
                let msg = format!(
                    "operation {name}: {code}: {}",
                    err["message"].as_str().unwrap_or_default()
                );
                return Err(if code == "IP_IN_USE_BY_ANOTHER_RESOURCE" {
                    CloudError::Conflict(msg)
                } else {
                    transient(msg)
                });
            }
            if deadline.remaining() < Duration::from_millis(50) {
                return Err(transient(format!(
                    "operation {name} not DONE before the deadline"
                )));
            }
            let path = format!(
                "projects/{}/zones/{zone}/operations/{name}/wait",
                self.gce.project
            );
            // wait blocks server-side until DONE or ~2 min: allow it longer than a plain
            // call, still within the deadline.
            op = match self.call_timed(Method::Post, &path, None, deadline, WAIT_CALL) {
                Err(CloudError::Transient(_))
                    if deadline.remaining() < Duration::from_millis(100) =>
                {
                    let kind = op["operationType"].as_str().unwrap_or("operation");
                    return Err(transient(format!(
                        "{kind} operation {name} not DONE before the deadline"
                    )));
                }
                other => other?,
            };
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
}
