//! The OCI backend against the emulator: three instances whose VNIC MACs are the VMs'
//! eth0 MACs, IMDS v2 on 169.254.169.254 (instance by source address), the Networking API
//! and the federation endpoint over HTTPS. Every request the agent makes is signed, and
//! the emulator verifies every signature. Tests assert the cloud state (who holds the
//! private IP object and the reserved public IP), not just exit codes.

use std::time::Instant;

use serde_json::json;

use crate::clouds::oci;
use crate::util::Agent;

pub use oci::{vnic, world, OciLab, VIP};
use oci::{PUBLIC, SPARE, VIP_ID};
#[test]
fn failover_with_instance_principals_moves_private_and_public_ip() {
    let o = OciLab::new();
    let p = [("public_ip", PUBLIC)];
    o.agent(2, "monitor", &p).run().expect(7, None);
    o.agent(2, "start", &p).run().ok();
    // the same private IP object moved (its OCID kept), the public IP followed it
    assert_eq!(o.holder(VIP), vnic(2));
    assert_eq!(
        o.private_ip_id(VIP),
        VIP_ID,
        "moved with PUT, not deleted and re-created"
    );
    assert_eq!(o.public(), (VIP_ID.to_owned(), "ASSIGNED".to_owned()));
    assert_eq!(
        o.holder("10.0.1.50"),
        vnic(2),
        "node2's other secondary IP is untouched"
    );
    assert!(o.c.holds_locally(2, VIP), "{}", o.c.lab.addrs(2));
    o.agent(2, "monitor", &p).run().ok();
    o.agent(2, "monitor", &p)
        .env("OCF_CHECK_LEVEL", "10")
        .run()
        .ok();

    // double start: the cached session token, no federation
    o.c.clear_log();
    o.agent(2, "start", &p).run().ok();
    assert_eq!(o.auth_calls(), 0, "{:#?}", o.c.log());

    // stop: local address gone, the private IP stays (documented), public IP attached
    o.agent(2, "stop", &p).run().ok();
    o.agent(2, "stop", &p).run().ok();
    assert!(!o.c.holds_locally(2, VIP));
    assert_eq!(o.holder(VIP), vnic(2));
    assert_eq!(
        o.public().1,
        "ASSIGNED",
        "stop never leaves the reserved public IP detached"
    );

    o.agent(1, "start", &p).run().ok();
    assert_eq!(o.holder(VIP), vnic(1));
    assert_eq!(o.public(), (VIP_ID.to_owned(), "ASSIGNED".to_owned()));
    // the monitor on node2 (no local address) says not running; a deep monitor on node1 agrees
    o.agent(2, "monitor", &p).run().expect(7, None);
    o.agent(1, "monitor", &p)
        .env("OCF_CHECK_LEVEL", "10")
        .run()
        .ok();
}

#[test]
fn api_key_auth_including_an_encrypted_key() {
    let o = OciLab::new();
    // node3's instance principal may only read: its start is refused with a clear reason
    o.agent(3, "start", &[])
        .run()
        .expect(4, Some("permission denied by the cloud"));
    assert_eq!(o.holder(VIP), vnic(1));
    let cfg = o.credentials_file("api.pem", None);
    o.agent(
        3,
        "start",
        &[("credentials", &cfg), ("oci_profile", "cloudvip")],
    )
    .run()
    .ok();
    assert_eq!(o.holder(VIP), vnic(3));
    let enc = o.credentials_file("api_enc.pem", Some("s3cret"));
    o.agent(
        2,
        "start",
        &[("credentials", &enc), ("oci_profile", "cloudvip")],
    )
    .run()
    .ok();
    assert_eq!(o.holder(VIP), vnic(2));
    let wrong = o.credentials_file("api_enc.pem", Some("wrong"));
    o.agent(
        1,
        "start",
        &[("credentials", &wrong), ("oci_profile", "cloudvip")],
    )
    .run()
    .expect(5, Some("wrong pass_phrase"));
    assert_eq!(o.holder(VIP), vnic(2));
}

