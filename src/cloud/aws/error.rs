//! EC2 and STS error answers, read and classified into the project's `CloudError` kinds.
//! EC2 writes `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/>`,
//! STS (query protocol) `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>`
//! (research/aws-azure.md §A2.7, §A4.2). Codes from "Error codes for the Amazon EC2 API"
//! (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html: client
//! errors are 4xx, server errors 5xx; `DryRunOperation` "the request would have succeeded,
//! but the DryRun parameter was used"), and the throttling and transient sets of
//! botocore's standard retry mode (`botocore/retries/standard.py`).

use crate::cloud::CloudError;
use crate::http::Response;

use super::xml;

/// One error answer. `code` is empty when the body was not an AWS error document (a
/// proxy's page, a truncated answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
}

/// Throttling: the request is fine, the account's token bucket is empty (retry later).
const THROTTLING: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "EC2ThrottledException",
    "SlowDown",
    "BandwidthLimitExceeded",
    "TransactionInProgressException",
    "PriorRequestNotComplete",
];

/// Server-side trouble worth another try.
const TRANSIENT: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "ServerInternal",
    "ServiceUnavailable",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "IDPCommunicationError",
];

/// Credentials or permissions refused.
const DENIED: &[&str] = &[
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "AuthFailure",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "MissingAuthenticationToken",
    "IncompleteSignature",
    "OptInRequired",
    "Blocked",
    "PendingVerification",
    "RegionDisabledException",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "InvalidToken",
];

/// Codes after which fresh credentials may succeed: temporary credentials that expired or
/// were revoked (EC2 answers an expired session token with `RequestExpired` or
/// `AuthFailure`, STS with `ExpiredToken`).
const STALE_CREDENTIALS: &[&str] = &[
    "AuthFailure",
    "RequestExpired",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "InvalidToken",
];

/// Codes that can mean this node's clock is off (SigV4 signs the time).
pub const CLOCK_CODES: &[&str] = &["RequestExpired", "AuthFailure", "SignatureDoesNotMatch"];

pub fn is_throttling(code: &str) -> bool {
    THROTTLING.contains(&code)
}

pub fn stale_credentials(code: &str) -> bool {
    STALE_CREDENTIALS.contains(&code)
}

/// For the http layer's `retry_also`: a throttled answer that is not a 429/5xx (STS says
/// `Throttling` with 400) is retried inside the deadline too.
pub fn retry_also(r: &Response) -> bool {
    (400..500).contains(&r.status) && is_throttling(&parse(r).code)
}

/// The error in `r`; a body that is not an AWS error document keeps its first 200
/// characters as the message.
pub fn parse(r: &Response) -> ApiError {
    let mut e = ApiError {
        status: r.status,
        code: String::new(),
        message: String::new(),
        request_id: None,
    };
    let Ok(root) = xml::parse(&r.body) else {
        e.message = r.text().chars().take(200).collect();
        return e;
    };
    let error = root
        .child("Errors")
        .and_then(|es| es.child("Error"))
        .or_else(|| root.child("Error"));
    if let Some(err) = error {
        e.code = err.text_of("Code").unwrap_or_default().to_owned();
        e.message = err.text_of("Message").unwrap_or_default().to_owned();
    }
    e.request_id = root
        .text_of("RequestID")
        .or_else(|| root.text_of("RequestId"))
        .map(str::to_owned);
    e
}

/// The message for logs: one line, at most 300 characters (an IAM denial names the
/// caller's ARN and the action, both worth keeping), without the
/// opaque "Encoded authorization failure message" (kilobytes of base64).
pub fn short_message(m: &str) -> String {
    let m = match m.find(" Encoded authorization failure message") {
        Some(i) => &m[..i],
        None => m,
    };
    let one: String = m.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 300 {
        let cut: String = one.chars().take(299).collect();
        format!("{cut}…")
    } else {
        one
    }
}

impl ApiError {
    /// `service:Action: HTTP status Code: message`, the text every kind carries.
    pub fn describe(&self, action: &str) -> String {
        let code = if self.code.is_empty() {
            "(no error code)"
        } else {
            &self.code
        };
        format!(
            "{action}: HTTP {} {code}: {}",
            self.status,
            short_message(&self.message)
        )
    }

    /// This refusal for `action` (`ec2:AssignPrivateIpAddresses`): its kind, carrying
    /// EC2's `Code` when it has one (callers match `code()`, never the text). A permission
    /// or credential refusal names the action, so the fix (the IAM policy) is obvious.
    pub fn classify(&self, action: &str) -> CloudError {
        self.coded(self.kind_of(action))
    }

    /// `kind` with this refusal's code, when it has one.
    pub fn coded(&self, kind: CloudError) -> CloudError {
        match self.code.as_str() {
            "" => kind,
            code => CloudError::coded(code, kind),
        }
    }

