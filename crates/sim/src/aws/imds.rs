//! IMDSv2 (research/aws-azure.md §A1, modelled on AWS's own amazon-ec2-metadata-mock):
//! `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` (1-21600, else 400),
//! refused when it carries `X-Forwarded-For`, never answered when the caller is more hops
//! away than the instance's hop limit; every GET needs a live token of the same instance
//! (401 otherwise; with `http_tokens = optional` a GET without token is served, a bad one
//! still gets 401). Paths under `meta-data/` and `dynamic/instance-identity/document`;
//! directory listings end sub-directories with `/`. Network facts come from the lagged
//! view (`consistency.metadata_ms`): "remapping an IP address is an asynchronous operation".

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use crate::http::{Request, Response};

use super::render::{self, Names};
use super::state::Net;
use super::time;
use super::AwsState;

const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const MAX_TOKENS: usize = 10_000;

/// Session tokens: token → (instance id, expiry).
#[derive(Default)]
pub struct Tokens {
    map: HashMap<String, (String, Instant)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenCheck {
    Valid,
    /// Unknown, expired, or another instance's.
    Invalid,
}

impl Tokens {
    pub fn issue(&mut self, instance: &str, ttl: Duration, now: Instant) -> String {
        self.map.retain(|_, (_, exp)| *exp > now);
        while self.map.len() >= MAX_TOKENS {
            let Some(k) = self
                .map
                .iter()
                .min_by_key(|(_, (_, e))| *e)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.map.remove(&k);
        }
        use base64::Engine;
        let token = format!(
            "AQAEA{}==",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::clock::random_bytes(42))
        );
        self.map
            .insert(token.clone(), (instance.to_owned(), now + ttl));
        token
    }

    pub fn check(&self, token: &str, instance: &str, now: Instant) -> TokenCheck {
        match self.map.get(token) {
            Some((i, exp)) if i == instance && *exp > now => TokenCheck::Valid,
            _ => TokenCheck::Invalid,
        }
    }

    /// Every token expires now (admin).
    pub fn expire_all(&mut self, now: Instant) -> usize {
        let n = self.live(now);
        for (_, exp) in self.map.values_mut() {
            if *exp > now {
                *exp = now;
            }
        }
        n
    }

    pub fn live(&self, now: Instant) -> usize {
        self.map.values().filter(|(_, e)| *e > now).count()
    }
}

/// What the metadata server does with a request.
pub enum Reply {
    Answer(Response),
    /// The response would never reach the caller (hop limit): read, never answered.
    Silent,
}

fn page(status: u16, title: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n <head>\n  <title>{status} - {title}</title>\n </head>\n <body>\n  <h1>{status} - {title}</h1>\n </body>\n</html>\n"
    );
    Response::text(status, "text/html", body).header("Server", "EC2ws")
}

fn text(body: impl Into<String>) -> Reply {
    Reply::Answer(Response::text(200, "text/plain", body.into()).header("Server", "EC2ws"))
}

/// A directory listing: sub-directories end with `/`.
fn listing(entries: &[String]) -> Reply {
    text(entries.join("\n"))
}

