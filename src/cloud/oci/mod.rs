//! Oracle Cloud: the VIP is a secondary private IP of this instance's VNIC, and an optional
//! reserved public IP is assigned to that private IP. The flow is the oci CLI's
//! `assign-private-ip --unassign-if-already-assigned` (oci-api.md §2.7) done in process:
//! find the private IP object by address in our VNIC's subnet, create it on our VNIC if
//! absent, move it with PUT (same OCID, so a reserved public IP follows) if it is elsewhere.
//! Every request is signed (`sign.rs`) as an API key or an instance principal (`auth.rs`).
//! IMDS is `imds.rs`, the Networking API calls `networking.rs`; this file keeps the flow.

pub mod auth;
pub mod config;
mod diagnose;
mod imds;
mod ipv6;
mod model;
mod networking;
mod sign;
mod subnet_cache;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::registry::{Backend, Dmi, Mode, Platform, Setup};
use super::{settle, Claimed, Cloud, CloudError, Nic, Op, Planned, Seen};
use crate::deadline::{Backoff, Deadline};
use crate::http::Http;
use crate::ocf::Exit;
use auth::Credentials;
use imds::{Instance, DEFAULT_METADATA};
use networking::{public_step, Claim, PublicStep};

pub static BACKEND: Backend = Backend {
    name: "oci",
    label: "OCI",
    summary: "a secondary private IP on the Oracle Cloud VNIC",
    dmi_doc: "OracleCloud.com",
    // OCI sets chassis_asset_tag "OracleCloud.com".
    detect: |d: &Dmi| d.read("chassis_asset_tag") == "OracleCloud.com",
    platform: Platform::Oci,
    modes: &[
        Mode {
            name: "secondary_ip",
            doc: "a secondary private IP of the VNIC",
        },
        super::probe::MODE,
    ],
    params: config::PARAMS,
    parse: |get| Ok(Box::new(config::Config::parse(get)?)),
    fits,
    cloud: |s| Ok(Box::new(Oci::new(s)?)),
    inspect: |s| Ok(Box::new(Oci::new(s)?)),
};

/// OCI public IPs are IPv4.
fn fits(ip: IpAddr, set: &super::registry::IsSet) -> Result<(), Exit> {
    if ip.is_ipv6() && set("public_ip") {
        return Err(Exit::configured(
            "public_ip with an IPv6 ip: OCI public IPs attach to IPv4 private IPs only",
        ));
    }
    Ok(())
}

/// "401 (NotAuthenticated) is returned if the client's clock is skewed more than 5
/// minutes" (oci-api.md §2.4).
pub(super) const OCI_CLOCK_LIMIT_SECS: i64 = 300;

/// Polling a public IP's asynchronous assignment: no duration is documented (oci-api.md
/// §6); poll often at first, then every second.
const PUBLIC_IP_POLL: Backoff =
    Backoff::new(Duration::from_millis(250), Duration::from_secs(1), false);

pub struct Oci {
    http: Http,
    ip: IpAddr,
    opts: config::Config,
    shared: crate::cloud::config::Shared,
    md_base: String,
    /// The state directory for the token cache and its lock.
    state: Option<PathBuf>,
    instance: Option<Instance>,
    creds: Option<Credentials>,
    /// The instance-principal session key, generated once per action: RSA key generation
    /// is CPU work that no timeout interrupts, so a federation retried while the
    /// endpoint is down must not pay it on every round.
    session_key: std::cell::OnceCell<rsa::RsaPrivateKey>,
    /// The VIP's subnet, as diagnose's permissions check read it for its subnet check.
    found_subnet: Option<Value>,
    /// The last `private_ips` answer came with a cached subnet that only the write after
    /// it checks (`networking.rs`).
    subnet_unconfirmed: bool,
    /// Ask GetVnic, whatever the subnet cache holds: a claim with the cached subnet failed.
    skip_subnet_cache: bool,
}

fn transient(msg: String) -> CloudError {
    CloudError::Transient(msg)
}

impl Oci {
    pub fn new(s: &Setup) -> Result<Self, Exit> {
        let o = s.shared;
        Ok(Oci {
            http: s.http()?,
            ip: s.ip,
            opts: s.config::<config::Config>()?.clone(),
            shared: o.clone(),
            md_base: o
                .metadata_url
                .clone()
                .unwrap_or_else(|| DEFAULT_METADATA.to_owned()),
            state: s.state.map(std::path::Path::to_owned),
            instance: None,
            creds: None,
            session_key: std::cell::OnceCell::new(),
            found_subnet: None,
            subnet_unconfirmed: false,
            skip_subnet_cache: false,
        })
    }

}

