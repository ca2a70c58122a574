//! EC2 resources as XML (element names from botocore's `ec2/2016-11-15` model: the
//! members' `locationName`s, lists as `<…Set><item>`), and the values each `Filter.N.Name`
//! matches against. Rendering reads a `Net` view, which may lag (`history.rs`).

use std::net::Ipv4Addr;

use super::filter::tag_field;
use super::state::{Eip, Eni, Instance, Net, RouteTable, Subnet, Target, Vpc};
use super::time;
use super::xml::El;

pub struct Names<'a> {
    pub region: &'a str,
    pub account: &'a str,
}

impl Names<'_> {
    pub fn private_dns(&self, ip: Ipv4Addr) -> String {
        let dashed = ip.to_string().replace('.', "-");
        if self.region == "us-east-1" {
            format!("ip-{dashed}.ec2.internal")
        } else {
            format!("ip-{dashed}.{}.compute.internal", self.region)
        }
    }

    pub fn public_dns(&self, ip: Ipv4Addr) -> String {
        let dashed = ip.to_string().replace('.', "-");
        if self.region == "us-east-1" {
            format!("ec2-{dashed}.compute-1.amazonaws.com")
        } else {
            format!("ec2-{dashed}.{}.compute.amazonaws.com", self.region)
        }
    }
}

/// `euw1-az1` for `eu-west-1a` (real zone ids are shuffled per account; the shape is AWS's).
pub fn zone_id(zone: &str) -> String {
    let (region, letter) = zone.split_at(zone.len().saturating_sub(1));
    let mut short = String::new();
    for part in region.split('-') {
        let p = match part {
            "north" => "n",
            "south" => "s",
            "east" => "e",
            "west" => "w",
            "northeast" => "ne",
            "southeast" => "se",
            "northwest" => "nw",
            "southwest" => "sw",
            "central" => "c",
            other => other,
        };
        short.push_str(p);
    }
    let n = letter
        .bytes()
        .next()
        .map_or(1, |b| b.saturating_sub(b'a') + 1);
    format!("{short}-az{n}")
}

/// Every VPC has one security group here, derived from its id.
pub fn default_sg(vpc: &str) -> String {
    format!("sg-{}", vpc.trim_start_matches("vpc-"))
}

fn groups(vpc: &str) -> El {
    El::new("groupSet").child(
        El::new("item")
            .text_child("groupId", default_sg(vpc))
            .text_child("groupName", "default"),
    )
}

fn name_tags(name: &Option<String>) -> Vec<(&str, &str)> {
    name.as_deref()
        .map(|n| vec![("Name", n)])
        .unwrap_or_default()
}

fn tag_set(tags: &[(&str, &str)]) -> El {
    let mut s = El::new("tagSet");
    for (k, v) in tags {
        s.push(
            El::new("item")
                .text_child("key", *k)
                .text_child("value", *v),
        );
    }
    s
}

fn b(v: bool) -> String {
    v.to_string()
}

/// Association element for a private IP carrying an Elastic IP. `full` adds the
/// allocation and association ids (DescribeNetworkInterfaces' shape; DescribeInstances'
/// has only the public IP, its DNS name and owner).
fn association(n: &Names<'_>, eip: &Eip, full: bool) -> El {
    let mut a = El::new("association");
    if full {
        a = a.text_child("allocationId", &eip.allocation_id).opt_child(
            "associationId",
            eip.association.as_ref().map(|s| s.id.clone()),
        );
    }
    a.text_child("ipOwnerId", n.account)
        .text_child("publicDnsName", n.public_dns(eip.public_ip))
        .text_child("publicIp", eip.public_ip.to_string())
}

/// `privateIpAddressesSet`: every private IP, primary first, with its Elastic IP.
fn private_ip_set(net: &Net, n: &Names<'_>, e: &Eni, full: bool) -> El {
    let mut ips = El::new("privateIpAddressesSet");
    for (k, ip) in e.private_ips.iter().enumerate() {
        let mut item = El::new("item")
            .text_child("privateIpAddress", ip.to_string())
            .text_child("privateDnsName", n.private_dns(*ip))
            .text_child("primary", b(k == 0));
        if let Some(a) = net.eip_on(&e.id, *ip) {
            item = item.child(association(n, a, full));
        }
        ips.push(item);
    }
    ips
}