#[test]
fn creates_the_private_ip_when_nobody_has_it() {
    let o = OciLab::new();
    let ip = "10.0.1.77";
    o.agent(2, "start", &[("ip", ip)]).run().ok();
    assert_eq!(o.holder(ip), vnic(2));
    // the primary private IP of another VNIC can never be the VIP
    o.agent(2, "start", &[("ip", "10.0.1.11")])
        .run()
        .expect(6, Some("is the primary private IP"));
    assert_eq!(o.holder("10.0.1.11"), vnic(1));
}

/// A start that is going to fail fails before it touches the holder: a VNIC of another
/// instance, a primary private IP (of this instance or another), the instance's own
/// primary IP at start (which the cloud would happily call "already assigned").
#[test]
fn oci_validates_before_the_first_cloud_change() {
    let o = OciLab::new();
    o.agent(2, "start", &[]).run().ok();
    assert_eq!(o.holder(VIP), vnic(2));
    let depth10 = |a: Agent| a.env("OCF_CHECK_LEVEL", "10");
    o.c.clear_log();
    // node 1 with node 2's VNIC: this node only (2), nothing written
    let other = vnic(2);
    for action in ["validate-all", "start"] {
        depth10(o.agent(1, action, &[("vnic_id", &other)]))
            .run()
            .expect(2, Some("is not a VNIC of this instance"));
    }
    // its own VNIC, but not the interface nic names
    let own = vnic(1);
    o.agent(1, "start", &[("vnic_id", &own), ("nic", "lo")])
        .run()
        .expect(2, None);
    // node 2's own primary private IP: refused from IMDS at start and validate-all
    for action in ["validate-all", "start"] {
        depth10(o.agent(2, action, &[("ip", "10.0.1.12")]))
            .run()
            .expect(6, Some("is the primary private IP of this instance's VNIC"));
    }
    // another instance's primary: the cloud says so, before any write
    o.agent(2, "start", &[("ip", "10.0.1.11")])
        .run()
        .expect(6, Some("is the primary private IP"));
    let writes =
        o.c.log()
            .iter()
            .filter(|e| e["method"] != "GET" && e["service"] == "networking")
            .count();
    assert_eq!(writes, 0, "{:#?}", o.c.log());
    assert_eq!(o.holder(VIP), vnic(2));
    assert_eq!(o.holder("10.0.1.12"), vnic(2));
    assert!(!o.c.lab.addrs(2).contains("10.0.1.12"));
}

/// Stop makes no API call, so an API outage cannot hold a failover up: the local address
/// goes at once and the private IP stays for the next start elsewhere to move.
#[test]
fn stop_during_an_api_outage_returns_at_once() {
    let o = OciLab::new();
    o.agent(1, "start", &[]).run().ok();
    o.c.clear_log();
    o.agent(1, "stop", &[]).run().ok();
    assert!(
        o.c.log().is_empty(),
        "stop asked the cloud: {:#?}",
        o.c.log()
    );
    o.agent(1, "start", &[]).run().ok();
    o.c.fault(json!({"kind": "down", "cloud": "oci"}));
    let t = Instant::now();
    o.agent(1, "stop", &[]).run().ok();
    println!("oci stop with the API and IMDS down: {:?}", t.elapsed());
    assert!(!o.c.holds_locally(1, VIP));
    o.c.clear_faults();
    assert_eq!(o.holder(VIP), vnic(1));
}

