//! Logging as `ocf_log` does it: the tag `cloudvip(<instance>)[pid]`, ERROR/WARNING/INFO/
//! DEBUG prefixes, HA_LOGFILE / HA_DEBUGLOG / syslog, stderr only when nothing else is
//! configured, and exactly one exit-reason line.

use crate::netns::Lab;
use crate::util::Agent;

fn start(lab: &Lab) -> Agent {
    Agent::new("start")
        .params(&[
            ("ip", "10.66.0.100"),
            ("nic", "eth0"),
            ("cloud", "none"),
            ("arp_bg", "false"),
            ("arp_count", "2"),
            ("arp_interval", "10"),
        ])
        .netns(lab.ns(1))
}

#[test]
fn logfile_gets_tagged_lines_and_stderr_stays_clean() {
    let lab = Lab::new(1);
    let log = tempfile::NamedTempFile::new().unwrap();
    let r = start(&lab)
        .env("HA_LOGFILE", log.path().to_str().unwrap())
        .run();
    r.ok();
    assert_eq!(r.stderr, "", "with HA_LOGFILE set nothing goes to stderr");
    let text = std::fs::read_to_string(log.path()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("INFO: added 10.66.0.100/32 on eth0"))
        .unwrap_or_else(|| panic!("{text}"));
    // "Nov 22 07:50:01 cloudvip(VIP)[1234]:    INFO: added ..."
    assert!(line.contains(" cloudvip(VIP)["), "{line}");
    assert!(line.contains("]:    INFO: "), "{line}");
    assert!(
        !text.contains("DEBUG"),
        "debug lines without HA_debug: {text}"
    );
}

#[test]
fn stderr_is_the_fallback() {
    let lab = Lab::new(1);
    let r = start(&lab).run();
    r.ok();
    assert!(r.stderr.contains("cloudvip(VIP)["), "{}", r.stderr);
    assert!(
        r.stderr.contains("]: INFO: added 10.66.0.100/32 on eth0"),
        "{}",
        r.stderr
    );
}

#[test]
fn debug_only_with_ha_debug() {
    let lab = Lab::new(1);
    let dbg = tempfile::NamedTempFile::new().unwrap();
    let r = start(&lab)
        .env("HA_debug", "1")
        .env("HA_DEBUGLOG", dbg.path().to_str().unwrap())
        .env("HA_LOGFILE", "/dev/null")
        .run();
    r.ok();
    let text = std::fs::read_to_string(dbg.path()).unwrap();
    assert!(
        text.contains("DEBUG: announced 10.66.0.100 (1 of 2)"),
        "{text}"
    );
    // HA_debug=0 is what Pacemaker exports when debugging is off: no DEBUG lines.
    let lab2 = Lab::new(1);
    let dbg2 = tempfile::NamedTempFile::new().unwrap();
    start(&lab2)
        .env("HA_debug", "0")
        .env("HA_DEBUGLOG", dbg2.path().to_str().unwrap())
        .env("HA_LOGFILE", "/dev/null")
        .run()
        .ok();
    let text2 = std::fs::read_to_string(dbg2.path()).unwrap();
    assert!(!text2.contains("DEBUG"), "{text2}");
    assert!(text2.contains("INFO: added"), "{text2}");
}

#[test]
fn one_exit_reason_line_logged_as_error() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let r = Agent::new("start")
        .param("ip", "10.0.0.300")
        .env("HA_LOGFILE", log.path().to_str().unwrap())
        .env("OCF_EXIT_REASON_PREFIX", "ocf-exit-reason:")
        .run();
    r.expect(6, Some("not an IPv4 or IPv6 address"));
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(text.contains("ERROR: invalid ip=\"10.0.0.300\""), "{text}");
    // A custom prefix is honoured.
    let r = Agent::new("start")
        .env("OCF_EXIT_REASON_PREFIX", "WHY:")
        .run();
    assert!(
        r.stderr.starts_with("WHY:required parameter ip"),
        "{}",
        r.stderr
    );
}

#[test]
fn syslog_with_ha_logfacility() {
    // A private mount namespace with a tmpfs on /run: a datagram listener at /run/syslog
    // (the syslog crate's second path after /dev/log, via /var/run) receives the record.
    crate::util::require_root();
    let script = r#"
set -e
mount -t tmpfs cvt-run /run
python3 - "$@" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/run/syslog")
open("/run/ready", "w").close()
s.settimeout(10)
print(s.recv(4096).decode(), flush=True)
PY
listener=$!
for i in $(seq 100); do [ -e /run/ready ] && break; sleep 0.05; done
[ -e /dev/log ] && echo "host has /dev/log; the record went there" >&2
OCF_RESOURCE_INSTANCE=VIP HA_LOGFACILITY=local3 OCF_RESKEY_ip=10.0.0.300 "$AGENT" start 2>/dev/null || true
wait $listener
"#;
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .env("AGENT", crate::util::BIN)
        .output()
        .unwrap();
    let got = String::from_utf8_lossy(&out.stdout);
    // <155> = local3 (19) * 8 + err (3)
    assert!(
        got.starts_with("<155>"),
        "{got}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(got.contains("cloudvip(VIP)["), "{got}");
    assert!(got.contains("]: ERROR: invalid ip=\"10.0.0.300\""), "{got}");
}
