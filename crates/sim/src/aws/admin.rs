//! `/admin/aws/...` and the AWS part of `GET /admin/state`: the current (not lagged)
//! truth, console changes that bypass IAM (they are writes like any other, so lagging
//! readers see them late), credential and token controls, and run-time settings.
//! Documented in the crate README ("AWS", "Admin API").

use std::net::Ipv4Addr;
use std::time::{Instant, SystemTime};

use serde_json::{json, Value};

use crate::admin::{err, ok};
use crate::gce::net::Ipv4Net;
use crate::http::{Request, Response};

use super::errors::AwsError;
use super::state::{Net, Target};
use super::{time, Aws, AwsState};

fn net_json(st: &AwsState, net: &Net) -> Value {
    let instances: Vec<Value> = net
        .instances
        .values()
        .map(|i| {
            let md = st.metadata.get(&i.id);
            json!({
                "id": i.id,
                "name": i.name,
                "instance_type": i.instance_type,
                "private_ips_per_eni": i.ip_limit,
                "iam_role": i.iam_role,
                "availability_zone": i.zone,
                "enis": i.enis,
                "metadata_options": md.map(|m| json!({
                    "http_tokens": if m.tokens_required { "required" } else { "optional" },
                    "hop_limit": m.hop_limit,
                    "metadata_hops": m.hops,
                })),
            })
        })
        .collect();
    let enis: Vec<Value> = net
        .enis
        .values()
        .map(|e| {
            json!({
                "id": e.id,
                "mac": e.mac,
                "subnet": e.subnet,
                "vpc": e.vpc,
                "instance": e.instance,
                "device_index": e.device_index,
                "primary_ip": e.private_ips[0].to_string(),
                "secondary_ips": e.private_ips[1..].iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                "source_dest_check": e.source_dest_check,
                "description": e.description,
            })
        })
        .collect();
    let eips: Vec<Value> = net
        .eips
        .values()
        .map(|a| {
            json!({
                "allocation_id": a.allocation_id,
                "public_ip": a.public_ip.to_string(),
                "association": a.association.as_ref().map(|s| json!({
                    "id": s.id,
                    "eni": s.eni,
                    "private_ip": s.private_ip.to_string(),
                    "instance": net.enis.get(&s.eni).map(|e| e.instance.clone()),
                })),
            })
        })
        .collect();
    let tables: Vec<Value> = net
        .route_tables
        .values()
        .map(|t| {
            let routes: Vec<Value> = t
                .routes
                .iter()
                .map(|r| {
                    let target = match &r.target {
                        Target::Local => json!({"local": true}),
                        Target::Gateway(g) => json!({"gateway": g}),
                        Target::Eni(e) => json!({
                            "eni": e,
                            "instance": net.enis.get(e).map(|x| x.instance.clone()),
                        }),
                    };
                    json!({"destination": r.destination.to_string(), "target": target, "origin": r.origin})
                })
                .collect();
            json!({
                "id": t.id,
                "vpc": t.vpc,
                "account_id": t.account,
                "main": t.main.is_some(),
                "subnets": t.subnets.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(),
                "routes": routes,
            })
        })
        .collect();
    let subnets: Vec<Value> = net
        .subnets
        .values()
        .map(|s| json!({"id": s.id, "vpc": s.vpc, "cidr": s.cidr.to_string(), "availability_zone": s.zone}))
        .collect();
    let vpcs: Vec<Value> = net
        .vpcs
        .values()
        .map(|v| json!({"id": v.id, "cidr": v.cidr.to_string()}))
        .collect();
    json!({
        "instances": instances,
        "enis": enis,
        "elastic_ips": eips,
        "route_tables": tables,
        "subnets": subnets,
        "vpcs": vpcs,
    })
}

fn settings_json(st: &AwsState) -> Value {
    let s = &st.settings;
    json!({
        "consistency": s.consistency,
        "max_clock_skew_secs": s.auth.max_skew_secs,
        "skew_error": s.auth.skew_error,
        "reassign_conflict_code": s.write.reassign_conflict_code,
        "eip_reassociation_default": if s.write.reassociation_default_allowed { "allow" } else { "deny" },
        "imds_forwarded_status": s.imds_forwarded_status,
        "role_credentials_lifetime_secs": s.role_credentials_lifetime_secs,
        "role_credentials_refresh_secs": s.role_credentials_refresh_secs,
        "throttle": s.throttle,
    })
}

