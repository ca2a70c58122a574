//! What an AWS start or stop is going to change, decided from reads alone, per mode.
//! `flow.rs` carries these changes out; a dry run prints them instead (`Aws::plan`). One
//! decision for both, as in `gce/plan.rs`, so a dry run shows the writes the action then
//! makes, after the same checks.

use std::net::Ipv4Addr;

use super::config::{ElasticIp, Mode};
use super::flow::{reread_not_found, Aws};
use super::model::{Address, Eni, RouteState, Target};
use super::query::{self, Eip};
use crate::cloud::{CloudError, Planned};
use crate::deadline::Deadline;

/// One write, in the order the action makes it (`Follows` is a decision without a call).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// AssignPrivateIpAddresses AllowReassignment=true to our ENI, from the ENI (and
    /// instance) that holds it, if one does.
    Assign {
        eni: String,
        from_eni: Option<String>,
        from_instance: Option<String>,
    },
    /// AssociateAddress AllowReassociation=true of the Elastic IP to `private_ip` of `eni`.
    Associate {
        allocation: String,
        public: Ipv4Addr,
        eni: String,
        private_ip: Ipv4Addr,
        from: Option<String>,
    },
    /// The Elastic IP is on the VIP where it is now: the assignment moves it too.
    Follows { public: Ipv4Addr, from: String },
    /// ReplaceRoute of the VIP's /32 in `table` to our ENI.
    Replace {
        table: String,
        eni: String,
        from: String,
    },
    /// DisassociateAddress of our association (stop).
    Disassociate {
        association: String,
        public: Ipv4Addr,
    },
    /// UnassignPrivateIpAddresses of the VIP from our ENI (stop).
    Unassign { eni: String },
}

/// "eni-… (i-…)": who holds something, for logs and plans.
pub(super) fn holder(eni: Option<&str>, instance: Option<&str>) -> String {
    match (eni, instance) {
        (Some(e), Some(i)) => format!("{e} ({i})"),
        (Some(e), None) => e.to_owned(),
        (None, Some(i)) => i.to_owned(),
        (None, None) => "something outside this account's ENIs".to_owned(),
    }
}

/// A route's target as status and plans name it.
pub(super) fn route_target(t: &Target) -> String {
    match t {
        Target::Eni { eni, instance } => holder(Some(eni), instance.as_deref()),
        Target::Instance(i) => i.clone(),
        Target::Gateway(g) => g.clone(),
        Target::Other(o) => o.clone(),
    }
}

impl Aws {
    /// The ENIs that hold the VIP, in `subnet` when given: an address belongs to one ENI
    /// per subnet; the same address elsewhere in the account (another VPC) is not ours to
    /// move.
    pub(super) fn holders_in(
        &mut self,
        subnet: Option<&str>,
        deadline: &Deadline,
    ) -> Result<Vec<Eni>, CloudError> {
        Ok(self
            .ec2
            .enis_holding(self.cfg.ip, deadline)?
            .into_iter()
            .filter(|e| subnet.is_none_or(|s| e.subnet_id == s))
            .collect())
    }

    /// The secondary IP's change of a start: none when EC2 and IMDS both show the VIP on
    /// our ENI; else an assignment, taking it from whichever ENI of our subnet holds it.
    /// Refused before any change: the VIP is some ENI's primary address.
    pub(super) fn ip_changes(&mut self, deadline: &Deadline) -> Result<Vec<Change>, CloudError> {
        let (eni, subnet, mac) = {
            let me = self.me()?;
            (
                me.eni.eni_id.clone(),
                me.eni.subnet_id.clone(),
                me.eni.mac.clone(),
            )
        };
        let ip = self.cfg.ip;
        let holders = self.holders_in(Some(&subnet), deadline)?;
        if let Some(p) = holders.iter().find(|e| e.primary_ip() == Some(ip)) {
            return Err(CloudError::Invalid(format!(
                "ip={ip} is the primary private IP of {}: only a secondary private IP moves",
                holder(Some(&p.id), p.instance_id.as_deref())
            )));
        }
        let in_api = holders.iter().any(|e| e.id == eni);
        let in_imds = self
            .ec2
            .imds
            .local_ipv4s(&self.ec2.http, &mac, deadline)?
            .contains(&ip);
        if in_api && in_imds && !self.just_released {
            log::info!("{ip} is already a secondary private IP of {eni}");
            return Ok(Vec::new());
        }
        let other = holders.iter().find(|e| e.id != eni);
        Ok(vec![Change::Assign {
            eni,
            from_eni: other.map(|e| e.id.clone()),
            from_instance: other.and_then(|e| e.instance_id.clone()),
        }])
    }

