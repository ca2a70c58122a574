//! The tools admins and Pacemaker use on an agent, against the installed binary:
//! ocf-tester (inside a namespace, so its start/stop cycle runs on a real interface) and
//! crm_resource --validate (what pcs runs on `pcs resource create`).

use std::process::Command;

use crate::netns::Lab;
use crate::util::{install_agent, Run};

fn ocf_tester(lab: &Lab, params: &[&str]) -> Run {
    let agent = install_agent();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", lab.ns(1), "ocf-tester", "-n", "cvtest"]);
    for p in params {
        cmd.args(["-o", p]);
    }
    cmd.arg(&agent);
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

fn crm_validate(options: &[&str]) -> Run {
    install_agent();
    let mut cmd = Command::new("crm_resource");
    cmd.args([
        "--validate",
        "--class",
        "ocf",
        "--provider",
        "rust",
        "--agent",
        "cloudvip",
    ]);
    for o in options {
        cmd.args(["--option", o]);
    }
    Run::from(
        format!("crm_resource --validate {options:?}"),
        cmd.output()
            .expect("crm_resource missing: apt-get install pacemaker-cli-utils"),
    )
}

#[test]
fn crm_resource_validate() {
    let bad = crm_validate(&["ip=10.0.0.300", "cloud=none"]);
    assert_eq!(bad.code, 6, "{}\n{}", bad.stdout, bad.stderr);
    assert!(
        (bad.stdout.clone() + &bad.stderr)
            .contains("invalid ip=\"10.0.0.300\": not an IPv4 or IPv6 address"),
        "{}\n{}",
        bad.stdout,
        bad.stderr
    );
    let good = crm_validate(&["ip=10.0.0.250", "cloud=none"]);
    assert_eq!(good.code, 0, "{}\n{}", good.stdout, good.stderr);
}