#[test]
fn token_revoked_mid_operation_and_failed_public_ip_assignment() {
    let o = OciLab::new();
    // a cached token that the service no longer accepts: one 401, one refresh, success
    o.agent(2, "start", &[]).run().ok();
    o.c.admin("POST", "/admin/oci/tokens/revoke", None);
    o.c.clear_log();
    o.agent(1, "start", &[]).run().ok();
    assert_eq!(o.holder(VIP), vnic(1));
    assert_eq!(
        o.auth_calls(),
        1,
        "exactly one new federation after the 401"
    );
    // The asynchronous assignment fails silently into AVAILABLE (oci-api.md §2.6): start
    // notices and assigns again. A new VIP with the spare public IP, so that start must
    // assign it.
    o.c.admin(
        "POST",
        "/admin/oci/public-ips/fail-next",
        Some(json!({"count": 1})),
    );
    o.c.clear_log();
    o.agent(
        1,
        "start",
        &[
            ("ip", "10.0.1.77"),
            ("public_ip", "ocid1.publicip.oc1.iad.aaaaaaaaspare"),
        ],
    )
    .run()
    .ok();
    let pid = o.private_ip_id("10.0.1.77");
    assert_eq!(o.public_ip(SPARE), (pid, "ASSIGNED".to_owned()));
    let puts =
        o.c.log()
            .iter()
            .filter(|e| {
                e["method"] == "PUT" && e["path"].as_str().unwrap_or("").contains("/publicIps/")
            })
            .count();
    assert_eq!(puts, 2, "the failed assignment was retried once");
}

