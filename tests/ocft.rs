//! resource-agents' own case runner, `ocft`, against cloudvip: our config
//! (`packaging/ocft/cloudvip`, cloud=none) must pass every case, and resource-agents'
//! IPaddr2 configs, pointed at cloudvip unchanged but for the agent's name and root, must
//! give exactly the outcome documented case by case in docs/ocft.md (the IPaddr2 agent's
//! own outcome beside it, measured in the same namespaces).
//!
//! Each run gets a network namespace of its own (eth0/eth1 as veth pairs, for the IPaddr2
//! configs) and a private mount namespace: the agent under test over
//! /usr/lib/ocf/resource.d (tests/ocf_root.rs), ocft's hard-coded case directory
//! /var/lib/resource-agents/ocft on an overlay whose upper layer is ours, a private /tmp
//! (ocft's run log). Nothing on the host is written.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::ocf_root::OcfRoot;
use crate::util::{require_root, sh};

const CONFIGS: &str = "/usr/share/resource-agents/ocft/configs";
const OURS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/ocft/cloudvip");
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ocft.md");

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One case as ocft ran it.
#[derive(Clone, Debug)]
pub struct Case {
    pub no: usize,
    pub title: String,
    pub passed: bool,
    /// ocft's output for the case (the failing step and the agent's output).
    pub output: String,
}

/// A network namespace with eth0 and eth1 up (veth pairs whose peers stay inside).
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!(
            "cvocft{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns(name);
        sh(&["ip", "-n", &ns.0, "link", "set", "lo", "up"]);
        for i in 0..2 {
            let (a, b) = (format!("eth{i}"), format!("peer{i}"));
            sh(&[
                "ip", "-n", &ns.0, "link", "add", &a, "type", "veth", "peer", "name", &b,
            ]);
            sh(&["ip", "-n", &ns.0, "link", "set", &a, "up"]);
            sh(&["ip", "-n", &ns.0, "link", "set", &b, "up"]);
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // ocft's agents may have left announcement children: killed by PID.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `config` (the text of an ocft config file for agent `agent`) run with `ocft make` and
/// `ocft test` in namespaces of its own, `root`'s agent seen under /usr/lib/ocf.
pub fn run(name: &str, config: &str, agent: &str, root: &OcfRoot) -> Vec<Case> {
    require_root();
    let ns = Netns::new();
    run_in(&ns.0, name, config, agent, root)
}

/// [`run`] in an existing network namespace (a VM of the emulator's lab).
pub fn run_in(ns: &str, name: &str, config: &str, agent: &str, root: &OcfRoot) -> Vec<Case> {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir_all(w.join("configs")).unwrap();
    std::fs::create_dir_all(w.join("upper")).unwrap();
    std::fs::create_dir_all(w.join("work")).unwrap();
    std::fs::write(w.join("configs").join(name), config).unwrap();
    let script = format!(
        "set -e\n\
         {overlay}\n\
         mount -t overlay ocft-cases -o lowerdir=/var/lib,upperdir={w}/upper,workdir={w}/work /var/lib\n\
         ocft make -d {w}/configs {name} > {w}/make.log 2>&1\n\
         mount -t tmpfs -o mode=1777 ocft-tmp /tmp\n\
         export HA_RSCTMP=/tmp\n\
         set +e\n\
         ocft test {name}\n\
         echo \"ocft-exit=$?\"\n",
        overlay = crate::ocf_root::overlay_script(&root.resource_d().to_string_lossy()),
        w = w.display(),
    );
    let out = ocft_command(ns, &script, agent)
        .output()
        .expect("cannot run ocft");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let make_log = std::fs::read_to_string(w.join("make.log")).unwrap_or_default();
    assert!(
        stdout.contains("ocft-exit=0") || stdout.contains("ocft-exit=1"),
        "ocft {name} broke:\n{make_log}\n{stdout}\n{stderr}"
    );
    assert!(
        !stdout.contains("SETUP failed"),
        "ocft {name}: setup failed:\n{stdout}"
    );
    cases(&w.join("upper/resource-agents/ocft/cases"), name, &stdout)
}

/// The cases ocft generated (`N_<name>.sh`, with `# Summary:`), failed when ocft left a
/// `.retest` marker, with their part of the output (ocft prints `<config>: <title> - `
/// before each case, in order).
fn cases(dir: &Path, name: &str, stdout: &str) -> Vec<Case> {
    let mut scripts: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let f = p.file_name()?.to_str()?.to_owned();
            let no = f.strip_suffix(&format!("_{name}.sh"))?.parse().ok()?;
            Some((no, p))
        })
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty(), "ocft made no cases for {name}");
    let prefix = format!("{name}: ");
    let mut chunks: Vec<String> = Vec::new();
    for line in stdout.lines() {
        if line.starts_with(&prefix) {
            chunks.push(String::new());
        }
        if let Some(c) = chunks.last_mut() {
            c.push_str(line);
            c.push('\n');
        }
    }
    assert_eq!(
        chunks.len(),
        scripts.len(),
        "ocft ran {} of the {} cases of {name}:\n{stdout}",
        chunks.len(),
        scripts.len()
    );
    scripts
        .into_iter()
        .zip(chunks)
        .map(|((no, script), output)| {
            let text = std::fs::read_to_string(&script).unwrap();
            let title = text
                .lines()
                .find_map(|l| l.strip_prefix("# Summary: "))
                .unwrap_or("?")
                .to_owned();
            let passed = !script.with_extension("retest").exists();
            Case {
                no,
                title,
                passed,
                output,
            }
        })
        .collect()
}

