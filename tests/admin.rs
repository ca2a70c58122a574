//! The admin CLI against the emulator in namespaces: `status` (one table, local and
//! cloud), `diagnose` (ordered checks with the fix for each failure) in worlds with all
//! permissions, a missing permission (GCE `readonly@` service account, OCI `access =
//! "read"`), a wrong NIC (an interface whose MAC no cloud NIC has) and a VIP outside the
//! subnet; and OCF actions run outside Pacemaker with `--param` / `--config`.

use std::process::Command;

use crate::cloudlab::CloudLab;
use crate::gce::GceLab;
use crate::oci::OciLab;
use crate::util::{sh, Run, BIN};

/// `cloudvip <args>` inside VM `i`'s namespace with only the lab's shared parameters in
/// the environment (the rest comes as --param), as an admin would type it.
fn cli(c: &CloudLab, i: usize, args: &[&str]) -> Run {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", c.lab.ns(i), BIN]).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("OCF_") || k.starts_with("HA_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HA_RSCTMP", c.dir.path())
        .env("OCF_RESKEY_ca_bundle", &c.ca);
    let out = cmd.output().expect("cannot run cloudvip");
    Run::from(
        format!("[{}] cloudvip {}", c.lab.ns(i), args.join(" ")),
        out,
    )
}

fn gce_args<'a>(g: &'a GceLab, cmd: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![cmd, "-p", "cloud=gce", "-p", "nic=eth0", "--param"];
    v.push(Box::leak(
        format!("api_endpoint={}", g.api).into_boxed_str(),
    ));
    v.extend_from_slice(extra);
    v
}

/// The diagnose line of step `name`: "N. name  ok|FAIL|skip  text".
fn step<'a>(r: &'a Run, name: &str) -> &'a str {
    r.stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no {name} step in:\n{}\n{}", r.stdout, r.stderr))
}

fn fix_after<'a>(r: &'a Run, name: &str) -> &'a str {
    let mut lines = r
        .stdout
        .lines()
        .skip_while(|l| l.split_whitespace().nth(1) != Some(name));
    lines.next();
    lines
        .next()
        .filter(|l| l.trim_start().starts_with("fix:"))
        .unwrap_or_else(|| panic!("no fix after {name} in:\n{}", r.stdout))
}

/// An interface `vip0` (MAC 02:66:00:00:00:77, up, with carrier) that no cloud NIC matches:
/// a veth pair inside the VM's namespace (no dummy module needed).
fn wrong_nic(ns: &str) {
    sh(&[
        "ip",
        "-n",
        ns,
        "link",
        "add",
        "vip0",
        "address",
        "02:66:00:00:00:77",
        "type",
        "veth",
        "peer",
        "name",
        "vip1",
    ]);
    sh(&["ip", "-n", ns, "link", "set", "vip0", "up"]);
    sh(&["ip", "-n", ns, "link", "set", "vip1", "up"]);
}

fn assert_status(r: &Run, name: &str, want: &str) {
    let l = step(r, name);
    assert_eq!(
        l.split_whitespace().nth(2),
        Some(want),
        "{name}: {l}\n{}",
        r.stdout
    );
}

