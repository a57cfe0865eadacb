//! The scanner's unit tests.

use super::*;

fn kinds(text: &str) -> Vec<(IdentifierKind, String)> {
    let s = Scanner::builder()
        .build()
        .expect("built-in patterns compile");
    let found = s.find(text);
    assert_eq!(
        found,
        s.find_unfiltered(text),
        "prefilter disagrees on {text:?}"
    );
    found
        .into_iter()
        .map(|f| (f.kind, text[f.range].to_owned()))
        .collect()
}

#[test]
fn built_in_patterns_compile() {
    let s = Scanner::builder().build().expect("compile");
    assert!(s.patterns().count() >= 14);
}

#[test]
fn finds_each_kind() {
    use IdentifierKind as K;
    let cases: &[(&str, K, &str)] = &[
        ("SSN 123-45-6789.", K::Ssn, "123-45-6789"),
        ("ssn: 123456789 ok", K::Ssn, "123456789"),
        ("call (617) 555-0142 now", K::Phone, "(617) 555-0142"),
        ("call +1 617.555.0142", K::Phone, "+1 617.555.0142"),
        ("Fax: 617-555-0199", K::Fax, "617-555-0199"),
        (
            "mail ada.l+x@mail.example.org.",
            K::Email,
            "ada.l+x@mail.example.org",
        ),
        ("MRN #: 00123456 seen", K::Mrn, "00123456"),
        ("seen 03/14/2024", K::Date, "03/14/2024"),
        ("seen 2024-03-14T10:00Z", K::Date, "2024-03-14T10:00Z"),
        ("on March 3rd, 2021 at", K::Date, "March 3rd, 2021"),
        ("on 3 Mar 2021 at", K::Date, "3 Mar 2021"),
        ("from 10.0.12.7 at", K::Ip, "10.0.12.7"),
        (
            "from fe80::1ff:fe23:4567:890a at",
            K::Ip,
            "fe80::1ff:fe23:4567:890a",
        ),
        (
            "see https://portal.example.org/p?id=7).",
            K::Url,
            "https://portal.example.org/p?id=7",
        ),
        ("see www.example.org.", K::Url, "www.example.org"),
        ("Boston, MA 02115-1234 USA", K::Zip, "02115-1234"),
        ("zip code: 02115", K::Zip, "02115"),
        (
            "card 4111 1111 1111 1111 on file",
            K::Account,
            "4111 1111 1111 1111",
        ),
    ];
    for (text, kind, value) in cases {
        assert_eq!(kinds(text), vec![(*kind, (*value).to_owned())], "{text}");
    }
}

#[test]
fn rejects_invalid_and_decoys() {
    for text in [
        "000-12-3456",
        "666-12-3456",
        "912-34-5678",
        "123-00-4567",
        "123-45-0000",
        "BP 120/80 HR 72",
        "metformin 500 mg, HbA1c 7.2%, E11.9, K 4.1",
        "13/45/2024",
        "4111 1111 1111 1112",
        "call 123-555-0142",
        "999.1.1.1",
        "year 2019, 1000 mg, 12000 cells",
        "lot 02115",
        "at 10:30:45",
    ] {
        assert_eq!(kinds(text), vec![], "{text}");
    }
}

#[test]
fn invalid_candidate_does_not_hide_inner_identifier() {
    // A 13-digit run failing Luhn starts before the phone number.
    let k = kinds("ref 123 617-555-0142 44");
    assert!(
        k.contains(&(IdentifierKind::Phone, "617-555-0142".into())),
        "{k:?}"
    );
}

#[test]
fn cue_in_the_window_before_is_found() {
    // `0000` is a trigger whose window ends with the cue `MRN`; the MRN's digits are the
    // next trigger, whose window looks back into that one and merges with it.
    assert_eq!(
        kinds("0000MRN\t000000 seen"),
        vec![(IdentifierKind::Mrn, "000000".to_owned())]
    );
    // The same across a URL's window (`kinds` checks the prefilter against a full search).
    kinds("SSNhttps://ZIP 00000\t");
}

#[test]
fn mask_replaces_findings() {
    let s = Scanner::default();
    assert_eq!(
        s.mask("Pt DOB 01/02/1950, SSN 123-45-6789; BP 120/80."),
        "Pt DOB [DATE], SSN [SSN]; BP 120/80."
    );
    assert_eq!(s.mask("héllo ✓ 123-45-6789 ✓"), "héllo ✓ [SSN] ✓");
}

#[test]
fn eight_byte_test_never_misses_a_trigger_byte() {
    for b in 0..=255u8 {
        for pos in 0..8 {
            let mut word = [b'a'; 8];
            word[pos] = b;
            let expect = b.is_ascii_digit() || b == b':' || b == b'@';
            let got = may_hold_trigger(u64::from_le_bytes(word));
            assert!(got || !expect, "byte {b:#x} at {pos} missed");
            if b < 0x80 {
                assert_eq!(got, expect, "byte {b:#x} at {pos}");
            }
        }
    }
}

#[test]
fn every_www_dot_is_found() {
    for text in [
        "www.",
        "a www.b",
        "wwww.x",
        "WwW.x",
        "ww.www.",
        "w w w. www",
        "www",
        "",
    ] {
        let bytes = text.as_bytes();
        for from in 0..=bytes.len() {
            let expect = (from..bytes.len())
                .find(|&i| {
                    i >= 3 && bytes[i] == b'.' && bytes[i - 3..i].eq_ignore_ascii_case(b"www")
                })
                .unwrap_or(bytes.len());
            assert_eq!(next_www(bytes, from), expect, "{text:?} from {from}");
        }
    }
}

