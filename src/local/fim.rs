//! GCE Fast IP Move announcements (`haPolicy.fastIPMove = GARP_RA`). The VM that is to
//! become the leader sends a gratuitous ARP (IPv4) or an ICMPv6 Router Advertisement (IPv6)
//! and Google "immediately but temporarily" routes the forwarding rule's IP to it; the
//! agent then sets `haPolicy.leader`, and "the new leader instance should continue to send
//! GARP/RA packets periodically every 10 seconds until at least 10 minutes after updating
//! the haPolicy.leader (but stop immediately if it is no longer the leader)"; "wait at
//! least 3 seconds before sending another GARP/RA packet from a different VM instance"
//! (Compute API v1, `BackendServiceHAPolicy.fastIPMove`). The packets follow Google's
//! "GARP and RA packet specifications for HA policy with fast IP move": GARP = ARP *reply*
//! (op 2), sender = target = the /32, target MAC ff:ff:ff:ff:ff:ff; RA = ICMPv6 type 134
//! from the link-local address to ff02::1, hop limit 255, one prefix-information option
//! per moving address with exactly that prefix.
//!
//! The repetitions run in a daemon of `daemon.rs` (the hidden `__fim` subcommand) owned by
//! the resource: stop ends it at once, then waits until 3 s have passed since its last
//! packet, so the next leader's first packet never comes sooner.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::announce::{send_arp, send_icmp6_all_nodes};
use super::daemon::{self, Running};
use crate::cloud::format_mac;
use crate::deadline::Deadline;

/// The hidden subcommand that repeats the announcements.
pub const SUBCOMMAND: &str = "__fim";

/// Google's rule: every 10 s while the leader, for at least 10 minutes after the leader
/// update; 3 s of quiet before another VM may announce.
pub const EVERY: Duration = Duration::from_secs(10);
pub const HOLD: Duration = Duration::from_secs(600);
pub const QUIET: Duration = Duration::from_secs(3);

/// How long a GARP/RA re-route lasts at Google ("approximately 20 minutes"): the RA's
/// prefix lifetimes (Google's specification sets none; our choice).
const RA_LIFETIME: u32 = 1200;

/// What to announce and how often (tests use shorter cadences than Google's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fim {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub ip: IpAddr,
    pub every: Duration,
    pub hold: Duration,
}

/// When to send, as offsets from the first announcement: every `every` after it, the last
/// one the first at or after `leader_set + hold` (the leader update may come a while after
/// the first packet: the cadence stays, the end moves).
pub fn schedule(leader_set: Duration, every: Duration, hold: Duration) -> Vec<Duration> {
    let every = every.max(Duration::from_millis(1));
    let end = leader_set + hold;
    let mut out = Vec::new();
    let mut t = every;
    // Bounded: at most (end / every) + 1 entries, and never more than 10 000.
    while out.len() < 10_000 {
        out.push(t);
        if t >= end {
            break;
        }
        t += every;
    }
    out
}

/// The part of the schedule still ahead `elapsed` after the first announcement: a daemon
/// that starts late (the leader update took a while) keeps the cadence and skips the slots
/// already past instead of sending them in a burst.
pub fn pending(
    leader_set: Duration,
    every: Duration,
    hold: Duration,
    elapsed: Duration,
) -> Vec<Duration> {
    schedule(leader_set, every, hold)
        .into_iter()
        .filter(|t| *t >= elapsed)
        .collect()
}

