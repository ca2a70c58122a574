//! Signed EC2 and STS calls over the project's one HTTP layer (`http.rs`: retries of
//! transport errors, 429 and 5xx inside the action's deadline, nothing but method, URL and
//! status logged), and the typed calls the three modes make. Per call: sign with the
//! current credentials, send (throttling answered with a 4xx is retried too), parse the
//! answer fail-closed (`model.rs`), classify a refusal (`error.rs`); credentials EC2
//! refuses as expired or unknown are replaced once, a refusal that comes from this node's
//! clock says so. Paginated Describe* follow `NextToken`; a `DryRun` answered
//! `DryRunOperation` is the probe's success.

use std::net::Ipv4Addr;

use crate::cloud::{clock_refusal, http_error, CloudError};
use crate::deadline::Deadline;
use crate::http::{Http, Method, Request};

use super::credentials::Provider;
use super::error::{self, ApiError};
use super::imds::Imds;
use super::model::{self, Address, Eni, Instance, RouteTable};
use super::query::{self, Eip, Query};
use super::sigv4::{self, Keys, Unsigned};
use super::xml::Node;

/// "Signature expired" and AuthFailure for skew come at 5 minutes (research §A3.3).
pub const AWS_CLOCK_LIMIT_SECS: i64 = 300;

/// More pages than any account's ENIs or route tables fill: a loop, not data.
const MAX_PAGES: usize = 1000;

/// A service endpoint and what its requests are signed for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub region: String,
    /// The SigV4 signing name: `ec2` or `sts`.
    pub service: &'static str,
}

fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

impl Endpoint {
    /// `https://<service>.<region>.amazonaws.com/` (`.com.cn` in China), or `url`
    /// (`api_endpoint`, the emulator).
    fn regional(service: &'static str, region: &str, url: Option<&str>) -> Endpoint {
        Endpoint {
            url: url.map_or_else(
                || format!("https://{service}.{region}.{}/", dns_suffix(region)),
                str::to_owned,
            ),
            region: region.to_owned(),
            service,
        }
    }

    pub fn ec2(region: &str, url: Option<&str>) -> Endpoint {
        Endpoint::regional("ec2", region, url)
    }

    /// The regional STS endpoint (AWS's recommendation over the global one).
    pub fn sts(region: &str, url: Option<&str>) -> Endpoint {
        Endpoint::regional("sts", region, url)
    }
}

/// What came back from one signed call.
pub enum Answer {
    /// 2xx with an XML document.
    Done(Node),
    /// The service's refusal, for the caller to classify.
    Refused(ApiError),
}

/// `q` as a POST to `ep` signed with `keys` now: the form body, `Content-Type` and `Host`
/// (set here, so the host signed is the host sent), `X-Amz-Date`, the session token and
/// `Authorization`.
pub fn signed_request(ep: &Endpoint, keys: &Keys, q: &Query) -> Result<Request, CloudError> {
    let host = sigv4::host_header(&ep.url).ok_or_else(|| {
        CloudError::Invalid(format!(
            "{}:{}: no host in {}",
            ep.service,
            q.action(),
            ep.url
        ))
    })?;
    let (path, query) = match ep
        .url
        .split_once("://")
        .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
    {
        Some(target) => target.split_once('?').unwrap_or((target, "")),
        None => ("/", ""),
    };
    let body = q.body().into_bytes();
    let headers = vec![
        (
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        ),
        ("Host".to_owned(), host),
    ];
    let unsigned = Unsigned {
        method: "POST",
        path,
        query,
        headers: &headers,
        body: &body,
    };
    let added = sigv4::sign(
        &unsigned,
        keys,
        &ep.region,
        ep.service,
        std::time::SystemTime::now(),
    );
    let mut req = Request::new(Method::Post, &ep.url);
    for (k, v) in headers.into_iter().chain(added) {
        req = req.header(&k, v);
    }
    req.body = body;
    Ok(req)
}

/// One signed POST of `q` to `ep` (the http layer retries what is worth retrying inside
/// `deadline`). A refusal caused by this node's clock is `Local` at once.
pub fn call_once(
    http: &Http,
    ep: &Endpoint,
    keys: &Keys,
    q: &Query,
    deadline: &Deadline,
) -> Result<Answer, CloudError> {
    let action = format!("{}:{}", ep.service, q.action());
    let req = signed_request(ep, keys, q)?;
    let r = http
        .api(&req, deadline, &error::retry_also)
        .map_err(|e| http_error(&action, e))?;
    if r.ok() {
        return super::xml::parse(&r.body).map(Answer::Done).map_err(|e| {
            CloudError::Transient(format!(
                "{action}: unexpected answer (HTTP {}): {e}",
                r.status
            ))
        });
    }
    let e = error::parse(&r);
    if error::CLOCK_CODES.contains(&e.code.as_str()) {
        if let Some(c) = clock_refusal(&r, AWS_CLOCK_LIMIT_SECS) {
            return Err(c);
        }
    }
    Ok(Answer::Refused(e))
}

