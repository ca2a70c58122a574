//! The AWS test world: the example world file (`crates/sim/examples/world-aws.toml`: two
//! nodes, the VIP and an Elastic IP on node-a, a spare Elastic IP, the overlay route in a
//! table of this account and one of another), the emulator started from it on loopback,
//! and readers of its AWS state (`/admin/aws/state`, never lagged).

use std::path::Path;

use cloudvip_sim::World;
use serde_json::{json, Value};

use super::find;
use crate::cloudlab::CloudLab;
use crate::netns::Lab;
use crate::util::Agent;

pub const WORLD: &str = include_str!("../../crates/sim/examples/world-aws.toml");
/// The world's overlay IP (route tables' `/32`).
pub const OVERLAY: &str = "192.168.100.10";

/// The VIP and both Elastic IPs start on nobody (the example world puts them on node-a).
pub fn no_vip(w: &mut cloudvip_sim::aws::AwsWorld) {
    w.instances[0].enis[0].secondary_ips.clear();
    for a in &mut w.elastic_ips {
        a.eni = None;
        a.private_ip = None;
    }
}

/// The example world, changed by `edit`, running on loopback; with its EC2/STS endpoint.
pub fn start(
    edit: impl FnOnce(&mut cloudvip_sim::aws::AwsWorld),
) -> (cloudvip_sim::SimHandle, String) {
    let mut w = world();
    edit(w.aws.as_mut().unwrap());
    start_world(w)
}

/// The example world, to change beyond its `[aws]` part (e.g. `[server]` TLS).
pub fn world() -> cloudvip_sim::World {
    cloudvip_sim::World::from_toml(WORLD).unwrap()
}

/// `w` running on loopback; with its EC2/STS endpoint.
pub fn start_world(w: cloudvip_sim::World) -> (cloudvip_sim::SimHandle, String) {
    let sim = cloudvip_sim::Sim::start(w).unwrap();
    let api = sim.endpoints()["aws"]["api"].as_str().unwrap().to_owned();
    (sim, api)
}

/// The ENIs that have `ip`, as primary or secondary address.
pub fn holders(st: &Value, ip: &str) -> Vec<String> {
    st["enis"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["primary_ip"] == ip
                || e["secondary_ips"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == ip)
        })
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The association (`id`, `eni`, `private_ip`, `instance`) of the Elastic IP whose
/// address or allocation id is `eip`; null when it has none.
pub fn eip(st: &Value, eip: &str) -> Value {
    find(&st["elastic_ips"], "public_ip", eip)
        .or_else(|| find(&st["elastic_ips"], "allocation_id", eip))
        .unwrap_or_else(|| panic!("no Elastic IP {eip}"))["association"]
        .clone()
}

/// The target (`{"eni","instance"}`, `{"gateway"}`, …) of the route for `dest` in
/// `table`; null when there is no such route.
pub fn route(st: &Value, table: &str, dest: &str) -> Value {
    let t = find(&st["route_tables"], "id", table).unwrap_or_else(|| panic!("no table {table}"));
    find(&t["routes"], "destination", dest).map_or(Value::Null, |r| r["target"].clone())
}

/// The readers above on a lab's live state: a lab says how it reads the state, and gets
/// the rest.
pub trait AwsState {
    fn state(&self) -> Value;

    fn holders(&self, ip: &str) -> Vec<String> {
        holders(&self.state(), ip)
    }

    fn eip(&self, eip_: &str) -> Value {
        eip(&self.state(), eip_)
    }

    /// The target of the overlay IP's route in `table`.
    fn route(&self, table: &str) -> Value {
        route(&self.state(), table, &format!("{OVERLAY}/32"))
    }
}

// ---- the lab every cloud's scenarios run in (tests/backends.rs) -------------------------

/// The VIP of the standard lab, a secondary private IP of node-a's ENI, with the Elastic
/// IP [`PUBLIC`] associated with it.
pub const VIP: &str = "10.0.1.100";
pub const PUBLIC: &str = "203.0.113.10";
/// Node i's ENI (the lab's VM i: its eth0 MAC).
pub const ENIS: [&str; 3] = [
    "eni-0c10d0000000000e1",
    "eni-0c10d0000000000e2",
    "eni-0c10d0000000000e3",
];

