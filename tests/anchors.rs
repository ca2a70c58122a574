//! The unmodified anchors against the emulator: Debian's resource-agents `gcp-vpc-move-vip`
//! on Debian's own Google stack (python3-googleapi 1.7, python3-google-auth 1.5) and on the
//! current PyPI stack, `ocivip` with oci-cli from PyPI (instance principals), and the seed's
//! gcloud failover hook. Their code and environment are untouched but for two things, both
//! in a private mount namespace per node so the host's files never change: /etc/hosts
//! (the clouds' names = the emulator) and the trust store the client reads (the emulator's
//! CA only). Agents run with `env -i` and what pacemaker-execd passes. Each test asserts the
//! exit codes and the emulator's state afterwards: the VIP moved, nothing else touched.
//! The PyPI stacks are venvs scripts/setup-deps.sh builds under /opt/cloudvip-test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use crate::clouds::{gce, oci};
use crate::netns::Lab;
use crate::util::sh;

const AGENTS: &str = "/usr/lib/ocf/resource.d/heartbeat";
/// systemd's default PATH, which pacemaker-execd (and so every agent) inherits.
const EXECD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const ALIAS: &str = "10.128.0.100/32";
const OCI_VIP: &str = "10.66.0.100";
const PUBLIC: &str = "203.0.113.10";

fn cache() -> PathBuf {
    crate::util::test_cache()
}

/// A file the test needs, or a loud failure naming what installs it.
fn need(p: &Path, what: &str) -> PathBuf {
    assert!(
        p.exists(),
        "{} is missing: {what} (run scripts/setup-deps.sh as root)",
        p.display()
    );
    p.to_path_buf()
}

