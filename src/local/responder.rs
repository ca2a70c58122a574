//! The probe responder of load-balancer mode. On Azure and behind Google's internal
//! passthrough load balancer the load balancer's health probe decides which node gets the
//! frontend IP's traffic (floating IP / direct server return: packets keep the frontend IP
//! as destination, so that node must also hold the VIP). This answers the probe on the node
//! that holds the VIP: a TCP probe is accepted and closed; an HTTP probe `GET <path>` gets
//! 200, any other request 404, HTTP/1.0 and 1.1, each connection bounded in size and time.
//!
//! It is a daemon of `daemon.rs` (the hidden `__respond` subcommand): it outlives the
//! action that started it, belongs to its resource through a pid file in the state
//! directory, and ends when stop ends it or its pid file stops naming it. azure-lb runs
//! `nc`/`socat` for this; here it is our own code, so nothing else must be installed.

use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::daemon::{self, Running};
use crate::deadline::Deadline;

/// The hidden subcommand that runs the responder.
pub const SUBCOMMAND: &str = "__respond";

/// The longest an HTTP request head may be; longer ones get 400.
const MAX_HEAD: usize = 8 * 1024;
/// How long one connection may take to send its request (probers send it at once).
const REQUEST_TIME: Duration = Duration::from_secs(2);
/// Connections answered at once; more are closed at accept (a probe retries).
const MAX_ACTIVE: usize = 64;
/// How often the responder checks that its pid file still names it.
const OWNER_CHECK: Duration = Duration::from_secs(1);
/// The longest the monitor's own probe waits for an answer.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// Where the responder listens, as azure-lb's `listen` offers (`ipv4only`, `ipv6enable`),
/// plus both families on one socket whatever `net.ipv6.bindv6only` says, and one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Ipv4,
    Ipv6,
    /// One IPv6 socket that also takes IPv4 (IPv4 alone when the kernel has no IPv6).
    Both,
    /// This address only (bound even before it is configured: IP_FREEBIND).
    Address(IpAddr),
}

/// What the load balancer's probe expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Tcp,
    Http { path: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub port: u16,
    pub listen: Listen,
    pub probe: Probe,
}

impl Spec {
    /// The responder's arguments after the pid file: port, listen, probe.
    pub fn args(&self) -> Vec<String> {
        let listen = match &self.listen {
            Listen::Ipv4 => "ipv4".to_owned(),
            Listen::Ipv6 => "ipv6".to_owned(),
            Listen::Both => "both".to_owned(),
            Listen::Address(ip) => ip.to_string(),
        };
        let probe = match &self.probe {
            Probe::Tcp => "tcp".to_owned(),
            Probe::Http { path } => format!("http:{path}"),
        };
        vec![self.port.to_string(), listen, probe]
    }

    pub fn parse(args: &[String]) -> Option<Spec> {
        let [port, listen, probe] = args else {
            return None;
        };
        let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
        let listen = match listen.as_str() {
            "ipv4" => Listen::Ipv4,
            "ipv6" => Listen::Ipv6,
            "both" => Listen::Both,
            ip => Listen::Address(ip.parse().ok()?),
        };
        let probe = match probe.as_str() {
            "tcp" => Probe::Tcp,
            p => {
                let path = p.strip_prefix("http:")?;
                valid_path(path).ok()?;
                Probe::Http {
                    path: path.to_owned(),
                }
            }
        };
        Some(Spec {
            port,
            listen,
            probe,
        })
    }

    /// Where a local probe reaches the responder: its address, else loopback of each family
    /// it listens on.
    pub fn targets(&self) -> Vec<SocketAddr> {
        let at = |ip: IpAddr| SocketAddr::new(ip, self.port);
        match &self.listen {
            Listen::Ipv4 => vec![at(Ipv4Addr::LOCALHOST.into())],
            Listen::Ipv6 => vec![at(Ipv6Addr::LOCALHOST.into())],
            Listen::Both if ipv6_enabled() => vec![
                at(Ipv4Addr::LOCALHOST.into()),
                at(Ipv6Addr::LOCALHOST.into()),
            ],
            Listen::Both => vec![at(Ipv4Addr::LOCALHOST.into())],
            Listen::Address(ip) => vec![at(*ip)],
        }
    }
}