/// The Networking API calls since `clear_log`, by operation name.
fn networking_calls(o: &OciLab) -> Vec<String> {
    o.c.log()
        .iter()
        .filter(|e| e["service"] == "networking")
        .map(|e| e["api"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Each action makes the signed calls it needs and no more (the emulator's request log):
/// a probe caches the VNIC's subnet (GetVnic), so a start on the probed node lists the
/// VIP's private IP at once; the list stops at the page that holds the VIP (real OCI then
/// offers an empty one, oci-api.md §2.4); the move is a PUT with no read before it, and
/// none after it either when its answer shows the object on our VNIC or, as the recorded
/// 2018 answer does, leaves vnicId out (both answers, selectable).
#[test]
fn each_action_makes_only_the_signed_calls_it_needs() {
    for omits in [false, true] {
        let o = OciLab::with(|d| {
            let mut w = world(d);
            oci::oci(&mut w).move_answer_omits_vnic_id = omits;
            w
        });
        let p = [("public_ip", PUBLIC)];
        let calls = |a: Agent| {
            o.c.clear_log();
            a.run().ok();
            let log = o.c.log();
            assert!(
                log.iter()
                    .all(|e| !e["query"].as_str().unwrap_or("").contains("page=")),
                "no second page: {log:#?}"
            );
            networking_calls(&o)
        };
        let probe = |i| {
            o.agent(i, "monitor", &p)
                .env("OCF_RESKEY_CRM_meta_interval", "0")
        };
        let every = |i, ms: &str| {
            o.agent(i, "monitor", &p)
                .env("OCF_RESKEY_CRM_meta_interval", ms)
        };
        // not running here (exit 7), and the subnet cached
        o.c.clear_log();
        probe(2).run().expect(7, None);
        assert_eq!(
            networking_calls(&o),
            ["GetVnic"],
            "probe, omits vnicId: {omits}"
        );
        // The public IP is assigned to the VIP's private IP object and follows its move.
        assert_eq!(
            calls(o.agent(2, "start", &p)),
            [
                "ListPrivateIps",
                "UpdatePrivateIp",
                "GetPublicIpByIpAddress"
            ],
            "move on a probed node, omits vnicId: {omits}"
        );
        assert_eq!(o.holder(VIP), vnic(2));
        assert_eq!(o.public(), (VIP_ID.to_owned(), "ASSIGNED".to_owned()));
        assert_eq!(
            calls(o.agent(2, "start", &p)),
            ["ListPrivateIps", "GetPublicIpByIpAddress"],
            "already here"
        );
        assert_eq!(
            calls(probe(2)),
            Vec::<String>::new(),
            "probe, subnet cached"
        );
        assert_eq!(calls(every(2, "10000")), Vec::<String>::new(), "monitor");
        assert_eq!(
            calls(every(2, "60000").env("OCF_CHECK_LEVEL", "10")),
            ["ListPrivateIps"],
            "monitor depth 10"
        );
        assert_eq!(calls(o.agent(2, "stop", &p)), Vec::<String>::new(), "stop");
        // a node nobody probed asks for its subnet first
        assert_eq!(
            calls(o.agent(1, "start", &p)),
            [
                "GetVnic",
                "ListPrivateIps",
                "UpdatePrivateIp",
                "GetPublicIpByIpAddress"
            ],
            "move on a node not probed, omits vnicId: {omits}"
        );
        assert_eq!(o.holder(VIP), vnic(1));
        assert_eq!(o.public(), (VIP_ID.to_owned(), "ASSIGNED".to_owned()));
    }
}

/// The subnet cache file of node `i`'s VNIC in `dir`, found by its content.
fn subnet_cache_file(dir: &std::path::Path, i: usize) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|f| f.path())
        .find(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("cloudvip-oci-vnic-")
                && name.ends_with(".json")
                && std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .contains(&vnic(i))
        })
        .unwrap_or_else(|| panic!("no subnet cache for node {i} in {}", dir.display()))
}

/// A cached subnet is a hint that its answers must prove: a wrong subnet (none such, or
/// another subnet where the same address sits on someone else's VNIC), garbage, or a
/// file others can read cost calls, never a wrong answer, and the entry is made right.
/// The cache lives where Pacemaker's agents keep state without HA_RSCTMP too.
#[test]
fn a_stale_or_corrupt_subnet_cache_never_gives_a_wrong_answer() {
    use std::os::unix::fs::PermissionsExt as _;
    const OTHER_SUBNET: &str = "ocid1.subnet.oc1.iad.aaaaaaaaothersubnet";
    // Another VCN with the same addresses, where instance 4 holds 10.0.1.100 as well.
    let o = OciLab::with(|d| {
        let mut w = world(d);
        let c = oci::oci(&mut w);
        c.vcns.push(cloudvip_sim::oci::world::VcnConfig {
            id: "ocid1.vcn.oc1.iad.aaaaaaaaothervcn".into(),
            cidr: "10.0.0.0/16".into(),
            display_name: None,
        });
        let mut s = c.subnets[0].clone();
        s.id = OTHER_SUBNET.into();
        s.vcn = "ocid1.vcn.oc1.iad.aaaaaaaaothervcn".into();
        c.subnets.push(s);
        let mut n4 = oci::instance(4, "10.0.1.14");
        n4.metadata_source = None;
        n4.vnics[0].subnet = OTHER_SUBNET.into();
        n4.vnics[0].mac = "02:00:00:00:00:44".into();
        c.instances.push(n4);
        c.private_ips.push(oci::private_ip(
            "ocid1.privateip.oc1.iad.aaaaaaaatwin",
            4,
            VIP,
        ));
        w
    });
    let dir = o.c.dir.path();
    let wrong = |subnet: &str| format!(r#"{{"vnicId":"{}","subnetId":"{subnet}"}}"#, vnic(2));
    let run = |a: Agent| {
        o.c.clear_log();
        a.run().ok();
        networking_calls(&o)
    };
    o.agent(2, "monitor", &[]).run().expect(7, None);
    let f = subnet_cache_file(dir, 2);
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&f).unwrap().contains(oci::SUBNET));

    // the twin in the other subnet: the move is refused there, GetVnic's subnet decides
    std::fs::write(&f, wrong(OTHER_SUBNET)).unwrap();
    assert_eq!(
        run(o.agent(2, "start", &[])),
        [
            "ListPrivateIps",
            "UpdatePrivateIp",
            "GetVnic",
            "ListPrivateIps",
            "UpdatePrivateIp"
        ]
    );
    assert_eq!(o.holder(VIP), vnic(2));
    assert_eq!(o.private_ip_id(VIP), VIP_ID);
    let twin = o.state()["privateIps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "ocid1.privateip.oc1.iad.aaaaaaaatwin")
        .cloned()
        .unwrap();
    assert_eq!(
        twin["vnicId"],
        vnic(4).as_str(),
        "the twin stays where it is"
    );
    assert!(std::fs::read_to_string(&f).unwrap().contains(oci::SUBNET));

    // a depth-10 monitor with the twin's subnet: the VIP is not seen elsewhere
    let deep = |a: Agent| a.env("OCF_CHECK_LEVEL", "10");
    std::fs::write(&f, wrong(OTHER_SUBNET)).unwrap();
    assert_eq!(
        run(deep(o.agent(2, "monitor", &[]))),
        ["ListPrivateIps", "GetVnic", "ListPrivateIps"]
    );
    // no such subnet, garbage, readable by others: GetVnic, as without a cache
    std::fs::write(&f, wrong("ocid1.subnet.oc1.iad.aaaaaaaagone")).unwrap();
    assert_eq!(
        run(deep(o.agent(2, "monitor", &[]))),
        ["ListPrivateIps", "GetVnic", "ListPrivateIps"]
    );
    std::fs::write(&f, "{not json").unwrap();
    assert_eq!(
        run(deep(o.agent(2, "monitor", &[]))),
        ["GetVnic", "ListPrivateIps"]
    );
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        run(deep(o.agent(2, "monitor", &[]))),
        ["GetVnic", "ListPrivateIps"]
    );
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600,
        "rewritten private"
    );
    assert_eq!(run(deep(o.agent(2, "monitor", &[]))), ["ListPrivateIps"]);

    // Without HA_RSCTMP (as Pacemaker runs agents): the node's /run/resource-agents.
    let node_dir = crate::util::node_dir(o.c.lab.ns(1));
    let bare = |a: Agent| a.env_remove("HA_RSCTMP");
    bare(o.agent(1, "monitor", &[])).run().expect(7, None);
    subnet_cache_file(&node_dir, 1);
    assert_eq!(
        run(bare(o.agent(1, "start", &[]))),
        ["ListPrivateIps", "UpdatePrivateIp"]
    );
    assert_eq!(o.holder(VIP), vnic(1));
}

