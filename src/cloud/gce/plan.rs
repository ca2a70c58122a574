//! What a GCE start or stop is going to change, decided from reads alone. `claim`,
//! `complete` and `release` carry these changes out; `cloudvip start --dry-run`
//! prints them instead. One decision for both, so a dry run shows what the action would
//! really do, with the same validation first.

use serde_json::{json, Value};

use super::compute::{aliases_of, field, instance_ref, nics, Api};
use super::metadata::Identity;
use super::{access_configs, name_and_zone, transient, Gce};
use crate::cloud::{CloudError, Planned};
use crate::deadline::Deadline;
use crate::http::encode;

use super::aliases::holds;

/// One write, in the order the action makes them.
#[derive(Clone, Debug)]
pub(super) enum Change {
    /// Take the alias from another holder's NIC.
    RemoveAlias {
        zone: String,
        instance: String,
        nic: String,
    },
    /// Put the alias on our NIC.
    AddAlias { nic: String },
    /// Our NIC gives the alias up (stop).
    ReleaseAlias { nic: String },
    /// Detach public_ip from the instance that has it.
    Detach {
        zone: String,
        instance: String,
        nic: String,
        config: String,
    },
    /// Delete our NIC's other access config (an ephemeral IP): GCE allows one per NIC.
    MakeRoom {
        nic: String,
        config: String,
        ip: String,
    },
    /// Attach public_ip as our NIC's access config.
    Attach { nic: String, config: Value },
    /// Give the instance public_ip left a new ephemeral external IP (restore_ephemeral_ip),
    /// after public_ip works here.
    Restore {
        zone: String,
        instance: String,
        nic: String,
    },
}

/// What the checks before the first change (`validate`, once per action) found.
#[derive(Default)]
pub(super) struct Checked {
    pub done: bool,
    /// public_ip's address resource, when one is configured.
    pub address: Option<Value>,
}

impl Gce {
    /// The alias changes of a start, with the candidates and our instance read for them:
    /// none when our NIC already has the alias; else, after the checks that must pass
    /// before anything changes (`validate`, once per action), the removal from every other
    /// holder and the addition here.
    pub(super) fn alias_plan(
        &self,
        api: &Api,
        id: &Identity,
        idx: usize,
        checked: &mut Checked,
        deadline: &Deadline,
    ) -> Result<(Vec<Change>, Vec<Value>, Value), CloudError> {
        let me = self.settled_self(api, id, None, deadline)?;
        let gnic = self.api_nic(&me, id, idx)?;
        let nic_name = field(gnic, "name", &id.name)?;
        if holds(&aliases_of(gnic, &id.name)?, self.ip) {
            log::info!("{} is already an alias of {} {nic_name}", self.ip, id.name);
            return Ok((Vec::new(), Vec::new(), me));
        }
        let peers = api.candidates(id.region(), deadline)?;
        if !checked.done {
            checked.address = self.validate(api, id, &me, gnic, &peers, deadline)?;
            checked.done = true;
        }
        let mut out = Vec::new();
        for inst in &peers {
            let (name, zone) = name_and_zone(inst)?;
            if name == id.name && zone == id.zone {
                continue;
            }
            for n in nics(inst, name)? {
                if holds(&aliases_of(n, name)?, self.ip) {
                    out.push(Change::RemoveAlias {
                        zone: zone.to_owned(),
                        instance: name.to_owned(),
                        nic: field(n, "name", name)?.to_owned(),
                    });
                }
            }
        }
        out.push(Change::AddAlias {
            nic: nic_name.to_owned(),
        });
        Ok((out, peers, me))
    }

