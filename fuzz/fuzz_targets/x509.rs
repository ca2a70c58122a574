//! The OCI instance certificate from IMDS (PEM, then DER): the tenancy it names. Never a
//! panic; a tenancy read is an OCID-looking, non-empty string without line breaks.
#![no_main]

use cloudvip::cloud::oci::auth::{pem_der, tenancy_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tenancy_of(data);
    if let Some(der) = pem_der(data) {
        if let Some(t) = tenancy_of(&der) {
            assert!(!t.contains('\n'), "{t:?}");
        }
    }
});
