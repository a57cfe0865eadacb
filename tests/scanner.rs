//! The free-text scanner on a synthetic clinical corpus: recall on planted identifiers,
//! false positives, the prefilter's agreement with a full search, and masking.

#[path = "corpus/mod.rs"]
mod corpus;

use std::collections::BTreeMap;

use corpus::Planted;
use guardrail_core::mask::scanner::{IdentifierKind, MAX_BOUNDED_LEN, ScanMatch, Scanner};
use proptest::prelude::*;

const SEED: u64 = 0x5EED_CAFE;
const NOTES: usize = 300;

fn expected_kind(p: Planted) -> IdentifierKind {
    match p {
        Planted::Ssn => IdentifierKind::Ssn,
        Planted::Phone => IdentifierKind::Phone,
        Planted::Fax => IdentifierKind::Fax,
        Planted::Email => IdentifierKind::Email,
        Planted::Mrn => IdentifierKind::Mrn,
        Planted::Date => IdentifierKind::Date,
        Planted::Zip => IdentifierKind::Zip,
        Planted::Ip => IdentifierKind::Ip,
        Planted::Url => IdentifierKind::Url,
        Planted::Account => IdentifierKind::Account,
    }
}

fn covers(f: &ScanMatch, kind: Planted, range: &std::ops::Range<usize>) -> bool {
    f.kind == expected_kind(kind) && f.range.start <= range.start && f.range.end >= range.end
}