#[test]
fn bad_mrn_pattern_is_an_error() {
    let e = Scanner::builder()
        .mrn_patterns(["MRN(["])
        .build()
        .unwrap_err();
    assert!(
        e.to_string().starts_with("invalid MRN pattern `MRN([`"),
        "{e}"
    );
}

/// Pieces of identifiers, cues, look-alikes and prose, so random text lands on the
/// prefilter's edges: `www.` in any case and split across the eight-byte test, digit
/// clusters with every separator, cues a few words before the digits, whitespace of each
/// kind, non-ASCII bytes.
fn piece() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        "[0-9]{1,11}",
        "[ \\-./(),+\t]{1,4}",
        "[ \t\n\r\u{0C}]{1,3}",
        "[a-zA-Z]{1,9}",
        "[wW.]{1,5}",
        "[a-f0-9]{1,4}[:]{1,2}",
        prop::sample::select(vec![
            "www.",
            "WwW.",
            "https://",
            "@",
            "x@y.org",
            "SSN ",
            "ssn is ",
            "Fax: ",
            "facsimile no. ",
            "MRN #: ",
            "Medical record number ",
            "ZIP code ",
            "postal code: ",
            "MA ",
            "NY, ",
            "March ",
            "3rd ",
            "Sept. ",
            "Social security no. #: ",
            "é",
            "\u{2010}",
            "１２３",
            "\u{200B}",
        ])
        .prop_map(str::to_owned),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(2048))]

    /// The prefilter (trigger loop, windows, skipped spans) finds exactly what a search of
    /// the whole text finds, on random text.
    #[test]
    fn prefilter_finds_what_a_full_search_finds(
        parts in proptest::collection::vec(piece(), 0..48)
    ) {
        let text: String = parts.concat();
        let scanner = Scanner::default();
        proptest::prop_assert_eq!(scanner.find(&text), scanner.find_unfiltered(&text), "{:?}", text);
    }

    /// `next_www` finds the first `www.` whose `.` is at or after the start, as a plain
    /// scan does.
    #[test]
    fn next_www_agrees_with_a_plain_scan(
        text in "[wW. a]{0,160}", from in 0usize..164
    ) {
        let bytes = text.as_bytes();
        let from = from.min(bytes.len());
        let expect = (from..bytes.len())
            .find(|&i| i >= 3 && bytes[i] == b'.' && bytes[i - 3..i].eq_ignore_ascii_case(b"www"))
            .unwrap_or(bytes.len());
        proptest::prop_assert_eq!(next_www(bytes, from), expect);
    }
}

#[test]
fn a_cluster_going_on_past_a_window_is_found() {
    // Found by fuzzing: `6175` opens a window that ends at the space, and the account number
    // that starts inside it (no trigger of its own) crosses that end.
    assert_eq!(
        kinds("6175\x00456456550142 7"),
        vec![(IdentifierKind::Account, "456456550142 7".to_owned())]
    );
}

#[test]
fn a_cue_before_a_double_colon_is_found() {
    // The `::` is the trigger; the digits share its word, so the cue two words back is only
    // in the window if the `::` looks back for it.
    assert_eq!(
        kinds("Socsecurity no::411167898"),
        vec![(IdentifierKind::Ssn, "411167898".to_owned())]
    );
}

#[test]
fn a_match_cut_by_a_span_end_is_not_skipped() {
    // The unfiltered search gives the automaton 256 bytes at a time. Here the first span ends
    // inside the account number `456-000-12-3456-001-12` (Luhn-valid) that starts at byte 240,
    // so in that span the SSN-shaped `000-12-3456` is the leftmost match; searching again from
    // its start skipped the account number, and the full search then found the SSN
    // `001-12-3456` inside it where the prefilter found the account number.
    let text = format!("{}456-000-12-3456-001-12-3456-M", "~".repeat(240));
    assert_eq!(
        kinds(&text),
        vec![(IdentifierKind::Account, "456-000-12-3456-001-12".to_owned()),]
    );
}

#[test]
fn the_fuzzed_long_span_disagreement_is_gone() {
    // `fuzz/seeds/scanner/prefilter_disagrees_long_span`: the same cut, found by fuzzing.
    let seed = include_bytes!("../../../../fuzz/seeds/scanner/prefilter_disagrees_long_span");
    let text = std::str::from_utf8(seed).expect("the seed is UTF-8");
    let s = Scanner::default();
    assert_eq!(s.find(text), s.find_unfiltered(text));
}

#[test]
fn a_day_before_a_month_in_the_digits_word_is_found() {
    // Found by fuzzing: the month name shares its word with the year (`Mar-2024`), so the
    // look-back for the day started a word too late.
    assert_eq!(
        kinds("seen 1 03 Mar-2024-1"),
        vec![(IdentifierKind::Date, "03 Mar-2024".to_owned())]
    );
}

#[test]
fn no_built_in_match_starts_at_whitespace() {
    // `Stream::next` skips whitespace before its anchored first search (`Anchor::AfterSpace`):
    // right only if no built-in pattern can match from an ASCII whitespace byte, whatever
    // comes before it. Checked on each pattern's lazy DFA, from every kind of look-behind.
    use regex_automata::Anchored;
    use regex_automata::hybrid::dfa::DFA;
    use regex_automata::util::start;
    let s = Scanner::default();
    for (kind, source) in s.patterns() {
        let dfa = DFA::builder()
            .syntax(builder::syntax_config())
            .build(source)
            .expect("compiles");
        let mut cache = dfa.create_cache();
        for behind in [None, Some(b'a'), Some(b'-'), Some(b' '), Some(b'\n')] {
            let config = start::Config::new()
                .anchored(Anchored::Yes)
                .look_behind(behind);
            let at = dfa.start_state(&mut cache, &config).expect("start state");
            for space in [b' ', b'\t', b'\n', b'\r', 0x0C] {
                let next = dfa.next_state(&mut cache, at, space).expect("cache");
                assert!(
                    next.is_dead(),
                    "{kind:?} may start at {space:#x} after {behind:?}: {source}"
                );
            }
        }
    }
}

