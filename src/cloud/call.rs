//! The API plumbing every backend shares: one call with its credentials renewed once when
//! the cloud refuses them (401), the status → `CloudError` table with each cloud's
//! exceptions (`Dialect`), JSON answers decoded fail-closed, pages followed with a bound,
//! request ids, and the metadata service's GET. A backend writes its `Auth` and its
//! `Dialect`, never the loop.

use serde::de::DeserializeOwned;

use super::{http_error, CloudError};
use crate::deadline::Deadline;
use crate::http::{Http, Method, Request, Response};

/// Who signs a request: GCE's bearer token, OCI's request signature.
pub trait Auth {
    /// `req` with its credentials (fetched or read from the cache the first time).
    fn authorize(&mut self, req: Request, deadline: &Deadline) -> Result<Request, CloudError>;
    /// The cloud refused the credentials (401): get new ones for the next `authorize`.
    /// `false` when they are already as fresh as they get, and the refusal stands.
    fn renew(&mut self, deadline: &Deadline) -> Result<bool, CloudError>;
}

/// How one cloud's API answers when it refuses: its error bodies and the statuses it
/// means otherwise than the default table.
pub trait Dialect {
    /// The API's name in messages ("Compute API").
    fn service(&self) -> &'static str;
    /// The cloud's error code (GCE's `reason`, OCI's `code`) and its words, as one line.
    fn refusal(&self, r: &Response) -> (Option<String>, String);
    /// A status this cloud means otherwise than `default_error` does (`what` describes the
    /// request and the answer); `None`: the default.
    fn classify(
        &self,
        _method: Method,
        _path: &str,
        _r: &Response,
        _what: &str,
    ) -> Option<CloudError> {
        None
    }
    /// A 401 that new credentials cannot fix (this node's clock is off).
    fn refused_for_good(&self, _r: &Response) -> Option<CloudError> {
        None
    }
}

/// What a refusal means when the cloud says nothing special: credentials or permission,
/// a missing object, someone else's change, a failure that may pass, else a request that
/// fails the same way every time.
pub fn default_error(status: u16, what: String) -> CloudError {
    match status {
        401 | 403 => CloudError::Denied(what),
        404 => CloudError::NotFound(what),
        409 | 412 => CloudError::Conflict(what),
        // The http layer already retried these until the deadline.
        429 | 500..=599 => CloudError::Transient(what),
        _ => CloudError::Invalid(what),
    }
}

/// One API call: authorized, sent through the action's client (which retries transport
/// errors, 429, 5xx and what `retry` says until the deadline), a 401 answered by renewing
/// the credentials once, any other refusal classified with the cloud's code. `path` names
/// the request in messages (its query redacted).
pub fn call(
    http: &Http,
    auth: &mut dyn Auth,
    dialect: &dyn Dialect,
    req: Request,
    path: &str,
    retry: &dyn Fn(&Response) -> bool,
    deadline: &Deadline,
) -> Result<Response, CloudError> {
    loop {
        let signed = auth.authorize(req.clone(), deadline)?;
        let r = http
            .api(&signed, deadline, retry)
            .map_err(|e| http_error(dialect.service(), e))?;
        if r.ok() {
            return Ok(r);
        }
        if r.status == 401 {
            if let Some(e) = dialect.refused_for_good(&r) {
                return Err(e);
            }
            if auth.renew(deadline)? {
                continue;
            }
        }
        let (code, text) = dialect.refusal(&r);
        let what = format!(
            "{} {}: HTTP {} {text}",
            req.method.as_str(),
            crate::http::redact(path),
            r.status
        );
        let e = dialect
            .classify(req.method, path, &r, &what)
            .unwrap_or_else(|| default_error(r.status, what));
        return Err(match code {
            Some(c) if !c.is_empty() => CloudError::coded(c, e),
            _ => e,
        });
    }
}

/// A JSON answer of `service`, decoded; one that does not decode is transient (a proxy's
/// error page, a truncated body): the same request may answer properly later.
pub fn json<T: DeserializeOwned>(r: &Response, service: &str) -> Result<T, CloudError> {
    r.json()
        .map_err(|e| CloudError::Transient(format!("{service}: {e:#}")))
}

/// Every page of a list: `fetch` reads the page of a token (`None`: the first) and
/// returns the next page's token (`None` or empty: that was the last). At most `max`
/// pages, so a token that loops cannot spin.
pub fn pages(
    what: &str,
    max: usize,
    mut fetch: impl FnMut(Option<&str>) -> Result<Option<String>, CloudError>,
) -> Result<(), CloudError> {
    let mut token: Option<String> = None;
    for _ in 0..max {
        match fetch(token.as_deref())? {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(()),
        }
    }
    Err(CloudError::Transient(format!(
        "{what}: more than {max} pages"
    )))
}

/// `n` random bytes from the system's CSPRNG, for request ids and retry tokens.
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A GET of the link-local metadata service (`service` names it in messages), with the
/// header it demands. Any status but 2xx is transient: a documented path that answers
/// 404, a 403, a 5xx say the service is not answering as it should, never that the VIP
/// is elsewhere.
pub fn metadata_get(
    http: &Http,
    service: &str,
    base: &str,
    path: &str,
    header: (&str, &str),
    deadline: &Deadline,
) -> Result<Response, CloudError> {
    let req = Request::new(Method::Get, format!("{base}{path}")).header(header.0, header.1);
    let r = http
        .metadata(&req, deadline)
        .map_err(|e| http_error(service, e))?;
    if !r.ok() {
        return Err(CloudError::Transient(format!(
            "{service} answered HTTP {} for {path}",
            r.status
        )));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_tokens_within_the_bound() {
        let mut seen = Vec::new();
        pages("list", 5, |t| {
            seen.push(t.map(str::to_owned));
            Ok(match t {
                None => Some("a".into()),
                Some("a") => Some(String::new()),
                _ => None,
            })
        })
        .unwrap();
        assert_eq!(seen, [None, Some("a".to_owned())]);
        let e = pages("list", 3, |_| Ok(Some("again".into()))).unwrap_err();
        assert!(e.is_transient() && e.to_string().contains("list: more than 3 pages"));
    }

    #[test]
    fn the_default_table() {
        let k = |s| default_error(s, String::new());
        assert!(matches!(k(401), CloudError::Denied(_)));
        assert!(matches!(k(403), CloudError::Denied(_)));
        assert!(matches!(k(404), CloudError::NotFound(_)));
        assert!(matches!(k(412), CloudError::Conflict(_)));
        assert!(k(503).is_transient() && k(429).is_transient());
        assert!(matches!(k(400), CloudError::Invalid(_)));
        assert!(matches!(k(405), CloudError::Invalid(_)));
    }
}
