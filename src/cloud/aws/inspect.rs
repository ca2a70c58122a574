//! `cloudvip status` and `cloudvip diagnose` on AWS, and the IAM policy each mode needs.
//! status: who holds the secondary IP, the Elastic IP, the route in each table. diagnose:
//! IMDS → credentials → permissions → ENI → network, with the fix for each failure.
//! Read-only: the writes are probed with `DryRun=true` where EC2 has it (AssociateAddress,
//! DisassociateAddress, ReplaceRoute: "If you have the required permissions, the error
//! response is DryRunOperation. Otherwise, it is UnauthorizedOperation", EC2 API
//! reference, common parameters), and AssignPrivateIpAddresses / UnassignPrivateIpAddresses,
//! which have no DryRun (botocore's model), with the subnet's network address: EC2 never
//! assigns it (it is reserved in every subnet), so the call is refused whatever the policy
//! says — UnauthorizedOperation when the policy lacks the action, a parameter error when
//! it was let through (the emulator's order, and IAM's: authorization before the request is
//! carried out). Should EC2 ever assign it, it is unassigned at once.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::config::{Config, Mode};
use super::flow::Aws;
use super::plan::{holder, route_target};
use super::query;
use crate::cloud::inspect::Check;
use crate::cloud::{CloudError, Holding, Inspect, Nic, Verdict, DIAGNOSE_METADATA, DIAGNOSE_STEP};
use crate::deadline::Deadline;

/// The EC2 actions the node's own credentials need for `cfg`, and those the route tables'
/// role needs (when `routing_table_role` is set; the node then needs `sts:AssumeRole` on
/// it instead).
pub fn iam_actions(cfg: &Config) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut own = Vec::new();
    let mut role = Vec::new();
    let eip = [
        "ec2:DescribeAddresses",
        "ec2:AssociateAddress",
        "ec2:DisassociateAddress",
    ];
    match cfg.mode {
        Mode::SecondaryIp => {
            own.extend([
                "ec2:DescribeNetworkInterfaces",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ]);
            if cfg.eip.is_some() {
                own.extend(eip);
            }
        }
        Mode::ElasticIp => own.extend(eip),
        Mode::Route => {
            own.push("ec2:DescribeNetworkInterfaces");
            let tables = ["ec2:DescribeRouteTables", "ec2:ReplaceRoute"];
            match cfg.routing_table_role {
                Some(_) => {
                    own.push("sts:AssumeRole");
                    role.extend(tables);
                }
                None => own.extend(tables),
            }
        }
    }
    (own, role)
}

