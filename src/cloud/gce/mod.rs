//! Google Compute Engine: the VIP is an alias IP range of this instance's NIC, and an
//! optional static external IP is that NIC's access config. The flow is gce-api.md §7:
//! identity from the metadata server, holders from one list call, remove the alias there
//! (fingerprint + wait), add it here (fingerprint + wait), then the external address.
//! A stale fingerprint (412) or an alias not yet released (IP_IN_USE_BY_ANOTHER_RESOURCE)
//! re-reads and retries; everything stays inside the action's deadline.

pub mod auth;
mod compute;
mod diagnose;
pub mod metadata;

use std::net::IpAddr;

use serde_json::{json, Value};

use super::{settle, Claimed, Cloud, CloudError, Nic};
use crate::deadline::Deadline;
use crate::http::{Http, HttpConfig};
use crate::params::Params;
use compute::{instance_ref, Api};
use metadata::Identity;

pub const DEFAULT_API: &str = "https://compute.googleapis.com/compute/v1/";

pub struct Gce {
    http: Http,
    ip: IpAddr,
    opts: crate::params::CloudOpts,
    api_base: String,
    md_base: String,
    rsctmp: Option<String>,
    /// Filled from the metadata server before any API call.
    project: String,
}

fn transient(msg: String) -> CloudError {
    CloudError::Transient(msg)
}

/// Is this alias entry (`10.0.0.5/32`, or a bare `10.0.0.5`, both seen in responses) the VIP?
pub fn alias_is(range: &str, ip: IpAddr) -> bool {
    let (addr, len) = match range.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().ok()),
        None => (range, None),
    };
    let host = if ip.is_ipv4() { 32 } else { 128 };
    addr.parse::<IpAddr>().is_ok_and(|a| a == ip) && len.is_none_or(|l| l == host)
}

fn nic_aliases(nic: &Value) -> Vec<Value> {
    nic["aliasIpRanges"].as_array().cloned().unwrap_or_default()
}

/// An instance's name and zone (the last part of its zone URL).
fn name_and_zone(inst: &Value) -> (&str, &str) {
    let name = inst["name"].as_str().unwrap_or_default();
    let zone = inst["zone"]
        .as_str()
        .and_then(|z| z.rsplit('/').next())
        .unwrap_or_default();
    (name, zone)
}

fn nic_has(nic: &Value, ip: IpAddr) -> bool {
    nic_aliases(nic)
        .iter()
        .any(|a| a["ipCidrRange"].as_str().is_some_and(|r| alias_is(r, ip)))
}

impl Gce {
    pub fn new(params: &Params, rsctmp: Option<String>) -> anyhow::Result<Self> {
        let o = &params.cloud_opts;
        let http = Http::new(&HttpConfig {
            proxy: o.proxy.clone(),
            ca_bundle: o.ca_bundle.clone(),
        })?;
        Ok(Gce {
            http,
            ip: params.ip,
            opts: o.clone(),
            api_base: o
                .api_endpoint
                .clone()
                .unwrap_or_else(|| DEFAULT_API.to_owned()),
            md_base: o.metadata_url.clone().unwrap_or_else(metadata::base_url),
            rsctmp,
            project: String::new(),
        })
    }

    fn with_identity(&mut self, deadline: &Deadline) -> Result<Identity, CloudError> {
        let id = self.identity(deadline)?;
        self.project = id.project.clone();
        Ok(id)
    }

    fn our_nic(&self, id: &Identity, nic: &Nic) -> Result<usize, CloudError> {
        let mac = nic
            .mac
            .ok_or_else(|| CloudError::NotFound(format!("{} has no MAC address", nic.name)))?;
        id.nic_index(&mac).ok_or_else(|| {
            CloudError::NotFound(format!(
                "no GCE network interface of {} has the MAC {} of {}",
                id.name,
                crate::cloud::format_mac(&mac),
                nic.name
            ))
        })
    }

    fn alias_entry(&self) -> Value {
        let host = if self.ip.is_ipv4() { 32 } else { 128 };
        let mut e = json!({ "ipCidrRange": format!("{}/{host}", self.ip) });
        if let Some(r) = &self.opts.alias_range_name {
            e["subnetworkRangeName"] = json!(r);
        }
        e
    }

