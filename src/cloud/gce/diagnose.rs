//! `cloudvip status` and `cloudvip diagnose` on GCE: who holds the alias and the external
//! address, and the checks metadata → credentials → permissions → NIC → subnet with the
//! fix for each failure. Read-only: the updateNetworkInterface permission is probed with a
//! deliberately stale fingerprint, which GCE refuses (412) only after its IAM check (403).

use std::net::IpAddr;

use serde_json::{json, Value};

use super::compute::{instance_ref, Api};
use super::metadata::Identity;
use super::{name_and_zone, nic_has, Gce};
use crate::cloud::inspect::{past_iam, Check, Inspect, Verdict, DIAGNOSE_METADATA, DIAGNOSE_STEP};
use crate::cloud::{format_mac, in_subnet, CloudError, Holding, Nic};
use crate::deadline::Deadline;
use crate::http::{encode, Method};

/// Never a real fingerprint (GCE's are 8 random bytes; this one is all zeros).
const PROBE_FINGERPRINT: &str = "AAAAAAAAAAA=";

/// What the earlier checks of a diagnose found, for the later ones.
#[derive(Default)]
pub(super) struct Found {
    id: Option<Identity>,
    /// Whose credentials, for the messages ("the instance's service account x@...").
    who: String,
    /// The account itself, or where to put one, for the fixes.
    sa: String,
    /// Our instance as the API shows it (read by the permissions check).
    me: Option<Result<Value, CloudError>>,
    /// Our NIC's index (the NIC check).
    idx: usize,
}

/// The permission a denial names: GCE writes `Required 'compute.x.y' permission`.
fn named_permission(msg: &str) -> Option<String> {
    let (_, rest) = msg.split_once("Required '")?;
    let (perm, _) = rest.split_once('\'')?;
    Some(perm.to_owned())
}

impl Inspect for Gce {
    fn holders(
        &mut self,
        _nic: Option<&Nic>,
        deadline: &Deadline,
    ) -> Result<Vec<Holding>, CloudError> {
        let id = self.with_identity(deadline)?;
        let api = Api::new(self);
        let mut rows = Vec::new();
        let alias = format!("alias {}", self.ip);
        for inst in api.candidates(id.region(), deadline)? {
            let (name, zone) = name_and_zone(&inst)?;
            for nic in inst["networkInterfaces"].as_array().into_iter().flatten() {
                if nic_has(nic, self.ip) {
                    rows.push(Holding::held(
                        alias.clone(),
                        format!("{name} {} ({zone})", nic["name"].as_str().unwrap_or("?")),
                        name == id.name && zone == id.zone,
                    ));
                }
            }
        }
        if rows.is_empty() {
            rows.push(Holding::nobody(alias, "no instance in the region has it"));
        }
        if let Some(want) = self.shared.public_ip.clone() {
            let addr = api.address(id.region(), &want, deadline)?;
            let nat = addr["address"].as_str().unwrap_or(&want).to_owned();
            let users: Vec<(String, String)> = addr["users"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(instance_ref)
                .collect();
            if users.is_empty() {
                rows.push(Holding::nobody(
                    format!("external {nat}"),
                    "reserved, not attached",
                ));
            }
            for (zone, name) in users {
                rows.push(Holding::held(
                    format!("external {nat}"),
                    format!("{name} ({zone})"),
                    zone == id.zone && name == id.name,
                ));
            }
        }
        Ok(rows)
    }

    fn probe(&mut self, check: Check, nic: Option<&Nic>, deadline: &Deadline) -> Verdict {
        match check {
            Check::Metadata => self.probe_metadata(deadline),
            Check::Credentials => self.probe_credentials(deadline),
            Check::Permissions => self.probe_permissions(nic, deadline),
            Check::Nic => self.probe_nic(nic, deadline),
            Check::Subnet => self.probe_subnet(deadline),
        }
    }
}

impl Gce {

