//! IPv6 VIPs on OCI. An IPv6 address is an `Ipv6` object of its own under `/ipv6`, not a
//! `/privateIps` entry (OCI SDK `VirtualNetworkClient`: `list_ipv6s` by "both IPv6 address
//! and subnet OCID", `create_ipv6` with `vnicId`/`ipAddress`, `update_ipv6` whose `vnicId`
//! reassigns it to "a VNIC in the same subnet as the current VNIC"). Its create and move
//! bodies have the private IP's shape (`vnicId`, `ipAddress`, `displayName`), so the IPv4
//! flow in `mod.rs` runs unchanged on the collection this picks. An IPv6 object has no
//! `isPrimary` and no public IP (OCI public IPs are IPv4); `params.rs` refuses `public_ip`
//! with an IPv6 `ip`.

use std::net::IpAddr;

/// The Networking API collection that holds the VIP's address object.
pub(super) fn collection(ip: IpAddr) -> &'static str {
    if ip.is_ipv6() {
        "ipv6"
    } else {
        "privateIps"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_family() {
        assert_eq!(collection("10.0.0.5".parse().unwrap()), "privateIps");
        assert_eq!(collection("fd00::5".parse().unwrap()), "ipv6");
    }
}
