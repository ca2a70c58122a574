//! The Query protocol's parameters as botocore's `EC2Serializer` / `QuerySerializer` write
//! them (research/aws-azure.md §A2.1): `Action`, `Version`, scalars by name, lists
//! flattened 1-based (`PrivateIpAddress.1`), filters as `Filter.1.Name` +
//! `Filter.1.Value.1`, structures as `SourceDestCheck.Value`, booleans `true`/`false`.
//! Every action declares the parameters it accepts; anything else is `UnknownParameter`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::errors::AwsError;
use super::filter::Filter;

/// Request parameters from the query string and a form-encoded body (first value wins on
/// a repeated name, as one name must not repeat in this protocol).
#[derive(Debug, Clone, Default)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            map.entry(k).or_insert(v);
        }
        Params { map }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    pub fn require(&self, name: &str) -> Result<&str, AwsError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(AwsError::missing(name)),
        }
    }

    /// Every parameter must be one of `scalars`, or `<list>.N[.…]` for one of `lists`.
    /// `Action`, `Version` and the query-signing parameters are always allowed.
    pub fn only(&self, scalars: &[&str], lists: &[&str]) -> Result<(), AwsError> {
        for k in self.map.keys() {
            if matches!(k.as_str(), "Action" | "Version") || k.starts_with("X-Amz-") {
                continue;
            }
            if scalars.contains(&k.as_str()) {
                continue;
            }
            let listed = lists.iter().any(|l| {
                k.strip_prefix(l)
                    .and_then(|r| r.strip_prefix('.'))
                    .and_then(|r| r.split('.').next())
                    .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 1))
            });
            if !listed {
                return Err(AwsError::bad(
                    "UnknownParameter",
                    format!("The parameter {k} is not recognized"),
                ));
            }
        }
        Ok(())
    }

    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.map.keys().any(|k| k.starts_with(prefix))
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(AwsError::invalid_value(format!(
                "Value ({v}) for parameter {name} is invalid. Expected: 'true' or 'false'."
            ))),
        }
    }

    pub fn dry_run(&self) -> Result<bool, AwsError> {
        Ok(self.bool("DryRun")?.unwrap_or(false))
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                AwsError::invalid_value(format!(
                    "Value ({v}) for parameter {name} is invalid. Expected a number."
                ))
            }),
        }
    }

    /// `Name.1`, `Name.2`, … in index order (gaps allowed, as the wire allows them).
    pub fn list(&self, name: &str) -> Vec<String> {
        let mut items: Vec<(u32, String)> = self
            .map
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix(name)?.strip_prefix('.')?.parse().ok()?;
                Some((n, v.clone()))
            })
            .collect();
        items.sort_by_key(|(n, _)| *n);
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// `Filter.N.Name` + `Filter.N.Value.M`.
    pub fn filters(&self) -> Result<Vec<Filter>, AwsError> {
        let mut by_n: BTreeMap<u32, Filter> = BTreeMap::new();
        for (k, v) in &self.map {
            let Some(rest) = k.strip_prefix("Filter.") else {
                continue;
            };
            let mut parts = rest.splitn(3, '.');
            let n: u32 = parts
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| bad_filter(k))?;
            let f = by_n.entry(n).or_insert_with(|| Filter {
                name: String::new(),
                values: Vec::new(),
            });
            match (parts.next(), parts.next()) {
                (Some("Name"), None) => f.name = v.clone(),
                (Some("Value"), Some(m)) if m.parse::<u32>().is_ok() => f.values.push(v.clone()),
                _ => return Err(bad_filter(k)),
            }
        }
        let out: Vec<Filter> = by_n.into_values().collect();
        if out.iter().any(|f| f.name.is_empty()) {
            return Err(AwsError::missing("Filter.N.Name"));
        }
        Ok(out)
    }

    /// A required resource id of the expected shape (see [`id`]).
    pub fn id(&self, name: &str, prefix: &str, malformed_code: &str) -> Result<String, AwsError> {
        id(self.require(name)?, prefix, malformed_code)
    }

    pub fn ipv4(&self, name: &str) -> Result<Option<Ipv4Addr>, AwsError> {
        self.get(name).map(|v| parse_ipv4(name, v)).transpose()
    }
}