/// What `python` (run as the agent would be: `env -i`) prints for `code`.
fn python_says(python: &Path, code: &str) -> String {
    let o = Command::new(python)
        .env_clear()
        .env("PATH", EXECD_PATH)
        .args(["-c", code])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    assert!(
        o.status.success(),
        "{} -c {code:?}: {}",
        python.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// The file a Python HTTP stack trusts when started with `env -i`.
fn trust_store(python: &Path, module: &str) -> PathBuf {
    let code = match module {
        "httplib2" => "import httplib2; print(httplib2.CA_CERTS)",
        _ => "import certifi; print(certifi.where())",
    };
    need(
        Path::new(&python_says(python, code)),
        "the client's CA bundle",
    )
}

pub struct Outcome {
    pub code: i32,
    pub out: String,
    pub secs: f64,
}

/// Two nodes (namespaces 1-2, default route to the cloud) and the emulator in the cloud
/// namespace on 10.66.0.254:443 (TLS for the real names) and 169.254.169.254:80.
struct Anchors {
    // Field order is drop order: the emulator stops before its namespace goes.
    _sim: cloudvip_sim::SimHandle,
    lab: Lab,
    dir: tempfile::TempDir,
    admin: String,
    /// `(action, node, exit code, seconds)` of every run, for the summary line.
    runs: std::cell::RefCell<Vec<String>>,
}

impl Anchors {
    fn start(world: impl FnOnce(&Path) -> cloudvip_sim::World) -> Anchors {
        let mut lab = Lab::new(2);
        let cloud = lab.add_cloud();
        for i in 1..=2 {
            sh(&[
                "ip",
                "-n",
                lab.ns(i),
                "route",
                "add",
                "default",
                "via",
                "10.66.0.254",
            ]);
        }
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = [
            "www.googleapis.com",
            "compute.googleapis.com",
            "oauth2.googleapis.com",
            "iaas.us-ashburn-1.oraclecloud.com",
            "auth.us-ashburn-1.oraclecloud.com",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        cloudvip_sim::tls::generate(dir.path(), &names).unwrap();
        let mut hosts =
            String::from("127.0.0.1 localhost\n169.254.169.254 metadata.google.internal\n");
        for n in &names {
            hosts += &format!("10.66.0.254 {n}\n");
        }
        std::fs::write(dir.path().join("hosts"), hosts).unwrap();
        Lab::enter(&cloud);
        let sim = cloudvip_sim::Sim::start(world(dir.path())).unwrap();
        let admin = sim.admin_url();
        Anchors {
            _sim: sim,
            lab,
            dir,
            admin,
            runs: Default::default(),
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Runs `argv` on node `i` in a private mount namespace where /etc/hosts and each
    /// `trust` file are the test's, with exactly `env` (plus nothing: `env -i`).
    fn run(
        &self,
        i: usize,
        label: &str,
        trust: &[PathBuf],
        env: &[(String, String)],
        argv: &[&str],
    ) -> Outcome {
        let mut script =
            String::from("set -e; mount --make-rprivate /; mount --bind \"$H\" /etc/hosts; ");
        for t in trust {
            script += &format!("mount --bind \"$CA\" '{}'; ", t.display());
        }
        script += "exec env -i \"$@\"";
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            self.lab.ns(i),
            "unshare",
            "-m",
            "sh",
            "-c",
            &script,
            "sh",
        ]);
        for (k, v) in env {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.args(argv);
        cmd.env("H", self.dir.path().join("hosts"))
            .env("CA", self.ca());
        let t = Instant::now();
        let o = cmd.output().expect("ip netns exec runs");
        let secs = t.elapsed().as_secs_f64();
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let code = o.status.code().unwrap_or(-1);
        self.runs
            .borrow_mut()
            .push(format!("{label} node{i}={code} ({secs:.1}s)"));
        Outcome { code, out, secs }
    }

    fn admin(&self, method: &str, path: &str) -> Value {
        crate::clouds::admin(&self.admin, method, path, None)
    }

    fn summary(&self, what: &str) {
        eprintln!("anchors: {what}: {}", self.runs.borrow().join(", "));
    }
}

/// What pacemaker-execd passes an OCF agent (pacemaker 2.1, `PCMK_logfacility=none`):
/// the OCF variables, the parameters, the meta attributes, its own PCMK_/HA_ settings.
fn execd_env(
    agent: &str,
    node: &str,
    params: &[(&str, &str)],
    log: &Path,
) -> Vec<(String, String)> {
    let log = log.display().to_string();
    let mut env: Vec<(String, String)> = [
        ("PATH", EXECD_PATH),
        ("OCF_ROOT", "/usr/lib/ocf"),
        ("OCF_RA_VERSION_MAJOR", "1"),
        ("OCF_RA_VERSION_MINOR", "1"),
        ("OCF_RESOURCE_INSTANCE", "vip"),
        ("OCF_RESOURCE_TYPE", agent),
        ("OCF_RESOURCE_PROVIDER", "heartbeat"),
        ("OCF_RESKEY_crm_feature_set", "3.16.2"),
        ("OCF_RESKEY_CRM_meta_timeout", "60000"),
        ("OCF_RESKEY_CRM_meta_on_node", node),
        ("PCMK_logfacility", "none"),
        ("PCMK_logfile", &log),
        ("HA_logfile", &log),
        ("PCMK_debug", "0"),
        ("HA_debug", "0"),
        ("PCMK_service", "pacemaker-execd"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in params {
        env.push((format!("OCF_RESKEY_{k}"), v.to_string()));
    }
    env
}

// ---- GCE ---------------------------------------------------------------------------

/// Two nodes with the NIC MACs GCE itself would give, each with an alias of its own;
/// node-a has the static external address; Google's real host names (token_uri, and the
/// discovery document gcloud reads when given).
fn gce_world(d: &Path, discovery: Option<&Path>) -> cloudvip_sim::World {
    let mut w = gce::bare(d, 2);
    let g = gce::gce(&mut w);
    g.api_listen = "10.66.0.254:443".parse().unwrap();
    g.token_uri = Some("https://oauth2.googleapis.com/token".into());
    g.discovery_document = discovery.map(Path::to_path_buf);
    g.operations.running_ms = 100;
    g.networks[0].subnets[0].secondary_ranges.clear();
    g.addresses.push(gce::address("vip-public", PUBLIC));
    for (i, alias) in [(1, "10.128.0.50/32"), (2, "10.128.0.60/32")] {
        let nic = gce::nic(&mut w, i);
        nic.mac = None;
        nic.alias_ip_ranges = vec![gce::alias(alias, None)];
    }
    gce::nic(&mut w, 1).access_configs = vec![gce::access_config("External NAT", Some(PUBLIC))];
    w
}

/// Per instance: its aliases (sorted) and its access configs' NAT IPs.
fn gce_view(a: &Anchors) -> Vec<(String, Vec<String>, Vec<String>)> {
    let st = a.admin("GET", "/admin/state");
    let mut v = Vec::new();
    for inst in st["gce"]["instances"].as_array().unwrap() {
        let nic = &inst["networkInterfaces"][0];
        let list = |k: &str, f: &str| -> Vec<String> {
            let mut l: Vec<String> = nic[k]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| x[f].as_str().unwrap_or("").to_owned())
                .collect();
            l.sort();
            l
        };
        v.push((
            inst["name"].as_str().unwrap().to_owned(),
            list("aliasIpRanges", "ipCidrRange"),
            list("accessConfigs", "natIP"),
        ));
    }
    v.sort();
    v
}

fn expect_gce(a: &Anchors, node_a: &[&str], node_b: &[&str], ext_a: &[&str], ext_b: &[&str]) {
    let s = |l: &[&str]| {
        let mut v: Vec<String> = l.iter().map(|x| x.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(
        gce_view(a),
        vec![
            ("node-a".to_owned(), s(node_a), s(ext_a)),
            ("node-b".to_owned(), s(node_b), s(ext_b)),
        ]
    );
}

/// monitor/start/stop/monitor of gcp-vpc-move-vip on both nodes with `python` (None: the
/// agent's own `#!/usr/bin/python3`, Debian's stack), trusting `trust`.
fn gcp_vpc_move_vip(a: &Anchors, python: Option<&Path>, trust: &[PathBuf]) {
    let agent = need(
        &Path::new(AGENTS).join("gcp-vpc-move-vip"),
        "resource-agents",
    );
    let node = |i: usize| if i == 1 { "node-a" } else { "node-b" };
    let act = |i: usize, action: &str, want: i32| {
        let log = a.dir.path().join(format!("{}.log", node(i)));
        let env = execd_env("gcp-vpc-move-vip", node(i), &[("alias_ip", ALIAS)], &log);
        let agent_s = agent.display().to_string();
        let mut argv: Vec<&str> = Vec::new();
        let py;
        if let Some(p) = python {
            py = p.display().to_string();
            argv.push(&py);
        }
        argv.extend([agent_s.as_str(), action]);
        let o = a.run(i, action, trust, &env, &argv);
        assert_eq!(
            o.code,
            want,
            "gcp-vpc-move-vip {action} on {} ({:.1}s):\n{}",
            node(i),
            o.secs,
            o.out
        );
    };
    let (a_other, b_other) = ("10.128.0.50/32", "10.128.0.60/32");
    act(1, "monitor", 7);
    act(2, "monitor", 7);
    expect_gce(a, &[a_other], &[b_other], &[PUBLIC], &[]);
    act(1, "start", 0);
    expect_gce(a, &[a_other, ALIAS], &[b_other], &[PUBLIC], &[]);
    act(1, "monitor", 0);
    act(2, "monitor", 7);
    // Failover: B takes the alias from A, each node's other alias stays where it was.
    act(2, "start", 0);
    expect_gce(a, &[a_other], &[b_other, ALIAS], &[PUBLIC], &[]);
    act(1, "monitor", 7);
    act(2, "monitor", 0);
    act(2, "stop", 0);
    act(1, "stop", 0);
    expect_gce(a, &[a_other], &[b_other], &[PUBLIC], &[]);
    act(2, "monitor", 7);
}

fn pypi_google() -> (PathBuf, PathBuf) {
    let py = need(
        &cache().join("venv-google/bin/python"),
        "the PyPI Google venv (tests/anchors/requirements-google.txt)",
    );
    let doc = need(
        Path::new(&python_says(
            &py,
            "import googleapiclient, os; print(os.path.join(os.path.dirname(googleapiclient.__file__), 'discovery_cache', 'documents', 'compute.v1.json'))",
        )),
        "google-api-python-client's discovery document",
    );
    (py, doc)
}

#[test]
fn gcp_vpc_move_vip_on_debians_google_stack() {
    // googleapiclient 1.7 fetches the discovery document on every call: the world serves
    // the one google-api-python-client ships, found in the PyPI venv at run time.
    let (_, doc) = pypi_google();
    let py = Path::new("/usr/bin/python3");
    let v = python_says(
        py,
        "from importlib.metadata import version as v; print(v('google-api-python-client'), v('google-auth'))",
    );
    assert!(
        v.starts_with("1."),
        "Debian's python3-googleapi/python3-google-auth expected: {v}"
    );
    let a = Anchors::start(|d| gce_world(d, Some(&doc)));
    let trust = [trust_store(py, "httplib2")];
    gcp_vpc_move_vip(&a, None, &trust);
    let log = a.admin("GET", "/admin/log")["entries"].clone();
    assert!(log
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["api"] == "discovery.apis.getRest" && e["status"] == 200));
    a.summary(&format!("gcp-vpc-move-vip, Debian stack ({v})"));
}

#[test]
fn gcp_vpc_move_vip_on_the_pypi_google_stack() {
    let (py, _) = pypi_google();
    let v = python_says(
        &py,
        "from importlib.metadata import version as v; print(v('google-api-python-client'), v('google-auth'))",
    );
    let a = Anchors::start(|d| gce_world(d, None));
    // google-auth's metadata calls and googleapiclient's httplib2 each have a CA bundle.
    let mut trust = vec![trust_store(&py, "httplib2"), trust_store(&py, "certifi")];
    trust.dedup();
    gcp_vpc_move_vip(&a, Some(&py), &trust);
    a.summary(&format!("gcp-vpc-move-vip, PyPI stack ({v})"));
}

/// The seed's database failover hook on node B: gcloud takes the alias from the peer and
/// puts it here, then moves the access config. `--aliases` replaces the whole list, so the
/// peer's other alias (and this node's own) is lost: exactly what GCE would do.
#[test]
fn seed_gcloud_failover_hook_and_its_known_flaw() {
    let gcloud = match Command::new("sh")
        .args(["-c", "command -v gcloud"])
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => panic!(
            "gcloud is not installed: the seed's hook cannot run. Neither PyPI nor Debian \
             packages it; scripts/setup-deps.sh installs google-cloud-cli only from an apt \
             source that offers it"
        ),
    };
    let root = std::fs::canonicalize(&gcloud)
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let trust = [need(
        &root.join("lib/third_party/certifi/cacert.pem"),
        "gcloud's bundled CA bundle",
    )];
    let a = Anchors::start(|d| gce_world(d, None));
    let home = a.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // The hook's environment is the database's, not Pacemaker's: a HOME of its own.
    let env: Vec<(String, String)> = [
        ("PATH", EXECD_PATH.to_owned()),
        ("HOME", home.display().to_string()),
        ("CLOUDSDK_CORE_DISABLE_PROMPTS", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let hook: [&[&str]; 4] = [
        &[
            "compute",
            "instances",
            "network-interfaces",
            "update",
            "node-a",
            "--zone",
            "us-central1-a",
            "--aliases",
            "",
        ],
        &[
            "compute",
            "instances",
            "network-interfaces",
            "update",
            "node-b",
            "--zone",
            "us-central1-b",
            "--aliases",
            ALIAS,
        ],
        &[
            "compute",
            "instances",
            "delete-access-config",
            "node-a",
            "--zone",
            "us-central1-a",
            "--access-config-name",
            "External NAT",
        ],
        &[
            "compute",
            "instances",
            "add-access-config",
            "node-b",
            "--zone",
            "us-central1-b",
            "--access-config-name",
            "External NAT",
            "--address",
            PUBLIC,
        ],
    ];
    for step in hook {
        let mut argv = vec![gcloud.as_str()];
        argv.extend_from_slice(step);
        argv.push("--quiet");
        let label = format!("{} {}", step[2], step[3]);
        let o = a.run(2, &label, &trust, &env, &argv);
        assert_eq!(o.code, 0, "gcloud {step:?} ({:.1}s):\n{}", o.secs, o.out);
    }
    // The VIP and the public IP moved; both other aliases are gone, as on GCE.
    expect_gce(&a, &[], &[ALIAS], &[], &[PUBLIC]);
    a.summary("seed hook, gcloud");
}

// ---- OCI ---------------------------------------------------------------------------

/// Two nodes in the lab's own subnet 10.66.0.0/24; node2's VNIC has another secondary
/// private IP.
fn oci_world(d: &Path) -> cloudvip_sim::World {
    let mut w = oci::base(d);
    let o = oci::oci(&mut w);
    o.public_ip_assign_ms = 100;
    o.vcns[0].cidr = "10.66.0.0/16".into();
    o.subnets[0].cidr = "10.66.0.0/24".into();
    o.private_ips = vec![oci::private_ip(oci::OTHER_ID, 2, "10.66.0.50")];
    for i in 1..=2 {
        o.instances.push(oci::instance(i, &format!("10.66.0.1{i}")));
    }
    w
}

/// Each private IP as `(address, node)`, sorted.
fn oci_view(a: &Anchors) -> Vec<(String, String)> {
    let st = a.admin("GET", "/admin/state");
    let mut v: Vec<(String, String)> = st["oci"]["privateIps"]
        .as_array()
        .unwrap_or_else(|| panic!("no oci.privateIps in {st}"))
        .iter()
        .map(|p| {
            (
                p["ipAddress"].as_str().unwrap().to_owned(),
                p["vnicId"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("ocid1.vnic.oc1.iad.aaaaaaaa")
                    .to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

fn expect_oci(a: &Anchors, vip_on: Option<&str>) {
    let mut want = vec![
        ("10.66.0.11".to_owned(), "node1".to_owned()),
        ("10.66.0.12".to_owned(), "node2".to_owned()),
        ("10.66.0.50".to_owned(), "node2".to_owned()),
    ];
    if let Some(n) = vip_on {
        want.push((OCI_VIP.to_owned(), n.to_owned()));
    }
    want.sort();
    assert_eq!(oci_view(a), want);
}

#[test]
fn ocivip_with_oci_cli_and_instance_principals() {
    let agent = need(&Path::new(AGENTS).join("ocivip"), "resource-agents");
    let oci = need(
        &cache().join("venv-oci-cli/bin/oci"),
        "the oci-cli venv (tests/anchors/requirements-oci-cli.txt)",
    );
    let py = cache().join("venv-oci-cli/bin/python");
    let v = python_says(
        &py,
        "from importlib.metadata import version as v; print(v('oci-cli'), v('oci'))",
    );
    let trust = [trust_store(&py, "certifi")];
    let a = Anchors::start(oci_world);
    let oci_s = oci.display().to_string();
    let agent_s = agent.display().to_string();
    let act = |i: usize, action: &str, want: i32| {
        let log = a.dir.path().join(format!("node{i}.log"));
        let params = [
            ("secondary_private_ip", OCI_VIP),
            ("ocicli", oci_s.as_str()),
            // The agent sleeps api_delay (3 s) after each call; the emulator needs none.
            ("api_delay", "0"),
        ];
        let env = execd_env("ocivip", &format!("node{i}"), &params, &log);
        let o = a.run(i, action, &trust, &env, &[agent_s.as_str(), action]);
        assert_eq!(
            o.code, want,
            "ocivip {action} on node{i} ({:.1}s):\n{}",
            o.secs, o.out
        );
    };
    let local = |i: usize| a.lab.addrs(i).contains(&format!("inet {OCI_VIP}/24"));
    act(1, "monitor", 7);
    act(2, "monitor", 7);
    expect_oci(&a, None);
    act(1, "start", 0);
    expect_oci(&a, Some("node1"));
    assert!(local(1) && !local(2));
    act(1, "monitor", 0);
    act(2, "monitor", 7);
    // Failover as after node1 died (no stop there): assign-private-ip
    // --unassign-if-already-assigned moves the address to node2's VNIC.
    act(2, "start", 0);
    expect_oci(&a, Some("node2"));
    act(1, "monitor", 7);
    act(2, "monitor", 0);
    act(2, "stop", 0);
    expect_oci(&a, None);
    assert!(!local(2));
    act(2, "monitor", 7);
    // Created, moved, deleted: each through the operation OCI documents for it.
    let log = a.admin("GET", "/admin/log")["entries"].clone();
    for api in ["CreatePrivateIp", "UpdatePrivateIp", "DeletePrivateIp"] {
        assert!(
            log.as_array().unwrap().iter().any(|e| e["api"] == api
                && e["status"]
                    .as_u64()
                    .is_some_and(|s| (200..300).contains(&s))),
            "no successful {api} in the request log"
        );
    }
    a.summary(&format!("ocivip, oci-cli/oci ({v})"));
}
