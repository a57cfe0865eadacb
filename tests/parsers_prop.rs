//! The fuzz targets' invariants as proptest properties of the normal suite: event lines,
//! chain verification, checkpoints, the manifest and the CLI's trail reading.
//!
//! The checks are not copied: `fuzz/src/lib.rs` (the code every audit fuzz target runs) is
//! included here with `#[path]`, and each property feeds it inputs built from generated
//! records, keys and edits, the shapes a byte-level fuzzer reaches only slowly. The seed
//! corpora in `fuzz/seeds/` run through the same checks, so a seed that stops exercising its
//! target (a record format change, a new key) fails here. `docs/fuzzing.md` has the fuzzing
//! figures.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use guardrail_audit::{
    AuditEvent, BreakKind, Chain, CheckpointError, CheckpointSigner, CheckpointVerifier, Digest,
    EventKind, Manifest, ManifestEntry, Outcome, Record, Text, Timestamp, Verifier, verify_lines,
};
use proptest::prelude::*;

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)] // the fuzzers' entry points and helpers only some targets use
mod fuzz_checks;

use fuzz_checks::{checkpoint, event_line, manifest, trail, verify_chain};

const KINDS: [EventKind; 11] = [
    EventKind::Decision,
    EventKind::Outcome,
    EventKind::Recovered,
    EventKind::PolicyReload,
    EventKind::ApprovalRequested,
    EventKind::ApprovalGranted,
    EventKind::ApprovalRejected,
    EventKind::ApprovalConsumed,
    EventKind::Alert,
    EventKind::Rotated,
    EventKind::UnguardedAccess,
];

const OUTCOMES: [Outcome; 4] = [
    Outcome::Ok,
    Outcome::Error,
    Outcome::Panic,
    Outcome::Cancelled,
];

/// Any text, control characters, quotes, backslashes and non-ASCII included.
fn any_text() -> impl Strategy<Value = Option<Text>> {
    prop::option::of("(?s).{0,12}".prop_map(Text::from))
}

/// Text from a few values, so that request ids and actions meet again.
fn one_of(values: &'static [&'static str]) -> impl Strategy<Value = Option<Text>> {
    prop::option::of(prop::sample::select(values).prop_map(Text::from))
}

/// Records of every kind with every field, subjects often the fuzzing patient (`$P`).
fn record() -> impl Strategy<Value = Record> {
    let call = (
        prop::sample::select(&KINDS[..]),
        any::<u64>(),
        one_of(&["req-1", "req-2"]),
        one_of(&["clinic::read_chart", "clinic::export"]),
        one_of(&["read", "export", "disclose", "update"]),
        one_of(&["$P", "other-token"]),
        prop::collection::vec(
            prop::sample::select(&["$P", "x", "y"][..]).prop_map(Text::from),
            0..3,
        ),
        one_of(&["allow", "deny", "break_glass", "approval_required"]),
        prop::option::of(prop::sample::select(&OUTCOMES[..])),
        prop::option::of(0u64..8),
    );
    let rest = (
        any_text(),
        any_text(),
        prop::collection::vec("(?s).{0,6}".prop_map(Text::from), 0..3),
        any_text(),
        any_text(),
        prop::option::of(any::<u64>()),
        any::<bool>(),
        prop::collection::btree_map("(?s).{0,6}", "(?s).{0,6}", 0..3),
    );
    (call, rest).prop_map(
        |(
            (kind, time, req, action, action_kind, subject, subjects, decision, outcome, dseq),
            (principal, purpose, roles, reason, via, count, break_glass, detail),
        )| {
            let mut r = Record::at(kind, Timestamp(time));
            r.request_id = req;
            r.action = action;
            r.action_kind = action_kind;
            r.subject = subject;
            r.subjects = Arc::from(subjects);
            r.decision = decision;
            r.outcome = outcome;
            r.decision_seq = dseq;
            r.principal = principal;
            r.purpose = purpose;
            r.roles = Arc::from(roles);
            r.reason = reason;
            r.via = via;
            r.count = count;
            r.break_glass = break_glass;
            r.detail = detail;
            r
        },
    )
}

fn json_line(r: &Record) -> String {
    serde_json::to_string(r).expect("a record serializes")
}

fn digest() -> impl Strategy<Value = Digest> {
    any::<[u8; 32]>().prop_map(Digest)
}

/// (position, byte) edits of a line.
fn edits() -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec((any::<usize>(), 1u8..=255), 0..4)
}

