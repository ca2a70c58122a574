//! A small XML writer for the EC2 and STS responses: an element tree with escaped text,
//! rendered with a declaration and two-space indentation. Parsers (botocore's
//! `EC2QueryParser`, the CLI, the agent) ignore whitespace between elements.

/// One element: attributes, then either text or children.
#[derive(Debug, Clone, Default)]
pub struct El {
    name: String,
    attrs: Vec<(String, String)>,
    text: Option<String>,
    children: Vec<El>,
}

impl El {
    pub fn new(name: &str) -> Self {
        El {
            name: name.to_owned(),
            ..El::default()
        }
    }

    pub fn attr(mut self, k: &str, v: &str) -> Self {
        self.attrs.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn text(mut self, t: impl Into<String>) -> Self {
        self.text = Some(t.into());
        self
    }

    pub fn child(mut self, c: El) -> Self {
        self.children.push(c);
        self
    }

    pub fn push(&mut self, c: El) {
        self.children.push(c);
    }

    /// `<name>text</name>` as a child.
    pub fn text_child(self, name: &str, text: impl Into<String>) -> Self {
        self.child(El::new(name).text(text))
    }

    /// A child only when the value is present.
    pub fn opt_child(self, name: &str, text: Option<impl Into<String>>) -> Self {
        match text {
            Some(t) => self.text_child(name, t),
            None => self,
        }
    }

    pub fn bool_child(self, name: &str, v: bool) -> Self {
        self.text_child(name, if v { "true" } else { "false" })
    }

    /// `<name><item>…</item>…</name>`: EC2's list shape (`locationName` + `item` members).
    pub fn set(self, name: &str, items: impl IntoIterator<Item = El>) -> Self {
        let mut s = El::new(name);
        for i in items {
            s.push(i);
        }
        self.child(s)
    }

    fn render(&self, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth);
        out.push_str(&pad);
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            out.push_str(&format!(" {k}=\"{}\"", escape(v, true)));
        }
        match (&self.text, self.children.is_empty()) {
            (Some(t), _) => {
                out.push('>');
                out.push_str(&escape(t, false));
            }
            (None, true) => {
                out.push_str("/>\n");
                return;
            }
            (None, false) => {
                out.push_str(">\n");
                for c in &self.children {
                    c.render(depth + 1, out);
                }
                out.push_str(&pad);
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push_str(">\n");
    }
}

/// The whole document with its XML declaration.
pub fn document(root: &El) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    root.render(0, &mut out);
    out
}

/// Escapes text (`&`, `<`, `>`) or, with `attr`, an attribute value (quotes too).
pub fn escape(s: &str, attr: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            '\'' if attr => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all are replaced rather than emitted.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_nested_escaped() {
        let d = El::new("R")
            .attr("xmlns", "http://x/")
            .text_child("a", "1 < 2 & \"q\"")
            .set("s", [El::new("item").text_child("v", "x")])
            .child(El::new("empty"));
        let s = document(&d);
        assert!(
            s.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<R xmlns=\"http://x/\">")
        );
        assert!(s.contains("<a>1 &lt; 2 &amp; \"q\"</a>"));
        assert!(s.contains("<s>\n    <item>\n      <v>x</v>\n    </item>\n  </s>"));
        assert!(s.contains("<empty/>"));
    }
}
