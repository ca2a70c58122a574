//! IPv6 VIPs on the clouds, done right or refused. GCE cannot alias a chosen IPv6 address
//! (its `aliasIpv6Ranges` takes only a netmask it fills itself), so `cloud=gce` with an
//! IPv6 `ip` is a configuration error at validate-all depth 0. On OCI the address is an
//! `Ipv6` object that moves between VNICs of one subnet: start creates it, a start
//! elsewhere moves it, and the client's neighbour entry follows the unsolicited neighbour
//! advertisement.

use std::time::Duration;

use serde_json::Value;

use crate::cloudlab::CloudLab;
use crate::clouds::oci::{self, vnic};
use crate::netns::Lab;
use crate::util::Agent;

const VIP6: &str = "fd00:66::100";
const OTHER6: &str = "fd00:66::50";

#[test]
fn gce_refuses_an_ipv6_vip_before_anything_changes() {
    for action in ["validate-all", "start", "monitor"] {
        Agent::new(action)
            .params(&[("ip", VIP6), ("cloud", "gce")])
            .run()
            .expect(6, Some("cloud=gce cannot move an IPv6 ip"));
    }
    // OCI public IPs are IPv4: no public_ip with an IPv6 VIP.
    Agent::new("validate-all")
        .params(&[
            ("ip", VIP6),
            ("cloud", "oci"),
            ("public_ip", "203.0.113.10"),
        ])
        .run()
        .expect(6, Some("public_ip with an IPv6 ip"));
}

/// Nodes 1-2 have VNICs in one IPv6-enabled subnet (their eth0 MACs; the lab's eth0 carries
/// fd00:66::i/64); node 3 is the client. node2 already holds another IPv6 address.
fn world(d: &std::path::Path) -> cloudvip_sim::World {
    let mut w = oci::bare(d, 2);
    let o = oci::oci(&mut w);
    o.subnets[0].ipv6_cidr_block = Some("fd00:66::/64".into());
    o.ipv6s.push(crate::clouds::spec(serde_json::json!({
        "id": "ocid1.ipv6.oc1.iad.aaaaaaaaother6",
        "vnic": oci::vnic(2),
        "ip_address": OTHER6,
    })));
    w
}

/// Every `Ipv6` object as `(address, VNIC, OCID)`, sorted; and how many private IPs exist.
fn ipv6_state(c: &CloudLab) -> (Vec<(String, String, String)>, usize) {
    let st = c.admin("GET", "/admin/state", None)["oci"].clone();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut v: Vec<_> = st["ipv6s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (s(&p["ipAddress"]), s(&p["vnicId"]), s(&p["id"])))
        .collect();
    v.sort();
    (v, st["privateIps"].as_array().unwrap().len())
}

#[test]
fn oci_ipv6_failover_moves_the_ipv6_object_and_the_client_follows() {
    let c = CloudLab::start(world);
    let api = c.endpoints["oci"]["api"]
        .as_str()
        .unwrap()
        .replace("http://", "https://");
    let agent = |i: usize, action: &str| {
        c.agent(i, action).params(&[
            ("ip", VIP6),
            ("cloud", "oci"),
            ("api_endpoint", &api),
            ("auth_endpoint", &api),
        ])
    };
    let (before, private_ips) = ipv6_state(&c);
    assert_eq!(before.len(), 1);

    agent(1, "monitor").run().expect(7, None);
    agent(1, "start").run().ok();
    let (after_a, n) = ipv6_state(&c);
    assert_eq!(n, private_ips, "an IPv6 VIP is no private IP object");
    let created = after_a
        .iter()
        .find(|(ip, _, _)| ip == VIP6)
        .unwrap_or_else(|| panic!("no Ipv6 object for {VIP6}: {after_a:?}"))
        .clone();
    assert_eq!(created.1, vnic(1));
    assert!(c.lab.ping(3, VIP6), "client cannot reach {VIP6} on node1");
    assert_eq!(c.lab.neigh(3, VIP6), Some(Lab::mac(1)));

    // Pacemaker's failover: stop on node1, start on node2. The object moves (same OCID).
    agent(1, "stop").run().ok();
    agent(2, "monitor").run().expect(7, None);
    agent(2, "start").run().ok();
    assert!(
        c.lab
            .wait_neigh(3, VIP6, &Lab::mac(2), Duration::from_secs(3)),
        "the client's neighbour entry for {VIP6} did not follow the advertisement: {:?}",
        c.lab.neigh(3, VIP6)
    );
    assert!(c.lab.ping(3, VIP6), "client cannot reach {VIP6} on node2");
    let (after_b, _) = ipv6_state(&c);
    let mut want = before.clone();
    want.push((VIP6.to_owned(), vnic(2), created.2.clone()));
    want.sort();
    assert_eq!(after_b, want, "moved by UpdateIpv6, nothing else touched");
    // The cloud's own view at depth 10, on both nodes.
    agent(2, "monitor").env("OCF_CHECK_LEVEL", "10").run().ok();
    agent(1, "monitor")
        .env("OCF_CHECK_LEVEL", "10")
        .run()
        .expect(7, None);
    let log = c.log();
    for api in ["ListIpv6s", "CreateIpv6", "UpdateIpv6"] {
        assert!(
            log.iter().any(|e| e["api"] == api && e["status"] == 200),
            "no successful {api} in the request log"
        );
    }
    assert!(
        !log.iter().any(
            |e| e["api"].as_str().is_some_and(|a| a.contains("PrivateIp")) && e["method"] != "GET"
        ),
        "an IPv6 VIP must not touch private IP objects"
    );
}
