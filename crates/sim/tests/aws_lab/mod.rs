//! A private network for the AWS conformance tests: a "cloud" namespace holding the
//! emulator (the EC2/STS endpoint at 10.66.0.254:443 over HTTPS with a test CA, IMDS at
//! 169.254.169.254:80 telling instances apart by source address) and one namespace per
//! node (10.66.0.i, eth0 MAC 02:66:00:00:00:0i) on a bridge in the cloud namespace.
//! Clients run inside a node namespace with a private `/etc/hosts` (bind-mounted in the
//! mount namespace `ip netns exec` makes) that resolves the real AWS hostnames to the
//! emulator, as a user's resolver would. Everything is removed on drop; processes left in
//! the namespaces are killed by PID. Needs root; fails loudly without it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const REGION: &str = "eu-west-1";
pub const HOSTS: &[&str] = &[
    "ec2.eu-west-1.amazonaws.com",
    "sts.eu-west-1.amazonaws.com",
    "sts.amazonaws.com",
];
const WORLD: &str = include_str!("../../examples/world-aws.toml");

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The venv with botocore/boto3 and the AWS CLI (scripts/setup-deps.sh builds it).
pub fn venv() -> PathBuf {
    let root = std::env::var_os("CLOUDVIP_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/cloudvip-test"));
    let v = root.join("venv-aws");
    let aws = v.join("bin/aws");
    let ok = Command::new(&aws)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} is missing: run scripts/setup-deps.sh (it builds the venv from crates/sim/tests/requirements-aws.txt)",
        aws.display()
    );
    v
}

fn sh(args: &[&str]) -> String {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the AWS conformance tests need root (network namespaces); CI runs them as root"
    );
}

/// Moves the calling thread into `ns` (sockets it and its new threads make live there).
fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns file");
    // SAFETY: setns on a valid namespace fd; affects only this thread.
    let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

/// The lab's namespaces, deleted on drop (processes inside killed by PID first).
struct Nets(Vec<String>);

impl Drop for Nets {
    fn drop(&mut self) {
        for ns in &self.0 {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    match pid.parse::<i32>() {
                        // The test process itself is listed where its threads entered.
                        Ok(p) if p as u32 != std::process::id() => {
                            // SAFETY: kill has no memory-safety preconditions.
                            unsafe { libc::kill(p, libc::SIGKILL) };
                        }
                        _ => {}
                    }
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

pub struct Lab {
    // Field order is drop order: the emulator stops before its namespaces go.
    pub sim: cloudvip_sim::SimHandle,
    nets: Nets,
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    hosts: PathBuf,
    admin: String,
}

/// The example world, moved onto the lab's addresses, with `edit` applied.
pub fn world(
    dir: &Path,
    edit: impl FnOnce(&mut cloudvip_sim::aws::AwsWorld),
) -> cloudvip_sim::World {
    let mut w = cloudvip_sim::World::from_toml(WORLD).expect("example AWS world");
    w.server.tls_cert = Some(dir.join("server.pem"));
    w.server.tls_key = Some(dir.join("server.key"));
    let a = w.aws.as_mut().expect("[aws]");
    a.api_listen = "10.66.0.254:443".parse().unwrap();
    a.metadata_listen = Some("169.254.169.254:80".parse().unwrap());
    a.metadata_per_instance = false;
    for (n, i) in a.instances.iter_mut().enumerate() {
        i.metadata_source = Some(format!("10.66.0.{}", n + 1).parse().unwrap());
    }
    edit(a);
    w
}

impl Lab {
    /// `nodes` client namespaces and the emulator running `world` (see [`world`]).
    pub fn start(nodes: usize, edit: impl FnOnce(&mut cloudvip_sim::aws::AwsWorld)) -> Lab {
        require_root();
        let tag = format!(
            "cva{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let cloud = format!("{tag}-cloud");
        sh(&["ip", "netns", "add", &cloud]);
        // Deletes what exists so far if a later step panics.
        let mut nets = Nets(vec![cloud.clone()]);
        let ipc = |args: &[&str]| {
            let mut v = vec!["ip", "-n", &cloud];
            v.extend_from_slice(args);
            sh(&v);
        };
        ipc(&["link", "set", "lo", "up"]);
        ipc(&["link", "add", "br0", "type", "bridge"]);
        ipc(&["addr", "add", "10.66.0.254/24", "dev", "br0"]);
        ipc(&["addr", "add", "169.254.169.254/32", "dev", "br0"]);
        ipc(&["link", "set", "br0", "up"]);
        for i in 1..=nodes {
            let ns = format!("{tag}-{i}");
            sh(&["ip", "netns", "add", &ns]);
            nets.0.push(ns.clone());
            let port = format!("p{i}");
            ipc(&[
                "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            ipc(&["link", "set", &port, "master", "br0", "up"]);
            let ipn = |args: &[&str]| {
                let mut v = vec!["ip", "-n", &ns];
                v.extend_from_slice(args);
                sh(&v);
            };
            ipn(&["link", "set", "lo", "up"]);
            ipn(&[
                "link",
                "set",
                "eth0",
                "address",
                &format!("02:66:00:00:00:{i:02x}"),
            ]);
            ipn(&["addr", "add", &format!("10.66.0.{i}/24"), "dev", "eth0"]);
            ipn(&["link", "set", "eth0", "up"]);
            ipn(&["route", "add", "169.254.169.254/32", "via", "10.66.0.254"]);
        }
        let dir = tempfile::tempdir().unwrap();
        let mut names: Vec<String> = HOSTS.iter().map(|s| s.to_string()).collect();
        names.push("10.66.0.254".into());
        let g = cloudvip_sim::tls::generate(dir.path(), &names).unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(
            &hosts,
            format!("127.0.0.1 localhost\n10.66.0.254 {}\n", HOSTS.join(" ")),
        )
        .unwrap();
        enter(&cloud);
        let sim = cloudvip_sim::Sim::start(world(dir.path(), edit)).expect("emulator starts");
        let admin = sim.admin_url();
        Lab {
            sim,
            nets,
            dir,
            ca: g.ca_cert,
            hosts,
            admin,
        }
    }

    pub fn node_ns(&self, i: usize) -> &str {
        &self.nets.0[i]
    }

    /// Runs `cmd` inside node `i` with the lab's `/etc/hosts`, a clean environment plus
    /// `env`, bounded to `limit` (killed by PID after that).
    pub fn run(&self, i: usize, cmd: &[&str], env: &[(&str, String)], limit: Duration) -> Output {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.node_ns(i), "sh", "-c"])
            .arg("mount --bind \"$0\" /etc/hosts && exec \"$@\"")
            .arg(&self.hosts)
            .args(cmd)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", self.dir.path())
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("ip netns exec");
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = out.read_to_end(&mut s);
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            s
        });
        let end = Instant::now() + limit;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                let _ = child.kill();
                let s = child.wait().unwrap();
                panic!("{cmd:?} did not finish within {limit:?} ({s})");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: t_out.join().unwrap_or_default(),
            stderr: t_err.join().unwrap_or_default(),
        }
    }

    /// The admin API (plain HTTP in the cloud namespace, which this thread entered).
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let addr = self.admin.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 2"),
            "admin {method} {path}: {head}\n{body}"
        );
        serde_json::from_str(body).unwrap_or(Value::Null)
    }

    pub fn state(&self) -> Value {
        self.admin("GET", "/admin/aws/state", None)
    }

    pub fn log(&self) -> Vec<Value> {
        self.admin("GET", "/admin/log", None)["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