fn attachment(e: &Eni, instance_owner: Option<&str>, launched: &str) -> El {
    let mut a = El::new("attachment")
        .text_child("attachmentId", &e.attachment_id)
        .text_child("deviceIndex", e.device_index.to_string())
        .text_child("networkCardIndex", "0");
    if let Some(owner) = instance_owner {
        a = a
            .text_child("instanceId", &e.instance)
            .text_child("instanceOwnerId", owner);
    }
    a.text_child("status", "attached")
        .text_child("attachTime", launched)
        .text_child("deleteOnTermination", b(e.device_index == 0))
}

fn launched(net: &Net, e: &Eni) -> String {
    net.instances
        .get(&e.instance)
        .map(|i| time::iso_millis(i.launched))
        .unwrap_or_default()
}

/// DescribeNetworkInterfaces' `item`.
pub fn eni(net: &Net, n: &Names<'_>, e: &Eni) -> El {
    let primary = e.private_ips[0];
    let ips = private_ip_set(net, n, e, true);
    let mut item = El::new("item")
        .text_child("networkInterfaceId", &e.id)
        .text_child("subnetId", &e.subnet)
        .text_child("vpcId", &e.vpc)
        .text_child("availabilityZone", &e.zone)
        .text_child("availabilityZoneId", zone_id(&e.zone))
        .text_child("description", &e.description)
        .text_child("ownerId", n.account)
        .text_child("requesterManaged", "false")
        .text_child("status", "in-use")
        .text_child("macAddress", &e.mac)
        .text_child("privateIpAddress", primary.to_string())
        .text_child("privateDnsName", n.private_dns(primary))
        .text_child("sourceDestCheck", b(e.source_dest_check))
        .text_child("interfaceType", "interface")
        .child(groups(&e.vpc))
        .child(attachment(e, Some(n.account), &launched(net, e)));
    if let Some(a) = net.eip_on(&e.id, primary) {
        item = item.child(association(n, a, true));
    }
    item.child(ips)
        .child(El::new("ipv6AddressesSet"))
        .child(El::new("tagSet"))
}

/// A filter's values on an ENI; `None`: not a filter this emulator knows for ENIs.
pub fn eni_field(net: &Net, n: &Names<'_>, e: &Eni, name: &str) -> Option<Vec<String>> {
    let eips: Vec<&Eip> = e
        .private_ips
        .iter()
        .filter_map(|ip| net.eip_on(&e.id, *ip))
        .collect();
    let primary_eip = net.eip_on(&e.id, e.private_ips[0]);
    let ips = || e.private_ips.iter().map(|i| i.to_string()).collect();
    Some(match name {
        "network-interface-id" => vec![e.id.clone()],
        "attachment.instance-id" => vec![e.instance.clone()],
        "attachment.attachment-id" => vec![e.attachment_id.clone()],
        "attachment.device-index" => vec![e.device_index.to_string()],
        "attachment.status" => vec!["attached".into()],
        "attachment.instance-owner-id" | "owner-id" => vec![n.account.to_owned()],
        "attachment.delete-on-termination" => vec![b(e.device_index == 0)],
        "addresses.private-ip-address" | "private-ip-address" => ips(),
        "addresses.primary" => {
            let mut v = vec!["true".to_owned()];
            if e.private_ips.len() > 1 {
                v.push("false".into());
            }
            v
        }
        "addresses.association.public-ip" => eips.iter().map(|a| a.public_ip.to_string()).collect(),
        "addresses.association.owner-id" | "association.ip-owner-id" => {
            eips.iter().map(|_| n.account.to_owned()).collect()
        }
        "association.public-ip" => primary_eip
            .map(|a| a.public_ip.to_string())
            .into_iter()
            .collect(),
        "association.allocation-id" => primary_eip
            .map(|a| a.allocation_id.clone())
            .into_iter()
            .collect(),
        "association.association-id" => primary_eip
            .and_then(|a| a.association.as_ref().map(|s| s.id.clone()))
            .into_iter()
            .collect(),
        "association.public-dns-name" => primary_eip
            .map(|a| n.public_dns(a.public_ip))
            .into_iter()
            .collect(),
        "availability-zone" => vec![e.zone.clone()],
        "availability-zone-id" => vec![zone_id(&e.zone)],
        "description" => vec![e.description.clone()],
        "group-id" => vec![default_sg(&e.vpc)],
        "group-name" => vec!["default".into()],
        "interface-type" => vec!["interface".into()],
        "mac-address" => vec![e.mac.clone()],
        "private-dns-name" => e.private_ips.iter().map(|i| n.private_dns(*i)).collect(),
        "requester-managed" => vec!["false".into()],
        "source-dest-check" => vec![b(e.source_dest_check)],
        "status" => vec!["in-use".into()],
        "subnet-id" => vec![e.subnet.clone()],
        "vpc-id" => vec![e.vpc.clone()],
        other => return tag_field(other, &[]),
    })
}

