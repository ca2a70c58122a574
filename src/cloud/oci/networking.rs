//! OCI's Networking API as the backend uses it: the signed call (`cloud::call` with OCI's
//! error bodies and statuses), the private IP objects of the VIP's subnet, their move or
//! creation, and the reserved public IP's assignment.

use serde_json::{json, Value};

use super::auth::Credentials;
use super::model::{self, Lifetime, PrivateIp, PublicIp, PublicIpState, VnicState};
use super::{ipv6, sign, subnet_cache, transient, Oci, OCI_CLOCK_LIMIT_SECS, PUBLIC_IP_POLL};
use crate::cloud::call;
use crate::cloud::CloudError;
use crate::deadline::Deadline;
use crate::http::{encode, Method, Request, Response};


/// Whether a refusal may come from asking in a wrong (cached) subnet: a subnet or object we
/// cannot see (404 NotAuthorizedOrNotFound), a move across subnets (400). Not rejected
/// credentials, a skewed clock or an outage: asking GetVnic would only repeat those.
pub(super) fn wrong_subnet_may_cause(e: &CloudError) -> bool {
    matches!(e.kind(), CloudError::Invalid(_) | CloudError::NotFound(_))
        || e.code() == Some("NotAuthorizedOrNotFound")
}

/// What a start does to the VIP's private IP object.
pub(super) enum Claim {
    /// On our VNIC already (its OCID).
    Here(String),
    /// No such object in the subnet: create it on our VNIC.
    Create,
    /// On another VNIC (or none): move it here, keeping its OCID.
    Move { id: String, from: Option<String> },
}

/// What assigning the reserved public IP takes next, from its state.
pub(super) enum PublicStep {
    /// Assigned to our private IP.
    Done,
    /// An assignment in flight: its outcome decides.
    Wait,
    /// Assign it (again: assignment may fail silently into AVAILABLE).
    Assign,
}

/// OCI's way of refusing: `{"code", "message"}`; a missing permission answers 404
/// NotAuthorizedOrNotFound, and the refusals name the operation and its policy verb.
struct Networking;

impl call::Dialect for Networking {
    fn service(&self) -> &'static str {
        "Networking API"
    }
    fn refusal(&self, r: &Response) -> (Option<String>, String) {
        (error_code(r), error_text(r))
    }
    fn classify(&self, method: Method, path: &str, r: &Response, what: &str) -> Option<CloudError> {
        let denial = || CloudError::Denied(denied(method, path, what.to_owned()));
        match r.status {
            401 | 403 => Some(denial()),
            // OCI's answer for a missing permission as for a missing object. Ours exist
            // (IMDS lists our VNIC; a private IP was just listed), so it is the policy.
            404 if error_text(r).starts_with("NotAuthorizedOrNotFound") => Some(denial()),
            // No such operation: a wrong api_endpoint.
            404 => Some(CloudError::Invalid(what.to_owned())),
            _ => None,
        }
    }
    fn refused_for_good(&self, r: &Response) -> Option<CloudError> {
        crate::cloud::clock_refusal(r, OCI_CLOCK_LIMIT_SECS)
    }
}

/// The request signature of this action's credentials (an API key or an instance
/// principal's session token), fetched again once when the service refuses them.
struct Signer<'s> {
    oci: &'s Oci,
    creds: &'s mut Option<Credentials>,
    /// The key id the service refused: a cached token equal to it is not used again.
    rejected: Option<String>,
    renewed: bool,
}

impl call::Auth for Signer<'_> {
    fn authorize(&mut self, req: Request, deadline: &Deadline) -> Result<Request, CloudError> {
        if self.creds.is_none() {
            *self.creds = Some(self.oci.credentials(deadline, self.rejected.as_deref())?);
        }
        let Some(c) = self.creds.as_ref() else {
            return Err(transient("no credentials".into()));
        };
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let headers = sign::sign_headers(
            &c.key,
            &c.key_id,
            req.method,
            &req.url,
            &date,
            &req.body,
            true,
        )
        .map_err(|e| transient(format!("signing: {e}")))?;
        Ok(headers.into_iter().fold(req, |r, (k, v)| r.header(&k, v)))
    }
    fn renew(&mut self, _deadline: &Deadline) -> Result<bool, CloudError> {
        if self.renewed {
            return Ok(false);
        }
        self.renewed = true;
        self.rejected = self.creds.take().map(|c| c.key_id);
        Ok(true)
    }
}

