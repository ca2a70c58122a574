//! The time formats AWS uses: SigV4's `20150830T123600Z` (`X-Amz-Date`), ISO 8601 with
//! seconds (`2020-11-05T02:02:26Z`, IMDS and STS `Expiration`) or milliseconds
//! (`2026-11-20T10:00:00.000Z`, EC2 `launchTime`/`attachTime`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

pub fn from_unix(s: i64) -> SystemTime {
    if s >= 0 {
        UNIX_EPOCH + Duration::from_secs(s as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn fields(t: SystemTime) -> (i64, u32, u32, i64, i64, i64, u32) {
    let s = unix(t);
    let (y, m, d) = crate::clock::civil(s.div_euclid(86_400));
    let r = s.rem_euclid(86_400);
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_millis())
        .unwrap_or(0);
    (y, m, d, r / 3600, r % 3600 / 60, r % 60, ms)
}

/// `20150830T123600Z`.
pub fn amz(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss, _) = fields(t);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// `2020-11-05T02:02:26Z`.
pub fn iso_seconds(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss, _) = fields(t);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// `2026-11-20T10:00:00.000Z`.
pub fn iso_millis(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss, ms) = fields(t);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z")
}

/// Parses `YYYYMMDD'T'HHMMSS'Z'` strictly; returns unix seconds.
pub fn parse_amz(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    // Reject dates that do not exist (Feb 30 would otherwise roll over).
    if crate::clock::civil(days) != (y, mo as u32, d as u32) {
        return None;
    }
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = from_unix(1_440_938_160); // 2015-08-30T12:36:00Z
        assert_eq!(amz(t), "20150830T123600Z");
        assert_eq!(iso_seconds(t), "2015-08-30T12:36:00Z");
        assert_eq!(iso_millis(t), "2015-08-30T12:36:00.000Z");
        assert_eq!(parse_amz("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz("20000229T000000Z"), Some(951_782_400));
        assert_eq!(parse_amz("20150230T000000Z"), None);
        assert_eq!(parse_amz("2015-08-30T12:36:00Z"), None);
        assert_eq!(parse_amz("20150830T123600"), None);
        assert_eq!(parse_amz("2015083\u{e9}T12360Z"), None);
    }
}
