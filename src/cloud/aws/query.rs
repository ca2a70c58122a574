//! EC2 Query API requests (version 2016-11-15) as botocore's `EC2Serializer` writes them
//! (research/aws-azure.md §A2.1): a form-encoded POST body `Action=…&Version=…&…`, lists
//! flattened 1-based (`PrivateIpAddress.1`), filters as `Filter.N.Name` /
//! `Filter.N.Value.M`, booleans `true`/`false`. One constructor per call the three modes
//! make; `DryRun` only where EC2 has it (`AssignPrivateIpAddresses` and
//! `UnassignPrivateIpAddresses` have none: their model has no `DryRun` member).

use std::net::Ipv4Addr;

use crate::http::encode;

pub const EC2_VERSION: &str = "2016-11-15";
pub const STS_VERSION: &str = "2011-06-15";

/// Actions whose request shape has no `DryRun` member (botocore's ec2 model).
const NO_DRY_RUN: &[&str] = &[
    "AssignPrivateIpAddresses",
    "UnassignPrivateIpAddresses",
    "AssumeRole",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
    filters: usize,
}

impl Query {
    pub fn new(action: &str, version: &str) -> Query {
        Query {
            pairs: vec![
                ("Action".into(), action.into()),
                ("Version".into(), version.into()),
            ],
            filters: 0,
        }
    }

    pub fn ec2(action: &str) -> Query {
        Query::new(action, EC2_VERSION)
    }

    pub fn action(&self) -> &str {
        &self.pairs[0].1
    }

    pub fn param(mut self, k: &str, v: impl Into<String>) -> Query {
        self.pairs.push((k.into(), v.into()));
        self
    }

    pub fn flag(self, k: &str, v: bool) -> Query {
        self.param(k, if v { "true" } else { "false" })
    }

    /// `name.1=…&name.2=…`.
    pub fn list<S: AsRef<str>>(mut self, name: &str, values: &[S]) -> Query {
        for (i, v) in values.iter().enumerate() {
            self.pairs
                .push((format!("{name}.{}", i + 1), v.as_ref().to_owned()));
        }
        self
    }

    /// One more `Filter.N` (values OR'ed, filters AND'ed).
    pub fn filter<S: AsRef<str>>(mut self, name: &str, values: &[S]) -> Query {
        self.filters += 1;
        let n = self.filters;
        self.pairs
            .push((format!("Filter.{n}.Name"), name.to_owned()));
        for (i, v) in values.iter().enumerate() {
            self.pairs
                .push((format!("Filter.{n}.Value.{}", i + 1), v.as_ref().to_owned()));
        }
        self
    }

    /// The same request as a permission probe (`DryRun=true`), or `None` when EC2 has no
    /// dry run for this action.
    pub fn dry_run(&self) -> Option<Query> {
        if NO_DRY_RUN.contains(&self.action()) {
            return None;
        }
        Some(self.clone().flag("DryRun", true))
    }

