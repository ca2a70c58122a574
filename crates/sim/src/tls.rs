//! TLS for the cloud API listeners (rustls 0.23, ring provider) and the `gen-tls` helper that
//! makes a throw-away test CA plus a leaf for the real cloud hostnames, so cluster tests can
//! reach the emulator as `compute.googleapis.com` with only a CA added to the trust store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Builds a server config from PEM files (leaf first, then any intermediates).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e:?}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e:?}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE in file", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e:?}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate/key rejected: {e}"))?;
    // HTTP/1.1 only: clients offering h2 must fall back.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Paths written by [`generate`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generated {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes `ca.pem` (the CA to trust), `server.pem` (leaf + CA chain) and `server.key`
/// (PKCS#8) into `dir`, the leaf valid for every name (DNS names or IP literals).
pub fn generate(dir: &Path, names: &[String]) -> Result<Generated, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| e.to_string();
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "cloudvip-sim test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(err)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::new(names.to_vec()).map_err(err)?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        names
            .first()
            .cloned()
            .unwrap_or_else(|| "cloudvip-sim".into()),
    );
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let leaf_key = KeyPair::generate().map_err(err)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(err)?;

    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = Generated {
        ca_cert: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    let write =
        |p: &Path, s: String| std::fs::write(p, s).map_err(|e| format!("{}: {e}", p.display()));
    write(&out.ca_cert, ca_cert.pem())?;
    write(&out.cert, format!("{}{}", leaf_cert.pem(), ca_cert.pem()))?;
    write(&out.key, leaf_key.serialize_pem())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&out.key, std::fs::Permissions::from_mode(0o600));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let g = generate(
            dir.path(),
            &["compute.googleapis.com".into(), "127.0.0.1".into()],
        )
        .unwrap();
        server_config(&g.cert, &g.key).unwrap();
        assert!(std::fs::read_to_string(&g.ca_cert)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
