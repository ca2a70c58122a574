//! A real Corosync 3 + Pacemaker 2.1 cluster on one machine, after the lab recipe: node i
//! is network namespace i of a [`Lab`] plus a private mount and UTS namespace (its own
//! /run, /dev/shm, /etc/corosync, /var/lib/{corosync,pacemaker}, /var/log, /etc/hosts and
//! /etc/ssl/certs), its daemons started with `env -i` as an init system would. Host n+1 is
//! the client. The emulator runs in-process in the cloud namespace on 10.66.0.254:443
//! (TLS for the clouds' real host names, signed by a test CA that is each node's only
//! trusted root) and 169.254.169.254:80. Everything is killed by PID on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::netns::Lab;
use crate::ocf_root::OcfRoot;
use crate::util::sh;

pub const VIP: &str = "10.66.0.100";
/// Port of the tiny TCP service every node runs (answers its node name).
pub const PORT: u16 = 7000;
/// The PATH (and nothing else of ours) that the node's daemons and CLIs get.
const CLEAN_PATH: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

/// The host names the nodes resolve to the emulator, as in production.
pub const CLOUD_HOSTS: &[&str] = &[
    "compute.googleapis.com",
    "oauth2.googleapis.com",
    "iaas.us-ashburn-1.oraclecloud.com",
    "auth.us-ashburn-1.oraclecloud.com",
    "ec2.eu-west-1.amazonaws.com",
    "sts.eu-west-1.amazonaws.com",
    "sts.amazonaws.com",
];

const NODE_INIT: &str = r#"#!/bin/bash
# Runs inside node $1's fresh mount+UTS namespaces (and its network namespace), with the
# environment `env -i` left: privatise the cluster's paths, start corosync, then pacemakerd.
set -eu
i=$1; S=$2; D=$S/node$i
mount --make-rprivate /
# The agent under test over the system's agents, never written to /usr/lib/ocf.
mount -t overlay cloudvip-ocf -o lowerdir=$S/ocf/resource.d:/usr/lib/ocf/resource.d /usr/lib/ocf/resource.d
mount -t tmpfs -o mode=0755 lab-run /run
# What systemd-tmpfiles makes at boot (resource-agents' tmpfiles.d); the agent finds it
# by itself: Pacemaker passes agents no HA_RSCTMP, and neither does this script.
mkdir -p /run/resource-agents /run/crm /run/lock
chmod 1755 /run/resource-agents
mount -t tmpfs -o mode=1777 lab-shm /dev/shm
for p in etc/corosync var/lib/corosync var/lib/pacemaker var/log/pacemaker var/log/corosync; do
    mount --bind "$D/$p" "/$p"
done
mount --bind "$S/hosts" /etc/hosts
mount --bind "$S/certs" /etc/ssl/certs
hostname "node$i"
export LANG=C.UTF-8
export PCMK_logfile=/var/log/pacemaker/pacemaker.log PCMK_logfacility=none PCMK_debug=no
/usr/sbin/corosync -f > "$D/corosync.stdout" 2>&1 &
echo $! > "$D/corosync.pid"
for _ in $(seq 1 100); do
    corosync-cfgtool -s > /dev/null 2>&1 && break
    sleep 0.1
done
/usr/sbin/pacemakerd > "$D/pacemakerd.stdout" 2>&1 &
echo $! > "$D/pacemakerd.pid"
wait
"#;

pub struct Cluster {
    pub n: usize,
    children: Vec<Option<Child>>,
    services: Vec<Service>,
    sim: Option<cloudvip_sim::SimHandle>,
    admin: String,
    pub lab: Lab,
    pub cloud_ns: String,
    pub dir: tempfile::TempDir,
    /// Where the client reaches the VIP: the VIP itself, or a public address the cloud
    /// translates (`ClusterCloud::client_path`).
    pub client_addr: &'static str,
    /// What the cloud's client path runs (a NAT), stopped before the emulator.
    guards: Vec<Box<dyn Send>>,
}

