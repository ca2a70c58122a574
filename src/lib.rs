//! The agent as a library: `main.rs` is the binary's thin front door; the fuzz targets
//! (`fuzz/`) and benchmarks reach the parsers of outside input through here.

pub mod admin;
pub mod agent;
pub mod cloud;
pub mod deadline;
pub mod http;
pub mod local;
pub mod ocf;
pub mod os_agents;
pub mod params;
pub mod state;
