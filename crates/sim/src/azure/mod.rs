//! Microsoft Azure, as far as cloudvip's load-balancer mode sees it: the Instance Metadata
//! Service (`imds.rs`) and the DMI values a VM shows (`DMI`). There is no ARM API here: on
//! Azure the VIP is moved by the load balancer's health probe, not by an API call
//! (research/aws-azure.md §B5); the load balancer itself is `lb/`. Wire facts:
//! research/aws-azure.md §B1.

pub mod imds;
pub mod world;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};

use crate::admin::{self, Cloud};
use crate::http::{Request, Response};
use crate::server::{spawn_listener, Core, ListenerSpec};
use crate::Started;
use world::{AzureWorld, Vm};

/// What /sys/class/dmi/id shows on an Azure VM. The chassis asset tag is the one Azure
/// constant: cloud-init tells Azure by it (canonical/cloud-init
/// `cloudinit/sources/azure/identity.py`, `ChassisAssetTag.AZURE_CLOUD`), and Microsoft's
/// own troubleshooter says "If the asset tag is different than
/// 7783-7084-3265-9085-8269-3286-77" the VM is not seen as an Azure VM
/// (MicrosoftDocs/azure-docs `articles/automation/troubleshoot/update-agent-issues-linux.md`,
/// "Dmidecode check"). Vendor and product are Hyper-V's, which plain Hyper-V shares: only
/// the asset tag tells Azure from Hyper-V.
pub const DMI: &[(&str, &str)] = &[
    ("sys_vendor", "Microsoft Corporation"),
    ("product_name", "Virtual Machine"),
    ("board_vendor", "Microsoft Corporation"),
    ("chassis_vendor", "Microsoft Corporation"),
    ("chassis_asset_tag", "7783-7084-3265-9085-8269-3286-77"),
];

/// Bound IMDS listeners.
#[derive(Clone, Debug)]
pub struct AzureEndpoints {
    pub imds: BTreeMap<String, SocketAddr>,
    pub imds_shared: Option<SocketAddr>,
}

pub struct AzureCloud {
    pub world: AzureWorld,
    pub core: Arc<Core>,
    endpoints: OnceLock<AzureEndpoints>,
}

/// `compute.vmId`: the world's, else a UUID made from the name (stable across runs).
pub fn vm_id(vm: &Vm) -> String {
    if let Some(id) = &vm.vm_id {
        return id.clone();
    }
    let d = ring::digest::digest(&ring::digest::SHA256, vm.name.as_bytes());
    let h: String = d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Write the DMI values into `dir` (created), one file each, newline-terminated as sysfs.
pub fn write_dmi(dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, value) in DMI {
        let p = dir.join(name);
        std::fs::write(&p, format!("{value}\n")).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

impl Cloud for AzureCloud {
    fn name(&self) -> &'static str {
        "azure"
    }
    fn state(&self) -> Value {
        json!({
            "subscriptionId": self.world.subscription_id,
            "resourceGroup": self.world.resource_group,
            "instances": imds::all(self),
            "dmi": DMI.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        })
    }
    fn endpoints(&self) -> Value {
        let Some(e) = self.endpoints.get() else {
            return Value::Null;
        };
        let url = |a: &SocketAddr| format!("http://{a}/metadata/");
        json!({
            "imds": e.imds.iter().map(|(k, a)| (k.clone(), json!(url(a)))).collect::<serde_json::Map<_, _>>(),
            "imds_hosts": e.imds.iter().map(|(k, a)| (k.clone(), json!(a.to_string()))).collect::<serde_json::Map<_, _>>(),
            "imds_shared": e.imds_shared.map(|a| url(&a)),
        })
    }
    fn admin(&self, req: &Request, rest: &[String]) -> Response {
        let r: Vec<&str> = rest.iter().map(String::as_str).collect();
        match (req.method.as_str(), r.as_slice()) {
            ("GET", ["state"]) => admin::ok(self.state()),
            ("GET", ["dmi"]) => admin::ok(self.state()["dmi"].clone()),
            _ => admin::err(404, format!("no route {} {}", req.method, req.path)),
        }
    }
}

/// Starts the IMDS listeners (one per VM on loopback, and the shared one) and writes the
/// DMI directory when one is configured.
pub fn start(core: Arc<Core>, w: &AzureWorld) -> Result<(Arc<AzureCloud>, Started), String> {
    if let Some(dir) = &w.dmi_dir {
        write_dmi(dir)?;
    }
    let cloud = Arc::new(AzureCloud {
        world: w.clone(),
        core: core.clone(),
        endpoints: OnceLock::new(),
    });
    let mut threads = Vec::new();
    let mut per_vm = BTreeMap::new();
    let mut listen = |addr: SocketAddr, vm: Option<String>| {
        let what = vm.clone().unwrap_or_else(|| "shared".into());
        let (a, t) = spawn_listener(
            core.clone(),
            ListenerSpec {
                addr,
                tls: None,
                service: Arc::new(imds::ImdsService {
                    cloud: cloud.clone(),
                    vm,
                }),
            },
        )
        .map_err(|e| format!("azure imds listener ({what}) {addr}: {e}"))?;
        threads.push(t);
        Ok::<_, String>(a)
    };
    if w.imds_per_instance {
        for vm in &w.vms {
            let a = listen(crate::world::loopback_any(), Some(vm.name.clone()))?;
            per_vm.insert(vm.name.clone(), a);
        }
    }
    let shared = match w.imds_listen {
        Some(addr) => Some(listen(addr, None)?),
        None => None,
    };
    let _ = cloud.endpoints.set(AzureEndpoints {
        imds: per_vm,
        imds_shared: shared,
    });
    let started = Started {
        cloud: cloud.clone(),
        threads,
    };
    Ok((cloud, started))
}
