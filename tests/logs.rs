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
