//! The OCI half of the emulator: IMDS v2, the auth service's `/v1/x509` federation, and
//! the Networking API 20160918, with every API request's signature verified.
//!
//! This module owns the OCI state and speaks a tiny request/response interface
//! ([`Request`], [`Response`]); the crate's shared server, world loading, admin API and
//! fault injection live outside `oci/` and call [`Oci::handle_api`] / [`Oci::handle_imds`].
//! Facts and their sources: `shared/research/oci-api.md` (cited as §n below).

pub mod cloud;
pub mod error;
pub mod federation;
pub mod imds;
pub mod ipv6;
pub mod networking;
pub mod pki;
pub mod signature;
pub mod time;
pub mod token;
pub mod world;

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

pub use error::OciError;
pub use world::{Access, OciWorldConfig};

use networking::{Network, Reply};
use pki::{IdentityCa, Issued};
use signature::Policy;
use token::Tokens;
use world::InstanceConfig;

/// One HTTP request as the OCI handlers need it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request-target exactly as received (`/20160918/privateIps?vnicId=…`): the
    /// signature covers these bytes.
    pub target: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// Source address of the connection (identifies an instance for IMDS).
    pub peer: IpAddr,
    /// The instance whose dedicated IMDS listener received the request, if any.
    pub instance: Option<&'a str>,
}

impl Request<'_> {
    /// First header of that name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Which OCI service a request is for, by path (the paths do not overlap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Imds,
    Auth,
    Networking,
    Unknown,
}

pub fn service_for_path(target: &str) -> Service {
    let path = target.split('?').next().unwrap_or("");
    if path.starts_with("/opc/") || path.starts_with("/openstack") {
        Service::Imds
    } else if path == "/v1/x509" {
        Service::Auth
    } else if path.starts_with("/20160918/") {
        Service::Networking
    } else {
        Service::Unknown
    }
}

pub struct InstanceRuntime {
    pub config: InstanceConfig,
    pub leaf: Option<Issued>,
}

struct ApiKey {
    public_pkcs1: Vec<u8>,
    access: Access,
}

/// Who signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User(String),
    Instance(String),
}

/// All mutable OCI state, behind one lock in [`Oci`].
pub struct OciState {
    pub config: OciWorldConfig,
    pub region_key: String,
    pub net: Network,
    pub instances: BTreeMap<String, InstanceRuntime>,
    api_keys: HashMap<String, ApiKey>,
    pub ca: Option<IdentityCa>,
    tokens: Option<Tokens>,
    pub started: SystemTime,
    /// Successful and failed calls per operation name, for tests and cost reports.
    pub calls: BTreeMap<String, u64>,
}

impl OciState {
    /// The instance an IMDS request comes from: the dedicated listener's, else the one
    /// whose `metadata_source` is the peer address.
    pub fn instance_for(&self, req: &Request<'_>) -> Option<String> {
        if let Some(i) = req.instance {
            return self.instances.contains_key(i).then(|| i.to_owned());
        }
        self.instances
            .values()
            .find(|i| i.config.metadata_source == Some(req.peer))
            .map(|i| i.config.id.clone())
    }

    fn ensure_ca(&mut self) -> Result<&IdentityCa, String> {
        if self.ca.is_none() {
            let lifetime = Duration::from_secs(self.config.identity_cert_lifetime_secs);
            self.ca = Some(IdentityCa::new(lifetime, SystemTime::now())?);
        }
        self.ca.as_ref().ok_or_else(|| "no CA".into())
    }

    /// The instance's current leaf, issued on first use.
    pub fn leaf_for(&mut self, instance: &str) -> Result<Issued, String> {
        if let Some(l) = self.instances.get(instance).and_then(|i| i.leaf.clone()) {
            return Ok(l);
        }
        self.rotate_leaf(instance)
    }