impl Cluster {
    /// `n` nodes, a client (host n+1), the emulator with the world `world(dir)` (the
    /// directory holds the emulator's `server.pem`/`server.key` and `ca.pem`).
    pub fn start(n: usize, world: impl FnOnce(&Path) -> cloudvip_sim::World) -> Cluster {
        let mut lab = Lab::new(n + 1);
        let cloud_ns = lab.add_cloud();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // The agent under test, seen by the nodes through an overlay (NODE_INIT).
        OcfRoot::at(&d.join("ocf"));
        let mut names: Vec<String> = CLOUD_HOSTS.iter().map(|s| s.to_string()).collect();
        names.push("metadata.google.internal".into());
        names.push("10.66.0.254".into());
        cloudvip_sim::tls::generate(d, &names).unwrap();
        // The emulator's threads live in the cloud namespace: this thread enters it first.
        Lab::enter(&cloud_ns);
        let sim = cloudvip_sim::Sim::start(world(d)).unwrap();
        let admin = sim.admin_url().trim_start_matches("http://").to_owned();
        let mut c = Cluster {
            n,
            children: (0..n).map(|_| None).collect(),
            services: Vec::new(),
            sim: Some(sim),
            admin,
            lab,
            cloud_ns,
            dir,
            client_addr: VIP,
            guards: Vec::new(),
        };
        c.write_state();
        for i in 1..=n {
            c.services
                .push(Service::start(c.lab.ns(i), &format!("node{i}")));
        }
        for i in 1..=n {
            c.start_node(i);
        }
        c.wait_online(n, Duration::from_secs(90));
        c
    }

