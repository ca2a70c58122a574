//! The Networking API's answers as types, read fail-closed: a field the agent decides on
//! that is missing, of the wrong type or holds a state we do not know is an error, never
//! a default. A `ListPrivateIps` answer that is not a list is not "no private IP"; an
//! unknown lifecycle state is not "try to assign". Field names as in the Python SDK models
//! (oci-api.md §2.3).

use std::net::IpAddr;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::cloud::CloudError;
use crate::http::Response;

/// `GetVnic`: what the claim needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vnic {
    pub subnet_id: String,
    pub lifecycle_state: VnicState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VnicState {
    Provisioning,
    Available,
    Terminating,
    Terminated,
}

/// A private IP object (`ListPrivateIps`, `GetPrivateIp`, `CreatePrivateIp`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrivateIp {
    pub id: String,
    pub ip_address: IpAddr,
    /// Absent for a RESERVED private IP that is on no VNIC.
    #[serde(default)]
    pub vnic_id: Option<String>,
    /// The service refuses to move a primary private IP whatever we believe, so an
    /// absent flag can only cost a refused request.
    #[serde(default)]
    pub is_primary: bool,
}

/// A public IP (`GetPublicIp`, `GetPublicIpByIpAddress`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicIp {
    pub id: String,
    pub ip_address: String,
    pub lifetime: Lifetime,
    pub lifecycle_state: PublicIpState,
    #[serde(default)]
    pub assigned_entity_id: Option<String>,
    /// Deprecated alias of `assignedEntityId`, still sent.
    #[serde(default)]
    pub private_ip_id: Option<String>,
}

impl PublicIp {
    pub fn assigned_to(&self) -> Option<&str> {
        self.assigned_entity_id
            .as_deref()
            .or(self.private_ip_id.as_deref())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Lifetime {
    Ephemeral,
    Reserved,
}

/// PY-models `public_ip.py`: every state the service documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PublicIpState {
    Provisioning,
    Available,
    Assigning,
    Assigned,
    Unassigning,
    Unassigned,
    Terminating,
    Terminated,
}

/// The federation endpoint's answer.
#[derive(Debug, Deserialize)]
pub struct Token {
    pub token: String,
}

/// `T` from a response body; anything else is a transient error naming `what` (a
/// truncated or garbled answer may be right on the next try, and retrying is the safe
/// side of the deadline).
pub fn parse<T: DeserializeOwned>(what: &str, r: &Response) -> Result<T, CloudError> {
    serde_json::from_slice(&r.body).map_err(|e| {
        CloudError::Transient(format!("unexpected {what} answer (HTTP {}): {e}", r.status))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(body: &str) -> Response {
        Response {
            status: 200,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_list_that_is_not_a_list_is_an_error_not_empty() {
        assert!(parse::<Vec<PrivateIp>>("ListPrivateIps", &resp("[]"))
            .unwrap()
            .is_empty());
        for bad in [
            r#"{"items": []}"#,
            "null",
            "",
            "[{\"id\": 5}]",
            "[{\"id\":\"x\"}]",
        ] {
            assert!(
                parse::<Vec<PrivateIp>>("ListPrivateIps", &resp(bad)).is_err(),
                "{bad}"
            );
        }
        let ok = r#"[{"id":"p","ipAddress":"10.0.1.5","vnicId":"v","isPrimary":false}]"#;
        assert_eq!(parse::<Vec<PrivateIp>>("x", &resp(ok)).unwrap()[0].id, "p");
    }

    #[test]
    fn unknown_states_are_errors() {
        let p = |state: &str| {
            format!(
                r#"{{"id":"i","ipAddress":"203.0.113.1","lifetime":"RESERVED","lifecycleState":"{state}"}}"#
            )
        };
        assert_eq!(
            parse::<PublicIp>("x", &resp(&p("ASSIGNING")))
                .unwrap()
                .lifecycle_state,
            PublicIpState::Assigning
        );
        assert!(parse::<PublicIp>("x", &resp(&p("MIGRATING"))).is_err());
        assert!(parse::<Vnic>("x", &resp(r#"{"subnetId":"s","lifecycleState":"GONE"}"#)).is_err());
        assert!(parse::<Vnic>("x", &resp(r#"{"lifecycleState":"AVAILABLE"}"#)).is_err());
    }
}
