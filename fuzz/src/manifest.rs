//! `Manifest::parse` on arbitrary bytes.
//!
//! Properties:
//! * never a panic;
//! * an error names a line that exists (1 ..= number of lines, counting a last line without
//!   newline);
//! * a parsed manifest lists at least one file, every name plain (no separator, not hidden or
//!   `..`), `first_seq` never decreasing;
//! * `to_text` of a parsed manifest parses back equal, and is a fixed point of parse/to_text.

use guardrail_audit::Manifest;

/// Runs the properties on one input; panics when one fails.
pub fn check_input(data: &[u8]) {
    match Manifest::parse(data) {
        Err(e) => {
            let lines = data.split(|&b| b == b'\n').count();
            assert!(
                e.line >= 1 && e.line <= lines.max(1),
                "error names line {} of {lines}: {e}",
                e.line
            );
            assert!(!e.message.is_empty());
        }
        Ok(m) => {
            assert!(!m.files.is_empty());
            for f in &m.files {
                assert!(
                    !f.file.is_empty() && !f.file.contains(['/', '\\']) && !f.file.starts_with('.'),
                    "not a plain name: {:?}",
                    f.file
                );
            }
            assert!(m.files.windows(2).all(|w| w[0].first_seq <= w[1].first_seq));
            let text = m.to_text();
            let again = Manifest::parse(text.as_bytes()).expect("to_text parses");
            assert_eq!(again, m, "to_text does not round-trip");
            assert_eq!(again.to_text(), text);
        }
    }
}
