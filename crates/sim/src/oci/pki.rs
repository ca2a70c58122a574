//! The emulator's instance-identity PKI: a root, an intermediate, and one leaf per instance
//! with the subject OCI gives its instance certificates (research/oci-api.md §4.2), plus
//! the checks the federation endpoint makes on a presented chain. Keys are RSA-2048.
//!
//! Certificates are built with `x509-cert` because the leaf subject carries four OU
//! attributes and rcgen keeps one value per attribute type (rustls/rcgen#81).

use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs1v15::{Signature, SigningKey};
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::sha2::Sha256;
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use std::str::FromStr;
use std::time::{Duration, SystemTime};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::asn1::{PrintableStringRef, Utf8StringRef};
use x509_cert::der::{Decode, Encode};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

use x509_cert::der::pem::LineEnding as DerLineEnding;
use x509_cert::der::EncodePem;

/// OID of sha256WithRSAEncryption, the only certificate signature accepted.
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OU: &str = "2.5.4.11";
const CN: &str = "2.5.4.3";

pub fn generate_rsa_2048() -> Result<RsaPrivateKey, String> {
    RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|e| format!("keygen: {e}"))
}

/// A certificate with its key.
#[derive(Clone)]
pub struct Issued {
    pub der: Vec<u8>,
    pub cert_pem: String,
    /// PKCS#1 (`BEGIN RSA PRIVATE KEY`), the form IMDS serves (§1.1).
    pub key_pem: String,
    pub key: RsaPrivateKey,
    pub subject: Name,
    pub not_after: SystemTime,
}

fn serial() -> Result<SerialNumber, String> {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| "rng failed")?;
    b[0] &= 0x7f; // positive
    b[0] |= 0x01; // no leading zero byte
    SerialNumber::new(&b).map_err(|e| format!("serial: {e}"))
}

fn issue(
    profile: Profile,
    subject: &str,
    key: RsaPrivateKey,
    signer_key: Option<&RsaPrivateKey>,
    lifetime: Duration,
    now: SystemTime,
) -> Result<Issued, String> {
    let subject = Name::from_str(subject).map_err(|e| format!("name {subject}: {e}"))?;
    let spki_der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| format!("spki: {e}"))?;
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes())
        .map_err(|e| format!("spki: {e}"))?;
    // Back-dated a minute so a fresh certificate is valid on a slightly slow clock.
    let not_before = now.checked_sub(Duration::from_secs(60)).unwrap_or(now);
    let not_after = now + lifetime;
    let validity = Validity {
        not_before: Time::try_from(not_before).map_err(|e| format!("time: {e}"))?,
        not_after: Time::try_from(not_after).map_err(|e| format!("time: {e}"))?,
    };
    let signer = SigningKey::<Sha256>::new(signer_key.unwrap_or(&key).clone());
    let builder =
        CertificateBuilder::new(profile, serial()?, validity, subject.clone(), spki, &signer)
            .map_err(|e| format!("builder: {e}"))?;
    let cert = builder
        .build::<Signature>()
        .map_err(|e| format!("sign: {e}"))?;
    let der = cert.to_der().map_err(|e| format!("der: {e}"))?;
    let cert_pem = cert
        .to_pem(DerLineEnding::LF)
        .map_err(|e| format!("pem: {e}"))?;
    let key_pem = key
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| format!("pem: {e}"))?
        .to_string();
    Ok(Issued {
        der,
        cert_pem,
        key_pem,
        key,
        subject,
        not_after,
    })
}

/// What the OU entries of a leaf say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeafInfo {
    pub tenancy: Option<String>,
    pub instance: Option<String>,
    pub compartment: Option<String>,
    pub cert_type: Option<String>,
    pub common_name: Option<String>,
    /// The leaf's public key as PKCS#1 `RSAPublicKey` DER (what ring verifies with).
    pub public_pkcs1: Vec<u8>,
    pub sha1_upper: String,
    pub sha256_lower: String,
}

/// The emulator's identity CA: root and intermediate, made once per world.
pub struct IdentityCa {
    pub root: Issued,
    pub intermediate: Issued,
    pub leaf_lifetime: Duration,
}