/// The EC2 client of one action: the HTTP agents, IMDS, the credentials (and those for
/// route tables, when they are reached through another role), the endpoints.
pub struct Ec2 {
    pub http: Http,
    pub imds: Imds,
    pub creds: Provider,
    /// For DescribeRouteTables/ReplaceRoute/CreateRoute when set (AssumeRole into the
    /// account that owns the tables, as aws-vpc-move-ip's `routing_table_role`).
    pub route_creds: Option<Provider>,
    pub ec2: Endpoint,
    pub sts: Endpoint,
}

fn is_route_action(action: &str) -> bool {
    matches!(
        action,
        "DescribeRouteTables" | "ReplaceRoute" | "CreateRoute"
    )
}

fn unexpected(action: &str, e: String) -> CloudError {
    // A garbled answer may be right on the next try; retrying is the safe side.
    CloudError::Transient(format!("unexpected ec2:{action} answer: {e}"))
}

/// `found`, when every item is one of the `ids` asked for (none asked: all are fine). An
/// answer about something else means the ids were not applied: never act on it.
fn only_asked<T>(
    q: &Query,
    ids: &[&str],
    found: Vec<T>,
    id: impl Fn(&T) -> &String,
) -> Result<Vec<T>, CloudError> {
    match found
        .iter()
        .map(&id)
        .find(|i| !ids.is_empty() && !ids.contains(&i.as_str()))
    {
        Some(other) => Err(unexpected(
            q.action(),
            format!("asked for {ids:?}, got {other}"),
        )),
        None => Ok(found),
    }
}

impl Ec2 {
    /// The answer to `q`, with one more try when EC2 refuses temporary credentials as
    /// expired or unknown (IMDS rotates them; an admin may revoke them: new ones are
    /// fetched) or the request as expired (the http layer resends the same signed bytes,
    /// and a signature is good for five minutes: the retry is signed anew).
    fn answer(&mut self, q: &Query, deadline: &Deadline) -> Result<Answer, CloudError> {
        let mut refreshed = false;
        loop {
            let provider = match &mut self.route_creds {
                Some(p) if is_route_action(q.action()) => p,
                _ => &mut self.creds,
            };
            let c = provider.get(&self.http, &mut self.imds, &self.sts, deadline)?;
            match call_once(&self.http, &self.ec2, &c.keys, q, deadline)? {
                Answer::Refused(e)
                    if !refreshed
                        && provider.refreshable()
                        && error::stale_credentials(&e.code) =>
                {
                    log::info!(
                        "ec2:{} refused the credentials ({}); fetching new ones",
                        q.action(),
                        e.code
                    );
                    provider.invalidate();
                    refreshed = true;
                }
                Answer::Refused(e) if !refreshed && e.code == "RequestExpired" => {
                    log::info!("ec2:{}: RequestExpired; signing it anew", q.action());
                    refreshed = true;
                }
                a => return Ok(a),
            }
        }
    }

    /// `q`'s answer document, or its refusal classified.
    pub fn call(&mut self, q: &Query, deadline: &Deadline) -> Result<Node, CloudError> {
        match self.answer(q, deadline)? {
            Answer::Done(n) => Ok(n),
            Answer::Refused(e) => Err(e.classify(&format!("ec2:{}", q.action()))),
        }
    }

    /// The permission probe: `q` with `DryRun=true`. `Ok` when EC2 says the request would
    /// have succeeded; `Denied` naming the action when the policy lacks it.
    pub fn dry_run(&mut self, q: &Query, deadline: &Deadline) -> Result<(), CloudError> {
        let action = format!("ec2:{}", q.action());
        let probe = q
            .dry_run()
            .ok_or_else(|| CloudError::Invalid(format!("{action} has no DryRun in EC2")))?;
        match self.answer(&probe, deadline)? {
            Answer::Refused(e) if e.code == "DryRunOperation" => Ok(()),
            Answer::Refused(e) => Err(e.classify(&action)),
            // The change may have been made: say so, never call it a probe's success.
            Answer::Done(_) => Err(CloudError::Invalid(format!(
                "{action}: a DryRun request was answered as done (the endpoint ignores DryRun)"
            ))),
        }
    }

    /// Every page of a Describe*: `read` turns one page into items and its `nextToken`.
    fn paged<T>(
        &mut self,
        q: &Query,
        deadline: &Deadline,
        read: fn(&Node) -> model::Page<T>,
    ) -> Result<Vec<T>, CloudError> {
        let mut out = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        let mut page = q.clone();
        for _ in 0..MAX_PAGES {
            let root = self.call(&page, deadline)?;
            let (items, next) = read(&root).map_err(|e| unexpected(q.action(), e))?;
            out.extend(items);
            match next {
                None => return Ok(out),
                Some(t) if seen.contains(&t) => {
                    return Err(unexpected(q.action(), format!("NextToken {t:?} repeats")))
                }
                Some(t) => {
                    page = q.page(&t);
                    seen.push(t);
                }
            }
        }
        Err(unexpected(
            q.action(),
            format!("more than {MAX_PAGES} pages"),
        ))
    }

