//! Private keys from PEM: PKCS#1, PKCS#8, encrypted PKCS#8 (the first byte chooses whether
//! a pass phrase is given). Never a panic, whatever the file holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, pem)) = data.split_first() else {
        return;
    };
    let pass = (first & 1 == 1).then_some("s3cret");
    let _ = cloudvip::cloud::secret::load_rsa_key(pem, pass);
});