/// The `code` of OCI's `{"code", "message"}` error body.
fn error_code(r: &Response) -> Option<String> {
    let v: Value = serde_json::from_slice(&r.body).ok()?;
    v["code"].as_str().map(str::to_owned)
}

/// OCI's `{"code", "message"}` error body, as one line.
pub(super) fn error_text(r: &Response) -> String {
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    match (v["code"].as_str(), v["message"].as_str()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        _ => r.text().chars().take(200).collect(),
    }
}

/// An `opc-retry-token`: a retried create is applied once.
fn retry_token() -> String {
    call::hex(&call::random::<15>())
}

impl Oci {
    /// One signed Networking API call. A 401 gets one fresh token (a revoked or expired
    /// session), then counts as denied.
    pub(super) fn call(
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
        let mut req = Request::new(method, &url).header("accept", "application/json");
        for (k, v) in extra {
            req = req.header(k, v.clone());
        }
        req.body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        // 409 IncorrectState passes with time (the SDKs retry it too).
        let incorrect_state =
            |r: &Response| r.status == 409 && error_text(r).starts_with("IncorrectState");
        let mut creds = self.creds.take();
        let mut signer = Signer {
            oci: self,
            creds: &mut creds,
            rejected: None,
            renewed: false,
        };
        let r = call::call(
            &self.http,
            &mut signer,
            &Networking,
            req,
            path,
            &incorrect_state,
            deadline,
        );
        self.creds = creds;
        r
    }

    pub(super) fn get_json(
        &mut self,
        path: &str,
        deadline: &Deadline,
    ) -> Result<(Value, Option<String>), CloudError> {
        let r = self.call(Method::Get, path, None, &[], deadline)?;
        let etag = r.header("etag").map(str::to_owned);
        let v = call::json(&r, "Networking API")?;
        Ok((v, etag))
    }

    /// A signed GET parsed fail-closed into `T`, with the ETag.
    pub(super) fn get<T: serde::de::DeserializeOwned>(
        &mut self,
        what: &str,
        path: &str,
        deadline: &Deadline,
    ) -> Result<(T, Option<String>), CloudError> {
        let r = self.call(Method::Get, path, None, &[], deadline)?;
        let etag = r.header("etag").map(str::to_owned);
        Ok((model::parse(what, &r)?, etag))
    }

    /// GetVnic: our VNIC's subnet (cached for the starts that follow), once it can hold
    /// the VIP.
    pub(super) fn vnic_subnet(&mut self, vnic: &str, deadline: &Deadline) -> Result<String, CloudError> {
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
        subnet_cache::write(self.state.as_deref(), vnic, &v.subnet_id);
        Ok(v.subnet_id)
    }

    /// The private IP objects (IPv6: `Ipv6` objects, the same shape) with our address in
    /// our VNIC's subnet. The subnet comes from the cache when it has it, and its answer
    /// stands when it proves itself: the VIP on our VNIC (which is in one subnet only), or,
    /// with `write_checks` (a move follows, and the service refuses a move across
    /// subnets), on another VNIC; then `subnet_unconfirmed` says so. Anything else (none
    /// found, a refusal) is asked again with GetVnic's subnet: a stale or wrong entry costs
    /// calls, never a wrong answer.
    pub(super) fn private_ips(
        &mut self,
        vnic: &str,
        write_checks: bool,
        deadline: &Deadline,
    ) -> Result<Vec<PrivateIp>, CloudError> {
        self.subnet_unconfirmed = false;
        let cached = if self.skip_subnet_cache {
            None
        } else {
            subnet_cache::read(self.state.as_deref(), vnic)
        };
        let Some(subnet) = cached else {
            let subnet = self.vnic_subnet(vnic, deadline)?;
            return self.list_private_ips(&subnet, deadline);
        };
        let found = match self.list_private_ips(&subnet, deadline) {
            Ok(f) if f.iter().any(|p| p.vnic_id.as_deref() == Some(vnic)) => return Ok(f),
            Ok(f) if write_checks && !f.is_empty() => {
                self.subnet_unconfirmed = true;
                return Ok(f);
            }
            Ok(f) => Some(f),
            Err(e) if !wrong_subnet_may_cause(&e) => return Err(e),
            Err(e) => {
                log::info!("ListPrivateIps in the cached subnet {subnet} of VNIC {vnic}: {e}");
                None
            }
        };
        let fresh = self.vnic_subnet(vnic, deadline)?;
        match found {
            Some(f) if fresh == subnet => Ok(f),
            _ => self.list_private_ips(&fresh, deadline),
        }
    }

