//! Scrubbed logs (feature `tracing`), at two levels:
//!
//! - [`ScrubbingFields`], a field formatter (`fmt().fmt_fields(ScrubbingFields::default())`):
//!   sees each field's name and value before anything is formatted, writes `[REDACTED]` for
//!   a field whose name says PHI ([`is_phi_field_name`]) and runs the scanner over every other
//!   value and the message. The fmt layer never sees a raw value.
//! - [`ScrubbingWriter`], a [`MakeWriter`] wrapper that runs the scanner over every formatted
//!   line before it reaches the real writer, skipping ANSI escape sequences (the default
//!   formatter colours field names; the `m` ending an escape would otherwise hide the word
//!   boundary before an identifier). This also covers what the field formatter does not see:
//!   targets, span names.
//! - The JSON formatter (`fmt().json()`) formats an event's fields itself, without a field
//!   formatter; [`ScrubbingWriter`] recognises its lines and applies the field-level rules
//!   to the formatted object ([`scrub_json_line`]): PHI-named keys redacted, every other
//!   string and number value scanned.
//!
//! Use both: `fmt().fmt_fields(ScrubbingFields::default()).with_writer(ScrubbingWriter::new(..))`;
//! with `fmt().json()`, the writer alone (a JSON subscriber's span fields must stay JSON, so
//! it keeps its own field formatter).
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use guardrail_core::mask::logs::ScrubbingWriter;
//!
//! let out = Arc::new(Mutex::new(Vec::<u8>::new()));
//! let sink = out.clone();
//! let subscriber = tracing_subscriber::fmt()
//!     .with_writer(ScrubbingWriter::new(move || SharedBuf(sink.clone())))
//!     .with_ansi(false)
//!     .finish();
//! tracing::subscriber::with_default(subscriber, || {
//!     let note = "pt called from 617-555-0142";
//!     tracing::info!("{note}");
//! });
//! let logged = String::from_utf8(out.lock().unwrap().clone()).unwrap();
//! assert!(logged.contains("pt called from [PHONE]"));
//! assert!(!logged.contains("555-0142"));
//!
//! struct SharedBuf(Arc<Mutex<Vec<u8>>>);
//! impl std::io::Write for SharedBuf {
//!     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
//!         self.0.lock().unwrap().extend_from_slice(b);
//!         Ok(b.len())
//!     }
//!     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! }
//! ```

use std::fmt as fmt_;
use std::io::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};

use super::scanner::Scanner;

/// The words that make a field PHI by its name alone (matched against the name's parts split
/// at `_`, `.` and `-`, case-insensitively): its value is written as `[REDACTED]` whatever
/// it holds.
pub const PHI_FIELD_WORDS: &[&str] = &[
    "ssn",
    "social",
    "dob",
    "birth",
    "birthdate",
    "birthday",
    "phone",
    "telephone",
    "tel",
    "mobile",
    "cell",
    "fax",
    "mrn",
    "name",
    "firstname",
    "lastname",
    "surname",
    "fullname",
    "address",
    "addr",
    "street",
    "city",
    "zip",
    "zipcode",
    "postal",
    "email",
    "mail",
    "diagnosis",
    "dx",
    "icd",
    "icd10",
    "note",
    "notes",
    "account",
    "card",
    "insurance",
    "member",
    "license",
    "ip",
    "plate",
    "vin",
    "patient",
];

/// True if a field called `name` holds PHI by its name: one of its parts (split at `_`, `.`,
/// `-`) is in [`PHI_FIELD_WORDS`] (`ssn`, `patient_name`, `dob`, `home.phone`).
pub fn is_phi_field_name(name: &str) -> bool {
    name.trim_start_matches("r#")
        .split(['_', '.', '-'])
        .any(|part| PHI_FIELD_WORDS.iter().any(|w| part.eq_ignore_ascii_case(w)))
}

/// A field formatter that masks before formatting: PHI-named fields become `[REDACTED]`,
/// every other value (strings, `%` Display and `?` Debug values) and the message is run
/// through the scanner. Formats like the default `name=value` fields, separated by spaces.
#[derive(Debug, Clone)]
pub struct ScrubbingFields {
    scanner: Scanner,
}

impl Default for ScrubbingFields {
    fn default() -> Self {
        ScrubbingFields {
            scanner: super::default_scanner().clone(),
        }
    }
}

