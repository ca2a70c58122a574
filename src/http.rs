//! The only place that builds HTTP clients, and the one retry loop. Two agents: one for the
//! cloud APIs (proxy from the `proxy` parameter or the environment, TLS verified against
//! the system trust store or `ca_bundle`), one for the link-local metadata servers (never
//! proxied, plain HTTP as the clouds serve it). Every attempt is bounded by the action's
//! `Deadline`; transport errors, 429 and 5xx are retried with jittered backoff while the
//! deadline allows. Requests and responses are logged by method, URL and status only:
//! headers and bodies can carry tokens.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ureq::http;
use ureq::tls::{RootCerts, TlsConfig};
use ureq::RequestExt as _;

use crate::deadline::{Backoff, Deadline};

/// One attempt never waits longer than this, so that a hung connection leaves room for a
/// retry inside the action's budget.
pub const PER_CALL_CAP: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

#[derive(Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The most one attempt may take (further bounded by the deadline).
    pub per_call: Duration,
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            per_call: PER_CALL_CAP,
        }
    }

    pub fn timeout(mut self, per_call: Duration) -> Self {
        self.per_call = per_call;
        self
    }

    pub fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_owned(), v.into()));
        self
    }

    pub fn json(self, body: &serde_json::Value) -> Self {
        let mut r = self.header("Content-Type", "application/json");
        r.body = body.to_string().into_bytes();
        r
    }

    pub fn form(self, pairs: &[(&str, &str)]) -> Self {
        let encoded: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let mut r = self.header("Content-Type", "application/x-www-form-urlencoded");
        r.body = encoded.join("&").into_bytes();
        r
    }
}

pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// How far this node's clock is behind the server's (negative: ahead), in seconds,
    /// from the answer's `Date` header. Signatures and JWTs carry our time, and a cloud
    /// refuses them when it is minutes off.
    pub fn clock_offset(&self) -> Option<i64> {
        let server = httpdate::parse_http_date(self.header("date")?).ok()?;
        let now = std::time::SystemTime::now();
        Some(match server.duration_since(now) {
            Ok(ahead) => ahead.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        })
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(&self.body).with_context(|| {
            let t = self.text();
            let t: String = t.chars().take(200).collect();
            format!("unexpected response body (HTTP {}): {t}", self.status)
        })
    }
}

/// Why no response came back. Only `Transport` is worth retrying: the other two fail the
/// same way every time, so they end the action at once with their reason.
#[derive(Debug)]
pub enum HttpError {
    /// No usable answer yet: connection refused or reset, DNS, timeouts, a truncated
    /// answer. When the deadline stopped the retries, the last such error.
    Transport(String),
    /// The request cannot be built: a malformed or over-long URL, a bad header or proxy.
    Invalid(String),
    /// The server's certificate is not trusted here (unknown CA, wrong name, expired) or
    /// TLS cannot be set up: the trust store, `ca_bundle` or a TLS-inspecting proxy.
    Tls(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Transport(m) | HttpError::Invalid(m) | HttpError::Tls(m) => f.write_str(m),
        }
    }
}

impl HttpError {
    pub fn is_permanent(&self) -> bool {
        !matches!(self, HttpError::Transport(_))
    }
}

impl std::error::Error for HttpError {}

/// What the user may set about the API connection (parameters `proxy` and `ca_bundle`).
#[derive(Clone, Debug, Default)]
pub struct HttpConfig {
    pub proxy: Option<String>,
    pub ca_bundle: Option<String>,
}

pub struct Http {
    api: ureq::Agent,
    metadata: ureq::Agent,
}

/// TCP connect and TLS handshake together: a server that does not answer them in this
/// time is down or overloaded, and the next attempt may reach it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

fn base_config() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .user_agent(concat!("cloudvip/", env!("CARGO_PKG_VERSION")))
}

impl Http {
    pub fn new(cfg: &HttpConfig) -> anyhow::Result<Self> {
        let roots = match &cfg.ca_bundle {
            Some(path) => RootCerts::from(load_certs(Path::new(path))?),
            // The system trust store: what admins manage with update-ca-certificates,
            // including a private CA for a TLS-inspecting proxy or a private endpoint.
            None => RootCerts::PlatformVerifier,
        };
        let mut api = base_config().tls_config(TlsConfig::builder().root_certs(roots).build());
        if let Some(p) = &cfg.proxy {
            // A proxy URL ureq refuses is the parameter's fault on every node.
            let proxy = ureq::Proxy::new(p)
                .map_err(|e| crate::ocf::Exit::configured(format!("invalid proxy={p:?}: {e}")))?;
            api = api.proxy(Some(proxy));
        }
        // Metadata servers are link-local: a proxy cannot reach them (and must not see
        // their tokens).
        let metadata = base_config().proxy(None).max_redirects(3);
        Ok(Http {
            api: api.build().into(),
            metadata: metadata.build().into(),
        })
    }

