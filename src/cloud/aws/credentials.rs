//! Who signs: the instance profile through IMDS (the default on EC2), static keys from a
//! shared credentials file (`~/.aws/credentials` format, checked like every credential
//! file: `secret::read_credential_file` refuses one others can write), or keys given
//! directly; optionally an STS `AssumeRole` on top (cross-account route tables,
//! resource-agents PR #1454). Temporary credentials are kept until five minutes before
//! they expire (IMDS publishes new ones at least five minutes before the old expire,
//! research/aws-azure.md §A1.3) and dropped at once when EC2 refuses them
//! (`invalidate`), so the next call fetches new ones.

use std::path::PathBuf;

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
    /// Keys given as they are (a test, a future environment source).
    Static(Keys),
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
        }
    }

    /// Whether `invalidate` can bring different credentials (temporary ones can).
    pub fn refreshable(&self) -> bool {
        self.assume.is_some() || matches!(self.source, Source::Instance)
    }

    /// Forget what was fetched: the service refused it.
    pub fn invalidate(&mut self) {
        self.current = None;
        self.base = None;
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
                let r = imds.role_credentials(http, deadline)?;
                log::debug!(
                    "instance profile credentials of role {} (expire in {} s)",
                    r.role,
                    r.expires.saturating_sub(unix_now())
                );
                Credentials {
                    keys: Keys {
                        access_key: r.access_key,
                        secret: r.secret,
                        token: Some(r.token),
                    },
                    expires: Some(r.expires),
                    from: format!("instance profile role {}", r.role),
                }
            }
        };
        self.base = Some(c.clone());
        Ok(c)
    }

    /// Credentials good for a while yet: the cached ones, else new ones.
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
        let base = self.base(http, imds, deadline)?;
        let c = match &self.assume {
            None => base,
            Some(role) => assume(http, sts, &base, role, deadline)?,
        };
        self.current = Some(c.clone());
        Ok(c)
    }
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
            let mut err = e.classify("sts:AssumeRole");
            if let CloudError::Denied(m) = &mut err {
                m.push_str(&format!(" (as {})", base.from));
            }
            return Err(err);
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
