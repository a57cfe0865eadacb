//! Instruction counts for `valgrind --tool=callgrind` (load-independent, unlike criterion):
//! one pass of either side of `scan::scan_vs_regexset` over the same notes (same seed).
//!
//! `cargo bench -p guardrail-benches --bench scan_ir --no-run`, then
//! `valgrind --tool=callgrind --toggle-collect='scan_ir::measure_*' <binary> scanner` (or
//! `regexset`); compare the `Ir` totals. The notes are built outside the collected function.

#[path = "../tests/corpus/mod.rs"]
#[expect(
    dead_code,
    reason = "the tests use the planted-identifier half of the corpus module; the bench only its text"
)]
mod corpus;

use std::hint::black_box;

use guardrail_core::mask::scanner::Scanner;

/// The notes of `scan_vs_regexset`: 1 MiB of dense clinical notes, seed `0x5E7`.
fn notes() -> Vec<String> {
    let mut r = corpus::Rng::new(0x5E7);
    let mut notes = Vec::new();
    let mut bytes = 0;
    while bytes < 1 << 20 {
        let note = corpus::note(&mut r).text;
        bytes += note.len();
        notes.push(note);
    }
    notes
}

/// The counted pass (a separate symbol from the warm-up one, for `--toggle-collect`).
#[inline(never)]
fn measure_scanner(scanner: &Scanner, notes: &[String]) -> usize {
    run_scanner(scanner, notes)
}

/// The counted pass of the baseline.
#[inline(never)]
fn measure_regexset(set: &regex::RegexSet, notes: &[String]) -> usize {
    run_regexset(set, notes)
}

#[inline(never)]
fn run_scanner(scanner: &Scanner, notes: &[String]) -> usize {
    notes.iter().map(|n| scanner.find(black_box(n)).len()).sum()
}

#[inline(never)]
fn run_regexset(set: &regex::RegexSet, notes: &[String]) -> usize {
    notes
        .iter()
        .map(|n| set.matches(black_box(n)).iter().count())
        .sum()
}

fn main() {
    let notes = notes();
    let which = std::env::args().nth(1).unwrap_or_default();
    // Warm both up once (lazy DFA caches fill on first use), then the counted pass.
    match which.as_str() {
        "scanner" => {
            let scanner = Scanner::default();
            black_box(run_scanner(&scanner, &notes));
            println!("{}", measure_scanner(&scanner, &notes));
        }
        "regexset" => {
            let set = regex::RegexSet::new([
                r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
                r"\b[0-9]{3}[-. ][0-9]{3}[-. ][0-9]{4}\b",
                r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z.]{2,}",
                r"(?i:mrn)[: #]{0,3}[0-9]{6,10}\b",
            ])
            .expect("the baseline patterns compile");
            black_box(run_regexset(&set, &notes));
            println!("{}", measure_regexset(&set, &notes));
        }
        _ => eprintln!("usage: scan_ir scanner|regexset"),
    }
}
