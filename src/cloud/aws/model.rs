//! EC2's and STS's answers as types, read fail-closed like `oci/model.rs`: a field a
//! decision depends on that is missing, empty, unparsable or holds a state we do not know
//! is an error, never a default. An ENI list that is not there is not "no ENI"; a private
//! IP we cannot read is not "not ours"; a route whose state is new to us is not "active".
//! Fields nobody decides on (DNS names, tags, owner ids) are not read, and unknown
//! elements are ignored (AWS adds fields). Element names: botocore's `ec2/2016-11-15`
//! model (`locationName`s, lists as `<…Set><item>`), research/aws-azure.md §A2.

use std::net::Ipv4Addr;

use super::xml::Node;

/// `instanceState/name` (model `InstanceStateName`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl std::str::FromStr for InstanceState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "shutting-down" => Self::ShuttingDown,
            "terminated" => Self::Terminated,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            _ => return Err(()),
        })
    }
}

/// An ENI's `status` (model `NetworkInterfaceStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EniStatus {
    Available,
    Associated,
    Attaching,
    InUse,
    Detaching,
}

impl std::str::FromStr for EniStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "available" => Self::Available,
            "associated" => Self::Associated,
            "attaching" => Self::Attaching,
            "in-use" => Self::InUse,
            "detaching" => Self::Detaching,
            _ => return Err(()),
        })
    }
}

/// The Elastic IP on one private IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicIp {
    pub public_ip: Ipv4Addr,
    /// In DescribeNetworkInterfaces' answer; DescribeInstances' has only the address.
    pub allocation_id: Option<String>,
    pub association_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivateIp {
    pub ip: Ipv4Addr,
    pub primary: bool,
    pub public: Option<PublicIp>,
}

/// A network interface, from DescribeNetworkInterfaces or inside DescribeInstances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eni {
    pub id: String,
    pub subnet_id: String,
    pub vpc_id: String,
    /// Lower-case, colon-separated, as IMDS writes it.
    pub mac: String,
    pub status: EniStatus,
    /// The instance it is attached to (absent for a detached ENI).
    pub instance_id: Option<String>,
    pub source_dest_check: bool,
    /// Primary first, as EC2 lists them.
    pub private_ips: Vec<PrivateIp>,
}

impl Eni {
    pub fn holds(&self, ip: Ipv4Addr) -> bool {
        self.private_ips.iter().any(|p| p.ip == ip)
    }

