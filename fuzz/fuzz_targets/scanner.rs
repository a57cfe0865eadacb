//! The scanner on arbitrary text: never panics, findings ordered, disjoint and on character
//! boundaries, the prefilter finds exactly what a search of the whole text finds, masked text
//! re-scans clean, and the work stays linear in the input (the same invariants as the
//! proptest properties in `tests/scanner.rs` and the scanner's unit tests).
#![no_main]

use guardrail_core::mask::scanner::Scanner;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static SCANNER: LazyLock<Scanner> = LazyLock::new(Scanner::default);

/// `tests/scanner.rs`'s `BYTES_PER_BYTE`.
const BYTES_PER_BYTE: u64 = 160;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (found, work) = SCANNER.find_with_work(text);
    let mut end = 0;
    for f in &found {
        assert!(
            f.range.start >= end && f.range.start < f.range.end,
            "{found:?}"
        );
        assert!(text.is_char_boundary(f.range.start) && text.is_char_boundary(f.range.end));
        end = f.range.end;
    }
    // The fast path (trigger loop, windows, skipped spans) loses nothing. Up to 1 KiB: the
    // reference search is the slow part of an execution.
    if text.len() <= 1024 {
        assert_eq!(found, SCANNER.find_unfiltered(text), "{text:?}");
    }
    let n = text.len() as u64;
    assert!(
        work.bytes_searched <= BYTES_PER_BYTE * n,
        "{work:?} for {n} bytes"
    );
    // Two automata: each may end a window with one search that finds nothing.
    assert!(
        work.searches <= n + 2 && work.validations <= n,
        "{work:?} for {n} bytes"
    );
    let masked = SCANNER.mask(text);
    assert!(
        SCANNER.find(&masked).is_empty(),
        "{text:?} masked to {masked:?}"
    );
});
