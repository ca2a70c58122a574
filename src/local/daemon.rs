//! Background processes owned by a resource (the announcer, the probe responder): this
//! binary re-executed with a hidden subcommand, never a bare `fork` (the agent may have
//! threads by then, and a forked child of a threaded process may only call
//! async-signal-safe functions). Its pid and start time go into a pid file in the state
//! directory; whoever ends it first checks, through a pidfd, that the process is still the
//! one we started (a pid can be reused: never signal a stranger).
//!
//! A daemon that may take a while to be useful (a listener that must bind) reports
//! `ready` or its error on a pipe before the spawner returns, so start fails with the real
//! cause. A long-lived daemon watches its own pid file and exits once the file names
//! another process or is gone: an owner that lost track of it never leaves it running.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::deadline::Deadline;

/// The running binary, even if the package was upgraded under us.
pub const SELF_EXE: &str = "/proc/self/exe";

/// How long `stop` waits for the daemon to exit after SIGTERM before SIGKILL.
const EXIT_WAIT: Duration = Duration::from_millis(500);

/// The longest ready line read from a daemon (its error message included).
const READY_MAX: usize = 1024;

/// A daemon as its pid file records it: the pid and the process's start time (clock
/// ticks since boot, /proc/<pid>/stat field 22), which together name one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Running {
    pub pid: i32,
    pub start: u64,
}

impl Running {
    /// Its command line after the executable (the subcommand first), if it still runs.
    pub fn args(&self) -> Option<Vec<String>> {
        let raw = fs::read(format!("/proc/{}/cmdline", self.pid)).ok()?;
        let mut args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        // The kernel ends every argument with a NUL: the last split is empty.
        if args.last().is_some_and(String::is_empty) {
            args.pop();
        }
        (!args.is_empty()).then(|| args.split_off(1))
    }
}

/// Start `exe subcommand args...` as a daemon and record it in `pidfile`. Its stdio is
/// /dev/null, so Pacemaker's executor (which reads the agent's pipes) sees them close when
/// the agent exits; its own process group keeps it out of signals meant for the agent's;
/// its working directory is `/`, so it pins no mount. With `ready`, wait (until that
/// deadline) for the daemon's [`ready`] report and return its error, if any, as ours.
pub fn spawn(
    exe: &Path,
    pidfile: &Path,
    subcommand: &str,
    args: &[String],
    ready: Option<&Deadline>,
) -> io::Result<Running> {
    // A stale record (a daemon killed behind our back) must go first: the new daemon may
    // look at the file before we have written its pid there, and a file naming another
    // process tells it to exit at once. Callers end a live predecessor before this.
    let _ = fs::remove_file(pidfile);
    let mut child = Command::new(exe)
        .arg(subcommand)
        .args(args)
        .stdin(Stdio::null())
        .stdout(if ready.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::null())
        .current_dir("/")
        .process_group(0)
        .spawn()?;
    let pid = child.id() as i32;
    let Some(start) = start_time(pid) else {
        let _ = child.wait();
        return Err(io::Error::other(format!(
            "the {subcommand} process exited at once"
        )));
    };
    let running = Running { pid, start };
    // The spawn returns while exec is still setting up the new image: until then its
    // cmdline reads empty and `find` would not know it. A moment, bounded.
    for _ in 0..200 {
        if running.args().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let fail = |child: &mut std::process::Child, e: io::Error| {
        // Unowned, it could outlive stop: end it (it is our child: the pid is ours).
        let _ = child.kill();
        let _ = child.wait();
        if read(pidfile) == Some(running) {
            let _ = fs::remove_file(pidfile);
        }
        e
    };
    // The pid file comes before the ready wait: a daemon that watches it may look at once.
    if let Err(e) = write_atomic(pidfile, format!("{pid} {start}\n").as_bytes()) {
        return Err(fail(&mut child, e));
    }
    if let Some(deadline) = ready {
        let Some(out) = child.stdout.take() else {
            return Err(fail(&mut child, io::Error::other("no ready pipe")));
        };
        if let Err(e) = wait_ready(out, deadline, subcommand) {
            return Err(fail(&mut child, e));
        }
    }
    log::debug!("{subcommand} is pid {pid}");
    // Not waited for: it outlives the agent (init or a subreaper reaps it).
    Ok(running)
}

/// The daemon recorded in `pidfile`, if that process still runs and is a `subcommand`.
pub fn find(pidfile: &Path, subcommand: &str) -> Option<Running> {
    let r = read(pidfile)?;
    is_ours(r, subcommand).then_some(r)
}

/// End the `subcommand` daemon recorded in `pidfile`, if it still runs, and remove the
/// file. Returns whether one was ended.
pub fn stop(pidfile: &Path, subcommand: &str) -> bool {
    let recorded = read(pidfile);
    let ended = recorded.is_some_and(|r| signal(r, subcommand, libc::SIGTERM));
    if let (true, Some(r)) = (ended, recorded) {
        log::debug!("ended {subcommand} pid {}", r.pid);
    }
    // A newer daemon may have replaced the file meanwhile: leave that one's record.
    if read(pidfile) == recorded {
        let _ = fs::remove_file(pidfile);
    }
    ended
}

/// The daemon's side of `spawn(.., ready)`: report success or the reason it cannot run,
/// then point stdout at /dev/null, so the spawner's pipe closes and nothing we print
/// later can block or raise SIGPIPE.
pub fn ready(result: Result<(), &str>) {
    let line = match result {
        Ok(()) => "ready\n".to_owned(),
        Err(e) => {
            // One line, bounded: the spawner turns it into an exit reason.
            let e: String = e.chars().filter(|c| !c.is_control()).take(512).collect();
            format!("error {e}\n")
        }
    };
    let mut out = io::stdout().lock();
    let _ = out.write_all(line.as_bytes()).and_then(|_| out.flush());
    if let Ok(null) = fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1 with a descriptor we own; both stay valid.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

/// Whether `pidfile` still names this process; `Missing` when there is no such file.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner {
    Me,
    Other,
    Missing,
}

pub fn owner(pidfile: &Path) -> Owner {
    match fs::read_to_string(pidfile) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Owner::Missing,
        // Unreadable for another reason (a transient error): keep running.
        Err(_) => Owner::Me,
        Ok(text) => match parse(&text) {
            Some(r) if r.pid == std::process::id() as i32 => Owner::Me,
            // Written but not yet complete cannot happen (rename is atomic): a stranger.
            _ => Owner::Other,
        },
    }
}

