//! The unmodified Debian AWS anchors — `awsvip`, `awseip`, `aws-vpc-move-ip` (resource-agents
//! 4.12) — doing monitor/start/stop/monitor on two nodes against the emulator, with the AWS
//! CLI v1 from the venv scripts/setup-deps.sh builds (crates/sim/tests/requirements-aws.txt).
//! What differs from a real EC2 node is only what a user's machine would hold, each in a
//! private mount namespace per run so the host's files never change: /etc/hosts (the real
//! EC2/STS names = the emulator), the trust store the CLI reads (botocore's `cacert.pem` =
//! the emulator's CA only) and the CLI's own config as a user writes it (`/root/.aws/config`:
//! the region; no keys, so the instance profile is used through IMDS at 169.254.169.254).
//! Agents run with `env -i` and what pacemaker-execd passes. Each step asserts the exit
//! code and the emulator's state; the summary line gives per-action times and API calls.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::clouds::aws::{self, no_vip, AwsState, OVERLAY};
use crate::netns::Lab;

const AGENTS: &str = "/usr/lib/ocf/resource.d/heartbeat";
/// systemd's default PATH, which pacemaker-execd (and so every agent) inherits.
const EXECD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const NAMES: &[&str] = &[
    "ec2.eu-west-1.amazonaws.com",
    "sts.eu-west-1.amazonaws.com",
    "sts.amazonaws.com",
];
const VIP: &str = "10.0.1.100";
const EIP: &str = "203.0.113.11";
const EIP_ALLOC: &str = "eipalloc-0c10d00000000000f2";
const RTB: &str = "rtb-0c10d0000000000c1";
const RTB_OTHER: &str = "rtb-0c10d0000000000c2";
const ENI: [&str; 2] = ["eni-0c10d0000000000e1", "eni-0c10d0000000000e2"];
const INSTANCE: [&str; 2] = ["i-0c10d000000000001", "i-0c10d000000000002"];

fn venv() -> PathBuf {
    let v = crate::util::test_cache().join("venv-aws");
    assert!(
        v.join("bin/aws").exists(),
        "{} is missing: run scripts/setup-deps.sh as root (it builds the AWS CLI venv)",
        v.join("bin/aws").display()
    );
    v
}

fn agent(name: &str) -> String {
    let p = Path::new(AGENTS).join(name);
    assert!(
        p.exists(),
        "{} is missing: install resource-agents",
        p.display()
    );
    p.display().to_string()
}