    /// The NIC's alias list without the VIP, every other entry kept exactly as read.
    fn without_vip(&self, nic: &Value) -> Vec<Value> {
        nic_aliases(nic)
            .into_iter()
            .filter(|a| {
                !a["ipCidrRange"]
                    .as_str()
                    .is_some_and(|r| alias_is(r, self.ip))
            })
            .collect()
    }

    /// Remove the VIP from every other instance that holds it, then add it to our NIC.
    /// A conflict (stale fingerprint, alias not yet released) or a failed operation
    /// re-reads everything and tries again while the deadline allows.
    fn move_alias(
        &self,
        api: &Api,
        id: &Identity,
        idx: usize,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        settle("alias move", deadline, || {
            self.move_alias_once(api, id, idx, deadline)
        })
    }

    fn move_alias_once(
        &self,
        api: &Api,
        id: &Identity,
        idx: usize,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        for inst in api.candidates(id.region(), deadline)? {
            let (name, zone) = name_and_zone(&inst);
            if name == id.name && zone == id.zone {
                continue;
            }
            for nic in inst["networkInterfaces"].as_array().into_iter().flatten() {
                if !nic_has(nic, self.ip) {
                    continue;
                }
                let keep = self.without_vip(nic);
                log::info!(
                    "removing {} from {name} ({zone}) {}",
                    self.ip,
                    nic["name"].as_str().unwrap_or("?")
                );
                api.set_aliases(zone, name, nic, keep, deadline)?;
            }
        }
        let me = api.get_instance(&id.zone, &id.name, deadline)?;
        let nic = &me["networkInterfaces"][idx];
        if nic.is_null() {
            return Err(CloudError::NotFound(format!(
                "{} has no network interface {idx} in the API",
                id.name
            )));
        }
        if nic_has(nic, self.ip) {
            return Ok(());
        }
        let mut aliases = nic_aliases(nic);
        aliases.push(self.alias_entry());
        log::info!(
            "adding {} to {} {}",
            self.ip,
            id.name,
            nic["name"].as_str().unwrap_or("?")
        );
        api.set_aliases(&id.zone, &id.name, nic, aliases, deadline)
    }

    /// Attach the static external address to our NIC, detaching it from its holder.
    fn move_public_ip(
        &self,
        api: &Api,
        id: &Identity,
        idx: usize,
        want: &str,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        settle("public IP move", deadline, || {
            self.move_public_ip_once(api, id, idx, want, deadline)
        })
    }

    fn move_public_ip_once(
        &self,
        api: &Api,
        id: &Identity,
        idx: usize,
        want: &str,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let addr = api.address(id.region(), want, deadline)?;
        let nat_ip = addr["address"].as_str().unwrap_or_default().to_owned();
        for user in addr["users"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let Some((zone, name)) = instance_ref(user) else {
                continue;
            };
            if zone == id.zone && name == id.name {
                continue;
            }
            let inst = api.get_instance(&zone, &name, deadline)?;
            for nic in inst["networkInterfaces"].as_array().into_iter().flatten() {
                for ac in nic["accessConfigs"].as_array().into_iter().flatten() {
                    if ac["natIP"].as_str() == Some(&nat_ip) {
                        let (nic_name, ac_name) = (
                            nic["name"].as_str().unwrap_or("nic0"),
                            ac["name"].as_str().unwrap_or_default(),
                        );
                        log::info!("detaching {nat_ip} from {name} ({zone}) {nic_name}");
                        api.delete_access_config(&zone, &name, nic_name, ac_name, deadline)?;
                    }
                }
            }
        }
        let me = api.get_instance(&id.zone, &id.name, deadline)?;
        let nic = &me["networkInterfaces"][idx];
        let nic_name = nic["name"].as_str().unwrap_or("nic0").to_owned();
        for ac in nic["accessConfigs"].as_array().into_iter().flatten() {
            if ac["natIP"].as_str() == Some(&nat_ip) {
                return Ok(());
            }
            // One access config per NIC: an ephemeral IP has to make room.
            let ac_name = ac["name"].as_str().unwrap_or_default();
            log::info!(
                "removing access config {ac_name:?} ({}) from {nic_name} to make room for {nat_ip}",
                ac["natIP"].as_str().unwrap_or("-")
            );
            api.delete_access_config(&id.zone, &id.name, &nic_name, ac_name, deadline)?;
        }
        let mut config = json!({
            "kind": "compute#accessConfig",
            "type": "ONE_TO_ONE_NAT",
            "name": self.opts.access_config_name,
            "natIP": nat_ip,
        });
        if let Some(tier) = addr["networkTier"].as_str() {
            config["networkTier"] = json!(tier);
        }
        log::info!("attaching {nat_ip} to {} {nic_name}", id.name);
        api.add_access_config(&id.zone, &id.name, &nic_name, &config, deadline)
    }
}