    /// The Elastic IP `want` as EC2 describes it, checked against the configuration.
    pub(super) fn address(
        &mut self,
        want: &ElasticIp,
        deadline: &Deadline,
    ) -> Result<Address, CloudError> {
        let q = want.query();
        let a = reread_not_found(deadline, || self.ec2.describe_address(&q, deadline))?;
        if a.public_ip != want.public_ip {
            return Err(CloudError::Invalid(format!(
                "allocation_id {} is the Elastic IP {}, not public_ip={}",
                a.allocation_id, a.public_ip, want.public_ip
            )));
        }
        Ok(a)
    }

    /// The Elastic IP's change of a start, for `target` (the VIP, or our ENI's primary
    /// address in eip mode): none when IMDS shows it mapped there already (the assignment
    /// before may have brought it), or EC2 does; `Follows` when the assignment planned
    /// from `moving_from` carries it; else an association, from wherever it is.
    pub(super) fn eip_changes(
        &mut self,
        want: &ElasticIp,
        target: Ipv4Addr,
        moving_from: Option<&str>,
        deadline: &Deadline,
    ) -> Result<Vec<Change>, CloudError> {
        let (eni, mac) = {
            let me = self.me()?;
            (me.eni.eni_id.clone(), me.eni.mac.clone())
        };
        let shown = self
            .ec2
            .imds
            .eip_target(&self.ec2.http, &mac, want.public_ip, deadline)?;
        if shown == Some(target) && moving_from.is_none() && !self.just_released {
            log::info!("{} is already mapped to {target} of {eni}", want.public_ip);
            return Ok(Vec::new());
        }
        let a = self.address(want, deadline)?;
        if a.held_by(&eni, target) && moving_from.is_none() && !self.just_released {
            log::info!("{} is associated with {target} of {eni}", want.public_ip);
            return Ok(Vec::new());
        }
        let now = a.association.as_ref();
        if let (Some(from), Some(s)) = (moving_from, now) {
            if s.private_ip == Some(target) && s.eni.as_deref() == Some(from) {
                return Ok(vec![Change::Follows {
                    public: want.public_ip,
                    from: holder(Some(from), s.instance_id.as_deref()),
                }]);
            }
        }
        Ok(vec![Change::Associate {
            allocation: a.allocation_id.clone(),
            public: a.public_ip,
            eni,
            private_ip: target,
            from: now.map(|s| {
                let who = holder(s.eni.as_deref(), s.instance_id.as_deref());
                match s.private_ip {
                    Some(p) => format!("{p} of {who}"),
                    None => who,
                }
            }),
        }])
    }

    /// The route changes of a start: a ReplaceRoute in each table whose /32 for the VIP
    /// does not already lead, active, to our ENI. Refused before any change: a table of
    /// another VPC, a table without that route (aws-vpc-move-ip never creates one, and
    /// EC2's ReplaceRoute "must match the CIDR of an existing route in the table",
    /// research/aws-azure.md §A2.6: it is made once, when the cluster is set up).
    pub(super) fn route_changes(&mut self, deadline: &Deadline) -> Result<Vec<Change>, CloudError> {
        let (eni, vpc) = {
            let me = self.me()?;
            (me.eni.eni_id.clone(), me.eni.vpc_id.clone())
        };
        let dest = self.cfg.destination();
        let ids: Vec<&str> = self.cfg.route_tables.iter().map(String::as_str).collect();
        let tables = reread_not_found(deadline, || self.ec2.describe_route_tables(&ids, deadline))?;
        let mut out = Vec::new();
        for id in &self.cfg.route_tables {
            let t = tables.iter().find(|t| &t.id == id).ok_or_else(|| {
                CloudError::NotFound(format!(
                    "ec2:DescribeRouteTables: no route table {id} in the answer"
                ))
            })?;
            if t.vpc_id != vpc {
                return Err(CloudError::Invalid(format!(
                    "route table {id} is in {}, not in this instance's {vpc}",
                    t.vpc_id
                )));
            }
            let r = t.route(&dest).ok_or_else(|| {
                CloudError::Invalid(format!(
                    "route table {id} has no route for {dest}; create it once: aws ec2 \
                     create-route --route-table-id {id} --destination-cidr-block {dest} \
                     --network-interface-id {eni}"
                ))
            })?;
            let ours = matches!(&r.target, Target::Eni { eni: e, .. } if *e == eni)
                && r.state == RouteState::Active;
            if !ours {
                out.push(Change::Replace {
                    table: id.clone(),
                    eni: eni.clone(),
                    from: route_target(&r.target),
                });
            }
        }
        Ok(out)
    }

