//! The AWS backend's flows (`cloudvip::cloud::aws::flow`) against the emulator in process,
//! over loopback only, one node's IMDS per instance: in each mode (secondary_ip, eip, route)
//! a claim takes the VIP from the other node and leaves the cloud as the unmodified anchor
//! of that mode leaves it (tests/anchors_aws.rs), a second claim writes nothing, a claim
//! survives EC2's eventual consistency and throttling, a role without the write is refused
//! with Denied naming the action and nothing changed, a release gives up only what is ours,
//! and the dry-run plan is the writes the real claim then makes (the emulator's request log).
//! The truth is the emulator's own state (`/admin/aws/state`, never lagged).

use std::time::{Duration, Instant};

use cloudvip::cloud::aws::config::{self as cfg, Config};
use cloudvip::cloud::aws::flow::{Aws, Seen};
use cloudvip::cloud::inspect::diagnose;
use cloudvip::cloud::{CloudError, Nic, Op, Planned};
use cloudvip::deadline::Deadline;
use cloudvip::http::HttpConfig;
use serde_json::{json, Value};

use crate::clouds::aws::{self, no_vip, AwsState, OVERLAY};

const VIP: &str = "10.0.1.100";
const EIP_VIP: &str = "203.0.113.10";
const EIP_SPARE: &str = "203.0.113.11";
const EIP_SPARE_ALLOC: &str = "eipalloc-0c10d00000000000f2";
const RTB: &str = "rtb-0c10d0000000000c1";
const RTB_OTHER: &str = "rtb-0c10d0000000000c2";
const ROLE_OTHER: &str = "arn:aws:iam::444455556666:role/rtb-editor";
const ENI: [&str; 2] = ["eni-0c10d0000000000e1", "eni-0c10d0000000000e2"];
const INSTANCE: [&str; 2] = ["i-0c10d000000000001", "i-0c10d000000000002"];
const PRIMARY: [&str; 2] = ["10.0.1.11", "10.0.1.12"];
const NODE: [&str; 2] = ["node-a", "node-b"];

struct Lab {
    sim: cloudvip_sim::SimHandle,
    admin: String,
    api: String,
    state: tempfile::TempDir,
    http: HttpConfig,
}

fn deadline(secs: u64) -> Deadline {
    Deadline::for_timeout(Some(Duration::from_secs(secs)))
}

fn nic(n: usize) -> Nic {
    Nic {
        name: "eth0".into(),
        mac: Some([0x02, 0x66, 0, 0, 0, n as u8 + 1]),
    }
}

impl Lab {
    fn start(edit: impl FnOnce(&mut cloudvip_sim::aws::AwsWorld)) -> Lab {
        let mut w = aws::world();
        edit(w.aws.as_mut().unwrap());
        Lab::start_world(w, HttpConfig::default())
    }