    /// The public IP changes of a start, from the address's users and our NIC as the API
    /// shows them: detach it from whoever has it, make room on our NIC, attach it; then,
    /// with restore_ephemeral_ip, a new ephemeral IP for each instance it left.
    pub(super) fn public_changes(
        &self,
        api: &Api,
        id: &Identity,
        idx: usize,
        want: &str,
        deadline: &Deadline,
    ) -> Result<Vec<Change>, CloudError> {
        let addr = api.address(id.region(), want, deadline)?;
        let nat_ip = field(&addr, "address", want)?.to_owned();
        let users = match addr.get("users") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(a)) => a.as_slice(),
            Some(_) => return Err(transient(format!("address {want}: users is not a list"))),
        };
        let mut out = Vec::new();
        for user in users.iter().filter_map(Value::as_str) {
            let Some((zone, name)) = instance_ref(user) else {
                continue;
            };
            if zone == id.zone && name == id.name {
                continue;
            }
            let inst = api.get_instance(&zone, &name, deadline)?;
            for nic in nics(&inst, &name)? {
                for ac in access_configs(nic, &name)? {
                    if ac["natIP"].as_str() == Some(&nat_ip) {
                        out.push(Change::Detach {
                            zone: zone.clone(),
                            instance: name.clone(),
                            nic: field(nic, "name", &name)?.to_owned(),
                            config: field(ac, "name", &name)?.to_owned(),
                        });
                    }
                }
            }
        }
        let left: Vec<Change> = out
            .iter()
            .filter(|_| self.opts.restore_ephemeral_ip)
            .filter_map(|c| match c {
                Change::Detach {
                    zone,
                    instance,
                    nic,
                    ..
                } => Some(Change::Restore {
                    zone: zone.clone(),
                    instance: instance.clone(),
                    nic: nic.clone(),
                }),
                _ => None,
            })
            .collect();
        let me = self.settled_self(api, id, None, deadline)?;
        out.extend(self.room_and_attach(id, idx, &addr, &nat_ip, &me)?);
        out.extend(left);
        Ok(out)
    }

    /// The public IP changes on our NIC, from the address and our instance as read: none
    /// when it has the address already; else make room (one access config per NIC) and
    /// attach it.
    pub(super) fn room_and_attach(
        &self,
        id: &Identity,
        idx: usize,
        addr: &Value,
        nat_ip: &str,
        me: &Value,
    ) -> Result<Vec<Change>, CloudError> {
        let mut out = Vec::new();
        let nic = self.api_nic(me, id, idx)?;
        let nic_name = field(nic, "name", &id.name)?.to_owned();
        let configs = access_configs(nic, &id.name)?;
        if !configs.iter().any(|ac| ac["natIP"].as_str() == Some(nat_ip)) {
            for ac in configs {
                out.push(Change::MakeRoom {
                    nic: nic_name.clone(),
                    config: field(ac, "name", &id.name)?.to_owned(),
                    ip: ac["natIP"].as_str().unwrap_or("-").to_owned(),
                });
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
            out.push(Change::Attach {
                nic: nic_name,
                config,
            });
        }
        Ok(out)
    }

    /// The release of a stop: our NICs that hold the alias, as the API shows them (a
    /// settled read when none shows it: a killed start's add may still be queued).
    /// `probe` bounds the first exchange, `budget` the rest.
    pub(super) fn release_changes(
        &self,
        api: &Api,
        id: &Identity,
        probe: &Deadline,
        budget: &Deadline,
    ) -> Result<Vec<Change>, CloudError> {
        let holding = |inst: &Value| -> Result<Vec<Change>, CloudError> {
            let mut out = Vec::new();
            for n in nics(inst, &id.name)? {
                if holds(&aliases_of(n, &id.name)?, self.ip) {
                    out.push(Change::ReleaseAlias {
                        nic: field(n, "name", &id.name)?.to_owned(),
                    });
                }
            }
            Ok(out)
        };
        let first = self.get_self(api, id, probe)?;
        let ours = holding(&first)?;
        if !ours.is_empty() {
            return Ok(ours);
        }
        holding(&self.settled_self(api, id, Some(first), budget)?)
    }

    /// The new ephemeral external IP of restore_ephemeral_ip, on a NIC that has no access
    /// config (one may have been added meanwhile: then nothing is done).
    pub(super) fn restore_ephemeral(
        &self,
        api: &Api,
        zone: &str,
        instance: &str,
        nic: &str,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let inst = api.get_instance(zone, instance, deadline)?;
        let Some(n) = nics(&inst, instance)?
            .iter()
            .find(|n| n["name"].as_str() == Some(nic))
        else {
            return Ok(());
        };
        if !access_configs(n, instance)?.is_empty() {
            log::info!("{instance} {nic} has an external IP again: not adding one");
            return Ok(());
        }
        let config = json!({
            "kind": "compute#accessConfig",
            "type": "ONE_TO_ONE_NAT",
            "name": self.opts.access_config_name,
        });
        api.add_access_config(zone, instance, nic, &config, deadline)?;
        log::info!("gave {instance} ({zone}) {nic} a new ephemeral external IP");
        Ok(())
    }

    /// A change as a dry run prints it: the API call and what it does.
    pub(super) fn describe(&self, id: &Identity, c: &Change) -> Planned {
        let p = &self.project;
        let inst =
            |zone: &str, instance: &str| format!("projects/{p}/zones/{zone}/instances/{instance}");
        let patch = |zone: &str, instance: &str, nic: &str| {
            format!(
                "PATCH {}/updateNetworkInterface?networkInterface={}",
                inst(zone, instance),
                encode(nic)
            )
        };
        let delete = |zone: &str, instance: &str, nic: &str, config: &str| {
            format!(
                "POST {}/deleteAccessConfig?accessConfig={}&networkInterface={}",
                inst(zone, instance),
                encode(config),
                encode(nic)
            )
        };
        let add = |zone: &str, instance: &str, nic: &str| {
            format!(
                "POST {}/addAccessConfig?networkInterface={}",
                inst(zone, instance),
                encode(nic)
            )
        };
        let alias = format!("{}/32", self.ip);
        let (call, what) = match c {
            Change::RemoveAlias {
                zone,
                instance,
                nic,
            } => (
                patch(zone, instance, nic),
                format!("remove alias {alias} from {instance} {nic} ({zone}), wait for DONE"),
            ),
            Change::AddAlias { nic } => (
                patch(&id.zone, &id.name, nic),
                match &self.opts.alias_range_name {
                    Some(r) => format!(
                        "add alias {alias} (range {r}) to {} {nic}, wait for DONE",
                        id.name
                    ),
                    None => format!("add alias {alias} to {} {nic}, wait for DONE", id.name),
                },
            ),
            Change::ReleaseAlias { nic } => (
                patch(&id.zone, &id.name, nic),
                format!("remove alias {alias} from {} {nic}, wait for DONE", id.name),
            ),
            Change::Detach {
                zone,
                instance,
                nic,
                config,
            } => (
                delete(zone, instance, nic, config),
                format!("detach the external IP ({config:?}) from {instance} {nic} ({zone})"),
            ),
            Change::MakeRoom { nic, config, ip } => (
                delete(&id.zone, &id.name, nic, config),
                format!(
                    "remove {} {nic}'s access config {config:?} ({ip}): one per NIC",
                    id.name
                ),
            ),
            Change::Attach { nic, config } => (
                add(&id.zone, &id.name, nic),
                format!(
                    "attach {} to {} {nic} as {:?}",
                    config["natIP"].as_str().unwrap_or("?"),
                    id.name,
                    self.opts.access_config_name
                ),
            ),
            Change::Restore {
                zone,
                instance,
                nic,
            } => (
                add(zone, instance, nic),
                format!("give {instance} {nic} a new ephemeral external IP (restore_ephemeral_ip)"),
            ),
        };
        Planned::call(call, what)
    }
}
