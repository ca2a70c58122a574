//! GCE semantics the agent relies on, checked over HTTP against the in-process emulator:
//! metadata server rules, auth, fingerprints, PATCH semantics, operations, requestId,
//! IP_IN_USE inside DONE, access configs and addresses, filters, faults, the request log,
//! the OAuth token endpoint and TLS. gce-api.md sections in brackets.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn fast(w: &mut cloudvip_sim::World) {
    let g = w.gce.as_mut().unwrap();
    g.operations.pending_ms = 10;
    g.operations.running_ms = 30;
}

#[test]
fn metadata_server_rules() {
    let sim = start(fast);
    let g = Gce { sim: &sim };
    let base = format!("{}/computeMetadata/v1", g.md("node-a"));
    // [§1.2] 403 without the header, HTML, with Metadata-Flavor in the answer.
    let r = request("GET", &format!("{base}/instance/name"), &[], None);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("Metadata-Flavor"), Some("Google"));
    assert!(r.header("Content-Type").unwrap().starts_with("text/html"));
    let r = request(
        "GET",
        &format!("{base}/instance/name"),
        &[("Metadata-Flavor", "Something-Else")],
        None,
    );
    assert_eq!(r.status, 403);
    let r = request(
        "GET",
        &format!("{base}/instance/name"),
        &[
            ("Metadata-Flavor", "Google"),
            ("X-Forwarded-For", "1.2.3.4"),
        ],
        None,
    );
    assert_eq!(r.status, 403);
    // The root answers without the header (clients' "on GCE" ping).
    let r = request("GET", &format!("{}/", g.md("node-a")), &[], None);
    assert_eq!(
        (r.status, r.header("Metadata-Flavor")),
        (200, Some("Google"))
    );
    // [§1.4] leaves.
    let leaf = |p: &str| g.md_get("node-a", p);
    assert_eq!(leaf("project/project-id").body, "my-project");
    assert_eq!(leaf("project/numeric-project-id").body, "123456789012");
    assert_eq!(leaf("instance/name").body, "node-a");
    assert_eq!(
        leaf("instance/zone").body,
        "projects/123456789012/zones/us-central1-a"
    );
    assert_eq!(
        leaf("instance/hostname").body,
        "node-a.us-central1-a.c.my-project.internal"
    );
    assert_eq!(
        leaf("instance/network-interfaces/0/mac").body,
        "42:01:0a:80:00:0a"
    );
    assert_eq!(leaf("instance/network-interfaces/0/ip").body, "10.128.0.10");
    assert_eq!(
        leaf("instance/network-interfaces/0/ip-aliases/").body,
        "0\n1\n"
    );
    assert_eq!(
        leaf("instance/network-interfaces/0/ip-aliases/0").body,
        "10.128.0.100/32"
    );
    assert_eq!(
        leaf("instance/network-interfaces/0/access-configs/0/external-ip").body,
        "203.0.113.10"
    );
    assert_eq!(leaf("instance/service-accounts/default/email").body, SA);
    assert_eq!(
        leaf("instance/service-accounts/default/scopes").body,
        "https://www.googleapis.com/auth/cloud-platform\n"
    );
    let r = leaf("instance/name");
    assert_eq!(r.header("Content-Type"), Some("application/text"));
    assert!(r.header("ETag").is_some());
    assert_eq!(leaf("instance/name?alt=json").body, "\"node-a\"");
    // [§1.3] 301 for a directory without slash, 404 for a leaf with one, 400 alt on a dir.
    assert_eq!(leaf("instance/network-interfaces").status, 301);
    assert_eq!(leaf("instance/name/").status, 404);
    assert_eq!(leaf("instance/nope").status, 404);
    assert_eq!(leaf("instance/network-interfaces/?alt=json").status, 400);
    assert_eq!(
        leaf("instance/network-interfaces/?wait_for_change=true").status,
        400
    );
    // [§1.5] recursive JSON, camelCase, `recursive=True` accepted.
    let v = leaf("instance/network-interfaces/?recursive=True&alt=json").json();
    assert_eq!(
        v[0]["ipAliases"],
        json!(["10.128.0.100/32", "10.200.0.8/29"])
    );
    assert_eq!(v[0]["accessConfigs"][0]["externalIp"], "203.0.113.10");
    let c = leaf("instance/network-interfaces/?recursive=true&alt=text").body;
    assert!(c.contains("0/ip 10.128.0.10\n"), "{c}");
    let sa = leaf("instance/service-accounts/default/?recursive=true").json();
    assert_eq!(sa["email"], SA);
    assert!(sa.get("token").is_none());
    // [§1.6] the token works on the Compute API, and is reused while valid.
    let t = leaf("instance/service-accounts/default/token").json();
    assert_eq!(t["token_type"], "Bearer");
    let tok = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        leaf("instance/service-accounts/default/token").json()["access_token"],
        tok
    );
    let r = request(
        "GET",
        &g.compute("zones/us-central1-a/instances/node-a"),
        &[("Authorization", &format!("Bearer {tok}"))],
        None,
    );
    assert_eq!(r.status, 200);
    // node-c has a read-only service account, node-b's instance has another view.
    assert_eq!(g.md_get("node-b", "instance/name").body, "node-b");
    assert_eq!(
        g.md_get("node-b", "instance/network-interfaces/0/ip-aliases/")
            .body,
        ""
    );
}

