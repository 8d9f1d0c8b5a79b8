//! Writing the XML documents this crate serves. Every text value (host
//! names come from the config, addresses from the request) goes through
//! [`text`], so a value can never close an element or open a new one.

use std::fmt::Write;

/// `s` escaped for XML character data and attribute values.
pub(crate) fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 §2.2: other control characters cannot appear at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// A document being written with two-space indentation.
pub(crate) struct Doc {
    out: String,
    depth: usize,
}

impl Doc {
    pub(crate) fn new(prolog: &str) -> Doc {
        Doc { out: format!("{prolog}\n"), depth: 0 }
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    /// Opens `<tag attrs>`; `attrs` must already be escaped.
    pub(crate) fn open(&mut self, tag: &str, attrs: &str) -> &mut Doc {
        self.indent();
        let sep = if attrs.is_empty() { "" } else { " " };
        let _ = writeln!(self.out, "<{tag}{sep}{attrs}>");
        self.depth += 1;
        self
    }

    pub(crate) fn close(&mut self, tag: &str) -> &mut Doc {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        let _ = writeln!(self.out, "</{tag}>");
        self
    }

    /// `<tag>value</tag>` with `value` escaped.
    pub(crate) fn leaf(&mut self, tag: &str, value: &str) -> &mut Doc {
        self.indent();
        let _ = writeln!(self.out, "<{tag}>{}</{tag}>", text(value));
        self
    }

    /// A line written as it is (an empty element such as `<true/>`).
    pub(crate) fn raw(&mut self, line: &str) -> &mut Doc {
        self.indent();
        self.out.push_str(line);
        self.out.push('\n');
        self
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_is_escaped_and_control_characters_dropped() {
        assert_eq!(super::text("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;");
        let mut d = super::Doc::new("<?xml version=\"1.0\"?>");
        d.open("a", "").leaf("b", "</b><x>").close("a");
        assert_eq!(d.finish(), "<?xml version=\"1.0\"?>\n<a>\n  <b>&lt;/b&gt;&lt;x&gt;</b>\n</a>\n");
    }
}
