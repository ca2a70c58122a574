//! The listeners: std `TcpListener`s with optional rustls, one thread per connection, each
//! request classified by its cloud's [`Service`], passed through fault injection, handled
//! and logged. Every loop here polls the shared stop flag, so `SimHandle::drop` (or
//! `--max-seconds`) ends them all within a fraction of a second.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::faults::{Fault, FaultKind, Faults};
use crate::http::{self, ReadError, Request, Response};
use crate::reqlog::{LogEntry, RequestLog};

/// Connections served at once per listener; more are closed at accept.
const MAX_CONNECTIONS: usize = 256;
/// How long an idle keep-alive connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one request may take to arrive once started.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Granularity of stop-flag polling.
const POLL: Duration = Duration::from_millis(50);
/// How long a request whose answer would be lost (see [`Service::respond`]) is held open.
const UNANSWERED_HOLD: Duration = Duration::from_secs(30);

/// State shared by every listener and the admin API.
pub struct Core {
    pub faults: Faults,
    pub log: RequestLog,
    pub secrets: crate::secrets::Secrets,
    pub stop: AtomicBool,
    pub started: Instant,
}

impl Core {
    pub fn new() -> Self {
        Core {
            faults: Faults::default(),
            log: RequestLog::default(),
            secrets: crate::secrets::Secrets::default(),
            stop: AtomicBool::new(false),
            started: Instant::now(),
        }
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps up to `d`, waking early when the emulator stops. Returns false if stopped.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            thread::sleep((end - now).min(POLL));
        }
    }
}

impl Default for Core {
    fn default() -> Self {
        Self::new()
    }
}

/// What a request is, as far as faults and the log care.
#[derive(Clone, Debug)]
pub struct Call {
    /// `gce`, `oci`, `admin`.
    pub cloud: &'static str,
    /// The cloud's service: `compute`, `metadata`, `oauth`, ...
    pub service: &'static str,
    /// API method id (`compute.instances.get`); None when the path matched nothing.
    pub api: Option<String>,
    /// Instance the request is about, or that is asking (metadata).
    pub instance: Option<String>,
    /// Control-plane API call (counted separately from metadata/token traffic).
    pub api_call: bool,
    /// Changes state (creates an operation, ...): effect faults apply only to these.
    pub mutation: bool,
}

impl Call {
    pub fn new(cloud: &'static str, service: &'static str) -> Self {
        Call {
            cloud,
            service,
            api: None,
            instance: None,
            api_call: false,
            mutation: false,
        }
    }
}

/// One cloud-facing HTTP service (a metadata server, a Compute API, an admin API...).
/// This is the plug-in point for a cloud: implement it and register a listener for it.
pub trait Service: Send + Sync + 'static {
    /// Classifies a request (no state change).
    fn classify(&self, req: &Request) -> Call;
    /// Classifies a connection before any byte is read, for `down` faults. `None`: no
    /// connection-level faults on this listener.
    fn connection_call(&self, _peer: SocketAddr) -> Option<Call> {
        None
    }
    /// Handles a request; `effects` are the effect faults that matched (mutations only).
    fn handle(&self, req: &Request, call: &Call, effects: &[Fault]) -> Response;
    /// Like `handle`, but `None` when the answer would never reach the client (AWS IMDS
    /// hop limit): nothing is sent and the connection is held open, then closed.
    fn respond(&self, req: &Request, call: &Call, effects: &[Fault]) -> Option<Response> {
        Some(self.handle(req, call, effects))
    }
    /// The response for an `error` or `rate_limit` fault, in this cloud's error format.
    fn fault_response(&self, call: &Call, fault: &Fault) -> Response;
    /// Whether requests go to the request log (the admin API's own do not).
    fn logged(&self) -> bool {
        true
    }
}

/// A listener to start.
pub struct ListenerSpec {
    pub addr: SocketAddr,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub service: Arc<dyn Service>,
}

/// Binds and starts the accept loop; returns the bound address (port resolved).
pub fn spawn_listener(
    core: Arc<Core>,
    spec: ListenerSpec,
) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(spec.addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let active = Arc::new(AtomicUsize::new(0));
    let handle = thread::Builder::new()
        .name(format!("listen-{local}"))
        .spawn(move || accept_loop(core, listener, spec, active))?;
    Ok((local, handle))
}

