//! `CheckpointVerifier::verify_line` on fuzzed lines and on signed lines the fuzzer edits.
//!
//! Input: a mode byte, then bytes. Mode even: the bytes are one checkpoint line, verified
//! with an HMAC and an Ed25519 key. Mode odd: the first bytes choose log, seq, head and time,
//! a line is signed with one of the keys, then the rest of the input edits it (XOR at chosen
//! positions, a cut, an insertion).
//!
//! Properties:
//! * never a panic;
//! * an edited signed line passes only if the signed part is byte for byte what was signed
//!   (nothing but the exact signed statement verifies, however it was edited), with a
//!   signature of the full length;
//! * the statement of an accepted line, signed again, reads back equal;
//! * `count` is `seq + 1`, and sign → verify returns the statement signed;
//! * an error for a line signed with another key is `WrongKey`, never a pass.

use std::sync::LazyLock;

use guardrail_audit::{CheckpointError, CheckpointSigner, CheckpointVerifier, Digest, Timestamp};

struct Keys {
    hmac: CheckpointSigner,
    ed: CheckpointSigner,
    hmac_v: CheckpointVerifier,
    ed_v: CheckpointVerifier,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    // The keys of the seeds in fuzz/seeds/checkpoint (written by tests/parsers_prop.rs's
    // `write_seeds` helper with the same keys).
    let hmac = CheckpointSigner::hmac_sha256(b"checkpoint fuzz key, 32 bytes!!!")
        .expect("a 32-byte HMAC key");
    let ed = CheckpointSigner::ed25519_from_seed(&[9u8; 32]);
    Keys {
        hmac_v: hmac.verifier(),
        ed_v: ed.verifier(),
        hmac,
        ed,
    }
});

const SIG_MEMBER: &[u8] = b",\"sig\":\"";

fn body(line: &[u8]) -> &[u8] {
    let at = line
        .windows(SIG_MEMBER.len())
        .rposition(|w| w == SIG_MEMBER)
        .unwrap_or(line.len());
    &line[..at]
}

/// Verifies `line`; `signed` is the line as the key signed it, when known (an edited line):
/// then only a line with that exact body may pass.
fn check(
    line: &[u8],
    signer: &CheckpointSigner,
    verifier: &CheckpointVerifier,
    signed: Option<&[u8]>,
) {
    match verifier.verify_line(line) {
        Ok(cp) => {
            assert_eq!(Some(cp.count), cp.seq.checked_add(1));
            assert_eq!(cp.key, verifier.key_id());
            let resigned = signer.sign(&cp.log, cp.seq, cp.head, cp.time);
            if let Some(signed) = signed {
                assert_eq!(
                    body(line),
                    body(signed),
                    "accepted a line that is not the signed statement"
                );
            }
            assert_eq!(
                verifier.verify_line(resigned.as_bytes()).as_ref(),
                Ok(&cp),
                "the statement re-signed reads back differently"
            );
            let sig_len = line.len() - body(line).len() - SIG_MEMBER.len() - 2;
            assert_eq!(
                sig_len,
                body(resigned.as_bytes()).len().abs_diff(resigned.len()) - SIG_MEMBER.len() - 2,
                "accepted a signature of another length"
            );
        }
        Err(CheckpointError::WrongKey {
            found, found_alg, ..
        }) => {
            assert!(
                found != verifier.key_id() || found_alg != verifier.algorithm().as_str(),
                "WrongKey for the verifier's own key"
            );
        }
        Err(_) => {}
    }
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut x = [0u8; 8];
    for (j, o) in x.iter_mut().enumerate() {
        *o = b.get(i + j).copied().unwrap_or(0);
    }
    u64::from_le_bytes(x)
}

/// Runs the properties on one input; panics when one fails.
pub fn check_input(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let k = &*KEYS;
    if mode & 1 == 0 {
        check(rest, &k.hmac, &k.hmac_v, None);
        check(rest, &k.ed, &k.ed_v, None);
        return;
    }
    // Signed statement from the first 24 bytes: seq, time, head byte and log length.
    let seq = u64_at(rest, 0) >> (mode >> 2 & 63);
    let time = Timestamp(u64_at(rest, 8));
    let head = Digest([rest.get(16).copied().unwrap_or(0); 32]);
    let log_len = usize::from(rest.get(17).copied().unwrap_or(0) % 24);
    let tail = rest.get(18..).unwrap_or(&[]);
    let log = String::from_utf8_lossy(&tail[..log_len.min(tail.len())]).into_owned();
    let edits = &tail[log_len.min(tail.len())..];
    let (signer, verifier, other_signer, other) = if mode & 2 == 0 {
        (&k.hmac, &k.hmac_v, &k.ed, &k.ed_v)
    } else {
        (&k.ed, &k.ed_v, &k.hmac, &k.hmac_v)
    };
    let line = signer.sign(&log, seq, head, time);
    if seq == u64::MAX {
        // `count` would be 2^64: no such checkpoint verifies.
        assert!(verifier.verify_line(line.as_bytes()).is_err());
        return;
    }
    let cp = verifier
        .verify_line(line.as_bytes())
        .expect("a signed line verifies");
    assert_eq!(
        (cp.log.as_str(), cp.seq, cp.count, cp.head, cp.time),
        (log.as_str(), seq, seq + 1, head, time),
        "sign then verify changed the statement"
    );
    assert!(
        matches!(
            other.verify_line(line.as_bytes()),
            Err(CheckpointError::WrongKey { .. })
        ),
        "a line signed with another key must be refused as such"
    );
    // Edits: pairs (position, xor); a position byte 0xff cuts the line instead, 0xfe states
    // another seq (with the right count: a well-formed forgery), 0xfd changes one hex digit
    // of the signature to another hex digit.
    let mut edited = line.clone().into_bytes();
    for pair in edits.chunks(2).take(8) {
        let at = usize::from(pair[0]) * edited.len().max(1) / 256;
        match pair {
            [0xff, n] => edited.truncate(edited.len().saturating_sub(usize::from(*n))),
            [0xfe, x] => {
                let other = seq ^ u64::from(*x).max(1);
                if other < u64::MAX {
                    let text = String::from_utf8_lossy(&edited).replacen(
                        &format!("\"seq\":{seq},\"count\":{}", seq + 1),
                        &format!("\"seq\":{other},\"count\":{}", other + 1),
                        1,
                    );
                    edited = text.into_bytes();
                }
            }
            [0xfd, x] => {
                let sig_at = edited.len().saturating_sub(3 + usize::from(*x) % 64);
                if let Some(b) = edited.get_mut(sig_at) {
                    if b.is_ascii_hexdigit() {
                        *b = if *b == b'0' { b'1' } else { b'0' };
                    }
                }
            }
            [_, x] if at < edited.len() => edited[at] ^= x,
            [_, x] => edited.push(*x),
            _ => edited.insert(at.min(edited.len()), pair[0]),
        }
    }
    check(&edited, signer, verifier, Some(line.as_bytes()));
    check(&edited, other_signer, other, None);
}
