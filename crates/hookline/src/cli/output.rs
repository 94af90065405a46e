//! What the client commands print: the server's JSON as it came (`--json`, for scripts), or a
//! table with a header row and aligned columns (for people).

use serde_json::Value;

/// A string field of an answer (numbers and booleans shown as they are, null as `-`).
pub fn field(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            if i + 1 < widths.len() {
                out.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(&mut header.iter().copied());
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
        out.push('\n');
    }
    out
}

/// Key and value lines of one object's fields, in the given order.
pub fn details(v: &Value, keys: &[&str]) -> String {
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for key in keys {
        out.push_str(&format!("{key:width$}  {}\n", field(v, key)));
    }
    out
}

/// Prints `answer` as JSON when asked, else what `human` makes of it.
pub fn show(json: bool, answer: &Value, human: impl FnOnce(&Value) -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(answer).unwrap_or_else(|_| answer.to_string())
        );
    } else {
        print!("{}", human(answer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_their_columns() {
        let t = table(
            &["ID", "URL"],
            &[
                vec!["a".into(), "https://x".into()],
                vec!["long-id".into(), "-".into()],
            ],
        );
        assert_eq!(t, "ID       URL\na        https://x\nlong-id  -\n");
    }

    #[test]
    fn fields_show_lists_and_nulls() {
        let v = json!({"events": ["A", "B"], "n": 3, "none": null});
        assert_eq!(field(&v, "events"), "A,B");
        assert_eq!(field(&v, "n"), "3");
        assert_eq!(field(&v, "none"), "-");
        assert_eq!(field(&v, "missing"), "-");
    }
}