/// The daemon's side of ownership: a thread that ends this process once `pidfile` names
/// another process, or is gone after having named us (stop removed it, or the state
/// directory went away). A missing file at first is the spawner not done writing it.
pub fn exit_when_disowned(pidfile: &Path, every: Duration) {
    let pidfile = pidfile.to_owned();
    let watch = move || {
        let mut seen = false;
        loop {
            match owner(&pidfile) {
                Owner::Me => seen = true,
                Owner::Other => std::process::exit(0),
                Owner::Missing if seen => std::process::exit(0),
                Owner::Missing => {}
            }
            std::thread::sleep(every);
        }
    };
    if std::thread::Builder::new()
        .name("owner-watch".into())
        .spawn(watch)
        .is_err()
    {
        // Without the watch it is still ended by stop through its pid file.
        log::debug!("no owner watch thread");
    }
}

fn read(pidfile: &Path) -> Option<Running> {
    parse(&fs::read_to_string(pidfile).ok()?)
}

fn parse(text: &str) -> Option<Running> {
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse::<i32>().ok()?;
    let start = words.next()?.parse::<u64>().ok()?;
    (pid > 1).then_some(Running { pid, start })
}

/// Still the process that started at `r.start`, alive (a zombie has exited), and running
/// the `subcommand` (argv[1]).
fn is_ours(r: Running, subcommand: &str) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", r.pid)) else {
        return false;
    };
    let Some((state, start)) = state_and_start(&stat) else {
        return false;
    };
    if start != r.start || matches!(state, 'Z' | 'X') {
        return false;
    }
    r.args()
        .is_some_and(|a| a.first().map(String::as_str) == Some(subcommand))
}

/// Signal `r` only if it is still our `subcommand` daemon, then wait for it to exit. A
/// pidfd pins the process between the check and the signal, so a pid reused meanwhile is
/// never hit.
fn signal(r: Running, subcommand: &str, sig: i32) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, r.pid, 0) } as i32;
    let pidfd = (raw >= 0).then(|| {
        // SAFETY: a fresh descriptor we own.
        unsafe { OwnedFd::from_raw_fd(raw) }
    });
    if !is_ours(r, subcommand) {
        return false;
    }
    match &pidfd {
        Some(fd) => {
            if pidfd_signal(fd, sig) < 0 {
                return false;
            }
            if !wait_exit(fd, EXIT_WAIT) {
                pidfd_signal(fd, libc::SIGKILL);
                wait_exit(fd, EXIT_WAIT);
            }
        }
        // Kernels before 5.3: the check above and the signal are a few microseconds apart.
        None => {
            // SAFETY: kill has no memory-safety preconditions.
            if unsafe { libc::kill(r.pid, sig) } < 0 {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    true
}

fn pidfd_signal(fd: &OwnedFd, sig: i32) -> i64 {
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    }
}

/// A pidfd becomes readable when its process exits (a zombie counts: it sends nothing).
fn wait_exit(fd: &OwnedFd, within: Duration) -> bool {
    poll_in(fd.as_raw_fd(), within)
}

fn poll_in(fd: i32, within: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = within.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one pollfd that lives across the call.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    r > 0
}

/// Read the daemon's ready line: `ready`, or `error <why>`; EOF first means it died.
fn wait_ready(
    mut out: std::process::ChildStdout,
    deadline: &Deadline,
    what: &str,
) -> io::Result<()> {
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    while !line.contains(&b'\n') && line.len() < READY_MAX {
        let left = deadline.remaining();
        if left.is_zero() || !poll_in(out.as_raw_fd(), left) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what} did not report ready in time"),
            ));
        }
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => line.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let text = String::from_utf8_lossy(&line);
    let text = text.trim_end();
    if text == "ready" {
        return Ok(());
    }
    match text.strip_prefix("error ") {
        Some(why) => Err(io::Error::other(why.to_owned())),
        None => Err(io::Error::other(format!(
            "{what} exited before it was ready"
        ))),
    }
}