    /// A new key and certificate for the instance; the old certificate stays valid until
    /// it expires, as rotated OCI certificates do.
    pub fn rotate_leaf(&mut self, instance: &str) -> Result<Issued, String> {
        let (tenancy, compartment) = (self.config.tenancy.clone(), self.config.compartment.clone());
        if !self.instances.contains_key(instance) {
            return Err(format!("no instance {instance}"));
        }
        let leaf =
            self.ensure_ca()?
                .issue_leaf(instance, &compartment, &tenancy, SystemTime::now())?;
        if let Some(i) = self.instances.get_mut(instance) {
            i.leaf = Some(leaf.clone());
        }
        Ok(leaf)
    }

    /// Display name of the instance whose security token signed `req` (`keyId="ST$…"`),
    /// whether or not the signature is good: the log and fault selectors use it.
    pub fn signing_instance(&self, req_authorization: Option<&str>) -> Option<String> {
        let sig = signature::parse_authorization(req_authorization?).ok()?;
        let jwt = sig.key_id.strip_prefix("ST$")?;
        let p = self.tokens.as_ref()?.principal_of(jwt)?;
        self.instances
            .get(&p.instance)
            .map(|i| i.config.display_name.clone())
    }

    fn tokens(&mut self) -> Result<&mut Tokens, OciError> {
        if self.tokens.is_none() {
            self.tokens = Some(Tokens::new().map_err(|_| OciError::internal())?);
        }
        self.tokens.as_mut().ok_or_else(OciError::internal)
    }

    fn count(&mut self, op: &str) {
        *self.calls.entry(op.to_owned()).or_default() += 1;
    }

    /// Verifies the request's signature (§3) and returns who signed it with their access.
    pub fn authenticate(
        &mut self,
        req: &Request<'_>,
        now: SystemTime,
    ) -> Result<(Principal, Access), OciError> {
        let auth = req
            .header("authorization")
            .ok_or_else(|| OciError::not_authenticated("no Authorization header"))?;
        let sig = signature::parse_authorization(auth).map_err(OciError::not_authenticated)?;
        let policy = Policy { require_host: true };
        if let Some(jwt) = sig.key_id.strip_prefix("ST$") {
            let t = self
                .tokens
                .as_ref()
                .ok_or_else(|| OciError::not_authenticated("no security token was ever issued"))?
                .check(jwt, time::unix_secs(now))
                .map_err(OciError::not_authenticated)?
                .clone();
            signature::verify_request(req, &sig, &t.session_key_pkcs1, policy, now)
                .map_err(|e| OciError::not_authenticated(format!("session key: {e}")))?;
            let access = self
                .instances
                .get(&t.principal.instance)
                .map(|i| i.config.access)
                .unwrap_or(Access::None);
            return Ok((Principal::Instance(t.principal.instance), access));
        }
        let key = self.api_keys.get(&sig.key_id).ok_or_else(|| {
            OciError::not_authenticated("unknown keyId (tenancy/user/fingerprint)")
        })?;
        signature::verify_request(req, &sig, &key.public_pkcs1, policy, now)
            .map_err(OciError::not_authenticated)?;
        let user = sig.key_id.split('/').nth(1).unwrap_or_default().to_owned();
        Ok((Principal::User(user), key.access))
    }

