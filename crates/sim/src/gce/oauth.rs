//! Service-account keys (generated here, handed out in Google's key-file format), the OAuth
//! token endpoint (`POST /token`, RS256 JWT-bearer grant, gce-api.md §6) and the access
//! tokens it and the metadata server issue. Self-signed JWTs used directly as bearer tokens
//! (what google-auth does for GAPIC clients) are verified with the same keys.

use base64::Engine;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

use crate::clock;

/// The audience google-auth hard-codes for the JWT grant (gce-api.md §6.2).
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[derive(Clone, Debug)]
pub struct Token {
    pub service_account: String,
    pub scopes: Vec<String>,
    pub expires: SystemTime,
}

#[derive(Clone)]
pub struct SaKey {
    pub email: String,
    pub key_id: String,
    pub public_pkcs1_der: Vec<u8>,
    pub private_pem: String,
}

impl std::fmt::Debug for SaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SaKey({}, {})", self.email, self.key_id)
    }
}

/// Generates an RSA-2048 key (PKCS#8 PEM private half, PKCS#1 DER public half).
pub fn generate_key(email: &str) -> Result<SaKey, String> {
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let k = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|e| e.to_string())?;
    let pem = k
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?
        .to_string();
    let public = k
        .to_public_key()
        .to_pkcs1_der()
        .map_err(|e| e.to_string())?
        .as_bytes()
        .to_vec();
    Ok(SaKey {
        email: email.to_string(),
        key_id: clock::random_hex(20),
        public_pkcs1_der: public,
        private_pem: pem,
    })
}

/// Google's service-account key file (gce-api.md §6.1), field for field.
pub fn key_file(project: &str, key: &SaKey, token_uri: &str) -> Value {
    let client_id = super::state::id_from_name("sa", &key.email).to_string();
    json!({
        "type": "service_account",
        "project_id": project,
        "private_key_id": key.key_id,
        "private_key": key.private_pem,
        "client_email": key.email,
        "client_id": client_id,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": format!(
            "https://www.googleapis.com/robot/v1/metadata/x509/{}",
            crate::http::percent_encode(&key.email)
        ),
        "universe_domain": "googleapis.com",
    })
}

pub fn new_access_token() -> String {
    format!(
        "ya29.c.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(clock::random_bytes(48))
    )
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

/// A verified JWT's claims.
#[derive(Debug)]
pub struct Claims {
    pub email: String,
    pub raw: Value,
}

impl Claims {
    pub fn scopes(&self) -> Vec<String> {
        self.raw
            .get("scope")
            .and_then(Value::as_str)
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

/// Verifies an RS256 JWT signed by one of `keys` and its time claims. `Err` carries Google's
/// `error_description` text.
pub fn verify_jwt(keys: &[SaKey], jwt: &str, now: SystemTime) -> Result<Claims, String> {
    let bad = || "Invalid JWT Signature.".to_string();
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("Invalid JWT: malformed assertion.".into());
    };
    let header: Value = b64url(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("Invalid JWT: malformed header.")?;
    let claims: Value = b64url(c)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("Invalid JWT: malformed claims.")?;
    let sig = b64url(s).ok_or_else(bad)?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err("Invalid JWT: unsupported alg.".into());
    }
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    let kid = header.get("kid").and_then(Value::as_str);
    let candidates: Vec<&SaKey> = keys
        .iter()
        .filter(|k| k.email == iss && kid.is_none_or(|kid| kid == k.key_id))
        .collect();
    if candidates.is_empty() {
        // Google answers this for an unknown or deleted key/account (gce-api.md §6.3).
        return Err("Invalid grant: account not found".into());
    }
    let msg = format!("{h}.{c}");
    let ok = candidates.iter().any(|k| {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            &k.public_pkcs1_der,
        )
        .verify(msg.as_bytes(), &sig)
        .is_ok()
    });
    if !ok {
        return Err(bad());
    }
    let client = |t: u64| {
        clock::unix_secs(clock::as_client_wrote(
            std::time::UNIX_EPOCH + Duration::from_secs(t),
        ))
    };
    let iat = claims.get("iat").and_then(Value::as_u64).map(client);
    let exp = claims.get("exp").and_then(Value::as_u64).map(client);
    let now = clock::unix_secs(now);
    let timing = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";
    match (iat, exp) {
        // 60 s of skew tolerated for iat in the future; golang/oauth2 back-dates iat by 10 s.
        (Some(iat), Some(exp))
            if exp > iat && exp - iat <= 3600 && iat <= now + 60 && exp > now => {}
        _ => return Err(timing.into()),
    }
    Ok(Claims {
        email: iss.to_string(),
        raw: claims,
    })
}

/// Token lifetime as `expires_in` (seconds left, never negative).
pub fn expires_in(t: &Token, now: SystemTime) -> u64 {
    t.expires
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// RFC 6749 error body used by the token endpoint.
pub fn oauth_error(status: u16, error: &str, description: &str) -> crate::http::Response {
    crate::http::Response::json(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(key: &SaKey, claims: &Value) -> String {
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(key.private_pem.as_bytes())
            .unwrap();
        let kp = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let h = e.encode(json!({"alg":"RS256","typ":"JWT","kid":key.key_id}).to_string());
        let c = e.encode(claims.to_string());
        let msg = format!("{h}.{c}");
        let mut sig = vec![0; kp.public().modulus_len()];
        kp.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            msg.as_bytes(),
            &mut sig,
        )
        .unwrap();
        format!("{msg}.{}", e.encode(sig))
    }

    #[test]
    fn jwt_roundtrip_and_rejections() {
        let key = generate_key("sa@p.iam.gserviceaccount.com").unwrap();
        let now = SystemTime::now();
        let t = clock::unix_secs(now);
        let good = json!({"iss": key.email, "aud": GOOGLE_TOKEN_URI, "iat": t, "exp": t + 3600, "scope": "a b"});
        let jwt = sign(&key, &good);
        let c = verify_jwt(std::slice::from_ref(&key), &jwt, now).unwrap();
        assert_eq!(c.scopes(), vec!["a", "b"]);
        // Tampered claims.
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let other = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"iss": key.email, "iat": t, "exp": t + 10}).to_string());
        parts[1] = &other;
        assert_eq!(
            verify_jwt(std::slice::from_ref(&key), &parts.join("."), now).unwrap_err(),
            "Invalid JWT Signature."
        );
        // Too long-lived.
        let long = sign(&key, &json!({"iss": key.email, "iat": t, "exp": t + 7200}));
        assert!(verify_jwt(std::slice::from_ref(&key), &long, now)
            .unwrap_err()
            .contains("short-lived"));
        // Another key with the same email but a different id.
        let other_key = generate_key(&key.email).unwrap();
        assert!(verify_jwt(std::slice::from_ref(&other_key), &jwt, now).is_err());
    }
}