    pub fn primary_ip(&self) -> Option<Ipv4Addr> {
        self.private_ips.iter().find(|p| p.primary).map(|p| p.ip)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub state: InstanceState,
    pub zone: String,
    pub enis: Vec<Eni>,
}

/// An Elastic IP (DescribeAddresses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub public_ip: Ipv4Addr,
    pub allocation_id: String,
    /// Set together when associated.
    pub association: Option<Association>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Association {
    pub id: String,
    /// Absent when the address is on something that is not an ENI of this account.
    pub eni: Option<String>,
    pub instance_id: Option<String>,
    pub private_ip: Option<Ipv4Addr>,
}

impl Address {
    /// Held by exactly `private_ip` of `eni` — both known and equal, never by default.
    pub fn held_by(&self, eni: &str, private_ip: Ipv4Addr) -> bool {
        self.association
            .as_ref()
            .is_some_and(|a| a.eni.as_deref() == Some(eni) && a.private_ip == Some(private_ip))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Cidr(String),
    Ipv6(String),
    PrefixList(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `networkInterfaceId` (with `instanceId` when the ENI is attached).
    Eni {
        eni: String,
        instance: Option<String>,
    },
    /// `gatewayId` (`local` for the VPC's own CIDR, `igw-…`, `vgw-…`).
    Gateway(String),
    /// An instance without an ENI id (EC2-Classic era answers).
    Instance(String),
    /// Any other kind (NAT gateway, transit gateway, peering, …): never one of ours.
    Other(String),
}

/// `state` of a route: `blackhole` when its target is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteState {
    Active,
    Blackhole,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub destination: Destination,
    pub target: Target,
    pub state: RouteState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTable {
    pub id: String,
    pub vpc_id: String,
    pub routes: Vec<Route>,
}

impl RouteTable {
    /// The route for exactly `cidr` (e.g. `192.168.100.10/32`).
    pub fn route(&self, cidr: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.destination == Destination::Cidr(cidr.to_owned()))
    }
}

/// Temporary credentials from STS AssumeRole.
pub struct AssumedCredentials {
    pub access_key: String,
    pub secret: String,
    pub token: String,
    /// Unix seconds.
    pub expires: u64,
}

/// One page of a paginated Describe*: its items and the next page's token.
pub type Page<T> = Result<(Vec<T>, Option<String>), String>;

/// A paginated answer's `nextToken` (absent or empty: the last page).
pub fn next_token(root: &Node) -> Option<String> {
    root.text_of("nextToken").map(str::to_owned)
}

fn private_ips(n: &Node) -> Result<Vec<PrivateIp>, String> {
    let mut out = Vec::new();
    for item in n.need_items("privateIpAddressesSet")? {
        let public = match item.child("association") {
            None => None,
            Some(a) => Some(PublicIp {
                public_ip: a.need_parsed("publicIp")?,
                allocation_id: a.text_of("allocationId").map(str::to_owned),
                association_id: a.text_of("associationId").map(str::to_owned),
            }),
        };
        out.push(PrivateIp {
            ip: item.need_parsed("privateIpAddress")?,
            primary: item.need_bool("primary")?,
            public,
        });
    }
    if out.iter().filter(|p| p.primary).count() != 1 {
        return Err(format!(
            "network interface {} lists {} primary private IPs, not one",
            n.text_of("networkInterfaceId").unwrap_or("?"),
            out.iter().filter(|p| p.primary).count()
        ));
    }
    Ok(out)
}

/// One `<item>` of `networkInterfaceSet` (either answer's shape).
pub fn eni(n: &Node) -> Result<Eni, String> {
    let status = n.need_text("status")?;
    Ok(Eni {
        id: n.need_text("networkInterfaceId")?.to_owned(),
        subnet_id: n.need_text("subnetId")?.to_owned(),
        vpc_id: n.need_text("vpcId")?.to_owned(),
        mac: n.need_text("macAddress")?.to_ascii_lowercase(),
        status: status
            .parse()
            .map_err(|_| format!("unknown network interface status {status:?}"))?,
        instance_id: n
            .child("attachment")
            .and_then(|a| a.text_of("instanceId"))
            .map(str::to_owned),
        source_dest_check: n.need_bool("sourceDestCheck")?,
        private_ips: private_ips(n)?,
    })
}

/// DescribeNetworkInterfaces: the ENIs and the next page's token.
pub fn network_interfaces(root: &Node) -> Page<Eni> {
    let enis = root
        .need_items("networkInterfaceSet")?
        .into_iter()
        .map(eni)
        .collect::<Result<_, _>>()?;
    Ok((enis, next_token(root)))
}

/// DescribeInstances: every instance of every reservation, and the next page's token.
pub fn instances(root: &Node) -> Page<Instance> {
    let mut out = Vec::new();
    for r in root.need_items("reservationSet")? {
        for i in r.need_items("instancesSet")? {
            let id = i.need_text("instanceId")?.to_owned();
            let state = i.need("instanceState")?.need_text("name")?;
            let mut enis: Vec<Eni> = i
                .need_items("networkInterfaceSet")?
                .into_iter()
                .map(eni)
                .collect::<Result<_, _>>()?;
            for e in &mut enis {
                // DescribeInstances' attachment has no instanceId: it is this one.
                e.instance_id.get_or_insert_with(|| id.clone());
            }
            out.push(Instance {
                state: state
                    .parse()
                    .map_err(|_| format!("unknown instance state {state:?}"))?,
                zone: i
                    .need("placement")?
                    .need_text("availabilityZone")?
                    .to_owned(),
                enis,
                id,
            });
        }
    }
    Ok((out, next_token(root)))
}

/// DescribeAddresses (not paginated).
pub fn addresses(root: &Node) -> Result<Vec<Address>, String> {
    let mut out = Vec::new();
    for a in root.need_items("addressesSet")? {
        let association = match a.text_of("associationId") {
            None => None,
            Some(id) => Some(Association {
                id: id.to_owned(),
                eni: a.text_of("networkInterfaceId").map(str::to_owned),
                instance_id: a.text_of("instanceId").map(str::to_owned),
                private_ip: a.opt_parsed("privateIpAddress")?,
            }),
        };
        out.push(Address {
            public_ip: a.need_parsed("publicIp")?,
            // A VPC address always has one; without it nothing can be associated.
            allocation_id: a.need_text("allocationId")?.to_owned(),
            association,
        });
    }
    Ok(out)
}

fn route(r: &Node) -> Result<Route, String> {
    let destination = if let Some(c) = r.text_of("destinationCidrBlock") {
        Destination::Cidr(c.to_owned())
    } else if let Some(c) = r.text_of("destinationIpv6CidrBlock") {
        Destination::Ipv6(c.to_owned())
    } else if let Some(p) = r.text_of("destinationPrefixListId") {
        Destination::PrefixList(p.to_owned())
    } else {
        return Err("a route without a destination".into());
    };
    let target = if let Some(e) = r.text_of("networkInterfaceId") {
        Target::Eni {
            eni: e.to_owned(),
            instance: r.text_of("instanceId").map(str::to_owned),
        }
    } else if let Some(i) = r.text_of("instanceId") {
        Target::Instance(i.to_owned())
    } else if let Some(g) = r.text_of("gatewayId") {
        Target::Gateway(g.to_owned())
    } else {
        let other = [
            "natGatewayId",
            "transitGatewayId",
            "vpcPeeringConnectionId",
            "egressOnlyInternetGatewayId",
            "localGatewayId",
            "carrierGatewayId",
            "coreNetworkArn",
            "odbNetworkArn",
        ]
        .iter()
        .find_map(|k| r.text_of(k).map(|v| format!("{k}={v}")))
        .unwrap_or_else(|| "unknown target".to_owned());
        Target::Other(other)
    };
    let state = match r.need_text("state")? {
        "active" => RouteState::Active,
        "blackhole" => RouteState::Blackhole,
        s => return Err(format!("unknown route state {s:?}")),
    };
    Ok(Route {
        destination,
        target,
        state,
    })
}

/// DescribeRouteTables: the tables and the next page's token.
pub fn route_tables(root: &Node) -> Page<RouteTable> {
    let mut out = Vec::new();
    for t in root.need_items("routeTableSet")? {
        out.push(RouteTable {
            id: t.need_text("routeTableId")?.to_owned(),
            vpc_id: t.need_text("vpcId")?.to_owned(),
            routes: t
                .need_items("routeSet")?
                .into_iter()
                .map(route)
                .collect::<Result<_, _>>()?,
        });
    }
    Ok((out, next_token(root)))
}

/// AssociateAddress: the new association's id (what DisassociateAddress takes).
pub fn association_id(root: &Node) -> Result<String, String> {
    Ok(root.need_text("associationId")?.to_owned())
}

/// The `<return>` of Unassign/Disassociate/CreateRoute/ReplaceRoute: `false` is a
/// refusal; absent is success (the HTTP status said so; some emulators omit it).
pub fn returned(root: &Node) -> Result<(), String> {
    match root.text_of("return") {
        None | Some("true") => Ok(()),
        Some(v) => Err(format!("the call answered return={v:?}")),
    }
}

/// `2026-11-22T07:21:33Z` (or with fractional seconds) as Unix seconds.
pub fn unix_time(s: &str) -> Result<u64, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("not an RFC 3339 time: {s:?}"))?;
    u64::try_from(t.unix_timestamp()).map_err(|_| format!("a time before 1970: {s:?}"))
}

