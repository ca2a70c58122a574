//! Wall-clock formatting (RFC 3339 for GCE resources, IMF-fixdate for HTTP `Date`) and
//! random identifiers. No time zone database: everything is rendered in UTC.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's `civil_from_days`.
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn split(t: SystemTime) -> (i64, u32, u32, u64, u64, u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (y, m, day) = civil((secs / 86_400) as i64);
    let rem = secs % 86_400;
    (
        y,
        m,
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis(),
    )
}

/// `2024-05-21T11:28:04.176-00:00`-style timestamp. GCE renders Pacific time with its offset;
/// we render UTC with an explicit `+00:00` offset, which every RFC 3339 parser accepts.
pub fn rfc3339(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss, ms) = split(t);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}+00:00")
}

/// IMF-fixdate for the `Date` header.
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (y, m, d, hh, mm, ss, _) = split(t);
    let wd = DAYS[((secs / 86_400) % 7) as usize];
    let mon = MONTHS[(m as usize).saturating_sub(1) % 12];
    format!("{wd}, {d:02} {mon} {y} {hh:02}:{mm:02}:{ss:02} GMT")
}

/// The `Date` header: the true time, shifted so that a client with a skewed clock sees
/// the same difference to its own clock as it would against the real cloud.
pub fn http_date_now() -> String {
    http_date(shift(SystemTime::now(), -SKEW.with(std::cell::Cell::get)))
}

thread_local! {
    /// The `clock_skew` fault of the request this thread is serving, in seconds.
    static SKEW: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

/// Set (or with 0 clear) the skew of this thread's request: `server.rs` only.
pub fn set_skew(secs: i64) {
    SKEW.with(|s| s.set(secs));
}

fn shift(t: SystemTime, secs: i64) -> SystemTime {
    let d = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        t + d
    } else {
        t.checked_sub(d).unwrap_or(t)
    }
}

/// A time the client wrote (a signed `Date`, a JWT's `iat`/`exp`) as a client whose clock
/// is off by the request's `clock_skew` would have written it. Everything the emulator
/// issues itself keeps the true time.
pub fn as_client_wrote(t: SystemTime) -> SystemTime {
    shift(t, SKEW.with(std::cell::Cell::get))
}

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

pub fn unix_millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis()
}

/// `n` random bytes from the OS (ring's generator, already compiled for rustls).
pub fn random_bytes(n: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut v = vec![0u8; n];
    // The system RNG does not fail on Linux; if it ever did, zeros only make ids less unique.
    let _ = ring::rand::SystemRandom::new().fill(&mut v);
    v
}

pub fn random_hex(n_bytes: usize) -> String {
    random_bytes(n_bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn random_u64() -> u64 {
    let b = random_bytes(8);
    let mut a = [0u8; 8];
    a.copy_from_slice(&b);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let t = UNIX_EPOCH + Duration::from_millis(1_716_290_885_077);
        assert_eq!(rfc3339(t), "2024-05-21T11:28:05.077+00:00");
        assert_eq!(http_date(t), "Tue, 21 May 2024 11:28:05 GMT");
    }
}