    /// The Networking API: authenticate, authorize, dispatch.
    fn networking(
        &mut self,
        req: &Request<'_>,
        now: SystemTime,
        mono: Instant,
    ) -> Result<Reply, OciError> {
        let (path, query) = req.target.split_once('?').unwrap_or((req.target, ""));
        let segs: Vec<&str> = path
            .strip_prefix("/20160918/")
            .unwrap_or("")
            .trim_end_matches('/')
            .split('/')
            .collect();
        let (op, need) = match operation(req.method, path) {
            Route::Op(op, need) => (op, need),
            Route::WrongMethod => {
                self.authenticate(req, now)?;
                return Err(OciError::method_not_allowed());
            }
            Route::Unknown => {
                self.authenticate(req, now)?;
                return Err(OciError::route_not_found());
            }
        };
        self.count(op);
        let (_who, access) = self.authenticate(req, now)?;
        if access < need {
            // OCI hides existence from the unauthorized (§2.5).
            return Err(match segs.get(1) {
                Some(id) if segs.len() == 2 => OciError::not_found(
                    match segs[0] {
                        "vnics" => "VNIC",
                        "subnets" => "Subnet",
                        "privateIps" => "Private IP",
                        "ipv6" => "IPv6",
                        _ => "Public IP",
                    },
                    id,
                ),
                _ => OciError::not_authorized_generic(),
            });
        }
        self.net.settle(mono);
        let if_match = req.header("if-match");
        let id = segs.get(1).copied().unwrap_or("");
        match op {
            "GetVnic" => self.net.get_vnic(id),
            "GetSubnet" => self.net.get_subnet(id),
            "ListPrivateIps" => self.net.list_private_ips(&networking::parse_query(query)?),
            "CreatePrivateIp" => {
                self.net
                    .create_private_ip(req.body, req.header("opc-retry-token"), now)
            }
            "GetPrivateIp" => self.net.get_private_ip(id),
            "UpdatePrivateIp" => self.net.update_private_ip(id, req.body, if_match),
            "DeletePrivateIp" => self.net.delete_private_ip(id, if_match),
            "GetPublicIpByIpAddress" => self.net.get_public_ip_by_ip_address(req.body),
            "GetPublicIpByPrivateIpId" => self.net.get_public_ip_by_private_ip_id(req.body),
            "GetPublicIp" => self.net.get_public_ip(id),
            "UpdatePublicIp" => self.net.update_public_ip(id, req.body, if_match, mono),
            "ListIpv6s" => self.net.list_ipv6s(&networking::parse_query(query)?),
            "CreateIpv6" => self
                .net
                .create_ipv6(req.body, req.header("opc-retry-token"), now),
            "GetIpv6" => self.net.get_ipv6(id),
            "UpdateIpv6" => self.net.update_ipv6(id, req.body, if_match),
            "DeleteIpv6" => self.net.delete_ipv6(id, if_match),
            _ => Err(OciError::route_not_found()),
        }
    }
}

/// What a Networking API request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Operation name (as in the SDKs) and the policy verb it needs.
    Op(&'static str, Access),
    WrongMethod,
    Unknown,
}

/// The Networking API operations the emulator serves, by method and raw path.
pub fn operation(method: &str, path: &str) -> Route {
    let segs: Vec<&str> = path
        .strip_prefix("/20160918/")
        .unwrap_or("")
        .trim_end_matches('/')
        .split('/')
        .collect();
    let method = method.to_ascii_uppercase();
    let (op, need) = match (method.as_str(), segs.as_slice()) {
        ("GET", ["vnics", _]) => ("GetVnic", Access::Read),
        ("GET", ["subnets", _]) => ("GetSubnet", Access::Read),
        ("GET", ["privateIps"]) => ("ListPrivateIps", Access::Read),
        ("POST", ["privateIps"]) => ("CreatePrivateIp", Access::Manage),
        ("GET", ["privateIps", _]) => ("GetPrivateIp", Access::Read),
        ("PUT", ["privateIps", _]) => ("UpdatePrivateIp", Access::Use),
        ("DELETE", ["privateIps", _]) => ("DeletePrivateIp", Access::Manage),
        ("POST", ["publicIps", "actions", "getByIpAddress"]) => {
            ("GetPublicIpByIpAddress", Access::Read)
        }
        ("POST", ["publicIps", "actions", "getByPrivateIpId"]) => {
            ("GetPublicIpByPrivateIpId", Access::Read)
        }
        ("GET", ["publicIps", _]) => ("GetPublicIp", Access::Read),
        ("PUT", ["publicIps", _]) => ("UpdatePublicIp", Access::Use),
        ("GET", ["ipv6"]) => ("ListIpv6s", Access::Read),
        ("POST", ["ipv6"]) => ("CreateIpv6", Access::Manage),
        ("GET", ["ipv6", _]) => ("GetIpv6", Access::Read),
        ("PUT", ["ipv6", _]) => ("UpdateIpv6", Access::Use),
        ("DELETE", ["ipv6", _]) => ("DeleteIpv6", Access::Manage),
        (
            _,
            ["vnics" | "subnets", _]
            | ["privateIps"]
            | ["privateIps", _]
            | ["publicIps", _]
            | ["ipv6"]
            | ["ipv6", _]
            | ["publicIps", "actions", "getByIpAddress" | "getByPrivateIpId"],
        ) => return Route::WrongMethod,
        _ => return Route::Unknown,
    };
    Route::Op(op, need)
}

