//! Random identifiers in AWS's shapes: request ids (UUIDs), resource ids
//! (`eipassoc-` + 17 hex digits), temporary access keys (`ASIA` + 16 base-32 characters),
//! secrets and session tokens. Values are random; only the shapes are AWS's.

use crate::clock::random_bytes;

pub fn hex(n: usize) -> String {
    let b = random_bytes(n.div_ceil(2));
    let s: String = b.iter().map(|x| format!("{x:02x}")).collect();
    s[..n].to_owned()
}

/// `8-4-4-4-12` lower-case hex, version 4.
pub fn request_id() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `eipassoc-0123456789abcdef0`-style id.
pub fn resource(prefix: &str) -> String {
    format!("{prefix}-{}", hex(17))
}

fn alphabet(n: usize, chars: &[u8]) -> String {
    random_bytes(n)
        .iter()
        .map(|b| chars[*b as usize % chars.len()] as char)
        .collect()
}

/// `ASIA…` (temporary) or `AROA…` (role id) + 16 characters of `A-Z2-7`.
pub fn key_id(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        alphabet(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    )
}

/// 40 characters of base64's alphabet, like a secret access key.
pub fn secret() -> String {
    alphabet(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    )
}

/// A long opaque session token (real ones are several hundred base64 characters).
pub fn session_token() -> String {
    use base64::Engine;
    format!(
        "IQoJb3JpZ2luX2Vj{}",
        base64::engine::general_purpose::STANDARD.encode(random_bytes(192))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let r = request_id();
        assert_eq!(r.len(), 36);
        assert_eq!(&r[14..15], "4");
        let e = resource("eipassoc");
        assert_eq!(e.len(), "eipassoc-".len() + 17);
        assert!(key_id("ASIA").starts_with("ASIA") && key_id("ASIA").len() == 20);
        assert_eq!(secret().len(), 40);
        assert!(session_token().len() > 200);
    }
}
