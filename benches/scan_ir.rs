//! Instruction counts for `valgrind --tool=callgrind` (load-independent, unlike criterion):
//! one pass of either side of `scan::scan_vs_regexset` over the same notes (same seed).
//!
//! `cargo bench -p guardrail-benches --bench scan_ir --no-run`, then
//! `valgrind --tool=callgrind --toggle-collect='scan_ir::measure_*' <binary> scanner` (or
//! `regexset`); compare the `Ir` totals. The notes are built outside the collected function.
//!
//! An optional second argument repeats the counted pass that many times (default 1), for
//! `perf stat -e cycles:u` on a loaded machine (user-mode cycles do not count the time other
//! processes hold the CPU): the cycles of `<binary> scanner 200` minus those of
//! `<binary> scanner 0`, over 200, are the cycles of one pass.
//!
//! `<binary> work` prints what one pass of the scanner finds in the notes, by kind, and the
//! work it took ([`Scanner::find_with_work`]): regex searches, bytes searched, validations.
//!
//! `<binary> adversarial ip|phone|ssn <KiB> [passes]` scans one of `scan_adversarial`'s
//! inputs (`benches/scan.rs`) of that size instead: with `perf stat -e task-clock` and the
//! smallest of several runs, the CPU time per size on a loaded machine.

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

/// The counted passes (a separate symbol from the warm-up one, for `--toggle-collect`; a
/// loop, so the compiler cannot merge the two identical functions into one symbol and count
/// the warm-up pass too).
#[inline(never)]
fn measure_scanner(scanner: &Scanner, notes: &[String], passes: usize) -> usize {
    (0..passes).map(|_| run_scanner(scanner, notes)).sum()
}

/// The counted passes of the baseline.
#[inline(never)]
fn measure_regexset(set: &regex::RegexSet, notes: &[String], passes: usize) -> usize {
    (0..passes).map(|_| run_regexset(set, notes)).sum()
}

/// The counted passes over one adversarial input.
#[inline(never)]
fn measure_adversarial(scanner: &Scanner, text: &str, passes: usize) -> usize {
    (0..passes)
        .map(|_| scanner.find(black_box(text)).len())
        .sum()
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
    let arg = |n: usize| std::env::args().nth(n);
    let number =
        |n: usize, default: usize| arg(n).map_or(default, |a| a.parse().expect("a number"));
    // Warm both up once (lazy DFA caches fill on first use), then the counted pass.
    match which.as_str() {
        "scanner" => {
            let scanner = Scanner::default();
            black_box(run_scanner(&scanner, &notes));
            println!("{}", measure_scanner(&scanner, &notes, number(2, 1)));
        }
        "work" => {
            // What one pass over the notes finds, by kind, and the work it took.
            let scanner = Scanner::default();
            let mut kinds = std::collections::BTreeMap::new();
            let mut total = guardrail_core::mask::scanner::ScanWork::default();
            for note in &notes {
                let (found, work) = scanner.find_with_work(note);
                for f in found {
                    *kinds.entry(format!("{:?}", f.kind)).or_insert(0usize) += 1;
                }
                total.searches += work.searches;
                total.bytes_searched += work.bytes_searched;
                total.validations += work.validations;
            }
            let bytes: usize = notes.iter().map(String::len).sum();
            println!("{} notes, {bytes} bytes; findings {kinds:?}", notes.len());
            println!("{total:?}");
        }
        "regexset" => {
            let set = scan_baseline::regexset_4();
            black_box(run_regexset(&set, &notes));
            println!("{}", measure_regexset(&set, &notes, number(2, 1)));
        }
        "adversarial" => {
            let unit = match arg(2).as_deref() {
                Some("ip") => "999.999.999.999.",
                Some("phone") => "123-123-1234-",
                Some("ssn") => "000-12-3456-",
                _ => panic!("usage: scan_ir adversarial ip|phone|ssn <KiB> [passes]"),
            };
            let len = number(3, 64) << 10;
            let text = unit.repeat(len.div_ceil(unit.len()));
            let scanner = Scanner::default();
            black_box(scanner.find(&text).len());
            println!("{}", measure_adversarial(&scanner, &text, number(4, 1)));
        }
        _ => eprintln!(
            "usage: scan_ir scanner|regexset [passes] | work | adversarial ip|phone|ssn <KiB> [passes]"
        ),
    }
}