fn accept_loop(
    core: Arc<Core>,
    listener: TcpListener,
    spec: ListenerSpec,
    active: Arc<AtomicUsize>,
) {
    while !core.stopped() {
        match listener.accept() {
            Ok((stream, peer)) => {
                if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                    continue; // dropped: the client sees a closed connection
                }
                if let Some(call) = spec.service.connection_call(peer) {
                    if core.faults.check_down(&call).is_some() {
                        reset(&stream);
                        continue;
                    }
                }
                active.fetch_add(1, Ordering::SeqCst);
                let (core, svc, tls, active) = (
                    core.clone(),
                    spec.service.clone(),
                    spec.tls.clone(),
                    active.clone(),
                );
                let spawned =
                    thread::Builder::new()
                        .name(format!("conn-{peer}"))
                        .spawn(move || {
                            connection(core, svc, tls, stream, peer);
                            active.fetch_sub(1, Ordering::SeqCst);
                        });
                if spawned.is_err() {
                    // Out of threads: the stream was moved into the failed closure and closed.
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(_) => thread::sleep(POLL),
        }
    }
}

/// Closes with a TCP RST (SO_LINGER 0), as a crashed or firewalled server would.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
    let _ = stream.shutdown(std::net::Shutdown::Read);
}

/// Read wrapper that waits through read timeouts until a deadline, polling the stop flag.
struct Patient<S> {
    inner: S,
    core: Arc<Core>,
    deadline: Instant,
}

impl<S: Read> Read for Patient<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.core.stopped() || Instant::now() >= self.deadline {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "idle"));
                    }
                }
                other => return other,
            }
        }
    }
}

impl<S: Write> Write for Patient<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn connection(
    core: Arc<Core>,
    svc: Arc<dyn Service>,
    tls: Option<Arc<rustls::ServerConfig>>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_nodelay(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let Ok(raw) = stream.try_clone() else { return };
    match tls {
        None => serve(core, svc, stream, &raw, peer, local, false),
        Some(cfg) => {
            let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                return;
            };
            let tls_stream = rustls::StreamOwned::new(conn, stream);
            serve(core, svc, tls_stream, &raw, peer, local, true)
        }
    }
}

fn serve<S: Read + Write>(
    core: Arc<Core>,
    svc: Arc<dyn Service>,
    stream: S,
    raw: &TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    tls: bool,
) {
    let mut reader = BufReader::new(Patient {
        inner: stream,
        core: core.clone(),
        deadline: Instant::now() + IDLE_TIMEOUT,
    });
    loop {
        crate::clock::set_skew(0);
        reader.get_mut().deadline = Instant::now() + IDLE_TIMEOUT;
        let req = match http::read_request(&mut reader, peer, local, tls) {
            Ok(r) => r,
            Err(ReadError::Bad(msg)) => {
                let resp = Response::text(400, "text/plain", format!("bad request: {msg}\n"));
                let _ = http::write_response(reader.get_mut(), &resp, true);
                return;
            }
            Err(_) => return,
        };
        reader.get_mut().deadline = Instant::now() + REQUEST_TIMEOUT;
        let began = Instant::now();
        let call = svc.classify(&req);
        // The admin API is never subject to faults (it is how tests clear them).
        let decision = if svc.logged() {
            core.faults.check(&call, &req.method, &req.path)
        } else {
            crate::faults::Decision::default()
        };
        let mut status = None;
        let mut close = req.close;
        let mut unanswered = false;
        if !decision.latency.is_zero() && !core.sleep(decision.latency) {
            return;
        }
        crate::clock::set_skew(decision.skew_secs);
        let outcome = match &decision.terminal {
            Some(f) if f.spec.kind == FaultKind::Reset || f.spec.kind == FaultKind::Down => {
                reset(raw);
                None
            }
            Some(f) if f.spec.kind == FaultKind::Hang => {
                core.sleep(f.spec.delay());
                close = true;
                None
            }
            Some(f) if f.spec.kind == FaultKind::Body => Some(Response::text(
                f.spec.status.unwrap_or(200),
                "application/json",
                f.spec.message.clone().unwrap_or_default(),
            )),
            Some(f) if f.spec.kind == FaultKind::Truncate => {
                let mut r = svc.handle(&req, &call, &decision.effects);
                r.body.truncate(r.body.len() / 2);
                Some(r)
            }
            Some(f) => Some(svc.fault_response(&call, f)),
            None => {
                let r = svc.respond(&req, &call, &decision.effects);
                unanswered = r.is_none();
                r
            }
        };
        core.secrets.from_request(&req);
        if let Some(resp) = &outcome {
            status = Some(resp.status);
            core.secrets.from_response(resp);
        }
        if svc.logged() {
            core.log.push(LogEntry {
                seq: 0,
                t_ms: core.started.elapsed().as_millis() as u64,
                cloud: call.cloud,
                service: call.service,
                method: req.method.clone(),
                path: req.path.clone(),
                query: req.raw_query.clone(),
                status,
                instance: call.instance.clone(),
                api: call.api.clone(),
                api_call: call.api_call,
                faults: decision.applied.clone(),
                duration_ms: began.elapsed().as_millis() as u64,
            });
        }
        if unanswered {
            // Logged (status null) before the silence, so tests see it at once.
            core.sleep(UNANSWERED_HOLD);
            return;
        }
        let Some(resp) = outcome else { return };
        if http::write_response(reader.get_mut(), &resp, close).is_err() || close {
            return;
        }
    }
}