    /// What a stop gives up: secondary_ip mode unassigns the VIP from this instance's
    /// ENIs (as awsvip's stop), disassociating its Elastic IP first when it is on it (EC2
    /// frees it with the address anyway; done explicitly, the end state does not depend on
    /// that); eip mode disassociates the Elastic IP from this instance (as awseip's stop);
    /// route mode leaves the routes (as aws-vpc-move-ip's stop: the next start elsewhere
    /// replaces them). Only what is ours: IMDS or EC2 shows it on an ENI of this instance,
    /// and each call names that ENI or our association id, so it cannot take what another
    /// node got meanwhile. Needs no nic: the nic may have changed since the start.
    pub(super) fn release_changes(
        &mut self,
        deadline: &Deadline,
    ) -> Result<Vec<Change>, CloudError> {
        let instance = self
            .instance
            .clone()
            .ok_or_else(|| CloudError::Transient("the instance identity was not read".into()))?;
        let ip = self.cfg.ip;
        let ours = |a: &Address, target: Option<Ipv4Addr>| -> Option<Change> {
            let s = a.association.as_ref()?;
            let here = s.instance_id.as_deref() == Some(instance.as_str())
                && target.is_none_or(|t| s.private_ip == Some(t));
            here.then(|| Change::Disassociate {
                association: s.id.clone(),
                public: a.public_ip,
            })
        };
        let mut out = Vec::new();
        match self.cfg.mode {
            Mode::Route => {}
            Mode::ElasticIp => {
                if let Some(want) = self.cfg.eip.clone() {
                    out.extend(ours(&self.address(&want, deadline)?, None));
                }
            }
            Mode::SecondaryIp => {
                let mut enis: Vec<String> = self
                    .ec2
                    .enis_holding(ip, deadline)?
                    .into_iter()
                    .filter(|e| {
                        e.instance_id.as_deref() == Some(instance.as_str())
                            && e.primary_ip() != Some(ip)
                    })
                    .map(|e| e.id)
                    .collect();
                // EC2's read may lag a start just made: IMDS shows it too.
                let http = &self.ec2.http;
                for mac in self.ec2.imds.macs(http, deadline)? {
                    let ips = self.ec2.imds.local_ipv4s(http, &mac, deadline)?;
                    if ips.first() != Some(&ip) && ips.contains(&ip) {
                        let path = format!("meta-data/network/interfaces/macs/{mac}/interface-id");
                        let id = self.ec2.imds.need(http, &path, deadline)?.trim().to_owned();
                        if !enis.contains(&id) {
                            enis.push(id);
                        }
                    }
                }
                if !enis.is_empty() {
                    if let Some(want) = self.cfg.eip.clone() {
                        out.extend(ours(&self.address(&want, deadline)?, Some(ip)));
                    }
                }
                out.extend(enis.into_iter().map(|eni| Change::Unassign { eni }));
            }
        }
        Ok(out)
    }

    /// A change as a dry run prints it: the EC2 call with its parameters, and what it does.
    pub(super) fn describe(&self, c: &Change) -> Planned {
        let ip = self.cfg.ip;
        let dest = self.cfg.destination();
        let call = |q: query::Query| format!("ec2:{} {}", q.action(), q.shown());
        match c {
            Change::Assign {
                eni,
                from_eni,
                from_instance,
            } => Planned::call(
                call(query::assign_private_ips(eni, &[ip], true)),
                format!(
                    "move secondary private IP {ip} from {} to {eni} (this node's), wait until \
                     IMDS shows it",
                    match from_eni {
                        Some(e) => holder(Some(e), from_instance.as_deref()),
                        None => "(nobody)".to_owned(),
                    }
                ),
            ),
            Change::Associate {
                allocation,
                public,
                eni,
                private_ip,
                from,
            } => Planned::call(
                call(query::associate_address(
                    &Eip::Allocation(allocation.clone()),
                    eni,
                    *private_ip,
                    true,
                )),
                format!(
                    "associate Elastic IP {public} with {private_ip} of {eni} (this node's), \
                     taking it from {}, wait until IMDS shows it",
                    from.as_deref().unwrap_or("(nobody)")
                ),
            ),
            Change::Follows { public, from } => Planned::note(format!(
                "Elastic IP {public} is on {ip} of {from}: it follows the assignment"
            )),
            Change::Replace { table, eni, from } => Planned::call(
                call(query::put_route(table, &dest, eni, true)),
                format!("route {dest} in {table} to {eni} (this node's) instead of {from}"),
            ),
            Change::Disassociate {
                association,
                public,
            } => Planned::call(
                call(query::disassociate_address(association)),
                format!("disassociate Elastic IP {public} from this node"),
            ),
            Change::Unassign { eni } => Planned::call(
                call(query::unassign_private_ips(eni, &[ip])),
                format!("unassign secondary private IP {ip} from {eni} (this node's)"),
            ),
        }
    }
}
