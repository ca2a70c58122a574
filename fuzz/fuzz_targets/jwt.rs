//! JWTs (the OCI security token): reading the expiry never panics on any string, and for a
//! token whose payload carries `exp` the same number comes back.
#![no_main]

use base64::Engine as _;
use cloudvip::cloud::oci::auth::jwt_exp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = jwt_exp(s);
    }
    // Round trip: any exp, any extra payload bytes as a claim.
    if data.len() >= 8 {
        let exp = u64::from_le_bytes(data[..8].try_into().unwrap());
        let extra = String::from_utf8_lossy(&data[8..]);
        let payload = serde_json::json!({"exp": exp, "sub": extra}).to_string();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = format!(
            "{}.{}.{}",
            b64.encode(br#"{"alg":"RS256"}"#),
            b64.encode(payload),
            b64.encode(&data[..8])
        );
        assert_eq!(jwt_exp(&token), Some(exp));
    }
});