/// The CA bundle the CLI's botocore reads when nothing overrides it.
fn botocore_trust_store(v: &Path) -> PathBuf {
    let o = Command::new(v.join("bin/python"))
        .env_clear()
        .args([
            "-c",
            "from botocore.httpsession import get_cert_path; print(get_cert_path(True))",
        ])
        .output()
        .expect("venv python");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

struct Run {
    code: i32,
    out: String,
}

/// Two nodes and the emulator in the cloud namespace (EC2/STS on 10.66.0.254:443 by the
/// real names, IMDS on 169.254.169.254:80 by source address).
struct AwsAnchors {
    // Field order is drop order: the emulator stops before its namespace goes.
    _sim: cloudvip_sim::SimHandle,
    lab: Lab,
    dir: tempfile::TempDir,
    admin: String,
    venv: PathBuf,
    trust: PathBuf,
    runs: std::cell::RefCell<Vec<String>>,
}

impl AwsAnchors {
    fn start(edit: impl FnOnce(&mut cloudvip_sim::aws::AwsWorld)) -> AwsAnchors {
        let venv = venv();
        let trust = botocore_trust_store(&venv);
        let mut lab = Lab::new(2);
        let cloud = lab.add_cloud();
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
        cloudvip_sim::tls::generate(dir.path(), &names).unwrap();
        std::fs::write(
            dir.path().join("hosts"),
            format!("127.0.0.1 localhost\n10.66.0.254 {}\n", NAMES.join(" ")),
        )
        .unwrap();
        // root's ~/.aws as a user on an EC2 node writes it: the region, nothing else.
        let home = dir.path().join("root");
        std::fs::create_dir_all(home.join(".aws")).unwrap();
        std::fs::write(home.join(".aws/config"), "[default]\nregion = eu-west-1\n").unwrap();
        let mut w = cloudvip_sim::World::from_toml(aws::WORLD).unwrap();
        w.server.tls_cert = Some(dir.path().join("server.pem"));
        w.server.tls_key = Some(dir.path().join("server.key"));
        let a = w.aws.as_mut().unwrap();
        a.api_listen = "10.66.0.254:443".parse().unwrap();
        a.metadata_listen = Some("169.254.169.254:80".parse().unwrap());
        a.metadata_per_instance = false;
        for (n, i) in a.instances.iter_mut().enumerate() {
            i.metadata_source = Some(format!("10.66.0.{}", n + 1).parse().unwrap());
        }
        edit(a);
        Lab::enter(&cloud);
        let sim = cloudvip_sim::Sim::start(w).unwrap();
        let admin = sim.admin_url();
        AwsAnchors {
            _sim: sim,
            lab,
            dir,
            admin,
            venv,
            trust,
            runs: Default::default(),
        }
    }

    fn admin(&self, method: &str, path: &str) -> Value {
        let addr = self.admin.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 2"), "admin {path}: {head}");
        serde_json::from_str(body).unwrap_or(Value::Null)
    }

    /// `agent action` on node `i` (1-based) as pacemaker-execd runs it, in a private mount
    /// namespace with the test's /etc/hosts, trust store and /root/.aws.
    fn act(&self, i: usize, agent: &str, action: &str, params: &[(&str, &str)]) -> Run {
        let node = format!("node-{}", if i == 1 { 'a' } else { 'b' });
        let log = self.dir.path().join(format!("{node}.log"));
        let log_s = log.display().to_string();
        let awscli = self.venv.join("bin/aws").display().to_string();
        let mut env: Vec<(String, String)> = [
            ("PATH", EXECD_PATH),
            ("OCF_ROOT", "/usr/lib/ocf"),
            ("OCF_RA_VERSION_MAJOR", "1"),
            ("OCF_RA_VERSION_MINOR", "1"),
            ("OCF_RESOURCE_INSTANCE", "vip"),
            ("OCF_RESOURCE_PROVIDER", "heartbeat"),
            ("OCF_RESKEY_crm_feature_set", "3.16.2"),
            ("OCF_RESKEY_CRM_meta_timeout", "60000"),
            ("OCF_RESKEY_CRM_meta_on_node", &node),
            ("PCMK_logfacility", "none"),
            ("PCMK_logfile", &log_s),
            ("HA_logfile", &log_s),
            ("HA_debug", "0"),
            ("PCMK_service", "pacemaker-execd"),
            ("OCF_RESKEY_awscli", &awscli),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.push(("OCF_RESOURCE_TYPE".into(), agent.into()));
        for (k, v) in params {
            env.push((format!("OCF_RESKEY_{k}"), v.to_string()));
        }
        let script = "set -e; mount --make-rprivate /; mount --bind \"$H\" /etc/hosts; \
                      mount --bind \"$CA\" \"$TRUST\"; mount --bind \"$ROOTHOME\" /root; \
                      exec env -i \"$@\"";
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            self.lab.ns(i),
            "unshare",
            "-m",
            "sh",
            "-c",
            script,
            "sh",
        ]);
        for (k, v) in &env {
            cmd.arg(format!("{k}={v}"));
        }
        let path = self::agent(agent);
        cmd.args([path.as_str(), action])
            .env("H", self.dir.path().join("hosts"))
            .env("CA", self.dir.path().join("ca.pem"))
            .env("TRUST", &self.trust)
            .env("ROOTHOME", self.dir.path().join("root"));
        self.admin("DELETE", "/admin/log");
        let t = Instant::now();
        let o = cmd.output().expect("ip netns exec runs");
        let secs = t.elapsed().as_secs_f64();
        let calls = self.admin("GET", "/admin/log")["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let n = |svc: &str| calls.iter().filter(|e| e["service"] == svc).count();
        let code = o.status.code().unwrap_or(-1);
        let n_run = self.runs.borrow().len();
        let _ = std::fs::write(
            self.dir
                .path()
                .join(format!("{n_run:02}-{agent}-{action}-{node}.stdout")),
            [o.stdout.as_slice(), o.stderr.as_slice()].concat(),
        );
        self.runs.borrow_mut().push(format!(
            "{action} {node}={code} ({secs:.1}s, ec2 {} sts {} imds {})",
            n("ec2"),
            n("sts"),
            n("metadata")
        ));
        Run {
            code,
            out: format!(
                "{}{}\n--- agent log ---\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
    }

    fn expect(&self, i: usize, agent: &str, action: &str, params: &[(&str, &str)], want: i32) {
        let r = self.act(i, agent, action, params);
        assert_eq!(r.code, want, "{agent} {action} on node {i}:\n{}", r.out);
    }

    fn local(&self, i: usize, ip: &str) -> bool {
        self.lab.addrs(i).contains(&format!("inet {ip}/32"))
    }

    /// Prints the runs and keeps every log for the suite's secret scan.
    fn summary(&self, what: &str) {
        eprintln!("anchors_aws: {what}: {}", self.runs.borrow().join(", "));
        crate::secret_scan::keep_logs(&format!("anchors-aws-{what}"), self.dir.path());
    }
}

impl AwsState for AwsAnchors {
    fn state(&self) -> Value {
        self.admin("GET", "/admin/aws/state")
    }
}

#[test]
fn awsvip_moves_the_secondary_ip() {
    let a = AwsAnchors::start(no_vip);
    let p = [("secondary_private_ip", VIP)];
    let ag = "awsvip";
    a.expect(1, ag, "monitor", &p, 7);
    a.expect(2, ag, "monitor", &p, 7);
    assert!(a.holders(VIP).is_empty());
    a.expect(1, ag, "start", &p, 0);
    assert_eq!(a.holders(VIP), vec![ENI[0]]);
    a.expect(1, ag, "monitor", &p, 0);
    a.expect(2, ag, "monitor", &p, 7);
    // Failover as after node-a died (no stop there): one reassigning call on node-b.
    a.expect(2, ag, "start", &p, 0);
    assert_eq!(a.holders(VIP), vec![ENI[1]]);
    a.expect(1, ag, "monitor", &p, 7);
    a.expect(2, ag, "monitor", &p, 0);
    a.expect(2, ag, "stop", &p, 0);
    assert!(a.holders(VIP).is_empty());
    a.expect(1, ag, "stop", &p, 0);
    a.expect(2, ag, "monitor", &p, 7);
    let calls = &a.state()["calls"];
    assert!(
        calls["ec2:AssignPrivateIpAddresses"].as_u64() == Some(2),
        "{calls}"
    );
    assert!(
        calls["ec2:UnassignPrivateIpAddresses"].as_u64() == Some(1),
        "{calls}"
    );
    assert!(
        calls["imds:credentials"].as_u64().unwrap_or(0) >= 1,
        "instance profile used: {calls}"
    );
    a.summary("awsvip");
}

#[test]
fn awseip_moves_the_elastic_ip() {
    let a = AwsAnchors::start(no_vip);
    let p = [("elastic_ip", EIP), ("allocation_id", EIP_ALLOC)];
    let ag = "awseip";
    a.expect(1, ag, "monitor", &p, 7);
    a.expect(2, ag, "monitor", &p, 7);
    a.expect(1, ag, "start", &p, 0);
    assert_eq!(a.eip(EIP)["instance"], INSTANCE[0]);
    a.expect(1, ag, "monitor", &p, 0);
    a.expect(2, ag, "monitor", &p, 7);
    // Reassociation without --allow-reassociation: automatic, as documented today.
    a.expect(2, ag, "start", &p, 0);
    assert_eq!(a.eip(EIP)["instance"], INSTANCE[1]);
    a.expect(1, ag, "monitor", &p, 7);
    a.expect(2, ag, "monitor", &p, 0);
    a.expect(2, ag, "stop", &p, 0);
    assert!(a.eip(EIP).is_null());
    a.expect(1, ag, "stop", &p, 0);
    a.expect(2, ag, "monitor", &p, 7);
    a.summary("awseip");
}

/// awsvip and awseip together (`private_ip_address` = the VIP): the Elastic IP follows the
/// secondary IP when awsvip reassigns it, so awseip on the new node finds it already there.
#[test]
fn awseip_on_the_vip_follows_awsvip() {
    let a = AwsAnchors::start(no_vip);
    let vip = [("secondary_private_ip", VIP)];
    let eip = [
        ("elastic_ip", EIP),
        ("allocation_id", EIP_ALLOC),
        ("private_ip_address", VIP),
    ];
    a.expect(1, "awsvip", "start", &vip, 0);
    a.expect(1, "awseip", "start", &eip, 0);
    assert_eq!(
        a.eip(EIP),
        json!({"id": a.eip(EIP)["id"], "eni": ENI[0], "private_ip": VIP, "instance": INSTANCE[0]})
    );
    a.expect(2, "awsvip", "start", &vip, 0);
    assert_eq!(
        a.eip(EIP)["eni"],
        ENI[1],
        "the EIP followed the reassigned VIP"
    );
    a.expect(2, "awseip", "monitor", &eip, 0);
    a.expect(2, "awseip", "start", &eip, 0);
    a.expect(1, "awseip", "monitor", &eip, 7);
    a.expect(2, "awseip", "stop", &eip, 0);
    a.expect(2, "awsvip", "stop", &vip, 0);
    assert!(a.eip(EIP).is_null() && a.holders(VIP).is_empty());
    a.summary("awsvip + awseip");
}

fn move_ip(a: &AwsAnchors, table: &str, extra: &[(&str, &str)]) {
    let mut p = vec![
        ("ip", OVERLAY),
        ("routing_table", table),
        ("interface", "eth0"),
        ("region", "eu-west-1"),
    ];
    p.extend_from_slice(extra);
    let ag = "aws-vpc-move-ip";
    // Probes check the route through the API and the address on the interface.
    a.expect(1, ag, "monitor", &p, 7);
    a.expect(2, ag, "monitor", &p, 7);
    a.expect(1, ag, "start", &p, 0);
    assert_eq!(a.route(table)["eni"], ENI[0]);
    assert!(a.local(1, OVERLAY));
    a.expect(1, ag, "monitor", &p, 0);
    a.expect(2, ag, "start", &p, 0);
    assert_eq!(a.route(table)["eni"], ENI[1]);
    assert_eq!(a.route(table)["instance"], INSTANCE[1]);
    assert!(a.local(2, OVERLAY));
    a.expect(1, ag, "monitor", &p, 7);
    a.expect(2, ag, "monitor", &p, 0);
    a.expect(2, ag, "stop", &p, 0);
    assert!(!a.local(2, OVERLAY));
    a.expect(1, ag, "stop", &p, 0);
    a.expect(2, ag, "monitor", &p, 7);
    // stop only drops the address: the route stays where it was.
    assert_eq!(a.route(table)["eni"], ENI[1]);
}

#[test]
fn aws_vpc_move_ip_replaces_the_route() {
    let a = AwsAnchors::start(|_| {});
    move_ip(&a, RTB, &[]);
    let calls = &a.state()["calls"];
    assert!(calls["ec2:ReplaceRoute"].as_u64() == Some(2), "{calls}");
    a.summary("aws-vpc-move-ip");
}

/// `routing_table_role` (resource-agents PR #1454): the table belongs to another account,
/// reached with `sts assume-role` from the instance profile's credentials.
#[test]
fn aws_vpc_move_ip_through_a_role_for_another_accounts_table() {
    let a = AwsAnchors::start(|_| {});
    move_ip(
        &a,
        RTB_OTHER,
        &[(
            "routing_table_role",
            "arn:aws:iam::444455556666:role/rtb-editor",
        )],
    );
    let calls = &a.state()["calls"];
    assert!(
        calls["sts:AssumeRole"].as_u64().unwrap_or(0) >= 2,
        "{calls}"
    );
    assert!(calls["ec2:ReplaceRoute"].as_u64() == Some(2), "{calls}");
    // The main table, outside the role's account, was never touched.
    assert_eq!(a.route(RTB)["eni"], ENI[0]);
    a.summary("aws-vpc-move-ip, routing_table_role");
}
