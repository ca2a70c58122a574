//! `cloudvip status` and `cloudvip diagnose` on OCI: which VNIC holds the private IP and
//! what the reserved public IP is assigned to, and the checks IMDS → credentials →
//! permissions → VNIC → subnet with the fix for each failure. Read-only: the right to move
//! a private IP is probed with a PUT carrying a wrong `if-match`, which OCI refuses (412)
//! only after its policy check (404 NotAuthorizedOrNotFound), and the right to create one
//! with a POST for an address the subnet already has.

use std::net::IpAddr;

use serde_json::{json, Value};

use super::Oci;
use crate::cloud::inspect::{past_iam, Check, Inspect, Verdict, DIAGNOSE_METADATA, DIAGNOSE_STEP};
use crate::cloud::{in_subnet, CloudError, Holding, Nic};
use crate::deadline::Deadline;
use crate::http::{encode, Method};

/// What the CreatePrivateIp probe learnt.
enum CreateProbe {
    /// The service looked at the address: the policy let the call through.
    Allowed,
    /// OCI's answer that means "not authorized, or it exists".
    Undecided(String),
}

const PROBE_ETAG: &str = "cloudvip-diagnose-probe";

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

impl Inspect for Oci {
    fn holders(
        &mut self,
        nic: Option<&Nic>,
        deadline: &Deadline,
    ) -> Result<Vec<Holding>, CloudError> {
        self.load(deadline)?;
        let vnic = self
            .diag_vnic(nic)
            .ok_or_else(|| CloudError::NotFound("no VNIC of this instance matches".into()))?;
        let mut rows = Vec::new();
        let found = self.private_ips(&vnic, false, deadline)?;
        let what = format!("private {}", self.ip);
        for p in &found {
            rows.push(match &p.vnic_id {
                Some(h) => Holding::held(what.clone(), format!("VNIC {h}"), *h == vnic),
                None => Holding::nobody(what.clone(), "reserved, on no VNIC"),
            });
        }
        if found.is_empty() {
            rows.push(Holding::nobody(
                what,
                "no private IP object: start creates it",
            ));
        }
        if let Some(want) = self.shared.public_ip.clone() {
            let (p, _) = self.public_ip(&want, deadline)?;
            let target = p.assigned_to().unwrap_or_default().to_owned();
            let ours = found
                .iter()
                .any(|f| f.id == target && f.vnic_id.as_deref() == Some(vnic.as_str()));
            let what = format!("public {}", p.ip_address);
            rows.push(if target.is_empty() {
                Holding::nobody(what, &format!("{:?}", p.lifecycle_state))
            } else {
                Holding::held(what, format!("private IP {target}"), ours)
            });
        }
        Ok(rows)
    }

    fn probe(&mut self, check: Check, nic: Option<&Nic>, deadline: &Deadline) -> Verdict {
        match (check, nic) {
            (Check::Metadata, _) => self.probe_metadata(deadline),
            (Check::Credentials, _) => self.probe_credentials(deadline),
            (Check::Permissions, _) => self.probe_permissions(nic, deadline),
            (Check::Nic, Some(n)) => self.probe_nic(n),
            (Check::Subnet, _) => self.probe_subnet(),
            (Check::Nic, None) => Verdict::fail("no local interface", "set nic="),
        }
    }
}

impl Oci {
    /// May this principal create a private IP on `vnic`? Asked with the VNIC's own primary
    /// address, which the subnet already has, so the service refuses to create it whatever
    /// the policy says: 404 NotAuthorizedOrNotFound (Denied) when the policy does not allow
    /// it, a conflict or a 400 about the address when it does (the emulator's order:
    /// policy first, then the address). OCI's API errors page lists one create-only answer
    /// that means either: "409 NotAuthorizedOrResourceAlreadyExists: You do not have
    /// authorization to perform this request, or the resource you are attempting to create
    /// already exists" (docs.oracle.com/en-us/iaas/Content/API/References/apierrors.htm);
    /// that answer is reported as undecided, never as allowed. Should a service ever
    /// create the address anyway, it is deleted at once.
    fn probe_create(
        &mut self,
        vnic: &str,
        taken: &str,
        deadline: &Deadline,
    ) -> Result<CreateProbe, CloudError> {
        let body =
            json!({ "vnicId": vnic, "ipAddress": taken, "displayName": "cloudvip-diagnose-probe" });
        match self.call(Method::Post, "privateIps", Some(&body), &[], deadline) {
            Ok(r) => {
                let id = serde_json::from_slice::<Value>(&r.body)
                    .ok()
                    .map(|v| str_of(&v["id"]))
                    .unwrap_or_default();
                log::warn!("diagnose: the create probe made private IP {id:?}; deleting it");
                if !id.is_empty() {
                    self.call(
                        Method::Delete,
                        &format!("privateIps/{id}"),
                        None,
                        &[],
                        deadline,
                    )?;
                }
                Ok(CreateProbe::Allowed)
            }
            Err(e) if e.code() == Some("NotAuthorizedOrResourceAlreadyExists") => {
                // OCI's own words, without the kind's prefix.
                Ok(CreateProbe::Undecided(match e.into_kind() {
                    CloudError::Conflict(m) => m,
                    other => other.to_string(),
                }))
            }
            Err(e) if matches!(e.kind(), CloudError::Conflict(_) | CloudError::Invalid(_)) => {
                Ok(CreateProbe::Allowed)
            }
            Err(e) => Err(e),
        }
    }

