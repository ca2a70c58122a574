//! Conformance with Google's own clients, unmodified: the preinstalled `gcloud` CLI and the
//! Python `google-cloud-compute` / `google-auth` libraries (tests/requirements-gce.txt, in a venv). A
//! missing tool fails the test loudly; it never skips. All traffic goes to loopback.

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Output};

fn need(cmd: &str, args: &[&str], hint: &str) {
    match Command::new(cmd).args(args).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "{cmd} {args:?} failed ({}): {}\n{hint}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("{cmd} not runnable: {e}\n{hint}"),
    }
}

struct Gcloud {
    config: tempfile::TempDir,
    token_file: std::path::PathBuf,
    compute: String,
    md_host: String,
}

impl Gcloud {
    fn new(g: &Gce) -> Gcloud {
        need(
            "gcloud",
            &["--version"],
            "install the Google Cloud SDK (Debian package google-cloud-cli)",
        );
        let config = tempfile::tempdir().unwrap();
        let token_file = config.path().join("token");
        std::fs::write(&token_file, TOKEN).unwrap();
        Gcloud {
            compute: format!("{}/compute/v1/", g.api()),
            md_host: g.md("node-a").trim_start_matches("http://").to_string(),
            config,
            token_file,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("gcloud")
            .args(args)
            .args(["--project", PROJECT, "--quiet"])
            .env("CLOUDSDK_CONFIG", self.config.path())
            .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
            .env("CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", &self.compute)
            .env("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", &self.token_file)
            // Keep gcloud on loopback: no usage reports, no update checks, and its GCE
            // detection pointed at the emulator's metadata server.
            .env("CLOUDSDK_CORE_DISABLE_USAGE_REPORTING", "true")
            .env("CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK", "true")
            .env("CLOUDSDK_CORE_CHECK_GCE_METADATA", "false")
            .env("GCE_METADATA_ROOT", &self.md_host)
            .env("GCE_METADATA_IP", &self.md_host)
            .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
            .output()
            .expect("gcloud runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "gcloud {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(!o.status.success(), "gcloud {args:?} should fail");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }
}

#[test]
fn gcloud_describe_update_access_configs_and_operations() {
    let sim = start(|_| {});
    let g = Gce { sim: &sim };
    let gc = Gcloud::new(&g);

    // Describe.
    let a: Value = serde_json::from_str(&gc.ok(&[
        "compute",
        "instances",
        "describe",
        "node-a",
        "--zone",
        "us-central1-a",
        "--format=json",
    ]))
    .unwrap();
    assert_eq!(a["name"], "node-a");
    assert_eq!(
        a["networkInterfaces"][0]["aliasIpRanges"][0]["ipCidrRange"],
        "10.128.0.100/32"
    );

    // Update aliases (gcloud reads the fingerprint itself, sends it in the URL-safe base64
    // alphabet, and waits for the operation).
    gc.ok(&[
        "compute",
        "instances",
        "network-interfaces",
        "update",
        "node-a",
        "--zone",
        "us-central1-a",
        "--aliases",
        "10.128.0.100/32;vips:10.200.0.8/29;10.128.0.102/32",
    ]);
    assert_eq!(
        g.aliases("us-central1-a", "node-a"),
        ["10.128.0.100/32", "10.200.0.8/29", "10.128.0.102/32"]
    );

    // Someone else changes the NIC between gcloud's GET and PATCH: 412.
    let f =
        g.fault(serde_json::json!({"kind": "fingerprint_race", "instance": "node-a", "count": 1}));
    let err = gc.fails(&[
        "compute",
        "instances",
        "network-interfaces",
        "update",
        "node-a",
        "--zone",
        "us-central1-a",
        "--aliases",
        "10.128.0.100/32",
    ]);
    assert!(err.contains("412"), "{err}");
    request("DELETE", &g.admin(&format!("/admin/faults/{f}")), &[], None);

    // An alias held by node-a cannot be added to node-b: the operation fails.
    let err = gc.fails(&[
        "compute",
        "instances",
        "network-interfaces",
        "update",
        "node-b",
        "--zone",
        "us-central1-b",
        "--aliases",
        "10.128.0.102/32",
    ]);
    assert!(
        err.contains("is already being used by another resource"),
        "{err}"
    );
    assert!(g.aliases("us-central1-b", "node-b").is_empty());

    // Move the static external IP: delete on node-a, replace node-b's ephemeral one.
    gc.ok(&[
        "compute",
        "instances",
        "delete-access-config",
        "node-a",
        "--zone",
        "us-central1-a",
        "--access-config-name",
        "External NAT",
    ]);
    let err = gc.fails(&[
        "compute",
        "instances",
        "add-access-config",
        "node-b",
        "--zone",
        "us-central1-b",
        "--access-config-name",
        "External NAT",
        "--address",
        "203.0.113.10",
    ]);
    assert!(
        err.contains("At most one access config currently supported"),
        "{err}"
    );
    gc.ok(&[
        "compute",
        "instances",
        "delete-access-config",
        "node-b",
        "--zone",
        "us-central1-b",
        "--access-config-name",
        "external-nat",
    ]);
    gc.ok(&[
        "compute",
        "instances",
        "add-access-config",
        "node-b",
        "--zone",
        "us-central1-b",
        "--access-config-name",
        "External NAT",
        "--address",
        "203.0.113.10",
    ]);
    let addr: Value = serde_json::from_str(&gc.ok(&[
        "compute",
        "addresses",
        "describe",
        "vip-ext",
        "--region",
        "us-central1",
        "--format=json",
    ]))
    .unwrap();
    assert_eq!(addr["status"], "IN_USE");
    assert!(addr["users"][0]
        .as_str()
        .unwrap()
        .ends_with("/instances/node-b"));

    // List with a label filter.
    let names = gc.ok(&[
        "compute",
        "instances",
        "list",
        "--filter=labels.cluster=ha1",
        "--format=value(name)",
    ]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["node-a", "node-b", "node-c"]);

    // gcloud waited for every operation with zoneOperations.wait, and the metadata server
    // of node-b shows the moved external IP.
    let log = g.log();
    assert!(log
        .iter()
        .any(|e| e["api"] == "compute.zoneOperations.wait"));
    assert!(log.iter().all(|e| e["status"] != 401), "no auth failures");
    let ext = g.md_get(
        "node-b",
        "instance/network-interfaces/0/access-configs/0/external-ip",
    );
    assert_eq!(ext.body, "203.0.113.10");
}

#[test]
fn python_google_cloud_compute_and_google_auth() {
    let python = venv_python("gce");
    need(
        python.to_str().unwrap(),
        &["-c", "import google.cloud.compute_v1, google.auth"],
        "scripts/setup-deps.sh builds this venv from crates/sim/tests/requirements-gce.txt",
    );
    let sim = start(|_| {});
    let g = Gce { sim: &sim };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.json");
    let file = sim.gce().unwrap().new_key_file(SA).unwrap();
    std::fs::write(&key, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    let md_host = g.md("node-a").trim_start_matches("http://").to_string();
    let out = Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gce_python.py"))
        .env("SIM_API", g.api())
        .env("SIM_PROJECT", PROJECT)
        .env("SIM_KEY_FILE", &key)
        // google-auth's metadata host, and its "am I on GCE" ping address, on loopback.
        .env("GCE_METADATA_HOST", &md_host)
        .env("GCE_METADATA_IP", &md_host)
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: std::collections::HashMap<String, Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["step"].as_str().unwrap().to_string(), v))
        .collect();
    let s = |k: &str| {
        steps
            .get(k)
            .unwrap_or_else(|| panic!("no step {k} in:\n{stdout}"))
    };

    assert_eq!(s("sa_token")["token_prefix"], "ya29.");
    assert_eq!(
        s("describe")["aliases"],
        serde_json::json!(["10.128.0.100/32", "10.200.0.8/29"])
    );
    assert_eq!(s("describe_by_token")["name"], "node-a");
    let u = s("update");
    assert_eq!(u["status"], "DONE");
    assert_eq!(u["errors"], serde_json::json!([]));
    assert_eq!(
        u["aliases"],
        serde_json::json!(["10.128.0.100/32", "10.200.0.8/29", "10.128.0.101/32"])
    );
    assert_eq!(u["client_operation_id"], u["request_id"]);
    assert_eq!(s("stale")["code"], 412);
    assert_eq!(s("stale")["raised"], "PreconditionFailed");
    let iu = s("in_use");
    assert_eq!(iu["status"], "DONE");
    assert_eq!(
        iu["errors"],
        serde_json::json!(["IP_IN_USE_BY_ANOTHER_RESOURCE"])
    );
    assert_eq!(s("access_config")["address_status"], "IN_USE");
    assert!(s("access_config")["users"][0]
        .as_str()
        .unwrap()
        .ends_with("/instances/node-b"));
    assert_eq!(s("delete_unknown")["errors"], serde_json::json!([]));
    assert_eq!(
        s("delete_unknown")["nat"],
        serde_json::json!(["203.0.113.10"])
    );
    assert_eq!(s("list")["zonal"], serde_json::json!(["node-b"]));
    assert_eq!(s("list")["aggregated"], serde_json::json!(["node-b"]));
    assert_eq!(s("md_ping")["on_gce"], true);
    let m = s("metadata");
    assert_eq!(m["email"], SA);
    assert_eq!(m["project"], PROJECT);
    assert_eq!(m["api_name"], "node-a");
    assert_eq!(
        m["ip_aliases"],
        serde_json::json!(["10.128.0.100/32", "10.200.0.8/29", "10.128.0.101/32"])
    );

    // The emulator's own view agrees, and the clients' calls are in the log.
    assert!(g.aliases("us-central1-b", "node-b").is_empty());
    let log = g.log();
    assert!(log
        .iter()
        .any(|e| e["api"] == "oauth2.token" && e["status"] == 200));
    assert!(log
        .iter()
        .any(|e| e["api"] == "metadata.token" && e["instance"] == "node-a"));
    assert!(log
        .iter()
        .any(|e| e["api"] == "compute.instances.updateNetworkInterface" && e["status"] == 412));
}