#[test]
fn a_state_code_must_start_its_word_or_follow_punctuation() {
    // `MA 02115` and `(MA, 02115` may start a ZIP before the digits' word; `NDC 0002-…`
    // (an NDC code: `DC` after a letter) may not, so its window starts at the digits.
    use super::patterns::ends_in_state;
    assert!(ends_in_state(b"MA") && ends_in_state(b"(MA,") && ends_in_state(b"x-DC"));
    assert!(!ends_in_state(b"NDC") && !ends_in_state(b"_MA") && !ends_in_state(b"2MA,"));
    let text = "start NDC 0002-7856-64, lot";
    let Some(first) = Windows::new(text, false, true).next_window(&mut Vec::new()) else {
        panic!("a window first");
    };
    assert_eq!(&text[first.range], "0002-7856-64,");
    assert_eq!(
        kinds("Boston (MA, 02115. Kansas City, MO 64105-1234"),
        vec![
            (IdentifierKind::Zip, "02115".to_owned()),
            (IdentifierKind::Zip, "64105-1234".to_owned())
        ]
    );
}

#[test]
fn hope_needs_an_ipv6_colon_or_a_scheme_colon() {
    use trigger::hope;
    // The `:` left after a date (`Addendum 03/14/2024: patient called…`) can start neither.
    assert_eq!(
        hope(b":"),
        trigger::Hope {
            bounded: false,
            open: false
        }
    );
    assert!(!hope(b"x: y").bounded && !hope(b"x: y").open);
    // IPv6 groups of hex letters only, and a scheme without digits, still may.
    assert!(hope(b"dead:beef::").bounded && hope(b"sftp://x").open);
    assert_eq!(
        kinds("ip dead:beef:cafe:babe:dead:beef:cafe:babe, at sftp://x.example/a: ok"),
        vec![
            (
                IdentifierKind::Ip,
                "dead:beef:cafe:babe:dead:beef:cafe:babe".to_owned()
            ),
            (IdentifierKind::Url, "sftp://x.example/a".to_owned())
        ]
    );
}

/// Windows that are, or nearly are, a lone numeric date (the shortcut in
/// `search::whole_numeric_date`): every run length around the date forms, every separator,
/// the bytes that may follow and precede it. The shortcut must find exactly what a search
/// of the whole text finds.
#[test]
fn a_lone_numeric_date_is_found_as_a_search_finds_it() {
    let s = Scanner::default();
    let runs = ["3", "12", "45", "123", "2024"];
    let lasts = ["5", "24", "123", "2024", "20245"];
    let separators = ["/", "-", "."];
    let tails = ["", ",", ".", ":", ")", "a", "0", "-", "T10:30"];
    let before = ["", "x", "(", "Mar "];
    let mut dates = 0;
    for a in runs {
        for b in runs {
            for c in lasts {
                for s1 in separators {
                    for s2 in separators {
                        for tail in tails {
                            for prefix in before {
                                let text = format!("on {prefix}{a}{s1}{b}{s2}{c}{tail} ok");
                                let found = s.find(&text);
                                assert_eq!(found, s.find_unfiltered(&text), "{text:?}");
                                dates += found
                                    .iter()
                                    .filter(|f| f.kind == IdentifierKind::Date)
                                    .count();
                            }
                        }
                    }
                }
            }
        }
    }
    // Both readings are exercised: many of these are dates, many are not.
    assert!(dates > 1_000, "{dates} dates");
}

/// A numeric date is a date if either reading of its first two numbers is (month and day,
/// as in the US, or day and month); a year-first date reads month, then day. The shortcuts
/// and the search share the rule (`checks::numeric_date_numbers_valid`), so comparing them
/// cannot check it: this does.
#[test]
fn a_numeric_date_is_valid_in_either_reading() {
    let s = Scanner::default();
    let is_date = |t: &str| {
        s.find(&format!("seen {t} ok"))
            .iter()
            .any(|f| f.kind == IdentifierKind::Date)
    };
    for t in [
        "03/14/2024",
        "14/03/2024",
        "14.03.2024",
        "3-14-24",
        "2024-03-14",
        "31/12/1999",
    ] {
        assert!(is_date(t), "{t}");
    }
    for t in [
        "13/13/2024",
        "2024-14-03",
        "2024-02-30",
        "00/12/2024",
        "32/01/2024",
    ] {
        assert!(!is_date(t), "{t}");
    }
}

