//! The EC2 actions the agent and the Debian anchors call, with botocore's parameter names
//! and response shapes. Order of checks per action: unknown parameters
//! (`UnknownParameter`), required ones (`MissingParameter`), malformed values, the
//! caller's policy (`UnauthorizedOperation`), the resources (`*.NotFound`), `DryRun`
//! (`DryRunOperation`), then the change. Describe* read a lagged view (`history.rs`);
//! writes act on the current state.

use std::net::Ipv4Addr;
use std::time::Instant;

use crate::gce::net::Ipv4Net;

use super::errors::AwsError;
use super::filter::{self, Filter};
use super::iam::Identity;
use super::query::{self, Page, Params};
use super::render::{self, Names};
use super::state::{self, Net, Target};
use super::xml::El;
use super::AwsState;

pub const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// Every action served, and whether it changes state.
pub const ACTIONS: &[(&str, bool)] = &[
    ("DescribeInstances", false),
    ("DescribeNetworkInterfaces", false),
    ("DescribeAddresses", false),
    ("DescribeRouteTables", false),
    ("DescribeSubnets", false),
    ("DescribeVpcs", false),
    ("DescribeInstanceAttribute", false),
    ("DescribeNetworkInterfaceAttribute", false),
    ("AssignPrivateIpAddresses", true),
    ("UnassignPrivateIpAddresses", true),
    ("AssociateAddress", true),
    ("DisassociateAddress", true),
    ("CreateRoute", true),
    ("ReplaceRoute", true),
    ("DeleteRoute", true),
    ("ModifyInstanceAttribute", true),
    ("ModifyNetworkInterfaceAttribute", true),
];

pub fn is_mutation(action: &str) -> bool {
    ACTIONS.iter().any(|(a, m)| *a == action && *m)
}

/// Route targets the model has but this emulator does not model.
const OTHER_TARGETS: &[&str] = &[
    "DestinationIpv6CidrBlock",
    "DestinationPrefixListId",
    "VpcEndpointId",
    "TransitGatewayId",
    "LocalGatewayId",
    "CarrierGatewayId",
    "CoreNetworkArn",
    "OdbNetworkArn",
    "EgressOnlyInternetGatewayId",
    "VpcPeeringConnectionId",
    "NatGatewayId",
];

struct Ctx<'a> {
    st: &'a mut AwsState,
    who: &'a Identity,
    p: &'a Params,
    mono: Instant,
}

impl Ctx<'_> {
    fn authorize(&self, action: &str) -> Result<(), AwsError> {
        if self.who.policy.allows(&format!("ec2:{action}")) {
            Ok(())
        } else {
            Err(AwsError::unauthorized(
                &self.who.arn,
                &format!("ec2:{action}"),
            ))
        }
    }

    fn dry_run(&self) -> Result<(), AwsError> {
        if self.p.dry_run()? {
            Err(AwsError::dry_run())
        } else {
            Ok(())
        }
    }

    fn names(&self) -> Names<'_> {
        Names {
            region: &self.st.region,
            account: &self.st.account,
        }
    }
}

/// The response root `<ActionResponse xmlns=…><requestId>…</requestId>…`.
fn response(action: &str, request_id: &str) -> El {
    El::new(&format!("{action}Response"))
        .attr("xmlns", NAMESPACE)
        .text_child("requestId", request_id)
}

/// Runs one action for `who`. `Err` is rendered by the caller in EC2's error format.
pub fn dispatch(
    st: &mut AwsState,
    who: &Identity,
    action: &str,
    p: &Params,
    request_id: &str,
    mono: Instant,
) -> Result<El, AwsError> {
    let mut c = Ctx { st, who, p, mono };
    let root = response(action, request_id);
    match action {
        "DescribeInstances" => describe_instances(&mut c, root),
        "DescribeNetworkInterfaces" => describe_network_interfaces(&mut c, root),
        "DescribeAddresses" => describe_addresses(&mut c, root),
        "DescribeRouteTables" => describe_route_tables(&mut c, root),
        "DescribeSubnets" => describe_subnets(&mut c, root),
        "DescribeVpcs" => describe_vpcs(&mut c, root),
        "DescribeInstanceAttribute" => describe_instance_attribute(&mut c, root),
        "DescribeNetworkInterfaceAttribute" => describe_eni_attribute(&mut c, root),
        "AssignPrivateIpAddresses" => assign(&mut c, root),
        "UnassignPrivateIpAddresses" => unassign(&mut c, root),
        "AssociateAddress" => associate(&mut c, root),
        "DisassociateAddress" => disassociate(&mut c, root),
        "CreateRoute" => put_route(&mut c, root, false),
        "ReplaceRoute" => put_route(&mut c, root, true),
        "DeleteRoute" => delete_route(&mut c, root),
        "ModifyInstanceAttribute" => modify_instance_attribute(&mut c, root),
        "ModifyNetworkInterfaceAttribute" => modify_eni_attribute(&mut c, root),
        other => Err(AwsError::bad(
            "InvalidAction",
            format!("The action {other} is not valid for this web service."),
        )),
    }
}