/// `config` made with `ocft make`, then each case run the way `ocft test` runs it (its
/// setup script, the case, its cleanup script) but in namespaces of its own, all at once
/// (at most `WORKERS`): resource-agents' configs let a case that fails early leave its
/// state behind (an address on eth1, the base address removed), which would fail every
/// later case for a reason that is not its own.
pub fn run_isolated(name: &str, config: &str, agent: &str, root: &OcfRoot) -> Vec<Case> {
    const WORKERS: usize = 8;
    require_root();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    for d in ["configs", "made", "made-work"] {
        std::fs::create_dir_all(w.join(d)).unwrap();
    }
    std::fs::write(w.join("configs").join(name), config).unwrap();
    let make = format!(
        "set -e\nmount --make-rprivate /\n\
         mount -t overlay ocft-make -o lowerdir=/var/lib,upperdir={w}/made,workdir={w}/made-work /var/lib\n\
         ocft make -d {w}/configs {name}\n",
        w = w.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "bash", "-c", &make])
        .output()
        .unwrap();
    assert!(out.status.success(), "ocft make {name}: {out:?}");
    let cases_dir = w.join("made/resource-agents/ocft/cases");
    let mut todo: Vec<(usize, String)> = std::fs::read_dir(&cases_dir)
        .unwrap()
        .filter_map(|e| {
            let f = e.ok()?.file_name().to_str()?.to_owned();
            let no = f.strip_suffix(&format!("_{name}.sh"))?.parse().ok()?;
            let text = std::fs::read_to_string(cases_dir.join(&f)).ok()?;
            let title = text.lines().find_map(|l| l.strip_prefix("# Summary: "))?;
            Some((no, title.to_owned()))
        })
        .collect();
    todo.sort();
    assert!(!todo.is_empty(), "ocft made no cases for {name}");
    let queue = std::sync::Mutex::new(todo);
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let next = queue.lock().unwrap().pop();
                let Some((no, title)) = next else {
                    break;
                };
                let case = run_case(name, no, &title, agent, root, w);
                done.lock().unwrap().push(case);
            });
        }
    });
    let mut cases = done.into_inner().unwrap();
    cases.sort_by_key(|c| c.no);
    cases
}