fn apply(line: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut out = line.to_vec();
    for &(at, x) in edits {
        if out.is_empty() {
            break;
        }
        let at = at % out.len();
        out[at] ^= x;
    }
    out
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.expect("a directory entry").path();
            let bytes = std::fs::read(&path).expect("a readable seed");
            (path, bytes)
        })
        .collect();
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A sealed line parses back to its content, re-seals to itself and verifies where it
    /// belongs; every edit of it is refused (or, if the edit keeps it an event, named at the
    /// line); the fuzz target's checks hold for the line and the edited line.
    #[test]
    fn event_lines_round_trip_and_edits_are_refused(
        r in record(),
        seq in 0..u64::MAX,
        prev in digest(),
        e in edits(),
    ) {
        let event = AuditEvent::seal(seq, prev, r.clone()).expect("a record seals");
        let parsed = AuditEvent::parse(event.line()).expect("a sealed line parses");
        prop_assert_eq!(&parsed, &event);
        prop_assert_eq!(&parsed.record, &r);
        event_line::check_input(event.line().as_bytes());
        let edited = apply(event.line().as_bytes(), &e);
        event_line::check_input(&edited);
        let start = Chain { next_seq: seq, head: prev };
        let verdict = Verifier::new(start).push_line(3, &edited);
        if edited == event.line().as_bytes() {
            prop_assert_eq!(verdict, Ok(()));
        } else {
            let err = verdict.expect_err("an edited line verified");
            prop_assert_eq!(err.line, 3);
        }
    }

    /// Edits of a sealed chain (flip, delete, duplicate, swap, insert, cut) are found exactly
    /// at the first line that differs; `verify_lines` and the streaming verifier agree.
    #[test]
    fn chain_edits_are_found_at_the_first_changed_line(
        records in prop::collection::vec(record(), 0..10),
        control in any::<u8>(),
        raw in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..6), 0..3),
    ) {
        let mut input = vec![control];
        for r in &records {
            input.extend_from_slice(json_line(r).as_bytes());
            input.push(b'\n');
        }
        for line in &raw {
            // Raw lines (edit commands) must not parse as records or hold a newline.
            let line: Vec<u8> = line.iter().map(|&b| if b == b'\n' { b'#' } else { b }).collect();
            input.extend_from_slice(&line);
            input.push(b'\n');
        }
        verify_chain::check_input(&input);
    }

    /// A signed checkpoint verifies to what was signed and nothing else: edits pass only if
    /// they keep the signed bytes, another key is named as such, seq u64::MAX never verifies.
    #[test]
    fn checkpoints_verify_only_what_was_signed(
        ed in any::<bool>(),
        shift in 0u8..64,
        seq in any::<u64>(),
        time in any::<u64>(),
        head in any::<u8>(),
        log in "(?s).{0,8}",
        edits in prop::collection::vec(any::<u8>(), 0..16),
        raw in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let log = log.as_bytes();
        let log = &log[..log.len().min(23)];
        let mut input = vec![1 | (u8::from(ed) << 1) | (shift << 2)];
        input.extend_from_slice(&seq.to_le_bytes());
        input.extend_from_slice(&time.to_le_bytes());
        input.push(head);
        input.push(log.len() as u8);
        input.extend_from_slice(log);
        input.extend_from_slice(&edits);
        checkpoint::check_input(&input);
        let mut unsigned = vec![0];
        unsigned.extend_from_slice(&raw);
        checkpoint::check_input(&unsigned);

        // Forgeries that stay well-formed: another seq (count kept right), head, log, or
        // one hex digit of the signature. Each must fail the signature, never pass.
        let signer = if ed {
            CheckpointSigner::ed25519_from_seed(&[head; 32])
        } else {
            CheckpointSigner::hmac_sha256(&[head; 16]).expect("a 16-byte key")
        };
        let seq = seq >> shift;
        prop_assume!(seq < u64::MAX - 1);
        let log = String::from_utf8_lossy(log).into_owned();
        let line = signer.sign(&log, seq, Digest([head; 32]), Timestamp(time));
        let v = signer.verifier();
        let cp = v.verify_line(line.as_bytes());
        prop_assert!(
            matches!(&cp, Ok(c) if c.seq == seq && c.count == seq + 1 && c.log == log && c.head == Digest([head; 32])),
            "{cp:?}"
        );
        let body_end = line.rfind(",\"sig\":\"").expect("a sig member");
        let (body, sig) = line.split_at(body_end);
        let forged_seq = body.replacen(
            &format!("\"seq\":{seq},\"count\":{}", seq + 1),
            &format!("\"seq\":{},\"count\":{}", seq + 1, seq + 2),
            1,
        );
        let forged_head = body.replacen(
            &Digest([head; 32]).to_hex(),
            &Digest([head ^ 1; 32]).to_hex(),
            1,
        );
        let forged_log = body.replacen(
            &format!("\"log\":{}", serde_json::to_string(&log).expect("a string serializes")),
            &format!(
                "\"log\":{}",
                serde_json::to_string(&format!("{log}x")).expect("a string serializes")
            ),
            1,
        );
        let mut sig = sig.to_owned();
        let at = sig.len() - 3;
        let digit = if &sig[at..=at] == "0" { "1" } else { "0" };
        sig.replace_range(at..=at, digit);
        for forged in [
            format!("{forged_seq}{}", &line[body_end..]),
            format!("{forged_head}{}", &line[body_end..]),
            format!("{forged_log}{}", &line[body_end..]),
            format!("{body}{sig}"),
        ] {
            prop_assert_ne!(&forged, &line);
            prop_assert_eq!(
                v.verify_line(forged.as_bytes()),
                Err(CheckpointError::BadSignature),
                "{}", forged
            );
        }
    }

    /// A manifest round-trips through its text; any edit of the text either parses to a
    /// manifest that keeps the invariants or is refused naming a line of the text.
    #[test]
    fn manifests_round_trip_and_errors_name_a_line(
        log in "(?s).{0,10}",
        files in prop::collection::vec(("[a-z0-9.-]{1,12}", 0u64..1000, digest()), 1..5),
        e in edits(),
        cut in any::<usize>(),
        hostile in prop::sample::select(&["../x", "a/b", "a\\b", ".hidden", "", "/abs", ".."][..]),
        victim in any::<usize>(),
    ) {
        let mut seq = 0;
        let files: Vec<ManifestEntry> = files
            .into_iter()
            .filter(|(name, _, _)| !name.starts_with('.'))
            .map(|(file, step, prev)| {
                seq += step;
                ManifestEntry { file, first_seq: seq, prev }
            })
            .collect();
        prop_assume!(!files.is_empty());
        let m = Manifest { log, files };
        let text = m.to_text();
        prop_assert_eq!(Manifest::parse(text.as_bytes()), Ok(m.clone()));
        manifest::check_input(text.as_bytes());
        let edited = apply(text.as_bytes(), &e);
        manifest::check_input(&edited);
        manifest::check_input(&edited[..cut % (edited.len() + 1)]);

        // A name that leaves the trail directory (or hides in it) is refused at its line.
        let mut bad = m.clone();
        let i = victim % bad.files.len();
        bad.files[i].file = hostile.to_owned();
        let err = Manifest::parse(bad.to_text().as_bytes()).expect_err("a hostile name parsed");
        prop_assert_eq!(err.line, i + 2, "{}", err);
    }
}

