//! Errors as EC2 and STS put them on the wire. EC2 (`ec2` protocol):
//! `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>` —
//! `RequestID`, not `RequestId` (botocore `EC2QueryParser._do_error_parse`). STS (`query`
//! protocol): `<ErrorResponse xmlns=…><Error><Type/><Code/><Message/></Error><RequestId/>`.
//! Codes, statuses and messages: research/aws-azure.md §A2.7, §A4.2 and DEVIATIONS.md.

use crate::http::Response;

use super::xml::{self, El};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl AwsError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        AwsError {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn bad(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn invalid_value(message: impl Into<String>) -> Self {
        Self::bad("InvalidParameterValue", message)
    }

    pub fn missing(param: &str) -> Self {
        Self::bad(
            "MissingParameter",
            format!("The request must contain the parameter {param}"),
        )
    }

    pub fn combination(message: impl Into<String>) -> Self {
        Self::bad("InvalidParameterCombination", message)
    }

    /// `InvalidNetworkInterfaceID.NotFound` and friends.
    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::bad(code, message)
    }

    pub fn internal() -> Self {
        Self::new(
            500,
            "InternalError",
            "An internal error has occurred. Please try again later.",
        )
    }

    pub fn unauthorized(arn: &str, action: &str) -> Self {
        // The real message continues with an opaque encoded authorization message.
        Self::new(
            403,
            "UnauthorizedOperation",
            format!(
                "You are not authorized to perform this operation. User: {arn} is not authorized to perform: {action} because no identity-based policy allows the {action} action. Encoded authorization failure message: {}",
                super::ids::hex(48)
            ),
        )
    }

    pub fn dry_run() -> Self {
        Self::new(
            412,
            "DryRunOperation",
            "Request would have succeeded, but DryRun flag is set.",
        )
    }

    /// The EC2 error document.
    pub fn ec2_response(&self, request_id: &str) -> Response {
        let doc = El::new("Response")
            .child(
                El::new("Errors").child(
                    El::new("Error")
                        .text_child("Code", &self.code)
                        .text_child("Message", &self.message),
                ),
            )
            .text_child("RequestID", request_id);
        xml_response(self.status, &doc, request_id).header("Server", "AmazonEC2")
    }

    /// The STS (query protocol) error document.
    pub fn sts_response(&self, request_id: &str) -> Response {
        let kind = if self.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        };
        let doc = El::new("ErrorResponse")
            .attr("xmlns", super::sts::NAMESPACE)
            .child(
                El::new("Error")
                    .text_child("Type", kind)
                    .text_child("Code", &self.code)
                    .text_child("Message", &self.message),
            )
            .text_child("RequestId", request_id);
        xml_response(self.status, &doc, request_id)
    }
}

/// A `text/xml` response with the request id header both services send.
pub fn xml_response(status: u16, doc: &El, request_id: &str) -> Response {
    Response::new(status)
        .header("Content-Type", "text/xml;charset=UTF-8")
        .header("x-amzn-RequestId", request_id)
        .body(xml::document(doc).into_bytes())
}
