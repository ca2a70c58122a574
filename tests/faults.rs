//! The fault matrix (issue 9): every action Pacemaker runs (start, stop, probe = monitor
//! with the VIP absent here, monitor at depth 0 and 10) under each fault a cloud can throw,
//! on GCE and on OCI, against the emulator on real kernel networking. One lab per fault
//! (the rules need no scoping and the rows run in parallel), the cells of a row in order.
//! Each cell asserts the exit code, that the action ended within its budget (timeout −
//! margin: a bound, not a speed target) and the cloud state as the emulator sees it:
//! - monitor exits 0 with a WARNING when the kernel has the VIP and the cloud cannot be
//!   asked; 7 or 1 only on positive evidence; a probe (VIP absent here) is 7 whatever the
//!   cloud does; no monitor changes the cloud;
//! - stop exits 0, in time, and the VIP is gone from the kernel;
//! - start retries a transient fault until its deadline and then exits 1; a permanent one
//!   fails at once (the fault fired at most 3 times) with the code for where it lies and
//!   without touching the holder; a start that exits 0 is routed here by the cloud;
//! - nothing else in the cloud changes (other alias ranges, private and public IPs).
//!
//! The table is printed whether or not it passes; any wrong cell (✗) fails the test.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cloudlab::CloudLab;
use crate::util::{Agent, Run};

/// Pacemaker's operation timeout for every cell: short, so the matrix stays fast.
const TIMEOUT: Duration = Duration::from_millis(7000);
/// What the agent's exit (after its last step) may add to its budget; the time is taken
/// from the agent's exec, so a loaded machine's fork and `ip netns exec` do not count
/// (they count against the margin, before Pacemaker's kill at the timeout).
const EXIT_SLACK: Duration = Duration::from_millis(50);
/// Setup steps (no fault) get the default timeout and more: an OCI public IP left
/// ASSIGNING by the stuck-operation row needs up to 15 s to settle.
const SETUP_TIMEOUT: &str = "30000";
/// Labs at once per cloud: the cells mostly wait, but lab creation costs CPU.
const PARALLEL: usize = 9;

