//! Other software on the node that configures addresses from the cloud's metadata and can
//! remove, re-add or fight over the VIP behind Pacemaker's back: NetworkManager's
//! nm-cloud-setup, SUSE's cloud-netconfig, the Google guest agent's alias routes and
//! Oracle's ocid (oci-utils). Users lose VIPs to them; the SAP automation switches them
//! off (community.sap_install PR #439: nm-cloud-setup "keeps deleting the IP"; SUSE
//! disables cloud-netconfig "to avoid unexpected cluster failovers",
//! SUSE/ha-sap-terraform-deployments #252).
//!
//! Everything is read from files under a root directory (`/` in production, a private
//! tree in tests): systemd unit files and their `*.wants` links, drop-ins, the tools'
//! configuration files, and `proc/<pid>/cmdline` for running daemons. Nothing is
//! executed and nothing here can fail an action: what cannot be read counts as absent.
//! `diagnose` reports every finding with its fix; `start` logs a WARNING for each one that
//! fights the VIP.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::cloud::Step;
use crate::params::LocalMode;

/// The cloud the node runs on, as these tools know it: each backend names its own
/// (`cloud::registry::Backend::platform`).
pub use crate::cloud::registry::Platform;

/// What the VIP looks like on this node.
pub struct Vip<'a> {
    pub ip: IpAddr,
    pub nic: &'a str,
    pub platform: Platform,
    pub local_mode: LocalMode,
}