    pub fn describe_instances(
        &mut self,
        ids: &[&str],
        deadline: &Deadline,
    ) -> Result<Vec<Instance>, CloudError> {
        let q = query::describe_instances(ids);
        let found = self.paged(&q, deadline, model::instances)?;
        only_asked(&q, ids, found, |i| &i.id)
    }

    /// DescribeNetworkInterfaces with any query built by `query.rs`.
    pub fn describe_network_interfaces(
        &mut self,
        q: &Query,
        deadline: &Deadline,
    ) -> Result<Vec<Eni>, CloudError> {
        self.paged(q, deadline, model::network_interfaces)
    }

    /// The ENIs holding `ip`. Each must hold it: an answer listing other ENIs means the
    /// filter was not applied, and acting on one of those would take someone else's IP.
    pub fn enis_holding(
        &mut self,
        ip: Ipv4Addr,
        deadline: &Deadline,
    ) -> Result<Vec<Eni>, CloudError> {
        let q = query::enis_holding(ip);
        let enis = self.describe_network_interfaces(&q, deadline)?;
        if let Some(e) = enis.iter().find(|e| !e.holds(ip)) {
            return Err(unexpected(
                q.action(),
                format!(
                    "the filter for {ip} answered {}, which does not hold it",
                    e.id
                ),
            ));
        }
        Ok(enis)
    }

    pub fn assign_private_ips(
        &mut self,
        eni: &str,
        ips: &[Ipv4Addr],
        allow_reassignment: bool,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let q = query::assign_private_ips(eni, ips, allow_reassignment);
        let root = self.call(&q, deadline)?;
        match root.text_of("networkInterfaceId") {
            Some(id) if id != eni => Err(unexpected(q.action(), format!("answered for {id}"))),
            _ => Ok(()),
        }
    }

    pub fn unassign_private_ips(
        &mut self,
        eni: &str,
        ips: &[Ipv4Addr],
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let q = query::unassign_private_ips(eni, ips);
        let root = self.call(&q, deadline)?;
        model::returned(&root).map_err(|e| unexpected(q.action(), e))
    }

    /// The Elastic IP `eip` (exactly one, or `NotFound`).
    pub fn describe_address(
        &mut self,
        eip: &Eip,
        deadline: &Deadline,
    ) -> Result<Address, CloudError> {
        let q = query::describe_addresses(eip);
        let root = self.call(&q, deadline)?;
        let all = model::addresses(&root).map_err(|e| unexpected(q.action(), e))?;
        let mut mine = all.into_iter().filter(|a| match eip {
            Eip::Allocation(id) => &a.allocation_id == id,
            Eip::Public(ip) => a.public_ip == *ip,
        });
        match (mine.next(), mine.next()) {
            (Some(a), None) => Ok(a),
            (None, _) => Err(CloudError::NotFound(format!(
                "ec2:DescribeAddresses: no Elastic IP {eip:?} in the answer"
            ))),
            (Some(_), Some(_)) => Err(unexpected(q.action(), format!("{eip:?} twice"))),
        }
    }

    /// Associates `eip` with `private_ip` of `eni`; the new association's id.
    pub fn associate_address(
        &mut self,
        eip: &Eip,
        eni: &str,
        private_ip: Ipv4Addr,
        allow_reassociation: bool,
        deadline: &Deadline,
    ) -> Result<String, CloudError> {
        let q = query::associate_address(eip, eni, private_ip, allow_reassociation);
        let root = self.call(&q, deadline)?;
        model::association_id(&root).map_err(|e| unexpected(q.action(), e))
    }

    pub fn disassociate_address(
        &mut self,
        association_id: &str,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let q = query::disassociate_address(association_id);
        let root = self.call(&q, deadline)?;
        model::returned(&root).map_err(|e| unexpected(q.action(), e))
    }

    pub fn describe_route_tables(
        &mut self,
        ids: &[&str],
        deadline: &Deadline,
    ) -> Result<Vec<RouteTable>, CloudError> {
        let q = query::describe_route_tables(ids);
        let found = self.paged(&q, deadline, model::route_tables)?;
        only_asked(&q, ids, found, |t| &t.id)
    }

    /// ReplaceRoute (`replace`) or CreateRoute of `destination` in `table` to `eni`.
    pub fn put_route(
        &mut self,
        table: &str,
        destination: &str,
        eni: &str,
        replace: bool,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        let q = query::put_route(table, destination, eni, replace);
        let root = self.call(&q, deadline)?;
        model::returned(&root).map_err(|e| unexpected(q.action(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_endpoints() {
        assert_eq!(
            Endpoint::ec2("eu-west-1", None).url,
            "https://ec2.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            Endpoint::sts("cn-north-1", None).url,
            "https://sts.cn-north-1.amazonaws.com.cn/"
        );
        let e = Endpoint::ec2("eu-west-1", Some("http://127.0.0.1:9/"));
        assert_eq!((e.url.as_str(), e.service), ("http://127.0.0.1:9/", "ec2"));
        assert!(is_route_action("ReplaceRoute") && !is_route_action("AssignPrivateIpAddresses"));
    }
}