pub const ENI_FILTERS: &[&str] = &[
    "network-interface-id",
    "attachment.instance-id",
    "attachment.attachment-id",
    "attachment.device-index",
    "attachment.status",
    "attachment.instance-owner-id",
    "attachment.delete-on-termination",
    "owner-id",
    "addresses.private-ip-address",
    "private-ip-address",
    "addresses.primary",
    "addresses.association.public-ip",
    "addresses.association.owner-id",
    "association.ip-owner-id",
    "association.public-ip",
    "association.allocation-id",
    "association.association-id",
    "association.public-dns-name",
    "availability-zone",
    "availability-zone-id",
    "description",
    "group-id",
    "group-name",
    "interface-type",
    "mac-address",
    "private-dns-name",
    "requester-managed",
    "source-dest-check",
    "status",
    "subnet-id",
    "vpc-id",
    "tag-key",
    "tag-value",
];

/// DescribeInstances' `networkInterfaceSet/item` (InstanceNetworkInterface).
fn instance_eni(net: &Net, n: &Names<'_>, e: &Eni) -> El {
    let primary = e.private_ips[0];
    let ips = private_ip_set(net, n, e, false);
    let mut item = El::new("item")
        .text_child("networkInterfaceId", &e.id)
        .text_child("subnetId", &e.subnet)
        .text_child("vpcId", &e.vpc)
        .text_child("description", &e.description)
        .text_child("ownerId", n.account)
        .text_child("status", "in-use")
        .text_child("macAddress", &e.mac)
        .text_child("privateIpAddress", primary.to_string())
        .text_child("privateDnsName", n.private_dns(primary))
        .text_child("sourceDestCheck", b(e.source_dest_check))
        .child(groups(&e.vpc))
        .child(attachment(e, None, &launched(net, e)));
    if let Some(a) = net.eip_on(&e.id, primary) {
        item = item.child(association(n, a, false));
    }
    item.child(ips)
        .child(El::new("ipv6AddressesSet"))
        .text_child("interfaceType", "interface")
}

