//! The GCE backend against the emulator, on real kernel networking: a three-instance
//! world, each instance a network namespace whose eth0 MAC is the GCE NIC's MAC, the
//! emulator in a "cloud" namespace serving the metadata server on 169.254.169.254 (told
//! apart by source address, as GCE does) and the Compute API over HTTPS with a test CA.
//! The agent runs with its production defaults except `api_endpoint`/`ca_bundle`.
//! Every test asserts the emulator's cloud state, not just exit codes.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::clouds::gce;

pub use gce::GceLab;
use gce::VIP;

fn holds_locally(g: &GceLab, i: usize) -> bool {
    g.c.holds_locally(i, VIP)
}

#[test]
fn failover_moves_alias_and_external_ip_and_nothing_else() {
    let g = GceLab::new();
    let p = [("public_ip", "vip-ext"), ("peer_label", "cluster=ha1")];
    g.agent(2, "monitor", &p).run().expect(7, None);
    g.agent(2, "start", &p).run().ok();
    // the VIP and the external address moved from node-a to node-b ...
    assert_eq!(
        g.aliases("node-a"),
        vec!["10.200.0.8/29"],
        "node-a keeps its other range"
    );
    assert_eq!(
        g.aliases("node-b"),
        vec!["10.128.0.100/32", "10.128.0.51/32"],
        "node-b keeps its own alias"
    );
    assert_eq!(g.nat_ips("node-a"), Vec::<String>::new());
    assert_eq!(
        g.nat_ips("node-b"),
        vec!["203.0.113.10"],
        "the ephemeral IP made room for the static one"
    );
    assert_eq!(g.aliases("node-c"), Vec::<String>::new());
    // ... and the node serves it locally
    assert!(holds_locally(&g, 2), "{}", g.c.lab.addrs(2));
    g.agent(2, "monitor", &p).run().ok();

    // monitor at depth 0 costs no Compute API call
    g.clear_log();
    g.agent(2, "monitor", &p).run().ok();
    assert_eq!(g.api_calls(), 0, "{:#?}", g.log());
    // a double start trusts the API, not the metadata server (a removal queued by another
    // node may not show there yet): our instance, nothing in flight on it, unchanged
    g.agent(2, "start", &[("peer_label", "cluster=ha1")])
        .run()
        .ok();
    let apis: Vec<String> = g
        .log()
        .iter()
        .filter(|e| e["api_call"] == true)
        .map(|e| e["api"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(
        apis,
        [
            "compute.instances.get",
            "compute.zoneOperations.list",
            "compute.instances.get"
        ],
        "{:#?}",
        g.log()
    );
    // depth 10 asks the API
    g.agent(2, "monitor", &p)
        .env("OCF_CHECK_LEVEL", "10")
        .run()
        .ok();
    assert!(g.api_calls() >= 1);

    // and back to node-a
    g.agent(2, "stop", &p).run().ok();
    assert!(!holds_locally(&g, 2));
    assert_eq!(g.aliases("node-b"), vec!["10.128.0.51/32"]);
    assert_eq!(
        g.nat_ips("node-b"),
        vec!["203.0.113.10"],
        "stop leaves the public IP attached"
    );
    g.agent(2, "stop", &p).run().ok();
    g.agent(1, "start", &p).run().ok();
    assert_eq!(
        g.aliases("node-a"),
        vec!["10.128.0.100/32", "10.200.0.8/29"]
    );
    assert_eq!(g.nat_ips("node-a"), vec!["203.0.113.10"]);
    assert_eq!(g.nat_ips("node-b"), Vec::<String>::new());
    assert!(holds_locally(&g, 1));
}

#[test]
fn peers_by_name_and_by_scan() {
    for p in [&[("peers", "node-a, node-c")][..], &[][..]] {
        let g = GceLab::new();
        g.agent(3, "start", p)
            .run()
            .expect(4, Some("compute.instances.updateNetworkInterface"));
        g.agent(2, "start", p).run().ok();
        assert_eq!(g.aliases("node-a"), vec!["10.200.0.8/29"]);
        assert!(g.aliases("node-b").contains(&"10.128.0.100/32".to_owned()));
    }
}

#[test]
fn monitor_states() {
    let g = GceLab::new();
    g.agent(2, "start", &[]).run().ok();
    g.agent(2, "monitor", &[]).run().ok();
    // the metadata server is down: no evidence against the VIP the kernel has (monitor.rs)
    g.fault(json!({"kind": "down", "service": "metadata", "instance": "node-b"}));
    let r = g
        .agent(2, "monitor", &[])
        .env("OCF_RESKEY_CRM_meta_timeout", "3000")
        .run();
    r.expect(0, None);
    assert!(
        r.stderr.contains("WARNING: monitor: cannot ask gce"),
        "{}",
        r.stderr
    );
    g.clear_faults();
    g.agent(2, "monitor", &[]).run().ok();
    // someone removes the alias in the console: monitor notices
    g.admin(
        "POST",
        "/admin/gce/instances/node-b/nics/nic0",
        Some(json!({"aliasIpRanges": []})),
    );
    g.agent(2, "monitor", &[])
        .run()
        .expect(1, Some("gce does not route it here"));
    // Pacemaker's recovery: stop, start
    g.agent(2, "stop", &[]).run().ok();
    g.agent(2, "start", &[]).run().ok();
    assert_eq!(g.aliases("node-b"), vec!["10.128.0.100/32"]);
}

#[test]
fn stuck_operation_fails_start_within_the_timeout() {
    let g = GceLab::new();
    g.fault(json!({"kind": "operation_stuck"}));
    let t = Instant::now();
    let r = g
        .agent(2, "start", &[])
        .env("OCF_RESKEY_CRM_meta_timeout", "6000")
        .run();
    let took = t.elapsed();
    r.expect(1, Some("not DONE before the deadline"));
    assert!(
        took < Duration::from_secs(6),
        "start overran its 6 s timeout: {took:?}"
    );
    assert!(
        !holds_locally(&g, 2),
        "a failed start must not leave the address"
    );
}

#[test]
fn stop_succeeds_when_the_api_is_down() {
    let g = GceLab::new();
    g.agent(2, "start", &[]).run().ok();
    g.fault(json!({"kind": "error", "status": 503, "service": "compute"}));
    let log = tempfile::NamedTempFile::new().unwrap();
    let t = Instant::now();
    g.agent(2, "stop", &[])
        .env("OCF_RESKEY_CRM_meta_timeout", "4000")
        .env("HA_LOGFILE", log.path().to_str().unwrap())
        .run()
        .ok();
    assert!(t.elapsed() < Duration::from_secs(4));
    assert!(!holds_locally(&g, 2), "the local address must go");
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        text.contains("WARNING: stop: could not release 10.128.0.100 in gce"),
        "{text}"
    );
    // the alias is still on node-b; the next start elsewhere takes it
    g.clear_faults();
    g.agent(1, "start", &[]).run().ok();
    assert_eq!(g.aliases("node-b"), vec!["10.128.0.51/32"]);
}

#[test]
fn service_account_key_tokens_are_cached_privately() {
    let g = GceLab::new();
    let key = g.admin(
        "POST",
        "/admin/gce/service-accounts/cloudvip@my-project.iam.gserviceaccount.com/keys",
        None,
    );
    let key_path = g.c.dir.path().join("sa.json");
    std::fs::write(&key_path, key.to_string()).unwrap();
    let chmod = |m: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(m)).unwrap()
    };
    chmod(0o666);
    let p = [("credentials", key_path.to_str().unwrap())];
    g.agent(2, "start", &p)
        .run()
        .expect(5, Some("lets others write it"));
    chmod(0o600);
    g.clear_log();
    g.agent(2, "start", &p).run().ok();
    let token_calls = |g: &GceLab| {
        g.log()
            .iter()
            .filter(|e| e["api"] == "oauth2.token")
            .count()
    };
    assert_eq!(token_calls(&g), 1);
    let cached: Vec<_> = std::fs::read_dir(g.c.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("cloudvip-gce-token-")
        })
        .collect();
    assert_eq!(cached.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        cached[0].metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(cached[0].path()).unwrap();
    // a second action uses the cache; the log never shows the token
    g.clear_log();
    g.agent(2, "stop", &p).run().ok();
    assert_eq!(token_calls(&g), 0);
    let token = serde_json::from_str::<Value>(&text).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let logfile = tempfile::NamedTempFile::new().unwrap();
    let r = g
        .agent(2, "start", &p)
        .env("HA_debug", "1")
        .env("HA_LOGFILE", logfile.path().to_str().unwrap())
        .run();
    r.ok();
    let logged = std::fs::read_to_string(logfile.path()).unwrap() + &r.stderr;
    assert!(!logged.contains(&token), "the access token was logged");
    // an expired token (401) is refreshed once and the action still succeeds
    g.admin("POST", "/admin/gce/tokens/expire", None);
    g.agent(2, "stop", &p).run().ok();
    assert_eq!(g.aliases("node-b"), vec!["10.128.0.51/32"]);
}

