//! The `guardrail` binary, run as an auditor runs it: exit codes, messages naming the first
//! bad event, disclosures and FHIR export from real trail files.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use guardrail_audit::{
    AuditKey, AuditSink, Chain, EventKind, FileSink, FileSinkOptions, Outcome, Record, Timestamp,
};
use guardrail_audit::{CheckpointOptions, CheckpointSigner};
use serde_json::Value;

const KEY_HEX: &str = "6b6579206f6620746865206175646974207472616966206f662074686520636c696e6963";
const PATIENTS: [&str; 3] = ["mrn-100200", "mrn-300400", "mrn-500600"];
/// 2026-11-01T00:00:00Z
const T0: u64 = 1_793_491_200;

fn guardrail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(args)
        .output()
        .unwrap()
}

fn key() -> AuditKey {
    AuditKey::from_bytes(&hex_decode(KEY_HEX)).unwrap()
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A decision (and for allowed calls an outcome) per step: patient i % 3, one hour apart;
/// kinds cycle through read, update, export, disclose.
fn records(n: usize) -> Vec<Record> {
    let key = key();
    let kinds = ["read", "update", "export", "disclose"];
    let mut out = Vec::new();
    for i in 0..n {
        let t = Timestamp((T0 + 3600 * i as u64) * 1_000_000_000);
        let mut d = Record::at(EventKind::Decision, t);
        d.request_id = Some(format!("req-{i}").into());
        d.action = Some(format!("clinic::{}", kinds[i % 4]).into());
        d.action_kind = Some(kinds[i % 4].into());
        d.principal = Some(format!("dr-{}", i % 2).into());
        d.roles = vec!["provider".into()].into();
        d.purpose = Some("treatment".into());
        d.subject = Some(key.token("subject", PATIENTS[i % 3]).into());
        d.key_fingerprint = Some(key.fingerprint_text());
        let denied = i % 5 == 4;
        d.decision = Some(if denied { "deny" } else { "allow" }.into());
        out.push(d.clone());
        if !denied {
            let mut o = d;
            o.kind = EventKind::Outcome;
            o.decision = None;
            o.outcome = Some(Outcome::Ok);
            out.push(o);
        }
    }
    out
}

/// Writes the records as one chained JSON-lines file (or several, split at `splits`).
fn write_trail(dir: &Path, records: Vec<Record>, splits: &[usize]) -> Vec<PathBuf> {
    let mut chain = Chain::new();
    let lines: Vec<String> = records
        .into_iter()
        .map(|r| chain.link(r).unwrap().line().to_owned())
        .collect();
    let mut bounds = vec![0];
    bounds.extend_from_slice(splits);
    bounds.push(lines.len());
    let mut files = Vec::new();
    for (i, w) in bounds.windows(2).enumerate() {
        let path = dir.join(format!("audit-{i}.jsonl"));
        let mut text = lines[w[0]..w[1]].join("\n");
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        files.push(path);
    }
    files
}

/// A file holding the audit key as hex, and the `--key-hex` value naming it.
fn key_file(dir: &Path) -> String {
    let p = dir.join("audit.key");
    std::fs::write(&p, format!("{KEY_HEX}\n")).unwrap();
    format!("file:{}", p.display())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_sound_trail_verifies_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_trail(dir.path(), records(30), &[]);
    let out = guardrail(&["audit", "verify", s(&files[0])]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let n = std::fs::read_to_string(&files[0]).unwrap().lines().count();
    assert!(
        stdout(&out).contains(&format!("ok: {n} events in 1 file(s)")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn an_edited_event_exits_1_naming_file_line_and_seq() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_trail(dir.path(), records(30), &[]);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // Line 17 holds seq 16: change who acted.
    assert!(lines[16].starts_with("{\"seq\":16,"));
    lines[16] = lines[16].replacen("\"principal\":\"dr-", "\"principal\":\"xx-", 1);
    std::fs::write(&files[0], lines.join("\n") + "\n").unwrap();

    let out = guardrail(&["audit", "verify", s(&files[0])]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("tampering detected"), "{err}");
    assert!(err.contains("audit-0.jsonl"), "{err}");
    assert!(err.contains("line 17"), "{err}");
    assert!(err.contains("seq 16"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn a_deleted_event_exits_1_naming_where_the_gap_is() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_trail(dir.path(), records(30), &[]);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(9); // seq 9
    std::fs::write(&files[0], lines.join("\n") + "\n").unwrap();
    let out = guardrail(&["audit", "verify", s(&files[0])]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("line 10") && err.contains("seq 9"), "{err}");
}

#[test]
fn files_chain_in_the_order_given() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_trail(dir.path(), records(30), &[10, 25]);
    assert_eq!(files.len(), 3);
    let ok = guardrail(&["audit", "verify", s(&files[0]), s(&files[1]), s(&files[2])]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    // Out of order: the second file given does not continue the first.
    let bad = guardrail(&["audit", "verify", s(&files[0]), s(&files[2]), s(&files[1])]);
    assert_eq!(bad.status.code(), Some(1));
    let err = stderr(&bad);
    assert!(
        err.contains("audit-2.jsonl") && err.contains("line 1") && err.contains("seq 25"),
        "{err}"
    );
    // A file missing from the middle is a gap, not a sound trail.
    let gap = guardrail(&["audit", "verify", s(&files[0]), s(&files[2])]);
    assert_eq!(gap.status.code(), Some(1));
}

#[test]
fn usage_and_io_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_trail(dir.path(), records(3), &[]);
    let missing = dir.path().join("nope.jsonl");
    let missing_key = format!("file:{}", s(&missing));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["audit", "verify"], "TRAIL"),
        (vec!["audit", "verify", s(&missing)], "does not exist"),
        (
            vec![
                "audit",
                "verify",
                "--checkpoints",
                s(&files[0]),
                s(&files[0]),
            ],
            "`--checkpoints` needs `--checkpoint-key`",
        ),
        (vec!["audit", "frobnicate"], "frobnicate"),
        (
            vec![
                "audit",
                "disclosures",
                "--patient",
                "x",
                "--key-hex",
                &missing_key,
                s(&files[0]),
            ],
            "cannot read audit key file",
        ),
        (
            vec![
                "audit",
                "disclosures",
                "--patient",
                "x",
                "--key-hex",
                "env:GUARDRAIL_CLI_TEST_NO_SUCH_VAR",
                s(&files[0]),
            ],
            "is not set",
        ),
        (
            vec![
                "audit",
                "disclosures",
                "--patient",
                "x",
                "--key-hex",
                KEY_HEX,
                "--since",
                "yesterday",
                s(&files[0]),
            ],
            "`yesterday` is not an RFC 3339 time",
        ),
        (vec!["audit", "export", s(&files[0])], "--format"),
        (
            vec!["audit", "export", "--format", "csv", s(&files[0])],
            "csv",
        ),
    ];
    for (args, needle) in cases {
        let out = guardrail(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn checkpoints_catch_a_cut_tail_and_a_wrong_key_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("trail");
    let secret = b"checkpoint secret of the auditor";
    let signer = CheckpointSigner::hmac_sha256(secret).unwrap();
    let options = FileSinkOptions {
        checkpoint: Some(CheckpointOptions::new(signer)),
        ..Default::default()
    };
    let sink = FileSink::open(&trail, options).unwrap();
    for r in records(20) {
        sink.append(r).unwrap();
    }
    sink.close().unwrap();
    let cp_key = dir.path().join("cp.key");
    std::fs::write(&cp_key, format!("hmac-sha256:{}\n", hex_encode(secret))).unwrap();
    let checkpoints = trail.join(guardrail_audit::CHECKPOINT_FILE);

    let ok = guardrail(&[
        "audit",
        "verify",
        s(&trail),
        "--checkpoints",
        s(&checkpoints),
        "--checkpoint-key",
        s(&cp_key),
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(
        stdout(&ok).contains("checkpoint(s) match"),
        "{}",
        stdout(&ok)
    );

    let wrong = dir.path().join("wrong.key");
    std::fs::write(
        &wrong,
        format!("hmac-sha256:{}\n", hex_encode(b"some other secret key")),
    )
    .unwrap();
    let out = guardrail(&[
        "audit",
        "verify",
        s(&trail),
        "--checkpoints",
        s(&checkpoints),
        "--checkpoint-key",
        s(&wrong),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Cut the last event from the (only) event file: the chain alone cannot tell.
    let event_file = std::fs::read_dir(&trail)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name != guardrail_audit::CHECKPOINT_FILE && name != guardrail_audit::MANIFEST_FILE
        })
        .unwrap();
    let text = std::fs::read_to_string(&event_file).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let last = lines.len();
    lines.pop();
    std::fs::write(&event_file, lines.join("\n") + "\n").unwrap();
    let chain_only = guardrail(&["audit", "verify", s(&trail)]);
    assert_eq!(chain_only.status.code(), Some(0), "{}", stderr(&chain_only));
    let out = guardrail(&[
        "audit",
        "verify",
        s(&trail),
        "--checkpoints",
        s(&checkpoints),
        "--checkpoint-key",
        s(&cp_key),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("seq {}", last - 1)), "{err}");
    assert!(err.contains("removed from the end"), "{err}");
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn disclosures_list_one_patients_reads_exports_and_disclosures_in_range() {
    let dir = tempfile::tempdir().unwrap();
    let recs = records(60);
    let files = write_trail(dir.path(), recs.clone(), &[40]);
    let key_path = key_file(dir.path());
    // Step i is patient i % 3 at T0 + i hours, kind i % 4; steps 4, 9, 14, … are denied.
    let since = "2026-11-01T10:00:00Z"; // step 10
    let until = "2026-11-02T12:00:00Z"; // step 36 (excluded)
    let out = guardrail(&[
        "audit",
        "disclosures",
        "--patient",
        PATIENTS[1],
        "--key-hex",
        &key_path,
        "--since",
        since,
        "--until",
        until,
        "--format",
        "json",
        s(&files[0]),
        s(&files[1]),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for p in PATIENTS {
        assert!(!text.contains(p), "raw patient id in the accounting");
    }
    let json: Value = serde_json::from_str(&text).unwrap();
    let rows = json["rows"].as_array().unwrap();
    let expected: Vec<usize> = (10..36)
        .filter(|i| i % 3 == 1 && i % 4 != 1) // patient 1, not an update
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(rows.len(), expected.len(), "{text}");
    let kinds = ["read", "update", "export", "disclose"];
    for (row, i) in rows.iter().zip(&expected) {
        assert_eq!(row["action_kind"], kinds[i % 4]);
        assert_eq!(row["principal"], format!("dr-{}", i % 2));
        assert_eq!(row["request_id"], format!("req-{i}"));
        let denied = i % 5 == 4;
        assert_eq!(row["decision"], if denied { "deny" } else { "allow" });
        assert_eq!(
            row["outcome"],
            if denied { Value::Null } else { "ok".into() }
        );
    }
    assert_eq!(json["subject"], key().token("subject", PATIENTS[1]));

    // The table names the columns and the people, and the id can come from stdin.
    let mut child = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args([
            "audit",
            "disclosures",
            "--patient",
            "-",
            "--key-hex",
            &key_path,
        ])
        .args([
            "--since",
            "2026-11-01",
            "--until",
            "2026-11-02",
            s(&files[0]),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{}\n", PATIENTS[0]).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = stdout(&out);
    let expected = (0..24).filter(|i| i % 3 == 0 && i % 4 != 1).count();
    assert!(table.contains(&format!("Accesses: {expected}")), "{table}");
    assert!(table.contains("TIME") && table.contains("WHO") && table.contains("PURPOSE"));
    assert!(
        table.contains("dr-0") && table.contains("clinic::read"),
        "{table}"
    );
    assert!(!table.contains(PATIENTS[0]));
}

#[test]
fn no_accounting_or_export_from_a_tampered_trail() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_trail(dir.path(), records(10), &[]);
    let key_path = key_file(dir.path());
    let text = std::fs::read_to_string(&files[0]).unwrap();
    std::fs::write(
        &files[0],
        text.replacen("\"decision\":\"deny\"", "\"decision\":\"allow\"", 1),
    )
    .unwrap();
    let out = guardrail(&[
        "audit",
        "disclosures",
        "--patient",
        PATIENTS[1],
        "--key-hex",
        &key_path,
        s(&files[0]),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    let out = guardrail(&["audit", "export", "--format", "fhir", s(&files[0])]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
}

#[test]
fn export_writes_fhir_ndjson_or_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_trail(dir.path(), records(12), &[7]);
    let n = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
        .sum::<usize>();

    let out = guardrail(&[
        "audit",
        "export",
        "--format",
        "fhir",
        s(&files[0]),
        s(&files[1]),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), n);
    for ae in &lines {
        assert_eq!(ae["resourceType"], "AuditEvent");
        assert_eq!(ae["source"]["observer"]["identifier"]["value"], "guardrail");
    }
    for p in PATIENTS {
        assert!(!text.contains(p));
    }

    let bundle_path = dir.path().join("bundle.json");
    let out = guardrail(&[
        "audit",
        "export",
        "--format",
        "fhir",
        "--bundle",
        "--observer",
        "clinic-api",
        "-o",
        s(&bundle_path),
        s(&files[0]),
        s(&files[1]),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let bundle: Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle_path).unwrap()).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), n);
    assert_eq!(
        entries[0]["resource"]["source"]["observer"]["display"],
        "clinic-api"
    );
    assert_eq!(entries[0]["resource"]["id"], lines[0]["id"]);

    let out = guardrail(&[
        "audit",
        "export",
        "--format",
        "fhir",
        "--bundle",
        "--ndjson",
        s(&files[0]),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn progress_goes_to_stderr_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_trail(dir.path(), records(5), &[]);
    let quiet = guardrail(&["audit", "verify", s(&files[0])]);
    assert!(!stderr(&quiet).contains("verifying"), "{}", stderr(&quiet));
    let loud = guardrail(&["audit", "verify", "--progress", s(&files[0])]);
    assert_eq!(loud.status.code(), Some(0));
    assert!(stderr(&loud).contains("verifying: "), "{}", stderr(&loud));
    assert!(!stdout(&loud).contains("verifying"));
}

fn other_key_hex() -> String {
    "0f".repeat(24)
}

fn fingerprint_of_hex(h: &str) -> String {
    AuditKey::from_bytes(&hex_decode(h))
        .unwrap()
        .fingerprint()
        .to_owned()
}

#[test]
fn the_removed_key_flag_names_its_replacements() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_trail(dir.path(), records(3), &[]);
    let key = key_file(dir.path());
    let out = guardrail(&[
        "audit",
        "disclosures",
        "--patient",
        PATIENTS[0],
        "--key",
        &key,
        s(&files[0]),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("`--key` is no longer accepted")
            && err.contains("--key-hex")
            && err.contains("--key-file"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
    let out = guardrail(&["audit", "disclosures", "--patient", "x", s(&files[0])]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("give the audit key"),
        "{}",
        stderr(&out)
    );
    let out = guardrail(&["audit", "verify", "--key", &key, s(&files[0])]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--checkpoint-key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_wrong_audit_key_exits_2_naming_both_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_trail(dir.path(), records(12), &[]);
    let other = other_key_hex();
    let out = guardrail(&[
        "audit",
        "disclosures",
        "--patient",
        PATIENTS[0],
        "--key-hex",
        &other,
        s(&files[0]),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let expected = format!(
        "the key given does not match the key that made this trail (fingerprint {}, trail has {})",
        fingerprint_of_hex(&other),
        key().fingerprint()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(stdout(&out).is_empty(), "no accounting from a wrong key");

    // The hex key file given as raw bytes is another key: refused, with the likely fix.
    let hex_path = dir.path().join("audit.key");
    std::fs::write(&hex_path, format!("{KEY_HEX}\n")).unwrap();
    let out = guardrail(&[
        "audit",
        "disclosures",
        "--patient",
        PATIENTS[0],
        "--key-file",
        s(&hex_path),
        s(&files[0]),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("does not match the key that made this trail"),
        "{err}"
    );
    assert!(err.contains("`--key-hex file:PATH`"), "{err}");

    // The raw bytes in a file: the right key, an accounting, no warning.
    let raw_path = dir.path().join("audit.raw");
    std::fs::write(&raw_path, hex_decode(KEY_HEX)).unwrap();
    let out = guardrail(&[
        "audit",
        "disclosures",
        "--patient",
        PATIENTS[0],
        "--key-file",
        s(&raw_path),
        s(&files[0]),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected = (0..12).filter(|i| i % 3 == 0 && i % 4 != 1).count();
    assert!(
        stdout(&out).contains(&format!("Accesses: {expected}")),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn a_trail_without_fingerprints_warns_that_the_key_cannot_be_checked() {
    let dir = tempfile::tempdir().unwrap();
    let old: Vec<Record> = records(6)
        .into_iter()
        .map(|mut r| {
            r.key_fingerprint = None;
            r
        })
        .collect();
    let files = write_trail(dir.path(), old, &[]);
    let out = guardrail(&[
        "audit",
        "disclosures",
        "--patient",
        PATIENTS[0],
        "--key-hex",
        &other_key_hex(),
        s(&files[0]),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: the trail's events carry no key fingerprint")
            && err.contains("the key cannot be checked"),
        "{err}"
    );
    assert!(stdout(&out).contains("Accesses: 0"), "{}", stdout(&out));
}

/// `records(n)` with every principal replaced.
fn records_by(n: usize, principal: &str) -> Vec<Record> {
    records(n)
        .into_iter()
        .map(|mut r| {
            r.principal = Some(principal.into());
            r
        })
        .collect()
}

#[test]
fn strings_from_the_trail_are_escaped_in_the_table_and_safe_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = "\r\x1b[2Kok: 0 events, \u{202e}all clear";
    let files = write_trail(dir.path(), records_by(8, hostile), &[]);
    let key = key_file(dir.path());
    let base = [
        "audit",
        "disclosures",
        "--patient",
        PATIENTS[0],
        "--key-hex",
    ];
    let out = guardrail(&[&base[..], &[&key, s(&files[0])]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = stdout(&out);
    for c in ['\r', '\x1b', '\u{202e}'] {
        assert!(!table.contains(c), "raw {c:?} in {table:?}");
    }
    assert!(
        table.contains("\\u{d}\\u{1b}[2Kok: 0 events, \\u{202e}all clear"),
        "{table}"
    );

    let out = guardrail(&[&base[..], &[&key, "--format", "json", s(&files[0])]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for c in ['\r', '\x1b', '\u{202e}'] {
        assert!(!text.contains(c), "raw {c:?} in {text:?}");
    }
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        json["rows"][0]["principal"], hostile,
        "JSON keeps the value"
    );

    let out = guardrail(&["audit", "export", "--format", "fhir", s(&files[0])]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        !text.contains('\u{202e}') && !text.contains('\x1b'),
        "{text:?}"
    );
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(first.to_string().contains("all clear"));
}

#[test]
fn file_names_are_escaped_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_trail(dir.path(), records(4), &[]);
    let hostile = dir
        .path()
        .join("audit\nok: 99 events in 1 file(s) verified\r\x1b[2K.jsonl");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    std::fs::write(&hostile, text.replacen("dr-0", "dr-9", 1)).unwrap();
    let out = guardrail(&["audit", "verify", s(&hostile)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line, no painted ones: {err:?}");
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    assert!(
        err.contains("audit\\u{a}ok: 99 events in 1 file(s) verified\\u{d}\\u{1b}[2K.jsonl"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());

    // A name a manifest lists is echoed escaped too.
    let trail = dir.path().join("trail");
    std::fs::create_dir(&trail).unwrap();
    let manifest = guardrail_audit::Manifest {
        log: "00ff".into(),
        files: vec![guardrail_audit::ManifestEntry {
            file: "audit-\x1b[1A\x1b[2Kok.jsonl".into(),
            first_seq: 0,
            prev: guardrail_audit::GENESIS,
        }],
    };
    std::fs::write(
        trail.join(guardrail_audit::MANIFEST_FILE),
        manifest.to_text(),
    )
    .unwrap();
    let out = guardrail(&["audit", "verify", s(&trail)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains('\x1b'), "{err:?}");
    assert!(err.contains("audit-\\u{1b}[1A\\u{1b}[2Kok.jsonl"), "{err}");
}

#[test]
fn exit_codes_are_documented_in_help() {
    for args in [
        vec!["--help"],
        vec!["audit", "verify", "--help"],
        vec!["audit", "disclosures", "--help"],
        vec!["audit", "export", "--help"],
    ] {
        let out = guardrail(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let help = stdout(&out);
        for needle in [
            "Exit status:",
            "0  the trail is sound",
            "1  tampering",
            "2  usage, I/O or key error",
        ] {
            assert!(
                help.contains(needle),
                "{args:?}: {needle} missing in {help}"
            );
        }
    }
    let help = stdout(&guardrail(&["audit", "disclosures", "--help"]));
    assert!(
        help.contains("--key-hex") && help.contains("--key-file"),
        "{help}"
    );
}

/// A trail written by the file sink with an HMAC checkpoint every 4 events; returns the
/// trail directory, the checkpoint file and the checkpoint key file.
fn checkpointed_trail(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let trail = dir.join("trail");
    let secret = b"checkpoint secret of the auditor";
    let mut cp = CheckpointOptions::new(CheckpointSigner::hmac_sha256(secret).unwrap());
    cp.every_events = 4;
    let options = FileSinkOptions {
        checkpoint: Some(cp),
        ..Default::default()
    };
    let sink = FileSink::open(&trail, options).unwrap();
    for r in records(10) {
        sink.append(r).unwrap();
    }
    sink.close().unwrap();
    let cp_key = dir.join("cp.key");
    std::fs::write(&cp_key, format!("hmac-sha256:{}\n", hex_encode(secret))).unwrap();
    let checkpoints = trail.join(guardrail_audit::CHECKPOINT_FILE);
    (trail, checkpoints, cp_key)
}

fn verify_with(trail: &Path, cps: &Path, key: &Path) -> Output {
    guardrail(&[
        "audit",
        "verify",
        s(trail),
        "--checkpoints",
        s(cps),
        "--checkpoint-key",
        s(key),
    ])
}

#[test]
fn a_forged_or_replaced_checkpoint_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (trail, cps, key) = checkpointed_trail(dir.path());
    let pristine = std::fs::read_to_string(&cps).unwrap();
    let lines: Vec<&str> = pristine.lines().collect();
    assert!(lines.len() >= 3, "{pristine}");
    assert_eq!(verify_with(&trail, &cps, &key).status.code(), Some(0));
    let key_id = CheckpointSigner::hmac_sha256(b"checkpoint secret of the auditor")
        .unwrap()
        .key_id()
        .to_owned();
    let replace_line = |i: usize, with: &str| {
        let mut l: Vec<String> = lines.iter().map(|x| (*x).to_owned()).collect();
        l[i] = with.to_owned();
        std::fs::write(&cps, l.join("\n") + "\n").unwrap();
    };
    let cases: Vec<(String, &str)> = vec![
        // Its claim changed, its signature kept.
        // (the first hex digit of its head flipped below).
        (lines[1].to_owned(), "the signature does not verify"),
        // A line of an unknown version, unsigned, naming the given key.
        (
            format!(
                "{{\"v\":9,\"alg\":\"hmac-sha256\",\"key\":\"{key_id}\",\"sig\":\"{}\"}}",
                "ab".repeat(32)
            ),
            "the signature does not verify",
        ),
        // A line naming another key, among lines the given key signed.
        (
            lines[1].replacen(&key_id, "0123456789abcdef", 1),
            "a checkpoint was replaced or inserted",
        ),
    ];
    for (i, (line, needle)) in cases.into_iter().enumerate() {
        // Case 0: flip the first hex digit of the head.
        let line = if i == 0 {
            let at = line.find("\"head\":\"").unwrap() + 8;
            let mut b = line.into_bytes();
            b[at] = if b[at] == b'0' { b'1' } else { b'0' };
            String::from_utf8(b).unwrap()
        } else {
            line
        };
        replace_line(1, &line);
        let out = verify_with(&trail, &cps, &key);
        assert_eq!(out.status.code(), Some(1), "case {i}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("tampering detected") && err.contains(needle),
            "case {i}: {err}"
        );
        assert!(err.contains("line 2"), "case {i}: {err}");
    }
}

/// `line` with the fixed-layout hash member recomputed (`SHA-256(0x00 ‖ line[..len-75] ‖ "}")`).
fn rehash(line: &str) -> (String, [u8; 32]) {
    use sha2::{Digest as _, Sha256};
    let body = &line[..line.len() - 75];
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(body.as_bytes());
    h.update(b"}");
    let hash: [u8; 32] = h.finalize().into();
    (format!("{body},\"hash\":\"{}\"}}", hex_encode(&hash)), hash)
}

#[test]
fn an_unreadable_event_is_tampering_unless_a_signature_covers_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_trail(dir.path(), records(5), &[]);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let last = lines.len() - 1;
    // A member this version does not know, right after `prev`, and the hash recomputed:
    // the chain accepts it; nothing but a signature could say who wrote it.
    let at = lines[last].find(",\"time\"").unwrap() + 1;
    lines[last].insert_str(at, "\"future\":true,");
    let (line, hash) = rehash(&lines[last]);
    lines[last] = line;
    std::fs::write(&files[0], lines.join("\n") + "\n").unwrap();
    let key = key_file(dir.path());
    for args in [
        vec!["audit", "verify", s(&files[0])],
        vec![
            "audit",
            "disclosures",
            "--patient",
            PATIENTS[0],
            "--key-hex",
            &key,
            s(&files[0]),
        ],
        vec!["audit", "export", "--format", "fhir", s(&files[0])],
    ] {
        let out = guardrail(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("line {} (seq {last})", last + 1))
                && err.contains("no checkpoint signature covers it"),
            "{err}"
        );
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    // Signed by the checkpoint key, the same line is a newer format: a usage error.
    let signer = CheckpointSigner::hmac_sha256(b"checkpoint secret of the auditor").unwrap();
    let cp_line = signer.sign(
        "log",
        last as u64,
        guardrail_audit::Digest(hash),
        Timestamp(T0 * 1_000_000_000),
    );
    let cps = dir.path().join("cps.jsonl");
    std::fs::write(&cps, cp_line + "\n").unwrap();
    let cp_key = dir.path().join("cp.key");
    std::fs::write(
        &cp_key,
        format!(
            "hmac-sha256:{}",
            hex_encode(b"checkpoint secret of the auditor")
        ),
    )
    .unwrap();
    let out = verify_with(&files[0], &cps, &cp_key);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("covered by a signed checkpoint"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_huge_manifest_is_refused_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("trail");
    std::fs::create_dir(&trail).unwrap();
    let manifest = trail.join(guardrail_audit::MANIFEST_FILE);
    // 512 MiB, sparse: no disk used, and reading it whole would need 512 MiB of memory.
    std::fs::File::create(&manifest)
        .unwrap()
        .set_len(512 << 20)
        .unwrap();
    // Under a 256 MiB address-space limit, reading it whole would abort the process.
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 262144 && exec \"$0\" audit verify \"$1\"")
        .arg(env!("CARGO_BIN_EXE_guardrail"))
        .arg(&trail)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("manifest.jsonl") && err.contains("larger than 16 MiB"),
        "{err}"
    );
}
