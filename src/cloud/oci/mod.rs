//! Oracle Cloud: the VIP is a secondary private IP of this instance's VNIC, and an optional
//! reserved public IP is assigned to that private IP. The flow is the oci CLI's
//! `assign-private-ip --unassign-if-already-assigned` (oci-api.md §2.7) done in process:
//! find the private IP object by address in our VNIC's subnet, create it on our VNIC if
//! absent, move it with PUT (same OCID, so a reserved public IP follows) if it is elsewhere.
//! Every request is signed (`sign.rs`) as an API key or an instance principal (`auth.rs`).

pub mod auth;
pub mod config;
mod diagnose;
mod ipv6;
mod model;
mod sign;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use super::registry::{Backend, Dmi, Mode, Platform, Setup};
use super::{settle, Claimed, Cloud, CloudError, Nic, Op, Planned, Seen};
use crate::deadline::{Backoff, Deadline};
use crate::http::{encode, Http, Method, Request, Response};
use crate::ocf::Exit;
use auth::Credentials;
use model::{Lifetime, PrivateIp, PublicIp, PublicIpState, VnicState};

pub static BACKEND: Backend = Backend {
    name: "oci",
    label: "OCI",
    summary: "a secondary private IP on the Oracle Cloud VNIC",
    dmi_doc: "OracleCloud.com",
    // OCI sets chassis_asset_tag "OracleCloud.com".
    detect: |d: &Dmi| d.read("chassis_asset_tag") == "OracleCloud.com",
    platform: Platform::Oci,
    modes: &[Mode {
        name: "secondary_ip",
        doc: "a secondary private IP of the VNIC",
    }],
    params: config::PARAMS,
    parse: |get| Ok(Box::new(config::Config::parse(get)?)),
    fits,
    cloud: |s| Ok(Box::new(Oci::new(s)?)),
    inspect: |s| Ok(Box::new(Oci::new(s)?)),
};

/// OCI public IPs are IPv4.
fn fits(ip: IpAddr, set: &super::registry::IsSet) -> Result<(), Exit> {
    if ip.is_ipv6() && set("public_ip") {
        return Err(Exit::configured(
            "public_ip with an IPv6 ip: OCI public IPs attach to IPv4 private IPs only",
        ));
    }
    Ok(())
}

const DEFAULT_METADATA: &str = "http://169.254.169.254/opc/v2/";

/// "401 (NotAuthenticated) is returned if the client's clock is skewed more than 5
/// minutes" (oci-api.md §2.4).
pub(super) const OCI_CLOCK_LIMIT_SECS: i64 = 300;

/// Polling a public IP's asynchronous assignment: no duration is documented (oci-api.md
/// §6); poll often at first, then every second.
const PUBLIC_IP_POLL: Backoff =
    Backoff::new(Duration::from_millis(250), Duration::from_secs(1), false);

pub struct Oci {
    http: Http,
    ip: IpAddr,
    opts: config::Config,
    shared: crate::cloud::config::Shared,
    md_base: String,
    /// The state directory for the token cache and its lock.
    state: Option<PathBuf>,
    instance: Option<Instance>,
    creds: Option<Credentials>,
    /// The instance-principal session key, generated once per action: RSA key generation
    /// is CPU work that no timeout interrupts, so a federation retried while the
    /// endpoint is down must not pay it on every round.
    session_key: std::cell::OnceCell<rsa::RsaPrivateKey>,
    /// The VIP's subnet, as diagnose's permissions check read it for its subnet check.
    found_subnet: Option<Value>,
}