impl ScrubbingFields {
    /// Scans values with `scanner` (custom MRN patterns, say).
    pub fn with_scanner(scanner: Scanner) -> ScrubbingFields {
        ScrubbingFields { scanner }
    }
}

impl<'writer> FormatFields<'writer> for ScrubbingFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt_::Result {
        let mut visitor = FieldVisitor {
            writer: &mut writer,
            scanner: &self.scanner,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct FieldVisitor<'a, 'w> {
    writer: &'a mut Writer<'w>,
    scanner: &'a Scanner,
    first: bool,
    result: fmt_::Result,
}

impl FieldVisitor<'_, '_> {
    fn write(&mut self, field: &Field, value: &str, quoted: bool) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        let separator = if self.first { "" } else { " " };
        self.first = false;
        let masked = if name != "message" && is_phi_field_name(name) {
            super::REDACTED.to_owned()
        } else {
            self.scanner.mask(value)
        };
        self.result = if name == "message" {
            write!(self.writer, "{separator}{masked}")
        } else if quoted {
            write!(
                self.writer,
                "{separator}{}={masked:?}",
                name.trim_start_matches("r#")
            )
        } else {
            write!(
                self.writer,
                "{separator}{}={masked}",
                name.trim_start_matches("r#")
            )
        };
    }
}

impl Visit for FieldVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value, true);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt_::Debug) {
        self.write(field, &format!("{value:?}"), false);
    }
}

/// `text` with every identifier masked, ANSI escape sequences skipped while matching (and
/// kept in the output outside identifiers).
pub fn mask_skipping_ansi(scanner: &Scanner, text: &str) -> String {
    if !text.contains('\u{1b}') {
        return scanner.mask(text);
    }
    // The text without escapes, and for each of its bytes the offset in `text`.
    let bytes = text.as_bytes();
    let mut plain = Vec::with_capacity(bytes.len());
    let mut origin = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == 0x1b {
            i += escape_len(&bytes[i..]);
            continue;
        }
        plain.push(b);
        origin.push(i);
        i += 1;
    }
    // Escapes are ASCII, so removing them leaves valid UTF-8.
    let plain = String::from_utf8_lossy(&plain);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for m in scanner.find(&plain) {
        let (Some(&start), Some(&last)) = (
            origin.get(m.range.start),
            origin.get(m.range.end.saturating_sub(1)),
        ) else {
            continue;
        };
        let end = last + 1;
        if start < at {
            continue;
        }
        out.push_str(text.get(at..start).unwrap_or_default());
        out.push_str(m.kind.placeholder());
        at = end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

/// The length of the escape sequence at the start of `b` (which starts with ESC): a CSI
/// sequence `ESC [ params final` (parameters and final byte ASCII), else ESC and the byte
/// after it if that is ASCII. Never splits a UTF-8 character.
fn escape_len(b: &[u8]) -> usize {
    match b.get(1) {
        Some(b'[') => {
            let mut j = 2;
            while let Some(&c) = b.get(j) {
                if !c.is_ascii() {
                    break;
                }
                j += 1;
                if (0x40..=0x7e).contains(&c) {
                    break;
                }
            }
            j
        }
        Some(c) if c.is_ascii() => 2,
        _ => 1,
    }
}

/// One formatted line scrubbed: a line holding one JSON object (the JSON formatter,
/// `fmt().json()`) is rewritten value by value ([`scrub_json_line`]); any other line, or a
/// JSON line that does not parse, is scanned as text with ANSI escapes skipped
/// ([`mask_skipping_ansi`]).
fn scrub_line(scanner: &Scanner, line: &str) -> String {
    let body = line.trim_end_matches(['\n', '\r']);
    if body.trim_start().starts_with('{') {
        if let Some(mut json) = scrub_json_line(scanner, body) {
            json.push_str(&line[body.len()..]);
            return json;
        }
    }
    mask_skipping_ansi(scanner, line)
}

/// How deep a JSON log line may nest before it is scanned as plain text instead.
const MAX_JSON_DEPTH: usize = 32;

/// A JSON log line (`tracing_subscriber::fmt().json()`) with its values masked, key order
/// and layout kept; `None` if `line` is not one JSON object (the caller then scans it as
/// text, so nothing passes unscanned).
///
/// The JSON formatter does not use a [`FormatFields`] for an event's fields, so the field
/// level rules are applied here, to the formatted object: the value of a key whose name says
/// PHI ([`is_phi_field_name`]) becomes `"[REDACTED]"` whatever it is (string, number,
/// object); every other string and number is run through the scanner (a number the scanner
/// finds something in becomes a string placeholder, `"[ACCOUNT]"`). Keys are not PHI-checked
/// where the formatter writes them itself: `message`, a span's `name`, and the event's
/// `timestamp` when it is the first key of the line (a field cannot come first). Keys and
/// the formatter's own values (`level`, `target`) are scanned like every other string.
///
/// ```
/// use guardrail_core::mask::logs::scrub_json_line;
/// use guardrail_core::mask::scanner::Scanner;
/// let line = r#"{"level":"INFO","fields":{"message":"cb 617-555-0142","ssn":"123456789","visit":41},"span":{"name":"visit"}}"#;
/// assert_eq!(
///     scrub_json_line(&Scanner::default(), line).as_deref(),
///     Some(r#"{"level":"INFO","fields":{"message":"cb [PHONE]","ssn":"[REDACTED]","visit":41},"span":{"name":"visit"}}"#)
/// );
/// assert_eq!(scrub_json_line(&Scanner::default(), "not json 123-45-6789"), None);
/// ```
pub fn scrub_json_line(scanner: &Scanner, line: &str) -> Option<String> {
    let mut j = JsonScrub {
        scanner,
        src: line,
        at: 0,
        out: String::with_capacity(line.len()),
    };
    j.space();
    j.object(Place::Top, 0)?;
    j.space();
    (j.at == line.len()).then_some(j.out)
}

/// Where an object sits in a JSON log line: it decides which keys the formatter wrote.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The event object itself.
    Top,
    /// A span (`"span":{..}`, an element of `"spans":[..]`): its `name` is the span's name.
    Span,
    /// Anything else (`"fields":{..}`).
    Other,
}

