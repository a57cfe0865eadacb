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

fn key_file(dir: &Path) -> PathBuf {
    let p = dir.join("audit.key");
    std::fs::write(&p, format!("{KEY_HEX}\n")).unwrap();
    p
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
            "--key",
        ),
        (vec!["audit", "frobnicate"], "frobnicate"),
        (
            vec![
                "audit",
                "disclosures",
                "--patient",
                "x",
                "--key",
                s(&missing),
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
                "--key",
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
                "--key",
                s(&files[0]),
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
        "--key",
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
        "--key",
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
        "--key",
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
        "--key",
        s(&key_path),
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
            "--key",
            s(&key_path),
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
        "--key",
        s(&key_path),
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
