//! The EC2 network as the emulator holds it, and every change the API or the console makes
//! to it. The state machine of research/aws-azure.md §A2.8: a private IP belongs to at most
//! one ENI (IPs are unique across a VPC's subnets); `AllowReassignment` moves a secondary IP
//! and its Elastic IP association follows; primary IPs never move; per-ENI limits come from
//! the instance type; an Elastic IP is associated with one (ENI, private IP) and a private
//! IP carries at most one Elastic IP; routes point at an ENI (an instance target is its
//! only ENI), a gateway or `local`.
//!
//! `Net` is cheap to clone: the consistency layer (`history.rs`) keeps old copies.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::SystemTime;

use crate::gce::net::Ipv4Net;

use super::errors::AwsError;
use super::ids;
use super::world::{AwsWorld, InstanceConfig};

/// Private IPv4 addresses per network interface, by instance type (EC2 User Guide,
/// "Maximum IP addresses per network interface"; the same figures amazon-vpc-cni-k8s uses).
/// Others come from `[aws.instance_types]` or an instance's `private_ips_per_eni`.
const IP_LIMITS: &[(&str, u32)] = &[
    ("t2.nano", 2),
    ("t2.micro", 2),
    ("t2.small", 4),
    ("t2.medium", 6),
    ("t2.large", 12),
    ("t3.nano", 2),
    ("t3.micro", 2),
    ("t3.small", 4),
    ("t3.medium", 6),
    ("t3.large", 12),
    ("t3.xlarge", 15),
    ("t3.2xlarge", 15),
    ("t4g.micro", 2),
    ("t4g.small", 4),
    ("t4g.medium", 6),
    ("m5.large", 10),
    ("m5.xlarge", 15),
    ("m5.2xlarge", 15),
    ("m6i.large", 10),
    ("m6i.xlarge", 15),
    ("m7i.large", 10),
    ("c5.large", 10),
    ("c5.xlarge", 15),
    ("r5.large", 10),
    ("r5.xlarge", 15),
];

pub fn builtin_ip_limit(instance_type: &str) -> Option<u32> {
    IP_LIMITS
        .iter()
        .find(|(t, _)| *t == instance_type)
        .map(|(_, n)| *n)
}

/// The private IPv4 limit per ENI of a configured instance.
pub fn ip_limit(world: &AwsWorld, i: &InstanceConfig) -> Option<u32> {
    i.private_ips_per_eni
        .or_else(|| world.instance_types.get(&i.instance_type).copied())
        .or_else(|| builtin_ip_limit(&i.instance_type))
}

