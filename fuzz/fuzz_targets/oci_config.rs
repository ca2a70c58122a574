//! The OCI config file (~/.oci/config format): parsing never panics, and what it reads
//! round-trips: the profile written back as `key=value` lines reads the same again.
#![no_main]

use cloudvip::cloud::oci::auth::parse_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for profile in ["DEFAULT", "cloudvip"] {
        let Some(map) = parse_config(text, profile) else {
            continue;
        };
        let mut again = format!("[{profile}]\n");
        for (k, v) in &map {
            again += &format!("{k}={v}\n");
        }
        assert_eq!(
            parse_config(&again, profile).as_ref(),
            Some(&map),
            "round trip of {again:?}"
        );
    }
});
