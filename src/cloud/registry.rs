//! What a backend tells the agent about itself, in one value (`Backend`): its `cloud=`
//! name, how `cloud=auto` recognises its instances, its modes and parameters, the platform
//! other software on the node knows it as, and the factories of its two traits. The table
//! is one line per backend in `cloud/mod.rs` (`backends!`); nothing else names a backend.

use std::any::Any;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use super::config::{Get, Shared};
use super::inspect::Inspect;
use super::Cloud;
use crate::ocf::metadata::ParamDef;
use crate::ocf::{Exit, Status};

/// One way a backend moves the VIP (`mode=`); a backend's first mode is its default.
pub struct Mode {
    pub name: &'static str,
    /// For the `mode` parameter's text: what it moves, e.g. "an alias IP range of the NIC".
    pub doc: &'static str,
}

/// The platform other software on the node knows (nm-cloud-setup, guest agents):
/// `os_agents.rs` decides what fights a VIP from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    Gce,
    Oci,
    Aws,
    Azure,
    Other,
}

/// The firmware's DMI strings (/sys/class/dmi/id), as `cloud=auto` reads them: no network
/// round trip, so validate-all and probes stay local.
pub struct Dmi<'a>(pub &'a Path);

impl Dmi<'_> {
    /// One DMI file, trimmed; empty when it cannot be read.
    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.0.join(file))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }
}

/// A backend's parsed parameters, whatever its type: `Setup::config` gives them back typed.
pub trait BackendConfig: Any + fmt::Debug {}
impl<T: Any + fmt::Debug> BackendConfig for T {}

/// Is this parameter set?
pub type IsSet<'a> = dyn Fn(&str) -> bool + 'a;

/// A registered backend.
pub struct Backend {
    /// The `cloud` parameter's value.
    pub name: &'static str,
    /// How the documents name it ("GCE only.").
    pub label: &'static str,
    /// For the `cloud` parameter's text: what it moves ("an alias IP range on ...").
    pub summary: &'static str,
    /// For the `cloud` parameter's text: what cloud=auto recognises ("Google").
    pub dmi_doc: &'static str,
    /// Is this one of its instances? (cloud=auto; the first backend that says yes wins.)
    pub detect: fn(&Dmi) -> bool,
    pub platform: Platform,
    /// Its modes, the default first (at least one).
    pub modes: &'static [Mode],
    /// Its own parameters (the shared ones are `cloud::config`'s).
    pub params: &'static [ParamDef],
    /// The syntax of its own parameters: checked whatever the cloud, because cloud=auto
    /// is resolved only on the node (`vnic_id=bad cloud=gce` is refused all the same).
    pub parse: fn(&Get) -> Result<Box<dyn BackendConfig>, Exit>,
    /// What it cannot do with this VIP, once it is the cloud (an IPv6 `ip`...): `set`
    /// tells which parameters are set. Checked before anything changes.
    pub fits: fn(ip: IpAddr, set: &IsSet) -> Result<(), Exit>,
    /// The Pacemaker side: builds clients only, no network round trip.
    pub cloud: fn(&Setup) -> Result<Box<dyn Cloud>, Exit>,
    /// The admin side (`cloudvip status`, `cloudvip diagnose`).
    pub inspect: fn(&Setup) -> Result<Box<dyn Inspect>, Exit>,
}

impl Backend {
    /// Its default mode: the first.
    pub fn default_mode(&self) -> &'static str {
        self.modes.first().map_or("", |m| m.name)
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

// Backends are told apart by their `cloud=` name, unique in the table.
impl PartialEq for Backend {
    fn eq(&self, other: &Backend) -> bool {
        self.name == other.name
    }
}
impl Eq for Backend {}

/// What a backend's factories get: the VIP, its mode, the shared and its own parameters,
/// the state directory (token caches, locks). Never `Params`.
pub struct Setup<'a> {
    pub ip: IpAddr,
    /// One of the backend's `modes`, checked.
    pub mode: &'static str,
    pub shared: &'a Shared,
    pub(super) config: &'a dyn BackendConfig,
    pub state: Option<&'a Path>,
}

impl Setup<'_> {
    /// The backend's own parameters, as its `parse` made them.
    pub fn config<T: Any>(&self) -> Result<&T, Exit> {
        (self.config as &dyn Any)
            .downcast_ref::<T>()
            .ok_or_else(|| {
                Exit::generic("internal error: a backend's parameters are of another backend")
            })
    }

    /// The one HTTP client of the action (proxy and CA from the shared parameters).
    pub fn http(&self) -> Result<crate::http::Http, Exit> {
        crate::http::Http::new(&crate::http::HttpConfig {
            proxy: self.shared.proxy.clone(),
            ca_bundle: self.shared.ca_bundle.clone(),
        })
        .map_err(setup_exit)
    }
}

/// A client that cannot be built: the status it says (a bad proxy is the configuration's
/// fault), else this node's installation (e.g. an unreadable ca_bundle).
fn setup_exit(e: anyhow::Error) -> Exit {
    let status = e
        .chain()
        .find_map(|c| c.downcast_ref::<Exit>())
        .map_or(Status::ErrInstalled, |x| x.status);
    Exit::new(status, format!("{e:#}"))
}

/// The values of the `cloud` parameter: a registered backend, `none` or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloudKind {
    Backend(&'static Backend),
    None,
    Auto,
}

impl CloudKind {
    /// Every value, in the order the `cloud` parameter's messages list them: the
    /// backends, then none and auto.
    pub fn all() -> impl Iterator<Item = CloudKind> {
        super::BACKENDS
            .iter()
            .map(|b| CloudKind::Backend(b))
            .chain([CloudKind::None, CloudKind::Auto])
    }

    /// The `cloud` parameter's value for this kind.
    pub fn name(self) -> &'static str {
        match self {
            CloudKind::Backend(b) => b.name,
            CloudKind::None => "none",
            CloudKind::Auto => "auto",
        }
    }

    pub fn from_name(v: &str) -> Option<CloudKind> {
        CloudKind::all().find(|k| k.name() == v)
    }

    pub fn backend(self) -> Option<&'static Backend> {
        match self {
            CloudKind::Backend(b) => Some(b),
            _ => None,
        }
    }

    pub fn platform(self) -> Platform {
        self.backend().map_or(Platform::Other, |b| b.platform)
    }
}
