//! EC2's and STS's XML answers (research/aws-azure.md §A2): whatever the body, parsing it
//! and reading it as every answer the AWS backend reads (network interfaces, instances,
//! addresses, route tables, results, AssumeRole credentials, error documents) never
//! panics, and what is read is consistent: an ENI has exactly one primary address.
#![no_main]

use cloudvip::cloud::aws::{error, model, xml};
use cloudvip::http::Response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for status in [400u16, 503] {
        let r = Response {
            status,
            headers: Default::default(),
            body: data.to_vec(),
        };
        let e = error::parse(&r);
        let _ = e.classify("ec2:AssignPrivateIpAddresses");
        let _ = error::retry_also(&r);
    }
    let Ok(root) = xml::parse(data) else {
        return;
    };
    if let Ok((enis, _)) = model::network_interfaces(&root) {
        for e in &enis {
            assert!(e.primary_ip().is_some(), "an ENI read without its primary address");
            let _ = e.holds("10.0.1.100".parse().unwrap());
        }
    }
    let _ = model::instances(&root);
    if let Ok(addrs) = model::addresses(&root) {
        for a in &addrs {
            let _ = a.held_by("eni-0c10d0000000000e1", "10.0.1.100".parse().unwrap());
        }
    }
    if let Ok((tables, _)) = model::route_tables(&root) {
        for t in &tables {
            let _ = t.route("192.168.100.10/32");
        }
    }
    let _ = model::association_id(&root);
    let _ = model::returned(&root);
    let _ = model::assumed_credentials(&root);
    let _ = model::next_token(&root);
});
