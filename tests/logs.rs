//! Scrubbed logs: identifiers in formatted log lines never reach the writer.

use std::io::Write;
use std::sync::{Arc, Mutex};

use guardrail_core::mask::logs::ScrubbingWriter;
use guardrail_core::mask::scanner::Scanner;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8")
    }
}

#[test]
fn careless_info_does_not_log_identifiers() {
    let buf = Buffer::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(ScrubbingWriter::new(move || sink.clone()))
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let note = "pt Ada, SSN 123-45-6789, cb (617) 555-0142, ada@example.org";
        tracing::info!("{note}");
        tracing::warn!(
            patient_email = "grace@example.org",
            mrn = "MRN: 00123456",
            "lookup"
        );
        tracing::info!("metformin 500 mg BID, BP 128/84");
    });
    let logged = buf.text();
    for raw in [
        "123-45-6789",
        "555-0142",
        "ada@example.org",
        "grace@example.org",
        "00123456",
    ] {
        assert!(!logged.contains(raw), "{raw} reached the log:\n{logged}");
    }
    assert!(
        logged.contains("pt Ada, SSN [SSN], cb [PHONE], [EMAIL]"),
        "{logged}"
    );
    assert!(logged.contains("patient_email=\"[EMAIL]\""), "{logged}");
    assert!(
        logged.contains("metformin 500 mg BID, BP 128/84"),
        "{logged}"
    );
    assert_eq!(logged.lines().count(), 3, "{logged}");
}

#[test]
fn unscrubbed_writer_would_have_leaked() {
    // The same event through a plain writer: proves the test above tests the wrapper.
    let buf = Buffer::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || tracing::info!("SSN 123-45-6789"));
    assert!(buf.text().contains("123-45-6789"));
}

#[test]
fn a_line_split_across_writes_is_scrubbed_whole() {
    let buf = Buffer::default();
    let sink = buf.clone();
    let writer = ScrubbingWriter::with_scanner(move || sink.clone(), Scanner::default());
    {
        use tracing_subscriber::fmt::MakeWriter;
        let mut w = writer.make_writer();
        w.write_all(b"ssn 123-4").expect("write");
        w.write_all(b"5-6789 and\nphone 617-555-").expect("write");
        w.write_all(b"0142").expect("write");
        // Dropped here: the unterminated tail is written, scrubbed.
    }
    assert_eq!(buf.text(), "ssn [SSN] and\nphone [PHONE]");
}

/// A patient-ish value whose `Display` is a date, logged with `%`.
struct Dob(&'static str);
impl std::fmt::Display for Dob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::fmt::Debug for Dob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dob({})", self.0)
    }
}

const CANARIES: &[&str] = &[
    "123-45-6789",
    "123456789",
    "617-555-0142",
    "555-0142",
    "03/14/1952",
    "1952",
    "00123456",
    "ada@example.org",
    "Lovelace",
];

fn log_events() {
    let phone = "617-555-0142";
    let dob = Dob("03/14/1952");
    tracing::info!(ssn = "123-45-6789", visit_id = 41, "visit recorded");
    tracing::info!(ssn = %"123456789", "undashed");
    tracing::info!(phone = %phone, dob = ?dob, "contact");
    tracing::warn!(patient_name = "Ada Lovelace", mrn = 123456, "lookup");
    tracing::info!(note = %"cb 617-555-0142", code = "E11.9", "MRN 00123456 seen, mail ada@example.org");
    tracing::info!(detail = %"ssn=123456789 and dob 03/14/1952", "free text");
}

fn assert_clean(logged: &str) {
    for raw in CANARIES {
        assert!(!logged.contains(raw), "{raw} reached the log:\n{logged}");
    }
    for kept in [
        "visit recorded",
        "visit_id",
        "41",
        "contact",
        "lookup",
        "E11.9",
        "free text",
        "undashed",
    ] {
        assert!(logged.contains(kept), "{kept} missing:\n{logged}");
    }
}

#[test]
fn default_formatter_with_ansi_and_guardrail_field_formatter_logs_no_phi() {
    use guardrail_core::mask::logs::ScrubbingFields;
    let buf = Buffer::default();
    let sink = buf.clone();
    // The subscriber's defaults (ANSI on), with guardrail's field formatter and writer.
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(true)
        .fmt_fields(ScrubbingFields::default())
        .with_writer(ScrubbingWriter::new(move || sink.clone()))
        .finish();
    tracing::subscriber::with_default(subscriber, log_events);
    let logged = buf.text();
    assert!(logged.contains('\u{1b}'), "ANSI was on:\n{logged}");
    assert_clean(&logged);
    assert!(logged.contains("[REDACTED]"), "{logged}");
}

#[test]
fn field_formatter_alone_masks_by_name_and_scans_values() {
    use guardrail_core::mask::logs::ScrubbingFields;
    let buf = Buffer::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .fmt_fields(ScrubbingFields::default())
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, log_events);
    assert_clean(&buf.text());
}

#[test]
fn writer_alone_skips_ansi_escapes_around_identifiers() {
    let buf = Buffer::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(true)
        .with_writer(ScrubbingWriter::new(move || sink.clone()))
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(ssn = %"123-45-6789", phone = %"617-555-0142", dob = %"03/14/1952", "x");
    });
    let logged = buf.text();
    assert!(logged.contains('\u{1b}'), "{logged}");
    for raw in ["123-45-6789", "555-0142", "03/14/1952"] {
        assert!(!logged.contains(raw), "{raw} reached the log:\n{logged}");
    }
}

