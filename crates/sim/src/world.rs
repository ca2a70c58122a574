//! The world file: one TOML document with a `[server]` part (listeners, TLS) and one part
//! per cloud (`[gce]` now, `[oci]` beside it). Each cloud owns the schema of its own part
//! (`gce::world`); this file only ties them together and loads the file.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole world. Unknown keys are rejected, so a typo in a test's world fails loudly.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    #[serde(default)]
    pub server: ServerConfig,
    /// Google Compute Engine; absent: no GCE listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gce: Option<crate::gce::world::GceWorld>,
    /// Oracle Cloud Infrastructure; absent: no OCI listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<crate::oci::world::OciWorldConfig>,
    /// Amazon Web Services (EC2, STS, IMDSv2); absent: no AWS listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<crate::aws::AwsWorld>,
    /// Microsoft Azure (IMDS, DMI values); absent: no Azure listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<crate::azure::world::AzureWorld>,
    /// The emulated internal load balancer (probes, routes the frontend IPs); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb: Option<crate::lb::LbWorld>,
}

/// Listener settings shared by every cloud.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Admin API address (always plain HTTP). Default `127.0.0.1:0` (any free port).
    #[serde(default = "loopback_any")]
    pub admin_listen: SocketAddr,
    /// PEM certificate chain and key: when both are set, cloud API listeners speak HTTPS
    /// (metadata servers and the admin API stay plain HTTP, as the metadata server is in
    /// reality). Relative paths are resolved against the world file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            admin_listen: loopback_any(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

pub fn loopback_any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

impl World {
    pub fn from_toml(text: &str) -> Result<World, String> {
        let w: World = toml::from_str(text).map_err(|e| e.to_string())?;
        w.validate()?;
        Ok(w)
    }

    /// Loads a world file; relative TLS paths are taken relative to its directory.
    pub fn load(path: &Path) -> Result<World, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut w = World::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut w.server.tls_cert, &mut w.server.tls_key]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(p) = w.gce.as_mut().and_then(|g| g.discovery_document.as_mut()) {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(p) = w.azure.as_mut().and_then(|a| a.dmi_dir.as_mut()) {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(o) = &mut w.oci {
            for p in o
                .api_keys
                .iter_mut()
                .filter_map(|k| k.public_key_file.as_mut())
            {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        Ok(w)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err("server.tls_cert and server.tls_key must be given together".into());
        }
        if let Some(g) = &self.gce {
            g.validate().map_err(|e| format!("[gce]: {e}"))?;
        }
        if let Some(o) = &self.oci {
            o.validate().map_err(|e| format!("[oci]: {e}"))?;
        }
        if let Some(a) = &self.aws {
            a.validate().map_err(|e| format!("[aws]: {e}"))?;
        }
        if let Some(a) = &self.azure {
            a.validate().map_err(|e| format!("[azure]: {e}"))?;
        }
        if let Some(l) = &self.lb {
            l.validate().map_err(|e| format!("[lb]: {e}"))?;
        }
        Ok(())
    }
}
