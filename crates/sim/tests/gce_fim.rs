//! GCE Fast IP Move in the emulator, checked by a client we did not write:
//! google-api-python-client (googleapiclient.discovery, from the discovery document the
//! emulator serves) reads the regional backend service, its haPolicy and the NEGs and
//! forwarding rule behind it, sets the leader with the documented patch (and update), and
//! gets the documented refusals (stale or missing fingerprint 412, a leader outside the
//! NEG or the service 400, fastIPMove immutable 400). The emulator's own state is asserted
//! too: the leader the load balancer routes to.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use cloudvip_sim::{Sim, SimHandle, World};
use serde_json::{json, Value};

const SA: &str = "cloudvip@my-project.iam.gserviceaccount.com";

/// The Fast IP Move world shared with the load-balancer tests (tests/lb.rs).
pub const WORLD: &str = include_str!("../examples/world-fim.toml");

fn venv_python() -> PathBuf {
    let cache =
        std::env::var("CLOUDVIP_TEST_CACHE").unwrap_or_else(|_| "/opt/cloudvip-test".into());
    let p = PathBuf::from(cache).join("venv-google/bin/python");
    assert!(
        p.exists(),
        "{} is missing: scripts/setup-deps.sh builds it (tests/anchors/requirements-google.txt)",
        p.display()
    );
    p
}

fn discovery_doc(py: &PathBuf) -> PathBuf {
    let out = Command::new(py)
        .args([
            "-c",
            "import googleapiclient, os; print(os.path.dirname(googleapiclient.__file__))",
        ])
        .output()
        .expect("python runs");
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    PathBuf::from(dir).join("discovery_cache/documents/compute.v1.json")
}

fn start(py: &PathBuf) -> SimHandle {
    let mut w = World::from_toml(WORLD).expect("world");
    if let Some(g) = w.gce.as_mut() {
        g.discovery_document = Some(discovery_doc(py));
    }
    Sim::start(w).expect("emulator")
}

#[test]
fn googleapiclient_reads_and_sets_the_leader() {
    let py = venv_python();
    let sim = start(&py);
    let gce = sim.gce().unwrap();
    let api = sim.endpoints()["gce"]["api"].as_str().unwrap().to_owned();
    let token = gce.mint_token(
        SA,
        vec!["https://www.googleapis.com/auth/cloud-platform".into()],
        Duration::from_secs(600),
    );
    assert_eq!(gce.ha.leader_of("ilb-bs").as_deref(), Some("node-a"));
    let out = Command::new(&py)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gce_fim.py"))
        .env("SIM_API", &api)
        .env("SIM_TOKEN", &token)
        .env("SIM_PROJECT", "my-project")
        .env("SIM_REGION", "us-central1")
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: HashMap<String, Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["step"].as_str().unwrap().to_owned(), v))
        .collect();
    let s = |k: &str| {
        steps
            .get(k)
            .unwrap_or_else(|| panic!("no step {k} in {stdout}"))
    };
    let base = "https://www.googleapis.com/compute/v1/projects/my-project";
    assert_eq!(
        s("get")["haPolicy"],
        json!({"fastIPMove": "GARP_RA", "leader": {
            "backendGroup": format!("{base}/zones/us-central1-a/networkEndpointGroups/neg-a"),
            "networkEndpoint": {"instance": "node-a"}}})
    );
    assert_eq!(s("get")["scheme"], "INTERNAL");
    assert_eq!(
        s("get")["network"],
        format!("{base}/global/networks/default")
    );
    assert_eq!(s("list")["names"], json!(["ilb-bs"]));
    assert_eq!(s("forwarding_rule")["ip"], "10.66.1.100");
    assert_eq!(
        s("forwarding_rule")["backendService"],
        format!("{base}/regions/us-central1/backendServices/ilb-bs")
    );
    assert_eq!(s("neg")["type"], "GCE_VM_IP");
    assert_eq!(
        s("neg")["endpoints"],
        json!([{"instance": "node-b", "ipAddress": "10.66.0.2"}])
    );
    assert_eq!(s("patch")["op_status"], "DONE");
    assert_eq!(s("patch")["op_type"], "patch");
    assert_eq!(
        s("patch")["leader"]["networkEndpoint"]["instance"],
        "node-b"
    );
    assert_eq!(s("patch")["fingerprint_changed"], true);
    assert_eq!(s("stale")["status"], 412);
    assert_eq!(s("no_fingerprint")["status"], 412);
    assert_eq!(s("not_in_neg")["status"], 400);
    assert_eq!(s("not_a_backend")["status"], 400);
    assert_eq!(s("fast_ip_move_fixed")["status"], 400);
    assert_eq!(s("update")["op_type"], "update");
    assert_eq!(s("update")["leader"], "node-a");
    // The emulator's truth, which the load balancer follows.
    assert_eq!(gce.ha.leader_of("ilb-bs").as_deref(), Some("node-a"));
    assert!(gce.ha.fast_ip_move("ilb-bs"));
    assert_eq!(
        gce.ha.frontends_of("ilb-bs"),
        vec!["10.66.1.100".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn a_world_with_a_leader_outside_its_negs_is_refused() {
    let w = WORLD.replace("leader = \"node-a\"", "leader = \"node-c\"");
    let e = Sim::start(World::from_toml(&w).unwrap()).err().unwrap();
    assert!(e.contains("leader node-c"), "{e}");
}