impl IdentityCa {
    /// Names echo OCI's (`Oracle BMCS Instance Identity Root - r2`, `PKISVC Identity
    /// Intermediate r2`, §4.2) but say they belong to the emulator.
    pub fn new(leaf_lifetime: Duration, now: SystemTime) -> Result<Self, String> {
        let year = Duration::from_secs(365 * 86_400);
        let root = issue(
            Profile::Root,
            "CN=cloudvip-sim Instance Identity Root - r2",
            generate_rsa_2048()?,
            None,
            10 * year,
            now,
        )?;
        let intermediate = issue(
            Profile::SubCA {
                issuer: root.subject.clone(),
                path_len_constraint: Some(0),
            },
            "CN=cloudvip-sim PKISVC Identity Intermediate r2",
            generate_rsa_2048()?,
            Some(&root.key),
            5 * year,
            now,
        )?;
        Ok(IdentityCa {
            root,
            intermediate,
            leaf_lifetime,
        })
    }

    /// A fresh key and leaf for an instance (every call rotates).
    pub fn issue_leaf(
        &self,
        instance: &str,
        compartment: &str,
        tenancy: &str,
        now: SystemTime,
    ) -> Result<Issued, String> {
        // RFC 4514 string: the leftmost RDN is the most specific; x509-cert keeps the order.
        let subject = format!(
            "CN={instance},OU=opc-certtype:instance,OU=opc-instance:{instance},OU=opc-compartment:{compartment},OU=opc-tenant:{tenancy}"
        );
        issue(
            Profile::Leaf {
                issuer: self.intermediate.subject.clone(),
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
            &subject,
            generate_rsa_2048()?,
            Some(&self.intermediate.key),
            self.leaf_lifetime,
            now,
        )
    }

    /// The federation endpoint's checks on a presented chain: the intermediate must be
    /// ours, the leaf signed by it with sha256WithRSA and within its validity.
    pub fn verify_leaf(
        &self,
        leaf_der: &[u8],
        intermediates: &[Vec<u8>],
        now: SystemTime,
    ) -> Result<LeafInfo, String> {
        if !intermediates.contains(&self.intermediate.der) {
            return Err("no intermediate certificate issued by the identity CA".into());
        }
        let ca = Certificate::from_der(&self.intermediate.der).map_err(|e| e.to_string())?;
        let leaf = Certificate::from_der(leaf_der).map_err(|e| format!("certificate: {e}"))?;
        if leaf.tbs_certificate.issuer != ca.tbs_certificate.subject {
            return Err("certificate is not issued by the identity intermediate".into());
        }
        if leaf.signature_algorithm.oid.to_string() != SHA256_WITH_RSA {
            return Err("certificate signature algorithm is not sha256WithRSAEncryption".into());
        }
        let tbs = leaf
            .tbs_certificate
            .to_der()
            .map_err(|e| format!("tbs: {e}"))?;
        let ca_key = ca
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        let sig = leaf.signature.raw_bytes();
        if !super::signature::verify_rsa_sha256(ca_key, &tbs, sig) {
            return Err("certificate signature does not verify".into());
        }
        let v = &leaf.tbs_certificate.validity;
        if now < v.not_before.to_system_time() || now > v.not_after.to_system_time() {
            return Err("certificate is outside its validity period".into());
        }
        leaf_info(&leaf, leaf_der)
    }
}

fn leaf_info(cert: &Certificate, der: &[u8]) -> Result<LeafInfo, String> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid.to_string() != RSA_ENCRYPTION {
        return Err("certificate key is not RSA".into());
    }
    let mut info = LeafInfo {
        public_pkcs1: spki.subject_public_key.raw_bytes().to_vec(),
        sha1_upper: fingerprint(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der, true),
        sha256_lower: fingerprint(&ring::digest::SHA256, der, false),
        ..LeafInfo::default()
    };
    for rdn in cert.tbs_certificate.subject.0.iter() {
        for atv in rdn.0.iter() {
            let text = Utf8StringRef::try_from(&atv.value)
                .map(|s| s.as_str().to_owned())
                .or_else(|_| {
                    PrintableStringRef::try_from(&atv.value).map(|s| s.as_str().to_owned())
                });
            let Ok(text) = text else { continue };
            let oid = atv.oid.to_string();
            if oid == CN {
                info.common_name = Some(text);
            } else if oid == OU {
                if let Some(t) = text.strip_prefix("opc-tenant:") {
                    info.tenancy.get_or_insert_with(|| t.to_owned());
                } else if let Some(t) = text.strip_prefix("opc-instance:") {
                    info.instance = Some(t.to_owned());
                } else if let Some(t) = text.strip_prefix("opc-compartment:") {
                    info.compartment = Some(t.to_owned());
                } else if let Some(t) = text.strip_prefix("opc-certtype:") {
                    info.cert_type = Some(t.to_owned());
                }
            }
        }
    }
    Ok(info)
}