/// Entry point for one request to the metadata address, from instance `instance` (None:
/// the source address belongs to no instance).
pub fn handle(st: &mut AwsState, instance: Option<&str>, req: &Request) -> Reply {
    let Some(instance) = instance.map(str::to_owned) else {
        return Reply::Answer(Response::text(
            404,
            "text/plain",
            format!(
                "cloudvip-sim: no instance has metadata_source {}\n",
                req.peer.ip()
            ),
        ));
    };
    let mono = Instant::now();
    let Some(opts) = st.metadata.get(&instance).copied() else {
        return Reply::Answer(page(404, "Not Found"));
    };
    let path = req.path.as_str();
    if path == "/latest/api/token" {
        st.count("imds:token");
        if req.method != "PUT" {
            return Reply::Answer(page(405, "Method Not Allowed"));
        }
        if req.header("x-forwarded-for").is_some() {
            let s = st.settings.imds_forwarded_status;
            return Reply::Answer(page(s, crate::http::reason_phrase(s)));
        }
        let ttl = req
            .header(TTL_HEADER)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|t| (1..=21_600).contains(t));
        let Some(ttl) = ttl else {
            return Reply::Answer(page(400, "Bad Request"));
        };
        if opts.hops > opts.hop_limit {
            return Reply::Silent;
        }
        let token = st
            .imds_tokens
            .issue(&instance, Duration::from_secs(ttl), mono);
        st.secret("IMDS token", &token);
        return Reply::Answer(
            Response::text(200, "text/plain", token)
                .header("X-aws-ec2-metadata-token-ttl-seconds", ttl.to_string())
                .header("Server", "EC2ws"),
        );
    }
    st.count("imds:get");
    if req.method != "GET" && req.method != "HEAD" {
        return Reply::Answer(page(405, "Method Not Allowed"));
    }
    let authorized = match req.header(TOKEN_HEADER) {
        Some(t) => st.imds_tokens.check(t.trim(), &instance, mono) == TokenCheck::Valid,
        None => !opts.tokens_required,
    };
    if !authorized {
        return Reply::Answer(page(401, "Unauthorized"));
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let version_ok = segs.first().is_some_and(|v| {
        *v == "latest"
            || *v == "1.0"
            || (v.len() == 10 && v.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
    });
    if segs.is_empty() {
        return listing(&["latest".into()]);
    }
    if !version_ok {
        return Reply::Answer(page(404, "Not Found"));
    }
    match lookup(st, &instance, &segs[1..], mono) {
        Some(r) => r,
        None => Reply::Answer(page(404, "Not Found")),
    }
}

fn lookup(st: &mut AwsState, id: &str, rest: &[&str], mono: Instant) -> Option<Reply> {
    match rest {
        [] => Some(listing(&["dynamic".into(), "meta-data".into()])),
        ["meta-data", tail @ ..] => meta_data(st, id, tail, mono),
        ["dynamic"] => Some(listing(&["instance-identity/".into()])),
        ["dynamic", "instance-identity"] => Some(listing(&["document".into()])),
        ["dynamic", "instance-identity", "document"] => Some(identity_document(st, id)),
        _ => None,
    }
}

fn identity_document(st: &AwsState, id: &str) -> Reply {
    let net = &st.net.current;
    let Some(i) = net.instances.get(id) else {
        return Reply::Answer(page(404, "Not Found"));
    };
    let ip = i
        .enis
        .first()
        .and_then(|e| net.enis.get(e))
        .map(|e| e.private_ips[0].to_string());
    let doc = json!({
        "accountId": st.account,
        "architecture": "x86_64",
        "availabilityZone": i.zone,
        "billingProducts": null,
        "devpayProductCodes": null,
        "marketplaceProductCodes": null,
        "imageId": i.image_id,
        "instanceId": i.id,
        "instanceType": i.instance_type,
        "kernelId": null,
        "pendingTime": time::iso_seconds(i.launched),
        "privateIp": ip,
        "ramdiskId": null,
        "region": st.region,
        "version": "2017-09-30",
    });
    text(serde_json::to_string_pretty(&doc).unwrap_or_default())
}

/// Elastic IPs associated with one ENI in `net`: (public, private).
fn eips_of(net: &Net, eni: &str) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    net.eips
        .values()
        .filter_map(|a| {
            a.association
                .as_ref()
                .filter(|s| s.eni == eni)
                .map(|s| (a.public_ip, s.private_ip))
        })
        .collect()
}