    /// The metadata server: it answers in milliseconds, so a short wait is enough to call
    /// it down, and the checks after it are skipped, not starved.
    fn probe_metadata(&mut self, deadline: &Deadline) -> Verdict {
        match self.with_identity(&deadline.within(DIAGNOSE_METADATA)) {
            Ok(id) => {
                let v = Verdict::pass(format!(
                    "{} answers: instance {} in {} (project {}), {} NIC(s)",
                    self.md_base,
                    id.name,
                    id.zone,
                    id.project,
                    id.nics.len()
                ));
                self.found.id = Some(id);
                v
            }
            Err(e) => Verdict::fail(
                format!("the metadata server does not answer: {e}"),
                "run this on a GCE instance; make sure nothing (a firewall rule, \
                 an HTTP_PROXY) intercepts 169.254.169.254 (metadata.google.internal); \
                 set metadata_url only for an emulator",
            ),
        }
    }

    /// A token for the API, and whose it is (the fixes name it).
    fn probe_credentials(&mut self, deadline: &Deadline) -> Verdict {
        let Some(id) = self.found.id.take() else {
            return Verdict::fail("no instance identity", "run the metadata check first");
        };
        let step = deadline.within(DIAGNOSE_STEP);
        let account = match &self.shared.credentials {
            Some(_) => self.key_email(),
            None => self
                .md_get("instance/service-accounts/default/email", &step)
                .ok()
                .map(|r| r.text().trim().to_owned())
                .filter(|e| !e.is_empty()),
        };
        self.found.who = match (&self.shared.credentials, &account) {
            (Some(p), Some(a)) => format!("the service-account key {p} ({a})"),
            (Some(p), None) => format!("the service-account key {p}"),
            (None, Some(a)) => format!("the instance's service account {a}"),
            (None, None) => "the instance's service account".to_owned(),
        };
        self.found.sa = account
            .clone()
            .unwrap_or_else(|| format!("NAME@{}.iam.gserviceaccount.com", id.project));
        let v = match self.token(&step, false) {
            Err(e) => {
                let fix = match &self.shared.credentials {
                    Some(_) => "credentials= must name a JSON key of a service account \
                                (gcloud iam service-accounts keys create), readable by root, mode 0600"
                        .to_owned(),
                    None => format!(
                        "attach a service account with the cloud-platform scope: gcloud compute \
                         instances set-service-account {} --zone {} --service-account {} \
                         --scopes cloud-platform (the instance must be stopped), or set credentials=",
                        id.name, id.zone, self.found.sa
                    ),
                };
                Verdict::fail(format!("no API token from {}: {e}", self.found.who), fix)
            }
            Ok(_) => Verdict::pass(format!("{}: access token obtained", self.found.who)),
        };
        self.found.id = Some(id);
        v
    }

    /// Every call start makes, read ones for real, the mutation probed. Each probe has its
    /// own budget: one that hangs does not starve the others.
    fn probe_permissions(&mut self, nic: Option<&Nic>, deadline: &Deadline) -> Verdict {
        let Some(id) = self.found.id.take() else {
            return Verdict::fail("no instance identity", "run the metadata check first");
        };
        let (v, me) = self.permissions(&id, nic, deadline);
        self.found.me = Some(me);
        self.found.id = Some(id);
        v
    }

