//! The AWS client layer (`cloudvip::cloud::aws`) against the emulator in process, over
//! loopback only: IMDSv2 tokens and instance-profile credentials, the instance described,
//! a secondary private IP assigned and unassigned, an Elastic IP associated, a route
//! replaced (also in another account's table through AssumeRole), each checked in the
//! emulator's own state (`/admin/aws/state`, never lagged). Also: a denied call names the
//! action, throttling is retried inside the deadline, expired IMDS tokens and expired
//! credentials are replaced once, a refused dry run and an accepted one, and a credentials
//! file others can write is refused.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use cloudvip::cloud::aws::client::{self, Ec2, Endpoint};
use cloudvip::cloud::aws::credentials::{AssumeRole, Provider, Source};
use cloudvip::cloud::aws::imds::Imds;
use cloudvip::cloud::aws::model::{Destination, RouteState, Target};
use cloudvip::cloud::aws::query::{self, Eip};
use cloudvip::cloud::aws::sigv4::Keys;
use cloudvip::cloud::secret::Secret;
use cloudvip::cloud::CloudError;
use cloudvip::deadline::Deadline;
use cloudvip::http::{Http, HttpConfig, Request};
use serde_json::{json, Value};

use crate::clouds::aws::route;

const NODE_B: &str = "i-0c10d000000000002";
const ENI_A: &str = "eni-0c10d0000000000e1";
const ENI_B: &str = "eni-0c10d0000000000e2";
const MAC_B: &str = "02:66:00:00:00:02";
const VIP: &str = "10.0.1.100";
const NODE_B_IP: &str = "10.0.1.12";
const EIP_VIP: &str = "eipalloc-0c10d00000000000f1";
const EIP_SPARE: &str = "eipalloc-0c10d00000000000f2";
const RTB: &str = "rtb-0c10d0000000000c1";
const RTB_OTHER: &str = "rtb-0c10d0000000000c2";
const OVERLAY: &str = "192.168.100.10/32";
const NEW_ROUTE: &str = "192.168.100.99/32";
const ROLE_OTHER: &str = "arn:aws:iam::444455556666:role/rtb-editor";

struct Lab {
    sim: cloudvip_sim::SimHandle,
    admin: String,
    api: String,
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn deadline(secs: u64) -> Deadline {
    Deadline::for_timeout(Some(Duration::from_secs(secs)))
}

impl Lab {
    fn start() -> Lab {
        Lab::start_with(|_| {})
    }

    fn start_with(edit: impl FnOnce(&mut cloudvip_sim::aws::AwsWorld)) -> Lab {
        let (sim, api) = crate::clouds::aws::start(edit);
        Lab {
            admin: sim.admin_url(),
            api,
            sim,
        }
    }

    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        crate::clouds::admin(&self.admin, method, path, body)
    }

    fn state(&self) -> Value {
        self.admin("GET", "/admin/aws/state", None)
    }

    fn calls(&self, key: &str) -> u64 {
        self.state()["calls"][key].as_u64().unwrap_or(0)
    }

