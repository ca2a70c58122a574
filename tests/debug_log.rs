//! `HA_debug=1` (what `pcs resource debug-start --full` and `crm_resource -V` set) shows
//! the agent's own steps: each HTTP request with method, redacted URL, status and time;
//! never the libraries' internals (ureq's pool and call states, rustls' handshake), which
//! `HA_debug=2` or `CLOUDVIP_DEBUG_LIBS=1` add; never a token (ureq's TRACE records
//! hex-dump whole requests, Authorization header included: they stay off).

use crate::gce::GceLab;

/// The lines ureq and rustls log at DEBUG for one request (before this filter a GCE start
/// with a public IP logged 241 DEBUG lines, 221 of them these).
const LIBRARY_NOISE: &[&str] = &[
    "Call<",
    "PoolKey",
    "Resolved: ",
    "Response { status",
    "Request { method",
    "ciphersuite",
    "Connected TcpStream",
];

fn debug_lines(g: &GceLab, vars: &[(&str, &str)]) -> (Vec<String>, String) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut a = g
        .agent(
            2,
            "start",
            &[("public_ip", "vip-ext"), ("peer_label", "cluster=ha1")],
        )
        .env("HA_DEBUGLOG", log.path().to_str().unwrap());
    for (k, v) in vars {
        a = a.env(k, v);
    }
    let r = a.run();
    r.ok();
    let text = std::fs::read_to_string(log.path()).unwrap() + &r.stderr;
    let lines = text
        .lines()
        .filter_map(|l| l.split_once("DEBUG: ").map(|(_, m)| m.to_owned()))
        .collect();
    (lines, text)
}

/// No access token (the emulator's, like Google's, start with "ya29.") and no
/// Authorization header in `text`.
fn assert_no_token(text: &str) {
    assert!(
        !text.contains("ya29.") && !text.contains("Bearer"),
        "a token was logged:\n{text}"
    );
}

#[test]
fn ha_debug_shows_the_agents_steps_not_library_internals() {
    let g = GceLab::new();
    let (lines, text) = debug_lines(&g, &[("HA_debug", "1")]);
    for noise in LIBRARY_NOISE {
        assert!(
            !lines.iter().any(|l| l.contains(noise)),
            "library line {noise:?} with HA_debug=1:\n{}",
            lines.join("\n")
        );
    }
    // Each request: method, URL without query, status, time.
    let requests: Vec<&String> = lines.iter().filter(|l| l.contains(" -> ")).collect();
    assert!(requests.len() >= 8, "{}", lines.join("\n"));
    for r in &requests {
        let (req, outcome) = r.split_once(" -> ").unwrap();
        let (method, url) = req.split_once(' ').unwrap();
        assert!(
            ["GET", "POST", "PATCH", "PUT", "DELETE"].contains(&method),
            "{r}"
        );
        assert!(url.starts_with("http") && !url.contains('?'), "{r}");
        assert!(
            outcome.starts_with("200 (") && outcome.ends_with(" ms)"),
            "{r}"
        );
    }
    for step in [
        "GET http://169.254.169.254/computeMetadata/v1/ -> 200",
        "/updateNetworkInterface -> 200",
        "/addAccessConfig -> 200",
    ] {
        assert!(
            requests.iter().any(|r| r.contains(step)),
            "no {step:?} in:\n{}",
            lines.join("\n")
        );
    }
    assert!(lines
        .iter()
        .any(|l| l.starts_with("announced 10.128.0.100")));
    assert_no_token(&text);
    // More than the agent's own would be noise: a handful of lines per request at most.
    assert!(
        lines.len() <= requests.len() + 5,
        "{} DEBUG lines for {} requests",
        lines.len(),
        requests.len()
    );
}

#[test]
fn library_internals_only_when_asked_for() {
    let g = GceLab::new();
    let (without, _) = debug_lines(&g, &[]);
    assert!(without.is_empty(), "DEBUG without HA_debug: {without:?}");
    for vars in [
        &[("HA_debug", "2")][..],
        &[("HA_debug", "1"), ("CLOUDVIP_DEBUG_LIBS", "1")][..],
    ] {
        g.agent(2, "stop", &[]).run().ok();
        let (lines, text) = debug_lines(&g, vars);
        assert!(
            lines.iter().any(|l| l.contains("Call<")),
            "no ureq internals with {vars:?}"
        );
        assert!(lines.iter().any(|l| l.contains(" -> 200 (")), "{vars:?}");
        assert_no_token(&text);
    }
}

/// Pacemaker's timer starts at its fork of the agent: an agent that reached `main` late (a
/// loaded node) takes that time off its budget, and says so at debug level.
#[test]
fn the_budget_counts_from_the_fork_not_from_main() {
    let out = std::process::Command::new("sh")
        .arg("-c")
        // sleep is sh's child; exec keeps sh's process, so its fork time is the agent's.
        .arg("sleep 1.2; exec \"$0\" validate-all")
        .arg(crate::util::BIN)
        .env_clear()
        .env("OCF_RESKEY_ip", "10.0.0.5")
        .env("OCF_RESKEY_cloud", "none")
        .env("OCF_RESKEY_CRM_meta_timeout", "20000")
        .env("HA_debug", "1")
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("after its fork: the budget counts from there"))
        .unwrap_or_else(|| panic!("no fork-age line:\n{err}"));
    let secs: f64 = line
        .split("started ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no age in {line:?}"));
    assert!(secs >= 1.1, "the sleep before exec was not counted: {line}");
}