fn ids(p: &Params, list: &str, prefix: &str, malformed: &str) -> Result<Vec<String>, AwsError> {
    p.list(list)
        .iter()
        .map(|v| query::id(v, prefix, malformed))
        .collect()
}

/// Shared by the Describe* actions: ids and `MaxResults` may not be combined (EC2 rule).
fn describe_prelude(
    c: &Ctx<'_>,
    action: &str,
    id_list: &str,
    known_filters: &[&str],
    page_max: Option<i64>,
) -> Result<(Vec<Filter>, Page), AwsError> {
    let mut scalars = vec!["DryRun", "IncludeManagedResources"];
    if page_max.is_some() {
        scalars.extend(["MaxResults", "NextToken"]);
    }
    c.p.only(&scalars, &[id_list, "Filter"])?;
    let filters = c.p.filters()?;
    filter::check_names(&filters, known_filters)?;
    let page = match page_max {
        Some(max) => Page::parse(c.p, 5, max)?,
        None => Page {
            start: 0,
            size: None,
        },
    };
    if page.size.is_some() && !c.p.list(id_list).is_empty() {
        return Err(AwsError::combination(format!(
            "The parameter {id_list}s cannot be used with the parameter maxResults"
        )));
    }
    c.authorize(action)?;
    Ok((filters, page))
}

/// Applies explicit ids (each must exist) and filters; returns matching keys in id order.
fn select<'n, T>(
    all: impl Iterator<Item = (&'n String, &'n T)>,
    wanted: &[String],
    not_found: impl Fn(&str) -> AwsError,
    filters: &[Filter],
    field: impl Fn(&T, &str) -> Option<Vec<String>>,
) -> Result<Vec<&'n T>, AwsError>
where
    T: 'n,
{
    let all: Vec<(&String, &T)> = all.collect();
    for w in wanted {
        if !all.iter().any(|(k, _)| *k == w) {
            return Err(not_found(w));
        }
    }
    let mut out = Vec::new();
    for (k, v) in all {
        if !wanted.is_empty() && !wanted.contains(k) {
            continue;
        }
        if filter::matches(filters, |n| field(v, n))? {
            out.push(v);
        }
    }
    Ok(out)
}

/// The `*.NotFound` answer for an id: "The <what> ID '<id>' does not exist".
fn missing(code: &'static str, what: &'static str) -> impl Fn(&str) -> AwsError {
    move |id| AwsError::not_found(code, format!("The {what} ID '{id}' does not exist"))
}

fn paged(root: El, set: &str, items: Vec<El>, page: &Page) -> El {
    let (items, next) = page.apply(items);
    root.set(set, items).opt_child("nextToken", next)
}

fn describe_instances(c: &mut Ctx<'_>, root: El) -> Result<El, AwsError> {
    let (filters, page) = describe_prelude(
        c,
        "DescribeInstances",
        "InstanceId",
        render::INSTANCE_FILTERS,
        Some(1000),
    )?;
    let wanted = ids(c.p, "InstanceId", "i", "InvalidInstanceID.Malformed")?;
    let n = c.names();
    let net = c.st.view(c.mono, c.st.settings.consistency.instances_ms);
    let found = select(
        net.instances.iter(),
        &wanted,
        missing("InvalidInstanceID.NotFound", "instance"),
        &filters,
        |i, f| render::instance_field(net, &n, i, f),
    )?;
    c.dry_run()?;
    let items: Vec<El> = found
        .iter()
        .map(|i| {
            let profile = i.iam_role.as_ref().map(|r| {
                (
                    format!("arn:aws:iam::{}:instance-profile/{r}", n.account),
                    c.st.iam
                        .role_id(r)
                        .map(|id| id.replacen("AROA", "AIPA", 1))
                        .unwrap_or_default(),
                )
            });
            let md = c.st.metadata.get(&i.id).copied();
            let tokens = if md.is_none_or(|m| m.tokens_required) {
                "required"
            } else {
                "optional"
            };
            let hop = md.map_or(1, |m| m.hop_limit);
            El::new("item")
                .text_child("reservationId", &i.reservation_id)
                .text_child("ownerId", n.account)
                .child(El::new("groupSet"))
                .set(
                    "instancesSet",
                    [render::instance(net, &n, i, profile, (tokens, hop))],
                )
        })
        .collect();
    Ok(paged(root, "reservationSet", items, &page))
}