/// DescribeInstances' `instancesSet/item`.
pub fn instance(
    net: &Net,
    n: &Names<'_>,
    i: &Instance,
    profile: Option<(String, String)>,
    metadata: (&str, u8),
) -> El {
    let enis: Vec<&Eni> = i.enis.iter().filter_map(|e| net.enis.get(e)).collect();
    let primary = enis.first().copied();
    let ip = primary.map(|e| e.private_ips[0]);
    let public = primary.and_then(|e| net.eip_on(&e.id, e.private_ips[0]));
    let mut item = El::new("item")
        .text_child("instanceId", &i.id)
        .text_child("imageId", &i.image_id)
        .child(
            El::new("instanceState")
                .text_child("code", "16")
                .text_child("name", "running"),
        )
        .text_child(
            "privateDnsName",
            ip.map(|ip| n.private_dns(ip)).unwrap_or_default(),
        )
        .text_child(
            "dnsName",
            public
                .map(|a| n.public_dns(a.public_ip))
                .unwrap_or_default(),
        )
        .text_child("reason", "")
        .text_child("amiLaunchIndex", "0")
        .child(El::new("productCodes"))
        .text_child("instanceType", &i.instance_type)
        .text_child("launchTime", time::iso_millis(i.launched))
        .child(
            El::new("placement")
                .text_child("availabilityZone", &i.zone)
                .text_child("availabilityZoneId", zone_id(&i.zone))
                .text_child("groupName", "")
                .text_child("tenancy", "default"),
        )
        .child(El::new("monitoring").text_child("state", "disabled"));
    if let Some(e) = primary {
        item = item
            .text_child("subnetId", &e.subnet)
            .text_child("vpcId", &e.vpc)
            .text_child("privateIpAddress", e.private_ips[0].to_string());
    }
    if let Some(a) = public {
        item = item.text_child("ipAddress", a.public_ip.to_string());
    }
    item = item
        .text_child(
            "sourceDestCheck",
            b(primary.is_none_or(|e| e.source_dest_check)),
        )
        .child(
            primary
                .map(|e| groups(&e.vpc))
                .unwrap_or_else(|| El::new("groupSet")),
        )
        .text_child("architecture", "x86_64")
        .text_child("rootDeviceType", "ebs")
        .text_child("rootDeviceName", "/dev/xvda")
        .child(El::new("blockDeviceMapping"))
        .text_child("virtualizationType", "hvm")
        .text_child("clientToken", "")
        .child(tag_set(&[("Name", i.name.as_str())]))
        .text_child("hypervisor", "xen")
        .set(
            "networkInterfaceSet",
            enis.iter().map(|e| instance_eni(net, n, e)),
        );
    if let Some((arn, id)) = profile {
        item = item.child(
            El::new("iamInstanceProfile")
                .text_child("arn", arn)
                .text_child("id", id),
        );
    }
    item.text_child("ebsOptimized", "false")
        .text_child("enaSupport", "true")
        .child(
            El::new("metadataOptions")
                .text_child("state", "applied")
                .text_child("httpTokens", metadata.0)
                .text_child("httpPutResponseHopLimit", metadata.1.to_string())
                .text_child("httpEndpoint", "enabled")
                .text_child("httpProtocolIpv6", "disabled")
                .text_child("instanceMetadataTags", "disabled"),
        )
        .text_child("platformDetails", "Linux/UNIX")
}

