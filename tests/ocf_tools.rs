//! The tools admins and Pacemaker use on an agent, against the built binary in a private
//! OCF root (tests/ocf_root.rs; /usr/lib/ocf is never written): ocf-tester (inside a
//! namespace, so its start/stop cycle runs on a real interface), crm_resource --validate
//! (what pcs runs on `pcs resource create --agent-validation`) and pcs itself on a CIB file.

use std::process::Command;

use crate::netns::Lab;
use crate::ocf_root::OcfRoot;
use crate::util::{install_agent, Run};

fn ocf_tester(lab: &Lab, params: &[&str]) -> Run {
    let root = install_agent();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", lab.ns(1), "ocf-tester", "-n", "cvtest"]);
    for p in params {
        cmd.args(["-o", p]);
    }
    cmd.arg(root.agent());
    Run::from(
        format!("ocf-tester {params:?}"),
        cmd.output()
            .expect("ocf-tester missing: apt-get install resource-agents"),
    )
}

fn assert_passed(r: &Run) {
    assert!(
        r.code == 0 && r.stdout.contains("passed all tests"),
        "ocf-tester failed (exit {}):\n{}\n{}",
        r.code,
        r.stdout,
        r.stderr
    );
}

#[test]
fn ocf_tester_passes_ipv4() {
    let lab = Lab::new(1);
    assert_passed(&ocf_tester(
        &lab,
        &["ip=10.66.0.100", "nic=eth0", "cloud=none"],
    ));
    // ocf-tester's last, informational steps are migrate_to, migrate_from (= start) and
    // reload, so it leaves the VIP started: it must be there, once.
    assert_eq!(
        lab.addrs(1).matches("inet 10.66.0.100/32").count(),
        1,
        "{}",
        lab.addrs(1)
    );
}

#[test]
fn ocf_tester_passes_ipv6_and_route_mode() {
    let lab = Lab::new(1);
    assert_passed(&ocf_tester(&lab, &["ip=fd00:66::100", "cloud=none"]));
    assert_passed(&ocf_tester(
        &lab,
        &["ip=10.66.0.101", "cloud=none", "local_mode=route"],
    ));
}

#[test]
fn crm_resource_validate() {
    let bad = install_agent().crm_validate(&["ip=10.0.0.300", "cloud=none"]);
    assert_eq!(bad.code, 6, "{}\n{}", bad.stdout, bad.stderr);
    assert!(
        (bad.stdout.clone() + &bad.stderr)
            .contains("invalid ip=\"10.0.0.300\": not an IPv4 or IPv6 address"),
        "{}\n{}",
        bad.stdout,
        bad.stderr
    );
    let good = install_agent().crm_validate(&["ip=10.0.0.250", "cloud=none"]);
    assert_eq!(good.code, 0, "{}\n{}", good.stdout, good.stderr);
}

/// `pcs -f <cib> resource create NAME ocf:rust:cloudvip ...`: pcs against a CIB file, no
/// cluster needed, finding the agent through the private root.
fn pcs_create(
    root: &OcfRoot,
    cib: &std::path::Path,
    name: &str,
    agent: &str,
    opts: &[&str],
) -> Run {
    let mut cmd = root.command("pcs");
    cmd.arg("-f")
        .arg(cib)
        .args(["resource", "create", name, agent])
        .args(opts);
    Run::from(
        format!("pcs resource create {name} {agent} {opts:?}"),
        cmd.output().expect("pcs missing: apt-get install pcs"),
    )
}

/// A CIB file with no resource (`cibadmin --empty`), for `pcs -f`; keep the dir alive.
fn empty_cib() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let cib = tmp.path().join("cib.xml");
    std::fs::write(&cib, crate::util::sh(&["cibadmin", "--empty"])).unwrap();
    (tmp, cib)
}

#[test]
fn pcs_refuses_a_duplicate_ip_as_for_ipaddr2() {
    let root = install_agent();
    let (_tmp, cib) = empty_cib();
    let vip = ["ip=10.0.0.5", "cloud=none", "--disabled"];
    let first = pcs_create(&root, &cib, "VIP1", "ocf:rust:cloudvip", &vip);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let dup = pcs_create(&root, &cib, "DUP", "ocf:rust:cloudvip", &vip);
    assert_ne!(dup.code, 0, "pcs accepted a duplicate ip: {}", dup.stdout);
    assert!(
        dup.stderr
            .contains("Value '10.0.0.5' of option 'ip' is not unique")
            && dup.stderr.contains("'VIP1'"),
        "{}",
        dup.stderr
    );
    // Another address is fine, and the refusal is pcs's usual one, as for IPaddr2.
    let other = pcs_create(
        &root,
        &cib,
        "VIP2",
        "ocf:rust:cloudvip",
        &["ip=10.0.0.6", "cloud=none", "--disabled"],
    );
    assert_eq!(other.code, 0, "{}", other.stderr);
    let h = ["ip=10.0.0.9", "--disabled"];
    assert_eq!(
        pcs_create(&root, &cib, "H1", "ocf:heartbeat:IPaddr2", &h).code,
        0
    );
    let hdup = pcs_create(&root, &cib, "H2", "ocf:heartbeat:IPaddr2", &h);
    assert_ne!(hdup.code, 0);
    assert!(hdup.stderr.contains("is not unique"), "{}", hdup.stderr);
    let resources = std::fs::read_to_string(&cib).unwrap();
    assert!(!resources.contains("id=\"DUP\""), "DUP reached the CIB");
}

#[test]
fn pcs_agent_validation_runs_validate_all() {
    // pcs 0.11 runs the agent's validate-all at create only with --agent-validation
    // (README Quick start): a bad address is then refused with the agent's own message.
    let root = install_agent();
    let (_tmp, cib) = empty_cib();
    let bad = ["ip=10.0.0.300", "cloud=none", "--disabled"];
    let plain = pcs_create(&root, &cib, "NOVAL", "ocf:rust:cloudvip", &bad);
    assert_eq!(
        plain.code, 0,
        "without the flag pcs does not ask the agent: {}",
        plain.stderr
    );
    // (another address: the first one is taken now, and pcs would refuse it for that)
    let with = [
        "ip=10.0.0.301",
        "cloud=none",
        "--disabled",
        "--agent-validation",
    ];
    let r = pcs_create(&root, &cib, "VAL", "ocf:rust:cloudvip", &with);
    assert_ne!(
        r.code, 0,
        "pcs accepted an invalid ip with --agent-validation"
    );
    assert!(
        r.stderr.contains("Validation result from agent")
            && r.stderr
                .contains("invalid ip=\"10.0.0.301\": not an IPv4 or IPv6 address"),
        "exit {}: {}\n{}",
        r.code,
        r.stdout,
        r.stderr
    );
    let cib_text = std::fs::read_to_string(&cib).unwrap();
    assert!(cib_text.contains("id=\"NOVAL\"") && !cib_text.contains("id=\"VAL\""));
}