/// The example world on the lab's network: EC2 and STS over HTTPS at 10.66.0.254:443, one
/// IMDS on 169.254.169.254 telling the instances apart by source address (VM i is
/// 10.66.0.i), and a third node, node-c (10.0.1.13, nothing on it).
pub fn lab_world(dir: &Path) -> World {
    let mut w = world();
    w.server = super::server(dir);
    let a = w.aws.as_mut().expect("an AWS world");
    a.api_listen = "10.66.0.254:443".parse().unwrap();
    a.metadata_per_instance = false;
    a.metadata_listen = Some("169.254.169.254:80".parse().unwrap());
    let mut c = a.instances[1].clone();
    c.id = "i-0c10d000000000003".into();
    c.name = "node-c".into();
    c.enis[0].id = ENIS[2].into();
    c.enis[0].mac = Lab::mac(3);
    c.enis[0].private_ip = "10.0.1.13".parse().unwrap();
    a.instances.push(c);
    for (n, i) in a.instances.iter_mut().enumerate() {
        i.metadata_source = Some(format!("10.66.0.{}", n + 1).parse().unwrap());
    }
    w
}

super::lab_struct! {
    /// The standard lab: [`lab_world`] in the lab's cloud namespace.
    AwsLab
}

impl AwsState for AwsLab {
    fn state(&self) -> Value {
        self.c.admin("GET", "/admin/aws/state", None)
    }
}

impl AwsLab {
    pub fn new() -> AwsLab {
        let c = CloudLab::start(lab_world);
        let api = c.endpoints["aws"]["api"].as_str().unwrap().to_owned();
        AwsLab { c, api }
    }

    /// The agent on VM `i` with cloud=aws and the lab's EC2 endpoint, then `params`.
    pub fn agent(&self, i: usize, action: &str, params: &[(&str, &str)]) -> Agent {
        self.c
            .agent(i, action)
            .params(&[("ip", VIP), ("cloud", "aws"), ("api_endpoint", &self.api)])
            .params(params)
    }
}

