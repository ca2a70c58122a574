//! AWS plugged into the shared server: the API listener (EC2 and STS; told apart by `Host`
//! — `ec2.<region>.amazonaws.com`, `sts[.<region>].amazonaws.com` — else by the
//! `Version` parameter), the IMDS listeners (one per instance and/or a shared one told
//! apart by source address), the request-log classification, and AWS-format fault answers.
//!
//! Fault selectors: `cloud = "aws"`, `service` ∈ {`ec2`, `sts`, `metadata`}, `api` = the
//! Action (`AssignPrivateIpAddresses`, `AssumeRole`) or `imds.token` / `imds.credentials`
//! / `imds.identity` / `imds.meta-data`, `instance` = the instance's `Name` (for EC2/STS:
//! the instance whose IMDS credentials, or credentials derived from them, signed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde_json::{json, Value};

use crate::faults::{Fault, FaultKind};
use crate::http::{self, Request, Response};
use crate::server::{self, Call, Core, ListenerSpec, Service};
use crate::Started;

use super::errors::{xml_response, AwsError};
use super::iam::Api;
use super::query::Params;
use super::{ec2, ids, imds, sts, Aws, AwsWorld};

/// The parameters of a request: query string, then a form-encoded body.
pub fn params(req: &Request) -> Params {
    let mut pairs = req.query.clone();
    let form = req.header("content-type").is_some_and(|c| {
        c.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if form {
        if let Ok(body) = std::str::from_utf8(&req.body) {
            pairs.extend(http::parse_form(body));
        }
    }
    Params::from_pairs(pairs)
}

fn hostname(req: &Request) -> String {
    let h = req.header("host").unwrap_or("").trim().to_ascii_lowercase();
    if let Some(end) = h.find(']') {
        return h[..=end].to_owned();
    }
    match h.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            name.to_owned()
        }
        _ => h,
    }
}

/// Which API a request is for, and the region its endpoint belongs to.
pub fn route(req: &Request, p: &Params, world_region: &str) -> (Api, String) {
    let host = hostname(req);
    let by_version = if p.get("Version") == Some(sts::VERSION) {
        Api::Sts
    } else {
        Api::Ec2
    };
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        ["ec2", region, "amazonaws", "com"] => (Api::Ec2, (*region).to_owned()),
        ["ec2", region, "amazonaws", "com", "cn"] => (Api::Ec2, (*region).to_owned()),
        ["sts", "amazonaws", "com"] => (Api::Sts, "us-east-1".to_owned()),
        ["sts", region, "amazonaws", "com"] => (Api::Sts, (*region).to_owned()),
        ["sts", region, "amazonaws", "com", "cn"] => (Api::Sts, (*region).to_owned()),
        _ => (by_version, world_region.to_owned()),
    }
}