#[test]
fn metadata_wait_for_change_and_moves() {
    let sim = start(fast);
    let g = Gce { sim: &sim };
    let path = "instance/network-interfaces/0/ip-aliases/?recursive=true";
    let r = g.md_get("node-b", path);
    let etag = r.header("ETag").unwrap().to_string();
    // Timeout: 200 with the same value and ETag.
    let t0 = Instant::now();
    let r = g.md_get(
        "node-b",
        &format!("{path}&wait_for_change=true&timeout_sec=1&last_etag={etag}"),
    );
    assert!(t0.elapsed() >= Duration::from_millis(900));
    assert_eq!((r.status, r.header("ETag").unwrap()), (200, etag.as_str()));
    // A different last_etag returns at once.
    let t0 = Instant::now();
    let r = g.md_get(
        "node-b",
        &format!("{path}&wait_for_change=true&last_etag=NONE"),
    );
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(r.header("ETag").unwrap(), etag);
    // Move 10.128.0.100/32 from node-a to node-b while node-b long-polls.
    let poll = {
        let url = format!(
            "{}/computeMetadata/v1/{path}&wait_for_change=true&timeout_sec=20&last_etag={etag}",
            g.md("node-b")
        );
        std::thread::spawn(move || request("GET", &url, &[("Metadata-Flavor", "Google")], None))
    };
    std::thread::sleep(Duration::from_millis(200));
    let op = g.wait(&g.patch_aliases("us-central1-a", "node-a", &[], "").json());
    assert!(op.get("error").is_none(), "{op}");
    let op = g.wait(
        &g.patch_aliases("us-central1-b", "node-b", &["10.128.0.100/32"], "")
            .json(),
    );
    assert!(op.get("error").is_none(), "{op}");
    let r = poll.join().unwrap();
    assert_ne!(r.header("ETag").unwrap(), etag);
    assert_eq!(r.json(), json!(["10.128.0.100/32"]));
    assert_eq!(g.md_get("node-a", path).json(), json!([]));
}

#[test]
fn auth_scopes_and_iam() {
    let sim = start(fast);
    let g = Gce { sim: &sim };
    let url = g.compute("zones/us-central1-a/instances/node-a");
    let r = request("GET", &url, &[], None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["errors"][0]["reason"], "required");
    let r = request("GET", &url, &[("Authorization", "Bearer nope")], None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["status"], "UNAUTHENTICATED");
    // Read-only scope: reads fine, writes 403 insufficientPermissions.
    let mint = |sa: &str, scopes: Value, life: u64| {
        request(
            "POST",
            &g.admin("/admin/gce/tokens"),
            &[],
            Some(
                &json!({"service_account": sa, "scopes": scopes, "lifetime_secs": life})
                    .to_string(),
            ),
        )
        .json()["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ro = mint(
        SA,
        json!(["https://www.googleapis.com/auth/compute.readonly"]),
        600,
    );
    let auth = format!("Bearer {ro}");
    assert_eq!(
        request("GET", &url, &[("Authorization", &auth)], None).status,
        200
    );
    let r = request(
        "PATCH",
        &format!("{url}/updateNetworkInterface?networkInterface=nic0"),
        &[("Authorization", &auth)],
        Some("{}"),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["error"]["errors"][0]["reason"],
        "insufficientPermissions"
    );
    // Missing IAM permission: 403 forbidden naming the permission.
    let weak = mint(
        "readonly@my-project.iam.gserviceaccount.com",
        json!(["https://www.googleapis.com/auth/cloud-platform"]),
        600,
    );
    let r = request(
        "PATCH",
        &format!("{url}/updateNetworkInterface?networkInterface=nic0"),
        &[("Authorization", &format!("Bearer {weak}"))],
        Some("{}"),
    );
    assert_eq!(r.status, 403);
    let e = &r.json()["error"];
    assert_eq!(e["errors"][0]["reason"], "forbidden");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("compute.instances.updateNetworkInterface"));
    // Expired tokens: 401.
    request("POST", &g.admin("/admin/gce/tokens/expire"), &[], None);
    assert_eq!(
        request("GET", &url, &[("Authorization", &auth)], None).status,
        401
    );
    assert_eq!(g.get("zones/us-central1-a/instances/node-a").status, 401);
    // 404s.
    let t = mint(
        SA,
        json!(["https://www.googleapis.com/auth/cloud-platform"]),
        600,
    );
    let h = [("Authorization", format!("Bearer {t}"))];
    let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let r = request(
        "GET",
        &g.compute("zones/us-central1-a/instances/nope"),
        &h,
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["errors"][0]["reason"], "notFound");
    assert_eq!(
        request("GET", &g.compute("zones/mars-1/instances/node-a"), &h, None).status,
        404
    );
}