fn describe_network_interfaces(c: &mut Ctx<'_>, root: El) -> Result<El, AwsError> {
    let (filters, page) = describe_prelude(
        c,
        "DescribeNetworkInterfaces",
        "NetworkInterfaceId",
        render::ENI_FILTERS,
        Some(1000),
    )?;
    let wanted = ids(
        c.p,
        "NetworkInterfaceId",
        "eni",
        "InvalidNetworkInterfaceID.Malformed",
    )?;
    let n = c.names();
    let net =
        c.st.view(c.mono, c.st.settings.consistency.network_interfaces_ms);
    let found = select(
        net.enis.iter(),
        &wanted,
        missing("InvalidNetworkInterfaceID.NotFound", "networkInterface"),
        &filters,
        |e, f| render::eni_field(net, &n, e, f),
    )?;
    c.dry_run()?;
    let items = found.iter().map(|e| render::eni(net, &n, e)).collect();
    Ok(paged(root, "networkInterfaceSet", items, &page))
}

fn describe_addresses(c: &mut Ctx<'_>, root: El) -> Result<El, AwsError> {
    c.p.only(&["DryRun"], &["PublicIp", "AllocationId", "Filter"])?;
    let filters = c.p.filters()?;
    filter::check_names(&filters, render::ADDRESS_FILTERS)?;
    let allocs = ids(
        c.p,
        "AllocationId",
        "eipalloc",
        "InvalidAllocationID.Malformed",
    )?;
    let publics: Vec<Ipv4Addr> =
        c.p.list("PublicIp")
            .iter()
            .map(|v| query::parse_ipv4("PublicIp", v))
            .collect::<Result<_, _>>()?;
    c.authorize("DescribeAddresses")?;
    let n = c.names();
    let net = c.st.view(c.mono, c.st.settings.consistency.addresses_ms);
    for a in &allocs {
        if !net.eips.contains_key(a) {
            return Err(state::allocation_not_found(a));
        }
    }
    for ip in &publics {
        if !net.eips.values().any(|a| a.public_ip == *ip) {
            return Err(AwsError::not_found(
                "InvalidAddress.NotFound",
                format!("Address '{ip}' not found."),
            ));
        }
    }
    let mut items = Vec::new();
    for a in net.eips.values() {
        if !allocs.is_empty() && !allocs.contains(&a.allocation_id) {
            continue;
        }
        if !publics.is_empty() && !publics.contains(&a.public_ip) {
            continue;
        }
        if filter::matches(&filters, |f| render::address_field(net, &n, a, f))? {
            items.push(render::address(net, &n, a));
        }
    }
    c.dry_run()?;
    Ok(root.set("addressesSet", items))
}

fn describe_route_tables(c: &mut Ctx<'_>, root: El) -> Result<El, AwsError> {
    let (filters, page) = describe_prelude(
        c,
        "DescribeRouteTables",
        "RouteTableId",
        render::ROUTE_TABLE_FILTERS,
        Some(100),
    )?;
    let wanted = ids(c.p, "RouteTableId", "rtb", "InvalidRouteTableID.Malformed")?;
    let net = c.st.view(c.mono, c.st.settings.consistency.route_tables_ms);
    // Another account's tables do not exist for this caller.
    let account = c.who.account.clone();
    let found = select(
        net.route_tables
            .iter()
            .filter(|(_, t)| t.account == account),
        &wanted,
        state::route_table_not_found,
        &filters,
        |t, f| render::route_table_field(net, t, f),
    )?;
    c.dry_run()?;
    let items = found.iter().map(|t| render::route_table(net, t)).collect();
    Ok(paged(root, "routeTableSet", items, &page))
}