impl<'a> Vip<'a> {
    /// The VIP of these parameters on `nic` (for `auto`, the cloud the DMI strings say).
    pub fn of(params: &crate::params::Params, nic: &'a str) -> Vip<'a> {
        Vip {
            ip: params.ip,
            nic,
            platform: crate::cloud::resolve_kind(params.cloud).platform(),
            local_mode: params.local_mode,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Risk {
    /// It will remove or re-add the VIP, or leave it unconfigured: fix before relying on
    /// the VIP.
    Fights,
    /// Active, and compatible with cloudvip as configured.
    Compatible,
}

#[derive(Clone, Debug)]
pub struct Finding {
    pub agent: &'static str,
    pub risk: Risk,
    /// What was found on this node (units enabled, settings).
    pub found: String,
    /// What it does to the VIP.
    pub effect: String,
    /// How to configure it, when it fights.
    pub fix: String,
    /// The vendor's documentation of that behaviour and setting.
    pub source: &'static str,
}

impl Finding {
    /// One line for the log.
    pub fn line(&self) -> String {
        match self.risk {
            Risk::Fights => format!(
                "{} ({}) {}; fix: {} [{}]",
                self.agent, self.found, self.effect, self.fix, self.source
            ),
            Risk::Compatible => format!("{} ({}) {}", self.agent, self.found, self.effect),
        }
    }
}

/// Every OS agent found under `root` that touches addresses on `vip`'s platform.
pub fn inspect(root: &Path, vip: &Vip) -> Vec<Finding> {
    let node = Node::new(root);
    [
        nm_cloud_setup(&node, vip),
        cloud_netconfig(&node, vip),
        google_guest_agent(&node, vip),
        ocid(&node, vip),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `start`: a WARNING for each agent that fights the VIP (start goes on: the VIP works
/// until the agent's next run, and the admin has to change the OS, not the resource).
pub fn warn_at_start(root: &Path, vip: &Vip) {
    for f in inspect(root, vip) {
        if f.risk == Risk::Fights {
            log::warn!("{}", f.line());
        }
    }
}

/// `diagnose`: one step per finding (a failure with its fix when it fights the VIP), or
/// one passing step when none is active.
pub fn steps(root: &Path, vip: &Vip) -> Vec<Step> {
    let found = inspect(root, vip);
    if found.is_empty() {
        return vec![Step::pass(
            "os agents",
            "no nm-cloud-setup, cloud-netconfig, guest-agent alias handling or ocid that \
             would touch the VIP",
        )];
    }
    found
        .into_iter()
        .map(|f| match f.risk {
            Risk::Fights => Step::fail(
                "os agents",
                format!("{} ({}) {}", f.agent, f.found, f.effect),
                format!("{} [{}]", f.fix, f.source),
            ),
            Risk::Compatible => Step::pass("os agents", f.line()),
        })
        .collect()
}

const NM_CLOUD_SETUP_DOC: &str = "nm-cloud-setup(8)";
const CLOUD_NETCONFIG_DOC: &str = "SUSE-Enceladus/cloud-netconfig README, Configuration";
const GUEST_AGENT_DOC: &str = "GoogleCloudPlatform/guest-agent README, Configuration";
const OCID_DOC: &str = "ocid(8), oci-network-config(1), /etc/oci-utils.conf.d/00-oci-utils.conf";

/// NetworkManager's nm-cloud-setup: with the provider of this cloud enabled it sets the
/// runtime addresses of every NIC to those the metadata lists ("this replaces the
/// previous addresses, routes and rules", nm-cloud-setup(8)) on every run (timer,
/// dispatcher); on GCP it only adds local routes for forwarded IPs.
fn nm_cloud_setup(node: &Node, vip: &Vip) -> Option<Finding> {
    const UNITS: [&str; 2] = ["nm-cloud-setup.service", "nm-cloud-setup.timer"];
    let installed = UNITS.iter().any(|u| node.unit_file(u).is_some())
        || node.exists("usr/libexec/nm-cloud-setup")
        || node.exists("usr/lib/nm-cloud-setup");
    let enabled: Vec<&str> = UNITS
        .iter()
        .copied()
        .filter(|u| node.unit_enabled(u))
        .collect();
    let running = node.running(&["nm-cloud-setup"]);
    if !installed || (enabled.is_empty() && !running) {
        return None;
    }
    let var = match vip.platform {
        Platform::Gce => "NM_CLOUD_SETUP_GCP",
        Platform::Oci => "NM_CLOUD_SETUP_OCI",
        Platform::Aws => "NM_CLOUD_SETUP_EC2",
        Platform::Azure => "NM_CLOUD_SETUP_AZURE",
        Platform::Other => return None,
    };
    let env = node.unit_environment("nm-cloud-setup.service");
    let on = env.get(var).is_some_and(|v| truthy(v));
    let mut found = if enabled.is_empty() {
        "running".to_owned()
    } else {
        format!("{} enabled", enabled.join(", "))
    };
    found += &format!(", {var}={}", env.get(var).map_or("unset", String::as_str));
    let skip = node.nm_profile_skips_cloud_setup(vip.nic);
    if skip {
        found += &format!(
            ", {}'s profile has org.freedesktop.nm-cloud-setup.skip=yes",
            vip.nic
        );
    }
    let (risk, effect) = if !on {
        (
            Risk::Compatible,
            "does nothing on this cloud (its provider is not enabled)".to_owned(),
        )
    } else if skip {
        (Risk::Compatible, format!("skips {}", vip.nic))
    } else if vip.platform == Platform::Gce {
        (
            Risk::Compatible,
            "adds local routes for forwarded IPs (load-balancer targets) only, not for alias \
             ranges"
                .to_owned(),
        )
    } else {
        (
            Risk::Fights,
            format!(
                "sets the runtime addresses of {} to those the metadata lists on every run \
                 (timer, dispatcher), which removes {}",
                vip.nic, vip.ip
            ),
        )
    };
    Some(Finding {
        agent: "nm-cloud-setup",
        risk,
        found,
        effect,
        fix: format!(
            "`systemctl disable --now nm-cloud-setup.timer nm-cloud-setup.service`, or set \
             user-data org.freedesktop.nm-cloud-setup.skip=yes on {}'s NetworkManager \
             profile ([user] section of its keyfile)",
            vip.nic
        ),
        source: NM_CLOUD_SETUP_DOC,
    })
}

/// SUSE's cloud-netconfig: on the interfaces whose ifcfg file says
/// CLOUD_NETCONFIG_MANAGE="yes" it adds the secondary IPv4 addresses the metadata lists
/// (EC2, Azure) and the alias ranges as local routes (GCE, EC2), and removes those it
/// added when they leave the metadata, at every DHCP renewal and every 60 s with its timer.
fn cloud_netconfig(node: &Node, vip: &Vip) -> Option<Finding> {
    let installed = node.exists("usr/libexec/netconfig/netconfig.d/cloud-netconfig")
        || node.exists("etc/netconfig.d/cloud-netconfig")
        || node.unit_file("cloud-netconfig.service").is_some()
        || node.exists("etc/NetworkManager/dispatcher.d/cloud-netconfig")
        || node.exists("usr/lib/NetworkManager/dispatcher.d/cloud-netconfig");
    if !installed {
        return None;
    }
    let ifcfg = format!("etc/sysconfig/network/ifcfg-{}", vip.nic);
    let (manage, from) = match node.read(&ifcfg) {
        Some(text) => (
            shell_var(&text, "CLOUD_NETCONFIG_MANAGE").unwrap_or_default(),
            format!("/{ifcfg}"),
        ),
        // No ifcfg file yet: cloud-netconfig writes one with the default.
        None => (
            node.read("etc/default/cloud-netconfig")
                .and_then(|t| shell_var(&t, "CLOUD_NETCONFIG_MANAGE"))
                .unwrap_or_else(|| "yes".to_owned()),
            "the default in /etc/default/cloud-netconfig (no ifcfg file yet)".to_owned(),
        ),
    };
    let found = format!("installed, CLOUD_NETCONFIG_MANAGE={manage:?} from {from}");
    let managed = manage == "yes";
    let (risk, effect) = match (managed, vip.platform) {
        (false, _) => (Risk::Compatible, format!("leaves {} alone", vip.nic)),
        (true, Platform::Gce) => (
            Risk::Fights,
            format!(
                "adds the alias ranges the metadata lists to the local routing table and \
                 removes them when they leave it, up to 60 s later: {} stays local on the \
                 node it moved away from, and comes back where the metadata still lists it",
                vip.ip
            ),
        ),
        (true, Platform::Aws | Platform::Azure) => (
            Risk::Fights,
            format!(
                "adds every secondary IPv4 address the metadata lists to {}: {} comes back \
                 after a stop while the cloud still assigns it here",
                vip.nic, vip.ip
            ),
        ),
        (true, Platform::Oci | Platform::Other) => {
            (Risk::Compatible, "has no support for this cloud".to_owned())
        }
    };
    Some(Finding {
        agent: "cloud-netconfig",
        risk,
        found,
        effect,
        fix: format!(
            "set CLOUD_NETCONFIG_MANAGE='no' in /etc/sysconfig/network/ifcfg-{}",
            vip.nic
        ),
        source: CLOUD_NETCONFIG_DOC,
    })
}

/// The Google guest agent: with [IpForwarding] ip_aliases (default true) it adds a local
/// route (protocol 66, `ethernet_proto_id`) for every alias range the metadata lists and
/// removes its routes when the range leaves. Beside cloudvip's address or route (protocol
/// 167) that is harmless; with local_mode=none it is the only thing that makes the node
/// accept the VIP's traffic, so it must be on.
fn google_guest_agent(node: &Node, vip: &Vip) -> Option<Finding> {
    if vip.platform != Platform::Gce || vip.ip.is_ipv6() {
        return None;
    }
    let unit = "google-guest-agent.service";
    let installed = node.unit_file(unit).is_some() || node.exists("usr/bin/google_guest_agent");
    let active = node.unit_enabled(unit) || node.running(&["google_guest_agent"]);
    // User settings override the distribution's (`instance_configs.cfg.distro`).
    let mut cfg = node
        .read("etc/default/instance_configs.cfg.distro")
        .map(|t| ini(&t))
        .unwrap_or_default();
    if let Some(t) = node.read("etc/default/instance_configs.cfg") {
        cfg.extend(ini(&t));
    }
    let setting = |section: &str, key: &str| {
        cfg.get(&(section.to_owned(), key.to_owned()))
            .map(String::as_str)
    };
    let off = |section, key| setting(section, key).is_some_and(|v| !truthy(v));
    let aliases = !off("Daemons", "network_daemon") && !off("IpForwarding", "ip_aliases");
    if !installed && vip.local_mode != LocalMode::None {
        return None;
    }
    let found = format!(
        "{}, ip_aliases={}, network_daemon={}",
        match (installed, active) {
            (false, _) => "not installed",
            (true, true) => "enabled",
            (true, false) => "installed, not enabled",
        },
        setting("IpForwarding", "ip_aliases").unwrap_or("true (default)"),
        setting("Daemons", "network_daemon").unwrap_or("true (default)")
    );
    let routes = installed && active && aliases;
    let (risk, effect) = match (vip.local_mode, routes) {
        (LocalMode::None, false) => (
            Risk::Fights,
            format!(
                "configures no local route for the alias ranges: with local_mode=none \
                 nothing makes this node accept {}",
                vip.ip
            ),
        ),
        (LocalMode::None, true) => (
            Risk::Compatible,
            "adds the local route for the alias (protocol 66) that local_mode=none relies on"
                .to_owned(),
        ),
        (_, true) => (
            Risk::Compatible,
            "adds its own local route (protocol 66) for the alias and removes it when the \
             alias leaves; cloudvip's address or route (protocol 167) is never touched"
                .to_owned(),
        ),
        (_, false) => (
            Risk::Compatible,
            "adds no routes for alias ranges; cloudvip configures the VIP itself".to_owned(),
        ),
    };
    Some(Finding {
        agent: "google-guest-agent",
        risk,
        found,
        effect,
        fix: "set local_mode=address (cloudvip adds the VIP itself), or install and enable \
              google-guest-agent with ip_aliases = true under [IpForwarding] in \
              /etc/default/instance_configs.cfg"
            .to_owned(),
        source: GUEST_AGENT_DOC,
    })
}

/// Oracle's ocid (oci-utils): with [vnic] enabled (the default) it scans every 60 s and
/// configures the secondary private IPs OCI lists for the instance's VNICs that the OS
/// lacks, and removes those OCI no longer lists, unless the address or the interface is
/// excluded (`oci-network-config --exclude`, persistent).
fn ocid(node: &Node, vip: &Vip) -> Option<Finding> {
    if vip.platform != Platform::Oci {
        return None;
    }
    let unit = "ocid.service";
    let installed = node.unit_file(unit).is_some() || node.exists("usr/libexec/ocid");
    let active = node.unit_enabled(unit) || node.running(&["ocid"]);
    if !installed || !active {
        return None;
    }
    let mut vnic = None;
    for f in node.dir("etc/oci-utils.conf.d") {
        if let Some(t) = node.read_path(&f) {
            if let Some(v) = ini(&t).get(&("vnic".to_owned(), "enabled".to_owned())) {
                vnic = Some(v.clone());
            }
        }
    }
    let vnic_on = vnic.as_deref().is_none_or(truthy);
    let ip = vip.ip.to_string();
    let excluded = ["var/lib/oci-utils/vnic-info", "var/lib/oci-utils/vnic_info"]
        .iter()
        .filter_map(|p| node.read(p))
        .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .any(|v| {
            v["exclude"]
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e == ip.as_str() || e == vip.nic))
        });
    let found = format!(
        "enabled, [vnic] enabled={}{}",
        vnic.as_deref().unwrap_or("true (default)"),
        if excluded {
            format!(", {ip} or {} excluded", vip.nic)
        } else {
            String::new()
        }
    );
    let (risk, effect) = if !vnic_on {
        (Risk::Compatible, "does not configure VNICs".to_owned())
    } else if excluded {
        (Risk::Compatible, format!("leaves {ip} alone"))
    } else {
        (
            Risk::Fights,
            format!(
                "adds the secondary private IPs OCI lists for this VNIC and removes those it \
                 no longer lists, every 60 s: {ip} comes back after a stop while OCI still \
                 assigns it here, with the subnet's prefix instead of cloudvip's"
            ),
        )
    };
    Some(Finding {
        agent: "ocid",
        risk,
        found,
        effect,
        fix: format!(
            "`oci-network-config --exclude {ip}` (persistent), or enabled = false under [vnic] \
             in /etc/oci-utils.conf.d/"
        ),
        source: OCID_DOC,
    })
}

/// Files under a root directory.
struct Node {
    root: PathBuf,
}

impl Node {
    fn new(root: &Path) -> Node {
        Node {
            root: root.to_owned(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    fn read(&self, rel: &str) -> Option<String> {
        self.read_path(&self.path(rel))
    }

    fn read_path(&self, p: &Path) -> Option<String> {
        // Configuration files are small; a huge or binary file is not one of them.
        let bytes = std::fs::read(p).ok()?;
        (bytes.len() < 1 << 20).then(|| String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The files of a directory, sorted (drop-ins apply in that order).
    fn dir(&self, rel: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.path(rel))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Where systemd finds a unit, highest priority first.
    const UNIT_DIRS: [&'static str; 4] = [
        "etc/systemd/system",
        "run/systemd/system",
        "usr/lib/systemd/system",
        "lib/systemd/system",
    ];

    fn unit_file(&self, unit: &str) -> Option<PathBuf> {
        Self::UNIT_DIRS
            .iter()
            .map(|d| self.path(&format!("{d}/{unit}")))
            .find(|p| p.exists())
    }

    fn masked(&self, unit: &str) -> bool {
        ["etc/systemd/system", "run/systemd/system"]
            .iter()
            .any(|d| {
                std::fs::read_link(self.path(&format!("{d}/{unit}")))
                    .is_ok_and(|t| t == Path::new("/dev/null"))
            })
    }

    /// Enabled: a `*.wants/` or `*.requires/` link to it (what `systemctl enable` makes),
    /// and not masked.
    fn unit_enabled(&self, unit: &str) -> bool {
        if self.masked(unit) {
            return false;
        }
        Self::UNIT_DIRS.iter().any(|d| {
            self.dir(d).iter().any(|sub| {
                let n = sub.file_name().map(|n| n.to_string_lossy().into_owned());
                n.is_some_and(|n| n.ends_with(".wants") || n.ends_with(".requires"))
                    && sub.join(unit).symlink_metadata().is_ok()
            })
        })
    }

    /// `Environment=` of a unit: its file, then its drop-ins (`<unit>.d/*.conf` in every
    /// unit directory, the later ones winning, as systemd applies them).
    fn unit_environment(&self, unit: &str) -> BTreeMap<String, String> {
        let mut files: Vec<PathBuf> = self.unit_file(unit).into_iter().collect();
        let mut dropins: Vec<PathBuf> = Self::UNIT_DIRS
            .iter()
            .rev()
            .flat_map(|d| self.dir(&format!("{d}/{unit}.d")))
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .collect();
        // By file name across directories, as systemd orders them.
        dropins.sort_by_key(|p| p.file_name().map(|n| n.to_owned()));
        files.extend(dropins);
        let mut env = BTreeMap::new();
        for f in files {
            for line in self.read_path(&f).unwrap_or_default().lines() {
                let Some(rest) = line.trim().strip_prefix("Environment=") else {
                    continue;
                };
                for word in shell_words(rest) {
                    if let Some((k, v)) = word.split_once('=') {
                        env.insert(k.to_owned(), v.to_owned());
                    }
                }
            }
        }
        env
    }

    /// A process whose program (argv[0], or the script argv[1] of an interpreter) has one
    /// of these names.
    fn running(&self, names: &[&str]) -> bool {
        self.dir("proc").iter().any(|p| {
            let is_pid = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
            is_pid
                && std::fs::read(p.join("cmdline")).is_ok_and(|c| {
                    c.split(|&b| b == 0).take(2).any(|arg| {
                        let arg = String::from_utf8_lossy(arg);
                        let base = arg.rsplit('/').next().unwrap_or_default();
                        names.contains(&base)
                    })
                })
        })
    }

    /// A NetworkManager keyfile for `nic` carrying the nm-cloud-setup skip flag.
    fn nm_profile_skips_cloud_setup(&self, nic: &str) -> bool {
        [
            "etc/NetworkManager/system-connections",
            "run/NetworkManager/system-connections",
        ]
        .iter()
        .flat_map(|d| self.dir(d))
        .filter_map(|f| self.read_path(&f))
        .map(|t| ini(&t))
        .any(|k| {
            let get = |s: &str, key: &str| k.get(&(s.to_owned(), key.to_owned()));
            get("connection", "interface-name").is_some_and(|n| n == nic)
                && get("user", "org.freedesktop.nm-cloud-setup.skip").is_some_and(|v| truthy(v))
        })
    }
}

/// yes/true/1/on, as systemd and these tools read booleans.
fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "yes" | "true" | "1" | "on" | "y"
    )
}

/// `[section]` / `key = value` files (INI, keyfile): (section, key) -> value, the last
/// one winning. `#` and `;` start comments.
fn ini(text: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.trim().to_owned();
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert((section.clone(), k.trim().to_owned()), v.trim().to_owned());
        }
    }
    out
}

/// `NAME=value` in a shell-sourced file (ifcfg, /etc/default), quotes removed, the last
/// assignment winning.
fn shell_var(text: &str, name: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(name)?.strip_prefix('='))
        .next_back()
        .map(|v| {
            let v = v.split('#').next().unwrap_or_default().trim();
            v.trim_matches(|c| c == '"' || c == '\'').to_owned()
        })
}

/// systemd's word splitting for `Environment=`: whitespace-separated, "double" or
/// 'single' quotes around a word (or its value part) kept together.
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A node's file tree under a temporary root.
    struct Tree(tempfile::TempDir);

    impl Tree {
        fn new() -> Tree {
            Tree(tempfile::tempdir().unwrap())
        }
        fn file(&self, rel: &str, text: &str) -> &Self {
            let p = self.0.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
            self
        }
        fn link(&self, rel: &str, target: &str) -> &Self {
            let p = self.0.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            symlink(target, p).unwrap();
            self
        }
        /// `systemctl enable`: the unit file and its wants link.
        fn unit(&self, unit: &str, wanted_by: &str, text: &str) -> &Self {
            self.file(&format!("usr/lib/systemd/system/{unit}"), text)
                .link(
                    &format!("etc/systemd/system/{wanted_by}.wants/{unit}"),
                    &format!("/usr/lib/systemd/system/{unit}"),
                )
        }
        fn inspect(&self, platform: Platform, local_mode: LocalMode) -> Vec<Finding> {
            inspect(
                self.0.path(),
                &Vip {
                    ip: "10.0.1.100".parse().unwrap(),
                    nic: "eth0",
                    platform,
                    local_mode,
                },
            )
        }
    }

    impl Tree {
        /// The risk of the one finding, which must be `agent`'s.
        fn risk(&self, platform: Platform, local_mode: LocalMode, agent: &str) -> Risk {
            only(&self.inspect(platform, local_mode), agent).risk
        }
    }

    fn only(f: &[Finding], agent: &str) -> Finding {
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].agent, agent);
        f[0].clone()
    }

    const NM_SERVICE: &str = "[Service]\nExecStart=/usr/libexec/nm-cloud-setup\n";

    #[test]
    fn an_empty_node_has_none() {
        let t = Tree::new();
        for p in [Platform::Gce, Platform::Oci, Platform::Aws, Platform::Other] {
            assert!(t.inspect(p, LocalMode::Address).is_empty());
        }
    }

    #[test]
    fn nm_cloud_setup_with_the_oci_provider_fights() {
        let t = Tree::new();
        t.unit("nm-cloud-setup.timer", "timers", "[Timer]\n")
            .file("usr/lib/systemd/system/nm-cloud-setup.service", NM_SERVICE)
            .file(
                "etc/systemd/system/nm-cloud-setup.service.d/10-enable-oci.conf",
                "[Service]\nEnvironment=\"NM_CLOUD_SETUP_OCI=yes\" NM_CLOUD_SETUP_LOG=INFO\n",
            );
        let f = only(
            &t.inspect(Platform::Oci, LocalMode::Address),
            "nm-cloud-setup",
        );
        assert_eq!(f.risk, Risk::Fights, "{f:#?}");
        assert!(
            f.found.contains("nm-cloud-setup.timer enabled"),
            "{}",
            f.found
        );
        assert!(f.found.contains("NM_CLOUD_SETUP_OCI=yes"), "{}", f.found);
        assert!(f.effect.contains("removes 10.0.1.100"), "{}", f.effect);
        assert!(f
            .fix
            .contains("systemctl disable --now nm-cloud-setup.timer"));
        // The GCP provider only adds forwarded-IP routes; another cloud's does nothing here.
        assert_eq!(
            t.risk(Platform::Gce, LocalMode::Address, "nm-cloud-setup"),
            Risk::Compatible
        );
    }

    #[test]
    fn nm_cloud_setup_skip_flag_mask_and_provider_off() {
        let t = Tree::new();
        t.unit(
            "nm-cloud-setup.service",
            "NetworkManager.service",
            NM_SERVICE,
        )
        .file(
            "etc/systemd/system/nm-cloud-setup.service.d/aws.conf",
            "[Service]\nEnvironment=NM_CLOUD_SETUP_EC2=yes\n",
        );
        assert_eq!(
            t.risk(Platform::Aws, LocalMode::Address, "nm-cloud-setup"),
            Risk::Fights
        );
        let f = only(
            &t.inspect(Platform::Oci, LocalMode::Address),
            "nm-cloud-setup",
        );
        assert_eq!(f.risk, Risk::Compatible);
        assert!(f.found.contains("NM_CLOUD_SETUP_OCI=unset"), "{}", f.found);
        // The profile of eth0 opts out.
        t.file(
            "etc/NetworkManager/system-connections/eth0.nmconnection",
            "[connection]\nid=System eth0\ninterface-name=eth0\n\n[user]\norg.freedesktop.nm-cloud-setup.skip=yes\n",
        );
        let f = only(
            &t.inspect(Platform::Aws, LocalMode::Address),
            "nm-cloud-setup",
        );
        assert_eq!(f.risk, Risk::Compatible, "{f:#?}");
        assert!(f.effect.contains("skips eth0"));
        // Masked: not active at all.
        t.link("etc/systemd/system/nm-cloud-setup.service", "/dev/null");
        assert!(t.inspect(Platform::Aws, LocalMode::Address).is_empty());
    }

    #[test]
    fn a_running_nm_cloud_setup_counts_without_a_wants_link() {
        let t = Tree::new();
        t.file("usr/libexec/nm-cloud-setup", "")
            .file("usr/lib/systemd/system/nm-cloud-setup.service", NM_SERVICE)
            .file(
                "usr/lib/systemd/system/nm-cloud-setup.service.d/10-rh-enable-for-ec2.conf",
                "[Service]\nEnvironment=NM_CLOUD_SETUP_EC2=yes\n",
            );
        assert!(t.inspect(Platform::Aws, LocalMode::Address).is_empty());
        t.file("proc/4242/cmdline", "/usr/libexec/nm-cloud-setup\0");
        let f = only(
            &t.inspect(Platform::Aws, LocalMode::Address),
            "nm-cloud-setup",
        );
        assert_eq!(f.risk, Risk::Fights);
        assert!(f.found.starts_with("running"), "{}", f.found);
    }

    #[test]
    fn cloud_netconfig_follows_the_ifcfg_setting() {
        let t = Tree::new();
        t.file(
            "usr/libexec/netconfig/netconfig.d/cloud-netconfig",
            "#!/bin/bash\n",
        )
        .file(
            "etc/sysconfig/network/ifcfg-eth0",
            "BOOTPROTO='dhcp'\nSTARTMODE='auto'\nCLOUD_NETCONFIG_MANAGE='yes'\n",
        );
        let f = only(
            &t.inspect(Platform::Gce, LocalMode::Address),
            "cloud-netconfig",
        );
        assert_eq!(f.risk, Risk::Fights);
        assert!(
            f.found.contains("CLOUD_NETCONFIG_MANAGE=\"yes\""),
            "{}",
            f.found
        );
        assert!(f
            .fix
            .contains("CLOUD_NETCONFIG_MANAGE='no' in /etc/sysconfig/network/ifcfg-eth0"));
        assert_eq!(
            t.risk(Platform::Oci, LocalMode::Address, "cloud-netconfig"),
            Risk::Compatible
        );
        t.file(
            "etc/sysconfig/network/ifcfg-eth0",
            "BOOTPROTO='dhcp'\nCLOUD_NETCONFIG_MANAGE=\"no\" # HA cluster\n",
        );
        assert_eq!(
            t.risk(Platform::Gce, LocalMode::Address, "cloud-netconfig"),
            Risk::Compatible
        );
    }

    #[test]
    fn cloud_netconfig_without_ifcfg_uses_the_default() {
        let t = Tree::new();
        t.file("usr/libexec/netconfig/netconfig.d/cloud-netconfig", "");
        let f = only(
            &t.inspect(Platform::Azure, LocalMode::Address),
            "cloud-netconfig",
        );
        assert_eq!(f.risk, Risk::Fights);
        assert!(f.found.contains("default"), "{}", f.found);
        t.file(
            "etc/default/cloud-netconfig",
            "CLOUD_NETCONFIG_MANAGE=\"no\"\n",
        );
        assert_eq!(
            t.risk(Platform::Azure, LocalMode::Address, "cloud-netconfig"),
            Risk::Compatible
        );
    }

    #[test]
    fn guest_agent_alias_routes_matter_only_with_local_mode_none() {
        let t = Tree::new();
        t.unit(
            "google-guest-agent.service",
            "multi-user.target",
            "[Service]\nExecStart=/usr/bin/google_guest_agent\n",
        );
        let f = only(
            &t.inspect(Platform::Gce, LocalMode::Address),
            "google-guest-agent",
        );
        assert_eq!(f.risk, Risk::Compatible);
        assert!(f.effect.contains("protocol 167"), "{}", f.effect);
        assert_eq!(
            t.risk(Platform::Gce, LocalMode::None, "google-guest-agent"),
            Risk::Compatible
        );
        // The distribution turns alias routes off, the user setting wins over it.
        t.file(
            "etc/default/instance_configs.cfg.distro",
            "[IpForwarding]\nip_aliases = false\n",
        );
        let f = only(
            &t.inspect(Platform::Gce, LocalMode::None),
            "google-guest-agent",
        );
        assert_eq!(f.risk, Risk::Fights, "{f:#?}");
        assert!(f.found.contains("ip_aliases=false"), "{}", f.found);
        t.file(
            "etc/default/instance_configs.cfg",
            "[IpForwarding]\nip_aliases = true\n",
        );
        assert_eq!(
            t.risk(Platform::Gce, LocalMode::None, "google-guest-agent"),
            Risk::Compatible
        );
        t.file(
            "etc/default/instance_configs.cfg",
            "[Daemons]\nnetwork_daemon = false\n",
        );
        assert_eq!(
            t.risk(Platform::Gce, LocalMode::None, "google-guest-agent"),
            Risk::Fights
        );
        assert!(t.inspect(Platform::Oci, LocalMode::None).is_empty());
    }

    #[test]
    fn no_guest_agent_with_local_mode_none_fights() {
        let t = Tree::new();
        let f = only(
            &t.inspect(Platform::Gce, LocalMode::None),
            "google-guest-agent",
        );
        assert_eq!(f.risk, Risk::Fights);
        assert!(f.found.starts_with("not installed"), "{}", f.found);
    }

    #[test]
    fn ocid_until_the_vip_is_excluded() {
        let t = Tree::new();
        t.unit(
            "ocid.service",
            "multi-user.target",
            "[Service]\nExecStart=/usr/libexec/ocid\n",
        )
        .file(
            "etc/oci-utils.conf.d/00-oci-utils.conf",
            "[vnic]\n; enabled = true\n",
        );
        let f = only(&t.inspect(Platform::Oci, LocalMode::Address), "ocid");
        assert_eq!(f.risk, Risk::Fights);
        assert!(f.fix.contains("oci-network-config --exclude 10.0.1.100"));
        t.file(
            "var/lib/oci-utils/vnic-info",
            r#"{"exclude": ["10.0.1.100"], "deconfig": [], "sec_priv_ip": []}"#,
        );
        assert_eq!(
            t.risk(Platform::Oci, LocalMode::Address, "ocid"),
            Risk::Compatible
        );
        std::fs::remove_file(t.0.path().join("var/lib/oci-utils/vnic-info")).unwrap();
        t.file(
            "etc/oci-utils.conf.d/50-ha.conf",
            "[vnic]\nenabled = false\n",
        );
        let f = only(&t.inspect(Platform::Oci, LocalMode::Address), "ocid");
        assert_eq!(f.risk, Risk::Compatible, "{f:#?}");
        assert!(t.inspect(Platform::Gce, LocalMode::Address).is_empty());
    }

    #[test]
    fn a_python_daemon_is_found_by_its_script() {
        let t = Tree::new();
        t.file("usr/libexec/ocid", "")
            .file(
                "proc/77/cmdline",
                "/usr/bin/python3\0/usr/libexec/ocid\0--no-daemon\0",
            )
            .file("proc/self/cmdline", "ocid\0");
        assert_eq!(
            t.risk(Platform::Oci, LocalMode::Address, "ocid"),
            Risk::Fights
        );
    }

    #[test]
    fn steps_and_log_lines() {
        let t = Tree::new();
        let vip = Vip {
            ip: "10.0.1.100".parse().unwrap(),
            nic: "eth0",
            platform: Platform::Oci,
            local_mode: LocalMode::Address,
        };
        let s = steps(t.0.path(), &vip);
        assert!(matches!(
            &s[..],
            [Step {
                verdict: crate::cloud::Verdict::Pass(_),
                ..
            }]
        ));
        t.unit("ocid.service", "multi-user.target", "");
        let s = steps(t.0.path(), &vip);
        match &s[..] {
            [Step {
                verdict: crate::cloud::Verdict::Fail { problem, fix },
                ..
            }] => {
                assert!(problem.starts_with("ocid (enabled"), "{problem}");
                assert!(fix.contains("[ocid(8)"), "{fix}");
            }
            _ => panic!("one failing step expected"),
        }
        let line = inspect(t.0.path(), &vip)[0].line();
        assert!(
            line.contains("fix: `oci-network-config --exclude 10.0.1.100`"),
            "{line}"
        );
    }

    #[test]
    fn parsers() {
        assert_eq!(
            shell_words(r#""A=1 2" B=3 'C=4'"#),
            vec!["A=1 2", "B=3", "C=4"]
        );
        assert_eq!(shell_words(r#"A="x y""#), vec!["A=x y"]);
        assert_eq!(
            shell_var(
                "X=1\nCLOUD_NETCONFIG_MANAGE=\"yes\"\n",
                "CLOUD_NETCONFIG_MANAGE"
            ),
            Some("yes".into())
        );
        assert_eq!(
            shell_var("CLOUD_NETCONFIG_MANAGEX=yes\n", "CLOUD_NETCONFIG_MANAGE"),
            None
        );
        let i = ini("[a]\nk = v ; not a comment here\n# c\n[b]\nk=w\n");
        assert_eq!(i[&("b".into(), "k".into())], "w");
        assert!(truthy(" Yes ") && !truthy("no") && !truthy(""));
    }
}