proptest! {
    // Each case writes and reads a small trail directory: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A trail written in files (rotation, checkpoints, one edit) verifies and reads back
    /// exactly as the model of the trail fuzz target says: sound trails read back their
    /// events and accounting, every detectable edit is named at its first affected seq.
    #[test]
    fn trails_verify_and_read_back_as_modelled(
        flags in any::<u8>(),
        pick in any::<u8>(),
        c2 in any::<u8>(),
        files in prop::collection::vec(prop::collection::vec(record(), 0..5), 1..4),
    ) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut input = vec![flags & !1, pick, c2];
        let texts: Vec<String> = files
            .iter()
            .map(|f| f.iter().map(json_line).collect::<Vec<_>>().join("\n"))
            .collect();
        input.extend_from_slice(texts.join("\n---\n").as_bytes());
        trail::check_in(&input, dir.path());
    }
}

/// The case the trail property found: the only event removed from the first of two files,
/// the files named one by one (no manifest) and the second one empty. Nothing is left that
/// shows the gap, so the trail is sound as read (what the model now says).
#[test]
fn an_event_removed_before_only_empty_files_named_one_by_one_is_invisible() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let record = Record::at(EventKind::Decision, Timestamp(0));
    // flags 80: the manifest generated, no checkpoints, edit 2 (remove), files by name.
    let mut input = vec![80, 11, 0];
    input.extend_from_slice(format!("{}\n---\n", json_line(&record)).as_bytes());
    trail::check_in(&input, dir.path());
}