fn describe_subnets(c: &mut Ctx<'_>, root: El) -> Result<El, AwsError> {
    let (filters, page) = describe_prelude(
        c,
        "DescribeSubnets",
        "SubnetId",
        render::SUBNET_FILTERS,
        Some(1000),
    )?;
    let wanted = ids(c.p, "SubnetId", "subnet", "InvalidSubnetID.Malformed")?;
    let n = c.names();
    let net = &c.st.net.current;
    let found = select(
        net.subnets.iter(),
        &wanted,
        missing("InvalidSubnetID.NotFound", "subnet"),
        &filters,
        |s, f| render::subnet_field(net, &n, s, f),
    )?;
    c.dry_run()?;
    let items = found.iter().map(|s| render::subnet(net, &n, s)).collect();
    Ok(paged(root, "subnetSet", items, &page))
}

fn describe_vpcs(c: &mut Ctx<'_>, root: El) -> Result<El, AwsError> {
    let (filters, page) =
        describe_prelude(c, "DescribeVpcs", "VpcId", render::VPC_FILTERS, Some(1000))?;
    let wanted = ids(c.p, "VpcId", "vpc", "InvalidVpcID.Malformed")?;
    let n = c.names();
    let net = &c.st.net.current;
    let found = select(
        net.vpcs.iter(),
        &wanted,
        missing("InvalidVpcID.NotFound", "vpc"),
        &filters,
        |v, f| render::vpc_field(&n, v, f),
    )?;
    c.dry_run()?;
    let items = found.iter().map(|v| render::vpc(&n, v)).collect();
    Ok(paged(root, "vpcSet", items, &page))
}

/// `attribute` values accepted (the model's `InstanceAttributeName`) and whether served.
const INSTANCE_ATTRIBUTES: &[&str] = &[
    "instanceType",
    "kernel",
    "ramdisk",
    "userData",
    "disableApiTermination",
    "instanceInitiatedShutdownBehavior",
    "rootDeviceName",
    "blockDeviceMapping",
    "productCodes",
    "sourceDestCheck",
    "groupSet",
    "ebsOptimized",
    "sriovNetSupport",
    "enaSupport",
    "enclaveOptions",
    "disableApiStop",
];

fn describe_instance_attribute(c: &mut Ctx<'_>, root: El) -> Result<El, AwsError> {
    c.p.only(&["DryRun", "InstanceId", "Attribute"], &[])?;
    let id = c.p.id("InstanceId", "i", "InvalidInstanceID.Malformed")?;
    let attr = c.p.require("Attribute")?.to_owned();
    if !INSTANCE_ATTRIBUTES.contains(&attr.as_str()) {
        return Err(AwsError::invalid_value(format!(
            "Value ({attr}) for parameter attribute is invalid. Unknown attribute."
        )));
    }
    c.authorize("DescribeInstanceAttribute")?;
    let net = c.st.view(c.mono, c.st.settings.consistency.instances_ms);
    let i = net.instance(&id)?;
    c.dry_run()?;
    let primary = i.enis.first().and_then(|e| net.enis.get(e));
    let value = |v: &str| El::new(&attr).text_child("value", v);
    let body = match attr.as_str() {
        "sourceDestCheck" => value(&primary.is_none_or(|e| e.source_dest_check).to_string()),
        "instanceType" => value(&i.instance_type),
        "disableApiTermination" | "disableApiStop" | "ebsOptimized" => value("false"),
        "enaSupport" => value("true"),
        "instanceInitiatedShutdownBehavior" => value("stop"),
        "rootDeviceName" => value("/dev/xvda"),
        "groupSet" => El::new("groupSet").child(
            El::new("item")
                .text_child(
                    "groupId",
                    render::default_sg(primary.map(|e| e.vpc.as_str()).unwrap_or("")),
                )
                .text_child("groupName", "default"),
        ),
        "blockDeviceMapping" | "productCodes" => El::new(&attr),
        // userData, kernel, ramdisk, sriovNetSupport, enclaveOptions: empty, as for an
        // instance that has none.
        _ => El::new(&attr),
    };
    Ok(root.text_child("instanceId", &i.id).child(body))
}