pub fn instance_field(net: &Net, n: &Names<'_>, i: &Instance, name: &str) -> Option<Vec<String>> {
    let enis: Vec<&Eni> = i.enis.iter().filter_map(|e| net.enis.get(e)).collect();
    let primary = enis.first().copied();
    let each = |f: &dyn Fn(&Eni) -> Vec<String>| -> Vec<String> {
        enis.iter().flat_map(|e| f(e)).collect()
    };
    if let Some(sub) = name.strip_prefix("network-interface.") {
        let mapped = match sub {
            "addresses.private-ip-address" | "private-ip-address" => "private-ip-address",
            "addresses.primary" => "addresses.primary",
            "addresses.association.public-ip" => "addresses.association.public-ip",
            "association.public-ip" => "association.public-ip",
            "association.allocation-id" => "association.allocation-id",
            "association.association-id" => "association.association-id",
            "attachment.attachment-id" => "attachment.attachment-id",
            "attachment.device-index" => "attachment.device-index",
            "attachment.status" => "attachment.status",
            "availability-zone" => "availability-zone",
            "description" => "description",
            "group-id" => "group-id",
            "group-name" => "group-name",
            "mac-address" => "mac-address",
            "network-interface-id" => "network-interface-id",
            "owner-id" => "owner-id",
            "private-dns-name" => "private-dns-name",
            "requester-managed" => "requester-managed",
            "source-dest-check" => "source-dest-check",
            "status" => "status",
            "subnet-id" => "subnet-id",
            "vpc-id" => "vpc-id",
            _ => return None,
        };
        return Some(each(&|e| eni_field(net, n, e, mapped).unwrap_or_default()));
    }
    let public = primary.and_then(|e| net.eip_on(&e.id, e.private_ips[0]));
    Some(match name {
        "instance-id" => vec![i.id.clone()],
        "instance-state-name" => vec!["running".into()],
        "instance-state-code" => vec!["16".into()],
        "instance-type" => vec![i.instance_type.clone()],
        "image-id" => vec![i.image_id.clone()],
        "availability-zone" => vec![i.zone.clone()],
        "availability-zone-id" => vec![zone_id(&i.zone)],
        "reservation-id" => vec![i.reservation_id.clone()],
        "owner-id" => vec![n.account.to_owned()],
        "vpc-id" => primary.map(|e| e.vpc.clone()).into_iter().collect(),
        "subnet-id" => primary.map(|e| e.subnet.clone()).into_iter().collect(),
        "private-ip-address" => primary
            .map(|e| e.private_ips[0].to_string())
            .into_iter()
            .collect(),
        "private-dns-name" => primary
            .map(|e| n.private_dns(e.private_ips[0]))
            .into_iter()
            .collect(),
        "ip-address" => public
            .map(|a| a.public_ip.to_string())
            .into_iter()
            .collect(),
        "dns-name" => public
            .map(|a| n.public_dns(a.public_ip))
            .into_iter()
            .collect(),
        "source-dest-check" => vec![b(primary.is_none_or(|e| e.source_dest_check))],
        "architecture" => vec!["x86_64".into()],
        "hypervisor" => vec!["xen".into()],
        "root-device-type" => vec!["ebs".into()],
        "virtualization-type" => vec!["hvm".into()],
        "tenancy" => vec!["default".into()],
        "instance.group-id" => primary.map(|e| default_sg(&e.vpc)).into_iter().collect(),
        "instance.group-name" => vec!["default".into()],
        other => return tag_field(other, &[("Name", i.name.as_str())]),
    })
}

pub const INSTANCE_FILTERS: &[&str] = &[
    "instance-id",
    "instance-state-name",
    "instance-state-code",
    "instance-type",
    "image-id",
    "availability-zone",
    "availability-zone-id",
    "reservation-id",
    "owner-id",
    "vpc-id",
    "subnet-id",
    "private-ip-address",
    "private-dns-name",
    "ip-address",
    "dns-name",
    "source-dest-check",
    "architecture",
    "hypervisor",
    "root-device-type",
    "virtualization-type",
    "tenancy",
    "instance.group-id",
    "instance.group-name",
    "network-interface.addresses.private-ip-address",
    "network-interface.private-ip-address",
    "network-interface.addresses.primary",
    "network-interface.addresses.association.public-ip",
    "network-interface.association.public-ip",
    "network-interface.association.allocation-id",
    "network-interface.association.association-id",
    "network-interface.attachment.attachment-id",
    "network-interface.attachment.device-index",
    "network-interface.attachment.status",
    "network-interface.availability-zone",
    "network-interface.description",
    "network-interface.group-id",
    "network-interface.group-name",
    "network-interface.mac-address",
    "network-interface.network-interface-id",
    "network-interface.owner-id",
    "network-interface.private-dns-name",
    "network-interface.requester-managed",
    "network-interface.source-dest-check",
    "network-interface.status",
    "network-interface.subnet-id",
    "network-interface.vpc-id",
    "tag-key",
    "tag-value",
];