/// AWS reserves the first four addresses and the last one of every subnet.
pub fn check_usable(cidr: &Ipv4Net, ip: Ipv4Addr) -> Result<(), String> {
    if !cidr.contains(ip) {
        return Err(format!("{ip} is outside the subnet's {cidr}"));
    }
    let n = u32::from(ip);
    if n < cidr.first() + 4 || n == cidr.last() {
        return Err(format!("{ip} is reserved in {cidr}"));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Vpc {
    pub id: String,
    pub cidr: Ipv4Net,
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Subnet {
    pub id: String,
    pub vpc: String,
    pub cidr: Ipv4Net,
    pub zone: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub instance_type: String,
    pub ip_limit: u32,
    pub iam_role: Option<String>,
    pub image_id: String,
    pub zone: String,
    pub launched: SystemTime,
    pub reservation_id: String,
    /// Attached ENIs in device-index order.
    pub enis: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Eni {
    pub id: String,
    pub mac: String,
    pub subnet: String,
    pub vpc: String,
    pub zone: String,
    pub instance: String,
    pub device_index: u32,
    pub attachment_id: String,
    /// Primary first.
    pub private_ips: Vec<Ipv4Addr>,
    pub source_dest_check: bool,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    pub id: String,
    pub eni: String,
    pub private_ip: Ipv4Addr,
}

#[derive(Debug, Clone)]
pub struct Eip {
    pub allocation_id: String,
    pub public_ip: Ipv4Addr,
    pub association: Option<Association>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Local,
    Gateway(String),
    Eni(String),
}

#[derive(Debug, Clone)]
pub struct Route {
    pub destination: Ipv4Net,
    pub target: Target,
    /// `CreateRouteTable` (the local route, world routes) or `CreateRoute`.
    pub origin: &'static str,
}

#[derive(Debug, Clone)]
pub struct RouteTable {
    pub id: String,
    pub vpc: String,
    pub account: String,
    /// The main association's id when this is the VPC's main table.
    pub main: Option<String>,
    /// (association id, subnet).
    pub subnets: Vec<(String, String)>,
    pub routes: Vec<Route>,
}

/// Everything `Describe*` and IMDS show.
#[derive(Debug, Clone)]
pub struct Net {
    pub account: String,
    pub vpcs: BTreeMap<String, Vpc>,
    pub subnets: BTreeMap<String, Subnet>,
    pub instances: BTreeMap<String, Instance>,
    pub enis: BTreeMap<String, Eni>,
    pub eips: BTreeMap<String, Eip>,
    pub route_tables: BTreeMap<String, RouteTable>,
    pub gateways: BTreeSet<String>,
    /// Association ids that existed once: disassociating them again succeeds (idempotent).
    pub past_associations: BTreeSet<String>,
}

/// Knobs that change what a write does where the real behaviour is unknown.
#[derive(Debug, Clone)]
pub struct WriteRules {
    pub reassign_conflict_code: String,
    pub reassociation_default_allowed: bool,
}

fn eni_not_found(id: &str) -> AwsError {
    AwsError::not_found(
        "InvalidNetworkInterfaceID.NotFound",
        format!("The networkInterface ID '{id}' does not exist"),
    )
}

fn instance_not_found(id: &str) -> AwsError {
    AwsError::not_found(
        "InvalidInstanceID.NotFound",
        format!("The instance ID '{id}' does not exist"),
    )
}

pub fn route_table_not_found(id: &str) -> AwsError {
    AwsError::not_found(
        "InvalidRouteTableID.NotFound",
        format!("The routeTable ID '{id}' does not exist"),
    )
}

impl Net {
    pub fn from_world(w: &AwsWorld) -> Net {
        let now = SystemTime::now();
        let mut net = Net {
            account: w.account_id.clone(),
            vpcs: BTreeMap::new(),
            subnets: BTreeMap::new(),
            instances: BTreeMap::new(),
            enis: BTreeMap::new(),
            eips: BTreeMap::new(),
            route_tables: BTreeMap::new(),
            gateways: BTreeSet::new(),
            past_associations: BTreeSet::new(),
        };
        for v in &w.vpcs {
            net.vpcs.insert(
                v.id.clone(),
                Vpc {
                    id: v.id.clone(),
                    cidr: v.cidr,
                    name: v.name.clone(),
                },
            );
        }
        for s in &w.subnets {
            net.subnets.insert(
                s.id.clone(),
                Subnet {
                    id: s.id.clone(),
                    vpc: s.vpc.clone(),
                    cidr: s.cidr,
                    zone: w.zone_of(s),
                    name: s.name.clone(),
                },
            );
        }
        for i in &w.instances {
            let mut zone = format!("{}a", w.region);
            for (n, e) in i.enis.iter().enumerate() {
                let (vpc, z) = net
                    .subnets
                    .get(&e.subnet)
                    .map(|s| (s.vpc.clone(), s.zone.clone()))
                    .unwrap_or_default();
                zone = z.clone();
                let mut ips = vec![e.private_ip];
                ips.extend(&e.secondary_ips);
                net.enis.insert(
                    e.id.clone(),
                    Eni {
                        id: e.id.clone(),
                        mac: e.mac.clone(),
                        subnet: e.subnet.clone(),
                        vpc,
                        zone: z,
                        instance: i.id.clone(),
                        device_index: n as u32,
                        attachment_id: ids::resource("eni-attach"),
                        private_ips: ips,
                        source_dest_check: e.source_dest_check,
                        description: e.description.clone().unwrap_or_default(),
                    },
                );
            }
            net.instances.insert(
                i.id.clone(),
                Instance {
                    id: i.id.clone(),
                    name: i.name.clone(),
                    instance_type: i.instance_type.clone(),
                    ip_limit: ip_limit(w, i).unwrap_or(1),
                    iam_role: i.iam_role.clone(),
                    image_id: i.image_id.clone(),
                    zone,
                    launched: now,
                    reservation_id: ids::resource("r"),
                    enis: i.enis.iter().map(|e| e.id.clone()).collect(),
                },
            );
        }
        for a in &w.elastic_ips {
            let association = a.eni.as_ref().map(|eni| Association {
                id: ids::resource("eipassoc"),
                eni: eni.clone(),
                private_ip: a.private_ip.unwrap_or_else(|| {
                    net.enis
                        .get(eni)
                        .map(|e| e.private_ips[0])
                        .unwrap_or(Ipv4Addr::UNSPECIFIED)
                }),
            });
            net.eips.insert(
                a.allocation_id.clone(),
                Eip {
                    allocation_id: a.allocation_id.clone(),
                    public_ip: a.public_ip,
                    association,
                },
            );
        }
        for r in &w.route_tables {
            let vpc_cidr = net.vpcs.get(&r.vpc).map(|v| v.cidr);
            let mut routes: Vec<Route> = vpc_cidr
                .map(|c| Route {
                    destination: c,
                    target: Target::Local,
                    origin: "CreateRouteTable",
                })
                .into_iter()
                .collect();
            for rt in &r.routes {
                let target = if let Some(e) = &rt.eni {
                    Target::Eni(e.clone())
                } else if let Some(i) = &rt.instance {
                    let eni = net
                        .instances
                        .get(i)
                        .and_then(|i| i.enis.first().cloned())
                        .unwrap_or_default();
                    Target::Eni(eni)
                } else {
                    let g = rt.gateway.clone().unwrap_or_default();
                    net.gateways.insert(g.clone());
                    Target::Gateway(g)
                };
                routes.push(Route {
                    destination: rt.destination,
                    target,
                    origin: "CreateRouteTable",
                });
            }
            net.route_tables.insert(
                r.id.clone(),
                RouteTable {
                    id: r.id.clone(),
                    vpc: r.vpc.clone(),
                    account: r.account_id.clone().unwrap_or_else(|| w.account_id.clone()),
                    main: r.main.then(|| ids::resource("rtbassoc")),
                    subnets: r
                        .subnets
                        .iter()
                        .map(|s| (ids::resource("rtbassoc"), s.clone()))
                        .collect(),
                    routes,
                },
            );
        }
        net
    }

    pub fn eni(&self, id: &str) -> Result<&Eni, AwsError> {
        self.enis.get(id).ok_or_else(|| eni_not_found(id))
    }

    pub fn instance(&self, id: &str) -> Result<&Instance, AwsError> {
        self.instances.get(id).ok_or_else(|| instance_not_found(id))
    }

    /// The ENI holding `ip` in `vpc`, if any.
    pub fn holder(&self, vpc: &str, ip: Ipv4Addr) -> Option<&Eni> {
        self.enis
            .values()
            .find(|e| e.vpc == vpc && e.private_ips.contains(&ip))
    }

    /// The Elastic IP associated with (eni, ip).
    pub fn eip_on(&self, eni: &str, ip: Ipv4Addr) -> Option<&Eip> {
        self.eips.values().find(|a| {
            a.association
                .as_ref()
                .is_some_and(|s| s.eni == eni && s.private_ip == ip)
        })
    }

    /// The ENI an `InstanceId` stands for: its only ENI.
    pub fn only_eni(&self, instance: &str) -> Result<String, AwsError> {
        let i = self.instance(instance)?;
        match i.enis.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(AwsError::bad(
                "InvalidInstanceID",
                format!(
                    "There are multiple interfaces attached to instance '{instance}'. Please specify an interface ID for the operation instead."
                ),
            )),
        }
    }

    /// AssignPrivateIpAddresses. Either `ips` or `count` (new addresses picked from the
    /// subnet). All or nothing. Returns the addresses now assigned by this call.
    pub fn assign(
        &mut self,
        eni_id: &str,
        ips: &[Ipv4Addr],
        count: Option<u32>,
        allow_reassignment: bool,
        rules: &WriteRules,
    ) -> Result<Vec<Ipv4Addr>, AwsError> {
        let eni = self.eni(eni_id)?.clone();
        let subnet = self
            .subnets
            .get(&eni.subnet)
            .cloned()
            .ok_or_else(AwsError::internal)?;
        let limit = self
            .instances
            .get(&eni.instance)
            .map(|i| i.ip_limit)
            .unwrap_or(1);
        let wanted: Vec<Ipv4Addr> = match count {
            Some(n) => {
                let mut picked = Vec::new();
                let mut a = subnet.cidr.first() + 4;
                while picked.len() < n as usize && a < subnet.cidr.last() {
                    let ip = Ipv4Addr::from(a);
                    if self.holder(&eni.vpc, ip).is_none() {
                        picked.push(ip);
                    }
                    a += 1;
                }
                if picked.len() < n as usize {
                    return Err(AwsError::bad(
                        "InsufficientFreeAddressesInSubnet",
                        format!("The specified subnet {} does not have enough free addresses to satisfy the request.", subnet.id),
                    ));
                }
                picked
            }
            None => ips.to_vec(),
        };
        let mut seen = BTreeSet::new();
        let mut moves: Vec<(Ipv4Addr, Option<String>)> = Vec::new();
        for ip in &wanted {
            if !seen.insert(*ip) {
                return Err(AwsError::invalid_value(format!(
                    "The address {ip} is listed more than once"
                )));
            }
            check_usable(&subnet.cidr, *ip).map_err(|m| {
                AwsError::invalid_value(format!(
                    "Address {ip} is not a usable address of subnet {}: {m}",
                    subnet.id
                ))
            })?;
            match self.holder(&eni.vpc, *ip) {
                None => moves.push((*ip, None)),
                Some(h) if h.id == eni.id => {
                    if h.private_ips[0] == *ip || !allow_reassignment {
                        return Err(in_use(rules, *ip));
                    }
                    // Already here: nothing to do for this address.
                }
                Some(h) if h.private_ips[0] == *ip => {
                    // A primary address never moves.
                    return Err(AwsError::bad(
                        "InvalidIPAddress.InUse",
                        format!("Address {ip} is in use."),
                    ));
                }
                Some(h) => {
                    if !allow_reassignment {
                        return Err(in_use(rules, *ip));
                    }
                    moves.push((*ip, Some(h.id.clone())));
                }
            }
        }
        if eni.private_ips.len() + moves.len() > limit as usize {
            return Err(AwsError::bad(
                "PrivateIpAddressLimitExceeded",
                "Number of private addresses will exceed limit.",
            ));
        }
        for (ip, from) in &moves {
            if let Some(from) = from {
                if let Some(f) = self.enis.get_mut(from) {
                    f.private_ips.retain(|x| x != ip);
                }
                // Its Elastic IP follows it.
                for a in self.eips.values_mut() {
                    if let Some(s) = &mut a.association {
                        if &s.eni == from && s.private_ip == *ip {
                            s.eni = eni.id.clone();
                        }
                    }
                }
            }
            if let Some(e) = self.enis.get_mut(&eni.id) {
                e.private_ips.push(*ip);
            }
        }
        Ok(wanted)
    }

    /// UnassignPrivateIpAddresses: only this ENI's secondary addresses; their Elastic IPs
    /// are disassociated.
    pub fn unassign(&mut self, eni_id: &str, ips: &[Ipv4Addr]) -> Result<(), AwsError> {
        let eni = self.eni(eni_id)?.clone();
        for ip in ips {
            if eni.private_ips[0] == *ip {
                return Err(AwsError::invalid_value(format!(
                    "The primary private IP address {ip} of {eni_id} cannot be unassigned"
                )));
            }
            if !eni.private_ips.contains(ip) {
                return Err(AwsError::invalid_value(format!(
                    "Some of the specified addresses are not assigned to interface {eni_id}"
                )));
            }
        }
        if let Some(e) = self.enis.get_mut(eni_id) {
            e.private_ips.retain(|x| !ips.contains(x));
        }
        let mut gone = Vec::new();
        for a in self.eips.values_mut() {
            if a.association
                .as_ref()
                .is_some_and(|s| s.eni == eni_id && ips.contains(&s.private_ip))
            {
                if let Some(s) = a.association.take() {
                    gone.push(s.id);
                }
            }
        }
        self.past_associations.extend(gone);
        Ok(())
    }

    /// AssociateAddress. Returns the new association id.
    pub fn associate(
        &mut self,
        allocation_id: &str,
        eni_id: &str,
        private_ip: Option<Ipv4Addr>,
        allow_reassociation: Option<bool>,
        rules: &WriteRules,
    ) -> Result<String, AwsError> {
        let eni = self.eni(eni_id)?.clone();
        let ip = private_ip.unwrap_or(eni.private_ips[0]);
        if !eni.private_ips.contains(&ip) {
            return Err(AwsError::invalid_value(format!(
                "The private IP address {ip} is not assigned to network interface {eni_id}"
            )));
        }
        let eip = self
            .eips
            .get(allocation_id)
            .cloned()
            .ok_or_else(|| allocation_not_found(allocation_id))?;
        if let Some(cur) = &eip.association {
            let elsewhere = cur.eni != eni.id || cur.private_ip != ip;
            let allowed = allow_reassociation.unwrap_or(rules.reassociation_default_allowed);
            if elsewhere && !allowed {
                return Err(AwsError::bad(
                    "Resource.AlreadyAssociated",
                    format!(
                        "resource {allocation_id} is already associated with associate-id {}",
                        cur.id
                    ),
                ));
            }
        }
        // A private IP carries one Elastic IP: the previous one is disassociated.
        let mut gone = Vec::new();
        for a in self.eips.values_mut() {
            let hit = a.allocation_id == allocation_id
                || a.association
                    .as_ref()
                    .is_some_and(|s| s.eni == eni.id && s.private_ip == ip);
            if hit {
                if let Some(s) = a.association.take() {
                    gone.push(s.id);
                }
            }
        }
        self.past_associations.extend(gone);
        let id = ids::resource("eipassoc");
        if let Some(a) = self.eips.get_mut(allocation_id) {
            a.association = Some(Association {
                id: id.clone(),
                eni: eni.id.clone(),
                private_ip: ip,
            });
        }
        Ok(id)
    }

    /// DisassociateAddress (idempotent for associations that existed).
    pub fn disassociate(&mut self, association_id: &str) -> Result<(), AwsError> {
        for a in self.eips.values_mut() {
            if a.association
                .as_ref()
                .is_some_and(|s| s.id == association_id)
            {
                a.association = None;
                self.past_associations.insert(association_id.to_owned());
                return Ok(());
            }
        }
        if self.past_associations.contains(association_id) {
            return Ok(());
        }
        Err(AwsError::not_found(
            "InvalidAssociationID.NotFound",
            format!("The association ID '{association_id}' does not exist"),
        ))
    }

    /// A route table as `account` sees it (other accounts' tables do not exist for it).
    pub fn route_table(&self, id: &str, account: &str) -> Result<&RouteTable, AwsError> {
        self.route_tables
            .get(id)
            .filter(|t| t.account == account)
            .ok_or_else(|| route_table_not_found(id))
    }

    fn check_target(&self, table: &RouteTable, target: &Target) -> Result<(), AwsError> {
        match target {
            Target::Eni(e) => {
                let eni = self.eni(e)?;
                if eni.vpc != table.vpc {
                    return Err(AwsError::invalid_value(format!(
                        "route table {} and network interface {e} belong to different networks",
                        table.id
                    )));
                }
            }
            Target::Gateway(g) => {
                if !self.gateways.contains(g) {
                    return Err(AwsError::not_found(
                        "InvalidGatewayID.NotFound",
                        format!("The gateway ID '{g}' does not exist"),
                    ));
                }
            }
            Target::Local => {}
        }
        Ok(())
    }

    /// CreateRoute (`replace = false`) or ReplaceRoute.
    pub fn put_route(
        &mut self,
        table_id: &str,
        account: &str,
        destination: Ipv4Net,
        target: Target,
        replace: bool,
    ) -> Result<(), AwsError> {
        let table = self.route_table(table_id, account)?.clone();
        self.check_target(&table, &target)?;
        let existing = table
            .routes
            .iter()
            .position(|r| r.destination == destination);
        let Some(t) = self.route_tables.get_mut(table_id) else {
            return Err(route_table_not_found(table_id));
        };
        match (existing, replace) {
            (Some(n), _) if t.routes[n].target == Target::Local => {
                Err(AwsError::invalid_value(format!(
                    "The local route {destination} of {table_id} cannot be created or replaced"
                )))
            }
            (Some(_), false) => Err(AwsError::bad(
                "RouteAlreadyExists",
                format!("The route identified by {destination} already exists."),
            )),
            (None, true) => Err(AwsError::invalid_value(format!(
                "There is no route defined for '{destination}' in the route table. Use CreateRoute instead."
            ))),
            (Some(n), true) => {
                t.routes[n].target = target;
                t.routes[n].origin = "CreateRoute";
                Ok(())
            }
            (None, false) => {
                t.routes.push(Route {
                    destination,
                    target,
                    origin: "CreateRoute",
                });
                Ok(())
            }
        }
    }

    /// DeleteRoute (console only here).
    pub fn delete_route(
        &mut self,
        table_id: &str,
        account: &str,
        destination: Ipv4Net,
    ) -> Result<(), AwsError> {
        self.route_table(table_id, account)?;
        let Some(t) = self.route_tables.get_mut(table_id) else {
            return Err(route_table_not_found(table_id));
        };
        let before = t.routes.len();
        t.routes
            .retain(|r| r.destination != destination || r.target == Target::Local);
        if t.routes.len() == before {
            return Err(AwsError::bad(
                "InvalidRoute.NotFound",
                format!(
                    "no route with destination-cidr-block {destination} in route table {table_id}"
                ),
            ));
        }
        Ok(())
    }

    pub fn set_source_dest_check(&mut self, eni_id: &str, v: bool) -> Result<(), AwsError> {
        self.eni(eni_id)?;
        if let Some(e) = self.enis.get_mut(eni_id) {
            e.source_dest_check = v;
        }
        Ok(())
    }

    pub fn set_description(&mut self, eni_id: &str, v: &str) -> Result<(), AwsError> {
        self.eni(eni_id)?;
        if let Some(e) = self.enis.get_mut(eni_id) {
            e.description = v.to_owned();
        }
        Ok(())
    }

    /// The main route table of a VPC, and the table a subnet uses.
    pub fn table_for_subnet(&self, subnet: &str) -> Option<&RouteTable> {
        let vpc = &self.subnets.get(subnet)?.vpc;
        self.route_tables
            .values()
            .find(|t| t.subnets.iter().any(|(_, s)| s == subnet))
            .or_else(|| {
                self.route_tables
                    .values()
                    .find(|t| &t.vpc == vpc && t.main.is_some())
            })
    }
}

fn in_use(rules: &WriteRules, ip: Ipv4Addr) -> AwsError {
    AwsError::bad(
        &rules.reassign_conflict_code,
        format!("Address {ip} is in use."),
    )
}

pub fn allocation_not_found(id: &str) -> AwsError {
    AwsError::not_found(
        "InvalidAllocationID.NotFound",
        format!("The allocation ID '{id}' does not exist"),
    )
}