    /// Our VNIC: the one for `nic`'s MAC (or vnic_id), else the first one IMDS lists.
    fn diag_vnic(&self, nic: Option<&Nic>) -> Option<String> {
        match nic {
            Some(n) => self.our_vnic(n).ok(),
            None => self.opts.vnic_id.clone().or_else(|| {
                self.instance
                    .as_ref()?
                    .vnics
                    .first()
                    .map(|v| v.vnic_id.clone())
            }),
        }
    }


    /// IMDS, which answers in milliseconds: a short wait decides it.
    fn probe_metadata(&mut self, deadline: &Deadline) -> Verdict {
        if let Err(e) = self.load(&deadline.within(DIAGNOSE_METADATA)) {
            return Verdict::fail(
                format!("the instance metadata service does not answer: {e}"),
                "run this on an OCI instance with IMDS v2 enabled; make sure nothing \
                 (a firewall rule, an HTTP_PROXY) intercepts 169.254.169.254; set \
                 metadata_url only for an emulator",
            );
        }
        let (inst_id, region, vnics) = match &self.instance {
            Some(i) => (i.id.as_str(), i.region.as_str(), i.vnics.len()),
            None => Default::default(),
        };
        Verdict::pass(format!(
            "{} answers: instance {inst_id} in {region}, {vnics} VNIC(s)",
            self.md_base,
        ))
    }

    fn who(&self) -> String {
        match &self.shared.credentials {
            Some(p) => format!("the API key of {p}"),
            None => "the instance principal".to_owned(),
        }
    }

    fn probe_credentials(&mut self, deadline: &Deadline) -> Verdict {
        let who = self.who();
        // An instance principal's first token costs an RSA key and a federation call.
        match self.credentials(&deadline.within(DIAGNOSE_STEP * 2), None) {
            Ok(c) => {
                self.creds = Some(c);
                Verdict::pass(format!("{who}: signing key ready"))
            }
            Err(e) => {
                let fix = match &self.shared.credentials {
                    Some(_) => "credentials= must name an OCI config file (the ~/.oci/config \
                                format: user, fingerprint, tenancy, region, key_file), mode 0600, \
                                with the right oci_profile and pass_phrase for an encrypted key"
                        .to_owned(),
                    None => "instance principals need the IMDS identity certificate and the \
                             auth endpoint (auth.<region>.oraclecloud.com) reachable; or use an \
                             API key with credentials="
                        .to_owned(),
                };
                Verdict::fail(format!("{who}: {e}"), fix)
            }
        }
    }