    fn permissions(
        &self,
        id: &Identity,
        nic: Option<&Nic>,
        deadline: &Deadline,
    ) -> (Verdict, Result<Value, CloudError>) {
        let who = &self.found.who;
        let api = Api::new(self);
        let mut missing: Vec<String> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        let mut checked: Vec<&'static str> = Vec::new();
        let mut note = |perm: &'static str, r: Result<(), CloudError>| {
            checked.push(perm.trim_start_matches("compute."));
            match r {
                Ok(()) => {}
                Err(e) => match e.kind() {
                    CloudError::Denied(m) => {
                        missing.push(named_permission(m).unwrap_or_else(|| perm.to_owned()))
                    }
                    _ => errors.push(format!("{perm}: {e}")),
                },
            }
        };
        let probe = || deadline.within(DIAGNOSE_STEP);
        let me = api.get_instance(&id.zone, &id.name, &probe());
        note(
            "compute.instances.get",
            me.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        note(
            "compute.instances.list",
            api.candidates(id.region(), &probe()).map(|_| ()),
        );
        // start waits for operations in flight on the instances it writes, and checks the
        // VIP against the subnet's ranges before it takes the VIP from its holder
        if let Ok(me) = &me {
            if let Some(link) = me["selfLink"].as_str() {
                note(
                    "compute.zoneOperations.list",
                    api.pending_on(&id.zone, link, &probe()).map(|_| ()),
                );
            }
            if let Some(url) = me["networkInterfaces"][0]["subnetwork"].as_str() {
                note(
                    "compute.subnetworks.get",
                    api.subnetwork(url, &probe()).map(|_| ()),
                );
            }
        }
        if let Ok(me) = &me {
            let idx = nic
                .and_then(|n| n.mac)
                .and_then(|m| id.nic_index(&m))
                .unwrap_or(0);
            let gnic = &me["networkInterfaces"][idx];
            let nic_name = gnic["name"].as_str().unwrap_or("nic0");
            let body = json!({ "fingerprint": PROBE_FINGERPRINT, "aliasIpRanges": gnic["aliasIpRanges"].clone() });
            let path = format!(
                "projects/{}/zones/{}/instances/{}/updateNetworkInterface?networkInterface={}",
                id.project,
                id.zone,
                id.name,
                encode(nic_name)
            );
            // 412 (stale fingerprint) means IAM let the call through; it changed nothing.
            let refused = past_iam(api.call(Method::Patch, &path, Some(&body), &probe()));
            note("compute.instances.updateNetworkInterface", refused);
        }
        if let Some(p) = self.shared.public_ip.clone() {
            note(
                "compute.addresses.get",
                api.address(id.region(), &p, &probe()).map(|_| ()),
            );
        }
        let verdict = if !missing.is_empty() {
            let mut all = vec![
                "compute.instances.get",
                "compute.instances.list",
                "compute.instances.updateNetworkInterface",
                "compute.zoneOperations.get",
                "compute.zoneOperations.list",
                "compute.subnetworks.get",
                "compute.subnetworks.use",
            ];
            if self.shared.public_ip.is_some() {
                all.extend([
                    "compute.addresses.get",
                    "compute.addresses.list",
                    "compute.addresses.use",
                    "compute.instances.addAccessConfig",
                    "compute.instances.deleteAccessConfig",
                    "compute.subnetworks.useExternalIp",
                    "compute.networks.useExternalIp",
                ]);
            }
            Verdict::fail(
                format!("{who} lacks {}", missing.join(", ")),
                format!(
                    "grant it a role with these permissions, e.g. a custom role: \
                     gcloud iam roles create cloudvip --project {p} --permissions {} ; \
                     gcloud projects add-iam-policy-binding {p} --member serviceAccount:{sa} \
                     --role projects/{p}/roles/cloudvip (see pcs-examples/gce-iam.sh)",
                    all.join(","),
                    p = id.project,
                    sa = self.found.sa
                ),
            )
        } else if !errors.is_empty() {
            Verdict::fail(
                format!("could not check: {}", errors.join("; ")),
                "retry; if it persists, check that the Compute API is enabled \
                 (gcloud services enable compute.googleapis.com) and reachable (proxy=, api_endpoint=)",
            )
        } else {
            Verdict::pass(format!(
                "{}: allowed (updateNetworkInterface probed with a stale fingerprint, \
                 nothing changed)",
                checked.join(", ")
            ))
        };
        (verdict, me)
    }

