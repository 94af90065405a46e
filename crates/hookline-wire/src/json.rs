//! Small JSON writing helpers shared by the envelope writer and error messages.

/// Something JSON text can be appended to without a fallible `io::Write`.
pub(crate) trait Sink {
    fn push_str(&mut self, s: &str);
}

impl Sink for String {
    fn push_str(&mut self, s: &str) {
        String::push_str(self, s);
    }
}

impl Sink for Vec<u8> {
    fn push_str(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

/// Appends `s` as a JSON string literal, quotes included, escaped exactly as serde_json does
/// (`"`, `\`, and control characters; everything else, non-ASCII included, verbatim), so the
/// envelope's bytes match what a serde_json round trip would produce.
pub(crate) fn write_str<W: Sink>(out: &mut W, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\"");
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Every escaped byte is ASCII, so `start..i` always lies on char boundaries.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let u = [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ];
            // Six ASCII bytes: always valid UTF-8.
            out.push_str(std::str::from_utf8(&u).unwrap_or_default());
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push_str("\"");
}

/// `s` as a JSON string literal for an error message, cut after 60 characters so that a huge value
/// does not make a huge message.
pub(crate) fn quote_for_message(s: &str) -> String {
    const MAX_CHARS: usize = 60;
    let mut out = String::new();
    match s.char_indices().nth(MAX_CHARS) {
        None => write_str(&mut out, s),
        Some((cut, _)) => {
            write_str(&mut out, &s[..cut]);
            out.push_str(&format!("... ({} characters)", s.chars().count()));
        }
    }
    out
}

/// How a JSON value reads in an error message: `the string "1"`, `the number 1.0`, `null`, ...
pub(crate) fn describe(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", quote_for_message(s)),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_serde_json() {
        let mut all_controls = String::new();
        for c in 0u8..0x20 {
            all_controls.push(char::from(c));
        }
        for s in [
            "",
            "plain",
            "quote \" and backslash \\",
            "new\nline\ttab\rcr",
            "한글 and emoji 🎉 and \u{7f} and \u{2028}",
            all_controls.as_str(),
            "\u{0}",
        ] {
            let mut mine = String::new();
            write_str(&mut mine, s);
            let theirs = serde_json::to_string(s).expect("serialise");
            assert_eq!(mine, theirs);
            let mut bytes = Vec::new();
            write_str(&mut bytes, s);
            assert_eq!(bytes, theirs.as_bytes());
        }
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(100);
        let q = quote_for_message(&long);
        assert!(q.starts_with(&format!("\"{}\"", "x".repeat(60))), "{q}");
        assert!(q.ends_with("(100 characters)"), "{q}");
        assert_eq!(quote_for_message("é"), "\"é\"");
    }

    #[test]
    fn describes_values() {
        assert_eq!(describe(&serde_json::json!(1.0)), "the number 1.0");
        assert_eq!(describe(&serde_json::json!("1")), "the string \"1\"");
        assert_eq!(describe(&serde_json::json!(null)), "null");
        assert_eq!(describe(&serde_json::json!([1])), "an array");
    }
}