fn overlaps(a: &std::ops::Range<usize>, b: &std::ops::Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

#[test]
fn recall_and_false_positives_on_the_corpus() {
    let scanner = Scanner::default();
    let notes = corpus::notes(SEED, NOTES);
    let mut planted: BTreeMap<Planted, (usize, usize)> = BTreeMap::new();
    let mut false_positives: BTreeMap<IdentifierKind, Vec<String>> = BTreeMap::new();
    let mut findings_total = 0;
    let mut missed = Vec::new();
    for note in &notes {
        let found = scanner.find(&note.text);
        findings_total += found.len();
        for (kind, range) in &note.planted {
            let entry = planted.entry(*kind).or_default();
            entry.0 += 1;
            if found.iter().any(|f| covers(f, *kind, range)) {
                entry.1 += 1;
            } else {
                missed.push(format!("{kind:?} {:?}", &note.text[range.clone()]));
            }
        }
        for f in &found {
            if !note.planted.iter().any(|(_, r)| overlaps(r, &f.range)) {
                false_positives
                    .entry(f.kind)
                    .or_default()
                    .push(note.text[f.range.clone()].to_owned());
            }
        }
    }
    let fp_count: usize = false_positives.values().map(Vec::len).sum();
    // The numbers docs/masking.md reports: `cargo test -p guardrail-tests --test scanner -- --nocapture`.
    eprintln!("corpus: {NOTES} notes, {findings_total} findings, {fp_count} false positives");
    for (kind, (n, hit)) in &planted {
        eprintln!(
            "  {kind:?}: planted {n}, found {hit}, recall {:.2}%",
            100.0 * *hit as f64 / *n as f64
        );
    }
    for (kind, values) in &false_positives {
        eprintln!(
            "  false positives {kind:?}: {} e.g. {:?}",
            values.len(),
            &values[..values.len().min(5)]
        );
    }
    eprintln!("  missed (first 10): {:?}", &missed[..missed.len().min(10)]);

    for kind in [
        Planted::Ssn,
        Planted::Phone,
        Planted::Email,
        Planted::Mrn,
        Planted::Date,
    ] {
        let (n, hit) = planted[&kind];
        assert!(
            n >= 50,
            "too few {kind:?} planted ({n}) for a recall figure"
        );
        let recall = hit as f64 / n as f64;
        assert!(recall >= 0.99, "{kind:?} recall {recall:.4} < 0.99");
    }
    // The rarer kinds, each counted exactly (the corpus is deterministic): a pattern removed
    // or broken turns its line red.
    for (kind, expected) in [
        (Planted::Fax, 110),
        (Planted::Zip, 101),
        (Planted::Ip, 48),
        (Planted::Url, 48),
        (Planted::Account, 33),
    ] {
        assert_eq!(
            planted.get(&kind),
            Some(&(expected, expected)),
            "{kind:?}: (planted, found) on the corpus"
        );
    }
    // Decoys (dosages, vitals, labs, codes, times, invalid-SSN lot numbers) must stay
    // readable: at most one false positive per hundred findings.
    assert!(
        fp_count * 100 <= findings_total,
        "{fp_count} false positives among {findings_total} findings: {false_positives:?}"
    );
}

#[test]
fn masked_notes_hold_no_planted_identifier() {
    let scanner = Scanner::default();
    for note in corpus::notes(SEED ^ 1, 200) {
        let masked = scanner.mask(&note.text);
        for (kind, range) in &note.planted {
            if matches!(
                kind,
                Planted::Ssn | Planted::Phone | Planted::Email | Planted::Mrn
            ) {
                let value = &note.text[range.clone()];
                assert!(
                    !masked.contains(value),
                    "{kind:?} {value:?} survived masking"
                );
            }
        }
        // What identifies no one is still there to read.
        assert!(masked.contains("PROGRESS NOTE") && masked.contains("Labs: Na "));
    }
}

#[test]
fn prefilter_agrees_with_a_full_search_on_the_corpus() {
    let scanner = Scanner::default();
    for note in corpus::notes(SEED ^ 2, 200) {
        assert_eq!(
            scanner.find(&note.text),
            scanner.find_unfiltered(&note.text)
        );
    }
    let big = corpus::corpus_text(SEED ^ 3, 256 * 1024);
    assert_eq!(scanner.find(&big), scanner.find_unfiltered(&big));
}

/// Text made of the pieces identifiers and cues are made of, so random strings hit the
/// patterns' edges (separators, cues at a distance, boundaries) far more than random bytes.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,10}",
        "[ \\-./(),:+@#\t\n]{1,3}",
        Just("SSN".to_owned()),
        Just("MRN".to_owned()),
        Just("Fax:".to_owned()),
        Just("ZIP ".to_owned()),
        Just("MA ".to_owned()),
        Just("March".to_owned()),
        Just("www".to_owned()),
        Just("https://".to_owned()),
        Just("fe80::".to_owned()),
        Just("é".to_owned()),
        "[a-zA-Z]{1,8}",
        "[a-f0-9]{1,4}:",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prefilter_agrees_with_a_full_search_on_random_text(
        parts in proptest::collection::vec(fragment(), 0..60)
    ) {
        let text: String = parts.concat();
        let scanner = Scanner::default();
        prop_assert_eq!(scanner.find(&text), scanner.find_unfiltered(&text));
    }

    #[test]
    fn findings_are_ordered_disjoint_and_on_char_boundaries(
        parts in proptest::collection::vec(fragment(), 0..60)
    ) {
        let text: String = parts.concat();
        let found = Scanner::default().find(&text);
        let mut end = 0;
        for f in &found {
            prop_assert!(f.range.start >= end && f.range.start < f.range.end);
            prop_assert!(text.is_char_boundary(f.range.start) && text.is_char_boundary(f.range.end));
            end = f.range.end;
        }
    }

    /// The fuzz target's invariants (`fuzz/fuzz_targets/scanner.rs`): masked text holds
    /// nothing the scanner finds, and the work is linear in the input.
    #[test]
    fn masked_text_rescans_clean_and_work_is_linear(
        parts in proptest::collection::vec(fragment(), 0..80)
    ) {
        let text: String = parts.concat();
        let scanner = Scanner::default();
        let masked = scanner.mask(&text);
        prop_assert_eq!(scanner.find(&masked), vec![], "{:?} masked to {:?}", text, masked);
        let (_, work) = scanner.find_with_work(&text);
        let n = text.len() as u64;
        prop_assert!(work.bytes_searched <= BYTES_PER_BYTE * n, "{:?}: {:?}", text, work);
        // Two automata: each may end a window with one search that finds nothing.
        prop_assert!(work.searches <= n + 2 && work.validations <= n, "{:?}: {:?}", text, work);
    }

    #[test]
    fn every_generated_ssn_phone_and_email_is_found(seed in any::<u64>()) {
        let mut r = corpus::Rng::new(seed);
        let scanner = Scanner::default();
        for (value, kind) in [
            (corpus::ssn(&mut r), IdentifierKind::Ssn),
            (corpus::phone(&mut r), IdentifierKind::Phone),
            (corpus::email(&mut r), IdentifierKind::Email),
            (corpus::date(&mut r), IdentifierKind::Date),
            (corpus::card(&mut r), IdentifierKind::Account),
        ] {
            let text = format!("noted {value}; thanks");
            let found = scanner.find(&text);
            prop_assert_eq!(found.len(), 1, "{:?} in {:?}", found, text);
            prop_assert_eq!(found[0].kind, kind);
            prop_assert_eq!(&text[found[0].range.clone()], value.as_str());
        }
    }
}

