//! What the commands print: tables for people, JSON with `--json`, and the conversions both
//! share (an event's payload as JSON or hex, cells cut to a width, shell quoting).

use std::io::Write;

use chronik::{JSON_CONTENT_TYPE, RecordedEvent};
use comfy_table::{Table, presets};
use serde_json::Value;

use crate::Failure;

/// Widest `data` cell of the `read` table, in characters.
pub(crate) const DATA_CELL_WIDTH: usize = 60;

/// Widest `reason` cell of the `subscriptions parked` table, in characters (`--json` has it all).
pub(crate) const REASON_CELL_WIDTH: usize = 80;

/// `text` on one line: each run of whitespace (newlines included) becomes one space.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `word` as one POSIX shell word: as is when it holds only safe characters, else single-quoted
/// (`$all` becomes `'$all'`).
pub(crate) fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

pub(crate) use chronik::json::{event as event_json, payload as payload_json};

/// The `data` cell of the `read` table (and of a `tail` line): compact JSON, else `<N bytes content_type>`.
pub(crate) fn data_text(e: &RecordedEvent) -> String {
    if e.content_type == JSON_CONTENT_TYPE && serde_json::from_slice::<serde::de::IgnoredAny>(&e.data).is_ok() {
        // Valid JSON: shown as stored (key order kept), without its insignificant whitespace.
        return compact_json(&String::from_utf8_lossy(&e.data));
    }
    format!("<{} bytes {}>", e.data.len(), e.content_type)
}

/// Valid JSON text without the whitespace outside strings.
pub(crate) fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// `text` cut to at most `width` characters, ending in `…` when cut.
pub(crate) fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A table with these column headers.
pub(crate) fn new_table<const N: usize>(headers: [&str; N]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED).set_header(headers.to_vec());
    table
}

/// Pretty-printed JSON on stdout.
pub(crate) fn print_json(value: &Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure::new(e.to_string()))?;
    print_line(&text)
}

/// One line (or block) on stdout. A closed pipe (`chronik read x | head`) is not an error.
pub(crate) fn print_line(text: &str) -> Result<(), Failure> {
    print_live_line(text).map(|_| ())
}

/// One line on stdout; `false` once stdout is closed (the reader went away).
pub(crate) fn print_live_line(text: &str) -> Result<bool, Failure> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Failure::new(format!("cannot write to stdout: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_truncated_on_char_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééééééé", 4), "ééé…");
        assert_eq!(compact_json("{ \"b\" : [1, 2],\n \"a\": \"x \\\" y\" }"), r#"{"b":[1,2],"a":"x \" y"}"#);
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("acc-1"), "acc-1");
        assert_eq!(shell_word("$all"), "'$all'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(one_line("a\n  b\tc "), "a b c");
    }
}
