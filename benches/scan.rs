//! Masking speed: the identifier scanner on a synthetic clinical corpus (a few MB, identifiers
//! sparse among vitals, labs, medications and codes) side by side with a baseline that runs
//! each pattern's regex in turn over the whole text, and the cost per record of masking a
//! `#[derive(Phi)]` value.
//!
//! Two corpora from `tests/corpus`: `scan_dense` (the recall corpus: short notes with an
//! identifier every ~140 bytes) and `scan_sparse` (long narrative notes, a few identifiers
//! each). `cargo bench -p guardrail-benches --bench scan`; the ratio is the throughput of
//! `<group>/scanner` over that of `<group>/baseline_each_pattern`.

#[path = "../tests/corpus/mod.rs"]
#[expect(
    dead_code,
    reason = "the tests use the planted-identifier half of the corpus module; the bench only its text"
)]
mod corpus;
#[path = "scan_baseline.rs"]
mod scan_baseline;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use guardrail_core::mask::scanner::Scanner;
use guardrail_core::mask::{MaskingConfig, Strategy};
use guardrail_core::{AuditKey, Category, CategorySet, Masker, Phi, Redact};

const CORPUS_BYTES: usize = 4 << 20;

/// Each pattern alone, as a per-pattern scanner would run them.
struct Baseline {
    patterns: Vec<regex::Regex>,
}

impl Baseline {
    fn new(scanner: &Scanner) -> Baseline {
        let patterns = scanner
            .patterns()
            .map(|(_, source)| {
                regex::RegexBuilder::new(source)
                    .unicode(false)
                    .build()
                    .expect("the scanner's patterns compile")
            })
            .collect();
        Baseline { patterns }
    }

    /// Every validated match of every pattern (overlaps between patterns not resolved).
    fn count(&self, scanner: &Scanner, text: &str) -> usize {
        let mut n = 0;
        for (i, re) in self.patterns.iter().enumerate() {
            for m in re.find_iter(text) {
                if scanner.validate(i, text, m.range()).is_some() {
                    n += 1;
                }
            }
        }
        n
    }
}

fn scan_group(c: &mut Criterion, name: &str, text: &str) {
    let scanner = Scanner::default();
    let baseline = Baseline::new(&scanner);
    // Same work, same answers (the baseline counts overlapping matches of different
    // patterns, so it may count a little more, never less).
    let found = scanner.find(text).len();
    assert!(found > 100 && baseline.count(&scanner, text) >= found);

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("scanner", |b| {
        b.iter(|| scanner.find(black_box(text)).len())
    });
    group.bench_function("scanner_without_prefilter", |b| {
        b.iter(|| scanner.find_unfiltered(black_box(text)).len())
    });
    group.bench_function("scanner_mask", |b| {
        b.iter(|| scanner.mask(black_box(text)).len())
    });
    group.bench_function("baseline_each_pattern", |b| {
        b.iter(|| baseline.count(&scanner, black_box(text)))
    });
    group.finish();
}

/// The recall corpus enlarged: short notes dense with identifiers (one per ~140 bytes).
fn scan_dense(c: &mut Criterion) {
    scan_group(c, "scan_dense", &corpus::corpus_text(0xBE7C, CORPUS_BYTES));
}

/// The scanner against a plain `regex::RegexSet::matches` over four simple patterns (SSN,
/// phone, email, MRN), note by note over dense clinical notes (an identifier every ~140
/// bytes, dates included). `RegexSet::matches` only says which patterns occur, and stops
/// once all four have; the scanner finds, validates and locates every identifier of ten
/// kinds. The ratio is `scanner` throughput over `regexset_4` throughput.
fn scan_vs_regexset(c: &mut Criterion) {
    let scanner = Scanner::default();
    let set = scan_baseline::regexset_4();
    let notes = scan_baseline::dense_notes();
    let bytes: usize = notes.iter().map(String::len).sum();
    let mut group = c.benchmark_group("scan_vs_regexset");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("scanner", |b| {
        b.iter(|| scan_baseline::scan_notes(&scanner, &notes))
    });
    group.bench_function("regexset_4", |b| {
        b.iter(|| scan_baseline::match_notes(&set, &notes))
    });
    group.finish();
}

/// Short strings, as the fields of a tool's result are when a guarded MCP call scrubs them
/// (`guardrail-mcp`'s `scrub_json`): a masked SSN, a year, a keyed token, a name, a date, a
/// phone number in a sentence. Per-call costs dominate here, not the bytes.
fn scan_short(c: &mut Criterion) {
    let scanner = Scanner::default();
    let fields = [
        "***-**-6789",
        "1961",
        "hmac-sha256:9f2c4e0b7a1d3f5e6c8b0a2d4f6e8c0b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c",
        "Ada Hale",
        "hypertension, stage 1",
        "2024-03-14",
        "call 617-555-0142 after 5",
        "MRN-0001001",
    ];
    let bytes: usize = fields.iter().map(|f| f.len()).sum();
    let mut group = c.benchmark_group("scan_short");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("scanner", |b| {
        b.iter(|| {
            fields
                .iter()
                .map(|f| scanner.find(black_box(f)).len())
                .sum::<usize>()
        })
    });
    group.finish();
}