fn budget() -> Duration {
    TIMEOUT.saturating_sub(cloudvip::deadline::margin(TIMEOUT))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cloud {
    Gce,
    Oci,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Act {
    Start,
    Stop,
    Probe,
    Mon0,
    Mon10,
}

const ACTS: [Act; 5] = [Act::Start, Act::Stop, Act::Probe, Act::Mon0, Act::Mon10];

impl Act {
    fn label(self) -> &'static str {
        match self {
            Act::Start => "start",
            Act::Stop => "stop",
            Act::Probe => "probe",
            Act::Mon0 => "monitor 0",
            Act::Mon10 => "monitor 10",
        }
    }
}

#[derive(Clone, Copy)]
enum Want {
    /// Exactly this exit code (start 0: the cloud routes the VIP here).
    Exit(i32),
    /// 0 and a WARNING: the kernel has the VIP and the cloud could not be asked.
    Warn,
    /// A permanent fault: this code at once (the fault fired at most 3 times), the holder
    /// untouched.
    Once(i32),
}

impl Want {
    fn code(self) -> i32 {
        match self {
            Want::Exit(c) | Want::Once(c) => c,
            Want::Warn => 0,
        }
    }
}

/// A change to the world: a fault rule, or an admin call (one-shot or a setting).
#[derive(Clone)]
enum Step {
    Rule(Value),
    Admin(&'static str, String, Option<Value>),
}

fn rule(v: Value) -> Step {
    Step::Rule(v)
}

fn admin(method: &'static str, path: &str, body: Option<Value>) -> Step {
    Step::Admin(method, path.to_owned(), body)
}

struct Row {
    name: &'static str,
    /// Applied before the monitors and stop, and again before start.
    on: Vec<Step>,
    /// Undone after the monitors and stop (fault rules are deleted anyway).
    off: Vec<Step>,
    /// Only before start (e.g. the public IP unassigned, so that start must assign it).
    before_start: Vec<Step>,
    /// GCE: a service-account key file instead of the metadata server's tokens.
    key_file: bool,
    /// start, stop, probe, monitor 0, monitor 10.
    want: [Want; 5],
}

/// The usual expectations: start 1 after retrying, stop 0, probe 7, monitor 0 at depth 0;
/// at depth 10 `m10`.
fn transient(m10: Want) -> [Want; 5] {
    [
        Want::Exit(1),
        Want::Exit(0),
        Want::Exit(7),
        Want::Exit(0),
        m10,
    ]
}

fn permanent(code: i32) -> [Want; 5] {
    [
        Want::Once(code),
        Want::Exit(0),
        Want::Exit(7),
        Want::Exit(0),
        Want::Exit(0),
    ]
}

/// A fault that heals itself (a token refreshed): every action works.
fn all_ok() -> [Want; 5] {
    [
        Want::Exit(0),
        Want::Exit(0),
        Want::Exit(7),
        Want::Exit(0),
        Want::Exit(0),
    ]
}

/// Credentials refused on this node: start fails at once with `code`; the deep monitor
/// cannot ask the cloud.
fn refused(code: i32) -> [Want; 5] {
    [
        Want::Once(code),
        Want::Exit(0),
        Want::Exit(7),
        Want::Exit(0),
        Want::Warn,
    ]
}

fn row(name: &'static str, on: Vec<Step>, want: [Want; 5]) -> Row {
    Row {
        name,
        on,
        off: vec![],
        before_start: vec![],
        key_file: false,
        want,
    }
}

use crate::clouds::gce::{PUBLIC, VIP as GCE_VIP};
use crate::clouds::oci::{vnic as oci_vnic, VIP as OCI_VIP};

fn gce_rows() -> Vec<Row> {
    let compute = |kind: Value| {
        let mut r = kind;
        r["service"] = json!("compute");
        rule(r)
    };
    let uni = "compute.instances.updateNetworkInterface";
    let expire = || admin("POST", "/admin/gce/tokens/expire", None);
    vec![
        row(
            "5xx (503)",
            vec![compute(json!({"kind": "error", "status": 503}))],
            transient(Want::Warn),
        ),
        row(
            "403 rateLimitExceeded",
            vec![compute(json!({"kind": "rate_limit"}))],
            transient(Want::Warn),
        ),
        row(
            "412 fingerprint race",
            vec![rule(json!({"kind": "fingerprint_race"}))],
            transient(Want::Exit(0)),
        ),
        row(
            "400 resourceNotReady",
            vec![rule(json!({"kind": "error", "status": 400, "api": uni,
                "code": "resourceNotReady",
                "message": "The resource 'projects/my-project/zones/us-central1-a/instances/node-a' is not ready"}))],
            transient(Want::Exit(0)),
        ),
        row(
            "stuck operation",
            vec![rule(json!({"kind": "operation_stuck"}))],
            transient(Want::Exit(0)),
        ),
        row(
            "failed operation",
            vec![rule(
                json!({"kind": "operation_error", "code": "INTERNAL_ERROR", "message": "Internal error."}),
            )],
            transient(Want::Exit(0)),
        ),
        row(
            "connection reset",
            vec![compute(json!({"kind": "reset"}))],
            transient(Want::Warn),
        ),
        row(
            "hang (30 s)",
            vec![compute(json!({"kind": "hang", "ms": 30000}))],
            transient(Want::Warn),
        ),
        row(
            "truncated JSON",
            vec![compute(json!({"kind": "truncate"}))],
            transient(Want::Warn),
        ),
        row(
            "malformed JSON",
            vec![compute(json!({"kind": "body", "message":
                r#"{"kind":"compute#instance","name":7,"networkInterfaces":{"nic0":"10.128.0.100/32"},"items":"none","status":"DONE","error":{"errors":"none"}}"#}))],
            transient(Want::Warn),
        ),
        row(
            "metadata server down",
            vec![rule(json!({"kind": "down", "service": "metadata"}))],
            [
                Want::Exit(1),
                Want::Exit(0),
                Want::Exit(7),
                Want::Warn,
                Want::Exit(0),
            ],
        ),
        row("token expired (refresh)", vec![expire()], all_ok()),
        row(
            "token rejected (401)",
            vec![compute(json!({"kind": "error", "status": 401}))],
            refused(4),
        ),
        row(
            "token source down",
            vec![
                expire(),
                rule(
                    json!({"kind": "error", "status": 503, "service": "metadata", "api": "metadata.token"}),
                ),
            ],
            transient(Want::Warn),
        ),
        Row {
            key_file: true,
            ..row(
                "clock skew (JWT, +600 s)",
                vec![
                    expire(),
                    rule(json!({"kind": "clock_skew", "secs": 600, "service": "oauth"})),
                ],
                refused(5),
            )
        },
        row(
            "access config fails",
            vec![rule(
                json!({"kind": "operation_error", "api": "compute.instances.addAccessConfig",
                "code": "INTERNAL_ERROR", "message": "Internal error."}),
            )],
            transient(Want::Exit(0)),
        ),
        row(
            "403 permission",
            vec![rule(
                json!({"kind": "error", "status": 403, "api": uni, "code": "forbidden",
                "message": "Required 'compute.instances.updateNetworkInterface' permission for 'projects/my-project/zones/us-central1-a/instances/node-a'"}),
            )],
            permanent(4),
        ),
        row(
            "400 invalid (permanent)",
            vec![rule(
                json!({"kind": "error", "status": 400, "api": uni, "code": "invalid",
                "message": "Invalid value for field 'resource.aliasIpRanges[1].ipCidrRange': '10.128.0.100/32'. The IP range is not within the subnetwork."}),
            )],
            permanent(6),
        ),
    ]
}

fn oci_rows() -> Vec<Row> {
    let net = |kind: Value| {
        let mut r = kind;
        r["cloud"] = json!("oci");
        r["service"] = json!("networking");
        rule(r)
    };
    let put = |status: u16, code: &str, message: &str| {
        net(
            json!({"kind": "error", "method": "PUT", "status": status, "code": code, "message": message}),
        )
    };
    let revoke = || admin("POST", "/admin/oci/tokens/revoke", None);
    let unassign = || {
        admin(
            "POST",
            &format!("/admin/oci/public-ips/{PUBLIC}/unassign"),
            None,
        )
    };
    vec![
        row(
            "5xx (503)",
            vec![net(json!({"kind": "error", "status": 503}))],
            transient(Want::Warn),
        ),
        row(
            "429 TooManyRequests",
            vec![net(json!({"kind": "rate_limit"}))],
            transient(Want::Warn),
        ),
        row(
            "412 NoEtagMatch",
            vec![put(
                412,
                "NoEtagMatch",
                "The If-Match header value does not match the resource's ETag",
            )],
            transient(Want::Exit(0)),
        ),
        row(
            "409 IncorrectState",
            vec![put(
                409,
                "IncorrectState",
                "The VNIC is being updated; try again later",
            )],
            transient(Want::Exit(0)),
        ),
        Row {
            off: vec![admin(
                "PUT",
                "/admin/oci/settings",
                Some(json!({"public_ip_assign_ms": 300})),
            )],
            before_start: vec![unassign()],
            ..row(
                "stuck (public IP ASSIGNING)",
                vec![admin(
                    "PUT",
                    "/admin/oci/settings",
                    Some(json!({"public_ip_assign_ms": 15000})),
                )],
                transient(Want::Exit(0)),
            )
        },
        row(
            "failed update (500)",
            vec![put(500, "InternalServerError", "Internal error")],
            transient(Want::Exit(0)),
        ),
        row(
            "connection reset",
            vec![net(json!({"kind": "reset"}))],
            transient(Want::Warn),
        ),
        row(
            "hang (30 s)",
            vec![net(json!({"kind": "hang", "ms": 30000}))],
            transient(Want::Warn),
        ),
        row(
            "truncated JSON",
            vec![net(json!({"kind": "truncate"}))],
            transient(Want::Warn),
        ),
        row(
            "malformed JSON",
            vec![net(json!({"kind": "body", "message":
                r#"{"items":"none","id":7,"vnicId":["x"],"ipAddress":false,"lifecycleState":"ASSIGNED"}"#}))],
            transient(Want::Warn),
        ),
        row(
            "metadata server down",
            vec![rule(
                json!({"kind": "down", "cloud": "oci", "service": "metadata"}),
            )],
            transient(Want::Exit(0)),
        ),
        row("token expired (refresh)", vec![revoke()], all_ok()),
        row(
            "token rejected (401)",
            vec![net(
                json!({"kind": "error", "status": 401, "code": "NotAuthenticated",
                    "message": "The required information to complete authentication was not provided or was incorrect."}),
            )],
            refused(4),
        ),
        row(
            "federation down",
            vec![
                revoke(),
                rule(json!({"kind": "error", "status": 503, "cloud": "oci", "service": "auth"})),
            ],
            transient(Want::Warn),
        ),
        row(
            "clock skew (+600 s)",
            vec![rule(
                json!({"kind": "clock_skew", "secs": 600, "cloud": "oci"}),
            )],
            refused(5),
        ),
        Row {
            off: vec![admin(
                "POST",
                "/admin/oci/public-ips/fail-next",
                Some(json!({"count": 0})),
            )],
            before_start: vec![unassign()],
            ..row(
                "public IP never assigned",
                vec![admin(
                    "POST",
                    "/admin/oci/public-ips/fail-next",
                    Some(json!({"count": 100000})),
                )],
                transient(Want::Exit(0)),
            )
        },
        row(
            "404 NotAuthorizedOrNotFound",
            vec![put(
                404,
                "NotAuthorizedOrNotFound",
                "Authorization failed or requested resource not found.",
            )],
            permanent(4),
        ),
        row(
            "400 InvalidParameter",
            vec![put(
                400,
                "InvalidParameter",
                "10.0.1.100 is not a valid address of the subnet",
            )],
            permanent(6),
        ),
    ]
}

// ---- one lab ------------------------------------------------------------------------------

/// Who the cloud routes the VIP (and its public IP) to, and whether everything else is
/// where the world put it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct View {
    /// Nodes (1-3) the VIP is routed to.
    vip: Vec<usize>,
    /// Nodes the public IP is routed to (OCI: through the VIP's private IP, when ASSIGNED).
    public: Vec<usize>,
    /// What else changed, if anything.
    damage: Option<String>,
}

struct Lab {
    cloud: Cloud,
    c: CloudLab,
    api: String,
    key_file: Option<String>,
    logs: PathBuf,
}

impl Lab {
    fn new(cloud: Cloud, key_file: bool) -> Lab {
        let c = match cloud {
            Cloud::Gce => CloudLab::start(crate::clouds::gce::standard),
            Cloud::Oci => CloudLab::start(crate::clouds::oci::standard),
        };
        let api = match cloud {
            Cloud::Gce => c.endpoints["gce"]["compute"].as_str().unwrap().to_owned(),
            Cloud::Oci => c.endpoints["oci"]["api"]
                .as_str()
                .unwrap()
                .replace("http://", "https://"),
        };
        let logs = c.dir.path().join("cells");
        std::fs::create_dir_all(&logs).unwrap();
        for i in 1..=3 {
            std::fs::create_dir_all(c.dir.path().join(format!("rsctmp{i}"))).unwrap();
        }
        let key_file = key_file.then(|| {
            let key = c.admin(
                "POST",
                "/admin/gce/service-accounts/cloudvip@my-project.iam.gserviceaccount.com/keys",
                None,
            );
            let path = c.dir.path().join("sa.json");
            std::fs::write(&path, key.to_string()).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            path.display().to_string()
        });
        Lab {
            cloud,
            c,
            api,
            key_file,
            logs,
        }
    }

    /// The agent on node `i` as Pacemaker would run it there: its own state directory
    /// (each node has its own /run), the log in a file of the cell's.
    fn agent(&self, i: usize, action: &str, log: &Path) -> Agent {
        let mut a = self
            .c
            .agent(i, action)
            .env(
                "HA_RSCTMP",
                self.c
                    .dir
                    .path()
                    .join(format!("rsctmp{i}"))
                    .to_str()
                    .unwrap(),
            )
            .env("HA_LOGFILE", log.to_str().unwrap())
            .env("HA_debug", "1")
            .param(
                "public_ip",
                match self.cloud {
                    Cloud::Gce => "vip-ext",
                    Cloud::Oci => PUBLIC,
                },
            );
        a = match self.cloud {
            Cloud::Gce => a.params(&[
                ("ip", GCE_VIP),
                ("cloud", "gce"),
                ("api_endpoint", &self.api),
            ]),
            Cloud::Oci => a.params(&[
                ("ip", OCI_VIP),
                ("cloud", "oci"),
                ("api_endpoint", &self.api),
                ("auth_endpoint", &self.api),
            ]),
        };
        if let Some(k) = &self.key_file {
            a = a.param("credentials", k);
        }
        a
    }

    fn apply(&self, steps: &[Step]) {
        for s in steps {
            match s {
                Step::Rule(r) => self.c.fault(r.clone()),
                Step::Admin(m, p, b) => {
                    self.c.admin(m, p, b.clone());
                }
            }
        }
    }

    fn fault_hits(&self) -> u64 {
        self.c.admin("GET", "/admin/faults", None)["faults"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| f["hits"].as_u64().unwrap_or(0))
            .sum()
    }

    fn view(&self) -> View {
        let st = self.c.admin("GET", "/admin/state", None);
        match self.cloud {
            Cloud::Gce => gce_view(&st),
            Cloud::Oci => oci_view(&st),
        }
    }

    fn vip(&self) -> &'static str {
        match self.cloud {
            Cloud::Gce => GCE_VIP,
            Cloud::Oci => OCI_VIP,
        }
    }

    fn holds_locally(&self, i: usize) -> bool {
        self.c.holds_locally(i, self.vip())
    }
}

fn gce_view(st: &Value) -> View {
    let list: Vec<Value> = match &st["gce"]["instances"] {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o.values().cloned().collect(),
        _ => vec![],
    };
    let mut v = View {
        vip: vec![],
        public: vec![],
        damage: None,
    };
    let own: [(&str, &[&str]); 3] = [
        ("node-a", &["10.200.0.8/29"]),
        ("node-b", &["10.128.0.51/32"]),
        ("node-c", &[]),
    ];
    for (i, (name, keep)) in own.iter().enumerate() {
        let Some(inst) = list.iter().find(|x| x["name"] == *name) else {
            v.damage = Some(format!("{name} is gone"));
            continue;
        };
        let nic = &inst["networkInterfaces"][0];
        let mut others = vec![];
        for a in nic["aliasIpRanges"].as_array().into_iter().flatten() {
            let r = a["ipCidrRange"].as_str().unwrap_or("");
            if r == format!("{GCE_VIP}/32") || r == GCE_VIP {
                v.vip.push(i + 1);
            } else {
                others.push(r.to_owned());
            }
        }
        if others != *keep {
            v.damage = Some(format!(
                "{name}'s other alias ranges are {others:?}, not {keep:?}"
            ));
        }
        for ac in nic["accessConfigs"].as_array().into_iter().flatten() {
            if ac["natIP"] == PUBLIC {
                v.public.push(i + 1);
            }
        }
    }
    v
}

fn oci_view(st: &Value) -> View {
    let st = &st["oci"];
    let ips = st["privateIps"].as_array().cloned().unwrap_or_default();
    let node_of = |vnic: &Value| (1..=3).find(|i| *vnic == oci_vnic(*i).as_str());
    let mut v = View {
        vip: vec![],
        public: vec![],
        damage: None,
    };
    let vip = ips.iter().find(|p| p["ipAddress"] == OCI_VIP);
    if let Some(n) = vip.and_then(|p| node_of(&p["vnicId"])) {
        v.vip.push(n);
    }
    let other = ips.iter().find(|p| p["ipAddress"] == "10.0.1.50");
    if other.map(|p| p["vnicId"].clone()) != Some(json!(oci_vnic(2))) {
        v.damage = Some(format!("10.0.1.50 moved: {other:?}"));
    }
    for i in 1..=3 {
        let p = ips
            .iter()
            .find(|p| p["ipAddress"] == format!("10.0.1.1{i}"));
        if p.map(|p| p["vnicId"].clone()) != Some(json!(oci_vnic(i))) {
            v.damage = Some(format!("the primary IP of node{i} moved: {p:?}"));
        }
    }
    // 3 primaries, the VIP, the other one (a start may have created the VIP's object).
    if ips.len() != 5 {
        v.damage = Some(format!("{} private IPs, not 5", ips.len()));
    }
    let pubs = st["publicIps"].as_array().cloned().unwrap_or_default();
    if let Some(p) = pubs.iter().find(|p| p["ipAddress"] == PUBLIC) {
        let on_vip = vip.is_some_and(|x| x["id"] == p["assignedEntityId"]);
        if p["lifecycleState"] == "ASSIGNED" && on_vip {
            v.public = v.vip.clone();
        } else if p["lifecycleState"] == "ASSIGNED" {
            v.damage = Some(format!("the public IP is assigned elsewhere: {p}"));
        }
    }
    v
}

// ---- the cells ----------------------------------------------------------------------------

struct Cell {
    code: i32,
    took: Duration,
    warned: bool,
    /// Why the cell is wrong, if it is.
    wrong: Option<String>,
}

impl Cell {
    fn show(&self) -> String {
        format!(
            "{}{}{} {}ms",
            if self.wrong.is_some() { "✗ " } else { "" },
            self.code,
            if self.warned { " W" } else { "" },
            self.took.as_millis()
        )
    }
}

/// Run one action on node `i` under the faults in force, and judge it.
fn cell(lab: &Lab, row: &Row, act: Act, i: usize) -> Cell {
    let log = lab
        .logs
        .join(format!("{}-{}.log", act.label().replace(' ', ""), i));
    let (action, depth) = match act {
        Act::Start => ("start", None),
        Act::Stop => ("stop", None),
        Act::Probe => ("monitor", None),
        Act::Mon0 => ("monitor", Some("0")),
        Act::Mon10 => ("monitor", Some("10")),
    };
    let mut a = lab.agent(i, action, &log).env(
        "OCF_RESKEY_CRM_meta_timeout",
        &TIMEOUT.as_millis().to_string(),
    );
    if act == Act::Probe {
        a = a.env("OCF_RESKEY_CRM_meta_interval", "0");
    }
    if let Some(d) = depth {
        a = a
            .env("OCF_CHECK_LEVEL", d)
            .env("OCF_RESKEY_CRM_meta_interval", "2000");
    }
    let before = lab.view();
    let hits = lab.fault_hits();
    let (r, took, wall) = run_timed(&a);
    let after = lab.view();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let warned = text.contains("WARNING:");
    let want = row.want[ACTS.iter().position(|x| *x == act).unwrap()];
    let mut wrong = vec![];
    if r.code != want.code() {
        wrong.push(format!("exit {} (want {})", r.code, want.code()));
    }
    if matches!(want, Want::Warn) && r.code == 0 && !warned {
        wrong.push("no WARNING".into());
    }
    if took > budget() + EXIT_SLACK {
        wrong.push(format!("ran {took:?}, over the budget {:?}", budget()));
    }
    if wall >= TIMEOUT {
        wrong.push(format!(
            "{wall:?} from fork: Pacemaker would have killed it"
        ));
    }
    if let Some(d) = &after.damage {
        wrong.push(format!("cloud damage: {d}"));
    }
    let here = vec![i];
    match act {
        Act::Start if r.code == 0 => {
            if after.vip != here || after.public != here {
                wrong.push(format!(
                    "exit 0 but the cloud routes the VIP to {:?}, the public IP to {:?}",
                    after.vip, after.public
                ));
            }
            if !lab.holds_locally(i) {
                wrong.push("exit 0 but the VIP is not on the interface".into());
            }
        }
        Act::Start => {
            if let Want::Once(_) = want {
                let fired = lab.fault_hits() - hits;
                if fired > 3 {
                    wrong.push(format!("retried a permanent fault ({fired} hits)"));
                }
                if after.vip != before.vip || after.public != before.public {
                    wrong.push(format!(
                        "failed, and moved the VIP from {:?} to {:?} (public {:?} to {:?})",
                        before.vip, after.vip, before.public, after.public
                    ));
                }
            }
            if after.vip.iter().any(|n| *n != i && !before.vip.contains(n)) {
                wrong.push(format!("the VIP went to a third node: {:?}", after.vip));
            }
        }
        Act::Stop => {
            if lab.holds_locally(i) {
                wrong.push("the VIP is still on the interface".into());
            }
            if after.vip.iter().any(|n| *n != i) {
                wrong.push(format!("the cloud routes the VIP to {:?}", after.vip));
            }
        }
        Act::Probe | Act::Mon0 | Act::Mon10 => {
            if after.vip != before.vip || after.public != before.public {
                wrong.push(format!(
                    "a monitor changed the cloud: VIP {:?} -> {:?}, public {:?} -> {:?}",
                    before.vip, after.vip, before.public, after.public
                ));
            }
        }
    }
    if !wrong.is_empty() {
        let reason = r.reason().unwrap_or("").trim().to_owned();
        wrong.push(format!("exit reason {reason:?}"));
    }
    Cell {
        code: r.code,
        took,
        warned,
        wrong: (!wrong.is_empty()).then(|| wrong.join("; ")),
    }
}

/// Run the agent and time it from its exec (when `/proc/<pid>/exe` is the agent, not `ip`
/// any more) to its exit (its pipes closing); also the wall time from fork.
fn run_timed(a: &Agent) -> (Run, Duration, Duration) {
    let t0 = Instant::now();
    let mut child = a
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run the agent");
    let exe = format!("/proc/{}/exe", child.id());
    let bin = std::fs::canonicalize(crate::util::BIN).unwrap_or_default();
    let mut started = None;
    while started.is_none() && t0.elapsed() < TIMEOUT * 2 {
        match std::fs::read_link(&exe) {
            Ok(p) if p == bin => started = Some(Instant::now()),
            // Gone (a zombie has no exe): it ran and ended between two looks.
            Err(_) => break,
            Ok(_) => std::thread::sleep(Duration::from_micros(500)),
        }
    }
    // The end is when the agent's pipes close (the kernel closes its files early in exit),
    // not when wait returns: the agent is the last process of the private mount namespace
    // `ip netns exec`/`unshare` gave it, and dropping that waits for an RCU grace period,
    // seen taking 1-2 s on a loaded machine (two cells' waits ending at the same instant).
    // Pacemaker runs the agent in no namespace of its own, so that wait is the test's.
    fn drain(pipe: Option<impl std::io::Read>) -> (Vec<u8>, Instant) {
        let mut v = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut v);
        }
        (v, Instant::now())
    }
    let (out_pipe, err_pipe) = (child.stdout.take(), child.stderr.take());
    let ((stdout, out_end), (stderr, err_end)) = std::thread::scope(|s| {
        let err = s.spawn(|| drain(err_pipe));
        let out = drain(out_pipe);
        (out, err.join().expect("the stderr reader panicked"))
    });
    let end = out_end.max(err_end);
    let status = child.wait().expect("cannot wait for the agent");
    let out = std::process::Output {
        status,
        stdout,
        stderr,
    };
    let run = Run::from(a.describe(), out);
    crate::secret_scan::keep_run(&run);
    (run, end - started.unwrap_or(t0), end - t0)
}

/// A start with no fault in force, which must work: the lab's way to a known state.
fn setup_start(lab: &Lab, i: usize, what: &str) -> Result<(), String> {
    let log = lab.logs.join(format!("setup-{what}.log"));
    let r: Run = lab
        .agent(i, "start", &log)
        .env("OCF_RESKEY_CRM_meta_timeout", SETUP_TIMEOUT)
        .run();
    let v = lab.view();
    if r.code != 0 || v.vip != vec![i] || v.public != vec![i] {
        return Err(format!(
            "setup: start on node{i} ({what}) exit {} with no fault, cloud {v:?}: {}",
            r.code,
            r.reason().unwrap_or(&r.stderr)
        ));
    }
    Ok(())
}

/// One row: its own lab, then
/// 1. (no fault) start on node 2;
/// 2. fault on: monitor 0 and 10 on node 2, probe on node 3, stop on node 2;
/// 3. fault off: start on node 1 (so node 2 has a cached token, and the VIP moves again);
/// 4. fault on: start on node 2.
fn run_row(cloud: Cloud, row: &Row) -> Result<Vec<Cell>, String> {
    let lab = Lab::new(cloud, row.key_file);
    setup_start(&lab, 2, "first")?;
    let mut out = Vec::new();
    lab.apply(&row.on);
    let m0 = cell(&lab, row, Act::Mon0, 2);
    let m10 = cell(&lab, row, Act::Mon10, 2);
    let probe = cell(&lab, row, Act::Probe, 3);
    let stop = cell(&lab, row, Act::Stop, 2);
    lab.c.clear_faults();
    lab.apply(&row.off);
    setup_start(&lab, 1, "back")?;
    lab.apply(&row.before_start);
    lab.apply(&row.on);
    let start = cell(&lab, row, Act::Start, 2);
    lab.c.clear_faults();
    lab.apply(&row.off);
    out.extend([start, stop, probe, m0, m10]);
    crate::secret_scan::dump_request_log(&lab.c.log(), lab.c.dir.path());
    crate::secret_scan::keep_logs(&format!("faults-{cloud:?}-{}", row.name), lab.c.dir.path());
    Ok(out)
}

/// A counting semaphore: at most `n` labs at once.
struct Gate {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Gate {
    fn pass<T>(&self, f: impl FnOnce() -> T) -> T {
        let mut g = self.free.lock().unwrap();
        while *g == 0 {
            g = self.cv.wait(g).unwrap();
        }
        *g -= 1;
        drop(g);
        let out = f();
        *self.free.lock().unwrap() += 1;
        self.cv.notify_one();
        out
    }
}

fn matrix(cloud: Cloud, rows: Vec<Row>) {
    let t0 = Instant::now();
    let gate = Arc::new(Gate {
        free: Mutex::new(PARALLEL),
        cv: Condvar::new(),
    });
    let rows = Arc::new(rows);
    let handles: Vec<_> = (0..rows.len())
        .map(|k| {
            let (gate, rows) = (gate.clone(), rows.clone());
            std::thread::spawn(move || {
                gate.pass(|| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run_row(cloud, &rows[k])
                    }))
                    .unwrap_or_else(|p| {
                        Err(p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "panicked".into()))
                    })
                })
            })
        })
        .collect();
    let results: Vec<Result<Vec<Cell>, String>> = handles
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|_| Err("thread died".into())))
        .collect();

    let mut table = format!(
        "\nfault matrix, {cloud:?}: exit code, W = a WARNING was logged, the agent's run time from its exec (timeout {} ms, budget {} ms); ✗ = wrong\n",
        TIMEOUT.as_millis(),
        budget().as_millis()
    );
    table +=
        "| fault | start | stop | probe | monitor 0 | monitor 10 |\n|---|---|---|---|---|---|\n";
    let mut wrong = vec![];
    for (row, res) in rows.iter().zip(&results) {
        match res {
            Ok(cells) => {
                let shown: Vec<String> = cells.iter().map(Cell::show).collect();
                table += &format!("| {} | {} |\n", row.name, shown.join(" | "));
                for (act, c) in ACTS.iter().zip(cells) {
                    if let Some(w) = &c.wrong {
                        wrong.push(format!("{} / {}: {w}", row.name, act.label()));
                    }
                }
            }
            Err(e) => {
                table += &format!("| {} | ✗ lab failed | | | | |\n", row.name);
                wrong.push(format!("{}: {e}", row.name));
            }
        }
    }
    let cells = rows.len() * ACTS.len();
    table += &format!(
        "\n{} rows, {cells} cells, {} wrong, in {:.1} s\n",
        rows.len(),
        wrong.len(),
        t0.elapsed().as_secs_f64()
    );
    for w in &wrong {
        table += &format!("  ✗ {w}\n");
    }
    println!("{table}");
    assert!(wrong.is_empty(), "{} wrong cells:\n{table}", wrong.len());
}

#[test]
fn gce() {
    matrix(Cloud::Gce, gce_rows());
}

#[test]
fn oci() {
    matrix(Cloud::Oci, oci_rows());
}
