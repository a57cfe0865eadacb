//! The chain verifier on a sealed chain that the fuzzer then edits.
//!
//! Input: one control byte, then lines. Lines that parse as a `Record` are sealed into a chain
//! from genesis (the fuzzer cannot compute SHA-256, so without sealing it would never get past
//! the first hash); other lines stay raw. The control byte and the raw lines then drive edits
//! of the sealed lines: flip a byte, delete, duplicate, swap, insert a raw line, cut the tail,
//! renumber a line and recompute its hash.
//!
//! Properties:
//! * the verifier stops exactly at the first line that differs from the sealed chain (and
//!   names that line), and accepts the edited chain iff it is a prefix of the sealed one;
//! * `verify_lines` over the joined text and the streaming `Verifier` agree;
//! * every accepted line parses back to the event that was sealed.

use super::{Item, chain_from, expected_hash, written_hash};
use guardrail_audit::{AuditEvent, BreakKind, Chain, Verifier, verify_lines};

/// Runs the properties on one input; panics when one fails.
pub fn check_input(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let items = chain_from(rest, "token", 64);
    let sealed: Vec<AuditEvent> = items
        .iter()
        .filter_map(|i| match i {
            Item::Sealed(e) => Some((**e).clone()),
            Item::Raw(_) => None,
        })
        .collect();
    let raws: Vec<&[u8]> = items
        .iter()
        .filter_map(|i| match i {
            Item::Raw(b) => Some(b.as_slice()),
            Item::Sealed(_) => None,
        })
        .collect();
    let original: Vec<Vec<u8>> = sealed
        .iter()
        .map(|e| e.line().as_bytes().to_vec())
        .collect();
    let mut lines = original.clone();
    // Edits: two bits of the control byte choose the first, the raw lines' first bytes the
    // place and kind of each later one.
    let n = lines.len().max(1);
    let renumbered = std::cell::RefCell::new(Vec::<(Vec<u8>, usize)>::new());
    let edit = |op: u8, at: usize, lines: &mut Vec<Vec<u8>>, raw: &[u8]| {
        let at = at % n;
        match op % 7 {
            0 => {
                if let Some(l) = lines.get_mut(at) {
                    if !l.is_empty() {
                        let i = usize::from(raw.first().copied().unwrap_or(0)) * 7 % l.len();
                        l[i] ^= raw.get(1).copied().unwrap_or(1).max(1);
                        if l[i] == b'\n' {
                            l[i] = b' ';
                        }
                    }
                }
            }
            1 => {
                if at < lines.len() {
                    lines.remove(at);
                }
            }
            2 => {
                if let Some(l) = lines.get(at).cloned() {
                    lines.insert(at, l);
                }
            }
            3 => {
                if at + 1 < lines.len() {
                    lines.swap(at, at + 1);
                }
            }
            4 => {
                // A raw line that is an event of its own (its hash right) would be a valid
                // chain start, not an edit of this one: only lines with a wrong hash go in.
                if expected_hash(raw).as_deref().map(str::as_bytes) != written_hash(raw) {
                    lines.insert(at.min(lines.len()), raw.to_vec());
                }
            }
            5 => lines.truncate(at),
            _ => {
                // Renumbered by someone who recomputes the hash: the link is right, the hash
                // is right, only `seq` tells.
                if let (Some(e), true) = (sealed.get(at), at < lines.len()) {
                    let step = u64::from(raw.first().copied().unwrap_or(1)).max(1);
                    if let Ok(r) = AuditEvent::seal(e.seq + step, e.prev, e.record.clone()) {
                        let line = r.line().as_bytes().to_vec();
                        renumbered.borrow_mut().push((line.clone(), at));
                        lines[at] = line;
                    }
                }
            }
        }
    };
    edit(control & 7, usize::from(control >> 3), &mut lines, &[]);
    for raw in &raws {
        let (op, at) = match raw {
            [a, b, ..] => (*a, usize::from(*b)),
            [a] => (*a, 0),
            [] => (0, 0),
        };
        edit(op, at, &mut lines, raw);
    }

    // Where the edited chain first differs from the sealed one.
    let first_diff = lines
        .iter()
        .zip(&original)
        .position(|(a, b)| a != b)
        .or((lines.len() > original.len()).then_some(original.len()));

    let mut v = Verifier::new(Chain::new());
    let mut streaming = Ok(());
    for (i, l) in lines.iter().enumerate() {
        if let Err(e) = v.push_line(i + 1, l) {
            streaming = Err(e);
            break;
        }
        let text = std::str::from_utf8(l).expect("an accepted line is a sealed line");
        let parsed = AuditEvent::parse(text).expect("an accepted line parses");
        assert_eq!(
            parsed,
            sealed[i],
            "accepted line {} is not the sealed event",
            i + 1
        );
    }
    match (first_diff, &streaming) {
        (None, Ok(())) => {
            assert_eq!(v.report().events, lines.len() as u64);
            if let Some(last) = lines.len().checked_sub(1) {
                assert_eq!(v.head(), sealed[last].hash);
            }
        }
        (Some(k), Err(e)) => {
            assert_eq!(e.line, k + 1, "stopped at the wrong line: {e:?}");
            // A changed line breaks its hash or the layout; a moved sound line breaks the
            // sequence or the link.
            let moved = original.iter().any(|o| *o == lines[k]);
            let renumbered_at = renumbered
                .borrow()
                .iter()
                .find(|(l, _)| *l == lines[k])
                .map(|&(_, at)| at);
            let renumbered = renumbered_at.is_some();
            // In its own place, its link is right: only the sequence number can tell.
            if renumbered_at == Some(k) && !moved {
                assert_eq!(
                    e.kind,
                    BreakKind::SequenceGap { expected: k as u64 },
                    "a renumbered line with its hash recomputed"
                );
            }
            match e.kind {
                BreakKind::Malformed | BreakKind::HashMismatch => assert!(!moved, "{e:?}"),
                BreakKind::SequenceGap { expected } => {
                    assert!(moved || renumbered, "{e:?}");
                    assert_eq!(expected, k as u64);
                }
                BreakKind::BrokenLink => assert!(moved || renumbered, "{e:?}"),
                other => panic!("unknown break kind {other:?}"),
            }
        }
        (None, Err(e)) => panic!("rejected an unedited prefix: {e:?}"),
        (Some(k), Ok(())) => panic!("accepted an edited chain (line {} differs)", k + 1),
    }

    let mut text = Vec::new();
    for l in &lines {
        text.extend_from_slice(l);
        text.push(b'\n');
    }
    if let Ok(text) = std::str::from_utf8(&text) {
        let joined = verify_lines(text);
        match (&joined, &streaming) {
            (Ok(r), Ok(())) => assert_eq!(*r, v.report()),
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("verify_lines {joined:?} but streaming {streaming:?}"),
        }
    }
}