/// DescribeAddresses' `item`.
pub fn address(net: &Net, n: &Names<'_>, a: &Eip) -> El {
    let mut item = El::new("item")
        .text_child("publicIp", a.public_ip.to_string())
        .text_child("allocationId", &a.allocation_id)
        .text_child("domain", "vpc")
        .text_child("publicIpv4Pool", "amazon")
        .text_child("networkBorderGroup", n.region);
    if let Some(s) = &a.association {
        item = item.text_child("associationId", &s.id);
        if let Some(e) = net.enis.get(&s.eni) {
            item = item
                .text_child("instanceId", &e.instance)
                .text_child("networkInterfaceId", &e.id)
                .text_child("networkInterfaceOwnerId", n.account);
        }
        item = item.text_child("privateIpAddress", s.private_ip.to_string());
    }
    item.child(El::new("tagSet"))
}

pub fn address_field(net: &Net, n: &Names<'_>, a: &Eip, name: &str) -> Option<Vec<String>> {
    let s = a.association.as_ref();
    let eni = s.and_then(|s| net.enis.get(&s.eni));
    Some(match name {
        "allocation-id" => vec![a.allocation_id.clone()],
        "public-ip" => vec![a.public_ip.to_string()],
        "domain" => vec!["vpc".into()],
        "network-border-group" => vec![n.region.to_owned()],
        "association-id" => s.map(|s| s.id.clone()).into_iter().collect(),
        "private-ip-address" => s.map(|s| s.private_ip.to_string()).into_iter().collect(),
        "network-interface-id" => eni.map(|e| e.id.clone()).into_iter().collect(),
        "instance-id" => eni.map(|e| e.instance.clone()).into_iter().collect(),
        "network-interface-owner-id" => eni.map(|_| n.account.to_owned()).into_iter().collect(),
        other => return tag_field(other, &[]),
    })
}

pub const ADDRESS_FILTERS: &[&str] = &[
    "allocation-id",
    "public-ip",
    "domain",
    "network-border-group",
    "association-id",
    "private-ip-address",
    "network-interface-id",
    "instance-id",
    "network-interface-owner-id",
    "tag-key",
    "tag-value",
];

/// A route's target as (gateway id, instance id, ENI id) and its state.
fn route_target(
    net: &Net,
    t: &Target,
) -> (Option<String>, Option<String>, Option<String>, &'static str) {
    match t {
        Target::Local => (Some("local".into()), None, None, "active"),
        Target::Gateway(g) => (Some(g.clone()), None, None, "active"),
        Target::Eni(e) => match net.enis.get(e) {
            Some(eni) => (None, Some(eni.instance.clone()), Some(e.clone()), "active"),
            None => (None, None, Some(e.clone()), "blackhole"),
        },
    }
}

/// DescribeRouteTables' `item`.
pub fn route_table(net: &Net, t: &RouteTable) -> El {
    let mut routes = El::new("routeSet");
    for r in &t.routes {
        let (gw, inst, eni, state) = route_target(net, &r.target);
        let mut item =
            El::new("item").text_child("destinationCidrBlock", r.destination.to_string());
        item = item.opt_child("gatewayId", gw);
        if let Some(i) = inst {
            item = item
                .text_child("instanceId", i)
                .text_child("instanceOwnerId", &t.account);
        }
        routes.push(
            item.opt_child("networkInterfaceId", eni)
                .text_child("state", state)
                .text_child("origin", r.origin),
        );
    }
    let mut assocs = El::new("associationSet");
    let assoc = |id: &str, main: bool, subnet: Option<&str>| {
        El::new("item")
            .text_child("main", b(main))
            .text_child("routeTableAssociationId", id)
            .text_child("routeTableId", &t.id)
            .opt_child("subnetId", subnet)
            .child(El::new("associationState").text_child("state", "associated"))
    };
    if let Some(m) = &t.main {
        assocs.push(assoc(m, true, None));
    }
    for (id, s) in &t.subnets {
        assocs.push(assoc(id, false, Some(s)));
    }
    El::new("item")
        .text_child("routeTableId", &t.id)
        .text_child("vpcId", &t.vpc)
        .text_child("ownerId", &t.account)
        .child(routes)
        .child(assocs)
        .child(El::new("propagatingVgwSet"))
        .child(El::new("tagSet"))
}

