//! Security tokens issued by the federation endpoint: RS256 JWTs signed by an emulator key,
//! each remembered with the session public key it was issued for, so a later request with
//! `keyId="ST$<jwt>"` can be checked (research/oci-api.md §4.3, §7).
//!
//! Claims follow the Go SDK fixture (§4.3) plus `jwk`, the bound session key as a JSON
//! string, which is how real OCI security tokens carry it. Clients only read `exp`/`iat`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rsa::pkcs8::EncodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use serde_json::json;
use std::collections::HashMap;

/// Who a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPrincipal {
    pub instance: String,
    pub compartment: String,
    pub tenancy: String,
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub principal: TokenPrincipal,
    /// PKCS#1 DER of the session public key the token is bound to.
    pub session_key_pkcs1: Vec<u8>,
    pub iat: u64,
    pub exp: u64,
    pub revoked: bool,
}

/// Upper bound on remembered tokens: expired ones are dropped first (bounded memory).
const MAX_TOKENS: usize = 10_000;

pub struct Tokens {
    key: RsaKeyPair,
    kid: String,
    issued: HashMap<String, IssuedToken>,
}

impl Tokens {
    pub fn new() -> Result<Self, String> {
        let k = super::pki::generate_rsa_2048()?;
        let der = k.to_pkcs8_der().map_err(|e| format!("pkcs8: {e}"))?;
        let key = RsaKeyPair::from_pkcs8(der.as_bytes()).map_err(|e| format!("ring: {e}"))?;
        Ok(Tokens {
            key,
            kid: "asw".into(),
            issued: HashMap::new(),
        })
    }

    /// Issues a JWT for `principal`, bound to `session_key`, valid `lifetime_secs` from `now`.
    pub fn issue(
        &mut self,
        principal: TokenPrincipal,
        session_key: &RsaPublicKey,
        now: u64,
        lifetime_secs: u64,
    ) -> Result<String, String> {
        if self.issued.len() >= MAX_TOKENS {
            self.issued.retain(|_, t| t.exp > now && !t.revoked);
            if self.issued.len() >= MAX_TOKENS {
                return Err("too many live tokens".into());
            }
        }
        let mut jti = [0u8; 16];
        ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut jti).map_err(|_| "rng")?;
        let jwk = json!({
            "kid": "sim-session-key",
            "n": URL_SAFE_NO_PAD.encode(session_key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(session_key.e().to_bytes_be()),
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
        })
        .to_string();
        let exp = now + lifetime_secs;
        let header = json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"});
        let claims = json!({
            "aud": "oci",
            "iss": "authService.oracle.com",
            "iat": now,
            "exp": exp,
            "jti": hex(&jti),
            "sub": principal.instance,
            "opc-certtype": "instance",
            "opc-instance": principal.instance,
            "opc-compartment": principal.compartment,
            "opc-tenant": principal.tenancy,
            "tenant": principal.tenancy,
            "ptype": "instance",
            "ttype": "x509",
            "jwk": jwk,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "jwt signing failed")?;
        let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig));
        self.issued.insert(
            jwt.clone(),
            IssuedToken {
                principal,
                session_key_pkcs1: super::pki::pkcs1_der(session_key)?,
                iat: now,
                exp,
                revoked: false,
            },
        );
        Ok(jwt)
    }

    /// The token, if we issued it and it is still good at `now`.
    pub fn check(&self, jwt: &str, now: u64) -> Result<&IssuedToken, String> {
        let t = self
            .issued
            .get(jwt)
            .ok_or("security token was not issued by this auth service")?;
        if t.revoked {
            return Err("security token was revoked".into());
        }
        if now >= t.exp {
            return Err(format!("security token expired {} s ago", now - t.exp));
        }
        Ok(t)
    }

    /// Who a token was issued to, valid or not (for request classification and logs).
    pub fn principal_of(&self, jwt: &str) -> Option<&TokenPrincipal> {
        self.issued.get(jwt).map(|t| &t.principal)
    }

    /// Admin: every token issued so far stops working (token expiry mid-operation).
    pub fn revoke_all(&mut self) -> usize {
        let mut n = 0;
        for t in self.issued.values_mut() {
            if !t.revoked {
                t.revoked = true;
                n += 1;
            }
        }
        n
    }

    pub fn live(&self, now: u64) -> usize {
        self.issued
            .values()
            .filter(|t| !t.revoked && t.exp > now)
            .count()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_checks_expires_and_revokes() {
        let mut t = Tokens::new().unwrap();
        let session = super::super::pki::generate_rsa_2048().unwrap();
        let p = TokenPrincipal {
            instance: "ocid1.instance.oc1.iad.a".into(),
            compartment: "ocid1.compartment.oc1..c".into(),
            tenancy: "ocid1.tenancy.oc1..t".into(),
        };
        let jwt = t
            .issue(p.clone(), &session.to_public_key(), 1000, 60)
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["exp"], 1060);
        assert_eq!(claims["opc-tenant"], "ocid1.tenancy.oc1..t");
        let jwk: serde_json::Value = serde_json::from_str(claims["jwk"].as_str().unwrap()).unwrap();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(t.check(&jwt, 1059).unwrap().principal, p);
        assert!(t.check(&jwt, 1060).is_err());
        assert!(t.check("x.y.z", 1000).is_err());
        assert_eq!(t.revoke_all(), 1);
        assert!(t.check(&jwt, 1001).unwrap_err().contains("revoked"));
    }
}