/// Every edit of the trail model at every event, with and without checkpoints (at the last
/// event or not), through the manifest and through the file list: the cases a random
/// sample of flags reaches only now and then (a removed last event under a checkpoint,
/// a rewrite a checkpoint covers).
#[test]
fn every_trail_edit_at_every_event_is_found_or_provably_invisible() {
    let key_token = "$P";
    let mut lines = Vec::new();
    for i in 0..7u64 {
        let mut r = Record::at(
            if i % 2 == 0 {
                EventKind::Decision
            } else {
                EventKind::Outcome
            },
            Timestamp(1_000 + i),
        );
        r.request_id = Some(format!("req-{}", i / 2).into());
        r.action = Some("clinic::read_chart".into());
        r.action_kind = Some("read".into());
        r.subject = Some(key_token.into());
        r.decision = (i % 2 == 0).then(|| "allow".into());
        r.outcome = (i % 2 == 1).then_some(Outcome::Ok);
        lines.push(json_line(&r));
    }
    // Three files (3, 0 and 4 events): rotation and an empty file.
    let text = format!(
        "{}\n---\n---\n{}",
        lines[..3].join("\n"),
        lines[3..].join("\n")
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    for op in 0..8u8 {
        for pick in 0..7u8 {
            for extra in [0u8, 2, 2 | 4, 64 | 2 | 4] {
                for c2 in [0u8, 2, 130] {
                    let mut input = vec![(op << 3) | extra, pick, c2];
                    input.extend_from_slice(text.as_bytes());
                    trail::check_in(&input, dir.path());
                }
            }
        }
    }
}

/// `seq` u64::MAX is refused everywhere: no event could follow it, and the verifier and the
/// chain compute `seq + 1`. (Before, a line with that seq parsed, verified from a chain
/// positioned there and overflowed `seq + 1`; a checkpoint at that seq verified with
/// `count` saturated at u64::MAX.)
#[test]
fn seq_u64_max_is_refused() {
    let r = Record::at(EventKind::Decision, Timestamp(0));
    assert!(AuditEvent::seal(u64::MAX, Digest([1; 32]), r.clone()).is_err());
    // The line a writer at u64::MAX would write, with its hash right.
    let last = AuditEvent::seal(u64::MAX - 1, Digest([1; 32]), r).expect("seq MAX-1 seals");
    let forged = last.line().replacen(
        &format!("\"seq\":{}", u64::MAX - 1),
        &format!("\"seq\":{}", u64::MAX),
        1,
    );
    let forged = fuzz_checks::with_fixed_hash(forged.as_bytes()).expect("a hash suffix");
    assert!(AuditEvent::parse(std::str::from_utf8(&forged).expect("UTF-8")).is_err());
    let mut v = Verifier::new(Chain {
        next_seq: u64::MAX,
        head: Digest([1; 32]),
    });
    let err = v.push_line(1, &forged).expect_err("seq MAX verified");
    assert_eq!(err.kind, BreakKind::Malformed);
    event_line::check_input(&forged);

    let signer = CheckpointSigner::hmac_sha256(b"sixteen or more bytes").expect("a key");
    let line = signer.sign("log", u64::MAX, Digest([2; 32]), Timestamp(0));
    assert!(signer.verifier().verify_line(line.as_bytes()).is_err());
    let line = signer.sign("log", u64::MAX - 1, Digest([2; 32]), Timestamp(0));
    let cp = signer
        .verifier()
        .verify_line(line.as_bytes())
        .expect("seq MAX-1 verifies");
    assert_eq!(cp.count, u64::MAX);
}

/// Every seed of the audit fuzz targets passes its target's checks, and the seeds that are
/// meant to be sound are: the event-line seeds `seq0..seq7` form a chain from genesis, the
/// HMAC checkpoint seed verifies with the checkpoint target's key.
#[test]
fn fuzz_seeds_pass_their_targets_and_sound_seeds_are_sound() {
    for (path, bytes) in seeds("event_line") {
        println!("{}", path.display());
        event_line::check_input(&bytes);
    }
    let mut chain = String::new();
    for i in 0..8 {
        let (_, bytes) = seeds("event_line")
            .into_iter()
            .find(|(p, _)| p.file_name().and_then(|n| n.to_str()) == Some(&format!("seq{i}")))
            .expect("seed seq{i}");
        chain.push_str(std::str::from_utf8(&bytes).expect("UTF-8"));
        chain.push('\n');
    }
    assert_eq!(verify_lines(&chain).expect("the seeds chain").events, 8);
    for (_, bytes) in seeds("verify_chain") {
        verify_chain::check_input(&bytes);
    }
    let verifier = CheckpointVerifier::hmac_sha256(b"checkpoint fuzz key, 32 bytes!!!")
        .expect("the target's key");
    for (path, bytes) in seeds("checkpoint") {
        checkpoint::check_input(&bytes);
        if path.ends_with("hmac_line") {
            let cp = verifier
                .verify_line(&bytes[1..])
                .expect("the HMAC seed verifies");
            assert_eq!((cp.seq, cp.count), (41, 42));
        }
    }
    for (_, bytes) in seeds("manifest") {
        manifest::check_input(&bytes);
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (path, bytes) in seeds("trail") {
        println!("{}", path.display());
        trail::check_in(&bytes, dir.path());
    }
}
