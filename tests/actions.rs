//! The agent on real kernel networking: hosts A (1) and B (2) and client C (3) on one
//! bridge. Every test asserts what a client sees (ping, its neighbour cache) and what the
//! kernel holds, not just exit codes.

use std::time::Duration;

use crate::netns::Lab;
use crate::util::Agent;

const VIP: &str = "10.66.0.100";
const VIP6: &str = "fd00:66::100";

fn agent(lab: &Lab, host: usize, action: &str, params: &[(&str, &str)]) -> Agent {
    Agent::new(action)
        .params(&[
            ("cloud", "none"),
            ("arp_bg", "false"),
            ("arp_count", "2"),
            ("arp_interval", "50"),
        ])
        .params(params)
        .netns(lab.ns(host))
}

#[test]
fn start_monitor_stop_seen_from_a_client() {
    let lab = Lab::new(3);
    let a = |action| agent(&lab, 1, action, &[("ip", VIP), ("nic", "eth0")]);

    a("monitor").run().expect(7, None);
    assert!(!lab.ping(3, VIP), "nothing should answer before start");

    a("start").run().ok();
    assert!(
        lab.addrs(1).contains("inet 10.66.0.100/32"),
        "{}",
        lab.addrs(1)
    );
    assert!(lab.ping(3, VIP), "client cannot reach the VIP after start");
    assert_eq!(lab.neigh(3, VIP), Some(Lab::mac(1)));
    a("monitor").run().ok();
    // double start is a no-op
    a("start").run().ok();
    assert_eq!(lab.addrs(1).matches("10.66.0.100").count(), 1);

    a("stop").run().ok();
    assert!(!lab.addrs(1).contains("10.66.0.100"));
    assert!(!lab.ping(3, VIP), "the VIP still answers after stop");
    a("monitor").run().expect(7, None);
    // double stop is a no-op
    a("stop").run().ok();
}

/// The failover Pacemaker performs: stop on A, start on B. The client's neighbour entry
/// must follow B's gratuitous ARP before the client sends anything.
fn failover(ip: &str, params: &[(&str, &str)]) {
    let lab = Lab::new(3);
    let mut p = vec![("ip", ip), ("nic", "eth0")];
    p.extend_from_slice(params);

    agent(&lab, 1, "start", &p).run().ok();
    assert!(lab.ping(3, ip), "client cannot reach {ip} on A");
    assert_eq!(lab.neigh(3, ip), Some(Lab::mac(1)));

    agent(&lab, 1, "stop", &p).run().ok();
    agent(&lab, 2, "monitor", &p).run().expect(7, None);
    agent(&lab, 2, "start", &p).run().ok();
    assert!(
        lab.wait_neigh(3, ip, &Lab::mac(2), Duration::from_secs(3)),
        "the client's neighbour entry for {ip} did not follow the announcement: {:?}",
        lab.neigh(3, ip)
    );
    assert!(lab.ping(3, ip), "client cannot reach {ip} on B");
    agent(&lab, 2, "monitor", &p).run().ok();
    agent(&lab, 1, "monitor", &p).run().expect(7, None);
}

#[test]
fn stop_with_a_non_utf8_parameter_still_removes_the_vip() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt as _;
    let lab = Lab::new(1);
    let p = [("ip", VIP), ("nic", "eth0"), ("label", "vip")];
    agent(&lab, 1, "start", &p).run().ok();
    assert!(lab.addrs(1).contains("eth0:vip"), "{}", lab.addrs(1));
    let bad = OsStr::from_bytes(b"v\xff");
    // A failed stop gets the node fenced: it removes what it can and succeeds.
    agent(&lab, 1, "stop", &p)
        .env_os(OsStr::new("OCF_RESKEY_label"), bad)
        .env_os(
            OsStr::from_bytes(b"OCF_RESKEY_arp_c\xffunt"),
            OsStr::new("3"),
        )
        .env_os(OsStr::new("JUNK"), bad)
        .run()
        .ok();
    assert!(!lab.addrs(1).contains(VIP), "{}", lab.addrs(1));
}

#[test]
fn failover_ipv4() {
    failover(VIP, &[]);
}

#[test]
fn failover_ipv6() {
    failover(VIP6, &[]);
}

#[test]
fn failover_ipv4_route_mode() {
    failover(VIP, &[("local_mode", "route")]);
}

