//! `start --dry-run` and `stop --dry-run` against the emulator, both clouds: the plan shows
//! the current holders and the changes in the action's order; the emulator's request log
//! proves that only reads were made, its state and the node's addresses that nothing
//! changed; and the real action run afterwards makes exactly the cloud writes the plan
//! listed, in that order.

use serde_json::Value;

use crate::cloudlab::CloudLab;
use crate::gce::GceLab;
use crate::oci::OciLab;
use crate::util::{Agent, Run};

/// The cloud calls a plan lists ("  1. PATCH projects/…?networkInterface=nic0"), as
/// (method, path without the query).
fn planned_calls(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let (num, rest) = l.trim_start().split_once(". ")?;
            num.parse::<u32>().ok()?;
            let (method, path) = rest.split_once(' ')?;
            let path = path.split('?').next().unwrap_or(path);
            ["GET", "POST", "PUT", "PATCH", "DELETE"]
                .contains(&method)
                .then(|| (method.to_owned(), path.to_owned()))
        })
        .collect()
}

/// Control-plane calls that write: everything but GET and the reads that are POSTs (GCE's
/// `operations/…/wait`, OCI's `publicIps/actions/getByIpAddress`).
fn writes(log: &[Value]) -> Vec<(String, String)> {
    log.iter()
        .filter(|e| e["api_call"] == true)
        .filter(|e| e["method"] != "GET")
        .filter(|e| {
            !e["path"].as_str().is_some_and(|p| {
                p.contains("/actions/getBy") || (p.contains("/operations/") && p.ends_with("/wait"))
            })
        })
        .map(|e| {
            (
                e["method"].as_str().unwrap_or("?").to_owned(),
                e["path"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

/// The plan's calls are the real action's writes, one for one and in order.
fn assert_same(plan: &[(String, String)], done: &[(String, String)], out: &str) {
    assert_eq!(
        plan.len(),
        done.len(),
        "planned {plan:?}\nmade {done:?}\nplan:\n{out}"
    );
    for (p, d) in plan.iter().zip(done) {
        assert!(
            p.0 == d.0 && d.1.ends_with(&p.1),
            "planned {p:?}, made {d:?}\nplan:\n{out}"
        );
    }
}

/// A dry run on VM `i`: it exits 0, the cloud saw reads only, its state and the VM's
/// addresses did not change. Returns the run and the calls it planned.
fn dry(c: &CloudLab, i: usize, agent: Agent, cloud: &str) -> (Run, Vec<(String, String)>) {
    // The cloud's objects; not its call counters and live tokens, which reads change.
    let objects = || {
        let mut v = c.admin("GET", "/admin/state", None)[cloud].clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("calls");
            o.remove("liveTokens");
        }
        v
    };
    let state = objects();
    // (interface, address): not the kernel's own flags, such as DAD's "tentative".
    let addrs = || -> Vec<(String, String)> {
        c.lab
            .addrs(i)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some((f.get(1)?.to_string(), f.get(3)?.to_string()))
            })
            .collect()
    };
    let before = addrs();
    c.clear_log();
    let r = agent.arg("--dry-run").run();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let log = c.log();
    assert!(
        log.iter().any(|e| e["api_call"] == true),
        "the dry run read nothing from the cloud"
    );
    assert_eq!(writes(&log), [], "the dry run wrote");
    assert_eq!(objects(), state, "the cloud changed");
    assert_eq!(addrs(), before, "the node's addresses changed");
    assert!(r.stdout.contains("nothing is changed"), "{}", r.stdout);
    let calls = planned_calls(&r.stdout);
    (r, calls)
}

/// The real action, and the cloud writes it made.
fn real(c: &CloudLab, agent: Agent) -> Vec<(String, String)> {
    c.clear_log();
    agent.run().ok();
    writes(&c.log())
}

#[test]
fn gce_dry_runs_show_the_move_and_the_real_start_and_stop_make_it() {
    let g = GceLab::new();
    let p = [("public_ip", "vip-ext")];
    // On node-b, which would take the VIP (alias and external IP) from node-a.
    let (r, plan) = dry(&g.c, 2, g.agent(2, "start", &p), "gce");
    let out = &r.stdout;
    let holder = out
        .lines()
        .find(|l| l.contains("alias 10.128.0.100"))
        .unwrap_or_else(|| panic!("no holder row:\n{out}"));
    assert!(holder.contains("node-a nic0 (us-central1-a)"), "{out}");
    for step in [
        "remove alias 10.128.0.100/32 from node-a nic0 (us-central1-a)",
        "add alias 10.128.0.100/32 to node-b nic0",
        "netlink: add 10.128.0.100/32 to eth0",
        "announce 10.128.0.100 on eth0",
        "detach the external IP",
        "attach 203.0.113.10 to node-b nic0",
    ] {
        assert!(out.contains(step), "{step} not planned:\n{out}");
    }
    // The order start keeps: the alias leaves node-a, comes here, then the address here.
    let at = |s: &str| out.find(s).unwrap_or(usize::MAX);
    assert!(at("from node-a nic0") < at("to node-b nic0"), "{out}");
    assert!(at("to node-b nic0") < at("netlink: add"), "{out}");
    assert!(at("netlink: add") < at("detach the external IP"), "{out}");
    assert_eq!(
        plan.len(),
        5,
        "two alias PATCHes, three access config calls:\n{out}"
    );

    let done = real(&g.c, g.agent(2, "start", &p));
    assert_same(&plan, &done, out);
    assert!(g.holds_locally(2, "10.128.0.100"));

    // Already here: nothing to change, still only reads.
    let (r, plan) = dry(&g.c, 2, g.agent(2, "start", &p), "gce");
    assert!(
        r.stdout.contains("start would change nothing"),
        "{}",
        r.stdout
    );
    assert_eq!(plan, [], "{}", r.stdout);

    // Stop on the holder: the address, then the alias.
    let (r, plan) = dry(&g.c, 2, g.agent(2, "stop", &p), "gce");
    assert!(
        r.stdout.contains("netlink: delete 10.128.0.100 from eth0")
            && r.stdout
                .contains("remove alias 10.128.0.100/32 from node-b nic0"),
        "{}",
        r.stdout
    );
    let done = real(&g.c, g.agent(2, "stop", &p));
    assert_same(&plan, &done, &r.stdout);
    assert!(!g.holds_locally(2, "10.128.0.100"));

    // Stop where it is not: nothing to change.
    let (r, plan) = dry(&g.c, 1, g.agent(1, "stop", &p), "gce");
    assert!(
        r.stdout.contains("stop would change nothing"),
        "{}",
        r.stdout
    );
    assert_eq!(plan, [], "{}", r.stdout);
}

#[test]
fn a_start_that_would_fail_fails_its_dry_run_the_same_way() {
    let g = GceLab::new();
    // Outside node-b's subnet: start refuses before its first change.
    let p = [("ip", "10.99.0.5")];
    g.c.clear_log();
    let d = g.agent(2, "start", &p).arg("--dry-run").run();
    assert_eq!(writes(&g.c.log()), [], "the dry run wrote");
    let s = g.agent(2, "start", &p).run();
    assert_ne!(s.code, 0, "{}", s.stderr);
    assert_eq!(d.code, s.code, "dry run {}\nstart {}", d.stderr, s.stderr);
    assert_eq!(d.reason(), s.reason());
    // --dry-run is for the actions that change something.
    let r = g.agent(2, "monitor", &[]).arg("--dry-run").run();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.reason().is_some_and(|m| m.contains("--dry-run")),
        "{}",
        r.stderr
    );
}

#[test]
fn oci_dry_runs_show_the_move_and_the_creation_and_the_real_start_makes_them() {
    let o = OciLab::new();
    let p = [("public_ip", "203.0.113.10")];
    // On node2: the private IP moves from node1's VNIC; the public IP follows it.
    let (r, plan) = dry(&o.c, 2, o.agent(2, "start", &p), "oci");
    let out = &r.stdout;
    let holder = out
        .lines()
        .find(|l| l.contains("private 10.0.1.100"))
        .unwrap_or_else(|| panic!("no holder row:\n{out}"));
    assert!(
        holder.contains(&crate::oci::vnic(1)) && holder.ends_with("no"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "move private IP 10.0.1.100 from VNIC {} to VNIC {}",
            crate::oci::vnic(1),
            crate::oci::vnic(2)
        )),
        "{out}"
    );
    assert!(out.contains("netlink: add 10.0.1.100/32 to eth0"), "{out}");
    assert_eq!(plan.len(), 1, "one PUT; the public IP follows:\n{out}");
    let done = real(&o.c, o.agent(2, "start", &p));
    assert_same(&plan, &done, out);
    assert_eq!(o.holder("10.0.1.100"), crate::oci::vnic(2));

    let (r, plan) = dry(&o.c, 2, o.agent(2, "start", &p), "oci");
    assert!(
        r.stdout.contains("start would change nothing"),
        "{}",
        r.stdout
    );
    assert_eq!(plan, [], "{}", r.stdout);

    // A VIP with no private IP object yet, and the spare reserved public IP.
    let p = [("ip", "10.0.1.120"), ("public_ip", "203.0.113.11")];
    let (r, plan) = dry(&o.c, 2, o.agent(2, "start", &p), "oci");
    assert!(
        r.stdout.contains("create private IP 10.0.1.120")
            && r.stdout.contains("assign public IP 203.0.113.11"),
        "{}",
        r.stdout
    );
    assert_eq!(
        plan.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        ["POST", "PUT"],
        "{}",
        r.stdout
    );
    let done = real(&o.c, o.agent(2, "start", &p));
    assert_same(&plan, &done, &r.stdout);

    // Stop: the address goes; OCI keeps the private IP on this VNIC.
    let (r, plan) = dry(&o.c, 2, o.agent(2, "stop", &p), "oci");
    assert!(
        r.stdout.contains("netlink: delete 10.0.1.120 from eth0")
            && r.stdout.contains("nothing in the cloud"),
        "{}",
        r.stdout
    );
    assert_eq!(plan, [], "{}", r.stdout);
    let done = real(&o.c, o.agent(2, "stop", &p));
    assert_eq!(done, [], "stop wrote to the cloud");
}
