//! The `[gce]` part of the world file: project, region, zones, networks, service accounts,
//! instances, static addresses, operation timing. Pure data (serde); `state.rs` turns it into
//! the live state. Every key is documented in `crates/sim/examples/world.toml`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::net::Ipv4Net;

pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

fn loopback() -> SocketAddr {
    crate::world::loopback_any()
}
fn yes() -> bool {
    true
}
fn self_link_base() -> String {
    "https://www.googleapis.com/compute/v1/".into()
}
fn token_lifetime() -> u64 {
    3600
}
fn ephemeral_pool() -> String {
    // RFC 5737 TEST-NET-2: documentation addresses, never routed.
    "198.51.100.0/24".into()
}
fn default_network() -> String {
    "default".into()
}
fn machine_type() -> String {
    "e2-standard-2".into()
}
fn running() -> String {
    "RUNNING".into()
}
fn default_scopes() -> Vec<String> {
    vec![CLOUD_PLATFORM.into()]
}
fn external_nat() -> String {
    "External NAT".into()
}
fn premium() -> String {
    "PREMIUM".into()
}
fn external() -> String {
    "EXTERNAL".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GceWorld {
    pub project: String,
    pub project_number: u64,
    pub region: String,
    pub zones: Vec<String>,
    /// Compute API + OAuth token endpoint listener (HTTPS when server TLS is configured).
    #[serde(default = "loopback")]
    pub api_listen: SocketAddr,
    /// One metadata listener per instance on 127.0.0.1 (any port).
    #[serde(default = "yes")]
    pub metadata_per_instance: bool,
    /// Optional shared metadata listener (e.g. `169.254.169.254:80` inside a network
    /// namespace); the instance is told apart by the request's source address
    /// (`instances[].metadata_source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_listen: Option<SocketAddr>,
    /// Prefix of every selfLink/URL in responses. Real GCE uses www.googleapis.com even when
    /// called on compute.googleapis.com (gce-api.md §2.1).
    #[serde(default = "self_link_base")]
    pub self_link_base: String,
    /// `token_uri` written into service-account key files. Default: this emulator's own
    /// `/token` URL. Set `https://oauth2.googleapis.com/token` when clients reach the
    /// emulator under the real hostnames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_uri: Option<String>,
    /// Lifetime of access tokens issued by `/token` and the metadata server.
    #[serde(default = "token_lifetime")]
    pub token_lifetime_secs: u64,
    /// Where ephemeral external IPs (addAccessConfig without natIP) come from.
    #[serde(default = "ephemeral_pool")]
    pub ephemeral_pool: String,
    #[serde(default)]
    pub operations: OperationTiming,
    #[serde(default)]
    pub project_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub networks: Vec<Network>,
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccount>,
    #[serde(default)]
    pub instances: Vec<InstanceSpec>,
    #[serde(default)]
    pub addresses: Vec<AddressSpec>,
    /// Access tokens valid from the start (handy for gcloud `--access-token-file`).
    #[serde(default)]
    pub access_tokens: Vec<StaticToken>,
    /// The Compute API's discovery document, served (read at start) on the API listener at
    /// both URLs googleapiclient uses: `/discovery/v1/apis/compute/v1/rest` and
    /// `/$discovery/rest?version=v1`. google-api-python-client ships it as
    /// `googleapiclient/discovery_cache/documents/compute.v1.json`; name that file here.
    /// Absent: both answer 404. Relative paths: against the world file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_document: Option<std::path::PathBuf>,
    /// Internal passthrough load balancing with haPolicy (Fast IP Move): `backend.rs`.
    #[serde(default)]
    pub network_endpoint_groups: Vec<super::backend::NegSpec>,
    #[serde(default)]
    pub backend_services: Vec<super::backend::BackendServiceSpec>,
    #[serde(default)]
    pub forwarding_rules: Vec<super::backend::ForwardingRuleSpec>,
}

/// What happens when a mutation targets an instance that still has an operation in flight
/// (gce-api.md §8 item 4). The public evidence says GCE queues it: Google's PD CSI driver
/// saw an earlier, still-queued detachDisk run after a newer attach and undo it
/// (kubernetes-sigs/gcp-compute-persistent-disk-csi-driver #965, #1290), a Google
/// maintainer wrote "GCP layer does handle this ... one of them is going to be waiting for
/// the other" (#307), and a full queue answers `403 Too many pending operations on a
/// resource., rateLimitExceeded` (#1129). `400 resourceNotReady` is documented only for
/// networks and subnetworks (Terraform's isNetworkUnreadyError/isSubnetworkUnreadyError,
/// kubernetes #35123; googleapis/google-cloud-java #9312 is a firewall on a busy network).
/// Hence `queue` by default; `reject` stays selectable so clients are tested under both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Busy {
    /// Accept; operations on one instance run one after the other.
    Queue,
    /// 400 `resourceNotReady`.
    Reject,
}

/// When an accepted updateNetworkInterface changes the NIC fingerprint. GCE documents only
/// that it changes "after every successful update" and that it is a "hash of contents";
/// either reading is possible, and they race differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FingerprintRoll {
    /// When the PATCH is accepted and again when applied: a second PATCH carrying the
    /// same fingerprint gets 412 even while the first is still queued.
    Accept,
    /// Only when the change is applied (a hash of contents): two PATCHes read from the same
    /// state are both accepted and the later one, when it runs, replaces the earlier list.
    Apply,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationTiming {
    /// Time an operation stays PENDING (real GCE: a few ms).
    #[serde(default = "pending_ms")]
    pub pending_ms: u64,
    /// Time it stays RUNNING before its change is applied (real GCE: about 1 s).
    #[serde(default = "running_ms")]
    pub running_ms: u64,
    /// Longest `zoneOperations.wait` blocks (real GCE: about 2 minutes).
    #[serde(default = "wait_max_ms")]
    pub wait_max_ms: u64,
    #[serde(default = "busy")]
    pub busy: Busy,
    #[serde(default = "fingerprint_roll")]
    pub fingerprint_roll: FingerprintRoll,
}