    /// What this refusal means for `action`, without its code.
    pub fn kind_of(&self, action: &str) -> CloudError {
        let code = self.code.as_str();
        let what = self.describe(action);
        if is_throttling(code) || TRANSIENT.contains(&code) {
            return CloudError::Transient(what);
        }
        if DENIED.contains(&code) {
            return CloudError::Denied(what);
        }
        if code.ends_with(".NotFound") {
            return CloudError::NotFound(what);
        }
        if code == "IncorrectState" || code == "IncorrectInstanceState" || code == "Conflict" {
            return CloudError::Conflict(what);
        }
        match self.status {
            // The documented split: 5xx is the server's trouble.
            500..=599 | 429 => CloudError::Transient(what),
            401 | 403 => CloudError::Denied(what),
            // A body that is not AWS's (a proxy's 4xx page): not worth retrying, not the
            // cloud's verdict on the VIP either.
            _ if code.is_empty() && self.status >= 400 => CloudError::Invalid(what),
            // InvalidParameterValue, InvalidParameterCombination, MissingParameter,
            // UnknownParameter, InvalidAction, *.Malformed, InvalidIPAddress.InUse,
            // PrivateIpAddressLimitExceeded, Resource.AlreadyAssociated, ValidationError:
            // the request is wrong for this cloud, everywhere.
            _ => CloudError::Invalid(what),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn ec2_error(code: &str, msg: &str) -> String {
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{msg}</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>")
    }

    #[test]
    fn reads_ec2_and_sts_error_documents() {
        let e = parse(&resp(
            400,
            &ec2_error(
                "InvalidNetworkInterfaceID.NotFound",
                "The networkInterface ID 'eni-0000000000000dead' does not exist",
            ),
        ));
        assert_eq!(e.code, "InvalidNetworkInterfaceID.NotFound");
        assert_eq!(
            e.request_id.as_deref(),
            Some("ea966190-f9aa-478e-9ede-example")
        );
        assert!(matches!(
            e.kind_of("ec2:DescribeNetworkInterfaces"),
            CloudError::NotFound(_)
        ));
        let sts = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::111122223333:user/x is not authorized to perform: sts:AssumeRole</Message></Error><RequestId>r-2</RequestId></ErrorResponse>";
        let e = parse(&resp(403, sts));
        assert_eq!(
            (e.code.as_str(), e.request_id.as_deref()),
            ("AccessDenied", Some("r-2"))
        );
        assert_eq!(
            e.classify("sts:AssumeRole").code(),
            Some("AccessDenied"),
            "the code travels with the error"
        );
        match e.kind_of("sts:AssumeRole") {
            CloudError::Denied(m) => assert!(
                m.starts_with("sts:AssumeRole: HTTP 403 AccessDenied: User:"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn classification_of_the_codes_that_matter() {
        let kind = |status: u16, code: &str| {
            parse(&resp(status, &ec2_error(code, "m"))).kind_of("ec2:AssignPrivateIpAddresses")
        };
        for (s, c) in [
            (503, "RequestLimitExceeded"),
            (400, "Throttling"),
            (500, "InternalError"),
            (503, "Unavailable"),
            (500, "SomethingNew"),
        ] {
            assert!(matches!(kind(s, c), CloudError::Transient(_)), "{c}");
        }
        for (s, c) in [
            (403, "UnauthorizedOperation"),
            (401, "AuthFailure"),
            (400, "RequestExpired"),
            (403, "SignatureDoesNotMatch"),
            (403, "SomethingNewButForbidden"),
        ] {
            assert!(matches!(kind(s, c), CloudError::Denied(_)), "{c}");
        }
        for c in [
            "InvalidParameterValue",
            "InvalidParameterCombination",
            "MissingParameter",
            "UnknownParameter",
            "InvalidIPAddress.InUse",
            "PrivateIpAddressLimitExceeded",
            "InvalidNetworkInterfaceID.Malformed",
            "Resource.AlreadyAssociated",
        ] {
            assert!(matches!(kind(400, c), CloudError::Invalid(_)), "{c}");
        }
        for c in [
            "InvalidAllocationID.NotFound",
            "InvalidRoute.NotFound",
            "InvalidAssociationID.NotFound",
        ] {
            assert!(matches!(kind(400, c), CloudError::NotFound(_)), "{c}");
        }
        match kind(403, "UnauthorizedOperation") {
            CloudError::Denied(m) => assert!(m.contains("ec2:AssignPrivateIpAddresses"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn throttling_at_4xx_is_retried_by_the_http_layer() {
        assert!(retry_also(&resp(
            400,
            &ec2_error("Throttling", "Rate exceeded")
        )));
        assert!(!retry_also(&resp(
            400,
            &ec2_error("InvalidParameterValue", "x")
        )));
        // 5xx are retried by the http layer anyway.
        assert!(!retry_also(&resp(
            503,
            &ec2_error("RequestLimitExceeded", "x")
        )));
    }

    #[test]
    fn the_encoded_authorization_message_is_dropped() {
        let m = "You are not authorized to perform this operation. User: arn:aws:sts::1:assumed-role/r/i is not authorized to perform: ec2:AssignPrivateIpAddresses because no identity-based policy allows the ec2:AssignPrivateIpAddresses action. Encoded authorization failure message: AAAA";
        let s = short_message(m);
        assert!(s.ends_with("action."), "{s}");
        assert!(short_message(&"x ".repeat(500)).chars().count() <= 300);
    }

    #[test]
    fn garbage_bodies_classify_by_status_without_panicking() {
        for body in [
            "",
            "<html>proxy</html>",
            "\u{fffd}\u{0}",
            "<Response><Errors>",
        ] {
            let e = parse(&resp(502, body));
            assert!(matches!(e.kind_of("ec2:X"), CloudError::Transient(_)));
            let e = parse(&resp(407, body));
            assert!(matches!(e.kind_of("ec2:X"), CloudError::Invalid(_)));
        }
        let e = parse(&Response {
            status: 400,
            headers: Default::default(),
            body: vec![0xff, 0xfe, 0x3c],
        });
        assert!(matches!(e.kind_of("ec2:X"), CloudError::Invalid(_)));
    }
}
