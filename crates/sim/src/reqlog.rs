//! The per-request log every listener appends to and the admin API serves, so tests can
//! count API calls per agent action. Bounded: the oldest entries are dropped first.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;

const MAX_ENTRIES: usize = 20_000;

#[derive(Clone, Debug, Serialize)]
pub struct LogEntry {
    /// Monotonic sequence number, never reused (survives `clear`).
    pub seq: u64,
    /// Milliseconds since the emulator started.
    pub t_ms: u64,
    pub cloud: &'static str,
    pub service: &'static str,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub query: String,
    /// HTTP status sent; absent when the connection was reset or left hanging.
    pub status: Option<u16>,
    pub instance: Option<String>,
    /// API method id, e.g. `compute.instances.get`.
    pub api: Option<String>,
    /// True for control-plane API calls (GCE Compute, OCI Networking), false for metadata,
    /// token endpoints and the like.
    pub api_call: bool,
    /// Fault rules applied to this request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<u64>,
    pub duration_ms: u64,
}

#[derive(Default)]
pub struct RequestLog {
    inner: Mutex<(u64, VecDeque<LogEntry>)>,
}

impl RequestLog {
    /// Appends; `entry.seq` is assigned here.
    pub fn push(&self, mut entry: LogEntry) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        entry.seq = g.0;
        if g.1.len() >= MAX_ENTRIES {
            g.1.pop_front();
        }
        g.1.push_back(entry);
    }

    /// Entries with `seq > since`.
    pub fn since(&self, since: u64) -> Vec<LogEntry> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.1.iter().filter(|e| e.seq > since).cloned().collect()
    }

    pub fn clear(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clear();
    }

    /// Total requests ever logged.
    pub fn total(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}