fn describe_eni_attribute(c: &mut Ctx<'_>, root: El) -> Result<El, AwsError> {
    c.p.only(&["DryRun", "NetworkInterfaceId", "Attribute"], &[])?;
    let id = c.p.id(
        "NetworkInterfaceId",
        "eni",
        "InvalidNetworkInterfaceID.Malformed",
    )?;
    let attr = c.p.get("Attribute").map(str::to_owned);
    if let Some(a) = &attr {
        if !matches!(
            a.as_str(),
            "description"
                | "groupSet"
                | "sourceDestCheck"
                | "attachment"
                | "associatePublicIpAddress"
        ) {
            return Err(AwsError::invalid_value(format!(
                "Value ({a}) for parameter attribute is invalid. Unknown attribute."
            )));
        }
    }
    c.authorize("DescribeNetworkInterfaceAttribute")?;
    let account = c.st.account.clone();
    let net =
        c.st.view(c.mono, c.st.settings.consistency.network_interfaces_ms);
    let e = net.eni(&id)?;
    c.dry_run()?;
    let mut root = root.text_child("networkInterfaceId", &e.id);
    let want = |a: &str| attr.as_deref().is_none_or(|x| x == a);
    if want("description") {
        root = root.child(El::new("description").text_child("value", &e.description));
    }
    if want("sourceDestCheck") {
        root = root
            .child(El::new("sourceDestCheck").text_child("value", e.source_dest_check.to_string()));
    }
    if want("groupSet") {
        root = root.child(
            El::new("groupSet").child(
                El::new("item")
                    .text_child("groupId", render::default_sg(&e.vpc))
                    .text_child("groupName", "default"),
            ),
        );
    }
    if want("attachment") {
        let launched = net
            .instances
            .get(&e.instance)
            .map(|i| super::time::iso_millis(i.launched))
            .unwrap_or_default();
        root = root.child(
            El::new("attachment")
                .text_child("attachmentId", &e.attachment_id)
                .text_child("instanceId", &e.instance)
                .text_child("instanceOwnerId", &account)
                .text_child("deviceIndex", e.device_index.to_string())
                .text_child("networkCardIndex", "0")
                .text_child("status", "attached")
                .text_child("attachTime", launched)
                .text_child("deleteOnTermination", (e.device_index == 0).to_string()),
        );
    }
    if want("associatePublicIpAddress") && attr.is_some() {
        root = root.text_child("associatePublicIpAddress", "false");
    }
    Ok(root)
}

fn ipv4_list(p: &Params, name: &str) -> Result<Vec<Ipv4Addr>, AwsError> {
    p.list(name)
        .iter()
        .map(|v| query::parse_ipv4(name, v))
        .collect()
}

fn assign(c: &mut Ctx<'_>, root: El) -> Result<El, AwsError> {
    c.p.only(
        &[
            "NetworkInterfaceId",
            "SecondaryPrivateIpAddressCount",
            "AllowReassignment",
            "Ipv4PrefixCount",
        ],
        &["PrivateIpAddress", "Ipv4Prefix"],
    )?;
    let eni = c.p.id(
        "NetworkInterfaceId",
        "eni",
        "InvalidNetworkInterfaceID.Malformed",
    )?;
    let ips = ipv4_list(c.p, "PrivateIpAddress")?;
    let count = c.p.int("SecondaryPrivateIpAddressCount")?;
    if c.p.get("Ipv4PrefixCount").is_some() || !c.p.list("Ipv4Prefix").is_empty() {
        return Err(AwsError::invalid_value(
            "IPv4 prefix delegation is not modelled by cloudvip-sim",
        ));
    }
    let count = match (ips.is_empty(), count) {
        (false, Some(_)) => {
            return Err(AwsError::combination(
                "The parameter 'PrivateIpAddress' may not be used in combination with 'SecondaryPrivateIpAddressCount'",
            ))
        }
        (true, None) => {
            return Err(AwsError::missing(
                "PrivateIpAddress or SecondaryPrivateIpAddressCount",
            ))
        }
        (_, Some(n)) if !(1..=50).contains(&n) => {
            return Err(AwsError::invalid_value(format!(
                "Value ({n}) for parameter secondaryPrivateIpAddressCount is invalid."
            )))
        }
        (_, n) => n.map(|n| n as u32),
    };
    let allow = c.p.bool("AllowReassignment")?.unwrap_or(false);
    c.authorize("AssignPrivateIpAddresses")?;
    let rules = c.st.settings.write.clone();
    let assigned =
        c.st.write(c.mono, |net| net.assign(&eni, &ips, count, allow, &rules))?;
    Ok(root
        .text_child("networkInterfaceId", &eni)
        .set(
            "assignedPrivateIpAddressesSet",
            assigned
                .iter()
                .map(|ip| El::new("item").text_child("privateIpAddress", ip.to_string())),
        )
        .child(El::new("assignedIpv4PrefixSet")))
}