impl super::TestCloud for AwsLab {
    super::lab_basics!("aws", VIP);
    fn tester_params(&self) -> Vec<String> {
        vec![
            "cloud=aws".into(),
            format!("api_endpoint={}", self.api),
            format!("ca_bundle={}", self.c.ca),
            format!("public_ip={PUBLIC}"),
        ]
    }
    fn vip_at(&self, i: usize) -> bool {
        self.holders(VIP) == [ENIS[i - 1]]
    }
    fn transient_faults(&self) -> Vec<Value> {
        let ec2 = |v: Value| {
            let mut v = v;
            v["cloud"] = json!("aws");
            v["service"] = json!("ec2");
            v
        };
        vec![
            ec2(json!({"kind": "error", "status": 503, "count": 2})),
            ec2(
                json!({"kind": "error", "status": 500, "api": "AssignPrivateIpAddresses", "count": 2}),
            ),
            // RequestLimitExceeded, EC2's throttling answer.
            ec2(json!({"kind": "rate_limit", "count": 3})),
            ec2(json!({"kind": "reset", "count": 2})),
            ec2(json!({"kind": "hang", "ms": 11000, "count": 1})),
            ec2(json!({"kind": "latency", "ms": 300})),
            json!({"kind": "error", "status": 500, "cloud": "aws", "service": "metadata", "api": "imds.identity", "count": 2}),
            json!({"kind": "error", "status": 503, "cloud": "aws", "service": "metadata", "api": "imds.token", "count": 1}),
            json!({"kind": "error", "status": 500, "cloud": "aws", "service": "metadata", "api": "imds.credentials", "count": 1}),
        ]
    }
    fn fault_params(&self) -> Vec<(&'static str, &'static str)> {
        vec![("public_ip", PUBLIC)]
    }
    /// Each start fetches the instance profile's credentials anew (the cache is emptied),
    /// so that a fault on IMDS's credentials matters.
    fn before_fault(&self) {
        for e in std::fs::read_dir(self.c.dir.path()).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("cloudvip-aws-credentials") {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
    }
    /// The Elastic IP followed the VIP to its new ENI.
    fn check_extras(&self, fault: &Value) {
        let on = self.holders(VIP);
        let a = self.eip(PUBLIC);
        assert!(
            on.len() == 1 && a["eni"] == on[0].as_str() && a["private_ip"] == VIP,
            "fault {fault}: Elastic IP {PUBLIC} is on {a} (the VIP on {on:?})"
        );
    }
}

// ---- the cluster tests' AWS ------------------------------------------------------------

use cloudvip::cloud::aws::config::Mode;

/// The cluster's route tables of the overlay IP, both of this account; the first is the
/// main table, with the VPC's default route to the internet gateway.
const CLUSTER_TABLES: [&str; 2] = ["rtb-0c10d0000000000c1", "rtb-0c10d0000000000c2"];
const IGW: &str = "igw-0c10d0000000000d1";
/// Another secondary private IP of the cluster world, on node2's ENI.
const CLUSTER_OTHER_IP: &str = "10.66.0.50";
/// An Elastic IP nobody may touch.
const SPARE: &str = "203.0.113.11";
const EIP_ALLOC: &str = "eipalloc-0c10d00000000000f1";
const SUBNET: &str = "subnet-0c10d0000000000b1";
const VPC: &str = "vpc-0c10d0000000000a1";

/// AWS for `tests/cluster` in one mode: nodes node1..n, whose ENIs have the nodes' eth0
/// MACs and the primary private IPs 10.66.0.1i (AWS reserves a subnet's first four
/// addresses, the nodes' kernel addresses; the agent matches its ENI by MAC anyway), the
/// instance profile `ha-node` with what every mode needs (`ha-node-ro` may only read), EC2
/// and STS under their real names in eu-west-1, IMDS on 169.254.169.254 by source address.
/// secondary_ip: the VIP on node1's ENI with the Elastic IP [`PUBLIC`] on it, another
/// secondary IP on node2's; eip: the Elastic IP on node1's primary address, and the client
/// reaches it through the internet gateway's NAT ([`Nat`]); route: the VPC is
/// 10.66.0.0/26, so the VIP is an overlay IP, routed in two tables to node1's ENI.
pub struct Aws(Mode);
pub const AWS_SECONDARY_IP: crate::cluster::clouds::Cloud = &Aws(Mode::SecondaryIp);
pub const AWS_EIP: crate::cluster::clouds::Cloud = &Aws(Mode::ElasticIp);
pub const AWS_ROUTE: crate::cluster::clouds::Cloud = &Aws(Mode::Route);

fn cluster_eni(i: usize) -> String {
    format!("eni-0c10d00000000{i:04}")
}

fn cluster_primary(i: usize) -> String {
    format!("10.66.0.1{i}")
}

impl Aws {
    fn state(c: &crate::cluster::harness::Cluster) -> Value {
        c.admin("GET", "/admin/aws/state", None)
    }

    /// What does not move in any mode: the other secondary IP, the primaries, the spare
    /// Elastic IP, the default route; nothing created.
    fn unchanged(&self, c: &crate::cluster::harness::Cluster, st: &Value) -> Result<(), String> {
        for i in 1..=c.n {
            if holders(st, &cluster_primary(i)) != [cluster_eni(i)] {
                return Err(format!("the primary IP of node{i} moved"));
            }
        }
        if self.0 == Mode::SecondaryIp && holders(st, CLUSTER_OTHER_IP) != [cluster_eni(2)] {
            return Err(format!("{CLUSTER_OTHER_IP} moved"));
        }
        let spare = eip(st, SPARE);
        if !spare.is_null() {
            return Err(format!("the spare Elastic IP got associated: {spare}"));
        }
        let n = st["enis"].as_array().map_or(0, Vec::len);
        if n != c.n {
            return Err(format!("{n} ENIs (want {})", c.n));
        }
        if route(st, CLUSTER_TABLES[0], "0.0.0.0/0") != json!({ "gateway": IGW }) {
            return Err("the default route changed".into());
        }
        Ok(())
    }

    /// The state, after checking what must not change; and who holds the VIP.
    fn read(&self, c: &crate::cluster::harness::Cluster) -> Result<(Value, Vec<String>), String> {
        let st = Aws::state(c);
        self.unchanged(c, &st)?;
        let on = holders(&st, crate::cluster::harness::VIP);
        Ok((st, on))
    }

