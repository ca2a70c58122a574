//! HTTP/1.1 wire format on plain std streams: parse one request, write one response.
//! Owns no routing, no state and no sockets; `server.rs` drives connections and hands each
//! parsed [`Request`] to a cloud's `Service`. Deliberately small: keep-alive,
//! `Content-Length` and chunked request bodies, nothing else (no HTTP/2, no pipelining tricks).

use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::net::SocketAddr;

/// Largest header block and body we accept; real clients send far less.
const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// One parsed request. `path` is the raw (still percent-encoded) path without the query.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub raw_query: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
    /// HTTP/1.0 or `Connection: close`: close after answering.
    pub close: bool,
}

impl Request {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// First query parameter with this (exact) name, percent-decoded.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Path split on `/`, each segment percent-decoded; empty segments kept except the first.
    pub fn segments(&self) -> Vec<String> {
        self.path
            .split('/')
            .skip(1)
            .map(|s| percent_decode(s, false))
            .collect()
    }

    /// Body as JSON; `Err` carries a message fit for a 400.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("Invalid JSON payload received. {e}"))
    }
}

/// One response. Headers are written in order; `Content-Length`, `Date` and `Connection`
/// are added by [`write_response`].
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        // Pretty-printed like Google's front ends; clients do not care, humans reading logs do.
        let body = serde_json::to_vec_pretty(value).unwrap_or_default();
        Response::new(status)
            .header("Content-Type", "application/json; charset=UTF-8")
            .body(body)
    }

    pub fn text(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response::new(status)
            .header("Content-Type", content_type)
            .body(body.into())
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request could not be read. `Closed` is the normal end of a keep-alive connection.
#[derive(Debug)]
pub enum ReadError {
    Closed,
    Io(io::Error),
    Bad(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Closed => write!(f, "connection closed"),
            ReadError::Io(e) => write!(f, "i/o: {e}"),
            ReadError::Bad(m) => write!(f, "bad request: {m}"),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

fn read_line<R: BufRead>(r: &mut R, budget: &mut usize) -> Result<String, ReadError> {
    let mut buf = Vec::new();
    let n = Read::by_ref(r)
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Err(ReadError::Closed);
    }
    if n > *budget {
        return Err(ReadError::Bad("header block too large".into()));
    }
    *budget -= n;
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    String::from_utf8(buf).map_err(|_| ReadError::Bad("header is not UTF-8".into()))
}

/// Reads one request. Returns `Closed` when the peer closed before sending anything.
pub fn read_request<R: BufRead>(
    r: &mut R,
    peer: SocketAddr,
    local: SocketAddr,
    tls: bool,
) -> Result<Request, ReadError> {
    let mut budget = MAX_HEADER_BYTES;
    let mut line = read_line(r, &mut budget)?;
    // Tolerate stray CRLFs between keep-alive requests (RFC 9112 §2.2).
    while line.is_empty() {
        line = read_line(r, &mut budget)?;
    }
    let mut parts = line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v)) if !m.is_empty() && !t.is_empty() => (m, t, v),
        _ => return Err(ReadError::Bad(format!("bad request line {line:?}"))),
    };
    let mut headers = Vec::new();
    loop {
        let h = match read_line(r, &mut budget) {
            Err(ReadError::Closed) => return Err(ReadError::Bad("eof in headers".into())),
            other => other?,
        };
        if h.is_empty() {
            break;
        }
        let Some((k, v)) = h.split_once(':') else {
            return Err(ReadError::Bad(format!("bad header line {h:?}")));
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let chunked =
        get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(r)?
    } else if let Some(len) = get("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| ReadError::Bad("bad content-length".into()))?;
        if len > MAX_BODY_BYTES {
            return Err(ReadError::Bad("body too large".into()));
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        body
    } else {
        Vec::new()
    };
    let connection = get("connection").unwrap_or_default().to_ascii_lowercase();
    let close =
        version == "HTTP/1.0" && !connection.contains("keep-alive") || connection.contains("close");
    // Absolute-form targets (`http://host/path`, sent to proxies) are reduced to their
    // path. Only a target that does not start with `/` can be one: a `://` inside the query
    // of an origin-form target (`?scopes=https://...`, as google-auth sends) is data.
    let target = absolute_form_path(target);
    let (path, raw_query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let path = if path.is_empty() { "/" } else { path };
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        raw_query: raw_query.to_string(),
        query: parse_form(raw_query),
        headers,
        body,
        peer,
        local,
        tls,
        close,
    })
}