fn unassign(c: &mut Ctx<'_>, root: El) -> Result<El, AwsError> {
    c.p.only(&["NetworkInterfaceId"], &["PrivateIpAddress", "Ipv4Prefix"])?;
    let eni = c.p.id(
        "NetworkInterfaceId",
        "eni",
        "InvalidNetworkInterfaceID.Malformed",
    )?;
    if !c.p.list("Ipv4Prefix").is_empty() {
        return Err(AwsError::invalid_value(
            "IPv4 prefix delegation is not modelled by cloudvip-sim",
        ));
    }
    let ips = ipv4_list(c.p, "PrivateIpAddress")?;
    if ips.is_empty() {
        return Err(AwsError::missing("PrivateIpAddress"));
    }
    c.authorize("UnassignPrivateIpAddresses")?;
    c.st.write(c.mono, |net| net.unassign(&eni, &ips))?;
    Ok(root.text_child("return", "true"))
}

/// The allocation id an `AllocationId` or (deprecated) `PublicIp` names.
fn allocation_of(net: &Net, p: &Params) -> Result<String, AwsError> {
    match (p.get("AllocationId"), p.ipv4("PublicIp")?) {
        (Some(_), Some(_)) => Err(AwsError::combination(
            "The parameter AllocationId cannot be used with the parameter PublicIp",
        )),
        (Some(a), None) => {
            let a = query::id(a, "eipalloc", "InvalidAllocationID.Malformed")?;
            net.eips
                .contains_key(&a)
                .then_some(a.clone())
                .ok_or_else(|| state::allocation_not_found(&a))
        }
        (None, Some(ip)) => net
            .eips
            .values()
            .find(|a| a.public_ip == ip)
            .map(|a| a.allocation_id.clone())
            .ok_or_else(|| {
                AwsError::not_found(
                    "InvalidAddress.NotFound",
                    format!("Address '{ip}' not found."),
                )
            }),
        (None, None) => Err(AwsError::missing("AllocationId")),
    }
}

fn associate(c: &mut Ctx<'_>, root: El) -> Result<El, AwsError> {
    c.p.only(
        &[
            "AllocationId",
            "InstanceId",
            "PublicIp",
            "DryRun",
            "NetworkInterfaceId",
            "PrivateIpAddress",
            "AllowReassociation",
        ],
        &[],
    )?;
    let private_ip = c.p.ipv4("PrivateIpAddress")?;
    let reassoc = c.p.bool("AllowReassociation")?;
    let target = match (c.p.get("InstanceId"), c.p.get("NetworkInterfaceId")) {
        (Some(_), Some(_)) => {
            return Err(AwsError::combination(
                "The parameter InstanceId cannot be used with the parameter NetworkInterfaceId",
            ))
        }
        (None, None) => return Err(AwsError::missing("InstanceId or NetworkInterfaceId")),
        (Some(i), None) => Holder::Instance(query::id(i, "i", "InvalidInstanceID.Malformed")?),
        (None, Some(e)) => Holder::Eni(query::id(e, "eni", "InvalidNetworkInterfaceID.Malformed")?),
    };
    c.authorize("AssociateAddress")?;
    let net = &c.st.net.current;
    let alloc = allocation_of(net, c.p)?;
    let eni = match &target {
        Holder::Instance(instance) => net.only_eni(instance)?,
        Holder::Eni(e) => {
            net.eni(e)?;
            e.clone()
        }
    };
    c.dry_run()?;
    let rules = c.st.settings.write.clone();
    let id = c.st.write(c.mono, |net| {
        net.associate(&alloc, &eni, private_ip, reassoc, &rules)
    })?;
    Ok(root.text_child("associationId", id))
}

/// What AssociateAddress names: an instance (its only ENI) or an ENI.
enum Holder {
    Instance(String),
    Eni(String),
}