    /// A cloud API call, retried on transport errors, 429, 5xx and whatever `retry_also`
    /// says (e.g. GCE's 403 rateLimitExceeded), until `deadline`. A retryable status that
    /// is still failing when the deadline stops the retries is returned as a response, for
    /// the caller to classify.
    pub fn api(
        &self,
        req: &Request,
        deadline: &Deadline,
        retry_also: &dyn Fn(&Response) -> bool,
    ) -> Result<Response, HttpError> {
        send(&self.api, req, deadline, retry_also)
    }

    pub fn metadata(&self, req: &Request, deadline: &Deadline) -> Result<Response, HttpError> {
        send(&self.metadata, req, deadline, &|_| false)
    }
}

fn load_certs(path: &Path) -> anyhow::Result<Vec<ureq::tls::Certificate<'static>>> {
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read ca_bundle {}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(c) =
            item.with_context(|| format!("bad PEM in {}", path.display()))?
        {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        anyhow::bail!("ca_bundle {} holds no certificate", path.display());
    }
    Ok(certs)
}

fn retryable_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// Less than this is no time for a request: a TLS handshake alone is CPU work that no
/// timeout interrupts.
const MIN_ATTEMPT: Duration = Duration::from_millis(100);

/// Between attempts of one request: short first (a dropped connection usually works on
/// the next try), at most 3 s (a 20 s operation still gets several tries), jittered.
const SEND_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_secs(3), true);

fn send(
    agent: &ureq::Agent,
    req: &Request,
    deadline: &Deadline,
    retry_also: &dyn Fn(&Response) -> bool,
) -> Result<Response, HttpError> {
    retry(req, deadline, retry_also, |budget| once(agent, req, budget))
}

/// The retry loop of `send`, with the attempt passed in (`attempt(budget)` must return
/// within `budget`, as ureq's global timeout makes it) so that a test can run the real
/// schedule against a fake clock.
fn retry(
    req: &Request,
    deadline: &Deadline,
    retry_also: &dyn Fn(&Response) -> bool,
    mut attempt: impl FnMut(Duration) -> Result<Response, HttpError>,
) -> Result<Response, HttpError> {
    let mut backoff = SEND_BACKOFF;
    let mut tries = 0u32;
    // The previous attempt's outcome: when no time is left for another, it is the cause.
    let mut last: Option<Result<Response, HttpError>> = None;
    loop {
        tries += 1;
        // ureq's timeout fires late on a loaded machine (2.83 s -> 2.98 s, 6.27 s -> 6.43 s,
        // up to 220 ms measured on two busy cores): a tenth is kept back so the last
        // attempt ends before the deadline.
        let left = deadline.remaining();
        let budget = (left - left / 10).min(req.per_call);
        if budget < MIN_ATTEMPT {
            return last.unwrap_or_else(|| {
                Err(HttpError::Transport(format!(
                    "{} {}: no time left for a request",
                    req.method.as_str(),
                    redact(&req.url)
                )))
            });
        }
        let started = Instant::now();
        let outcome = attempt(budget);
        let ms = started.elapsed().as_millis();
        let again = match &outcome {
            Ok(r) => {
                log::debug!(
                    "{} {} -> {} ({ms} ms)",
                    req.method.as_str(),
                    redact(&req.url),
                    r.status
                );
                retryable_status(r.status) || retry_also(r)
            }
            Err(e) => {
                log::debug!(
                    "{} {} failed after {ms} ms: {e}",
                    req.method.as_str(),
                    redact(&req.url)
                );
                !e.is_permanent()
            }
        };
        if !again {
            return outcome;
        }
        if backoff.wait(deadline).is_err() {
            if tries > 1 {
                log::info!(
                    "{} {}: giving up after {tries} attempts, the deadline is near",
                    req.method.as_str(),
                    redact(&req.url)
                );
            }
            return outcome;
        }
        last = Some(outcome);
    }
}

fn once(agent: &ureq::Agent, req: &Request, budget: Duration) -> Result<Response, HttpError> {
    let mut b = http::Request::builder()
        .method(req.method.as_str())
        .uri(&req.url);
    for (k, v) in &req.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let request = b
        .body(req.body.clone())
        .map_err(|e| HttpError::Invalid(format!("invalid request to {}: {e}", redact(&req.url))))?;
    let result = request
        .with_agent(agent)
        .configure()
        .timeout_global(Some(budget))
        .build()
        .run();
    let mut resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Timeout(ureq::Timeout::Connect)) => {
            return Err(HttpError::Transport(format!(
                "{} {}: no connection (TCP and TLS) within {:.1} s",
                req.method.as_str(),
                redact(&req.url),
                CONNECT_TIMEOUT.min(budget).as_secs_f64()
            )))
        }
        Err(ureq::Error::Timeout(_)) => return Err(timed_out(req, budget, "")),
        Err(e) => return Err(classify(req, e)),
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .body_mut()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::Timeout(_) => timed_out(req, budget, " for the whole body"),
            e => HttpError::Transport(format!(
                "{} {}: reading the body: {e}",
                req.method.as_str(),
                redact(&req.url)
            )),
        })?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// An attempt that ran out of its budget. ureq says "timeout: global", which names neither
