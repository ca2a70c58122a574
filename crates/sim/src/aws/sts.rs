//! STS (model `sts/2011-06-15`, `query` protocol): `AssumeRole` for cross-account route
//! tables (resource-agents PR #1454, `aws-vpc-move-ip`'s `routing_table_role`) and
//! `GetCallerIdentity` (which that anchor logs). Responses wrap their result in
//! `<ActionResult>` and carry `<ResponseMetadata><RequestId>` (research/aws-azure.md §A4.2).

use super::errors::AwsError;
use super::iam::Identity;
use super::query::Params;
use super::time;
use super::xml::El;
use super::AwsState;

pub const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
pub const VERSION: &str = "2011-06-15";

fn wrap(action: &str, result: El, request_id: &str) -> El {
    El::new(&format!("{action}Response"))
        .attr("xmlns", NAMESPACE)
        .child(result)
        .child(El::new("ResponseMetadata").text_child("RequestId", request_id))
}

fn validation(field: &str, value: &str, constraint: &str) -> AwsError {
    AwsError::bad(
        "ValidationError",
        format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
        ),
    )
}

fn check_len(field: &str, v: &str, min: usize, max: usize) -> Result<(), AwsError> {
    let n = v.chars().count();
    if n < min || n > max {
        return Err(validation(
            field,
            v,
            &format!("Member must have length between {min} and {max}"),
        ));
    }
    Ok(())
}

fn check_chars(field: &str, v: &str, extra: &str) -> Result<(), AwsError> {
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(c))
    {
        Ok(())
    } else {
        Err(validation(
            field,
            v,
            &format!("Member must satisfy regular expression pattern: [\\w{extra}]*"),
        ))
    }
}

pub fn dispatch(
    st: &mut AwsState,
    who: &Identity,
    action: &str,
    p: &Params,
    request_id: &str,
) -> Result<El, AwsError> {
    match action {
        "GetCallerIdentity" => {
            p.only(&[], &[])?;
            // Always allowed, whatever the policy says (AWS documents it so).
            let r = El::new("GetCallerIdentityResult")
                .text_child("Arn", &who.arn)
                .text_child("UserId", &who.user_id)
                .text_child("Account", &who.account);
            Ok(wrap(action, r, request_id))
        }
        "AssumeRole" => assume_role(st, who, p, request_id),
        other => Err(AwsError::bad(
            "InvalidAction",
            format!("Could not find operation {other} for version {VERSION}"),
        )),
    }
}

fn assume_role(
    st: &mut AwsState,
    who: &Identity,
    p: &Params,
    request_id: &str,
) -> Result<El, AwsError> {
    p.only(
        &[
            "RoleArn",
            "RoleSessionName",
            "DurationSeconds",
            "ExternalId",
            "Policy",
            "SerialNumber",
            "TokenCode",
            "SourceIdentity",
        ],
        &[
            "PolicyArns.member",
            "Tags.member",
            "TransitiveTagKeys.member",
            "ProvidedContexts.member",
        ],
    )?;
    let arn = p.require("RoleArn")?;
    let session = p.require("RoleSessionName")?;
    check_len("roleArn", arn, 20, 2048)?;
    check_len("roleSessionName", session, 2, 64)?;
    check_chars("roleSessionName", session, "+=,.@-")?;
    let duration = match p.get("DurationSeconds") {
        None => None,
        Some(d) => Some(
            d.parse::<u64>()
                .map_err(|_| validation("durationSeconds", d, "Member must be a number"))?,
        ),
    };
    if duration.is_some_and(|d| d > 43_200) {
        return Err(validation(
            "durationSeconds",
            &duration.unwrap_or(0).to_string(),
            "Member must have value less than or equal to 43200",
        ));
    }
    let external = p.get("ExternalId");
    if let Some(x) = external {
        check_len("externalId", x, 2, 1224)?;
        check_chars("externalId", x, "+=,.@:/-")?;
    }
    let unmodelled = ["Policy", "SerialNumber", "TokenCode", "SourceIdentity"]
        .iter()
        .any(|k| p.get(k).is_some())
        || [
            "PolicyArns.",
            "Tags.",
            "TransitiveTagKeys.",
            "ProvidedContexts.",
        ]
        .iter()
        .any(|k| p.has_prefix(k));
    if unmodelled {
        return Err(AwsError::bad(
            "ValidationError",
            "Session policies, MFA, source identity and session tags are not modelled by cloudvip-sim",
        ));
    }
    let now = time::unix(std::time::SystemTime::now());
    let (akid, s) = st
        .iam
        .assume_role(who, arn, session, duration, external, now)?;
    st.secret("AWS secret access key", &s.secret);
    st.secret("AWS session token", &s.token);
    let role_id = st.iam.role_id(&s.role).unwrap_or_default();
    let account = st
        .iam
        .roles
        .get(&s.role)
        .map(|r| r.account.clone())
        .unwrap_or_default();
    let r = El::new("AssumeRoleResult")
        .child(
            El::new("Credentials")
                .text_child("AccessKeyId", akid)
                .text_child("SecretAccessKey", s.secret)
                .text_child("SessionToken", s.token)
                .text_child("Expiration", time::iso_seconds(time::from_unix(s.expires))),
        )
        .child(
            El::new("AssumedRoleUser")
                .text_child("AssumedRoleId", format!("{role_id}:{session}"))
                .text_child(
                    "Arn",
                    format!("arn:aws:sts::{account}:assumed-role/{}/{session}", s.role),
                ),
        );
    Ok(wrap("AssumeRole", r, request_id))
}