    /// Requests the emulator logged for `api` (faults included), by status.
    fn logged(&self, api: &str) -> Vec<u64> {
        self.admin("GET", "/admin/log", None)["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["api"] == api)
            .map(|e| e["status"].as_u64().unwrap_or(0))
            .collect()
    }

    fn settle(&self) {
        self.admin("POST", "/admin/aws/settle", None);
    }

    fn metadata(&self, node: &str) -> String {
        self.sim.endpoints()["aws"]["metadata"][node]["endpoint"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The client of node-b, credentials from `source` (its instance profile by default).
    fn client(&self, source: Source, route_role: Option<&str>) -> Ec2 {
        self.cached_client(source, route_role, None)
    }

    /// The same, caching temporary credentials in the state directory `state`.
    fn cached_client(
        &self,
        source: Source,
        route_role: Option<&str>,
        state: Option<&std::path::Path>,
    ) -> Ec2 {
        let route_creds = route_role
            .map(|r| Provider::new(source.clone(), Some(AssumeRole::new(r))).with_cache(state));
        Ec2 {
            http: Http::new(&HttpConfig::default()).unwrap(),
            imds: Imds::new(Some(&self.metadata("node-b"))),
            creds: Provider::new(source, None).with_cache(state),
            route_creds,
            ec2: Endpoint::ec2("eu-west-1", Some(&self.api)),
            sts: Endpoint::sts("eu-west-1", Some(&self.api)),
        }
    }
}

/// `f` under the deadline of a `secs`-second action; it must return by that deadline (a
/// little scheduling slack allowed).
fn by_the_deadline<T>(secs: u64, f: impl FnOnce(&Deadline) -> T) -> T {
    let d = deadline(secs);
    let budget = d.remaining();
    let t0 = Instant::now();
    let out = f(&d);
    assert!(
        t0.elapsed() <= budget + Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    out
}

fn eni<'a>(st: &'a Value, id: &str) -> &'a Value {
    st["enis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap()
}

fn eip<'a>(st: &'a Value, alloc: &str) -> &'a Value {
    st["elastic_ips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["allocation_id"] == alloc)
        .unwrap()
}

fn holds(st: &Value, eni_id: &str, addr: &str) -> bool {
    eni(st, eni_id)["secondary_ips"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i == addr)
}

/// IMDSv2 identity and ENI, instance-profile credentials, DescribeInstances, then the
/// VIP moved to node-b in one AssignPrivateIpAddresses (its Elastic IP follows) and
/// unassigned again; IMDS shows the move once its lag has passed.
#[test]
fn secondary_ip_moves_with_imds_credentials() {
    let lab = Lab::start();
    let mut c = lab.client(Source::Instance, None);
    let d = deadline(20);
    let id = c.imds.identity(&c.http, &d).unwrap();
    assert_eq!(
        (
            id.instance_id.as_str(),
            id.region.as_str(),
            id.availability_zone.as_str()
        ),
        (NODE_B, "eu-west-1", "eu-west-1a")
    );
    let e = c.imds.eni(&c.http, &MAC_B.to_uppercase(), &d).unwrap();
    assert_eq!(e.eni_id, ENI_B);
    assert_eq!(e.subnet_id, "subnet-0c10d0000000000b1");
    assert_eq!(e.local_ipv4s, vec![ip(NODE_B_IP)]);
    assert!(matches!(
        c.imds.eni(&c.http, "02:00:00:00:00:99", &d),
        Err(CloudError::NotFound(_))
    ));
    let is = c.describe_instances(&[NODE_B], &d).unwrap();
    assert_eq!(is.len(), 1);
    assert_eq!(is[0].zone, "eu-west-1a");
    assert_eq!(is[0].enis[0].id, ENI_B);
    assert_eq!(is[0].enis[0].instance_id.as_deref(), Some(NODE_B));
    assert!(
        lab.calls("imds:credentials") >= 1,
        "the instance profile signed"
    );

    let holders = c.enis_holding(ip(VIP), &d).unwrap();
    assert_eq!(
        holders.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        [ENI_A]
    );
    c.assign_private_ips(ENI_B, &[ip(VIP)], true, &d).unwrap();
    let st = lab.state();
    assert!(
        holds(&st, ENI_B, VIP) && !holds(&st, ENI_A, VIP),
        "{}",
        st["enis"]
    );
    assert_eq!(
        eip(&st, EIP_VIP)["association"]["eni"],
        ENI_B,
        "the EIP follows"
    );

    // IMDS lags the change (world default 1 s): polled until it shows it.
    let before = lab.calls("imds:get");
    assert!(c
        .imds
        .wait_for_ip(&c.http, MAC_B, ip(VIP), true, &d)
        .unwrap());
    assert!(
        lab.calls("imds:get") > before + 1,
        "it was polled, not seen at once"
    );
    assert_eq!(
        c.imds
            .eip_target(&c.http, MAC_B, ip("203.0.113.10"), &d)
            .unwrap(),
        Some(ip(VIP)),
        "the EIP followed, as IMDS shows"
    );
    assert_eq!(
        c.imds
            .eip_target(&c.http, MAC_B, ip("203.0.113.11"), &d)
            .unwrap(),
        None
    );
    lab.settle();
    let b = c
        .describe_network_interfaces(&query::describe_network_interfaces(&[ENI_B]), &d)
        .unwrap();
    let vip = b[0].private_ips.iter().find(|p| p.ip == ip(VIP)).unwrap();
    assert!(!vip.primary);
    assert_eq!(vip.public.as_ref().unwrap().public_ip, ip("203.0.113.10"));
    assert_eq!(
        c.imds.local_ipv4s(&c.http, MAC_B, &d).unwrap(),
        vec![ip(NODE_B_IP), ip(VIP)]
    );

    c.unassign_private_ips(ENI_B, &[ip(VIP)], &d).unwrap();
    assert!(c
        .imds
        .wait_for_ip(&c.http, MAC_B, ip(VIP), false, &d)
        .unwrap());
    let st = lab.state();
    assert!(!holds(&st, ENI_B, VIP) && !holds(&st, ENI_A, VIP));
    assert!(
        eip(&st, EIP_VIP)["association"].is_null(),
        "unassigning frees its EIP"
    );
}

/// AssociateAddress / DisassociateAddress of an Elastic IP, ReplaceRoute in the node's
/// own table and, through AssumeRole, in another account's; dry runs of both.
#[test]
fn elastic_ip_and_routes() {
    let lab = Lab::start();
    let mut c = lab.client(Source::Instance, Some(ROLE_OTHER));
    let d = deadline(20);
    let spare = Eip::Allocation(EIP_SPARE.into());
    c.dry_run(
        &query::associate_address(&spare, ENI_B, ip(NODE_B_IP), true),
        &d,
    )
    .unwrap();
    assert!(
        eip(&lab.state(), EIP_SPARE)["association"].is_null(),
        "a dry run changes nothing"
    );
    let assoc = c
        .associate_address(&spare, ENI_B, ip(NODE_B_IP), true, &d)
        .unwrap();
    let st = lab.state();
    let a = &eip(&st, EIP_SPARE)["association"];
    assert_eq!(
        (a["id"].as_str(), a["eni"].as_str()),
        (Some(assoc.as_str()), Some(ENI_B))
    );
    assert_eq!(a["private_ip"], NODE_B_IP);
    lab.settle();
    let seen = c.describe_address(&spare, &d).unwrap();
    assert!(seen.held_by(ENI_B, ip(NODE_B_IP)));
    assert!(!seen.held_by(ENI_A, ip(NODE_B_IP)));
    let by_ip = c
        .describe_address(&Eip::Public(ip("203.0.113.11")), &d)
        .unwrap();
    assert_eq!(by_ip.allocation_id, EIP_SPARE);
    c.disassociate_address(&assoc, &d).unwrap();
    assert!(eip(&lab.state(), EIP_SPARE)["association"].is_null());

    // Route tables go through the role: the other account's table is reachable, and the
    // node's own account's table is not (the role belongs to 444455556666).
    c.dry_run(&query::put_route(RTB_OTHER, OVERLAY, ENI_B, true), &d)
        .unwrap();
    c.put_route(RTB_OTHER, OVERLAY, ENI_B, true, &d).unwrap();
    assert_eq!(route(&lab.state(), RTB_OTHER, OVERLAY)["eni"], ENI_B);
    assert!(lab.calls("sts:AssumeRole") >= 1);
    lab.settle();
    let t = c.describe_route_tables(&[RTB_OTHER], &d).unwrap();
    let r = t[0].route(OVERLAY).unwrap();
    assert_eq!(r.destination, Destination::Cidr(OVERLAY.into()));
    assert_eq!(r.state, RouteState::Active);
    assert!(matches!(&r.target, Target::Eni { eni, .. } if eni == ENI_B));

    let mut own = lab.client(Source::Instance, None);
    own.put_route(RTB, OVERLAY, ENI_B, true, &d).unwrap();
    assert_eq!(route(&lab.state(), RTB, OVERLAY)["eni"], ENI_B);
    // EC2 refuses to replace a route that is not there ("Use CreateRoute instead"), and
    // the nodes' role may not create one; the account's admin key may.
    match own
        .put_route(RTB, NEW_ROUTE, ENI_B, true, &d)
        .map_err(CloudError::into_kind)
    {
        Err(CloudError::Invalid(m)) => assert!(m.contains("CreateRoute"), "{m}"),
        other => panic!("{other:?}"),
    }
    match own
        .put_route(RTB, NEW_ROUTE, ENI_B, false, &d)
        .map_err(CloudError::into_kind)
    {
        Err(CloudError::Denied(m)) => assert!(m.contains("ec2:CreateRoute"), "{m}"),
        other => panic!("{other:?}"),
    }
    let admin = Keys {
        access_key: "AKIACLOUDVIPSIM0001".into(),
        secret: Secret::new("cloudvip-sim-secret-key-0001".into()),
        token: None,
    };
    let mut admin = lab.client(Source::Static(admin), None);
    admin.put_route(RTB, NEW_ROUTE, ENI_B, false, &d).unwrap();
    assert_eq!(route(&lab.state(), RTB, NEW_ROUTE)["eni"], ENI_B);
}

fn credentials_file(dir: &std::path::Path, mode: u32) -> std::path::PathBuf {
    let p = dir.join("credentials");
    std::fs::write(
        &p,
        "[default]\naws_access_key_id = AKIACLOUDVIPSIM0001\naws_secret_access_key = cloudvip-sim-secret-key-0001\n\n[auditor]\naws_access_key_id = AKIACLOUDVIPSIM0002\naws_secret_access_key = cloudvip-sim-secret-key-0002\n",
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// A user allowed only Describe*: every change and every dry run of one is Denied, and
/// the refusal names the action; a file others can write is refused before any call.
#[test]
fn denied_calls_name_the_action() {
    let lab = Lab::start();
    let dir = tempfile::tempdir().unwrap();
    let path = credentials_file(dir.path(), 0o600);
    let source = Source::File {
        path: path.clone(),
        profile: "auditor".into(),
    };
    let mut c = lab.client(source, None);
    let d = deadline(20);
    assert_eq!(c.describe_instances(&[NODE_B], &d).unwrap().len(), 1);
    assert_eq!(
        c.assign_private_ips(ENI_B, &[ip(VIP)], true, &d)
            .err()
            .as_ref()
            .and_then(CloudError::code),
        Some("UnauthorizedOperation"),
        "EC2's code travels with the error"
    );
    match c
        .assign_private_ips(ENI_B, &[ip(VIP)], true, &d)
        .map_err(CloudError::into_kind)
    {
        Err(CloudError::Denied(m)) => {
            assert!(m.contains("ec2:AssignPrivateIpAddresses"), "{m}");
            assert!(m.contains("UnauthorizedOperation"), "{m}");
            assert!(!m.contains("Encoded authorization"), "{m}");
        }
        other => panic!("{:?}", other.err()),
    }
    match c
        .dry_run(&query::put_route(RTB, OVERLAY, ENI_B, true), &d)
        .map_err(CloudError::into_kind)
    {
        Err(CloudError::Denied(m)) => assert!(m.contains("ec2:ReplaceRoute"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(holds(&lab.state(), ENI_A, VIP), "nothing moved");
    assert!(
        matches!(
            c.dry_run(&query::assign_private_ips(ENI_B, &[ip(VIP)], true), &d),
            Err(CloudError::Invalid(_))
        ),
        "EC2 has no DryRun for AssignPrivateIpAddresses"
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let before = lab.calls("ec2:DescribeInstances");
    let mut loose = lab.client(
        Source::File {
            path,
            profile: "default".into(),
        },
        None,
    );
    match loose.describe_instances(&[NODE_B], &d) {
        Err(CloudError::Local(m)) => assert!(m.contains("chmod 600"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
    assert_eq!(
        lab.calls("ec2:DescribeInstances"),
        before,
        "refused before any call"
    );
}

/// RequestLimitExceeded is retried inside the deadline until it passes; when it never
/// passes, the call ends Transient by the deadline.
#[test]
fn throttling_is_retried_within_the_deadline() {
    let lab = Lab::start();
    let mut c = lab.client(Source::Instance, None);
    lab.admin(
        "POST",
        "/admin/faults",
        Some(json!({"kind": "rate_limit", "cloud": "aws", "service": "ec2", "api": "AssignPrivateIpAddresses", "count": 2})),
    );
    c.assign_private_ips(ENI_B, &[ip(VIP)], true, &deadline(20))
        .unwrap();
    assert!(holds(&lab.state(), ENI_B, VIP));
    assert_eq!(
        lab.logged("AssignPrivateIpAddresses"),
        [503, 503, 200],
        "two throttled, one done"
    );

    lab.admin(
        "POST",
        "/admin/faults",
        Some(json!({"kind": "rate_limit", "cloud": "aws", "service": "ec2", "api": "UnassignPrivateIpAddresses"})),
    );
    match by_the_deadline(4, |d| c.unassign_private_ips(ENI_B, &[ip(VIP)], d))
        .map_err(CloudError::into_kind)
    {
        Err(CloudError::Transient(m)) => assert!(m.contains("RequestLimitExceeded"), "{m}"),
        other => panic!("{other:?}"),
    }
    let tries = lab.logged("UnassignPrivateIpAddresses");
    assert!(
        tries.len() >= 2 && tries.iter().all(|s| *s == 503),
        "{tries:?}"
    );
    assert!(holds(&lab.state(), ENI_B, VIP), "never unassigned");
}

/// An IMDS token that expired gets one new token; credentials EC2 says expired are
/// fetched again from IMDS once, and the call succeeds.
#[test]
fn expired_tokens_and_credentials_are_replaced_once() {
    let lab = Lab::start();
    let mut c = lab.client(Source::Instance, None);
    let d = deadline(20);
    c.describe_instances(&[NODE_B], &d).unwrap();
    let tokens = lab.calls("imds:token");
    lab.admin("POST", "/admin/aws/imds-tokens/expire", None);
    assert_eq!(c.imds.identity(&c.http, &d).unwrap().instance_id, NODE_B);
    assert_eq!(lab.calls("imds:token"), tokens + 1, "one new token");

    let fetched = lab.calls("imds:credentials");
    lab.admin("POST", "/admin/aws/credentials/expire", None);
    c.describe_instances(&[NODE_B], &d).unwrap();
    assert_eq!(
        lab.calls("imds:credentials"),
        fetched + 1,
        "fetched again once"
    );
    assert_eq!(
        lab.calls("ec2:DescribeInstances"),
        3,
        "one refused, then done"
    );
}

/// Actions that follow one another (or run in parallel) share the cached credentials:
/// one IMDS credentials fetch and one AssumeRole for all; credentials EC2 refuses are
/// replaced in the cache too.
#[test]
fn credentials_are_cached_between_actions() {
    let lab = Lab::start();
    let state = tempfile::tempdir().unwrap();
    let d = deadline(20);
    let run = || {
        let mut c = lab.cached_client(Source::Instance, Some(ROLE_OTHER), Some(state.path()));
        c.describe_instances(&[NODE_B], &d).unwrap();
        c.describe_route_tables(&[RTB_OTHER], &d).unwrap();
    };
    std::thread::scope(|s| {
        let a = s.spawn(run);
        let b = s.spawn(run);
        a.join().unwrap();
        b.join().unwrap();
    });
    run();
    assert_eq!(
        lab.calls("imds:credentials"),
        1,
        "one fetch for three actions"
    );
    assert_eq!(lab.calls("sts:AssumeRole"), 1);
    for f in std::fs::read_dir(state.path()).unwrap() {
        let f = f.unwrap();
        let mode = f.metadata().unwrap().permissions().mode();
        if f.file_name().to_string_lossy().ends_with(".json") {
            assert_eq!(mode & 0o777, 0o600, "{:?}", f.file_name());
        }
    }

    lab.admin("POST", "/admin/aws/credentials/expire", None);
    run();
    assert_eq!(
        lab.calls("imds:credentials"),
        2,
        "the refused ones were replaced"
    );
    run();
    assert_eq!(lab.calls("imds:credentials"), 2, "and the new ones cached");
}

/// A caller beyond the IMDS hop limit gets no answer to its token PUT: the action ends
/// Transient by its deadline, and says what to change.
#[test]
fn imds_beyond_the_hop_limit_ends_by_the_deadline() {
    let lab = Lab::start();
    lab.admin(
        "PUT",
        "/admin/aws/instances/node-b/metadata-options",
        Some(json!({"metadata_hops": 2})),
    );
    let mut c = lab.client(Source::Instance, None);
    match by_the_deadline(5, |d| c.imds.identity(&c.http, d)) {
        Err(CloudError::Transient(m)) => assert!(m.contains("hop limit"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// The emulator's SigV4 verifier (checked by botocore and the AWS test suite) accepts what
/// we sign and refuses it once any signed part is changed: a header, the body, the date.
#[test]
fn the_verifier_accepts_our_signature_and_refuses_a_tampered_one() {
    let lab = Lab::start();
    let http = Http::new(&HttpConfig::default()).unwrap();
    let keys = Keys {
        access_key: "AKIACLOUDVIPSIM0001".into(),
        secret: Secret::new("cloudvip-sim-secret-key-0001".into()),
        token: None,
    };
    let ep = Endpoint::ec2("eu-west-1", Some(&lab.api));
    let q = query::describe_instances(&[NODE_B]);
    let send = |req: &Request| {
        let r = http.api(req, &deadline(10), &|_| false).unwrap();
        (r.status, cloudvip::cloud::aws::error::parse(&r).code)
    };
    let good = client::signed_request(&ep, &keys, &q).unwrap();
    assert_eq!(send(&good).0, 200);
    let with = |name: &str, value: &str| {
        let mut r = good.clone();
        for (k, v) in &mut r.headers {
            if k.eq_ignore_ascii_case(name) {
                *v = value.to_owned();
            }
        }
        r
    };
    let refused = (403, "SignatureDoesNotMatch".to_owned());
    assert_eq!(
        send(&with("Content-Type", "application/x-www-form-urlencoded")),
        refused
    );
    let date = good
        .headers
        .iter()
        .find(|(k, _)| k == "X-Amz-Date")
        .unwrap()
        .1
        .clone();
    let earlier = format!(
        "{}{}Z",
        &date[..13],
        if &date[13..15] == "00" { "01" } else { "00" }
    );
    assert_eq!(send(&with("X-Amz-Date", &earlier)), refused);
    let mut body = good.clone();
    body.body = query::describe_instances(&["i-0c10d000000000001"])
        .body()
        .into_bytes();
    assert_eq!(send(&body), refused);
    let mut wrong_key = with("Authorization", "");
    wrong_key.headers.retain(|(k, _)| k != "Authorization");
    assert_eq!(
        send(&wrong_key).0,
        400,
        "no signature at all: MissingParameter"
    );
}

/// A role that requires an ExternalId: AssumeRole without it is Denied naming
/// `sts:AssumeRole` (and nothing is changed), with it the route moves.
#[test]
fn assume_role_with_an_external_id() {
    let lab = Lab::start_with(|w| {
        let r = w.roles.iter_mut().find(|r| r.name == "rtb-editor").unwrap();
        r.external_id = Some("ha-cluster-1".into());
    });
    let d = deadline(20);
    let mut c = lab.client(Source::Instance, Some(ROLE_OTHER));
    match c
        .put_route(RTB_OTHER, OVERLAY, ENI_B, true, &d)
        .map_err(CloudError::into_kind)
    {
        Err(CloudError::Denied(m)) => {
            assert!(
                m.starts_with("sts:AssumeRole: HTTP 403 AccessDenied"),
                "{m}"
            );
            assert!(m.contains("(as instance profile role ha-node)"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        route(&lab.state(), RTB_OTHER, OVERLAY)["instance"],
        "i-0c10d000000000001"
    );
    let mut role = AssumeRole::new(ROLE_OTHER);
    role.external_id = Some("ha-cluster-1".into());
    c.route_creds = Some(Provider::new(Source::Instance, Some(role)));
    c.put_route(RTB_OTHER, OVERLAY, ENI_B, true, &d).unwrap();
    assert_eq!(route(&lab.state(), RTB_OTHER, OVERLAY)["eni"], ENI_B);
}

proptest::proptest! {
    /// Our signer against the emulator's verifier, an implementation we did not share
    /// code with (it is checked by the AWS test suite and by botocore): any path, query,
    /// header values, body and session token verify, and one changed body byte does not.
    #[test]
    fn any_request_we_sign_verifies(
        path in "(/[a-zA-Z0-9._~%-]{0,8}){1,4}",
        query in proptest::collection::vec(("[a-zA-Z0-9._-]{1,6}", "[ -~]{0,8}"), 0..4),
        value in "[ -~]{0,20}",
        body in proptest::collection::vec(proptest::num::u8::ANY, 1..64),
        token in proptest::option::of("[A-Za-z0-9/+=]{8,40}"),
        region in "(eu-west-1|us-east-1|cn-north-1)",
    ) {
        use cloudvip::cloud::aws::sigv4;
        use cloudvip_sim::aws::sigv4 as sim;
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", cloudvip::http::encode(v)))
            .collect();
        let query = query.join("&");
        let headers = vec![
            ("Host".to_owned(), "ec2.example.test".to_owned()),
            ("X-Custom".to_owned(), value),
        ];
        let keys = Keys {
            access_key: "AKIDEXAMPLE".into(),
            secret: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            token: token.map(Secret::new),
        };
        let req = sigv4::Unsigned { method: "POST", path: &path, query: &query, headers: &headers, body: &body };
        let mut all = headers.clone();
        all.extend(sigv4::sign(&req, &keys, &region, "ec2", std::time::SystemTime::now()));
        let signed = sim::Signed { method: "POST", raw_path: &path, raw_query: &query, headers: &all, body: &body };
        let claim = sim::claim(&signed).unwrap();
        proptest::prop_assert_eq!(&claim.region, &region);
        proptest::prop_assert!(sim::verify(&signed, &claim, keys.secret.expose()).unwrap());
        let mut changed = body.clone();
        changed[0] ^= 1;
        let tampered = sim::Signed { body: &changed, ..signed };
        proptest::prop_assert!(!sim::verify(&tampered, &claim, keys.secret.expose()).unwrap());
    }
}