    /// With `http` for the backends it makes (a CA bundle, a proxy).
    fn start_world(w: cloudvip_sim::World, http: HttpConfig) -> Lab {
        let (sim, api) = aws::start_world(w);
        Lab {
            admin: sim.admin_url(),
            api,
            sim,
            state: tempfile::tempdir().unwrap(),
            http,
        }
    }

    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        crate::clouds::admin(&self.admin, method, path, body)
    }

    fn settle(&self) {
        self.admin("POST", "/admin/aws/settle", None);
    }

    fn fault(&self, f: Value) {
        self.admin("POST", "/admin/faults", Some(f));
    }

    fn clear_log(&self) {
        self.admin("DELETE", "/admin/log", None);
    }

    /// (service, action, status) of every request since the last `clear_log`.
    fn log(&self) -> Vec<(String, String, u64)> {
        self.admin("GET", "/admin/log", None)["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["service"].as_str().unwrap_or("").to_owned(),
                    e["api"].as_str().unwrap_or("").to_owned(),
                    e["status"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }

    /// The EC2 writes that were accepted, in order.
    fn writes(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|(s, a, st)| s == "ec2" && !a.starts_with("Describe") && *st == 200)
            .map(|(_, a, _)| a)
            .collect()
    }

    fn metadata(&self, node: usize) -> String {
        self.sim.endpoints()["aws"]["metadata"][NODE[node]]["endpoint"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The backend of `node` (0 = node-a, 1 = node-b) for VIP `ip` with `params`.
    fn aws(&self, node: usize, ip: &str, params: &[(&str, &str)]) -> Aws {
        let md = self.metadata(node);
        let mut all: Vec<(&str, &str)> = vec![
            (cfg::API_ENDPOINT, &self.api),
            (cfg::STS_ENDPOINT, &self.api),
            (cfg::METADATA_URL, &md),
        ];
        all.extend_from_slice(params);
        let c = Config::from_pairs(ip.parse().unwrap(), &all).unwrap();
        Aws::new(c, &self.http, Some(self.state.path())).unwrap()
    }
}

impl AwsState for Lab {
    fn state(&self) -> Value {
        self.admin("GET", "/admin/aws/state", None)
    }
}

/// A start's claim and extras; the error's kind (its EC2 code dropped).
fn claim(aws: &mut Aws, node: usize, secs: u64) -> Result<(), CloudError> {
    let d = deadline(secs);
    let proof = aws.claim(&nic(node), &d).map_err(CloudError::into_kind)?;
    aws.claim_extras(&nic(node), &proof, &d)
        .map_err(CloudError::into_kind)
}

/// The EC2 action of each planned call, in order (`ec2:Action k=v …`).
fn planned_calls(p: &[Planned]) -> Vec<String> {
    p.iter()
        .filter_map(|x| x.call.as_deref())
        .map(|c| {
            c.split_whitespace()
                .next()
                .unwrap()
                .trim_start_matches("ec2:")
                .to_owned()
        })
        .collect()
}

fn plan(aws: &mut Aws, node: usize, op: Op) -> Vec<Planned> {
    aws.plan(op, &nic(node), &deadline(20)).unwrap()
}

/// The full start plan (claim, then extras), and the reads it made only.
fn start_plan(lab: &Lab, aws: &mut Aws, node: usize) -> Vec<Planned> {
    lab.clear_log();
    let mut p = plan(aws, node, Op::Claim);
    p.extend(plan(aws, node, Op::Extras));
    assert!(
        lab.writes().is_empty(),
        "a plan writes nothing: {:?}",
        lab.log()
    );
    p
}

fn counts(lab: &Lab) -> String {
    let log = lab.log();
    let n = |svc: &str| log.iter().filter(|(s, _, _)| s == svc).count();
    format!("ec2 {} sts {} imds {}", n("ec2"), n("sts"), n("metadata"))
}

/// `what` timed, with the requests it made, for the summary line (each action on a new
/// backend, as each is a new process; the credentials cache in the state directory is
/// shared, as on a node).
fn measured<T>(lab: &Lab, out: &mut Vec<String>, what: &str, f: impl FnOnce() -> T) -> T {
    lab.clear_log();
    let t = Instant::now();
    let r = f();
    out.push(format!(
        "{what} {:.2}s ({})",
        t.elapsed().as_secs_f64(),
        counts(lab)
    ));
    r
}

/// secondary_ip with the Elastic IP on the VIP (the example world: both on node-a). node-b
/// takes the VIP with one AssignPrivateIpAddresses and the Elastic IP follows without a
/// call, as the plan said; a second claim writes nothing; node-a now sees it elsewhere.
/// node-a's stale stop gives up nothing; node-b's stop leaves VIP and Elastic IP on
/// nobody, as awsvip + awseip leave them.
#[test]
fn secondary_ip_moves_with_its_elastic_ip() {
    let lab = Lab::start(|_| {});
    let p = [(cfg::PUBLIC_IP, EIP_VIP)];
    let mut b = lab.aws(1, VIP, &p);
    let mut times = Vec::new();
    let planned = start_plan(&lab, &mut b, 1);
    assert_eq!(
        planned_calls(&planned),
        ["AssignPrivateIpAddresses"],
        "{:?}",
        planned.iter().map(|p| &p.what).collect::<Vec<_>>()
    );
    assert_eq!(
        planned[0].call.as_deref(),
        Some("ec2:AssignPrivateIpAddresses NetworkInterfaceId=eni-0c10d0000000000e2 PrivateIpAddress.1=10.0.1.100 AllowReassignment=true"),
        "the call as it will be made"
    );
    assert!(
        planned[0]
            .what
            .contains("from eni-0c10d0000000000e1 (i-0c10d000000000001)"),
        "{}",
        planned[0].what
    );
    assert!(
        planned
            .iter()
            .any(|p| p.call.is_none() && p.what.contains("follows")),
        "the Elastic IP follows: {:?}",
        planned.iter().map(|p| &p.what).collect::<Vec<_>>()
    );
    measured(&lab, &mut times, "claim", || {
        claim(&mut lab.aws(1, VIP, &p), 1, 20)
    })
    .unwrap();
    assert_eq!(
        lab.writes(),
        planned_calls(&planned),
        "the plan is what the claim did"
    );
    assert_eq!(lab.holders(VIP), [ENI[1]]);
    let e = lab.eip(EIP_VIP);
    assert_eq!(
        (e["eni"].as_str(), e["private_ip"].as_str()),
        (Some(ENI[1]), Some(VIP))
    );

    measured(&lab, &mut times, "claim again", || {
        claim(&mut lab.aws(1, VIP, &p), 1, 20)
    })
    .unwrap();
    assert!(lab.writes().is_empty(), "idempotent: {:?}", lab.log());
    assert!(plan(&mut b, 1, Op::Claim).is_empty() && plan(&mut b, 1, Op::Extras).is_empty());
    assert!(b.check(&nic(1), 0, &deadline(5)).unwrap());
    assert!(b.check(&nic(1), 10, &deadline(5)).unwrap());

    let mut a = lab.aws(0, VIP, &p);
    assert!(
        !a.check(&nic(0), 0, &deadline(5)).unwrap(),
        "IMDS of node-a shows it gone"
    );
    match a.locate(&nic(0), 10, &deadline(5)).unwrap() {
        Seen::NotHere(who) => assert!(who.contains(ENI[1]), "{who}"),
        other => panic!("{other:?}"),
    }
    lab.clear_log();
    assert!(a
        .plan(Op::Release, &nic(0), &deadline(5))
        .unwrap()
        .is_empty());
    a.release(&deadline(5)).unwrap();
    assert!(lab.writes().is_empty(), "not ours: nothing given up");
    assert_eq!(lab.holders(VIP), [ENI[1]]);

    let rel = plan(&mut b, 1, Op::Release);
    assert_eq!(
        planned_calls(&rel),
        ["DisassociateAddress", "UnassignPrivateIpAddresses"]
    );
    measured(&lab, &mut times, "release", || {
        lab.aws(1, VIP, &p).release(&deadline(5))
    })
    .unwrap();
    assert_eq!(lab.writes(), planned_calls(&rel));
    assert!(lab.holders(VIP).is_empty() && lab.eip(EIP_VIP).is_null());
    eprintln!("aws_backend secondary_ip: {}", times.join(", "));
}

/// secondary_ip from nobody with an Elastic IP that is nowhere: the assignment, then the
/// association (claim_extras), as the plan said; then the move to node-b takes both in one
/// call, as awsvip followed by awseip leaves them (tests/anchors_aws.rs
/// awseip_on_the_vip_follows_awsvip).
#[test]
fn secondary_ip_from_nobody_associates_the_elastic_ip() {
    let lab = Lab::start(no_vip);
    let p = [
        (cfg::PUBLIC_IP, EIP_SPARE),
        (cfg::ALLOCATION_ID, EIP_SPARE_ALLOC),
    ];
    let mut a = lab.aws(0, VIP, &p);
    let planned = start_plan(&lab, &mut a, 0);
    assert_eq!(
        planned_calls(&planned),
        ["AssignPrivateIpAddresses", "AssociateAddress"]
    );
    lab.clear_log();
    claim(&mut a, 0, 20).unwrap();
    assert_eq!(lab.writes(), planned_calls(&planned));
    assert_eq!(
        lab.eip(EIP_SPARE),
        json!({"id": lab.eip(EIP_SPARE)["id"], "eni": ENI[0], "private_ip": VIP, "instance": INSTANCE[0]})
    );
    let mut b = lab.aws(1, VIP, &p);
    lab.clear_log();
    claim(&mut b, 1, 20).unwrap();
    assert_eq!(lab.writes(), ["AssignPrivateIpAddresses"]);
    assert_eq!(
        lab.eip(EIP_SPARE)["eni"],
        ENI[1],
        "the EIP followed the reassigned VIP"
    );
}

/// eip mode (awseip): the Elastic IP goes to the primary private IP of the node's ENI,
/// from nobody and then from the other node (AllowReassociation), one AssociateAddress
/// each, as planned; idempotent; stop disassociates it, and a stale stop elsewhere does not.
#[test]
fn eip_mode_moves_the_elastic_ip_to_the_primary_address() {
    let lab = Lab::start(no_vip);
    let p = [(cfg::MODE, "eip")];
    let mut times = Vec::new();
    let mut a = lab.aws(0, EIP_SPARE, &p);
    let mut b = lab.aws(1, EIP_SPARE, &p);
    // In eip mode the VIP is the Elastic IP, moved to the primary address.
    assert!(!a.check(&nic(0), 0, &deadline(5)).unwrap());
    claim(&mut a, 0, 20).unwrap();
    assert_eq!(lab.eip(EIP_SPARE)["instance"], INSTANCE[0]);
    let planned = start_plan(&lab, &mut b, 1);
    assert_eq!(
        planned[0].call.as_deref(),
        Some("ec2:AssociateAddress AllocationId=eipalloc-0c10d00000000000f2 NetworkInterfaceId=eni-0c10d0000000000e2 PrivateIpAddress=10.0.1.12 AllowReassociation=true")
    );
    measured(&lab, &mut times, "claim", || {
        claim(&mut lab.aws(1, EIP_SPARE, &p), 1, 20)
    })
    .unwrap();
    assert_eq!(lab.writes(), planned_calls(&planned));
    let e = lab.eip(EIP_SPARE);
    assert_eq!(
        (e["instance"].as_str(), e["private_ip"].as_str()),
        (Some(INSTANCE[1]), Some(PRIMARY[1]))
    );
    measured(&lab, &mut times, "claim again", || {
        claim(&mut lab.aws(1, EIP_SPARE, &p), 1, 20)
    })
    .unwrap();
    assert!(lab.writes().is_empty(), "{:?}", lab.log());
    assert!(b.check(&nic(1), 0, &deadline(5)).unwrap());
    assert!(b.check(&nic(1), 10, &deadline(5)).unwrap());
    lab.settle();
    assert!(!a.check(&nic(0), 10, &deadline(5)).unwrap());
    lab.clear_log();
    a.release(&deadline(5)).unwrap();
    assert!(lab.writes().is_empty());
    measured(&lab, &mut times, "release", || {
        lab.aws(1, EIP_SPARE, &p).release(&deadline(5))
    })
    .unwrap();
    assert_eq!(lab.writes(), ["DisassociateAddress"]);
    assert!(lab.eip(EIP_SPARE).is_null());
    eprintln!("aws_backend eip: {}", times.join(", "));
}

/// route mode (aws-vpc-move-ip): one ReplaceRoute per table whose /32 is not ours, as
/// planned, then the tables read until they show it; idempotent; release leaves the route
/// where it is, as aws-vpc-move-ip's stop does. The other account's table goes through
/// the role (AssumeRole), the own account's table is untouched by that resource.
#[test]
fn route_mode_replaces_the_route_in_each_table() {
    let lab = Lab::start(|_| {});
    let mut times = Vec::new();
    let p = [(cfg::MODE, "route"), (cfg::ROUTE_TABLES, RTB)];
    let mut b = lab.aws(1, OVERLAY, &p);
    assert!(
        b.check(&nic(1), 0, &deadline(5)).unwrap(),
        "depth 0: the kernel decides"
    );
    assert!(!b.check(&nic(1), 10, &deadline(5)).unwrap());
    let planned = start_plan(&lab, &mut b, 1);
    assert_eq!(
        planned[0].call.as_deref(),
        Some("ec2:ReplaceRoute RouteTableId=rtb-0c10d0000000000c1 DestinationCidrBlock=192.168.100.10/32 NetworkInterfaceId=eni-0c10d0000000000e2")
    );
    measured(&lab, &mut times, "claim", || {
        claim(&mut lab.aws(1, OVERLAY, &p), 1, 20)
    })
    .unwrap();
    assert_eq!(lab.writes(), planned_calls(&planned));
    let r = lab.route(RTB);
    assert_eq!(
        (r["eni"].as_str(), r["instance"].as_str()),
        (Some(ENI[1]), Some(INSTANCE[1]))
    );
    measured(&lab, &mut times, "claim again", || {
        claim(&mut lab.aws(1, OVERLAY, &p), 1, 20)
    })
    .unwrap();
    assert!(lab.writes().is_empty());
    assert!(b.check(&nic(1), 10, &deadline(5)).unwrap());
    measured(&lab, &mut times, "release", || {
        lab.aws(1, OVERLAY, &p).release(&deadline(5))
    })
    .unwrap();
    assert!(lab.writes().is_empty());
    assert_eq!(lab.route(RTB)["eni"], ENI[1], "stop leaves the route");
    let rel = plan(&mut b, 1, Op::Release);
    assert!(
        planned_calls(&rel).is_empty() && !rel.is_empty(),
        "a note only"
    );

    let p = [
        (cfg::MODE, "route"),
        (cfg::ROUTE_TABLES, RTB_OTHER),
        (cfg::ROUTING_TABLE_ROLE, ROLE_OTHER),
    ];
    let mut b = lab.aws(1, OVERLAY, &p);
    lab.clear_log();
    claim(&mut b, 1, 20).unwrap();
    assert_eq!(lab.writes(), ["ReplaceRoute"]);
    assert!(lab
        .log()
        .iter()
        .any(|(s, a, _)| s == "sts" && a == "AssumeRole"));
    assert_eq!(lab.route(RTB_OTHER)["eni"], ENI[1]);
    assert_eq!(lab.route(RTB)["eni"], ENI[1]);
    eprintln!("aws_backend route: {}", times.join(", "));
}

/// Refused before any change, with the fix: a table without the /32 route (the route is
/// made once at setup: ReplaceRoute needs it and aws-vpc-move-ip never creates it), an ENI
/// whose source/destination check is on, an overlay IP inside the VPC, a secondary IP
/// outside the subnet or reserved by AWS, the ENI's own primary address.
#[test]
fn refusals_before_any_change() {
    let lab = Lab::start(|w| {
        w.route_tables[0]
            .routes
            .retain(|r| r.destination.to_string() != "192.168.100.10/32");
        w.instances[0].enis[0].source_dest_check = true;
    });
    let route = [(cfg::MODE, "route"), (cfg::ROUTE_TABLES, RTB)];
    type Case<'a> = (usize, &'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (1, OVERLAY, route.to_vec(), "create-route"),
        (
            0,
            "192.168.100.11",
            route.to_vec(),
            "--no-source-dest-check",
        ),
        (1, "10.0.2.50", route.to_vec(), "inside the VPC"),
        (1, "10.0.2.50", vec![], "outside this ENI's subnet"),
        (1, "10.0.1.3", vec![], "reserves"),
        (1, PRIMARY[1], vec![], "primary private IP"),
        (
            1,
            PRIMARY[0],
            vec![],
            "primary private IP of eni-0c10d0000000000e1",
        ),
    ];
    for (node, ip, params, word) in cases {
        let mut aws = lab.aws(node, ip, &params);
        lab.clear_log();
        let e = claim(&mut aws, node, 10).unwrap_err();
        let local = word.contains("source-dest");
        match &e {
            CloudError::Invalid(m) if !local => assert!(m.contains(word), "{ip}: {m}"),
            CloudError::Local(m) if local => assert!(m.contains(word), "{ip}: {m}"),
            other => panic!("{ip} {params:?}: {other:?}"),
        }
        let e2 = aws
            .plan(Op::Claim, &nic(node), &deadline(10))
            .err()
            .map(|e| e.to_string());
        assert_eq!(e2, Some(e.to_string()), "the dry run fails the same way");
        assert!(lab.writes().is_empty(), "{ip}: {:?}", lab.log());
    }
}

/// A role without the write is refused with Denied naming the EC2 action, nothing moved.
#[test]
fn a_missing_permission_is_denied_naming_the_action() {
    for (mode, action) in [
        ("secondary_ip", "AssignPrivateIpAddresses"),
        ("eip", "AssociateAddress"),
        ("route", "ReplaceRoute"),
    ] {
        let lab = Lab::start(|w| {
            let r = w.roles.iter_mut().find(|r| r.name == "ha-node").unwrap();
            r.deny = vec![format!("ec2:{action}")];
        });
        let (ip, p): (&str, Vec<(&str, &str)>) = match mode {
            "secondary_ip" => (VIP, vec![]),
            "eip" => (EIP_SPARE, vec![(cfg::MODE, "eip")]),
            _ => (
                OVERLAY,
                vec![(cfg::MODE, "route"), (cfg::ROUTE_TABLES, RTB)],
            ),
        };
        let before = lab.state();
        let mut b = lab.aws(1, ip, &p);
        match claim(&mut b, 1, 10) {
            Err(CloudError::Denied(m)) => {
                assert!(m.contains(&format!("ec2:{action}")), "{m}");
                assert!(m.contains("UnauthorizedOperation"), "{m}");
            }
            other => panic!("{mode}: {other:?}"),
        }
        let after = lab.state();
        for k in ["enis", "elastic_ips", "route_tables"] {
            assert_eq!(before[k], after[k], "{mode}: {k} unchanged");
        }
    }
}

/// EC2 reads lag writes by 2.5 s and IMDS by 1 s (far above the emulator's default), and
/// the first two writes are throttled (RequestLimitExceeded): each mode's claim still ends
/// with the VIP here, once, and reports it only when IMDS (or the route read) shows it; a
/// deep check right after it agrees.
#[test]
fn claims_survive_lag_and_throttling() {
    for mode in ["secondary_ip", "eip", "route"] {
        let lab = Lab::start(|w| {
            w.consistency.network_interfaces_ms = 2500;
            w.consistency.addresses_ms = 2500;
            w.consistency.route_tables_ms = 2500;
            w.consistency.metadata_ms = 1000;
        });
        let (ip, p, action): (&str, Vec<(&str, &str)>, &str) = match mode {
            "secondary_ip" => (VIP, vec![], "AssignPrivateIpAddresses"),
            "eip" => (EIP_VIP, vec![(cfg::MODE, "eip")], "AssociateAddress"),
            _ => (
                OVERLAY,
                vec![(cfg::MODE, "route"), (cfg::ROUTE_TABLES, RTB)],
                "ReplaceRoute",
            ),
        };
        lab.fault(json!({"kind": "rate_limit", "cloud": "aws", "service": "ec2", "api": action, "count": 2}));
        let mut b = lab.aws(1, ip, &p);
        lab.clear_log();
        claim(&mut b, 1, 30).unwrap();
        let tries: Vec<u64> = lab
            .log()
            .into_iter()
            .filter(|(_, a, _)| a == action)
            .map(|(_, _, s)| s)
            .collect();
        assert_eq!(tries, [503, 503, 200], "{mode}: two throttled, one done");
        let st = lab.state();
        match mode {
            "secondary_ip" => assert_eq!(lab.holders(VIP), [ENI[1]]),
            "eip" => assert_eq!(lab.eip(EIP_VIP)["private_ip"], PRIMARY[1]),
            _ => assert_eq!(lab.route(RTB)["eni"], ENI[1], "{}", st["route_tables"]),
        }
        assert!(b.check(&nic(1), 0, &deadline(5)).unwrap(), "{mode}");
        assert!(
            b.check(&nic(1), 10, &deadline(8)).unwrap(),
            "{mode}: the deep check re-reads the lagging API"
        );
    }
}

/// A throttled API that never recovers: the claim ends Transient by its deadline, nothing
/// is reported held.
#[test]
fn a_claim_ends_by_its_deadline() {
    let lab = Lab::start(|_| {});
    lab.fault(json!({"kind": "rate_limit", "cloud": "aws", "service": "ec2", "api": "AssignPrivateIpAddresses"}));
    let mut b = lab.aws(1, VIP, &[]);
    let d = deadline(4);
    let budget = d.remaining();
    let t = Instant::now();
    match b.claim(&nic(1), &d).map_err(CloudError::into_kind) {
        Err(CloudError::Transient(m)) => assert!(m.contains("RequestLimitExceeded"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
    assert!(
        t.elapsed() <= budget + Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(lab.holders(VIP), [ENI[0]]);
}

/// `f` must return within `budget` (and a little scheduling slack).
fn within<T>(budget: Duration, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    assert!(
        t.elapsed() <= budget + Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    r
}

/// Stop's release is a new process with stop's budget: an EC2 API that hangs ends it by
/// that budget (Transient, nothing half-done), an IMDS that hangs by the 2 s probe; once
/// both answer, a fresh release gives the VIP up.
#[test]
fn release_is_best_effort_within_its_budget() {
    let lab = Lab::start(|_| {});
    claim(&mut lab.aws(1, VIP, &[]), 1, 20).unwrap();
    lab.fault(json!({"kind": "hang", "cloud": "aws", "service": "ec2", "ms": 20000}));
    match within(Duration::from_secs(5), || {
        lab.aws(1, VIP, &[]).release(&deadline(5))
    })
    .map_err(CloudError::into_kind)
    {
        Err(CloudError::Transient(_)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(lab.holders(VIP), [ENI[1]], "nothing half-done");
    lab.admin("DELETE", "/admin/faults", None);
    lab.fault(json!({"kind": "hang", "cloud": "aws", "service": "metadata", "ms": 20000}));
    assert!(within(Duration::from_secs(2), || lab
        .aws(1, VIP, &[])
        .release(&deadline(5)))
    .is_err());
    lab.admin("DELETE", "/admin/faults", None);
    lab.clear_log();
    lab.aws(1, VIP, &[]).release(&deadline(5)).unwrap();
    assert_eq!(lab.writes(), ["UnassignPrivateIpAddresses"]);
    assert!(lab.holders(VIP).is_empty());
}

fn verdicts(steps: &[cloudvip::cloud::Step]) -> Vec<(String, String)> {
    use cloudvip::cloud::Verdict;
    steps
        .iter()
        .map(|s| {
            let v = match &s.verdict {
                Verdict::Pass(m) => format!("pass: {m}"),
                Verdict::Fail { problem, fix } => format!("FAIL: {problem} (fix: {fix})"),
                Verdict::Skip(m) => format!("skip: {m}"),
            };
            (s.name.to_owned(), v)
        })
        .collect()
}

/// status: who holds the secondary IP, the Elastic IP and each route, `ours` from this
/// instance's point of view.
#[test]
fn status_rows_name_the_holders() {
    let lab = Lab::start(|_| {});
    let p = [(cfg::PUBLIC_IP, EIP_VIP)];
    claim(&mut lab.aws(1, VIP, &p), 1, 20).unwrap();
    lab.settle();
    for (node, ours) in [(1, true), (0, false)] {
        let rows = lab
            .aws(node, VIP, &p)
            .holder_rows(Some(&nic(node)), &deadline(10))
            .unwrap();
        let seen: Vec<(String, bool, bool)> = rows
            .iter()
            .map(|r| (r.what.clone(), r.held, r.ours))
            .collect();
        assert_eq!(
            seen,
            [
                (format!("secondary IP {VIP}"), true, ours),
                (format!("Elastic IP {EIP_VIP}"), true, ours)
            ]
        );
        assert!(
            rows[0].holder.contains(ENI[1]) && rows[1].holder.contains(VIP),
            "{}",
            rows[1].holder
        );
    }
    let p = [(cfg::MODE, "route"), (cfg::ROUTE_TABLES, RTB)];
    let rows = lab
        .aws(1, OVERLAY, &p)
        .holder_rows(None, &deadline(10))
        .unwrap();
    assert_eq!((rows.len(), rows[0].ours), (1, false));
    assert!(rows[0].holder.contains(ENI[0]), "{}", rows[0].holder);
}

/// diagnose passes every step with the example world's policy, probing each write of the
/// mode without changing anything (AssignPrivateIpAddresses and UnassignPrivateIpAddresses,
/// which have no DryRun, with the subnet's reserved network address); a policy without one
/// action fails the permissions step naming it, with the policy to grant.
#[test]
fn diagnose_probes_each_write_without_changing_anything() {
    let lab = Lab::start(|_| {});
    let modes: [(&str, Vec<(&str, &str)>); 3] = [
        (VIP, vec![(cfg::PUBLIC_IP, EIP_VIP)]),
        (EIP_SPARE, vec![(cfg::MODE, "eip")]),
        (
            OVERLAY,
            vec![
                (cfg::MODE, "route"),
                (cfg::ROUTE_TABLES, RTB_OTHER),
                (cfg::ROUTING_TABLE_ROLE, ROLE_OTHER),
            ],
        ),
    ];
    let before = lab.state();
    for (ip, p) in &modes {
        lab.clear_log();
        let steps = verdicts(&diagnose(
            &mut lab.aws(1, ip, p),
            Some(&nic(1)),
            &deadline(20),
        ));
        assert!(
            steps.iter().all(|(_, v)| v.starts_with("pass")),
            "{ip}: {steps:#?}"
        );
        assert_eq!(steps.len(), 5, "{steps:#?}");
        assert!(lab.writes().is_empty(), "{ip}: {:?}", lab.log());
    }
    let perm = verdicts(&diagnose(
        &mut lab.aws(1, VIP, &[]),
        Some(&nic(1)),
        &deadline(20),
    ));
    assert!(
        perm[2].1.contains("ec2:AssignPrivateIpAddresses")
            && perm[2].1.contains("ec2:UnassignPrivateIpAddresses"),
        "{perm:#?}"
    );
    let after = lab.state();
    for k in ["enis", "elastic_ips", "route_tables"] {
        assert_eq!(before[k], after[k], "{k} unchanged");
    }

    let lab = Lab::start(|w| {
        let r = w.roles.iter_mut().find(|r| r.name == "ha-node").unwrap();
        r.deny = vec![
            "ec2:UnassignPrivateIpAddresses".into(),
            "ec2:AssociateAddress".into(),
        ];
    });
    let steps = verdicts(&diagnose(
        &mut lab.aws(1, VIP, &[(cfg::PUBLIC_IP, EIP_VIP)]),
        Some(&nic(1)),
        &deadline(20),
    ));
    let (name, v) = &steps[2];
    assert_eq!(name, "permissions");
    assert!(
        v.starts_with(
            "FAIL: the policy lacks ec2:UnassignPrivateIpAddresses, ec2:AssociateAddress"
        ),
        "{v}"
    );
    assert!(
        v.contains("\"ec2:AssignPrivateIpAddresses\""),
        "the policy to grant: {v}"
    );
    assert!(!v.contains("lacks ec2:AssignPrivateIpAddresses"), "{v}");
}

/// An IMDS that does not answer: the metadata step fails within its budget with the fix,
/// the others are skipped.
#[test]
fn diagnose_without_imds() {
    let lab = Lab::start(|_| {});
    lab.fault(json!({"kind": "hang", "cloud": "aws", "service": "metadata", "ms": 20000}));
    let steps = within(Duration::from_secs(4), || {
        verdicts(&diagnose(
            &mut lab.aws(1, VIP, &[]),
            Some(&nic(1)),
            &deadline(20),
        ))
    });
    assert!(
        steps[0].1.starts_with("FAIL") && steps[0].1.contains("hop-limit"),
        "{steps:#?}"
    );
    assert!(
        steps[1..].iter().all(|(_, v)| v.starts_with("skip")),
        "{steps:#?}"
    );
}

/// An instance with two ENIs in the subnet: the VIP goes to the ENI whose MAC is the
/// nic's, never just the first; the release (which needs no nic) finds it there.
#[test]
fn the_eni_is_the_nics_not_the_first() {
    let lab = Lab::start(|w| {
        let mut second = w.instances[1].enis[0].clone();
        second.id = "eni-0c10d0000000000e3".into();
        second.mac = "02:66:00:00:00:03".into();
        second.private_ip = "10.0.1.13".parse().unwrap();
        w.instances[1].enis.push(second);
    });
    let mut b = lab.aws(1, VIP, &[]);
    // nic(2) has the MAC 02:66:00:00:00:03.
    let d = deadline(20);
    b.claim(&nic(2), &d).unwrap();
    assert_eq!(lab.holders(VIP), ["eni-0c10d0000000000e3"]);
    assert!(b.check(&nic(2), 10, &deadline(5)).unwrap());
    assert!(!b.check(&nic(1), 0, &deadline(5)).unwrap());
    match lab.aws(1, VIP, &[]).claim(
        &Nic {
            name: "eth9".into(),
            mac: Some([2, 0x66, 0, 0, 0, 9]),
        },
        &d,
    ) {
        Err(CloudError::NotFound(m)) => {
            assert!(m.contains("02:66:00:00:00:09") && m.contains("eth9"), "{m}")
        }
        other => panic!("{:?}", other.err()),
    }
    lab.clear_log();
    lab.aws(1, VIP, &[]).release(&deadline(5)).unwrap();
    assert_eq!(lab.writes(), ["UnassignPrivateIpAddresses"]);
    assert!(lab.holders(VIP).is_empty());
}

/// The credentials parameters reach EC2 and STS: a 0600 credentials file's profile signs
/// (a read-only user: Denied naming the write), and a role that requires an ExternalId is
/// assumed only with external_id (else Denied naming sts:AssumeRole, nothing changed).
#[test]
fn credentials_file_and_external_id_are_used() {
    use std::os::unix::fs::PermissionsExt as _;
    let lab = Lab::start(|w| {
        let r = w.roles.iter_mut().find(|r| r.name == "rtb-editor").unwrap();
        r.external_id = Some("ha-cluster-1".into());
    });
    let file = lab.state.path().join("credentials");
    std::fs::write(
        &file,
        "[auditor]\naws_access_key_id = AKIACLOUDVIPSIM0002\naws_secret_access_key = cloudvip-sim-secret-key-0002\n",
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = file.display().to_string();
    let mut aud = lab.aws(
        1,
        VIP,
        &[(cfg::CREDENTIALS, &path), (cfg::PROFILE, "auditor")],
    );
    match claim(&mut aud, 1, 10) {
        Err(CloudError::Denied(m)) => assert!(m.contains("ec2:AssignPrivateIpAddresses"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(lab.holders(VIP), [ENI[0]]);
    let route = [
        (cfg::MODE, "route"),
        (cfg::ROUTE_TABLES, RTB_OTHER),
        (cfg::ROUTING_TABLE_ROLE, ROLE_OTHER),
    ];
    match claim(&mut lab.aws(1, OVERLAY, &route), 1, 10) {
        Err(CloudError::Denied(m)) => assert!(m.contains("sts:AssumeRole"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(lab.route(RTB_OTHER)["instance"], INSTANCE[0]);
    let mut with = route.to_vec();
    with.push((cfg::EXTERNAL_ID, "ha-cluster-1"));
    claim(&mut lab.aws(1, OVERLAY, &with), 1, 20).unwrap();
    assert_eq!(lab.route(RTB_OTHER)["eni"], ENI[1]);
}

/// An ENI at its instance type's limit of private IPs: the claim fails as this node's
/// setup (another node's ENI may have room), nothing moved.
#[test]
fn a_full_eni_is_this_nodes_setup() {
    let lab = Lab::start(|w| w.instances[1].private_ips_per_eni = Some(1));
    match claim(&mut lab.aws(1, VIP, &[]), 1, 10) {
        Err(CloudError::Local(m)) => assert!(m.contains("PrivateIpAddressLimitExceeded"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(lab.holders(VIP), [ENI[0]]);
}

/// Whatever EC2's default for reassociation (DEVIATIONS.md: "allow" today's documentation,
/// "deny" as older accounts saw it), the claim asks for it explicitly and moves the
/// Elastic IP from the other node.
#[test]
fn reassociation_is_asked_for_not_assumed() {
    let lab = Lab::start(|w| w.eip_reassociation_default = "deny".into());
    let p = [(cfg::MODE, "eip")];
    claim(&mut lab.aws(1, EIP_VIP, &p), 1, 20).unwrap();
    let e = lab.eip(EIP_VIP);
    assert_eq!(
        (e["eni"].as_str(), e["private_ip"].as_str()),
        (Some(ENI[1]), Some(PRIMARY[1]))
    );
}

/// Over HTTPS the emulator's certificate is verified: with its CA as ca_bundle the claim
/// works; with the system's trust store alone it fails as this node's setup, naming
/// ca_bundle, before anything changed.
#[test]
fn tls_is_verified_against_the_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    cloudvip_sim::tls::generate(dir.path(), &["127.0.0.1".to_owned()]).unwrap();
    let world = || {
        let mut w = aws::world();
        w.server = crate::clouds::server(dir.path());
        w
    };
    let ca = dir.path().join("ca.pem").display().to_string();
    let lab = Lab::start_world(
        world(),
        HttpConfig {
            ca_bundle: Some(ca),
            ..Default::default()
        },
    );
    assert!(lab.api.starts_with("https://"), "{}", lab.api);
    claim(&mut lab.aws(1, VIP, &[]), 1, 20).unwrap();
    assert_eq!(lab.holders(VIP), [ENI[1]]);
    let lab = Lab::start_world(world(), HttpConfig::default());
    match claim(&mut lab.aws(1, VIP, &[]), 1, 10) {
        Err(CloudError::Local(m)) => assert!(m.contains("ca_bundle"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(lab.holders(VIP), [ENI[0]]);
}

/// A restart in place (stop, then start on the same node at once, as after a failed
/// monitor or in ocf-tester): EC2's and IMDS's reads still show the VIP (and its Elastic
/// IP) ours for a while after the release, yet the start assigns it again rather than
/// believing them; a start after that one writes nothing.
#[test]
fn a_restart_in_place_is_not_fooled_by_reads_that_lag() {
    for (ip, p, write) in [
        (
            VIP,
            vec![(cfg::PUBLIC_IP, EIP_VIP)],
            "AssignPrivateIpAddresses",
        ),
        (EIP_VIP, vec![(cfg::MODE, "eip")], "AssociateAddress"),
    ] {
        let lab = Lab::start(|w| {
            w.consistency.network_interfaces_ms = 3000;
            w.consistency.addresses_ms = 3000;
            w.consistency.metadata_ms = 3000;
        });
        claim(&mut lab.aws(0, ip, &p), 0, 20).unwrap();
        lab.settle();
        lab.aws(0, ip, &p).release(&deadline(5)).unwrap();
        assert!(lab.holders(VIP).is_empty() || ip == EIP_VIP);
        assert!(lab.eip(EIP_VIP).is_null(), "{ip}: released");
        lab.clear_log();
        claim(&mut lab.aws(0, ip, &p), 0, 20).unwrap();
        assert!(
            lab.writes().contains(&write.to_owned()),
            "{ip}: {:?}",
            lab.log()
        );
        let e = lab.eip(EIP_VIP);
        assert_eq!(e["eni"], ENI[0], "{ip}: the Elastic IP is ours again");
        if ip == VIP {
            assert_eq!(lab.holders(VIP), [ENI[0]]);
        }
        lab.settle();
        lab.clear_log();
        claim(&mut lab.aws(0, ip, &p), 0, 20).unwrap();
        assert!(lab.writes().is_empty(), "{ip}: {:?}", lab.log());
    }
}