#[test]
fn route_mode_uses_a_local_route_with_our_protocol() {
    let lab = Lab::new(1);
    let p = [("ip", VIP), ("nic", "eth0"), ("local_mode", "route")];
    agent(&lab, 1, "start", &p).run().ok();
    assert!(
        !lab.addrs(1).contains("10.66.0.100"),
        "route mode must not add an address"
    );
    let routes = lab.local_routes(1);
    assert!(
        routes.contains("local 10.66.0.100 dev eth0 proto 167 scope host"),
        "{routes}"
    );
    // A route someone else (the GCE guest agent, proto 66) added is not ours to report.
    agent(&lab, 1, "stop", &p).run().ok();
    crate::util::sh(&[
        "ip",
        "-n",
        lab.ns(1),
        "route",
        "add",
        "local",
        VIP,
        "dev",
        "eth0",
        "table",
        "local",
        "proto",
        "66",
    ]);
    agent(&lab, 1, "monitor", &p).run().expect(7, None);
    agent(&lab, 1, "stop", &p).run().ok();
    assert!(
        lab.local_routes(1).contains("proto 66"),
        "stop removed a route it does not own"
    );
}

#[test]
fn label_prefix_and_default_nic() {
    let lab = Lab::new(1);
    // no nic: the route towards 10.66.0.100 (10.66.0.0/24 dev eth0) decides
    let p = [("ip", VIP), ("cidr_netmask", "24"), ("label", "vip")];
    agent(&lab, 1, "start", &p).run().ok();
    let addrs = lab.addrs(1);
    assert!(
        addrs.contains("inet 10.66.0.100/24 brd 10.66.0.255 scope global secondary eth0:vip"),
        "{addrs}"
    );
    agent(&lab, 1, "monitor", &p).run().ok();
    agent(&lab, 1, "stop", &p).run().ok();
    assert!(!lab.addrs(1).contains("10.66.0.100"));
}

#[test]
fn stop_removes_the_vip_from_every_interface() {
    // Stop means "not on this node": a VIP left on another interface (nic changed, an admin
    // added it by hand) would answer beside the new holder.
    let lab = Lab::new(1);
    let ns = lab.ns(1);
    // a second interface (a veth pair inside the namespace: kernels without the dummy module)
    crate::util::sh(&[
        "ip", "-n", ns, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
    ]);
    crate::util::sh(&["ip", "-n", ns, "link", "set", "eth1p", "up"]);
    crate::util::sh(&["ip", "-n", ns, "link", "set", "eth1", "up"]);
    // eth1's own address, then a copy of the VIP beside it
    for a in ["10.66.1.1/24", "10.66.0.100/28"] {
        crate::util::sh(&["ip", "-n", ns, "addr", "add", a, "dev", "eth1"]);
    }
    let p = [("ip", VIP), ("nic", "eth0")];
    // configured, but on the wrong interface: monitor says so instead of "running"
    agent(&lab, 1, "monitor", &p).run().expect(
        1,
        Some("10.66.0.100 is configured on eth1, expected on eth0"),
    );
    agent(&lab, 1, "start", &p)
        .run()
        .expect(1, Some("already configured on eth1"));
    agent(&lab, 1, "stop", &p).run().ok();
    assert!(!lab.addrs(1).contains("10.66.0.100"), "{}", lab.addrs(1));
    agent(&lab, 1, "monitor", &p).run().expect(7, None);
}