fn pending_ms() -> u64 {
    20
}
fn running_ms() -> u64 {
    100
}
fn wait_max_ms() -> u64 {
    120_000
}
fn busy() -> Busy {
    Busy::Queue
}
fn fingerprint_roll() -> FingerprintRoll {
    FingerprintRoll::Accept
}

impl Default for OperationTiming {
    fn default() -> Self {
        OperationTiming {
            pending_ms: pending_ms(),
            running_ms: running_ms(),
            wait_max_ms: wait_max_ms(),
            busy: busy(),
            fingerprint_roll: fingerprint_roll(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub name: String,
    #[serde(default)]
    pub subnets: Vec<Subnet>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub name: String,
    /// Default: the project's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub ip_cidr_range: Ipv4Net,
    #[serde(default)]
    pub secondary_ranges: Vec<SecondaryRange>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryRange {
    pub range_name: String,
    pub ip_cidr_range: Ipv4Net,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccount {
    pub email: String,
    /// IAM permissions granted on the project (`compute.instances.get`, ...; a trailing `*`
    /// matches a prefix, e.g. `compute.*`). Absent: every permission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    pub name: String,
    pub zone: String,
    /// Numeric id; default derived from the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default = "machine_type")]
    pub machine_type: String,
    #[serde(default = "running")]
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Instance metadata attributes (`instance/attributes/<key>`).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Service account attached to the VM (`service-accounts/default`); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Source address this instance's metadata requests come from on the shared listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_source: Option<IpAddr>,
    /// NICs in order: `nic0`, `nic1`, ...
    pub nics: Vec<NicSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicSpec {
    #[serde(default = "default_network")]
    pub network: String,
    /// Default: the network's first subnet in the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    pub network_ip: Ipv4Addr,
    /// Default: GCE's scheme, `42:01:` followed by the four bytes of `network_ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default)]
    pub alias_ip_ranges: Vec<AliasSpec>,
    #[serde(default)]
    pub access_configs: Vec<AccessConfigSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasSpec {
    pub ip_cidr_range: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnetwork_range_name: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfigSpec {
    #[serde(default = "external_nat")]
    pub name: String,
    /// A static external address of `[[gce.addresses]]`, or absent for an ephemeral IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_ip: Option<Ipv4Addr>,
    #[serde(default = "premium")]
    pub network_tier: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressSpec {
    pub name: String,
    pub address: Ipv4Addr,
    /// `EXTERNAL` or `INTERNAL`.
    #[serde(default = "external")]
    pub address_type: String,
    #[serde(default = "premium")]
    pub network_tier: String,
    /// INTERNAL addresses: the subnet they are reserved in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticToken {
    pub token: String,
    pub service_account: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Default: `token_lifetime_secs`... counted from the emulator's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
}

impl GceWorld {
    pub fn subnet(&self, network: &str, name: &str) -> Option<&Subnet> {
        self.networks
            .iter()
            .find(|n| n.name == network)?
            .subnets
            .iter()
            .find(|s| s.name == name)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.zones.is_empty() {
            return Err("zones: at least one zone is needed".into());
        }
        for z in &self.zones {
            if !z.starts_with(&format!("{}-", self.region)) {
                return Err(format!("zone {z} is not in region {}", self.region));
            }
        }
        self.ephemeral_pool
            .parse::<Ipv4Net>()
            .map_err(|e| format!("ephemeral_pool: {e}"))?;
        let mut names = std::collections::HashSet::new();
        for i in &self.instances {
            if !names.insert(&i.name) {
                return Err(format!("instance {} declared twice", i.name));
            }
            if !self.zones.contains(&i.zone) {
                return Err(format!("instance {}: zone {} not in zones", i.name, i.zone));
            }
            if i.nics.is_empty() || i.nics.len() > 8 {
                return Err(format!("instance {}: 1 to 8 nics", i.name));
            }
            if let Some(sa) = &i.service_account {
                if !self.service_accounts.iter().any(|s| &s.email == sa) {
                    return Err(format!(
                        "instance {}: service account {sa} not in service_accounts",
                        i.name
                    ));
                }
            }
            for (n, nic) in i.nics.iter().enumerate() {
                let net = self
                    .networks
                    .iter()
                    .find(|x| x.name == nic.network)
                    .ok_or_else(|| {
                        format!("instance {} nic{n}: no network {}", i.name, nic.network)
                    })?;
                let sub = match &nic.subnet {
                    Some(s) => net.subnets.iter().find(|x| &x.name == s),
                    None => net.subnets.first(),
                }
                .ok_or_else(|| format!("instance {} nic{n}: no such subnet", i.name))?;
                if !sub.ip_cidr_range.contains(nic.network_ip) {
                    return Err(format!(
                        "instance {} nic{n}: {} not in subnet {} ({})",
                        i.name, nic.network_ip, sub.name, sub.ip_cidr_range
                    ));
                }
            }
        }
        for t in &self.access_tokens {
            if !self
                .service_accounts
                .iter()
                .any(|s| s.email == t.service_account)
            {
                return Err(format!(
                    "access token: service account {} not in service_accounts",
                    t.service_account
                ));
            }
        }
        Ok(())
    }
}
