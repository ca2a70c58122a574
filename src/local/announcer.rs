//! The background announcer of one VIP (`arp_bg`), owned by its resource: this binary
//! re-executed with the hidden `__announce` subcommand, a daemon of `daemon.rs` (pid file
//! in the state directory; stop and reload end it after checking that the process is
//! still the announcer we started). It ends by itself after its count.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::announce::Announcement;
use super::daemon;
use crate::cloud::format_mac;

/// The hidden subcommand that runs `announce::repeat`.
pub const SUBCOMMAND: &str = "__announce";

/// The pid file of the announcer for `ip` (the VIP is unique in the cluster).
pub fn pidfile(state: &Path, ip: std::net::IpAddr) -> PathBuf {
    state.join(format!("cloudvip-announce-{ip}.pid"))
}

/// The arguments that make the announcer repeat `a` (announcements 2..=count).
pub fn args(a: &Announcement) -> Vec<String> {
    vec![
        SUBCOMMAND.to_owned(),
        a.ifindex.to_string(),
        format_mac(&a.mac),
        a.ip.to_string(),
        a.count.to_string(),
        a.interval.as_millis().to_string(),
    ]
}

/// The announcement from the announcer's arguments (after the subcommand).
pub fn parse(args: &[String]) -> Option<Announcement> {
    let [ifindex, mac, ip, count, interval] = args else {
        return None;
    };
    Some(Announcement {
        ifindex: ifindex.parse().ok()?,
        mac: parse_mac(mac)?,
        ip: ip.parse().ok()?,
        count: count.parse::<u32>().ok()?.min(100),
        interval: Duration::from_millis(interval.parse::<u64>().ok()?.clamp(1, 10_000)),
        background: false,
    })
}

/// `format_mac`'s form back: six colon-separated hex bytes.
pub(super) fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    for (b, p) in m.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

/// Start the announcer for `a`, ending any earlier one of this VIP first, and record it in
/// `pidfile` (`daemon.rs`: the ownership every background process of ours shares).
pub fn spawn(pidfile: &Path, a: &Announcement) -> io::Result<()> {
    end(pidfile);
    let args = args(a);
    daemon::spawn(
        Path::new(daemon::SELF_EXE),
        pidfile,
        SUBCOMMAND,
        &args[1..],
        None,
    )?;
    Ok(())
}

/// End the announcer recorded in `pidfile`, if it still runs, and remove the file.
/// Returns whether one was ended.
pub fn end(pidfile: &Path) -> bool {
    daemon::stop(pidfile, SUBCOMMAND)
}

/// The hidden subcommand: repeat the announcement given by `args` (after the subcommand).
pub fn run(args: &[String]) -> u8 {
    match parse(args) {
        Some(a) => {
            super::announce::repeat(&a);
            0
        }
        None => crate::ocf::Status::ErrArgs.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        let a = Announcement {
            ifindex: 7,
            mac: [2, 0x66, 0, 0, 0, 0xab],
            ip: "fd00:66::100".parse().unwrap(),
            count: 5,
            interval: Duration::from_millis(200),
            background: false,
        };
        let args = args(&a);
        assert_eq!(args[0], SUBCOMMAND);
        assert_eq!(parse(&args[1..]), Some(a));
        assert_eq!(parse(&args[2..]), None);
    }

    #[test]
    fn never_signals_a_process_that_is_not_the_announcer() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.pid");
        // This test process: its pid and start time are real, but it is no announcer.
        let me = std::process::id() as i32;
        let start = daemon::start_time(me).unwrap();
        std::fs::write(&f, format!("{me} {start}\n")).unwrap();
        assert!(!end(&f));
        assert!(!f.exists());
        // A stale file (another start time) is left alone too.
        std::fs::write(&f, format!("{me} {}\n", start + 1)).unwrap();
        assert!(!end(&f));
    }
}
