//! OCI's instance metadata service (IMDS v2): this instance, its region and realm, its
//! VNICs, the default endpoints derived from them, and which VNIC is the VIP's.

use std::net::IpAddr;

use super::{transient, Oci};
use crate::cloud::{CloudError, Nic};
use crate::deadline::Deadline;
use crate::http::Response;


pub(super) const DEFAULT_METADATA: &str = "http://169.254.169.254/opc/v2/";

/// This instance as IMDS v2 describes it (oci-api.md §1.3-1.4), read fail-closed: a
/// field we rely on that is missing or of the wrong type is an error, never a default.
pub(super) struct Instance {
    pub id: String,
    pub region: String,
    /// `regionInfo.realmDomainComponent`; needed only for default endpoints.
    pub domain: Option<String>,
    pub vnics: Vec<ImdsVnic>,
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

impl Oci {
    /// An IMDS v2 GET (`Authorization: Bearer Oracle`, oci-api.md §1).
    pub(super) fn imds(&self, path: &str, deadline: &Deadline) -> Result<Response, CloudError> {
        crate::cloud::call::metadata_get(
            &self.http,
            "instance metadata service",
            &self.md_base,
            path,
            ("Authorization", "Bearer Oracle"),
            deadline,
        )
    }

    pub(super) fn load(&mut self, deadline: &Deadline) -> Result<(), CloudError> {
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

    pub(super) fn instance_id(&self) -> Result<&str, CloudError> {
        self.instance
            .as_ref()
            .map(|i| i.id.as_str())
            .ok_or_else(|| transient("instance identity not loaded".into()))
    }

    pub(super) fn base(&self, explicit: &Option<String>, service: &str) -> Result<String, CloudError> {
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

    pub(super) fn auth_base(&self) -> Result<String, CloudError> {
        self.base(&self.opts.auth_endpoint, "auth")
    }

    /// The VNIC that gets the VIP: `vnic_id` if set (it must be one of this instance's,
    /// with the MAC of `nic`), else the VNIC whose MAC is `nic`'s. Never just the first.
    pub(super) fn our_vnic(&self, nic: &Nic) -> Result<String, CloudError> {
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

}
