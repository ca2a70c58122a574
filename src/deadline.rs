//! The time budget of one action. Pacemaker kills an agent that overruns
//! `CRM_meta_timeout`, and a killed stop means fencing, so every blocking step (netlink,
//! HTTP, sleeps, retries) asks the one `Deadline` how long it may take, and every retry
//! loop pauses by the one `Backoff` schedule. The clock is injectable so tests can prove
//! the retry loops never overrun without sleeping.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pacemaker's default operation timeout, used when `CRM_meta_timeout` is absent (an admin
/// running the agent by hand). ocf-tester and crm_resource also pass 20000 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// What we keep back for exiting cleanly (writing the exit reason, process teardown,
/// the executor's own scheduling jitter): a tenth of the timeout, at least 0.5 s and at
/// most 5 s. A 20 s timeout leaves an 18 s budget.
pub fn margin(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_millis(500), Duration::from_secs(5))
}

/// How long ago this process was forked: `/proc/self/stat`'s start time (clock ticks
/// since boot, set at fork and kept across exec) against CLOCK_BOOTTIME.
fn process_age() -> Option<Duration> {
    let stat = std::fs::read(format!("/proc/{}/stat", std::process::id())).ok()?;
    let ticks = start_ticks(&stat)?;
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0)?;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into the timespec passed to it.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return None;
    }
    let now = Duration::new(
        u64::try_from(ts.tv_sec).ok()?,
        u32::try_from(ts.tv_nsec).ok()?,
    );
    let started =
        Duration::from_secs(ticks / hz) + Duration::from_nanos(ticks % hz * 1_000_000_000 / hz);
    now.checked_sub(started)
}

/// Field 22 (starttime) of a `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may hold spaces and parentheses itself, so count from the last ')'.
fn start_ticks(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    fn sleep(&self, d: Duration);
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

#[derive(Clone)]
pub struct Deadline {
    end: Instant,
    clock: Arc<dyn Clock>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Expired;

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the operation's time budget is used up")
    }
}

impl std::error::Error for Expired {}

impl Deadline {
    /// The budget for an action whose Pacemaker timeout is `timeout`.
    pub fn for_timeout(timeout: Option<Duration>) -> Self {
        let t = timeout.unwrap_or(DEFAULT_TIMEOUT);
        // Never less than half the timeout, even when the margin would eat more.
        let budget = t.saturating_sub(margin(t)).max(t / 2);
        Self::with_clock(budget, Arc::new(SystemClock))
    }

    /// The budget of the action this process runs for Pacemaker. Its timer starts when
    /// pacemaker-execd forks us, not when `main` runs: on a loaded node exec and the
    /// dynamic work before `main` can take a second, which would otherwise come out of the
    /// margin. So the time since our fork is taken off, though never below half the timeout.
    pub fn for_action(timeout: Option<Duration>) -> Self {
        let t = timeout.unwrap_or(DEFAULT_TIMEOUT);
        let age = process_age().unwrap_or_default();
        if age >= Duration::from_millis(100) {
            log::debug!(
                "started {:.2} s after its fork: the budget counts from there",
                age.as_secs_f64()
            );
        }
        let budget = t.saturating_sub(margin(t)).saturating_sub(age).max(t / 2);
        Self::with_clock(budget, Arc::new(SystemClock))
    }

    pub fn with_clock(budget: Duration, clock: Arc<dyn Clock>) -> Self {
        let end = clock.now() + budget;
        Deadline { end, clock }
    }

    /// A shorter budget inside this one: `at_most` from now, never past this deadline.
    pub fn within(&self, at_most: Duration) -> Deadline {
        Deadline {
            end: self.end.min(self.clock.now() + at_most),
            clock: self.clock.clone(),
        }
    }

    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(self.clock.now())
    }

    /// Sleep for `d`, or `Err(Expired)` at once when the deadline would pass first:
    /// sleeping into the deadline only to fail after it helps nobody.
    pub fn sleep(&self, d: Duration) -> Result<(), Expired> {
        if d >= self.remaining() {
            return Err(Expired);
        }
        self.clock.sleep(d);
        Ok(())
    }
}

/// The least a try after a pause needs: a request (a TLS handshake and an answer) on a
/// busy node. A retry that cannot have this much is not started; the loop ends instead.
pub const MIN_STEP: Duration = Duration::from_millis(250);