fn meta_data(st: &mut AwsState, id: &str, tail: &[&str], mono: Instant) -> Option<Reply> {
    let region = st.region.clone();
    let account = st.account.clone();
    let n = Names {
        region: &region,
        account: &account,
    };
    let lag = st.settings.consistency.metadata_ms;
    let view = st.view(mono, lag).clone();
    let i = view.instances.get(id)?.clone();
    let primary = i.enis.first().and_then(|e| view.enis.get(e))?.clone();
    let primary_ip = primary.private_ips[0];
    let public = view.eip_on(&primary.id, primary_ip).map(|a| a.public_ip);
    let role = i.iam_role.clone();
    Some(match tail {
        [] => {
            let mut l: Vec<String> = [
                "ami-id",
                "ami-launch-index",
                "hostname",
                "instance-action",
                "instance-id",
                "instance-life-cycle",
                "instance-type",
                "local-hostname",
                "local-ipv4",
                "mac",
                "network/",
                "placement/",
                "reservation-id",
                "security-groups",
                "services/",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if role.is_some() {
                l.push("iam/".into());
            }
            if public.is_some() {
                l.push("public-hostname".into());
                l.push("public-ipv4".into());
            }
            l.sort();
            listing(&l)
        }
        ["ami-id"] => text(i.image_id.clone()),
        ["ami-launch-index"] => text("0"),
        ["hostname"] | ["local-hostname"] => text(n.private_dns(primary_ip)),
        ["instance-action"] => text("none"),
        ["instance-id"] => text(i.id.clone()),
        ["instance-life-cycle"] => text("on-demand"),
        ["instance-type"] => text(i.instance_type.clone()),
        ["local-ipv4"] => text(primary_ip.to_string()),
        ["mac"] => text(primary.mac.clone()),
        ["public-ipv4"] => text(public?.to_string()),
        ["public-hostname"] => text(n.public_dns(public?)),
        ["reservation-id"] => text(i.reservation_id.clone()),
        ["security-groups"] => text("default"),
        ["services"] => listing(&["domain".into(), "partition".into()]),
        ["services", "domain"] => text("amazonaws.com"),
        ["services", "partition"] => text("aws"),
        ["placement"] => listing(&[
            "availability-zone".into(),
            "availability-zone-id".into(),
            "region".into(),
        ]),
        ["placement", "availability-zone"] => text(i.zone.clone()),
        ["placement", "availability-zone-id"] => text(render::zone_id(&i.zone)),
        ["placement", "region"] => text(region.clone()),
        ["network"] => listing(&["interfaces/".into()]),
        ["network", "interfaces"] => listing(&["macs/".into()]),
        ["network", "interfaces", "macs"] => {
            let macs: Vec<String> = i
                .enis
                .iter()
                .filter_map(|e| view.enis.get(e))
                .map(|e| format!("{}/", e.mac))
                .collect();
            listing(&macs)
        }
        ["network", "interfaces", "macs", mac, rest @ ..] => {
            let eni = i
                .enis
                .iter()
                .filter_map(|e| view.enis.get(e))
                .find(|e| e.mac == *mac)?
                .clone();
            let subnet = view.subnets.get(&eni.subnet)?.clone();
            let vpc = view.vpcs.get(&eni.vpc)?.clone();
            let eips = eips_of(&view, &eni.id);
            let eni_public = eips
                .iter()
                .find(|(_, p)| *p == eni.private_ips[0])
                .map(|(a, _)| *a);
            match rest {
                [] => {
                    let mut l: Vec<String> = [
                        "device-number",
                        "interface-id",
                        "local-hostname",
                        "local-ipv4s",
                        "mac",
                        "owner-id",
                        "security-group-ids",
                        "security-groups",
                        "subnet-id",
                        "subnet-ipv4-cidr-block",
                        "vpc-id",
                        "vpc-ipv4-cidr-block",
                        "vpc-ipv4-cidr-blocks",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                    if !eips.is_empty() {
                        l.push("ipv4-associations/".into());
                        l.push("public-ipv4s".into());
                    }
                    if eni_public.is_some() {
                        l.push("public-hostname".into());
                    }
                    l.sort();
                    listing(&l)
                }
                ["device-number"] => text(eni.device_index.to_string()),
                ["interface-id"] => text(eni.id.clone()),
                ["local-hostname"] => text(n.private_dns(eni.private_ips[0])),
                ["local-ipv4s"] => text(
                    eni.private_ips
                        .iter()
                        .map(|ip| ip.to_string())
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                ["mac"] => text(eni.mac.clone()),
                ["owner-id"] => text(account.clone()),
                ["security-group-ids"] => text(render::default_sg(&eni.vpc)),
                ["security-groups"] => text("default"),
                ["subnet-id"] => text(eni.subnet.clone()),
                ["subnet-ipv4-cidr-block"] => text(subnet.cidr.to_string()),
                ["vpc-id"] => text(eni.vpc.clone()),
                ["vpc-ipv4-cidr-block"] | ["vpc-ipv4-cidr-blocks"] => text(vpc.cidr.to_string()),
                ["public-ipv4s"] if !eips.is_empty() => text(
                    eips.iter()
                        .map(|(p, _)| p.to_string())
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                ["public-hostname"] => text(n.public_dns(eni_public?)),
                ["ipv4-associations"] if !eips.is_empty() => {
                    listing(&eips.iter().map(|(p, _)| p.to_string()).collect::<Vec<_>>())
                }
                ["ipv4-associations", public] => {
                    let (_, private) = eips.iter().find(|(p, _)| p.to_string() == *public)?;
                    text(private.to_string())
                }
                _ => return None,
            }
        }
        ["iam"] if role.is_some() => listing(&["info".into(), "security-credentials/".into()]),
        ["iam", "info"] => {
            let role = role?;
            let (_, s) = credentials(st, id, &role);
            let profile_id = st
                .iam
                .role_id(&role)
                .map(|r| r.replacen("AROA", "AIPA", 1))
                .unwrap_or_default();
            let doc = format!(
                "{{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"{}\",\n  \"InstanceProfileArn\" : \"arn:aws:iam::{account}:instance-profile/{role}\",\n  \"InstanceProfileId\" : \"{profile_id}\"\n}}",
                time::iso_seconds(time::from_unix(s.issued))
            );
            text(doc)
        }
        ["iam", "security-credentials"] => listing(&[role?]),
        ["iam", "security-credentials", name] => {
            let role = role.filter(|r| r == name)?;
            st.count("imds:credentials");
            let (akid, s) = credentials(st, id, &role);
            let doc = json!({
                "Code": "Success",
                "LastUpdated": time::iso_seconds(time::from_unix(s.issued)),
                "Type": "AWS-HMAC",
                "AccessKeyId": akid,
                "SecretAccessKey": s.secret,
                "Token": s.token,
                "Expiration": time::iso_seconds(time::from_unix(s.expires)),
            });
            text(serde_json::to_string_pretty(&doc).unwrap_or_default())
        }
        _ => return None,
    })
}

fn credentials(st: &mut AwsState, id: &str, role: &str) -> (String, super::iam::Session) {
    let life = st.settings.role_credentials_lifetime_secs;
    let refresh = st.settings.role_credentials_refresh_secs;
    let (k, s) =
        st.iam
            .instance_credentials(id, role, life, refresh, time::unix(SystemTime::now()));
    st.secret("AWS secret access key", &s.secret);
    st.secret("AWS session token", &s.token);
    (k, s)
}

/// `imds.token`, `imds.credentials`, `imds.identity`, `imds.meta-data`, `imds.other`:
/// the `api` of a metadata request in the log and in fault selectors.
pub fn api_name(path: &str) -> &'static str {
    if path == "/latest/api/token" {
        "imds.token"
    } else if path.contains("/meta-data/iam/security-credentials/") {
        "imds.credentials"
    } else if path.contains("/dynamic/instance-identity") {
        "imds.identity"
    } else if path.contains("/meta-data") {
        "imds.meta-data"
    } else {
        "imds.other"
    }
}