fn run_case(name: &str, no: usize, title: &str, agent: &str, root: &OcfRoot, w: &Path) -> Case {
    let ns = Netns::new();
    let c = w.join(format!("case{no}"));
    std::fs::create_dir_all(c.join("upper")).unwrap();
    std::fs::create_dir_all(c.join("work")).unwrap();
    let script = format!(
        "set -e\n\
         {overlay}\n\
         mount -t overlay ocft-case -o lowerdir={w}/made:/var/lib,upperdir={c}/upper,workdir={c}/work /var/lib\n\
         mount -t tmpfs -o mode=1777 ocft-tmp /tmp\n\
         export HA_RSCTMP=/tmp\n\
         cd /var/lib/resource-agents/ocft/cases\n\
         set +e\n\
         if [ -x ./setup_{name}.sh ]; then ./setup_{name}.sh > /dev/null || {{ echo case-setup-failed; exit 0; }}; fi\n\
         ./{no}_{name}.sh\n\
         echo \"case-exit=$?\"\n\
         if [ -x ./cleanup_{name}.sh ]; then ./cleanup_{name}.sh > /dev/null; fi\n\
         exit 0\n",
        overlay = crate::ocf_root::overlay_script(&root.resource_d().to_string_lossy()),
        w = w.display(),
        c = c.display(),
    );
    let out = ocft_command(&ns.0, &script, agent).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !stdout.contains("case-setup-failed") && stdout.contains("case-exit="),
        "{name} case {no}: setup or harness failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Case {
        no,
        title: title.to_owned(),
        passed: stdout.contains("case-exit=0"),
        output: stdout,
    }
}

/// `script` in a private mount namespace inside `ns`, with no OCF_/HA_ variable of ours
/// (ocft passes its environment to the agent).
fn ocft_command(ns: &str, script: &str, agent: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        ns,
        "unshare",
        "--mount",
        "--propagation",
        "private",
    ])
    .args(["bash", "-c", script]);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("OCF_") || k.starts_with("HA_") {
            cmd.env_remove(k);
        }
    }
    // cloud=auto must never ask a cloud here, even on a CI runner that is a cloud VM
    // (cases that leave Include prepare out, e.g. IPaddr2's loopback case, see it too).
    if agent == "cloudvip" {
        cmd.env("OCF_RESKEY_cloud", "none");
    }
    cmd
}

