//! Who signs: the instance profile through IMDS (the default on EC2), static keys from a
//! shared credentials file (`~/.aws/credentials` format, checked like every credential
//! file: `secret::read_credential_file` refuses one others can write), or keys given
//! directly; optionally an STS `AssumeRole` on top (cross-account route tables,
//! resource-agents PR #1454). Temporary credentials are kept until five minutes before
//! they expire (IMDS publishes new ones at least five minutes before the old expire,
//! research/aws-azure.md §A1.3) and dropped at once when EC2 refuses them
//! (`invalidate`), so the next call fetches new ones. With a state directory they are
//! cached there (mode 0600, like the other clouds' tokens) and refreshed under a lock, so
//! parallel actions make one IMDS or STS round trip, not one each.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cloud::secret::{self, unix_now, Secret};
use crate::cloud::CloudError;
use crate::deadline::Deadline;
use crate::http::Http;

use super::client::{self, Endpoint};
use super::imds::Imds;
use super::sigv4::Keys;
use super::{model, query};

/// Renew temporary credentials this long before they expire.
pub const REFRESH_MARGIN_SECS: u64 = 300;

/// STS's minimum session; one action never needs more.
pub const DEFAULT_SESSION_SECS: u32 = 900;

#[derive(Clone, Debug)]
pub enum Source {
    /// The instance profile's role, from IMDS.
    Instance,
    /// A shared credentials file and the profile in it.
    File { path: PathBuf, profile: String },
    /// Keys given as they are (a test, or the environment: `from_env`).
    Static(Keys),
}

impl Source {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optional `AWS_SESSION_TOKEN` from
    /// `env` (botocore's `EnvProvider`), when both keys are set.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Option<Source> {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        Some(Source::Static(Keys {
            access_key: get("AWS_ACCESS_KEY_ID")?,
            secret: Secret::new(get("AWS_SECRET_ACCESS_KEY")?),
            token: get("AWS_SESSION_TOKEN").map(Secret::new),
        }))
    }
}

/// An STS AssumeRole made with the source's credentials.
#[derive(Clone, Debug)]
pub struct AssumeRole {
    pub role_arn: String,
    pub session_name: String,
    pub external_id: Option<String>,
    pub duration_secs: u32,
}

