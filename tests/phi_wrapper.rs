//! `Phi<T>` never shows its value: over 10,000 random values, no substring of four or more
//! characters of the value, and not its length, appears in `Debug` (plain and pretty),
//! `Display` (with width and precision) or serialized output, alone or inside a struct.

use guardrail_core::Phi;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde::Serialize;

#[derive(Serialize, Debug)]
struct Record {
    id: u32,
    ssn: Phi<String>,
    mrn: Phi<u64>,
}

/// Every rendering an application might produce of a wrapped value.
fn renderings(value: &str, number: u64) -> Vec<String> {
    let phi = Phi::new(value.to_owned());
    let record = Record {
        id: 7,
        ssn: Phi::new(value.to_owned()),
        mrn: Phi::new(number),
    };
    vec![
        format!("{phi:?}"),
        format!("{phi:#?}"),
        format!("{phi}"),
        format!("{phi:>40}"),
        format!("{phi:.2}"),
        serde_json::to_string(&phi).expect("serializes"),
        format!("{record:?}"),
        format!("{record:#?}"),
        serde_json::to_string(&record).expect("serializes"),
        serde_json::to_string(&Phi::new(number)).expect("serializes"),
        serde_json::to_string(&Phi::new(value.as_bytes().to_vec())).expect("serializes"),
    ]
}

/// The value's character windows of length 4 (all longer substrings contain one).
fn windows(value: &str) -> Vec<String> {
    let chars: Vec<char> = value.chars().collect();
    chars.windows(4).map(|w| w.iter().collect()).collect()
}

#[test]
fn ten_thousand_random_values_never_leak() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[42; 32]),
    );
    // Values of any printable content (letters, digits, punctuation, non-ASCII), 4 to 40
    // characters, like SSNs, names and notes; numbers of any size.
    let values = ("[[:print:]é✓Ωß]{4,40}", any::<u64>());
    // What the wrapper prints for a value sharing nothing with the random ones: text that
    // shows up for a random value but not here came from that value.
    let reference = renderings("\u{1}\u{1}\u{1}\u{1}", 1);
    for _ in 0..10_000 {
        let (value, number) = values.new_tree(&mut runner).expect("generates").current();
        let out = renderings(&value, number);
        for (rendered, reference) in out.iter().zip(&reference) {
            for w in windows(&value) {
                assert!(
                    !rendered.contains(&w) || reference.contains(&w),
                    "window {w:?} of the value appears in {rendered:?}"
                );
            }
            for len in [value.chars().count(), value.len()] {
                let len = len.to_string();
                assert!(
                    !rendered.contains(&len) || reference.contains(&len),
                    "the length {len} appears in {rendered:?}"
                );
            }
            let number = number.to_string();
            assert!(
                !rendered.contains(&number) || reference.contains(&number),
                "the number {number} appears in {rendered:?}"
            );
        }
        // Identical output for every value: nothing about the value, length included, shows.
        assert_eq!(out, reference);
    }
}

#[test]
fn expose_is_the_way_in() {
    let mut p = Phi::new(String::from("123-45-6789"));
    assert_eq!(p.expose(), "123-45-6789");
    p.expose_mut().push('0');
    assert_eq!(p.into_inner(), "123-45-67890");
}
