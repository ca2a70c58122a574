//! Google Compute Engine: the live state (`state.rs`), the Compute API v1 (`compute.rs`),
//! operations (`operations.rs`), the metadata server (`metadata.rs`), OAuth tokens and
//! service-account keys (`oauth.rs`), list filters (`filter.rs`). Wire facts:
//! `shared/research/gce-api.md`.

pub mod net;
pub mod world;

use std::sync::Arc;

use crate::server::Core;
use crate::Started;

/// The GCE cloud (being written).
pub struct GceCloud;

/// Starts the GCE listeners.
pub fn start(
    _core: Arc<Core>,
    _world: &world::GceWorld,
    _tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(Arc<GceCloud>, Started), String> {
    Err("gce: not yet implemented".into())
}
