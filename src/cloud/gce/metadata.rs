//! The GCE metadata server as this instance sees it: project, name, zone and the NICs with
//! their alias ranges and access configs, read in one recursive request. It costs no API
//! quota, which is why monitor asks it and never the Compute API (gce-api.md §5.4, §7.3).

use std::net::IpAddr;

use serde::Deserialize;

use super::{transient, Gce};
use crate::cloud::CloudError;
use crate::deadline::Deadline;

/// Where the metadata server is: `GCE_METADATA_HOST` (host[:port], the variable Google's
/// own client libraries honour), else the link-local address, which needs no DNS.
pub fn base_url() -> String {
    let host = std::env::var("GCE_METADATA_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| "169.254.169.254".to_owned());
    format!("http://{}/computeMetadata/v1/", host.trim())
}

#[derive(Debug, Deserialize)]
pub struct Root {
    pub instance: Instance,
    pub project: Project,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub project_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub name: String,
    /// `projects/<number>/zones/<zone>`
    pub zone: String,
    /// Required: an instance always has one; an answer without them is not to be trusted.
    pub network_interfaces: Vec<Nic>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Nic {
    pub mac: String,
    /// The NIC's primary address and its subnet's netmask (for `diagnose`).
    #[serde(default)]
    pub ip: String,
    #[serde(default)]
    pub subnetmask: String,
    #[serde(default)]
    pub ip_aliases: Vec<String>,
    #[serde(default)]
    pub access_configs: Vec<AccessConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessConfig {
    #[serde(default)]
    pub external_ip: String,
}

/// Who and where this instance is, as the metadata server says.
#[derive(Debug)]
pub struct Identity {
    pub project: String,
    pub name: String,
    pub zone: String,
    pub nics: Vec<Nic>,
}

impl Identity {
    pub fn region(&self) -> &str {
        // zones are <region>-<letter>
        self.zone.rsplit_once('-').map_or(&self.zone, |(r, _)| r)
    }

    /// The index of the GCE NIC with this MAC (the API calls it nic<index>).
    pub fn nic_index(&self, mac: &[u8; 6]) -> Option<usize> {
        let want = crate::cloud::format_mac(mac);
        self.nics
            .iter()
            .position(|n| n.mac.eq_ignore_ascii_case(&want))
    }

    /// The indexes of our NICs that carry `ip` as an alias.
    pub fn nics_with(&self, ip: IpAddr) -> Vec<usize> {
        self.nics
            .iter()
            .enumerate()
            .filter(|(_, n)| n.ip_aliases.iter().any(|a| super::aliases::is_host(a, ip)))
            .map(|(i, _)| i)
            .collect()
    }
}

impl Gce {
    pub(super) fn md_get(
        &self,
        path: &str,
        deadline: &Deadline,
    ) -> Result<crate::http::Response, CloudError> {
        crate::cloud::call::metadata_get(
            &self.http,
            "metadata server",
            &self.md_base,
            path,
            ("Metadata-Flavor", "Google"),
            deadline,
        )
    }

    pub(super) fn identity(&self, deadline: &Deadline) -> Result<Identity, CloudError> {
        let r = self.md_get("?recursive=true&alt=json", deadline)?;
        let root: Root = crate::cloud::call::json(&r, "metadata server")?;
        let zone = zone_name(&root.instance.zone).ok_or_else(|| {
            transient(format!(
                "metadata server: instance/zone {:?} is not projects/N/zones/ZONE",
                root.instance.zone
            ))
        })?;
        if root.instance.name.is_empty() || root.project.project_id.is_empty() {
            return Err(transient(
                "metadata server: empty instance/name or project/project-id".into(),
            ));
        }
        Ok(Identity {
            project: root.project.project_id,
            name: root.instance.name,
            zone,
            nics: root.instance.network_interfaces,
        })
    }
}

/// `us-central1-a` from `projects/123/zones/us-central1-a`; `None` for any other shape.
fn zone_name(z: &str) -> Option<String> {
    match z.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", p, "zones", zone] if !p.is_empty() && zone.contains('-') => {
            Some((*zone).to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_answers_fail_closed() {
        assert_eq!(
            zone_name("projects/123/zones/us-central1-a").as_deref(),
            Some("us-central1-a")
        );
        for bad in [
            "us-central1-a",
            "projects/123/zones/",
            "zones/us-central1-a",
            "",
        ] {
            assert_eq!(zone_name(bad), None, "{bad}");
        }
        let no_nics = r#"{"instance": {"name": "a", "zone": "projects/1/zones/z-a"}, "project": {"projectId": "p"}}"#;
        assert!(serde_json::from_str::<Root>(no_nics).is_err());
    }
}