/// Google's GARP: an ARP reply (op 2) with sender IP = target IP = the moving /32 and the
/// broadcast address as target MAC.
pub fn garp_reply(mac: &[u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    p.extend_from_slice(&(libc::ETH_P_IP as u16).to_be_bytes());
    p.extend_from_slice(&[6, 4]);
    p.extend_from_slice(&2u16.to_be_bytes()); // ARPOP_REPLY
    p.extend_from_slice(mac);
    p.extend_from_slice(&ip.octets());
    p.extend_from_slice(&[0xff; 6]);
    p.extend_from_slice(&ip.octets());
    p
}

/// Google's RA: ICMPv6 type 134 with a source link-layer address option and one prefix
/// information option holding exactly the moving address (/128). Router lifetime 0 (no
/// host may take us for its default router) and neither the on-link nor the autonomous
/// flag (no host changes its addressing): the packet only tells Google who leads. The
/// kernel fills in the checksum.
pub fn ra(mac: &[u8; 6], ip: Ipv6Addr) -> Vec<u8> {
    let mut p = vec![134, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    p.extend_from_slice(&[1, 1]);
    p.extend_from_slice(mac);
    p.extend_from_slice(&[3, 4, 128, 0]);
    p.extend_from_slice(&RA_LIFETIME.to_be_bytes());
    p.extend_from_slice(&RA_LIFETIME.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    p.extend_from_slice(&ip.octets());
    p
}

/// Send one announcement now (start sends the first itself, before the leader update).
pub fn send_now(f: &Fim) -> io::Result<()> {
    match f.ip {
        IpAddr::V4(ip) => send_arp(f.ifindex, &garp_reply(&f.mac, ip)),
        IpAddr::V6(ip) => send_icmp6_all_nodes(f.ifindex, &ra(&f.mac, ip)),
    }
}

pub fn pidfile(state: &Path, ip: IpAddr) -> PathBuf {
    state.join(format!("cloudvip-fim-{ip}.pid"))
}

/// Where the daemon notes when it last sent (unix milliseconds), for stop's quiet gap.
fn lastfile(pidfile: &Path) -> PathBuf {
    pidfile.with_extension("last")
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn args(pidfile: &Path, f: &Fim, first: SystemTime, leader_set: SystemTime) -> Vec<String> {
    vec![
        pidfile.to_string_lossy().into_owned(),
        f.ifindex.to_string(),
        format_mac(&f.mac),
        f.ip.to_string(),
        f.every.as_millis().to_string(),
        f.hold.as_millis().to_string(),
        unix_ms(first).to_string(),
        unix_ms(leader_set).to_string(),
    ]
}

struct Parsed {
    pidfile: PathBuf,
    fim: Fim,
    first_ms: u64,
    leader_set_ms: u64,
}

fn parse(a: &[String]) -> Option<Parsed> {
    let [pf, ifindex, mac, ip, every, hold, first, leader_set] = a else {
        return None;
    };
    Some(Parsed {
        pidfile: PathBuf::from(pf),
        fim: Fim {
            ifindex: ifindex.parse().ok()?,
            mac: super::announcer::parse_mac(mac)?,
            ip: ip.parse().ok()?,
            // Never faster than one a second nor slower than Google's 10 s; at most an hour.
            every: Duration::from_millis(every.parse::<u64>().ok()?.clamp(100, 10_000)),
            hold: Duration::from_millis(hold.parse::<u64>().ok()?.min(3_600_000)),
        },
        first_ms: first.parse().ok()?,
        leader_set_ms: leader_set.parse().ok()?,
    })
}

/// Start the repetitions for `f` (the first packet went out at `first`, the leader was set
/// at `leader_set`), replacing an earlier daemon of this address.
pub fn start_fim(
    state: &Path,
    f: &Fim,
    first: SystemTime,
    leader_set: SystemTime,
) -> io::Result<Running> {
    start_fim_from(Path::new(daemon::SELF_EXE), state, f, first, leader_set)
}

/// `start_fim` with the executable named (the tests run the agent binary).
pub fn start_fim_from(
    exe: &Path,
    state: &Path,
    f: &Fim,
    first: SystemTime,
    leader_set: SystemTime,
) -> io::Result<Running> {
    let pf = pidfile(state, f.ip);
    daemon::stop(&pf, SUBCOMMAND);
    let _ = fs::write(lastfile(&pf), format!("{}\n", unix_ms(first)));
    daemon::spawn(exe, &pf, SUBCOMMAND, &args(&pf, f, first, leader_set), None)
}

/// Start's part, once the address is on interface `ifindex`: the first announcement now
/// (it moves the traffic), then the daemon for the repetitions. The leader update comes
/// after this, at the latest by `deadline` (the end of start): the repetitions run until
/// 10 minutes after that, so at least 10 minutes after the update whenever it lands.
pub fn start_leading(
    state: &Path,
    ifindex: u32,
    mac: [u8; 6],
    ip: IpAddr,
    deadline: &Deadline,
) -> io::Result<Running> {
    let f = Fim {
        ifindex,
        mac,
        ip,
        every: EVERY,
        hold: HOLD,
    };
    let first = SystemTime::now();
    send_now(&f)?;
    start_fim(state, &f, first, first + deadline.remaining())
}

/// Stop announcing `ip` at once (this node is no longer the leader), then wait until
/// `QUIET` has passed since the last packet, at most until `deadline`: the next leader's
/// first packet then never follows ours within 3 s. Returns whether a daemon was ended.
pub fn stop_fim(state: &Path, ip: IpAddr, deadline: &Deadline) -> bool {
    let pf = pidfile(state, ip);
    let ended = daemon::stop(&pf, SUBCOMMAND);
    let last = fs::read_to_string(lastfile(&pf))
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    if let Some(last) = last {
        let since = unix_ms(SystemTime::now()).saturating_sub(last);
        let left = QUIET.saturating_sub(Duration::from_millis(since));
        if !left.is_zero() && deadline.sleep(left).is_err() {
            log::info!("stopped announcing {ip} less than 3 s ago: deadline");
        }
    }
    let _ = fs::remove_file(lastfile(&pf));
    ended
}

/// The hidden subcommand: send the scheduled announcements, then exit; exit at once when
/// the pid file stops naming this process (stop, or a newer start).
pub fn run(a: &[String]) -> u8 {
    let Some(p) = parse(a) else {
        return crate::ocf::Status::ErrArgs.code();
    };
    daemon::exit_when_disowned(&p.pidfile, Duration::from_millis(100));
    let lead = Duration::from_millis(p.leader_set_ms.saturating_sub(p.first_ms));
    let first = UNIX_EPOCH + Duration::from_millis(p.first_ms);
    let elapsed = SystemTime::now().duration_since(first).unwrap_or_default();
    for at in pending(lead, p.fim.every, p.fim.hold, elapsed) {
        let when = first + at;
        if let Ok(wait) = when.duration_since(SystemTime::now()) {
            std::thread::sleep(wait);
        }
        if daemon::owner(&p.pidfile) != daemon::Owner::Me {
            return 0;
        }
        // Noted before the packet leaves: stop may end us in between, and its quiet gap
        // must count from a time no earlier than our last packet.
        let _ = fs::write(
            lastfile(&p.pidfile),
            format!("{}\n", unix_ms(SystemTime::now())),
        );
        let _ = send_now(&p.fim);
    }
    let _ = fs::remove_file(&p.pidfile);
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ten_seconds_until_ten_minutes_after_the_leader_update() {
        // The leader update right after the first packet: 10 s, 20 s, ... 600 s.
        let s = schedule(Duration::ZERO, EVERY, HOLD);
        assert_eq!(s.len(), 60);
        assert_eq!(s[0], EVERY);
        assert_eq!(*s.last().unwrap(), HOLD);
        assert!(
            s.windows(2).all(|w| w[1] - w[0] == EVERY),
            "a steady cadence"
        );
        // The update 25 s after the first packet: the end moves to at least 625 s.
        let s = schedule(Duration::from_secs(25), EVERY, HOLD);
        assert_eq!(*s.last().unwrap(), Duration::from_secs(630));
        assert!(
            s.iter().all(|t| *t >= QUIET),
            "no repeat sooner than 3 s after the first"
        );
        // Started 25 s after the first packet (leader set at 20 s): 30 s, ... 620 s.
        let p = pending(
            Duration::from_secs(20),
            EVERY,
            HOLD,
            Duration::from_secs(25),
        );
        assert_eq!(p.first(), Some(&Duration::from_secs(30)));
        assert_eq!(p.last(), Some(&Duration::from_secs(620)));
        // A nonsense cadence is bounded, never a busy loop.
        assert_eq!(schedule(Duration::ZERO, Duration::ZERO, HOLD).len(), 10_000);
    }

    #[test]
    fn garp_is_a_reply_to_the_broadcast_address() {
        let p = garp_reply(&[2, 0x66, 0, 0, 0, 1], Ipv4Addr::new(10, 66, 1, 100));
        assert_eq!(p.len(), 28);
        assert_eq!(&p[6..8], &[0, 2], "ARPOP_REPLY");
        assert_eq!(&p[8..14], &[2, 0x66, 0, 0, 0, 1]);
        assert_eq!(&p[14..18], &[10, 66, 1, 100]);
        assert_eq!(&p[18..24], &[0xff; 6]);
        assert_eq!(&p[24..28], &p[14..18]);
    }

    #[test]
    fn ra_carries_exactly_the_moving_address() {
        let ip: Ipv6Addr = "fd00:66:1::100".parse().unwrap();
        let p = ra(&[2, 0x66, 0, 0, 0, 2], ip);
        assert_eq!(p.len(), 16 + 8 + 32);
        assert_eq!(p[0], 134, "ND_ROUTER_ADVERT");
        assert_eq!(&p[6..8], &[0, 0], "router lifetime 0");
        assert_eq!(&p[16..18], &[1, 1], "source link-layer address option");
        assert_eq!(
            &p[24..28],
            &[3, 4, 128, 0],
            "prefix information, /128, no L/A"
        );
        assert_eq!(&p[40..56], &ip.octets());
    }

    #[test]
    fn arguments_round_trip() {
        let f = Fim {
            ifindex: 3,
            mac: [2, 0x66, 0, 0, 0, 1],
            ip: "10.66.1.100".parse().unwrap(),
            every: Duration::from_millis(200),
            hold: Duration::from_secs(2),
        };
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a = args(Path::new("/run/x.pid"), &f, t0, t0 + Duration::from_secs(1));
        let p = parse(&a).unwrap();
        assert_eq!(p.fim, f);
        assert_eq!(p.leader_set_ms - p.first_ms, 1000);
        assert!(parse(&a[1..]).is_none());
    }
}