/// An HTTP probe path: origin-form, visible ASCII, at most 1 KiB (GCE and Azure probes
/// send it verbatim as the request target).
pub fn valid_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} does not start with /"));
    }
    if path.len() > 1024 {
        return Err("longer than 1024 bytes".into());
    }
    if let Some(c) = path.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!("{path:?} holds {c:?} (visible ASCII only)"));
    }
    Ok(())
}

/// The pid file of `resource`'s responder. Resource names are XML ids; anything outside
/// `[A-Za-z0-9._:-]` is %-escaped, so two names never share a file.
pub fn pidfile(state: &Path, resource: &str) -> PathBuf {
    state.join(format!("cloudvip-respond-{}.pid", escape(resource)))
}

fn lockfile(state: &Path, resource: &str) -> PathBuf {
    state.join(format!("cloudvip-respond-{}.lock", escape(resource)))
}

fn escape(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// The outcome of `start_responder`.
#[derive(Debug, PartialEq, Eq)]
pub struct Started {
    pub pid: i32,
    /// An existing responder of this resource with this spec was healthy and kept.
    pub kept: bool,
}

/// Start `resource`'s responder for `spec` (idempotent: a healthy one with the same spec
/// is kept, any other of this resource replaced). Returns once it answers a real probe.
pub fn start_responder(
    state: &Path,
    resource: &str,
    spec: &Spec,
    deadline: &Deadline,
) -> io::Result<Started> {
    start_responder_from(Path::new(daemon::SELF_EXE), state, resource, spec, deadline)
}

/// `start_responder` with the executable named (the tests run the agent binary).
pub fn start_responder_from(
    exe: &Path,
    state: &Path,
    resource: &str,
    spec: &Spec,
    deadline: &Deadline,
) -> io::Result<Started> {
    let _lock = crate::state::lock(&lockfile(state, resource), deadline)?;
    let pf = pidfile(state, resource);
    let mut args = vec![pf.to_string_lossy().into_owned()];
    args.extend(spec.args());
    if let Some(r) = daemon::find(&pf, SUBCOMMAND) {
        let same = r.args().is_some_and(|a| a.get(1..) == Some(&args[..]));
        if same && holds_port(r, spec.port) && responder_answers(spec, deadline).is_ok() {
            log::debug!("responder pid {} of {resource} already answers", r.pid);
            return Ok(Started {
                pid: r.pid,
                kept: true,
            });
        }
        daemon::stop(&pf, SUBCOMMAND);
    }
    let r = daemon::spawn(exe, &pf, SUBCOMMAND, &args, Some(deadline)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("the probe responder on port {} cannot run: {e}", spec.port),
        )
    })?;
    if let Err(e) = responder_answers(spec, deadline) {
        daemon::stop(&pf, SUBCOMMAND);
        return Err(io::Error::new(
            e.kind(),
            format!(
                "the probe responder on port {} does not answer: {e}",
                spec.port
            ),
        ));
    }
    Ok(Started {
        pid: r.pid,
        kept: false,
    })
}

/// End `resource`'s responder, if it runs (stop calls this before removing the address:
/// the load balancer must see the probe fail before the VIP leaves). Returns whether one
/// was ended.
pub fn stop_responder(state: &Path, resource: &str, deadline: &Deadline) -> io::Result<bool> {
    let _lock = crate::state::lock(&lockfile(state, resource), deadline)?;
    Ok(daemon::stop(&pidfile(state, resource), SUBCOMMAND))
}

/// `resource`'s responder, if it runs and holds a listening socket on `port` (a stranger
/// answering on that port is not ours).
pub fn find_responder(state: &Path, resource: &str, port: u16) -> Option<Running> {
    daemon::find(&pidfile(state, resource), SUBCOMMAND).filter(|r| holds_port(*r, port))
}

/// The monitor's check: the responder answers a real probe of `spec` on every address it
/// should listen on; returns the slowest answer's time.
pub fn responder_answers(spec: &Spec, deadline: &Deadline) -> io::Result<Duration> {
    let mut slowest = Duration::ZERO;
    for to in spec.targets() {
        let within = deadline.remaining().min(PROBE_WAIT);
        if within.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no time left to probe",
            ));
        }
        let took = probe(to, &spec.probe, within)
            .map_err(|e| io::Error::new(e.kind(), format!("probe of {to}: {e}")))?;
        slowest = slowest.max(took);
    }
    Ok(slowest)
}

