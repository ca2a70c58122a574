//! The GCE metadata server's recursive answer (`?recursive=true&alt=json`): whatever it
//! says, reading it and asking it which NIC is ours and whether the VIP is an alias there
//! never panics.
#![no_main]

use cloudvip::cloud::gce::metadata::{Identity, Root};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    let Ok(root) = serde_json::from_slice::<Root>(data) else {
        return;
    };
    let id = Identity {
        project: root.project.project_id,
        name: root.instance.name,
        zone: root
            .instance
            .zone
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned(),
        nics: root.instance.network_interfaces,
    };
    let _ = id.region();
    let _ = id.nic_index(&[0x42, 0x01, 0x0a, 0x80, 0x00, 0x0a]);
    for ip in ["10.128.0.100", "fd00::5", "0.0.0.0"] {
        let ip: IpAddr = ip.parse().unwrap();
        for i in id.nics_with(ip) {
            assert!(i < id.nics.len());
        }
    }
    // Every alias entry as the metadata server wrote it, against any address it names.
    for nic in &id.nics {
        for a in &nic.ip_aliases {
            if let Some(host) = a.split('/').next().and_then(|h| h.parse::<IpAddr>().ok()) {
                let _ = cloudvip::cloud::gce::alias_is(a, host);
            }
        }
    }
});