impl AssumeRole {
    pub fn new(role_arn: &str) -> AssumeRole {
        AssumeRole {
            role_arn: role_arn.to_owned(),
            session_name: "cloudvip".to_owned(),
            external_id: None,
            duration_secs: DEFAULT_SESSION_SECS,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Credentials {
    pub keys: Keys,
    /// Unix seconds; `None` for long-term keys.
    pub expires: Option<u64>,
    /// Where they came from, for messages ("instance profile role ha-node").
    pub from: String,
}

impl Credentials {
    fn fresh(&self) -> bool {
        self.expires
            .is_none_or(|e| e > unix_now() + REFRESH_MARGIN_SECS)
    }
}

/// The credentials of one source (and role), fetched when needed.
pub struct Provider {
    source: Source,
    assume: Option<AssumeRole>,
    base: Option<Credentials>,
    current: Option<Credentials>,
    /// The state directory temporary credentials are cached in (`with_cache`).
    state: Option<PathBuf>,
    /// The access keys the service refused: a cached copy of one is not used again.
    rejected: Vec<String>,
}

/// A cache file's content.
#[derive(Serialize, Deserialize)]
struct Cached {
    key: String,
    access_key: String,
    secret: String,
    token: Option<String>,
    expires: u64,
    from: String,
}

fn local(m: String) -> CloudError {
    CloudError::Local(m)
}

/// Static keys from `path`'s `[profile]` (`aws_access_key_id`, `aws_secret_access_key`,
/// optional `aws_session_token`). Anything wrong with the file is this node's setup.
pub fn read_file(path: &std::path::Path, profile: &str) -> Result<Credentials, CloudError> {
    let bad = |m: String| local(format!("AWS credentials file {}: {m}", path.display()));
    let text = secret::read_credential_file(path).map_err(bad)?;
    let text = String::from_utf8(text).map_err(|_| bad("not UTF-8 text".into()))?;
    let cfg = crate::cloud::oci::auth::parse_config(&text, profile)
        .ok_or_else(|| bad(format!("no profile [{profile}]")))?;
    let get = |k: &str| {
        cfg.get(k)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| bad(format!("profile [{profile}] lacks {k}")))
    };
    Ok(Credentials {
        keys: Keys {
            access_key: get("aws_access_key_id")?,
            secret: Secret::new(get("aws_secret_access_key")?),
            token: cfg
                .get("aws_session_token")
                .filter(|v| !v.is_empty())
                .map(|t| Secret::new(t.clone())),
        },
        expires: None,
        from: format!("credentials file {} [{profile}]", path.display()),
    })
}

impl Provider {
    pub fn new(source: Source, assume: Option<AssumeRole>) -> Provider {
        Provider {
            source,
            assume,
            base: None,
            current: None,
            state: None,
            rejected: Vec::new(),
        }
    }

    /// Keep temporary credentials in the state directory (`state::dir`) between actions:
    /// the instance profile's under one name (every provider of this node shares them),
    /// an assumed role's under a name of source and role. Long-term keys are read from
    /// their file each time and never copied.
    pub fn with_cache(mut self, state: Option<&Path>) -> Provider {
        self.state = state.map(Path::to_owned);
        self
    }

    /// Whether `invalidate` can bring different credentials (temporary ones can).
    pub fn refreshable(&self) -> bool {
        self.assume.is_some() || matches!(self.source, Source::Instance)
    }

    /// Forget what was fetched: the service refused it.
    pub fn invalidate(&mut self) {
        for c in [self.current.take(), self.base.take()]
            .into_iter()
            .flatten()
        {
            self.rejected.push(c.keys.access_key);
        }
    }

    /// What the source's credentials are (never a secret).
    fn source_key(&self) -> String {
        match &self.source {
            Source::Instance => "instance-profile".to_owned(),
            Source::File { path, profile } => format!("file {} [{profile}]", path.display()),
            Source::Static(k) => format!("static {}", k.access_key),
        }
    }

    /// The cache file for `key`, when there is a state directory.
    fn cache_file(&self, key: &str) -> Option<PathBuf> {
        secret::cache_path(self.state.as_deref(), "cloudvip-aws-credentials", key)
    }

    /// Fresh credentials cached under `key` that the service has not refused.
    fn read_cache(&self, key: &str) -> Option<Credentials> {
        let c: Cached =
            serde_json::from_slice(&secret::read_private(&self.cache_file(key)?)?).ok()?;
        let creds = Credentials {
            keys: Keys {
                access_key: c.access_key,
                secret: Secret::new(c.secret),
                token: c.token.map(Secret::new),
            },
            expires: Some(c.expires),
            from: c.from,
        };
        (c.key == key && creds.fresh() && !self.rejected.contains(&creds.keys.access_key))
            .then_some(creds)
    }

    fn write_cache(&self, key: &str, c: &Credentials) {
        let (Some(path), Some(expires)) = (self.cache_file(key), c.expires) else {
            return;
        };
        let entry = Cached {
            key: key.to_owned(),
            access_key: c.keys.access_key.clone(),
            secret: c.keys.secret.expose().to_owned(),
            token: c.keys.token.as_ref().map(|t| t.expose().to_owned()),
            expires,
            from: c.from.clone(),
        };
        let body = serde_json::to_vec(&entry).unwrap_or_default();
        if let Err(e) = secret::write_private(&path, &body) {
            log::warn!("cannot cache AWS credentials in {}: {e}", path.display());
        }
    }

    /// Credentials cached under `key`, else `fetch`ed once for every action that finds
    /// the cache stale at the same time (the others wait for the lock and read its
    /// result), then cached.
    fn through_cache(
        &mut self,
        key: &str,
        deadline: &Deadline,
        fetch: impl FnOnce(&mut Self) -> Result<Credentials, CloudError>,
    ) -> Result<Credentials, CloudError> {
        if let Some(c) = self.read_cache(key) {
            return Ok(c);
        }
        let file = self.cache_file(key);
        let _lock = secret::refresh_lock(file.as_deref(), deadline)?;
        if let Some(c) = self.read_cache(key) {
            return Ok(c);
        }
        let c = fetch(self)?;
        self.write_cache(key, &c);
        Ok(c)
    }

    fn base(
        &mut self,
        http: &Http,
        imds: &mut Imds,
        deadline: &Deadline,
    ) -> Result<Credentials, CloudError> {
        if let Some(c) = self.base.as_ref().filter(|c| c.fresh()) {
            return Ok(c.clone());
        }
        let c = match &self.source {
            Source::Static(k) => Credentials {
                keys: k.clone(),
                expires: None,
                from: "static keys".into(),
            },
            Source::File { path, profile } => read_file(path, profile)?,
            Source::Instance => {
                let key = self.source_key();
                self.through_cache(&key, deadline, |_| instance_profile(http, imds, deadline))?
            }
        };
        self.base = Some(c.clone());
        Ok(c)
    }

    /// Credentials good for a while yet: the ones in memory or in the cache, else new
    /// ones.
    pub fn get(
        &mut self,
        http: &Http,
        imds: &mut Imds,
        sts: &Endpoint,
        deadline: &Deadline,
    ) -> Result<Credentials, CloudError> {
        if let Some(c) = self.current.as_ref().filter(|c| c.fresh()) {
            return Ok(c.clone());
        }
        let c = match self.assume.clone() {
            None => self.base(http, imds, deadline)?,
            Some(role) => {
                let key = format!(
                    "{} -> {} {} {:?} {}",
                    self.source_key(),
                    role.role_arn,
                    role.session_name,
                    role.external_id,
                    role.duration_secs
                );
                self.through_cache(&key, deadline, |p| {
                    let base = p.base(http, imds, deadline)?;
                    assume(http, sts, &base, &role, deadline)
                })?
            }
        };
        self.current = Some(c.clone());
        Ok(c)
    }
}

fn instance_profile(
    http: &Http,
    imds: &mut Imds,
    deadline: &Deadline,
) -> Result<Credentials, CloudError> {
    let r = imds.role_credentials(http, deadline)?;
    log::debug!(
        "instance profile credentials of role {} (expire in {} s)",
        r.role,
        r.expires.saturating_sub(unix_now())
    );
    Ok(Credentials {
        keys: Keys {
            access_key: r.access_key,
            secret: r.secret,
            token: Some(r.token),
        },
        expires: Some(r.expires),
        from: format!("instance profile role {}", r.role),
    })
}

/// STS AssumeRole with `base`'s keys.
fn assume(
    http: &Http,
    sts: &Endpoint,
    base: &Credentials,
    role: &AssumeRole,
    deadline: &Deadline,
) -> Result<Credentials, CloudError> {
    let q = query::assume_role(
        &role.role_arn,
        &role.session_name,
        role.external_id.as_deref(),
        role.duration_secs,
    );
    let root = match client::call_once(http, sts, &base.keys, &q, deadline)? {
        client::Answer::Done(root) => root,
        client::Answer::Refused(e) => {
            let mut err = e.kind_of("sts:AssumeRole");
            if let CloudError::Denied(m) = &mut err {
                m.push_str(&format!(" (as {})", base.from));
            }
            return Err(e.coded(err));
        }
    };
    let c = model::assumed_credentials(&root)
        .map_err(|e| CloudError::Transient(format!("unexpected sts:AssumeRole answer: {e}")))?;
    log::debug!(
        "assumed role {} (expires in {} s)",
        role.role_arn,
        c.expires.saturating_sub(unix_now())
    );
    Ok(Credentials {
        keys: Keys {
            access_key: c.access_key,
            secret: Secret::new(c.secret),
            token: Some(Secret::new(c.token)),
        },
        expires: Some(c.expires),
        from: format!("role {}", role.role_arn),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn write(dir: &std::path::Path, mode: u32, text: &str) -> PathBuf {
        let p = dir.join("credentials");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    const FILE: &str = "[default]\naws_access_key_id = AKIACLOUDVIPSIM0001\naws_secret_access_key = cloudvip-sim-secret-key-0001\n\n[auditor]\naws_access_key_id=AKIACLOUDVIPSIM0002\naws_secret_access_key=cloudvip-sim-secret-key-0002\naws_session_token = tok\n";

    #[test]
    fn profiles_from_a_private_file() {
        let d = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o400] {
            let p = write(d.path(), mode, FILE);
            let c = read_file(&p, "default").unwrap();
            assert_eq!(c.keys.access_key, "AKIACLOUDVIPSIM0001");
            assert_eq!(c.keys.secret.expose(), "cloudvip-sim-secret-key-0001");
            assert!(c.keys.token.is_none() && c.expires.is_none());
            let a = read_file(&p, "auditor").unwrap();
            assert_eq!(a.keys.token.as_ref().map(|t| t.expose()), Some("tok"));
            std::fs::remove_file(&p).unwrap();
        }
    }

    #[test]
    fn bad_files_are_this_nodes_setup() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), 0o622, FILE);
        match read_file(&p, "default") {
            Err(CloudError::Local(m)) => assert!(m.contains("chmod 600"), "{m}"),
            other => panic!("{other:?}"),
        }
        let p = write(d.path(), 0o600, FILE);
        assert!(matches!(read_file(&p, "nope"), Err(CloudError::Local(_))));
        let p = write(d.path(), 0o600, "[default]\naws_access_key_id = A\n");
        match read_file(&p, "default") {
            Err(CloudError::Local(m)) => assert!(m.contains("aws_secret_access_key"), "{m}"),
            other => panic!("{other:?}"),
        }
        std::fs::write(&p, b"[default]\n\xff\xfe").unwrap();
        assert!(matches!(
            read_file(&p, "default"),
            Err(CloudError::Local(_))
        ));
        assert!(matches!(
            read_file(&d.path().join("absent"), "default"),
            Err(CloudError::Local(_))
        ));
    }

    #[test]
    fn keys_from_the_environment() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        match Source::from_env(env(&[
            ("AWS_ACCESS_KEY_ID", "AKIA1"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", "t"),
        ])) {
            Some(Source::Static(k)) => {
                assert_eq!(k.access_key, "AKIA1");
                assert_eq!(k.token.map(|t| t.expose().to_owned()).as_deref(), Some("t"));
            }
            other => panic!("{other:?}"),
        }
        assert!(Source::from_env(env(&[("AWS_ACCESS_KEY_ID", "AKIA1")])).is_none());
        assert!(Source::from_env(env(&[
            ("AWS_ACCESS_KEY_ID", "AKIA1"),
            ("AWS_SECRET_ACCESS_KEY", "")
        ]))
        .is_none());
    }

    #[test]
    fn the_cache_is_private_keyed_and_skips_refused_keys() {
        let d = tempfile::tempdir().unwrap();
        let mut p = Provider::new(Source::Instance, None).with_cache(Some(d.path()));
        let key = p.source_key();
        let path = p.cache_file(&key).unwrap();
        assert!(path.starts_with(d.path()));
        let c = Credentials {
            keys: Keys {
                access_key: "ASIA1".into(),
                secret: Secret::new("s".into()),
                token: Some(Secret::new("t".into())),
            },
            expires: Some(unix_now() + 3600),
            from: "instance profile role r".into(),
        };
        p.write_cache(&key, &c);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(p.read_cache(&key).unwrap().keys.access_key, "ASIA1");
        assert!(p.read_cache("another source").is_none());
        p.current = Some(c.clone());
        p.invalidate();
        assert!(
            p.read_cache(&key).is_none(),
            "the refused key is not used again"
        );
        // Nearly expired: not used.
        let q = Provider::new(Source::Instance, None).with_cache(Some(d.path()));
        q.write_cache(
            &key,
            &Credentials {
                expires: Some(unix_now() + 10),
                ..c
            },
        );
        assert!(q.read_cache(&key).is_none());
        // Long-term keys are never written.
        let s = Provider::new(Source::Instance, None).with_cache(Some(d.path()));
        s.write_cache(
            "long-term",
            &Credentials {
                keys: Keys {
                    access_key: "A".into(),
                    secret: Secret::new("s".into()),
                    token: None,
                },
                expires: None,
                from: String::new(),
            },
        );
        assert!(s.cache_file("long-term").is_some_and(|f| !f.exists()));
        // Without a state directory, nothing is cached.
        assert!(Provider::new(Source::Instance, None)
            .cache_file(&key)
            .is_none());
    }

    #[test]
    fn expiry_margin() {
        let k = Keys {
            access_key: "A".into(),
            secret: Secret::new("s".into()),
            token: None,
        };
        let c = |expires| Credentials {
            keys: k.clone(),
            expires,
            from: String::new(),
        };
        assert!(c(None).fresh());
        assert!(c(Some(unix_now() + 3600)).fresh());
        assert!(!c(Some(unix_now() + 60)).fresh());
        assert!(!Provider::new(Source::Static(k.clone()), None).refreshable());
        assert!(Provider::new(Source::Instance, None).refreshable());
        assert!(Provider::new(
            Source::Static(k),
            Some(AssumeRole::new("arn:aws:iam::1:role/r"))
        )
        .refreshable());
    }
}