impl Cloud for Gce {
    fn name(&self) -> &'static str {
        "gce"
    }

    fn check(&mut self, nic: &Nic, depth: u32, deadline: &Deadline) -> Result<bool, CloudError> {
        let id = self.with_identity(deadline)?;
        let idx = self.our_nic(&id, nic)?;
        let mut in_metadata = id.nics_with(self.ip).contains(&idx);
        // A public_ip written as an address can be checked for free too.
        if let Some(p) = self
            .opts
            .public_ip
            .as_deref()
            .filter(|p| p.parse::<std::net::Ipv4Addr>().is_ok())
        {
            if !id.nics[idx]
                .access_configs
                .iter()
                .any(|a| a.external_ip == p)
            {
                log::warn!("the external address {p} is not on {} nic{idx}", id.name);
                in_metadata = false;
            }
        }
        if depth < 10 {
            return Ok(in_metadata);
        }
        let api = Api::new(self);
        let me = api.get_instance(&id.zone, &id.name, deadline)?;
        let in_api = nic_has(&me["networkInterfaces"][idx], self.ip);
        if in_api != in_metadata {
            log::warn!("the metadata server and the Compute API disagree about {} (metadata: {in_metadata}, API: {in_api})", self.ip);
        }
        Ok(in_api)
    }

    fn claim(&mut self, nic: &Nic, deadline: &Deadline) -> Result<Claimed, CloudError> {
        let id = self.with_identity(deadline)?;
        let idx = self.our_nic(&id, nic)?;
        if id.nics_with(self.ip).contains(&idx) {
            log::info!("{} is already an alias of {} nic{idx}", self.ip, id.name);
        } else {
            self.move_alias(&Api::new(self), &id, idx, deadline)?;
        }
        Ok(Claimed(()))
    }

    fn claim_extras(
        &mut self,
        nic: &Nic,
        _proof: &Claimed,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let Some(want) = self.opts.public_ip.clone() else {
            return Ok(());
        };
        let id = self.with_identity(deadline)?;
        let idx = self.our_nic(&id, nic)?;
        // The metadata server shows our external IP: when public_ip is given as an
        // address and is already ours, this costs no API call.
        if id.nics[idx]
            .access_configs
            .iter()
            .any(|a| a.external_ip == want)
        {
            return Ok(());
        }
        self.move_public_ip(&Api::new(self), &id, idx, &want, deadline)
    }

    fn release(&mut self, deadline: &Deadline) -> Result<(), CloudError> {
        let id = self.with_identity(deadline)?;
        let ours = id.nics_with(self.ip);
        if ours.is_empty() {
            return Ok(());
        }
        let api = Api::new(self);
        settle("release", deadline, || {
            let me = api.get_instance(&id.zone, &id.name, deadline)?;
            ours.iter().try_for_each(|idx| {
                let nic = &me["networkInterfaces"][*idx];
                if !nic_has(nic, self.ip) {
                    return Ok(());
                }
                log::info!("removing {} from {} nic{idx}", self.ip, id.name);
                api.set_aliases(&id.zone, &id.name, nic, self.without_vip(nic), deadline)
            })
        })
    }

    fn holders(
        &mut self,
        _nic: Option<&Nic>,
        deadline: &Deadline,
    ) -> Result<Vec<super::Holding>, CloudError> {
        self.holder_rows(deadline)
    }

    fn diagnose(&mut self, nic: Option<&Nic>, deadline: &Deadline) -> Vec<super::Step> {
        self.diagnose_steps(nic, deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_forms() {
        let ip: IpAddr = "10.0.0.250".parse().unwrap();
        assert!(alias_is("10.0.0.250/32", ip));
        assert!(alias_is("10.0.0.250", ip));
        assert!(!alias_is("10.0.0.0/24", ip));
        assert!(!alias_is("10.0.0.25/32", ip));
        let v6: IpAddr = "fd00::5".parse().unwrap();
        assert!(alias_is("fd00::5/128", v6));
    }
}