/// Not an assertion: the numbers for the closing note (API calls per action, wall time).
#[test]
fn report_api_calls_and_time_per_action() {
    let g = GceLab::new();
    let p = [("public_ip", "vip-ext"), ("peer_label", "cluster=ha1")];
    let mut rows = Vec::new();
    for (label, node, action, params) in [
        ("start (move from node-a, + public IP)", 2, "start", &p[..]),
        ("start again (already held)", 2, "start", &p[..]),
        ("monitor depth 0", 2, "monitor", &p[..]),
        ("stop", 2, "stop", &p[..]),
        ("start (nobody holds it, no public IP)", 1, "start", &[][..]),
        ("stop (no public IP)", 1, "stop", &[][..]),
    ] {
        g.clear_log();
        let t = Instant::now();
        g.agent(node, action, params).run().ok();
        let ms = t.elapsed().as_millis();
        let log = g.log();
        let api = log.iter().filter(|e| e["api_call"] == true).count();
        let md = log.iter().filter(|e| e["service"] == "metadata").count();
        rows.push(format!("| {label:<40} | {api:>3} | {md:>3} | {ms:>5} ms |"));
    }
    println!(
        "| action (operations {}ms pending + {}ms running) | API | MDS | wall |",
        20, 80
    );
    for r in rows {
        println!("{r}");
    }
}

