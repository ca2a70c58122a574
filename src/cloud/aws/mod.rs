//! AWS EC2: the client layer the backend sits on (research/aws-azure.md part A). SigV4
//! signing on ring (`sigv4.rs`, with the crate decision), IMDSv2 (`imds.rs`), credentials
//! from the instance profile, a credentials file or an STS AssumeRole (`credentials.rs`),
//! EC2 Query requests (`query.rs`), answers parsed fail-closed (`xml.rs`, `model.rs`),
//! refusals classified into `CloudError` (`error.rs`), and the signed calls over the one
//! HTTP layer with pagination and dry runs (`client.rs`). On top, the backend: its
//! parameters and modes (`config.rs`), the flows per mode (`flow.rs`) and the decisions
//! they share with the dry run (`plan.rs`), and status/diagnose with the IAM policy per
//! mode (`inspect.rs`). Registered as `cloud=aws` by `BACKEND`.

pub mod client;
pub mod config;
pub mod credentials;
pub mod error;
pub mod flow;
pub mod imds;
pub mod inspect;
pub mod model;
mod plan;
pub mod query;
pub mod sigv4;
pub mod xml;

use std::net::IpAddr;

use super::registry::{Backend, Dmi, IsSet, Mode, Platform};
use crate::ocf::Exit;

pub static BACKEND: Backend = Backend {
    name: "aws",
    label: "AWS",
    summary: "a secondary private IP, an Elastic IP or an overlay route on the EC2 ENI",
    dmi_doc: "Amazon EC2",
    detect,
    platform: Platform::Aws,
    modes: &[
        Mode {
            name: "secondary_ip",
            doc: "a secondary private IP of the ENI, with its Elastic IP",
        },
        Mode {
            name: "eip",
            doc: "an Elastic IP alone, to the ENI's primary address",
        },
        Mode {
            name: "route",
            doc: "an overlay IP outside the VPC, by its route in route_tables",
        },
        super::probe::MODE,
    ],
    params: config::PARAMS,
    parse: |get| {
        config::Own::parse(&|k| get(k).map(str::to_owned))
            .map(|own| Box::new(own) as Box<dyn super::registry::BackendConfig>)
            .map_err(Exit::configured)
    },
    fits,
    cloud: |s| Ok(Box::new(flow::Aws::from_setup(s)?)),
    inspect: |s| Ok(Box::new(flow::Aws::from_setup(s)?)),
};

/// EC2 Nitro instances set sys_vendor "Amazon EC2" (systemd's DMI vendor table,
/// src/basic/virt.c); the older Xen ones a BIOS version like "4.2.amazon" (dmidecode of
/// such instances; Chef's Ohai tests bios_version for "amazon" the same way).
fn detect(d: &Dmi) -> bool {
    d.read("sys_vendor") == "Amazon EC2" || d.read("bios_version").contains("amazon")
}

/// Secondary private IPs, Elastic IPs and overlay routes are IPv4 here.
fn fits(ip: IpAddr, _set: &IsSet) -> Result<(), Exit> {
    if ip.is_ipv6() {
        return Err(Exit::configured(format!(
            "ip={ip}: cloud=aws moves IPv4 addresses only (secondary private IPs, Elastic IPs \
             and overlay routes)"
        )));
    }
    Ok(())
}
