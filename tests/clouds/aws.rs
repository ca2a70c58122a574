//! The AWS test world: the example world file (`crates/sim/examples/world-aws.toml`: two
//! nodes, the VIP and an Elastic IP on node-a, a spare Elastic IP, the overlay route in a
//! table of this account and one of another), the emulator started from it on loopback,
//! and readers of its AWS state (`/admin/aws/state`, never lagged).

use serde_json::Value;

use super::find;

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