/// One probe as a load balancer sends it; returns how long the answer took.
pub fn probe(to: SocketAddr, probe: &Probe, within: Duration) -> io::Result<Duration> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect_timeout(&to, within)?;
    let Probe::Http { path } = probe else {
        return Ok(t0.elapsed());
    };
    let left = within
        .saturating_sub(t0.elapsed())
        .max(Duration::from_millis(1));
    s.set_read_timeout(Some(left))?;
    s.set_write_timeout(Some(left))?;
    let host = match to {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: cloudvip\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 1024 {
        match s.read(&mut buf)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let status = line.lines().next().unwrap_or("");
    let mut words = status.split(' ');
    match (words.next(), words.next()) {
        (Some(v), Some("200")) if v.starts_with("HTTP/1.") => Ok(t0.elapsed()),
        _ => Err(io::Error::other(format!("answered {status:?}"))),
    }
}

/// Whether process `r` holds a listening TCP socket on `port` (its own network
/// namespace's /proc/<pid>/net/tcp{,6}, matched to its descriptors by inode).
fn holds_port(r: Running, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{}/net/{table}", r.pid)) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(st), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let lport = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if *st == "0A" && lport == Some(port) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", r.pid)) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|l| inodes.iter().any(|i| l.as_os_str() == i.as_str()))
    })
}

fn ipv6_enabled() -> bool {
    Path::new("/proc/net/if_inet6").exists()
}

/// The hidden subcommand: `__respond <pidfile> <port> <listen> <probe>`.
pub fn run(args: &[String]) -> u8 {
    let parsed = args
        .split_first()
        .and_then(|(pf, rest)| Some((PathBuf::from(pf), Spec::parse(rest)?)));
    let Some((pidfile, spec)) = parsed else {
        daemon::ready(Err("bad responder arguments"));
        return crate::ocf::Status::ErrArgs.code();
    };
    let listeners = match bind(&spec) {
        Ok(l) => l,
        Err(e) => {
            daemon::ready(Err(&e.to_string()));
            return crate::ocf::Status::ErrGeneric.code();
        }
    };
    daemon::ready(Ok(()));
    daemon::exit_when_disowned(&pidfile, OWNER_CHECK);
    serve(listeners, Arc::new(spec.probe));
    crate::ocf::Status::ErrGeneric.code()
}

/// The listening sockets for `spec`.
pub fn bind(spec: &Spec) -> io::Result<Vec<TcpListener>> {
    let any4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), spec.port);
    let any6 = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), spec.port);
    let l = match &spec.listen {
        Listen::Ipv4 => listener(any4, None)?,
        Listen::Ipv6 => listener(any6, Some(true))?,
        Listen::Both => match listener(any6, Some(false)) {
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => listener(any4, None)?,
            r => r?,
        },
        Listen::Address(ip) => {
            let to = SocketAddr::new(*ip, spec.port);
            listener(to, ip.is_ipv6().then_some(true))?
        }
    };
    Ok(vec![l])
}

fn listener(at: SocketAddr, only_v6: Option<bool>) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if let Some(v6) = only_v6 {
        s.set_only_v6(v6)?;
    }
    if !at.ip().is_unspecified() {
        // The VIP may come and go under a running responder (or arrive after it).
        match at {
            SocketAddr::V4(_) => s.set_freebind_v4(true)?,
            SocketAddr::V6(_) => s.set_freebind_v6(true)?,
        }
    }
    s.bind(&at.into()).map_err(|e| {
        let why = if e.kind() == io::ErrorKind::AddrInUse {
            "the port is in use".to_owned()
        } else {
            e.to_string()
        };
        io::Error::new(e.kind(), format!("cannot listen on {at}: {why}"))
    })?;
    s.listen(128)?;
    Ok(s.into())
}

/// Accept forever on every listener (one thread each, the last on this one), each
/// connection answered on a thread of its own, at most `MAX_ACTIVE` at once.
pub fn serve(mut listeners: Vec<TcpListener>, probe: Arc<Probe>) {
    let active = Arc::new(AtomicUsize::new(0));
    let Some(last) = listeners.pop() else {
        return;
    };
    for l in listeners {
        let (p, a) = (probe.clone(), active.clone());
        if std::thread::Builder::new()
            .spawn(move || accept_loop(&l, &p, &a))
            .is_err()
        {
            return;
        }
    }
    accept_loop(&last, &probe, &active);
}

