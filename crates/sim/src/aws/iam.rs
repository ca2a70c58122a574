//! Who signed a request and what they may do: IAM users with long-term access keys,
//! roles (instance profiles and `sts:AssumeRole` targets) and the temporary credentials
//! issued for them (IMDS role credentials, AssumeRole sessions), each with an action-level
//! policy. Also the checks SigV4 leaves to the server: key lookup, session token, scope,
//! clock (research/aws-azure.md §A3, §A4; error codes in DEVIATIONS.md).

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use super::errors::AwsError;
use super::ids;
use super::sigv4::{self, Malformed, Signed};
use super::time;
use super::world::{AwsWorld, Policy};

/// At most this many temporary credentials are remembered; the ones that expired longest
/// ago go first (a runaway client cannot grow memory without bound).
const MAX_TEMP: usize = 10_000;
/// Expired temporary credentials are remembered this long, so a late request gets the
/// "expired" answer rather than "unknown key".
const EXPIRED_MEMORY_SECS: i64 = 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Ec2,
    Sts,
}

impl Api {
    pub fn signing_name(self) -> &'static str {
        match self {
            Api::Ec2 => "ec2",
            Api::Sts => "sts",
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub account: String,
    pub id: String,
    pub policy: Policy,
}

#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub account: String,
    pub id: String,
    pub trust: Vec<String>,
    pub external_id: Option<String>,
    pub max_session_secs: u64,
    pub policy: Policy,
}

impl Role {
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::{}:role/{}", self.account, self.name)
    }
}

/// Temporary credentials: a session of a role.
#[derive(Debug, Clone)]
pub struct Session {
    pub secret: String,
    pub token: String,
    pub expires: i64,
    pub issued: i64,
    pub role: String,
    pub session_name: String,
    /// Obtained with other role credentials (AssumeRole from a role session): 1 h limit.
    pub chained: bool,
    /// The instance whose IMDS credentials this derives from (for the log and faults).
    pub instance: Option<String>,
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Identity {
    pub arn: String,
    pub user_id: String,
    pub account: String,
    pub policy: Policy,
    /// A role session (assumed role or instance profile), and which role.
    pub role: Option<String>,
    pub instance: Option<String>,
    pub access_key: String,
}

pub struct Iam {
    pub users: BTreeMap<String, User>,
    pub roles: BTreeMap<String, Role>,
    /// Long-term access key id → (secret, user name).
    keys: HashMap<String, (String, String)>,
    pub sessions: HashMap<String, Session>,
    /// Current IMDS credentials per instance id (access key id).
    pub instance_keys: BTreeMap<String, String>,
}

/// Settings the checks depend on (adjustable at run time through the admin API).
#[derive(Debug, Clone)]
pub struct AuthRules {
    pub region: String,
    pub max_skew_secs: i64,
    /// EC2's answer to a skewed clock: `RequestExpired` or `AuthFailure`.
    pub skew_error: String,
}

fn sig_mismatch() -> AwsError {
    AwsError::new(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    )
}

fn unknown_key(api: Api) -> AwsError {
    match api {
        Api::Ec2 => AwsError::new(
            401,
            "AuthFailure",
            "AWS was not able to validate the provided access credentials",
        ),
        Api::Sts => AwsError::new(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ),
    }
}

fn expired_token(api: Api) -> AwsError {
    match api {
        Api::Ec2 => AwsError::bad("RequestExpired", "Request has expired."),
        Api::Sts => AwsError::new(
            403,
            "ExpiredToken",
            "The security token included in the request is expired",
        ),
    }
}

impl Iam {
    pub fn from_world(w: &AwsWorld) -> Iam {
        let mut iam = Iam {
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
            keys: HashMap::new(),
            sessions: HashMap::new(),
            instance_keys: BTreeMap::new(),
        };
        for u in &w.users {
            for k in &u.access_keys {
                iam.keys
                    .insert(k.id.clone(), (k.secret.clone(), u.name.clone()));
            }
            iam.users.insert(
                u.name.clone(),
                User {
                    name: u.name.clone(),
                    account: u.account_id.clone().unwrap_or_else(|| w.account_id.clone()),
                    id: ids::key_id("AIDA"),
                    policy: Policy {
                        allow: u.allow.clone(),
                        deny: u.deny.clone(),
                    },
                },
            );
        }
        for r in &w.roles {
            iam.roles.insert(
                r.name.clone(),
                Role {
                    name: r.name.clone(),
                    account: r.account_id.clone().unwrap_or_else(|| w.account_id.clone()),
                    id: ids::key_id("AROA"),
                    trust: r.trust.clone(),
                    external_id: r.external_id.clone(),
                    max_session_secs: r.max_session_secs,
                    policy: Policy {
                        allow: r.allow.clone(),
                        deny: r.deny.clone(),
                    },
                },
            );
        }
        iam
    }

    fn prune(&mut self, now: i64) {
        self.sessions
            .retain(|_, s| s.expires + EXPIRED_MEMORY_SECS > now);
        while self.sessions.len() >= MAX_TEMP {
            let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.sessions.remove(&oldest);
        }
    }

