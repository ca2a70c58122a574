//! The secret scan (issue 9): no token, key or signature the emulator issued or was shown
//! may appear in any log. scripts/test.sh runs the suite with `CLOUDVIP_TEST_LOGS` (where
//! the harnesses keep every log: each agent run's stdout and stderr, the fault matrix's
//! HA_LOGFILE files, the cluster nodes' Pacemaker and Corosync logs, the emulators' request
//! logs) and `CLOUDVIP_SIM_SECRETS` (where every emulator lists its secrets), then
//! `scripts/secret-scan.sh` over both. The tests here prove the scan can fail: a planted
//! token is caught, and the emulator really lists what it issued.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

use crate::util::Run;

static SEQ: AtomicU32 = AtomicU32::new(0);

const SCAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/secret-scan.sh");

fn kept_dir(name: &str) -> Option<PathBuf> {
    let root = std::env::var_os("CLOUDVIP_TEST_LOGS")?;
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let d = PathBuf::from(root).join(format!(
        "{clean}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).ok()?;
    Some(d)
}

/// Keep every log file under `dir` (`*.log`, `*.stdout`; never key or cache files) for
/// the scan, when the suite asks for it.
pub fn keep_logs(name: &str, dir: &Path) {
    let Some(dest) = kept_dir(name) else { return };
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() && p.extension().is_some_and(|x| x == "log" || x == "stdout") {
                let rel = p.strip_prefix(dir).unwrap_or(&p);
                let to = dest.join(rel.to_string_lossy().replace('/', "_"));
                let _ = std::fs::copy(&p, to);
            }
        }
    }
}

/// Keep what one agent run printed.
pub fn keep_run(run: &Run) {
    let Some(root) = std::env::var_os("CLOUDVIP_TEST_LOGS") else {
        return;
    };
    let _ = std::fs::create_dir_all(&root);
    let f = PathBuf::from(root).join(format!("agent-runs-{}.log", std::process::id()));
    let text = format!(
        "== {} -> exit {}\n{}{}",
        run.what, run.code, run.stdout, run.stderr
    );
    use std::io::Write;
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(f)
        .and_then(|mut w| w.write_all(text.as_bytes()));
}

/// Write the emulator's request log into `dir` as a log file, for [`keep_logs`].
pub fn dump_request_log(entries: &[Value], dir: &Path) {
    let text: String = entries.iter().map(|e| format!("{e}\n")).collect();
    let _ = std::fs::write(dir.join("emulator-requests.log"), text);
}

fn scan(secrets: &Path, logs: &Path) -> Run {
    let out = Command::new("bash")
        .args([SCAN, secrets.to_str().unwrap(), logs.to_str().unwrap()])
        .output()
        .unwrap();
    Run::from("secret-scan.sh".into(), out)
}

#[test]
fn a_planted_token_is_caught() {
    let d = tempfile::tempdir().unwrap();
    let (secrets, logs) = (d.path().join("secrets"), d.path().join("logs"));
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("agent.log"), "INFO: claimed 10.0.0.5\n").unwrap();
    // No secrets recorded: the scan refuses to pass, it would prove nothing.
    assert_eq!(scan(&secrets, &logs).code, 2);
    std::fs::create_dir_all(&secrets).unwrap();
    let token = "ya29.c.b0AXv0zTOkJ6planted0token0value";
    std::fs::write(
        secrets.join("sim-1-0.secrets"),
        format!("access token\t{token}\nrequest signature\tdGhlLXNpZ25hdHVyZS12YWx1ZQ==\n"),
    )
    .unwrap();
    let clean = scan(&secrets, &logs);
    assert_eq!(clean.code, 0, "{}{}", clean.stdout, clean.stderr);
    // The token in the middle of a Pacemaker log line.
    std::fs::write(
        logs.join("pacemaker.log"),
        format!("Jan 01 execd: notice: VIP_start_0[42] error output [ Authorization: Bearer {token} ]\n"),
    )
    .unwrap();
    let r = scan(&secrets, &logs);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("pacemaker.log") && r.stderr.contains("access token"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(token), "the scan printed the secret");
}

/// The emulator lists the tokens and keys it hands out and the credentials it is shown,
/// and a log holding one of them fails the scan.
#[test]
fn the_emulator_lists_what_it_issued() {
    let w = cloudvip_sim::World::from_toml(
        r#"
[gce]
project = "p"
project_number = 1
region = "us-central1"
zones = ["us-central1-a"]
[[gce.networks]]
name = "default"
[[gce.networks.subnets]]
name = "default"
ip_cidr_range = "10.128.0.0/20"
[[gce.service_accounts]]
email = "sa@p.iam.gserviceaccount.com"
[[gce.instances]]
name = "vm"
zone = "us-central1-a"
service_account = "sa@p.iam.gserviceaccount.com"
[[gce.instances.nics]]
network_ip = "10.128.0.2"
"#,
    )
    .unwrap();
    let sim = cloudvip_sim::Sim::start(w).unwrap();
    let admin = sim.admin_url();
    let md = sim.endpoints()["gce"]["metadata"]["vm"]
        .as_str()
        .unwrap()
        .to_owned();
    let get = |url: &str, method: &str, hdr: &str| -> Value {
        let out = Command::new("curl")
            .args(["-sf", "-X", method, "-H", hdr, url])
            .output()
            .unwrap();
        assert!(out.status.success(), "curl {url}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let token = get(
        &format!("{md}instance/service-accounts/default/token"),
        "GET",
        "Metadata-Flavor: Google",
    )["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = get(
        &format!("{admin}/admin/gce/service-accounts/sa@p.iam.gserviceaccount.com/keys"),
        "POST",
        "X: y",
    )["private_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = get(&format!("{admin}/admin/secrets"), "GET", "X: y")["secrets"].clone();
    let values: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["value"].as_str())
        .collect();
    assert!(values.contains(&token.as_str()), "{listed}");
    let key_line = key.lines().nth(3).unwrap();
    assert!(
        values.contains(&key_line),
        "a key line is missing: {listed}"
    );

    let d = tempfile::tempdir().unwrap();
    let (secrets, logs) = (d.path().join("secrets"), d.path().join("logs"));
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    let lines: String = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}\t{}\n",
                s["kind"].as_str().unwrap(),
                s["value"].as_str().unwrap()
            )
        })
        .collect();
    std::fs::write(secrets.join("sim.secrets"), lines).unwrap();
    std::fs::write(logs.join("a.log"), "nothing here\n").unwrap();
    assert_eq!(scan(&secrets, &logs).code, 0);
    std::fs::write(logs.join("b.log"), format!("DEBUG: key {key_line}\n")).unwrap();
    let r = scan(&secrets, &logs);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("private key"), "{}", r.stderr);
}