    /// The Elastic IP on `private_ip` of node `i`'s ENI.
    fn eip_on(st: &Value, i: usize, private_ip: &str) -> Result<(), String> {
        let a = eip(st, PUBLIC);
        if a["eni"] != cluster_eni(i).as_str() || a["private_ip"] != private_ip {
            return Err(format!(
                "Elastic IP {PUBLIC}: {a} (want {private_ip} of node{i}'s {})",
                cluster_eni(i)
            ));
        }
        Ok(())
    }

    /// Both tables route the overlay IP to node `i`'s ENI.
    fn routed_to(st: &Value, i: usize) -> Result<(), String> {
        let dest = format!("{}/32", crate::cluster::harness::VIP);
        for t in CLUSTER_TABLES {
            let r = route(st, t, &dest);
            if r["eni"] != cluster_eni(i).as_str() {
                return Err(format!("{t} routes {dest} to {r} (want node{i}'s ENI)"));
            }
        }
        Ok(())
    }
}

impl crate::cluster::clouds::ClusterCloud for Aws {
    fn name(&self) -> &'static str {
        match self.0 {
            Mode::SecondaryIp => "AWS secondary_ip",
            Mode::ElasticIp => "AWS eip",
            Mode::Route => "AWS route",
        }
    }

    fn world(
        &self,
        dir: &Path,
        n: usize,
        latency: crate::cluster::clouds::Latency,
        denied: Option<usize>,
    ) -> World {
        use crate::cluster::clouds::Latency;
        use cloudvip_sim::aws::world::{Consistency, ElasticIpConfig, RoleConfig};
        let vip = crate::cluster::harness::VIP;
        let mut w = lab_world(dir);
        let a = w.aws.as_mut().expect("an AWS world");
        a.consistency = match latency {
            // Reads show every change at once.
            Latency::Zero => super::spec(json!({
                "instances_ms": 0, "network_interfaces_ms": 0, "addresses_ms": 0,
                "route_tables_ms": 0, "metadata_ms": 0,
            })),
            // The example world's lags: EC2's reads 500 ms behind, IMDS 1 s.
            Latency::Realistic => Consistency::default(),
        };
        let cidr = if self.0 == Mode::Route {
            "10.66.0.0/26"
        } else {
            "10.66.0.0/24"
        };
        a.vpcs.retain(|v| v.id == VPC);
        a.vpcs[0].cidr = cidr.parse().unwrap();
        a.subnets.retain(|s| s.id == SUBNET);
        a.subnets[0].cidr = cidr.parse().unwrap();
        let template = a.instances[1].clone();
        a.instances.clear();
        for i in 1..=n {
            let mut node = template.clone();
            node.id = format!("i-0c10d00000000000{i}");
            node.name = format!("node{i}");
            node.metadata_source = Some(format!("10.66.0.{i}").parse().unwrap());
            node.iam_role = Some(
                if denied == Some(i) {
                    "ha-node-ro"
                } else {
                    "ha-node"
                }
                .into(),
            );
            // t3.micro's 2 addresses per ENI would leave node2 (primary + another secondary
            // IP) no room for the VIP: a t3.medium has 6.
            node.instance_type = "t3.medium".into();
            let e = &mut node.enis[0];
            e.id = cluster_eni(i);
            e.mac = Lab::mac(i);
            e.subnet = SUBNET.into();
            e.private_ip = cluster_primary(i).parse().unwrap();
            e.secondary_ips = match (self.0, i) {
                (Mode::SecondaryIp, 1) => vec![vip.parse().unwrap()],
                (Mode::SecondaryIp, 2) => vec![CLUSTER_OTHER_IP.parse().unwrap()],
                _ => vec![],
            };
            // aws-vpc-move-ip needs it off; on, as EC2 makes ENIs, elsewhere.
            e.source_dest_check = self.0 != Mode::Route;
            a.instances.push(node);
        }
        let eip = |alloc: &str, ip: &str, on: Option<String>| ElasticIpConfig {
            allocation_id: alloc.into(),
            public_ip: ip.parse().unwrap(),
            private_ip: on.as_ref().map(|p| p.parse().unwrap()),
            eni: on.map(|_| cluster_eni(1)),
        };
        a.elastic_ips = vec![
            eip(
                EIP_ALLOC,
                PUBLIC,
                match self.0 {
                    Mode::SecondaryIp => Some(vip.to_owned()),
                    Mode::ElasticIp => Some(cluster_primary(1)),
                    Mode::Route => None,
                },
            ),
            eip("eipalloc-0c10d00000000000f2", SPARE, None),
        ];
        for t in &mut a.route_tables {
            t.account_id = None;
            t.vpc = VPC.into();
            t.subnets = vec![];
            for r in &mut t.routes {
                if r.destination.to_string().ends_with("/32") {
                    r.destination = format!("{vip}/32").parse().unwrap();
                    (r.eni, r.instance) = (Some(cluster_eni(1)), None);
                }
            }
        }
        a.route_tables[0].subnets = vec![SUBNET.into()];
        a.roles.retain(|r| r.name == "ha-node");
        let mut ro: RoleConfig = a.roles[0].clone();
        ro.name = "ha-node-ro".into();
        ro.allow = Some(vec!["ec2:Describe*".into()]);
        a.roles.push(ro);
        w
    }

