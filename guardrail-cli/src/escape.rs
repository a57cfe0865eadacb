//! Escaping what the command echoes: every string that comes from a trail (principal ids,
//! actions, key fingerprints, error details) or from a file name goes through [`text`] before
//! it reaches a terminal, so a hostile trail cannot move the cursor, erase a line, reorder
//! text or paint a fake `ok:` line.
//!
//! Escaped: control characters (C0 including ESC, CR and LF, DEL, C1), Unicode bidirectional
//! controls and invisible formatting characters (U+061C, U+200B–U+200F, U+2028–U+202E,
//! U+2060–U+2069, U+FEFF), each shown as `\u{..}`; and `\` itself as `\\`, so the escaped
//! form is unambiguous (a literal `\u{1b}` in an id shows as `\\u{1b}`).
//!
//! JSON output keeps its data: [`json`] writes the same characters as JSON `\uXXXX` escapes,
//! which decode to the original text.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for a character that must never reach a terminal as itself.
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// `s` with every unsafe character shown as `\u{..}` and `\` as `\\`.
pub(crate) fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_unsafe(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON text (as `serde_json` writes it) with every unsafe character it left raw written as
/// a `\uXXXX` escape. `serde_json` escapes C0 controls inside strings itself (and the line
/// breaks of pretty output are structure); DEL, C1 and the Unicode controls it leaves raw
/// can only occur inside strings, so the result is the same JSON value.
pub(crate) fn json(s: &str) -> Cow<'_, str> {
    let raw_unsafe = |c: char| c >= '\u{7f}' && is_unsafe(c);
    if !s.chars().any(raw_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if raw_unsafe(c) {
            // Every unsafe character is in the Basic Multilingual Plane: one escape each.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_shown_not_obeyed() {
        assert_eq!(text("dr-grey"), "dr-grey");
        assert_eq!(text("a\r\x1b[2Kok"), "a\\u{d}\\u{1b}[2Kok");
        assert_eq!(text("x\ny\tz\u{7f}\u{9b}"), "x\\u{a}y\\u{9}z\\u{7f}\\u{9b}");
        assert_eq!(text("\u{202e}gpj.exe"), "\\u{202e}gpj.exe");
        assert_eq!(
            text("\u{2066}a\u{2069}\u{200b}\u{feff}"),
            "\\u{2066}a\\u{2069}\\u{200b}\\u{feff}"
        );
        assert_eq!(text("C:\\u{1b}"), "C:\\\\u{1b}");
        assert_eq!(text("ünïcödé ok"), "ünïcödé ok");
    }

    #[test]
    fn json_escapes_keep_the_value() {
        let v = serde_json::json!({"p": "a\u{7f}\u{9b}\u{202e}b\r\x1b"});
        let raw = serde_json::to_string(&v).unwrap();
        assert!(raw.contains('\u{202e}'), "serde_json leaves it raw: {raw}");
        let safe = json(&raw);
        assert!(!safe.chars().any(is_unsafe), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, v);
        // Pretty output keeps its structure.
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        let back: serde_json::Value = serde_json::from_str(&json(&pretty)).unwrap();
        assert_eq!(back, v);
    }
}
