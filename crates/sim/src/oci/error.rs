//! OCI's error responses: `{"code", "message"}` with the status that goes with each code.
//!
//! Codes and texts follow research/oci-api.md §2.5 (the recorded ones verbatim where a
//! recording exists). Handlers return `OciError`; `mod.rs` turns it into a response.

use serde_json::json;

/// One OCI API error, as the service would send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl OciError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        OciError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 401 for every authentication failure. OCI never says which check failed; the
    /// emulator appends its reason in parentheses so a failing test can be diagnosed
    /// (listed in DEVIATIONS.md).
    pub fn not_authenticated(reason: impl AsRef<str>) -> Self {
        OciError::new(
            401,
            "NotAuthenticated",
            format!(
                "The required information to complete authentication was not provided or was incorrect. (emulator: {})",
                reason.as_ref()
            ),
        )
    }

    /// 404 as recorded for a missing (or hidden) resource: OCI does not tell "absent" from
    /// "not allowed" (§2.5).
    pub fn not_found(kind: &str, id: &str) -> Self {
        OciError::new(
            404,
            "NotAuthorizedOrNotFound",
            format!(
                "Either {kind} with ID {id} does not exist or you are not authorized to access it."
            ),
        )
    }

    pub fn not_authorized_generic() -> Self {
        OciError::new(
            404,
            "NotAuthorizedOrNotFound",
            "Authorization failed or requested resource not found.",
        )
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        OciError::new(400, "InvalidParameter", message)
    }

    pub fn missing(message: impl Into<String>) -> Self {
        OciError::new(400, "MissingParameter", message)
    }

    pub fn cannot_parse(message: impl Into<String>) -> Self {
        OciError::new(400, "CannotParseRequest", message)
    }

    pub fn related_not_found(kind: &str, id: &str) -> Self {
        OciError::new(
            400,
            "RelatedResourceNotAuthorizedOrNotFound",
            format!(
                "Either {kind} with ID {id} does not exist or you are not authorized to access it."
            ),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        OciError::new(409, "Conflict", message)
    }

    pub fn etag_mismatch() -> Self {
        OciError::new(
            412,
            "NoEtagMatch",
            "The resource's etag does not match the value of the If-Match header.",
        )
    }

    pub fn route_not_found() -> Self {
        OciError::new(404, "NotFound", "The requested operation was not found.")
    }

    pub fn method_not_allowed() -> Self {
        OciError::new(
            405,
            "MethodNotAllowed",
            "The method is not supported on this resource.",
        )
    }

    pub fn too_many_requests() -> Self {
        OciError::new(429, "TooManyRequests", "Too many requests for the tenancy.")
    }

    pub fn internal() -> Self {
        OciError::new(
            500,
            "InternalServerError",
            "An internal server error occurred.",
        )
    }

    pub fn unavailable() -> Self {
        OciError::new(
            503,
            "ServiceUnavailable",
            "The service is currently unavailable.",
        )
    }

    /// The error body: Jackson-style pretty JSON is what OCI sends; clients must parse it.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&json!({"code": self.code, "message": self.message}))
            .unwrap_or_default()
    }
}

impl std::fmt::Display for OciError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for OciError {}