/// The path-and-query of a request target: origin-form as is, absolute-form
/// (`scheme://authority[/path][?query]`, RFC 9112 §3.2.2) without scheme and authority
/// (an empty path stays empty; the caller reads it as `/`).
fn absolute_form_path(target: &str) -> &str {
    if target.starts_with('/') {
        return target;
    }
    let Some(i) = target.find("://") else {
        return target;
    };
    let rest = &target[i + 3..];
    match rest.find(['/', '?']) {
        Some(j) => &rest[j..],
        None => "",
    }
}

fn read_chunked<R: BufRead>(r: &mut R) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    let mut budget = MAX_HEADER_BYTES;
    loop {
        let line = read_line(r, &mut budget)?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| ReadError::Bad("bad chunk size".into()))?;
        if size == 0 {
            // Trailers until the empty line.
            while !read_line(r, &mut budget)?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(ReadError::Bad("body too large".into()));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        read_line(r, &mut budget)?;
    }
}

/// Writes a response; adds `Content-Length`, `Date` and `Connection`.
pub fn write_response<W: Write>(w: &mut W, resp: &Response, close: bool) -> io::Result<()> {
    let mut out = Vec::with_capacity(resp.body.len() + 256);
    write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        resp.status,
        reason_phrase(resp.status)
    )?;
    for (k, v) in &resp.headers {
        write!(out, "{k}: {v}\r\n")?;
    }
    write!(out, "Date: {}\r\n", crate::clock::http_date_now())?;
    write!(out, "Content-Length: {}\r\n", resp.body.len())?;
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&resp.body);
    w.write_all(&out)?;
    w.flush()
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        412 => "Precondition Failed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Percent-decoding; `plus_as_space` for `application/x-www-form-urlencoded`.
pub fn percent_decode(s: &str, plus_as_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_as_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Parses `a=b&c=d` (query strings and form bodies), decoding `+` as space.
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
            None => (percent_decode(p, true), String::new()),
        })
        .collect()
}

/// Percent-encodes a path segment or query value (RFC 3986 unreserved kept).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn addr() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn parses_chunked_and_query() {
        let raw = b"PATCH /a/b%20c?x=1&y=a%2Bb+c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let mut r = BufReader::new(&raw[..]);
        let req = read_request(&mut r, addr(), addr(), false).unwrap();
        assert_eq!(req.method, "PATCH");
        assert_eq!(req.segments(), vec!["a", "b c"]);
        assert_eq!(req.query("y"), Some("a+b c"));
        assert_eq!(req.body, b"abcde");
        assert!(!req.close);
    }

    fn target(line: &str) -> (String, String) {
        let raw = format!("{line}\r\nHost: h\r\n\r\n");
        let mut r = BufReader::new(raw.as_bytes());
        let req = read_request(&mut r, addr(), addr(), false).unwrap();
        (req.path, req.raw_query)
    }

    #[test]
    fn url_in_query_is_not_an_absolute_target() {
        // google-auth's metadata token request (issue 10, fix 2).
        let (p, q) = target(
            "GET /computeMetadata/v1/instance/service-accounts/default/token?scopes=https://www.googleapis.com/auth/compute HTTP/1.1",
        );
        assert_eq!(
            p,
            "/computeMetadata/v1/instance/service-accounts/default/token"
        );
        assert_eq!(q, "scopes=https://www.googleapis.com/auth/compute");
        // Absolute-form still reduces to path and query.
        assert_eq!(
            target("GET http://metadata.google.internal/a/b?x=http://y/z HTTP/1.1"),
            ("/a/b".into(), "x=http://y/z".into())
        );
        assert_eq!(
            target("GET http://h?x=1 HTTP/1.1"),
            ("/".into(), "x=1".into())
        );
        assert_eq!(target("GET http://h HTTP/1.1"), ("/".into(), "".into()));
    }

    #[test]
    fn decode_edge_cases() {
        assert_eq!(percent_decode("%", false), "%");
        assert_eq!(percent_decode("a%2", false), "a%2");
        assert_eq!(percent_decode("%41%zz", false), "A%zz");
    }
}