/// STS AssumeRole's credentials.
pub fn assumed_credentials(root: &Node) -> Result<AssumedCredentials, String> {
    let c = root.need("AssumeRoleResult")?.need("Credentials")?;
    Ok(AssumedCredentials {
        access_key: c.need_text("AccessKeyId")?.to_owned(),
        secret: c.need_text("SecretAccessKey")?.to_owned(),
        token: c.need_text("SessionToken")?.to_owned(),
        expires: unix_time(c.need_text("Expiration")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::aws::xml::parse;

    /// The emulator's DescribeNetworkInterfaces answer for node-a of
    /// `crates/sim/examples/world-aws.toml` (botocore's shapes, research §A2.4).
    pub const ENIS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeNetworkInterfacesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId><networkInterfaceSet><item><networkInterfaceId>eni-0c10d0000000000e1</networkInterfaceId><subnetId>subnet-0c10d0000000000b1</subnetId><vpcId>vpc-0c10d0000000000a1</vpcId><availabilityZone>eu-west-1a</availabilityZone><availabilityZoneId>euw1-az1</availabilityZoneId><description></description><ownerId>111122223333</ownerId><requesterManaged>false</requesterManaged><status>in-use</status><macAddress>02:66:00:00:00:01</macAddress><privateIpAddress>10.0.1.11</privateIpAddress><privateDnsName>ip-10-0-1-11.eu-west-1.compute.internal</privateDnsName><sourceDestCheck>false</sourceDestCheck><interfaceType>interface</interfaceType><groupSet><item><groupId>sg-0c10d0000000000a1</groupId><groupName>default</groupName></item></groupSet><attachment><attachmentId>eni-attach-1</attachmentId><deviceIndex>0</deviceIndex><networkCardIndex>0</networkCardIndex><instanceId>i-0c10d000000000001</instanceId><instanceOwnerId>111122223333</instanceOwnerId><status>attached</status><attachTime>2026-11-20T10:00:00.000Z</attachTime><deleteOnTermination>true</deleteOnTermination></attachment><privateIpAddressesSet><item><privateIpAddress>10.0.1.11</privateIpAddress><privateDnsName>ip-10-0-1-11.eu-west-1.compute.internal</privateDnsName><primary>true</primary></item><item><privateIpAddress>10.0.1.100</privateIpAddress><privateDnsName>ip-10-0-1-100.eu-west-1.compute.internal</privateDnsName><primary>false</primary><association><allocationId>eipalloc-0c10d00000000000f1</allocationId><associationId>eipassoc-0c10d0000000001</associationId><ipOwnerId>111122223333</ipOwnerId><publicDnsName>ec2-203-0-113-10.eu-west-1.compute.amazonaws.com</publicDnsName><publicIp>203.0.113.10</publicIp></association></item></privateIpAddressesSet><ipv6AddressesSet/><tagSet/></item></networkInterfaceSet><nextToken>page-2</nextToken></DescribeNetworkInterfacesResponse>"#;

    #[test]
    fn network_interfaces_of_the_emulator() {
        let (enis, next) = network_interfaces(&parse(ENIS.as_bytes()).unwrap()).unwrap();
        assert_eq!(next.as_deref(), Some("page-2"));
        let e = &enis[0];
        assert_eq!(e.id, "eni-0c10d0000000000e1");
        assert_eq!(e.instance_id.as_deref(), Some("i-0c10d000000000001"));
        assert_eq!(e.status, EniStatus::InUse);
        assert!(!e.source_dest_check);
        assert_eq!(e.primary_ip(), Some("10.0.1.11".parse().unwrap()));
        assert!(e.holds("10.0.1.100".parse().unwrap()));
        let p = e.private_ips[1].public.as_ref().unwrap();
        assert_eq!(p.public_ip.to_string(), "203.0.113.10");
        assert_eq!(
            p.allocation_id.as_deref(),
            Some("eipalloc-0c10d00000000000f1")
        );
    }

    /// Every field a decision depends on, removed or garbled, makes the answer an error.
    #[test]
    fn a_missing_or_unknown_field_is_an_error_not_a_default() {
        for (from, to) in [
            ("<networkInterfaceSet>", "<networkInterfaceList>"),
            ("<status>in-use</status>", "<status>moving</status>"),
            ("<status>in-use</status>", ""),
            ("<macAddress>02:66:00:00:00:01</macAddress>", ""),
            (
                "<sourceDestCheck>false</sourceDestCheck>",
                "<sourceDestCheck>no</sourceDestCheck>",
            ),
            (
                "<privateIpAddress>10.0.1.100</privateIpAddress>",
                "<privateIpAddress>10.0.1.300</privateIpAddress>",
            ),
            ("<primary>false</primary>", "<primary>true</primary>"),
            ("<primary>false</primary>", ""),
            ("<publicIp>203.0.113.10</publicIp>", ""),
            (
                "<subnetId>subnet-0c10d0000000000b1</subnetId>",
                "<subnetId></subnetId>",
            ),
            ("<privateIpAddressesSet>", "<privateIpAddresses>"),
        ] {
            let doc = ENIS.replacen(from, to, 1);
            assert_ne!(doc, ENIS, "{from}");
            let parsed = parse(doc.as_bytes()).and_then(|n| network_interfaces(&n));
            assert!(parsed.is_err(), "{from} -> {to}: {parsed:?}");
        }
        let empty = "<DescribeNetworkInterfacesResponse><requestId>r</requestId><networkInterfaceSet/></DescribeNetworkInterfacesResponse>";
        assert!(network_interfaces(&parse(empty.as_bytes()).unwrap())
            .unwrap()
            .0
            .is_empty());
        let none = "<DescribeNetworkInterfacesResponse><requestId>r</requestId></DescribeNetworkInterfacesResponse>";
        assert!(network_interfaces(&parse(none.as_bytes()).unwrap()).is_err());
    }

    /// The answer's shape as AWS documents it (research/aws-azure.md §A2.4: the EC2 API
    /// reference's element names; no DNS names, a bare `<description/>`).
    #[test]
    fn network_interfaces_as_aws_documents_them() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeNetworkInterfacesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>fc45294c-006b-457b-bab9-012f5b3b0e40</requestId>
  <networkInterfaceSet>
    <item>
      <networkInterfaceId>eni-0123456789abcdef0</networkInterfaceId>
      <subnetId>subnet-0ac62554</subnetId>
      <vpcId>vpc-d295a6a7</vpcId>
      <availabilityZone>eu-west-1a</availabilityZone>
      <description/>
      <ownerId>111122223333</ownerId>
      <requesterManaged>false</requesterManaged>
      <status>in-use</status>
      <macAddress>0E:49:61:0F:C3:11</macAddress>
      <privateIpAddress>10.0.1.10</privateIpAddress>
      <sourceDestCheck>true</sourceDestCheck>
      <interfaceType>interface</interfaceType>
      <groupSet><item><groupId>sg-0b07f8f6cb485d4df</groupId><groupName>default</groupName></item></groupSet>
      <attachment>
        <attachmentId>eni-attach-0a1b2c3d4e5f60718</attachmentId>
        <instanceId>i-1234567890abcdef0</instanceId>
        <instanceOwnerId>111122223333</instanceOwnerId>
        <deviceIndex>0</deviceIndex>
        <networkCardIndex>0</networkCardIndex>
        <status>attached</status>
        <attachTime>2026-11-20T10:00:00.000Z</attachTime>
        <deleteOnTermination>true</deleteOnTermination>
      </attachment>
      <privateIpAddressesSet>
        <item><privateIpAddress>10.0.1.10</privateIpAddress><primary>true</primary></item>
        <item>
          <privateIpAddress>10.0.1.100</privateIpAddress><primary>false</primary>
          <association>
            <publicIp>203.0.113.25</publicIp><allocationId>eipalloc-0abc</allocationId>
            <associationId>eipassoc-0def</associationId><ipOwnerId>111122223333</ipOwnerId>
          </association>
        </item>
      </privateIpAddressesSet>
      <ipv6AddressesSet/>
      <tagSet/>
    </item>
  </networkInterfaceSet>
</DescribeNetworkInterfacesResponse>"#;
        let (enis, next) = network_interfaces(&parse(doc.as_bytes()).unwrap()).unwrap();
        assert_eq!(next, None);
        let e = &enis[0];
        assert_eq!(e.mac, "0e:49:61:0f:c3:11", "lower-cased like IMDS");
        assert!(e.source_dest_check);
        assert_eq!(e.instance_id.as_deref(), Some("i-1234567890abcdef0"));
        let vip = &e.private_ips[1];
        assert_eq!(
            (vip.ip.to_string(), vip.primary),
            ("10.0.1.100".into(), false)
        );
        assert_eq!(
            vip.public.as_ref().unwrap().association_id.as_deref(),
            Some("eipassoc-0def")
        );
    }

    #[test]
    fn instances_take_their_id_into_their_enis() {
        let eni_item = ENIS
            .split_once("<networkInterfaceSet>")
            .unwrap()
            .1
            .split_once("</networkInterfaceSet>")
            .unwrap()
            .0
            .replace("<instanceId>i-0c10d000000000001</instanceId>", "");
        let doc = format!("<DescribeInstancesResponse><requestId>r</requestId><reservationSet><item><reservationId>r-1</reservationId><instancesSet><item><instanceId>i-0c10d000000000001</instanceId><instanceState><code>16</code><name>running</name></instanceState><placement><availabilityZone>eu-west-1a</availabilityZone></placement><networkInterfaceSet>{eni_item}</networkInterfaceSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>");
        let (is, next) = instances(&parse(doc.as_bytes()).unwrap()).unwrap();
        assert_eq!(next, None);
        assert_eq!(is[0].state, InstanceState::Running);
        assert_eq!(is[0].zone, "eu-west-1a");
        assert_eq!(
            is[0].enis[0].instance_id.as_deref(),
            Some("i-0c10d000000000001")
        );
        let bad = doc.replace("<name>running</name>", "<name>hibernating</name>");
        assert!(instances(&parse(bad.as_bytes()).unwrap()).is_err());
    }

    #[test]
    fn addresses_hold_only_with_eni_and_private_ip() {
        let doc = "<DescribeAddressesResponse><requestId>r</requestId><addressesSet><item><publicIp>203.0.113.10</publicIp><allocationId>eipalloc-1</allocationId><domain>vpc</domain><associationId>eipassoc-1</associationId><instanceId>i-1</instanceId><networkInterfaceId>eni-1</networkInterfaceId><privateIpAddress>10.0.1.100</privateIpAddress><tagSet/></item><item><publicIp>203.0.113.11</publicIp><allocationId>eipalloc-2</allocationId><domain>vpc</domain><tagSet/></item></addressesSet></DescribeAddressesResponse>";
        let a = addresses(&parse(doc.as_bytes()).unwrap()).unwrap();
        let ip = "10.0.1.100".parse().unwrap();
        assert!(a[0].held_by("eni-1", ip));
        assert!(!a[0].held_by("eni-2", ip));
        assert!(a[1].association.is_none() && !a[1].held_by("eni-1", ip));
        let no_eni = doc.replace("<networkInterfaceId>eni-1</networkInterfaceId>", "");
        let a = addresses(&parse(no_eni.as_bytes()).unwrap()).unwrap();
        assert!(!a[0].held_by("eni-1", ip), "unknown ENI is not ours");
        let no_alloc = doc.replace("<allocationId>eipalloc-2</allocationId>", "");
        assert!(addresses(&parse(no_alloc.as_bytes()).unwrap()).is_err());
    }

    #[test]
    fn route_tables_with_every_kind_of_target() {
        let doc = "<DescribeRouteTablesResponse><requestId>r</requestId><routeTableSet><item><routeTableId>rtb-1</routeTableId><vpcId>vpc-1</vpcId><ownerId>1</ownerId><routeSet><item><destinationCidrBlock>10.0.0.0/16</destinationCidrBlock><gatewayId>local</gatewayId><state>active</state><origin>CreateRouteTable</origin></item><item><destinationCidrBlock>192.168.100.10/32</destinationCidrBlock><instanceId>i-1</instanceId><instanceOwnerId>1</instanceOwnerId><networkInterfaceId>eni-1</networkInterfaceId><state>active</state><origin>CreateRoute</origin></item><item><destinationCidrBlock>192.168.100.11/32</destinationCidrBlock><networkInterfaceId>eni-gone</networkInterfaceId><state>blackhole</state></item><item><destinationIpv6CidrBlock>::/0</destinationIpv6CidrBlock><natGatewayId>nat-1</natGatewayId><state>active</state></item></routeSet><associationSet/><tagSet/></item></routeTableSet></DescribeRouteTablesResponse>";
        let (t, _) = route_tables(&parse(doc.as_bytes()).unwrap()).unwrap();
        let r = t[0].route("192.168.100.10/32").unwrap();
        assert_eq!(
            r.target,
            Target::Eni {
                eni: "eni-1".into(),
                instance: Some("i-1".into())
            }
        );
        assert_eq!(
            t[0].route("192.168.100.11/32").unwrap().state,
            RouteState::Blackhole
        );
        assert_eq!(
            t[0].routes[3].target,
            Target::Other("natGatewayId=nat-1".into())
        );
        assert_eq!(
            t[0].route("10.0.0.0/16").unwrap().target,
            Target::Gateway("local".into())
        );
        let bad = doc.replacen("<state>active</state>", "<state>pending</state>", 1);
        assert!(route_tables(&parse(bad.as_bytes()).unwrap()).is_err());
    }

    #[test]
    fn results_and_sts_credentials() {
        let ok = parse(b"<ReplaceRouteResponse><requestId>r</requestId><return>true</return></ReplaceRouteResponse>").unwrap();
        assert!(returned(&ok).is_ok());
        let no = parse(b"<X><return>false</return></X>").unwrap();
        assert!(returned(&no).is_err());
        let a = parse(b"<AssociateAddressResponse><requestId>r</requestId><associationId>eipassoc-9</associationId></AssociateAddressResponse>").unwrap();
        assert_eq!(association_id(&a).unwrap(), "eipassoc-9");
        assert!(association_id(&ok).is_err());
        let sts = br#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIARTX3GSDSYWYTYR2M</AccessKeyId><SecretAccessKey>Pj+D9rZL8FFDlnSOCOyKVPPx02L75hFIH8bWWZKW</SecretAccessKey><SessionToken>FQoGZXIvYXdzEBYaD</SessionToken><Expiration>2026-11-22T07:21:33.077050Z</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROA3X42LBCDHDDEH0ZC8:cloudvip</AssumedRoleId><Arn>arn:aws:sts::111122223333:assumed-role/cloudvip-rtb/cloudvip</Arn></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>"#;
        let c = assumed_credentials(&parse(sts).unwrap()).unwrap();
        assert_eq!(c.access_key, "ASIARTX3GSDSYWYTYR2M");
        assert_eq!(c.expires, 1_795_332_093);
        assert_eq!(unix_time("2020-11-05T02:02:26Z").unwrap(), 1_604_541_746);
        assert!(unix_time("yesterday").is_err());
        let bad = std::str::from_utf8(sts)
            .unwrap()
            .replace("<SessionToken>FQoGZXIvYXdzEBYaD</SessionToken>", "");
        assert!(assumed_credentials(&parse(bad.as_bytes()).unwrap()).is_err());
    }
}