#[test]
fn phi_field_names() {
    use guardrail_core::mask::logs::is_phi_field_name;
    for name in [
        "ssn",
        "SSN",
        "patient_name",
        "dob",
        "home.phone",
        "r#email",
        "diagnosis",
        "mrn",
    ] {
        assert!(is_phi_field_name(name), "{name}");
    }
    for name in ["visit_id", "code", "message", "filename", "duration_ms"] {
        assert!(!is_phi_field_name(name), "{name}");
    }
}

/// The events of [`log_events`] inside a span whose fields hold PHI too.
fn log_events_in_span() {
    let span = tracing::info_span!("visit", ssn = "123-45-6789", room = "12B");
    let _entered = span.enter();
    log_events();
}

#[test]
fn json_formatter_with_defaults_logs_no_phi() {
    let buf = Buffer::default();
    let sink = buf.clone();
    // `fmt().json()` with the subscriber's defaults (ANSI left as it is): the JSON formatter
    // formats event fields itself, so only the writer can apply the field rules.
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(ScrubbingWriter::new(move || sink.clone()))
        .finish();
    tracing::subscriber::with_default(subscriber, log_events_in_span);
    let logged = buf.text();
    assert_clean(&logged);
    assert_eq!(logged.lines().count(), 6, "{logged}");
    let mut redacted = 0;
    for line in logged.lines() {
        // Still one JSON object per line, the formatter's own keys intact.
        let event: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(event["span"]["name"], "visit", "{line}");
        assert_eq!(event["span"]["ssn"], "[REDACTED]", "{line}");
        assert_eq!(event["span"]["room"], "12B", "{line}");
        assert!(
            event["timestamp"].as_str().is_some_and(|t| t.len() > 10),
            "{line}"
        );
        let fields = &event["fields"];
        for name in ["ssn", "phone", "dob", "patient_name", "mrn", "note"] {
            if !fields[name].is_null() {
                assert_eq!(fields[name], "[REDACTED]", "{name} in {line}");
                redacted += 1;
            }
        }
    }
    // ssn twice, phone, dob, patient_name, mrn (a number), note.
    assert_eq!(redacted, 7, "{logged}");
    let events: Vec<serde_json::Value> = logged
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(events[0]["fields"]["visit_id"], 41);
    assert_eq!(events[0]["fields"]["message"], "visit recorded");
    assert_eq!(events[4]["fields"]["code"], "E11.9");
    assert_eq!(
        events[4]["fields"]["message"],
        "MRN [MRN] seen, mail [EMAIL]"
    );
    assert_eq!(events[5]["fields"]["detail"], "ssn=[SSN] and dob [DATE]");
}

#[test]
fn json_formatter_without_the_writer_would_have_leaked() {
    // The same events through a plain writer: proves the test above tests guardrail.
    let buf = Buffer::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, log_events_in_span);
    let logged = buf.text();
    for raw in [
        "\"ssn\":\"123-45-6789\"",
        "\"ssn\":\"123456789\"",
        "Lovelace",
        "03/14/1952",
    ] {
        assert!(
            logged.contains(raw),
            "{raw} not in the unscrubbed log:\n{logged}"
        );
    }
}

#[test]
fn default_formatter_with_defaults_and_guardrail_writer_logs_no_phi() {
    use guardrail_core::mask::logs::ScrubbingFields;
    let buf = Buffer::default();
    let sink = buf.clone();
    // Nothing changed from `fmt()` but guardrail's field formatter and writer.
    let subscriber = tracing_subscriber::fmt()
        .fmt_fields(ScrubbingFields::default())
        .with_writer(ScrubbingWriter::new(move || sink.clone()))
        .finish();
    tracing::subscriber::with_default(subscriber, log_events_in_span);
    let logged = buf.text();
    assert!(
        logged.contains('\u{1b}'),
        "ANSI is on by default:\n{logged}"
    );
    assert_clean(&logged);
    // The span's fields too.
    assert_eq!(logged.matches("[REDACTED]").count(), 6 + 7, "{logged}");
}

#[test]
fn json_lines_that_do_not_parse_are_scanned_as_text() {
    use guardrail_core::mask::logs::scrub_json_line;
    let scanner = Scanner::default();
    for broken in [
        r#"{"ssn":"123-45-6789""#,
        r#"{"fields":{"x":"123-45-6789"}} trailing"#,
        r#"{"a":[1,2,}"#,
    ] {
        assert_eq!(scrub_json_line(&scanner, broken), None, "{broken}");
    }
    let buf = Buffer::default();
    let sink = buf.clone();
    let writer = ScrubbingWriter::new(move || sink.clone());
    {
        use tracing_subscriber::fmt::MakeWriter;
        let mut w = writer.make_writer();
        w.write_all(b"{\"x\":\"SSN 123-45-6789\"\n{\"card\":4111111111111111}\n{\"acct\":4111111111111111,\"n\":7}\n")
            .expect("write");
    }
    assert_eq!(
        buf.text(),
        "{\"x\":\"SSN [SSN]\"\n{\"card\":\"[REDACTED]\"}\n{\"acct\":\"[ACCOUNT]\",\"n\":7}\n"
    );
    // Deep nesting is not recursed into without bound: scanned as text instead.
    let deep = format!("{}\"123-45-6789\"{}", "[".repeat(100), "]".repeat(100));
    let line = format!("{{\"x\":{deep}}}");
    assert_eq!(scrub_json_line(&scanner, &line), None);
}