pub fn route_table_field(net: &Net, t: &RouteTable, name: &str) -> Option<Vec<String>> {
    let targets: Vec<_> = t
        .routes
        .iter()
        .map(|r| route_target(net, &r.target))
        .collect();
    Some(match name {
        "route-table-id" | "association.route-table-id" => vec![t.id.clone()],
        "vpc-id" => vec![t.vpc.clone()],
        "owner-id" => vec![t.account.clone()],
        "association.main" => {
            let mut v = Vec::new();
            if t.main.is_some() {
                v.push("true".to_owned());
            }
            if !t.subnets.is_empty() {
                v.push("false".to_owned());
            }
            v
        }
        "association.subnet-id" => t.subnets.iter().map(|(_, s)| s.clone()).collect(),
        "association.route-table-association-id" => t
            .main
            .iter()
            .cloned()
            .chain(t.subnets.iter().map(|(a, _)| a.clone()))
            .collect(),
        "route.destination-cidr-block" => {
            t.routes.iter().map(|r| r.destination.to_string()).collect()
        }
        "route.gateway-id" => targets.iter().filter_map(|t| t.0.clone()).collect(),
        "route.instance-id" => targets.iter().filter_map(|t| t.1.clone()).collect(),
        "route.network-interface-id" => targets.iter().filter_map(|t| t.2.clone()).collect(),
        "route.state" => targets.iter().map(|t| t.3.to_owned()).collect(),
        "route.origin" => t.routes.iter().map(|r| r.origin.to_owned()).collect(),
        other => return tag_field(other, &[]),
    })
}

pub const ROUTE_TABLE_FILTERS: &[&str] = &[
    "route-table-id",
    "association.route-table-id",
    "vpc-id",
    "owner-id",
    "association.main",
    "association.subnet-id",
    "association.route-table-association-id",
    "route.destination-cidr-block",
    "route.gateway-id",
    "route.instance-id",
    "route.network-interface-id",
    "route.state",
    "route.origin",
    "tag-key",
    "tag-value",
];

fn available(net: &Net, s: &Subnet) -> u32 {
    let size = (s.cidr.last() - s.cidr.first() + 1).saturating_sub(5);
    let used = net
        .enis
        .values()
        .filter(|e| e.subnet == s.id)
        .map(|e| e.private_ips.len() as u32)
        .sum::<u32>();
    size.saturating_sub(used)
}

/// DescribeSubnets' `item`.
pub fn subnet(net: &Net, n: &Names<'_>, s: &Subnet) -> El {
    El::new("item")
        .text_child("subnetId", &s.id)
        .text_child(
            "subnetArn",
            format!("arn:aws:ec2:{}:{}:subnet/{}", n.region, n.account, s.id),
        )
        .text_child("state", "available")
        .text_child("ownerId", n.account)
        .text_child("vpcId", &s.vpc)
        .text_child("cidrBlock", s.cidr.to_string())
        .child(El::new("ipv6CidrBlockAssociationSet"))
        .text_child("availableIpAddressCount", available(net, s).to_string())
        .text_child("availabilityZone", &s.zone)
        .text_child("availabilityZoneId", zone_id(&s.zone))
        .text_child("defaultForAz", "false")
        .text_child("mapPublicIpOnLaunch", "false")
        .text_child("assignIpv6AddressOnCreation", "false")
        .text_child("ipv6Native", "false")
        .child(tag_set(&name_tags(&s.name)))
        .child(
            El::new("privateDnsNameOptionsOnLaunch")
                .text_child("hostnameType", "ip-name")
                .text_child("enableResourceNameDnsARecord", "false")
                .text_child("enableResourceNameDnsAAAARecord", "false"),
        )
}

