//! What a tool call delivers: the handler's JSON with every string scrubbed, its compact
//! text, and the SHA-256 of that text.
//!
//! Every string of a result (map keys included: a `HashMap<String, _>` key can be a name) is
//! scanned with the default scanner, except a string the scanner cannot find anything in,
//! known without running it ([`needs_scan`]): ASCII text with none of `:`, `@` and `www` and
//! too few digits for any built-in pattern (at most four, in at most two runs), or a keyed
//! token the masking itself wrote (`hmac-sha256:` and 64 lowercase hex digits). Field names,
//! revealed names, diagnoses and what the other maskings write (`***-**-6789`, a year) are
//! the first kind, tokenized values the second: a typical masked record then runs the scanner
//! on none of its strings.

use std::sync::LazyLock;

use guardrail_core::AuditKey;
use guardrail_core::mask::scanner::Scanner;
use guardrail_core::mask::{default_scanner, scrub_text};
use serde_json::Value;

use crate::ToolError;

/// Passes every string of `value` (keys and values) through [`scrub_text`].
pub fn scrub_json(mut value: Value) -> Value {
    scrub_json_in_place(&mut value);
    value
}

/// [`scrub_json`] in place: every string (keys and values) that could hold an identifier is
/// scanned; only one holding an identifier is replaced (by [`scrub_text`]'s masked text), so
/// a clean result is never copied.
pub fn scrub_json_in_place(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Some(masked) = scrubbed(s) {
                *s = masked;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub_json_in_place),
        Value::Object(map) => {
            if map.keys().any(|k| scrubbed(k).is_some()) {
                // A key holds an identifier: rebuild the map with scrubbed keys (rare).
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, mut v)| {
                        scrub_json_in_place(&mut v);
                        (scrubbed(&k).unwrap_or(k), v)
                    })
                    .collect();
            } else {
                map.values_mut().for_each(scrub_json_in_place);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The masked text of `text` if the scanner finds an identifier in it, `None` if it is clean.
fn scrubbed(text: &str) -> Option<String> {
    if !needs_scan(text) || default_scanner().find(text).is_empty() {
        None
    } else {
        Some(scrub_text(text))
    }
}

/// False only for text the default scanner cannot find an identifier in, decided without
/// running it:
///
/// - ASCII text ([`too_few_digits`]) with no `:`, no `@`, no `www` (any case), at most four
///   digits, and those in at most two runs. Every built-in pattern needs one of: an `@` (an
///   email), a URL's `://` or `www.`, an IPv6 address's `:`, five digits or more (a phone or
///   fax number has ten, an SSN nine, an MRN six, a ZIP code five, a named date's day and
///   year five, a card number thirteen) or three runs of digits (a numeric date such as
///   `1/2/34`, an IPv4 address). Other text (look-alike digits are folded to ASCII before
///   the search) is scanned.
/// - A keyed token (`hmac-sha256:` and 64 lowercase hex digits), the output of the
///   `tokenize` masking: a keyed one-way hash holds no identifier, and no pattern matches
///   one (no separator between its digits, no word boundary inside them).
///
/// Both claims are checked once against the scanner itself ([`SHORTCUT_HOLDS`]): should a
/// scanner ever find something in such text (a new pattern, or a scanner that failed to
/// build and reports every text as unscanned), every string is scanned again.
fn needs_scan(text: &str) -> bool {
    !(*SHORTCUT_HOLDS && (too_few_digits(text) || is_keyed_token(text)))
}

/// ASCII text with no `:`, `@` or `www` (any case), and at most four ASCII digits in at
/// most two runs (see [`needs_scan`]).
fn too_few_digits(text: &str) -> bool {
    let (mut digits, mut runs, mut in_run) = (0u32, 0u32, false);
    for &b in text.as_bytes() {
        match b {
            b'0'..=b'9' => {
                digits += 1;
                runs += u32::from(!in_run);
                in_run = true;
                if digits > 4 || runs > 2 {
                    return false;
                }
            }
            // A byte above 0x7f may be part of a look-alike digit or dash.
            b':' | b'@' | 0x80.. => return false,
            _ => in_run = false,
        }
    }
    !text
        .as_bytes()
        .windows(3)
        .any(|w| w.eq_ignore_ascii_case(b"www"))
}

/// `hmac-sha256:` followed by exactly 64 lowercase hex digits.
fn is_keyed_token(text: &str) -> bool {
    text.strip_prefix(AuditKey::TOKEN_PREFIX)
        .is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// Texts of both shortcut kinds that a scanner might be expected to trip on if any could:
/// cue words, month and state names, masked values, short digit runs beside cues and
/// separators, all-digit and digit-run tokens.
const PROBES: &[&str] = &[
    "",
    "a",
    "birth_date",
    "Ada Hale",
    "SSN is unknown; MRN pending; fax number; zip code; postal code",
    "Dec. the first, March, Massachusetts MA, NY, medical record number #:",
    "hypertension, type two diabetes (controlled) - see notes / plan + follow-up",
    "ww.example.com wwW",
    "***-**-6789",
    "1961",
    "p-1",
    "SSN ***-**-6789",
    "ssn is 1234",
    "MRN 1234",
    "mr# 12",
    "zip code 0211",
    "MA 0211",
    "fax 555-1",
    "12/34",
    "1/2/",
    "1.2",
    "12 34",
    "1-2",
    "Mar 19",
    "4 March",
    "March 4, 196",
    "19 Dec 61",
    "9th of 196",
    "ip 1.2.",
    "card 4111",
    "(617) 5",
    "hmac-sha256:0000000000000000000000000000000000000000000000000000000000000000",
    "hmac-sha256:4111111111111111aaaa4111111111111111aaaa0123456789012345dec12345",
    "hmac-sha256:123456789012345678901234567890123456789012345678901234567890abcd",
    "hmac-sha256:f61dd5f06665cc7dd0996d585da79390b7cf927cc5e1a1bd801e05371a5bc97d",
];

/// True if the default scanner finds nothing in any probe of either shortcut kind: the
/// shortcut then skips only what the scanner would have passed.
static SHORTCUT_HOLDS: LazyLock<bool> = LazyLock::new(|| shortcut_holds(default_scanner()));

/// True if `scanner` finds nothing in any of the [`PROBES`].
fn shortcut_holds(scanner: &Scanner) -> bool {
    PROBES.iter().all(|p| scanner.find(p).is_empty())
}

/// SHA-256 (lowercase hex) of `text`: the digest recorded for a delivered result.
pub fn result_digest(text: &str) -> String {
    use sha2::Digest as _;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = sha2::Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(2 * hash.len());
    for b in hash.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// The compact JSON text of `value`, written straight into one buffer (the same text as
/// `value.to_string()`, without going through `fmt`).
pub(crate) fn render(value: &Value) -> Result<String, ToolError> {
    let failed = || ToolError::Failed("the result could not be rendered as JSON".into());
    let mut buf = Vec::with_capacity(256);
    serde_json::to_writer(&mut buf, value).map_err(|_| failed())?;
    // serde_json writes valid UTF-8 only; the check cannot fail.
    String::from_utf8(buf).map_err(|_| failed())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    /// A small deterministic generator (xorshift): the same cases on every run.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[usize::try_from(self.next() % from.len() as u64).unwrap()]
        }
    }

    #[test]
    fn the_shortcut_holds_for_the_default_scanner_and_not_for_one_that_finds_words() {
        assert!(*SHORTCUT_HOLDS);
        // A scanner whose MRN pattern matches plain words (or one that failed to build and
        // reports every text) would find something in the probes: no shortcut then.
        let wordy = Scanner::builder()
            .mrn_patterns(["(?i:mrn) (?P<id>[a-z]+)"])
            .build()
            .unwrap();
        assert!(!shortcut_holds(&wordy));
    }

    /// Whatever the shortcut skips, the scanner passes: trigger-free prose built from cue
    /// words, names of months and states and punctuation, and random keyed tokens.
    #[test]
    fn what_is_not_scanned_is_what_the_scanner_passes() {
        const WORDS: &[&str] = &[
            "SSN",
            "ssn",
            "ss#",
            "social security no.",
            "MRN",
            "mr#",
            "medical record number",
            "fax",
            "zip code",
            "postal code",
            "Dec",
            "March",
            "Sept.",
            "MA",
            "NY",
            "CA",
            "is",
            "was",
            "#",
            "=",
            "-",
            "/",
            ".",
            ",",
            "(",
            ")",
            "+",
            " ",
            "\t",
            "\n",
            "w",
            "ww",
            "http",
            "https",
            "ftp",
            "//",
            "x",
            "Ada",
            "Hale",
            "st",
            "nd",
            "th",
            "-- ",
            "e.g.",
            "1",
            "12",
            "196",
            "6789",
            "***-**-",
            "0",
        ];
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let (mut skipped, mut skipped_with_digits) = (0, 0);
        for _ in 0..4000 {
            let n = 1 + g.next() % 8;
            let text: String = (0..n).map(|_| g.pick(WORDS)).collect();
            if !needs_scan(&text) {
                skipped += 1;
                skipped_with_digits += usize::from(text.bytes().any(|b| b.is_ascii_digit()));
                assert!(default_scanner().find(&text).is_empty(), "{text:?}");
            }
        }
        assert!(skipped > 2000, "only {skipped} skipped");
        assert!(
            skipped_with_digits > 500,
            "only {skipped_with_digits} with digits"
        );
        const HEX: &[&str] = &["0", "1", "2", "4", "5", "9", "a", "c", "d", "e", "f"];
        for _ in 0..2000 {
            let digits: String = (0..64).map(|_| g.pick(HEX)).collect();
            let token = format!("hmac-sha256:{digits}");
            assert!(!needs_scan(&token), "{token}");
            assert!(default_scanner().find(&token).is_empty(), "{token}");
        }
    }

    /// The probes that hold a digit are of the first shortcut kind: they test its claim.
    #[test]
    fn the_probes_with_digits_are_short_of_digits() {
        let with_digits: Vec<_> = PROBES
            .iter()
            .filter(|p| {
                !p.starts_with(AuditKey::TOKEN_PREFIX) && p.contains(|c: char| c.is_ascii_digit())
            })
            .collect();
        assert!(with_digits.len() > 20);
        for p in with_digits {
            assert!(too_few_digits(p), "{p}");
        }
    }

    /// Text that may hold an identifier is scanned, keys and values alike: every byte the
    /// shortcut looks for, look-alike digits, five digits or three runs of them, and
    /// anything that is almost a token.
    #[test]
    fn what_may_hold_an_identifier_is_scanned() {
        let risky = [
            "1/2/34",
            "ip 1.2.3.4",
            "March 4, 1961",
            "4 Mar 1961",
            "zip code 02115",
            "MA 02115",
            "SSN 123-45-6789",
            "ada@example.org",
            "ftp://example.org/x",
            "see www.example.org",
            "fe::",
            "SSN １２３-４５-６７８９",
            "hmac-sha256:123-45-6789",
            "hmac-sha256:0000000000000000000000000000000000000000000000000000000000000000 \
             SSN 123-45-6789",
        ];
        for text in risky {
            assert!(needs_scan(text), "{text}");
            assert!(!default_scanner().find(text).is_empty(), "{text}");
        }
        // Almost a token: scanned (whatever the scanner then finds in it).
        let hex = "f61dd5f06665cc7dd0996d585da79390b7cf927cc5e1a1bd801e05371a5bc97d";
        for near in [
            format!("hmac-sha256:{}", &hex[1..]),
            format!("hmac-sha256:{hex}0"),
            format!("hmac-sha256:{}", hex.to_uppercase()),
            format!("hmac-sha256:{}g", &hex[1..]),
            format!("hmac-sha1:{hex}"),
            format!(" hmac-sha256:{hex}"),
        ] {
            assert!(needs_scan(&near), "{near}");
        }
        let mut map = serde_json::Map::new();
        for (i, text) in risky.iter().enumerate() {
            map.insert((*text).to_owned(), json!(i));
            map.insert(format!("k{i}"), json!(text));
        }
        let scrubbed = scrub_json(Value::Object(map));
        let map = scrubbed.as_object().unwrap();
        for (i, text) in risky.iter().enumerate() {
            assert!(map.contains_key(&scrub_text(text)), "{text}");
            assert!(!map.contains_key(*text), "{text}");
            assert_eq!(map[&format!("k{i}")], json!(scrub_text(text)), "{text}");
        }
    }

    #[test]
    fn the_digest_is_the_sha256_of_the_text_in_lowercase_hex() {
        use sha2::Digest as _;
        let text = r#"{"a":"b"}"#;
        let expected: String = sha2::Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(result_digest(text), expected);
        assert_eq!(
            result_digest(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn the_rendered_text_is_the_compact_json() {
        let v = json!({"b": [1, "x\"y", null], "a": {"c": true}, "é": 1.5});
        assert_eq!(render(&v).unwrap(), v.to_string());
    }
}
