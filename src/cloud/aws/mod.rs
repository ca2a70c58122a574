//! AWS EC2: the client layer the backend sits on (research/aws-azure.md part A). SigV4
//! signing on ring (`sigv4.rs`, with the crate decision), IMDSv2 (`imds.rs`), credentials
//! from the instance profile, a credentials file or an STS AssumeRole (`credentials.rs`),
//! EC2 Query requests (`query.rs`), answers parsed fail-closed (`xml.rs`, `model.rs`),
//! refusals classified into `CloudError` (`error.rs`), and the signed calls over the one
//! HTTP layer with pagination and dry runs (`client.rs`). On top, the backend: its
//! parameters and modes (`config.rs`), the flows per mode (`flow.rs`) and the decisions
//! they share with the dry run (`plan.rs`), and status/diagnose with the IAM policy per
//! mode (`inspect.rs`).

pub mod client;
pub mod config;
pub mod credentials;
pub mod error;
pub mod flow;
pub mod imds;
pub mod inspect;
pub mod model;
mod plan;
pub mod query;
pub mod sigv4;
pub mod xml;