pub fn subnet_field(net: &Net, n: &Names<'_>, s: &Subnet, name: &str) -> Option<Vec<String>> {
    Some(match name {
        "subnet-id" => vec![s.id.clone()],
        "vpc-id" => vec![s.vpc.clone()],
        "cidr-block" | "cidr" | "cidrBlock" => vec![s.cidr.to_string()],
        "availability-zone" | "availabilityZone" => vec![s.zone.clone()],
        "availability-zone-id" => vec![zone_id(&s.zone)],
        "available-ip-address-count" => vec![available(net, s).to_string()],
        "state" => vec!["available".into()],
        "default-for-az" | "defaultForAz" => vec!["false".into()],
        "map-public-ip-on-launch" => vec!["false".into()],
        "owner-id" => vec![n.account.to_owned()],
        "subnet-arn" => vec![format!(
            "arn:aws:ec2:{}:{}:subnet/{}",
            n.region, n.account, s.id
        )],
        other => return tag_field(other, &name_tags(&s.name)),
    })
}

pub const SUBNET_FILTERS: &[&str] = &[
    "subnet-id",
    "vpc-id",
    "cidr-block",
    "cidr",
    "cidrBlock",
    "availability-zone",
    "availabilityZone",
    "availability-zone-id",
    "available-ip-address-count",
    "state",
    "default-for-az",
    "defaultForAz",
    "map-public-ip-on-launch",
    "owner-id",
    "subnet-arn",
    "tag-key",
    "tag-value",
];

fn vpc_assoc_id(v: &Vpc) -> String {
    format!("vpc-cidr-assoc-{}", v.id.trim_start_matches("vpc-"))
}

fn dhcp_id(v: &Vpc) -> String {
    format!("dopt-{}", v.id.trim_start_matches("vpc-"))
}

/// DescribeVpcs' `item`.
pub fn vpc(n: &Names<'_>, v: &Vpc) -> El {
    El::new("item")
        .text_child("vpcId", &v.id)
        .text_child("ownerId", n.account)
        .text_child("state", "available")
        .text_child("cidrBlock", v.cidr.to_string())
        .child(
            El::new("cidrBlockAssociationSet").child(
                El::new("item")
                    .text_child("cidrBlock", v.cidr.to_string())
                    .text_child("associationId", vpc_assoc_id(v))
                    .child(El::new("cidrBlockState").text_child("state", "associated")),
            ),
        )
        .text_child("dhcpOptionsId", dhcp_id(v))
        .text_child("instanceTenancy", "default")
        .text_child("isDefault", "false")
        .child(tag_set(&name_tags(&v.name)))
}

pub fn vpc_field(n: &Names<'_>, v: &Vpc, name: &str) -> Option<Vec<String>> {
    Some(match name {
        "vpc-id" => vec![v.id.clone()],
        "cidr" | "cidr-block-association.cidr-block" => vec![v.cidr.to_string()],
        "cidr-block-association.association-id" => vec![vpc_assoc_id(v)],
        "cidr-block-association.state" => vec!["associated".into()],
        "dhcp-options-id" => vec![dhcp_id(v)],
        "is-default" => vec!["false".into()],
        "owner-id" => vec![n.account.to_owned()],
        "state" => vec!["available".into()],
        other => return tag_field(other, &name_tags(&v.name)),
    })
}

pub const VPC_FILTERS: &[&str] = &[
    "vpc-id",
    "cidr",
    "cidr-block-association.cidr-block",
    "cidr-block-association.association-id",
    "cidr-block-association.state",
    "dhcp-options-id",
    "is-default",
    "owner-id",
    "state",
    "tag-key",
    "tag-value",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_ids_and_names() {
        assert_eq!(zone_id("eu-west-1a"), "euw1-az1");
        assert_eq!(zone_id("us-east-1c"), "use1-az3");
        assert_eq!(zone_id("ap-southeast-2b"), "apse2-az2");
        let n = Names {
            region: "us-east-1",
            account: "111122223333",
        };
        assert_eq!(
            n.private_dns("10.0.1.5".parse().unwrap()),
            "ip-10-0-1-5.ec2.internal"
        );
        assert_eq!(
            n.public_dns("203.0.113.9".parse().unwrap()),
            "ec2-203-0-113-9.compute-1.amazonaws.com"
        );
    }
}
