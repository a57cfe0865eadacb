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
//! `<binary> floor [passes]` runs a floor under the scanner's design over the same notes
//! instead ([`floor_pass`]: its trigger loop finding the digit clusters, and nothing else),
//! counted the same way.
//!
//! `<binary> work` prints what one pass of the scanner finds in the notes, by kind, and the
//! work it took ([`Scanner::find_with_work`]): regex searches, bytes searched, validations.
//!
//! `<binary> shape TEXT` scans 25 notes of `Seen TEXT today and then. ` 40 times over
//! instead: under callgrind, its count less that of a shape that holds no trigger
//! (`xxxxxxxx`), over 1,000, is what one identifier of that shape costs the scanner.
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
        "floor" => {
            // The floor under the scanner's design: its digit clusters alone (`floor_pass`).
            black_box(floor_pass(&notes));
            println!("{}", measure_floor(&notes, number(2, 1)));
        }
        "shape" => {
            // What one identifier of a shape costs (see the module's docs).
            let shape = arg(2).expect("usage: scan_ir shape TEXT");
            let unit = format!("Seen {shape} today and then. ");
            let notes: Vec<String> = (0..25).map(|_| unit.repeat(40)).collect();
            let scanner = Scanner::default();
            black_box(run_scanner(&scanner, &notes));
            println!("{}", measure_scanner(&scanner, &notes, 1));
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
            "usage: scan_ir scanner|regexset|floor [passes] | work | shape TEXT | adversarial ip|phone|ssn <KiB> [passes]"
        ),
    }
}

/// The counted passes of the floor.
#[inline(never)]
fn measure_floor(notes: &[String], passes: usize) -> usize {
    (0..passes).map(|_| floor_pass(notes)).sum()
}

/// The high bit of each byte of `w` that is a digit, `:` or `@` (the scanner's eight-byte
/// test, `trigger::trigger_mask`).
fn trigger_bytes(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let x = w & !HI;
    let at_least_zero = x.wrapping_add(LO * (0x80 - 0x30));
    let above_colon = x.wrapping_add(LO * (0x80 - 0x3B));
    let at_least_at = x.wrapping_add(LO * (0x80 - 0x40));
    let above_at = x.wrapping_add(LO * (0x80 - 0x41));
    ((at_least_zero & !above_colon) | (at_least_at & !above_at)) & HI
}

fn is_separator(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'-' | b'.' | b'/' | b'(' | b')' | b',' | b'+' | b'\t'
    )
}

/// A floor under the scanner's design: find every digit cluster (runs of digits joined by
/// at most three separators) that holds four digits or more, with the scanner's eight-byte
/// test and cluster walk, and count them. The scanner's trigger loop does at least this
/// (every numeric identifier's digits lie in one such cluster); this does nothing else (no
/// cue, no window, no automaton, no check).
#[inline(never)]
fn floor_pass(notes: &[String]) -> usize {
    let mut clusters = 0;
    for note in notes {
        let bytes = black_box(note.as_bytes());
        let n = bytes.len();
        let mut i = 0;
        while i < n {
            while let Some(chunk) = bytes.get(i..i + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                let mask = trigger_bytes(u64::from_le_bytes(word));
                if mask != 0 {
                    i += (mask.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            let Some(byte) = bytes.get(i) else {
                break;
            };
            if !byte.is_ascii_digit() {
                i += 1;
                continue;
            }
            let mut j = i;
            let mut digits = 0;
            loop {
                let run = j;
                while bytes.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
                digits += j - run;
                let end = j;
                while j - end <= 3 && bytes.get(j).is_some_and(|&b| is_separator(b)) {
                    j += 1;
                }
                if j == end || j - end > 3 || !bytes.get(j).is_some_and(u8::is_ascii_digit) {
                    j = end;
                    break;
                }
            }
            if digits >= 4 {
                clusters += 1;
            }
            i = j;
        }
    }
    clusters
}