    /// Every EC2 and STS call takes a while too, not only the reads' lag.
    fn started(
        &self,
        c: &crate::cluster::harness::Cluster,
        latency: crate::cluster::clouds::Latency,
    ) {
        if latency == crate::cluster::clouds::Latency::Realistic {
            for service in ["ec2", "sts"] {
                c.fault(json!({"kind": "latency", "ms": 150, "cloud": "aws", "service": service}));
            }
        }
    }

    /// eip: the client is on the internet side of the Elastic IP.
    fn client_path(&self, c: &mut crate::cluster::harness::Cluster) {
        if self.0 == Mode::ElasticIp {
            Nat::start(c);
        }
    }

    fn create_params(&self) -> &'static [&'static str] {
        match self.0 {
            Mode::SecondaryIp => &["cloud=aws", "public_ip=203.0.113.10"],
            // The lab's nodes have no default route to find the public address's NIC by
            // (EC2 instances have one).
            Mode::ElasticIp => &["cloud=aws", "mode=eip", "local_mode=none", "nic=eth0"],
            Mode::Route => &[
                "cloud=aws",
                "mode=route",
                "route_tables=rtb-0c10d0000000000c1,rtb-0c10d0000000000c2",
            ],
        }
    }

    /// eip: the Elastic IP is the resource's address.
    fn ip_arg(&self) -> &'static str {
        match self.0 {
            Mode::ElasticIp => "ip=203.0.113.10",
            _ => "ip=10.66.0.100",
        }
    }

    fn check_state(
        &self,
        c: &crate::cluster::harness::Cluster,
        active: usize,
    ) -> Result<(), String> {
        let vip = crate::cluster::harness::VIP;
        let (st, on) = self.read(c)?;
        match self.0 {
            Mode::SecondaryIp => {
                if on != [cluster_eni(active)] {
                    return Err(format!("VIP on {on:?} (want node{active}'s ENI)"));
                }
                Aws::eip_on(&st, active, vip)
            }
            Mode::ElasticIp => {
                if !on.is_empty() {
                    return Err(format!("eip mode assigned the VIP to {on:?}"));
                }
                Aws::eip_on(&st, active, &cluster_primary(active))
            }
            Mode::Route => {
                if !on.is_empty() {
                    return Err(format!("route mode assigned the overlay IP to {on:?}"));
                }
                Aws::routed_to(&st, active)
            }
        }
    }

    /// Stop gives up what it holds as the anchors do: secondary_ip unassigns the VIP and
    /// disassociates its Elastic IP (awsvip), eip disassociates (awseip), route leaves the
    /// routes on `holder` (aws-vpc-move-ip).
    fn check_released(
        &self,
        c: &crate::cluster::harness::Cluster,
        holder: usize,
    ) -> Result<(), String> {
        let vip = crate::cluster::harness::VIP;
        let (st, on) = self.read(c)?;
        if !on.is_empty() {
            return Err(format!("{vip} is still on {on:?}"));
        }
        match self.0 {
            Mode::Route => Aws::routed_to(&st, holder),
            _ if !eip(&st, PUBLIC).is_null() => Err(format!(
                "Elastic IP {PUBLIC} still associated: {}",
                eip(&st, PUBLIC)
            )),
            _ => Ok(()),
        }
    }

    /// The console's hand: the VIP unassigned, the Elastic IP disassociated, the overlay
    /// route pointed at the internet gateway (admin routes: the emulator's own writes).
    fn remove_vip_behind_back(&self, c: &crate::cluster::harness::Cluster, active: usize) {
        let vip = crate::cluster::harness::VIP;
        match self.0 {
            Mode::SecondaryIp => c.admin(
                "POST",
                &format!("/admin/aws/enis/{}/unassign", cluster_eni(active)),
                Some(json!({ "ips": [vip] })),
            ),
            Mode::ElasticIp => c.admin(
                "POST",
                &format!("/admin/aws/elastic-ips/{EIP_ALLOC}/disassociate"),
                None,
            ),
            Mode::Route => c.admin(
                "PUT",
                &format!("/admin/aws/route-tables/{}/routes", CLUSTER_TABLES[0]),
                Some(json!({ "destination": format!("{vip}/32"), "gateway": IGW })),
            ),
        };
    }

    fn control_plane(&self) -> (&'static str, &'static [&'static str]) {
        ("aws", &["ec2", "sts"])
    }

    /// EC2's UnauthorizedOperation, with the action the agent was refused.
    fn names_denial(&self, reason: &str) -> bool {
        reason.contains(match self.0 {
            Mode::SecondaryIp => "ec2:AssignPrivateIpAddresses",
            Mode::ElasticIp => "ec2:AssociateAddress",
            Mode::Route => "ec2:ReplaceRoute",
        })
    }
}