    /// New temporary credentials for a session of `role`: (access key id, session).
    pub fn issue(
        &mut self,
        role: &str,
        session_name: &str,
        lifetime_secs: u64,
        now: i64,
        chained: bool,
        instance: Option<String>,
    ) -> (String, Session) {
        self.prune(now);
        let akid = ids::key_id("ASIA");
        let s = Session {
            secret: ids::secret(),
            token: ids::session_token(),
            expires: now + lifetime_secs as i64,
            issued: now,
            role: role.to_owned(),
            session_name: session_name.to_owned(),
            chained,
            instance,
        };
        self.sessions.insert(akid.clone(), s.clone());
        (akid, s)
    }

    /// The instance-profile credentials IMDS serves now: the current ones while they have
    /// more than `refresh_secs` left, else new ones (the old stay valid until they expire).
    pub fn instance_credentials(
        &mut self,
        instance_id: &str,
        role: &str,
        lifetime_secs: u64,
        refresh_secs: u64,
        now: i64,
    ) -> (String, Session) {
        if let Some(k) = self.instance_keys.get(instance_id) {
            if let Some(s) = self.sessions.get(k) {
                if s.role == role && s.expires - now > refresh_secs as i64 {
                    return (k.clone(), s.clone());
                }
            }
        }
        self.rotate_instance(instance_id, role, lifetime_secs, now)
    }

    pub fn rotate_instance(
        &mut self,
        instance_id: &str,
        role: &str,
        lifetime_secs: u64,
        now: i64,
    ) -> (String, Session) {
        let (k, s) = self.issue(
            role,
            instance_id,
            lifetime_secs,
            now,
            false,
            Some(instance_id.to_owned()),
        );
        self.instance_keys.insert(instance_id.to_owned(), k.clone());
        (k, s)
    }

    /// Every temporary credential expires now (admin; 401/403 paths of clients).
    pub fn expire_sessions(&mut self, now: i64) -> usize {
        let mut n = 0;
        for s in self.sessions.values_mut() {
            if s.expires > now {
                s.expires = now;
                n += 1;
            }
        }
        n
    }

    pub fn live_sessions(&self, now: i64) -> usize {
        self.sessions.values().filter(|s| s.expires > now).count()
    }

    /// The instance behind a request's credentials, whether or not they are valid: the
    /// log and fault selectors use it.
    pub fn instance_of_key(&self, access_key: &str) -> Option<String> {
        self.sessions
            .get(access_key)
            .and_then(|s| s.instance.clone())
    }

    fn identity_of_session(&self, akid: &str, s: &Session) -> Result<Identity, AwsError> {
        let role = self.roles.get(&s.role).ok_or_else(AwsError::internal)?;
        Ok(Identity {
            arn: format!(
                "arn:aws:sts::{}:assumed-role/{}/{}",
                role.account, role.name, s.session_name
            ),
            user_id: format!("{}:{}", role.id, s.session_name),
            account: role.account.clone(),
            policy: role.policy.clone(),
            role: Some(role.name.clone()),
            instance: s.instance.clone(),
            access_key: akid.to_owned(),
        })
    }