/// The state letter and start time from /proc/<pid>/stat. The command name may hold
/// spaces and parentheses: fields count from the last ')'.
fn state_and_start(stat: &str) -> Option<(char, u64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    // rest starts at field 3 (state); starttime is field 22.
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18)?.parse().ok()?))
}

pub fn start_time(pid: i32) -> Option<u64> {
    state_and_start(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?).map(|(_, s)| s)
}

fn write_atomic(path: &Path, body: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    fs::write(&tmp, body).and_then(|_| fs::rename(&tmp, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Running {
        let pid = std::process::id() as i32;
        Running {
            pid,
            start: start_time(pid).unwrap(),
        }
    }

    #[test]
    fn never_signals_a_process_that_is_not_the_daemon() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.pid");
        // This test process: its pid and start time are real, but it runs no subcommand.
        let r = me();
        std::fs::write(&f, format!("{} {}\n", r.pid, r.start)).unwrap();
        assert_eq!(find(&f, "__announce"), None);
        assert!(!stop(&f, "__announce"));
        assert!(!f.exists());
        // A stale file (another start time) is left alone too.
        std::fs::write(&f, format!("{} {}\n", r.pid, r.start + 1)).unwrap();
        assert!(!stop(&f, "__announce"));
        // Nonsense and pid 1 are nobody.
        for text in ["", "x y", "1 5", "-4 3"] {
            std::fs::write(&f, text).unwrap();
            assert_eq!(find(&f, "__announce"), None, "{text:?}");
            assert!(!stop(&f, "__announce"));
        }
    }

    #[test]
    fn a_daemon_is_found_by_pid_start_time_and_subcommand_and_stopped() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("s.pid");
        // `sleep 30` stands in for a daemon: argv[1] is the "subcommand" "30".
        let r = spawn(Path::new("/bin/sleep"), &f, "30", &[], None).unwrap();
        assert_eq!(find(&f, "30"), Some(r));
        assert_eq!(r.args(), Some(vec!["30".to_owned()]));
        assert_eq!(find(&f, "31"), None, "another subcommand is a stranger");
        // Stopping as "31": nothing signalled, the record (stale for "31") removed.
        assert!(!stop(&f, "31"));
        assert!(!f.exists());
        assert!(is_ours(r, "30"), "the stranger was not signalled");
        std::fs::write(&f, format!("{} {}\n", r.pid, r.start)).unwrap();
        assert!(stop(&f, "30"));
        assert!(!f.exists());
        // Ended: at most a zombie until this test process reaps it, which is nobody's.
        assert!(!is_ours(r, "30"));
    }

    #[test]
    fn ready_errors_and_silence_become_the_spawners_errors() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("r.pid");
        let dl = Deadline::for_timeout(Some(Duration::from_secs(4)));
        let sh = Path::new("/bin/sh");
        let script = |s: &str| vec![s.to_owned()];
        let e = spawn(
            sh,
            &f,
            "-c",
            &script("echo 'error port 61000 in use'"),
            Some(&dl),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "port 61000 in use");
        assert!(!f.exists(), "a failed start leaves no record");
        let e = spawn(sh, &f, "-c", &script("exit 3"), Some(&dl)).unwrap_err();
        assert!(e.to_string().contains("exited before it was ready"), "{e}");
        let short = Deadline::for_timeout(Some(Duration::from_millis(600)));
        let e = spawn(sh, &f, "-c", &script("sleep 5"), Some(&short)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(!f.exists());
        let r = spawn(
            sh,
            &f,
            "-c",
            &script("echo ready; exec sleep 30"),
            Some(&dl),
        )
        .unwrap();
        assert_eq!(read(&f), Some(r));
        // After its exec (soon after "ready") the daemon's argv[1] is sleep's "30".
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while find(&f, "30").is_none() && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(stop(&f, "30"));
    }

    #[test]
    fn ownership_follows_the_pid_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("o.pid");
        assert_eq!(owner(&f), Owner::Missing);
        let r = me();
        std::fs::write(&f, format!("{} {}\n", r.pid, r.start)).unwrap();
        assert_eq!(owner(&f), Owner::Me);
        std::fs::write(&f, format!("{} 1\n", r.pid + 1)).unwrap();
        assert_eq!(owner(&f), Owner::Other);
        std::fs::write(&f, "garbage").unwrap();
        assert_eq!(owner(&f), Owner::Other);
    }

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0";
        assert_eq!(state_and_start(stat), Some(('S', 777)));
        assert_eq!(state_and_start("42 (x) Z"), None);
    }
}