/// `opc-request-id`: the client's id with two segments appended, as recorded (§2.4).
fn request_id(req: &Request<'_>) -> String {
    let seg = || -> String {
        let mut b = [0u8; 16];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
        b.iter().map(|x| format!("{x:02X}")).collect()
    };
    match req.header("opc-request-id").map(str::trim) {
        Some(c) if !c.is_empty() && c.len() <= 98 => format!("{c}/{}/{}", seg(), seg()),
        _ => format!("{}/{}/{}", seg(), seg(), seg()),
    }
}

/// An OCI error as a response, with its request id.
pub fn error_response(req: &Request<'_>, e: &OciError) -> Response {
    Response {
        status: e.status,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("opc-request-id".into(), request_id(req)),
        ],
        body: e.body(),
    }
}

fn reply_response(req: &Request<'_>, r: Reply) -> Response {
    let mut headers = vec![("opc-request-id".into(), request_id(req))];
    if let Some(e) = r.etag {
        headers.push(("ETag".into(), e));
    }
    if let Some(p) = r.next_page {
        headers.push(("opc-next-page".into(), p));
    }
    let body = match r.body {
        Some(v) => {
            headers.push(("Content-Type".into(), "application/json".into()));
            serde_json::to_vec_pretty(&v).unwrap_or_default()
        }
        None => Vec::new(),
    };
    Response {
        status: r.status,
        headers,
        body,
    }
}

/// The keyId (`tenancy/user/fingerprint`) and verifier entry for one configured API key.
fn api_key_entry(
    tenancy: &str,
    k: &world::ApiKeyConfig,
    pem: &str,
) -> Result<(String, ApiKey), String> {
    let key = pki::parse_public_key_pem(pem).map_err(|e| format!("api key of {}: {e}", k.user))?;
    // The console refuses API keys under 2048 bits (Oracle "Required Keys and OCIDs").
    if pki::modulus_bits(&key) < 2048 {
        return Err(format!(
            "api key of {}: RSA keys must have at least 2048 bits",
            k.user
        ));
    }
    let fp = pki::api_key_fingerprint(&key)?;
    if let Some(given) = &k.fingerprint {
        if given.to_ascii_lowercase() != fp {
            return Err(format!(
                "api key of {}: fingerprint {given} is not the key's ({fp})",
                k.user
            ));
        }
    }
    Ok((
        format!("{tenancy}/{}/{fp}", k.user),
        ApiKey {
            public_pkcs1: pki::pkcs1_der(&key)?,
            access: k.access,
        },
    ))
}

/// The OCI emulator: state behind a lock, shared by the server's connection threads.
pub struct Oci {
    state: Mutex<OciState>,
}

