//! A throw-away L2 segment: one network namespace per host (node A, node B, client C...)
//! joined by a bridge that lives in a namespace of its own, so the root namespace is never
//! touched. Host i gets eth0 with MAC 02:66:00:00:00:0i, 10.66.0.i/24 and fd00:66::i/64.
//! Everything is deleted on drop, processes left inside killed by PID.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::util::{require_root, sh, sh_ok};

static SEQ: AtomicU32 = AtomicU32::new(0);

pub struct Lab {
    hosts: Vec<String>,
    bridge: String,
}

impl Lab {
    /// `n` hosts on one bridge.
    pub fn new(n: usize) -> Lab {
        require_root();
        let tag = format!(
            "cvt{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let bridge = format!("{tag}-br");
        let mut lab = Lab {
            hosts: Vec::new(),
            bridge: bridge.clone(),
        };
        sh(&["ip", "netns", "add", &bridge]);
        sh(&["ip", "-n", &bridge, "link", "add", "br0", "type", "bridge"]);
        sh(&[
            "ip",
            "-n",
            &bridge,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ]);
        sh(&["ip", "-n", &bridge, "link", "set", "br0", "up"]);
        for i in 1..=n {
            let ns = format!("{tag}-{i}");
            sh(&["ip", "netns", "add", &ns]);
            lab.hosts.push(ns.clone());
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            let port = format!("p{i}");
            let mac = Lab::mac(i);
            sh(&[
                "ip", "-n", &bridge, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "address", &mac]);
            sh(&[
                "ip", "-n", &bridge, "link", "set", &port, "master", "br0", "up",
            ]);
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
            sh(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("fd00:66::{i}/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        }
        lab
    }

    /// The namespace of host `i` (1-based).
    pub fn ns(&self, i: usize) -> &str {
        &self.hosts[i - 1]
    }

    pub fn mac(i: usize) -> String {
        format!("02:66:00:00:00:{i:02x}")
    }

    /// Does `from` get an answer from `ip`? One echo, one second.
    pub fn ping(&self, from: usize, ip: &str) -> bool {
        sh_ok(&[
            "ip",
            "netns",
            "exec",
            self.ns(from),
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            ip,
        ])
    }

    /// The MAC address host `from` has cached for `ip`, if any.
    pub fn neigh(&self, from: usize, ip: &str) -> Option<String> {
        let out = sh(&["ip", "-n", self.ns(from), "neigh", "show", ip]);
        let mut words = out.split_whitespace();
        while let Some(w) = words.next() {
            if w == "lladdr" {
                return words.next().map(str::to_owned);
            }
        }
        None
    }

    /// Wait (bounded) until `from`'s neighbour entry for `ip` is `mac`.
    pub fn wait_neigh(&self, from: usize, ip: &str, mac: &str, within: Duration) -> bool {
        let end = Instant::now() + within;
        loop {
            if self.neigh(from, ip).as_deref() == Some(mac) {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ip -o addr show dev eth0` inside host `i`.
    pub fn addrs(&self, i: usize) -> String {
        sh(&["ip", "-n", self.ns(i), "-o", "addr", "show"])
    }

    pub fn local_routes(&self, i: usize) -> String {
        sh(&["ip", "-n", self.ns(i), "route", "show", "table", "local"])
            + &sh(&[
                "ip",
                "-n",
                self.ns(i),
                "-6",
                "route",
                "show",
                "table",
                "local",
            ])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.hosts.iter().chain(std::iter::once(&self.bridge)) {
            // Background announcers may still run inside: end them by PID.
            if let Ok(out) = std::process::Command::new("ip")
                .args(["netns", "pids", ns])
                .output()
            {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    // A test that entered the cloud namespace is listed there itself.
                    if let Ok(pid) = pid.parse::<i32>().map(|p| p as u32).and_then(|p| {
                        if p == std::process::id() {
                            "x".parse::<i32>()
                        } else {
                            Ok(p as i32)
                        }
                    }) {
                        // SAFETY: kill has no memory-safety preconditions.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .status();
        }
    }
}

impl Lab {
    /// Add the "cloud" host: 10.66.0.254 on the segment plus the link-local metadata
    /// address 169.254.169.254, which every other host reaches through it (as a VM reaches
    /// its metadata server through the virtual gateway). Returns its namespace.
    pub fn add_cloud(&mut self) -> String {
        let ns = format!("{}-cloud", self.bridge.trim_end_matches("-br"));
        sh(&["ip", "netns", "add", &ns]);
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        sh(&[
            "ip",
            "-n",
            &self.bridge,
            "link",
            "add",
            "pcloud",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ]);
        sh(&[
            "ip",
            "-n",
            &self.bridge,
            "link",
            "set",
            "pcloud",
            "master",
            "br0",
            "up",
        ]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            "10.66.0.254/24",
            "dev",
            "eth0",
        ]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            "169.254.169.254/32",
            "dev",
            "eth0",
        ]);
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        for host in &self.hosts {
            sh(&[
                "ip",
                "-n",
                host,
                "route",
                "add",
                "169.254.169.254/32",
                "via",
                "10.66.0.254",
            ]);
        }
        self.hosts.push(ns.clone());
        ns
    }

    /// Move the calling thread into namespace `ns`: sockets it creates from now on (an
    /// in-process emulator's listeners, the test's admin client) live there. Per thread:
    /// every test runs in its own thread (and, under nextest, its own process).
    pub fn enter(ns: &str) {
        let f = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns file");
        // SAFETY: setns on a valid namespace fd; affects only this thread.
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {ns}: {}", std::io::Error::last_os_error());
    }
}