/// A date decided during the walk (`trigger::Windows::own_date`) is found once, as a search
/// of the whole text finds it, whatever follows: a year after a month name makes a later
/// window look back over the month for a day, into the date's word; a cue or another
/// date may follow too.
#[test]
fn a_date_decided_in_the_walk_is_found_as_a_search_finds_it() {
    let s = Scanner::default();
    let dates = [
        "3/14/2024",
        "14.03.2024",
        "3-14-24",
        "12/03/24",
        "13/13/2024",
    ];
    let tails = ["", ",", ")", ":"];
    let afters = [
        "",
        " March 2021",
        " Mar-2021",
        " March 3, 2021",
        " Mar. 2021",
        " 3 Mar 2021",
        " Jan 3 2021 and 4/5/2021",
        "\nMRN 0374774",
        " 617-555-0142",
    ];
    let befores = ["", "Seen ", "MRN 0374774 ", "3 ", "(x) "];
    let mut found = 0;
    for date in dates {
        for tail in tails {
            for after in afters {
                for before in befores {
                    let text = format!("{before}{date}{tail}{after}");
                    let expected = s.find_unfiltered(&text);
                    assert_eq!(s.find(&text), expected, "{text:?}");
                    found += expected.len();
                }
            }
        }
    }
    assert!(found > 500, "{found} findings");
}

/// Windows that are, or nearly are, one numeric word of a shape the shortcut knows
/// (`search::lone_numeric_word`): SSNs, phone numbers, account numbers, IPv4 addresses and
/// NDC codes, with
/// digits that pass and fail each check, every tail and what may come before. The shortcut
/// must find exactly what a search of the whole text finds.
#[test]
fn a_lone_numeric_word_is_found_as_a_search_finds_it() {
    let s = Scanner::default();
    let ssn_parts = [
        ("123", "45", "6789"),
        ("666", "45", "6789"),
        ("912", "00", "6789"),
    ];
    let phone_parts = [
        ("617", "555", "0142"),
        ("117", "555", "0142"),
        ("617", "155", "0142"),
    ];
    let mut words = Vec::new();
    for (a, b, c) in ssn_parts {
        for sep in ["-", " ", ".", "/", "--", "-."] {
            words.push(format!("{a}{sep}{b}{sep}{c}"));
        }
        words.push(format!("{a}-{b} {c}"));
        // A NUL after a separator (found by the fuzzer: read as the separator alone).
        words.push(format!("{a}-{b}-\0{c}"));
        words.push(format!("{a}\0{b}\0{c}"));
        words.push(format!("{a}-{b}-{c}0"));
        words.push(format!("{a}{b}{c}"));
    }
    for (a, b, c) in phone_parts {
        for (s1, s2) in [
            ("-", "-"),
            (".", "."),
            (" ", " "),
            ("-", "."),
            (" ", "-"),
            ("/", "/"),
        ] {
            words.push(format!("{a}{s1}{b}{s2}{c}"));
            for lead in ["1", "+1", "2", "+2", "11", "(1)"] {
                for s0 in ["-", " ", ".", ""] {
                    words.push(format!("{lead}{s0}{a}{s1}{b}{s2}{c}"));
                }
            }
        }
        for after in [")", ") ", ")-", "))"] {
            for s2 in ["-", " ", "."] {
                words.push(format!("({a}{after}{b}{s2}{c}"));
                words.push(format!("1 ({a}{after}{b}{s2}{c}"));
                words.push(format!("+1({a}{after}{b}{s2}{c}"));
            }
        }
        words.push(format!("{a}-{b}-{c}5"));
        words.push(format!("{a}-{b}-{c}-1"));
    }
    for card in ["4111111111111111", "4111111111111112", "4222222222222"] {
        for len in [card.len() - 1, card.len()] {
            words.push(card[..len].to_owned());
        }
        words.push(format!("{card}123"));
        words.push(format!("{card}12345"));
    }
    for card in [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111-1111-1111-1112",
    ] {
        words.push(card.to_owned());
        words.push(card.replace('1', "0"));
        words.push(card.replacen(' ', "-", 1));
        words.push(format!("{card}-1"));
    }
    // IPv4 addresses, near addresses (a run too long, five runs, another separator) and
    // addresses that fail the check.
    for ip in [
        "10.0.0.1",
        "1.2.3.4",
        "192.168.100.200",
        "256.1.1.1",
        "10.00.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "1234.1.1.1",
        "1.2.3.4567",
        "10.0.0-1",
        "10..0.1",
        "12.12.2024.1",
        "1.2-3-24",
        "1.2.3/4",
    ] {
        words.push(ip.to_owned());
    }
    for ndc in [
        "0002-7856-64",
        "1234-5678-90",
        "2024-03-14",
        "2024-1203-14",
        "12-3456-78",
    ] {
        words.push(ndc.to_owned());
        words.push(ndc.replace('-', "/"));
    }
    let tails = ["", ",", ".", ":", ")", ";", "a", "0", "-", ".5", "::"];
    let before = [
        "", "x", "(", "1 ", "+1 ", "1-", "ssn ", "Fax: ", "MA ", "4111 ",
    ];
    let mut found = 0;
    let mut shortcut = 0;
    for word in &words {
        for tail in tails {
            for prefix in before {
                let text = format!("on {prefix}{word}{tail} ok");
                let f = s.find(&text);
                assert_eq!(f, s.find_unfiltered(&text), "{text:?}");
                found += f.len();
                let at = 3 + prefix.len();
                let window = at..at + word.len() + tail.len();
                shortcut += usize::from(
                    search::lone_numeric_word(&text, &window, &mut ScanWork::default()).is_some(),
                );
            }
        }
    }
    // Both readings are exercised: many of these are identifiers, many are not, and the
    // shortcut took many of them.
    assert!(found > 2_000, "{found} findings");
    assert!(shortcut > 1_000, "{shortcut} shortcuts");
}

#[test]
fn a_lone_numeric_word_needs_whitespace_before_it() {
    let mut work = ScanWork::default();
    assert_eq!(
        search::lone_numeric_word("x123-45-6789 ok", &(1..12), &mut work),
        None
    );
    assert_eq!(
        search::lone_numeric_word("(123-45-6789 ok", &(1..12), &mut work),
        None
    );
    assert_eq!(
        search::lone_numeric_word(" 123-45-6789 ok", &(1..12), &mut work)
            .map(|f| f.map(|f| f.range)),
        Some(Some(1..12))
    );
    assert_eq!(work.validations, 1);
}