/// The one retry schedule: pauses start at `first` and double up to `max`. With `jitter`
/// each pause is drawn from [half, all] of its step, so that nodes (or parallel actions)
/// retrying the same thing spread out instead of colliding again. `wait` asks the deadline
/// like every other blocking step: a pause that would cross it is not taken.
#[derive(Clone, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub jitter: bool,
    step: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration, jitter: bool) -> Self {
        Backoff {
            first,
            max,
            jitter,
            step: first,
        }
    }

    /// The next pause; the schedule moves on.
    pub fn next_pause(&mut self) -> Duration {
        let step = self.step.min(self.max);
        self.step = (step * 2).min(self.max);
        if self.jitter {
            step / 2 + random_up_to(step / 2)
        } else {
            step
        }
    }

    /// Sleep the next pause, or `Err(Expired)` at once when what would be left after it is
    /// less than `MIN_STEP`: a pause is worth taking only if a try can follow it.
    pub fn wait(&mut self, deadline: &Deadline) -> Result<(), Expired> {
        let pause = self.next_pause();
        if pause + MIN_STEP >= deadline.remaining() {
            return Err(Expired);
        }
        deadline.sleep(pause)
    }
}

fn random_up_to(max: Duration) -> Duration {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    max.mul_f64(f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX))
}

#[cfg(test)]
pub mod testing {
    //! A clock that only moves when something sleeps.
    use super::*;
    use std::sync::Mutex;

    pub struct FakeClock {
        start: Instant,
        offset: Mutex<Duration>,
    }

    impl FakeClock {
        pub fn new() -> Arc<Self> {
            Arc::new(FakeClock {
                start: Instant::now(),
                offset: Mutex::new(Duration::ZERO),
            })
        }
        pub fn elapsed(&self) -> Duration {
            *self.offset.lock().unwrap()
        }
        pub fn advance(&self, d: Duration) {
            *self.offset.lock().unwrap() += d;
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.start + self.elapsed()
        }
        fn sleep(&self, d: Duration) {
            self.advance(d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::FakeClock;
    use super::*;

    #[test]
    fn start_time_is_read_after_the_command_name() {
        let line =
            b"4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_ticks(line), Some(987654));
        assert_eq!(start_ticks(b"4242 (x) S 1"), None);
        assert_eq!(start_ticks(b"no parenthesis"), None);
        assert_eq!(
            start_ticks(b"1 (\xff) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 x"),
            None
        );
        // This test process: forked a moment ago, not before boot.
        let age = process_age().unwrap();
        assert!(age < Duration::from_secs(24 * 3600), "{age:?}");
    }

    #[test]
    fn an_actions_budget_never_drops_below_half_its_timeout() {
        let d = Deadline::for_action(Some(Duration::from_secs(20)));
        assert!(d.remaining() <= Duration::from_secs(18));
        assert!(d.remaining() >= Duration::from_millis(9_900));
    }

    #[test]
    fn margin_is_a_tenth_within_bounds() {
        assert_eq!(margin(Duration::from_secs(20)), Duration::from_secs(2));
        assert_eq!(margin(Duration::from_secs(2)), Duration::from_millis(500));
        assert_eq!(margin(Duration::from_secs(300)), Duration::from_secs(5));
    }

    #[test]
    fn budget_leaves_the_margin() {
        let d = Deadline::for_timeout(Some(Duration::from_secs(20)));
        let r = d.remaining();
        assert!(
            r <= Duration::from_secs(18) && r > Duration::from_millis(17_900),
            "{r:?}"
        );
        let tiny = Deadline::for_timeout(Some(Duration::from_millis(600)));
        assert!(tiny.remaining() <= Duration::from_millis(300));
        let default = Deadline::for_timeout(None);
        assert!(default.remaining() > Duration::from_secs(17));
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_jitters_within_half() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(200), ms(1000), false);
        let steps: Vec<_> = (0..5).map(|_| b.next_pause()).collect();
        assert_eq!(steps, [ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
        let mut j = Backoff::new(ms(200), ms(3000), true);
        for want in [200, 400, 800, 1600, 3000, 3000] {
            let p = j.next_pause();
            assert!(p >= ms(want / 2) && p <= ms(want), "{p:?} for {want}");
        }
    }

    #[test]
    fn within_never_extends_the_budget() {
        let clock = FakeClock::new();
        let d = Deadline::with_clock(Duration::from_secs(5), clock.clone());
        assert_eq!(
            d.within(Duration::from_secs(2)).remaining(),
            Duration::from_secs(2)
        );
        assert_eq!(
            d.within(Duration::from_secs(9)).remaining(),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn sleep_refuses_to_cross_the_deadline() {
        let clock = FakeClock::new();
        let d = Deadline::with_clock(Duration::from_secs(1), clock.clone());
        assert_eq!(d.sleep(Duration::from_millis(600)), Ok(()));
        assert_eq!(d.sleep(Duration::from_millis(600)), Err(Expired));
        // the refused sleep did not wait
        assert_eq!(clock.elapsed(), Duration::from_millis(600));
        assert_eq!(d.remaining(), Duration::from_millis(400));
        clock.advance(Duration::from_millis(400));
        assert!(d.remaining().is_zero());
    }
}