fn disassociate(c: &mut Ctx<'_>, root: El) -> Result<El, AwsError> {
    c.p.only(&["AssociationId", "PublicIp", "DryRun"], &[])?;
    let by_ip = c.p.ipv4("PublicIp")?;
    let assoc = c.p.get("AssociationId").map(str::to_owned);
    if assoc.is_some() && by_ip.is_some() {
        return Err(AwsError::combination(
            "The parameter AssociationId cannot be used with the parameter PublicIp",
        ));
    }
    c.authorize("DisassociateAddress")?;
    let net = &c.st.net.current;
    let id = match (assoc, by_ip) {
        (Some(a), _) => query::id(&a, "eipassoc", "InvalidAssociationID.Malformed")?,
        (None, Some(ip)) => {
            let a = net
                .eips
                .values()
                .find(|a| a.public_ip == ip)
                .ok_or_else(|| {
                    AwsError::not_found(
                        "InvalidAddress.NotFound",
                        format!("Address '{ip}' not found."),
                    )
                })?;
            match &a.association {
                Some(s) => s.id.clone(),
                // Not associated: nothing to do (the operation is idempotent).
                None => {
                    c.dry_run()?;
                    return Ok(root.text_child("return", "true"));
                }
            }
        }
        (None, None) => return Err(AwsError::missing("AssociationId")),
    };
    if !net.past_associations.contains(&id)
        && !net
            .eips
            .values()
            .any(|a| a.association.as_ref().is_some_and(|s| s.id == id))
    {
        return Err(AwsError::not_found(
            "InvalidAssociationID.NotFound",
            format!("The association ID '{id}' does not exist"),
        ));
    }
    c.dry_run()?;
    c.st.write(c.mono, |net| net.disassociate(&id))?;
    Ok(root.text_child("return", "true"))
}

fn destination(p: &Params) -> Result<Ipv4Net, AwsError> {
    let d = p.get("DestinationCidrBlock").ok_or_else(|| {
        if p.get("DestinationIpv6CidrBlock").is_some() || p.get("DestinationPrefixListId").is_some()
        {
            AwsError::invalid_value(
                "IPv6 and prefix-list destinations are not modelled by cloudvip-sim",
            )
        } else {
            AwsError::missing("DestinationCidrBlock")
        }
    })?;
    d.parse().map_err(|_| {
        AwsError::invalid_value(format!(
            "Value ({d}) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block."
        ))
    })
}

fn put_route(c: &mut Ctx<'_>, root: El, replace: bool) -> Result<El, AwsError> {
    let mut scalars = vec![
        "RouteTableId",
        "DestinationCidrBlock",
        "GatewayId",
        "InstanceId",
        "NetworkInterfaceId",
        "DryRun",
    ];
    scalars.extend(OTHER_TARGETS);
    if replace {
        scalars.push("LocalTarget");
    }
    c.p.only(&scalars, &[])?;
    let table =
        c.p.id("RouteTableId", "rtb", "InvalidRouteTableID.Malformed")?;
    let dest = destination(c.p)?;
    if let Some(other) = OTHER_TARGETS.iter().find(|t| c.p.get(t).is_some()) {
        return Err(AwsError::invalid_value(format!(
            "Route targets other than GatewayId, InstanceId and NetworkInterfaceId ({other}) are not modelled by cloudvip-sim"
        )));
    }
    let given: Vec<(&str, &str)> = ["GatewayId", "InstanceId", "NetworkInterfaceId"]
        .iter()
        .filter_map(|k| c.p.get(k).map(|v| (*k, v)))
        .collect();
    let (kind, value) = match given.as_slice() {
        [one] => *one,
        [] => {
            return Err(AwsError::missing(
                "gatewayId, instanceId or networkInterfaceId (exactly one)",
            ))
        }
        _ => return Err(AwsError::combination(
            "The request must contain exactly one of gatewayId, instanceId or networkInterfaceId",
        )),
    };
    let action = if replace {
        "ReplaceRoute"
    } else {
        "CreateRoute"
    };
    c.authorize(action)?;
    let account = c.who.account.clone();
    let net = &c.st.net.current;
    net.route_table(&table, &account)?;
    let target = match kind {
        "GatewayId" => Target::Gateway(value.to_owned()),
        "InstanceId" => {
            Target::Eni(net.only_eni(&query::id(value, "i", "InvalidInstanceID.Malformed")?)?)
        }
        _ => Target::Eni(query::id(
            value,
            "eni",
            "InvalidNetworkInterfaceID.Malformed",
        )?),
    };
    if let Target::Eni(e) = &target {
        net.eni(e)?;
    }
    c.dry_run()?;
    c.st.write(c.mono, |net| {
        net.put_route(&table, &account, dest, target, replace)
    })?;
    Ok(root.text_child("return", "true"))
}

