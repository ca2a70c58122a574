//! Every secret the emulator issued or was shown, for tests that grep logs for leaks: the
//! access and session tokens it answered, the private keys it handed out (service-account
//! key files, OCI instance identity keys), and the bearer tokens, JWT assertions and request
//! signatures clients sent it. Recorded on the wire by `server.rs` for every service,
//! the admin API included, so no cloud has to remember to. `GET /admin/secrets` lists them;
//! with `CLOUDVIP_SIM_SECRETS=<dir>` in the environment each one is also appended, as
//! `kind<TAB>value`, to a file of its own in that directory (a test suite's scan reads
//! those after the emulators are gone).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use serde_json::Value;

use crate::http::{Request, Response};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Shorter strings are not worth looking for (and would match by chance).
const MIN_LEN: usize = 16;

pub struct Secrets {
    seen: Mutex<BTreeSet<(String, String)>>,
    file: Option<PathBuf>,
}

impl Default for Secrets {
    fn default() -> Self {
        let file = std::env::var_os("CLOUDVIP_SIM_SECRETS").map(|d| {
            PathBuf::from(d).join(format!(
                "sim-{}-{}.secrets",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::SeqCst)
            ))
        });
        Secrets {
            seen: Mutex::new(BTreeSet::new()),
            file,
        }
    }
}

impl Secrets {
    pub fn add(&self, kind: &str, value: &str) {
        let value = value.trim();
        if value.len() < MIN_LEN || value.contains(['\t', '\n']) {
            return;
        }
        let mut g = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !g.insert((kind.to_owned(), value.to_owned())) {
            return;
        }
        if let Some(f) = &self.file {
            let line = format!("{kind}\t{value}\n");
            let _ = std::fs::create_dir_all(f.parent().unwrap_or(f));
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)
                .and_then(|mut w| w.write_all(line.as_bytes()));
        }
    }

    /// `[{"kind", "value"}]`, sorted.
    pub fn list(&self) -> Value {
        let g = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        Value::Array(
            g.iter()
                .map(|(k, v)| serde_json::json!({"kind": k, "value": v}))
                .collect(),
        )
    }

    /// A JWT, and its signature on its own (a log may hold a part of it).
    fn jwt(&self, kind: &str, jwt: &str) {
        self.add(kind, jwt);
        if let Some(sig) = jwt
            .rsplit('.')
            .next()
            .filter(|_| jwt.matches('.').count() == 2)
        {
            self.add(&format!("{kind} signature"), sig);
        }
    }

    /// The body lines of every private key in `text` (the armour lines are public).
    fn pem(&self, kind: &str, text: &str) {
        let mut inside = false;
        for line in text.lines() {
            let l = line.trim();
            if l.contains("-----BEGIN") && l.contains("PRIVATE KEY") {
                inside = true;
            } else if l.contains("-----END") {
                inside = false;
            } else if inside && !l.contains(':') {
                self.add(kind, l);
            }
        }
    }

    /// What the client showed: its bearer token, OCI session token and signature, a JWT
    /// assertion in a token request.
    pub fn from_request(&self, req: &Request) {
        if let Some(auth) = req.header("authorization") {
            let auth = auth.trim();
            if let Some(t) = auth
                .strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
            {
                if t.trim() != "Oracle" {
                    self.jwt("bearer token", t.trim());
                }
            }
            for (k, v) in quoted_params(auth) {
                match k {
                    "signature" => self.add("request signature", v),
                    "keyId" => {
                        if let Some(jwt) = v.strip_prefix("ST$") {
                            self.jwt("OCI session token", jwt);
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Ok(body) = std::str::from_utf8(&req.body) {
            for pair in body.split('&') {
                if let Some(a) = pair.strip_prefix("assertion=") {
                    self.jwt("JWT assertion", a);
                }
            }
        }
    }

    /// What the emulator answered: tokens in JSON, private keys in JSON or PEM text.
    pub fn from_response(&self, resp: &Response) {
        let Ok(text) = std::str::from_utf8(&resp.body) else {
            return;
        };
        if text.contains("PRIVATE KEY-----") {
            self.pem("private key", &text.replace("\\n", "\n"));
        }
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            for (field, kind) in [
                ("access_token", "access token"),
                ("id_token", "id token"),
                ("token", "OCI session token"),
            ] {
                if let Some(t) = v.get(field).and_then(Value::as_str) {
                    self.jwt(kind, t);
                }
            }
        }
    }
}

/// `k="v"` pairs of an `Authorization: Signature ...` header.
fn quoted_params(s: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].rsplit([',', ' ']).next().unwrap_or("");
        let after = &rest[eq + 2..];
        let Some(end) = after.find('"') else { break };
        out.push((key, &after[..end]));
        rest = &after[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tokens_keys_and_signatures() {
        let s = Secrets::default();
        let sig = "c2lnbmF0dXJlLW9mLXRoZS1yZXF1ZXN0LWJ5dGVz";
        let auth = format!(
            "Signature version=\"1\",keyId=\"ST$aaaa.bbbbbbbbbbbbbbbbbbbbbb.cccccccccccccccccccc\",algorithm=\"rsa-sha256\",headers=\"date\",signature=\"{sig}\""
        );
        let mut req = Request {
            method: "GET".into(),
            path: "/".into(),
            raw_query: String::new(),
            query: vec![],
            headers: vec![("Authorization".into(), auth)],
            body: vec![],
            peer: "127.0.0.1:1".parse().unwrap(),
            local: "127.0.0.1:2".parse().unwrap(),
            tls: false,
            close: false,
        };
        s.from_request(&req);
        req.headers = vec![("Authorization".into(), "Bearer Oracle".into())];
        s.from_request(&req);
        s.from_response(&Response::json(
            200,
            &serde_json::json!({"access_token": "ya29.a-long-enough-token-value", "private_key":
                "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"}),
        ));
        let l = s.list().to_string();
        for want in [
            sig,
            "cccccccccccccccccccc",
            "ya29.a-long-enough-token-value",
            "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        ] {
            assert!(l.contains(want), "{want} not in {l}");
        }
        assert!(!l.contains("Oracle"));
    }
}