#[test]
fn fingerprints_patch_semantics_and_operation_lifecycle() {
    let sim = start(|w| {
        let g = w.gce.as_mut().unwrap();
        g.operations.pending_ms = 300;
        g.operations.running_ms = 400;
    });
    let g = Gce { sim: &sim };
    let nic = "zones/us-central1-a/instances/node-a/updateNetworkInterface?networkInterface=nic0";
    // [§2.4] fingerprint missing: 400; stale: 412 conditionNotMet.
    let r = g.call("PATCH", nic, Some(r#"{"aliasIpRanges": []}"#));
    assert_eq!(r.status, 400);
    let r = g.call(
        "PATCH",
        nic,
        Some(r#"{"fingerprint": "AAAAAAAAAAA=", "aliasIpRanges": []}"#),
    );
    assert_eq!(r.status, 412);
    assert_eq!(r.json()["error"]["errors"][0]["reason"], "conditionNotMet");
    // Fields that cannot be patched: 400 invalid.
    let fp = g.nic0("us-central1-a", "node-a")["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let r = g.call(
        "PATCH",
        nic,
        Some(&json!({"fingerprint": fp, "accessConfigs": []}).to_string()),
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("resource.accessConfigs"));
    // Out of the subnet: 400.
    let r = g.patch_aliases("us-central1-a", "node-a", &["192.168.1.1/32"], "");
    assert_eq!(r.status, 400, "{}", r.body);
    // A present list replaces the whole list; the change happens when the op is DONE.
    let t0 = Instant::now();
    let op = g
        .patch_aliases(
            "us-central1-a",
            "node-a",
            &["10.128.0.100/32", "10.128.0.105/32"],
            "",
        )
        .json();
    assert_eq!(op["status"], "PENDING");
    assert_eq!(op["operationType"], "updateNetworkInterface");
    let name = op["name"].as_str().unwrap().to_string();
    assert_eq!(
        g.aliases("us-central1-a", "node-a"),
        ["10.128.0.100/32", "10.200.0.8/29"]
    );
    let get = |n: &str| g.get(&format!("zones/us-central1-a/operations/{n}")).json();
    std::thread::sleep(Duration::from_millis(450));
    assert_eq!(get(&name)["status"], "RUNNING");
    let done = g.wait(&op);
    assert!(t0.elapsed() >= Duration::from_millis(650));
    assert_eq!(done["progress"], 100);
    assert!(done["endTime"].is_string());
    assert_eq!(
        g.aliases("us-central1-a", "node-a"),
        ["10.128.0.100/32", "10.128.0.105/32"]
    );
    let fp2 = g.nic0("us-central1-a", "node-a")["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fp, fp2, "fingerprint changes on every NIC change");
    // Absent aliasIpRanges: unchanged. Empty list: cleared (and the field disappears).
    let op = g
        .call("PATCH", nic, Some(&json!({"fingerprint": fp2}).to_string()))
        .json();
    g.wait(&op);
    assert_eq!(g.aliases("us-central1-a", "node-a").len(), 2);
    g.wait(&g.patch_aliases("us-central1-a", "node-a", &[], "").json());
    assert!(g
        .nic0("us-central1-a", "node-a")
        .get("aliasIpRanges")
        .is_none());
    assert_eq!(get("no-such-op").status_or_404(), 404);
}

trait Status404 {
    fn status_or_404(&self) -> u16;
}
impl Status404 for Value {
    fn status_or_404(&self) -> u16 {
        self["error"]["code"].as_u64().unwrap_or(200) as u16
    }
}

#[test]
fn request_id_dedup_and_ip_in_use_inside_done() {
    let sim = start(fast);
    let g = Gce { sim: &sim };
    let rid = "&requestId=6c9e1d2a-8a9e-4f43-9b1b-2f4f7b9f2c11";
    let r = g.patch_aliases(
        "us-central1-a",
        "node-a",
        &["10.200.0.8/29"],
        "&requestId=nope",
    );
    assert_eq!(r.status, 400);
    let r = g.patch_aliases(
        "us-central1-a",
        "node-a",
        &["10.200.0.8/29"],
        "&requestId=00000000-0000-0000-0000-000000000000",
    );
    assert_eq!(r.status, 400);
    // Same requestId twice → same operation, applied once (the retry's body differs and its
    // fingerprint is stale by now: still the same operation back, no 412).
    let fp = g.nic0("us-central1-a", "node-a")["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"fingerprint": fp, "aliasIpRanges": [{"ipCidrRange": "10.128.0.100/32"}]})
        .to_string();
    let path = format!(
        "zones/us-central1-a/instances/node-a/updateNetworkInterface?networkInterface=nic0{rid}"
    );
    let first = g.call("PATCH", &path, Some(&body)).json();
    g.wait(&first);
    let body2 = json!({"fingerprint": fp, "aliasIpRanges": []}).to_string();
    let again = g.call("PATCH", &path, Some(&body2));
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["name"], first["name"]);
    assert_eq!(
        again.json()["clientOperationId"],
        "6c9e1d2a-8a9e-4f43-9b1b-2f4f7b9f2c11"
    );
    assert_eq!(g.aliases("us-central1-a", "node-a"), ["10.128.0.100/32"]);
    let ops = request("GET", &g.admin("/admin/gce/state"), &[], None).json()["operations"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(ops, 1);
    // [§4] Add to node-b before node-a released it: accepted (200), fails when executed.
    let r = g.patch_aliases("us-central1-b", "node-b", &["10.128.0.100/32"], "");
    assert_eq!(r.status, 200);
    let done = g.wait(&r.json());
    assert_eq!(
        done["error"]["errors"][0]["code"],
        "IP_IN_USE_BY_ANOTHER_RESOURCE"
    );
    assert_eq!(
        done["error"]["errors"][0]["message"],
        "IP '10.128.0.100/32' is already being used by another resource."
    );
    assert!(g.aliases("us-central1-b", "node-b").is_empty());
    // A range overlapping another VM's primary IP is in use too.
    let done = g.wait(
        &g.patch_aliases("us-central1-b", "node-b", &["10.128.0.8/29"], "")
            .json(),
    );
    assert_eq!(
        done["error"]["errors"][0]["code"],
        "IP_IN_USE_BY_ANOTHER_RESOURCE"
    );
}

#[test]
fn access_configs_and_addresses() {
    let sim = start(fast);
    let g = Gce { sim: &sim };
    let addr = || g.get("regions/us-central1/addresses/vip-ext").json();
    assert_eq!(addr()["status"], "IN_USE");
    assert!(addr()["users"][0]
        .as_str()
        .unwrap()
        .ends_with("/instances/node-a"));
    assert_eq!(
        g.get("regions/us-central1/addresses/vip-ext-2").json()["status"],
        "RESERVED"
    );
    assert!(g
        .get("regions/us-central1/addresses/vip-ext-2")
        .json()
        .get("users")
        .is_none());
    assert_eq!(
        g.get("regions/us-central1/addresses/vip-int").json()["status"],
        "IN_USE"
    );
    let ac = |inst: &str, zone: &str, q: &str| format!("zones/{zone}/instances/{inst}/{q}");
    // Second access config on a NIC: 400 badRequest.
    let r = g.call(
        "POST",
        &ac(
            "node-a",
            "us-central1-a",
            "addAccessConfig?networkInterface=nic0",
        ),
        Some(r#"{"natIP": "203.0.113.11"}"#),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["errors"][0]["reason"], "badRequest");
    // Unknown name: DONE, nothing removed.
    let op = g
        .call(
            "POST",
            &ac(
                "node-a",
                "us-central1-a",
                "deleteAccessConfig?networkInterface=nic0&accessConfig=external-nat",
            ),
            None,
        )
        .json();
    assert!(g.wait(&op).get("error").is_none());
    assert_eq!(addr()["status"], "IN_USE");
    // Real name: released.
    let op = g
        .call(
            "POST",
            &ac(
                "node-a",
                "us-central1-a",
                "deleteAccessConfig?networkInterface=nic0&accessConfig=External%20NAT",
            ),
            None,
        )
        .json();
    g.wait(&op);
    assert_eq!(addr()["status"], "RESERVED");
    assert!(g
        .nic0("us-central1-a", "node-a")
        .get("accessConfigs")
        .is_none());
    assert_eq!(
        g.md_get("node-a", "instance/network-interfaces/0/access-configs/")
            .body,
        ""
    );
    // Unknown natIP: 400; node-c (no access config) takes the static one.
    let r = g.call(
        "POST",
        &ac(
            "node-c",
            "us-central1-c",
            "addAccessConfig?networkInterface=nic0",
        ),
        Some(r#"{"natIP": "192.0.2.77"}"#),
    );
    assert_eq!(r.status, 400);
    let op = g
        .call(
            "POST",
            &ac(
                "node-c",
                "us-central1-c",
                "addAccessConfig?networkInterface=nic0",
            ),
            Some(r#"{"name": "External NAT", "natIP": "203.0.113.10", "type": "ONE_TO_ONE_NAT"}"#),
        )
        .json();
    assert!(g.wait(&op).get("error").is_none());
    assert!(addr()["users"][0]
        .as_str()
        .unwrap()
        .ends_with("/instances/node-c"));
    assert_eq!(
        g.md_get(
            "node-c",
            "instance/network-interfaces/0/access-configs/0/external-ip"
        )
        .body,
        "203.0.113.10"
    );
    let list = g
        .get("regions/us-central1/addresses?filter=status%20%3D%20RESERVED")
        .json();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vip-ext-2"]);
}

#[test]
fn list_and_aggregated_filters() {
    let sim = start(fast);
    let g = Gce { sim: &sim };
    let names = |v: &Value| -> Vec<String> {
        let mut out = Vec::new();
        if let Some(items) = v["items"].as_object() {
            for scoped in items.values() {
                for i in scoped["instances"].as_array().into_iter().flatten() {
                    out.push(i["name"].as_str().unwrap().to_string());
                }
            }
        } else if let Some(items) = v["items"].as_array() {
            out.extend(
                items
                    .iter()
                    .map(|i| i["name"].as_str().unwrap().to_string()),
            );
        }
        out
    };
    let agg = |f: &str| {
        g.get(&format!(
            "aggregated/instances?filter={}",
            cloudvip_sim::http::percent_encode(f)
        ))
        .json()
    };
    assert_eq!(names(&agg(r#"name = "node-b""#)), ["node-b"]);
    assert_eq!(names(&agg("name eq node-b")), ["node-b"]);
    assert_eq!(names(&agg(r#"name eq ".*\bnode\-c\b.*""#)), ["node-c"]);
    assert_eq!(names(&agg(r#"labels.cluster = "ha1""#)).len(), 3);
    assert_eq!(names(&agg(r#"labels.cluster = "ha2""#)).len(), 0);
    let v = agg(r#"name = "node-b""#);
    assert_eq!(
        v["items"]["zones/us-central1-a"]["warning"]["code"],
        "NO_RESULTS_ON_PAGE"
    );
    let r = g.get("aggregated/instances?filter=name%20%3D");
    assert_eq!(r.status, 400);
    let l = g
        .get("zones/us-central1-a/instances?filter=name%20%3D%20%22node-b%22")
        .json();
    assert!(l.get("items").is_none());
    // Pagination.
    let p1 = g.get("aggregated/instances?maxResults=2").json();
    assert_eq!(names(&p1).len(), 2);
    let tok = p1["nextPageToken"].as_str().unwrap();
    let p2 = g
        .get(&format!(
            "aggregated/instances?maxResults=2&pageToken={tok}"
        ))
        .json();
    assert_eq!(names(&p2).len(), 1);
    assert!(p2.get("nextPageToken").is_none());
}

#[test]
fn faults_of_every_kind() {
    let sim = start(fast);
    let g = Gce { sim: &sim };
    let get = "zones/us-central1-a/instances/node-a";
    // Latency.
    g.fault(json!({"kind": "latency", "ms": 400, "api": "compute.instances.get", "count": 1}));
    let t0 = Instant::now();
    assert_eq!(g.get(get).status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(400));
    let t0 = Instant::now();
    g.get(get);
    assert!(t0.elapsed() < Duration::from_millis(400), "count exhausted");
    // 5xx in GCE's error format, then rate limit as 403 rateLimitExceeded.
    g.fault(json!({"kind": "error", "status": 503, "service": "compute", "count": 1}));
    let r = g.get(get);
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], 503);
    g.fault(json!({"kind": "rate_limit", "service": "compute", "count": 1}));
    let r = g.get(get);
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["error"]["errors"][0]["reason"],
        "rateLimitExceeded"
    );
    assert_eq!(g.get(get).status, 200);
    // Fingerprint race: the PATCH gets 412.
    g.fault(json!({"kind": "fingerprint_race", "instance": "node-a", "count": 1}));
    assert_eq!(
        g.patch_aliases("us-central1-a", "node-a", &[], "").status,
        412
    );
    // Operation stuck in RUNNING until the rule is deleted.
    let id = g.fault(
        json!({"kind": "operation_stuck", "api": "compute.instances.updateNetworkInterface"}),
    );
    let op = g
        .patch_aliases("us-central1-a", "node-a", &["10.128.0.100/32"], "")
        .json();
    std::thread::sleep(Duration::from_millis(300));
    let name = op["name"].as_str().unwrap();
    assert_eq!(
        g.get(&format!("zones/us-central1-a/operations/{name}"))
            .json()["status"],
        "RUNNING"
    );
    assert_eq!(g.aliases("us-central1-a", "node-a").len(), 2);
    request(
        "DELETE",
        &g.admin(&format!("/admin/faults/{id}")),
        &[],
        None,
    );
    assert!(g.wait(&op).get("error").is_none());
    assert_eq!(g.aliases("us-central1-a", "node-a"), ["10.128.0.100/32"]);
    // Operation ending in error: DONE with the error, change not applied.
    g.fault(json!({"kind": "operation_error", "code": "INTERNAL_ERROR", "count": 1}));
    let done = g.wait(&g.patch_aliases("us-central1-a", "node-a", &[], "").json());
    assert_eq!(done["error"]["errors"][0]["code"], "INTERNAL_ERROR");
    assert_eq!(g.aliases("us-central1-a", "node-a"), ["10.128.0.100/32"]);
    // Reset: the client sees a transport error, no HTTP answer.
    g.fault(json!({"kind": "reset", "api": "compute.instances.get", "count": 1}));
    let url = g.compute(get);
    let auth = format!("Bearer {TOKEN}");
    assert!(try_request(
        "GET",
        &url,
        &[("Authorization", &auth)],
        None,
        Duration::from_secs(5)
    )
    .is_err());
    // Hang past the client's timeout.
    g.fault(json!({"kind": "hang", "ms": 2000, "api": "compute.instances.get", "count": 1}));
    let t0 = Instant::now();
    let e = try_request(
        "GET",
        &url,
        &[("Authorization", &auth)],
        None,
        Duration::from_millis(500),
    );
    assert!(e.is_err());
    assert!(t0.elapsed() < Duration::from_millis(1500));
    // Metadata server down for node-a only.
    let id = g.fault(json!({"kind": "down", "service": "metadata", "instance": "node-a"}));
    let md = format!("{}/computeMetadata/v1/instance/name", g.md("node-a"));
    assert!(try_request(
        "GET",
        &md,
        &[("Metadata-Flavor", "Google")],
        None,
        Duration::from_secs(2)
    )
    .is_err());
    assert_eq!(g.md_get("node-b", "instance/name").status, 200);
    request(
        "DELETE",
        &g.admin(&format!("/admin/faults/{id}")),
        &[],
        None,
    );
    assert_eq!(g.md_get("node-a", "instance/name").body, "node-a");
    // The log marks the faulted requests and tells API calls from metadata calls.
    let log = g.log();
    assert!(log
        .iter()
        .any(|e| e["status"].is_null() && !e["faults"].as_array().unwrap().is_empty()));
    assert!(log
        .iter()
        .any(|e| e["api_call"] == false && e["service"] == "metadata"));
    assert!(log
        .iter()
        .any(|e| e["api_call"] == true && e["api"] == "compute.instances.get"));
}

#[test]
fn admin_console_change_bumps_fingerprint_and_metadata() {
    let sim = start(fast);
    let g = Gce { sim: &sim };
    let fp = g.nic0("us-central1-a", "node-a")["fingerprint"].clone();
    let r = request(
        "POST",
        &g.admin("/admin/gce/instances/node-a/nics/nic0"),
        &[],
        Some(
            r#"{"aliasIpRanges": [{"ipCidrRange": "10.200.0.8/29", "subnetworkRangeName": "vips"}]}"#,
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(g.nic0("us-central1-a", "node-a")["fingerprint"], fp);
    assert_eq!(g.aliases("us-central1-a", "node-a"), ["10.200.0.8/29"]);
    assert_eq!(
        g.md_get("node-a", "instance/network-interfaces/0/ip-aliases/0")
            .body,
        "10.200.0.8/29"
    );
    let state = request("GET", &g.admin("/admin/state"), &[], None).json();
    assert_eq!(state["gce"]["instances"][0]["name"], "node-a");
}

#[test]
fn busy_reject_mode() {
    let sim = start(|w| {
        let g = w.gce.as_mut().unwrap();
        g.operations.pending_ms = 300;
        g.operations.busy = cloudvip_sim::gce::world::Busy::Reject;
    });
    let g = Gce { sim: &sim };
    let op = g
        .patch_aliases("us-central1-a", "node-a", &["10.128.0.100/32"], "")
        .json();
    let r = g.patch_aliases("us-central1-a", "node-a", &[], "");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["errors"][0]["reason"], "resourceNotReady");
    g.wait(&op);
    assert_eq!(
        g.patch_aliases("us-central1-a", "node-a", &[], "").status,
        200
    );
}

#[test]
fn shared_metadata_listener_by_source_address() {
    let sim = start(|w| {
        let g = w.gce.as_mut().unwrap();
        g.metadata_listen = Some("127.0.0.1:0".parse().unwrap());
        g.instances[0].metadata_source = Some("127.0.0.1".parse().unwrap());
        g.instances[1].metadata_source = Some("127.0.0.2".parse().unwrap());
    });
    let url = sim.endpoints()["gce"]["metadata_shared"]
        .as_str()
        .unwrap()
        .to_string();
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let ask = |src: [u8; 4]| {
        use std::io::{Read, Write};
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&std::net::SocketAddr::from((src, 0)).into())
            .unwrap();
        s.connect(&addr.into()).unwrap();
        let mut s: std::net::TcpStream = s.into();
        s.write_all(b"GET /computeMetadata/v1/instance/name HTTP/1.1\r\nHost: x\r\nMetadata-Flavor: Google\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.rsplit("\r\n\r\n").next().unwrap().to_string()
    };
    assert_eq!(ask([127, 0, 0, 1]), "node-a");
    assert_eq!(ask([127, 0, 0, 2]), "node-b");
}

#[test]
fn oauth_token_endpoint_and_self_signed_jwt() {
    let sim = start(fast);
    let g = Gce { sim: &sim };
    let key = request(
        "POST",
        &g.admin(&format!("/admin/gce/service-accounts/{SA}/keys")),
        &[],
        None,
    )
    .json();
    for f in [
        "type",
        "project_id",
        "private_key_id",
        "private_key",
        "client_email",
        "client_id",
        "token_uri",
    ] {
        assert!(key[f].is_string(), "key file lacks {f}");
    }
    assert_eq!(key["type"], "service_account");
    assert!(key["private_key"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    let token_uri = key["token_uri"].as_str().unwrap().to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |aud: &str, exp: u64| json!({"iss": SA, "scope": "https://www.googleapis.com/auth/cloud-platform", "aud": aud, "iat": now, "exp": exp});
    let grant = |jwt: &str| {
        request(
            "POST",
            &token_uri,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(&format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}"
            )),
        )
    };
    let good = sign(
        &key,
        &claims("https://oauth2.googleapis.com/token", now + 3600),
    );
    let r = grant(&good);
    assert_eq!(r.status, 200, "{}", r.body);
    let t = r.json();
    assert_eq!(t["token_type"], "Bearer");
    let tok = t["access_token"].as_str().unwrap().to_string();
    let url = g.compute("zones/us-central1-a/instances/node-a");
    assert_eq!(
        request(
            "GET",
            &url,
            &[("Authorization", &format!("Bearer {tok}"))],
            None
        )
        .status,
        200
    );
    // Self-signed JWT straight on the API.
    let sj = sign(&key, &claims("https://compute.googleapis.com/", now + 3600));
    assert_eq!(
        request(
            "GET",
            &url,
            &[("Authorization", &format!("Bearer {sj}"))],
            None
        )
        .status,
        200
    );
    // Wrong audience, too long-lived, tampered signature.
    let r = grant(&sign(
        &key,
        &claims("https://example.invalid/token", now + 3600),
    ));
    assert_eq!(
        (r.status, r.json()["error"].as_str().unwrap()),
        (400, "invalid_grant")
    );
    let r = grant(&sign(
        &key,
        &claims("https://oauth2.googleapis.com/token", now + 7200),
    ));
    assert_eq!(r.status, 400);
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[2] = parts[2].chars().rev().collect();
    let r = grant(&parts.join("."));
    assert_eq!(r.json()["error_description"], "Invalid JWT Signature.");
    let r = request("POST", &token_uri, &[], Some("grant_type=password"));
    assert_eq!(r.json()["error"], "unsupported_grant_type");
}

fn sign(key: &Value, claims: &Value) -> String {
    use base64::Engine;
    use rustls::pki_types::pem::PemObject;
    let pem = key["private_key"].as_str().unwrap();
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap();
    let kp = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let h =
        e.encode(json!({"alg": "RS256", "typ": "JWT", "kid": key["private_key_id"]}).to_string());
    let c = e.encode(claims.to_string());
    let msg = format!("{h}.{c}");
    let mut sig = vec![0; kp.public().modulus_len()];
    kp.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        msg.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{msg}.{}", e.encode(sig))
}

#[test]
fn tls_with_generated_ca() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "compute.googleapis.com".to_string(),
        "oauth2.googleapis.com".to_string(),
        "127.0.0.1".to_string(),
    ];
    let gen = cloudvip_sim::tls::generate(dir.path(), &names).unwrap();
    let sim = start(|w| {
        w.server.tls_cert = Some(gen.cert.clone());
        w.server.tls_key = Some(gen.key.clone());
    });
    let api = sim.endpoints()["gce"]["api"].as_str().unwrap().to_string();
    assert!(api.starts_with("https://"));
    let addr: std::net::SocketAddr = api.trim_start_matches("https://").parse().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::CertificateDer::pem_file_iter(&gen.ca_cert)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    use rustls::pki_types::pem::PemObject;
    roots.add(ca).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("compute.googleapis.com").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(tls, "GET /compute/v1/projects/my-project/zones/us-central1-a/instances/node-a HTTP/1.1\r\nHost: compute.googleapis.com\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = tls.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"name\": \"node-a\""));
}

// ---- issue 10: what clients we did not write need -------------------------------------

#[test]
fn metadata_token_with_a_url_in_the_query_is_plain_json() {
    let sim = start(fast);
    let g = Gce { sim: &sim };
    // google-auth asks for scopes as a URL in the query (fix 2) and, before 2.23, compares
    // the Content-Type for equality (fix 1a).
    let r = g.md_get(
        "node-a",
        "instance/service-accounts/default/token?scopes=https://www.googleapis.com/auth/compute",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let tok = r.json()["access_token"].as_str().unwrap().to_string();
    let r = request(
        "GET",
        &g.compute("zones/us-central1-a/instances/node-a"),
        &[("Authorization", &format!("Bearer {tok}"))],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let log = g.log();
    assert!(log.iter().any(|e| e["api"] == "metadata.token"
        && e["path"] == "/computeMetadata/v1/instance/service-accounts/default/token"
        && e["query"] == "scopes=https://www.googleapis.com/auth/compute"));
}

#[test]
fn discovery_document_at_both_googleapiclient_urls() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("compute.v1.json");
    let text = r#"{"kind":"discovery#restDescription","name":"compute","version":"v1","rootUrl":"https://compute.googleapis.com/","servicePath":"compute/v1/"}"#;
    std::fs::write(&doc, text).unwrap();
    let d = doc.clone();
    let sim = start(move |w| w.gce.as_mut().unwrap().discovery_document = Some(d.clone()));
    let g = Gce { sim: &sim };
    // Public, as Google's: no Authorization header.
    for path in [
        "/discovery/v1/apis/compute/v1/rest",
        "/$discovery/rest?version=v1",
        "/%24discovery/rest?version=v1",
    ] {
        let r = request("GET", &format!("{}{path}", g.api()), &[], None);
        assert_eq!((r.status, r.body.as_str()), (200, text), "{path}");
        assert!(r
            .header("Content-Type")
            .unwrap()
            .starts_with("application/json"));
    }
    for path in [
        "/$discovery/rest?version=v2",
        "/discovery/v1/apis/storage/v1/rest",
    ] {
        let r = request("GET", &format!("{}{path}", g.api()), &[], None);
        assert_eq!(r.status, 404, "{path}");
    }
    let log = g.log();
    assert!(log
        .iter()
        .filter(|e| e["service"] == "discovery")
        .all(|e| e["api_call"] == false && e["api"] == "discovery.apis.getRest"));
    assert_eq!(
        log.iter().filter(|e| e["service"] == "discovery").count(),
        3
    );
    drop(sim);
    // Without a document both answer 404; a wrong document stops the start.
    let sim = start(fast);
    let g = Gce { sim: &sim };
    let r = request(
        "GET",
        &format!("{}/discovery/v1/apis/compute/v1/rest", g.api()),
        &[],
        None,
    );
    assert_eq!(r.status, 404);
    std::fs::write(&doc, r#"{"name":"storage","version":"v1"}"#).unwrap();
    let mut w = example_world();
    w.gce.as_mut().unwrap().discovery_document = Some(doc);
    let e = cloudvip_sim::Sim::start(w).err().unwrap();
    assert!(e.contains("not the compute v1 discovery document"), "{e}");
}

#[test]
fn unknown_routes_are_not_counted_as_api_calls() {
    let sim = start(fast);
    let g = Gce { sim: &sim };
    assert_eq!(
        g.get("zones/us-central1-a/instances/node-a/nothing").status,
        404
    );
    let r = request("GET", &format!("{}/auth/compute", g.api()), &[], None);
    assert_eq!(r.status, 404);
    assert_eq!(g.get("zones/us-central1-a/instances/node-a").status, 200);
    let log = g.log();
    assert_eq!(log.len(), 3);
    let calls: Vec<&Value> = log.iter().filter(|e| e["api_call"] == true).collect();
    assert_eq!(calls.len(), 1, "{log:?}");
    assert_eq!(calls[0]["api"], "compute.instances.get");
}

#[test]
fn instance_label_and_metadata_fingerprints_are_distinct() {
    let sim = start(|w| {
        fast(w);
        let i = &mut w.gce.as_mut().unwrap().instances;
        i[2].labels.clear();
        i[1].labels.insert("tier".into(), "db".into());
    });
    let g = Gce { sim: &sim };
    let a = g.instance("us-central1-a", "node-a");
    let b = g.instance("us-central1-b", "node-b");
    let c = g.instance("us-central1-c", "node-c");
    assert_ne!(a["fingerprint"], a["metadata"]["fingerprint"]);
    // labelFingerprint follows the labels: the unlabelled value GCE shows, and one value
    // per label set.
    assert_eq!(c["labelFingerprint"], "42WmSpB8rSM=");
    assert_ne!(a["labelFingerprint"], c["labelFingerprint"]);
    assert_ne!(a["labelFingerprint"], b["labelFingerprint"]);
    let sim2 = start(fast);
    let a2 = Gce { sim: &sim2 }.instance("us-central1-a", "node-a");
    assert_eq!(a["labelFingerprint"], a2["labelFingerprint"]);
    // A change to the instance rolls its fingerprint, not its metadata's.
    let r = g.patch_aliases("us-central1-a", "node-a", &["10.128.0.100/32"], "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(g.wait(&r.json()).get("error").is_none());
    let a3 = g.instance("us-central1-a", "node-a");
    assert_ne!(a3["fingerprint"], a["fingerprint"]);
    assert_eq!(a3["metadata"]["fingerprint"], a["metadata"]["fingerprint"]);
    assert_eq!(a3["labelFingerprint"], a["labelFingerprint"]);
}

#[test]
fn ipv6_aliases_are_refused_as_gce_refuses_them() {
    let sim = start(fast);
    let g = Gce { sim: &sim };
    let before = g.nic0("us-central1-a", "node-a");
    let fp = before["fingerprint"].as_str().unwrap().to_string();
    let patch = |body: Value| {
        g.call(
            "PATCH",
            "zones/us-central1-a/instances/node-a/updateNetworkInterface?networkInterface=nic0",
            Some(&body.to_string()),
        )
    };
    // An IPv6 range in aliasIpRanges: that field is IPv4 only.
    let r = patch(json!({"fingerprint": fp, "aliasIpRanges": [{"ipCidrRange": "fd00::5/128"}]}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("aliasIpv6Ranges"), "{}", r.body);
    // A chosen address in aliasIpv6Ranges: GCE allocates, only a netmask may be sent.
    for cidr in ["fd00::5/128", "fd00::5", "2600:1900:4000::/96"] {
        let r = patch(json!({"fingerprint": fp, "aliasIpv6Ranges": [{"ipCidrRange": cidr}]}));
        assert_eq!(r.status, 400, "{cidr}: {}", r.body);
        assert!(r.body.contains("Only a netmask"), "{}", r.body);
    }
    // A netmask asks for an allocation; the NIC is IPV4_ONLY here.
    let r = patch(json!({"fingerprint": fp, "aliasIpv6Ranges": [{"ipCidrRange": "/96"}]}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("IPV4_ONLY"), "{}", r.body);
    // Nothing changed, not even the fingerprint; an empty list asks for nothing.
    assert_eq!(g.nic0("us-central1-a", "node-a"), before);
    let r = patch(json!({"fingerprint": fp, "aliasIpv6Ranges": []}));
    assert_eq!(r.status, 200, "{}", r.body);
}