#[test]
fn gce_status_shows_the_holder_and_diagnose_passes_without_changing_anything() {
    let g = GceLab::new();
    let vip = "ip=10.128.0.100";
    // node-a holds the alias in the world; start it there by hand, outside Pacemaker.
    let r = cli(
        &g,
        1,
        &gce_args(&g, "start", &["-p", vip, "-p", "public_ip=vip-ext"]),
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(g.holds_locally(1, "10.128.0.100"));

    let r = cli(
        &g,
        1,
        &gce_args(&g, "status", &["-p", vip, "-p", "public_ip=vip-ext"]),
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let row = |what: &str| {
        r.stdout
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what} row:\n{}", r.stdout))
            .to_owned()
    };
    assert!(
        r.stdout.contains("WHERE") && r.stdout.contains("THIS NODE"),
        "{}",
        r.stdout
    );
    let local = row("address 10.128.0.100/32");
    assert!(local.contains("eth0") && local.ends_with("yes"), "{local}");
    let alias = row("alias 10.128.0.100");
    assert!(
        alias.contains("node-a nic0 (us-central1-a)") && alias.ends_with("yes"),
        "{alias}"
    );
    let ext = row("external 203.0.113.10");
    assert!(ext.contains("node-a") && ext.ends_with("yes"), "{ext}");
    assert!(
        r.stdout.contains("this node serves the VIP"),
        "{}",
        r.stdout
    );

    // Seen from node-b: the same holders, not this node; exit 1.
    let r = cli(&g, 2, &gce_args(&g, "status", &["-p", vip]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let alias = r
        .stdout
        .lines()
        .find(|l| l.contains("alias 10.128.0.100"))
        .unwrap_or_default();
    assert!(
        alias.contains("node-a nic0 (us-central1-a)") && alias.ends_with("no"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("this node does not serve the VIP"),
        "{}",
        r.stdout
    );

    let before = (
        g.aliases("node-a"),
        g.aliases("node-b"),
        g.nat_ips("node-a"),
    );
    let r = cli(
        &g,
        2,
        &gce_args(&g, "diagnose", &["-p", vip, "-p", "public_ip=vip-ext"]),
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for s in [
        "parameters",
        "metadata",
        "credentials",
        "permissions",
        "nic",
        "subnet",
    ] {
        assert_status(&r, s, "ok");
    }
    assert!(
        step(&r, "metadata").contains("node-b in us-central1-b"),
        "{}",
        r.stdout
    );
    assert!(
        step(&r, "nic").contains("eth0 (02:66:00:00:00:02) is nic0 of node-b"),
        "{}",
        r.stdout
    );
    assert!(step(&r, "subnet").contains("10.128.0.0/20"), "{}", r.stdout);
    // The checks are in the order.
    let order: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        &order[..6],
        [
            "parameters",
            "metadata",
            "credentials",
            "permissions",
            "nic",
            "subnet"
        ]
    );
    // The permission probe changed nothing.
    assert_eq!(
        before,
        (
            g.aliases("node-a"),
            g.aliases("node-b"),
            g.nat_ips("node-a")
        )
    );
}

#[test]
fn gce_diagnose_names_the_missing_permission_and_the_wrong_nic() {
    let g = GceLab::new();
    // node-c runs as readonly@, which lacks compute.instances.updateNetworkInterface.
    let r = cli(&g, 3, &gce_args(&g, "diagnose", &["-p", "ip=10.128.0.100"]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_status(&r, "metadata", "ok");
    assert_status(&r, "credentials", "ok");
    assert_status(&r, "permissions", "FAIL");
    let p = step(&r, "permissions");
    assert!(
        p.contains("readonly@my-project.iam.gserviceaccount.com lacks compute.instances.updateNetworkInterface"),
        "{p}"
    );
    assert!(!p.contains("compute.instances.get"), "get is granted: {p}");
    let fix = fix_after(&r, "permissions");
    assert!(
        fix.contains("gcloud projects add-iam-policy-binding my-project"),
        "{fix}"
    );
    assert!(
        fix.contains("compute.instances.updateNetworkInterface"),
        "{fix}"
    );

    // A wrong NIC: an interface of node-b whose MAC no GCE NIC has.
    wrong_nic(g.lab.ns(2));
    let mut args = gce_args(&g, "diagnose", &["-p", "ip=10.128.0.100"]);
    args.extend(["-p", "nic=vip0"]);
    let r = cli(&g, 2, &args);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_status(&r, "permissions", "ok");
    assert_status(&r, "nic", "FAIL");
    assert!(
        step(&r, "nic").contains("MAC 02:66:00:00:00:77 of vip0"),
        "{}",
        r.stdout
    );
    let fix = fix_after(&r, "nic");
    assert!(
        fix.contains("set nic=") && fix.contains("nic0 MAC 02:66:00:00:00:02"),
        "{fix}"
    );
    assert_status(&r, "subnet", "skip");

    // A VIP outside the NIC's subnet, on a good NIC.
    let r = cli(&g, 2, &gce_args(&g, "diagnose", &["-p", "ip=10.99.0.5"]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_status(&r, "nic", "ok");
    assert_status(&r, "subnet", "FAIL");
    assert!(
        fix_after(&r, "subnet").contains("alias_range_name"),
        "{}",
        r.stdout
    );

    // A metadata server that does not answer: the first check fails, the rest are skipped.
    let r = cli(
        &g,
        2,
        &gce_args(
            &g,
            "diagnose",
            &[
                "-p",
                "ip=10.128.0.100",
                "-p",
                "metadata_url=http://127.0.0.1:9/",
            ],
        ),
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_status(&r, "metadata", "FAIL");
    assert_status(&r, "credentials", "skip");
}

#[test]
fn actions_run_outside_pacemaker_from_a_config_file() {
    let g = GceLab::new();
    let conf = g.dir.path().join("vip.conf");
    std::fs::write(
        &conf,
        format!(
            "# the VIP as a keepalived notify script would use it\nip=10.128.0.100\ncloud=gce\nnic=eth0\napi_endpoint={}\narp_count=1\n",
            g.api
        ),
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    let r = cli(&g, 2, &["start", "--config", conf, "--timeout", "30"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(g.holds_locally(2, "10.128.0.100"));
    assert!(g.aliases("node-b").contains(&"10.128.0.100/32".to_owned()));
    assert!(!g.aliases("node-a").contains(&"10.128.0.100/32".to_owned()));
    // --param wins over the file; monitor's OCF exit codes are unchanged.
    assert_eq!(cli(&g, 2, &["monitor", "-c", conf]).code, 0);
    assert_eq!(cli(&g, 1, &["monitor", "-c", conf]).code, 7);
    let r = cli(&g, 2, &["monitor", "-c", conf, "-p", "ip=10.128.0.101"]);
    assert_eq!(r.code, 7, "{}\n{}", r.stdout, r.stderr);
    // Bad input ends as OCF_ERR_CONFIGURED with a reason.
    let r = cli(&g, 2, &["monitor", "-c", conf, "-p", "arp_count"]);
    assert_eq!(r.code, 6);
    assert!(
        r.reason()
            .is_some_and(|x| x.contains("expected NAME=VALUE")),
        "{}",
        r.stderr
    );
    let r = cli(&g, 2, &["monitor", "-c", "/nonexistent/vip.conf"]);
    assert_eq!(r.code, 6);
    assert!(
        r.reason()
            .is_some_and(|x| x.contains("cannot read --config")),
        "{}",
        r.stderr
    );
    let r = cli(&g, 2, &["stop", "-c", conf]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!g.holds_locally(2, "10.128.0.100"));
}

fn oci_args<'a>(o: &'a OciLab, cmd: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let api: &'a str = Box::leak(format!("api_endpoint={}", o.api).into_boxed_str());
    let auth: &'a str = Box::leak(format!("auth_endpoint={}", o.api).into_boxed_str());
    let mut v = vec![
        cmd,
        "-p",
        "cloud=oci",
        "-p",
        "nic=eth0",
        "-p",
        api,
        "-p",
        auth,
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn oci_status_and_diagnose_with_read_only_policy_and_wrong_nic() {
    let o = OciLab::new();
    let ip = "ip=10.0.1.100";
    let r = cli(
        &o.c,
        1,
        &oci_args(&o, "status", &["-p", ip, "-p", "public_ip=203.0.113.10"]),
    );
    // The cloud routes it to node1 but the address is not configured there yet.
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let row = r
        .stdout
        .lines()
        .find(|l| l.contains("private 10.0.1.100"))
        .unwrap_or_else(|| panic!("no private IP row:\n{}", r.stdout));
    assert!(
        row.contains("VNIC ocid1.vnic.oc1.iad.aaaaaaaanode1") && row.ends_with("yes"),
        "{row}"
    );
    assert!(r.stdout.contains("public 203.0.113.10"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("inconsistent: the cloud routes the VIP here"),
        "{}",
        r.stdout
    );

    let r = cli(&o.c, 2, &oci_args(&o, "diagnose", &["-p", ip]));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for s in ["metadata", "credentials", "permissions", "nic", "subnet"] {
        assert_status(&r, s, "ok");
    }
    assert!(step(&r, "subnet").contains("10.0.1.0/24"), "{}", r.stdout);
    assert_eq!(
        o.holder("10.0.1.100"),
        "ocid1.vnic.oc1.iad.aaaaaaaanode1",
        "diagnose moved nothing"
    );

    // node3's instance principal may only read.
    let r = cli(&o.c, 3, &oci_args(&o, "diagnose", &["-p", ip]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_status(&r, "credentials", "ok");
    assert_status(&r, "permissions", "FAIL");
    assert!(
        step(&r, "permissions").contains("UpdatePrivateIp"),
        "{}",
        r.stdout
    );
    let fix = fix_after(&r, "permissions");
    assert!(
        fix.contains("Allow dynamic-group") && fix.contains("to use virtual-network-family"),
        "{fix}"
    );

    // A wrong NIC.
    wrong_nic(o.c.lab.ns(2));
    let mut args = oci_args(&o, "diagnose", &["-p", ip]);
    args.extend(["-p", "nic=vip0"]);
    let r = cli(&o.c, 2, &args);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_status(&r, "nic", "FAIL");
    let fix = fix_after(&r, "nic");
    assert!(
        fix.contains("02:66:00:00:00:02") && fix.contains("vnic_id="),
        "{fix}"
    );

    // Outside the subnet.
    let r = cli(&o.c, 2, &oci_args(&o, "diagnose", &["-p", "ip=10.0.2.9"]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_status(&r, "subnet", "FAIL");
}

#[test]
fn help_speaks_to_newcomers_and_ocf_parsing_is_unchanged() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in [
        "status",
        "diagnose",
        "--param <NAME=VALUE>",
        "--config <FILE>",
        "man ocf_rust_cloudvip",
        "keepalived",
    ] {
        assert!(help.contains(want), "--help lacks {want:?}:\n{help}");
    }
    // Parameter errors from the CLI: OCF_ERR_CONFIGURED with the unknown name.
    let out = Command::new(BIN)
        .args(["validate-all", "-p", "ip=10.0.0.1", "-p", "nicc=eth0"])
        .env_remove("OCF_RESKEY_ip")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown parameter \"nicc\""));
    let out = Command::new(BIN)
        .args(["validate-all", "-p", "ip=10.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}