    pub fn state(&self) -> &Path {
        self.dir.path()
    }

    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.state().join(format!("node{i}"))
    }

    pub fn client(&self) -> usize {
        self.n + 1
    }

    fn write_state(&self) {
        let s = self.state();
        let n = self.n;
        let mut conf = String::from(
            "totem {\n    version: 2\n    cluster_name: cloudvip-test\n    transport: knet\n    crypto_cipher: none\n    crypto_hash: none\n    token: 1000\n}\nnodelist {\n",
        );
        for i in 1..=n {
            conf += &format!(
                "    node {{\n        ring0_addr: 10.66.0.{i}\n        name: node{i}\n        nodeid: {i}\n    }}\n"
            );
        }
        conf += "}\nquorum {\n    provider: corosync_votequorum\n";
        if n == 2 {
            conf += "    two_node: 1\n";
        }
        conf += "}\nlogging {\n    to_logfile: yes\n    logfile: /var/log/corosync/corosync.log\n    to_stderr: no\n    to_syslog: no\n    timestamp: on\n}\n";
        std::fs::write(s.join("corosync.conf"), conf).unwrap();

        // The node's private /etc/hosts: the peers, and the clouds' API hosts = the emulator.
        let mut hosts = String::from("127.0.0.1 localhost\n");
        for i in 1..=n {
            hosts += &format!("10.66.0.{i} node{i}\n");
        }
        hosts += "169.254.169.254 metadata.google.internal\n";
        for h in CLOUD_HOSTS {
            hosts += &format!("10.66.0.254 {h}\n");
        }
        std::fs::write(s.join("hosts"), hosts).unwrap();
        // The node's private system trust store: only the emulator's test CA.
        std::fs::create_dir_all(s.join("certs")).unwrap();
        std::fs::copy(s.join("ca.pem"), s.join("certs/ca-certificates.crt")).unwrap();
        std::fs::write(s.join("node-init.sh"), NODE_INIT).unwrap();

        // The CIB before start: short dc-deadtime, stickiness, fencing by fence_dummy (it
        // only pretends, but every fencing request is in the history).
        let cib = s.join("cib.xml");
        let empty = sh(&["cibadmin", "--empty"]);
        std::fs::write(&cib, empty).unwrap();
        let cib_s = cib.to_str().unwrap();
        let attr = |t: &str, name: &str, v: &str| {
            let out = Command::new("crm_attribute")
                .env("CIB_file", cib_s)
                .args(["-t", t, "-n", name, "-v", v])
                .output()
                .unwrap();
            assert!(out.status.success(), "crm_attribute {name}: {out:?}");
        };
        attr("crm_config", "stonith-enabled", "true");
        attr("crm_config", "dc-deadtime", "2s");
        let nodes: Vec<String> = (1..=n).map(|i| format!("node{i}")).collect();
        let fd = format!(
            r#"<primitive id="fd" class="stonith" type="fence_dummy"><instance_attributes id="fd-ia"><nvpair id="fd-hl" name="pcmk_host_list" value="{}"/><nvpair id="fd-sf" name="status_file" value="{}/fence_dummy.status"/></instance_attributes><operations><op id="fd-mon" name="monitor" interval="60s"/></operations></primitive>"#,
            nodes.join(" "),
            s.display()
        );
        let stick = r#"<rsc_defaults><meta_attributes id="rsc-options"><nvpair id="rsc-options-stickiness" name="resource-stickiness" value="100"/></meta_attributes></rsc_defaults>"#;
        for (section, xml) in [("resources", fd.as_str()), ("configuration", stick)] {
            let out = Command::new("cibadmin")
                .env("CIB_file", cib_s)
                .args(["-C", "-o", section, "-X", xml])
                .output()
                .unwrap();
            assert!(out.status.success(), "cibadmin: {out:?}");
        }

        for i in 1..=n {
            let d = self.node_dir(i);
            for p in [
                "etc/corosync/uidgid.d",
                "var/lib/corosync",
                "var/log/corosync",
                "var/log/pacemaker",
                "var/lib/pacemaker/cib",
                "var/lib/pacemaker/pengine",
                "var/lib/pacemaker/blackbox",
                "var/lib/pacemaker/cores",
                "var/lib/pacemaker/bundles",
            ] {
                std::fs::create_dir_all(d.join(p)).unwrap();
            }
            std::fs::copy(
                s.join("corosync.conf"),
                d.join("etc/corosync/corosync.conf"),
            )
            .unwrap();
            let dd = d.display();
            sh(&[
                "install",
                "-m",
                "0600",
                "-o",
                "hacluster",
                "-g",
                "haclient",
                cib_s,
                &format!("{dd}/var/lib/pacemaker/cib/cib.xml"),
            ]);
            sh(&[
                "chown",
                "-R",
                "hacluster:haclient",
                &format!("{dd}/var/lib/pacemaker"),
                &format!("{dd}/var/log/pacemaker"),
            ]);
            sh(&["chmod", "0770", &format!("{dd}/var/log/pacemaker")]);
        }
        // Pacemaker's daemons (user hacluster) must reach their bind-mount sources.
        sh(&["chmod", "0755", s.to_str().unwrap()]);
    }

    /// Boot node `i`: a fresh mount+UTS namespace inside its network namespace, daemons
    /// with a clean environment. Returns at once.
    pub fn start_node(&mut self, i: usize) {
        let ns = self.lab.ns(i).to_owned();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.node_dir(i).join("init.log"))
            .unwrap();
        let script = self.state().join("node-init.sh");
        let child = Command::new("setsid")
            .args(["ip", "netns", "exec", &ns])
            .args([
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--",
            ])
            .args(["env", "-i", CLEAN_PATH, "/bin/bash"])
            .arg(&script)
            .arg(i.to_string())
            .arg(self.state())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start a node");
        self.children[i - 1] = Some(child);
    }

    fn init_pid(&self, i: usize) -> u32 {
        self.children[i - 1]
            .as_ref()
            .unwrap_or_else(|| panic!("node{i} is not running"))
            .id()
    }

    /// Run a command on node `i` (its net, mount and UTS namespaces), clean environment.
    pub fn on_raw(&self, i: usize, args: &[&str]) -> Output {
        let pid = self.init_pid(i).to_string();
        Command::new("nsenter")
            .args(["-t", &pid, "-n", "-m", "-u", "--", "env", "-i", CLEAN_PATH])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("nsenter {args:?}: {e}"))
    }

    /// Like [`on_raw`](Self::on_raw), panicking with the output when it fails.
    pub fn on(&self, i: usize, args: &[&str]) -> String {
        let out = self.on_raw(i, args);
        assert!(
            out.status.success(),
            "node{i}: {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Node `i` is set up as production would be: none of its processes (Pacemaker's
    /// daemons, whose environment the agent inherits) carries a trust-store or proxy
    /// variable of the shell that started the test, its system trust store holds only the
    /// emulator's test CA, and it resolves the clouds' names to the emulator.
    pub fn assert_production_env(&self, i: usize) {
        let me = std::process::id().to_string();
        let pids = sh(&["ip", "netns", "pids", self.lab.ns(i)]);
        let mut seen = 0;
        for pid in pids.split_whitespace().filter(|p| *p != me) {
            let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            seen += 1;
            for var in env.split(|b| *b == 0).map(String::from_utf8_lossy) {
                let key = var.split('=').next().unwrap_or("").to_ascii_uppercase();
                assert!(
                    !(key.contains("SSL")
                        || key.contains("CA_BUNDLE")
                        || key.contains("CA_CERTS")
                        || key.contains("PROXY")),
                    "node{i}: {} (pid {pid}) has {var} from the test's shell",
                    comm.trim()
                );
                // Pacemaker passes its agents none: they must not depend on it.
                assert!(
                    key != "HA_RSCTMP",
                    "node{i}: {} (pid {pid}) has {var}",
                    comm.trim()
                );
            }
        }
        assert!(seen >= 5, "node{i}: only {seen} processes");
        let store = self.on(i, &["ls", "/etc/ssl/certs"]);
        assert_eq!(store.trim(), "ca-certificates.crt", "node{i}'s trust store");
        let ca = std::fs::read_to_string(self.state().join("ca.pem")).unwrap();
        let theirs = self.on(i, &["cat", "/etc/ssl/certs/ca-certificates.crt"]);
        assert_eq!(theirs, ca, "node{i}'s trust store is not the test CA");
        for h in CLOUD_HOSTS {
            let out = self.on(i, &["getent", "hosts", h]);
            assert!(out.starts_with("10.66.0.254 "), "node{i}: {h} -> {out}");
        }
    }

    /// The environment of a cloudvip agent that Pacemaker runs on one of `nodes`, caught
    /// while it runs (`/proc/<pid>/environ` of a process whose executable is the installed
    /// agent), polling until `until`.
    pub fn agent_environ(&self, nodes: &[usize], until: Instant) -> Option<Vec<String>> {
        let me = std::process::id().to_string();
        while Instant::now() < until {
            for &i in nodes {
                let pids = sh(&["ip", "netns", "pids", self.lab.ns(i)]);
                for pid in pids.split_whitespace().filter(|p| *p != me) {
                    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
                    let agent = format!("{}/rust/cloudvip", crate::ocf_root::SYSTEM_RESOURCE_D);
                    if exe != Path::new(&agent) {
                        continue;
                    }
                    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
                        continue;
                    };
                    let vars: Vec<String> = env
                        .split(|b| *b == 0)
                        .filter(|v| !v.is_empty())
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .collect();
                    // A process that has exec'd the agent but not yet had its environment
                    // read is fine too: execve replaced it whole.
                    if vars.iter().any(|v| v.starts_with("OCF_RESOURCE_INSTANCE=")) {
                        return Some(vars);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// A node to run cluster CLIs on: the first that is running.
    fn cli_node(&self) -> usize {
        (1..=self.n)
            .find(|&i| self.children[i - 1].is_some())
            .expect("no node running")
    }

    pub fn cli(&self, args: &[&str]) -> String {
        self.on(self.cli_node(), args)
    }

    /// `crm_mon -1 --output-as=xml`.
    pub fn crm_mon(&self) -> String {
        let out = self.on_raw(self.cli_node(), &["crm_mon", "-1", "--output-as=xml"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn online(&self) -> Vec<String> {
        let x = self.crm_mon();
        let mut v = Vec::new();
        for chunk in x.split("<node name=\"").skip(1) {
            let name = chunk.split('"').next().unwrap_or("").to_owned();
            let tag = chunk.split('>').next().unwrap_or("");
            if tag.contains("online=\"true\"") {
                v.push(name);
            }
        }
        v
    }

    /// Wait until `n` nodes are online and a DC is elected.
    pub fn wait_online(&self, n: usize, within: Duration) {
        let end = Instant::now() + within;
        loop {
            let x = self.crm_mon();
            if x.contains("<current_dc present=\"true\"") && self.online().len() >= n {
                return;
            }
            assert!(
                Instant::now() < end,
                "the cluster did not form ({n} nodes online + DC) within {within:?}:\n{x}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Where Pacemaker says the VIP runs (`crm_resource --locate`).
    pub fn locate(&self) -> Vec<String> {
        let out = self.on_raw(self.cli_node(), &["crm_resource", "--locate", "-r", "VIP"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut v: Vec<String> = text
            .lines()
            .filter_map(|l| l.split_once("is running on:").map(|(_, n)| n.trim()))
            .map(|n| n.split_whitespace().next().unwrap_or("").to_owned())
            .collect();
        v.sort();
        v
    }

    /// Wait until Pacemaker runs the VIP on `node` only; panics with crm_mon otherwise.
    pub fn wait_located(&self, node: usize, within: Duration) {
        let want = vec![format!("node{node}")];
        let end = Instant::now() + within;
        loop {
            if self.locate() == want {
                return;
            }
            assert!(
                Instant::now() < end,
                "Pacemaker does not run VIP on node{node} after {within:?}: {:?}\n{}",
                self.locate(),
                self.crm_mon()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The one node running the VIP, waiting for Pacemaker to place it.
    pub fn wait_placed(&self, within: Duration) -> usize {
        let end = Instant::now() + within;
        loop {
            let l = self.locate();
            if l.len() == 1 {
                return l[0].trim_start_matches("node").parse().unwrap();
            }
            assert!(
                Instant::now() < end,
                "VIP not placed after {within:?}: {l:?}\n{}",
                self.crm_mon()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The failed actions crm_mon lists (`<failure .../>` elements).
    pub fn failures(&self) -> Vec<String> {
        let x = self.crm_mon();
        x.split("<failure ")
            .skip(1)
            .map(|c| c.split("/>").next().unwrap_or("").to_owned())
            .collect()
    }

    /// Fencing events so far (fence_dummy only pretends, the history is real).
    pub fn fence_events(&self) -> usize {
        let out = self.on_raw(
            self.cli_node(),
            &["stonith_admin", "--history", "*", "--output-as=xml"],
        );
        String::from_utf8_lossy(&out.stdout)
            .matches("<fence_event")
            .count()
    }

    /// Wait for the cluster to settle (no pending actions).
    pub fn settle(&self) {
        let _ = self.on_raw(self.cli_node(), &["crm_resource", "--wait", "-T", "60s"]);
    }

    /// A hard crash: link down, every process of the node's namespace SIGKILLed by PID.
    pub fn crash(&mut self, i: usize) {
        let ns = self.lab.ns(i).to_owned();
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "down"]);
        kill_ns(&ns);
        if let Some(mut c) = self.children[i - 1].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// "Reboot" a crashed node: flush its addresses (the VIP left there by the crash goes,
    /// as on a real reboot), link up, start the daemons.
    pub fn restart(&mut self, i: usize) {
        let ns = self.lab.ns(i).to_owned();
        sh(&["ip", "-n", &ns, "addr", "flush", "dev", "eth0"]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("10.66.0.{i}/24"),
            "dev",
            "eth0",
        ]);
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        // The flush took the route to the metadata server with it.
        sh(&[
            "ip",
            "-n",
            &ns,
            "route",
            "replace",
            "169.254.169.254/32",
            "via",
            "10.66.0.254",
        ]);
        self.start_node(i);
    }

    // ---- the emulator ------------------------------------------------------------------

    /// The admin API (plain HTTP, inside the cloud namespace this thread entered).
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        crate::clouds::admin(&self.admin, method, path, body)
    }

    /// The admin API's address, for a thread of the cloud namespace.
    pub fn admin_url(&self) -> String {
        self.admin.clone()
    }

    /// Keep `g` running until the cluster goes (before the emulator stops).
    pub fn guard(&mut self, g: Box<dyn Send>) {
        self.guards.push(g);
    }

    pub fn fault(&self, rule: Value) {
        self.admin("POST", "/admin/faults", Some(rule));
    }

    pub fn clear_faults(&self) {
        self.admin("DELETE", "/admin/faults", None);
    }

    /// Total hits of every fault rule.
    pub fn fault_hits(&self) -> u64 {
        self.admin("GET", "/admin/faults", None)["faults"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| f["hits"].as_u64().unwrap_or(0))
            .sum()
    }

    // ---- the client ---------------------------------------------------------------------

    /// Does the client get an echo reply from the VIP?
    pub fn client_pings(&self) -> bool {
        crate::util::sh_ok(&[
            "ip",
            "netns",
            "exec",
            self.lab.ns(self.client()),
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            VIP,
        ])
    }

    /// Wait until the client pings the VIP, reaches node `i`'s service through it by TCP
    /// and has node `i`'s MAC for it; through a public address: by TCP.
    pub fn wait_client_sees(&self, i: usize, within: Duration) {
        let end = Instant::now() + within;
        let want = format!("node{i}");
        let mac = Lab::mac(i);
        let direct = self.client_addr == VIP;
        loop {
            let ping = !direct || self.client_pings();
            let tcp = probe_in(self.lab.ns(self.client()), self.client_addr);
            let neigh = match direct {
                true => self.lab.neigh(self.client(), VIP),
                false => Some(mac.clone()),
            };
            if ping && tcp.as_deref() == Some(want.as_str()) && neigh.as_deref() == Some(&mac) {
                return;
            }
            assert!(
                Instant::now() < end,
                "the client does not reach the VIP on node{i} after {within:?}: ping {ping}, \
                 TCP answered by {tcp:?}, neighbour {neigh:?} (node{i} is {mac})"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Start probing the VIP from the client continuously.
    pub fn prober(&self) -> Prober {
        Prober::start(self.lab.ns(self.client()), self.client_addr)
    }

    fn dump(&self) {
        eprintln!("==== cluster state at failure ====");
        if self.children.iter().any(Option::is_some) {
            eprintln!("{}", self.crm_mon());
        }
        for i in 1..=self.n {
            let log = self.node_dir(i).join("var/log/pacemaker/pacemaker.log");
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| {
                    l.contains("cloudvip(")
                        || l.contains("error:")
                        || l.contains("warning:")
                        || l.contains("Result of")
                })
                .collect();
            eprintln!("---- node{i}: last agent/error lines of pacemaker.log ----");
            for l in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{l}");
            }
        }
    }
}

impl Cluster {
    /// The emulator's request log, or nothing (never panics: it runs in `drop`).
    fn request_log(&self) -> Option<Vec<Value>> {
        let mut s = TcpStream::connect(&self.admin).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET /admin/log HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.admin
        )
        .ok()?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).ok()?;
        let (_, body) = raw.split_once("\r\n\r\n")?;
        let v: Value = serde_json::from_str(body).ok()?;
        v["entries"].as_array().cloned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        if let Some(log) = self.request_log() {
            crate::secret_scan::dump_request_log(&log, self.state());
        }
        for s in &mut self.services {
            s.stop();
        }
        self.guards.clear();
        for i in 1..=self.n {
            kill_ns(self.lab.ns(i));
            if let Some(mut c) = self.children[i - 1].take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // Then the emulator; then (field order) the Lab removes the namespaces.
        drop(self.sim.take());
        // Pacemaker's, Corosync's and the emulator's logs, for the secret scan.
        crate::secret_scan::keep_logs("cluster", self.state());
    }
}

/// SIGKILL every process of network namespace `ns` (never this test process), by PID,
/// and wait (bounded) until none is left.
pub fn kill_ns(ns: &str) {
    let me = std::process::id().to_string();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("ip").args(["netns", "pids", ns]).output();
        let pids: Vec<i32> = out
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
            .split_whitespace()
            .filter(|p| *p != me)
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() || Instant::now() > end {
            return;
        }
        for pid in pids {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The node's service: a TCP listener thread inside the node's network namespace that
/// answers its node name; it stops when told or after 10 minutes / 100 000 connections.
struct Service {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Service {
    fn start(ns: &str, name: &str) -> Service {
        let stop = Arc::new(AtomicBool::new(false));
        let (ns, name, flag) = (ns.to_owned(), name.to_owned(), stop.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            Lab::enter(&ns);
            let l = TcpListener::bind(("0.0.0.0", PORT)).expect("bind the node service");
            l.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            let end = Instant::now() + Duration::from_secs(600);
            let mut served = 0;
            while !flag.load(Ordering::SeqCst) && Instant::now() < end && served < 100_000 {
                match l.accept() {
                    Ok((mut s, _)) => {
                        served += 1;
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                        let _ = writeln!(s, "{name}");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("node service did not start");
        Service {
            stop,
            handle: Some(handle),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// One TCP probe of the VIP's service at `addr` from inside `ns` (a short-lived thread
/// enters it).
pub fn probe_in(ns: &str, addr: &'static str) -> Option<String> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        Lab::enter(&ns);
        probe(addr)
    })
    .join()
    .unwrap()
}

fn probe(addr: &str) -> Option<String> {
    let addr: SocketAddr = format!("{addr}:{PORT}").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let name = buf.trim().to_owned();
    (!name.is_empty()).then_some(name)
}

pub type Samples = Arc<Mutex<Vec<(Instant, Option<String>)>>>;

/// The client connecting to the VIP every ~20 ms from its namespace, recording who
/// answered; stops when dropped/finished or after 5 minutes.
pub struct Prober {
    stop: Arc<AtomicBool>,
    samples: Samples,
    handle: Option<JoinHandle<()>>,
}

impl Prober {
    fn start(ns: &str, addr: &'static str) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let samples: Samples = Arc::default();
        let (ns, flag, out) = (ns.to_owned(), stop.clone(), samples.clone());
        let handle = std::thread::spawn(move || {
            Lab::enter(&ns);
            let end = Instant::now() + Duration::from_secs(300);
            while !flag.load(Ordering::SeqCst) && Instant::now() < end {
                let t = Instant::now();
                let who = probe(addr);
                out.lock().unwrap().push((t, who));
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Prober {
            stop,
            samples,
            handle: Some(handle),
        }
    }

    /// Wait (bounded) until some probe after `since` was answered by `node`.
    pub fn wait_answer(&self, node: usize, since: Instant, within: Duration) -> bool {
        let want = format!("node{node}");
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self
                .samples
                .lock()
                .unwrap()
                .iter()
                .any(|(t, w)| *t >= since && w.as_deref() == Some(want.as_str()))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Stop and return every sample.
    pub fn finish(mut self) -> Vec<(Instant, Option<String>)> {
        self.halt();
        std::mem::take(&mut *self.samples.lock().unwrap())
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The client-observed outage of a failover from node `from` to node `to`: from the last
/// answer by `from` to the first answer by `to` after it. Panics when the client never saw
/// both (the failover did not happen as seen from the client).
pub fn outage(samples: &[(Instant, Option<String>)], from: usize, to: usize) -> Duration {
    let (f, t) = (format!("node{from}"), format!("node{to}"));
    let first_to = samples
        .iter()
        .position(|(_, w)| w.as_deref() == Some(t.as_str()))
        .unwrap_or_else(|| panic!("the client never reached the VIP on {t}"));
    let last_from = samples[..first_to]
        .iter()
        .rposition(|(_, w)| w.as_deref() == Some(f.as_str()))
        .unwrap_or_else(|| panic!("the client never reached the VIP on {f} before {t}"));
    // Nobody else may have answered in between.
    for (_, w) in &samples[last_from..first_to] {
        assert!(
            w.is_none() || w.as_deref() == Some(f.as_str()),
            "a third node answered during the failover: {w:?}"
        );
    }
    samples[first_to].0 - samples[last_from].0
}