/// One EC2 or STS request: route, authenticate, check the endpoint, throttle, dispatch.
pub fn handle_api(aws: &Aws, req: &Request) -> Response {
    let rid = ids::request_id();
    let p = params(req);
    let mut st = aws.lock();
    let world_region = st.region.clone();
    let (api, region) = route(req, &p, &world_region);
    let fail = |e: AwsError| match api {
        Api::Ec2 => e.ec2_response(&rid),
        Api::Sts => e.sts_response(&rid),
    };
    let action = p.get("Action").unwrap_or("").to_owned();
    st.count(&format!(
        "{}:{}",
        api.signing_name(),
        if action.is_empty() { "-" } else { &action }
    ));
    let signed = super::sigv4::Signed {
        method: &req.method,
        raw_path: &req.path,
        raw_query: &req.raw_query,
        headers: &req.headers,
        body: &req.body,
    };
    // What the client showed: its signature and session token.
    if let Ok(c) = super::sigv4::claim(&signed) {
        st.secret("SigV4 signature", &c.signature);
        if let Some(t) = &c.security_token {
            st.secret("AWS session token", t);
        }
    }
    let rules = st.settings.auth.clone();
    let who = match st
        .iam
        .authenticate(api, &signed, &region, &rules, SystemTime::now())
    {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    // STS is global (every regional endpoint and sts.amazonaws.com serve the same IAM);
    // EC2 here is one region.
    if api == Api::Ec2 && region != world_region {
        return fail(AwsError::invalid_value(format!(
            "cloudvip-sim serves region {world_region} only (request for {region})"
        )));
    }
    if action.is_empty() {
        return fail(AwsError::bad(
            "MissingAction",
            "The request is missing an action or a required parameter.",
        ));
    }
    let version = match api {
        Api::Ec2 => "2016-11-15",
        Api::Sts => sts::VERSION,
    };
    match p.get("Version") {
        None => return fail(AwsError::missing("Version")),
        Some(v) if v != version => {
            return fail(AwsError::invalid_value(format!(
                "cloudvip-sim serves API version {version} here, not {v}"
            )))
        }
        Some(_) => {}
    }
    let mono = Instant::now();
    if !st.take_token(&action, ec2::is_mutation(&action), mono) {
        return fail(match api {
            Api::Ec2 => AwsError::new(503, "RequestLimitExceeded", "Request limit exceeded."),
            Api::Sts => AwsError::bad("Throttling", "Rate exceeded"),
        });
    }
    let out = match api {
        Api::Ec2 => ec2::dispatch(&mut st, &who, &action, &p, &rid, mono),
        Api::Sts => sts::dispatch(&mut st, &who, &action, &p, &rid),
    };
    match out {
        Ok(doc) => {
            let r = xml_response(200, &doc, &rid);
            match api {
                Api::Ec2 => r.header("Server", "AmazonEC2"),
                Api::Sts => r,
            }
        }
        Err(e) => fail(e),
    }
}

/// EC2 + STS.
struct ApiService {
    aws: Arc<Aws>,
    core: Arc<Core>,
}

/// Hands the secrets the last request issued or showed to the shared recorder.
fn drain_secrets(aws: &Aws, core: &Core) {
    let list = std::mem::take(&mut aws.lock().secrets);
    for (kind, v) in list {
        core.secrets.add(kind, &v);
    }
}

/// The access key id named in an `Authorization` header or `X-Amz-Credential`.
fn access_key(req: &Request) -> Option<String> {
    let cred = match req.header("authorization") {
        Some(h) => h.split("Credential=").nth(1)?.to_owned(),
        None => req.query("X-Amz-Credential")?.to_owned(),
    };
    cred.split('/').next().map(str::to_owned)
}

impl Service for ApiService {
    fn classify(&self, req: &Request) -> Call {
        let p = params(req);
        let st = self.aws.lock();
        let (api, _) = route(req, &p, &st.region);
        let mut c = Call::new(
            "aws",
            match api {
                Api::Ec2 => "ec2",
                Api::Sts => "sts",
            },
        );
        c.api_call = true;
        c.api = p.get("Action").map(str::to_owned);
        c.mutation = api == Api::Ec2 && c.api.as_deref().is_some_and(ec2::is_mutation);
        c.instance = access_key(req)
            .and_then(|k| st.iam.instance_of_key(&k))
            .and_then(|i| st.instance_name(&i));
        c
    }

    fn handle(&self, req: &Request, _call: &Call, _effects: &[Fault]) -> Response {
        let r = handle_api(&self.aws, req);
        drain_secrets(&self.aws, &self.core);
        r
    }

    fn fault_response(&self, call: &Call, fault: &Fault) -> Response {
        let rid = ids::request_id();
        let sts = call.service == "sts";
        let status = match fault.spec.kind {
            FaultKind::RateLimit if sts => 400,
            FaultKind::RateLimit => 503,
            _ => fault.spec.status.unwrap_or(503),
        };
        let (code, message) = match (fault.spec.kind, sts, status) {
            (FaultKind::RateLimit, false, _) => ("RequestLimitExceeded", "Request limit exceeded."),
            (FaultKind::RateLimit, true, _) => ("Throttling", "Rate exceeded"),
            (_, false, 500) => ("InternalError", "An internal error has occurred"),
            (_, false, 503) => ("Unavailable", "The service is unavailable. Please try again shortly."),
            (_, true, 500) => ("InternalFailure", "The request processing has failed because of an unknown error, exception or failure."),
            (_, true, 503) => ("ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
            (_, _, s) if s < 500 => ("InvalidParameterValue", "Injected by cloudvip-sim"),
            _ => ("InternalError", "An internal error has occurred"),
        };
        let e = AwsError::new(
            status,
            fault.spec.code.as_deref().unwrap_or(code),
            fault
                .spec
                .message
                .clone()
                .unwrap_or_else(|| message.to_owned()),
        );
        if sts {
            e.sts_response(&rid)
        } else {
            e.ec2_response(&rid)
        }
    }
}

/// IMDS: a dedicated listener (`instance` set) or a shared one (source address).
struct ImdsService {
    aws: Arc<Aws>,
    core: Arc<Core>,
    instance: Option<String>,
}

impl ImdsService {
    fn asking(&self, peer: SocketAddr) -> Option<String> {
        let st = self.aws.lock();
        let id = st.instance_for(self.instance.as_deref(), peer.ip())?;
        st.instance_name(&id)
    }
}

impl Service for ImdsService {
    fn classify(&self, req: &Request) -> Call {
        let mut c = Call::new("aws", "metadata");
        c.instance = self.asking(req.peer);
        c.api = Some(imds::api_name(&req.path).into());
        c
    }

    fn connection_call(&self, peer: SocketAddr) -> Option<Call> {
        let mut c = Call::new("aws", "metadata");
        c.instance = self.asking(peer);
        Some(c)
    }

    fn handle(&self, req: &Request, call: &Call, effects: &[Fault]) -> Response {
        self.respond(req, call, effects).unwrap_or_else(|| {
            Response::text(
                504,
                "text/plain",
                "the answer would have been lost (hop limit)\n",
            )
        })
    }

    fn respond(&self, req: &Request, _call: &Call, _effects: &[Fault]) -> Option<Response> {
        let reply = {
            let mut st = self.aws.lock();
            let who = st.instance_for(self.instance.as_deref(), req.peer.ip());
            if let Some(t) = req.header("x-aws-ec2-metadata-token") {
                st.secret("IMDS token", t);
            }
            imds::handle(&mut st, who.as_deref(), req)
        };
        drain_secrets(&self.aws, &self.core);
        match reply {
            imds::Reply::Answer(r) => Some(r),
            imds::Reply::Silent => None,
        }
    }

    fn fault_response(&self, _call: &Call, fault: &Fault) -> Response {
        let status = match fault.spec.kind {
            FaultKind::RateLimit => 429,
            _ => fault.spec.status.unwrap_or(503),
        };
        Response::text(
            status,
            "text/plain",
            format!("{} {}\n", status, http::reason_phrase(status)),
        )
    }
}

/// The AWS cloud as the admin API sees it.
pub struct AwsCloud {
    pub aws: Arc<Aws>,
    core: Arc<Core>,
    endpoints: Value,
}

impl crate::admin::Cloud for AwsCloud {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn state(&self) -> Value {
        super::admin::state(&self.aws)
    }

    fn endpoints(&self) -> Value {
        self.endpoints.clone()
    }

    fn admin(&self, req: &Request, rest: &[String]) -> Response {
        let r = super::admin::route(&self.aws, req, rest);
        drain_secrets(&self.aws, &self.core);
        r
    }
}

/// Binds the AWS listeners and returns the cloud for the admin API.
pub fn start(
    core: Arc<Core>,
    world: &AwsWorld,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(Arc<AwsCloud>, Started), String> {
    let aws = Arc::new(Aws::new(world).map_err(|e| format!("[aws]: {e}"))?);
    let mut threads = Vec::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (api_addr, t) = server::spawn_listener(
        core.clone(),
        ListenerSpec {
            addr: world.api_listen,
            tls,
            service: Arc::new(ApiService {
                aws: aws.clone(),
                core: core.clone(),
            }),
        },
    )
    .map_err(|e| format!("[aws] api listener {}: {e}", world.api_listen))?;
    threads.push(t);
    let api = format!("{scheme}://{api_addr}");
    let mut metadata = serde_json::Map::new();
    if world.metadata_per_instance {
        for i in &world.instances {
            let (addr, t) = server::spawn_listener(
                core.clone(),
                ListenerSpec {
                    addr: crate::world::loopback_any(),
                    tls: None,
                    service: Arc::new(ImdsService {
                        aws: aws.clone(),
                        core: core.clone(),
                        instance: Some(i.id.clone()),
                    }),
                },
            )
            .map_err(|e| format!("[aws] metadata listener for {}: {e}", i.name))?;
            threads.push(t);
            metadata.insert(
                i.name.clone(),
                json!({"id": i.id, "endpoint": format!("http://{addr}"), "host": addr.to_string()}),
            );
        }
    }
    let mut shared = Value::Null;
    if let Some(addr) = world.metadata_listen {
        let (addr, t) = server::spawn_listener(
            core.clone(),
            ListenerSpec {
                addr,
                tls: None,
                service: Arc::new(ImdsService {
                    aws: aws.clone(),
                    core: core.clone(),
                    instance: None,
                }),
            },
        )
        .map_err(|e| format!("[aws] shared metadata listener {addr}: {e}"))?;
        threads.push(t);
        shared = json!(format!("http://{addr}"));
    }
    let endpoints = json!({
        "api": api,
        "ec2_host": format!("ec2.{}.amazonaws.com", world.region),
        "sts_host": format!("sts.{}.amazonaws.com", world.region),
        "metadata": metadata,
        "metadata_shared": shared,
        "region": world.region,
        "account_id": world.account_id,
    });
    drain_secrets(&aws, &core);
    let cloud = Arc::new(AwsCloud {
        aws,
        core,
        endpoints,
    });
    Ok((cloud.clone(), Started { cloud, threads }))
}
