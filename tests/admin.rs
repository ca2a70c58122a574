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

/// The wait a failed step reports ("no answer within 2.7 s"): the budget it was given,
/// as the agent's own message says it, not a time this test measured.
fn waited_secs(line: &str) -> f64 {
    let (_, rest) = line
        .split_once("no answer within ")
        .unwrap_or_else(|| panic!("no \"no answer within\" in: {line}"));
    rest.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in: {line}"))
}

#[test]
fn diagnose_with_a_hung_metadata_server_says_so_in_its_own_budget_and_skips_the_rest() {
    let g = GceLab::new();
    // Hung, not refused: the connection is accepted and never answered.
    g.fault(
        serde_json::json!({"kind": "hang", "ms": 60000, "cloud": "gce", "service": "metadata"}),
    );
    let r = cli(
        &g,
        2,
        &gce_args(
            &g,
            "diagnose",
            &["-p", "ip=10.128.0.100", "--timeout", "60"],
        ),
    );
    assert!(g.fault_fired(), "the hang never applied");
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_status(&r, "parameters", "ok");
    assert_status(&r, "metadata", "FAIL");
    for s in ["credentials", "permissions", "nic", "subnet"] {
        assert_status(&r, s, "skip");
    }
    let md = step(&r, "metadata");
    // Its own few seconds, not the 54 s the command had: the finding, then the rest.
    let waited = waited_secs(md);
    assert!(waited <= 3.0, "waited {waited} s of a 54 s budget: {md}");
    assert!(!r.stdout.contains("timeout: global"), "{}", r.stdout);
    assert!(md.contains("169.254.169.254"), "names the request: {md}");

    // The API hung instead: metadata and credentials pass, each permission probe reports
    // its own wait, and the NIC (metadata only) is still checked.
    g.clear_faults();
    g.fault(serde_json::json!({"kind": "hang", "ms": 60000, "cloud": "gce", "service": "compute"}));
    let r = cli(
        &g,
        2,
        &gce_args(
            &g,
            "diagnose",
            &["-p", "ip=10.128.0.100", "--timeout", "60"],
        ),
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_status(&r, "metadata", "ok");
    assert_status(&r, "credentials", "ok");
    assert_status(&r, "permissions", "FAIL");
    assert_status(&r, "nic", "ok");
    let p = step(&r, "permissions");
    assert!(p.contains("could not check"), "{p}");
    // (The probes that need the instance's own record are not made without it.)
    for probe in ["compute.instances.get: ", "compute.instances.list: "] {
        let (_, after) = p
            .split_once(probe)
            .unwrap_or_else(|| panic!("{probe} not reported: {p}"));
        let waited = waited_secs(after);
        assert!(waited <= 5.0, "{probe} waited {waited} s: {p}");
    }
    assert!(!p.contains("no time left"), "a probe was starved: {p}");
}

#[test]
fn gce_diagnose_names_the_account_and_only_the_permissions_it_checked() {
    let g = GceLab::new();
    // node-c's account lacks updateNetworkInterface: the fix names that account.
    let r = cli(&g, 3, &gce_args(&g, "diagnose", &["-p", "ip=10.128.0.100"]));
    assert_status(&r, "permissions", "FAIL");
    let fix = fix_after(&r, "permissions");
    assert!(
        fix.contains("--member serviceAccount:readonly@my-project.iam.gserviceaccount.com"),
        "{fix}"
    );
    assert!(!r.stdout.contains("SA_EMAIL"), "{}", r.stdout);
    assert!(
        step(&r, "credentials").contains("readonly@my-project.iam.gserviceaccount.com"),
        "{}",
        r.stdout
    );

    // Without public_ip the addresses are not checked, and not claimed to be.
    let r = cli(&g, 2, &gce_args(&g, "diagnose", &["-p", "ip=10.128.0.100"]));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let p = step(&r, "permissions");
    assert!(
        p.contains("instances.get") && p.contains("updateNetworkInterface"),
        "{p}"
    );
    assert!(
        !p.contains("addresses"),
        "no public_ip, no addresses.get: {p}"
    );
    let r = cli(
        &g,
        2,
        &gce_args(
            &g,
            "diagnose",
            &["-p", "ip=10.128.0.100", "-p", "public_ip=vip-ext"],
        ),
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        step(&r, "permissions").contains("addresses.get"),
        "{}",
        r.stdout
    );
}

#[test]
fn status_says_when_nobody_holds_the_vip() {
    let g = GceLab::new();
    // No instance has 10.128.0.120.
    let vip = "ip=10.128.0.120";
    let r = cli(&g, 2, &gce_args(&g, "status", &["-p", vip]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let row = r
        .stdout
        .lines()
        .find(|l| l.contains("alias 10.128.0.120"))
        .unwrap_or_else(|| panic!("no alias row:\n{}", r.stdout));
    assert!(row.contains("no instance in the region has it"), "{row}");
    assert!(
        r.stdout.contains("nobody holds it in the cloud"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("routes"), "{}", r.stdout);

    // The address configured here by hand, still held by nobody: inconsistent, and said so.
    sh(&[
        "ip",
        "-n",
        g.lab.ns(2),
        "addr",
        "add",
        "10.128.0.120/32",
        "dev",
        "eth0",
    ]);
    let r = cli(&g, 2, &gce_args(&g, "status", &["-p", vip]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("the address is here but nobody holds the VIP in the cloud"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("elsewhere"), "{}", r.stdout);

    // Held by another node: that node is named.
    let r = cli(&g, 2, &gce_args(&g, "status", &["-p", "ip=10.128.0.100"]));
    assert!(
        r.stdout
            .contains("the cloud routes it to node-a nic0 (us-central1-a)"),
        "{}",
        r.stdout
    );
}

/// The OCI lab with node3's instance principal allowed `use` (move) but not `manage`
/// (create) private IPs.
fn oci_lab_without_manage() -> OciLab {
    let c = CloudLab::start(|d| {
        let mut w = crate::oci::world(d);
        crate::clouds::oci::node(&mut w, 3).access = cloudvip_sim::oci::world::Access::Use;
        w
    });
    let api = c.endpoints["oci"]["api"]
        .as_str()
        .unwrap()
        .replace("http://", "https://");
    OciLab { c, api }
}

#[test]
fn oci_diagnose_probes_the_right_to_create_the_private_ip() {
    let o = oci_lab_without_manage();
    // 10.0.1.120 has no private IP object: the first start must create it.
    let r = cli(&o.c, 3, &oci_args(&o, "diagnose", &["-p", "ip=10.0.1.120"]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_status(&r, "permissions", "FAIL");
    let p = step(&r, "permissions");
    assert!(p.contains("manage private-ips (CreatePrivateIp"), "{p}");
    assert!(!p.contains("UpdatePrivateIp"), "use is granted: {p}");
    let fix = fix_after(&r, "permissions");
    assert!(fix.contains("to manage private-ips"), "{fix}");
    // The VIP's private IP exists (on node1): start only moves it; create is a note.
    let r = cli(&o.c, 3, &oci_args(&o, "diagnose", &["-p", "ip=10.0.1.100"]));
    assert_status(&r, "permissions", "ok");
    let p = step(&r, "permissions");
    assert!(p.contains("CreatePrivateIp is not allowed"), "{p}");
    // With every right, create is probed and allowed; the probe created nothing.
    let before = o.c.admin("GET", "/admin/state", None)["oci"]["privateIps"].clone();
    let r = cli(&o.c, 2, &oci_args(&o, "diagnose", &["-p", "ip=10.0.1.120"]));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        step(&r, "permissions").contains("and CreatePrivateIp (probed, nothing changed): allowed"),
        "{}",
        r.stdout
    );
    let after = o.c.admin("GET", "/admin/state", None)["oci"]["privateIps"].clone();
    assert_eq!(before, after, "the probes changed the private IPs");
    let posts: Vec<serde_json::Value> =
        o.c.log()
            .into_iter()
            .filter(|e| {
                e["method"] == "POST"
                    && e["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("/privateIps"))
            })
            .collect();
    assert!(!posts.is_empty(), "no create probe in the request log");

    // OCI's create-only answer that means "not authorized, or it exists" (its API errors
    // page): undecided, never reported as allowed.
    o.c.fault(serde_json::json!({
        "kind": "error", "cloud": "oci", "method": "POST", "path_contains": "/privateIps",
        "status": 409, "code": "NotAuthorizedOrResourceAlreadyExists",
        "message": "You do not have authorization to perform this request, or the resource already exists"
    }));
    let r = cli(&o.c, 2, &oci_args(&o, "diagnose", &["-p", "ip=10.0.1.120"]));
    assert!(o.c.fault_fired(), "the 409 never applied");
    let p = step(&r, "permissions");
    assert!(p.contains("CreatePrivateIp undecided (POST privateIps: HTTP 409 NotAuthorizedOrResourceAlreadyExists: You do not have"), "{p}");
    assert!(!p.contains("and CreatePrivateIp (probed"), "{p}");
}

#[test]
fn a_start_that_runs_out_of_time_says_in_which_step() {
    let g = GceLab::new();
    g.fault(serde_json::json!({"kind": "hang", "ms": 60000, "cloud": "gce", "service": "compute"}));
    let r = g
        .agent(2, "start", &[])
        .env("OCF_RESKEY_CRM_meta_timeout", "8000")
        .run();
    assert!(g.fault_fired(), "the hang never applied");
    assert_eq!(r.code, 1, "{}", r.stderr);
    let reason = r.reason().unwrap_or_default();
    assert!(
        reason.starts_with("transient cloud error: claim: "),
        "the step follows the kind: {reason}"
    );
    assert!(reason.contains("no answer within"), "{reason}");
    assert!(!r.stderr.contains("timeout: global"), "{}", r.stderr);
}
