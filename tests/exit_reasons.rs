//! Exit reasons that survive `pcs status`: Pacemaker keeps 128 bytes of the last
//! `ocf-exit-reason:` line. A real long reason (GCE's 403 for a missing permission, seen
//! through the emulator) reaches it whole and cause first; the full text goes to the log.

use crate::gce::GceLab;

/// Pacemaker's EXIT_REASON_MAX_LEN (lib/services/services_linux.c).
const PACEMAKER_KEEPS: usize = 128;

#[test]
fn a_missing_gce_permission_is_named_within_pacemakers_limit() {
    let g = GceLab::new();
    let log = tempfile::NamedTempFile::new().unwrap();
    // node-c runs as readonly@, which lacks compute.instances.updateNetworkInterface.
    let r = g
        .agent(3, "start", &[("peers", "node-a,node-b")])
        .env("HA_LOGFILE", log.path().to_str().unwrap())
        .run();
    r.expect(4, Some("compute.instances.updateNetworkInterface"));
    let reason = r.reason().unwrap_or_default();
    assert!(
        reason.len() <= PACEMAKER_KEEPS,
        "{} bytes: {reason}",
        reason.len()
    );
    assert!(
        reason.starts_with("permission denied by the cloud: HTTP 403 forbidden: Required "),
        "the kind of failure leads: {reason}"
    );
    assert_eq!(
        r.stderr.matches("ocf-exit-reason:").count(),
        1,
        "{}",
        r.stderr
    );
    // The details Pacemaker would have cut are in the log: the request and the status.
    let logged = std::fs::read_to_string(log.path()).unwrap();
    let details = logged
        .lines()
        .find(|l| l.contains("ERROR: details: "))
        .unwrap_or_else(|| panic!("no details line in the log:\n{logged}"));
    for part in [
        "PATCH projects/my-project/zones/us-central1-a/instances/node-a/updateNetworkInterface",
        "HTTP 403",
        "permission for 'projects/my-project/zones/us-central1-a/instances/node-a'",
    ] {
        assert!(details.contains(part), "{part} missing: {details}");
    }
}

#[test]
fn by_hand_the_details_are_on_stderr_too() {
    // No log configured (an admin at a shell, or Pacemaker without a log file): the
    // details line goes to stderr, which Pacemaker's executor logs, beside the short reason.
    let g = GceLab::new();
    let r = g.agent(3, "start", &[("peers", "node-a,node-b")]).run();
    r.expect(4, Some("compute.instances.updateNetworkInterface"));
    assert!(
        r.stderr
            .contains("ERROR: details: permission denied by the cloud: PATCH "),
        "{}",
        r.stderr
    );
    let last = r.stderr.lines().rfind(|l| l.contains("ocf-exit-reason:"));
    assert!(last.is_some_and(|l| l.len() <= "ocf-exit-reason:".len() + PACEMAKER_KEEPS));
}
