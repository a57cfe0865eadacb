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
#[path = "scan_baseline.rs"]
mod scan_baseline;

use std::hint::black_box;

use guardrail_core::mask::scanner::Scanner;

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
    scan_baseline::scan_notes(scanner, notes)
}

#[inline(never)]
fn run_regexset(set: &regex::RegexSet, notes: &[String]) -> usize {
    scan_baseline::match_notes(set, notes)
}

fn main() {
    let notes = scan_baseline::dense_notes();
    let which = std::env::args().nth(1).unwrap_or_default();
    // Warm both up once (lazy DFA caches fill on first use), then the counted pass.
    match which.as_str() {
        "scanner" => {
            let scanner = Scanner::default();
            black_box(run_scanner(&scanner, &notes));
            println!("{}", measure_scanner(&scanner, &notes));
        }
        "regexset" => {
            let set = scan_baseline::regexset_4();
            black_box(run_regexset(&set, &notes));
            println!("{}", measure_regexset(&set, &notes));
        }
        _ => eprintln!("usage: scan_ir scanner|regexset"),
    }
}
