//! One token refresh for parallel actions, in the environment Pacemaker gives agents (no
//! HA_RSCTMP: the state directory is the node's /run/resource-agents, mounted privately per
//! test node). Pacemaker starts independent resources at once; with a cold or expired cache
//! they must not each fetch a token (OCI: federate and generate an RSA key).

use std::time::Instant;

use crate::gce::GceLab;
use crate::oci::{vnic, OciLab};

/// What Pacemaker does with independent VIP resources: starts them all at once, with no
/// HA_RSCTMP. One federation serves them all (the others wait for its token), and every
/// VIP ends up on the VNIC and the interface.
#[test]
fn oci_parallel_starts_share_one_federation() {
    const N: usize = 16;
    let o = OciLab::new();
    let run = o.c.dir.path().join("node1-run");
    let ips: Vec<String> = (0..N).map(|k| format!("10.0.1.{}", 120 + k)).collect();
    o.c.clear_log();
    let t = Instant::now();
    let runs: Vec<_> = ips
        .iter()
        .map(|ip| {
            let a = o
                .agent(1, "start", &[("ip", ip)])
                .env_remove("HA_RSCTMP")
                .node_run_dir(&run);
            std::thread::spawn(move || a.run())
        })
        .collect();
    for r in runs {
        r.join().unwrap().ok();
    }
    let wall = t.elapsed();
    let federations = o.auth_calls();
    println!("{N} parallel starts: {federations} federation call(s), {wall:?}");
    for ip in &ips {
        assert_eq!(o.holder(ip), vnic(1), "{ip}");
        assert!(o.c.holds_locally(1, ip), "{ip}: {}", o.c.lab.addrs(1));
    }
    assert_eq!(federations, 1, "one refresh, shared");
    // The token is cached where Pacemaker's agents look (the node's /run/resource-agents).
    o.c.clear_log();
    o.agent(1, "monitor", &[("ip", &ips[0])])
        .env("OCF_CHECK_LEVEL", "10")
        .env_remove("HA_RSCTMP")
        .node_run_dir(&run)
        .run()
        .ok();
    assert_eq!(o.auth_calls(), 0);
}

/// GCE with a service-account key: one token request for 16 deep monitors that find the
/// cache empty together.
#[test]
fn gce_parallel_actions_share_one_key_token() {
    const N: usize = 16;
    let g = GceLab::new();
    let run = g.c.dir.path().join("node2-run");
    let key = g.c.admin(
        "POST",
        "/admin/gce/service-accounts/cloudvip@my-project.iam.gserviceaccount.com/keys",
        None,
    );
    let key_path = g.c.dir.path().join("sa.json");
    std::fs::write(&key_path, key.to_string()).unwrap();
    crate::util::sh(&["chmod", "600", key_path.to_str().unwrap()]);
    let p = [("credentials", key_path.to_str().unwrap())];
    let agent = |action: &str| {
        g.agent(2, action, &p)
            .env_remove("HA_RSCTMP")
            .node_run_dir(&run)
    };
    agent("start").run().ok();
    let token_calls = || {
        g.c.log()
            .iter()
            .filter(|e| e["api"] == "oauth2.token")
            .count()
    };
    // Forget the token: the monitors all find the cache empty.
    for f in std::fs::read_dir(&run).unwrap().flatten() {
        if f.file_name().to_string_lossy().ends_with(".json") {
            std::fs::remove_file(f.path()).unwrap();
        }
    }
    g.c.clear_log();
    let runs: Vec<_> = (0..N)
        .map(|_| {
            let a = agent("monitor").env("OCF_CHECK_LEVEL", "10");
            std::thread::spawn(move || a.run())
        })
        .collect();
    for r in runs {
        r.join().unwrap().ok();
    }
    let calls = token_calls();
    println!("{N} parallel deep monitors: {calls} token request(s)");
    assert_eq!(calls, 1);
}
