//! Eventual consistency: "the result of an API command you run that affects your Amazon
//! EC2 resources might not be immediately visible to all subsequent commands you run"
//! (EC2 API reference, "Eventual consistency"). Writes act on the current state; before
//! each write the state is saved with the time, and a read with a lag of `d` sees the
//! state as it was `d` ago: the copy saved by the first write after that moment, or the
//! current state when there was none. Copies older than the largest lag are dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::Net;

/// At most this many saved states (a write storm cannot grow memory without bound; the
/// oldest go first, which only shortens the lag).
const MAX_SAVED: usize = 4096;

pub struct History {
    pub current: Net,
    /// (time of the write, the state just before it), oldest first.
    saved: VecDeque<(Instant, Arc<Net>)>,
}

impl History {
    pub fn new(net: Net) -> Self {
        History {
            current: net,
            saved: VecDeque::new(),
        }
    }

    /// Call before changing `current`.
    pub fn before_write(&mut self, now: Instant, max_lag: Duration) {
        self.prune(now, max_lag);
        if self.saved.len() >= MAX_SAVED {
            self.saved.pop_front();
        }
        self.saved.push_back((now, Arc::new(self.current.clone())));
    }

    fn prune(&mut self, now: Instant, max_lag: Duration) {
        while let Some((t, _)) = self.saved.front() {
            if now.saturating_duration_since(*t) > max_lag {
                self.saved.pop_front();
            } else {
                break;
            }
        }
    }

    /// The state a reader with this lag sees.
    pub fn view(&self, now: Instant, lag: Duration) -> &Net {
        if lag.is_zero() {
            return &self.current;
        }
        let horizon = now.checked_sub(lag);
        for (t, net) in &self.saved {
            // The first write after the horizon: what it overwrote was still visible then.
            if horizon.is_none_or(|h| *t > h) {
                return net;
            }
        }
        &self.current
    }

    /// Saved states still within `max_lag` (for the admin state).
    pub fn pending(&self, now: Instant, max_lag: Duration) -> usize {
        self.saved
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) <= max_lag)
            .count()
    }

    /// Forget every saved state: all readers see the current state (admin `settle`).
    pub fn settle(&mut self) {
        self.saved.clear();
    }
}