/// The identity policy of the node's role (or user) for `cfg`, as IAM takes it. EC2's
/// actions here take no resource-level restriction for Describe*, so `Resource` is `*`;
/// AssumeRole is limited to the one role.
pub fn policy(cfg: &Config) -> Value {
    let (own, _) = iam_actions(cfg);
    let (ec2, sts): (Vec<&str>, Vec<&str>) = own.into_iter().partition(|a| a.starts_with("ec2:"));
    let mut statements = vec![json!({
        "Sid": match cfg.mode {
            Mode::SecondaryIp => "CloudvipSecondaryIp",
            Mode::ElasticIp => "CloudvipElasticIp",
            Mode::Route => "CloudvipRoute",
        },
        "Effect": "Allow",
        "Action": ec2,
        "Resource": "*",
    })];
    if let (false, Some(arn)) = (sts.is_empty(), &cfg.routing_table_role) {
        statements.push(json!({
            "Sid": "CloudvipRouteTableRole",
            "Effect": "Allow",
            "Action": sts,
            "Resource": arn,
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The policy of `routing_table_role` in the tables' account, when there is one.
pub fn role_policy(cfg: &Config) -> Option<Value> {
    let (_, role) = iam_actions(cfg);
    (!role.is_empty()).then(|| {
        json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Action": role, "Resource": "*" }],
        })
    })
}

/// What a probe of one action learnt.
enum Probe {
    Allowed,
    Missing,
    /// No answer to go by (transport, 5xx, an unexpected refusal).
    Unknown(String),
}

fn probe_of(r: Result<(), CloudError>) -> Probe {
    match r {
        Ok(()) => Probe::Allowed,
        Err(e) if e.code() == Some("UnauthorizedOperation") => Probe::Missing,
        // Let through by the policy, refused for the request itself (the reserved address).
        Err(e) if matches!(e.kind(), CloudError::Invalid(_)) => Probe::Allowed,
        Err(e) => Probe::Unknown(e.to_string()),
    }
}

/// The subnet's network address (`10.0.1.0` of `10.0.1.0/24`).
fn network_address(cidr: &str) -> Option<Ipv4Addr> {
    let (net, len) = cidr.trim().split_once('/')?;
    let net: Ipv4Addr = net.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    Some(Ipv4Addr::from(u32::from(net) & mask))
}

impl Aws {
    /// For `cloudvip status`: who holds each thing the mode moves, the VIP's row first.
    pub fn holder_rows(
        &mut self,
        nic: Option<&Nic>,
        deadline: &Deadline,
    ) -> Result<Vec<Holding>, CloudError> {
        let me = self.load_identity(deadline)?;
        let subnet = match nic {
            Some(n) => {
                self.load(n, deadline)?;
                self.me.as_ref().map(|m| m.eni.subnet_id.clone())
            }
            None => None,
        };
        let ip = self.cfg.ip;
        let mut rows = Vec::new();
        if self.cfg.mode == Mode::SecondaryIp {
            let what = format!("secondary IP {ip}");
            let holders = self.holders_in(subnet.as_deref(), deadline)?;
            match holders.first() {
                None => rows.push(Holding::nobody(what, "no ENI has it")),
                Some(e) => rows.push(Holding::held(
                    what,
                    holder(Some(&e.id), e.instance_id.as_deref()),
                    e.instance_id.as_deref() == Some(me.as_str()),
                )),
            }
        }
        if let Some(want) = self.cfg.eip.clone() {
            let what = format!("Elastic IP {}", want.public_ip);
            let a = self.address(&want, deadline)?;
            match &a.association {
                None => rows.push(Holding::nobody(what, "not associated")),
                Some(s) => rows.push(Holding::held(
                    what,
                    format!(
                        "{} of {}",
                        s.private_ip.map_or("?".to_owned(), |p| p.to_string()),
                        holder(s.eni.as_deref(), s.instance_id.as_deref())
                    ),
                    s.instance_id.as_deref() == Some(me.as_str()),
                )),
            }
        }
        if self.cfg.mode == Mode::Route {
            let dest = self.cfg.destination();
            let ids: Vec<&str> = self.cfg.route_tables.iter().map(String::as_str).collect();
            let tables = self.ec2.describe_route_tables(&ids, deadline)?;
            for id in &self.cfg.route_tables {
                let what = format!("route {dest} in {id}");
                let route = tables
                    .iter()
                    .find(|t| &t.id == id)
                    .and_then(|t| t.route(&dest));
                rows.push(match route.map(|r| &r.target) {
                    None => Holding::nobody(what, "no such route"),
                    Some(super::model::Target::Eni { eni, instance }) => Holding::held(
                        what,
                        holder(Some(eni), instance.as_deref()),
                        instance.as_deref() == Some(me.as_str()),
                    ),
                    Some(t) => Holding::held(what, route_target(t), false),
                });
            }
        }
        Ok(rows)
    }

    /// IMDSv2 answers: the instance and the endpoint its region gives.
    fn probe_metadata(&mut self, deadline: &Deadline) -> Verdict {
        match self.load_identity(&deadline.within(DIAGNOSE_METADATA)) {
            Ok(instance) => Verdict::pass(format!(
                "IMDSv2 answers: instance {instance}, EC2 endpoint {}",
                self.ec2.ec2.url
            )),
            Err(e) => Verdict::fail(
                e.to_string(),
                "IMDSv2 must answer at 169.254.169.254 (aws ec2 modify-instance-metadata-options \
                 --instance-id <id> --http-endpoint enabled --http-tokens required \
                 --http-put-response-hop-limit 2 for a container or namespace), or set \
                 metadata_url=",
            ),
        }
    }

    /// Credentials (and the route tables' role) are issued.
    fn probe_credentials(&mut self, deadline: &Deadline) -> Verdict {
        let step = deadline.within(DIAGNOSE_STEP);
        let ec2 = &mut self.ec2;
        let got = ec2
            .creds
            .get(&ec2.http, &mut ec2.imds, &ec2.sts, &step)
            .map(|c| c.from);
        let role = match (&mut ec2.route_creds, &got) {
            (Some(p), Ok(_)) => Some(
                p.get(&ec2.http, &mut ec2.imds, &ec2.sts, &step)
                    .map(|c| c.from),
            ),
            _ => None,
        };
        match (got, role) {
            (Ok(from), None | Some(Ok(_))) => Verdict::pass(match &self.cfg.routing_table_role {
                Some(r) => format!("{from}; route tables through role {r}"),
                None => from,
            }),
            (Err(e), _) | (_, Some(Err(e))) => {
                let fix = match (&self.cfg.credentials, &self.cfg.routing_table_role) {
                    (_, Some(r)) if matches!(e.kind(), CloudError::Denied(_)) => format!(
                        "the role {r} must trust this node's role (its trust policy) and, with \
                         external_id=, ask for that ExternalId"
                    ),
                    (Some(p), _) => format!(
                        "credentials={} must be a 0600 AWS credentials file with \
                         aws_access_key_id and aws_secret_access_key in [{}]",
                        p.display(),
                        self.cfg.profile
                    ),
                    (None, _) => "attach an IAM role (instance profile) to this instance, or \
                                  set credentials= to a credentials file"
                        .to_owned(),
                };
                Verdict::fail(e.to_string(), fix)
            }
        }
    }

    /// The nic's ENI, from IMDS by its MAC.
    fn probe_nic(&mut self, n: &Nic, deadline: &Deadline) -> Verdict {
        match self.load(n, &deadline.within(DIAGNOSE_STEP)) {
            Ok(()) => match &self.me {
                Some(m) => Verdict::pass(format!(
                    "{} is {} in {}",
                    n.name, m.eni.eni_id, m.eni.subnet_id
                )),
                None => Verdict::fail("IMDS gave no ENI", "retry"),
            },
            Err(e) => Verdict::fail(
                e.to_string(),
                "set nic= to the interface whose MAC is one of this instance's ENIs \
                 (compare `ip -br link` with the ENIs of `aws ec2 describe-instances`)",
            ),
        }
    }

    fn permissions_step(&mut self, deadline: &Deadline) -> Verdict {
        let (own, role) = iam_actions(&self.cfg);
        let Some((eni, mac, primary)) = self
            .me
            .as_ref()
            .and_then(|m| Some((m.eni.eni_id.clone(), m.eni.mac.clone(), m.primary().ok()?)))
        else {
            return Verdict::Skip("the nic's ENI is not known (see the nic check)".into());
        };
        let ip = self.cfg.ip;
        let mut results: Vec<(&'static str, Probe)> = Vec::new();
        for action in own.iter().chain(role.iter()) {
            let r = match *action {
                "ec2:DescribeNetworkInterfaces" => self
                    .ec2
                    .describe_network_interfaces(
                        &query::describe_network_interfaces(&[&eni]),
                        deadline,
                    )
                    .map(|_| ()),
                "ec2:DescribeAddresses" => match self.cfg.eip.clone() {
                    Some(w) => self.ec2.describe_address(&w.query(), deadline).map(|_| ()),
                    None => continue,
                },
                "ec2:DescribeRouteTables" => {
                    let ids: Vec<String> = self.cfg.route_tables.clone();
                    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                    self.ec2.describe_route_tables(&ids, deadline).map(|_| ())
                }
                "ec2:AssociateAddress" => match self.cfg.eip.clone() {
                    Some(w) => {
                        let target = if self.cfg.mode == Mode::ElasticIp {
                            primary
                        } else {
                            ip
                        };
                        let q = query::associate_address(&w.query(), &eni, target, true);
                        // A VIP not on this ENI yet makes EC2 refuse the target, after IAM.
                        self.ec2.dry_run(&q, deadline)
                    }
                    None => continue,
                },
                "ec2:DisassociateAddress" => {
                    let assoc = match self.cfg.eip.clone() {
                        Some(w) => self
                            .ec2
                            .describe_address(&w.query(), deadline)
                            .ok()
                            .and_then(|a| a.association.map(|s| s.id)),
                        None => None,
                    };
                    match assoc {
                        Some(id) => self
                            .ec2
                            .dry_run(&query::disassociate_address(&id), deadline),
                        // Nothing associated: nothing to probe it with.
                        None => continue,
                    }
                }
                "ec2:ReplaceRoute" => {
                    let dest = self.cfg.destination();
                    let mut r = Ok(());
                    for t in self.cfg.route_tables.clone() {
                        r = r.and(
                            self.ec2
                                .dry_run(&query::put_route(&t, &dest, &eni, true), deadline),
                        );
                    }
                    r
                }
                "ec2:AssignPrivateIpAddresses" | "ec2:UnassignPrivateIpAddresses" => {
                    let path =
                        format!("meta-data/network/interfaces/macs/{mac}/subnet-ipv4-cidr-block");
                    let reserved = self
                        .ec2
                        .imds
                        .need(&self.ec2.http, &path, deadline)
                        .ok()
                        .and_then(|c| network_address(&c));
                    match reserved {
                        Some(addr) => self.probe_assignment(action, &eni, addr, deadline),
                        None => Err(CloudError::Transient("no subnet CIDR in IMDS".into())),
                    }
                }
                // Checked by the credentials step.
                _ => continue,
            };
            results.push((action, probe_of(r)));
        }
        let missing: Vec<&str> = results
            .iter()
            .filter(|(_, p)| matches!(p, Probe::Missing))
            .map(|(a, _)| *a)
            .collect();
        let unknown: Vec<String> = results
            .iter()
            .filter_map(|(a, p)| match p {
                Probe::Unknown(m) => Some(format!("{a}: {m}")),
                _ => None,
            })
            .collect();
        let checked: Vec<&str> = results.iter().map(|(a, _)| *a).collect();
        if !missing.is_empty() {
            return Verdict::fail(
                format!("the policy lacks {}", missing.join(", ")),
                format!(
                    "grant them; the policy for {MODE_WORD}={} (pcs-examples/aws-*.sh print \
                     it): {}",
                    self.cfg.mode.name(),
                    policy(&self.cfg)
                ),
            );
        }
        if !unknown.is_empty() {
            return Verdict::fail(
                format!("could not check: {}", unknown.join("; ")),
                "retry; if it persists check api_endpoint=, proxy= and the network path to EC2",
            );
        }
        Verdict::pass(format!(
            "{} (probed, nothing changed): allowed",
            checked.join(", ")
        ))
    }

    /// Assign or unassign the subnet's network address on our ENI: refused whatever the
    /// policy; the refusal tells which way.
    fn probe_assignment(
        &mut self,
        action: &str,
        eni: &str,
        reserved: Ipv4Addr,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        if action == "ec2:UnassignPrivateIpAddresses" {
            return self.ec2.unassign_private_ips(eni, &[reserved], deadline);
        }
        let r = self
            .ec2
            .assign_private_ips(eni, &[reserved], false, deadline);
        if r.is_ok() {
            log::warn!("diagnose: EC2 assigned the reserved {reserved} to {eni}; unassigning it");
            let _ = self.ec2.unassign_private_ips(eni, &[reserved], deadline);
        }
        r
    }

    fn network_step(&mut self, nic: &Nic, deadline: &Deadline) -> Verdict {
        let r = self
            .validate(nic, deadline)
            .and_then(|()| match self.cfg.mode {
                Mode::Route => self.route_changes(deadline).map(|_| ()),
                _ => Ok(()),
            });
        match r {
            Ok(()) => Verdict::pass(match self.cfg.mode {
                    Mode::SecondaryIp => {
                        format!("{} is a free address of this ENI's subnet", self.cfg.ip)
                    }
                    Mode::ElasticIp => {
                        "the Elastic IP goes to this ENI's primary address".to_owned()
                    }
                    Mode::Route => format!(
                        "{} is outside the VPC, source/destination check is off, and every \
                         table has the route",
                        self.cfg.destination()
                    ),
            }),
            Err(e) => Verdict::fail(
                e.to_string(),
                "the message says what to change (ip=, mode=, route_tables=, or the ENI)",
            ),
        }
    }
}

/// `cloudvip status` and `cloudvip diagnose`, driven by `cloud::inspect::diagnose`.
impl Inspect for Aws {
    fn holders(&mut self, nic: Option<&Nic>, deadline: &Deadline) -> Result<Vec<Holding>, CloudError> {
        self.holder_rows(nic, deadline)
    }

    fn probe(&mut self, check: Check, nic: Option<&Nic>, deadline: &Deadline) -> Verdict {
        match (check, nic) {
            (Check::Metadata, _) => self.probe_metadata(deadline),
            (Check::Credentials, _) => self.probe_credentials(deadline),
            // Probed on the nic's ENI; without one (or its ENI) the nic check says why.
            (Check::Permissions, Some(n)) => match self.load(n, &deadline.within(DIAGNOSE_STEP)) {
                Ok(()) => self.permissions_step(&deadline.within(DIAGNOSE_STEP * 2)),
                Err(e) => Verdict::Skip(format!("no ENI to probe on: {e}")),
            },
            (Check::Permissions, None) => {
                Verdict::Skip("no nic: the permissions are probed on its ENI".into())
            }
            (Check::Nic, Some(n)) => self.probe_nic(n, deadline),
            (Check::Subnet, Some(n)) => self.network_step(n, &deadline.within(DIAGNOSE_STEP)),
            (Check::Nic | Check::Subnet, None) => Verdict::Skip("no nic".into()),
        }
    }
}

const MODE_WORD: &str = super::config::MODE;

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs("10.0.1.100".parse().unwrap(), pairs).unwrap()
    }

    #[test]
    fn policies_per_mode() {
        let p = policy(&cfg(&[]));
        assert_eq!(
            p["Statement"][0]["Action"],
            json!([
                "ec2:DescribeNetworkInterfaces",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses"
            ])
        );
        let p = policy(&cfg(&[("public_ip", "203.0.113.10")]));
        assert_eq!(p["Statement"][0]["Action"].as_array().unwrap().len(), 6);
        let p = policy(
            &Config::from_pairs("203.0.113.10".parse().unwrap(), &[("mode", "eip")]).unwrap(),
        );
        assert_eq!(
            p["Statement"][0]["Action"],
            json!([
                "ec2:DescribeAddresses",
                "ec2:AssociateAddress",
                "ec2:DisassociateAddress"
            ])
        );
        let r = cfg(&[
            ("mode", "route"),
            ("route_tables", "rtb-0c10d0000000000c2"),
            (
                "routing_table_role",
                "arn:aws:iam::444455556666:role/rtb-editor",
            ),
        ]);
        let p = policy(&r);
        assert_eq!(
            p["Statement"][0]["Action"],
            json!(["ec2:DescribeNetworkInterfaces"])
        );
        assert_eq!(
            p["Statement"][1]["Resource"],
            "arn:aws:iam::444455556666:role/rtb-editor"
        );
        assert_eq!(
            role_policy(&r).unwrap()["Statement"][0]["Action"],
            json!(["ec2:DescribeRouteTables", "ec2:ReplaceRoute"])
        );
        assert!(role_policy(&cfg(&[])).is_none());
        assert_eq!(
            network_address("10.0.1.0/24"),
            Some("10.0.1.0".parse().unwrap())
        );
        assert_eq!(
            network_address("10.0.1.77/20"),
            Some("10.0.0.0".parse().unwrap())
        );
        assert_eq!(network_address("x"), None);
    }
}
