//! Monitor recovers only on evidence, on both clouds. Pacemaker restarts a VIP on monitor
//! exit 1 just as on 7, so a metadata server or API that cannot be asked (down, 5xx, 429,
//! a hang, a failing token refresh) must not fail a monitor of a VIP the kernel has: exit
//! 0 with a WARNING, within the monitor's short cloud budget. Exit 1 only when the cloud
//! positively routes the VIP elsewhere, 7 when the kernel positively lacks it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cloudlab::CloudLab;
use crate::gce::GceLab;
use crate::oci::{vnic, OciLab, VIP as OCI_VIP};
use crate::util::Agent;

/// A recurring monitor (interval 10 s) at `depth` under `fault`: exit 0, a WARNING that
/// says why, the fault really hit. Prints the row for the closing note.
fn trusts_the_kernel(c: &CloudLab, cloud: &str, a: Agent, depth: &str, fault: Value) {
    c.clear_faults();
    c.fault(fault.clone());
    let t = Instant::now();
    let r = a
        .env("OCF_CHECK_LEVEL", depth)
        .env("OCF_RESKEY_CRM_meta_interval", "10000")
        .run();
    let took = t.elapsed();
    println!(
        "| {cloud} | depth {depth:>2} | {fault} | exit {} | {took:.1?} |",
        r.code
    );
    r.ok();
    assert!(
        r.stderr.contains("WARNING") && r.stderr.contains("cannot ask"),
        "{fault}: no warning\n{}",
        r.stderr
    );
    assert!(c.fault_fired(), "{fault} never fired");
    // Far below the 20 s operation timeout: the monitor has a budget of its own.
    assert!(took < Duration::from_secs(10), "{fault}: {took:?}");
    c.clear_faults();
}

#[test]
fn gce_monitor_needs_evidence_to_fail() {
    let g = GceLab::new();
    g.agent(2, "start", &[]).run().ok();
    for (depth, fault) in [
        (
            "0",
            json!({"kind": "down", "cloud": "gce", "service": "metadata"}),
        ),
        (
            "0",
            json!({"kind": "hang", "ms": 6000, "cloud": "gce", "service": "metadata"}),
        ),
        (
            "0",
            json!({"kind": "error", "status": 503, "cloud": "gce", "service": "metadata"}),
        ),
        (
            "10",
            json!({"kind": "error", "status": 503, "cloud": "gce", "service": "compute"}),
        ),
        (
            "10",
            json!({"kind": "rate_limit", "cloud": "gce", "service": "compute"}),
        ),
        (
            "10",
            json!({"kind": "hang", "ms": 6000, "cloud": "gce", "service": "compute"}),
        ),
        (
            "10",
            json!({"kind": "down", "cloud": "gce", "service": "metadata"}),
        ),
    ] {
        trusts_the_kernel(&g.c, "gce", g.agent(2, "monitor", &[]), depth, fault);
    }
    // Evidence: the alias moved to node-a behind Pacemaker's back. Both the metadata
    // server (depth 0) and the API (depth 10) say so.
    g.agent(1, "start", &[]).run().ok();
    g.agent(2, "monitor", &[])
        .run()
        .expect(1, Some("does not route it here"));
    g.agent(2, "monitor", &[])
        .env("OCF_CHECK_LEVEL", "10")
        .run()
        .expect(1, Some("does not route it here"));
    // Evidence from the kernel: the address is gone.
    g.agent(2, "stop", &[]).run().ok();
    g.agent(2, "monitor", &[]).run().expect(7, None);
}

#[test]
fn oci_monitor_needs_evidence_to_fail() {
    let o = OciLab::new();
    o.agent(1, "start", &[]).run().ok();
    let revoke = || {
        o.c.admin("POST", "/admin/oci/tokens/revoke", None);
    };
    for (depth, fault, fresh_token) in [
        (
            "10",
            json!({"kind": "error", "status": 503, "cloud": "oci", "service": "networking"}),
            false,
        ),
        (
            "10",
            json!({"kind": "error", "status": 429, "cloud": "oci", "service": "networking"}),
            false,
        ),
        (
            "10",
            json!({"kind": "hang", "ms": 6000, "cloud": "oci", "service": "networking"}),
            false,
        ),
        (
            "10",
            json!({"kind": "down", "cloud": "oci", "service": "metadata"}),
            false,
        ),
        (
            "10",
            json!({"kind": "error", "status": 500, "service": "metadata", "api": "imds.identity"}),
            true,
        ),
        (
            "10",
            json!({"kind": "error", "status": 503, "cloud": "oci", "service": "auth"}),
            true,
        ),
    ] {
        if fresh_token {
            // The deep monitor must refresh its token: revoke the cached one.
            revoke();
            for f in std::fs::read_dir(o.c.dir.path()).unwrap().flatten() {
                if f.file_name()
                    .to_string_lossy()
                    .starts_with("cloudvip-oci-token")
                {
                    std::fs::remove_file(f.path()).unwrap();
                }
            }
        }
        trusts_the_kernel(&o.c, "oci", o.agent(1, "monitor", &[]), depth, fault);
    }
    // Depth 0 asks no API at all, so it cannot be disturbed by one.
    o.c.fault(json!({"kind": "down", "cloud": "oci"}));
    o.agent(1, "monitor", &[]).run().ok();
    o.c.clear_faults();
    // Evidence: the private IP moved to node 2 behind Pacemaker's back.
    o.agent(2, "start", &[]).run().ok();
    assert_eq!(o.holder(OCI_VIP), vnic(2));
    o.agent(1, "monitor", &[])
        .env("OCF_CHECK_LEVEL", "10")
        .run()
        .expect(1, Some("does not route it here"));
    o.agent(1, "stop", &[]).run().ok();
    o.agent(1, "monitor", &[]).run().expect(7, None);
}
