//! The background announcer of one VIP (`arp_bg`), owned by its resource. It is this
//! binary re-executed with the hidden `__announce` subcommand, never a bare `fork`: the
//! agent may have threads by then (ureq resolves names on a thread of its own when a
//! timeout applies), and a forked child of a threaded process may only call
//! async-signal-safe functions. Its pid and start time go into a pid file in the state
//! directory; stop and reload end it through that file, after checking that the process
//! is still the announcer we started (a pid can be reused: never signal a stranger).

use std::fs;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::announce::Announcement;
use crate::cloud::format_mac;

/// The hidden subcommand that runs `announce::repeat`.
pub const SUBCOMMAND: &str = "__announce";

/// How long stop waits for the announcer to exit after SIGTERM before SIGKILL.
const EXIT_WAIT: Duration = Duration::from_millis(500);

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
    let mut m = [0u8; 6];
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    for (b, p) in m.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(Announcement {
        ifindex: ifindex.parse().ok()?,
        mac: m,
        ip: ip.parse().ok()?,
        count: count.parse::<u32>().ok()?.min(100),
        interval: Duration::from_millis(interval.parse::<u64>().ok()?.clamp(1, 10_000)),
        background: false,
    })
}

/// Start the announcer for `a`, ending any earlier one of this VIP first, and record it in
/// `pidfile`. Its stdio is /dev/null, so Pacemaker's executor (which reads the agent's
/// pipes) sees them close when the agent exits; its own process group keeps it out of
/// signals meant for the agent's.
pub fn spawn(pidfile: &Path, a: &Announcement) -> io::Result<()> {
    end(pidfile);
    // /proc/self/exe: the running binary even if the package was upgraded under us.
    let child = Command::new("/proc/self/exe")
        .args(args(a))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let pid = child.id() as i32;
    let Some(start) = start_time(pid) else {
        return Err(io::Error::other("the announcer exited at once"));
    };
    if let Err(e) = write_atomic(pidfile, format!("{pid} {start}\n").as_bytes()) {
        // Unowned, it could outlive stop: end it and let the caller announce in front.
        signal(pid, start, libc::SIGKILL);
        return Err(e);
    }
    log::debug!("announcer for {} is pid {pid}", a.ip);
    Ok(())
}

/// End the announcer recorded in `pidfile`, if it still runs, and remove the file.
/// Returns whether one was ended.
pub fn end(pidfile: &Path) -> bool {
    let Ok(text) = fs::read_to_string(pidfile) else {
        return false;
    };
    let mut words = text.split_whitespace();
    let (Some(pid), Some(start)) = (
        words.next().and_then(|w| w.parse::<i32>().ok()),
        words.next().and_then(|w| w.parse::<u64>().ok()),
    ) else {
        let _ = fs::remove_file(pidfile);
        return false;
    };
    let ended = pid > 1 && signal(pid, start, libc::SIGTERM);
    if ended {
        log::debug!("ended the announcer pid {pid}");
    }
    let _ = fs::remove_file(pidfile);
    ended
}

/// Signal `pid` only if it is still the announcer that started at `start` (clock ticks
/// since boot, /proc/<pid>/stat field 22), then wait for it to exit. A pidfd pins the
/// process between the check and the signal, so a pid reused meanwhile is never hit.
fn signal(pid: i32, start: u64, sig: i32) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    let pidfd = (raw >= 0).then(|| {
        // SAFETY: a fresh descriptor we own.
        unsafe { OwnedFd::from_raw_fd(raw) }
    });
    if start_time(pid) != Some(start) || !is_announcer(pid) {
        return false;
    }
    match &pidfd {
        Some(fd) => {
            // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    sig,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            if r < 0 {
                return false;
            }
            if !wait_exit(fd, EXIT_WAIT) {
                // SAFETY: as above.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd.as_raw_fd(),
                        libc::SIGKILL,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    )
                };
                wait_exit(fd, EXIT_WAIT);
            }
        }
        // Kernels before 5.3: the check above and the signal are a few microseconds apart.
        None => {
            // SAFETY: kill has no memory-safety preconditions.
            if unsafe { libc::kill(pid, sig) } < 0 {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    true
}

/// A pidfd becomes readable when its process exits (a zombie counts: it sends nothing).
fn wait_exit(fd: &OwnedFd, within: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd that lives across the call.
    let r = unsafe { libc::poll(&mut p, 1, within.as_millis() as i32) };
    r > 0
}

fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    // rest starts at field 3 (state); starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn is_announcer(pid: i32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.split(|b| *b == 0).any(|arg| arg == SUBCOMMAND.as_bytes()))
        .unwrap_or(false)
}

fn write_atomic(path: &Path, body: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    fs::write(&tmp, body).and_then(|_| fs::rename(&tmp, path))
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
        let start = start_time(me).unwrap();
        std::fs::write(&f, format!("{me} {start}\n")).unwrap();
        assert!(!end(&f));
        assert!(!f.exists());
        // A stale file (another start time) is left alone too.
        std::fs::write(&f, format!("{me} {}\n", start + 1)).unwrap();
        assert!(!end(&f));
    }
}