#[test]
fn a_date_shortcut_needs_a_word_boundary_before_it() {
    // Windows start at a word's start, so this never happens in a scan; the shortcut still
    // refuses a window that a `\b` could not start.
    let text = "x12/12/2024 ok";
    assert_eq!(search::whole_numeric_date(text, &(1..11)), None);
    assert_eq!(
        search::whole_numeric_date(" 12/12/2024 ok", &(1..11)).map(|f| f.range),
        Some(1..11)
    );
}

/// Which clusters look back for a cue (`trigger::cue_led_start`): every cue, month name and
/// state before every shape of first runs, each found as a search of the whole text finds it.
#[test]
fn cues_are_found_before_every_shape_of_cluster() {
    let s = Scanner::default();
    let digits = |n: usize| "234567890123".get(..n).unwrap_or_default().to_owned();
    let cues = [
        "Fax: ", "fax 1-", "SSN ", "ssn: ", "MRN ", "ZIP ", "MA ", "March ", "3 Dec ", "Dec ",
        "Sep. ", "5th ", "",
    ];
    let mut found = 0;
    for cue in cues {
        for first in 1..=11 {
            for second in 0..=5 {
                for sep in ["-", " ", ", ", "/", "."] {
                    for third in ["", "-4567", " 4567", ", 2021"] {
                        let second = if second == 0 {
                            String::new()
                        } else {
                            format!("{sep}{}", digits(second))
                        };
                        let text = format!("pt {cue}{}{second}{third} seen", digits(first));
                        let f = s.find(&text);
                        assert_eq!(f, s.find_unfiltered(&text), "{text:?}");
                        found += f.len();
                    }
                }
            }
        }
    }
    assert!(found > 1_000, "{found} findings");
}

/// Every form of every built-in cue phrase (first word, the rest of the cue, the `:`, `#`,
/// `=`, `is` before the digits, the spaces) before digits of each shape its pattern takes,
/// after a word that is no cue: each found as a search of the whole text finds it, so a
/// look back that stops at the first word that is neither a cue nor the rest of one
/// (`trigger::CUE_TAILS`) misses none.
#[test]
fn every_form_of_a_cue_phrase_is_found() {
    let s = Scanner::default();
    let joins = [
        "", ":", " :", "#", " #", "=", "::", "#:", " #:", " is", " was",
    ];
    let spaces = ["", " ", "   "];
    let families: [(&[&str], &[&str], &[&str]); 4] = [
        (
            &[
                "SSN",
                "ss#",
                "soc sec",
                "Social Security",
                "socsec",
                "soc security",
            ],
            &["", " number", " num", " nbr", " no", " no.", "#", " #"],
            &[
                "123456789",
                "123-45-6789",
                "123 45 6789",
                "123.45.6789",
                "12345-6789",
                "123 456 789",
            ],
        ),
        (
            &["fax", "Facsimile", "telefax"],
            &["", " no", " no.", " number", " num", "#", " #"],
            &[
                "617-555-0142",
                "(617) 555-0142",
                "1-617-555-0142",
                "+1 617 555 0142",
            ],
        ),
        (
            &[
                "MRN",
                "mr#",
                "med rec",
                "Medical Record",
                "medical rec",
                "med record",
            ],
            &["", " number", " no", " no.", " num"],
            &["123456", "1234567890"],
        ),
        (
            &["zip", "ZIP code", "postal code"],
            &[""],
            &["02115", "02115-1234"],
        ),
    ];
    let mut texts = 0;
    let mut found = 0;
    for (heads, tails, digits) in families {
        for head in heads {
            for tail in tails {
                for join in joins {
                    for space in spaces {
                        for number in digits {
                            let text = format!("reached at {head}{tail}{join}{space}{number} ok");
                            let f = s.find(&text);
                            assert_eq!(f, s.find_unfiltered(&text), "{text:?}");
                            texts += 1;
                            found += f.len();
                        }
                    }
                }
            }
        }
    }
    assert!(
        texts > 5_000 && found > texts / 2,
        "{found} findings in {texts} texts"
    );
}

/// Each window in text of its own (`on {prefix}{window}{tail} ok`): `find` finds what a
/// search of the whole text finds, and where `shortcut` decides the window, it takes what
/// that search finds. The findings and the windows the shortcut decided.
fn check_window_shortcut(
    s: &Scanner,
    windows: &[String],
    tails: &[&str],
    prefixes: &[&str],
    shortcut: impl Fn(&str, &Range<usize>) -> Option<ScanMatch>,
) -> (usize, usize) {
    let mut found = 0;
    let mut decided = 0;
    for window in windows {
        for tail in tails {
            for prefix in prefixes {
                let text = format!("on {prefix}{window}{tail} ok");
                let f = s.find(&text);
                assert_eq!(f, s.find_unfiltered(&text), "{text:?}");
                found += f.len();
                let at = 3 + prefix.len();
                let range = at..at + window.len() + tail.len();
                if let Some(id) = shortcut(&text, &range) {
                    assert_eq!(f, [id], "{text:?}");
                    decided += 1;
                }
            }
        }
    }
    (found, decided)
}

