//! The `filter` parameter of list/aggregatedList (gce-api.md §2.3): AIP-160 comparisons
//! (`=`, `!=`, `:`, `<`, `>`, `<=`, `>=`, implicit AND, `AND`, `OR`, `NOT`, parentheses) and
//! the regex dialect (`eq`/`ne`, RE2 full match) that gcloud rewrites its `--filter` into.
//! Fields are dotted paths into the resource JSON; repeated fields match if any element does.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Op(String),
    Word(String),
    Quoted(String),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '(' {
            out.push(Tok::LParen);
            i += 1;
        } else if ch == ')' {
            out.push(Tok::RParen);
            i += 1;
        } else if ch == '"' || ch == '\'' {
            let q = ch;
            i += 1;
            let mut v = String::new();
            loop {
                if i >= c.len() {
                    return Err("unterminated string".into());
                }
                if c[i] == '\\' && i + 1 < c.len() {
                    // \" is an escaped quote; any other escape is kept for the regex engine.
                    if c[i + 1] == q {
                        v.push(q);
                    } else {
                        v.push('\\');
                        v.push(c[i + 1]);
                    }
                    i += 2;
                    continue;
                }
                if c[i] == q {
                    i += 1;
                    break;
                }
                v.push(c[i]);
                i += 1;
            }
            out.push(Tok::Quoted(v));
        } else if let Some(op) = ["!=", ">=", "<=", "=", ":", ">", "<"]
            .iter()
            .find(|op| c[i..].starts_with(&op.chars().collect::<Vec<_>>()))
        {
            out.push(Tok::Op(op.to_string()));
            i += op.len();
        } else {
            let mut v = String::new();
            while i < c.len()
                && !c[i].is_whitespace()
                && !matches!(c[i], '(' | ')' | '=' | '!' | '<' | '>' | ':')
            {
                v.push(c[i]);
                i += 1;
            }
            if v.is_empty() {
                return Err(format!("unexpected character {:?}", c[i]));
            }
            out.push(Tok::Word(v));
        }
    }
    Ok(out)
}

#[derive(Debug)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Term {
        field: String,
        op: String,
        value: String,
        regex: Option<regex::Regex>,
    },
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut v = vec![self.and()?];
        while self.is_word("OR") {
            self.pos += 1;
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::Or(v)
        })
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut v = vec![self.unary()?];
        loop {
            if self.is_word("AND") {
                self.pos += 1;
            }
            match self.peek() {
                None | Some(Tok::RParen) => break,
                Some(Tok::Word(w)) if w == "OR" => break,
                _ => v.push(self.unary()?),
            }
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::And(v)
        })
    }
    fn unary(&mut self) -> Result<Expr, String> {
        if self.is_word("NOT") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if let Some(Tok::Word(w)) = self.peek() {
            if let Some(rest) = w.strip_prefix('-').filter(|r| !r.is_empty()) {
                let rest = rest.to_string();
                self.toks[self.pos] = Tok::Word(rest);
                return Ok(Expr::Not(Box::new(self.unary()?)));
            }
        }
        match self.next() {
            Some(Tok::LParen) => {
                let e = self.or()?;
                match self.next() {
                    Some(Tok::RParen) => Ok(e),
                    _ => Err("missing )".into()),
                }
            }
            Some(Tok::Word(field)) => {
                let op = match self.next() {
                    Some(Tok::Op(o)) => o,
                    Some(Tok::Word(w)) if w == "eq" || w == "ne" => w,
                    _ => return Err(format!("expected an operator after {field}")),
                };
                let value = match self.next() {
                    Some(Tok::Word(v)) | Some(Tok::Quoted(v)) => v,
                    _ => return Err(format!("expected a value after {field} {op}")),
                };
                let regex = if op == "eq" || op == "ne" {
                    // RE2 full match. gcloud escapes with Python's re.escape style; Rust's
                    // regex rejects a few escapes RE2 accepts (`\ `), so unescape those.
                    let pat = value.replace("\\ ", " ");
                    Some(
                        regex::Regex::new(&format!("^(?:{pat})$"))
                            .map_err(|e| format!("bad regular expression {value:?}: {e}"))?,
                    )
                } else {
                    None
                };
                Ok(Expr::Term {
                    field,
                    op,
                    value,
                    regex,
                })
            }
            t => Err(format!("unexpected token {t:?}")),
        }
    }
}