/// The whole AWS state as JSON (no secrets: access key ids only).
pub fn state(aws: &Aws) -> Value {
    let st = aws.lock();
    let mono = Instant::now();
    let now = time::unix(SystemTime::now());
    let mut v = net_json(&st, &st.net.current);
    let creds: serde_json::Map<String, Value> = st
        .iam
        .instance_keys
        .iter()
        .filter_map(|(i, k)| {
            let s = st.iam.sessions.get(k)?;
            let name = st.instance_name(i).unwrap_or_else(|| i.clone());
            Some((
                name,
                json!({"access_key_id": k, "expiration": time::iso_seconds(time::from_unix(s.expires))}),
            ))
        })
        .collect();
    if let Value::Object(m) = &mut v {
        m.insert("region".into(), json!(st.region));
        m.insert("account_id".into(), json!(st.account));
        m.insert("settings".into(), settings_json(&st));
        m.insert("calls".into(), json!(st.calls));
        m.insert(
            "lagging_writes".into(),
            json!(st.net.pending(mono, st.settings.max_lag())),
        );
        m.insert("live_imds_tokens".into(), json!(st.imds_tokens.live(mono)));
        m.insert("live_sessions".into(), json!(st.iam.live_sessions(now)));
        m.insert("instance_credentials".into(), Value::Object(creds));
    }
    v
}

fn aws_err(e: AwsError) -> Response {
    err(e.status, format!("{}: {}", e.code, e.message))
}

fn ips(body: &Value) -> Result<Vec<Ipv4Addr>, String> {
    body.get("ips")
        .and_then(Value::as_array)
        .ok_or("body needs \"ips\": [\"10.0.1.100\", ...]")?
        .iter()
        .map(|v| {
            v.as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("not an IPv4 address: {v}"))
        })
        .collect()
}

fn str_field<'a>(body: &'a Value, k: &str) -> Option<&'a str> {
    body.get(k).and_then(Value::as_str)
}

