//! Microsoft Azure: a named cloud whose default and only mode is the probe mode
//! (`cloud/probe/`). Azure virtual networks are layer-3 overlays ("Azure does not support
//! any Layer 2 semantics", the VNet FAQ): a gratuitous ARP moves nothing, and Microsoft's
//! Pacemaker guides put the VIP on a Standard internal load balancer with Floating IP whose
//! health probe finds the active node (research/aws-azure.md §B5). Moving an IP
//! configuration between NICs takes 30 s to minutes (§B4) and stays out of scope.
//!
//! What Azure adds to the probe mode: detection for cloud=auto (DMI, the Instance Metadata
//! Service where DMI cannot tell), and diagnose's IMDS row.

use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use super::{Step, DIAGNOSE_METADATA};
use crate::deadline::Deadline;
use crate::http::{Http, Method, Request};

/// The one Azure constant in DMI: the chassis asset tag (cloud-init
/// `cloudinit/sources/azure/identity.py`, `ChassisAssetTag.AZURE_CLOUD`; Microsoft's own
/// troubleshooter: "If the asset tag is different than 7783-7084-3265-9085-8269-3286-77"
/// the VM is not seen as an Azure VM). sys_vendor "Microsoft Corporation" is Hyper-V's,
/// which plain Hyper-V shares.
pub const ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";
pub const VENDOR: &str = "Microsoft Corporation";

/// IMDS: link-local plain HTTP, the `Metadata: true` header, an api-version
/// (research/aws-azure.md §B1).
pub const IMDS: &str = "http://169.254.169.254/metadata/";
const API_VERSION: &str = "2021-02-01";

/// What DMI says about Azure.
#[derive(Debug, PartialEq, Eq)]
pub enum Dmi {
    Azure,
    /// Hyper-V's vendor without Azure's asset tag: plain Hyper-V, or an Azure VM whose
    /// firmware strings we cannot read; only IMDS can tell.
    HyperV,
    No,
}

pub fn dmi(dir: &Path) -> Dmi {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    if read("chassis_asset_tag") == ASSET_TAG {
        Dmi::Azure
    } else if read("sys_vendor") == VENDOR {
        Dmi::HyperV
    } else {
        Dmi::No
    }
}

/// For cloud=auto on a Hyper-V VM: does an Azure IMDS answer? One link-local request
/// with a short budget (a missing IMDS is an unreachable address, not a slow one).
pub fn imds_answers(http: &Http, base: Option<&str>, deadline: &Deadline) -> bool {
    instance(http, base, deadline).is_ok()
}

#[derive(Deserialize)]
struct Instance {
    compute: Compute,
    #[serde(default)]
    network: Network,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Compute {
    #[serde(default)]
    name: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    resource_group_name: String,
}

#[derive(Default, Deserialize)]
struct Network {
    #[serde(default)]
    interface: Vec<Interface>,
}

#[derive(Deserialize)]
struct Interface {
    #[serde(default)]
    ipv4: Addresses,
    #[serde(default)]
    ipv6: Addresses,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Addresses {
    #[serde(default)]
    ip_address: Vec<IpConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpConfig {
    #[serde(default)]
    private_ip_address: String,
}

fn instance(http: &Http, base: Option<&str>, deadline: &Deadline) -> Result<Instance, String> {
    let url = format!(
        "{}instance?api-version={API_VERSION}",
        base.unwrap_or(IMDS)
    );
    let req = Request::new(Method::Get, &url)
        .header("Metadata", "true")
        .timeout(DIAGNOSE_METADATA);
    let r = http
        .metadata(&req, deadline)
        .map_err(|e| format!("{url}: {e}"))?;
    if !r.ok() {
        let body: String = r.text().chars().take(120).collect();
        return Err(format!("{url}: HTTP {} {body}", r.status));
    }
    r.json::<Instance>()
        .map_err(|e| format!("{url}: not Azure's instance document: {e:#}"))
}

/// diagnose's first row: IMDS answers, and the VIP is none of this VM's own IP
/// configurations (with Floating IP the VIP is the load balancer's frontend IP; an
/// address Azure gave a NIC would be answered by the SDN whatever the probe says).
pub fn diagnose_imds(http: &Http, base: Option<&str>, ip: IpAddr, deadline: &Deadline) -> Step {
    let i = match instance(http, base, &deadline.within(DIAGNOSE_METADATA)) {
        Ok(i) => i,
        Err(e) => {
            return Step::fail(
                "metadata",
                format!("the Azure Instance Metadata Service does not answer: {e}"),
                "run this on an Azure VM; nothing (a firewall, an HTTP_PROXY) may intercept \
                 169.254.169.254; the probe mode itself does not need IMDS",
            )
        }
    };
    let own = i
        .network
        .interface
        .iter()
        .flat_map(|n| n.ipv4.ip_address.iter().chain(&n.ipv6.ip_address))
        .any(|c| c.private_ip_address.parse::<IpAddr>().ok() == Some(ip));
    if own {
        return Step::fail(
            "metadata",
            format!(
                "ip={ip} is an IP configuration of this VM's NIC, not a load balancer frontend"
            ),
            "give the internal load balancer a frontend IP for the VIP (a free address of \
             the subnet) and use that as ip",
        );
    }
    Step::pass(
        "metadata",
        format!(
            "IMDS answers: VM {} in {} (resource group {}); ip is none of its NICs' addresses",
            i.compute.name, i.compute.location, i.compute.resource_group_name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmi_tells_azure_by_its_asset_tag_and_hyper_v_by_its_vendor() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(dmi(d.path()), Dmi::No);
        std::fs::write(d.path().join("sys_vendor"), "Microsoft Corporation\n").unwrap();
        assert_eq!(dmi(d.path()), Dmi::HyperV);
        std::fs::write(
            d.path().join("chassis_asset_tag"),
            "7783-7084-3265-9085-8269-3286-77\n",
        )
        .unwrap();
        assert_eq!(dmi(d.path()), Dmi::Azure);
    }

    #[test]
    fn the_instance_document_parses_as_azure_writes_it() {
        let doc = r#"{"compute":{"name":"vm1","location":"westus","resourceGroupName":"rg",
            "vmId":"x"},"network":{"interface":[{"ipv4":{"ipAddress":[{"privateIpAddress":
            "10.1.0.4","publicIpAddress":""}],"subnet":[]},"ipv6":{"ipAddress":[]},
            "macAddress":"000D3AF806EC"}]}}"#;
        let i: Instance = serde_json::from_str(doc).unwrap();
        assert_eq!(i.compute.resource_group_name, "rg");
        assert_eq!(i.network.interface[0].ipv4.ip_address[0].private_ip_address, "10.1.0.4");
    }
}
