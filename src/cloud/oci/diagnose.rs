//! `cloudvip status` and `cloudvip diagnose` on OCI: which VNIC holds the private IP and
//! what the reserved public IP is assigned to, and the checks IMDS → credentials →
//! permissions → VNIC → subnet with the fix for each failure. Read-only: the right to move
//! a private IP is probed with a PUT carrying a wrong `if-match`, which OCI refuses (412)
//! only after its policy check (404 NotAuthorizedOrNotFound).

use std::net::IpAddr;

use serde_json::{json, Value};

use super::Oci;
use crate::cloud::{in_subnet, CloudError, Holding, Nic, Step};
use crate::deadline::Deadline;
use crate::http::{encode, Method};

const PROBE_ETAG: &str = "cloudvip-diagnose-probe";

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

impl Oci {
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

    pub(super) fn holder_rows(
        &mut self,
        nic: Option<&Nic>,
        deadline: &Deadline,
    ) -> Result<Vec<Holding>, CloudError> {
        self.load(deadline)?;
        let vnic = self
            .diag_vnic(nic)
            .ok_or_else(|| CloudError::NotFound("no VNIC of this instance matches".into()))?;
        let mut rows = Vec::new();
        let found = self.private_ips(&vnic, deadline)?;
        for p in &found {
            let holder = p.vnic_id.clone().unwrap_or_else(|| "-".into());
            rows.push(Holding {
                what: format!("private {}", self.ip),
                ours: holder == vnic,
                holder: format!("VNIC {holder}"),
            });
        }
        if found.is_empty() {
            rows.push(Holding {
                what: format!("private {}", self.ip),
                holder: "- (no private IP object: start creates it)".into(),
                ours: false,
            });
        }
        if let Some(want) = self.opts.public_ip.clone() {
            let (p, _) = self.public_ip(&want, deadline)?;
            let target = p.assigned_to().unwrap_or_default().to_owned();
            let ours = found
                .iter()
                .any(|f| f.id == target && f.vnic_id.as_deref() == Some(vnic.as_str()));
            rows.push(Holding {
                what: format!("public {}", p.ip_address),
                holder: if target.is_empty() {
                    format!("- ({:?})", p.lifecycle_state)
                } else {
                    format!("private IP {target}")
                },
                ours,
            });
        }
        Ok(rows)
    }

