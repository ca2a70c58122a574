//! The parameters: an environment as Pacemaker passes it (`NAME=value`, NUL-separated, any
//! bytes) parsed into `Params`. No panic on any input; parsing twice gives the same answer.
#![no_main]

use cloudvip::ocf::env::OcfEnv;
use cloudvip::params::Params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Keys and values as the process environment holds them; non-UTF-8 bytes are replaced
    // as `std::env::vars_os` + `to_string_lossy` would.
    let vars: Vec<(String, String)> = data
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let s = String::from_utf8_lossy(kv);
            let (k, v) = s.split_once('=')?;
            // The target spends its time on our parameters, not on random names.
            let k = if k.starts_with("OCF_") || k.starts_with("HA_") {
                k.to_owned()
            } else {
                format!("OCF_RESKEY_{k}")
            };
            Some((k, v.to_owned()))
        })
        .collect();
    let env = OcfEnv::from_vars(vars.iter().map(|(k, v)| (k.as_str(), v.clone())));
    let a = Params::parse(&env)
        .map(|p| format!("{p:?}"))
        .map_err(|e| e.to_string());
    let b = Params::parse(&env)
        .map(|p| format!("{p:?}"))
        .map_err(|e| e.to_string());
    assert_eq!(a, b, "parsing is not deterministic");
    if let Err(reason) = &a {
        assert!(!reason.is_empty(), "an error without a reason");
    }
});