    /// The reads start makes, the move and the creation probed, each with its own budget.
    fn probe_permissions(&mut self, nic: Option<&Nic>, deadline: &Deadline) -> Verdict {
        let who = self.who();
        let first = self
            .instance
            .as_ref()
            .and_then(|i| i.vnics.first())
            .map(|v| v.vnic_id.clone());
        let vnic = self.diag_vnic(nic).or(first);
        let probe = || deadline.within(DIAGNOSE_STEP);
        let mut missing: Vec<&str> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        let mut subnet: Option<Value> = None;
        // CreatePrivateIp refused while the VIP's private IP exists: start does not need it.
        let mut create_note: Option<String> = None;
        // CreatePrivateIp shown as allowed: probed, and the answer says so.
        let mut create_checked = false;
        if let Some(v) = &vnic {
            let mut note = |what: &'static str, r: Result<(), CloudError>| match r {
                Ok(()) => {}
                // OCI hides what a principal may not see behind 404 NotAuthorizedOrNotFound.
                Err(e) => match e.kind() {
                    CloudError::Denied(_) => missing.push(what),
                    CloudError::NotFound(m) if m.contains("NotAuthorized") => missing.push(what),
                    _ => errors.push(format!("{what}: {e}")),
                },
            };
            let got = self.get_json(&format!("vnics/{v}"), &probe());
            let subnet_id = got
                .as_ref()
                .map(|(j, _)| str_of(&j["subnetId"]))
                .unwrap_or_default();
            note("read vnics (GetVnic)", got.map(|_| ()));
            let mut exists = None;
            if !subnet_id.is_empty() {
                let s = self.get_json(&format!("subnets/{subnet_id}"), &probe());
                if let Ok((j, _)) = &s {
                    subnet = Some(j.clone());
                }
                note("read subnets (GetSubnet)", s.map(|_| ()));
                // What start looks for first: the VIP's private IP object in the subnet.
                let path = format!(
                    "{}?ipAddress={}&subnetId={}",
                    super::ipv6::collection(self.ip),
                    encode(&self.ip.to_string()),
                    encode(&subnet_id)
                );
                let found = self.get_json(&path, &probe());
                exists = found
                    .as_ref()
                    .ok()
                    .and_then(|(j, _)| j.as_array().map(|a| !a.is_empty()));
                note("read private-ips (ListPrivateIps)", found.map(|_| ()));
            }
            let listed = self.get_json(&format!("privateIps?vnicId={}", encode(v)), &probe());
            let primary = listed.as_ref().ok().and_then(|(j, _)| {
                j.as_array()?
                    .iter()
                    .find(|p| p["isPrimary"] == true)
                    .map(|p| (str_of(&p["id"]), str_of(&p["ipAddress"])))
            });
            note("read private-ips (ListPrivateIps)", listed.map(|_| ()));
            if let Some((pid, primary_ip)) = primary {
                // 412 (wrong etag) means the policy let the call through; nothing changed.
                let r = self.call(
                    Method::Put,
                    &format!("privateIps/{pid}"),
                    Some(&json!({})),
                    &[("if-match", PROBE_ETAG.to_owned())],
                    &probe(),
                );
                note("use private-ips (UpdatePrivateIp, to move the VIP)", past_iam(r));
                // IPv6 addresses are created through another collection: not probed.
                if self.ip.is_ipv4() {
                    match self.probe_create(v, &primary_ip, &probe()) {
                        Ok(CreateProbe::Allowed) => create_checked = true,
                        Ok(CreateProbe::Undecided(m)) => {
                            create_note = Some(format!(
                                "; CreatePrivateIp undecided ({m}): OCI gives that answer both \
                                 for a missing policy and for an address that exists, so check \
                                 that the policy grants manage private-ips"
                            ));
                        }
                        Err(e)
                            if matches!(e.kind(), CloudError::Denied(_)) && exists == Some(true) =>
                        {
                            create_note = Some(
                                "; CreatePrivateIp is not allowed, which start needs only if the \
                                 VIP's private IP is deleted (manage private-ips)"
                                    .to_owned(),
                            );
                        }
                        Err(e) => note(
                            "manage private-ips (CreatePrivateIp: the first start creates the \
                             VIP's private IP)",
                            Err(e),
                        ),
                    }
                }
            }
        }
        let subject = match &self.shared.credentials {
            Some(_) => "group <the API key's user group>",
            None => "dynamic-group <a dynamic group matching these instances>",
        };
        let verdict = if !missing.is_empty() {
            let verb = if missing.iter().any(|m| m.starts_with("manage")) {
                "manage private-ips and use virtual-network-family"
            } else {
                "use virtual-network-family"
            };
            missing.dedup();
            Verdict::fail(
                format!("{who} may not: {}", missing.join(", ")),
                format!(
                    "add the IAM policy statement: Allow {subject} to {verb} in compartment \
                     <the VCN's compartment>; see pcs-examples/oci-policy.sh"
                ),
            )
        } else if !errors.is_empty() || vnic.is_none() {
            Verdict::fail(
                format!("could not check: {}", errors.join("; ")),
                "retry; if it persists check api_endpoint=, proxy= and the VNIC below",
            )
        } else {
            Verdict::pass(format!(
                    "GetVnic, GetSubnet, ListPrivateIps, UpdatePrivateIp{} (probed, nothing \
                     changed): allowed{}",
                    if create_checked {
                        " and CreatePrivateIp"
                    } else {
                        ""
                    },
                create_note.unwrap_or_default()
            ))
        };
        self.found_subnet = subnet;
        verdict
    }

    /// The VNIC of the local interface.
    fn probe_nic(&mut self, n: &Nic) -> Verdict {
        match self.our_vnic(n) {
            Ok(v) => Verdict::pass(format!("{} is VNIC {v}", n.name)),
            Err(e) => {
                let theirs: Vec<String> = self
                    .instance
                    .iter()
                    .flat_map(|i| &i.vnics)
                    .map(|v| format!("{} ({})", v.mac_addr, v.vnic_id))
                    .collect();
                Verdict::fail(
                    e.to_string(),
                    format!(
                        "set nic= to the local interface whose MAC is one of this instance's \
                         VNICs: {} (compare with `ip -br link`), or set vnic_id=",
                        theirs.join(", ")
                    ),
                )
            }
        }
    }

    /// The subnet's CIDR must contain the VIP.
    fn probe_subnet(&mut self) -> Verdict {
        let cidr = self
            .found_subnet
            .as_ref()
            .map(|s| str_of(&s["cidrBlock"]))
            .unwrap_or_default();
        let parsed = cidr
            .split_once('/')
            .and_then(|(a, l)| Some((a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?)));
        match parsed {
            Some((net, len)) if in_subnet(self.ip, net, len) => {
                Verdict::pass(format!("{} is inside the VNIC's subnet {cidr}", self.ip))
            }
            Some(_) => Verdict::fail(
                format!("{} is outside the VNIC's subnet {cidr}", self.ip),
                "choose a free address of that subnet as ip=, or put the VIP on a VNIC in the \
                 subnet that contains it (nic=)",
            ),
            None => Verdict::fail(
                "the subnet of the VNIC could not be read",
                "see the permissions step",
            ),
        }
    }
}