struct JsonScrub<'a> {
    scanner: &'a Scanner,
    src: &'a str,
    at: usize,
    out: String,
}

impl JsonScrub<'_> {
    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.at).copied()
    }

    /// Copies whitespace.
    fn space(&mut self) {
        while let Some(b @ (b' ' | b'\t' | b'\r' | b'\n')) = self.peek() {
            self.out.push(char::from(b));
            self.at += 1;
        }
    }

    /// Copies one expected byte.
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| {
            self.out.push(char::from(byte));
            self.at += 1;
        })
    }

    /// The raw text of the string token at `at` (quotes included), consumed, and its value.
    fn string_token(&mut self) -> Option<String> {
        let bytes = self.src.as_bytes();
        if bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let mut i = self.at + 1;
        loop {
            match bytes.get(i)? {
                b'"' => break,
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        let token = self.src.get(self.at..=i)?;
        self.at = i + 1;
        serde_json::from_str::<String>(token).ok()
    }

    /// Writes `text` as a JSON string.
    fn push_string(&mut self, text: &str) -> Option<()> {
        self.out.push_str(&serde_json::to_string(text).ok()?);
        Some(())
    }

    /// Skips one value of any kind, writing `"[REDACTED]"` in its place.
    fn redact_value(&mut self, depth: usize) -> Option<()> {
        let mut sink = JsonScrub {
            scanner: self.scanner,
            src: self.src,
            at: self.at,
            out: String::new(),
        };
        sink.value(Place::Other, depth)?;
        self.at = sink.at;
        self.push_string(super::REDACTED)
    }

    fn object(&mut self, place: Place, depth: usize) -> Option<()> {
        if depth > MAX_JSON_DEPTH {
            return None;
        }
        self.expect(b'{')?;
        self.space();
        if self.expect(b'}').is_some() {
            return Some(());
        }
        let mut first = true;
        loop {
            let key = self.string_token()?;
            // Keys are field names, and a name can itself be an identifier.
            let shown = mask_skipping_ansi(self.scanner, &key);
            self.push_string(&shown)?;
            self.space();
            self.expect(b':')?;
            self.space();
            let written_by_formatter = key == "message"
                || (place == Place::Span && key == "name")
                || (place == Place::Top && first && key == "timestamp");
            if written_by_formatter && key == "timestamp" {
                let value = self.string_token()?;
                self.push_string(&value)?;
            } else if !written_by_formatter && is_phi_field_name(&key) {
                self.redact_value(depth + 1)?;
            } else {
                let inner = match key.as_str() {
                    "span" if place == Place::Top => Place::Span,
                    "spans" if place == Place::Top => Place::Span,
                    _ => Place::Other,
                };
                self.value(inner, depth + 1)?;
            }
            first = false;
            self.space();
            if self.expect(b',').is_some() {
                self.space();
                continue;
            }
            return self.expect(b'}');
        }
    }

    fn array(&mut self, place: Place, depth: usize) -> Option<()> {
        if depth > MAX_JSON_DEPTH {
            return None;
        }
        self.expect(b'[')?;
        self.space();
        if self.expect(b']').is_some() {
            return Some(());
        }
        loop {
            self.value(place, depth + 1)?;
            self.space();
            if self.expect(b',').is_some() {
                self.space();
                continue;
            }
            return self.expect(b']');
        }
    }

    /// Copies one value, masked: strings and numbers scanned, containers recursed into.
    /// `place` is what an object here is (a span, inside `"spans"`).
    fn value(&mut self, place: Place, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(place, depth),
            b'[' => self.array(place, depth),
            b'"' => {
                let value = self.string_token()?;
                let masked = mask_skipping_ansi(self.scanner, &value);
                self.push_string(&masked)
            }
            _ => {
                // A number, `true`, `false` or `null`.
                let rest = self.src.get(self.at..)?;
                let len = rest
                    .bytes()
                    .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')))
                    .unwrap_or(rest.len());
                let token = rest.get(..len)?;
                serde_json::from_str::<serde_json::Value>(token).ok()?;
                if len == 0 {
                    return None;
                }
                self.at += len;
                if self.scanner.contains_identifier(token) {
                    let masked = self.scanner.mask(token);
                    self.push_string(&masked)
                } else {
                    self.out.push_str(token);
                    Some(())
                }
            }
        }
    }
}