/// Text without whitespace made of one rejected candidate repeated (the inputs that made
/// the scanner quadratic, issue 12), 64 KiB to 16 MiB: linear time means each doubling of
/// the input at most about doubles the time (docs/benchmarks.md shows how to compute the
/// ratios).
///
/// Before timing, each size's work counters ([`Scanner::find_with_work`]) are checked to
/// double exactly with the text (±1%): the work is linear at every size, so a doubling
/// that costs more than about 2× in time is the machine (caches, other load), not the
/// scanner. The smaller sizes get more samples: they are over in milliseconds, where one
/// burst of load on a shared machine moves a 10-sample median.
fn scan_adversarial(c: &mut Criterion) {
    let scanner = Scanner::default();
    let mut group = c.benchmark_group("scan_adversarial");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for (name, unit) in [
        ("ip", "999.999.999.999."),
        ("phone", "123-123-1234-"),
        ("ssn", "000-12-3456-"),
    ] {
        let mut len: usize = 64 << 10;
        let mut previous: Option<(usize, u64)> = None;
        while len <= 16 << 20 {
            let text = unit.repeat(len.div_ceil(unit.len()));
            let (_, work) = scanner.find_with_work(&text);
            if let Some((prev_len, prev_bytes)) = previous {
                let growth = work.bytes_searched as f64 / prev_bytes as f64;
                let size = text.len() as f64 / prev_len as f64;
                assert!(
                    (growth / size - 1.0).abs() < 0.01,
                    "{name}: {size:.2}x the text cost {growth:.3}x the work"
                );
            }
            previous = Some((text.len(), work.bytes_searched));
            group.sample_size(if len <= 1 << 20 { 30 } else { 10 });
            group.throughput(Throughput::Bytes(text.len() as u64));
            group.bench_function(format!("{name}/{}KiB", len >> 10), |b| {
                b.iter(|| scanner.find(black_box(&text)).len())
            });
            len *= 2;
        }
    }
    group.finish();
}

/// Long narrative notes: a few identifiers in the header, then prose full of numbers.
fn scan_sparse(c: &mut Criterion) {
    scan_group(
        c,
        "scan_sparse",
        &corpus::narrative_text(0xBE7C, CORPUS_BYTES),
    );
}

#[derive(guardrail_core::Phi, Clone, Debug)]
pub struct Visit {
    pub visit_id: u64,
    pub cpt: String,
    pub icd10: Vec<String>,
    pub amount_cents: u64,
    #[phi(name)]
    pub patient: String,
    #[phi(ssn)]
    pub ssn: String,
    #[phi(mrn)]
    pub mrn: Phi<String>,
    #[phi(phone)]
    pub phone: Option<String>,
    #[phi(birth_date)]
    pub dob: String,
    #[phi(zip)]
    pub zip: String,
    #[phi(note)]
    pub note: String,
}

fn visit() -> Visit {
    Visit {
        visit_id: 41,
        cpt: "99214".into(),
        icd10: vec!["E11.9".into(), "I10".into()],
        amount_cents: 18_450,
        patient: "Ada Lovelace".into(),
        ssn: "123-45-6789".into(),
        mrn: Phi::new("00123456".into()),
        phone: Some("(617) 555-0142".into()),
        dob: "1952-02-29".into(),
        zip: "02139-4307".into(),
        note: "Seen 03/14/2026 for polyuria; HbA1c 8.1%, metformin 1000 mg BID. \
               Daughter reachable at 617-555-0199."
            .into(),
    }
}

fn derive_mask(c: &mut Criterion) {
    let key = AuditKey::from_bytes(&[7; 32]).expect("key");
    let defaults = MaskingConfig::default();
    let mut scan_notes = MaskingConfig::default();
    scan_notes.set(Category::Note, Strategy::Scan);
    let record = visit();

    let mut group = c.benchmark_group("derive_mask");
    group.bench_function("clone_only", |b| b.iter(|| black_box(&record).clone()));
    group.bench_function("clone_and_reveal_all", |b| {
        let m = Masker::new(CategorySet::ALL, &defaults, &key);
        b.iter(|| {
            let mut v = black_box(&record).clone();
            v.redact(&m);
            v
        })
    });
    group.bench_function("clone_and_mask_defaults", |b| {
        let m = Masker::new(CategorySet::EMPTY, &defaults, &key);
        b.iter(|| {
            let mut v = black_box(&record).clone();
            v.redact(&m);
            v
        })
    });
    group.bench_function("clone_and_mask_with_note_scan", |b| {
        let m = Masker::new(CategorySet::EMPTY, &scan_notes, &key);
        b.iter(|| {
            let mut v = black_box(&record).clone();
            v.redact(&m);
            v
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10)
}

criterion_group! {
    name = benches;
    config = config();
    targets = scan_dense, scan_sparse, scan_short, scan_vs_regexset, scan_adversarial, derive_mask
}
criterion_main!(benches);
