//! The server binary over stdio: the real rmcp client talks to `assistant serve-stdio` in a
//! child process through its stdin and stdout.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod support;

use assistant::agent;
use rmcp::ServiceExt as _;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use serde_json::{Value, json};
use std::process::Stdio;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stdio_server_offers_the_tools_masks_results_and_records_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("trail");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_assistant"))
        .args(["serve-stdio", "--trail", trail.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stdin = child.stdin.take().unwrap();
    let client = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("stdio-test-client", "1.0"),
    )
    .serve((stdout, stdin))
    .await
    .unwrap();
    let tools = agent::tools(client.peer()).await.unwrap();
    assert_eq!(
        tools,
        ["search_patients", "read_chart", "add_note", "export_cohort"]
    );
    let o = agent::call(client.peer(), "read_chart", json!({"patient_id": "p-1"}))
        .await
        .unwrap();
    assert!(!o.is_error, "{}", o.text);
    for ssn in support::SSNS {
        assert!(!o.text.contains(ssn), "{}", o.text);
    }
    let chart: Value = serde_json::from_str(&o.text).unwrap();
    assert_eq!(chart["name"], "Ada Hale");
    let _ = client.cancel().await;
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("the server did not exit when the client left")
        .unwrap();
    assert!(status.success(), "{status:?}");

    let events = support::read_trail(&trail);
    assert_eq!(events.len(), 2);
    let session = events[0].record.session.clone().unwrap();
    for e in &events {
        assert_eq!(e.record.session.as_deref(), Some(&*session));
        assert_eq!(e.record.via.as_deref(), Some("clinic-assistant"));
        assert_eq!(e.record.principal.as_deref(), Some("dr-grey"));
    }
    assert_eq!(
        events[1]
            .record
            .detail
            .get("result_digest")
            .map(String::as_str),
        Some(support::sha256(&o.text).as_str())
    );
}
