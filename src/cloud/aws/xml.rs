//! EC2 and STS answers as a small element tree (quick-xml reads the bytes), and the
//! accessors the typed model reads it with: a required child or text that is absent is an
//! error naming it, so `model.rs` fails closed. Names are local (the namespace prefix, if
//! any, is dropped; EC2 puts its namespace in a default `xmlns`). Attributes are ignored:
//! neither API puts data in them. Input is bounded (depth, element count) and anything
//! malformed — non-UTF-8, mismatched tags, unknown entities, a DOCTYPE — is an error.

use quick_xml::events::Event;
use quick_xml::Reader;

/// Deeper than any EC2 answer (about 8 levels); more is garbage or an attack.
const MAX_DEPTH: usize = 64;
const MAX_ELEMENTS: usize = 1_000_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// The element's own text (entities resolved), trimmed.
    pub text: String,
    pub children: Vec<Node>,
}

fn local(qname: &str) -> String {
    qname.rsplit(':').next().unwrap_or(qname).to_owned()
}

/// The document's root element.
pub fn parse(body: &[u8]) -> Result<Node, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the answer is not UTF-8".to_owned())?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut count = 0usize;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| format!("malformed XML at byte {}: {e}", reader.buffer_position()))?;
        let mut open = |name: &str, stack: &mut Vec<Node>| -> Result<Node, String> {
            count += 1;
            if count > MAX_ELEMENTS || stack.len() >= MAX_DEPTH {
                return Err("the XML answer is too large or too deep".into());
            }
            if root.is_some() {
                return Err("content after the root element".into());
            }
            Ok(Node {
                name: local(name),
                ..Node::default()
            })
        };
        match ev {
            Event::Start(e) => {
                let n = open(e.name().as_ref(), &mut stack)?;
                stack.push(n);
            }
            Event::Empty(e) => {
                let n = open(e.name().as_ref(), &mut stack)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(n),
                    None => root = Some(n),
                }
            }
            Event::End(_) => {
                // quick-xml checks that the end tag matches the open one.
                let mut n = stack
                    .pop()
                    .ok_or_else(|| "an end tag without a start tag".to_owned())?;
                n.text = n.text.trim().to_owned();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(n),
                    None => root = Some(n),
                }
            }
            Event::Text(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&t.xml10_content());
                } else if !t.trim().is_empty() {
                    return Err("text outside the root element".into());
                }
            }
            Event::CData(c) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(c.as_ref());
                }
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::unescape(&format!("&{};", &*r))
                        .map_err(|e| format!("unknown XML entity: {e}"))?
                        .into_owned(),
                    Err(e) => return Err(format!("bad character reference: {e}")),
                };
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&ch);
                }
            }
            Event::DocType(_) => return Err("a DOCTYPE in an API answer".into()),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("the XML answer ends inside an element (truncated?)".into());
    }
    root.ok_or_else(|| "an empty answer".to_owned())
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// A child that must be there.
    pub fn need(&self, name: &str) -> Result<&Node, String> {
        self.child(name)
            .ok_or_else(|| format!("<{}> lacks <{name}>", self.name))
    }

    /// The text of a child, if the child is there and not empty.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.as_str())
            .filter(|t| !t.is_empty())
    }

    /// The text of a child that must be there and not be empty.
    pub fn need_text(&self, name: &str) -> Result<&str, String> {
        self.text_of(name)
            .ok_or_else(|| format!("<{}> lacks <{name}> (or it is empty)", self.name))
    }

    /// `parse`d text of a child that must be there.
    pub fn need_parsed<T: std::str::FromStr>(&self, name: &str) -> Result<T, String> {
        let t = self.need_text(name)?;
        t.parse()
            .map_err(|_| format!("<{}><{name}> is not valid: {t:?}", self.name))
    }

    /// `parse`d text of an optional child (present but unparsable is an error).
    pub fn opt_parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        match self.text_of(name) {
            None => Ok(None),
            Some(t) => t
                .parse()
                .map(Some)
                .map_err(|_| format!("<{}><{name}> is not valid: {t:?}", self.name)),
        }
    }

    /// A boolean child that must be there (`true`/`false`).
    pub fn need_bool(&self, name: &str) -> Result<bool, String> {
        match self.need_text(name)? {
            "true" => Ok(true),
            "false" => Ok(false),
            t => Err(format!("<{}><{name}> is not a boolean: {t:?}", self.name)),
        }
    }

    /// The `<item>`s of a list child (`<…Set><item>…</item></…Set>`) that must be there;
    /// an empty set is fine, a missing one is not.
    pub fn need_items(&self, set: &str) -> Result<Vec<&Node>, String> {
        let s = self.need(set)?;
        Self::items_of(s)
    }

    /// The `<item>`s of an optional list child (absent: none).
    pub fn items(&self, set: &str) -> Result<Vec<&Node>, String> {
        match self.child(set) {
            None => Ok(Vec::new()),
            Some(s) => Self::items_of(s),
        }
    }

    fn items_of(s: &Node) -> Result<Vec<&Node>, String> {
        if let Some(other) = s.children.iter().find(|c| c.name != "item") {
            return Err(format!("<{}> holds <{}>, not <item>", s.name, other.name));
        }
        Ok(s.children.iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_elements_text_and_entities() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<R xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-1</requestId>
  <set><item><a>x &amp; y &#x41;</a></item><item/></set><e/><ns:b>2</ns:b><c><![CDATA[<c>]]></c></R>"#;
        let n = parse(doc).unwrap();
        assert_eq!(n.name, "R");
        let bom = [&b"\xef\xbb\xbf"[..], &doc[..]].concat();
        assert_eq!(parse(&bom).unwrap(), n, "a byte order mark is not content");
        assert_eq!(n.need_text("requestId").unwrap(), "r-1");
        let items = n.need_items("set").unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].need_text("a").unwrap(), "x & y A");
        assert!(n.need_items("e").unwrap().is_empty());
        assert!(n.need_items("missing").is_err());
        assert!(n.items("missing").unwrap().is_empty());
        assert_eq!(n.need_parsed::<u32>("b").unwrap(), 2);
        assert_eq!(n.need_text("c").unwrap(), "<c>");
        assert!(n.need_text("e").is_err(), "empty is not a value");
        assert!(n.need_bool("b").is_err());
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        for bad in [
            &b""[..],
            b"   ",
            b"<a>",
            b"<a></b>",
            b"</a>",
            b"<a/><b/>",
            b"text",
            b"<a>&bogus;</a>",
            b"<a>&#0;</a>",
            b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            b"<a>\xff\xfe</a>",
            b"\xc3\x28",
            b"<a><b></a>",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn a_set_of_something_else_is_an_error() {
        let n = parse(b"<r><s><other/></s></r>").unwrap();
        assert!(n.need_items("s").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_fail_without_panicking(b in proptest::collection::vec(0u8.., 0..256)) {
            let _ = parse(&b);
        }

        #[test]
        fn any_text_parse_or_fail_without_panicking(s in "[<>/a-z&;#x0-9\"= !\\[\\]CDAT]{0,80}") {
            let _ = parse(s.as_bytes());
        }
    }
}