/// the request nor the wait.
fn timed_out(req: &Request, budget: Duration, what: &str) -> HttpError {
    HttpError::Transport(format!(
        "{} {}: no answer{what} within {:.1} s",
        req.method.as_str(),
        redact(&req.url),
        budget.as_secs_f64()
    ))
}

/// Which ureq errors are permanent. TLS failures arrive as an I/O error wrapping the
/// rustls error; certificate and configuration problems repeat on every attempt, while an
/// alert or a decode error mid-handshake may be a flaky middlebox and stays retryable.
fn classify(req: &Request, e: ureq::Error) -> HttpError {
    let what = format!("{} {}", req.method.as_str(), redact(&req.url));
    match e {
        ureq::Error::BadUri(m) => {
            HttpError::Invalid(format!("invalid URL {}: {m}", redact(&req.url)))
        }
        ureq::Error::Http(m) => {
            HttpError::Invalid(format!("{what}: cannot build the request: {m}"))
        }
        ureq::Error::InvalidProxyUrl
        | ureq::Error::RequireHttpsOnly(_)
        | ureq::Error::TlsRequired => HttpError::Invalid(format!("{what}: {e}")),
        ureq::Error::Io(io) if tls_is_permanent(&io) => HttpError::Tls(format!(
            "{what}: TLS: {}",
            io.get_ref()
                .map_or_else(|| io.to_string(), |i| i.to_string())
        )),
        ureq::Error::Rustls(r) if rustls_is_permanent(&r) => {
            HttpError::Tls(format!("{what}: TLS: {r}"))
        }
        ureq::Error::Pem(p) => HttpError::Tls(format!("{what}: {p}")),
        e => HttpError::Transport(format!("{what}: {e}")),
    }
}

fn tls_is_permanent(io: &std::io::Error) -> bool {
    io.get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .is_some_and(rustls_is_permanent)
}

fn rustls_is_permanent(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(_)
            | rustls::Error::InvalidCertRevocationList(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType
            | rustls::Error::General(_)
            | rustls::Error::PeerIncompatible(_)
            | rustls::Error::InconsistentKeys(_)
            | rustls::Error::NoApplicationProtocol
    )
}

/// URLs are logged without their query string: query values can be names an admin would
/// rather not see in syslog, and never need to be there to debug a failover.
pub fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Percent-encoding for query values and form fields (RFC 3986 unreserved set kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deadline::testing::FakeClock;

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode("External NAT"), "External%20NAT");
        assert_eq!(encode("a=b&c"), "a%3Db%26c");
        assert_eq!(encode("nic0"), "nic0");
    }

    proptest::proptest! {
        /// The real retry loop of every request, against a fake clock: attempts that fail
        /// (transport errors or 503) after any time within their budget never carry the
        /// request past the deadline.
        #[test]
        fn retries_never_run_past_the_deadline(
            budget_ms in 1u64..120_000,
            per_call_ms in 20u64..20_000,
            costs in proptest::collection::vec((0u64..30_000, proptest::bool::ANY), 1..64),
        ) {
            let clock = FakeClock::new();
            let d = Deadline::with_clock(Duration::from_millis(budget_ms), clock.clone());
            let req = Request::new(Method::Get, "http://127.0.0.1/x")
                .timeout(Duration::from_millis(per_call_ms));
            let mut i = 0;
            let r = retry(&req, &d, &|_| false, |budget| {
                let (cost, reset) = costs[i % costs.len()];
                i += 1;
                assert!(budget <= d.remaining(), "an attempt may not outlive the deadline");
                clock.advance(Duration::from_millis(cost).min(budget));
                if reset {
                    Err(HttpError::Transport("reset".into()))
                } else {
                    Ok(Response { status: 503, headers: Default::default(), body: Vec::new() })
                }
            });
            proptest::prop_assert!(r.is_err() || r.is_ok_and(|r| r.status == 503));
            proptest::prop_assert!(clock.elapsed() <= Duration::from_millis(budget_ms));
        }
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        let clock = FakeClock::new();
        let d = Deadline::with_clock(Duration::from_secs(18), clock.clone());
        let req = Request::new(Method::Get, "https://127.0.0.1/x");
        let mut tries = 0;
        let r = retry(&req, &d, &|_| false, |_| {
            tries += 1;
            Err(HttpError::Tls("UnknownIssuer".into()))
        });
        assert!(matches!(r, Err(HttpError::Tls(_))));
        assert_eq!((tries, clock.elapsed()), (1, Duration::ZERO));
    }
}
