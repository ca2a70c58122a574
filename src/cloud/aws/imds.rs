//! The EC2 instance metadata service, IMDSv2 only (research/aws-azure.md §A1): a session
//! token from `PUT /latest/api/token` (`X-aws-ec2-metadata-token-ttl-seconds`), sent as
//! `X-aws-ec2-metadata-token` on every GET; a 401 means the token expired or was revoked,
//! so it is fetched again once (aws-sdk-go-v2's `token_provider.go` does the same). What
//! the agent reads here: the instance identity document, the ENI of a MAC (id, subnet,
//! VPC, private IPs), and the instance profile's role credentials. Everything read is
//! checked: a line that is not an address is an error, never "not ours". Tokens and
//! credentials are never logged (the http layer logs method, URL and status only).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::cloud::secret::Secret;
use crate::cloud::{http_error, CloudError};
use crate::deadline::Deadline;
use crate::http::{Http, Method, Request, Response};

/// The metadata service's address on every instance (botocore `METADATA_BASE_URL`).
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254/";

const TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";

/// An action lasts seconds to minutes: a token of 10 minutes outlives it, and a leaked
/// one is worthless soon (IMDS allows 1 s to 6 h).
pub const TOKEN_TTL_SECS: u64 = 600;

/// A token with less than this left is renewed before use.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

/// The token PUT gets this long per attempt. A caller beyond the hop limit gets no answer
/// at all (the response's IP TTL runs out), so a short timeout turns that into a clear
/// error instead of a silent wait.
const TOKEN_PUT_TIMEOUT: Duration = Duration::from_secs(2);

/// Polling IMDS for a change: it shows one in about a second (the emulator's default
/// lag; AWS documents no figure), and polls cost no API quota. A flat 100 ms, not a
/// doubling one: 200-400-800 saw a 1 s lag only at 1.6 s (bench, aws rows).
pub(super) const IMDS_POLL: crate::deadline::Backoff =
    crate::deadline::Backoff::new(Duration::from_millis(100), Duration::from_millis(100), false);

struct Token {
    value: Secret,
    renew_at: Instant,
}

/// One action's IMDSv2 client (the token lives in memory only).
pub struct Imds {
    base: String,
    token: Option<Token>,
}

/// `dynamic/instance-identity/document`: who and where this instance is.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub instance_id: String,
    pub region: String,
    pub availability_zone: String,
    pub account_id: String,
    #[serde(default)]
    pub private_ip: Option<Ipv4Addr>,
}

/// One ENI of this instance as `network/interfaces/macs/<mac>/` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImdsEni {
    pub mac: String,
    pub eni_id: String,
    pub subnet_id: String,
    pub vpc_id: String,
    /// Primary first (the order IMDS lists them).
    pub local_ipv4s: Vec<Ipv4Addr>,
}

/// The role credentials document (`meta-data/iam/security-credentials/<role>`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleCredentials {
    code: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    access_key_id: Option<String>,
    #[serde(default)]
    secret_access_key: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    expiration: Option<String>,
}

/// Instance-profile credentials.
pub struct RoleKeys {
    pub role: String,
    pub access_key: String,
    pub secret: Secret,
    pub token: Secret,
    /// Unix seconds.
    pub expires: u64,
}

fn transient(m: String) -> CloudError {
    CloudError::Transient(m)
}