#[test]
fn ssn_validity_rules() {
    let scanner = Scanner::default();
    let is_ssn = |s: &str| {
        scanner
            .find(s)
            .iter()
            .any(|f| f.kind == IdentifierKind::Ssn)
    };
    assert!(is_ssn("001-01-0001"));
    assert!(is_ssn("899-99-9999"));
    assert!(is_ssn("665-12-3456"));
    for bad in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "999-12-3456",
        "123-00-4567",
        "123-45-0000",
    ] {
        assert!(!is_ssn(bad), "{bad} is not a valid SSN");
    }
}

#[test]
fn luhn_decides_account_numbers() {
    let scanner = Scanner::default();
    let kinds = |s: &str| {
        scanner
            .find(s)
            .into_iter()
            .map(|f| f.kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kinds("paid with 4111-1111-1111-1111."),
        [IdentifierKind::Account]
    );
    assert_eq!(kinds("paid with 4111-1111-1111-1112."), []);
    assert_eq!(kinds("acct 5500005555555559"), [IdentifierKind::Account]);
}

#[test]
fn custom_mrn_patterns_replace_the_default() {
    let scanner = Scanner::builder()
        .mrn_patterns([r"(?i:chart)[ :#]{0,3}(?P<id>CH-[0-9]{6})\b"])
        .build()
        .expect("pattern compiles");
    let text = "chart: CH-123456, MRN 7654321";
    let found: Vec<_> = scanner
        .find(text)
        .into_iter()
        .map(|f| (f.kind, text[f.range].to_owned()))
        .collect();
    assert_eq!(found, [(IdentifierKind::Mrn, "CH-123456".to_owned())]);
    // Custom patterns run without the prefilter unless asked: nothing to disagree with.
    assert_eq!(scanner.find(text), scanner.find_unfiltered(text));
}

#[test]
fn scrub_text_uses_the_default_scanner() {
    let text = "Pt Ada, MRN: 00123456, DOB 02/29/1952, email ada@example.org, from 10.0.0.7";
    assert_eq!(
        guardrail_core::mask::scrub_text(text),
        "Pt Ada, MRN: [MRN], DOB [DATE], email [EMAIL], from [IP]"
    );
}

#[test]
fn narrative_notes_header_identifiers_found_and_prefilter_agrees() {
    let scanner = Scanner::default();
    let text = corpus::narrative_text(SEED ^ 4, 128 * 1024);
    let found = scanner.find(&text);
    assert_eq!(found, scanner.find_unfiltered(&text));
    let notes = text.matches("PROGRESS NOTE").count();
    let count = |k| found.iter().filter(|f| f.kind == k).count();
    // Each header has one MRN and two dates (DOB, date of service); the prose has none.
    assert_eq!(count(IdentifierKind::Mrn), notes);
    assert_eq!(count(IdentifierKind::Date), 2 * notes);
    assert!(found.iter().all(|f| matches!(
        f.kind,
        IdentifierKind::Mrn | IdentifierKind::Date | IdentifierKind::Phone
    )));
}

/// Text without whitespace, made of `unit` repeated to at least `len` bytes: every repeat is
/// a candidate a check rejects (an IP with octets over 255, a phone with area code 1xx, an
/// SSN with area 000, a Luhn failure…), the shape that made the scanner quadratic.
fn repeated(unit: &str, len: usize) -> String {
    unit.repeat(len.div_ceil(unit.len()))
}

/// The adversarial families the linear-time test and the `scan_adversarial` benchmark use.
const ADVERSARIAL: &[&str] = &[
    "999.999.999.999.",
    "123-123-1234-",
    "000-12-3456-",
    "4111-1111-1111-1112-",
    "13/45/2024/",
    "1-1-1-1-1-",
    "ssn:000123456:",
    "fax:123-555-0142.",
    "fe80::ffff:",
    "a.b-c%d+e_f.",
    "x.y@z.",
    "http://a.",
    "MRN:12345",
];

/// Random text over the identifier alphabet and no whitespace: long windows full of partial
/// candidates.
fn random_dense(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789012345678901234567890123456789-./:@()+,#abcfwxSN";
    let mut r = corpus::Rng::new(seed);
    (0..len)
        .map(|_| char::from(ALPHABET[(r.next_u64() % ALPHABET.len() as u64) as usize]))
        .collect()
}

/// At most this many bytes handed to the automaton per input byte, on any input.
const BYTES_PER_BYTE: u64 = 160;
/// At most this many regex searches and validations per input byte.
const SEARCHES_PER_BYTE: f64 = 0.75;
/// Bytes searched that the growth check allows beyond proportion: one search of the
/// bounded automaton's span (`2 × MAX_BOUNDED_LEN`).
const SPAN_SLACK: f64 = 2.0 * MAX_BOUNDED_LEN as f64;

fn assert_linear(name: &str, make: impl Fn(usize) -> String) {
    let scanner = Scanner::default();
    let mut previous: Option<(usize, u64)> = None;
    for len in [2 << 10, 8 << 10, 32 << 10] {
        let text = make(len);
        let n = text.len() as u64;
        let (_, work) = scanner.find_with_work(&text);
        eprintln!(
            "{name:>22} {n:>6} B: {:6.1} bytes searched/B, {:.3} searches/B, {:.3} validations/B",
            work.bytes_searched as f64 / n as f64,
            work.searches as f64 / n as f64,
            work.validations as f64 / n as f64
        );
        assert!(
            work.bytes_searched <= BYTES_PER_BYTE * n,
            "{name} at {n} bytes: {} bytes searched, {:.1} per byte",
            work.bytes_searched,
            work.bytes_searched as f64 / n as f64
        );
        assert!(
            (work.searches as f64) <= SEARCHES_PER_BYTE * n as f64
                && (work.validations as f64) <= SEARCHES_PER_BYTE * n as f64,
            "{name} at {n} bytes: {work:?}"
        );
        // Four times the text, at most about four times the work (give or take one
        // bounded search's span: text with almost no work, such as narrative prose with a
        // few dozen bytes searched, may add a window more than its share).
        if let Some((prev_len, prev_bytes)) = previous {
            let size = text.len() as f64 / prev_len as f64;
            let limit = prev_bytes as f64 * (size * 1.25 + 1.0) + SPAN_SLACK;
            assert!(
                work.bytes_searched as f64 <= limit,
                "{name}: {size:.1}x the text cost {} bytes searched after {prev_bytes}",
                work.bytes_searched
            );
        }
        previous = Some((text.len(), work.bytes_searched));
    }
}

/// The prefilter's path (trigger loop, windows, skipped spans) and the search of the whole
/// text in 256-byte spans find the same on the adversarial families, at lengths that put
/// span ends at every offset of a unit, and with the units spread over words.
#[test]
fn prefilter_agrees_with_a_full_search_on_adversarial_text() {
    let scanner = Scanner::default();
    for unit in ADVERSARIAL {
        for len in [200, 255, 256, 257, 300, 700, 1500, 4100] {
            let text = repeated(unit, len);
            assert_eq!(
                scanner.find(&text),
                scanner.find_unfiltered(&text),
                "{unit:?} repeated to {len} bytes"
            );
            let spaced = repeated(&format!("{unit} "), len);
            assert_eq!(
                scanner.find(&spaced),
                scanner.find_unfiltered(&spaced),
                "{unit:?} and a space repeated to {len} bytes"
            );
        }
    }
}

#[test]
fn work_per_byte_is_bounded_on_adversarial_text() {
    for unit in ADVERSARIAL {
        assert_linear(unit, |len| repeated(unit, len));
    }
}

#[test]
fn work_per_byte_is_bounded_on_random_and_clinical_text() {
    assert_linear("random dense", |len| random_dense(7, len));
    assert_linear("corpus", |len| corpus::corpus_text(SEED ^ 5, len));
    assert_linear("narrative", |len| corpus::narrative_text(SEED ^ 6, len));
}

/// The SSN forms that reached the trail through free text: cue-led undashed, dotted,
/// spaced and `=` forms, and dashes that are not U+002D.
#[test]
fn cue_led_and_look_alike_ssns_are_found_and_masked() {
    let scanner = Scanner::default();
    for (text, value) in [
        ("ssn is 123456789", "123456789"),
        ("SSN 123.45.6789", "123.45.6789"),
        ("ssn=123456789", "123456789"),
        ("SSN 123\u{2010}45\u{2010}6789", "123\u{2010}45\u{2010}6789"),
        ("SSN: 123 45 6789", "123 45 6789"),
        ("pt ssn# 123-45-6789.", "123-45-6789"),
        ("social security number is 123456789", "123456789"),
        ("Social Security No. 123.45.6789", "123.45.6789"),
        ("ssn was 123 456 789", "123 456 789"),
        ("123\u{2013}45\u{2013}6789", "123\u{2013}45\u{2013}6789"),
        ("123\u{2212}45\u{2212}6789", "123\u{2212}45\u{2212}6789"),
        ("123\u{FF0D}45\u{FF0D}6789", "123\u{FF0D}45\u{FF0D}6789"),
        (
            "\u{FF11}\u{FF12}\u{FF13}-\u{FF14}\u{FF15}-\u{FF16}\u{FF17}\u{FF18}\u{FF19}",
            "\u{FF11}\u{FF12}\u{FF13}-\u{FF14}\u{FF15}-\u{FF16}\u{FF17}\u{FF18}\u{FF19}",
        ),
        ("123-45\u{200B}-6789", "123-45\u{200B}-6789"),
    ] {
        let found = scanner.find(text);
        assert_eq!(found.len(), 1, "{text:?}: {found:?}");
        assert_eq!(found[0].kind, IdentifierKind::Ssn, "{text:?}");
        assert_eq!(&text[found[0].range.clone()], value, "{text:?}");
        let masked = scanner.mask(text);
        assert!(
            masked.contains("[SSN]") && !masked.contains("6789") && !masked.contains("\u{FF19}"),
            "{masked}"
        );
        assert_eq!(
            scanner.find(text),
            scanner.find_unfiltered(text),
            "{text:?}"
        );
    }
    // Without a cue nine bare digits stay readable (order numbers, NPIs); invalid SSNs too.
    for text in [
        "order 123456789",
        "ssn is 000123456",
        "ssn=666.12.3456",
        "123.45.6789",
    ] {
        assert!(
            scanner
                .find(text)
                .iter()
                .all(|f| f.kind != IdentifierKind::Ssn),
            "{text:?}: {:?}",
            scanner.find(text)
        );
    }
}

#[test]
fn look_alike_dashes_and_digits_in_other_kinds() {
    let scanner = Scanner::default();
    assert_eq!(
        scanner
            .mask("call 617\u{2011}555\u{2011}0142 or ada\u{FF20}example.org on 03\u{2215}14/2024"),
        "call [PHONE] or [EMAIL] on 03\u{2215}14/2024"
    );
    assert_eq!(
        scanner.mask("DOB \u{FF10}\u{FF13}/\u{FF11}\u{FF14}/1952 é MRN\u{00A0}00123456"),
        "DOB [DATE] é MRN\u{00A0}[MRN]"
    );
}

#[test]
fn blank_text_is_whitespace_and_invisible_characters_only() {
    use guardrail_core::mask::is_blank_text;
    for blank in [
        "",
        " ",
        "\t\n\r",
        "\u{200B}",
        "\u{200C}\u{200D}",
        "\u{2060}",
        "\u{FEFF}",
        " \u{00A0}\u{3000}\u{200B} ",
    ] {
        assert!(is_blank_text(blank), "{blank:?}");
    }
    for visible in [
        "a",
        " x ",
        "\u{200B}.\u{200B}",
        "—",
        "0",
        "\u{FEFF}pt unconscious",
    ] {
        assert!(!is_blank_text(visible), "{visible:?}");
    }
}

/// The prefilter looks back from a digit cluster only as far as a word that may start a
/// cue or a date: every built-in cue and month, one or two words before the digits, is still
/// found (and found as what the cue says: `Fax`, not `Phone`).
#[test]
fn cues_and_months_words_before_the_digits_are_found() {
    use IdentifierKind as K;
    let scanner = Scanner::default();
    let mut cases: Vec<(String, K, &str)> = vec![
        (
            "Telefax number: 617-555-0199".into(),
            K::Fax,
            "617-555-0199",
        ),
        ("facsimile #: 617-555-0199".into(), K::Fax, "617-555-0199"),
        ("fax no. 617-555-0199".into(), K::Fax, "617-555-0199"),
        ("SSN #: 123456789".into(), K::Ssn, "123456789"),
        ("SS# : 123456789".into(), K::Ssn, "123456789"),
        ("social security no. 123456789".into(), K::Ssn, "123456789"),
        ("MRN #: 1234567".into(), K::Mrn, "1234567"),
        ("MR# : 1234567".into(), K::Mrn, "1234567"),
        ("Med rec no. 1234567".into(), K::Mrn, "1234567"),
        ("zip code: 02115".into(), K::Zip, "02115"),
        ("postal code: 02115".into(), K::Zip, "02115"),
        ("Boston, MA 02115".into(), K::Zip, "02115"),
    ];
    for month in [
        "Jan",
        "Feb",
        "Mar",
        "Apr",
        "May",
        "Jun",
        "Jul",
        "Aug",
        "Sep",
        "Sept",
        "Oct",
        "Nov",
        "Dec",
        "January",
        "september",
    ] {
        cases.push((format!("seen {month} 3rd, 2021 ok"), K::Date, ""));
        cases.push((format!("seen 3rd {month} 2021 ok"), K::Date, ""));
    }
    for (text, kind, value) in &cases {
        let found = scanner.find(text);
        assert_eq!(found, scanner.find_unfiltered(text), "{text}");
        assert_eq!(found.len(), 1, "{text}: {found:?}");
        assert_eq!(found[0].kind, *kind, "{text}");
        let got = &text[found[0].range.clone()];
        if value.is_empty() {
            // The whole date: from the month or the day, to the year.
            assert!(
                got.starts_with(['3', 'J', 'F', 'M', 'A', 'S', 'O', 'N', 'D', 's'])
                    && got.ends_with("2021"),
                "{text}: {got}"
            );
            assert_eq!(got.len(), text.len() - "seen  ok".len(), "{text}: {got}");
        } else {
            assert_eq!(got, *value, "{text}");
        }
    }
}