/// The VIP must be an address no node has: a node's own address is refused by
/// validate-all (depth 10) and start, reported not running, and never removed by stop.
#[test]
fn a_nodes_own_address_is_never_the_vip() {
    let lab = Lab::new(1);
    for (own, mode) in [
        ("10.66.0.1", "address"),
        ("fd00:66::1", "address"),
        ("10.66.0.1", "route"),
    ] {
        let p = [("ip", own), ("nic", "eth0"), ("local_mode", mode)];
        agent(&lab, 1, "validate-all", &p)
            .env("OCF_CHECK_LEVEL", "10")
            .run()
            .expect(6, Some("own address, not one cloudvip added"));
        agent(&lab, 1, "start", &p)
            .run()
            .expect(6, Some("own address"));
        agent(&lab, 1, "monitor", &p).run().expect(7, None);
        agent(&lab, 1, "stop", &p).run().ok();
        assert!(
            lab.addrs(1).contains(own),
            "stop removed {own}: {}",
            lab.addrs(1)
        );
        assert!(lab.ping(1, own));
    }
    // Beside a VIP of ours the node's address is still its own.
    agent(&lab, 1, "start", &[("ip", VIP), ("nic", "eth0")])
        .run()
        .ok();
    agent(&lab, 1, "start", &[("ip", "10.66.0.1"), ("nic", "eth0")])
        .run()
        .expect(6, Some("own address"));
    agent(&lab, 1, "stop", &[("ip", "10.66.0.1"), ("nic", "eth0")])
        .run()
        .ok();
    assert!(lab.addrs(1).contains("inet 10.66.0.1/24"));
    agent(&lab, 1, "stop", &[("ip", VIP), ("nic", "eth0")])
        .run()
        .ok();
    // A VIP alone on an interface (a dummy-like eth1 with no address of its own) is ours
    // by the protocol tag the kernel keeps, even when our record is gone.
    let ns = lab.ns(1);
    crate::util::sh(&[
        "ip", "-n", ns, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
    ]);
    for l in ["eth1", "eth1p"] {
        crate::util::sh(&["ip", "-n", ns, "link", "set", l, "up"]);
    }
    let p = [("ip", "10.66.9.100"), ("nic", "eth1")];
    agent(&lab, 1, "start", &p).run().ok();
    for f in std::fs::read_dir(crate::util::node_dir(ns))
        .unwrap()
        .flatten()
    {
        if f.file_name()
            .to_string_lossy()
            .starts_with("cloudvip-addr-")
        {
            std::fs::remove_file(f.path()).unwrap();
        }
    }
    agent(&lab, 1, "monitor", &p).run().ok();
    agent(&lab, 1, "stop", &p).run().ok();
    assert!(!lab.addrs(1).contains("10.66.9.100"), "{}", lab.addrs(1));
}

/// A label that does not fit the interface start resolved (IFNAMSIZ: "eth0:" + label <= 15)
/// is refused before anything changes, as validate-all at depth 10 refuses it.
#[test]
fn a_label_too_long_for_the_resolved_nic_is_refused_first() {
    let lab = Lab::new(1);
    let p = [("ip", VIP), ("label", "abcdefghijklmn")];
    agent(&lab, 1, "validate-all", &p).run().ok();
    agent(&lab, 1, "validate-all", &p)
        .env("OCF_CHECK_LEVEL", "10")
        .run()
        .expect(6, Some("longer than 15 characters"));
    agent(&lab, 1, "start", &p)
        .run()
        .expect(6, Some("\"eth0:abcdefghijklmn\" is longer than 15"));
    assert!(!lab.addrs(1).contains(VIP));
}

#[test]
fn link_down_is_a_failure_not_a_stopped_vip() {
    let lab = Lab::new(1);
    let p = [("ip", VIP), ("nic", "eth0")];
    agent(&lab, 1, "start", &p).run().ok();
    crate::util::sh(&["ip", "-n", lab.ns(1), "link", "set", "eth0", "down"]);
    agent(&lab, 1, "monitor", &p)
        .run()
        .expect(1, Some("eth0 holds 10.66.0.100 but is down"));
    agent(&lab, 1, "stop", &p).run().ok();
    agent(&lab, 1, "start", &p)
        .run()
        .expect(1, Some("eth0 is down or has no carrier"));
    agent(&lab, 1, "monitor", &p).run().expect(7, None);
}

#[test]
fn removed_behind_our_back_is_noticed() {
    let lab = Lab::new(1);
    let p = [("ip", VIP6), ("nic", "eth0")];
    agent(&lab, 1, "start", &p).run().ok();
    crate::util::sh(&[
        "ip",
        "-n",
        lab.ns(1),
        "addr",
        "del",
        "fd00:66::100/128",
        "dev",
        "eth0",
    ]);
    agent(&lab, 1, "monitor", &p).run().expect(7, None);
}

#[test]
fn migrate_and_reload() {
    let lab = Lab::new(3);
    let p = [("ip", VIP), ("nic", "eth0")];
    agent(&lab, 1, "start", &p).run().ok();
    assert!(lab.ping(3, VIP));
    agent(&lab, 1, "reload", &p).run().ok();
    agent(&lab, 2, "reload", &p)
        .run()
        .expect(1, Some("not running on this node"));
    // Pacemaker's live move: migrate_to on A, migrate_from on B, then stop on A.
    agent(&lab, 1, "migrate_to", &p)
        .env("OCF_RESKEY_CRM_meta_migrate_target", "node2")
        .run()
        .ok();
    agent(&lab, 2, "migrate_from", &p).run().ok();
    agent(&lab, 1, "stop", &p).run().ok();
    assert!(lab.wait_neigh(3, VIP, &Lab::mac(2), Duration::from_secs(3)));
    assert!(lab.ping(3, VIP));
}