    /// The local interface's MAC must be one of this instance's NICs.
    fn probe_nic(&mut self, nic: Option<&Nic>, _deadline: &Deadline) -> Verdict {
        let (Some(id), Some(n)) = (&self.found.id, nic) else {
            return Verdict::fail("no instance identity or local NIC", "run the earlier checks");
        };
        match self.our_nic(id, n) {
            Ok(i) => {
                self.found.idx = i;
                Verdict::pass(format!(
                    "{} ({}) is nic{i} of {} ({})",
                    n.name,
                    n.mac.map(|m| format_mac(&m)).unwrap_or_default(),
                    id.name,
                    id.nics[i].ip
                ))
            }
            Err(e) => {
                let theirs: Vec<String> = id
                    .nics
                    .iter()
                    .enumerate()
                    .map(|(i, g)| format!("nic{i} MAC {} ({})", g.mac, g.ip))
                    .collect();
                Verdict::fail(
                    e.to_string(),
                    format!(
                        "set nic= to the local interface whose MAC is one of: {} \
                         (compare with `ip -br link`)",
                        theirs.join(", ")
                    ),
                )
            }
        }
    }

    /// The check start makes before it moves anything (the VIP in the subnet's primary
    /// range, or in the secondary range alias_range_name names), on the subnetwork as the
    /// API shows it; from the metadata server's netmask when the API cannot be read.
    fn probe_subnet(&mut self, deadline: &Deadline) -> Verdict {
        let Some(id) = &self.found.id else {
            return Verdict::fail("no instance identity", "run the metadata check first");
        };
        let idx = self.found.idx;
        let api = Api::new(self);
        let sub = self
            .found
            .me
            .as_ref()
            .and_then(|m| m.as_ref().ok())
            .and_then(|m| m["networkInterfaces"][idx]["subnetwork"].as_str())
            .map(|url| api.subnetwork(url, &deadline.within(DIAGNOSE_STEP)));
        if let Some(Ok(sub)) = sub {
            return match self.check_range(&sub) {
                Ok(range) => Verdict::pass(format!("{} lies in {range}", self.ip)),
                Err(e) => Verdict::fail(
                    e.to_string(),
                    "choose a VIP inside the subnet's primary range, or set alias_range_name to \
                     the secondary range that contains it (gcloud compute networks subnets \
                     describe shows secondaryIpRanges)",
                ),
            };
        }
        let g = &id.nics[idx];
        let net = g.ip.parse::<std::net::Ipv4Addr>().ok();
        let prefix = g
            .subnetmask
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .map(|m| u32::from(m).count_ones() as u8);
        // The subnet's network address, from the NIC's address and netmask.
        let net = net.zip(prefix).map(|(a, len)| {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(std::net::Ipv4Addr::from(u32::from(a) & mask))
        });
        match (&self.opts.alias_range_name, net, prefix) {
            (Some(r), _, _) => Verdict::pass(
                format!("alias_range_name={r}: not checked (the subnetwork cannot be read; start checks it before it moves anything)"),
            ),
            (None, Some(net), Some(len)) if in_subnet(self.ip, net, len) => Verdict::pass(
                format!("{} is inside nic{idx}'s subnet ({net}/{len})", self.ip),
            ),
            (None, Some(net), Some(len)) => Verdict::fail(
                format!("{} is outside nic{idx}'s subnet ({net}/{len})", self.ip),
                "choose a VIP inside the subnet's primary range, or set alias_range_name to \
                 the secondary range that contains it",
            ),
            _ => Verdict::pass("the metadata server gives no netmask for this NIC: not checked"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn permission_names() {
        assert_eq!(
            super::named_permission(
                "Required 'compute.instances.updateNetworkInterface' permission for 'x'"
            )
            .as_deref(),
            Some("compute.instances.updateNetworkInterface")
        );
        assert_eq!(super::named_permission("forbidden"), None);
    }
}