    /// Verifies the request's signature and everything around it; returns the caller.
    /// `endpoint_region` is the region the request was sent to.
    pub fn authenticate(
        &self,
        api: Api,
        req: &Signed<'_>,
        endpoint_region: &str,
        rules: &AuthRules,
        now: SystemTime,
    ) -> Result<Identity, AwsError> {
        let claim = match sigv4::claim(req) {
            Ok(c) => c,
            Err(Malformed::Missing) => {
                return Err(match api {
                    Api::Ec2 => AwsError::missing("AWSAccessKeyId"),
                    Api::Sts => AwsError::new(
                        403,
                        "MissingAuthenticationToken",
                        "Request is missing Authentication Token",
                    ),
                })
            }
            Err(Malformed::Incomplete(m)) => return Err(AwsError::bad("IncompleteSignature", m)),
        };
        if claim.service != api.signing_name() {
            return Err(AwsError::new(
                403,
                "SignatureDoesNotMatch",
                format!(
                    "Credential should be scoped to correct service: '{}'. ",
                    api.signing_name()
                ),
            ));
        }
        if claim.region != endpoint_region {
            return Err(AwsError::new(
                403,
                "SignatureDoesNotMatch",
                format!(
                    "Credential should be scoped to a valid region, not '{}'. ",
                    claim.region
                ),
            ));
        }
        let Some(t) = time::parse_amz(&claim.amz_date) else {
            return Err(AwsError::bad(
                "IncompleteSignature",
                format!(
                    "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601",
                    claim.amz_date
                ),
            ));
        };
        if claim.amz_date.get(..8) != Some(claim.scope_date.as_str()) {
            return Err(AwsError::new(
                403,
                "SignatureDoesNotMatch",
                format!(
                    "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
                    claim.scope_date,
                    claim.amz_date.get(..8).unwrap_or(""),
                    claim.amz_date
                ),
            ));
        }
        // Key, then its session token, then the signature.
        let (secret, identity, session_expires) =
            if let Some((secret, user)) = self.keys.get(&claim.access_key) {
                if claim.security_token.is_some() {
                    return Err(unknown_key(api));
                }
                let u = self.users.get(user).ok_or_else(AwsError::internal)?;
                let id = Identity {
                    arn: format!("arn:aws:iam::{}:user/{}", u.account, u.name),
                    user_id: u.id.clone(),
                    account: u.account.clone(),
                    policy: u.policy.clone(),
                    role: None,
                    instance: None,
                    access_key: claim.access_key.clone(),
                };
                (secret.clone(), id, None)
            } else if let Some(s) = self.sessions.get(&claim.access_key) {
                if claim.security_token.as_deref() != Some(s.token.as_str()) {
                    return Err(unknown_key(api));
                }
                (
                    s.secret.clone(),
                    self.identity_of_session(&claim.access_key, s)?,
                    Some(s.expires),
                )
            } else {
                return Err(unknown_key(api));
            };
        match sigv4::verify(req, &claim, &secret) {
            Ok(true) => {}
            Ok(false) => return Err(sig_mismatch()),
            Err(Malformed::Incomplete(m)) => return Err(AwsError::bad("IncompleteSignature", m)),
            Err(Malformed::Missing) => return Err(sig_mismatch()),
        }
        let now_s = time::unix(now);
        let skew = rules.max_skew_secs;
        let too_old = match claim.expires {
            Some(e) => now_s > t + e as i64,
            None => now_s - t > skew,
        };
        let too_new = t - now_s > skew;
        if too_old || too_new {
            return Err(match api {
                Api::Ec2 if rules.skew_error == "AuthFailure" => unknown_key(Api::Ec2),
                Api::Ec2 => AwsError::bad("RequestExpired", "Request has expired."),
                Api::Sts => {
                    let nowt = time::from_unix(now_s);
                    let msg = if too_old {
                        format!(
                            "Signature expired: {} is now earlier than {} ({} - 5 min.)",
                            claim.amz_date,
                            time::amz(time::from_unix(now_s - skew)),
                            time::amz(nowt)
                        )
                    } else {
                        format!(
                            "Signature not yet current: {} is still later than {} ({} + 5 min.)",
                            claim.amz_date,
                            time::amz(time::from_unix(now_s + skew)),
                            time::amz(nowt)
                        )
                    };
                    AwsError::new(403, "SignatureDoesNotMatch", msg)
                }
            });
        }
        if session_expires.is_some_and(|e| e <= now_s) {
            return Err(expired_token(api));
        }
        Ok(identity)
    }

    /// Does a trust entry admit the caller?
    fn trusts(entry: &str, who: &Identity) -> bool {
        if entry == "*" {
            return true;
        }
        if entry.len() == 12 && entry.bytes().all(|b| b.is_ascii_digit()) {
            return who.account == entry;
        }
        if let Some(acct) = entry
            .strip_prefix("arn:aws:iam::")
            .and_then(|r| r.strip_suffix(":root"))
        {
            return who.account == acct;
        }
        if let Some(rest) = entry.strip_prefix("arn:aws:iam::") {
            if let Some((acct, role)) = rest.split_once(":role/") {
                return who.account == acct && who.role.as_deref() == Some(role);
            }
            return who.role.is_none() && who.arn == entry;
        }
        false
    }

    /// STS AssumeRole's checks and issue; returns the new access key id and its session.
    pub fn assume_role(
        &mut self,
        who: &Identity,
        role_arn: &str,
        session_name: &str,
        duration: Option<u64>,
        external_id: Option<&str>,
        now: i64,
    ) -> Result<(String, Session), AwsError> {
        let denied = || {
            AwsError::new(
                403,
                "AccessDenied",
                format!(
                    "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                    who.arn
                ),
            )
        };
        let role = self
            .roles
            .values()
            .find(|r| r.arn() == role_arn)
            .cloned()
            .ok_or_else(denied)?;
        if !who.policy.allows("sts:AssumeRole") || !role.trust.iter().any(|t| Self::trusts(t, who))
        {
            return Err(denied());
        }
        if role
            .external_id
            .as_deref()
            .is_some_and(|x| Some(x) != external_id)
        {
            return Err(denied());
        }
        let chained = who.role.is_some();
        let d = duration.unwrap_or(3600);
        if d < 900 {
            return Err(AwsError::bad(
                "ValidationError",
                format!("1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"),
            ));
        }
        if chained && d > 3600 {
            return Err(AwsError::bad(
                "ValidationError",
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
            ));
        }
        if d > role.max_session_secs {
            return Err(AwsError::bad(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ));
        }
        Ok(self.issue(
            &role.name,
            session_name,
            d,
            now,
            chained,
            who.instance.clone(),
        ))
    }

    pub fn role_id(&self, role: &str) -> Option<String> {
        self.roles.get(role).map(|r| r.id.clone())
    }
}