impl Cloud for Oci {
    fn name(&self) -> &'static str {
        "oci"
    }

    /// The instance metadata lists no secondary IPs, so the cloud can only be asked through
    /// the signed API: not at depth 0.
    fn locate(&mut self, nic: &Nic, depth: u32, deadline: &Deadline) -> Result<Seen, CloudError> {
        if depth < 10 {
            return Ok(Seen::NotAsked);
        }
        self.load(deadline)?;
        let vnic = self.our_vnic(nic)?;
        let here = self
            .private_ips(&vnic, false, deadline)?
            .iter()
            .any(|p| p.vnic_id.as_deref() == Some(vnic.as_str()));
        Ok(if here {
            Seen::Here
        } else {
            Seen::Elsewhere(None)
        })
    }

    /// From IMDS alone (no API call): the VNIC is this instance's, and the VIP is none
    /// of its VNICs' primary private IP.
    fn validate(&mut self, nic: &Nic, deadline: &Deadline) -> Result<(), CloudError> {
        self.load(deadline)?;
        self.our_vnic(nic)?;
        let primary = self
            .instance
            .iter()
            .flat_map(|i| &i.vnics)
            .find(|v| v.private_ip == self.ip);
        if let Some(v) = primary {
            return Err(CloudError::Invalid(format!(
                "{} is the primary private IP of this instance's VNIC {} (a VIP must be a \
                 secondary private IP)",
                self.ip, v.vnic_id
            )));
        }
        Ok(())
    }

    fn claim(&mut self, nic: &Nic, deadline: &Deadline) -> Result<Claimed, CloudError> {
        self.load(deadline)?;
        let vnic = self.our_vnic(nic)?;
        let id = match settle("claim", deadline, || self.claim_once(&vnic, deadline)) {
            // The service refused a move decided in the cached subnet (a move across
            // subnets, an object gone): GetVnic's subnet decides once more.
            Err(e) if self.subnet_unconfirmed && networking::wrong_subnet_may_cause(&e) => {
                log::info!("claim in the cached subnet of VNIC {vnic}: {e}; asking GetVnic");
                self.skip_subnet_cache = true;
                settle("claim", deadline, || self.claim_once(&vnic, deadline))?
            }
            r => r?,
        };
        Ok(Claimed::new(Some(id)))
    }

    /// A probe (Pacemaker probes every node before it starts a resource there, and again
    /// after a reboot empties /run): cache our VNIC's subnet, so that a start here needs
    /// no GetVnic. This also leaves an instance principal's token cached.
    fn prime(&mut self, nic: &Nic, deadline: &Deadline) {
        let r = self.load(deadline).and_then(|()| {
            let vnic = self.our_vnic(nic)?;
            if subnet_cache::read(self.state.as_deref(), &vnic).is_none() {
                self.vnic_subnet(&vnic, deadline)?;
            }
            Ok(())
        });
        if let Err(e) = r {
            log::info!("probe: could not cache this VNIC's subnet ({e}); start will ask");
        }
    }

    /// The reserved public IP, onto the private IP object the claim left (its OCID).
    fn complete(
        &mut self,
        _nic: &Nic,
        claimed: &Claimed,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let (Some(want), Some(pid)) = (self.shared.public_ip.clone(), claimed.handle()) else {
            return Ok(());
        };
        self.attach_public_ip(&want, pid, deadline)
    }

    /// Nothing to do: the private IP stays on our VNIC until the next start elsewhere moves
    /// it with PUT. Deleting it instead would detach a reserved public IP and leave it
    /// dangling; and a stop must not depend on the API answering.
    fn release(&mut self, _deadline: &Deadline) -> Result<(), CloudError> {
        log::info!(
            "oci: {} stays assigned to this VNIC until the next start elsewhere moves it",
            self.ip
        );
        Ok(())
    }

    /// The same decisions as claim and complete, from the same reads (the VIP's private
    /// IP in our subnet, the public IP's state), with nothing written.
    fn plan(&mut self, op: Op, nic: &Nic, deadline: &Deadline) -> Result<Vec<Planned>, CloudError> {
        self.load(deadline)?;
        let coll = ipv6::collection(self.ip);
        if op == Op::Release {
            return Ok(vec![Planned::note(format!(
                "nothing in the cloud: {} stays on this VNIC until the next start elsewhere \
                 moves it",
                self.ip
            ))]);
        }
        let vnic = self.our_vnic(nic)?;
        let claim = self.claim_change(&vnic, false, deadline)?;
        if op == Op::Claim {
            return Ok(match claim {
                Claim::Here(_) => Vec::new(),
                Claim::Create => vec![Planned::call(
                    format!("POST {coll}"),
                    format!("create private IP {} on VNIC {vnic} (this node's)", self.ip),
                )],
                Claim::Move { id, from } => vec![Planned::call(
                    format!("PUT {coll}/{id}"),
                    format!(
                        "move private IP {} from VNIC {} to VNIC {vnic} (this node's); a public \
                         IP assigned to it follows",
                        self.ip,
                        from.as_deref().unwrap_or("(none)")
                    ),
                )],
            });
        }
        let Some(want) = self.shared.public_ip.clone() else {
            return Ok(Vec::new());
        };
        // The private IP object keeps its OCID when it moves; a created one gets a new one.
        let pid = match claim {
            Claim::Here(id) | Claim::Move { id, .. } => Some(id),
            Claim::Create => None,
        };
        let (p, _) = self.public_ip(&want, deadline)?;
        Ok(match public_step(&p, &want, pid.as_deref())? {
            PublicStep::Done => Vec::new(),
            PublicStep::Wait => vec![Planned::note(format!(
                "public IP {} is {:?}: start waits for the outcome and assigns it again if it \
                 did not end ASSIGNED to {}",
                p.ip_address, p.lifecycle_state, self.ip
            ))],
            PublicStep::Assign => vec![Planned::call(
                format!("PUT publicIps/{}", p.id),
                format!(
                    "assign public IP {} to private IP {}, wait for ASSIGNED",
                    p.ip_address,
                    pid.as_deref().unwrap_or("(the one created above)")
                ),
            )],
        })
    }
}