/// The internet gateway's one-to-one NAT of the Elastic IP, for the client: [`PUBLIC`] on
/// the cloud namespace (the client routes 203.0.113.0/24 through it), where each TCP
/// connection to the node service's port is relayed to the instance whose ENI the Elastic
/// IP is associated with at that moment (the emulator's own, never lagged, state), as
/// AWS's gateway delivers it. Connections to nobody are closed. Bounded: stops when
/// dropped, after 10 minutes or 100 000 connections.
pub struct Nat {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Nat {
    fn start(c: &mut crate::cluster::harness::Cluster) {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        use std::time::{Duration, Instant};
        let port = crate::cluster::harness::PORT;
        crate::util::sh(&[
            "ip",
            "-n",
            &c.cloud_ns,
            "addr",
            "add",
            &format!("{PUBLIC}/32"),
            "dev",
            "eth0",
        ]);
        crate::util::sh(&[
            "ip",
            "-n",
            c.lab.ns(c.client()),
            "route",
            "add",
            "203.0.113.0/24",
            "via",
            "10.66.0.254",
        ]);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ns, flag, admin) = (c.cloud_ns.clone(), stop.clone(), c.admin_url());
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            Lab::enter(&ns);
            let l = TcpListener::bind((PUBLIC, port)).expect("bind the NAT");
            l.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            let end = Instant::now() + Duration::from_secs(600);
            let mut served = 0;
            while !flag.load(Ordering::SeqCst) && Instant::now() < end && served < 100_000 {
                let Ok((mut s, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                served += 1;
                let st = super::admin(&admin, "GET", "/admin/aws/state", None);
                let node = eip(&st, PUBLIC)["instance"]
                    .as_str()
                    .and_then(|id| find(&st["instances"], "id", id))
                    .and_then(|i| {
                        i["name"]
                            .as_str()?
                            .strip_prefix("node")?
                            .parse::<usize>()
                            .ok()
                    });
                let Some(i) = node else { continue };
                let to = format!("10.66.0.{i}:{port}").parse().unwrap();
                let Ok(mut up) = TcpStream::connect_timeout(&to, Duration::from_millis(100)) else {
                    continue;
                };
                let _ = up.set_read_timeout(Some(Duration::from_millis(300)));
                let mut buf = Vec::new();
                let _ = up.read_to_end(&mut buf);
                let _ = s.set_nonblocking(false);
                let _ = s.set_write_timeout(Some(Duration::from_millis(300)));
                let _ = s.write_all(&buf);
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the NAT did not start");
        c.guard(Box::new(Nat {
            stop,
            handle: Some(handle),
        }));
        c.client_addr = PUBLIC;
    }
}

impl Drop for Nat {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