/// `AA:BB:…` (upper, SHA-1, the Python SDK's form) or `aa:bb:…` (lower, SHA-256, Go/Java).
pub fn fingerprint(alg: &'static ring::digest::Algorithm, der: &[u8], upper: bool) -> String {
    ring::digest::digest(alg, der)
        .as_ref()
        .iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// OCI's API-key fingerprint: MD5 of the DER SubjectPublicKeyInfo, lower-case `:`-hex (§3.1).
pub fn api_key_fingerprint(key: &RsaPublicKey) -> Result<String, String> {
    use md5::Digest as _;
    let der = key.to_public_key_der().map_err(|e| format!("spki: {e}"))?;
    let d = md5::Md5::digest(der.as_bytes());
    Ok(d.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// A public key from PEM: SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
pub fn parse_public_key_pem(pem: &str) -> Result<RsaPublicKey, String> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    RsaPublicKey::from_public_key_pem(pem.trim())
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem.trim()))
        .map_err(|e| format!("public key: {e}"))
}

/// A session public key as the federation body carries it: base64 of the SPKI DER.
pub fn parse_spki_der(der: &[u8]) -> Result<RsaPublicKey, String> {
    RsaPublicKey::from_public_key_der(der).map_err(|e| format!("public key: {e}"))
}

pub fn pkcs1_der(key: &RsaPublicKey) -> Result<Vec<u8>, String> {
    Ok(key
        .to_pkcs1_der()
        .map_err(|e| format!("pkcs1: {e}"))?
        .as_bytes()
        .to_vec())
}

pub fn modulus_bits(key: &RsaPublicKey) -> usize {
    key.n().bits()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_a_leaf_the_ca_accepts_and_reads_its_ous() {
        let now = SystemTime::now();
        let ca = IdentityCa::new(Duration::from_secs(3600), now).unwrap();
        let leaf = ca
            .issue_leaf(
                "ocid1.instance.oc1.iad.aaaa",
                "ocid1.compartment.oc1..cccc",
                "ocid1.tenancy.oc1..tttt",
                now,
            )
            .unwrap();
        assert!(leaf.key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert!(leaf.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let info = ca
            .verify_leaf(&leaf.der, std::slice::from_ref(&ca.intermediate.der), now)
            .unwrap();
        assert_eq!(info.tenancy.as_deref(), Some("ocid1.tenancy.oc1..tttt"));
        assert_eq!(
            info.instance.as_deref(),
            Some("ocid1.instance.oc1.iad.aaaa")
        );
        assert_eq!(
            info.compartment.as_deref(),
            Some("ocid1.compartment.oc1..cccc")
        );
        assert_eq!(info.cert_type.as_deref(), Some("instance"));
        assert_eq!(info.sha1_upper.len(), 59);
        assert_eq!(info.sha256_lower.len(), 95);
        // Outside validity, without our intermediate, or signed by a stranger: refused.
        let later = now + Duration::from_secs(7200);
        assert!(ca
            .verify_leaf(&leaf.der, std::slice::from_ref(&ca.intermediate.der), later)
            .is_err());
        assert!(ca.verify_leaf(&leaf.der, &[], now).is_err());
        let other = IdentityCa::new(Duration::from_secs(3600), now).unwrap();
        let foreign = other
            .issue_leaf("i", "c", "ocid1.tenancy.oc1..tttt", now)
            .unwrap();
        assert!(ca
            .verify_leaf(
                &foreign.der,
                std::slice::from_ref(&ca.intermediate.der),
                now
            )
            .is_err());
    }

    #[test]
    fn api_key_fingerprint_of_the_go_test_key() {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        let k = RsaPrivateKey::from_pkcs1_pem(crate::oci::signature::tests::GO_TEST_KEY).unwrap();
        // research §3.4: "the key's real MD5 fingerprint is 73:61:a2:…" [V].
        assert_eq!(
            api_key_fingerprint(&k.to_public_key()).unwrap(),
            "73:61:a2:21:67:e0:df:be:7e:4b:93:1e:15:98:a5:b7"
        );
    }
}
