//! OS agents that remove or fight the VIP (src/os_agents.rs), seen by the real binary: a
//! node's fake unit and configuration files are laid over /etc, /usr/lib/systemd,
//! /usr/libexec and /var/lib by read-only overlays in a private mount namespace, and the agent runs in it
//! against the emulator. `start` warns (and still starts), `diagnose` fails with the fix;
//! without them, neither says a word about OS agents.

use std::path::Path;
use std::process::Command;

use crate::gce::GceLab;
use crate::oci::OciLab;
use crate::util::{Agent, Run};

/// A node's files under a temporary root, for the overlays.
struct Fake(tempfile::TempDir);

impl Fake {
    fn new() -> Fake {
        Fake(tempfile::tempdir().unwrap())
    }

    fn file(&self, rel: &str, text: &str) -> &Self {
        let p = self.0.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    /// What `systemctl enable` leaves: the unit file and a wants link to it.
    fn enabled_unit(&self, unit: &str, wanted_by: &str, text: &str) -> &Self {
        self.file(&format!("usr/lib/systemd/system/{unit}"), text);
        let link = self
            .0
            .path()
            .join(format!("etc/systemd/system/{wanted_by}.wants/{unit}"));
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(format!("/usr/lib/systemd/system/{unit}"), link).unwrap();
        self
    }

    /// `agent` run where the fake files lie over the real ones.
    fn run(&self, agent: &Agent) -> Run {
        run_over(self.0.path(), agent)
    }
}

fn run_over(fake: &Path, agent: &Agent) -> Run {
    let inner = agent.command();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "set -e; mount --make-rprivate /; \
             for d in etc usr/lib/systemd usr/libexec var/lib; do \
               if [ -d \"$FAKE/$d\" ] && [ -d \"/$d\" ]; then \
                 mount -t overlay cloudvip-fake -o lowerdir=\"$FAKE/$d:/$d\" \"/$d\"; \
               fi; \
             done; exec \"$@\"",
        )
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args())
        .env("FAKE", fake);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    Run::from(
        format!("[fake root {}] {:?}", fake.display(), inner),
        cmd.output().expect("cannot run the agent"),
    )
}

/// `start` over the fake files; its WARNING lines (from HA_LOGFILE). The start must work.
fn start_warnings(fake: &Fake, start: Agent) -> Vec<String> {
    let log = tempfile::NamedTempFile::new().unwrap();
    fake.run(&start.env("HA_LOGFILE", log.path().to_str().unwrap()))
        .ok();
    warnings(log.path())
}

fn warnings(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("WARNING: "))
        .map(str::to_owned)
        .collect()
}

/// The diagnose line of the `os agents` steps, and the line after each (its fix).
fn os_agent_steps(r: &Run) -> Vec<(String, String)> {
    let lines: Vec<&str> = r.stdout.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains(". os agents"))
        .map(|(i, l)| (l.to_string(), lines.get(i + 1).unwrap_or(&"").to_string()))
        .collect()
}

const NM_SERVICE: &str = "[Unit]\nDescription=Automatically configure NetworkManager in cloud\n\n\
                          [Service]\nType=oneshot\nExecStart=/usr/libexec/nm-cloud-setup\n";