fn bad_filter(k: &str) -> AwsError {
    AwsError::bad(
        "UnknownParameter",
        format!("The parameter {k} is not recognized"),
    )
}

pub fn parse_ipv4(param: &str, v: &str) -> Result<Ipv4Addr, AwsError> {
    v.parse().map_err(|_| {
        AwsError::invalid_value(format!(
            "Value ({v}) for parameter {param} is invalid. Invalid IPv4 address."
        ))
    })
}

/// A resource id of the expected shape, else `<Kind>.Malformed` as EC2 answers.
pub fn id(v: &str, prefix: &str, malformed_code: &str) -> Result<String, AwsError> {
    let ok = v
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(AwsError::bad(
            malformed_code,
            format!("Invalid id: \"{v}\" (expecting \"{prefix}-...\")"),
        ))
    }
}

/// `MaxResults` / `NextToken` paging over a sorted list.
pub struct Page {
    pub start: usize,
    pub size: Option<usize>,
}

impl Page {
    pub fn parse(p: &Params, min: i64, max: i64) -> Result<Page, AwsError> {
        let size = match p.int("MaxResults")? {
            None => None,
            Some(n) if (min..=max).contains(&n) => Some(n as usize),
            Some(n) => {
                return Err(AwsError::invalid_value(format!(
                    "Value ( {n} ) for parameter maxResults is invalid. Parameter must be between {min} and {max}."
                )))
            }
        };
        let start = match p.get("NextToken") {
            None | Some("") => 0,
            Some(t) => decode_token(t).ok_or_else(|| {
                AwsError::bad("InvalidNextToken", "The specified NextToken is not valid.")
            })?,
        };
        Ok(Page { start, size })
    }

    /// The slice to render and the token for the next page.
    pub fn apply<T>(&self, items: Vec<T>) -> (Vec<T>, Option<String>) {
        let total = items.len();
        let from = self.start.min(total);
        let to = match self.size {
            Some(n) => (from + n).min(total),
            None => total,
        };
        let next = (to < total).then(|| encode_token(to));
        let page = items.into_iter().skip(from).take(to - from).collect();
        (page, next)
    }
}

fn encode_token(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("cloudvip-sim:{offset}"))
}

fn decode_token(t: &str) -> Option<usize> {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
    String::from_utf8(b)
        .ok()?
        .strip_prefix("cloudvip-sim:")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Params {
        Params::from_pairs(crate::http::parse_form(s))
    }

    #[test]
    fn lists_filters_unknown() {
        let q = p("Action=X&PrivateIpAddress.2=b&PrivateIpAddress.1=a&Filter.1.Name=n&Filter.1.Value.1=v1&Filter.1.Value.2=v2&Filter.2.Name=m&Filter.2.Value.1=w");
        assert_eq!(q.list("PrivateIpAddress"), vec!["a", "b"]);
        let f = q.filters().unwrap();
        assert_eq!(f[0].name, "n");
        assert_eq!(f[0].values, vec!["v1", "v2"]);
        assert_eq!(f[1].values, vec!["w"]);
        assert!(q.only(&[], &["PrivateIpAddress", "Filter"]).is_ok());
        assert_eq!(
            q.only(&[], &["Filter"]).unwrap_err().code,
            "UnknownParameter"
        );
        assert!(p("DryRun=maybe").dry_run().is_err());
        assert!(p("DryRun=true").dry_run().unwrap());
    }

    #[test]
    fn paging() {
        let q = p("MaxResults=5");
        let page = Page::parse(&q, 5, 1000).unwrap();
        let (a, next) = page.apply((0..12).collect::<Vec<_>>());
        assert_eq!(a, vec![0, 1, 2, 3, 4]);
        let q2 = p(&format!(
            "MaxResults=5&NextToken={}",
            crate::http::percent_encode(&next.unwrap())
        ));
        let (b, next) = Page::parse(&q2, 5, 1000)
            .unwrap()
            .apply((0..12).collect::<Vec<_>>());
        assert_eq!(b, vec![5, 6, 7, 8, 9]);
        assert!(next.is_some());
        assert!(Page::parse(&p("MaxResults=2"), 5, 1000).is_err());
        assert!(Page::parse(&p("NextToken=zzz"), 5, 1000).is_err());
    }
}