/// `/admin/aws/<rest>`.
pub fn route(aws: &Aws, req: &Request, rest: &[String]) -> Response {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let body = match req.json() {
        Ok(v) => v,
        Err(e) => return err(400, e),
    };
    let mono = Instant::now();
    let now = time::unix(SystemTime::now());
    match (req.method.as_str(), rest.as_slice()) {
        ("GET", ["state"]) => ok(state(aws)),
        ("GET", ["settings"]) => ok(settings_json(&aws.lock())),
        ("PUT" | "POST", ["settings"]) => put_settings(aws, &body),
        ("POST", ["settle"]) => {
            aws.lock().net.settle();
            ok(json!({}))
        }
        ("POST", ["enis", eni, "assign"]) => {
            let list = match ips(&body) {
                Ok(l) => l,
                Err(e) => return err(400, e),
            };
            let allow = body
                .get("allow_reassignment")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let mut st = aws.lock();
            let rules = st.settings.write.clone();
            match st.write(mono, |n| n.assign(eni, &list, None, allow, &rules)) {
                Ok(v) => {
                    ok(json!({"assigned": v.iter().map(|i| i.to_string()).collect::<Vec<_>>()}))
                }
                Err(e) => aws_err(e),
            }
        }
        ("POST", ["enis", eni, "unassign"]) => {
            let list = match ips(&body) {
                Ok(l) => l,
                Err(e) => return err(400, e),
            };
            match aws.lock().write(mono, |n| n.unassign(eni, &list)) {
                Ok(()) => ok(json!({})),
                Err(e) => aws_err(e),
            }
        }
        ("PUT" | "POST", ["enis", eni, "source-dest-check"]) => {
            let Some(v) = body.get("value").and_then(Value::as_bool) else {
                return err(400, "body needs \"value\": true|false");
            };
            match aws.lock().write(mono, |n| n.set_source_dest_check(eni, v)) {
                Ok(()) => ok(json!({})),
                Err(e) => aws_err(e),
            }
        }
        ("POST", ["elastic-ips", alloc, "associate"]) => {
            let Some(eni) = str_field(&body, "eni") else {
                return err(400, "body needs \"eni\" (and optionally \"private_ip\")");
            };
            let private: Option<Ipv4Addr> = match str_field(&body, "private_ip") {
                None => None,
                Some(s) => match s.parse() {
                    Ok(ip) => Some(ip),
                    Err(_) => return err(400, format!("not an IPv4 address: {s}")),
                },
            };
            let mut st = aws.lock();
            let rules = st.settings.write.clone();
            match st.write(mono, |n| {
                n.associate(alloc, eni, private, Some(true), &rules)
            }) {
                Ok(id) => ok(json!({"association_id": id})),
                Err(e) => aws_err(e),
            }
        }
        ("POST", ["elastic-ips", alloc, "disassociate"]) => {
            let mut st = aws.lock();
            let assoc = st
                .net
                .current
                .eips
                .get(*alloc)
                .and_then(|a| a.association.as_ref().map(|s| s.id.clone()));
            match assoc {
                None => ok(json!({"disassociated": false})),
                Some(id) => match st.write(mono, |n| n.disassociate(&id)) {
                    Ok(()) => ok(json!({"disassociated": true})),
                    Err(e) => aws_err(e),
                },
            }
        }
        ("PUT" | "POST" | "DELETE", ["route-tables", table, "routes"]) => {
            let dest: Ipv4Net = match str_field(&body, "destination").map(str::parse) {
                Some(Ok(d)) => d,
                _ => return err(400, "body needs \"destination\": \"192.168.100.10/32\""),
            };
            let mut st = aws.lock();
            let Some(account) = st
                .net
                .current
                .route_tables
                .get(*table)
                .map(|t| t.account.clone())
            else {
                return err(404, format!("no route table {table}"));
            };
            let r = if req.method == "DELETE" {
                st.write(mono, |n| n.delete_route(table, &account, dest))
            } else {
                let target = match (
                    str_field(&body, "eni"),
                    str_field(&body, "instance"),
                    str_field(&body, "gateway"),
                ) {
                    (Some(e), None, None) => Target::Eni(e.to_owned()),
                    (None, Some(i), None) => match st.net.current.only_eni(i) {
                        Ok(e) => Target::Eni(e),
                        Err(e) => return aws_err(e),
                    },
                    (None, None, Some(g)) => Target::Gateway(g.to_owned()),
                    _ => return err(400, "exactly one of \"eni\", \"instance\", \"gateway\""),
                };
                let exists = st
                    .net
                    .current
                    .route_tables
                    .get(*table)
                    .is_some_and(|t| t.routes.iter().any(|r| r.destination == dest));
                st.write(mono, |n| n.put_route(table, &account, dest, target, exists))
            };
            match r {
                Ok(()) => ok(json!({})),
                Err(e) => aws_err(e),
            }
        }
        ("PUT" | "POST", ["instances", who, "metadata-options"]) => {
            let mut st = aws.lock();
            let Some(id) = st.find_instance(who) else {
                return err(404, format!("no AWS instance {who}"));
            };
            let Some(m) = st.metadata.get_mut(&id) else {
                return err(404, format!("no AWS instance {who}"));
            };
            match str_field(&body, "http_tokens") {
                Some("required") => m.tokens_required = true,
                Some("optional") => m.tokens_required = false,
                Some(other) => return err(400, format!("http_tokens {other}: required|optional")),
                None => {}
            }
            for (k, slot) in [
                ("hop_limit", &mut m.hop_limit),
                ("metadata_hops", &mut m.hops),
            ] {
                if let Some(v) = body.get(k) {
                    match v.as_u64().filter(|n| (1..=64).contains(n)) {
                        Some(n) => *slot = n as u8,
                        None => return err(400, format!("{k} must be 1-64")),
                    }
                }
            }
            let m = *m;
            ok(
                json!({"http_tokens": if m.tokens_required {"required"} else {"optional"}, "hop_limit": m.hop_limit, "metadata_hops": m.hops}),
            )
        }
        ("POST", ["instances", who, "rotate-credentials"]) => {
            let mut st = aws.lock();
            let Some(id) = st.find_instance(who) else {
                return err(404, format!("no AWS instance {who}"));
            };
            let Some(role) = st
                .net
                .current
                .instances
                .get(&id)
                .and_then(|i| i.iam_role.clone())
            else {
                return err(400, format!("{who} has no instance profile"));
            };
            let life = st.settings.role_credentials_lifetime_secs;
            let (k, s) = st.iam.rotate_instance(&id, &role, life, now);
            ok(
                json!({"access_key_id": k, "expiration": time::iso_seconds(time::from_unix(s.expires))}),
            )
        }
        ("POST", ["credentials"]) => {
            let Some(role) = str_field(&body, "role") else {
                return err(400, "body needs \"role\"");
            };
            let mut st = aws.lock();
            if !st.iam.roles.contains_key(role) {
                return err(404, format!("no role {role}"));
            }
            let life = body
                .get("lifetime_secs")
                .and_then(Value::as_u64)
                .unwrap_or(3600);
            let session = str_field(&body, "session_name").unwrap_or("cloudvip-sim-admin");
            let (k, s) = st.iam.issue(role, session, life, now, false, None);
            st.secret("AWS secret access key", &s.secret);
            st.secret("AWS session token", &s.token);
            ok(json!({
                "AccessKeyId": k,
                "SecretAccessKey": s.secret,
                "SessionToken": s.token,
                "Expiration": time::iso_seconds(time::from_unix(s.expires)),
            }))
        }
        ("POST", ["credentials", "expire"]) => {
            ok(json!({"expired": aws.lock().iam.expire_sessions(now)}))
        }
        ("POST", ["imds-tokens", "expire"]) => {
            ok(json!({"expired": aws.lock().imds_tokens.expire_all(mono)}))
        }
        _ => err(
            404,
            format!("no route {} /admin/aws/{}", req.method, rest.join("/")),
        ),
    }
}