impl Oci {
    pub fn new(config: OciWorldConfig) -> Result<Oci, String> {
        let now = SystemTime::now();
        let net = Network::from_config(&config, now)?;
        let region_key = config
            .region_key
            .clone()
            .or_else(|| world::region_key_for(&config.region).map(str::to_owned))
            .unwrap_or_else(|| config.region.to_ascii_uppercase());
        let mut instances = BTreeMap::new();
        let mut sources = Vec::new();
        for i in &config.instances {
            if let Some(s) = i.metadata_source {
                if sources.contains(&s) {
                    return Err(format!("metadata_source {s} used by two instances"));
                }
                sources.push(s);
            }
            instances.insert(
                i.id.clone(),
                InstanceRuntime {
                    config: i.clone(),
                    leaf: None,
                },
            );
        }
        let mut api_keys = HashMap::new();
        for k in &config.api_keys {
            let pem = match (&k.public_key_pem, &k.public_key_file) {
                (Some(p), None) => p.clone(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .map_err(|e| format!("api key of {}: {}: {e}", k.user, f.display()))?,
                _ => {
                    return Err(format!(
                        "api key of {}: give exactly one of public_key_pem, public_key_file",
                        k.user
                    ))
                }
            };
            let (key_id, entry) = api_key_entry(&config.tenancy, k, &pem)?;
            api_keys.insert(key_id, entry);
        }
        Ok(Oci {
            state: Mutex::new(OciState {
                config,
                region_key,
                net,
                instances,
                api_keys,
                ca: None,
                tokens: None,
                started: now,
                calls: BTreeMap::new(),
            }),
        })
    }

    /// Parses the `[oci]` table of a world file.
    pub fn from_toml(text: &str) -> Result<Oci, String> {
        let cfg: OciWorldConfig = toml::from_str(text).map_err(|e| format!("[oci]: {e}"))?;
        Oci::new(cfg)
    }

    /// The lock never stays poisoned: a panic elsewhere must not take the emulator down.
    pub fn lock(&self) -> MutexGuard<'_, OciState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// iaas (Networking) and auth (federation) requests.
    pub fn handle_api(&self, req: &Request<'_>) -> Response {
        let now = SystemTime::now();
        let mut st = self.lock();
        match service_for_path(req.target) {
            Service::Networking => match st.networking(req, now, Instant::now()) {
                Ok(r) => reply_response(req, r),
                Err(e) => error_response(req, &e),
            },
            Service::Auth => {
                st.count("X509Federation");
                match federation::handle(&mut st, req, now) {
                    Ok((status, body)) => Response {
                        status,
                        headers: vec![
                            ("Content-Type".into(), "application/json".into()),
                            ("opc-request-id".into(), request_id(req)),
                        ],
                        body,
                    },
                    Err(e) => error_response(req, &e),
                }
            }
            _ => error_response(req, &OciError::route_not_found()),
        }
    }

    /// Instance metadata requests (plain HTTP on the metadata address).
    pub fn handle_imds(&self, req: &Request<'_>) -> Response {
        let mut st = self.lock();
        st.count("Imds");
        imds::handle(&mut st, req)
    }

    /// Dispatch by path, for a server that puts every OCI service on one listener.
    pub fn handle(&self, req: &Request<'_>) -> Response {
        match service_for_path(req.target) {
            Service::Imds => self.handle_imds(req),
            _ => self.handle_api(req),
        }
    }

    // ---- admin -------------------------------------------------------------------------

    /// Issues a new identity key and certificate for the instance (IMDS serves them next).
    pub fn rotate_identity(&self, instance: &str) -> Result<(), String> {
        self.lock().rotate_leaf(instance).map(|_| ())
    }

    /// Revokes every security token issued so far (token expiry mid-operation). Returns
    /// how many were live.
    pub fn revoke_tokens(&self) -> usize {
        self.lock().tokens.as_mut().map_or(0, Tokens::revoke_all)
    }

    pub fn set_token_lifetime(&self, secs: u64) {
        self.lock().config.token_lifetime_secs = secs;
    }

    pub fn set_public_ip_assign_duration(&self, d: Duration) {
        self.lock().net.assign_duration = d;
    }

    /// The next `n` public IP assignments end in AVAILABLE instead of ASSIGNED (§2.6).
    pub fn fail_next_public_ip_assignments(&self, n: u32) {
        self.lock().net.fail_next_assignments = n;
    }

    /// Instances and how they reach IMDS, for the server to bind listeners.
    pub fn instances(&self) -> Vec<(String, Option<IpAddr>)> {
        self.lock()
            .instances
            .values()
            .map(|i| (i.config.id.clone(), i.config.metadata_source))
            .collect()
    }

    /// The world as it is now: private/public IP placement, call counts, live tokens.
    pub fn snapshot(&self) -> Value {
        let mut st = self.lock();
        st.net.settle(Instant::now());
        let mut v = st.net.snapshot();
        let live = st
            .tokens
            .as_ref()
            .map_or(0, |t| t.live(time::unix_secs(SystemTime::now())));
        if let Value::Object(m) = &mut v {
            m.insert("calls".into(), json!(st.calls));
            m.insert("liveTokens".into(), json!(live));
        }
        v
    }
}

#[cfg(test)]
mod tests;
