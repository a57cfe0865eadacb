//! The export the agent decided on waits for a second person, who approves it through the
//! `guardrail` CLI in another process (the shared PostgreSQL approval store); the agent
//! retries and succeeds exactly once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

#[path = "../../../tests/support/pg.rs"]
mod pg;
mod support;

use assistant::agent;
use assistant::{APPROVALS_TABLE, DEMO_AUDIT_KEY_HEX, clinician_session};
use guardrail_core::audit::{EventKind, Outcome};
use guardrail_mcp::APPROVAL_ARGUMENT;
use serde_json::json;
use support::{Harness, cli};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_person_approves_through_the_cli_and_the_retry_succeeds_once() {
    let Some(url) = pg::database_url("assistant_cli_approval") else {
        return;
    };
    let mut h = Harness::start(clinician_session(), Some(&url)).await;
    let key_file = h.dir.path().join("audit.key");
    std::fs::write(&key_file, DEMO_AUDIT_KEY_HEX).unwrap();
    let approver_trail = h.dir.path().join("approver-trail");
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/policy.toml");
    let decide = |verb: &str, id: &str, person: &str, role: &str| {
        cli(&[
            "approvals",
            verb,
            id,
            "--db",
            &url,
            "--table",
            APPROVALS_TABLE,
            "--as",
            person,
            "--role",
            role,
            "--policy",
            policy,
            "--trail",
            approver_trail.to_str().unwrap(),
            "--key-hex",
            &format!("file:{}", key_file.display()),
        ])
    };

    let mut requests = Vec::new();
    let mut approve = |id: &str| -> Result<(), String> {
        requests.push(id.to_owned());
        // The requester cannot approve their own export, nor can someone without the role.
        let own = decide("approve", id, "dr-grey", "privacy_officer");
        assert_eq!(own.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&own.stderr).contains("refused"),
            "{}",
            String::from_utf8_lossy(&own.stderr)
        );
        let clerk = decide("approve", id, "clerk-1", "billing");
        assert_eq!(clerk.status.code(), Some(2));
        // The privacy officer does, from another process.
        let out = decide("approve", id, "po-1", "privacy_officer");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let shown = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(shown.contains("granted by po-1"), "{shown}");
        assert!(shown.contains("requested by: dr-grey"), "{shown}");
        assert!(shown.contains("via agent: clinic-assistant"), "{shown}");
        Ok(())
    };
    let t = agent::run(h.peer(), "Hale", &mut approve).await.unwrap();
    assert_eq!(requests.len(), 1);
    let id = requests[0].clone();
    let exports: Vec<_> = t
        .turns
        .iter()
        .filter(|t| t.tool == "export_cohort")
        .collect();
    assert_eq!(exports.len(), 2);
    assert!(exports[0].observation.is_error);
    assert!(exports[0].observation.text.contains(&id));
    assert!(
        !exports[1].observation.is_error,
        "{}",
        exports[1].observation.text
    );

    // The grant is spent: the same retry again is refused.
    let again = agent::call(
        h.peer(),
        "export_cohort",
        json!({"diagnosis": "hypertension", APPROVAL_ARGUMENT: id}),
    )
    .await
    .unwrap();
    assert!(again.is_error, "{}", again.text);
    assert!(
        again.text.starts_with("refused by policy:"),
        "{}",
        again.text
    );

    let shown = cli(&[
        "approvals",
        "show",
        &id,
        "--db",
        &url,
        "--table",
        APPROVALS_TABLE,
    ]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(": consumed"),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );
    h.stop().await;

    // Exactly one export ran.
    let events = h.events();
    let ran = events
        .iter()
        .filter(|e| {
            e.record.kind == EventKind::Outcome
                && e.record.action.as_deref() == Some("assistant.export_cohort")
                && e.record.outcome == Some(Outcome::Ok)
        })
        .count();
    assert_eq!(ran, 1);
    // The approver's trail records the refused attempts and the grant, and verifies.
    let out = cli(&["audit", "verify", approver_trail.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: Vec<_> = support::read_trail(&approver_trail)
        .into_iter()
        .filter(|e| e.record.kind == EventKind::ApprovalGranted)
        .map(|e| {
            (
                e.record.principal.as_deref().unwrap_or("").to_owned(),
                e.record.decision.as_deref().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(steps.last().map(|s| s.0.as_str()), Some("po-1"));
    assert!(
        steps.iter().any(|s| s.0 == "dr-grey" && s.1 == "refused"),
        "{steps:?}"
    );
}
