//! The `[azure]` part of the world file: the subscription and resource group, the VMs with
//! their NICs and IP configurations (what IMDS reports), optionally the load-balancer rules
//! IMDS shows a VM behind a Standard load balancer, and where the emulated DMI values go.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::gce::net::Ipv4Net;

fn yes() -> bool {
    true
}
fn public_cloud() -> String {
    "AZUREPUBLICCLOUD".into()
}
fn vm_size() -> String {
    "Standard_D2s_v5".into()
}
fn tcp() -> String {
    "tcp".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureWorld {
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    /// `compute.azEnvironment`.
    #[serde(default = "public_cloud")]
    pub environment: String,
    /// One IMDS listener per VM on 127.0.0.1 (any port).
    #[serde(default = "yes")]
    pub imds_per_instance: bool,
    /// Optional shared IMDS listener (`169.254.169.254:80` inside a network namespace); the
    /// VM is told apart by the request's source address (`vms[].imds_source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imds_listen: Option<SocketAddr>,
    /// A directory to write Azure's DMI values into at start (`sys_vendor`,
    /// `product_name`, `chassis_asset_tag`, ... as /sys/class/dmi/id has them), for a test
    /// to bind-mount over /sys/class/dmi/id. Relative: against the world file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmi_dir: Option<PathBuf>,
    #[serde(default)]
    pub vms: Vec<Vm>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vm {
    pub name: String,
    /// `compute.vmId`; default: a UUID derived from the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_id: Option<String>,
    /// Availability zone ("1", "2", "3"), empty for none.
    #[serde(default)]
    pub zone: String,
    #[serde(default = "vm_size")]
    pub vm_size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imds_source: Option<IpAddr>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub nics: Vec<Nic>,
    /// What `/metadata/loadbalancer` shows (a VM in a Standard LB's backend pool).
    #[serde(default)]
    pub load_balancer: Vec<InboundRule>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    /// Any of `00:0d:3a:..`, `00-0D-3A-..`, `000D3A..`; IMDS shows `000D3A..`.
    pub mac: String,
    pub subnet: Ipv4Net,
    /// The NIC's IPv4 IP configurations, the primary first.
    pub ipv4: Vec<Ipv4Config>,
    #[serde(default)]
    pub ipv6: Vec<Ipv6Addr>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ipv4Config {
    pub private: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<Ipv4Addr>,
}

/// A load-balancing rule as `/metadata/loadbalancer` lists it (`inboundRules[]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundRule {
    pub frontend_ip: IpAddr,
    #[serde(default = "tcp")]
    pub protocol: String,
    pub frontend_port: u16,
    pub backend_port: u16,
    pub private_ip: IpAddr,
}

impl AzureWorld {
    pub fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        let mut sources = std::collections::BTreeSet::new();
        for vm in &self.vms {
            if !names.insert(&vm.name) {
                return Err(format!("VM {} is defined twice", vm.name));
            }
            if let Some(s) = vm.imds_source {
                if !sources.insert(s) {
                    return Err(format!("imds_source {s} is used twice"));
                }
            }
            if vm.nics.is_empty() {
                return Err(format!("VM {} has no NIC", vm.name));
            }
            for nic in &vm.nics {
                if super::imds::mac_imds(&nic.mac).is_none() {
                    return Err(format!("VM {}: bad MAC {:?}", vm.name, nic.mac));
                }
                if nic.ipv4.is_empty() {
                    return Err(format!(
                        "VM {}: a NIC needs a primary IPv4 configuration",
                        vm.name
                    ));
                }
                if let Some(c) = nic.ipv4.iter().find(|c| !nic.subnet.contains(c.private)) {
                    return Err(format!(
                        "VM {}: {} is outside the NIC's subnet {}",
                        vm.name, c.private, nic.subnet
                    ));
                }
            }
        }
        Ok(())
    }
}
