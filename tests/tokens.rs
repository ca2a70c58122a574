//! Credentials and tokens. One token refresh for parallel actions, in the environment
//! Pacemaker gives agents (no HA_RSCTMP: the state directory is the node's
//! /run/resource-agents, mounted privately per test node): Pacemaker starts independent
//! resources at once, and with a cold or expired cache they must not each fetch a token
//! (OCI: federate and generate an RSA key). And exit codes by where the fault lies: a
//! problem of this node's credentials or trust store is 5 (banned here only), and a
//! permanent error fails at once instead of being retried until the deadline.

use std::time::Instant;

use serde_json::json;

use crate::gce::GceLab;
use crate::oci::{vnic, OciLab, VIP};
use crate::util::{sh, Run};

/// Attempts the http layer made, from its debug lines.
fn attempts(r: &Run) -> usize {
    r.stderr.matches(" failed after ").count()
}

fn write_mode(path: &std::path::Path, body: &[u8], mode: &str) -> String {
    std::fs::write(path, body).unwrap();
    sh(&["chmod", mode, path.to_str().unwrap()]);
    path.display().to_string()
}

#[test]
fn oci_node_local_credential_problems_are_exit_5() {
    let o = OciLab::new();
    let d = o.c.dir.path();
    let good = o.credentials_file("api.pem", None);
    let text = std::fs::read_to_string(&good).unwrap();
    let open = write_mode(&d.join("open_config"), text.as_bytes(), "666");
    let empty = write_mode(&d.join("empty_config"), b"", "600");
    let junk = write_mode(&d.join("junk_config"), b"\x00{not an ini file", "600");
    let no_key = write_mode(
        &d.join("nokey_config"),
        text.replace("api.pem", "missing.pem").as_bytes(),
        "600",
    );
    let wrong_pass = o.credentials_file("api_enc.pem", Some("wrong"));
    let cases: [(&str, &str); 7] = [
        ("/nonexistent/oci_config", "No such file"),
        (d.to_str().unwrap(), "not a regular file"),
        (&empty, "no profile [cloudvip]"),
        (&junk, "no profile [cloudvip]"),
        (&open, "lets others write it"),
        (&no_key, "missing.pem"),
        (&wrong_pass, "wrong pass_phrase"),
    ];
    for (cfg, why) in cases {
        o.agent(
            2,
            "start",
            &[("credentials", cfg), ("oci_profile", "cloudvip")],
        )
        .run()
        .expect(5, Some(why));
        assert_eq!(o.holder(VIP), vnic(1), "{cfg}: the holder was touched");
    }
}

#[test]
fn oci_permanent_errors_fail_at_once() {
    let o = OciLab::new();
    // A server certificate this node does not trust: its trust store, not the cloud.
    let t = Instant::now();
    let r = o
        .agent(2, "start", &[("ca_bundle", "")])
        .env("HA_debug", "1")
        .run();
    println!(
        "untrusted certificate: exit {} after {:?}",
        r.code,
        t.elapsed()
    );
    r.expect(5, Some("certificate"));
    assert_eq!(
        attempts(&r),
        1,
        "retried a certificate error:\n{}",
        r.stderr
    );
    // No federation service at that URL: 6, after one request.
    o.c.fault(json!({"kind": "error", "status": 404, "cloud": "oci", "service": "auth"}));
    o.c.admin("POST", "/admin/oci/tokens/revoke", None);
    let r = o.agent(2, "start", &[]).run();
    r.expect(6, Some("HTTP 404"));
    let hits = o.c.admin("GET", "/admin/faults", None)["faults"][0]["hits"].clone();
    assert_eq!(hits, 1, "the 404 was retried");
    o.c.clear_faults();
    // This node's clock ten minutes off: OCI refuses every signature, no retry or other
    // node's credentials help here; this node's problem (5), named.
    o.c.fault(json!({"kind": "clock_skew", "secs": 600, "cloud": "oci"}));
    o.agent(2, "start", &[])
        .run()
        .expect(5, Some("this node's clock is"));
    o.c.clear_faults();
    // A URL that cannot be sent (longer than the HTTP client takes): 6, no retry.
    let long = format!("{}{}/", o.api, "x".repeat(70_000));
    let r = o
        .agent(2, "start", &[("api_endpoint", &long)])
        .env("HA_debug", "1")
        .run();
    r.expect(6, None);
    assert!(attempts(&r) <= 1, "retried:\n{}", r.stderr);
    assert_eq!(o.holder(VIP), vnic(1));
}

#[test]
fn gce_key_file_problems_are_node_local_and_a_404_token_uri_fails_at_once() {
    let g = GceLab::new();
    let d = g.c.dir.path();
    let key = g.c.admin(
        "POST",
        "/admin/gce/service-accounts/cloudvip@my-project.iam.gserviceaccount.com/keys",
        None,
    );
    let text = key.to_string();
    let good = write_mode(&d.join("sa.json"), text.as_bytes(), "600");
    let open = write_mode(&d.join("open.json"), text.as_bytes(), "666");
    let empty = write_mode(&d.join("empty.json"), b"", "600");
    let junk = write_mode(&d.join("junk.json"), b"{\"type\": ", "600");
    let user = write_mode(
        &d.join("user.json"),
        text.replace("service_account", "authorized_user")
            .as_bytes(),
        "600",
    );
    for (cfg, why) in [
        ("/nonexistent/sa.json", "No such file"),
        (d.to_str().unwrap(), "not a regular file"),
        (empty.as_str(), "not a service-account JSON key"),
        (&junk, "not a service-account JSON key"),
        (&user, "expected \"service_account\""),
        (&open, "lets others write it"),
    ] {
        g.agent(2, "start", &[("credentials", cfg)])
            .run()
            .expect(5, Some(why));
    }
    g.c.fault(json!({"kind": "clock_skew", "secs": 600, "cloud": "gce"}));
    g.agent(2, "start", &[("credentials", &good)])
        .run()
        .expect(5, Some("this node's clock is"));
    g.c.clear_faults();
    g.c.fault(json!({"kind": "error", "status": 404, "api": "oauth2.token"}));
    g.agent(2, "start", &[("credentials", &good)])
        .run()
        .expect(5, Some("HTTP 404"));
    let hits = g.c.admin("GET", "/admin/faults", None)["faults"][0]["hits"].clone();
    assert_eq!(hits, 1, "the 404 was retried");
}

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
