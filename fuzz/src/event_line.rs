//! One trail line through `AuditEvent::parse` and `Verifier::push_line`, as written and with
//! its hash recomputed (so the fuzzer reaches the record parser behind the hash check).
//!
//! Properties:
//! * never a panic;
//! * a verifier error names the line number it was given;
//! * the verifier accepts a line only if its written hash is the SHA-256 recomputed here, its
//!   `seq` is 0 and its `prev` genesis;
//! * a line that parses keeps its exact bytes, and re-sealing its content gives a canonical
//!   line that parses back to the same seq, prev and record, verifies, and re-seals to itself;
//! * a line the event parser accepts is never "malformed" to the verifier (they agree on the
//!   fixed layout).

use super::{expected_hash, with_fixed_hash, written_hash};
use guardrail_audit::{AuditEvent, BreakKind, Chain, Verifier};

const LINE_NO: usize = 7;

fn check(line: &[u8]) {
    let verdict = Verifier::new(Chain::new()).push_line(LINE_NO, line);
    match &verdict {
        Err(e) => assert_eq!(e.line, LINE_NO, "{e:?}"),
        Ok(()) => {
            let want = expected_hash(line).expect("an accepted line has a hash suffix");
            assert_eq!(
                written_hash(line),
                Some(want.as_bytes()),
                "accepted a line whose hash does not match"
            );
            assert!(line.starts_with(b"{\"seq\":0,\"prev\":\"0000000000000000"));
        }
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return;
    };
    let Ok(event) = AuditEvent::parse(text) else {
        return;
    };
    assert_eq!(event.line(), text, "parse must keep the exact bytes");
    if let Err(e) = &verdict {
        assert_ne!(e.kind, BreakKind::Malformed, "parsed but malformed: {e:?}");
    }
    let sealed = AuditEvent::seal(event.seq, event.prev, event.record.clone())
        .expect("a parsed record seals");
    let again = AuditEvent::parse(sealed.line()).expect("a sealed line parses");
    assert_eq!(
        (again.seq, again.prev, &again.record),
        (event.seq, event.prev, &event.record),
        "re-sealed line parses to other content"
    );
    assert_eq!(again.hash, sealed.hash);
    let mut v = Verifier::new(Chain {
        next_seq: event.seq,
        head: event.prev,
    });
    v.push_line(1, sealed.line().as_bytes())
        .expect("a sealed line verifies where it belongs");
    let twice = AuditEvent::seal(again.seq, again.prev, again.record.clone())
        .expect("a parsed record seals");
    assert_eq!(twice.line(), sealed.line(), "sealing is not canonical");
}

/// Runs the properties on one input; panics when one fails.
pub fn check_input(data: &[u8]) {
    check(data);
    if let Some(fixed) = with_fixed_hash(data) {
        let e = Verifier::new(Chain::new()).push_line(LINE_NO, &fixed);
        if let Err(e) = e {
            assert_ne!(e.kind, BreakKind::HashMismatch, "right hash rejected");
        }
        check(&fixed);
    }
}
