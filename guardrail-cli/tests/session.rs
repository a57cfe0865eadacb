//! `guardrail audit session`: one session replayed in chain order after the trail verified,
//! other sessions and session-less events left out, tampering refused, unknown ids an error;
//! and the usage errors of `guardrail approvals` (the PostgreSQL round trip is tested by
//! `examples/assistant/tests/approval.rs`).
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::path::Path;
use std::process::{Command, Output};

use guardrail_audit::{
    AuditSink, EventKind, FileSink, FileSinkOptions, Outcome, Record, Timestamp,
};
use serde_json::Value;

fn guardrail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

fn decision(t: u64, session: Option<&str>, action: &str, word: &str) -> Record {
    let mut r = Record::at(EventKind::Decision, Timestamp(t * 1_000_000_000));
    r.action = Some(action.into());
    r.principal = Some("dr-grey".into());
    r.via = session.map(|_| "clinic-assistant/0.1".into());
    r.session = session.map(Into::into);
    r.purpose = Some("treatment".into());
    r.rule = Some("assistant-read".into());
    r.decision = Some(word.into());
    r
}

fn outcome(t: u64, session: &str, action: &str, digest: Option<&str>) -> Record {
    let mut r = decision(t, Some(session), action, "allow");
    r.kind = EventKind::Outcome;
    r.decision = None;
    r.rule = None;
    r.outcome = Some(Outcome::Ok);
    match digest {
        Some(d) => r.detail.insert("result_digest".into(), d.into()),
        None => r.detail.insert("result".into(), "undelivered".into()),
    };
    r
}

/// Two interleaved sessions and a direct call, in one trail.
fn trail(dir: &Path) {
    let sink = FileSink::open(dir, FileSinkOptions::default()).unwrap();
    let records = [
        decision(1, Some("mcp-a"), "assistant.search_patients", "allow"),
        decision(2, Some("mcp-b"), "assistant.read_chart", "deny"),
        outcome(3, "mcp-a", "assistant.search_patients", Some("aa11")),
        decision(4, None, "assistant.read_chart", "allow"),
        decision(
            5,
            Some("mcp-a"),
            "assistant.export_cohort",
            "approval_required",
        ),
        decision(6, Some("mcp-a"), "assistant.read_chart", "allow"),
        outcome(7, "mcp-a", "assistant.read_chart", None),
        decision(8, Some("mcp-a"), "assistant.read_chart", "break_glass"),
    ];
    for mut r in records {
        if r.decision.as_deref() == Some("break_glass") {
            r.break_glass = true;
        }
        sink.append(r).unwrap();
    }
    sink.close().unwrap();
}

#[test]
fn one_session_is_replayed_in_chain_order_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    trail(dir.path());
    let d = dir.path().to_str().unwrap();
    let out = guardrail(&["audit", "session", "mcp-a", "--format", "json", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["session"], "mcp-a");
    assert_eq!(v["trail_events"], 8);
    let steps = v["steps"].as_array().unwrap();
    let seen: Vec<(u64, &str, &str)> = steps
        .iter()
        .map(|s| {
            (
                s["seq"].as_u64().unwrap(),
                s["event"].as_str().unwrap(),
                s["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (0, "allow", "assistant.search_patients"),
            (2, "outcome:ok", "assistant.search_patients"),
            (4, "approval_required", "assistant.export_cohort"),
            (5, "allow", "assistant.read_chart"),
            (6, "outcome:ok", "assistant.read_chart"),
            (7, "break_glass", "assistant.read_chart"),
        ]
    );
    assert_eq!(steps[1]["result_digest"], "aa11");
    assert_eq!(steps[4]["result"], "undelivered");
    assert_eq!(steps[4]["result_digest"], Value::Null);
    assert_eq!(steps[5]["break_glass"], true);
    for s in steps {
        assert_eq!(s["principal"], "dr-grey");
        assert_eq!(s["via"], "clinic-assistant/0.1");
    }

    let out = guardrail(&["audit", "session", "mcp-a", d]);
    assert!(out.status.success());
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("session mcp-a: 6 event(s); trail verified (8 events)"));
    assert!(lines[1].contains("dr-grey via clinic-assistant/0.1 allow assistant.search_patients"));
    assert!(
        lines[1].contains("purpose=treatment rule=assistant-read"),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains("result_sha256=aa11"), "{}", lines[2]);
    assert!(lines[5].contains("result=undelivered"), "{}", lines[5]);
    assert!(lines[6].ends_with("BREAK-GLASS"), "{}", lines[6]);
    assert_eq!(lines.len(), 7);
}

#[test]
fn a_tampered_trail_or_an_unknown_session_shows_nothing() {
    let dir = tempfile::tempdir().unwrap();
    trail(dir.path());
    let d = dir.path().to_str().unwrap();
    let out = guardrail(&["audit", "session", "mcp-zzz", d]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no event of session `mcp-zzz`"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());

    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("audit-"))
        .unwrap();
    let body = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, body.replacen("\"deny\"", "\"allow\"", 1)).unwrap();
    let out = guardrail(&["audit", "session", "mcp-b", d]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("tampering"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn approvals_refuse_unusable_arguments_before_touching_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "version = \"1\"\n").unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "00112233445566778899aabbccddeeff00112233").unwrap();
    let trail = dir.path().join("trail");
    let base = |db: &str, policy: &str| {
        vec![
            "approvals".to_owned(),
            "approve".into(),
            "apr-1".into(),
            "--db".into(),
            db.into(),
            "--as".into(),
            "po-1".into(),
            "--role".into(),
            "privacy_officer".into(),
            "--policy".into(),
            policy.into(),
            "--trail".into(),
            trail.to_str().unwrap().into(),
            "--key-hex".into(),
            format!("file:{}", key.display()),
        ]
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        guardrail(&refs)
    };
    // The URL variable is not set.
    let out = run(base("env:GUARDRAIL_NO_SUCH_VAR", policy.to_str().unwrap()));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("GUARDRAIL_NO_SUCH_VAR"),
        "{}",
        text(&out.stderr)
    );
    // The policy file is missing.
    let out = run(base(
        "postgres://x@127.0.0.1:1/none",
        "/nonexistent/policy.toml",
    ));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read the policy"),
        "{}",
        text(&out.stderr)
    );
    // No role: clap refuses.
    let out = guardrail(&["approvals", "approve", "apr-1", "--db", "x", "--as", "po-1"]);
    assert_eq!(out.status.code(), Some(2));
    // An unreachable store fails closed, naming neither the URL nor its password.
    let out = run(base(
        "postgres://u:s3cret@127.0.0.1:1/none",
        policy.to_str().unwrap(),
    ));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("approval store"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}
