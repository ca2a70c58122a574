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

    /// The cloudvip announcer processes (`__announce`) running in host `i`.
    pub fn announcers(&self, i: usize) -> Vec<u32> {
        let out = sh(&["ip", "netns", "pids", self.ns(i)]);
        out.split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"__announce"))
            })
            .collect()
    }

    /// ARP frames host `at` receives from MAC `from` during `window` (a packet socket in
    /// its namespace, on a thread of its own; bounded by the window).
    pub fn arp_frames_from(&self, at: usize, from: &str, window: Duration) -> usize {
        let ns = self.ns(at).to_owned();
        let mac: Vec<u8> = from
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        std::thread::spawn(move || {
            Lab::enter(&ns);
            let proto = (libc::ETH_P_ARP as u16).to_be();
            // SAFETY: socket() returns a descriptor or -1, checked below.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(proto)) };
            assert!(
                fd >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 50_000,
            };
            // SAFETY: the pointer and length describe `tv`.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as u32,
                )
            };
            let end = Instant::now() + window;
            let mut seen = 0;
            let mut buf = [0u8; 1500];
            while Instant::now() < end {
                // SAFETY: sockaddr_ll is plain data; zeroed is valid.
                let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                // SAFETY: buffer and address pointers/lengths describe live locals.
                let n = unsafe {
                    libc::recvfrom(
                        fd,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        (&mut sll as *mut libc::sockaddr_ll).cast(),
                        &mut len,
                    )
                };
                if n > 0 && sll.sll_addr[..6] == mac[..] {
                    seen += 1;
                }
            }
            // SAFETY: our descriptor.
            unsafe { libc::close(fd) };
            seen
        })
        .join()
        .unwrap()
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
            let _ = std::fs::remove_dir_all(crate::util::node_dir(ns));
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
