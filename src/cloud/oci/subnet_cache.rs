//! Our VNIC's subnet OCID, kept in the state directory: a VNIC's subnet is fixed when it is
//! created (UpdateVnicDetails has no subnetId: oci-go-sdk `core/update_vnic_details.go`,
//! oci-python-sdk `UpdateVnicDetails`), so a start that finds it here needs no GetVnic
//! before ListPrivateIps. Written after every GetVnic; a probe primes it (`Oci::prime`).
//! An entry is a hint, never the last word: `networking.rs` confirms with GetVnic whenever
//! the answers it got with it do not prove it (see `private_ips`).

use std::path::{Path, PathBuf};

use crate::cloud::secret;

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    vnic_id: String,
    subnet_id: String,
}

fn path(state: Option<&Path>, vnic: &str) -> Option<PathBuf> {
    secret::cache_path(state, "cloudvip-oci-vnic", vnic)
}

/// The cached subnet of `vnic`: only from a file we own that nobody else can read or
/// write, naming this VNIC; anything else is no entry.
pub(super) fn read(state: Option<&Path>, vnic: &str) -> Option<String> {
    let body = secret::read_private(&path(state, vnic)?)?;
    let e: Entry = serde_json::from_slice(&body).ok()?;
    (e.vnic_id == vnic && e.subnet_id.starts_with("ocid1.subnet.")).then_some(e.subnet_id)
}

/// Best-effort: without the entry the next start asks GetVnic, as before.
pub(super) fn write(state: Option<&Path>, vnic: &str, subnet: &str) {
    let Some(p) = path(state, vnic) else { return };
    if read(state, vnic).as_deref() == Some(subnet) {
        return;
    }
    let e = Entry {
        vnic_id: vnic.to_owned(),
        subnet_id: subnet.to_owned(),
    };
    let r = serde_json::to_vec(&e)
        .map_err(std::io::Error::other)
        .and_then(|b| secret::write_private(&p, &b));
    if let Err(e) = r {
        log::debug!("cannot cache the subnet of VNIC {vnic} in {}: {e}", p.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn an_entry_is_read_back_only_for_its_vnic_and_only_private() {
        let d = tempfile::tempdir().unwrap();
        let s = Some(d.path());
        assert_eq!(read(s, "ocid1.vnic.a"), None);
        write(s, "ocid1.vnic.a", "ocid1.subnet.x");
        assert_eq!(read(s, "ocid1.vnic.a").as_deref(), Some("ocid1.subnet.x"));
        assert_eq!(read(s, "ocid1.vnic.b"), None);
        let p = path(s, "ocid1.vnic.a").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        // another VNIC's entry under this name (a digest clash, a copied file): no entry
        std::fs::write(&p, br#"{"vnicId":"ocid1.vnic.b","subnetId":"ocid1.subnet.x"}"#).unwrap();
        assert_eq!(read(s, "ocid1.vnic.a"), None);
        std::fs::write(&p, b"{garbage").unwrap();
        assert_eq!(read(s, "ocid1.vnic.a"), None);
        write(s, "ocid1.vnic.a", "ocid1.subnet.x");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read(s, "ocid1.vnic.a"), None, "readable by others");
        assert_eq!(read(None, "ocid1.vnic.a"), None);
        write(None, "ocid1.vnic.a", "ocid1.subnet.x");
    }
}