fn accept_loop(l: &TcpListener, probe: &Arc<Probe>, active: &Arc<AtomicUsize>) {
    loop {
        let s = match l.accept() {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of descriptors or memory: let the pressure pass instead of spinning.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let Probe::Http { .. } = **probe else {
            // A TCP probe only needs the handshake: closing is the whole answer.
            drop(s);
            continue;
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_ACTIVE {
            active.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let (p, a) = (probe.clone(), active.clone());
        let spawned = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                handle(s, &p);
                a.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Answer one connection: read the request head (bounded in size and time), answer, close.
pub fn handle(mut s: TcpStream, probe: &Probe) {
    let Probe::Http { path } = probe else {
        return;
    };
    let end = Instant::now() + REQUEST_TIME;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = loop {
        if let Some(n) = head_end(&head) {
            head.truncate(n);
            break true;
        }
        if head.len() > MAX_HEAD {
            break false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    };
    let (status, minor) = if complete {
        answer(&head, path)
    } else {
        (400, 1)
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = format!("{reason}\n");
    let msg = format!(
        "HTTP/1.{minor} {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = s.write_all(msg.as_bytes());
    let _ = s.shutdown(Shutdown::Write);
}

/// Where the request head ends (after the blank line), if it has.
fn head_end(b: &[u8]) -> Option<usize> {
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = b.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The status for a request head and the HTTP minor version to answer in:
/// `GET <path>` → 200, another request → 404, not HTTP/1.x → 400.
pub fn answer(head: &[u8], path: &str) -> (u16, u8) {
    let line = head.split(|b| *b == b'\n').next().unwrap_or(b"");
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(line) = std::str::from_utf8(line) else {
        return (400, 1);
    };
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return (400, 1);
    };
    let minor = match version {
        "HTTP/1.0" => 0,
        "HTTP/1.1" => 1,
        _ => return (400, 1),
    };
    // Absolute-form (RFC 9112 3.2.2: servers must accept it): compare its path.
    let target = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    if method == "GET" && target == path {
        (200, minor)
    } else {
        (404, minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(path: &str) -> Probe {
        Probe::Http {
            path: path.to_owned(),
        }
    }

    #[test]
    fn arguments_round_trip() {
        for spec in [
            Spec {
                port: 62503,
                listen: Listen::Both,
                probe: http("/health?x=1"),
            },
            Spec {
                port: 61000,
                listen: Listen::Address("fd00:66::100".parse().unwrap()),
                probe: Probe::Tcp,
            },
            Spec {
                port: 1,
                listen: Listen::Ipv4,
                probe: Probe::Tcp,
            },
        ] {
            assert_eq!(Spec::parse(&spec.args()), Some(spec.clone()));
        }
        let bad = |a: [&str; 3]| Spec::parse(&a.map(String::from));
        assert_eq!(bad(["0", "ipv4", "tcp"]), None);
        assert_eq!(bad(["70000", "ipv4", "tcp"]), None);
        assert_eq!(bad(["80", "ipv5", "tcp"]), None);
        assert_eq!(bad(["80", "ipv4", "udp"]), None);
        assert_eq!(bad(["80", "ipv4", "http:health"]), None);
        assert_eq!(bad(["80", "ipv4", "http:/a b"]), None);
    }

    #[test]
    fn http_answers() {
        let p = "/health";
        assert_eq!(
            answer(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", p),
            (200, 1)
        );
        assert_eq!(answer(b"GET /health HTTP/1.0\r\n\r\n", p), (200, 0));
        assert_eq!(answer(b"GET /health HTTP/1.0\n\n", p), (200, 0));
        assert_eq!(
            answer(b"GET http://10.0.0.5:80/health HTTP/1.1\r\n\r\n", p),
            (200, 1)
        );
        assert_eq!(answer(b"GET /healthz HTTP/1.1\r\n\r\n", p), (404, 1));
        assert_eq!(answer(b"GET /health?a HTTP/1.1\r\n\r\n", p), (404, 1));
        assert_eq!(answer(b"POST /health HTTP/1.0\r\n\r\n", p), (404, 0));
        assert_eq!(answer(b"HEAD /health HTTP/1.1\r\n\r\n", p), (404, 1));
        assert_eq!(answer(b"GET /health HTTP/2.0\r\n\r\n", p), (400, 1));
        assert_eq!(answer(b"GET /health\r\n\r\n", p), (400, 1));
        assert_eq!(answer(b"GET  /health HTTP/1.1\r\n\r\n", p), (400, 1));
        assert_eq!(answer(b"\xff\xfe /health HTTP/1.1\r\n\r\n", p), (400, 1));
        assert_eq!(answer(b"", p), (400, 1));
    }

    #[test]
    fn paths_are_checked() {
        assert!(valid_path("/").is_ok());
        assert!(valid_path("/probe?x=1&y=%20").is_ok());
        for bad in ["", "health", "/a b", "/\u{e9}", "/\t"] {
            assert!(valid_path(bad).is_err(), "{bad:?}");
        }
        assert!(valid_path(&format!("/{}", "a".repeat(1024))).is_err());
    }

    #[test]
    fn pid_files_of_two_resources_never_collide() {
        let d = Path::new("/run/x");
        assert_eq!(
            pidfile(d, "vip-db:0"),
            Path::new("/run/x/cloudvip-respond-vip-db:0.pid")
        );
        assert_ne!(pidfile(d, "a/b"), pidfile(d, "a_b"));
        assert_ne!(pidfile(d, "a%2fb"), pidfile(d, "a/b"));
        assert_eq!(pidfile(d, "../../etc/x").parent(), Some(d));
    }

    /// One connection against `handle` on loopback; returns what the client read.
    fn exchange(request: &[u8], probe: &Probe) -> Vec<u8> {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap();
        let p = probe.clone();
        let server = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            handle(s, &p);
        });
        let mut c = TcpStream::connect(at).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        server.join().unwrap();
        out
    }

    #[test]
    fn a_connection_gets_one_answer_and_is_closed() {
        let p = http("/health");
        let out = exchange(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n", &p);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nOK\n"), "{text}");
        let out = exchange(b"GET /other HTTP/1.0\r\n\r\n", &p);
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.0 404 Not Found\r\n"));
        // A head that never ends within the size bound: 400, never an unbounded read.
        let mut big = b"GET /health HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        let out = exchange(&big, &p);
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 400 "));
    }

    #[test]
    fn a_silent_connection_is_closed_after_the_request_time() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            handle(s, &http("/"));
        });
        let mut c = TcpStream::connect(at).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        c.set_read_timeout(Some(REQUEST_TIME * 5)).unwrap();
        let mut out = Vec::new();
        // EOF (not a timeout of ours): the responder gave up on the request and closed.
        assert_eq!(c.read_to_end(&mut out).unwrap(), 0);
        server.join().unwrap();
    }

    /// Answer `n` connections on `l` (bounded: each within 10 s), then stop.
    fn serve_n(l: TcpListener, probe: Probe, n: usize) -> std::thread::JoinHandle<()> {
        l.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(10);
            let mut done = 0;
            while done < n && Instant::now() < end {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        handle(s, &probe);
                        done += 1;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
    }

    #[test]
    fn probes_reach_an_in_process_responder_on_each_family() {
        for listen in [Listen::Ipv4, Listen::Both] {
            // Port 0 is refused in a spec: bind on a free port found first.
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let spec = Spec {
                port,
                listen,
                probe: http("/p"),
            };
            let mut ls = bind(&spec).unwrap();
            assert_eq!(ls.len(), 1);
            let targets = spec.targets();
            let server = serve_n(ls.remove(0), spec.probe.clone(), targets.len() + 1);
            // The port is taken now: a second responder says so.
            let e = bind(&spec).unwrap_err();
            assert!(e.to_string().contains("the port is in use"), "{e}");
            let dl = Deadline::for_timeout(Some(Duration::from_secs(5)));
            responder_answers(&spec, &dl).unwrap();
            let wrong = Probe::Http {
                path: "/q".to_owned(),
            };
            let e = probe(targets[0], &wrong, Duration::from_secs(2)).unwrap_err();
            assert!(e.to_string().contains("404"), "{e}");
            server.join().unwrap();
        }
    }
}