/// Wraps a [`MakeWriter`]: each writer it makes buffers what the formatter writes and
/// passes every complete line through the scanner before writing it on.
#[derive(Debug, Clone)]
pub struct ScrubbingWriter<M> {
    inner: M,
    scanner: Scanner,
}

impl<M> ScrubbingWriter<M> {
    /// Scrubs with the default scanner.
    pub fn new(inner: M) -> ScrubbingWriter<M> {
        ScrubbingWriter {
            inner,
            scanner: super::default_scanner().clone(),
        }
    }

    /// Scrubs with `scanner` (custom MRN patterns, say).
    pub fn with_scanner(inner: M, scanner: Scanner) -> ScrubbingWriter<M> {
        ScrubbingWriter { inner, scanner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for ScrubbingWriter<M> {
    type Writer = ScrubbingLine<'a, M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbingLine::new(self.inner.make_writer(), &self.scanner)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        ScrubbingLine::new(self.inner.make_writer_for(meta), &self.scanner)
    }
}

/// The writer of one event: holds bytes until a line is complete, then writes it scrubbed.
/// What is left without a newline is written, scrubbed, on flush or drop.
#[derive(Debug)]
pub struct ScrubbingLine<'a, W: Write> {
    inner: W,
    scanner: &'a Scanner,
    pending: Vec<u8>,
}

impl<'a, W: Write> ScrubbingLine<'a, W> {
    fn new(inner: W, scanner: &'a Scanner) -> Self {
        ScrubbingLine {
            inner,
            scanner,
            pending: Vec::new(),
        }
    }

    /// Writes `self.pending[..end]` scrubbed and drops it from the buffer.
    fn emit(&mut self, end: usize) -> io::Result<()> {
        let chunk: Vec<u8> = self.pending.drain(..end).collect();
        // Log lines are text; bytes that are not UTF-8 are replaced rather than passed on
        // unscanned.
        let text = String::from_utf8_lossy(&chunk);
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            out.push_str(&scrub_line(self.scanner, line));
        }
        self.inner.write_all(out.as_bytes())
    }
}

impl<W: Write> Write for ScrubbingLine<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(last_newline) = self.pending.iter().rposition(|&b| b == b'\n') {
            self.emit(last_newline + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.emit(self.pending.len())?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for ScrubbingLine<'_, W> {
    fn drop(&mut self) {
        // A drop cannot report an error; the line is lost rather than written unscrubbed.
        let _ = self.flush();
    }
}
