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


use serde::Deserialize;

use super::inspect::Verdict;
use super::registry::{Backend, Dmi as DmiFiles, Platform};
use super::DIAGNOSE_METADATA;
use crate::deadline::Deadline;
use crate::http::{Http, Method, Request};

/// cloud=azure: the probe mode is its default and only mode, and its parameters are the
/// probe mode's (shared by every backend); its factories are never reached through the
/// mode dispatch of `cloud::backend`, but name the same backend.
pub static BACKEND: Backend = Backend {
    name: "azure",
    label: "Azure",
    summary: "the load balancer's health probe answered on the node that holds the VIP",
    dmi_doc: "Azure's chassis asset tag (IMDS when root-only DMI cannot be read on Hyper-V)",
    detect,
    platform: Platform::Azure,
    modes: &[super::probe::MODE],
    params: &[],
    parse: |_| Ok(Box::new(())),
    fits: |_, _| Ok(()),
    cloud: |s| Ok(Box::new(super::probe::Probe::new(s, "azure")?)),
    inspect: |s| Ok(Box::new(super::probe::Probe::new(s, "azure")?)),
};

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

/// cloud=auto: Azure's chassis asset tag. The file is readable by root only; when it
/// cannot be read on a VM whose sys_vendor is Hyper-V's (plain Hyper-V shares it), DMI is
/// not enough and IMDS decides: one link-local request, 300 ms at most (azure-identity
/// probes IMDS the same way), made only in that case.
pub fn detect(d: &DmiFiles) -> bool {
    let tag = std::fs::read_to_string(d.0.join("chassis_asset_tag"));
    match tag {
        Ok(t) => t.trim() == ASSET_TAG,
        Err(_) if d.read("sys_vendor") == VENDOR => imds_present(),
        Err(_) => false,
    }
}

/// Does an Azure IMDS answer on 169.254.169.254 (its instance document, with the
/// `Metadata: true` header)? Bounded: 300 ms to connect, 300 ms to answer.
fn imds_present() -> bool {
    use std::io::{Read as _, Write as _};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;
    let wait = Duration::from_millis(300);
    let to = SocketAddr::from(([169, 254, 169, 254], 80));
    let Ok(mut s) = TcpStream::connect_timeout(&to, wait) else {
        return false;
    };
    let req = format!(
        "GET /metadata/instance?api-version={API_VERSION} HTTP/1.1\r\nHost: 169.254.169.254\r\n\
         Metadata: true\r\nConnection: close\r\n\r\n"
    );
    if s.set_read_timeout(Some(wait)).is_err() || s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 512];
    let n = s.read(&mut head).unwrap_or(0);
    let text = String::from_utf8_lossy(&head[..n]);
    text.starts_with("HTTP/1.1 200") && text.contains("\"compute\"")
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
pub fn diagnose_imds(
    http: &Http,
    base: Option<&str>,
    ip: IpAddr,
    deadline: &Deadline,
) -> Verdict {
    let i = match instance(http, base, &deadline.within(DIAGNOSE_METADATA)) {
        Ok(i) => i,
        Err(e) => {
            return Verdict::fail(
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
        return Verdict::fail(
            format!(
                "ip={ip} is an IP configuration of this VM's NIC, not a load balancer frontend"
            ),
            "give the internal load balancer a frontend IP for the VIP (a free address of \
             the subnet) and use that as ip",
        );
    }
    Verdict::pass(format!(
            "IMDS answers: VM {} in {} (resource group {}); ip is none of its NICs' addresses",
            i.compute.name, i.compute.location, i.compute.resource_group_name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmi_tells_azure_by_its_asset_tag() {
        let d = tempfile::tempdir().unwrap();
        let dmi = DmiFiles(d.path());
        // No tag and not Hyper-V's vendor: not Azure, and IMDS is not asked.
        assert!(!detect(&dmi));
        std::fs::write(d.path().join("chassis_asset_tag"), "OracleCloud.com\n").unwrap();
        assert!(!detect(&dmi));
        std::fs::write(d.path().join("chassis_asset_tag"), format!("{ASSET_TAG}\n")).unwrap();
        assert!(detect(&dmi));
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