/// The lines of a text answer (a listing or a list of addresses), trimmed, blanks dropped.
pub fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// A `local-ipv4s` answer: every line must be an IPv4 address, and there is at least one
/// (the primary).
pub fn parse_ipv4s(text: &str) -> Result<Vec<Ipv4Addr>, String> {
    let ips = lines(text)
        .into_iter()
        .map(|l| {
            l.parse::<Ipv4Addr>()
                .map_err(|_| format!("{l:?} is not an IPv4 address"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ips.is_empty() {
        return Err("no address at all (not even the primary)".into());
    }
    Ok(ips)
}

impl Imds {
    /// `base` is the service's root URL (`metadata_url`-style override for tests), else
    /// [`DEFAULT_ENDPOINT`].
    pub fn new(base: Option<&str>) -> Imds {
        let mut b = base.unwrap_or(DEFAULT_ENDPOINT).to_owned();
        if !b.ends_with('/') {
            b.push('/');
        }
        Imds {
            base: b,
            token: None,
        }
    }

    fn token(&mut self, http: &Http, deadline: &Deadline) -> Result<Secret, CloudError> {
        if let Some(t) = &self.token {
            if Instant::now() < t.renew_at {
                return Ok(t.value.clone());
            }
        }
        let url = format!("{}latest/api/token", self.base);
        let req = Request::new(Method::Put, &url)
            .header(TTL_HEADER, TOKEN_TTL_SECS.to_string())
            .timeout(TOKEN_PUT_TIMEOUT);
        let r = http.metadata(&req, deadline).map_err(|e| match e {
            crate::http::HttpError::Transport(m) => transient(format!(
                "instance metadata service: no IMDSv2 token ({m}); from a container or a \
                 network namespace the answer needs a hop limit above 1 \
                 (aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2)"
            )),
            e => http_error("instance metadata service", e),
        })?;
        match r.status {
            200 => {}
            // Refused: a proxy added X-Forwarded-For, or IMDS is disabled on this instance.
            403..=405 => {
                return Err(CloudError::Local(format!(
                    "instance metadata service refused an IMDSv2 token (HTTP {}): is IMDS \
                     enabled on this instance (http-endpoint), and no proxy in the way?",
                    r.status
                )))
            }
            s => {
                return Err(transient(format!(
                    "instance metadata service answered HTTP {s} for a token"
                )))
            }
        }
        let value = std::str::from_utf8(&r.body)
            .ok()
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.contains(char::is_whitespace))
            .ok_or_else(|| transient("instance metadata service: an unusable token".into()))?
            .to_owned();
        // The TTL granted is echoed; without it, the one asked for.
        let ttl = r
            .header(TTL_HEADER)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(TOKEN_TTL_SECS);
        let value = Secret::new(value);
        self.token = Some(Token {
            value: value.clone(),
            renew_at: Instant::now() + Duration::from_secs(ttl).saturating_sub(TOKEN_MARGIN),
        });
        Ok(value)
    }

    /// A GET under `latest/`: `Ok(None)` for 404 (no such key: e.g. no instance profile).
    pub fn get(
        &mut self,
        http: &Http,
        path: &str,
        deadline: &Deadline,
    ) -> Result<Option<String>, CloudError> {
        let url = format!("{}latest/{path}", self.base);
        let mut fresh = false;
        loop {
            let token = self.token(http, deadline)?;
            let req = Request::new(Method::Get, &url).header(TOKEN_HEADER, token.expose());
            let r: Response = http
                .metadata(&req, deadline)
                .map_err(|e| http_error("instance metadata service", e))?;
            match r.status {
                200 => {
                    return String::from_utf8(r.body).map(Some).map_err(|_| {
                        transient(format!("instance metadata service: {path} is not UTF-8"))
                    })
                }
                404 => return Ok(None),
                // The token expired or was revoked: one new token, then it is the service.
                401 if !fresh => {
                    log::debug!("IMDSv2 token refused (401); fetching a new one");
                    self.token = None;
                    fresh = true;
                }
                s => {
                    return Err(transient(format!(
                        "instance metadata service answered HTTP {s} for {path}"
                    )))
                }
            }
        }
    }

    /// A GET that must find its key.
    pub fn need(
        &mut self,
        http: &Http,
        path: &str,
        deadline: &Deadline,
    ) -> Result<String, CloudError> {
        self.get(http, path, deadline)?.ok_or_else(|| {
            transient(format!(
                "instance metadata service: {path} does not exist (HTTP 404)"
            ))
        })
    }

    /// The instance identity document, every field we use present.
    pub fn identity(&mut self, http: &Http, deadline: &Deadline) -> Result<Identity, CloudError> {
        let doc = self.need(http, "dynamic/instance-identity/document", deadline)?;
        let id: Identity = serde_json::from_str(&doc).map_err(|e| {
            transient(format!(
                "instance metadata service: unexpected identity document: {e}"
            ))
        })?;
        if !id.instance_id.starts_with("i-")
            || id.region.is_empty()
            || id.availability_zone.is_empty()
        {
            return Err(transient(format!(
                "instance metadata service: identity document without a usable instance id, \
                 region or zone ({:?}, {:?}, {:?})",
                id.instance_id, id.region, id.availability_zone
            )));
        }
        Ok(id)
    }

    /// The MACs of this instance's ENIs (lower-case; the listing ends each with `/`).
    pub fn macs(&mut self, http: &Http, deadline: &Deadline) -> Result<Vec<String>, CloudError> {
        let text = self.need(http, "meta-data/network/interfaces/macs/", deadline)?;
        let macs: Vec<String> = lines(&text)
            .into_iter()
            .map(|l| l.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        if macs.is_empty() || macs.iter().any(|m| m.split(':').count() != 6) {
            return Err(transient(format!(
                "instance metadata service: unexpected MAC listing {:?}",
                text.chars().take(200).collect::<String>()
            )));
        }
        Ok(macs)
    }

    /// The private IPv4 addresses IMDS shows on the ENI of `mac`: monitor's depth-0 check
    /// (one GET, no EC2 quota). IMDS shows a reassignment after a delay (the
    /// AssignPrivateIpAddresses documentation says to poll it to confirm the remap).
    pub fn local_ipv4s(
        &mut self,
        http: &Http,
        mac: &str,
        deadline: &Deadline,
    ) -> Result<Vec<Ipv4Addr>, CloudError> {
        let mac = mac.to_ascii_lowercase();
        let path = format!("meta-data/network/interfaces/macs/{mac}/local-ipv4s");
        let text = self.get(http, &path, deadline)?.ok_or_else(|| {
            CloudError::NotFound(format!("no ENI of this instance has the MAC {mac}"))
        })?;
        parse_ipv4s(&text).map_err(|e| transient(format!("instance metadata service: {path}: {e}")))
    }

    /// The private IP that Elastic IP `public` maps to on the ENI of `mac`
    /// (`ipv4-associations/<public-ip>`): the EIP mode's depth-0 check. `None` when IMDS
    /// shows no such association there.
    pub fn eip_target(
        &mut self,
        http: &Http,
        mac: &str,
        public: Ipv4Addr,
        deadline: &Deadline,
    ) -> Result<Option<Ipv4Addr>, CloudError> {
        let mac = mac.to_ascii_lowercase();
        let path = format!("meta-data/network/interfaces/macs/{mac}/ipv4-associations/{public}");
        match self.get(http, &path, deadline)? {
            None => Ok(None),
            Some(text) => match parse_ipv4s(&text)
                .map_err(|e| transient(format!("instance metadata service: {path}: {e}")))?[..]
            {
                [one] => Ok(Some(one)),
                _ => Err(transient(format!(
                    "instance metadata service: {path} maps to several addresses"
                ))),
            },
        }
    }

    /// Polls `local-ipv4s` of `mac` until it shows `ip` (`present`) or no longer shows it:
    /// IMDS follows a reassignment after a delay, and the AssignPrivateIpAddresses
    /// documentation says to poll it to confirm the remap. `Ok(false)` when the deadline
    /// came first (the caller decides what a change not yet visible means).
    pub fn wait_for_ip(
        &mut self,
        http: &Http,
        mac: &str,
        ip: Ipv4Addr,
        present: bool,
        deadline: &Deadline,
    ) -> Result<bool, CloudError> {
        let mut backoff = IMDS_POLL;
        loop {
            if self.local_ipv4s(http, mac, deadline)?.contains(&ip) == present {
                return Ok(true);
            }
            if backoff.wait(deadline).is_err() {
                return Ok(false);
            }
        }
    }

    /// The ENI of `mac`: `NotFound` when this instance has no ENI with that MAC.
    pub fn eni(
        &mut self,
        http: &Http,
        mac: &str,
        deadline: &Deadline,
    ) -> Result<ImdsEni, CloudError> {
        let mac = mac.to_ascii_lowercase();
        if !self.macs(http, deadline)?.contains(&mac) {
            return Err(CloudError::NotFound(format!(
                "no ENI of this instance has the MAC {mac}"
            )));
        }
        let mut field = |name: &str| -> Result<String, CloudError> {
            let path = format!("meta-data/network/interfaces/macs/{mac}/{name}");
            let v = self.need(http, &path, deadline)?.trim().to_owned();
            if v.is_empty() || v.contains(char::is_whitespace) {
                return Err(transient(format!(
                    "instance metadata service: {path} is {v:?}"
                )));
            }
            Ok(v)
        };
        let eni_id = field("interface-id")?;
        let subnet_id = field("subnet-id")?;
        let vpc_id = field("vpc-id")?;
        let local_ipv4s = self.local_ipv4s(http, &mac, deadline)?;
        Ok(ImdsEni {
            mac,
            eni_id,
            subnet_id,
            vpc_id,
            local_ipv4s,
        })
    }

    /// The instance profile's credentials. No role attached is this node's setup.
    pub fn role_credentials(
        &mut self,
        http: &Http,
        deadline: &Deadline,
    ) -> Result<RoleKeys, CloudError> {
        let no_role = || {
            CloudError::Local(
                "no IAM role is attached to this instance (an instance profile, or a \
                 credentials file, is needed)"
                    .into(),
            )
        };
        let listing = self
            .get(http, "meta-data/iam/security-credentials/", deadline)?
            .ok_or_else(no_role)?;
        let role = lines(&listing)
            .first()
            .map(|r| r.to_string())
            .ok_or_else(no_role)?;
        if role.contains('/') || role.contains("..") {
            return Err(transient(format!(
                "instance metadata service: unexpected role name {role:?}"
            )));
        }
        let doc = self
            .get(
                http,
                &format!("meta-data/iam/security-credentials/{role}"),
                deadline,
            )?
            .ok_or_else(no_role)?;
        let c: RoleCredentials = serde_json::from_str(&doc).map_err(|e| {
            transient(format!(
                "instance metadata service: unexpected credentials of role {role}: {e}"
            ))
        })?;
        // IMDS answers 200 with Code != Success when the role cannot be used (botocore
        // treats any document without all four fields as "no credentials").
        if c.code != "Success" {
            return Err(CloudError::Denied(format!(
                "instance profile role {role}: {} {}",
                c.code,
                c.message.as_deref().unwrap_or("")
            )));
        }
        let missing = |f: &str| {
            transient(format!(
                "instance metadata service: credentials of role {role} lack {f}"
            ))
        };
        let expires = c
            .expiration
            .as_deref()
            .ok_or_else(|| missing("Expiration"))
            .and_then(|e| super::model::unix_time(e).map_err(|m| missing(&m)))?;
        Ok(RoleKeys {
            access_key: c
                .access_key_id
                .filter(|s| !s.is_empty())
                .ok_or_else(|| missing("AccessKeyId"))?,
            secret: Secret::new(
                c.secret_access_key
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| missing("SecretAccessKey"))?,
            ),
            token: Secret::new(
                c.token
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| missing("Token"))?,
            ),
            expires,
            role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ipv4s_are_addresses_or_an_error() {
        assert_eq!(
            parse_ipv4s("10.0.1.11\n10.0.1.100\n").unwrap(),
            vec![
                "10.0.1.11".parse::<Ipv4Addr>().unwrap(),
                "10.0.1.100".parse().unwrap()
            ]
        );
        for bad in ["", "\n", "10.0.1.11\n<html>", "10.0.1.300", "fe80::1"] {
            assert!(parse_ipv4s(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn identity_documents_need_their_fields() {
        let doc = r#"{"accountId":"111122223333","architecture":"x86_64","availabilityZone":"eu-west-1a","imageId":"ami-0c0ffee0c0ffee001","instanceId":"i-0c10d000000000001","instanceType":"t3.micro","privateIp":"10.0.1.11","region":"eu-west-1","version":"2017-09-30"}"#;
        let id: Identity = serde_json::from_str(doc).unwrap();
        assert_eq!(
            (id.instance_id.as_str(), id.region.as_str()),
            ("i-0c10d000000000001", "eu-west-1")
        );
        let no_region = doc.replace(r#""region":"eu-west-1","#, "");
        assert!(serde_json::from_str::<Identity>(&no_region).is_err());
    }

    #[test]
    fn role_credentials_document() {
        let doc = r#"{"Code":"Success","LastUpdated":"2020-11-04T19:38:27Z","Type":"AWS-HMAC","AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t","Expiration":"2020-11-05T02:02:26Z"}"#;
        let c: RoleCredentials = serde_json::from_str(doc).unwrap();
        assert_eq!(c.code, "Success");
        assert_eq!(c.expiration.as_deref(), Some("2020-11-05T02:02:26Z"));
        let err: RoleCredentials = serde_json::from_str(
            r#"{"Code":"AssumeRoleUnauthorizedAccess","Message":"EC2 cannot assume the role"}"#,
        )
        .unwrap();
        assert!(err.access_key_id.is_none());
    }

    #[test]
    fn base_urls_end_with_a_slash() {
        assert_eq!(Imds::new(None).base, DEFAULT_ENDPOINT);
        assert_eq!(
            Imds::new(Some("http://127.0.0.1:9")).base,
            "http://127.0.0.1:9/"
        );
    }
}
