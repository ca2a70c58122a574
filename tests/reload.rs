//! OCF 1.1's reload-agent, the action Pacemaker 2.1 calls instead of a restart when only
//! reloadable parameters changed: the VIP never leaves the kernel (an `ip monitor` in the
//! node's namespace sees no deletion), the new announcement settings are what the client
//! receives, a bad new value fails without removing anything, and on a cloud it costs no
//! API call and changes nothing there. (Pacemaker's own choice of reload-agent over
//! stop/start is asserted by the cluster tests.)

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::gce::GceLab;
use crate::netns::Lab;
use crate::util::Agent;

const VIP: &str = "10.66.0.100";

/// `ip monitor address` inside a namespace, from now until `finish`.
pub struct AddrMonitor {
    child: Child,
    out: tempfile::NamedTempFile,
}

impl AddrMonitor {
    pub fn start(ns: &str) -> AddrMonitor {
        let out = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("ip")
            .args(["-n", ns, "monitor", "address"])
            .stdout(Stdio::from(out.reopen().unwrap()))
            .stderr(Stdio::null())
            .spawn()
            .expect("ip monitor");
        // Subscribed before anything happens.
        std::thread::sleep(Duration::from_millis(300));
        AddrMonitor { child, out }
    }

    /// Stop it (by its PID) and return what it printed.
    pub fn finish(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(self.out.path()).unwrap_or_default()
    }
}

impl Drop for AddrMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent(lab: &Lab, host: usize, action: &str, params: &[(&str, &str)]) -> Agent {
    Agent::new(action)
        .params(&[("cloud", "none"), ("ip", VIP), ("nic", "eth0")])
        .params(params)
        .netns(lab.ns(host))
}

#[test]
fn reload_agent_applies_new_announcements_without_touching_the_address() {
    let lab = Lab::new(3);
    let old = [
        ("arp_bg", "true"),
        ("arp_count", "60"),
        ("arp_interval", "100"),
    ];
    agent(&lab, 1, "start", &old).run().ok();
    assert!(lab.ping(3, VIP));
    assert_eq!(lab.announcers(1).len(), 1);

    // What `pcs resource update VIP arp_count=4 arp_interval=300` makes Pacemaker run.
    let new = [
        ("arp_bg", "true"),
        ("arp_count", "4"),
        ("arp_interval", "300"),
    ];
    let mon = AddrMonitor::start(lab.ns(1));
    agent(&lab, 1, "reload-agent", &new).run().ok();
    // The old announcer sent 10 a second for 6 s; the new one 3 more in 0.9 s.
    let during = lab.arp_frames_from(3, &Lab::mac(1), Duration::from_millis(1500));
    let after = lab.arp_frames_from(3, &Lab::mac(1), Duration::from_millis(1000));
    let events = mon.finish();
    assert!(
        !events.contains("Deleted"),
        "reload-agent removed an address:\n{events}"
    );
    assert!(
        (1..=4).contains(&during) && after == 0,
        "announcements after reload-agent: {during} then {after} (want the new 4 x 300 ms)"
    );
    assert_eq!(lab.addrs(1).matches("inet 10.66.0.100/32").count(), 1);
    assert!(lab.ping(3, VIP), "the client lost the VIP");
    agent(&lab, 1, "monitor", &new).run().ok();

    // A bad new value fails as validate-all would, and still removes nothing.
    let mon = AddrMonitor::start(lab.ns(1));
    agent(&lab, 1, "reload-agent", &[("arp_count", "1000")])
        .run()
        .expect(6, Some("arp_count"));
    assert!(!mon.finish().contains("Deleted"));
    assert!(lab.ping(3, VIP));

    // On a node without the VIP there is nothing to apply: nothing is added.
    agent(&lab, 2, "reload-agent", &new).run().ok();
    assert!(!lab.addrs(2).contains(VIP), "{}", lab.addrs(2));
    agent(&lab, 1, "stop", &new).run().ok();
    assert!(lab.announcers(1).is_empty());
}

#[test]
fn reload_agent_on_gce_costs_no_api_call_and_moves_nothing() {
    let g = GceLab::new();
    let ext = [("public_ip", "vip-ext")];
    // node-a holds the alias and the external IP in the world; start takes them as they are.
    g.agent(1, "start", &ext).run().ok();
    let before = (
        g.aliases("node-a"),
        g.aliases("node-b"),
        g.nat_ips("node-a"),
    );
    g.clear_log();
    let reloaded = [
        ("public_ip", "vip-ext"),
        ("arp_count", "3"),
        ("peers", "node-a,node-b"),
        ("restore_ephemeral_ip", "true"),
    ];
    g.agent(1, "reload-agent", &reloaded).run().ok();
    assert_eq!(
        g.api_calls(),
        0,
        "reload-agent called the API: {:?}",
        g.log()
    );
    assert!(g.holds_locally(1, "10.128.0.100"));
    assert_eq!(
        before,
        (
            g.aliases("node-a"),
            g.aliases("node-b"),
            g.nat_ips("node-a")
        )
    );
    // A new ca_bundle that cannot be read fails the reload (this node's setup), and the
    // VIP stays where it is.
    g.agent(1, "reload-agent", &ext)
        .param("ca_bundle", "/nonexistent/ca.pem")
        .run()
        .expect(5, Some("ca_bundle"));
    assert!(g.holds_locally(1, "10.128.0.100"));
    assert_eq!(g.api_calls(), 0);
}
