//! GCE's static external IP and the node it leaves (issue 11, item 9). GCE allows one
//! access config per NIC, so the node that takes `public_ip` gives up its ephemeral
//! external IP, and the node it leaves has none afterwards. By default that is how it
//! stays (Cloud NAT is the egress for nodes without one); with restore_ephemeral_ip=true
//! start gives the node it left a new ephemeral IP, after the static one works here, and a
//! failure to do so is only a warning. Asserted on the emulator's state.

use serde_json::json;

use crate::gce::GceLab;

/// An ephemeral address of the emulator's pool (RFC 5737 TEST-NET-2).
fn is_ephemeral(ip: &str) -> bool {
    ip.starts_with("198.51.100.")
}

#[test]
fn restore_ephemeral_ip_gives_the_node_left_behind_a_new_external_ip() {
    let g = GceLab::new();
    let p = [("public_ip", "vip-ext"), ("peer_label", "cluster=ha1")];
    let b_own = g.nat_ips("node-b");
    assert!(
        b_own.len() == 1 && is_ephemeral(&b_own[0]),
        "node-b starts with an ephemeral IP: {b_own:?}"
    );

    // The default: node-b takes the static IP and node-a is left without any.
    g.agent(2, "start", &p).run().ok();
    assert_eq!(g.nat_ips("node-b"), ["203.0.113.10"]);
    assert_eq!(g.nat_ips("node-a"), Vec::<String>::new());

    // Back to node-a with restore_ephemeral_ip: node-b gets a new ephemeral IP under
    // access_config_name (GCE picks it; the emulator's pool happens to give the same one).
    let restore = [
        ("public_ip", "vip-ext"),
        ("peer_label", "cluster=ha1"),
        ("restore_ephemeral_ip", "true"),
    ];
    g.agent(1, "start", &restore).run().ok();
    assert_eq!(g.nat_ips("node-a"), ["203.0.113.10"]);
    let b_new = g.nat_ips("node-b");
    assert!(
        b_new.len() == 1 && is_ephemeral(&b_new[0]),
        "node-b after the move: {b_new:?} (it had {b_own:?})"
    );
    let config = &g.instance("node-b")["networkInterfaces"][0]["accessConfigs"][0];
    assert_eq!(config["name"], "External NAT", "{config}");
    assert!(g.aliases("node-a").contains(&"10.128.0.100/32".to_owned()));
    assert!(!g.aliases("node-b").contains(&"10.128.0.100/32".to_owned()));

    // A start on a node that already has the static IP leaves everyone alone.
    let before = (g.nat_ips("node-a"), g.nat_ips("node-b"));
    g.agent(1, "start", &restore).run().ok();
    assert_eq!(before, (g.nat_ips("node-a"), g.nat_ips("node-b")));

    // The restore refused: the start still succeeds (the static IP works where it
    // should), with a warning naming the node left without an external IP.
    g.fault(json!({"kind": "error", "status": 403, "cloud": "gce",
                   "api": "compute.instances.addAccessConfig", "instance": "node-a"}));
    let r = g.agent(2, "start", &restore).run();
    r.ok();
    assert!(g.fault_fired(), "the restore was never tried");
    assert_eq!(g.nat_ips("node-b"), ["203.0.113.10"]);
    assert_eq!(g.nat_ips("node-a"), Vec::<String>::new());
    assert!(
        r.stderr.contains("node-a nic0 got no new external IP"),
        "{}",
        r.stderr
    );
}