/// The named-date shortcut (`search::whole_named_date`): every month name and abbreviation
/// and some words that are none, in three cases, with and without a `.`, then every shape of
/// the pieces around it (spaces and tabs, days of one to three digits, ordinals, commas,
/// years of three to five digits, `-` and `,` in the day-first form), every tail and what
/// may come before. The shortcut must find exactly what a search of the whole text finds.
#[test]
fn a_named_date_is_found_as_a_search_finds_it() {
    let s = Scanner::default();
    let mut windows = Vec::new();
    let mut months: Vec<String> = Vec::new();
    for m in patterns::MONTH_NAMES {
        months.push(m.to_owned());
        months.push(m.to_ascii_uppercase());
        let mut title = m.to_owned();
        title[..1].make_ascii_uppercase();
        months.push(title);
    }
    for other in ["Decision", "Ma", "Mayo", "Septem", "Dece", "Mrn", "Ssn"] {
        months.push(other.to_owned());
    }
    for m in &months {
        for dot in ["", "."] {
            windows.push(format!("{m}{dot} 3, 2006"));
            windows.push(format!("{m}{dot} 31st 2006"));
            windows.push(format!("3 {m}{dot} 2006"));
            windows.push(format!("03-{m}{dot}-2006"));
        }
    }
    for m in ["Dec", "march", "SEPT"] {
        for dot in ["", "."] {
            for gap in [" ", "  ", "\t", "   "] {
                for day in ["3", "03", "31", "32", "123"] {
                    for ordinal in ["", "rd", "TH", "x"] {
                        for comma in ["", ","] {
                            for gap2 in [" ", "  ", ""] {
                                for year in ["2006", "206", "20061"] {
                                    windows.push(format!(
                                        "{m}{dot}{gap}{day}{ordinal}{comma}{gap2}{year}"
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
        for day in ["3", "03", "0", "123"] {
            for ordinal in ["", "nd", "x"] {
                for sep in ["-", " ", "\t", " -", "--", "- -", ""] {
                    for dot in ["", "."] {
                        for sep2 in ["-", " ", ",", ", ", ", ,", ""] {
                            for year in ["2006", "20061"] {
                                windows.push(format!("{day}{ordinal}{sep}{m}{dot}{sep2}{year}"));
                            }
                        }
                    }
                }
            }
        }
    }
    let (found, shortcut) = check_window_shortcut(
        &s,
        &windows,
        &["", ",", ".", ")", ":", "-", "x", ".."],
        &["", "x", "("],
        search::whole_named_date,
    );
    assert!(found > 10_000, "{found} findings");
    assert!(shortcut > 2_000, "{shortcut} shortcuts");
}

#[test]
fn the_month_names_are_the_patterns_alternatives() {
    assert_eq!(patterns::MONTH_NAMES.join("|"), patterns::MONTHS);
    // `is_month_name` holds for each of them and for nothing near one: each with a letter
    // more, a letter less, or one letter changed.
    for m in patterns::MONTH_NAMES {
        let m = m.as_bytes();
        assert!(patterns::is_month_name(m), "{m:?}");
        let mut near = vec![m[..m.len() - 1].to_vec(), [m, b"x"].concat()];
        for i in 0..m.len() {
            let mut changed = m.to_vec();
            changed[i] = if changed[i] == b'z' { b'y' } else { b'z' };
            near.push(changed);
        }
        for n in near {
            let listed = patterns::MONTH_NAMES.iter().any(|x| x.as_bytes() == n);
            assert_eq!(patterns::is_month_name(&n), listed, "{n:?}");
        }
    }
}

/// The cue-window shortcut (`search::whole_cue_window`): the default MRN pattern's cues in
/// every form and near forms, every gap of blanks, `:` and `#` before the digits, six to ten
/// digits and near counts; state codes and near codes before ZIP codes and near ZIP codes;
/// every tail and what may come before. The shortcut must find exactly what a search of the
/// whole text finds.
#[test]
fn a_cue_window_is_found_as_a_search_finds_it() {
    let s = Scanner::default();
    let mut windows = Vec::new();
    let heads = [
        "MRN",
        "mrn",
        "MR#",
        "mr#",
        "Med rec",
        "medical record",
        "Medical Record",
        "med record",
        "medical rec",
        "MED REC",
        "Mrx",
        "med  rec",
        "medrec",
    ];
    let tails = ["", " number", " no", " no.", " num", " nov", " numb"];
    let gaps = [
        "", " ", "  ", "    ", "     ", ":", " :", "#:", "::", ":::", " #: ", "#   ", ": \t ",
        ":    ",
    ];
    for head in heads {
        for tail in tails {
            for gap in gaps {
                for digits in ["12345", "123456", "1234567890", "12345678901", "1234567-8"] {
                    windows.push(format!("{head}{tail}{gap}{digits}"));
                }
            }
        }
    }
    for state in ["MA", "NY", "DC", "XX", "Ma", "NDC", "ME"] {
        for comma in ["", ","] {
            for blank in [" ", "  ", "   ", "\t", ""] {
                for zip in [
                    "02115",
                    "0211",
                    "021155",
                    "02115-1234",
                    "02115-123",
                    "02115-12345",
                    "02115-1234a",
                ] {
                    windows.push(format!("{state}{comma}{blank}{zip}"));
                }
            }
        }
    }
    let (found, shortcut) = check_window_shortcut(
        &s,
        &windows,
        &["", ".", "x", "-"],
        &["", "x"],
        search::whole_cue_window,
    );
    assert!(found > 5_000, "{found} findings");
    assert!(shortcut > 1_000, "{shortcut} shortcuts");
}

/// The fax and SSN arms of the cue-window shortcut (`search::whole_cue_window`): every cue
/// of the two patterns and near cues, every suffix and gap (blanks, `:`, `#`, `=`, `is`,
/// `was`) and too long ones, then every shape of number each pattern takes (and near
/// shapes: a digit too many or too few, a `1` glued to the cue, a wrong separator), with
/// numbers that pass and fail the checks, every tail and what may come before. The shortcut
/// must find exactly what a search of the whole text finds.
#[test]
fn a_fax_or_ssn_cue_window_is_found_as_a_search_finds_it() {
    let s = Scanner::default();
    let mut windows = Vec::new();
    let fax_cues = [
        "fax",
        "Fax",
        "FAX",
        "facsimile",
        "Telefax",
        "faxes",
        "tel",
        "fa",
    ];
    // The suffix is case-sensitive in the pattern (found by the fuzzer: `Fax nO. 1-977-…`
    // is a phone number after a word, not a fax number).
    let fax_suffixes = [
        "", " no", " no.", "no.", " number", " num", " #", "#", " nov", " NO", " nO.", " No.",
        " Number", " NUM",
    ];
    let fax_gaps = [
        "", " ", ":", ": ", " : ", "#", "# ", "  ", "    ", "     ", ":    ", " :\t", "::",
    ];
    let phones = [
        "(617) 555-0142",
        "(617)555-0142",
        "617-555-0142",
        "617.555.0142",
        "617 555 0142",
        "+1 617 555 0142",
        "1-617-555-0142",
        "1 617 555 0142",
        "1617-555-0142",
        "+1-617-555-0142",
        "123-456-7890",
        "(123) 456-7890",
        "617-055-0142",
        "617-555-01423",
        "617-555-014",
        "617--555-0142",
        "617555-0142",
    ];
    for cue in fax_cues {
        for suffix in fax_suffixes {
            for gap in fax_gaps {
                for phone in phones {
                    windows.push(format!("{cue}{suffix}{gap}{phone}"));
                }
            }
        }
    }
    let ssn_cues = [
        "SSN",
        "ssn",
        "SS#",
        "(SSN",
        "Social security number",
        "social sec",
        "Soc Sec",
        "soc. sec",
        "socialsecurity",
        "Social Security No.",
        "social security no",
        "Social security #",
        "social security nbr",
        "social security num",
        "Ssnx",
        "(Social security",
    ];
    let ssn_gaps = [
        "", " ", ":", ": ", " : ", "#", "=", " = ", "::", ":::", " is ", " was ", " IS ",
        " isn't ", "    ", "   :   ",
    ];
    let ssns = [
        "123-45-6789",
        "123 45 6789",
        "123.45.6789",
        "123456789",
        "123-456789",
        "123 456 789",
        "000-12-3456",
        "900-12-3456",
        "1234567890",
        "123-45-67890",
        "12-345-6789",
        "123  45 6789",
    ];
    for cue in ssn_cues {
        for gap in ssn_gaps {
            for ssn in ssns {
                windows.push(format!("{cue}{gap}{ssn}"));
            }
        }
    }
    let (found, shortcut) = check_window_shortcut(
        &s,
        &windows,
        &["", ".", ")", "x", "-"],
        &["", "x"],
        search::whole_cue_window,
    );
    assert!(found > 10_000, "{found} findings");
    assert!(shortcut > 5_000, "{shortcut} shortcuts");
}

/// Month names before digits that cannot end a named date (a cue-led cluster: a phone
/// number, an SSN, an MRN, a ZIP code), alone, inside a word, after or before a cue, and
/// next to digits that can end one: `find` finds what a search of the whole text finds. A
/// cluster that may not end a named date looks back past no month name, but a word that
/// holds a cue as well as a month (`Decfax:`) is still a cue.
#[test]
fn a_month_name_before_other_digits_is_no_cue() {
    let s = Scanner::default();
    let months = [
        "Dec",
        "dec.",
        "March",
        "3rd March",
        "Sept.",
        "14-Nov-",
        "Jun,",
    ];
    let cues = [
        "",
        "fax: ",
        "Decfax: ",
        "faxDec: ",
        "SSN-Jan ",
        "Marssn ",
        "MRN ",
        "mayMRN: ",
        "MA ",
        "zip ",
        "postal code ",
    ];
    let digits = [
        "617-555-0142",
        "(617) 555-0142",
        "123-45-6789",
        "123 45 6789",
        "1234567",
        "02115",
        "02115-1234",
        "3, 2021",
        "12 2021",
        "2021",
        "3/14/2024",
    ];
    let mut texts = 0;
    for month in months {
        for cue in cues {
            for number in digits {
                for text in [
                    format!("{month} {cue}{number}"),
                    format!("{cue}{month} {number}"),
                    format!("on {month}  {cue}{number}."),
                    format!("{month}{cue}{number}"),
                ] {
                    assert_eq!(s.find(&text), s.find_unfiltered(&text), "{text:?}");
                    texts += 1;
                }
            }
        }
    }
    assert_eq!(texts, 7 * 11 * 11 * 4);
}

/// The email shortcut (`search::whole_email`): local parts of every byte the pattern takes
/// and some it does not, some that start with a cue or hold one, domains of one to four
/// labels with top-level domains too short, too long or not letters, every tail and what
/// may come before. The shortcut must find exactly what a search of the whole text finds.
#[test]
fn an_email_window_is_found_as_a_search_finds_it() {
    let s = Scanner::default();
    let locals = [
        "kofi",
        "kofi.sousa",
        "ihopper+portal",
        "wei1961",
        "a%b",
        "x-y",
        "alan_wei46",
        ".x",
        "x.",
        "-x",
        "fax6175550142",
        "Fax",
        "telefax",
        "ssn123456789",
        "soc",
        "mrn1234567",
        "xmrn1234567",
        "Medina",
        "zip02115",
        "postal",
        "3-mar-2021",
        "1-617-555-0142",
        "123-45-6789",
        "www.x",
        "Mary",
        "",
    ];
    let domains = [
        "example.org",
        "mail.example.com",
        "patients.hospital.example.net",
        "example.co.uk",
        "x-y.org",
        "x.c",
        "x.com1",
        "x.abcdefghijklmnopqrstuvwx",
        "x.abcdefghijklmnopqrstuvwxy",
        "x..org",
        "x.org.",
        "-x.org",
        "x.o-g",
        "x.org@y.com",
        "x",
        "10.0.0.1",
        "x_y.org",
    ];
    let mut windows = Vec::new();
    for local in locals {
        for domain in domains {
            windows.push(format!("{local}@{domain}"));
        }
    }
    let (found, shortcut) = check_window_shortcut(
        &s,
        &windows,
        &["", ".", ",", ")", "x", "-", "_"],
        &["", "x", "<"],
        search::whole_email,
    );
    assert!(found > 1_000, "{found} findings");
    assert!(shortcut > 300, "{shortcut} shortcuts");
}

/// The URL shortcut (`search::whole_url`): every scheme in two cases and near schemes, paths
/// of every byte the pattern takes and some it does not, digits and identifiers inside,
/// trailing punctuation the check trims, every tail and what may come before. The shortcut
/// must find exactly what a search of the whole text finds.
#[test]
fn a_url_window_is_found_as_a_search_finds_it() {
    let s = Scanner::default();
    let schemes = [
        "http://", "https://", "HTTPS://", "ftp://", "sftp://", "Sftp://", "www.", "htp://",
        "https:/", "file://", "xhttp://",
    ];
    let paths = [
        "portal.example.org/msg/54073",
        "x.org",
        "x.org/a?b=1&c=2#f",
        "user@x.org/p",
        "x.org/(a)",
        "x.org/a'b",
        "x.org/a\"b",
        "x.org/a<b",
        "x.org/a|b",
        "x.org/123-45-6789",
        "10.0.0.1:8080/x",
        "x.org/é",
        "",
        "x.org/a.)",
        "x.org/a!?",
    ];
    let mut windows = Vec::new();
    for scheme in schemes {
        for path in paths {
            windows.push(format!("{scheme}{path}"));
        }
    }
    let (found, shortcut) = check_window_shortcut(
        &s,
        &windows,
        &["", ".", ",", ")", ":", "x", "\"", "),"],
        &["", "x", "(", "\""],
        search::whole_url,
    );
    assert!(found > 500, "{found} findings");
    assert!(shortcut > 300, "{shortcut} shortcuts");
}

/// The pieces after an SSN cue's first word touching with no blank between
/// (`soc secIs 122 456 789`, found by the fuzzer; `social securitynumber: …`): the look back
/// must read past such a word, so `find` finds what a search of the whole text finds.
#[test]
fn touching_pieces_of_a_cue_are_read_past() {
    let s = Scanner::default();
    let firsts = ["soc", "Social", "SOC"];
    let rests = [
        "secIs",
        "secis",
        "secwas",
        "sec:",
        "securitynumber",
        "securitynumber:",
        "securityno.",
        "securityno.is",
        "sec#",
        "sec#is",
        "secnbr=",
        "secnum::",
        "securityWAS",
        "secx",
        "secisx",
    ];
    let digits = ["122 456 789", "123-45-6789", "123456789", "123.45.6789"];
    let mut found = 0;
    for first in firsts {
        for rest in rests {
            for gap in [" ", "  ", " \t "] {
                for number in digits {
                    let text = format!("x {first} {rest}{gap}{number} y");
                    let f = s.find(&text);
                    assert_eq!(f, s.find_unfiltered(&text), "{text:?}");
                    found += f.len();
                }
            }
        }
    }
    assert!(found > 300, "{found} findings");
    let fuzzed = "005\0a.al secuh 3rd, 2025\0 3 Mar 9 soc secIs  122 456 789\n";
    assert_eq!(s.find(fuzzed), s.find_unfiltered(fuzzed));
    assert_eq!(s.find(fuzzed).len(), 1);
}

#[test]
fn prescan_agrees_with_a_plain_reading_whatever_the_length_and_position() {
    let w_dot = |b: &[u8]| b.windows(2).any(|p| (p[0] | 0x20) == b'w' && p[1] == b'.');
    // Lengths around the 32-byte chunks; at each position in turn one byte at or above
    // 0x80, a `w.`, a `W.`, or a near miss (`x.`, `w,`, `.w`, `V.`).
    for len in 0..100 {
        let plain = vec![b'a'; len];
        let p = normalize::prescan(&plain);
        assert!(p.ascii && !p.w_dot, "{len} plain bytes");
        for at in 0..len {
            let mut high = plain.clone();
            high[at] = 0x80 | (at as u8);
            assert!(
                !normalize::prescan(&high).ascii,
                "a byte >= 0x80 at {at} of {len}"
            );
            for pair in [b"w.", b"W.", b"x.", b"w,", b".w", b"V."] {
                let mut bytes = plain.clone();
                for (i, &b) in pair.iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(at + i) {
                        *slot = b;
                    }
                }
                let p = normalize::prescan(&bytes);
                assert!(p.ascii, "{bytes:?}");
                assert_eq!(p.w_dot, w_dot(&bytes), "{bytes:?}");
            }
        }
    }
}