/// This instance as IMDS v2 describes it (oci-api.md §1.3-1.4), read fail-closed: a
/// field we rely on that is missing or of the wrong type is an error, never a default.
struct Instance {
    id: String,
    region: String,
    /// `regionInfo.realmDomainComponent`; needed only for default endpoints.
    domain: Option<String>,
    vnics: Vec<ImdsVnic>,
}

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ImdsVnic {
    pub vnic_id: String,
    pub mac_addr: String,
    /// The VNIC's primary private IP: never a VIP.
    pub private_ip: IpAddr,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImdsInstance {
    id: String,
    canonical_region_name: Option<String>,
    region_info: Option<RegionInfo>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegionInfo {
    region_identifier: Option<String>,
    realm_domain_component: Option<String>,
}

/// What a start does to the VIP's private IP object.
enum Claim {
    /// On our VNIC already (its OCID).
    Here(String),
    /// No such object in the subnet: create it on our VNIC.
    Create,
    /// On another VNIC (or none): move it here, keeping its OCID.
    Move { id: String, from: Option<String> },
}

/// What assigning the reserved public IP takes next, from its state.
enum PublicStep {
    /// Assigned to our private IP.
    Done,
    /// An assignment in flight: its outcome decides.
    Wait,
    /// Assign it (again: assignment may fail silently into AVAILABLE).
    Assign,
}

fn transient(msg: String) -> CloudError {
    CloudError::Transient(msg)
}

/// The `code` of OCI's `{"code", "message"}` error body.
fn error_code(r: &Response) -> Option<String> {
    let v: Value = serde_json::from_slice(&r.body).ok()?;
    v["code"].as_str().map(str::to_owned)
}

/// OCI's `{"code", "message"}` error body, as one line.
fn error_text(r: &Response) -> String {
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    match (v["code"].as_str(), v["message"].as_str()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        _ => r.text().chars().take(200).collect(),
    }
}

fn retry_token() -> String {
    let mut b = [0u8; 15];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Oci {
    pub fn new(s: &Setup) -> Result<Self, Exit> {
        let o = s.shared;
        Ok(Oci {
            http: s.http()?,
            ip: s.ip,
            opts: s.config::<config::Config>()?.clone(),
            shared: o.clone(),
            md_base: o
                .metadata_url
                .clone()
                .unwrap_or_else(|| DEFAULT_METADATA.to_owned()),
            state: s.state.map(std::path::Path::to_owned),
            instance: None,
            creds: None,
            session_key: std::cell::OnceCell::new(),
            found_subnet: None,
        })
    }

    /// An IMDS v2 GET (`Authorization: Bearer Oracle`, oci-api.md §1).
    fn imds(&self, path: &str, deadline: &Deadline) -> Result<Response, CloudError> {
        let req = Request::new(Method::Get, format!("{}{path}", self.md_base))
            .header("Authorization", "Bearer Oracle");
        let r = self
            .http
            .metadata(&req, deadline)
            .map_err(|e| super::http_error("instance metadata service", e))?;
        if !r.ok() {
            return Err(transient(format!(
                "instance metadata service answered HTTP {} for {path}",
                r.status
            )));
        }
        Ok(r)
    }

    fn load(&mut self, deadline: &Deadline) -> Result<(), CloudError> {
        if self.instance.is_some() {
            return Ok(());
        }
        let bad = |what: &str, e: serde_json::Error| {
            transient(format!("instance metadata service: unexpected {what}: {e}"))
        };
        let r = self.imds("instance/", deadline)?;
        let inst: ImdsInstance =
            serde_json::from_slice(&r.body).map_err(|e| bad("instance document", e))?;
        let r = self.imds("vnics/", deadline)?;
        let vnics: Vec<ImdsVnic> =
            serde_json::from_slice(&r.body).map_err(|e| bad("VNIC list", e))?;
        let info = inst.region_info.as_ref();
        let region = inst
            .canonical_region_name
            .clone()
            .or_else(|| info.and_then(|i| i.region_identifier.clone()))
            .filter(|r| !r.is_empty())
            .ok_or_else(|| transient("instance metadata service: no region".into()))?;
        if inst.id.is_empty() || vnics.is_empty() {
            return Err(transient(
                "instance metadata service: no instance id or no VNIC".into(),
            ));
        }
        self.instance = Some(Instance {
            id: inst.id,
            region,
            domain: info.and_then(|i| i.realm_domain_component.clone()),
            vnics,
        });
        Ok(())
    }

    fn instance_id(&self) -> Result<&str, CloudError> {
        self.instance
            .as_ref()
            .map(|i| i.id.as_str())
            .ok_or_else(|| transient("instance identity not loaded".into()))
    }

    fn base(&self, explicit: &Option<String>, service: &str) -> Result<String, CloudError> {
        if let Some(e) = explicit {
            return Ok(e.clone());
        }
        let i = self
            .instance
            .as_ref()
            .ok_or_else(|| transient("instance identity not loaded".into()))?;
        let domain = i.domain.as_deref().ok_or_else(|| {
            CloudError::Invalid(format!(
                "the instance metadata names no realm domain (set api_endpoint and auth_endpoint \
                 for {service})"
            ))
        })?;
        Ok(format!("https://{service}.{}.{domain}/", i.region))
    }

    fn auth_base(&self) -> Result<String, CloudError> {
        self.base(&self.opts.auth_endpoint, "auth")
    }

    /// The VNIC that gets the VIP: `vnic_id` if set (it must be one of this instance's,
    /// with the MAC of `nic`), else the VNIC whose MAC is `nic`'s. Never just the first.
    fn our_vnic(&self, nic: &Nic) -> Result<String, CloudError> {
        let i = self
            .instance
            .as_ref()
            .ok_or_else(|| transient("instance identity not loaded".into()))?;
        let mac = nic.mac.map(|m| crate::cloud::format_mac(&m));
        if let Some(v) = &self.opts.vnic_id {
            let Some(ours) = i.vnics.iter().find(|x| &x.vnic_id == v) else {
                return Err(CloudError::NotFound(format!(
                    "vnic_id {v} is not a VNIC of this instance ({})",
                    i.id
                )));
            };
            return match &mac {
                Some(m) if !ours.mac_addr.eq_ignore_ascii_case(m) => {
                    Err(CloudError::NotFound(format!(
                        "vnic_id {v} has MAC {}, but {} has {m} (set nic to its interface)",
                        ours.mac_addr, nic.name
                    )))
                }
                _ => Ok(v.clone()),
            };
        }
        let want =
            mac.ok_or_else(|| CloudError::NotFound(format!("{} has no MAC address", nic.name)))?;
        i.vnics
            .iter()
            .find(|x| x.mac_addr.eq_ignore_ascii_case(&want))
            .map(|x| x.vnic_id.clone())
            .ok_or_else(|| {
                CloudError::NotFound(format!(
                    "no VNIC of this instance has the MAC {want} of {}",
                    nic.name
                ))
            })
    }

    /// One signed Networking API call. A 401 gets one fresh token (a revoked or expired
    /// session), then counts as denied.
    fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        extra: &[(&str, String)],
        deadline: &Deadline,
    ) -> Result<Response, CloudError> {
        let url = format!(
            "{}20160918/{path}",
            self.base(&self.shared.api_endpoint, "iaas")?
        );
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut rejected: Option<String> = None;
        loop {
            if self.creds.is_none() {
                self.creds = Some(self.credentials(deadline, rejected.as_deref())?);
            }
            let Some(creds) = &self.creds else { continue };
            let date = httpdate::fmt_http_date(std::time::SystemTime::now());
            let headers =
                sign::sign_headers(&creds.key, &creds.key_id, method, &url, &date, &body, true)
                    .map_err(|e| transient(format!("signing: {e}")))?;
            let mut req = Request::new(method, &url).header("accept", "application/json");
            for (k, v) in headers {
                req = req.header(&k, v);
            }
            for (k, v) in extra {
                req = req.header(k, v.clone());
            }
            req.body = body.clone();
            // 409 IncorrectState passes with time (the SDKs retry it too).
            let incorrect_state =
                |r: &Response| r.status == 409 && error_text(r).starts_with("IncorrectState");
            let r = self
                .http
                .api(&req, deadline, &incorrect_state)
                .map_err(|e| super::http_error("Networking API", e))?;
            if r.ok() {
                return Ok(r);
            }
            let what = format!(
                "{} {}: HTTP {} {}",
                method.as_str(),
                crate::http::redact(path),
                r.status,
                error_text(&r)
            );
            if r.status == 401 {
                if let Some(e) = super::clock_refusal(&r, OCI_CLOCK_LIMIT_SECS) {
                    return Err(e);
                }
            }
            let e = match r.status {
                401 if rejected.is_none() => {
                    rejected = self.creds.take().map(|c| c.key_id);
                    continue;
                }
                401 | 403 => CloudError::Denied(denied(method, path, what)),
                // OCI's answer for a missing permission as for a missing object. Ours exist
                // (IMDS lists our VNIC; a private IP was just listed), so it is the policy.
                404 if error_text(&r).starts_with("NotAuthorizedOrNotFound") => {
                    CloudError::Denied(denied(method, path, what))
                }
                // No such operation: a wrong api_endpoint.
                404 => CloudError::Invalid(what),
                409 | 412 => CloudError::Conflict(what),
                // The http layer already retried these until the deadline.
                429 | 500..=599 => transient(what),
                // Any other refusal (400, 405, 414 URI too long, ...) repeats on every try.
                _ => CloudError::Invalid(what),
            };
            return Err(match error_code(&r) {
                Some(code) => CloudError::coded(code, e),
                None => e,
            });
        }
    }

    fn get_json(
        &mut self,
        path: &str,
        deadline: &Deadline,
    ) -> Result<(Value, Option<String>), CloudError> {
        let r = self.call(Method::Get, path, None, &[], deadline)?;
        let etag = r.header("etag").map(str::to_owned);
        let v = r
            .json()
            .map_err(|e| transient(format!("Networking API: {e:#}")))?;
        Ok((v, etag))
    }

    /// A signed GET parsed fail-closed into `T`, with the ETag.
    fn get<T: serde::de::DeserializeOwned>(
        &mut self,
        what: &str,
        path: &str,
        deadline: &Deadline,
    ) -> Result<(T, Option<String>), CloudError> {
        let r = self.call(Method::Get, path, None, &[], deadline)?;
        let etag = r.header("etag").map(str::to_owned);
        Ok((model::parse(what, &r)?, etag))
    }

    /// The private IP objects (IPv6: `Ipv6` objects, the same shape) with our address in
    /// our VNIC's subnet (paginated). Each must be our address: an answer for other
    /// addresses means the filter was not applied, and moving one of those would take
    /// someone else's IP.
    fn private_ips(
        &mut self,
        vnic: &str,
        deadline: &Deadline,
    ) -> Result<Vec<PrivateIp>, CloudError> {
        let coll = ipv6::collection(self.ip);
        let (v, _): (model::Vnic, _) = self.get("GetVnic", &format!("vnics/{vnic}"), deadline)?;
        match v.lifecycle_state {
            VnicState::Available => {}
            VnicState::Provisioning => {
                return Err(transient(format!("VNIC {vnic} is still PROVISIONING")))
            }
            s => {
                return Err(CloudError::NotFound(format!(
                    "VNIC {vnic} is {s:?} and cannot hold the VIP"
                )))
            }
        }
        let mut out: Vec<PrivateIp> = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut path = format!(
                "{coll}?ipAddress={}&subnetId={}",
                encode(&self.ip.to_string()),
                encode(&v.subnet_id)
            );
            if let Some(p) = &page {
                path.push_str(&format!("&page={}", encode(p)));
            }
            let r = self.call(Method::Get, &path, None, &[], deadline)?;
            let items: Vec<PrivateIp> = model::parse("ListPrivateIps", &r)?;
            if let Some(other) = items.iter().find(|p| p.ip_address != self.ip) {
                return Err(transient(format!(
                    "ListPrivateIps for {} answered {} too (the filter was not applied)",
                    self.ip, other.ip_address
                )));
            }
            out.extend(items);
            // Real OCI sends a next-page token even when everything fit, then an empty page.
            match r.header("opc-next-page") {
                Some(p) if !p.is_empty() => page = Some(p.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// What a start does to the VIP's private IP object, from the reads alone: the
    /// decision `claim` carries out and a dry run prints.
    fn claim_change(&mut self, vnic: &str, deadline: &Deadline) -> Result<Claim, CloudError> {
        let found = self.private_ips(vnic, deadline)?;
        match found.as_slice() {
            [] => Ok(Claim::Create),
            // Before "already ours": our own primary IP is no VIP either.
            [p] if p.is_primary => Err(CloudError::Invalid(format!(
                "{} is the primary private IP of VNIC {} (only a secondary private IP can move)",
                self.ip,
                p.vnic_id.as_deref().unwrap_or("?")
            ))),
            [p] if p.vnic_id.as_deref() == Some(vnic) => Ok(Claim::Here(p.id.clone())),
            [p] => Ok(Claim::Move {
                id: p.id.clone(),
                from: p.vnic_id.clone(),
            }),
            many => Err(CloudError::Invalid(format!(
                "{} appears {} times in the subnet",
                self.ip,
                many.len()
            ))),
        }
    }

    fn claim_once(&mut self, vnic: &str, deadline: &Deadline) -> Result<String, CloudError> {
        let coll = ipv6::collection(self.ip);
        let id = match self.claim_change(vnic, deadline)? {
            Claim::Create => {
                log::info!("creating {} on VNIC {vnic}", self.ip);
                let body = json!({ "vnicId": vnic, "ipAddress": self.ip.to_string(), "displayName": "cloudvip" });
                let r = self.call(
                    Method::Post,
                    coll,
                    Some(&body),
                    &[("opc-retry-token", retry_token())],
                    deadline,
                )?;
                let made: PrivateIp = model::parse("CreatePrivateIp", &r)?;
                made.id
            }
            Claim::Here(id) => {
                log::info!("{} is already assigned to VNIC {vnic}", self.ip);
                return Ok(id);
            }
            Claim::Move { id, from } => {
                let (_, etag): (PrivateIp, _) =
                    self.get("GetPrivateIp", &format!("{coll}/{id}"), deadline)?;
                log::info!(
                    "moving {} from VNIC {} to {vnic}",
                    self.ip,
                    from.as_deref().unwrap_or("none")
                );
                let extra: Vec<(&str, String)> =
                    etag.into_iter().map(|e| ("if-match", e)).collect();
                self.call(
                    Method::Put,
                    &format!("{coll}/{id}"),
                    Some(&json!({ "vnicId": vnic })),
                    &extra,
                    deadline,
                )?;
                id
            }
        };
        // Neither a create nor a move is trusted by its answer (a PUT's may omit vnicId,
        // oci-api.md §2.6): the object must now be our address on our VNIC.
        let (now, _): (PrivateIp, _) =
            self.get("GetPrivateIp", &format!("{coll}/{id}"), deadline)?;
        if now.ip_address != self.ip || now.vnic_id.as_deref() != Some(vnic) {
            return Err(CloudError::Conflict(format!(
                "{} changed hands meanwhile: private IP {id} is {} on {}",
                self.ip,
                now.ip_address,
                now.vnic_id.as_deref().unwrap_or("no VNIC")
            )));
        }
        Ok(id)
    }

    fn public_ip(
        &mut self,
        want: &str,
        deadline: &Deadline,
    ) -> Result<(PublicIp, Option<String>), CloudError> {
        if want.starts_with("ocid1.") {
            return self.get("GetPublicIp", &format!("publicIps/{want}"), deadline);
        }
        let r = self.call(
            Method::Post,
            "publicIps/actions/getByIpAddress",
            Some(&json!({ "ipAddress": want })),
            &[],
            deadline,
        )?;
        let etag = r.header("etag").map(str::to_owned);
        Ok((model::parse("GetPublicIpByIpAddress", &r)?, etag))
    }

    /// Assign the reserved public IP to our private IP and wait for ASSIGNED. Assignment is
    /// asynchronous and may fail silently into AVAILABLE (oci-api.md §2.6): assign again.
    /// Every poll and call is bounded by the deadline.
    fn attach_public_ip(
        &mut self,
        want: &str,
        private_ip: &str,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let (mut p, mut etag) = self.public_ip(want, deadline)?;
        let id = p.id.clone();
        let mut backoff = PUBLIC_IP_POLL;
        loop {
            match public_step(&p, want, Some(private_ip))? {
                PublicStep::Done => return Ok(()),
                PublicStep::Wait => {}
                PublicStep::Assign => {
                    log::info!("assigning public IP {} to {}", p.ip_address, self.ip);
                    let extra: Vec<(&str, String)> =
                        etag.take().into_iter().map(|e| ("if-match", e)).collect();
                    self.call(
                        Method::Put,
                        &format!("publicIps/{id}"),
                        Some(&json!({ "privateIpId": private_ip })),
                        &extra,
                        deadline,
                    )?;
                }
            }
            if backoff.wait(deadline).is_err() {
                return Err(transient(format!(
                    "public IP {want} not ASSIGNED to {} before the deadline (state {:?})",
                    self.ip, p.lifecycle_state
                )));
            }
            (p, etag) = self.get("GetPublicIp", &format!("publicIps/{id}"), deadline)?;
        }
    }
}

/// The next step for public IP `p` (`want` as configured) to be assigned to our private
/// IP `private_ip` (`None`: one start is about to create). A public IP that is not
/// reserved, or is being deleted, cannot be.
fn public_step(
    p: &PublicIp,
    want: &str,
    private_ip: Option<&str>,
) -> Result<PublicStep, CloudError> {
    if p.lifetime != Lifetime::Reserved {
        return Err(CloudError::Invalid(format!(
            "public IP {want} is not a reserved public IP"
        )));
    }
    let ours = private_ip.is_some() && p.assigned_to() == private_ip;
    Ok(match p.lifecycle_state {
        PublicIpState::Assigned if ours => PublicStep::Done,
        PublicIpState::Assigning | PublicIpState::Unassigning | PublicIpState::Provisioning => {
            PublicStep::Wait
        }
        PublicIpState::Terminating | PublicIpState::Terminated => {
            return Err(CloudError::Invalid(format!(
                "public IP {want} is {:?} (being deleted)",
                p.lifecycle_state
            )))
        }
        PublicIpState::Assigned | PublicIpState::Available | PublicIpState::Unassigned => {
            PublicStep::Assign
        }
    })
}

impl Cloud for Oci {
    fn name(&self) -> &'static str {
        "oci"
    }

    /// The instance metadata lists no secondary IPs, so the cloud can only be asked through
    /// the signed API: not at depth 0.
    fn locate(&mut self, nic: &Nic, depth: u32, deadline: &Deadline) -> Result<Seen, CloudError> {
        if depth < 10 {
            return Ok(Seen::NotAsked);
        }
        self.load(deadline)?;
        let vnic = self.our_vnic(nic)?;
        let here = self
            .private_ips(&vnic, deadline)?
            .iter()
            .any(|p| p.vnic_id.as_deref() == Some(vnic.as_str()));
        Ok(if here {
            Seen::Here
        } else {
            Seen::Elsewhere(None)
        })
    }

    /// From IMDS alone (no API call): the VNIC is this instance's, and the VIP is none
    /// of its VNICs' primary private IP.
    fn validate(&mut self, nic: &Nic, deadline: &Deadline) -> Result<(), CloudError> {
        self.load(deadline)?;
        self.our_vnic(nic)?;
        let primary = self
            .instance
            .iter()
            .flat_map(|i| &i.vnics)
            .find(|v| v.private_ip == self.ip);
        if let Some(v) = primary {
            return Err(CloudError::Invalid(format!(
                "{} is the primary private IP of this instance's VNIC {} (a VIP must be a \
                 secondary private IP)",
                self.ip, v.vnic_id
            )));
        }
        Ok(())
    }

    fn claim(&mut self, nic: &Nic, deadline: &Deadline) -> Result<Claimed, CloudError> {
        self.load(deadline)?;
        let vnic = self.our_vnic(nic)?;
        let id = settle("claim", deadline, || self.claim_once(&vnic, deadline))?;
        Ok(Claimed::new(Some(id)))
    }

    /// The reserved public IP, onto the private IP object the claim left (its OCID).
    fn complete(
        &mut self,
        _nic: &Nic,
        claimed: &Claimed,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let (Some(want), Some(pid)) = (self.shared.public_ip.clone(), claimed.handle()) else {
            return Ok(());
        };
        self.attach_public_ip(&want, pid, deadline)
    }

    /// Nothing to do: the private IP stays on our VNIC until the next start elsewhere moves
    /// it with PUT. Deleting it instead would detach a reserved public IP and leave it
    /// dangling; and a stop must not depend on the API answering.
    fn release(&mut self, _deadline: &Deadline) -> Result<(), CloudError> {
        log::info!(
            "oci: {} stays assigned to this VNIC until the next start elsewhere moves it",
            self.ip
        );
        Ok(())
    }

    /// The same decisions as claim and complete, from the same reads (the VIP's private
    /// IP in our subnet, the public IP's state), with nothing written.
    fn plan(&mut self, op: Op, nic: &Nic, deadline: &Deadline) -> Result<Vec<Planned>, CloudError> {
        self.load(deadline)?;
        let coll = ipv6::collection(self.ip);
        if op == Op::Release {
            return Ok(vec![Planned::note(format!(
                "nothing in the cloud: {} stays on this VNIC until the next start elsewhere \
                 moves it",
                self.ip
            ))]);
        }
        let vnic = self.our_vnic(nic)?;
        let claim = self.claim_change(&vnic, deadline)?;
        if op == Op::Claim {
            return Ok(match claim {
                Claim::Here(_) => Vec::new(),
                Claim::Create => vec![Planned::call(
                    format!("POST {coll}"),
                    format!("create private IP {} on VNIC {vnic} (this node's)", self.ip),
                )],
                Claim::Move { id, from } => vec![Planned::call(
                    format!("PUT {coll}/{id}"),
                    format!(
                        "move private IP {} from VNIC {} to VNIC {vnic} (this node's); a public \
                         IP assigned to it follows",
                        self.ip,
                        from.as_deref().unwrap_or("(none)")
                    ),
                )],
            });
        }
        let Some(want) = self.shared.public_ip.clone() else {
            return Ok(Vec::new());
        };
        // The private IP object keeps its OCID when it moves; a created one gets a new one.
        let pid = match claim {
            Claim::Here(id) | Claim::Move { id, .. } => Some(id),
            Claim::Create => None,
        };
        let (p, _) = self.public_ip(&want, deadline)?;
        Ok(match public_step(&p, &want, pid.as_deref())? {
            PublicStep::Done => Vec::new(),
            PublicStep::Wait => vec![Planned::note(format!(
                "public IP {} is {:?}: start waits for the outcome and assigns it again if it \
                 did not end ASSIGNED to {}",
                p.ip_address, p.lifecycle_state, self.ip
            ))],
            PublicStep::Assign => vec![Planned::call(
                format!("PUT publicIps/{}", p.id),
                format!(
                    "assign public IP {} to private IP {}, wait for ASSIGNED",
                    p.ip_address,
                    pid.as_deref().unwrap_or("(the one created above)")
                ),
            )],
        })
    }
}

/// A refusal that ends with the operation (and the policy verb pcs-examples/oci-policy.sh
/// grants for it): OCI's own text names neither, and the exit reason Pacemaker keeps
/// (128 bytes) is the first clause and the last (`short_reason`).
fn denied(method: Method, path: &str, what: String) -> String {
    let collection = path.split(['/', '?']).next().unwrap_or_default();
    let single = path[collection.len()..].starts_with('/');
    let (op, verb) = match (method, collection, single) {
        (Method::Put, "privateIps", _) => ("UpdatePrivateIp", Some("use virtual-network-family")),
        (Method::Post, "privateIps", _) => ("CreatePrivateIp", Some("manage private-ips")),
        (Method::Delete, "privateIps", _) => ("DeletePrivateIp", Some("manage private-ips")),
        (Method::Put, "ipv6", _) => ("UpdateIpv6", Some("use virtual-network-family")),
        (Method::Post, "ipv6", _) => ("CreateIpv6", Some("manage private-ips")),
        (Method::Delete, "ipv6", _) => ("DeleteIpv6", Some("manage private-ips")),
        (Method::Put, "publicIps", _) => ("UpdatePublicIp", None),
        (Method::Get, "privateIps", false) => ("ListPrivateIps", None),
        (Method::Get, "ipv6", false) => ("ListIpv6s", None),
        (Method::Get, "vnics", _) => ("GetVnic", None),
        (Method::Get, "subnets", _) => ("GetSubnet", None),
        _ => return what,
    };
    match verb {
        Some(v) => format!("{what}: {op} refused (IAM `{v}`)"),
        None => format!("{what}: {op} refused by IAM"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_the_operation_in_pacemakers_128_bytes() {
        let what = "PUT privateIps/ocid1.privateip.oc1.eu-frankfurt-1.abcdefghijklmnopqrstuvwxyz0123456789: \
                    HTTP 404 NotAuthorizedOrNotFound: Either Private IP with ID ocid1.privateip.oc1.\
                    eu-frankfurt-1.abcdefghijklmnopqrstuvwxyz0123456789 does not exist or you are not \
                    authorized to access it."
            .to_owned();
        let e = CloudError::Denied(denied(Method::Put, "privateIps/ocid1.x", what));
        let reason = crate::ocf::log::short_reason(&e.to_string());
        assert!(reason.len() <= 128, "{reason}");
        assert!(
            reason.starts_with("permission denied by the cloud: ")
                && reason.ends_with(": UpdatePrivateIp refused (IAM `use virtual-network-family`)"),
            "{reason}"
        );
        let list = denied(Method::Get, "privateIps?vnicId=x", String::new());
        assert!(list.ends_with(": ListPrivateIps refused by IAM"), "{list}");
        assert_eq!(denied(Method::Patch, "privateIps/x", "w".into()), "w");
    }
}