fn delete_route(c: &mut Ctx<'_>, root: El) -> Result<El, AwsError> {
    c.p.only(
        &[
            "RouteTableId",
            "DestinationCidrBlock",
            "DestinationIpv6CidrBlock",
            "DestinationPrefixListId",
            "DryRun",
        ],
        &[],
    )?;
    let table =
        c.p.id("RouteTableId", "rtb", "InvalidRouteTableID.Malformed")?;
    let dest = destination(c.p)?;
    c.authorize("DeleteRoute")?;
    let account = c.who.account.clone();
    c.st.net.current.route_table(&table, &account)?;
    c.dry_run()?;
    c.st.write(c.mono, |net| net.delete_route(&table, &account, dest))?;
    Ok(root.text_child("return", "true"))
}

fn modify_instance_attribute(c: &mut Ctx<'_>, root: El) -> Result<El, AwsError> {
    const OTHERS: &[&str] = &[
        "DisableApiStop.Value",
        "DisableApiTermination.Value",
        "InstanceType.Value",
        "Kernel.Value",
        "Ramdisk.Value",
        "UserData.Value",
        "InstanceInitiatedShutdownBehavior.Value",
        "EbsOptimized.Value",
        "SriovNetSupport.Value",
        "EnaSupport.Value",
    ];
    let mut scalars = vec![
        "InstanceId",
        "Attribute",
        "Value",
        "DryRun",
        "SourceDestCheck.Value",
    ];
    scalars.extend(OTHERS);
    c.p.only(&scalars, &["GroupId", "BlockDeviceMapping"])?;
    let id = c.p.id("InstanceId", "i", "InvalidInstanceID.Malformed")?;
    let value = match (c.p.bool("SourceDestCheck.Value")?, c.p.get("Attribute")) {
        (Some(v), None) => v,
        (None, Some("sourceDestCheck")) => match c.p.require("Value")? {
            v if v.eq_ignore_ascii_case("true") => true,
            v if v.eq_ignore_ascii_case("false") => false,
            v => {
                return Err(AwsError::invalid_value(format!(
                    "Value ({v}) for parameter value is invalid. Expected: 'true' or 'false'."
                )))
            }
        },
        (Some(_), Some(_)) => {
            return Err(AwsError::combination(
                "The parameter SourceDestCheck cannot be used with the parameter Attribute",
            ))
        }
        _ => {
            return Err(AwsError::bad(
                "UnsupportedOperation",
                "cloudvip-sim models only the sourceDestCheck instance attribute",
            ))
        }
    };
    c.authorize("ModifyInstanceAttribute")?;
    let primary =
        c.st.net
            .current
            .instance(&id)?
            .enis
            .first()
            .cloned()
            .ok_or_else(AwsError::internal)?;
    c.dry_run()?;
    c.st.write(c.mono, |net| net.set_source_dest_check(&primary, value))?;
    Ok(root.text_child("return", "true"))
}

fn modify_eni_attribute(c: &mut Ctx<'_>, root: El) -> Result<El, AwsError> {
    c.p.only(
        &[
            "NetworkInterfaceId",
            "DryRun",
            "SourceDestCheck.Value",
            "Description.Value",
        ],
        &[],
    )?;
    let id = c.p.id(
        "NetworkInterfaceId",
        "eni",
        "InvalidNetworkInterfaceID.Malformed",
    )?;
    let sdc = c.p.bool("SourceDestCheck.Value")?;
    let desc = c.p.get("Description.Value").map(str::to_owned);
    if sdc.is_some() == desc.is_some() {
        return Err(AwsError::combination(
            "Exactly one attribute may be modified per request (SourceDestCheck or Description)",
        ));
    }
    c.authorize("ModifyNetworkInterfaceAttribute")?;
    c.st.net.current.eni(&id)?;
    c.dry_run()?;
    c.st.write(c.mono, |net| match (sdc, &desc) {
        (Some(v), _) => net.set_source_dest_check(&id, v),
        (_, Some(d)) => net.set_description(&id, d),
        _ => Ok(()),
    })?;
    Ok(root.text_child("return", "true"))
}