    /// The parameters after `Action` and `Version` as `k=v`, space-separated (a dry run
    /// shows a call this way: what it is asked, not how it is encoded).
    pub fn shown(&self) -> String {
        self.pairs[2..]
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The next page of a paginated Describe*.
    pub fn page(&self, token: &str) -> Query {
        self.clone().param("NextToken", token)
    }

    /// The form-encoded body (RFC 3986 percent-encoding, which EC2 accepts like
    /// botocore's `+` form).
    pub fn body(&self) -> String {
        self.pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// `DescribeInstances` for these instance ids.
pub fn describe_instances(ids: &[&str]) -> Query {
    Query::ec2("DescribeInstances").list("InstanceId", ids)
}

/// `DescribeNetworkInterfaces` for these ENI ids (none: every ENI the filters match).
pub fn describe_network_interfaces(ids: &[&str]) -> Query {
    Query::ec2("DescribeNetworkInterfaces").list("NetworkInterfaceId", ids)
}

/// The ENIs that hold `ip` as a private IP (primary or secondary: the filter
/// `addresses.private-ip-address` matches every private IPv4 of an ENI).
pub fn enis_holding(ip: Ipv4Addr) -> Query {
    Query::ec2("DescribeNetworkInterfaces")
        .filter("addresses.private-ip-address", &[ip.to_string()])
}

/// Moves `ips` to `eni`; with `allow_reassignment` from whichever ENI of the subnet holds
/// them (their Elastic IPs follow).
pub fn assign_private_ips(eni: &str, ips: &[Ipv4Addr], allow_reassignment: bool) -> Query {
    let ips: Vec<String> = ips.iter().map(Ipv4Addr::to_string).collect();
    Query::ec2("AssignPrivateIpAddresses")
        .param("NetworkInterfaceId", eni)
        .list("PrivateIpAddress", &ips)
        .flag("AllowReassignment", allow_reassignment)
}

pub fn unassign_private_ips(eni: &str, ips: &[Ipv4Addr]) -> Query {
    let ips: Vec<String> = ips.iter().map(Ipv4Addr::to_string).collect();
    Query::ec2("UnassignPrivateIpAddresses")
        .param("NetworkInterfaceId", eni)
        .list("PrivateIpAddress", &ips)
}

/// An Elastic IP by allocation id or by its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Eip {
    Allocation(String),
    Public(Ipv4Addr),
}

pub fn describe_addresses(eip: &Eip) -> Query {
    let q = Query::ec2("DescribeAddresses");
    match eip {
        Eip::Allocation(a) => q.list("AllocationId", &[a]),
        Eip::Public(ip) => q.list("PublicIp", &[ip.to_string()]),
    }
}

/// Associates `eip` with `private_ip` of `eni`; `allow_reassociation` takes it from any
/// other holder in the same call.
pub fn associate_address(
    eip: &Eip,
    eni: &str,
    private_ip: Ipv4Addr,
    allow_reassociation: bool,
) -> Query {
    let q = Query::ec2("AssociateAddress");
    let q = match eip {
        Eip::Allocation(a) => q.param("AllocationId", a),
        Eip::Public(ip) => q.param("PublicIp", ip.to_string()),
    };
    q.param("NetworkInterfaceId", eni)
        .param("PrivateIpAddress", private_ip.to_string())
        .flag("AllowReassociation", allow_reassociation)
}

pub fn disassociate_address(association_id: &str) -> Query {
    Query::ec2("DisassociateAddress").param("AssociationId", association_id)
}

pub fn describe_route_tables(ids: &[&str]) -> Query {
    Query::ec2("DescribeRouteTables").list("RouteTableId", ids)
}

/// `ReplaceRoute` (`replace`) or `CreateRoute` of `destination` (a CIDR such as
/// `192.168.100.10/32`) in `table` to `eni`.
pub fn put_route(table: &str, destination: &str, eni: &str, replace: bool) -> Query {
    Query::ec2(if replace {
        "ReplaceRoute"
    } else {
        "CreateRoute"
    })
    .param("RouteTableId", table)
    .param("DestinationCidrBlock", destination)
    .param("NetworkInterfaceId", eni)
}

/// STS `AssumeRole`.
pub fn assume_role(
    role_arn: &str,
    session_name: &str,
    external_id: Option<&str>,
    duration_secs: u32,
) -> Query {
    let q = Query::new("AssumeRole", STS_VERSION)
        .param("RoleArn", role_arn)
        .param("RoleSessionName", session_name)
        .param("DurationSeconds", duration_secs.to_string());
    match external_id {
        Some(x) => q.param("ExternalId", x),
        None => q,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// The bodies botocore 1.43.11 sends (research/aws-azure.md §A2.1), but `/` in a CIDR,
    /// which we percent-encode the same way (`%2F`).
    #[test]
    fn bodies_as_botocore_writes_them() {
        assert_eq!(
            assign_private_ips("eni-7fc78ea1fd878f024", &[ip("10.0.1.100")], true).body(),
            "Action=AssignPrivateIpAddresses&Version=2016-11-15&NetworkInterfaceId=eni-7fc78ea1fd878f024&PrivateIpAddress.1=10.0.1.100&AllowReassignment=true"
        );
        assert_eq!(
            unassign_private_ips("eni-cc7c4b467e44658d4", &[ip("10.0.1.100")]).body(),
            "Action=UnassignPrivateIpAddresses&Version=2016-11-15&NetworkInterfaceId=eni-cc7c4b467e44658d4&PrivateIpAddress.1=10.0.1.100"
        );
        assert_eq!(
            enis_holding(ip("10.0.1.100")).body(),
            "Action=DescribeNetworkInterfaces&Version=2016-11-15&Filter.1.Name=addresses.private-ip-address&Filter.1.Value.1=10.0.1.100"
        );
        assert_eq!(
            describe_network_interfaces(&["eni-7fc78ea1fd878f024"]).body(),
            "Action=DescribeNetworkInterfaces&Version=2016-11-15&NetworkInterfaceId.1=eni-7fc78ea1fd878f024"
        );
        assert_eq!(
            associate_address(
                &Eip::Allocation("eipalloc-ed88c1244b365b3ee".into()),
                "eni-7fc78ea1fd878f024",
                ip("10.0.1.10"),
                true
            )
            .body(),
            "Action=AssociateAddress&Version=2016-11-15&AllocationId=eipalloc-ed88c1244b365b3ee&NetworkInterfaceId=eni-7fc78ea1fd878f024&PrivateIpAddress=10.0.1.10&AllowReassociation=true"
        );
        assert_eq!(
            describe_addresses(&Eip::Allocation("eipalloc-ed88c1244b365b3ee".into())).body(),
            "Action=DescribeAddresses&Version=2016-11-15&AllocationId.1=eipalloc-ed88c1244b365b3ee"
        );
        assert_eq!(
            put_route("rtb-6a4e4b655c686d02b", "192.168.100.10/32", "eni-0ab46e4dae3607ae5", false).body(),
            "Action=CreateRoute&Version=2016-11-15&RouteTableId=rtb-6a4e4b655c686d02b&DestinationCidrBlock=192.168.100.10%2F32&NetworkInterfaceId=eni-0ab46e4dae3607ae5"
        );
        assert_eq!(
            put_route("rtb-6a4e4b655c686d02b", "192.168.100.10/32", "eni-0ab46e4dae3607ae5", true).body(),
            "Action=ReplaceRoute&Version=2016-11-15&RouteTableId=rtb-6a4e4b655c686d02b&DestinationCidrBlock=192.168.100.10%2F32&NetworkInterfaceId=eni-0ab46e4dae3607ae5"
        );
        assert_eq!(
            describe_route_tables(&["rtb-6a4e4b655c686d02b"]).body(),
            "Action=DescribeRouteTables&Version=2016-11-15&RouteTableId.1=rtb-6a4e4b655c686d02b"
        );
    }

    #[test]
    fn filters_number_themselves_and_values() {
        let q = Query::ec2("DescribeNetworkInterfaces")
            .filter("attachment.instance-id", &["i-1"])
            .filter("mac-address", &["02:00:00:00:00:01", "02:00:00:00:00:02"]);
        assert_eq!(
            q.body(),
            "Action=DescribeNetworkInterfaces&Version=2016-11-15&Filter.1.Name=attachment.instance-id&Filter.1.Value.1=i-1&Filter.2.Name=mac-address&Filter.2.Value.1=02%3A00%3A00%3A00%3A00%3A01&Filter.2.Value.2=02%3A00%3A00%3A00%3A00%3A02"
        );
        assert!(q.page("tok+/=").body().ends_with("&NextToken=tok%2B%2F%3D"));
    }

    #[test]
    fn dry_run_only_where_ec2_has_it() {
        assert!(assign_private_ips("eni-1", &[ip("10.0.0.5")], true)
            .dry_run()
            .is_none());
        assert!(unassign_private_ips("eni-1", &[ip("10.0.0.5")])
            .dry_run()
            .is_none());
        let d = put_route("rtb-1", "10.1.0.1/32", "eni-1", true)
            .dry_run()
            .unwrap();
        assert!(d.body().ends_with("&DryRun=true"));
        assert!(disassociate_address("eipassoc-1").dry_run().is_some());
        assert_eq!(d.action(), "ReplaceRoute");
    }

    #[test]
    fn assume_role_body() {
        assert_eq!(
            assume_role("arn:aws:iam::111122223333:role/cloudvip-rtb", "cloudvip", Some("ha-cluster-1"), 900).body(),
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fcloudvip-rtb&RoleSessionName=cloudvip&DurationSeconds=900&ExternalId=ha-cluster-1"
        );
    }
}
