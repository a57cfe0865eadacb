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
//!   the JSON formatter's fields, targets, span names.
//!
//! Use both: `fmt().fmt_fields(ScrubbingFields::default()).with_writer(ScrubbingWriter::new(..))`.
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
        self.inner
            .write_all(mask_skipping_ansi(self.scanner, &text).as_bytes())
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