    /// ListPrivateIps by our address in `subnet` (paginated). Each must be our address: an
    /// answer for other addresses means the filter was not applied, and moving one of
    /// those would take someone else's IP.
    fn list_private_ips(
        &mut self,
        subnet: &str,
        deadline: &Deadline,
    ) -> Result<Vec<PrivateIp>, CloudError> {
        let coll = ipv6::collection(self.ip);
        let mut out: Vec<PrivateIp> = Vec::new();
        // No bound of our own on the pages: the deadline bounds the calls.
        call::pages("ListPrivateIps", usize::MAX, |page| {
            let mut path = format!(
                "{coll}?ipAddress={}&subnetId={}",
                encode(&self.ip.to_string()),
                encode(subnet)
            );
            if let Some(p) = page {
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
            // `ipAddress`+`subnetId` names one object ("get a privateIP object based on its
            // private IP address", ListPrivateIps; the oci CLI reads one page and expects at
            // most one entry, oci-api.md §2.7). Real OCI sends a next-page token even when
            // everything fit, then an empty page (§2.4): once found, that page is not asked.
            if !out.is_empty() {
                return Ok(None);
            }
            Ok(r.header("opc-next-page").map(str::to_owned))
        })?;
        Ok(out)
    }

    /// What a start does to the VIP's private IP object, from the reads alone: the
    /// decision `claim` carries out and a dry run prints.
    /// `write_checks`: the write that follows checks a cached subnet (`private_ips`).
    pub(super) fn claim_change(
        &mut self,
        vnic: &str,
        write_checks: bool,
        deadline: &Deadline,
    ) -> Result<Claim, CloudError> {
        let found = self.private_ips(vnic, write_checks, deadline)?;
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

    pub(super) fn claim_once(&mut self, vnic: &str, deadline: &Deadline) -> Result<String, CloudError> {
        let coll = ipv6::collection(self.ip);
        let id = match self.claim_change(vnic, true, deadline)? {
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
                if self.placed(&made, &made.id, vnic) {
                    return Ok(made.id);
                }
                made.id
            }
            Claim::Here(id) => {
                log::info!("{} is already assigned to VNIC {vnic}", self.ip);
                return Ok(id);
            }
            Claim::Move { id, from } => {
                // No if-match: an ETag would take a GetPrivateIp of its own (lists carry
                // none), and it would guard only the moment between that read and the PUT,
                // not the list the decision came from. The PUT moves the object here
                // whoever holds it, as the oci CLI's assign-private-ip does (§2.7), and
                // its outcome is checked below.
                log::info!(
                    "moving {} from VNIC {} to {vnic}",
                    self.ip,
                    from.as_deref().unwrap_or("none")
                );
                let r = self.call(
                    Method::Put,
                    &format!("{coll}/{id}"),
                    Some(&json!({ "vnicId": vnic })),
                    &[],
                    deadline,
                )?;
                // An answer that does not parse is no answer: the read below decides.
                let answer: Option<PrivateIp> = model::parse("UpdatePrivateIp", &r).ok();
                if answer.is_some_and(|p| self.placed(&p, &id, vnic)) {
                    return Ok(id);
                }
                id
            }
        };
        // The write's answer names another object, address or VNIC, or does not parse: a
        // read decides.
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

    /// Whether a create's or a move's 200 answer `p` says object `id`, our address, is on
    /// our VNIC: the service's own word on the write (both answer the PrivateIp, the SDKs'
    /// documented response type), so no read repeats it. An answer without vnicId (the
    /// recorded 2018 move answer, oci-api.md §2.6) says so too: the write that set it to
    /// ours succeeded, and it is synchronous (the GET right after it showed our VNIC, §0.3).
    /// A read after it could only catch a writer after ours, which no later read rules
    /// out either: the depth-10 monitor watches for that.
    fn placed(&self, p: &PrivateIp, id: &str, vnic: &str) -> bool {
        p.id == id && p.ip_address == self.ip && p.vnic_id.as_deref().is_none_or(|v| v == vnic)
    }

    pub(super) fn public_ip(
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
    pub(super) fn attach_public_ip(
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
pub(super) fn public_step(
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
    pub(super) fn a_refusal_keeps_the_operation_in_pacemakers_128_bytes() {
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