fn put_settings(aws: &Aws, body: &Value) -> Response {
    let mut st = aws.lock();
    let s = &mut st.settings;
    if let Some(c) = body.get("consistency") {
        let mut cur = serde_json::to_value(s.consistency).unwrap_or(Value::Null);
        if let (Value::Object(m), Value::Object(upd)) = (&mut cur, c) {
            for (k, v) in upd {
                m.insert(k.clone(), v.clone());
            }
        }
        match serde_json::from_value(cur) {
            Ok(c) => s.consistency = c,
            Err(e) => return err(400, format!("consistency: {e}")),
        }
    }
    if let Some(v) = body.get("max_clock_skew_secs").and_then(Value::as_i64) {
        s.auth.max_skew_secs = v.max(0);
    }
    if let Some(v) = str_field(body, "skew_error") {
        if !matches!(v, "RequestExpired" | "AuthFailure") {
            return err(400, "skew_error: RequestExpired|AuthFailure");
        }
        s.auth.skew_error = v.to_owned();
    }
    if let Some(v) = str_field(body, "reassign_conflict_code") {
        s.write.reassign_conflict_code = v.to_owned();
    }
    if let Some(v) = str_field(body, "eip_reassociation_default") {
        match v {
            "allow" => s.write.reassociation_default_allowed = true,
            "deny" => s.write.reassociation_default_allowed = false,
            _ => return err(400, "eip_reassociation_default: allow|deny"),
        }
    }
    if let Some(v) = body.get("imds_forwarded_status").and_then(Value::as_u64) {
        s.imds_forwarded_status = u16::try_from(v).unwrap_or(403);
    }
    if let Some(v) = body
        .get("role_credentials_lifetime_secs")
        .and_then(Value::as_u64)
    {
        s.role_credentials_lifetime_secs = v.max(60);
    }
    if let Some(v) = body
        .get("role_credentials_refresh_secs")
        .and_then(Value::as_u64)
    {
        s.role_credentials_refresh_secs = v;
    }
    if let Some(t) = body.get("throttle") {
        match serde_json::from_value(t.clone()) {
            Ok(t) => s.throttle = t,
            Err(e) => return err(400, format!("throttle: {e}")),
        }
    }
    ok(settings_json(&st))
}