/// A start that is going to fail fails before it takes the VIP from its healthy holder:
/// an unknown secondary range, a VIP outside the subnet's ranges, a peer's primary
/// address, a static external address that does not exist. Exit 6 (the configuration is
/// wrong on every node), node-a untouched, no write at all.
#[test]
fn a_start_that_will_fail_fails_before_any_change() {
    let g = GceLab::new();
    let before = g.aliases("node-a");
    for (params, ip, reason) in [
        (
            &[("alias_range_name", "nope")][..],
            VIP,
            "alias_range_name=nope",
        ),
        (&[][..], "10.200.0.40", "outside the primary range"),
        (
            &[("alias_range_name", "vips")][..],
            "10.128.0.101",
            "outside secondary range vips",
        ),
        (&[][..], "10.128.0.10", "primary address of node-a"),
        (
            &[("public_ip", "no-such-address")][..],
            VIP,
            "public_ip=no-such-address",
        ),
    ] {
        g.clear_log();
        g.agent(2, "start", params)
            .param("ip", ip)
            .run()
            .expect(6, Some(reason));
        let writes = g
            .log()
            .iter()
            .filter(|e| {
                e["api"].as_str().is_some_and(|a| {
                    a.ends_with("updateNetworkInterface") || a.ends_with("AccessConfig")
                })
            })
            .count();
        assert_eq!(writes, 0, "{reason}: {:#?}", g.log());
        assert_eq!(g.aliases("node-a"), before, "{reason}");
        assert!(!holds_locally(&g, 2), "{reason}");
    }
    // and the same configuration, corrected, moves it
    g.agent(2, "start", &[("alias_range_name", "vips")])
        .param("ip", "10.200.0.40")
        .run()
        .ok();
    assert!(g.aliases("node-b").contains(&"10.200.0.40/32".to_owned()));
}

/// Faults of this node, not of the configuration, exit 5 (OCF_ERR_INSTALLED): Pacemaker
/// bans the resource from this node only. Here the interface's MAC is no NIC of the
/// instance.
#[test]
fn a_nic_unknown_to_the_instance_is_this_nodes_problem() {
    let g = GceLab::new();
    let ns = g.c.lab.ns(2);
    let ip = |args: &[&str]| crate::util::sh(&[&["ip", "-n", ns][..], args].concat());
    ip(&[
        "link", "add", "other7", "type", "veth", "peer", "name", "peer7",
    ]);
    ip(&[
        "link",
        "set",
        "other7",
        "address",
        "02:66:00:00:00:77",
        "up",
    ]);
    ip(&["link", "set", "peer7", "up"]);
    g.agent(2, "start", &[("nic", "other7")])
        .run()
        .expect(5, Some("02:66:00:00:00:77"));
    assert_eq!(
        g.aliases("node-a"),
        vec!["10.128.0.100/32", "10.200.0.8/29"]
    );
}

/// Stop never holds the failover up: with the API down it warns and succeeds at once (no
/// minute of retries), and with an operation that never finishes it gives up within its
/// share of the budget, far before Pacemaker's timeout. The next start elsewhere takes the
/// alias from this node anyway.
#[test]
fn stop_gives_up_the_release_quickly() {
    let g = GceLab::new();
    let mut took = Vec::new();
    for (fault, timeout_ms, bound) in [
        // the release's first exchange has 2 s: far from the minute of retries a 60 s stop
        // used to spend (bounded loosely: a loaded runner forks slowly)
        (
            json!({"kind": "error", "status": 503, "service": "compute"}),
            60_000,
            12,
        ),
        // at most 5 s of a 20 s stop (18 s budget) go to the release
        (json!({"kind": "operation_stuck"}), 20_000, 18),
    ] {
        g.clear_faults();
        g.agent(2, "start", &[]).run().ok();
        g.fault(fault.clone());
        let t = Instant::now();
        let r = g
            .agent(2, "stop", &[])
            .env("OCF_RESKEY_CRM_meta_timeout", &timeout_ms.to_string())
            .run();
        let elapsed = t.elapsed();
        r.ok();
        assert!(
            r.stderr.contains("WARNING: stop: could not release"),
            "{fault}: {}",
            r.stderr
        );
        assert!(
            elapsed < Duration::from_secs(bound),
            "{fault}: stop took {elapsed:?}"
        );
        assert!(!holds_locally(&g, 2));
        took.push(format!(
            "{fault} (timeout {timeout_ms} ms): {} ms",
            elapsed.as_millis()
        ));
    }
    g.admin("POST", "/admin/gce/operations/release", None);
    g.clear_faults();
    g.agent(1, "start", &[]).run().ok();
    assert!(!g.aliases("node-b").contains(&VIP.to_owned()));
    println!("stop: {}", took.join("; "));
}

