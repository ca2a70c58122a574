//! GCE token answers (metadata server, oauth2 token endpoint) and service-account key
//! files: never a panic, and a key file's private key goes through the one key loader.
#![no_main]

use cloudvip::cloud::gce::auth::{KeyFile, TokenResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<TokenResponse>(data);
    let _ = serde_json::from_slice::<KeyFile>(data);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Some(pem) = v["private_key"].as_str() {
            let _ = cloudvip::cloud::secret::load_rsa_key(pem.as_bytes(), None);
        }
    }
});