/// A parsed filter.
#[derive(Debug)]
pub struct Filter(Option<Expr>);

impl Filter {
    /// Parses; an empty filter matches everything.
    pub fn parse(s: &str) -> Result<Filter, String> {
        if s.trim().is_empty() {
            return Ok(Filter(None));
        }
        let mut p = Parser {
            toks: tokenize(s)?,
            pos: 0,
        };
        let e = p.or()?;
        if p.pos < p.toks.len() {
            return Err("trailing tokens".into());
        }
        Ok(Filter(Some(e)))
    }

    pub fn matches(&self, v: &Value) -> bool {
        self.0.as_ref().is_none_or(|e| eval(e, v))
    }
}

fn leaves<'a>(v: &'a Value, path: &[&str], out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| leaves(x, path, out)),
        _ if path.is_empty() => out.push(v),
        Value::Object(m) => {
            if let Some(x) = m.get(path[0]) {
                leaves(x, &path[1..], out);
            }
        }
        _ => {}
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn glob(pat: &str, s: &str) -> bool {
    let re = format!(
        "^{}$",
        pat.split('*')
            .map(regex::escape)
            .collect::<Vec<_>>()
            .join(".*")
    );
    regex::Regex::new(&re).is_ok_and(|r| r.is_match(s))
}

fn eval(e: &Expr, v: &Value) -> bool {
    match e {
        Expr::And(xs) => xs.iter().all(|x| eval(x, v)),
        Expr::Or(xs) => xs.iter().any(|x| eval(x, v)),
        Expr::Not(x) => !eval(x, v),
        Expr::Term {
            field,
            op,
            value,
            regex,
        } => {
            let path: Vec<&str> = field.split('.').collect();
            let mut ls = Vec::new();
            leaves(v, &path, &mut ls);
            let vals: Vec<String> = ls.into_iter().filter_map(text).collect();
            let cmp = |a: &str| -> Option<std::cmp::Ordering> {
                match (a.parse::<f64>(), value.parse::<f64>()) {
                    (Ok(x), Ok(y)) => x.partial_cmp(&y),
                    _ => Some(a.cmp(value.as_str())),
                }
            };
            use std::cmp::Ordering::*;
            match op.as_str() {
                "=" => vals.iter().any(|a| a == value),
                "!=" => !vals.iter().any(|a| a == value),
                ":" if value == "*" => !vals.is_empty(),
                ":" => vals.iter().any(|a| glob(value, a)),
                ">" => vals.iter().any(|a| cmp(a) == Some(Greater)),
                "<" => vals.iter().any(|a| cmp(a) == Some(Less)),
                ">=" => vals.iter().any(|a| matches!(cmp(a), Some(Greater | Equal))),
                "<=" => vals.iter().any(|a| matches!(cmp(a), Some(Less | Equal))),
                "eq" => regex
                    .as_ref()
                    .is_some_and(|r| vals.iter().any(|a| r.is_match(a))),
                "ne" => regex
                    .as_ref()
                    .is_some_and(|r| !vals.iter().any(|a| r.is_match(a))),
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dialects() {
        let i = json!({"name": "node-a", "status": "RUNNING", "labels": {"cluster": "ha1"},
            "networkInterfaces": [{"networkIP": "10.0.0.2"}], "canIpForward": false});
        let yes = [
            r#"name = "node-a""#,
            "name=node-a",
            "name eq node-a",
            "name eq node-.*",
            r#"name eq ".*\bnode\-a\b.*""#,
            r#"(name eq ".*\bnode\-a\b.*") (status eq RUNNING)"#,
            r#"labels.cluster = "ha1""#,
            "labels.cluster:*",
            "networkInterfaces.networkIP = 10.0.0.2",
            r#"name = "x" OR name = "node-a""#,
            "NOT name = x",
            "-name = x",
            "canIpForward = false",
            "name ne node-b",
        ];
        for f in yes {
            assert!(Filter::parse(f).unwrap().matches(&i), "{f}");
        }
        let no = [
            r#"name = "node-b""#,
            "name eq node",
            "labels.cluster = ha2",
            "labels.other:*",
            r#"(name = "node-a") (status = "STOPPED")"#,
        ];
        for f in no {
            assert!(!Filter::parse(f).unwrap().matches(&i), "{f}");
        }
        assert!(Filter::parse("name =").is_err());
        assert!(Filter::parse("(name = a").is_err());
    }
}