#[test]
fn oci_nm_cloud_setup_and_ocid_are_warned_about_and_diagnosed() {
    let o = OciLab::new();
    let fake = Fake::new();
    // A RHEL image on OCI with nm-cloud-setup switched on for OCI (its documented drop-in),
    // and Oracle Linux's ocid running with the default [vnic] enabled.
    fake.enabled_unit(
        "nm-cloud-setup.timer",
        "timers.target",
        "[Timer]\nOnBootSec=5min\n",
    )
    .file("usr/lib/systemd/system/nm-cloud-setup.service", NM_SERVICE)
    .file(
        "etc/systemd/system/nm-cloud-setup.service.d/10-enable-oci.conf",
        "[Service]\nEnvironment=NM_CLOUD_SETUP_OCI=yes\n",
    )
    .enabled_unit(
        "ocid.service",
        "multi-user.target",
        "[Service]\nExecStart=/usr/libexec/ocid\n",
    )
    .file(
        "etc/oci-utils.conf.d/00-oci-utils.conf",
        "[vnic]\n; enabled = true\n",
    );
    let w = start_warnings(&fake, o.agent(2, "start", &[]));
    let nm = w
        .iter()
        .find(|l| {
            l.contains(
                "WARNING: nm-cloud-setup (nm-cloud-setup.timer enabled, NM_CLOUD_SETUP_OCI=yes)",
            )
        })
        .unwrap_or_else(|| panic!("no nm-cloud-setup warning: {w:#?}"));
    assert!(nm.contains("which removes 10.0.1.100"), "{nm}");
    assert!(
        nm.contains("fix: `systemctl disable --now nm-cloud-setup.timer nm-cloud-setup.service`"),
        "{nm}"
    );
    let ocid = w
        .iter()
        .find(|l| l.contains("WARNING: ocid (enabled, [vnic] enabled=true (default))"))
        .unwrap_or_else(|| panic!("no ocid warning: {w:#?}"));
    assert!(
        ocid.contains("`oci-network-config --exclude 10.0.1.100`"),
        "{ocid}"
    );

    // diagnose: both fail, each with its fix, and diagnose exits 1.
    let d = fake.run(&o.agent(2, "diagnose", &[]));
    println!("{}", d.stdout);
    assert_eq!(d.code, 1, "{}\n{}", d.stdout, d.stderr);
    let steps = os_agent_steps(&d);
    assert_eq!(steps.len(), 2, "{}", d.stdout);
    assert!(
        steps[0].0.contains("FAIL") && steps[0].0.contains("nm-cloud-setup"),
        "{steps:?}"
    );
    assert!(steps[0].1.contains("fix:") && steps[0].1.contains("nm-cloud-setup(8)"));
    assert!(
        steps[1].0.contains("FAIL") && steps[1].0.contains("ocid"),
        "{steps:?}"
    );

    // Configured as the vendors say (the skip flag; the VIP excluded): no warning, ok.
    fake.file(
        "etc/NetworkManager/system-connections/eth0.nmconnection",
        "[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n\n\
         [user]\norg.freedesktop.nm-cloud-setup.skip=yes\n",
    )
    .file(
        "var/lib/oci-utils/vnic-info",
        r#"{"exclude": ["10.0.1.100"], "deconfig": [], "sec_priv_ip": []}"#,
    );
    let w = start_warnings(&fake, o.agent(2, "start", &[]));
    assert!(w.is_empty(), "{w:#?}");
    let d = fake.run(&o.agent(2, "diagnose", &[]));
    let steps = os_agent_steps(&d);
    assert!(
        steps.len() == 2 && steps.iter().all(|(l, _)| l.contains(" ok ")),
        "{}",
        d.stdout
    );
}

#[test]
fn gce_cloud_netconfig_and_guest_agent_without_alias_routes() {
    let g = GceLab::new();
    let fake = Fake::new();
    // SLES on GCE: cloud-netconfig manages eth0; the guest agent with alias routes off.
    fake.file(
        "usr/libexec/netconfig/netconfig.d/cloud-netconfig",
        "#!/bin/bash\n",
    )
    .file(
        "etc/sysconfig/network/ifcfg-eth0",
        "BOOTPROTO='dhcp'\nSTARTMODE='auto'\nCLOUD_NETCONFIG_MANAGE='yes'\n",
    )
    .enabled_unit(
        "google-guest-agent.service",
        "multi-user.target",
        "[Service]\nExecStart=/usr/bin/google_guest_agent\n",
    )
    .file(
        "etc/default/instance_configs.cfg",
        "[IpForwarding]\nip_aliases = false\n",
    );
    let w = start_warnings(&fake, g.agent(2, "start", &[]));
    assert!(
        w.iter().any(|l| l.contains("WARNING: cloud-netconfig (installed, CLOUD_NETCONFIG_MANAGE=\"yes\" from /etc/sysconfig/network/ifcfg-eth0)")
            && l.contains("fix: set CLOUD_NETCONFIG_MANAGE='no' in /etc/sysconfig/network/ifcfg-eth0")),
        "{w:#?}"
    );
    // With cloudvip adding the address itself, the guest agent's alias routes do not matter.
    assert!(
        !w.iter().any(|l| l.contains("google-guest-agent")),
        "{w:#?}"
    );
    g.agent(2, "stop", &[]).run().ok();

    // local_mode=none relies on the guest agent's alias route, which is off here.
    let w = start_warnings(&fake, g.agent(2, "start", &[("local_mode", "none")]));
    assert!(
        w.iter().any(
            |l| l.contains("WARNING: google-guest-agent (enabled, ip_aliases=false")
                && l.contains("nothing makes this node accept 10.128.0.100")
        ),
        "{w:#?}"
    );
    let d = fake.run(&g.agent(2, "diagnose", &[("local_mode", "none")]));
    let steps = os_agent_steps(&d);
    assert!(
        steps.iter().any(|(l, fix)| l.contains("FAIL")
            && l.contains("google-guest-agent")
            && fix.contains("ip_aliases = true")),
        "{}",
        d.stdout
    );
}

#[test]
fn a_clean_node_has_no_os_agent_warning() {
    let o = OciLab::new();
    let fake = Fake::new();
    fake.file("etc/.keep", "");
    let w = start_warnings(&fake, o.agent(2, "start", &[]));
    assert!(
        !w.iter()
            .any(|l| ["nm-cloud-setup", "ocid", "cloud-netconfig"]
                .iter()
                .any(|a| l.contains(a))),
        "{w:#?}"
    );
    let d = fake.run(&o.agent(2, "diagnose", &[]));
    let steps = os_agent_steps(&d);
    assert!(
        steps.len() == 1 && steps[0].0.contains(" ok ") && steps[0].0.contains("no nm-cloud-setup"),
        "{}",
        d.stdout
    );
}