/// The VIP and public_ip move from node-a to node-b: node-a's access-config delete does
/// not wait for the alias add on node-b to finish (another instance: GCE runs the two side by
/// side), and public_ip's outage (its delete at node-a applied → its add at node-b
/// applied) holds only operations of the public IP's own move, under both ways GCE may
/// treat a mutation of a busy instance. Read from the emulator's operation log (the order
/// of insertion and the log's own timestamps, never a clock of the test's).
#[test]
fn the_public_ip_detach_runs_beside_the_alias_add() {
    for busy in ["queue", "reject"] {
        let c = crate::cloudlab::CloudLab::start(|d| {
            let mut w = gce::standard(d);
            for i in 1..=3 {
                gce::node(&mut w, i)
                    .labels
                    .insert("cluster".into(), "ha1".into());
            }
            gce::gce(&mut w).operations =
                crate::clouds::spec(json!({"pending_ms": 30, "running_ms": 150, "busy": busy}));
            w
        });
        let api = c.endpoints["gce"]["compute"].as_str().unwrap().to_owned();
        let g = GceLab { c, api };
        let p = [("public_ip", "vip-ext"), ("peer_label", "cluster=ha1")];
        g.agent(2, "start", &p).run().ok();
        assert_eq!(g.nat_ips("node-b"), vec![gce::PUBLIC], "{busy}");
        assert_eq!(g.nat_ips("node-a"), Vec::<String>::new(), "{busy}");
        assert!(g.aliases("node-b").contains(&format!("{VIP}/32")), "{busy}");

        let ops: Vec<Value> = g.admin("GET", "/admin/state", None)["gce"]["operations"]
            .as_array()
            .unwrap()
            .clone();
        let on = |o: &Value, node: &str| {
            o["targetLink"]
                .as_str()
                .is_some_and(|l| l.ends_with(&format!("/instances/{node}")))
        };
        let find = |kind: &str, node: &str| {
            ops.iter()
                .position(|o| o["operationType"] == kind && on(o, node))
                .unwrap_or_else(|| panic!("{busy}: no {kind} on {node}: {ops:#?}"))
        };
        let detach = find("deleteAccessConfig", "node-a");
        let alias_add = find("updateNetworkInterface", "node-b");
        let attach = find("addAccessConfig", "node-b");
        for o in &ops {
            assert_eq!(o["status"], "DONE", "{busy}: {o}");
            assert!(o.get("error").is_none(), "{busy}: {o}");
        }
        // Side by side: the detach was submitted while the alias add on the other
        // instance was still running (today's order waited for it, and more).
        let t = |i: usize, k: &str| ops[i][k].as_str().unwrap().to_owned();
        assert!(
            t(detach, "insertTime") < t(alias_add, "endTime"),
            "{busy}: node-a's detach waited for node-b's alias add: {ops:#?}"
        );
        // The outage, delete at node-a applied → add at node-b applied, is no longer than
        // the public IP's own operations (delete, making room, add) take from insertion
        // to DONE: it waits behind no alias operation of its own instance for long.
        let ms = |i: usize, k: &str| -> i64 {
            let v = t(i, k);
            let (h, m, s) = (&v[11..13], &v[14..16], &v[17..23]);
            let s: f64 = s.parse().unwrap();
            h.parse::<i64>().unwrap() * 3_600_000
                + m.parse::<i64>().unwrap() * 60_000
                + (s * 1000.0).round() as i64
        };
        let own: i64 = ops
            .iter()
            .enumerate()
            .filter(|(_, o)| o["operationType"] != "updateNetworkInterface")
            .map(|(i, _)| ms(i, "endTime") - ms(i, "insertTime"))
            .sum();
        let outage = ms(attach, "endTime") - ms(detach, "endTime");
        assert!(
            outage <= own,
            "{busy}: public_ip out for {outage} ms, its own operations take {own} ms: {ops:#?}"
        );
    }
}