/// Not an assertion: the numbers for the closing note.
#[test]
fn report_signed_calls_and_time_per_action() {
    let o = OciLab::new();
    let p = [("public_ip", PUBLIC)];
    println!("| action (public IP assignment 300 ms) | signed API | federation | IMDS | wall |");
    for (label, node, action, revoke) in [
        ("start, move + public IP, no cached token", 2, "start", true),
        ("start again, cached token", 2, "start", false),
        ("monitor depth 0", 2, "monitor", false),
        ("monitor depth 10, cached token", 2, "monitor10", false),
        ("stop", 2, "stop", false),
        ("start, move back, cached token", 1, "start", false),
    ] {
        if revoke {
            o.c.admin("POST", "/admin/oci/tokens/revoke", None);
            for f in std::fs::read_dir(o.c.dir.path()).unwrap().flatten() {
                if f.file_name()
                    .to_string_lossy()
                    .starts_with("cloudvip-oci-token")
                {
                    std::fs::remove_file(f.path()).unwrap();
                }
            }
        }
        o.c.clear_log();
        let t = Instant::now();
        let mut a = o.agent(
            node,
            if action == "monitor10" {
                "monitor"
            } else {
                action
            },
            &p,
        );
        if action == "monitor10" {
            a = a.env("OCF_CHECK_LEVEL", "10");
        }
        a.run().ok();
        let ms = t.elapsed().as_millis();
        let log = o.c.log();
        let count = |s: &str| log.iter().filter(|e| e["service"] == s).count();
        println!(
            "| {label:<40} | {:>3} | {:>3} | {:>3} | {ms:>5} ms |",
            count("networking"),
            count("auth"),
            count("metadata")
        );
    }
}
