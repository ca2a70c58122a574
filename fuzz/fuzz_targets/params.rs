//! The parameters: an environment as Pacemaker passes it (`NAME=value`, NUL-separated, any
//! bytes, non-UTF-8 included) parsed into `Params`. No panic on any input; parsing twice gives the same answer.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;

use cloudvip::ocf::env::OcfEnv;
use cloudvip::params::Params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Keys and values as the process environment holds them: any bytes but NUL, split at
    // the first '=' (`std::env::vars_os`).
    let vars: Vec<(OsString, OsString)> = data
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let eq = kv.iter().position(|b| *b == b'=')?;
            let (k, v) = (&kv[..eq], &kv[eq + 1..]);
            // The target spends its time on our parameters, not on random names.
            let mut key = if k.starts_with(b"OCF_") || k.starts_with(b"HA_") {
                Vec::new()
            } else {
                b"OCF_RESKEY_".to_vec()
            };
            key.extend_from_slice(k);
            Some((OsString::from_vec(key), OsString::from_vec(v.to_vec())))
        })
        .collect();
    let env = OcfEnv::from_vars(vars.iter().map(|(k, v)| (k, v)));
    let a = Params::parse(&env).map(|p| format!("{p:?}")).map_err(|e| e.to_string());
    let b = Params::parse(&env).map(|p| format!("{p:?}")).map_err(|e| e.to_string());
    assert_eq!(a, b, "parsing is not deterministic");
    if let Err(reason) = &a {
        assert!(!reason.is_empty(), "an error without a reason");
    }
});
