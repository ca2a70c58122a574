//! GCE's error JSON (gce-api.md §3.1): `{"error": {"code", "message", "errors": [{"message",
//! "domain", "reason"}]}}`, plus the 401 shape with `status` and header location (§3.2).

use serde_json::json;

use crate::http::Response;

pub fn error(status: u16, reason: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({
            "error": {
                "code": status,
                "message": message,
                "errors": [ { "message": message, "domain": "global", "reason": reason } ],
            }
        }),
    )
    .header("Vary", "Origin")
    .header("X-Content-Type-Options", "nosniff")
}

pub fn not_found(resource: &str) -> Response {
    error(
        404,
        "notFound",
        &format!("The resource '{resource}' was not found"),
    )
}

pub fn invalid(message: &str) -> Response {
    error(400, "invalid", message)
}

/// 401 without credentials ("Login Required") or with a bad/expired token.
pub fn unauthenticated(missing: bool) -> Response {
    let (reason, inner) = if missing {
        ("required", "Login Required.")
    } else {
        ("authError", "Invalid Credentials")
    };
    let message = if missing {
        "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
    } else {
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
    };
    Response::json(
        401,
        &json!({
            "error": {
                "code": 401,
                "message": message,
                "errors": [ {
                    "message": inner, "domain": "global", "reason": reason,
                    "location": "Authorization", "locationType": "header"
                } ],
                "status": "UNAUTHENTICATED",
            }
        }),
    )
    .header(
        "WWW-Authenticate",
        "Bearer realm=\"https://accounts.google.com/\"",
    )
}

pub fn insufficient_scopes() -> Response {
    Response::json(
        403,
        &json!({
            "error": {
                "code": 403,
                "message": "Request had insufficient authentication scopes.",
                "errors": [ {
                    "message": "Insufficient Permission", "domain": "global",
                    "reason": "insufficientPermissions"
                } ],
                "status": "PERMISSION_DENIED",
            }
        }),
    )
}

/// GCE answers rate limits with 403, not 429 (gce-api.md §3.2).
pub fn rate_limited(project_number: u64) -> Response {
    error(
        403,
        "rateLimitExceeded",
        &format!("Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service 'compute.googleapis.com' for consumer 'project_number:{project_number}'."),
    )
}

pub fn server_error(status: u16) -> Response {
    let (reason, message) = match status {
        503 => ("backendError", "The service is currently unavailable."),
        502 => ("backendError", "Bad Gateway"),
        504 => ("backendError", "Deadline exceeded"),
        429 => ("rateLimitExceeded", "Too many requests."),
        _ => (
            "backendError",
            "Internal error. Please try again or contact Google Support.",
        ),
    };
    error(status, reason, message)
}
