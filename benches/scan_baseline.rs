//! The two sides of `scan_vs_regexset`, shared by `scan.rs` (criterion) and `scan_ir.rs`
//! (instruction counts) so both measure the same notes and the same baseline. Included by
//! each with `#[path]`; needs the including crate's `corpus` module.

use std::hint::black_box;

use guardrail_core::mask::scanner::Scanner;

/// 1 MiB of dense clinical notes (an identifier every ~140 bytes, dates included), seed
/// `0x5E7`.
pub fn dense_notes() -> Vec<String> {
    let mut r = crate::corpus::Rng::new(0x5E7);
    let mut notes = Vec::new();
    let mut bytes = 0;
    while bytes < 1 << 20 {
        let note = crate::corpus::note(&mut r).text;
        bytes += note.len();
        notes.push(note);
    }
    notes
}

/// The baseline: a plain `RegexSet` over four simple patterns (SSN, phone, email, MRN).
pub fn regexset_4() -> regex::RegexSet {
    regex::RegexSet::new([
        r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
        r"\b[0-9]{3}[-. ][0-9]{3}[-. ][0-9]{4}\b",
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z.]{2,}",
        r"(?i:mrn)[: #]{0,3}[0-9]{6,10}\b",
    ])
    .expect("the baseline patterns compile")
}

/// The scanner's side: every identifier of every note.
pub fn scan_notes(scanner: &Scanner, notes: &[String]) -> usize {
    notes.iter().map(|n| scanner.find(black_box(n)).len()).sum()
}

/// The baseline's side: which of the four patterns occur, note by note.
pub fn match_notes(set: &regex::RegexSet, notes: &[String]) -> usize {
    notes
        .iter()
        .map(|n| set.matches(black_box(n)).iter().count())
        .sum()
}