    pub(super) fn diagnose_steps(&mut self, nic: Option<&Nic>, deadline: &Deadline) -> Vec<Step> {
        let mut out = Vec::new();
        let rest = |out: &mut Vec<Step>, from: usize| {
            for name in &["metadata", "credentials", "permissions", "nic", "subnet"][from..] {
                out.push(Step::skip(name));
            }
        };
        // 1. IMDS.
        if let Err(e) = self.load(deadline) {
            out.push(Step::fail(
                "metadata",
                format!("the instance metadata service does not answer: {e}"),
                "run this on an OCI instance with IMDS v2 enabled; make sure nothing \
                 (a firewall rule, an HTTP_PROXY) intercepts 169.254.169.254; set \
                 metadata_url only for an emulator",
            ));
            rest(&mut out, 1);
            return out;
        }
        let (inst_id, region, vnics) = match &self.instance {
            Some(i) => (i.id.clone(), i.region.clone(), i.vnics.clone()),
            None => Default::default(),
        };
        out.push(Step::pass(
            "metadata",
            format!(
                "{} answers: instance {inst_id} in {region}, {} VNIC(s)",
                self.md_base,
                vnics.len()
            ),
        ));
        // 2. Credentials.
        let who = match &self.opts.credentials {
            Some(p) => format!("the API key of {p}"),
            None => "the instance principal".to_owned(),
        };
        match self.credentials(deadline, None) {
            Ok(c) => {
                self.creds = Some(c);
                out.push(Step::pass(
                    "credentials",
                    format!("{who}: signing key ready"),
                ));
            }
            Err(e) => {
                let fix = match &self.opts.credentials {
                    Some(_) => "credentials= must name an OCI config file (the ~/.oci/config \
                                format: user, fingerprint, tenancy, region, key_file), mode 0600, \
                                with the right oci_profile and pass_phrase for an encrypted key"
                        .to_owned(),
                    None => "instance principals need the IMDS identity certificate and the \
                             auth endpoint (auth.<region>.oraclecloud.com) reachable; or use an \
                             API key with credentials="
                        .to_owned(),
                };
                out.push(Step::fail("credentials", format!("{who}: {e}"), fix));
                rest(&mut out, 2);
                return out;
            }
        }
        // 3. Permissions: the reads start makes, and the move probed.
        let vnic = self
            .diag_vnic(nic)
            .or_else(|| vnics.first().map(|v| v.vnic_id.clone()));
        let mut missing: Vec<&str> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        let mut subnet: Option<Value> = None;
        if let Some(v) = &vnic {
            let mut note = |what: &'static str, r: Result<(), CloudError>| match r {
                Ok(()) => {}
                // OCI hides what a principal may not see behind 404 NotAuthorizedOrNotFound.
                Err(CloudError::Denied(_)) => missing.push(what),
                Err(CloudError::NotFound(m)) if m.contains("NotAuthorized") => missing.push(what),
                Err(e) => errors.push(format!("{what}: {e}")),
            };
            let got = self.get_json(&format!("vnics/{v}"), deadline);
            let subnet_id = got
                .as_ref()
                .map(|(j, _)| str_of(&j["subnetId"]))
                .unwrap_or_default();
            note("read vnics (GetVnic)", got.map(|_| ()));
            if !subnet_id.is_empty() {
                let s = self.get_json(&format!("subnets/{subnet_id}"), deadline);
                if let Ok((j, _)) = &s {
                    subnet = Some(j.clone());
                }
                note("read subnets (GetSubnet)", s.map(|_| ()));
            }
            let listed = self.get_json(&format!("privateIps?vnicId={}", encode(v)), deadline);
            let primary = listed.as_ref().ok().and_then(|(j, _)| {
                j.as_array()?
                    .iter()
                    .find(|p| p["isPrimary"] == true)
                    .map(|p| str_of(&p["id"]))
            });
            note("read private-ips (ListPrivateIps)", listed.map(|_| ()));
            if let Some(pid) = primary {
                // 412 (wrong etag) means the policy let the call through; nothing changed.
                let r = self.call(
                    Method::Put,
                    &format!("privateIps/{pid}"),
                    Some(&json!({})),
                    &[("if-match", PROBE_ETAG.to_owned())],
                    deadline,
                );
                let r = match r {
                    Ok(_) | Err(CloudError::Conflict(_)) => Ok(()),
                    Err(e) => Err(e),
                };
                note("use private-ips (UpdatePrivateIp, to move the VIP)", r);
            }
        }
        let subject = match &self.opts.credentials {
            Some(_) => "group <the API key's user group>",
            None => "dynamic-group <a dynamic group matching these instances>",
        };
        if !missing.is_empty() {
            out.push(Step::fail(
                "permissions",
                format!("{who} may not: {}", missing.join(", ")),
                format!(
                    "add the IAM policy statement: Allow {subject} to use virtual-network-family \
                     in compartment <the VCN's compartment> (and `manage private-ips` if start must \
                     create the private IP); see pcs-examples/oci-policy.sh"
                ),
            ));
        } else if !errors.is_empty() || vnic.is_none() {
            out.push(Step::fail(
                "permissions",
                format!("could not check: {}", errors.join("; ")),
                "retry; if it persists check api_endpoint=, proxy= and the VNIC below",
            ));
        } else {
            out.push(Step::pass(
                "permissions",
                "GetVnic, GetSubnet, ListPrivateIps, UpdatePrivateIp (probed, nothing changed): allowed",
            ));
        }
        // 4. The VNIC of the local interface.
        let Some(n) = nic else {
            out.push(Step::skip("nic"));
            out.push(Step::skip("subnet"));
            return out;
        };
        match self.our_vnic(n) {
            Ok(v) => out.push(Step::pass("nic", format!("{} is VNIC {v}", n.name))),
            Err(e) => {
                let theirs: Vec<String> = vnics
                    .iter()
                    .map(|v| format!("{} ({})", v.mac_addr, v.vnic_id))
                    .collect();
                out.push(Step::fail(
                    "nic",
                    e.to_string(),
                    format!(
                        "set nic= to the local interface whose MAC is one of this instance's \
                         VNICs: {} (compare with `ip -br link`), or set vnic_id=",
                        theirs.join(", ")
                    ),
                ));
                out.push(Step::skip("subnet"));
                return out;
            }
        }
        // 5. The subnet's CIDR must contain the VIP.
        let cidr = subnet
            .as_ref()
            .map(|s| str_of(&s["cidrBlock"]))
            .unwrap_or_default();
        let parsed = cidr
            .split_once('/')
            .and_then(|(a, l)| Some((a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?)));
        match parsed {
            Some((net, len)) if in_subnet(self.ip, net, len) => out.push(Step::pass(
                "subnet",
                format!("{} is inside the VNIC's subnet {cidr}", self.ip),
            )),
            Some(_) => out.push(Step::fail(
                "subnet",
                format!("{} is outside the VNIC's subnet {cidr}", self.ip),
                "choose a free address of that subnet as ip=, or put the VIP on a VNIC in the \
                 subnet that contains it (nic=)",
            )),
            None => out.push(Step::fail(
                "subnet",
                "the subnet of the VNIC could not be read",
                "see the permissions step",
            )),
        }
        out
    }
}
