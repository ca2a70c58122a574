//! One health probe as Azure's and Google's load balancers send them: TCP (the handshake
//! succeeds) or HTTP (`GET <path>` answered 200 within the timeout; any other status, a
//! reset or silence is a failure). Our own small client, not the agent's.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Tcp,
    Http(String),
}

impl std::str::FromStr for Probe {
    type Err = String;
    /// `tcp` or `http:/path`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(Probe::Tcp),
            _ => match s.strip_prefix("http:") {
                Some(p) if p.starts_with('/') => Ok(Probe::Http(p.to_owned())),
                _ => Err(format!("probe {s:?}: tcp or http:/path")),
            },
        }
    }
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Tcp => f.write_str("tcp"),
            Probe::Http(p) => write!(f, "http:{p}"),
        }
    }
}

impl Serialize for Probe {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Probe `to`; Ok(time taken) or why it failed.
pub fn run(to: SocketAddr, probe: &Probe, timeout: Duration) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect_timeout(&to, timeout).map_err(|e| e.to_string())?;
    let Probe::Http(path) = probe else {
        return Ok(t0.elapsed());
    };
    let left = timeout
        .saturating_sub(t0.elapsed())
        .max(Duration::from_millis(1));
    s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(left)).map_err(|e| e.to_string())?;
    let host = match to {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Load Balancer Agent\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 2048 {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let status = line.lines().next().unwrap_or("").to_owned();
    match status.split(' ').nth(1) {
        Some("200") if status.starts_with("HTTP/1.") => Ok(t0.elapsed()),
        _ => Err(format!("answered {status:?}")),
    }
}