/// The announcer belongs to its resource: after stop no announcement leaves the old node
/// (a client would follow it back there), after reload there is still exactly one.
#[test]
fn the_background_announcer_ends_at_stop_and_reload() {
    let lab = Lab::new(3);
    let p = [
        ("ip", VIP),
        ("nic", "eth0"),
        ("arp_bg", "true"),
        ("arp_count", "60"),
        ("arp_interval", "100"),
    ];
    agent(&lab, 1, "start", &p).run().ok();
    assert_eq!(lab.announcers(1).len(), 1, "start leaves one announcer");
    // The client talks to the VIP: its neighbour cache has an entry to update.
    assert!(lab.ping(3, VIP));
    assert!(lab.arp_frames_from(3, &Lab::mac(1), Duration::from_millis(500)) > 0);
    agent(&lab, 1, "reload", &p).run().ok();
    assert_eq!(lab.announcers(1).len(), 1, "reload replaces the announcer");
    agent(&lab, 1, "stop", &p).run().ok();
    assert_eq!(
        lab.announcers(1),
        Vec::<u32>::new(),
        "stop ends the announcer"
    );
    // Failover: the client follows node 2 and nothing from node 1 pulls it back.
    agent(&lab, 2, "start", &p).run().ok();
    assert!(lab.wait_neigh(3, VIP, &Lab::mac(2), Duration::from_secs(3)));
    assert_eq!(
        lab.arp_frames_from(3, &Lab::mac(1), Duration::from_millis(1500)),
        0,
        "node 1 still announces after its stop"
    );
    assert_eq!(lab.neigh(3, VIP), Some(Lab::mac(2)));
    assert!(lab.ping(3, VIP));
    agent(&lab, 2, "stop", &p).run().ok();
    assert!(lab.announcers(2).is_empty());
}

#[test]
fn announcements_stop_at_the_deadline() {
    // 100 announcements 1 s apart cannot fit a 3 s timeout: start sends what fits in the
    // budget (3 s minus the 0.5 s margin), logs why it stopped, and succeeds in time.
    let lab = Lab::new(1);
    let logfile = tempfile::NamedTempFile::new().unwrap();
    let r = agent(
        &lab,
        1,
        "start",
        &[
            ("ip", VIP),
            ("nic", "eth0"),
            ("arp_count", "100"),
            ("arp_interval", "1000"),
        ],
    )
    .env("OCF_RESKEY_CRM_meta_timeout", "3000")
    .env("HA_LOGFILE", logfile.path().to_str().unwrap())
    .run();
    r.ok();
    let log = std::fs::read_to_string(logfile.path()).unwrap();
    assert!(
        log.contains("INFO: stopped announcing 10.66.0.100 after 3 of 100: deadline"),
        "{log}"
    );
}

#[test]
fn default_nic_follows_the_default_route_for_a_vip_outside_every_subnet() {
    let lab = Lab::new(1);
    let ns = lab.ns(1);
    // a second interface that owns the default route; the VIP is in no connected subnet
    crate::util::sh(&[
        "ip", "-n", ns, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
    ]);
    crate::util::sh(&["ip", "-n", ns, "link", "set", "eth1p", "up"]);
    crate::util::sh(&["ip", "-n", ns, "link", "set", "eth1", "up"]);
    crate::util::sh(&["ip", "-n", ns, "addr", "add", "10.67.0.1/24", "dev", "eth1"]);
    crate::util::sh(&[
        "ip",
        "-n",
        ns,
        "route",
        "add",
        "default",
        "via",
        "10.67.0.254",
        "dev",
        "eth1",
    ]);
    let p = [("ip", "10.99.0.5")];
    agent(&lab, 1, "start", &p).run().ok();
    assert!(
        lab.addrs(1).contains("eth1    inet 10.99.0.5/32"),
        "{}",
        lab.addrs(1)
    );
    agent(&lab, 1, "monitor", &p).run().ok();
    agent(&lab, 1, "stop", &p).run().ok();
}