/// resource-agents' config `name` pointed at cloudvip: only the agent and its root change.
fn for_cloudvip(config: &str) -> String {
    config
        .lines()
        .map(|l| match l.trim() {
            t if t.starts_with("Agent ") => "\tAgent cloudvip".to_owned(),
            t if t.starts_with("AgentRoot ") => {
                "\tAgentRoot /usr/lib/ocf/resource.d/rust".to_owned()
            }
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn summary(cases: &[Case]) -> String {
    cases
        .iter()
        .map(|c| {
            format!(
                "{:>2} {} {}\n{}",
                c.no,
                if c.passed { "pass" } else { "FAIL" },
                c.title,
                if c.passed {
                    String::new()
                } else {
                    c.output.clone()
                }
            )
        })
        .collect()
}

#[test]
fn cloudvip_config_passes_every_case() {
    let root = OcfRoot::new();
    let config = std::fs::read_to_string(OURS).unwrap();
    let cases = run("cloudvip", &config, "cloudvip", &root);
    let failed: Vec<&Case> = cases.iter().filter(|c| !c.passed).collect();
    assert!(
        failed.is_empty(),
        "{} of {} ocft cases failed:\n{}",
        failed.len(),
        cases.len(),
        summary(&cases)
    );
    assert!(cases.len() >= 25, "{}", summary(&cases));
    println!(
        "ocft cloudvip: {} of {} cases pass",
        cases.len(),
        cases.len()
    );
}

/// ocft cases against emulated GCE, in the lab's node-b (whose alias node-a holds at
/// first): the config is written here because it names the emulator's endpoint and CA.
fn gce_config(api: &str, ca: &str) -> String {
    format!(
        "# cloudvip on emulated GCE (tests/ocft.rs): node-b takes the VIP from node-a.\n\
         CONFIG\n\tAgent cloudvip\n\tAgentRoot /usr/lib/ocf/resource.d/rust\n\tHangTimeout 30\n\n\
         CASE-BLOCK required_args\n\
         \tEnv OCF_RESKEY_cloud=gce\n\tEnv OCF_RESKEY_ip=10.128.0.100\n\tEnv OCF_RESKEY_nic=eth0\n\
         \tEnv OCF_RESKEY_api_endpoint={api}\n\tEnv OCF_RESKEY_ca_bundle={ca}\n\
         \tEnv OCF_RESKEY_arp_count=1\n\tEnv OCF_RESKEY_peer_label=cluster=ha1\n\n\
         CASE-BLOCK prepare\n\tInclude required_args\n\tAgentRun stop\n\n\
         CASE \"probe and validate-all before the move\"\n\tInclude prepare\n\
         \tEnv OCF_RESKEY_CRM_meta_interval=0\n\tAgentRun monitor OCF_NOT_RUNNING\n\
         \tAgentRun validate-all OCF_SUCCESS\n\tEnv OCF_CHECK_LEVEL=10\n\tAgentRun validate-all OCF_SUCCESS\n\n\
         CASE \"start takes the alias, monitor at depth 0 and 10\"\n\tInclude prepare\n\
         \tAgentRun start OCF_SUCCESS\n\
         \tBash ip -4 -o addr show dev eth0 | grep -qw 10.128.0.100/32\n\
         \tAgentRun monitor OCF_SUCCESS\n\tEnv OCF_CHECK_LEVEL=10\n\tAgentRun monitor OCF_SUCCESS\n\n\
         CASE \"double start\"\n\tInclude prepare\n\tAgentRun start\n\tAgentRun start OCF_SUCCESS\n\n\
         CASE \"stop releases, monitor says not running\"\n\tInclude prepare\n\tAgentRun start\n\
         \tAgentRun stop OCF_SUCCESS\n\tBash ! ip -4 -o addr show | grep -qw 10.128.0.100\n\
         \tAgentRun monitor OCF_NOT_RUNNING\n\tAgentRun stop OCF_SUCCESS\n\n\
         CASE \"a missing public IP fails start with the VIP left alone\"\n\tInclude prepare\n\
         \tEnv OCF_RESKEY_public_ip=no-such-address\n\tAgentRun start OCF_ERR_CONFIGURED\n\
         \tBash ! ip -4 -o addr show | grep -qw 10.128.0.100\n\n\
         CASE \"start, left started for the cloud check\"\n\tInclude prepare\n\
         \tEnv OCF_RESKEY_public_ip=vip-ext\n\tAgentRun start OCF_SUCCESS\n\tAgentRun monitor OCF_SUCCESS\n"
    )
}

#[test]
fn cloudvip_gce_cases_against_the_emulator() {
    let g = crate::gce::GceLab::new();
    let root = OcfRoot::new();
    // The runner hides /tmp behind a private one: the CA goes where the agent sees it.
    let ca_dir = tempfile::Builder::new()
        .prefix("cloudvip-ocft-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let ca = ca_dir.path().join("ca.pem");
    std::fs::copy(&g.c.ca, &ca).unwrap();
    let cases = run_in(
        g.c.lab.ns(2),
        "cloudvip-gce",
        &gce_config(&g.api, &ca.to_string_lossy()),
        "cloudvip",
        &root,
    );
    assert!(
        cases.iter().all(|c| c.passed) && cases.len() == 6,
        "{}",
        summary(&cases)
    );
    // The cloud agrees: the alias and the external address are node-b's now, node-a kept
    // its other range.
    assert_eq!(g.aliases("node-a"), vec!["10.200.0.8/29"]);
    assert!(g.aliases("node-b").contains(&"10.128.0.100/32".to_owned()));
    assert_eq!(g.nat_ips("node-b"), vec!["203.0.113.10"]);
    println!(
        "ocft cloudvip-gce: {} of {} cases pass",
        cases.len(),
        cases.len()
    );
}

#[test]
fn a_wrong_expectation_is_reported_as_a_failed_case() {
    // The harness can fail: ocft's verdicts reach the test, case by case.
    let root = OcfRoot::new();
    let config =
        "CONFIG\n\tAgent cloudvip\n\tAgentRoot /usr/lib/ocf/resource.d/rust\n\tHangTimeout 20\n\n\
                  CASE \"right\"\n\tAgentRun no_cmd OCF_ERR_UNIMPLEMENTED\n\n\
                  CASE \"wrong\"\n\tAgentRun no_cmd OCF_SUCCESS\n";
    let cases = run("cvharness", config, "cloudvip", &root);
    assert_eq!(cases.len(), 2, "{}", summary(&cases));
    assert!(
        cases[0].passed && cases[0].title == "right",
        "{}",
        summary(&cases)
    );
    assert!(
        !cases[1].passed && cases[1].title == "wrong",
        "{}",
        summary(&cases)
    );
    assert!(
        cases[1].output.contains("OCF_ERR_UNIMPLEMENTED"),
        "{}",
        cases[1].output
    );
}

const BROADCAST: &str = "no `broadcast` parameter: an unknown parameter is refused (6, as a \
     typo must be, resource-agents #1395); cloudvip sets the broadcast address the prefix \
     implies, and a host prefix (the default) has none";
const HOST_PREFIX: &str = "started, but as a host prefix (/32, /128: cloudvip's default, what \
     cloud networks need) where the config checks for the subnet's prefix; with \
     cidr_netmask=24 / 64 the case passes (IPaddr2 case 3, IPaddr2v4 case 7)";
const NO_ROUTE: &str = "2 (OCF_ERR_ARGS: no route to choose an interface from, set nic) where \
     IPaddr2 gives 1: retrying on this node cannot help, so Pacemaker should move the VIP \
     at once";
const NO_BASE: &str = "started: cloudvip needs no base address on the interface (a cloud NIC \
     often has none in the VIP's range) where IPaddr2 derives the prefix from one and fails";
const AS_GIVEN: &str = "started: an explicit cidr_netmask is applied as given; IPaddr2 refuses a \
     prefix that disagrees with the base address's";

/// Why a case of resource-agents' IPaddr2 configs fails with cloudvip, case by case:
/// every other case passes. Checked against a real run, and rendered into docs/ocft.md.
pub const DIFFERENCES: &[(&str, usize, &str)] = &[
    ("IPaddr2", 5, BROADCAST),
    (
        "IPaddr2",
        8,
        "a nic missing on this node: start gives 2 (OCF_ERR_ARGS, banned on this node only) \
         where IPaddr2 gives 6 (banned everywhere), and validate-all at depth 0 checks syntax \
         only, as pcs calls it on another node (depth 10 gives 2)",
    ),
    (
        "IPaddr2",
        16,
        "refused (6) by design: a VIP on lo serves no network (IPaddr2 allows it for LVS \
         direct routing)",
    ),
    (
        "IPaddr2",
        17,
        "the parameter is `label` (iflabel is refused as unknown, with \"did you mean label?\")",
    ),
    (
        "IPaddr2",
        18,
        "the deprecated nic=eth0:label form is refused (6) with a message pointing to `label`",
    ),
    (
        "IPaddr2",
        19,
        "monitor gives 7 where IPaddr2 gives 1: no interface has the VIP, so it is positively \
         not running here (cloudvip's rule: 7 whenever the kernel lacks the VIP); a missing \
         nic fails start with 2",
    ),
    ("IPaddr2v4", 0, HOST_PREFIX),
    ("IPaddr2v4", 6, HOST_PREFIX),
    ("IPaddr2v4", 8, NO_ROUTE),
    ("IPaddr2v4", 9, NO_BASE),
    ("IPaddr2v4", 10, AS_GIVEN),
    ("IPaddr2v4", 12, NO_BASE),
    ("IPaddr2v4", 15, NO_ROUTE),
    ("IPaddr2v4", 18, BROADCAST),
    ("IPaddr2v4", 19, BROADCAST),
    ("IPaddr2v4", 20, BROADCAST),
    ("IPaddr2v4", 21, BROADCAST),
    ("IPaddr2v6", 0, HOST_PREFIX),
    ("IPaddr2v6", 6, NO_ROUTE),
    ("IPaddr2v6", 8, HOST_PREFIX),
    (
        "IPaddr2v6",
        9,
        "a link-local fe80::/10 VIP is refused (6): it is not routable, no cloud can move it",
    ),
    ("IPaddr2v6", 10, NO_BASE),
    ("IPaddr2v6", 11, NO_BASE),
    (
        "IPaddr2v6",
        13,
        "started with the /80 asked for; IPaddr2 4.12 starts too (the config's expectation is \
         older than the agent)",
    ),
    ("IPaddr2v6", 14, AS_GIVEN),
    ("IPaddr2v6", 15, NO_ROUTE),
];

/// The cases resource-agents' own IPaddr2 (Debian 12, 4.12) fails in its own configs.
pub const IPADDR2_FAILS: &[(&str, usize)] = &[("IPaddr2v6", 13)];

/// The docs/ocft.md table from measured runs: config, case, IPaddr2, cloudvip, why.
fn table(runs: &[(String, Vec<Case>, Vec<Case>)]) -> String {
    let mark = |p: bool| if p { "pass" } else { "fail" };
    let mut t = String::from(
        "| config | case | title | IPaddr2 | cloudvip | why cloudvip differs |\n|---|---|---|---|---|---|\n",
    );
    for (name, cloudvip, ipaddr2) in runs {
        for (c, i) in cloudvip.iter().zip(ipaddr2) {
            let why = DIFFERENCES
                .iter()
                .find(|(n, no, _)| n == name && *no == c.no)
                .map_or("", |(_, _, w)| w);
            t += &format!(
                "| {name} | {} | {} | {} | {} | {why} |\n",
                c.no,
                c.title.replace('|', "\\|"),
                mark(i.passed),
                mark(c.passed)
            );
        }
    }
    for (name, cloudvip, ipaddr2) in runs {
        let pass = |v: &[Case]| v.iter().filter(|c| c.passed).count();
        t += &format!(
            "\n{name}: cloudvip passes {} of {}, IPaddr2 {} of {}.",
            pass(cloudvip),
            cloudvip.len(),
            pass(ipaddr2),
            ipaddr2.len()
        );
    }
    t + "\n"
}

/// The generated part of docs/ocft.md; `UPDATE_DOCS=1` rewrites it.
fn check_doc(table: &str) {
    let begin = "<!-- ipaddr2 cases: generated by tests/ocft.rs -->\n";
    let end = "<!-- end of ipaddr2 cases -->";
    let doc = std::fs::read_to_string(DOC).unwrap();
    let (head, rest) = doc
        .split_once(begin)
        .expect("docs/ocft.md lacks the begin marker");
    let (have, tail) = rest
        .split_once(end)
        .expect("docs/ocft.md lacks the end marker");
    if have != table {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(DOC, format!("{head}{begin}{table}{end}{tail}")).unwrap();
        } else {
            panic!(
                "docs/ocft.md's table is stale (UPDATE_DOCS=1 cargo nextest run -E \
                 'test(/ocft::ipaddr2/)' rewrites it); now:\n{table}"
            );
        }
    }
}

#[test]
fn ipaddr2_configs_against_cloudvip_match_the_documented_table() {
    let root = OcfRoot::new();
    let configs = ["IPaddr2", "IPaddr2v4", "IPaddr2v6"];
    // All six runs at once: ocft sleeps a second per agent call, the CPU is idle.
    let runs: Vec<(String, Vec<Case>, Vec<Case>)> = std::thread::scope(|s| {
        let handles: Vec<_> = configs
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(format!("{CONFIGS}/{name}")).unwrap();
                let ours = for_cloudvip(&text);
                let root = &root;
                let c = s.spawn(move || run_isolated(name, &ours, "cloudvip", root));
                let i = s.spawn(move || run_isolated(name, &text, "IPaddr2", root));
                (name.to_string(), c, i)
            })
            .collect();
        handles
            .into_iter()
            .map(|(n, c, i)| (n, c.join().unwrap(), i.join().unwrap()))
            .collect()
    });
    let mut report = String::new();
    for (name, cloudvip, ipaddr2) in &runs {
        report += &format!("== {name}: cloudvip\n{}", summary(cloudvip));
        report += &format!("== {name}: IPaddr2\n{}", summary(ipaddr2));
    }
    println!("{report}");
    let mut wrong = Vec::new();
    for (name, cloudvip, ipaddr2) in &runs {
        assert_eq!(cloudvip.len(), ipaddr2.len(), "{name}: case counts differ");
        for (c, i) in cloudvip.iter().zip(ipaddr2) {
            let explained = DIFFERENCES
                .iter()
                .any(|(n, no, _)| n == name && *no == c.no);
            if c.passed == explained {
                wrong.push(format!(
                    "{name} case {} ({}): cloudvip {}, the table says {}",
                    c.no,
                    c.title,
                    if c.passed { "passes" } else { "fails" },
                    if explained { "fails" } else { "passes" }
                ));
            }
            let i_fails = IPADDR2_FAILS.contains(&(name.as_str(), i.no));
            if i.passed == i_fails {
                wrong.push(format!(
                    "{name} case {}: IPaddr2 {}",
                    i.no,
                    if i.passed { "passes" } else { "fails" }
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}\n{report}", wrong.join("\n"));
    check_doc(&table(&runs));
}
