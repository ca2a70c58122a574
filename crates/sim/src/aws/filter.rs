//! `Filter.N.Name` / `Filter.N.Value.M` as EC2 applies them: values of one filter are ORed,
//! filters are ANDed, values may use `*` and `?` wildcards, a multi-valued field matches
//! when any of its values does, and an unknown filter name is an error.

use super::errors::AwsError;

/// Glob match with `*` (any run) and `?` (one character); `\` escapes the next character.
pub fn wildcard(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    // Iterative matcher with one backtrack point (the last `*`).
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        let lit = |i: usize| -> Option<(char, usize)> {
            match p.get(i) {
                Some('\\') => p.get(i + 1).map(|c| (*c, 2)),
                Some(c) => Some((*c, 1)),
                None => None,
            }
        };
        match p.get(i) {
            Some('*') => {
                star = Some((i, j));
                i += 1;
            }
            Some('?') => {
                i += 1;
                j += 1;
            }
            _ => match lit(i) {
                Some((c, n)) if c == t[j] => {
                    i += n;
                    j += 1;
                }
                _ => match star {
                    Some((si, sj)) => {
                        i = si + 1;
                        j = sj + 1;
                        star = Some((si, sj + 1));
                    }
                    None => return false,
                },
            },
        }
    }
    while p.get(i) == Some(&'*') {
        i += 1;
    }
    i == p.len()
}

/// One parsed filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

/// Does a resource pass every filter? `field` returns the resource's values for a filter
/// name, or `None` when the name is not a filter of this resource type.
pub fn matches(
    filters: &[Filter],
    field: impl Fn(&str) -> Option<Vec<String>>,
) -> Result<bool, AwsError> {
    for f in filters {
        let Some(have) = field(&f.name) else {
            return Err(AwsError::invalid_value(format!(
                "The filter '{}' is invalid",
                f.name
            )));
        };
        if !f
            .values
            .iter()
            .any(|want| have.iter().any(|h| wildcard(want, h)))
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Checks the names before any resource is looked at (a filter name EC2 does not know is
/// an error even when nothing would be listed).
pub fn check_names(filters: &[Filter], known: &[&str]) -> Result<(), AwsError> {
    for f in filters {
        let tag = f.name.starts_with("tag:") && f.name.len() > 4;
        if !tag && !known.contains(&f.name.as_str()) {
            return Err(AwsError::invalid_value(format!(
                "The filter '{}' is invalid",
                f.name
            )));
        }
    }
    Ok(())
}

/// Tag filters shared by every resource: `tag:<key>`, `tag-key`, `tag-value`.
pub fn tag_field(name: &str, tags: &[(&str, &str)]) -> Option<Vec<String>> {
    if let Some(k) = name.strip_prefix("tag:") {
        return Some(
            tags.iter()
                .filter(|(tk, _)| *tk == k)
                .map(|(_, v)| v.to_string())
                .collect(),
        );
    }
    match name {
        "tag-key" => Some(tags.iter().map(|(k, _)| k.to_string()).collect()),
        "tag-value" => Some(tags.iter().map(|(_, v)| v.to_string()).collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(wildcard("eni-*", "eni-0abc"));
        assert!(wildcard("10.0.1.?", "10.0.1.5"));
        assert!(!wildcard("10.0.1.?", "10.0.1.50"));
        assert!(wildcard("*a*b*", "xxaxxbxx"));
        assert!(!wildcard("a*b", "acbd"));
        assert!(wildcard("a\\*", "a*"));
        assert!(!wildcard("a\\*", "ab"));
        assert!(wildcard("", ""));
        assert!(!wildcard("", "x"));
    }

    #[test]
    fn and_of_ors() {
        let f = vec![
            Filter {
                name: "a".into(),
                values: vec!["1".into(), "2".into()],
            },
            Filter {
                name: "b".into(),
                values: vec!["x*".into()],
            },
        ];
        let r = |a: &'static str, b: &'static str| {
            move |n: &str| match n {
                "a" => Some(vec![a.to_string()]),
                "b" => Some(vec![b.to_string()]),
                _ => None,
            }
        };
        assert!(matches(&f, r("2", "xy")).unwrap());
        assert!(!matches(&f, r("3", "xy")).unwrap());
        assert!(!matches(&f, r("1", "y")).unwrap());
        let bad = vec![Filter {
            name: "zz".into(),
            values: vec![],
        }];
        assert_eq!(
            matches(&bad, r("1", "x")).unwrap_err().code,
            "InvalidParameterValue"
        );
    }
}
